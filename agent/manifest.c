/*
 * manifest.c - ember.json: parse with jansson, validate every field, write
 * back with defaults. See manifest.h and docs/functions.md.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/manifest.h"
#include "log.h"

static const char *const runtimes[] = { "static", "lua", "python" };
/* Accepted names that are not built yet get their own message. */
static const char *const runtimes_later[] = { "go", "rust" };
static const char *const guests[] = { "micro", "linux" };
/* Micro guest command-line options that a KEY=VALUE word would trigger
 * (guest-micro/main.c: cmdline_find) instead of reaching the handler. */
static const char *const env_reserved[] = { "debug", "handler" };

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static bool in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s, list[i]))
			return true;
	return false;
}

/* A path the Python runtime imports as a module (sdk/python/runtime.c
 * checks the same): "handler.py", "app/main.py": every component an
 * identifier, the last one ending in ".py". The path is already clean
 * (manifest_check_path). */
static bool python_module_path(const char *path)
{
	size_t n = strlen(path);
	bool start = true;

	if (n < 4 || strcmp(path + n - 3, ".py"))
		return false;
	for (size_t i = 0; i < n - 3; i++) {
		char c = path[i];

		if (c == '/') {
			if (start)
				return false;
			start = true;
		} else if (c == '_' || (c >= 'a' && c <= 'z') ||
			   (c >= 'A' && c <= 'Z') ||
			   (!start && c >= '0' && c <= '9')) {
			start = false;
		} else {
			return false;
		}
	}
	return !start;
}

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number with a fraction or exponent";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "unknown";
}

int manifest_check_path(const char *path, size_t max, char *err,
			size_t errlen)
{
	size_t len = strlen(path), comp = 0;

	if (!len)
		return errbuf_fail(err, errlen, -EINVAL, "is empty");
	if (len > max)
		return errbuf_fail(err, errlen, -EINVAL,
				   "is %zu bytes long (at most %zu)", len, max);
	if (path[0] == '/')
		return errbuf_fail(err, errlen, -EINVAL,
				   "is absolute (paths are relative to the "
				   "archive's root)");
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)path[i];

		if (c && c != '/') {
			if (c < 0x20 || c == 0x7f)
				return errbuf_fail(err, errlen, -EINVAL,
						   "contains a control character "
						   "(byte 0x%02x)", c);
			if (++comp > 255)
				return errbuf_fail(err, errlen, -EINVAL,
						   "has a component over 255 bytes");
			continue;
		}
		/* End of a component: path[i - comp, i). */
		if (!comp)
			return errbuf_fail(err, errlen, -EINVAL,
					   c ? "has an empty component ('//')"
					     : "ends with '/'");
		if (comp == 1 && path[i - 1] == '.')
			return errbuf_fail(err, errlen, -EINVAL,
					   "has a '.' component");
		if (comp == 2 && path[i - 1] == '.' && path[i - 2] == '.')
			return errbuf_fail(err, errlen, -EINVAL,
					   "has a '..' component");
		comp = 0;
	}
	return 0;
}

/* Reads the string field `key` into out[cap]: 0, 1 when absent and not
 * required, or -EINVAL. */
static int get_string(json_t *root, const char *key, bool required,
		      char *out, size_t cap, char *err, size_t errlen)
{
	json_t *v = json_object_get(root, key);
	size_t len;

	if (!v) {
		if (required)
			return errbuf_fail(err, errlen, -EINVAL,
					   "\"%s\" is missing", key);
		return 1;
	}
	if (!json_is_string(v))
		return errbuf_fail(err, errlen, -EINVAL,
				   "\"%s\" must be a string, not %s", key,
				   json_type_name(v));
	len = json_string_length(v);
	if (len >= cap)
		return errbuf_fail(err, errlen, -EINVAL,
				   "\"%s\" is too long (%zu bytes, at most %zu)",
				   key, len, cap - 1);
	/* jansson refuses NUL inside strings unless JSON_ALLOW_NUL. */
	memcpy(out, json_string_value(v), len + 1);
	return 0;
}

static int get_u32(json_t *root, const char *key, uint32_t def, uint32_t min,
		   uint32_t max, uint32_t *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(root, key);
	json_int_t n;

	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v))
		return errbuf_fail(err, errlen, -EINVAL,
				   "\"%s\" must be an integer, not %s", key,
				   json_type_name(v));
	n = json_integer_value(v);
	if (n < (json_int_t)min || n > (json_int_t)max)
		return errbuf_fail(err, errlen, -EINVAL,
				   "\"%s\" is %lld, out of range %u..%u", key,
				   (long long)n, min, max);
	*out = (uint32_t)n;
	return 0;
}

