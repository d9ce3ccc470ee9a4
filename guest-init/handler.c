/*
 * handler.c - the handler process: see handler.h and docs/guest-init.md.
 */
#include "handler.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

/* Part of the ptrace ABI (uapi linux/ptrace.h) that the C libraries do not
 * all declare: the names are ours, the values the kernel's. */
#define GI_PTRACE_GET_SYSCALL_INFO 0x420e
#define GI_SYSCALL_INFO_ENTRY 1
#define GI_SYSCALL_INFO_EXIT 2
#define GI_PTRACE_EVENT_STOP 128
struct sc_info {
	uint8_t op;
	uint8_t pad[3];
	uint32_t arch;
	uint64_t ip, sp;
	union {
		struct {
			uint64_t nr;
			uint64_t args[6];
		} entry;
		struct {
			int64_t rval;
			uint8_t is_error;
		} exit;
	};
};
/* x86-64 system call numbers; epoll_pwait2 is newer than some headers. */
#define GI_SYS_epoll_pwait2 441
#define GI_F_DUPFD 0
#define GI_F_DUPFD_CLOEXEC 1030

struct tracee {
	pid_t tid;
	int detach;         /* detach at its next stop */
	uint64_t nr;        /* system call it is in (from its entry stop) */
	uint64_t args[6];
};

/* ---- small helpers ---- */

static int fd_in(const uint8_t *set, uint64_t fd)
{
	return fd < 1024 && (set[fd / 8] >> (fd % 8)) & 1;
}

static void fd_set_bit(uint8_t *set, uint64_t fd, int on)
{
	if (fd >= 1024)
		return;
	if (on)
		set[fd / 8] |= (uint8_t)(1u << (fd % 8));
	else
		set[fd / 8] &= (uint8_t)~(1u << (fd % 8));
}

static struct tracee *tracee_find(struct handler *h, pid_t tid)
{
	for (size_t i = 0; i < h->nt; i++)
		if (h->t[i].tid == tid)
			return &h->t[i];
	return NULL;
}

static struct tracee *tracee_add(struct handler *h, pid_t tid)
{
	struct tracee *t;

	if (h->nt == h->capt) {
		size_t cap = h->capt ? h->capt * 2 : 16;

		t = realloc(h->t, cap * sizeof(*t));
		if (!t)
			return NULL;
		h->t = t;
		h->capt = cap;
	}
	t = &h->t[h->nt++];
	*t = (struct tracee){ .tid = tid, .nr = (uint64_t)-1 };
	return t;
}

static void tracee_remove(struct handler *h, struct tracee *t)
{
	*t = h->t[--h->nt];
	if (!h->nt)
		h->traced = 0;
}

/* Reads one word of a tracee's memory. 0 or -1. */
static int peek(pid_t tid, uint64_t addr, uint64_t *out)
{
	long w;

	errno = 0;
	w = ptrace(PTRACE_PEEKDATA, tid, (void *)(uintptr_t)addr, NULL);
	if (w == -1 && errno)
		return -1;
	*out = (uint64_t)w;
	return 0;
}

/* poll/ppoll(fds, nfds): is a stdin fd polled for input? */
static int poll_has_stdin(struct handler *h, pid_t tid, uint64_t fds,
			  uint64_t nfds)
{
	for (uint64_t i = 0; i < nfds && i < 64; i++) {
		uint64_t w;

		/* struct pollfd { int fd; short events; short revents; } */
		if (peek(tid, fds + 8 * i, &w))
			return 0;
		if (fd_in(h->stdin_fds, (uint32_t)w) &&
		    ((w >> 32) & (POLLIN | POLLRDNORM)))
			return 1;
	}
	return 0;
}

/* select/pselect6(nfds, readfds, ...): a stdin fd below 64 in readfds? */
static int select_has_stdin(struct handler *h, pid_t tid, uint64_t nfds,
			    uint64_t readfds)
{
	uint64_t w;

	if (!readfds || peek(tid, readfds, &w))
		return 0;
	for (uint64_t fd = 0; fd < 64 && fd < nfds; fd++)
		if (((w >> fd) & 1) && fd_in(h->stdin_fds, fd))
			return 1;
	return 0;
}

