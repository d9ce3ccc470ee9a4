/*
 * virtq.h - the split virtqueue (virtio 1.2, section 2.7), device side.
 *
 * Owns: one queue's guest-programmed addresses, the device's position in the
 * avail ring and the used index, and the walk of descriptor chains. Every
 * guest value (indices, addresses, lengths, flags) is checked here, through
 * mem_gpa_to_hva() only. Not thread-safe: one queue is served by one thread
 * at a time (the owning device's).
 */
#ifndef EMBER_VIRTQ_H
#define EMBER_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "../mem.h"

#define VIRTQ_MAX_SIZE 1024   /* largest queue size any Ember device offers */
#define VIRTQ_MAX_SEGS 64     /* segments one chain may map to */
#define VIRTQ_MAX_CHAIN_BYTES (64ULL << 20) /* sum of one chain's lengths */

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

#define VIRTQ_AVAIL_F_NO_INTERRUPT 1 /* avail->flags (2.7.7) */
#define VIRTQ_USED_F_NO_NOTIFY 1     /* used->flags (2.7.7) */

struct virtq {
	/* Programmed by the driver through the transport. */
	uint16_t size;
	gpa_t desc_gpa, avail_gpa, used_gpa;
	bool ready;
	/* Device state. */
	uint16_t last_avail;   /* next avail entry to consume */
	uint16_t used_idx;     /* our shadow of used->idx */
	bool event_idx;        /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;         /* VIRTIO_F_INDIRECT_DESC negotiated */
	uint16_t signalled_used; /* used_idx at the last interrupt */
	bool signalled_valid;
	/* Host pointers resolved and checked by virtq_activate(). */
	void *desc, *avail, *used;
};

/* One buffer of a chain, already translated and bounds-checked. */
struct virtq_seg {
	uint8_t *hva;
	uint32_t len;
	bool writable; /* device-writable (VIRTQ_DESC_F_WRITE) */
};

struct virtq_chain {
	uint16_t head;          /* returned to virtq_push() */
	unsigned nr_segs;
	struct virtq_seg seg[VIRTQ_MAX_SEGS];
	uint64_t readable_len;  /* sum over device-readable segments */
	uint64_t writable_len;  /* sum over device-writable segments */
};

/*
 * Checks the driver's programming against `max_size` and guest memory: size
 * non-zero, a power of two, <= max_size; desc 16-, avail 2-, used 4-byte
 * aligned; all three rings wholly inside RAM. Resolves the host pointers.
 * Returns 0 or -EINVAL.
 */
int virtq_activate(struct virtq *q, const struct guest_mem *mem,
		   uint16_t max_size);

/* Forgets everything the driver programmed (device reset). */
void virtq_reset(struct virtq *q);

/*
 * Takes the next available chain into *chain. Returns 1 when a chain was
 * taken, 0 when the ring is empty, or a negative errno when the ring is
 * broken (avail index more than `size` ahead, head or next out of range, a
 * loop, a buffer outside RAM, a zero-length or oversize buffer, a readable
 * buffer after a writable one, bad indirect table). After an error the queue
 * must not be used again: the caller sets DEVICE_NEEDS_RESET.
 * Errors: -ENXIO queue not activated; -EOVERFLOW avail idx > size ahead;
 * -ERANGE head or next index out of range; -ELOOP more than `size`
 * descriptors (direct + indirect) in one chain; -EFAULT buffer or indirect
 * table outside RAM; -EMSGSIZE zero-length buffer or chain over
 * VIRTQ_MAX_CHAIN_BYTES; -E2BIG over VIRTQ_MAX_SEGS buffers; -EPROTO readable
 * after writable; -EINVAL bad indirect descriptor (not negotiated, nested,
 * with NEXT, length not a non-zero multiple of 16).
 * With event_idx, an empty ring also publishes avail_event (2.7.10).
 */
int virtq_pop(struct virtq *q, const struct guest_mem *mem,
	      struct virtq_chain *chain);

/* Puts back the chain the last virtq_pop() took, unused: the next pop
 * returns it again. Its avail entry is still in the ring (the driver may
 * not reuse a slot before its chain is used, 2.7.13), so only our position
 * moves. For a device that must not hold a chain across a snapshot. */
void virtq_unpop(struct virtq *q);

/* Returns chain `head` to the driver with `written` bytes written. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t written);

/* After pushes: true when the driver wants an interrupt now (honours
 * VIRTQ_AVAIL_F_NO_INTERRUPT or, with event_idx, used_event). */
bool virtq_needs_notify(struct virtq *q);

/*
 * Asks the driver to notify (enable) or not to bother (disable) when it
 * adds buffers: used->flags NO_NOTIFY (2.7.7), or avail_event with
 * VIRTIO_F_EVENT_IDX (2.7.10). A hint the driver may ignore; after
 * enabling, the caller must look at the avail ring again (a full fence is
 * issued), since buffers may have arrived while notifications were off.
 */
void virtq_set_notify(struct virtq *q, bool enable);

/* True when chains are waiting. */
bool virtq_has_avail(const struct virtq *q);

/* The driver's avail->idx: how many chains it has offered so far (mod
 * 2^16); 0 for a queue that is not live. */
uint16_t virtq_avail_idx(const struct virtq *q);

/* Gather/scatter helpers over a chain's segments, skipping `off` bytes of
 * the readable (or writable) part. Return the number of bytes copied. */
uint64_t virtq_chain_read(const struct virtq_chain *c, uint64_t off,
			  void *dst, uint64_t len);
uint64_t virtq_chain_write(const struct virtq_chain *c, uint64_t off,
			   const void *src, uint64_t len);

#endif
