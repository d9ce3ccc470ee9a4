/*
 * metrics.c - Prometheus metrics: see metrics.h.
 *
 * Counters live in one table of series keyed by function id (a function's
 * tenant and name never change), histograms in fixed arrays; one mutex
 * covers both, held for a few additions per invocation and, during a
 * scrape, while the table is copied out (the text is written after the
 * lock is dropped).
 */
#define LOG_MOD "metrics"

#include "agent/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"

#define SERIES_BUCKETS 1024
#define OTHER "_other" /* no valid name starts with '_' */

const double metrics_buckets_s[METRICS_NR_BUCKETS] = {
	50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
	50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10, 30, INFINITY,
};

/* The same bounds as exact integers (ns) for observing, and as text. */
static const uint64_t bucket_ns[METRICS_NR_BUCKETS - 1] = {
	50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
	10000000, 25000000, 50000000, 100000000, 250000000, 500000000,
	1000000000, 2500000000, 5000000000, 10000000000, 30000000000,
};
static const char *const bucket_le[METRICS_NR_BUCKETS] = {
	"5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
	"0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
	"30", "+Inf",
};

struct hist {
	uint64_t buckets[METRICS_NR_BUCKETS]; /* not cumulative */
	uint64_t count;
	uint64_t sum_ns;
};

struct series {
	struct series *next;
	int64_t fn_id;               /* 0: the overflow series */
	char tenant[UTIL_NAME_MAX + 1];
	char function[UTIL_NAME_MAX + 1];
	uint64_t by_outcome[LEDGER_NR_OUTCOMES];
	uint64_t cold_starts;
	uint64_t billed_ms;
	uint64_t mib_ms;
};

enum { START_WARM, START_COLD, NR_STARTS };
static const char *const start_name[NR_STARTS] = { "warm", "cold" };

struct metrics {
	pthread_mutex_t lock;
	unsigned max_series, nr_series;
	struct series *buckets[SERIES_BUCKETS];
	struct series other;
	bool other_used;
	struct hist duration[NR_STARTS], latency[NR_STARTS], restore;
};

/* ---------------------------------------------------------------------
 * Text
 */

void mbuf_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt,
			      ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->p && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = b->cap ? b->cap : 4096;
			char *p;

			while (cap - b->len <= (size_t)n)
				cap *= 2;
			p = realloc(b->p, cap);
			if (!p) {
				b->oom = true;
				return;
			}
			b->p = p;
			b->cap = cap;
		}
	}
}

void mbuf_free(struct mbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void metrics_family(struct mbuf *b, const char *name, const char *type,
		    const char *help)
{
	mbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values: backslash, double quote and newline escaped (the format's
 * only escapes). Our values are names and fixed words, but the writer does
 * not rely on that. */
static void put_label_value(struct mbuf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			mbuf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			mbuf_printf(b, "\\n");
		else
			mbuf_printf(b, "%c", *v);
	}
}

static void put_labels(struct mbuf *b, const char *const *labels,
		       const char *le)
{
	bool any = false;

	if ((!labels || !labels[0]) && !le)
		return;
	mbuf_printf(b, "{");
	for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
		mbuf_printf(b, "%s%s=\"", any ? "," : "", labels[i]);
		put_label_value(b, labels[i + 1]);
		mbuf_printf(b, "\"");
		any = true;
	}
	if (le)
		mbuf_printf(b, "%sle=\"%s\"", any ? "," : "", le);
	mbuf_printf(b, "}");
}

static void put_value(struct mbuf *b, double v)
{
	if (isnan(v))
		mbuf_printf(b, " NaN\n");
	else if (isinf(v))
		mbuf_printf(b, v > 0 ? " +Inf\n" : " -Inf\n");
	else
		mbuf_printf(b, " %.15g\n", v);
}

void metrics_sample(struct mbuf *b, const char *name, double value,
		    const char *const *labels)
{
	mbuf_printf(b, "%s", name);
	put_labels(b, labels, NULL);
	put_value(b, value);
}

void metrics_single(struct mbuf *b, const char *name, const char *type,
		    const char *help, double value)
{
	metrics_family(b, name, type, help);
	metrics_sample(b, name, value, NULL);
}

static void put_hist(struct mbuf *b, const char *name, const struct hist *h,
		     const char *const *labels)
{
	char n[128];
	uint64_t cum = 0;

	snprintf(n, sizeof(n), "%s_bucket", name);
	for (int i = 0; i < METRICS_NR_BUCKETS; i++) {
		cum += h->buckets[i];
		mbuf_printf(b, "%s", n);
		put_labels(b, labels, bucket_le[i]);
		mbuf_printf(b, " %llu\n", (unsigned long long)cum);
	}
	snprintf(n, sizeof(n), "%s_sum", name);
	metrics_sample(b, n, (double)h->sum_ns / 1e9, labels);
	snprintf(n, sizeof(n), "%s_count", name);
	metrics_sample(b, n, (double)h->count, labels);
}

/* ---------------------------------------------------------------------
 * Observing
 */

