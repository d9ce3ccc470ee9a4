/*
 * Unit tests: Ember's cgroups (agent/cgroup.c).
 *
 * Two halves. The "real" tests use this machine's cgroups (v1 here, v2 on a
 * unified host: whatever cg_open() picks), below the cgroup the test was
 * started in: limits written and enforced on real processes (a memory hog is
 * OOM-killed, a fork loop stops at pids.max), moves, removal, cleanup of
 * leftovers. They skip when not root or when no hierarchy has the
 * controllers.
 *
 * The "fake" tests run v2 against a directory laid out like cgroupfs. mkdir,
 * rmdir and write are wrapped (-Wl,--wrap) so that inside the fake tree they
 * behave like the kernel's: mkdir creates the interface files of the
 * controllers the parent hands down, cgroup.procs moves a pid out of its old
 * group, cgroup.subtree_control refuses (EBUSY) while the group holds
 * processes, rmdir refuses while a live process is inside, cgroup.kill kills.
 */
// link: agent/cgroup.c vmm/log.c
// libs: -Wl,--wrap=mkdir -Wl,--wrap=rmdir -Wl,--wrap=write
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/cgroup.h"

#define MIB (1024ull * 1024)

static void slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	buf[0] = '\0';
	if (!f)
		return;
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

static void read_at(const struct cgroups *cg, const char *group,
		    enum cg_ctrl c, const char *file, char *buf, size_t len)
{
	char dir[PATH_MAX], path[PATH_MAX + 64];

	assert_int_equal(cg_path(cg, group, c, dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	slurp(path, buf, len);
}

static bool dir_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- the fake cgroupfs ---------------------------------------------------*/

static char fake_root[512]; /* the cgroup2 "mount point"; "" = off */
static char fake_tmp[256];

/* Which group each pid is in (what the kernel knows, the files show). */
#define FAKE_PIDS 16
static struct {
	pid_t pid;
	char dir[PATH_MAX];
} fake_pid[FAKE_PIDS];

int __real_mkdir(const char *path, mode_t mode);
int __real_rmdir(const char *path);
ssize_t __real_write(int fd, const void *buf, size_t n);
int __wrap_mkdir(const char *path, mode_t mode);
int __wrap_rmdir(const char *path);
ssize_t __wrap_write(int fd, const void *buf, size_t n);

static bool in_fake(const char *path)
{
	size_t n = strlen(fake_root);

	return n && !strncmp(path, fake_root, n) &&
	       (path[n] == '/' || path[n] == '\0');
}

static void put_file(const char *dir, const char *file, const char *val)
{
	char path[PATH_MAX + 64];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(__real_write(fd, val, strlen(val)),
			 (ssize_t)strlen(val));
	close(fd);
}

static void get_file(const char *dir, const char *file, char *buf,
		     size_t len)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	slurp(path, buf, len);
}

static bool alive(pid_t pid)
{
	char path[64], buf[256], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	slurp(path, buf, sizeof(buf));
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Rewrites dir/cgroup.procs from the table (exited processes drop out). */
static void fake_sync_procs(const char *dir)
{
	char list[1024] = "";

	for (unsigned i = 0; i < FAKE_PIDS; i++) {
		if (!fake_pid[i].pid || strcmp(fake_pid[i].dir, dir))
			continue;
		if (!alive(fake_pid[i].pid)) {
			fake_pid[i].pid = 0;
			continue;
		}
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
			 "%d\n", (int)fake_pid[i].pid);
	}
	put_file(dir, "cgroup.procs", list);
}

static void fake_place(pid_t pid, const char *dir)
{
	char old[PATH_MAX] = "";
	unsigned i, free_slot = FAKE_PIDS;

	for (i = 0; i < FAKE_PIDS; i++) {
		if (fake_pid[i].pid == pid)
			break;
		if (!fake_pid[i].pid && free_slot == FAKE_PIDS)
			free_slot = i;
	}
	if (i == FAKE_PIDS) {
		assert_true(free_slot < FAKE_PIDS);
		i = free_slot;
	} else {
		snprintf(old, sizeof(old), "%s", fake_pid[i].dir);
	}
	fake_pid[i].pid = pid;
	snprintf(fake_pid[i].dir, sizeof(fake_pid[i].dir), "%s", dir);
	if (old[0])
		fake_sync_procs(old);
	fake_sync_procs(dir);
}

static bool fake_has_procs(const char *dir)
{
	char buf[64];

	fake_sync_procs(dir);
	get_file(dir, "cgroup.procs", buf, sizeof(buf));
	return buf[0] != '\0';
}

/* What the kernel creates in a new group: the core files, and the files of
 * each controller its parent's subtree_control hands down. */
int __wrap_mkdir(const char *path, mode_t mode)
{
	char parent[PATH_MAX], ctrls[256];

	if (!in_fake(path))
		return __real_mkdir(path, mode);
	if (__real_mkdir(path, mode) < 0)
		return -1;
	snprintf(parent, sizeof(parent), "%s", path);
	*strrchr(parent, '/') = '\0';
	get_file(parent, "cgroup.subtree_control", ctrls, sizeof(ctrls));
	put_file(path, "cgroup.controllers", ctrls);
	put_file(path, "cgroup.subtree_control", "");
	put_file(path, "cgroup.procs", "");
	put_file(path, "cgroup.kill", "");
	put_file(path, "cgroup.events", "populated 0\nfrozen 0\n");
	if (strstr(ctrls, "memory")) {
		put_file(path, "memory.max", "max");
		put_file(path, "memory.swap.max", "max");
		put_file(path, "memory.current", "0");
		put_file(path, "memory.events", "low 0\nhigh 0\nmax 0\n"
						"oom 0\noom_kill 0\n");
	}
	if (strstr(ctrls, "cpu")) {
		put_file(path, "cpu.weight", "100");
		put_file(path, "cpu.max", "max 100000");
	}
	if (strstr(ctrls, "pids"))
		put_file(path, "pids.max", "max");
	return 0;
}

int __wrap_rmdir(const char *path)
{
	struct dirent *e;
	DIR *d;

	if (!in_fake(path))
		return __real_rmdir(path);
	if (fake_has_procs(path)) {
		errno = EBUSY;
		return -1;
	}
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char f[PATH_MAX + 256];

		if (e->d_name[0] == '.')
			continue;
		if (e->d_type == DT_DIR) {
			closedir(d);
			errno = EBUSY;
			return -1;
		}
		snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
		unlink(f);
	}
	closedir(d);
	return __real_rmdir(path);
}

