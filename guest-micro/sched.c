/*
 * sched.c - the handler's threads on the micro guest's one vCPU.
 *
 * A thread is a struct thread plus a kernel stack; its user registers live
 * in a struct micro_regs frame at the top of that stack while it is in the
 * kernel (entry.S). The kernel is not preemptible: a thread runs kernel code
 * until it blocks in sched_block() (futex wait, sleep, a read or poll with
 * nothing ready, sched_yield, exit), which picks the next runnable thread
 * round-robin and switches kernel stacks (sched_switch in entry.S). A switch
 * also swaps what the kernel never touches otherwise: the FS and GS bases
 * (WRFSBASE works at CPL3 with CR4.FSGSBASE) and the x87/SSE state
 * (FXSAVE/FXRSTOR; the VMM does not enable XSAVE, so there is no AVX state).
 * User code of a thread that never blocks is only interrupted by the VMM's
 * preemption tick (signal.c, docs/micro-guest.md "Threads").
 *
 * When no thread is runnable the idle loop wakes the threads whose deadline
 * passed, polls the vsock device for threads waiting on I/O (SCHED_IO), and
 * otherwise sleeps in the VMM (EMBER_HC_WAIT) until the nearest deadline or
 * device activity. Waiting is by channel: a waiter names an address (a
 * futex word, a pipe) and whoever changes that object wakes the channel.
 * Wake-ups may be spurious; every waiter re-checks its condition.
 *
 * Thread ids: the first thread is 1 (also the pid); clone hands out 2, 3...
 * and never reuses one.
 */
#include "kernel.h"

#define CLONE_VM 0x00000100
#define CLONE_FS 0x00000200
#define CLONE_FILES 0x00000400
#define CLONE_SIGHAND 0x00000800
#define CLONE_PIDFD 0x00001000
#define CLONE_PTRACE 0x00002000
#define CLONE_VFORK 0x00004000
#define CLONE_PARENT 0x00008000
#define CLONE_THREAD 0x00010000
#define CLONE_SYSVSEM 0x00040000
#define CLONE_SETTLS 0x00080000
#define CLONE_PARENT_SETTID 0x00100000
#define CLONE_CHILD_CLEARTID 0x00200000
#define CLONE_DETACHED 0x00400000
#define CLONE_UNTRACED 0x00800000
#define CLONE_CHILD_SETTID 0x01000000
/* What a thread needs, and the flags that may come with it (the C
 * libraries, Go and Rust pass a subset of these). Anything else (new
 * namespaces, a separate process, pidfds) is refused. */
#define CLONE_THREAD_NEEDS (CLONE_VM | CLONE_THREAD | CLONE_SIGHAND)
#define CLONE_THREAD_OK                                                       \
	(CLONE_THREAD_NEEDS | CLONE_FS | CLONE_FILES | CLONE_SYSVSEM |        \
	 CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID |          \
	 CLONE_DETACHED | CLONE_CHILD_SETTID | CLONE_PTRACE | CLONE_UNTRACED)

#define FUTEX_WAITERS 0x80000000u
#define FUTEX_OWNER_DIED 0x40000000u
#define FUTEX_TID_MASK 0x3fffffffu
#define ROBUST_LIST_LIMIT 2048 /* Linux's bound on a list walk */

struct thread *sched_cur;
static struct thread thread0;
static struct thread *threads[MICRO_MAX_THREADS];
static unsigned nr_live;
/* For the preemption ticks' `want`: threads ready to run, and blocked
 * threads that a deadline will make ready. */
static unsigned nr_runnable = 1, nr_timed;
static volatile struct ember_preempt *const preempt =
	(volatile struct ember_preempt *)EMBER_PREEMPT_GPA;
static int next_tid = 2;
static uint64_t block_seq;

static inline uint64_t rdfsbase(void)
{
	uint64_t v;

	__asm__ volatile("rdfsbase %0" : "=r"(v));
	return v;
}

static inline uint64_t rdgsbase(void)
{
	uint64_t v;

	__asm__ volatile("rdgsbase %0" : "=r"(v));
	return v;
}

