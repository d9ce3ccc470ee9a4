/*
 * signal.c - signals: dispositions, masks, the alternate stack, and
 * delivery to handlers in Linux's x86-64 frame format.
 *
 * Dispositions are process-wide (rt_sigaction), masks, pending sets and
 * alternate stacks per thread. Sources: kill/tkill/tgkill from the handler
 * itself, the interval timers (alarm, setitimer: SIGALRM) and CPU faults
 * (trap.c: SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, delivered at once to
 * the faulting thread). A signal that is ignored (SIG_IGN, or SIG_DFL of a
 * signal whose default is to ignore, or to stop: there is no job control)
 * is discarded when sent, as Linux does for an unblocked one; SIG_DFL with
 * a terminating default ends the handler as a crash with that signal.
 * A caught signal is left pending on its thread (a process-directed one on
 * the first thread not blocking it) and delivered when that thread next
 * returns to user mode: at the end of a system call, or when a blocked
 * thread is woken for it (its call fails with EINTR, or restarts for
 * SA_RESTART where Linux restarts it). Standard and real-time signals alike
 * are pending at most once (real-time signals are not queued).
 *
 * The frame built on the user (or alternate) stack is Linux's rt_sigframe:
 * the return address (sa_restorer), a struct ucontext (with struct
 * sigcontext and the saved mask), a siginfo, and the FXSAVE image the
 * sigcontext points to; rt_sigreturn reads it back, so a handler that edits
 * the context (Go moves RIP to inject a panic or a preemption) resumes
 * where it said.
 */
#include "kernel.h"

#define NSIG 64
#define SIG_DFL 0
#define SIG_IGN 1
#define SA_SIGINFO 0x4
#define SA_ONSTACK 0x08000000
#define SA_RESTART 0x10000000
#define SA_NODEFER 0x40000000
#define SA_RESETHAND 0x80000000
#define SA_RESTORER 0x04000000
#define SS_ONSTACK 1
#define SS_DISABLE 2
#define SS_AUTODISARM (1u << 31)
#define MINSIGSTKSZ 2048
#define SIG_BLOCK 0
#define SIG_UNBLOCK 1
#define SIG_SETMASK 2

#define SIGKILL 9
#define SIGSTOP 19
#define SIGSEGV 11
#define BIT(sig) (1ULL << ((sig) - 1))
#define UNBLOCKABLE (BIT(SIGKILL) | BIT(SIGSTOP))

/* The kernel's struct sigaction on x86-64 (not the C library's). */
struct ksigaction {
	uint64_t handler, flags, restorer, mask;
};

/* struct sigcontext (x86-64 uapi/asm/sigcontext.h), 256 bytes. */
struct ksigcontext {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2;
	uint64_t fpstate;
	uint64_t reserved1[8];
};

struct kucontext {
	uint64_t uc_flags, uc_link;
	uint64_t ss_sp;
	uint32_t ss_flags, ss_pad;
	uint64_t ss_size;
	struct ksigcontext mc;
	uint64_t sigmask;
};

struct ksiginfo {
	int32_t signo, errno_, code, pad;
	union {
		struct { int32_t pid; uint32_t uid; } kill;
		uint64_t addr;
		uint8_t raw[112];
	} u;
};

struct rt_sigframe {
	uint64_t pretcode;
	struct kucontext uc;
	struct ksiginfo info;
};
_Static_assert(sizeof(struct ksigcontext) == 256, "sigcontext");
_Static_assert(sizeof(struct kucontext) == 304, "ucontext");
_Static_assert(sizeof(struct ksiginfo) == 128, "siginfo");
_Static_assert(sizeof(struct rt_sigframe) == 440, "rt_sigframe");

#define UC_SIGCONTEXT_SS 2
#define UC_STRICT_RESTORE_SS 4
/* The RFLAGS bits a signal return may change (Linux's FIX_EFLAGS). */
#define FIX_EFLAGS 0x50dd5ULL /* AC OF DF TF SF ZF AF PF CF RF */
#define FXSAVE_SIZE 512

