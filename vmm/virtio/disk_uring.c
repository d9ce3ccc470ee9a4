/*
 * disk_uring.c - the io_uring disk backend (liburing).
 *
 * Requests become IORING_OP_READV / WRITEV / FSYNC(DATASYNC) on the caller's
 * iovecs, which point straight into guest memory: no copy. Submission is
 * batched (kick() after a run of submit()s: one io_uring_enter per guest
 * notification), on a registered file (no fd lookup per request).
 *
 * Three paths, fastest first (docs/virtio.md has the measurements):
 *  - a read the page cache holds whole is done with a non-blocking
 *    preadv2(RWF_NOWAIT) in submit() and completed at once (read_cached);
 *  - what io_uring finishes inside io_uring_enter (it, too, first tries a
 *    request non-blocking) is reaped by kick() right after submitting, so
 *    the guest sees it with no second pass of the event loop;
 *  - the rest (a cache miss, a buffered write, which ext4 cannot do
 *    non-blocking so io_uring hands it to an io-wq worker, a flush) is
 *    found by the event loop polling the ring fd, which is readable while
 *    the CQ holds entries: unlike an eventfd registered with the ring,
 *    signalled for every CQE, inline ones included, a CQ kick() already
 *    emptied costs no wake-up.
 * The calling thread never blocks on the device. Not thread-safe: see
 * disk.h.
 */
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "disk.h"

#define LOG_MOD "disk-uring"
#include "../log.h"

struct disk {
	struct io_uring ring;
	int fd;
	unsigned depth;
	unsigned inflight; /* submitted to us, not yet completed */
	unsigned queued;   /* in the SQ, not yet handed to the kernel */
	bool read_nowait;  /* try reads inline first (read_cached) */
	disk_done_fn done;
	void *opaque;
};

static struct disk *uring_create(int fd, unsigned depth, disk_done_fn done,
				 void *opaque, int *err)
{
	struct disk *d;
	int ret;

	d = calloc(1, sizeof(*d));
	if (!d) {
		ret = -ENOMEM;
		goto err;
	}
	d->fd = fd;
	d->depth = depth;
	d->read_nowait = true;
	d->done = done;
	d->opaque = opaque;
	/* SQ of `depth` entries; the kernel sizes the CQ at twice that, so
	 * with at most `depth` in flight the CQ cannot overflow. */
	ret = io_uring_queue_init(depth, &d->ring, 0);
	if (ret < 0)
		goto err_free;
	/* Fixed file 0: saves an fget/fput (an atomic pair, the fd table is
	 * shared by our threads) per request. */
	ret = io_uring_register_files(&d->ring, &fd, 1);
	if (ret < 0)
		goto err_ring;
	return d;

err_ring:
	io_uring_queue_exit(&d->ring);
err_free:
	free(d);
err:
	*err = ret;
	return NULL;
}

static void complete_one(struct disk *d, struct io_uring_cqe *cqe)
{
	uint64_t cookie = io_uring_cqe_get_data64(cqe);
	int64_t res = cqe->res;

	io_uring_cqe_seen(&d->ring, cqe);
	d->inflight--;
	d->done(d->opaque, cookie, res);
}

/* Completes every CQE already posted, without a syscall. */
static int reap(struct disk *d)
{
	struct io_uring_cqe *cqe;
	int n = 0;

	while (d->inflight && io_uring_peek_cqe(&d->ring, &cqe) == 0) {
		complete_one(d, cqe);
		n++;
	}
	return n;
}

static int submit_queued(struct disk *d)
{
	int ret;

	if (!d->queued)
		return 0;
	ret = io_uring_submit(&d->ring);
	if (ret < 0)
		return ret;
	/* io_uring_submit returns how many SQEs the kernel consumed. */
	d->queued -= (unsigned)ret <= d->queued ? (unsigned)ret : d->queued;
	return 0;
}

static int uring_kick(struct disk *d)
{
	int ret = submit_queued(d);

	if (ret < 0)
		return ret;
	/* Page-cache hits completed inside io_uring_enter: hand them back
	 * now rather than on the event loop's next pass. */
	reap(d);
	return 0;
}

