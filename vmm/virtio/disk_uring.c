/*
 * disk_uring.c - the io_uring disk backend (liburing).
 *
 * Requests become IORING_OP_READV / WRITEV / FSYNC(DATASYNC) on the caller's
 * iovecs, which point straight into guest memory: no copy. Submission is
 * batched (kick() after a run of submit()s: one io_uring_enter per guest
 * notification). Completions are announced on an eventfd registered with
 * io_uring_register_eventfd(), which the device watches from the event loop
 * and answers with poll(). Not thread-safe: see disk.h.
 */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "disk.h"

#define LOG_MOD "disk-uring"
#include "../log.h"

struct disk {
	struct io_uring ring;
	int fd;
	int efd;
	unsigned depth;
	unsigned inflight; /* submitted to us, not yet completed */
	unsigned queued;   /* in the SQ, not yet handed to the kernel */
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
	d->done = done;
	d->opaque = opaque;
	/* SQ of `depth` entries; the kernel sizes the CQ at twice that, so
	 * with at most `depth` in flight the CQ cannot overflow. */
	ret = io_uring_queue_init(depth, &d->ring, 0);
	if (ret < 0)
		goto err_free;
	d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->efd < 0) {
		ret = -errno;
		goto err_ring;
	}
	ret = io_uring_register_eventfd(&d->ring, d->efd);
	if (ret < 0)
		goto err_efd;
	return d;

err_efd:
	close(d->efd);
err_ring:
	io_uring_queue_exit(&d->ring);
err_free:
	free(d);
err:
	*err = ret;
	return NULL;
}

static int uring_kick(struct disk *d)
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

static int uring_submit(struct disk *d, const struct disk_req *r)
{
	struct io_uring_sqe *sqe;

	if (d->inflight >= d->depth)
		return -EAGAIN;
	if (r->iovcnt > DISK_MAX_IOV || r->op > DISK_OP_FLUSH)
		return -EINVAL;
	sqe = io_uring_get_sqe(&d->ring);
	if (!sqe) {
		/* SQ full of queued entries: hand them over and retry. */
		int ret = uring_kick(d);

		if (ret < 0)
			return ret;
		sqe = io_uring_get_sqe(&d->ring);
		if (!sqe)
			return -EAGAIN;
	}
	switch (r->op) {
	case DISK_OP_READ:
		io_uring_prep_readv(sqe, d->fd, r->iov, r->iovcnt, r->offset);
		break;
	case DISK_OP_WRITE:
		io_uring_prep_writev(sqe, d->fd, r->iov, r->iovcnt, r->offset);
		break;
	case DISK_OP_FLUSH:
		/* virtio-blk FLUSH (5.2.6.2) asks for the data on stable
		 * storage; fdatasync semantics suffice for an image file. */
		io_uring_prep_fsync(sqe, d->fd, IORING_FSYNC_DATASYNC);
		break;
	}
	io_uring_sqe_set_data64(sqe, r->cookie);
	d->queued++;
	d->inflight++;
	return 0;
}

static void complete_one(struct disk *d, struct io_uring_cqe *cqe)
{
	uint64_t cookie = io_uring_cqe_get_data64(cqe);
	int64_t res = cqe->res;

	io_uring_cqe_seen(&d->ring, cqe);
	d->inflight--;
	d->done(d->opaque, cookie, res);
}

static int uring_poll(struct disk *d)
{
	struct io_uring_cqe *cqe;
	uint64_t v;
	int n = 0;

	/* Drain the eventfd before reaping: a completion that lands after
	 * the reap then leaves the eventfd readable, so none is missed. */
	if (read(d->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn_errno("eventfd read");
	while (d->inflight && io_uring_peek_cqe(&d->ring, &cqe) == 0) {
		complete_one(d, cqe);
		n++;
	}
	return n;
}

static int uring_wait(struct disk *d)
{
	struct io_uring_cqe *cqe;
	int ret;

	ret = uring_kick(d);
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
	io_uring_unregister_eventfd(&d->ring);
	io_uring_queue_exit(&d->ring);
	close(d->efd);
	free(d);
}

static int uring_event_fd(const struct disk *d)
{
	return d->efd;
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
