/* Unit tests: invocation frames (proto/invoke.c) and the host-side client
 * (vmm/invoke.c) against a scripted fake instance on a socketpair. */
// link: proto/invoke.c vmm/invoke.c vmm/log.c
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "invoke.h"
#include "proto/invoke.h"

/* ---- frame codec ---- */

static void hdr(uint8_t out[EMBER_INV_HDR_SIZE], uint8_t type, uint16_t flags,
		uint32_t arg, uint32_t len, uint64_t id)
{
	assert_int_equal(ember_inv_hdr_encode(out, type, flags, arg, len, id), 0);
}

static void test_hdr_layout(void **state)
{
	uint8_t b[EMBER_INV_HDR_SIZE];
	static const uint8_t want[EMBER_INV_HDR_SIZE] = {
		'E', 'M', 'B', 'F', 1, 2, 0, 0, /* magic version type flags */
		0x10, 0x27, 0, 0,               /* arg = 10000 */
		0x05, 0, 0, 0,                  /* length = 5 */
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
	};
	struct ember_inv_hdr h;

	(void)state;
	hdr(b, EMBER_INV_INVOKE, 0, 10000, 5, 0x0102030405060708ull);
	assert_memory_equal(b, want, sizeof(want));
	assert_int_equal(ember_inv_hdr_decode(b, &h), 0);
	assert_int_equal(h.type, EMBER_INV_INVOKE);
	assert_int_equal(h.arg, 10000);
	assert_int_equal(h.length, 5);
	assert_true(h.id == 0x0102030405060708ull);
}

static void test_hdr_roundtrip_all_types(void **state)
{
	static const struct { uint8_t type; uint16_t flags; uint32_t arg; } c[] = {
		{ EMBER_INV_READY, 0, 0 },
		{ EMBER_INV_INVOKE, 0, 0xffffffffu },
		{ EMBER_INV_RESULT, 0, 42 },
		{ EMBER_INV_LOG, 0, EMBER_INV_STREAM_STDOUT },
		{ EMBER_INV_LOG, EMBER_INV_F_LOG_DROPPED, EMBER_INV_STREAM_STDERR },
		{ EMBER_INV_ERROR, 0, EMBER_ERR_OOM },
		{ EMBER_INV_PING, 0, 0 },
		{ EMBER_INV_PONG, 0, 0 },
		{ EMBER_INV_READY, EMBER_INV_F_READY_SYNC, 0 },
		{ EMBER_INV_SYNC, 0, 0 },
	};
	uint8_t b[EMBER_INV_HDR_SIZE];
	struct ember_inv_hdr h;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		uint32_t max = ember_inv_max_len(c[i].type);

		/* Exactly at the limit is fine, one over is not. */
		hdr(b, c[i].type, c[i].flags, c[i].arg, max, 77 + i);
		assert_int_equal(ember_inv_hdr_decode(b, &h), 0);
		assert_int_equal(h.type, c[i].type);
		assert_int_equal(h.flags, c[i].flags);
		assert_int_equal(h.arg, c[i].arg);
		assert_int_equal(h.length, max);
		assert_true(h.id == 77 + i);
		b[12] = (uint8_t)(max + 1);
		b[13] = (uint8_t)((max + 1) >> 8);
		b[14] = (uint8_t)((max + 1) >> 16);
		b[15] = (uint8_t)((max + 1) >> 24);
		assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_E2BIG);
		assert_int_equal(h.length, max + 1);
		assert_int_equal(ember_inv_hdr_encode(b, c[i].type, c[i].flags,
						      c[i].arg, max + 1, 1),
				 EMBER_INV_EINVAL);
	}
	assert_int_equal(ember_inv_max_len(EMBER_INV_INVOKE), 6291456);
	assert_int_equal(ember_inv_max_len(EMBER_INV_RESULT), 6291456);
	assert_string_equal(ember_inv_type_name(EMBER_INV_LOG), "LOG");
	assert_string_equal(ember_inv_type_name(EMBER_INV_SYNC), "SYNC");
	assert_string_equal(ember_inv_type_name(200), "UNKNOWN");
}

static void test_sync_payload(void **state)
{
	uint8_t ent[EMBER_INV_SYNC_ENTROPY], got[EMBER_INV_SYNC_ENTROPY];
	uint8_t p[EMBER_INV_SYNC_LEN + 8];
	uint64_t t = 0;

	(void)state;
	for (unsigned i = 0; i < sizeof(ent); i++)
		ent[i] = (uint8_t)(0xa0 + i);
	ember_inv_sync_encode(p, 0x1122334455667788ull, ent);
	/* Little-endian time first, then the entropy bytes as given. */
	assert_int_equal(p[0], 0x88);
	assert_int_equal(p[7], 0x11);
	assert_memory_equal(p + 8, ent, sizeof(ent));
	assert_int_equal(ember_inv_sync_decode(p, EMBER_INV_SYNC_LEN, &t, got), 0);
	assert_true(t == 0x1122334455667788ull);
	assert_memory_equal(got, ent, sizeof(ent));
	/* Longer payloads carry later fields: accepted, the rest ignored. */
	assert_int_equal(ember_inv_sync_decode(p, sizeof(p), &t, got), 0);
	/* Shorter ones are refused. */
	assert_int_equal(ember_inv_sync_decode(p, EMBER_INV_SYNC_LEN - 1, &t, got),
			 EMBER_INV_ETRUNC);
	assert_int_equal(ember_inv_sync_decode(NULL, 40, &t, got), EMBER_INV_ETRUNC);
}

