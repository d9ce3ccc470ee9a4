/*
 * Unit tests: the VMM's per-thread seccomp allow-lists (vmm/seccomp.c).
 *
 * Each case forks a child that compiles the filters, loads one kind on
 * itself and then makes system calls: an allowed one must work, anything
 * else must kill the child with SIGSYS (SECCOMP_RET_KILL_PROCESS). The
 * argument filters are checked both ways: ioctl by request number (on real
 * KVM fds when /dev/kvm is there), no executable mappings, threads but no
 * processes, files only below a directory fd, signals only to itself, and
 * no 32-bit system calls.
 */
// link: vmm/seccomp.c vmm/log.c
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "seccomp.h"

enum outcome { EXITS_0, KILLED_SIGSYS };

static unsigned prep_flags; /* the SECCOMP_F_* in_child() compiles with */

/* Runs fn(kind) in a child that has loaded kind's filter first. fn returns
 * the child's exit status (0 = every check passed). */
static void in_child(enum seccomp_thread kind, enum seccomp_mode mode,
		     int (*fn)(enum seccomp_thread), enum outcome want)
{
	char err[256];
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (seccomp_prepare(mode, prep_flags, err, sizeof(err)) < 0)
			_exit(100);
		if (seccomp_apply(kind) < 0)
			_exit(101);
		_exit(fn(kind));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (want == EXITS_0) {
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fprintf(stderr, "%s: status %#x\n",
				seccomp_thread_name(kind), status);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	} else {
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSYS)
			fprintf(stderr, "%s: status %#x, want SIGSYS\n",
				seccomp_thread_name(kind), status);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGSYS);
	}
}

static int open_socket(enum seccomp_thread k)
{
	(void)k;
	socket(AF_INET, SOCK_STREAM, 0);
	return 0;
}

/* What every thread may do: stderr, futexes, the clock, its own pid and
 * signals to its own threads. */
static int basics(enum seccomp_thread k)
{
	struct timespec ts;
	int futex_word = 0;

	(void)k;
	if (write(2, "", 0) != 0)
		return 1;
	if (syscall(SYS_futex, &futex_word, 1 /* FUTEX_WAKE */, 1, NULL) < 0)
		return 2;
	if (syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) < 0)
		return 3;
	if (syscall(SYS_getpid) != getpid())
		return 4;
	if (syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), 0) < 0)
		return 5;
	return 0;
}

static void test_each_kind_allows_basics(void **state)
{
	(void)state;
	for (unsigned k = 0; k < SECCOMP_NR_THREADS; k++)
		in_child((enum seccomp_thread)k, SECCOMP_KILL, basics, EXITS_0);
}

static void test_each_kind_kills_socket(void **state)
{
	(void)state;
	for (unsigned k = 0; k < SECCOMP_NR_THREADS; k++)
		in_child((enum seccomp_thread)k, SECCOMP_KILL, open_socket,
			 KILLED_SIGSYS);
}

static int do_fork(enum seccomp_thread k)
{
	pid_t pid;

	(void)k;
	pid = fork();
	if (pid == 0)
		_exit(0);
	return 0;
}

static int clone3_is_enosys(enum seccomp_thread k)
{
	char args[88] = { 0 };

	(void)k;
	if (syscall(SYS_clone3, args, sizeof(args)) != -1 || errno != ENOSYS)
		return 1;
	return 0;
}

/* A fork bomb is impossible: no thread kind may create a process. */
static void test_no_fork(void **state)
{
	(void)state;
	for (unsigned k = 0; k < SECCOMP_NR_THREADS; k++) {
		in_child((enum seccomp_thread)k, SECCOMP_KILL, do_fork,
			 KILLED_SIGSYS);
		in_child((enum seccomp_thread)k, SECCOMP_KILL, clone3_is_enosys,
			 EXITS_0);
	}
}

static void *thread_fn(void *arg)
{
	return arg;
}

