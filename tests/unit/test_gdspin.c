/*
 * Unit tests: the guest's adaptive polling budget (guest-drivers/spin.c),
 * on a fake clock that the fake poll moves: each poll takes POLL_NS, a
 * scripted poll may jump the clock (the vCPU descheduled) or find news.
 */
// link: guest-drivers/spin.c
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "guest-drivers/gd_platform.h"
#include "guest-drivers/spin.h"

#define POLL_NS 1000ULL
#define MAX_NS 100000ULL

static uint64_t now = 1;
static bool frozen;     /* the clock does not move (an environment without one) */
static unsigned polls;  /* polls made in this spin */
static unsigned news_at; /* the poll (1-based) that finds news; 0: none */
static unsigned jump_at; /* the poll after which the clock jumps */
static uint64_t jump_ns;

uint64_t gd_now_ns(void)
{
	return frozen ? 0 : now;
}

static int fake_poll(void *arg)
{
	(void)arg;
	polls++;
	now += POLL_NS;
	if (polls == jump_at)
		now += jump_ns;
	return polls == news_at ? 1 : 0;
}

/* The vCPU is descheduled (a gap well past GD_SPIN_GAP_NS) after poll n. */
static void deschedule_after(unsigned n)
{
	jump_at = n;
	jump_ns = 3 * GD_SPIN_GAP_NS;
}

static int spin(struct gd_spin *s, uint64_t deadline)
{
	polls = 0;
	return gd_spin_poll(s, fake_poll, NULL, deadline);
}

static void sleep_ns(struct gd_spin *s, uint64_t ns)
{
	now += ns;
	gd_spin_woke(s);
}

static int setup(void **state)
{
	(void)state;
	now = 1;
	frozen = false;
	news_at = jump_at = 0;
	jump_ns = 0;
	return 0;
}

/* A fresh budget is the ceiling; a spin with nothing to find polls for
 * about that long and gives up; a short sleep after it keeps the ceiling. */
static void test_gives_up_after_budget(void **state)
{
	struct gd_spin s;

	(void)state;
	gd_spin_init(&s, MAX_NS);
	assert_int_equal(s.budget_ns, MAX_NS);
	assert_int_equal(spin(&s, UINT64_MAX), 0);
	assert_int_equal(polls, MAX_NS / POLL_NS);
	assert_true(s.gave_up != 0);
	sleep_ns(&s, 10000);
	assert_int_equal(s.budget_ns, MAX_NS);
	assert_int_equal(s.gave_up, 0);
}

/* News ends the spin with the poll's result and leaves the budget. */
static void test_news_returns_it(void **state)
{
	struct gd_spin s;

	(void)state;
	gd_spin_init(&s, MAX_NS);
	news_at = 7;
	assert_int_equal(spin(&s, UINT64_MAX), 1);
	assert_int_equal(polls, 7);
	assert_int_equal(s.budget_ns, MAX_NS);
	assert_int_equal(s.hits, 1);
	assert_int_equal(s.gave_up, 0);
}

/* A gap between polls, then nothing: descheduled; the spin ends at once,
 * the budget halves, and the sleep after it teaches nothing. */
static void test_descheduled_halves(void **state)
{
	struct gd_spin s;

	(void)state;
	gd_spin_init(&s, MAX_NS);
	deschedule_after(3);
	assert_int_equal(spin(&s, UINT64_MAX), 0);
	assert_int_equal(polls, 4); /* one more look after the gap */
	assert_int_equal(s.descheduled, 1);
	assert_int_equal(s.budget_ns, MAX_NS / 2);
	assert_int_equal(s.gave_up, 0);
	sleep_ns(&s, 1000);
	assert_int_equal(s.budget_ns, MAX_NS / 2);
}

/* While another thread wanted the CPU lately, short sleeps do not grow
 * the budget; once GD_SPIN_CALM_NS passed without that, they do. */
static void test_no_growth_while_contended(void **state)
{
	struct gd_spin s;

	(void)state;
	gd_spin_init(&s, MAX_NS);
	deschedule_after(3);
	assert_int_equal(spin(&s, UINT64_MAX), 0);
	assert_int_equal(s.budget_ns, MAX_NS / 2);
	jump_at = 0;
	assert_int_equal(spin(&s, UINT64_MAX), 0);
	assert_true(s.gave_up != 0);
	sleep_ns(&s, 1000);
	assert_int_equal(s.budget_ns, MAX_NS / 2);
	assert_int_equal(s.grown, 0);
	now += GD_SPIN_CALM_NS;
	spin(&s, UINT64_MAX);
	sleep_ns(&s, 1000);
	assert_int_equal(s.budget_ns, MAX_NS);
	assert_int_equal(s.grown, 1);
}

