/* Unit tests: metering (agent/meter.c) and the metrics writer
 * (agent/metrics.c). The billing rules one by one (rounded up to 1 ms, at
 * least 1 ms, a timeout billed its full timeout, throttled and rejected
 * free, the cold start's restore apart unless bill_init), a finished
 * invocation's ledger row and metrics, refused requests getting request
 * ids, incomplete records refused, logs cut per invocation; and the
 * Prometheus text: cumulative buckets, bounded series (an overflow series
 * past the limit, pruning), escaping, and `promtool check metrics` on a
 * whole rendering. */
// link: agent/meter.c agent/metrics.c agent/ledger.c agent/journal.c
// link: agent/elog.c agent/utf8.c agent/db.c agent/util.c vmm/log.c
// libs: -lsqlite3 -lz -lpthread
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/db.h"
#include "agent/meter.h"
#include "agent/metrics.h"
#include "agent/util.h"

#define MS 1000000ull

static void test_billing_rules(void **state)
{
	(void)state;
	/* Rounded up to the next millisecond. */
	assert_int_equal(meter_billed_ms(LEDGER_OK, 1 * MS, 0, 3000, false), 1);
	assert_int_equal(meter_billed_ms(LEDGER_OK, 1 * MS + 1, 0, 3000, false),
			 2);
	assert_int_equal(meter_billed_ms(LEDGER_OK, 47000, 0, 3000, false), 1);
	assert_int_equal(meter_billed_ms(LEDGER_ERROR, 2500 * MS - 1, 0, 3000,
					 false),
			 2500);
	/* What ran is billed at least 1 ms, even if it measured 0. */
	assert_int_equal(meter_billed_ms(LEDGER_OK, 0, 0, 3000, false), 1);
	assert_int_equal(meter_billed_ms(LEDGER_CRASH, 0, 0, 3000, false), 1);
	assert_int_equal(meter_billed_ms(LEDGER_CRASH, 12 * MS + 5, 0, 3000,
					 false),
			 13);
	/* A timeout bills its full timeout, not the time it took to stop. */
	assert_int_equal(meter_billed_ms(LEDGER_TIMEOUT, 3207 * MS, 0, 3000,
					 false),
			 3000);
	assert_int_equal(meter_billed_ms(LEDGER_TIMEOUT, 10 * MS, 0, 3000,
					 false),
			 3000);
	/* Throttled and rejected requests cost nothing. */
	assert_int_equal(meter_billed_ms(LEDGER_THROTTLED, 5 * MS, 0, 3000,
					 false),
			 0);
	assert_int_equal(meter_billed_ms(LEDGER_REJECTED, 5 * MS, 9 * MS, 3000,
					 true),
			 0);
	/* The restore is free by default, billed with bill_init. */
	assert_int_equal(meter_billed_ms(LEDGER_OK, 1 * MS, 2 * MS + 1, 3000,
					 false),
			 1);
	assert_int_equal(meter_billed_ms(LEDGER_OK, 1 * MS, 2 * MS + 1, 3000,
					 true),
			 4);
	/* Saturates instead of wrapping. */
	assert_int_equal(meter_billed_ms(LEDGER_OK, UINT64_MAX / 2, 0, 0, false),
			 UINT32_MAX);
}

struct fixture {
	char dir[64];
	char db[128], journal[128];
	struct meter *m;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct meter_config c = { .batch_ms = 5, .log_invocation_bytes = 100,
				  .metrics_max_series = 3 };
	char err[256];
	struct db *db;

