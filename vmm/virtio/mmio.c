/*
 * mmio.c - the virtio-mmio transport, version 2 (virtio 1.2, section 4.2).
 *
 * Everything here is driven by the guest through 32-bit register accesses on
 * vCPU threads, so every value is hostile: the queue selector is checked
 * before any lookup, status changes follow a table of allowed transitions,
 * acked features are masked by offered ones, and the queues are validated
 * only when the driver sets DRIVER_OK. Locking: see mmio.h.
 */
#include "mmio.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "ember/abi.h"
#include "snapshots/snap.h"
#define LOG_MOD "vmmio"
#include "../log.h"

static inline uint32_t lo32(uint64_t v)
{
	return (uint32_t)v;
}
static inline uint32_t hi32(uint64_t v)
{
	return (uint32_t)(v >> 32);
}
static inline uint64_t set_lo(uint64_t v, uint32_t x)
{
	return (v & 0xffffffff00000000ULL) | x;
}
static inline uint64_t set_hi(uint64_t v, uint32_t x)
{
	return (v & 0xffffffffULL) | ((uint64_t)x << 32);
}

/* Feature bits offered: the device's plus VERSION_1, which a modern-only
 * transport always offers (4.2.4: legacy interface not supported). */
static uint64_t offered(const struct vmmio_dev *t)
{
	return t->ops->features | (1ULL << VIRTIO_F_VERSION_1);
}

static void efd_write(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
		log_warn_rl("eventfd %d write: %s", fd, strerror(errno));
}

/* Sets bit(s) in InterruptStatus; the irqfd fires only when a bit is newly
 * set: the driver's handler reads and acks the whole register (4.2.3.4),
 * so a bit already pending will be seen anyway. */
static void raise_locked(struct vmmio_dev *t, uint32_t bit)
{
	bool newly = !(t->interrupt_status & bit);

	t->interrupt_status |= bit;
	if (newly)
		efd_write(t->irq_fd);
}

static bool live_locked(const struct vmmio_dev *t)
{
	return t->activated && (t->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(t->status &
		 (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED));
}

static void needs_reset_locked(struct vmmio_dev *t, const char *why)
{
	if (t->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	log_warn_rl("%s@%#llx: device needs reset: %s", t->ops->name,
		    (unsigned long long)t->base, why);
	t->status |= VIRTIO_STATUS_NEEDS_RESET;
	/* 2.1.2: with DRIVER_OK set, NEEDS_RESET comes with a configuration
	 * change notification. A polling driver is woken to look. */
	if (t->status & VIRTIO_STATUS_DRIVER_OK)
		raise_locked(t, VMMIO_INT_CONFIG);
	efd_write(t->wake_fd);
}

void vmmio_init(struct vmmio_dev *t, const struct virtio_dev_ops *ops,
		void *dev, const struct guest_mem *mem, uint64_t base,
		uint32_t gsi, int irq_fd)
{
	memset(t, 0, sizeof(*t));
	t->ops = ops;
	t->dev = dev;
	t->mem = mem;
	t->base = base;
	t->gsi = gsi;
	t->irq_fd = irq_fd;
	t->wake_fd = -1;
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->ctrl_lock, NULL);
	if (ops->nr_queues > VMMIO_MAX_QUEUES)
		log_err("%s: %u queues, transport supports %u", ops->name,
			ops->nr_queues, VMMIO_MAX_QUEUES);
}

void vmmio_set_wake_fd(struct vmmio_dev *t, int wake_fd)
{
	pthread_mutex_lock(&t->lock);
	t->wake_fd = wake_fd;
	pthread_mutex_unlock(&t->lock);
}

void vmmio_destroy(struct vmmio_dev *t)
{
	pthread_mutex_destroy(&t->ctrl_lock);
	pthread_mutex_destroy(&t->lock);
}

static unsigned nr_queues(const struct vmmio_dev *t)
{
	return t->ops->nr_queues < VMMIO_MAX_QUEUES ? t->ops->nr_queues
						    : VMMIO_MAX_QUEUES;
}

/* The selected queue, or NULL when QueueSel is out of range: callers then
 * read 0 and ignore writes (4.2.2.1 and Firecracker's with_queue). */
static struct virtq *sel_queue(struct vmmio_dev *t)
{
	return t->queue_sel < nr_queues(t) ? &t->vq[t->queue_sel] : NULL;
}

/* 4.2.3.2: queues are programmed after FEATURES_OK and before DRIVER_OK;
 * writes at other times (or while the queue is ready) are ignored so that a
 * live ring never moves under the device. */
static struct virtq *sel_queue_programmable(struct vmmio_dev *t)
{
	struct virtq *q = sel_queue(t);

	if (!q || (t->status & (VIRTIO_STATUS_DRIVER_OK |
				VIRTIO_STATUS_FAILED)) ||
	    !(t->status & VIRTIO_STATUS_FEATURES_OK))
		return NULL;
	return q;
}

/* Full device reset (status 0 written, 2.4.1 / 4.2.3.1). ctrl_lock held. */
static void do_reset(struct vmmio_dev *t)
{
	/* The device first: it stops touching the queues (and drains any
	 * in-flight I/O) before their state is cleared under us. */
	if (t->ops->reset)
		t->ops->reset(t->dev);
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < VMMIO_MAX_QUEUES; i++)
		virtq_reset(&t->vq[i]);
	t->status = 0;
	t->device_features_sel = 0;
	t->driver_features_sel = 0;
	t->driver_features = 0;
	t->acked_features = 0;
	t->queue_sel = 0;
	t->interrupt_status = 0;
	t->activated = false;
	pthread_mutex_unlock(&t->lock);
}

