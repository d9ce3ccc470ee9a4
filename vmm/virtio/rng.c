/*
 * rng.c - virtio-rng, the entropy device (virtio 1.2, section 5.4).
 *
 * Owns: one request queue. Every chain the driver makes available is
 * filled, in its device-writable buffers, with bytes from the host's
 * getrandom(2) and returned at once (nothing is held, so a snapshot has
 * nothing to drain). A clone restored from a snapshot gets fresh host
 * entropy from its first request on: that is what guests want the device
 * for (Linux's hw_random, a micro guest's getrandom).
 *
 * Hostile input: a chain with no writable buffer gets 0 bytes; one asking
 * for more than VRNG_MAX_REQ bytes gets VRNG_MAX_REQ; a broken ring marks
 * the device DEVICE_NEEDS_RESET.
 *
 * Threads: requests arrive through ops->notify on a vCPU or the event
 * thread; activate and reset on a vCPU thread. The device lock serialises
 * them (lock order: device, then transport, mmio.h).
 *
 * It is its own file plus one line of vmm/devtable.c: always present
 * (after the disks and vsock, so no other device's window moves), nothing
 * to configure, nothing to save.
 */
#define LOG_MOD "vrng"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../devtable.h"
#include "../log.h"
#include "mmio.h"
#include "virtio.h"
#include "virtq.h"

#define VIRTIO_ID_ENTROPY 4        /* virtio 1.2, 5 "Device Types" */
#define VRNG_QUEUE_SIZE 64
#define VRNG_MAX_REQ (64u * 1024)  /* bytes returned for one chain */

struct vrng {
	pthread_mutex_t lock;
	struct vmmio_dev *t;       /* set while activated */
	bool broken;
	struct virtq_chain chain;  /* scratch */
	uint64_t bytes;            /* handed out so far (tests) */
};

/* Fills the chain's writable segments: the byte count written. */
static uint32_t fill(const struct virtq_chain *c)
{
	uint32_t done = 0;

	for (unsigned i = 0; i < c->nr_segs && done < VRNG_MAX_REQ; i++) {
		const struct virtq_seg *s = &c->seg[i];
		uint32_t want = s->len;

		if (!s->writable)
			continue;
		if (want > VRNG_MAX_REQ - done)
			want = VRNG_MAX_REQ - done;
		for (uint32_t off = 0; off < want;) {
			ssize_t n = getrandom(s->hva + off, want - off, 0);

			if (n <= 0) {
				if (n < 0 && errno == EINTR)
					continue;
				log_warn_rl("getrandom: %s", strerror(errno));
				return done + off;
			}
			off += (uint32_t)n;
		}
		done += want;
	}
	return done;
}

/* Answers every available request. Lock held. */
static void serve(struct vrng *r)
{
	bool used = false;

	while (r->t && !r->broken) {
		struct virtq *q = &r->t->vq[0];
		uint32_t n;
		int ret = virtq_pop(q, r->t->mem, &r->chain);

		if (ret == 0)
			break;
		if (ret < 0) {
			r->broken = true;
			vmmio_set_needs_reset(r->t, "virtio-rng: broken ring");
			break;
		}
		n = fill(&r->chain);
		r->bytes += n;
		virtq_push(q, r->chain.head, n);
		used = true;
	}
	if (used)
		vmmio_signal_used(r->t, 0);
}

static int vrng_activate(void *dev, struct vmmio_dev *t)
{
	struct vrng *r = dev;

	pthread_mutex_lock(&r->lock);
	r->t = t;
	r->broken = false;
	serve(r); /* chains made available before DRIVER_OK */
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static void vrng_notify(void *dev, unsigned q)
{
	struct vrng *r = dev;

	if (q != 0)
		return;
	pthread_mutex_lock(&r->lock);
	serve(r);
	pthread_mutex_unlock(&r->lock);
}

static void vrng_reset(void *dev)
{
	struct vrng *r = dev;

	pthread_mutex_lock(&r->lock);
	r->t = NULL;
	r->broken = false;
	pthread_mutex_unlock(&r->lock);
}

static const struct virtio_dev_ops vrng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_ENTROPY,
	.nr_queues = 1,
	.queue_max = VRNG_QUEUE_SIZE,
	.features = 0,         /* none defined (5.4.3) */
	.config_len = 0,       /* no config space (5.4.4) */
	.activate = vrng_activate,
	.notify = vrng_notify,
	.reset = vrng_reset,
};

/* ------------------------------------------------- the device table's */

static unsigned vrng_count(const struct ember_config *cfg)
{
	(void)cfg;
	return 1;
}

static void *vrng_create(const struct vm_dev_ctx *ctx,
			 const struct virtio_dev_ops **ops, int *ret,
			 char *err, size_t errlen)
{
	struct vrng *r = calloc(1, sizeof(*r));

	(void)ctx;
	if (!r) {
		*ret = errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	*ops = &vrng_ops;
	return r;
}

/* Nothing was saved: a restored device is a fresh one (the transport
 * brings the queue back). */
static void *vrng_restore(const struct vm_dev_ctx *ctx,
			  const struct snap_virtio_dev *saved,
			  const struct virtio_dev_ops **ops, int *ret,
			  char *err, size_t errlen)
{
	(void)saved;
	return vrng_create(ctx, ops, ret, err, errlen);
}

static int vrng_save(void *dev, struct snap_virtio_dev *saved, char *err,
		     size_t errlen)
{
	(void)dev;
	(void)saved;
	(void)err;
	(void)errlen;
	return 0;
}

static void vrng_destroy(void *dev)
{
	struct vrng *r = dev;

	pthread_mutex_destroy(&r->lock);
	free(r);
}

const struct vm_device_type vrng_type = {
	.name = "rng",
	.virtio_id = VIRTIO_ID_ENTROPY,
	.count = vrng_count,
	.create = vrng_create,
	.restore = vrng_restore,
	.save = vrng_save,
	.destroy = vrng_destroy,
};
