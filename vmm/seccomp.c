/*
 * seccomp.c - the VMM's per-thread allow-lists (seccomp.h), on libseccomp.
 *
 * Each table below is one kind of thread; every line allows one system call
 * (optionally only with some arguments) and says why the thread needs it.
 * A thread's filter is the common table plus its own. seccomp_prepare()
 * compiles each to classic BPF once (libseccomp writes the program to a
 * memfd, read back here), so that seccomp_apply() is a single seccomp(2)
 * call that needs no allocation and costs microseconds.
 *
 * The lists were checked by running the VM integration tests with every
 * ember-vmm given --seccomp (tests/integration/seccomp-vmm) and reading
 * what --seccomp=log made the kernel log (docs/seccomp.md, "Debugging with
 * log mode"). Argument conventions: an int argument is
 * compared on its low 32 bits only (the upper half of a register holding
 * an int is undefined in the x86-64 ABI); ioctl request numbers likewise.
 */
#define LOG_MOD "seccomp"
#include "seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* ---- how a rule is written ---------------------------------------------- */

enum arg_kind {
	ARG_NONE,
	ARG_EQ32,    /* low 32 bits == v */
	ARG_MASKED,  /* (arg & mask) == v */
	ARG_SELF,    /* low 32 bits == this process's pid */
};

struct rule_arg {
	enum arg_kind kind;
	unsigned arg;
	uint64_t mask, v;
};

struct rule {
	int nr;                     /* __NR_*, via SCMP_SYS() */
	const char *why;
	struct rule_arg a[2];       /* ANDed; rules of one call are ORed */
	int errno_ret;              /* non-zero: fail with this errno */
};

#define ALLOW(call, reason) { SCMP_SYS(call), reason, { { 0 } }, 0 }
#define ALLOW_IF(call, cond, reason) { SCMP_SYS(call), reason, { cond }, 0 }
#define ALLOW_IF2(call, c1, c2, reason)                                       \
	{ SCMP_SYS(call), reason, { c1, c2 }, 0 }
#define FAIL_WITH(call, e, reason) { SCMP_SYS(call), reason, { { 0 } }, e }
#define EQ32(n, val) { ARG_EQ32, n, 0xffffffffu, (uint64_t)(uint32_t)(val) }
#define MASKED(n, m, val) { ARG_MASKED, n, m, val }
#define SELF(n) { ARG_SELF, n, 0xffffffffu, 0 }
#define IOCTL(req, reason) ALLOW_IF(ioctl, EQ32(1, req), reason)
#define NO_EXEC(n) MASKED(n, PROT_EXEC, 0)
/* A directory fd handed in, never AT_FDCWD (-100: bit 31 set): with the
 * jail's empty root, the only files a thread can reach are below it. */
#define DIRFD(n) MASKED(n, 0x80000000u, 0)

/* ---- the lists ----------------------------------------------------------- */

