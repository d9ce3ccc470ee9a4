/*
 * server.c - emberd's HTTP/1.1 server on libmicrohttpd: see server.h.
 *
 * One libmicrohttpd daemon per listener (the Unix socket, and ADDR:PORT when
 * asked), each with `threads` epoll threads of its own. A request is a
 * struct http_req from its first callback (headers complete) to
 * libmicrohttpd's "completed" notification. At the first callback the
 * route, the caller's token, the path parameters and a declared body size
 * are all checked, so a request that cannot succeed is answered before its
 * body is read. Bodies are collected up to their route's limit; a body
 * without a declared length that runs past it closes the connection
 * (libmicrohttpd only lets a response be queued before or after a body).
 *
 * libmicrohttpd unescapes request paths by default, which would turn
 * "%00" into a string terminator and "%2e%2e" into "..". The unescape
 * callback below leaves paths as they came: no valid name contains '%', so
 * an escaped name is simply an invalid one.
 */
#define LOG_MOD "http"

#include "agent/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define JSON_BODY_LIMIT (64 * 1024)
/* A body without a declared length may run this far past its limit
 * before the connection is closed. */
#define TLS_FILE_MAX (1 << 20)

struct listener {
	struct server *srv;
	struct MHD_Daemon *d;
	int fd;
	bool is_unix;
	char *tls_key, *tls_cert;
};

struct server {
	struct server_config cfg;
	char *socket_path, *tmp_dir;
	const struct http_route *routes;
	size_t nr_routes;
	void *ctx;
	const struct auth *auth;
	struct listener ls[2];
	size_t nr_ls;
	atomic_uint suspended;
};

struct http_req {
	struct server *srv;
	struct MHD_Connection *conn;
	const struct http_route *route;
	char *path;                      /* copy, split into params */
	const char *params[HTTP_MAX_PARAMS];
	struct auth_who who;
	uint64_t start_ns;
	/* body */
	uint64_t limit, got;
	bool too_large;
	uint8_t *body;
	size_t body_cap;
	int fd;
	json_t *json;
	/* answer */
	unsigned status;
	struct MHD_Response *resp;
	bool suspended;
	bool handled;  /* the handler ran */
};

/* ---------------------------------------------------------------------
 * Answers
 */

static void set_resp(struct http_req *r, unsigned status,
		     struct MHD_Response *resp)
{
	if (r->resp)
		MHD_destroy_response(r->resp);
	r->resp = resp;
	r->status = status;
	if (!resp) {
		/* Out of memory building the answer: the connection is
		 * closed instead (the access handler returns MHD_NO). */
		log_warn_rl("cannot build a response (status %u)", status);
	}
}

void http_reply_bytes(struct http_req *r, unsigned status, void *buf,
		      size_t len, const char *content_type)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer_with_free_callback(
		len, buf, free);
	if (!resp)
		free(buf);
	else if (content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					content_type);
	set_resp(r, status, resp);
}

void http_reply_json(struct http_req *r, unsigned status, json_t *obj)
{
	char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	size_t len;

	json_decref(obj);
	if (!text) {
		set_resp(r, status, NULL);
		return;
	}
	len = strlen(text);
	/* A trailing newline makes curl output readable; JSON ignores it. */
	{
		char *t = realloc(text, len + 2);

		if (t) {
			text = t;
			text[len++] = '\n';
			text[len] = '\0';
		}
	}
	http_reply_bytes(r, status, text, len, "application/json");
}

void http_reply_error(struct http_req *r, unsigned status, const char *code,
		      const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_reply_json(r, status,
			json_pack("{s:{s:s,s:s}}", "error", "code", code,
				  "message", msg));
}

void http_reply_empty(struct http_req *r, unsigned status)
{
	set_resp(r, status,
		 MHD_create_response_from_buffer(0, NULL,
						 MHD_RESPMEM_PERSISTENT));
}

void http_add_header(struct http_req *r, const char *name, const char *value)
{
	if (r->resp)
		MHD_add_response_header(r->resp, name, value);
}

/* ---------------------------------------------------------------------
 * Accessors
 */

const struct auth_who *http_who(struct http_req *r)
{
	return &r->who;
}