static inline void wrfsbase(uint64_t v)
{
	__asm__ volatile("wrfsbase %0" : : "r"(v) : "memory");
}

static inline void wrgsbase(uint64_t v)
{
	__asm__ volatile("wrgsbase %0" : : "r"(v) : "memory");
}

static inline void fxsave(uint8_t *area)
{
	__asm__ volatile("fxsave64 (%0)" : : "r"(area) : "memory");
}

static inline void fxrstor(const uint8_t *area)
{
	__asm__ volatile("fxrstor64 (%0)" : : "r"(area) : "memory");
}

extern char _start[], __image_end[];

void sched_init(void)
{
	const char *name = micro_handler_path(), *slash = name;

	for (const char *p = name; *p; p++)
		if (*p == '/')
			slash = p + 1;
	memcpy(thread0.comm, slash, MIN(strlen(slash), sizeof(thread0.comm) - 1));
	thread0.tid = 1;
	thread0.state = THREAD_RUNNABLE;
	thread0.kstack_top = (uint64_t)(uintptr_t)micro_kstack_top;
	threads[0] = &thread0;
	nr_live = 1;
	sched_cur = &thread0;
	micro_kstack_cur = thread0.kstack_top - 8;
	/* Ticks every 10 ms while the vCPU runs (docs/micro-guest.md,
	 * "Preemption"), dropped while `want` is 0 and in this kernel. */
	preempt->text_start = (uint64_t)(uintptr_t)_start;
	preempt->text_end = (uint64_t)(uintptr_t)__image_end;
	preempt->want = 0;
	preempt->slice_ns = micro_preempt_ns;
}

struct micro_regs *sched_regs(const struct thread *t)
{
	return (struct micro_regs *)(uintptr_t)(t->kstack_top - 8 -
						 MICRO_REGS_SIZE);
}

unsigned sched_nr_threads(void)
{
	return nr_live;
}

struct thread *sched_find(int tid)
{
	for (unsigned i = 0; i < MICRO_MAX_THREADS; i++) {
		struct thread *t = threads[i];

		if (t && t->tid == tid && t->state != THREAD_FREE &&
		    t->state != THREAD_DEAD)
			return t;
	}
	return NULL;
}

static struct thread *live_from(unsigned i)
{
	for (; i < MICRO_MAX_THREADS; i++)
		if (threads[i] && (threads[i]->state == THREAD_RUNNABLE ||
				   threads[i]->state == THREAD_BLOCKED))
			return threads[i];
	return NULL;
}

static unsigned slot_of(const struct thread *t)
{
	for (unsigned i = 0; i < MICRO_MAX_THREADS; i++)
		if (threads[i] == t)
			return i;
	return MICRO_MAX_THREADS;
}

struct thread *sched_first(void)
{
	return live_from(0);
}

struct thread *sched_next(struct thread *t)
{
	return live_from(slot_of(t) + 1);
}

void sched_want_ticks(void)
{
	/* Someone else could run (now or at a deadline), or there is a
	 * deadline of the kernel's own to watch: then a thread that spins
	 * must be interrupted now and then. */
	preempt->want = nr_runnable > 1 || nr_timed || time_timers_armed() ||
			stdio_deadline() != SCHED_NEVER;
}

void sched_wake_thread(struct thread *t, int reason)
{
	if (t->state != THREAD_BLOCKED)
		return;
	t->state = THREAD_RUNNABLE;
	t->wake_reason = (uint8_t)reason;
	t->chan = NULL;
	nr_runnable++;
	if (t->wake_at != SCHED_NEVER)
		nr_timed--;
	t->wake_at = SCHED_NEVER;
}

/* The oldest waiter of chan matching bits, or NULL. */
static struct thread *oldest_waiter(const void *chan, uint32_t bits)
{
	struct thread *best = NULL;

