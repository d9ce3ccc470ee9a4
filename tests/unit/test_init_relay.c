/* Unit tests: guest-init's relay (guest-init/relay.c), the protocol core of
 * the Linux guest's PID 1, driven with crafted byte streams from both the
 * host and the handler: forwarding, READY, PING, SYNC, LOG framing and its
 * bound, BUSY, TOO_LARGE, hostile frames from either side, deadlines,
 * crashes, hosts leaving mid-request, and the fatal state. */
// link: guest-init/relay.c proto/invoke.c
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guest-init/relay.h"
#include "proto/invoke.h"

/* ---- a recording loop ---- */

struct rec {
	uint32_t deadlines[64];
	int ndeadlines;
	int syncs;
	uint64_t sync_time;
	uint8_t sync_ent[EMBER_INV_SYNC_ENTROPY];
	int kills;
	char kill_why[128];
	uint8_t console[4096];
	size_t nconsole;
};

static void cb_deadline(void *ctx, uint32_t ms)
{
	struct rec *r = ctx;

	if (r->ndeadlines < 64)
		r->deadlines[r->ndeadlines++] = ms;
}

static void cb_sync(void *ctx, uint64_t t, const uint8_t ent[EMBER_INV_SYNC_ENTROPY])
{
	struct rec *r = ctx;

	r->syncs++;
	r->sync_time = t;
	memcpy(r->sync_ent, ent, EMBER_INV_SYNC_ENTROPY);
}

static void cb_kill(void *ctx, const char *why)
{
	struct rec *r = ctx;

	r->kills++;
	snprintf(r->kill_why, sizeof(r->kill_why), "%s", why);
}

static void cb_console(void *ctx, const uint8_t *p, size_t n)
{
	struct rec *r = ctx;

	if (n > sizeof(r->console) - r->nconsole)
		n = sizeof(r->console) - r->nconsole;
	memcpy(r->console + r->nconsole, p, n);
	r->nconsole += n;
}

static const struct relay_ops ops = {
	.deadline = cb_deadline,
	.sync = cb_sync,
	.kill_handler = cb_kill,
	.console = cb_console,
};

static struct relay R;
static struct rec rec;

static int setup(void **state)
{
	(void)state;
	memset(&rec, 0, sizeof(rec));
	relay_init(&R, &ops, &rec);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	relay_free(&R);
	return 0;
}

/* ---- frames ---- */

static size_t frame(uint8_t *out, size_t cap, uint8_t type, uint16_t flags,
		    uint32_t arg, uint64_t id, const void *p, uint32_t len)
{
	long n = ember_inv_frame_encode(out, cap, type, flags, arg, id, p, len);

	assert_true(n > 0);
	return (size_t)n;
}

/* Sends one frame from the host in one piece. */
static void host(uint8_t type, uint16_t flags, uint32_t arg, uint64_t id,
		 const void *p, uint32_t len)
{
	size_t cap = EMBER_INV_HDR_SIZE + len;
	uint8_t *b = malloc(cap);

	assert_non_null(b);
	relay_host_input(&R, b, frame(b, cap, type, flags, arg, id, p, len));
	free(b);
}

static void handler_out(uint8_t type, uint32_t arg, uint64_t id,
			const void *p, uint32_t len)
{
	size_t cap = EMBER_INV_HDR_SIZE + len;
	uint8_t *b = malloc(cap);

	assert_non_null(b);
	relay_handler_stdout(&R, b, frame(b, cap, type, 0, arg, id, p, len));
	free(b);
}

struct got {
	struct ember_inv_hdr h;
	uint8_t p[1024];
	size_t plen; /* bytes kept in p (payloads may be longer) */
};

/* Takes everything queued for the host and decodes it into frames: the
 * queue must hold whole, valid frames only. Returns the count. */
