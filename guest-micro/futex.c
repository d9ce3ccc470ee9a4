/*
 * futex.c - futex(2) for the handler's threads (one address space, so
 * private and shared futexes are the same: the key is the user address).
 *
 * A waiter blocks on the channel uaddr with its bitset (sched.c), so WAKE,
 * REQUEUE and WAKE_OP are walks over the blocked threads. Served: WAIT,
 * WAKE, REQUEUE, CMP_REQUEUE, WAKE_OP, WAIT_BITSET, WAKE_BITSET, with
 * FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME. The priority-inheritance
 * operations (LOCK_PI...) give -ENOSYS: one vCPU has no priorities to
 * inherit, and the C libraries use them only for PI mutexes.
 */
#include "kernel.h"

#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_REQUEUE 3
#define FUTEX_CMP_REQUEUE 4
#define FUTEX_WAKE_OP 5
#define FUTEX_WAIT_BITSET 9
#define FUTEX_WAKE_BITSET 10
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_CLOCK_REALTIME 256
#define FUTEX_BITSET_MATCH_ANY 0xffffffffu

/* FUTEX_WAKE_OP's val3: op (4 bits, + OPARG_SHIFT flag), cmp (4), oparg
 * (12), cmparg (12). */
#define FUTEX_OP_SET 0
#define FUTEX_OP_ADD 1
#define FUTEX_OP_OR 2
#define FUTEX_OP_ANDN 3
#define FUTEX_OP_XOR 4
#define FUTEX_OP_OPARG_SHIFT 8

static bool word_ok(uint64_t uaddr)
{
	return !(uaddr & 3) && mm_access_ok((const void *)(uintptr_t)uaddr, 4);
}

static uint32_t load(uint64_t uaddr)
{
	return *(volatile const uint32_t *)(uintptr_t)uaddr;
}

void futex_wake_one(uint64_t uaddr)
{
	sched_wake((const void *)(uintptr_t)uaddr, FUTEX_BITSET_MATCH_ANY, 1);
}

/* The wait's deadline on CLOCK_MONOTONIC: `timeout` is a relative timespec
 * (WAIT) or an absolute one on the chosen clock (WAIT_BITSET). */
static long deadline_of(uint64_t timeout, bool absolute, bool realtime,
			uint64_t *deadline)
{
	uint64_t ns, now;
	long ret;

	*deadline = SCHED_NEVER;
	if (!timeout)
		return 0;
	ret = time_get_timespec((const void *)(uintptr_t)timeout, &ns);
	if (ret)
		return ret;
	now = time_mono_ns();
	if (!absolute) {
		*deadline = ns > SCHED_NEVER - now ? SCHED_NEVER : now + ns;
		return 0;
	}
	if (realtime) {
		uint64_t real = time_real_ns();

		*deadline = ns <= real ? now : now + (ns - real);
	} else {
		*deadline = ns;
	}
	return 0;
}

static long futex_wait(uint64_t uaddr, uint32_t val, uint64_t timeout,
		       uint32_t bits, bool absolute, bool realtime)
{
	uint64_t deadline;
	long ret;
	int why;

	if (!word_ok(uaddr))
		return -EFAULT;
	if (!bits)
		return -EINVAL;
	ret = deadline_of(timeout, absolute, realtime, &deadline);
	if (ret)
		return ret;
	/* Checked and blocked with no switch in between: a waker that
	 * changes the word after this load wakes us. */
	if (load(uaddr) != val)
		return -EAGAIN;
	why = sched_block((const void *)(uintptr_t)uaddr, bits, deadline,
			  SCHED_INTR);
	switch (why) {
	case WAKE_EVENT:
		return 0;
	case WAKE_TIMEOUT:
		return -ETIMEDOUT;
	default:
		/* Linux restarts an untimed wait after a handler
		 * (SA_RESTART) and reports EINTR for a timed one. */
		return timeout ? -EINTR : -ERESTARTSYS;
	}
}