static const struct rule common[] = {
	ALLOW(read, "eventfds, sockets and files handed in"),
	ALLOW(write, "eventfds, the serial console, logs on stderr"),
	ALLOW(readv, "stdio, vsock streams"),
	ALLOW(writev, "stdio, vsock streams"),
	ALLOW(close, "descriptors the thread is done with"),
	ALLOW(futex, "mutexes and condition variables"),
	ALLOW(rt_sigprocmask, "pthread internals; the vCPU kick signal mask"),
	ALLOW(rt_sigreturn, "return from the vCPU kick signal handler"),
	ALLOW_IF(mmap, NO_EXEC(2), "malloc; never executable memory"),
	ALLOW_IF(mprotect, NO_EXEC(2), "malloc's heaps; never executable"),
	ALLOW(munmap, "malloc, guest memory at teardown"),
	ALLOW(madvise, "free(): returning memory; working-set prefetch"),
	ALLOW(brk, "malloc"),
	ALLOW(clock_gettime, "timestamps (when the vDSO falls back)"),
	ALLOW(clock_nanosleep, "short waits"),
	ALLOW(nanosleep, "short waits"),
	ALLOW(gettid, "log lines, pthread_kill"),
	ALLOW(getpid, "pthread_kill, log lines"),
	ALLOW_IF(tgkill, SELF(0), "kicking a vCPU: only this process's threads"),
	ALLOW(sched_yield, "spin-then-wait loops"),
	ALLOW(epoll_ctl, "devices register their fds from any thread"),
	ALLOW_IF(newfstatat, MASKED(3, AT_EMPTY_PATH, AT_EMPTY_PATH),
		 "fstat of an open fd (stdio); no path lookups"),
	ALLOW(fstat, "stdio on stderr"),
	ALLOW(lseek, "stdio"),
	ALLOW(exit, "a thread ends"),
	ALLOW(exit_group, "the process ends"),
	ALLOW(restart_syscall, "a wait interrupted by the kick signal"),
	FAIL_WITH(clone3, ENOSYS, "its flags are behind a pointer that seccomp "
		  "cannot read: glibc falls back to clone, which it can"),
	ALLOW_IF(prctl, EQ32(0, PR_SET_NO_NEW_PRIVS),
		 "seccomp_apply() of a second list (stacking)"),
	ALLOW_IF(seccomp, EQ32(0, SECCOMP_SET_MODE_FILTER),
		 "adding a filter only ever narrows what a thread may do"),
#ifdef __SANITIZE_ADDRESS__
	/* Only in the ASan+UBSan test build (the sanitizer runtime's own
	 * calls): never compiled into ember-vmm itself. */
	ALLOW(sigaltstack, "sanitizer: per-thread signal stacks"),
	ALLOW(rt_sigaction, "sanitizer: its deadly-signal handlers"),
#endif
};

static const struct rule main_thread[] = {
	ALLOW(ppoll, "waits for the VM to end and for its controller"),
	ALLOW(poll, "waits for the VM to end and for its controller"),
	ALLOW(sendmsg, "the EXIT line to the controller"),
	ALLOW(sendto, "the EXIT line to the controller"),
	ALLOW(recvmsg, "notices the controller closing its end"),
	ALLOW(shutdown, "wakes the control thread to end it"),
	ALLOW(io_uring_register, "teardown: the disk ring's eventfd"),
	ALLOW(rt_sigaction, "SIGTERM, SIGINT, SIGHUP back to exiting once the "
	      "VM ended (cli_stop_on_signals)"),
};

static const struct rule vcpu[] = {
	IOCTL(KVM_RUN, "runs the guest"),
	IOCTL(KVM_GET_REGS, "exception reflection, crash reports, snapshots"),
	IOCTL(KVM_SET_REGS, "exception reflection into a plain guest"),
	IOCTL(KVM_GET_SREGS, "exception reflection, crash reports, snapshots"),
	IOCTL(KVM_SET_SREGS, "exception reflection into a plain guest"),
	IOCTL(KVM_IRQ_LINE, "legacy interrupt lines of devices it serves"),
	ALLOW(ppoll, "EMBER_HC_WAIT: the guest idles until a device or a timeout"),
	ALLOW(getrandom, "virtio-rng requests a guest MMIO write completes"),
	ALLOW(timerfd_settime, "vsock: the host side's retry timer"),
	IOCTL(KVM_GET_VCPU_EVENTS, "a preemption tick waits for event delivery"),
	ALLOW(timer_create, "the micro guest's preemption tick (one per vCPU)"),
	ALLOW(timer_settime, "the preemption tick: armed while the guest runs"),
	ALLOW(timer_delete, "the preemption tick, when the vCPU thread ends"),
	ALLOW(sendto, "vsock packets a guest MMIO write completes"),
	ALLOW(sendmsg, "vsock packets a guest MMIO write completes"),
	ALLOW(io_uring_enter, "disk requests a guest MMIO write submits"),
	ALLOW(preadv2, "io_uring disk backend: cached reads, non-blocking"),
};