static int take_host(struct got *g, int max)
{
	struct ember_inv_dec d;
	const uint8_t *p;
	size_t n, used;
	int count = 0, r;
	static uint8_t big[EMBER_INV_MAX_PAYLOAD];

	ember_inv_dec_init(&d);
	while ((n = bq_peek(&R.to_host, &p)) > 0) {
		while (n) {
			r = ember_inv_dec_feed(&d, p, n, &used);
			assert_true(r >= 0);
			if (r == EMBER_INV_DEC_HEADER)
				ember_inv_dec_set_buf(&d, big, sizeof(big));
			if (r == EMBER_INV_DEC_FRAME) {
				assert_true(count < max);
				g[count].h = d.hdr;
				g[count].plen = d.hdr.length < sizeof(g->p)
							? d.hdr.length
							: sizeof(g->p);
				memcpy(g[count].p, big, g[count].plen);
				count++;
			}
			p += used;
			n -= used;
			bq_consume(&R.to_host, used);
		}
	}
	assert_int_equal(ember_inv_dec_finish(&d), 0);
	assert_int_equal(R.to_host.bytes, 0);
	return count;
}

/* Takes what is queued for the handler's stdin. */
static size_t take_handler(uint8_t *out, size_t cap)
{
	const uint8_t *p;
	size_t n, got = 0;

	while ((n = bq_peek(&R.to_handler, &p)) > 0) {
		assert_true(got + n <= cap);
		memcpy(out + got, p, n);
		got += n;
		bq_consume(&R.to_handler, n);
	}
	return got;
}

/* A connected, greeted host and a ready handler. */
static void greeted(void)
{
	struct got g[2];

	relay_handler_started(&R);
	relay_handler_ready(&R);
	relay_host_attach(&R);
	assert_int_equal(take_host(g, 2), 1);
	assert_int_equal(g[0].h.type, EMBER_INV_READY);
}

static void expect_error(const struct got *g, uint32_t code, uint64_t id,
			 const char *text)
{
	assert_int_equal(g->h.type, EMBER_INV_ERROR);
	assert_int_equal(g->h.arg, code);
	assert_true(g->h.id == id);
	if (text) {
		char s[1025];

		memcpy(s, g->p, g->plen);
		s[g->plen] = '\0';
		if (!strstr(s, text))
			fail_msg("ERROR text '%s' lacks '%s'", s, text);
	}
}

/* ---- tests ---- */

static void test_ready_once_when_the_handler_waits(void **state)
{
	struct got g[4];

	(void)state;
	relay_handler_started(&R);
	relay_host_attach(&R);
	/* The handler has not read stdin yet: no READY, and the loop must
	 * not read from the host. */
	assert_int_equal(take_host(g, 4), 0);
	assert_false(relay_wants_host_input(&R));
	relay_handler_ready(&R);
	assert_int_equal(take_host(g, 4), 1);
	assert_int_equal(g[0].h.type, EMBER_INV_READY);
	assert_int_equal(g[0].h.flags, EMBER_INV_F_READY_SYNC);
	assert_int_equal(g[0].plen, 10);
	assert_memory_equal(g[0].p, "ember-init", 10);
	assert_true(relay_wants_host_input(&R));
	relay_handler_ready(&R);
	assert_int_equal(take_host(g, 4), 0);
	/* A new connection to a handler already waiting (a restored
	 * snapshot): READY at once. */
	relay_host_detach(&R);
	relay_host_attach(&R);
	assert_int_equal(take_host(g, 4), 1);
	assert_int_equal(g[0].h.type, EMBER_INV_READY);
	/* Nothing queued for a host that is not there. */
	relay_host_detach(&R);
	handler_out(EMBER_INV_PONG, 0, 1, NULL, 0);
	assert_int_equal(R.to_host.bytes, 0);
}

static void test_invoke_forwarded_unchanged_at_any_split(void **state)
{
	uint8_t in[EMBER_INV_HDR_SIZE + 300], out[sizeof(in)];
	uint8_t payload[300];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	n = frame(in, sizeof(in), EMBER_INV_INVOKE, 0, 1500, 9, payload,
		  sizeof(payload));
	for (size_t cut = 0; cut <= n; cut += 7) {
		struct got g[2];

		setup(NULL);
		greeted();
		relay_host_input(&R, in, cut);
		relay_host_input(&R, in + cut, n - cut);
		assert_int_equal(take_handler(out, sizeof(out)), n);
		assert_memory_equal(out, in, n);
		assert_true(R.cur == 9);
		assert_int_equal(rec.deadlines[rec.ndeadlines - 1], 1500);
		/* The answer goes to the host whole and ends the request. */
		handler_out(EMBER_INV_RESULT, 0, 9, "ok", 2);
		assert_int_equal(take_host(g, 2), 1);
		assert_int_equal(g[0].h.type, EMBER_INV_RESULT);
		assert_true(g[0].h.id == 9);
		assert_memory_equal(g[0].p, "ok", 2);
		assert_true(R.cur == 0);
		assert_int_equal(rec.deadlines[rec.ndeadlines - 1], 0);
		teardown(NULL);
	}
}

