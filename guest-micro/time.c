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

/* --- timerfd --- */

#define TFD_TIMER_ABSTIME 1
#define TFD_TIMER_CANCEL_ON_SET 2
#define TFD_NONBLOCK 0x800
#define TFD_CLOEXEC 0x80000
#define CLOCK_REALTIME_ALARM 8
#define CLOCK_BOOTTIME_ALARM 9

struct timerfd {
	int clock;
	uint64_t next;     /* CLOCK_MONOTONIC ns of the next expiry, 0 = off */
	uint64_t interval; /* ns, 0 = one-shot */
	uint64_t ticks;    /* expirations not read yet */
	bool in_use;
};

static struct timerfd timerfds[FS_MAX_FDS];

/* struct itimerspec: interval, then value. */
struct kitimerspec {
	struct ktimespec interval, value;
};

/* Counts the expirations up to now. */
static void tfd_update(struct timerfd *t)
{
	uint64_t now = time_mono_ns();

	if (!t->next || now < t->next)
		return;
	if (t->interval) {
		uint64_t k = (now - t->next) / t->interval + 1;

		t->ticks += k;
		t->next += k * t->interval;
	} else {
		t->ticks++;
		t->next = 0;
	}
}

static long tfd_read(struct ofd *d, void *buf, uint64_t len)
{
	struct timerfd *t = d->obj;

	if (len < 8)
		return -EINVAL;
	for (;;) {
		tfd_update(t);
		if (t->ticks)
			break;
		if (d->flags & O_NONBLOCK_FLAG)
			return -EAGAIN;
		if (fs_wait(t->next ? t->next : SCHED_NEVER, false) ==
		    WAKE_SIGNAL)
			return -ERESTARTSYS;
	}
	if (!mm_access_ok(buf, 8))
		return -EFAULT;
	memcpy(buf, &t->ticks, 8);
	t->ticks = 0;
	return 8;
}

static unsigned tfd_poll(struct ofd *d)
{
	struct timerfd *t = d->obj;

	tfd_update(t);
	return t->ticks ? POLLIN : 0;
}

static uint64_t tfd_deadline(struct ofd *d)
{
	struct timerfd *t = d->obj;

	return t->next ? t->next : SCHED_NEVER;
}

static void tfd_release(struct ofd *d)
{
	memset(d->obj, 0, sizeof(struct timerfd));
}

static const struct file_ops timerfd_ops = {
	.mode = 0600, /* an anonymous inode */
	.read = tfd_read,
	.poll = tfd_poll,
	.deadline = tfd_deadline,
	.release = tfd_release,
};

long sys_timerfd_create(int clock, int flags)
{
	struct timerfd *t = NULL;
	long fd;

	if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC &&
	    clock != CLOCK_BOOTTIME && clock != CLOCK_REALTIME_ALARM &&
	    clock != CLOCK_BOOTTIME_ALARM)
		return -EINVAL;
	if (flags & ~(TFD_NONBLOCK | TFD_CLOEXEC))
		return -EINVAL;
	for (unsigned i = 0; i < ARRAY_SIZE(timerfds) && !t; i++)
		if (!timerfds[i].in_use)
			t = &timerfds[i];
	if (!t)
		return -ENFILE;
	memset(t, 0, sizeof(*t));
	t->in_use = true;
	t->clock = clock;
	fd = fs_install(&timerfd_ops, t, (uint32_t)(flags & TFD_NONBLOCK),
			flags & TFD_CLOEXEC);
	if (fd < 0)
		t->in_use = false;
	return fd;
}

static struct timerfd *tfd_of(int fd)
{
	struct ofd *d = fs_get(fd);

	return d && d->ops == &timerfd_ops ? d->obj : NULL;
}

/* A timer's {interval, time left} as struct itimerspec. */
static void put_itimer(struct kitimerspec *out, uint64_t next,
		       uint64_t interval)
{
	uint64_t now = time_mono_ns();
	uint64_t left = next ? (next > now ? next - now : 1) : 0;

	out->interval.tv_sec = (int64_t)(interval / 1000000000u);
	out->interval.tv_nsec = (int64_t)(interval % 1000000000u);
	out->value.tv_sec = (int64_t)(left / 1000000000u);
	out->value.tv_nsec = (int64_t)(left % 1000000000u);
}

long sys_timerfd_settime(int fd, int flags, const void *unew, void *uold)
{
	struct timerfd *t = tfd_of(fd);
	struct kitimerspec nv, ov;
	uint64_t value, interval;
	long ret;

	if (!t)
		return fs_get(fd) ? -EINVAL : -EBADF;
	if (flags & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET))
		return -EINVAL;
	if (!mm_access_ok(unew, sizeof(nv)) ||
	    (uold && !mm_access_ok(uold, sizeof(ov))))
		return -EFAULT;
	memcpy(&nv, unew, sizeof(nv));
	ret = time_get_timespec(&nv.value, &value);
	if (!ret)
		ret = time_get_timespec(&nv.interval, &interval);
	if (ret)
		return ret;
	tfd_update(t);
	put_itimer(&ov, t->next, t->interval);
	if (value && (flags & TFD_TIMER_ABSTIME)) {
		/* An absolute time on the timer's clock, as a monotonic one
		 * (later steps of the wall clock are not followed). */
		uint64_t now = t->clock == CLOCK_REALTIME ||
					       t->clock == CLOCK_REALTIME_ALARM ?
				       time_real_ns() :
				       time_mono_ns();
		value = value > now ? value - now : 1;
	}
	t->next = value ? time_mono_ns() + value : 0;
	t->interval = value ? interval : 0;
	t->ticks = 0;
	fs_changed();
	if (uold)
		memcpy(uold, &ov, sizeof(ov));
	return 0;
}