static const struct rule evloop[] = {
	ALLOW(epoll_wait, "the event loop"),
	ALLOW(epoll_pwait, "the event loop"),
	ALLOW(io_uring_enter, "submits and reaps disk requests"),
	ALLOW(preadv2, "io_uring disk backend: cached reads, non-blocking"),
	ALLOW(accept4, "host connections on the vsock listening socket"),
	ALLOW(recvfrom, "vsock streams from the host"),
	ALLOW(recvmsg, "vsock streams from the host"),
	ALLOW(sendto, "vsock streams to the host"),
	ALLOW(sendmsg, "vsock streams to the host"),
	ALLOW(shutdown, "closing one direction of a vsock stream"),
	ALLOW_IF(fcntl, EQ32(1, F_GETFL), "making accepted sockets nonblocking"),
	ALLOW_IF(fcntl, EQ32(1, F_SETFL), "making accepted sockets nonblocking"),
	ALLOW(pread64, "the synchronous disk backend"),
	ALLOW(pwrite64, "the synchronous disk backend"),
	ALLOW(preadv, "the synchronous disk backend"),
	ALLOW(pwritev, "the synchronous disk backend"),
	ALLOW(fdatasync, "the synchronous disk backend: flush requests"),
	ALLOW(fsync, "the synchronous disk backend: flush requests"),
	IOCTL(KVM_IRQ_LINE, "interrupts of devices without an irqfd"),
	ALLOW(timerfd_settime, "vsock: the host side's retry timer"),
	ALLOW(getrandom, "virtio-rng requests"),
};

static const struct rule control[] = {
	ALLOW(recvmsg, "commands, with descriptors attached (SCM_RIGHTS)"),
	ALLOW(sendmsg, "replies"),
	ALLOW(sendto, "replies"),
	ALLOW(recvfrom, "commands"),
	ALLOW(accept4, "the next client of --control PATH"),
	ALLOW(poll, "waits for a command with a timeout"),
	ALLOW(ppoll, "waits for a command with a timeout"),
	ALLOW_IF(fcntl, EQ32(1, F_GETFL), "checking a descriptor handed in"),
	ALLOW_IF(fcntl, EQ32(1, F_GETFD), "checking a descriptor handed in"),
	ALLOW_IF(fcntl, EQ32(1, F_SETFD), "close-on-exec on received fds"),
	ALLOW_IF(fcntl, EQ32(1, F_DUPFD_CLOEXEC), "keeping a received fd"),
};

/* Writing a snapshot or a working set of a paused VM: the control thread's
 * commands, and with SECCOMP_F_SNAPSHOT_AT_READY the vCPU thread that
 * writes the snapshot at the guest's READY (into a directory fd opened
 * at setup). */
static const struct rule snapshot_writer[] = {
	ALLOW(io_uring_enter, "quiescing a disk for the snapshot: waiting "
	      "for its requests in flight"),
	IOCTL(KVM_GET_REGS, "snapshot: vCPU registers"),
	IOCTL(KVM_GET_SREGS, "snapshot: vCPU system registers"),
	IOCTL(KVM_GET_FPU, "snapshot: FPU state"),
	IOCTL(KVM_GET_XSAVE, "snapshot: extended state"),
	IOCTL(KVM_GET_XCRS, "snapshot: XCR0"),
	IOCTL(KVM_GET_MSRS, "snapshot: MSRs"),
	IOCTL(KVM_GET_LAPIC, "snapshot: local APIC"),
	IOCTL(KVM_GET_MP_STATE, "snapshot: MP state"),
	IOCTL(KVM_GET_VCPU_EVENTS, "snapshot: pending events"),
	IOCTL(KVM_GET_DEBUGREGS, "snapshot: debug registers"),
	IOCTL(KVM_GET_CLOCK, "snapshot: kvmclock"),
	IOCTL(KVM_GET_IRQCHIP, "snapshot: PIC and IOAPIC"),
	IOCTL(KVM_GET_PIT2, "snapshot: PIT"),
	IOCTL(KVM_GET_TSC_KHZ, "snapshot: TSC frequency"),
	IOCTL(KVM_GET_MSR_INDEX_LIST, "snapshot: which MSRs to save (on the "
	      "/dev/kvm fd)"),
	IOCTL(KVM_SET_MSRS, "snapshot: an MSR is saved only if it can be "
	      "written back (the value just read, to a paused vCPU)"),
	IOCTL(KVM_RUN, "completing a pending exit (immediate_exit) at pause"),
	ALLOW_IF(openat, DIRFD(0), "snapshot files below the directory fd "
		 "handed in; never a path from the root"),
	ALLOW_IF(renameat, DIRFD(0), "atomic snapshot files: rename in the "
		 "directory fd"),
	ALLOW_IF(renameat2, DIRFD(0), "atomic snapshot files: rename in the "
		 "directory fd"),
	ALLOW_IF(unlinkat, DIRFD(0), "removing a half-written snapshot file"),
	ALLOW(pwrite64, "snapshot memory and working-set files"),
	ALLOW(pwritev, "snapshot memory and working-set files"),
	ALLOW(pread64, "/proc/self/pagemap (opened at start), snapshot files"),
	ALLOW(ftruncate, "sizing a sparse memory file"),
	ALLOW(fallocate, "sizing a sparse memory file"),
	ALLOW(fsync, "snapshot files reach the disk before the rename"),
	ALLOW(fdatasync, "snapshot files reach the disk before the rename"),
	ALLOW(mincore, "which guest pages are resident (working set)"),
	ALLOW(getrandom, "unique names of the temporary files renamed into "
	      "place"),
	ALLOW(sysinfo, "glibc's qsort() of a page list sizes its buffer by "
	      "the host's RAM"),
};

