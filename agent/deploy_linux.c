/*
 * deploy_linux.c - guest "linux" in the deploy pipeline (deploy_linux.h):
 * the image tool, the READY wait over vsock, the snapshot through the
 * control socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/deploy_linux.h"
#include "agent/util.h"
#include "invoke.h"
#include "proto/invoke.h"

extern char **environ;

/* What of the tool's stderr is kept to find its reason. */
#define TOOL_ERR_KEEP 4096u
/* One control command's reply: a snapshot of a large VM takes a while. */
#define CONTROL_REPLY_MS 120000

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The argv strings are never written: the casts only satisfy the
 * char *const * of execve. */
static char *unconst(const char *s)
{
	union { const char *c; char *m; } u = { .c = s };

	return u.m;
}

int deploy_linux_image_argv(const char *tool, const char *init,
			    const struct fn_manifest *m, const char *tree,
			    const char *out, char *buf, size_t buflen,
			    char **argv)
{
	size_t n = 0;
	int w;

	if (!tool || !init || !tree || !out ||
	    m->nr_env > MANIFEST_ENV_MAX)
		return -E2BIG;
	w = snprintf(buf, buflen, "/%s", m->handler);
	if (w < 0 || (size_t)w >= buflen)
		return -E2BIG;
	argv[n++] = unconst(tool);
	argv[n++] = unconst("--init");
	argv[n++] = unconst(init);
	argv[n++] = unconst("--tree");
	argv[n++] = unconst(tree);
	argv[n++] = unconst("--handler");
	argv[n++] = buf;
	for (size_t i = 0; i < m->nr_env; i++) {
		argv[n++] = unconst("--env");
		argv[n++] = m->env[i];
	}
	argv[n++] = unconst("--uid");
	argv[n++] = unconst(DEPLOY_LINUX_UID);
	argv[n++] = unconst("--epoch");
	argv[n++] = unconst("1");
	argv[n++] = unconst("--out");
	argv[n++] = unconst(out);
	argv[n] = NULL;
	return (int)n;
}

/* The reason in the tool's stderr: its last "error: " line, else its last
 * line, made printable. */
static void tool_reason(const char *err, size_t len, char *why, size_t whylen)
{
	const char *best = NULL, *last = NULL;
	size_t best_len = 0, last_len = 0;

	for (size_t i = 0; i < len;) {
		size_t j = i;

		while (j < len && err[j] != '\n')
			j++;
		if (j > i) {
			const char *e = memmem(err + i, j - i, "error: ", 7);

			last = err + i;
			last_len = j - i;
			if (e) {
				best = e + 7;
				best_len = (size_t)(err + j - best);
			}
		}
		i = j + 1;
	}
	if (!best) {
		best = last;
		best_len = last_len;
	}
	if (!best) {
		snprintf(why, whylen, "no message");
		return;
	}
	if (best_len > whylen - 1)
		best_len = whylen - 1;
	for (size_t i = 0; i < best_len; i++)
		why[i] = best[i] >= 0x20 && best[i] < 0x7f ? best[i] : '?';
	why[best_len] = '\0';
}

