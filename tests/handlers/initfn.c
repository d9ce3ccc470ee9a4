/* Test handler for deploys (tests/unit/test_deploy.c, the agent's
 * integration tests): its initialisation is chosen by the environment the
 * function's manifest sets, then it serves requests by answering
 * "GREETING:request" (GREETING from the environment, default "hi").
 *   INIT=ok      initialise and serve (the default)
 *   INIT=exit3   print a reason on stderr and exit 3 before serving
 *   INIT=crash   print a line, then fault on a bad write before serving
 *   INIT=spin    never finish initialising
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdk/ember_handler.h"

static volatile int *volatile bad = (int *)0x10;

static int fn(const struct ember_request *req, struct ember_response *resp,
	      void *ctx)
{
	const char *greeting = ctx;

	if (ember_response_puts(resp, greeting) ||
	    ember_response_puts(resp, ":"))
		return 1;
	return ember_response_append(resp, req->data, req->len) ? 1 : 0;
}

int main(void)
{
	const char *init = getenv("INIT"), *greeting = getenv("GREETING");

	if (!init)
		init = "ok";
	if (!strcmp(init, "exit3")) {
		fprintf(stderr, "initfn: cannot reach the database, giving up\n");
		return 3;
	}
	if (!strcmp(init, "crash")) {
		fprintf(stderr, "initfn: about to crash\n");
		*bad = 1;
	}
	if (!strcmp(init, "spin"))
		for (;;)
			__asm__ volatile("" ::: "memory");
	return ember_handler_run(fn, (void *)(greeting ? greeting : "hi"));
}
