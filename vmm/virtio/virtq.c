/*
 * virtq.c - the split virtqueue, device side (virtio 1.2, section 2.7).
 *
 * The guest driver is another CPU writing the same memory concurrently and is
 * hostile: every index, address, length and flag it controls is read once
 * into a local copy, checked, and only the copy is used. Guest memory is
 * reached only through mem_gpa_to_hva(). Ring fields shared with the driver
 * (avail->idx, used->idx, the event indices) are accessed with __atomic
 * operations so that the compiler neither tears nor re-reads them, and the
 * orderings below are the ones 2.7.13 (and Linux's virtio_ring.c, the
 * driver side) rely on. All ring fields are little-endian (2.4); Ember only
 * runs on x86-64, but the conversions document the format and cost nothing.
 */
#include "virtq.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

/* 2.7.5: struct virtq_desc, 16 bytes. */
struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
_Static_assert(sizeof(struct vq_desc) == 16, "virtq_desc layout");

/* 2.7.6 / 2.7.8: byte sizes of the three rings for a queue of n entries:
 * avail = flags, idx, ring[n], used_event; used = flags, idx, ring[n] of
 * {id, len}, avail_event. */
#define DESC_BYTES(n) (16ULL * (n))
#define AVAIL_BYTES(n) (6ULL + 2ULL * (n))
#define USED_BYTES(n) (6ULL + 8ULL * (n))

/* Field addresses inside the rings; q->avail/q->used were checked to cover
 * AVAIL_BYTES/USED_BYTES at activation, and every index is masked by
 * size - 1 (size is a power of two), so these stay in bounds. */
static inline uint16_t *avail_flags(const struct virtq *q)
{
	return (uint16_t *)q->avail;
}
static inline uint16_t *avail_idx(const struct virtq *q)
{
	return (uint16_t *)q->avail + 1;
}
static inline uint16_t *avail_ring(const struct virtq *q, uint16_t i)
{
	return (uint16_t *)q->avail + 2 + (i & (q->size - 1));
}
static inline uint16_t *used_event(const struct virtq *q)
{
	return (uint16_t *)q->avail + 2 + q->size;
}
static inline uint16_t *used_idx(const struct virtq *q)
{
	return (uint16_t *)q->used + 1;
}
static inline uint32_t *used_elem(const struct virtq *q, uint16_t i)
{
	/* ring starts 4 bytes in; each element is {le32 id, le32 len} */
	return (uint32_t *)q->used + 1 + 2 * (i & (q->size - 1));
}
static inline uint16_t *avail_event(const struct virtq *q)
{
	return (uint16_t *)((uint8_t *)q->used + 4 + 8ULL * q->size);
}

static inline uint16_t load16(const uint16_t *p, int order)
{
	return le16toh(__atomic_load_n(p, order));
}

int virtq_activate(struct virtq *q, const struct guest_mem *mem,
		   uint16_t max_size)
{
	void *desc, *avail, *used;

	/* 2.7 / 4.2.2: size non-zero, a power of two, within QueueNumMax. */
	if (q->size == 0 || (q->size & (q->size - 1)) != 0 ||
	    q->size > max_size || q->size > VIRTQ_MAX_SIZE)
		return -EINVAL;
	/* 2.7 table "Virtqueue Part Alignment": 16, 2 and 4 bytes. */
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3))
		return -EINVAL;
	desc = mem_gpa_to_hva(mem, q->desc_gpa, DESC_BYTES(q->size));
	avail = mem_gpa_to_hva(mem, q->avail_gpa, AVAIL_BYTES(q->size));
	used = mem_gpa_to_hva(mem, q->used_gpa, USED_BYTES(q->size));
	if (!desc || !avail || !used)
		return -EINVAL;
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	/* The device's view starts where the driver's does: a freshly set up
	 * queue has both indices at 0 (2.7.6: the driver initialises them). */
	q->last_avail = 0;
	q->used_idx = 0;
	q->signalled_used = 0;
	q->signalled_valid = false;
	return 0;
}

void virtq_reset(struct virtq *q)
{
	memset(q, 0, sizeof(*q));
}

/* Copies descriptor `i` of `table` (already bounds-checked by the caller)
 * once; the guest may rewrite it concurrently, only the copy is used. */
static void read_desc(const void *table, uint32_t i, struct vq_desc *d)
{
	struct vq_desc raw;

	memcpy(&raw, (const uint8_t *)table + 16ULL * i, sizeof(raw));
	d->addr = le64toh(raw.addr);
	d->len = le32toh(raw.len);
	d->flags = le16toh(raw.flags);
	d->next = le16toh(raw.next);
}