static struct ksigaction actions[NSIG + 1];
static uint64_t shared_pending;
/* si_code of each pending signal (SI_USER, SI_TKILL, SI_KERNEL...): the
 * rest of a kill's siginfo is constant here (pid 1, uid 0). */
static int16_t shared_code[NSIG + 1];

enum { DFL_TERM, DFL_IGN };
static int default_action(int sig)
{
	switch (sig) {
	case 17: /* SIGCHLD */
	case 18: /* SIGCONT */
	case 23: /* SIGURG */
	case 28: /* SIGWINCH */
	/* Stop signals: no job control, so stopping would only hang. */
	case 19: /* SIGSTOP */
	case 20: /* SIGTSTP */
	case 21: /* SIGTTIN */
	case 22: /* SIGTTOU */
		return DFL_IGN;
	default:
		return DFL_TERM;
	}
}

static bool ignored(int sig)
{
	return actions[sig].handler == SIG_IGN ||
	       (actions[sig].handler == SIG_DFL &&
		default_action(sig) == DFL_IGN);
}

static const char *const sig_names[NSIG + 1] = {
	[1] = "SIGHUP", [2] = "SIGINT", [3] = "SIGQUIT", [4] = "SIGILL",
	[5] = "SIGTRAP", [6] = "SIGABRT", [7] = "SIGBUS", [8] = "SIGFPE",
	[9] = "SIGKILL", [10] = "SIGUSR1", [11] = "SIGSEGV", [12] = "SIGUSR2",
	[13] = "SIGPIPE", [14] = "SIGALRM", [15] = "SIGTERM",
};

/* Ends the process as killed by sig (no handler, or one it cannot run). */
__attribute__((noreturn)) static void die_of(int sig, const char *why)
{
	char msg[128];

	ksnprintf(msg, sizeof(msg), "handler killed by signal %d%s%s%s%s", sig,
		  sig_names[sig] ? " (" : "", sig_names[sig] ? sig_names[sig] : "",
		  sig == 6 ? ": abort" : "", sig_names[sig] ? ")" : "");
	if (why)
		ksnprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), ": %s",
			  why);
	kprintf("%s\n", msg);
	stdio_report_end(EMBER_ERR_CRASH, msg);
	micro_exit_vm(MICRO_EXIT_SIGNAL_BASE + (uint32_t)sig);
}

bool signal_pending(const struct thread *t)
{
	return ((t->sigpending | shared_pending) & ~t->sigmask) != 0;
}

/* Interrupts t's wait, if it waits interruptibly, so it sees the signal. */
static void kick(struct thread *t)
{
	if (t->state == THREAD_BLOCKED && (t->block_flags & SCHED_INTR))
		sched_wake_thread(t, WAKE_SIGNAL);
}

int signal_send(struct thread *t, int sig, int code)
{
	uint64_t b = BIT(sig);

	if (sig < 1 || sig > NSIG)
		return -EINVAL;
	if (!t) {
		/* Process-directed: the first thread that does not block
		 * it takes it (the current one first, as Linux prefers). */
		struct thread *x = sched_cur;

		if (x->sigmask & b)
			for (x = sched_first(); x && (x->sigmask & b);
			     x = sched_next(x))
				;
		if (!x) {
			/* Blocked everywhere: it waits, even if ignored
			 * now (the disposition may change before). */
			shared_pending |= b;
			shared_code[sig] = (int16_t)code;
			return 0;
		}
		t = x;
	}
	if (!(t->sigmask & b) && ignored(sig))
		return 0;
	if (!(t->sigmask & b) && actions[sig].handler == SIG_DFL)
		die_of(sig, NULL); /* its default is to terminate */
	t->sigpending |= b;
	t->sig_code[sig] = (int16_t)code;
	kick(t);
	return 0;
}

/* Where the frame goes: below the red zone of the interrupted stack, or
 * at the top of the alternate stack. */
