/* Unit tests: the usage ledger and the invocation logs (agent/ledger.c) on
 * a real emberd database (migrated by db_open) and a real journal. Rows
 * survive a SIGKILL of the process that wrote them, before or after their
 * batch commit, and are never there twice; usage aggregates (by function,
 * day, hour, tenant; ranges and filters) equal sums over the raw rows;
 * journal records damaged on disk are skipped; logs are cleaned to UTF-8,
 * kept per invocation and trimmed per function, and queried by request
 * id, tail and cursor, only within their tenant. */
// link: agent/ledger.c agent/journal.c agent/utf8.c agent/db.c agent/util.c
// link: vmm/log.c
// libs: -lsqlite3 -lz -lpthread
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "agent/db.h"
#include "agent/journal.h"
#include "agent/ledger.h"
#include "agent/util.h"

#define T0_US 1764547200000000LL /* 2025-12-01T00:00:00Z */
#define HOUR_US 3600000000LL

struct fixture {
	char dir[64];
	char db[128], journal[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	struct db *db;

	snprintf(f->dir, sizeof(f->dir), "/tmp/ember-test-ledger.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/ember.db", f->dir);
	snprintf(f->journal, sizeof(f->journal), "%s/ledger.journal", f->dir);
	db = db_open(f->db, err, sizeof(err)); /* creates and migrates */
	if (!db) {
		fprintf(stderr, "db_open: %s\n", err);
		return -1;
	}
	db_close(db);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	util_rm_tree(AT_FDCWD, f->dir);
	free(f);
	return 0;
}

static struct ledger *open_ledger(struct fixture *f, unsigned batch_ms,
				  uint64_t logs_per_fn, size_t *replayed)
{
	struct ledger_config c = {
		.db_path = f->db,
		.journal_path = f->journal,
		.journal_slots = 256,
		.batch_ms = batch_ms,
		.logs_per_function = logs_per_fn,
	};
	char err[256] = "";
	struct ledger *l = ledger_open(&c, replayed, err, sizeof(err));

	if (!l)
		fail_msg("ledger_open: %s", err);
	return l;
}

static struct ledger_rec rec(uint64_t id, int64_t tenant_id,
			     const char *tenant, int64_t fn_id,
			     const char *function, int64_t start_us,
			     enum ledger_outcome o, uint32_t billed_ms,
			     uint32_t mib)
{
	struct ledger_rec r;

	memset(&r, 0, sizeof(r));
	r.request_id = id;
	r.tenant_id = tenant_id;
	r.fn_id = fn_id;
	util_copy(r.tenant, sizeof(r.tenant), tenant);
	util_copy(r.function, sizeof(r.function), function);
	r.start_us = start_us;
	r.outcome = (uint8_t)o;
	r.billed_ms = billed_ms;
	r.memory_mib = mib;
	r.duration_ns = (uint64_t)billed_ms * 1000000 - 1;
	r.version = 1;
	r.bytes_in = 10;
	r.bytes_out = 20;
	return r;
}

static struct ledger_query all_time(void)
{
	struct ledger_query q = { .from_us = 0, .to_us = INT64_MAX };

