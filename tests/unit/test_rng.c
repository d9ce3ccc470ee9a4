/* Unit tests: virtio-rng (vmm/virtio/rng.c) behind the real transport,
 * driven through its registers as a driver would, over fake guest RAM:
 * requests filled with entropy, capped, a chain with nothing writable, a
 * broken ring, and the device table entry (count, save, restore). */
// link: vmm/mem.c vmm/log.c vmm/virtio/virtq.c vmm/virtio/mmio.c
// link: vmm/virtio/rng.c
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devtable.h"
#include "log.h"
#include "mem.h"
#include "snapshots/snap.h"
#include "virtio/mmio.h"

extern const struct vm_device_type vrng_type;

#define RAM_SIZE (1024 * 1024)
#define QSZ 8
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define BUF 0x10000

static uint8_t *ram;
static struct guest_mem mem;
static struct vmmio_dev t;
static void *dev;
static uint16_t avail_idx, used_seen;

static void wr(uint64_t off, uint32_t v)
{
	assert_int_equal(vmmio_access(&t, off, (uint8_t *)&v, 4, true), 0);
}

static uint32_t rd(uint64_t off)
{
	uint32_t v = 0;

	assert_int_equal(vmmio_access(&t, off, (uint8_t *)&v, 4, false), 0);
	return v;
}

static int setup(void **state)
{
	const struct virtio_dev_ops *ops = NULL;
	struct ember_config cfg;
	struct vm_dev_ctx ctx = { .mem = &mem, .cfg = &cfg };
	char err[128];
	int ret = 0;

	(void)state;
	ember_log_set_level(EMBER_LOG_ERROR);
	memset(&cfg, 0, sizeof(cfg));
	ram = calloc(1, RAM_SIZE);
	mem_layout(&mem, ram, RAM_SIZE);
	dev = vrng_type.create(&ctx, &ops, &ret, err, sizeof(err));
	assert_non_null(dev);
	assert_int_equal(ops->device_id, 4);
	vmmio_init(&t, ops, dev, &mem, 0xd0000000, 5, -1);
	/* The driver's bring-up (virtio 1.2, 3.1.1 and 4.2.3). */
	wr(VMMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr(VMMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(VMMIO_DRIVER_FEATURES_SEL, 1);
	wr(VMMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	wr(VMMIO_STATUS, 0x3 | VIRTIO_STATUS_FEATURES_OK);
	wr(VMMIO_QUEUE_SEL, 0);
	assert_true(rd(VMMIO_QUEUE_NUM_MAX) >= QSZ);
	wr(VMMIO_QUEUE_NUM, QSZ);
	wr(VMMIO_QUEUE_DESC_LOW, DESC);
	wr(VMMIO_QUEUE_DRIVER_LOW, AVAIL);
	wr(VMMIO_QUEUE_DEVICE_LOW, USED);
	wr(VMMIO_QUEUE_READY, 1);
	wr(VMMIO_STATUS, 0xb | VIRTIO_STATUS_DRIVER_OK);
	assert_true(rd(VMMIO_STATUS) & VIRTIO_STATUS_DRIVER_OK);
	assert_false(rd(VMMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	avail_idx = used_seen = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	wr(VMMIO_STATUS, 0);
	vrng_type.destroy(dev);
	vmmio_destroy(&t);
	free(ram);
	return 0;
}

static void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	uint8_t *d = ram + DESC + 16 * i;

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void offer(uint16_t head)
{
	uint16_t *a = (uint16_t *)(ram + AVAIL);

	a[2 + avail_idx % QSZ] = head;
	avail_idx++;
	__atomic_store_n(&a[1], avail_idx, __ATOMIC_RELEASE);
	wr(VMMIO_QUEUE_NOTIFY, 0);
}

/* The next used entry: its length (and id), or -1 when none. */
static int64_t used(uint32_t *id)
{
	uint8_t *u = ram + USED;
	uint16_t idx;
	uint32_t len;

	memcpy(&idx, u + 2, 2);
	if (idx == used_seen)
		return -1;
	memcpy(id, u + 4 + 8 * (used_seen % QSZ), 4);
	memcpy(&len, u + 8 + 8 * (used_seen % QSZ), 4);
	used_seen++;
	return len;
}

static void test_entropy(void **state)
{
	uint8_t before[64];
	uint32_t id;

	(void)state;
	memset(ram + BUF, 0, 64);
	memcpy(before, ram + BUF, 64);
	desc(0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	offer(0);
	assert_int_equal(used(&id), 64);
	assert_int_equal(id, 0);
	assert_memory_not_equal(ram + BUF, before, 64);
	/* Again: other bytes. */
	memcpy(before, ram + BUF, 64);
	offer(0);
	assert_int_equal(used(&id), 64);
	assert_memory_not_equal(ram + BUF, before, 64);
	/* Two writable buffers in one chain: both filled. */
	memset(ram + BUF, 0, 128);
	desc(1, BUF, 32, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
	desc(2, BUF + 64, 32, VIRTQ_DESC_F_WRITE, 0);
	offer(1);
	assert_int_equal(used(&id), 64);
	assert_int_equal(id, 1);
	assert_memory_not_equal(ram + BUF + 64, ram + BUF + 96, 32);
	assert_int_equal(used(&id), -1);
}

/* Hostile chains: asking for more than the cap gets the cap; a chain with
 * nothing writable gets 0 bytes and the device carries on. */
static void test_limits(void **state)
{
	uint32_t id;

	(void)state;
	desc(0, BUF, 200 * 1024, VIRTQ_DESC_F_WRITE, 0);
	offer(0);
	assert_int_equal(used(&id), 64 * 1024);
	desc(1, BUF, 16, 0, 0); /* device-readable only */
	offer(1);
	assert_int_equal(used(&id), 0);
	desc(0, BUF, 8, VIRTQ_DESC_F_WRITE, 0);
	offer(0);
	assert_int_equal(used(&id), 8);
}

/* A ring the driver broke (a head index past the queue): the device asks
 * for a reset instead of touching anything. */
static void test_broken_ring(void **state)
{
	uint16_t *a = (uint16_t *)(ram + AVAIL);
	uint32_t id;

	(void)state;
	a[2 + avail_idx % QSZ] = 200;
	avail_idx++;
	__atomic_store_n(&a[1], avail_idx, __ATOMIC_RELEASE);
	wr(VMMIO_QUEUE_NOTIFY, 0);
	assert_true(rd(VMMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(used(&id), -1);
}

/* The device table's view: one instance per VM, nothing to save, and a
 * restored instance that serves requests. */
static void test_table_entry(void **state)
{
	struct snap_virtio_dev d;
	struct ember_config cfg;
	char err[128];

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	memset(&d, 0, sizeof(d));
	assert_string_equal(vrng_type.name, "rng");
	assert_int_equal(vrng_type.count(&cfg), 1);
	assert_int_equal(vrng_type.save(dev, &d, err, sizeof(err)), 0);
	assert_int_equal(d.nr_props, 0);
	assert_null(vrng_type.quiesce); /* nothing is ever held */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_entropy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_ring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_entry, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