static uint64_t frame_base(struct thread *t, const struct micro_regs *r,
			   const struct ksigaction *a)
{
	uint64_t sp = r->rsp;
	bool on_alt = t->ss_size && sp - t->ss_sp < t->ss_size;

	if ((a->flags & SA_ONSTACK) && t->ss_size &&
	    !(t->ss_flags & SS_DISABLE) && !on_alt) {
		sp = t->ss_sp + t->ss_size;
	} else {
		sp -= 128; /* the red zone */
	}
	return sp;
}

/*
 * Builds the frame for sig on thread t, whose user registers are r, and
 * points r at the handler. A frame that does not fit in mapped memory, or
 * a handler without a restorer, ends the process with SIGSEGV, as Linux's
 * force_sigsegv does.
 */
static void setup_frame(struct thread *t, struct micro_regs *r, int sig,
			int code, uint64_t addr, const struct fault_info *fi)
{
	struct ksigaction *a = &actions[sig];
	struct rt_sigframe f;
	uint64_t sp, fp, frame;
	struct ksigcontext *sc = &f.uc.mc;

	if (!(a->flags & SA_RESTORER))
		die_of(SIGSEGV, "signal handler without SA_RESTORER");
	sp = frame_base(t, r, a);
	fp = (sp - FXSAVE_SIZE) & ~63ULL;
	frame = ((fp - sizeof(f)) & ~15ULL) - 8; /* as after a CALL */
	if (!mm_access_ok((void *)(uintptr_t)frame, sp - frame))
		die_of(SIGSEGV, "no room for the signal frame");

	memset(&f, 0, sizeof(f));
	f.pretcode = a->restorer;
	f.uc.uc_flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
	f.uc.ss_sp = t->ss_sp;
	f.uc.ss_size = t->ss_size;
	f.uc.ss_flags = !t->ss_size || (t->ss_flags & SS_DISABLE) ?
				SS_DISABLE :
			r->rsp - t->ss_sp < t->ss_size ? SS_ONSTACK : 0;
	sc->r8 = r->r8, sc->r9 = r->r9, sc->r10 = r->r10, sc->r11 = r->r11;
	sc->r12 = r->r12, sc->r13 = r->r13, sc->r14 = r->r14, sc->r15 = r->r15;
	sc->rdi = r->rdi, sc->rsi = r->rsi, sc->rbp = r->rbp, sc->rbx = r->rbx;
	sc->rdx = r->rdx, sc->rax = r->rax, sc->rcx = r->rcx, sc->rsp = r->rsp;
	sc->rip = r->rip, sc->eflags = r->rflags;
	sc->cs = 0x33, sc->ss = 0x2b; /* what Linux user code sees */
	if (fi) {
		sc->err = fi->err;
		sc->trapno = fi->vector;
		sc->cr2 = fi->cr2;
	}
	sc->oldmask = t->sigmask;
	sc->fpstate = fp;
	f.uc.sigmask = t->saved_mask_valid ? t->saved_mask : t->sigmask;
	t->saved_mask_valid = false;
	f.info.signo = sig;
	f.info.code = code;
	if (fi)
		f.info.u.addr = addr;
	else
		f.info.u.kill.pid = 1; /* uid 0 */

	/* The FPU state as the interrupted code left it (the kernel never
	 * touches it); bytes 464..511 stay zero: no XSAVE magic. */
	memset((void *)(uintptr_t)fp, 0, FXSAVE_SIZE);
	__asm__ volatile("fxsave64 (%0)" : : "r"(fp) : "memory");
	memset((void *)(uintptr_t)(fp + 464), 0, FXSAVE_SIZE - 464);
	memcpy((void *)(uintptr_t)frame, &f, sizeof(f));

	/* Handler context: Linux's register values at entry. */
	if ((a->flags & SA_ONSTACK) && t->ss_size &&
	    (t->ss_flags & SS_AUTODISARM))
		t->ss_sp = 0, t->ss_size = 0, t->ss_flags = SS_DISABLE;
	t->sigmask |= a->mask & ~UNBLOCKABLE;
	if (!(a->flags & SA_NODEFER))
		t->sigmask |= BIT(sig);
	if (a->flags & SA_RESETHAND)
		a->handler = SIG_DFL, a->flags &= ~SA_SIGINFO;
	r->rsp = frame;
	r->rip = a->handler;
	r->rdi = (uint64_t)sig;
	r->rsi = frame + offsetof(struct rt_sigframe, info);
	r->rdx = frame + offsetof(struct rt_sigframe, uc);
	r->rax = 0;
	r->rflags &= ~(0x100ULL | 0x400ULL); /* TF, DF: as Linux clears */
	r->orig_rax = (uint64_t)-1;
}

