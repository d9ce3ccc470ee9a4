/*
 * blk.h - virtio-blk (virtio 1.2, section 5.2) over a disk backend.
 *
 * Owns: one disk image (the fd), its config space, request parsing and the
 * requests in flight. The transport (mmio.c) owns the queue registers; the
 * backend (disk.h) does the I/O. Requests arrive through ops->notify on a
 * vCPU thread or the event thread, completions on the event thread (io_uring
 * eventfd) or inline (sync backend); a device mutex serialises them (lock
 * order: device lock, then the transport lock; see mmio.h).
 */
#ifndef EMBER_VBLK_H
#define EMBER_VBLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtio.h"
#include "virtq.h"

struct evloop;

#define VBLK_QUEUE_SIZE 256
#define VBLK_SECTOR_SIZE 512
#define VBLK_SEG_MAX (VIRTQ_MAX_SEGS - 2) /* minus header and status */
#define VBLK_SIZE_MAX (1u << 20)          /* advertised per-segment limit */

/* 5.2.3 feature bits */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9

/* 5.2.6 request types and status values */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_ID_BYTES 20

/* 5.2.4 config layout: capacity (le64) @0, size_max @8, seg_max @12,
 * geometry @16 (unused, zero), blk_size @20. */
#define VBLK_CONFIG_LEN 24

enum disk_kind { DISK_URING, DISK_SYNC };

/*
 * vblk_parse_req() defects, returned negated. When a status byte exists
 * (every error but VBLK_ERR_NO_STATUS), req->status points at it and the
 * device answers IOERR (UNSUPP for VBLK_ERR_UNSUPP); without one the request
 * cannot be answered and the device needs a reset.
 */
enum vblk_req_err {
	VBLK_ERR_NO_STATUS = 1, /* no device-writable byte for the status */
	VBLK_ERR_HDR_NOT_READABLE, /* no device-readable part at all */
	VBLK_ERR_HDR_SHORT,     /* readable part shorter than the 16-byte header */
	VBLK_ERR_DIRECTION,     /* data readable/writable contrary to the type */
	VBLK_ERR_DATA_LEN,      /* zero or not a multiple of 512 */
	VBLK_ERR_RANGE,         /* sector + length overflows or passes capacity */
	VBLK_ERR_UNSUPP,        /* unknown request type */
	VBLK_ERR_READ_ONLY,     /* OUT on a read-only disk */
};

/* A request that passed vblk_parse_req(). Data lies in the readable part
 * after the header (OUT) or at the start of the writable part (IN, GET_ID). */
struct vblk_req {
	uint32_t type;
	uint64_t sector;
	uint64_t data_len;  /* bytes: IN/OUT data, GET_ID bytes to write */
	uint8_t *status;    /* the last device-writable byte of the chain */
};

/*
 * Pure parse of chain `c` (already walked and bounds-checked by virtq_pop)
 * against a disk of `capacity_sectors`: copies the header once and checks
 * it. Returns 0 or -enum vblk_req_err; touches no guest memory but the
 * header read.
 */
int vblk_parse_req(const struct virtq_chain *c, uint64_t capacity_sectors,
		   bool read_only, struct vblk_req *req);

/* Builds the iovecs of a parsed request's data (at most `max`). Returns the
 * count, or -E2BIG. */
int vblk_req_iov(const struct virtq_chain *c, const struct vblk_req *req,
		 struct iovec *iov, unsigned max);

struct vblk;

/*
 * Opens `path` (a regular file or block device; O_RDONLY when read_only)
 * with a backend of `kind`. The io_uring backend registers its ring fd
 * (readable on completions) on `loop` (required for DISK_URING, may be NULL
 * for DISK_SYNC).
 * NULL and *err = -errno on failure: -ENOTBLK when `path` is neither a
 * regular file nor a block device, -EINVAL for a bad `kind` or no loop.
 */
struct vblk *vblk_create(const char *path, bool read_only, enum disk_kind kind,
			 struct evloop *loop, int *err);
/* The same on an open image (duplicated; opened for reading and writing
 * unless read_only: -EBADF otherwise). */
struct vblk *vblk_create_fd(int image_fd, bool read_only, enum disk_kind kind,
			    struct evloop *loop, int *err);
/* Waits for I/O in flight, unregisters from the loop, closes the image.
 * Call it after the transport stopped calling the device (or on NULL). */
void vblk_destroy(struct vblk *b);

/* Completes every request the guest has made available and everything in
 * flight, pushing their used entries (the guest must be paused, so that no
 * new ones arrive). Called before a snapshot. 0 or -errno. */
int vblk_quiesce(struct vblk *b);

/* Device ops for the transport (dev pointer = struct vblk *). vblk_ops
 * offers a writable disk; vblk_get_ops() returns the table matching `b`
 * (with VIRTIO_BLK_F_RO for a read-only disk). Writes to a read-only disk
 * fail with IOERR either way. */
extern const struct virtio_dev_ops vblk_ops;
const struct virtio_dev_ops *vblk_get_ops(const struct vblk *b);

/* Image size in 512-byte sectors. */
uint64_t vblk_capacity(const struct vblk *b);

#endif