static void test_empty_invoke_and_result(void **state)
{
	uint8_t out[64], want[EMBER_INV_HDR_SIZE];
	struct got g[2];

	(void)state;
	greeted();
	frame(want, sizeof(want), EMBER_INV_INVOKE, 0, 0, 3, NULL, 0);
	relay_host_input(&R, want, sizeof(want));
	assert_int_equal(take_handler(out, sizeof(out)), EMBER_INV_HDR_SIZE);
	assert_memory_equal(out, want, sizeof(want));
	assert_int_equal(rec.deadlines[rec.ndeadlines - 1], 0); /* none */
	handler_out(EMBER_INV_RESULT, 0, 3, NULL, 0);
	assert_int_equal(take_host(g, 2), 1);
	assert_int_equal(g[0].h.length, 0);
	assert_true(R.cur == 0);
}

static void test_answer_relayed_only_when_complete(void **state)
{
	uint8_t b[EMBER_INV_HDR_SIZE + 100], p[100] = { 1, 2, 3 };
	struct got g[2];
	size_t n;

	(void)state;
	greeted();
	host(EMBER_INV_INVOKE, 0, 0, 4, "x", 1);
	n = frame(b, sizeof(b), EMBER_INV_RESULT, 0, 0, 4, p, sizeof(p));
	for (size_t i = 0; i < n - 1; i++) {
		relay_handler_stdout(&R, b + i, 1);
		assert_int_equal(R.to_host.bytes, 0);
	}
	relay_handler_stdout(&R, b + n - 1, 1);
	assert_int_equal(take_host(g, 2), 1);
	assert_int_equal(g[0].h.length, 100);
	/* A handler that dies halfway through an answer: the host gets a
	 * clean ERROR, not a cut frame. */
	host(EMBER_INV_INVOKE, 0, 0, 5, "x", 1);
	frame(b, sizeof(b), EMBER_INV_RESULT, 0, 0, 5, p, sizeof(p));
	relay_handler_stdout(&R, b, 60);
	relay_handler_died(&R, EMBER_ERR_CRASH, "handler crashed: signal 11 (SIGSEGV)");
	assert_int_equal(take_host(g, 2), 1);
	expect_error(&g[0], EMBER_ERR_CRASH, 5, "SIGSEGV");
	assert_true(R.closing);
	assert_false(relay_wants_host_input(&R));
}

static void test_ping_and_sync_are_answered_here(void **state)
{
	uint8_t ent[EMBER_INV_SYNC_ENTROPY], pay[EMBER_INV_SYNC_LEN], out[64];
	struct got g[2];

	(void)state;
	greeted();
	host(EMBER_INV_PING, 0, 0, 77, "abc", 3);
	assert_int_equal(take_host(g, 2), 1);
	assert_int_equal(g[0].h.type, EMBER_INV_PONG);
	assert_true(g[0].h.id == 77);
	assert_memory_equal(g[0].p, "abc", 3);
	host(EMBER_INV_PING, 0, 0, 78, NULL, 0);
	assert_int_equal(take_host(g, 2), 1);
	assert_int_equal(g[0].h.length, 0);

	for (unsigned i = 0; i < sizeof(ent); i++)
		ent[i] = (uint8_t)(i + 1);
	ember_inv_sync_encode(pay, 1234567890123ull, ent);
	host(EMBER_INV_SYNC, 0, 0, 0, pay, sizeof(pay));
	assert_int_equal(rec.syncs, 1);
	assert_true(rec.sync_time == 1234567890123ull);
	assert_memory_equal(rec.sync_ent, ent, sizeof(ent));
	/* Neither reaches the handler. */
	assert_int_equal(take_handler(out, sizeof(out)), 0);
	assert_int_equal(take_host(g, 2), 0);
	/* A SYNC too short to hold its fields fails the stream. */
	host(EMBER_INV_SYNC, 0, 0, 0, pay, EMBER_INV_SYNC_LEN - 1);
	assert_int_equal(rec.syncs, 1);
	assert_int_equal(take_host(g, 2), 1);
	expect_error(&g[0], EMBER_ERR_PROTOCOL, 0, "SYNC");
	assert_true(R.closing);
}

