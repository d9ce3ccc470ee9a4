/*
 * bench/meter_cost.c - what metering adds to one invocation, measured
 * inside the process (docs/metering.md, "Cost").
 *
 *   build/bench/meter_cost [--calls N] [--rate PER_S] [--journal-dir DIR]
 *                          [--out bench/results/meter-cost.json]
 *
 * The scheduler calls meter_finished() once per invocation, on its event
 * thread, before the answer is handed over: that call is the whole cost
 * metering adds to an invocation's latency (the SQLite commits run on the
 * ledger's own thread). This times each call on a real ledger (a
 * database and journal in a temporary directory, the ledger thread
 * committing in batches as in emberd), side by side with the same loop
 * calling nothing (the timer's own cost), and apart: the journal append
 * and the metrics update alone. The metered calls come at --rate per
 * second (default 10000, about what two cores sustain in warm invokes):
 * the journal then never fills. A last, unpaced run measures how many
 * rows a second the ledger thread commits and how often a full journal
 * made an append wait. The ledger thread's CPU per row is reported too:
 * it is spent off the critical path, but on the same cores.
 * --journal-dir puts the journal elsewhere (e.g. /dev/shm, to compare a
 * tmpfs with the state directory's file system).
 *
 * Prints a table and writes JSON (median, p99, mean per call, in ns).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/db.h"
#include "agent/journal.h"
#include "agent/ledger.h"
#include "agent/meter.h"
#include "agent/metrics.h"
#include "agent/util.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

struct stat3 {
	double p50, p99, mean;
};

static struct stat3 stats(uint32_t *v, size_t n)
{
	struct stat3 s;
	double sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += v[i];
	qsort(v, n, sizeof(*v), cmp_u32);
	s.p50 = v[n / 2];
	s.p99 = v[(size_t)((double)n * 0.99)];
	s.mean = sum / (double)n;
	return s;
}

enum what { NOTHING, METER, JOURNAL, METRICS };
static const char *const what_name[] = { "baseline (timer only)",
					 "meter_finished (all of it)",
					 "journal append alone",
					 "metrics update alone" };
static const char *const what_key[] = { "baseline", "meter_finished",
					"journal_append", "metrics_observe" };

static struct meter *g_meter;
static struct journal *g_journal;
static struct metrics *g_metrics;

static void one(enum what w, uint64_t i, const struct meter_inv *tmpl)
{
	struct meter_inv v = *tmpl;
	struct ledger_rec r;

	v.request_id = i + 1;
	v.fn_id = 1 + (int64_t)(i % 8);
	switch (w) {
	case NOTHING:
		__asm__ volatile("" ::: "memory");
		break;
	case METER:
		meter_finished(g_meter, &v);
		break;
	case JOURNAL:
		memset(&r, 0, sizeof(r));
		r.request_id = i + 1;
		journal_append(g_journal, &r, sizeof(r), NULL);
		/* keep room: this measures the append, not a full ring */
		if (i % 1024 == 1023)
			journal_release(g_journal, i + 1);
		break;
	case METRICS:
		memset(&r, 0, sizeof(r));
		r.fn_id = v.fn_id;
		r.duration_ns = 40000;
		util_copy(r.tenant, sizeof(r.tenant), "acme");
		util_copy(r.function, sizeof(r.function), "f");
		metrics_observe(g_metrics, &r);
		break;
	}
}