/* The lowest pending, unblocked signal of t (thread set first), taken
 * off its set; 0 if none. */
static int take(struct thread *t, int *code)
{
	uint64_t own = t->sigpending & ~t->sigmask;
	uint64_t sh = shared_pending & ~t->sigmask;
	int sig;

	if (own) {
		sig = __builtin_ctzll(own) + 1;
		t->sigpending &= ~BIT(sig);
		*code = t->sig_code[sig];
	} else if (sh) {
		sig = __builtin_ctzll(sh) + 1;
		shared_pending &= ~BIT(sig);
		*code = shared_code[sig];
	} else {
		return 0;
	}
	return sig;
}

/* Linux's handling of an interrupted call on the way out: restart it
 * (RIP back over the 2-byte SYSCALL, RAX the number again) unless a
 * handler without SA_RESTART runs. */
static void fix_restart(struct micro_regs *r, const struct ksigaction *a)
{
	if (r->orig_rax == (uint64_t)-1)
		return;
	if ((int64_t)r->rax == -ERESTARTSYS) {
		if (a && !(a->flags & SA_RESTART)) {
			r->rax = (uint64_t)-EINTR;
		} else {
			r->rax = r->orig_rax;
			r->rip -= 2;
		}
	} else if ((int64_t)r->rax == -ERESTARTNOHAND) {
		if (a) {
			r->rax = (uint64_t)-EINTR;
		} else {
			r->rax = r->orig_rax;
			r->rip -= 2;
		}
	}
}

void signal_deliver(struct micro_regs *r)
{
	struct thread *t = sched_cur;
	int sig, code;

	while ((sig = take(t, &code))) {
		struct ksigaction *a = &actions[sig];

		if (ignored(sig))
			continue; /* ignored after it was sent */
		if (a->handler == SIG_DFL)
			die_of(sig, NULL);
		fix_restart(r, a);
		setup_frame(t, r, sig, code, 0, NULL);
		return; /* one frame per return; the rest after sigreturn */
	}
	fix_restart(r, NULL);
	if (t->saved_mask_valid) {
		/* rt_sigsuspend woke but nothing ran: its mask goes back. */
		t->sigmask = t->saved_mask;
		t->saved_mask_valid = false;
	}
}

bool signal_fault(struct micro_regs *r, int sig, int code,
		  const struct fault_info *fi)
{
	struct thread *t = sched_cur;
	struct ksigaction *a = &actions[sig];

	/* As Linux's force_sig_fault: a blocked or ignored fault signal
	 * cannot be delivered, and the process dies of it. */
	if ((t->sigmask & BIT(sig)) || a->handler == SIG_IGN ||
	    a->handler == SIG_DFL)
		return false;
	setup_frame(t, r, sig, code, fi->cr2, fi);
	return true;
}