/* Validates every queue and goes live. Called with `lock` held; returns true
 * when ops->activate should now be called (without `lock`). */
static bool activate_locked(struct vmmio_dev *t)
{
	bool evt = t->acked_features & (1ULL << VIRTIO_F_RING_EVENT_IDX);
	bool ind = t->acked_features & (1ULL << VIRTIO_F_RING_INDIRECT_DESC);

	t->status |= VIRTIO_STATUS_DRIVER_OK;
	for (unsigned i = 0; i < nr_queues(t); i++) {
		struct virtq *q = &t->vq[i];

		if (!q->ready) {
			needs_reset_locked(t, "queue not ready at DRIVER_OK");
			return false;
		}
		q->event_idx = evt;
		q->indirect = ind;
		if (virtq_activate(q, t->mem, t->ops->queue_max) < 0) {
			needs_reset_locked(t, "invalid queue programming");
			return false;
		}
	}
	t->activated = true;
	return true;
}

/*
 * Status register write (2.1, 3.1.1, 4.2.3.1). Allowed: 0 (reset) at any
 * time, FAILED added at any time, otherwise bits are only added, in the
 * order ACKNOWLEDGE -> DRIVER -> FEATURES_OK -> DRIVER_OK. FEATURES_OK is
 * refused (left clear, 3.1.1 step 6) unless VERSION_1 was acked. ctrl_lock
 * held, `lock` not.
 */
static void write_status(struct vmmio_dev *t, uint32_t val)
{
	static const uint32_t order[] = {
		VIRTIO_STATUS_ACKNOWLEDGE, VIRTIO_STATUS_DRIVER,
		VIRTIO_STATUS_FEATURES_OK, VIRTIO_STATUS_DRIVER_OK,
	};
	uint32_t cur, want, added;
	bool go = false;
	int ret;

	if (val == 0) {
		do_reset(t);
		return;
	}
	pthread_mutex_lock(&t->lock);
	/* NEEDS_RESET is the device's: a read-modify-write by the driver
	 * carries it along, and it is not the driver's to set. */
	cur = t->status & ~VIRTIO_STATUS_NEEDS_RESET;
	want = val & ~VIRTIO_STATUS_NEEDS_RESET;
	if ((want & cur) != cur) {
		log_warn_rl("%s: status %#x -> %#x clears bits: refused",
			    t->ops->name, cur, val);
		goto out;
	}
	added = want & ~cur;
	if (added & VIRTIO_STATUS_FAILED) {
		t->status |= VIRTIO_STATUS_FAILED;
		added &= ~VIRTIO_STATUS_FAILED;
	}
	for (unsigned i = 0; i < 4 && added; i++) {
		uint32_t bit = order[i];

		if (!(added & bit))
			continue;
		/* Every earlier step must already be set (or set by this
		 * same write, handled by the loop order). */
		for (unsigned j = 0; j < i; j++) {
			if (!(t->status & order[j])) {
				log_warn_rl("%s: status bit %#x before %#x: "
					    "refused", t->ops->name, bit,
					    order[j]);
				goto out;
			}
		}
		if (t->status & VIRTIO_STATUS_FAILED) {
			log_warn_rl("%s: status %#x after FAILED: refused",
				    t->ops->name, bit);
			goto out;
		}
		if (bit == VIRTIO_STATUS_FEATURES_OK) {
			if (!(t->driver_features &
			      (1ULL << VIRTIO_F_VERSION_1))) {
				log_warn_rl("%s: FEATURES_OK without "
					    "VERSION_1: refused", t->ops->name);
				goto out;
			}
			t->acked_features = t->driver_features;
			t->status |= bit;
		} else if (bit == VIRTIO_STATUS_DRIVER_OK) {
			go = activate_locked(t);
		} else {
			t->status |= bit;
		}
		added &= ~bit;
	}
	if (added)
		log_warn_rl("%s: unknown status bits %#x ignored", t->ops->name,
			    added);
out:
	pthread_mutex_unlock(&t->lock);
	if (!go || !t->ops->activate)
		return;
	ret = t->ops->activate(t->dev, t);
	if (ret < 0) {
		pthread_mutex_lock(&t->lock);
		t->activated = false;
		needs_reset_locked(t, "device activation failed");
		pthread_mutex_unlock(&t->lock);
		return;
	}
	/* Once per driver bring-up: tells the operator (ember-vmm -v) which
	 * devices the guest's drivers took. */
	log_info("%s at %#llx: driver ready, features %#llx", t->ops->name,
		 (unsigned long long)t->base,
		 (unsigned long long)t->acked_features);
}

