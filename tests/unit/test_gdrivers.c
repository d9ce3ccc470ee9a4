/*
 * Unit tests: the guest-side virtio drivers (guest-drivers/) compiled for the
 * host and run against a fake virtio-mmio device in host memory. The fake
 * implements the version-2 registers, walks the driver's split rings like a
 * device would, and plays a virtio-blk disk or a vsock peer, so the tests
 * check what goes on the rings byte by byte and how the drivers react to
 * bad device behaviour.
 */
// link: guest-drivers/virtio_mmio.c guest-drivers/virtq.c
// link: guest-drivers/blk.c guest-drivers/vsock.c guest-drivers/spin.c
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guest-drivers/blk.h"
#include "guest-drivers/virtio_mmio.h"
#include "guest-drivers/virtq.h"
#include "guest-drivers/vsock.h"

#define FAKE_BASE 0x10000000u
#define NQ 3

/* ---- platform hooks ---- */

static void *allocs[1024];
static unsigned nr_allocs;
static uint64_t fake_now = 1;
static unsigned idle_calls;

void *gd_alloc(size_t size, size_t align)
{
	void *p;

	if (align < 16)
		align = 16;
	size = (size + align - 1) & ~(align - 1);
	if (nr_allocs == 1024 || !(p = aligned_alloc(align, size ? size : align)))
		return NULL;
	memset(p, 0, size);
	allocs[nr_allocs++] = p;
	return p;
}

uint64_t gd_virt_to_phys(const void *p)
{
	return (uintptr_t)p;
}

/* Idling lets 1 ms of fake time pass, so timeouts can fire. */
void gd_idle(void)
{
	idle_calls++;
	fake_now += 1000000;
}

uint64_t gd_now_ns(void)
{
	return fake_now;
}

/* ---- the fake device ---- */

struct fq {
	uint32_t num, ready;
	uint64_t desc, drv, dev;
	uint16_t last_avail;
};

static struct fake {
	uint32_t magic, version, device_id;
	uint64_t features, driver_features;
	uint32_t dfsel, drfsel;
	uint32_t status;
	bool refuse_fok;
	uint32_t qsel, qmax;
	struct fq q[NQ];
	uint8_t config[64];
	void (*on_notify)(unsigned q);
	unsigned notifies[NQ];
	unsigned config_reads; /* config space and ConfigGeneration */
} F;

static uint32_t fake_reg(uint32_t off)
{
	struct fq *q = F.qsel < NQ ? &F.q[F.qsel] : NULL;

	switch (off) {
	case GMMIO_MAGIC: return F.magic;
	case GMMIO_VERSION: return F.version;
	case GMMIO_DEVICE_ID: return F.device_id;
	case GMMIO_VENDOR_ID: return 0x554d4551;
	case GMMIO_DEVICE_FEATURES:
		return F.dfsel == 0 ? (uint32_t)F.features :
		       F.dfsel == 1 ? (uint32_t)(F.features >> 32) : 0;
	case GMMIO_QUEUE_NUM_MAX: return q ? F.qmax : 0;
	case GMMIO_QUEUE_READY: return q ? q->ready : 0;
	case GMMIO_STATUS: return F.status;
	case GMMIO_CONFIG_GENERATION: return 7;
	default: return 0;
	}
}

uint32_t gd_mmio_read32(uintptr_t addr)
{
	uint32_t off = (uint32_t)(addr - FAKE_BASE), v;

	assert_true(addr >= FAKE_BASE && off < 0x200);
	assert_int_equal(off % 4, 0);
	if (off >= GMMIO_CONFIG || off == GMMIO_CONFIG_GENERATION)
		F.config_reads++;
	if (off >= GMMIO_CONFIG) {
		memcpy(&v, F.config + off - GMMIO_CONFIG, 4);
		return v;
	}
	return fake_reg(off);
}

uint16_t gd_mmio_read16(uintptr_t addr)
{
	uint16_t v;

	memcpy(&v, F.config + (addr - FAKE_BASE - GMMIO_CONFIG), 2);
	return v;
}

uint8_t gd_mmio_read8(uintptr_t addr)
{
	return F.config[addr - FAKE_BASE - GMMIO_CONFIG];
}

void gd_mmio_write32(uintptr_t addr, uint32_t v)
{
	uint32_t off = (uint32_t)(addr - FAKE_BASE);
	struct fq *q = F.qsel < NQ ? &F.q[F.qsel] : NULL;

	assert_true(addr >= FAKE_BASE && off < GMMIO_CONFIG && off % 4 == 0);
	switch (off) {
	case GMMIO_DEVICE_FEATURES_SEL: F.dfsel = v; break;
	case GMMIO_DRIVER_FEATURES_SEL: F.drfsel = v; break;
	case GMMIO_DRIVER_FEATURES:
		if (F.drfsel == 0)
			F.driver_features = (F.driver_features & ~0xffffffffULL) | v;
		else if (F.drfsel == 1)
			F.driver_features = (F.driver_features & 0xffffffffULL) |
					    (uint64_t)v << 32;
		break;
	case GMMIO_QUEUE_SEL: F.qsel = v; break;
	case GMMIO_QUEUE_NUM: if (q) q->num = v; break;
	case GMMIO_QUEUE_DESC_LOW: if (q) q->desc = (q->desc & ~0xffffffffULL) | v; break;
	case GMMIO_QUEUE_DESC_HIGH: if (q) q->desc = (q->desc & 0xffffffffULL) | (uint64_t)v << 32; break;
	case GMMIO_QUEUE_DRIVER_LOW: if (q) q->drv = (q->drv & ~0xffffffffULL) | v; break;
	case GMMIO_QUEUE_DRIVER_HIGH: if (q) q->drv = (q->drv & 0xffffffffULL) | (uint64_t)v << 32; break;
	case GMMIO_QUEUE_DEVICE_LOW: if (q) q->dev = (q->dev & ~0xffffffffULL) | v; break;
	case GMMIO_QUEUE_DEVICE_HIGH: if (q) q->dev = (q->dev & 0xffffffffULL) | (uint64_t)v << 32; break;
	case GMMIO_QUEUE_READY: if (q) q->ready = v; break;
	case GMMIO_QUEUE_NOTIFY:
		assert_true(v < NQ);
		/* Only a live device gets notified (3.1.1 step 8). */
		assert_true(F.status & GMMIO_S_DRIVER_OK);
		F.notifies[v]++;
		if (F.on_notify)
			F.on_notify(v);
		break;
	case GMMIO_STATUS:
		if (v == 0) {
			memset(F.q, 0, sizeof(F.q));
			F.driver_features = 0;
		}
		if ((v & GMMIO_S_FEATURES_OK) && F.refuse_fok)
			v &= ~(uint32_t)GMMIO_S_FEATURES_OK;
		F.status = v;
		break;
	default:
		fail_msg("write to read-only/unknown register 0x%x", off);
	}
}

