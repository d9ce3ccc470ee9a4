/*
 * Test handler for threads in the micro guest. Each request names a case;
 * the answer is a few "key=value" words that depend only on the case, so
 * the same binary must answer the same in the micro guest and as a host
 * process (tests/integration/micro-threads compares them).
 *
 *   basic   4 threads: mutex + condition variable work queue, join values,
 *           thread-local storage and x87/SSE state kept across switches
 *   many    64 threads at once, then 200 created and joined one by one
 *   detach  detached threads signalling a semaphore
 *   sync    a barrier, a recursive mutex, a reader-writer lock, a spin lock
 *   robust  a robust mutex whose owner exited: EOWNERDEAD, consistent
 *   tids    gettid distinct per thread, getpid shared
 *   sleep   threads sleeping 300, 100, 200 ms finish in time order, and
 *           the sleeps overlap
 *   signal  pthread_kill to a sleeping thread runs its handler there and
 *           ends its sleep with EINTR; a handler on the alternate stack;
 *           raise() of an ignored signal is ignored
 *   cancel  pthread_cancel of a thread blocked in a cancellation point
 *   spin    the main thread spins (no system calls) until a thread that
 *           first sleeps 20 ms sets a flag: only preemption ends the spin
 *   pool    3 threads started at initialisation (before READY, so in a
 *           snapshot) do the work: they must survive a snapshot/restore
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sdk/ember_handler.h"

#define NT 4

static char out[4096];
static size_t outn;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	outn += (size_t)vsnprintf(out + outn, sizeof(out) - outn, fmt, ap);
	va_end(ap);
	if (outn >= sizeof(out))
		outn = sizeof(out) - 1;
}

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static pid_t tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* --- basic --- */
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcond = PTHREAD_COND_INITIALIZER;
static int queue[64], qhead, qtail, qclosed;
static long qsum;
static __thread int tls_value;

static double fpu_series(int seed)
{
	double x = seed;

	for (int i = 0; i < 50; i++) {
		x = x * 1.0001 + 0.5 / (i + 1);
		if (i % 10 == 0)
			sched_yield(); /* let another thread's FPU state in */
	}
	return x;
}

static void *basic_worker(void *arg)
{
	int id = (int)(intptr_t)arg, got = 0;
	double f;

	tls_value = 1000 + id;
	f = fpu_series(id);
	pthread_mutex_lock(&qlock);
	for (;;) {
		while (qhead == qtail && !qclosed)
			pthread_cond_wait(&qcond, &qlock);
		if (qhead == qtail)
			break;
		qsum += queue[qhead++ % 64];
		got++;
		pthread_mutex_unlock(&qlock);
		msleep(1);
		pthread_mutex_lock(&qlock);
	}
	pthread_mutex_unlock(&qlock);
	/* Each thread's TLS and FPU results are its own. */
	if (tls_value != 1000 + id || f != fpu_series(id))
		return (void *)-1;
	return (void *)(intptr_t)(got * 0 + id + 100);
}

static void case_basic(void)
{
	pthread_t th[NT];
	int joined = 0;
	double mine;

	tls_value = 7;
	qhead = qtail = qclosed = 0;
	qsum = 0;
	for (int i = 0; i < NT; i++)
		pthread_create(&th[i], NULL, basic_worker, (void *)(intptr_t)i);
	mine = fpu_series(99);
	for (int i = 1; i <= 40; i++) {
		pthread_mutex_lock(&qlock);
		queue[qtail++ % 64] = i;
		pthread_cond_signal(&qcond);
		pthread_mutex_unlock(&qlock);
		if (i % 8 == 0)
			msleep(2);
	}
	pthread_mutex_lock(&qlock);
	qclosed = 1;
	pthread_cond_broadcast(&qcond);
	pthread_mutex_unlock(&qlock);
	for (int i = 0; i < NT; i++) {
		void *r;

		pthread_join(th[i], &r);
		joined += r == (void *)(intptr_t)(i + 100);
	}
	say("sum=%ld joined=%d tls=%d fpu=%d", qsum, joined, tls_value,
	    mine == fpu_series(99));
}

