/*
 * poll.c - waiting for descriptors: poll, ppoll, select, pselect6 and epoll
 * (epoll_create/create1, epoll_ctl, epoll_wait/pwait/pwait2).
 *
 * Every kind of descriptor reports its readiness through its ops (fs.c), so
 * all of these are one loop: look at the descriptors, return what is ready,
 * else block in fs_wait() until some descriptor changed (fs_changed()), the
 * nearest deadline (the call's timeout, or a timerfd's next expiry), a
 * signal (-EINTR), or, when stdin is watched, vsock activity. A blocking
 * wait that watches stdin is also the moment the handler is ready for work
 * (stdio_mark_ready: READY, the snapshot point), as its first read of stdin
 * would be.
 *
 * epoll: level-triggered by default; EPOLLET reports a ready descriptor
 * again only after something changed since its last report (the kernel
 * counts changes globally, so an edge may be reported more often than
 * Linux would, never less); EPOLLONESHOT disables an entry until
 * EPOLL_CTL_MOD. An entry watches the open file description it was added
 * with and goes away when that description is closed for good, as on
 * Linux. Regular files cannot be added (-EPERM), nor an epoll to itself.
 */
#include "kernel.h"

#define EPOLL_CTL_ADD 1
#define EPOLL_CTL_DEL 2
#define EPOLL_CTL_MOD 3
#define EPOLLIN 0x001
#define EPOLLOUT 0x004
#define EPOLLERR 0x008
#define EPOLLHUP 0x010
#define EPOLLRDHUP 0x2000
#define EPOLLEXCLUSIVE (1u << 28)
#define EPOLLWAKEUP (1u << 29)
#define EPOLLONESHOT (1u << 30)
#define EPOLLET (1u << 31)
#define EPOLL_CLOEXEC 0x80000
#define EPOLL_MAX_ITEMS 128
#define EPOLL_MAX 16
#define EPOLL_NEST_MAX 4 /* Linux's EP_MAX_NESTS */
#define SELECT_MAX 1024  /* FD_SETSIZE */

struct pollfd_k {
	int32_t fd;
	int16_t events, revents;
};

/* struct epoll_event is packed on x86-64: 12 bytes. */
struct epoll_event_k {
	uint32_t events;
	uint64_t data;
} __attribute__((packed));

struct epitem {
	int fd;
	const struct ofd *d;  /* what it watches (the description, not fd) */
	uint32_t events;
	uint64_t data;
	uint64_t seen_gen;    /* EPOLLET: the change count at its last report */
	bool disabled;        /* EPOLLONESHOT fired */
};

struct epoll {
	struct epitem items[EPOLL_MAX_ITEMS];
	unsigned n, next;     /* next: where the next scan starts (fairness) */
	bool in_use;
};

static struct epoll epolls[EPOLL_MAX];
static uint64_t change_gen; /* bumped by poll_changed() */

static const struct file_ops epoll_ops;

static bool is_epoll(const struct ofd *d)
{
	return d->ops == &epoll_ops;
}

void poll_changed(void)
{
	change_gen++;
}

void poll_forget(const struct ofd *d)
{
	for (unsigned e = 0; e < EPOLL_MAX; e++) {
		struct epoll *ep = &epolls[e];

		for (unsigned i = 0; ep->in_use && i < ep->n;)
			if (ep->items[i].d == d)
				ep->items[i] = ep->items[--ep->n];
			else
				i++;
	}
}

/* Readiness of a description, for poll: what its ops say (epoll
 * instances: whether any entry is ready), in both POLLIN/POLLRDNORM
 * spellings. */
static unsigned ready_nested(const struct ofd *d, int depth);

static unsigned ofd_ready(const struct ofd *d, int depth)
{
	unsigned m;

	if (is_epoll(d))
		m = depth < EPOLL_NEST_MAX ? ready_nested(d, depth + 1) : 0;
	else if (d->ops->poll)
		m = d->ops->poll((struct ofd *)(uintptr_t)d);
	else
		m = POLLIN | POLLOUT; /* regular files are always ready */
	if (m & POLLIN)
		m |= POLLRDNORM;
	if (m & POLLOUT)
		m |= POLLWRNORM;
	return m;
}