static void test_hdr_hostile(void **state)
{
	uint8_t b[EMBER_INV_HDR_SIZE], good[EMBER_INV_HDR_SIZE];
	struct ember_inv_hdr h;

	(void)state;
	hdr(good, EMBER_INV_INVOKE, 0, 1000, 10, 1);

	memcpy(b, good, sizeof(b));
	b[0] = 'X';
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_EMAGIC);
	/* Magic is checked before anything else. */
	b[4] = 9;
	b[5] = 99;
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_EMAGIC);

	memcpy(b, good, sizeof(b));
	b[4] = 2;
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_EVERSION);
	b[4] = 0;
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_EVERSION);

	memcpy(b, good, sizeof(b));
	for (unsigned t = 0; t < 256; t++) {
		b[5] = (uint8_t)t;
		if (t >= EMBER_INV_READY && t <= EMBER_INV_TYPE_MAX)
			continue;
		assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_ETYPE);
	}

	/* Reserved: any flag bit on INVOKE, unknown LOG flag bits, a LOG
	 * stream other than 1/2, a non-zero arg where the type has none. */
	memcpy(b, good, sizeof(b));
	b[7] = 0x80;
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_ERESERVED);
	hdr(b, EMBER_INV_LOG, 0, EMBER_INV_STREAM_STDERR, 1, 1);
	b[6] = 0x02;
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_ERESERVED);
	hdr(b, EMBER_INV_LOG, 0, EMBER_INV_STREAM_STDERR, 1, 1);
	b[8] = 3;
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_ERESERVED);
	b[8] = 0;
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_ERESERVED);
	hdr(b, EMBER_INV_PING, 0, 0, 0, 1);
	b[11] = 1;
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_ERESERVED);
	hdr(b, EMBER_INV_READY, 0, 0, 0, 0);
	b[9] = 1;
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_ERESERVED);
	/* READY defines flag bit 0 only; SYNC defines no flag and no arg. */
	hdr(b, EMBER_INV_READY, 0, 0, 0, 0);
	b[6] = 0x02;
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_ERESERVED);
	hdr(b, EMBER_INV_SYNC, 0, 0, 40, 0);
	b[6] = 0x01;
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_ERESERVED);
	hdr(b, EMBER_INV_SYNC, 0, 0, 40, 0);
	b[8] = 1;
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_ERESERVED);

	/* A huge length is refused from the header alone. */
	hdr(b, EMBER_INV_INVOKE, 0, 0, 0, 1);
	memset(b + 12, 0xff, 4);
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_E2BIG);
	assert_int_equal(h.length, 0xffffffffu);
	/* READY with a payload over its 256 bytes. */
	hdr(b, EMBER_INV_READY, 0, 0, 0, 0);
	b[13] = 1; /* 256 */
	assert_int_equal(ember_inv_hdr_decode(b, &h), 0);
	b[12] = 1; /* 257 */
	assert_int_equal(ember_inv_hdr_decode(b, &h), EMBER_INV_E2BIG);

	/* The encoder refuses what the decoder would reject. */
	assert_int_equal(ember_inv_hdr_encode(b, 0, 0, 0, 0, 0), EMBER_INV_EINVAL);
	assert_int_equal(ember_inv_hdr_encode(b, EMBER_INV_TYPE_MAX + 1, 0, 0, 0, 0),
			 EMBER_INV_EINVAL);
	assert_int_equal(ember_inv_hdr_encode(b, EMBER_INV_RESULT, 1, 0, 0, 0),
			 EMBER_INV_EINVAL);
	assert_int_equal(ember_inv_hdr_encode(b, EMBER_INV_PONG, 0, 5, 0, 0),
			 EMBER_INV_EINVAL);
	/* Distinct messages for distinct errors. */
	assert_string_not_equal(ember_inv_strerror(EMBER_INV_EMAGIC),
				ember_inv_strerror(EMBER_INV_E2BIG));
}

