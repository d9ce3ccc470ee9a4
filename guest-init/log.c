/*
 * log.c - guest-init's diagnostics: see log.h.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

int log_verbose;

static void vlog(const char *fmt, va_list ap)
{
	char line[512];
	int n, saved = errno;

	n = snprintf(line, sizeof(line), "guest-init: ");
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line, so lines from guest-init and the handler's
	 * console output do not interleave mid-line. */
	if (write(2, line, (size_t)n) < 0)
		errno = saved;
	errno = saved;
}

void log_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void log_dbg(const char *fmt, ...)
{
	va_list ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}