struct metrics *metrics_create(unsigned max_series)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	m->max_series = max_series ? max_series : 1000;
	util_copy(m->other.tenant, sizeof(m->other.tenant), OTHER);
	util_copy(m->other.function, sizeof(m->other.function), OTHER);
	return m;
}

void metrics_destroy(struct metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < SERIES_BUCKETS; i++)
		while (m->buckets[i]) {
			struct series *s = m->buckets[i];

			m->buckets[i] = s->next;
			free(s);
		}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static size_t series_hash(int64_t fn_id)
{
	return (size_t)((uint64_t)fn_id * 0x9e3779b97f4a7c15ull >> 54) %
	       SERIES_BUCKETS;
}

/* The series of r's function (lock held): found, made, or the overflow
 * series once max_series exist (or memory is short). */
static struct series *series_of(struct metrics *m, const struct ledger_rec *r)
{
	size_t h = series_hash(r->fn_id);
	struct series *s;

	for (s = m->buckets[h]; s; s = s->next)
		if (s->fn_id == r->fn_id)
			return s;
	if (m->nr_series >= m->max_series || !(s = calloc(1, sizeof(*s)))) {
		m->other_used = true;
		return &m->other;
	}
	s->fn_id = r->fn_id;
	util_copy(s->tenant, sizeof(s->tenant), r->tenant);
	util_copy(s->function, sizeof(s->function), r->function);
	s->next = m->buckets[h];
	m->buckets[h] = s;
	m->nr_series++;
	return s;
}

static void hist_add(struct hist *h, uint64_t ns)
{
	int i = 0;

	while (i < METRICS_NR_BUCKETS - 1 && ns > bucket_ns[i])
		i++;
	h->buckets[i]++;
	h->count++;
	h->sum_ns += ns;
}

void metrics_observe(struct metrics *m, const struct ledger_rec *r)
{
	struct series *s;

	pthread_mutex_lock(&m->lock);
	s = series_of(m, r);
	if (r->outcome < LEDGER_NR_OUTCOMES)
		s->by_outcome[r->outcome]++;
	s->billed_ms += r->billed_ms;
	s->mib_ms += (uint64_t)r->billed_ms * r->memory_mib;
	if (r->outcome < LEDGER_NR_OUTCOMES &&
	    ledger_outcome_ran((enum ledger_outcome)r->outcome)) {
		int k = r->cold ? START_COLD : START_WARM;

		hist_add(&m->duration[k], r->duration_ns);
		hist_add(&m->latency[k], r->queued_ns + r->duration_ns);
		if (r->cold) {
			s->cold_starts++;
			hist_add(&m->restore, r->init_ns);
		}
	}
	pthread_mutex_unlock(&m->lock);
}

void metrics_prune(struct metrics *m, bool (*alive)(void *ctx, int64_t fn_id),
		   void *ctx)
{
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < SERIES_BUCKETS; i++) {
		struct series **pp = &m->buckets[i];

		while (*pp) {
			struct series *s = *pp;

			if (alive(ctx, s->fn_id)) {
				pp = &s->next;
				continue;
			}
			*pp = s->next;
			free(s);
			m->nr_series--;
		}
	}
	pthread_mutex_unlock(&m->lock);
}

/* ---------------------------------------------------------------------
 * Rendering
 */

static double v_errors(const struct series *s)
{
	return (double)(s->by_outcome[LEDGER_ERROR] +
			s->by_outcome[LEDGER_TIMEOUT] +
			s->by_outcome[LEDGER_CRASH]);
}

static double v_throttles(const struct series *s)
{
	return (double)s->by_outcome[LEDGER_THROTTLED];
}

static double v_cold(const struct series *s)
{
	return (double)s->cold_starts;
}

static double v_billed_s(const struct series *s)
{
	return (double)s->billed_ms / 1000.0;
}

/* Base units, as Prometheus wants them: byte-seconds; divided by 2^30
 * they are the GB-seconds of the usage API. */
static double v_byte_s(const struct series *s)
{
	return (double)s->mib_ms * 1048576.0 / 1000.0;
}

/* The counters every (tenant, function) series has, besides the one by
 * outcome. */
static const struct {
	const char *name, *help;
	double (*value)(const struct series *s);
} per_function[] = {
	{ "ember_invocation_errors_total",
	  "Invocations that failed in the function: error, timeout or crash.",
	  v_errors },
	{ "ember_throttles_total",
	  "Invocation requests refused for lack of capacity (429).",
	  v_throttles },
	{ "ember_cold_starts_total",
	  "Invocations served by a freshly restored instance.", v_cold },
	{ "ember_billed_seconds_total",
	  "Billed function time (each invocation rounded up to 1 ms).",
	  v_billed_s },
	{ "ember_billed_byte_seconds_total",
	  "Billed memory times billed time, in byte-seconds (divide by 2^30 "
	  "for GB-seconds).", v_byte_s },
};

static int series_cmp(const void *a, const void *b)
{
	const struct series *x = a, *y = b;
	int c = strcmp(x->tenant, y->tenant);

	return c ? c : strcmp(x->function, y->function);
}

