/*
 * blk.c - virtio-blk (virtio 1.2, section 5.2): parse, then execute.
 *
 * A chain popped from the request queue is parsed by vblk_parse_req(), a
 * pure function that copies the 16-byte header once and checks direction,
 * lengths and the sector range; only a valid request reaches the disk
 * backend, as iovecs over the chain's (already bounds-checked) guest
 * buffers. A defective request is answered with IOERR/UNSUPP in its status
 * byte; a chain with no status byte, or a broken ring, gets the device
 * DEVICE_NEEDS_RESET.
 *
 * Threads: ops->notify (vCPU or event thread), the backend's completion
 * fd callback (event thread), activate/reset (vCPU thread, transport
 * ctrl lock held). b->lock serialises all of them and is held around every
 * call into the backend and the queue; vmmio_signal_used() is called with it
 * held (lock order: device, then transport, see mmio.h).
 */
#include "blk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../devtable.h"
#include "../evloop.h"
#include "../kvm.h"
#include "snapshots/snap.h"
#include "disk.h"
#include "mmio.h"

#define LOG_MOD "vblk"
#include "../log.h"

#define VBLK_HDR_LEN 16 /* le32 type, le32 reserved, le64 sector */

struct vblk_slot {
	uint16_t head;
	uint8_t *status;
	uint32_t written; /* used length on success: data (IN) + status */
	uint64_t expect;  /* bytes the backend must transfer */
	bool busy;
	struct iovec iov[DISK_MAX_IOV];
};

struct vblk {
	pthread_mutex_t lock;
	int fd;
	char *path;        /* what a snapshot records (the device table's) */
	bool read_only;
	uint64_t capacity; /* sectors */
	uint8_t id[VIRTIO_BLK_ID_BYTES];
	uint8_t config[VBLK_CONFIG_LEN];

	const struct disk_ops *dops;
	struct disk *disk;
	struct evloop *loop;
	int disk_efd; /* registered on loop, or -1 */

	struct vmmio_dev *t; /* set while activated */
	bool broken;         /* we asked for NEEDS_RESET: hands off the ring */
	bool need_signal;    /* used entries pushed since the last signal */

	struct virtq_chain chain; /* scratch for the chain being parsed */
	uint16_t free_slot[VBLK_QUEUE_SIZE];
	unsigned nr_free;
	struct vblk_slot slot[VBLK_QUEUE_SIZE];
};

/* ------------------------------------------------------------------ parse */

int vblk_parse_req(const struct virtq_chain *c, uint64_t capacity_sectors,
		   bool read_only, struct vblk_req *req)
{
	const struct virtq_seg *last;
	uint8_t hdr[VBLK_HDR_LEN];
	uint64_t in_len, out_len, sectors;
	uint32_t type;

	memset(req, 0, sizeof(*req));
	/* 5.2.6: the status byte is the final device-writable byte. The
	 * writable part is a suffix of the chain (virtq_pop enforces it), so
	 * it ends the last segment. */
	if (c->writable_len == 0 || c->nr_segs == 0)
		return -VBLK_ERR_NO_STATUS;
	last = &c->seg[c->nr_segs - 1];
	if (!last->writable || last->len == 0)
		return -VBLK_ERR_NO_STATUS;
	req->status = last->hva + last->len - 1;

	if (c->readable_len == 0)
		return -VBLK_ERR_HDR_NOT_READABLE;
	if (c->readable_len < VBLK_HDR_LEN)
		return -VBLK_ERR_HDR_SHORT;
	/* Copy the header once; the guest may change it under us. */
	if (virtq_chain_read(c, 0, hdr, sizeof(hdr)) != sizeof(hdr))
		return -VBLK_ERR_HDR_SHORT;
	memcpy(&type, hdr, 4);
	type = le32toh(type);
	memcpy(&req->sector, hdr + 8, 8);
	req->sector = le64toh(req->sector);
	req->type = type;

	out_len = c->readable_len - VBLK_HDR_LEN; /* data for the device */
	in_len = c->writable_len - 1;             /* room for the driver */

	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		if (type == VIRTIO_BLK_T_IN ? out_len != 0 : in_len != 0)
			return -VBLK_ERR_DIRECTION;
		req->data_len = type == VIRTIO_BLK_T_IN ? in_len : out_len;
		if (req->data_len == 0 || req->data_len % VBLK_SECTOR_SIZE)
			return -VBLK_ERR_DATA_LEN;
		/* Written so that neither side can wrap. */
		sectors = req->data_len / VBLK_SECTOR_SIZE;
		if (req->sector > capacity_sectors ||
		    sectors > capacity_sectors - req->sector)
			return -VBLK_ERR_RANGE;
		/* 5.2.6.2: OUT on a VIRTIO_BLK_F_RO device fails. */
		if (type == VIRTIO_BLK_T_OUT && read_only)
			return -VBLK_ERR_READ_ONLY;
		return 0;
	case VIRTIO_BLK_T_FLUSH:
		if (out_len || in_len)
			return -VBLK_ERR_DIRECTION;
		return 0;
	case VIRTIO_BLK_T_GET_ID:
		if (out_len)
			return -VBLK_ERR_DIRECTION;
		if (in_len == 0)
			return -VBLK_ERR_DATA_LEN;
		/* 5.2.6: a 20-byte string; a smaller buffer gets a prefix. */
		req->data_len = in_len < VIRTIO_BLK_ID_BYTES ? in_len
							     : VIRTIO_BLK_ID_BYTES;
		return 0;
	default:
		return -VBLK_ERR_UNSUPP;
	}
}