/* What an epoll entry would report now (0: nothing). */
static uint32_t item_events(const struct epitem *it, int depth)
{
	uint32_t m;

	if (it->disabled)
		return 0;
	m = ofd_ready(it->d, depth) &
	    (it->events | EPOLLERR | EPOLLHUP); /* always reported */
	if (m && (it->events & EPOLLET) && it->seen_gen == change_gen)
		return 0; /* no new edge since its last report */
	return m;
}

static unsigned ready_nested(const struct ofd *d, int depth)
{
	const struct epoll *ep = d->obj;

	for (unsigned i = 0; i < ep->n; i++)
		if (item_events(&ep->items[i], depth))
			return POLLIN;
	return 0;
}

/* The earliest self-timed deadline (timerfd) and whether device I/O
 * matters, over a description. */
static void ofd_wait_info(const struct ofd *d, uint64_t *deadline, bool *io)
{
	if (d->ops->deadline)
		*deadline = MIN(*deadline,
				d->ops->deadline((struct ofd *)(uintptr_t)d));
	*io |= d->ops->io;
	if (is_epoll(d)) {
		const struct epoll *ep = d->obj;

		for (unsigned i = 0; i < ep->n; i++)
			if (!is_epoll(ep->items[i].d)) /* one level is plenty */
				ofd_wait_info(ep->items[i].d, deadline, io);
	}
}

/* Blocks until something may have changed: 0, or -EINTR for a signal. */
static long wait_for(uint64_t deadline, bool io)
{
	if (io)
		stdio_mark_ready(); /* waiting on stdin: ready for work */
	return fs_wait(deadline, io) == WAKE_SIGNAL ? -EINTR : 0;
}

/* A relative timeout in ms (-1: none) as a CLOCK_MONOTONIC deadline. */
static uint64_t ms_deadline(int64_t ms)
{
	if (ms < 0)
		return SCHED_NEVER;
	return time_mono_ns() + (uint64_t)ms * 1000000u;
}

static long ts_deadline(const void *ts, uint64_t *deadline)
{
	uint64_t ns;
	long ret;

	*deadline = SCHED_NEVER;
	if (!ts)
		return 0;
	ret = time_get_timespec(ts, &ns);
	if (ret)
		return ret;
	*deadline = time_mono_ns() + MIN(ns, SCHED_NEVER / 4);
	return 0;
}

/* The sigmask argument of ppoll/pselect6/epoll_pwait: in force during the
 * wait; a handler that runs for a signal it let through sees it, and the
 * old mask comes back after it (signal.c), as rt_sigsuspend does. */
static long mask_begin(const void *mask, uint64_t size)
{
	struct thread *t = sched_cur;
	uint64_t m;

	if (!mask)
		return 0;
	if (size != 8)
		return -EINVAL;
	if (!mm_access_ok(mask, 8))
		return -EFAULT;
	memcpy(&m, mask, 8);
	t->saved_mask = t->sigmask;
	t->saved_mask_valid = true;
	t->sigmask = m & ~((1ULL << 8) | (1ULL << 18)); /* not KILL, STOP */
	return 0;
}

static void mask_end(const void *mask, long ret)
{
	struct thread *t = sched_cur;

	/* After -EINTR the handler's frame restores it (signal.c). */
	if (mask && ret != -EINTR && t->saved_mask_valid) {
		t->sigmask = t->saved_mask;
		t->saved_mask_valid = false;
	}
}

/* --- poll --- */

