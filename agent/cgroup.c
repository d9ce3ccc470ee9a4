/*
 * cgroup.c - Ember's cgroups on v1 or v2 (cgroup.h).
 *
 * Everything is plain file I/O on cgroupfs: mkdir creates a group, writing a
 * pid to cgroup.procs moves a process, rmdir removes an empty group. The two
 * versions differ in layout (v1: one hierarchy per controller, each with its
 * own start cgroup; v2: one tree where a parent must enable a controller in
 * cgroup.subtree_control before its children get it) and in file names
 * (Documentation/admin-guide/cgroup-v2.rst, cgroup-v1/memory.rst,
 * cgroup-v1/pids.rst, scheduler/sched-bwc.rst). No library does this: libcgroup
 * wants its own configuration files and daemon, systemd's API only D-Bus.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/cgroup.h"
#include "log.h"

static const char *const ctrl_name[CG_NR_CTRL] = {
	[CG_MEMORY] = "memory",
	[CG_CPU] = "cpu",
	[CG_PIDS] = "pids",
};

#define CG_NAME_MAX 63
#define CPU_PERIOD_US 100000
#define PROC_CGROUP "/proc/self/cgroup"
#define MOUNTINFO "/proc/self/mountinfo"

/* One mounted hierarchy Ember uses. */
struct cg_hier {
	char *start;     /* S: the cgroup this process was started in */
	char *base;      /* S/<name> */
	unsigned ctrls;  /* 1 << enum cg_ctrl, for each controller it serves */
};

struct cgroups {
	enum cg_version version;
	struct cg_hier hier[CG_NR_CTRL];
	unsigned nr_hier;
	unsigned ctrl_hier[CG_NR_CTRL]; /* index into hier[] */
	char *daemon;   /* v2: S/<name>.daemon, if this process moved there */
	bool memsw;     /* v1: memory.memsw.* exists (swap is accounted) */
};

/* ---- small file helpers ------------------------------------------------ */

/* dir/file into out; -ENAMETOOLONG if it does not fit. */
static int join(char *out, size_t len, const char *dir, const char *file)
{
	int n = snprintf(out, len, "%s/%s", dir, file);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int write_file(const char *path, const char *val)
{
	size_t len = strlen(val);
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* cgroupfs takes a value in one write. */
	n = write(fd, val, len);
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != len)
		ret = -EIO;
	close(fd);
	return ret;
}

