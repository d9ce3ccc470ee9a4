/*
 * scenarios.c - the Ember scenarios: a, c, g (a new ember-vmm process per
 * cold start), b, b2 (restores through libember in this process), f
 * (restores per second), the working set g records, and h (b over the
 * connection a snapshot carries).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coldstart.h"
#include "ember.h"
#include "invoke.h"
#include "proto/invoke.h"

/* ---------------------------------------------------------------------
 * a, c, g: a new ember-vmm process per cold start
 */
static int process_start(char *const argv[], const char *sock, struct run *r,
			 char *why, size_t whylen)
{
	uint64_t t0;
	pid_t pid;
	int ret;

	unlink(sock);
	memset(r, 0, sizeof(*r));
	r->minflt = -1;
	t0 = now_ns();
	pid = spawn(argv);
	if (pid < 0) {
		ret = -errno;
		snprintf(why, whylen, "spawn %s: %s", argv[0], strerror(-ret));
		return ret;
	}
	ret = start_session(sock, pid, t0, r, why, whylen);
	kid_reap(pid);
	unlink(sock);
	return ret;
}

void run_process_series(struct cfg *c, struct series *s,
			unsigned n, bool prefetch, bool boot,
			const char *tag)
{
	char *sock = xasprintf("%s/%s.sock", c->work, tag);
	char why[256];
	struct run r;

	for (unsigned i = 0; i < n; i++) {
		char *argv[16];
		int k = 0;

		argv[k++] = c->vmm;
		argv[k++] = "-q";
		if (boot) {
			argv[k++] = "--micro";
			argv[k++] = "--handler";
			argv[k++] = c->handler;
		} else {
			argv[k++] = "--restore";
			argv[k++] = c->snap;
		}
		if (prefetch)
			argv[k++] = "--prefetch";
		argv[k++] = "--vsock";
		argv[k++] = sock;
		argv[k++] = "--serial";
		argv[k++] = "none";
		argv[k++] = "--timeout";
		argv[k++] = "60";
		argv[k] = NULL;
		if (process_start(argv, sock, &r, why, sizeof(why)) < 0)
			series_fail(s, "%s run %u: %s", tag, i, why);
		else
			series_add(s, &r);
	}
	free(sock);
}

/* Process exec cost of the VMM binary alone: `ember-vmm --help`, spawn to
 * exit (includes the dynamic loader and exit). */
void run_exec_only(struct cfg *c, struct samples *s, unsigned n)
{
	char *argv[] = { c->vmm, "--help", NULL };

	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		pid_t pid = spawn(argv);

		if (pid < 0)
			die("spawn %s: %s", c->vmm, strerror(errno));
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		kid_forget(pid);
		s_add(s, us_since(t0, now_ns()));
	}
}

/* ---------------------------------------------------------------------
 * b, b2: restores through libember in this process
 */
struct vmthread {
	struct ember_vm *vm;
	struct ember_exit ex;
	int ret;
};

static void *vm_thread(void *arg)
{
	struct vmthread *t = arg;

	t->ret = ember_vm_run(t->vm, &t->ex);
	return NULL;
}

static bool g_irqchip; /* the snapshot's shell shape, probed once */

/* One library cold start. With `shell`, restore into it (created off the
 * clock by the caller); else ember_vm_restore() on the clock. */
static int lib_start(struct cfg *c, const struct lib_opts *o,
		     struct ember_shell *shell, const char *sock,
		     struct trace *tr, struct run *r, char *why, size_t whylen)
{
	struct ember_restore rs;
	struct vmthread th = { 0 };
	char err[256] = "";
	pthread_t tid;
	uint64_t t0, t1;
	int ret, sp[2] = { -1, -1 };

