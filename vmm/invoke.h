/*
 * invoke.h - host side of the function invocation protocol (libember).
 *
 * Owns: one connection to a function instance and the invocations sent over
 * it: the hybrid vsock handshake on a VM's vsock Unix socket
 * ("CONNECT <port>\n" -> "OK <n>\n"), waiting for READY (and answering a
 * READY that asks for it with a SYNC frame: our wall clock and fresh
 * entropy, for a guest restored from a snapshot), sending INVOKE,
 * collecting LOG frames (bounded) and the RESULT or ERROR, all under a
 * deadline. It also drives a handler running as a plain host process over a
 * pair of pipes (no READY there). Frames are proto/invoke.h; the protocol is
 * docs/function-abi.md.
 *
 * Does not: start VMs or processes, retry, or kill anything on timeout (the
 * caller owns the instance and decides). A client is used by one thread at a
 * time; everything it reads from the peer is treated as hostile.
 */
#ifndef EMBER_INVOKE_H
#define EMBER_INVOKE_H

#include <stddef.h>
#include <stdint.h>

/* Outcome of one invocation. The values are also ember-invoke's exit
 * status. */
enum ember_invoke_status {
	EMBER_INVOKE_OK = 0,         /* RESULT with status 0 */
	EMBER_INVOKE_FUNC_ERROR = 1, /* RESULT with status != 0, or ERROR */
	EMBER_INVOKE_TIMEOUT = 2,    /* deadline passed (host or guest side) */
	EMBER_INVOKE_TRANSPORT = 3,  /* connect, I/O, EOF or protocol failure */
};

/* Log bytes kept per invocation unless inv_client_set_log_cap() says
 * otherwise; the rest is counted in logs_dropped. */
#define INV_LOG_CAP_DEFAULT (1024u * 1024u)

struct inv_result {
	enum ember_invoke_status status;
	uint32_t fn_status;   /* RESULT's status when one arrived, else 0 */
	uint32_t err_code;    /* EMBER_ERR_* when an ERROR frame ended it */
	uint8_t *payload;     /* RESULT payload (malloc'd, may be NULL) */
	size_t len;
	char *logs;           /* LOG bytes in arrival order (malloc'd) */
	size_t logs_len;
	size_t logs_dropped;  /* LOG bytes beyond the cap, discarded */
	uint64_t elapsed_ns;  /* INVOKE sent -> RESULT/ERROR received */
	char msg[256];        /* why, when status != EMBER_INVOKE_OK */
};

struct inv_client;

/* Connects to the hybrid-vsock Unix socket `uds_path` and asks for guest
 * `port` (EMBER_INV_VSOCK_PORT normally), within timeout_ms (> 0). NULL and
 * *err = -errno on failure: -ETIMEDOUT, -EPROTO (handshake refused or
 * malformed), or the connect/read error. READY is not awaited here. */
struct inv_client *inv_client_connect(const char *uds_path, uint32_t port,
				      int timeout_ms, int *err);

/* The same handshake on an already connected AF_UNIX stream socket `fd`
 * (say one end of a socketpair whose other end went to a VMM as its
 * connected vsock host socket). Takes fd over (closed on failure too). */
struct inv_client *inv_client_handshake_fd(int fd, uint32_t port,
					   int timeout_ms, int *err);

/* A connection to a function whose handshake the caller has already done
 * (it sent "CONNECT <port>\n" and read exactly the "OK <n>\n" line): READY
 * is pending. Takes fd over (closed on failure too). */
struct inv_client *inv_client_from_vsock_fd(int fd, int *err);

/* The host end of a connection a snapshot carried (ember_restore's
 * vsock_carry_fd): no handshake, and READY was consumed before the
 * snapshot, so the client starts as ready. Takes fd over (closed on
 * failure too). */
struct inv_client *inv_client_from_carried_fd(int fd, int *err);

/* Wraps a handler running as a plain process: frames are written to wfd and
 * read from rfd (which may be the same socket). The fds are made
 * non-blocking and closed by inv_client_destroy() when `own` is set. A plain
 * handler sends no READY, so the client starts as ready. NULL, *err = -ENOMEM
 * or -EINVAL on failure. */
struct inv_client *inv_client_from_fds(int rfd, int wfd, int own, int *err);

/* Bytes of LOG output kept per invocation (0 = keep none). */
void inv_client_set_log_cap(struct inv_client *c, size_t cap);

/* Waits up to timeout_ms for READY (returns at once if it came already).
 * 0, -ETIMEDOUT, -EPIPE (peer closed), -EPROTO (bad frame), -EIO. */
int inv_client_wait_ready(struct inv_client *c, int timeout_ms);

/* Sends one request of `len` bytes (<= EMBER_INV_MAX_PAYLOAD) and waits for
 * its RESULT or ERROR, at most timeout_ms (> 0) plus a short grace for the
 * guest's own timeout report; the INVOKE carries timeout_ms as its deadline.
 * Fills *res (free it with inv_result_free) and returns res->status. Waits
 * for READY first if it has not been seen. After a TIMEOUT or TRANSPORT
 * outcome the connection is unusable: later calls fail with TRANSPORT. */
enum ember_invoke_status inv_client_invoke(struct inv_client *c,
					   const void *in, size_t len,
					   int timeout_ms,
					   struct inv_result *res);

/* Round trip of a PING with `len` (<= EMBER_INV_MAX_PING) bytes: 0 when the
 * matching PONG came back, -ETIMEDOUT, -EPIPE, -EPROTO, -EIO. */
int inv_client_ping(struct inv_client *c, const void *data, size_t len,
		    int timeout_ms);

void inv_client_destroy(struct inv_client *c);
void inv_result_free(struct inv_result *res);

/* One-shot: connect to uds_path/port, wait for READY, invoke, disconnect,
 * all within timeout_ms. Returns res->status (transport failures to connect
 * included), res filled as for inv_client_invoke. */
enum ember_invoke_status ember_invoke(const char *uds_path, uint32_t port,
				      const void *in, size_t len,
				      int timeout_ms, struct inv_result *res);

#endif
