/* Unit tests: the Linux 64-bit boot protocol pieces (vmm/x86/linux.c): e820,
 * command line, initrd placement, zero page, MP table, and linux_load on a
 * fake vmlinux built in memory. Offsets are checked as raw bytes at the
 * protocol's offsets (boot.rst / zero-page.rst), not through our structs. */
// link: vmm/x86/linux.c vmm/x86/elf.c vmm/mem.c vmm/log.c
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ember/abi.h"
#include "mem.h"
#include "x86/linux.h"

#define RAM_SZ (32u << 20)
#define KERNEL_GPA 0x1000000ULL /* where a non-relocatable vmlinux goes */
#define KERNEL_VA 0xffffffff81000000ULL
#define KFILE_SZ 0x3000

static uint8_t *ram;
static struct guest_mem mem;
static uint8_t kfile[KFILE_SZ] __attribute__((aligned(8)));
static char err[256];

static Elf64_Ehdr *keh(void)
{
	return (Elf64_Ehdr *)kfile;
}

static Elf64_Phdr *kph(unsigned i)
{
	return (Elf64_Phdr *)(kfile + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr));
}

/* A vmlinux-shaped ELF: one R+X segment, virtual address in the kernel half,
 * physical address 16 MiB, e_entry physical; 0x1000 file bytes + bss. */
static void make_kernel(void)
{
	memset(kfile, 0, sizeof(kfile));
	memcpy(keh()->e_ident, ELFMAG, SELFMAG);
	keh()->e_ident[EI_CLASS] = ELFCLASS64;
	keh()->e_ident[EI_DATA] = ELFDATA2LSB;
	keh()->e_ident[EI_VERSION] = EV_CURRENT;
	keh()->e_type = ET_EXEC;
	keh()->e_machine = EM_X86_64;
	keh()->e_version = EV_CURRENT;
	keh()->e_entry = KERNEL_GPA;
	keh()->e_phoff = sizeof(Elf64_Ehdr);
	keh()->e_phentsize = sizeof(Elf64_Phdr);
	keh()->e_phnum = 1;
	*kph(0) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_X,
				.p_offset = 0x1000, .p_vaddr = KERNEL_VA,
				.p_paddr = KERNEL_GPA, .p_filesz = 0x1000,
				.p_memsz = 0x3000, .p_align = 0x200000 };
	memset(kfile + 0x1000, 0x90, 0x1000);
}

static int setup(void **state)
{
	(void)state;
	ram = calloc(1, RAM_SZ);
	assert_non_null(ram);
	mem_layout(&mem, ram, RAM_SZ);
	make_kernel();
	err[0] = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(ram);
	return 0;
}

static uint32_t rd32(uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, ram + gpa, 4);
	return v;
}

static uint16_t rd16(uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, ram + gpa, 2);
	return v;
}

static uint64_t rd64(uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, ram + gpa, 8);
	return v;
}

/* --- e820 --- */

static void test_e820_small(void **state)
{
	struct linux_e820_entry t[LINUX_E820_MAX];

	(void)state;
	assert_int_equal(linux_build_e820(&mem, t, LINUX_E820_MAX), 3);
	assert_int_equal(t[0].addr, 0);
	assert_int_equal(t[0].size, 0x9fc00);
	assert_int_equal(t[0].type, LINUX_E820_RAM);
	assert_int_equal(t[1].addr, 0x9fc00);
	assert_int_equal(t[1].addr + t[1].size, 0x100000);
	assert_int_equal(t[1].type, LINUX_E820_RESERVED);
	assert_int_equal(t[2].addr, 0x100000);
	assert_int_equal(t[2].addr + t[2].size, RAM_SZ);
	assert_int_equal(t[2].type, LINUX_E820_RAM);
}

