/* Unit tests: virtio-blk request parsing, and whole requests through the
 * transport, the split ring and the io_uring / sync backends on a temp file. */
// link: vmm/mem.c vmm/log.c vmm/evloop.c vmm/thread.c vmm/virtio/virtq.c
// link: vmm/virtio/mmio.c vmm/virtio/blk.c vmm/virtio/disk_uring.c
// link: vmm/virtio/disk_sync.c vmm/kvm.c
// link: snapshots/snap_prop.c
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "evloop.h"
#include "log.h"
#include "mem.h"
#include "virtio/blk.h"
#include "virtio/mmio.h"

/* ------------------------------------------------------------ parser */

static uint8_t buf[8192];

/* Appends a segment of `len` bytes at buf + off. */
static void seg(struct virtq_chain *c, size_t off, uint32_t len, bool w)
{
	c->seg[c->nr_segs++] = (struct virtq_seg){ buf + off, len, w };
	if (w)
		c->writable_len += len;
	else
		c->readable_len += len;
}

static void hdr(size_t off, uint32_t type, uint64_t sector)
{
	memset(buf + off, 0, 16);
	memcpy(buf + off, &type, 4);
	memcpy(buf + off + 8, &sector, 8);
}

static int parse(struct virtq_chain *c, uint64_t cap, bool ro,
		 struct vblk_req *r)
{
	return vblk_parse_req(c, cap, ro, r);
}

static void test_parse_ok(void **state)
{
	struct virtq_chain c = { 0 };
	struct vblk_req r;
	struct iovec iov[4];

	(void)state;
	/* IN: header, 1024 data bytes in two writable segments, status. */
	hdr(0, VIRTIO_BLK_T_IN, 6);
	seg(&c, 0, 16, false);
	seg(&c, 100, 512, true);
	seg(&c, 1000, 513, true); /* 512 data + the status byte */
	assert_int_equal(parse(&c, 8, false, &r), 0);
	assert_int_equal(r.type, VIRTIO_BLK_T_IN);
	assert_int_equal(r.sector, 6);
	assert_int_equal(r.data_len, 1024);
	assert_ptr_equal(r.status, buf + 1000 + 512);
	assert_int_equal(vblk_req_iov(&c, &r, iov, 4), 2);
	assert_ptr_equal(iov[1].iov_base, buf + 1000);
	assert_int_equal(iov[1].iov_len, 512);
	assert_int_equal(vblk_req_iov(&c, &r, iov, 1), -E2BIG);

	/* OUT with the header and data sharing a segment (2.7.4: no
	 * assumption about the framing). */
	memset(&c, 0, sizeof(c));
	hdr(0, VIRTIO_BLK_T_OUT, 0);
	seg(&c, 0, 16 + 512, false);
	seg(&c, 2000, 1, true);
	assert_int_equal(parse(&c, 1, false, &r), 0);
	assert_int_equal(r.data_len, 512);
	assert_int_equal(vblk_req_iov(&c, &r, iov, 4), 1);
	assert_ptr_equal(iov[0].iov_base, buf + 16);

	/* The header split over two segments. */
	memset(&c, 0, sizeof(c));
	hdr(0, VIRTIO_BLK_T_FLUSH, 0);
	seg(&c, 0, 4, false);
	seg(&c, 4, 12, false);
	seg(&c, 2000, 1, true);
	assert_int_equal(parse(&c, 1, false, &r), 0);
	assert_int_equal(r.type, VIRTIO_BLK_T_FLUSH);

	/* GET_ID: at most 20 bytes. */
	memset(&c, 0, sizeof(c));
	hdr(0, VIRTIO_BLK_T_GET_ID, 0);
	seg(&c, 0, 16, false);
	seg(&c, 100, 64, true);
	assert_int_equal(parse(&c, 1, false, &r), 0);
	assert_int_equal(r.data_len, VIRTIO_BLK_ID_BYTES);
}

