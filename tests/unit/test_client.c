/* Unit tests: the C client library (agent/client.c) against a scripted
 * HTTP server in this process (libmicrohttpd on a Unix socket, and on
 * 127.0.0.1), which records each request and answers as the test says:
 * the requests' shape (method, path with names percent-encoded, bearer
 * token, content type, body), answers turned into results (JSON, invoke
 * bytes and X-Ember-* headers, 204s), the server's errors as its code and
 * message, a non-API error body, an oversized answer, a slow server and a
 * missing one, and deploy_wait's step-by-step progress. emberd itself is
 * tested end to end by tests/integration/agent-cli. */
// link: agent/client.c
// libs: -lcurl -ljansson -lmicrohttpd
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "agent/client.h"

#define TOKEN "ek_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* What the server saw last, and what it answers next. */
static struct {
	pthread_mutex_t lock;
	char method[16], url[512], auth[256], ctype[128];
	char query[512];          /* "k=v&k=v", values as sent */
	char *body;
	size_t body_len;
	/* answer */
	unsigned status;
	const char *answer;
	size_t answer_len;        /* 0: strlen(answer) */
	const char *headers[8];   /* "Name: value" */
	unsigned delay_ms;
	unsigned deploy_polls;    /* GET /v1/deploys/: steps grow per poll */
	size_t big;               /* > 0: answer this many bytes of 'x' */
} srv = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct MHD_Daemon *d_unix, *d_tcp;
static char sock_path[108], unix_ep[120], tcp_ep[64];

struct upload {
	char *p;
	size_t len, cap;
};

static size_t raw_url(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s); /* keep %XX as sent */
}

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind,
			       const char *key, const char *value)
{
	size_t n = strlen(srv.query);

	(void)cls;
	(void)kind;
	snprintf(srv.query + n, sizeof(srv.query) - n, "%s%s=%s", n ? "&" : "",
		 key, value ? value : "");
	return MHD_YES;
}

static const char *const steps[] = { "receive", "extract", "manifest",
				     "image", "boot", "snapshot" };

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *data,
			      size_t *data_size, void **state)
{
	struct upload *u = *state;
	struct MHD_Response *r;
	const char *v;
	char *body = NULL;
	size_t len;
	unsigned status;
	enum MHD_Result ret;

	(void)cls;
	(void)version;
	if (!u) {
		*state = calloc(1, sizeof(*u));
		return *state ? MHD_YES : MHD_NO;
	}
	if (*data_size) {
		if (u->len + *data_size + 1 > u->cap) {
			size_t cap = (u->len + *data_size + 1) * 2;
			char *p = realloc(u->p, cap);

			if (!p)
				return MHD_NO;
			u->p = p;
			u->cap = cap;
		}
		memcpy(u->p + u->len, data, *data_size);
		u->len += *data_size;
		u->p[u->len] = '\0';
		*data_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&srv.lock);
	snprintf(srv.method, sizeof(srv.method), "%s", method);
	snprintf(srv.url, sizeof(srv.url), "%s", url);
	srv.query[0] = '\0';
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_arg, NULL);
	v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_AUTHORIZATION);
	snprintf(srv.auth, sizeof(srv.auth), "%s", v ? v : "");
	v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_CONTENT_TYPE);
	snprintf(srv.ctype, sizeof(srv.ctype), "%s", v ? v : "");
	free(srv.body);
	srv.body = u->p;
	srv.body_len = u->len;
	u->p = NULL;
	status = srv.status;
	if (!strncmp(url, "/v1/deploys/", 12)) {
		/* One more step per poll; done after all six. */
		json_t *j = json_pack("{s:s,s:s,s:[]}", "id", url + 12,
				      "state", srv.deploy_polls >= 6 ?
						       "succeeded" : "running",
				      "steps");
		for (unsigned i = 0; i < srv.deploy_polls && i < 6; i++)
			json_array_append_new(json_object_get(j, "steps"),
					      json_pack("{s:s,s:s}", "step", steps[i],
							"detail", "d"));
		if (srv.deploy_polls >= 6)
			json_object_set_new(j, "version", json_integer(3));
		srv.deploy_polls++;
		body = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		len = strlen(body);
		status = 200;
	} else if (srv.big) {
		len = srv.big;
		body = malloc(len);
		memset(body, 'x', len);
	} else {
		len = srv.answer_len ? srv.answer_len : strlen(srv.answer);
		body = malloc(len + 1);
		memcpy(body, srv.answer, len);
	}
	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	for (int i = 0; i < 8 && srv.headers[i]; i++) {
		char h[128], *colon;

		snprintf(h, sizeof(h), "%s", srv.headers[i]);
		colon = strchr(h, ':');
		*colon = '\0';
		MHD_add_response_header(r, h, colon + 2);
	}
	pthread_mutex_unlock(&srv.lock);
	if (srv.delay_ms)
		usleep(srv.delay_ms * 1000u);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static void done(void *cls, struct MHD_Connection *c, void **state,
		 enum MHD_RequestTerminationCode code)
{
	struct upload *u = *state;

