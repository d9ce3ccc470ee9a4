/*
 * sched.h - emberd's scheduler: function instances and the VM shell pool.
 *
 * Owns: every VMM process emberd runs, from spawn to reap. A pool of
 * `ember-vmm --shell` processes (VM created, waiting on their control
 * socket) is kept filled by a pool thread, off the critical path. An
 * invocation goes to an idle instance of its function (warm: its vsock
 * connection is held open), else waits in the function's bounded FIFO
 * while a pooled shell is told to restore the function's snapshot (cold;
 * the snapshot files, the disk image and one end of a socketpair that is
 * the instance's vsock connection travel as file descriptors). An instance
 * serves one invocation at a time; instances per function are bounded by
 * its max concurrency. Deadlines, crashes and VMM deaths end the instance,
 * never emberd.
 *
 * Does not: know about HTTP, SQLite or tenants beyond their ids: the API
 * tells it which function versions exist (sched_fn_set/remove) and asks it
 * to invoke; the deploy owns the snapshot files.
 *
 * Threads: one event thread (epoll over every instance's sockets and
 * pidfd, and a timer heap) does all instance I/O; the pool thread spawns
 * shells; every public function may be called from any thread. Completion
 * callbacks run on the event thread and must not block.
 *
 * Hooks where later work slots in: the jail (struct vmmproc_hooks, applied
 * by the pool thread to every VMM it spawns) and metering (finished(),
 * called once per invocation before its answer is handed over).
 */
#ifndef EMBER_AGENT_SCHED_H
#define EMBER_AGENT_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "agent/util.h"
#include "agent/vmmproc.h"

/* Why an invocation ended, as the API reports it. */
enum sched_outcome {
	SCHED_OK = 0,      /* RESULT, status 0 */
	SCHED_FN_ERROR,    /* RESULT, status != 0: the function's own error */
	SCHED_TIMEOUT,     /* the function's timeout passed: instance killed */
	SCHED_CRASH,       /* handler or VMM died mid-invocation */
	SCHED_THROTTLED,   /* no instance within the wait, or queue full */
	SCHED_UNAVAILABLE, /* no VM could be started (shell spawn failing) */
	SCHED_INTERNAL,    /* emberd's own fault (snapshot files unusable) */
	SCHED_GONE,        /* the function was deleted while it waited */
};
const char *sched_outcome_name(enum sched_outcome o);

struct sched_result {
	enum sched_outcome outcome;
	uint64_t request_id;     /* also the INVOKE frame's id */
	uint8_t *payload;        /* OK / FN_ERROR: the function's answer */
	size_t len;              /* (malloc'd; the callback owns it) */
	uint32_t fn_status;      /* RESULT status */
	bool cold;               /* served by a freshly restored instance */
	uint64_t init_ns;        /* cold: restore sent -> READY */
	uint64_t duration_ns;    /* INVOKE sent -> RESULT received */
	uint64_t queued_ns;      /* waited for an instance */
	uint32_t retry_after_s;  /* THROTTLED */
	char message[256];       /* why, for anything but OK / FN_ERROR */
};

typedef void (*sched_done_fn)(void *ctx, struct sched_result *res);

/* One finished invocation, for the ledger and the logs (issue 11). The
 * strings are borrowed for the call. */
struct sched_record {
	int64_t tenant_id, fn_id;
	const char *tenant, *function; /* names, valid during the call */
	uint32_t version;
	uint32_t timeout_ms;      /* the version's (a timeout bills it all) */
	uint64_t request_id;
	uint64_t queued_ns;       /* waited for an instance (incl. restore) */
	struct timespec start;    /* wall clock when the request arrived */
	uint64_t duration_ns;
	uint32_t memory_mib;
	bool cold;
	uint64_t init_ns;
	enum sched_outcome outcome;
	size_t bytes_in, bytes_out;
	const char *logs;         /* LOG frames' bytes (bounded), may be NULL */
	size_t logs_len;
	bool logs_dropped;
};

struct sched_hooks {
	void *ctx;
	/* The jail: see vmmproc.h. */
	struct vmmproc_hooks spawn;
	/* Called (event or API thread, scheduler lock held) right before a
	 * pooled shell is told to restore a function: the jail moves the
	 * process into its tenant's cgroup here, after its KVM VM was made
	 * at spawn. tenant_memory_mib is the tenant's memory limit (0: none),
	 * for its group. Nonzero fails this restore (the shell is ended). */
	int (*assign)(void *ctx, struct vmmproc *p, int64_t tenant_id,
		      int64_t fn_id, uint32_t memory_mib,
		      uint64_t tenant_memory_mib);
	/* Called on the event thread for every invocation that was accepted
	 * (sched_invoke returned 0), right before its answer is handed to
	 * the caller: a hook that must make the record durable before the
	 * client can see the answer does it here. Must be quick. */
	void (*finished)(void *ctx, const struct sched_record *rec);
};

/* Per-tenant limits; 0 = none. */
struct sched_limits {
	unsigned instances;     /* instances alive (starting, idle, busy) */
	uint64_t memory_mib;    /* their guest RAM + VMM overhead */
	unsigned concurrency;   /* invocations running at once */
};

/* What an instance costs beyond its guest RAM, for the memory budget: the
 * VMM process's own pages (threads, page tables, buffers). */
#define SCHED_VMM_OVERHEAD_MIB 8

