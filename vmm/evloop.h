/*
 * evloop.h - the VM's event thread: one epoll loop.
 *
 * Owns: an epoll set and the thread that waits on it. Devices register file
 * descriptors (ioeventfds, io_uring's eventfd, Unix sockets) with a callback
 * that runs on the event thread. evloop_add/mod/del may be called from any
 * thread, including from a callback.
 */
#ifndef EMBER_EVLOOP_H
#define EMBER_EVLOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef void (*evloop_fn)(void *opaque, uint32_t events);

struct evloop;

/* Creates a loop (not yet running). NULL and *err = -errno on failure. */
struct evloop *evloop_create(int *err);
/* Starts the event thread. 0 or -errno. */
int evloop_start(struct evloop *loop);
/* Stops and joins the thread, then frees the loop. Registered fds are not
 * closed: they belong to whoever registered them. */
void evloop_destroy(struct evloop *loop);

/* Watches `fd` for `events` (EPOLLIN, EPOLLOUT, ...); fn(opaque, revents)
 * runs on the event thread. 0 or -errno. */
int evloop_add(struct evloop *loop, int fd, uint32_t events, evloop_fn fn,
	       void *opaque);
int evloop_mod(struct evloop *loop, int fd, uint32_t events);
/* After it returns, fn will not be called again for fd (unless called from
 * fn itself on the event thread, where that holds from the next wait).
 * add/mod/del on a loop already destroyed return -ENOENT (devices may be
 * destroyed after their loop). */
int evloop_del(struct evloop *loop, int fd);

/* Runs one round of callbacks without the thread (for unit tests): waits at
 * most timeout_ms. Returns the number of events handled or -errno. */
int evloop_run_once(struct evloop *loop, int timeout_ms);

#endif
