/*
 * ember-invoke - send one request to a function instance and print the
 * result. Talks to a VM through its hybrid-vsock Unix socket (--vsock), or
 * runs a handler as a plain host process over pipes (--exec). A thin front
 * end over vmm/invoke.h; the only exit() calls are here.
 */
#define LOG_MOD "ember-invoke"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "invoke.h"
#include "log.h"
#include "proto/invoke.h"

#define EX_USAGE_ 64

static const char usage_text[] =
"NAME\n"
"    ember-invoke - invoke an Ember function instance once\n"
"\n"
"SYNOPSIS\n"
"    ember-invoke --vsock PATH [--port N] [OPTIONS]\n"
"    ember-invoke --exec CMD [OPTIONS]\n"
"\n"
"DESCRIPTION\n"
"    Reads one request payload (stdin, or --input FILE), sends it as an\n"
"    INVOKE frame, waits for the RESULT or ERROR and writes the result\n"
"    payload, byte for byte, to stdout. The function's log (LOG frames) is\n"
"    written to stderr after the result; messages from ember-invoke itself\n"
"    start with \"ember-invoke:\". The protocol is docs/function-abi.md.\n"
"\n"
"    --vsock PATH  connect to the VM's hybrid-vsock Unix socket PATH, send\n"
"                  \"CONNECT <port>\\n\", expect \"OK <n>\\n\", wait for\n"
"                  READY, then invoke.\n"
"    --exec CMD    run CMD (through /bin/sh -c) as a plain host process:\n"
"                  frames go to its stdin and come from its stdout; its\n"
"                  stderr is passed through. No READY is expected. When\n"
"                  done, its stdin is closed and its exit is awaited.\n"
"\n"
"OPTIONS\n"
"    --port N        guest vsock port (default 1024, EMBER_INV_VSOCK_PORT)\n"
"    --input FILE    read the request from FILE (\"-\" = stdin, default)\n"
"    --timeout MS    deadline per invocation in milliseconds, sent to the\n"
"                    instance and enforced here (default 30000). Connecting\n"
"                    counts too: a socket that does not exist yet, or a\n"
"                    CONNECT the VM refuses (its guest is not listening\n"
"                    yet), is retried every millisecond within it\n"
"    --log-cap BYTES log bytes kept per invocation; the rest is dropped\n"
"                    with a note (default 1048576)\n"
"    --repeat N      send the same request N times over one connection;\n"
"                    stdout gets the last result, stderr a line\n"
"                    \"stats n=N bytes=B p50_us=.. p99_us=.. min_us=..\n"
"                    max_us=.. mean_us=..\" of round-trip times\n"
"    --ping          send a PING instead of a request (no input is read):\n"
"                    wait for READY (--vsock), then time the PONG's round\n"
"                    trip; with --repeat N, N of them. Prints \"pong in N\n"
"                    us\" (or the stats line) on stderr\n"
"    --quiet         do not print the function's log\n"
"    --verbose       more messages from ember-invoke\n"
"    --help          this text\n"
"\n"
"LIMITS\n"
"    A request may be at most 6291456 bytes (6 MiB); a larger one is\n"
"    refused before anything is sent (exit 3).\n"
"\n"
"EXIT STATUS\n"
"    0   success: RESULT with status 0\n"
"    1   function error: RESULT with a non-zero status (its payload is still\n"
"        printed), or an ERROR frame (crash, out of memory, too large, ...)\n"
"    2   timeout: no answer within --timeout (or the instance reported one)\n"
"    3   transport or protocol error: cannot connect, handshake refused,\n"
"        connection closed, malformed frame, request over the limit, I/O\n"
"    64  usage error\n"
"\n"
"EXAMPLES\n"
"    echo -n hello | ember-invoke --vsock /run/ember/vm1.vsock\n"
"    ember-invoke --exec build/handlers/hash --input big.bin\n"
"    head -c 64 /dev/zero | ember-invoke --exec build/handlers/echo \\\n"
"        --repeat 1000 >/dev/null\n";

static void usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ember-invoke: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'ember-invoke --help'.\n");
	exit(EX_USAGE_);
}

static int parse_num(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Reads up to EMBER_INV_MAX_PAYLOAD + 1 bytes, so an over-limit request is
 * detected without reading an unbounded input. 0 or -errno. */
static int read_request(const char *path, uint8_t **buf, size_t *len)
{
	size_t cap = EMBER_INV_MAX_PAYLOAD + 1, n = 0;
	uint8_t *b = malloc(cap);
	int fd = 0, ret = 0;
	ssize_t r;

	if (!b)
		return -ENOMEM;
	if (path && strcmp(path, "-")) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			ret = -errno;
			goto err_free;
		}
	}
	while (n < cap) {
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			goto err_close;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (fd)
		close(fd);
	*buf = b;
	*len = n;
	return 0;

err_close:
	if (fd)
		close(fd);
err_free:
	free(b);
	return ret;
}

