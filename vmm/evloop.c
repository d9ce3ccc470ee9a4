/*
 * evloop.c - the VM's event thread: one epoll set, one thread.
 *
 * Each registered fd has a heap entry whose address is the epoll cookie.
 * Entries are never freed while a batch of epoll events may still name
 * them: evloop_del unlinks and marks the entry dead, and the dispatcher frees
 * dead entries after the batch (or evloop_destroy does). A callback runs
 * without the loop lock, so it may call evloop_add/mod/del; evloop_del from
 * another thread waits until a running callback for that entry has returned,
 * which is what makes "fn is not called again after del returns" true.
 *
 * Lock order: the loop lock is a leaf (never held across a callback). But
 * evloop_del from a foreign thread waits for a running callback, so a thread
 * must not call evloop_del while holding a lock that fd's callback takes:
 * it could wait forever. blk.c deletes its fd without its lock held.
 */
#include "evloop.h"

#include "ember.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define LOG_MOD "evloop"
#include "log.h"

#define EVLOOP_BATCH 32

struct ev_entry {
	int fd;
	evloop_fn fn;
	void *opaque;
	bool dead;
	struct ev_entry *next; /* live list, or the dead list once deleted */
};

struct evloop {
	int epfd;
	int wake_fd; /* eventfd: stop request */
	pthread_mutex_t lock;
	pthread_cond_t idle; /* signalled when `running` goes back to NULL */
	struct ev_entry *live, *dead;
	struct ev_entry *running; /* entry whose callback is executing */
	pthread_t dispatcher;     /* valid while `dispatching` */
	bool dispatching;
	pthread_t thread;
	bool started, stop;
	/* evloop_pause(): the dispatcher parks between callbacks while
	 * pause_req, saying so with parked (both under lock). */
	bool pause_req, parked;
	pthread_cond_t park;      /* parked changed, or pause_req cleared */
	struct evloop *next_loop; /* live_loops list */
};

/*
 * Live loops. evloop_add/mod/del on a loop that evloop_destroy already freed
 * return -ENOENT instead of touching freed memory, so a VM may destroy its
 * loop (guaranteeing no callback runs any more) before its devices, whose
 * destroy still unregisters their fds. A stale pointer can only match a new
 * loop at the same address, where the fd (still open, so not reusable by
 * anyone else) is not registered: -ENOENT again.
 */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct evloop *live_loops;

static bool loop_is_live(const struct evloop *loop)
{
	bool found = false;

	pthread_mutex_lock(&live_lock);
	for (struct evloop *l = live_loops; l && !found; l = l->next_loop)
		found = l == loop;
	pthread_mutex_unlock(&live_lock);
	return found;
}

struct evloop *evloop_create(int *err)
{
	struct evloop *loop;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	int ret;

	loop = calloc(1, sizeof(*loop));
	if (!loop) {
		ret = -ENOMEM;
		goto err;
	}
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		ret = -errno;
		goto err_free;
	}
	loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->wake_fd < 0) {
		ret = -errno;
		goto err_epoll;
	}
	/* data.ptr == NULL marks the wake eventfd. */
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wake_fd, &ev) < 0) {
		ret = -errno;
		goto err_wake;
	}
	pthread_mutex_init(&loop->lock, NULL);
	pthread_cond_init(&loop->idle, NULL);
	pthread_cond_init(&loop->park, NULL);
	pthread_mutex_lock(&live_lock);
	loop->next_loop = live_loops;
	live_loops = loop;
	pthread_mutex_unlock(&live_lock);
	return loop;

err_wake:
	close(loop->wake_fd);
err_epoll:
	close(loop->epfd);
err_free:
	free(loop);
err:
	*err = ret;
	return NULL;
}

static void free_dead(struct evloop *loop)
{
	struct ev_entry *e, *next;

	pthread_mutex_lock(&loop->lock);
	e = loop->dead;
	loop->dead = NULL;
	pthread_mutex_unlock(&loop->lock);
	for (; e; e = next) {
		next = e->next;
		free(e);
	}
}

/* Between callbacks: while a pause is asked for (and the loop is not
 * stopping), say so and wait. Lock held. */
