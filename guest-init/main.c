/*
 * main.c - guest-init: process 1 of Ember's Linux guest.
 *
 * It mounts what a handler needs, reads its configuration, listens for the
 * host (vsock port 1024, or the Unix-socket seam), starts the handler once
 * and relays frames between the host and the handler exactly as the micro
 * guest does (relay.c), enforcing each INVOKE's deadline with a timer,
 * restarting a handler that dies, reaping every zombie, and powering the VM
 * off when asked or when the handler cannot go on. docs/guest-init.md.
 *
 * One thread, one poll() loop over: a signalfd (SIGCHLD and the power-off
 * signals), the deadline timerfd, the listener, the host connection and
 * the handler's three pipes. Nothing blocks except poll().
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "handler.h"
#include "log.h"
#include "pid1.h"
#include "relay.h"
#include "transport.h"

#define EX_USAGE_ 64
/* A handler that dies more often than this is not restarted again. */
#define RESTART_MAX 5
#define RESTART_WINDOW_NS (60ull * 1000000000ull)
/* How long a handler asked to stop (SIGTERM) gets before SIGKILL, and how
 * long guest-init keeps reporting to hosts before a failure power-off. */
#define STOP_GRACE_NS (2ull * 1000000000ull)
#define LINGER_NS (1000000000ull)
/* Handler output shown on the console per start, when no host takes it. */
#define CONSOLE_BUDGET (64u * 1024u)
#define IO_CHUNK (64u * 1024u)

static const char usage_text[] =
"NAME\n"
"    guest-init - process 1 of Ember's Linux guest\n"
"\n"
"SYNOPSIS\n"
"    guest-init [--transport vsock[:PORT] | unix:PATH] [--config FILE]\n"
"               [--verbose]\n"
"\n"
"DESCRIPTION\n"
"    Runs as /ember/init, the kernel's init (init=/ember/init). Mounts /dev\n"
"    (a tmpfs with console, null, zero, full, random, urandom, tty), /proc,\n"
"    /sys, /tmp, /run and /dev/shm; reads its configuration (FILE, else\n"
"    ember.conf=PATH from the kernel command line, else /ember/init.conf);\n"
"    listens for the host; starts the handler once, as the configured user,\n"
"    with exactly the configured environment; and relays the invocation\n"
"    protocol (docs/function-abi.md) between the host and the handler's\n"
"    stdin, stdout and stderr, as the micro guest does. READY goes out once\n"
"    the handler first waits for stdin (followed with ptrace until then).\n"
"\n"
"    An INVOKE's deadline is enforced here: when it passes, the host gets\n"
"    ERROR TIMEOUT, the connection is closed and the handler is killed and\n"
"    started again. A handler that crashes or exits is reported (ERROR\n"
"    CRASH) and started again, at most 5 times in 60 s; one that fails\n"
"    during initialisation, or ends cleanly (exit 0) between requests,\n"
"    powers the guest off. Every orphan is reaped.\n"
"\n"
"    SIGTERM, SIGINT, SIGUSR1, SIGUSR2 and SIGPWR ask for a power-off: the\n"
"    handler gets SIGTERM, then SIGKILL after 2 s, and the VM restarts\n"
"    through the i8042 (the kernel's reboot=k), which ends ember-vmm.\n"
"\n"
"OPTIONS\n"
"    --transport vsock[:PORT]  AF_VSOCK, any CID, PORT (default 1024): the\n"
"                 VM. The default.\n"
"    --transport unix:PATH     listen on the Unix socket PATH instead and\n"
"                 answer the hybrid-vsock handshake (\"CONNECT 1024\\n\" ->\n"
"                 \"OK ...\\n\") as ember-vmm would, so the same host\n"
"                 client works: the test seam. Run it as process 1 of a new\n"
"                 PID and mount namespace (unshare --pid --fork --mount);\n"
"                 it never steps the clock there, and \"power off\" is an\n"
"                 exit (status 0 asked or clean end, 1 failure).\n"
"    --config FILE  the configuration file (format: docs/guest-init.md)\n"
"    --verbose      more console messages (also: ember.debug on the kernel\n"
"                 command line)\n"
"    --help         this text\n"
"\n"
"    As process 1 of a VM, unknown arguments (kernel command line words the\n"
"    kernel passed on) are ignored with a warning instead of failing.\n";

