/*
 * vsock_unix.c - the host side of virtio-vsock: Unix sockets compatible with
 * Firecracker's hybrid vsock (docs/vsock.md).
 *
 * host -> guest: accept on uds_path, read "CONNECT <port>\n" (bounded line,
 * deadline VSOCK_HANDSHAKE_MS), queue a REQUEST to the guest; vsock.c writes
 * "OK <local_port>\n" when the guest answers RESPONSE.
 * guest -> host: connect to "<uds_path>_<port>" without blocking.
 * Every callback here runs on the evloop thread and takes the device lock.
 */
#define LOG_MOD "vsock"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "../devtable.h"
#include "../evloop.h"
#include "../log.h"
#include "snapshots/snap.h"
#include "vsock_int.h"

/* While handshakes are pending, deadlines are checked this often. */
#define VSOCK_TIMER_MS 100

int vsock_parse_connect(const char *buf, size_t len, uint32_t *port)
{
	static const char prefix[] = "CONNECT ";
	const size_t plen = sizeof(prefix) - 1;
	uint64_t val = 0;
	size_t i, digits;

	if (len < plen + 2 || len > VSOCK_CONNECT_LINE_MAX ||
	    buf[len - 1] != '\n' || memcmp(buf, prefix, plen) != 0)
		return -EINVAL;
	digits = len - 1 - plen;
	if (digits > 10)
		return -EINVAL;
	for (i = plen; i < len - 1; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -EINVAL;
		val = val * 10 + (uint64_t)(buf[i] - '0');
	}
	/* 0xffffffff is VMADDR_PORT_ANY, never a destination. */
	if (val > 0xfffffffeULL)
		return -EINVAL;
	*port = (uint32_t)val;
	return 0;
}

static void on_conn_event(void *opaque, uint32_t events);

void vsock_host_watch(struct vsock *v, struct vsock_conn *c, uint32_t events)
{
	int ret;

	if (c->fd < 0)
		return;
	/* Interest 0 means "not in the epoll set at all": a hung-up socket
	 * would otherwise report EPOLLHUP in a loop while we wait for the
	 * guest. */
	if (!events) {
		if (c->registered)
			evloop_del(v->loop, c->fd);
		c->registered = false;
		c->ev_mask = 0;
		return;
	}
	if (c->registered)
		ret = evloop_mod(v->loop, c->fd, events);
	else
		ret = evloop_add(v->loop, c->fd, events, on_conn_event, c);
	if (ret < 0) {
		log_warn_rl("cannot watch host socket: %s", strerror(-ret));
		return;
	}
	c->registered = true;
	c->ev_mask = events;
}

void vsock_host_close(struct vsock *v, struct vsock_conn *c)
{
	if (c->fd < 0)
		return;
	if (v->nr_zombies < VSOCK_MAX_ZOMBIES) {
		v->zombie[v->nr_zombies++] = c->registered ? c->fd : ~c->fd;
	} else {
		/* Cannot happen (see VSOCK_MAX_ZOMBIES); never leak the fd. */
		if (c->registered && v->loop)
			evloop_del(v->loop, c->fd);
		close(c->fd);
	}
	c->registered = false;
	c->ev_mask = 0;
	c->fd = -1;
}

void vsock_host_reap(struct vsock *v, const int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		/* ~fd marks a socket that was never in the epoll set; no loop
		 * means it is already destroyed (vsock_destroy). */
		if (fds[i] >= 0) {
			if (v->loop)
				evloop_del(v->loop, fds[i]);
			close(fds[i]);
		} else {
			close(~fds[i]);
		}
	}
}

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
	size_t n = strlen(path);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (n == 0 || n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, path, n + 1);
	return 0;
}