/* "+a -b" applied to the set in `cur`, written back in kernel order. */
static int fake_subtree(const char *dir, const char *req)
{
	static const char *const all[] = { "cpu", "memory", "pids" };
	char cur[256], avail[256], out[256] = "";
	bool on[3];

	get_file(dir, "cgroup.subtree_control", cur, sizeof(cur));
	get_file(dir, "cgroup.controllers", avail, sizeof(avail));
	for (unsigned i = 0; i < 3; i++)
		on[i] = strstr(cur, all[i]) != NULL;
	for (const char *p = req; *p;) {
		size_t n;

		p += strspn(p, " \n");
		n = strcspn(p, " \n");
		if (!n)
			break;
		for (unsigned i = 0; i < 3; i++) {
			if (n - 1 != strlen(all[i]) || strncmp(p + 1, all[i], n - 1))
				continue;
			if (p[0] == '+' && !strstr(avail, all[i])) {
				errno = ENOENT;
				return -1;
			}
			on[i] = p[0] == '+';
		}
		p += n;
	}
	/* No internal processes: only the root may hand controllers down
	 * while it holds processes. */
	if ((on[0] || on[1] || on[2]) && strcmp(dir, fake_root) &&
	    fake_has_procs(dir)) {
		errno = EBUSY;
		return -1;
	}
	for (unsigned i = 0; i < 3; i++)
		if (on[i])
			snprintf(out + strlen(out), sizeof(out) - strlen(out),
				 "%s%s", out[0] ? " " : "", all[i]);
	put_file(dir, "cgroup.subtree_control", out);
	return 0;
}