static void test_parse_defects(void **state)
{
	struct virtq_chain c;
	struct vblk_req r;

	(void)state;
	/* No status byte: only readable segments. */
	memset(&c, 0, sizeof(c));
	hdr(0, VIRTIO_BLK_T_IN, 0);
	seg(&c, 0, 16 + 512, false);
	assert_int_equal(parse(&c, 8, false, &r), -VBLK_ERR_NO_STATUS);
	assert_null(r.status);

	/* Header not readable (write-only header). */
	memset(&c, 0, sizeof(c));
	seg(&c, 0, 16, true);
	seg(&c, 100, 1, true);
	assert_int_equal(parse(&c, 8, false, &r), -VBLK_ERR_HDR_NOT_READABLE);
	assert_ptr_equal(r.status, buf + 100);

	/* Header short. */
	memset(&c, 0, sizeof(c));
	seg(&c, 0, 12, false);
	seg(&c, 100, 1, true);
	assert_int_equal(parse(&c, 8, false, &r), -VBLK_ERR_HDR_SHORT);

	/* IN with device-readable data (direction wrong). */
	memset(&c, 0, sizeof(c));
	hdr(0, VIRTIO_BLK_T_IN, 0);
	seg(&c, 0, 16 + 512, false);
	seg(&c, 2000, 1, true);
	assert_int_equal(parse(&c, 8, false, &r), -VBLK_ERR_DIRECTION);
	/* OUT with device-writable data. */
	memset(&c, 0, sizeof(c));
	hdr(0, VIRTIO_BLK_T_OUT, 0);
	seg(&c, 0, 16, false);
	seg(&c, 100, 513, true);
	assert_int_equal(parse(&c, 8, false, &r), -VBLK_ERR_DIRECTION);
	/* FLUSH with data. */
	memset(&c, 0, sizeof(c));
	hdr(0, VIRTIO_BLK_T_FLUSH, 0);
	seg(&c, 0, 16, false);
	seg(&c, 100, 513, true);
	assert_int_equal(parse(&c, 8, false, &r), -VBLK_ERR_DIRECTION);

	/* Zero-length and odd-length data. */
	memset(&c, 0, sizeof(c));
	hdr(0, VIRTIO_BLK_T_IN, 0);
	seg(&c, 0, 16, false);
	seg(&c, 100, 1, true);
	assert_int_equal(parse(&c, 8, false, &r), -VBLK_ERR_DATA_LEN);
	memset(&c, 0, sizeof(c));
	hdr(0, VIRTIO_BLK_T_IN, 0);
	seg(&c, 0, 16, false);
	seg(&c, 100, 101, true);
	assert_int_equal(parse(&c, 8, false, &r), -VBLK_ERR_DATA_LEN);

	/* Sector range: past the end, the last sector fits, wrap-around. */
	memset(&c, 0, sizeof(c));
	hdr(0, VIRTIO_BLK_T_IN, 7);
	seg(&c, 0, 16, false);
	seg(&c, 100, 1025, true); /* 2 sectors from 7 on an 8-sector disk */
	assert_int_equal(parse(&c, 8, false, &r), -VBLK_ERR_RANGE);
	hdr(0, VIRTIO_BLK_T_IN, 6);
	assert_int_equal(parse(&c, 8, false, &r), 0);
	hdr(0, VIRTIO_BLK_T_IN, UINT64_MAX);
	assert_int_equal(parse(&c, 8, false, &r), -VBLK_ERR_RANGE);
	hdr(0, VIRTIO_BLK_T_IN, UINT64_MAX - 1);
	assert_int_equal(parse(&c, UINT64_MAX, false, &r), -VBLK_ERR_RANGE);

	/* Unknown type (SCSI, DISCARD, anything). */
	memset(&c, 0, sizeof(c));
	hdr(0, 0x4242, 0);
	seg(&c, 0, 16, false);
	seg(&c, 100, 1, true);
	assert_int_equal(parse(&c, 8, false, &r), -VBLK_ERR_UNSUPP);
	assert_ptr_equal(r.status, buf + 100);

	/* Write to a read-only disk. */
	memset(&c, 0, sizeof(c));
	hdr(0, VIRTIO_BLK_T_OUT, 0);
	seg(&c, 0, 16 + 512, false);
	seg(&c, 2000, 1, true);
	assert_int_equal(parse(&c, 8, true, &r), -VBLK_ERR_READ_ONLY);
	assert_int_equal(parse(&c, 8, false, &r), 0);

	/* GET_ID with no room. */
	memset(&c, 0, sizeof(c));
	hdr(0, VIRTIO_BLK_T_GET_ID, 0);
	seg(&c, 0, 16, false);
	seg(&c, 100, 1, true);
	assert_int_equal(parse(&c, 8, false, &r), -VBLK_ERR_DATA_LEN);
}

