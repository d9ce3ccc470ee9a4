/*
 * shell.c - drives `ember-vmm --shell` through libember's shellctl client
 * on real /dev/kvm (tests/integration/shell-mode runs it):
 *
 *   shell.c --vmm VMM --snapshot DIR --tmp DIR
 *
 * DIR is a micro-guest snapshot of the echo handler taken at READY. Each
 * case spawns a shell on a socketpair, passes everything as file
 * descriptors (no path reaches the VMM), and checks the replies, the EXIT
 * line and the process's exit status. Exit 0 when every case passed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ember.h"
#include "ember/shellctl.h"
#include "invoke.h"
#include "proto/invoke.h"

static const char *vmm, *snap, *tmp;
/* --vmm-arg ARG (repeatable): added to every shell's arguments (the
 * integration test runs the cases again with --seccomp). */
static const char *extra_args[4];
static unsigned nr_extra;
static int failures;

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);  \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
			failures++;                                           \
			goto out;                                             \
		}                                                             \
	} while (0)

#define T_MS 15000 /* generous: the machine is shared and may be loaded */

/* Waits for `pid` to end: its exit status, 128 + signal, or -1 after
 * timeout_ms (it is then killed and reaped). */
static int reap(pid_t pid, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) :
					       128 + WTERMSIG(st);
		poll(NULL, 0, 10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static struct ember_shellctl *spawn_with(const char *const *args,
					 pid_t *pid)
{
	const char *all[32];
	struct ember_shellctl *c;
	pid_t said = 0;
	char why[256];
	unsigned n = 0;
	int err = 0, ret;

	while (args[n] && n < 32 - 1 - nr_extra) {
		all[n] = args[n];
		n++;
	}
	for (unsigned i = 0; i < nr_extra; i++)
		all[n++] = extra_args[i];
	all[n] = NULL;
	c = ember_shellctl_spawn(vmm, all, pid, &err);
	if (!c) {
		fprintf(stderr, "spawn %s: %s\n", vmm, strerror(-err));
		return NULL;
	}
	ret = ember_shellctl_wait_ready(c, T_MS, &said, why, sizeof(why));
	if (ret < 0 || said != *pid) {
		fprintf(stderr, "no READY (%s, %s, pid %d vs %d)\n",
			strerror(-ret), why, (int)said, (int)*pid);
		ember_shellctl_close(c);
		reap(*pid, T_MS);
		return NULL;
	}
	return c;
}

static struct ember_shellctl *spawn(pid_t *pid)
{
	static const char *const args[] = { "-q", NULL };

	return spawn_with(args, pid);
}

static int open_snap(const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", snap, name);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* One echo invocation through `c`: 0 when the payload came back. */
static int echo_once(struct inv_client *c, const char *text)
{
	struct inv_result res;
	int ok;

	inv_client_invoke(c, text, strlen(text), T_MS, &res);
	ok = res.status == EMBER_INVOKE_OK && res.len == strlen(text) &&
	     !memcmp(res.payload, text, res.len);
	if (!ok)
		fprintf(stderr, "invoke: status %d, %zu bytes: %s\n", res.status,
			res.len, res.msg);
	inv_result_free(&res);
	return ok ? 0 : -1;
}

static int command(struct ember_shellctl *c, const char *cmd, const int *fds,
		   unsigned nfds, char *reply, size_t len)
{
	return ember_shellctl_command(c, cmd, fds, nfds, T_MS, reply, len);
}

/* A case's end, whatever it reached: the socketpair ends still held, the
 * invocation client, the controller, and the VMM (reaped by pid). */
static void end_session(struct ember_shellctl *c, struct inv_client *inv,
			const int sv[2], pid_t pid)
{
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (inv)
		inv_client_destroy(inv);
	ember_shellctl_close(c);
	if (pid > 0)
		reap(pid, T_MS);
}

/*
 * A shell restored over the socketpair with fds only (state, memory, a
 * connected vsock socket, a serial fd) serves invocations, answers
 * status/pause/resume/ping, records its working set into a file fd, and
 * reports its end with EXIT and status 0 after `stop`.
 */
static void case_fds_only(void)
{
	struct ember_shellctl *c = NULL;
	struct inv_client *inv = NULL;
	struct ember_shellctl_exit ex;
	char reply[4096], ws[4096], magic[8] = "";
	int sv[2] = { -1, -1 }, fds[5] = { -1, -1, -1, -1, -1 }, err, st, wfd;
	pid_t pid = 0;

	c = spawn(&pid);
	CHECK(c, "shell did not start");
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
	      "socketpair");
	fds[0] = open_snap("state");
	fds[1] = open_snap("memory");
	fds[2] = sv[1];
	fds[3] = open("/dev/null", O_WRONLY | O_CLOEXEC);
	CHECK(fds[0] >= 0 && fds[1] >= 0 && fds[3] >= 0, "open snapshot");
	CHECK(command(c, "restore state=0 memory=1 vsock=2 vsock-connected "
		      "serial=3 timeout_ms=60000", fds, 4, reply,
		      sizeof(reply)) == 0 && !strcmp(reply, "restored"),
	      "restore: %s", reply);
	close(sv[1]);
	sv[1] = -1;
	/* The connected socket is the VM's host side: handshake on it. */
	inv = inv_client_handshake_fd(sv[0], EMBER_INV_VSOCK_PORT, T_MS, &err);
	sv[0] = -1;
	CHECK(inv, "vsock handshake on the connected fd: %s", strerror(-err));
	CHECK(echo_once(inv, "hello from fds") == 0, "first invoke");
	CHECK(command(c, "status", NULL, 0, reply, sizeof(reply)) == 0 &&
	      !strncmp(reply, "running ready=", 14), "status: %s", reply);
	CHECK(command(c, "ping", NULL, 0, reply, sizeof(reply)) == 0 &&
	      !strcmp(reply, "pong"), "ping: %s", reply);
	CHECK(command(c, "pause", NULL, 0, reply, sizeof(reply)) == 0 &&
	      !strcmp(reply, "paused"), "pause: %s", reply);
	CHECK(command(c, "status", NULL, 0, reply, sizeof(reply)) == 0 &&
	      !strncmp(reply, "paused ", 7), "status when paused: %s", reply);
	CHECK(command(c, "resume", NULL, 0, reply, sizeof(reply)) == 0,
	      "resume: %s", reply);
	CHECK(echo_once(inv, "after resume") == 0, "invoke after resume");
	snprintf(ws, sizeof(ws), "%s/workingset", tmp);
	wfd = open(ws, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(wfd >= 0, "create %s", ws);
	st = command(c, "workingset fd=0", &wfd, 1, reply, sizeof(reply));
	CHECK(st == 0, "workingset: %d %s", st, reply);
	CHECK(pread(wfd, magic, 8, 0) == 8 && !memcmp(magic, "EMBRWSET", 8),
	      "working-set file has no header");
	close(wfd);
	CHECK(command(c, "restore state=0", NULL, 0, reply, sizeof(reply)) == 1,
	      "a second restore must fail: %s", reply);
	CHECK(command(c, "stop", NULL, 0, reply, sizeof(reply)) == 0 &&
	      !strcmp(reply, "stopping"), "stop: %s", reply);
	CHECK(ember_shellctl_wait_exit(c, T_MS, &ex) == 0, "no EXIT line");
	CHECK(!strcmp(ex.reason, "stopped") && ex.status == 0,
	      "EXIT %s status=%d %s", ex.reason, ex.status, ex.detail);
	st = reap(pid, T_MS);
	pid = 0;
	CHECK(st == 0, "exit status %d, want 0", st);
	printf("ok   fds only: restored, 2 invocations, pause/resume, "
	       "workingset fd, EXIT stopped status=0\n");
out:
	for (unsigned i = 0; i < 4; i++)
		if (fds[i] >= 0 && i != 2)
			close(fds[i]);
	end_session(c, inv, sv, pid);
}

/* A shell spawned with `args` restores the snapshot from fds and serves
 * one invocation; `what` names the case. */
static void restore_and_echo(const char *const *args, const char *what)
{
	struct ember_shellctl *c = NULL;
	struct inv_client *inv = NULL;
	char reply[4096];
	int sv[2] = { -1, -1 }, fds[3] = { -1, -1, -1 }, err;
	pid_t pid = 0;

	c = spawn_with(args, &pid);
	CHECK(c, "%s: the shell did not start", what);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
	      "socketpair");
	fds[0] = open_snap("state");
	fds[1] = open_snap("memory");
	fds[2] = sv[1];
	CHECK(fds[0] >= 0 && fds[1] >= 0, "open snapshot");
	CHECK(command(c, "restore state=0 memory=1 vsock=2 vsock-connected "
		      "timeout_ms=60000", fds, 3, reply, sizeof(reply)) == 0 &&
	      !strcmp(reply, "restored"), "%s: restore: %s", what, reply);
	close(sv[1]);
	sv[1] = -1;
	inv = inv_client_handshake_fd(sv[0], EMBER_INV_VSOCK_PORT, T_MS, &err);
	sv[0] = -1;
	CHECK(inv, "%s: vsock handshake: %s", what, strerror(-err));
	CHECK(echo_once(inv, what) == 0, "%s: invoke", what);
	printf("ok   %s: restores and serves\n", what);
out:
	for (unsigned i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	end_session(c, inv, sv, pid);
}

/*
 * A waiting shell's threads, from /proc/PID/task: how many, and, in
 * `names`, their names space-separated in task order, each with ":F" when
 * its Seccomp mode is 2 (filtered). Read until `want` (every name, " "
 * around it) is in the list or T_MS passes: a thread names itself once it
 * runs. 0, or -1 when the listing cannot be read.
 */
static int shell_threads(pid_t pid, const char *const *want, char *names,
			 size_t len)
{
	for (int waited = 0;; waited += 10) {
		char dir[64], path[384], comm[32], line[256];
		struct dirent *d;
		bool all = true;
		size_t at = 1;
		DIR *dp;

		snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
		dp = opendir(dir);
		if (!dp)
			return -1;
		names[0] = ' ';
		names[1] = '\0';
		while ((d = readdir(dp)) && at + 40 < len) {
			FILE *f;
			bool filtered = false;

			if (d->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s/comm", dir, d->d_name);
			f = fopen(path, "r");
			if (!f || !fgets(comm, sizeof(comm), f)) {
				if (f)
					fclose(f);
				continue;
			}
			fclose(f);
			comm[strcspn(comm, "\n")] = '\0';
			snprintf(path, sizeof(path), "%s/%s/status", dir, d->d_name);
			f = fopen(path, "r");
			while (f && fgets(line, sizeof(line), f))
				if (!strncmp(line, "Seccomp:", 8))
					filtered = atoi(line + 8) == 2;
			if (f)
				fclose(f);
			at += (size_t)snprintf(names + at, len - at, "%s%s ", comm,
					       filtered ? ":F" : "");
		}
		closedir(dp);
		for (unsigned i = 0; want[i]; i++) {
			char w[40];

			snprintf(w, sizeof(w), " %s ", want[i]);
			all = all && strstr(names, w);
		}
		if (all || waited >= T_MS)
			return 0;
		poll(NULL, 0, 10);
	}
}

/*
 * A shell's vCPU and event threads exist before its restore (their start,
 * their first KVM_RUN and under --seccomp their filters' loads are off the
 * restore's path), one per vCPU; with --seccomp every thread of the
 * waiting shell (main, control and any KVM adds too) is filtered. Stopped unrestored, the parked threads end with it (exit 0).
 */
static void case_threads_ahead(void)
{
	const char *const args[] = { "-q", "--cpus", "2", "--seccomp", NULL };
	const char *const want[] = { "ember-vmm:F", "control:F", "event:F",
				     "vcpu0:F", "vcpu1:F", NULL };
	struct ember_shellctl *c = NULL;
	struct ember_shellctl_exit ex;
	char names[1024], reply[256], asan[1024];
	char *saved;
	pid_t pid = 0;
	int st;

	/* Under the sanitized VMM (tests/integration/sanitized-vmm), the
	 * LeakSanitizer's check at exit makes calls (prctl, ptrace) no
	 * filter allows: this case, the only one with --seccomp, goes without
	 * it; every other case is still checked for leaks. */
	saved = getenv("ASAN_OPTIONS");
	snprintf(asan, sizeof(asan), "%s%sdetect_leaks=0", saved ? saved : "",
		 saved ? ":" : "");
	saved = saved ? strdup(saved) : NULL;
	setenv("ASAN_OPTIONS", asan, 1);
	c = spawn_with(args, &pid);
	if (saved)
		setenv("ASAN_OPTIONS", saved, 1);
	else
		unsetenv("ASAN_OPTIONS");
	free(saved);
	CHECK(c, "the shell did not start");
	CHECK(shell_threads(pid, want, names, sizeof(names)) == 0,
	      "cannot list the shell's threads");
	for (unsigned i = 0; want[i]; i++) {
		char w[40];

		snprintf(w, sizeof(w), " %s ", want[i]);
		CHECK(strstr(names, w), "a waiting 2-vCPU --seccomp shell has "
		      "no filtered '%s' thread: [%s]", want[i], names);
	}
	CHECK(!strstr(names, " vcpu2"), "a 2-vCPU shell's threads: [%s]",
	      names);
	/* Any other thread too (KVM's NX-huge-page worker, made by the first
	 * KVM_RUN that vcpu0 makes ahead, inherits vcpu0's filter). */
	for (const char *t = names; (t = strchr(t, ' ')) && t[1]; t++)
		CHECK(strcspn(t + 1, " ") >= 2 &&
		      !strncmp(t + 1 + strcspn(t + 1, " ") - 2, ":F", 2),
		      "an unfiltered thread in a waiting --seccomp shell: [%s]",
		      names);
	CHECK(command(c, "stop", NULL, 0, reply, sizeof(reply)) == 0,
	      "stop: %s", reply);
	CHECK(ember_shellctl_wait_exit(c, T_MS, &ex) == 0 && ex.status == 0,
	      "EXIT after stop");
	st = reap(pid, T_MS);
	pid = 0;
	CHECK(st == 0, "stopped with parked threads: exit %d", st);
	printf("ok   a waiting shell has its vCPU and event threads, "
	       "filtered:[%s]; stopped, it exits 0\n", names);
out:
	ember_shellctl_close(c);
	if (pid > 0)
		reap(pid, T_MS);
}

/* With --threads-at-restore a waiting shell has no VM threads yet (they
 * are made by the restore, which restore_and_echo shows working). */
static void case_threads_late(void)
{
	const char *const args[] = { "-q", "--threads-at-restore", NULL };
	const char *const none[] = { NULL };
	struct ember_shellctl *c = NULL;
	char names[1024];
	pid_t pid = 0;

	/* READY comes from the control thread, named by then. */
	c = spawn_with(args, &pid);
	CHECK(c, "the shell did not start");
	CHECK(shell_threads(pid, none, names, sizeof(names)) == 0 &&
	      strstr(names, " control"), "the shell's threads: [%s]", names);
	CHECK(!strstr(names, " vcpu0") && !strstr(names, " event"),
	      "--threads-at-restore: VM threads before the restore: [%s]",
	      names);
	printf("ok   --threads-at-restore: a waiting shell has no VM threads "
	       "[%s]\n", names);
out:
	ember_shellctl_close(c);
	if (pid > 0)
		reap(pid, T_MS);
}

/*
 * What a shell prepares while it waits, and a restore that does not match
 * it: its vCPUs' CPUID is set for the host's default template, and a
 * restore asking for the other template gets that one (KVM takes a second
 * KVM_SET_CPUID2 on a vCPU that never ran); with --mem its guest RAM is a
 * placeholder under ready memory slots, which a snapshot of that size (the
 * test snapshot's 256 MiB) is mapped over and one of another size replaces.
 */
static void case_prepared_shells(void)
{
	const char *other = ember_host_is_pvm() ? "host" : "pvm";
	const char *const tmpl[] = { "-q", "--cpu-template", other, NULL };
	const char *const same[] = { "-q", "--mem", "256", NULL };
	const char *const smaller[] = { "-q", "--mem", "64", NULL };
	const char *const late[] = { "-q", "--threads-at-restore", NULL };
	char what[64];

	snprintf(what, sizeof(what), "--cpu-template %s", other);
	restore_and_echo(tmpl, what);
	restore_and_echo(same, "--mem 256 (the snapshot's size)");
	restore_and_echo(smaller, "--mem 64 (not the snapshot's size)");
	restore_and_echo(late, "--threads-at-restore");
}

/* A listening socket as the vsock host side, the working set from the
 * first case prefetched from fds, then a snapshot of the running clone
 * into a directory fd, which itself restores and serves. */
static void case_listen_prefetch_resnapshot(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ember_shellctl *c = NULL;
	struct inv_client *inv = NULL;
	struct ember_shellctl_exit ex;
	char reply[4096], path[4096], snap2[4096];
	int fds[4] = { -1, -1, -1, -1 }, lfd = -1, dfd = -1, err, st;
	pid_t pid = 0;

	snprintf(path, sizeof(path), "%s/clone.sock", tmp);
	snprintf(snap2, sizeof(snap2), "%s/snap2", tmp);
	unlink(path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	      listen(lfd, 8) == 0, "listen on %s", path);
	c = spawn(&pid);
	CHECK(c, "shell did not start");
	fds[0] = open_snap("state");
	fds[1] = open_snap("memory");
	fds[2] = lfd;
	snprintf(reply, sizeof(reply), "%s/workingset", tmp);
	fds[3] = open(reply, O_RDONLY | O_CLOEXEC);
	CHECK(fds[3] >= 0, "the first case's working set is missing");
	CHECK(command(c, "restore state=0 memory=1 vsock=2 workingset=3 "
		      "prefetch", fds, 4, reply, sizeof(reply)) == 0,
	      "restore: %s", reply);
	close(lfd); /* the VMM has its own copy */
	lfd = fds[2] = -1;
	inv = inv_client_connect(path, EMBER_INV_VSOCK_PORT, T_MS, &err);
	CHECK(inv, "connect %s: %s", path, strerror(-err));
	CHECK(echo_once(inv, "through a listening fd") == 0, "invoke");
	inv_client_destroy(inv);
	inv = NULL;
	CHECK(mkdir(snap2, 0700) == 0 || errno == EEXIST, "mkdir %s", snap2);
	dfd = open(snap2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(dfd >= 0, "open %s", snap2);
	CHECK(command(c, "snapshot dir=0", &dfd, 1, reply, sizeof(reply)) == 1,
	      "snapshot of a running VM must be refused: %s", reply);
	CHECK(command(c, "pause", NULL, 0, reply, sizeof(reply)) == 0, "pause");
	CHECK(command(c, "snapshot dir=0", &dfd, 1, reply, sizeof(reply)) == 0,
	      "snapshot dir=0: %s", reply);
	CHECK(command(c, "stop", NULL, 0, reply, sizeof(reply)) == 0, "stop");
	CHECK(ember_shellctl_wait_exit(c, T_MS, &ex) == 0 && ex.status == 0,
	      "EXIT");
	st = reap(pid, T_MS);
	pid = 0;
	CHECK(st == 0, "exit status %d", st);
	ember_shellctl_close(c);
	c = NULL;

	/* The snapshot of the clone, restored from fds again. */
	for (unsigned i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	fds[0] = openat(dfd, "state", O_RDONLY | O_CLOEXEC);
	fds[1] = openat(dfd, "memory", O_RDONLY | O_CLOEXEC);
	fds[3] = -1;
	CHECK(fds[0] >= 0 && fds[1] >= 0, "the new snapshot lacks state or "
	      "memory");
	{
		int sv[2];

		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
		      "socketpair");
		fds[2] = sv[1];
		c = spawn(&pid);
		CHECK(c, "second shell");
		st = command(c, "restore state=0 memory=1 vsock=2 "
			     "vsock-connected", fds, 3, reply, sizeof(reply));
		close(sv[1]);
		fds[2] = -1;
		CHECK(st == 0, "restore of the re-snapshot: %s", reply);
		inv = inv_client_handshake_fd(sv[0], EMBER_INV_VSOCK_PORT, T_MS,
					      &err);
		CHECK(inv, "handshake: %s", strerror(-err));
		CHECK(echo_once(inv, "second generation") == 0, "invoke");
	}
	ember_shellctl_close(c); /* the controller goes: the VM stops */
	c = NULL;
	st = reap(pid, T_MS);
	pid = 0;
	CHECK(st == 0, "exit status %d after the controller closed", st);
	printf("ok   listening fd + prefetch from fds, snapshot dir=I of the "
	       "clone, which restores and serves again\n");
out:
	for (unsigned i = 0; i < 4; i++)
		if (fds[i] >= 0 && fds[i] != lfd)
			close(fds[i]);
	if (lfd >= 0)
		close(lfd);
	/* (fds[2] of the second restore was closed right after it.) */
	if (dfd >= 0)
		close(dfd);
	if (inv)
		inv_client_destroy(inv);
	ember_shellctl_close(c);
	if (pid > 0)
		reap(pid, T_MS);
	unlink(path);
}

/* Whether the file `dir`/state holds `needle` (a prop name, say). */
static bool state_has(const char *dir, const char *needle)
{
	char path[4096 + 16], buf[1 << 16];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/state", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return n > 0 && memmem(buf, (size_t)n, needle, strlen(needle));
}

/* Restores `dir` into a new shell with `cmd` and fds state, memory and
 * (fd 2) the shell's end of a new socketpair, whose other end goes to
 * *mine; *pid is the shell's. The controller, or NULL (reply says why). */
static struct ember_shellctl *restore_dir(const char *dir, const char *cmd,
					  int *mine, pid_t *pid, char *reply,
					  size_t len)
{
	char path[4096 + 16];
	struct ember_shellctl *c = spawn(pid);
	int fds[3] = { -1, -1, -1 }, sv[2] = { -1, -1 }, ret = -1;

	if (!c)
		return NULL;
	snprintf(path, sizeof(path), "%s/state", dir);
	fds[0] = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/memory", dir);
	fds[1] = open(path, O_RDONLY | O_CLOEXEC);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(reply, len, "socketpair: %s", strerror(errno));
	} else if (fds[0] < 0 || fds[1] < 0) {
		snprintf(reply, len, "cannot open %s", dir);
	} else {
		fds[2] = sv[1];
		ret = command(c, cmd, fds, 3, reply, len);
	}
	for (unsigned i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (sv[1] >= 0)
		close(sv[1]); /* the shell has its own copy */
	if (ret != 0) {
		if (sv[0] >= 0)
			close(sv[0]);
		ember_shellctl_close(c);
		reap(*pid, T_MS);
		*pid = 0;
		return NULL;
	}
	*mine = sv[0];
	return c;
}

/* ember_snapshot_carries_connection() of DIR/NAME; err says why on < 0. */
static int carries(const char *dir, const char *name, char *err, size_t len)
{
	char path[4096];
	int fd, ret;

	err[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, len, "open %s: %s", path, strerror(errno));
		return -errno;
	}
	ret = ember_snapshot_carries_connection(fd, err, len);
	close(fd);
	return ret;
}

/*
 * A snapshot taken with one idle host connection carries it: restored
 * with `vsock-carry=K`, the clone serves invocations over the socket K at
 * once (no handshake, no READY), many of them and one larger than the
 * device's and the guest's buffers (the credit counters carried right);
 * restored with a new connection instead, it serves that one (READY
 * again); the original VM goes on serving after the snapshot. Fails on a
 * VMM without carried connections (no carried-conn saved, vsock-carry
 * unknown).
 */
static void case_carried_connection(void)
{
	struct ember_shellctl *c = NULL;
	struct inv_client *inv = NULL;
	char reply[4096], dir[4096], *big = NULL;
	int dfd = -1, fd, err;
	const int no_fds[2] = { -1, -1 }; /* end_session() has none to close */
	pid_t pid = 0;

	snprintf(dir, sizeof(dir), "%s/snap-carry", tmp);
	CHECK(mkdir(dir, 0700) == 0 || errno == EEXIST, "mkdir %s", dir);
	c = restore_dir(snap, "restore state=0 memory=1 vsock=2 "
			"vsock-connected", &fd, &pid, reply, sizeof(reply));
	CHECK(c, "restore: %s", reply);
	inv = inv_client_handshake_fd(fd, EMBER_INV_VSOCK_PORT, T_MS, &err);
	CHECK(inv, "handshake: %s", strerror(-err));
	CHECK(inv_client_wait_ready(inv, T_MS) == 0, "READY");
	CHECK(echo_once(inv, "before the snapshot") == 0, "invoke");
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(dfd >= 0, "open %s", dir);
	CHECK(command(c, "pause", NULL, 0, reply, sizeof(reply)) == 0, "pause");
	CHECK(command(c, "snapshot dir=0", &dfd, 1, reply, sizeof(reply)) == 0,
	      "snapshot: %s", reply);
	CHECK(command(c, "resume", NULL, 0, reply, sizeof(reply)) == 0,
	      "resume");
	CHECK(echo_once(inv, "the original goes on") == 0, "invoke after");
	end_session(c, inv, no_fds, pid);
	c = NULL;
	inv = NULL;
	pid = 0;
	CHECK(state_has(dir, "carried-conn"), "the snapshot carries no "
	      "connection");
	/* What emberd asks before it restores over it. */
	CHECK(carries(dir, "state", reply, sizeof(reply)) == 1,
	      "ember_snapshot_carries_connection(carrying): %s", reply);
	CHECK(carries(snap, "state", reply, sizeof(reply)) == 0,
	      "ember_snapshot_carries_connection(at READY): %s", reply);
	CHECK(carries(dir, "memory", reply, sizeof(reply)) < 0 && reply[0],
	      "ember_snapshot_carries_connection(not a state file) must fail "
	      "with a reason");

	c = restore_dir(dir, "restore state=0 memory=1 vsock-carry=2", &fd,
			&pid, reply, sizeof(reply));
	CHECK(c, "restore with vsock-carry: %s", reply);
	inv = inv_client_from_carried_fd(fd, &err);
	CHECK(inv, "client: %s", strerror(-err));
	for (int i = 0; i < 20; i++)
		CHECK(echo_once(inv, "over the carried connection") == 0,
		      "invoke %d", i);
	big = malloc(1 << 20);
	CHECK(big, "malloc");
	for (size_t i = 0; i < (1 << 20) - 1; i++)
		big[i] = (char)('a' + i % 26);
	big[(1 << 20) - 1] = 0;
	CHECK(echo_once(inv, big) == 0, "a 1 MiB invoke");
	end_session(c, inv, no_fds, pid);
	c = NULL;
	inv = NULL;
	pid = 0;

	c = restore_dir(dir, "restore state=0 memory=1 vsock=2 "
			"vsock-connected", &fd, &pid, reply, sizeof(reply));
	CHECK(c, "plain restore of the carrying snapshot: %s", reply);
	inv = inv_client_handshake_fd(fd, EMBER_INV_VSOCK_PORT, T_MS, &err);
	CHECK(inv, "handshake: %s", strerror(-err));
	CHECK(inv_client_wait_ready(inv, T_MS) == 0, "READY after the reset");
	CHECK(echo_once(inv, "a new connection") == 0, "invoke");
	printf("ok   a snapshot with an idle host connection carries it: the "
	       "clone serves it with no handshake (20 invokes and 1 MiB); "
	       "restored plainly it takes a new one\n");
out:
	free(big);
	if (dfd >= 0)
		close(dfd);
	end_session(c, inv, no_fds, pid);
}

/* Starts `ember-vmm --restore dir --vsock-carry-fd FD` with FD the VMM's
 * end of a new socketpair; *mine gets ours. The pid, or -1. */
static pid_t spawn_carried(const char *dir, int *mine)
{
	char fdnum[16];
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		snprintf(fdnum, sizeof(fdnum), "%d", sv[1]);
		execl(vmm, vmm, "-q", "--restore", dir, "--serial", "none",
		      "--timeout", "30", "--vsock-carry-fd", fdnum,
		      (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	if (pid < 0)
		close(sv[0]);
	else
		*mine = sv[0];
	return pid;
}

/* The same from a new process (`ember-vmm --restore --vsock-carry-fd`):
 * the clone serves over the inherited socket at once; a snapshot that
 * carries no connection is refused with exit 64. */
static void case_carried_connection_process(void)
{
	struct inv_client *inv = NULL;
	char dir[4096];
	int fd = -1, err, st;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/snap-carry", tmp);
	pid = spawn_carried(dir, &fd);
	CHECK(pid > 0, "fork");
	inv = inv_client_from_carried_fd(fd, &err);
	CHECK(inv, "client: %s", strerror(-err));
	for (int i = 0; i < 5; i++)
		CHECK(echo_once(inv, "a new process, carried") == 0,
		      "invoke %d", i);
	inv_client_destroy(inv); /* the guest's peer goes: it waits on */
	inv = NULL;
	kill(pid, SIGTERM);
	st = reap(pid, T_MS);
	CHECK(st == 0, "exit status %d after SIGTERM", st);
	pid = spawn_carried(snap, &fd);
	CHECK(pid > 0, "fork");
	st = reap(pid, T_MS);
	close(fd);
	CHECK(st == 64, "--vsock-carry-fd on a snapshot that carries none: "
	      "exit %d, want 64", st);
	printf("ok   ember-vmm --restore --vsock-carry-fd serves over the "
	       "inherited socket; exit 64 for a snapshot without one\n");
out:
	if (inv)
		inv_client_destroy(inv);
}

/* Unknown and early commands get ERR and the shell lives on; a malformed
 * restore (missing fds) is final: ERR, then exit status 64. */
static void case_bad_commands(void)
{
	struct ember_shellctl *c = NULL;
	char reply[4096], big[6000];
	int fd = -1, st, ret;
	pid_t pid = 0;

	c = spawn(&pid);
	CHECK(c, "shell did not start");
	CHECK(command(c, "frobnicate", NULL, 0, reply, sizeof(reply)) == 1,
	      "unknown command: %s", reply);
	CHECK(command(c, "pause", NULL, 0, reply, sizeof(reply)) == 1,
	      "pause without a VM: %s", reply);
	CHECK(command(c, "status", NULL, 0, reply, sizeof(reply)) == 0 &&
	      !strcmp(reply, "shell ready=0"), "status: %s", reply);
	CHECK(command(c, "status now", NULL, 0, reply, sizeof(reply)) == 1,
	      "status with an argument: %s", reply);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	/* Over the line limit: the client refuses to send it... */
	CHECK(command(c, big, NULL, 0, reply, sizeof(reply)) == -EMSGSIZE,
	      "a 6000-byte line was sent");
	/* ...so send it raw: the VMM refuses it and lives on. */
	CHECK(send(ember_shellctl_fd(c), big, sizeof(big) - 1, 0) > 0, "send");
	ret = ember_shellctl_recv(ember_shellctl_fd(c), reply, sizeof(reply),
				  NULL, NULL, T_MS);
	CHECK(ret > 0 && !strncmp(reply, "ERR ", 4) && strstr(reply, "4096"),
	      "oversized line: %d %s", ret, reply);
	CHECK(command(c, "ping", NULL, 0, reply, sizeof(reply)) == 0,
	      "alive after the oversized line: %s", reply);
	fd = open_snap("state");
	ret = command(c, "restore state=0 memory=1 vsock=2", &fd, 1, reply,
		      sizeof(reply));
	CHECK(ret == 1 && strstr(reply, "memory=1"), "restore with one fd "
	      "for three: %d %s", ret, reply);
	st = reap(pid, T_MS);
	pid = 0;
	CHECK(st == 64, "exit status %d after a malformed restore, want 64",
	      st);
	printf("ok   bad commands: ERR each, shell alive; restore missing "
	       "fds: ERR, exit 64\n");
out:
	if (fd >= 0)
		close(fd);
	ember_shellctl_close(c);
	if (pid > 0)
		reap(pid, T_MS);
}

/* Restores that cannot work: ERR and the documented status (65 for an
 * invalid snapshot, 64 for an fd of the wrong kind or a device left
 * without its host side). */
static void restore_expect(const char *what, const char *cmd, int *fds,
			   unsigned nfds, int want_status)
{
	struct ember_shellctl *c;
	char reply[4096];
	pid_t pid = 0;
	int ret, st;

	c = spawn(&pid);
	CHECK(c, "shell did not start");
	ret = command(c, cmd, fds, nfds, reply, sizeof(reply));
	CHECK(ret == 1, "%s: restore answered %d %s", what, ret, reply);
	st = reap(pid, T_MS);
	pid = 0;
	CHECK(st == want_status, "%s: exit status %d, want %d (%s)", what, st,
	      want_status, reply);
	printf("ok   %s: ERR %s; exit %d\n", what, reply, st);
out:
	ember_shellctl_close(c);
	if (pid > 0)
		reap(pid, T_MS);
}

static int tmpfile_with(const char *name, const void *data, size_t len,
			off_t size)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (len && write(fd, data, len) != (ssize_t)len) ||
	    (size >= 0 && ftruncate(fd, size) < 0)) {
		perror(path);
		exit(1);
	}
	return fd;
}

static void case_bad_snapshots(void)
{
	static const char junk[] = "this is not a flattened device tree, not "
				   "at all, and long enough to be read";
	int fds[3], sv[2];
	struct stat st;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		failures++;
		return;
	}
	fds[0] = tmpfile_with("junk-state", junk, sizeof(junk), -1);
	fds[1] = open_snap("memory");
	fds[2] = sv[1];
	restore_expect("corrupt state fd", "restore state=0 memory=1 vsock=2 "
		       "vsock-connected", fds, 3, 65);
	close(fds[0]);
	/* A memory file shorter than the snapshot says would SIGBUS. */
	fstat(fds[1], &st);
	close(fds[1]);
	fds[0] = open_snap("state");
	fds[1] = tmpfile_with("short-memory", NULL, 0, st.st_size / 2);
	restore_expect("truncated memory fd", "restore state=0 memory=1 "
		       "vsock=2 vsock-connected", fds, 3, 65);
	close(fds[1]);
	/* The vsock host side must be a socket. */
	fds[1] = open_snap("memory");
	fds[2] = open_snap("state");
	restore_expect("vsock fd not a socket", "restore state=0 memory=1 "
		       "vsock=2", fds, 3, 64);
	/* A snapshot with a vsock device restored without its host side. */
	restore_expect("no vsock host side", "restore state=0 memory=1", fds,
		       2, 64);
	/* A socket for a carried connection the snapshot does not have. */
	close(fds[2]);
	fds[2] = dup(sv[1]);
	restore_expect("vsock-carry on a snapshot that carries none",
		       "restore state=0 memory=1 vsock-carry=2", fds, 3, 64);
	for (unsigned i = 0; i < 3; i++)
		close(fds[i]);
	close(sv[0]);
	close(sv[1]);
}

/* No VMM outlives its controller: closing the control socket of a
 * running VM stops it and the process exits (0: stopped), and closing it
 * before any restore ends the shell too. `stop` before a restore is
 * answered, then EXIT stopped. */
static void case_controller_goes_away(void)
{
	struct ember_shellctl *c = NULL;
	struct ember_shellctl_exit ex;
	char reply[4096];
	int fds[3] = { -1, -1, -1 }, sv[2] = { -1, -1 }, st;
	pid_t pid = 0;

	c = spawn(&pid);
	CHECK(c, "shell did not start");
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
	      "socketpair");
	fds[0] = open_snap("state");
	fds[1] = open_snap("memory");
	fds[2] = sv[1];
	CHECK(command(c, "restore state=0 memory=1 vsock=2 vsock-connected",
		      fds, 3, reply, sizeof(reply)) == 0, "restore: %s", reply);
	ember_shellctl_close(c);
	c = NULL;
	st = reap(pid, T_MS);
	pid = 0;
	CHECK(st == 0, "after the controller closed a running VM: exit %d "
	      "(-1: still running after %d ms)", st, T_MS);

	c = spawn(&pid);
	CHECK(c, "shell did not start");
	ember_shellctl_close(c);
	c = NULL;
	st = reap(pid, T_MS);
	pid = 0;
	CHECK(st == 0, "closed before a restore: exit %d", st);

	c = spawn(&pid);
	CHECK(c, "shell did not start");
	CHECK(command(c, "stop", NULL, 0, reply, sizeof(reply)) == 0,
	      "stop: %s", reply);
	CHECK(ember_shellctl_wait_exit(c, T_MS, &ex) == 0 &&
	      !strcmp(ex.reason, "stopped") && ex.status == 0, "EXIT after "
	      "stop without a VM");
	st = reap(pid, T_MS);
	pid = 0;
	CHECK(st == 0, "stop before a restore: exit %d", st);
	printf("ok   controller closes (running VM, and before a restore): the "
	       "VMM exits 0; stop before a restore: EXIT stopped\n");
out:
	for (unsigned i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (sv[0] >= 0)
		close(sv[0]);
	ember_shellctl_close(c);
	if (pid > 0)
		reap(pid, T_MS);
}

/* A control fd that is not a SOCK_SEQPACKET socket is a usage error. */
static void case_bad_control_fd(void)
{
	char fdnum[16];
	pid_t pid;
	int sv[2], st;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		snprintf(fdnum, sizeof(fdnum), "%d", sv[1]);
		execl(vmm, vmm, "--shell", "--control-fd", fdnum, "-q",
		      (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	st = reap(pid, T_MS);
	close(sv[0]);
	CHECK(st == 64, "--control-fd on a stream socket: exit %d, want 64",
	      st);
	printf("ok   --control-fd on a stream socket: exit 64\n");
out:
	return;
}

int main(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--vmm"))
			vmm = argv[i + 1];
		else if (!strcmp(argv[i], "--snapshot"))
			snap = argv[i + 1];
		else if (!strcmp(argv[i], "--tmp"))
			tmp = argv[i + 1];
		else if (!strcmp(argv[i], "--vmm-arg") &&
			 nr_extra < sizeof(extra_args) / sizeof(extra_args[0]))
			extra_args[nr_extra++] = argv[i + 1];
	}
	if (!vmm || !snap || !tmp) {
		fprintf(stderr, "usage: %s --vmm VMM --snapshot DIR --tmp DIR "
			"[--vmm-arg ARG]...\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	case_fds_only();
	case_threads_ahead();
	case_threads_late();
	case_prepared_shells();
	case_listen_prefetch_resnapshot();
	case_carried_connection();
	case_carried_connection_process();
	case_bad_commands();
	case_bad_snapshots();
	case_controller_goes_away();
	case_bad_control_fd();
	if (failures)
		printf("%d failures\n", failures);
	return failures ? 1 : 0;
}