static void test_e820_large_and_high(void **state)
{
	struct linux_e820_entry t[LINUX_E820_MAX];
	struct guest_mem big;
	uint8_t *fake = (uint8_t *)0x10000; /* never dereferenced */

	(void)state;
	mem_layout(&big, fake, 2ULL << 30);
	assert_int_equal(linux_build_e820(&big, t, LINUX_E820_MAX), 3);
	assert_int_equal(t[2].addr + t[2].size, 2ULL << 30);

	/* 4 GiB: 3 GiB low, 1 GiB from 4 GiB; the hole is not RAM. */
	mem_layout(&big, fake, 4ULL << 30);
	assert_int_equal(linux_build_e820(&big, t, LINUX_E820_MAX), 4);
	assert_int_equal(t[2].addr + t[2].size, EMBER_LOW_RAM_MAX);
	assert_int_equal(t[3].addr, EMBER_HIGH_RAM_BASE);
	assert_int_equal(t[3].size, 1ULL << 30);
	assert_int_equal(t[3].type, LINUX_E820_RAM);

	/* Too little RAM for the layout, or a table too short. */
	mem_layout(&big, fake, 1ULL << 20);
	assert_int_equal(linux_build_e820(&big, t, LINUX_E820_MAX), -EINVAL);
	assert_int_equal(linux_build_e820(&mem, t, 2), -EINVAL);
}

/* --- command line --- */

static void test_cmdline(void **state)
{
	char *longline = malloc(LINUX_CMDLINE_MAX + 1);

	(void)state;
	assert_non_null(longline);
	assert_int_equal(linux_write_cmdline(&mem, "console=ttyS0 quiet"), 0);
	assert_string_equal((char *)ram + LINUX_CMDLINE_GPA, "console=ttyS0 quiet");

	memset(longline, 'a', LINUX_CMDLINE_MAX);
	longline[LINUX_CMDLINE_MAX] = 0;
	assert_int_equal(linux_write_cmdline(&mem, longline), -E2BIG);
	longline[LINUX_CMDLINE_MAX - 1] = 0; /* 2047 chars + NUL: fits */
	assert_int_equal(linux_write_cmdline(&mem, longline), 0);
	assert_int_equal(strlen((char *)ram + LINUX_CMDLINE_GPA),
			 LINUX_CMDLINE_MAX - 1);

	assert_int_equal(linux_write_cmdline(&mem, NULL), 0);
	assert_int_equal(ram[LINUX_CMDLINE_GPA], 0);
	free(longline);
}

/* --- initrd placement --- */

static void test_initrd_placement(void **state)
{
	struct guest_mem big;
	uint64_t gpa = 0;

	(void)state;
	/* 32 MiB guest: the initrd ends at the top of RAM, page aligned. */
	assert_int_equal(linux_place_initrd(&mem, KERNEL_GPA + 0x3000, 12345,
					    &gpa), 0);
	assert_int_equal(gpa % 4096, 0);
	assert_true(gpa + 12345 <= RAM_SZ);
	assert_true(gpa + 12345 > RAM_SZ - 4096); /* as high as possible */
	assert_true(gpa >= KERNEL_GPA + 0x3000);

	/* Exactly the space between the kernel end and the top fits. */
	assert_int_equal(linux_place_initrd(&mem, KERNEL_GPA + 0x3000,
					    RAM_SZ - KERNEL_GPA - 0x3000, &gpa),
			 0);
	assert_int_equal(gpa, KERNEL_GPA + 0x3000);
	/* One byte more does not; neither does a kernel end not page-aligned
	 * that leaves less than a page-aligned slot. */
	assert_int_equal(linux_place_initrd(&mem, KERNEL_GPA + 0x3000,
					    RAM_SZ - KERNEL_GPA - 0x2fff, &gpa),
			 -E2BIG);
	assert_int_equal(linux_place_initrd(&mem, KERNEL_GPA + 0x3001,
					    RAM_SZ - KERNEL_GPA - 0x3000, &gpa),
			 -E2BIG);
	assert_int_equal(linux_place_initrd(&mem, 0, UINT64_MAX, &gpa), -E2BIG);
	assert_int_equal(linux_place_initrd(&mem, UINT64_MAX, 1, &gpa), -E2BIG);
	assert_int_equal(linux_place_initrd(&mem, 0, 0, &gpa), -EINVAL);

	/* 3 GiB of low RAM: capped below initrd_addr_max (2 GiB). */
	mem_layout(&big, (uint8_t *)0x10000, 3ULL << 30);
	assert_int_equal(linux_place_initrd(&big, KERNEL_GPA, 1 << 20, &gpa), 0);
	assert_int_equal(gpa + (1 << 20), LINUX_INITRD_ADDR_MAX + 1);
}