/* ---------------------------------------------------- end to end rig */

#define RAM_SIZE (1 << 20)
#define QSZ 16
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define HDRS 0x10000   /* 16 headers of 16 bytes */
#define STATS 0x11000  /* 16 status bytes */
#define DATA 0x20000   /* 16 x 8 KiB */
#define DISK_SECTORS 2048 /* 1 MiB image */

struct rig {
	uint8_t *ram;
	struct guest_mem mem;
	struct evloop *loop;
	struct vblk *blk;
	struct vmmio_dev t;
	int wake_fd;
	char path[64];
	uint8_t *image; /* expected content of the file */
	uint16_t avail_idx, used_seen;
};

static void wr(struct rig *r, uint64_t off, uint32_t v)
{
	assert_int_equal(vmmio_access(&r->t, off, (uint8_t *)&v, 4, true), 0);
}

static uint32_t rd(struct rig *r, uint64_t off)
{
	uint32_t v;

	assert_int_equal(vmmio_access(&r->t, off, (uint8_t *)&v, 4, false), 0);
	return v;
}

static void rig_up(struct rig *r, enum disk_kind kind, bool ro)
{
	uint64_t cap = 0;
	int err = 0, fd;

	memset(r, 0, sizeof(*r));
	r->ram = aligned_alloc(4096, RAM_SIZE);
	assert_non_null(r->ram);
	memset(r->ram, 0, RAM_SIZE);
	mem_layout(&r->mem, r->ram, RAM_SIZE);
	r->image = malloc(DISK_SECTORS * 512);
	assert_non_null(r->image);
	for (size_t i = 0; i < DISK_SECTORS * 512; i++)
		r->image[i] = (uint8_t)(i * 7 + i / 512);
	snprintf(r->path, sizeof(r->path), "/tmp/ember-blk-XXXXXX");
	fd = mkstemp(r->path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, r->image, DISK_SECTORS * 512),
			 DISK_SECTORS * 512);
	close(fd);

	r->loop = evloop_create(&err);
	assert_non_null(r->loop);
	assert_int_equal(evloop_start(r->loop), 0);
	r->blk = vblk_create(r->path, ro, kind, r->loop, &err);
	assert_non_null(r->blk);
	assert_int_equal(vblk_capacity(r->blk), DISK_SECTORS);
	/* A polling guest: no irqfd, a wake eventfd. */
	vmmio_init(&r->t, vblk_get_ops(r->blk), r->blk, &r->mem, 0xd0000000, 5,
		   -1);
	r->wake_fd = eventfd(0, EFD_NONBLOCK);
	vmmio_set_wake_fd(&r->t, r->wake_fd);

	/* 3.1.1 driver initialisation. */
	wr(r, VMMIO_STATUS, 1);
	wr(r, VMMIO_STATUS, 3);
	wr(r, VMMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(!!(rd(r, VMMIO_DEVICE_FEATURES) &
			    (1u << VIRTIO_BLK_F_RO)), ro);
	wr(r, VMMIO_DRIVER_FEATURES_SEL, 0);
	wr(r, VMMIO_DRIVER_FEATURES, rd(r, VMMIO_DEVICE_FEATURES));
	wr(r, VMMIO_DRIVER_FEATURES_SEL, 1);
	wr(r, VMMIO_DRIVER_FEATURES, 1);
	wr(r, VMMIO_STATUS, 11);
	assert_int_equal(rd(r, VMMIO_STATUS), 11);
	wr(r, VMMIO_QUEUE_SEL, 0);
	assert_int_equal(rd(r, VMMIO_QUEUE_NUM_MAX), VBLK_QUEUE_SIZE);
	wr(r, VMMIO_QUEUE_NUM, QSZ);
	wr(r, VMMIO_QUEUE_DESC_LOW, DESC);
	wr(r, VMMIO_QUEUE_DRIVER_LOW, AVAIL);
	wr(r, VMMIO_QUEUE_DEVICE_LOW, USED);
	wr(r, VMMIO_QUEUE_READY, 1);
	wr(r, VMMIO_STATUS, 15);
	assert_int_equal(rd(r, VMMIO_STATUS), 15);
	/* Config: capacity, byte by byte as a driver may read it. */
	for (int i = 0; i < 8; i++) {
		uint8_t b;

		assert_int_equal(vmmio_access(&r->t, VMMIO_CONFIG + i, &b, 1,
					      false), 0);
		cap |= (uint64_t)b << (8 * i);
	}
	assert_int_equal(cap, DISK_SECTORS);
	/* Used event far away: the tests read the ring, not interrupts. */
	*(uint16_t *)(r->ram + AVAIL + 4 + 2 * QSZ) = 0xffff;
}