const char *http_param(struct http_req *r, unsigned i)
{
	return i < HTTP_MAX_PARAMS ? r->params[i] : NULL;
}

const char *http_header(struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
					   name);
}

json_t *http_json(struct http_req *r)
{
	return r->json;
}

const void *http_body(struct http_req *r, size_t *len)
{
	*len = (size_t)r->got;
	return r->body;
}

void *http_take_body(struct http_req *r, size_t *len)
{
	void *b = r->body;

	*len = (size_t)r->got;
	r->body = NULL;
	r->body_cap = 0;
	return b;
}

int http_take_fd(struct http_req *r, uint64_t *len)
{
	int fd = r->fd;

	*len = r->got;
	r->fd = -1;
	if (fd >= 0 && lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

uint64_t http_start_ns(struct http_req *r)
{
	return r->start_ns;
}

void http_suspend(struct http_req *r)
{
	r->suspended = true;
	atomic_fetch_add(&r->srv->suspended, 1);
	MHD_suspend_connection(r->conn);
}

void http_resume(struct http_req *r)
{
	/* The answer was set (on whichever thread) before this call; the
	 * resumed connection's next callback queues it. */
	MHD_resume_connection(r->conn);
}

unsigned server_suspended(struct server *s)
{
	return atomic_load(&s->suspended);
}

/* ---------------------------------------------------------------------
 * Routing
 */

static bool id_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 31)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* Matches a raw path against a pattern; on success fills params with
 * pointers into `segs` (a writable copy of the path that this splits).
 * kinds[i] receives each parameter's kind. */
static bool route_match(const char *pattern, char *segs,
			const char *params[HTTP_MAX_PARAMS],
			enum http_param kinds[HTTP_MAX_PARAMS])
{
	const char *p = pattern;
	char *s = segs;
	unsigned np = 0;

	for (;;) {
		const char *pe;
		char *se;

		if (*p != '/' || *s != '/')
			return false;
		p++;
		s++;
		pe = strchrnul(p, '/');
		se = strchrnul(s, '/');
		if (*p == '{') {
			if (np == HTTP_MAX_PARAMS || se == s)
				return false;
			kinds[np] = (!strncmp(p, "{id}", 4)) ? HTTP_PARAM_ID :
							       HTTP_PARAM_NAME;
			params[np++] = s;
		} else if ((size_t)(pe - p) != (size_t)(se - s) ||
			   memcmp(p, s, (size_t)(pe - p))) {
			return false;
		}
		p = pe;
		s = se;
		if (!*p && !*s)
			break;
		if (!*p || !*s)
			return false;
	}
	/* Terminate the captured segments in place. */
	for (unsigned i = 0; i < np; i++) {
		char *end = strchrnul(params[i], '/');

		*end = '\0';
	}
	return true;
}

/* Finds the route for (method, url). 404/405 answers are set on r when
 * nothing matches. */
static const struct http_route *route_find(struct http_req *r,
					   const char *method, const char *url,
					   enum http_param kinds[HTTP_MAX_PARAMS])
{
	struct server *srv = r->srv;
	char allow[128] = "";
	bool path_known = false;

	for (size_t i = 0; i < srv->nr_routes; i++) {
		const struct http_route *rt = &srv->routes[i];
		const char *params[HTTP_MAX_PARAMS] = { 0 };
		char *copy = strdup(url);

		if (!copy)
			return NULL;
		if (!route_match(rt->pattern, copy, params, kinds)) {
			free(copy);
			continue;
		}
		if (strcmp(rt->method, method)) {
			size_t n = strlen(allow);

			snprintf(allow + n, sizeof(allow) - n, "%s%s",
				 n ? ", " : "", rt->method);
			path_known = true;
			free(copy);
			continue;
		}
		free(r->path);
		r->path = copy;
		memcpy(r->params, params, sizeof(params));
		return rt;
	}
	if (path_known) {
		http_reply_error(r, 405, "method_not_allowed",
				 "%s is not allowed here; allowed: %s", method,
				 allow);
		http_add_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	} else {
		http_reply_error(r, 404, "route_not_found",
				 "no such route (see agent/openapi.yaml)");
	}
	return NULL;
}

/* Checks the caller against the route's access rule; sets 401/403. */
static bool check_access(struct http_req *r)
{
	const char *h = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
	int ret = auth_check(r->srv->auth, h, &r->who);

	if (r->route->access == HTTP_ANYONE)
		return true;
	if (ret == -EACCES) {
		http_reply_error(r, 401, "unauthorized",
				 h ? "the token is not valid (revoked, "
				     "malformed or unknown)" :
				     "an Authorization: Bearer token is "
				     "required");
		http_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
				"Bearer realm=\"ember\"");
		return false;
	}
	if (ret) {
		http_reply_error(r, 500, "internal_error",
				 "the token could not be checked");
		return false;
	}
	if (r->route->access == HTTP_ADMIN && r->who.kind != AUTH_ADMIN) {
		http_reply_error(r, 403, "forbidden",
				 "this route needs the admin token");
		return false;
	}
	if (r->route->access == HTTP_TENANT && r->who.kind != AUTH_TENANT) {
		http_reply_error(r, 403, "forbidden",
				 "this route needs a tenant token (the admin "
				 "token owns no functions)");
		return false;
	}
	return true;
}

