/*
 * loader.c - loads the handler (a static x86-64 Linux executable) and builds
 * its initial stack the way Linux's binfmt_elf does (System V x86-64 psABI
 * 3.4.1, "Initial Stack and Register State").
 *
 * The ELF comes from the tenant: every header field, offset and size is
 * checked before use. Accepted: ELF64 little-endian x86-64, ET_EXEC, or
 * ET_DYN without PT_INTERP (static-pie, loaded at LOADER_PIE_BASE); no
 * dynamic linker. Segments must land in user RAM, above this kernel, and
 * not on the stack. The boot module holding the file is moved out of the
 * way first if a segment wants its place.
 */
#include "kernel.h"

#define LOADER_PIE_BASE 0x400000ULL
#define LOADER_MAX_PHDRS 64
#define STACK_MAX (8ULL << 20)

#define ET_EXEC 2
#define ET_DYN 3
#define EM_X86_64 62
#define PT_LOAD 1
#define PT_INTERP 3
#define PT_PHDR 6

/* Auxiliary vector keys (uapi/linux/auxvec.h, asm/auxvec.h). */
#define AT_NULL 0
#define AT_PHDR 3
#define AT_PHENT 4
#define AT_PHNUM 5
#define AT_PAGESZ 6
#define AT_BASE 7
#define AT_FLAGS 8
#define AT_ENTRY 9
#define AT_UID 11
#define AT_EUID 12
#define AT_GID 13
#define AT_EGID 14
#define AT_PLATFORM 15
#define AT_HWCAP 16
#define AT_CLKTCK 17
#define AT_SECURE 23
#define AT_RANDOM 25
#define AT_HWCAP2 26
#define AT_EXECFN 31

struct ehdr {
	uint8_t ident[16];
	uint16_t type, machine;
	uint32_t version;
	uint64_t entry, phoff, shoff;
	uint32_t flags;
	uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};

