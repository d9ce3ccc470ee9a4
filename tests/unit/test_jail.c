/*
 * Unit tests: the jail (agent/jail.c), checked from inside.
 *
 * build/test/jail-probe (tests/helpers/jail-probe.c) is exec'd in place of
 * ember-vmm with the same jail and reports each wall: no host file, socket
 * or device visible; no network but a loopback that is down; other VMs'
 * and emberd's pids can be neither signalled nor traced; /proc shows only
 * the jail's own PID namespace; its own uid, no capabilities,
 * no_new_privs; rlimits; only the listed fds; cgroup files unreachable;
 * the parent-death signal. Needs root (it mounts and changes uid); skips
 * otherwise, or when the probe has not been built (make test builds it).
 */
// link: agent/jail.c vmm/log.c
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/jail.h"

#define UID_BASE 1900000000u

static char probe_path[PATH_MAX];
static char root_dir[64];
static int probe_fd = -1;
static struct jail_config cfg;

static int group_setup(void **state)
{
	const char *b = getenv("BUILD");

	(void)state;
	snprintf(probe_path, sizeof(probe_path), "%s/test/jail-probe",
		 b ? b : "build");
	probe_fd = open(probe_path, O_PATH | O_CLOEXEC);
	snprintf(root_dir, sizeof(root_dir), "/tmp/ember-jail-root-XXXXXX");
	if (!mkdtemp(root_dir))
		return -1;
	cfg = (struct jail_config){ .uid_base = UID_BASE, .uid_count = 16,
				    .root_dir = root_dir, .max_procs = 8 };
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (probe_fd >= 0)
		close(probe_fd);
	rmdir(root_dir);
	return 0;
}

static void need_root_and_probe(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "the jail needs root\n");
		skip();
	}
	if (probe_fd < 0) {
		fprintf(stderr, "%s not built (make test builds it)\n",
			probe_path);
		skip();
	}
}

/* A probe sleeping in its own jail: "another VM". */
static struct jail_proc spawn_sleeper(unsigned slot)
{
	static char *const argv[] = { "jail-probe", "sleep", NULL };
	struct jail_spec s = { .exec_fd = probe_fd, .argv = argv,
			       .kvm_target = -1, .slot = slot };
	struct jail_proc p;
	char err[256];

	assert_int_equal(jail_spawn(&cfg, &s, &p, err, sizeof(err)), 0);
	return p;
}

static void reap_killed(struct jail_proc *p)
{
	int status;

	kill(p->pid, SIGKILL);
	assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
	close(p->pidfd);
}

static void read_all(int fd, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
}

static void expect_line(const char *out, const char *line)
{
	char want[512];

	snprintf(want, sizeof(want), "\n%s\n", line);
	if (strncmp(out, want + 1, strlen(want + 1)) && !strstr(out, want)) {
		fprintf(stderr, "probe output lacks '%s':\n%s", line, out);
		fail();
	}
}

