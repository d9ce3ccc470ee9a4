/*
 * meter.h - pay-per-use metering: what each finished invocation costs, its
 * ledger row, its metrics and its logs.
 *
 * Owns: the billing rules (meter_billed_ms, docs/metering.md), turning a
 * finished or refused invocation into a ledger row (ledger.h), the
 * invocation metrics (metrics.h), the bounds on what of an invocation's
 * log output is kept, and request ids for requests refused before the
 * scheduler gave them one.
 *
 * Does not: store (ledger.c), render (metrics.c), know HTTP (meter_api.c
 * serves the routes) or the scheduler (emberd passes its records in).
 *
 * Threads: meter_finished() and meter_refused() from any thread, many at
 * once (the scheduler's event thread, the API threads); they never block
 * on SQLite and cost a few microseconds.
 */
#ifndef EMBER_AGENT_METER_H
#define EMBER_AGENT_METER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "agent/ledger.h"
#include "agent/metrics.h"

struct meter_config {
	const char *db_path;          /* the emberd database, migrated */
	const char *journal_path;     /* STATE/ledger.journal */
	unsigned batch_ms;            /* ledger commit interval (default 20) */
	size_t log_invocation_bytes;  /* kept per invocation (default 64 KiB) */
	uint64_t logs_per_function;   /* kept per function (default 16 MiB) */
	unsigned logs_retention_s;    /* default 7 days */
	bool bill_init;               /* bill a cold start's restore too */
	unsigned metrics_max_series;  /* (tenant, function) series at most */
};

/* One invocation as the scheduler (or the API, for a refusal) saw it.
 * Strings are borrowed for the call. */
struct meter_inv {
	uint64_t request_id;          /* 0 in meter_refused: one is made */
	int64_t tenant_id, fn_id;
	const char *tenant, *function;
	uint32_t version, memory_mib, timeout_ms;
	struct timespec start;        /* wall clock at the request's arrival */
	uint64_t duration_ns;         /* INVOKE sent -> RESULT */
	uint64_t init_ns;             /* cold: restore -> READY */
	uint64_t queued_ns;           /* waited for an instance */
	bool cold;
	enum ledger_outcome outcome;
	uint64_t bytes_in, bytes_out;
	const char *logs;             /* handler output, may be NULL */
	size_t logs_len;
	bool logs_truncated;          /* the scheduler already cut some */
};

/*
 * The billing rule (docs/metering.md): an invocation whose code ran is
 * billed its duration rounded up to the next millisecond, at least 1 ms; a
 * timeout is billed its full timeout; a throttled or rejected request
 * costs nothing. A cold start's restore (init_ns) is reported apart and
 * billed only when bill_init is set.
 */
uint32_t meter_billed_ms(enum ledger_outcome o, uint64_t duration_ns,
			 uint64_t init_ns, uint32_t timeout_ms, bool bill_init);

struct meter;

/* Opens the ledger (replaying its journal: *replayed rows) and the
 * metrics. NULL and a reason in err. */
struct meter *meter_create(const struct meter_config *cfg, size_t *replayed,
			   char *err, size_t errlen);
/* Commits what is pending and frees everything. */
void meter_destroy(struct meter *m);

/* A finished invocation: its ledger row is durable (journal) when this
 * returns, so call it before the answer is handed over. An invocation
 * with an invalid record (no request id, ids or names missing) is counted
 * in metrics but not recorded, and logged. */
void meter_finished(struct meter *m, const struct meter_inv *inv);

/* A request refused before the scheduler took it (throttled or
 * rejected): gives it a request id (returned, also for the client's
 * X-Ember-Request-Id) and records it like meter_finished. */
uint64_t meter_refused(struct meter *m, const struct meter_inv *inv);

/*
 * Parses a time for from= / to=: "2026-12-01", "2026-12-01T10:00",
 * "2026-12-01T10:00:00", with optional ".fff..." and "Z" (UTC either
 * way); "now"; or "-N" + s|m|h|d (N units before now_us). 0 and *us, or
 * -EINVAL.
 */
int meter_parse_time(const char *s, int64_t now_us, int64_t *us);

/* "2026-12-01T10:00:00.123456Z" into out[32]. */
void meter_format_time(int64_t us, char out[32]);

struct ledger *meter_ledger(struct meter *m);
struct metrics *meter_metrics(struct meter *m);
const struct meter_config *meter_config(const struct meter *m);

#endif
