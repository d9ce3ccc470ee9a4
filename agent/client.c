/*
 * client.c - emberd's HTTP API from C, on libcurl (see client.h).
 *
 * One easy handle per client, reset before each request (its connection
 * cache survives curl_easy_reset, so calls reuse one keep-alive
 * connection). Bodies are collected into a buffer capped at
 * EMBER_CLIENT_MAX_BODY; the X-Ember-* headers of an invoke are picked up
 * by the header callback.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/client.h"

struct ember_client {
	CURL *curl;
	char *endpoint;
	char *unix_path;         /* unix: endpoints */
	char *base;              /* "http://localhost" or the endpoint URL */
	char *auth;              /* "Authorization: Bearer ..." */
	long timeout_ms;
	struct ember_client_error err;
	char curl_err[CURL_ERROR_SIZE];
};

struct buf {
	char *p;
	size_t len, cap;
	bool over;
};

struct response {
	long status;
	struct buf body;
	struct ember_invoke_result *inv; /* headers wanted, or NULL */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_ret;

static void curl_init(void)
{
	curl_init_ret = curl_global_init(CURL_GLOBAL_DEFAULT);
}

bool ember_client_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n < 1 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      (c == '-' && i > 0)))
			return false;
	}
	return true;
}

static int set_error(struct ember_client *c, int ret, long status,
		     const char *code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int set_error(struct ember_client *c, int ret, long status,
		     const char *code, const char *fmt, ...)
{
	va_list ap;

	c->err.http_status = status;
	snprintf(c->err.code, sizeof(c->err.code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(c->err.message, sizeof(c->err.message), fmt, ap);
	va_end(ap);
	/* One line: a server or curl message never breaks the caller's
	 * output. */
	for (char *p = c->err.message; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return ret;
}

struct ember_client *ember_client_new(const char *endpoint, const char *token,
				      char *err, size_t errlen)
{
	struct ember_client *c;

	if (!endpoint)
		endpoint = EMBER_CLIENT_DEFAULT_ENDPOINT;
	pthread_once(&curl_once, curl_init);
	if (curl_init_ret != CURLE_OK) {
		snprintf(err, errlen, "libcurl: %s",
			 curl_easy_strerror(curl_init_ret));
		return NULL;
	}
	if (token) {
		for (const char *p = token; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f) {
				snprintf(err, errlen, "the token contains a "
					 "space or control character");
				return NULL;
			}
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto nomem;
	c->endpoint = strdup(endpoint);
	if (!c->endpoint)
		goto nomem;
	if (!strncmp(endpoint, "unix:", 5)) {
		if (!endpoint[5]) {
			snprintf(err, errlen, "endpoint \"%s\": no socket path "
				 "after unix:", endpoint);
			goto fail;
		}
		c->unix_path = strdup(endpoint + 5);
		c->base = strdup("http://localhost");
	} else if (!strncmp(endpoint, "http://", 7) ||
		   !strncmp(endpoint, "https://", 8)) {
		size_t n = strlen(endpoint);

		while (n > 8 && endpoint[n - 1] == '/')
			n--;
		c->base = strndup(endpoint, n);
		if (c->base && strchr(c->base + 8, '/')) {
			snprintf(err, errlen, "endpoint \"%s\": give only "
				 "http(s)://HOST:PORT, no path", endpoint);
			goto fail;
		}
	} else {
		snprintf(err, errlen, "endpoint \"%s\" is neither unix:/PATH nor "
			 "http(s)://HOST:PORT", endpoint);
		goto fail;
	}
	if (!c->base || (!strncmp(endpoint, "unix:", 5) && !c->unix_path))
		goto nomem;
	if (token && asprintf(&c->auth, "Authorization: Bearer %s", token) < 0) {
		c->auth = NULL;
		goto nomem;
	}
	c->curl = curl_easy_init();
	if (!c->curl)
		goto nomem;
	return c;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	ember_client_free(c);
	return NULL;
}

void ember_client_free(struct ember_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	if (c->auth) {
		/* The token does not linger in freed memory. */
		memset(c->auth, 0, strlen(c->auth));
		free(c->auth);
	}
	free(c->base);
	free(c->unix_path);
	free(c->endpoint);
	free(c);
}

const struct ember_client_error *ember_client_error(const struct ember_client *c)
{
	return &c->err;
}

void ember_client_set_timeout(struct ember_client *c, long ms)
{
	c->timeout_ms = ms > 0 ? ms : 0;
}

const char *ember_client_endpoint(const struct ember_client *c)
{
	return c->endpoint;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct buf *b = opaque;
	size_t n = size * nmemb;

	if (b->len + n > EMBER_CLIENT_MAX_BODY) {
		b->over = true;
		return 0; /* aborts the transfer */
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *p = realloc(b->p, cap);

		if (!p)
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

/* "Name: value\r\n" -> the value, if the header is `name`. */
static const char *header_value(const char *line, size_t n, const char *name,
				char *out, size_t cap)
{
	size_t nl = strlen(name), vl;
	const char *v;

	if (n <= nl + 1 || strncasecmp(line, name, nl) || line[nl] != ':')
		return NULL;
	v = line + nl + 1;
	while (v < line + n && (*v == ' ' || *v == '\t'))
		v++;
	vl = (size_t)(line + n - v);
	while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
		vl--;
	if (vl >= cap)
		vl = cap - 1;
	memcpy(out, v, vl);
	out[vl] = '\0';
	return out;
}

static int64_t parse_i64(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0)
		return -1;
	return v;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct response *r = opaque;
	struct ember_invoke_result *inv = r->inv;
	size_t n = size * nmemb;
	char v[64];

	if (!inv)
		return n;
	if (header_value(data, n, "X-Ember-Request-Id", inv->request_id,
			 sizeof(inv->request_id)))
		return n;
	if (header_value(data, n, "X-Ember-Start", v, sizeof(v)))
		inv->cold = !strcmp(v, "cold");
	else if (header_value(data, n, "X-Ember-Function-Status", v, sizeof(v)))
		inv->function_error = !strcmp(v, "error");
	else if (header_value(data, n, "X-Ember-Duration-Us", v, sizeof(v)))
		inv->duration_us = parse_i64(v);
	else if (header_value(data, n, "X-Ember-Billed-Ms", v, sizeof(v)))
		inv->billed_ms = parse_i64(v);
	else if (header_value(data, n, "X-Ember-Init-Us", v, sizeof(v)))
		inv->init_us = parse_i64(v);
	return n;
}

/* base + head + a + mid + b, the names a and b percent-encoded. */
static char *make_url(struct ember_client *c, const char *head, const char *a,
		      const char *mid, const char *b)
{
	char *ea = NULL, *eb = NULL, *url = NULL;

	if (a && !(ea = curl_easy_escape(c->curl, a, 0)))
		goto out;
	if (b && !(eb = curl_easy_escape(c->curl, b, 0)))
		goto out;
	if (asprintf(&url, "%s%s%s%s%s", c->base, head, ea ? ea : "",
		     mid ? mid : "", eb ? eb : "") < 0)
		url = NULL;
out:
	curl_free(ea);
	curl_free(eb);
	return url;
}

/* A server error body: {"error": {"code": "...", "message": "..."}}. */
static int server_error(struct ember_client *c, const struct response *r)
{
	json_t *j = r->body.p ? json_loadb(r->body.p, r->body.len, 0, NULL) : NULL;
	json_t *e = json_object_get(j, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	char fallback[32];
	int ret;

	snprintf(fallback, sizeof(fallback), "http_%ld", r->status);
	if (code && msg)
		ret = set_error(c, -EPROTO, r->status, code, "%s", msg);
	else
		ret = set_error(c, -EPROTO, r->status, fallback,
				"HTTP %ld with %s", r->status,
				r->body.len ? "a body that is not an API error" :
					      "no body");
	json_decref(j);
	return ret;
}

static int transport_error(struct ember_client *c, CURLcode cc,
			   const struct response *r)
{
	const char *why = c->curl_err[0] ? c->curl_err : curl_easy_strerror(cc);

	if (r->body.over)
		return set_error(c, -EBADMSG, 0, "bad_response",
				 "the answer is over %u bytes",
				 EMBER_CLIENT_MAX_BODY);
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
		/* curl's own words name "localhost port 80" for a Unix
		 * socket: say what is wrong with the socket instead. */
		if (c->unix_path) {
			struct stat sb;

			if (stat(c->unix_path, &sb))
				return set_error(c, -ECONNREFUSED, 0, "transport",
						 "cannot reach emberd: %s: %s (is "
						 "emberd running?)", c->unix_path,
						 strerror(errno));
			return set_error(c, -ECONNREFUSED, 0, "transport",
					 "cannot reach emberd: %s: %s",
					 c->unix_path, S_ISSOCK(sb.st_mode) ?
					 "nothing is listening" :
					 "not a socket");
		}
		/* fall through */
	case CURLE_COULDNT_RESOLVE_HOST:
		return set_error(c, -ECONNREFUSED, 0, "transport",
				 "cannot reach emberd at %s: %s", c->endpoint, why);
	case CURLE_OPERATION_TIMEDOUT:
		return set_error(c, -ETIMEDOUT, 0, "transport",
				 "no answer from emberd at %s in %ld ms",
				 c->endpoint, c->timeout_ms);
	case CURLE_OUT_OF_MEMORY:
		return set_error(c, -ENOMEM, 0, "transport", "out of memory");
	default:
		return set_error(c, -EIO, 0, "transport", "%s: %s", c->endpoint,
				 why);
	}
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * One request. `body` NULL = none. A 2xx status is success; then, when
 * `out` is not NULL, the body must be JSON. r->body is left for the caller
 * (invoke) when out is NULL.
 */
static int request(struct ember_client *c, const char *method,
		   const char *url, const void *body, size_t len,
		   const char *content_type, struct response *r, json_t **out)
{
	struct curl_slist *h = NULL, *h2;
	char ct[96];
	CURLcode cc;
	int ret = 0;

	memset(&c->err, 0, sizeof(c->err));
	c->curl_err[0] = '\0';
	if (out)
		*out = NULL;
	if (!url)
		return set_error(c, -ENOMEM, 0, "transport", "out of memory");
	curl_easy_reset(c->curl);
	/* "Expect:" off: no 100-continue round trip before a body. */
	h = curl_slist_append(h, "Expect:");
	if (h && c->auth && (h2 = curl_slist_append(h, c->auth)))
		h = h2;
	if (h && content_type) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
		if ((h2 = curl_slist_append(h, ct)))
			h = h2;
	}
	if (!h)
		return set_error(c, -ENOMEM, 0, "transport", "out of memory");
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	if (c->unix_path)
		curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)len);
	} else if (!strcmp(method, "GET")) {
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)0);
	}
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &r->body);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
	cc = curl_easy_perform(c->curl);
	curl_slist_free_all(h);
	if (cc != CURLE_OK)
		return transport_error(c, cc, r);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->status < 200 || r->status > 299)
		return server_error(c, r);
	if (out && r->status != 204) {
		json_error_t je;

		*out = r->body.p ? json_loadb(r->body.p, r->body.len, 0, &je) : NULL;
		if (!*out)
			ret = set_error(c, -EBADMSG, r->status, "bad_response",
					"HTTP %ld: the answer is not JSON", r->status);
	}
	return ret;
}

