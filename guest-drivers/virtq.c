/*
 * virtq.c - guest side of the split virtqueue (virtio 1.2, 2.7).
 * See virtq.h for the contract.
 */
#include "virtq.h"

size_t gvq_desc_bytes(uint16_t size)
{
	return 16 * (size_t)size;
}

size_t gvq_avail_bytes(uint16_t size)
{
	return 6 + 2 * (size_t)size;
}

size_t gvq_used_bytes(uint16_t size)
{
	return 6 + 8 * (size_t)size;
}

static inline uint16_t read_used_idx(const struct gvq *q)
{
	return *(volatile const uint16_t *)&q->used->idx;
}

int gvq_init(struct gvq *q, struct gmmio *dev, unsigned idx, uint16_t want)
{
	uint32_t max;
	uint16_t size, i;
	int ret;

	memset(q, 0, sizeof(*q));
	if (want == 0)
		return -GD_EINVAL;
	max = gmmio_queue_max(dev, idx);
	if (max == 0)
		return -GD_ENODEV;
	if (want > GVQ_MAX_SIZE)
		want = GVQ_MAX_SIZE;
	if (want > max)
		want = (uint16_t)max;
	/* Split queues need a power-of-two size (2.7). */
	for (size = 1; (uint32_t)size * 2 <= want; size *= 2)
		;

	/* Alignment of the rings, 2.7: desc 16, avail 2, used 4. Page-align
	 * desc and used anyway, as legacy devices wanted. */
	q->desc = gd_alloc(gvq_desc_bytes(size), 4096);
	q->avail = gd_alloc(gvq_avail_bytes(size), 2);
	q->used = gd_alloc(gvq_used_bytes(size), 4096);
	q->cookie = gd_alloc(sizeof(*q->cookie) * size, 8);
	q->chain_len = gd_alloc(sizeof(*q->chain_len) * size, 2);
	q->in_len = gd_alloc(sizeof(*q->in_len) * size, 4);
	q->link = gd_alloc(sizeof(*q->link) * size, 2);
	if (!q->desc || !q->avail || !q->used || !q->cookie || !q->chain_len ||
	    !q->in_len || !q->link)
		return -GD_ENOMEM; /* gd_alloc memory is never freed */

	q->dev = dev;
	q->idx = idx;
	q->size = size;
	for (i = 0; i < size; i++)
		q->link[i] = (uint16_t)(i + 1);
	q->free_head = 0;
	q->num_free = size;
	/* We poll: ask the device not to interrupt (2.7.7, a hint only). */
	q->avail->flags = GVQ_AVAIL_F_NO_INTERRUPT;

	ret = gmmio_queue_setup(dev, idx, size, gd_virt_to_phys(q->desc),
				gd_virt_to_phys(q->avail),
				gd_virt_to_phys(q->used));
	return ret;
}

int gvq_add(struct gvq *q, const struct gvq_buf *out, unsigned n_out,
	    const struct gvq_buf *in, unsigned n_in, void *cookie)
{
	unsigned n = n_out + n_in, i;
	uint16_t head, d;
	uint32_t in_total = 0;

	if (n == 0 || !cookie || n_out > q->size || n_in > q->size)
		return -GD_EINVAL;
	for (i = 0; i < n_out; i++)
		if (out[i].len == 0)
			return -GD_EINVAL;
	for (i = 0; i < n_in; i++) {
		if (in[i].len == 0 || in_total + in[i].len < in_total)
			return -GD_EINVAL;
		in_total += in[i].len;
	}
	if (n > q->num_free)
		return -GD_ENOSPC;

	head = q->free_head;
	d = head;
	for (i = 0; i < n; i++) {
		const struct gvq_buf *b = i < n_out ? &out[i] : &in[i - n_out];
		struct gvq_desc *desc = &q->desc[d];

		desc->addr = gd_virt_to_phys(b->addr);
		desc->len = b->len;
		desc->flags = (uint16_t)(i < n_out ? 0 : GVQ_DESC_F_WRITE);
		/* The free list link becomes the chain link. */
		desc->next = q->link[d];
		if (i + 1 < n)
			desc->flags |= GVQ_DESC_F_NEXT;
		d = q->link[d];
	}
	q->free_head = d;
	q->num_free = (uint16_t)(q->num_free - n);
	q->cookie[head] = cookie;
	q->chain_len[head] = (uint16_t)n;
	q->in_len[head] = in_total;

	q->avail->ring[q->avail_idx & (q->size - 1)] = head;
	q->avail_idx++;
	q->added++;
	return head;
}

void gvq_kick(struct gvq *q)
{
	uint16_t flags;

	if (q->added == 0)
		return;
	/* 2.7.13: descriptors and ring entries before the index update. */
	gd_wmb();
	*(volatile uint16_t *)&q->avail->idx = q->avail_idx;
	q->added = 0;
	/* 2.7.13 (notification suppression): the index store must be visible
	 * before we read the device's flags, or we could miss a wakeup. */
	gd_mb();
	flags = *(volatile uint16_t *)&q->used->flags;
	if (!(flags & GVQ_USED_F_NO_NOTIFY))
		gmmio_notify(q->dev, q->idx);
}

bool gvq_has_used(const struct gvq *q)
{
	return read_used_idx(q) != q->last_used;
}

int gvq_get_used(struct gvq *q, void **cookie, uint32_t *len)
{
	uint16_t used_idx = read_used_idx(q), n, d, i;
	struct gvq_used_elem e;

	if (used_idx == q->last_used)
		return 0;
	/* The device may not run more than a ring ahead of us. */
	if ((uint16_t)(used_idx - q->last_used) > q->size) {
		q->errors++;
		return -GD_EIO;
	}
	/* 2.7.13: read the entry only after seeing the index. */
	gd_rmb();
	e = *(volatile struct gvq_used_elem *)&q->used->ring[q->last_used &
							   (q->size - 1)];
	q->last_used++;
	if (e.id >= q->size || !q->cookie[e.id]) {
		q->errors++;
		return -GD_EIO;
	}

	*cookie = q->cookie[e.id];
	if (e.len > q->in_len[e.id]) {
		q->errors++; /* device claims more than we offered */
		e.len = q->in_len[e.id];
	}
	*len = e.len;

	/* Return the chain to the free list. It is still linked through our
	 * private q->link[] in the order we built it; descriptors are only
	 * read back from that copy, never from the shared table. */
	n = q->chain_len[e.id];
	d = (uint16_t)e.id;
	for (i = 1; i < n; i++)
		d = q->link[d];
	q->link[d] = q->free_head;
	q->free_head = (uint16_t)e.id;
	q->num_free = (uint16_t)(q->num_free + n);
	q->cookie[e.id] = NULL;
	return 1;
}

int gvq_wait_used(struct gvq *q, void **cookie, uint32_t *len,
		  unsigned spins, uint64_t timeout_ns)
{
	uint64_t deadline = 0;
	unsigned n = 0;
	int ret;

	if (timeout_ns) {
		uint64_t now = gd_now_ns();

		if (now)
			deadline = now + timeout_ns;
	}
	for (;;) {
		ret = gvq_get_used(q, cookie, len);
		if (ret != 0)
			return ret;
		if (++n < spins) {
			__asm__ volatile("pause" ::: "memory");
			continue;
		}
		n = 0;
		if (deadline && gd_now_ns() >= deadline)
			return -GD_ETIMEDOUT;
		gd_idle();
	}
}
