/*
 * ember.h - libember, Ember's virtual machine monitor as a library.
 *
 * A program that embeds Ember fills a struct ember_config, creates a VM with
 * ember_vm_create() (or restores one from a snapshot), runs it with
 * ember_vm_run() until the guest powers off, fails or is stopped, and frees
 * it with ember_vm_destroy(). One VM per process is the supported deployment
 * (one jailed process per tenant VM), but nothing in the library is global
 * except the log level and sink.
 *
 * Threads. ember_vm_start() starts one thread per vCPU and one event thread;
 * ember_vm_wait() joins them. Which thread may call what:
 *
 *   call                                  from
 *   ember_config_init, ember_restore_init any thread, no VM involved
 *   ember_vm_create, ember_vm_restore,    any one thread; the VM does not
 *     ember_shell_*                         exist yet (or, for the shell, is
 *                                           not used by anyone else)
 *   ember_vm_snapshot_at_ready            before ember_vm_start(), the thread
 *                                           that created the VM
 *   ember_vm_start, ember_vm_run,         one thread (the "owner"), once
 *     ember_vm_wait
 *   ember_vm_pause, ember_vm_resume,      any thread, concurrently with the
 *     ember_vm_snapshot,                    owner in ember_vm_wait/run and
 *     ember_vm_record_workingset*,          with each other (they serialise
 *     ember_vm_get_status                   on the VM); not from a vCPU or
 *                                           the event thread (callbacks)
 *   ember_vm_stop                         any thread, and from a signal
 *                                           handler: it only writes to an
 *                                           eventfd (async-signal-safe)
 *   ember_vm_destroy                      the owner, after ember_vm_wait()
 *                                           returned (or instead of starting)
 *   ember_control_start/stop              the owner, around ember_vm_run
 *   ember_log_set_level/sink,             before any VM exists (not
 *     ember_set_thread_hook                 synchronised with other threads)
 *   everything else                       any thread
 *
 * File descriptors passed in (serial_fd, the ember_restore fds) are never
 * closed or taken over by the library: it duplicates what it keeps, so the
 * caller closes its own copies whenever it likes after the call.
 *
 * Signals: vCPU threads are kicked out of KVM_RUN with EMBER_KICK_SIGNAL
 * (SIGRTMIN + 5). ember_vm_create() installs an empty handler for it, once;
 * the embedding program must not use that signal for anything else.
 */
#ifndef EMBER_H
#define EMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header's API: bumped on any change a caller could
 * notice (a struct grew, a call was added or changed meaning). Compare it
 * with ember_api_version() to catch a header and a library that differ. */
#define EMBER_API_VERSION 6
int ember_api_version(void);

#define EMBER_MAX_VCPUS 8
#define EMBER_MAX_DISKS 8
#define EMBER_KICK_SIGNAL (SIGRTMIN + 5)

enum ember_kind {
	EMBER_KIND_AUTO = 0, /* decide from the kernel file */
	EMBER_KIND_LINUX,    /* vmlinux, Linux x86-64 boot protocol */
	EMBER_KIND_PLAIN,    /* static ELF entered in 64-bit mode */
};

enum ember_cpu_template {
	EMBER_CPU_AUTO = 0,  /* pvm on kvm-pvm hosts, else host */
	EMBER_CPU_HOST,
	EMBER_CPU_PVM,
};

struct ember_disk {
	const char *path;
	bool read_only;
};

struct ember_config {
	const char *kernel;       /* vmlinux or plain ELF (required) */
	const char *initrd;       /* Linux initrd, or a plain guest's module */
	const char *cmdline;      /* NULL: a default for the guest kind */
	uint64_t mem_mib;         /* 0: 256 */
	unsigned nr_cpus;         /* 0: 1 */
	enum ember_kind kind;
	unsigned cpl;             /* plain ELF only: 3 (default) or 0 */
	enum ember_cpu_template cpu_template;
	int serial_fd;            /* console output (dup'ed); -1 discards it */
	struct ember_disk disks[EMBER_MAX_DISKS];
	unsigned nr_disks;
	bool disk_sync;           /* pread/pwrite backend instead of io_uring */
	const char *vsock_path;   /* NULL: no vsock device */
	uint64_t vsock_cid;       /* 0: 3 */
	uint64_t timeout_ms;      /* 0: none */
};

