/*
 * transport.h - where guest-init listens for the host: the seam.
 *
 * Owns: the listening socket and each accepted connection up to the point
 * where it carries frames. Two kinds, chosen at run time (--transport):
 *   vsock[:PORT]  AF_VSOCK on PORT (default EMBER_INV_VSOCK_PORT = 1024),
 *                 any CID: the Linux guest. The VMM does the host side's
 *                 hybrid handshake (docs/vsock.md), so frames start at once.
 *   unix:PATH     an AF_UNIX stream socket at PATH, on which guest-init
 *                 plays the VMM's part of the hybrid handshake
 *                 ("CONNECT 1024\n" -> "OK 1073741824\n"), so that the same
 *                 host client (vmm/invoke.c, ember-invoke --vsock PATH)
 *                 talks to it unchanged. The test seam on hosts where a
 *                 Linux guest's user space cannot run (docs/guest-init.md).
 * Everything above this module is identical for both.
 */
#ifndef GI_TRANSPORT_H
#define GI_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#define TRANSPORT_HANDSHAKE_MAX 32   /* as the VMM: docs/vsock.md */
#define TRANSPORT_HANDSHAKE_MS 2000

enum transport_kind { TRANSPORT_VSOCK, TRANSPORT_UNIX };

struct transport {
	enum transport_kind kind;
	uint32_t port;
	char path[108];      /* sun_path */
	int dirfd;           /* the socket's directory, to unlink it later */
	char name[108];
	int lfd;
};

/* The per-connection handshake state (unix only). */
struct transport_hs {
	char line[TRANSPORT_HANDSHAKE_MAX];
	size_t n;
	uint64_t deadline_ns;  /* CLOCK_MONOTONIC */
};

/* Parses a --transport value. 0 or -EINVAL with a reason. */
int transport_parse(const char *spec, struct transport *t, char *err,
		    size_t errlen);
/* Creates the listening socket. 0 or -errno with a reason. */
int transport_listen(struct transport *t, char *err, size_t errlen);
/* Accepts one connection, non-blocking: its fd, or -errno (-EAGAIN when
 * none is waiting). hs is reset for it. */
int transport_accept(struct transport *t, struct transport_hs *hs,
		     uint64_t now_ns);
/* Whether connections of this kind start with the handshake. */
int transport_needs_handshake(const struct transport *t);
/* Reads what is there of the handshake line on fd and answers it. Returns 1
 * when done (bytes after the line, if any, are copied to extra[*extra_len],
 * at most TRANSPORT_HANDSHAKE_MAX), 0 for more, -errno to drop the
 * connection (malformed line, wrong port, EOF). */
int transport_handshake(struct transport *t, int fd, struct transport_hs *hs,
			uint8_t *extra, size_t *extra_len);
/* Closes the listener (and removes a unix socket). */
void transport_close(struct transport *t);

#endif
