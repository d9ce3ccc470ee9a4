/*
 * coldstart.c - Ember's cold-start benchmark (docs/benchmarks.md).
 *
 * Measures how long it takes to get an answer from a function whose VM
 * does not exist yet, in the ways Ember can start one, and the QEMU peer:
 *
 *   a  new process: spawn `ember-vmm --restore DIR`, connect, invoke echo
 *   b  restore into a pre-created shell (libember) in this process, invoke
 *   b2 ember_vm_restore() in this process (shell created on the critical
 *      path), invoke
 *   c  the micro guest booted from scratch (no snapshot), invoke
 *   d  QEMU microvm restored with -incoming from a migration file, until
 *      QMP query-status says "running"
 *   e  density: N idle clones of one snapshot, PSS / private memory each
 *   f  restores per second with both cores (processes and library)
 *   g  working-set prefetch on vs off, for a and b
 *
 * All times come from clock_gettime(CLOCK_MONOTONIC) in this process. Steps
 * inside libember (b, b2) are timed by wrapping, at link time
 * (-Wl,--wrap=...), ioctl(), mmap(), madvise() and a few of libember's
 * internal functions (their prototypes are repeated below: this program
 * must be rebuilt with the library it measures). Nothing here asserts a
 * timing: the numbers go to a JSON report and a table.
 *
 * Every child process is recorded and killed + reaped on every exit path
 * (normal, error, SIGINT/SIGTERM); each ember-vmm child also gets its own
 * --timeout so it ends by itself even if this program is SIGKILLed.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ember.h"
#include "invoke.h"
#include "log.h"
#include "proto/invoke.h"

extern char **environ;

/* ---------------------------------------------------------------------
 * Time and samples
 */
static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double us_since(uint64_t t0, uint64_t t1)
{
	return (double)(t1 - t0) / 1000.0;
}

struct samples {
	double *v;
	size_t n, cap;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void s_add(struct samples *s, double x)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		double *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			die("out of memory");
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stats {
	size_t n;
	double p50, p99, min, max, mean;
};

/* Nearest-rank percentiles over a sorted copy (the samples keep their
 * order: the JSON keeps them as measured). */
static struct stats s_stats(const struct samples *s)
{
	struct stats st = { .n = s->n };
	double *v, sum = 0;

	if (!s->n)
		return st;
	v = malloc(s->n * sizeof(*v));
	if (!v)
		die("out of memory");
	memcpy(v, s->v, s->n * sizeof(*v));
	qsort(v, s->n, sizeof(*v), cmp_double);
	for (size_t i = 0; i < s->n; i++)
		sum += v[i];
	st.min = v[0];
	st.max = v[s->n - 1];
	st.mean = sum / (double)s->n;
	st.p50 = v[(s->n * 50 + 99) / 100 - 1];
	st.p99 = v[(s->n * 99 + 99) / 100 - 1];
	free(v);
	return st;
}

static double s_median(const struct samples *s)
{
	return s_stats(s).p50;
}

/* ---------------------------------------------------------------------
 * Children: every pid we start is recorded so that any exit path kills
 * and reaps it.
 */
#define MAX_KIDS 2048
static pid_t g_kids[MAX_KIDS];
static volatile sig_atomic_t g_nkids;

static void kid_add(pid_t pid)
{
	if (g_nkids >= MAX_KIDS) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		die("more than %d children", MAX_KIDS);
	}
	g_kids[g_nkids] = pid;
	g_nkids = g_nkids + 1;
}

static void kid_forget(pid_t pid)
{
	for (int i = 0; i < g_nkids; i++)
		if (g_kids[i] == pid) {
			g_kids[i] = g_kids[g_nkids - 1];
			g_nkids = g_nkids - 1;
			return;
		}
}

/* Kills `pid` and waits for it; returns its wait status. */
static int kid_reap(pid_t pid)
{
	int st = 0;

	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	kid_forget(pid);
	return st;
}

static void kids_kill_all(void)
{
	/* Signal first, then reap: 500 clones die in parallel. */
	for (int i = 0; i < g_nkids; i++)
		kill(g_kids[i], SIGKILL);
	while (g_nkids > 0)
		kid_reap(g_kids[g_nkids - 1]);
}

static void on_fatal_signal(int sig)
{
	/* Async-signal-safe: kill() and waitpid() only. */
	for (int i = 0; i < g_nkids; i++)
		kill(g_kids[i], SIGKILL);
	for (int i = 0; i < g_nkids; i++)
		waitpid(g_kids[i], NULL, 0);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("coldstart: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	kids_kill_all();
	exit(1);
}

static int g_errlog = -1; /* children's stderr */
static pid_t g_spawn_pgroup = -1; /* -1: ours; 0: a new group; >0: join */

static pid_t spawn(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	pid_t pid;
	int ret;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (g_errlog >= 0)
		posix_spawn_file_actions_adddup2(&fa, g_errlog, 2);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	if (g_spawn_pgroup >= 0) {
		posix_spawnattr_setpgroup(&at, g_spawn_pgroup);
		posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETPGROUP);
	} else {
		posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	}
	ret = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (ret) {
		errno = ret;
		return -1;
	}
	kid_add(pid);
	return pid;
}

/* Minor faults of a process so far (/proc/PID/stat field 10), -1 if not
 * readable. */
static long proc_minflt(pid_t pid)
{
	char path[64], buf[1024], *p;
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')'))) {
		/* after ")": state ppid pgrp session tty tpgid flags minflt */
		if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %ld", &v) != 1)
			v = -1;
	}
	fclose(f);
	return v;
}

/* ---------------------------------------------------------------------
 * Tracing libember from inside: link-time wrappers.
 *
 * Only the thread that armed the trace records (the restoring thread);
 * the vCPU thread's KVM_RUN is noted once per run as "first entry".
 */
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

static struct trace *g_tr;
static __thread int tl_armed, tl_depth;
static uint64_t g_first_run_ns;
static uint64_t g_kvm_runs; /* KVM_RUN calls in this process: ~VM exits */

static void tr_add(const char *name, uint64_t ns, bool top)
{
	struct trace *t = g_tr;
	unsigned i;

	if (!t)
		return;
	for (i = 0; i < t->n; i++)
		if (!strcmp(t->e[i].name, name) && t->e[i].top == top)
			break;
	if (i == t->n) {
		if (t->n == sizeof(t->e) / sizeof(t->e[0]))
			return;
		snprintf(t->e[i].name, sizeof(t->e[i].name), "%s", name);
		t->e[i].top = top;
		t->n++;
	}
	t->e[i].ns += ns;
	t->e[i].cur += ns;
	t->e[i].count++;
}

/* Closes one run: each entry's time in it becomes a per-run sample. */
static void tr_end_run(struct trace *t)
{
	for (unsigned i = 0; i < t->n; i++) {
		s_add(&t->e[i].per_run, (double)t->e[i].cur / 1000.0);
		t->e[i].cur = 0;
	}
	t->runs++;
}

static void tr_arm(struct trace *t)
{
	g_tr = t;
	tl_armed = 1;
	tl_depth = 0;
}

static void tr_disarm(void)
{
	tl_armed = 0;
	g_tr = NULL;
}

static const char *kvm_ioctl_name(unsigned long req)
{
	static const struct {
		unsigned long req;
		const char *name;
	} names[] = {
#define N(x) { x, #x }
		N(KVM_GET_API_VERSION), N(KVM_CREATE_VM), N(KVM_CHECK_EXTENSION),
		N(KVM_GET_VCPU_MMAP_SIZE), N(KVM_GET_SUPPORTED_CPUID),
		N(KVM_CREATE_VCPU), N(KVM_SET_USER_MEMORY_REGION),
		N(KVM_SET_TSS_ADDR), N(KVM_SET_IDENTITY_MAP_ADDR),
		N(KVM_CREATE_IRQCHIP), N(KVM_CREATE_PIT2), N(KVM_SET_IRQCHIP),
		N(KVM_SET_PIT2), N(KVM_SET_CLOCK), N(KVM_IRQFD), N(KVM_IOEVENTFD),
		N(KVM_SET_CPUID2), N(KVM_SET_REGS), N(KVM_SET_SREGS),
		N(KVM_SET_FPU), N(KVM_SET_MSRS), N(KVM_GET_MSRS),
		N(KVM_SET_LAPIC), N(KVM_SET_XSAVE), N(KVM_SET_XCRS),
		N(KVM_SET_VCPU_EVENTS), N(KVM_SET_DEBUGREGS),
		N(KVM_SET_MP_STATE), N(KVM_SET_TSC_KHZ), N(KVM_GET_TSC_KHZ),
		N(KVM_GET_MSR_INDEX_LIST), N(KVM_GET_REGS), N(KVM_GET_SREGS),
		N(KVM_ENABLE_CAP), N(KVM_GET_CLOCK), N(KVM_SET_GSI_ROUTING),
		N(KVM_SET_GUEST_DEBUG),
#undef N
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].req == req)
			return names[i].name;
	return _IOC_TYPE(req) == KVMIO ? "KVM (other ioctl)" : "ioctl (other)";
}

/* The wrapped functions. Prototypes of libember internals are repeated
 * with incomplete struct types (vmm/kvm.h, vmm/vm.h, snapshots/snap.h). */
struct kvm;
struct snap_vm;
int __real_ioctl(int fd, unsigned long req, ...);
int __wrap_ioctl(int fd, unsigned long req, ...);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd,
		  off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
		  off_t off);
int __real_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice);
int __real_snap_read_state(const char *dir, struct snap_vm *s, char *err,
			   size_t errlen);
int __wrap_snap_read_state(const char *dir, struct snap_vm *s, char *err,
			   size_t errlen);
int __real_snap_open_memory(const char *dir, uint64_t expected, int *fd,
			    char *err, size_t errlen);
int __wrap_snap_open_memory(const char *dir, uint64_t expected, int *fd,
			    char *err, size_t errlen);
int __real_kvm_map_ram(struct kvm *kvm, uint64_t size, int fd, char *err,
		       size_t errlen);
int __wrap_kvm_map_ram(struct kvm *kvm, uint64_t size, int fd, char *err,
		       size_t errlen);
int __real_kvm_open(struct kvm *kvm, char *err, size_t errlen);
int __wrap_kvm_open(struct kvm *kvm, char *err, size_t errlen);
int __real_vm_create_core(struct ember_vm *vm, char *err, size_t errlen);
int __wrap_vm_create_core(struct ember_vm *vm, char *err, size_t errlen);
int __real_vm_create_devices(struct ember_vm *vm, char *err, size_t errlen);
int __wrap_vm_create_devices(struct ember_vm *vm, char *err, size_t errlen);