	ember_restore_init(&rs);
	rs.dir = o->snap ? o->snap : c->snap;
	rs.timeout_ms = 60000;
	rs.prefetch = o->prefetch;
	if (o->carry) {
		/* sp[0] ours, sp[1] the VM's (it keeps a duplicate). */
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
			die("socketpair: %s", strerror(errno));
		rs.vsock_carry_fd = sp[1];
	} else {
		rs.vsock_path = sock;
	}
	unlink(sock);
	memset(r, 0, sizeof(*r));
	r->minflt = -1;
	__atomic_store_n(&g_first_run_ns, 0, __ATOMIC_RELAXED);
	if (tr)
		tr_arm(tr);
	t0 = now_ns();
	th.vm = shell ? ember_shell_restore(shell, &rs, &ret, err, sizeof(err))
		      : ember_vm_restore(&rs, &ret, err, sizeof(err));
	t1 = now_ns();
	if (tr) {
		tr_disarm();
		tr_end_run(tr);
	}
	if (sp[1] >= 0)
		close(sp[1]);
	if (!th.vm) {
		snprintf(why, whylen, "restore: %s", err);
		if (sp[0] >= 0)
			close(sp[0]);
		return ret ? ret : -EIO;
	}
	r->restore = us_since(t0, t1);
	ret = pthread_create(&tid, NULL, vm_thread, &th);
	if (ret) {
		ember_vm_destroy(th.vm);
		snprintf(why, whylen, "pthread_create: %s", strerror(ret));
		return -ret;
	}
	{
		struct rusage ru0, ru1;
		uint64_t fr;

		getrusage(RUSAGE_SELF, &ru0);
		ret = o->carry ? carried_session(sp[0], t0, r, why, whylen) :
				 start_session(sock, 0, t0, r, why, whylen);
		getrusage(RUSAGE_SELF, &ru1);
		/* Faults of the whole process (guest first touches, through
		 * KVM, count here) over the session: the restore's own
		 * came before ru0. */
		r->minflt = ru1.ru_minflt - ru0.ru_minflt;
		fr = __atomic_load_n(&g_first_run_ns, __ATOMIC_RELAXED);
		if (fr > t1)
			r->runstart = us_since(t1, fr);
	}
	ember_vm_stop(th.vm);
	pthread_join(tid, NULL);
	ember_vm_destroy(th.vm);
	unlink(sock);
	return ret;
}

static struct ember_shell *shell_new(void)
{
	char err[256];
	struct ember_shell *sh;
	int ret;

	sh = ember_shell_create(1, g_irqchip, &ret, err, sizeof(err));
	if (!sh)
		die("ember_shell_create: %s", err);
	/* A pool knows what it will restore: the snapshot's 256 MiB. */
	if (ember_shell_reserve_memory(sh, SNAP_MEM_MIB, err, sizeof(err)) < 0)
		die("ember_shell_reserve_memory: %s", err);
	if (ember_shell_start_threads(sh, err, sizeof(err)) < 0)
		die("ember_shell_start_threads: %s", err);
	return sh;
}

/* Finds the shell shape the snapshot needs (vCPUs 1; irqchip or not). */
void probe_shell(struct cfg *c)
{
	char *sock = xasprintf("%s/probe.sock", c->work), why[256];
	struct run r;

	for (int irq = 0; irq < 2; irq++) {
		g_irqchip = irq;
		if (!lib_start(c, &(struct lib_opts){ 0 }, shell_new(), sock,
			       NULL, &r, why, sizeof(why))) {
			free(sock);
			return;
		}
	}
	die("cannot restore the snapshot into a shell: %s", why);
}

void run_lib_series(struct cfg *c, struct series *s, unsigned n,
		    bool shell, const struct lib_opts *o,
		    struct trace *tr_shell, struct trace *tr_restore,
		    const char *tag)
{
	char *sock = xasprintf("%s/%s.sock", c->work, tag), why[256];
	struct run r;

	for (unsigned i = 0; i < n; i++) {
		struct ember_shell *sh = NULL;

		if (shell) {
			if (tr_shell)
				tr_arm(tr_shell);
			sh = shell_new();
			if (tr_shell) {
				tr_disarm();
				tr_end_run(tr_shell);
			}
		}
		if (lib_start(c, o, sh, sock, tr_restore, &r, why,
			      sizeof(why)) < 0)
			series_fail(s, "%s run %u: %s", tag, i, why);
		else
			series_add(s, &r);
	}
	free(sock);
}

/* ---------------------------------------------------------------------
 * f: restores per second with both cores
 */
struct worker_arg {
	struct cfg *c;
	unsigned id;
	uint64_t until;
	unsigned long done, failed;
};

