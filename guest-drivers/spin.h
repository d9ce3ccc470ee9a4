/*
 * spin.h - how long a guest polls a device before it sleeps in the VMM.
 *
 * Owns: the adaptive polling budget of the micro guest's idle loop and of
 * gvsock_wait(). Polling before EMBER_HC_WAIT saves the WAIT exit and the
 * VMM's wake-up when an answer is already on its way; when it is not, the
 * vCPU burns a host CPU, and on a host with fewer cores than busy threads
 * it burns the very CPU that the thread producing the answer (the VMM's
 * event thread, the client, another VM) is waiting for. Measured beside a
 * CPU hog: a fixed 2000-poll spin made one VM serve 24 k invocations/s and
 * two VMs 15 k/s together; no spin at all gave 15.5 k/s and 21.6 k/s
 * (docs/benchmarks.md, "Invocation"; on a quiet host the difference was
 * within the noise, other costs dominating). No fixed budget is right, so
 * it adapts, in the manner of KVM's halt polling (Documentation/virt/kvm/
 * halt-polling.rst), to two signals:
 *
 *   - descheduled: a gap between two polls far longer than a poll takes
 *     means the host ran something else on this vCPU's CPU. If the next
 *     poll still finds nothing, another thread wanted the CPU more than
 *     the spin did: the spin ends at once and the budget halves.
 *   - the sleep that follows a spin that found nothing: short (under the
 *     ceiling) means a longer spin would have caught the event, and the
 *     budget doubles, unless the vCPU was descheduled in the last
 *     GD_SPIN_CALM_NS; long means the spin was wasted, and it halves.
 *
 * A spin that finds something leaves the budget as it is. Time is
 * gd_now_ns() (the guest's TSC clock), read once per poll. Single-threaded
 * like the drivers: one struct per polling loop.
 */
#ifndef EMBER_GD_SPIN_H
#define EMBER_GD_SPIN_H

#include <stdint.h>

/* A gap between two polls longer than this: the vCPU was descheduled (one
 * poll of a virtqueue is well under a microsecond; a host interrupt taken
 * while the guest runs, a few). */
#define GD_SPIN_GAP_NS 20000ULL
/* The budget a growing spin starts from, and below which a shrinking one
 * becomes 0 (poll once, then sleep). */
#define GD_SPIN_MIN_NS 5000ULL
/* The default ceiling: longer than a warm invocation's host-side round
 * trip (40-80 us here), so a closed-loop client's next request is caught. */
#define GD_SPIN_DEFAULT_MAX_NS 100000ULL
/* After a descheduling, the budget does not grow for this long: while
 * other threads want this vCPU's CPU, a spin that would have caught the
 * next event still takes the CPU from them. */
#ifndef GD_SPIN_CALM_NS
#define GD_SPIN_CALM_NS 10000000ULL
#endif
/* And never more polls than this in one spin, whatever the clock says. */
#define GD_SPIN_MAX_POLLS 100000u

struct gd_spin {
	uint64_t budget_ns; /* how long the next spin may poll */
	uint64_t max_ns;    /* the ceiling; 0: never spin */
	uint64_t gave_up;   /* gd_now_ns() when a spin last gave up, else 0 */
	uint64_t descheduled_at; /* gd_now_ns() of the last descheduling */
	/* Counters, for tests and the console's debug output. */
	uint64_t spins, hits, descheduled, grown, shrunk;
};

/* A budget with ceiling max_ns (0: poll once, never spin), starting there:
 * the first invocations of a fresh VM find it as fast as it can be. */
void gd_spin_init(struct gd_spin *s, uint64_t max_ns);

/*
 * Calls poll(arg) until it returns non-zero (returned: news, or a negative
 * error), deadline_ns passes (UINT64_MAX: none; one already past: a
 * single poll, and the budget untouched), the budget is spent or the vCPU is
 * found to have been descheduled (0 then: the caller should sleep, and call
 * gd_spin_woke() when it wakes). poll is always called at least once.
 */
int gd_spin_poll(struct gd_spin *s, int (*poll)(void *), void *arg,
		 uint64_t deadline_ns);

/* The caller slept (WAIT) after gd_spin_poll() returned 0 and has woken:
 * how long it slept adjusts the budget. Harmless when it did not sleep. */
void gd_spin_woke(struct gd_spin *s);

#endif