#define TRACED(label, call)                                               \
	({                                                                \
		uint64_t t_ = now_ns();                                   \
		int e_;                                                   \
		tl_depth++;                                               \
		__typeof__(call) r_ = (call);                             \
		e_ = errno;                                               \
		tl_depth--;                                               \
		if (tl_armed)                                             \
			tr_add(label, now_ns() - t_, tl_depth == 0);      \
		errno = e_;                                               \
		r_;                                                       \
	})

int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (req == KVM_RUN) {
		uint64_t zero = 0;

		__atomic_add_fetch(&g_kvm_runs, 1, __ATOMIC_RELAXED);
		__atomic_compare_exchange_n(&g_first_run_ns, &zero, now_ns(),
					    false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED);
		return __real_ioctl(fd, req, arg);
	}
	if (!tl_armed)
		return __real_ioctl(fd, req, arg);
	return TRACED(kvm_ioctl_name(req), __real_ioctl(fd, req, arg));
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
		  off_t off)
{
	if (!tl_armed)
		return __real_mmap(addr, len, prot, flags, fd, off);
	return TRACED(fd >= 0 ? "mmap (file)" : "mmap (anonymous)",
		      __real_mmap(addr, len, prot, flags, fd, off));
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
	if (!tl_armed)
		return __real_madvise(addr, len, advice);
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
	if (advice == MADV_POPULATE_READ && g_tr)
		g_tr->prefetch_bytes += len;
	return TRACED(advice == MADV_POPULATE_READ ?
			      "madvise POPULATE_READ (prefetch)" :
			      "madvise (other)",
		      __real_madvise(addr, len, advice));
}

int __wrap_snap_read_state(const char *dir, struct snap_vm *s, char *err,
			   size_t errlen)
{
	return TRACED("state file read+parse (snap_read_state)",
		      __real_snap_read_state(dir, s, err, errlen));
}

int __wrap_snap_open_memory(const char *dir, uint64_t expected, int *fd,
			    char *err, size_t errlen)
{
	return TRACED("open memory file (snap_open_memory)",
		      __real_snap_open_memory(dir, expected, fd, err, errlen));
}

int __wrap_kvm_map_ram(struct kvm *kvm, uint64_t size, int fd, char *err,
		       size_t errlen)
{
	return TRACED("map guest RAM + memslots (kvm_map_ram)",
		      __real_kvm_map_ram(kvm, size, fd, err, errlen));
}

int __wrap_kvm_open(struct kvm *kvm, char *err, size_t errlen)
{
	return TRACED("open /dev/kvm + KVM_CREATE_VM (kvm_open)",
		      __real_kvm_open(kvm, err, errlen));
}

int __wrap_vm_create_core(struct ember_vm *vm, char *err, size_t errlen)
{
	return TRACED("eventfds, evloop, vCPUs (vm_create_core)",
		      __real_vm_create_core(vm, err, errlen));
}

int __wrap_vm_create_devices(struct ember_vm *vm, char *err, size_t errlen)
{
	return TRACED("device setup (vm_create_devices)",
		      __real_vm_create_devices(vm, err, errlen));
}

/* ---------------------------------------------------------------------
 * Talking to an instance: connect (retrying until the socket exists),
 * then libember's client (vmm/invoke.h) for the hybrid-vsock handshake,
 * READY and the invokes, one call per step so that each can be timed; the
 * protocol is docs/vsock.md and docs/function-abi.md.
 */
static int wait_fd(int fd, short ev, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = ev };
	uint64_t t = now_ns();
	int ms, r;

	if (t >= deadline)
		return -ETIMEDOUT;
	ms = (int)((deadline - t + 999999) / 1000000);
	r = poll(&p, 1, ms);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* Connects to the Unix socket `path`, retrying every ~20 us while it does
 * not exist or nobody listens yet; gives up when child `pid` (if > 0)
 * has exited or at `deadline`. Returns the fd or -errno. */
static int connect_wait(const char *path, pid_t pid, uint64_t deadline)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const struct timespec pause = { 0, 20000 };

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

		if (fd < 0)
			return -errno;
		if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			return fd;
		e = errno;
		close(fd);
		if (e != ENOENT && e != ECONNREFUSED && e != EAGAIN &&
		    e != EINTR)
			return -e;
		if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid) {
			kid_forget(pid);
			return -ECHILD;
		}
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
}

static int read_full(int fd, void *buf, size_t len, uint64_t deadline)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		if (wait_fd(fd, POLLIN, deadline) < 0)
			return -ETIMEDOUT;
	}
	return 0;
}

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

struct series {
	struct samples total, sock, hs, ready, invoke, warm, restore, runstart,
		minflt, exits_hs, exits_ready, exits_inv, exits_warm;
	unsigned failures;
	char first_error[256];
};

static void series_add(struct series *s, const struct run *r)
{
	s_add(&s->total, r->total);
	s_add(&s->sock, r->sock);
	s_add(&s->hs, r->hs - r->sock);
	s_add(&s->ready, r->ready - r->hs);
	s_add(&s->invoke, r->total - r->ready);
	s_add(&s->warm, r->warm);
	if (r->restore > 0)
		s_add(&s->restore, r->restore);
	if (r->runstart > 0)
		s_add(&s->runstart, r->runstart);
	if (r->minflt >= 0)
		s_add(&s->minflt, (double)r->minflt);
	if (r->exits_inv > 0) {
		s_add(&s->exits_hs, (double)r->exits_hs);
		s_add(&s->exits_ready, (double)r->exits_ready);
		s_add(&s->exits_inv, (double)r->exits_inv);
		s_add(&s->exits_warm, (double)r->exits_warm);
	}
}

static uint64_t kvm_runs(void)
{
	return __atomic_load_n(&g_kvm_runs, __ATOMIC_RELAXED);
}

static void series_fail(struct series *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void series_fail(struct series *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->failures++) {
		va_start(ap, fmt);
		vsnprintf(s->first_error, sizeof(s->first_error), fmt, ap);
		va_end(ap);
		fprintf(stderr, "coldstart: %s\n", s->first_error);
	}
}

static const char g_req[] = "hello, ember";

/* Milliseconds left until `deadline`, at least 1 (the client's timeouts
 * must be positive). */
static int ms_until(uint64_t deadline)
{
	uint64_t t = now_ns();

	return t >= deadline ? 1 : (int)((deadline - t + 999999) / 1000000);
}

/* From client `c` whose handshake is done (owned from here on): READY, an
 * invoke (checked to echo), a second warm invoke. Fills r->ready, total,
 * warm relative to t0; `pid` > 0 is sampled for page faults. */
static int finish_start(struct inv_client *c, uint64_t t0, pid_t pid,
			struct run *r, char *why, size_t whylen)
{
	struct inv_result res = { 0 };
	long flt0 = -1, flt1;
	int ret;
	uint64_t t, x0 = kvm_runs(), x1;

	ret = inv_client_wait_ready(c, 10000);
	if (ret < 0) {
		snprintf(why, whylen, "READY: %s", strerror(-ret));
		goto out;
	}
	r->ready = us_since(t0, now_ns());
	x1 = kvm_runs();
	r->exits_ready = (long)(x1 - x0);
	if (pid > 0)
		flt0 = proc_minflt(pid);
	if (inv_client_invoke(c, g_req, sizeof(g_req) - 1, 10000, &res) !=
		    EMBER_INVOKE_OK ||
	    res.len != sizeof(g_req) - 1 ||
	    memcmp(res.payload, g_req, res.len)) {
		snprintf(why, whylen, "invoke: %.200s", res.msg[0] ? res.msg :
			 "wrong echo");
		ret = -EIO;
		goto out;
	}
	t = now_ns();
	r->total = us_since(t0, t);
	x0 = kvm_runs();
	r->exits_inv = (long)(x0 - x1);
	flt1 = pid > 0 ? proc_minflt(pid) : -1;
	r->minflt = flt0 >= 0 && flt1 >= 0 ? flt1 - flt0 : -1;
	inv_result_free(&res);
	memset(&res, 0, sizeof(res));
	if (inv_client_invoke(c, g_req, sizeof(g_req) - 1, 10000, &res) !=
	    EMBER_INVOKE_OK) {
		snprintf(why, whylen, "second invoke: %.200s", res.msg);
		ret = -EIO;
		goto out;
	}
	r->warm = us_since(t, now_ns());
	r->exits_warm = (long)(kvm_runs() - x0);
	ret = 0;
out:
	inv_result_free(&res);
	inv_client_destroy(c);
	return ret;
}

/* A whole session with a starting instance behind `sock`: connect as soon
 * as the socket accepts (r->sock), the hybrid-vsock handshake (r->hs),
 * then finish_start(). While the guest's vsock driver is not up yet (a
 * boot from scratch) the VMM refuses the handshake by closing the
 * connection: reconnect until it is accepted or 10 s pass. */
static int start_session(const char *sock, pid_t pid, uint64_t t0,
			 struct run *r, char *why, size_t whylen)
{
	uint64_t deadline = t0 + 10000000000ull;
	const struct timespec pause = { 0, 100000 };
	struct inv_client *c;
	int fd, ret;
	uint64_t x0 = 0;

	r->sock = 0;
	for (;;) {
		fd = connect_wait(sock, pid, deadline);
		if (fd < 0) {
			snprintf(why, whylen, "connect %s: %s%s", sock,
				 strerror(-fd), fd == -ECHILD ?
				 " (the VMM exited: see its log)" : "");
			return fd;
		}
		if (r->sock == 0) {
			r->sock = us_since(t0, now_ns());
			x0 = kvm_runs();
		}
		/* Takes fd over, closed on failure. */
		c = inv_client_handshake_fd(fd, EMBER_INV_VSOCK_PORT,
					    ms_until(deadline), &ret);
		if (c)
			break;
		if ((ret != -EPIPE && ret != -ECONNRESET &&
		     ret != -ECONNREFUSED) || now_ns() > deadline) {
			snprintf(why, whylen, "handshake: %s", strerror(-ret));
			return ret;
		}
		nanosleep(&pause, NULL);
	}
	r->hs = us_since(t0, now_ns());
	r->exits_hs = (long)(kvm_runs() - x0);
	return finish_start(c, t0, pid, r, why, whylen);
}

