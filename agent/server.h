/*
 * server.h - emberd's HTTP/1.1 server, on libmicrohttpd.
 *
 * Owns: the listening sockets (a Unix socket, and optionally ADDR:PORT,
 * with TLS through libmicrohttpd's GnuTLS support, required for anything
 * but loopback), libmicrohttpd's threads, each request's life (route
 * lookup, authentication, body limits and collection, suspension while a
 * VM works, the response), and the JSON error shape
 * {"error": {"code": ..., "message": ...}}.
 *
 * Does not: know what any route does. The routes and their handlers are
 * the table api.c passes in (struct http_route); a handler answers at once
 * with http_reply_*() or suspends the request (http_suspend) and answers
 * later from any thread, then calls http_resume().
 *
 * Threads: handlers run on libmicrohttpd's polling threads (server_config
 * .threads of them per listener). They must not block on a VM: anything
 * slow is handed off and the request suspended.
 */
#ifndef EMBER_AGENT_SERVER_H
#define EMBER_AGENT_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/auth.h"

struct http_req;

/* Who may call a route. */
enum http_access {
	HTTP_ANYONE,
	HTTP_ADMIN,
	HTTP_TENANT,
	HTTP_TOKEN,   /* the admin or a tenant: the handler tells them apart */
};

/* What a route's body is and where it is collected. */
enum http_body {
	HTTP_BODY_NONE,    /* anything sent is read and discarded */
	HTTP_BODY_JSON,    /* parsed into a JSON object (<= 64 KiB) */
	HTTP_BODY_MEMORY,  /* raw bytes in memory (<= the route's limit) */
	HTTP_BODY_FILE,    /* raw bytes in an unlinked temporary file */
};

/* Kinds of path parameters: checked before the handler runs. */
enum http_param {
	HTTP_PARAM_NAME,   /* a tenant or function name: else 400 invalid_name */
	HTTP_PARAM_ID,     /* a token or deploy id: [a-z0-9_]{1,31}, else 404 */
};

#define HTTP_MAX_PARAMS 3

struct http_route {
	const char *method;
	const char *pattern;  /* "/v1/tenants/{tenant}/tokens/{id}" */
	enum http_access access;
	enum http_body body;
	int limit;            /* 0: the body kind's default; -1: config's */
	void (*handler)(void *ctx, struct http_req *r);
	const char *summary;  /* one line, for --routes and the docs */
};

struct server_config {
	const char *socket_path;  /* Unix socket (required) */
	unsigned socket_mode;     /* its permission bits */
	const char *listen;       /* "ADDR:PORT" or NULL */
	const char *tls_cert;     /* PEM files, both or neither */
	const char *tls_key;
	unsigned threads;         /* polling threads per listener */
	unsigned conn_limit;      /* open connections per listener */
	unsigned per_ip_limit;    /* per client address (TCP only) */
	unsigned timeout_s;       /* an idle connection is closed after this */
	size_t header_limit;      /* bytes of request line + headers */
	uint64_t file_body_limit; /* HTTP_BODY_FILE, for limit == -1 */
	const char *tmp_dir;      /* where file bodies are buffered */
};

struct server;

/* Checks a --listen value: "ADDR:PORT" with a numeric IPv4 address or
 * "[IPv6]:PORT"; *loopback says whether it is 127.0.0.0/8 or ::1. 0 or
 * -EINVAL. */
int server_check_listen(const char *spec, bool *loopback);

/* Opens the sockets and starts serving `routes` (nr entries, alive as long
 * as the server), calling handlers with ctx. NULL with a reason in err. */
struct server *server_start(const struct server_config *cfg,
			    const struct http_route *routes, size_t nr,
			    void *ctx, const struct auth *auth, char *err,
			    size_t errlen);
/* Stops accepting connections; open ones are still served. */
void server_quiesce(struct server *s);
/* Requests currently suspended (waiting on a VM or a worker). */
unsigned server_suspended(struct server *s);
/* Stops every thread and closes every connection (no request may still be
 * suspended), removes the Unix socket. */
void server_stop(struct server *s);

/* --- For handlers --- */

/* Who sent the request (AUTH_NOBODY on HTTP_ANYONE routes without a
 * valid token). */
const struct auth_who *http_who(struct http_req *r);
/* Path parameter i (0-based, in pattern order), already validated. */
const char *http_param(struct http_req *r, unsigned i);
/* A request header, or NULL. */
const char *http_header(struct http_req *r, const char *name);
/* A query argument (raw, not unescaped), or NULL. */
const char *http_query(struct http_req *r, const char *name);
/* HTTP_BODY_JSON: the parsed object (borrowed). */
json_t *http_json(struct http_req *r);
/* HTTP_BODY_MEMORY: the bytes; http_take_body hands the malloc'd buffer
 * over to the caller (NULL when empty). */
const void *http_body(struct http_req *r, size_t *len);
void *http_take_body(struct http_req *r, size_t *len);
/* HTTP_BODY_FILE: the file, positioned at 0; http_take_fd hands it over. */
int http_take_fd(struct http_req *r, uint64_t *len);
/* Monotonic time the request's headers arrived. */
uint64_t http_start_ns(struct http_req *r);

/* Answers. Each replaces any answer set before. A JSON reply takes the
 * reference to obj. */
void http_reply_json(struct http_req *r, unsigned status, json_t *obj);
void http_reply_error(struct http_req *r, unsigned status, const char *code,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Raw bytes; takes ownership of buf (free()d when sent). */
void http_reply_bytes(struct http_req *r, unsigned status, void *buf,
		      size_t len, const char *content_type);
void http_reply_empty(struct http_req *r, unsigned status);
/* Adds a header to the answer set last (call after an http_reply_*). */
void http_add_header(struct http_req *r, const char *name, const char *value);

/* Suspends the request: the handler returns without an answer and some
 * thread answers later with http_reply_* followed by http_resume(). */
void http_suspend(struct http_req *r);
void http_resume(struct http_req *r);

/* The routes as "METHOD PATTERN" lines, for `emberd --routes`. */
void server_print_routes(const struct http_route *routes, size_t nr);

#endif
