/*
 * qemu.c - scenario d, the peer: QEMU microvm migrated to a file once,
 * restored with -incoming until QMP says "running".
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coldstart.h"
#include "ember.h"

/* ---------------------------------------------------------------------
 * d: QEMU microvm, migrated to a file once, restored with -incoming
 */
struct qmp {
	int fd;
	char buf[65536];
	size_t len;
};

/* Reads one line (a QMP message) into q->buf; 0 or -errno. */
static int qmp_line(struct qmp *q, char *line, size_t cap, uint64_t deadline)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);

		if (nl) {
			size_t n = (size_t)(nl - q->buf) + 1;
			size_t cp = n < cap ? n : cap - 1;

			memcpy(line, q->buf, cp);
			line[cp] = 0;
			memmove(q->buf, q->buf + n, q->len - n);
			q->len -= n;
			return 0;
		}
		if (q->len == sizeof(q->buf))
			return -E2BIG;
		ssize_t r = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
		if (r > 0) {
			q->len += (size_t)r;
			continue;
		}
		if (r == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		if (wait_fd(q->fd, POLLIN, deadline) < 0)
			return -ETIMEDOUT;
	}
}

/* Sends `cmd` and returns its reply line (events are skipped). */
static int qmp_cmd(struct qmp *q, const char *cmd, char *reply, size_t cap,
		   uint64_t deadline)
{
	size_t len = strlen(cmd);
	int r;

	if (write(q->fd, cmd, len) != (ssize_t)len || write(q->fd, "\n", 1) != 1)
		return -EIO;
	do {
		r = qmp_line(q, reply, cap, deadline);
		if (r < 0)
			return r;
	} while (!strstr(reply, "\"return\"") && !strstr(reply, "\"error\""));
	return strstr(reply, "\"error\"") ? -EPROTO : 0;
}

/* Connects to QEMU's QMP socket and leaves capabilities negotiation. */
static int qmp_open(struct qmp *q, const char *path, pid_t pid,
		    uint64_t deadline)
{
	char line[4096];
	int r;

	q->len = 0;
	q->fd = connect_wait(path, pid, deadline);
	if (q->fd < 0)
		return q->fd;
	fcntl(q->fd, F_SETFL, O_NONBLOCK);
	r = qmp_line(q, line, sizeof(line), deadline); /* greeting */
	if (!r)
		r = qmp_cmd(q, "{\"execute\":\"qmp_capabilities\"}", line,
			    sizeof(line), deadline);
	if (r < 0)
		close(q->fd);
	return r;
}

static void qemu_argv(struct cfg *c, char **argv, const char *qmp,
		      const char *incoming, bool paused)
{
	static char qmparg[PATH_MAX + 64], inarg[PATH_MAX + 16];
	int k = 0;

	snprintf(qmparg, sizeof(qmparg), "unix:%s,server=on,wait=off", qmp);
	argv[k++] = c->qemu;
	argv[k++] = "-M";
	argv[k++] = "microvm";
	argv[k++] = "-enable-kvm";
	argv[k++] = "-cpu";
	argv[k++] = "host,-arch-capabilities,-cx16";
	argv[k++] = "-m";
	argv[k++] = "256";
	argv[k++] = "-nodefaults";
	argv[k++] = "-no-user-config";
	argv[k++] = "-nographic";
	if (paused)
		argv[k++] = "-S";
	argv[k++] = "-qmp";
	argv[k++] = qmparg;
	if (incoming) {
		snprintf(inarg, sizeof(inarg), "exec:cat %s", incoming);
		argv[k++] = "-incoming";
		argv[k++] = inarg;
	}
	argv[k] = NULL;
}

/* Boots an empty microvm (qboot firmware, no kernel), lets it run, and
 * migrates it to `state`. */
static int qemu_save(struct cfg *c, const char *state,
		     struct qemu_result *qr)
{
	char *qmp = xasprintf("%s/qemu-save.qmp", c->work), *argv[24];
	char cmd[PATH_MAX + 128], line[8192];
	uint64_t deadline = now_ns() + 30000000000ull;
	struct qmp q;
	pid_t pid;
	int r;

