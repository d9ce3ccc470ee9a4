/*
 * stopsig.c - ember_vm_stop() from a signal handler (issue 12, defect 3);
 * tests/integration/stop-signal runs it:
 *
 *   stopsig --guest build/guests/spin
 *
 * ember.h promises that ember_vm_stop() is async-signal-safe. A handler
 * can interrupt any code, including libember holding its VM lock on the
 * same thread, so:
 *  1. the thread that owns the VM lock (taken here through the private
 *     header, as ember_vm_pause() or the status query would hold it) gets
 *     the signal, and the handler calls ember_vm_stop(): it must return,
 *     and the VM must then end with EMBER_EXIT_STOPPED;
 *  2. 2000 signals are thrown at a thread that pauses and resumes a
 *     running VM in a loop (taking the lock each time), each handler
 *     calling ember_vm_stop(): nothing may hang.
 * A watchdog (alarm) turns a hang into a failure with a message.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ember.h"
#include "vm.h" /* vm->lock, to be the thread that holds it */

static struct ember_vm *volatile g_vm;
static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
	(void)sig;
	ember_vm_stop(g_vm);
	handled++;
}

static void on_alarm(int sig)
{
	static const char msg[] = "FAIL: hung: ember_vm_stop() blocked in a "
				  "signal handler (it is not async-signal-safe)\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(1);
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

static struct ember_vm *make_vm(const char *guest)
{
	struct ember_config cfg;
	struct ember_vm *vm;
	char err[512];
	int ret;

	ember_config_init(&cfg);
	cfg.kernel = guest;
	cfg.serial_fd = -1;
	cfg.mem_mib = 32;
	cfg.timeout_ms = 60000;
	vm = ember_vm_create(&cfg, &ret, err, sizeof(err));
	if (!vm)
		fprintf(stderr, "FAIL: create %s: %s\n", guest, err);
	return vm;
}

struct thrower {
	pthread_t target;
	int count;
};

static void *throw_signals(void *arg)
{
	struct thrower *t = arg;
	struct timespec d = { 0, 20000 };

	for (int i = 0; i < t->count; i++) {
		pthread_kill(t->target, SIGUSR1);
		nanosleep(&d, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct runner r = { 0 };
	struct thrower th;
	pthread_t t, tt;
	const char *guest = argc > 2 && !strcmp(argv[1], "--guest") ? argv[2] :
								       NULL;

	if (!guest) {
		fprintf(stderr, "usage: %s --guest GUEST\n", argv[0]);
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGALRM, on_alarm);

	/* 1. The signal lands on the thread holding the VM lock. */
	r.vm = g_vm = make_vm(guest);
	if (!r.vm)
		return 1;
	pthread_create(&t, NULL, run, &r);
	alarm(20);
	pthread_mutex_lock(&r.vm->lock);
	raise(SIGUSR1); /* the handler runs here, on this thread, now */
	pthread_mutex_unlock(&r.vm->lock);
	pthread_join(t, NULL);
	if (!handled || r.ret < 0 || r.ex.reason != EMBER_EXIT_STOPPED) {
		fprintf(stderr, "FAIL: the VM ended with %s (%s), want stopped\n",
			ember_exit_reason_name(r.ex.reason), r.ex.detail);
		return 1;
	}
	ember_vm_destroy(r.vm);
	printf("ok   ember_vm_stop() in a handler on the thread holding the VM "
	       "lock: returned, VM stopped (%s)\n", r.ex.detail);

	/* 2. A storm of signals at a thread that keeps taking the lock. */
	memset(&r, 0, sizeof(r));
	r.vm = g_vm = make_vm(guest);
	if (!r.vm)
		return 1;
	handled = 0;
	pthread_create(&t, NULL, run, &r);
	th.target = pthread_self();
	th.count = 2000;
	alarm(60);
	pthread_create(&tt, NULL, throw_signals, &th);
	do {
		ember_vm_pause(r.vm);
		ember_vm_resume(r.vm);
	} while (pthread_tryjoin_np(tt, NULL) != 0);
	pthread_join(t, NULL);
	alarm(0);
	if (r.ex.reason != EMBER_EXIT_STOPPED) {
		fprintf(stderr, "FAIL: storm: the VM ended with %s\n",
			ember_exit_reason_name(r.ex.reason));
		return 1;
	}
	ember_vm_destroy(r.vm);
	printf("ok   %d signals whose handler calls ember_vm_stop(), at a "
	       "thread pausing and resuming the VM: no hang\n", (int)handled);
	return 0;
}
