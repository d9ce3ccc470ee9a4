/* Unit tests: emberd's own log (agent/elog.c). Every line is one JSON
 * object that jansson parses back with the fields it was given (level,
 * module, event, request id, tenant, function, msg), whatever the message
 * holds (quotes, newlines, escapes, invalid UTF-8, 10 KiB); log.h lines
 * are split into module, level and message; a log file is appended to
 * and reopened after a rotation; the text format stays one line. */
// link: agent/elog.c agent/utf8.c agent/util.c vmm/log.c
// libs: -ljansson -lpthread
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "agent/elog.h"
#include "agent/util.h"

static json_t *parse_line(const char *buf, size_t n)
{
	json_error_t e;
	json_t *o;

	assert_true(n > 0);
	assert_int_equal(buf[n - 1], '\n');
	assert_null(memchr(buf, '\n', n - 1)); /* exactly one line */
	o = json_loadb(buf, n - 1, 0, &e);
	if (!o)
		fail_msg("not JSON (%s): %.*s", e.text, (int)n, buf);
	return o;
}

static const char *str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void test_event_fields(void **state)
{
	struct elog_who who = { 0x8c1f4e2a9b7d3c60ull, "acme", "resize" };
	char buf[4096];
	size_t n;
	json_t *o;

	(void)state;
	n = elog_format_line(buf, sizeof(buf), ELOG_JSON, "info", "meter",
			     "throttle", &who, "queue \"full\"\n\tbye\\");
	o = parse_line(buf, n);
	assert_string_equal(str(o, "level"), "info");
	assert_string_equal(str(o, "module"), "meter");
	assert_string_equal(str(o, "event"), "throttle");
	assert_string_equal(str(o, "request_id"), "8c1f4e2a9b7d3c60");
	assert_string_equal(str(o, "tenant"), "acme");
	assert_string_equal(str(o, "function"), "resize");
	assert_string_equal(str(o, "msg"), "queue \"full\"\n\tbye\\");
	assert_int_equal(json_integer_value(json_object_get(o, "pid")),
			 getpid());
	assert_non_null(strstr(str(o, "ts"), "Z"));
	json_decref(o);

	/* No request id, no names: the keys are absent, not empty. */
	n = elog_format_line(buf, sizeof(buf), ELOG_JSON, "warning", "sched",
			     NULL, NULL, "plain");
	o = parse_line(buf, n);
	assert_null(json_object_get(o, "request_id"));
	assert_null(json_object_get(o, "event"));
	assert_null(json_object_get(o, "tenant"));
	json_decref(o);
}

static void test_hostile_messages(void **state)
{
	char buf[4096], big[10240];
	size_t n;
	json_t *o;

	(void)state;
	/* Bytes a guest could have put into a message. */
	n = elog_format_line(buf, sizeof(buf), ELOG_JSON, "warning", "sched",
			     NULL, NULL, "a\xff\x1b[31m\xc3(\x7f z");
	o = parse_line(buf, n);
	assert_string_equal(str(o, "msg"), "a\xef\xbf\xbd\xef\xbf\xbd[31m"
					   "\xef\xbf\xbd(\xef\xbf\xbd z");
	json_decref(o);

	/* Too long for a line: cut, still one JSON object. */
	memset(big, '"', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	n = elog_format_line(buf, 600, ELOG_JSON, "error", "api", "crash",
			     NULL, big);
	assert_true(n <= 600);
	o = parse_line(buf, n);
	assert_true(strlen(str(o, "msg")) > 100);
	json_decref(o);
	memset(big, 0xc3, sizeof(big) - 1); /* half characters */
	n = elog_format_line(buf, 300, ELOG_JSON, "error", "api", NULL, NULL,
			     big);
	o = parse_line(buf, n);
	json_decref(o);

	/* Text format: one line, escapes neutralized. */
	n = elog_format_line(buf, sizeof(buf), ELOG_TEXT, "warning", "sched",
			     "crash", NULL, "x\ny\x1b");
	assert_int_equal(buf[n - 1], '\n');
	assert_null(memchr(buf, '\n', n - 1));
	assert_null(memchr(buf, 0x1b, n));
}

static void test_sink_and_file(void **state)
{
	char dir[] = "/tmp/ember-test-elog.XXXXXX", path[128], moved[128];
	char buf[8192];
	struct elog_who who = { 42, "t", NULL };
	ssize_t n;
	int fd;
	json_t *o;
	char *nl;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/emberd.log", dir);
	snprintf(moved, sizeof(moved), "%s/emberd.log.1", dir);
	assert_int_equal(elog_open(path, ELOG_JSON), 0);
	log_msg(EMBER_LOG_WARN, "sched", 0, "VMM %d: gone", 901);
	elog_event("meter", "timeout", &who, "ran past %u ms", 3000u);

	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	assert_non_null(nl);
	o = parse_line(buf, (size_t)(nl - buf) + 1);
	assert_string_equal(str(o, "module"), "sched");
	assert_string_equal(str(o, "level"), "warning");
	assert_string_equal(str(o, "msg"), "VMM 901: gone");
	json_decref(o);
	o = parse_line(nl + 1, strlen(nl + 1));
	assert_string_equal(str(o, "event"), "timeout");
	assert_string_equal(str(o, "request_id"), "000000000000002a");
	json_decref(o);

	/* logrotate: the file is moved, SIGHUP reopens a new one. */
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(elog_reopen(), 0);
	log_msg(EMBER_LOG_ERROR, "db", 0, "after rotation");
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n] = '\0';
	o = parse_line(buf, (size_t)n);
	assert_string_equal(str(o, "msg"), "after rotation");
	assert_string_equal(str(o, "level"), "error");
	json_decref(o);
	elog_close();
	util_rm_tree(AT_FDCWD, dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event_fields),
		cmocka_unit_test(test_hostile_messages),
		cmocka_unit_test(test_sink_and_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