static void *process_worker(void *arg)
{
	struct worker_arg *w = arg;
	char *sock = xasprintf("%s/tput-%u.sock", w->c->work, w->id), why[256];
	char *argv[] = { w->c->vmm, "-q", "--restore",
			 w->c->snap, "--vsock", sock, "--serial",
			 "none", "--timeout", "60", NULL };
	struct run r;

	while (now_ns() < w->until) {
		if (process_start(argv, sock, &r, why, sizeof(why)) < 0)
			w->failed++;
		else
			w->done++;
	}
	free(sock);
	return NULL;
}

/* One throughput worker's loop, in a forked child: res[0] done, res[1]
 * failed. */
typedef void (*tput_loop_fn)(struct cfg *c, unsigned id, unsigned long res[2]);

/* Runs `loop` in two forked children, one per core, for c->tput_seconds,
 * and adds up what they report through their pipes. Forked rather than
 * threads because the child table is not shared between threads. */
static void tput_run(struct cfg *c, struct tput *t, tput_loop_fn loop)
{
	pid_t w[2];
	int pipes[2][2];

	t->workers = 2;
	t->seconds = c->tput_seconds;
	for (unsigned i = 0; i < 2; i++) {
		if (pipe(pipes[i]) < 0)
			die("pipe: %s", strerror(errno));
		w[i] = fork();
		if (w[i] < 0)
			die("fork: %s", strerror(errno));
		if (w[i] == 0) {
			unsigned long res[2] = { 0, 0 };

			g_nkids = 0;
			loop(c, i, res);
			if (write(pipes[i][1], res, sizeof(res)) != sizeof(res))
				_exit(1);
			_exit(0);
		}
		kid_add(w[i]);
		close(pipes[i][1]);
	}
	for (unsigned i = 0; i < 2; i++) {
		unsigned long res[2] = { 0, 0 };

		if (read(pipes[i][0], res, sizeof(res)) != sizeof(res))
			t->failed++;
		close(pipes[i][0]);
		while (waitpid(w[i], NULL, 0) < 0 && errno == EINTR)
			;
		kid_forget(w[i]);
		t->done += res[0];
		t->failed += res[1];
	}
}

static void process_loop(struct cfg *c, unsigned id, unsigned long res[2])
{
	struct worker_arg a = { .c = c, .id = id };

	a.until = now_ns() + (uint64_t)(c->tput_seconds * 1e9);
	process_worker(&a);
	res[0] = a.done;
	res[1] = a.failed;
}

/* Process workers: each loops (a) (spawn, connect, invoke, kill). */
void run_tput_processes(struct cfg *c, struct tput *t)
{
	tput_run(c, t, process_loop);
}

static void library_loop(struct cfg *c, unsigned id, unsigned long res[2])
{
	char *sock = xasprintf("%s/ltput-%u.sock", c->work, id);
	uint64_t until = now_ns() + (uint64_t)(c->tput_seconds * 1e9);
	char why[256];
	struct run r;

	while (now_ns() < until) {
		if (lib_start(c, &(struct lib_opts){ 0 }, NULL, sock, NULL, &r,
			      why, sizeof(why)) < 0)
			res[1]++;
		else
			res[0]++;
	}
}

/* Library workers: each loops ember_vm_restore + run + invoke + stop +
 * destroy (no pre-created shell: the whole restore is on the clock). */
void run_tput_library(struct cfg *c, struct tput *t)
{
	tput_run(c, t, library_loop);
}

/* ---------------------------------------------------------------------
 * g: record a working set through the control socket
 */
static int control_cmd(const char *path, const char *cmd, char *reply,
		       size_t cap)
{
	uint64_t deadline = now_ns() + 10000000000ull;
	int fd = connect_wait(path, 0, deadline), r = 0;
	size_t got = 0;

	if (fd < 0)
		return fd;
	if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
		close(fd);
		return -EIO;
	}
	while (got < cap - 1) {
		r = read_full(fd, reply + got, 1, deadline);
		if (r < 0 || reply[got++] == '\n')
			break;
	}
	reply[got] = 0;
	close(fd);
	return r < 0 ? r : strncmp(reply, "OK", 2) ? -EIO : 0;
}

/* Spawns `ember-vmm --restore snap` with its vsock at `sock` and a
 * control socket at `ctl` (both unlinked first): its pid, or -errno with
 * the reason in why. */