/* Appends one direct buffer to the chain after the per-buffer checks. */
static int add_seg(struct virtq_chain *c, const struct guest_mem *mem,
		   const struct vq_desc *d)
{
	bool writable = d->flags & VIRTQ_DESC_F_WRITE;
	uint8_t *hva;

	if (d->len == 0 || d->len > VIRTQ_MAX_CHAIN_BYTES)
		return -EMSGSIZE;
	/* 2.7.4.2: device-readable buffers come before device-writable
	 * ones; parsers rely on it (the readable part is a prefix). */
	if (!writable && c->writable_len)
		return -EPROTO;
	if (c->nr_segs >= VIRTQ_MAX_SEGS)
		return -E2BIG;
	if (c->readable_len + c->writable_len + d->len > VIRTQ_MAX_CHAIN_BYTES)
		return -EMSGSIZE;
	hva = mem_gpa_to_hva(mem, d->addr, d->len);
	if (!hva)
		return -EFAULT;
	c->seg[c->nr_segs++] = (struct virtq_seg){
		.hva = hva, .len = d->len, .writable = writable,
	};
	if (writable)
		c->writable_len += d->len;
	else
		c->readable_len += d->len;
	return 0;
}

/*
 * Walks an indirect table (2.7.5.3): `d` is the descriptor carrying
 * VIRTQ_DESC_F_INDIRECT. Entries count against the same hop budget as the
 * main chain, so a table cannot make the walk longer than the queue size.
 */
static int walk_indirect(const struct virtq *q, const struct guest_mem *mem,
			 const struct vq_desc *d, unsigned *hops,
			 struct virtq_chain *c)
{
	const void *table;
	uint32_t n, i = 0;
	struct vq_desc e;
	int ret;