/* The comparison and operation of FUTEX_WAKE_OP on *uaddr2. */
static long wake_op(uint64_t uaddr, uint32_t nr1, uint64_t uaddr2,
		    uint32_t nr2, uint32_t val3)
{
	uint32_t op = (val3 >> 28) & 0xf, cmp = (val3 >> 24) & 0xf;
	uint32_t oparg = (val3 >> 12) & 0xfff, cmparg = val3 & 0xfff;
	uint32_t old, nv;
	bool hit;
	long n;

	if (!word_ok(uaddr2))
		return -EFAULT;
	/* Sign-extend the 12-bit arguments, as Linux does. */
	oparg = (uint32_t)((int32_t)(oparg << 20) >> 20);
	cmparg = (uint32_t)((int32_t)(cmparg << 20) >> 20);
	if (op & FUTEX_OP_OPARG_SHIFT) {
		if (oparg > 31)
			return -EINVAL;
		oparg = 1u << oparg;
	}
	old = load(uaddr2);
	switch (op & 7) {
	case FUTEX_OP_SET:
		nv = oparg;
		break;
	case FUTEX_OP_ADD:
		nv = old + oparg;
		break;
	case FUTEX_OP_OR:
		nv = old | oparg;
		break;
	case FUTEX_OP_ANDN:
		nv = old & ~oparg;
		break;
	case FUTEX_OP_XOR:
		nv = old ^ oparg;
		break;
	default:
		return -ENOSYS;
	}
	switch (cmp) {
	case 0: hit = old == cmparg; break;
	case 1: hit = old != cmparg; break;
	case 2: hit = (int32_t)old < (int32_t)cmparg; break;
	case 3: hit = (int32_t)old <= (int32_t)cmparg; break;
	case 4: hit = (int32_t)old > (int32_t)cmparg; break;
	case 5: hit = (int32_t)old >= (int32_t)cmparg; break;
	default: return -ENOSYS;
	}
	*(volatile uint32_t *)(uintptr_t)uaddr2 = nv;
	n = sched_wake((const void *)(uintptr_t)uaddr, FUTEX_BITSET_MATCH_ANY,
		       (int)MIN(nr1, (uint32_t)INT32_MAX));
	if (hit)
		n += sched_wake((const void *)(uintptr_t)uaddr2,
				FUTEX_BITSET_MATCH_ANY,
				(int)MIN(nr2, (uint32_t)INT32_MAX));
	return n;
}

long sys_futex(uint64_t uaddr, int op, uint32_t val, uint64_t timeout,
	       uint64_t uaddr2, uint32_t val3)
{
	bool realtime = op & FUTEX_CLOCK_REALTIME;
	int cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
	int nwake = (int)MIN(val, (uint32_t)INT32_MAX);
	/* REQUEUE and WAKE_OP pass a count in the timeout argument. */
	uint32_t val2 = (uint32_t)timeout;
	long n;

	if (realtime && cmd != FUTEX_WAIT && cmd != FUTEX_WAIT_BITSET)
		return -ENOSYS;
	switch (cmd) {
	case FUTEX_WAIT:
		return futex_wait(uaddr, val, timeout, FUTEX_BITSET_MATCH_ANY,
				  false, realtime);
	case FUTEX_WAIT_BITSET:
		return futex_wait(uaddr, val, timeout, val3, true, realtime);
	case FUTEX_WAKE:
	case FUTEX_WAKE_BITSET:
		if (!word_ok(uaddr))
			return -EFAULT;
		if (cmd == FUTEX_WAKE_BITSET && !val3)
			return -EINVAL;
		return sched_wake((const void *)(uintptr_t)uaddr,
				  cmd == FUTEX_WAKE ? FUTEX_BITSET_MATCH_ANY :
						      val3,
				  nwake);
	case FUTEX_CMP_REQUEUE:
	case FUTEX_REQUEUE:
		if (!word_ok(uaddr) || !word_ok(uaddr2))
			return -EFAULT;
		if ((int32_t)val < 0 || (int32_t)val2 < 0)
			return -EINVAL;
		if (cmd == FUTEX_CMP_REQUEUE && load(uaddr) != val3)
			return -EAGAIN;
		n = sched_wake((const void *)(uintptr_t)uaddr,
			       FUTEX_BITSET_MATCH_ANY, nwake);
		if (uaddr2 != uaddr)
			n += sched_requeue((const void *)(uintptr_t)uaddr,
					   (const void *)(uintptr_t)uaddr2,
					   (int)val2);
		return n;
	case FUTEX_WAKE_OP:
		if (!word_ok(uaddr))
			return -EFAULT;
		return wake_op(uaddr, val, uaddr2, val2, val3);
	default:
		return -ENOSYS; /* the PI operations */
	}
}
