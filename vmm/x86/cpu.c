#define LOG_MOD "cpu"
#include "cpu.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "ember/abi.h"
#include "kvm.h"
#include "log.h"

/* Control register and EFER bits (Intel SDM vol. 3, 2.5 and 2.2.1). */
#define CR0_PE (1ULL << 0)
#define CR0_MP (1ULL << 1)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_WP (1ULL << 16)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define CR4_OSFXSR (1ULL << 9)
#define CR4_OSXMMEXCPT (1ULL << 10)
#define CR4_FSGSBASE (1ULL << 16)
#define EFER_SCE (1ULL << 0)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SFMASK 0xc0000084
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MISC_ENABLE_FAST_STRING 1ULL

#define RFLAGS_RESERVED (1ULL << 1)
#define RFLAGS_IOPL3 (3ULL << 12)
#define RFLAGS_TF (1ULL << 8)
#define RFLAGS_IF (1ULL << 9)
#define RFLAGS_DF (1ULL << 10)
#define RFLAGS_AC (1ULL << 18)

#define PTE_P 1ULL
#define PTE_RW 2ULL
#define PTE_US 4ULL
#define PTE_PS 0x80ULL

/* The Linux boot GDT: the 64-bit boot protocol wants __BOOT_CS = 0x10 and
 * __BOOT_DS = 0x18 (Documentation/arch/x86/boot.rst, "64-bit Boot
 * Protocol"). */
#define LINUX_SEL_CS 0x10
#define LINUX_SEL_DS 0x18

/* Flat descriptors. Access byte: P | DPL | S | type; flags: G | D/B | L. */
#define GDT_CODE64(dpl) (0x00af9a000000ffffULL | ((uint64_t)(dpl) << 45))
#define GDT_DATA(dpl) (0x00cf92000000ffffULL | ((uint64_t)(dpl) << 45))
#define GDT_CODE32(dpl) (0x00cf9a000000ffffULL | ((uint64_t)(dpl) << 45))

#define TSS_SIZE 104
/*
 * The I/O permission bitmap after the TSS: one bit per port, 0 = allowed,
 * covering ports 0..0x3ff, then the 0xff byte the SDM requires. On hardware
 * RFLAGS.IOPL = 3 already lets CPL3 use every port; kvm-pvm does not honour
 * the guest's IOPL at CPL3 (an `out` faults with #GP, measured) but does
 * consult this bitmap, so plain guests get both.
 */
#define IOMAP_PORTS 0x400
#define TSS_LIMIT (TSS_SIZE + IOMAP_PORTS / 8 + 1)
#define NR_EXC_VECTORS 32
#define STUB_SIZE 8

enum { REG_EAX, REG_EBX, REG_ECX, REG_EDX };

/*
 * The PVM template. PLATFORM.md lists what the CPL0 emulator cannot run:
 * lock cmpxchg16b (CX16), xrstor (XSAVE and everything that needs it),
 * popcnt, clac/stac (SMAP). A guest is also kept off AVX and friends, which
 * need XSAVE. Hiding a bit here is necessary but not sufficient: the
 * emulator reports some leaf-1 bits whatever KVM_SET_CPUID2 says, so Linux
 * also gets cpu_template_linux_cmdline().
 */