static int writef_at(const char *dir, const char *file, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int writef_at(const char *dir, const char *file, const char *fmt, ...)
{
	char path[PATH_MAX], val[64];
	va_list ap;

	if (join(path, sizeof(path), dir, file))
		return -ENAMETOOLONG;
	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	return write_file(path, val);
}

/* Reads a small file (at most len - 1 bytes) into buf, NUL-terminated. */
static int read_file(const char *path, char *buf, size_t len)
{
	ssize_t n;
	size_t got = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (got < len - 1) {
		n = read(fd, buf + got, len - 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return ret;
}

static bool file_exists(const char *dir, const char *file)
{
	char path[PATH_MAX];

	return !join(path, sizeof(path), dir, file) && access(path, F_OK) == 0;
}

/* Whether the whitespace-separated list `list` contains `word`. */
static bool has_word(const char *list, const char *word, const char *seps)
{
	size_t wl = strlen(word);
	const char *p = list;

	while (*p) {
		size_t n;

		p += strspn(p, seps);
		n = strcspn(p, seps);
		if (n == wl && !strncmp(p, word, wl))
			return true;
		p += n;
	}
	return false;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)us * 1000 };

	nanosleep(&ts, NULL);
}

/* ---- finding the start cgroup ------------------------------------------ */

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

struct mount_ent {
	char root[PATH_MAX];
	char point[PATH_MAX];
	char fstype[32];
	char opts[512];  /* super options: the v1 controllers are listed here */
};

/* Splits one mountinfo line (proc(5)). false if it is malformed. */
static bool parse_mountinfo_line(char *line, struct mount_ent *m)
{
	char *f[6], *sep, *save = NULL, *tok;
	unsigned i;

	sep = strstr(line, " - ");
	if (!sep)
		return false;
	*sep = '\0';
	tok = strtok_r(line, " ", &save);
	for (i = 0; i < 6 && tok; i++, tok = strtok_r(NULL, " ", &save))
		f[i] = tok;
	if (i < 5)
		return false;
	save = NULL;
	tok = strtok_r(sep + 3, " \n", &save);
	if (!tok)
		return false;
	snprintf(m->fstype, sizeof(m->fstype), "%s", tok);
	tok = strtok_r(NULL, " \n", &save); /* source */
	tok = tok ? strtok_r(NULL, " \n", &save) : NULL;
	snprintf(m->opts, sizeof(m->opts), "%s", tok ? tok : "");
	snprintf(m->root, sizeof(m->root), "%s", f[3]);
	snprintf(m->point, sizeof(m->point), "%s", f[4]);
	unescape_octal(m->root);
	unescape_octal(m->point);
	return true;
}

/* Where this process's cgroup `cgpath` (relative to its hierarchy's root)
 * appears below mount m: "<point><cgpath minus the mount's root>". */
static int join_mount(const struct mount_ent *m, const char *cgpath,
		      char *out, size_t len)
{
	size_t rl = strlen(m->root);
	const char *rest;

	if (!strcmp(m->root, "/"))
		rest = cgpath;
	else if (!strncmp(cgpath, m->root, rl) &&
		 (cgpath[rl] == '/' || cgpath[rl] == '\0'))
		rest = cgpath + rl;
	else
		return -ENOENT; /* this mount shows another part of the tree */
	if (!strcmp(rest, "/"))
		rest = "";
	if ((size_t)snprintf(out, len, "%s%s", m->point, rest) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* What /proc/self/cgroup says: the v2 path and each v1 controller's path. */
struct self_cgroups {
	bool has_v2;
	char v2[PATH_MAX];
	bool has_v1[CG_NR_CTRL];
	char v1[CG_NR_CTRL][PATH_MAX];
};

static int read_self_cgroups(const char *file, struct self_cgroups *s,
			     char *err, size_t errlen)
{
	char line[PATH_MAX + 256];
	FILE *f;

	memset(s, 0, sizeof(*s));
	f = fopen(file, "re");
	if (!f)
		return errbuf_fail(err, errlen, -errno, "cannot read %s: %s",
				   file, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2, *nl;

		if (!c1 || !(c2 = strchr(c1 + 1, ':')))
			continue;
		*c1 = *c2 = '\0';
		nl = strchr(c2 + 1, '\n');
		if (nl)
			*nl = '\0';
		if (!strcmp(line, "0") && c1[1] == '\0') {
			s->has_v2 = true;
			snprintf(s->v2, sizeof(s->v2), "%s", c2 + 1);
			continue;
		}
		for (unsigned c = 0; c < CG_NR_CTRL; c++) {
			if (has_word(c1 + 1, ctrl_name[c], ",")) {
				s->has_v1[c] = true;
				snprintf(s->v1[c], sizeof(s->v1[c]), "%s",
					 c2 + 1);
			}
		}
	}
	fclose(f);
	return 0;
}

struct candidates {
	bool v2;
	char v2_start[PATH_MAX];
	char v2_ctrls[256];         /* S/cgroup.controllers, for messages */
	bool v1[CG_NR_CTRL];
	char v1_start[CG_NR_CTRL][PATH_MAX];
	char v1_point[CG_NR_CTRL][PATH_MAX]; /* tells co-mounted ones apart */
};

static int find_candidates(const struct cg_options *o, struct candidates *cd,
			   char *err, size_t errlen)
{
	const char *mi = o->mountinfo ? o->mountinfo : MOUNTINFO;
	struct self_cgroups self;
	struct mount_ent m;
	char line[3 * PATH_MAX];
	FILE *f;
	int ret;

	memset(cd, 0, sizeof(*cd));
	ret = read_self_cgroups(o->proc_cgroup ? o->proc_cgroup : PROC_CGROUP,
				&self, err, errlen);
	if (ret)
		return ret;
	f = fopen(mi, "re");
	if (!f)
		return errbuf_fail(err, errlen, -errno, "cannot read %s: %s",
				   mi, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (!parse_mountinfo_line(line, &m))
			continue;
		if (!strcmp(m.fstype, "cgroup2") && self.has_v2 && !cd->v2) {
			char p[PATH_MAX + 32];

			if (join_mount(&m, self.v2, cd->v2_start,
				       sizeof(cd->v2_start)))
				continue;
			if (join(p, sizeof(p), cd->v2_start,
				 "cgroup.controllers") ||
			    read_file(p, cd->v2_ctrls, sizeof(cd->v2_ctrls)))
				continue;
			cd->v2 = true;
		} else if (!strcmp(m.fstype, "cgroup")) {
			for (unsigned c = 0; c < CG_NR_CTRL; c++) {
				if (cd->v1[c] || !self.has_v1[c] ||
				    !has_word(m.opts, ctrl_name[c], ","))
					continue;
				if (join_mount(&m, self.v1[c],
					       cd->v1_start[c],
					       sizeof(cd->v1_start[c])))
					continue;
				snprintf(cd->v1_point[c],
					 sizeof(cd->v1_point[c]), "%s",
					 m.point);
				cd->v1[c] = true;
			}
		}
	}
	fclose(f);
	return 0;
}

static bool v2_usable(const struct candidates *cd)
{
	if (!cd->v2)
		return false;
	for (unsigned c = 0; c < CG_NR_CTRL; c++)
		if (!has_word(cd->v2_ctrls, ctrl_name[c], " \n"))
			return false;
	return true;
}

static bool v1_usable(const struct candidates *cd)
{
	for (unsigned c = 0; c < CG_NR_CTRL; c++)
		if (!cd->v1[c])
			return false;
	return true;
}

/* ---- group paths ---------------------------------------------------------*/

static bool name_valid(const char *s, size_t n)
{
	if (n == 0 || n > CG_NAME_MAX)
		return false;
	if (!isalnum((unsigned char)s[0]) && s[0] != '_' && s[0] != '-')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
			return false;
	return true;
}

bool cg_path_valid(const char *path)
{
	const char *slash;

	if (!path)
		return false;
	slash = strchr(path, '/');
	if (!slash)
		return name_valid(path, strlen(path));
	return name_valid(path, (size_t)(slash - path)) &&
	       name_valid(slash + 1, strlen(slash + 1));
}

static unsigned path_depth(const char *path)
{
	return strchr(path, '/') ? 2 : 1;
}

static int hier_path(const struct cg_hier *h, const char *path, char *buf,
		     size_t len)
{
	int n;

	if (path[0] && !cg_path_valid(path))
		return -EINVAL;
	n = snprintf(buf, len, "%s%s%s", h->base, path[0] ? "/" : "", path);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int cg_path(const struct cgroups *cg, const char *path, enum cg_ctrl c,
	    char *buf, size_t len)
{
	if ((unsigned)c >= CG_NR_CTRL)
		return -EINVAL;
	return hier_path(&cg->hier[cg->ctrl_hier[c]], path, buf, len);
}

enum cg_version cg_version(const struct cgroups *cg)
{
	return cg->version;
}

/* ---- removing ------------------------------------------------------------*/

/* Sends SIGKILL to every process listed in dir/cgroup.procs. */
static void kill_procs(const char *dir)
{
	char path[PATH_MAX];
	FILE *f;
	int pid;

	if (join(path, sizeof(path), dir, "cgroup.procs"))
		return;
	f = fopen(path, "re");
	if (!f)
		return;
	while (fscanf(f, "%d", &pid) == 1)
		if (pid > 0)
			kill(pid, SIGKILL);
	fclose(f);
}

/*
 * Removes cgroup directory dir and everything below it, deepest first. A
 * group is busy until its last process has exited, so rmdir is retried with
 * a growing pause until the deadline.
 */
static int remove_tree(const char *dir, uint64_t deadline, bool kill)
{
	unsigned pause_us = 200;
	struct dirent *e;
	DIR *d;
	int ret = 0;

	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		char sub[PATH_MAX];
		int r;

		if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") ||
		    !strcmp(e->d_name, ".."))
			continue;
		if (join(sub, sizeof(sub), dir, e->d_name))
			continue;
		r = remove_tree(sub, deadline, kill);
		if (r && !ret)
			ret = r;
	}
	closedir(d);
	if (ret)
		return ret;
	if (kill && file_exists(dir, "cgroup.kill"))
		writef_at(dir, "cgroup.kill", "1");
	for (;;) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -errno;
		if (kill)
			kill_procs(dir);
		if (now_ms() >= deadline)
			return -EBUSY;
		sleep_us(pause_us);
		if (pause_us < 10000)
			pause_us *= 2;
	}
}

int cg_remove(struct cgroups *cg, const char *path, unsigned timeout_ms,
	      bool kill)
{
	uint64_t deadline = now_ms() + timeout_ms;
	bool found = false;
	int ret = 0;

	if (!cg_path_valid(path))
		return -EINVAL;
	for (unsigned i = 0; i < cg->nr_hier; i++) {
		char dir[PATH_MAX];
		int r = hier_path(&cg->hier[i], path, dir, sizeof(dir));

		if (!r) {
			if (access(dir, F_OK) == 0)
				found = true;
			r = remove_tree(dir, deadline, kill);
		}
		if (r && !ret)
			ret = r;
	}
	if (!ret && !found)
		return -ENOENT;
	return ret;
}

/* ---- limits --------------------------------------------------------------*/

/* v1 requires memsw >= limit at every moment, so the order of the two
 * writes depends on whether the limit grows or shrinks. */
static int set_memory_v1(const struct cgroups *cg, const char *dir,
			 uint64_t max)
{
	char val[32];
	int ret;

	if (max)
		snprintf(val, sizeof(val), "%llu", (unsigned long long)max);
	else
		snprintf(val, sizeof(val), "-1");
	ret = writef_at(dir, "memory.limit_in_bytes", "%s", val);
	if (!cg->memsw)
		return ret;
	if (ret == -EINVAL) { /* growing past memsw: raise memsw first */
		ret = writef_at(dir, "memory.memsw.limit_in_bytes", "%s", val);
		return ret ? ret :
			     writef_at(dir, "memory.limit_in_bytes", "%s", val);
	}
	return ret ? ret :
		     writef_at(dir, "memory.memsw.limit_in_bytes", "%s", val);
}

static int set_memory(const struct cgroups *cg, const char *dir,
		      uint64_t max, bool fresh)
{
	int ret;

	if (fresh && !max)
		return 0;
	if (cg->version == CG_V1)
		return set_memory_v1(cg, dir, max);
	if (max)
		ret = writef_at(dir, "memory.max", "%llu",
				(unsigned long long)max);
	else
		ret = writef_at(dir, "memory.max", "max");
	/* A group's limit covers swap too: none beyond memory.max. */
	if (!ret && file_exists(dir, "memory.swap.max"))
		ret = writef_at(dir, "memory.swap.max", max ? "0" : "max");
	return ret;
}

static int set_pids(const char *dir, uint32_t max, bool fresh)
{
	if (fresh && !max)
		return 0;
	if (max)
		return writef_at(dir, "pids.max", "%u", max);
	return writef_at(dir, "pids.max", "max");
}

static int set_cpu(const struct cgroups *cg, const char *dir,
		   const struct cg_limits *l, bool fresh)
{
	uint32_t weight = l->cpu_weight ? l->cpu_weight : 100;
	uint64_t quota = (uint64_t)l->cpu_max_pct * CPU_PERIOD_US / 100;
	int ret = 0;

	if (l->cpu_weight > 10000)
		return -EINVAL;
	if (cg->version == CG_V2) {
		if (!fresh || l->cpu_weight)
			ret = writef_at(dir, "cpu.weight", "%u", weight);
		if (!ret && (!fresh || quota)) {
			if (quota)
				ret = writef_at(dir, "cpu.max", "%llu %u",
						(unsigned long long)quota,
						CPU_PERIOD_US);
			else
				ret = writef_at(dir, "cpu.max", "max %u",
						CPU_PERIOD_US);
		}
		return ret;
	}
	/* v1 shares: 1024 is the default, as 100 is v2's default weight. */
	if (!fresh || l->cpu_weight) {
		uint64_t shares = (uint64_t)weight * 1024 / 100;

		ret = writef_at(dir, "cpu.shares", "%llu",
				(unsigned long long)(shares < 2 ? 2 : shares));
	}
	if (!ret && (!fresh || quota)) {
		ret = writef_at(dir, "cpu.cfs_period_us", "%u", CPU_PERIOD_US);
		if (!ret && quota)
			ret = writef_at(dir, "cpu.cfs_quota_us", "%llu",
					(unsigned long long)quota);
		else if (!ret)
			ret = writef_at(dir, "cpu.cfs_quota_us", "-1");
	}
	return ret;
}

static int apply_limits(struct cgroups *cg, const char *path,
			const struct cg_limits *l, bool fresh, char *err,
			size_t errlen)
{
	static const struct cg_limits none;
	char dir[PATH_MAX];
	int ret;

	if (!l)
		l = &none;
	for (unsigned c = 0; c < CG_NR_CTRL; c++) {
		ret = cg_path(cg, path, (enum cg_ctrl)c, dir, sizeof(dir));
		if (ret)
			return errbuf_fail(err, errlen, ret,
					   "invalid cgroup path '%s'", path);
		switch (c) {
		case CG_MEMORY:
			ret = set_memory(cg, dir, l->memory_max, fresh);
			break;
		case CG_CPU:
			ret = set_cpu(cg, dir, l, fresh);
			break;
		default:
			ret = set_pids(dir, l->pids_max, fresh);
			break;
		}
		if (ret)
			return errbuf_fail(err, errlen, ret,
					   "cannot set the %s limits of %s: %s",
					   ctrl_name[c], dir, strerror(-ret));
	}
	return 0;
}

int cg_set_limits(struct cgroups *cg, const char *path,
		  const struct cg_limits *l, char *err, size_t errlen)
{
	if (!cg_path_valid(path))
		return errbuf_fail(err, errlen, -EINVAL,
				   "invalid cgroup path '%s'", path);
	return apply_limits(cg, path, l, false, err, errlen);
}

/* v2: lets dir's children have Ember's controllers. */
static int enable_subtree(const char *dir)
{
	return writef_at(dir, "cgroup.subtree_control", "+memory +cpu +pids");
}

int cg_create(struct cgroups *cg, const char *path, const struct cg_limits *l,
	      char *err, size_t errlen)
{
	bool fresh = true;
	int ret;

	if (!cg_path_valid(path))
		return errbuf_fail(err, errlen, -EINVAL,
				   "invalid cgroup path '%s'", path);
	for (unsigned i = 0; i < cg->nr_hier; i++) {
		char dir[PATH_MAX];

		ret = hier_path(&cg->hier[i], path, dir, sizeof(dir));
		if (ret)
			return errbuf_fail(err, errlen, ret,
					   "cgroup path too long: %s", path);
		if (mkdir(dir, 0755) < 0) {
			if (errno != EEXIST)
				return errbuf_fail(err, errlen, -errno,
						   "cannot create cgroup %s: %s",
						   dir, strerror(errno));
			fresh = false;
		}
		if (cg->version == CG_V2 && path_depth(path) == 1) {
			ret = enable_subtree(dir);
			if (ret)
				return errbuf_fail(err, errlen, ret,
						   "cannot enable controllers "
						   "below %s: %s", dir,
						   strerror(-ret));
		}
	}
	return apply_limits(cg, path, l, fresh, err, errlen);
}

int cg_move(struct cgroups *cg, const char *path, pid_t pid)
{
	/* Only into leaves: on v2 a tenant's group may hold no process. */
	if (!cg_path_valid(path) || path_depth(path) != 2 || pid <= 0)
		return -EINVAL;
	/* Memory first: pages the process touches from now on are charged to
	 * its new group. */
	for (unsigned i = 0; i < cg->nr_hier; i++) {
		unsigned h = (cg->ctrl_hier[CG_MEMORY] + i) % cg->nr_hier;
		char dir[PATH_MAX];
		int ret = hier_path(&cg->hier[h], path, dir, sizeof(dir));

		if (!ret)
			ret = writef_at(dir, "cgroup.procs", "%d", (int)pid);
		if (ret)
			return ret;
	}
	return 0;
}

int cg_procs(const struct cgroups *cg, const char *path, pid_t *out,
	     size_t max)
{
	char dir[PATH_MAX], file[PATH_MAX + 16];
	size_t n = 0;
	FILE *f;
	int pid, ret;

	ret = cg_path(cg, path, CG_PIDS, dir, sizeof(dir));
	if (ret)
		return ret;
	if (join(file, sizeof(file), dir, "cgroup.procs"))
		return -ENAMETOOLONG;
	f = fopen(file, "re");
	if (!f)
		return -errno;
	while (fscanf(f, "%d", &pid) == 1) {
		if (n < max)
			out[n] = pid;
		n++;
	}
	fclose(f);
	return (int)n;
}

/* The number after `key` in a "key value" per line file. */
static int64_t read_keyed(const char *dir, const char *file, const char *key)
{
	char path[PATH_MAX], buf[4096], *p;
	size_t kl = strlen(key);
	int ret;

	ret = join(path, sizeof(path), dir, file);
	if (!ret)
		ret = read_file(path, buf, sizeof(buf));
	if (ret)
		return ret;
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, kl) && p[kl] == ' ')
			return strtoll(p + kl + 1, NULL, 10);
	return -ENOENT;
}

