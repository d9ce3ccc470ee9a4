/*
 * syscall.c - the Linux x86-64 system call table of the micro guest.
 *
 * micro_syscall() runs on the kernel stack with the handler's registers
 * (entry.S): number in rax, arguments in rdi, rsi, rdx, r10, r8, r9, result
 * (or -errno) back in rax, as the Linux syscall ABI specifies. Every pointer
 * argument is checked with mm_access_ok() before use. A number we do not
 * serve returns -ENOSYS and is reported once per number on the serial
 * console and as a LOG frame to the host. docs/micro-guest.md lists what
 * each call does here.
 */
#include "kernel.h"

enum {
	NR_read = 0, NR_write = 1, NR_open = 2, NR_close = 3, NR_stat = 4,
	NR_fstat = 5, NR_lstat = 6, NR_poll = 7, NR_lseek = 8, NR_mmap = 9,
	NR_mprotect = 10, NR_munmap = 11, NR_brk = 12, NR_rt_sigaction = 13,
	NR_rt_sigprocmask = 14, NR_rt_sigreturn = 15, NR_ioctl = 16,
	NR_pread64 = 17,
	NR_pwrite64 = 18, NR_readv = 19, NR_writev = 20, NR_access = 21,
	NR_pipe = 22, NR_select = 23, NR_sched_yield = 24, NR_mremap = 25,
	NR_madvise = 28, NR_dup = 32, NR_dup2 = 33, NR_pause = 34,
	NR_nanosleep = 35, NR_getitimer = 36, NR_alarm = 37,
	NR_setitimer = 38, NR_getpid = 39, NR_fork = 57, NR_vfork = 58,
	NR_execve = 59,
	NR_exit = 60, NR_wait4 = 61, NR_kill = 62, NR_uname = 63,
	NR_fcntl = 72, NR_ftruncate = 77, NR_getcwd = 79, NR_chdir = 80,
	NR_fchdir = 81, NR_mkdir = 83, NR_rmdir = 84, NR_unlink = 87,
	NR_readlink = 89, NR_umask = 95,
	NR_gettimeofday = 96, NR_getrlimit = 97, NR_getrusage = 98,
	NR_sysinfo = 99, NR_getuid = 102, NR_getgid = 104, NR_geteuid = 107,
	NR_getegid = 108, NR_getppid = 110, NR_getpgrp = 111,
	NR_rt_sigpending = 127, NR_rt_sigsuspend = 130,
	NR_sigaltstack = 131, NR_prctl = 157, NR_arch_prctl = 158,
	NR_gettid = 186, NR_epoll_create = 213, NR_epoll_wait = 232,
	NR_epoll_ctl = 233,
	NR_tkill = 200, NR_time = 201, NR_futex = 202,
	NR_sched_getaffinity = 204, NR_getdents64 = 217,
	NR_set_tid_address = 218, NR_clock_gettime = 228,
	NR_clock_getres = 229, NR_clock_nanosleep = 230, NR_exit_group = 231,
	NR_tgkill = 234, NR_openat = 257, NR_mkdirat = 258,
	NR_newfstatat = 262, NR_unlinkat = 263, NR_readlinkat = 267,
	NR_faccessat = 269, NR_pselect6 = 270, NR_ppoll = 271,
	NR_set_robust_list = 273, NR_get_robust_list = 274,
	NR_epoll_pwait = 281, NR_timerfd_create = 283, NR_eventfd = 284,
	NR_timerfd_settime = 286, NR_timerfd_gettime = 287, NR_eventfd2 = 290,
	NR_epoll_create1 = 291, NR_dup3 = 292, NR_pipe2 = 293,
	NR_prlimit64 = 302, NR_getrandom = 318, NR_memfd_create = 319,
	NR_statx = 332, NR_rseq = 334, NR_faccessat2 = 439,
	NR_epoll_pwait2 = 441, NR_sendto = 44, NR_recvfrom = 45,
	NR_sendmsg = 46, NR_recvmsg = 47, NR_shutdown = 48,
	NR_getsockname = 51, NR_getpeername = 52, NR_socketpair = 53,
	NR_setsockopt = 54, NR_getsockopt = 55,
};