/* --- many --- */
static int many_count;
static void *many_worker(void *arg)
{
	pthread_mutex_lock(&qlock);
	many_count += (int)(intptr_t)arg;
	pthread_mutex_unlock(&qlock);
	if ((intptr_t)arg % 2)
		msleep(1);
	return arg;
}

static void case_many(void)
{
	pthread_t th[64];
	pthread_attr_t a;
	int ok = 0, seq = 0;

	many_count = 0;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 64 << 10);
	for (int i = 0; i < 64; i++)
		ok += pthread_create(&th[i], &a, many_worker,
				     (void *)(intptr_t)i) == 0;
	for (int i = 0; i < 64; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 200; i++) {
		pthread_t t;
		void *r;

		if (pthread_create(&t, &a, many_worker, (void *)(intptr_t)1) ||
		    pthread_join(t, &r) || r != (void *)(intptr_t)1)
			break;
		seq++;
	}
	say("created=%d count=%d sequential=%d", ok, many_count, seq);
}

/* --- detach --- */
static sem_t sem;
static void *detached(void *arg)
{
	(void)arg;
	msleep(2);
	sem_post(&sem);
	return NULL;
}

static void case_detach(void)
{
	pthread_attr_t a;
	int posted = 0;

	sem_init(&sem, 0, 0);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	for (int i = 0; i < 8; i++) {
		pthread_t t;

		pthread_create(&t, &a, detached, NULL);
	}
	for (int i = 0; i < 8; i++)
		posted += sem_wait(&sem) == 0;
	say("posted=%d", posted);
}

/* --- sync --- */
static pthread_barrier_t bar;
static pthread_mutex_t rec;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_spinlock_t spin;
static int rw_value, spin_count, serial_seen;
static void *sync_worker(void *arg)
{
	int r = pthread_barrier_wait(&bar);

	(void)arg;
	if (r == PTHREAD_BARRIER_SERIAL_THREAD)
		__atomic_add_fetch(&serial_seen, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&rec);
	pthread_mutex_lock(&rec); /* again: recursive */
	pthread_mutex_unlock(&rec);
	pthread_mutex_unlock(&rec);
	pthread_rwlock_wrlock(&rw);
	rw_value++;
	pthread_rwlock_unlock(&rw);
	for (int i = 0; i < 1000; i++) {
		pthread_spin_lock(&spin);
		spin_count++;
		pthread_spin_unlock(&spin);
		if (i % 100 == 0)
			sched_yield();
	}
	pthread_barrier_wait(&bar);
	pthread_rwlock_rdlock(&rw);
	r = rw_value;
	pthread_rwlock_unlock(&rw);
	return (void *)(intptr_t)r;
}

static void case_sync(void)
{
	pthread_mutexattr_t ma;
	pthread_t th[NT];
	int all = 1;

	pthread_barrier_init(&bar, NULL, NT);
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&rec, &ma);
	pthread_spin_init(&spin, 0);
	rw_value = spin_count = serial_seen = 0;
	for (int i = 0; i < NT; i++)
		pthread_create(&th[i], NULL, sync_worker, NULL);
	for (int i = 0; i < NT; i++) {
		void *r;

		pthread_join(th[i], &r);
		all &= (intptr_t)r == NT; /* all wrote before anyone read */
	}
	pthread_barrier_destroy(&bar);
	say("serial=%d rw=%d spin=%d after_barrier=%d", serial_seen, rw_value,
	    spin_count, all);
}

/* --- robust --- */
static pthread_mutex_t rmutex;
static void *robust_owner(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&rmutex);
	return NULL; /* exits holding it */
}