long cg_oom_kills(const struct cgroups *cg, const char *path)
{
	char dir[PATH_MAX];
	int ret = cg_path(cg, path, CG_MEMORY, dir, sizeof(dir));

	if (ret)
		return ret;
	if (cg->version == CG_V2)
		return (long)read_keyed(dir, "memory.events", "oom_kill");
	return (long)read_keyed(dir, "memory.oom_control", "oom_kill");
}

int64_t cg_memory_current(const struct cgroups *cg, const char *path)
{
	char dir[PATH_MAX], file[PATH_MAX + 32], buf[64];
	int ret = cg_path(cg, path, CG_MEMORY, dir, sizeof(dir));

	if (ret)
		return ret;
	ret = join(file, sizeof(file), dir,
		   cg->version == CG_V2 ? "memory.current" :
					  "memory.usage_in_bytes");
	if (!ret)
		ret = read_file(file, buf, sizeof(buf));
	return ret ? ret : strtoll(buf, NULL, 10);
}

/* ---- opening and closing -------------------------------------------------*/

static int add_hier(struct cgroups *cg, const char *start, const char *name,
		    unsigned ctrls)
{
	struct cg_hier *h = &cg->hier[cg->nr_hier];

	h->start = strdup(start);
	if (!h->start || asprintf(&h->base, "%s/%s", start, name) < 0) {
		free(h->start);
		h->start = NULL;
		return -ENOMEM;
	}
	h->ctrls = ctrls;
	for (unsigned c = 0; c < CG_NR_CTRL; c++)
		if (ctrls & (1u << c))
			cg->ctrl_hier[c] = cg->nr_hier;
	cg->nr_hier++;
	return 0;
}

