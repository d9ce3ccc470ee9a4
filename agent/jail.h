/*
 * jail.h - the confinement of every VMM process emberd starts.
 *
 * Owns: spawning one process (an `ember-vmm --shell`, or a test helper in its
 * place) confined as follows, all set up before it executes its first
 * instruction:
 *   - new mount, PID, IPC, UTS, network and cgroup namespaces: it is PID 1 of
 *     its own PID namespace and sees no other process; its network namespace
 *     has only a loopback interface that is down;
 *   - an empty, read-only root: a tmpfs holding /proc (a procfs with
 *     subset=pid, showing only the jail's own processes, for
 *     /proc/self/pagemap), the read-only binds and empty directories the
 *     configuration lists (a dynamic program's loader and libraries), and
 *     nothing else; every resource arrives as a file descriptor
 *     (contract 1), so the host's files, sockets and devices are out of reach;
 *   - its own unprivileged uid and gid (uid_base + slot), no supplementary
 *     groups, no capabilities (bounding, ambient and inheritable sets
 *     cleared), no_new_privs;
 *   - rlimits: open files, processes (threads of its uid), file size, no
 *     core dumps;
 *   - the parent-death signal (SIGKILL), so that no VMM outlives emberd;
 *   - exactly the listed file descriptors inherited, everything else closed.
 *
 * Order of the steps around /dev/kvm: the jail opens /dev/kvm (0600 root)
 * itself, as root, before the root goes away and before dropping privileges,
 * and hands the fd to the VMM (--kvm-fd); the VMM creates the KVM VM and vCPU
 * at once, inside the jail but still in emberd's cgroup; emberd moves it into
 * its tenant's VM cgroup only at restore (cgroup.h), because KVM_CREATE_VM
 * inside a memory cgroup has cost tens of ms on some host kernels and
 * because a pooled shell has no tenant yet. docs/security.md says why each
 * wall is where it is.
 *
 * Does not own: seccomp (the VMM installs its own per-thread filters once its
 * setup is done: vmm/seccomp.c), cgroups (cgroup.h), choosing slots for
 * tenants (the scheduler), the executable (static, or with its libraries
 * listed in binds: jail_exec_libs(); nothing else of the host filesystem is
 * visible when it starts).
 *
 * Threads: jail_spawn() may be called from any thread of a multi-threaded
 * program: the child only makes system calls between clone and exec.
 */
#ifndef EMBER_JAIL_H
#define EMBER_JAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define JAIL_MAX_FDS 16
#define JAIL_MAX_BINDS 16

/* emberd-wide settings (its configuration file). */
struct jail_config {
	uid_t uid_base;        /* slot s runs as uid and gid uid_base + s */
	unsigned uid_count;    /* slots: how many jailed processes at once */
	const char *root_dir;  /* an existing directory the jail's root is
				* mounted over, in the jail's own mount
				* namespace (the host never sees that mount) */
	unsigned max_fds;      /* RLIMIT_NOFILE; 0: 256 */
	unsigned max_procs;    /* RLIMIT_NPROC of the slot's uid (its threads
				* count); 0: 64 */
	bool no_proc;          /* no /proc at all (the VMM then cannot record
				* a working set) */
	/* Host files bound read-only at the same path in the root: the
	 * dynamic loader and libraries of a VMM that is not static
	 * (jail_exec_libs()); NULL-terminated, at most JAIL_MAX_BINDS. */
	const char *const *binds;
	/* Empty directories made in the root (absolute paths), to mirror a
	 * fact the VMM reads from the host's filesystem without showing it
	 * the host's file: /sys/module/kvm_pvm, by whose presence ember-vmm
	 * knows it runs on kvm-pvm. NULL-terminated, at most JAIL_MAX_BINDS. */
	const char *const *dirs;
};

/* An inherited descriptor: the caller's fd becomes target in the child. */
struct jail_fd {
	int fd;
	int target;
};

/* One jailed process. */
struct jail_spec {
	int exec_fd;              /* the static executable (O_PATH is enough) */
	char *const *argv;        /* argv[0]: the name the process sees */
	char *const *envp;        /* NULL: an empty environment */
	const struct jail_fd *fds; /* inherited, nothing else; fds 0-2 that
				    * are not listed get /dev/null */
	unsigned nr_fds;          /* at most JAIL_MAX_FDS */
	int kvm_target;           /* >= 0: /dev/kvm, opened by the jail, at
				   * this fd; -1: none */
	unsigned slot;            /* < uid_count */
	uint64_t max_file_bytes;  /* RLIMIT_FSIZE (0: writes fail with EFBIG) */
};

struct jail_proc {
	pid_t pid;    /* in emberd's PID namespace */
	int pidfd;    /* a pidfd for it (poll, pidfd_send_signal), CLOEXEC */
};

/* Checks a configuration: a uid range clear of root and of wrap-around, a
 * root_dir that is a directory. 0 or -EINVAL + reason. */
int jail_config_check(const struct jail_config *c, char *err, size_t errlen);

/* Checks that fd is a static ELF executable (no PT_INTERP): a dynamic one
 * cannot start in the empty root. 0, -ENOEXEC + reason, or -errno. */
int jail_check_exec(int fd, char *err, size_t errlen);

/*
 * What a program needs bound into the empty root to start: nothing (*out
 * NULL) for a static executable; for a dynamic one its loader and every
 * library it loads, as the loader itself lists them (`LOADER --list`, run
 * once here). *out: a malloc'd NULL-terminated array of malloc'd paths,
 * freed with jail_libs_free(). 0, or -errno + reason (a library not found,
 * more than JAIL_MAX_BINDS). Not for a multi-threaded caller (it forks).
 */
int jail_exec_libs(const char *path, char ***out, char *err, size_t errlen);
void jail_libs_free(char **libs);

/*
 * Starts s->argv in a new jail. Returns once the process has executed the
 * program (0, *p filled) or failed to (-errno + which step failed, in err;
 * nothing left running). The caller reaps the process (waitpid or the
 * pidfd) and closes p->pidfd.
 */
int jail_spawn(const struct jail_config *c, const struct jail_spec *s,
	       struct jail_proc *p, char *err, size_t errlen);

/*
 * Slots: which uids are in use. A slot must stay taken until its process has
 * been reaped, so that no two live processes ever share a uid. Thread-safe.
 */
struct jail_slots;
struct jail_slots *jail_slots_new(unsigned count);
void jail_slots_free(struct jail_slots *s);
/* A free slot, or -ENOSPC when all are taken. */
int jail_slot_get(struct jail_slots *s);
void jail_slot_put(struct jail_slots *s, unsigned slot);

#endif
