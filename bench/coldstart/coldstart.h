/*
 * coldstart.h - what the files of the cold-start benchmark share
 * (docs/benchmarks.md): samples and their statistics, the trace of
 * libember's restore steps, one run's timeline and a series of runs, the
 * configuration, each scenario's results, and the functions each file
 * offers the others. main.c drives the scenarios; util.c, trace.c,
 * session.c, scenarios.c, qemu.c, density.c and report.c are described at
 * their tops.
 */
#ifndef EMBER_BENCH_COLDSTART_H
#define EMBER_BENCH_COLDSTART_H

/* The snapshot's guest RAM (and so the size a pool reserves in a shell). */
#define SNAP_MEM_MIB 256
#define SNAP_MEM_MIB_STR "256"

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Children recorded at once (util.c): the most clones scenario e starts. */
#define MAX_KIDS 2048

/* Samples in the order measured; s_stats() sorts a copy. */
struct samples {
	double *v;
	size_t n, cap;
};

struct stats {
	size_t n;
	double p50, p99, min, max, mean;
};

/* libember's restore steps, timed by trace.c: one entry per traced call
 * name, nested or not. */
struct tr_ent {
	char name[48];
	bool top;         /* not nested inside another traced call */
	uint64_t ns, count;
	uint64_t cur;     /* this run's time so far */
	struct samples per_run; /* us per run, one sample per run */
};

struct trace {
	struct tr_ent e[64];
	unsigned n;
	unsigned runs;
	uint64_t prefetch_bytes;
};

/* One cold start's timeline, in us from its start. */
struct run {
	double sock;    /* the vsock socket accepted our connect */
	double hs;      /* + hybrid-vsock handshake done */
	double ready;   /* + READY frame received */
	double total;   /* + RESULT of the first invoke: the cold start */
	double warm;    /* a second invoke's round trip (not in total) */
	double restore; /* library: the restore call alone */
	double runstart;/* library: restore returned -> first KVM_RUN */
	long minflt;    /* page faults taken during the first invoke */
	long exits_hs, exits_ready, exits_inv, exits_warm; /* library only */
};

/* Many runs of one scenario, and the first failure's reason. */
struct series {
	struct samples total, sock, hs, ready, invoke, warm, restore, runstart,
		minflt, exits_hs, exits_ready, exits_inv, exits_warm;
	unsigned failures;
	char first_error[256];
};

/* How a library cold start restores (scenarios.c): from `snap` (NULL: the
 * main snapshot), with prefetch, and over the connection the snapshot
 * carries instead of a new one (scenario h). */
struct lib_opts {
	const char *snap;
	bool prefetch, carry;
};

/* The command line (main.c). */
struct cfg {
	char *vmm, *handler, *out, *qemu;
	char work[PATH_MAX];
	char snap[PATH_MAX];
	char snap_carry[PATH_MAX]; /* scenario h's snapshot */
	bool quick, keep_work;
	unsigned runs_a, runs_b, runs_b2, runs_c, runs_d, runs_g, runs_h;
	unsigned clones[4], nclones;
	double tput_seconds;
	char only[32];
};

/* Scenario d (qemu.c). */
struct qemu_result {
	bool ok;
	char error[256];
	char kernel_attempt[256];
	char version[64];
	long state_bytes;
	struct samples total, qmp_sock;
};

/* Scenario e (density.c): N idle clones of one snapshot. */
struct density {
	unsigned want, started, initialised;
	double seconds;
	/* kB, sums over clones */
	double pss, rss, priv_clean, priv_dirty, shared_clean;
	long memavail_delta_kib;
	char error[256];
};

/* What an idle clone costs in CPU: a few clones, initialised and left
 * running (not frozen), sampled over a couple of seconds. */
struct idle_cpu {
	unsigned clones;
	double seconds;
	double cpu_percent_per_clone; /* of one core */
	char error[256];
};

/* Scenario f (scenarios.c): restores per second with both cores. */
struct tput {
	unsigned workers;
	double seconds;
	unsigned long done, failed;
};

