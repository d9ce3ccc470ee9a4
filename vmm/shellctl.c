/*
 * shellctl.c - messages of the shell control protocol (both ends) and the
 * client an agent drives a pooled ember-vmm with (ember/shellctl.h,
 * docs/shell.md).
 *
 * One message on a SOCK_SEQPACKET socket is one line; file descriptors
 * ride along as SCM_RIGHTS. Nothing from the peer is trusted: a line is
 * bounded and must not contain NUL, a message with more fds than asked for
 * is refused and the fds that came are closed (MSG_CTRUNC), and the
 * client checks the shape of every line it parses.
 */
#include "ember/shellctl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int ember_shellctl_send(int fd, const char *line, const int *fds,
			unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * EMBER_SHELLCTL_MAX_FDS)];
		struct cmsghdr align;
	} u;
	size_t len = strlen(line);
	struct iovec iov = { .iov_base = (void *)(uintptr_t)line,
			     .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (len > EMBER_SHELLCTL_LINE_MAX || nfds > EMBER_SHELLCTL_MAX_FDS)
		return -EMSGSIZE;
	if (nfds) {
		struct cmsghdr *cm;

		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	do {
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* Closes every fd of every SCM_RIGHTS block in msg. */
static void close_passed(struct msghdr *msg)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm;
	     cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		     i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			close(fd);
		}
	}
}

int ember_shellctl_recv(int fd, char *buf, size_t cap, int *fds,
			unsigned *nfds, int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * EMBER_SHELLCTL_MAX_FDS)];
		struct cmsghdr align;
	} u;
	unsigned want = nfds ? *nfds : 0, got = 0;
	struct iovec iov = { .iov_base = buf, .iov_len = cap ? cap - 1 : 0 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;
	int ret = 0;

	if (nfds)
		*nfds = 0;
	if (cap < 2)
		return -EINVAL;
	if (timeout_ms >= 0) {
		do {
			ret = poll(&p, 1, timeout_ms);
		} while (ret < 0 && errno == EINTR);
		if (ret < 0)
			return -errno;
		if (ret == 0)
			return -ETIMEDOUT;
	}
	do {
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* Too long, or more fds than fit: refuse the whole message. */
	if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		close_passed(&msg);
		return -EMSGSIZE;
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm;
	     cm = CMSG_NXTHDR(&msg, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (got + k > want) {
			close_passed(&msg);
			for (unsigned i = 0; i < got; i++)
				close(fds[i]);
			return -EMSGSIZE;
		}
		memcpy(fds + got, CMSG_DATA(cm), k * sizeof(int));
		got += (unsigned)k;
	}
	/* SOCK_SEQPACKET: 0 bytes and no fds is the peer's close (nobody
	 * sends empty messages: a line has at least a character). */
	if (n == 0 && got == 0)
		return -EPIPE;
	if (memchr(buf, '\0', (size_t)n)) {
		for (unsigned i = 0; i < got; i++)
			close(fds[i]);
		return -EPROTO;
	}
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	if (nfds)
		*nfds = got;
	return (int)n;
}

/* ------------------------------------------------------------- client */

struct ember_shellctl {
	int fd;
	bool exited;                  /* an EXIT line was read */
	bool closed;                  /* the peer closed */
	struct ember_shellctl_exit exit;
};

struct ember_shellctl *ember_shellctl_open(int fd, int *err)
{
	struct ember_shellctl *c;
	int type = 0;
	socklen_t l = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0) {
		*err = -errno;
		return NULL;
	}
	if (type != SOCK_SEQPACKET) {
		*err = -EPROTOTYPE;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		*err = -ENOMEM;
		return NULL;
	}
	c->fd = fd;
	return c;
}

struct ember_shellctl *ember_shellctl_connect(const char *path, int *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ember_shellctl *c;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		*err = -ENAMETOOLONG;
		return NULL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		*err = -errno;
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	c = ember_shellctl_open(fd, err);
	if (!c)
		close(fd);
	return c;
}

struct ember_shellctl *ember_shellctl_spawn(const char *vmm,
					    const char *const *args,
					    pid_t *pid, int *err)
{
	posix_spawn_file_actions_t fa;
	struct ember_shellctl *c;
	char *argv[64]; /* exec's type; nothing writes through it */
	char fdnum[16];
	unsigned n = 0;
	int sv[2], child, ret;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		*err = -errno;
		return NULL;
	}
	/* The child's end at a fixed number without FD_CLOEXEC: dup2 to
	 * another number clears it (a dup2 onto itself might not). */
	child = sv[1] == 3 ? 4 : 3;
	snprintf(fdnum, sizeof(fdnum), "%d", child);
#define ARG(s) (argv[n++] = (char *)(uintptr_t)(s))
	ARG(vmm);
	ARG("--shell");
	ARG("--control-fd");
	ARG(fdnum);
	for (; args && *args && n < 63; args++)
		ARG(*args);
#undef ARG
	argv[n] = NULL;
	if ((ret = posix_spawn_file_actions_init(&fa)) != 0) {
		*err = -ret;
		goto err_close;
	}
	ret = posix_spawn_file_actions_adddup2(&fa, sv[1], child);
	if (!ret)
		ret = posix_spawn(pid, vmm, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (ret) {
		*err = -ret;
		goto err_close;
	}
	close(sv[1]);
	c = ember_shellctl_open(sv[0], err);
	if (!c)
		close(sv[0]);
	return c;

err_close:
	close(sv[0]);
	close(sv[1]);
	return NULL;
}

