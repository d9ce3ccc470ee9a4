/*
 * seccomp.h - per-thread system call allow-lists for the VMM.
 *
 * Owns: one allow-list per kind of VMM thread (main, vCPU, event loop,
 * control, and the control thread while it restores a snapshot), each
 * system call on one line of vmm/seccomp.c with the reason it is needed,
 * argument filters where they matter (ioctl by request number, no PROT_EXEC
 * mappings, threads but no processes, signals only to the VMM's own
 * threads, files only below a directory descriptor handed in). Anything
 * else kills the whole process (SECCOMP_RET_KILL_PROCESS: it dies of SIGSYS).
 *
 * Filters are compiled once, by seccomp_prepare() on the main thread before
 * any is applied; each thread then loads its own with seccomp_apply() once
 * its setup is done and before it touches guest-controlled state. Filters
 * stack: a thread created by a filtered thread inherits its creator's
 * filter, and applying a second kind adds to the first (the control thread
 * applies RESTORE, then CONTROL once the restore is done).
 *
 * Does not own: the rest of the jail (agent/jail.c), when each thread
 * applies its list (the thread's own module, through ember.h's thread
 * hook), the command-line switches (cli.c, cli_seccomp.c). io_uring
 * requests run in kernel workers that seccomp does not see (docs/seccomp.md,
 * "What it does not cover").
 *
 * Threads: seccomp_prepare() once, before any other thread exists or
 * applies a filter; seccomp_apply() on the thread being restricted.
 */
#ifndef EMBER_SECCOMP_H
#define EMBER_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>

enum seccomp_thread {
	SECCOMP_THREAD_MAIN,    /* ember-vmm's main thread once the VM is up */
	SECCOMP_THREAD_VCPU,    /* a vCPU thread: KVM_RUN and the exits */
	SECCOMP_THREAD_EVLOOP,  /* the event thread: devices, sockets, I/O */
	SECCOMP_THREAD_CONTROL, /* the control thread serving a VM */
	SECCOMP_THREAD_RESTORE, /* the control thread until its restore ran */
	SECCOMP_NR_THREADS,
};

enum seccomp_mode {
	SECCOMP_OFF = 0,  /* no filters (the library's default) */
	SECCOMP_KILL,     /* a call outside the list kills the process */
	SECCOMP_LOG,      /* it is allowed and logged by the kernel (dmesg:
			   * "audit: type=1326 ... comm=THREAD syscall=N"):
			   * for building the lists, never for production */
};

/* What this process's configuration needs beyond the base lists (each
 * widens one list: only what ember-vmm's flags call for is compiled in). */
enum {
	/* --snapshot-at-ready: the vCPU thread writes the snapshot (into a
	 * directory fd opened at setup). */
	SECCOMP_F_SNAPSHOT_AT_READY = 1u << 0,
	/* --control PATH without --shell: the stream socket's commands name
	 * directories by path, so the control thread may open files by path
	 * (never in emberd's shells, which pass directory fds). */
	SECCOMP_F_PATHS = 1u << 1,
	/* --control PATH or --vsock PATH: main unlinks the socket file at
	 * exit. */
	SECCOMP_F_UNLINK = 1u << 2,
	/* --vsock PATH (not fds): a guest connection to host port P connects
	 * to PATH_P, a Unix socket made on the vCPU or event thread. */
	SECCOMP_F_VSOCK_CONNECT = 1u << 3,
	/* --shell --threads-at-restore: the control thread creates the VM's
	 * threads at the restore, and they keep its `restore` filter under
	 * their own, so that list must also allow what they do (and
	 * creating them). Without it the threads exist before the restore
	 * and `restore` holds only what building the VM takes. */
	SECCOMP_F_THREADS_AT_RESTORE = 1u << 4,
};

/* Compiles every kind's filter for this process (the pid it may signal is
 * getpid()), with the extra lists `flags` (SECCOMP_F_*) select. With
 * SECCOMP_OFF it only records that filters are off.
 * 0 or -errno + reason (-ENOSYS: no seccomp in this kernel). */
int seccomp_prepare(enum seccomp_mode mode, unsigned flags, char *err,
		    size_t errlen);

enum seccomp_mode seccomp_get_mode(void);

/* Loads kind's filter on the calling thread (and sets no_new_privs);
 * 0 without doing anything when filters are off. 0 or -errno. */
int seccomp_apply(enum seccomp_thread kind);

/* "main", "vcpu", "evloop", "control", "restore". */
const char *seccomp_thread_name(enum seccomp_thread kind);

#endif