/* Does entering system call nr with args a wait for stdin? */
static int waits_for_stdin(struct handler *h, pid_t tid, uint64_t nr,
			   const uint64_t *a)
{
	switch (nr) {
	case SYS_read:
	case SYS_readv:
	case SYS_pread64:
	case SYS_preadv:
	case SYS_preadv2:
	case SYS_recvfrom:
	case SYS_recvmsg:
	case SYS_recvmmsg:
	case SYS_splice:
	case SYS_copy_file_range:
		return fd_in(h->stdin_fds, a[0]);
	case SYS_sendfile:
		return fd_in(h->stdin_fds, a[1]);
	case SYS_poll:
	case SYS_ppoll:
		return poll_has_stdin(h, tid, a[0], a[1]);
	case SYS_select:
	case SYS_pselect6:
		return select_has_stdin(h, tid, a[0], a[1]);
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
	case GI_SYS_epoll_pwait2:
		return fd_in(h->epoll_fds, a[0]);
	default:
		return 0;
	}
}

/* Keeps the sets of stdin fds and epoll sets current from the handler's
 * own system calls: at entry for close and epoll_ctl, at exit (with the
 * result) for the dup family. */
static void follow_entry(struct handler *h, uint64_t nr, const uint64_t *a)
{
	if (nr == SYS_close) {
		fd_set_bit(h->stdin_fds, a[0], 0);
		fd_set_bit(h->epoll_fds, a[0], 0);
	} else if (nr == SYS_epoll_ctl && (a[1] == 1 || a[1] == 3) &&
		   fd_in(h->stdin_fds, a[2])) { /* EPOLL_CTL_ADD or _MOD */
		fd_set_bit(h->epoll_fds, a[0], 1);
	}
}

static void follow_exit(struct handler *h, const struct tracee *t,
			int64_t rval)
{
	int dup = t->nr == SYS_dup || t->nr == SYS_dup2 || t->nr == SYS_dup3 ||
		  (t->nr == SYS_fcntl && (t->args[1] == GI_F_DUPFD ||
					  t->args[1] == GI_F_DUPFD_CLOEXEC));

	if (!dup || rval < 0)
		return;
	fd_set_bit(h->stdin_fds, (uint64_t)rval,
		   fd_in(h->stdin_fds, t->args[0]));
}

/* ---- tracing ---- */

static void detach_one(struct handler *h, struct tracee *t, int sig)
{
	ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(uintptr_t)sig);
	tracee_remove(h, t);
}

/* The handler waits for work: stop tracing. Tasks other than `now` (which
 * is stopped) are interrupted and detached at their next stop. */
static void stop_tracing(struct handler *h, struct tracee *now)
{
	pid_t tid = now->tid;

	h->ready = 1;
	detach_one(h, now, 0);
	for (size_t i = 0; i < h->nt; i++) {
		if (h->t[i].tid == tid)
			continue;
		h->t[i].detach = 1;
		ptrace(PTRACE_INTERRUPT, h->t[i].tid, NULL, NULL);
	}
}

/* A syscall-entry or -exit stop of t. Returns whether the handler just
 * became ready (t is then detached). */
static int on_syscall_stop(struct handler *h, struct tracee *t)
{
	struct sc_info si;

	memset(&si, 0, sizeof(si));
	if (ptrace((int)GI_PTRACE_GET_SYSCALL_INFO, t->tid,
		   (void *)sizeof(si), &si) <= 0)
		return 0;
	if (si.op == GI_SYSCALL_INFO_ENTRY) {
		t->nr = si.entry.nr;
		memcpy(t->args, si.entry.args, sizeof(t->args));
		if (waits_for_stdin(h, t->tid, si.entry.nr, si.entry.args)) {
			log_dbg("handler task %d waits for stdin (syscall %llu): ready",
				(int)t->tid, (unsigned long long)si.entry.nr);
			stop_tracing(h, t);
			return 1;
		}
		follow_entry(h, si.entry.nr, si.entry.args);
	} else if (si.op == GI_SYSCALL_INFO_EXIT) {
		follow_exit(h, t, si.exit.rval);
		t->nr = (uint64_t)-1;
	}
	return 0;
}

/* One ptrace stop of a task we follow (or a new one, auto-attached because
 * its parent was traced). Resumes or detaches it. Returns whether the
 * handler just became ready. */
static int on_stop(struct handler *h, pid_t tid, int status)
{
	struct tracee *t = tracee_find(h, tid);
	int sig = WSTOPSIG(status), event = (unsigned)status >> 16;
	int inject = 0;

	if (!t) {
		t = tracee_add(h, tid);
		if (!t) { /* out of memory: let it go */
			ptrace(PTRACE_DETACH, tid, NULL, NULL);
			return 0;
		}
	}
	if (sig != (SIGTRAP | 0x80) && !event)
		inject = sig; /* signal-delivery stop: pass it on */
	if (h->ready || t->detach) {
		detach_one(h, t, event == GI_PTRACE_EVENT_STOP ? 0 : inject);
		return 0;
	}
	if (sig == (SIGTRAP | 0x80)) {
		if (on_syscall_stop(h, t))
			return 1;
	} else if (event == GI_PTRACE_EVENT_STOP &&
		   (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN ||
		    sig == SIGTTOU)) {
		/* A group-stop: stay stopped until SIGCONT, as untraced. */
		ptrace(PTRACE_LISTEN, tid, NULL, NULL);
		return 0;
	}
	/* Interrupt, new task, clone/fork/exec events, or a signal. */
	ptrace(PTRACE_SYSCALL, tid, NULL, (void *)(uintptr_t)inject);
	return 0;
}

