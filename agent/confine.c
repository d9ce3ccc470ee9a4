/*
 * confine.c - the jail, cgroups and seccomp for emberd's VMMs (confine.h).
 *
 * Per spawned shell (pool thread): prepare() takes a uid slot; spawn()
 * starts vmmproc's `ember-vmm --shell --control-fd 3 --quiet [--seccomp]
 * [...]` + `--kvm-fd 4`
 * in a jail (jail.c) with only its control socket (3), /dev/kvm (4) and
 * stderr (2). Per restore (scheduler lock held): assign() hands the
 * process to the mover thread, which makes the tenant's group once (again
 * when its limits change), the VM's group (or takes the one it made ahead
 * for that tenant after its last move), and moves the process there.
 * Per reap (event thread): reaping() waits for or cancels a move still
 * pending (the pid is a zombie's until the reap, so never someone else's),
 * release() removes the VM's group (empty by then) and frees the slot, in
 * that order, so no two live processes ever share a uid.
 *
 * Why a thread: writing a pid to cgroup.procs takes the kernel's global
 * cgroup_threadgroup_rwsem for writing, which waits for an RCU grace
 * period; on this nested host that measured 8-15 ms per move (3 v1
 * hierarchies), while the restore itself takes ~5 ms. Done inline it would
 * triple a pooled cold start and hold the scheduler's lock meanwhile.
 * Asynchronous, it overlaps the restore; the price: until the move lands
 * (~10 ms here) the VM runs in emberd's cgroup, and pages it faults in
 * meanwhile stay charged there (v1 does not move charges). The jail is in
 * force all along. --cgroup-move-sync trades the latency for exactness.
 */
#define LOG_MOD "confine"

#include "agent/confine.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/cgroup.h"
#include "agent/jail.h"
#include "log.h"

#define KVM_TARGET 4
/* How much a VMM may append to a regular file on its stderr (emberd's log
 * file, when it has one) beyond its size at spawn. Every other fd the VMM
 * holds is read-only or a socket. */
#define STDERR_FILE_SLACK (64ull << 20)
#define CG_REMOVE_MS 2000
#define MAX_TENANTS_CACHED 4096

enum move_state { MOVE_NONE, MOVE_QUEUED, MOVE_RUNNING, MOVE_DONE };

/* What one spawn holds until its reap. */
struct spawn_state {
	int slot;              /* -1: not jailed */
	bool in_group;         /* a VM group was made for it */
	char group[64];        /* t<tenant>/vm<seq> */
	/* the move (c->lock) */
	enum move_state move;
	pid_t pid;
	int64_t tenant_id;
	uint64_t tenant_memory_mib;
	uint32_t memory_mib;
	struct spawn_state *next; /* in the mover's queue */
};

/* A tenant's group as last written, so that a restore does not rewrite
 * its limits every time (cgroupfs writes are on the critical path). */
struct tenant_group {
	int64_t id;
	uint64_t memory_mib;
	/* A VM group made ahead, after the tenant's last move, so that the
	 * next restore's mover only moves (the three mkdirs and limits cost
	 * ~0.3 ms of CPU, beside the restore on a small host). */
	char spare[64];
	uint64_t spare_memory_max;
};

struct confine {
	struct confine_config cfg;
	struct jail_config jc;
	struct jail_slots *slots;
	int vmm_fd;                 /* O_PATH of ember-vmm */
	char **libs;                /* bound into the root (dynamic VMM) */
	const char *dirs[2];        /* /sys/module/kvm_pvm, if on kvm-pvm */
	char root_dir[PATH_MAX];
	char cg_name[64];
	bool made_root;
	bool has_seccomp;           /* the VMM takes --seccomp */
	/* Extra VMM arguments: --seccomp, --threads-at-restore, NULL. */
	const char *args[3];
	unsigned nr_args;
	struct cgroups *cg;
	pthread_mutex_t lock;       /* tenants[], the move queue */
	struct tenant_group *tenants;
	size_t nr_tenants;
	/* the mover thread */
	pthread_t mover;
	bool mover_started, stopping;
	pthread_cond_t cond;        /* queue changed, a move finished */
	struct spawn_state *queue, **queue_tail;
	unsigned long long spares_made;  /* names the spare groups */
};