static long do_poll(struct pollfd_k *fds, uint64_t nfds, uint64_t deadline)
{
	if (nfds > FS_MAX_FDS * 8)
		return -EINVAL;
	if (!mm_access_ok(fds, nfds * sizeof(*fds)))
		return -EFAULT;
	for (;;) {
		uint64_t dl = deadline;
		bool io = false;
		long n = 0, ret;

		for (uint64_t i = 0; i < nfds; i++) {
			struct pollfd_k *p = &fds[i];
			const struct ofd *d;

			p->revents = 0;
			if (p->fd < 0)
				continue;
			d = fs_get(p->fd);
			if (!d) {
				p->revents = POLLNVAL;
			} else {
				p->revents = (int16_t)(ofd_ready(d, 0) &
					     ((uint16_t)p->events | POLLERR |
					      POLLHUP));
				ofd_wait_info(d, &dl, &io);
			}
			n += p->revents != 0;
		}
		if (n || time_mono_ns() >= deadline)
			return n;
		ret = wait_for(dl, io);
		if (ret)
			return ret;
		if (!mm_access_ok(fds, nfds * sizeof(*fds)))
			return -EFAULT;
	}
}

long sys_poll(void *fds, uint64_t nfds, int64_t timeout_ms)
{
	return do_poll(fds, nfds, ms_deadline((int)timeout_ms));
}

long sys_ppoll(void *fds, uint64_t nfds, const void *ts, const void *mask,
	       uint64_t masksize)
{
	uint64_t deadline;
	long ret = ts_deadline(ts, &deadline);

	if (ret)
		return ret;
	ret = mask_begin(mask, masksize);
	if (ret)
		return ret;
	ret = do_poll(fds, nfds, deadline);
	mask_end(mask, ret);
	return ret;
}

/* --- select --- */

static bool bit(const uint64_t *set, int fd)
{
	return set && (set[fd / 64] >> (fd % 64)) & 1;
}

static long do_select(int nfds, uint64_t *rd, uint64_t *wr, uint64_t *ex,
		      uint64_t deadline)
{
	uint64_t words = ((uint64_t)nfds + 63) / 64;
	uint64_t in[3][SELECT_MAX / 64], *sets[3] = { rd, wr, ex };

	if (nfds < 0 || nfds > SELECT_MAX)
		return -EINVAL;
	for (int s = 0; s < 3; s++) {
		if (!sets[s])
			continue;
		if (!mm_access_ok(sets[s], words * 8))
			return -EFAULT;
		memcpy(in[s], sets[s], words * 8);
		if (nfds % 64) /* bits past nfds are ignored */
			in[s][words - 1] &= (1ULL << (nfds % 64)) - 1;
	}
	for (;;) {
		uint64_t dl = deadline, out[3][SELECT_MAX / 64];
		bool io = false;
		long n = 0, ret;

		memset(out, 0, sizeof(out));
		for (int fd = 0; fd < nfds; fd++) {
			bool r = sets[0] && bit(in[0], fd);
			bool w = sets[1] && bit(in[1], fd);
			bool e = sets[2] && bit(in[2], fd);
			const struct ofd *d;
			unsigned m;

			if (!r && !w && !e)
				continue;
			d = fs_get(fd);
			if (!d)
				return -EBADF;
			m = ofd_ready(d, 0);
			ofd_wait_info(d, &dl, &io);
			if (r && (m & (POLLIN | POLLHUP | POLLERR)))
				out[0][fd / 64] |= 1ULL << (fd % 64), n++;
			if (w && (m & (POLLOUT | POLLERR)))
				out[1][fd / 64] |= 1ULL << (fd % 64), n++;
			if (e && (m & POLLPRI))
				out[2][fd / 64] |= 1ULL << (fd % 64), n++;
		}
		if (n || time_mono_ns() >= deadline) {
			for (int s = 0; s < 3; s++)
				if (sets[s]) {
					if (!mm_access_ok(sets[s], words * 8))
						return -EFAULT;
					memcpy(sets[s], out[s], words * 8);
				}
			return n;
		}
		ret = wait_for(dl, io);
		if (ret)
			return ret;
	}
}

