/*
 * time.c - clocks and sleeping for the handler.
 *
 * CLOCK_MONOTONIC counts TSC ticks since boot, converted with
 * boot_info.tsc_khz; CLOCK_REALTIME is boot_info.wall_ns (the host's clock
 * when the guest TSC read boot_info.wall_tsc, rewritten at each restore).
 * RDTSC runs natively at CPL3. Without a TSC
 * frequency (tsc_khz == 0) a 1 GHz TSC is assumed. Sleeps are EMBER_HC_WAIT
 * hypercalls with a timeout when no other thread can run (sched.c).
 */
#include "kernel.h"

#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#define CLOCK_PROCESS_CPUTIME_ID 2
#define CLOCK_THREAD_CPUTIME_ID 3
#define CLOCK_MONOTONIC_RAW 4
#define CLOCK_REALTIME_COARSE 5
#define CLOCK_MONOTONIC_COARSE 6
#define CLOCK_BOOTTIME 7
#define TIMER_ABSTIME 1

struct ktimespec {
	int64_t tv_sec, tv_nsec;
};

static uint64_t tsc0, khz;

void time_init(void)
{
	tsc0 = rdtsc();
	khz = boot_info->tsc_khz ? boot_info->tsc_khz : 1000000;
}

uint64_t time_mono_ns(void)
{
	unsigned __int128 t = rdtsc() - tsc0;

	/* ticks * 10^6 / kHz, in 128 bits: no overflow for centuries. */
	return (uint64_t)(t * 1000000u / khz);
}

static uint64_t ticks_to_ns(uint64_t ticks)
{
	return (uint64_t)((unsigned __int128)ticks * 1000000u / khz);
}

/* A restore from a snapshot bumps boot_info->generation after rewriting
 * seed, wall_ns and wall_tsc (ember/abi.h): reseed, and the clock below
 * follows the new reference by itself. */
void micro_check_clone(void)
{
	static uint64_t seen;
	uint64_t g = *(volatile const uint64_t *)&boot_info->generation;

	if (g != seen) {
		seen = g;
		__asm__ volatile("" ::: "memory"); /* generation first */
		random_reseed(boot_info->seed);
	}
}

uint64_t time_real_ns(void)
{
	uint64_t now = rdtsc();

	micro_check_clone();
	/* wall_ns was the host's time when the TSC read wall_tsc. */
	if (boot_info->wall_tsc && now >= boot_info->wall_tsc)
		return boot_info->wall_ns + ticks_to_ns(now - boot_info->wall_tsc);
	return boot_info->wall_ns + time_mono_ns();
}

long time_put_timespec(void *ts, uint64_t ns)
{
	struct ktimespec t = { (int64_t)(ns / 1000000000u),
			       (int64_t)(ns % 1000000000u) };

	if (!mm_access_ok(ts, sizeof(t)))
		return -EFAULT;
	memcpy(ts, &t, sizeof(t));
	return 0;
}

long sys_clock_gettime(int clk, void *ts)
{
	switch (clk) {
	case CLOCK_REALTIME:
	case CLOCK_REALTIME_COARSE:
		return time_put_timespec(ts, time_real_ns());
	case CLOCK_MONOTONIC:
	case CLOCK_MONOTONIC_RAW:
	case CLOCK_MONOTONIC_COARSE:
	case CLOCK_BOOTTIME:
	/* CPU time is not accounted: it reads as elapsed time (the vCPU
	 * never stops running the handler, whichever thread). */
	case CLOCK_PROCESS_CPUTIME_ID:
	case CLOCK_THREAD_CPUTIME_ID:
		return time_put_timespec(ts, time_mono_ns());
	default:
		return -EINVAL;
	}
}

long sys_gettimeofday(void *tv, void *tz)
{
	uint64_t ns = time_real_ns();
	int64_t v[2] = { (int64_t)(ns / 1000000000u),
			 (int64_t)(ns % 1000000000u / 1000) };

	if (tv) {
		if (!mm_access_ok(tv, sizeof(v)))
			return -EFAULT;
		memcpy(tv, v, sizeof(v));
	}
	if (tz) {
		if (!mm_access_ok(tz, 8))
			return -EFAULT;
		memset(tz, 0, 8);
	}
	return 0;
}

bool micro_wait(uint64_t timeout_ns)
{
	return hypercall(EMBER_HC_WAIT, timeout_ns) == 1;
}

/* The calling thread sleeps until CLOCK_MONOTONIC reaches `until` (other
 * threads run meanwhile). A signal ends the sleep early: -EINTR, with the
 * time left in *rem if given (nanosleep never restarts after a handler). */
static char sleepers; /* the channel: nobody wakes it, deadlines do */
static long sleep_until(uint64_t until, void *rem)
{
	for (;;) {
		uint64_t now = time_mono_ns();

		if (now >= until)
			return 0;
		if (sched_block(&sleepers, 0, until, SCHED_INTR) ==
		    WAKE_SIGNAL) {
			now = time_mono_ns();
			if (rem)
				time_put_timespec(rem, until > now ?
						  until - now : 0);
			return -EINTR;
		}
	}
}

long time_get_timespec(const void *p, uint64_t *ns)
{
	struct ktimespec t;

	if (!mm_access_ok(p, sizeof(t)))
		return -EFAULT;
	memcpy(&t, p, sizeof(t));
	if (t.tv_sec < 0 || t.tv_nsec < 0 || t.tv_nsec >= 1000000000)
		return -EINVAL;
	if ((uint64_t)t.tv_sec > UINT64_MAX / 1000000000u / 2)
		*ns = UINT64_MAX / 2; /* "forever" */
	else
		*ns = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
	return 0;
}

static uint64_t after(uint64_t ns)
{
	uint64_t now = time_mono_ns();

	return ns > SCHED_NEVER - now ? SCHED_NEVER : now + ns;
}

long sys_nanosleep(const void *req, void *rem)
{
	uint64_t ns;
	long ret = time_get_timespec(req, &ns);

	if (ret)
		return ret;
	if (rem && !mm_access_ok(rem, sizeof(struct ktimespec)))
		return -EFAULT;
	return sleep_until(after(ns), rem);
}

long sys_clock_nanosleep(int clk, int flags, const void *req, void *rem)
{
	uint64_t ns;
	long ret = time_get_timespec(req, &ns);

	if (ret)
		return ret;
	if (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC &&
	    clk != CLOCK_BOOTTIME)
		return -EINVAL;
	if (flags & TIMER_ABSTIME) {
		uint64_t now = clk == CLOCK_REALTIME ? time_real_ns() :
						       time_mono_ns();
		/* No remaining time for an absolute sleep. */
		return sleep_until(after(ns > now ? ns - now : 0), NULL);
	}
	return sleep_until(after(ns), rem);
}
