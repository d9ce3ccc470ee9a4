/* spin: prints one line, then loops forever at CPL3 (for --timeout tests). */
#include "rt.h"

int main(void)
{
	rt_puts("spin: spinning\n");
	for (;;)
		__asm__ volatile("" ::: "memory");
}