static void rig_down(struct rig *r)
{
	wr(r, VMMIO_STATUS, 0); /* reset drains */
	vblk_destroy(r->blk);
	vmmio_destroy(&r->t);
	evloop_destroy(r->loop);
	close(r->wake_fd);
	unlink(r->path);
	free(r->image);
	free(r->ram);
}

/* The VM core's teardown order: loop, transport, then the device, with
 * requests still in flight. */
static void rig_down_vm_order(struct rig *r)
{
	evloop_destroy(r->loop);
	vmmio_destroy(&r->t);
	vblk_destroy(r->blk);
	close(r->wake_fd);
	unlink(r->path);
	free(r->image);
	free(r->ram);
}

static void desc(struct rig *r, uint16_t i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next)
{
	uint8_t *d = r->ram + DESC + 16 * i;

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

/* Builds request `slot` (descriptors 3*slot .. 3*slot+2) and makes it
 * available; no notify. data_len 0 = no data descriptor. */
static void queue_req(struct rig *r, unsigned slot, uint32_t type,
		      uint64_t sector, uint32_t data_len, bool dev_writes)
{
	uint16_t d0 = (uint16_t)(3 * slot);
	uint64_t h = HDRS + 16 * slot, s = STATS + slot;
	uint16_t idx;

	hdr(0, type, sector);
	memcpy(r->ram + h, buf, 16);
	r->ram[s] = 0xee;
	if (data_len) {
		desc(r, d0, h, 16, VIRTQ_DESC_F_NEXT, d0 + 1);
		desc(r, d0 + 1, DATA + 8192ULL * slot, data_len,
		     VIRTQ_DESC_F_NEXT | (dev_writes ? VIRTQ_DESC_F_WRITE : 0),
		     d0 + 2);
		desc(r, d0 + 2, s, 1, VIRTQ_DESC_F_WRITE, 0);
	} else {
		desc(r, d0, h, 16, VIRTQ_DESC_F_NEXT, d0 + 2);
		desc(r, d0 + 2, s, 1, VIRTQ_DESC_F_WRITE, 0);
	}
	idx = r->avail_idx;
	*(uint16_t *)(r->ram + AVAIL + 4 + 2 * (idx % QSZ)) = d0;
	__atomic_store_n((uint16_t *)(r->ram + AVAIL + 2), (uint16_t)(idx + 1),
			 __ATOMIC_RELEASE);
	r->avail_idx++;
}

/* Polls the used ring, as the micro guest does, until `n` more entries
 * arrived (2 s limit). */
static void wait_used(struct rig *r, unsigned n)
{
	uint16_t want = (uint16_t)(r->used_seen + n), cur = 0;

	for (int i = 0; i < 20000; i++) {
		cur = __atomic_load_n((uint16_t *)(r->ram + USED + 2),
				      __ATOMIC_ACQUIRE);
		if (cur == want)
			break;
		usleep(100);
	}
	assert_int_equal(cur, want);
	r->used_seen = want;
}

static uint8_t status_of(struct rig *r, unsigned slot)
{
	return r->ram[STATS + slot];
}

static void read_write_roundtrip(enum disk_kind kind)
{
	struct rig r;
	uint8_t *file = malloc(DISK_SECTORS * 512);
	uint32_t used_len;
	int fd;

	assert_non_null(file);
	rig_up(&r, kind, false);
	/* Read 8 KiB at sector 100. */
	queue_req(&r, 0, VIRTIO_BLK_T_IN, 100, 8192, true);
	wr(&r, VMMIO_QUEUE_NOTIFY, 0);
	wait_used(&r, 1);
	assert_int_equal(status_of(&r, 0), VIRTIO_BLK_S_OK);
	assert_memory_equal(r.ram + DATA, r.image + 100 * 512, 8192);
	memcpy(&used_len, r.ram + USED + 8, 4);
	assert_int_equal(used_len, 8192 + 1);

	/* Write 4 KiB at sector 2040 (the last 8 sectors), then flush. */
	for (int i = 0; i < 4096; i++)
		r.ram[DATA + 8192 + i] = (uint8_t)(0x5a ^ i);
	queue_req(&r, 1, VIRTIO_BLK_T_OUT, DISK_SECTORS - 8, 4096, false);
	queue_req(&r, 2, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	wr(&r, VMMIO_QUEUE_NOTIFY, 0);
	wait_used(&r, 2);
	assert_int_equal(status_of(&r, 1), VIRTIO_BLK_S_OK);
	assert_int_equal(status_of(&r, 2), VIRTIO_BLK_S_OK);
	fd = open(r.path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, file, DISK_SECTORS * 512, 0),
			 DISK_SECTORS * 512);
	close(fd);
	memcpy(r.image + (DISK_SECTORS - 8) * 512, r.ram + DATA + 8192, 4096);
	assert_memory_equal(file, r.image, DISK_SECTORS * 512);
	/* The guest was woken for its completions (polling guests sleep on
	 * the wake eventfd). */
	{
		uint64_t v = 0;

		assert_int_equal(read(r.wake_fd, &v, 8), 8);
		assert_true(v >= 1);
	}
	rig_down(&r);
	free(file);
}

static void test_uring_roundtrip(void **state)
{
	(void)state;
	read_write_roundtrip(DISK_URING);
}

static void test_sync_roundtrip(void **state)
{
	(void)state;
	read_write_roundtrip(DISK_SYNC);
}

/* A full ring of reads in one notify: one batched submit, all complete. */
static void test_uring_batch(void **state)
{
	struct rig r;

	(void)state;
	rig_up(&r, DISK_URING, false);
	for (unsigned i = 0; i < 5; i++)
		queue_req(&r, i, VIRTIO_BLK_T_IN, 16ULL * i * 17 % DISK_SECTORS,
			  8192, true);
	wr(&r, VMMIO_QUEUE_NOTIFY, 0);
	wait_used(&r, 5);
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(status_of(&r, i), VIRTIO_BLK_S_OK);
		assert_memory_equal(r.ram + DATA + 8192ULL * i,
				    r.image + (16ULL * i * 17 % DISK_SECTORS) * 512,
				    8192);
	}
	/* Ring wrap-around: many more rounds than the queue size. */
	for (unsigned round = 0; round < 40; round++) {
		queue_req(&r, round % 5, VIRTIO_BLK_T_IN, round, 512, true);
		wr(&r, VMMIO_QUEUE_NOTIFY, 0);
		wait_used(&r, 1);
		assert_int_equal(status_of(&r, round % 5), VIRTIO_BLK_S_OK);
		assert_memory_equal(r.ram + DATA + 8192ULL * (round % 5),
				    r.image + 512ULL * round, 512);
	}
	/* Tear down with requests in flight, in the VM core's order. */
	for (unsigned i = 0; i < 5; i++)
		queue_req(&r, i, VIRTIO_BLK_T_IN, 8ULL * i, 8192, true);
	wr(&r, VMMIO_QUEUE_NOTIFY, 0);
	rig_down_vm_order(&r);
}