static int make_thread(enum seccomp_thread k)
{
	pthread_t t;
	void *ret = NULL;

	(void)k;
	if (pthread_create(&t, NULL, thread_fn, (void *)0x42))
		return 1;
	pthread_join(t, &ret);
	return ret == (void *)0x42 ? 0 : 2;
}

/* Only the control thread of a --threads-at-restore shell, restoring a
 * VM, starts threads (clone with CLONE_THREAD, after clone3's ENOSYS). */
static void test_threads_only_in_restore(void **state)
{
	(void)state;
	/* A default shell's threads exist before its restore: none then. */
	in_child(SECCOMP_THREAD_RESTORE, SECCOMP_KILL, make_thread,
		 KILLED_SIGSYS);
	prep_flags = SECCOMP_F_THREADS_AT_RESTORE;
	in_child(SECCOMP_THREAD_RESTORE, SECCOMP_KILL, make_thread, EXITS_0);
	prep_flags = 0;
	in_child(SECCOMP_THREAD_VCPU, SECCOMP_KILL, make_thread, KILLED_SIGSYS);
	in_child(SECCOMP_THREAD_EVLOOP, SECCOMP_KILL, make_thread,
		 KILLED_SIGSYS);
}

static int exec_mapping(enum seccomp_thread k)
{
	(void)k;
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
	     -1, 0);
	return 0;
}

static int exec_protect(enum seccomp_thread k)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)k;
	if (p == MAP_FAILED)
		return 1;
	mprotect(p, 4096, PROT_READ | PROT_EXEC);
	return 0;
}

static void test_no_executable_memory(void **state)
{
	(void)state;
	for (unsigned k = 0; k < SECCOMP_NR_THREADS; k++) {
		in_child((enum seccomp_thread)k, SECCOMP_KILL, exec_mapping,
			 KILLED_SIGSYS);
		in_child((enum seccomp_thread)k, SECCOMP_KILL, exec_protect,
			 KILLED_SIGSYS);
	}
}

static int dirfd_for_test = -1;

static int open_below_dirfd(enum seccomp_thread k)
{
	int fd;

	(void)k;
	fd = openat(dirfd_for_test, "state.tmp", O_CREAT | O_WRONLY | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return 1;
	if (pwrite(fd, "x", 1, 0) != 1 || fsync(fd) < 0)
		return 2;
	close(fd);
	if (renameat(dirfd_for_test, "state.tmp", dirfd_for_test, "state") < 0)
		return 3;
	return unlinkat(dirfd_for_test, "state", 0) < 0 ? 4 : 0;
}

static int open_from_root(enum seccomp_thread k)
{
	(void)k;
	openat(AT_FDCWD, "/etc/passwd", O_RDONLY);
	return 0;
}

/* Files: only the control thread, and only below a directory fd. */
static void test_files_only_below_dirfd(void **state)
{
	char dir[] = "/tmp/ember-seccomp-XXXXXX";

	(void)state;
	assert_non_null(mkdtemp(dir));
	dirfd_for_test = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	assert_true(dirfd_for_test >= 0);
	in_child(SECCOMP_THREAD_CONTROL, SECCOMP_KILL, open_below_dirfd,
		 EXITS_0);
	in_child(SECCOMP_THREAD_CONTROL, SECCOMP_KILL, open_from_root,
		 KILLED_SIGSYS);
	in_child(SECCOMP_THREAD_RESTORE, SECCOMP_KILL, open_from_root,
		 KILLED_SIGSYS);
	in_child(SECCOMP_THREAD_VCPU, SECCOMP_KILL, open_below_dirfd,
		 KILLED_SIGSYS);
	in_child(SECCOMP_THREAD_EVLOOP, SECCOMP_KILL, open_below_dirfd,
		 KILLED_SIGSYS);
	in_child(SECCOMP_THREAD_MAIN, SECCOMP_KILL, open_from_root,
		 KILLED_SIGSYS);
	close(dirfd_for_test);
	assert_int_equal(rmdir(dir), 0);
}

static pid_t parent; /* read before the fork: getppid is on no list */

static int signal_parent(enum seccomp_thread k)
{
	(void)k;
	syscall(SYS_tgkill, parent, parent, 0);
	return 0;
}

static int kill_parent(enum seccomp_thread k)
{
	(void)k;
	kill(parent, 0);
	return 0;
}

static void test_signals_only_to_itself(void **state)
{
	(void)state;
	parent = getpid();
	for (unsigned k = 0; k < SECCOMP_NR_THREADS; k++) {
		in_child((enum seccomp_thread)k, SECCOMP_KILL, signal_parent,
			 KILLED_SIGSYS);
		in_child((enum seccomp_thread)k, SECCOMP_KILL, kill_parent,
			 KILLED_SIGSYS);
	}
}

static int i386_syscall(enum seccomp_thread k)
{
	long ret;

	(void)k;
	/* getpid through the 32-bit entry: another architecture for
	 * seccomp, refused as a whole. */
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
	return 0;
}

static void test_no_32bit_calls(void **state)
{
	(void)state;
	in_child(SECCOMP_THREAD_VCPU, SECCOMP_KILL, i386_syscall,
		 KILLED_SIGSYS);
}

/* KVM fds made before the filter, used after it. */
static int kvm_fd = -1, vm_fd = -1, vcpu_fd = -1;

static int vcpu_ioctls(enum seccomp_thread k)
{
	struct kvm_regs regs;

	(void)k;
	/* Allowed by request number: it reaches KVM (whatever KVM thinks
	 * of a vCPU that never ran). */
	ioctl(vcpu_fd, KVM_GET_REGS, &regs);
	return 0;
}

static int create_vm(enum seccomp_thread k)
{
	(void)k;
	ioctl(kvm_fd, KVM_CREATE_VM, 0);
	return 0;
}

static int map_memory(enum seccomp_thread k)
{
	struct kvm_userspace_memory_region r = { .slot = 0 };

	(void)k;
	/* Reaches KVM (the filter let it through); a zero-sized slot on a
	 * fresh VM is accepted. */
	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 && errno == ENOSYS)
		return 1;
	return 0;
}