static void case_robust(void)
{
	pthread_mutexattr_t ma;
	pthread_t t;
	int r1, r2;

	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&rmutex, &ma);
	pthread_create(&t, NULL, robust_owner, NULL);
	pthread_join(t, NULL);
	r1 = pthread_mutex_lock(&rmutex);
	if (r1 == EOWNERDEAD)
		pthread_mutex_consistent(&rmutex);
	pthread_mutex_unlock(&rmutex);
	r2 = pthread_mutex_lock(&rmutex);
	pthread_mutex_unlock(&rmutex);
	pthread_mutex_destroy(&rmutex);
	say("first=%s second=%d", r1 == EOWNERDEAD ? "EOWNERDEAD" : "?", r2);
}

/* --- tids --- */
static pid_t tids[NT];
static void *tid_worker(void *arg)
{
	tids[(intptr_t)arg] = tid();
	return (void *)(intptr_t)getpid();
}

static void case_tids(void)
{
	pthread_t th[NT];
	int same_pid = 0, distinct = 1;

	for (int i = 0; i < NT; i++)
		pthread_create(&th[i], NULL, tid_worker, (void *)(intptr_t)i);
	for (int i = 0; i < NT; i++) {
		void *r;

		pthread_join(th[i], &r);
		same_pid += (pid_t)(intptr_t)r == getpid();
	}
	for (int i = 0; i < NT; i++) {
		distinct &= tids[i] != getpid() && tids[i] > 0;
		for (int j = 0; j < i; j++)
			distinct &= tids[i] != tids[j];
	}
	say("main_is_pid=%d same_pid=%d distinct=%d", tid() == getpid(),
	    same_pid, distinct);
}

/* --- sleep --- */
static int order[3], norder;
static void *sleeper(void *arg)
{
	int ms = (int)(intptr_t)arg;

	msleep(ms);
	pthread_mutex_lock(&qlock);
	order[norder++] = ms;
	pthread_mutex_unlock(&qlock);
	return NULL;
}

static void case_sleep(void)
{
	static const int ms[3] = { 300, 100, 200 };
	pthread_t th[3];
	struct timespec a, b;
	long took;

	norder = 0;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < 3; i++)
		pthread_create(&th[i], NULL, sleeper, (void *)(intptr_t)ms[i]);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	took = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	/* The sleeps overlap: all three take about as long as the longest
	 * (in sequence they would take 600 ms). */
	say("order=%d,%d,%d overlapped=%d", order[0], order[1], order[2],
	    took >= 300 && took < 550);
}

/* --- signal --- */
static volatile pid_t handler_tid;
static volatile int handled, on_alt;
static char altstack[64 << 10];

static void on_usr1(int sig)
{
	(void)sig;
	handler_tid = tid();
	handled++;
}

static void on_usr2_alt(int sig)
{
	char here;

	(void)sig;
	on_alt = &here >= altstack && &here < altstack + sizeof(altstack);
	handled++;
}

static volatile pid_t sleeper_tid;
static volatile int sleep_err;
static void *sig_sleeper(void *arg)
{
	struct timespec ts = { 5, 0 };

	(void)arg;
	sleeper_tid = tid();
	sleep_err = nanosleep(&ts, NULL) ? errno : 0;
	return NULL;
}

static void case_signal(void)
{
	struct sigaction sa;
	pthread_t t;
	stack_t ss;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	handled = 0;
	sleeper_tid = 0;
	pthread_create(&t, NULL, sig_sleeper, NULL);
	while (!sleeper_tid)
		msleep(1);
	msleep(5); /* let it block in nanosleep */
	pthread_kill(t, SIGUSR1);
	pthread_join(t, NULL);
	say("in_target=%d eintr=%d ", handler_tid == sleeper_tid,
	    sleep_err == EINTR);

	/* The alternate stack. */
	ss.ss_sp = altstack;
	ss.ss_size = sizeof(altstack);
	ss.ss_flags = 0;
	sigaltstack(&ss, NULL);
	sa.sa_handler = on_usr2_alt;
	sa.sa_flags = SA_ONSTACK;
	sigaction(SIGUSR2, &sa, NULL);
	raise(SIGUSR2);
	say("on_altstack=%d ", on_alt);

	/* Ignored: raise() returns and nothing happens. */
	signal(SIGUSR2, SIG_IGN);
	raise(SIGUSR2);
	signal(SIGURG, SIG_DFL); /* default: ignore */
	raise(SIGURG);
	say("handled=%d survived=1", handled);
}