/* ---------------------------------------------------------------------
 * Configuration
 */
struct cfg {
	char *vmm, *handler, *out, *qemu;
	char work[PATH_MAX];
	char snap[PATH_MAX];
	bool quick, keep_work;
	unsigned runs_a, runs_b, runs_b2, runs_c, runs_d, runs_g;
	unsigned clones[4], nclones;
	double tput_seconds;
	char only[32];
};

static bool want(struct cfg *c, char s)
{
	return !c->only[0] || strchr(c->only, s);
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		die("out of memory");
	va_end(ap);
	return s;
}

/* ---------------------------------------------------------------------
 * a, c, g: a new ember-vmm process per cold start
 */
static int process_start(char *const argv[], const char *sock, struct run *r,
			 char *why, size_t whylen)
{
	uint64_t t0;
	pid_t pid;
	int ret;

	unlink(sock);
	memset(r, 0, sizeof(*r));
	r->minflt = -1;
	t0 = now_ns();
	pid = spawn(argv);
	if (pid < 0) {
		ret = -errno;
		snprintf(why, whylen, "spawn %s: %s", argv[0], strerror(-ret));
		return ret;
	}
	ret = start_session(sock, pid, t0, r, why, whylen);
	kid_reap(pid);
	unlink(sock);
	return ret;
}

static void run_process_series(struct cfg *c, struct series *s,
			       unsigned n, bool prefetch, bool boot,
			       const char *tag)
{
	char *sock = xasprintf("%s/%s.sock", c->work, tag);
	char why[256];
	struct run r;

	for (unsigned i = 0; i < n; i++) {
		char *argv[16];
		int k = 0;

		argv[k++] = c->vmm;
		argv[k++] = "-q";
		if (boot) {
			argv[k++] = "--micro";
			argv[k++] = "--handler";
			argv[k++] = c->handler;
		} else {
			argv[k++] = "--restore";
			argv[k++] = c->snap;
		}
		if (prefetch)
			argv[k++] = "--prefetch";
		argv[k++] = "--vsock";
		argv[k++] = sock;
		argv[k++] = "--serial";
		argv[k++] = "none";
		argv[k++] = "--timeout";
		argv[k++] = "60";
		argv[k] = NULL;
		if (process_start(argv, sock, &r, why, sizeof(why)) < 0)
			series_fail(s, "%s run %u: %s", tag, i, why);
		else
			series_add(s, &r);
	}
	free(sock);
}

/* Process exec cost of the VMM binary alone: `ember-vmm --help`, spawn to
 * exit (includes the dynamic loader and exit). */
static void run_exec_only(struct cfg *c, struct samples *s, unsigned n)
{
	char *argv[] = { c->vmm, "--help", NULL };

	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		pid_t pid = spawn(argv);

		if (pid < 0)
			die("spawn %s: %s", c->vmm, strerror(errno));
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		kid_forget(pid);
		s_add(s, us_since(t0, now_ns()));
	}
}

/* ---------------------------------------------------------------------
 * b, b2: restores through libember in this process
 */
struct vmthread {
	struct ember_vm *vm;
	struct ember_exit ex;
	int ret;
};

static void *vm_thread(void *arg)
{
	struct vmthread *t = arg;

	t->ret = ember_vm_run(t->vm, &t->ex);
	return NULL;
}

static bool g_irqchip; /* the snapshot's shell shape, probed once */

/* One library cold start. With `shell`, restore into it (created off the
 * clock by the caller); else ember_vm_restore() on the clock. */
static int lib_start(struct cfg *c, struct ember_shell *shell,
		     bool prefetch, const char *sock, struct trace *tr,
		     struct run *r, char *why, size_t whylen)
{
	struct ember_restore rs;
	struct vmthread th = { 0 };
	char err[256] = "";
	pthread_t tid;
	uint64_t t0, t1;
	int ret;

	ember_restore_init(&rs);
	rs.dir = c->snap;
	rs.vsock_path = sock;
	rs.timeout_ms = 60000;
	rs.prefetch = prefetch;
	unlink(sock);
	memset(r, 0, sizeof(*r));
	r->minflt = -1;
	__atomic_store_n(&g_first_run_ns, 0, __ATOMIC_RELAXED);
	if (tr)
		tr_arm(tr);
	t0 = now_ns();
	th.vm = shell ? ember_shell_restore(shell, &rs, &ret, err, sizeof(err))
		      : ember_vm_restore(&rs, &ret, err, sizeof(err));
	t1 = now_ns();
	if (tr) {
		tr_disarm();
		tr_end_run(tr);
	}
	if (!th.vm) {
		snprintf(why, whylen, "restore: %s", err);
		return ret ? ret : -EIO;
	}
	r->restore = us_since(t0, t1);
	ret = pthread_create(&tid, NULL, vm_thread, &th);
	if (ret) {
		ember_vm_destroy(th.vm);
		snprintf(why, whylen, "pthread_create: %s", strerror(ret));
		return -ret;
	}
	{
		struct rusage ru0, ru1;
		uint64_t fr;

		getrusage(RUSAGE_SELF, &ru0);
		ret = start_session(sock, 0, t0, r, why, whylen);
		getrusage(RUSAGE_SELF, &ru1);
		/* Faults of the whole process (guest first touches, through
		 * KVM, count here) over the session: the restore's own
		 * came before ru0. */
		r->minflt = ru1.ru_minflt - ru0.ru_minflt;
		fr = __atomic_load_n(&g_first_run_ns, __ATOMIC_RELAXED);
		if (fr > t1)
			r->runstart = us_since(t1, fr);
	}
	ember_vm_stop(th.vm);
	pthread_join(tid, NULL);
	ember_vm_destroy(th.vm);
	unlink(sock);
	return ret;
}

static struct ember_shell *shell_new(void)
{
	char err[256];
	struct ember_shell *sh;
	int ret;

	sh = ember_shell_create(1, g_irqchip, &ret, err, sizeof(err));
	if (!sh)
		die("ember_shell_create: %s", err);
	return sh;
}

/* Finds the shell shape the snapshot needs (vCPUs 1; irqchip or not). */
static void probe_shell(struct cfg *c)
{
	char *sock = xasprintf("%s/probe.sock", c->work), why[256];
	struct run r;

	for (int irq = 0; irq < 2; irq++) {
		g_irqchip = irq;
		if (!lib_start(c, shell_new(), false, sock, NULL, &r, why,
			       sizeof(why))) {
			free(sock);
			return;
		}
	}
	die("cannot restore the snapshot into a shell: %s", why);
}

static void run_lib_series(struct cfg *c, struct series *s, unsigned n,
			   bool shell, bool prefetch, struct trace *tr_shell,
			   struct trace *tr_restore, const char *tag)
{
	char *sock = xasprintf("%s/%s.sock", c->work, tag), why[256];
	struct run r;

	for (unsigned i = 0; i < n; i++) {
		struct ember_shell *sh = NULL;

		if (shell) {
			if (tr_shell)
				tr_arm(tr_shell);
			sh = shell_new();
			if (tr_shell) {
				tr_disarm();
				tr_end_run(tr_shell);
			}
		}
		if (lib_start(c, sh, prefetch, sock, tr_restore, &r, why,
			      sizeof(why)) < 0)
			series_fail(s, "%s run %u: %s", tag, i, why);
		else
			series_add(s, &r);
	}
	free(sock);
}

/* ---------------------------------------------------------------------
 * d: QEMU microvm, migrated to a file once, restored with -incoming
 */
struct qmp {
	int fd;
	char buf[65536];
	size_t len;
};

/* Reads one line (a QMP message) into q->buf; 0 or -errno. */
static int qmp_line(struct qmp *q, char *line, size_t cap, uint64_t deadline)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);

		if (nl) {
			size_t n = (size_t)(nl - q->buf) + 1;
			size_t cp = n < cap ? n : cap - 1;

			memcpy(line, q->buf, cp);
			line[cp] = 0;
			memmove(q->buf, q->buf + n, q->len - n);
			q->len -= n;
			return 0;
		}
		if (q->len == sizeof(q->buf))
			return -E2BIG;
		ssize_t r = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
		if (r > 0) {
			q->len += (size_t)r;
			continue;
		}
		if (r == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		if (wait_fd(q->fd, POLLIN, deadline) < 0)
			return -ETIMEDOUT;
	}
}

/* Sends `cmd` and returns its reply line (events are skipped). */
static int qmp_cmd(struct qmp *q, const char *cmd, char *reply, size_t cap,
		   uint64_t deadline)
{
	size_t len = strlen(cmd);
	int r;

	if (write(q->fd, cmd, len) != (ssize_t)len || write(q->fd, "\n", 1) != 1)
		return -EIO;
	do {
		r = qmp_line(q, reply, cap, deadline);
		if (r < 0)
			return r;
	} while (!strstr(reply, "\"return\"") && !strstr(reply, "\"error\""));
	return strstr(reply, "\"error\"") ? -EPROTO : 0;
}

/* Connects to QEMU's QMP socket and leaves capabilities negotiation. */
static int qmp_open(struct qmp *q, const char *path, pid_t pid,
		    uint64_t deadline)
{
	char line[4096];
	int r;

	q->len = 0;
	q->fd = connect_wait(path, pid, deadline);
	if (q->fd < 0)
		return q->fd;
	fcntl(q->fd, F_SETFL, O_NONBLOCK);
	r = qmp_line(q, line, sizeof(line), deadline); /* greeting */
	if (!r)
		r = qmp_cmd(q, "{\"execute\":\"qmp_capabilities\"}", line,
			    sizeof(line), deadline);
	if (r < 0)
		close(q->fd);
	return r;
}

static void qemu_argv(struct cfg *c, char **argv, const char *qmp,
		      const char *incoming, bool paused)
{
	static char qmparg[PATH_MAX + 64], inarg[PATH_MAX + 16];
	int k = 0;

	snprintf(qmparg, sizeof(qmparg), "unix:%s,server=on,wait=off", qmp);
	argv[k++] = c->qemu;
	argv[k++] = "-M";
	argv[k++] = "microvm";
	argv[k++] = "-enable-kvm";
	argv[k++] = "-cpu";
	argv[k++] = "host,-arch-capabilities,-cx16";
	argv[k++] = "-m";
	argv[k++] = "256";
	argv[k++] = "-nodefaults";
	argv[k++] = "-no-user-config";
	argv[k++] = "-nographic";
	if (paused)
		argv[k++] = "-S";
	argv[k++] = "-qmp";
	argv[k++] = qmparg;
	if (incoming) {
		snprintf(inarg, sizeof(inarg), "exec:cat %s", incoming);
		argv[k++] = "-incoming";
		argv[k++] = inarg;
	}
	argv[k] = NULL;
}

