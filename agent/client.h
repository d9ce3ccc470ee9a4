/*
 * client.h - the C client of emberd's HTTP API, for programs that embed
 * Ember (the `ember` command is one). Link build/libember-client.a
 * -lcurl -ljansson.
 *
 * Owns: talking HTTP/1.1 to emberd over its Unix socket or TCP (libcurl),
 * one function per route of the API (agent/openapi.yaml, CONTRACTS.md
 * section 3), the bearer token, and turning the server's answers into
 * results: JSON bodies as jansson values, invoke answers with their
 * X-Ember-* headers, errors as the server's own code and message.
 *
 * Endpoints: "unix:/run/ember/emberd.sock" (a Unix socket path) or
 * "http://HOST:PORT" / "https://HOST:PORT". Names in paths are
 * percent-encoded, so a hostile name reaches the server as that name (and
 * is refused there), never as another path.
 *
 * Errors: every call returns 0 or a negative errno; the details are in
 * ember_client_error():
 *   -EPROTO        the server answered with an error (http_status, and the
 *                  code and message of its {"error": {...}} body)
 *   -ECONNREFUSED  emberd is not there (no socket, nothing listening)
 *   -ETIMEDOUT     no answer in time (ember_client_set_timeout)
 *   -EIO           another transport failure (code "transport")
 *   -EBADMSG       an answer that is not what the API promises
 *   -EINVAL, -ENOMEM
 *
 * Threads: a client is one connection (kept alive between calls) and is
 * used by one thread at a time; use one client per thread. The first
 * ember_client_new() initialises libcurl (curl_global_init), once.
 */
#ifndef EMBER_AGENT_CLIENT_H
#define EMBER_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define EMBER_CLIENT_DEFAULT_ENDPOINT "unix:/run/ember/emberd.sock"
/* Bodies this client accepts: an invoke result is at most 6 MiB. */
#define EMBER_CLIENT_MAX_BODY (16u << 20)

struct ember_client;

struct ember_client_error {
	long http_status;      /* 0 when there was no HTTP answer */
	char code[64];         /* the server's code, or "transport", "bad_response" */
	char message[512];     /* one line */
};

/*
 * A client for `endpoint` (NULL: EMBER_CLIENT_DEFAULT_ENDPOINT) with the
 * bearer `token` (NULL: no Authorization header; every route but health
 * then answers 401). Returns NULL with the reason in err[errlen] (a bad
 * endpoint, no memory).
 */
struct ember_client *ember_client_new(const char *endpoint, const char *token,
				      char *err, size_t errlen);
void ember_client_free(struct ember_client *c);

/* Why the last call failed (valid until the next call). */
const struct ember_client_error *ember_client_error(const struct ember_client *c);

/* Gives up on a request after `ms` milliseconds (0 = never, the default;
 * invocations are bounded by the function's own timeout on the server). */
void ember_client_set_timeout(struct ember_client *c, long ms);

/* The endpoint as given (for messages). */
const char *ember_client_endpoint(const struct ember_client *c);

/*
 * Routes answered with JSON: on success *out (when out is not NULL) is the
 * parsed body, owned by the caller (json_decref); routes that answer 204
 * take no out.
 */
int ember_client_health(struct ember_client *c, json_t **out);
int ember_client_tenant_create(struct ember_client *c, const char *name,
			       json_t **out);
int ember_client_tenant_list(struct ember_client *c, json_t **out);
int ember_client_tenant_delete(struct ember_client *c, const char *name);
int ember_client_token_create(struct ember_client *c, const char *tenant,
			      json_t **out);
int ember_client_token_list(struct ember_client *c, const char *tenant,
			    json_t **out);
int ember_client_token_revoke(struct ember_client *c, const char *tenant,
			      const char *id);
int ember_client_function_list(struct ember_client *c, json_t **out);
int ember_client_function_get(struct ember_client *c, const char *name,
			      json_t **out);
int ember_client_function_versions(struct ember_client *c, const char *name,
				   json_t **out);