/* Whether `vmm --help` mentions opt: the seccomp switches arrive in
 * ember-vmm with their own branch; an older VMM must still start. */
static bool vmm_knows(const char *vmm, const char *opt)
{
	char buf[16384];
	char *const argv[] = { (char *)(uintptr_t)vmm,
			       (char *)(uintptr_t)"--help", NULL };
	char *const envp[] = { NULL };
	posix_spawn_file_actions_t fa;
	size_t got = 0;
	int pfd[2], status;
	bool found;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return false;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	if (posix_spawn(&pid, vmm, &fa, NULL, argv, envp)) {
		posix_spawn_file_actions_destroy(&fa);
		close(pfd[0]);
		close(pfd[1]);
		return false;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	for (;;) {
		ssize_t r = read(pfd[0], buf + got, sizeof(buf) - 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (got += (size_t)r) == sizeof(buf) - 1)
			break;
	}
	close(pfd[0]);
	buf[got] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	found = strstr(buf, opt) != NULL;
	return found;
}

/* "ember-" + FNV-1a of the state directory: one subtree per state dir,
 * and one emberd per state dir (its lock), so the clean-up at start only
 * ever removes what a crashed emberd of the same state left. */
static void default_cg_name(const char *state, char *buf, size_t len)
{
	uint32_t h = 2166136261u;

	for (const char *p = state; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	snprintf(buf, len, "ember-%08x", h);
}

static int make_cgroups(struct confine *c, char *err, size_t errlen)
{
	const struct confine_config *cfg = &c->cfg;
	struct cg_options o = {
		.name = c->cg_name,
		.version = (enum cg_version)cfg->cgroup_version,
		.cleanup = true,
	};
	int ret = 0;

	if (cfg->cgroup_name)
		snprintf(c->cg_name, sizeof(c->cg_name), "%s",
			 cfg->cgroup_name);
	else
		default_cg_name(cfg->state_dir, c->cg_name, sizeof(c->cg_name));
	c->cg = cg_open(&o, &ret, err, errlen);
	return c->cg ? 0 : (ret ? ret : -EIO);
}

static int make_jail(struct confine *c, char *err, size_t errlen)
{
	const struct confine_config *cfg = &c->cfg;
	int ret;

	c->vmm_fd = open(cfg->vmm, O_PATH | O_CLOEXEC);
	if (c->vmm_fd < 0)
		return errbuf_fail(err, errlen, -errno, "--vmm %s: %s",
				   cfg->vmm, strerror(errno));
	ret = jail_exec_libs(cfg->vmm, &c->libs, err, errlen);
	if (ret)
		return ret;
	snprintf(c->root_dir, sizeof(c->root_dir), "%s/jail",
		 cfg->runtime_dir);
	if (mkdir(c->root_dir, 0755) < 0 && errno != EEXIST)
		return errbuf_fail(err, errlen, -errno, "%s: %s", c->root_dir,
				   strerror(errno));
	/* Ours to remove at the end, even if a crashed emberd left it. */
	c->made_root = !cfg->keep_root;
	/* ember-vmm knows kvm-pvm by /sys/module/kvm_pvm: an empty directory
	 * of that name tells it the same in the jail, and nothing else of
	 * /sys. */
	if (access("/sys/module/kvm_pvm", F_OK) == 0)
		c->dirs[0] = "/sys/module/kvm_pvm";
	c->jc = (struct jail_config){
		.uid_base = cfg->uid_base,
		.uid_count = cfg->uid_count,
		.root_dir = c->root_dir,
		.binds = (const char *const *)c->libs,
		.dirs = c->dirs,
	};
	ret = jail_config_check(&c->jc, err, errlen);
	if (ret)
		return ret;
	c->slots = jail_slots_new(cfg->uid_count);
	if (!c->slots)
		return errbuf_fail(err, errlen, -ENOMEM, "out of memory");
	return 0;
}

static void *mover_main(void *arg);

struct confine *confine_create(const struct confine_config *cfg, char *err,
			       size_t errlen)
{
	struct confine *c = calloc(1, sizeof(*c));
	int ret = 0;

	if (!c) {
		errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	c->cfg = *cfg;
	c->vmm_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->queue_tail = &c->queue;
	if (cfg->seccomp) {
		c->has_seccomp = vmm_knows(cfg->vmm, "--seccomp");
		if (c->has_seccomp)
			c->args[c->nr_args++] = "--seccomp";
		else
			/* Never a silent downgrade: a VMM without filters
			 * is a choice the operator makes (--no-seccomp). */
			ret = errbuf_fail(err, errlen, -ENOTSUP,
					  "%s has no --seccomp (an older "
					  "ember-vmm?); use a current one, or "
					  "--no-seccomp to run VMs without "
					  "filters", cfg->vmm);
	}
	/* A shell starts its VM's threads while it waits, in emberd's
	 * cgroup; moved before the restore, they would land in the tenant's
	 * pids group without meeting its limit (a move is not counted against
	 * pids.max, a thread's creation is). So with the synchronous move the
	 * threads are made at the restore, in the VM's groups. */
	if (!ret && cfg->cgroups && cfg->cgroup_move_sync) {
		if (vmm_knows(cfg->vmm, "--threads-at-restore"))
			c->args[c->nr_args++] = "--threads-at-restore";
		else
			ret = errbuf_fail(err, errlen, -ENOTSUP, "%s has no "
					  "--threads-at-restore, which "
					  "--cgroup-move-sync needs (an older "
					  "ember-vmm?)", cfg->vmm);
	}
	if (!ret && cfg->jail)
		ret = make_jail(c, err, errlen);
	if (!ret && cfg->cgroups)
		ret = make_cgroups(c, err, errlen);
	if (!ret && c->cg && !cfg->cgroup_move_sync) {
		ret = -pthread_create(&c->mover, NULL, mover_main, c);
		if (ret)
			errbuf_fail(err, errlen, ret, "mover thread: %s",
				    strerror(-ret));
		else
			c->mover_started = true;
	}
	if (ret) {
		confine_destroy(c);
		errno = -ret;
		return NULL;
	}
	return c;
}

/* ---- the hooks ------------------------------------------------------- */

static int hook_prepare(void *ctx, struct vmmproc_spawn *sp)
{
	struct confine *c = ctx;
	struct spawn_state *st = calloc(1, sizeof(*st));

	if (!st)
		return -ENOMEM;
	st->slot = -1;
	if (c->slots) {
		st->slot = jail_slot_get(c->slots);
		if (st->slot < 0) {
			int ret = st->slot;

			log_warn("every jail uid is in use (%u): raise "
				 "--jail-uid-count", c->cfg.uid_count);
			free(st);
			return ret;
		}
	}
	sp->state = st;
	return 0;
}

/* RLIMIT_FSIZE: the VMM writes no file but, maybe, its stderr. */
static uint64_t stderr_fsize(void)
{
	struct stat st;

	if (fstat(2, &st) == 0 && S_ISREG(st.st_mode))
		return (uint64_t)st.st_size + STDERR_FILE_SLACK;
	return 0;
}

/* The jail every shell gets: exec_fd run as argv with fd 3 = ctl_fd, fd 4
 * = /dev/kvm (opened by the jail), stderr inherited, in uid slot `slot`. */
static int spawn_jailed(struct confine *c, int exec_fd, char *const *argv,
			int ctl_fd, unsigned slot, struct jail_proc *jp,
			char *err, size_t errlen)
{
	const struct jail_fd fds[] = {
		{ .fd = ctl_fd, .target = VMMPROC_CTL_FD },
		{ .fd = 2, .target = 2 },
	};
	struct jail_spec js = {
		.exec_fd = exec_fd,
		.argv = argv,
		.fds = fds,
		.nr_fds = 2,
		.kvm_target = KVM_TARGET,
		.slot = slot,
		.max_file_bytes = stderr_fsize(),
	};

	return jail_spawn(&c->jc, &js, jp, err, errlen);
}

/* vmmproc's command line, with argv[0] the name the VMM sees (its path is
 * not in the jail) and --kvm-fd 4 added. */
static int hook_spawn(void *ctx, const struct vmmproc_spawn *sp,
		      char *const *vargv, int ctl_fd, pid_t *pid, int *pidfd)
{
	struct confine *c = ctx;
	const struct spawn_state *st = sp->state;
	char kvm[8];
	char *argv[16 + VMMPROC_MAX_ARGS] = { (char *)(uintptr_t)"ember-vmm" };
	unsigned ac = 1;
	struct jail_proc jp;
	char err[256];
	int ret;

	snprintf(kvm, sizeof(kvm), "%d", KVM_TARGET);
	for (unsigned i = 1; vargv[i]; i++) {
		if (ac >= sizeof(argv) / sizeof(argv[0]) - 3)
			return -E2BIG;
		argv[ac++] = vargv[i];
	}
	argv[ac++] = (char *)(uintptr_t)"--kvm-fd";
	argv[ac++] = kvm;
	ret = spawn_jailed(c, c->vmm_fd, argv, ctl_fd, (unsigned)st->slot, &jp,
			   err, sizeof(err));
	if (ret) {
		log_warn("%s", err);
		return ret;
	}
	*pid = jp.pid;
	*pidfd = jp.pidfd;
	return 0;
}

int confine_spawn_program(struct confine *c, const char *path,
			  char *const *argv, int fd3, struct jail_proc *jp,
			  int *slot, char *err, size_t errlen)
{
	int fd, ret;

	if (!c->slots)
		return errbuf_fail(err, errlen, -EINVAL, "the jail is off");
	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return errbuf_fail(err, errlen, -errno, "%s: %s", path,
				   strerror(errno));
	ret = jail_check_exec(fd, err, errlen);
	if (!ret) {
		*slot = jail_slot_get(c->slots);
		if (*slot < 0)
			ret = errbuf_fail(err, errlen, *slot, "no free uid");
	}
	if (!ret) {
		ret = spawn_jailed(c, fd, argv, fd3, (unsigned)*slot, jp, err,
				   errlen);
		if (ret)
			jail_slot_put(c->slots, (unsigned)*slot);
	}
	close(fd);
	return ret;
}

uid_t confine_slot_uid(const struct confine *c, int slot)
{
	return (uid_t)(c->cfg.uid_base + (unsigned)slot);
}

static void hook_release(void *ctx, struct vmmproc_spawn *sp)
{
	struct confine *c = ctx;
	struct spawn_state *st = sp->state;
	int ret;

	if (!st)
		return;
	if (st->in_group) {
		ret = cg_remove(c->cg, st->group, CG_REMOVE_MS, true);
		if (ret && ret != -ENOENT)
			log_warn("removing cgroup %s: %s", st->group,
				 strerror(-ret));
	}
	if (st->slot >= 0)
		jail_slot_put(c->slots, (unsigned)st->slot);
	free(st);
	sp->state = NULL;
}

/* The tenant's group, made or rewritten when new or its limits changed.
 * c->lock held. */
static int tenant_group(struct confine *c, int64_t tenant_id,
			uint64_t memory_mib, const char *name)
{
	struct cg_limits l = {
		.memory_max = memory_mib << 20,
		.pids_max = c->cfg.tenant_pids_max,
		.cpu_weight = c->cfg.tenant_cpu_weight,
		.cpu_max_pct = c->cfg.tenant_cpu_max_pct,
	};
	char err[256];
	size_t i;
	int ret;

	for (i = 0; i < c->nr_tenants; i++)
		if (c->tenants[i].id == tenant_id)
			break;
	if (i < c->nr_tenants && c->tenants[i].memory_mib == memory_mib)
		return 0;
	ret = cg_create(c->cg, name, &l, err, sizeof(err));
	if (ret) {
		log_warn("%s", err);
		return ret;
	}
	if (i == c->nr_tenants) {
		struct tenant_group *t;

		if (c->nr_tenants == MAX_TENANTS_CACHED)
			return 0; /* rewritten every time beyond */
		t = realloc(c->tenants, (c->nr_tenants + 1) * sizeof(*t));
		if (!t)
			return 0;
		c->tenants = t;
		c->nr_tenants++;
		/* realloc's new entry is garbage: no spare group yet. */
		memset(&c->tenants[i], 0, sizeof(c->tenants[i]));
		c->tenants[i].id = tenant_id;
	}
	c->tenants[i].memory_mib = memory_mib;
	return 0;
}

static struct tenant_group *tenant_find(struct confine *c, int64_t id)
{
	for (size_t i = 0; i < c->nr_tenants; i++)
		if (c->tenants[i].id == id)
			return &c->tenants[i];
	return NULL;
}

/* Makes st's groups and moves st->pid there (any thread, c->lock not
 * held). A spare VM group of the tenant, if there is one, becomes st's
 * (its limits rewritten if they differ). 0 or -errno. */
static int place(struct confine *c, struct spawn_state *st)
{
	struct cg_limits l = {
		.memory_max = ((uint64_t)st->memory_mib +
			       c->cfg.vm_overhead_mib) << 20,
		.pids_max = c->cfg.vm_pids_max,
	};
	char tenant[32], err[256], spare[64] = "";
	uint64_t spare_max = 0;
	struct tenant_group *t;
	int ret;

	snprintf(tenant, sizeof(tenant), "t%lld", (long long)st->tenant_id);
	pthread_mutex_lock(&c->lock);
	ret = tenant_group(c, st->tenant_id, st->tenant_memory_mib, tenant);
	t = ret ? NULL : tenant_find(c, st->tenant_id);
	if (t && t->spare[0]) {
		snprintf(spare, sizeof(spare), "%s", t->spare);
		spare_max = t->spare_memory_max;
		t->spare[0] = '\0';
	}
	pthread_mutex_unlock(&c->lock);
	if (ret)
		return ret;
	if (spare[0]) {
		snprintf(st->group, sizeof(st->group), "%s", spare);
		st->in_group = true;
		if (spare_max != l.memory_max)
			ret = cg_set_limits(c->cg, st->group, &l, err,
					    sizeof(err));
	} else {
		ret = cg_create(c->cg, st->group, &l, err, sizeof(err));
		if (!ret)
			st->in_group = true;
	}
	if (ret) {
		log_warn("%s", err);
		return ret;
	}
	ret = cg_move(c->cg, st->group, st->pid);
	if (ret && ret != -ESRCH)
		log_warn("moving VMM %d into cgroup %s: %s", (int)st->pid,
			 st->group, strerror(-ret));
	return ret;
}

/* The mover, after a move: a spare VM group for st's tenant, with the
 * limits st's got (the same function is the likeliest next). */
static void make_spare(struct confine *c, const struct spawn_state *st)
{
	struct cg_limits l = {
		.memory_max = ((uint64_t)st->memory_mib +
			       c->cfg.vm_overhead_mib) << 20,
		.pids_max = c->cfg.vm_pids_max,
	};
	struct tenant_group *t;
	char name[64], err[256];
	bool need;

	pthread_mutex_lock(&c->lock);
	t = tenant_find(c, st->tenant_id);
	need = t && !t->spare[0];
	snprintf(name, sizeof(name), "t%lld/vms%llu", (long long)st->tenant_id,
		 ++c->spares_made);
	pthread_mutex_unlock(&c->lock);
	if (!need)
		return;
	if (cg_create(c->cg, name, &l, err, sizeof(err))) {
		log_warn("%s", err);
		return;
	}
	pthread_mutex_lock(&c->lock);
	t = tenant_find(c, st->tenant_id);
	if (t && !t->spare[0]) {
		snprintf(t->spare, sizeof(t->spare), "%s", name);
		t->spare_memory_max = l.memory_max;
		name[0] = '\0';
	}
	pthread_mutex_unlock(&c->lock);
	if (name[0]) /* someone else made one meanwhile */
		cg_remove(c->cg, name, CG_REMOVE_MS, false);
}

static void *mover_main(void *arg)
{
	struct confine *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct spawn_state *st;

		while (!c->queue && !c->stopping)
			pthread_cond_wait(&c->cond, &c->lock);
		if (!c->queue)
			break;
		st = c->queue;
		c->queue = st->next;
		if (!c->queue)
			c->queue_tail = &c->queue;
		st->move = MOVE_RUNNING;
		pthread_mutex_unlock(&c->lock);
		place(c, st);
		pthread_mutex_lock(&c->lock);
		st->move = MOVE_DONE;
		pthread_cond_broadcast(&c->cond);
		/* st may be freed from here on (reaped): a copy for the spare. */
		{
			struct spawn_state copy = *st;

			pthread_mutex_unlock(&c->lock);
			make_spare(c, &copy);
			pthread_mutex_lock(&c->lock);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static int hook_assign(void *ctx, struct vmmproc *p, int64_t tenant_id,
		       int64_t fn_id, uint32_t memory_mib,
		       uint64_t tenant_memory_mib)
{
	/* The scheduler's ctx is the ledger's; ours came with the spawn. */
	struct confine *c = p->hooks->ctx;
	struct spawn_state *st = p->sp.state;

	(void)ctx;
	(void)fn_id;
	if (!c->cg || !st)
		return 0;
	if (st->move != MOVE_NONE)
		return -EALREADY; /* a shell is restored once */
	snprintf(st->group, sizeof(st->group), "t%lld/vm%llu",
		 (long long)tenant_id, (unsigned long long)p->sp.seq);
	st->pid = p->pid;
	st->tenant_id = tenant_id;
	st->tenant_memory_mib = tenant_memory_mib;
	st->memory_mib = memory_mib;
	if (!c->mover_started) {
		st->move = MOVE_DONE;
		return place(c, st);
	}
	pthread_mutex_lock(&c->lock);
	st->move = MOVE_QUEUED;
	st->next = NULL;
	*c->queue_tail = st;
	c->queue_tail = &st->next;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* The process has exited and is not reaped yet: a queued move is dropped,
 * a running one waited for, so that no move outlives the pid. */
static void hook_reaping(void *ctx, struct vmmproc_spawn *sp)
{
	struct confine *c = ctx;
	struct spawn_state *st = sp->state;

	if (!st || !c->mover_started)
		return;
	pthread_mutex_lock(&c->lock);
	if (st->move == MOVE_QUEUED) {
		struct spawn_state **pp = &c->queue;

		while (*pp && *pp != st)
			pp = &(*pp)->next;
		if (*pp) {
			*pp = st->next;
			if (c->queue_tail == &st->next)
				c->queue_tail = pp;
		}
		st->move = MOVE_DONE;
	}
	while (st->move == MOVE_RUNNING)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

void confine_hooks(struct confine *c, struct sched_hooks *h)
{
	h->spawn = (struct vmmproc_hooks){
		.prepare = hook_prepare,
		.spawn = c->cfg.jail ? hook_spawn : NULL,
		.release = hook_release,
		.reaping = hook_reaping,
		.args = c->args[0] ? c->args : NULL,
		.ctx = c,
	};
	/* h->ctx is the ledger's: assign finds ours through the spawn
	 * hooks' ctx (p->hooks->ctx). */
	h->assign = c->cg ? hook_assign : NULL;
}

void confine_describe(const struct confine *c, char *buf, size_t len)
{
	char cg[128] = "cgroups off";

	if (c->cg) {
		char path[PATH_MAX];

		if (cg_path(c->cg, "", CG_MEMORY, path, sizeof(path)))
			path[0] = '\0';
		snprintf(cg, sizeof(cg), "cgroups v%d (%s)",
			 cg_version(c->cg) == CG_V2 ? 2 : 1, path);
	}
	if (c->cfg.jail)
		snprintf(buf, len, "jail on (uids %u-%u), %s, seccomp %s",
			 c->cfg.uid_base, c->cfg.uid_base + c->cfg.uid_count - 1,
			 cg, c->has_seccomp ? "on" : "off");
	else
		snprintf(buf, len, "jail OFF, %s, seccomp %s", cg,
			 c->has_seccomp ? "on" : "off");
}

void confine_destroy(struct confine *c)
{
	int ret;

	if (!c)
		return;
	if (c->mover_started) {
		pthread_mutex_lock(&c->lock);
		c->stopping = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->mover, NULL);
	}
	if (c->cg) {
		ret = cg_close(c->cg, true, CG_REMOVE_MS);
		if (ret)
			log_warn("removing the cgroups: %s", strerror(-ret));
	}
	if (c->made_root && rmdir(c->root_dir) < 0 && errno != ENOENT)
		log_warn("rmdir %s: %s", c->root_dir, strerror(errno));
	if (c->vmm_fd >= 0)
		close(c->vmm_fd);
	jail_libs_free(c->libs);
	jail_slots_free(c->slots);
	free(c->tenants);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
