/*
 * conf.c - guest-init's configuration file and command line: see conf.h.
 */
#include "conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (errlen) {
		if (line)
			n = snprintf(err, errlen, "line %u: ", line);
		if (n < 0 || (size_t)n >= errlen)
			n = 0;
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Appends a copy of s[n] to the NULL-terminated vector *v of *count
 * entries (at most max). 0, -E2BIG or -ENOMEM. */
static int vec_add(char ***v, size_t *count, size_t max, const char *s,
		   size_t n)
{
	char **nv, *copy;

	if (*count >= max)
		return -E2BIG;
	copy = strndup(s, n);
	if (!copy)
		return -ENOMEM;
	nv = realloc(*v, (*count + 2) * sizeof(**v));
	if (!nv) {
		free(copy);
		return -ENOMEM;
	}
	nv[(*count)++] = copy;
	nv[*count] = NULL;
	*v = nv;
	return 0;
}

static void vec_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

void conf_free(struct conf *c)
{
	/* argv[0] is the handler string itself. */
	if (c->argv)
		c->argv[0] = NULL;
	free(c->handler);
	if (c->argv) {
		for (size_t i = 1; i < c->argc; i++)
			free(c->argv[i]);
		free(c->argv);
	}
	vec_free(c->env);
	free(c->cwd);
	memset(c, 0, sizeof(*c));
}

/* A decimal id in 0..0xfffffffe: (uid_t)-1 means "unchanged" to setuid(2)
 * and must never be configured by accident. */
static int parse_id(const char *s, size_t n, uint32_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 10)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v >= 0xffffffffu)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* An absolute path: starts with '/', at most 4095 bytes. */
static int path_ok(const char *s, size_t n)
{
	return n >= 1 && n < 4096 && s[0] == '/';
}

static int env_ok(const char *s, size_t n)
{
	const char *eq = memchr(s, '=', n);

	return eq && eq != s;
}

static int set_once(char **dst, const char *v, size_t n)
{
	if (*dst)
		return -EEXIST;
	*dst = strndup(v, n);
	return *dst ? 0 : -ENOMEM;
}

/* One "KEY VALUE" line (no newline, no NUL: checked by the caller). */
static int parse_line(struct conf *c, const char *s, size_t n, unsigned ln,
		      int *have_uid, int *have_gid, char ***args, size_t *nargs,
		      char *err, size_t errlen)
{
	size_t k = 0, v;
	int ret;

	while (k < n && s[k] != ' ' && s[k] != '\t')
		k++;
	v = k;
	while (v < n && (s[v] == ' ' || s[v] == '\t'))
		v++;
	if (k == 7 && !memcmp(s, "handler", 7)) {
		if (!path_ok(s + v, n - v))
			return fail(err, errlen, ln,
				    "handler must be an absolute path");
		ret = set_once(&c->handler, s + v, n - v);
		if (ret == -EEXIST)
			return fail(err, errlen, ln, "handler given twice");
		return ret;
	}
	if (k == 3 && !memcmp(s, "arg", 3)) {
		/* Collected apart and put behind argv[0] at the end: the
		 * handler line may come after its arguments. */
		ret = vec_add(args, nargs, CONF_MAX_ARGS, s + v, n - v);
		if (ret == -E2BIG)
			return fail(err, errlen, ln, "more than %u arg lines",
				    CONF_MAX_ARGS);
		return ret;
	}
	if (k == 3 && !memcmp(s, "env", 3)) {
		if (!env_ok(s + v, n - v))
			return fail(err, errlen, ln,
				    "env wants KEY=VALUE with a non-empty KEY");
		ret = vec_add(&c->env, &c->nenv, CONF_MAX_ENV, s + v, n - v);
		if (ret == -E2BIG)
			return fail(err, errlen, ln, "more than %u env lines",
				    CONF_MAX_ENV);
		return ret;
	}
	if ((k == 3 && !memcmp(s, "uid", 3)) ||
	    (k == 3 && !memcmp(s, "gid", 3))) {
		int *have = s[0] == 'u' ? have_uid : have_gid;
		uint32_t *dst = s[0] == 'u' ? &c->uid : &c->gid;

		if (*have)
			return fail(err, errlen, ln, "%.3s given twice", s);
		if (parse_id(s + v, n - v, dst))
			return fail(err, errlen, ln,
				    "%.3s wants a number 0..4294967294", s);
		*have = 1;
		return 0;
	}
	if (k == 3 && !memcmp(s, "cwd", 3)) {
		if (!path_ok(s + v, n - v))
			return fail(err, errlen, ln,
				    "cwd must be an absolute path");
		ret = set_once(&c->cwd, s + v, n - v);
		if (ret == -EEXIST)
			return fail(err, errlen, ln, "cwd given twice");
		return ret;
	}
	return fail(err, errlen, ln, "unknown setting '%.*s'",
		    (int)(k > 32 ? 32 : k), s);
}