struct phdr {
	uint32_t type, flags;
	uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

uint64_t micro_stack_lo, micro_stack_hi;

/*
 * The handler's stack, with a guard below it so that an overflow faults
 * (and is reported as one) instead of running over other memory. The VMM
 * maps RAM in 2 MiB pages, so the guard is one 2 MiB page whose directory
 * entry (EMBER_PD_GPA, reachable: page tables are identity-mapped user
 * memory) is cleared. That region was never touched, so no TLB entry needs
 * flushing (INVLPG is privileged). Small guests (< 64 MiB) go without.
 */
#define GUARD_SIZE (2ULL << 20)
static int stack_alloc(uint64_t size)
{
	uint64_t total = size + 2 * GUARD_SIZE, base, guard;

	if (boot_info->low_ram_size < (64ULL << 20)) {
		micro_stack_lo = mm_alloc_top(size);
		micro_stack_hi = micro_stack_lo + size;
		return micro_stack_lo ? 0 : -ENOMEM;
	}
	base = mm_alloc_top(total);
	if (!base)
		return -ENOMEM;
	guard = (base + GUARD_SIZE - 1) & ~(GUARD_SIZE - 1);
	mm_release(base, guard);
	micro_stack_lo = guard + GUARD_SIZE;
	micro_stack_hi = base + total;
	*(volatile uint64_t *)(uintptr_t)(EMBER_PD_GPA + (guard >> 21) * 8) = 0;
	return 0;
}

static bool overlaps(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1)
{
	return a0 < b1 && b0 < a1;
}

/* Pushes `len` bytes onto the stack being built at *sp. */
static uint64_t push_bytes(uint64_t *sp, const void *p, size_t len)
{
	*sp -= len;
	memcpy((void *)*sp, p, len);
	return *sp;
}

/* Splits the command line into the handler's argv and envp: after "--"
 * everything is an argument; before it, KEY=VALUE words that are not the
 * micro guest's own options (debug, handler=) are environment variables. */
#define MAX_ARGS 64
static const char *argv_s[MAX_ARGS], *envp_s[MAX_ARGS];
static size_t argv_l[MAX_ARGS], envp_l[MAX_ARGS];
static unsigned nargv, nenvp;

static void split_cmdline(const char *cl, size_t len)
{
	bool after_dashes = false;
	size_t i = 0;

	argv_s[0] = micro_handler_path();
	argv_l[0] = strlen(argv_s[0]);
	nargv = 1;
	nenvp = 0;
	while (i < len) {
		size_t s, l;
		bool has_eq = false;

		while (i < len && cl[i] == ' ')
			i++;
		s = i;
		while (i < len && cl[i] != ' ')
			has_eq |= cl[i++] == '=';
		l = i - s;
		if (!l)
			break;
		if (!after_dashes && l == 2 && !memcmp(cl + s, "--", 2)) {
			after_dashes = true;
		} else if (after_dashes) {
			if (nargv < MAX_ARGS) {
				argv_s[nargv] = cl + s;
				argv_l[nargv++] = l;
			}
		} else if (has_eq && strncmp(cl + s, "handler=", 8) &&
			   strncmp(cl + s, "preempt=", 8) && nenvp < MAX_ARGS) {
			envp_s[nenvp] = cl + s;
			envp_l[nenvp++] = l;
		}
	}
}

static uint64_t cpuid_edx1(void)
{
	uint32_t a = 1, b, c = 0, d;

	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	return d;
}

static int build_stack(uint64_t top, uint64_t entry, uint64_t phdr,
		       unsigned phnum, uint64_t *out_sp)
{
	static const char platform[] = "x86_64";
	uint64_t sp = top, argv_p[MAX_ARGS], envp_p[MAX_ARGS];
	uint64_t plat_p, rand_p, words, *w;
	uint8_t rnd[16];
	const char *cl = (const char *)(uintptr_t)boot_info->cmdline_gpa;

	split_cmdline(cl, strnlen(cl, EMBER_CMDLINE_MAX));
	/* Strings first (at the top), then the aligned vectors below. */
	for (unsigned i = 0; i < nenvp; i++) {
		push_bytes(&sp, "", 1);
		envp_p[i] = push_bytes(&sp, envp_s[i], envp_l[i]);
	}
	for (unsigned i = 0; i < nargv; i++) {
		push_bytes(&sp, "", 1);
		argv_p[i] = push_bytes(&sp, argv_s[i], argv_l[i]);
	}
	plat_p = push_bytes(&sp, platform, sizeof(platform));
	random_bytes(rnd, sizeof(rnd));
	rand_p = push_bytes(&sp, rnd, sizeof(rnd)); /* AT_RANDOM: 16 bytes */
	sp &= ~15ULL;

	const uint64_t auxv[] = {
		AT_PHDR, phdr, AT_PHENT, sizeof(struct phdr), AT_PHNUM, phnum,
		AT_PAGESZ, PAGE_SIZE, AT_BASE, 0, AT_FLAGS, 0, AT_ENTRY, entry,
		AT_UID, 0, AT_EUID, 0, AT_GID, 0, AT_EGID, 0, AT_SECURE, 0,
		AT_PLATFORM, plat_p, AT_HWCAP, cpuid_edx1(), AT_HWCAP2, 0,
		AT_CLKTCK, 100, AT_RANDOM, rand_p, AT_EXECFN, argv_p[0],
		AT_NULL, 0,
	};
	/* argc, argv[], NULL, envp[], NULL, auxv: keep RSP 16-byte aligned. */
	words = 1 + nargv + 1 + nenvp + 1 + ARRAY_SIZE(auxv);
	sp -= words * 8;
	sp &= ~15ULL;
	if (sp < top - (64 << 10))
		return -E2BIG;
	w = (uint64_t *)sp;
	*w++ = nargv;
	for (unsigned i = 0; i < nargv; i++)
		*w++ = argv_p[i];
	*w++ = 0;
	for (unsigned i = 0; i < nenvp; i++)
		*w++ = envp_p[i];
	*w++ = 0;
	memcpy(w, auxv, sizeof(auxv));
	*out_sp = sp;
	return 0;
}

int loader_load(const uint8_t *elf, uint64_t len, uint64_t *entry,
		uint64_t *sp)
{
	struct ehdr eh;
	struct phdr ph[LOADER_MAX_PHDRS];
	uint64_t bias = 0, lo = UINT64_MAX, hi = 0, phdr_va = 0, stack_size;
	uint64_t mod = (uint64_t)(uintptr_t)elf, mod_end = mod + len;
	unsigned nload = 0;
	int ret;

	if (len < sizeof(eh))
		goto noexec;
	memcpy(&eh, elf, sizeof(eh));
	if (memcmp(eh.ident, "\177ELF", 4) || eh.ident[4] != 2 /* 64-bit */ ||
	    eh.ident[5] != 1 /* LE */ || eh.machine != EM_X86_64 ||
	    (eh.type != ET_EXEC && eh.type != ET_DYN)) {
		kprintf("handler: not an x86-64 ELF executable\n");
		return -ENOEXEC;
	}
	if (eh.phentsize != sizeof(struct phdr) || eh.phnum == 0 ||
	    eh.phnum > LOADER_MAX_PHDRS || eh.phoff > len ||
	    (uint64_t)eh.phnum * sizeof(struct phdr) > len - eh.phoff)
		goto noexec;
	memcpy(ph, elf + eh.phoff, eh.phnum * sizeof(struct phdr));
	if (eh.type == ET_DYN)
		bias = LOADER_PIE_BASE;

	for (unsigned i = 0; i < eh.phnum; i++) {
		const struct phdr *p = &ph[i];

		if (p->type == PT_INTERP) {
			kprintf("handler: dynamically linked (PT_INTERP); "
				"link it with -static\n");
			return -ENOEXEC;
		}
		if (p->type == PT_PHDR)
			phdr_va = p->vaddr + bias;
		if (p->type != PT_LOAD || p->memsz == 0)
			continue;
		if (p->filesz > p->memsz || p->offset > len ||
		    p->filesz > len - p->offset ||
		    p->vaddr + bias < p->vaddr ||
		    p->vaddr + bias + p->memsz < p->vaddr + bias ||
		    !mm_user_range(PAGE_DOWN(p->vaddr + bias),
				   PAGE_UP(p->vaddr + bias + p->memsz) -
					   PAGE_DOWN(p->vaddr + bias))) {
			kprintf("handler: segment %u (vaddr 0x%lx, %lu bytes) "
				"outside usable RAM\n", i, p->vaddr, p->memsz);
			return -ENOEXEC;
		}
		lo = MIN(lo, PAGE_DOWN(p->vaddr + bias));
		hi = MAX(hi, PAGE_UP(p->vaddr + bias + p->memsz));
		if (!phdr_va && eh.phoff >= p->offset &&
		    eh.phoff - p->offset < p->filesz)
			phdr_va = p->vaddr + bias + (eh.phoff - p->offset);
		nload++;
	}
	if (!nload)
		goto noexec;
	/* Segments must not overlap each other (the VMM's rule too). */
	for (unsigned i = 0; i < eh.phnum; i++)
		for (unsigned j = i + 1; j < eh.phnum; j++)
			if (ph[i].type == PT_LOAD && ph[j].type == PT_LOAD &&
			    ph[i].memsz && ph[j].memsz &&
			    overlaps(ph[i].vaddr, ph[i].vaddr + ph[i].memsz,
				     ph[j].vaddr, ph[j].vaddr + ph[j].memsz))
				goto noexec;
	*entry = eh.entry + bias;
	if (*entry < lo || *entry >= hi)
		goto noexec;

	/* The stack: the top of RAM, 1/8 of RAM up to 8 MiB. */
	stack_size = MIN(STACK_MAX, PAGE_DOWN(boot_info->low_ram_size / 8));
	ret = stack_alloc(stack_size);
	if (ret || overlaps(lo, hi, micro_stack_lo - GUARD_SIZE,
			    micro_stack_hi)) {
		kprintf("handler: no room for the stack\n");
		return -ENOMEM;
	}

	/* Move the file out of the way if a segment wants its place. */
	if (overlaps(lo, hi, PAGE_DOWN(mod), PAGE_UP(mod_end))) {
		uint64_t to = mm_alloc_top(PAGE_UP(len));

		if (!to || overlaps(lo, hi, to, to + PAGE_UP(len))) {
			kprintf("handler: no room to relocate the file\n");
			return -ENOMEM;
		}
		memmove((void *)to, elf, len);
		memset((void *)(uintptr_t)mod, 0, mod_end - mod); /* see below */
		mm_release(mod, mod_end);
		elf = (const uint8_t *)(uintptr_t)to;
		mod = to;
		mod_end = to + len;
	}
	for (unsigned i = 0; i < eh.phnum; i++) {
		const struct phdr *p = &ph[i];
		uint64_t va = p->vaddr + bias;

		if (p->type != PT_LOAD || p->memsz == 0)
			continue;
		/* The range must be free memory: not the stack, the file,
		 * the kernel. (mm_user_range excluded the kernel above.) */
		if (overlaps(PAGE_DOWN(va), PAGE_UP(va + p->memsz), mod,
			     mod_end)) {
			kprintf("handler: segment overlaps its own file\n");
			return -ENOEXEC;
		}
		mm_reserve(va, va + p->memsz);
		memmove((void *)va, elf + p->offset, p->filesz);
		memset((void *)(va + p->filesz), 0, p->memsz - p->filesz);
	}
	mm_set_brk_base(hi);
	if (!phdr_va) {
		kprintf("handler: program headers not in a loaded segment\n");
		return -ENOEXEC;
	}
	/* The file is no longer needed. Zero it: a snapshot leaves zero
	 * pages out of its memory file, and the boot module (9.5 MB for
	 * the Python runtime) would otherwise stay in every snapshot of the
	 * function. The pages are already backed, so this runs at memory
	 * speed. */
	memset((void *)(uintptr_t)mod, 0, mod_end - mod);
	mm_release(mod, mod_end);
	return build_stack(micro_stack_hi, *entry, phdr_va, eh.phnum, sp);

noexec:
	kprintf("handler: malformed ELF file\n");
	return -ENOEXEC;
}