/* SECCOMP_F_PATHS only: the stream control socket's commands name
 * directories by path (snapshot DIR, workingset into the --restore DIR),
 * so its control thread may open and create files anywhere the process
 * can. emberd's shells never have it: they send directory fds. */
static const struct rule paths[] = {
	ALLOW(open, "snapshot DIR: files by path"),
	ALLOW(openat, "snapshot DIR: files by path"),
	ALLOW(mkdir, "snapshot DIR: creates DIR"),
	ALLOW(mkdirat, "snapshot DIR: creates DIR"),
	ALLOW(rename, "snapshot and working-set files: atomic rename"),
	ALLOW(renameat, "snapshot and working-set files: atomic rename"),
	ALLOW(renameat2, "snapshot and working-set files: atomic rename"),
	ALLOW(unlink, "removing a half-written file"),
	ALLOW(unlinkat, "removing a half-written file"),
	ALLOW(newfstatat, "checking a path is a directory"),
};

/* SECCOMP_F_VSOCK_CONNECT only: with the host side of vsock given as a
 * path, a guest connection to host port P is a Unix socket connected to
 * PATH_P (vsock_unix.c); with fds (emberd's shells) there is none. */
static const struct rule vsock_connect[] = {
	ALLOW_IF(socket, EQ32(0, AF_UNIX), "a guest connection to a host "
		 "port: Unix sockets only, never a network"),
	ALLOW(connect, "a guest connection to a host port: PATH_P"),
};

/* SECCOMP_F_UNLINK only: main removes the --control socket at exit. */
static const struct rule unlink_socket[] = {
	ALLOW(unlink, "the --control socket file at exit"),
	ALLOW(unlinkat, "the --control socket file at exit"),
};

/* The control thread before and during its restore: its control lists plus
 * building the VM's devices and state from the snapshot. It also starts the
 * restored VM's vCPU and event threads, which inherit this filter before
 * they stack their own (stacked filters must all allow a call): so this
 * kind also holds the vcpu and evloop lists (kinds[] below). */
