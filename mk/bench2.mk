# mk/bench2.mk - block I/O and invocation benchmarks through real guests
# (docs/benchmarks.md, "Block I/O" and "Invocation").
#
#   make BUILD=... bench-blk-guest   bench/results/blk-guest.json + a table
#   make BUILD=... bench-invoke      bench/results/invoke.json + a table
#   BENCH_QUICK=1 make BUILD=... bench-blk-guest bench-invoke   (short runs)
#
# BLK_SCRATCH_DIR (default /var/tmp) holds the 256 MiB scratch disk image.
# Both scripts read their tools from $(BUILD) (the BUILD environment
# variable when run by hand).

$(BUILD)/bench/blk_host: bench/blk_host.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $<

ALL += $(BUILD)/bench/blk_host

.PHONY: bench-blk-guest bench-invoke
bench-blk-guest: $(BUILD)/bench/blk_host $(BUILD)/ember-vmm \
		$(BUILD)/guests/blkbench
	@mkdir -p bench/results
	BUILD=$(BUILD) bench/blk-guest

bench-invoke: $(BUILD)/ember-vmm $(BUILD)/ember-micro $(BUILD)/ember-invoke \
		$(BUILD)/handlers/echo $(BUILD)/handlers/echo.musl
	@mkdir -p bench/results
	BUILD=$(BUILD) bench/invoke

bench: bench-blk-guest bench-invoke