	for (unsigned i = 0; i < MICRO_MAX_THREADS; i++) {
		struct thread *t = threads[i];

		if (t && t->state == THREAD_BLOCKED && t->chan == chan &&
		    (t->chan_bits & bits) &&
		    (!best || t->block_seq < best->block_seq))
			best = t;
	}
	return best;
}

int sched_wake(const void *chan, uint32_t bits, int n)
{
	int woken = 0;

	while (woken < n) {
		struct thread *t = oldest_waiter(chan, bits);

		if (!t)
			break;
		sched_wake_thread(t, WAKE_EVENT);
		woken++;
	}
	return woken;
}

int sched_requeue(const void *chan, const void *chan2, int n)
{
	int moved = 0;

	while (moved < n) {
		struct thread *t = oldest_waiter(chan, ~0u);

		if (!t)
			break;
		t->chan = chan2; /* keeps its place (block_seq) */
		moved++;
	}
	return moved;
}

/* Switches from the current thread to `next` (kernel stacks, bases, FPU). */
static void switch_to(struct thread *next)
{
	struct thread *prev = sched_cur;

	if (prev->state != THREAD_DEAD) {
		prev->fsbase = rdfsbase();
		prev->gsbase = rdgsbase();
		fxsave(prev->fpu);
	}
	wrfsbase(next->fsbase);
	wrgsbase(next->gsbase);
	fxrstor(next->fpu);
	sched_cur = next;
	micro_kstack_cur = next->kstack_top - 8;
	sched_switch(&prev->ksp, next->ksp);
}

/* The next runnable thread after the current one, the current one last;
 * NULL when none is. */
static struct thread *pick(void)
{
	unsigned start = slot_of(sched_cur);

	for (unsigned k = 1; k <= MICRO_MAX_THREADS; k++) {
		struct thread *t = threads[(start + k) % MICRO_MAX_THREADS];

		if (t && t->state == THREAD_RUNNABLE)
			return t;
	}
	return NULL;
}

static void wake_io_waiters(void)
{
	for (unsigned i = 0; i < MICRO_MAX_THREADS; i++) {
		struct thread *t = threads[i];

		if (t && t->state == THREAD_BLOCKED &&
		    (t->block_flags & SCHED_IO))
			sched_wake_thread(t, WAKE_EVENT);
	}
}

/*
 * Time-driven events: the kernel's deadlines (an invocation's, interval
 * timers) and threads whose wait timed out. Returns the nearest deadline
 * still ahead; *io says whether a thread waits for device I/O, *woke
 * whether a thread became runnable.
 */
static uint64_t wake_due(bool *io, bool *woke)
{
	uint64_t now, next;

	stdio_check_deadline();
	next = MIN(time_check_timers(), stdio_deadline());
	now = time_mono_ns();
	for (unsigned i = 0; i < MICRO_MAX_THREADS; i++) {
		struct thread *t = threads[i];

		if (!t || t->state != THREAD_BLOCKED)
			continue;
		if (t->wake_at <= now) {
			sched_wake_thread(t, WAKE_TIMEOUT);
			*woke = true;
			continue;
		}
		next = MIN(next, t->wake_at);
		*io |= !!(t->block_flags & SCHED_IO);
	}
	return next;
}

/*
 * Nothing is runnable: wake threads whose deadline passed or whose device
 * has news, else sleep in the VMM until the nearest deadline. Returns once
 * at least one thread might be runnable (it may be none after all).
 */
static void idle(void)
{
	static bool warned;
	uint64_t next;
	bool io = false, woke = false;

	next = wake_due(&io, &woke);
	if (woke || pick())
		return;
	if (io && stdio_poll(next))
		woke = true;
	if (!woke) {
		if (!io && next == SCHED_NEVER && !warned) {
			warned = true;
			kprintf("every thread waits with no timeout and no "
				"I/O: deadlock?\n");
		}
		uint64_t now = time_mono_ns();

		/* (The deadline may have passed since it was computed: then
		 * do not sleep at all, rather than for a wrapped-around
		 * eternity.) */
		if (next != SCHED_NEVER && next <= now)
			return;
		woke = micro_wait(next == SCHED_NEVER ? 1000000000ULL :
				  MAX(next - now, 1000ULL)) && io;
		if (io)
			stdio_woke();
	}
	if (woke)
		wake_io_waiters(); /* device activity: they look again */
}