static const struct rule restore[] = {
	IOCTL(KVM_SET_USER_MEMORY_REGION, "maps guest RAM from the snapshot"),
	IOCTL(KVM_SET_REGS, "restores vCPU registers"),
	IOCTL(KVM_SET_SREGS, "restores vCPU system registers"),
	IOCTL(KVM_SET_FPU, "restores FPU state"),
	IOCTL(KVM_SET_XSAVE, "restores extended state"),
	IOCTL(KVM_SET_XCRS, "restores XCR0"),
	IOCTL(KVM_SET_MSRS, "restores MSRs"),
	IOCTL(KVM_SET_LAPIC, "restores the local APIC"),
	IOCTL(KVM_SET_MP_STATE, "restores the MP state"),
	IOCTL(KVM_SET_VCPU_EVENTS, "restores pending events"),
	IOCTL(KVM_SET_DEBUGREGS, "restores debug registers"),
	IOCTL(KVM_SET_CPUID2, "the snapshot's CPUID"),
	IOCTL(KVM_SET_CLOCK, "restores kvmclock"),
	IOCTL(KVM_SET_IRQCHIP, "restores PIC and IOAPIC"),
	IOCTL(KVM_SET_PIT2, "restores the PIT"),
	IOCTL(KVM_SET_TSC_KHZ, "the snapshot's TSC frequency"),
	IOCTL(KVM_IOEVENTFD, "queue notifications of restored devices"),
	IOCTL(KVM_IRQFD, "interrupts of restored devices"),
	ALLOW(eventfd2, "ioeventfds, irqfds and wake-ups of devices"),
	ALLOW(io_uring_setup, "the restored disks' ring"),
	ALLOW(io_uring_register, "the ring's registered image file"),
	ALLOW(getrandom, "fresh entropy for the restored guest"),
	ALLOW(timerfd_create, "the restored vsock device's retry timer"),
	ALLOW(timerfd_settime, "that timer, armed or stopped while the "
	      "restore sets up the device"),
	ALLOW(getsockopt, "checking the vsock socket handed in (type, "
	      "domain, listening)"),
	ALLOW_IF(fcntl, EQ32(1, F_SETFL), "the vsock socket handed in made "
		 "non-blocking"),
	ALLOW(rt_sigaction, "the vCPU kick signal's handler"),
};

/* SECCOMP_F_THREADS_AT_RESTORE: the restore creates the VM's threads,
 * which start under `restore` (with the vcpu and evloop lists). */
static const struct rule restore_threads[] = {
	ALLOW_IF(clone, MASKED(0, CLONE_THREAD, CLONE_THREAD),
		 "threads of the restored VM; never a process"),
	ALLOW(set_robust_list, "a new thread's start"),
	ALLOW(rseq, "a new thread's start"),
	ALLOW(sched_getaffinity, "a new thread's start"),
	ALLOW_IF(prctl, EQ32(0, PR_SET_NAME), "a new thread names itself "
		 "(vcpuN, event) before it loads its own filter"),
};

struct list {
	const struct rule *r;
	size_t n;
	unsigned only_with;         /* 0, or the SECCOMP_F_* it needs */
};

#define L(t) { t, sizeof(t) / sizeof((t)[0]), 0 }
#define L_IF(t, f) { t, sizeof(t) / sizeof((t)[0]), f }
#define MAX_LISTS 10
static const struct {
	const char *name;
	struct list l[MAX_LISTS];
} kinds[SECCOMP_NR_THREADS] = {
	[SECCOMP_THREAD_MAIN] = { "main", { L(common), L(main_thread),
				  L_IF(unlink_socket, SECCOMP_F_UNLINK) } },
	[SECCOMP_THREAD_VCPU] = { "vcpu", { L(common), L(vcpu),
				  L_IF(snapshot_writer,
				       SECCOMP_F_SNAPSHOT_AT_READY),
				  L_IF(vsock_connect,
				       SECCOMP_F_VSOCK_CONNECT) } },
	[SECCOMP_THREAD_EVLOOP] = { "evloop", { L(common), L(evloop),
				    L_IF(vsock_connect,
					 SECCOMP_F_VSOCK_CONNECT) } },
	[SECCOMP_THREAD_CONTROL] = { "control", { L(common), L(control),
				     L(snapshot_writer),
				     L_IF(paths, SECCOMP_F_PATHS) } },
	[SECCOMP_THREAD_RESTORE] = { "restore", { L(common), L(control),
				     L(snapshot_writer), L(restore),
				     L_IF(restore_threads,
					  SECCOMP_F_THREADS_AT_RESTORE),
				     L_IF(vcpu, SECCOMP_F_THREADS_AT_RESTORE),
				     L_IF(evloop,
					  SECCOMP_F_THREADS_AT_RESTORE),
				     L_IF(paths, SECCOMP_F_PATHS),
				     L_IF(vsock_connect,
					  SECCOMP_F_VSOCK_CONNECT) } },
};