	if (!q->indirect)
		return -EINVAL; /* feature not negotiated */
	/* 2.7.5.3.1: the driver MUST NOT set INDIRECT and NEXT together. */
	if (d->flags & VIRTQ_DESC_F_NEXT)
		return -EINVAL;
	if (d->len == 0 || d->len % 16 != 0)
		return -EINVAL;
	n = d->len / 16;
	table = mem_gpa_to_hva(mem, d->addr, d->len);
	if (!table)
		return -EFAULT;
	for (;;) {
		if (++*hops > q->size)
			return -ELOOP;
		read_desc(table, i, &e);
		/* 2.7.5.3.1: no nested indirect tables. */
		if (e.flags & VIRTQ_DESC_F_INDIRECT)
			return -EINVAL;
		ret = add_seg(c, mem, &e);
		if (ret)
			return ret;
		if (!(e.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		i = e.next;
		if (i >= n)
			return -ERANGE;
	}
}

/* Number of chains the driver has made available beyond last_avail, read
 * with acquire so that the ring entries and descriptors it published before
 * bumping idx (2.7.13.2 step 4: a write barrier, then idx) are visible. */
static int avail_pending(const struct virtq *q, uint16_t *pending)
{
	uint16_t idx = load16(avail_idx(q), __ATOMIC_ACQUIRE);

	*pending = (uint16_t)(idx - q->last_avail);
	/* The driver can never have more than `size` chains outstanding; a
	 * bigger distance is a corrupt or hostile index. */
	return *pending > q->size ? -EOVERFLOW : 0;
}

int virtq_pop(struct virtq *q, const struct guest_mem *mem,
	      struct virtq_chain *chain)
{
	struct vq_desc d;
	uint16_t pending, head;
	unsigned hops = 0;
	uint32_t i;
	int ret;

	if (!q->desc)
		return -ENXIO;
	ret = avail_pending(q, &pending);
	if (ret)
		return ret;
	if (pending == 0) {
		if (!q->event_idx)
			return 0;
		/* 2.7.10: ask for a notification when the driver adds the
		 * next chain, then look again: the driver may have added one
		 * after our read but before seeing avail_event. The full
		 * fence orders our store before the re-read (store->load is
		 * the one order x86 does not give for free). */
		__atomic_store_n(avail_event(q), htole16(q->last_avail),
				 __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		ret = avail_pending(q, &pending);
		if (ret || pending == 0)
			return ret;
	}

	head = load16(avail_ring(q, q->last_avail), __ATOMIC_RELAXED);
	if (head >= q->size)
		return -ERANGE;
	chain->head = head;
	chain->nr_segs = 0;
	chain->readable_len = 0;
	chain->writable_len = 0;

	for (i = head;;) {
		/* At most `size` descriptors in one chain (2.7.5.2), which
		 * also ends any loop through `next`. */
		if (++hops > q->size)
			return -ELOOP;
		read_desc(q->desc, i, &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			ret = walk_indirect(q, mem, &d, &hops, chain);
			if (ret)
				return ret;
			break; /* INDIRECT without NEXT ends the chain */
		}
		ret = add_seg(chain, mem, &d);
		if (ret)
			return ret;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		i = d.next;
		if (i >= q->size)
			return -ERANGE;
	}
	q->last_avail++;
	return 1;
}

void virtq_unpop(struct virtq *q)
{
	q->last_avail--;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
	uint32_t *elem;

	if (!q->used)
		return;
	elem = used_elem(q, q->used_idx);
	__atomic_store_n(&elem[0], htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(&elem[1], htole32(written), __ATOMIC_RELAXED);
	q->used_idx++;
	/* 2.7.8.2 / 2.7.13.3: the element must be visible before the index
	 * that publishes it: a release store. */
	__atomic_store_n(used_idx(q), htole16(q->used_idx), __ATOMIC_RELEASE);
}

bool virtq_needs_notify(struct virtq *q)
{
	uint16_t old = q->signalled_used, new = q->used_idx, event;
	bool need;

	if (!q->used)
		return false;
	if (q->signalled_valid && old == new)
		return false;
	/* Our used->idx store must be globally visible before we read the
	 * driver's suppression state, or both sides may decide the other
	 * will act (the driver re-enables, reads a stale idx, sleeps). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (q->event_idx) {
		/* 2.7.10: interrupt iff used_event lies in (old, new]. */
		event = load16(used_event(q), __ATOMIC_RELAXED);
		need = !q->signalled_valid ||
		       (uint16_t)(new - event - 1) < (uint16_t)(new - old);
	} else {
		/* 2.7.7: VIRTQ_AVAIL_F_NO_INTERRUPT is a hint we honour. */
		need = !(load16(avail_flags(q), __ATOMIC_RELAXED) &
			 VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
	q->signalled_used = new;
	q->signalled_valid = true;
	return need;
}

void virtq_set_notify(struct virtq *q, bool enable)
{
	uint16_t *flags;

	if (!q->used)
		return;
	flags = (uint16_t *)q->used; /* used->flags, 2.7.8 */
	if (q->event_idx) {
		/* 2.7.10: the driver notifies when it moves avail->idx past
		 * avail_event; "off" is expressed by leaving it behind. */
		if (!enable)
			return;
		__atomic_store_n(avail_event(q), htole16(q->last_avail),
				 __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(flags, htole16(enable ? 0 :
						  VIRTQ_USED_F_NO_NOTIFY),
				 __ATOMIC_RELAXED);
		/* Turning notifications off needs no ordering: at worst the
		 * driver sends one notification too many. The device calls
		 * this once per batch of packets, so no fence on that path. */
		if (!enable)
			return;
	}
	/* The store must be visible before the caller re-reads avail->idx,
	 * or a buffer added in between would go unnoticed by both sides. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool virtq_has_avail(const struct virtq *q)
{
	if (!q->avail)
		return false;
	return load16(avail_idx(q), __ATOMIC_ACQUIRE) != q->last_avail;
}

uint16_t virtq_avail_idx(const struct virtq *q)
{
	return q->avail ? load16(avail_idx(q), __ATOMIC_ACQUIRE) : 0;
}

/* Shared walk for the two copy helpers: the readable part is a prefix of the
 * segments (add_seg enforces it), the writable part the rest. */
static uint64_t chain_copy(const struct virtq_chain *c, bool writable,
			   uint64_t off, uint8_t *buf, uint64_t len)
{
	uint64_t done = 0;

	for (unsigned i = 0; i < c->nr_segs && done < len; i++) {
		const struct virtq_seg *s = &c->seg[i];
		uint64_t n;

		if (s->writable != writable)
			continue;
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		n = s->len - off;
		if (n > len - done)
			n = len - done;
		if (writable)
			memcpy(s->hva + off, buf + done, n);
		else
			memcpy(buf + done, s->hva + off, n);
		done += n;
		off = 0;
	}
	return done;
}

uint64_t virtq_chain_read(const struct virtq_chain *c, uint64_t off,
			  void *dst, uint64_t len)
{
	return chain_copy(c, false, off, dst, len);
}

uint64_t virtq_chain_write(const struct virtq_chain *c, uint64_t off,
			   const void *src, uint64_t len)
{
	/* chain_copy only reads from buf when !writable; the cast keeps one
	 * walker for both directions. */
	return chain_copy(c, true, off, (uint8_t *)(uintptr_t)src, len);
}