static const struct cpu_hidden pvm_hidden[] = {
	{ 1, 0, true, REG_ECX, 1u << 12, "fma" },
	{ 1, 0, true, REG_ECX, 1u << 13, "cx16" },
	{ 1, 0, true, REG_ECX, 1u << 22, "movbe" },
	{ 1, 0, true, REG_ECX, 1u << 23, "popcnt" },
	{ 1, 0, true, REG_ECX, 1u << 26, "xsave" },
	{ 1, 0, true, REG_ECX, 1u << 27, "osxsave" },
	{ 1, 0, true, REG_ECX, 1u << 28, "avx" },
	{ 1, 0, true, REG_ECX, 1u << 29, "f16c" },
	{ 1, 0, true, REG_ECX, 1u << 30, "rdrand" },
	{ 7, 0, false, REG_EBX, 1u << 5, "avx2" },
	{ 7, 0, false, REG_EBX, 1u << 18, "rdseed" },
	{ 7, 0, false, REG_EBX, 1u << 20, "smap" },
	{ 7, 0, false, REG_EBX, 0xdc230000u, "avx512" },
	{ 7, 0, false, REG_ECX, 0xffffffffu & ~(1u << 2), "leaf7.ecx" },
	{ 7, 0, false, REG_EDX, 0xffffffffu, "leaf7.edx" },
	{ 0xd, 0, true, REG_EAX, 0xffffffffu, "xsave-leaf.eax" },
	{ 0xd, 0, true, REG_EBX, 0xffffffffu, "xsave-leaf.ebx" },
	{ 0xd, 0, true, REG_ECX, 0xffffffffu, "xsave-leaf.ecx" },
	{ 0xd, 0, true, REG_EDX, 0xffffffffu, "xsave-leaf.edx" },
	{ 0x80000001, 0, false, REG_ECX, 1u << 5, "abm" },
	{ 0, 0, false, 0, 0, NULL },
};

static const struct cpu_hidden host_hidden[] = {
	{ 0, 0, false, 0, 0, NULL },
};

int cpu_template_parse(const char *s, enum cpu_template *t)
{
	if (!strcmp(s, "host"))
		*t = CPU_TEMPLATE_HOST;
	else if (!strcmp(s, "pvm"))
		*t = CPU_TEMPLATE_PVM;
	else
		return -EINVAL;
	return 0;
}

const char *cpu_template_name(enum cpu_template t)
{
	return t == CPU_TEMPLATE_PVM ? "pvm" : "host";
}

const struct cpu_hidden *cpu_template_hidden(enum cpu_template t)
{
	return t == CPU_TEMPLATE_PVM ? pvm_hidden : host_hidden;
}

const char *cpu_template_linux_cmdline(enum cpu_template t)
{
	return t == CPU_TEMPLATE_PVM ? "noxsave clearcpuid=popcnt,smap no-kvmclock" : "";
}

static uint32_t *entry_reg(struct kvm_cpuid_entry2 *e, unsigned reg)
{
	switch (reg) {
	case REG_EAX:
		return &e->eax;
	case REG_EBX:
		return &e->ebx;
	case REG_ECX:
		return &e->ecx;
	default:
		return &e->edx;
	}
}

void cpu_filter_cpuid(struct kvm_cpuid2 *cpuid, enum cpu_template t,
		      unsigned vcpu_id, unsigned nr_cpus)
{
	const struct cpu_hidden *h = cpu_template_hidden(t);

	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		for (const struct cpu_hidden *r = h; r->feature; r++) {
			if (e->function != r->leaf)
				continue;
			if (!r->any_subleaf && e->index != r->subleaf)
				continue;
			*entry_reg(e, r->reg) &= ~r->mask;
		}
		switch (e->function) {
		case 1:
			/* EBX[31:24] initial APIC ID, [23:16] logical count. */
			e->ebx = (e->ebx & 0x0000ffffu) | (vcpu_id << 24) |
				 ((nr_cpus & 0xff) << 16);
			e->ecx |= 1u << 31; /* running on a hypervisor */
			break;
		case 0xb:
			e->edx = vcpu_id; /* x2APIC ID */
			break;
		default:
			break;
		}
	}
}

int cpu_setup_cpuid(int vcpu_fd, const struct kvm_cpuid2 *supported,
		    enum cpu_template t, unsigned vcpu_id, unsigned nr_cpus)
{
	size_t size = sizeof(*supported) +
		      supported->nent * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *c = malloc(size);
	int ret = 0;

	if (!c)
		return -ENOMEM;
	memcpy(c, supported, size);
	cpu_filter_cpuid(c, t, vcpu_id, nr_cpus);
	ret = kvm_ioctl_raw(vcpu_fd, KVM_SET_CPUID2, c);
	free(c);
	return ret;
}

uint16_t cpu_boot_cs(enum boot_kind kind, unsigned cpl)
{
	if (kind == BOOT_LINUX)
		return LINUX_SEL_CS;
	return cpl == 3 ? (EMBER_SEL_UCODE | 3) : EMBER_SEL_KCODE;
}