int main(int argc, char **argv)
{
	const char *out = "bench/results/meter-cost.json";
	const char *jdir = NULL;
	size_t calls = 200000;
	double rate = 10000;
	char dir[] = "/tmp/ember-bench-meter.XXXXXX", dbp[128], jp[128],
	     jp2[128], err[256];
	struct meter_inv tmpl = {
		.tenant_id = 1, .tenant = "acme", .function = "f",
		.version = 1, .memory_mib = 128, .timeout_ms = 3000,
		.duration_ns = 41000, .queued_ns = 3000,
		.outcome = LEDGER_OK, .bytes_in = 64, .bytes_out = 64,
	};
	struct stat3 res[4];
	struct ledger_stats ls;
	double thr_rows_s = 0;
	uint64_t thr_stalls = 0;
	double load[1] = { 0 };
	struct db *db;
	FILE *f;
	int opt;

	static const struct option opts[] = {
		{ "calls", required_argument, NULL, 'n' },
		{ "rate", required_argument, NULL, 'r' },
		{ "journal-dir", required_argument, NULL, 'j' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	while ((opt = getopt_long(argc, argv, "n:r:j:o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			jdir = optarg;
			break;
		case 'n':
			calls = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rate = strtod(optarg, NULL);
			if (rate < 1)
				rate = 1;
			break;
		case 'o':
			out = optarg;
			break;
		default:
			printf("usage: %s [--calls N] [--rate PER_S] "
			       "[--journal-dir DIR] [--out FILE.json]\n",
			       argv[0]);
			return opt == 'h' ? 0 : 64;
		}
	}
	if (calls < 1000)
		calls = 1000;
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dbp, sizeof(dbp), "%s/ember.db", dir);
	snprintf(jp, sizeof(jp), "%s/ledger.journal.%d", jdir ? jdir : dir,
		 (int)getpid());
	snprintf(jp2, sizeof(jp2), "%s/alone.journal", dir);
	db = db_open(dbp, err, sizeof(err));
	if (!db) {
		fprintf(stderr, "db: %s\n", err);
		return 1;
	}
	db_close(db);
	{
		struct meter_config mc = { .db_path = dbp, .journal_path = jp };
		size_t bad;

		g_meter = meter_create(&mc, NULL, err, sizeof(err));
		g_journal = journal_open(jp2, 4096, err, sizeof(err));
		g_metrics = metrics_create(100);
		if (!g_meter || !g_journal || !g_metrics ||
		    journal_recover(g_journal, 0, NULL, NULL, &bad)) {
			fprintf(stderr, "setup: %s\n", err);
			return 1;
		}
	}
	clock_gettime(CLOCK_REALTIME, &tmpl.start);
	getloadavg(load, 1);
	/* Interleaved rounds, so that a neighbour's burst hits all four. */
	{
		size_t per = calls / 10, k[4] = { 0 };
		uint32_t *v[4];

		for (int w = 0; w < 4; w++)
			v[w] = malloc(sizeof(uint32_t) * calls);
		uint64_t gap = (uint64_t)(1e9 / rate), next = now_ns();

		for (int round = 0; round < 10; round++)
			for (int w = 0; w < 4; w++)
				for (size_t i = 0; i < per; i++) {
					uint64_t a;

					if (w == METER) {
						while (now_ns() < next)
							;
						next += gap;
					}
					a = now_ns();
					one((enum what)w, k[w], &tmpl);
					v[w][k[w]++] = (uint32_t)(now_ns() - a);
				}
		for (int w = 0; w < 4; w++) {
			res[w] = stats(v[w], k[w]);
			free(v[w]);
		}
	}
	ledger_sync(meter_ledger(g_meter), 60000);
	ledger_stats(meter_ledger(g_meter), &ls);
	/* Throughput: as fast as the loop goes, until the ledger has
	 * committed them all. */
	{
		struct ledger_stats a, b;
		uint64_t t0 = now_ns();

		ledger_stats(meter_ledger(g_meter), &a);
		for (size_t i = 0; i < calls; i++)
			one(METER, calls + i, &tmpl);
		ledger_sync(meter_ledger(g_meter), 120000);
		ledger_stats(meter_ledger(g_meter), &b);
		thr_rows_s = (double)(b.rows - a.rows) * 1e9 /
			     (double)(now_ns() - t0);
		thr_stalls = b.stalls - a.stalls;
	}

	printf("metering cost per invocation, %zu calls each (metered ones "
	       "at %.0f/s), load %.2f (shared machine)\n", calls, rate,
	       load[0]);
	printf("%-30s %10s %10s %10s\n", "", "p50 ns", "p99 ns", "mean ns");
	for (int w = 0; w < 4; w++)
		printf("%-30s %10.0f %10.0f %10.0f\n", what_name[w], res[w].p50,
		       res[w].p99, res[w].mean);
	printf("meter_finished minus baseline: p50 %.0f ns, p99 %.0f ns "
	       "(target <= 10000 ns)\n", res[METER].p50 - res[NOTHING].p50,
	       res[METER].p99 - res[NOTHING].p99);
	printf("ledger throughput, unpaced: %.0f rows/s committed, %llu "
	       "appends waited for a full journal\n", thr_rows_s,
	       (unsigned long long)thr_stalls);
	printf("ledger thread, off the critical path: %llu rows in %llu "
	       "commits, %.0f ns of CPU (%.0f ns wall) per row\n",
	       (unsigned long long)ls.rows, (unsigned long long)ls.commits,
	       ls.rows ? (double)ls.commit_cpu_ns_total / (double)ls.rows : 0.0,
	       ls.rows ? (double)ls.commit_ns_total / (double)ls.rows : 0.0);

	f = fopen(out, "w");
	if (f) {
		char ts[UTIL_TIME_LEN];

		util_time_iso8601(ts);
		fprintf(f, "{\n \"bench\": \"meter-cost\",\n \"date\": \"%s\",\n"
			   " \"loadavg_at_start\": %.2f,\n \"calls\": %zu,\n"
			   " \"rate_per_s\": %.0f,\n"
			   " \"target_ns\": 10000,\n \"per_call_ns\": {\n",
			ts, load[0], calls, rate);
		for (int w = 0; w < 4; w++)
			fprintf(f, "  \"%s\": {\"p50\": %.0f, \"p99\": %.0f, "
				   "\"mean\": %.1f}%s\n", what_key[w],
				res[w].p50, res[w].p99, res[w].mean,
				w < 3 ? "," : "");
		fprintf(f, " },\n \"added_p50_ns\": %.0f,\n \"added_p99_ns\": "
			   "%.0f,\n \"ledger_rows\": %llu,\n \"ledger_commits\":"
			   " %llu,\n \"commit_cpu_ns_per_row\": %.0f,\n"
			   " \"commit_wall_ns_per_row\": %.0f,\n"
			   " \"unpaced_rows_per_s\": %.0f,\n"
			   " \"unpaced_journal_stalls\": %llu\n}\n",
			res[METER].p50 - res[NOTHING].p50,
			res[METER].p99 - res[NOTHING].p99,
			(unsigned long long)ls.rows,
			(unsigned long long)ls.commits,
			ls.rows ? (double)ls.commit_cpu_ns_total /
					  (double)ls.rows : 0.0,
			ls.rows ? (double)ls.commit_ns_total / (double)ls.rows :
				  0.0,
			thr_rows_s, (unsigned long long)thr_stalls);
		fclose(f);
		printf("wrote %s\n", out);
	}
	metrics_destroy(g_metrics);
	journal_close(g_journal);
	meter_destroy(g_meter);
	unlink(jp);
	util_rm_tree(AT_FDCWD, dir);
	return 0;
}