static void fake_reset(uint32_t device_id, uint64_t features)
{
	memset(&F, 0, sizeof(F));
	F.magic = GMMIO_MAGIC_VALUE;
	F.version = 2;
	F.device_id = device_id;
	F.features = features | 1ULL << GMMIO_F_VERSION_1;
	F.qmax = 16;
}

/* Device side of the split ring. */
struct seg {
	uint8_t *p;
	uint32_t len;
	bool w;
};

static int dev_pop(unsigned qi, struct seg *s, int max, uint16_t *head)
{
	struct fq *q = &F.q[qi];
	struct gvq_avail *av = (struct gvq_avail *)(uintptr_t)q->drv;
	struct gvq_desc *d = (struct gvq_desc *)(uintptr_t)q->desc;
	uint16_t idx;
	int n = 0;

	assert_true(q->ready);
	if (q->last_avail == av->idx)
		return -1;
	idx = av->ring[q->last_avail % q->num];
	q->last_avail++;
	*head = idx;
	for (;;) {
		assert_true(idx < q->num);
		assert_true(n < max);
		s[n].p = (uint8_t *)(uintptr_t)d[idx].addr;
		s[n].len = d[idx].len;
		s[n].w = d[idx].flags & GVQ_DESC_F_WRITE;
		/* 2.7.4.2: no readable buffer after a writable one. */
		if (n > 0 && s[n - 1].w)
			assert_true(s[n].w);
		n++;
		if (!(d[idx].flags & GVQ_DESC_F_NEXT))
			break;
		idx = d[idx].next;
	}
	return n;
}

static void dev_push(unsigned qi, uint32_t id, uint32_t len)
{
	struct fq *q = &F.q[qi];
	struct gvq_used *u = (struct gvq_used *)(uintptr_t)q->dev;

	u->ring[u->idx % q->num].id = id;
	u->ring[u->idx % q->num].len = len;
	u->idx++;
}

static int setup(void **state)
{
	(void)state;
	nr_allocs = 0;
	fake_now = 1;
	idle_calls = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	while (nr_allocs)
		free(allocs[--nr_allocs]);
	return 0;
}

/* ---- transport ---- */

static void test_probe(void **state)
{
	struct gmmio d;

	(void)state;
	fake_reset(2, 0);
	assert_int_equal(gmmio_probe(&d, FAKE_BASE), 0);
	assert_int_equal(d.device_id, 2);
	F.magic = 0x12345678;
	assert_int_equal(gmmio_probe(&d, FAKE_BASE), -GD_ENODEV);
	fake_reset(2, 0);
	F.version = 1; /* legacy */
	assert_int_equal(gmmio_probe(&d, FAKE_BASE), -GD_ENODEV);
	fake_reset(0, 0); /* empty slot */
	assert_int_equal(gmmio_probe(&d, FAKE_BASE), -GD_ENODEV);
}

static void test_negotiate(void **state)
{
	struct gmmio d;

	(void)state;
	fake_reset(2, 1ULL << GBLK_F_RO | 1ULL << 3 | 1ULL << 40);
	F.status = 0x7f; /* left over from a previous driver */
	assert_int_equal(gmmio_probe(&d, FAKE_BASE), 0);
	assert_int_equal(gmmio_begin(&d), 0);
	assert_int_equal(F.status, GMMIO_S_ACKNOWLEDGE | GMMIO_S_DRIVER);
	assert_int_equal(gmmio_negotiate(&d, 1ULL << GBLK_F_RO |
						    1ULL << GBLK_F_FLUSH), 0);
	/* Only what was both wanted and offered, plus VERSION_1. */
	assert_int_equal(d.features, 1ULL << GBLK_F_RO | 1ULL << 32);
	assert_int_equal(F.driver_features, d.features);
	assert_true(F.status & GMMIO_S_FEATURES_OK);

	fake_reset(2, 0);
	F.features = 1ULL << GBLK_F_RO; /* legacy-only device */
	assert_int_equal(gmmio_probe(&d, FAKE_BASE), 0);
	assert_int_equal(gmmio_begin(&d), 0);
	assert_int_equal(gmmio_negotiate(&d, 0), -GD_ENOTSUP);
	assert_true(F.status & GMMIO_S_FAILED);

	fake_reset(2, 0);
	F.refuse_fok = true;
	assert_int_equal(gmmio_probe(&d, FAKE_BASE), 0);
	assert_int_equal(gmmio_begin(&d), 0);
	assert_int_equal(gmmio_negotiate(&d, 0), -GD_EIO);
	assert_true(F.status & GMMIO_S_FAILED);
}

/* ---- virtq ---- */

static void vq_bringup(struct gmmio *d, struct gvq *q, uint16_t want)
{
	assert_int_equal(gmmio_probe(d, FAKE_BASE), 0);
	assert_int_equal(gmmio_begin(d), 0);
	assert_int_equal(gmmio_negotiate(d, 0), 0);
	assert_int_equal(gvq_init(q, d, 0, want), 0);
	assert_int_equal(gmmio_driver_ok(d), 0);
}