enum handler_event handler_wait_event(struct handler *h, pid_t pid,
				      int status, int *exit_status)
{
	struct tracee *t;

	if (WIFSTOPPED(status)) {
		/* Only traced tasks report stops to us (we never ask for
		 * WUNTRACED). */
		return on_stop(h, pid, status) ? HANDLER_EV_READY
					       : HANDLER_EV_NONE;
	}
	if (WIFCONTINUED(status))
		return HANDLER_EV_NONE;
	t = tracee_find(h, pid);
	if (t)
		tracee_remove(h, t);
	if (!h->pid || pid != h->pid)
		return HANDLER_EV_NONE;
	*exit_status = status;
	h->pid = 0;
	/* Its other traced tasks die with it or were reparented and report
	 * later; nothing to keep for them. */
	return HANDLER_EV_EXIT;
}

/* ---- start ---- */

struct child_report {
	int step;
	int err;
};
static const char *const steps[] = { "dup2", "chdir", "setgroups", "setgid",
				     "setuid", "execve" };

/* The child's side: never returns. */
static void child(const struct conf *c, int in, int out, int err, int go,
		  int rep)
{
	struct child_report r = { 0, 0 };
	sigset_t none;
	char b;

	/* guest-init blocks signals for its signalfd and may ignore some;
	 * the handler starts with Linux's defaults. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	setsid();
	/* Wait until the parent has attached (or decided not to), before
	 * anything can fail, so that a failure is always traced and
	 * reported the same way. */
	while (read(go, &b, 1) < 0 && errno == EINTR)
		;
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		goto fail;
	r.step = 1;
	if (chdir(c->cwd) < 0)
		goto fail;
	r.step = 2;
	if (setgroups(0, NULL) < 0)
		goto fail;
	r.step = 3;
	if (setgid(c->gid) < 0)
		goto fail;
	r.step = 4;
	if (setuid(c->uid) < 0)
		goto fail;
	r.step = 5;
	execve(c->handler, c->argv, c->env);
fail:
	r.err = errno;
	if (write(rep, &r, sizeof(r)) < 0)
		_exit(127);
	_exit(127);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Follows the freshly attached child through its last system calls before
 * execve (the read of the go pipe, execve itself) until its exec event or
 * its exit. Returns 1 when it exec'ed, 0 when it exited (reaped here, its
 * wait status in *status). Nothing before execve can read stdin. */
