/* Test handler for the micro guest's error paths. Each request names what to
 * do; the micro guest must report the outcome to the caller:
 *   segv ud2 div0 stack abort  -> crash: ERROR frame naming the cause
 *   exit3                      -> exit during a request: ERROR frame
 *   enosys                     -> syscall 400 fails with ENOSYS (logged)
 *   enomem                     -> mmap more than RAM fails with ENOMEM
 *   clone                      -> fork() fails cleanly
 *   spin                       -> computes forever: past the deadline the
 *                                 guest answers ERROR TIMEOUT and ends
 *   log                        -> stderr line (a LOG frame), then "ok"
 *   ok                         -> "ok"
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sdk/ember_handler.h"

static volatile int zero;
static volatile uintptr_t bad_addr = 0x10;
static volatile int depth_limit = 1 << 30;

/* Unbounded in practice (depth_limit is never reached): overflows the
 * stack into the micro guest's guard. */
static int recurse(int n)
{
	volatile char pad[4096];

	pad[0] = (char)n;
	if (n >= depth_limit)
		return 0;
	return recurse(n + 1) + pad[0];
}

static int is(const struct ember_request *r, const char *w)
{
	return r->len == strlen(w) && !memcmp(r->data, w, r->len);
}

static int fn(const struct ember_request *req, struct ember_response *resp,
	      void *ctx)
{
	char msg[128];

	(void)ctx;
	if (is(req, "segv"))
		*(volatile int *)bad_addr = 1;
	else if (is(req, "ud2"))
		__asm__ volatile("ud2");
	else if (is(req, "div0"))
		return 100 / zero;
	else if (is(req, "stack"))
		return recurse(0);
	else if (is(req, "abort"))
		abort();
	else if (is(req, "exit3"))
		exit(3);
	if (is(req, "enosys")) {
		long r = syscall(400);
		snprintf(msg, sizeof(msg), "syscall 400 = %ld errno %s", r,
			 strerror(errno));
		return ember_response_puts(resp, msg);
	}
	if (is(req, "enomem")) {
		void *p = mmap(NULL, 64ULL << 30, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		void *q = malloc(1ULL << 40);
		snprintf(msg, sizeof(msg), "mmap %s, malloc %s",
			 p == MAP_FAILED && errno == ENOMEM ? "ENOMEM" : "?",
			 q ? "?" : "NULL");
		return ember_response_puts(resp, msg);
	}
	if (is(req, "clone")) {
		pid_t p = fork();
		snprintf(msg, sizeof(msg), "fork %s", p < 0 ? "failed" : "?");
		if (p == 0)
			_exit(0);
		return ember_response_puts(resp, msg);
	}
	if (is(req, "spin"))
		for (volatile unsigned long n = 0;; n++)
			;
	if (is(req, "log"))
		fprintf(stderr, "a line on stderr\n");
	return ember_response_puts(resp, "ok");
}

int main(void)
{
	return ember_handler_run(fn, NULL);
}
