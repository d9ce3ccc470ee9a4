/* Unit tests: ember.json parsing and validation (agent/manifest.c). Valid
 * manifests with and without defaults, a round trip through
 * manifest_to_json, and one hostile manifest per rule: wrong types,
 * out-of-range values, unknown and duplicate keys, bad handler paths and
 * environments. Each must fail with -EINVAL and a reason naming the field. */
// link: agent/manifest.c vmm/log.c
// libs: -ljansson
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/manifest.h"

static int parse(const char *json, struct fn_manifest *m, char *err)
{
	return manifest_parse(json, strlen(json), m, err, 256);
}

static void test_defaults(void **state)
{
	struct fn_manifest m;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse("{\"runtime\":\"static\",\"handler\":\"bin/fn\"}",
			       &m, err), 0);
	assert_string_equal(m.runtime, "static");
	assert_string_equal(m.guest, "micro");
	assert_string_equal(m.handler, "bin/fn");
	assert_int_equal(m.memory_mib, 128);
	assert_int_equal(m.timeout_ms, 3000);
	assert_int_equal(m.max_concurrency, 10);
	assert_int_equal(m.nr_env, 0);
	manifest_free(&m);
	manifest_free(&m); /* idempotent */
}

static void test_python_handlers(void **state)
{
	static const char *const ok[] = { "handler.py", "app/main.py",
					  "_x/y2/Z_3.py", "a1.py" };
	struct fn_manifest m;
	char json[128], err[256] = "";

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(json, sizeof(json),
			 "{\"runtime\":\"python\",\"handler\":\"%s\"}", ok[i]);
		assert_int_equal(parse(json, &m, err), 0);
		assert_string_equal(m.runtime, "python");
		assert_string_equal(m.handler, ok[i]);
		manifest_free(&m);
	}
}

static void test_full_and_round_trip(void **state)
{
	const char *json =
		"{\"runtime\":\"lua\",\"guest\":\"linux\",\"handler\":"
		"\"handler.lua\",\"memory_mib\":3072,\"timeout_ms\":900000,"
		"\"max_concurrency\":1,\"env\":{\"GREETING\":\"hi,there\","
		"\"_x9\":\"\",\"URL\":\"https://example.com/a?b=c\"}}";
	struct fn_manifest m, back;
	char err[256] = "", *dump;
	json_t *j;

	(void)state;
	assert_int_equal(parse(json, &m, err), 0);
	assert_string_equal(m.guest, "linux");
	assert_int_equal(m.memory_mib, 3072);
	assert_int_equal(m.timeout_ms, 900000);
	assert_int_equal(m.max_concurrency, 1);
	assert_int_equal(m.nr_env, 3);
	assert_string_equal(m.env[0], "GREETING=hi,there");
	assert_string_equal(m.env[1], "_x9=");
	assert_string_equal(m.env[2], "URL=https://example.com/a?b=c");

	j = manifest_to_json(&m);
	assert_non_null(j);
	dump = json_dumps(j, JSON_COMPACT);
	assert_non_null(dump);
	assert_int_equal(parse(dump, &back, err), 0);
	assert_string_equal(back.runtime, m.runtime);
	assert_string_equal(back.guest, m.guest);
	assert_string_equal(back.handler, m.handler);
	assert_int_equal(back.memory_mib, m.memory_mib);
	assert_int_equal(back.timeout_ms, m.timeout_ms);
	assert_int_equal(back.max_concurrency, m.max_concurrency);
	assert_int_equal(back.nr_env, m.nr_env);
	for (size_t i = 0; i < m.nr_env; i++)
		assert_string_equal(back.env[i], m.env[i]);
	free(dump);
	json_decref(j);
	manifest_free(&back);
	manifest_free(&m);
}