/* Collects `len` bytes of the readable (or writable) part, from `off`. */
static int collect_iov(const struct virtq_chain *c, bool writable,
		       uint64_t off, uint64_t len, struct iovec *iov,
		       unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->nr_segs && len; i++) {
		const struct virtq_seg *s = &c->seg[i];
		uint64_t take;

		if (s->writable != writable)
			continue;
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		if (n == max)
			return -E2BIG;
		take = s->len - off < len ? s->len - off : len;
		iov[n].iov_base = s->hva + off;
		iov[n].iov_len = take;
		n++;
		len -= take;
		off = 0;
	}
	return (int)n;
}

int vblk_req_iov(const struct virtq_chain *c, const struct vblk_req *req,
		 struct iovec *iov, unsigned max)
{
	if (req->type == VIRTIO_BLK_T_OUT)
		return collect_iov(c, false, VBLK_HDR_LEN, req->data_len, iov,
				   max);
	return collect_iov(c, true, 0, req->data_len, iov, max);
}

/* ---------------------------------------------------------------- execute */

/* Answers chain `head`: status byte, then the used ring. Lock held. */
static void complete(struct vblk *b, uint16_t head, uint8_t *status,
		     uint8_t st, uint32_t written)
{
	if (!b->t)
		return; /* reset while in flight: the driver forgot it */
	/* A single byte store into a buffer validated at pop time; it is
	 * ordered before the used index by virtq_push's release store. */
	*status = st;
	virtq_push(&b->t->vq[0], head, written);
	b->need_signal = true;
}

static void signal_if_needed(struct vblk *b)
{
	if (b->need_signal && b->t) {
		b->need_signal = false;
		vmmio_signal_used(b->t, 0);
	}
}

/* Backend completion (lock held: every backend call is made under it). */
static void vblk_done(void *opaque, uint64_t cookie, int64_t res)
{
	struct vblk *b = opaque;
	struct vblk_slot *s;
	uint8_t st = VIRTIO_BLK_S_OK;

	if (cookie >= VBLK_QUEUE_SIZE || !b->slot[cookie].busy) {
		log_err("completion for unknown request %" PRIu64, cookie);
		return;
	}
	s = &b->slot[cookie];
	if (res < 0 || (uint64_t)res != s->expect) {
		log_warn_rl("request at head %u: %s (%" PRId64 " of %" PRIu64
			    " bytes)", s->head,
			    res < 0 ? strerror((int)-res) : "short transfer",
			    res < 0 ? 0 : res, s->expect);
		st = VIRTIO_BLK_S_IOERR;
	}
	complete(b, s->head, s->status, st,
		 st == VIRTIO_BLK_S_OK ? s->written : 1);
	s->busy = false;
	b->free_slot[b->nr_free++] = (uint16_t)cookie;
}

