/* Test handler for the micro guest: the C library's start-up, stdio,
 * floating point, the heap, TLS (errno), the clock and getrandom, then
 * exit status 0. Built static with musl and glibc (mk/micro.mk). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	struct utsname u;
	unsigned char rnd[16];
	char *big;
	double x = 1.5;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	printf("hello from %s, argc %d, argv[0] %s\n",
#ifdef __GLIBC__
	       "glibc",
#else
	       "musl",
#endif
	       argc, argv[0]);
	printf("float %.3f\n", x * 2.25);
	big = malloc(8 << 20); /* mmap-backed in both libcs */
	if (!big)
		return 3;
	memset(big, 0x5a, 8 << 20);
	free(big);
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return 4;
	if (uname(&u) || strcmp(u.machine, "x86_64"))
		return 5;
	errno = 0;
	if (write(42, "x", 1) != -1 || errno != EBADF)
		return 6;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (t1.tv_sec < t0.tv_sec)
		return 7;
	fprintf(stderr, "stderr works\n");
	printf("bye\n");
	return 0;
}