static int pick_hierarchies(struct cgroups *cg, const struct cg_options *o,
			    const struct candidates *cd, char *err,
			    size_t errlen)
{
	enum cg_version v = o->version;

	if (v == CG_AUTO)
		v = v2_usable(cd) ? CG_V2 : v1_usable(cd) ? CG_V1 : CG_AUTO;
	if (v == CG_V2 && !v2_usable(cd))
		return errbuf_fail(err, errlen, -ENOTSUP,
				   "cgroup v2: %s offers \"%.*s\", Ember needs "
				   "memory, cpu and pids",
				   cd->v2 ? cd->v2_start : "(no cgroup2 mount)",
				   (int)strcspn(cd->v2_ctrls, "\n"),
				   cd->v2_ctrls);
	if (v == CG_V1 && !v1_usable(cd))
		return errbuf_fail(err, errlen, -ENOTSUP,
				   "cgroup v1: the %s%s%s hierarchy is not "
				   "mounted", cd->v1[CG_MEMORY] ? "" : "memory ",
				   cd->v1[CG_CPU] ? "" : "cpu ",
				   cd->v1[CG_PIDS] ? "" : "pids");
	if (v == CG_AUTO)
		return errbuf_fail(err, errlen, -ENOTSUP,
				   "no cgroup hierarchy offers the memory, cpu "
				   "and pids controllers (v2: \"%.*s\"; v1 "
				   "mounted:%s%s%s)",
				   (int)strcspn(cd->v2_ctrls, "\n"),
				   cd->v2_ctrls,
				   cd->v1[CG_MEMORY] ? " memory" : "",
				   cd->v1[CG_CPU] ? " cpu" : "",
				   cd->v1[CG_PIDS] ? " pids" : "");
	cg->version = v;
	if (v == CG_V2) {
		char start[PATH_MAX], *slash;

		/* Restarted in the leaf an earlier run moved it to: S is that
		 * leaf's parent. */
		snprintf(start, sizeof(start), "%s", cd->v2_start);
		slash = strrchr(start, '/');
		if (slash && !strncmp(slash + 1, o->name, strlen(o->name)) &&
		    !strcmp(slash + 1 + strlen(o->name), ".daemon")) {
			cg->daemon = strdup(start);
			*slash = '\0';
			if (!cg->daemon)
				return errbuf_fail(err, errlen, -ENOMEM,
						   "out of memory");
		}
		if (add_hier(cg, start, o->name, (1u << CG_NR_CTRL) - 1))
			return errbuf_fail(err, errlen, -ENOMEM,
					   "out of memory");
		return 0;
	}
	/* v1: one hierarchy per mount; co-mounted controllers share one. */
	for (unsigned c = 0; c < CG_NR_CTRL; c++) {
		unsigned ctrls = 0;
		bool seen = false;

		for (unsigned p = 0; p < c; p++)
			seen |= !strcmp(cd->v1_point[p], cd->v1_point[c]);
		if (seen)
			continue;
		for (unsigned k = c; k < CG_NR_CTRL; k++)
			if (!strcmp(cd->v1_point[k], cd->v1_point[c]))
				ctrls |= 1u << k;
		if (add_hier(cg, cd->v1_start[c], o->name, ctrls))
			return errbuf_fail(err, errlen, -ENOMEM, "out of memory");
	}
	return 0;
}