/* ---- compiling and loading --------------------------------------------- */

static enum seccomp_mode mode;
static struct sock_fprog progs[SECCOMP_NR_THREADS];

const char *seccomp_thread_name(enum seccomp_thread kind)
{
	return (unsigned)kind < SECCOMP_NR_THREADS ? kinds[kind].name : "?";
}

enum seccomp_mode seccomp_get_mode(void)
{
	return mode;
}

static int add_rule(scmp_filter_ctx ctx, const struct rule *r, pid_t self)
{
	struct scmp_arg_cmp cmp[2];
	unsigned n = 0;
	uint32_t action = r->errno_ret ? SCMP_ACT_ERRNO((uint32_t)r->errno_ret)
				       : SCMP_ACT_ALLOW;

	for (unsigned i = 0; i < 2; i++) {
		const struct rule_arg *a = &r->a[i];

		if (a->kind == ARG_NONE)
			continue;
		cmp[n++] = (struct scmp_arg_cmp){
			.arg = a->arg,
			.op = SCMP_CMP_MASKED_EQ,
			.datum_a = a->mask,
			.datum_b = a->kind == ARG_SELF ? (uint64_t)(uint32_t)self
						       : a->v,
		};
	}
	return seccomp_rule_add_array(ctx, action, r->nr, n, cmp);
}

/* libseccomp writes BPF to an fd only: a memfd, read back into memory. */
static int export_prog(scmp_filter_ctx ctx, struct sock_fprog *prog)
{
	struct sock_filter *f = NULL;
	off_t size;
	int fd, ret;

	fd = memfd_create("ember-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = seccomp_export_bpf(ctx, fd);
	if (ret < 0)
		goto out;
	size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % (off_t)sizeof(*f) ||
	    size / (off_t)sizeof(*f) > BPF_MAXINSNS) {
		ret = -E2BIG;
		goto out;
	}
	f = malloc((size_t)size);
	if (!f) {
		ret = -ENOMEM;
		goto out;
	}
	if (pread(fd, f, (size_t)size, 0) != size) {
		ret = -EIO;
		goto out;
	}
	prog->filter = f;
	prog->len = (unsigned short)(size / (off_t)sizeof(*f));
	f = NULL;
	ret = 0;
out:
	free(f);
	close(fd);
	return ret;
}

static int build(enum seccomp_thread k, uint32_t deflt, unsigned flags,
		 pid_t self, char *err, size_t errlen)
{
	scmp_filter_ctx ctx = seccomp_init(deflt);
	int ret;

	if (!ctx)
		return errbuf_fail(err, errlen, -ENOMEM,
				   "seccomp: cannot start the %s filter",
				   kinds[k].name);
	/* A 32-bit system call (int 0x80) or an x32 one: always fatal. */
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
			       SCMP_ACT_KILL_PROCESS);
	for (unsigned l = 0; !ret && l < MAX_LISTS; l++) {
		if (kinds[k].l[l].only_with & ~flags)
			continue;
		for (size_t i = 0; !ret && i < kinds[k].l[l].n; i++) {
			const struct rule *r = &kinds[k].l[l].r[i];

			ret = add_rule(ctx, r, self);
			/* The same call allowed twice (common and own list)
			 * is not an error. */
			if (ret == -EEXIST)
				ret = 0;
			if (ret)
				ret = errbuf_fail(err, errlen, ret,
						  "seccomp: %s filter: cannot "
						  "add system call %d (%s): %s",
						  kinds[k].name, r->nr, r->why,
						  strerror(-ret));
		}
	}
	if (!ret) {
		ret = export_prog(ctx, &progs[k]);
		if (ret)
			ret = errbuf_fail(err, errlen, ret,
					  "seccomp: cannot compile the %s "
					  "filter: %s", kinds[k].name,
					  strerror(-ret));
	}
	seccomp_release(ctx);
	return ret;
}