struct gi {
	struct pid1 p1;
	struct conf conf;
	struct transport tr;
	struct relay relay;
	struct handler h;
	int running;               /* h is a live handler process */
	int conn;                  /* host connection, -1 = none */
	int conn_hs;               /* its handshake is not done yet */
	struct transport_hs hs;
	uint8_t early[TRANSPORT_HANDSHAKE_MAX]; /* bytes after the handshake */
	size_t nearly;
	int sigfd, tfd;
	uint64_t restarts[RESTART_MAX];
	size_t nrestarts;
	size_t console_used;
	int stopping;              /* power-off requested */
	int exit_status;           /* for the seam's exit */
	uint64_t stop_kill_ns;     /* SIGKILL the handler then (0 = n/a) */
	uint64_t linger_until_ns;  /* failure power-off: report until then */
	uint64_t stop_hard_ns;     /* power off then, flushed or not */
	unsigned long reaped;      /* orphans reaped */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int write_all_console(const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(2, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- relay callbacks ---- */

static void cb_deadline(void *ctx, uint32_t ms)
{
	struct gi *g = ctx;
	struct itimerspec its = { 0 };

	its.it_value.tv_sec = ms / 1000;
	its.it_value.tv_nsec = (long)(ms % 1000) * 1000000;
	if (timerfd_settime(g->tfd, 0, &its, NULL) < 0)
		log_msg("deadline timer: %s", strerror(errno));
}

static void cb_sync(void *ctx, uint64_t realtime_ns,
		    const uint8_t entropy[EMBER_INV_SYNC_ENTROPY])
{
	struct gi *g = ctx;

	pid1_sync(&g->p1, realtime_ns, entropy);
}

static void cb_kill(void *ctx, const char *why)
{
	struct gi *g = ctx;

	log_msg("killing the handler: %s", why);
	handler_kill(&g->h);
}

static void cb_console(void *ctx, const uint8_t *p, size_t n)
{
	struct gi *g = ctx;
	static const char note[] =
		"guest-init: further handler output not shown on the console\n";

	if (g->console_used >= CONSOLE_BUDGET)
		return;
	if (n > CONSOLE_BUDGET - g->console_used)
		n = CONSOLE_BUDGET - g->console_used;
	write_all_console(p, n);
	g->console_used += n;
	if (g->console_used >= CONSOLE_BUDGET)
		write_all_console((const uint8_t *)note, sizeof(note) - 1);
}

static const struct relay_ops ops = {
	.deadline = cb_deadline,
	.sync = cb_sync,
	.kill_handler = cb_kill,
	.console = cb_console,
};

/* ---- power off ---- */

/* Asks for the end of the guest. A failure (status != 0) keeps serving
 * (reporting to hosts) for LINGER_NS first; the handler, if running, is
 * asked to stop. */
static void request_stop(struct gi *g, int status, const char *why)
{
	if (g->stopping)
		return;
	log_msg("powering off: %s", why);
	g->stopping = 1;
	g->exit_status = status;
	g->linger_until_ns = status ? now_ns() + LINGER_NS : 0;
	/* A host that does not read must not keep the guest up. */
	g->stop_hard_ns = now_ns() + STOP_GRACE_NS + 2 * LINGER_NS;
	if (status && !g->relay.fatal[0])
		relay_set_fatal(&g->relay, why);
	if (g->running) {
		handler_signal(&g->h, SIGTERM);
		g->stop_kill_ns = now_ns() + STOP_GRACE_NS;
	}
}

static __attribute__((noreturn)) void finish(struct gi *g)
{
	pid1_kill_all(&g->p1, SIGKILL);
	transport_close(&g->tr);
	if (g->reaped)
		log_dbg("%lu orphans reaped", g->reaped);
	pid1_poweroff(&g->p1); /* returns only when not a VM */
	exit(g->exit_status);
}

/* ---- the handler ---- */

static int start_handler(struct gi *g)
{
	char err[256];

	g->console_used = 0;
	if (handler_start(&g->h, &g->conf, err, sizeof(err))) {
		log_msg("%s", err);
		/* A host waiting for READY hears why (ERROR id 0), and so does
		 * every host that connects until the power-off. */
		relay_handler_started(&g->relay);
		relay_handler_died(&g->relay, EMBER_ERR_INTERNAL, err);
		relay_set_fatal(&g->relay, err);
		return -1;
	}
	g->running = 1;
	relay_handler_started(&g->relay);
	if (g->h.ready)
		relay_handler_ready(&g->relay);
	log_dbg("handler %s started, pid %d%s", g->conf.handler, (int)g->h.pid,
		g->h.traced ? ", traced until it reads stdin" : "");
	return 0;
}

/* Reads what the handler left in its pipes (it is dead; they may still be
 * held open by its children, so only until they are empty). stderr first:
 * it wrote its last words before its last answer. */
static void drain_dead(struct gi *g)
{
	uint8_t *buf = malloc(IO_CHUNK);
	int *fds[2] = { &g->h.err, &g->h.out };
	ssize_t n;

	if (!buf)
		return;
	for (int i = 0; i < 2; i++) {
		while (*fds[i] >= 0 &&
		       (n = read(*fds[i], buf, IO_CHUNK)) > 0) {
			if (i == 0)
				relay_handler_stderr(&g->relay, buf, (size_t)n);
			else
				relay_handler_stdout(&g->relay, buf, (size_t)n);
		}
	}
	free(buf);
}

/* May the handler be started again? RESTART_MAX starts in the window. */
static int restart_allowed(struct gi *g)
{
	uint64_t t = now_ns();

	if (g->nrestarts == RESTART_MAX) {
		if (t - g->restarts[0] < RESTART_WINDOW_NS)
			return 0;
		memmove(g->restarts, g->restarts + 1,
			(RESTART_MAX - 1) * sizeof(g->restarts[0]));
		g->nrestarts--;
	}
	g->restarts[g->nrestarts++] = t;
	return 1;
}

static void handler_exited(struct gi *g, int status)
{
	int was_ready = g->relay.handler_ready || g->h.ready;
	int in_flight = g->relay.cur != 0, killed = g->relay.handler_gone;
	char desc[96], msg[192];
	uint32_t code = EMBER_ERR_CRASH;

	drain_dead(g);
	killed = killed || g->relay.handler_gone;
	handler_describe_status(status, desc, sizeof(desc));
	if (g->stopping)
		snprintf(msg, sizeof(msg), "handler stopped for the power-off (%s)",
			 desc);
	else if (WIFEXITED(status) && in_flight)
		snprintf(msg, sizeof(msg),
			 "handler %s before answering the request", desc);
	else if (!was_ready)
		snprintf(msg, sizeof(msg), "handler %s during initialisation",
			 desc);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		code = 0;
		snprintf(msg, sizeof(msg), "handler exited with status 0");
	} else
		snprintf(msg, sizeof(msg), "handler %s%s", desc,
			 in_flight ? "" : " between requests");
	relay_handler_died(&g->relay, code, msg);
	handler_release(&g->h);
	g->running = 0;
	/* A restart is a fresh instance: nothing the old handler started
	 * survives it. */
	pid1_kill_all(&g->p1, SIGKILL);
	if (!killed || g->stopping)
		log_msg("%s", msg);
	if (g->stopping)
		return;
	if (!was_ready) {
		relay_set_fatal(&g->relay, msg);
		request_stop(g, 1, "the handler cannot initialise");
	}
	else if (code == 0 && !killed)
		request_stop(g, 0, "the handler ended");
	else if (!restart_allowed(g))
		request_stop(g, 1, "the handler died 5 times within 60 s");
	else if (start_handler(g))
		request_stop(g, 1, "the handler cannot be started again");
}

static void reap(struct gi *g)
{
	int status, xst;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG | __WALL)) > 0) {
		switch (handler_wait_event(&g->h, pid, status, &xst)) {
		case HANDLER_EV_READY:
			log_dbg("handler waits for work");
			relay_handler_ready(&g->relay);
			break;
		case HANDLER_EV_EXIT:
			handler_exited(g, xst);
			break;
		default:
			if (WIFEXITED(status) || WIFSIGNALED(status))
				g->reaped++;
			break;
		}
	}
}