enum ember_exit_reason {
	EMBER_EXIT_NONE = 0,
	EMBER_EXIT_POWEROFF,      /* i8042 reset or a clean guest exit */
	EMBER_EXIT_GUEST_STATUS,  /* non-zero status on EMBER_PORT_EXIT */
	EMBER_EXIT_TIMEOUT,       /* --timeout expired */
	EMBER_EXIT_STOPPED,       /* ember_vm_stop() */
	EMBER_EXIT_EXCEPTION,     /* unhandled guest exception */
	EMBER_EXIT_TRIPLE_FAULT,  /* KVM_EXIT_SHUTDOWN */
	EMBER_EXIT_MMIO_UNMAPPED, /* access to an MMIO address nobody owns */
	EMBER_EXIT_EMULATION,     /* KVM_EXIT_INTERNAL_ERROR and friends */
	EMBER_EXIT_UNKNOWN,       /* an exit the VMM does not handle */
	EMBER_EXIT_VMM_ERROR,     /* an ioctl failed, a device broke */
};

struct ember_exit {
	enum ember_exit_reason reason;
	int guest_status;         /* EMBER_EXIT_GUEST_STATUS */
	uint64_t rip;             /* where the guest was, when known */
	char detail[512];         /* one human-readable line */
	/* For a crash (exception, triple fault, unmapped MMIO, emulation
	 * failure, unknown exit): the vCPU's registers at that point, as
	 * "rax=... rbx=..." on one line; empty otherwise. */
	char registers[640];
};

struct ember_vm;

/* Fills *cfg with defaults (serial to stdout, 256 MiB, 1 vCPU). */
void ember_config_init(struct ember_config *cfg);

/*
 * Builds the VM: opens KVM, maps RAM, loads the kernel, creates vCPUs and
 * devices. The VM copies every string of *cfg it keeps, so cfg may go away
 * after the call. Returns NULL on error with a one-line reason in err and -errno in
 * *ret (-ENOENT/-EACCES: a file could not be opened; -ENOEXEC/-EINVAL: a
 * file or option is invalid; -ENODEV/-ENOTSUP: KVM is missing or lacks
 * something).
 */
struct ember_vm *ember_vm_create(const struct ember_config *cfg, int *ret,
				 char *err, size_t errlen);

/* Starts the VM's event thread and vCPU threads and returns. 0, or -errno
 * when the threads could not be started (the VM is then stopped: call
 * ember_vm_wait() to reap it all the same). Once per VM. */
int ember_vm_start(struct ember_vm *vm);

/* Waits until a started VM ends (the guest powered off or crashed, the
 * timeout passed, ember_vm_stop() was called), joins its threads and fills
 * *exit. Returns 0, or -EINVAL when the VM was never started. */
int ember_vm_wait(struct ember_vm *vm, struct ember_exit *exit);

/* ember_vm_start() then ember_vm_wait(): runs the VM until it ends. Returns
 * 0 when the VM ran (exit->reason says how it ended), -errno when it could
 * not start. */
int ember_vm_run(struct ember_vm *vm, struct ember_exit *exit);

/* Asks a VM to stop (reason EMBER_EXIT_STOPPED): writes an eventfd and
 * returns; the VM's owner thread (in ember_vm_wait) or its event thread
 * does the rest. Async-signal-safe, any thread, any number of times. */
void ember_vm_stop(struct ember_vm *vm);

void ember_vm_destroy(struct ember_vm *vm);

/* What a VM is doing, for embedders (the control socket's `status`). */
enum ember_vm_state {
	EMBER_VM_CREATED = 0,  /* not started yet */
	EMBER_VM_RUNNING,
	EMBER_VM_PAUSED,       /* every vCPU parked by ember_vm_pause() */
	EMBER_VM_STOPPING,     /* an end was recorded; threads are ending */
	EMBER_VM_STOPPED,      /* ember_vm_wait() returned */
};

struct ember_vm_status {
	enum ember_vm_state state;
	bool guest_ready;      /* the guest made its READY hypercall */
	bool restored;         /* built from a snapshot */
	enum ember_exit_reason exit_reason; /* once STOPPING or STOPPED */
};

/* Fills *st. Never blocks for long (takes the VM lock briefly). */
void ember_vm_get_status(struct ember_vm *vm, struct ember_vm_status *st);
/* A stable name for a state ("running", "paused", ...). */
const char *ember_vm_state_name(enum ember_vm_state s);

/*
 * Restoring a snapshot (docs/snapshots.md). Initialise with
 * ember_restore_init() (every fd -1, everything else its default), then set
 * what you need. The snapshot comes either from a directory (`dir`) or, when
 * dir is NULL, from open files (state_fd and memory_fd required), so that a
 * jailed process with no view of the file system can restore. Resources a
 * clone must not share with its siblings can be overridden; NULL / -1 keeps
 * the saved one. No fd is closed or kept by the call: the VM dups what it
 * keeps (memory is mapped, so its fd is not kept at all).
 */
