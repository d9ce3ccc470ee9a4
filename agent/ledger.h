/*
 * ledger.h - the usage ledger and the invocation logs, in the emberd
 * database (tables `invocations`, `logs`, `log_usage`, `ledger_state`,
 * migration 2 of agent/schema.sql).
 *
 * Owns: one row per finished invocation, written exactly once and never
 * lost: ledger_add() puts the record into the write-ahead journal
 * (journal.h) before the invocation's answer is handed over; the ledger
 * thread commits the journal to SQLite in batches (one transaction per
 * batch, which also records how far the journal is committed) and, at
 * start, replays what the journal holds beyond that point. A row's id is
 * its journal sequence number and replayed rows are inserted "or ignore",
 * so no row is ever there twice. Also owns the invocation logs (best effort:
 * queued in memory and committed with the same batches, bounded per
 * invocation, per function and in age) and every query over both tables.
 *
 * Does not: decide what is billed (meter.c fills billed_ms), know names'
 * rules (callers pass validated names), or talk HTTP.
 *
 * Connections: its own two SQLite connections to the emberd database (a
 * writer for the ledger thread, a reader for queries behind a mutex), so
 * that batches and long usage queries never wait on db.c's control-plane
 * connection or hold it; WAL lets them run side by side. db_open() must
 * have migrated the database first.
 *
 * Threads: ledger_add() and ledger_add_log() from any thread (they never
 * touch SQLite); queries from any thread; one ledger thread of its own.
 */
#ifndef EMBER_AGENT_LEDGER_H
#define EMBER_AGENT_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/util.h"

/* How an invocation ended, as the ledger stores it ("ok", "error", ...). */
enum ledger_outcome {
	LEDGER_OK = 0,     /* the function answered, status 0 */
	LEDGER_ERROR,      /* the function answered with an error status */
	LEDGER_TIMEOUT,    /* it ran past its timeout and was stopped */
	LEDGER_CRASH,      /* the handler or its VM died mid-invocation */
	LEDGER_THROTTLED,  /* refused for lack of capacity (429) */
	LEDGER_REJECTED,   /* refused before it ran for any other reason */
	LEDGER_NR_OUTCOMES
};
const char *ledger_outcome_name(enum ledger_outcome o);
/* -1 for an unknown name. */
int ledger_outcome_parse(const char *name);
/* Outcomes in which the function's code ran (and may be billed). */
static inline bool ledger_outcome_ran(enum ledger_outcome o)
{
	return o <= LEDGER_CRASH;
}

/* One ledger row. Times: start_us is the wall clock (UTC) when the request
 * arrived, in microseconds since the epoch; the rest are durations. */
struct ledger_rec {
	uint64_t request_id;
	int64_t tenant_id, fn_id;
	int64_t start_us;
	uint64_t duration_ns;  /* INVOKE sent -> RESULT (0 if it never ran) */
	uint64_t init_ns;      /* cold: restore -> READY; else 0 */
	uint64_t queued_ns;    /* waited for an instance (includes init) */
	uint64_t bytes_in, bytes_out;
	uint32_t version, memory_mib, billed_ms;
	uint8_t outcome;       /* enum ledger_outcome */
	uint8_t cold;
	uint8_t pad[2];
	char tenant[UTIL_NAME_MAX + 1];
	char function[UTIL_NAME_MAX + 1];
};

struct ledger_config {
	const char *db_path;        /* the emberd database (migrated) */
	const char *journal_path;   /* STATE/ledger.journal */
	uint32_t journal_slots;     /* ring size for a new journal */
	unsigned batch_ms;          /* longest a record waits for its commit */
	unsigned batch_max;         /* rows per transaction at most */
	uint64_t logs_per_function; /* bytes of logs kept per function */
	unsigned logs_retention_s;  /* logs older than this are deleted */
	uint64_t logs_queue_bytes;  /* logs waiting for a commit, at most */
};

struct ledger;

/* Opens the ledger and replays the journal into the database (*replayed
 * receives how many rows that added), then starts the ledger thread. NULL
 * and a reason in err. */
struct ledger *ledger_open(const struct ledger_config *cfg, size_t *replayed,
			   char *err, size_t errlen);
/* Commits everything appended so far, stops the thread, closes. */
void ledger_close(struct ledger *l);

