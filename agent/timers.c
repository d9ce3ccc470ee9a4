/*
 * timers.c - deadlines kept in a binary min-heap: see timers.h.
 */
#include "agent/timers.h"

#include <errno.h>
#include <stdlib.h>

void timer_init(struct timer *t)
{
	t->at = 0;
	t->idx = SIZE_MAX;
	t->fire = NULL;
}

static void swap(struct timers *h, size_t a, size_t b)
{
	struct timer *t = h->heap[a];

	h->heap[a] = h->heap[b];
	h->heap[b] = t;
	h->heap[a]->idx = a;
	h->heap[b]->idx = b;
}

static void sift_up(struct timers *h, size_t i)
{
	while (i > 0 && h->heap[(i - 1) / 2]->at > h->heap[i]->at) {
		swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void sift_down(struct timers *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < h->n && h->heap[l]->at < h->heap[m]->at)
			m = l;
		if (r < h->n && h->heap[r]->at < h->heap[m]->at)
			m = r;
		if (m == i)
			return;
		swap(h, i, m);
		i = m;
	}
}

void timers_cancel(struct timers *h, struct timer *t)
{
	size_t i = t->idx;

	if (i == SIZE_MAX)
		return;
	h->n--;
	if (i != h->n) {
		h->heap[i] = h->heap[h->n];
		h->heap[i]->idx = i;
		sift_down(h, i);
		sift_up(h, i);
	}
	t->idx = SIZE_MAX;
}

int timers_arm(struct timers *h, struct timer *t, uint64_t at,
	       void (*fire)(void *ctx, struct timer *t))
{
	timers_cancel(h, t);
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		struct timer **p = realloc(h->heap, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		h->heap = p;
		h->cap = cap;
	}
	t->at = at;
	t->fire = fire;
	t->idx = h->n;
	h->heap[h->n++] = t;
	sift_up(h, t->idx);
	return 0;
}

struct timer *timers_first(const struct timers *h)
{
	return h->n ? h->heap[0] : NULL;
}

void timers_run(struct timers *h, uint64_t now, void *ctx)
{
	while (h->n && h->heap[0]->at <= now) {
		struct timer *t = h->heap[0];

		timers_cancel(h, t);
		t->fire(ctx, t);
	}
}

void timers_free(struct timers *h)
{
	free(h->heap);
	h->heap = NULL;
	h->n = h->cap = 0;
}