/* --- MP table --- */

static void check_mptable(unsigned nr_cpus)
{
	uint64_t cfg, p, end;
	uint8_t sum = 0;
	unsigned cpus = 0, bsp = 0, buses = 0, ioapics = 0, ioints = 0,
		 lints = 0, entries;
	int size;

	memset(ram + LINUX_MPTABLE_GPA, 0, 1024);
	size = linux_write_mptable(&mem, nr_cpus);
	assert_true(size > 0);
	assert_true(LINUX_MPTABLE_GPA + (uint64_t)size <= 0xa0000);

	/* Floating pointer: "_MP_", 16 bytes summing to 0, spec 1.4. */
	assert_memory_equal(ram + LINUX_MPTABLE_GPA, "_MP_", 4);
	for (unsigned i = 0; i < 16; i++)
		sum += ram[LINUX_MPTABLE_GPA + i];
	assert_int_equal(sum, 0);
	assert_int_equal(ram[LINUX_MPTABLE_GPA + 8], 1); /* length */
	assert_int_equal(ram[LINUX_MPTABLE_GPA + 9], 4); /* spec rev */
	assert_int_equal(ram[LINUX_MPTABLE_GPA + 11], 0); /* table present */
	cfg = rd32(LINUX_MPTABLE_GPA + 4);
	assert_true(cfg >= LINUX_MPTABLE_GPA && cfg < 0xa0000);

	/* Configuration table: "PCMP", length bytes summing to 0. */
	assert_memory_equal(ram + cfg, "PCMP", 4);
	end = cfg + rd16(cfg + 4);
	assert_int_equal(end, LINUX_MPTABLE_GPA + (uint64_t)size);
	sum = 0;
	for (p = cfg; p < end; p++)
		sum += ram[p];
	assert_int_equal(sum, 0);
	assert_int_equal(rd32(cfg + 36), 0xfee00000); /* local APIC */
	entries = rd16(cfg + 34);

	/* Walk the entries: 20 bytes for a processor, 8 for the others. */
	p = cfg + 44;
	for (unsigned i = 0; i < entries; i++) {
		assert_true(p < end);
		switch (ram[p]) {
		case 0:
			assert_int_equal(ram[p + 1], cpus); /* APIC id */
			assert_true(ram[p + 3] & 1);        /* enabled */
			if (ram[p + 3] & 2) {
				bsp++;
				assert_int_equal(ram[p + 1], 0);
			}
			cpus++;
			p += 20;
			break;
		case 1:
			assert_memory_equal(ram + p + 2, "ISA   ", 6);
			buses++;
			p += 8;
			break;
		case 2:
			assert_int_equal(ram[p + 1], nr_cpus); /* id after CPUs */
			assert_int_equal(rd32(p + 4), 0xfec00000);
			ioapics++;
			p += 8;
			break;
		case 3:
			/* GSI n on pin n of our IOAPIC. */
			assert_int_equal(ram[p + 5], ioints);
			assert_int_equal(ram[p + 6], nr_cpus);
			assert_int_equal(ram[p + 7], ioints);
			ioints++;
			p += 8;
			break;
		case 4:
			lints++;
			p += 8;
			break;
		default:
			fail_msg("unknown MP entry type %u", ram[p]);
		}
	}
	assert_int_equal(p, end);
	assert_int_equal(cpus, nr_cpus);
	assert_int_equal(bsp, 1);
	assert_int_equal(buses, 1);
	assert_int_equal(ioapics, 1);
	/* ISA IRQs 0-15 and every virtio GSI (5..20). */
	assert_int_equal(ioints, EMBER_VIRTIO_IRQ_BASE + EMBER_VIRTIO_MAX_DEVICES);
	assert_int_equal(lints, 2);
}

