/*
 * time.c - clocks and sleeping for the handler.
 *
 * CLOCK_MONOTONIC counts TSC ticks since boot, converted with
 * boot_info.tsc_khz; CLOCK_REALTIME is boot_info.wall_ns (the host's clock
 * when the guest TSC read boot_info.wall_tsc, rewritten at each restore).
 * RDTSC runs natively at CPL3. Without a TSC
 * frequency (tsc_khz == 0) a 1 GHz TSC is assumed. Sleeps are EMBER_HC_WAIT
 * hypercalls with a timeout.
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

static long put_ts(void *ts, uint64_t ns)
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
		return put_ts(ts, time_real_ns());
	case CLOCK_MONOTONIC:
	case CLOCK_MONOTONIC_RAW:
	case CLOCK_MONOTONIC_COARSE:
	case CLOCK_BOOTTIME:
	/* One thread that never stops running: CPU time == elapsed time. */
	case CLOCK_PROCESS_CPUTIME_ID:
	case CLOCK_THREAD_CPUTIME_ID:
		return put_ts(ts, time_mono_ns());
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

void micro_wait(uint64_t timeout_ns)
{
	hypercall(EMBER_HC_WAIT, timeout_ns);
}

/* Sleeps until CLOCK_MONOTONIC reaches `until`. Device wake-ups end a WAIT
 * early; loop until the time has come. */
static void sleep_until(uint64_t until)
{
	for (;;) {
		uint64_t now = time_mono_ns();

		if (now >= until)
			return;
		micro_wait(until - now);
	}
}

static int get_ts(const void *p, uint64_t *ns)
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

long sys_nanosleep(const void *req, void *rem)
{
	uint64_t ns;
	int ret = get_ts(req, &ns);

	if (ret)
		return ret;
	sleep_until(time_mono_ns() + ns);
	if (rem && mm_access_ok(rem, 16))
		memset(rem, 0, 16);
	return 0;
}

long sys_clock_nanosleep(int clk, int flags, const void *req, void *rem)
{
	uint64_t ns;
	int ret = get_ts(req, &ns);

	if (ret)
		return ret;
	if (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC &&
	    clk != CLOCK_BOOTTIME)
		return -EINVAL;
	if (flags & TIMER_ABSTIME) {
		uint64_t now = clk == CLOCK_REALTIME ? time_real_ns() :
						       time_mono_ns();
		sleep_until(time_mono_ns() + (ns > now ? ns - now : 0));
	} else {
		sleep_until(time_mono_ns() + ns);
	}
	(void)rem;
	return 0;
}
