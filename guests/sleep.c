/*
 * sleep: one EMBER_HC_WAIT hypercall with the timeout given as
 * "timeout=NS" on the command line (default: the largest, 2^64 - 1 ns,
 * i.e. "as long as you can"), then reports how it returned: status 3 for
 * a timeout, 4 for a device wake-up. With no device there is nothing to
 * wake it, so a long timeout must keep it asleep (tests/integration/
 * hc-wait; the VMM saturates the conversion to milliseconds).
 */
#include "rt.h"

int main(void)
{
	uint64_t t = ~0ULL, start, ns;
	int ret;

	rt_cmdline_u64("timeout", &t);
	rt_printf("sleep: waiting %llu ns\n", (unsigned long long)t);
	start = rt_now_ns();
	ret = rt_hc_wait(t);
	ns = rt_now_ns() - start;
	rt_printf("sleep: woke after %llu us, ret %d\n",
		  (unsigned long long)(ns / 1000), ret);
	return ret == 1 ? 4 : 3;
}