static void on_signals(struct gi *g)
{
	struct signalfd_siginfo si;
	char why[64];

	while (read(g->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			continue; /* reaped below, all at once */
		snprintf(why, sizeof(why), "asked to (signal %u)", si.ssi_signo);
		request_stop(g, 0, why);
	}
	reap(g);
}

/* ---- the host connection ---- */

static void close_conn(struct gi *g)
{
	if (g->conn < 0)
		return;
	close(g->conn);
	g->conn = -1;
	g->conn_hs = 0;
	g->nearly = 0;
	relay_host_detach(&g->relay);
}

static void accept_conn(struct gi *g)
{
	int fd = transport_accept(&g->tr, &g->hs, now_ns());

	if (fd < 0) {
		if (fd != -EAGAIN && fd != -EINTR && fd != -ECONNABORTED)
			log_msg("accept: %s", strerror(-fd));
		return;
	}
	g->conn = fd;
	g->conn_hs = transport_needs_handshake(&g->tr);
	if (!g->conn_hs)
		relay_host_attach(&g->relay);
}

static void conn_readable(struct gi *g, uint8_t *buf)
{
	ssize_t n;
	int r;

	if (g->conn_hs) {
		r = transport_handshake(&g->tr, g->conn, &g->hs, g->early,
					&g->nearly);
		if (r < 0) {
			log_dbg("handshake: %s", strerror(-r));
			close_conn(g);
		} else if (r > 0) {
			g->conn_hs = 0;
			relay_host_attach(&g->relay);
		}
		return;
	}
	n = read(g->conn, buf, IO_CHUNK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* EOF, or ECONNRESET: after a snapshot restore the vsock
		 * transport reset ends every connection the guest had. */
		log_dbg("host connection ended: %s",
			n ? strerror(errno) : "end of file");
		close_conn(g);
		return;
	}
	relay_host_input(&g->relay, buf, (size_t)n);
}

/* Writes queued bytes to fd. 0, or -errno (the peer is gone). */
static int write_queue(int fd, struct bq *q, int sock)
{
	const uint8_t *p;
	size_t len;
	ssize_t n;

	while ((len = bq_peek(q, &p)) > 0) {
		n = sock ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		bq_consume(q, (size_t)n);
	}
	return 0;
}

/* ---- the loop ---- */

enum { P_SIG, P_TIMER, P_LISTEN, P_CONN, P_IN, P_OUT, P_ERR, P_NR };

static int poll_timeout(const struct gi *g, uint64_t t)
{
	uint64_t next = 0;

	if (g->conn >= 0 && g->conn_hs)
		next = g->hs.deadline_ns;
	if (g->stop_kill_ns && (!next || g->stop_kill_ns < next))
		next = g->stop_kill_ns;
	if (g->linger_until_ns && (!next || g->linger_until_ns < next))
		next = g->linger_until_ns;
	if (g->stop_hard_ns && (!next || g->stop_hard_ns < next))
		next = g->stop_hard_ns;
	if (!next)
		return -1;
	return next <= t ? 0 : (int)((next - t + 999999) / 1000000);
}

static void read_pipe(struct gi *g, int *fd, int out, uint8_t *buf)
{
	ssize_t n = read(*fd, buf, IO_CHUNK);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* The handler closed it; no more polling of a dead end. */
		close(*fd);
		*fd = -1;
		return;
	}
	if (out)
		relay_handler_stdout(&g->relay, buf, (size_t)n);
	else
		relay_handler_stderr(&g->relay, buf, (size_t)n);
}

