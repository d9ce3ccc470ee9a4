/*
 * log.h - leveled logging for libember.
 *
 * Owns: the log level, the sink (stderr by default, or a callback the
 * embedding program sets with ember_log_set_sink(), ember.h) and per-call-site rate limits for anything a guest
 * can trigger. Thread-safe: each line is formatted then handed to the sink in
 * one call. Library code logs here and never prints to stdout.
 */
#ifndef EMBER_LOG_H
#define EMBER_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "ember.h" /* the level enum and the sink setters are public */

void log_msg(enum ember_log_level level, const char *mod, int with_errno,
	     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Formats a one-line reason into err[errlen] (ignored when err is NULL) and
 * returns `ret`, so that a parser's rejection reads
 * `return errbuf_fail(err, errlen, -EINVAL, "...", ...)`. */
int errbuf_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* True at most `burst` times per second for the call site owning `state`. */
struct log_ratelimit {
	uint64_t window_start_ns;
	unsigned count;
	unsigned suppressed;
};
int log_ratelimit_ok(struct log_ratelimit *rl, unsigned burst);

#ifndef LOG_MOD
#define LOG_MOD "ember"
#endif

#define log_err(...) log_msg(EMBER_LOG_ERROR, LOG_MOD, 0, __VA_ARGS__)
#define log_warn(...) log_msg(EMBER_LOG_WARN, LOG_MOD, 0, __VA_ARGS__)
#define log_info(...) log_msg(EMBER_LOG_INFO, LOG_MOD, 0, __VA_ARGS__)
#define log_err_errno(...) log_msg(EMBER_LOG_ERROR, LOG_MOD, 1, __VA_ARGS__)
#define log_warn_errno(...) log_msg(EMBER_LOG_WARN, LOG_MOD, 1, __VA_ARGS__)
#ifdef EMBER_DEBUG
#define log_debug(...) log_msg(EMBER_LOG_DEBUG, LOG_MOD, 0, __VA_ARGS__)
#else
#define log_debug(...) do { } while (0)
#endif

/* For anything a guest or tenant can trigger: at most 10 lines a second per
 * call site. */
#define log_warn_rl(...)                                                      \
	do {                                                                  \
		static struct log_ratelimit rl_;                              \
		if (log_ratelimit_ok(&rl_, 10))                               \
			log_warn(__VA_ARGS__);                                \
	} while (0)

#endif
