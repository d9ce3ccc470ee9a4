/*
 * socket.c - AF_UNIX stream socket pairs (socketpair) and the socket calls
 * that work on them: send/recv (sendto, recvfrom, sendmsg, recvmsg),
 * shutdown, getsockopt/setsockopt, getsockname/getpeername.
 *
 * A function has no network, but language runtimes make socket pairs
 * between their own threads: Python's asyncio event loop wakes itself
 * through one (its "self-pipe"), multiprocessing and others use them as
 * two-way pipes. A pair is two of pipe.c's rings, one per way; each end
 * reads one and writes the other, so blocking, O_NONBLOCK, poll and epoll
 * behave as for pipes, and the rest follows Linux's AF_UNIX stream
 * sockets (net/unix/af_unix.c): a closed or shut-down peer reads as end of
 * file and writes to it fail with EPIPE (and SIGPIPE unless MSG_NOSIGNAL);
 * the ends are unnamed (their address is just the family). Not provided:
 * datagram and seqpacket pairs (EOPNOTSUPP), passing descriptors or
 * credentials in control messages (EOPNOTSUPP), out-of-band data.
 */
#include "kernel.h"

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_RAW 3
#define SOCK_SEQPACKET 5
#define SOCK_TYPE_MASK 0xf
#define SOCK_NONBLOCK 0x800
#define SOCK_CLOEXEC 0x80000
#define SOL_SOCKET 1
#define SO_TYPE 3
#define SO_ERROR 4
#define SO_SNDBUF 7
#define SO_RCVBUF 8
#define SO_KEEPALIVE 9
#define SO_PASSCRED 16
#define SO_PEERCRED 17
#define SO_RCVLOWAT 18
#define SO_SNDLOWAT 19
#define SO_RCVTIMEO 20
#define SO_SNDTIMEO 21
#define SO_ACCEPTCONN 30
#define SO_PROTOCOL 38
#define SO_DOMAIN 39
#define MSG_OOB 0x1
#define MSG_PEEK 0x2
#define MSG_TRUNC 0x20
#define MSG_DONTWAIT 0x40
#define MSG_EOR 0x80
#define MSG_WAITALL 0x100
#define MSG_NOSIGNAL 0x4000
#define MSG_MORE 0x8000
#define MSG_CMSG_CLOEXEC 0x40000000
#define SHUT_RD 0
#define SHUT_WR 1
#define SHUT_RDWR 2
#define POLLWRBAND 0x200
#define S_IFSOCK 0140000u
#define SOCK_BUF (64u << 10) /* each way: the ring's size */
#define IOV_MAX 1024

struct sock_end {
	struct pipe *rx, *tx;   /* read from rx, write to tx */
	bool rd_shut, wr_shut;  /* this end's shutdown(SHUT_RD / SHUT_WR) */
	bool in_use;
};

static struct sock_end ends[FS_MAX_FDS];

/* Linux's x86-64 struct msghdr and struct iovec. */
struct msghdr_k {
	uint64_t name;
	uint32_t namelen, pad0;
	uint64_t iov, iovlen, control, controllen;
	uint32_t flags, pad1;
};
_Static_assert(sizeof(struct msghdr_k) == 56, "struct msghdr layout");
struct iovec_k {
	uint64_t base, len;
};

static const struct file_ops sock_ops;

/* The socket-pair end behind fd into *sp (and its description into *dp
 * when not NULL): 0, -EBADF or -ENOTSOCK. */
static long get_end(int fd, struct ofd **dp, struct sock_end **sp)
{
	struct ofd *d = fs_get(fd);

	if (!d)
		return -EBADF;
	if (d->ops != &sock_ops)
		return -ENOTSOCK;
	if (dp)
		*dp = d;
	*sp = d->obj;
	return 0;
}

/* Peer gone, or SHUT_RD here: reads see end of file. */
static bool rcv_shutdown(const struct sock_end *s)
{
	return s->rd_shut || !pipe_ring_has_writer(s->rx);
}

static long end_recv(struct sock_end *s, void *buf, uint64_t len,
		     bool nonblock, int flags)
{
	uint64_t got = 0;
	long n;

	if (s->rd_shut)
		return 0;
	do {
		n = pipe_ring_read(s->rx, (uint8_t *)buf + got, len - got,
				   nonblock, flags & MSG_PEEK);
		if (n <= 0)
			return got ? (long)got : n;
		got += (uint64_t)n;
	} while ((flags & MSG_WAITALL) && !(flags & MSG_PEEK) && got < len);
	return (long)got;
}