static bool check_params(struct http_req *r,
			 const enum http_param kinds[HTTP_MAX_PARAMS])
{
	for (unsigned i = 0; i < HTTP_MAX_PARAMS && r->params[i]; i++) {
		const char *p = r->params[i];

		if (kinds[i] == HTTP_PARAM_NAME &&
		    !util_name_valid(p, strlen(p))) {
			http_reply_error(r, 400, "invalid_name",
					 "names are 1 to 63 characters of a-z, "
					 "0-9 and '-', starting with a letter "
					 "or digit");
			return false;
		}
		if (kinds[i] == HTTP_PARAM_ID && !id_valid(p)) {
			http_reply_error(r, 404, "not_found",
					 "no such id");
			return false;
		}
	}
	return true;
}

/* ---------------------------------------------------------------------
 * Bodies
 */

static uint64_t body_limit(const struct server *srv,
			   const struct http_route *rt)
{
	if (rt->limit > 0)
		return (uint64_t)rt->limit;
	switch (rt->body) {
	case HTTP_BODY_JSON:
		return JSON_BODY_LIMIT;
	case HTTP_BODY_FILE:
		return srv->cfg.file_body_limit;
	case HTTP_BODY_MEMORY:
	case HTTP_BODY_NONE:
		break;
	}
	return 0;
}

/* A declared Content-Length over the limit is refused before any body
 * byte is read. Returns false with a 413 (or 400) set. */
static bool check_declared_length(struct http_req *r)
{
	const char *cl = http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long n;
	char *end;

	if (!cl || r->route->body == HTTP_BODY_NONE)
		return true;
	errno = 0;
	n = strtoull(cl, &end, 10);
	if (errno || end == cl || *end) {
		http_reply_error(r, 400, "bad_request",
				 "Content-Length is not a number");
		return false;
	}
	if (n > r->limit) {
		http_reply_error(r, 413, "payload_too_large",
				 "the body is %llu bytes; at most %llu are "
				 "accepted here", n,
				 (unsigned long long)r->limit);
		return false;
	}
	return true;
}

