/*
 * trap.c - the handler's crashes and the kernel's own failures.
 *
 * The VMM reflects every CPU exception to exception_entry (entry.S), which
 * calls micro_exception() on a private stack. A fault in the handler is
 * reported to the host as an ERROR frame (EMBER_ERR_CRASH) naming the cause
 * (vector, RIP, address), and the VM ends with 128 + the signal Linux would
 * have sent (SIGSEGV -> 139, ...). A fault in this kernel is a bug: it ends
 * with MICRO_EXIT_PANIC. Nothing is resumed.
 */
#include "kernel.h"

extern char _start[], __image_end[];

#define SIGILL 4
#define SIGTRAP 5
#define SIGBUS 7
#define SIGFPE 8
#define SIGSEGV 11

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

void micro_exception(uint64_t vector, uint64_t err, uint64_t rip,
		     uint64_t cr2, uint64_t rsp)
{
	const char *name = vector < 32 && vectors[vector].name ?
				   vectors[vector].name :
				   "unknown exception";
	int sig = vector < 32 && vectors[vector].sig ? vectors[vector].sig :
						       SIGSEGV;
	static bool in_exception;
	char msg[256];
	int n;

	if (in_exception) {
		/* Faulted while reporting a fault: give up at once. */
		serial_write("micro: fault in the fault path\n", 31);
		micro_exit_vm(MICRO_EXIT_PANIC);
	}
	in_exception = true;
	if (rip >= (uint64_t)(uintptr_t)_start &&
	    rip < (uint64_t)(uintptr_t)__image_end)
		panic("%s (vector %lu) in the micro guest at RIP 0x%lx, "
		      "address 0x%lx, error 0x%lx", name, vector, rip, cr2, err);

	n = ksnprintf(msg, sizeof(msg), "handler crashed: %s (vector %lu, "
		      "SIG%s) at RIP 0x%lx", name, vector,
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
