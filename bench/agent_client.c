/*
 * agent_client.c - the measuring half of bench/agent (docs/agent.md).
 *
 * A minimal HTTP/1.1 client over emberd's Unix socket, written for the
 * bench so that what it measures is emberd and not a client library: one
 * keep-alive connection, requests built in one buffer and sent with one
 * write, answers parsed just enough (status, Content-Length, the
 * X-Ember-* headers). Modes:
 *
 *   warm     N invocations of FUNCTION on one connection after a warm-up;
 *            also emberd's CPU time over them (the sum over its threads of
 *            /proc/PID/task/TID/schedstat, in ns), per invocation
 *   cold     N invocations, each after DELETE .../instances (so no idle
 *            instance exists) and after the shell pool has a shell ready
 *            (GET /v1/system, admin token): a restore into a pooled shell
 *   libwarm  N invocations straight over a VM's vsock socket with
 *            libember's inv_client (no emberd): the floor the agent adds to
 *   load     THREADS closed-loop clients for SECONDS over FUNCTIONS functions
 *            (PREFIX0..n), each its own connection; the latency of every
 *            request by when it started, in buckets of BUCKET ms (the
 *            timeline bench/agent-load plots)
 *
 * Prints one JSON object: the samples (microseconds, client clock), the
 * server's own X-Ember-Duration-Us and X-Ember-Init-Us per sample, and the
 * CPU figure. Nothing here asserts a timing.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "invoke.h"
#include "proto/invoke.h"

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("agent_client: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------------
 * HTTP
 */

struct conn {
	const char *path;
	int fd;
	char *buf;      /* received bytes */
	size_t len, cap;
};

struct resp {
	int status;
	const char *body; /* into conn.buf, valid until the next request */
	size_t body_len;
	long long duration_us, init_us;
	bool cold;
	char start[8];
};

static void conn_open(struct conn *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die("socket: %s", strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->path);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect %s: %s", c->path, strerror(errno));
	c->len = 0;
	if (!c->buf) {
		c->cap = 8 << 20;
		c->buf = malloc(c->cap);
		if (!c->buf)
			die("out of memory");
	}
}

static void send_all(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write: %s", strerror(errno));
		s += w;
		n -= (size_t)w;
	}
}

static long long header_num(const char *head, const char *name)
{
	const char *p = strcasestr(head, name);

	return p ? strtoll(p + strlen(name), NULL, 10) : -1;
}

/* Sends one request and reads its answer. The connection is reopened if
 * the server closed it (after an error answer). */
static void http_do(struct conn *c, const char *method, const char *path,
		    const char *token, const void *body, size_t len,
		    struct resp *r)
{
	char head[512];
	size_t hl, need = 0;
	char *end = NULL;
	long long cl;

