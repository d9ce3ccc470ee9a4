/*
 * virtio_mmio.h - guest side of the virtio-mmio transport (virtio 1.2, 4.2).
 *
 * Owns: probing one device window (magic, version 2, device id), the device
 * initialization sequence of 3.1.1 (reset, ACKNOWLEDGE, DRIVER, feature
 * negotiation, FEATURES_OK, queue setup, DRIVER_OK), config space reads and
 * queue notification. Does not own the rings (virtq.h) or what a device
 * carries (blk.h, vsock.h). Polling only: interrupts are never acknowledged
 * or wanted. Single-threaded.
 */
#ifndef EMBER_GD_VIRTIO_MMIO_H
#define EMBER_GD_VIRTIO_MMIO_H

#include "gd_platform.h"

/* Register offsets, virtio 1.2 4.2.2 (version 2 "non-legacy" layout). */
#define GMMIO_MAGIC 0x000
#define GMMIO_VERSION 0x004
#define GMMIO_DEVICE_ID 0x008
#define GMMIO_VENDOR_ID 0x00c
#define GMMIO_DEVICE_FEATURES 0x010
#define GMMIO_DEVICE_FEATURES_SEL 0x014
#define GMMIO_DRIVER_FEATURES 0x020
#define GMMIO_DRIVER_FEATURES_SEL 0x024
#define GMMIO_QUEUE_SEL 0x030
#define GMMIO_QUEUE_NUM_MAX 0x034
#define GMMIO_QUEUE_NUM 0x038
#define GMMIO_QUEUE_READY 0x044
#define GMMIO_QUEUE_NOTIFY 0x050
#define GMMIO_INTERRUPT_STATUS 0x060
#define GMMIO_INTERRUPT_ACK 0x064
#define GMMIO_STATUS 0x070
#define GMMIO_QUEUE_DESC_LOW 0x080
#define GMMIO_QUEUE_DESC_HIGH 0x084
#define GMMIO_QUEUE_DRIVER_LOW 0x090
#define GMMIO_QUEUE_DRIVER_HIGH 0x094
#define GMMIO_QUEUE_DEVICE_LOW 0x0a0
#define GMMIO_QUEUE_DEVICE_HIGH 0x0a4
#define GMMIO_CONFIG_GENERATION 0x0fc
#define GMMIO_CONFIG 0x100

#define GMMIO_MAGIC_VALUE 0x74726976 /* "virt" */

/* Device status bits, virtio 1.2 2.1. */
#define GMMIO_S_ACKNOWLEDGE 1
#define GMMIO_S_DRIVER 2
#define GMMIO_S_DRIVER_OK 4
#define GMMIO_S_FEATURES_OK 8
#define GMMIO_S_NEEDS_RESET 64
#define GMMIO_S_FAILED 128

/* Reserved feature bits, virtio 1.2 6. */
#define GMMIO_F_VERSION_1 32

struct gmmio {
	uintptr_t base;       /* window address (identity-mapped gpa) */
	uint32_t device_id;
	uint64_t features;    /* negotiated, valid after gmmio_negotiate */
};

/*
 * Checks the window at `base`: magic "virt", version 2, device id non-zero
 * (0 means "no device here"). Fills d. Returns 0, -GD_ENODEV (no device or
 * a legacy version 1 device, which Ember drivers do not support).
 */
int gmmio_probe(struct gmmio *d, uintptr_t base);

/*
 * Steps 1-3 of virtio 1.2 3.1.1: reset (waiting for status to read back 0),
 * ACKNOWLEDGE, DRIVER. Returns 0 or -GD_EIO if the reset never completes.
 */
int gmmio_begin(struct gmmio *d);

/*
 * Steps 4-6: reads the 64 offered feature bits, acks `wanted & offered`
 * (VERSION_1 is always wanted and must be offered), sets FEATURES_OK and
 * re-reads it. Stores the result in d->features. Returns 0, -GD_ENOTSUP when
 * VERSION_1 is missing, -GD_EIO when the device refuses FEATURES_OK (then the
 * device is marked FAILED).
 */
int gmmio_negotiate(struct gmmio *d, uint64_t wanted);

/* True when negotiated feature `bit` was agreed. */
static inline bool gmmio_has(const struct gmmio *d, unsigned bit)
{
	return (d->features >> bit) & 1;
}

/*
 * Programs queue `idx` with the rings at guest-physical desc/driver/device,
 * `size` entries, then sets QueueReady (4.2.3.2). `size` must not exceed
 * gmmio_queue_max(). Returns 0, -GD_EBUSY if the queue is already ready.
 */
int gmmio_queue_setup(struct gmmio *d, unsigned idx, uint16_t size,
		      uint64_t desc, uint64_t driver, uint64_t device);
/* QueueNumMax of queue `idx` (0 = queue not available). */
uint32_t gmmio_queue_max(struct gmmio *d, unsigned idx);

/* Step 8: DRIVER_OK. Returns 0, or -GD_EIO if the device then reports
 * NEEDS_RESET or FAILED. */
int gmmio_driver_ok(struct gmmio *d);
/* Gives up on the device: sets FAILED (3.1.1 step "if any step fails"). */
void gmmio_fail(struct gmmio *d);
/* Current device status (check for GMMIO_S_NEEDS_RESET after errors). */
uint32_t gmmio_status(struct gmmio *d);

/* Tells the device that queue `idx` has new available buffers. */
static inline void gmmio_notify(struct gmmio *d, unsigned idx)
{
	gd_mmio_write32(d->base + GMMIO_QUEUE_NOTIFY, idx);
}

/* Config space reads at offset `off`, each at the field's width; 64-bit
 * fields are read as two 32-bit halves and retried until ConfigGeneration
 * is stable (4.2.2.2 and 2.5.1). */
uint8_t gmmio_config8(struct gmmio *d, uint32_t off);
uint32_t gmmio_config32(struct gmmio *d, uint32_t off);
uint64_t gmmio_config64(struct gmmio *d, uint32_t off);

#endif