	(void)cls;
	(void)c;
	(void)code;
	if (u)
		free(u->p);
	free(u);
	*state = NULL;
}

static int setup_group(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const union MHD_DaemonInfo *info;
	int fd;

	(void)state;
	snprintf(sock_path, sizeof(sock_path), "/tmp/ember-test-client.%d.sock",
		 getpid());
	unlink(sock_path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	d_unix = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION |
					  MHD_USE_INTERNAL_POLLING_THREAD,
				  0, NULL, NULL, answer, NULL,
				  MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_UNESCAPE_CALLBACK, raw_url, NULL,
				  MHD_OPTION_NOTIFY_COMPLETED, done, NULL,
				  MHD_OPTION_END);
	assert_non_null(d_unix);
	snprintf(unix_ep, sizeof(unix_ep), "unix:%s", sock_path);
	d_tcp = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION |
					 MHD_USE_INTERNAL_POLLING_THREAD,
				 0, NULL, NULL, answer, NULL,
				 MHD_OPTION_SOCK_ADDR,
				 &(struct sockaddr_in){
					 .sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(0x7f000001),
				 },
				 MHD_OPTION_UNESCAPE_CALLBACK, raw_url, NULL,
				 MHD_OPTION_NOTIFY_COMPLETED, done, NULL,
				 MHD_OPTION_END);
	assert_non_null(d_tcp);
	info = MHD_get_daemon_info(d_tcp, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	snprintf(tcp_ep, sizeof(tcp_ep), "http://127.0.0.1:%u/", info->port);
	return 0;
}

static int teardown_group(void **state)
{
	(void)state;
	MHD_stop_daemon(d_unix);
	MHD_stop_daemon(d_tcp);
	unlink(sock_path);
	free(srv.body);
	return 0;
}

static void script(unsigned status, const char *answer)
{
	pthread_mutex_lock(&srv.lock);
	srv.status = status;
	srv.answer = answer;
	srv.answer_len = 0;
	memset(srv.headers, 0, sizeof(srv.headers));
	srv.delay_ms = 0;
	srv.big = 0;
	pthread_mutex_unlock(&srv.lock);
}

static struct ember_client *client(const char *ep)
{
	char err[256];
	struct ember_client *c = ember_client_new(ep, TOKEN, err, sizeof(err));

	if (!c)
		print_error("ember_client_new: %s\n", err);
	assert_non_null(c);
	return c;
}

static void test_endpoints(void **state)
{
	static const struct {
		const char *ep, *needle;
	} bad[] = {
		{ "ftp://host", "neither unix:/PATH nor http(s)://HOST:PORT" },
		{ "unix:", "no socket path" },
		{ "http://host:1/v1", "no path" },
		{ "/run/ember/emberd.sock", "neither" },
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_null(ember_client_new(bad[i].ep, NULL, err, sizeof(err)));
		assert_non_null(strstr(err, bad[i].needle));
	}
	assert_null(ember_client_new(unix_ep, "ek_a b", err, sizeof(err)));
	assert_non_null(strstr(err, "space or control character"));
	assert_null(ember_client_new(unix_ep, "ek_a\r\nX-Evil: 1", err, sizeof(err)));
	{
		struct ember_client *c = ember_client_new(NULL, NULL, err, sizeof(err));

		assert_non_null(c);
		assert_string_equal(ember_client_endpoint(c),
				    EMBER_CLIENT_DEFAULT_ENDPOINT);
		ember_client_free(c);
	}
}

