/*
 * disk_sync.c - the synchronous disk backend: preadv/pwritev/fdatasync on
 * the calling thread, completing every request inside submit(). The
 * reference for disk_uring.c (and its benchmark baseline); it blocks the
 * vCPU or event thread for the whole I/O, so it is not the default.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk.h"

struct disk {
	int fd;
	disk_done_fn done;
	void *opaque;
};

static struct disk *sync_create(int fd, unsigned depth, disk_done_fn done,
				void *opaque, int *err)
{
	struct disk *d = calloc(1, sizeof(*d));

	(void)depth;
	if (!d) {
		*err = -ENOMEM;
		return NULL;
	}
	d->fd = fd;
	d->done = done;
	d->opaque = opaque;
	return d;
}

static void sync_destroy(struct disk *d)
{
	free(d);
}

/* preadv/pwritev until everything moved, EOF, or an error: a regular file
 * may transfer less than asked (signals, EOF); the caller decides whether
 * a short total is an error. */
static int64_t rw_all(int fd, bool write, const struct iovec *iov,
		      unsigned cnt, uint64_t off)
{
	struct iovec v[DISK_MAX_IOV];
	unsigned i = 0;
	int64_t total = 0;

	memcpy(v, iov, cnt * sizeof(*v));
	while (i < cnt) {
		ssize_t n = write ? pwritev(fd, v + i, (int)(cnt - i), (off_t)off)
				  : preadv(fd, v + i, (int)(cnt - i), (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break; /* EOF */
		total += n;
		off += (uint64_t)n;
		/* Skip the iovecs fully done, trim the partial one. */
		while (i < cnt && (size_t)n >= v[i].iov_len) {
			n -= (ssize_t)v[i].iov_len;
			i++;
		}
		if (i < cnt) {
			v[i].iov_base = (uint8_t *)v[i].iov_base + n;
			v[i].iov_len -= (size_t)n;
		}
	}
	return total;
}

static int sync_submit(struct disk *d, const struct disk_req *r)
{
	int64_t res;

	if (r->iovcnt > DISK_MAX_IOV)
		return -EINVAL;
	switch (r->op) {
	case DISK_OP_READ:
		res = rw_all(d->fd, false, r->iov, r->iovcnt, r->offset);
		break;
	case DISK_OP_WRITE:
		res = rw_all(d->fd, true, r->iov, r->iovcnt, r->offset);
		break;
	case DISK_OP_FLUSH:
		res = fdatasync(d->fd) < 0 ? -errno : 0;
		break;
	default:
		return -EINVAL;
	}
	d->done(d->opaque, r->cookie, res);
	return 0;
}

static int sync_nop(struct disk *d)
{
	(void)d;
	return 0;
}

static int sync_event_fd(const struct disk *d)
{
	(void)d;
	return -1;
}

const struct disk_ops disk_sync_ops = {
	.name = "sync",
	.create = sync_create,
	.destroy = sync_destroy,
	.submit = sync_submit,
	.kick = sync_nop,
	.poll = sync_nop,
	.wait = sync_nop,
	.event_fd = sync_event_fd,
};
