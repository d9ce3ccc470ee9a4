/* Unit tests: guest-init's configuration file and kernel command line words
 * (guest-init/conf.c): what a valid file means, defaults, and a distinct,
 * line-numbered refusal for each kind of bad input. */
// link: guest-init/conf.c
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guest-init/conf.h"

static int parse(const char *text, struct conf *c, char *err)
{
	return conf_parse(text, strlen(text), c, err, 256);
}

static void test_full_file(void **state)
{
	static const char text[] =
		"# written by scripts/linux-image.sh\n"
		"\n"
		"arg --port\n"
		"handler /fn/bin/handler\n"
		"arg   two  spaces kept  \n"
		"arg\n"
		"env GREETING=hello world\n"
		"env EMPTY=\n"
		"uid 4242\n"
		"gid 4343\n"
		"cwd /fn\n"
		"   # an indented comment\n";
	struct conf c;
	char err[256];

	(void)state;
	assert_int_equal(parse(text, &c, err), 0);
	assert_string_equal(c.handler, "/fn/bin/handler");
	assert_int_equal(c.argc, 4);
	assert_string_equal(c.argv[0], "/fn/bin/handler");
	assert_string_equal(c.argv[1], "--port");
	assert_string_equal(c.argv[2], "two  spaces kept  ");
	assert_string_equal(c.argv[3], "");
	assert_null(c.argv[4]);
	assert_int_equal(c.nenv, 3);
	assert_string_equal(c.env[0], "GREETING=hello world");
	assert_string_equal(c.env[1], "EMPTY=");
	assert_string_equal(c.env[2], CONF_DEFAULT_PATH);
	assert_null(c.env[3]);
	assert_int_equal(c.uid, 4242);
	assert_int_equal(c.gid, 4343);
	assert_string_equal(c.cwd, "/fn");
	conf_free(&c);
}

static void test_defaults(void **state)
{
	struct conf c;
	char err[256];

	(void)state;
	assert_int_equal(parse("handler /h\nenv PATH=/bin", &c, err), 0);
	assert_int_equal(c.argc, 1);
	assert_null(c.argv[1]);
	assert_int_equal(c.nenv, 1); /* PATH given: no default added */
	assert_string_equal(c.env[0], "PATH=/bin");
	assert_int_equal(c.uid, CONF_DEFAULT_UID);
	assert_int_equal(c.gid, CONF_DEFAULT_UID);
	assert_string_equal(c.cwd, "/");
	conf_free(&c);
	assert_int_equal(parse("handler /h\nuid 0\n", &c, err), 0);
	assert_int_equal(c.uid, 0);
	assert_int_equal(c.gid, 0); /* follows the uid */
	conf_free(&c);
}

static void test_refusals(void **state)
{
	static const struct {
		const char *text;
		const char *why;
	} bad[] = {
		{ "", "no handler line" },
		{ "arg x\n", "no handler line" },
		{ "handler relative/path\n", "line 1: handler must be an absolute path" },
		{ "handler\n", "line 1: handler must be an absolute path" },
		{ "handler /a\nhandler /b\n", "line 2: handler given twice" },
		{ "handler /a\nenv NOEQUALS\n", "line 2: env wants KEY=VALUE" },
		{ "handler /a\nenv =x\n", "line 2: env wants KEY=VALUE" },
		{ "handler /a\nuid -1\n", "line 2: uid wants a number" },
		{ "handler /a\nuid 4294967295\n", "line 2: uid wants a number" },
		{ "handler /a\nuid 12345678901\n", "line 2: uid wants a number" },
		{ "handler /a\ngid 1x\n", "line 2: gid wants a number" },
		{ "handler /a\nuid 1\nuid 2\n", "line 3: uid given twice" },
		{ "handler /a\ncwd tmp\n", "line 2: cwd must be an absolute path" },
		{ "handler /a\ncwd /\ncwd /\n", "line 3: cwd given twice" },
		{ "handler /a\nuser root\n", "line 2: unknown setting 'user'" },
		{ "handler /a\n handler /b\n", "line 2: a setting must start" },
	};
	struct conf c;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i].text, &c, err), -EINVAL);
		if (strncmp(err, bad[i].why, strlen(bad[i].why)))
			fail_msg("'%s': got '%s', want '%s'", bad[i].text, err,
				 bad[i].why);
		assert_null(c.handler); /* nothing to free after a failure */
	}
}

static void test_limits(void **state)
{
	struct conf c;
	char err[256], *big;
	size_t n = 0;

	(void)state;
	/* A NUL byte anywhere. */
	assert_int_equal(conf_parse("handler /a\0b\n", 13, &c, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "NUL"));
	/* A line over 4096 bytes. */
	big = malloc(CONF_MAX_BYTES + 2);
	assert_non_null(big);
	n = (size_t)sprintf(big, "handler /a\narg ");
	memset(big + n, 'x', CONF_MAX_LINE);
	n += CONF_MAX_LINE;
	assert_int_equal(conf_parse(big, n, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "line 2: line over 4096 bytes"));
	/* Too many arg lines. */
	n = (size_t)sprintf(big, "handler /a\n");
	for (unsigned i = 0; i <= CONF_MAX_ARGS; i++)
		n += (size_t)sprintf(big + n, "arg %u\n", i);
	assert_int_equal(conf_parse(big, n, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than 256 arg lines"));
	/* Exactly the limit is fine. */
	n = (size_t)sprintf(big, "handler /a\n");
	for (unsigned i = 0; i < CONF_MAX_ARGS; i++)
		n += (size_t)sprintf(big + n, "arg %u\n", i);
	assert_int_equal(conf_parse(big, n, &c, err, sizeof(err)), 0);
	assert_int_equal(c.argc, CONF_MAX_ARGS + 1);
	assert_string_equal(c.argv[CONF_MAX_ARGS], "255");
	conf_free(&c);
	/* Too many env lines. */
	n = (size_t)sprintf(big, "handler /a\n");
	for (unsigned i = 0; i <= CONF_MAX_ENV; i++)
		n += (size_t)sprintf(big + n, "env V%u=1\n", i);
	assert_int_equal(conf_parse(big, n, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than 1024 env lines"));
	/* A whole file over 1 MiB is refused before it is read. */
	memset(big, '#', CONF_MAX_BYTES + 1);
	assert_int_equal(conf_parse(big, CONF_MAX_BYTES + 1, &c, err, sizeof(err)),
			 -E2BIG);
	free(big);
}

static void test_cmdline(void **state)
{
	static const char cl[] =
		"console=ttyS0 reboot=k panic=-1 root=/dev/vda ro "
		"init=/ember/init ember.conf=/etc/fn.conf ember.debug quiet\n";
	struct conf_cmdline c;
	char err[256];

	(void)state;
	assert_int_equal(conf_parse_cmdline(cl, sizeof(cl) - 1, &c, err,
					    sizeof(err)), 0);
	assert_string_equal(c.conf_path, "/etc/fn.conf");
	assert_int_equal(c.verbose, 1);
	assert_int_equal(conf_parse_cmdline("quiet ember.debugx", 18, &c, err,
					    sizeof(err)), 0);
	assert_string_equal(c.conf_path, CONF_DEFAULT_FILE);
	assert_int_equal(c.verbose, 0);
	assert_int_equal(conf_parse_cmdline("ember.conf=rel", 14, &c, err,
					    sizeof(err)), -EINVAL);
	assert_int_equal(conf_parse_cmdline("ember.conf=", 11, &c, err,
					    sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_cmdline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
