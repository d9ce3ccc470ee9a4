/* hello: the smallest guest. Prints one line and powers off through the
 * i8042 (status 0). tests/integration/guest-hello expects exactly this. */
#include "rt.h"

int main(void)
{
	rt_puts("hello from guest\n");
	rt_poweroff();
}