struct ember_restore {
	const char *dir;            /* snapshot directory, or NULL: the fds */
	int state_fd;               /* DIR/state, readable */
	int memory_fd;              /* DIR/memory, readable (mapped private) */
	int workingset_fd;          /* DIR/workingset for prefetch, or -1 */
	int workingset_dirty_fd;    /* DIR/workingset-dirty, or -1 */
	/* vsock host side: a Unix socket path to listen on, or a listening
	 * AF_UNIX stream socket, and/or one connected AF_UNIX stream socket
	 * treated exactly like an accepted host connection (the "CONNECT
	 * <port>\n" / "OK <n>\n" handshake runs on it). With only fds, guest
	 * connections to host ports are refused (no <path>_<port> to reach). */
	const char *vsock_path;
	int vsock_listen_fd;
	int vsock_conn_fd;
	/* Or: the host end of the connection the snapshot carries (taken
	 * with one idle host connection, docs/snapshots.md), a connected
	 * AF_UNIX stream socket: the guest's connection goes on over it with
	 * no transport reset, no handshake and no READY; the next bytes on it
	 * are the host's next frame. -EDESTADDRREQ if the snapshot carries
	 * none. Without it such a snapshot restores as any other (the reset
	 * drops the connection, the guest waits for a new one). */
	int vsock_carry_fd;
	const char *disks[EMBER_MAX_DISKS]; /* new backing paths, in order */
	int disk_fds[EMBER_MAX_DISKS];  /* or open backing files (-1: path) */
	unsigned nr_disks;          /* entries used in disks[]/disk_fds[] */
	int serial_fd;              /* console output; -1 discards it */
	uint64_t timeout_ms;        /* 0: none */
	enum ember_cpu_template cpu_template;
	bool prefetch;              /* populate the working set before running */
};

void ember_restore_init(struct ember_restore *r);

/*
 * Builds a VM from a snapshot: guest RAM mapped MAP_PRIVATE from the memory
 * file (copy-on-write, nothing copied), devices recreated, saved state
 * applied and validated; a plain guest gets a new generation, fresh entropy
 * and the wall clock in its boot info; vsock gets a transport reset. Run it
 * with ember_vm_run(). NULL on error, as ember_vm_create(); -EINVAL,
 * -ENOEXEC or -EPROTONOSUPPORT mean the snapshot itself is unusable;
 * -EDESTADDRREQ that the overrides do not fit it (restoring from fds: a
 * device without its host side; more disks than it has; a vsock host side
 * for a snapshot without vsock).
 */
struct ember_vm *ember_vm_restore(const struct ember_restore *r, int *ret,
				  char *err, size_t errlen);

/*
 * Whether the snapshot whose state file is open at state_fd carries a host
 * connection (taken with one idle host connection, docs/snapshots.md), so
 * that a restore can be handed its socket (vsock_carry_fd): 1 if it does,
 * 0 if not, -errno with a reason if the state file cannot be read or
 * parsed. Reads the file from offset 0 (pread); the record itself is
 * checked by the restore.
 */
int ember_snapshot_carries_connection(int state_fd, char *err,
				      size_t errlen);

/*
 * A VM shell for embedders that keep a pool: the KVM VM, its vCPUs, event
 * loop and eventfds created ahead of time, off the critical path, so that
 * a restore only maps memory, creates devices and sets state.
 * ember_shell_restore() consumes the shell (on success and on error).
 */
struct ember_shell;
struct ember_shell *ember_shell_create(unsigned nr_vcpus, bool irqchip,
				       int *ret, char *err, size_t errlen);
struct ember_vm *ember_shell_restore(struct ember_shell *sh,
				     const struct ember_restore *r, int *ret,
				     char *err, size_t errlen);
void ember_shell_destroy(struct ember_shell *sh);

/*
 * Maps mem_mib MiB of guest RAM into the shell ahead of time, a placeholder
 * that costs no memory, with its KVM memory slots registered now (~0.2 ms
 * here, taken off the restore's path). A snapshot with exactly that much
 * RAM is then mapped in place over it; one of any other size undoes the
 * placeholder first and pays for both. For pools that know the size of
 * what they will restore. Call at most once, before ember_shell_restore(),
 * on the thread that made the shell. 0 or -errno with a reason (-EINVAL
 * for a size of 0 or over 64 GiB, -EBUSY when called twice).
 */
int ember_shell_reserve_memory(struct ember_shell *sh, unsigned mem_mib,
			       char *err, size_t errlen);

/*
 * Starts the shell's VM threads now (one per vCPU, and the event thread);
 * they wait, and ember_vm_start() after the restore wakes them instead of
 * creating them. Each vCPU thread makes its first KVM_RUN meanwhile (with
 * immediate_exit: KVM's once-per-VM set-up, no guest entry), and the thread
 * hook (ember_set_thread_hook) runs on each thread now. Off the restore's
 * path then: ~0.2-0.3 ms here (docs/benchmarks.md). The shell then holds
 * nr_vcpus + 1 threads (KVM may add a worker of its own to the process);
 * an embedder that must have them created at the restore, in the cgroup
 * the VM is moved to first (a pids limit counts creation, not moves), does
 * not call this. Call at most once, before ember_shell_restore(), on the
 * thread that made the shell. 0 or -errno with a reason (-EBUSY: twice).
 */