static int body_append(struct http_req *r, const char *data, size_t n)
{
	if (r->route->body == HTTP_BODY_NONE)
		return 0; /* read and dropped */
	if (r->got + n > r->limit) {
		r->too_large = true;
		return -EFBIG;
	}
	if (r->route->body == HTTP_BODY_FILE) {
		if (r->fd < 0) {
			r->fd = open(r->srv->cfg.tmp_dir,
				     O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
			if (r->fd < 0)
				return -errno;
		}
		while (n) {
			ssize_t w = write(r->fd, data, n);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			data += w;
			n -= (size_t)w;
			r->got += (uint64_t)w;
		}
		return 0;
	}
	if (r->got + n > r->body_cap) {
		size_t cap = r->body_cap ? r->body_cap : 4096;
		uint8_t *b;

		while (cap < r->got + n)
			cap *= 2;
		if (cap > r->limit)
			cap = (size_t)r->limit;
		b = realloc(r->body, cap);
		if (!b)
			return -ENOMEM;
		r->body = b;
		r->body_cap = cap;
	}
	memcpy(r->body + r->got, data, n);
	r->got += n;
	return 0;
}

/* The whole body is in: parse a JSON body. False with a 400 set. */
static bool body_finish(struct http_req *r)
{
	json_error_t jerr;

	if (r->route->body != HTTP_BODY_JSON)
		return true;
	if (r->got == 0) {
		http_reply_error(r, 400, "invalid_json",
				 "a JSON object is required as the body");
		return false;
	}
	r->json = json_loadb((const char *)r->body, (size_t)r->got,
			     JSON_REJECT_DUPLICATES, &jerr);
	if (!r->json) {
		http_reply_error(r, 400, "invalid_json",
				 "the body is not valid JSON: %s (at byte %d)",
				 jerr.text, jerr.position);
		return false;
	}
	if (!json_is_object(r->json)) {
		http_reply_error(r, 400, "invalid_json",
				 "the body must be a JSON object");
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------------
 * libmicrohttpd callbacks
 */

static enum MHD_Result queue_answer(struct http_req *r)
{
	enum MHD_Result ret;

	if (!r->resp)
		return MHD_NO; /* closes the connection */
	ret = MHD_queue_response(r->conn, r->status, r->resp);
	MHD_destroy_response(r->resp);
	r->resp = NULL;
	return ret;
}

static struct http_req *req_new(struct server *srv,
				struct MHD_Connection *conn)
{
	struct http_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->srv = srv;
	r->conn = conn;
	r->fd = -1;
	r->start_ns = util_now_ns();
	return r;
}

static void req_free(struct http_req *r)
{
	if (!r)
		return;
	if (r->resp)
		MHD_destroy_response(r->resp);
	json_decref(r->json);
	free(r->body);
	free(r->path);
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

/* First callback: headers are in. Route, authenticate, check parameters
 * and the declared length. Returns true when the request may proceed. */
static bool req_begin(struct http_req *r, const char *method, const char *url)
{
	enum http_param kinds[HTTP_MAX_PARAMS];

	r->route = route_find(r, method, url, kinds);
	if (!r->route)
		return false;
	if (!check_access(r) || !check_params(r, kinds))
		return false;
	r->limit = body_limit(r->srv, r->route);
	return check_declared_length(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct listener *l = cls;
	struct http_req *r = *con_cls;

	(void)version;
	if (!r) {
		r = req_new(l->srv, conn);
		if (!r)
			return MHD_NO;
		*con_cls = r;
		if (!req_begin(r, method, url))
			return queue_answer(r);
		return MHD_YES;
	}
	if (r->suspended) {
		/* Resumed: the answer is set. */
		r->suspended = false;
		atomic_fetch_sub(&r->srv->suspended, 1);
		return queue_answer(r);
	}
	if (r->resp)
		return queue_answer(r);
	if (*upload_size) {
		int ret = body_append(r, upload, *upload_size);

		*upload_size = 0;
		if (ret == -EFBIG)
			return MHD_NO; /* undeclared length past the limit */
		if (ret) {
			log_warn_rl("request body: %s", strerror(-ret));
			return MHD_NO;
		}
		return MHD_YES;
	}
	if (r->handled)
		return MHD_NO; /* a handler that neither answered nor suspended */
	r->handled = true;
	if (!body_finish(r))
		return queue_answer(r);
	r->route->handler(r->srv->ctx, r);
	if (r->suspended)
		return MHD_YES;
	if (!r->resp) {
		log_err("%s %s: the handler set no answer", method, url);
		http_reply_error(r, 500, "internal_error", "no answer");
	}
	return queue_answer(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct http_req *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	req_free(r);
	*con_cls = NULL;
}

/* Leaves the URL as sent: see the file's header. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_warn_rl("libmicrohttpd: %s", line);
}

/* ---------------------------------------------------------------------
 * Listeners
 */

/* A Unix socket at path, replacing a stale socket file (one nobody
 * listens on), never anything else. */
static int listen_unix(const char *path, unsigned mode, char *err,
		       size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return errbuf_fail(err, errlen, -ENAMETOOLONG,
				   "socket path %s is longer than %zu bytes",
				   path, sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errbuf_fail(err, errlen, -errno, "socket: %s",
				   strerror(errno));
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			close(fd);
			return errbuf_fail(err, errlen, -EEXIST,
					   "%s exists and is not a socket",
					   path);
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			return errbuf_fail(err, errlen, -EADDRINUSE,
					   "%s: another emberd is listening "
					   "there", path);
		}
		unlink(path);
		close(fd);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return errbuf_fail(err, errlen, -errno, "socket: %s",
					   strerror(errno));
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, mode) < 0 || listen(fd, 1024) < 0) {
		int e = errno;

		close(fd);
		return errbuf_fail(err, errlen, -e, "%s: %s", path,
				   strerror(e));
	}
	return fd;
}

/* Parses "ADDR:PORT" ("[v6]:PORT" for IPv6) into sa; *loopback says
 * whether the address is 127.0.0.0/8 or ::1. */
static int parse_listen(const char *spec, struct sockaddr_storage *sa,
			socklen_t *salen, bool *loopback)
{
	char host[64];
	const char *colon, *h = spec;
	size_t hl;
	unsigned long port;
	char *end;

	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = spec + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - spec);
	}
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port > 65535)
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	{
		struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

		if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
			in4->sin_family = AF_INET;
			in4->sin_port = htons((uint16_t)port);
			*salen = sizeof(*in4);
			*loopback = (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
			return 0;
		}
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)port);
			*salen = sizeof(*in6);
			*loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
			return 0;
		}
	}
	return -EINVAL;
}