int deploy_linux_run_image(int dir_fd, const char *tmp_dir, char *const *argv,
			   uint32_t timeout_ms, char *why, size_t whylen)
{
	char err[TOOL_ERR_KEEP], path_env[4096], tmp_env[4096 + 8];
	char *envp[] = { path_env, tmp_env, unconst("LC_ALL=C"), NULL };
	const char *path = getenv("PATH");
	uint64_t deadline = now_us() + (uint64_t)timeout_ms * 1000u;
	size_t elen = 0;
	int p[2], status, ret;
	bool timed_out = false;
	pid_t pid;

	/* mkfs.ext4, debugfs and dumpe2fs live in sbin, which a daemon's
	 * PATH may lack. Nothing else of emberd's environment is passed. */
	snprintf(path_env, sizeof(path_env), "PATH=%s:/usr/sbin:/sbin",
		 path && path[0] ? path : "/usr/local/bin:/usr/bin:/bin");
	snprintf(tmp_env, sizeof(tmp_env), "TMPDIR=%s", tmp_dir);
	if (pipe2(p, O_CLOEXEC)) {
		int e = errno; /* formatting may change errno */

		snprintf(why, whylen, "pipe: %s", strerror(e));
		return -e;
	}
	/* Its own process group: a timeout ends fakeroot and mkfs too. */
	ret = util_spawn(&pid, argv, envp, dir_fd, p[1], -1, true);
	close(p[1]);
	if (ret) {
		close(p[0]);
		snprintf(why, whylen, "cannot start the image tool %s: %s",
			 argv[0], strerror(ret));
		return -ret;
	}
	for (;;) {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		uint64_t t = now_us();
		char buf[1024];
		ssize_t n;

		if (t >= deadline) {
			timed_out = true;
			break;
		}
		if (poll(&pf, 1, (int)((deadline - t) / 1000 + 1)) <= 0)
			continue;
		n = read(p[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		/* Keep the tail: the reason comes last. */
		if ((size_t)n > sizeof(err))
			n = sizeof(err);
		if (elen + (size_t)n > sizeof(err)) {
			size_t drop = elen + (size_t)n - sizeof(err);

			memmove(err, err + drop, elen - drop);
			elen -= drop;
		}
		memcpy(err + elen, buf, (size_t)n);
		elen += (size_t)n;
	}
	close(p[0]);
	if (timed_out)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			snprintf(why, whylen, "the image tool: %s",
				 strerror(errno));
			return -ECHILD;
		}
	if (timed_out) {
		snprintf(why, whylen, "the image tool did not finish within "
			 "%u ms", timeout_ms);
		return -ETIMEDOUT;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	tool_reason(err, elen, why, whylen);
	if (WIFSIGNALED(status)) {
		size_t l = strlen(why);

		snprintf(why + l, whylen - l, " (killed by signal %d)",
			 WTERMSIG(status));
		return -EIO;
	}
	/* Exit 1: the inputs (the tenant's tree) were refused; 64 is ours. */
	return WEXITSTATUS(status) == 1 ? -EINVAL : -EIO;
}

/* Has the child `pid` ended? (Peeks: the caller reaps it.) */
static bool child_ended(pid_t pid)
{
	siginfo_t si = { 0 };

	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) ==
		       0 && si.si_pid == pid;
}

static int ms_until(uint64_t deadline_us)
{
	uint64_t t = now_us();

	if (t >= deadline_us)
		return 0;
	return (deadline_us - t) / 1000u > 1000000000u ?
		       1000000000 : (int)((deadline_us - t) / 1000u) + 1;
}

/* One command on the VMM's stream control socket and its "OK ..." reply
 * (docs/shell.md, "The stream control socket"). */
static int control_cmd(int fd, const char *cmd, char *why, size_t whylen)
{
	char reply[512];
	size_t len = 0, cl = strlen(cmd);
	uint64_t deadline = now_us() + (uint64_t)CONTROL_REPLY_MS * 1000u;

	if (write(fd, cmd, cl) != (ssize_t)cl) {
		snprintf(why, whylen, "control \"%.*s\": %s", (int)cl - 1, cmd,
			 strerror(errno));
		return -EIO;
	}
	while (len < sizeof(reply) - 1) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t n;
		int left = ms_until(deadline);

		if (!left || poll(&pf, 1, left) == 0) {
			snprintf(why, whylen, "control \"%.*s\": no reply "
				 "within %d ms", (int)cl - 1, cmd,
				 CONTROL_REPLY_MS);
			return -EIO;
		}
		n = read(fd, reply + len, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(why, whylen, "control \"%.*s\": the VMM closed "
				 "the socket", (int)cl - 1, cmd);
			return -EIO;
		}
		if (reply[len] == '\n')
			break;
		len++;
	}
	reply[len] = '\0';
	if (strncmp(reply, "OK", 2)) {
		for (size_t i = 0; i < len; i++)
			if (reply[i] < 0x20 || reply[i] >= 0x7f)
				reply[i] = '?';
		snprintf(why, whylen, "control \"%.*s\": %s", (int)cl - 1, cmd,
			 reply);
		return -EIO;
	}
	return 0;
}