/* --- cancel --- */
static void *cancel_me(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void case_cancel(void)
{
	pthread_t t;
	void *r;

	pthread_create(&t, NULL, cancel_me, NULL);
	msleep(5);
	pthread_cancel(t);
	pthread_join(t, &r);
	say("canceled=%d", r == PTHREAD_CANCELED);
}

/* --- spin --- */
static volatile int spin_flag;
static void *spin_setter(void *arg)
{
	(void)arg;
	msleep(20);
	__atomic_store_n(&spin_flag, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void case_spin(void)
{
	pthread_t t;
	unsigned long loops = 0;

	spin_flag = 0;
	pthread_create(&t, NULL, spin_setter, NULL);
	while (!__atomic_load_n(&spin_flag, __ATOMIC_SEQ_CST))
		loops++;
	pthread_join(t, NULL);
	say("spun=%d", loops > 0);
}

/* --- pool (started at init) --- */
static pthread_mutex_t plock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pwork = PTHREAD_COND_INITIALIZER,
		      pdone = PTHREAD_COND_INITIALIZER;
static int ptask, pleft, presult[3], pgen;
static void *pool_worker(void *arg)
{
	int id = (int)(intptr_t)arg, seen = 0;

	pthread_mutex_lock(&plock);
	for (;;) {
		while (pgen == seen)
			pthread_cond_wait(&pwork, &plock);
		seen = pgen;
		presult[id] = ptask * (id + 1);
		if (--pleft == 0)
			pthread_cond_signal(&pdone);
	}
	return NULL;
}

static void case_pool(int task)
{
	pthread_mutex_lock(&plock);
	ptask = task;
	pleft = 3;
	pgen++;
	pthread_cond_broadcast(&pwork);
	while (pleft)
		pthread_cond_wait(&pdone, &plock);
	say("pool=%d,%d,%d gen=%d", presult[0], presult[1], presult[2], pgen);
	pthread_mutex_unlock(&plock);
}

static int is(const struct ember_request *req, const char *s)
{
	size_t n = strlen(s);

	return req->len >= n && !memcmp(req->data, s, n);
}

/* The number after the case name ("pool 7"), 1 if none. */
static int arg_int(const struct ember_request *req)
{
	char buf[16];
	size_t n = req->len > 5 ? req->len - 5 : 0;

	if (n == 0 || n >= sizeof(buf))
		return 1;
	memcpy(buf, req->data + 5, n);
	buf[n] = 0;
	return atoi(buf);
}

static int fn(const struct ember_request *req, struct ember_response *resp,
	      void *ctx)
{
	(void)ctx;
	outn = 0;
	out[0] = 0;
	if (is(req, "basic"))
		case_basic();
	else if (is(req, "many"))
		case_many();
	else if (is(req, "detach"))
		case_detach();
	else if (is(req, "robust"))
		case_robust();
	else if (is(req, "sync"))
		case_sync();
	else if (is(req, "tids"))
		case_tids();
	else if (is(req, "sleep"))
		case_sleep();
	else if (is(req, "signal"))
		case_signal();
	else if (is(req, "cancel"))
		case_cancel();
	else if (is(req, "spin"))
		case_spin();
	else if (is(req, "pool"))
		case_pool(arg_int(req));
	else
		say("unknown case");
	say("\n");
	return ember_response_puts(resp, out);
}

int main(void)
{
	for (int i = 0; i < 3; i++) {
		pthread_t t;

		pthread_create(&t, NULL, pool_worker, (void *)(intptr_t)i);
	}
	return ember_handler_run(fn, NULL);
}
