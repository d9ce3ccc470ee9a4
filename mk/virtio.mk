# mk/virtio.mk - virtio-mmio transport, split ring, virtio-blk and its disk
# backends (vmm/virtio/*.c, vmm/evloop.c: part of libember; docs/virtio.md).
# Unit tests (tests/unit/test_{virtq,mmio,blk,evloop}.c) and the fuzzer
# (tests/fuzz/fuzz_virtq_blk.c, mk/fuzz.mk) use the generic rules. Here: the
# host-side backend benchmark.
#   make BUILD=... bench-blk     (bench/results/blk.json + a table)

BLK_BENCH_SRCS := bench/blk_backend.c vmm/virtio/disk_uring.c \
	vmm/virtio/disk_sync.c vmm/log.c

$(BUILD)/bench/blk_backend: $(BLK_BENCH_SRCS) vmm/virtio/disk.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(BLK_BENCH_SRCS) $(LIBS)

ALL += $(BUILD)/bench/blk_backend

.PHONY: bench-blk
bench-blk: $(BUILD)/bench/blk_backend
	@mkdir -p bench/results
	$(BUILD)/bench/blk_backend --out bench/results/blk.json

bench: bench-blk
