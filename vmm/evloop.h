/*
 * evloop.h - the VM's event thread: one epoll loop.
 *
 * Owns: an epoll set and the thread that waits on it. Devices register file
 * descriptors (ioeventfds, io_uring ring fds, Unix sockets) with a callback
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

/*
 * Quiescing (a snapshot's capture): evloop_pause() returns once the event
 * thread is parked between two callbacks, and no callback runs until
 * evloop_resume(); events that arrive meanwhile wait (epoll is
 * level-triggered). Any thread but the event thread itself (there it only
 * marks the loop); with no thread running it returns at once. A callback
 * must not wait for the thread that pauses (blk and vsock callbacks take
 * only their device lock). Not nested: one pauser at a time.
 */
int evloop_pause(struct evloop *loop);
void evloop_resume(struct evloop *loop);

/* Runs one round of callbacks without the thread (for unit tests): waits at
 * most timeout_ms. Returns the number of events handled or -errno. */
int evloop_run_once(struct evloop *loop, int timeout_ms);

#endif