#define AT_FDCWD (-100)
#define ARCH_SET_GS 0x1001
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003
#define ARCH_GET_GS 0x1004
#define GRND_NONBLOCK 1
#define GRND_RANDOM 2
#define GRND_INSECURE 4
#define RLIMIT_STACK 3
#define RLIMIT_NOFILE 7
#define RLIM_INFINITY (~0ULL)

long micro_unsupported(uint64_t nr, long err)
{
	static uint64_t seen[1024 / 64];
	static bool seen_big;
	char msg[96];
	int n;

	if (nr < 1024) {
		if (seen[nr / 64] & (1ULL << (nr % 64)))
			return err;
		seen[nr / 64] |= 1ULL << (nr % 64);
	} else {
		if (seen_big)
			return err;
		seen_big = true;
	}
	n = ksnprintf(msg, sizeof(msg), "micro: unsupported syscall %lu -> %s\n",
		      nr, err == -EAGAIN ? "EAGAIN" : "ENOSYS");
	serial_write(msg, (size_t)MIN(n, (int)sizeof(msg) - 1));
	stdio_log(msg, (size_t)MIN(n, (int)sizeof(msg) - 1));
	return err;
}

struct iovec_k {
	uint64_t base, len;
};

/* readv/writev: each iovec is checked; stops at the first short transfer,
 * as Linux does for a stream. */
static long do_iov(int fd, const void *iovp, uint64_t cnt, bool wr)
{
	struct iovec_k iov;
	long total = 0;

	if (cnt > 1024)
		return -EINVAL;
	if (!mm_access_ok(iovp, cnt * sizeof(iov)))
		return -EFAULT;
	for (uint64_t i = 0; i < cnt; i++) {
		long n;

		memcpy(&iov, (const char *)iovp + i * sizeof(iov), sizeof(iov));
		if (!iov.len)
			continue;
		if (!mm_access_ok((void *)(uintptr_t)iov.base, iov.len))
			return total ? total : -EFAULT;
		n = wr ? fs_write(fd, (void *)(uintptr_t)iov.base, iov.len) :
			 fs_read(fd, (void *)(uintptr_t)iov.base, iov.len);
		if (n < 0)
			return total ? total : n;
		total += n;
		if ((uint64_t)n < iov.len)
			break;
	}
	return total;
}

static long do_rw(int fd, void *buf, uint64_t len, bool wr)
{
	if (!mm_access_ok(buf, len))
		return -EFAULT;
	return wr ? fs_write(fd, buf, len) : fs_read(fd, buf, len);
}

/* No terminals here (TIOCGWINSZ et al. say "not a terminal"); FIONREAD and
 * FIONBIO work on every fd, FIOCLEX/FIONCLEX too. */
#define TCGETS 0x5401
#define FIONREAD 0x541b
#define FIONBIO 0x5421
#define FIONCLEX 0x5450
#define FIOCLEX 0x5451
static long do_ioctl(int fd, uint64_t req, void *arg)
{
	struct ofd *d = fs_get(fd);
	int v;

	if (!d)
		return -EBADF;
	switch (req) {
	case FIONREAD:
		if (!mm_access_ok(arg, 4))
			return -EFAULT;
		v = d->ops->size ? (int)MIN(d->ops->size(d) - (int64_t)(
				d->ops->pread ? d->pos : 0), INT32_MAX) : 0;
		v = MAX(v, 0);
		memcpy(arg, &v, 4);
		return 0;
	case FIONBIO:
		if (!mm_access_ok(arg, 4))
			return -EFAULT;
		memcpy(&v, arg, 4);
		return fs_fcntl(fd, 4 /* F_SETFL */, v ? d->flags | O_NONBLOCK_FLAG
				: d->flags & ~(uint32_t)O_NONBLOCK_FLAG);
	case FIOCLEX:
	case FIONCLEX:
		return fs_fcntl(fd, 2 /* F_SETFD */, req == FIOCLEX);
	default:
		return -ENOTTY;
	}
}

