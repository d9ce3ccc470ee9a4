/*
 * confine.h - how emberd confines the VMM processes it starts: the jail
 * (jail.h) around every shell, cgroups (cgroup.h) per tenant and per VM,
 * and seccomp switched on in each VMM (--seccomp).
 *
 * Owns: the glue between the scheduler's hooks (sched.h, vmmproc.h) and the
 * jail and cgroup modules: a uid slot and a jail per spawned shell, the
 * tenant's group and the VM's own group at restore, their removal when the
 * process is reaped, and the whole subtree's removal at shutdown.
 *
 * Order around /dev/kvm and KVM_CREATE_VM (docs/security.md):
 *   1. spawn (pool thread, off the critical path): the jail opens /dev/kvm as
 *      root, builds the empty root, drops to the slot's uid and executes
 *      ember-vmm --kvm-fd; the VMM creates its KVM VM and vCPUs at once,
 *      while still in emberd's own cgroup;
 *   2. restore (the critical path): the process moves into
 *      S/<name>/t<tenant>/vm<seq>, which carries the VM's memory and pids
 *      limits inside the tenant's group (CPU weight, memory, pids); the
 *      move runs on a thread of its own beside the restore (confine.c says
 *      why), unless cgroup_move_sync.
 * KVM_CREATE_VM in a memory cgroup has cost tens of ms on some host kernels,
 * and a pooled shell has no tenant yet; both say: create first, move later.
 *
 * Threads: confine_create() and confine_destroy() in main() only (before
 * and after the scheduler's threads); the hooks from any thread.
 */
#ifndef EMBER_AGENT_CONFINE_H
#define EMBER_AGENT_CONFINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/sched.h"

struct confine_config {
	const char *vmm;          /* ember-vmm */
	const char *runtime_dir;  /* RUNTIME/jail is the jails' mount point */
	const char *state_dir;    /* names the cgroup subtree when none given */
	bool jail;                /* false: --no-jail (debugging) */
	bool cgroups;             /* false: --no-cgroups */
	bool seccomp;             /* pass --seccomp (if the VMM knows it) */
	uint32_t uid_base, uid_count;
	const char *cgroup_name;  /* NULL: "ember-" + a hash of state_dir */
	int cgroup_version;       /* 0 auto, 1, 2 */
	uint32_t tenant_cpu_weight;   /* 1..10000, 100 = fair share */
	uint32_t tenant_cpu_max_pct;  /* 0: no cap */
	uint32_t tenant_pids_max;     /* 0: none */
	uint32_t vm_pids_max;         /* 0: none */
	uint32_t vm_overhead_mib;     /* VM group memory = guest RAM + this */
	bool cgroup_move_sync;        /* move at restore inline, not beside it */
	bool keep_root;               /* leave RUNTIME/jail at the end (a test
				       * helper beside a running emberd) */
};

struct confine;

/* Checks the settings, opens /dev/kvm-free resources (the VMM by fd, its
 * libraries, the cgroup subtree). NULL + reason on error, errno set:
 * ENOTSUP when the settings ask for what this host or VMM cannot do (a
 * configuration error), anything else for a failure. */
struct confine *confine_create(const struct confine_config *cfg, char *err,
			       size_t errlen);

/* Fills the scheduler's spawn and assign hooks (keeps h->finished). */
void confine_hooks(struct confine *c, struct sched_hooks *h);

/* One line for emberd's start message: "jail on (uids A-B), cgroups v1
 * (S/name), seccomp on". */
void confine_describe(const struct confine *c, char *buf, size_t len);

/*
 * For tests (tests/helpers/jail-run.c): runs the static program at path in
 * place of ember-vmm, in exactly the jail a shell gets (a uid slot of its
 * own, fd 3 = fd3, fd 4 = /dev/kvm, stderr, the same root and limits).
 * *slot is taken until the caller has reaped the process. 0 or -errno.
 */
struct jail_proc;
int confine_spawn_program(struct confine *c, const char *path,
			  char *const *argv, int fd3, struct jail_proc *jp,
			  int *slot, char *err, size_t errlen);
uid_t confine_slot_uid(const struct confine *c, int slot);

/* After the scheduler is destroyed (no VMM left): removes the cgroup
 * subtree (killing anything still inside) and the jail's mount point. */
void confine_destroy(struct confine *c);

#endif