long sys_timerfd_gettime(int fd, void *ucur)
{
	struct timerfd *t = tfd_of(fd);
	struct kitimerspec cur;

	if (!t)
		return fs_get(fd) ? -EINVAL : -EBADF;
	if (!mm_access_ok(ucur, sizeof(cur)))
		return -EFAULT;
	tfd_update(t);
	put_itimer(&cur, t->next, t->interval);
	memcpy(ucur, &cur, sizeof(cur));
	return 0;
}

/* --- interval timers: alarm, setitimer, getitimer --- */

/* ITIMER_REAL raises SIGALRM; ITIMER_VIRTUAL and ITIMER_PROF count CPU
 * time, which here is elapsed time (see CLOCK_PROCESS_CPUTIME_ID), and
 * raise SIGVTALRM and SIGPROF. Each is checked at every return from a
 * system call and by the idle loop, so it fires on time unless a thread
 * spins without system calls (docs/micro-guest.md, "Preemption"). */
static struct {
	uint64_t next, interval;
} itimers[3];
static const int itimer_sig[3] = { 14, 26, 27 };

struct kitimerval {
	int64_t interval_sec, interval_usec, value_sec, value_usec;
};

bool time_timers_armed(void)
{
	return itimers[0].next || itimers[1].next || itimers[2].next;
}

uint64_t time_check_timers(void)
{
	uint64_t now = 0, next = SCHED_NEVER;

	for (int i = 0; i < 3; i++) {
		if (!itimers[i].next)
			continue;
		if (!now)
			now = time_mono_ns();
		if (now >= itimers[i].next) {
			itimers[i].next = itimers[i].interval ?
				now + itimers[i].interval : 0;
			signal_send(NULL, itimer_sig[i], SI_KERNEL);
		}
		if (itimers[i].next)
			next = MIN(next, itimers[i].next);
	}
	return next;
}

static void put_itimerval(void *u, int which)
{
	struct kitimerval v;
	uint64_t now = time_mono_ns(), next = itimers[which].next;
	uint64_t left = next ? (next > now ? next - now : 1000) : 0;

	v.interval_sec = (int64_t)(itimers[which].interval / 1000000000u);
	v.interval_usec =
		(int64_t)(itimers[which].interval % 1000000000u / 1000);
	v.value_sec = (int64_t)(left / 1000000000u);
	v.value_usec = (int64_t)(left % 1000000000u / 1000);
	if (v.value_sec == 0 && v.value_usec == 0 && next)
		v.value_usec = 1; /* armed: never report 0 */
	memcpy(u, &v, sizeof(v));
}

long sys_setitimer(int which, const void *unew, void *uold)
{
	struct kitimerval v;

	if (which < 0 || which > 2)
		return -EINVAL;
	if (uold && !mm_access_ok(uold, sizeof(v)))
		return -EFAULT;
	if (unew) {
		if (!mm_access_ok(unew, sizeof(v)))
			return -EFAULT;
		memcpy(&v, unew, sizeof(v));
		if (v.value_sec < 0 || v.value_usec < 0 ||
		    v.value_usec >= 1000000 || v.interval_sec < 0 ||
		    v.interval_usec < 0 || v.interval_usec >= 1000000)
			return -EINVAL;
	}
	if (uold)
		put_itimerval(uold, which);
	if (unew) {
		uint64_t value = (uint64_t)MIN(v.value_sec, 1LL << 32) *
					 1000000000u +
				 (uint64_t)v.value_usec * 1000u;
		uint64_t interval = (uint64_t)MIN(v.interval_sec, 1LL << 32) *
					    1000000000u +
				    (uint64_t)v.interval_usec * 1000u;

		itimers[which].next = value ? time_mono_ns() + value : 0;
		itimers[which].interval = value ? interval : 0;
		sched_want_ticks();
	}
	return 0;
}

long sys_getitimer(int which, void *ucur)
{
	if (which < 0 || which > 2)
		return -EINVAL;
	if (!mm_access_ok(ucur, sizeof(struct kitimerval)))
		return -EFAULT;
	put_itimerval(ucur, which);
	return 0;
}

long sys_alarm(unsigned secs)
{
	uint64_t now = time_mono_ns(), next = itimers[0].next;
	/* Seconds left of the previous alarm, rounded as Linux does (half up,
	 * and an armed alarm never says 0). */
	long left = next ? (long)(((next > now ? next - now : 0) + 500000000u) /
				  1000000000u) : 0;

	if (next && !left)
		left = 1;
	itimers[0].next = secs ? now + (uint64_t)secs * 1000000000u : 0;
	itimers[0].interval = 0;
	sched_want_ticks();
	return left;
}
