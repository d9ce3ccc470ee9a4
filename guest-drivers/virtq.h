/*
 * virtq.h - guest (driver) side of the split virtqueue (virtio 1.2, 2.7).
 *
 * Owns: one queue's three rings (allocated once with gd_alloc), the free
 * descriptor list, publishing chains in the avail ring, notification, and
 * taking completions from the used ring. Every value the device writes (used
 * index, id, len) is checked before use: a broken device cannot make the
 * driver touch memory outside its own rings or buffers. Polling only: the
 * avail ring asks for no interrupts. Single-threaded.
 */
#ifndef EMBER_GD_VIRTQ_H
#define EMBER_GD_VIRTQ_H

#include "gd_platform.h"
#include "virtio_mmio.h"

#define GVQ_MAX_SIZE 1024 /* largest queue this driver sets up */

#define GVQ_DESC_F_NEXT 1
#define GVQ_DESC_F_WRITE 2
#define GVQ_AVAIL_F_NO_INTERRUPT 1
#define GVQ_USED_F_NO_NOTIFY 1

/* Ring layouts, virtio 1.2 2.7.5, 2.7.6, 2.7.8 (little-endian: x86). */
struct gvq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
struct gvq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* size entries, then used_event (unused) */
};
struct gvq_used_elem {
	uint32_t id;
	uint32_t len;
};
struct gvq_used {
	uint16_t flags;
	uint16_t idx;
	struct gvq_used_elem ring[]; /* size entries, then avail_event */
};

/* One buffer of a chain: device-readable ("out") or device-writable ("in"). */
struct gvq_buf {
	const void *addr; /* physically contiguous; translated by gd_virt_to_phys */
	uint32_t len;     /* > 0 */
};

struct gvq {
	struct gmmio *dev;
	unsigned idx;            /* queue index on the device */
	uint16_t size;           /* power of two */
	struct gvq_desc *desc;
	struct gvq_avail *avail;
	struct gvq_used *used;
	uint16_t *link;          /* private next links (free list and chains) */
	uint16_t free_head;      /* first free descriptor, chained by link[] */
	uint16_t num_free;
	uint16_t avail_idx;      /* our shadow of avail->idx */
	uint16_t last_used;      /* next used entry to consume */
	uint16_t added;          /* chains published since the last kick */
	/* Per head: the caller's cookie (NULL = head not in flight), the chain
	 * length and its writable byte total (to clamp used.len). */
	void **cookie;
	uint16_t *chain_len;
	uint32_t *in_len;
	unsigned errors;         /* device protocol errors seen */
};

/*
 * Allocates rings for queue `idx` of `dev` with min(want, QueueNumMax)
 * entries rounded down to a power of two, and programs them (the device
 * must be between FEATURES_OK and DRIVER_OK). Returns 0, -GD_ENODEV (queue
 * absent), -GD_ENOMEM, -GD_EINVAL (want 0), -GD_EBUSY.
 */
int gvq_init(struct gvq *q, struct gmmio *dev, unsigned idx, uint16_t want);

/*
 * Publishes a chain of `n_out` device-readable buffers followed by `n_in`
 * device-writable ones (2.7.4.2: readable before writable), with `cookie`
 * (non-NULL) handed back by gvq_get_used(). Not visible to the device
 * until gvq_kick(). Returns the head index, -GD_ENOSPC (not enough free
 * descriptors), -GD_EINVAL (no buffers, a zero length, NULL cookie).
 */
int gvq_add(struct gvq *q, const struct gvq_buf *out, unsigned n_out,
	    const struct gvq_buf *in, unsigned n_in, void *cookie);

/* Makes added chains visible (avail->idx after a write barrier, 2.7.13)
 * and notifies the device unless it set VIRTQ_USED_F_NO_NOTIFY. */
void gvq_kick(struct gvq *q);

/* True when the device has returned chains not yet taken. */
bool gvq_has_used(const struct gvq *q);

/*
 * Takes one completed chain: stores its cookie and the bytes the device
 * wrote (clamped to the chain's writable total) and frees its descriptors.
 * Returns 1, 0 when none is pending, -GD_EIO when the device returned an
 * id that is out of range or not in flight (the entry is skipped and
 * q->errors counted; the queue should then be reset).
 */
int gvq_get_used(struct gvq *q, void **cookie, uint32_t *len);

/*
 * Polls until a chain completes, calling gd_idle() between rounds of
 * `spins` empty polls, or until `timeout_ns` passes (0 = forever, and
 * needs gd_now_ns). Returns as gvq_get_used(), or -GD_ETIMEDOUT.
 */
int gvq_wait_used(struct gvq *q, void **cookie, uint32_t *len,
		  unsigned spins, uint64_t timeout_ns);

/* Free descriptors. */
static inline unsigned gvq_num_free(const struct gvq *q)
{
	return q->num_free;
}

/* Ring sizes in bytes for `size` entries (2.7: 16*size, 6+2*size, 6+8*size). */
size_t gvq_desc_bytes(uint16_t size);
size_t gvq_avail_bytes(uint16_t size);
size_t gvq_used_bytes(uint16_t size);

#endif
