/* Unit tests: the gpa -> hva accessor and the port/MMIO bus. */
// link: vmm/mem.c vmm/bus.c
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "bus.h"
#include "ember/abi.h"
#include "mem.h"

static uint8_t ram[64 * 1024];

static void test_gpa_bounds(void **state)
{
	struct guest_mem mem;

	(void)state;
	mem_layout(&mem, ram, sizeof(ram));
	assert_int_equal(mem.nr_regions, 1);
	assert_ptr_equal(mem_gpa_to_hva(&mem, 0, sizeof(ram)), ram);
	assert_ptr_equal(mem_gpa_to_hva(&mem, 100, 0), ram + 100);
	assert_null(mem_gpa_to_hva(&mem, sizeof(ram), 0));
	assert_null(mem_gpa_to_hva(&mem, sizeof(ram) - 4, 5));
	assert_null(mem_gpa_to_hva(&mem, 8, UINT64_MAX));
	assert_null(mem_gpa_to_hva(&mem, UINT64_MAX, 2));
	assert_non_null(mem_gpa_to_hva(&mem, sizeof(ram) - 4, 4));
}

static void test_high_region(void **state)
{
	struct guest_mem mem;
	/* Pretend: a 3 GiB + 64 KiB guest whose "host" mapping is fake. We only
	 * check the arithmetic, never dereference. */
	uint8_t *fake = (uint8_t *)0x10000;

	(void)state;
	mem_layout(&mem, fake, EMBER_LOW_RAM_MAX + 0x10000);
	assert_int_equal(mem.nr_regions, 2);
	assert_ptr_equal(mem_gpa_to_hva(&mem, EMBER_HIGH_RAM_BASE, 16),
			 fake + EMBER_LOW_RAM_MAX);
	/* The MMIO hole is not RAM, and a range may not span the hole. */
	assert_null(mem_gpa_to_hva(&mem, EMBER_LOW_RAM_MAX, 1));
	assert_null(mem_gpa_to_hva(&mem, EMBER_LOW_RAM_MAX - 8, 16));
	assert_null(mem_gpa_to_hva(&mem, EMBER_HIGH_RAM_BASE + 0x10000 - 1, 2));
}

static void test_read_write(void **state)
{
	struct guest_mem mem;
	uint32_t v = 0xdeadbeef, out = 0;

	(void)state;
	mem_layout(&mem, ram, sizeof(ram));
	assert_int_equal(mem_write(&mem, 0x100, &v, sizeof(v)), 0);
	assert_int_equal(mem_read(&mem, &out, 0x100, sizeof(out)), 0);
	assert_int_equal(out, v);
	assert_int_equal(mem_write(&mem, sizeof(ram) - 2, &v, sizeof(v)), -EFAULT);
	assert_int_equal(mem_read(&mem, &out, sizeof(ram), 1), -EFAULT);
}

static int hits;
static uint64_t last_off;

static int count_handler(void *opaque, uint64_t off, uint8_t *data,
			 uint32_t len, bool is_write)
{
	(void)opaque;
	(void)data;
	(void)len;
	(void)is_write;
	hits++;
	last_off = off;
	return 0;
}

static void test_bus(void **state)
{
	struct bus bus = { .nr = 0 };
	uint8_t b = 0;

	(void)state;
	assert_int_equal(bus_register(&bus, 0x3f8, 8, count_handler, NULL), 0);
	assert_int_equal(bus_register(&bus, 0x60, 1, count_handler, NULL), 0);
	assert_int_equal(bus_register(&bus, 0x3fc, 8, count_handler, NULL), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x3f0, 9, count_handler, NULL), -EEXIST);
	assert_int_equal(bus_register(&bus, 0, 0, count_handler, NULL), -EINVAL);
	assert_int_equal(bus_register(&bus, UINT64_MAX, 2, count_handler, NULL), -EINVAL);
	assert_int_equal(bus_dispatch(&bus, 0x3fd, &b, 1, false), 0);
	assert_int_equal(last_off, 5);
	assert_int_equal(bus_dispatch(&bus, 0x60, &b, 1, true), 0);
	assert_int_equal(last_off, 0);
	assert_int_equal(hits, 2);
	/* Straddling the end of a range, or no range at all. */
	assert_int_equal(bus_dispatch(&bus, 0x3ff, &b, 2, false), -ENOENT);
	assert_int_equal(bus_dispatch(&bus, 0x61, &b, 1, false), -ENOENT);
	assert_int_equal(bus_dispatch(&bus, 0x10, &b, 1, false), -ENOENT);
	assert_int_equal(hits, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gpa_bounds),
		cmocka_unit_test(test_high_region),
		cmocka_unit_test(test_read_write),
		cmocka_unit_test(test_bus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