static void test_walls_from_inside(void **state)
{
	char state_dir[] = "/tmp/ember-jail-state-XXXXXX";
	char secret[PATH_MAX], sock_path[100], out[16384];
	char a_uid[32], a_hidden[PATH_MAX + 16], a_hidden2[PATH_MAX + 16];
	char a_sock[PATH_MAX + 16], a_pid1[32], a_pid2[32], a_port[32];
	char a_abs[64], a_abs_arg[80], a_shm[32], a_kvm[16], a_fds[32];
	char a_nproc[32], a_fsize[32], a_cg[64], err[256];
	struct sockaddr_un ua = { .sun_family = AF_UNIX };
	struct sockaddr_in ta = { .sin_family = AF_INET };
	socklen_t tlen = sizeof(ta);
	int ls, ts, as, shmid, stray, pipefd[2], status, key;
	bool kvm = access("/dev/kvm", R_OK | W_OK) == 0;
	struct jail_proc other, p;
	char *argv[24];
	unsigned ac = 0;

	(void)state;
	need_root_and_probe();

	/* The host side: a state dir with a secret and a VM's socket, a TCP
	 * listener on loopback, an abstract socket, a SysV segment, another
	 * jailed VM, and a stray fd that must not be inherited. */
	assert_non_null(mkdtemp(state_dir));
	snprintf(secret, sizeof(secret), "%s/db.sqlite", state_dir);
	close(open(secret, O_CREAT | O_WRONLY, 0600));
	snprintf(sock_path, sizeof(sock_path), "%s/vm-7.vsock", state_dir);
	snprintf(ua.sun_path, sizeof(ua.sun_path), "%s", sock_path);
	ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(ls, (struct sockaddr *)&ua, sizeof(ua)), 0);
	assert_int_equal(listen(ls, 4), 0);
	ts = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ta.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(ts, (struct sockaddr *)&ta, sizeof(ta)), 0);
	assert_int_equal(listen(ts, 4), 0);
	assert_int_equal(getsockname(ts, (struct sockaddr *)&ta, &tlen), 0);
	as = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&ua, 0, sizeof(ua));
	ua.sun_family = AF_UNIX;
	snprintf(a_abs, sizeof(a_abs), "ember-jail-test-%d", (int)getpid());
	memcpy(ua.sun_path + 1, a_abs, strlen(a_abs));
	assert_int_equal(bind(as, (struct sockaddr *)&ua,
			      (socklen_t)(offsetof(struct sockaddr_un,
						   sun_path) +
					  1 + strlen(a_abs))),
			 0);
	assert_int_equal(listen(as, 4), 0);
	key = 0x45000000 + (getpid() & 0xffff);
	shmid = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600);
	assert_true(shmid >= 0);
	other = spawn_sleeper(1);
	stray = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
	assert_true(stray >= 0);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);

	argv[ac++] = "jail-probe";
	argv[ac++] = "walls";
	snprintf(a_uid, sizeof(a_uid), "uid=%u", UID_BASE + 3);
	argv[ac++] = a_uid;
	snprintf(a_hidden, sizeof(a_hidden), "hidden=%s", secret);
	argv[ac++] = a_hidden;
	snprintf(a_hidden2, sizeof(a_hidden2), "hidden=%s", state_dir);
	argv[ac++] = a_hidden2;
	argv[ac++] = "hidden=/sys/fs/cgroup";
	argv[ac++] = "hidden=/dev/kvm";
	snprintf(a_sock, sizeof(a_sock), "sock=%s", sock_path);
	argv[ac++] = a_sock;
	snprintf(a_pid1, sizeof(a_pid1), "pid=%d", (int)other.pid);
	argv[ac++] = a_pid1;
	snprintf(a_pid2, sizeof(a_pid2), "pid=%d", (int)getpid());
	argv[ac++] = a_pid2;
	snprintf(a_port, sizeof(a_port), "port=%d", ntohs(ta.sin_port));
	argv[ac++] = a_port;
	snprintf(a_abs_arg, sizeof(a_abs_arg), "abstract=%s", a_abs);
	argv[ac++] = a_abs_arg;
	snprintf(a_shm, sizeof(a_shm), "shm=%d", key);
	argv[ac++] = a_shm;
	if (kvm) {
		snprintf(a_kvm, sizeof(a_kvm), "kvm=5");
		argv[ac++] = a_kvm;
	}
	snprintf(a_fds, sizeof(a_fds), "fds=0,1,2%s", kvm ? ",5" : "");
	argv[ac++] = a_fds;
	snprintf(a_nproc, sizeof(a_nproc), "nproc=%u", cfg.max_procs);
	argv[ac++] = a_nproc;
	snprintf(a_fsize, sizeof(a_fsize), "fsize=%d", 65536);
	argv[ac++] = a_fsize;
	snprintf(a_cg, sizeof(a_cg), "cgfile=/sys/fs/cgroup/pids/cgroup.procs");
	argv[ac++] = a_cg;
	argv[ac] = NULL;

	{
		struct jail_fd fds[] = { { pipefd[1], 1 }, { 2, 2 } };
		struct jail_spec s = { .exec_fd = probe_fd, .argv = argv,
				       .fds = fds, .nr_fds = 2,
				       .kvm_target = kvm ? 5 : -1,
				       .slot = 3, .max_file_bytes = 65536 };

		assert_int_equal(jail_spawn(&cfg, &s, &p, err, sizeof(err)),
				 0);
	}
	close(pipefd[1]);
	read_all(pipefd[0], out, sizeof(out));
	close(pipefd[0]);
	assert_int_equal(waitpid(p.pid, &status, 0), p.pid);
	close(p.pidfd);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    getenv("EMBER_TEST_VERBOSE"))
		fprintf(stderr, "probe (status %#x) said:\n%s", status, out);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* Each wall, by name: a probe that skipped one would not pass. */
	expect_line(out, "ok empty-root");
	expect_line(out, "ok no-etc-passwd");
	expect_line(out, "ok no-dev-kvm");
	expect_line(out, "ok root-read-only");
	expect_line(out, "ok no-mount");
	expect_line(out, "ok proc-own-namespace");
	expect_line(out, "ok proc-no-host-files");
	expect_line(out, "ok proc-self-pagemap");
	expect_line(out, "ok no-parent-visible");
	expect_line(out, "ok kill-all-reaches-none");
	expect_line(out, "ok uid");
	expect_line(out, "ok no-groups");
	expect_line(out, "ok no-capabilities");
	expect_line(out, "ok no-new-privs");
	expect_line(out, "ok only-loopback-interface");
	expect_line(out, "ok loopback-down");
	expect_line(out, "ok no-tcp-to-host");
	expect_line(out, "ok abstract-socket-unreachable");
	expect_line(out, "ok own-hostname");
	expect_line(out, "ok no-host-sysv-ipc");
	expect_line(out, "ok fds-listed");
	expect_line(out, "ok no-core-dumps");
	expect_line(out, "ok nproc-limit");
	expect_line(out, "ok fsize-limit");
	if (kvm) {
		expect_line(out, "ok kvm-fd-works");
		expect_line(out, "ok kvm-create-vm");
	}
	{
		char line[PATH_MAX + 64];

		snprintf(line, sizeof(line), "ok hidden:%s", secret);
		expect_line(out, line);
		snprintf(line, sizeof(line), "ok unreachable:%s", sock_path);
		expect_line(out, line);
		snprintf(line, sizeof(line), "ok no-kill:%d", (int)other.pid);
		expect_line(out, line);
		snprintf(line, sizeof(line), "ok no-ptrace:%d", (int)other.pid);
		expect_line(out, line);
		snprintf(line, sizeof(line), "ok no-kill:%d", (int)getpid());
		expect_line(out, line);
		snprintf(line, sizeof(line), "ok no-ptrace:%d", (int)getpid());
		expect_line(out, line);
		expect_line(out, "ok cgroup-not-writable:"
				 "/sys/fs/cgroup/pids/cgroup.procs");
	}
	expect_line(out, "done 0");

	/* The host saw nothing of the jail's mounts. */
	{
		char mi[65536];
		int fd = open("/proc/self/mountinfo", O_RDONLY);

		read_all(fd, mi, sizeof(mi));
		close(fd);
		assert_null(strstr(mi, root_dir));
	}
	reap_killed(&other);
	close(stray);
	shmctl(shmid, IPC_RMID, NULL);
	close(ls);
	close(ts);
	close(as);
	unlink(sock_path);
	unlink(secret);
	rmdir(state_dir);
}