int vsock_host_connect(struct vsock *v, uint32_t port)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 16];
	struct sockaddr_un sa;
	int fd, ret;

	/* Host side given as fds only: there is no <path>_<port> to reach. */
	if (!v->uds_path)
		return -ECONNREFUSED;
	ret = snprintf(path, sizeof(path), "%s_%u", v->uds_path, port);
	if (ret < 0 || (size_t)ret >= sizeof(path))
		return -ENAMETOOLONG;
	ret = fill_addr(&sa, path);
	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A non-blocking Unix connect completes at once or fails (ENOENT,
	 * ECONNREFUSED, EAGAIN when the listener's backlog is full). */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

void vsock_host_arm_timer(struct vsock *v)
{
	struct itimerspec its = {
		.it_interval = { 0, VSOCK_TIMER_MS * 1000000L },
		.it_value = { 0, VSOCK_TIMER_MS * 1000000L },
	};

	if (v->timer_armed || v->timer_fd < 0)
		return;
	if (timerfd_settime(v->timer_fd, 0, &its, NULL) == 0)
		v->timer_armed = true;
}

static uint32_t pick_local_port(struct vsock *v, uint32_t peer_port)
{
	for (unsigned i = 0; i <= VSOCK_MAX_CONNS; i++) {
		uint32_t p = v->next_local_port++;

		if (v->next_local_port == 0xffffffffu)
			v->next_local_port = 1u << 30;
		if (!vsock_conn_lookup(v, p, peer_port))
			return p;
	}
	return 0; /* unreachable: at most VSOCK_MAX_CONNS ports are in use */
}

/* Reads the handshake line without consuming anything past its '\n' (the
 * host may pipeline stream bytes right after it). */
static void handshake_read(struct vsock *v, struct vsock_conn *c)
{
	char peek[VSOCK_CONNECT_LINE_MAX];
	size_t room = sizeof(c->line) - c->line_len, take;
	uint32_t port;
	char *nl;
	ssize_t n;

	n = recv(c->fd, peek, room, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		vsock_conn_close(v, c, false);
		return;
	}
	nl = memchr(peek, '\n', (size_t)n);
	take = nl ? (size_t)(nl - peek) + 1 : (size_t)n;
	if (recv(c->fd, c->line + c->line_len, take, MSG_DONTWAIT) != (ssize_t)take) {
		vsock_conn_close(v, c, false);
		return;
	}
	c->line_len += (uint32_t)take;
	if (!nl) {
		if (c->line_len >= sizeof(c->line)) {
			log_warn_rl("host handshake line too long");
			vsock_conn_close(v, c, false);
		}
		return; /* wait for the rest of the line */
	}
	if (vsock_parse_connect(c->line, c->line_len, &port) < 0) {
		log_warn_rl("bad host handshake line");
		vsock_conn_close(v, c, false);
		return;
	}
	c->peer_port = port;
	c->local_port = pick_local_port(v, port);
	c->state = VCONN_REQ_SENT;
	c->deadline_ms = vsock_now_ms() + VSOCK_HANDSHAKE_MS;
	vsock_conn_hash(v, c);
	vsock_conn_kick(v, c, VPEND_REQUEST);
	vsock_conn_rewatch(v, c); /* nothing to read until the guest answers */
}

static void on_conn_event(void *opaque, uint32_t events)
{
	struct vsock_conn *c = opaque;
	struct vsock *v = c->v;

	pthread_mutex_lock(&v->lock);
	/* The slot may have been closed (or even reused) since epoll saw the
	 * event: events are hints, the state below decides. */
	if (c->fd < 0 || c->state == VCONN_FREE) {
		vsock_unlock(v);
		return;
	}
	if (c->state == VCONN_HANDSHAKE) {
		handshake_read(v, c);
	} else if (c->state == VCONN_ESTABLISHED) {
		bool alive = true;

		if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && c->buf_len)
			alive = vsock_conn_output(v, c);
		if (alive && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
		    !c->host_eof && !(c->guest_shut & VSOCK_SHUTDOWN_RCV)) {
			vsock_conn_kick(v, c, VPEND_DATA);
			vsock_conn_rewatch(v, c);
		}
	}
	vsock_process_queues_locked(v);
	vsock_unlock(v);
}

static void on_accept(void *opaque, uint32_t events)
{
	struct vsock *v = opaque;

	(void)events;
	for (int i = 0; i < 64; i++) {
		struct vsock_conn *c;
		int fd = accept4(v->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warn_errno("accept on %s", v->uds_path);
			return;
		}
		pthread_mutex_lock(&v->lock);
		c = vsock_conn_alloc(v, fd);
		if (!c) {
			log_warn_rl("connection table full, refusing host peer");
			close(fd);
		} else {
			c->state = VCONN_HANDSHAKE;
			c->host_initiated = true;
			c->deadline_ms = vsock_now_ms() + VSOCK_HANDSHAKE_MS;
			vsock_conn_rewatch(v, c);
			vsock_host_arm_timer(v);
		}
		vsock_unlock(v);
	}
}