static void test_frame_encode(void **state)
{
	uint8_t b[64];
	long n;

	(void)state;
	n = ember_inv_frame_encode(b, sizeof(b), EMBER_INV_RESULT, 0, 0, 3,
				   "abc", 3);
	assert_int_equal(n, EMBER_INV_HDR_SIZE + 3);
	assert_memory_equal(b + EMBER_INV_HDR_SIZE, "abc", 3);
	assert_int_equal(ember_inv_frame_encode(b, EMBER_INV_HDR_SIZE + 2,
						EMBER_INV_RESULT, 0, 0, 3,
						"abc", 3),
			 EMBER_INV_ENOSPC);
	assert_int_equal(ember_inv_frame_encode(b, 10, EMBER_INV_READY, 0, 0,
						0, NULL, 0),
			 EMBER_INV_ENOSPC);
	assert_int_equal(ember_inv_frame_encode(b, sizeof(b), EMBER_INV_RESULT,
						0, 0, 3, NULL, 3),
			 EMBER_INV_EINVAL);
}

/* ---- incremental decoder ---- */

struct got_frame {
	struct ember_inv_hdr h;
	uint8_t data[512];
};

/* A stream of frames of every shape: empty ones, small ones, one bigger than
 * a typical read. */
static size_t build_stream(uint8_t *s, size_t cap)
{
	static uint8_t big[300];
	size_t n = 0;
	long k;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 1);
#define PUT(type, fl, arg, id, p, len)                                       \
	do {                                                                 \
		k = ember_inv_frame_encode(s + n, cap - n, type, fl, arg, id, \
					   p, len);                          \
		assert_true(k > 0);                                          \
		n += (size_t)k;                                              \
	} while (0)
	PUT(EMBER_INV_READY, 0, 0, 0, NULL, 0);
	PUT(EMBER_INV_INVOKE, 0, 500, 1, big, 100);
	PUT(EMBER_INV_LOG, 0, EMBER_INV_STREAM_STDERR, 1, "hello", 5);
	PUT(EMBER_INV_PING, 0, 0, 9, NULL, 0);
	PUT(EMBER_INV_RESULT, 0, 0, 1, big, 300);
	PUT(EMBER_INV_ERROR, 0, EMBER_ERR_CRASH, 2, "boom", 4);
#undef PUT
	return n;
}

/* Feeds s[0,n) in the given pieces; returns the number of frames and checks
 * each event's invariants. */
static int decode_pieces(const uint8_t *s, const size_t *cuts, int ncuts,
			 struct got_frame *out, int max)
{
	struct ember_inv_dec d;
	int nf = 0, r;
	size_t used;

	ember_inv_dec_init(&d);
	for (int c = 0; c + 1 < ncuts; c++) {
		const uint8_t *p = s + cuts[c];
		size_t left = cuts[c + 1] - cuts[c];

		while (left) {
			r = ember_inv_dec_feed(&d, p, left, &used);
			assert_true(r >= 0);
			assert_true(used <= left);
			p += used;
			left -= used;
			if (r == EMBER_INV_DEC_HEADER) {
				assert_true(d.hdr.length > 0);
				assert_int_equal(ember_inv_dec_set_buf(&d,
						 out[nf].data, sizeof(out[nf].data)), 0);
			} else if (r == EMBER_INV_DEC_FRAME) {
				assert_true(nf < max);
				out[nf++].h = d.hdr;
			} else {
				assert_int_equal(left, 0);
			}
		}
	}
	assert_int_equal(ember_inv_dec_finish(&d), 0);
	return nf;
}

static void check_frames(const struct got_frame *f, int nf)
{
	assert_int_equal(nf, 6);
	assert_int_equal(f[0].h.type, EMBER_INV_READY);
	assert_int_equal(f[1].h.type, EMBER_INV_INVOKE);
	assert_int_equal(f[1].h.arg, 500);
	assert_int_equal(f[1].h.length, 100);
	for (int i = 0; i < 100; i++)
		assert_int_equal(f[1].data[i], (uint8_t)(i * 7 + 1));
	assert_int_equal(f[2].h.type, EMBER_INV_LOG);
	assert_memory_equal(f[2].data, "hello", 5);
	assert_int_equal(f[3].h.type, EMBER_INV_PING);
	assert_true(f[3].h.id == 9);
	assert_int_equal(f[4].h.type, EMBER_INV_RESULT);
	assert_int_equal(f[4].h.length, 300);
	for (int i = 0; i < 300; i++)
		assert_int_equal(f[4].data[i], (uint8_t)(i * 7 + 1));
	assert_int_equal(f[5].h.type, EMBER_INV_ERROR);
	assert_int_equal(f[5].h.arg, EMBER_ERR_CRASH);
	assert_memory_equal(f[5].data, "boom", 4);
}

static void test_dec_split_every_boundary(void **state)
{
	static uint8_t s[1024];
	static struct got_frame f[8];
	size_t n = build_stream(s, sizeof(s)), cuts[3];

	(void)state;
	for (size_t k = 0; k <= n; k++) {
		memset(f, 0, sizeof(f));
		cuts[0] = 0;
		cuts[1] = k;
		cuts[2] = n;
		check_frames(f, decode_pieces(s, cuts, 3, f, 8));
	}
	/* And two cuts at every pair of boundaries (a stride keeps it fast). */
	for (size_t a = 0; a <= n; a += 3)
		for (size_t b = a; b <= n; b += 5) {
			size_t c3[4] = { 0, a, b, n };

			memset(f, 0, sizeof(f));
			check_frames(f, decode_pieces(s, c3, 4, f, 8));
		}
}