/* Each manifest must be refused, with `needle` in the message. */
static const struct {
	const char *json, *needle;
} bad[] = {
	{ "", "not valid JSON" },
	{ "{", "not valid JSON" },
	{ "[]", "must be a JSON object, not an array" },
	{ "\"static\"", "must be a JSON object" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\"} x", "not valid JSON" },
	{ "{\"handler\":\"h\"}", "\"runtime\" is missing" },
	{ "{\"runtime\":\"static\"}", "\"handler\" is missing" },
	{ "{\"runtime\":7,\"handler\":\"h\"}", "\"runtime\" must be a string, not an integer" },
	{ "{\"runtime\":\"perl\",\"handler\":\"h\"}", "\"perl\" is unknown" },
	{ "{\"runtime\":\"go\",\"handler\":\"h\"}", "not available yet" },
	/* python: the handler is a module path */
	{ "{\"runtime\":\"python\",\"handler\":\"h\"}", "not a Python module path" },
	{ "{\"runtime\":\"python\",\"handler\":\".py\"}", "not a Python module path" },
	{ "{\"runtime\":\"python\",\"handler\":\"my-fn.py\"}", "not a Python module path" },
	{ "{\"runtime\":\"python\",\"handler\":\"1st.py\"}", "not a Python module path" },
	{ "{\"runtime\":\"python\",\"handler\":\"a.b.py\"}", "not a Python module path" },
	{ "{\"runtime\":\"python\",\"handler\":\"app/.py\"}", "not a Python module path" },
	{ "{\"runtime\":\"python\",\"handler\":\"my app/h.py\"}", "not a Python module path" },
	{ "{\"runtime\":\"python\",\"handler\":\"h.pyc\"}", "not a Python module path" },
	{ "{\"runtime\":\"python\",\"handler\":\"../h.py\"}", "'..' component" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"guest\":\"xen\"}", "\"guest\" \"xen\" is unknown" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"guest\":null}", "\"guest\" must be a string, not null" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"color\":1}", "unknown key \"color\"" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"runtime\":\"lua\"}", "duplicate" },
	/* handler paths */
	{ "{\"runtime\":\"static\",\"handler\":\"\"}", "is empty" },
	{ "{\"runtime\":\"static\",\"handler\":\"/bin/sh\"}", "is absolute" },
	{ "{\"runtime\":\"static\",\"handler\":\"../etc/passwd\"}", "'..' component" },
	{ "{\"runtime\":\"static\",\"handler\":\"a/../../b\"}", "'..' component" },
	{ "{\"runtime\":\"static\",\"handler\":\"a/..\"}", "'..' component" },
	{ "{\"runtime\":\"static\",\"handler\":\"./fn\"}", "'.' component" },
	{ "{\"runtime\":\"static\",\"handler\":\"a//b\"}", "empty component" },
	{ "{\"runtime\":\"static\",\"handler\":\"bin/\"}", "ends with '/'" },
	{ "{\"runtime\":\"static\",\"handler\":\"a\\nb\"}", "control character" },
	{ "{\"runtime\":\"static\",\"handler\":\"a\\u0000b\"}", "not valid JSON" },
	{ "{\"runtime\":\"static\",\"handler\":[\"h\"]}", "must be a string, not an array" },
	/* numbers */
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"memory_mib\":15}", "\"memory_mib\" is 15, out of range 16..3072" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"memory_mib\":3073}", "out of range 16..3072" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"memory_mib\":-1}", "out of range" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"memory_mib\":128.0}", "must be an integer, not a number with a fraction" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"memory_mib\":\"128\"}", "must be an integer, not a string" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"memory_mib\":true}", "not a boolean" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"memory_mib\":99999999999999999999}", "not valid JSON" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"memory_mib\":4294967312}", "out of range" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"timeout_ms\":0}", "\"timeout_ms\" is 0, out of range 1..900000" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"timeout_ms\":900001}", "out of range" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"max_concurrency\":0}", "\"max_concurrency\" is 0" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"max_concurrency\":1001}", "out of range 1..1000" },
	/* environment */
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"env\":[]}", "\"env\" must be an object of strings, not an array" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"env\":{\"A\":1}}", "env \"A\" must be a string, not an integer" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"env\":{\"1A\":\"x\"}}", "must match" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"env\":{\"A-B\":\"x\"}}", "must match" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"env\":{\"A=B\":\"x\"}}", "must match" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"env\":{\"\":\"x\"}}", "must be 1..128 bytes" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"env\":{\"debug\":\"1\"}}", "reserved" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"env\":{\"handler\":\"/x\"}}", "reserved" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"env\":{\"A\":\"two words\"}}", "byte 0x20 at 3" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"env\":{\"A\":\"tab\\there\"}}", "byte 0x09" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"env\":{\"A\":\"caf\\u00e9\"}}", "byte 0xc3" },
	{ "{\"runtime\":\"static\",\"handler\":\"h\",\"env\":{\"A\":\"x\",\"A\":\"y\"}}", "duplicate" },
};