/* Runs other threads until the current one is runnable again. */
static void schedule(void)
{
	for (;;) {
		struct thread *next = pick();

		if (next) {
			if (next != sched_cur)
				switch_to(next);
			if (sched_cur->state == THREAD_RUNNABLE)
				return;
			continue; /* (not reached: a thread resumes runnable) */
		}
		idle();
	}
}

int sched_block(const void *chan, uint32_t bits, uint64_t deadline,
		unsigned flags)
{
	struct thread *t = sched_cur;

	if ((flags & SCHED_INTR) && signal_pending(t))
		return WAKE_SIGNAL;
	if (deadline <= time_mono_ns())
		return WAKE_TIMEOUT;
	t->state = THREAD_BLOCKED;
	nr_runnable--;
	if (deadline != SCHED_NEVER)
		nr_timed++;
	t->chan = chan;
	t->chan_bits = bits;
	t->wake_at = deadline;
	t->block_flags = (uint8_t)flags;
	t->block_seq = ++block_seq;
	t->wake_reason = 0;
	schedule();
	sched_want_ticks();
	return t->wake_reason;
}

void sched_tick(struct micro_regs *r)
{
	bool io = false, woke = false;

	/* What the idle loop would do, then everyone else's turn: a thread
	 * that spins cannot keep the vCPU past a tick. */
	wake_due(&io, &woke);
	if (io && stdio_poll(0))
		wake_io_waiters();
	sched_yield();
	signal_deliver(r); /* e.g. Go's SIGURG, sent while it spun */
	sched_want_ticks();
}

void sched_dump(void)
{
	uint64_t now = time_mono_ns();

	for (unsigned i = 0; i < MICRO_MAX_THREADS; i++) {
		struct thread *t = threads[i];

		if (!t || t->state == THREAD_FREE || t->state == THREAD_DEAD)
			continue;
		kprintf("thread %d%s: %s, waits on %p%s, deadline %s%lu ms, "
			"RIP 0x%lx\n", t->tid, t == sched_cur ? " (current)" : "",
			t->state == THREAD_RUNNABLE ? "runnable" : "blocked",
			t->chan, t->block_flags & SCHED_IO ? " or I/O" : "",
			t->wake_at == SCHED_NEVER ? "none " : "in ",
			t->wake_at == SCHED_NEVER ? 0 :
			(t->wake_at > now ? t->wake_at - now : 0) / 1000000,
			sched_regs(t)->rip);
	}
	kprintf("runnable %u, timed waits %u, ticks %lu, want %u\n",
		nr_runnable, nr_timed, preempt->ticks, preempt->want);
}

void sched_yield(void)
{
	/* Runnable, so pick() comes back to us after everyone else. */
	struct thread *next = pick();

	if (next && next != sched_cur)
		switch_to(next);
}

/* A free thread structure with its kernel stack: a dead thread's, or new.
 * (Dead threads are never the current one here: we run on another.) */
static struct thread *thread_alloc(void)
{
	unsigned free_slot = MICRO_MAX_THREADS;

	for (unsigned i = 0; i < MICRO_MAX_THREADS; i++) {
		struct thread *t = threads[i];

		if (t && t->state == THREAD_DEAD && t != sched_cur) {
			uint64_t mem = t->mem, top = t->kstack_top;

			memset(t, 0, sizeof(*t));
			t->mem = mem;
			t->kstack_top = top;
			return t;
		}
		if (!t && free_slot == MICRO_MAX_THREADS)
			free_slot = i;
	}
	if (free_slot == MICRO_MAX_THREADS)
		return NULL;
	/* Kernel stack below, the structure above it. */
	uint64_t mem = mm_alloc_top(PAGE_UP(SCHED_KSTACK + sizeof(struct thread)));
	if (!mem)
		return NULL;
	struct thread *t = (struct thread *)(uintptr_t)(mem + SCHED_KSTACK);
	memset(t, 0, sizeof(*t));
	t->mem = mem;
	t->kstack_top = mem + SCHED_KSTACK;
	threads[free_slot] = t;
	return t;
}