/*
 * A read the page cache can serve whole is done here, with a non-blocking
 * preadv2 on the calling thread, and completed at once: the guest then sees
 * it while the next request is being started, as with the sync backend,
 * instead of together with the rest of its batch after io_uring_enter. A
 * miss (EAGAIN) or a partial hit goes to io_uring as a whole (re-reading
 * the cached part is harmless), so the thread never blocks on the device.
 * Returns whether the request was completed.
 */
static bool read_cached(struct disk *d, const struct disk_req *r)
{
	uint64_t want = 0;
	ssize_t n;

	for (unsigned i = 0; i < r->iovcnt; i++)
		want += r->iov[i].iov_len;
	n = preadv2(d->fd, r->iov, (int)r->iovcnt, (off_t)r->offset,
		    RWF_NOWAIT);
	if (n < 0 && errno == EOPNOTSUPP) {
		/* This file cannot do it (no FMODE_NOWAIT): stop trying. */
		d->read_nowait = false;
		return false;
	}
	if (n < 0 || (uint64_t)n != want)
		return false; /* io_uring reports the error or does the rest */
	d->done(d->opaque, r->cookie, n);
	return true;
}

static int uring_submit(struct disk *d, const struct disk_req *r)
{
	struct io_uring_sqe *sqe;

	if (d->inflight >= d->depth)
		return -EAGAIN;
	if (r->iovcnt > DISK_MAX_IOV || r->op > DISK_OP_FLUSH)
		return -EINVAL;
	if (r->op == DISK_OP_READ && d->read_nowait && read_cached(d, r))
		return 0;
	sqe = io_uring_get_sqe(&d->ring);
	if (!sqe) {
		/* SQ full of queued entries: hand them over and retry (not
		 * kick(): submit() completes no request but its own). */
		int ret = submit_queued(d);

		if (ret < 0)
			return ret;
		sqe = io_uring_get_sqe(&d->ring);
		if (!sqe)
			return -EAGAIN;
	}
	/* fd 0 is the index of the registered file (IOSQE_FIXED_FILE). */
	switch (r->op) {
	case DISK_OP_READ:
		io_uring_prep_readv(sqe, 0, r->iov, r->iovcnt, r->offset);
		break;
	case DISK_OP_WRITE:
		io_uring_prep_writev(sqe, 0, r->iov, r->iovcnt, r->offset);
		break;
	case DISK_OP_FLUSH:
		/* virtio-blk FLUSH (5.2.6.2) asks for the data on stable
		 * storage; fdatasync semantics suffice for an image file. */
		io_uring_prep_fsync(sqe, 0, IORING_FSYNC_DATASYNC);
		break;
	}
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, r->cookie);
	d->queued++;
	d->inflight++;
	return 0;
}

static int uring_poll(struct disk *d)
{
	/* The ring fd is level-triggered on a non-empty CQ: what lands
	 * after this reap makes it readable again, so none is missed. */
	return reap(d);
}

static int uring_wait(struct disk *d)
{
	struct io_uring_cqe *cqe;
	int ret;

	ret = submit_queued(d);
	if (ret < 0)
		return ret;
	while (d->inflight) {
		ret = io_uring_wait_cqe(&d->ring, &cqe);
		if (ret == -EINTR)
			continue;
		if (ret < 0)
			return ret;
		complete_one(d, cqe);
	}
	return 0;
}

static void uring_destroy(struct disk *d)
{
	int ret;

	if (!d)
		return;
	/* The kernel may still be writing into guest memory: wait. */
	ret = uring_wait(d);
	if (ret < 0)
		log_err("draining %u requests: %s", d->inflight, strerror(-ret));
	io_uring_queue_exit(&d->ring);
	free(d);
}

static int uring_event_fd(const struct disk *d)
{
	return d->ring.ring_fd;
}

const struct disk_ops disk_uring_ops = {
	.name = "io_uring",
	.create = uring_create,
	.destroy = uring_destroy,
	.submit = uring_submit,
	.kick = uring_kick,
	.poll = uring_poll,
	.wait = uring_wait,
	.event_fd = uring_event_fd,
};
