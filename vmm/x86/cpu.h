/*
 * cpu.h - x86-64 CPU state for booting: CPUID templates, descriptor tables,
 * identity page tables, control registers, MSRs and the LAPIC.
 *
 * Owns: the boot-time layout of the tables in low guest memory (see
 * ember/abi.h for the addresses) and the initial register state of each
 * vCPU. The table builders and the CPUID filter are pure functions over
 * guest memory / plain arrays (unit-tested); the cpu_setup_* functions issue
 * vCPU ioctls and are called once per vCPU before its first KVM_RUN.
 */
#ifndef EMBER_CPU_H
#define EMBER_CPU_H

#include <stdbool.h>
#include <stdint.h>

#include "../mem.h"

struct kvm_cpuid2;

enum cpu_template {
	CPU_TEMPLATE_HOST = 0, /* what KVM supports, minus nothing */
	CPU_TEMPLATE_PVM = 1,  /* hides what the PVM emulator cannot run */
};

enum boot_kind {
	BOOT_LINUX = 0, /* 64-bit Linux boot protocol, CPL0 */
	BOOT_PLAIN = 1, /* a plain ELF at CPL3 (or CPL0 when asked) */
};

/* Parses "host" / "pvm"; -EINVAL otherwise. */
int cpu_template_parse(const char *s, enum cpu_template *t);
const char *cpu_template_name(enum cpu_template t);

/*
 * What a template hides, as (leaf, subleaf, register, mask) rows, exported so
 * that tests and `--help` can show it. `any_subleaf` rows apply to every
 * subleaf of the leaf; a NULL `feature` ends the table.
 */
struct cpu_hidden {
	uint32_t leaf;
	uint32_t subleaf;
	bool any_subleaf;
	unsigned reg; /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	uint32_t mask;
	const char *feature;
};
const struct cpu_hidden *cpu_template_hidden(enum cpu_template t);

/*
 * Rewrites a copy of KVM's supported CPUID for vCPU `vcpu_id` of `nr_cpus`:
 * applies the template's hidden bits, sets the APIC IDs (leaf 1 EBX, leaf
 * 0xB EDX), the hypervisor bit and the logical processor count. Pure.
 */
void cpu_filter_cpuid(struct kvm_cpuid2 *cpuid, enum cpu_template t,
		      unsigned vcpu_id, unsigned nr_cpus);

/* Kernel command-line words a Linux guest needs under template `t` (the
 * emulator ignores some CPUID bits, so Linux must be told too). "" if none. */
const char *cpu_template_linux_cmdline(enum cpu_template t);

/*
 * Writes the GDT, identity page tables (4 GiB in 2 MiB pages) and, for
 * BOOT_PLAIN, the TSS, IDT and exception stubs into low guest memory. For
 * BOOT_PLAIN pages are user-accessible and page 0 is left unmapped.
 * Returns 0 or -EFAULT when RAM is too small to hold them.
 */
int cpu_write_boot_tables(const struct guest_mem *mem, enum boot_kind kind);

/* Segment selectors of the boot GDT for `kind`. */
uint16_t cpu_boot_cs(enum boot_kind kind, unsigned cpl);
uint16_t cpu_boot_ds(enum boot_kind kind, unsigned cpl);

struct cpu_boot {
	enum boot_kind kind;
	unsigned cpl;          /* BOOT_PLAIN: 3 (default) or 0 */
	uint64_t rip, rsp, rdi, rsi;
	bool syscall;          /* BOOT_PLAIN: enable SYSCALL with LSTAR */
	uint64_t lstar;
};

/* Sets sregs (long mode, paging, segments), regs, FPU and boot MSRs of the
 * bootstrap vCPU. 0 or -errno. */
int cpu_setup_bsp(int vcpu_fd, const struct cpu_boot *b);

/* Sets CPUID (filtered) on a vCPU. 0 or -errno. */
int cpu_setup_cpuid(int vcpu_fd, const struct kvm_cpuid2 *supported,
		    enum cpu_template t, unsigned vcpu_id, unsigned nr_cpus);

/* Programs LINT0 as ExtINT and LINT1 as NMI (the in-kernel irqchip's reset
 * state leaves them masked). 0 or -errno. */
int cpu_setup_lapic(int vcpu_fd);

/* Exception vectors that push an error code. */
bool cpu_vector_has_error_code(unsigned vector);
const char *cpu_vector_name(unsigned vector);

#endif
