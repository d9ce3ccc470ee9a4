/*
 * pauselat.c - how long ember_vm_pause() takes on an idle micro guest
 * (issue 12, defect 2); tests/integration/pause-latency runs it.
 *
 *   pauselat --snapshot DIR --tmp DIR [--cycles N]
 *
 * Restores the echo snapshot in this process and pauses and resumes it N
 * times (default 300), timing each pause. An idle micro guest sleeps in
 * the WAIT hypercall (a poll() with a 1 s timeout); a pause's kick that
 * lands after the vCPU left KVM_RUN for the WAIT but before it entered
 * poll() must not be lost, or the pause waits that second out. That
 * window is a few microseconds; poll() is wrapped at link time so that a
 * vCPU thread dawdles 2 ms before each WAIT poll, which widens it to where
 * every cycle (1 ms after the resume: the guest is back in WAIT) falls in
 * it. Prints p50/p99/max; fails when a pause took 500 ms or more.
 */
// ldflags: -Wl,--wrap=poll
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ember.h"

#define LIMIT_US 500000

int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout);

int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	char name[16] = "";

	pthread_getname_np(pthread_self(), name, sizeof(name));
	if (timeout != 0 && !strncmp(name, "vcpu", 4)) {
		struct timespec d = { 0, 2000000 };

		nanosleep(&d, NULL); /* the lost-kick window, 2 ms wide */
	}
	return __real_poll(fds, n, timeout);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct runner {
	struct ember_vm *vm;
	struct ember_exit ex;
	int ret;
};

static void *run(void *arg)
{
	struct runner *r = arg;

	r->ret = ember_vm_run(r->vm, &r->ex);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *snap = NULL, *tmp = NULL;
	char vsock[256], err[512];
	unsigned cycles = 300, slow = 0;
	struct ember_restore rs;
	struct runner r = { 0 };
	pthread_t t;
	uint64_t *lat;
	int ret;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--snapshot"))
			snap = argv[i + 1];
		else if (!strcmp(argv[i], "--tmp"))
			tmp = argv[i + 1];
		else if (!strcmp(argv[i], "--cycles"))
			cycles = (unsigned)atoi(argv[i + 1]);
	}
	if (!snap || !tmp || !cycles) {
		fprintf(stderr, "usage: %s --snapshot DIR --tmp DIR [--cycles N]\n",
			argv[0]);
		return 2;
	}
	snprintf(vsock, sizeof(vsock), "%s/pause.vsock", tmp);
#ifdef EMBER_API_VERSION
	ember_restore_init(&rs);
#else
	memset(&rs, 0, sizeof(rs)); /* libember before ember_restore_init */
	rs.serial_fd = -1;
#endif
	rs.dir = snap;
	rs.vsock_path = vsock;
	rs.timeout_ms = 300000;
	r.vm = ember_vm_restore(&rs, &ret, err, sizeof(err));
	lat = calloc(cycles, sizeof(*lat));
	if (!r.vm || !lat) {
		fprintf(stderr, "FAIL: restore: %s\n", err);
		return 1;
	}
	pthread_create(&t, NULL, run, &r);
	poll(NULL, 0, 100); /* the restored guest settles into WAIT */
	for (unsigned i = 0; i < cycles; i++) {
		uint64_t t0;

		poll(NULL, 0, 1); /* back in WAIT since the resume */
		t0 = now_us();
		if (ember_vm_pause(r.vm) < 0) {
			fprintf(stderr, "FAIL: pause %u: the VM stopped\n", i);
			break;
		}
		lat[i] = now_us() - t0;
		slow += lat[i] >= LIMIT_US;
		ember_vm_resume(r.vm);
	}
	ember_vm_stop(r.vm);
	pthread_join(t, NULL);
	ember_vm_destroy(r.vm);
	qsort(lat, cycles, sizeof(*lat), cmp_u64);
	printf("%u pauses of an idle micro guest (2 ms before each WAIT poll): "
	       "p50 %llu us, p99 %llu us, max %llu us; %u took >= %d ms\n",
	       cycles, (unsigned long long)lat[cycles / 2],
	       (unsigned long long)lat[(cycles * 99) / 100],
	       (unsigned long long)lat[cycles - 1], slow, LIMIT_US / 1000);
	if (slow)
		fprintf(stderr, "FAIL: %u pauses waited out the guest's WAIT\n",
			slow);
	free(lat);
	return slow ? 1 : 0;
}
