/*
 * transport.c - vsock listener, and the Unix-socket seam with the hybrid
 * handshake: see transport.h.
 */
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/invoke.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
/* struct sockaddr_vm of uapi linux/vm_sockets.h (musl ships no Linux
 * headers); the layout is the kernel's ABI. */
struct gi_sockaddr_vm {
	unsigned short svm_family;
	unsigned short svm_reserved1;
	unsigned int svm_port;
	unsigned int svm_cid;
	unsigned char svm_flags;
	unsigned char svm_zero[3];
};
#define GI_VMADDR_CID_ANY 0xffffffffu
/* What the VMM answers (Firecracker hands out host ports from 2^30). */
#define HANDSHAKE_OK "OK 1073741824\n"

static int parse_port(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > 0xfffffffeul || s[0] == '-')
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int transport_parse(const char *spec, struct transport *t, char *err,
		    size_t errlen)
{
	memset(t, 0, sizeof(*t));
	t->lfd = t->dirfd = -1;
	t->port = EMBER_INV_VSOCK_PORT;
	if (!strcmp(spec, "vsock")) {
		t->kind = TRANSPORT_VSOCK;
		return 0;
	}
	if (!strncmp(spec, "vsock:", 6)) {
		t->kind = TRANSPORT_VSOCK;
		if (parse_port(spec + 6, &t->port)) {
			snprintf(err, errlen, "bad vsock port '%s'", spec + 6);
			return -EINVAL;
		}
		return 0;
	}
	if (!strncmp(spec, "unix:", 5)) {
		const char *p = spec + 5, *slash;

		t->kind = TRANSPORT_UNIX;
		if (!*p || strlen(p) >= sizeof(t->path)) {
			snprintf(err, errlen,
				 "unix socket path empty or over %zu bytes",
				 sizeof(t->path) - 1);
			return -EINVAL;
		}
		memcpy(t->path, p, strlen(p) + 1);
		slash = strrchr(t->path, '/');
		snprintf(t->name, sizeof(t->name), "%s", slash ? slash + 1 : t->path);
		if (!t->name[0]) {
			snprintf(err, errlen, "unix socket path '%s' names a directory", p);
			return -EINVAL;
		}
		return 0;
	}
	snprintf(err, errlen, "unknown transport '%s' (vsock[:PORT] or unix:PATH)",
		 spec);
	return -EINVAL;
}

static int listen_vsock(struct transport *t, char *err, size_t errlen)
{
	struct gi_sockaddr_vm sa = { .svm_family = AF_VSOCK,
				     .svm_port = t->port,
				     .svm_cid = GI_VMADDR_CID_ANY };
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0) {
		int e = errno; /* formatting may change errno */

		snprintf(err, errlen, "vsock socket: %s (no virtio-vsock device?)",
			 strerror(e));
		return -e;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 16) < 0) {
		int e = errno;

		snprintf(err, errlen, "vsock port %u: %s", t->port, strerror(e));
		close(fd);
		return -e;
	}
	t->lfd = fd;
	return 0;
}

static int listen_unix(struct transport *t, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(t->path)];
	char *slash;
	int fd, e;

	memcpy(sa.sun_path, t->path, strlen(t->path) + 1);
	/* Keep the directory open: guest-init may mount over it later (/tmp
	 * in a test's namespace) and still has to remove the socket. */
	memcpy(dir, t->path, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		memcpy(dir, ".", 2);
	t->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dirfd < 0) {
		e = errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(e));
		return -e;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		e = errno;
		snprintf(err, errlen, "socket: %s", strerror(e));
		goto err_dir;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 16) < 0) {
		e = errno;
		snprintf(err, errlen, "%s: %s", t->path, strerror(e));
		close(fd);
		goto err_dir;
	}
	t->lfd = fd;
	return 0;

err_dir:
	close(t->dirfd);
	t->dirfd = -1;
	return -e;
}

int transport_listen(struct transport *t, char *err, size_t errlen)
{
	return t->kind == TRANSPORT_VSOCK ? listen_vsock(t, err, errlen)
					  : listen_unix(t, err, errlen);
}

int transport_needs_handshake(const struct transport *t)
{
	return t->kind == TRANSPORT_UNIX;
}

int transport_accept(struct transport *t, struct transport_hs *hs,
		     uint64_t now_ns)
{
	int fd = accept4(t->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return -errno;
	memset(hs, 0, sizeof(*hs));
	hs->deadline_ns = now_ns + (uint64_t)TRANSPORT_HANDSHAKE_MS * 1000000ull;
	return fd;
}

int transport_handshake(struct transport *t, int fd, struct transport_hs *hs,
			uint8_t *extra, size_t *extra_len)
{
	static const char ok[] = HANDSHAKE_OK;
	char *nl, num[16];
	size_t len, i;
	uint32_t port;
	ssize_t n;

	*extra_len = 0;
	/* Read at most the line's maximum: bytes after it may be frames. */
	n = read(fd, hs->line + hs->n, sizeof(hs->line) - hs->n);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ECONNRESET;
	hs->n += (size_t)n;
	nl = memchr(hs->line, '\n', hs->n);
	if (!nl)
		return hs->n == sizeof(hs->line) ? -EPROTO : 0;
	len = (size_t)(nl - hs->line);
	/* Strictly "CONNECT <1..10 digits>\n", as the VMM. */
	if (len < 9 || len > 8 + 10 || memcmp(hs->line, "CONNECT ", 8))
		return -EPROTO;
	for (i = 8; i < len; i++)
		if (hs->line[i] < '0' || hs->line[i] > '9')
			return -EPROTO;
	memcpy(num, hs->line + 8, len - 8);
	num[len - 8] = '\0';
	if (parse_port(num, &port) || port != t->port)
		return -ECONNREFUSED; /* nobody listens there: like an RST */
	if (write(fd, ok, sizeof(ok) - 1) != (ssize_t)sizeof(ok) - 1)
		return -EIO;
	*extra_len = hs->n - len - 1;
	memcpy(extra, nl + 1, *extra_len);
	return 1;
}

void transport_close(struct transport *t)
{
	if (t->lfd >= 0)
		close(t->lfd);
	t->lfd = -1;
	if (t->dirfd >= 0) {
		unlinkat(t->dirfd, t->name, 0);
		close(t->dirfd);
	}
	t->dirfd = -1;
}