static __attribute__((noreturn)) void run(struct gi *g)
{
	struct pollfd pfd[P_NR];
	uint8_t *buf = malloc(IO_CHUNK);
	uint64_t t;
	int ret;

	if (!buf) {
		log_msg("out of memory");
		g->exit_status = 1;
		finish(g);
	}
	for (;;) {
		t = now_ns();
		if (g->stopping && g->stop_kill_ns && t >= g->stop_kill_ns) {
			handler_kill(&g->h);
			g->stop_kill_ns = 0;
		}
		if (g->stopping && !g->running &&
		    ((t >= g->linger_until_ns && !g->relay.to_host.bytes) ||
		     t >= g->stop_hard_ns))
			finish(g);
		if (g->conn >= 0 && g->conn_hs && t >= g->hs.deadline_ns) {
			log_dbg("handshake: no CONNECT line within %d ms",
				TRANSPORT_HANDSHAKE_MS);
			close_conn(g);
		}
		if (g->conn >= 0 && g->relay.closing && !g->relay.to_host.bytes)
			close_conn(g);
		/* Bytes that followed the handshake line: frames, once the
		 * host has been greeted (the host sends nothing before). */
		if (g->conn >= 0 && g->nearly && relay_wants_host_input(&g->relay)) {
			relay_host_input(&g->relay, g->early, g->nearly);
			g->nearly = 0;
		}

		for (int i = 0; i < P_NR; i++)
			pfd[i] = (struct pollfd){ .fd = -1 };
		pfd[P_SIG] = (struct pollfd){ .fd = g->sigfd, .events = POLLIN };
		pfd[P_TIMER] = (struct pollfd){ .fd = g->tfd, .events = POLLIN };
		if (g->conn < 0 && (!g->stopping || g->linger_until_ns))
			pfd[P_LISTEN] = (struct pollfd){ .fd = g->tr.lfd,
							 .events = POLLIN };
		if (g->conn >= 0) {
			pfd[P_CONN].fd = g->conn;
			if (g->conn_hs || relay_wants_host_input(&g->relay))
				pfd[P_CONN].events |= POLLIN;
			if (g->relay.to_host.bytes)
				pfd[P_CONN].events |= POLLOUT;
		}
		if (g->running && g->h.in >= 0 && g->relay.to_handler.bytes)
			pfd[P_IN] = (struct pollfd){ .fd = g->h.in,
						     .events = POLLOUT };
		if (g->running && g->relay.to_host.bytes < RELAY_TO_HOST_HIGH) {
			pfd[P_OUT] = (struct pollfd){ .fd = g->h.out,
						      .events = POLLIN };
			pfd[P_ERR] = (struct pollfd){ .fd = g->h.err,
						      .events = POLLIN };
		}

		ret = poll(pfd, P_NR, poll_timeout(g, t));
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			log_msg("poll: %s", strerror(errno));
			g->exit_status = 1;
			finish(g);
		}
		if (pfd[P_SIG].revents)
			on_signals(g);
		if (pfd[P_TIMER].revents & POLLIN) {
			uint64_t x;

			if (read(g->tfd, &x, sizeof(x)) == (ssize_t)sizeof(x))
				relay_deadline_passed(&g->relay);
		}
		/* stderr before stdout: a log line the handler wrote before
		 * its answer must reach the host before the answer does. */
		if (g->running && pfd[P_ERR].fd >= 0 && pfd[P_ERR].revents &&
		    g->h.err >= 0)
			read_pipe(g, &g->h.err, 0, buf);
		if (g->running && pfd[P_OUT].fd >= 0 && pfd[P_OUT].revents &&
		    g->h.out >= 0) {
			while (g->h.err >= 0) {
				ssize_t n = read(g->h.err, buf, IO_CHUNK);

				if (n <= 0)
					break;
				relay_handler_stderr(&g->relay, buf, (size_t)n);
			}
			read_pipe(g, &g->h.out, 1, buf);
		}
		if (g->running && pfd[P_IN].fd >= 0 && pfd[P_IN].revents &&
		    g->h.in >= 0 &&
		    write_queue(g->h.in, &g->relay.to_handler, 0) < 0) {
			/* It closed its stdin: it cannot take requests. */
			bq_clear(&g->relay.to_handler);
			close(g->h.in);
			g->h.in = -1;
		}
		if (g->conn >= 0 && pfd[P_CONN].fd == g->conn &&
		    (pfd[P_CONN].revents & POLLOUT) &&
		    write_queue(g->conn, &g->relay.to_host, 1) < 0)
			close_conn(g);
		if (g->conn >= 0 && pfd[P_CONN].fd == g->conn &&
		    (pfd[P_CONN].revents & (POLLIN | POLLHUP | POLLERR)))
			conn_readable(g, buf);
		if (g->conn < 0 && pfd[P_LISTEN].fd >= 0 &&
		    (pfd[P_LISTEN].revents & POLLIN))
			accept_conn(g);
	}
}

