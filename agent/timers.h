/*
 * timers.h - deadlines kept in a binary min-heap.
 *
 * Owns: the order of armed timers. A struct timer lives inside whatever it
 * times (an instance, a queued invocation) and knows its place in the
 * heap, so cancelling is O(log n) and never searches. No clock, no thread
 * and no lock of its own: the caller (sched.c, under its lock) says what
 * "now" is and runs what is due.
 */
#ifndef EMBER_AGENT_TIMERS_H
#define EMBER_AGENT_TIMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct timer {
	uint64_t at;          /* when it is due (the caller's clock, ns) */
	size_t idx;           /* its place in the heap; SIZE_MAX: not armed */
	void (*fire)(void *ctx, struct timer *t);
};

struct timers {
	struct timer **heap;
	size_t n, cap;
};

/* A timer that is not armed. Call before first use. */
void timer_init(struct timer *t);
static inline bool timer_armed(const struct timer *t)
{
	return t->idx != SIZE_MAX;
}

/* Arms t (re-arms it if armed) to be due at `at`. 0, or -ENOMEM with t
 * left unarmed. */
int timers_arm(struct timers *h, struct timer *t, uint64_t at,
	       void (*fire)(void *ctx, struct timer *t));
/* Disarms t; a no-op if it is not armed. */
void timers_cancel(struct timers *h, struct timer *t);
/* The earliest armed timer, or NULL. */
struct timer *timers_first(const struct timers *h);
/* Disarms and fires, in order, every timer due at or before now, passing
 * ctx; a fired timer may re-arm itself or arm and cancel others. */
void timers_run(struct timers *h, uint64_t now, void *ctx);
void timers_free(struct timers *h);

#endif
