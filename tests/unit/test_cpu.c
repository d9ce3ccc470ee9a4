/* Unit tests: CPU templates and the boot tables of x86/cpu.c. */
// link: vmm/x86/cpu.c vmm/kvm.c vmm/mem.c vmm/log.c
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#include <cmocka.h>

#include "ember/abi.h"
#include "mem.h"
#include "x86/cpu.h"

#define NENT 8

static struct kvm_cpuid2 *all_ones_cpuid(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + NENT * sizeof(c->entries[0]));
	const uint32_t leaves[NENT][2] = {
		{ 0, 0 }, { 1, 0 }, { 7, 0 }, { 7, 1 }, { 0xb, 0 },
		{ 0xd, 0 }, { 0xd, 1 }, { 0x80000001, 0 },
	};

	c->nent = NENT;
	for (int i = 0; i < NENT; i++) {
		c->entries[i].function = leaves[i][0];
		c->entries[i].index = leaves[i][1];
		c->entries[i].eax = c->entries[i].ebx = 0xffffffff;
		c->entries[i].ecx = c->entries[i].edx = 0xffffffff;
	}
	return c;
}

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid2 *c, uint32_t f,
				     uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == f && c->entries[i].index == idx)
			return &c->entries[i];
	return NULL;
}

static uint32_t reg_of(struct kvm_cpuid_entry2 *e, unsigned reg)
{
	return reg == 0 ? e->eax : reg == 1 ? e->ebx : reg == 2 ? e->ecx : e->edx;
}

/* Every bit the PVM template claims to hide is clear after filtering, in
 * every matching subleaf, and the named features the platform notes call
 * out are among them. */
static void test_pvm_template_hides_what_it_claims(void **state)
{
	struct kvm_cpuid2 *c = all_ones_cpuid();
	const struct cpu_hidden *h;
	int named = 0;

	(void)state;
	cpu_filter_cpuid(c, CPU_TEMPLATE_PVM, 0, 1);
	for (h = cpu_template_hidden(CPU_TEMPLATE_PVM); h->feature; h++) {
		for (uint32_t i = 0; i < c->nent; i++) {
			struct kvm_cpuid_entry2 *e = &c->entries[i];

			if (e->function != h->leaf ||
			    (!h->any_subleaf && e->index != h->subleaf))
				continue;
			assert_int_equal(reg_of(e, h->reg) & h->mask, 0);
		}
		if (!strcmp(h->feature, "cx16") || !strcmp(h->feature, "popcnt") ||
		    !strcmp(h->feature, "xsave") || !strcmp(h->feature, "smap"))
			named++;
	}
	assert_int_equal(named, 4);
	/* Spot checks with the architectural bit numbers. */
	assert_int_equal(find(c, 1, 0)->ecx & (1u << 13), 0); /* CX16 */
	assert_int_equal(find(c, 1, 0)->ecx & (1u << 23), 0); /* POPCNT */
	assert_int_equal(find(c, 1, 0)->ecx & (1u << 26), 0); /* XSAVE */
	assert_int_equal(find(c, 7, 0)->ebx & (1u << 20), 0); /* SMAP */
	assert_int_equal(find(c, 0xd, 1)->eax, 0);            /* any subleaf */
	/* Untouched: leaf 0 and leaf 7 subleaf 1 are not in the table. */
	assert_int_equal(find(c, 0, 0)->ebx, 0xffffffff);
	assert_int_equal(find(c, 7, 1)->ebx, 0xffffffff);
	free(c);
}

static void test_host_template_hides_nothing(void **state)
{
	struct kvm_cpuid2 *c = all_ones_cpuid();

	(void)state;
	cpu_filter_cpuid(c, CPU_TEMPLATE_HOST, 0, 1);
	assert_int_equal(find(c, 1, 0)->ecx, 0xffffffff);
	assert_int_equal(find(c, 7, 0)->ebx, 0xffffffff);
	assert_null(cpu_template_hidden(CPU_TEMPLATE_HOST)->feature);
	assert_string_equal(cpu_template_linux_cmdline(CPU_TEMPLATE_HOST), "");
	free(c);
}

static void test_apic_ids(void **state)
{
	struct kvm_cpuid2 *c = all_ones_cpuid();

	(void)state;
	cpu_filter_cpuid(c, CPU_TEMPLATE_HOST, 1, 2);
	assert_int_equal(find(c, 1, 0)->ebx >> 24, 1);
	assert_int_equal((find(c, 1, 0)->ebx >> 16) & 0xff, 2);
	assert_int_equal(find(c, 0xb, 0)->edx, 1);
	free(c);
}

static void test_template_parse(void **state)
{
	enum cpu_template t;

	(void)state;
	assert_int_equal(cpu_template_parse("pvm", &t), 0);
	assert_int_equal(t, CPU_TEMPLATE_PVM);
	assert_int_equal(cpu_template_parse("host", &t), 0);
	assert_int_equal(t, CPU_TEMPLATE_HOST);
	assert_int_equal(cpu_template_parse("PVM", &t), -EINVAL);
	assert_int_equal(cpu_template_parse("", &t), -EINVAL);
	assert_non_null(strstr(cpu_template_linux_cmdline(CPU_TEMPLATE_PVM),
			       "clearcpuid=popcnt,smap"));
}

