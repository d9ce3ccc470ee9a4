/*
 * virtio_mmio.c - guest side of the virtio-mmio transport (virtio 1.2, 4.2).
 * See virtio_mmio.h for the contract.
 */
#include "virtio_mmio.h"

/* How many times to re-read Status after a reset before giving up. A
 * conforming device completes the reset during the write itself; the loop
 * only exists because 4.2.3.1.1 lets it take a while. */
#define GMMIO_RESET_SPINS 1000000

static inline uint32_t rd(struct gmmio *d, uint32_t off)
{
	return gd_mmio_read32(d->base + off);
}

static inline void wr(struct gmmio *d, uint32_t off, uint32_t v)
{
	gd_mmio_write32(d->base + off, v);
}

int gmmio_probe(struct gmmio *d, uintptr_t base)
{
	d->base = base;
	d->device_id = 0;
	d->features = 0;
	if (rd(d, GMMIO_MAGIC) != GMMIO_MAGIC_VALUE)
		return -GD_ENODEV;
	/* Version 1 is the legacy interface (4.2.4); we only speak 2. */
	if (rd(d, GMMIO_VERSION) != 2)
		return -GD_ENODEV;
	d->device_id = rd(d, GMMIO_DEVICE_ID);
	if (d->device_id == 0)
		return -GD_ENODEV;
	return 0;
}

uint32_t gmmio_status(struct gmmio *d)
{
	return rd(d, GMMIO_STATUS);
}

static void add_status(struct gmmio *d, uint32_t bits)
{
	wr(d, GMMIO_STATUS, rd(d, GMMIO_STATUS) | bits);
}

int gmmio_begin(struct gmmio *d)
{
	long i;

	/* 4.2.3.1.1: write 0 to Status, then wait until it reads back 0
	 * before re-initializing. */
	wr(d, GMMIO_STATUS, 0);
	for (i = 0; i < GMMIO_RESET_SPINS; i++)
		if (rd(d, GMMIO_STATUS) == 0)
			break;
	if (i == GMMIO_RESET_SPINS)
		return -GD_EIO;
	add_status(d, GMMIO_S_ACKNOWLEDGE);
	add_status(d, GMMIO_S_DRIVER);
	return 0;
}

int gmmio_negotiate(struct gmmio *d, uint64_t wanted)
{
	uint64_t offered;
	uint32_t lo, hi;

	wr(d, GMMIO_DEVICE_FEATURES_SEL, 0);
	lo = rd(d, GMMIO_DEVICE_FEATURES);
	wr(d, GMMIO_DEVICE_FEATURES_SEL, 1);
	hi = rd(d, GMMIO_DEVICE_FEATURES);
	offered = ((uint64_t)hi << 32) | lo;

	wanted |= 1ULL << GMMIO_F_VERSION_1;
	/* Without VERSION_1 the device is legacy-only (6.1): refuse it. */
	if (!(offered & (1ULL << GMMIO_F_VERSION_1))) {
		gmmio_fail(d);
		return -GD_ENOTSUP;
	}
	d->features = wanted & offered;
	wr(d, GMMIO_DRIVER_FEATURES_SEL, 0);
	wr(d, GMMIO_DRIVER_FEATURES, (uint32_t)d->features);
	wr(d, GMMIO_DRIVER_FEATURES_SEL, 1);
	wr(d, GMMIO_DRIVER_FEATURES, (uint32_t)(d->features >> 32));

	/* 3.1.1 steps 5-6: the device may refuse the subset we picked. */
	add_status(d, GMMIO_S_FEATURES_OK);
	if (!(rd(d, GMMIO_STATUS) & GMMIO_S_FEATURES_OK)) {
		gmmio_fail(d);
		return -GD_EIO;
	}
	return 0;
}

uint32_t gmmio_queue_max(struct gmmio *d, unsigned idx)
{
	wr(d, GMMIO_QUEUE_SEL, idx);
	return rd(d, GMMIO_QUEUE_NUM_MAX);
}

int gmmio_queue_setup(struct gmmio *d, unsigned idx, uint16_t size,
		      uint64_t desc, uint64_t driver, uint64_t device)
{
	/* 4.2.3.2: select, check the queue is not in use, program, ready. */
	wr(d, GMMIO_QUEUE_SEL, idx);
	if (rd(d, GMMIO_QUEUE_READY) != 0)
		return -GD_EBUSY;
	wr(d, GMMIO_QUEUE_NUM, size);
	wr(d, GMMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	wr(d, GMMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	wr(d, GMMIO_QUEUE_DRIVER_LOW, (uint32_t)driver);
	wr(d, GMMIO_QUEUE_DRIVER_HIGH, (uint32_t)(driver >> 32));
	wr(d, GMMIO_QUEUE_DEVICE_LOW, (uint32_t)device);
	wr(d, GMMIO_QUEUE_DEVICE_HIGH, (uint32_t)(device >> 32));
	/* The ring memory was zeroed before this point; the device reads it
	 * only after it sees QueueReady, and an MMIO write is a full exit. */
	gd_wmb();
	wr(d, GMMIO_QUEUE_READY, 1);
	return 0;
}

int gmmio_driver_ok(struct gmmio *d)
{
	gd_wmb();
	add_status(d, GMMIO_S_DRIVER_OK);
	if (rd(d, GMMIO_STATUS) & (GMMIO_S_NEEDS_RESET | GMMIO_S_FAILED))
		return -GD_EIO;
	return 0;
}

void gmmio_fail(struct gmmio *d)
{
	add_status(d, GMMIO_S_FAILED);
}

uint8_t gmmio_config8(struct gmmio *d, uint32_t off)
{
	return gd_mmio_read8(d->base + GMMIO_CONFIG + off);
}

uint32_t gmmio_config32(struct gmmio *d, uint32_t off)
{
	return gd_mmio_read32(d->base + GMMIO_CONFIG + off);
}

uint64_t gmmio_config64(struct gmmio *d, uint32_t off)
{
	uint32_t gen, lo, hi;
	int tries = 0;

	/* 2.5.1: a 64-bit field read in two halves may tear across a config
	 * change; retry while ConfigGeneration moves (bounded: a device that
	 * changes it forever gets its last value). */
	do {
		gen = rd(d, GMMIO_CONFIG_GENERATION);
		lo = gmmio_config32(d, off);
		hi = gmmio_config32(d, off + 4);
	} while (rd(d, GMMIO_CONFIG_GENERATION) != gen && ++tries < 1000);
	return ((uint64_t)hi << 32) | lo;
}
