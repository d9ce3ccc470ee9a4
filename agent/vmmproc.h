/*
 * vmmproc.h - the ember-vmm processes emberd starts, from spawn to reap.
 *
 * Owns: starting `ember-vmm --shell --control-fd 3` with one end of a
 * SOCK_SEQPACKET socketpair as its control socket (docs/shell.md), the
 * hooks a jail applies around each spawn, one pid file per process in
 * RUNTIME/vmm/ (so that an emberd restarted after a crash finds and ends
 * what its predecessor left), ending a process (SIGKILL through its pidfd,
 * never a pid that might have been reused) and reaping it.
 *
 * Does not: speak the control protocol beyond handing over the socket
 * (sched.c does, with libember's ember_shellctl_* helpers).
 *
 * Threads: any; one struct vmmproc is used by one thread at a time.
 */
#ifndef EMBER_AGENT_VMMPROC_H
#define EMBER_AGENT_VMMPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The control socket's number in the child. */
#define VMMPROC_CTL_FD 3

/* What a hook sees of one spawn. */
struct vmmproc_spawn {
	const char *vmm;
	const char *const *args; /* the hooks' extra arguments */
	uint64_t seq;          /* spawn counter, unique per emberd run */
	bool irqchip;          /* the shell needs --irqchip (Linux guests) */
	void *state;           /* set by prepare(), passed to child/release */
};

/*
 * Hooks for the jail (issue 10): every ember-vmm emberd starts goes
 * through them. All optional.
 *   prepare: in emberd, before the process is created (choose a uid,
 *            create a cgroup...); may set sp->state. 0 or -errno (the
 *            spawn fails with that error).
 *   child:   in the new process, after its fds are in place and before
 *            exec. The parent has other threads: only async-signal-safe
 *            calls. Without clone_flags the child shares emberd's memory
 *            (CLONE_VM | CLONE_VFORK): it must write nothing but its own
 *            locals. Nonzero makes the child exit with status 71.
 *   spawn:   replaces vmmproc's own clone3 + execve altogether: creates
 *            the process with ctl_fd as its fd 3 (stderr inherited) running
 *            argv (vmmproc's own command line: the VMM's path, --shell
 *            --control-fd 3 --quiet, the hooks' args; the hook may add to
 *            it), and returns its pid and a
 *            pidfd for it (a jail that execs ember-vmm by fd inside an
 *            empty root needs this). 0 or -errno. `child` and
 *            `clone_flags` are then not used.
 *   reaping: see below.
 *   release: in emberd, after the process is reaped or the spawn failed.
 * clone_flags are added to the clone3() that creates the process (e.g.
 * CLONE_NEWNS | CLONE_NEWPID | ...).
 */
struct vmmproc_hooks {
	int (*prepare)(void *ctx, struct vmmproc_spawn *sp);
	int (*child)(void *ctx, const struct vmmproc_spawn *sp);
	int (*spawn)(void *ctx, const struct vmmproc_spawn *sp,
		     char *const *argv, int ctl_fd, pid_t *pid, int *pidfd);
	void (*release)(void *ctx, struct vmmproc_spawn *sp);
	/* In emberd, once the process has exited and right before it is
	 * reaped: its pid is still its own (a zombie), so a hook that acts on
	 * the pid from another thread finishes or gives up here. */
	void (*reaping)(void *ctx, struct vmmproc_spawn *sp);
	uint64_t clone_flags;
	/* Added to ember-vmm's command line (e.g. "--seccomp"), whoever
	 * spawns it; NULL-terminated, at most VMMPROC_MAX_ARGS. */
	const char *const *args;
	void *ctx;
};

#define VMMPROC_MAX_ARGS 8

struct vmmproc {
	pid_t pid;
	int pidfd;                     /* readable once the process exited */
	int ctl;                       /* our end of the control socket */
	unsigned long long start_time; /* /proc/PID/stat field 22 */
	struct vmmproc_spawn sp;
	const struct vmmproc_hooks *hooks;
	bool reaped;
	int status;                    /* wait status, once reaped */
};

/* Starts `vmm --shell --control-fd 3` (stdin and stdout /dev/null, stderr
 * inherited), with --irqchip when `irqchip` (a shell for Linux guests'
 * snapshots; sp->irqchip tells a spawn hook), and writes RUNTIME/vmm/PID.
 * The process is ours to kill and reap; READY arrives on p->ctl. 0 or
 * -errno with a reason in err. */
int vmmproc_spawn(const char *vmm, const char *runtime_dir,
		  const struct vmmproc_hooks *hooks, uint64_t seq, bool irqchip,
		  struct vmmproc *p, char *err, size_t errlen);

/* SIGKILL through the pidfd (a no-op once reaped). */
void vmmproc_kill(struct vmmproc *p);

/* Reaps the process if it has exited: 0 and p->status set (the pid file
 * removed, hooks released, pidfd closed), or -EAGAIN while it runs.
 * p->ctl is left to the caller. */
int vmmproc_reap(struct vmmproc *p, const char *runtime_dir);

/* Records a VMM process emberd started some other way (the deploy's boot
 * VM) in RUNTIME/vmm/, so that a restart after a crash ends it too; forget
 * it once it is reaped. 0 or -errno. */
int vmmproc_record(const char *runtime_dir, pid_t pid);
void vmmproc_forget(const char *runtime_dir, pid_t pid);

/* At start: ends every process a previous emberd recorded in RUNTIME/vmm/
 * that still runs (checked by pid and start time, so a reused pid is left
 * alone) and removes the records. *killed counts the processes ended. */
int vmmproc_reap_orphans(const char *runtime_dir, unsigned *killed);

/* A readable description of a wait status: "exit 70", "signal 9". */
void vmmproc_status_str(int status, char *buf, size_t cap);

#endif