long sys_rt_sigreturn(struct micro_regs *r)
{
	struct thread *t = sched_cur;
	uint64_t frame = r->rsp - 8; /* the handler's RET popped pretcode */
	struct rt_sigframe f;
	const struct ksigcontext *sc = &f.uc.mc;

	if (!mm_access_ok((void *)(uintptr_t)frame, sizeof(f)))
		die_of(SIGSEGV, "rt_sigreturn with a bad frame");
	memcpy(&f, (void *)(uintptr_t)frame, sizeof(f));
	r->r8 = sc->r8, r->r9 = sc->r9, r->r10 = sc->r10, r->r11 = sc->r11;
	r->r12 = sc->r12, r->r13 = sc->r13, r->r14 = sc->r14, r->r15 = sc->r15;
	r->rdi = sc->rdi, r->rsi = sc->rsi, r->rbp = sc->rbp, r->rbx = sc->rbx;
	r->rdx = sc->rdx, r->rcx = sc->rcx, r->rsp = sc->rsp, r->rip = sc->rip;
	r->rflags = (r->rflags & ~FIX_EFLAGS) | (sc->eflags & FIX_EFLAGS);
	r->orig_rax = (uint64_t)-1; /* no restart of rt_sigreturn itself */
	if (r->rip >= (1ULL << 47) || r->rsp >= (1ULL << 47))
		die_of(SIGSEGV, "rt_sigreturn to a non-canonical address");
	t->sigmask = f.uc.sigmask & ~UNBLOCKABLE;
	if (sc->fpstate) {
		uint8_t fx[FXSAVE_SIZE] __attribute__((aligned(16)));
		uint32_t mxcsr, mask;

		if ((sc->fpstate & 15) ||
		    !mm_access_ok((void *)(uintptr_t)sc->fpstate, FXSAVE_SIZE))
			die_of(SIGSEGV, "rt_sigreturn with a bad FPU state");
		memcpy(fx, (void *)(uintptr_t)sc->fpstate, FXSAVE_SIZE);
		/* A reserved MXCSR bit would fault FXRSTOR (#GP). */
		memcpy(&mxcsr, fx + 24, 4);
		memcpy(&mask, fx + 28, 4);
		mxcsr &= mask ? mask : 0xffbf;
		memcpy(fx + 24, &mxcsr, 4);
		__asm__ volatile("fxrstor64 (%0)" : : "r"(fx) : "memory");
	}
	/* The alternate stack as it was (SS_AUTODISARM re-arms here). */
	if (!(f.uc.ss_flags & SS_DISABLE) && f.uc.ss_size >= MINSIGSTKSZ &&
	    !(r->rsp - f.uc.ss_sp < f.uc.ss_size)) {
		t->ss_sp = f.uc.ss_sp;
		t->ss_size = f.uc.ss_size;
		t->ss_flags = f.uc.ss_flags & SS_AUTODISARM;
	}
	return (long)sc->rax;
}

long sys_rt_sigaction(int sig, const void *act, void *oact, uint64_t size)
{
	struct ksigaction na;

	if (size != 8)
		return -EINVAL;
	if (sig < 1 || sig > NSIG)
		return -EINVAL;
	if (act && !mm_access_ok(act, sizeof(na)))
		return -EFAULT;
	if (oact && !mm_access_ok(oact, sizeof(na)))
		return -EFAULT;
	if (act && (sig == SIGKILL || sig == SIGSTOP))
		return -EINVAL;
	if (oact)
		memcpy(oact, &actions[sig], sizeof(na));
	if (act) {
		memcpy(&na, act, sizeof(na));
		na.mask &= ~UNBLOCKABLE;
		actions[sig] = na;
		if (ignored(sig)) {
			/* POSIX: setting SIG_IGN discards pending ones. */
			shared_pending &= ~BIT(sig);
			for (struct thread *t = sched_first(); t;
			     t = sched_next(t))
				t->sigpending &= ~BIT(sig);
		}
	}
	return 0;
}

long sys_rt_sigprocmask(int how, const void *set, void *oset, uint64_t size)
{
	struct thread *t = sched_cur;
	uint64_t s;

	if (size != 8)
		return -EINVAL;
	if (oset && !mm_access_ok(oset, 8))
		return -EFAULT;
	if (set) {
		if (!mm_access_ok(set, 8))
			return -EFAULT;
		memcpy(&s, set, 8);
	}
	if (oset)
		memcpy(oset, &t->sigmask, 8);
	if (!set)
		return 0;
	switch (how) {
	case SIG_BLOCK:
		t->sigmask |= s;
		break;
	case SIG_UNBLOCK:
		t->sigmask &= ~s;
		break;
	case SIG_SETMASK:
		t->sigmask = s;
		break;
	default:
		return -EINVAL;
	}
	t->sigmask &= ~UNBLOCKABLE;
	return 0;
}