static void test_busy_and_too_large_keep_the_stream_in_sync(void **state)
{
	uint8_t hdr[EMBER_INV_HDR_SIZE], out[256];
	static uint8_t big[4096];
	struct got g[4];

	(void)state;
	greeted();
	host(EMBER_INV_INVOKE, 0, 1000, 1, "first", 5);
	take_handler(out, sizeof(out));
	/* A second request while one is in flight. */
	host(EMBER_INV_INVOKE, 0, 1000, 2, "second", 6);
	assert_int_equal(take_handler(out, sizeof(out)), 0);
	assert_int_equal(take_host(g, 4), 1);
	expect_error(&g[0], EMBER_ERR_BUSY, 2, "in flight");
	assert_true(R.cur == 1);
	/* An INVOKE over 6 MiB: refused from its header, payload skipped.
	 * (The first request is still served afterwards.) */
	ember_inv_hdr_encode(hdr, EMBER_INV_INVOKE, 0, 0, 0, 3);
	hdr[12] = 0x01; hdr[13] = 0x10; hdr[14] = 0x60; hdr[15] = 0x00;
	relay_host_input(&R, hdr, sizeof(hdr)); /* 6295553 bytes follow */
	assert_int_equal(take_host(g, 4), 1);
	expect_error(&g[0], EMBER_ERR_TOO_LARGE, 3, "over the 6291456-byte limit");
	for (uint32_t left = 0x601001; left;) {
		uint32_t k = left < sizeof(big) ? left : sizeof(big);

		memset(big, 0x45, k); /* looks like magic: must be skipped */
		relay_host_input(&R, big, k);
		left -= k;
	}
	assert_int_equal(take_host(g, 4), 0);
	assert_int_equal(take_handler(out, sizeof(out)), 0);
	host(EMBER_INV_PING, 0, 0, 9, "p", 1);
	assert_int_equal(take_host(g, 4), 1);
	assert_int_equal(g[0].h.type, EMBER_INV_PONG);
	handler_out(EMBER_INV_RESULT, 0, 1, "done", 4);
	assert_int_equal(take_host(g, 4), 1);
	assert_int_equal(g[0].h.type, EMBER_INV_RESULT);
	assert_false(R.closing);
}

static void test_hostile_host_frames(void **state)
{
	static const struct {
		uint8_t type;
		uint32_t arg;
		uint64_t id;
		const char *text;
	} bad[] = {
		{ EMBER_INV_RESULT, 0, 1, "unexpected RESULT" },
		{ EMBER_INV_READY, 0, 0, "unexpected READY" },
		{ EMBER_INV_LOG, 2, 0, "unexpected LOG" },
		{ EMBER_INV_ERROR, 1, 0, "unexpected ERROR" },
		{ EMBER_INV_PONG, 0, 0, "unexpected PONG" },
		{ EMBER_INV_INVOKE, 0, 0, "request id 0" },
	};
	uint8_t b[EMBER_INV_HDR_SIZE + 4], out[64];
	struct got g[4];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int with_payload = 0; with_payload < 2; with_payload++) {
			setup(NULL);
			greeted();
			host(bad[i].type, 0, bad[i].arg, bad[i].id, "abcd",
			     with_payload ? 4 : 0);
			assert_int_equal(take_host(g, 4), 1);
			expect_error(&g[0], EMBER_ERR_PROTOCOL, 0, bad[i].text);
			assert_true(R.closing);
			/* Nothing after a fatal error is looked at. */
			host(EMBER_INV_PING, 0, 0, 5, NULL, 0);
			assert_int_equal(take_host(g, 4), 0);
			assert_int_equal(take_handler(out, sizeof(out)), 0);
			teardown(NULL);
		}
	}
	/* Headers that fail validation. */
	for (int k = 0; k < 4; k++) {
		setup(NULL);
		greeted();
		frame(b, sizeof(b), EMBER_INV_INVOKE, 0, 0, 1, "abcd", 4);
		if (k == 0)
			b[0] ^= 0xff;          /* magic */
		else if (k == 1)
			b[4] = 2;              /* version */
		else if (k == 2)
			b[5] = 99;             /* type */
		else
			b[6] = 1;              /* reserved flag */
		relay_host_input(&R, b, sizeof(b));
		assert_int_equal(take_host(g, 4), 1);
		expect_error(&g[0], EMBER_ERR_PROTOCOL, 0, "bad frame from the host");
		assert_int_equal(take_handler(out, sizeof(out)), 0);
		assert_int_equal(rec.kills, 0); /* the handler is fine */
		teardown(NULL);
	}
	/* A PING over its 256 bytes is E2BIG but not an INVOKE: fatal. */
	setup(NULL);
	greeted();
	ember_inv_hdr_encode(b, EMBER_INV_PING, 0, 0, 0, 1);
	b[13] = 2; /* 512 */
	relay_host_input(&R, b, EMBER_INV_HDR_SIZE);
	assert_int_equal(take_host(g, 4), 1);
	expect_error(&g[0], EMBER_ERR_PROTOCOL, 0, "over the limit");
}