static void on_timer(void *opaque, uint32_t events)
{
	struct vsock *v = opaque;
	uint64_t ticks, now = vsock_now_ms();
	bool waiting = false;
	struct itimerspec off = { { 0, 0 }, { 0, 0 } };

	(void)events;
	if (read(v->timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_warn_errno("vsock timer");
	pthread_mutex_lock(&v->lock);
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[i];

		if (c->state != VCONN_HANDSHAKE && c->state != VCONN_REQ_SENT)
			continue;
		if (c->deadline_ms > now) {
			waiting = true;
			continue;
		}
		/* No CONNECT line, or no answer from the guest, in time. */
		vsock_conn_close(v, c, true);
	}
	if (!waiting && v->timer_armed) {
		timerfd_settime(v->timer_fd, 0, &off, NULL);
		v->timer_armed = false;
	}
	vsock_process_queues_locked(v);
	vsock_unlock(v);
}

/*
 * Binds uds_path, replacing a stale socket but nothing else. The socket is
 * bound and listening under a temporary name first, then renamed into
 * place, so that a client that sees the path never meets the window
 * between bind() and listen() (ECONNREFUSED).
 */
static int listen_on(const char *path)
{
	struct sockaddr_un sa;
	char tmp[sizeof(sa.sun_path)];
	struct stat st;
	int fd, ret;
	bool renamed = false;

	ret = fill_addr(&sa, path);
	if (ret < 0)
		return ret;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid()) <
	    sizeof(tmp)) {
		ret = fill_addr(&sa, tmp);
		if (ret < 0)
			return ret;
		renamed = true;
		unlink(tmp);
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (unlink(path) < 0)
			return -errno;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 128) < 0 || (renamed && rename(tmp, path) < 0)) {
		ret = -errno;
		close(fd);
		if (renamed)
			unlink(tmp);
		return ret;
	}
	return fd;
}

/* The device around an already listening socket `listen_fd` (ours, or -1
 * for none) and, when uds_path is set, its path (unlinked on destroy). */
static struct vsock *create_common(const char *uds_path, int listen_fd,
				   uint64_t guest_cid, struct evloop *loop,
				   int *err)
{
	struct vsock *v;
	int ret;

	v = calloc(1, sizeof(*v));
	if (!v) {
		ret = -ENOMEM;
		goto err_out;
	}
	ret = vsock_dev_init(v, guest_cid);
	if (ret < 0)
		goto err_free;
	v->loop = loop;
	if (uds_path && !(v->uds_path = strdup(uds_path))) {
		ret = -ENOMEM;
		goto err_fini;
	}
	v->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (v->timer_fd < 0) {
		ret = -errno;
		goto err_path;
	}
	ret = evloop_add(loop, v->timer_fd, EPOLLIN, on_timer, v);
	if (ret < 0)
		goto err_timer;
	if (listen_fd >= 0) {
		ret = evloop_add(loop, listen_fd, EPOLLIN, on_accept, v);
		if (ret < 0)
			goto err_del_timer;
	}
	v->listen_fd = listen_fd;
	return v;

err_del_timer:
	evloop_del(loop, v->timer_fd);
err_timer:
	close(v->timer_fd);
err_path:
	free(v->uds_path);
err_fini:
	vsock_dev_fini(v);
err_free:
	free(v);
err_out:
	*err = ret;
	return NULL;
}

struct vsock *vsock_create(const char *uds_path, uint64_t guest_cid,
			   struct evloop *loop, int *err)
{
	struct vsock *v;
	int fd;

	if (guest_cid < VSOCK_MIN_GUEST_CID || guest_cid > VSOCK_MAX_GUEST_CID) {
		*err = -EINVAL;
		return NULL;
	}
	fd = listen_on(uds_path);
	if (fd < 0) {
		*err = fd;
		return NULL;
	}
	v = create_common(uds_path, fd, guest_cid, loop, err);
	if (!v) {
		close(fd);
		unlink(uds_path);
	}
	return v;
}

