/*
 * relay.h - the invocation relay between the host connection and the
 * handler's stdin/stdout/stderr: what guest-init does with every byte.
 *
 * Owns: both frame streams (proto/invoke.h, docs/function-abi.md section 4,
 * "Guest runtime relay rules"): validating every header the host and the
 * handler send, forwarding INVOKE frames to the handler unchanged,
 * answering PING and applying SYNC itself, refusing what is out of place
 * (BUSY, TOO_LARGE, PROTOCOL), relaying the handler's RESULT/ERROR/PONG
 * frames only when complete (so a handler that dies mid-frame is reported
 * with a clean ERROR, never a cut frame), wrapping stderr into LOG frames
 * (bounded per request), READY once per connection, the request in flight,
 * and the ERROR frames for timeouts and crashes.
 *
 * Does not: touch a file descriptor, a process or a clock. The event loop
 * (main.c) moves bytes between the fds and the two queues here, and the
 * relay tells it, through struct relay_ops, what to do with the world (arm
 * the deadline timer, kill the handler, apply SYNC). That keeps every
 * protocol decision in one pure module the unit test drives with crafted
 * bytes (tests/unit/test_guest_init_relay.c). One thread.
 */
#ifndef GI_RELAY_H
#define GI_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "proto/invoke.h"

/* Backpressure: the loop stops reading the host while this many bytes wait
 * for the handler's stdin, and stops reading the handler while this many
 * wait for the host. A single frame may exceed them (it is queued whole). */
#define RELAY_TO_HANDLER_HIGH (256u * 1024u)
#define RELAY_TO_HOST_HIGH (1024u * 1024u)
/* LOG bytes sent per request (from one INVOKE to the next); the rest is
 * dropped and the next LOG frame carries EMBER_INV_F_LOG_DROPPED. The host
 * keeps 1 MiB by default (vmm/invoke.h). */
#define RELAY_LOG_CAP (1024u * 1024u)
/* The runtime name in our READY frames. */
#define RELAY_READY_NAME "ember-init"

/* A FIFO of byte chunks. Frames are queued whole, so anything queued for
 * the host is between frames by construction. */
struct bq_chunk {
	struct bq_chunk *next;
	uint8_t *data;   /* owned */
	size_t len, off;
};

struct bq {
	struct bq_chunk *head, *tail;
	size_t bytes;    /* not yet consumed */
};

/* The next bytes to write: *p and the returned length (0 = empty). */
size_t bq_peek(const struct bq *q, const uint8_t **p);
/* n bytes of the head were written. */
void bq_consume(struct bq *q, size_t n);
void bq_clear(struct bq *q);

struct relay_ops {
	/* Arm the INVOKE deadline timer to fire in `ms` ms from now; 0 =
	 * disarm. The loop calls relay_deadline_passed() when it fires. */
	void (*deadline)(void *ctx, uint32_t ms);
	/* Apply a SYNC: step the clock, reseed the RNG. */
	void (*sync)(void *ctx, uint64_t realtime_ns,
		     const uint8_t entropy[EMBER_INV_SYNC_ENTROPY]);
	/* The handler must go (it broke the protocol, overran its deadline,
	 * or its stdin stream was cut mid-frame): kill it and start a new one.
	 * `why` is for the console. */
	void (*kill_handler)(void *ctx, const char *why);
	/* Handler stderr with no host to send it to (before READY, or between
	 * connections): the loop writes it to the console. */
	void (*console)(void *ctx, const uint8_t *p, size_t n);
};

struct relay {
	const struct relay_ops *ops;
	void *ctx;

	/* Host connection. */
	int conn;               /* a host is connected */
	int greeted;            /* READY sent on it */
	int closing;            /* close it once to_host is written */
	struct ember_inv_dec hdec;
	int hfwd;               /* the host frame being decoded goes to the handler */
	uint64_t hskip;         /* payload bytes of a refused INVOKE to skip */
	uint64_t hskip_id;
	uint8_t hsmall[EMBER_INV_MAX_PING > EMBER_INV_MAX_SYNC
			       ? EMBER_INV_MAX_PING : EMBER_INV_MAX_SYNC];

	/* Handler. */
	int handler_ready;      /* it has read stdin: it waits for work */
	int handler_gone;       /* being killed, or dead: ignore its output */
	uint64_t cur;           /* id of the INVOKE being served, 0 = none */
	uint32_t cur_deadline;
	struct ember_inv_dec odec;   /* its stdout */
	uint8_t *ofr;                /* frame being assembled: header + payload */
	size_t ofr_len;

	/* Set when the guest is going down for good: every host that
	 * connects from then on gets ERROR id 0 with this text, and no READY. */
	char fatal[256];

	/* LOG accounting for the current request. */
	uint64_t log_sent;
	int log_dropped;

	struct bq to_host, to_handler;
};

void relay_init(struct relay *r, const struct relay_ops *ops, void *ctx);
void relay_free(struct relay *r);

/* A host connected. READY is queued as soon as the handler waits for work
 * and no request is in flight; until then the loop must not read from the
 * host (relay_wants_host_input() says so). */
void relay_host_attach(struct relay *r);
/* The host connection is gone (EOF, error, or the loop closed it after
 * r->closing). Drops whatever was queued for it. A request cut inside its
 * INVOKE frame makes the handler's stream unusable: kill_handler. */
void relay_host_detach(struct relay *r);
/* Bytes from the host. Stops at the first fatal protocol error (an ERROR is
 * queued and r->closing set); later input is ignored. */
void relay_host_input(struct relay *r, const uint8_t *p, size_t n);
int relay_wants_host_input(const struct relay *r);

/* The current handler process has read stdin for the first time. */
void relay_handler_ready(struct relay *r);
/* Bytes from the handler's stdout / stderr. */
void relay_handler_stdout(struct relay *r, const uint8_t *p, size_t n);
void relay_handler_stderr(struct relay *r, const uint8_t *p, size_t n);
/* The handler process ended (its output drained first by the loop). `code`
 * is the ERROR code, `why` the message for the host: with a request in
 * flight the ERROR carries its id, else id 0; a host still waiting for
 * READY gets it with id 0 only if the handler never became ready (its
 * initialisation failed). code 0 = a clean end, no ERROR. Nothing is sent
 * when the relay had already reported the handler (timeout, protocol). A
 * greeted host connection is closed after the report. */
void relay_handler_died(struct relay *r, uint32_t code, const char *why);
/* A new handler process was started (not yet ready). */
void relay_handler_started(struct relay *r);

/* The instance cannot serve any more (its handler failed for good):
 * `why` goes to every host that connects, as ERROR INTERNAL id 0. */
void relay_set_fatal(struct relay *r, const char *why);

/* The deadline timer fired. */
void relay_deadline_passed(struct relay *r);

#endif
