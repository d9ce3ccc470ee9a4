/*
 * elog.c - emberd's own log: see elog.h.
 *
 * JSON is written by hand here rather than through jansson: a line is a
 * fixed set of string fields, and the writer must not allocate (it runs
 * on every thread, also when memory is short, and from log calls inside
 * allocation failures).
 */
#include "agent/elog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/utf8.h"
#include "agent/util.h"

#define LINE_MAX_BYTES 4096
#define MSG_MAX 1024

static const char *const level_names[] = { "error", "warning", "info",
					   "debug" };

static struct {
	pthread_mutex_t lock; /* path and fd changes */
	char path[4096];
	int fd;
	enum elog_format format;
} out = { PTHREAD_MUTEX_INITIALIZER, "", 2, ELOG_JSON };

static int open_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
				    O_NOFOLLOW,
		      0640);

	return fd < 0 ? -errno : fd;
}

int elog_open(const char *path, enum elog_format format)
{
	int fd = 2;

	if (path) {
		fd = open_log(path);
		if (fd < 0)
			return fd;
	}
	pthread_mutex_lock(&out.lock);
	util_copy(out.path, sizeof(out.path), path ? path : "");
	out.fd = fd;
	out.format = format;
	pthread_mutex_unlock(&out.lock);
	ember_log_set_sink(elog_sink, NULL);
	return 0;
}

int elog_reopen(void)
{
	int fd, old;

	pthread_mutex_lock(&out.lock);
	if (!out.path[0]) {
		pthread_mutex_unlock(&out.lock);
		return 0;
	}
	fd = open_log(out.path);
	if (fd < 0) {
		pthread_mutex_unlock(&out.lock);
		return fd; /* keep writing to the old file */
	}
	old = out.fd;
	out.fd = fd;
	pthread_mutex_unlock(&out.lock);
	close(old);
	return 0;
}

void elog_close(void)
{
	ember_log_set_sink(NULL, NULL);
	pthread_mutex_lock(&out.lock);
	if (out.fd > 2)
		close(out.fd);
	out.fd = 2;
	out.path[0] = '\0';
	pthread_mutex_unlock(&out.lock);
}

struct lbuf {
	char *p;
	size_t len, cap; /* cap keeps room for the final newline */
};