/* A JSON route: method + URL (+ a JSON body), the answer parsed. */
static int call_json(struct ember_client *c, const char *method, char *url,
		     json_t *in, json_t **out)
{
	struct response r = { 0 };
	char *body = NULL;
	int ret;

	if (in && !(body = json_dumps(in, JSON_COMPACT))) {
		free(url);
		return set_error(c, -ENOMEM, 0, "transport", "out of memory");
	}
	ret = request(c, method, url, body, body ? strlen(body) : 0,
		      body ? "application/json" : NULL, &r, out);
	free(r.body.p);
	free(body);
	free(url);
	return ret;
}

int ember_client_health(struct ember_client *c, json_t **out)
{
	return call_json(c, "GET", make_url(c, "/v1/health", NULL, NULL, NULL),
			 NULL, out);
}

int ember_client_tenant_create(struct ember_client *c, const char *name,
			       json_t **out)
{
	json_t *in = json_pack("{s:s}", "name", name ? name : "");
	int ret;

	if (!in)
		return set_error(c, -ENOMEM, 0, "transport", "out of memory");
	ret = call_json(c, "POST", make_url(c, "/v1/tenants", NULL, NULL, NULL),
			in, out);
	json_decref(in);
	return ret;
}

int ember_client_tenant_list(struct ember_client *c, json_t **out)
{
	return call_json(c, "GET", make_url(c, "/v1/tenants", NULL, NULL, NULL),
			 NULL, out);
}