static void test_hostile_handler_output(void **state)
{
	uint8_t b[EMBER_INV_HDR_SIZE + 8], junk[100];
	struct got g[4];

	(void)state;
	for (int k = 0; k < 5; k++) {
		setup(NULL);
		greeted();
		host(EMBER_INV_INVOKE, 0, 0, 42, "q", 1);
		if (k == 0) {
			memset(junk, 'A', sizeof(junk)); /* printf on stdout */
			relay_handler_stdout(&R, junk, sizeof(junk));
		} else if (k == 1) {
			handler_out(EMBER_INV_READY, 0, 0, NULL, 0);
		} else if (k == 2) {
			handler_out(EMBER_INV_INVOKE, 0, 1, "x", 1);
		} else if (k == 3) {
			handler_out(EMBER_INV_LOG, 2, 42, "log", 3);
		} else {
			/* A RESULT over 6 MiB, from its header alone. */
			ember_inv_hdr_encode(b, EMBER_INV_RESULT, 0, 0, 0, 42);
			b[12] = 1; b[14] = 0x60;
			relay_handler_stdout(&R, b, EMBER_INV_HDR_SIZE);
		}
		assert_int_equal(take_host(g, 4), 1);
		expect_error(&g[0], EMBER_ERR_PROTOCOL, 42, "handler wrote");
		assert_int_equal(rec.kills, 1);
		assert_true(R.closing);
		assert_true(R.cur == 0);
		/* Whatever else it writes, and its death, add nothing. */
		handler_out(EMBER_INV_RESULT, 0, 42, "late", 4);
		relay_handler_stderr(&R, (const uint8_t *)"late", 4);
		relay_handler_died(&R, EMBER_ERR_CRASH, "handler crashed");
		assert_int_equal(take_host(g, 4), 0);
		teardown(NULL);
	}
}

static void test_stderr_becomes_log_frames(void **state)
{
	static uint8_t buf[40000];
	struct got g[8];
	int n;

	(void)state;
	/* Before READY the console gets it. */
	relay_handler_started(&R);
	relay_handler_stderr(&R, (const uint8_t *)"init log\n", 9);
	assert_int_equal(rec.nconsole, 9);
	relay_handler_ready(&R);
	relay_host_attach(&R);
	take_host(g, 8);

	host(EMBER_INV_INVOKE, 0, 0, 11, "x", 1);
	memset(buf, 'L', sizeof(buf));
	relay_handler_stderr(&R, buf, sizeof(buf));
	handler_out(EMBER_INV_RESULT, 0, 11, "r", 1);
	n = take_host(g, 8);
	assert_int_equal(n, 4);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(g[i].h.type, EMBER_INV_LOG);
		assert_int_equal(g[i].h.arg, EMBER_INV_STREAM_STDERR);
		assert_true(g[i].h.id == 11);
		assert_int_equal(g[i].h.flags, 0);
	}
	assert_int_equal(g[0].h.length, EMBER_INV_MAX_LOG);
	assert_int_equal(g[1].h.length, EMBER_INV_MAX_LOG);
	assert_int_equal(g[2].h.length, 40000 - 2 * EMBER_INV_MAX_LOG);
	assert_int_equal(g[3].h.type, EMBER_INV_RESULT);
	/* Between requests: id 0. */
	relay_handler_stderr(&R, (const uint8_t *)"idle", 4);
	assert_int_equal(take_host(g, 8), 1);
	assert_true(g[0].h.id == 0);
}

