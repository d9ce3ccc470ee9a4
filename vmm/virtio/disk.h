/*
 * disk.h - the block backend behind virtio-blk: an ops table, so that the
 * io_uring backend (disk_uring.c) and a plain pread/pwrite one (disk_sync.c)
 * are interchangeable.
 *
 * Owns: submitting validated byte-range requests against an open file and
 * reporting their completions. It does not own the fd (the caller opens and
 * closes it), does no request validation (blk.c parsed and range-checked
 * already) and no locking: the caller serialises all calls on one disk (blk.c
 * holds its device lock), from whichever thread.
 */
#ifndef EMBER_DISK_H
#define EMBER_DISK_H

#include <stdint.h>
#include <sys/uio.h>

#define DISK_MAX_IOV 64 /* iovecs in one request (>= VIRTQ_MAX_SEGS) */

enum disk_op { DISK_OP_READ, DISK_OP_WRITE, DISK_OP_FLUSH };

struct disk_req {
	enum disk_op op;
	uint64_t offset;          /* bytes from the start of the file */
	const struct iovec *iov;  /* must stay valid until completion */
	unsigned iovcnt;          /* <= DISK_MAX_IOV; 0 for FLUSH */
	uint64_t cookie;          /* handed back to the completion */
};

/* A completion: `res` is the number of bytes transferred (0 for a flush) or
 * a negative errno. Runs inside submit() (a request finished at once: every
 * one for the sync backend, a page-cache read for io_uring), kick() (what
 * the kernel finished while being handed the batch), poll() or wait(), on
 * the calling thread. */
typedef void (*disk_done_fn)(void *opaque, uint64_t cookie, int64_t res);

struct disk;

struct disk_ops {
	const char *name;
	/* A backend over `fd` for at most `depth` requests in flight.
	 * NULL and *err = -errno on failure. */
	struct disk *(*create)(int fd, unsigned depth, disk_done_fn done,
			       void *opaque, int *err);
	/* Waits for every request in flight (completing each through `done`),
	 * then frees the backend. The fd stays open. */
	void (*destroy)(struct disk *d);
	/* Queues one request: 0, or -EAGAIN when `depth` requests are in
	 * flight, or another -errno. It may complete before returning. */
	int (*submit)(struct disk *d, const struct disk_req *r);
	/* Hands queued requests to the kernel (one syscall for a batch),
	 * then completes those already finished. 0 or -errno. */
	int (*kick)(struct disk *d);
	/* Completes whatever has finished, without blocking. Returns the
	 * number of completions. */
	int (*poll)(struct disk *d);
	/* Blocks until nothing is in flight. 0 or -errno. */
	int (*wait)(struct disk *d);
	/* An fd that becomes readable when poll() has work, or -1 when
	 * requests always complete inside submit(). */
	int (*event_fd)(const struct disk *d);
};

extern const struct disk_ops disk_uring_ops;
extern const struct disk_ops disk_sync_ops;

#endif