/* Linux writes the time left back into select's timeval. */
static void put_left(void *tv, uint64_t deadline, bool timespec)
{
	uint64_t now = time_mono_ns(), left = deadline > now ? deadline - now : 0;
	int64_t v[2] = { (int64_t)(left / 1000000000u),
			 (int64_t)(left % 1000000000u) };

	if (!timespec)
		v[1] /= 1000;
	if (mm_access_ok(tv, sizeof(v)))
		memcpy(tv, v, sizeof(v));
}

long sys_select(int nfds, void *rd, void *wr, void *ex, void *tv)
{
	uint64_t deadline = SCHED_NEVER;
	long ret;

	if (tv) {
		int64_t v[2];

		if (!mm_access_ok(tv, sizeof(v)))
			return -EFAULT;
		memcpy(v, tv, sizeof(v));
		if (v[0] < 0 || v[1] < 0 || v[1] >= 1000000)
			return -EINVAL;
		deadline = time_mono_ns() +
			   MIN((uint64_t)v[0], 1ULL << 32) * 1000000000u +
			   (uint64_t)v[1] * 1000u;
	}
	ret = do_select(nfds, rd, wr, ex, deadline);
	if (tv)
		put_left(tv, deadline, false);
	return ret;
}

long sys_pselect6(int nfds, void *rd, void *wr, void *ex, const void *ts,
		  const void *sig)
{
	struct { uint64_t mask, size; } sm = { 0, 0 };
	uint64_t deadline;
	long ret = ts_deadline(ts, &deadline);

	if (ret)
		return ret;
	if (sig) {
		if (!mm_access_ok(sig, sizeof(sm)))
			return -EFAULT;
		memcpy(&sm, sig, sizeof(sm));
	}
	ret = mask_begin((const void *)(uintptr_t)sm.mask, sm.size);
	if (ret)
		return ret;
	ret = do_select(nfds, rd, wr, ex, deadline);
	mask_end((const void *)(uintptr_t)sm.mask, ret);
	if (ts)
		put_left((void *)(uintptr_t)ts, deadline, true); /* as Linux */
	return ret;
}

/* --- epoll --- */

static unsigned epoll_poll(struct ofd *d)
{
	return ready_nested(d, 1);
}

static void epoll_release(struct ofd *d)
{
	memset(d->obj, 0, sizeof(struct epoll));
}

static const struct file_ops epoll_ops = {
	.mode = 0600, /* an anonymous inode */
	.poll = epoll_poll,
	.release = epoll_release,
};

long sys_epoll_create1(int flags)
{
	struct epoll *ep = NULL;
	long fd;

	if (flags & ~EPOLL_CLOEXEC)
		return -EINVAL;
	for (unsigned i = 0; i < EPOLL_MAX && !ep; i++)
		if (!epolls[i].in_use)
			ep = &epolls[i];
	if (!ep)
		return -ENFILE;
	memset(ep, 0, sizeof(*ep));
	ep->in_use = true;
	fd = fs_install(&epoll_ops, ep, 2 /* O_RDWR */, flags & EPOLL_CLOEXEC);
	if (fd < 0)
		ep->in_use = false;
	return fd;
}

static struct epitem *find_item(struct epoll *ep, int fd, const struct ofd *d)
{
	for (unsigned i = 0; i < ep->n; i++)
		if (ep->items[i].fd == fd && ep->items[i].d == d)
			return &ep->items[i];
	return NULL;
}