static void test_log_bounded_per_request(void **state)
{
	static uint8_t chunk[EMBER_INV_MAX_LOG];
	struct got g[8];
	size_t sent = 0;

	(void)state;
	greeted();
	host(EMBER_INV_INVOKE, 0, 0, 1, "x", 1);
	memset(chunk, 'x', sizeof(chunk));
	/* 2 MiB of log against the 1 MiB bound. */
	for (int i = 0; i < 128; i++) {
		relay_handler_stderr(&R, chunk, sizeof(chunk));
		while (R.to_host.bytes) {
			int n = take_host(g, 8);

			for (int k = 0; k < n; k++)
				sent += g[k].h.length;
		}
	}
	assert_int_equal(sent, RELAY_LOG_CAP);
	handler_out(EMBER_INV_RESULT, 0, 1, NULL, 0);
	take_host(g, 8);
	/* The next request's first LOG says output was dropped. */
	host(EMBER_INV_INVOKE, 0, 0, 2, "x", 1);
	relay_handler_stderr(&R, (const uint8_t *)"more", 4);
	assert_int_equal(take_host(g, 8), 1);
	assert_int_equal(g[0].h.flags, EMBER_INV_F_LOG_DROPPED);
	relay_handler_stderr(&R, (const uint8_t *)"more", 4);
	assert_int_equal(take_host(g, 8), 1);
	assert_int_equal(g[0].h.flags, 0);
}

static void test_deadline(void **state)
{
	struct got g[4];

	(void)state;
	greeted();
	relay_deadline_passed(&R); /* nothing in flight: nothing happens */
	assert_int_equal(take_host(g, 4), 0);
	assert_int_equal(rec.kills, 0);
	host(EMBER_INV_INVOKE, 0, 250, 6, "spin", 4);
	assert_int_equal(rec.deadlines[rec.ndeadlines - 1], 250);
	relay_deadline_passed(&R);
	assert_int_equal(take_host(g, 4), 1);
	expect_error(&g[0], EMBER_ERR_TIMEOUT, 6, "deadline of 250 ms passed");
	assert_int_equal(rec.kills, 1);
	assert_true(R.closing);
	/* The killed handler's death adds nothing; requests are refused
	 * until a new handler is ready. */
	relay_handler_died(&R, EMBER_ERR_CRASH, "signal 9");
	assert_int_equal(take_host(g, 4), 0);
	relay_host_detach(&R);
	relay_host_attach(&R);
	assert_int_equal(take_host(g, 4), 0); /* no READY yet */
	relay_handler_started(&R);
	relay_handler_ready(&R);
	assert_int_equal(take_host(g, 4), 1);
	assert_int_equal(g[0].h.type, EMBER_INV_READY);
}

static void test_deaths(void **state)
{
	struct got g[4];

	(void)state;
	/* Between requests: ERROR id 0. */
	greeted();
	relay_handler_died(&R, EMBER_ERR_CRASH, "handler crashed: signal 6 (SIGABRT) between requests");
	assert_int_equal(take_host(g, 4), 1);
	expect_error(&g[0], EMBER_ERR_CRASH, 0, "SIGABRT");
	assert_true(R.closing);
	teardown(NULL);

	/* A clean exit: no ERROR, the connection is just closed. */
	setup(NULL);
	greeted();
	relay_handler_died(&R, 0, "handler exited with status 0");
	assert_int_equal(take_host(g, 4), 0);
	assert_true(R.closing);
	teardown(NULL);

	/* Initialisation failed while a host waited for READY. */
	setup(NULL);
	relay_handler_started(&R);
	relay_host_attach(&R);
	relay_handler_died(&R, EMBER_ERR_CRASH, "handler exited with status 1 during initialisation");
	assert_int_equal(take_host(g, 4), 1);
	expect_error(&g[0], EMBER_ERR_CRASH, 0, "during initialisation");
	teardown(NULL);

	/* A waiting host does not hear about an earlier host's request. */
	setup(NULL);
	greeted();
	host(EMBER_INV_INVOKE, 0, 0, 8, "x", 1);
	relay_host_detach(&R);
	relay_host_attach(&R);
	assert_int_equal(take_host(g, 4), 0);
	relay_handler_died(&R, EMBER_ERR_CRASH, "crashed");
	assert_int_equal(take_host(g, 4), 0);
}

