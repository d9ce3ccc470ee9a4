/* Unit tests: split virtqueue walks over a fake guest RAM (virtq.c). */
// link: vmm/mem.c vmm/virtio/virtq.c
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mem.h"
#include "virtio/virtq.h"

#define RAM_SIZE (64 * 1024)
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define BUF 0x8000
#define QSZ 8

static uint8_t *ram;
static struct guest_mem mem;

static int setup(void **state)
{
	(void)state;
	ram = aligned_alloc(4096, RAM_SIZE);
	assert_non_null(ram);
	memset(ram, 0, RAM_SIZE);
	mem_layout(&mem, ram, RAM_SIZE);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(ram);
	return 0;
}

static void set_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *d = ram + DESC + 16 * i;

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

/* A descriptor inside an indirect table at gpa `table`. */
static void set_idesc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
		      uint16_t flags, uint16_t next)
{
	uint8_t *d = ram + table + 16 * i;

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static uint16_t *avail16(unsigned i)
{
	return (uint16_t *)(ram + AVAIL) + i;
}

/* Makes chain `head` available, as a driver would. */
static void offer(uint16_t head)
{
	uint16_t idx = *avail16(1);

	*avail16(2 + idx % QSZ) = head;
	*avail16(1) = (uint16_t)(idx + 1);
}

static void init_q(struct virtq *q, uint16_t size)
{
	virtq_reset(q);
	q->size = size;
	q->desc_gpa = DESC;
	q->avail_gpa = AVAIL;
	q->used_gpa = USED;
	q->ready = true;
	memset(ram, 0, RAM_SIZE);
	assert_int_equal(virtq_activate(q, &mem, 256), 0);
}

static void test_activate_checks(void **state)
{
	struct virtq q;

	(void)state;
	virtq_reset(&q);
	q.desc_gpa = DESC;
	q.avail_gpa = AVAIL;
	q.used_gpa = USED;
	q.size = 0;
	assert_int_equal(virtq_activate(&q, &mem, 256), -EINVAL);
	q.size = 6; /* not a power of two */
	assert_int_equal(virtq_activate(&q, &mem, 256), -EINVAL);
	q.size = 512; /* above the device maximum */
	assert_int_equal(virtq_activate(&q, &mem, 256), -EINVAL);
	q.size = 8;
	assert_int_equal(virtq_activate(&q, &mem, 256), 0);
	q.desc_gpa = DESC + 8; /* misaligned: desc needs 16 */
	assert_int_equal(virtq_activate(&q, &mem, 256), -EINVAL);
	q.desc_gpa = DESC;
	q.avail_gpa = AVAIL + 1;
	assert_int_equal(virtq_activate(&q, &mem, 256), -EINVAL);
	q.avail_gpa = AVAIL;
	q.used_gpa = USED + 2;
	assert_int_equal(virtq_activate(&q, &mem, 256), -EINVAL);
	/* Rings crossing the end of RAM or wholly outside it. */
	q.used_gpa = RAM_SIZE - 16;
	assert_int_equal(virtq_activate(&q, &mem, 256), -EINVAL);
	q.used_gpa = USED;
	q.desc_gpa = RAM_SIZE - 64; /* 8 * 16 = 128 bytes needed */
	assert_int_equal(virtq_activate(&q, &mem, 256), -EINVAL);
	q.desc_gpa = 0xffffffffffffff00ULL;
	assert_int_equal(virtq_activate(&q, &mem, 256), -EINVAL);
	q.desc_gpa = DESC;
	q.avail_gpa = RAM_SIZE - 4;
	assert_int_equal(virtq_activate(&q, &mem, 256), -EINVAL);
}

static void test_pop_push_roundtrip(void **state)
{
	struct virtq q;
	struct virtq_chain c;
	uint8_t hdr[16];
	uint32_t *used;

	(void)state;
	init_q(&q, QSZ);
	assert_int_equal(virtq_pop(&q, &mem, &c), 0); /* empty */
	assert_false(virtq_has_avail(&q));
	memset(ram + BUF, 0xab, 16);
	set_desc(3, BUF, 16, VIRTQ_DESC_F_NEXT, 5);
	set_desc(5, BUF + 0x100, 100, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, BUF + 0x200, 1, VIRTQ_DESC_F_WRITE, 0);
	offer(3);
	assert_true(virtq_has_avail(&q));
	assert_int_equal(virtq_pop(&q, &mem, &c), 1);
	assert_int_equal(c.head, 3);
	assert_int_equal(c.nr_segs, 3);
	assert_int_equal(c.readable_len, 16);
	assert_int_equal(c.writable_len, 101);
	assert_ptr_equal(c.seg[1].hva, ram + BUF + 0x100);
	assert_true(c.seg[2].writable);
	assert_int_equal(virtq_chain_read(&c, 0, hdr, sizeof(hdr)), 16);
	assert_int_equal(hdr[15], 0xab);
	/* Writes spill from one writable segment into the next. */
	assert_int_equal(virtq_chain_write(&c, 99, "xyz", 3), 2);
	assert_int_equal(ram[BUF + 0x100 + 99], 'x');
	assert_int_equal(ram[BUF + 0x200], 'y');
	assert_int_equal(virtq_pop(&q, &mem, &c), 0);

	virtq_push(&q, 3, 101);
	used = (uint32_t *)(ram + USED);
	assert_int_equal(*(uint16_t *)(ram + USED + 2), 1);
	assert_int_equal(used[1], 3);
	assert_int_equal(used[2], 101);
	assert_true(virtq_needs_notify(&q));
	/* Nothing new pushed: no second interrupt. */
	assert_false(virtq_needs_notify(&q));
	/* The driver asks for no interrupts (2.7.7). */
	*avail16(0) = VIRTQ_AVAIL_F_NO_INTERRUPT;
	offer(3);
	assert_int_equal(virtq_pop(&q, &mem, &c), 1);
	virtq_push(&q, 3, 1);
	assert_false(virtq_needs_notify(&q));
}

static void test_loop(void **state)
{
	struct virtq q;
	struct virtq_chain c;

	(void)state;
	init_q(&q, QSZ);
	set_desc(0, BUF, 8, VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, BUF, 8, VIRTQ_DESC_F_NEXT, 0);
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), -ELOOP);
	/* A self-loop as well. */
	init_q(&q, QSZ);
	set_desc(2, BUF, 8, VIRTQ_DESC_F_NEXT, 2);
	offer(2);
	assert_int_equal(virtq_pop(&q, &mem, &c), -ELOOP);
}

