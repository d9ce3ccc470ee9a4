/*
 * ember_handler.h - the handler author's API (Ember function SDK).
 *
 * A handler is a static Linux x86-64 executable that initialises once and
 * then serves invocations in a loop. This SDK owns that loop: it reads INVOKE
 * frames from stdin (fd 0), calls your function, and writes exactly one
 * RESULT (or ERROR) frame per INVOKE to stdout (fd 1); stderr (fd 2) is free
 * text that the runtime turns into LOG frames. The same binary runs in the
 * micro guest, in a Linux guest under guest-init, and as a plain process
 * (tests, ember-invoke --exec). The protocol is docs/function-abi.md.
 *
 *   static int fn(const struct ember_request *req,
 *                 struct ember_response *resp, void *ctx)
 *   {
 *       return ember_response_append(resp, req->data, req->len);
 *   }
 *   int main(void) { return ember_handler_run(fn, NULL); }
 *
 * The loop serves one request at a time; the function may start threads of
 * its own (sdk/examples/pthreads.c). The SDK uses read(2), write(2), malloc
 * and (optionally) fcntl/dup2 only.
 */
#ifndef EMBER_HANDLER_H
#define EMBER_HANDLER_H

#include <stddef.h>
#include <stdint.h>

struct ember_request {
	uint64_t id;          /* request id, for logs */
	const uint8_t *data;  /* request payload; valid during the call */
	size_t len;           /* 0 .. 6 MiB */
	uint32_t deadline_ms; /* time the caller allows (0 = none); the
				 runtime enforces it, the handler may use it
				 to give up early */
};

/* The SDK owns the buffer; use the functions below to fill it. */
struct ember_response {
	uint8_t *data; /* len bytes of response so far */
	size_t len;
	int overflow;  /* an append went over the 6 MiB limit */
	/* private to the SDK: the frame buffer (header room + data) */
	uint8_t *frame_;
	size_t cap_;
};

/* The function: fill resp and return 0 for success, or a positive status
 * (the RESULT's status, reported as a function error; resp then describes
 * the error). A negative return is reported as status 1. The function may
 * be called any number of times; state in ctx survives between calls (and
 * across a snapshot). */
typedef int (*ember_handler_fn)(const struct ember_request *req,
				struct ember_response *resp, void *ctx);

/* Appends n bytes. 0, -ENOMEM, or -E2BIG when the response would exceed
 * 6 MiB (EMBER_INV_MAX_PAYLOAD); then the invocation fails with an ERROR
 * frame (EMBER_ERR_TOO_LARGE) whatever the function returns. */
int ember_response_append(struct ember_response *resp, const void *p,
			  size_t n);
/* Appends a NUL-terminated string (without the NUL). */
int ember_response_puts(struct ember_response *resp, const char *s);
/* Drops the content (keeps the buffer). */
void ember_response_reset(struct ember_response *resp);

/* Serves invocations until stdin reaches end of file between frames.
 * Returns 0 then, or 2 on a protocol error on stdin (after reporting it on
 * stdout as an ERROR frame and on stderr), or 3 if stdout fails. Meant as
 * `return ember_handler_run(fn, ctx);` from main(). */
int ember_handler_run(ember_handler_fn fn, void *ctx);

/* Moves the frame stream off fd 1: frames go to a private duplicate and fd
 * 1 becomes a copy of fd 2, so stray printf()s land in the log instead of
 * corrupting the stream. ember_handler_run() does it; call it earlier if
 * your initialisation may write to stdout (the lua example does). Idempotent;
 * silently keeps fd 1 where fcntl/dup2 are unavailable or the environment
 * sets EMBER_SDK_KEEP_STDOUT. */
void ember_stdout_protect(void);

/* Writes one line to stderr (the function's log), printf-style. */
void ember_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