struct qemu_result {
	bool ok;
	char error[256];
	char kernel_attempt[256];
	char version[64];
	long state_bytes;
	struct samples total, qmp_sock;
};

/* Boots an empty microvm (qboot firmware, no kernel), lets it run, and
 * migrates it to `state`. */
static int qemu_save(struct cfg *c, const char *state,
		     struct qemu_result *qr)
{
	char *qmp = xasprintf("%s/qemu-save.qmp", c->work), *argv[24];
	char cmd[PATH_MAX + 128], line[8192];
	uint64_t deadline = now_ns() + 30000000000ull;
	struct qmp q;
	pid_t pid;
	int r;

	unlink(qmp);
	qemu_argv(c, argv, qmp, NULL, true);
	pid = spawn(argv);
	if (pid < 0) {
		snprintf(qr->error, sizeof(qr->error), "spawn %s: %s", c->qemu,
			 strerror(errno));
		free(qmp);
		return -1;
	}
	r = qmp_open(&q, qmp, pid, deadline);
	if (r < 0) {
		snprintf(qr->error, sizeof(qr->error), "QMP: %s", strerror(-r));
		goto out;
	}
	r = qmp_cmd(&q, "{\"execute\":\"cont\"}", line, sizeof(line), deadline);
	usleep(200000); /* let the firmware run before the state is taken */
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate\",\"arguments\":"
		 "{\"uri\":\"exec:cat > %s\"}}", state);
	if (!r)
		r = qmp_cmd(&q, cmd, line, sizeof(line), deadline);
	while (!r) {
		r = qmp_cmd(&q, "{\"execute\":\"query-migrate\"}", line,
			    sizeof(line), deadline);
		if (r || strstr(line, "\"completed\""))
			break;
		if (strstr(line, "\"failed\"")) {
			r = -EIO;
			break;
		}
		usleep(10000);
	}
	if (r < 0)
		snprintf(qr->error, sizeof(qr->error), "save: %s: %.120s",
			 strerror(-r), line);
	close(q.fd);
out:
	kid_reap(pid);
	unlink(qmp);
	free(qmp);
	return r;
}

/* Spawn -> QMP query-status "running". */
static int qemu_restore_once(struct cfg *c, const char *state,
			     struct qemu_result *qr)
{
	char *qmp = xasprintf("%s/qemu.qmp", c->work), *argv[24], line[4096];
	struct qmp q;
	uint64_t t0, deadline;
	pid_t pid;
	int r;

	unlink(qmp);
	qemu_argv(c, argv, qmp, state, false);
	t0 = now_ns();
	deadline = t0 + 30000000000ull;
	pid = spawn(argv);
	if (pid < 0) {
		free(qmp);
		return -errno;
	}
	r = qmp_open(&q, qmp, pid, deadline);
	if (r < 0)
		goto out;
	s_add(&qr->qmp_sock, us_since(t0, now_ns()));
	for (;;) {
		r = qmp_cmd(&q, "{\"execute\":\"query-status\"}", line,
			    sizeof(line), deadline);
		if (r < 0)
			break;
		if (strstr(line, "\"running\": true") ||
		    strstr(line, "\"running\":true")) {
			s_add(&qr->total, us_since(t0, now_ns()));
			break;
		}
		/* A source that was paused gives a paused destination. */
		if (strstr(line, "\"paused\"")) {
			r = qmp_cmd(&q, "{\"execute\":\"cont\"}", line,
				    sizeof(line), deadline);
			if (r < 0)
				break;
		}
		usleep(200);
	}
	close(q.fd);
out:
	kid_reap(pid);
	unlink(qmp);
	free(qmp);
	return r;
}

static void run_qemu(struct cfg *c, struct qemu_result *qr)
{
	char *state = xasprintf("%s/qemu-state", c->work);
	char *kerr = xasprintf("%s/qemu-kernel.err", c->work);
	char *vcmd = xasprintf("%s --version 2>&1", c->qemu);
	struct stat st;
	FILE *f;
	int r;

	/* Version, and whether microvm takes the micro guest ELF. */
	f = popen(vcmd, "r");
	free(vcmd);
	if (f) {
		if (fgets(qr->version, sizeof(qr->version), f))
			qr->version[strcspn(qr->version, "\n")] = 0;
		pclose(f);
	}
	{
		char *ember_micro = xasprintf("%.*s/ember-micro",
			(int)(strrchr(c->vmm, '/') ? strrchr(c->vmm, '/') - c->vmm : 1),
			strrchr(c->vmm, '/') ? c->vmm : ".");
		char *cmd = xasprintf("timeout 10 %s -M microvm -enable-kvm -cpu "
			"host,-arch-capabilities,-cx16 -m 256 -nodefaults "
			"-no-user-config -display none -S -kernel %s "
			"</dev/null >/dev/null 2>%s", c->qemu, ember_micro, kerr);
		int rc = system(cmd);

		snprintf(qr->kernel_attempt, sizeof(qr->kernel_attempt),
			 "exit %d", WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
		f = fopen(kerr, "r");
		if (f) {
			char l[200];

			if (fgets(l, sizeof(l), f)) {
				l[strcspn(l, "\n")] = 0;
				snprintf(qr->kernel_attempt,
					 sizeof(qr->kernel_attempt),
					 "-kernel ember-micro: %s", l);
			}
			fclose(f);
		}
		free(cmd);
		free(ember_micro);
	}
	if (qemu_save(c, state, qr) < 0)
		goto out;
	if (!stat(state, &st))
		qr->state_bytes = (long)st.st_size;
	for (unsigned i = 0; i < c->runs_d; i++) {
		r = qemu_restore_once(c, state, qr);
		if (r < 0 && !qr->error[0])
			snprintf(qr->error, sizeof(qr->error), "restore run %u: %s",
				 i, strerror(-r));
	}
	qr->ok = qr->total.n > 0;
out:
	unlink(state);
	free(state);
	free(kerr);
}

/* ---------------------------------------------------------------------
 * e: density
 */
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

/* utime + stime of a process, in clock ticks; -1 if not readable. */
static long proc_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime */
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &ut, &st) == 2)
		v = (long)(ut + st);
	fclose(f);
	return v;
}

static long meminfo_kib(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");
	size_t kl = strlen(key);

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static int smaps_rollup(pid_t pid, struct density *d)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char key[64];
		long v;

		if (sscanf(line, "%63[^:]: %ld kB", key, &v) != 2)
			continue;
		if (!strcmp(key, "Pss"))
			d->pss += (double)v;
		else if (!strcmp(key, "Rss"))
			d->rss += (double)v;
		else if (!strcmp(key, "Private_Clean"))
			d->priv_clean += (double)v;
		else if (!strcmp(key, "Private_Dirty"))
			d->priv_dirty += (double)v;
		else if (!strcmp(key, "Shared_Clean"))
			d->shared_clean += (double)v;
	}
	fclose(f);
	return 0;
}

/* Frozen clones cannot reach their own --timeout: if this program dies
 * without cleaning up (SIGKILL), a watchdog child kills their process
 * group when our end of its pipe closes. */
static pid_t watchdog_start(int *wfd)
{
	int p[2];
	pid_t dog;

	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	dog = fork();
	if (dog < 0)
		die("fork: %s", strerror(errno));
	if (dog == 0) {
		pid_t pg = 0;
		char b;

		close(p[1]);
		if (read(p[0], &pg, sizeof(pg)) == sizeof(pg) && pg > 0) {
			while (read(p[0], &b, 1) < 0 && errno == EINTR)
				;
			kill(-pg, SIGKILL);
		}
		_exit(0);
	}
	close(p[0]);
	*wfd = p[1];
	return dog;
}

