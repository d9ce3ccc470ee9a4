/*
 * snapcount: a guest for snapshot round trips. It computes a running hash
 * over a few million steps (state that lives in registers, stack and RAM),
 * reports READY halfway (the snapshot point), finishes, and prints the
 * result with the boot-info generation and seed words, so a test can check
 * that a restored clone continues exactly where the original was and that
 * it learnt it is a clone (new generation, new entropy).
 */
#include "rt.h"

static uint64_t table[4096];

static uint64_t step(uint64_t h, uint64_t i)
{
	table[i % 4096] ^= h;
	return (h ^ (i * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL +
	       table[(h >> 7) % 4096];
}

int main(void)
{
	const volatile struct ember_boot_info *bi = rt_boot_info;
	uint64_t h = 1469598103934665603ULL;

	for (uint64_t i = 0; i < 2000000; i++)
		h = step(h, i);
	rt_printf("snapcount: before ready gen=%llu\n",
		  (unsigned long long)bi->generation);
	rt_hc_ready();
	for (uint64_t i = 2000000; i < 4000000; i++)
		h = step(h, i);
	rt_printf("snapcount: result=%016llx gen=%llu seed=%016llx\n",
		  (unsigned long long)h, (unsigned long long)bi->generation,
		  (unsigned long long)bi->seed[0]);
	rt_poweroff();
}