static void fail_chain(struct vblk *b, const char *why)
{
	b->broken = true;
	vmmio_set_needs_reset(b->t, why);
}

/* Parses and starts the request in b->chain. Lock held, a slot free. */
static void start_request(struct vblk *b)
{
	const struct virtq_chain *c = &b->chain;
	struct vblk_req req;
	struct vblk_slot *s;
	struct disk_req dr;
	uint16_t idx;
	int ret, n;

	ret = vblk_parse_req(c, b->capacity, b->read_only, &req);
	if (ret == -VBLK_ERR_NO_STATUS) {
		log_warn_rl("request without a status byte");
		fail_chain(b, "request without a status byte");
		return;
	}
	if (ret < 0) {
		log_warn_rl("bad request (type %u, sector %" PRIu64 "): "
			    "defect %d", req.type, req.sector, -ret);
		complete(b, c->head, req.status,
			 ret == -VBLK_ERR_UNSUPP ? VIRTIO_BLK_S_UNSUPP
						 : VIRTIO_BLK_S_IOERR,
			 1);
		return;
	}
	if (req.type == VIRTIO_BLK_T_GET_ID) {
		virtq_chain_write(c, 0, b->id, req.data_len);
		complete(b, c->head, req.status, VIRTIO_BLK_S_OK,
			 (uint32_t)req.data_len + 1);
		return;
	}

	idx = b->free_slot[--b->nr_free];
	s = &b->slot[idx];
	s->busy = true;
	s->head = c->head;
	s->status = req.status;
	s->expect = req.type == VIRTIO_BLK_T_FLUSH ? 0 : req.data_len;
	s->written = req.type == VIRTIO_BLK_T_IN ? (uint32_t)req.data_len + 1
						 : 1;
	dr = (struct disk_req){ .cookie = idx, .iov = s->iov };
	if (req.type == VIRTIO_BLK_T_FLUSH) {
		dr.op = DISK_OP_FLUSH;
	} else {
		n = vblk_req_iov(c, &req, s->iov, DISK_MAX_IOV);
		if (n <= 0) {
			/* Cannot happen: a chain has <= VIRTQ_MAX_SEGS. */
			vblk_done(b, idx, -EINVAL);
			return;
		}
		dr.op = req.type == VIRTIO_BLK_T_IN ? DISK_OP_READ
						    : DISK_OP_WRITE;
		dr.iovcnt = (unsigned)n;
		dr.offset = req.sector * VBLK_SECTOR_SIZE;
	}
	/* A request the backend finishes at once (always for the sync one,
	 * a page-cache read for io_uring) completes (vblk_done) in here. */
	ret = b->dops->submit(b->disk, &dr);
	if (ret < 0)
		vblk_done(b, idx, ret);
}

/* One round: pops and starts requests while there are slots, then kicks
 * the backend, which also completes what the kernel finished while taking
 * the batch. Returns whether a request was started. Lock held. */
static bool service_round(struct vblk *b)
{
	bool started = false;
	int ret;

	while (b->t && !b->broken && b->nr_free) {
		ret = virtq_pop(&b->t->vq[0], b->t->mem, &b->chain);
		if (ret == 0)
			break;
		if (ret < 0) {
			log_warn_rl("request queue broken: %s", strerror(-ret));
			fail_chain(b, "request queue broken");
			break;
		}
		start_request(b);
		started = true;
	}
	ret = b->dops->kick(b->disk);
	if (ret < 0)
		log_warn_rl("backend submit: %s", strerror(-ret));
	return started && ret >= 0;
}