static void run_density(struct cfg *c, struct density *d)
{
	pid_t *pids = calloc(d->want, sizeof(*pids));
	uint64_t t0 = now_ns(), limit = t0 + 120000000000ull;
	long avail0;
	char why[256];
	int dogfd;
	pid_t dog;

	if (!pids)
		die("out of memory");
	dog = watchdog_start(&dogfd);
	sync();
	avail0 = meminfo_kib("MemAvailable");
	for (unsigned i = 0; i < d->want && now_ns() < limit; i++) {
		char *sock = xasprintf("%s/clone-%u.sock", c->work, i);
		char *argv[] = { c->vmm, "-q", "--restore", c->snap,
				 "--vsock", sock, "--serial", "none",
				 "--timeout", "300", NULL };
		struct run r;

		unlink(sock);
		/* All clones in one new process group, led by the first. */
		g_spawn_pgroup = i ? pids[0] : 0;
		pids[i] = spawn(argv);
		g_spawn_pgroup = -1;
		if (pids[i] < 0) {
			snprintf(d->error, sizeof(d->error), "spawn clone %u: %s",
				 i, strerror(errno));
			free(sock);
			break;
		}
		if (i == 0 && write(dogfd, &pids[0], sizeof(pids[0])) !=
				      sizeof(pids[0]))
			die("watchdog: %s", strerror(errno));
		d->started++;
		memset(&r, 0, sizeof(r));
		if (start_session(sock, pids[i], now_ns(), &r, why,
				  sizeof(why)) < 0) {
			if (!d->error[0])
				snprintf(d->error, sizeof(d->error),
					 "clone %u: %.200s", i, why);
		} else {
			d->initialised++;
		}
		/* An idle micro guest still wakes every 10 ms (its idle
		 * guard timeout): ~2% of a core each, so a few hundred
		 * running clones saturate this 2-core host and starve the
		 * rest of the run. Each clone is frozen once initialised;
		 * its memory is what an idle clone holds (run_idle_cpu()
		 * reports the CPU side). */
		kill(pids[i], SIGSTOP);
		free(sock);
	}
	d->seconds = us_since(t0, now_ns()) / 1e6;
	for (unsigned i = 0; i < d->started; i++)
		if (pids[i] > 0 && smaps_rollup(pids[i], d) < 0 && !d->error[0])
			snprintf(d->error, sizeof(d->error),
				 "smaps_rollup of clone %u unreadable", i);
	d->memavail_delta_kib = avail0 - meminfo_kib("MemAvailable");
	for (unsigned i = 0; i < d->started; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
	for (unsigned i = 0; i < d->started; i++)
		if (pids[i] > 0)
			kid_reap(pids[i]);
	/* Every clone is reaped: the watchdog may go (its kill finds an
	 * empty group, or none). */
	close(dogfd);
	while (waitpid(dog, NULL, 0) < 0 && errno == EINTR)
		;
	for (unsigned i = 0; i < d->started; i++) {
		char *sock = xasprintf("%s/clone-%u.sock", c->work, i);

		unlink(sock);
		free(sock);
	}
	free(pids);
}

static void run_idle_cpu(struct cfg *c, struct idle_cpu *ic)
{
	pid_t pids[16];
	long t0[16], t1[16], total = 0;
	unsigned n = ic->clones > 16 ? 16 : ic->clones, started = 0;
	char why[256];
	uint64_t a, b;

	for (unsigned i = 0; i < n; i++) {
		char *sock = xasprintf("%s/idle-%u.sock", c->work, i);
		char *argv[] = { c->vmm, "-q", "--restore", c->snap, "--vsock",
				 sock, "--serial", "none", "--timeout", "60",
				 NULL };
		struct run r;

		unlink(sock);
		pids[i] = spawn(argv);
		if (pids[i] < 0) {
			snprintf(ic->error, sizeof(ic->error), "spawn: %s",
				 strerror(errno));
			free(sock);
			break;
		}
		started++;
		memset(&r, 0, sizeof(r));
		if (start_session(sock, pids[i], now_ns(), &r, why,
				  sizeof(why)) < 0 && !ic->error[0])
			snprintf(ic->error, sizeof(ic->error), "%.200s", why);
		unlink(sock);
		free(sock);
	}
	usleep(300000);
	a = now_ns();
	for (unsigned i = 0; i < started; i++)
		t0[i] = proc_cpu_ticks(pids[i]);
	usleep((useconds_t)(ic->seconds * 1e6));
	for (unsigned i = 0; i < started; i++)
		t1[i] = proc_cpu_ticks(pids[i]);
	b = now_ns();
	for (unsigned i = 0; i < started; i++) {
		if (t0[i] >= 0 && t1[i] >= 0)
			total += t1[i] - t0[i];
		kid_reap(pids[i]);
	}
	ic->clones = started;
	if (started)
		ic->cpu_percent_per_clone = 100.0 * (double)total /
			(double)sysconf(_SC_CLK_TCK) / ((double)(b - a) / 1e9) /
			started;
}

/* ---------------------------------------------------------------------
 * f: restores per second with both cores
 */
struct tput {
	unsigned workers;
	double seconds;
	unsigned long done, failed;
};

struct worker_arg {
	struct cfg *c;
	unsigned id;
	uint64_t until;
	unsigned long done, failed;
};

static void *process_worker(void *arg)
{
	struct worker_arg *w = arg;
	char *sock = xasprintf("%s/tput-%u.sock", w->c->work, w->id), why[256];
	char *argv[] = { w->c->vmm, "-q", "--restore",
			 w->c->snap, "--vsock", sock, "--serial",
			 "none", "--timeout", "60", NULL };
	struct run r;

	while (now_ns() < w->until) {
		if (process_start(argv, sock, &r, why, sizeof(why)) < 0)
			w->failed++;
		else
			w->done++;
	}
	free(sock);
	return NULL;
}

/* Process workers: two forked copies of this program, one per core, each
 * looping (a) (spawn, connect, invoke, kill). Forked rather than threads
 * because the child table is not shared between threads. */
static void run_tput_processes(struct cfg *c, struct tput *t)
{
	pid_t w[2];
	int pipes[2][2];

	t->workers = 2;
	t->seconds = c->tput_seconds;
	for (unsigned i = 0; i < 2; i++) {
		if (pipe(pipes[i]) < 0)
			die("pipe: %s", strerror(errno));
		w[i] = fork();
		if (w[i] < 0)
			die("fork: %s", strerror(errno));
		if (w[i] == 0) {
			struct worker_arg a = { .c = c, .id = i };
			unsigned long res[2];

			g_nkids = 0;
			a.until = now_ns() + (uint64_t)(c->tput_seconds * 1e9);
			process_worker(&a);
			res[0] = a.done;
			res[1] = a.failed;
			if (write(pipes[i][1], res, sizeof(res)) != sizeof(res))
				_exit(1);
			_exit(0);
		}
		kid_add(w[i]);
		close(pipes[i][1]);
	}
	for (unsigned i = 0; i < 2; i++) {
		unsigned long res[2] = { 0, 0 };

		if (read(pipes[i][0], res, sizeof(res)) != sizeof(res))
			t->failed++;
		close(pipes[i][0]);
		while (waitpid(w[i], NULL, 0) < 0 && errno == EINTR)
			;
		kid_forget(w[i]);
		t->done += res[0];
		t->failed += res[1];
	}
}

/* Library workers: one forked process per core, each looping
 * ember_vm_restore + run + invoke + stop + destroy (no pre-created shell:
 * the whole restore is on the clock). */
static void run_tput_library(struct cfg *c, struct tput *t)
{
	pid_t w[2];
	int pipes[2][2];

	t->workers = 2;
	t->seconds = c->tput_seconds;
	for (unsigned i = 0; i < 2; i++) {
		if (pipe(pipes[i]) < 0)
			die("pipe: %s", strerror(errno));
		w[i] = fork();
		if (w[i] < 0)
			die("fork: %s", strerror(errno));
		if (w[i] == 0) {
			char *sock = xasprintf("%s/ltput-%u.sock", c->work, i);
			uint64_t until = now_ns() +
					 (uint64_t)(c->tput_seconds * 1e9);
			unsigned long res[2] = { 0, 0 };
			char why[256];
			struct run r;

			g_nkids = 0;
			while (now_ns() < until) {
				if (lib_start(c, NULL, false, sock, NULL, &r, why,
					      sizeof(why)) < 0)
					res[1]++;
				else
					res[0]++;
			}
			if (write(pipes[i][1], res, sizeof(res)) != sizeof(res))
				_exit(1);
			_exit(0);
		}
		kid_add(w[i]);
		close(pipes[i][1]);
	}
	for (unsigned i = 0; i < 2; i++) {
		unsigned long res[2] = { 0, 0 };

		if (read(pipes[i][0], res, sizeof(res)) != sizeof(res))
			t->failed++;
		close(pipes[i][0]);
		while (waitpid(w[i], NULL, 0) < 0 && errno == EINTR)
			;
		kid_forget(w[i]);
		t->done += res[0];
		t->failed += res[1];
	}
}

/* ---------------------------------------------------------------------
 * g: record a working set through the control socket
 */
static int control_cmd(const char *path, const char *cmd, char *reply,
		       size_t cap)
{
	uint64_t deadline = now_ns() + 10000000000ull;
	int fd = connect_wait(path, 0, deadline), r = 0;
	size_t got = 0;

	if (fd < 0)
		return fd;
	if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
		close(fd);
		return -EIO;
	}
	while (got < cap - 1) {
		r = read_full(fd, reply + got, 1, deadline);
		if (r < 0 || reply[got++] == '\n')
			break;
	}
	reply[got] = 0;
	close(fd);
	return r < 0 ? r : strncmp(reply, "OK", 2) ? -EIO : 0;
}

static int record_workingset(struct cfg *c, char *why, size_t whylen)
{
	char *sock = xasprintf("%s/ws.sock", c->work);
	char *ctl = xasprintf("%s/ws.ctl", c->work);
	char *argv[] = { c->vmm, "-q", "--restore", c->snap, "--vsock",
			 sock, "--control", ctl, "--serial", "none",
			 "--timeout", "60", NULL };
	char reply[256];
	struct run r;
	pid_t pid;
	int ret;

	unlink(sock);
	unlink(ctl);
	pid = spawn(argv);
	if (pid < 0) {
		ret = -errno;
		snprintf(why, whylen, "spawn: %s", strerror(-ret));
		goto out;
	}
	ret = start_session(sock, pid, now_ns(), &r, why, whylen);
	if (!ret) {
		ret = control_cmd(ctl, "workingset\n", reply, sizeof(reply));
		if (ret < 0)
			snprintf(why, whylen, "workingset: %.200s", reply);
	}
	if (!ret)
		control_cmd(ctl, "stop\n", reply, sizeof(reply));
	/* Let it stop by itself; the kill below only cleans up. */
	for (int i = 0; i < 200 && waitpid(pid, NULL, WNOHANG) == 0; i++)
		usleep(5000);
	kid_reap(pid);
out:
	unlink(sock);
	unlink(ctl);
	free(sock);
	free(ctl);
	return ret;
}

/* ---------------------------------------------------------------------
 * Report: JSON and a table
 */
static void j_stats(FILE *f, const char *key, const struct samples *s,
		    bool with_samples)
{
	struct stats st = s_stats(s);

	fprintf(f, "\"%s\": {\"n\": %zu, \"p50_us\": %.1f, \"p99_us\": %.1f, "
		"\"min_us\": %.1f, \"mean_us\": %.1f, \"max_us\": %.1f",
		key, st.n, st.p50, st.p99, st.min, st.mean, st.max);
	if (with_samples) {
		fputs(", \"samples_us\": [", f);
		for (size_t i = 0; i < s->n; i++)
			fprintf(f, "%s%.1f", i ? ", " : "", s->v[i]);
		fputc(']', f);
	}
	fputc('}', f);
}

static void j_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void j_series(FILE *f, const char *key, const char *what,
		     const struct series *s)
{
	fprintf(f, "\"%s\": {\"what\": ", key);
	j_str(f, what);
	fprintf(f, ", \"failures\": %u, ", s->failures);
	if (s->failures) {
		fputs("\"first_error\": ", f);
		j_str(f, s->first_error);
		fputs(", ", f);
	}
	j_stats(f, "total", &s->total, true);
	fputs(", \"steps\": {", f);
	j_stats(f, "spawn_or_restore_to_socket", &s->sock, false);
	fputs(", ", f);
	j_stats(f, "vsock_handshake", &s->hs, false);
	fputs(", ", f);
	j_stats(f, "handshake_to_ready", &s->ready, false);
	fputs(", ", f);
	j_stats(f, "first_invoke_round_trip", &s->invoke, false);
	fputs(", ", f);
	j_stats(f, "warm_invoke_round_trip", &s->warm, false);
	if (s->restore.n) {
		fputs(", ", f);
		j_stats(f, "restore_call", &s->restore, false);
	}
	if (s->runstart.n) {
		fputs(", ", f);
		j_stats(f, "restore_return_to_first_kvm_run", &s->runstart,
			false);
	}
	if (s->exits_inv.n)
		fprintf(f, ", \"kvm_run_calls_median\": {\"handshake\": %.0f, "
			"\"to_ready\": %.0f, \"first_invoke\": %.0f, "
			"\"warm_invoke\": %.0f}", s_median(&s->exits_hs),
			s_median(&s->exits_ready), s_median(&s->exits_inv),
			s_median(&s->exits_warm));
	fprintf(f, ", \"page_faults_mean\": %.1f, \"page_faults_note\": "
		"\"%s\"}}", s->minflt.n ? s_stats(&s->minflt).mean : -1.0,
		s->exits_inv.n ? "minor faults of this process from connect "
		"to the end of the warm invoke (guest first touches go "
		"through KVM and count here)" : "minor faults of the VMM "
		"process during the first invoke");
}