int server_check_listen(const char *spec, bool *loopback)
{
	struct sockaddr_storage sa;
	socklen_t salen;

	return parse_listen(spec, &sa, &salen, loopback);
}

static int listen_tcp(const struct server_config *cfg, bool *loopback,
		      char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	int fd, one = 1;

	if (parse_listen(cfg->listen, &sa, &salen, loopback))
		return errbuf_fail(err, errlen, -EINVAL,
				   "--listen %s: expected ADDR:PORT with a "
				   "numeric IPv4 address or [IPv6]:PORT",
				   cfg->listen);
	if (!*loopback && !(cfg->tls_cert && cfg->tls_key))
		return errbuf_fail(err, errlen, -EPERM,
				   "--listen %s is not a loopback address: "
				   "tokens would cross the network in the "
				   "clear; give --tls-cert and --tls-key",
				   cfg->listen);
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errbuf_fail(err, errlen, -errno, "socket: %s",
				   strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, salen) < 0 ||
	    listen(fd, 1024) < 0) {
		int e = errno;

		close(fd);
		return errbuf_fail(err, errlen, -e, "--listen %s: %s",
				   cfg->listen, strerror(e));
	}
	return fd;
}

static int start_daemon(struct listener *l, char *err, size_t errlen)
{
	const struct server_config *cfg = &l->srv->cfg;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem opts[16];
	unsigned n = 0;

#define OPT(o, v, p)                                                          \
	opts[n++] = (struct MHD_OptionItem){ o, (intptr_t)(v), p }
	/* The logger first, so that libmicrohttpd's complaints about the
	 * other options reach it. */
	OPT(MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, l);
	OPT(MHD_OPTION_LISTEN_SOCKET, l->fd, NULL);
	OPT(MHD_OPTION_NOTIFY_COMPLETED, on_completed, l);
	OPT(MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, l);
	OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->header_limit, NULL);
	OPT(MHD_OPTION_CONNECTION_LIMIT, cfg->conn_limit, NULL);
	OPT(MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s, NULL);
	if (cfg->threads > 1)
		OPT(MHD_OPTION_THREAD_POOL_SIZE, cfg->threads, NULL);
	if (!l->is_unix && cfg->per_ip_limit)
		OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->per_ip_limit,
		    NULL);
	if (l->tls_cert) {
		flags |= MHD_USE_TLS;
		OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, l->tls_key);
		OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, l->tls_cert);
	}
	OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
	l->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, l,
				MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (!l->d)
		return errbuf_fail(err, errlen, -EIO,
				   "libmicrohttpd would not start on %s",
				   l->is_unix ? cfg->socket_path : cfg->listen);
	return 0;
}

