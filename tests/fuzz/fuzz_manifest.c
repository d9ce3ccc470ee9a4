/* libFuzzer target: ember.json parsing and validation (agent/manifest.c).
 * Any bytes go through manifest_parse(); what it accepts must satisfy every
 * rule it promises (ranges, a clean relative handler path, env words the
 * micro guest can carry) and survive manifest_to_json() and a second parse
 * unchanged. Seeds in tests/data/fuzz_manifest/. */
// link: agent/manifest.c vmm/log.c
// libs: -ljansson
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct fn_manifest *m)
{
	char why[160];
	size_t total = 0;

	if (m->memory_mib < MANIFEST_MEMORY_MIN ||
	    m->memory_mib > MANIFEST_MEMORY_MAX ||
	    m->timeout_ms < MANIFEST_TIMEOUT_MIN ||
	    m->timeout_ms > MANIFEST_TIMEOUT_MAX ||
	    m->max_concurrency < MANIFEST_CONCURRENCY_MIN ||
	    m->max_concurrency > MANIFEST_CONCURRENCY_MAX ||
	    manifest_check_path(m->handler, MANIFEST_PATH_MAX, why, sizeof(why)) ||
	    m->nr_env > MANIFEST_ENV_MAX)
		abort();
	for (size_t i = 0; i < m->nr_env; i++) {
		const char *eq = strchr(m->env[i], '=');

		if (!eq || eq == m->env[i])
			abort();
		for (const char *p = m->env[i]; *p; p++)
			if (*p <= ' ' || *p >= 0x7f)
				abort();
		total += strlen(m->env[i]) + 1;
	}
	if (total > MANIFEST_ENV_TOTAL_MAX)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fn_manifest m, back;
	char err[256], *dump;
	json_t *j;

	if (manifest_parse((const char *)data, size, &m, err, sizeof(err))) {
		if (!err[0] || m.env || m.nr_env)
			abort();
		return 0;
	}
	check(&m);
	j = manifest_to_json(&m);
	if (!j)
		abort();
	dump = json_dumps(j, JSON_COMPACT);
	if (!dump || manifest_parse(dump, strlen(dump), &back, err, sizeof(err)))
		abort();
	if (strcmp(back.runtime, m.runtime) || strcmp(back.guest, m.guest) ||
	    strcmp(back.handler, m.handler) || back.memory_mib != m.memory_mib ||
	    back.timeout_ms != m.timeout_ms ||
	    back.max_concurrency != m.max_concurrency || back.nr_env != m.nr_env)
		abort();
	for (size_t i = 0; i < m.nr_env; i++)
		if (strcmp(back.env[i], m.env[i]))
			abort();
	free(dump);
	json_decref(j);
	manifest_free(&back);
	manifest_free(&m);
	return 0;
}
