/* Unit tests: the epoll event loop (evloop.c). */
// link: vmm/evloop.c vmm/thread.c vmm/log.c
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "evloop.h"

struct probe {
	int fd;
	int calls;
	uint32_t events;
	struct evloop *loop;
	int del_fd;       /* fd to delete from inside the callback, or -1 */
	int sleep_ms;     /* callback duration */
	int started, finished;
};

static void kick(int fd)
{
	uint64_t one = 1;

	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

static void probe_cb(void *opaque, uint32_t events)
{
	struct probe *p = opaque;
	uint64_t v;

	__atomic_store_n(&p->started, 1, __ATOMIC_SEQ_CST);
	if (read(p->fd, &v, sizeof(v)) < 0)
		v = 0;
	p->events = events;
	if (p->sleep_ms)
		usleep((useconds_t)p->sleep_ms * 1000);
	if (p->del_fd >= 0)
		assert_int_equal(evloop_del(p->loop, p->del_fd), 0);
	__atomic_add_fetch(&p->calls, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&p->finished, 1, __ATOMIC_SEQ_CST);
}

static void probe_init(struct probe *p, struct evloop *loop)
{
	*p = (struct probe){ .loop = loop, .del_fd = -1 };
	p->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(p->fd >= 0);
}

static void test_run_once(void **state)
{
	struct evloop *loop;
	struct probe p;
	int err = 0;

	(void)state;
	loop = evloop_create(&err);
	assert_non_null(loop);
	probe_init(&p, loop);
	assert_int_equal(evloop_add(loop, p.fd, EPOLLIN, probe_cb, &p), 0);
	assert_int_equal(evloop_add(loop, p.fd, EPOLLIN, probe_cb, &p), -EEXIST);
	assert_int_equal(evloop_add(loop, -1, EPOLLIN, probe_cb, &p), -EINVAL);
	assert_int_equal(evloop_run_once(loop, 0), 0); /* nothing ready */
	kick(p.fd);
	assert_int_equal(evloop_run_once(loop, 1000), 1);
	assert_int_equal(p.calls, 1);
	assert_true(p.events & EPOLLIN);
	/* Disabled by mod: no callback although the fd is readable. */
	assert_int_equal(evloop_mod(loop, p.fd, 0), 0);
	kick(p.fd);
	assert_int_equal(evloop_run_once(loop, 0), 0);
	assert_int_equal(evloop_mod(loop, p.fd, EPOLLIN), 0);
	assert_int_equal(evloop_run_once(loop, 1000), 1);
	assert_int_equal(p.calls, 2);
	assert_int_equal(evloop_del(loop, p.fd), 0);
	assert_int_equal(evloop_del(loop, p.fd), -ENOENT);
	assert_int_equal(evloop_mod(loop, p.fd, EPOLLIN), -ENOENT);
	kick(p.fd);
	assert_int_equal(evloop_run_once(loop, 0), 0);
	assert_int_equal(p.calls, 2);
	/* Re-adding after a delete works. */
	assert_int_equal(evloop_add(loop, p.fd, EPOLLIN, probe_cb, &p), 0);
	assert_int_equal(evloop_run_once(loop, 1000), 1);
	evloop_destroy(loop);
	close(p.fd);
}

/* Two fds ready in one batch; the first callback deletes the other: the
 * second must not run (and ASan checks nothing freed is touched). */
static void test_del_from_callback(void **state)
{
	struct evloop *loop;
	struct probe a, b;
	int err = 0;

	(void)state;
	loop = evloop_create(&err);
	assert_non_null(loop);
	probe_init(&a, loop);
	probe_init(&b, loop);
	a.del_fd = b.fd;
	b.del_fd = a.fd;
	assert_int_equal(evloop_add(loop, a.fd, EPOLLIN, probe_cb, &a), 0);
	assert_int_equal(evloop_add(loop, b.fd, EPOLLIN, probe_cb, &b), 0);
	kick(a.fd);
	kick(b.fd);
	assert_int_equal(evloop_run_once(loop, 1000), 1);
	assert_int_equal(a.calls + b.calls, 1);
	evloop_destroy(loop);
	close(a.fd);
	close(b.fd);
}

static void wait_for(int *flag)
{
	for (int i = 0; i < 2000 && !__atomic_load_n(flag, __ATOMIC_SEQ_CST);
	     i++)
		usleep(1000);
	assert_true(__atomic_load_n(flag, __ATOMIC_SEQ_CST));
}

static void test_thread(void **state)
{
	struct evloop *loop;
	struct probe p;
	int err = 0;

	(void)state;
	loop = evloop_create(&err);
	assert_non_null(loop);
	probe_init(&p, loop);
	p.sleep_ms = 100;
	assert_int_equal(evloop_add(loop, p.fd, EPOLLIN, probe_cb, &p), 0);
	assert_int_equal(evloop_start(loop), 0);
	assert_int_equal(evloop_start(loop), -EBUSY);
	assert_int_equal(evloop_run_once(loop, 0), -EBUSY);
	kick(p.fd);
	wait_for(&p.started);
	/* The callback is sleeping: del must wait until it returned. */
	assert_int_equal(evloop_del(loop, p.fd), 0);
	assert_int_equal(__atomic_load_n(&p.finished, __ATOMIC_SEQ_CST), 1);
	kick(p.fd);
	usleep(50 * 1000);
	assert_int_equal(__atomic_load_n(&p.calls, __ATOMIC_SEQ_CST), 1);
	/* Add from another thread while the loop waits. */
	p.sleep_ms = 0;
	p.finished = 0;
	assert_int_equal(evloop_add(loop, p.fd, EPOLLIN, probe_cb, &p), 0);
	wait_for(&p.finished);
	assert_int_equal(__atomic_load_n(&p.calls, __ATOMIC_SEQ_CST), 2);
	evloop_destroy(loop); /* stops and joins a thread blocked in epoll */
	/* Device teardown after the loop's: refused, not a use-after-free. */
	assert_int_equal(evloop_del(loop, p.fd), -ENOENT);
	assert_int_equal(evloop_mod(loop, p.fd, EPOLLIN), -ENOENT);
	assert_int_equal(evloop_add(loop, p.fd, EPOLLIN, probe_cb, &p), -ENOENT);
	close(p.fd);
}

static int wait_calls(struct probe *p, int want, int ms)
{
	for (int i = 0; i < ms; i++) {
		if (__atomic_load_n(&p->calls, __ATOMIC_SEQ_CST) >= want)
			return 1;
		usleep(1000);
	}
	return 0;
}

/* evloop_pause() parks the event thread: an event that arrives meanwhile
 * waits until evloop_resume(); a pause that finds a callback running waits
 * for it to return first. */
static void test_pause(void **state)
{
	struct evloop *loop;
	struct probe p;
	int err = 0;

	(void)state;
	loop = evloop_create(&err);
	assert_non_null(loop);
	probe_init(&p, loop);
	/* Not started: returns at once, and marks nothing that sticks. */
	assert_int_equal(evloop_pause(loop), 0);
	evloop_resume(loop);
	assert_int_equal(evloop_add(loop, p.fd, EPOLLIN, probe_cb, &p), 0);
	assert_int_equal(evloop_start(loop), 0);
	kick(p.fd);
	assert_true(wait_calls(&p, 1, 2000));

	assert_int_equal(evloop_pause(loop), 0);
	kick(p.fd);
	usleep(50000);
	assert_int_equal(__atomic_load_n(&p.calls, __ATOMIC_SEQ_CST), 1);
	evloop_resume(loop);
	assert_true(wait_calls(&p, 2, 2000));

	/* A callback in progress finishes before the pause returns. */
	p.sleep_ms = 100;
	__atomic_store_n(&p.finished, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&p.started, 0, __ATOMIC_SEQ_CST);
	kick(p.fd);
	while (!__atomic_load_n(&p.started, __ATOMIC_SEQ_CST))
		usleep(1000);
	assert_int_equal(evloop_pause(loop), 0);
	assert_int_equal(__atomic_load_n(&p.finished, __ATOMIC_SEQ_CST), 1);
	evloop_resume(loop);
	/* Destroying a paused loop does not hang. */
	assert_int_equal(evloop_pause(loop), 0);
	evloop_destroy(loop);
	close(p.fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run_once),
		cmocka_unit_test(test_del_from_callback),
		cmocka_unit_test(test_thread),
		cmocka_unit_test(test_pause),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