static void j_trace(FILE *f, const char *key, const struct trace *t)
{
	fprintf(f, "\"%s\": {\"runs\": %u, \"prefetch_bytes_per_run\": %.0f, "
		"\"calls\": [", key, t->runs,
		t->runs ? (double)t->prefetch_bytes / t->runs : 0.0);
	for (unsigned i = 0; i < t->n; i++) {
		fprintf(f, "%s{\"name\": ", i ? ", " : "");
		j_str(f, t->e[i].name);
		fprintf(f, ", \"top_level\": %s, \"calls_per_run\": %.2f, "
			"\"mean_us_per_run\": %.1f, \"median_us_per_run\": %.1f}",
			t->e[i].top ? "true" : "false",
			t->runs ? (double)t->e[i].count / t->runs : 0,
			t->runs ? (double)t->e[i].ns / 1000.0 / t->runs : 0,
			s_median(&t->e[i].per_run));
	}
	fputs("]}", f);
}

static double trace_us(const struct trace *t, const char *name)
{
	for (unsigned i = 0; i < t->n; i++)
		if (!strcmp(t->e[i].name, name))
			return s_median(&t->e[i].per_run);
	return 0;
}

/* Sum of KVM_SET_* / KVM_* ioctls issued directly by the restore (not
 * inside another traced call): the vCPU and VM state being loaded. */
static double trace_top_ioctls_us(const struct trace *t)
{
	double us = 0;

	for (unsigned i = 0; i < t->n; i++)
		if (t->e[i].top && !strncmp(t->e[i].name, "KVM", 3))
			us += s_median(&t->e[i].per_run);
	return us;
}

static double trace_top_sum_us(const struct trace *t)
{
	double us = 0;

	for (unsigned i = 0; i < t->n; i++)
		if (t->e[i].top)
			us += s_median(&t->e[i].per_run);
	return us;
}

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
	long ws_pages;
	long snap_state_bytes, snap_mem_alloc_kib;
	double snap_create_ms;
};

/* Load average when the run started: the machine is shared, and other
 * work on its two cores shows up in every figure. */
static char g_load_start[128];

static void host_facts(FILE *f)
{
	struct utsname u;
	char model[256] = "unknown", line[512];
	FILE *ci = fopen("/proc/cpuinfo", "r");

	uname(&u);
	if (ci) {
		while (fgets(line, sizeof(line), ci))
			if (!strncmp(line, "model name", 10)) {
				char *p = strchr(line, ':');

				if (p) {
					snprintf(model, sizeof(model), "%s", p + 2);
					model[strcspn(model, "\n")] = 0;
				}
				break;
			}
		fclose(ci);
	}
	fputs("\"host\": {\"kernel\": ", f);
	j_str(f, u.release);
	fprintf(f, ", \"kvm\": \"%s\", \"cpus\": %ld, \"cpu_model\": ",
		ember_host_is_pvm() ? "kvm-pvm (nested PVM)" : "kvm",
		sysconf(_SC_NPROCESSORS_ONLN));
	j_str(f, model);
	fprintf(f, ", \"mem_total_kib\": %ld, \"loadavg_start\": ",
		meminfo_kib("MemTotal"));
	j_str(f, g_load_start);
	fputs(", \"loadavg_end\": ", f);
	{
		char l[128] = "";
		FILE *la = fopen("/proc/loadavg", "r");

		if (la) {
			if (fgets(l, sizeof(l), la))
				l[strcspn(l, "\n")] = 0;
			fclose(la);
		}
		j_str(f, l);
	}
	fputs("}", f);
}

static void write_json(struct cfg *c, struct results *R)
{
	char tmp[PATH_MAX];
	FILE *f;
	time_t now = time(NULL);
	char date[64];

	snprintf(tmp, sizeof(tmp), "%s.tmp", c->out);
	f = fopen(tmp, "w");
	if (!f)
		die("cannot write %s: %s", tmp, strerror(errno));
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	fprintf(f, "{\n\"benchmark\": \"coldstart\", \"schema\": 1, "
		"\"date\": \"%s\", \"quick\": %s, \"request\": ", date,
		c->quick ? "true" : "false");
	j_str(f, g_req);
	fputs(",\n", f);
	host_facts(f);
	fputs(",\n\"snapshot\": {\"guest\": \"micro guest + echo handler "
	      "(glibc static), snapshot at READY\", \"memory_mib\": 256, ", f);
	fprintf(f, "\"state_bytes\": %ld, \"memory_allocated_kib\": %ld, "
		"\"create_ms\": %.1f},\n", R->snap_state_bytes,
		R->snap_mem_alloc_kib, R->snap_create_ms);
	fputs("\"scenarios\": {\n", f);
	j_series(f, "a_process_restore", "spawn ember-vmm --restore, connect, "
		 "handshake, READY, invoke echo: spawn to RESULT", &R->a);
	fputs(",\n", f);
	j_series(f, "b_shell_restore", "ember_shell_restore into a "
		 "pre-created shell + run thread + invoke: restore call to "
		 "RESULT", &R->b);
	fputs(",\n", f);
	j_series(f, "b2_library_restore", "ember_vm_restore (shell created "
		 "on the clock) + run thread + invoke", &R->b2);
	fputs(",\n", f);
	j_series(f, "c_boot_from_scratch", "spawn ember-vmm --micro --handler "
		 "echo (no snapshot): spawn to RESULT", &R->c);
	fputs(",\n\"d_qemu_restore\": {\"what\": \"qemu-system-x86_64 -M "
	      "microvm -m 256 -incoming exec:cat FILE: spawn to QMP "
	      "query-status running\", \"guest\": \"empty microvm: qboot "
	      "firmware only, no kernel (microvm does not load the Ember "
	      "micro guest, see kernel_attempt)\", \"version\": ", f);
	j_str(f, R->q.version);
	fputs(", \"kernel_attempt\": ", f);
	j_str(f, R->q.kernel_attempt);
	fprintf(f, ", \"state_bytes\": %ld, \"ok\": %s, \"error\": ",
		R->q.state_bytes, R->q.ok ? "true" : "false");
	j_str(f, R->q.error);
	fputs(", ", f);
	j_stats(f, "total", &R->q.total, true);
	fputs(", ", f);
	j_stats(f, "spawn_to_qmp_ready", &R->q.qmp_sock, false);
	fputs("}\n},\n", f);

	/* Ratios of medians. */
	{
		double qm = s_median(&R->q.total);
		double am = s_median(&R->a.total), bm = s_median(&R->b.total);

		fprintf(f, "\"ratios\": {\"qemu_p50_over_a_p50\": %.1f, "
			"\"qemu_p50_over_b_p50\": %.1f, "
			"\"c_p50_over_a_p50\": %.1f},\n",
			am > 0 ? qm / am : 0, bm > 0 ? qm / bm : 0,
			am > 0 ? s_median(&R->c.total) / am : 0);
	}

	/* The per-step breakdown of (a), from the pieces measured above. */
	{
		double ex = s_median(&R->exec_only);
		double shell = trace_us(&R->tr_b2,
					"open /dev/kvm + KVM_CREATE_VM (kvm_open)") +
			       trace_us(&R->tr_b2,
					"eventfds, evloop, vCPUs (vm_create_core)");
		double parse = trace_us(&R->tr_b2,
				"state file read+parse (snap_read_state)");
		double mopen = trace_us(&R->tr_b2,
				"open memory file (snap_open_memory)");
		double mmap_ = trace_us(&R->tr_b2,
				"map guest RAM + memslots (kvm_map_ram)");
		double dev = trace_us(&R->tr_b2,
				"device setup (vm_create_devices)");
		double ioc = trace_top_ioctls_us(&R->tr_b2);
		double rest = s_median(&R->b2.restore);
		double other = rest - trace_top_sum_us(&R->tr_b2);
		double sock = s_median(&R->a.sock);

		fputs("\"breakdown_a\": {\"note\": \"medians of (a)'s own "
		      "timeline; the in-process restore steps are medians "
		      "per restore from (b2) (the same code ember-vmm runs); process_exec is "
		      "spawn-to-exit of ember-vmm --help\", \"steps_us\": [\n", f);
		fprintf(f, "{\"step\": \"process exec + dynamic link + exit "
			"(ember-vmm --help)\", \"us\": %.1f},\n", ex);
		fprintf(f, "{\"step\": \"open /dev/kvm, KVM_CREATE_VM, vCPU "
			"creation, evloop (shell)\", \"us\": %.1f},\n", shell);
		fprintf(f, "{\"step\": \"state file read + parse\", \"us\": "
			"%.1f},\n", parse);
		fprintf(f, "{\"step\": \"memory file open + mmap MAP_PRIVATE + "
			"memslot\", \"us\": %.1f},\n", mopen + mmap_);
		fprintf(f, "{\"step\": \"device setup (serial, i8042, "
			"virtio-vsock, listening socket)\", \"us\": %.1f},\n", dev);
		fprintf(f, "{\"step\": \"KVM_SET_* state ioctls (vCPU, VM)\", "
			"\"us\": %.1f},\n", ioc);
		fprintf(f, "{\"step\": \"rest of restore (device state, "
			"identity refresh, ...)\", \"us\": %.1f},\n", other);
		fprintf(f, "{\"step\": \"(a) spawn -> vsock socket accepts "
			"(all of the above + threads + listen)\", \"us\": "
			"%.1f},\n", sock);
		fprintf(f, "{\"step\": \"vsock handshake (CONNECT/OK)\", "
			"\"us\": %.1f},\n", s_median(&R->a.hs));
		fprintf(f, "{\"step\": \"handshake -> READY (guest runs, "
			"first page faults)\", \"us\": %.1f},\n",
			s_median(&R->a.ready));
		fprintf(f, "{\"step\": \"first invoke round trip (first "
			"touches of the handler's pages)\", \"us\": %.1f},\n",
			s_median(&R->a.invoke));
		fprintf(f, "{\"step\": \"warm invoke round trip (for "
			"comparison, not in the total)\", \"us\": %.1f},\n",
			s_median(&R->a.warm));
		fprintf(f, "{\"step\": \"total (a) p50\", \"us\": %.1f}\n]},\n",
			s_median(&R->a.total));
	}
	fputs("\"traces\": {", f);
	j_trace(f, "b_shell_create", &R->tr_shell);
	fputs(",\n", f);
	j_trace(f, "b_shell_restore", &R->tr_restore);
	fputs(",\n", f);
	j_trace(f, "b2_library_restore", &R->tr_b2);
	fputs("},\n", f);
	j_stats(f, "process_exec_only", &R->exec_only, false);
	fputs(",\n\"density\": [", f);
	for (unsigned i = 0; i < R->ndens; i++) {
		const struct density *d = &R->dens[i];
		double n = d->started ? d->started : 1;

		fprintf(f, "%s\n{\"clones\": %u, \"started\": %u, "
			"\"initialised\": %u, \"seconds_to_start\": %.1f, "
			"\"pss_total_kib\": %.0f, \"pss_per_clone_kib\": %.0f, "
			"\"private_per_clone_kib\": %.0f, "
			"\"private_clean_per_clone_kib\": %.0f, "
			"\"private_dirty_per_clone_kib\": %.0f, "
			"\"rss_per_clone_kib\": %.0f, "
			"\"shared_clean_per_clone_kib\": %.0f, "
			"\"memavailable_drop_per_clone_kib\": %.0f, \"error\": ",
			i ? "," : "", d->want, d->started, d->initialised,
			d->seconds, d->pss, d->pss / n,
			(d->priv_clean + d->priv_dirty) / n, d->priv_clean / n,
			d->priv_dirty / n, d->rss / n, d->shared_clean / n,
			(double)d->memavail_delta_kib / n);
		j_str(f, d->error);
		fputc('}', f);
	}
	fprintf(f, "],\n\"density_note\": \"each clone is restored, invoked "
		"once, then frozen with SIGSTOP (an idle micro guest wakes "
		"every 10 ms; see idle_cpu); private = Private_Clean + "
		"Private_Dirty from /proc/PID/smaps_rollup; the MemAvailable "
		"drop also counts kernel memory (KVM, page tables)\",\n"
		"\"idle_cpu\": {\"clones\": %u, \"seconds\": %.1f, "
		"\"cpu_percent_per_clone\": %.2f, \"error\": ",
		R->idle.clones, R->idle.seconds, R->idle.cpu_percent_per_clone);
	j_str(f, R->idle.error);
	fprintf(f, "},\n\"throughput\": {\"process\": {\"workers\": %u, "
		"\"seconds\": %.1f, \"restores\": %lu, \"failed\": %lu, "
		"\"per_second\": %.1f}, \"library\": {\"workers\": %u, "
		"\"seconds\": %.1f, \"restores\": %lu, \"failed\": %lu, "
		"\"per_second\": %.1f}},\n",
		R->tp_proc.workers, R->tp_proc.seconds, R->tp_proc.done,
		R->tp_proc.failed,
		R->tp_proc.seconds > 0 ? R->tp_proc.done / R->tp_proc.seconds : 0,
		R->tp_lib.workers, R->tp_lib.seconds, R->tp_lib.done,
		R->tp_lib.failed,
		R->tp_lib.seconds > 0 ? R->tp_lib.done / R->tp_lib.seconds : 0);
	fprintf(f, "\"prefetch\": {\"recorded\": %s, \"error\": ",
		R->ws_ok ? "true" : "false");
	j_str(f, R->ws_error);
	fprintf(f, ", \"workingset_pages\": %ld, \"interleaved\": true,\n",
		R->ws_pages);
	j_series(f, "a_off", "(a) without --prefetch", &R->g_off);
	fputs(",\n", f);
	j_series(f, "a_on", "(a) with --prefetch", &R->g_on);
	fputs(",\n", f);
	j_series(f, "b_off", "(b) prefetch=false", &R->gb_off);
	fputs(",\n", f);
	j_series(f, "b_on", "(b) prefetch=true", &R->gb_on);
	fputs(",\n", f);
	j_trace(f, "b_on_trace", &R->tr_gb_on);
	fputs("},\n", f);
	{
		struct stats a = s_stats(&R->a.total), b = s_stats(&R->b.total);
		double qm = s_median(&R->q.total);
		double worst = 0;

		for (unsigned i = 0; i < R->ndens; i++) {
			double n = R->dens[i].started ? R->dens[i].started : 1;
			double p = (R->dens[i].priv_clean +
				    R->dens[i].priv_dirty) / n;
			if (p > worst)
				worst = p;
		}
		fprintf(f, "\"targets\": {\"a_p50_le_3ms\": %s, "
			"\"a_p99_le_8ms\": %s, \"b_p50_le_1ms\": %s, "
			"\"qemu_ratio_ge_20x\": %s, "
			"\"private_le_5mib_per_clone\": %s}\n}\n",
			a.n && a.p50 <= 3000 ? "true" : "false",
			a.n && a.p99 <= 8000 ? "true" : "false",
			b.n && b.p50 <= 1000 ? "true" : "false",
			a.n && qm / a.p50 >= 20 ? "true" : "false",
			R->ndens && worst <= 5 * 1024 ? "true" : "false");
	}
	if (fclose(f) != 0 || rename(tmp, c->out) < 0)
		die("cannot write %s: %s", c->out, strerror(errno));
}

