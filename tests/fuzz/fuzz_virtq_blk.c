/*
 * libFuzzer target: the split-ring walker (virtq.c), the virtio-blk request
 * parser (blk.c) and the virtio-mmio register file (mmio.c), all fed by
 * guest-controlled bytes. The input is:
 *   byte 0      queue size selector: size = 1 << (b % 9)  (1..256)
 *   byte 1      bit 0 event_idx, bit 1 indirect, bit 2 read-only disk
 *   byte 2      number of register operations N (then N x 9 bytes:
 *               le32 offset, le32 value, u8 flags: bit 0 write,
 *               bits 1-2 width 1/2/4/8)
 *   the rest    guest RAM from gpa 0 (desc @0, avail @0x1000, used @0x2000)
 * The ring part pops every chain, parses it as a blk request and, when
 * valid, gathers its iovecs and writes the data/status back as a device
 * would; the register part drives a transport whose fake device pops and
 * parses on every notify. ASan/UBSan catch any access outside RAM.
 *   make fuzz [FUZZ_SECONDS=30]   (replay: make fuzz-replay)
 */
// link: vmm/mem.c vmm/log.c vmm/evloop.c vmm/thread.c vmm/virtio/virtq.c
// link: vmm/virtio/mmio.c vmm/virtio/blk.c vmm/virtio/disk_uring.c
// link: vmm/virtio/disk_sync.c vmm/kvm.c
// link: snapshots/snap_prop.c
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"
#include "virtio/blk.h"
#include "virtio/mmio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define RAM_SZ (64u << 10)
#define CAPACITY 64 /* sectors */

static uint8_t *ram;
static struct guest_mem mem;

/* Plays the device on one queue: pop, parse, answer, until empty/broken. */
static void serve(struct virtq *q, bool ro)
{
	static struct virtq_chain c;
	static const uint8_t zeros[4096];
	struct iovec iov[VIRTQ_MAX_SEGS];
	struct vblk_req req;

	for (int n = 0; n < 300; n++) {
		int ret = virtq_pop(q, &mem, &c), parsed;
		uint64_t sum = 0;

		if (ret <= 0)
			break;
		/* Invariants virtq_pop promises. */
		if (c.nr_segs == 0 || c.nr_segs > VIRTQ_MAX_SEGS ||
		    c.readable_len + c.writable_len > VIRTQ_MAX_CHAIN_BYTES ||
		    c.head >= q->size)
			abort();
		for (unsigned i = 0; i < c.nr_segs; i++) {
			if (c.seg[i].hva < ram ||
			    c.seg[i].hva + c.seg[i].len > ram + RAM_SZ)
				abort();
			sum += c.seg[i].len;
		}
		if (sum != c.readable_len + c.writable_len)
			abort();
		parsed = vblk_parse_req(&c, CAPACITY, ro, &req);
		if (parsed == 0 && req.type != VIRTIO_BLK_T_FLUSH) {
			int n_iov = vblk_req_iov(&c, &req, iov, VIRTQ_MAX_SEGS);
			uint64_t got = 0;

			for (int i = 0; i < n_iov; i++)
				got += iov[i].iov_len;
			if (n_iov < 0 || got != req.data_len)
				abort();
			if (req.sector + req.data_len / 512 > CAPACITY &&
			    req.type != VIRTIO_BLK_T_GET_ID)
				abort();
			/* Touch every byte, as the backend would. */
			for (int i = 0; i < n_iov; i++)
				if (req.type != VIRTIO_BLK_T_OUT)
					memset(iov[i].iov_base, 0xa5,
					       iov[i].iov_len);
				else
					(void)memcmp(iov[i].iov_base, zeros,
						     iov[i].iov_len < 4096
							     ? iov[i].iov_len
							     : 4096);
		}
		if (parsed != -VBLK_ERR_NO_STATUS)
			*req.status = parsed ? VIRTIO_BLK_S_IOERR : 0;
		virtq_push(q, c.head, 1);
		(void)virtq_needs_notify(q);
	}
}

struct fake {
	struct vmmio_dev *t;
	bool ro;
};

static int fake_activate(void *dev, struct vmmio_dev *t)
{
	((struct fake *)dev)->t = t;
	return 0;
}

static void fake_notify(void *dev, unsigned q)
{
	struct fake *f = dev;

	if (f->t)
		serve(&f->t->vq[q], f->ro);
}

static void fake_reset(void *dev)
{
	((struct fake *)dev)->t = NULL;
}

static uint8_t fake_cfg[24];

static void fake_cfg_read(void *dev, uint32_t off, uint8_t *d, uint32_t len)
{
	(void)dev;
	memcpy(d, fake_cfg + off, len);
}

static const struct virtio_dev_ops fake_ops = {
	.name = "fuzz",
	.device_id = 2,
	.nr_queues = 2,
	.queue_max = 256,
	.features = (1ULL << VIRTIO_F_RING_EVENT_IDX) |
		    (1ULL << VIRTIO_F_RING_INDIRECT_DESC),
	.config_len = sizeof(fake_cfg),
	.config_read = fake_cfg_read,
	.activate = fake_activate,
	.notify = fake_notify,
	.reset = fake_reset,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	ember_log_set_level(EMBER_LOG_ERROR); /* every defect logs a warning by design */
	ram = aligned_alloc(4096, RAM_SZ);
	mem_layout(&mem, ram, RAM_SZ);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct virtq q;
	struct vmmio_dev t;
	struct fake f = { 0 };
	size_t nops, ops_len;
	const uint8_t *ops;

	if (size < 3)
		return 0;
	nops = data[2];
	ops_len = nops * 9;
	if (size < 3 + ops_len)
		return 0;
	ops = data + 3;
	memset(ram, 0, RAM_SZ);
	memcpy(ram, data + 3 + ops_len,
	       size - 3 - ops_len < RAM_SZ ? size - 3 - ops_len : RAM_SZ);

	/* 1: a queue set up directly. */
	virtq_reset(&q);
	q.size = (uint16_t)(1u << (data[0] % 9));
	q.desc_gpa = 0;
	q.avail_gpa = 0x1000;
	q.used_gpa = 0x2000;
	q.event_idx = data[1] & 1;
	q.indirect = data[1] & 2;
	if (virtq_activate(&q, &mem, 256) != 0)
		abort(); /* this layout is always valid */
	serve(&q, data[1] & 4);

	/* 2: the same RAM behind a transport driven by register writes. */
	f.ro = data[1] & 4;
	vmmio_init(&t, &fake_ops, &f, &mem, 0xd0000000, 5, -1);
	for (size_t i = 0; i < nops; i++) {
		const uint8_t *o = ops + 9 * i;
		uint32_t off, val;
		uint8_t buf[8];
		static const uint32_t widths[] = { 1, 2, 4, 8 };
		uint32_t len = widths[(o[8] >> 1) & 3];

		memcpy(&off, o, 4);
		memcpy(&val, o + 4, 4);
		memset(buf, 0, sizeof(buf));
		memcpy(buf, &val, 4);
		vmmio_access(&t, off % 0x1000, buf, len, o[8] & 1);
	}
	vmmio_destroy(&t);
	return 0;
}