uint16_t cpu_boot_ds(enum boot_kind kind, unsigned cpl)
{
	if (kind == BOOT_LINUX)
		return LINUX_SEL_DS;
	return cpl == 3 ? (EMBER_SEL_UDATA | 3) : EMBER_SEL_KDATA;
}

static int write_u64(const struct guest_mem *mem, gpa_t gpa, uint64_t v)
{
	return mem_write(mem, gpa, &v, sizeof(v));
}

static int write_gdt(const struct guest_mem *mem, enum boot_kind kind)
{
	uint64_t gdt[8] = { 0 };

	if (kind == BOOT_LINUX) {
		gdt[LINUX_SEL_CS / 8] = GDT_CODE64(0);
		gdt[LINUX_SEL_DS / 8] = GDT_DATA(0);
	} else {
		uint64_t base = EMBER_TSS_GPA, limit = TSS_LIMIT - 1;

		gdt[EMBER_SEL_KCODE / 8] = GDT_CODE64(0);
		gdt[EMBER_SEL_KDATA / 8] = GDT_DATA(0);
		gdt[EMBER_SEL_USER32 / 8] = GDT_CODE32(3);
		gdt[EMBER_SEL_UDATA / 8] = GDT_DATA(3);
		gdt[EMBER_SEL_UCODE / 8] = GDT_CODE64(3);
		/* 64-bit available TSS (type 9), present, 16 bytes. */
		gdt[EMBER_SEL_TSS / 8] = (limit & 0xffff) |
					 ((base & 0xffffff) << 16) |
					 (0x89ULL << 40) |
					 ((base >> 24 & 0xff) << 56);
		gdt[EMBER_SEL_TSS / 8 + 1] = base >> 32;
	}
	return mem_write(mem, EMBER_GDT_GPA, gdt, sizeof(gdt));
}

static int write_page_tables(const struct guest_mem *mem, enum boot_kind kind)
{
	uint64_t user = kind == BOOT_PLAIN ? PTE_US : 0;
	uint64_t fl = PTE_P | PTE_RW | user;
	int ret = 0;

	ret |= write_u64(mem, EMBER_PML4_GPA, EMBER_PDPT_GPA | fl);
	for (uint64_t i = 0; i < 4; i++) {
		gpa_t pd = EMBER_PD_GPA + i * 0x1000;

		ret |= write_u64(mem, EMBER_PDPT_GPA + i * 8, pd | fl);
		for (uint64_t j = 0; j < 512; j++)
			ret |= write_u64(mem, pd + j * 8,
					 ((i << 30) | (j << 21)) | fl | PTE_PS);
	}
	if (kind == BOOT_PLAIN) {
		/* The first 2 MiB in 4 KiB pages so that page 0 can stay
		 * unmapped and a null pointer faults. */
		ret |= write_u64(mem, EMBER_PD_GPA, EMBER_PT0_GPA | fl);
		ret |= write_u64(mem, EMBER_PT0_GPA, 0);
		for (uint64_t k = 1; k < 512; k++)
			ret |= write_u64(mem, EMBER_PT0_GPA + k * 8,
					 (k << 12) | fl);
	}
	return ret ? -EFAULT : 0;
}

/*
 * Plain-ELF guests get an IDT whose 32 exception gates lead, on IST1, to an
 * 8-byte stub each: `push %rax; mov $vector, %al; out %al,
 * $EMBER_PORT_EXCEPTION; jmp .`. The stub runs at CPL0 (emulated under PVM,
 * but it is three instructions); the VMM then reads the saved RAX and the
 * exception frame from the IST stack, so every register of the faulting
 * context is known.
 */