static void row(const char *name, const struct samples *s, unsigned fail)
{
	struct stats st = s_stats(s);

	if (!st.n) {
		printf("  %-44s %5s%s\n", name, "-", fail ? "  (all failed)" : "");
		return;
	}
	printf("  %-44s %5zu %9.0f %9.0f %9.0f %9.0f%s\n", name, st.n, st.p50,
	       st.p99, st.min, st.mean, fail ? "  (failures!)" : "");
}

static void print_table(const struct results *R)
{
	printf("\nEmber cold start (us)                          "
	       "    n       p50       p99       min      mean\n");
	row("(a) new process: spawn -> echo RESULT", &R->a.total, R->a.failures);
	row("    spawn -> vsock socket accepts", &R->a.sock, 0);
	row("    vsock handshake", &R->a.hs, 0);
	row("    handshake -> READY", &R->a.ready, 0);
	row("    first invoke round trip", &R->a.invoke, 0);
	row("    (warm invoke round trip)", &R->a.warm, 0);
	row("    (ember-vmm --help: exec+exit)", &R->exec_only, 0);
	row("(b) pre-created shell: restore -> RESULT", &R->b.total,
	    R->b.failures);
	row("    ember_shell_restore()", &R->b.restore, 0);
	row("    restore -> socket", &R->b.sock, 0);
	row("    first invoke round trip", &R->b.invoke, 0);
	row("(b2) ember_vm_restore() -> RESULT", &R->b2.total, R->b2.failures);
	row("    ember_vm_restore()", &R->b2.restore, 0);
	row("(c) boot from scratch: spawn -> RESULT", &R->c.total, R->c.failures);
	row("(d) QEMU -incoming: spawn -> running", &R->q.total,
	    R->q.error[0] != 0);
	row("(g) (a) prefetch off", &R->g_off.total, R->g_off.failures);
	row("(g) (a) prefetch on", &R->g_on.total, R->g_on.failures);
	row("(g) (b) prefetch off", &R->gb_off.total, R->gb_off.failures);
	row("(g) (b) prefetch on", &R->gb_on.total, R->gb_on.failures);
	if (R->q.total.n && R->a.total.n)
		printf("  QEMU / (a) p50: %.1fx   QEMU / (b) p50: %.1fx\n",
		       s_median(&R->q.total) / s_median(&R->a.total),
		       R->b.total.n ? s_median(&R->q.total) /
					      s_median(&R->b.total) : 0);
	if (R->q.error[0])
		printf("  QEMU: %s\n", R->q.error);
	printf("\nRestore steps inside libember, b2 (us per restore)   "
	       "median     mean  calls\n");
	for (unsigned i = 0; i < R->tr_b2.n; i++)
		if (R->tr_b2.e[i].top)
			printf("  %-50s %8.1f %8.1f  x%.0f\n", R->tr_b2.e[i].name,
			       s_median(&R->tr_b2.e[i].per_run),
			       (double)R->tr_b2.e[i].ns / 1000.0 / R->tr_b2.runs,
			       (double)R->tr_b2.e[i].count / R->tr_b2.runs);
	if (R->ndens) {
		printf("\nDensity (idle clones, per clone KiB)    clones   "
		       "PSS  private  (clean  dirty)  MemAvailable drop\n");
		for (unsigned i = 0; i < R->ndens; i++) {
			const struct density *d = &R->dens[i];
			double n = d->started ? d->started : 1;

			printf("  %-38s %6u %5.0f %8.0f  (%5.0f %6.0f)  %8.0f%s\n",
			       "", d->started, d->pss / n,
			       (d->priv_clean + d->priv_dirty) / n,
			       d->priv_clean / n, d->priv_dirty / n,
			       (double)d->memavail_delta_kib / n,
			       d->error[0] ? "  (errors)" : "");
		}
	}
	if (R->idle.clones)
		printf("  idle clone CPU (not frozen): %.2f%% of a core each "
		       "(%u clones, %.0f s)\n", R->idle.cpu_percent_per_clone,
		       R->idle.clones, R->idle.seconds);
	if (R->tp_proc.seconds > 0 || R->tp_lib.seconds > 0)
		printf("\nRestores per second, 2 workers: processes %.1f/s, "
		       "library %.1f/s\n",
		       R->tp_proc.seconds > 0 ? R->tp_proc.done / R->tp_proc.seconds : 0,
		       R->tp_lib.seconds > 0 ? R->tp_lib.done / R->tp_lib.seconds : 0);
	fflush(stdout);
}

/* ---------------------------------------------------------------------
 * Setup and main
 */
