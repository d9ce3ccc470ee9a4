/*
 * libFuzzer target for the snapshot state reader (snapshots/snap_read.c).
 * Two passes per input:
 *  1. the input itself is a state blob: snap_parse_state() must reject or
 *     accept it without any out-of-bounds access (ASan/UBSan);
 *  2. the input is a list of (offset, byte) patches applied to a valid
 *     state built once at start-up, so mutations reach deep into the tree
 *     without a seed corpus (FDT structure is hard to guess from scratch).
 * Whatever parses must validate, and must survive a write -> read round
 * trip unchanged (the writer and reader agree on every accepted state).
 *   make BUILD=build-snap build-snap/fuzz-bin/fuzz_snap_state; make fuzz
 */
// link: snapshots/snap_read.c snapshots/snap_write.c snapshots/snap_validate.c
// link: snapshots/snap_file.c snapshots/snap_cpu.c snapshots/snap_prop.c
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshots/snap.h"
#include "virtio/virtio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct snap_vm *vm, *again;
static uint8_t *valid;
static size_t valid_len;
static uint8_t *work;

static void init_valid(void)
{
	struct snap_vm *s = calloc(1, sizeof(*s));
	struct snap_virtio_dev *d;
	void *blob;
	char err[256];

	if (!s)
		abort();
	snap_cpu_fingerprint(&s->cpu);
	s->machine.mem_size = 16u << 20;
	s->machine.nr_vcpus = 2;
	s->machine.kind = SNAP_GUEST_MICRO;
	strcpy(s->machine.cmdline, "quiet");
	s->has_irqchip = s->has_pit = s->has_clock = s->has_serial = true;
	for (uint32_t c = 0; c < 3; c++)
		s->irqchip[c].chip_id = c;
	for (unsigned i = 0; i < 2; i++) {
		s->vcpu[i].has_xsave = s->vcpu[i].has_lapic = true;
		s->vcpu[i].has_xcrs = true;
		s->vcpu[i].xcrs.nr_xcrs = 1;
		s->vcpu[i].nr_msrs = 4;
		for (unsigned m = 0; m < 4; m++)
			s->vcpu[i].msrs[m].index = 0x10 + m;
	}
	s->nr_devices = 2;
	d = &s->dev[0];
	d->device_id = VIRTIO_ID_BLOCK;
	d->mmio_base = EMBER_VIRTIO_MMIO_BASE;
	d->status = 0xf;
	d->activated = true;
	d->nr_queues = 1;
	d->vq[0] = (struct snap_virtq){ .size = 8, .ready = true,
					.desc_gpa = 0x10000,
					.avail_gpa = 0x11000,
					.used_gpa = 0x12000,
					.last_avail = 3, .used_idx = 1 };
	strcpy(d->kind, "blk");
	snap_prop_set_str(d, "backing-path", "/x.img");
	snap_prop_set_u64(d, "capacity", 4096);
	d = &s->dev[1];
	d->device_id = VIRTIO_ID_VSOCK;
	d->mmio_base = EMBER_VIRTIO_MMIO_BASE + EMBER_VIRTIO_MMIO_SIZE;
	d->nr_queues = 3;
	strcpy(d->kind, "vsock");
	snap_prop_set_u64(d, "guest-cid", 3);
	snap_prop_set_str(d, "uds-path", "/v.sock");
	if (snap_build_state(s, &blob, &valid_len, err, sizeof(err))) {
		fprintf(stderr, "fuzz_snap_state: %s\n", err);
		abort();
	}
	valid = blob;
	free(s);
}

/* Accepted states must validate and round-trip exactly. */
static void check_accepted(const struct snap_vm *s)
{
	char err[256];
	void *blob;
	size_t len;

	if (snap_validate(s, err, sizeof(err)))
		abort();
	if (snap_build_state(s, &blob, &len, err, sizeof(err)))
		abort();
	/* snap_parse_state() writes only the entries it parses: start both
	 * from zero so that the comparison covers the whole struct. */
	memset(again, 0, sizeof(*again));
	if (snap_parse_state(blob, len, again, err, sizeof(err)))
		abort();
	if (memcmp(s, again, sizeof(*s)))
		abort();
	free(blob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];

	if (!vm) {
		vm = calloc(1, sizeof(*vm));
		again = calloc(1, sizeof(*again));
		if (!vm || !again)
			abort();
		init_valid();
		work = malloc(valid_len);
		if (!work)
			abort();
	}
	memset(vm, 0, sizeof(*vm));
	if (snap_parse_state(data, size, vm, err, sizeof(err)) == 0)
		check_accepted(vm);

	/* Patches: 3 bytes each, a 16-bit offset into the valid blob and the
	 * byte to store there. */
	memcpy(work, valid, valid_len);
	for (size_t i = 0; i + 3 <= size; i += 3) {
		size_t off = ((size_t)data[i] | (size_t)data[i + 1] << 8) %
			     valid_len;

		work[off] = data[i + 2];
	}
	memset(vm, 0, sizeof(*vm));
	if (snap_parse_state(work, valid_len, vm, err, sizeof(err)) == 0)
		check_accepted(vm);
	return 0;
}