static int write_idt_tss_stubs(const struct guest_mem *mem)
{
	uint8_t stubs[NR_EXC_VECTORS * STUB_SIZE];
	uint64_t idt[NR_EXC_VECTORS * 2];
	uint8_t tss[TSS_LIMIT] = { 0 };
	uint64_t top = EMBER_EXC_STACK_TOP;
	uint16_t iomap = TSS_SIZE;
	int ret = 0;

	for (unsigned v = 0; v < NR_EXC_VECTORS; v++) {
		uint8_t *s = &stubs[v * STUB_SIZE];
		uint64_t off = EMBER_STUBS_GPA + v * STUB_SIZE;

		s[0] = 0x50;                             /* push %rax */
		s[1] = 0xb0, s[2] = (uint8_t)v;          /* mov $v, %al */
		s[3] = 0xe6, s[4] = EMBER_PORT_EXCEPTION; /* out %al, $port */
		s[5] = 0xeb, s[6] = 0xfe;                /* jmp . */
		s[7] = 0x90;
		/* Interrupt gate, present, DPL0, IST1, selector KCODE. */
		idt[v * 2] = (off & 0xffff) | ((uint64_t)EMBER_SEL_KCODE << 16) |
			     (1ULL << 32) | (0x8eULL << 40) |
			     ((off >> 16 & 0xffff) << 48);
		idt[v * 2 + 1] = off >> 32;
	}
	/* 64-bit TSS: RSP0 at offset 4, IST1 at 36, I/O map base at 102
	 * (pointing past the limit: no bitmap; IOPL 3 allows every port). */
	memcpy(tss + 4, &top, 8);
	memcpy(tss + 36, &top, 8);
	memcpy(tss + 102, &iomap, 2);
	tss[TSS_LIMIT - 1] = 0xff;
	ret |= mem_write(mem, EMBER_STUBS_GPA, stubs, sizeof(stubs));
	ret |= mem_write(mem, EMBER_IDT_GPA, idt, sizeof(idt));
	ret |= mem_write(mem, EMBER_TSS_GPA, tss, sizeof(tss));
	return ret ? -EFAULT : 0;
}

int cpu_write_boot_tables(const struct guest_mem *mem, enum boot_kind kind)
{
	int ret;

	ret = write_gdt(mem, kind);
	if (!ret)
		ret = write_page_tables(mem, kind);
	if (!ret && kind == BOOT_PLAIN)
		ret = write_idt_tss_stubs(mem);
	return ret ? -EFAULT : 0;
}

static void flat_segment(struct kvm_segment *s, uint16_t sel, bool code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = code ? 11 : 3; /* execute/read or read/write, accessed */
	s->present = 1;
	s->dpl = sel & 3;
	s->s = 1;
	s->l = code;
	s->db = !code;
	s->g = 1;
}

static int set_msrs(int vcpu_fd, const struct cpu_boot *b)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[8];
	} m;
	unsigned n = 0;

	memset(&m, 0, sizeof(m));
	m.e[n++] = (struct kvm_msr_entry){ .index = MSR_IA32_MISC_ENABLE,
					  .data = MISC_ENABLE_FAST_STRING };
	if (b->kind == BOOT_PLAIN && b->syscall) {
		/* SYSCALL loads CS = STAR[47:32], SS = +8; SYSRET loads
		 * CS = STAR[63:48] + 16, SS = +8 (SDM vol. 2, SYSCALL). */
		m.e[n++] = (struct kvm_msr_entry){
			.index = MSR_STAR,
			.data = ((uint64_t)EMBER_SEL_USER32 << 48) |
				((uint64_t)EMBER_SEL_KCODE << 32) };
		m.e[n++] = (struct kvm_msr_entry){ .index = MSR_LSTAR,
						  .data = b->lstar };
		m.e[n++] = (struct kvm_msr_entry){ .index = MSR_CSTAR, .data = 0 };
		m.e[n++] = (struct kvm_msr_entry){
			.index = MSR_SFMASK,
			.data = RFLAGS_TF | RFLAGS_IF | RFLAGS_DF | RFLAGS_AC };
	}
	m.hdr.nmsrs = n;
	if (kvm_ioctl_raw(vcpu_fd, KVM_SET_MSRS, &m) != (int)n)
		return -EIO;
	return 0;
}