int conf_parse(const char *text, size_t len, struct conf *c, char *err,
	       size_t errlen)
{
	char **args = NULL;
	size_t nargs = 0, pos = 0;
	int have_uid = 0, have_gid = 0, have_path = 0, ret = 0;
	unsigned ln = 0;

	memset(c, 0, sizeof(*c));
	if (errlen)
		err[0] = '\0';
	if (len > CONF_MAX_BYTES) {
		fail(err, errlen, 0, "configuration over %u bytes",
		     CONF_MAX_BYTES);
		return -E2BIG;
	}
	if (memchr(text, '\0', len)) {
		ret = fail(err, errlen, 0, "configuration contains a NUL byte");
		goto out;
	}
	while (pos < len) {
		const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos, i = 0;

		pos += n + (nl != NULL);
		ln++;
		if (n > CONF_MAX_LINE) {
			ret = fail(err, errlen, ln, "line over %u bytes",
				   CONF_MAX_LINE);
			goto out;
		}
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i == n || s[i] == '#')
			continue;
		if (i) {
			ret = fail(err, errlen, ln,
				   "a setting must start at the beginning of its line");
			goto out;
		}
		ret = parse_line(c, s, n, ln, &have_uid, &have_gid, &args,
				 &nargs, err, errlen);
		if (ret)
			goto out;
	}
	if (!c->handler) {
		ret = fail(err, errlen, 0, "no handler line");
		goto out;
	}
	/* argv = handler, then the arg lines in order. */
	c->argv = calloc(nargs + 2, sizeof(*c->argv));
	if (!c->argv) {
		ret = -ENOMEM;
		goto out;
	}
	c->argv[0] = c->handler;
	for (size_t i = 0; i < nargs; i++) {
		c->argv[i + 1] = args[i];
		args[i] = NULL;
	}
	c->argc = nargs + 1;
	for (size_t i = 0; i < c->nenv; i++)
		if (!strncmp(c->env[i], "PATH=", 5))
			have_path = 1;
	if (!have_path) {
		ret = vec_add(&c->env, &c->nenv, CONF_MAX_ENV + 1,
			      CONF_DEFAULT_PATH, strlen(CONF_DEFAULT_PATH));
		if (ret)
			goto out;
	}
	if (!have_uid)
		c->uid = CONF_DEFAULT_UID;
	if (!have_gid)
		c->gid = c->uid;
	if (!c->cwd) {
		c->cwd = strdup("/");
		if (!c->cwd)
			ret = -ENOMEM;
	}
out:
	vec_free(args);
	if (ret) {
		if (ret == -ENOMEM && errlen)
			snprintf(err, errlen, "out of memory");
		conf_free(c);
	}
	return ret;
}

int conf_parse_cmdline(const char *text, size_t len, struct conf_cmdline *cl,
		       char *err, size_t errlen)
{
	static const char key[] = "ember.conf=";
	size_t pos = 0;

	memset(cl, 0, sizeof(*cl));
	memcpy(cl->conf_path, CONF_DEFAULT_FILE, sizeof(CONF_DEFAULT_FILE));
	if (errlen)
		err[0] = '\0';
	while (pos < len) {
		size_t s, n;

		while (pos < len && (text[pos] == ' ' || text[pos] == '\t' ||
				     text[pos] == '\n' || text[pos] == '\0'))
			pos++;
		s = pos;
		while (pos < len && text[pos] != ' ' && text[pos] != '\t' &&
		       text[pos] != '\n' && text[pos] != '\0')
			pos++;
		n = pos - s;
		if (n == 11 && !memcmp(text + s, "ember.debug", 11)) {
			cl->verbose = 1;
		} else if (n >= sizeof(key) - 1 &&
			   !memcmp(text + s, key, sizeof(key) - 1)) {
			const char *v = text + s + sizeof(key) - 1;
			size_t vl = n - (sizeof(key) - 1);

			if (!vl || v[0] != '/' || vl >= sizeof(cl->conf_path))
				return fail(err, errlen, 0,
					    "ember.conf= wants an absolute path "
					    "under %zu bytes",
					    sizeof(cl->conf_path));
			memcpy(cl->conf_path, v, vl);
			cl->conf_path[vl] = '\0';
		}
	}
	return 0;
}