static void test_names(void **state)
{
	static const char *const good[] = { "a", "acme", "my-fn-2", "0",
		"abcdefghijklmnopqrstuvwxyz0123456789-abcdefghijklmnopqrstuvwxy" };
	static const char *const bad[] = { "", "-a", "A", "a_b", "a/b", "..",
		"a b", "caf\xc3\xa9", "\xd0\xb0", "a\n", "a'", "a\"",
		/* 64 characters */
		"abcdefghijklmnopqrstuvwxyz0123456789-abcdefghijklmnopqrstuvwxyz0" };

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(ember_client_name_ok(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(ember_client_name_ok(bad[i]));
	assert_false(ember_client_name_ok(NULL));
}

static void test_requests(void **state)
{
	struct ember_client *c = client(unix_ep);
	json_t *j;

	(void)state;
	script(201, "{\"name\":\"acme\",\"created\":\"2026-12-01T00:00:00Z\"}");
	assert_int_equal(ember_client_tenant_create(c, "acme", &j), 0);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "acme");
	json_decref(j);
	assert_string_equal(srv.method, "POST");
	assert_string_equal(srv.url, "/v1/tenants");
	assert_string_equal(srv.auth, "Bearer " TOKEN);
	assert_string_equal(srv.ctype, "application/json");
	assert_string_equal(srv.body, "{\"name\":\"acme\"}");

	script(204, "");
	assert_int_equal(ember_client_token_revoke(c, "acme", "7"), 0);
	assert_string_equal(srv.method, "DELETE");
	assert_string_equal(srv.url, "/v1/tenants/acme/tokens/7");

	script(200, "{\"tokens\":[]}");
	assert_int_equal(ember_client_token_list(c, "acme", &j), 0);
	json_decref(j);
	assert_string_equal(srv.method, "GET");
	assert_string_equal(srv.url, "/v1/tenants/acme/tokens");

	/* Names travel percent-encoded: never another path. */
	script(404, "{\"error\":{\"code\":\"invalid_name\",\"message\":\"bad\"}}");
	assert_int_equal(ember_client_function_get(c, "../tenants", &j), -EPROTO);
	assert_string_equal(srv.url, "/v1/functions/..%2Ftenants");
	assert_int_equal(ember_client_function_versions(c, "a b?x=1#f", &j), -EPROTO);
	assert_string_equal(srv.url, "/v1/functions/a%20b%3Fx%3D1%23f/versions");
	assert_int_equal(ember_client_function_delete(c, "q\"'"), -EPROTO);
	assert_string_equal(srv.method, "DELETE");
	assert_string_equal(srv.url, "/v1/functions/q%22%27");
	ember_client_free(c);

	/* The same over TCP, and without a token. */
	{
		char err[128];

		c = ember_client_new(tcp_ep, NULL, err, sizeof(err));
		assert_non_null(c);
		script(200, "{\"status\":\"ok\",\"version\":\"0.5.0\"}");
		assert_int_equal(ember_client_health(c, &j), 0);
		assert_string_equal(json_string_value(json_object_get(j, "status")),
				    "ok");
		json_decref(j);
		assert_string_equal(srv.url, "/v1/health");
		assert_string_equal(srv.auth, "");
		ember_client_free(c);
	}
}

/* Usage and logs: query arguments percent-encoded, absent ones left out,
 * CSV returned as it came. */
static void test_usage_logs(void **state)
{
	struct ember_client *c = client(unix_ep);
	struct ember_usage_query q = { .from = "-7d", .to = "2026-12-01T10:00Z",
				       .group_by = "function,day" };
	struct ember_logs_query lq = { .after = -1 };
	char *csv;
	size_t len;
	json_t *j;

	(void)state;
	script(200, "{\"usage\":[],\"total\":{}}");
	assert_int_equal(ember_client_usage(c, &q, &j), 0);
	json_decref(j);
	assert_string_equal(srv.method, "GET");
	assert_string_equal(srv.url, "/v1/usage");
	assert_string_equal(srv.query, "from=-7d&to=2026-12-01T10%3A00Z&"
				       "group_by=function%2Cday");
	q = (struct ember_usage_query){ .function = "a&b=c" };
	script(200, "function,requests\r\nresize,3\r\n");
	assert_int_equal(ember_client_usage_csv(c, &q, &csv, &len), 0);
	assert_string_equal(csv, "function,requests\r\nresize,3\r\n");
	assert_int_equal(len, strlen(csv));
	free(csv);
	assert_string_equal(srv.query, "function=a%26b%3Dc&format=csv");

	script(200, "{\"logs\":[],\"cursor\":0}");
	assert_int_equal(ember_client_logs(c, "resize", &lq, &j), 0);
	json_decref(j);
	assert_string_equal(srv.url, "/v1/functions/resize/logs");
	assert_string_equal(srv.query, "");
	lq = (struct ember_logs_query){ .request_id = "8c1f4e2a9b7d3c60",
					.after = 42, .tail = 5 };
	assert_int_equal(ember_client_logs(c, "resize", &lq, &j), 0);
	json_decref(j);
	assert_string_equal(srv.query,
			    "request_id=8c1f4e2a9b7d3c60&after=42&tail=5");
	script(404, "{\"error\":{\"code\":\"function_not_found\","
		    "\"message\":\"no function\"}}");
	assert_int_equal(ember_client_logs(c, "../x", &lq, &j), -EPROTO);
	assert_string_equal(srv.url, "/v1/functions/..%2Fx/logs");
	assert_string_equal(ember_client_error(c)->code, "function_not_found");
	ember_client_free(c);
}

static void test_errors(void **state)
{
	struct ember_client *c = client(unix_ep);
	const struct ember_client_error *e = ember_client_error(c);
	json_t *j = (json_t *)1;

	(void)state;
	script(409, "{\"error\":{\"code\":\"exists\",\"message\":\"tenant acme "
		    "exists\\nsecond line\"}}");
	assert_int_equal(ember_client_tenant_create(c, "acme", &j), -EPROTO);
	assert_null(j);
	assert_int_equal(e->http_status, 409);
	assert_string_equal(e->code, "exists");
	assert_string_equal(e->message, "tenant acme exists second line");

	script(502, "<html>Bad Gateway</html>");
	assert_int_equal(ember_client_function_list(c, &j), -EPROTO);
	assert_int_equal(e->http_status, 502);
	assert_string_equal(e->code, "http_502");
	assert_non_null(strstr(e->message, "not an API error"));

	script(200, "not json");
	assert_int_equal(ember_client_function_list(c, &j), -EBADMSG);
	assert_string_equal(e->code, "bad_response");

	/* An answer over the cap is refused, not buffered. */
	script(200, "");
	srv.big = EMBER_CLIENT_MAX_BODY + 1;
	assert_int_equal(ember_client_function_list(c, &j), -EBADMSG);
	assert_non_null(strstr(e->message, "over"));
	srv.big = 0;

	/* A slow server and a timeout. */
	script(200, "{}");
	srv.delay_ms = 400;
	ember_client_set_timeout(c, 100);
	assert_int_equal(ember_client_function_list(c, &j), -ETIMEDOUT);
	ember_client_set_timeout(c, 0);
	srv.delay_ms = 0;
	usleep(400000); /* let the slow answer drain */

	/* The connection is still usable afterwards. */
	script(200, "{\"functions\":[]}");
	assert_int_equal(ember_client_function_list(c, &j), 0);
	json_decref(j);
	ember_client_free(c);

	/* Nobody there. */
	c = client("unix:/tmp/ember-test-client-nobody.sock");
	assert_int_equal(ember_client_function_list(c, &j), -ECONNREFUSED);
	assert_non_null(strstr(ember_client_error(c)->message,
			       "No such file or directory (is emberd running?)"));
	ember_client_free(c);
}

static void test_invoke(void **state)
{
	static const char bin[] = "a\0b\0\xff result";
	struct ember_client *c = client(unix_ep);
	struct ember_invoke_result r;
	size_t big = 6u << 20;
	char *payload = malloc(big);

	(void)state;
	assert_non_null(payload);
	for (size_t i = 0; i < big; i++)
		payload[i] = (char)(i * 31 + 7);
	script(200, bin);
	srv.answer_len = sizeof(bin) - 1;
	srv.headers[0] = "X-Ember-Request-Id: 00000000deadbeef";
	srv.headers[1] = "X-Ember-Start: cold";
	srv.headers[2] = "X-Ember-Duration-Us: 1234";
	srv.headers[3] = "X-Ember-Billed-Ms: 2";
	srv.headers[4] = "X-Ember-Init-Us: 987";
	srv.headers[5] = "X-Ember-Function-Status: ok";
	assert_int_equal(ember_client_invoke(c, "echo", payload, big, &r), 0);
	assert_string_equal(srv.method, "POST");
	assert_string_equal(srv.url, "/v1/functions/echo/invoke");
	assert_string_equal(srv.ctype, "application/octet-stream");
	assert_int_equal(srv.body_len, big);
	assert_memory_equal(srv.body, payload, big);
	assert_int_equal(r.len, sizeof(bin) - 1);
	assert_memory_equal(r.body, bin, sizeof(bin) - 1);
	assert_string_equal(r.request_id, "00000000deadbeef");
	assert_true(r.cold);
	assert_false(r.function_error);
	assert_int_equal(r.duration_us, 1234);
	assert_int_equal(r.billed_ms, 2);
	assert_int_equal(r.init_us, 987);
	assert_true(r.client_us > 0);
	ember_invoke_result_free(&r);

	/* Warm, a function error, headers absent or malformed. */
	script(200, "boom");
	srv.headers[0] = "X-Ember-Start: warm";
	srv.headers[1] = "X-Ember-Function-Status: error";
	srv.headers[2] = "X-Ember-Duration-Us: -5";
	assert_int_equal(ember_client_invoke(c, "echo", "", 0, &r), 0);
	assert_int_equal(srv.body_len, 0);
	assert_false(r.cold);
	assert_true(r.function_error);
	assert_int_equal(r.duration_us, -1);
	assert_int_equal(r.billed_ms, -1);
	assert_int_equal(r.init_us, -1);
	assert_string_equal(r.request_id, "");
	assert_string_equal(r.body, "boom");
	ember_invoke_result_free(&r);

	script(504, "{\"error\":{\"code\":\"function_timeout\",\"message\":"
		    "\"no result in 3000 ms\"}}");
	assert_int_equal(ember_client_invoke(c, "slow", "x", 1, &r), -EPROTO);
	assert_string_equal(ember_client_error(c)->code, "function_timeout");
	assert_null(r.body);
	ember_invoke_result_free(&r);
	free(payload);
	ember_client_free(c);
}

static int nsteps;
static void on_step(void *ctx, const json_t *step)
{
	(void)ctx;
	assert_string_equal(json_string_value(json_object_get(step, "step")),
			    steps[nsteps]);
	nsteps++;
}

static void test_deploy(void **state)
{
	struct ember_client *c = client(unix_ep);
	json_t *d, *fin;

	(void)state;
	script(202, "{\"deploy\":{\"id\":\"d42\",\"function\":\"fn\",\"state\":"
		    "\"running\",\"url\":\"/v1/deploys/d42\"}}");
	assert_int_equal(ember_client_deploy(c, "fn", "ARCHIVE", 7, &d), 0);
	assert_string_equal(srv.method, "PUT");
	assert_string_equal(srv.url, "/v1/functions/fn");
	assert_string_equal(srv.body, "ARCHIVE");
	assert_string_equal(json_string_value(json_object_get(d, "id")), "d42");
	json_decref(d);

	srv.deploy_polls = 0;
	nsteps = 0;
	assert_int_equal(ember_client_deploy_wait(c, "d42", 1, 10000, on_step,
						  NULL, &fin), 0);
	assert_int_equal(nsteps, 6); /* each step once, in order */
	assert_string_equal(json_string_value(json_object_get(fin, "state")),
			    "succeeded");
	assert_int_equal(json_integer_value(json_object_get(fin, "version")), 3);
	assert_string_equal(srv.url, "/v1/deploys/d42");
	json_decref(fin);

	/* A 202 without a deploy id breaks the API. */
	script(202, "{\"deploy\":{}}");
	assert_int_equal(ember_client_deploy(c, "fn", "A", 1, &d), -EBADMSG);
	ember_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_endpoints),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_usage_logs),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_invoke),
		cmocka_unit_test(test_deploy),
	};
	return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
