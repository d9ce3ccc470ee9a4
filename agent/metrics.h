/*
 * metrics.h - emberd's metrics in the Prometheus text exposition format
 * (version 0.0.4).
 *
 * Owns: the invocation counters per (tenant, function, outcome), the
 * latency histograms (warm and cold apart, buckets from 50 us to 30 s),
 * and writing any metric family correctly: HELP and TYPE lines, escaped
 * label values, cumulative buckets. Also the process's own CPU, memory
 * and file descriptors, from /proc/self.
 *
 * Labels are bounded: tenant and function names (validated names, at most
 * max_series pairs; further pairs are counted under tenant="_other",
 * function="_other"), outcome and start (fixed sets). Never request ids.
 *
 * Threads: metrics_observe() from any thread (a mutex around a few adds);
 * rendering from any thread.
 */
#ifndef EMBER_AGENT_METRICS_H
#define EMBER_AGENT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/ledger.h"

/* A growing text buffer for a scrape. On allocation failure it stops
 * growing and sets oom (the scrape then answers 500). */
struct mbuf {
	char *p;
	size_t len, cap;
	bool oom;
};
void mbuf_printf(struct mbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void mbuf_free(struct mbuf *b);

/* A family header: "# HELP name help" and "# TYPE name type". */
void metrics_family(struct mbuf *b, const char *name, const char *type,
		    const char *help);
/* One sample: name{labels} value. labels is NULL or "k1", "v1", ...,
 * NULL (values escaped here). */
void metrics_sample(struct mbuf *b, const char *name, double value,
		    const char *const *labels);
/* A gauge or counter family with one unlabelled sample. */
void metrics_single(struct mbuf *b, const char *name, const char *type,
		    const char *help, double value);

#define METRICS_NR_BUCKETS 19

/* The histogram's upper bounds in seconds (the last is +Inf). */
extern const double metrics_buckets_s[METRICS_NR_BUCKETS];

struct metrics;

struct metrics *metrics_create(unsigned max_series);
void metrics_destroy(struct metrics *m);

/* One finished invocation: counters and, when its code ran, the duration
 * (r->duration_ns), latency (queued + duration) and, when cold, restore
 * histograms. */
void metrics_observe(struct metrics *m, const struct ledger_rec *r);

/* Forgets the series of functions alive() says are gone (deleted): keeps
 * the number of series bounded by what exists. */
void metrics_prune(struct metrics *m, bool (*alive)(void *ctx, int64_t fn_id),
		   void *ctx);

/* The invocation families (counters, histograms). */
void metrics_render(struct metrics *m, struct mbuf *b);
/* process_cpu_seconds_total, process_resident_memory_bytes, ... */
void metrics_render_process(struct mbuf *b);

#endif
