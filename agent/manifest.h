/*
 * manifest.h - a function's manifest, `ember.json` at the root of its
 * archive (docs/functions.md has the user-facing description).
 *
 * Owns: parsing the manifest (JSON, with jansson), validating every field as
 * tenant-controlled input (types, ranges, unknown keys refused, environment
 * keys and values checked against what the guest can carry, the handler path
 * relative and in canonical form), and writing it back as JSON with every
 * default filled in. Does not own: whether the handler exists or is
 * executable (deploy.c checks that against the extracted tree).
 *
 * Pure functions, no global state: any thread.
 */
#ifndef EMBER_AGENT_MANIFEST_H
#define EMBER_AGENT_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define MANIFEST_FILE "ember.json"
#define MANIFEST_MAX_BYTES (64u << 10)

#define MANIFEST_MEMORY_DEFAULT 128u
#define MANIFEST_MEMORY_MIN 16u
#define MANIFEST_MEMORY_MAX 3072u
#define MANIFEST_TIMEOUT_DEFAULT 3000u
#define MANIFEST_TIMEOUT_MIN 1u
#define MANIFEST_TIMEOUT_MAX 900000u
#define MANIFEST_CONCURRENCY_DEFAULT 10u
#define MANIFEST_CONCURRENCY_MIN 1u
#define MANIFEST_CONCURRENCY_MAX 1000u

/* The micro guest receives the environment on its kernel command line,
 * words split at spaces (guest-micro/loader.c): so values are printable
 * ASCII without spaces, there are at most 48 of them (the guest keeps 64
 * words) and all of them fit in 3 KiB of its 4 KiB command line. */
#define MANIFEST_ENV_MAX 48u
#define MANIFEST_ENV_KEY_MAX 128u
#define MANIFEST_ENV_VALUE_MAX 1024u
#define MANIFEST_ENV_TOTAL_MAX 3072u

#define MANIFEST_PATH_MAX 255u  /* the handler path, bytes */

struct fn_manifest {
	char runtime[16];          /* "static" | "lua" | "python" (later: go, rust) */
	char guest[8];             /* "micro" (default) | "linux" */
	char handler[256];         /* path inside the archive, relative, validated;
				      python: a module path (app/main.py) */
	uint32_t memory_mib;       /* default 128, range 16..3072 */
	uint32_t timeout_ms;       /* default 3000, range 1..900000 */
	uint32_t max_concurrency;  /* default 10, range 1..1000 */
	char **env;                /* "KEY=VALUE", nr_env entries, validated */
	size_t nr_env;
};

/*
 * Parses and validates the `len` bytes at `json` (not NUL-terminated) into
 * *m, which need not be initialised. Returns 0, or -EINVAL with a one-line
 * reason naming the field in err[errlen] (and *m left empty, safe to free);
 * -ENOMEM when out of memory. On success release *m with manifest_free().
 */
int manifest_parse(const char *json, size_t len, struct fn_manifest *m,
		   char *err, size_t errlen);

/* Releases what manifest_parse() allocated and empties *m; idempotent. */
void manifest_free(struct fn_manifest *m);

/* The manifest as a JSON object with every field, defaults included, env as
 * an object; NULL when out of memory. The caller owns the reference. The
 * result parses back into an equal manifest. */
json_t *manifest_to_json(const struct fn_manifest *m);

/*
 * Checks `path` as a path inside a function's tree: relative, 1..`max`
 * bytes, no empty, "." or ".." components, no trailing '/', no control
 * characters, components of at most 255 bytes. Returns 0 or -EINVAL with
 * the reason in err (prefixed by nothing: the caller names the path). Used
 * for the handler path and by the archive reader.
 */
int manifest_check_path(const char *path, size_t max, char *err,
			size_t errlen);

#endif
