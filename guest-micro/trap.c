/*
 * trap.c - CPU exceptions: the handler's page faults, signals and crashes,
 * and the kernel's own failures.
 *
 * The VMM reflects every CPU exception to exception_entry (entry.S) with the
 * whole interrupted context (struct ember_xframe). A fault in the handler
 * comes to micro_user_fault() as a register frame: a page fault in a lazily
 * backed mapping is served (vma.c) and the thread resumes; otherwise the
 * signal Linux would send (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP) goes to
 * the handler's signal handler if it has one (Go turns nil dereferences
 * into panics that way); otherwise the handler crashed: an ERROR frame
 * (EMBER_ERR_CRASH) naming the cause (vector, RIP, address) goes to the
 * host, and the VM ends with 128 + the signal (SIGSEGV -> 139, ...). A fault
 * in this kernel is a bug: micro_exception() ends the VM with
 * MICRO_EXIT_PANIC.
 */
#include "kernel.h"

extern char _start[], __image_end[];

#define SIGILL 4
#define SIGTRAP 5
#define SIGBUS 7
#define SIGFPE 8
#define SIGSEGV 11
#define SIGKILL 9
/* si_code values (asm-generic/siginfo.h). */
#define SEGV_MAPERR 1
#define SEGV_ACCERR 2
#define ILL_ILLOPN 2
#define FPE_INTDIV 1
#define FPE_FLTINV 7
#define BUS_ADRALN 1
#define TRAP_BRKPT 1

_Static_assert(EMBER_XFRAME_GPA == 0x5c00 &&
		       offsetof(struct ember_xframe, rip) == 16 * 8 &&
		       offsetof(struct ember_xframe, vector) == 20 * 8 &&
		       offsetof(struct ember_xframe, cr2) == 22 * 8,
	       "entry.S reads struct ember_xframe by these offsets");

static const struct {
	const char *name;
	int sig;
} vectors[32] = {
	[0] = { "divide error", SIGFPE },
	[1] = { "debug trap", SIGTRAP },
	[3] = { "breakpoint (int3)", SIGTRAP },
	[4] = { "overflow (into)", SIGSEGV },
	[5] = { "bound range exceeded", SIGSEGV },
	[6] = { "invalid opcode", SIGILL },
	[7] = { "FPU not available", SIGSEGV },
	[10] = { "invalid TSS", SIGSEGV },
	[11] = { "segment not present", SIGBUS },
	[12] = { "stack-segment fault", SIGBUS },
	[13] = { "general protection fault", SIGSEGV },
	[14] = { "page fault", SIGSEGV },
	[16] = { "x87 floating-point error", SIGFPE },
	[17] = { "alignment check", SIGBUS },
	[19] = { "SIMD floating-point error", SIGFPE },
};

void panic(const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	kvsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	kprintf("PANIC: %s\n", msg);
	stdio_report_end(EMBER_ERR_INTERNAL, msg);
	micro_exit_vm(MICRO_EXIT_PANIC);
}

static const char *vector_name(uint64_t vector)
{
	return vector < 32 && vectors[vector].name ? vectors[vector].name :
						     "unknown exception";
}

/* A fault inside this kernel: a bug. */
void micro_exception(uint64_t vector, uint64_t err, uint64_t rip,
		     uint64_t cr2, uint64_t rsp)
{
	static bool in_exception;

	if (in_exception) {
		/* Faulted while reporting a fault: give up at once. */
		serial_write("micro: fault in the fault path\n", 31);
		micro_exit_vm(MICRO_EXIT_PANIC);
	}
	in_exception = true;
	panic("%s (vector %lu) in the micro guest at RIP 0x%lx, address 0x%lx, "
	      "error 0x%lx, RSP 0x%lx", vector_name(vector), vector, rip, cr2,
	      err, rsp);
}