	hl = (size_t)snprintf(head, sizeof(head),
			      "%s %s HTTP/1.1\r\nHost: x\r\n"
			      "Authorization: Bearer %s\r\n"
			      "Content-Length: %zu\r\n\r\n",
			      method, path, token, len);
	if (c->fd < 0)
		conn_open(c);
	if (len && hl + len <= 65536) {
		/* One write: the request is one segment for the server. */
		char one[65536];

		memcpy(one, head, hl);
		memcpy(one + hl, body, len);
		send_all(c->fd, one, hl + len);
	} else {
		send_all(c->fd, head, hl);
		if (len)
			send_all(c->fd, body, len);
	}
	c->len = 0;
	for (;;) {
		ssize_t n;

		if (!end && c->len) {
			c->buf[c->len] = '\0';
			end = strstr(c->buf, "\r\n\r\n");
			if (end) {
				*end = '\0';
				cl = header_num(c->buf, "\r\ncontent-length:");
				need = (size_t)(end + 4 - c->buf) +
				       (size_t)(cl > 0 ? cl : 0);
			}
		}
		if (end && c->len >= need)
			break;
		if (c->len + 65536 >= c->cap)
			die("answer too large");
		n = read(c->fd, c->buf + c->len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("read: %s", n ? strerror(errno) : "closed");
		c->len += (size_t)n;
	}
	memset(r, 0, sizeof(*r));
	r->status = atoi(c->buf + 9);
	r->body = end + 4;
	r->body_len = need - (size_t)(end + 4 - c->buf);
	r->duration_us = header_num(c->buf, "\r\nx-ember-duration-us:");
	r->init_us = header_num(c->buf, "\r\nx-ember-init-us:");
	r->cold = strcasestr(c->buf, "\r\nx-ember-start: cold") != NULL;
	if (strcasestr(c->buf, "\r\nconnection: close")) {
		close(c->fd);
		c->fd = -1;
	}
}

/* ---------------------------------------------------------------------
 * Samples and output
 */

struct samples {
	double *v;
	size_t n;
};

static void s_add(struct samples *s, double x)
{
	s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const struct samples *s, unsigned p)
{
	double *v;
	double r;

	if (!s->n)
		return 0;
	v = malloc(s->n * sizeof(*v));
	memcpy(v, s->v, s->n * sizeof(*v));
	qsort(v, s->n, sizeof(*v), cmp_double);
	r = v[(s->n * p + 99) / 100 - 1];
	free(v);
	return r;
}

static void print_samples(const char *name, const struct samples *s, bool comma)
{
	printf("\"%s\":{\"n\":%zu,\"p50\":%.1f,\"p99\":%.1f,\"samples\":[", name,
	       s->n, pct(s, 50), pct(s, 99));
	for (size_t i = 0; i < s->n; i++)
		printf("%s%.1f", i ? "," : "", s->v[i]);
	printf("]}%s", comma ? "," : "");
}

/* emberd's CPU time so far, ns, over all its threads. */
static uint64_t cpu_ns(int pid)
{
	char path[64];
	struct dirent *e;
	uint64_t sum = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		die("%s: %s", path, strerror(errno));
	while ((e = readdir(d))) {
		char p[300];
		unsigned long long t;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/proc/%d/task/%s/schedstat", pid,
			 e->d_name);
		f = fopen(p, "r");
		if (!f)
			continue;
		if (fscanf(f, "%llu", &t) == 1)
			sum += t;
		fclose(f);
	}
	closedir(d);
	return sum;
}

/* ---------------------------------------------------------------------
 * Modes
 */

struct opts {
	const char *socket, *token, *admin, *function, *vsock, *mode, *prefix;
	unsigned n, warmup, threads, functions, bucket_ms;
	unsigned settle_ms;   /* cold: quiet time before each start */
	double seconds;
	size_t payload;
	int pid;
};

static void mode_warm(const struct opts *o, const char *payload)
{
	struct samples lat = { calloc(o->n, sizeof(double)), 0 };
	struct samples srv = { calloc(o->n, sizeof(double)), 0 };
	struct conn c = { .path = o->socket, .fd = -1 };
	char path[256];
	uint64_t c0, c1;
	struct resp r;
	unsigned bad = 0;

	snprintf(path, sizeof(path), "/v1/functions/%s/invoke", o->function);
	for (unsigned i = 0; i < o->warmup; i++)
		http_do(&c, "POST", path, o->token, payload, o->payload, &r);
	c0 = o->pid ? cpu_ns(o->pid) : 0;
	for (unsigned i = 0; i < o->n; i++) {
		uint64_t t0 = now_ns();

		http_do(&c, "POST", path, o->token, payload, o->payload, &r);
		s_add(&lat, (double)(now_ns() - t0) / 1000.0);
		s_add(&srv, (double)r.duration_us);
		bad += r.status != 200 || r.cold ||
		       r.body_len != o->payload ||
		       memcmp(r.body, payload, o->payload);
	}
	c1 = o->pid ? cpu_ns(o->pid) : 0;
	printf("{\"mode\":\"warm\",\"bad\":%u,\"emberd_cpu_us_per_invoke\":%.2f,",
	       bad, o->pid ? (double)(c1 - c0) / 1000.0 / o->n : 0.0);
	print_samples("latency_us", &lat, true);
	print_samples("server_duration_us", &srv, false);
	printf("}\n");
}