/* Everything one run of the benchmark measured (report.c writes it). */
struct results {
	struct series a, b, b2, c, g_off, g_on, gb_off, gb_on;
	struct samples exec_only;
	struct trace tr_shell, tr_restore, tr_b2, tr_gb_off, tr_gb_on;
	struct qemu_result q;
	struct density dens[4];
	unsigned ndens;
	struct idle_cpu idle;
	struct tput tp_proc, tp_lib;
	bool ws_ok;
	char ws_error[256];
	/* h: the carrying snapshot restored plainly (a new connection) and
	 * over its carried connection, each without and with prefetch. */
	struct series h_plain, h_plain_pf, h_carry, h_carry_pf;
	bool h_ok;
	char h_error[256];
	long ws_pages;
	long snap_state_bytes, snap_mem_alloc_kib;
	double snap_create_ms;
};

/* Globals, each defined in the file named. */
extern volatile sig_atomic_t g_nkids; /* util.c: children recorded */
extern int g_errlog; /* util.c: children's stderr, set by main.c */
extern pid_t g_spawn_pgroup; /* util.c: -1 ours; 0 a new group; >0 join */
extern uint64_t g_first_run_ns; /* trace.c: this run's first KVM_RUN */
extern uint64_t g_kvm_runs; /* trace.c: KVM_RUN calls here: ~VM exits */
extern char g_load_start[128]; /* report.c: load average at the start */
extern const char g_req[]; /* session.c: what every invoke sends */

/* util.c: time, samples, children, sockets, configuration */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t now_ns(void);
double us_since(uint64_t t0, uint64_t t1);
void s_add(struct samples *s, double x);
struct stats s_stats(const struct samples *s);
double s_median(const struct samples *s);
void kid_add(pid_t pid);
void kid_forget(pid_t pid);
int kid_reap(pid_t pid);
void kids_kill_all(void);
void on_fatal_signal(int sig);
pid_t spawn(char *const argv[]);
long proc_minflt(pid_t pid);
int wait_fd(int fd, short ev, uint64_t deadline);
int connect_wait(const char *path, pid_t pid, uint64_t deadline);
int read_full(int fd, void *buf, size_t len, uint64_t deadline);
bool want(struct cfg *c, char s);

/* trace.c: arms the trace on this thread; tr_end_run() closes a run */
void tr_end_run(struct trace *t);
void tr_arm(struct trace *t);
void tr_disarm(void);

/* session.c: one cold start against the instance behind `sock` */
void series_fail(struct series *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void series_add(struct series *s, const struct run *r);
int start_session(const char *sock, pid_t pid, uint64_t t0,
		  struct run *r, char *why, size_t whylen);
/* The same over the connection a snapshot carried, `fd` (ours): no
 * handshake, no READY; r->sock and r->hs stay 0. */
int carried_session(int fd, uint64_t t0, struct run *r, char *why,
		    size_t whylen);

/* scenarios.c: a, b, b2, c, f, g, h */
void run_process_series(struct cfg *c, struct series *s,
			unsigned n, bool prefetch, bool boot,
			const char *tag);
void run_exec_only(struct cfg *c, struct samples *s, unsigned n);
void probe_shell(struct cfg *c);
void run_lib_series(struct cfg *c, struct series *s, unsigned n,
		    bool shell, const struct lib_opts *o,
		    struct trace *tr_shell, struct trace *tr_restore,
		    const char *tag);
void run_tput_processes(struct cfg *c, struct tput *t);
void run_tput_library(struct cfg *c, struct tput *t);
int record_workingset(struct cfg *c, char *snap, char *why,
		      size_t whylen);
int make_carry_snapshot(struct cfg *c, char *why, size_t whylen);

/* qemu.c: d */
void run_qemu(struct cfg *c, struct qemu_result *qr);

/* density.c: e (meminfo_kib() also for the report's host facts) */
long meminfo_kib(const char *key);
int smaps_rollup(pid_t pid, struct density *d);
void run_density(struct cfg *c, struct density *d);
void run_idle_cpu(struct cfg *c, struct idle_cpu *ic);

/* report.c */
void write_json(struct cfg *c, struct results *R);
void print_table(const struct results *R);

#endif
