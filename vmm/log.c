#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum ember_log_level max_level = EMBER_LOG_WARN;
static ember_log_fn sink;
static void *sink_opaque;

static const char *const level_name[] = { "error", "warning", "info", "debug" };

void ember_log_set_level(enum ember_log_level level)
{
	max_level = level;
}

enum ember_log_level ember_log_get_level(void)
{
	return max_level;
}

void ember_log_set_sink(ember_log_fn fn, void *opaque)
{
	sink = fn;
	sink_opaque = opaque;
}

void log_msg(enum ember_log_level level, const char *mod, int with_errno,
	     const char *fmt, ...)
{
	int saved = errno;
	char line[1024];
	size_t n;
	va_list ap;

	if ((unsigned)level > (unsigned)max_level ||
	    (unsigned)level >= sizeof(level_name) / sizeof(level_name[0]))
		return;
	n = (size_t)snprintf(line, sizeof(line), "ember: %s: %s: ", mod,
			     level_name[level]);
	va_start(ap, fmt);
	if (n < sizeof(line))
		n += (size_t)vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (with_errno && n < sizeof(line))
		snprintf(line + n, sizeof(line) - n, ": %s", strerror(saved));
	if (sink)
		sink(level, line, sink_opaque);
	else
		fprintf(stderr, "%s\n", line);
	errno = saved;
}

int log_ratelimit_ok(struct log_ratelimit *rl, unsigned burst)
{
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	if (now - rl->window_start_ns >= 1000000000ULL) {
		if (rl->suppressed)
			log_msg(EMBER_LOG_WARN, "log", 0,
				"%u similar messages suppressed", rl->suppressed);
		rl->window_start_ns = now;
		rl->count = 0;
		rl->suppressed = 0;
	}
	if (rl->count < burst) {
		rl->count++;
		return 1;
	}
	rl->suppressed++;
	return 0;
}

int errbuf_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}