static uint64_t rd64(const uint8_t *ram, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, ram + gpa, 8);
	return v;
}

static void test_plain_boot_tables(void **state)
{
	static uint8_t ram[4 << 20];
	struct guest_mem mem;

	(void)state;
	memset(ram, 0xaa, sizeof(ram));
	mem_layout(&mem, ram, sizeof(ram));
	assert_int_equal(cpu_write_boot_tables(&mem, BOOT_PLAIN), 0);
	/* PML4[0] -> PDPT, user and writable. */
	assert_int_equal(rd64(ram, EMBER_PML4_GPA), EMBER_PDPT_GPA | 7);
	/* 4 GiB identity: the last 2 MiB page of the last PD. */
	assert_int_equal(rd64(ram, EMBER_PD_GPA + 3 * 4096 + 511 * 8),
			 (0xffe00000ULL) | 0x87);
	/* The first 2 MiB go through PT0; page 0 unmapped, page 1 mapped. */
	assert_int_equal(rd64(ram, EMBER_PD_GPA), EMBER_PT0_GPA | 7);
	assert_int_equal(rd64(ram, EMBER_PT0_GPA), 0);
	assert_int_equal(rd64(ram, EMBER_PT0_GPA + 8), 0x1000 | 7);
	/* User code segment is 64-bit, DPL 3, present. */
	{
		uint64_t d = rd64(ram, EMBER_GDT_GPA + EMBER_SEL_UCODE);

		assert_true(d & (1ULL << 53));          /* L */
		assert_int_equal((d >> 45) & 3, 3);     /* DPL */
		assert_true(d & (1ULL << 47));          /* P */
	}
	/* IDT gate 14 points at stub 14, IST 1, interrupt gate. */
	{
		uint64_t lo = rd64(ram, EMBER_IDT_GPA + 14 * 16);
		uint64_t off = (lo & 0xffff) | ((lo >> 32) & 0xffff0000);

		assert_int_equal(off, EMBER_STUBS_GPA + 14 * 8);
		assert_int_equal((lo >> 32) & 7, 1);
		assert_int_equal((lo >> 40) & 0xff, 0x8e);
		/* The stub: push %rax; mov $14, %al; out %al, $EXCEPTION. */
		assert_int_equal(ram[EMBER_STUBS_GPA + 14 * 8], 0x50);
		assert_int_equal(ram[EMBER_STUBS_GPA + 14 * 8 + 1], 0xb0);
		assert_int_equal(ram[EMBER_STUBS_GPA + 14 * 8 + 2], 14);
		assert_int_equal(ram[EMBER_STUBS_GPA + 14 * 8 + 4],
				 EMBER_PORT_EXCEPTION);
	}
	/* TSS: RSP0 and IST1 at the exception stack. */
	assert_int_equal(rd64(ram, EMBER_TSS_GPA + 4), EMBER_EXC_STACK_TOP);
	assert_int_equal(rd64(ram, EMBER_TSS_GPA + 36), EMBER_EXC_STACK_TOP);
}

static void test_linux_boot_tables(void **state)
{
	static uint8_t ram[2 << 20];
	struct guest_mem mem;

	(void)state;
	memset(ram, 0, sizeof(ram));
	mem_layout(&mem, ram, sizeof(ram));
	assert_int_equal(cpu_write_boot_tables(&mem, BOOT_LINUX), 0);
	/* Supervisor-only pages, 2 MiB page at 0. */
	assert_int_equal(rd64(ram, EMBER_PD_GPA), 0x83);
	assert_int_equal(cpu_boot_cs(BOOT_LINUX, 0), 0x10);
	assert_int_equal(cpu_boot_ds(BOOT_LINUX, 0), 0x18);
	/* No IDT for Linux: it brings its own. */
	assert_int_equal(rd64(ram, EMBER_IDT_GPA), 0);
}

static void test_tables_need_ram(void **state)
{
	static uint8_t ram[0x8000];
	struct guest_mem mem;

	(void)state;
	mem_layout(&mem, ram, sizeof(ram));
	assert_int_equal(cpu_write_boot_tables(&mem, BOOT_PLAIN), -EFAULT);
}

static void test_vectors(void **state)
{
	(void)state;
	assert_true(cpu_vector_has_error_code(14));
	assert_true(cpu_vector_has_error_code(13));
	assert_true(cpu_vector_has_error_code(8));
	assert_false(cpu_vector_has_error_code(6));
	assert_false(cpu_vector_has_error_code(0));
	assert_non_null(strstr(cpu_vector_name(14), "#PF"));
	assert_string_equal(cpu_vector_name(200), "reserved vector");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pvm_template_hides_what_it_claims),
		cmocka_unit_test(test_host_template_hides_nothing),
		cmocka_unit_test(test_apic_ids),
		cmocka_unit_test(test_template_parse),
		cmocka_unit_test(test_plain_boot_tables),
		cmocka_unit_test(test_linux_boot_tables),
		cmocka_unit_test(test_tables_need_ram),
		cmocka_unit_test(test_vectors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