/*
 * Serves the request queue until a round finds nothing new. A polling
 * guest refills the ring as soon as it sees used entries, so while we are
 * here the next requests often arrive with no need for a notification: the
 * guest is told not to send one (VIRTQ_USED_F_NO_NOTIFY; each is an MMIO
 * exit) until we stop; then we re-enable and look once more, so that a
 * request added in between is not left behind. Like the synchronous
 * backend's inline completions, this keeps the event thread here for as
 * long as the guest keeps requests coming, each of which costs it real
 * I/O. Lock held.
 */
static void service_queue(struct vblk *b)
{
	struct virtq *q;

	if (!b->t || b->broken) {
		service_round(b); /* still hands queued requests over */
		return;
	}
	q = &b->t->vq[0];
	virtq_set_notify(q, false);
	for (;;) {
		while (service_round(b))
			;
		if (!b->t || b->broken)
			return;
		virtq_set_notify(q, true);
		/* Nothing to pop, or no free slot (a completion calls us). */
		if (!b->nr_free || !virtq_has_avail(q))
			return;
		virtq_set_notify(q, false);
	}
}

/* Event thread: the backend's completion fd (the io_uring ring fd). */
static void vblk_disk_event(void *opaque, uint32_t events)
{
	struct vblk *b = opaque;

	(void)events;
	pthread_mutex_lock(&b->lock);
	b->dops->poll(b->disk);
	/* Slots were freed: chains left waiting for one can go now. */
	service_queue(b);
	signal_if_needed(b);
	pthread_mutex_unlock(&b->lock);
}

int vblk_quiesce(struct vblk *b)
{
	int ret;

	pthread_mutex_lock(&b->lock);
	/* Requests the guest queued before it was paused are started too,
	 * and each round waits for everything in flight, until the ring has
	 * nothing left: a snapshot then holds no half-done request. */
	do {
		service_queue(b);
		ret = b->dops->wait(b->disk);
	} while (!ret && b->t && !b->broken &&
		 virtq_has_avail(&b->t->vq[0]));
	signal_if_needed(b);
	pthread_mutex_unlock(&b->lock);
	return ret;
}

/* ------------------------------------------------------ transport callbacks */

static void vblk_config_read(void *dev, uint32_t off, uint8_t *data,
			     uint32_t len)
{
	struct vblk *b = dev;

	/* Immutable after create; the transport checked off + len. */
	memcpy(data, b->config + off, len);
}

static int vblk_activate(void *dev, struct vmmio_dev *t)
{
	struct vblk *b = dev;

	pthread_mutex_lock(&b->lock);
	b->t = t;
	b->broken = false;
	b->need_signal = false;
	/* Chains made available before DRIVER_OK (their notify was dropped)
	 * are served now. */
	service_queue(b);
	signal_if_needed(b);
	pthread_mutex_unlock(&b->lock);
	return 0;
}

static void vblk_notify(void *dev, unsigned q)
{
	struct vblk *b = dev;

	if (q != 0)
		return;
	pthread_mutex_lock(&b->lock);
	service_queue(b);
	signal_if_needed(b);
	pthread_mutex_unlock(&b->lock);
}

static void vblk_reset(void *dev)
{
	struct vblk *b = dev;
	int ret;

	pthread_mutex_lock(&b->lock);
	/* In-flight I/O still targets guest buffers the driver is about to
	 * reuse: let it finish before the device forgets the queue. */
	ret = b->dops->wait(b->disk);
	if (ret < 0)
		log_err("reset: draining I/O: %s", strerror(-ret));
	b->t = NULL;
	b->broken = false;
	b->need_signal = false;
	pthread_mutex_unlock(&b->lock);
}

#define VBLK_FEATURES                                                         \
	((1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |   \
	 (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) |     \
	 (1ULL << VIRTIO_F_RING_INDIRECT_DESC) |                              \
	 (1ULL << VIRTIO_F_RING_EVENT_IDX))

const struct virtio_dev_ops vblk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.nr_queues = 1,
	.queue_max = VBLK_QUEUE_SIZE,
	.features = VBLK_FEATURES,
	.config_len = VBLK_CONFIG_LEN,
	.config_read = vblk_config_read,
	.config_write = NULL, /* blk config is read-only for us */
	.activate = vblk_activate,
	.notify = vblk_notify,
	.reset = vblk_reset,
};

