/*
 * relay.c - the invocation relay: see relay.h and docs/guest-init.md.
 */
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- byte queues ---- */

static int bq_push_owned(struct bq *q, uint8_t *data, size_t len)
{
	struct bq_chunk *c = malloc(sizeof(*c));

	if (!c) {
		free(data);
		return -1;
	}
	*c = (struct bq_chunk){ .data = data, .len = len };
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
	q->bytes += len;
	return 0;
}

static int bq_push_copy(struct bq *q, const void *p, size_t len)
{
	uint8_t *d;

	if (!len)
		return 0;
	d = malloc(len);
	if (!d)
		return -1;
	memcpy(d, p, len);
	return bq_push_owned(q, d, len);
}

size_t bq_peek(const struct bq *q, const uint8_t **p)
{
	if (!q->head) {
		*p = NULL;
		return 0;
	}
	*p = q->head->data + q->head->off;
	return q->head->len - q->head->off;
}

void bq_consume(struct bq *q, size_t n)
{
	while (n && q->head) {
		struct bq_chunk *c = q->head;
		size_t k = c->len - c->off < n ? c->len - c->off : n;

		c->off += k;
		q->bytes -= k;
		n -= k;
		if (c->off == c->len) {
			q->head = c->next;
			if (!q->head)
				q->tail = NULL;
			free(c->data);
			free(c);
		}
	}
}

void bq_clear(struct bq *q)
{
	bq_consume(q, q->bytes);
	/* Empty chunks (none are queued, but be safe). */
	while (q->head)
		bq_consume(q, 1);
	q->bytes = 0;
}

/* ---- frames to the host ---- */

/* Queues one whole frame for the host, if there is one to send it to. An
 * allocation failure loses the frame; the host then times out, which is
 * what it would see of a guest that ran out of memory anyway. */
static void queue_frame(struct relay *r, uint8_t type, uint16_t flags,
			uint32_t arg, uint64_t id, const void *p, uint32_t len)
{
	size_t cap = EMBER_INV_HDR_SIZE + (size_t)len;
	uint8_t *f;

	if (!r->conn)
		return;
	f = malloc(cap);
	if (!f)
		return;
	if (ember_inv_frame_encode(f, cap, type, flags, arg, id, p, len) < 0) {
		free(f);
		return;
	}
	bq_push_owned(&r->to_host, f, cap);
}

static void queue_error(struct relay *r, uint32_t code, uint64_t id,
			const char *msg)
{
	size_t n = strlen(msg);

	if (n > EMBER_INV_MAX_ERROR)
		n = EMBER_INV_MAX_ERROR;
	queue_frame(r, EMBER_INV_ERROR, 0, code, id, msg, (uint32_t)n);
}

/* READY goes out once per connection, when the handler waits for work and
 * no earlier host's request is still being served. */
static void maybe_greet(struct relay *r)
{
	if (!r->conn || r->greeted || r->closing || !r->handler_ready ||
	    r->handler_gone || r->cur)
		return;
	r->greeted = 1;
	ember_inv_dec_init(&r->hdec);
	queue_frame(r, EMBER_INV_READY, EMBER_INV_F_READY_SYNC, 0, 0,
		    RELAY_READY_NAME, sizeof(RELAY_READY_NAME) - 1);
}

static void request_done(struct relay *r)
{
	r->cur = 0;
	r->cur_deadline = 0;
	r->ops->deadline(r->ctx, 0);
	maybe_greet(r);
}

/* The handler process is finished with: no more of its output counts,
 * nothing is in flight, nothing waits for its stdin. The caller has it
 * killed, or knows it is dead. */
static void handler_lost(struct relay *r)
{
	r->handler_gone = 1;
	r->handler_ready = 0;
	/* The rest of an INVOKE being forwarded has no reader any more: the
	 * decoder discards it. */
	r->hfwd = 0;
	free(r->ofr);
	r->ofr = NULL;
	ember_inv_dec_init(&r->odec);
	bq_clear(&r->to_handler);
	r->cur = 0;
	r->cur_deadline = 0;
	r->ops->deadline(r->ctx, 0);
}

