/* libFuzzer target: guest-init's relay (guest-init/relay.c) driven by a
 * script of events from hostile inputs: bytes from the host, bytes on the
 * handler's stdout and stderr, deadlines, deaths, connections coming and
 * going. After every step what is queued for the host must decode as whole,
 * valid frames, and what goes to the handler's stdin as INVOKE frames only.
 *
 * Input: a sequence of [op byte][length byte][length bytes of data]. */
// link: guest-init/relay.c proto/invoke.c
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guest-init/relay.h"
#include "proto/invoke.h"

static void cb_deadline(void *ctx, uint32_t ms) { (void)ctx; (void)ms; }
static void cb_sync(void *ctx, uint64_t t, const uint8_t *e)
{
	(void)ctx; (void)t; (void)e;
}
static void cb_kill(void *ctx, const char *why) { (void)ctx; (void)why; }
static void cb_console(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx; (void)p; (void)n;
}
static const struct relay_ops ops = { cb_deadline, cb_sync, cb_kill,
				      cb_console };

/* Drains a queue through a decoder that must never fail; for the host
 * queue, the queue must end between frames. */
static void check(struct bq *q, struct ember_inv_dec *d, int host)
{
	const uint8_t *p;
	size_t n, used;
	int r;

	while ((n = bq_peek(q, &p)) > 0) {
		while (n) {
			r = ember_inv_dec_feed(d, p, n, &used);
			if (r < 0)
				abort();
			if (!host && (r == EMBER_INV_DEC_HEADER ||
				      r == EMBER_INV_DEC_FRAME) &&
			    d->hdr.type != EMBER_INV_INVOKE)
				abort();
			p += used;
			n -= used;
			bq_consume(q, used);
		}
	}
	if (host && !ember_inv_dec_idle(d))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ember_inv_dec hd, sd;
	struct relay r;
	size_t i = 0;

	relay_init(&r, &ops, NULL);
	ember_inv_dec_init(&hd);
	ember_inv_dec_init(&sd);
	while (i + 2 <= size) {
		uint8_t op = data[i], len = data[i + 1];
		const uint8_t *p = data + i + 2;

		if (len > size - i - 2)
			len = (uint8_t)(size - i - 2);
		i += 2 + len;
		switch (op % 10) {
		case 0: relay_host_input(&r, p, len); break;
		case 1: relay_handler_stdout(&r, p, len); break;
		case 2: relay_handler_stderr(&r, p, len); break;
		case 3: relay_deadline_passed(&r); break;
		case 4: relay_handler_died(&r, len % 9, "died"); break;
		case 5:
			if (r.conn) {
				relay_host_detach(&r);
			} else {
				relay_host_attach(&r);
				ember_inv_dec_init(&hd);
			}
			break;
		case 6:
			relay_handler_started(&r);
			/* A new handler reads a fresh stream. */
			ember_inv_dec_init(&sd);
			break;
		case 7: relay_handler_ready(&r); break;
		case 8: relay_set_fatal(&r, "fatal"); break;
		default:
			if (r.closing) { /* the loop closes it */
				relay_host_detach(&r);
				ember_inv_dec_init(&hd);
			}
			break;
		}
		/* A detach drops the host queue; a new connection starts
		 * between frames. */
		if (!r.conn)
			ember_inv_dec_init(&hd);
		check(&r.to_host, &hd, 1);
		check(&r.to_handler, &sd, 0);
	}
	relay_free(&r);
	return 0;
}
