/*
 * elog.h - emberd's own log: JSON lines, one event per line.
 *
 * Owns: where emberd's log goes (stderr, or a file reopened on SIGHUP for
 * log rotation), its format (JSON lines by default, or the plain text
 * lines a person reads in a terminal), and events: named, structured
 * lines (start, stop, deploy, scale_up, scale_down, throttle, timeout,
 * crash, reap) that carry the request id, tenant and function where there
 * are some, for log shippers to index.
 *
 *   {"ts":"2026-12-01T23:58:01.123Z","level":"warning","pid":812,
 *    "module":"sched","msg":"VMM 901: ..."}
 *   {"ts":"...","level":"info","pid":812,"module":"meter",
 *    "event":"throttle","request_id":"8c1f4e2a9b7d3c60","tenant":"acme",
 *    "function":"resize","msg":"..."}
 *
 * Every line is written with one write(2), so lines from many threads
 * never interleave. Text from guests or tenants is cleaned (utf8.h)
 * before it is written.
 *
 * Threads: any, after elog_open() in main().
 */
#ifndef EMBER_AGENT_ELOG_H
#define EMBER_AGENT_ELOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "log.h"

enum elog_format { ELOG_JSON, ELOG_TEXT };

/* Sends log.h's lines here (ember_log_set_sink) and opens path for appending
 * (NULL: stderr). 0 or -errno. */
int elog_open(const char *path, enum elog_format format);
/* Reopens the file (after logrotate moved it); nothing for stderr. */
int elog_reopen(void);
void elog_close(void);

/* The log.h sink: "ember: MODULE: LEVEL: message" becomes one line. */
void elog_sink(enum ember_log_level level, const char *line, void *opaque);

/* Who an event is about; any field may be 0 / NULL. */
struct elog_who {
	uint64_t request_id;
	const char *tenant;
	const char *function;
};

/* An event, written whatever the log level (events are what an operator
 * ships and alerts on; per-invocation ones are rate-limited by their
 * callers). */
void elog_event(const char *module, const char *event,
		const struct elog_who *who, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Formats one line into buf[cap] (for tests and for the writer); returns
 * its length including the final newline, cut to fit. */
size_t elog_format_line(char *buf, size_t cap, enum elog_format format,
			const char *level, const char *module,
			const char *event, const struct elog_who *who,
			const char *msg);

#endif
