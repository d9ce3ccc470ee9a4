# mk/guests.mk - Ember's freestanding test guests (guests/*.c) with their
# runtime (guests/rt) and the shared polling virtio drivers (guest-drivers/).
# Every guests/NAME.c becomes the static ELF $(BUILD)/guests/NAME, loaded by
# the VMM at 1 MiB (guests/guest.ld). See docs/guest-drivers.md.

GUEST_CFLAGS := -std=gnu11 -O2 -g $(WARN) -ffreestanding -fno-pic -fno-pie \
	-fno-stack-protector -mno-red-zone -fno-asynchronous-unwind-tables \
	-ffunction-sections -fdata-sections -Ivmm/include -I. -Iguests/rt
# -static without -static-pie links a position-dependent ET_EXEC (gcc and
# clang alike; clang rejects an explicit -no-pie next to -static).
GUEST_LDFLAGS := -nostdlib -static -Wl,-T,guests/guest.ld \
	-Wl,--gc-sections -Wl,--build-id=none -Wl,-z,noexecstack \
	-Wl,-z,max-page-size=4096

GUEST_LIB_SRCS := guests/rt/crt0.S guests/rt/rt.c $(wildcard guest-drivers/*.c)
GUEST_LIB_OBJS := $(patsubst %,$(BUILD)/guests/obj/%.o,$(GUEST_LIB_SRCS))
GUEST_NAMES := $(patsubst guests/%.c,%,$(wildcard guests/*.c))
GUEST_BINS := $(GUEST_NAMES:%=$(BUILD)/guests/%)

$(BUILD)/guests/obj/%.c.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/guests/obj/%.S.o: %.S
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c $< -o $@

$(GUEST_BINS): $(BUILD)/guests/%: $(BUILD)/guests/obj/guests/%.c.o \
		$(GUEST_LIB_OBJS) guests/guest.ld
	$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $(filter %.o,$^)

.PHONY: guests
guests: $(GUEST_BINS)

ALL += $(GUEST_BINS)
TEST_DEPS += $(GUEST_BINS)