int ember_shell_start_threads(struct ember_shell *sh, char *err,
			      size_t errlen);

/* Writes the pages a restored VM has touched so far (call after the first
 * invocation) to its snapshot's `workingset` and `workingset-dirty` files
 * (restored from a directory), or to open writable files (`dirty_fd` may be
 * -1). 0 or -errno with a reason. */
int ember_vm_record_workingset(struct ember_vm *vm, char *err, size_t errlen);
int ember_vm_record_workingset_fd(struct ember_vm *vm, int fd, int dirty_fd,
				  char *err, size_t errlen);

/*
 * Pausing and snapshots. ember_vm_pause() parks every vCPU at a clean point
 * (a pending I/O exit completed) and returns once they are parked;
 * ember_vm_snapshot() writes a paused VM to DIR (created if missing), or
 * into the open directory dir_fd; ember_vm_resume() lets it run again.
 * 0 or -errno (+ reason for snapshot: -EBUSY when not paused).
 */
int ember_vm_pause(struct ember_vm *vm);
int ember_vm_resume(struct ember_vm *vm);
int ember_vm_snapshot(struct ember_vm *vm, const char *dir, char *err,
		      size_t errlen);
int ember_vm_snapshot_fd(struct ember_vm *vm, int dir_fd, char *err,
			 size_t errlen);

/* The control socket (protocol in docs/shell.md): a thread serving PATH
 * until ember_control_stop(). NULL + *ret on error. */
struct ember_control;
struct ember_control *ember_control_start(struct ember_vm *vm,
					  const char *path, int *ret);
void ember_control_stop(struct ember_control *c);

/* Makes the VM write a snapshot to DIR at the guest's READY hypercall and
 * then stop (EMBER_EXIT_POWEROFF). Call before ember_vm_run(): DIR is
 * created if missing and opened here. 0 or -errno + reason. */
int ember_vm_snapshot_at_ready(struct ember_vm *vm, const char *dir,
			       char *err, size_t errlen);

/* A stable name for an exit reason ("poweroff", "timeout", ...). */
const char *ember_exit_reason_name(enum ember_exit_reason r);

/* Whether the host's /dev/kvm is the nested kvm-pvm flavour. */
bool ember_host_is_pvm(void);

/*
 * Threads, for sandboxing them (a seccomp filter per kind): every thread
 * of an Ember VMM is one of these kinds, and calls ember_thread_serving()
 * exactly once, at the point where its setup is over and it starts
 * serving (from there on it needs only its steady-state system calls);
 * a shell's control thread says RESTORE first and CONTROL once restored.
 * libember calls it for the threads it creates (vCPU, event, the stream
 * control socket's); a program calls it for its own (ember-vmm: main and
 * the shell's control thread). The hook runs on that thread.
 */
enum ember_thread_kind {
	EMBER_THREAD_MAIN = 0,  /* owns the VM: waits in ember_vm_wait() */
	EMBER_THREAD_CONTROL,   /* reads control commands for a VM */
	EMBER_THREAD_VCPU,      /* KVM_RUN and exit dispatch */
	EMBER_THREAD_EVENT,     /* epoll: ioeventfds, io_uring, sockets */
	EMBER_THREAD_RESTORE,   /* a shell's control thread until its restore
				 * is done (then it says CONTROL) */
};
typedef void (*ember_thread_fn)(enum ember_thread_kind kind, void *opaque);
/* Sets the hook (NULL: none), before any VM exists. */
void ember_set_thread_hook(ember_thread_fn fn, void *opaque);
void ember_thread_serving(enum ember_thread_kind kind);
const char *ember_thread_kind_name(enum ember_thread_kind kind);

/*
 * Logging. Lines look like "ember: MODULE: LEVEL: text" and go to stderr
 * unless a sink is set. The sink gets one complete line (no newline) per
 * call, from whichever library thread logs: it must be thread-safe and must
 * not call back into libember. Names carry the EMBER_ prefix so that they
 * never meet <syslog.h>'s LOG_ERR and friends.
 */
enum ember_log_level {
	EMBER_LOG_ERROR = 0,
	EMBER_LOG_WARN,   /* the default maximum */
	EMBER_LOG_INFO,
	EMBER_LOG_DEBUG,  /* only in builds with EMBER_DEBUG */
};
typedef void (*ember_log_fn)(enum ember_log_level level, const char *line,
			     void *opaque);
void ember_log_set_level(enum ember_log_level level);
enum ember_log_level ember_log_get_level(void);
/* NULL restores stderr. */
void ember_log_set_sink(ember_log_fn fn, void *opaque);

#ifdef __cplusplus
}
#endif

#endif