/* ---- start-up ---- */

static int read_file(const char *path, char **out, size_t *len, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0, cap = 4096;
	char *b = NULL, *nb;
	ssize_t r;

	if (fd < 0)
		return -errno;
	for (;;) {
		if (n == cap || !b) {
			if (b)
				cap *= 2;
			if (cap > max + 1)
				cap = max + 1;
			nb = realloc(b, cap);
			if (!nb) {
				free(b);
				close(fd);
				return -ENOMEM;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			free(b);
			close(fd);
			return (int)r;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			free(b);
			close(fd);
			return -EFBIG;
		}
	}
	close(fd);
	*out = b;
	*len = n;
	return 0;
}

static int load_config(struct gi *g, const char *path)
{
	char err[256], *text;
	size_t len;
	int ret;

	ret = read_file(path, &text, &len, CONF_MAX_BYTES);
	if (ret) {
		log_msg("configuration %s: %s", path, strerror(-ret));
		return ret;
	}
	ret = conf_parse(text, len, &g->conf, err, sizeof(err));
	free(text);
	if (ret)
		log_msg("configuration %s: %s", path, err);
	return ret;
}

static int setup_fds(struct gi *g)
{
	sigset_t set;

	/* SIGPIPE: a host or handler that went away is an error return,
	 * never our death (process 1 dying panics the kernel). */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGPWR);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	g->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (g->sigfd < 0)
		return -errno;
	g->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (g->tfd < 0)
		return -errno;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "transport", required_argument, NULL, 't' },
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static struct gi g;
	const char *transport = "vsock", *config = NULL;
	struct conf_cmdline cl;
	char err[256], *cmdline;
	size_t len;
	int opt, pid1 = getpid() == 1, ret;

	g.conn = g.sigfd = g.tfd = -1;
	opterr = !pid1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 't': transport = optarg; break;
		case 'c': config = optarg; break;
		case 'v': log_verbose = 1; break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			if (!pid1) {
				fprintf(stderr, "Try 'guest-init --help'.\n");
				return EX_USAGE_;
			}
			log_msg("ignoring an unknown option");
		}
	}
	for (int i = optind; i < argc; i++) {
		if (!pid1) {
			fprintf(stderr, "guest-init: unexpected argument '%s'\n"
				"Try 'guest-init --help'.\n", argv[i]);
			return EX_USAGE_;
		}
		log_msg("ignoring argument '%s' (from the kernel command line?)",
			argv[i]);
	}
	if (transport_parse(transport, &g.tr, err, sizeof(err))) {
		log_msg("--transport: %s", err);
		if (!pid1)
			return EX_USAGE_;
		transport_parse("vsock", &g.tr, err, sizeof(err));
	}

	pid1_init(&g.p1, g.tr.kind == TRANSPORT_VSOCK);
	pid1_mount_early(&g.p1);
	if (!config) {
		config = CONF_DEFAULT_FILE;
		if (g.p1.is_pid1 &&
		    !read_file("/proc/cmdline", &cmdline, &len, 4096)) {
			if (conf_parse_cmdline(cmdline, len, &cl, err,
					       sizeof(err)))
				log_msg("kernel command line: %s", err);
			else if (cl.verbose)
				log_verbose = 1;
			free(cmdline);
			config = strdup(cl.conf_path);
			if (!config)
				config = CONF_DEFAULT_FILE;
		}
	}
	relay_init(&g.relay, &ops, &g);
	ret = setup_fds(&g);
	if (ret) {
		log_msg("signalfd/timerfd: %s", strerror(-ret));
		g.exit_status = 1;
		finish(&g);
	}
	if (load_config(&g, config)) {
		g.exit_status = 1;
		finish(&g);
	}
	/* Listen before the late mounts: a Unix socket under /tmp must land
	 * on the host's /tmp, not on the namespace's new one. */
	if (transport_listen(&g.tr, err, sizeof(err))) {
		log_msg("cannot listen: %s", err);
		g.exit_status = 1;
		finish(&g);
	}
	pid1_mount_late(&g.p1);
	if (g.tr.kind == TRANSPORT_VSOCK)
		snprintf(err, sizeof(err), "vsock port %u", g.tr.port);
	else
		snprintf(err, sizeof(err), "unix:%s", g.tr.path);
	log_dbg("listening on %s, %s", err,
		g.p1.in_vm	 ? "in a VM"
		: g.p1.is_pid1 ? "PID 1 of a namespace"
			       : "not PID 1");
	if (start_handler(&g))
		request_stop(&g, 1, "the handler cannot be started");
	run(&g);
}
