/*
 * handler.h - the handler process: start it, know when it first waits for
 * work, kill it, learn how it ended.
 *
 * Owns: fork/exec of the configured handler (its own session and process
 * group; stdin/stdout/stderr on pipes whose other ends guest-init keeps;
 * the configured uid, gid, cwd and exactly the configured environment; no
 * supplementary groups; default signal dispositions and an empty signal
 * mask), and the detection of its first read of stdin, which is when READY
 * may be sent (docs/function-abi.md section 4).
 *
 * How the first read is seen: guest-init traces the handler with ptrace
 * (PTRACE_SEIZE before its execve, PTRACE_SYSCALL, every thread and child
 * it creates followed) until one of its tasks enters a system call that
 * waits for stdin: read/readv/pread/recv* on fd 0 or a duplicate of it,
 * poll/ppoll/select/pselect6 with it in the read set, or epoll_wait on an
 * epoll set it was added to. Then every task is detached and the handler
 * runs untraced from then on: the cost (two ptrace stops per system call)
 * is paid only during initialisation, which for a snapshot happens once,
 * at deploy. If ptrace is refused, READY follows the execve at once.
 *
 * Called from the event loop thread only. waitpid(-1) results go through
 * handler_wait_event() first, since ptrace stops arrive that way.
 */
#ifndef GI_HANDLER_H
#define GI_HANDLER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"

struct tracee;

struct handler {
	pid_t pid;          /* 0 = none running */
	pid_t pgid;         /* its process group (= its first pid), kept
			     * after it exits for what it left behind */
	int in, out, err;   /* our ends: its stdin (write), stdout, stderr */
	int ready;          /* it has waited for stdin */
	int traced;         /* ptrace is following it (until ready) */
	struct tracee *t;   /* traced tasks */
	size_t nt, capt;
	/* fds (< 1024) that are the handler's stdin, and epoll sets that
	 * watch one of them, as seen by following its system calls */
	uint8_t stdin_fds[128], epoll_fds[128];
};

enum handler_event {
	HANDLER_EV_NONE = 0, /* not about the handler's main process, or a
			      * ptrace stop handled here */
	HANDLER_EV_READY,    /* it waits for stdin for the first time */
	HANDLER_EV_EXIT,     /* the main process ended: *status is its
			      * wait status; pipes stay open to be drained */
};

/* Starts the handler from *c. 0, or -errno with a one-line reason in err
 * (a failure of chdir, setgid, setuid or execve is reported from the child
 * with its step). On success h->ready may already be set (no tracing). */
int handler_start(struct handler *h, const struct conf *c, char *err,
		  size_t errlen);

/* Feeds one waitpid(-1, ..., __WALL) result. */
enum handler_event handler_wait_event(struct handler *h, pid_t pid,
				      int status, int *exit_status);

/* SIGKILLs the handler's process group (it is still reaped as usual);
 * also what is left of the group after the handler itself exited. */
void handler_kill(struct handler *h);
/* Sends sig to its process group. */
void handler_signal(struct handler *h, int sig);

/* After HANDLER_EV_EXIT and draining: kills what is left of its process
 * group (children it traced during initialisation included), closes the
 * pipes, forgets it. */
void handler_release(struct handler *h);

/* A one-line description of a wait status: "exited with status 3",
 * "crashed: signal 11 (SIGSEGV)". */
void handler_describe_status(int status, char *buf, size_t len);

#endif