static void test_mptable(void **state)
{
	(void)state;
	check_mptable(1);
	check_mptable(2);
	check_mptable(LINUX_MAX_CPUS);
	assert_int_equal(linux_write_mptable(&mem, 0), -EINVAL);
	assert_int_equal(linux_write_mptable(&mem, LINUX_MAX_CPUS + 1), -EINVAL);
}

/* --- the whole load --- */

static int load(const char *cmdline, const void *initrd, size_t initrd_len,
		unsigned cpus, struct linux_entry *e)
{
	struct linux_load_args a = { .kernel = kfile, .kernel_len = sizeof(kfile),
				     .cmdline = cmdline, .initrd = initrd,
				     .initrd_len = initrd_len, .nr_cpus = cpus };

	err[0] = 0;
	return linux_load(&mem, &a, e, err, sizeof(err));
}

static void test_load_zero_page(void **state)
{
	static const uint8_t initrd[5000] = { 1, 2, 3 };
	const uint64_t zp = LINUX_ZERO_PAGE_GPA;
	struct linux_entry e;
	uint64_t rd;

	(void)state;
	memset(ram + 0x7000, 0x5a, 0x1000); /* the zero page must be cleared */
	assert_int_equal(load("console=ttyS0 reboot=k", initrd, sizeof(initrd),
			      2, &e), 0);
	assert_int_equal(e.rip, KERNEL_GPA);
	assert_int_equal(e.zero_page_gpa, 0x7000);

	/* Kernel bytes at the physical address, bss zeroed. */
	assert_int_equal(ram[KERNEL_GPA], 0x90);
	assert_int_equal(ram[KERNEL_GPA + 0xfff], 0x90);
	assert_int_equal(ram[KERNEL_GPA + 0x1000], 0);

	/* Setup header fields at their boot.rst offsets. */
	assert_int_equal(rd16(zp + 0x1fe), 0xaa55);        /* boot_flag */
	assert_memory_equal(ram + zp + 0x202, "HdrS", 4);  /* header */
	assert_true(rd16(zp + 0x206) >= 0x020c);           /* version */
	assert_int_equal(ram[zp + 0x210], 0xff);           /* type_of_loader */
	assert_true(ram[zp + 0x211] & 0x01);               /* LOADED_HIGH */
	assert_int_equal(rd32(zp + 0x228), LINUX_CMDLINE_GPA); /* cmd_line_ptr */
	assert_int_equal(rd32(zp + 0xc8), 0);              /* ext_cmd_line_ptr */
	assert_int_equal(rd32(zp + 0x238), LINUX_CMDLINE_MAX - 1);
	assert_int_equal(ram[zp + 0x1ef], 0);              /* sentinel */
	assert_int_equal(ram[zp + 0x100], 0);              /* rest zeroed */
	assert_string_equal((char *)ram + LINUX_CMDLINE_GPA,
			    "console=ttyS0 reboot=k");

	/* initrd: ramdisk_image/size (+ ext_ high halves), contents copied. */
	rd = rd32(zp + 0x218) | ((uint64_t)rd32(zp + 0xc0) << 32);
	assert_int_equal(rd32(zp + 0x21c), sizeof(initrd));
	assert_int_equal(rd % 4096, 0);
	assert_true(rd >= KERNEL_GPA + 0x3000);
	assert_true(rd + sizeof(initrd) <= RAM_SZ);
	assert_memory_equal(ram + rd, initrd, sizeof(initrd));

	/* e820 in the zero page. */
	assert_int_equal(ram[zp + 0x1e8], 3);
	assert_int_equal(rd64(zp + 0x2d0), 0);
	assert_int_equal(rd64(zp + 0x2d8), 0x9fc00);
	assert_int_equal(rd32(zp + 0x2e0), 1);
	assert_int_equal(rd64(zp + 0x2d0 + 2 * 20), 0x100000);
	assert_int_equal(rd64(zp + 0x2d8 + 2 * 20), RAM_SZ - 0x100000);

	/* MP table present. */
	assert_memory_equal(ram + LINUX_MPTABLE_GPA, "_MP_", 4);
}

