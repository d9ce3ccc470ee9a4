/*
 * ember/shellctl.h - the client side of ember-vmm's shell mode
 * (docs/shell.md), for a host agent that keeps a pool of pre-spawned VMMs.
 *
 * A shell is an `ember-vmm --shell` process that has opened /dev/kvm and
 * created its VM and vCPU, and waits on a control socket (AF_UNIX,
 * SOCK_SEQPACKET: one message = one line, file descriptors attached with
 * SCM_RIGHTS) for a snapshot to restore. The protocol in short:
 *
 *   VMM -> READY shell pid=<pid>            once, at start (or ERR <reason>)
 *   -> restore state=I memory=J vsock=K [vsock-connected] [disk=D]...
 *              [workingset=L [workingset-dirty=W]] [serial=M] [prefetch]
 *              [timeout_ms=N]               <- OK restored | ERR <reason>
 *   -> status | pause | resume | ping | workingset fd=I [dirty=J] |
 *      snapshot dir=I | stop                <- OK ... | ERR <reason>
 *   VMM -> EXIT <reason> status=<n> <detail>  once, when the VM ends
 *
 * Threads: an ember_shellctl is used by one thread at a time. Everything
 * the VMM sends is treated as untrusted (bounded lines, checked format).
 */
#ifndef EMBER_SHELLCTL_H
#define EMBER_SHELLCTL_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EMBER_SHELLCTL_LINE_MAX 4096 /* bytes in one line, without '\n' */
#define EMBER_SHELLCTL_MAX_FDS 16    /* fds attached to one message */

/* One message on a SOCK_SEQPACKET socket: `line` (no newline; the
 * receiver accepts one trailing '\n') with `nfds` fds attached. 0 or
 * -errno (-EMSGSIZE for a line or fd count over the limits). */
int ember_shellctl_send(int fd, const char *line, const int *fds,
			unsigned nfds);

/*
 * Receives one message: the line NUL-terminated in buf[cap] (trailing
 * "\n" / "\r\n" removed), its fds in fds[] (*nfds of them; the caller owns
 * and closes them). Waits at most timeout_ms (-1: forever). Returns the
 * line's length (>= 0), -EPIPE when the peer closed, -ETIMEDOUT, -EMSGSIZE (line
 * longer than cap - 1 or more fds than *nfds on entry: the fds that came
 * are closed), -EPROTO (a line with a NUL byte), or another -errno.
 */
int ember_shellctl_recv(int fd, char *buf, size_t cap, int *fds,
			unsigned *nfds, int timeout_ms);

struct ember_shellctl;

/* Takes over a connected SOCK_SEQPACKET socket (closed by
 * ember_shellctl_close). NULL and *err = -errno. */
struct ember_shellctl *ember_shellctl_open(int fd, int *err);

/* Connects to `ember-vmm --shell --control PATH`. NULL and *err. */
struct ember_shellctl *ember_shellctl_connect(const char *path, int *err);

/*
 * Starts `vmm --shell --control-fd N args...` (args NULL-terminated, may be
 * NULL) on a fresh socketpair, with posix_spawn: *pid is the child, the
 * caller reaps it. stdin, stdout and stderr are inherited. For agents that
 * jail their VMMs themselves this is only a reference: make the socketpair,
 * pass one end as --control-fd and ember_shellctl_open() the other.
 */
struct ember_shellctl *ember_shellctl_spawn(const char *vmm,
					    const char *const *args,
					    pid_t *pid, int *err);

/* Waits for the VMM's first line. 0 and *pid (may be NULL) on READY;
 * -EPROTO and the reason in `why` on ERR or garbage; -EPIPE when the VMM
 * closed first (its exit status says why); -ETIMEDOUT. */
int ember_shellctl_wait_ready(struct ember_shellctl *c, int timeout_ms,
			      pid_t *pid, char *why, size_t whylen);

/*
 * Sends `cmd` with `nfds` fds attached and waits up to timeout_ms for its
 * reply. Returns 0 for "OK ..." (the text after "OK " in reply), 1 for
 * "ERR ..." (the reason in reply), -ESRCH when the VM ended instead (an
 * EXIT line came: ember_shellctl_wait_exit() returns it), -EPIPE when the
 * VMM closed the socket, -ETIMEDOUT, -EPROTO for a malformed reply, or the
 * send error. Our copies of fds stay ours (close them when you like).
 */
int ember_shellctl_command(struct ember_shellctl *c, const char *cmd,
			   const int *fds, unsigned nfds, int timeout_ms,
			   char *reply, size_t replylen);

struct ember_shellctl_exit {
	char reason[32];   /* ember_exit_reason_name(): "poweroff", ... */
	int status;        /* ember-vmm's exit status (docs/shell.md) */
	char detail[512];
};

/* Waits up to timeout_ms for the EXIT line (at once when it came during a
 * command). 0, -EPIPE when the socket closed without one, -ETIMEDOUT,
 * -EPROTO for anything else than EXIT. */
int ember_shellctl_wait_exit(struct ember_shellctl *c, int timeout_ms,
			     struct ember_shellctl_exit *ex);

/* The socket, for poll(): readable when a line (normally EXIT) waits. */
int ember_shellctl_fd(const struct ember_shellctl *c);

/* Closes the socket: a VMM whose controller goes away stops its VM and
 * exits. */
void ember_shellctl_close(struct ember_shellctl *c);

/* Parses "EXIT <reason> status=<n> <detail>" (the line without "\n").
 * 0 or -EPROTO. */
int ember_shellctl_parse_exit(const char *line,
			      struct ember_shellctl_exit *ex);

#ifdef __cplusplus
}
#endif

#endif