/* 0 when fd is an AF_UNIX stream socket, listening or not as asked. */
static int check_unix_stream(int fd, bool listening)
{
	int type = 0, domain = 0, acc = 0;
	socklen_t l1 = sizeof(type), l2 = sizeof(domain), l3 = sizeof(acc);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l2) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l3) < 0)
		return errno == ENOTSOCK ? -ENOTSOCK : -errno;
	if (domain != AF_UNIX || type != SOCK_STREAM)
		return -EPROTOTYPE;
	if (!!acc != listening)
		return -EINVAL;
	return 0;
}

struct vsock *vsock_create_fd(int listen_fd, uint64_t guest_cid,
			      struct evloop *loop, int *err)
{
	struct vsock *v;
	int fd = -1, ret;

	if (guest_cid < VSOCK_MIN_GUEST_CID || guest_cid > VSOCK_MAX_GUEST_CID) {
		*err = -EINVAL;
		return NULL;
	}
	if (listen_fd >= 0) {
		ret = check_unix_stream(listen_fd, true);
		if (ret < 0) {
			*err = ret;
			return NULL;
		}
		fd = fcntl(listen_fd, F_DUPFD_CLOEXEC, 3);
		/* accept4() runs until EAGAIN on the event thread. */
		if (fd < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
			*err = -errno;
			if (fd >= 0)
				close(fd);
			return NULL;
		}
	}
	v = create_common(NULL, fd, guest_cid, loop, err);
	if (!v && fd >= 0)
		close(fd);
	return v;
}

/* A caller's connected host socket, checked and duplicated: ours, or
 * -errno. */
static int take_conn_fd(int conn_fd)
{
	int fd, ret = check_unix_stream(conn_fd, false);

	if (ret < 0)
		return ret;
	fd = fcntl(conn_fd, F_DUPFD_CLOEXEC, 3);
	return fd < 0 ? -errno : fd;
}

int vsock_add_host_conn(struct vsock *v, int conn_fd)
{
	struct vsock_conn *c;
	int fd = take_conn_fd(conn_fd), ret = 0;

	if (fd < 0)
		return fd;
	pthread_mutex_lock(&v->lock);
	c = vsock_conn_alloc(v, fd);
	if (!c) {
		ret = -EMFILE;
		close(fd);
	} else {
		/* From here exactly an accepted host connection: the CONNECT
		 * line is read when the socket turns readable. */
		c->state = VCONN_HANDSHAKE;
		c->host_initiated = true;
		c->deadline_ms = vsock_now_ms() + VSOCK_HANDSHAKE_MS;
		vsock_conn_rewatch(v, c);
		vsock_host_arm_timer(v);
	}
	vsock_unlock(v);
	return ret;
}

int vsock_add_carried_conn(struct vsock *v, int conn_fd)
{
	int fd = take_conn_fd(conn_fd), ret;

	if (fd < 0)
		return fd;
	pthread_mutex_lock(&v->lock);
	ret = v->has_carry ? vsock_carry_attach_locked(v, &v->carry, fd) :
			     -ENOENT;
	v->has_carry = false; /* one host socket for it, not two */
	if (ret == 0)
		vsock_process_queues_locked(v); /* a CREDIT_UPDATE owed */
	vsock_unlock(v);
	if (ret < 0)
		close(fd);
	return ret;
}

void vsock_destroy(struct vsock *v)
{
	if (!v)
		return;
	v->loop = NULL; /* destroyed already: close without unregistering */
	vsock_dev_fini(v);
	close(v->timer_fd);
	if (v->listen_fd >= 0)
		close(v->listen_fd);
	if (v->uds_path)
		unlink(v->uds_path);
	free(v->uds_path);
	free(v->record_path);
	free(v);
}

/* ------------------------------------------------- the device table's */

#define DEFAULT_GUEST_CID 3

static unsigned vsock_count(const struct ember_config *cfg)
{
	return cfg->vsock_path ? 1 : 0;
}