int ember_client_tenant_delete(struct ember_client *c, const char *name)
{
	return call_json(c, "DELETE", make_url(c, "/v1/tenants/", name, NULL, NULL),
			 NULL, NULL);
}

int ember_client_token_create(struct ember_client *c, const char *tenant,
			      json_t **out)
{
	return call_json(c, "POST",
			 make_url(c, "/v1/tenants/", tenant, "/tokens", NULL),
			 NULL, out);
}

int ember_client_token_list(struct ember_client *c, const char *tenant,
			    json_t **out)
{
	return call_json(c, "GET",
			 make_url(c, "/v1/tenants/", tenant, "/tokens", NULL),
			 NULL, out);
}

int ember_client_token_revoke(struct ember_client *c, const char *tenant,
			      const char *id)
{
	return call_json(c, "DELETE",
			 make_url(c, "/v1/tenants/", tenant, "/tokens/", id),
			 NULL, NULL);
}

int ember_client_function_list(struct ember_client *c, json_t **out)
{
	return call_json(c, "GET", make_url(c, "/v1/functions", NULL, NULL, NULL),
			 NULL, out);
}

int ember_client_function_get(struct ember_client *c, const char *name,
			      json_t **out)
{
	return call_json(c, "GET", make_url(c, "/v1/functions/", name, NULL, NULL),
			 NULL, out);
}

