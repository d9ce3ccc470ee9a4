# mk/bench.mk - the cold-start benchmark (docs/benchmarks.md).
#
#   make BUILD=... bench-coldstart   bench/results/coldstart.json, a table,
#                                    bench/results/coldstart-cdf.svg
#   BENCH_QUICK=1 make ... bench-coldstart   a short run (~30 s)
#
# COLDSTART_TOOLS is where ember-vmm, ember-micro, handlers/echo and
# libember.a come from (default: $(BUILD), built by their own rules). Point
# it at another build directory to measure that build without rebuilding it.
#
# The driver (bench/coldstart/*.c, one file per concern: main.c says which)
# wraps ioctl/mmap/madvise and a few libember internals at link time to
# time each restore step from inside (bench/coldstart/trace.c).

COLDSTART_TOOLS ?= $(BUILD)
COLDSTART_COMMA := ,
COLDSTART_WRAP := $(addprefix -Wl$(COLDSTART_COMMA)--wrap=,ioctl mmap \
	madvise snap_read_state snap_open_memory kvm_map_ram kvm_open \
	vm_create_core vm_create_devices)

COLDSTART_SRCS := $(wildcard bench/coldstart/*.c)
$(BUILD)/bench/coldstart: $(COLDSTART_SRCS) bench/coldstart/coldstart.h \
		$(COLDSTART_TOOLS)/libember.a vmm/include/ember.h vmm/invoke.h \
		proto/invoke.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(COLDSTART_SRCS) $(COLDSTART_TOOLS)/libember.a \
		$(COLDSTART_WRAP) $(LIBS)

ALL += $(BUILD)/bench/coldstart

.PHONY: bench-coldstart
bench-coldstart: $(BUILD)/bench/coldstart $(COLDSTART_TOOLS)/ember-vmm \
		$(COLDSTART_TOOLS)/ember-micro $(COLDSTART_TOOLS)/handlers/echo
	@mkdir -p bench/results
	$(BUILD)/bench/coldstart --vmm $(COLDSTART_TOOLS)/ember-vmm \
		--handler $(COLDSTART_TOOLS)/handlers/echo \
		--out bench/results/coldstart.json
	python3 bench/plot_cdf.py bench/results/coldstart.json \
		bench/results/coldstart-cdf.svg

bench: bench-coldstart

# A new ember-vmm --restore process over a new connection or over the one
# the snapshot carries (docs/snapshots.md), with and without prefetch, arms
# alternated.
.PHONY: bench-carry-process
bench-carry-process: $(BUILD)/ember-vmm $(BUILD)/ember-micro \
		$(BUILD)/handlers/echo
	@mkdir -p bench/results
	BUILD=$(BUILD) bench/carry_process

bench: bench-carry-process

# KVM's page faults in a restored guest's first invocation, counted with
# the kernel's trace events (root; docs/benchmarks.md).
.PHONY: bench-shadow-faults
bench-shadow-faults: $(BUILD)/ember-vmm $(BUILD)/ember-micro \
		$(BUILD)/handlers/echo
	@mkdir -p bench/results
	BUILD=$(BUILD) bench/shadow_faults

bench: bench-shadow-faults