static void test_dec_byte_by_byte(void **state)
{
	static uint8_t s[1024];
	static struct got_frame f[8];
	static size_t cuts[1025];
	size_t n = build_stream(s, sizeof(s));

	(void)state;
	for (size_t i = 0; i <= n; i++)
		cuts[i] = i;
	check_frames(f, decode_pieces(s, cuts, (int)n + 1, f, 8));
}

static void test_dec_truncated(void **state)
{
	static uint8_t s[1024];
	struct ember_inv_dec d;
	size_t n = build_stream(s, sizeof(s)), used, off;
	int r;

	(void)state;
	/* Cut the stream at every point: the decoder is idle exactly at frame
	 * boundaries and reports truncation everywhere else. */
	for (size_t cut = 0; cut <= n; cut++) {
		int at_boundary = 0;

		ember_inv_dec_init(&d);
		off = 0;
		while (off < cut) {
			r = ember_inv_dec_feed(&d, s + off, cut - off, &used);
			assert_true(r >= 0);
			off += used;
		}
		/* Boundaries of build_stream's frames. */
		{
			size_t b = 0;
			struct ember_inv_hdr h;

			while (b < cut) {
				assert_int_equal(ember_inv_hdr_decode(s + b, &h), 0);
				b += EMBER_INV_HDR_SIZE + h.length;
			}
			at_boundary = b == cut;
		}
		assert_int_equal(ember_inv_dec_finish(&d),
				 at_boundary ? 0 : EMBER_INV_ETRUNC);
	}
}

static void test_dec_errors(void **state)
{
	uint8_t b[EMBER_INV_HDR_SIZE + 8];
	struct ember_inv_dec d;
	uint8_t small[4];
	size_t used;

	(void)state;
	/* Bad magic: sticky failure, nothing past the header consumed. */
	hdr(b, EMBER_INV_LOG, 0, 1, 8, 0);
	b[1] = 0;
	ember_inv_dec_init(&d);
	assert_int_equal(ember_inv_dec_feed(&d, b, sizeof(b), &used),
			 EMBER_INV_EMAGIC);
	assert_int_equal(used, EMBER_INV_HDR_SIZE);
	assert_int_equal(ember_inv_dec_feed(&d, b, sizeof(b), &used),
			 EMBER_INV_ESTATE);
	assert_int_equal(used, 0);
	assert_int_equal(ember_inv_dec_finish(&d), EMBER_INV_EMAGIC);

	/* Oversize INVOKE: refused at the header, no buffer ever offered. */
	hdr(b, EMBER_INV_INVOKE, 0, 0, 0, 5);
	memcpy(b + 12, (uint8_t[]){ 0x01, 0x00, 0x60, 0x00 }, 4); /* 6 MiB + 1 */
	ember_inv_dec_init(&d);
	assert_int_equal(ember_inv_dec_feed(&d, b, sizeof(b), &used),
			 EMBER_INV_E2BIG);
	assert_int_equal(d.hdr.length, 6291457);
	assert_true(d.hdr.id == 5);

	/* A buffer smaller than the payload is refused; without a buffer the
	 * payload is consumed and dropped. */
	hdr(b, EMBER_INV_LOG, 0, 2, 8, 0);
	memcpy(b + EMBER_INV_HDR_SIZE, "12345678", 8);
	ember_inv_dec_init(&d);
	assert_int_equal(ember_inv_dec_set_buf(&d, small, 4), EMBER_INV_ESTATE);
	assert_int_equal(ember_inv_dec_feed(&d, b, sizeof(b), &used),
			 EMBER_INV_DEC_HEADER);
	assert_int_equal(ember_inv_dec_set_buf(&d, small, 4), EMBER_INV_ENOSPC);
	assert_int_equal(ember_inv_dec_feed(&d, b + used, sizeof(b) - used, &used),
			 EMBER_INV_DEC_FRAME);
	assert_int_equal(used, 8);
	assert_true(ember_inv_dec_idle(&d));

	/* Garbage of every byte value never crashes and fails cleanly. */
	for (int v = 0; v < 256; v++) {
		memset(b, v, sizeof(b));
		ember_inv_dec_init(&d);
		assert_true(ember_inv_dec_feed(&d, b, sizeof(b), &used) < 0);
	}
}

/* ---- host client against a fake instance ---- */

