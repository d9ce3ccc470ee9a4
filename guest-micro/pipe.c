/*
 * pipe.c - byte and counter channels between the handler's threads: pipes
 * (pipe, pipe2) and eventfds (eventfd, eventfd2), with Linux's semantics.
 *
 * A pipe is a 64 KiB ring (Linux's default size) allocated at creation,
 * shared by its two descriptions; it lives until both ends are closed.
 * Reads block while it is empty and a writer exists (end of file when
 * none is left); writes of up to PIPE_BUF (4096) bytes are atomic and wait
 * for room for all of them, larger ones go in pieces; writing with no
 * reader left raises SIGPIPE and fails with -EPIPE. An eventfd is a 64-bit
 * counter: reads take it (or 1 of it with EFD_SEMAPHORE) and block at 0;
 * writes add and block before the maximum (0xfffffffffffffffe). O_NONBLOCK
 * makes every wait -EAGAIN. Waiting and waking go through fs_wait() and
 * fs_changed(), so poll and epoll see the same states. The ring (pipe_*
 * below, kernel.h) also carries socket pairs (socket.c), one per way.
 */
#include "kernel.h"

#define PIPE_SIZE (64u << 10)
#define PIPE_BUF 4096
#define O_NONBLOCK 0x800
#define O_CLOEXEC 0x80000
#define O_DIRECT 0x4000
#define EFD_SEMAPHORE 1
#define SIGPIPE 13
#define EVENTFD_MAX 0xfffffffffffffffeULL

struct pipe {
	uint8_t *buf;
	uint32_t head, used;   /* ring: bytes at [head, head + used) */
	uint32_t readers, writers;
	bool in_use;
};

struct eventfd {
	uint64_t count;
	bool semaphore, in_use;
};

/* One description per pipe end: at most one pipe per two fds (a socket
 * pair takes two rings for its two fds). */
static struct pipe pipes[FS_MAX_FDS];
static struct eventfd eventfds[FS_MAX_FDS];

/* Waits for the pipe or counter to change; the call fails with
 * -ERESTARTSYS on a signal (restarted for SA_RESTART, as for Linux
 * pipes). */
static long wait_change(void)
{
	return fs_wait(SCHED_NEVER, false) == WAKE_SIGNAL ? -ERESTARTSYS : 0;
}

long pipe_ring_read(struct pipe *p, void *buf, uint64_t len, bool nonblock,
		    bool peek)
{
	uint8_t *out = buf;

	if (!len)
		return 0;
	while (!p->used) {
		long ret;

		if (!p->writers)
			return 0; /* end of file */
		if (nonblock)
			return -EAGAIN;
		ret = wait_change();
		if (ret)
			return ret;
	}
	uint32_t n = (uint32_t)MIN(len, (uint64_t)p->used);
	uint32_t first = MIN(n, PIPE_SIZE - p->head);

	/* Another thread may have unmapped the buffer while we waited. */
	if (!mm_access_ok(buf, n))
		return -EFAULT;

	memcpy(out, p->buf + p->head, first);
	memcpy(out + first, p->buf, n - first);
	if (peek)
		return n;
	p->head = (p->head + n) % PIPE_SIZE;
	p->used -= n;
	fs_changed();
	return n;
}

long pipe_ring_write(struct pipe *p, const void *buf, uint64_t len,
		     bool nonblock, bool sigpipe)
{
	const uint8_t *in = buf;
	uint64_t done = 0;

	while (done < len) {
		uint32_t room = PIPE_SIZE - p->used;
		uint64_t left = len - done;
		long ret;

		if (!p->readers) {
			if (sigpipe)
				signal_send(sched_cur, SIGPIPE, SI_USER);
			return done ? (long)done : -EPIPE;
		}
		/* Up to PIPE_BUF bytes go in at once or not at all. */
		if (room && (left > PIPE_BUF || room >= left)) {
			uint32_t n = (uint32_t)MIN(left, (uint64_t)room);
			uint32_t tail = (p->head + p->used) % PIPE_SIZE;
			uint32_t first = MIN(n, PIPE_SIZE - tail);

			if (!mm_access_ok(in + done, n))
				return done ? (long)done : -EFAULT;
			memcpy(p->buf + tail, in + done, first);
			memcpy(p->buf, in + done + first, n - first);
			p->used += n;
			done += n;
			fs_changed();
			continue;
		}
		if (nonblock)
			return done ? (long)done : -EAGAIN;
		ret = wait_change();
		if (ret)
			return done ? (long)done : ret;
	}
	return (long)done;
}

static long pipe_read(struct ofd *d, void *buf, uint64_t len)
{
	return pipe_ring_read(d->obj, buf, len, d->flags & O_NONBLOCK, false);
}

static long pipe_write(struct ofd *d, const void *buf, uint64_t len)
{
	return pipe_ring_write(d->obj, buf, len, d->flags & O_NONBLOCK, true);
}

bool pipe_ring_readable(const struct pipe *p)
{
	return p->used;
}

bool pipe_ring_writable(const struct pipe *p)
{
	return PIPE_SIZE - p->used >= PIPE_BUF;
}

uint32_t pipe_ring_used(const struct pipe *p)
{
	return p->used;
}

bool pipe_ring_has_reader(const struct pipe *p)
{
	return p->readers;
}

bool pipe_ring_has_writer(const struct pipe *p)
{
	return p->writers;
}

static unsigned pipe_poll_r(struct ofd *d)
{
	struct pipe *p = d->obj;

	return (p->used ? POLLIN | POLLRDNORM : 0) |
	       (p->writers ? 0 : POLLHUP);
}