static void test_load_no_initrd(void **state)
{
	struct linux_entry e;

	(void)state;
	assert_int_equal(load(NULL, NULL, 0, 1, &e), 0);
	assert_int_equal(rd32(0x7000 + 0x218), 0);
	assert_int_equal(rd32(0x7000 + 0x21c), 0);
	assert_int_equal(ram[LINUX_CMDLINE_GPA], 0);
}

static void test_load_rejects(void **state)
{
	static uint8_t big_initrd[RAM_SZ];
	char *longline = malloc(LINUX_CMDLINE_MAX + 1);
	struct linux_entry e;

	(void)state;
	assert_non_null(longline);
	memset(longline, 'x', LINUX_CMDLINE_MAX);
	longline[LINUX_CMDLINE_MAX] = 0;
	assert_int_equal(load(longline, NULL, 0, 1, &e), -E2BIG);
	free(longline);

	/* initrd larger than the RAM above the kernel. */
	assert_int_equal(load("", big_initrd, RAM_SZ - KERNEL_GPA, 1, &e),
			 -E2BIG);
	assert_true(strlen(err) > 0);
	assert_int_equal(load("", NULL, 10, 1, &e), -EINVAL);

	assert_int_equal(load("", NULL, 0, 0, &e), -EINVAL);
	assert_int_equal(load("", NULL, 0, LINUX_MAX_CPUS + 1, &e), -EINVAL);

	/* Not an ELF file. */
	kfile[0] = 0;
	assert_int_equal(load("", NULL, 0, 1, &e), -ENOEXEC);
	make_kernel();

	/* Kernel over the boot structures (below 1 MiB): the MP table, zero
	 * page, page tables all live there. */
	kph(0)->p_paddr = 0x9000;
	keh()->e_entry = 0x9000;
	assert_int_equal(load("", NULL, 0, 1, &e), -ERANGE);
	kph(0)->p_paddr = 0x9f000; /* straddles the MP table and 1 MiB */
	keh()->e_entry = 0x9f000;
	assert_int_equal(load("", NULL, 0, 1, &e), -ERANGE);
	/* Past the end of RAM. */
	kph(0)->p_paddr = RAM_SZ - 0x1000;
	keh()->e_entry = RAM_SZ - 0x1000;
	assert_int_equal(load("", NULL, 0, 1, &e), -ERANGE);
	/* None of the failures wrote a zero page. */
	assert_int_equal(rd16(0x7000 + 0x1fe), 0);

	/* Entry only valid as a virtual address: the CPU starts with an
	 * identity map, so that is refused. */
	make_kernel();
	keh()->e_entry = KERNEL_VA;
	assert_int_equal(load("", NULL, 0, 1, &e), -EINVAL);
}

static void test_load_small_ram(void **state)
{
	struct linux_entry e;
	struct linux_load_args a = { .kernel = kfile, .kernel_len = sizeof(kfile),
				     .nr_cpus = 1 };
	struct guest_mem small;

	(void)state;
	mem_layout(&small, ram, 1u << 20);
	assert_int_equal(linux_load(&small, &a, &e, err, sizeof(err)), -EINVAL);
	/* 16 MiB + a bit: the kernel at 16 MiB does not fit. */
	mem_layout(&small, ram, KERNEL_GPA + 0x2000);
	assert_int_equal(linux_load(&small, &a, &e, err, sizeof(err)), -ERANGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_e820_small),
		T(test_e820_large_and_high),
		T(test_cmdline),
		T(test_initrd_placement),
		T(test_mptable),
		T(test_load_zero_page),
		T(test_load_no_initrd),
		T(test_load_rejects),
		T(test_load_small_ram),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