static void test_virtq_setup(void **state)
{
	struct gmmio d;
	struct gvq q;

	(void)state;
	fake_reset(2, 0);
	F.qmax = 16;
	vq_bringup(&d, &q, 12); /* rounded down to a power of two */
	assert_int_equal(q.size, 8);
	assert_int_equal(F.q[0].num, 8);
	assert_int_equal(F.q[0].ready, 1);
	assert_int_equal(F.q[0].desc % 16, 0);
	assert_int_equal(F.q[0].drv % 2, 0);
	assert_int_equal(F.q[0].dev % 4, 0);
	assert_int_equal(gvq_num_free(&q), 8);

	fake_reset(2, 0);
	F.qmax = 4; /* capped by the device */
	vq_bringup(&d, &q, 64);
	assert_int_equal(q.size, 4);

	fake_reset(2, 0);
	F.qmax = 0;
	assert_int_equal(gmmio_probe(&d, FAKE_BASE), 0);
	assert_int_equal(gvq_init(&q, &d, 0, 8), -GD_ENODEV);
}

static void test_virtq_roundtrip(void **state)
{
	uint8_t a[10], b[20], c[30];
	struct gvq_buf out[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
	struct gvq_buf in[1] = { { c, sizeof(c) } };
	struct gmmio d;
	struct gvq q;
	struct seg s[8];
	uint16_t head;
	void *cookie;
	uint32_t len;
	int h;

	(void)state;
	fake_reset(2, 0);
	vq_bringup(&d, &q, 8);
	h = gvq_add(&q, out, 2, in, 1, &a);
	assert_true(h >= 0);
	assert_int_equal(gvq_num_free(&q), 5);
	/* Not visible before the kick. */
	assert_int_equal(dev_pop(0, s, 8, &head), -1);
	gvq_kick(&q);
	assert_int_equal(F.notifies[0], 1);
	assert_int_equal(dev_pop(0, s, 8, &head), 3);
	assert_int_equal(head, h);
	assert_ptr_equal(s[0].p, a);
	assert_int_equal(s[0].len, 10);
	assert_false(s[0].w);
	assert_ptr_equal(s[1].p, b);
	assert_false(s[1].w);
	assert_ptr_equal(s[2].p, c);
	assert_int_equal(s[2].len, 30);
	assert_true(s[2].w);

	assert_false(gvq_has_used(&q));
	assert_int_equal(gvq_get_used(&q, &cookie, &len), 0);
	dev_push(0, head, 17);
	assert_true(gvq_has_used(&q));
	assert_int_equal(gvq_get_used(&q, &cookie, &len), 1);
	assert_ptr_equal(cookie, &a);
	assert_int_equal(len, 17);
	assert_int_equal(gvq_num_free(&q), 8);

	/* The device asked not to be notified: no MMIO write. */
	((struct gvq_used *)(uintptr_t)F.q[0].dev)->flags = GVQ_USED_F_NO_NOTIFY;
	assert_true(gvq_add(&q, out, 1, NULL, 0, &b) >= 0);
	gvq_kick(&q);
	assert_int_equal(F.notifies[0], 1);
	assert_int_equal(dev_pop(0, s, 8, &head), 1);
	/* A kick with nothing added does nothing either. */
	((struct gvq_used *)(uintptr_t)F.q[0].dev)->flags = 0;
	gvq_kick(&q);
	assert_int_equal(F.notifies[0], 1);
}

static void test_virtq_full_and_args(void **state)
{
	uint8_t buf[8];
	struct gvq_buf one = { buf, 8 }, zero = { buf, 0 };
	struct gmmio d;
	struct gvq q;
	struct seg s[8];
	uint16_t heads[8], head;
	void *cookie;
	uint32_t len;
	int i;

	(void)state;
	fake_reset(2, 0);
	vq_bringup(&d, &q, 8);
	assert_int_equal(gvq_add(&q, NULL, 0, NULL, 0, buf), -GD_EINVAL);
	assert_int_equal(gvq_add(&q, &one, 1, NULL, 0, NULL), -GD_EINVAL);
	assert_int_equal(gvq_add(&q, &zero, 1, NULL, 0, buf), -GD_EINVAL);
	for (i = 0; i < 8; i++)
		assert_true(gvq_add(&q, &one, 1, NULL, 0, buf + i) >= 0);
	assert_int_equal(gvq_add(&q, &one, 1, NULL, 0, buf), -GD_ENOSPC);
	gvq_kick(&q);
	for (i = 0; i < 8; i++)
		assert_int_equal(dev_pop(0, s, 8, &heads[i]), 1);
	/* Complete out of order: every cookie comes back exactly once. */
	for (i = 7; i >= 0; i--)
		dev_push(0, heads[i], 0);
	for (i = 7; i >= 0; i--) {
		assert_int_equal(gvq_get_used(&q, &cookie, &len), 1);
		assert_ptr_equal(cookie, buf + i);
	}
	assert_int_equal(gvq_num_free(&q), 8);
	/* Many laps of the ring with 3-descriptor chains. */
	for (i = 0; i < 100; i++) {
		struct gvq_buf o[2] = { one, one };

		assert_true(gvq_add(&q, o, 2, &one, 1, buf) >= 0);
		gvq_kick(&q);
		assert_int_equal(dev_pop(0, s, 8, &head), 3);
		dev_push(0, head, 8);
		assert_int_equal(gvq_get_used(&q, &cookie, &len), 1);
		assert_int_equal(len, 8);
	}
	assert_int_equal(gvq_num_free(&q), 8);
}

static void test_virtq_bad_device(void **state)
{
	uint8_t buf[8];
	struct gvq_buf one = { buf, 8 };
	struct gmmio d;
	struct gvq q;
	struct seg s[8];
	struct gvq_used *u;
	uint16_t head;
	void *cookie;
	uint32_t len;

	(void)state;
	fake_reset(2, 0);
	vq_bringup(&d, &q, 8);
	u = (struct gvq_used *)(uintptr_t)F.q[0].dev;
	assert_true(gvq_add(&q, NULL, 0, &one, 1, buf) >= 0);
	gvq_kick(&q);
	assert_int_equal(dev_pop(0, s, 8, &head), 1);

	dev_push(0, 8, 0); /* id out of range */
	assert_int_equal(gvq_get_used(&q, &cookie, &len), -GD_EIO);
	dev_push(0, (head + 1) % 8, 0); /* id not in flight */
	assert_int_equal(gvq_get_used(&q, &cookie, &len), -GD_EIO);
	dev_push(0, head, 1000); /* more than the 8 writable bytes */
	assert_int_equal(gvq_get_used(&q, &cookie, &len), 1);
	assert_int_equal(len, 8);
	assert_int_equal(q.errors, 3);
	dev_push(0, head, 0); /* completing it twice */
	assert_int_equal(gvq_get_used(&q, &cookie, &len), -GD_EIO);
	/* An index more than a ring ahead. */
	u->idx = (uint16_t)(u->idx + 9);
	assert_int_equal(gvq_get_used(&q, &cookie, &len), -GD_EIO);
	assert_int_equal(gvq_num_free(&q), 8);
}

static void test_virtq_wait_timeout(void **state)
{
	uint8_t buf[8];
	struct gvq_buf one = { buf, 8 };
	struct gmmio d;
	struct gvq q;
	void *cookie;
	uint32_t len;

	(void)state;
	fake_reset(2, 0);
	vq_bringup(&d, &q, 8);
	assert_true(gvq_add(&q, &one, 1, NULL, 0, buf) >= 0);
	gvq_kick(&q);
	/* Nothing completes: 4 spins, idle (1 ms passes), ... until 5 ms. */
	assert_int_equal(gvq_wait_used(&q, &cookie, &len, 4, 5000000),
			 -GD_ETIMEDOUT);
	assert_int_equal(idle_calls, 5);
}

/* ---- blk ---- */

#define DISK_SECTORS 64
static uint8_t disk[DISK_SECTORS * 512];
static bool disk_ro;
static uint8_t force_status = 0xff;
static unsigned flushes;
static bool blk_defer; /* leave requests on the ring until blk_service() */

static void blk_service(void)
{
	struct seg s[8];
	uint16_t head;
	int n;

	while ((n = dev_pop(0, s, 8, &head)) > 0) {
		uint32_t type, written = 1;
		uint64_t sector;
		uint8_t st = 0;

		assert_true(n >= 2);
		assert_int_equal(s[0].len, 16);
		assert_false(s[0].w);
		memcpy(&type, s[0].p, 4);
		memcpy(&sector, s[0].p + 8, 8);
		assert_int_equal(s[n - 1].len, 1);
		assert_true(s[n - 1].w);
		if (type == GBLK_T_IN || type == GBLK_T_OUT) {
			assert_int_equal(n, 3);
			assert_int_equal(s[1].w, type == GBLK_T_IN);
			assert_true(sector * 512 + s[1].len <= sizeof(disk));
			if (type == GBLK_T_IN) {
				memcpy(s[1].p, disk + sector * 512, s[1].len);
				written += s[1].len;
			} else if (disk_ro) {
				st = GBLK_S_IOERR;
			} else {
				memcpy(disk + sector * 512, s[1].p, s[1].len);
			}
		} else if (type == GBLK_T_FLUSH) {
			assert_int_equal(n, 2);
			flushes++;
		} else {
			st = GBLK_S_UNSUPP;
		}
		if (force_status != 0xff)
			st = force_status;
		*s[n - 1].p = st;
		dev_push(0, head, written);
	}
}

static void blk_notify(unsigned q)
{
	assert_int_equal(q, 0);
	if (!blk_defer)
		blk_service();
}

static void blk_bringup(struct gblk *b, uint64_t features)
{
	uint64_t cap = DISK_SECTORS;

	fake_reset(GBLK_DEVICE_ID, features);
	memcpy(F.config, &cap, 8);
	F.on_notify = blk_notify;
	memset(disk, 0, sizeof(disk));
	disk_ro = false;
	force_status = 0xff;
	flushes = 0;
	blk_defer = false;
	assert_int_equal(gblk_init(b, FAKE_BASE, 0), 0);
	assert_int_equal(b->capacity, DISK_SECTORS);
}

static void test_blk_rw(void **state)
{
	static struct gblk b;
	uint8_t w[3 * 512], r[3 * 512];
	unsigned i;

	(void)state;
	blk_bringup(&b, 1ULL << GBLK_F_FLUSH);
	assert_true(b.has_flush);
	assert_false(b.read_only);
	assert_int_equal(b.vq.size, 16);
	for (i = 0; i < sizeof(w); i++)
		w[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(gblk_write(&b, 5, w, 3), 0);
	assert_memory_equal(disk + 5 * 512, w, sizeof(w));
	assert_int_equal(disk[5 * 512 - 1], 0); /* neighbours untouched */
	assert_int_equal(disk[8 * 512], 0);
	memset(r, 0, sizeof(r));
	assert_int_equal(gblk_read(&b, 5, r, 3), 0);
	assert_memory_equal(r, w, sizeof(r));
	assert_int_equal(gblk_flush(&b), 0);
	assert_int_equal(flushes, 1);
	/* The last sector is fine, one past it is not, nor wrapping. */
	assert_int_equal(gblk_read(&b, DISK_SECTORS - 1, r, 1), 0);
	assert_int_equal(gblk_read(&b, DISK_SECTORS - 1, r, 2), -GD_EINVAL);
	assert_int_equal(gblk_read(&b, UINT64_MAX, r, 2), -GD_EINVAL);
	assert_int_equal(gblk_submit(&b, GBLK_T_IN, 0, r, 100, r, 0), -GD_EINVAL);
	assert_int_equal(gblk_submit(&b, 99, 0, r, 512, r, 0), -GD_EINVAL);
	/* Device errors become errno values. */
	force_status = GBLK_S_IOERR;
	assert_int_equal(gblk_read(&b, 0, r, 1), -GD_EIO);
	force_status = GBLK_S_UNSUPP;
	assert_int_equal(gblk_read(&b, 0, r, 1), -GD_ENOTSUP);
	force_status = 0x42;
	assert_int_equal(gblk_read(&b, 0, r, 1), -GD_EIO);
	assert_int_equal(b.inflight, 0);
}

static void test_blk_no_flush_and_ro(void **state)
{
	static struct gblk b;
	uint8_t buf[512] = { 1 };
	void *cookie;
	int result;

	(void)state;
	blk_bringup(&b, 1ULL << GBLK_F_RO);
	assert_true(b.read_only);
	assert_false(b.has_flush);
	assert_int_equal(gblk_flush(&b), 0); /* nothing to flush */
	assert_int_equal(flushes, 0);
	assert_int_equal(F.notifies[0], 0);
	assert_int_equal(gblk_write(&b, 0, buf, 1), -GD_EROFS);
	assert_int_equal(gblk_submit(&b, GBLK_T_OUT, 0, buf, 512, buf, 0),
			 -GD_EROFS);
	/* Forced past the driver, the device refuses it. */
	disk_ro = true;
	assert_int_equal(gblk_submit(&b, GBLK_T_OUT, 0, buf, 512, buf,
				     GBLK_F_IGNORE_RO), 0);
	gblk_kick(&b);
	assert_int_equal(gblk_reap(&b, &cookie, &result, true), 1);
	assert_ptr_equal(cookie, buf);
	assert_int_equal(result, -GD_EIO);
	assert_int_equal(disk[0], 0);
}

static void test_blk_async(void **state)
{
	static struct gblk b;
	static uint8_t bufs[8][512];
	bool seen[8] = { false };
	void *cookie;
	int result, i;

	(void)state;
	blk_bringup(&b, 0);
	blk_defer = true;
	/* 16 descriptors hold five 3-descriptor requests. */
	for (i = 0; i < 5; i++) {
		memset(bufs[i], i + 1, 512);
		assert_int_equal(gblk_submit(&b, GBLK_T_OUT, (uint64_t)i,
					     bufs[i], 512, bufs[i], 0), 0);
	}
	assert_int_equal(gblk_submit(&b, GBLK_T_OUT, 5, bufs[5], 512, bufs[5],
				     0), -GD_ENOSPC);
	assert_int_equal(b.inflight, 5);
	/* A synchronous call refuses to mix with requests in flight. */
	assert_int_equal(gblk_read(&b, 0, bufs[7], 1), -GD_EBUSY);
	assert_int_equal(gblk_reap(&b, &cookie, &result, false), 0);
	gblk_kick(&b);
	assert_int_equal(F.notifies[0], 1);
	blk_service();
	for (i = 0; i < 5; i++) {
		int k;

		assert_int_equal(gblk_reap(&b, &cookie, &result, false), 1);
		assert_int_equal(result, 0);
		k = (int)((uint8_t(*)[512])cookie - bufs);
		assert_true(k >= 0 && k < 5 && !seen[k]);
		seen[k] = true;
		assert_int_equal(disk[k * 512 + 511], k + 1);
	}
	assert_int_equal(gblk_reap(&b, &cookie, &result, true), 0);
	assert_int_equal(b.inflight, 0);
}

/* ---- vsock ---- */

#define GCID 3
#define MAX_PKTS 64
static struct pkt {
	struct vsock_hdr h;
	uint8_t data[GVSOCK_PKT_MAX];
} sent[MAX_PKTS];
static unsigned nr_sent;

static void vsock_notify(unsigned q)
{
	struct seg s[4];
	uint16_t head;
	int n;

	if (q != 1)
		return;
	while ((n = dev_pop(1, s, 4, &head)) > 0) {
		assert_int_equal(n, 1);
		assert_false(s[0].w);
		assert_true(s[0].len >= sizeof(struct vsock_hdr));
		assert_true(nr_sent < MAX_PKTS);
		memcpy(&sent[nr_sent].h, s[0].p, sizeof(struct vsock_hdr));
		assert_int_equal(sent[nr_sent].h.len,
				 s[0].len - sizeof(struct vsock_hdr));
		memcpy(sent[nr_sent].data, s[0].p + sizeof(struct vsock_hdr),
		       sent[nr_sent].h.len);
		nr_sent++;
		dev_push(1, head, 0);
	}
}

/* Delivers a packet from the host into the next rx buffer; `claim` is the
 * used length the device reports (0 = the true one). */
static void inject_raw(const struct vsock_hdr *h, const void *data,
		       uint32_t datalen, uint32_t claim)
{
	struct seg s[4];
	uint16_t head;

	assert_int_equal(dev_pop(0, s, 4, &head), 1);
	assert_true(s[0].w);
	assert_true(s[0].len >= sizeof(*h) + datalen);
	memcpy(s[0].p, h, sizeof(*h));
	if (datalen)
		memcpy(s[0].p + sizeof(*h), data, datalen);
	dev_push(0, head, claim ? claim : (uint32_t)sizeof(*h) + datalen);
}

static void inject(uint16_t op, uint32_t src_port, uint32_t dst_port,
		   const void *data, uint32_t len, uint32_t flags,
		   uint32_t buf_alloc, uint32_t fwd_cnt)
{
	struct vsock_hdr h = {
		.src_cid = 2, .dst_cid = GCID, .src_port = src_port,
		.dst_port = dst_port, .len = len, .type = VSOCK_TYPE_STREAM,
		.op = op, .flags = flags, .buf_alloc = buf_alloc,
		.fwd_cnt = fwd_cnt,
	};

	inject_raw(&h, data, len, 0);
}

static void vsock_bringup(struct gvsock *v, uint32_t buf_size)
{
	uint64_t cid = GCID;

	fake_reset(GVSOCK_DEVICE_ID, 1ULL << GVSOCK_F_STREAM);
	memcpy(F.config, &cid, 8);
	F.on_notify = vsock_notify;
	nr_sent = 0;
	assert_int_equal(gvsock_init(v, FAKE_BASE, 8, buf_size), 0);
	assert_int_equal(v->cid, GCID);
	assert_true(F.driver_features & 1ULL << GVSOCK_F_STREAM);
	/* rx (16) and event (8) buffers are posted and published. */
	assert_int_equal(((struct gvq_avail *)(uintptr_t)F.q[0].drv)->idx, 16);
	assert_int_equal(((struct gvq_avail *)(uintptr_t)F.q[2].drv)->idx, 8);
}

static const struct pkt *last_sent(void)
{
	assert_true(nr_sent > 0);
	return &sent[nr_sent - 1];
}

/* Accepts a connection from host port 5000 to guest port 1234. */
static int vsock_accept_one(struct gvsock *v, uint32_t peer_buf)
{
	int h;

	inject(VSOCK_OP_REQUEST, 5000, 1234, NULL, 0, 0, peer_buf, 0);
	assert_true(gvsock_poll(v) > 0);
	assert_int_equal(last_sent()->h.op, VSOCK_OP_RESPONSE);
	h = gvsock_accept(v, 1234);
	assert_true(h >= 0);
	assert_int_equal(gvsock_connected(v, h), 1);
	return h;
}

static void test_vsock_accept_rw(void **state)
{
	static struct gvsock v;
	const struct pkt *p;
	char buf[64];
	int h;

	(void)state;
	vsock_bringup(&v, 0);
	assert_int_equal(gvsock_listen(&v, 1234), 0);
	assert_int_equal(gvsock_listen(&v, 1234), -GD_EADDRINUSE);
	assert_int_equal(gvsock_accept(&v, 0), -GD_EAGAIN);
	h = vsock_accept_one(&v, 1000);
	p = last_sent();
	assert_int_equal(p->h.src_cid, GCID);
	assert_int_equal(p->h.dst_cid, 2);
	assert_int_equal(p->h.src_port, 1234);
	assert_int_equal(p->h.dst_port, 5000);
	assert_int_equal(p->h.type, VSOCK_TYPE_STREAM);
	assert_int_equal(p->h.buf_alloc, 64 * 1024);
	assert_int_equal(gvsock_accept(&v, 0), -GD_EAGAIN);

	assert_int_equal(gvsock_recv(&v, h, buf, sizeof(buf)), -GD_EAGAIN);
	inject(VSOCK_OP_RW, 5000, 1234, "hello", 5, 0, 1000, 0);
	inject(VSOCK_OP_RW, 5000, 1234, " world", 6, 0, 1000, 0);
	/* Two packets in, plus the RESPONSE's tx slot coming back. */
	assert_int_equal(gvsock_poll(&v), 3);
	assert_int_equal(gvsock_rx_avail(&v, h), 11);
	assert_int_equal(gvsock_recv(&v, h, buf, 3), 3);
	assert_memory_equal(buf, "hel", 3);
	assert_int_equal(gvsock_recv(&v, h, buf, sizeof(buf)), 8);
	assert_memory_equal(buf, "lo world", 8);

	assert_int_equal(gvsock_send(&v, h, "xyz", 3), 3);
	p = last_sent();
	assert_int_equal(p->h.op, VSOCK_OP_RW);
	assert_int_equal(p->h.len, 3);
	assert_memory_equal(p->data, "xyz", 3);
	assert_int_equal(p->h.fwd_cnt, 11); /* our consumption rides along */

	/* Peer shuts down sending: EOF after the data, sends still work. */
	inject(VSOCK_OP_RW, 5000, 1234, "!", 1, 0, 1000, 3);
	inject(VSOCK_OP_SHUTDOWN, 5000, 1234, NULL, 0, VSOCK_SHUTDOWN_SEND,
	       1000, 3);
	gvsock_poll(&v);
	assert_int_equal(gvsock_recv(&v, h, buf, sizeof(buf)), 1);
	assert_int_equal(gvsock_recv(&v, h, buf, sizeof(buf)), 0);
	assert_int_equal(gvsock_send(&v, h, "a", 1), 1);
	/* Then receiving: the connection is over, we answer RST. */
	inject(VSOCK_OP_SHUTDOWN, 5000, 1234, NULL, 0, VSOCK_SHUTDOWN_RCV,
	       1000, 4);
	gvsock_poll(&v);
	assert_int_equal(last_sent()->h.op, VSOCK_OP_RST);
	assert_int_equal(gvsock_send(&v, h, "a", 1), -GD_EPIPE);
	gvsock_close(&v, h);
	assert_int_equal(gvsock_connected(&v, h), -GD_ENOTCONN);
}

static void test_vsock_credit(void **state)
{
	static struct gvsock v;
	char big[10000];
	unsigned before;
	int h;

	(void)state;
	vsock_bringup(&v, 0);
	assert_int_equal(gvsock_listen(&v, 1234), 0);
	h = vsock_accept_one(&v, 6000);
	memset(big, 'q', sizeof(big));
	/* Credit 6000: one full packet and the rest of the window. */
	assert_int_equal(gvsock_tx_credit(&v, h), 6000);
	before = nr_sent;
	assert_int_equal(gvsock_send(&v, h, big, sizeof(big)), 6000);
	assert_int_equal(nr_sent - before, 2);
	assert_int_equal(sent[before].h.len, GVSOCK_PKT_MAX);
	assert_int_equal(sent[before + 1].h.len, 6000 - GVSOCK_PKT_MAX);
	/* Out of credit: ask once, not on every attempt. */
	assert_int_equal(gvsock_send(&v, h, big, 10), -GD_EAGAIN);
	assert_int_equal(last_sent()->h.op, VSOCK_OP_CREDIT_REQUEST);
	before = nr_sent;
	assert_int_equal(gvsock_send(&v, h, big, 10), -GD_EAGAIN);
	assert_int_equal(nr_sent, before);
	/* The peer consumed 2500 bytes. */
	inject(VSOCK_OP_CREDIT_UPDATE, 5000, 1234, NULL, 0, 0, 6000, 2500);
	gvsock_poll(&v);
	assert_int_equal(gvsock_send(&v, h, big, sizeof(big)), 2500);
	/* A peer that shrinks its buffer below what is in flight gives no
	 * credit rather than a huge unsigned one. */
	inject(VSOCK_OP_CREDIT_UPDATE, 5000, 1234, NULL, 0, 0, 100, 2500);
	gvsock_poll(&v);
	assert_int_equal(gvsock_tx_credit(&v, h), 0);
	/* The peer asks for our credit. */
	inject(VSOCK_OP_CREDIT_REQUEST, 5000, 1234, NULL, 0, 0, 100, 2500);
	gvsock_poll(&v);
	assert_int_equal(last_sent()->h.op, VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(last_sent()->h.buf_alloc, 64 * 1024);
}

static void test_vsock_rx_credit_update(void **state)
{
	static struct gvsock v;
	char data[GVSOCK_PKT_MAX], out[GVSOCK_PKT_MAX];
	unsigned before;
	int h, i;

	(void)state;
	vsock_bringup(&v, 16 * 1024);
	assert_int_equal(gvsock_listen(&v, 1234), 0);
	h = vsock_accept_one(&v, 1 << 20);
	/* Fill the 16 KiB window exactly. */
	for (i = 0; i < 4; i++) {
		memset(data, 'a' + i, sizeof(data));
		inject(VSOCK_OP_RW, 5000, 1234, data, sizeof(data), 0,
		       1 << 20, 0);
	}
	gvsock_poll(&v);
	assert_int_equal(gvsock_rx_avail(&v, h), 16 * 1024);
	/* Reading a quarter of the buffer announces the space. */
	before = nr_sent;
	assert_int_equal(gvsock_recv(&v, h, out, 1000), 1000);
	assert_int_equal(nr_sent, before);
	assert_int_equal(gvsock_recv(&v, h, out, sizeof(out)), sizeof(out));
	assert_int_equal(nr_sent, before + 1);
	assert_int_equal(last_sent()->h.op, VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(last_sent()->h.fwd_cnt, 1000 + sizeof(out));
	assert_int_equal(out[sizeof(out) - 1], 'b');
	/* The ring wraps: a new packet lands across the end. */
	memset(data, 'z', sizeof(data));
	inject(VSOCK_OP_RW, 5000, 1234, data, sizeof(data), 0, 1 << 20, 0);
	gvsock_poll(&v);
	for (i = 0; i < 3; i++)
		assert_true(gvsock_recv(&v, h, out, sizeof(out)) > 0);
	/* 16384 - 5096 read + 4096 new = 15384 = 3 * 4096 + 3096 */
	assert_int_equal(gvsock_recv(&v, h, out, sizeof(out)), 3096);
	assert_int_equal(out[3095], 'z');
	assert_int_equal(gvsock_rx_avail(&v, h), 0);
}

static void test_vsock_bad_packets(void **state)
{
	static struct gvsock v;
	struct vsock_hdr hdr;
	char data[GVSOCK_PKT_MAX], out[64];
	int h;

	(void)state;
	vsock_bringup(&v, 8 * 1024);
	assert_int_equal(gvsock_listen(&v, 1234), 0);
	/* REQUEST to a port nobody listens on: RST. */
	inject(VSOCK_OP_REQUEST, 5000, 99, NULL, 0, 0, 100, 0);
	gvsock_poll(&v);
	assert_int_equal(last_sent()->h.op, VSOCK_OP_RST);
	assert_int_equal(last_sent()->h.src_port, 99);
	assert_int_equal(last_sent()->h.dst_port, 5000);
	assert_int_equal(gvsock_accept(&v, 0), -GD_EAGAIN);

	h = vsock_accept_one(&v, 1000);
	/* Header claims more payload than the device wrote: dropped. */
	memset(&hdr, 0, sizeof(hdr));
	hdr.src_cid = 2, hdr.dst_cid = GCID, hdr.src_port = 5000;
	hdr.dst_port = 1234, hdr.type = VSOCK_TYPE_STREAM;
	hdr.op = VSOCK_OP_RW, hdr.len = 100;
	inject_raw(&hdr, "abcdefghij", 10, sizeof(hdr) + 10);
	/* Shorter than a header: dropped. */
	inject_raw(&hdr, NULL, 0, 20);
	/* Wrong destination CID: dropped. */
	hdr.dst_cid = 77, hdr.len = 2;
	inject_raw(&hdr, "xx", 2, 0);
	/* Payload on a non-RW op: dropped. */
	hdr.dst_cid = GCID, hdr.op = VSOCK_OP_CREDIT_UPDATE;
	inject_raw(&hdr, "xx", 2, 0);
	gvsock_poll(&v);
	assert_int_equal(v.st.bad_pkts, 4);
	assert_int_equal(gvsock_rx_avail(&v, h), 0);
	/* A device claiming more than the rx buffer is clamped by virtq. */
	hdr.op = VSOCK_OP_RW, hdr.len = 5000;
	inject_raw(&hdr, NULL, 0, 100000);
	gvsock_poll(&v);
	assert_int_equal(v.st.bad_pkts, 5);

	/* A peer overrunning our 8 KiB of credit: RST, the connection ends
	 * and nothing beyond the buffer was written. */
	memset(data, 'c', sizeof(data));
	inject(VSOCK_OP_RW, 5000, 1234, data, sizeof(data), 0, 1000, 0);
	inject(VSOCK_OP_RW, 5000, 1234, data, sizeof(data), 0, 1000, 0);
	inject(VSOCK_OP_RW, 5000, 1234, data, 1, 0, 1000, 0);
	gvsock_poll(&v);
	assert_int_equal(v.st.credit_violations, 1);
	assert_int_equal(last_sent()->h.op, VSOCK_OP_RST);
	assert_int_equal(gvsock_connected(&v, h), -GD_ECONNRESET);
	/* Buffered data is still readable, then the reset shows. */
	assert_int_equal(gvsock_recv(&v, h, out, sizeof(out)), sizeof(out));
	while (gvsock_recv(&v, h, out, sizeof(out)) > 0)
		;
	assert_int_equal(gvsock_recv(&v, h, out, sizeof(out)), -GD_ECONNRESET);
	assert_int_equal(gvsock_send(&v, h, "a", 1), -GD_ECONNRESET);
	/* Packets for the dead connection get RST, not data. */
	inject(VSOCK_OP_RW, 5000, 1234, "late", 4, 0, 1000, 0);
	gvsock_poll(&v);
	assert_int_equal(last_sent()->h.op, VSOCK_OP_RST);
	gvsock_close(&v, h);
	/* Unknown socket type: RST. */
	hdr.type = 9, hdr.op = VSOCK_OP_REQUEST, hdr.len = 0;
	inject_raw(&hdr, NULL, 0, 0);
	gvsock_poll(&v);
	assert_int_equal(last_sent()->h.op, VSOCK_OP_RST);
	assert_int_equal(gvsock_accept(&v, 0), -GD_EAGAIN);
}

static void test_vsock_connect_close(void **state)
{
	static struct gvsock v;
	const struct pkt *p;
	uint32_t lport;
	int h, h2;

	(void)state;
	vsock_bringup(&v, 0);
	h = gvsock_connect(&v, 2, 7000);
	assert_true(h >= 0);
	p = last_sent();
	assert_int_equal(p->h.op, VSOCK_OP_REQUEST);
	assert_int_equal(p->h.dst_port, 7000);
	assert_true(p->h.src_port >= 49152);
	lport = p->h.src_port;
	assert_int_equal(gvsock_connected(&v, h), 0);
	assert_int_equal(gvsock_send(&v, h, "x", 1), -GD_ENOTCONN);
	inject(VSOCK_OP_RESPONSE, 7000, lport, NULL, 0, 0, 4096, 0);
	gvsock_poll(&v);
	assert_int_equal(gvsock_connected(&v, h), 1);
	assert_int_equal(gvsock_send(&v, h, "x", 1), 1);

	/* A second connection gets another local port; this one is refused. */
	h2 = gvsock_connect(&v, 2, 7000);
	assert_true(h2 >= 0 && h2 != h);
	assert_true(last_sent()->h.src_port != lport);
	inject(VSOCK_OP_RST, 7000, last_sent()->h.src_port, NULL, 0, 0, 0, 0);
	gvsock_poll(&v);
	assert_int_equal(gvsock_connected(&v, h2), -GD_ECONNREFUSED);
	gvsock_close(&v, h2);

	/* Clean close: SHUTDOWN both ways, then the peer's RST frees it. */
	gvsock_close(&v, h);
	p = last_sent();
	assert_int_equal(p->h.op, VSOCK_OP_SHUTDOWN);
	assert_int_equal(p->h.flags, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
	assert_int_equal(v.conns[h].state, GVSOCK_CLOSING);
	inject(VSOCK_OP_RST, 7000, lport, NULL, 0, 0, 0, 0);
	gvsock_poll(&v);
	assert_int_equal(v.conns[h].state, GVSOCK_FREE);

	/* A peer that never answers: our RST after the timeout. */
	h = gvsock_connect(&v, 2, 7000);
	lport = last_sent()->h.src_port;
	inject(VSOCK_OP_RESPONSE, 7000, lport, NULL, 0, 0, 4096, 0);
	gvsock_poll(&v);
	gvsock_close(&v, h);
	gvsock_poll(&v);
	assert_int_equal(v.conns[h].state, GVSOCK_CLOSING);
	fake_now += GVSOCK_CLOSE_TIMEOUT_NS;
	gvsock_poll(&v);
	assert_int_equal(last_sent()->h.op, VSOCK_OP_RST);
	assert_int_equal(v.conns[h].state, GVSOCK_FREE);
}

static void test_vsock_transport_reset(void **state)
{
	static struct gvsock v;
	struct seg s[2];
	uint16_t head;
	uint64_t cid = 42;
	char out[8];
	int h;

	(void)state;
	vsock_bringup(&v, 0);
	assert_int_equal(gvsock_listen(&v, 1234), 0);
	h = vsock_accept_one(&v, 1000);
	inject(VSOCK_OP_RW, 5000, 1234, "ab", 2, 0, 1000, 0);
	gvsock_poll(&v);
	/* 5.10.6.6: the event, with a new CID (as after a restore). */
	memcpy(F.config, &cid, 8);
	assert_int_equal(dev_pop(2, s, 2, &head), 1);
	assert_int_equal(s[0].len, 4);
	memset(s[0].p, 0, 4);
	dev_push(2, head, 4);
	F.config_reads = 0;
	gvsock_poll(&v);
	assert_int_equal(v.st.transport_resets, 1);
	assert_int_equal(v.cid, 42);
	/* The new CID in one 32-bit read: no generation loop (each read is
	 * an exit to the VMM, and this is on every restore's path). */
	assert_int_equal(F.config_reads, 1);
	assert_int_equal(gvsock_recv(&v, h, out, sizeof(out)), 2);
	assert_int_equal(gvsock_recv(&v, h, out, sizeof(out)), -GD_ECONNRESET);
	gvsock_close(&v, h);
	/* The event buffer was given back; the listener still works. */
	assert_int_equal(((struct gvq_avail *)(uintptr_t)F.q[2].drv)->idx, 9);
	{
		struct vsock_hdr hd = {
			.src_cid = 2, .dst_cid = 42, .src_port = 6000,
			.dst_port = 1234, .type = VSOCK_TYPE_STREAM,
			.op = VSOCK_OP_REQUEST, .buf_alloc = 100,
		};

		inject_raw(&hd, NULL, 0, 0);
	}
	gvsock_poll(&v);
	assert_int_equal(last_sent()->h.op, VSOCK_OP_RESPONSE);
	assert_int_equal(last_sent()->h.src_cid, 42);
	assert_true(gvsock_accept(&v, 1234) >= 0);
}

static void test_vsock_many_conns(void **state)
{
	static struct gvsock v;
	int hs[8], i;

	(void)state;
	vsock_bringup(&v, 4096);
	assert_int_equal(gvsock_listen(&v, 1234), 0);
	for (i = 0; i < 8; i++) {
		inject(VSOCK_OP_REQUEST, 6000 + (uint32_t)i, 1234, NULL, 0, 0,
		       1000, 0);
	}
	gvsock_poll(&v);
	for (i = 0; i < 8; i++) {
		hs[i] = gvsock_accept(&v, 1234);
		assert_true(hs[i] >= 0);
	}
	/* Table full (8): the ninth is refused with RST. */
	inject(VSOCK_OP_REQUEST, 7000, 1234, NULL, 0, 0, 1000, 0);
	gvsock_poll(&v);
	assert_int_equal(last_sent()->h.op, VSOCK_OP_RST);
	assert_int_equal(last_sent()->h.dst_port, 7000);
	/* Data goes to the right connection. */
	for (i = 0; i < 8; i++) {
		char c = (char)('A' + i);

		inject(VSOCK_OP_RW, 6000 + (uint32_t)i, 1234, &c, 1, 0, 1000, 0);
	}
	gvsock_poll(&v);
	for (i = 0; i < 8; i++) {
		char c = 0;

		assert_int_equal(gvsock_recv(&v, hs[i], &c, 1), 1);
		assert_int_equal(c, 'A' + i);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_negotiate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtq_setup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtq_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtq_full_and_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtq_bad_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtq_wait_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blk_rw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blk_no_flush_and_ro, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blk_async, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vsock_accept_rw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vsock_credit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vsock_rx_credit_update, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vsock_bad_packets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vsock_connect_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vsock_transport_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vsock_many_conns, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