static int check_env_key(const char *k, char *err, size_t errlen)
{
	size_t len = strlen(k);

	if (!len || len > MANIFEST_ENV_KEY_MAX)
		return errbuf_fail(err, errlen, -EINVAL,
				   "env key \"%.40s\" must be 1..%u bytes", k,
				   MANIFEST_ENV_KEY_MAX);
	if (!(k[0] == '_' || (k[0] >= 'A' && k[0] <= 'Z') ||
	      (k[0] >= 'a' && k[0] <= 'z')))
		goto bad;
	for (size_t i = 1; i < len; i++)
		if (!(k[i] == '_' || (k[i] >= 'A' && k[i] <= 'Z') ||
		      (k[i] >= 'a' && k[i] <= 'z') ||
		      (k[i] >= '0' && k[i] <= '9')))
			goto bad;
	if (in_list(k, env_reserved, ARRAY_LEN(env_reserved)))
		return errbuf_fail(err, errlen, -EINVAL,
				   "env key \"%s\" is reserved (a micro guest "
				   "option)", k);
	return 0;
bad:
	return errbuf_fail(err, errlen, -EINVAL,
			   "env key \"%.40s\" must match [A-Za-z_][A-Za-z0-9_]*",
			   k);
}

static int check_env_value(const char *k, const char *v, size_t len,
			   char *err, size_t errlen)
{
	if (len > MANIFEST_ENV_VALUE_MAX)
		return errbuf_fail(err, errlen, -EINVAL,
				   "env \"%s\" is %zu bytes long (at most %u)",
				   k, len, MANIFEST_ENV_VALUE_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c <= 0x20 || c >= 0x7f)
			return errbuf_fail(err, errlen, -EINVAL,
					   "env \"%s\": byte 0x%02x at %zu; values "
					   "are printable ASCII without spaces "
					   "(the micro guest gets them on its "
					   "command line)", k, c, i);
	}
	return 0;
}

static int parse_env(json_t *root, struct fn_manifest *m, char *err,
		     size_t errlen)
{
	json_t *env = json_object_get(root, "env"), *v;
	const char *k;
	size_t total = 0, n;

	if (!env)
		return 0;
	if (!json_is_object(env))
		return errbuf_fail(err, errlen, -EINVAL,
				   "\"env\" must be an object of strings, not %s",
				   json_type_name(env));
	n = json_object_size(env);
	if (n > MANIFEST_ENV_MAX)
		return errbuf_fail(err, errlen, -EINVAL,
				   "\"env\" has %zu variables (at most %u)", n,
				   MANIFEST_ENV_MAX);
	m->env = calloc(n ? n : 1, sizeof(*m->env));
	if (!m->env)
		return -ENOMEM;
	json_object_foreach(env, k, v) {
		size_t kl = strlen(k), vl;
		int ret;

		/* A key with an embedded NUL would be cut here: jansson
		 * refuses those without JSON_ALLOW_NUL. */
		ret = check_env_key(k, err, errlen);
		if (ret)
			return ret;
		if (!json_is_string(v))
			return errbuf_fail(err, errlen, -EINVAL,
					   "env \"%s\" must be a string, not %s", k,
					   json_type_name(v));
		vl = json_string_length(v);
		ret = check_env_value(k, json_string_value(v), vl, err, errlen);
		if (ret)
			return ret;
		total += kl + 1 + vl + 1;
		if (total > MANIFEST_ENV_TOTAL_MAX)
			return errbuf_fail(err, errlen, -EINVAL,
					   "\"env\" is over %u bytes in all",
					   MANIFEST_ENV_TOTAL_MAX);
		m->env[m->nr_env] = malloc(kl + 1 + vl + 1);
		if (!m->env[m->nr_env])
			return -ENOMEM;
		memcpy(m->env[m->nr_env], k, kl);
		m->env[m->nr_env][kl] = '=';
		memcpy(m->env[m->nr_env] + kl + 1, json_string_value(v), vl + 1);
		m->nr_env++;
	}
	return 0;
}

static int check_keys(json_t *root, char *err, size_t errlen)
{
	static const char *const known[] = {
		"runtime", "guest", "handler", "memory_mib", "timeout_ms",
		"max_concurrency", "env",
	};
	const char *k;
	json_t *v;

	json_object_foreach(root, k, v) {
		(void)v;
		if (!in_list(k, known, ARRAY_LEN(known)))
			return errbuf_fail(err, errlen, -EINVAL,
					   "unknown key \"%.64s\" (known: runtime, "
					   "guest, handler, memory_mib, timeout_ms, "
					   "max_concurrency, env)", k);
	}
	return 0;
}