/* Waits until the pool has a shell ready; with settle_ms, until no shell
 * is being spawned either, then settle_ms more (the kernel's clean-up of
 * the stopped instance, e.g. its namespaces, ends after its reap): the
 * start then measures the critical path alone, not the pool's work beside
 * it on a small machine. */
static void wait_pool(struct conn *c, const char *admin, unsigned settle_ms)
{
	struct resp r;

	for (int i = 0; i < 5000; i++) {
		http_do(c, "GET", "/v1/system", admin, NULL, 0, &r);
		if (r.status == 200) {
			const char *p = strstr(r.body, "\"ready\":");
			const char *sp = strstr(r.body, "\"spawning\":");

			if (p && atoi(p + 8) >= 1 &&
			    (!settle_ms || (sp && atoi(sp + 11) == 0))) {
				if (settle_ms)
					usleep(settle_ms * 1000);
				return;
			}
		}
		usleep(1000);
	}
	die("the shell pool stays empty");
}

static void mode_cold(const struct opts *o, const char *payload)
{
	struct samples lat = { calloc(o->n, sizeof(double)), 0 };
	struct samples init = { calloc(o->n, sizeof(double)), 0 };
	struct samples srv = { calloc(o->n, sizeof(double)), 0 };
	struct conn c = { .path = o->socket, .fd = -1 };
	struct conn ctl = { .path = o->socket, .fd = -1 };
	char path[256], stop[256];
	struct resp r;
	unsigned bad = 0;

	snprintf(path, sizeof(path), "/v1/functions/%s/invoke", o->function);
	snprintf(stop, sizeof(stop), "/v1/functions/%s/instances", o->function);
	for (unsigned i = 0; i < o->n; i++) {
		uint64_t t0;

		http_do(&ctl, "DELETE", stop, o->token, NULL, 0, &r);
		if (r.status != 200)
			die("DELETE %s: %d", stop, r.status);
		wait_pool(&ctl, o->admin, o->settle_ms);
		t0 = now_ns();
		http_do(&c, "POST", path, o->token, payload, o->payload, &r);
		s_add(&lat, (double)(now_ns() - t0) / 1000.0);
		s_add(&init, (double)r.init_us);
		s_add(&srv, (double)r.duration_us);
		bad += r.status != 200 || !r.cold || r.body_len != o->payload;
	}
	printf("{\"mode\":\"cold\",\"bad\":%u,", bad);
	print_samples("latency_us", &lat, true);
	print_samples("server_init_us", &init, true);
	print_samples("server_duration_us", &srv, false);
	printf("}\n");
}

static void mode_libwarm(const struct opts *o, const char *payload)
{
	struct samples lat = { calloc(o->n, sizeof(double)), 0 };
	struct inv_client *cl;
	struct inv_result res;
	unsigned bad = 0;
	int err;

	cl = inv_client_connect(o->vsock, EMBER_INV_VSOCK_PORT, 5000, &err);
	if (!cl || inv_client_wait_ready(cl, 5000))
		die("%s: cannot connect: %s", o->vsock, strerror(-err));
	for (unsigned i = 0; i < o->warmup + o->n; i++) {
		uint64_t t0 = now_ns();
		enum ember_invoke_status st;

		st = inv_client_invoke(cl, payload, o->payload, 5000, &res);
		if (i >= o->warmup) {
			s_add(&lat, (double)(now_ns() - t0) / 1000.0);
			bad += st != EMBER_INVOKE_OK || res.len != o->payload;
		}
		inv_result_free(&res);
	}
	inv_client_destroy(cl);
	printf("{\"mode\":\"libwarm\",\"bad\":%u,", bad);
	print_samples("latency_us", &lat, false);
	printf("}\n");
}

/* --- load --- */

struct load_thread {
	const struct opts *o;
	const char *payload;
	unsigned id;
	uint64_t t0, end;
	uint64_t *start_ns;  /* per request: when it started (from t0) */
	uint32_t *lat_us;
	unsigned *status;
	size_t n, cap;
	pthread_t th;
};