void metrics_render(struct metrics *m, struct mbuf *b)
{
	struct hist duration[NR_STARTS], latency[NR_STARTS], restore;
	struct series *all;
	size_t n = 0;

	pthread_mutex_lock(&m->lock);
	all = malloc(sizeof(*all) * (m->nr_series + 1));
	if (!all) {
		pthread_mutex_unlock(&m->lock);
		b->oom = true;
		return;
	}
	for (size_t i = 0; i < SERIES_BUCKETS; i++)
		for (struct series *s = m->buckets[i]; s; s = s->next)
			all[n++] = *s;
	if (m->other_used)
		all[n++] = m->other;
	memcpy(duration, m->duration, sizeof(duration));
	memcpy(latency, m->latency, sizeof(latency));
	restore = m->restore;
	pthread_mutex_unlock(&m->lock);
	qsort(all, n, sizeof(*all), series_cmp);

	metrics_family(b, "ember_invocations_total", "counter",
		       "Finished invocation requests by tenant, function and "
		       "outcome (ok, error, timeout, crash, throttled, "
		       "rejected).");
	for (size_t i = 0; i < n; i++)
		for (int o = 0; o < LEDGER_NR_OUTCOMES; o++) {
			const char *l[] = { "tenant", all[i].tenant,
					    "function", all[i].function,
					    "outcome", ledger_outcome_name(o),
					    NULL };

			metrics_sample(b, "ember_invocations_total",
				       (double)all[i].by_outcome[o], l);
		}
	for (size_t f = 0; f < sizeof(per_function) / sizeof(per_function[0]);
	     f++) {
		metrics_family(b, per_function[f].name, "counter",
			       per_function[f].help);
		for (size_t i = 0; i < n; i++) {
			const char *l[] = { "tenant", all[i].tenant, "function",
					    all[i].function, NULL };

			metrics_sample(b, per_function[f].name,
				       per_function[f].value(&all[i]), l);
		}
	}
	free(all);

	metrics_family(b, "ember_invocation_duration_seconds", "histogram",
		       "Function time: INVOKE sent to RESULT, by start kind.");
	for (int k = 0; k < NR_STARTS; k++) {
		const char *l[] = { "start", start_name[k], NULL };

		put_hist(b, "ember_invocation_duration_seconds", &duration[k],
			 l);
	}
	metrics_family(b, "ember_invocation_latency_seconds", "histogram",
		       "Request latency inside emberd: the wait for an "
		       "instance (with its restore when cold) plus the "
		       "function time, by start kind.");
	for (int k = 0; k < NR_STARTS; k++) {
		const char *l[] = { "start", start_name[k], NULL };

		put_hist(b, "ember_invocation_latency_seconds", &latency[k], l);
	}
	metrics_family(b, "ember_cold_start_seconds", "histogram",
		       "Cold start: restore of a snapshot into a pooled VM "
		       "shell until the function is READY.");
	put_hist(b, "ember_cold_start_seconds", &restore, NULL);
}

/* Fields of /proc/self/stat after the command name: field 3 is [0]. */
static int proc_stat(unsigned long long *utime, unsigned long long *stime,
		     unsigned long long *start, unsigned long long *vsize,
		     long long *rss)
{
	char buf[1024], *p;
	FILE *f = fopen("/proc/self/stat", "re");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the name may hold spaces and parens */
	if (!p)
		return -EINVAL;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime cutime cstime priority nice threads
	 * itrealvalue starttime vsize rss */
	if (sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
		   "%*d %*d %*d %*d %*d %*d %llu %llu %lld",
		   utime, stime, start, vsize, rss) != 5)
		return -EINVAL;
	return 0;
}

static long long boot_time(void)
{
	char line[256];
	long long bt = 0;
	FILE *f = fopen("/proc/stat", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %lld", &bt) == 1)
			break;
	fclose(f);
	return bt;
}

static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

void metrics_render_process(struct mbuf *b)
{
	unsigned long long ut, st, start, vsize;
	long long rss;
	long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	struct rlimit rl;
	long fds = open_fds();

	if (!proc_stat(&ut, &st, &start, &vsize, &rss) && hz > 0) {
		metrics_single(b, "process_cpu_seconds_total", "counter",
			       "User and system CPU time emberd has used.",
			       (double)(ut + st) / (double)hz);
		metrics_single(b, "process_resident_memory_bytes", "gauge",
			       "emberd's resident set size.",
			       (double)rss * (double)page);
		metrics_single(b, "process_virtual_memory_bytes", "gauge",
			       "emberd's virtual memory size.", (double)vsize);
		metrics_single(b, "process_start_time_seconds", "gauge",
			       "When emberd started, in seconds since the epoch.",
			       (double)boot_time() + (double)start / (double)hz);
	}
	if (fds >= 0)
		metrics_single(b, "process_open_fds", "gauge",
			       "File descriptors emberd has open.", (double)fds);
	if (!getrlimit(RLIMIT_NOFILE, &rl))
		metrics_single(b, "process_max_fds", "gauge",
			       "emberd's limit on open file descriptors.",
			       (double)rl.rlim_cur);
}