	unlink(qmp);
	qemu_argv(c, argv, qmp, NULL, true);
	pid = spawn(argv);
	if (pid < 0) {
		snprintf(qr->error, sizeof(qr->error), "spawn %s: %s", c->qemu,
			 strerror(errno));
		free(qmp);
		return -1;
	}
	r = qmp_open(&q, qmp, pid, deadline);
	if (r < 0) {
		snprintf(qr->error, sizeof(qr->error), "QMP: %s", strerror(-r));
		goto out;
	}
	r = qmp_cmd(&q, "{\"execute\":\"cont\"}", line, sizeof(line), deadline);
	usleep(200000); /* let the firmware run before the state is taken */
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate\",\"arguments\":"
		 "{\"uri\":\"exec:cat > %s\"}}", state);
	if (!r)
		r = qmp_cmd(&q, cmd, line, sizeof(line), deadline);
	while (!r) {
		r = qmp_cmd(&q, "{\"execute\":\"query-migrate\"}", line,
			    sizeof(line), deadline);
		if (r || strstr(line, "\"completed\""))
			break;
		if (strstr(line, "\"failed\"")) {
			r = -EIO;
			break;
		}
		usleep(10000);
	}
	if (r < 0)
		snprintf(qr->error, sizeof(qr->error), "save: %s: %.120s",
			 strerror(-r), line);
	close(q.fd);
out:
	kid_reap(pid);
	unlink(qmp);
	free(qmp);
	return r;
}

/* Spawn -> QMP query-status "running". */
static int qemu_restore_once(struct cfg *c, const char *state,
			     struct qemu_result *qr)
{
	char *qmp = xasprintf("%s/qemu.qmp", c->work), *argv[24], line[4096];
	struct qmp q;
	uint64_t t0, deadline;
	pid_t pid;
	int r;

	unlink(qmp);
	qemu_argv(c, argv, qmp, state, false);
	t0 = now_ns();
	deadline = t0 + 30000000000ull;
	pid = spawn(argv);
	if (pid < 0) {
		free(qmp);
		return -errno;
	}
	r = qmp_open(&q, qmp, pid, deadline);
	if (r < 0)
		goto out;
	s_add(&qr->qmp_sock, us_since(t0, now_ns()));
	for (;;) {
		r = qmp_cmd(&q, "{\"execute\":\"query-status\"}", line,
			    sizeof(line), deadline);
		if (r < 0)
			break;
		if (strstr(line, "\"running\": true") ||
		    strstr(line, "\"running\":true")) {
			s_add(&qr->total, us_since(t0, now_ns()));
			break;
		}
		/* A source that was paused gives a paused destination. */
		if (strstr(line, "\"paused\"")) {
			r = qmp_cmd(&q, "{\"execute\":\"cont\"}", line,
				    sizeof(line), deadline);
			if (r < 0)
				break;
		}
		usleep(200);
	}
	close(q.fd);
out:
	kid_reap(pid);
	unlink(qmp);
	free(qmp);
	return r;
}

void run_qemu(struct cfg *c, struct qemu_result *qr)
{
	char *state = xasprintf("%s/qemu-state", c->work);
	char *kerr = xasprintf("%s/qemu-kernel.err", c->work);
	char *vcmd = xasprintf("%s --version 2>&1", c->qemu);
	struct stat st;
	FILE *f;
	int r;

	/* Version, and whether microvm takes the micro guest ELF. */
	f = popen(vcmd, "r");
	free(vcmd);
	if (f) {
		if (fgets(qr->version, sizeof(qr->version), f))
			qr->version[strcspn(qr->version, "\n")] = 0;
		pclose(f);
	}
	{
		char *ember_micro = xasprintf("%.*s/ember-micro",
			(int)(strrchr(c->vmm, '/') ? strrchr(c->vmm, '/') - c->vmm : 1),
			strrchr(c->vmm, '/') ? c->vmm : ".");
		char *cmd = xasprintf("timeout 10 %s -M microvm -enable-kvm -cpu "
			"host,-arch-capabilities,-cx16 -m 256 -nodefaults "
			"-no-user-config -display none -S -kernel %s "
			"</dev/null >/dev/null 2>%s", c->qemu, ember_micro, kerr);
		int rc = system(cmd);

		snprintf(qr->kernel_attempt, sizeof(qr->kernel_attempt),
			 "exit %d", WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
		f = fopen(kerr, "r");
		if (f) {
			char l[200];

			if (fgets(l, sizeof(l), f)) {
				l[strcspn(l, "\n")] = 0;
				snprintf(qr->kernel_attempt,
					 sizeof(qr->kernel_attempt),
					 "-kernel ember-micro: %s", l);
			}
			fclose(f);
		}
		free(cmd);
		free(ember_micro);
	}
	if (qemu_save(c, state, qr) < 0)
		goto out;
	if (!stat(state, &st))
		qr->state_bytes = (long)st.st_size;
	for (unsigned i = 0; i < c->runs_d; i++) {
		r = qemu_restore_once(c, state, qr);
		if (r < 0 && !qr->error[0])
			snprintf(qr->error, sizeof(qr->error), "restore run %u: %s",
				 i, strerror(-r));
	}
	qr->ok = qr->total.n > 0;
out:
	unlink(state);
	free(state);
	free(kerr);
}