struct peer {
	int fd;
	int read_invoke;      /* read one INVOKE frame first */
	uint64_t seen_id;
	uint32_t seen_deadline, seen_len;
	int syncs;            /* SYNC frames seen before the INVOKE */
	uint8_t sync[EMBER_INV_SYNC_LEN];
	uint8_t *script;      /* bytes to send afterwards */
	size_t script_len;
	int hold_open_ms;     /* keep the socket open this long afterwards */
};

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	struct ember_inv_dec d;
	uint8_t buf[4096];
	ssize_t n;
	size_t off, used;
	int r, done = !p->read_invoke;

	ember_inv_dec_init(&d);
	while (!done && (n = read(p->fd, buf, sizeof(buf))) > 0) {
		for (off = 0; off < (size_t)n && !done; off += used) {
			r = ember_inv_dec_feed(&d, buf + off, (size_t)n - off, &used);
			if (r < 0)
				return NULL;
			if (r == EMBER_INV_DEC_HEADER && d.hdr.type == EMBER_INV_SYNC &&
			    d.hdr.length == sizeof(p->sync))
				ember_inv_dec_set_buf(&d, p->sync, sizeof(p->sync));
			if (r == EMBER_INV_DEC_FRAME && d.hdr.type == EMBER_INV_SYNC)
				p->syncs++;
			if (r == EMBER_INV_DEC_FRAME && d.hdr.type == EMBER_INV_INVOKE) {
				p->seen_id = d.hdr.id;
				p->seen_deadline = d.hdr.arg;
				p->seen_len = d.hdr.length;
				done = 1;
			}
		}
	}
	for (off = 0; off < p->script_len; off += (size_t)n) {
		n = write(p->fd, p->script + off, p->script_len - off);
		if (n <= 0)
			break;
	}
	if (p->hold_open_ms)
		usleep((useconds_t)p->hold_open_ms * 1000);
	close(p->fd);
	return NULL;
}

struct script {
	uint8_t *b;
	size_t len, cap;
};

static void add(struct script *s, uint8_t type, uint16_t fl, uint32_t arg,
		uint64_t id, const void *p, uint32_t len)
{
	long k;

	if (s->cap - s->len < EMBER_INV_HDR_SIZE + (size_t)len) {
		s->cap = (s->cap + EMBER_INV_HDR_SIZE + len) * 2;
		s->b = realloc(s->b, s->cap);
		assert_non_null(s->b);
	}
	k = ember_inv_frame_encode(s->b + s->len, s->cap - s->len, type, fl,
				   arg, id, p, len);
	assert_true(k > 0);
	s->len += (size_t)k;
}

/* Runs one invocation of `req` against a peer sending `s` after reading the
 * INVOKE; returns the status. */
static enum ember_invoke_status run_peer(struct script *s, int want_ready,
					 size_t log_cap, int timeout_ms,
					 int hold_ms, struct inv_result *res,
					 struct peer *p)
{
	int sv[2], err = 0;
	pthread_t t;
	struct inv_client *c;
	enum ember_invoke_status st;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*p = (struct peer){ .fd = sv[1], .read_invoke = 1, .script = s->b,
			    .script_len = s->len, .hold_open_ms = hold_ms };
	assert_int_equal(pthread_create(&t, NULL, peer_main, p), 0);
	c = inv_client_from_fds(sv[0], sv[0], 1, &err);
	assert_non_null(c);
	(void)want_ready;
	inv_client_set_log_cap(c, log_cap);
	st = inv_client_invoke(c, "request", 7, timeout_ms, res);
	inv_client_destroy(c);
	pthread_join(t, NULL);
	return st;
}

static void test_client_ok_and_logs(void **state)
{
	struct script s = { 0 };
	struct inv_result res;
	struct peer p;

	(void)state;
	add(&s, EMBER_INV_LOG, 0, EMBER_INV_STREAM_STDOUT, 1, "out ", 4);
	add(&s, EMBER_INV_PING, 0, 0, 55, NULL, 0); /* ignored */
	add(&s, EMBER_INV_LOG, 0, EMBER_INV_STREAM_STDERR, 1, "err", 3);
	add(&s, EMBER_INV_RESULT, 0, 0, 1, "result!", 7);
	assert_int_equal(run_peer(&s, 0, 1024, 2000, 0, &res, &p), EMBER_INVOKE_OK);
	assert_true(p.seen_id == 1);
	assert_int_equal(p.seen_deadline, 2000);
	assert_int_equal(p.seen_len, 7);
	assert_int_equal(res.len, 7);
	assert_memory_equal(res.payload, "result!", 7);
	assert_int_equal(res.logs_len, 7);
	assert_memory_equal(res.logs, "out err", 7);
	assert_int_equal(res.logs_dropped, 0);
	inv_result_free(&res);
	free(s.b);
}

static void test_client_log_flood(void **state)
{
	static uint8_t chunk[EMBER_INV_MAX_LOG];
	struct script s = { 0 };
	struct inv_result res;
	struct peer p;
	const int frames = 300; /* 4.8 MiB of log against a 64 KiB cap */

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < frames; i++)
		add(&s, EMBER_INV_LOG, 0, EMBER_INV_STREAM_STDERR, 1, chunk,
		    sizeof(chunk));
	add(&s, EMBER_INV_RESULT, 0, 0, 1, "done", 4);
	assert_int_equal(run_peer(&s, 0, 65536, 5000, 0, &res, &p), EMBER_INVOKE_OK);
	assert_int_equal(res.logs_len, 65536);
	assert_int_equal(res.logs_dropped, (size_t)frames * sizeof(chunk) - 65536);
	assert_memory_equal(res.payload, "done", 4);
	inv_result_free(&res);
	free(s.b);
}