/* A gap whose next poll finds news (the thread that took the CPU brought
 * it) is no reason to shrink. */
static void test_gap_then_news_keeps_budget(void **state)
{
	struct gd_spin s;

	(void)state;
	gd_spin_init(&s, MAX_NS);
	deschedule_after(3);
	news_at = 4;
	assert_int_equal(spin(&s, UINT64_MAX), 1);
	assert_int_equal(s.descheduled, 0);
	assert_int_equal(s.budget_ns, MAX_NS);
}

/* Long sleeps after spins that found nothing shrink the budget to 0 (one
 * poll, then sleep); short ones grow it back from the minimum, doubling,
 * up to the ceiling and not past it. */
static void test_shrinks_to_zero_and_grows_back(void **state)
{
	struct gd_spin s;
	unsigned rounds = 0;

	(void)state;
	gd_spin_init(&s, MAX_NS);
	while (s.budget_ns) {
		assert_int_equal(spin(&s, UINT64_MAX), 0);
		sleep_ns(&s, 10 * MAX_NS);
		assert_true(++rounds < 10);
	}
	assert_int_equal(rounds, 5); /* 100 50 25 12.5 6.25 -> 0 (< 5 us) */
	assert_int_equal(spin(&s, UINT64_MAX), 0);
	assert_int_equal(polls, 1);
	sleep_ns(&s, 1000);
	assert_int_equal(s.budget_ns, GD_SPIN_MIN_NS);
	for (rounds = 0; s.budget_ns < MAX_NS; rounds++) {
		assert_int_equal(spin(&s, UINT64_MAX), 0);
		sleep_ns(&s, 1000);
		assert_true(rounds < 10);
	}
	assert_int_equal(s.budget_ns, MAX_NS); /* 5 10 20 40 80 -> capped */
	assert_int_equal(rounds, 5);
	spin(&s, UINT64_MAX);
	sleep_ns(&s, 1000);
	assert_int_equal(s.budget_ns, MAX_NS);
}

/* A deadline already past: one poll, budget and sleep accounting alone. */
static void test_deadline_past_polls_once(void **state)
{
	struct gd_spin s;

	(void)state;
	gd_spin_init(&s, MAX_NS);
	assert_int_equal(spin(&s, 0), 0);
	assert_int_equal(polls, 1);
	assert_int_equal(s.gave_up, 0);
	sleep_ns(&s, 1000);
	assert_int_equal(s.budget_ns, MAX_NS);
	/* A deadline inside the budget ends the spin there. */
	assert_int_equal(spin(&s, now + 10 * POLL_NS), 0);
	assert_int_equal(polls, 10);
}

/* A clock that never moves cannot make a spin endless. */
static void test_frozen_clock_is_bounded(void **state)
{
	struct gd_spin s;

	(void)state;
	gd_spin_init(&s, MAX_NS);
	frozen = true;
	assert_int_equal(spin(&s, UINT64_MAX), 0);
	assert_int_equal(polls, GD_SPIN_MAX_POLLS);
}

/* A ceiling of 0 (spin=0): one poll, never any growth. */
static void test_zero_ceiling_never_spins(void **state)
{
	struct gd_spin s;

	(void)state;
	gd_spin_init(&s, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(spin(&s, UINT64_MAX), 0);
		assert_int_equal(polls, 1);
		sleep_ns(&s, 0);
		assert_int_equal(s.budget_ns, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_gives_up_after_budget, setup),
		cmocka_unit_test_setup(test_news_returns_it, setup),
		cmocka_unit_test_setup(test_descheduled_halves, setup),
		cmocka_unit_test_setup(test_no_growth_while_contended, setup),
		cmocka_unit_test_setup(test_gap_then_news_keeps_budget, setup),
		cmocka_unit_test_setup(test_shrinks_to_zero_and_grows_back,
				       setup),
		cmocka_unit_test_setup(test_deadline_past_polls_once, setup),
		cmocka_unit_test_setup(test_frozen_clock_is_bounded, setup),
		cmocka_unit_test_setup(test_zero_ceiling_never_spins, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
