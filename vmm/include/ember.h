/*
 * ember.h - libember, Ember's virtual machine monitor as a library.
 *
 * A program that embeds Ember fills a struct ember_config, creates a VM with
 * ember_vm_create(), runs it with ember_vm_run() until the guest powers off,
 * fails or is stopped, and frees it with ember_vm_destroy(). One VM per
 * process is the supported deployment (one jailed process per tenant VM),
 * but nothing in the library is global except the log level and sink.
 *
 * Threads: ember_vm_run() starts one thread per vCPU and one event thread,
 * and returns after joining them. ember_vm_stop() may be called from any
 * thread (or a signal-safe context: it only writes an eventfd and sends
 * signals).
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
	int serial_fd;            /* console output; -1 discards it */
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
 * file or option is invalid; -ENOTSUP: KVM lacks something).
 */
struct ember_vm *ember_vm_create(const struct ember_config *cfg, int *ret,
				 char *err, size_t errlen);

/* Runs the VM until it ends; fills *exit. Returns 0 when the VM ran (see
 * exit->reason for how it ended), -errno when it could not start. */
int ember_vm_run(struct ember_vm *vm, struct ember_exit *exit);

/* Asks a running VM to stop (reason EMBER_EXIT_STOPPED). Thread-safe. */
void ember_vm_stop(struct ember_vm *vm);

void ember_vm_destroy(struct ember_vm *vm);

/* Restoring a snapshot (docs/snapshots.md). Resources a clone must not
 * share with its siblings can be overridden; NULL keeps the saved one. */
struct ember_restore {
	const char *dir;            /* snapshot directory (required) */
	const char *vsock_path;     /* new vsock Unix socket path */
	const char *disks[EMBER_MAX_DISKS]; /* new backing paths, in order */
	unsigned nr_disks;
	int serial_fd;
	uint64_t timeout_ms;
	enum ember_cpu_template cpu_template;
	bool prefetch;              /* map DIR/workingset before running */
};

/*
 * Builds a VM from a snapshot: guest RAM mapped MAP_PRIVATE from DIR/memory
 * (copy-on-write, nothing copied), devices recreated, saved state applied
 * and validated; a plain guest gets a new generation, fresh entropy and the
 * wall clock in its boot info; vsock gets a transport reset. Run it with
 * ember_vm_run(). NULL on error, as ember_vm_create().
 */
struct ember_vm *ember_vm_restore(const struct ember_restore *r, int *ret,
				  char *err, size_t errlen);

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

/* Writes the pages a restored VM has touched so far to its snapshot's
 * `workingset` file (call after the first invocation). 0 or -errno. */
int ember_vm_record_workingset(struct ember_vm *vm, char *err, size_t errlen);

/*
 * Pausing and snapshots. ember_vm_pause() parks every vCPU at a clean point
 * (a pending I/O exit completed) and returns once they are parked;
 * ember_vm_snapshot() writes a paused VM to DIR (created if missing);
 * ember_vm_resume() lets it run again. 0 or -errno (+ reason for snapshot).
 */
int ember_vm_pause(struct ember_vm *vm);
int ember_vm_resume(struct ember_vm *vm);
int ember_vm_snapshot(struct ember_vm *vm, const char *dir, char *err,
		      size_t errlen);

/* The control socket (protocol in vmm/control.c and docs/snapshots.md):
 * a thread serving PATH until ember_control_stop(). NULL + *ret on error. */
struct ember_control;
struct ember_control *ember_control_start(struct ember_vm *vm,
					  const char *path, int *ret);
void ember_control_stop(struct ember_control *c);

/* Makes the VM write a snapshot to DIR at the guest's READY hypercall and
 * then stop (EMBER_EXIT_POWEROFF). Call before ember_vm_run(). */
void ember_vm_snapshot_at_ready(struct ember_vm *vm, const char *dir);

/* A stable name for an exit reason ("poweroff", "timeout", ...). */
const char *ember_exit_reason_name(enum ember_exit_reason r);

/* Whether the host's /dev/kvm is the nested kvm-pvm flavour. */
bool ember_host_is_pvm(void);

#endif