/*
 * v2: S must hand memory, cpu and pids down to S/<name>. If S's
 * subtree_control lacks one, enabling it fails with EBUSY while S holds
 * processes, so this process first moves into its own leaf S/<name>.daemon
 * (other processes in S are not Ember's to move: then it fails).
 */
static int v2_delegate(struct cgroups *cg, const char *name, char *err,
		       size_t errlen)
{
	struct cg_hier *h = &cg->hier[0];
	char buf[256], file[PATH_MAX];
	bool all = true;
	int ret;

	ret = join(file, sizeof(file), h->start, "cgroup.subtree_control");
	if (!ret)
		ret = read_file(file, buf, sizeof(buf));
	if (ret)
		return errbuf_fail(err, errlen, ret, "cannot read %s: %s",
				   file, strerror(-ret));
	for (unsigned c = 0; c < CG_NR_CTRL; c++)
		all &= has_word(buf, ctrl_name[c], " \n");
	if (all)
		return 0;
	ret = enable_subtree(h->start);
	if (ret != -EBUSY)
		goto out;
	if (!cg->daemon &&
	    asprintf(&cg->daemon, "%s/%s.daemon", h->start, name) < 0) {
		cg->daemon = NULL;
		return errbuf_fail(err, errlen, -ENOMEM, "out of memory");
	}
	if (mkdir(cg->daemon, 0755) < 0 && errno != EEXIST)
		return errbuf_fail(err, errlen, -errno, "cannot create %s: %s",
				   cg->daemon, strerror(errno));
	ret = writef_at(cg->daemon, "cgroup.procs", "%d", (int)getpid());
	if (ret)
		return errbuf_fail(err, errlen, ret,
				   "cannot move emberd into %s: %s", cg->daemon,
				   strerror(-ret));
	ret = enable_subtree(h->start);
out:
	if (ret)
		return errbuf_fail(err, errlen, ret,
				   "cannot enable memory, cpu and pids below %s"
				   ": %s%s", h->start, strerror(-ret),
				   ret == -EBUSY ? " (other processes share "
				   "emberd's cgroup: start it in its own)" : "");
	return 0;
}