static int trace_until_exec(pid_t pid, int *status)
{
	int st, sig;

	for (;;) {
		pid_t w = waitpid(pid, &st, __WALL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return 0;
		if (!WIFSTOPPED(st)) {
			*status = st;
			return 0;
		}
		if ((unsigned)st >> 16 == PTRACE_EVENT_EXEC) {
			ptrace(PTRACE_SYSCALL, pid, NULL, NULL);
			return 1;
		}
		/* Pass on a real signal; syscall and event stops carry none. */
		sig = WSTOPSIG(st);
		if (sig == (SIGTRAP | 0x80) || (unsigned)st >> 16)
			sig = 0;
		ptrace(PTRACE_SYSCALL, pid, NULL, (void *)(uintptr_t)sig);
	}
}

static void close_pair(int p[2])
{
	close_fd(&p[0]);
	close_fd(&p[1]);
}

int handler_start(struct handler *h, const struct conf *c, char *err,
		  size_t errlen)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, er[2] = { -1, -1 };
	int go[2] = { -1, -1 }, rep[2] = { -1, -1 };
	int status = 0, ret = 0;
	struct child_report r;
	pid_t pid;
	ssize_t n;

	memset(h, 0, sizeof(*h));
	h->in = h->out = h->err = -1;
	h->stdin_fds[0] = 1; /* fd 0 */
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
	    pipe2(er, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0 ||
	    pipe2(rep, O_CLOEXEC) < 0) {
		ret = -errno;
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto err_close;
	}
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		snprintf(err, errlen, "fork: %s", strerror(errno));
		goto err_close;
	}
	if (pid == 0)
		child(c, in[0], out[1], er[1], go[0], rep[1]);
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&er[1]);
	close_fd(&go[0]);
	close_fd(&rep[1]);

	/* Follow it from before its execve: none of the handler's own
	 * system calls can happen untraced. */
	h->traced = ptrace(PTRACE_SEIZE, pid, NULL,
			   (void *)(uintptr_t)(PTRACE_O_TRACESYSGOOD |
					       PTRACE_O_TRACECLONE |
					       PTRACE_O_TRACEFORK |
					       PTRACE_O_TRACEVFORK |
					       PTRACE_O_TRACEEXEC |
					       PTRACE_O_EXITKILL)) == 0;
	if (h->traced) {
		int st;

		if (ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) ||
		    waitpid(pid, &st, __WALL) != pid || !WIFSTOPPED(st) ||
		    ptrace(PTRACE_SYSCALL, pid, NULL, NULL)) {
			log_msg("cannot follow the handler with ptrace (%s): "
				"READY goes out when it starts",
				strerror(errno));
			ptrace(PTRACE_DETACH, pid, NULL, NULL);
			h->traced = 0;
		}
	} else {
		log_msg("cannot trace the handler (%s): READY goes out when "
			"it starts", strerror(errno));
	}
	if (write(go[1], "g", 1) != 1)
		log_msg("cannot release the handler: %s", strerror(errno));
	close_fd(&go[1]);
	if (h->traced && !trace_until_exec(pid, &status)) {
		h->traced = 0;
		pid = 0; /* reaped already */
	}
	n = read(rep[0], &r, sizeof(r));
	close_fd(&rep[0]);
	if (n == (ssize_t)sizeof(r)) {
		/* The child failed before or at execve and exits 127. */
		if (pid > 0)
			waitpid(pid, &status, __WALL);
		snprintf(err, errlen, "cannot start %s: %s: %s", c->handler,
			 steps[r.step >= 0 && r.step < 6 ? r.step : 5],
			 strerror(r.err));
		ret = r.err > 0 ? -r.err : -ECHILD;
		goto err_close;
	}
	if (pid == 0) { /* ended without a report: only if killed */
		snprintf(err, errlen, "cannot start %s: it ended at once",
			 c->handler);
		ret = -ECHILD;
		goto err_close;
	}
	h->pid = h->pgid = pid;
	h->in = in[1];
	h->out = out[0];
	h->err = er[0];
	fcntl(h->in, F_SETFL, O_NONBLOCK);
	fcntl(h->out, F_SETFL, O_NONBLOCK);
	fcntl(h->err, F_SETFL, O_NONBLOCK);
	if (h->traced && !tracee_add(h, pid)) {
		ptrace(PTRACE_DETACH, pid, NULL, NULL);
		h->traced = 0;
	}
	if (!h->traced)
		h->ready = 1;
	return 0;

err_close:
	close_pair(in);
	close_pair(out);
	close_pair(er);
	close_pair(go);
	close_pair(rep);
	return ret;
}

void handler_signal(struct handler *h, int sig)
{
	if (h->pgid > 0)
		kill(-h->pgid, sig);
}

void handler_kill(struct handler *h)
{
	handler_signal(h, SIGKILL);
}

void handler_release(struct handler *h)
{
	handler_kill(h);
	h->pgid = 0;
	close_fd(&h->in);
	close_fd(&h->out);
	close_fd(&h->err);
	free(h->t);
	h->t = NULL;
	h->nt = h->capt = 0;
	h->traced = 0;
	h->ready = 0;
	h->pid = 0;
}

static const char *signame(int sig)
{
	static const char *const names[] = {
		[SIGHUP] = "SIGHUP",   [SIGINT] = "SIGINT",
		[SIGQUIT] = "SIGQUIT", [SIGILL] = "SIGILL",
		[SIGTRAP] = "SIGTRAP", [SIGABRT] = "SIGABRT",
		[SIGBUS] = "SIGBUS",   [SIGFPE] = "SIGFPE",
		[SIGKILL] = "SIGKILL", [SIGUSR1] = "SIGUSR1",
		[SIGSEGV] = "SIGSEGV", [SIGUSR2] = "SIGUSR2",
		[SIGPIPE] = "SIGPIPE", [SIGALRM] = "SIGALRM",
		[SIGTERM] = "SIGTERM", [SIGXCPU] = "SIGXCPU",
		[SIGXFSZ] = "SIGXFSZ", [SIGSYS] = "SIGSYS",
	};

	if (sig > 0 && sig < (int)(sizeof(names) / sizeof(names[0])) &&
	    names[sig])
		return names[sig];
	return "a signal";
}

void handler_describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "crashed: signal %d (%s)", WTERMSIG(status),
			 signame(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended (wait status 0x%x)", status);
}