static int put_user_u32(uint64_t addr, uint32_t v)
{
	if (addr & 3 || !mm_access_ok((void *)(uintptr_t)addr, 4))
		return -EFAULT;
	*(volatile uint32_t *)(uintptr_t)addr = v;
	return 0;
}

/* The shared part of clone and clone3. */
static long do_clone(struct micro_regs *r, uint64_t flags, uint64_t sp,
		     uint64_t ptid, uint64_t ctid, uint64_t tls)
{
	struct thread *parent = sched_cur, *t;
	struct micro_regs *cr;
	uint64_t *ks;

	if (!(flags & CLONE_THREAD))
		return micro_unsupported(NR_clone, -EAGAIN); /* a process */
	if ((flags & CLONE_THREAD_NEEDS) != CLONE_THREAD_NEEDS ||
	    (flags & ~(uint64_t)CLONE_THREAD_OK & ~0xffull))
		return -EINVAL;
	if (flags & 0xff)
		return -EINVAL; /* a thread has no exit signal */
	if ((flags & CLONE_SETTLS) && tls >= (1ULL << 47))
		return -EPERM;
	if (((flags & CLONE_PARENT_SETTID) &&
	     !mm_access_ok((void *)(uintptr_t)ptid, 4)) ||
	    ((flags & (CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID)) &&
	     !mm_access_ok((void *)(uintptr_t)ctid, 4)))
		return -EFAULT;
	t = thread_alloc();
	if (!t)
		return -EAGAIN;
	t->tid = next_tid++;
	t->fsbase = (flags & CLONE_SETTLS) ? tls : rdfsbase();
	t->gsbase = rdgsbase();
	fxsave(t->fpu); /* the parent's FPU state, as Linux copies it */
	t->sigmask = parent->sigmask;
	memcpy(t->comm, parent->comm, sizeof(t->comm));
	if (flags & CLONE_CHILD_CLEARTID)
		t->clear_child_tid = ctid;

	/* The child returns from the same syscall with RAX = 0 on its new
	 * stack; every other register is the parent's. */
	cr = sched_regs(t);
	*cr = *r;
	cr->rax = 0;
	if (sp)
		cr->rsp = sp;
	/* Its first switch "returns" into micro_thread_start, below the
	 * frame, with zeroed callee-saved registers. */
	ks = (uint64_t *)cr;
	*--ks = (uint64_t)(uintptr_t)micro_thread_start;
	for (int i = 0; i < 6; i++)
		*--ks = 0;
	t->ksp = (uint64_t)(uintptr_t)ks;

	if (flags & CLONE_PARENT_SETTID)
		put_user_u32(ptid, (uint32_t)t->tid);
	if (flags & CLONE_CHILD_SETTID)
		put_user_u32(ctid, (uint32_t)t->tid);
	t->state = THREAD_RUNNABLE;
	nr_live++;
	nr_runnable++;
	sched_want_ticks();
	return t->tid;
}

long sys_clone(struct micro_regs *r, uint64_t flags, uint64_t newsp,
	       uint64_t ptid, uint64_t ctid, uint64_t tls)
{
	return do_clone(r, flags, newsp, ptid, ctid, tls);
}

/* struct clone_args (linux/sched.h), the fields up to tls (CLONE_ARGS_SIZE_VER0
 * is 64 bytes); later fields must be zero. */
struct clone_args_k {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack,
		stack_size, tls, set_tid, set_tid_size, cgroup;
};