static const struct virtio_dev_ops vblk_ro_ops = {
	.name = "virtio-blk-ro",
	.device_id = VIRTIO_ID_BLOCK,
	.nr_queues = 1,
	.queue_max = VBLK_QUEUE_SIZE,
	.features = VBLK_FEATURES | (1ULL << VIRTIO_BLK_F_RO),
	.config_len = VBLK_CONFIG_LEN,
	.config_read = vblk_config_read,
	.config_write = NULL,
	.activate = vblk_activate,
	.notify = vblk_notify,
	.reset = vblk_reset,
};

const struct virtio_dev_ops *vblk_get_ops(const struct vblk *b)
{
	return b->read_only ? &vblk_ro_ops : &vblk_ops;
}

uint64_t vblk_capacity(const struct vblk *b)
{
	return b->capacity;
}

/* ------------------------------------------------------------ lifecycle */

static int image_size(int fd, struct stat *st, uint64_t *size)
{
	if (fstat(fd, st) < 0)
		return -errno;
	if (S_ISREG(st->st_mode)) {
		*size = (uint64_t)st->st_size;
		return 0;
	}
	if (S_ISBLK(st->st_mode)) {
		int ret = kvm_ioctl_raw(fd, BLKGETSIZE64, size);

		return ret < 0 ? ret : 0;
	}
	return -ENOTBLK; /* a directory, a character device, a socket... */
}

static void fill_config(struct vblk *b)
{
	uint64_t cap = htole64(b->capacity);
	uint32_t size_max = htole32(VBLK_SIZE_MAX);
	uint32_t seg_max = htole32(VBLK_SEG_MAX);
	uint32_t blk_size = htole32(VBLK_SECTOR_SIZE);

	memset(b->config, 0, sizeof(b->config));
	memcpy(b->config + 0, &cap, 8);
	memcpy(b->config + 8, &size_max, 4);
	memcpy(b->config + 12, &seg_max, 4);
	memcpy(b->config + 20, &blk_size, 4);
}

/* The device around image `fd`, which it owns from here (closed on
 * error too); `name` is for messages only. */
static struct vblk *create_on_fd(int fd, const char *name, bool read_only,
				 enum disk_kind kind, struct evloop *loop,
				 int *err)
{
	struct vblk *b;
	struct stat st;
	uint64_t size = 0;
	char id[32];
	int ret;

	if ((kind != DISK_URING && kind != DISK_SYNC) ||
	    (kind == DISK_URING && !loop)) {
		ret = -EINVAL;
		goto err_close;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		ret = -ENOMEM;
		goto err_close;
	}
	b->read_only = read_only;
	b->loop = loop;
	b->disk_efd = -1;
	b->fd = fd;
	ret = image_size(b->fd, &st, &size);
	if (ret < 0) {
		log_err("%s: not a regular file or block device", name);
		goto err_free;
	}
	if (size % VBLK_SECTOR_SIZE)
		log_warn("%s: size %" PRIu64 " not a multiple of %u: the tail "
			 "is not visible", name, size, VBLK_SECTOR_SIZE);
	b->capacity = size / VBLK_SECTOR_SIZE;
	/* GET_ID (5.2.6): 20 bytes naming the image, stable per file. */
	snprintf(id, sizeof(id), "ember%" PRIx64 ":%" PRIx64,
		 (uint64_t)st.st_dev, (uint64_t)st.st_ino);
	memcpy(b->id, id, strnlen(id, sizeof(b->id))); /* NUL-padded */
	fill_config(b);

	for (unsigned i = 0; i < VBLK_QUEUE_SIZE; i++)
		b->free_slot[i] = (uint16_t)(VBLK_QUEUE_SIZE - 1 - i);
	b->nr_free = VBLK_QUEUE_SIZE;
	pthread_mutex_init(&b->lock, NULL);

	b->dops = kind == DISK_URING ? &disk_uring_ops : &disk_sync_ops;
	b->disk = b->dops->create(b->fd, VBLK_QUEUE_SIZE, vblk_done, b, &ret);
	if (!b->disk) {
		log_err("%s backend: %s", b->dops->name, strerror(-ret));
		goto err_mutex;
	}
	if (b->dops->event_fd(b->disk) >= 0) {
		ret = evloop_add(loop, b->dops->event_fd(b->disk), EPOLLIN,
				 vblk_disk_event, b);
		if (ret < 0)
			goto err_disk;
		b->disk_efd = b->dops->event_fd(b->disk);
	}
	return b;

err_disk:
	b->dops->destroy(b->disk);
err_mutex:
	pthread_mutex_destroy(&b->lock);
err_free:
	free(b);
err_close:
	close(fd);
	*err = ret;
	return NULL;
}

