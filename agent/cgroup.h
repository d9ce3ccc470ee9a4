/*
 * cgroup.h - Ember's cgroups: one per tenant, one per VM inside it.
 *
 * Owns: the subtree emberd creates below the cgroup it was started in (read
 * from /proc/self/cgroup, as a service manager that delegates a cgroup
 * expects), never anywhere else:
 *
 *     S/<name>/<tenant>/<vm>        S = the start cgroup, in each hierarchy
 *
 * on cgroup v2 (one unified hierarchy) or cgroup v1 (one hierarchy per
 * controller), whichever offers the memory, cpu and pids controllers, chosen
 * once at cg_open(). A tenant's group carries the tenant's limits (CPU weight
 * or quota, memory, pids), shared by all its VMs; a VM's group carries the
 * VM's memory limit (guest RAM + VMM overhead) and pids limit. Groups of
 * depth 1 are inner nodes (no processes), groups of depth 2 are leaves.
 *
 * On v2 the start cgroup S must hand its controllers down, which the kernel
 * allows only if S holds no process ("no internal processes"): cg_open()
 * then moves emberd itself into the leaf S/<name>.daemon. On v1 emberd stays
 * where it is.
 *
 * Does not own: which process goes where (the jail and the scheduler decide),
 * the host's cgroup mounts, or anything outside S/<name> (and, on v2,
 * S/<name>.daemon).
 *
 * Threads: after cg_open() a struct cgroups is read-only; every call is a few
 * independent syscalls on cgroupfs, so any thread may call any function.
 */
#ifndef EMBER_CGROUP_H
#define EMBER_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum cg_version { CG_AUTO = 0, CG_V1 = 1, CG_V2 = 2 };

/* The controllers Ember uses. On v1 each may be its own hierarchy. */
enum cg_ctrl { CG_MEMORY, CG_CPU, CG_PIDS, CG_NR_CTRL };

struct cg_options {
	/* Ember's directory below the start cgroup: [A-Za-z0-9_.-], at most
	 * 63 characters. Two emberds on one host need two names. */
	const char *name;
	enum cg_version version;  /* CG_AUTO: v2 if it has the controllers */
	/* Files read instead of /proc/self/cgroup and /proc/self/mountinfo
	 * (tests point them at a fake cgroupfs); NULL: the real ones. */
	const char *proc_cgroup;
	const char *mountinfo;
	/* Remove what a previous run left below S/<name>, killing the
	 * processes still in it (VMMs orphaned by a crash). */
	bool cleanup;
};

/* Limits of one group; 0 in a field leaves that limit unset (unlimited, or
 * the kernel's default weight). */
struct cg_limits {
	uint64_t memory_max;  /* bytes, swap included (no swap beyond it) */
	uint32_t pids_max;    /* processes and threads */
	uint32_t cpu_weight;  /* 1..10000 on the v2 scale, 100 = a fair share */
	uint32_t cpu_max_pct; /* cap, percent of one CPU (150 = 1.5 CPUs) */
};

struct cgroups;

/*
 * Finds the start cgroup, picks v1 or v2, creates S/<name> in every
 * hierarchy used (on v2 also S/<name>.daemon, and moves this process there
 * if S must hand down its controllers). NULL on error, with -errno in *ret
 * and one line in err (-ENOTSUP: no hierarchy offers memory, cpu and pids;
 * -EACCES: not allowed to write there).
 */
struct cgroups *cg_open(const struct cg_options *o, int *ret, char *err,
			size_t errlen);

/* Removes every group below S/<name> (waiting up to timeout_ms for each to
 * empty, killing what is left), then S/<name> itself, and on v2 moves this
 * process back to S; with remove false only frees cg. Best effort: returns
 * 0 or the first -errno met. cg may be NULL. */
int cg_close(struct cgroups *cg, bool remove, unsigned timeout_ms);

enum cg_version cg_version(const struct cgroups *cg);

/* The directory of group `path` ("tenant" or "tenant/vm"; "" for S/<name>)
 * in the hierarchy of controller c, into buf. 0, -EINVAL (bad path) or
 * -ENAMETOOLONG. */
int cg_path(const struct cgroups *cg, const char *path, enum cg_ctrl c,
	    char *buf, size_t len);

/* Whether `path` is a valid group path: one or two names separated by '/',
 * each [A-Za-z0-9_-][A-Za-z0-9_.-]{0,62}. */
bool cg_path_valid(const char *path);

/*
 * Creates group `path` (its parent must exist) with limits l (NULL: none).
 * A depth-1 group hands its controllers down to its children (v2). An
 * existing group is reused and its limits rewritten. 0 or -errno + reason.
 */
int cg_create(struct cgroups *cg, const char *path, const struct cg_limits *l,
	      char *err, size_t errlen);

/* Rewrites the limits of an existing group (fields 0: limit removed). */
int cg_set_limits(struct cgroups *cg, const char *path,
		  const struct cg_limits *l, char *err, size_t errlen);

/* Moves process pid (all its threads) into leaf group `path` ("tenant/vm").
 * 0 or -errno (-EINVAL: not a leaf path; -ESRCH: no such process). */
int cg_move(struct cgroups *cg, const char *path, pid_t pid);

/* The processes in group `path` (its own, not its children's): up to max
 * pids into out; returns how many there are (may exceed max) or -errno. */
int cg_procs(const struct cgroups *cg, const char *path, pid_t *out,
	     size_t max);

/*
 * Removes group `path` and its children, deepest first, waiting up to
 * timeout_ms for each to empty (a process leaves its group when it has
 * exited, reaped or not). With kill, processes still inside are sent
 * SIGKILL first. 0, -ENOENT (no such group) or -EBUSY (still not empty).
 */
int cg_remove(struct cgroups *cg, const char *path, unsigned timeout_ms,
	      bool kill);

/* How many times the kernel's OOM killer has killed a process in `path`
 * because of its memory limit (v2 memory.events, v1 memory.oom_control).
 * >= 0 or -errno. */
long cg_oom_kills(const struct cgroups *cg, const char *path);

/* Current memory use of group `path` in bytes, or -errno. */
int64_t cg_memory_current(const struct cgroups *cg, const char *path);

#endif