static void park_locked(struct evloop *loop)
{
	if (!loop->pause_req)
		return;
	loop->parked = true;
	pthread_cond_broadcast(&loop->park);
	while (loop->pause_req && !loop->stop)
		pthread_cond_wait(&loop->park, &loop->lock);
	loop->parked = false;
}

/* One epoll_wait and its callbacks. Returns events handled or -errno. */
static int dispatch(struct evloop *loop, int timeout_ms)
{
	struct epoll_event evs[EVLOOP_BATCH];
	int n, handled = 0;

	n = epoll_wait(loop->epfd, evs, EVLOOP_BATCH, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct ev_entry *e = evs[i].data.ptr;
		uint64_t v;

		if (!e) {
			/* Stop request: drain the counter, the flag is what
			 * matters. */
			if (read(loop->wake_fd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				log_warn_errno("wake eventfd read");
			continue;
		}
		pthread_mutex_lock(&loop->lock);
		park_locked(loop);
		if (e->dead) { /* deleted earlier in this batch */
			pthread_mutex_unlock(&loop->lock);
			continue;
		}
		loop->running = e;
		pthread_mutex_unlock(&loop->lock);

		e->fn(e->opaque, evs[i].events);
		handled++;

		pthread_mutex_lock(&loop->lock);
		loop->running = NULL;
		pthread_cond_broadcast(&loop->idle);
		pthread_mutex_unlock(&loop->lock);
	}
	/* No event of this batch refers to a dead entry any more. */
	free_dead(loop);
	return handled;
}

static void *evloop_thread(void *arg)
{
	struct evloop *loop = arg;
	int ret;

	pthread_setname_np(pthread_self(), "event");
	ember_thread_serving(EMBER_THREAD_EVENT); /* setup ends here */
	for (;;) {
		pthread_mutex_lock(&loop->lock);
		park_locked(loop);
		if (loop->stop) {
			pthread_mutex_unlock(&loop->lock);
			break;
		}
		pthread_mutex_unlock(&loop->lock);
		ret = dispatch(loop, -1);
		if (ret < 0) {
			log_err("epoll_wait: %s", strerror(-ret));
			break;
		}
	}
	return NULL;
}

int evloop_start(struct evloop *loop)
{
	int ret;

	pthread_mutex_lock(&loop->lock);
	if (loop->started) {
		pthread_mutex_unlock(&loop->lock);
		return -EBUSY;
	}
	loop->stop = false;
	loop->dispatching = true;
	ret = -pthread_create(&loop->thread, NULL, evloop_thread, loop);
	if (ret == 0) {
		loop->started = true;
		loop->dispatcher = loop->thread;
	} else {
		loop->dispatching = false;
	}
	pthread_mutex_unlock(&loop->lock);
	return ret;
}

void evloop_destroy(struct evloop *loop)
{
	uint64_t one = 1;
	struct ev_entry *e, *next;

	if (!loop)
		return;
	pthread_mutex_lock(&live_lock);
	for (struct evloop **pp = &live_loops; *pp; pp = &(*pp)->next_loop) {
		if (*pp == loop) {
			*pp = loop->next_loop;
			break;
		}
	}
	pthread_mutex_unlock(&live_lock);
	pthread_mutex_lock(&loop->lock);
	loop->stop = true;
	pthread_cond_broadcast(&loop->park);
	pthread_mutex_unlock(&loop->lock);
	if (loop->started) {
		if (write(loop->wake_fd, &one, sizeof(one)) < 0)
			log_warn_errno("wake eventfd write");
		pthread_join(loop->thread, NULL);
	}
	for (e = loop->live; e; e = next) {
		next = e->next;
		free(e);
	}
	free_dead(loop);
	close(loop->wake_fd);
	close(loop->epfd);
	pthread_cond_destroy(&loop->idle);
	pthread_cond_destroy(&loop->park);
	pthread_mutex_destroy(&loop->lock);
	free(loop);
}

static struct ev_entry *find_live(struct evloop *loop, int fd)
{
	for (struct ev_entry *e = loop->live; e; e = e->next)
		if (e->fd == fd)
			return e;
	return NULL;
}

int evloop_add(struct evloop *loop, int fd, uint32_t events, evloop_fn fn,
	       void *opaque)
{
	struct epoll_event ev = { .events = events };
	struct ev_entry *e;
	int ret = 0;

	if (fd < 0 || !fn)
		return -EINVAL;
	if (!loop_is_live(loop))
		return -ENOENT;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->fd = fd;
	e->fn = fn;
	e->opaque = opaque;
	ev.data.ptr = e;
	pthread_mutex_lock(&loop->lock);
	if (find_live(loop, fd)) {
		ret = -EEXIST;
	} else if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		ret = -errno;
	} else {
		e->next = loop->live;
		loop->live = e;
	}
	pthread_mutex_unlock(&loop->lock);
	if (ret)
		free(e);
	return ret;
}

int evloop_mod(struct evloop *loop, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events };
	struct ev_entry *e;
	int ret = 0;

	if (!loop_is_live(loop))
		return -ENOENT;
	pthread_mutex_lock(&loop->lock);
	e = find_live(loop, fd);
	if (!e) {
		ret = -ENOENT;
	} else {
		ev.data.ptr = e;
		if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
			ret = -errno;
	}
	pthread_mutex_unlock(&loop->lock);
	return ret;
}

