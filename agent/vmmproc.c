/*
 * vmmproc.c - the ember-vmm processes emberd starts: see vmmproc.h.
 *
 * Processes are created with clone(CLONE_PIDFD): the pidfd is how emberd
 * waits for, signals and reaps each one, so a pid the kernel has already
 * given to someone else is never signalled. The child only makes
 * async-signal-safe calls between clone and exec (emberd has other
 * threads, whose locks the child inherits in whatever state they were).
 * It shares emberd's memory until its execve (CLONE_VM | CLONE_VFORK, on
 * a stack of its own, the calling thread waiting for the exec, as
 * posix_spawn does): a fork would copy emberd's page tables only for the
 * exec to drop them, which measured as a quarter of all the CPU a cold
 * start cost under load. Hooks that add clone flags get a fork (clone3).
 *
 * A process that outlives emberd is unlikely (its control socket closes
 * with emberd, and the shell then stops its VM and exits; it also has
 * PR_SET_PDEATHSIG), but a VMM stuck in the kernel could. The pid files
 * are for that case: "PID STARTTIME\n", where STARTTIME (clock ticks after
 * boot, /proc/PID/stat field 22) tells a live VMM from a process that got
 * its pid later.
 */
#define LOG_MOD "vmmproc"

#include "agent/vmmproc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Start time of pid from /proc/PID/stat, 0 if it cannot be read. */
static unsigned long long proc_start_time(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long t = 0;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* comm may contain spaces and parentheses: fields start after the
	 * last ')'; p then points at the space before field 3 (state). We
	 * want field 22. */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	p++;
	for (field = 3; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (p)
		t = strtoull(p + 1, NULL, 10);
	return t;
}

static void pidfile_path(char *buf, size_t cap, const char *runtime_dir,
			 pid_t pid)
{
	snprintf(buf, cap, "%s/vmm/%d", runtime_dir, (int)pid);
}

static int pidfile_write(const char *runtime_dir, pid_t pid,
			 unsigned long long start)
{
	char path[4096], line[64];
	int fd, len, ret = 0;

	if (!start)
		return -ESRCH;

	pidfile_path(path, sizeof(path), runtime_dir, pid);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	len = snprintf(line, sizeof(line), "%d %llu\n", (int)pid, start);
	if (write(fd, line, (size_t)len) != len)
		ret = -EIO;
	close(fd);
	return ret;
}

int vmmproc_record(const char *runtime_dir, pid_t pid)
{
	return pidfile_write(runtime_dir, pid, proc_start_time(pid));
}

void vmmproc_forget(const char *runtime_dir, pid_t pid)
{
	char path[4096];

	pidfile_path(path, sizeof(path), runtime_dir, pid);
	unlink(path);
}

/* /dev/null, opened once, for the children's stdin and stdout. */
static int devnull_fd(void)
{
	static int fd = -1;
	int f;

	if (__atomic_load_n(&fd, __ATOMIC_ACQUIRE) >= 0)
		return fd;
	f = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (f < 0)
		return -1;
	{
		int expected = -1;

		if (!__atomic_compare_exchange_n(&fd, &expected, f, false,
						 __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE))
			close(f);
	}
	return fd;
}

/* The child between clone and exec. Never returns. */
static void __attribute__((noreturn))
child_exec(char *const *argv, int ctl, int devnull, pid_t parent,
	   const struct vmmproc_hooks *h, const struct vmmproc_spawn *sp)
{
	char *envp[] = { NULL };
	sigset_t none;

	/* Die with emberd, even if it is SIGKILLed. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(70);
	/* emberd blocks its shutdown signals and ignores SIGPIPE; both
	 * would survive the exec. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0)
		_exit(70);
	if (ctl == VMMPROC_CTL_FD) {
		if (fcntl(ctl, F_SETFD, 0) < 0)
			_exit(70);
	} else if (dup2(ctl, VMMPROC_CTL_FD) < 0) {
		_exit(70);
	}
	/* Nothing of emberd's leaks into the VMM: not the database, not
	 * other VMs' sockets, not the API socket. */
	if (syscall(SYS_close_range, VMMPROC_CTL_FD + 1, ~0U, 0) < 0)
		_exit(70);
	if (h && h->child && h->child(h->ctx, sp))
		_exit(71);
	execve(argv[0], argv, envp);
	_exit(127);
}

struct child_args {
	char *const *argv;
	int ctl, devnull;
	pid_t parent;
	const struct vmmproc_hooks *h;
	const struct vmmproc_spawn *sp;
};

static int child_main(void *arg)
{
	const struct child_args *a = arg;

	child_exec(a->argv, a->ctl, a->devnull, a->parent, a->h, a->sp);
}

/* The vfork child's stack: child_exec's frame, then execve's. */
#define CHILD_STACK (32 * 1024)

int vmmproc_spawn(const char *vmm, const char *runtime_dir,
		  const struct vmmproc_hooks *hooks, uint64_t seq, bool irqchip,
		  struct vmmproc *p, char *err, size_t errlen)
{
	struct clone_args args;
	int sv[2], pidfd = -1, devnull, ret;
	pid_t parent = getpid(), pid;
	char vmm_path[4096];
	/* The command line, built before the clone (the child must not
	 * allocate); the strings are const only to the compiler. */
	char *argv[7 + VMMPROC_MAX_ARGS] = { /* 5 + --irqchip + args + NULL */
		vmm_path, (char *)(uintptr_t)"--shell",
		(char *)(uintptr_t)"--control-fd", (char *)(uintptr_t)"3",
		(char *)(uintptr_t)"--quiet",
	};
	unsigned ac = 5;

	memset(p, 0, sizeof(*p));
	p->pid = -1;
	p->pidfd = p->ctl = -1;
	p->hooks = hooks;
	p->sp.vmm = vmm;
	p->sp.seq = seq;
	p->sp.irqchip = irqchip;
	if (irqchip)
		argv[ac++] = (char *)(uintptr_t)"--irqchip";
	p->sp.args = hooks ? hooks->args : NULL;
	for (unsigned i = 0; p->sp.args && p->sp.args[i]; i++) {
		if (i == VMMPROC_MAX_ARGS)
			return errbuf_fail(err, errlen, -E2BIG,
					   "too many VMM arguments");
		argv[ac++] = (char *)(uintptr_t)p->sp.args[i];
	}
	/* A writable copy for execve's argv, made before the clone (the
	 * child must not allocate). */
	if (snprintf(vmm_path, sizeof(vmm_path), "%s", vmm) >=
	    (int)sizeof(vmm_path))
		return errbuf_fail(err, errlen, -ENAMETOOLONG,
				   "VMM path too long");
	devnull = devnull_fd();
	if (devnull < 0)
		return errbuf_fail(err, errlen, -errno, "/dev/null: %s",
				   strerror(errno));
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return errbuf_fail(err, errlen, -errno, "socketpair: %s",
				   strerror(errno));
	if (hooks && hooks->prepare) {
		ret = hooks->prepare(hooks->ctx, &p->sp);
		if (ret) {
			errbuf_fail(err, errlen, ret, "jail prepare: %s",
				    strerror(-ret));
			goto err_close;
		}
	}
	if (hooks && hooks->spawn) {
		ret = hooks->spawn(hooks->ctx, &p->sp, argv, sv[1], &pid,
				   &pidfd);
		if (ret) {
			errbuf_fail(err, errlen, ret, "jail spawn: %s",
				    strerror(-ret));
			goto err_release;
		}
	} else if (!hooks || !hooks->clone_flags) {
		_Alignas(16) char stack[CHILD_STACK];
		struct child_args ca = {
			.argv = argv, .ctl = sv[1], .devnull = devnull,
			.parent = parent, .h = hooks, .sp = &p->sp,
		};

		/* glibc's clone() stores the pidfd through parent_tid. */
		pid = clone(child_main, stack + sizeof(stack),
			    CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &ca,
			    &pidfd);
		if (pid < 0) {
			ret = errbuf_fail(err, errlen, -errno, "clone: %s",
					  strerror(errno));
			goto err_release;
		}
	} else {
		memset(&args, 0, sizeof(args));
		args.flags = CLONE_PIDFD | (hooks ? hooks->clone_flags : 0);
		args.pidfd = (uint64_t)(uintptr_t)&pidfd;
		args.exit_signal = SIGCHLD;
		pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
		if (pid == 0)
			child_exec(argv, sv[1], devnull, parent, hooks,
				   &p->sp);
		if (pid < 0) {
			ret = errbuf_fail(err, errlen, -errno, "clone3: %s",
					  strerror(errno));
			goto err_release;
		}
	}
	close(sv[1]);
	p->pid = pid;
	p->pidfd = pidfd;
	p->ctl = sv[0];
	p->start_time = proc_start_time(pid);
	ret = pidfile_write(runtime_dir, pid, p->start_time);
	if (ret)
		log_warn("pid file for VMM %d: %s", (int)pid, strerror(-ret));
	return 0;
err_release:
	if (hooks && hooks->release)
		hooks->release(hooks->ctx, &p->sp);
err_close:
	close(sv[0]);
	close(sv[1]);
	return ret;
}

void vmmproc_kill(struct vmmproc *p)
{
	if (p->reaped || p->pidfd < 0)
		return;
	if (syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0) < 0 &&
	    errno != ESRCH)
		log_warn_errno("pidfd_send_signal(VMM %d)", (int)p->pid);
}