/* Records `path` as the one a snapshot of v names. */
static void *recorded(struct vsock *v, const char *path, int *ret, char *err,
		      size_t errlen)
{
	v->record_path = strdup(path);
	if (!v->record_path) {
		vsock_destroy(v);
		*ret = errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	return v;
}

/* Why a socket path cannot be listened on, in the user's terms: the two
 * errors of listen_on() that strerror() words badly. */
static const char *listen_errstr(int ret)
{
	switch (ret) {
	case -EEXIST:
		return "it exists and is not a socket (not replaced)";
	case -ENAMETOOLONG:
		return "empty, or longer than a socket path may be (107 bytes)";
	default:
		return strerror(-ret);
	}
}

static void *vsock_dev_create(const struct vm_dev_ctx *ctx,
			      const struct virtio_dev_ops **ops, int *ret,
			      char *err, size_t errlen)
{
	const struct ember_config *cfg = ctx->cfg;
	struct vsock *v;

	v = vsock_create(cfg->vsock_path,
			 cfg->vsock_cid ? cfg->vsock_cid : DEFAULT_GUEST_CID,
			 ctx->loop, ret);
	if (!v) {
		errbuf_fail(err, errlen, *ret, "cannot create vsock at '%s': %s",
			    cfg->vsock_path, listen_errstr(*ret));
		return NULL;
	}
	*ops = &vsock_ops;
	return recorded(v, cfg->vsock_path, ret, err, errlen);
}

/* The saved connection a snapshot carries, if any (vsock_carry.c). */
static int restore_carry(struct vsock *v, const struct snap_virtio_dev *saved,
			 char *err, size_t errlen)
{
	const struct snap_prop *p = snap_prop_find(saved, VSOCK_CARRY_PROP);

	if (!p)
		return 0;
	if (vsock_carry_decode(p->data, p->len, &v->carry) < 0)
		return errbuf_fail(err, errlen, -EINVAL, "vsock: bad saved "
				   "state (carried-conn)");
	v->has_carry = true;
	return 0;
}

/* Saved: guest-cid (u64, 3..0xfffffffe), uds-path (string) and, when the
 * snapshot carries a connection, carried-conn (VSOCK_CARRY_LEN bytes).
 * The host side: the caller's vsock_path, or its listening and/or
 * connected sockets, or (restoring from a directory) the saved path. */
static void *vsock_dev_restore(const struct vm_dev_ctx *ctx,
			       const struct snap_virtio_dev *saved,
			       const struct virtio_dev_ops **ops, int *ret,
			       char *err, size_t errlen)
{
	const struct ember_restore *r = ctx->restore;
	char path[SNAP_UDS_PATH_MAX];
	bool by_fd = !r->vsock_path && (r->vsock_listen_fd >= 0 ||
					r->vsock_conn_fd >= 0 ||
					r->vsock_carry_fd >= 0);
	uint64_t cid;
	struct vsock *v;

	*ret = snap_prop_u64(saved, "guest-cid", &cid, err, errlen);
	if (!*ret)
		*ret = snap_prop_str(saved, "uds-path", path, sizeof(path), err,
				     errlen);
	if (*ret) {
		*ret = -EINVAL;
		return NULL;
	}
	/* 0-2 are reserved and 0xffffffff is "any" (virtio 1.2, 5.10.4). */
	if (cid < VSOCK_MIN_GUEST_CID || cid > VSOCK_MAX_GUEST_CID || !path[0]) {
		*ret = errbuf_fail(err, errlen, -EINVAL, "vsock: bad saved state "
				   "(guest cid %llu)", (unsigned long long)cid);
		return NULL;
	}
	if (!by_fd && !r->vsock_path && !r->dir) {
		*ret = errbuf_fail(err, errlen, -EDESTADDRREQ, "restoring from "
				   "fds: the snapshot has a vsock device, give "
				   "its host side (a path, a listening or a "
				   "connected socket, or the carried "
				   "connection's)");
		return NULL;
	}
	v = by_fd ? vsock_create_fd(r->vsock_listen_fd, cid, ctx->loop, ret) :
		vsock_create(r->vsock_path ? r->vsock_path : path, cid,
			     ctx->loop, ret);
	if (!v) {
		if (by_fd)
			errbuf_fail(err, errlen, *ret, "cannot use the vsock "
				    "listening socket: %s", strerror(-*ret));
		else
			errbuf_fail(err, errlen, *ret, "cannot create vsock at "
				    "'%s': %s", r->vsock_path ? r->vsock_path :
				    path, listen_errstr(*ret));
		return NULL;
	}
	*ret = restore_carry(v, saved, err, errlen);
	if (*ret < 0) {
		vsock_destroy(v);
		return NULL;
	}
	*ops = &vsock_ops;
	return recorded(v, r->vsock_path ? r->vsock_path : path, ret, err,
			errlen);
}

static int vsock_check_restore(const struct ember_restore *r, unsigned n,
			       char *err, size_t errlen)
{
	if (r->vsock_path && r->vsock_listen_fd >= 0)
		return errbuf_fail(err, errlen, -EDESTADDRREQ, "vsock: a path or "
				   "a listening socket, not both");
	if (!n && (r->vsock_path || r->vsock_listen_fd >= 0 ||
		   r->vsock_conn_fd >= 0 || r->vsock_carry_fd >= 0))
		return errbuf_fail(err, errlen, -EDESTADDRREQ, "a vsock host "
				   "side given, but the snapshot has no vsock "
				   "device");
	return 0;
}

/* A restored guest's connections belong to the original: reset the
 * transport; or, given the host socket for the connection the snapshot
 * carries, keep the guest's one connection and serve it on that socket.
 * Then the caller's connected socket, if any, comes in as a fresh host
 * connection (after the reset, which would drop it). */
static int vsock_dev_restored(void *dev, const struct vm_dev_ctx *ctx,
			      char *err, size_t errlen)
{
	struct vsock *v = dev;
	int ret;

	if (ctx->restore->vsock_carry_fd >= 0) {
		ret = vsock_add_carried_conn(v, ctx->restore->vsock_carry_fd);
		if (ret == -ENOENT)
			return errbuf_fail(err, errlen, -EDESTADDRREQ, "vsock: "
					   "a socket for the carried connection "
					   "given, but the snapshot carries "
					   "none (docs/snapshots.md)");
		if (ret < 0)
			return errbuf_fail(err, errlen, ret, "vsock carried "
					   "connection's socket: %s",
					   strerror(-ret));
	} else if (v->t) {
		vsock_transport_reset(v);
	}
	if (ctx->restore->vsock_conn_fd < 0)
		return 0;
	ret = vsock_add_host_conn(v, ctx->restore->vsock_conn_fd);
	if (ret < 0)
		return errbuf_fail(err, errlen, ret, "vsock connected socket: %s",
				   strerror(-ret));
	return 0;
}

static int vsock_dev_save(void *dev, struct snap_virtio_dev *saved, char *err,
			  size_t errlen)
{
	struct vsock *v = dev;
	struct vsock_carry k;
	uint8_t rec[VSOCK_CARRY_LEN];
	const char *why;
	int ret = snap_prop_set_u64(saved, "guest-cid", v->guest_cid);

	if (!ret)
		ret = snap_prop_set_str(saved, "uds-path", v->record_path);
	if (!ret && !vsock_carry_capture(v, &k, &why)) {
		log_debug("no connection carried: %s", why);
	} else if (!ret) {
		vsock_carry_encode(&k, rec);
		ret = snap_prop_set(saved, VSOCK_CARRY_PROP, rec, sizeof(rec));
	}
	if (ret < 0)
		return errbuf_fail(err, errlen, ret, "vsock: cannot record its "
				   "state");
	return 0;
}

static int vsock_dev_quiesce(void *dev)
{
	vsock_quiesce(dev);
	return 0;
}

static void vsock_dev_resume(void *dev)
{
	vsock_resume(dev);
}

static void vsock_dev_destroy(void *dev)
{
	vsock_destroy(dev);
}

const struct vm_device_type vsock_type = {
	.name = "vsock",
	.virtio_id = VIRTIO_ID_VSOCK,
	.count = vsock_count,
	.create = vsock_dev_create,
	.restore = vsock_dev_restore,
	.check_restore = vsock_check_restore,
	.restored = vsock_dev_restored,
	.save = vsock_dev_save,
	.quiesce = vsock_dev_quiesce,
	.resume = vsock_dev_resume,
	.destroy = vsock_dev_destroy,
};
