/*
 * sched.c - emberd's scheduler: see sched.h.
 *
 * State lives under one mutex (s->lock), taken by the event thread for each
 * batch of events and by API threads in sched_invoke() and the other public
 * calls. An API thread that finds an idle instance writes the INVOKE frame
 * itself (a non-blocking write; a large payload's remainder is left to the
 * event thread on EPOLLOUT), so a warm invocation costs one thread wake-up
 * on the way back and none on the way in. Completions are collected under
 * the lock and their callbacks run after it is dropped, on the event thread.
 *
 * Instance life:
 *
 *   SPAWNING --READY--> SHELL (in the pool) --restore--> RESTORING
 *     --OK restored--> STARTING --vsock "OK n", READY frame--> IDLE
 *   or, when the snapshot carries its connection (micro guests' since
 *   2026-12-03, docs/snapshots.md): RESTORING --OK restored, PING-->
 *     STARTING --PONG--> IDLE
 *   IDLE <--> BUSY (one invocation)          any --> DEAD --reaped--> freed
 *
 * Invocations wait in their function's FIFO; whenever an instance becomes
 * idle or the queue grows, fn_pump() hands queued invocations to idle
 * instances and restores pooled shells for the rest, up to the function's
 * max concurrency. Pumps are deferred to the end of the current batch
 * (s->pumps), so that no path recurses into another.
 *
 * Nothing is freed while an epoll batch may still point at it: dead
 * instances go on s->graveyard and are freed between batches.
 */
#define LOG_MOD "sched"

#include "agent/sched.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "agent/elog.h"
#include "agent/list.h"
#include "agent/timers.h"
#include "ember.h"
#include "ember/shellctl.h"
#include "log.h"
#include "proto/invoke.h"

/* The host waits this long past a function's timeout for the guest's own
 * TIMEOUT report (docs/function-abi.md, section 4). */
#define INV_GRACE_MS 200
#define SPAWN_TIMEOUT_MS 10000
/* A vsock connection that closes mid-invocation: how long to wait for the
 * VMM's EXIT line, which says why. */
#define EXIT_GRACE_MS 100
#define LOG_CAP (64 * 1024)
#define RBUF_SIZE (64 * 1024)
#define FN_BUCKETS 1024
/* Restores of one version that fail in a row before its waiting
 * invocations are failed instead of retried. */
#define START_FAIL_LIMIT 3
/* Spawns that fail in a row before cold starts answer "unavailable". */
#define SPAWN_FAIL_LIMIT 3
#define SPAWN_PARALLEL 8
/* How long after a restore the pool holds back spawning (see pool_main). */
#define POOL_QUIET_NS (10 * 1000 * 1000ull)
/* The event thread wakes at least this often (see timer_arm). */
#define LOOP_MAX_WAIT_MS 1000
/* A PINGed idle instance that has not answered after this is reaped. */
#define PONG_TIMEOUT_MS 2000
/* The pool's bookkeeping tick, and how long without a miss before the
 * pool shrinks by one. */
#define TICK_MS 1000
#define POOL_SHRINK_AFTER_NS (30 * 1000000000ull)
/* Invocations timed before the queue's wait estimate is trusted. */
#define SERVICE_SAMPLES_MIN 8
#define TENANT_BUCKETS 256

enum inst_state {
	I_SPAWNING,
	I_SHELL,
	I_RESTORING,
	I_STARTING,
	I_IDLE,
	I_BUSY,
	I_DEAD,
};

static const char *const state_name[] = {
	"spawning", "shell", "restoring", "starting", "idle", "busy", "dead",
};

struct sched;

struct watch {
	void (*fn)(struct sched *s, struct watch *w, uint32_t events);
	int fd;
};

/* A tenant as the scheduler sees it: its limits and what it holds. */
struct tenant {
	int64_t id;
	struct sched_limits limits;
	bool custom;            /* limits set for it, not the defaults */
	unsigned instances;     /* restoring, idle or busy */
	uint64_t memory_mib;    /* theirs: guest RAM + VMM overhead */
	unsigned inflight;      /* busy instances */
	/* Set when a VM of the tenant could not start its threads (its
	 * cgroup's pids limit): no more instances than that until one that
	 * served is reaped (tenant_thread_limited). 0: no such cap. */
	unsigned thread_cap;
	bool thread_solo;       /* one VM alone is being tried under the cap */
	unsigned dying;         /* VMMs killed, not reaped: threads held */
	struct tenant *hnext;
};

struct fn {
	int64_t id, tenant_id;
	struct tenant *t;
	uint32_t version;
	char name[UTIL_NAME_MAX + 1];
	char tenant[UTIL_NAME_MAX + 1];
	char *snap_dir, *disk;
	bool irqchip;           /* guest "linux": restored in irqchip shells */
	uint32_t memory_mib, timeout_ms, max_conc;
	uint32_t idle_ttl_ms, min_instances;
	bool ws_known;          /* the snapshot has a working set (or gave up) */
	bool carried;           /* the snapshot carries its host connection */
	bool ws_recording;      /* an instance is writing it now */
	uint64_t avg_service_ns;    /* moving average of durations */
	unsigned service_samples;
	struct list_node cap_node;  /* on s->cap_waiters: no room to start */
	bool retired;           /* replaced or removed: no new work */
	unsigned refs;          /* instances pointing here */
	struct fn *hnext;       /* hash chain */
	struct list_node idle;  /* idle instances, most recently used first */
	unsigned nr_idle, nr_busy, nr_starting;
	struct list_node queue; /* waiting invocations, FIFO */
	unsigned nr_queued;
	struct list_node wait_node; /* on s->shell_waiters */
	struct list_node pump_node; /* on s->pumps */
	unsigned start_failures;    /* in a row */
	char last_start_error[200];
	struct sched_fn_stats st;
};

struct inv {
	struct list_node node; /* fn->queue, then s->completed */
	struct fn *fn;
	uint8_t *payload;
	size_t len;
	sched_done_fn done;
	void *ctx;
	struct timespec start;
	uint64_t enq_ns, sent_ns;
	uint64_t wait_ms;      /* longest wait for an instance */
	struct timer timer;    /* queue wait */
	struct sched_result res;
	char *logs;
	size_t logs_len, logs_cap;
	bool logs_dropped;
	/* kept for the record after the instance is gone */
	int64_t tenant_id, fn_id;
	uint32_t version, memory_mib, timeout_ms;
	char tenant[UTIL_NAME_MAX + 1], function[UTIL_NAME_MAX + 1];
};

struct inst {
	enum inst_state state;
	bool irqchip;              /* a shell for Linux snapshots (--irqchip) */
	struct vmmproc proc;
	struct fn *fn;             /* NULL while spawning or pooled */
	struct watch w_ctl, w_vsock, w_pid;
	struct list_node node;     /* s->pool or fn->idle */
	struct list_node all;      /* s->insts, then s->graveyard */
	struct list_node lru;      /* s->idle_lru while idle, oldest first */
	struct timer timer;
	uint64_t memory_mib;       /* what it counts against the budget */
	uint64_t ping_sent_ns;     /* a PING waits for its PONG (0: none) */
	uint64_t last_ping_ns;     /* last PONG, or when it became idle */
	bool ws_pending;           /* "workingset" sent, its reply not in */
	int ws_fd, wsd_fd;         /* the files it writes */
	struct inv *inv;           /* BUSY */
	bool fresh;                /* restored, no invocation served yet */
	bool dying;                /* killed, counted in fn->t->dying */
	bool first;                /* serving its first invocation */
	uint64_t ready_ns;         /* when it became ready (READY) */
	bool want_out;             /* EPOLLOUT armed */
	bool handshaken;           /* vsock "OK <n>" seen */
	bool vsock_gone;
	bool lost;                 /* a socket closed: waiting for the why */
	bool restore_pending;      /* the restore's reply has not come yet */
	bool warming;              /* carried: its warm-up PING is out */
	bool log_kept;             /* the LOG frame being read is kept */
	uint64_t restore_ns, init_ns, last_used_ns;
	char hs[32];
	size_t hs_len;
	struct ember_inv_dec dec;
	uint8_t small[EMBER_INV_MAX_ERROR];
	uint8_t hdr[EMBER_INV_HDR_SIZE];
	size_t out_off;            /* bytes of hdr + payload written */
	char exit_msg[600];        /* from the EXIT line, when it came */
	char lost_why[96];
};

struct sched {
	struct sched_config cfg;
	char *vmm, *runtime_dir;
	struct sched_hooks hooks;
	pthread_mutex_t lock;
	pthread_cond_t pool_cond, drain_cond;
	pthread_t loop_thread, pool_thread;
	bool loop_started, pool_started;
	int epfd, wakefd;
	struct watch w_wake;
	/* When the event thread's current epoll_wait ends at the latest
	 * (monotonic ns): another thread that arms an earlier timer wakes it,
	 * a later one need not. */
	uint64_t loop_wake_at;
	bool draining, stopping;
	/* functions */
	struct fn *buckets[FN_BUCKETS];
	unsigned nr_fns;
	struct list_node shell_waiters; /* fns that want shells, FIFO */
	struct list_node pumps;
	/* instances */
	struct list_node insts, graveyard;
	unsigned nr_insts;
	/* the pool */
	struct list_node pool;          /* ready shells, oldest first */
	unsigned nr_ready, nr_spawning;
	/* Shells with an in-kernel irqchip, for guest "linux" snapshots:
	 * spawned only for functions that wait for one, never pre-warmed,
	 * and not counted above. */
	struct list_node pool_irq;
	unsigned nr_irq_ready, nr_irq_spawning;
	unsigned nr_restoring;          /* instances restoring, all functions */
	uint64_t last_restore_ns;       /* when the last restore was sent */
	uint64_t spawn_seq, spawned, spawn_failures;
	unsigned spawn_streak;          /* failures in a row */
	uint64_t spawn_backoff_until;
	char spawn_error[200];
	/* tenants, memory */
	struct tenant *tenants[TENANT_BUCKETS];
	unsigned nr_tenants;
	uint64_t memory_committed_mib;
	struct list_node idle_lru;      /* every idle instance, oldest first */
	struct list_node cap_waiters;   /* fns waiting for memory or limits */
	uint64_t reclaimed, reaped;
	/* pool sizing */
	unsigned pool_target;
	uint64_t pool_misses, last_miss_ns, last_grow_ns;
	unsigned restores_tick;
	double restore_rate;
	struct timer tick;
	/* timers */
	struct timers timers;
	/* invocations */
	struct list_node completed;
	unsigned inflight;
	uint64_t req_seed, req_count;
	uint8_t rbuf[RBUF_SIZE];
};

static void inst_kill(struct sched *s, struct inst *in);
static void inst_lost(struct sched *s, struct inst *in, const char *why);
static void fn_pump(struct sched *s, struct fn *fn);
static void fn_schedule_pump(struct sched *s, struct fn *fn);
static void on_ctl(struct sched *s, struct watch *w, uint32_t ev);
static void idle_enter(struct sched *s, struct inst *in);
static void idle_timer_arm(struct sched *s, struct inst *in);
static void fn_time_service(struct fn *fn, uint64_t ns);
static void ws_record(struct sched *s, struct inst *in);
static void inst_ready(struct sched *s, struct inst *in);
static int inst_warm_up(struct sched *s, struct inst *in);

const char *sched_outcome_name(enum sched_outcome o)
{
	static const char *const names[] = {
		"ok", "function_error", "timeout", "crash", "throttled",
		"unavailable", "internal", "gone",
	};

	return (unsigned)o < sizeof(names) / sizeof(names[0]) ? names[o] :
								  "unknown";
}

/* ---------------------------------------------------------------------
 * Timers (timers.h; lock held)
 */

static void wake(struct sched *s);

/* Arms (or re-arms) t to fire `ms` from now. Failing to grow the heap is
 * logged and leaves the timer unarmed: the bounded waits it guards then
 * rely on the other exits (a VMM death, the peer's own timeout). */