static long end_send(struct sock_end *s, const void *buf, uint64_t len,
		     bool nonblock, int flags)
{
	if (s->wr_shut) {
		if (!(flags & MSG_NOSIGNAL))
			signal_send(sched_cur, 13 /* SIGPIPE */, SI_USER);
		return -EPIPE;
	}
	return pipe_ring_write(s->tx, buf, len, nonblock,
			       !(flags & MSG_NOSIGNAL));
}

static long sock_read(struct ofd *d, void *buf, uint64_t len)
{
	return end_recv(d->obj, buf, len, d->flags & O_NONBLOCK_FLAG, 0);
}

static long sock_write(struct ofd *d, const void *buf, uint64_t len)
{
	return end_send(d->obj, buf, len, d->flags & O_NONBLOCK_FLAG, 0);
}

/* As unix_poll(): RDHUP/IN once the receive side is shut down, HUP once
 * both are, OUT while the peer's ring has room (or a write would fail at
 * once). */
static unsigned sock_poll(struct ofd *d)
{
	struct sock_end *s = d->obj;
	bool rcv_sd = rcv_shutdown(s);
	bool snd_sd = s->wr_shut || !pipe_ring_has_reader(s->tx);
	unsigned m = 0;

	if (rcv_sd && snd_sd)
		m |= POLLHUP;
	if (rcv_sd)
		m |= POLLRDHUP | POLLIN | POLLRDNORM;
	if (!s->rd_shut && pipe_ring_readable(s->rx))
		m |= POLLIN | POLLRDNORM;
	if (snd_sd || pipe_ring_writable(s->tx))
		m |= POLLOUT | POLLWRNORM | POLLWRBAND;
	return m;
}

static int64_t sock_size(struct ofd *d)
{
	struct sock_end *s = d->obj;

	return s->rd_shut ? 0 : pipe_ring_used(s->rx); /* FIONREAD */
}

static void sock_release(struct ofd *d)
{
	struct sock_end *s = d->obj;

	if (!s->rd_shut)
		pipe_ring_put(s->rx, true, false);
	if (!s->wr_shut)
		pipe_ring_put(s->tx, false, true);
	memset(s, 0, sizeof(*s));
}

static const struct file_ops sock_ops = {
	.mode = S_IFSOCK | 0777,
	.read = sock_read,
	.write = sock_write,
	.poll = sock_poll,
	.size = sock_size,
	.release = sock_release,
};

static struct sock_end *free_end(const struct sock_end *other)
{
	for (unsigned i = 0; i < ARRAY_SIZE(ends); i++)
		if (!ends[i].in_use && &ends[i] != other)
			return &ends[i];
	return NULL;
}

long sys_socketpair(int domain, int type, int proto, int *usv)
{
	int flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC), fds[2];
	struct sock_end *a, *b;
	struct pipe *r0, *r1;
	uint32_t fl;
	long ret;

	if (domain == AF_INET || domain == AF_INET6)
		return -EOPNOTSUPP; /* as Linux: IP has no socket pairs */
	if (domain != AF_UNIX)
		return -EAFNOSUPPORT;
	type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (type & ~SOCK_TYPE_MASK)
		return -EINVAL;
	if (type == SOCK_DGRAM || type == SOCK_SEQPACKET || type == SOCK_RAW)
		return -EOPNOTSUPP; /* only streams here */
	if (type != SOCK_STREAM)
		return -ESOCKTNOSUPPORT;
	if (proto != 0 && proto != AF_UNIX)
		return -EPROTONOSUPPORT;
	if (!mm_access_ok(usv, sizeof(fds)))
		return -EFAULT;
	a = free_end(NULL);
	b = a ? free_end(a) : NULL;
	if (!b)
		return -ENFILE;
	r0 = pipe_ring_new();
	r1 = r0 ? pipe_ring_new() : NULL;
	if (!r1) {
		if (r0)
			pipe_ring_put(r0, true, true);
		return -ENFILE;
	}
	*a = (struct sock_end){ .rx = r0, .tx = r1, .in_use = true };
	*b = (struct sock_end){ .rx = r1, .tx = r0, .in_use = true };
	fl = 2 /* O_RDWR */ | ((flags & SOCK_NONBLOCK) ? O_NONBLOCK_FLAG : 0);
	ret = fs_install_pair(&sock_ops, a, fl, &sock_ops, b, fl,
			      flags & SOCK_CLOEXEC, fds);
	if (ret) {
		pipe_ring_put(r0, true, true);
		pipe_ring_put(r1, true, true);
		memset(a, 0, sizeof(*a));
		memset(b, 0, sizeof(*b));
		return ret;
	}
	memcpy(usv, fds, sizeof(fds));
	return 0;
}