long sys_clone3(struct micro_regs *r, const void *uargs, uint64_t size)
{
	struct clone_args_k a;

	if (size < 64 || size > 4096)
		return -EINVAL;
	if (!mm_access_ok(uargs, size))
		return -EFAULT;
	memset(&a, 0, sizeof(a));
	memcpy(&a, uargs, MIN(size, sizeof(a)));
	for (uint64_t i = sizeof(a); i < size; i++)
		if (((const uint8_t *)uargs)[i])
			return -E2BIG;
	/* pidfd is only read with CLONE_PIDFD (refused by do_clone). */
	if (a.exit_signal || a.set_tid || a.set_tid_size || a.cgroup)
		return -EINVAL;
	if ((a.stack == 0) != (a.stack_size == 0) ||
	    a.stack + a.stack_size < a.stack)
		return -EINVAL;
	return do_clone(r, a.flags, a.stack ? a.stack + a.stack_size : 0,
			a.parent_tid, a.child_tid, a.tls);
}

long sys_set_tid_address(uint64_t tidptr)
{
	sched_cur->clear_child_tid = tidptr;
	return sched_cur->tid;
}

long sys_set_robust_list(uint64_t head, uint64_t len)
{
	if (len != 24) /* sizeof(struct robust_list_head) */
		return -EINVAL;
	sched_cur->robust_list = head;
	sched_cur->robust_len = len;
	return 0;
}

long sys_get_robust_list(int tid, uint64_t headp, uint64_t lenp)
{
	struct thread *t = tid ? sched_find(tid) : sched_cur;
	uint64_t len = 24;

	if (!t)
		return -ESRCH;
	if (!mm_access_ok((void *)(uintptr_t)headp, 8) ||
	    !mm_access_ok((void *)(uintptr_t)lenp, 8))
		return -EFAULT;
	memcpy((void *)(uintptr_t)headp, &t->robust_list, 8);
	memcpy((void *)(uintptr_t)lenp, &len, 8);
	return 0;
}

/* One robust futex the dying thread held: mark it OWNER_DIED, wake one. */
static void robust_release(uint64_t uaddr, int tid)
{
	volatile uint32_t *w = (volatile uint32_t *)(uintptr_t)uaddr;
	uint32_t v;

	if (uaddr & 3 || !mm_access_ok((const void *)(uintptr_t)uaddr, 4))
		return;
	v = *w;
	if ((v & FUTEX_TID_MASK) != (uint32_t)tid)
		return;
	*w = (v & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
	if (v & FUTEX_WAITERS)
		futex_wake_one(uaddr);
}

/*
 * The robust list (Documentation/locking/robust-futex-ABI.rst): a head
 * { next, futex_offset, list_op_pending } whose circular list links the
 * mutexes the thread holds; each futex word is at entry + futex_offset.
 * Everything is user memory: every read is checked and the walk bounded.
 */
static void exit_robust_list(struct thread *t)
{
	uint64_t head = t->robust_list, e, off, pending;
	unsigned n = 0;

	if (!head || !mm_access_ok((const void *)(uintptr_t)head, 24))
		return;
	memcpy(&e, (const void *)(uintptr_t)head, 8);
	memcpy(&off, (const void *)(uintptr_t)(head + 8), 8);
	memcpy(&pending, (const void *)(uintptr_t)(head + 16), 8);
	while (e != head && n++ < ROBUST_LIST_LIMIT) {
		uint64_t next;

		if (!mm_access_ok((const void *)(uintptr_t)(e & ~1ULL), 8))
			break;
		memcpy(&next, (const void *)(uintptr_t)(e & ~1ULL), 8);
		if (e != pending)
			robust_release((e & ~1ULL) + off, t->tid);
		e = next;
	}
	if (pending)
		robust_release((pending & ~1ULL) + off, t->tid);
}

void sched_exit_thread(int status)
{
	struct thread *t = sched_cur;

	if (nr_live == 1)
		micro_exit_process(status); /* the last thread: the process */
	exit_robust_list(t);
	if (t->clear_child_tid &&
	    !put_user_u32(t->clear_child_tid, 0)) /* pthread_join waits here */
		futex_wake_one(t->clear_child_tid);
	t->state = THREAD_DEAD;
	nr_live--;
	nr_runnable--;
	schedule(); /* never comes back: nobody wakes a dead thread */
	panic("a dead thread was scheduled");
}