static void test_bad_indices(void **state)
{
	struct virtq q;
	struct virtq_chain c;

	(void)state;
	init_q(&q, QSZ);
	set_desc(0, BUF, 8, VIRTQ_DESC_F_NEXT, QSZ); /* next out of range */
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), -ERANGE);
	init_q(&q, QSZ);
	offer(QSZ); /* head out of range */
	assert_int_equal(virtq_pop(&q, &mem, &c), -ERANGE);
	init_q(&q, QSZ);
	offer(0xffff);
	assert_int_equal(virtq_pop(&q, &mem, &c), -ERANGE);
}

static void test_avail_runs_ahead(void **state)
{
	struct virtq q;
	struct virtq_chain c;

	(void)state;
	init_q(&q, QSZ);
	set_desc(0, BUF, 8, 0, 0);
	*avail16(1) = QSZ + 1; /* more outstanding chains than the ring holds */
	assert_int_equal(virtq_pop(&q, &mem, &c), -EOVERFLOW);
	/* Exactly `size` ahead is legal. */
	*avail16(1) = QSZ;
	assert_int_equal(virtq_pop(&q, &mem, &c), 1);
	/* A wrap-around "behind" index is as bad as far ahead. */
	*avail16(1) = 0;
	assert_int_equal(virtq_pop(&q, &mem, &c), -EOVERFLOW);
}

static void test_buffer_bounds(void **state)
{
	struct virtq q;
	struct virtq_chain c;

	(void)state;
	init_q(&q, QSZ);
	set_desc(0, RAM_SIZE - 8, 9, 0, 0); /* crosses the end of RAM */
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), -EFAULT);
	init_q(&q, QSZ);
	set_desc(0, 0xfffffffffffffff0ULL, 0x20, 0, 0); /* wraps */
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), -EFAULT);
	init_q(&q, QSZ);
	set_desc(0, BUF, 0, 0, 0); /* zero length */
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), -EMSGSIZE);
	init_q(&q, QSZ);
	set_desc(0, BUF, (uint32_t)VIRTQ_MAX_CHAIN_BYTES + 1, 0, 0);
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), -EMSGSIZE);
	/* Readable after writable breaks the request layout (2.7.4.2). */
	init_q(&q, QSZ);
	set_desc(0, BUF, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, BUF, 8, 0, 0);
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), -EPROTO);
}