static unsigned pipe_poll_w(struct ofd *d)
{
	struct pipe *p = d->obj;

	if (!p->readers)
		return POLLERR;
	return pipe_ring_writable(p) ? POLLOUT | POLLWRNORM : 0;
}

struct pipe *pipe_ring_new(void)
{
	struct pipe *p = NULL;

	for (unsigned i = 0; i < ARRAY_SIZE(pipes) && !p; i++)
		if (!pipes[i].in_use)
			p = &pipes[i];
	if (!p)
		return NULL;
	p->buf = (uint8_t *)(uintptr_t)mm_alloc_top(PIPE_SIZE);
	if (!p->buf)
		return NULL;
	p->in_use = true;
	p->readers = p->writers = 1;
	return p;
}

void pipe_ring_put(struct pipe *p, bool reader, bool writer)
{
	p->readers -= reader;
	p->writers -= writer;
	fs_changed(); /* the other end may see end of file or EPIPE now */
	if (p->readers || p->writers)
		return;
	mm_release((uint64_t)(uintptr_t)p->buf,
		   (uint64_t)(uintptr_t)p->buf + PIPE_SIZE);
	memset(p, 0, sizeof(*p));
}

static void pipe_release_r(struct ofd *d)
{
	pipe_ring_put(d->obj, true, false);
}

static void pipe_release_w(struct ofd *d)
{
	pipe_ring_put(d->obj, false, true);
}

static int64_t pipe_size(struct ofd *d)
{
	return pipe_ring_used(d->obj); /* what FIONREAD would say */
}

static const struct file_ops pipe_r_ops = {
	.mode = S_IFIFO | 0600,
	.pipe_size = PIPE_SIZE,
	.read = pipe_read,
	.poll = pipe_poll_r,
	.size = pipe_size,
	.release = pipe_release_r,
};
static const struct file_ops pipe_w_ops = {
	.mode = S_IFIFO | 0600,
	.pipe_size = PIPE_SIZE,
	.write = pipe_write,
	.poll = pipe_poll_w,
	.release = pipe_release_w,
};

long sys_pipe2(int *ufds, int flags)
{
	struct pipe *p;
	int fds[2];
	long ret;

	if (flags & ~(O_NONBLOCK | O_CLOEXEC | O_DIRECT))
		return -EINVAL;
	if (!mm_access_ok(ufds, sizeof(fds)))
		return -EFAULT;
	p = pipe_ring_new();
	if (!p)
		return -ENFILE;
	ret = fs_install_pair(&pipe_r_ops, p, (uint32_t)(flags & O_NONBLOCK),
			      &pipe_w_ops, p,
			      1 /* O_WRONLY */ | (uint32_t)(flags & O_NONBLOCK),
			      flags & O_CLOEXEC, fds);
	if (ret) {
		pipe_ring_put(p, true, true);
		return ret;
	}
	memcpy(ufds, fds, sizeof(fds));
	return 0;
}

/* --- eventfd --- */

static long eventfd_read(struct ofd *d, void *buf, uint64_t len)
{
	struct eventfd *e = d->obj;
	uint64_t v;

	if (len < 8)
		return -EINVAL;
	while (!e->count) {
		long ret;

		if (d->flags & O_NONBLOCK)
			return -EAGAIN;
		ret = wait_change();
		if (ret)
			return ret;
	}
	v = e->semaphore ? 1 : e->count;
	e->count -= v;
	memcpy(buf, &v, 8);
	fs_changed();
	return 8;
}

static long eventfd_write(struct ofd *d, const void *buf, uint64_t len)
{
	struct eventfd *e = d->obj;
	uint64_t v;

	if (len < 8)
		return -EINVAL;
	memcpy(&v, buf, 8);
	if (v == UINT64_MAX)
		return -EINVAL;
	while (EVENTFD_MAX - e->count < v) {
		long ret;

		if (d->flags & O_NONBLOCK)
			return -EAGAIN;
		ret = wait_change();
		if (ret)
			return ret;
	}
	e->count += v;
	fs_changed();
	return 8;
}

static unsigned eventfd_poll(struct ofd *d)
{
	struct eventfd *e = d->obj;

	return (e->count ? POLLIN | POLLRDNORM : 0) |
	       (e->count < EVENTFD_MAX ? POLLOUT | POLLWRNORM : 0);
}

static void eventfd_release(struct ofd *d)
{
	memset(d->obj, 0, sizeof(struct eventfd));
}

static const struct file_ops eventfd_ops = {
	.mode = 0600, /* an anonymous inode */
	.read = eventfd_read,
	.write = eventfd_write,
	.poll = eventfd_poll,
	.release = eventfd_release,
};

long sys_eventfd2(uint32_t initval, int flags)
{
	struct eventfd *e = NULL;
	long fd;

	if (flags & ~(O_NONBLOCK | O_CLOEXEC | EFD_SEMAPHORE))
		return -EINVAL;
	for (unsigned i = 0; i < ARRAY_SIZE(eventfds) && !e; i++)
		if (!eventfds[i].in_use)
			e = &eventfds[i];
	if (!e)
		return -ENFILE;
	e->in_use = true;
	e->count = initval;
	e->semaphore = flags & EFD_SEMAPHORE;
	fd = fs_install(&eventfd_ops, e, 2 /* O_RDWR */ |
			(uint32_t)(flags & O_NONBLOCK), flags & O_CLOEXEC);
	if (fd < 0)
		memset(e, 0, sizeof(*e));
	return fd;
}