static void make_snapshot(struct cfg *c, struct results *R)
{
	char *sock = xasprintf("%s/snap.sock", c->work);
	char *argv[] = { c->vmm, "-q", "--micro", "--handler",
			 c->handler, "--vsock", sock, "--serial",
			 "none", "--snapshot-at-ready", c->snap, "--timeout",
			 "120", NULL };
	uint64_t t0 = now_ns();
	struct stat st;
	char *path;
	pid_t pid;
	int status = 0;

	pid = spawn(argv);
	if (pid < 0)
		die("spawn %s: %s", c->vmm, strerror(errno));
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	kid_forget(pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("making the snapshot failed (status %d): see %s/vmm.log",
		    status, c->work);
	R->snap_create_ms = us_since(t0, now_ns()) / 1000.0;
	path = xasprintf("%s/state", c->snap);
	if (!stat(path, &st))
		R->snap_state_bytes = (long)st.st_size;
	free(path);
	path = xasprintf("%s/memory", c->snap);
	if (!stat(path, &st))
		R->snap_mem_alloc_kib = (long)st.st_blocks / 2;
	free(path);
	unlink(sock);
	free(sock);
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char *p;
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		p = xasprintf("%s/%s", dir, e->d_name);
		if (!lstat(p, &st) && S_ISDIR(st.st_mode))
			rm_tree(p);
		else
			unlink(p);
		free(p);
	}
	closedir(d);
	rmdir(dir);
}

static void usage(FILE *f)
{
	fputs("usage: coldstart [--vmm PATH] [--handler PATH] [--qemu PATH]\n"
	      "                 [--out FILE] [--work DIR] [--quick] [--runs N]\n"
	      "                 [--clones N[,N..]] [--seconds S] [--only abcdefg]\n"
	      "                 [--keep]\n"
	      "Runs the cold-start scenarios (docs/benchmarks.md), prints a\n"
	      "table and writes FILE (default bench/results/coldstart.json).\n"
	      "BENCH_QUICK=1 in the environment is --quick.\n", f);
}

static bool exists_exec(const char *p)
{
	return p && access(p, X_OK) == 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vmm", required_argument, NULL, 'v' },
		{ "handler", required_argument, NULL, 'H' },
		{ "qemu", required_argument, NULL, 'Q' },
		{ "out", required_argument, NULL, 'o' },
		{ "work", required_argument, NULL, 'w' },
		{ "quick", no_argument, NULL, 'q' },
		{ "runs", required_argument, NULL, 'n' },
		{ "clones", required_argument, NULL, 'C' },
		{ "seconds", required_argument, NULL, 's' },
		{ "only", required_argument, NULL, 'O' },
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	const char *qk = getenv("BENCH_QUICK");
	struct cfg c = { .out = "bench/results/coldstart.json",
			 .qemu = "/usr/bin/qemu-system-x86_64" };
	static struct results R;
	unsigned runs = 0;
	const char *clones = NULL;
	char *logpath;
	int o;

	c.vmm = xasprintf("%s/ember-vmm", build);
	c.handler = xasprintf("%s/handlers/echo", build);
	c.quick = qk && *qk && strcmp(qk, "0");
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'v': c.vmm = optarg; break;
		case 'H': c.handler = optarg; break;
		case 'Q': c.qemu = optarg; break;
		case 'o': c.out = optarg; break;
		case 'w': snprintf(c.work, sizeof(c.work), "%s", optarg); break;
		case 'q': c.quick = true; break;
		case 'n': runs = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'C': clones = optarg; break;
		case 's': c.tput_seconds = strtod(optarg, NULL); break;
		case 'O': snprintf(c.only, sizeof(c.only), "%s", optarg); break;
		case 'k': c.keep_work = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 64;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 64;
	}
	if (!exists_exec(c.vmm) || !exists_exec(c.handler))
		die("need %s and %s (make BUILD=%s bench-coldstart builds them)",
		    c.vmm, c.handler, build);
	/* Full run: >= 200 samples for the headline scenarios, the rest
	 * sized to keep the whole run under ~5 minutes on 2 cores. */
	c.runs_a = c.quick ? 30 : 300;
	c.runs_b = c.quick ? 30 : 300;
	c.runs_b2 = c.quick ? 10 : 100;
	c.runs_c = c.quick ? 5 : 50;
	c.runs_d = c.quick ? 3 : 30;
	c.runs_g = c.quick ? 20 : 100;
	if (runs)
		c.runs_a = c.runs_b = runs;
	if (!c.tput_seconds)
		c.tput_seconds = c.quick ? 1.0 : 5.0;
	if (!clones)
		clones = c.quick ? "20" : "100,500";
	for (const char *p = clones; *p && c.nclones < 4;) {
		char *end;
		unsigned long v = strtoul(p, &end, 10);

		p = end;
		if (!v || v > MAX_KIDS - 16)
			die("--clones: 1..%d", MAX_KIDS - 16);
		c.clones[c.nclones++] = (unsigned)v;
		if (*p == ',')
			p++;
		else if (*p)
			die("--clones: a comma-separated list of counts");
	}

	ember_log_set_level(EMBER_LOG_ERROR); /* libember in this process: errors only */
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);
	signal(SIGPIPE, SIG_IGN);
	atexit(kids_kill_all);
	/* Sleeps in the connect retry loop should be ~20 us, not 50+. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

	if (!c.work[0]) {
		snprintf(c.work, sizeof(c.work), "/tmp/ember-coldstart.XXXXXX");
		if (!mkdtemp(c.work))
			die("mkdtemp: %s", strerror(errno));
	} else if (mkdir(c.work, 0700) < 0 && errno != EEXIST) {
		die("mkdir %s: %s", c.work, strerror(errno));
	}
	if (strlen(c.work) > 200)
		die("--work: path too long");
	snprintf(c.snap, sizeof(c.snap), "%.200s/snap", c.work);
	logpath = xasprintf("%s/vmm.log", c.work);
	g_errlog = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	{
		/* The result directory, next to --out. */
		char *dir = strdup(c.out), *sl = strrchr(dir, '/');

		if (sl) {
			*sl = 0;
			mkdir(dir, 0755);
		}
		free(dir);
	}
	fprintf(stderr, "coldstart: %s run, vmm %s, work dir %s\n",
		c.quick ? "quick" : "full", c.vmm, c.work);

	{
		FILE *la = fopen("/proc/loadavg", "r");

		if (la) {
			if (fgets(g_load_start, sizeof(g_load_start), la))
				g_load_start[strcspn(g_load_start, "\n")] = 0;
			fclose(la);
		}
	}
	make_snapshot(&c, &R);
	/* Warm the page cache and the binaries once, untimed. */
	{
		struct series warm = { 0 };

		run_process_series(&c, &warm, 3, false, false, "warm");
		if (warm.failures == 3)
			die("cannot restore the snapshot: %s", warm.first_error);
	}
	probe_shell(&c);

	if (want(&c, 'a')) {
		fprintf(stderr, "coldstart: (a) %u process restores\n", c.runs_a);
		run_exec_only(&c, &R.exec_only, c.quick ? 10 : 50);
		run_process_series(&c, &R.a, c.runs_a, false, false, "a");
	}
	if (want(&c, 'b')) {
		fprintf(stderr, "coldstart: (b) %u shell restores, %u library "
			"restores\n", c.runs_b, c.runs_b2);
		run_lib_series(&c, &R.b, c.runs_b, true, false, &R.tr_shell,
			       &R.tr_restore, "b");
		run_lib_series(&c, &R.b2, c.runs_b2, false, false, NULL,
			       &R.tr_b2, "b2");
	}
	if (want(&c, 'c')) {
		fprintf(stderr, "coldstart: (c) %u boots from scratch\n", c.runs_c);
		run_process_series(&c, &R.c, c.runs_c, false, true, "c");
	}
	if (want(&c, 'd')) {
		fprintf(stderr, "coldstart: (d) QEMU, %u restores\n", c.runs_d);
		if (exists_exec(c.qemu))
			run_qemu(&c, &R.q);
		else
			snprintf(R.q.error, sizeof(R.q.error), "%s not found",
				 c.qemu);
	}
	if (want(&c, 'e')) {
		fprintf(stderr, "coldstart: (e) idle CPU of 10 clones\n");
		R.idle.clones = 10;
		R.idle.seconds = c.quick ? 1.0 : 3.0;
		run_idle_cpu(&c, &R.idle);
		for (unsigned i = 0; i < c.nclones; i++) {
			fprintf(stderr, "coldstart: (e) %u idle clones\n",
				c.clones[i]);
			R.dens[i].want = c.clones[i];
			run_density(&c, &R.dens[i]);
			R.ndens++;
		}
	}
	if (want(&c, 'f')) {
		fprintf(stderr, "coldstart: (f) throughput, 2 workers, %.0f s "
			"each\n", c.tput_seconds);
		run_tput_processes(&c, &R.tp_proc);
		run_tput_library(&c, &R.tp_lib);
	}
	if (want(&c, 'g')) {
		char why[256] = "";
		char *ws = xasprintf("%s/workingset", c.snap);
		struct stat st;
		char *sock = xasprintf("%s/g.sock", c.work);

		fprintf(stderr, "coldstart: (g) working set, %u runs each\n",
			c.runs_g);
		if (record_workingset(&c, why, sizeof(why)) < 0 ||
		    stat(ws, &st) < 0) {
			snprintf(R.ws_error, sizeof(R.ws_error), "%s",
				 why[0] ? why : "no workingset file");
		} else {
			R.ws_ok = true;
			/* Interleave off/on so drift hits both alike. */
			for (unsigned i = 0; i < c.runs_g; i++) {
				run_process_series(&c, &R.g_off, 1, false, false,
						   "g-off");
				run_process_series(&c, &R.g_on, 1, true, false,
						   "g-on");
				run_lib_series(&c, &R.gb_off, 1, true, false,
					       NULL, &R.tr_gb_off, "gb-off");
				run_lib_series(&c, &R.gb_on, 1, true, true,
					       NULL, &R.tr_gb_on, "gb-on");
			}
			R.ws_pages = R.tr_gb_on.runs ?
				(long)(R.tr_gb_on.prefetch_bytes /
				       R.tr_gb_on.runs / 4096) : -1;
		}
		free(ws);
		free(sock);
	}

	print_table(&R);
	write_json(&c, &R);
	printf("\nwrote %s\n", c.out);
	kids_kill_all();
	if (!c.keep_work)
		rm_tree(c.work);
	else
		fprintf(stderr, "coldstart: kept %s\n", c.work);
	free(logpath);
	return R.a.failures || R.b.failures ? 1 : 0;
}