/* emberd dies: its jailed processes die with it (SIGKILL), even though
 * they are PID 1 of their namespaces. */
static void test_parent_death_kills(void **state)
{
	int pfd[2], status;
	pid_t mid, probe = 0;

	(void)state;
	need_root_and_probe();
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	assert_int_equal(pipe(pfd), 0);
	mid = fork();
	assert_true(mid >= 0);
	if (mid == 0) {
		struct jail_proc p = spawn_sleeper(4);

		if (write(pfd[1], &p.pid, sizeof(p.pid)) != sizeof(p.pid))
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &probe, sizeof(probe)), sizeof(probe));
	close(pfd[0]);
	assert_int_equal(waitpid(mid, &status, 0), mid);
	/* Reparented to us (the subreaper), killed by the kernel. */
	alarm(20);
	assert_int_equal(waitpid(probe, &status, 0), probe);
	alarm(0);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

static void test_spawn_errors(void **state)
{
	static char *const argv[] = { "true", NULL };
	struct jail_spec s = { .argv = argv, .kvm_target = -1, .slot = 0 };
	struct jail_config bad = cfg;
	struct jail_proc p;
	char err[256];
	int fd, status;

	(void)state;
	/* Configuration. */
	assert_int_equal(jail_config_check(&cfg, err, sizeof(err)), 0);
	bad.uid_base = 0;
	assert_int_equal(jail_config_check(&bad, err, sizeof(err)), -EINVAL);
	bad = cfg;
	bad.uid_base = 65000;
	bad.uid_count = 1000;
	assert_int_equal(jail_config_check(&bad, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "nobody"));
	bad = cfg;
	bad.uid_base = INT32_MAX - 5;
	assert_int_equal(jail_config_check(&bad, err, sizeof(err)), -EINVAL);
	bad = cfg;
	bad.root_dir = "/nonexistent/ember";
	assert_int_equal(jail_config_check(&bad, err, sizeof(err)), -EINVAL);

	/* A dynamic executable is refused up front, and if spawned anyway
	 * fails at its exec (no ld.so in the root), leaving nothing. */
	fd = open("/bin/true", O_PATH | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(jail_check_exec(fd, err, sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "static"));
	if (probe_fd >= 0)
		assert_int_equal(jail_check_exec(probe_fd, err, sizeof(err)), 0);
	s.exec_fd = fd;
	s.slot = 99;
	assert_int_equal(jail_spawn(&cfg, &s, &p, err, sizeof(err)), -EINVAL);
	s.slot = 0;
	s.fds = (struct jail_fd[]){ { 2, 2 }, { 1, 2 } };
	s.nr_fds = 2;
	assert_int_equal(jail_spawn(&cfg, &s, &p, err, sizeof(err)), -EINVAL);
	s.nr_fds = 0;
	if (geteuid() == 0) {
		assert_int_equal(jail_spawn(&cfg, &s, &p, err, sizeof(err)),
				 -ENOENT);
		assert_non_null(strstr(err, "executing the program"));
		assert_int_equal(waitpid(-1, &status, WNOHANG), -1);
		assert_int_equal(errno, ECHILD);
		bad = cfg;
		bad.root_dir = "/nonexistent/ember";
		assert_true(jail_spawn(&bad, &s, &p, err, sizeof(err)) < 0);
		assert_non_null(strstr(err, "empty root"));
	}
	close(fd);
}

/* A dynamic program starts in the jail once its loader and libraries are
 * bound (jail_exec_libs), and they are read-only there; a static one needs
 * none. */
static void test_dynamic_with_binds(void **state)
{
	static char *const argv[] = { "true", NULL };
	struct jail_spec s = { .argv = argv, .kvm_target = -1, .slot = 1 };
	struct jail_config c = cfg;
	const char *const bad[] = { "lib/x.so", NULL };
	struct jail_proc p;
	char err[256], **libs = NULL;
	bool has_libc = false;
	int status;

	(void)state;
	assert_int_equal(jail_exec_libs("/bin/true", &libs, err, sizeof(err)),
			 0);
	assert_non_null(libs);
	for (size_t i = 0; libs[i]; i++) {
		assert_true(libs[i][0] == '/');
		has_libc |= strstr(libs[i], "libc.so") != NULL;
	}
	assert_true(has_libc);
	if (probe_fd >= 0) {
		char **none = (char **)1;

		assert_int_equal(jail_exec_libs(probe_path, &none, err,
						sizeof(err)), 0);
		assert_null(none);
	}
	assert_true(jail_exec_libs("/nonexistent", &(char **){ NULL }, err,
				   sizeof(err)) < 0);
	if (geteuid() != 0) {
		jail_libs_free(libs);
		skip();
	}
	s.exec_fd = open("/bin/true", O_PATH | O_CLOEXEC);
	assert_true(s.exec_fd >= 0);
	c.binds = (const char *const *)libs;
	c.dirs = (const char *const[]){ "/sys/module/kvm_pvm", NULL };
	assert_int_equal(jail_spawn(&c, &s, &p, err, sizeof(err)), 0);
	assert_int_equal(waitpid(p.pid, &status, 0), p.pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(p.pidfd);
	/* Paths for the root must be absolute. */
	c.binds = bad;
	assert_int_equal(jail_spawn(&c, &s, &p, err, sizeof(err)), -EINVAL);
	close(s.exec_fd);
	jail_libs_free(libs);
}

static void test_slots(void **state)
{
	struct jail_slots *s = jail_slots_new(3);
	int a, b, c;

	(void)state;
	assert_non_null(s);
	a = jail_slot_get(s);
	b = jail_slot_get(s);
	c = jail_slot_get(s);
	assert_true(a >= 0 && b >= 0 && c >= 0);
	assert_true(a != b && b != c && a != c);
	assert_int_equal(jail_slot_get(s), -ENOSPC);
	jail_slot_put(s, (unsigned)b);
	assert_int_equal(jail_slot_get(s), b);
	jail_slot_put(s, 7); /* out of range: ignored */
	assert_int_equal(jail_slot_get(s), -ENOSPC);
	jail_slots_free(s);

	/* Next fit: a uid just freed is handed out after the others. */
	s = jail_slots_new(4);
	assert_non_null(s);
	assert_int_equal(jail_slot_get(s), 0);
	assert_int_equal(jail_slot_get(s), 1);
	jail_slot_put(s, 0);
	assert_int_equal(jail_slot_get(s), 2);
	assert_int_equal(jail_slot_get(s), 3);
	assert_int_equal(jail_slot_get(s), 0);
	jail_slots_free(s);
	assert_null(jail_slots_new(0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slots),
		cmocka_unit_test(test_spawn_errors),
		cmocka_unit_test(test_walls_from_inside),
		cmocka_unit_test(test_parent_death_kills),
		cmocka_unit_test(test_dynamic_with_binds),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