/* The flags send and recv take here; others are -EOPNOTSUPP (MSG_OOB) or
 * -EINVAL. */
static long check_flags(int flags, int allowed)
{
	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	return (flags & ~allowed) ? -EINVAL : 0;
}

#define SEND_FLAGS (MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE | MSG_EOR)
#define RECV_FLAGS (MSG_DONTWAIT | MSG_PEEK | MSG_WAITALL | MSG_TRUNC | \
		    MSG_CMSG_CLOEXEC)

long sys_sendto(int fd, const void *buf, uint64_t len, int flags,
		const void *addr, uint32_t addrlen)
{
	struct sock_end *s;
	struct ofd *d;
	long ret = get_end(fd, &d, &s);

	if (ret)
		return ret;
	ret = check_flags(flags, SEND_FLAGS);
	if (ret)
		return ret;
	if (addr || addrlen)
		return -EISCONN; /* a connected stream takes no address */
	if (!mm_access_ok(buf, len))
		return -EFAULT;
	return end_send(s, buf, len, (flags & MSG_DONTWAIT) ||
			(d->flags & O_NONBLOCK_FLAG), flags);
}

/* An unnamed peer: the source address is empty (*addrlen = 0), as Linux
 * reports it for a socket pair. */
static long put_no_addr(void *addrlen)
{
	uint32_t zero = 0;

	if (!addrlen)
		return 0;
	if (!mm_access_ok(addrlen, 4))
		return -EFAULT;
	memcpy(addrlen, &zero, 4);
	return 0;
}

long sys_recvfrom(int fd, void *buf, uint64_t len, int flags, void *addr,
		  void *addrlen)
{
	struct sock_end *s;
	struct ofd *d;
	long ret = get_end(fd, &d, &s);

	(void)addr;
	if (ret)
		return ret;
	ret = check_flags(flags, RECV_FLAGS);
	if (ret)
		return ret;
	if (!mm_access_ok(buf, len))
		return -EFAULT;
	ret = end_recv(s, buf, len, (flags & MSG_DONTWAIT) ||
		       (d->flags & O_NONBLOCK_FLAG), flags);
	if (ret >= 0 && put_no_addr(addrlen))
		return -EFAULT;
	return ret;
}

/* sendmsg/recvmsg: the header copied once, each iovec checked; no control
 * messages (no fd or credential passing). */
static long msg_io(int fd, void *umsg, int flags, bool send)
{
	struct msghdr_k m;
	struct iovec_k iov;
	struct sock_end *s;
	struct ofd *d;
	uint64_t total = 0;
	long ret = get_end(fd, &d, &s);
	bool nonblock;

	if (ret)
		return ret;
	ret = check_flags(flags, send ? SEND_FLAGS : RECV_FLAGS);
	if (ret)
		return ret;
	if (!mm_access_ok(umsg, sizeof(m)))
		return -EFAULT;
	memcpy(&m, umsg, sizeof(m));
	if (m.iovlen > IOV_MAX)
		return -EMSGSIZE;
	if (!mm_access_ok((void *)(uintptr_t)m.iov, m.iovlen * sizeof(iov)))
		return -EFAULT;
	if (send && m.name && m.namelen)
		return -EISCONN;
	if (send && m.controllen)
		return -EOPNOTSUPP;
	nonblock = (flags & MSG_DONTWAIT) || (d->flags & O_NONBLOCK_FLAG);
	for (uint64_t i = 0; i < m.iovlen; i++) {
		long n;

		memcpy(&iov, (const uint8_t *)(uintptr_t)m.iov + i * sizeof(iov),
		       sizeof(iov));
		if (!iov.len)
			continue;
		if (!mm_access_ok((void *)(uintptr_t)iov.base, iov.len))
			return total ? (long)total : -EFAULT;
		n = send ? end_send(s, (const void *)(uintptr_t)iov.base,
				    iov.len, nonblock, flags) :
			   end_recv(s, (void *)(uintptr_t)iov.base, iov.len,
				    nonblock, flags);
		if (n < 0)
			return total ? (long)total : n;
		total += (uint64_t)n;
		/* A short transfer ends it; so does one peek (each iovec
		 * would see the same bytes again). */
		if ((uint64_t)n < iov.len || (flags & MSG_PEEK))
			break;
		/* Once something came, the next read must not block. */
		if (!send && !(flags & MSG_WAITALL))
			nonblock = true;
	}
	if (!send) {
		m.namelen = 0;
		m.controllen = 0;
		m.flags = 0;
		memcpy(umsg, &m, sizeof(m));
	}
	return (long)total;
}