int ember_shellctl_fd(const struct ember_shellctl *c)
{
	return c->fd;
}

void ember_shellctl_close(struct ember_shellctl *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}

int ember_shellctl_parse_exit(const char *line, struct ember_shellctl_exit *ex)
{
	const char *p = line + 5, *sp;
	char *end;
	long st;
	size_t n;

	memset(ex, 0, sizeof(*ex));
	if (strncmp(line, "EXIT ", 5))
		return -EPROTO;
	sp = strchr(p, ' ');
	n = sp ? (size_t)(sp - p) : 0;
	if (!n || n >= sizeof(ex->reason) || strncmp(sp, " status=", 8))
		return -EPROTO;
	memcpy(ex->reason, p, n);
	errno = 0;
	st = strtol(sp + 8, &end, 10);
	if (errno || end == sp + 8 || st < 0 || st > 255 ||
	    (*end && *end != ' '))
		return -EPROTO;
	ex->status = (int)st;
	snprintf(ex->detail, sizeof(ex->detail), "%s", *end ? end + 1 : "");
	return 0;
}

static int ms_left(const struct timespec *deadline, int timeout_ms)
{
	struct timespec now;
	long long ms;

	if (timeout_ms < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
	     (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? (int)ms : 0;
}

static void deadline_in(struct timespec *d, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, d);
	if (timeout_ms < 0)
		return;
	d->tv_sec += timeout_ms / 1000;
	d->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (d->tv_nsec >= 1000000000L) {
		d->tv_sec++;
		d->tv_nsec -= 1000000000L;
	}
}

/* The next line from the VMM (no fds expected: any that come are
 * closed). An EXIT line is recorded on the way. */
static int read_line(struct ember_shellctl *c, char *buf, size_t cap,
		     int timeout_ms)
{
	int fds[EMBER_SHELLCTL_MAX_FDS];
	unsigned nfds = EMBER_SHELLCTL_MAX_FDS;
	int n;

	if (c->closed)
		return -EPIPE;
	n = ember_shellctl_recv(c->fd, buf, cap, fds, &nfds, timeout_ms);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	if (n == -EPIPE || n == -ECONNRESET) {
		c->closed = true;
		return -EPIPE;
	}
	if (n < 0)
		return n;
	if (!strncmp(buf, "EXIT ", 5) && !c->exited) {
		if (ember_shellctl_parse_exit(buf, &c->exit) < 0)
			return -EPROTO;
		c->exited = true;
	}
	return n;
}

int ember_shellctl_wait_ready(struct ember_shellctl *c, int timeout_ms,
			      pid_t *pid, char *why, size_t whylen)
{
	char line[EMBER_SHELLCTL_LINE_MAX + 1];
	long v;
	char *end;
	int n = read_line(c, line, sizeof(line), timeout_ms);

	if (why && whylen)
		why[0] = '\0';
	if (n < 0)
		return n;
	if (!strncmp(line, "READY shell pid=", 16)) {
		errno = 0;
		v = strtol(line + 16, &end, 10);
		if (!errno && end != line + 16 && v > 0 &&
		    (*end == '\0' || *end == ' ')) {
			if (pid)
				*pid = (pid_t)v;
			return 0;
		}
	}
	if (why && whylen)
		snprintf(why, whylen, "%s",
			 !strncmp(line, "ERR ", 4) ? line + 4 : line);
	return -EPROTO;
}

int ember_shellctl_command(struct ember_shellctl *c, const char *cmd,
			   const int *fds, unsigned nfds, int timeout_ms,
			   char *reply, size_t replylen)
{
	char line[EMBER_SHELLCTL_LINE_MAX + 1];
	struct timespec deadline;
	int ret;

	if (reply && replylen)
		reply[0] = '\0';
	if (c->exited)
		return -ESRCH;
	ret = ember_shellctl_send(c->fd, cmd, fds, nfds);
	if (ret == -EPIPE || ret == -ECONNRESET) {
		c->closed = true;
		return -EPIPE;
	}
	if (ret < 0)
		return ret;
	deadline_in(&deadline, timeout_ms);
	for (;;) {
		int n = read_line(c, line, sizeof(line),
				  ms_left(&deadline, timeout_ms));

		if (n < 0)
			return c->exited && n == -EPIPE ? -ESRCH : n;
		if (!strncmp(line, "EXIT ", 5))
			return -ESRCH; /* the VM ended before answering */
		if (!strcmp(line, "OK") || !strncmp(line, "OK ", 3)) {
			if (reply && replylen)
				snprintf(reply, replylen, "%s",
					 line[2] ? line + 3 : "");
			return 0;
		}
		if (!strncmp(line, "ERR ", 4)) {
			if (reply && replylen)
				snprintf(reply, replylen, "%s", line + 4);
			return 1;
		}
		if (reply && replylen)
			snprintf(reply, replylen, "unexpected line: %.200s",
				 line);
		return -EPROTO;
	}
}

int ember_shellctl_wait_exit(struct ember_shellctl *c, int timeout_ms,
			     struct ember_shellctl_exit *ex)
{
	char line[EMBER_SHELLCTL_LINE_MAX + 1];
	int n;

	if (!c->exited) {
		n = read_line(c, line, sizeof(line), timeout_ms);
		if (n < 0)
			return n;
		if (!c->exited)
			return -EPROTO;
	}
	*ex = c->exit;
	return 0;
}