int seccomp_prepare(enum seccomp_mode m, unsigned flags, char *err,
		    size_t errlen)
{
	uint32_t deflt = m == SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
	pid_t self = getpid();
	int ret = 0;

	if (mode != SECCOMP_OFF)
		return errbuf_fail(err, errlen, -EALREADY,
				   "seccomp: filters already prepared");
	if (m == SECCOMP_OFF)
		return 0;
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL)
		return errbuf_fail(err, errlen, -ENOSYS,
				   "seccomp: not supported by this kernel");
	for (unsigned k = 0; !ret && k < SECCOMP_NR_THREADS; k++)
		ret = build((enum seccomp_thread)k, deflt, flags, self, err,
			    errlen);
	if (ret) {
		for (unsigned k = 0; k < SECCOMP_NR_THREADS; k++) {
			free(progs[k].filter);
			progs[k].filter = NULL;
		}
		return ret;
	}
	mode = m;
	return 0;
}

#ifdef EMBER_TESTING
/*
 * Test hook, compiled into the sanitized test build only (EMBER_TESTING;
 * ember-vmm itself has no such code: tests/integration/seccomp-vmm checks
 * its binary). EMBER_TEST_SECCOMP_TRIP=<kind>[:<call>] makes that thread,
 * right after loading its filter, make a call no list allows, so that a
 * test can watch the VMM die of SIGSYS for each kind:
 *   socket  an AF_INET socket (no network, no socket after setup): default
 *   fork    clone() of a process (no CLONE_THREAD): no fork bombs
 *   exec    execve("/bin/true")
 *   open    open("/etc/passwd") from the root (no path after setup)
 *   timer, epoll, setname
 *           timer_create, epoll_wait (on fd -1) and PR_SET_NAME: a
 *           vCPU's, an event thread's and a new thread's calls, which
 *           only the threads that make them may
 * A trip that returns means the filter let the call through: the process
 * then exits 99, which no test accepts.
 */
static void test_trip(enum seccomp_thread kind)
{
	const char *t = getenv("EMBER_TEST_SECCOMP_TRIP");
	size_t n = strlen(kinds[kind].name);
	const char *call;

	if (!t || strncmp(t, kinds[kind].name, n) || (t[n] && t[n] != ':'))
		return;
	call = t[n] ? t + n + 1 : "socket";
	if (!strcmp(call, "fork")) {
		/* The raw call, as a fork bomb would make it (glibc's fork()
		 * and the sanitizer's interceptor around it add calls of their
		 * own that could trip first). */
		long pid = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);

		if (pid == 0)
			_exit(0);
	} else if (!strcmp(call, "exec")) {
		char *const argv[] = { (char *)"true", NULL };

		syscall(SYS_execve, "/bin/true", argv, environ);
	} else if (!strcmp(call, "open")) {
		syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY);
	} else if (!strcmp(call, "timer")) {
		syscall(SYS_timer_create, CLOCK_MONOTONIC, NULL, NULL);
	} else if (!strcmp(call, "epoll")) {
		syscall(SYS_epoll_wait, -1, NULL, 0, 0);
	} else if (!strcmp(call, "setname")) {
		syscall(SYS_prctl, PR_SET_NAME, "tripped", 0L, 0L, 0L);
	} else {
		socket(AF_INET, SOCK_STREAM, 0);
	}
	fprintf(stderr, "ember-vmm: EMBER_TEST_SECCOMP_TRIP=%s: the %s "
		"filter allowed it\n", t, kinds[kind].name);
	_exit(99);
}
#endif

int seccomp_apply(enum seccomp_thread kind)
{
	if (mode == SECCOMP_OFF)
		return 0;
	if ((unsigned)kind >= SECCOMP_NR_THREADS)
		return -EINVAL;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &progs[kind]) < 0)
		return -errno;
#ifdef EMBER_TESTING
	test_trip(kind);
#endif
	return 0;
}