long sys_sendmsg(int fd, void *umsg, int flags)
{
	return msg_io(fd, umsg, flags, true);
}

long sys_recvmsg(int fd, void *umsg, int flags)
{
	return msg_io(fd, umsg, flags, false);
}

long sys_shutdown(int fd, int how)
{
	struct sock_end *s;
	long ret = get_end(fd, NULL, &s);

	if (ret)
		return ret;
	if (how < SHUT_RD || how > SHUT_RDWR)
		return -EINVAL;
	if (how != SHUT_WR && !s->rd_shut) {
		s->rd_shut = true;
		pipe_ring_put(s->rx, true, false); /* the peer's writes: EPIPE */
	}
	if (how != SHUT_RD && !s->wr_shut) {
		s->wr_shut = true;
		pipe_ring_put(s->tx, false, true); /* the peer reads EOF */
	}
	fs_changed();
	return 0;
}

/* For the calls that fill a buffer of *ulen bytes (a socklen_t): fd must
 * be a socket-pair end, *len gets the caller's length (not negative). */
static long get_end_len(int fd, const void *ulen, int32_t *len)
{
	struct sock_end *s;
	long ret = get_end(fd, NULL, &s);

	if (ret)
		return ret;
	if (!mm_access_ok(ulen, 4))
		return -EFAULT;
	memcpy(len, ulen, 4);
	return *len < 0 ? -EINVAL : 0;
}

long sys_getsockopt(int fd, int level, int name, void *val, void *ulen)
{
	int32_t len, v = 0;
	uint32_t cred[3] = { 1, 0, 0 }; /* pid 1, uid 0, gid 0 */
	const void *src = &v;
	size_t size = sizeof(v);
	long ret = get_end_len(fd, ulen, &len);

	if (ret)
		return ret;
	if (level != SOL_SOCKET)
		return -EOPNOTSUPP;
	switch (name) {
	case SO_TYPE:
		v = SOCK_STREAM;
		break;
	case SO_DOMAIN:
		v = AF_UNIX;
		break;
	case SO_PROTOCOL:
	case SO_ERROR:
	case SO_ACCEPTCONN:
	case SO_PASSCRED:
	case SO_KEEPALIVE:
		v = 0;
		break;
	case SO_SNDBUF:
	case SO_RCVBUF:
		v = SOCK_BUF;
		break;
	case SO_RCVLOWAT:
	case SO_SNDLOWAT:
		v = 1;
		break;
	case SO_PEERCRED:
		src = cred;
		size = sizeof(cred);
		break;
	default:
		return -ENOPROTOOPT;
	}
	size = MIN(size, (size_t)len);
	if (!mm_access_ok(val, size))
		return -EFAULT;
	memcpy(val, src, size);
	len = (int32_t)size;
	memcpy(ulen, &len, 4);
	return 0;
}

long sys_setsockopt(int fd, int level, int name, const void *val,
		    uint32_t len)
{
	struct sock_end *s;
	long ret = get_end(fd, NULL, &s);

	if (ret)
		return ret;
	if (level != SOL_SOCKET)
		return -EOPNOTSUPP;
	switch (name) {
	case SO_SNDBUF:
	case SO_RCVBUF:
	case SO_KEEPALIVE:
	case SO_PASSCRED:
	case SO_RCVLOWAT:
	case SO_RCVTIMEO:
	case SO_SNDTIMEO:
		/* Accepted, not acted on: the rings have a fixed size, and
		 * timeouts are the runtime's business (Python keeps its own
		 * with O_NONBLOCK and poll). */
		if ((int32_t)len < 4)
			return -EINVAL;
		return mm_access_ok(val, len) ? 0 : -EFAULT;
	default:
		return -ENOPROTOOPT;
	}
}

/* getsockname/getpeername: an unnamed AF_UNIX socket's address is its
 * family alone (2 bytes). */
long sys_getsockname(int fd, void *addr, void *ulen)
{
	static const uint16_t family = AF_UNIX;
	int32_t len;
	long ret = get_end_len(fd, ulen, &len);

	if (ret)
		return ret;
	if (!mm_access_ok(addr, MIN((uint64_t)len, 2u)))
		return -EFAULT;
	memcpy(addr, &family, MIN((size_t)len, sizeof(family)));
	len = sizeof(family);
	memcpy(ulen, &len, 4);
	return 0;
}