/* prctl: the options that only describe or name things. Unknown ones are
 * -EINVAL, as Linux answers. */
#define PR_SET_PDEATHSIG 1
#define PR_GET_PDEATHSIG 2
#define PR_GET_DUMPABLE 3
#define PR_SET_DUMPABLE 4
#define PR_SET_NAME 15
#define PR_GET_NAME 16
#define PR_GET_SECCOMP 21
#define PR_CAPBSET_READ 23
#define PR_SET_TIMERSLACK 29
#define PR_GET_TIMERSLACK 30
#define PR_SET_CHILD_SUBREAPER 36
#define PR_GET_CHILD_SUBREAPER 37
#define PR_SET_NO_NEW_PRIVS 38
#define PR_GET_NO_NEW_PRIVS 39
#define PR_SET_THP_DISABLE 41
#define PR_GET_THP_DISABLE 42
static long do_prctl(int op, uint64_t a1, uint64_t a2)
{
	static int dumpable = 1, no_new_privs, thp_disable, subreaper, pdeath;
	static uint64_t slack = 50000;
	void *p1 = (void *)(uintptr_t)a1;

	(void)a2;
	switch (op) {
	case PR_SET_NAME:
		for (size_t i = 0; i < 16; i++) {
			if (!mm_access_ok((char *)p1 + i, 1))
				return -EFAULT;
			sched_cur->comm[i] = i < 15 ? ((char *)p1)[i] : 0;
			if (!sched_cur->comm[i])
				break;
		}
		return 0;
	case PR_GET_NAME:
		if (!mm_access_ok(p1, 16))
			return -EFAULT;
		memcpy(p1, sched_cur->comm, 16);
		return 0;
	case PR_SET_PDEATHSIG:
		if (a1 > 64)
			return -EINVAL;
		pdeath = (int)a1;
		return 0;
	case PR_GET_PDEATHSIG:
		if (!mm_access_ok(p1, 4))
			return -EFAULT;
		memcpy(p1, &pdeath, 4);
		return 0;
	case PR_GET_DUMPABLE:
		return dumpable;
	case PR_SET_DUMPABLE:
		if (a1 > 1)
			return -EINVAL;
		dumpable = (int)a1;
		return 0;
	case PR_GET_SECCOMP:
		return 0;
	case PR_CAPBSET_READ:
		return a1 <= 40 ? 1 : -EINVAL; /* root with every capability */
	case PR_SET_TIMERSLACK:
		slack = a1 ? a1 : 50000;
		return 0;
	case PR_GET_TIMERSLACK:
		return (long)slack;
	case PR_SET_CHILD_SUBREAPER:
		subreaper = !!a1;
		return 0;
	case PR_GET_CHILD_SUBREAPER:
		if (!mm_access_ok(p1, 4))
			return -EFAULT;
		memcpy(p1, &subreaper, 4);
		return 0;
	case PR_SET_NO_NEW_PRIVS:
		if (a1 != 1)
			return -EINVAL;
		no_new_privs = 1;
		return 0;
	case PR_GET_NO_NEW_PRIVS:
		return no_new_privs;
	case PR_SET_THP_DISABLE:
		thp_disable = !!a1;
		return 0;
	case PR_GET_THP_DISABLE:
		return thp_disable;
	default:
		return -EINVAL;
	}
}

static long do_uname(void *p)
{
	static const char f[6][65] = { "Linux", "ember", "6.1.0-ember-micro",
				       "#1 Ember micro guest", "x86_64",
				       "(none)" };

	if (!mm_access_ok(p, sizeof(f)))
		return -EFAULT;
	memcpy(p, f, sizeof(f));
	return 0;
}