static void timer_arm(struct sched *s, struct timer *t, uint64_t ms,
		      void (*fire)(void *s, struct timer *t))
{
	uint64_t at = util_now_ns() + ms * 1000000ull;

	if (timers_arm(&s->timers, t, at, fire)) {
		log_err("timer heap: out of memory");
		return;
	}
	/* A timer armed from another thread (an API thread dispatching,
	 * the pool thread) that is due before the event thread's wait ends
	 * must shorten that wait. The wait is capped (LOOP_MAX_WAIT_MS), so
	 * the common case, a deadline seconds away, costs no wake-up. */
	if (at < s->loop_wake_at && s->loop_started &&
	    !pthread_equal(pthread_self(), s->loop_thread))
		wake(s);
}

static void timer_cancel(struct sched *s, struct timer *t)
{
	timers_cancel(&s->timers, t);
}

/* Milliseconds until the next timer, for epoll_wait, at most
 * LOOP_MAX_WAIT_MS; records when that wait ends. */
static int timer_wait_ms(struct sched *s)
{
	struct timer *first = timers_first(&s->timers);
	uint64_t now = util_now_ns(), ms = LOOP_MAX_WAIT_MS;

	if (first) {
		if (first->at <= now)
			ms = 0;
		else if ((first->at - now + 999999) / 1000000 < ms)
			ms = (first->at - now + 999999) / 1000000;
	}
	s->loop_wake_at = now + ms * 1000000ull;
	return (int)ms;
}


/* ---------------------------------------------------------------------
 * Watches (epoll registrations; lock held or before the loop starts)
 */

static int watch_add(struct sched *s, struct watch *w, int fd,
		     void (*fn)(struct sched *, struct watch *, uint32_t))
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = w };

	w->fd = fd;
	w->fn = fn;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		w->fd = -1;
		return -errno;
	}
	return 0;
}

