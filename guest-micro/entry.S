/*
 * entry.S - the micro guest's ways in: boot, system calls, exceptions.
 *
 * The VMM starts us in 64-bit mode, usually at CPL3 with IOPL3 (see
 * ember/abi.h), RDI = boot info. System calls arrive at syscall_entry
 * (MSR_LSTAR, from the Ember note below). On hardware virtualization SYSCALL
 * switches to CPL0 and we return with SYSRETQ; on a nested PVM host it stays
 * at CPL3 (shared/PLATFORM.md) and SYSRETQ would fault there, so we return by
 * restoring RFLAGS (from R11) and jumping to RCX. The CPL is read from CS on
 * every call, so one kernel serves both.
 *
 * SYSCALL does not switch stacks, and SWAPGS is privileged, so the handler's
 * RSP is parked in a RIP-relative global just long enough to load the
 * current thread's kernel stack (micro_kstack_cur, set by the scheduler),
 * where it joins the other registers in a struct micro_regs frame (kernel.h).
 * The kernel never makes a system call itself and takes no interrupts, so
 * entries never nest; the one vCPU runs one thread's kernel code at a time.
 * The handler's stack is never written (its red zone below RSP stays
 * intact).
 */
#define ENTRY(x) .globl x; .type x, @function; x:

	.section .text.entry, "ax"
ENTRY(_start)
	lea	micro_kstack_top(%rip), %rsp
	xor	%ebp, %ebp
	call	micro_main		/* (boot info in %rdi), never returns */
	ud2

/* The handler starts with no kernel values in its registers (as on Linux,
 * which clears them at exec): everything but RCX and RSP. */
.macro clear_regs
	xor	%eax, %eax
	xor	%ebx, %ebx
	xor	%edx, %edx
	xor	%esi, %esi
	xor	%edi, %edi
	xor	%ebp, %ebp
	xor	%r8d, %r8d
	xor	%r9d, %r9d
	xor	%r10d, %r10d
	xor	%r11d, %r11d
	xor	%r12d, %r12d
	xor	%r13d, %r13d
	xor	%r14d, %r14d
	xor	%r15d, %r15d
.endm

/* The general registers of a struct micro_regs frame at RSP, in order. */
.macro pop_gprs
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbp
	pop	%rbx
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rax
	pop	%rcx
	pop	%rdx
	pop	%rsi
	pop	%rdi
.endm

/* Offsets in struct micro_regs (kernel.h). */
#define R_RIP	(16 * 8)
#define R_RSP	(19 * 8)

	.text
ENTRY(syscall_entry)
	mov	%rsp, micro_user_rsp(%rip)
	mov	micro_kstack_cur(%rip), %rsp
	/* struct micro_regs, last member first: the IRETQ frame, then the
	 * syscall number, then the general registers. */
	pushq	$0x23			/* ss: EMBER_SEL_UDATA | 3 */
	pushq	micro_user_rsp(%rip)
	push	%r11			/* rflags (SYSCALL put them there) */
	pushq	$0x2b			/* cs: EMBER_SEL_UCODE | 3 */
	push	%rcx			/* rip (SYSCALL put it there) */
	push	%rax			/* orig_rax */
	push	%rdi
	push	%rsi
	push	%rdx
	push	%rcx
	push	%rax
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	push	%rbx
	push	%rbp
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	cld
	mov	%rsp, %rdi
	call	micro_syscall
	/* fall through, RSP = the frame */

/*
 * Back to user mode with every register from the frame at RSP. At CPL0
 * (hardware) that is IRETQ (SYSRETQ would clobber RCX and R11, which a
 * signal return or a preempted thread needs back). At CPL3 (PVM) IRETQ is
 * out of reach (the host's selectors are not ours), so: the frame's RIP and
 * RSP go to globals, the general registers are popped, POPFQ takes RFLAGS
 * from the kernel stack, and MOV and JMP (which leave the flags alone)
 * finish. Nothing can run in between: no interrupts, and the VMM never
 * preempts kernel code.
 */
ENTRY(micro_return_user)
	mov	%cs, %eax
	test	$3, %eax
	jz	3f
	mov	R_RIP(%rsp), %rax
	mov	%rax, micro_ret_rip(%rip)
	mov	R_RSP(%rsp), %rax
	mov	%rax, micro_user_rsp(%rip)
	pop_gprs
	add	$24, %rsp		/* orig_rax, rip, cs */
	popfq
	mov	micro_user_rsp(%rip), %rsp
	jmp	*micro_ret_rip(%rip)
3:	pop_gprs
	add	$8, %rsp		/* orig_rax */
	iretq

/* sched_switch(save_ksp, new_ksp): the kernel side of a thread switch. */
ENTRY(sched_switch)
	push	%rbp
	push	%rbx
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	mov	%rsp, (%rdi)
	mov	%rsi, %rsp
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbx
	pop	%rbp
	ret

/* A new thread's first switch returns here, just below its frame. */
ENTRY(micro_thread_start)
	jmp	micro_return_user

/*
 * The VMM reflects exceptions here (ember/abi.h): rdi = vector, rsi = error
 * code, rdx = RIP, rcx = CR2, r8 = RSP. RSP points below the faulting stack,
 * which may be the very thing that overflowed: switch stacks first.
 */
ENTRY(exception_entry)
	lea	micro_xstack_top(%rip), %rsp
	xor	%ebp, %ebp
	cld
	call	micro_exception		/* does not return */
	ud2

/* micro_enter_user(entry, sp, cpl0): start the handler at CPL3 with the
 * registers Linux gives a new process (all zero; RDX = 0 means no
 * rtld_fini for the C library to register). */
ENTRY(micro_enter_user)
	mov	%rdi, %rcx
	mov	%rsi, %rsp
	test	%edx, %edx
	jnz	2f
	clear_regs		/* all but RCX: the entry address */
	jmp	*%rcx
2:	/* At CPL0: IRETQ to the 64-bit user code segment. */
	pushq	$0x23			/* EMBER_SEL_UDATA | 3 */
	pushq	%rsi
	pushfq
	pushq	$0x2b			/* EMBER_SEL_UCODE | 3 */
	pushq	%rdi
	clear_regs
	xor	%ecx, %ecx
	iretq

	.data
	.balign 8
	.globl micro_kstack_cur
micro_kstack_cur:	.quad micro_kstack_top - 8

	.bss
	.balign 16
micro_user_rsp:	.quad 0
micro_ret_rip:	.quad 0
	.balign 4096
	.space	65536
	.globl micro_kstack_top
micro_kstack_top:
	.space	16384
micro_xstack_top:

/* The Ember note (ember/abi.h EMBER_NOTE_ENTRIES): tells the VMM where our
 * syscall and exception entries are. 4-byte aligned gABI note. */
	.section .note.ember, "a"
	.balign 4
	.long	6			/* namesz: "Ember\0" */
	.long	16			/* descsz */
	.long	0x454d4201		/* EMBER_NOTE_ENTRIES */
	.asciz	"Ember"
	.balign 4
	.quad	syscall_entry
	.quad	exception_entry

	.section .note.GNU-stack, "", @progbits