int evloop_del(struct evloop *loop, int fd)
{
	struct ev_entry **pp, *e = NULL;
	int ret = 0;

	if (!loop_is_live(loop))
		return -ENOENT;
	pthread_mutex_lock(&loop->lock);
	for (pp = &loop->live; *pp; pp = &(*pp)->next) {
		if ((*pp)->fd == fd) {
			e = *pp;
			*pp = e->next;
			break;
		}
	}
	if (!e) {
		pthread_mutex_unlock(&loop->lock);
		return -ENOENT;
	}
	/* The fd may already be closed by a careless owner: epoll then
	 * dropped it itself, which is the state we want anyway. */
	if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 &&
	    errno != EBADF && errno != ENOENT)
		ret = -errno;
	e->dead = true;
	e->next = loop->dead;
	loop->dead = e;
	/* From another thread: wait out a callback of this entry in flight.
	 * From the dispatching thread itself (a callback deleting), the
	 * promise holds from the next wait: no waiting, or we deadlock. */
	while (loop->running == e &&
	       !(loop->dispatching &&
		 pthread_equal(loop->dispatcher, pthread_self())))
		pthread_cond_wait(&loop->idle, &loop->lock);
	pthread_mutex_unlock(&loop->lock);
	return ret;
}

int evloop_pause(struct evloop *loop)
{
	uint64_t one = 1;

	pthread_mutex_lock(&loop->lock);
	if (!loop->started || loop->stop ||
	    pthread_equal(loop->thread, pthread_self())) {
		/* No thread to park (or we are it: it runs nothing else). */
		loop->pause_req = true;
		pthread_mutex_unlock(&loop->lock);
		return 0;
	}
	loop->pause_req = true;
	pthread_mutex_unlock(&loop->lock);
	/* Out of epoll_wait, if it sleeps there. */
	if (write(loop->wake_fd, &one, sizeof(one)) < 0)
		log_warn_errno("wake eventfd write");
	pthread_mutex_lock(&loop->lock);
	while (!loop->parked && !loop->stop)
		pthread_cond_wait(&loop->park, &loop->lock);
	pthread_mutex_unlock(&loop->lock);
	return 0;
}

void evloop_resume(struct evloop *loop)
{
	pthread_mutex_lock(&loop->lock);
	loop->pause_req = false;
	pthread_cond_broadcast(&loop->park);
	pthread_mutex_unlock(&loop->lock);
}

int evloop_run_once(struct evloop *loop, int timeout_ms)
{
	int ret;

	pthread_mutex_lock(&loop->lock);
	if (loop->started) {
		pthread_mutex_unlock(&loop->lock);
		return -EBUSY;
	}
	loop->dispatcher = pthread_self();
	loop->dispatching = true;
	pthread_mutex_unlock(&loop->lock);
	ret = dispatch(loop, timeout_ms);
	pthread_mutex_lock(&loop->lock);
	loop->dispatching = false;
	pthread_mutex_unlock(&loop->lock);
	return ret;
}