static void watch_set_out(struct sched *s, struct watch *w, bool out)
{
	struct epoll_event ev = {
		.events = EPOLLIN | (out ? EPOLLOUT : 0),
		.data.ptr = w,
	};

	if (w->fd >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

/* Removes and closes w's fd (if `close_fd`). */
static void watch_del(struct sched *s, struct watch *w, bool close_fd)
{
	if (w->fd < 0)
		return;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	if (close_fd)
		close(w->fd);
	w->fd = -1;
}

static void wake(struct sched *s)
{
	uint64_t one = 1;

	if (write(s->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn_errno("eventfd write");
}

/* ---------------------------------------------------------------------
 * Functions
 */

static struct fn *fn_find(struct sched *s, int64_t id)
{
	struct fn *f = s->buckets[(uint64_t)id % FN_BUCKETS];

	while (f && f->id != id)
		f = f->hnext;
	return f;
}

static void fn_hash_del(struct sched *s, struct fn *fn)
{
	struct fn **pp = &s->buckets[(uint64_t)fn->id % FN_BUCKETS];

	while (*pp && *pp != fn)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = fn->hnext;
		s->nr_fns--;
	}
	fn->hnext = NULL;
}

static void fn_free(struct fn *fn)
{
	free(fn->snap_dir);
	free(fn->disk);
	free(fn);
}

/* Frees a retired function once no instance points at it. */
static void fn_put(struct sched *s, struct fn *fn)
{
	(void)s;
	if (fn->retired && fn->refs == 0 && !list_linked(&fn->pump_node))
		fn_free(fn);
}

static unsigned fn_total(const struct fn *fn)
{
	return fn->nr_idle + fn->nr_busy + fn->nr_starting;
}

/* Instances fn should start now: one per queued invocation not yet
 * covered by a start, or what its min_instances lacks, whichever is more
 * (not capped by its max concurrency). */
static unsigned fn_need(const struct fn *fn)
{
	unsigned need = fn->nr_queued > fn->nr_starting ?
				fn->nr_queued - fn->nr_starting : 0;

	/* Provisioned concurrency: min_instances whatever the load. */
	if (fn_total(fn) + need < fn->min_instances)
		need = fn->min_instances - fn_total(fn);
	return need;
}

static void fn_schedule_pump(struct sched *s, struct fn *fn)
{
	if (!list_linked(&fn->pump_node))
		list_append(&s->pumps, &fn->pump_node);
}

static void pumps_run(struct sched *s)
{
	struct list_node *n;

	while ((n = list_first(&s->pumps))) {
		struct fn *fn = container_of(n, struct fn, pump_node);

		list_del(n);
		if (fn->retired)
			fn_put(s, fn);
		else
			fn_pump(s, fn);
	}
}

/* ---------------------------------------------------------------------
 * Tenants, memory and capacity (lock held)
 */

static struct tenant *tenant_get(struct sched *s, int64_t id)
{
	struct tenant **b = &s->tenants[(uint64_t)id % TENANT_BUCKETS], *t;

	for (t = *b; t; t = t->hnext)
		if (t->id == id)
			return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->id = id;
	t->limits = s->cfg.tenant_default;
	t->hnext = *b;
	*b = t;
	s->nr_tenants++;
	return t;
}

static uint64_t inst_cost_mib(const struct fn *fn)
{
	return (uint64_t)fn->memory_mib + SCHED_VMM_OVERHEAD_MIB;
}

/* Something that held capacity let it go (an instance ended, an
 * invocation finished): functions waiting for room try again. */
static void capacity_released(struct sched *s)
{
	struct list_node *n;

	while ((n = list_first(&s->cap_waiters))) {
		list_del(n);
		fn_schedule_pump(s, container_of(n, struct fn, cap_node));
	}
}

static void fn_wait_capacity(struct sched *s, struct fn *fn)
{
	if (!list_linked(&fn->cap_node))
		list_append(&s->cap_waiters, &fn->cap_node);
}

static bool tenant_can_run(const struct tenant *t)
{
	return !t->limits.concurrency || t->inflight < t->limits.concurrency;
}

/* The least recently used idle instance that may be reclaimed to make
 * room: of tenant t only (t non-NULL), never of `keep`, never one a
 * function needs for its min_instances. */
static struct inst *lru_victim(struct sched *s, const struct tenant *t,
			       const struct fn *keep)
{
	struct list_node *n, *tmp;

	list_for_each_safe(n, tmp, &s->idle_lru) {
		struct inst *in = container_of(n, struct inst, lru);
		struct fn *fn = in->fn;

		if (fn == keep || (t && fn->t != t))
			continue;
		if (fn_total(fn) <= fn->min_instances && !fn->retired)
			continue;
		return in;
	}
	return NULL;
}

/* Whether fn may start one more instance now, given its tenant's limits
 * and the memory budget; idle instances are reclaimed, least recently used
 * first, to make room. */
static bool admit_start(struct sched *s, struct fn *fn)
{
	uint64_t need = inst_cost_mib(fn);
	struct tenant *t = fn->t;

	for (;;) {
		bool t_ok = (!t->limits.instances ||
			     t->instances < t->limits.instances) &&
			    (!t->thread_cap || (t->instances < t->thread_cap &&
						!t->dying)) &&
			    (!t->limits.memory_mib ||
			     t->memory_mib + need <= t->limits.memory_mib);
		bool mem_ok = !s->cfg.memory_budget_mib ||
			      s->memory_committed_mib + need <=
				      s->cfg.memory_budget_mib;
		struct inst *victim;

		if (t_ok && mem_ok)
			return true;
		victim = lru_victim(s, t_ok ? NULL : t, fn);
		if (!victim)
			return false;
		s->reclaimed++;
		inst_kill(s, victim);
	}
}

/* ---------------------------------------------------------------------
 * Invocations
 */

static uint64_t request_id_next(struct sched *s)
{
	/* splitmix64 over a random seed: ids are unique per run and do not
	 * reveal how many requests others made. */
	uint64_t z;

	do {
		z = s->req_seed + (++s->req_count) * 0x9e3779b97f4a7c15ull;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
	} while (z == 0);
	return z;
}

/* Ends an invocation (lock held): off its queue, its answer filled in; the
 * callback runs after the lock is dropped. */
static void inv_complete(struct sched *s, struct inv *inv,
			 enum sched_outcome o, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void inv_complete(struct sched *s, struct inv *inv,
			 enum sched_outcome o, const char *fmt, ...)
{
	struct fn *fn = inv->fn;

	timer_cancel(s, &inv->timer);
	if (list_linked(&inv->node)) {
		list_del(&inv->node);
		if (fn)
			fn->nr_queued--;
	}
	inv->res.outcome = o;
	if (fmt) {
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(inv->res.message, sizeof(inv->res.message), fmt, ap);
		va_end(ap);
	}
	if (o == SCHED_THROTTLED && !inv->res.retry_after_s)
		inv->res.retry_after_s = 1;
	if (fn) {
		switch (o) {
		case SCHED_FN_ERROR: fn->st.errors++; break;
		case SCHED_TIMEOUT: fn->st.timeouts++; break;
		case SCHED_CRASH: fn->st.crashes++; break;
		case SCHED_THROTTLED: fn->st.throttled++; break;
		default: break;
		}
	}
	inv->fn = NULL;
	list_append(&s->completed, &inv->node);
}

/* Runs the collected completions' callbacks (lock NOT held). */
static void completions_run(struct sched *s, struct list_node *done)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, done) {
		struct inv *inv = container_of(n, struct inv, node);
		struct sched_record rec = {
			.tenant_id = inv->tenant_id,
			.fn_id = inv->fn_id,
			.tenant = inv->tenant,
			.function = inv->function,
			.version = inv->version,
			.timeout_ms = inv->timeout_ms,
			.request_id = inv->res.request_id,
			/* waited for an instance, or until refused */
			.queued_ns = inv->res.queued_ns ?
					     inv->res.queued_ns :
					     util_now_ns() - inv->enq_ns,
			.start = inv->start,
			.duration_ns = inv->res.duration_ns,
			.memory_mib = inv->memory_mib,
			.cold = inv->res.cold,
			.init_ns = inv->res.init_ns,
			.outcome = inv->res.outcome,
			.bytes_in = inv->len,
			.bytes_out = inv->res.len,
			.logs = inv->logs,
			.logs_len = inv->logs_len,
			.logs_dropped = inv->logs_dropped,
		};

		list_del(n);
		if (s->hooks.finished)
			s->hooks.finished(s->hooks.ctx, &rec);
		inv->done(inv->ctx, &inv->res);
		free(inv->payload);
		free(inv->logs);
		free(inv);
		pthread_mutex_lock(&s->lock);
		s->inflight--;
		if (s->draining)
			pthread_cond_broadcast(&s->drain_cond);
		pthread_mutex_unlock(&s->lock);
	}
}

static void on_queue_timeout(void *ctx, struct timer *t)
{
	struct sched *s = ctx;
	struct inv *inv = container_of(t, struct inv, timer);

	if (s->spawn_streak >= SPAWN_FAIL_LIMIT)
		inv_complete(s, inv, SCHED_UNAVAILABLE,
			     "no VM could be started: %s", s->spawn_error);
	else
		inv_complete(s, inv, SCHED_THROTTLED,
			     "no instance became free within %llu ms%s",
			     (unsigned long long)inv->wait_ms,
			     inv->fn->t->thread_cap ?
				     " (the tenant's VMs are at their thread "
				     "limit, emberd --tenant-pids-max)" : "");
}

/* Fails every invocation waiting on fn that no instance will serve. */
static void fn_fail_waiters(struct sched *s, struct fn *fn,
			    enum sched_outcome o, const char *why)
{
	while (fn->nr_queued > fn->nr_starting + fn->nr_idle) {
		struct inv *inv = container_of(list_last(&fn->queue),
					       struct inv, node);

		inv_complete(s, inv, o, "%s", why);
	}
}

/* ---------------------------------------------------------------------
 * Instances: writing the INVOKE
 */

/* Writes what is left of the in-flight INVOKE; arms EPOLLOUT while some
 * remains. Returns false when the connection broke. */
static bool inst_flush(struct sched *s, struct inst *in)
{
	struct inv *inv = in->inv;
	size_t total = EMBER_INV_HDR_SIZE + inv->len;

	while (in->out_off < total) {
		struct iovec iov[2];
		int n = 0;
		ssize_t w;

		if (in->out_off < EMBER_INV_HDR_SIZE) {
			iov[n].iov_base = in->hdr + in->out_off;
			iov[n++].iov_len = EMBER_INV_HDR_SIZE - in->out_off;
			if (inv->len) {
				iov[n].iov_base = inv->payload;
				iov[n++].iov_len = inv->len;
			}
		} else {
			size_t off = in->out_off - EMBER_INV_HDR_SIZE;

			iov[n].iov_base = inv->payload + off;
			iov[n++].iov_len = inv->len - off;
		}
		w = writev(in->w_vsock.fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return false;
		}
		in->out_off += (size_t)w;
	}
	if ((in->out_off < total) != in->want_out) {
		in->want_out = in->out_off < total;
		watch_set_out(s, &in->w_vsock, in->want_out);
	}
	return true;
}

static void on_invoke_deadline(void *ctx, struct timer *t);
static void inst_died(struct sched *s, struct inst *in, const char *why);

/* Hands inv to the idle instance in (lock held). */
static void inst_invoke(struct sched *s, struct inst *in, struct inv *inv)
{
	struct fn *fn = in->fn;
	uint64_t now = util_now_ns();

	list_del(&in->node);
	if (list_linked(&in->lru))
		list_del(&in->lru);
	fn->nr_idle--;
	fn->nr_busy++;
	fn->t->inflight++;
	in->state = I_BUSY;
	in->inv = inv;
	timer_cancel(s, &inv->timer);
	list_del(&inv->node);
	fn->nr_queued--;
	/* Cold: the caller waited for this instance's restore. The first
	 * invocation of an instance restored ahead of it (min_instances, or
	 * a restore another invocation no longer needed) is warm. */
	inv->res.cold = in->fresh && in->ready_ns >= inv->enq_ns;
	if (inv->res.cold) {
		inv->res.init_ns = in->init_ns;
		fn->st.cold++;
	} else {
		fn->st.warm++;
	}
	in->first = in->fresh;
	in->fresh = false;
	inv->res.queued_ns = now - inv->enq_ns;
	inv->version = fn->version;
	ember_inv_hdr_encode(in->hdr, EMBER_INV_INVOKE, 0, fn->timeout_ms,
			     (uint32_t)inv->len, inv->res.request_id);
	in->out_off = 0;
	inv->sent_ns = now;
	timer_arm(s, &in->timer, fn->timeout_ms + INV_GRACE_MS,
		  on_invoke_deadline);
	if (!inst_flush(s, in))
		inst_died(s, in, "its vsock connection failed");
}

/* ---------------------------------------------------------------------
 * Instances: life and death
 */

static void inst_unlist(struct sched *s, struct inst *in)
{
	struct fn *fn = in->fn;

	if (list_linked(&in->node))
		list_del(&in->node);
	if (list_linked(&in->lru))
		list_del(&in->lru);
	if (in->state >= I_RESTORING && in->state <= I_BUSY) {
		fn->t->instances--;
		fn->t->memory_mib -= in->memory_mib;
		s->memory_committed_mib -= in->memory_mib;
		in->memory_mib = 0;
		capacity_released(s);
	}
	switch (in->state) {
	case I_SPAWNING:
		if (in->irqchip)
			s->nr_irq_spawning--;
		else
			s->nr_spawning--;
		break;
	case I_SHELL:
		if (in->irqchip)
			s->nr_irq_ready--;
		else
			s->nr_ready--;
		break;
	case I_RESTORING:
	case I_STARTING:
		fn->nr_starting--;
		s->nr_restoring--;
		break;
	case I_IDLE:
		fn->nr_idle--;
		break;
	case I_BUSY:
		fn->nr_busy--;
		fn->t->inflight--;
		break;
	case I_DEAD:
		break;
	}
}

/* An event of emberd's log about fn's instances (scale_up, scale_down,
 * reap), at most 50 a second of each kind. */
#define fn_event(fn, kind, ...)                                               \
	do {                                                                  \
		static struct log_ratelimit rl_;                              \
		struct elog_who who_ = { 0, (fn) ? (fn)->tenant : NULL,       \
					 (fn) ? (fn)->name : NULL };          \
		if (log_ratelimit_ok(&rl_, 50))                               \
			elog_event(LOG_MOD, kind, &who_, __VA_ARGS__);        \
	} while (0)

/* Ends an instance for good (lock held; idempotent). Its in-flight
 * invocation must have been completed by the caller. The process is
 * killed; the pidfd watch stays until it is reaped. */
static void inst_kill(struct sched *s, struct inst *in)
{
	if (in->state == I_DEAD)
		return;
	if (in->fn)
		fn_event(in->fn, "scale_down", "v%u: an instance (VMM %d, %s) "
			 "stopped", in->fn->version, (int)in->proc.pid,
			 state_name[in->state]);
	if (in->fn && in->state >= I_RESTORING && in->state <= I_BUSY) {
		/* Its threads count in the tenant's pids group until the
		 * process is reaped (on_pid). */
		in->dying = true;
		in->fn->t->dying++;
	}
	inst_unlist(s, in);
	in->state = I_DEAD;
	timer_cancel(s, &in->timer);
	watch_del(s, &in->w_vsock, true);
	watch_del(s, &in->w_ctl, false);
	if (in->proc.ctl >= 0) {
		close(in->proc.ctl);
		in->proc.ctl = -1;
	}
	vmmproc_kill(&in->proc);
	if (in->ws_pending) {
		in->ws_pending = false;
		in->fn->ws_recording = false;
	}
	if (in->fn)
		fn_schedule_pump(s, in->fn);
	pthread_cond_signal(&s->pool_cond);
}

/* A shell could not be started (lock held): back off, and once that has
 * happened SPAWN_FAIL_LIMIT times in a row, fail what waits for a shell. */
static void spawn_failed(struct sched *s, const char *why)
{
	struct list_node *n, *t;

	s->spawn_failures++;
	s->spawn_streak++;
	util_copy(s->spawn_error, sizeof(s->spawn_error), why);
	s->spawn_backoff_until =
		util_now_ns() +
		(50ull << (s->spawn_streak < 7 ? s->spawn_streak : 7)) *
			1000000ull;
	log_warn_rl("a VM shell failed to start: %s", why);
	if (s->spawn_streak < SPAWN_FAIL_LIMIT)
		return;
	list_for_each_safe(n, t, &s->shell_waiters) {
		struct fn *fn = container_of(n, struct fn, wait_node);
		char msg[300];

		snprintf(msg, sizeof(msg), "no VM could be started: %s", why);
		fn_fail_waiters(s, fn, SCHED_UNAVAILABLE, msg);
	}
}

/* A restore of fn failed (lock held). After START_FAIL_LIMIT in a row the
 * invocations that wait on fn are failed rather than retried. */
static void fn_start_failed(struct sched *s, struct fn *fn, const char *why)
{
	util_copy(fn->last_start_error, sizeof(fn->last_start_error), why);
	if (++fn->start_failures < START_FAIL_LIMIT)
		return;
	log_warn_rl("function %s v%u: %u restores failed in a row, last: %s",
		    fn->name, fn->version, fn->start_failures, why);
	fn_fail_waiters(s, fn, SCHED_INTERNAL, why);
}

/* A restore that could not start the VM's threads: the VMM reports
 * pthread_create's or clone's EAGAIN, which for a jailed VMM means its
 * cgroup's pids limit (the tenant's --tenant-pids-max, shared by all its
 * VMs; each VMM has a uid of its own, so RLIMIT_NPROC is not it). */
static bool thread_limit_hit(const char *why)
{
	return strstr(why, strerror(EAGAIN)) != NULL;
}

/*
 * Such a restore is the tenant at its capacity, not a broken function: it does not count as
 * a start failure. The tenant starts no more VMs than it runs now, and
 * none while a killed one still holds its threads, until one that served
 * is reaped; what waits is served by those, or times out as
 * throttled (429). With none running, the burst itself may have filled the
 * group (the shells moved in together): one VM is tried alone. When that
 * fails too, nothing will free a thread, and the waiters fail now, also as
 * throttled. (lock held, the instance already killed)
 */
static void tenant_thread_limited(struct sched *s, struct fn *fn,
				  const char *why)
{
	struct tenant *t = fn->t;

	util_copy(fn->last_start_error, sizeof(fn->last_start_error), why);
	log_warn_rl("tenant %s: a VM for %s v%u could not start its threads "
		    "(the tenant's pids limit, --tenant-pids-max): at most %u "
		    "VMs until one ends", fn->tenant, fn->name, fn->version,
		    t->instances ? t->instances : 1);
	if (t->instances) {
		t->thread_cap = t->instances;
	} else if (!t->thread_solo) {
		/* Tried once the VMs killed meanwhile are reaped. */
		t->thread_cap = 1;
		t->thread_solo = true;
		fn_wait_capacity(s, fn);
	} else {
		t->thread_solo = false;
		fn_fail_waiters(s, fn, SCHED_THROTTLED,
				"the tenant's VMs are at their thread limit "
				"(emberd --tenant-pids-max): no VM could "
				"start");
	}
}

/* The instance's VM is gone or unusable (lock held): its invocation, if
 * any, ends as a crash with `why`; the instance is killed. */
static void inst_died(struct sched *s, struct inst *in, const char *why)
{
	enum inst_state state;
	char msg[700];

	if (in->state == I_DEAD)
		return;
	snprintf(msg, sizeof(msg), "%s%s%s", why, in->exit_msg[0] ? ": " : "",
		 in->exit_msg);
	state = in->state;
	if (state == I_BUSY) {
		inv_complete(s, in->inv, SCHED_CRASH,
			     "the function's VM failed mid-invocation: %s", msg);
		in->inv = NULL;
	}
	/* Killed first, so that the failure accounting below sees the
	 * counters without this instance. */
	inst_kill(s, in);
	if (state == I_RESTORING || state == I_STARTING) {
		if (thread_limit_hit(msg)) {
			tenant_thread_limited(s, in->fn, msg);
		} else {
			log_warn_rl("function %s v%u: start failed: %s",
				    in->fn->name, in->fn->version, msg);
			fn_start_failed(s, in->fn, msg);
		}
	} else if (state == I_SPAWNING) {
		spawn_failed(s, msg);
	}
}

static void inst_free(struct inst *in)
{
	if (in->ws_fd >= 0)
		close(in->ws_fd);
	if (in->wsd_fd >= 0)
		close(in->wsd_fd);
	if (in->proc.ctl >= 0)
		close(in->proc.ctl);
	if (in->w_vsock.fd >= 0)
		close(in->w_vsock.fd);
	free(in);
}

static void on_lost_grace(void *ctx, struct timer *t)
{
	struct sched *s = ctx;
	struct inst *in = container_of(t, struct inst, timer);

	inst_died(s, in, in->lost_why);
}

/* One of the instance's sockets closed under it. Where someone will read
 * the reason (a spawn or restore failure, a crash mid-invocation), wait a
 * moment for the EXIT line or the exit status, which say why; an idle
 * instance or a pooled shell simply ends. */
static void inst_lost(struct sched *s, struct inst *in, const char *why)
{
	if (in->state == I_DEAD || in->lost)
		return;
	if (in->state == I_IDLE || in->state == I_SHELL) {
		inst_died(s, in, why);
		return;
	}
	in->lost = true;
	util_copy(in->lost_why, sizeof(in->lost_why), why);
	timer_arm(s, &in->timer, EXIT_GRACE_MS, on_lost_grace);
}

static void on_pid(struct sched *s, struct watch *w, uint32_t ev)
{
	struct inst *in = container_of(w, struct inst, w_pid);
	char st[32], why[64];

	(void)ev;
	if (w->fd < 0)
		return;
	/* Out of epoll before vmmproc_reap closes the pidfd: a close does
	 * not remove the registration while a child being spawned (between
	 * clone and exec) still holds a copy of the fd, and the pidfd of an
	 * ended process stays readable, so the registration would report an
	 * instance that is freed by then. */
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	if (vmmproc_reap(&in->proc, s->runtime_dir)) {
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = w };

		epoll_ctl(s->epfd, EPOLL_CTL_ADD, w->fd, &e);
		return;
	}
	w->fd = -1;
	if (in->state != I_DEAD) {
		/* An EXIT line may still sit in the control socket: it says
		 * more than the exit status. */
		if (in->w_ctl.fd >= 0)
			on_ctl(s, &in->w_ctl, EPOLLIN);
		vmmproc_status_str(in->proc.status, st, sizeof(st));
		snprintf(why, sizeof(why), "the VMM process ended (%s)", st);
		fn_event(in->fn, "reap", "VMM %d (%s) ended by itself: %s",
			 (int)in->proc.pid, state_name[in->state], st);
		inst_died(s, in, why);
	}
	if (in->dying) {
		struct tenant *t = in->fn->t;

		/* Its threads are freed now. One that had been serving makes
		 * room for another: the thread cap is learned again. */
		t->dying--;
		if (in->ready_ns)
			t->thread_cap = 0;
		capacity_released(s);
	}
	if (in->fn) {
		in->fn->refs--;
		fn_put(s, in->fn);
		in->fn = NULL;
	}
	list_del(&in->all);
	s->nr_insts--;
	list_append(&s->graveyard, &in->all);
	pthread_cond_signal(&s->pool_cond);
}

/* ---------------------------------------------------------------------
 * Instances: idle time, PING, working sets
 */

static void on_idle_timer(void *ctx, struct timer *t);

static uint64_t idle_ttl_ns(const struct sched *s, const struct fn *fn)
{
	return (uint64_t)(fn->idle_ttl_ms ? fn->idle_ttl_ms :
					    s->cfg.idle_ttl_ms) * 1000000ull;
}

/* An idle instance's timer: whichever comes first of its idle TTL (if
 * its function may shrink), its PONG's deadline or its next PING. */
static void idle_timer_arm(struct sched *s, struct inst *in)
{
	struct fn *fn = in->fn;
	uint64_t now = util_now_ns(), at = UINT64_MAX, ping;

	if (fn_total(fn) > fn->min_instances)
		at = in->last_used_ns + idle_ttl_ns(s, fn);
	if (in->ping_sent_ns)
		ping = in->ping_sent_ns + PONG_TIMEOUT_MS * 1000000ull;
	else
		ping = in->last_ping_ns + s->cfg.ping_interval_ms * 1000000ull;
	if (ping < at)
		at = ping;
	timer_arm(s, &in->timer, at > now ? (at - now + 999999) / 1000000 : 0,
		  on_idle_timer);
}

/* The instance has just become idle (after READY, or after an invocation:
 * then it stops counting as busy): first in its function's list (most
 * recently used), last in the LRU. */
static void idle_enter(struct sched *s, struct inst *in)
{
	struct fn *fn = in->fn;

	if (in->state == I_BUSY) {
		fn->nr_busy--;
		fn->t->inflight--;
		capacity_released(s);
	}
	in->state = I_IDLE;
	fn->nr_idle++;
	in->last_used_ns = in->last_ping_ns = util_now_ns();
	list_push(&fn->idle, &in->node);
	list_append(&s->idle_lru, &in->lru);
	idle_timer_arm(s, in);
	fn_schedule_pump(s, fn);
}

static void fn_time_service(struct fn *fn, uint64_t ns)
{
	/* An exponential average over about the last 16 invocations. */
	if (!fn->service_samples++)
		fn->avg_service_ns = ns;
	else
		fn->avg_service_ns = (fn->avg_service_ns * 15 + ns) / 16;
}

static void inst_ping(struct sched *s, struct inst *in)
{
	uint8_t hdr[EMBER_INV_HDR_SIZE];

	(void)s;
	ember_inv_hdr_encode(hdr, EMBER_INV_PING, 0, 0, 0, 1);
	/* Idle: nothing else is being written. A full socket (EAGAIN)
	 * only delays the PING to the next round. */
	if (write(in->w_vsock.fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr))
		in->ping_sent_ns = util_now_ns();
}

static void on_idle_timer(void *ctx, struct timer *t)
{
	struct sched *s = ctx;
	struct inst *in = container_of(t, struct inst, timer);
	struct fn *fn = in->fn;
	uint64_t now = util_now_ns();

	if (in->state != I_IDLE)
		return;
	if (in->ping_sent_ns &&
	    now >= in->ping_sent_ns + PONG_TIMEOUT_MS * 1000000ull) {
		s->reaped++;
		log_warn_rl("%s v%u: VMM %d did not answer PING within %u ms; "
			    "reaped", fn->name, fn->version, (int)in->proc.pid,
			    PONG_TIMEOUT_MS);
		fn_event(fn, "reap", "VMM %d did not answer PING within %u ms",
			 (int)in->proc.pid, PONG_TIMEOUT_MS);
		inst_died(s, in, "it did not answer PING");
		return;
	}
	if (fn_total(fn) > fn->min_instances &&
	    now >= in->last_used_ns + idle_ttl_ns(s, fn)) {
		log_debug("%s v%u: an instance idle for %llu ms stopped "
			 "(%u left)", fn->name, fn->version,
			 (unsigned long long)idle_ttl_ns(s, fn) / 1000000,
			 fn_total(fn) - 1);
		inst_kill(s, in);
		return;
	}
	if (!in->ping_sent_ns &&
	    now >= in->last_ping_ns + s->cfg.ping_interval_ms * 1000000ull)
		inst_ping(s, in);
	idle_timer_arm(s, in);
}

/* Asks a freshly restored instance, after its first invocation, for the
 * pages it touched, into two unnamed files in the snapshot directory that
 * get their names once the VMM says OK (ws_done). */
static void ws_record(struct sched *s, struct inst *in)
{
	struct fn *fn = in->fn;
	int fds[2] = { -1, -1 }, ret;

	(void)s;
	fds[0] = open(fn->snap_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
	fds[1] = open(fn->snap_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
	if (fds[0] < 0 || fds[1] < 0) {
		log_warn_rl("%s v%u: no working set (%s)", fn->name,
			    fn->version, strerror(errno));
		fn->ws_known = true; /* do not try on every cold start */
		goto err;
	}
	ret = ember_shellctl_send(in->proc.ctl, "workingset fd=0 dirty=1", fds,
				  2);
	if (ret)
		goto err;
	in->ws_fd = fds[0];
	in->wsd_fd = fds[1];
	in->ws_pending = true;
	fn->ws_recording = true;
	return;
err:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
}

/* Gives an unnamed file a name in dir: linked under a temporary name,
 * then renamed over `name`, so a reader sees the whole file or none. */
static int link_tmpfile(int fd, const char *dir, const char *name)
{
	char src[64], tmp[4096], dst[4096];

	snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	unlink(tmp);
	if (fsync(fd) < 0 || linkat(AT_FDCWD, src, AT_FDCWD, tmp,
				    AT_SYMLINK_FOLLOW) < 0)
		return -errno;
	if (rename(tmp, dst) < 0) {
		int e = -errno;

		unlink(tmp);
		return e;
	}
	return 0;
}

/* The reply to "workingset" came. */
static void ws_done(struct sched *s, struct inst *in, const char *line)
{
	struct fn *fn = in->fn;
	int ret = -EIO;

	(void)s;
	in->ws_pending = false;
	fn->ws_recording = false;
	if (!strncmp(line, "OK", 2)) {
		/* The dirty list first: a restore that finds "workingset"
		 * may look for it. */
		ret = link_tmpfile(in->wsd_fd, fn->snap_dir, "workingset-dirty");
		if (!ret)
			ret = link_tmpfile(in->ws_fd, fn->snap_dir,
					   "workingset");
	}
	if (ret)
		log_warn_rl("%s v%u: the working set was not kept: %s",
			    fn->name, fn->version,
			    strncmp(line, "OK", 2) ? line : strerror(-ret));
	else
		log_info("%s v%u: working set recorded; cold starts prefetch "
			 "it", fn->name, fn->version);
	fn->ws_known = true;
	close(in->ws_fd);
	close(in->wsd_fd);
	in->ws_fd = in->wsd_fd = -1;
}

/* ---------------------------------------------------------------------
 * Instances: the control socket
 */

static void inst_became_shell(struct sched *s, struct inst *in)
{
	struct list_node *n;

	in->state = I_SHELL;
	if (in->irqchip) {
		s->nr_irq_spawning--;
		s->nr_irq_ready++;
	} else {
		s->nr_spawning--;
		s->nr_ready++;
	}
	s->spawned++;
	s->spawn_streak = 0;
	timer_cancel(s, &in->timer);
	list_append(in->irqchip ? &s->pool_irq : &s->pool, &in->node);
	/* Functions waiting for a shell pump again, in the order they asked;
	 * those that get none ask again (at the back). */
	while ((n = list_first(&s->shell_waiters))) {
		list_del(n);
		fn_schedule_pump(s, container_of(n, struct fn, wait_node));
	}
}

static void on_ctl(struct sched *s, struct watch *w, uint32_t ev)
{
	struct inst *in = container_of(w, struct inst, w_ctl);
	char line[1024];
	unsigned nfds = 0;
	int r;

	(void)ev;
	while (w->fd >= 0 && in->state != I_DEAD) {
		r = ember_shellctl_recv(w->fd, line, sizeof(line), NULL, &nfds,
					0);
		if (r == -ETIMEDOUT || r == -EAGAIN)
			return;
		if (r <= 0) {
			/* EOF (or EPIPE): the process is ending; its exit
			 * status, on the pidfd, says more. */
			watch_del(s, w, false);
			close(in->proc.ctl);
			in->proc.ctl = -1;
			inst_lost(s, in, "the VMM closed its control socket");
			return;
		}
		if (!strncmp(line, "EXIT ", 5)) {
			struct ember_shellctl_exit ex;

			if (ember_shellctl_parse_exit(line, &ex) == 0)
				snprintf(in->exit_msg, sizeof(in->exit_msg),
					 "%s (status %d): %s", ex.reason,
					 ex.status, ex.detail);
			else
				snprintf(in->exit_msg, sizeof(in->exit_msg),
					 "%.500s", line);
			inst_died(s, in, "the VM ended");
			return;
		}
		switch (in->state) {
		case I_SPAWNING:
			if (!strncmp(line, "READY shell", 11)) {
				inst_became_shell(s, in);
			} else {
				snprintf(in->exit_msg, sizeof(in->exit_msg),
					 "%.500s", line);
				inst_died(s, in, "the shell did not start");
				return;
			}
			break;
		default:
			if (in->ws_pending && !in->restore_pending &&
			    (!strncmp(line, "OK", 2) ||
			     !strncmp(line, "ERR", 3))) {
				ws_done(s, in, line);
				break;
			}
			if (in->restore_pending) {
				/* The vsock stream may have reported READY
				 * first: the state can be past RESTORING. */
				in->restore_pending = false;
				if (!strncmp(line, "OK", 2)) {
					if (in->state == I_RESTORING)
						in->state = I_STARTING;
					if (in->fn->carried &&
					    inst_warm_up(s, in) < 0)
						return;
					break;
				}
				snprintf(in->exit_msg, sizeof(in->exit_msg),
					 "%.500s", line);
				inst_died(s, in, "the restore failed");
				return;
			}

			log_warn_rl("VMM %d (%s): unexpected control line: "
				    "%.80s", (int)in->proc.pid,
				    state_name[in->state], line);
			break;
		}
	}
}

/* ---------------------------------------------------------------------
 * Instances: the vsock stream (handshake, then frames)
 */

static void inv_keep_log(struct inv *inv, uint32_t len, uint8_t **buf)
{
	*buf = NULL;
	if (inv->logs_len + len > LOG_CAP) {
		inv->logs_dropped = true;
		return;
	}
	if (inv->logs_len + len > inv->logs_cap) {
		size_t cap = inv->logs_cap ? inv->logs_cap : 1024;
		char *p;

		while (cap < inv->logs_len + len)
			cap *= 2;
		p = realloc(inv->logs, cap);
		if (!p) {
			inv->logs_dropped = true;
			return;
		}
		inv->logs = p;
		inv->logs_cap = cap;
	}
	*buf = (uint8_t *)inv->logs + inv->logs_len;
}

static void on_protocol_error(struct sched *s, struct inst *in,
			      const char *what)
{
	char why[160];

	snprintf(why, sizeof(why), "protocol error from the guest: %s", what);
	log_warn_rl("VMM %d: %s", (int)in->proc.pid, why);
	inst_died(s, in, why);
}

/* A frame's header arrived: decide where its payload goes. */
static void frame_header(struct sched *s, struct inst *in)
{
	const struct ember_inv_hdr *h = &in->dec.hdr;
	struct inv *inv = in->inv;

	switch (h->type) {
	case EMBER_INV_RESULT:
		if (in->state != I_BUSY || h->id != inv->res.request_id)
			return on_protocol_error(s, in, "unexpected RESULT");
		inv->res.payload = malloc(h->length);
		if (!inv->res.payload)
			return inst_died(s, in, "out of memory for the result");
		ember_inv_dec_set_buf(&in->dec, inv->res.payload, h->length);
		break;
	case EMBER_INV_LOG:
		in->log_kept = false;
		if (in->state == I_BUSY) {
			uint8_t *buf;

			inv_keep_log(inv, h->length, &buf);
			if (buf && !ember_inv_dec_set_buf(&in->dec, buf,
							  h->length))
				in->log_kept = true;
		}
		break;
	case EMBER_INV_ERROR:
		ember_inv_dec_set_buf(&in->dec, in->small, sizeof(in->small));
		break;
	default:
		break; /* READY, PING, PONG payloads are not needed */
	}
}

/* guest-init's READY asks for SYNC (the host's clock and entropy,
 * docs/guest-init.md): it goes out before anything else, so that the
 * first INVOKE reaches the handler after it was applied. Nothing else has
 * been written on this fresh connection, so the 64-byte frame fits the
 * socket at once; a short write ends the instance. 0 or -EIO. */
static int inst_send_sync(struct inst *in)
{
	uint8_t entropy[EMBER_INV_SYNC_ENTROPY], payload[EMBER_INV_SYNC_LEN];
	uint8_t frame[EMBER_INV_HDR_SIZE + EMBER_INV_SYNC_LEN];
	struct timespec ts;
	long n;

	if (util_random(entropy, sizeof(entropy)))
		return -EIO;
	clock_gettime(CLOCK_REALTIME, &ts);
	ember_inv_sync_encode(payload, (uint64_t)ts.tv_sec * 1000000000ull +
					       (uint64_t)ts.tv_nsec, entropy);
	n = ember_inv_frame_encode(frame, sizeof(frame), EMBER_INV_SYNC, 0, 0,
				   0, payload, sizeof(payload));
	if (n <= 0 || write(in->w_vsock.fd, frame, (size_t)n) != n)
		return -EIO;
	return 0;
}

/* A restored instance can take invocations: after its READY frame, or,
 * over a carried connection, after the PONG to inst_warm_up()'s PING. */
static void inst_ready(struct sched *s, struct inst *in)
{
	struct fn *fn = in->fn;

	in->fresh = true;
	in->ready_ns = util_now_ns();
	in->init_ns = in->ready_ns - in->restore_ns;
	timer_cancel(s, &in->timer);
	fn->nr_starting--;
	s->nr_restoring--;
	pthread_cond_signal(&s->pool_cond);
	fn->start_failures = 0;
	fn->t->thread_solo = false;
	idle_enter(s, in);
	fn_event(fn, "scale_up", "v%u: a new instance (VMM %d) is ready, "
		 "restored in %llu us%s", fn->version, (int)in->proc.pid,
		 (unsigned long long)(in->init_ns / 1000),
		 fn->carried ? " over the snapshot's connection" : "");
}

/*
 * Restored over a carried connection, the guest has not run yet: its first
 * frame pays the first touch of every page on its path (~50 KVM page
 * faults, ~1.2 ms here: docs/benchmarks.md). With a handshake, READY paid
 * part of that inside the restore, which is not billed; here a PING does,
 * so that a cold invocation's billed duration is not the platform's
 * warm-up (docs/metering.md). The instance is ready at its PONG; the start
 * deadline still runs.
 */
static int inst_warm_up(struct sched *s, struct inst *in)
{
	uint8_t hdr[EMBER_INV_HDR_SIZE];

	ember_inv_hdr_encode(hdr, EMBER_INV_PING, 0, 0, 0, 1);
	/* The connection is fresh and idle: 24 bytes cannot meet a full
	 * socket. */
	if (write(in->w_vsock.fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr)) {
		inst_died(s, in, "the warm-up PING could not be sent");
		return -EIO;
	}
	in->warming = true;
	return 0;
}

/* A whole frame arrived. */
static void frame_done(struct sched *s, struct inst *in)
{
	const struct ember_inv_hdr *h = &in->dec.hdr;
	struct inv *inv = in->inv;
	struct fn *fn = in->fn;

	switch (h->type) {
	case EMBER_INV_READY:
		if (in->state != I_STARTING && in->state != I_RESTORING)
			return on_protocol_error(s, in, "unexpected READY");
		if (fn->carried)
			return on_protocol_error(s, in, "READY over a carried "
						 "connection");
		if ((h->flags & EMBER_INV_F_READY_SYNC) && inst_send_sync(in))
			return inst_died(s, in, "the SYNC frame could not be "
					 "sent");
		inst_ready(s, in);
		break;
	case EMBER_INV_RESULT: {
		bool first = in->first;

		inv->res.len = h->length;
		inv->res.fn_status = h->arg;
		inv->res.duration_ns = util_now_ns() - inv->sent_ns;
		if (!inv->res.payload)
			inv->res.len = 0;
		fn_time_service(fn, inv->res.duration_ns);
		in->inv = NULL;
		timer_cancel(s, &in->timer);
		inv_complete(s, inv, h->arg ? SCHED_FN_ERROR : SCHED_OK, NULL);
		if (fn->retired || s->stopping) {
			inst_kill(s, in);
			break;
		}
		idle_enter(s, in);
		/* The pages the first invocation touched are the ones the
		 * next restores prefetch. */
		if (first && !fn->ws_known && !fn->ws_recording)
			ws_record(s, in);
		break;
	}
	case EMBER_INV_ERROR: {
		char msg[EMBER_INV_MAX_ERROR + 1];
		size_t n = h->length < sizeof(in->small) ? h->length :
							   sizeof(in->small);

		/* Control bytes from the guest never reach a log or a
		 * client as they are. */
		for (size_t i = 0; i < n; i++)
			msg[i] = (in->small[i] >= 0x20 && in->small[i] < 0x7f) ?
					 (char)in->small[i] : '?';
		msg[n] = '\0';
		if (in->state == I_BUSY && h->id == inv->res.request_id) {
			inv->res.duration_ns = util_now_ns() - inv->sent_ns;
			in->inv = NULL;
			if (h->arg == EMBER_ERR_TIMEOUT)
				inv_complete(s, inv, SCHED_TIMEOUT,
					     "the function ran past its "
					     "timeout of %u ms", fn->timeout_ms);
			else
				inv_complete(s, inv, SCHED_CRASH,
					     "the handler failed: %s: %s",
					     ember_inv_err_name(h->arg), msg);
			inst_kill(s, in);
		} else {
			char why[EMBER_INV_MAX_ERROR + 64];

			snprintf(why, sizeof(why), "the guest reported %s: %s",
				 ember_inv_err_name(h->arg), msg);
			inst_died(s, in, why);
		}
		break;
	}
	case EMBER_INV_LOG:
		if (in->state == I_BUSY && inv && in->log_kept)
			inv->logs_len += h->length;
		in->log_kept = false;
		if (h->flags & EMBER_INV_F_LOG_DROPPED && inv)
			inv->logs_dropped = true;
		break;
	case EMBER_INV_PONG:
		if (in->warming) {
			in->warming = false;
			inst_ready(s, in);
			break;
		}
		in->ping_sent_ns = 0;
		in->last_ping_ns = util_now_ns();
		if (in->state == I_IDLE)
			idle_timer_arm(s, in);
		break;
	case EMBER_INV_PING:
		break;
	default:
		on_protocol_error(s, in, ember_inv_type_name(h->type));
		break;
	}
}

/* Bytes of the vsock stream, after the handshake. */
static void vsock_frames(struct sched *s, struct inst *in, const uint8_t *p,
			 size_t n)
{
	while (n && in->state != I_DEAD && !in->vsock_gone) {
		size_t used = 0;
		int r = ember_inv_dec_feed(&in->dec, p, n, &used);

		p += used;
		n -= used;
		if (r < 0)
			return on_protocol_error(s, in, ember_inv_strerror(r));
		if (r == EMBER_INV_DEC_HEADER)
			frame_header(s, in);
		else if (r == EMBER_INV_DEC_FRAME)
			frame_done(s, in);
	}
}

/* The hybrid vsock reply "OK <port>\n" precedes the frames. Returns the
 * bytes of p it consumed, or -1 after failing the instance. */
static long vsock_handshake(struct sched *s, struct inst *in,
			    const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char c = (char)p[i];

		if (in->hs_len == sizeof(in->hs) - 1) {
			on_protocol_error(s, in, "vsock handshake too long");
			return -1;
		}
		in->hs[in->hs_len++] = c;
		if (c != '\n')
			continue;
		in->hs[in->hs_len] = '\0';
		if (strncmp(in->hs, "OK ", 3) ||
		    strspn(in->hs + 3, "0123456789") != in->hs_len - 4) {
			on_protocol_error(s, in, "vsock handshake refused");
			return -1;
		}
		in->handshaken = true;
		return (long)i + 1;
	}
	return (long)n;
}

/* The vsock connection closed or failed. */
static void vsock_closed(struct sched *s, struct inst *in)
{
	in->vsock_gone = true;
	watch_del(s, &in->w_vsock, true);
	inst_lost(s, in, "its vsock connection closed");
}

static void on_vsock(struct sched *s, struct watch *w, uint32_t ev)
{
	struct inst *in = container_of(w, struct inst, w_vsock);

	if (w->fd < 0 || in->state == I_DEAD)
		return;
	if ((ev & EPOLLOUT) && in->state == I_BUSY && in->inv &&
	    !inst_flush(s, in))
		return vsock_closed(s, in);
	if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	while (w->fd >= 0 && in->state != I_DEAD) {
		ssize_t n = read(w->fd, s->rbuf, sizeof(s->rbuf));
		const uint8_t *p = s->rbuf;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			return vsock_closed(s, in);
		if (!in->handshaken) {
			long used = vsock_handshake(s, in, p, (size_t)n);

			if (used < 0)
				return;
			p += used;
			n -= used;
		}
		vsock_frames(s, in, p, (size_t)n);
		if ((size_t)n < sizeof(s->rbuf))
			return;
	}
}

/* ---------------------------------------------------------------------
 * Timers of instances
 */

static void on_invoke_deadline(void *ctx, struct timer *t)
{
	struct sched *s = ctx;
	struct inst *in = container_of(t, struct inst, timer);
	struct inv *inv = in->inv;

	if (in->state != I_BUSY || !inv)
		return;
	inv->res.duration_ns = util_now_ns() - inv->sent_ns;
	in->inv = NULL;
	inv_complete(s, inv, SCHED_TIMEOUT,
		     "the function ran past its timeout of %u ms; its "
		     "instance was stopped", in->fn->timeout_ms);
	inst_kill(s, in);
}

static void on_start_deadline(void *ctx, struct timer *t)
{
	struct sched *s = ctx;
	struct inst *in = container_of(t, struct inst, timer);
	char why[96];

	if (in->state == I_SPAWNING)
		snprintf(why, sizeof(why), "no READY within %u ms",
			 SPAWN_TIMEOUT_MS);
	else
		snprintf(why, sizeof(why), "the restore took over %u ms",
			 s->cfg.restore_timeout_ms);
	inst_died(s, in, why);
}

/* ---------------------------------------------------------------------
 * Cold starts: a pooled shell restores a function's snapshot
 */

static struct inst *pool_take(struct sched *s, bool irqchip)
{
	struct list_node *n = list_first(irqchip ? &s->pool_irq : &s->pool);

	if (!n)
		return NULL;
	list_del(n);
	if (irqchip)
		s->nr_irq_ready--;
	else
		s->nr_ready--;
	pthread_cond_signal(&s->pool_cond);
	return container_of(n, struct inst, node);
}

/* Opens what the restore needs and sends the command; the instance's
 * vsock connection is one end of a fresh socketpair (the other travels
 * with the command). Lock held. 0, or -errno with the instance killed. */
static int inst_restore(struct sched *s, struct inst *in, struct fn *fn)
{
	static const char connect_line[] = "CONNECT 1024\n";
	char line[256], why[300];
	int fds[6], nfds = 0, sv[2] = { -1, -1 }, dfd = -1, ws = -1, ret;
	size_t len;

	in->fn = fn;
	fn->refs++;
	in->state = I_RESTORING;
	fn->nr_starting++;
	s->nr_restoring++;
	s->restores_tick++;
	s->last_restore_ns = util_now_ns();
	in->memory_mib = inst_cost_mib(fn);
	fn->t->instances++;
	fn->t->memory_mib += in->memory_mib;
	s->memory_committed_mib += in->memory_mib;
	if (s->hooks.assign) {
		ret = s->hooks.assign(s->hooks.ctx, &in->proc, fn->tenant_id,
				      fn->id, fn->memory_mib,
				      fn->t->limits.memory_mib);
		if (ret) {
			snprintf(why, sizeof(why), "the jail refused the "
				 "instance: %s", strerror(-ret));
			goto err_sent;
		}
	}

	dfd = open(fn->snap_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		goto err_files;
	if ((fds[nfds] = openat(dfd, "state", O_RDONLY | O_CLOEXEC)) < 0)
		goto err_files;
	nfds++;
	if ((fds[nfds] = openat(dfd, "memory", O_RDONLY | O_CLOEXEC)) < 0)
		goto err_files;
	nfds++;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		goto err_files;
	fds[nfds++] = sv[1]; /* closed with fds[] from here on */
	len = (size_t)snprintf(line, sizeof(line), "restore state=0 memory=1 %s",
			       fn->carried ? "vsock-carry=2" :
					     "vsock=2 vsock-connected");
	if (fn->disk) {
		if ((fds[nfds] = open(fn->disk, O_RDONLY | O_CLOEXEC)) < 0)
			goto err_files;
		len += (size_t)snprintf(line + len, sizeof(line) - len,
					" disk=%d", nfds);
		nfds++;
	}
	ws = openat(dfd, "workingset", O_RDONLY | O_CLOEXEC);
	if (ws >= 0) {
		int wsd = openat(dfd, "workingset-dirty", O_RDONLY | O_CLOEXEC);

		fds[nfds] = ws;
		len += (size_t)snprintf(line + len, sizeof(line) - len,
					" workingset=%d", nfds);
		nfds++;
		if (wsd >= 0) {
			fds[nfds] = wsd;
			len += (size_t)snprintf(line + len, sizeof(line) - len,
						" workingset-dirty=%d", nfds);
			nfds++;
		}
		len += (size_t)snprintf(line + len, sizeof(line) - len,
					" prefetch");
	}
	close(dfd);
	dfd = -1;

	in->restore_ns = util_now_ns();
	ret = ember_shellctl_send(in->proc.ctl, line, fds, (unsigned)nfds);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (ret) {
		close(sv[0]);
		snprintf(why, sizeof(why), "sending the restore: %s",
			 strerror(-ret));
		goto err_sent;
	}
	/* The handshake goes out now, with the restore: the VMM reads it as
	 * soon as the restored guest's vsock device runs. A carried
	 * connection has none: the guest's end is established already. */
	in->handshaken = fn->carried;
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0 ||
	    (!fn->carried &&
	     write(sv[0], connect_line, sizeof(connect_line) - 1) !=
		     (ssize_t)(sizeof(connect_line) - 1)) ||
	    watch_add(s, &in->w_vsock, sv[0], on_vsock)) {
		close(sv[0]);
		snprintf(why, sizeof(why), "vsock connection: %s",
			 strerror(errno));
		goto err_sent;
	}
	ember_inv_dec_init(&in->dec);
	in->restore_pending = true;
	timer_arm(s, &in->timer, s->cfg.restore_timeout_ms, on_start_deadline);
	return 0;

err_files:
	ret = -errno;
	snprintf(why, sizeof(why), "the snapshot of %s v%u cannot be opened: %s",
		 fn->name, fn->version, strerror(errno));
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (sv[0] >= 0)
		close(sv[0]);
	if (dfd >= 0)
		close(dfd);
	/* The snapshot is emberd's, not the function's: this is an internal
	 * error, reported at once. */
	log_err("%s", why);
	fn->start_failures = START_FAIL_LIMIT - 1;
	inst_died(s, in, why);
	return ret;
err_sent:
	inst_died(s, in, why);
	return -EIO;
}

static void fn_want_shell(struct sched *s, struct fn *fn)
{
	uint64_t now = util_now_ns();

	if (!list_linked(&fn->wait_node)) {
		/* A cold start found the pool empty: it waits for a shell
		 * spawned on the spot, and the pool grows (doubling, at most
		 * every 100 ms) so that the next burst finds one. */
		s->pool_misses++;
		s->last_miss_ns = now;
		/* Irqchip shells are spawned per waiting function only. */
		if (!fn->irqchip && now - s->last_grow_ns > 100000000ull &&
		    s->pool_target < s->cfg.pool_max) {
			s->pool_target = s->pool_target ? s->pool_target * 2 : 1;
			if (s->pool_target > s->cfg.pool_max)
				s->pool_target = s->cfg.pool_max;
			s->last_grow_ns = now;
		}
		list_append(&s->shell_waiters, &fn->wait_node);
	}
	pthread_cond_signal(&s->pool_cond);
	if (s->spawn_streak >= SPAWN_FAIL_LIMIT) {
		char why[300];

		snprintf(why, sizeof(why), "no VM could be started: %s",
			 s->spawn_error);
		fn_fail_waiters(s, fn, SCHED_UNAVAILABLE, why);
	}
}

/* Serves fn's queue: idle instances first, then restores for what is left,
 * up to the function's max concurrency (lock held). */
static void fn_pump(struct sched *s, struct fn *fn)
{
	struct list_node *n;
	unsigned need;

	while (fn->nr_queued && (n = list_first(&fn->idle))) {
		struct inst *in = container_of(n, struct inst, node);
		struct inv *inv = container_of(list_first(&fn->queue),
					       struct inv, node);

		if (!tenant_can_run(fn->t)) {
			/* The tenant runs as many invocations as it may:
			 * this one waits for one of them to finish. */
			fn_wait_capacity(s, fn);
			return;
		}
		inst_invoke(s, in, inv);
	}
	if (s->stopping || fn->start_failures >= START_FAIL_LIMIT) {
		/* A version that keeps failing to start is retried for a
		 * new invocation only, one restore at a time. */
		if (fn->start_failures >= START_FAIL_LIMIT) {
			if (!fn->nr_queued || fn->nr_starting)
				return;
			fn->start_failures = START_FAIL_LIMIT - 1;
		} else {
			return;
		}
	}
	need = fn_need(fn);
	while (need && fn_total(fn) < fn->max_conc) {
		struct inst *in;

		if (!admit_start(s, fn)) {
			fn_wait_capacity(s, fn);
			return;
		}
		in = pool_take(s, fn->irqchip);
		if (!in) {
			fn_want_shell(s, fn);
			return;
		}
		if (inst_restore(s, in, fn) == 0)
			need--;
		else if (fn->start_failures >= START_FAIL_LIMIT)
			return;
	}
	if (list_linked(&fn->wait_node))
		list_del(&fn->wait_node);
}

/* ---------------------------------------------------------------------
 * The pool thread: keeps pool_size shells ready, plus what waiting
 * functions need.
 */

static unsigned shells_wanted(struct sched *s, bool irqchip)
{
	unsigned want = irqchip ? 0 : s->pool_target;
	struct list_node *n, *t;

	list_for_each_safe(n, t, &s->shell_waiters) {
		struct fn *fn = container_of(n, struct fn, wait_node);
		unsigned need = fn_need(fn);
		unsigned room = fn->max_conc > fn_total(fn) ?
					fn->max_conc - fn_total(fn) : 0;

		if (fn->irqchip != irqchip)
			continue;
		want += need < room ? need : room;
	}
	return want;
}

static void *pool_main(void *arg)
{
	struct sched *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		uint64_t now = util_now_ns();
		struct inst *in;
		char err[256];
		uint64_t seq;
		int ret;

		uint64_t quiet_until = s->last_restore_ns + POOL_QUIET_NS;
		/* A function waiting for an irqchip shell gets one first. */
		bool irq = s->nr_irq_ready + s->nr_irq_spawning <
			   shells_wanted(s, true);

		/* A spawn (clone, exec, KVM_CREATE_VM: a few ms of CPU) waits
		 * until the last cold start has had POOL_QUIET_NS to restore
		 * and serve its first invocation, as long as a shell is ready
		 * for the next one: on two cores it would otherwise slow the
		 * very cold starts the pool is there for. */
		if ((!irq && (s->nr_ready + s->nr_spawning >=
				      shells_wanted(s, false) ||
			      (s->nr_ready && now < quiet_until))) ||
		    s->nr_spawning + s->nr_irq_spawning >= SPAWN_PARALLEL ||
		    now < s->spawn_backoff_until) {
			uint64_t wait_ns = 100 * 1000 * 1000;
			struct timespec ts;

			if (!irq && s->nr_ready && now < quiet_until)
				wait_ns = quiet_until - now;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)(wait_ns / 1000000000);
			ts.tv_nsec += (long)(wait_ns % 1000000000);
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&s->pool_cond, &s->lock, &ts);
			continue;
		}
		if (irq)
			s->nr_irq_spawning++;
		else
			s->nr_spawning++;
		seq = ++s->spawn_seq;
		pthread_mutex_unlock(&s->lock);

		in = calloc(1, sizeof(*in));
		ret = in ? vmmproc_spawn(s->vmm, s->runtime_dir,
					 &s->hooks.spawn, seq, irq, &in->proc,
					 err, sizeof(err)) :
			   -ENOMEM;

		pthread_mutex_lock(&s->lock);
		if (!ret) {
			in->state = I_SPAWNING;
			in->irqchip = irq;
			in->w_vsock.fd = -1;
			in->ws_fd = in->wsd_fd = -1;
			list_init(&in->node);
			list_init(&in->lru);
			timer_init(&in->timer);
			if (watch_add(s, &in->w_pid, in->proc.pidfd, on_pid) ||
			    watch_add(s, &in->w_ctl, in->proc.ctl, on_ctl)) {
				/* Cannot watch it: end it and wait here. */
				vmmproc_kill(&in->proc);
				watch_del(s, &in->w_pid, false);
				while (vmmproc_reap(&in->proc, s->runtime_dir))
					poll(NULL, 0, 1);
				ret = -EIO;
				snprintf(err, sizeof(err), "epoll: %s",
					 strerror(errno));
			}
		}
		if (ret) {
			if (irq)
				s->nr_irq_spawning--;
			else
				s->nr_spawning--;
			spawn_failed(s, in ? err : "out of memory");
			if (in) {
				if (in->proc.ctl >= 0)
					close(in->proc.ctl);
				free(in);
			}
			continue;
		}
		list_append(&s->insts, &in->all);
		s->nr_insts++;
		timer_arm(s, &in->timer, SPAWN_TIMEOUT_MS, on_start_deadline);
		/* Spawned while the scheduler stopped: it ends at once. */
		if (s->stopping)
			inst_kill(s, in);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---------------------------------------------------------------------
 * The pool's size: between its floor and ceiling, following the restore
 * rate, grown when it runs dry (fn_want_shell), shrunk when idle.
 */

static void on_tick(void *ctx, struct timer *t)
{
	struct sched *s = ctx;
	uint64_t now = util_now_ns();
	unsigned by_rate;

	(void)t;
	/* Restores per second, smoothed over a few ticks. */
	s->restore_rate = s->restore_rate * 0.5 +
			  (double)s->restores_tick * (500.0 / TICK_MS);
	s->restores_tick = 0;
	/* Enough shells for 50 ms of restores at that rate: a spawn takes
	 * 5-15 ms here, so the pool is refilled long before it is empty. */
	by_rate = (unsigned)(s->restore_rate / 20.0 + 0.999);
	if (s->pool_target < by_rate)
		s->pool_target = by_rate;
	if (s->pool_target > s->cfg.pool_min && s->pool_target > by_rate &&
	    now - s->last_miss_ns > POOL_SHRINK_AFTER_NS &&
	    now - s->last_grow_ns > POOL_SHRINK_AFTER_NS) {
		s->pool_target--;
		s->last_grow_ns = now; /* one step per period */
	}
	if (s->pool_target < s->cfg.pool_min)
		s->pool_target = s->cfg.pool_min;
	if (s->pool_target > s->cfg.pool_max)
		s->pool_target = s->cfg.pool_max;
	/* Shells beyond what is wanted end, oldest first. */
	while (s->nr_ready > shells_wanted(s, false)) {
		struct list_node *n = list_first(&s->pool);

		inst_kill(s, container_of(n, struct inst, node));
	}
	while (s->nr_irq_ready > shells_wanted(s, true)) {
		struct list_node *n = list_first(&s->pool_irq);

		inst_kill(s, container_of(n, struct inst, node));
	}
	timer_arm(s, &s->tick, TICK_MS, on_tick);
}

/* ---------------------------------------------------------------------
 * The event thread
 */

static void on_wake(struct sched *s, struct watch *w, uint32_t ev)
{
	uint64_t v;

	(void)s;
	(void)ev;
	if (read(w->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn_errno("eventfd read");
}

static void *loop_main(void *arg)
{
	struct sched *s = arg;
	struct epoll_event evs[64];
	uint64_t give_up = 0;

	pthread_mutex_lock(&s->lock);
	timer_arm(s, &s->tick, TICK_MS, on_tick);
	pthread_mutex_unlock(&s->lock);

	for (;;) {
		struct list_node done, *n;
		int nev, timeout;

		pthread_mutex_lock(&s->lock);
		timeout = timer_wait_ms(s);
		if (s->stopping) {
			if (list_empty(&s->insts) && list_empty(&s->completed))
				break;
			if (!give_up)
				give_up = util_now_ns() + 5000000000ull;
			if (util_now_ns() > give_up) {
				log_err("%u VMM processes did not end after "
					"SIGKILL; leaving them", s->nr_insts);
				break;
			}
			if (timeout > 50)
				timeout = 50;
		}
		pthread_mutex_unlock(&s->lock);

		nev = epoll_wait(s->epfd, evs, 64, timeout);
		if (nev < 0 && errno != EINTR) {
			log_err_errno("epoll_wait");
			nev = 0;
		}

		pthread_mutex_lock(&s->lock);
		for (int i = 0; i < nev; i++) {
			struct watch *w = evs[i].data.ptr;

			if (w->fd >= 0)
				w->fn(s, w, evs[i].events);
		}
		timers_run(&s->timers, util_now_ns(), s);
		pumps_run(s);
		list_init(&done);
		if (!list_empty(&s->completed)) {
			done = s->completed;
			done.next->prev = &done;
			done.prev->next = &done;
			list_init(&s->completed);
		}
		while ((n = list_first(&s->graveyard))) {
			list_del(n);
			inst_free(container_of(n, struct inst, all));
		}
		pthread_mutex_unlock(&s->lock);
		completions_run(s, &done);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---------------------------------------------------------------------
 * Public calls
 */

struct sched *sched_create(const struct sched_config *cfg, char *err,
			   size_t errlen)
{
	struct sched *s = calloc(1, sizeof(*s));
	int ret;

	if (!s) {
		errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	s->cfg = *cfg;
	s->vmm = strdup(cfg->vmm);
	s->runtime_dir = strdup(cfg->runtime_dir);
	if (cfg->hooks)
		s->hooks = *cfg->hooks;
	s->epfd = s->wakefd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->pool_cond, NULL);
	pthread_cond_init(&s->drain_cond, NULL);
	list_init(&s->shell_waiters);
	list_init(&s->pool_irq);
	list_init(&s->pumps);
	list_init(&s->insts);
	list_init(&s->graveyard);
	list_init(&s->pool);
	list_init(&s->completed);
	list_init(&s->idle_lru);
	list_init(&s->cap_waiters);
	timer_init(&s->tick);
	if (s->cfg.pool_max < s->cfg.pool_min)
		s->cfg.pool_max = s->cfg.pool_min;
	s->pool_target = s->cfg.pool_min;
	if (!s->cfg.idle_ttl_ms)
		s->cfg.idle_ttl_ms = 300000;
	if (!s->cfg.ping_interval_ms)
		s->cfg.ping_interval_ms = 30000;
	if (!s->vmm || !s->runtime_dir) {
		errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		goto err_free;
	}
	if (util_random(&s->req_seed, sizeof(s->req_seed))) {
		errbuf_fail(err, errlen, -EIO, "getrandom failed");
		goto err_free;
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->epfd < 0 || s->wakefd < 0 ||
	    watch_add(s, &s->w_wake, s->wakefd, on_wake)) {
		errbuf_fail(err, errlen, -errno, "epoll/eventfd: %s",
			    strerror(errno));
		goto err_free;
	}
	ret = pthread_create(&s->loop_thread, NULL, loop_main, s);
	if (ret) {
		errbuf_fail(err, errlen, -ret, "pthread_create: %s",
			    strerror(ret));
		goto err_free;
	}
	s->loop_started = true;
	ret = pthread_create(&s->pool_thread, NULL, pool_main, s);
	if (ret) {
		errbuf_fail(err, errlen, -ret, "pthread_create: %s",
			    strerror(ret));
		sched_destroy(s);
		return NULL;
	}
	s->pool_started = true;
	return s;
err_free:
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->wakefd >= 0)
		close(s->wakefd);
	free(s->vmm);
	free(s->runtime_dir);
	free(s);
	return NULL;
}

/* Stops fn taking work (lock held): off the hash and the waiting lists; its
 * idle and starting instances end now, busy ones when they finish. */
static void fn_retire(struct sched *s, struct fn *fn)
{
	struct list_node *n, *t;

	fn->retired = true;
	if (list_linked(&fn->wait_node))
		list_del(&fn->wait_node);
	if (list_linked(&fn->cap_node))
		list_del(&fn->cap_node);
	list_for_each_safe(n, t, &s->insts) {
		struct inst *in = container_of(n, struct inst, all);

		if (in->fn == fn && in->state != I_BUSY)
			inst_kill(s, in);
	}
	fn_schedule_pump(s, fn); /* frees it once unreferenced */
}

/*
 * Whether fn's snapshot carries its host connection, so that its restores
 * hand the VMM a socket for it (vsock-carry) and skip CONNECT and READY.
 * Asked of micro guests only: a Linux guest's READY asks for SYNC, the
 * clock and entropy each clone must get, and its deploy does not keep the
 * connection. Snapshots deployed before 2026-12-03 carry none and restore
 * as before.
 */
static bool snapshot_carries(const struct fn *fn)
{
	char path[4096], err[256];
	int fd, ret;

	snprintf(path, sizeof(path), "%s/state", fn->snap_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false; /* the restore will say what is wrong */
	ret = ember_snapshot_carries_connection(fd, err, sizeof(err));
	close(fd);
	if (ret < 0)
		log_warn("%s v%u: %s", fn->name, fn->version, err);
	return ret == 1;
}

int sched_fn_set(struct sched *s, const struct sched_fn_spec *spec)
{
	struct fn *fn = calloc(1, sizeof(*fn)), *old;
	uint64_t b = (uint64_t)spec->fn_id % FN_BUCKETS;

	if (!fn)
		return -ENOMEM;
	fn->id = spec->fn_id;
	fn->tenant_id = spec->tenant_id;
	fn->version = spec->version;
	snprintf(fn->name, sizeof(fn->name), "%s", spec->name);
	util_copy(fn->tenant, sizeof(fn->tenant), spec->tenant);
	fn->snap_dir = strdup(spec->snapshot_dir);
	fn->disk = spec->disk ? strdup(spec->disk) : NULL;
	fn->irqchip = spec->irqchip;
	fn->memory_mib = spec->memory_mib;
	fn->timeout_ms = spec->timeout_ms ? spec->timeout_ms : 3000;
	fn->max_conc = spec->max_concurrency ? spec->max_concurrency : 1;
	fn->idle_ttl_ms = spec->idle_ttl_ms;
	fn->min_instances = spec->min_instances < fn->max_conc ?
				    spec->min_instances : fn->max_conc;
	list_init(&fn->idle);
	list_init(&fn->queue);
	list_init(&fn->wait_node);
	list_init(&fn->pump_node);
	list_init(&fn->cap_node);
	if (!fn->snap_dir || (spec->disk && !fn->disk)) {
		fn_free(fn);
		return -ENOMEM;
	}
	{
		char ws[4096];
		struct stat st;

		snprintf(ws, sizeof(ws), "%s/workingset", fn->snap_dir);
		fn->ws_known = stat(ws, &st) == 0;
	}
	fn->carried = !fn->irqchip && snapshot_carries(fn);
	pthread_mutex_lock(&s->lock);
	fn->t = tenant_get(s, fn->tenant_id);
	if (!fn->t) {
		pthread_mutex_unlock(&s->lock);
		fn_free(fn);
		return -ENOMEM;
	}
	old = fn_find(s, spec->fn_id);
	if (old) {
		/* The queue moves to the new version; counters carry on. */
		fn->st = old->st;
		while (!list_empty(&old->queue)) {
			struct list_node *n = list_first(&old->queue);

			list_del(n);
			list_append(&fn->queue, n);
			container_of(n, struct inv, node)->fn = fn;
			old->nr_queued--;
			fn->nr_queued++;
		}
		fn_hash_del(s, old);
		fn_retire(s, old);
	}
	fn->hnext = s->buckets[b];
	s->buckets[b] = fn;
	s->nr_fns++;
	fn_schedule_pump(s, fn);
	pumps_run(s);
	pthread_mutex_unlock(&s->lock);
	wake(s);
	return 0;
}

void sched_fn_remove(struct sched *s, int64_t fn_id)
{
	struct fn *fn;

	pthread_mutex_lock(&s->lock);
	fn = fn_find(s, fn_id);
	if (fn) {
		while (!list_empty(&fn->queue))
			inv_complete(s, container_of(list_first(&fn->queue),
						     struct inv, node),
				     SCHED_GONE, "the function was deleted");
		fn_hash_del(s, fn);
		fn_retire(s, fn);
		pumps_run(s);
	}
	pthread_mutex_unlock(&s->lock);
	wake(s);
}

int sched_fn_scaling(struct sched *s, int64_t fn_id, uint32_t min_instances,
		     uint32_t idle_ttl_ms)
{
	struct list_node *n, *t;
	struct fn *fn;
	int ret = -ENOENT;

	pthread_mutex_lock(&s->lock);
	fn = fn_find(s, fn_id);
	if (fn) {
		fn->min_instances = min_instances < fn->max_conc ?
					    min_instances : fn->max_conc;
		fn->idle_ttl_ms = idle_ttl_ms;
		/* Idle instances re-time their stop; more may start. */
		list_for_each_safe(n, t, &fn->idle)
			idle_timer_arm(s, container_of(n, struct inst, node));
		fn_schedule_pump(s, fn);
		pumps_run(s);
		ret = 0;
	}
	pthread_mutex_unlock(&s->lock);
	wake(s);
	return ret;
}

int sched_fn_stop_idle(struct sched *s, int64_t fn_id)
{
	struct list_node *n;
	struct fn *fn;
	int ret = -ENOENT;

	pthread_mutex_lock(&s->lock);
	fn = fn_find(s, fn_id);
	if (fn) {
		ret = 0;
		while ((n = list_first(&fn->idle))) {
			inst_kill(s, container_of(n, struct inst, node));
			ret++;
		}
		pumps_run(s);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int sched_fn_stats(struct sched *s, int64_t fn_id, struct sched_fn_stats *st)
{
	struct fn *fn;
	int ret = -ENOENT;

	pthread_mutex_lock(&s->lock);
	fn = fn_find(s, fn_id);
	if (fn) {
		*st = fn->st;
		st->version = fn->version;
		st->min_instances = fn->min_instances;
		st->idle_ttl_ms = fn->idle_ttl_ms ? fn->idle_ttl_ms :
						    s->cfg.idle_ttl_ms;
		st->idle = fn->nr_idle;
		st->busy = fn->nr_busy;
		st->starting = fn->nr_starting;
		st->queued = fn->nr_queued;
		ret = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

void sched_default_limits(struct sched *s, struct sched_limits *l)
{
	*l = s->cfg.tenant_default; /* read-only after sched_create */
}

int sched_tenant_limits(struct sched *s, int64_t tenant_id,
			const struct sched_limits *l)
{
	struct tenant *t;
	int ret = -ENOMEM;

	pthread_mutex_lock(&s->lock);
	t = tenant_get(s, tenant_id);
	if (t) {
		t->limits = l ? *l : s->cfg.tenant_default;
		t->custom = l != NULL;
		/* Higher limits may let waiting invocations start. */
		capacity_released(s);
		pumps_run(s);
		ret = 0;
	}
	pthread_mutex_unlock(&s->lock);
	wake(s);
	return ret;
}

void sched_tenant_stats(struct sched *s, int64_t tenant_id,
			struct sched_tenant_stats *st)
{
	struct tenant *t;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&s->lock);
	st->limits = s->cfg.tenant_default;
	for (t = s->tenants[(uint64_t)tenant_id % TENANT_BUCKETS]; t;
	     t = t->hnext) {
		if (t->id != tenant_id)
			continue;
		st->limits = t->limits;
		st->used.instances = t->instances;
		st->used.memory_mib = t->memory_mib;
		st->used.concurrency = t->inflight;
	}
	pthread_mutex_unlock(&s->lock);
}

int sched_vms(struct sched *s, struct sched_vm_info **out, size_t *n)
{
	struct sched_vm_info *arr;
	struct list_node *l, *t;
	uint64_t now = util_now_ns();
	size_t k = 0;

	pthread_mutex_lock(&s->lock);
	arr = calloc(s->nr_insts ? s->nr_insts : 1, sizeof(*arr));
	if (!arr) {
		pthread_mutex_unlock(&s->lock);
		return -ENOMEM;
	}
	list_for_each_safe(l, t, &s->insts) {
		struct inst *in = container_of(l, struct inst, all);
		struct sched_vm_info *v = &arr[k];

		if (k == s->nr_insts)
			break;
		k++;
		v->pid = (int)in->proc.pid;
		v->state = state_name[in->state];
		if (in->fn && in->state >= I_RESTORING) {
			v->tenant_id = in->fn->tenant_id;
			v->fn_id = in->fn->id;
			v->version = in->fn->version;
		}
		if (in->state == I_IDLE)
			v->idle_ms = (now - in->last_used_ns) / 1000000;
	}
	pthread_mutex_unlock(&s->lock);
	*out = arr;
	*n = k;
	return 0;
}

void sched_stats(struct sched *s, struct sched_stats *st)
{
	pthread_mutex_lock(&s->lock);
	memset(st, 0, sizeof(*st));
	st->pool_ready = s->nr_ready;
	st->pool_spawning = s->nr_spawning;
	st->pool_target = s->pool_target;
	st->pool_min = s->cfg.pool_min;
	st->pool_max = s->cfg.pool_max;
	st->pool_spawned = s->spawned;
	st->pool_spawn_failures = s->spawn_failures;
	st->pool_misses = s->pool_misses;
	st->restores_per_s = s->restore_rate;
	st->functions = s->nr_fns;
	st->tenants = s->nr_tenants;
	st->vmm_processes = s->nr_insts;
	st->memory_budget_mib = s->cfg.memory_budget_mib;
	st->memory_committed_mib = s->memory_committed_mib;
	st->reclaimed = s->reclaimed;
	st->reaped = s->reaped;
	for (size_t b = 0; b < FN_BUCKETS; b++)
		for (struct fn *fn = s->buckets[b]; fn; fn = fn->hnext)
			st->queued += fn->nr_queued;
	{
		struct list_node *n, *t;

		list_for_each_safe(n, t, &s->insts) {
			struct inst *in = container_of(n, struct inst, all);

			if (in->state >= I_RESTORING && in->state < I_DEAD)
				st->instances++;
		}
	}
	pthread_mutex_unlock(&s->lock);
}

/* How long the invocation about to join fn's queue can expect to wait:
 * the invocations ahead of it, served by the instances fn may have, at
 * its average service time. 0 while there is nothing to go by. */
static uint64_t fn_expected_wait_ns(const struct fn *fn)
{
	unsigned servers = fn->max_conc;

	if (fn->service_samples < SERVICE_SAMPLES_MIN || !fn->nr_queued)
		return 0;
	if (fn->t->limits.concurrency && fn->t->limits.concurrency < servers)
		servers = fn->t->limits.concurrency;
	return (uint64_t)(fn->nr_queued + 1) * fn->avg_service_ns /
	       (servers ? servers : 1);
}

int sched_invoke(struct sched *s, int64_t fn_id, void *payload, size_t len,
		 const struct timespec *start, unsigned max_wait_ms,
		 sched_done_fn done, void *ctx)
{
	struct inv *inv = calloc(1, sizeof(*inv));
	struct fn *fn;
	bool wake_loop = false;

	if (!inv) {
		free(payload);
		return -ENOMEM;
	}
	inv->payload = payload;
	inv->len = len;
	inv->done = done;
	inv->ctx = ctx;
	inv->start = *start;
	inv->enq_ns = util_now_ns();
	timer_init(&inv->timer);
	list_init(&inv->node);

	pthread_mutex_lock(&s->lock);
	fn = s->draining ? NULL : fn_find(s, fn_id);
	if (!fn) {
		int ret = s->draining ? -ESHUTDOWN : -ENOENT;

		pthread_mutex_unlock(&s->lock);
		free(payload);
		free(inv);
		return ret;
	}
	s->inflight++;
	inv->fn = fn;
	inv->tenant_id = fn->tenant_id;
	inv->fn_id = fn->id;
	inv->version = fn->version;
	inv->memory_mib = fn->memory_mib;
	inv->timeout_ms = fn->timeout_ms;
	util_copy(inv->tenant, sizeof(inv->tenant), fn->tenant);
	util_copy(inv->function, sizeof(inv->function), fn->name);
	inv->res.request_id = request_id_next(s);
	inv->wait_ms = s->cfg.queue_wait_ms;
	if (max_wait_ms && max_wait_ms < inv->wait_ms)
		inv->wait_ms = max_wait_ms;
	{
		/* What can take this invocation: idle instances, those
		 * starting, those that may still start, and the queue. */
		unsigned room = fn->max_conc > fn_total(fn) ?
					fn->max_conc - fn_total(fn) : 0;
		uint64_t expect = fn_expected_wait_ns(fn);

		if (fn->nr_queued >= fn->nr_idle + fn->nr_starting + room +
					     s->cfg.queue_max) {
			inv_complete(s, inv, SCHED_THROTTLED,
				     "%u invocations already wait for this "
				     "function", fn->nr_queued);
			inv->res.retry_after_s = (unsigned)(expect / 1000000000 + 1);
			wake_loop = true;
		} else if (expect > (uint64_t)inv->wait_ms * 1000000ull) {
			/* Refused now rather than after waiting for nothing. */
			inv_complete(s, inv, SCHED_THROTTLED,
				     "the expected wait (%llu ms) is longer than "
				     "this request may wait (%llu ms)",
				     (unsigned long long)(expect / 1000000),
				     (unsigned long long)inv->wait_ms);
			inv->res.retry_after_s = (unsigned)(expect / 1000000000 + 1);
			wake_loop = true;
		} else {
			list_append(&fn->queue, &inv->node);
			fn->nr_queued++;
			timer_arm(s, &inv->timer, inv->wait_ms,
				  on_queue_timeout);
			fn_pump(s, fn);
			pumps_run(s);
			/* Anything completed above (a restore that failed at
			 * once) is the loop's to deliver. */
			wake_loop = !list_empty(&s->completed);
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (wake_loop)
		wake(s);
	return 0;
}

/* Ends every instance and fails whatever still waits (lock held). */
static void stop_everything(struct sched *s)
{
	struct list_node *n, *t;

	s->stopping = true;
	for (size_t b = 0; b < FN_BUCKETS; b++)
		for (struct fn *fn = s->buckets[b]; fn; fn = fn->hnext)
			while (!list_empty(&fn->queue))
				inv_complete(s, container_of(list_first(&fn->queue),
							     struct inv, node),
					     SCHED_UNAVAILABLE,
					     "emberd is shutting down");
	list_for_each_safe(n, t, &s->insts) {
		struct inst *in = container_of(n, struct inst, all);

		if (in->state == I_BUSY && in->inv) {
			inv_complete(s, in->inv, SCHED_UNAVAILABLE,
				     "emberd is shutting down");
			in->inv = NULL;
		}
		inst_kill(s, in);
	}
	pthread_cond_broadcast(&s->pool_cond);
}

void sched_drain(struct sched *s, unsigned grace_ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += grace_ms / 1000;
	until.tv_nsec += (long)(grace_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->lock);
	s->draining = true;
	while (s->inflight &&
	       pthread_cond_timedwait(&s->drain_cond, &s->lock, &until) == 0)
		;
	if (s->inflight)
		log_warn("%u invocations still running after the %u ms grace; "
			 "stopping their VMs", s->inflight, grace_ms);
	stop_everything(s);
	pthread_mutex_unlock(&s->lock);
	wake(s);
}

void sched_destroy(struct sched *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->draining = true;
	stop_everything(s);
	pthread_mutex_unlock(&s->lock);
	wake(s);
	if (s->pool_started)
		pthread_join(s->pool_thread, NULL);
	if (s->loop_started) {
		wake(s);
		pthread_join(s->loop_thread, NULL);
	}
	/* Whatever the loop left (processes that would not die). */
	while (!list_empty(&s->insts)) {
		struct inst *in = container_of(list_first(&s->insts),
					       struct inst, all);

		list_del(&in->all);
		if (in->w_pid.fd >= 0)
			close(in->w_pid.fd);
		inst_free(in);
	}
	while (!list_empty(&s->graveyard)) {
		struct inst *in = container_of(list_first(&s->graveyard),
					       struct inst, all);

		list_del(&in->all);
		inst_free(in);
	}
	for (size_t b = 0; b < FN_BUCKETS; b++) {
		while (s->buckets[b]) {
			struct fn *fn = s->buckets[b];

			s->buckets[b] = fn->hnext;
			fn_free(fn);
		}
	}
	timers_free(&s->timers);
	for (size_t b = 0; b < TENANT_BUCKETS; b++) {
		while (s->tenants[b]) {
			struct tenant *t = s->tenants[b];

			s->tenants[b] = t->hnext;
			free(t);
		}
	}
	close(s->epfd);
	close(s->wakefd);
	free(s->vmm);
	free(s->runtime_dir);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->pool_cond);
	pthread_cond_destroy(&s->drain_cond);
	free(s);
}
