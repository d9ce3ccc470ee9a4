/*
 * util.c - the cold-start benchmark's helpers: time and samples, child
 * processes (recorded, killed and reaped on every exit path), sockets.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coldstart.h"

extern char **environ;

/* ---------------------------------------------------------------------
 * Time and samples
 */
uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double us_since(uint64_t t0, uint64_t t1)
{
	return (double)(t1 - t0) / 1000.0;
}

void s_add(struct samples *s, double x)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		double *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			die("out of memory");
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentiles over a sorted copy (the samples keep their
 * order: the JSON keeps them as measured). */
struct stats s_stats(const struct samples *s)
{
	struct stats st = { .n = s->n };
	double *v, sum = 0;

	if (!s->n)
		return st;
	v = malloc(s->n * sizeof(*v));
	if (!v)
		die("out of memory");
	memcpy(v, s->v, s->n * sizeof(*v));
	qsort(v, s->n, sizeof(*v), cmp_double);
	for (size_t i = 0; i < s->n; i++)
		sum += v[i];
	st.min = v[0];
	st.max = v[s->n - 1];
	st.mean = sum / (double)s->n;
	st.p50 = v[(s->n * 50 + 99) / 100 - 1];
	st.p99 = v[(s->n * 99 + 99) / 100 - 1];
	free(v);
	return st;
}

double s_median(const struct samples *s)
{
	return s_stats(s).p50;
}

/* ---------------------------------------------------------------------
 * Children: every pid we start is recorded so that any exit path kills
 * and reaps it.
 */
static pid_t g_kids[MAX_KIDS];
volatile sig_atomic_t g_nkids;

void kid_add(pid_t pid)
{
	if (g_nkids >= MAX_KIDS) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		die("more than %d children", MAX_KIDS);
	}
	g_kids[g_nkids] = pid;
	g_nkids = g_nkids + 1;
}

void kid_forget(pid_t pid)
{
	for (int i = 0; i < g_nkids; i++)
		if (g_kids[i] == pid) {
			g_kids[i] = g_kids[g_nkids - 1];
			g_nkids = g_nkids - 1;
			return;
		}
}

/* Kills `pid` and waits for it; returns its wait status. */
int kid_reap(pid_t pid)
{
	int st = 0;

	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	kid_forget(pid);
	return st;
}

void kids_kill_all(void)
{
	/* Signal first, then reap: 500 clones die in parallel. */
	for (int i = 0; i < g_nkids; i++)
		kill(g_kids[i], SIGKILL);
	while (g_nkids > 0)
		kid_reap(g_kids[g_nkids - 1]);
}

void on_fatal_signal(int sig)
{
	/* Async-signal-safe: kill() and waitpid() only. */
	for (int i = 0; i < g_nkids; i++)
		kill(g_kids[i], SIGKILL);
	for (int i = 0; i < g_nkids; i++)
		waitpid(g_kids[i], NULL, 0);
	signal(sig, SIG_DFL);
	raise(sig);
}

void die(const char *fmt, ...)
{
	va_list ap;

	fputs("coldstart: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	kids_kill_all();
	exit(1);
}

int g_errlog = -1; /* children's stderr */
pid_t g_spawn_pgroup = -1; /* -1: ours; 0: a new group; >0: join */

pid_t spawn(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	pid_t pid;
	int ret;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (g_errlog >= 0)
		posix_spawn_file_actions_adddup2(&fa, g_errlog, 2);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	if (g_spawn_pgroup >= 0) {
		posix_spawnattr_setpgroup(&at, g_spawn_pgroup);
		posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETPGROUP);
	} else {
		posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	}
	ret = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (ret) {
		errno = ret;
		return -1;
	}
	kid_add(pid);
	return pid;
}

/* Minor faults of a process so far (/proc/PID/stat field 10), -1 if not
 * readable. */
long proc_minflt(pid_t pid)
{
	char path[64], buf[1024], *p;
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')'))) {
		/* after ")": state ppid pgrp session tty tpgid flags minflt */
		if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %ld", &v) != 1)
			v = -1;
	}
	fclose(f);
	return v;
}

/* ---------------------------------------------------------------------
 * Sockets: waiting with a deadline, connecting while the peer starts
 */
int wait_fd(int fd, short ev, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = ev };
	uint64_t t = now_ns();
	int ms, r;

	if (t >= deadline)
		return -ETIMEDOUT;
	ms = (int)((deadline - t + 999999) / 1000000);
	r = poll(&p, 1, ms);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* Connects to the Unix socket `path`, retrying every ~20 us while it does
 * not exist or nobody listens yet; gives up when child `pid` (if > 0)
 * has exited or at `deadline`. Returns the fd or -errno. */
int connect_wait(const char *path, pid_t pid, uint64_t deadline)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const struct timespec pause = { 0, 20000 };

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

		if (fd < 0)
			return -errno;
		if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			return fd;
		e = errno;
		close(fd);
		if (e != ENOENT && e != ECONNREFUSED && e != EAGAIN &&
		    e != EINTR)
			return -e;
		if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid) {
			kid_forget(pid);
			return -ECHILD;
		}
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
}

int read_full(int fd, void *buf, size_t len, uint64_t deadline)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		if (wait_fd(fd, POLLIN, deadline) < 0)
			return -ETIMEDOUT;
	}
	return 0;
}

bool want(struct cfg *c, char s)
{
	return !c->only[0] || strchr(c->only, s);
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		die("out of memory");
	va_end(ap);
	return s;
}