int vmmproc_reap(struct vmmproc *p, const char *runtime_dir)
{
	siginfo_t si;

	if (p->reaped)
		return 0;
	if (p->hooks && p->hooks->reaping) {
		/* Exited yet? (WNOWAIT: still a zombie afterwards.) */
		memset(&si, 0, sizeof(si));
		if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si,
			   WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0)
			return -EAGAIN;
		p->hooks->reaping(p->hooks->ctx, &p->sp);
	}
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si,
		   WEXITED | WNOHANG) < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return -EAGAIN;
		/* ECHILD: someone else reaped it; treat as gone. */
		si.si_pid = p->pid;
		si.si_code = CLD_KILLED;
		si.si_status = 0;
	}
	if (si.si_pid == 0)
		return -EAGAIN;
	if (si.si_code == CLD_EXITED)
		p->status = (si.si_status & 0xff) << 8;
	else
		p->status = si.si_status & 0x7f;
	p->reaped = true;
	close(p->pidfd);
	p->pidfd = -1;
	vmmproc_forget(runtime_dir, p->pid);
	if (p->hooks && p->hooks->release)
		p->hooks->release(p->hooks->ctx, &p->sp);
	return 0;
}

void vmmproc_status_str(int status, char *buf, size_t cap)
{
	if (WIFEXITED(status))
		snprintf(buf, cap, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, cap, "signal %d", WTERMSIG(status));
	else
		snprintf(buf, cap, "status 0x%x", (unsigned)status);
}