static long do_arch_prctl(int code, uint64_t addr)
{
	uint64_t v;

	switch (code) {
	case ARCH_SET_FS:
		/* WRFSBASE works at CPL3 with CR4.FSGSBASE (set by the
		 * VMM); the base must be canonical or it faults. */
		if (addr >= (1ULL << 47))
			return -EPERM;
		__asm__ volatile("wrfsbase %0" : : "r"(addr) : "memory");
		return 0;
	case ARCH_SET_GS:
		if (addr >= (1ULL << 47))
			return -EPERM;
		__asm__ volatile("wrgsbase %0" : : "r"(addr) : "memory");
		return 0;
	case ARCH_GET_FS:
	case ARCH_GET_GS:
		if (!mm_access_ok((void *)(uintptr_t)addr, 8))
			return -EFAULT;
		if (code == ARCH_GET_FS)
			__asm__ volatile("rdfsbase %0" : "=r"(v));
		else
			__asm__ volatile("rdgsbase %0" : "=r"(v));
		memcpy((void *)(uintptr_t)addr, &v, 8);
		return 0;
	default:
		return -EINVAL;
	}
}

static long do_prlimit(int res, const void *newl, void *oldl)
{
	uint64_t lim[2] = { RLIM_INFINITY, RLIM_INFINITY };

	(void)newl; /* accepted, not enforced */
	if (res < 0 || res > 15)
		return -EINVAL;
	if (res == RLIMIT_STACK)
		lim[0] = lim[1] = micro_stack_hi - micro_stack_lo;
	else if (res == RLIMIT_NOFILE)
		lim[0] = lim[1] = FS_MAX_FDS;
	if (oldl) {
		if (!mm_access_ok(oldl, sizeof(lim)))
			return -EFAULT;
		memcpy(oldl, lim, sizeof(lim));
	}
	return 0;
}

static long do_getrandom(void *buf, uint64_t len, unsigned flags)
{
	if (flags & ~(unsigned)(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE))
		return -EINVAL;
	if (!mm_access_ok(buf, len))
		return -EFAULT;
	len = MIN(len, 33554431ULL); /* Linux caps one call at 32 MiB - 1 */
	random_bytes(buf, len);
	return (long)len;
}

static long do_sysinfo(void *p)
{
	uint64_t info[14] = { 0 }; /* struct sysinfo is 112 bytes */

	if (!mm_access_ok(p, sizeof(info)))
		return -EFAULT;
	info[0] = time_mono_ns() / 1000000000u;            /* uptime */
	info[4] = boot_info->low_ram_size;                 /* totalram */
	info[5] = mm_free_bytes();                         /* freeram */
	info[10] = 1;                                      /* procs (u16) */
	((uint32_t *)info)[26] = 1;                        /* mem_unit */
	memcpy(p, info, sizeof(info));
	return 0;
}

void micro_exit_process(int status)
{
	char msg[96];

	status &= 0xff;
	if (stdio_current_request()) {
		ksnprintf(msg, sizeof(msg), "handler exited with status %d "
			  "before answering the request", status);
		stdio_report_end(EMBER_ERR_CRASH, msg);
	} else if (status) {
		ksnprintf(msg, sizeof(msg), "handler exited with status %d",
			  status);
		stdio_report_end(EMBER_ERR_CRASH, msg);
	} else {
		stdio_report_end(0, NULL);
	}
	micro_exit_vm((uint32_t)status);
}