/* Appends r to the journal: durable against a crash of emberd when this
 * returns. Never fails; waits if the journal is full (SQLite stalled). */
void ledger_add(struct ledger *l, const struct ledger_rec *r);

/* Queues an invocation's log text (copied) for the next commit. false when
 * the queue is full and the text was dropped (counted). */
bool ledger_add_log(struct ledger *l, const struct ledger_rec *r,
		    const char *text, size_t len, bool truncated);

/* Waits until every record appended before the call is committed (or
 * timeout_ms passes: -ETIMEDOUT). Queries call it first so that a client
 * reads its own invocations. */
int ledger_sync(struct ledger *l, unsigned timeout_ms);

struct ledger_stats {
	uint64_t appended, committed, stalls;
	uint64_t commits, commit_errors, rows, replayed, journal_bad;
	uint64_t logs_dropped, logs_queued_bytes;
	uint64_t commit_ns_total;   /* wall time spent committing batches */
	uint64_t commit_cpu_ns_total; /* the ledger thread's CPU for them */
};
void ledger_stats(struct ledger *l, struct ledger_stats *st);

/* --- Queries --- */

/* Grouping keys of a usage query (a set). */
enum {
	LEDGER_BY_TENANT = 1 << 0,
	LEDGER_BY_FUNCTION = 1 << 1,
	LEDGER_BY_DAY = 1 << 2,
	LEDGER_BY_HOUR = 1 << 3,
};

struct ledger_query {
	int64_t from_us, to_us;     /* [from, to) on start_us */
	int64_t tenant_id;          /* > 0: only this tenant's rows */
	const char *tenant;         /* NULL, or only rows of that name */
	const char *function;       /* NULL: every function */
	unsigned group_by;          /* LEDGER_BY_* */
};

struct ledger_usage {
	char tenant[UTIL_NAME_MAX + 1];    /* LEDGER_BY_TENANT */
	char function[UTIL_NAME_MAX + 1];  /* LEDGER_BY_FUNCTION */
	int64_t period_us;                 /* LEDGER_BY_DAY / HOUR: start */
	uint64_t requests;                 /* rows */
	uint64_t invocations;              /* rows whose code ran */
	uint64_t by_outcome[LEDGER_NR_OUTCOMES];
	uint64_t cold_starts;
	uint64_t billed_ms;
	uint64_t mib_ms;                   /* sum of memory_mib x billed_ms */
	uint64_t duration_ns, init_ns;
	uint64_t bytes_in, bytes_out;
};

/* Errors = the function's own failures: error, timeout, crash. */
uint64_t ledger_usage_errors(const struct ledger_usage *u);
/* GB-seconds = sum(memory in GiB x billed seconds), from mib_ms. */
double ledger_usage_gb_s(const struct ledger_usage *u);
/* Adds b's counts into a (keys untouched). */
void ledger_usage_add(struct ledger_usage *a, const struct ledger_usage *b);

/* The aggregated rows of q, ordered by their keys; *out is malloc'd. */
int ledger_usage(struct ledger *l, const struct ledger_query *q,
		 struct ledger_usage **out, size_t *n);

/* Raw rows of q (group_by ignored) with id > after, oldest first, at most
 * limit; ids[] (malloc'd, may be NULL) receives each row's cursor. */
int ledger_records(struct ledger *l, const struct ledger_query *q,
		   int64_t after, size_t limit, struct ledger_rec **out,
		   int64_t **ids, size_t *n);

struct ledger_log {
	int64_t id;          /* cursor: increases with every entry */
	uint64_t request_id;
	int64_t at_us;       /* when the invocation started */
	bool truncated;
	char *text;          /* NUL-terminated, valid UTF-8 */
	size_t len;
};

struct ledger_log_query {
	int64_t tenant_id, fn_id;   /* both required */
	uint64_t request_id;        /* nonzero: only this invocation's */
	int64_t since_us;           /* 0 or: entries at or after */
	int64_t after;              /* entries with id > after */
	size_t tail;                /* the last `tail` entries (0: all) */
	size_t limit;               /* at most this many */
};

/* Matching log entries, oldest first; free with ledger_logs_free. */
int ledger_logs(struct ledger *l, const struct ledger_log_query *q,
		struct ledger_log **out, size_t *n);
void ledger_logs_free(struct ledger_log *logs, size_t n);

#endif
