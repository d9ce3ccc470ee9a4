/*
 * crt0.S - entry point of Ember's freestanding test guests.
 *
 * The VMM starts a plain-ELF guest in 64-bit mode at CPL3 with
 * RIP = e_entry, RDI = gpa of struct ember_boot_info and RSP = top of low
 * RAM, 16-byte aligned (vmm/include/ember/abi.h). There is no caller to
 * return to: rt_start() never returns.
 */
	.section .text.entry, "ax"
	.globl _start
	.type _start, @function
_start:
	xorl	%ebp, %ebp		/* terminate frame-pointer walks */
	andq	$-16, %rsp		/* SysV ABI: 16-byte aligned before call */
	call	rt_start		/* rdi = boot info, passed through */
1:	jmp	1b
	.size _start, . - _start

	.section .note.GNU-stack, "", @progbits