struct server *server_start(const struct server_config *cfg,
			    const struct http_route *routes, size_t nr,
			    void *ctx, const struct auth *auth, char *err,
			    size_t errlen)
{
	struct server *s = calloc(1, sizeof(*s));
	int fd;

	if (!s) {
		errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	s->cfg = *cfg;
	s->routes = routes;
	s->nr_routes = nr;
	s->ctx = ctx;
	s->auth = auth;
	s->socket_path = strdup(cfg->socket_path);
	s->tmp_dir = strdup(cfg->tmp_dir ? cfg->tmp_dir : "/tmp");
	if (!s->socket_path || !s->tmp_dir) {
		errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		goto err_free;
	}
	s->cfg.socket_path = s->socket_path;
	s->cfg.tmp_dir = s->tmp_dir;
	s->cfg.listen = NULL; /* only used during start */

	fd = listen_unix(cfg->socket_path, cfg->socket_mode, err, errlen);
	if (fd < 0)
		goto err_free;
	s->ls[0] = (struct listener){ .srv = s, .fd = fd, .is_unix = true };
	s->nr_ls = 1;
	if (cfg->listen) {
		struct listener *l = &s->ls[1];
		bool loopback;

		*l = (struct listener){ .srv = s, .fd = -1 };
		s->cfg.listen = cfg->listen;
		fd = listen_tcp(cfg, &loopback, err, errlen);
		if (fd < 0)
			goto err_stop;
		l->fd = fd;
		s->nr_ls = 2;
		if (cfg->tls_cert || cfg->tls_key) {
			int r1, r2;

			if (!cfg->tls_cert || !cfg->tls_key) {
				errbuf_fail(err, errlen, -EINVAL,
					    "--tls-cert and --tls-key go "
					    "together");
				goto err_stop;
			}
			r1 = util_read_file(cfg->tls_cert, TLS_FILE_MAX,
					    &l->tls_cert, NULL);
			r2 = util_read_file(cfg->tls_key, TLS_FILE_MAX,
					    &l->tls_key, NULL);
			if (r1 || r2) {
				errbuf_fail(err, errlen, r1 ? r1 : r2,
					    "reading %s: %s",
					    r1 ? cfg->tls_cert : cfg->tls_key,
					    strerror(-(r1 ? r1 : r2)));
				goto err_stop;
			}
		}
	}
	for (size_t i = 0; i < s->nr_ls; i++)
		if (start_daemon(&s->ls[i], err, errlen))
			goto err_stop;
	return s;
err_stop:
	server_stop(s);
	return NULL;
err_free:
	free(s->socket_path);
	free(s->tmp_dir);
	free(s);
	return NULL;
}

void server_quiesce(struct server *s)
{
	for (size_t i = 0; i < s->nr_ls; i++) {
		struct listener *l = &s->ls[i];

		if (l->d && l->fd >= 0) {
			MHD_socket fd = MHD_quiesce_daemon(l->d);

			if (fd != MHD_INVALID_SOCKET)
				close(fd);
			l->fd = -1;
		}
	}
	if (s->socket_path)
		unlink(s->socket_path);
}

void server_stop(struct server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nr_ls; i++) {
		struct listener *l = &s->ls[i];

		/* A running daemon closes the socket it was given (unless
		 * it was quiesced, which handed the socket back). */
		if (l->d)
			MHD_stop_daemon(l->d);
		else if (l->fd >= 0)
			close(l->fd);
		free(l->tls_cert);
		if (l->tls_key) {
			memset(l->tls_key, 0, strlen(l->tls_key));
			free(l->tls_key);
		}
	}
	if (s->socket_path)
		unlink(s->socket_path);
	free(s->socket_path);
	free(s->tmp_dir);
	free(s);
}

void server_print_routes(const struct http_route *routes, size_t nr)
{
	static const char *const who[] = { "anyone", "admin", "tenant",
					   "token" };

	for (size_t i = 0; i < nr; i++)
		printf("%-6s %-40s %-6s %s\n", routes[i].method,
		       routes[i].pattern, who[routes[i].access],
		       routes[i].summary);
}