static void *load_main(void *arg)
{
	struct load_thread *t = arg;
	struct conn c = { .path = t->o->socket, .fd = -1 };
	unsigned k = t->id;
	struct resp r;

	while (now_ns() < t->end) {
		char path[256];
		uint64_t s0 = now_ns();

		snprintf(path, sizeof(path), "/v1/functions/%s%u/invoke",
			 t->o->prefix, k++ % t->o->functions);
		http_do(&c, "POST", path, t->o->token, t->payload,
			t->o->payload, &r);
		if (t->n == t->cap) {
			t->cap = t->cap ? t->cap * 2 : 4096;
			t->start_ns = realloc(t->start_ns,
					      t->cap * sizeof(*t->start_ns));
			t->lat_us = realloc(t->lat_us, t->cap * sizeof(*t->lat_us));
			t->status = realloc(t->status, t->cap * sizeof(*t->status));
			if (!t->start_ns || !t->lat_us || !t->status)
				die("out of memory");
		}
		t->start_ns[t->n] = s0 - t->t0;
		t->lat_us[t->n] = (uint32_t)((now_ns() - s0) / 1000);
		t->status[t->n++] = (unsigned)r.status;
	}
	if (c.fd >= 0)
		close(c.fd);
	free(c.buf);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void mode_load(const struct opts *o, const char *payload)
{
	struct load_thread *ts = calloc(o->threads, sizeof(*ts));
	uint64_t t0 = now_ns(), span = (uint64_t)(o->seconds * 1e9);
	size_t nb = (size_t)(span / (o->bucket_ms * 1000000ull)) + 2;
	uint32_t **bl = calloc(nb, sizeof(*bl));
	size_t *bn = calloc(nb, sizeof(*bn)), *bcap = calloc(nb, sizeof(*bcap));
	unsigned long long ok = 0, total = 0, s429 = 0, s5xx = 0, other = 0;
	uint32_t *all = NULL;
	size_t nall = 0;

	for (unsigned i = 0; i < o->threads; i++) {
		ts[i] = (struct load_thread){ .o = o, .payload = payload,
					      .id = i, .t0 = t0,
					      .end = t0 + span };
		if (pthread_create(&ts[i].th, NULL, load_main, &ts[i]))
			die("pthread_create");
	}
	for (unsigned i = 0; i < o->threads; i++) {
		pthread_join(ts[i].th, NULL);
		all = realloc(all, (nall + ts[i].n + 1) * sizeof(*all));
		if (!all)
			die("out of memory");
		memcpy(all + nall, ts[i].lat_us, ts[i].n * sizeof(*all));
		nall += ts[i].n;
		for (size_t k = 0; k < ts[i].n; k++) {
			size_t b = (size_t)(ts[i].start_ns[k] /
					    (o->bucket_ms * 1000000ull));
			unsigned st = ts[i].status[k];

			total++;
			ok += st == 200;
			s429 += st == 429;
			s5xx += st >= 500;
			other += st != 200 && st != 429 && st < 500;
			if (b >= nb)
				b = nb - 1;
			if (bn[b] == bcap[b]) {
				bcap[b] = bcap[b] ? bcap[b] * 2 : 256;
				bl[b] = realloc(bl[b], bcap[b] * sizeof(**bl));
				if (!bl[b])
					die("out of memory");
			}
			bl[b][bn[b]++] = ts[i].lat_us[k];
		}
		free(ts[i].start_ns);
		free(ts[i].lat_us);
		free(ts[i].status);
	}
	qsort(all, nall, sizeof(*all), cmp_u32);
#define PCT(p) (nall ? all[(size_t)((nall * (p) + 99.0) / 100) - 1] : 0)
	printf("{\"mode\":\"load\",\"threads\":%u,\"requests\":%llu,"
	       "\"ok\":%llu,\"throttled\":%llu,\"server_errors\":%llu,"
	       "\"other\":%llu,\"duration_us\":%llu,\"p50_us\":%u,"
	       "\"p99_us\":%u,\"p999_us\":%u,\"bucket_ms\":%u,"
	       "\"buckets\":[",
	       o->threads, total, ok, s429, s5xx, other,
	       (unsigned long long)((now_ns() - t0) / 1000), PCT(50), PCT(99),
	       PCT(99.9), o->bucket_ms);
#undef PCT
	free(all);
	for (size_t b = 0; b < nb; b++) {
		uint32_t p50 = 0, p99 = 0;

		if (bn[b]) {
			qsort(bl[b], bn[b], sizeof(**bl), cmp_u32);
			p50 = bl[b][(bn[b] * 50 + 99) / 100 - 1];
			p99 = bl[b][(bn[b] * 99 + 99) / 100 - 1];
		}
		printf("%s{\"t_ms\":%llu,\"n\":%zu,\"p50_us\":%u,\"p99_us\":%u}",
		       b ? "," : "", (unsigned long long)(b * o->bucket_ms),
		       bn[b], p50, p99);
		free(bl[b]);
	}
	printf("]}\n");
	free(bl);
	free(bn);
	free(bcap);
	free(ts);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "token", required_argument, NULL, 't' },
		{ "admin", required_argument, NULL, 'a' },
		{ "function", required_argument, NULL, 'f' },
		{ "vsock", required_argument, NULL, 'V' },
		{ "mode", required_argument, NULL, 'm' },
		{ "n", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "payload", required_argument, NULL, 'p' },
		{ "pid", required_argument, NULL, 'P' },
		{ "threads", required_argument, NULL, 'T' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "functions", required_argument, NULL, 'F' },
		{ "prefix", required_argument, NULL, 'X' },
		{ "bucket-ms", required_argument, NULL, 'B' },
		{ "settle-ms", required_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .n = 500, .warmup = 100, .payload = 64,
			  .function = "echo", .threads = 1, .seconds = 5,
			  .functions = 1, .prefix = "f", .bucket_ms = 250 };
	char *payload;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': o.socket = optarg; break;
		case 't': o.token = optarg; break;
		case 'a': o.admin = optarg; break;
		case 'f': o.function = optarg; break;
		case 'V': o.vsock = optarg; break;
		case 'm': o.mode = optarg; break;
		case 'n': o.n = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'w': o.warmup = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'p': o.payload = strtoul(optarg, NULL, 10); break;
		case 'P': o.pid = atoi(optarg); break;
		case 'T': o.threads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'S': o.seconds = strtod(optarg, NULL); break;
		case 'F': o.functions = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'X': o.prefix = optarg; break;
		case 'B': o.bucket_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'L': o.settle_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: agent_client --mode "
				"warm|cold|libwarm|load [--socket P --token T "
				"--admin A --function F --pid PID] [--vsock P] "
				"[--n N] [--warmup N] [--payload BYTES] "
				"[--threads N --seconds S --functions N "
				"--prefix P --bucket-ms MS] [--settle-ms MS]\n");
			return 64;
		}
	}
	if (!o.mode || !o.n || o.payload > EMBER_INV_MAX_PAYLOAD)
		die("--mode and a positive --n are required");
	payload = malloc(o.payload + 1);
	for (size_t i = 0; i < o.payload; i++)
		payload[i] = (char)('a' + i % 26);
	if (!strcmp(o.mode, "libwarm")) {
		if (!o.vsock)
			die("libwarm needs --vsock");
		mode_libwarm(&o, payload);
	} else if (!o.socket || !o.token) {
		die("--socket and --token are required");
	} else if (!strcmp(o.mode, "warm")) {
		mode_warm(&o, payload);
	} else if (!strcmp(o.mode, "load")) {
		if (!o.threads || !o.functions || !o.bucket_ms || o.seconds <= 0)
			die("load needs positive --threads, --functions, "
			    "--seconds and --bucket-ms");
		mode_load(&o, payload);
	} else if (!strcmp(o.mode, "cold")) {
		if (!o.admin)
			die("cold needs --admin");
		mode_cold(&o, payload);
	} else {
		die("unknown mode %s", o.mode);
	}
	free(payload);
	return 0;
}