/* Drops the image from the page cache and checks it is gone, so that
 * the reads that follow miss. */
static void drop_image_cache(struct rig *r)
{
	size_t len = DISK_SECTORS * 512, pages = len / 4096;
	unsigned char vec[DISK_SECTORS * 512 / 4096];
	unsigned resident = 0;
	void *map;
	int fd = open(r->path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fdatasync(fd), 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	assert_int_equal(mincore(map, len, vec), 0);
	for (size_t i = 0; i < pages; i++)
		resident += vec[i] & 1;
	munmap(map, len);
	close(fd);
	assert_int_equal(resident, 0);
}

/* Reads that miss the page cache: the inline non-blocking attempt gets
 * EAGAIN, so each goes through io_uring and completes on the event loop
 * (ring fd) or in kick(); the data must still be byte-exact, then the same
 * reads again, now cached, take the inline path. */
static void test_uring_cold_reads(void **state)
{
	struct rig r;

	(void)state;
	rig_up(&r, DISK_URING, false);
	for (unsigned pass = 0; pass < 2; pass++) {
		if (pass == 0)
			drop_image_cache(&r);
		for (unsigned i = 0; i < 5; i++)
			queue_req(&r, i, VIRTIO_BLK_T_IN, 200ULL * i + 3, 8192,
				  true);
		wr(&r, VMMIO_QUEUE_NOTIFY, 0);
		wait_used(&r, 5);
		for (unsigned i = 0; i < 5; i++) {
			assert_int_equal(status_of(&r, i), VIRTIO_BLK_S_OK);
			assert_memory_equal(r.ram + DATA + 8192ULL * i,
					    r.image + (200ULL * i + 3) * 512,
					    8192);
			memset(r.ram + DATA + 8192ULL * i, 0, 8192);
		}
	}
	rig_down(&r);
}

struct hammer {
	struct vmmio_dev *t;
	int stop;
	unsigned long kicks;
};

/* Plays a second vCPU / the ioeventfd path: notifies without pause. */
static void *hammer_fn(void *arg)
{
	struct hammer *h = arg;

	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
		vmmio_notify(h->t, 0);
		h->kicks++;
	}
	return NULL;
}