	snprintf(f->dir, sizeof(f->dir), "/tmp/ember-test-meter.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/ember.db", f->dir);
	snprintf(f->journal, sizeof(f->journal), "%s/ledger.journal", f->dir);
	db = db_open(f->db, err, sizeof(err));
	if (!db)
		return -1;
	db_close(db);
	c.db_path = f->db;
	c.journal_path = f->journal;
	f->m = meter_create(&c, NULL, err, sizeof(err));
	if (!f->m) {
		fprintf(stderr, "meter_create: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	meter_destroy(f->m);
	util_rm_tree(AT_FDCWD, f->dir);
	free(f);
	return 0;
}

static struct meter_inv inv_of(uint64_t id, int64_t fn_id, const char *fn,
			       enum ledger_outcome o, uint64_t duration_ns)
{
	struct meter_inv v = {
		.request_id = id,
		.tenant_id = 1,
		.fn_id = fn_id,
		.tenant = "acme",
		.function = fn,
		.version = 2,
		.memory_mib = 256,
		.timeout_ms = 3000,
		.start = { .tv_sec = 1764547200, .tv_nsec = 5000 },
		.duration_ns = duration_ns,
		.queued_ns = 100000,
		.outcome = o,
		.bytes_in = 11,
		.bytes_out = 22,
	};

	return v;
}

static struct ledger_rec *all_rows(struct meter *m, size_t *n)
{
	struct ledger_query q = { .from_us = 0, .to_us = INT64_MAX };
	struct ledger_rec *r;

	assert_int_equal(ledger_sync(meter_ledger(m), 5000), 0);
	assert_int_equal(ledger_records(meter_ledger(m), &q, 0, 1000, &r, NULL,
					n),
			 0);
	return r;
}

static void test_finished_and_refused(void **state)
{
	struct fixture *f = *state;
	struct meter_inv v = inv_of(42, 7, "resize", LEDGER_OK, 1500000);
	struct meter_inv t = inv_of(0, 7, "resize", LEDGER_THROTTLED, 0);
	struct meter_inv bad = inv_of(43, 7, "Not A Name", LEDGER_OK, 1);
	uint64_t id1, id2;
	struct ledger_rec *r;
	size_t n;

	v.cold = true;
	v.init_ns = 2000000;
	meter_finished(f->m, &v);
	t.queued_ns = 5 * MS;
	id1 = meter_refused(f->m, &t);
	id2 = meter_refused(f->m, &t);
	assert_true(id1 && id2 && id1 != id2);
	meter_finished(f->m, &bad); /* not recorded */
	bad = inv_of(0, 7, "resize", LEDGER_OK, 1);
	meter_finished(f->m, &bad); /* no request id: not recorded */

	r = all_rows(f->m, &n);
	assert_int_equal(n, 3);
	assert_int_equal(r[0].request_id, 42);
	assert_int_equal(r[0].billed_ms, 2);
	assert_int_equal(r[0].start_us, 1764547200000005LL);
	assert_int_equal(r[0].cold, 1);
	assert_int_equal(r[0].init_ns, 2000000);
	assert_int_equal(r[0].memory_mib, 256);
	assert_int_equal(r[0].version, 2);
	assert_int_equal(r[0].bytes_in, 11);
	assert_int_equal(r[0].bytes_out, 22);
	assert_string_equal(r[0].tenant, "acme");
	assert_string_equal(r[0].function, "resize");
	assert_int_equal(r[1].request_id, id1);
	assert_int_equal(r[1].outcome, LEDGER_THROTTLED);
	assert_int_equal(r[1].billed_ms, 0);
	assert_int_equal(r[1].cold, 0);
	assert_int_equal(r[2].request_id, id2);
	free(r);
}

static void test_logs_cut_per_invocation(void **state)
{
	struct fixture *f = *state;
	struct meter_inv v = inv_of(5, 7, "f", LEDGER_OK, 1);
	struct ledger_log_query q = { .tenant_id = 1, .fn_id = 7 };
	struct ledger_log *g;
	char text[300];
	size_t n;

	memset(text, 'z', sizeof(text));
	v.logs = text;
	v.logs_len = sizeof(text);
	meter_finished(f->m, &v);
	v = inv_of(6, 7, "f", LEDGER_OK, 1);
	v.logs = "short\n";
	v.logs_len = 6;
	meter_finished(f->m, &v);
	assert_int_equal(ledger_sync(meter_ledger(f->m), 5000), 0);
	assert_int_equal(ledger_logs(meter_ledger(f->m), &q, &g, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(g[0].len, 100); /* log_invocation_bytes */
	assert_true(g[0].truncated);
	assert_string_equal(g[1].text, "short\n");
	assert_false(g[1].truncated);
	ledger_logs_free(g, n);
}

/* The value of the sample line that starts with `prefix` + ' '. */
static double sample(const char *text, const char *prefix)
{
	size_t pl = strlen(prefix);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (!strncmp(p, prefix, pl) && p[pl] == ' ')
			return strtod(p + pl + 1, NULL);
	fail_msg("no sample %s", prefix);
	return -1;
}

static void test_metrics_text(void **state)
{
	struct fixture *f = *state;
	struct mbuf b = { 0 };
	struct meter_inv v;

	/* Warm 40 us, 3 ms; cold 20 ms with a 2 ms restore; a timeout. */
	v = inv_of(1, 7, "f", LEDGER_OK, 40000);
	meter_finished(f->m, &v);
	v = inv_of(2, 7, "f", LEDGER_ERROR, 3 * MS);
	meter_finished(f->m, &v);
	v = inv_of(3, 7, "f", LEDGER_OK, 20 * MS);
	v.cold = true;
	v.init_ns = 2 * MS;
	meter_finished(f->m, &v);
	v = inv_of(4, 8, "g", LEDGER_TIMEOUT, 3100 * MS);
	meter_finished(f->m, &v);
	v = inv_of(0, 8, "g", LEDGER_THROTTLED, 0);
	meter_refused(f->m, &v);

	metrics_render(meter_metrics(f->m), &b);
	metrics_render_process(&b);
	assert_false(b.oom);
	mbuf_printf(&b, "%c", '\0');

	assert_int_equal(sample(b.p, "ember_invocations_total{tenant=\"acme\","
				     "function=\"f\",outcome=\"ok\"}"),
			 2);
	assert_int_equal(sample(b.p, "ember_invocations_total{tenant=\"acme\","
				     "function=\"g\",outcome=\"throttled\"}"),
			 1);
	assert_int_equal(sample(b.p, "ember_invocation_errors_total{tenant="
				     "\"acme\",function=\"f\"}"),
			 1);
	assert_int_equal(sample(b.p, "ember_cold_starts_total{tenant=\"acme\","
				     "function=\"f\"}"),
			 1);
	assert_int_equal(sample(b.p, "ember_throttles_total{tenant=\"acme\","
				     "function=\"g\"}"),
			 1);
	/* billed: 1 + 3 + 20 ms for f; 3000 ms for g */
	assert_true(sample(b.p, "ember_billed_seconds_total{tenant=\"acme\","
				"function=\"f\"}") == 0.024);
	assert_true(sample(b.p, "ember_billed_byte_seconds_total{tenant="
				"\"acme\",function=\"g\"}") ==
		    0.75 * 1073741824.0);
	/* Buckets are cumulative and end with +Inf = count. */
	assert_int_equal(sample(b.p, "ember_invocation_duration_seconds_bucket"
				     "{start=\"warm\",le=\"5e-05\"}"),
			 1);
	assert_int_equal(sample(b.p, "ember_invocation_duration_seconds_bucket"
				     "{start=\"warm\",le=\"0.005\"}"),
			 2);
	assert_int_equal(sample(b.p, "ember_invocation_duration_seconds_bucket"
				     "{start=\"warm\",le=\"+Inf\"}"),
			 3);
	assert_int_equal(sample(b.p, "ember_invocation_duration_seconds_count"
				     "{start=\"warm\"}"),
			 3);
	assert_int_equal(sample(b.p, "ember_invocation_duration_seconds_bucket"
				     "{start=\"cold\",le=\"0.01\"}"),
			 0);
	assert_int_equal(sample(b.p, "ember_invocation_duration_seconds_bucket"
				     "{start=\"cold\",le=\"0.025\"}"),
			 1);
	assert_int_equal(sample(b.p, "ember_cold_start_seconds_bucket"
				     "{le=\"0.0025\"}"),
			 1);
	/* latency = queued (0.1 ms) + duration */
	assert_int_equal(sample(b.p, "ember_invocation_latency_seconds_bucket"
				     "{start=\"warm\",le=\"0.0001\"}"),
			 0);
	assert_int_equal(sample(b.p, "ember_invocation_latency_seconds_bucket"
				     "{start=\"warm\",le=\"0.00025\"}"),
			 1);
	assert_true(sample(b.p, "process_open_fds") > 2);
	assert_true(sample(b.p, "process_resident_memory_bytes") > 1e6);
	assert_null(strstr(b.p, "request_id"));

	/* promtool, Prometheus's own checker, accepts the whole text. */
	if (access("/usr/bin/promtool", X_OK) == 0) {
		char path[128], cmd[256];
		FILE *out;
		int rc;

		snprintf(path, sizeof(path), "%s/metrics.txt", f->dir);
		out = fopen(path, "w");
		assert_non_null(out);
		fputs(b.p, out);
		fclose(out);
		snprintf(cmd, sizeof(cmd),
			 "/usr/bin/promtool check metrics < %s", path);
		rc = system(cmd);
		assert_int_equal(rc, 0);
	}
	mbuf_free(&b);
}

static bool only_even(void *ctx, int64_t fn_id)
{
	(void)ctx;
	return fn_id % 2 == 0;
}

/* At most max_series (3 here) function series; the rest count under
 * "_other"; pruning drops the series of functions that are gone. */
static void test_series_bounded(void **state)
{
	struct fixture *f = *state;
	struct mbuf b = { 0 };
	char name[16];

	for (int i = 1; i <= 6; i++) {
		struct meter_inv v;

		snprintf(name, sizeof(name), "fn%d", i);
		v = inv_of((uint64_t)i, i, name, LEDGER_OK, 1000);
		meter_finished(f->m, &v);
	}
	metrics_render(meter_metrics(f->m), &b);
	mbuf_printf(&b, "%c", '\0');
	assert_non_null(strstr(b.p, "function=\"fn3\""));
	assert_null(strstr(b.p, "function=\"fn4\""));
	assert_int_equal(sample(b.p, "ember_invocations_total{tenant=\"_other\","
				     "function=\"_other\",outcome=\"ok\"}"),
			 3);
	mbuf_free(&b);

	metrics_prune(meter_metrics(f->m), only_even, NULL);
	{
		struct meter_inv v = inv_of(9, 9, "fn9", LEDGER_OK, 1000);

		meter_finished(f->m, &v); /* room again: gets its own */
	}
	metrics_render(meter_metrics(f->m), &b);
	mbuf_printf(&b, "%c", '\0');
	assert_null(strstr(b.p, "function=\"fn1\""));
	assert_non_null(strstr(b.p, "function=\"fn2\""));
	assert_non_null(strstr(b.p, "function=\"fn9\""));
	mbuf_free(&b);
}

static void test_text_escaping(void **state)
{
	struct mbuf b = { 0 };
	const char *l[] = { "path", "a\"b\\c\nd", NULL };

	(void)state;
	metrics_family(&b, "x_total", "counter", "Test.");
	metrics_sample(&b, "x_total", 3, l);
	metrics_sample(&b, "x_total", 0.5, NULL);
	mbuf_printf(&b, "%c", '\0');
	assert_string_equal(b.p, "# HELP x_total Test.\n# TYPE x_total counter\n"
				 "x_total{path=\"a\\\"b\\\\c\\nd\"} 3\n"
				 "x_total 0.5\n");
	mbuf_free(&b);
}

static void test_times(void **state)
{
	const int64_t now = 1764590400123456LL; /* 2025-12-01T12:00:00.123456Z */
	int64_t us;
	char out[32];

	(void)state;
	assert_int_equal(meter_parse_time("2025-12-01", now, &us), 0);
	assert_int_equal(us, 1764547200000000LL);
	assert_int_equal(meter_parse_time("2025-12-01T12:00", now, &us), 0);
	assert_int_equal(us, 1764590400000000LL);
	assert_int_equal(meter_parse_time("2025-12-01T12:00:00.5Z", now, &us),
			 0);
	assert_int_equal(us, 1764590400500000LL);
	assert_int_equal(meter_parse_time("2025-12-01t12:00:00.123456789z", now,
					  &us),
			 0);
	assert_int_equal(us, 1764590400123456LL);
	assert_int_equal(meter_parse_time("now", now, &us), 0);
	assert_int_equal(us, now);
	assert_int_equal(meter_parse_time("-90m", now, &us), 0);
	assert_int_equal(us, now - 5400000000LL);
	assert_int_equal(meter_parse_time("-7d", now, &us), 0);
	assert_int_equal(us, now - 7 * 86400000000LL);
	/* Refused: other shapes, offsets, impossible dates, garbage. */
	static const char *const bad[] = {
		"", "2025-12", "2025-12-1", "2025-13-01", "2025-02-30",
		"2025-12-01T24:00", "2025-12-01T12", "2025-12-01T12:00+01:00",
		"2025-12-01 12:00:00x", "1969-12-31", "-", "-5", "-5w",
		"-99999999999999999999d", "-100000d", "--1h", "now ", "12345",
		"2025-12-01T12:00:00.", "2025-12-01T12:00:0a",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (meter_parse_time(bad[i], now, &us) != -EINVAL)
			fail_msg("\"%s\" was accepted", bad[i]);
	meter_format_time(1764590400123456LL, out);
	assert_string_equal(out, "2025-12-01T12:00:00.123456Z");
	meter_format_time(0, out);
	assert_string_equal(out, "1970-01-01T00:00:00.000000Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_billing_rules),
		cmocka_unit_test_setup_teardown(test_finished_and_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_logs_cut_per_invocation,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_text, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_series_bounded, setup,
						teardown),
		cmocka_unit_test(test_text_escaping),
		cmocka_unit_test(test_times),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