static void test_too_many_segs(void **state)
{
	struct virtq q;
	struct virtq_chain c;

	(void)state;
	init_q(&q, 128);
	for (uint16_t i = 0; i < 100; i++)
		set_desc(i, BUF, 8, i < 99 ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	*(uint16_t *)(ram + AVAIL + 4) = 0;
	*(uint16_t *)(ram + AVAIL + 2) = 1;
	assert_int_equal(virtq_pop(&q, &mem, &c), -E2BIG);
}

static void test_indirect(void **state)
{
	const uint64_t table = 0x4000;
	struct virtq q;
	struct virtq_chain c;

	(void)state;
	/* Good: header + data in a 2-entry table. */
	init_q(&q, QSZ);
	q.indirect = true;
	set_idesc(table, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	set_idesc(table, 1, BUF + 64, 512, VIRTQ_DESC_F_WRITE, 0);
	set_desc(0, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), 1);
	assert_int_equal(c.nr_segs, 2);
	assert_int_equal(c.readable_len, 16);
	assert_int_equal(c.writable_len, 512);

	/* Not negotiated. */
	q.indirect = false;
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), -EINVAL);

	/* Table length not a multiple of 16. */
	init_q(&q, QSZ);
	q.indirect = true;
	set_desc(0, table, 24, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), -EINVAL);

	/* NEXT together with INDIRECT. */
	init_q(&q, QSZ);
	q.indirect = true;
	set_idesc(table, 0, BUF, 16, 0, 0);
	set_desc(0, table, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	set_desc(1, BUF, 16, 0, 0);
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), -EINVAL);

	/* Nested indirect. */
	init_q(&q, QSZ);
	q.indirect = true;
	set_idesc(table, 0, table, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(0, table, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), -EINVAL);

	/* Table outside RAM. */
	init_q(&q, QSZ);
	q.indirect = true;
	set_desc(0, RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), -EFAULT);

	/* next beyond the table. */
	init_q(&q, QSZ);
	q.indirect = true;
	set_idesc(table, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 2);
	set_desc(0, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), -ERANGE);

	/* A loop inside the table, and a long table: both stop at `size`
	 * hops, the indirect entries counting toward the limit. */
	init_q(&q, QSZ);
	q.indirect = true;
	set_idesc(table, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	set_idesc(table, 1, BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	set_desc(0, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), -ELOOP);
	init_q(&q, QSZ);
	q.indirect = true;
	for (uint16_t i = 0; i < QSZ; i++)
		set_idesc(table, i, BUF, 16, i < QSZ - 1 ? VIRTQ_DESC_F_NEXT : 0,
			  i + 1);
	set_desc(0, table, 16 * QSZ, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0); /* 1 direct + 8 indirect = 9 hops > 8 */
	assert_int_equal(virtq_pop(&q, &mem, &c), -ELOOP);
}

static void test_event_idx(void **state)
{
	struct virtq q;
	struct virtq_chain c;
	uint16_t *used_event = avail16(2 + QSZ);
	uint16_t avail_event;

	(void)state;
	init_q(&q, QSZ);
	q.event_idx = true;
	set_desc(0, BUF, 8, 0, 0);
	offer(0);
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), 1);
	assert_int_equal(virtq_pop(&q, &mem, &c), 1);
	/* Empty ring: the device publishes avail_event = last_avail. */
	assert_int_equal(virtq_pop(&q, &mem, &c), 0);
	memcpy(&avail_event, ram + USED + 4 + 8 * QSZ, 2);
	assert_int_equal(avail_event, 2);

	/* The driver wants an interrupt only once used idx passes 1. */
	*used_event = 1;
	virtq_push(&q, 0, 8); /* used idx 1: event 1 not yet crossed */
	assert_true(virtq_needs_notify(&q)); /* first signal always */
	virtq_push(&q, 0, 8); /* used idx 2 crosses used_event 1 */
	assert_true(virtq_needs_notify(&q));
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), 1);
	virtq_push(&q, 0, 8); /* idx 3, event still 1: suppressed */
	assert_false(virtq_needs_notify(&q));
	*used_event = 3;
	offer(0);
	assert_int_equal(virtq_pop(&q, &mem, &c), 1);
	virtq_push(&q, 0, 8); /* idx 4 passes event 3 */
	assert_true(virtq_needs_notify(&q));
}

static void test_not_activated(void **state)
{
	struct virtq q;
	struct virtq_chain c;

	(void)state;
	virtq_reset(&q);
	assert_int_equal(virtq_pop(&q, &mem, &c), -ENXIO);
	assert_false(virtq_has_avail(&q));
	assert_false(virtq_needs_notify(&q));
	virtq_push(&q, 0, 0); /* ignored, must not crash */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_activate_checks),
		cmocka_unit_test(test_pop_push_roundtrip),
		cmocka_unit_test(test_loop),
		cmocka_unit_test(test_bad_indices),
		cmocka_unit_test(test_avail_runs_ahead),
		cmocka_unit_test(test_buffer_bounds),
		cmocka_unit_test(test_too_many_segs),
		cmocka_unit_test(test_indirect),
		cmocka_unit_test(test_event_idx),
		cmocka_unit_test(test_not_activated),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