static pid_t spawn_controlled(struct cfg *c, char *snap, char *sock,
			      char *ctl, char *why, size_t whylen)
{
	char *argv[] = { c->vmm, "-q", "--restore", snap, "--vsock",
			 sock, "--control", ctl, "--serial", "none",
			 "--timeout", "60", NULL };
	pid_t pid;

	unlink(sock);
	unlink(ctl);
	pid = spawn(argv);
	if (pid < 0) {
		pid = -errno;
		snprintf(why, whylen, "spawn: %s", strerror(-pid));
	}
	return pid;
}

int record_workingset(struct cfg *c, char *snap, char *why,
		      size_t whylen)
{
	char *sock = xasprintf("%s/ws.sock", c->work);
	char *ctl = xasprintf("%s/ws.ctl", c->work);
	char reply[256];
	struct run r;
	pid_t pid;
	int ret;

	pid = spawn_controlled(c, snap, sock, ctl, why, whylen);
	if (pid < 0) {
		ret = pid;
		goto out;
	}
	ret = start_session(sock, pid, now_ns(), &r, why, whylen);
	if (!ret) {
		ret = control_cmd(ctl, "workingset\n", reply, sizeof(reply));
		if (ret < 0)
			snprintf(why, whylen, "workingset: %.200s", reply);
	}
	if (!ret)
		control_cmd(ctl, "stop\n", reply, sizeof(reply));
	/* Let it stop by itself; the kill below only cleans up. */
	for (int i = 0; i < 200 && waitpid(pid, NULL, WNOHANG) == 0; i++)
		usleep(5000);
	kid_reap(pid);
out:
	unlink(sock);
	unlink(ctl);
	free(sock);
	free(ctl);
	return ret;
}

/* ---------------------------------------------------------------------
 * h: a snapshot that carries its host connection
 */

/*
 * Restores the main snapshot in a process, connects, takes READY and one
 * invocation, then (the connection idle, between two frames) pauses the
 * VM and snapshots it into c->snap_carry over its control socket: that
 * snapshot carries the connection (docs/snapshots.md).
 */
int make_carry_snapshot(struct cfg *c, char *why, size_t whylen)
{
	char *sock = xasprintf("%s/carry.sock", c->work);
	char *ctl = xasprintf("%s/carry.ctl", c->work);
	char *cmd = xasprintf("snapshot %s\n", c->snap_carry);
	uint64_t deadline = now_ns() + 10000000000ull;
	struct inv_result res = { 0 };
	struct inv_client *cl = NULL;
	char reply[256] = "";
	pid_t pid;
	int fd, ret;

	pid = spawn_controlled(c, c->snap, sock, ctl, why, whylen);
	if (pid < 0) {
		ret = pid;
		goto out;
	}
	fd = connect_wait(sock, pid, deadline);
	cl = fd < 0 ? NULL : inv_client_handshake_fd(fd, EMBER_INV_VSOCK_PORT,
						     10000, &ret);
	if (fd < 0 || !cl) {
		ret = fd < 0 ? fd : ret;
		snprintf(why, whylen, "connect: %s", strerror(-ret));
		goto out;
	}
	ret = inv_client_wait_ready(cl, 10000);
	if (!ret && inv_client_invoke(cl, g_req, strlen(g_req), 10000,
				      &res) != EMBER_INVOKE_OK)
		ret = -EIO;
	if (ret < 0) {
		snprintf(why, whylen, "first invoke: %s", res.msg);
		goto out;
	}
	ret = control_cmd(ctl, "pause\n", reply, sizeof(reply));
	if (!ret)
		ret = control_cmd(ctl, cmd, reply, sizeof(reply));
	if (ret < 0)
		snprintf(why, whylen, "snapshot: %.200s", reply);
	else
		control_cmd(ctl, "stop\n", reply, sizeof(reply));
	for (int i = 0; i < 200 && waitpid(pid, NULL, WNOHANG) == 0; i++)
		usleep(5000);
out:
	inv_result_free(&res);
	if (cl)
		inv_client_destroy(cl);
	if (pid > 0)
		kid_reap(pid);
	unlink(sock);
	unlink(ctl);
	free(sock);
	free(ctl);
	free(cmd);
	return ret;
}