static void fake_kill_tree(const char *dir)
{
	size_t n = strlen(dir);

	for (unsigned i = 0; i < FAKE_PIDS; i++)
		if (fake_pid[i].pid && !strncmp(fake_pid[i].dir, dir, n) &&
		    (fake_pid[i].dir[n] == '/' || !fake_pid[i].dir[n]))
			kill(fake_pid[i].pid, SIGKILL);
}

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
	char link[64], path[PATH_MAX], dir[PATH_MAX], val[256], *slash;
	const char *file;
	ssize_t l;

	if (!fake_root[0])
		return __real_write(fd, buf, n);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	l = readlink(link, path, sizeof(path) - 1);
	if (l < 0)
		return __real_write(fd, buf, n);
	path[l] = '\0';
	if (!in_fake(path))
		return __real_write(fd, buf, n);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	*slash = '\0';
	file = slash + 1;
	snprintf(val, sizeof(val), "%.*s", (int)(n < 255 ? n : 255),
		 (const char *)buf);
	if (!strcmp(file, "cgroup.subtree_control")) {
		if (fake_subtree(dir, val) < 0)
			return -1;
		return (ssize_t)n;
	}
	if (!strcmp(file, "cgroup.procs")) {
		char sub[256];

		get_file(dir, "cgroup.subtree_control", sub, sizeof(sub));
		if (sub[0] && strcmp(dir, fake_root)) {
			fake_sync_procs(dir);
			errno = EBUSY;
			return -1;
		}
		fake_place((pid_t)atoi(val), dir);
		return (ssize_t)n;
	}
	if (!strcmp(file, "cgroup.kill")) {
		fake_kill_tree(dir);
		return (ssize_t)n;
	}
	return __real_write(fd, buf, n);
}

/* A cgroupfs at TMP/cg with the start cgroup /svc holding this process;
 * mountinfo also lists this machine-like v1 hierarchy without Ember's
 * controllers. */
static void fake_setup(const char *v2_ctrls, const char *v1_line)
{
	char svc[PATH_MAX + 8], file[PATH_MAX + 32];
	FILE *f;

	snprintf(fake_tmp, sizeof(fake_tmp), "/tmp/ember-cgtest-XXXXXX");
	assert_non_null(mkdtemp(fake_tmp));
	snprintf(fake_root, sizeof(fake_root), "%s/cg", fake_tmp);
	memset(fake_pid, 0, sizeof(fake_pid));
	assert_int_equal(__real_mkdir(fake_root, 0755), 0);
	put_file(fake_root, "cgroup.controllers", v2_ctrls);
	put_file(fake_root, "cgroup.subtree_control", v2_ctrls);
	put_file(fake_root, "cgroup.procs", "");
	snprintf(svc, sizeof(svc), "%s/svc", fake_root);
	assert_int_equal(__wrap_mkdir(svc, 0755), 0);
	fake_place(getpid(), svc);

	snprintf(file, sizeof(file), "%s/mountinfo", fake_tmp);
	f = fopen(file, "w");
	assert_non_null(f);
	fprintf(f, "25 1 0:20 / / rw - ext4 /dev/vda rw\n");
	if (v1_line)
		fprintf(f, "%s\n", v1_line);
	fprintf(f, "41 31 0:38 / %s rw,relatime - cgroup2 cgroup2 rw\n",
		fake_root);
	fclose(f);
	snprintf(file, sizeof(file), "%s/cgroup", fake_tmp);
	f = fopen(file, "w");
	assert_non_null(f);
	fprintf(f, "9:name=systemd:/\n1:cpu:/\n0::/svc\n");
	fclose(f);
}

static void fake_teardown(void)
{
	char cmd[PATH_MAX + 16];

	fake_root[0] = '\0';
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fake_tmp);
	assert_int_equal(system(cmd), 0);
}

static struct cg_options fake_opts(const char *name, bool cleanup)
{
	static char cgfile[PATH_MAX + 16], mifile[PATH_MAX + 16];

	snprintf(cgfile, sizeof(cgfile), "%s/cgroup", fake_tmp);
	snprintf(mifile, sizeof(mifile), "%s/mountinfo", fake_tmp);
	return (struct cg_options){ .name = name, .proc_cgroup = cgfile,
				    .mountinfo = mifile, .cleanup = cleanup };
}