static void test_client_func_error_and_error_frames(void **state)
{
	struct script s = { 0 };
	struct inv_result res;
	struct peer p;

	(void)state;
	add(&s, EMBER_INV_RESULT, 0, 7, 1, "bad input", 9);
	assert_int_equal(run_peer(&s, 0, 1024, 2000, 0, &res, &p),
			 EMBER_INVOKE_FUNC_ERROR);
	assert_int_equal(res.fn_status, 7);
	assert_memory_equal(res.payload, "bad input", 9);
	inv_result_free(&res);

	s.len = 0;
	/* A stale ERROR for another id is ignored; ours counts. The message
	 * is hostile text: control bytes are neutralised. */
	add(&s, EMBER_INV_ERROR, 0, EMBER_ERR_OOM, 99, "stale", 5);
	add(&s, EMBER_INV_ERROR, 0, EMBER_ERR_CRASH, 1, "segv\x1b[2J", 8);
	assert_int_equal(run_peer(&s, 0, 1024, 2000, 0, &res, &p),
			 EMBER_INVOKE_FUNC_ERROR);
	assert_int_equal(res.err_code, EMBER_ERR_CRASH);
	assert_non_null(strstr(res.msg, "crash: segv?[2J"));
	inv_result_free(&res);

	s.len = 0;
	add(&s, EMBER_INV_ERROR, 0, EMBER_ERR_TIMEOUT, 1, "deadline", 8);
	assert_int_equal(run_peer(&s, 0, 1024, 2000, 0, &res, &p),
			 EMBER_INVOKE_TIMEOUT);
	assert_int_equal(res.err_code, EMBER_ERR_TIMEOUT);
	inv_result_free(&res);
	free(s.b);
}

static void test_client_transport_failures(void **state)
{
	struct script s = { 0 };
	struct inv_result res;
	struct peer p;
	uint8_t junk[EMBER_INV_HDR_SIZE] = "this is not a frame....";

	(void)state;
	/* RESULT for a request that is not in flight. */
	add(&s, EMBER_INV_RESULT, 0, 0, 2, "x", 1);
	assert_int_equal(run_peer(&s, 0, 1024, 2000, 0, &res, &p),
			 EMBER_INVOKE_TRANSPORT);
	inv_result_free(&res);
	/* Same with an empty RESULT (no HEADER event on that path). */
	s.len = 0;
	add(&s, EMBER_INV_RESULT, 0, 0, 2, NULL, 0);
	assert_int_equal(run_peer(&s, 0, 1024, 2000, 0, &res, &p),
			 EMBER_INVOKE_TRANSPORT);
	inv_result_free(&res);
	/* Garbage. */
	free(s.b);
	s = (struct script){ .b = malloc(sizeof(junk)), .len = sizeof(junk),
			     .cap = sizeof(junk) };
	memcpy(s.b, junk, sizeof(junk));
	assert_int_equal(run_peer(&s, 0, 1024, 2000, 0, &res, &p),
			 EMBER_INVOKE_TRANSPORT);
	assert_non_null(strstr(res.msg, "bad frame magic"));
	inv_result_free(&res);
	/* Closed inside a frame: a RESULT header promising 100 bytes. */
	s.len = 0;
	add(&s, EMBER_INV_RESULT, 0, 0, 1, junk, 20);
	s.b[12] = 100;
	assert_int_equal(run_peer(&s, 0, 1024, 2000, 0, &res, &p),
			 EMBER_INVOKE_TRANSPORT);
	assert_non_null(strstr(res.msg, "inside a frame"));
	inv_result_free(&res);
	/* Silence: the host's own deadline (50 ms + grace). */
	s.len = 0;
	assert_int_equal(run_peer(&s, 0, 1024, 50, 600, &res, &p),
			 EMBER_INVOKE_TIMEOUT);
	assert_true(res.elapsed_ns >= 50ull * 1000000);
	inv_result_free(&res);
	free(s.b);
}

static void test_client_refuses_large_request(void **state)
{
	struct inv_result res;
	struct inv_client *c;
	int sv[2], err;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = inv_client_from_fds(sv[0], sv[0], 1, &err);
	assert_non_null(c);
	assert_int_equal(inv_client_invoke(c, "", EMBER_INV_MAX_PAYLOAD + 1,
					   1000, &res),
			 EMBER_INVOKE_TRANSPORT);
	assert_non_null(strstr(res.msg, "too large"));
	inv_result_free(&res);
	inv_client_destroy(c);
	close(sv[1]);
}

/* A hybrid-vsock listener: accept, check "CONNECT <port>\n", answer with
 * `reply` (handshake and maybe frames in the same write), then behave as
 * a peer. */
