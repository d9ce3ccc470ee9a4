/*
 * spin.c - the adaptive polling budget (spin.h has the rules and why).
 */
#include "spin.h"
#include "gd_platform.h"

void gd_spin_init(struct gd_spin *s, uint64_t max_ns)
{
	*s = (struct gd_spin){ .budget_ns = max_ns, .max_ns = max_ns };
}

static void shrink(struct gd_spin *s)
{
	s->budget_ns /= 2;
	if (s->budget_ns < GD_SPIN_MIN_NS)
		s->budget_ns = 0;
	s->shrunk++;
}

int gd_spin_poll(struct gd_spin *s, int (*poll)(void *), void *arg,
		 uint64_t deadline_ns)
{
	uint64_t start = gd_now_ns(), last = start, now;
	bool gap = false;
	int r;

	s->spins++;
	s->gave_up = 0;
	/* (polls is counted too: a clock that does not move, gd_now_ns() 0
	 * where the environment has none, must not make the spin endless.) */
	for (unsigned polls = 1;; polls++) {
		r = poll(arg);
		if (r != 0) {
			s->hits++;
			return r;
		}
		now = gd_now_ns();
		if (gap) {
			/* Descheduled, and the CPU's other user did not
			 * bring anything for us meanwhile. */
			s->descheduled++;
			s->descheduled_at = now;
			shrink(s);
			return 0;
		}
		/* One more poll after a gap, whatever the budget says: the
		 * thread that took the CPU may have been the one bringing the
		 * news. */
		gap = now - last > GD_SPIN_GAP_NS;
		last = now;
		if (gap)
			continue;
		if (now >= deadline_ns)
			return 0;
		if (now - start >= s->budget_ns || polls >= GD_SPIN_MAX_POLLS) {
			s->gave_up = now;
			return 0;
		}
		__asm__ volatile("pause" ::: "memory");
	}
}

void gd_spin_woke(struct gd_spin *s)
{
	uint64_t now, slept;

	if (!s->gave_up)
		return;
	now = gd_now_ns();
	slept = now - s->gave_up;
	s->gave_up = 0;
	if (slept > s->max_ns) {
		if (s->budget_ns)
			shrink(s);
	} else if (s->budget_ns < s->max_ns &&
		   (!s->descheduled_at ||
		    now - s->descheduled_at >= GD_SPIN_CALM_NS)) {
		s->budget_ns = s->budget_ns ? s->budget_ns * 2 : GD_SPIN_MIN_NS;
		if (s->budget_ns > s->max_ns)
			s->budget_ns = s->max_ns;
		s->grown++;
	}
}