static void test_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fn_manifest m;
		char err[256] = "";
		int ret = parse(bad[i].json, &m, err);

		if (ret != -EINVAL || !strstr(err, bad[i].needle)) {
			print_error("manifest %zu: %s\n  ret %d, message '%s', "
				    "expected '%s'\n", i, bad[i].json, ret, err,
				    bad[i].needle);
			fail();
		}
		assert_null(m.env);
		assert_int_equal(m.nr_env, 0);
		manifest_free(&m);
	}
}

/* Limits that need generated input: many variables, long values, a long
 * handler path, an oversized manifest. */
static void test_env_limits(void **state)
{
	char json[MANIFEST_MAX_BYTES + 64], err[256];
	struct fn_manifest m;
	size_t n;

	(void)state;
	/* 48 variables: fine; 49: too many. */
	for (unsigned count = 48; count <= 49; count++) {
		n = (size_t)snprintf(json, sizeof(json),
				     "{\"runtime\":\"static\",\"handler\":\"h\","
				     "\"env\":{");
		for (unsigned i = 0; i < count; i++)
			n += (size_t)snprintf(json + n, sizeof(json) - n,
					      "%s\"V%u\":\"%u\"", i ? "," : "",
					      i, i);
		snprintf(json + n, sizeof(json) - n, "}}");
		if (count == 48) {
			assert_int_equal(parse(json, &m, err), 0);
			assert_int_equal(m.nr_env, 48);
			assert_string_equal(m.env[47], "V47=47");
			manifest_free(&m);
		} else {
			assert_int_equal(parse(json, &m, err), -EINVAL);
			assert_non_null(strstr(err, "49 variables"));
		}
	}
	/* One value of 1025 bytes; then 4 x 1000 bytes: over 3 KiB in all. */
	n = (size_t)snprintf(json, sizeof(json),
			     "{\"runtime\":\"static\",\"handler\":\"h\","
			     "\"env\":{\"A\":\"");
	memset(json + n, 'x', 1025);
	snprintf(json + n + 1025, sizeof(json) - n - 1025, "\"}}");
	assert_int_equal(parse(json, &m, err), -EINVAL);
	assert_non_null(strstr(err, "1025 bytes long"));
	n = (size_t)snprintf(json, sizeof(json),
			     "{\"runtime\":\"static\",\"handler\":\"h\",\"env\":{");
	for (int i = 0; i < 4; i++) {
		n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"K%d\":\"",
				      i ? "," : "", i);
		memset(json + n, 'v', 1000);
		n += 1000;
		json[n++] = '"';
	}
	snprintf(json + n, sizeof(json) - n, "}}");
	assert_int_equal(parse(json, &m, err), -EINVAL);
	assert_non_null(strstr(err, "over 3072 bytes in all"));

	/* Handler path: 255 bytes fine, 256 too long. */
	for (int len = 255; len <= 256; len++) {
		n = (size_t)snprintf(json, sizeof(json),
				     "{\"runtime\":\"static\",\"handler\":\"");
		for (int i = 0; i < len; i++)
			json[n++] = i % 2 ? 'a' : 'a' + (i % 20);
		snprintf(json + n, sizeof(json) - n, "\"}");
		if (len == 255) {
			assert_int_equal(parse(json, &m, err), 0);
			manifest_free(&m);
		} else {
			assert_int_equal(parse(json, &m, err), -EINVAL);
			assert_non_null(strstr(err, "\"handler\""));
		}
	}

	/* Over 64 KiB: refused before parsing. */
	memset(json, ' ', MANIFEST_MAX_BYTES + 1);
	assert_int_equal(manifest_parse(json, MANIFEST_MAX_BYTES + 1, &m, err,
					sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "at most 65536"));
}

static void test_check_path(void **state)
{
	char err[160];

	(void)state;
	assert_int_equal(manifest_check_path("a", 255, err, sizeof(err)), 0);
	assert_int_equal(manifest_check_path("a/b.c/...", 255, err, sizeof(err)), 0);
	assert_int_equal(manifest_check_path("..a/b..", 255, err, sizeof(err)), 0);
	assert_int_equal(manifest_check_path("abc", 2, err, sizeof(err)), -EINVAL);
	assert_int_equal(manifest_check_path("a/\x7f", 255, err, sizeof(err)), -EINVAL);
	assert_int_equal(manifest_check_path(".", 255, err, sizeof(err)), -EINVAL);
	assert_int_equal(manifest_check_path("..", 255, err, sizeof(err)), -EINVAL);
	assert_int_equal(manifest_check_path("/", 255, err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_python_handlers),
		cmocka_unit_test(test_full_and_round_trip),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_env_limits),
		cmocka_unit_test(test_check_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