static int other_ioctl(enum seccomp_thread k)
{
	int n;

	(void)k;
	ioctl(2, FIONREAD, &n);
	return 0;
}

static void test_ioctl_by_request(void **state)
{
	(void)state;
	in_child(SECCOMP_THREAD_EVLOOP, SECCOMP_KILL, other_ioctl,
		 KILLED_SIGSYS);
	in_child(SECCOMP_THREAD_CONTROL, SECCOMP_KILL, other_ioctl,
		 KILLED_SIGSYS);
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0)
		skip();
	vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	assert_true(vm_fd >= 0);
	vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	assert_true(vcpu_fd >= 0);
	in_child(SECCOMP_THREAD_VCPU, SECCOMP_KILL, vcpu_ioctls, EXITS_0);
	for (unsigned k = 0; k < SECCOMP_NR_THREADS; k++)
		in_child((enum seccomp_thread)k, SECCOMP_KILL, create_vm,
			 KILLED_SIGSYS);
	in_child(SECCOMP_THREAD_RESTORE, SECCOMP_KILL, map_memory, EXITS_0);
	in_child(SECCOMP_THREAD_CONTROL, SECCOMP_KILL, map_memory,
		 KILLED_SIGSYS);
	in_child(SECCOMP_THREAD_VCPU, SECCOMP_KILL, map_memory, KILLED_SIGSYS);
	close(vcpu_fd);
	close(vm_fd);
	close(kvm_fd);
}

/* Stacking: the control thread loads RESTORE, then CONTROL once its
 * restore is done; what only RESTORE allowed is gone. */
static int restore_then_control(enum seccomp_thread k)
{
	(void)k;
	if (seccomp_apply(SECCOMP_THREAD_CONTROL) < 0)
		return 1;
	make_thread(k);
	return 0;
}

static void test_stacking(void **state)
{
	(void)state;
	in_child(SECCOMP_THREAD_RESTORE, SECCOMP_KILL, restore_then_control,
		 KILLED_SIGSYS);
}

