# Snapshot format library (snapshots/*.c, built into libember by the main
# Makefile) and the ember-snap tool. The tool links the snapshot objects
# directly, not libember.a, so it builds while other modules are in flux.
SNAP_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,\
	snapshots/snap_read.c snapshots/snap_write.c snapshots/snap_mem.c \
	snapshots/snap_validate.c snapshots/snap_file.c snapshots/snap_cpu.c \
	snapshots/snap_prop.c)

$(BUILD)/ember-snap: $(BUILD)/obj/snapshots/snaptool.o $(SNAP_OBJS)
	$(CC) $(CFLAGS) -o $@ $^ -lfdt

ALL += $(BUILD)/ember-snap
TEST_DEPS += $(BUILD)/ember-snap