void relay_init(struct relay *r, const struct relay_ops *ops, void *ctx)
{
	memset(r, 0, sizeof(*r));
	r->ops = ops;
	r->ctx = ctx;
	r->handler_gone = 1; /* until relay_handler_started */
	ember_inv_dec_init(&r->hdec);
	ember_inv_dec_init(&r->odec);
}

void relay_free(struct relay *r)
{
	free(r->ofr);
	r->ofr = NULL;
	bq_clear(&r->to_host);
	bq_clear(&r->to_handler);
}

/* ---- host side ---- */

void relay_host_attach(struct relay *r)
{
	r->conn = 1;
	r->greeted = 0;
	r->closing = 0;
	r->hfwd = 0;
	r->hskip = 0;
	ember_inv_dec_init(&r->hdec);
	if (r->fatal[0]) {
		queue_error(r, EMBER_ERR_INTERNAL, 0, r->fatal);
		r->closing = 1;
		return;
	}
	maybe_greet(r);
}

void relay_set_fatal(struct relay *r, const char *why)
{
	snprintf(r->fatal, sizeof(r->fatal), "%s", why && *why ? why : "failed");
}

void relay_host_detach(struct relay *r)
{
	/* Cut inside an INVOKE that was going to the handler: its stdin now
	 * holds half a frame, and nothing can resynchronise it. */
	if (r->hfwd && !ember_inv_dec_idle(&r->hdec) && !r->handler_gone) {
		handler_lost(r);
		r->ops->kill_handler(r->ctx, "the host left inside a request");
	}
	r->conn = r->greeted = r->closing = r->hfwd = 0;
	r->hskip = 0;
	ember_inv_dec_init(&r->hdec);
	bq_clear(&r->to_host);
}

int relay_wants_host_input(const struct relay *r)
{
	return r->conn && r->greeted && !r->closing &&
	       r->to_handler.bytes < RELAY_TO_HANDLER_HIGH;
}

/* A fatal protocol error on the host's stream: tell it, close. */
static void host_protocol_error(struct relay *r, const char *msg)
{
	queue_error(r, EMBER_ERR_PROTOCOL, 0, msg);
	r->closing = 1;
	r->hfwd = 0;
}

/* The header of an INVOKE (payload or not): serve it, refuse it as BUSY,
 * or fail the stream. Returns whether its bytes go to the handler. */
static int start_invoke(struct relay *r, const struct ember_inv_hdr *h)
{
	if (h->id == 0) {
		host_protocol_error(r, "INVOKE with request id 0");
		return 0;
	}
	if (r->cur || r->handler_gone) {
		/* One request at a time (docs/function-abi.md section 4).
		 * A handler being replaced cannot take one either. */
		queue_error(r, EMBER_ERR_BUSY, h->id,
			    r->cur ? "another request is in flight"
				   : "the handler is being restarted");
		return 0;
	}
	r->cur = h->id;
	r->cur_deadline = h->arg;
	r->log_sent = 0;
	r->ops->deadline(r->ctx, h->arg);
	/* The header goes to the handler exactly as the host wrote it. */
	bq_push_copy(&r->to_handler, r->hdec.hbuf, EMBER_INV_HDR_SIZE);
	return 1;
}

/* A frame type that never comes from a host. */
static void host_unexpected(struct relay *r, uint8_t type)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "unexpected %s frame from the host",
		 ember_inv_type_name(type));
	host_protocol_error(r, msg);
}

static void on_host_header(struct relay *r)
{
	const struct ember_inv_hdr *h = &r->hdec.hdr;

	switch (h->type) {
	case EMBER_INV_INVOKE:
		r->hfwd = start_invoke(r, h);
		break;
	case EMBER_INV_PING:
	case EMBER_INV_SYNC:
		ember_inv_dec_set_buf(&r->hdec, r->hsmall, sizeof(r->hsmall));
		break;
	default:
		host_unexpected(r, h->type);
		break;
	}
}

