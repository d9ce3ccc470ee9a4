/* Unit tests: the deadline heap (agent/timers.c). Timers fire in order of
 * their deadlines and only once; cancelled ones never fire; re-arming
 * moves a timer; a firing timer may re-arm itself and cancel others; a
 * few thousand random operations keep the heap consistent with a plain
 * list kept beside it. */
// link: agent/timers.c
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/timers.h"

#define N 64

struct rec {
	uint64_t fired_at[N * 8];
	int order[N * 8];
	unsigned n;
	struct timer t[N];
	struct timers *h;
	int rearm_once; /* index that re-arms itself once, or -1 */
	int cancel_on_fire; /* index cancelled when timer 0 fires, or -1 */
};

static void on_fire(void *ctx, struct timer *t)
{
	struct rec *r = ctx;
	int i = (int)(t - r->t);

	r->order[r->n] = i;
	r->fired_at[r->n++] = t->at;
	if (i == r->rearm_once) {
		r->rearm_once = -1;
		assert_int_equal(timers_arm(r->h, t, t->at + 1000, on_fire), 0);
	}
	if (i == 0 && r->cancel_on_fire >= 0)
		timers_cancel(r->h, &r->t[r->cancel_on_fire]);
}

static void test_order_and_cancel(void **state)
{
	struct timers h = { 0 };
	struct rec *r = calloc(1, sizeof(*r));

	(void)state;
	r->h = &h;
	r->rearm_once = -1;
	r->cancel_on_fire = -1;
	for (int i = 0; i < N; i++) {
		timer_init(&r->t[i]);
		assert_false(timer_armed(&r->t[i]));
		/* deadlines scrambled: 37 is coprime with 64 */
		assert_int_equal(timers_arm(&h, &r->t[i],
					    (uint64_t)((i * 37) % N) * 10,
					    on_fire), 0);
		assert_true(timer_armed(&r->t[i]));
	}
	/* Cancel the odd ones; move timer 2 to the very end. */
	for (int i = 1; i < N; i += 2)
		timers_cancel(&h, &r->t[i]);
	timers_cancel(&h, &r->t[1]); /* twice: a no-op */
	assert_int_equal(timers_arm(&h, &r->t[2], 100000, on_fire), 0);
	timers_run(&h, 5000, r);
	for (unsigned k = 1; k < r->n; k++)
		assert_true(r->fired_at[k - 1] <= r->fired_at[k]);
	for (unsigned k = 0; k < r->n; k++) {
		assert_int_equal(r->order[k] % 2, 0);
		assert_int_not_equal(r->order[k], 2);
	}
	assert_int_equal(r->n, N / 2 - 1);
	assert_ptr_equal(timers_first(&h), &r->t[2]);
	timers_run(&h, 100000, r);
	assert_int_equal(r->n, N / 2);
	assert_null(timers_first(&h));
	timers_free(&h);
	free(r);
}

static void test_fire_rearms_and_cancels(void **state)
{
	struct timers h = { 0 };
	struct rec *r = calloc(1, sizeof(*r));

	(void)state;
	r->h = &h;
	r->rearm_once = 0;
	r->cancel_on_fire = 5;
	for (int i = 0; i < 8; i++) {
		timer_init(&r->t[i]);
		assert_int_equal(timers_arm(&h, &r->t[i], (uint64_t)i * 10,
					    on_fire), 0);
	}
	timers_run(&h, 70, r);
	/* 0 fired, re-armed itself to 1000, cancelled 5; 1-4, 6, 7 fired. */
	assert_int_equal(r->n, 7);
	for (unsigned k = 0; k < r->n; k++)
		assert_int_not_equal(r->order[k], 5);
	assert_ptr_equal(timers_first(&h), &r->t[0]);
	timers_run(&h, 1000, r);
	assert_int_equal(r->n, 8);
	assert_int_equal(r->order[7], 0);
	timers_free(&h);
	free(r);
}

static void test_random(void **state)
{
	struct timers h = { 0 };
	struct rec *r = calloc(1, sizeof(*r));
	bool armed[N] = { 0 };

	(void)state;
	r->h = &h;
	r->rearm_once = -1;
	r->cancel_on_fire = -1;
	srand(12345);
	for (int i = 0; i < N; i++)
		timer_init(&r->t[i]);
	for (int step = 0; step < 20000; step++) {
		int i = rand() % N;

		if (rand() % 3) {
			assert_int_equal(timers_arm(&h, &r->t[i],
						    (uint64_t)(rand() % 100000),
						    on_fire), 0);
			armed[i] = true;
		} else {
			timers_cancel(&h, &r->t[i]);
			armed[i] = false;
		}
		/* The root is the minimum of what is armed. */
		if (timers_first(&h)) {
			uint64_t min = UINT64_MAX;

			for (int k = 0; k < N; k++)
				if (armed[k] && r->t[k].at < min)
					min = r->t[k].at;
			assert_int_equal(timers_first(&h)->at, min);
		}
		for (int k = 0; k < N; k++)
			assert_int_equal(timer_armed(&r->t[k]), armed[k]);
	}
	r->n = 0;
	timers_run(&h, UINT64_MAX, r);
	for (unsigned k = 1; k < r->n; k++)
		assert_true(r->fired_at[k - 1] <= r->fired_at[k]);
	assert_null(timers_first(&h));
	timers_free(&h);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_cancel),
		cmocka_unit_test(test_fire_rearms_and_cancels),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