/* Notifications racing from another thread while the event thread reaps
 * completions: every request completes exactly once, data intact. */
static void test_concurrent_notify(void **state)
{
	struct hammer h = { 0 };
	pthread_t th;
	struct rig r;

	(void)state;
	rig_up(&r, DISK_URING, false);
	h.t = &r.t;
	assert_int_equal(pthread_create(&th, NULL, hammer_fn, &h), 0);
	for (unsigned round = 0; round < 300; round++) {
		unsigned n = 1 + round % 5;

		for (unsigned i = 0; i < n; i++)
			queue_req(&r, i, VIRTIO_BLK_T_IN,
				  (round * 5ULL + i) % (DISK_SECTORS - 16), 8192,
				  true);
		if (round % 2)
			wr(&r, VMMIO_QUEUE_NOTIFY, 0);
		wait_used(&r, n);
		for (unsigned i = 0; i < n; i++) {
			assert_int_equal(status_of(&r, i), VIRTIO_BLK_S_OK);
			assert_memory_equal(
				r.ram + DATA + 8192ULL * i,
				r.image +
					512ULL * ((round * 5ULL + i) %
						  (DISK_SECTORS - 16)),
				8192);
		}
	}
	__atomic_store_n(&h.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	assert_true(h.kicks > 0);
	rig_down(&r);
}

static void test_errors_in_status(void **state)
{
	struct rig r;
	uint8_t id[VIRTIO_BLK_ID_BYTES];

	(void)state;
	rig_up(&r, DISK_URING, false);
	queue_req(&r, 0, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, 1024, true);
	queue_req(&r, 1, 0x77, 0, 0, false);
	queue_req(&r, 2, VIRTIO_BLK_T_IN, 0, 100, true);
	queue_req(&r, 3, VIRTIO_BLK_T_GET_ID, 0, 64, true);
	wr(&r, VMMIO_QUEUE_NOTIFY, 0);
	wait_used(&r, 4);
	assert_int_equal(status_of(&r, 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(status_of(&r, 1), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(status_of(&r, 2), VIRTIO_BLK_S_IOERR);
	assert_int_equal(status_of(&r, 3), VIRTIO_BLK_S_OK);
	memcpy(id, r.ram + DATA + 3 * 8192, sizeof(id));
	assert_memory_equal(id, "ember", 5);
	/* The device stays live after answering bad requests. */
	assert_true(vmmio_is_live(&r.t));
	rig_down(&r);
}

static void test_read_only(void **state)
{
	struct rig r;

	(void)state;
	rig_up(&r, DISK_URING, true);
	memset(r.ram + DATA, 0, 512);
	queue_req(&r, 0, VIRTIO_BLK_T_OUT, 0, 512, false);
	queue_req(&r, 1, VIRTIO_BLK_T_IN, 0, 512, true);
	wr(&r, VMMIO_QUEUE_NOTIFY, 0);
	wait_used(&r, 2);
	assert_int_equal(status_of(&r, 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(status_of(&r, 1), VIRTIO_BLK_S_OK);
	/* The file is unchanged. */
	assert_memory_equal(r.ram + DATA + 8192, r.image, 512);
	rig_down(&r);
}

static void test_broken_chain_needs_reset(void **state)
{
	struct rig r;

	(void)state;
	/* A request without a status byte. */
	rig_up(&r, DISK_URING, false);
	queue_req(&r, 0, VIRTIO_BLK_T_IN, 0, 512, true);
	desc(&r, 1, DATA, 512, 0, 0); /* data readable, chain ends there */
	wr(&r, VMMIO_QUEUE_NOTIFY, 0);
	assert_true(rd(&r, VMMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	assert_false(vmmio_is_live(&r.t));
	rig_down(&r);

	/* A descriptor loop. */
	rig_up(&r, DISK_URING, false);
	queue_req(&r, 0, VIRTIO_BLK_T_IN, 0, 512, true);
	desc(&r, 2, STATS, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
	wr(&r, VMMIO_QUEUE_NOTIFY, 0);
	assert_true(rd(&r, VMMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	/* Reset and bring-up again: a working device. */
	rig_down(&r);
}

static void test_create_errors(void **state)
{
	int err = 0;

	(void)state;
	assert_null(vblk_create("/nonexistent/x", false, DISK_SYNC, NULL, &err));
	assert_int_equal(err, -ENOENT);
	assert_null(vblk_create("/tmp", true, DISK_SYNC, NULL, &err));
	assert_int_equal(err, -ENOTBLK); /* neither file nor block device */
	assert_null(vblk_create("/dev/null", true, DISK_SYNC, NULL, &err));
	assert_int_equal(err, -ENOTBLK);
	assert_null(vblk_create("/dev/null", true, DISK_URING, NULL, &err));
	assert_int_equal(err, -EINVAL); /* io_uring without an event loop */
	assert_null(vblk_create("/dev/null", true, (enum disk_kind)7, NULL, &err));
	assert_int_equal(err, -EINVAL);
	vblk_destroy(NULL);
}

static int setup(void **state)
{
	(void)state;
	ember_log_set_level(EMBER_LOG_ERROR); /* bad requests log warnings by design */
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_defects),
		cmocka_unit_test(test_uring_roundtrip),
		cmocka_unit_test(test_sync_roundtrip),
		cmocka_unit_test(test_uring_batch),
		cmocka_unit_test(test_uring_cold_reads),
		cmocka_unit_test(test_concurrent_notify),
		cmocka_unit_test(test_errors_in_status),
		cmocka_unit_test(test_read_only),
		cmocka_unit_test(test_broken_chain_needs_reset),
		cmocka_unit_test(test_create_errors),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