static uint32_t read_reg(struct vmmio_dev *t, uint64_t off)
{
	struct virtq *q;
	uint64_t f;

	switch (off) {
	case VMMIO_MAGIC_VALUE:
		return VMMIO_MAGIC;
	case VMMIO_VERSION:
		return 2;
	case VMMIO_DEVICE_ID:
		return t->ops->device_id;
	case VMMIO_VENDOR_ID:
		return VMMIO_VENDOR;
	case VMMIO_DEVICE_FEATURES:
		f = offered(t);
		return t->device_features_sel == 0   ? lo32(f)
		       : t->device_features_sel == 1 ? hi32(f)
						     : 0;
	case VMMIO_QUEUE_NUM_MAX:
		return sel_queue(t) ? t->ops->queue_max : 0;
	case VMMIO_QUEUE_READY:
		q = sel_queue(t);
		return q ? q->ready : 0;
	case VMMIO_INTERRUPT_STATUS:
		return t->interrupt_status;
	case VMMIO_STATUS:
		return t->status;
	case VMMIO_SHM_LEN_LOW:
	case VMMIO_SHM_LEN_HIGH:
		/* 4.2.2: no shared memory regions: length reads as -1. */
		return 0xffffffffu;
	case VMMIO_CONFIG_GENERATION:
		return t->config_generation;
	default:
		/* Write-only and reserved registers read as 0. */
		return 0;
	}
}

/* Returns a queue index to notify, or -1. */
static int write_reg(struct vmmio_dev *t, uint64_t off, uint32_t v)
{
	struct virtq *q;

	switch (off) {
	case VMMIO_DEVICE_FEATURES_SEL:
		t->device_features_sel = v;
		break;
	case VMMIO_DRIVER_FEATURES_SEL:
		t->driver_features_sel = v;
		break;
	case VMMIO_DRIVER_FEATURES:
		/* 3.1.1: features are written after DRIVER, before
		 * FEATURES_OK; acked bits are masked by what was offered. */
		if (!(t->status & VIRTIO_STATUS_DRIVER) ||
		    (t->status & VIRTIO_STATUS_FEATURES_OK)) {
			log_warn_rl("%s: DriverFeatures write in status %#x "
				    "ignored", t->ops->name, t->status);
			break;
		}
		if (t->driver_features_sel == 0)
			t->driver_features = set_lo(t->driver_features, v);
		else if (t->driver_features_sel == 1)
			t->driver_features = set_hi(t->driver_features, v);
		t->driver_features &= offered(t);
		break;
	case VMMIO_QUEUE_SEL:
		t->queue_sel = v; /* checked on every use */
		break;
	case VMMIO_QUEUE_NUM:
		if ((q = sel_queue_programmable(t)))
			/* Out-of-range values stay invalid (not truncated
			 * into a valid size) and fail at DRIVER_OK. */
			q->size = v > 0xffff ? 0xffff : (uint16_t)v;
		break;
	case VMMIO_QUEUE_READY:
		if ((q = sel_queue_programmable(t)))
			q->ready = v & 1;
		break;
	case VMMIO_QUEUE_DESC_LOW:
		if ((q = sel_queue_programmable(t)))
			q->desc_gpa = set_lo(q->desc_gpa, v);
		break;
	case VMMIO_QUEUE_DESC_HIGH:
		if ((q = sel_queue_programmable(t)))
			q->desc_gpa = set_hi(q->desc_gpa, v);
		break;
	case VMMIO_QUEUE_DRIVER_LOW:
		if ((q = sel_queue_programmable(t)))
			q->avail_gpa = set_lo(q->avail_gpa, v);
		break;
	case VMMIO_QUEUE_DRIVER_HIGH:
		if ((q = sel_queue_programmable(t)))
			q->avail_gpa = set_hi(q->avail_gpa, v);
		break;
	case VMMIO_QUEUE_DEVICE_LOW:
		if ((q = sel_queue_programmable(t)))
			q->used_gpa = set_lo(q->used_gpa, v);
		break;
	case VMMIO_QUEUE_DEVICE_HIGH:
		if ((q = sel_queue_programmable(t)))
			q->used_gpa = set_hi(q->used_gpa, v);
		break;
	case VMMIO_QUEUE_NOTIFY:
		return (int)(v & 0xffff);
	case VMMIO_INTERRUPT_ACK:
		t->interrupt_status &= ~v;
		break;
	default:
		log_warn_rl("%s: write %#x to read-only/reserved register "
			    "%#llx ignored", t->ops->name, v,
			    (unsigned long long)off);
		break;
	}
	return -1;
}