long sys_rt_sigpending(void *set, uint64_t size)
{
	uint64_t p = (sched_cur->sigpending | shared_pending) &
		     sched_cur->sigmask;

	if (size > 8)
		return -EINVAL;
	if (!mm_access_ok(set, size))
		return -EFAULT;
	memcpy(set, &p, size);
	return 0;
}

long sys_rt_sigsuspend(const void *mask, uint64_t size)
{
	struct thread *t = sched_cur;
	uint64_t m;

	if (size != 8)
		return -EINVAL;
	if (!mm_access_ok(mask, 8))
		return -EFAULT;
	memcpy(&m, mask, 8);
	t->saved_mask = t->sigmask;
	t->saved_mask_valid = true;
	t->sigmask = m & ~UNBLOCKABLE;
	while (sched_block(&t->sigmask, 0, SCHED_NEVER, SCHED_INTR) !=
	       WAKE_SIGNAL)
		;
	return -ERESTARTNOHAND; /* EINTR after the handler ran */
}

long sys_pause(void)
{
	while (sched_block(&sched_cur->sigmask, 0, SCHED_NEVER, SCHED_INTR) !=
	       WAKE_SIGNAL)
		;
	return -ERESTARTNOHAND;
}

long sys_sigaltstack(const void *uss, void *uoss, const struct micro_regs *r)
{
	struct thread *t = sched_cur;
	struct { uint64_t sp; uint32_t flags, pad; uint64_t size; } ss, old;
	bool on = t->ss_size && r->rsp - t->ss_sp < t->ss_size;

	if (uoss && !mm_access_ok(uoss, sizeof(old)))
		return -EFAULT;
	if (uss) {
		if (!mm_access_ok(uss, sizeof(ss)))
			return -EFAULT;
		memcpy(&ss, uss, sizeof(ss));
	}
	memset(&old, 0, sizeof(old));
	old.sp = t->ss_sp;
	old.size = t->ss_size;
	old.flags = !t->ss_size || (t->ss_flags & SS_DISABLE) ?
			    SS_DISABLE :
		    (on ? SS_ONSTACK : 0) | (t->ss_flags & SS_AUTODISARM);
	if (uss) {
		uint32_t mode = ss.flags & ~SS_AUTODISARM;

		if (on)
			return -EPERM;
		if (mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK)
			return -EINVAL;
		if (mode == SS_DISABLE) {
			t->ss_sp = t->ss_size = 0;
			t->ss_flags = SS_DISABLE;
		} else {
			if (ss.size < MINSIGSTKSZ)
				return -ENOMEM;
			t->ss_sp = ss.sp;
			t->ss_size = ss.size;
			t->ss_flags = ss.flags & SS_AUTODISARM;
		}
	}
	if (uoss)
		memcpy(uoss, &old, sizeof(old));
	return 0;
}

/* kill(pid, sig): this is process 1, the only one. */
long sys_kill(int pid, int sig)
{
	if (sig < 0 || sig > NSIG)
		return -EINVAL;
	if (pid != 1 && pid != 0 && pid != -1)
		return -ESRCH;
	return sig ? signal_send(NULL, sig, SI_USER) : 0;
}

long sys_tgkill(int tgid, int tid, int sig)
{
	struct thread *t;

	if (sig < 0 || sig > NSIG || tid <= 0 || (tgid != -1 && tgid <= 0))
		return -EINVAL;
	if (tgid != -1 && tgid != 1)
		return -ESRCH;
	t = sched_find(tid);
	if (!t)
		return -ESRCH;
	return sig ? signal_send(t, sig, SI_TKILL) : 0;
}