/* Whether pid is a zombie: dead, waiting for its parent to reap it. */
static bool proc_is_zombie(pid_t pid)
{
	char path[64], st[256], *rp;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, st, sizeof(st) - 1);
	close(fd);
	if (n <= 0)
		return false;
	st[n] = '\0';
	rp = strrchr(st, ')');
	return rp && rp[1] == ' ' && rp[2] == 'Z';
}

/* Waits up to ~1 s for a process that is not our child to go away (a
 * zombie is gone enough: its new parent reaps it). */
static void wait_gone(pid_t pid, unsigned long long start)
{
	for (int i = 0; i < 100; i++) {
		if (proc_start_time(pid) != start || proc_is_zombie(pid))
			return;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 },
			  NULL);
	}
}

int vmmproc_reap_orphans(const char *runtime_dir, unsigned *killed)
{
	char dir[4096];
	struct dirent *e;
	DIR *d;

	*killed = 0;
	snprintf(dir, sizeof(dir), "%s/vmm", runtime_dir);
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		char path[4096 + 256], line[64];
		unsigned long long start = 0;
		char *end;
		long pid;
		ssize_t n;
		int fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 1) {
			unlink(path);
			continue;
		}
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			n = read(fd, line, sizeof(line) - 1);
			close(fd);
			if (n > 0) {
				line[n] = '\0';
				if (sscanf(line, "%*d %llu", &start) != 1)
					start = 0;
			}
		}
		if (start && proc_start_time((pid_t)pid) == start &&
		    !proc_is_zombie((pid_t)pid)) {
			log_warn("ending VMM process %ld left by a previous "
				 "emberd", pid);
			kill((pid_t)pid, SIGKILL);
			wait_gone((pid_t)pid, start);
			(*killed)++;
		}
		unlink(path);
	}
	closedir(d);
	return 0;
}