static long dispatch(struct micro_regs *r)
{
	uint64_t nr = r->rax, a0 = r->rdi, a1 = r->rsi, a2 = r->rdx;
	uint64_t a3 = r->r10, a4 = r->r8, a5 = r->r9;
	void *p0 = (void *)(uintptr_t)a0, *p1 = (void *)(uintptr_t)a1;
	void *p2 = (void *)(uintptr_t)a2, *p3 = (void *)(uintptr_t)a3;

	switch (nr) {
	case NR_read:
		return do_rw((int)a0, p1, a2, false);
	case NR_write:
		return do_rw((int)a0, p1, a2, true);
	case NR_readv:
		return do_iov((int)a0, p1, a2, false);
	case NR_writev:
		return do_iov((int)a0, p1, a2, true);
	case NR_pread64:
		if (!mm_access_ok(p1, a2))
			return -EFAULT;
		return fs_pread((int)a0, p1, a2, (int64_t)a3);
	case NR_pwrite64:
		if (!mm_access_ok(p1, a2))
			return -EFAULT;
		return fs_pwrite((int)a0, p1, a2, (int64_t)a3);
	case NR_open:
		return fs_openat(AT_FDCWD, p0, (int)a1, (int)a2);
	case NR_openat:
		return fs_openat((int)a0, p1, (int)a2, (int)a3);
	case NR_close:
		return fs_close((int)a0);
	case NR_lseek:
		return fs_lseek((int)a0, (int64_t)a1, (int)a2);
	case NR_stat:
		return fs_fstatat(AT_FDCWD, p0, p1, 0);
	case NR_lstat:
		return fs_fstatat(AT_FDCWD, p0, p1, 0x100 /* NOFOLLOW */);
	case NR_fstat:
		return fs_fstat((int)a0, p1);
	case NR_newfstatat:
		return fs_fstatat((int)a0, p1, p2, (int)a3);
	case NR_statx:
		return fs_statx((int)a0, p1, (int)a2, (unsigned)a3,
				(void *)(uintptr_t)a4);
	case NR_getdents64:
		return fs_getdents64((int)a0, p1, a2);
	case NR_readlink:
		return fs_readlinkat(AT_FDCWD, p0, p1, a2);
	case NR_readlinkat:
		return fs_readlinkat((int)a0, p1, p2, a3);
	case NR_access:
		return fs_faccessat(AT_FDCWD, p0, (int)a1);
	case NR_faccessat:
	case NR_faccessat2:
		return fs_faccessat((int)a0, p1, (int)a2);
	case NR_fcntl:
		return fs_fcntl((int)a0, (int)a1, a2);
	case NR_dup:
		return fs_dup((int)a0, -1, 0);
	case NR_dup2:
	case NR_dup3:
		if ((int)a1 < 0)
			return -EBADF;
		if (nr == NR_dup3 && (int)a0 == (int)a1)
			return -EINVAL;
		return fs_dup((int)a0, (int)a1, 0);
	case NR_ioctl:
		return do_ioctl((int)a0, a1, p2);
	case NR_pipe:
		return sys_pipe2(p0, 0);
	case NR_pipe2:
		return sys_pipe2(p0, (int)a1);
	case NR_eventfd:
		return sys_eventfd2((uint32_t)a0, 0);
	case NR_eventfd2:
		return sys_eventfd2((uint32_t)a0, (int)a1);
	case NR_socketpair:
		return sys_socketpair((int)a0, (int)a1, (int)a2, p3);
	case NR_sendto:
		return sys_sendto((int)a0, p1, a2, (int)a3, (void *)(uintptr_t)a4,
				  (uint32_t)a5);
	case NR_recvfrom:
		return sys_recvfrom((int)a0, p1, a2, (int)a3,
				    (void *)(uintptr_t)a4, (void *)(uintptr_t)a5);
	case NR_sendmsg:
		return sys_sendmsg((int)a0, p1, (int)a2);
	case NR_recvmsg:
		return sys_recvmsg((int)a0, p1, (int)a2);
	case NR_shutdown:
		return sys_shutdown((int)a0, (int)a1);
	case NR_getsockopt:
		return sys_getsockopt((int)a0, (int)a1, (int)a2, p3,
				      (void *)(uintptr_t)a4);
	case NR_setsockopt:
		return sys_setsockopt((int)a0, (int)a1, (int)a2, p3, (uint32_t)a4);
	case NR_getsockname:
	case NR_getpeername:
		return sys_getsockname((int)a0, p1, p2);
	case NR_memfd_create:
		return sys_memfd_create(p0, (unsigned)a1);
	case NR_ftruncate:
		return sys_ftruncate((int)a0, (int64_t)a1);
	case NR_poll:
		return sys_poll(p0, a1, (int)a2);
	case NR_ppoll:
		return sys_ppoll(p0, a1, p2, p3, a4);
	case NR_select:
		return sys_select((int)a0, p1, p2, p3, (void *)(uintptr_t)a4);
	case NR_pselect6:
		return sys_pselect6((int)a0, p1, p2, p3,
				    (void *)(uintptr_t)a4,
				    (void *)(uintptr_t)a5);
	case NR_epoll_create:
		return (int)a0 <= 0 ? -EINVAL : sys_epoll_create1(0);
	case NR_epoll_create1:
		return sys_epoll_create1((int)a0);
	case NR_epoll_ctl:
		return sys_epoll_ctl((int)a0, (int)a1, (int)a2, p3);
	case NR_epoll_wait:
		return sys_epoll_pwait((int)a0, p1, (int)a2, (int)a3, NULL, 8);
	case NR_epoll_pwait:
		return sys_epoll_pwait((int)a0, p1, (int)a2, (int)a3,
				       (void *)(uintptr_t)a4, a5);
	case NR_epoll_pwait2:
		return sys_epoll_pwait2((int)a0, p1, (int)a2, p3,
					(void *)(uintptr_t)a4, a5);
	case NR_timerfd_create:
		return sys_timerfd_create((int)a0, (int)a1);
	case NR_timerfd_settime:
		return sys_timerfd_settime((int)a0, (int)a1, p2, p3);
	case NR_timerfd_gettime:
		return sys_timerfd_gettime((int)a0, p1);
	case NR_alarm:
		return sys_alarm((unsigned)a0);
	case NR_setitimer:
		return sys_setitimer((int)a0, p1, p2);
	case NR_getitimer:
		return sys_getitimer((int)a0, p1);
	case NR_prctl:
		return do_prctl((int)a0, a1, a2);
	case NR_mkdir:
	case NR_mkdirat:
	case NR_rmdir:
	case NR_unlink:
	case NR_unlinkat:
		return -EROFS;
	case NR_getcwd:
		return fs_getcwd(p0, a1);
	case NR_chdir:
		return fs_chdir(p0);
	case NR_fchdir:
		return fs_fchdir((int)a0);
	case NR_umask:
		return fs_umask((uint32_t)a0);

	case NR_brk:
		return sys_brk(a0);
	case NR_mmap:
		return sys_mmap(a0, a1, (int)a2, (int)a3, (int)a4, a5);
	case NR_munmap:
		return sys_munmap(a0, a1);
	case NR_mremap:
		return sys_mremap(a0, a1, a2, (int)a3, a4);
	case NR_mprotect:
		return sys_mprotect(a0, a1, (int)a2);
	case NR_madvise:
		return sys_madvise(a0, a1, (int)a2);

	case NR_clock_gettime:
		return sys_clock_gettime((int)a0, p1);
	case NR_clock_getres:
		if (p1) {
			int64_t res[2] = { 0, 1 };
			if (!mm_access_ok(p1, sizeof(res)))
				return -EFAULT;
			memcpy(p1, res, sizeof(res));
		}
		return 0;
	case NR_gettimeofday:
		return sys_gettimeofday(p0, p1);
	case NR_time: {
		int64_t t = (int64_t)(time_real_ns() / 1000000000u);
		if (p0) {
			if (!mm_access_ok(p0, 8))
				return -EFAULT;
			memcpy(p0, &t, 8);
		}
		return t;
	}
	case NR_nanosleep:
		return sys_nanosleep(p0, p1);
	case NR_clock_nanosleep:
		return sys_clock_nanosleep((int)a0, (int)a1, p2, p3);
	case NR_getrandom:
		return do_getrandom(p0, a1, (unsigned)a2);

	case NR_exit:
		sched_exit_thread((int)a0);
	case NR_exit_group:
		micro_exit_process((int)a0);
	case NR_kill:
		return sys_kill((int)a0, (int)a1);
	case NR_tkill:
		return sys_tgkill(-1, (int)a0, (int)a1);
	case NR_tgkill:
		return sys_tgkill((int)a0, (int)a1, (int)a2);
	case NR_uname:
		return do_uname(p0);
	case NR_getpid:
	case NR_getpgrp:
		return 1;
	case NR_gettid:
		return sched_cur->tid;
	case NR_getppid:
		return 0;
	case NR_getuid:
	case NR_getgid:
	case NR_geteuid:
	case NR_getegid:
		return 0;
	case NR_arch_prctl:
		return do_arch_prctl((int)a0, a1);
	case NR_set_tid_address:
		return sys_set_tid_address(a0);
	case NR_set_robust_list:
		return sys_set_robust_list(a0, a1);
	case NR_get_robust_list:
		return sys_get_robust_list((int)a0, a1, a2);
	case NR_rseq:
		return -ENOSYS; /* glibc copes; no need to log it */
	case NR_prlimit64:
		if (a0 != 0 && a0 != 1)
			return -ESRCH;
		return do_prlimit((int)a1, p2, p3);
	case NR_getrlimit:
		return do_prlimit((int)a0, NULL, p1);
	case NR_getrusage:
		if (!mm_access_ok(p1, 144))
			return -EFAULT;
		memset(p1, 0, 144);
		return 0;
	case NR_sysinfo:
		return do_sysinfo(p0);
	case NR_rt_sigaction:
		return sys_rt_sigaction((int)a0, p1, p2, a3);
	case NR_rt_sigprocmask:
		return sys_rt_sigprocmask((int)a0, p1, p2, a3);
	case NR_rt_sigpending:
		return sys_rt_sigpending(p0, a1);
	case NR_rt_sigsuspend:
		return sys_rt_sigsuspend(p0, a1);
	case NR_pause:
		return sys_pause();
	case NR_rt_sigreturn:
		return sys_rt_sigreturn(r);
	case NR_sigaltstack:
		return sys_sigaltstack(p0, p1, r);
	case NR_sched_yield:
		sched_yield();
		return 0;
	case NR_sched_getaffinity:
		if (a1 < 8)
			return -EINVAL;
		if (!mm_access_ok(p2, 8))
			return -EFAULT;
		memset(p2, 0, 8);
		*(uint8_t *)p2 = 1; /* one CPU */
		return 8;
	case NR_futex:
		return sys_futex(a0, (int)a1, (uint32_t)a2, a3, a4, (uint32_t)a5);
	case NR_clone:
		return sys_clone(r, a0, a1, a2, a3, a4);
	case NR_clone3:
		return sys_clone3(r, p0, a1);
	case NR_fork:
	case NR_vfork:
		return micro_unsupported(nr, -EAGAIN); /* one process */
	default:
		return micro_unsupported(nr, -ENOSYS);
	}
}

void micro_syscall(struct micro_regs *r)
{
	uint64_t nr = r->rax, a0 = r->rdi, a1 = r->rsi, a2 = r->rdx;

	r->rax = (uint64_t)dispatch(r);
	time_check_timers();
	if (micro_cmdline_strace)
		kprintf("[%d] syscall %lu (0x%lx, 0x%lx, 0x%lx) = %ld\n",
			sched_cur->tid, nr, a0, a1, a2, (long)r->rax);
	signal_deliver(r);
}