int ember_client_function_versions(struct ember_client *c, const char *name,
				   json_t **out)
{
	return call_json(c, "GET",
			 make_url(c, "/v1/functions/", name, "/versions", NULL),
			 NULL, out);
}

int ember_client_function_delete(struct ember_client *c, const char *name)
{
	return call_json(c, "DELETE",
			 make_url(c, "/v1/functions/", name, NULL, NULL), NULL,
			 NULL);
}

int ember_client_deploy(struct ember_client *c, const char *name,
			const void *archive, size_t len, json_t **out)
{
	struct response r = { 0 };
	char *url = make_url(c, "/v1/functions/", name, NULL, NULL);
	json_t *j = NULL, *d;
	int ret;

	if (out)
		*out = NULL;
	/* A zero-length body is still a body (the server refuses it). */
	ret = request(c, "PUT", url, archive ? archive : "", len,
		      "application/octet-stream", &r, &j);
	free(url);
	free(r.body.p);
	if (ret)
		return ret;
	d = json_object_get(j, "deploy");
	if (!json_is_object(d) || !json_is_string(json_object_get(d, "id"))) {
		json_decref(j);
		return set_error(c, -EBADMSG, r.status, "bad_response",
				 "the deploy answer has no deploy.id");
	}
	if (out)
		*out = json_incref(d);
	json_decref(j);
	return 0;
}

int ember_client_deploy_get(struct ember_client *c, const char *id,
			    json_t **out)
{
	return call_json(c, "GET", make_url(c, "/v1/deploys/", id, NULL, NULL),
			 NULL, out);
}

int ember_client_deploy_wait(struct ember_client *c, const char *id,
			     unsigned poll_ms, unsigned timeout_ms,
			     ember_client_step_fn on_step, void *ctx,
			     json_t **out)
{
	uint64_t t0 = now_us();
	size_t seen = 0;
	json_t *d = NULL;

	if (out)
		*out = NULL;
	if (!poll_ms)
		poll_ms = 50;
	for (;;) {
		json_t *steps;
		const char *state;
		int ret = ember_client_deploy_get(c, id, &d);

		if (ret)
			return ret;
		steps = json_object_get(d, "steps");
		for (size_t i = seen; json_is_array(steps) &&
				      i < json_array_size(steps); i++) {
			if (on_step)
				on_step(ctx, json_array_get(steps, i));
			seen = i + 1;
		}
		state = json_string_value(json_object_get(d, "state"));
		if (!state) {
			json_decref(d);
			return set_error(c, -EBADMSG, 200, "bad_response",
					 "the deploy has no state");
		}
		if (strcmp(state, "running"))
			break;
		json_decref(d);
		d = NULL;
		if (timeout_ms && now_us() - t0 > (uint64_t)timeout_ms * 1000u)
			return set_error(c, -ETIMEDOUT, 0, "transport",
					 "deploy %s still running after %u ms",
					 id, timeout_ms);
		usleep(poll_ms * 1000u);
	}
	if (out)
		*out = d;
	else
		json_decref(d);
	return 0;
}

