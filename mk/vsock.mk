# mk/vsock.mk - the virtio-vsock device (vmm/virtio/vsock*.c, docs/vsock.md).
# The device is part of libember (vmm/virtio/*.c); its unit test
# (tests/unit/test_vsock.c) and fuzzer (tests/fuzz/fuzz_vsock.c) are built by
# the generic rules (Makefile, mk/fuzz.mk). Here: the benchmark.
#   make BUILD=... bench-vsock     (bench/results/vsock.json + a table)

.PHONY: bench-vsock
bench-vsock: $(BUILD)/ember-vmm $(BUILD)/guests/vsock-echo
	BUILD=$(BUILD) bench/vsock
bench: bench-vsock