static void test_host_leaving(void **state)
{
	uint8_t b[EMBER_INV_HDR_SIZE + 10], out[64];
	struct got g[4];

	(void)state;
	/* Inside an INVOKE: the handler's stream is broken, it must go. */
	greeted();
	frame(b, sizeof(b), EMBER_INV_INVOKE, 0, 0, 1, "0123456789", 10);
	relay_host_input(&R, b, 30);
	relay_host_detach(&R);
	assert_int_equal(rec.kills, 1);
	assert_string_equal(rec.kill_why, "the host left inside a request");
	assert_int_equal(take_handler(out, sizeof(out)), 0);
	teardown(NULL);

	/* After a whole INVOKE: the handler finishes; the next host is
	 * greeted only when it has, and never sees the old answer. */
	setup(NULL);
	greeted();
	host(EMBER_INV_INVOKE, 0, 0, 1, "x", 1);
	relay_host_detach(&R);
	assert_int_equal(rec.kills, 0);
	relay_host_attach(&R);
	assert_int_equal(take_host(g, 4), 0);
	assert_false(relay_wants_host_input(&R));
	handler_out(EMBER_INV_RESULT, 0, 1, "old", 3);
	assert_int_equal(take_host(g, 4), 1);
	assert_int_equal(g[0].h.type, EMBER_INV_READY);
}

static void test_fatal_and_restarting(void **state)
{
	struct got g[4];

	(void)state;
	relay_set_fatal(&R, "the handler cannot initialise");
	relay_host_attach(&R);
	assert_int_equal(take_host(g, 4), 1);
	expect_error(&g[0], EMBER_ERR_INTERNAL, 0, "cannot initialise");
	assert_true(R.closing);
	teardown(NULL);

	/* A greeted host whose handler is being replaced gets BUSY. */
	setup(NULL);
	greeted();
	relay_handler_died(&R, EMBER_ERR_CRASH, "x");
	take_host(g, 4);
	R.closing = 0; /* as if the loop had not closed it yet */
	host(EMBER_INV_INVOKE, 0, 0, 3, "x", 1);
	assert_int_equal(take_host(g, 4), 1);
	expect_error(&g[0], EMBER_ERR_BUSY, 3, "restarted");
}

/* Found by fuzz_init_relay: a handler replaced while an INVOKE was being
 * forwarded to it must not hand the rest of that frame to its successor. */
static void test_new_handler_gets_no_half_frame(void **state)
{
	uint8_t b[EMBER_INV_HDR_SIZE + 100], out[256], p[100];
	size_t n;

	(void)state;
	memset(p, 'p', sizeof(p));
	greeted();
	n = frame(b, sizeof(b), EMBER_INV_INVOKE, 0, 0, 1, p, sizeof(p));
	relay_host_input(&R, b, 50);
	relay_handler_started(&R);
	relay_handler_ready(&R);
	relay_host_input(&R, b + 50, n - 50);
	assert_int_equal(take_handler(out, sizeof(out)), 0);
	/* The stream is still in sync: the next request goes through. */
	frame(b, sizeof(b), EMBER_INV_INVOKE, 0, 0, 2, p, 10);
	relay_host_input(&R, b, EMBER_INV_HDR_SIZE + 10);
	assert_int_equal(take_handler(out, sizeof(out)), EMBER_INV_HDR_SIZE + 10);
	assert_true(R.cur == 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_ready_once_when_the_handler_waits),
		T(test_invoke_forwarded_unchanged_at_any_split),
		T(test_empty_invoke_and_result),
		T(test_answer_relayed_only_when_complete),
		T(test_ping_and_sync_are_answered_here),
		T(test_busy_and_too_large_keep_the_stream_in_sync),
		T(test_hostile_host_frames),
		T(test_hostile_handler_output),
		T(test_stderr_becomes_log_frames),
		T(test_log_bounded_per_request),
		T(test_deadline),
		T(test_deaths),
		T(test_host_leaving),
		T(test_fatal_and_restarting),
		T(test_new_handler_gets_no_half_frame),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
