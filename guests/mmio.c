/* mmio: reads EMBER_UNMAPPED_MMIO, where no device answers; the VMM must
 * stop the VM with a readable reason. Exits 3 if the read ever returns. */
#include "rt.h"

int main(void)
{
	uint32_t v;

	rt_puts("mmio: reading unmapped MMIO\n");
	v = *(volatile uint32_t *)(uintptr_t)EMBER_UNMAPPED_MMIO;
	rt_printf("mmio: survived, read 0x%x\n", v);
	return 3;
}