/* Config space (4.2.2: at 0x100, any access width the device allows; the
 * driver may byte-access it). Out-of-range reads give zeroes. */
static void config_access(struct vmmio_dev *t, uint64_t off, uint8_t *data,
			  uint32_t len, bool is_write)
{
	if (len != 1 && len != 2 && len != 4 && len != 8)
		goto bad;
	if (off > t->ops->config_len || len > t->ops->config_len - off)
		goto bad;
	if (is_write) {
		if (t->ops->config_write)
			t->ops->config_write(t->dev, (uint32_t)off, data, len);
	} else if (t->ops->config_read) {
		t->ops->config_read(t->dev, (uint32_t)off, data, len);
	} else {
		memset(data, 0, len);
	}
	return;
bad:
	if (!is_write)
		memset(data, 0, len);
	log_warn_rl("%s: config %s at %#llx len %u out of range",
		    t->ops->name, is_write ? "write" : "read",
		    (unsigned long long)off, len);
}

int vmmio_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		 bool is_write)
{
	struct vmmio_dev *t = opaque;
	uint32_t v = 0;
	int notify = -1;

	if (offset >= EMBER_VIRTIO_MMIO_SIZE || len > EMBER_VIRTIO_MMIO_SIZE - offset) {
		if (!is_write)
			memset(data, 0, len);
		return 0;
	}
	pthread_mutex_lock(&t->ctrl_lock);
	if (offset >= VMMIO_CONFIG) {
		config_access(t, offset - VMMIO_CONFIG, data, len, is_write);
		goto out;
	}
	/* 4.2.2.2: the driver MUST use 32-bit aligned accesses for the
	 * registers; anything else is answered with 0 / ignored. */
	if (len != 4 || (offset & 3)) {
		if (!is_write)
			memset(data, 0, len);
		log_warn_rl("%s: %u-byte access at %#llx ignored", t->ops->name,
			    len, (unsigned long long)offset);
		goto out;
	}
	if (!is_write) {
		pthread_mutex_lock(&t->lock);
		v = read_reg(t, offset);
		pthread_mutex_unlock(&t->lock);
		memcpy(data, &v, 4); /* little-endian host and wire (4.2.2) */
		goto out;
	}
	memcpy(&v, data, 4);
	if (offset == VMMIO_STATUS) {
		write_status(t, v);
		goto out;
	}
	pthread_mutex_lock(&t->lock);
	notify = write_reg(t, offset, v);
	pthread_mutex_unlock(&t->lock);
	if (notify >= 0)
		vmmio_notify(t, (uint32_t)notify);
out:
	pthread_mutex_unlock(&t->ctrl_lock);
	return 0;
}

void vmmio_notify(struct vmmio_dev *t, uint32_t q)
{
	bool live;

	if (q >= nr_queues(t)) {
		log_warn_rl("%s: notify for queue %u ignored", t->ops->name, q);
		return;
	}
	pthread_mutex_lock(&t->lock);
	live = live_locked(t);
	pthread_mutex_unlock(&t->lock);
	if (live && t->ops->notify)
		t->ops->notify(t->dev, q);
}

void vmmio_signal_used(struct vmmio_dev *t, unsigned q)
{
	pthread_mutex_lock(&t->lock);
	if (q < nr_queues(t) && live_locked(t)) {
		/* The caller (the device, under its own lock) is the only
		 * user of the queue right now, so reading its signalled
		 * state here is race-free. */
		if (virtq_needs_notify(&t->vq[q]))
			raise_locked(t, VMMIO_INT_VRING);
		efd_write(t->wake_fd);
	}
	pthread_mutex_unlock(&t->lock);
}