int cpu_setup_bsp(int vcpu_fd, const struct cpu_boot *b)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_fpu fpu;
	uint16_t cs = cpu_boot_cs(b->kind, b->cpl);
	uint16_t ds = cpu_boot_ds(b->kind, b->cpl);
	int ret;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = RFLAGS_RESERVED;
	if (b->kind == BOOT_PLAIN)
		regs.rflags |= RFLAGS_IOPL3; /* in/out at CPL3 (hardware) */
	regs.rip = b->rip;
	regs.rsp = b->rsp;
	regs.rdi = b->rdi;
	regs.rsi = b->rsi;

	ret = kvm_ioctl_raw(vcpu_fd, KVM_GET_SREGS, &sregs);
	if (ret < 0)
		return ret;
	flat_segment(&sregs.cs, cs, true);
	flat_segment(&sregs.ds, ds, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.gdt.base = EMBER_GDT_GPA;
	sregs.gdt.limit = 8 * 8 - 1;
	sregs.cr3 = EMBER_PML4_GPA;
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	sregs.cr4 = CR4_PAE;
	sregs.efer = EFER_LME | EFER_LMA;
	if (b->kind == BOOT_PLAIN) {
		sregs.idt.base = EMBER_IDT_GPA;
		sregs.idt.limit = NR_EXC_VECTORS * 16 - 1;
		memset(&sregs.tr, 0, sizeof(sregs.tr));
		sregs.tr.base = EMBER_TSS_GPA;
		sregs.tr.limit = TSS_LIMIT - 1;
		sregs.tr.selector = EMBER_SEL_TSS;
		sregs.tr.type = 11; /* busy 64-bit TSS */
		sregs.tr.present = 1;
		/* SSE for handlers; FSGSBASE so a CPL3 guest can set its TLS
		 * base with wrfsbase (PLATFORM.md). */
		sregs.cr4 |= CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_FSGSBASE;
		if (b->syscall)
			sregs.efer |= EFER_SCE;
	}
	ret = kvm_ioctl_raw(vcpu_fd, KVM_SET_SREGS, &sregs);
	if (ret < 0)
		return ret;

	ret = kvm_ioctl_raw(vcpu_fd, KVM_SET_REGS, &regs);
	if (ret < 0)
		return ret;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;     /* x87 default control word */
	fpu.mxcsr = 0x1f80;  /* all SSE exceptions masked */
	ret = kvm_ioctl_raw(vcpu_fd, KVM_SET_FPU, &fpu);
	if (ret < 0)
		return ret;
	ret = set_msrs(vcpu_fd, b);
	return ret;
}

int cpu_setup_lapic(int vcpu_fd)
{
	struct kvm_lapic_state lapic;
	uint32_t *lvt0, *lvt1;
	int ret;

	ret = kvm_ioctl_raw(vcpu_fd, KVM_GET_LAPIC, &lapic);
	if (ret < 0)
		return ret;
	/* LVT LINT0 at 0x350, LINT1 at 0x360; delivery mode bits 8-10. */
	lvt0 = (uint32_t *)(void *)&lapic.regs[0x350];
	lvt1 = (uint32_t *)(void *)&lapic.regs[0x360];
	*lvt0 = (*lvt0 & ~0x700u & ~(1u << 16)) | (7u << 8); /* ExtINT */
	*lvt1 = (*lvt1 & ~0x700u & ~(1u << 16)) | (4u << 8); /* NMI */
	ret = kvm_ioctl_raw(vcpu_fd, KVM_SET_LAPIC, &lapic);
	return ret < 0 ? ret : 0;
}

bool cpu_vector_has_error_code(unsigned v)
{
	return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 ||
	       v == 29 || v == 30;
}

const char *cpu_vector_name(unsigned v)
{
	static const char *const names[NR_EXC_VECTORS] = {
		"divide error (#DE)", "debug (#DB)", "NMI", "breakpoint (#BP)",
		"overflow (#OF)", "bound range (#BR)",
		"invalid opcode (#UD)", "device not available (#NM)",
		"double fault (#DF)", "coprocessor overrun",
		"invalid TSS (#TS)", "segment not present (#NP)",
		"stack fault (#SS)", "general protection (#GP)",
		"page fault (#PF)", "reserved", "x87 error (#MF)",
		"alignment check (#AC)", "machine check (#MC)",
		"SIMD error (#XM)", "virtualization (#VE)",
		"control protection (#CP)",
	};

	if (v < NR_EXC_VECTORS && names[v])
		return names[v];
	return "reserved vector";
}