static void cg_free(struct cgroups *cg)
{
	for (unsigned i = 0; i < cg->nr_hier; i++) {
		free(cg->hier[i].start);
		free(cg->hier[i].base);
	}
	free(cg->daemon);
	free(cg);
}

struct cgroups *cg_open(const struct cg_options *o, int *ret, char *err,
			size_t errlen)
{
	struct candidates *cd;
	struct cgroups *cg;
	int r;

	if (!o->name || !name_valid(o->name, strlen(o->name))) {
		*ret = errbuf_fail(err, errlen, -EINVAL,
				   "invalid cgroup name '%s'",
				   o->name ? o->name : "");
		return NULL;
	}
	cg = calloc(1, sizeof(*cg));
	cd = calloc(1, sizeof(*cd));
	if (!cg || !cd) {
		r = errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		goto err_free;
	}
	r = find_candidates(o, cd, err, errlen);
	if (r)
		goto err_free;
	r = pick_hierarchies(cg, o, cd, err, errlen);
	if (r)
		goto err_free;
	if (cg->version == CG_V2) {
		r = v2_delegate(cg, o->name, err, errlen);
		if (r)
			goto err_free;
	}
	for (unsigned i = 0; i < cg->nr_hier; i++) {
		const char *base = cg->hier[i].base;

		if (mkdir(base, 0755) < 0 && errno != EEXIST) {
			r = errbuf_fail(err, errlen, -errno,
					"cannot create cgroup %s: %s", base,
					strerror(errno));
			goto err_free;
		}
		if (o->cleanup) {
			DIR *d = opendir(base);
			struct dirent *e;

			while (d && (e = readdir(d))) {
				char sub[PATH_MAX];

				if (e->d_type != DT_DIR || e->d_name[0] == '.')
					continue;
				r = join(sub, sizeof(sub), base, e->d_name);
				if (!r)
					r = remove_tree(sub, now_ms() + 2000,
							true);
				if (r) {
					closedir(d);
					r = errbuf_fail(err, errlen, r,
							"cannot remove the "
							"leftover cgroup %s: "
							"%s", sub,
							strerror(-r));
					goto err_free;
				}
			}
			if (d)
				closedir(d);
		}
	}
	if (cg->version == CG_V2) {
		r = enable_subtree(cg->hier[0].base);
		if (r) {
			r = errbuf_fail(err, errlen, r,
					"cannot enable controllers below %s: %s",
					cg->hier[0].base, strerror(-r));
			goto err_free;
		}
	} else {
		cg->memsw = file_exists(cg->hier[cg->ctrl_hier[CG_MEMORY]].base,
					"memory.memsw.limit_in_bytes");
	}
	free(cd);
	*ret = 0;
	return cg;

err_free:
	free(cd);
	if (cg)
		cg_free(cg);
	*ret = r;
	return NULL;
}

int cg_close(struct cgroups *cg, bool remove, unsigned timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	int ret = 0;

	if (!cg)
		return 0;
	for (unsigned i = 0; remove && i < cg->nr_hier; i++) {
		int r = remove_tree(cg->hier[i].base, deadline, true);

		if (r && !ret)
			ret = r;
	}
	/* v2: cg_open() enabled the controllers in S's subtree_control and
	 * moved this process to S/<name>.daemon; undo both, in the order the
	 * kernel allows (no process in a group that hands controllers down). */
	if (remove && cg->daemon) {
		int r = writef_at(cg->hier[0].start, "cgroup.subtree_control",
				  "-memory -cpu -pids");

		if (!r)
			r = writef_at(cg->hier[0].start, "cgroup.procs", "%d",
				      (int)getpid());

		if (!r && rmdir(cg->daemon) < 0)
			r = -errno;
		if (r && !ret)
			ret = r;
	}
	cg_free(cg);
	return ret;
}