static int socket_works(enum seccomp_thread k)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)k;
	return fd >= 0 ? 0 : 1;
}

static void test_log_and_off_modes(void **state)
{
	char err[256];

	(void)state;
	/* LOG: the call is made (and logged), the thread lives on. */
	in_child(SECCOMP_THREAD_VCPU, SECCOMP_LOG, socket_works, EXITS_0);
	/* OFF: apply does nothing. */
	in_child(SECCOMP_THREAD_VCPU, SECCOMP_OFF, socket_works, EXITS_0);
	/* Bad arguments, in this (unfiltered) process: OFF changes
	 * nothing, so apply of a bad kind is still 0 here. */
	assert_int_equal(seccomp_get_mode(), SECCOMP_OFF);
	assert_int_equal(seccomp_prepare(SECCOMP_OFF, 0, err, sizeof(err)), 0);
	assert_int_equal(seccomp_apply(SECCOMP_NR_THREADS), 0);
	assert_string_equal(seccomp_thread_name(SECCOMP_THREAD_EVLOOP),
			    "evloop");
	assert_string_equal(seccomp_thread_name(SECCOMP_NR_THREADS), "?");
}

static int prepare_twice(enum seccomp_thread k)
{
	char err[256];

	if (seccomp_prepare(SECCOMP_KILL, 0, err, sizeof(err)) != -EALREADY)
		return 1;
	return seccomp_apply((enum seccomp_thread)(k + 100)) == -EINVAL ? 0 : 2;
}

static void test_errors(void **state)
{
	(void)state;
	in_child(SECCOMP_THREAD_MAIN, SECCOMP_KILL, prepare_twice, EXITS_0);
}

static int unix_socket(enum seccomp_thread k)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	(void)k;
	if (fd < 0)
		return 1;
	close(fd);
	return 0;
}

/* What a configuration adds is there only with its flag, and only that. */
static void test_config_lists(void **state)
{
	char dir[] = "/tmp/ember-seccomp-XXXXXX";

	(void)state;
	assert_non_null(mkdtemp(dir));
	dirfd_for_test = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	assert_true(dirfd_for_test >= 0);
	/* --snapshot-at-ready: the vCPU writes below the directory fd. */
	prep_flags = SECCOMP_F_SNAPSHOT_AT_READY;
	in_child(SECCOMP_THREAD_VCPU, SECCOMP_KILL, open_below_dirfd, EXITS_0);
	in_child(SECCOMP_THREAD_VCPU, SECCOMP_KILL, open_from_root,
		 KILLED_SIGSYS);
	in_child(SECCOMP_THREAD_EVLOOP, SECCOMP_KILL, open_below_dirfd,
		 KILLED_SIGSYS);
	/* --control PATH: the control thread may open paths; no other. */
	prep_flags = SECCOMP_F_PATHS;
	in_child(SECCOMP_THREAD_CONTROL, SECCOMP_KILL, open_from_root, EXITS_0);
	in_child(SECCOMP_THREAD_VCPU, SECCOMP_KILL, open_from_root,
		 KILLED_SIGSYS);
	in_child(SECCOMP_THREAD_MAIN, SECCOMP_KILL, open_from_root,
		 KILLED_SIGSYS);
	/* --vsock PATH: Unix sockets on the device threads, never AF_INET. */
	prep_flags = SECCOMP_F_VSOCK_CONNECT;
	in_child(SECCOMP_THREAD_VCPU, SECCOMP_KILL, unix_socket, EXITS_0);
	in_child(SECCOMP_THREAD_EVLOOP, SECCOMP_KILL, unix_socket, EXITS_0);
	in_child(SECCOMP_THREAD_EVLOOP, SECCOMP_KILL, open_socket,
		 KILLED_SIGSYS);
	in_child(SECCOMP_THREAD_CONTROL, SECCOMP_KILL, unix_socket,
		 KILLED_SIGSYS);
	prep_flags = 0;
	in_child(SECCOMP_THREAD_VCPU, SECCOMP_KILL, unix_socket, KILLED_SIGSYS);
	in_child(SECCOMP_THREAD_VCPU, SECCOMP_KILL, open_below_dirfd,
		 KILLED_SIGSYS);
	close(dirfd_for_test);
	assert_int_equal(rmdir(dir), 0);
}

