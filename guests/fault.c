/*
 * fault: ends in a CPU exception the VMM must report (vector, RIP) before
 * exiting non-zero. The kind comes from the command line:
 *   (default) or "null"   write to page 0, never mapped     -> #PF (14)
 *   "high"                write beyond the 4 GiB identity map -> #PF (14)
 *   "ud"                  ud2                                -> #UD (6)
 *   "de"                  divide by zero                     -> #DE (0)
 * If the guest ever gets past the fault it exits with status 3.
 */
#include "rt.h"

int main(void)
{
	const char *kind = "null";

	if (rt_cmdline_has("ud"))
		kind = "ud";
	else if (rt_cmdline_has("de"))
		kind = "de";
	else if (rt_cmdline_has("high"))
		kind = "high";
	rt_printf("fault: %s\n", kind);

	if (kind[0] == 'u') {
		__asm__ volatile("ud2");
	} else if (kind[0] == 'd') {
		unsigned zero = 0, q;

		/* Through asm so the compiler cannot fold or drop it. */
		__asm__ volatile("xorl %%edx, %%edx\n\tdivl %1"
				 : "=a"(q)
				 : "r"(zero), "a"(1u)
				 : "rdx");
		(void)q;
	} else if (kind[0] == 'h') {
		/* Page tables map the first 4 GiB only (and RAM above). */
		*(volatile uint64_t *)(uintptr_t)0x4000000000ULL = 1;
	} else {
		uintptr_t addr = 0x10;

		/* Hide the constant: gcc rejects a literal near-null store. */
		__asm__("" : "+r"(addr));
		*(volatile uint64_t *)addr = 1;
	}
	rt_puts("fault: survived\n");
	return 3;
}