/* The handler crashed: report, end the VM with 128 + sig. */
__attribute__((noreturn)) static void crash(uint64_t vector, uint64_t err,
					    uint64_t rip, uint64_t cr2,
					    uint64_t rsp, int sig)
{
	char msg[256];
	int n;

	n = ksnprintf(msg, sizeof(msg), "handler crashed: %s (vector %lu, "
		      "SIG%s) at RIP 0x%lx", vector_name(vector), vector,
		      sig == SIGSEGV ? "SEGV" : sig == SIGFPE ? "FPE" :
		      sig == SIGILL ? "ILL" : sig == SIGBUS ? "BUS" : "TRAP",
		      rip);
	if (vector == 14) {
		/* A fault just below the stack (its guard) is an overflow. */
		bool overflow = micro_stack_lo && cr2 < micro_stack_lo &&
				cr2 + (2ULL << 20) >= micro_stack_lo;
		n += ksnprintf(msg + n, sizeof(msg) - (size_t)MIN(n, 255),
			       ", address 0x%lx (%s%s)%s", cr2,
			       err & 2 ? "write" : "read",
			       err & 1 ? ", protection" : ", not mapped",
			       overflow ? ": stack overflow" : "");
	} else if (err) {
		n += ksnprintf(msg + n, sizeof(msg) - (size_t)MIN(n, 255),
			       ", error code 0x%lx", err);
	}
	ksnprintf(msg + MIN(n, 255), sizeof(msg) - (size_t)MIN(n, 255),
		  ", RSP 0x%lx", rsp);
	kprintf("%s\n", msg);
	stdio_report_end(EMBER_ERR_CRASH, msg);
	micro_exit_vm(MICRO_EXIT_SIGNAL_BASE + (uint32_t)sig);
}

/* The si_code Linux gives this fault. */
static int fault_code(uint64_t vector, uint64_t err)
{
	switch (vector) {
	case 14:
		return err & 1 ? SEGV_ACCERR : SEGV_MAPERR;
	case 6:
		return ILL_ILLOPN;
	case 0:
		return FPE_INTDIV;
	case 16:
	case 19:
		return FPE_FLTINV;
	case 17:
		return BUS_ADRALN;
	case 1:
	case 3:
		return TRAP_BRKPT;
	default:
		return SI_KERNEL; /* #GP and the rest */
	}
}

void micro_user_fault(struct micro_regs *r, uint64_t vector, uint64_t err,
		      uint64_t cr2)
{
	int sig = vector < 32 && vectors[vector].sig ? vectors[vector].sig :
						       SIGSEGV;
	struct fault_info fi = { vector, err, cr2 };

	if (vector == EMBER_VEC_PREEMPT) {
		sched_tick(r); /* not a fault: the VMM's preemption tick */
		return;
	}
	if (vector == 14) {
		switch (vma_fault(cr2)) {
		case VMA_FAULT_DONE:
			signal_deliver(r);
			return;
		case VMA_FAULT_ACCERR:
			/* Linux: a PROT_NONE page is mapped, the access is
			 * what is wrong. */
			err |= 1;
			break;
		case VMA_FAULT_OOM: {
			char msg[128];

			ksnprintf(msg, sizeof(msg), "handler out of memory: no "
				  "RAM for the page at 0x%lx (RIP 0x%lx)", cr2,
				  r->rip);
			kprintf("%s\n", msg);
			stdio_report_end(EMBER_ERR_OOM, msg);
			micro_exit_vm(MICRO_EXIT_SIGNAL_BASE + SIGKILL);
		}
		default:
			break;
		}
	} else {
		/* The address a signal handler sees for non-page faults. */
		fi.cr2 = vector == 13 ? 0 : r->rip;
	}
	if (signal_fault(r, sig, fault_code(vector, err), &fi)) {
		signal_deliver(r); /* (only pending asynchronous ones: none) */
		return;
	}
	crash(vector, err, r->rip, cr2, r->rsp, sig);
}
