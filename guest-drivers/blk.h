/*
 * blk.h - guest driver for virtio-blk (virtio 1.2, 5.2), polling.
 *
 * Owns: one block device: feature negotiation (VERSION_1, RO, FLUSH only),
 * its request queue, the per-slot request headers and status bytes, and the
 * mapping of the status byte to an error. Synchronous calls (gblk_read,
 * gblk_write, gblk_flush) and an asynchronous pair (gblk_submit, gblk_reap)
 * for several requests in flight. Data buffers belong to the caller and must
 * be physically contiguous. Single-threaded.
 */
#ifndef EMBER_GD_BLK_H
#define EMBER_GD_BLK_H

#include "gd_platform.h"
#include "virtio_mmio.h"
#include "virtq.h"

#define GBLK_SECTOR 512
#define GBLK_DEVICE_ID 2

/* Feature bits, 5.2.3. */
#define GBLK_F_RO 5
#define GBLK_F_FLUSH 9

/* Request types and status values, 5.2.6. */
#define GBLK_T_IN 0
#define GBLK_T_OUT 1
#define GBLK_T_FLUSH 4
#define GBLK_S_OK 0
#define GBLK_S_IOERR 1
#define GBLK_S_UNSUPP 2

/* Largest data buffer of one request. The sync calls split larger I/O. */
#define GBLK_MAX_REQ_BYTES (1u << 20)

/* gblk_submit flag: send a write even though the device is read-only
 * (for tests that check the device refuses it). */
#define GBLK_F_IGNORE_RO 1u

struct gblk_slot {
	/* struct virtio_blk_req's header (5.2.6), device-readable. */
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
	/* Device-writable status byte; 0xff until the device writes it. */
	uint8_t status;
	uint8_t busy;
	void *cookie;
};

struct gblk {
	struct gmmio dev;
	struct gvq vq;
	uint64_t capacity;     /* in 512-byte sectors, from config */
	bool read_only;        /* VIRTIO_BLK_F_RO negotiated */
	bool has_flush;        /* VIRTIO_BLK_F_FLUSH negotiated */
	struct gblk_slot *slot; /* vq.size slots, at most that many in flight */
	unsigned inflight;
	unsigned spins;        /* empty polls before gd_idle() (default 2000) */
};

/*
 * Probes the virtio-mmio window at `base` for a block device and brings it
 * up with a queue of up to `qsize` entries (0 = 128). Returns 0,
 * -GD_ENODEV (not a virtio-blk device), -GD_ENOTSUP, -GD_ENOMEM, -GD_EIO.
 */
int gblk_init(struct gblk *b, uintptr_t base, uint16_t qsize);

/*
 * Synchronous I/O of `nsect` sectors at `sector` into/from `buf`. Returns 0,
 * -GD_EINVAL (range beyond capacity or overflowing), -GD_EROFS (write to a
 * read-only device), -GD_EIO (device said IOERR or broke the protocol),
 * -GD_ENOTSUP (UNSUPP), -GD_EBUSY (async requests still in flight).
 */
int gblk_read(struct gblk *b, uint64_t sector, void *buf, uint64_t nsect);
int gblk_write(struct gblk *b, uint64_t sector, const void *buf,
	       uint64_t nsect);
/* Flushes the device's write cache; 0 at once when FLUSH was not offered
 * (then writes are durable when complete, 5.2.6.2). */
int gblk_flush(struct gblk *b);

/*
 * Queues one request without waiting: `type` GBLK_T_IN/OUT/FLUSH, `len`
 * bytes (a multiple of 512, <= GBLK_MAX_REQ_BYTES; 0 for FLUSH), `cookie`
 * returned by gblk_reap. Call gblk_kick() to start queued requests. Returns
 * 0, -GD_ENOSPC (queue full: reap first), or an error as gblk_read.
 */
int gblk_submit(struct gblk *b, uint32_t type, uint64_t sector, void *buf,
		uint32_t len, void *cookie, unsigned flags);
void gblk_kick(struct gblk *b);
/*
 * Takes one completed request: *cookie and its result (0 or -GD_E*) in
 * *result. With `wait`, polls until one completes. Returns 1, 0 (none
 * completed and !wait, or nothing in flight), -GD_EIO (device broke the
 * ring protocol).
 */
int gblk_reap(struct gblk *b, void **cookie, int *result, bool wait);

#endif