static int parse_root(json_t *root, struct fn_manifest *m, char *err,
		      size_t errlen)
{
	char why[160];
	int ret;

	if (!json_is_object(root))
		return errbuf_fail(err, errlen, -EINVAL,
				   "the manifest must be a JSON object, not %s",
				   json_type_name(root));
	ret = check_keys(root, err, errlen);
	if (ret)
		return ret;

	ret = get_string(root, "runtime", true, m->runtime, sizeof(m->runtime),
			 err, errlen);
	if (ret < 0)
		return ret;
	if (!in_list(m->runtime, runtimes, ARRAY_LEN(runtimes)))
		return errbuf_fail(err, errlen, -EINVAL,
				   "\"runtime\" \"%s\" %s (supported: static, lua, "
				   "python)",
				   m->runtime,
				   in_list(m->runtime, runtimes_later,
					   ARRAY_LEN(runtimes_later)) ?
					   "is not available yet" :
					   "is unknown");

	ret = get_string(root, "guest", false, m->guest, sizeof(m->guest), err,
			 errlen);
	if (ret < 0)
		return ret;
	if (ret > 0)
		strcpy(m->guest, "micro");
	if (!in_list(m->guest, guests, ARRAY_LEN(guests)))
		return errbuf_fail(err, errlen, -EINVAL,
				   "\"guest\" \"%s\" is unknown (micro or linux)",
				   m->guest);

	ret = get_string(root, "handler", true, m->handler, sizeof(m->handler),
			 err, errlen);
	if (ret < 0)
		return ret;
	if (manifest_check_path(m->handler, MANIFEST_PATH_MAX, why,
				sizeof(why)))
		return errbuf_fail(err, errlen, -EINVAL,
				   "\"handler\" \"%.64s\" %s", m->handler, why);
	if (!strcmp(m->runtime, "python") && !python_module_path(m->handler))
		return errbuf_fail(err, errlen, -EINVAL,
				   "\"handler\" \"%.64s\" is not a Python module "
				   "path: a .py file whose directories and name "
				   "are identifiers (letters, digits, _; like "
				   "app/main.py)", m->handler);

	ret = get_u32(root, "memory_mib", MANIFEST_MEMORY_DEFAULT,
		      MANIFEST_MEMORY_MIN, MANIFEST_MEMORY_MAX, &m->memory_mib,
		      err, errlen);
	if (!ret)
		ret = get_u32(root, "timeout_ms", MANIFEST_TIMEOUT_DEFAULT,
			      MANIFEST_TIMEOUT_MIN, MANIFEST_TIMEOUT_MAX,
			      &m->timeout_ms, err, errlen);
	if (!ret)
		ret = get_u32(root, "max_concurrency",
			      MANIFEST_CONCURRENCY_DEFAULT,
			      MANIFEST_CONCURRENCY_MIN, MANIFEST_CONCURRENCY_MAX,
			      &m->max_concurrency, err, errlen);
	if (!ret)
		ret = parse_env(root, m, err, errlen);
	return ret;
}

int manifest_parse(const char *json, size_t len, struct fn_manifest *m,
		   char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;
	int ret;

	memset(m, 0, sizeof(*m));
	if (len > MANIFEST_MAX_BYTES)
		return errbuf_fail(err, errlen, -EINVAL,
				   "the manifest is %zu bytes (at most %u)", len,
				   MANIFEST_MAX_BYTES);
	/* Duplicate keys are refused: which one wins would be a guess. */
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
			  &jerr);
	if (!root)
		return errbuf_fail(err, errlen, -EINVAL,
				   "not valid JSON: %s (line %d, column %d)",
				   jerr.text, jerr.line, jerr.column);
	ret = parse_root(root, m, err, errlen);
	json_decref(root);
	if (ret == -ENOMEM)
		errbuf_fail(err, errlen, ret, "out of memory");
	if (ret)
		manifest_free(m);
	return ret;
}

void manifest_free(struct fn_manifest *m)
{
	for (size_t i = 0; i < m->nr_env; i++)
		free(m->env[i]);
	free(m->env);
	m->env = NULL;
	m->nr_env = 0;
}

json_t *manifest_to_json(const struct fn_manifest *m)
{
	json_t *o = json_object(), *env = json_object();

	if (!o || !env)
		goto err;
	for (size_t i = 0; i < m->nr_env; i++) {
		const char *eq = strchr(m->env[i], '=');
		char key[MANIFEST_ENV_KEY_MAX + 1];
		size_t kl = eq ? (size_t)(eq - m->env[i]) : 0;

		if (!eq || kl >= sizeof(key))
			goto err; /* not from manifest_parse() */
		memcpy(key, m->env[i], kl);
		key[kl] = '\0';
		if (json_object_set_new(env, key, json_string(eq + 1)))
			goto err;
	}
	if (json_object_set_new(o, "runtime", json_string(m->runtime)) ||
	    json_object_set_new(o, "guest", json_string(m->guest)) ||
	    json_object_set_new(o, "handler", json_string(m->handler)) ||
	    json_object_set_new(o, "memory_mib", json_integer(m->memory_mib)) ||
	    json_object_set_new(o, "timeout_ms", json_integer(m->timeout_ms)) ||
	    json_object_set_new(o, "max_concurrency",
				json_integer(m->max_concurrency)))
		goto err;
	/* json_object_set_new() takes the reference even when it fails. */
	if (json_object_set_new(o, "env", env))
		goto err_o;
	return o;
err:
	json_decref(env);
err_o:
	json_decref(o);
	return NULL;
}