/* A --threads-at-restore shell's vCPU thread: created under RESTORE, then
 * VCPU on top; what a vCPU needs must pass both (a preemption timer, the
 * WAIT poll). */
static int restore_then_vcpu(enum seccomp_thread k)
{
	struct sigevent sev;
	timer_t t;

	(void)k;
	if (seccomp_apply(SECCOMP_THREAD_VCPU) < 0)
		return 1;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_NONE;
	if (timer_create(CLOCK_MONOTONIC, &sev, &t) < 0)
		return 2;
	timer_delete(t);
	if (ppoll(NULL, 0, &(struct timespec){ 0, 1000 }, NULL) < 0)
		return 3;
	/* KVM_IRQ_LINE on no fd: allowed (EBADF), not killed. */
	if (ioctl(-1, KVM_IRQ_LINE, NULL) == 0 || errno != EBADF)
		return 4;
	return 0;
}

static int restore_then_evloop(enum seccomp_thread k)
{
	struct epoll_event ev;

	(void)k;
	if (seccomp_apply(SECCOMP_THREAD_EVLOOP) < 0)
		return 1;
	/* The epoll fd is made at setup in the VMM: no fd here. */
	return epoll_wait(-1, &ev, 1, 0) < 0 && errno == EBADF ? 0 : 2;
}

/* With --threads-at-restore the restore list holds what its threads do;
 * without, it does not (the vCPU's timer, the event loop's wait kill). */
static void test_restore_holds_its_threads_lists(void **state)
{
	(void)state;
	prep_flags = SECCOMP_F_THREADS_AT_RESTORE;
	in_child(SECCOMP_THREAD_RESTORE, SECCOMP_KILL, restore_then_vcpu,
		 EXITS_0);
	in_child(SECCOMP_THREAD_RESTORE, SECCOMP_KILL, restore_then_evloop,
		 EXITS_0);
	prep_flags = 0;
	in_child(SECCOMP_THREAD_RESTORE, SECCOMP_KILL, restore_then_vcpu,
		 KILLED_SIGSYS);
	in_child(SECCOMP_THREAD_RESTORE, SECCOMP_KILL, restore_then_evloop,
		 KILLED_SIGSYS);
}

/* A snapshot quiesces the disks on the thread that asked for it (the
 * control thread, or a vCPU with --snapshot-at-ready): an io_uring disk
 * waits for its requests in flight with io_uring_enter. Missing from the
 * control list, it killed a VMM paused mid-I/O (snapshot-blk, --seccomp). */
static int disk_quiesce(enum seccomp_thread k)
{
	(void)k;
	/* No ring here: EBADF, not SIGSYS. */
	return syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0) < 0 &&
			       errno == EBADF ? 0 : 1;
}

static void test_snapshot_quiesces_disks(void **state)
{
	(void)state;
	in_child(SECCOMP_THREAD_CONTROL, SECCOMP_KILL, disk_quiesce, EXITS_0);
	in_child(SECCOMP_THREAD_RESTORE, SECCOMP_KILL, disk_quiesce, EXITS_0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_kind_allows_basics),
		cmocka_unit_test(test_each_kind_kills_socket),
		cmocka_unit_test(test_no_fork),
		cmocka_unit_test(test_threads_only_in_restore),
		cmocka_unit_test(test_no_executable_memory),
		cmocka_unit_test(test_files_only_below_dirfd),
		cmocka_unit_test(test_signals_only_to_itself),
		cmocka_unit_test(test_no_32bit_calls),
		cmocka_unit_test(test_ioctl_by_request),
		cmocka_unit_test(test_stacking),
		cmocka_unit_test(test_log_and_off_modes),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_config_lists),
		cmocka_unit_test(test_restore_holds_its_threads_lists),
		cmocka_unit_test(test_snapshot_quiesces_disks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