static void put(struct lbuf *b, const char *s, size_t n)
{
	if (n > b->cap - b->len)
		n = b->cap - b->len;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void puts_(struct lbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* A JSON string of cleaned text (valid UTF-8, no controls but \t \n). */
static void put_json_str(struct lbuf *b, const char *s)
{
	char clean[3 * MSG_MAX + 1];
	size_t n = strnlen(s, MSG_MAX);

	utf8_clean(clean, (const uint8_t *)s, n);
	put(b, "\"", 1);
	for (const char *c = clean; *c; c++) {
		if (*c == '"' || *c == '\\') {
			put(b, "\\", 1);
			put(b, c, 1);
		} else if (*c == '\n') {
			put(b, "\\n", 2);
		} else if (*c == '\t') {
			put(b, "\\t", 2);
		} else {
			put(b, c, 1);
		}
	}
	put(b, "\"", 1);
}

static void put_field(struct lbuf *b, const char *key, const char *val)
{
	put(b, ",\"", 2);
	puts_(b, key);
	put(b, "\":", 2);
	put_json_str(b, val);
}

size_t elog_format_line(char *buf, size_t cap, enum elog_format format,
			const char *level, const char *module,
			const char *event, const struct elog_who *who,
			const char *msg)
{
	struct lbuf b = { buf, 0, cap - 1 };
	char ts[UTIL_TIME_LEN], id[17] = "", pid[24];

	util_time_iso8601(ts);
	if (who && who->request_id)
		snprintf(id, sizeof(id), "%016llx",
			 (unsigned long long)who->request_id);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (format == ELOG_TEXT) {
		char clean[3 * MSG_MAX + 1];

		puts_(&b, ts);
		puts_(&b, " emberd[");
		puts_(&b, pid);
		puts_(&b, "] ");
		puts_(&b, module);
		puts_(&b, ": ");
		if (strcmp(level, "info")) {
			puts_(&b, level);
			puts_(&b, ": ");
		}
		if (event) {
			puts_(&b, event);
			if (id[0]) {
				puts_(&b, " ");
				puts_(&b, id);
			}
			if (who && who->tenant) {
				puts_(&b, " ");
				puts_(&b, who->tenant);
				if (who->function) {
					puts_(&b, "/");
					puts_(&b, who->function);
				}
			}
			puts_(&b, ": ");
		}
		utf8_clean(clean, (const uint8_t *)msg, strnlen(msg, MSG_MAX));
		for (char *c = clean; *c; c++)
			if (*c == '\n')
				*c = ' '; /* one event, one line */
		puts_(&b, clean);
	} else {
		puts_(&b, "{\"ts\":");
		put_json_str(&b, ts);
		put_field(&b, "level", level);
		puts_(&b, ",\"pid\":");
		puts_(&b, pid);
		put_field(&b, "module", module);
		if (event)
			put_field(&b, "event", event);
		if (id[0])
			put_field(&b, "request_id", id);
		if (who && who->tenant)
			put_field(&b, "tenant", who->tenant);
		if (who && who->function)
			put_field(&b, "function", who->function);
		put_field(&b, "msg", msg);
		if (b.len == b.cap) {
			/* Cut mid-way: close the JSON so the line still
			 * parses (the message lost its end). */
			static const char tail[] = "...\"}";

			b.len = b.cap - (sizeof(tail) - 1);
			/* never cut inside an escape or a UTF-8 sequence */
			while (b.len && ((b.p[b.len - 1] & 0xc0) == 0x80 ||
					 (unsigned char)b.p[b.len - 1] >= 0xc0 ||
					 b.p[b.len - 1] == '\\'))
				b.len--;
			put(&b, tail, sizeof(tail) - 1);
		} else {
			put(&b, "}", 1);
		}
	}
	buf[b.len++] = '\n';
	return b.len;
}

static void write_line(const char *line, size_t n)
{
	pthread_mutex_lock(&out.lock);
	/* One write: a line from another thread never lands inside it. A
	 * short or failed write is not retried: the log must never block
	 * emberd for long. */
	if (write(out.fd, line, n) < 0) {
		/* nowhere to report it */
	}
	pthread_mutex_unlock(&out.lock);
}

void elog_sink(enum ember_log_level level, const char *line, void *opaque)
{
	char buf[LINE_MAX_BYTES], module[32] = "ember";
	const char *msg = line, *p;
	size_t n;

	(void)opaque;
	/* log.h's shape: "ember: MODULE: LEVEL: message". */
	if (!strncmp(msg, "ember: ", 7))
		msg += 7;
	p = strstr(msg, ": ");
	if (p && (size_t)(p - msg) < sizeof(module)) {
		memcpy(module, msg, (size_t)(p - msg));
		module[p - msg] = '\0';
		msg = p + 2;
		if ((unsigned)level < 4) {
			size_t ll = strlen(level_names[level]);

			if (!strncmp(msg, level_names[level], ll) &&
			    !strncmp(msg + ll, ": ", 2))
				msg += ll + 2;
		}
	}
	n = elog_format_line(buf, sizeof(buf), out.format,
			     (unsigned)level < 4 ? level_names[level] : "info",
			     module, NULL, NULL, msg);
	write_line(buf, n);
}

void elog_event(const char *module, const char *event,
		const struct elog_who *who, const char *fmt, ...)
{
	char buf[LINE_MAX_BYTES], msg[MSG_MAX];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = elog_format_line(buf, sizeof(buf), out.format, "info", module,
			     event, who, msg);
	write_line(buf, n);
}