static void on_host_frame(struct relay *r)
{
	const struct ember_inv_hdr *h = &r->hdec.hdr;
	uint8_t ent[EMBER_INV_SYNC_ENTROPY];
	uint64_t t;

	switch (h->type) {
	case EMBER_INV_INVOKE:
		if (h->length == 0) /* no HEADER event for an empty frame */
			start_invoke(r, h);
		r->hfwd = 0;
		break;
	case EMBER_INV_PING:
		queue_frame(r, EMBER_INV_PONG, 0, 0, h->id, r->hsmall, h->length);
		break;
	case EMBER_INV_SYNC:
		if (ember_inv_sync_decode(r->hsmall, h->length, &t, ent)) {
			host_protocol_error(r, "SYNC payload shorter than 40 bytes");
			break;
		}
		r->ops->sync(r->ctx, t, ent);
		memset(ent, 0, sizeof(ent));
		memset(r->hsmall, 0, sizeof(r->hsmall));
		break;
	default:
		host_unexpected(r, h->type);
		break;
	}
}

void relay_host_input(struct relay *r, const uint8_t *p, size_t n)
{
	char msg[128];
	size_t used;
	int ret, in_payload;

	while (n && r->conn && r->greeted && !r->closing) {
		if (r->hskip) {
			used = n < r->hskip ? n : (size_t)r->hskip;
			r->hskip -= used;
			p += used;
			n -= used;
			continue;
		}
		/* The decoder is in a payload once it has the whole header. */
		in_payload = r->hdec.hgot == EMBER_INV_HDR_SIZE;
		ret = ember_inv_dec_feed(&r->hdec, p, n, &used);
		if (ret == EMBER_INV_E2BIG && r->hdec.hdr.type == EMBER_INV_INVOKE) {
			/* Sound but too long: refuse it and skip its payload;
			 * the stream stays in sync (as the SDK does). */
			snprintf(msg, sizeof(msg),
				 "request of %u bytes over the %u-byte limit",
				 r->hdec.hdr.length, EMBER_INV_MAX_PAYLOAD);
			queue_error(r, EMBER_ERR_TOO_LARGE, r->hdec.hdr.id, msg);
			r->hskip = r->hdec.hdr.length;
			ember_inv_dec_init(&r->hdec);
		} else if (ret < 0) {
			snprintf(msg, sizeof(msg), "bad frame from the host: %s",
				 ember_inv_strerror(ret));
			host_protocol_error(r, msg);
			return;
		}
		if (in_payload && r->hfwd)
			bq_push_copy(&r->to_handler, p, used);
		p += used;
		n -= used;
		if (ret == EMBER_INV_DEC_HEADER)
			on_host_header(r);
		else if (ret == EMBER_INV_DEC_FRAME)
			on_host_frame(r);
	}
}

/* ---- handler side ---- */

void relay_handler_started(struct relay *r)
{
	/* Whatever the previous process had (normally it was reported dead
	 * already) is gone with it. */
	handler_lost(r);
	r->handler_gone = 0;
}

void relay_handler_ready(struct relay *r)
{
	if (r->handler_gone)
		return;
	r->handler_ready = 1;
	maybe_greet(r);
}

/* The handler broke its side of the protocol: it is the function's fault,
 * reported as PROTOCOL with the request in flight, and the handler is
 * replaced (docs/function-abi.md section 4). */
static void handler_failed(struct relay *r, uint32_t code, const char *msg)
{
	if (r->conn && r->greeted) {
		queue_error(r, code, r->cur, msg);
		r->closing = 1;
	}
	handler_lost(r);
	r->ops->kill_handler(r->ctx, msg);
}

static void on_handler_frame(struct relay *r)
{
	const struct ember_inv_hdr *h = &r->odec.hdr;
	size_t len = EMBER_INV_HDR_SIZE + (size_t)h->length;
	uint8_t *f = r->ofr;

	r->ofr = NULL;
	if (r->conn && r->greeted)
		bq_push_owned(&r->to_host, f, len);
	else
		free(f); /* its host left; the frame has nowhere to go */
	if ((h->type == EMBER_INV_RESULT || h->type == EMBER_INV_ERROR) &&
	    r->cur && h->id == r->cur)
		request_done(r);
}

