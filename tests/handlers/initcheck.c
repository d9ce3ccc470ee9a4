/* Test handler for guest-init (the Linux guest's PID 1) on its Unix-socket
 * seam: what only a Linux user space has. Each request names what to do:
 *   ok            -> "ok"
 *   spin          -> loop forever (for the deadline)
 *   env           -> the environment, one variable per line
 *   ids           -> "uid=U gid=G euid=U egid=G groups=N cwd=DIR"
 *   argv          -> the arguments, one per line
 *   orphans N     -> starts N grandchildren that outlive their parent (so
 *                    they are reparented to PID 1) and exit 50 ms later:
 *                    zombies only PID 1 can reap; answers "orphans N"
 *   ppid          -> "ppid=P" (1 when guest-init started us)
 *   exit0         -> exit(0) while serving the request
 *   exit-idle     -> answers "bye", then exits 0 between requests
 * Built like the micro guest's test handlers (mk/micro.mk), with musl and
 * glibc.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sdk/ember_handler.h"

extern char **environ;
static int g_argc;
static char **g_argv;

/* exit-idle: 100 ms after answering, while waiting for the next request. */
static void bye(int sig)
{
	(void)sig;
	_exit(0);
}

static int is(const struct ember_request *r, const char *w)
{
	return r->len == strlen(w) && !memcmp(r->data, w, r->len);
}

static int orphans(int n)
{
	for (int i = 0; i < n; i++) {
		pid_t c = fork();

		if (c < 0)
			return -1;
		if (c == 0) {
			if (fork() == 0) {
				struct timespec ts = { 0, 50 * 1000 * 1000 };

				nanosleep(&ts, NULL); /* parent gone by then */
				_exit(0);
			}
			_exit(0);
		}
		waitpid(c, NULL, 0);
	}
	return 0;
}

static int fn(const struct ember_request *req, struct ember_response *resp,
	      void *ctx)
{
	char line[512], cwd[256];

	(void)ctx;
	if (is(req, "spin"))
		for (;;)
			__asm__ volatile("" ::: "memory");
	if (is(req, "exit0"))
		exit(0);
	if (is(req, "exit-idle")) {
		struct itimerval it = { .it_value = { 0, 100 * 1000 } };

		signal(SIGALRM, bye);
		setitimer(ITIMER_REAL, &it, NULL);
		return ember_response_puts(resp, "bye");
	}
	if (is(req, "env")) {
		for (char **e = environ; *e; e++) {
			ember_response_puts(resp, *e);
			ember_response_puts(resp, "\n");
		}
		return 0;
	}
	if (is(req, "argv")) {
		for (int i = 0; i < g_argc; i++) {
			ember_response_puts(resp, g_argv[i]);
			ember_response_puts(resp, "\n");
		}
		return 0;
	}
	if (is(req, "ids")) {
		snprintf(line, sizeof(line), "uid=%d gid=%d euid=%d egid=%d "
			 "groups=%d cwd=%s", (int)getuid(), (int)getgid(),
			 (int)geteuid(), (int)getegid(), getgroups(0, NULL),
			 getcwd(cwd, sizeof(cwd)) ? cwd : "?");
		return ember_response_puts(resp, line);
	}
	if (is(req, "ppid")) {
		snprintf(line, sizeof(line), "ppid=%d", (int)getppid());
		return ember_response_puts(resp, line);
	}
	if (req->len > 8 && !memcmp(req->data, "orphans ", 8)) {
		char num[16] = { 0 };
		int n;

		memcpy(num, req->data + 8, req->len - 8 < 15 ? req->len - 8 : 15);
		n = atoi(num);
		if (n < 1 || n > 1000 || orphans(n))
			return ember_response_puts(resp, "orphans failed") ? 2 : 1;
		snprintf(line, sizeof(line), "orphans %d", n);
		return ember_response_puts(resp, line);
	}
	return ember_response_puts(resp, "ok");
}

int main(int argc, char **argv)
{
	g_argc = argc;
	g_argv = argv;
	return ember_handler_run(fn, NULL);
}
