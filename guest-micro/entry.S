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
 * RSP is parked in a RIP-relative global: the kernel is single-threaded and
 * never makes a system call itself, so entries never nest. The handler's
 * stack is never written (its red zone below RSP stays intact).
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

	.text
ENTRY(syscall_entry)
	mov	%rsp, micro_user_rsp(%rip)
	lea	micro_kstack_top(%rip), %rsp
	/* struct micro_regs, last member first. */
	push	%rax
	push	%rdi
	push	%rsi
	push	%rdx
	push	%r10
	push	%r8
	push	%r9
	push	%rcx
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
	mov	%cs, %eax
	and	$3, %eax
	mov	%eax, micro_cur_cpl(%rip)
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbp
	pop	%rbx
	pop	%r11
	pop	%rcx
	pop	%r9
	pop	%r8
	pop	%r10
	pop	%rdx
	pop	%rsi
	pop	%rdi
	pop	%rax
	cmpl	$0, micro_cur_cpl(%rip)
	jne	1f
	/* CPL0 (hardware): back to CPL3 with RIP = RCX, RFLAGS = R11. */
	mov	micro_user_rsp(%rip), %rsp
	sysretq
1:	/* CPL3 (PVM): POPFQ on our stack, so the handler's is untouched;
	 * MOV and JMP leave the restored flags alone. */
	push	%r11
	popfq
	mov	micro_user_rsp(%rip), %rsp
	jmp	*%rcx

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

	.bss
	.balign 16
	.globl micro_user_rsp
micro_user_rsp:	.quad 0
micro_cur_cpl:	.long 0
	.balign 4096
	.space	65536
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