/* url + "?k=v&k=v" for the pairs of kv (NULL-terminated, NULL values
 * skipped), values percent-encoded; frees url. */
static char *with_query(struct ember_client *c, char *url,
			const char *const *kv)
{
	char *out = url;

	for (size_t i = 0; out && kv[i]; i += 2) {
		char *e, *next;

		if (!kv[i + 1])
			continue;
		e = curl_easy_escape(c->curl, kv[i + 1], 0);
		if (!e || asprintf(&next, "%s%c%s=%s", out,
				   strchr(out, '?') ? '&' : '?', kv[i], e) < 0)
			next = NULL;
		curl_free(e);
		free(out);
		out = next;
	}
	return out;
}

static char *usage_url(struct ember_client *c,
		       const struct ember_usage_query *q, bool csv)
{
	const char *kv[] = { "from", q->from, "to", q->to,
			     "function", q->function, "tenant", q->tenant,
			     "group_by", q->group_by,
			     "format", csv ? "csv" : NULL, NULL };

	return with_query(c, make_url(c, "/v1/usage", NULL, NULL, NULL), kv);
}

int ember_client_usage(struct ember_client *c,
		       const struct ember_usage_query *q, json_t **out)
{
	return call_json(c, "GET", usage_url(c, q, false), NULL, out);
}

int ember_client_usage_csv(struct ember_client *c,
			   const struct ember_usage_query *q, char **csv,
			   size_t *len)
{
	struct response r = { 0 };
	char *url = usage_url(c, q, true);
	int ret = request(c, "GET", url, NULL, 0, NULL, &r, NULL);

	free(url);
	*csv = NULL;
	*len = 0;
	if (ret) {
		free(r.body.p);
		return ret;
	}
	*csv = r.body.p ? r.body.p : calloc(1, 1);
	*len = r.body.len;
	return *csv ? 0 : set_error(c, -ENOMEM, 0, "transport",
				    "out of memory");
}

int ember_client_logs(struct ember_client *c, const char *name,
		      const struct ember_logs_query *q, json_t **out)
{
	char after[24], tail[16];
	const char *kv[] = { "request_id", q->request_id, "since", q->since,
			     "after", NULL, "tail", NULL, NULL };

	if (q->after >= 0) {
		snprintf(after, sizeof(after), "%lld", (long long)q->after);
		kv[5] = after;
	}
	if (q->tail) {
		snprintf(tail, sizeof(tail), "%u", q->tail);
		kv[7] = tail;
	}
	return call_json(c, "GET",
			 with_query(c, make_url(c, "/v1/functions/", name,
						"/logs", NULL), kv),
			 NULL, out);
}

int ember_client_invoke(struct ember_client *c, const char *name,
			const void *payload, size_t len,
			struct ember_invoke_result *res)
{
	struct response r = { 0 };
	char *url = make_url(c, "/v1/functions/", name, "/invoke", NULL);
	uint64_t t0;
	int ret;

	memset(res, 0, sizeof(*res));
	res->duration_us = res->billed_ms = res->init_us = -1;
	r.inv = res;
	t0 = now_us();
	ret = request(c, "POST", url, payload ? payload : "", len,
		      "application/octet-stream", &r, NULL);
	res->client_us = now_us() - t0;
	free(url);
	if (ret) {
		free(r.body.p);
		return ret;
	}
	if (!r.body.p) {
		r.body.p = calloc(1, 1);
		if (!r.body.p)
			return set_error(c, -ENOMEM, 0, "transport",
					 "out of memory");
	}
	res->body = r.body.p;
	res->len = r.body.len;
	return 0;
}

void ember_invoke_result_free(struct ember_invoke_result *res)
{
	free(res->body);
	res->body = NULL;
	res->len = 0;
}