/* A child that sleeps until killed, for the fake groups to hold. */
static pid_t sleeper(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

static void test_v2_fake_open_create_move_close(void **state)
{
	char buf[256], svc[600], base[PATH_MAX + 16];
	struct cg_options o;
	struct cg_limits tl = { .memory_max = 512 * MIB, .pids_max = 200,
				.cpu_weight = 50, .cpu_max_pct = 150 };
	struct cg_limits vl = { .memory_max = 160 * MIB, .pids_max = 32 };
	struct cgroups *cg;
	char err[256];
	pid_t vm, got[4];
	int ret, status;

	(void)state;
	fake_setup("cpuset cpu io memory hugetlb pids",
		   "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu");
	o = fake_opts("ember", false);
	cg = cg_open(&o, &ret, err, sizeof(err));
	assert_non_null(cg);
	assert_int_equal(cg_version(cg), CG_V2);

	/* S held this process: it moved to its own leaf, then S handed down
	 * the three controllers, and S/ember hands them to the tenants. */
	snprintf(svc, sizeof(svc), "%s/svc", fake_root);
	get_file(svc, "cgroup.subtree_control", buf, sizeof(buf));
	assert_string_equal(buf, "cpu memory pids");
	get_file(svc, "cgroup.procs", buf, sizeof(buf));
	assert_string_equal(buf, "");
	snprintf(base, sizeof(base), "%s/ember.daemon", svc);
	get_file(base, "cgroup.procs", buf, sizeof(buf));
	assert_int_equal(atoi(buf), getpid());
	assert_int_equal(cg_path(cg, "", CG_PIDS, base, sizeof(base)), 0);
	assert_true(strstr(base, "/svc/ember") != NULL);
	get_file(base, "cgroup.subtree_control", buf, sizeof(buf));
	assert_string_equal(buf, "cpu memory pids");

	/* Tenant limits land in the v2 files; the tenant hands down. */
	assert_int_equal(cg_create(cg, "acme", &tl, err, sizeof(err)), 0);
	read_at(cg, "acme", CG_MEMORY, "memory.max", buf, sizeof(buf));
	assert_int_equal(strtoull(buf, NULL, 10), 512 * MIB);
	read_at(cg, "acme", CG_MEMORY, "memory.swap.max", buf, sizeof(buf));
	assert_string_equal(buf, "0");
	read_at(cg, "acme", CG_PIDS, "pids.max", buf, sizeof(buf));
	assert_string_equal(buf, "200");
	read_at(cg, "acme", CG_CPU, "cpu.weight", buf, sizeof(buf));
	assert_string_equal(buf, "50");
	read_at(cg, "acme", CG_CPU, "cpu.max", buf, sizeof(buf));
	assert_string_equal(buf, "150000 100000");
	read_at(cg, "acme", CG_CPU, "cgroup.subtree_control", buf, sizeof(buf));
	assert_string_equal(buf, "cpu memory pids");

	/* A VM: its own memory and pids limits; unset ones stay default. */
	assert_int_equal(cg_create(cg, "acme/vm-1", &vl, err, sizeof(err)), 0);
	read_at(cg, "acme/vm-1", CG_MEMORY, "memory.max", buf, sizeof(buf));
	assert_int_equal(strtoull(buf, NULL, 10), 160 * MIB);
	read_at(cg, "acme/vm-1", CG_CPU, "cpu.max", buf, sizeof(buf));
	assert_string_equal(buf, "max 100000");

	/* Rewriting limits: zero fields go back to unlimited. */
	vl.memory_max = 0;
	assert_int_equal(cg_set_limits(cg, "acme/vm-1", &vl, err, sizeof(err)),
			 0);
	read_at(cg, "acme/vm-1", CG_MEMORY, "memory.max", buf, sizeof(buf));
	assert_string_equal(buf, "max");

	/* Moves: only into leaves. */
	vm = sleeper();
	assert_int_equal(cg_move(cg, "acme", vm), -EINVAL);
	assert_int_equal(cg_move(cg, "acme/vm-1", vm), 0);
	assert_int_equal(cg_procs(cg, "acme/vm-1", got, 4), 1);
	assert_int_equal(got[0], vm);

	/* Removal waits for the group to empty, and gives up at the
	 * deadline; with kill it empties the group itself. */
	assert_int_equal(cg_remove(cg, "acme", 30, false), -EBUSY);
	assert_true(dir_exists(base));
	assert_int_equal(cg_remove(cg, "acme", 2000, true), 0);
	assert_int_equal(waitpid(vm, &status, 0), vm);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(cg_remove(cg, "acme", 10, false), -ENOENT);
	assert_int_equal(cg_create(cg, "acme/vm-2", NULL, err, sizeof(err)),
			 -ENOENT);

	/* Closing undoes everything: S/ember and the daemon leaf are gone,
	 * this process is back in S, which hands nothing down any more. */
	assert_int_equal(cg_close(cg, true, 1000), 0);
	assert_false(dir_exists(base));
	snprintf(base, sizeof(base), "%s/ember.daemon", svc);
	assert_false(dir_exists(base));
	get_file(svc, "cgroup.procs", buf, sizeof(buf));
	assert_int_equal(atoi(buf), getpid());
	get_file(svc, "cgroup.subtree_control", buf, sizeof(buf));
	assert_string_equal(buf, "");
	fake_teardown();
}

static void test_v2_fake_cleanup_leftovers(void **state)
{
	char err[256], dir[PATH_MAX];
	struct cg_options o;
	struct cgroups *cg;
	pid_t orphan;
	int ret, status;

	(void)state;
	fake_setup("cpu memory pids", NULL);
	o = fake_opts("ember", false);
	cg = cg_open(&o, &ret, err, sizeof(err));
	assert_non_null(cg);
	assert_int_equal(cg_create(cg, "old", NULL, err, sizeof(err)), 0);
	assert_int_equal(cg_create(cg, "old/vm-9", NULL, err, sizeof(err)), 0);
	orphan = sleeper();
	assert_int_equal(cg_move(cg, "old/vm-9", orphan), 0);
	assert_int_equal(cg_close(cg, false, 0), 0); /* a "crash" */

	o.cleanup = true;
	cg = cg_open(&o, &ret, err, sizeof(err));
	assert_non_null(cg);
	assert_int_equal(waitpid(orphan, &status, 0), orphan);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(cg_path(cg, "old", CG_MEMORY, dir, sizeof(dir)), 0);
	assert_false(dir_exists(dir));
	assert_int_equal(cg_close(cg, true, 1000), 0);
	fake_teardown();
}

static void test_v2_fake_missing_controllers(void **state)
{
	struct cg_options o;
	char err[256];
	int ret;

	(void)state;
	/* This machine's layout: cgroup2 without the controllers, and no
	 * v1 hierarchy for them in this (fake) mountinfo either. */
	fake_setup("hugetlb", NULL);
	o = fake_opts("ember", false);
	assert_null(cg_open(&o, &ret, err, sizeof(err)));
	assert_int_equal(ret, -ENOTSUP);
	assert_non_null(strstr(err, "memory, cpu and pids"));
	o.version = CG_V2;
	assert_null(cg_open(&o, &ret, err, sizeof(err)));
	assert_int_equal(ret, -ENOTSUP);
	assert_non_null(strstr(err, "hugetlb"));
	o.version = CG_V1;
	assert_null(cg_open(&o, &ret, err, sizeof(err)));
	assert_int_equal(ret, -ENOTSUP);
	assert_non_null(strstr(err, "memory cpu pids"));
	fake_teardown();
}

static void test_path_validation(void **state)
{
	(void)state;
	assert_true(cg_path_valid("acme"));
	assert_true(cg_path_valid("acme/vm-12"));
	assert_true(cg_path_valid("t_1/vm.2"));
	assert_false(cg_path_valid(""));
	assert_false(cg_path_valid(".."));
	assert_false(cg_path_valid("acme/.."));
	assert_false(cg_path_valid("../x"));
	assert_false(cg_path_valid("/acme"));
	assert_false(cg_path_valid("acme/"));
	assert_false(cg_path_valid("a/b/c"));
	assert_false(cg_path_valid("a b"));
	assert_false(cg_path_valid(NULL));
	assert_false(cg_path_valid(
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

/* ---- the real cgroups of this machine --------------------------------------*/

static struct cgroups *real;
static char real_name[64];

static int real_setup(void **state)
{
	struct cg_options o = { .name = real_name, .cleanup = true };
	char err[512];
	int ret;

	(void)state;
	snprintf(real_name, sizeof(real_name), "ember-unit-%d", (int)getpid());
	if (geteuid() != 0)
		return 0;
	real = cg_open(&o, &ret, err, sizeof(err));
	if (!real)
		fprintf(stderr, "real cgroups unavailable: %s\n", err);
	return 0;
}

static int real_teardown(void **state)
{
	(void)state;
	if (real)
		assert_int_equal(cg_close(real, true, 5000), 0);
	real = NULL;
	return 0;
}

/* Forks a child that waits for one byte on a pipe, then runs fn. */
static pid_t spawn_gated(int (*fn)(void), int *gate)
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;

		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			_exit(100);
		_exit(fn());
	}
	close(p[0]);
	*gate = p[1];
	return pid;
}

static void open_gate(int gate)
{
	assert_int_equal(write(gate, "g", 1), 1);
	close(gate);
}

static int touch_64mib(void)
{
	size_t len = 64 * MIB;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return 101;
	for (size_t i = 0; i < len; i += 4096)
		p[i] = 1;
	return 0; /* should not get here: the group allows 24 MiB */
}

/* Forks up to 16 children; returns how many forks succeeded. */
static int fork_16(void)
{
	pid_t kids[16];
	int n = 0;

	for (int i = 0; i < 16; i++) {
		kids[n] = fork();
		if (kids[n] == 0) {
			pause();
			_exit(0);
		}
		if (kids[n] < 0)
			break;
		n++;
	}
	for (int i = 0; i < n; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
	return n;
}

static void test_real_limits_enforced(void **state)
{
	struct cg_limits tl = { .memory_max = 64 * MIB, .pids_max = 16,
				.cpu_weight = 50 };
	struct cg_limits vl = { .memory_max = 24 * MIB, .pids_max = 8 };
	char err[512], buf[256], want[PATH_MAX], dir[PATH_MAX];
	int gate, status;
	pid_t pid;

	(void)state;
	if (!real)
		skip();
	assert_int_equal(cg_create(real, "t1", &tl, err, sizeof(err)), 0);
	assert_int_equal(cg_create(real, "t1/vm1", &vl, err, sizeof(err)), 0);
	if (cg_version(real) == CG_V1) {
		read_at(real, "t1", CG_CPU, "cpu.shares", buf, sizeof(buf));
		assert_string_equal(buf, "512");
		read_at(real, "t1/vm1", CG_MEMORY, "memory.limit_in_bytes",
			buf, sizeof(buf));
	} else {
		read_at(real, "t1", CG_CPU, "cpu.weight", buf, sizeof(buf));
		assert_string_equal(buf, "50");
		read_at(real, "t1/vm1", CG_MEMORY, "memory.max", buf,
			sizeof(buf));
	}
	assert_int_equal(strtoull(buf, NULL, 10), 24 * MIB);

	/* A process moved into the VM's group is there in every
	 * hierarchy (/proc/PID/cgroup), and is killed by the kernel when it
	 * touches more memory than the group allows. */
	pid = spawn_gated(touch_64mib, &gate);
	assert_int_equal(cg_move(real, "t1/vm1", pid), 0);
	for (unsigned c = 0; c < CG_NR_CTRL; c++) {
		char path[64], line[PATH_MAX + 64];
		FILE *f;
		bool found = false;

		assert_int_equal(cg_path(real, "t1/vm1", (enum cg_ctrl)c, dir,
					 sizeof(dir)), 0);
		snprintf(want, sizeof(want), "/%s/t1/vm1", real_name);
		snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
		f = fopen(path, "r");
		assert_non_null(f);
		while (fgets(line, sizeof(line), f))
			found |= strstr(line, want) != NULL;
		fclose(f);
		assert_true(found);
	}
	open_gate(gate);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_true(cg_oom_kills(real, "t1/vm1") >= 1);

	/* pids.max counts the child itself: 7 more forks, then EAGAIN. */
	pid = spawn_gated(fork_16, &gate);
	assert_int_equal(cg_move(real, "t1/vm1", pid), 0);
	open_gate(gate);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 7);

	assert_int_equal(cg_remove(real, "t1", 2000, false), 0);
	assert_int_equal(cg_path(real, "t1", CG_MEMORY, dir, sizeof(dir)), 0);
	assert_false(dir_exists(dir));
}

static int sleep_300ms(void)
{
	usleep(300 * 1000);
	return 0;
}

static void test_real_remove_waits(void **state)
{
	char err[512], dir[PATH_MAX];
	pid_t pid, got[4];
	int gate, status;

	(void)state;
	if (!real)
		skip();
	assert_int_equal(cg_create(real, "t2", NULL, err, sizeof(err)), 0);
	assert_int_equal(cg_create(real, "t2/vm", NULL, err, sizeof(err)), 0);
	pid = spawn_gated(sleep_300ms, &gate);
	assert_int_equal(cg_move(real, "t2/vm", pid), 0);
	assert_int_equal(cg_procs(real, "t2/vm", got, 4), 1);
	assert_int_equal(got[0], pid);
	open_gate(gate);
	/* Busy while the child sleeps; empty once it has exited (it is not
	 * reaped until after the call). */
	assert_int_equal(cg_remove(real, "t2", 20, false), -EBUSY);
	assert_int_equal(cg_remove(real, "t2", 5000, false), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(cg_path(real, "t2/vm", CG_PIDS, dir, sizeof(dir)), 0);
	assert_false(dir_exists(dir));
	assert_int_equal(cg_move(real, "t2/vm", getpid()), -ENOENT);
}

static void test_real_cleanup_at_open(void **state)
{
	struct cg_options o = { .name = real_name, .cleanup = true };
	char err[512], dir[PATH_MAX];
	int ret, status;
	pid_t pid;

	(void)state;
	if (!real)
		skip();
	assert_int_equal(cg_create(real, "t3", NULL, err, sizeof(err)), 0);
	assert_int_equal(cg_create(real, "t3/vm", NULL, err, sizeof(err)), 0);
	pid = sleeper();
	assert_int_equal(cg_move(real, "t3/vm", pid), 0);
	/* emberd "crashes" and starts again: the orphan is killed and the
	 * leftover groups removed. */
	assert_int_equal(cg_close(real, false, 0), 0);
	real = cg_open(&o, &ret, err, sizeof(err));
	assert_non_null(real);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(cg_path(real, "t3", CG_MEMORY, dir, sizeof(dir)), 0);
	assert_false(dir_exists(dir));
}

static void test_real_bad_input(void **state)
{
	char err[512];

	(void)state;
	if (!real)
		skip();
	assert_int_equal(cg_create(real, "../escape", NULL, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(cg_create(real, "a/b/c", NULL, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(cg_move(real, "../x/y", getpid()), -EINVAL);
	assert_int_equal(cg_remove(real, "..", 0, false), -EINVAL);
	assert_int_equal(cg_create(real, "t4", &(struct cg_limits){
					   .cpu_weight = 20000 }, err,
				   sizeof(err)), -EINVAL);
	assert_int_equal(cg_remove(real, "t4", 1000, false), 0);
}

int main(void)
{
	/* One group (tests/run.sh counts one summary line per binary); the
	 * group setup opens the real cgroups, the fake tests ignore them. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_validation),
		cmocka_unit_test(test_v2_fake_open_create_move_close),
		cmocka_unit_test(test_v2_fake_cleanup_leftovers),
		cmocka_unit_test(test_v2_fake_missing_controllers),
		cmocka_unit_test(test_real_limits_enforced),
		cmocka_unit_test(test_real_remove_waits),
		cmocka_unit_test(test_real_cleanup_at_open),
		cmocka_unit_test(test_real_bad_input),
	};

	return cmocka_run_group_tests(tests, real_setup, real_teardown);
}