	return q;
}

/* Every row, with a count of each request id (none may be there twice). */
static size_t count_rows(struct ledger *l, uint64_t max_id, unsigned *seen)
{
	struct ledger_query q = all_time();
	struct ledger_rec *r;
	size_t n;

	assert_int_equal(ledger_records(l, &q, 0, 1000000, &r, NULL, &n), 0);
	for (size_t i = 0; i < n; i++) {
		assert_true(r[i].request_id >= 1 && r[i].request_id <= max_id);
		seen[r[i].request_id]++;
	}
	free(r);
	return n;
}

static void test_add_and_read_back(void **state)
{
	struct fixture *f = *state;
	size_t replayed, n;
	struct ledger *l = open_ledger(f, 5, 0, &replayed);
	struct ledger_rec r = rec(0xfedcba9876543210ull, 3, "acme", 7, "resize",
				  T0_US + 123456, LEDGER_TIMEOUT, 3000, 256);
	struct ledger_query q = all_time();
	struct ledger_rec *out;
	int64_t *ids;

	assert_int_equal(replayed, 0);
	r.cold = 1;
	r.init_ns = 2500000;
	r.queued_ns = 2700000;
	ledger_add(l, &r);
	assert_int_equal(ledger_sync(l, 5000), 0);
	assert_int_equal(ledger_records(l, &q, 0, 10, &out, &ids, &n), 0);
	assert_int_equal(n, 1);
	/* Every field round-trips, the 64-bit id included. */
	assert_memory_equal(&out[0], &r, sizeof(r));
	assert_true(ids[0] > 0);
	free(out);
	free(ids);
	ledger_close(l);
}

/* A child adds rows to a ledger that commits rarely, and is killed with
 * SIGKILL: before any commit (phase 0) or after committing part (phase
 * 1). The parent's ledger_open replays the rest; each row is there once,
 * and a second reopen adds nothing. */
static void sigkill_round(struct fixture *f, int phase)
{
	unsigned seen[201] = { 0 };
	size_t replayed;
	struct ledger *l;
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct ledger_config c = {
			.db_path = f->db,
			.journal_path = f->journal,
			.journal_slots = 256,
			.batch_ms = 60000, /* no commit unless asked */
		};
		char err[256];
		struct ledger *cl = ledger_open(&c, NULL, err, sizeof(err));

		if (!cl)
			_exit(3);
		for (uint64_t i = 1; i <= 200; i++) {
			struct ledger_rec r = rec(i, 1, "a", 1, "f",
						  T0_US + (int64_t)i, LEDGER_OK,
						  1, 128);

			ledger_add(cl, &r);
			if (phase == 1 && i == 120 && ledger_sync(cl, 10000))
				_exit(5);
		}
		kill(getpid(), SIGKILL);
		_exit(4);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	l = open_ledger(f, 5, 0, &replayed);
	assert_int_equal(replayed, phase == 1 ? 80 : 200);
	assert_int_equal(count_rows(l, 200, seen), 200);
	for (int i = 1; i <= 200; i++)
		assert_int_equal(seen[i], 1);
	ledger_close(l);

	l = open_ledger(f, 5, 0, &replayed);
	assert_int_equal(replayed, 0);
	memset(seen, 0, sizeof(seen));
	assert_int_equal(count_rows(l, 200, seen), 200);
	ledger_close(l);
}

static void test_sigkill_before_commit(void **state)
{
	sigkill_round(*state, 0);
}

static void test_sigkill_after_partial_commit(void **state)
{
	sigkill_round(*state, 1);
}

/* Even with the watermark lost (rewound to 0), a replay of rows already
 * committed inserts nothing twice. */
static void test_replay_is_idempotent(void **state)
{
	struct fixture *f = *state;
	unsigned seen[11] = { 0 };
	size_t replayed;
	struct ledger *l = open_ledger(f, 5, 0, &replayed);
	sqlite3 *c;

	for (uint64_t i = 1; i <= 10; i++) {
		struct ledger_rec r = rec(i, 1, "a", 1, "f", T0_US, LEDGER_OK,
					  1, 128);

		ledger_add(l, &r);
	}
	ledger_close(l);
	assert_int_equal(sqlite3_open(f->db, &c), SQLITE_OK);
	assert_int_equal(sqlite3_exec(c, "update ledger_state set journal_seq "
					 "= 0", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(c);
	l = open_ledger(f, 5, 0, &replayed);
	assert_int_equal(replayed, 0);
	assert_int_equal(count_rows(l, 10, seen), 10);
	ledger_close(l);
}

/* Records damaged in the journal file (names that are not names, an
 * outcome out of range) are skipped at replay, the good ones kept. */
static void test_replay_skips_invalid_records(void **state)
{
	struct fixture *f = *state;
	char err[256];
	struct journal *j = journal_open(f->journal, 256, err, sizeof(err));
	struct ledger_rec good = rec(1, 1, "a", 1, "f", T0_US, LEDGER_OK, 1, 1);
	struct ledger_rec bad_name = rec(2, 1, "A;drop", 1, "f", T0_US,
					 LEDGER_OK, 1, 1);
	struct ledger_rec bad_outcome = rec(3, 1, "a", 1, "f", T0_US, LEDGER_OK,
					    1, 1);
	struct ledger_rec no_id = rec(0, 1, "a", 1, "f", T0_US, LEDGER_OK, 1, 1);
	struct ledger_rec unterminated = rec(5, 1, "a", 1, "f", T0_US,
					     LEDGER_OK, 1, 1);
	unsigned seen[6] = { 0 };
	size_t replayed, bad;
	struct ledger *l;

	assert_non_null(j);
	bad_outcome.outcome = 200;
	memset(unterminated.function, 'a', sizeof(unterminated.function));
	assert_int_equal(journal_recover(j, 0, NULL, NULL, &bad), 0);
	journal_append(j, &good, sizeof(good), NULL);
	journal_append(j, &bad_name, sizeof(bad_name), NULL);
	journal_append(j, &bad_outcome, sizeof(bad_outcome), NULL);
	journal_append(j, &no_id, sizeof(no_id), NULL);
	journal_append(j, &unterminated, sizeof(unterminated), NULL);
	journal_close(j);

	l = open_ledger(f, 5, 0, &replayed);
	assert_int_equal(replayed, 1);
	assert_int_equal(count_rows(l, 5, seen), 1);
	assert_int_equal(seen[1], 1);
	{
		struct ledger_stats st;

		ledger_stats(l, &st);
		assert_int_equal(st.journal_bad, 4);
	}
	ledger_close(l);
}

static void test_usage_aggregates(void **state)
{
	struct fixture *f = *state;
	size_t replayed, n, nr;
	struct ledger *l = open_ledger(f, 5, 0, &replayed);
	struct ledger_query q = all_time();
	struct ledger_usage *u, sum = { 0 };
	struct ledger_rec *rows;
	uint64_t id = 1;

	/* Tenant 1 "a": f (128 MiB) and g (512 MiB) over two hours of two
	 * days; tenant 2 "b": f. */
	for (int h = 0; h < 3; h++) {
		int64_t at = T0_US + h * 13 * HOUR_US + 5;
		struct ledger_rec r;

		r = rec(id++, 1, "a", 10, "f", at, LEDGER_OK, 3, 128);
		ledger_add(l, &r);
		r = rec(id++, 1, "a", 10, "f", at + 1, LEDGER_ERROR, 2, 128);
		r.cold = 1;
		r.init_ns = 1000;
		ledger_add(l, &r);
		r = rec(id++, 1, "a", 11, "g", at + 2, LEDGER_TIMEOUT, 1000, 512);
		ledger_add(l, &r);
		r = rec(id++, 1, "a", 11, "g", at + 3, LEDGER_THROTTLED, 0, 512);
		ledger_add(l, &r);
		r = rec(id++, 2, "b", 20, "f", at + 4, LEDGER_CRASH, 7, 1024);
		ledger_add(l, &r);
		r = rec(id++, 2, "b", 20, "f", at + 5, LEDGER_REJECTED, 0, 1024);
		ledger_add(l, &r);
	}
	assert_int_equal(ledger_sync(l, 5000), 0);

	/* Whole platform, no grouping: one row. */
	assert_int_equal(ledger_usage(l, &q, &u, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(u[0].requests, 18);
	assert_int_equal(u[0].invocations, 12);
	assert_int_equal(u[0].by_outcome[LEDGER_THROTTLED], 3);
	assert_int_equal(u[0].by_outcome[LEDGER_REJECTED], 3);
	assert_int_equal(ledger_usage_errors(&u[0]), 9);
	assert_int_equal(u[0].cold_starts, 3);
	assert_int_equal(u[0].billed_ms, 3 * (3 + 2 + 1000 + 7));
	assert_int_equal(u[0].mib_ms,
			 3 * (3 * 128 + 2 * 128 + 1000 * 512 + 7 * 1024));
	assert_int_equal(u[0].init_ns, 3000);
	/* The totals equal sums over the raw rows. */
	assert_int_equal(ledger_records(l, &q, 0, 100, &rows, NULL, &nr), 0);
	assert_int_equal(nr, 18);
	{
		uint64_t billed = 0, mib_ms = 0;

		for (size_t i = 0; i < nr; i++) {
			billed += rows[i].billed_ms;
			mib_ms += (uint64_t)rows[i].billed_ms *
				  rows[i].memory_mib;
		}
		assert_int_equal(billed, u[0].billed_ms);
		assert_int_equal(mib_ms, u[0].mib_ms);
	}
	free(rows);
	free(u);

	/* Tenant 1 by function: f and g, ordered. */
	q.tenant_id = 1;
	q.group_by = LEDGER_BY_FUNCTION;
	assert_int_equal(ledger_usage(l, &q, &u, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(u[0].function, "f");
	assert_int_equal(u[0].requests, 6);
	assert_int_equal(u[0].billed_ms, 15);
	assert_string_equal(u[1].function, "g");
	assert_int_equal(u[1].invocations, 3);
	assert_int_equal(u[1].by_outcome[LEDGER_THROTTLED], 3);
	assert_true(ledger_usage_gb_s(&u[1]) > 1.49 &&
		    ledger_usage_gb_s(&u[1]) < 1.51); /* 3 s x 0.5 GiB */
	sum = u[0];
	ledger_usage_add(&sum, &u[1]);
	assert_int_equal(sum.requests, 12);
	free(u);

	/* Tenant 1 by day: hours 0 and 13 on day 0, hour 26 on day 1. */
	q.group_by = LEDGER_BY_DAY;
	assert_int_equal(ledger_usage(l, &q, &u, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(u[0].period_us, T0_US);
	assert_int_equal(u[0].requests, 8);
	assert_int_equal(u[1].period_us, T0_US + 24 * HOUR_US);
	assert_int_equal(u[1].requests, 4);
	free(u);

	/* By function and hour, within a range that leaves out the last. */
	q.group_by = LEDGER_BY_FUNCTION | LEDGER_BY_HOUR;
	q.from_us = T0_US;
	q.to_us = T0_US + 26 * HOUR_US;
	assert_int_equal(ledger_usage(l, &q, &u, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(u[0].function, "f");
	assert_int_equal(u[0].period_us, T0_US);
	assert_int_equal(u[1].period_us, T0_US + 13 * HOUR_US);
	assert_string_equal(u[2].function, "g");
	free(u);

	/* The admin's per-tenant summary; a function filter. */
	q = all_time();
	q.group_by = LEDGER_BY_TENANT;
	assert_int_equal(ledger_usage(l, &q, &u, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(u[0].tenant, "a");
	assert_int_equal(u[0].requests, 12);
	assert_string_equal(u[1].tenant, "b");
	assert_int_equal(u[1].by_outcome[LEDGER_CRASH], 3);
	free(u);
	q.group_by = LEDGER_BY_TENANT | LEDGER_BY_FUNCTION;
	q.function = "f";
	assert_int_equal(ledger_usage(l, &q, &u, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(u[1].tenant, "b");
	assert_string_equal(u[1].function, "f");
	free(u);

	/* Tenant 2 never sees tenant 1's rows, whatever it asks. */
	q = all_time();
	q.tenant_id = 2;
	q.function = "g";
	assert_int_equal(ledger_usage(l, &q, &u, &n), 0);
	assert_int_equal(n, 0);
	free(u);
	assert_int_equal(ledger_records(l, &q, 0, 100, &rows, NULL, &nr), 0);
	assert_int_equal(nr, 0);
	free(rows);
	q.function = NULL;
	assert_int_equal(ledger_records(l, &q, 0, 100, &rows, NULL, &nr), 0);
	assert_int_equal(nr, 6);
	for (size_t i = 0; i < nr; i++)
		assert_string_equal(rows[i].tenant, "b");
	free(rows);
	ledger_close(l);
}

static void test_records_paging(void **state)
{
	struct fixture *f = *state;
	size_t replayed, n, total = 0;
	struct ledger *l = open_ledger(f, 5, 0, &replayed);
	struct ledger_query q = all_time();
	int64_t after = 0;

	for (uint64_t i = 1; i <= 25; i++) {
		struct ledger_rec r = rec(i, 1, "a", 1, "f", T0_US, LEDGER_OK,
					  1, 1);

		ledger_add(l, &r);
	}
	assert_int_equal(ledger_sync(l, 5000), 0);
	do {
		struct ledger_rec *r;
		int64_t *ids;

		assert_int_equal(ledger_records(l, &q, after, 10, &r, &ids, &n),
				 0);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(r[i].request_id, total + i + 1);
		total += n;
		if (n)
			after = ids[n - 1];
		free(r);
		free(ids);
	} while (n == 10);
	assert_int_equal(total, 25);
	ledger_close(l);
}

static void test_logs(void **state)
{
	struct fixture *f = *state;
	size_t replayed, n;
	/* 4000 bytes per function at most: trimmed to 3000. */
	struct ledger *l = open_ledger(f, 5, 4000, &replayed);
	struct ledger_log_query q = { .tenant_id = 1, .fn_id = 10 };
	struct ledger_log *g;
	char big[1000];

	{
		struct ledger_rec r = rec(77, 1, "a", 10, "f", T0_US, LEDGER_OK,
					  1, 1);

		assert_true(ledger_add_log(l, &r, "first\n", 6, false));
	}
	memset(big, 'x', sizeof(big));
	for (uint64_t i = 100; i < 110; i++) {
		struct ledger_rec r = rec(i, 1, "a", 10, "f", T0_US + (int64_t)i,
					  LEDGER_OK, 1, 1);

		assert_true(ledger_add_log(l, &r, big, sizeof(big), false));
	}
	{
		/* Tenant 2's function 20. */
		struct ledger_rec r = rec(500, 2, "b", 20, "f", T0_US,
					  LEDGER_OK, 1, 1);

		assert_true(ledger_add_log(l, &r, "secret", 6, false));
	}
	{
		/* ledger_sync waits for journal rows: give it one. */
		struct ledger_rec r = rec(999, 1, "a", 10, "f", T0_US,
					  LEDGER_OK, 1, 1);

		ledger_add(l, &r);
	}
	assert_int_equal(ledger_sync(l, 5000), 0);

	/* Per-function bound: the first entry and the oldest big ones went
	 * (trimmed to 3000 bytes whenever over 4000); what is left is under
	 * the bound and ends with the newest. */
	assert_int_equal(ledger_logs(l, &q, &g, &n), 0);
	{
		size_t bytes = 0;

		for (size_t i = 0; i < n; i++)
			bytes += g[i].len;
		assert_true(bytes <= 4000);
		assert_true(n >= 3 && n <= 4);
		assert_int_equal(g[0].len, 1000);
		assert_int_equal(g[n - 1].request_id, 109);
		for (size_t i = 1; i < n; i++)
			assert_true(g[i].id > g[i - 1].id);
	}
	ledger_logs_free(g, n);

	/* By request id, tail and cursor. */
	q.request_id = 108;
	assert_int_equal(ledger_logs(l, &q, &g, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(g[0].len, 1000);
	assert_false(g[0].truncated);
	{
		int64_t cursor = g[0].id;

		ledger_logs_free(g, n);
		q.request_id = 0;
		q.after = cursor;
		assert_int_equal(ledger_logs(l, &q, &g, &n), 0);
		assert_int_equal(n, 1);
		assert_int_equal(g[0].request_id, 109);
		ledger_logs_free(g, n);
	}
	q.after = 0;
	q.tail = 1;
	assert_int_equal(ledger_logs(l, &q, &g, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(g[0].request_id, 109);
	ledger_logs_free(g, n);

	/* Tenant 1 naming tenant 2's function id gets nothing. */
	q = (struct ledger_log_query){ .tenant_id = 1, .fn_id = 20 };
	assert_int_equal(ledger_logs(l, &q, &g, &n), 0);
	assert_int_equal(n, 0);
	ledger_logs_free(g, n);
	ledger_close(l);
}

static void test_log_text_is_cleaned(void **state)
{
	struct fixture *f = *state;
	size_t replayed, n;
	struct ledger *l = open_ledger(f, 5, 0, &replayed);
	struct ledger_log_query q = { .tenant_id = 1, .fn_id = 10 };
	struct ledger_rec r = rec(77, 1, "a", 10, "f", T0_US, LEDGER_OK, 1, 1);
	static const char dirty[] = "ok \xff\x1b[2J\0x \xc0\xaf \xc3\xa9\t\n"
				    "\xe2\x82";
	struct ledger_log *g;

	assert_true(ledger_add_log(l, &r, dirty, sizeof(dirty) - 1, true));
	ledger_add(l, &r);
	assert_int_equal(ledger_sync(l, 5000), 0);
	assert_int_equal(ledger_logs(l, &q, &g, &n), 0);
	assert_int_equal(n, 1);
	assert_true(g[0].truncated);
	assert_string_equal(g[0].text, "ok \xef\xbf\xbd\xef\xbf\xbd[2J"
				       "\xef\xbf\xbdx \xef\xbf\xbd\xef\xbf\xbd "
				       "\xc3\xa9\t\n\xef\xbf\xbd\xef\xbf\xbd");
	assert_int_equal(strlen(g[0].text), g[0].len);
	ledger_logs_free(g, n);
	ledger_close(l);
}

/* Logs older than the retention go; the ledger's rows stay. */
static void test_log_retention(void **state)
{
	struct fixture *f = *state;
	struct ledger_config c = {
		.db_path = f->db, .journal_path = f->journal,
		.journal_slots = 256, .batch_ms = 5, .logs_retention_s = 2,
	};
	struct ledger_log_query q = { .tenant_id = 1, .fn_id = 10 };
	struct ledger_query all = all_time();
	struct timespec now;
	struct ledger_log *g;
	struct ledger_rec *rows;
	char err[256];
	size_t n, nr;
	struct ledger *l = ledger_open(&c, NULL, err, sizeof(err));

	assert_non_null(l);
	clock_gettime(CLOCK_REALTIME, &now);
	{
		/* One log from 2025 (long expired), one from now. */
		struct ledger_rec old = rec(1, 1, "a", 10, "f", T0_US,
					    LEDGER_OK, 1, 1);
		struct ledger_rec fresh = rec(2, 1, "a", 10, "f",
					      (int64_t)now.tv_sec * 1000000,
					      LEDGER_OK, 1, 1);

		ledger_add(l, &old);
		ledger_add(l, &fresh);
		assert_true(ledger_add_log(l, &old, "old\n", 4, false));
		assert_true(ledger_add_log(l, &fresh, "new\n", 4, false));
	}
	assert_int_equal(ledger_sync(l, 5000), 0);
	/* The expiry runs every second here (half of 2 s). */
	for (int i = 0; i < 50; i++) {
		assert_int_equal(ledger_logs(l, &q, &g, &n), 0);
		ledger_logs_free(g, n);
		if (n == 1)
			break;
		usleep(100000);
	}
	assert_int_equal(ledger_logs(l, &q, &g, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(g[0].text, "new\n");
	ledger_logs_free(g, n);
	assert_int_equal(ledger_records(l, &all, 0, 10, &rows, NULL, &nr), 0);
	assert_int_equal(nr, 2); /* billing rows are never expired */
	free(rows);
	ledger_close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_and_read_back, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_before_commit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_after_partial_commit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_is_idempotent, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_replay_skips_invalid_records,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage_aggregates, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_records_paging, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_logs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_text_is_cleaned, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_log_retention, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