long sys_epoll_ctl(int epfd, int op, int fd, const void *uev)
{
	struct ofd *e = fs_get(epfd), *d = fs_get(fd);
	struct epoll_event_k ev = { 0, 0 };
	struct epoll *ep;
	struct epitem *it;

	if (!e || !d)
		return -EBADF;
	if (!is_epoll(e) || e == d)
		return -EINVAL;
	if (!d->ops->poll && !is_epoll(d))
		return -EPERM; /* regular files (image, memfd): Linux says no */
	ep = e->obj;
	if (op != EPOLL_CTL_DEL) {
		if (!mm_access_ok(uev, sizeof(ev)))
			return -EFAULT;
		memcpy(&ev, uev, sizeof(ev));
	}
	it = find_item(ep, fd, d);
	switch (op) {
	case EPOLL_CTL_ADD:
		if (it)
			return -EEXIST;
		if (ep->n == EPOLL_MAX_ITEMS)
			return -ENOSPC;
		it = &ep->items[ep->n++];
		*it = (struct epitem){ fd, d, ev.events & ~EPOLLEXCLUSIVE,
				       ev.data, change_gen - 1, false };
		break;
	case EPOLL_CTL_MOD:
		if (!it)
			return -ENOENT;
		it->events = ev.events;
		it->data = ev.data;
		it->disabled = false;
		it->seen_gen = change_gen - 1; /* re-armed: report if ready */
		break;
	case EPOLL_CTL_DEL:
		if (!it)
			return -ENOENT;
		*it = ep->items[--ep->n];
		break;
	default:
		return -EINVAL;
	}
	fs_changed(); /* a waiter on this epoll may have something now */
	return 0;
}

static long do_epoll_wait(int epfd, void *uevents, int maxevents,
			  uint64_t deadline)
{
	struct ofd *e = fs_get(epfd);
	struct epoll *ep;

	if (!e)
		return -EBADF;
	if (!is_epoll(e) || maxevents <= 0 ||
	    (uint64_t)maxevents > 0x7fffffff / sizeof(struct epoll_event_k))
		return -EINVAL;
	if (!mm_access_ok(uevents, (uint64_t)maxevents *
					   sizeof(struct epoll_event_k)))
		return -EFAULT;
	ep = e->obj;
	for (;;) {
		uint64_t dl = deadline;
		bool io = false;
		int n = 0;
		long ret;

		for (unsigned k = 0; k < ep->n && n < maxevents; k++) {
			unsigned i = (ep->next + k) % ep->n;
			struct epitem *it = &ep->items[i];
			uint32_t m = item_events(it, 0);
			struct epoll_event_k ev = { m, it->data };

			if (!m)
				continue;
			memcpy((uint8_t *)uevents + (size_t)n * sizeof(ev), &ev,
			       sizeof(ev));
			n++;
			it->seen_gen = change_gen;
			if (it->events & EPOLLONESHOT)
				it->disabled = true;
		}
		if (ep->n)
			ep->next = (ep->next + 1) % ep->n;
		if (n || time_mono_ns() >= deadline)
			return n;
		for (unsigned i = 0; i < ep->n; i++)
			if (!ep->items[i].disabled)
				ofd_wait_info(ep->items[i].d, &dl, &io);
		ret = wait_for(dl, io);
		if (ret)
			return ret;
		e = fs_get(epfd);
		if (!e || !is_epoll(e) || e->obj != ep)
			return -EBADF; /* closed by another thread meanwhile */
		if (!mm_access_ok(uevents, (uint64_t)maxevents *
						   sizeof(struct epoll_event_k)))
			return -EFAULT;
	}
}

long sys_epoll_pwait(int epfd, void *events, int maxevents,
		     int64_t timeout_ms, const void *mask, uint64_t masksize)
{
	long ret = mask_begin(mask, masksize);

	if (ret)
		return ret;
	ret = do_epoll_wait(epfd, events, maxevents,
			    ms_deadline((int)timeout_ms));
	mask_end(mask, ret);
	return ret;
}

long sys_epoll_pwait2(int epfd, void *events, int maxevents, const void *ts,
		      const void *mask, uint64_t masksize)
{
	uint64_t deadline;
	long ret = ts_deadline(ts, &deadline);

	if (ret)
		return ret;
	ret = mask_begin(mask, masksize);
	if (ret)
		return ret;
	ret = do_epoll_wait(epfd, events, maxevents, deadline);
	mask_end(mask, ret);
	return ret;
}