static int control_connect(int dir_fd, uint64_t deadline_us, char *why,
			   size_t whylen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s",
		 dir_fd, DEPLOY_CONTROL);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			break;
		if (!connect(fd, (const struct sockaddr *)&sa, sizeof(sa)))
			return fd;
		close(fd);
		if ((errno != ENOENT && errno != ECONNREFUSED) ||
		    !ms_until(deadline_us))
			break;
		poll(NULL, 0, 10);
	}
	snprintf(why, whylen, "the VMM's control socket: %s", strerror(errno));
	return -1;
}

int deploy_snapshot_at_ready(int dir_fd, pid_t pid, uint64_t deadline_us,
			     bool carry, bool *ready, uint64_t *ready_us,
			     char *why, size_t whylen)
{
	char vsock[64];
	struct inv_client *c = NULL;
	int err = 0, ctl, ret;

	*ready = false;
	snprintf(vsock, sizeof(vsock), "/proc/self/fd/%d/%s", dir_fd,
		 DEPLOY_VSOCK);
	/* The guest listens once its kernel has booted and guest-init has
	 * started: until then the socket is missing (ENOENT) or CONNECT is
	 * refused. One attempt every 20 ms (each refusal costs the booting
	 * guest a reset packet), so that a VMM that ended is noticed too. */
	while (!c) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int left = ms_until(deadline_us), fd;

		if (child_ended(pid)) {
			snprintf(why, whylen, "the VM ended before its guest "
				 "listened on vsock");
			return -EPIPE;
		}
		if (!left) {
			snprintf(why, whylen, "the guest did not listen on "
				 "vsock in time");
			return -ETIMEDOUT;
		}
		memcpy(sa.sun_path, vsock, strlen(vsock) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(why, whylen, "socket: %s", strerror(errno));
			return -EIO;
		}
		if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa))) {
			err = -errno;
			close(fd);
		} else {
			/* Takes fd over. */
			c = inv_client_handshake_fd(fd, EMBER_INV_VSOCK_PORT,
						    left < 5000 ? left : 5000,
						    &err);
		}
		if (!c && err != -ENOENT && err != -ECONNREFUSED &&
		    err != -ETIMEDOUT && err != -ECONNRESET && err != -EPIPE &&
		    err != -EAGAIN) {
			snprintf(why, whylen, "connecting to the guest: %s",
				 strerror(-err));
			return -EIO;
		}
		if (!c)
			poll(NULL, 0, 20);
	}
	/* READY comes once the handler waits for its first request. */
	ret = inv_client_wait_ready(c, ms_until(deadline_us));
	if (ret || !carry) {
		inv_client_destroy(c);
		c = NULL;
	}
	if (ret == -ETIMEDOUT) {
		snprintf(why, whylen, "no READY in time");
		return -ETIMEDOUT;
	}
	if (ret) {
		snprintf(why, whylen, "the guest ended the connection before "
			 "READY (%s)", strerror(-ret));
		return -EPIPE;
	}
	*ready = true;
	*ready_us = now_us();
	ctl = control_connect(dir_fd, deadline_us, why, whylen);
	if (ctl < 0) {
		inv_client_destroy(c);
		return -EIO;
	}
	ret = control_cmd(ctl, "pause\n", why, whylen);
	if (!ret)
		ret = control_cmd(ctl, "snapshot snapshot\n", why, whylen);
	/* Stopped either way; its exit is the caller's to collect. */
	if (control_cmd(ctl, "stop\n", why, ret ? 0 : whylen) && !ret)
		ret = -EIO;
	close(ctl);
	inv_client_destroy(c); /* (NULL without carry) */
	return ret;
}