void vmmio_set_needs_reset(struct vmmio_dev *t, const char *why)
{
	pthread_mutex_lock(&t->lock);
	needs_reset_locked(t, why);
	pthread_mutex_unlock(&t->lock);
}

bool vmmio_is_live(const struct vmmio_dev *t)
{
	struct vmmio_dev *m = (struct vmmio_dev *)(uintptr_t)t;
	bool live;

	/* The lock is logically const-safe: only the snapshot is read. */
	pthread_mutex_lock(&m->lock);
	live = live_locked(t);
	pthread_mutex_unlock(&m->lock);
	return live;
}

/* ---- persistence (struct snap_virtio_dev, snapshots/snap.h) ---- */

void vmmio_save(struct vmmio_dev *t, struct snap_virtio_dev *d)
{
	/* Quiesced already; the lock makes the read one consistent view
	 * all the same (and says who owns these fields). */
	pthread_mutex_lock(&t->lock);
	d->device_id = t->ops->device_id;
	d->mmio_base = t->base;
	d->gsi = t->gsi;
	d->status = t->status;
	d->device_features_sel = t->device_features_sel;
	d->driver_features_sel = t->driver_features_sel;
	d->driver_features = t->driver_features;
	d->acked_features = t->acked_features;
	d->queue_sel = t->queue_sel;
	d->interrupt_status = t->interrupt_status;
	d->config_generation = t->config_generation;
	d->activated = t->activated;
	d->nr_queues = nr_queues(t);
	for (unsigned q = 0; q < d->nr_queues && q < SNAP_MAX_QUEUES; q++) {
		const struct virtq *vq = &t->vq[q];

		d->vq[q] = (struct snap_virtq){
			.size = vq->size,
			.ready = vq->ready,
			.desc_gpa = vq->desc_gpa,
			.avail_gpa = vq->avail_gpa,
			.used_gpa = vq->used_gpa,
			.last_avail = vq->last_avail,
			.used_idx = vq->used_idx,
			.event_idx = vq->event_idx,
			.signalled_used = vq->signalled_used,
			.signalled_valid = vq->signalled_valid,
		};
	}
	pthread_mutex_unlock(&t->lock);
}

int vmmio_restore(struct vmmio_dev *t, const struct snap_virtio_dev *d,
		  char *err, size_t errlen)
{
	const uint64_t ok = offered(t);
	int ret;

	if (d->device_id != t->ops->device_id || d->nr_queues != nr_queues(t))
		return errbuf_fail(err, errlen, -EINVAL, "%s: kind or queue "
				   "count differs", t->ops->name);
	pthread_mutex_lock(&t->lock);
	t->status = d->status;
	t->device_features_sel = d->device_features_sel;
	t->driver_features_sel = d->driver_features_sel;
	/* Acked features masked by offered ones, as a fresh negotiation. */
	t->driver_features = d->driver_features & ok;
	t->acked_features = d->acked_features & ok;
	t->queue_sel = d->queue_sel;
	t->interrupt_status = d->interrupt_status;
	t->config_generation = d->config_generation;
	for (unsigned q = 0; q < d->nr_queues; q++) {
		struct virtq *vq = &t->vq[q];
		const struct snap_virtq *sq = &d->vq[q];

		virtq_reset(vq);
		vq->size = sq->size;
		vq->desc_gpa = sq->desc_gpa;
		vq->avail_gpa = sq->avail_gpa;
		vq->used_gpa = sq->used_gpa;
		vq->ready = sq->ready;
		vq->event_idx = sq->event_idx;
		vq->indirect = t->acked_features &
			       (1ULL << VIRTIO_F_RING_INDIRECT_DESC);
		/* Validated again as if the driver had just programmed it. */
		if (d->activated && vq->ready &&
		    virtq_activate(vq, t->mem, t->ops->queue_max) < 0) {
			pthread_mutex_unlock(&t->lock);
			return errbuf_fail(err, errlen, -EINVAL, "%s queue %u: "
					   "saved queue state is invalid",
					   t->ops->name, q);
		}
		vq->last_avail = sq->last_avail;
		vq->used_idx = sq->used_idx;
		vq->signalled_used = sq->signalled_used;
		vq->signalled_valid = sq->signalled_valid;
	}
	pthread_mutex_unlock(&t->lock);
	if (!d->activated)
		return 0;
	ret = t->ops->activate ? t->ops->activate(t->dev, t) : 0;
	if (ret < 0)
		return errbuf_fail(err, errlen, ret, "%s: cannot activate: %s",
				   t->ops->name, strerror(-ret));
	t->activated = true;
	return 0;
}