struct listener {
	int lfd;
	const char *reply;
	size_t reply_len;
	char got[64];
	struct peer peer;
};

static void *listener_main(void *arg)
{
	struct listener *l = arg;
	int fd = accept(l->lfd, NULL, NULL);
	size_t n = 0;
	ssize_t r;

	if (fd < 0)
		return NULL;
	while (n < sizeof(l->got) - 1 && (r = read(fd, l->got + n, 1)) == 1)
		if (l->got[n++] == '\n')
			break;
	/* No reply at all: close, as Firecracker does for a port nobody
	 * listens on. */
	if (l->reply_len == 0 || write(fd, l->reply, l->reply_len) < 0) {
		close(fd);
		return NULL;
	}
	l->peer.fd = fd;
	return peer_main(&l->peer);
}

static enum ember_invoke_status vsock_invoke(const char *reply, size_t rlen,
					     struct script *s,
					     struct listener *l,
					     struct inv_result *res)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	enum ember_invoke_status st;
	pthread_t t;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/test_invoke.%d.sock",
		 getpid());
	unlink(sa.sun_path);
	l->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(l->lfd >= 0);
	assert_int_equal(bind(l->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l->lfd, 4), 0);
	l->reply = reply;
	l->reply_len = rlen;
	l->peer = (struct peer){ .read_invoke = 1, .script = s->b,
				 .script_len = s->len };
	assert_int_equal(pthread_create(&t, NULL, listener_main, l), 0);
	st = ember_invoke(sa.sun_path, EMBER_INV_VSOCK_PORT, "hi", 2, 2000, res);
	pthread_join(t, NULL);
	close(l->lfd);
	unlink(sa.sun_path);
	return st;
}

/* A READY with EMBER_INV_F_READY_SYNC gets exactly one SYNC frame, ahead of
 * the INVOKE: our wall clock (now, to within the test's run time) and 32
 * bytes of entropy that differ between connections. */
static void test_client_sync(void **state)
{
	struct script s = { 0 };
	static struct listener l;
	uint8_t ent1[EMBER_INV_SYNC_ENTROPY], ent2[EMBER_INV_SYNC_ENTROPY];
	struct inv_result res;
	struct timespec a, b;
	char reply[128];
	uint64_t t, ta, tb;
	size_t n;

	(void)state;
	memcpy(reply, "OK 1073741824\n", 14);
	n = 14 + (size_t)ember_inv_frame_encode((uint8_t *)reply + 14,
						sizeof(reply) - 14,
						EMBER_INV_READY,
						EMBER_INV_F_READY_SYNC, 0, 0,
						"ember-init", 10);
	add(&s, EMBER_INV_RESULT, 0, 0, 1, "synced", 6);
	clock_gettime(CLOCK_REALTIME, &a);
	assert_int_equal(vsock_invoke(reply, n, &s, &l, &res), EMBER_INVOKE_OK);
	clock_gettime(CLOCK_REALTIME, &b);
	assert_memory_equal(res.payload, "synced", 6);
	inv_result_free(&res);
	assert_int_equal(l.peer.syncs, 1);
	assert_int_equal(l.peer.seen_len, 2); /* the INVOKE still came */
	assert_int_equal(ember_inv_sync_decode(l.peer.sync, sizeof(l.peer.sync),
					       &t, ent1), 0);
	ta = (uint64_t)a.tv_sec * 1000000000ull + (uint64_t)a.tv_nsec;
	tb = (uint64_t)b.tv_sec * 1000000000ull + (uint64_t)b.tv_nsec;
	assert_true(t >= ta && t <= tb);

	assert_int_equal(vsock_invoke(reply, n, &s, &l, &res), EMBER_INVOKE_OK);
	inv_result_free(&res);
	assert_int_equal(l.peer.syncs, 1);
	assert_int_equal(ember_inv_sync_decode(l.peer.sync, sizeof(l.peer.sync),
					       &t, ent2), 0);
	assert_memory_not_equal(ent1, ent2, sizeof(ent1));
	free(s.b);
}