/* A header from the handler: only answers belong on its stdout. */
static int handler_header_ok(struct relay *r)
{
	const struct ember_inv_hdr *h = &r->odec.hdr;
	char msg[96];

	if (h->type == EMBER_INV_RESULT || h->type == EMBER_INV_ERROR ||
	    h->type == EMBER_INV_PONG) {
		r->ofr = malloc(EMBER_INV_HDR_SIZE + (size_t)h->length);
		if (!r->ofr) {
			handler_failed(r, EMBER_ERR_OOM,
				       "guest-init out of memory for the handler's answer");
			return 0;
		}
		memcpy(r->ofr, r->odec.hbuf, EMBER_INV_HDR_SIZE);
		return 1;
	}
	snprintf(msg, sizeof(msg), "handler wrote a %s frame on stdout",
		 ember_inv_type_name(h->type));
	handler_failed(r, EMBER_ERR_PROTOCOL, msg);
	return 0;
}

void relay_handler_stdout(struct relay *r, const uint8_t *p, size_t n)
{
	char msg[128];
	size_t used;
	int ret;

	while (n && !r->handler_gone) {
		ret = ember_inv_dec_feed(&r->odec, p, n, &used);
		p += used;
		n -= used;
		if (ret < 0) {
			snprintf(msg, sizeof(msg),
				 "handler wrote a bad frame on stdout: %s",
				 ember_inv_strerror(ret));
			handler_failed(r, EMBER_ERR_PROTOCOL, msg);
			return;
		}
		if (ret == EMBER_INV_DEC_HEADER) {
			if (handler_header_ok(r))
				ember_inv_dec_set_buf(&r->odec,
						      r->ofr + EMBER_INV_HDR_SIZE,
						      r->odec.hdr.length);
		} else if (ret == EMBER_INV_DEC_FRAME) {
			/* An empty frame had no HEADER event. */
			if (r->odec.hdr.length == 0 && !handler_header_ok(r))
				return;
			on_handler_frame(r);
		}
	}
}

void relay_handler_stderr(struct relay *r, const uint8_t *p, size_t n)
{
	uint16_t flags;
	size_t k;

	if (r->handler_gone || !n)
		return;
	if (!r->conn || !r->greeted) {
		r->ops->console(r->ctx, p, n);
		return;
	}
	while (n) {
		k = n < EMBER_INV_MAX_LOG ? n : EMBER_INV_MAX_LOG;
		if (r->log_sent + k > RELAY_LOG_CAP) {
			r->log_dropped = 1;
			return;
		}
		flags = r->log_dropped ? EMBER_INV_F_LOG_DROPPED : 0;
		queue_frame(r, EMBER_INV_LOG, flags, EMBER_INV_STREAM_STDERR,
			    r->cur, p, (uint32_t)k);
		r->log_dropped = 0;
		r->log_sent += k;
		p += k;
		n -= k;
	}
}

void relay_handler_died(struct relay *r, uint32_t code, const char *why)
{
	if (r->handler_gone)
		return; /* already reported (timeout, protocol) */
	if (!code) {
		/* A clean end: nothing to report, but its host is done. */
		if (r->conn && r->greeted)
			r->closing = 1;
	} else if (r->conn && (r->greeted || !r->handler_ready)) {
		/* A greeted host hears about its request (or, with none in
		 * flight, about the instance: id 0); a host still waiting
		 * for READY hears that initialisation failed. */
		queue_error(r, code, r->greeted ? r->cur : 0, why);
		r->closing = 1;
	}
	handler_lost(r);
}

void relay_deadline_passed(struct relay *r)
{
	char msg[96];

	if (!r->cur || r->handler_gone)
		return;
	snprintf(msg, sizeof(msg),
		 "deadline of %u ms passed: the handler was killed",
		 r->cur_deadline);
	if (r->conn && r->greeted) {
		queue_error(r, EMBER_ERR_TIMEOUT, r->cur, msg);
		r->closing = 1;
	}
	handler_lost(r);
	r->ops->kill_handler(r->ctx, msg);
}