static pid_t spawn(const char *cmd, int *to_child, int *from_child)
{
	int in[2], out[2];
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		/* Its own process group, so that a timeout can kill the
		 * handler and anything it started, not just the shell. */
		setpgid(0, 0);
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
			_exit(127);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid); /* also here: no race with the kill below */
	close(in[0]);
	close(out[1]);
	if (pid < 0) {
		close(in[1]);
		close(out[0]);
		return -1;
	}
	*to_child = in[1];
	*from_child = out[0];
	return pid;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void print_stats(uint64_t *t, long n, size_t bytes)
{
	double sum = 0;
	long i;

	qsort(t, (size_t)n, sizeof(*t), cmp_u64);
	for (i = 0; i < n; i++)
		sum += (double)t[i];
	/* Nearest-rank percentiles. */
	fprintf(stderr,
		"stats n=%ld bytes=%zu p50_us=%.1f p99_us=%.1f min_us=%.1f "
		"max_us=%.1f mean_us=%.1f\n",
		n, bytes, t[(n - 1) * 50 / 100] / 1e3, t[(n - 1) * 99 / 100] / 1e3,
		t[0] / 1e3, t[n - 1] / 1e3, sum / (double)n / 1e3);
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	ssize_t w;

	while (n) {
		w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* --ping: READY first (a guest takes nothing before it), then `n` PING/PONG
 * round trips. Returns the exit status. */
static int run_pings(struct inv_client *c, int timeout_ms, uint64_t *t,
		     long n)
{
	static const char payload[16] = "ember-invoke-png";
	struct timespec a, b;
	long i;
	int ret;

	ret = inv_client_wait_ready(c, timeout_ms);
	for (i = 0; !ret && i < n; i++) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		ret = inv_client_ping(c, payload, sizeof(payload), timeout_ms);
		clock_gettime(CLOCK_MONOTONIC, &b);
		t[i] = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull +
		       (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec;
	}
	if (ret) {
		fprintf(stderr, "ember-invoke: ping: %s\n", strerror(-ret));
		return ret == -ETIMEDOUT ? EMBER_INVOKE_TIMEOUT
					 : EMBER_INVOKE_TRANSPORT;
	}
	if (n > 1)
		print_stats(t, n, sizeof(payload));
	else
		fprintf(stderr, "pong in %.1f us\n", (double)t[0] / 1e3);
	return EMBER_INVOKE_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vsock", required_argument, NULL, 'v' },
		{ "exec", required_argument, NULL, 'e' },
		{ "port", required_argument, NULL, 'p' },
		{ "input", required_argument, NULL, 'i' },
		{ "timeout", required_argument, NULL, 't' },
		{ "log-cap", required_argument, NULL, 'l' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "ping", no_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *vsock = NULL, *exec_cmd = NULL, *input = NULL;
	long port = EMBER_INV_VSOCK_PORT, timeout = 30000, repeat = 1;
	long log_cap = INV_LOG_CAP_DEFAULT;
	int quiet = 0, ping = 0, opt, err = 0, to_child = -1, from_child = -1;
	int wst;
	struct inv_result res = { 0 };
	struct inv_client *c = NULL;
	uint64_t *times = NULL;
	uint8_t *req = NULL;
	size_t len = 0;
	pid_t pid = -1;
	long i;
	int ret;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'v': vsock = optarg; break;
		case 'e': exec_cmd = optarg; break;
		case 'i': input = optarg; break;
		case 'q': quiet = 1; break;
		case 'P': ping = 1; break;
		case 'V': ember_log_set_level(EMBER_LOG_INFO); break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'p':
			if (parse_num(optarg, 0, UINT32_MAX, &port))
				usage_error("bad --port '%s'", optarg);
			break;
		case 't':
			if (parse_num(optarg, 1, 24L * 3600 * 1000, &timeout))
				usage_error("bad --timeout '%s' (1.. ms)", optarg);
			break;
		case 'l':
			if (parse_num(optarg, 0, 1L << 30, &log_cap))
				usage_error("bad --log-cap '%s'", optarg);
			break;
		case 'r':
			if (parse_num(optarg, 1, 10000000, &repeat))
				usage_error("bad --repeat '%s'", optarg);
			break;
		default:
			usage_error("%s", "unknown option");
		}
	}
	if (optind != argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!!vsock == !!exec_cmd)
		usage_error("%s", "give exactly one of --vsock PATH or --exec CMD");

	/* Writes to a handler that died must fail with EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);

	ret = ping ? 0 : read_request(input, &req, &len);
	if (ret) {
		fprintf(stderr, "ember-invoke: reading %s: %s\n",
			input ? input : "stdin", strerror(-ret));
		return EMBER_INVOKE_TRANSPORT;
	}
	if (len > EMBER_INV_MAX_PAYLOAD) {
		fprintf(stderr,
			"ember-invoke: request too large: more than %u bytes "
			"(the protocol's 6 MiB limit); nothing sent\n",
			EMBER_INV_MAX_PAYLOAD);
		free(req);
		return EMBER_INVOKE_TRANSPORT;
	}

	if (vsock) {
		c = inv_client_connect(vsock, (uint32_t)port, (int)timeout, &err);
		if (!c) {
			fprintf(stderr, "ember-invoke: connect %s port %ld: %s\n",
				vsock, port, strerror(-err));
			free(req);
			return err == -ETIMEDOUT ? EMBER_INVOKE_TIMEOUT
						 : EMBER_INVOKE_TRANSPORT;
		}
	} else {
		pid = spawn(exec_cmd, &to_child, &from_child);
		if (pid < 0) {
			fprintf(stderr, "ember-invoke: cannot start '%s': %s\n",
				exec_cmd, strerror(errno));
			free(req);
			return EMBER_INVOKE_TRANSPORT;
		}
		c = inv_client_from_fds(from_child, to_child, 1, &err);
		if (!c) {
			fprintf(stderr, "ember-invoke: %s\n", strerror(-err));
			close(to_child);
			close(from_child);
			waitpid(pid, NULL, 0);
			free(req);
			return EMBER_INVOKE_TRANSPORT;
		}
	}
	inv_client_set_log_cap(c, (size_t)log_cap);

	times = calloc((size_t)repeat, sizeof(*times));
	if (!times) {
		fprintf(stderr, "ember-invoke: out of memory\n");
		ret = EMBER_INVOKE_TRANSPORT;
		goto out;
	}
	if (ping) {
		ret = run_pings(c, (int)timeout, times, repeat);
		goto out;
	}
	for (i = 0; i < repeat; i++) {
		if (i)
			inv_result_free(&res);
		ret = (int)inv_client_invoke(c, req, len, (int)timeout, &res);
		times[i] = res.elapsed_ns;
		if (ret != EMBER_INVOKE_OK)
			break;
	}
	if (res.payload && write_all(1, res.payload, res.len)) {
		fprintf(stderr, "ember-invoke: writing the result: %s\n",
			strerror(errno));
		if (ret == EMBER_INVOKE_OK)
			ret = EMBER_INVOKE_TRANSPORT;
	}
	if (!quiet && res.logs_len)
		write_all(2, res.logs, res.logs_len);
	if (!quiet && res.logs_dropped)
		fprintf(stderr, "ember-invoke: %zu bytes of log dropped (cap %ld)\n",
			res.logs_dropped, log_cap);
	if (ret != EMBER_INVOKE_OK)
		fprintf(stderr, "ember-invoke: %s: %s (after %.1f ms)\n",
			ret == EMBER_INVOKE_FUNC_ERROR ? "function error"
			: ret == EMBER_INVOKE_TIMEOUT  ? "timeout"
						       : "transport error",
			res.msg, (double)res.elapsed_ns / 1e6);
	else if (repeat > 1)
		print_stats(times, repeat, len);

out:
	inv_client_destroy(c);
	if (pid > 0) {
		/* The handler ends at end of its stdin (destroy closed it); a
		 * hung one is killed after a timeout has already been
		 * reported. */
		if (ret == EMBER_INVOKE_TIMEOUT)
			kill(-pid, SIGKILL);
		if (waitpid(pid, &wst, 0) == pid && ret == EMBER_INVOKE_TRANSPORT) {
			if (WIFSIGNALED(wst))
				fprintf(stderr, "ember-invoke: handler killed by signal %d\n",
					WTERMSIG(wst));
			else if (WIFEXITED(wst))
				fprintf(stderr, "ember-invoke: handler exited with status %d\n",
					WEXITSTATUS(wst));
		}
	}
	inv_result_free(&res);
	free(times);
	free(req);
	return ret;
}
