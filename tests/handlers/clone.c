/*
 * Test handler for snapshot clones: initialises once (draws 16 bytes of
 * getrandom before READY, as a real handler seeding a PRNG would), then
 * answers every invocation with fresh getrandom bytes, the wall clock and a
 * counter of invocations served, as "rand=HEX time_ns=N count=N init=HEX".
 * Clones restored from one snapshot must each report distinct `rand`,
 * a current `time_ns`, and the same `init` (drawn before the snapshot).
 */
#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#include "sdk/ember_handler.h"

static unsigned char init_rand[8];
static unsigned long count;

static void hex(char *out, const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static int fn(const struct ember_request *req, struct ember_response *resp,
	      void *ctx)
{
	unsigned char r[16];
	char rh[33], ih[17], line[160];
	struct timespec ts;

	(void)req;
	(void)ctx;
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return 1;
	clock_gettime(CLOCK_REALTIME, &ts);
	hex(rh, r, sizeof(r));
	hex(ih, init_rand, sizeof(init_rand));
	count++;
	snprintf(line, sizeof(line), "rand=%s time_ns=%lld count=%lu init=%s",
		 rh, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, count,
		 ih);
	return ember_response_puts(resp, line);
}

int main(void)
{
	if (getrandom(init_rand, sizeof(init_rand), 0) != sizeof(init_rand))
		return 1;
	return ember_handler_run(fn, NULL);
}