struct sched_config {
	const char *vmm;              /* ember-vmm */
	const char *runtime_dir;      /* RUNTIME/vmm/ holds the pid files */
	unsigned pool_min, pool_max;  /* shells kept ready: floor, ceiling */
	unsigned queue_max;           /* waiting invocations per function */
	unsigned queue_wait_ms;       /* longest wait for an instance */
	unsigned restore_timeout_ms;
	unsigned idle_ttl_ms;         /* default idle time before a stop */
	unsigned ping_interval_ms;    /* idle instances are PINGed this often */
	uint64_t memory_budget_mib;   /* all instances' guest RAM + overhead */
	struct sched_limits tenant_default;
	const struct sched_hooks *hooks; /* may be NULL */
};

/* What the scheduler needs to know of a function's current version. */
struct sched_fn_spec {
	int64_t fn_id, tenant_id;
	uint32_t version;
	char name[UTIL_NAME_MAX + 1];   /* for logs and the ledger */
	char tenant[UTIL_NAME_MAX + 1]; /* the tenant's name, likewise */
	const char *snapshot_dir;       /* absolute: state, memory[, workingset] */
	const char *disk;               /* absolute path of the image, or NULL */
	bool irqchip;                   /* the snapshot has an in-kernel irqchip
					   (guest "linux"): restored in shells
					   spawned with --irqchip */
	uint32_t memory_mib, timeout_ms, max_concurrency;
	uint32_t idle_ttl_ms;           /* 0: the scheduler's default */
	uint32_t min_instances;         /* kept warm whatever the load */
};

struct sched_fn_stats {
	uint32_t version;
	uint32_t min_instances, idle_ttl_ms;
	unsigned idle, busy, starting;
	unsigned queued;
	uint64_t cold, warm;            /* invocations since emberd started */
	uint64_t errors, timeouts, crashes, throttled;
};

struct sched_stats {
	unsigned pool_ready, pool_spawning, pool_target, pool_min, pool_max;
	uint64_t pool_spawned, pool_spawn_failures;
	uint64_t pool_misses;           /* cold starts that found no shell */
	double restores_per_s;          /* recent restore rate */
	unsigned instances, functions, tenants;
	uint64_t vmm_processes;         /* alive, all states */
	uint64_t memory_budget_mib, memory_committed_mib;
	uint64_t reclaimed;             /* idle instances stopped for room */
	uint64_t reaped;                /* stopped for not answering PING */
	unsigned queued;                /* invocations waiting, all functions */
};

struct sched_tenant_stats {
	struct sched_limits limits, used;
};

/* One VMM process, for the admin's view (GET /v1/system). */
struct sched_vm_info {
	int pid;
	const char *state;        /* spawning shell restoring starting idle busy */
	int64_t tenant_id, fn_id; /* 0 for shells */
	uint32_t version;
	uint64_t idle_ms;         /* idle: since its last invocation */
};

struct sched;

/* Creates the scheduler and starts its threads (the pool begins filling).
 * NULL and a reason in err. */
struct sched *sched_create(const struct sched_config *cfg, char *err,
			   size_t errlen);

/* Installs fn_id's current version, or replaces it: later invocations go
 * to the new version; idle instances of the old one are stopped, busy ones
 * when they finish. The spec's strings are copied. 0 or -errno. */
int sched_fn_set(struct sched *s, const struct sched_fn_spec *spec);

/* Forgets fn_id: its queued invocations end with SCHED_GONE, its idle
 * instances are stopped, busy ones when they finish. */
void sched_fn_remove(struct sched *s, int64_t fn_id);

/* Changes fn_id's scaling: min_instances kept warm, idle_ttl_ms (0: the
 * default). -ENOENT if not installed. */
int sched_fn_scaling(struct sched *s, int64_t fn_id, uint32_t min_instances,
		     uint32_t idle_ttl_ms);

/* Stops fn_id's idle instances now (its next invocation is cold); busy
 * ones are left alone. Returns how many were stopped, or -ENOENT. */
int sched_fn_stop_idle(struct sched *s, int64_t fn_id);

/* Counters for fn_id; -ENOENT if not installed. */
int sched_fn_stats(struct sched *s, int64_t fn_id, struct sched_fn_stats *st);

/* The limits a tenant has when none are set for it (the configuration). */
void sched_default_limits(struct sched *s, struct sched_limits *l);

/* Sets a tenant's limits (NULL: back to the defaults). */
int sched_tenant_limits(struct sched *s, int64_t tenant_id,
			const struct sched_limits *l);
/* A tenant's limits and what it uses now (zeros for an unknown tenant). */
void sched_tenant_stats(struct sched *s, int64_t tenant_id,
			struct sched_tenant_stats *st);
void sched_stats(struct sched *s, struct sched_stats *st);
/* Every VMM process: *out is malloc'd (free()), *n entries. 0, -ENOMEM. */
int sched_vms(struct sched *s, struct sched_vm_info **out, size_t *n);

/*
 * Invokes fn_id with payload[len] (malloc'd; ownership passes to the
 * scheduler in every case). Returns 0 when accepted: done(ctx, res) is then
 * called exactly once, on the event thread. Returns -ENOENT (no such
 * function installed) or -ESHUTDOWN (draining) without calling done.
 * `start` is the request's arrival (wall clock) for the record; max_wait_ms
 * (0: the configured wait) bounds how long it may wait for an instance.
 */
int sched_invoke(struct sched *s, int64_t fn_id, void *payload, size_t len,
		 const struct timespec *start, unsigned max_wait_ms,
		 sched_done_fn done, void *ctx);

/* Stops taking invocations (sched_invoke returns -ESHUTDOWN), waits up to
 * grace_ms for those in flight and queued to finish, then ends every VM
 * (what still waits ends with SCHED_UNAVAILABLE). */
void sched_drain(struct sched *s, unsigned grace_ms);

/* Ends every VMM process, joins the threads, frees everything. Call after
 * sched_drain. */
void sched_destroy(struct sched *s);

#endif