static void test_vsock_handshake(void **state)
{
	struct script s = { 0 };
	static struct listener l;
	struct inv_result res;
	char reply[128];
	size_t n;

	(void)state;
	/* "OK" and READY arrive in one segment: the client must keep the
	 * bytes after the newline for the frame decoder. */
	memcpy(reply, "OK 1073741824\n", 14);
	n = 14 + (size_t)ember_inv_frame_encode((uint8_t *)reply + 14,
						sizeof(reply) - 14,
						EMBER_INV_READY, 0, 0, 0,
						"ember-micro", 11);
	add(&s, EMBER_INV_RESULT, 0, 0, 1, "there", 5);
	assert_int_equal(vsock_invoke(reply, n, &s, &l, &res), EMBER_INVOKE_OK);
	assert_string_equal(l.got, "CONNECT 1024\n");
	assert_int_equal(l.peer.seen_len, 2);
	assert_memory_equal(res.payload, "there", 5);
	/* The micro guest's READY does not ask for SYNC: none is sent. */
	assert_int_equal(l.peer.syncs, 0);
	inv_result_free(&res);

	/* Init failure: ERROR instead of READY is the function's error. */
	s.len = 0;
	n = 14 + (size_t)ember_inv_frame_encode((uint8_t *)reply + 14,
						sizeof(reply) - 14,
						EMBER_INV_ERROR, 0,
						EMBER_ERR_CRASH, 0, "init", 4);
	assert_int_equal(vsock_invoke(reply, n, &s, &l, &res),
			 EMBER_INVOKE_FUNC_ERROR);
	assert_int_equal(res.err_code, EMBER_ERR_CRASH);
	inv_result_free(&res);

	/* Malformed handshake answers. */
	assert_int_equal(vsock_invoke("NO\n", 3, &s, &l, &res),
			 EMBER_INVOKE_TRANSPORT);
	assert_non_null(strstr(res.msg, "rotocol"));
	assert_int_equal(vsock_invoke("OK x\n", 5, &s, &l, &res),
			 EMBER_INVOKE_TRANSPORT);
	assert_int_equal(vsock_invoke("", 0, &s, &l, &res),
			 EMBER_INVOKE_TRANSPORT); /* closed: refused */
	free(s.b);
}

/* The clients on an already connected socket, as the cold-start bench and
 * emberd use them: inv_client_handshake_fd() does CONNECT/OK and keeps
 * what follows the OK line (READY in the same segment);
 * inv_client_from_vsock_fd() starts after a handshake done elsewhere, READY
 * pending, and sends nothing of its own. */
static void test_clients_on_connected_fd(void **state)
{
	struct inv_client *c;
	char reply[128], got[32];
	int sv[2], err = 0;
	ssize_t n;
	size_t len;

	(void)state;
	memcpy(reply, "OK 1073741824\n", 14);
	len = 14 + (size_t)ember_inv_frame_encode((uint8_t *)reply + 14,
						  sizeof(reply) - 14,
						  EMBER_INV_READY, 0, 0, 0,
						  "ember-micro", 11);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], reply, len), (ssize_t)len);
	c = inv_client_handshake_fd(sv[0], EMBER_INV_VSOCK_PORT, 1000, &err);
	assert_non_null(c);
	n = read(sv[1], got, sizeof(got) - 1);
	assert_int_equal(n, 13);
	got[n] = 0;
	assert_string_equal(got, "CONNECT 1024\n");
	assert_int_equal(inv_client_wait_ready(c, 1000), 0);
	inv_client_destroy(c);
	close(sv[1]);

	/* Handshake done by the caller: READY is all that is read, nothing
	 * is written. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], reply + 14, len - 14), (ssize_t)(len - 14));
	c = inv_client_from_vsock_fd(sv[0], &err);
	assert_non_null(c);
	assert_int_equal(inv_client_wait_ready(c, 1000), 0);
	assert_int_equal(recv(sv[1], got, sizeof(got), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	inv_client_destroy(c);
	close(sv[1]);

	/* Refusals, which the bench retries on: the VMM closes before the
	 * guest's driver is up (EOF after CONNECT), or is gone already. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	shutdown(sv[1], SHUT_WR);
	assert_null(inv_client_handshake_fd(sv[0], EMBER_INV_VSOCK_PORT, 1000,
					    &err));
	assert_int_equal(err, -ECONNREFUSED);
	close(sv[1]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	assert_null(inv_client_handshake_fd(sv[0], EMBER_INV_VSOCK_PORT, 1000,
					    &err));
	assert_true(err == -EPIPE || err == -ECONNRESET);
	/* A timeout of 0 is refused, the fd closed all the same. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_null(inv_client_handshake_fd(sv[0], EMBER_INV_VSOCK_PORT, 0, &err));
	assert_int_equal(err, -EINVAL);
	assert_int_equal(read(sv[1], got, sizeof(got)), 0); /* peer closed */
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_layout),
		cmocka_unit_test(test_hdr_roundtrip_all_types),
		cmocka_unit_test(test_hdr_hostile),
		cmocka_unit_test(test_sync_payload),
		cmocka_unit_test(test_frame_encode),
		cmocka_unit_test(test_dec_split_every_boundary),
		cmocka_unit_test(test_dec_byte_by_byte),
		cmocka_unit_test(test_dec_truncated),
		cmocka_unit_test(test_dec_errors),
		cmocka_unit_test(test_client_ok_and_logs),
		cmocka_unit_test(test_client_log_flood),
		cmocka_unit_test(test_client_func_error_and_error_frames),
		cmocka_unit_test(test_client_transport_failures),
		cmocka_unit_test(test_client_refuses_large_request),
		cmocka_unit_test(test_vsock_handshake),
		cmocka_unit_test(test_client_sync),
		cmocka_unit_test(test_clients_on_connected_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