struct vblk *vblk_create(const char *path, bool read_only, enum disk_kind kind,
			 struct evloop *loop, int *err)
{
	int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);

	if (fd < 0) {
		*err = -errno;
		log_err_errno("open %s", path);
		return NULL;
	}
	return create_on_fd(fd, path, read_only, kind, loop, err);
}

struct vblk *vblk_create_fd(int image_fd, bool read_only, enum disk_kind kind,
			    struct evloop *loop, int *err)
{
	int fl = fcntl(image_fd, F_GETFL), fd;

	if (fl < 0) {
		*err = -errno;
		return NULL;
	}
	/* A writable disk needs a writable file: refuse now, not at the
	 * guest's first write. */
	if (!read_only && (fl & O_ACCMODE) == O_RDONLY) {
		*err = -EBADF;
		return NULL;
	}
	fd = fcntl(image_fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	return create_on_fd(fd, "disk fd", read_only, kind, loop, err);
}

void vblk_destroy(struct vblk *b)
{
	if (!b)
		return;
	/* Without b->lock: the callback takes it (see evloop.c). */
	if (b->disk_efd >= 0)
		evloop_del(b->loop, b->disk_efd);
	pthread_mutex_lock(&b->lock);
	b->t = NULL; /* the transport may be gone: drained I/O is not pushed */
	b->dops->destroy(b->disk); /* drains in-flight I/O */
	b->disk = NULL;
	pthread_mutex_unlock(&b->lock);
	close(b->fd);
	pthread_mutex_destroy(&b->lock);
	free(b->path);
	free(b);
}

/* ------------------------------------------------- the device table's */

static unsigned blk_count(const struct ember_config *cfg)
{
	return cfg->nr_disks;
}

static enum disk_kind backend(const struct ember_config *cfg)
{
	return cfg->disk_sync ? DISK_SYNC : DISK_URING;
}

/* The device on `path` or, when fd >= 0, on that open image; it keeps
 * `record` as the path a snapshot of it names. */
static struct vblk *make(const struct vm_dev_ctx *ctx, const char *path,
			 int fd, bool ro, const char *record, int *ret,
			 char *err, size_t errlen)
{
	struct vblk *b = fd >= 0 ?
		vblk_create_fd(fd, ro, backend(ctx->cfg), ctx->loop, ret) :
		vblk_create(path, ro, backend(ctx->cfg), ctx->loop, ret);

	if (!b) {
		if (fd >= 0)
			errbuf_fail(err, errlen, *ret, "cannot use disk %u's "
				    "fd: %s", ctx->index, strerror(-*ret));
		else
			errbuf_fail(err, errlen, *ret, "cannot open disk '%s': "
				    "%s", path, *ret == -ENOTBLK ?
				    "not a regular file or block device" :
				    strerror(-*ret));
		return NULL;
	}
	b->path = strdup(record);
	if (!b->path) {
		vblk_destroy(b);
		*ret = errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	return b;
}

static void *blk_create(const struct vm_dev_ctx *ctx,
			const struct virtio_dev_ops **ops, int *ret, char *err,
			size_t errlen)
{
	const struct ember_disk *d = &ctx->cfg->disks[ctx->index];
	struct vblk *b = make(ctx, d->path, -1, d->read_only, d->path, ret,
			      err, errlen);

	if (b)
		*ops = vblk_get_ops(b);
	return b;
}

/* Saved: backing-path (string), read-only (u32 0/1), capacity (u64, the
 * bytes the guest saw: the image must still have exactly that many). A
 * new path or an open image for disk k comes from the caller's
 * disks[k] / disk_fds[k]. */
static void *blk_restore(const struct vm_dev_ctx *ctx,
			 const struct snap_virtio_dev *saved,
			 const struct virtio_dev_ops **ops, int *ret, char *err,
			 size_t errlen)
{
	const struct ember_restore *r = ctx->restore;
	unsigned k = ctx->index;
	char path[SNAP_PATH_MAX];
	const char *use;
	uint64_t capacity;
	uint32_t ro;
	struct vblk *b;
	int fd = -1;

	*ret = snap_prop_str(saved, "backing-path", path, sizeof(path), err,
			     errlen);
	if (!*ret)
		*ret = snap_prop_u32(saved, "read-only", &ro, err, errlen);
	if (!*ret)
		*ret = snap_prop_u64(saved, "capacity", &capacity, err, errlen);
	if (*ret) {
		*ret = -EINVAL;
		return NULL;
	}
	if (!path[0] || ro > 1 || capacity % VBLK_SECTOR_SIZE) {
		*ret = errbuf_fail(err, errlen, -EINVAL, "disk %u: bad saved "
				   "state (path, read-only %u, capacity %llu)",
				   k, ro, (unsigned long long)capacity);
		return NULL;
	}
	use = k < r->nr_disks && r->disks[k] ? r->disks[k] : NULL;
	if (!use && k < r->nr_disks && r->disk_fds[k] >= 0)
		fd = r->disk_fds[k];
	if (!use && fd < 0 && !r->dir) {
		*ret = errbuf_fail(err, errlen, -EDESTADDRREQ, "restoring from "
				   "fds: disk %u needs a path or an fd", k);
		return NULL;
	}
	b = make(ctx, use ? use : path, fd, ro, use ? use : path, ret, err,
		 errlen);
	if (!b)
		return NULL;
	if (b->capacity * VBLK_SECTOR_SIZE != capacity) {
		*ret = errbuf_fail(err, errlen, -EINVAL, "disk %u: the image has "
				   "%llu bytes, the guest saw %llu", k,
				   (unsigned long long)(b->capacity *
							VBLK_SECTOR_SIZE),
				   (unsigned long long)capacity);
		vblk_destroy(b);
		return NULL;
	}
	*ops = vblk_get_ops(b);
	return b;
}

static int blk_check_restore(const struct ember_restore *r, unsigned n,
			     char *err, size_t errlen)
{
	if (r->nr_disks > n)
		return errbuf_fail(err, errlen, -EDESTADDRREQ, "%u disks given, "
				   "the snapshot has %u", r->nr_disks, n);
	return 0;
}

static int blk_save(void *dev, struct snap_virtio_dev *saved, char *err,
		    size_t errlen)
{
	struct vblk *b = dev;
	int ret = snap_prop_set_str(saved, "backing-path", b->path);

	if (!ret)
		ret = snap_prop_set_u32(saved, "read-only", b->read_only);
	if (!ret)
		ret = snap_prop_set_u64(saved, "capacity",
					b->capacity * VBLK_SECTOR_SIZE);
	if (ret < 0)
		return errbuf_fail(err, errlen, ret, "disk: path '%.64s' too "
				   "long for a snapshot", b->path);
	return 0;
}

static int blk_quiesce(void *dev)
{
	return vblk_quiesce(dev);
}

static void blk_destroy(void *dev)
{
	vblk_destroy(dev);
}

const struct vm_device_type vblk_type = {
	.name = "blk",
	.virtio_id = VIRTIO_ID_BLOCK,
	.count = blk_count,
	.create = blk_create,
	.restore = blk_restore,
	.check_restore = blk_check_restore,
	.save = blk_save,
	.quiesce = blk_quiesce,
	.destroy = blk_destroy,
};