int ember_client_function_delete(struct ember_client *c, const char *name);

/* PUT /v1/functions/NAME with the archive (tar or tar.gz): *out is the
 * answer's "deploy" object ({"id","function","state","url"}). */
int ember_client_deploy(struct ember_client *c, const char *name,
			const void *archive, size_t len, json_t **out);
/* GET /v1/deploys/ID: {"id","function","state","steps",...}. */
int ember_client_deploy_get(struct ember_client *c, const char *id,
			    json_t **out);

/* Called for each step of a deploy as it appears: the step object
 * ({"step","detail","at"}). */
typedef void (*ember_client_step_fn)(void *ctx, const json_t *step);

/*
 * Polls GET /v1/deploys/ID every poll_ms (0: 50 ms) until its state is no
 * longer "running" or timeout_ms (0: never) passed (-ETIMEDOUT), calling
 * on_step for every new step in order. *out is the final deploy object;
 * a deploy that failed is still a success of this call (state "failed",
 * its "error" says why).
 */
int ember_client_deploy_wait(struct ember_client *c, const char *id,
			     unsigned poll_ms, unsigned timeout_ms,
			     ember_client_step_fn on_step, void *ctx,
			     json_t **out);

struct ember_invoke_result {
	void *body;              /* the function's result (malloc'd, NUL after len) */
	size_t len;
	char request_id[17];     /* X-Ember-Request-Id, "" if absent */
	bool cold;               /* X-Ember-Start: cold */
	bool function_error;     /* X-Ember-Function-Status: error */
	int64_t duration_us;     /* X-Ember-Duration-Us, -1 if absent */
	int64_t billed_ms;       /* X-Ember-Billed-Ms, -1 if absent */
	int64_t init_us;         /* X-Ember-Init-Us (cold only), -1 if absent */
	uint64_t client_us;      /* request sent -> answer read, this client's clock */
};

/*
 * POST /v1/functions/NAME/invoke with `len` bytes of payload. On 200, 0
 * with *res filled (a function error is still 0: res->function_error, the
 * body is its description). Otherwise -EPROTO etc. (502 function_crashed,
 * 504 function_timeout, 409 not_deployed, 413, 429 ...). Release *res with
 * ember_invoke_result_free() either way.
 */
int ember_client_invoke(struct ember_client *c, const char *name,
			const void *payload, size_t len,
			struct ember_invoke_result *res);
void ember_invoke_result_free(struct ember_invoke_result *res);

/*
 * Usage and logs (docs/metering.md). Each string is a query argument,
 * NULL when absent: times as 2026-12-01, 2026-12-01T10:00:00Z, now, -24h.
 */
struct ember_usage_query {
	const char *from, *to;
	const char *function;
	const char *tenant;          /* admin only */
	const char *group_by;        /* function, day, hour, function,day ... */
};

/* GET /v1/usage: *out the JSON answer ({"usage", "total", ...}). */
int ember_client_usage(struct ember_client *c,
		       const struct ember_usage_query *q, json_t **out);
/* The same rows as CSV: *csv (malloc'd, NUL-terminated) and *len. */
int ember_client_usage_csv(struct ember_client *c,
			   const struct ember_usage_query *q, char **csv,
			   size_t *len);

struct ember_logs_query {
	const char *request_id;      /* 16 hex digits: that invocation only */
	const char *since;           /* a time */
	int64_t after;               /* a cursor from an earlier answer; < 0:
					none */
	unsigned tail;               /* the last N entries; 0: the server's
					default */
};

/* GET /v1/functions/NAME/logs: {"logs": [...], "cursor": N}. */
int ember_client_logs(struct ember_client *c, const char *name,
		      const struct ember_logs_query *q, json_t **out);

/* True if `name` is a valid tenant or function name:
 * ^[a-z0-9][a-z0-9-]{0,62}$ (the server checks it too). */
bool ember_client_name_ok(const char *name);

#endif
