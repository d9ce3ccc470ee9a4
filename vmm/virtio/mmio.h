/*
 * mmio.h - the virtio-mmio transport, version 2 registers (virtio 1.2, 4.2.2).
 *
 * Owns: one device window's registers, feature negotiation, the status state
 * machine (only the transitions the spec allows), the queues' programming
 * and validation at DRIVER_OK, InterruptStatus and its acknowledgement, and
 * DEVICE_NEEDS_RESET. Registers are accessed from vCPU threads through the
 * bus; the device signals from its own thread; a mutex serialises both.
 */
#ifndef EMBER_VMMIO_H
#define EMBER_VMMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../mem.h"
#include "virtio.h"
#include "virtq.h"

#define VMMIO_MAX_QUEUES 4

#define VMMIO_INT_VRING 1
#define VMMIO_INT_CONFIG 2

/* Register offsets of the version 2 window (virtio 1.2, 4.2.2, table
 * "MMIO Device Register Layout"); all 32 bits wide. */
#define VMMIO_MAGIC_VALUE 0x000      /* R: 0x74726976, "virt" */
#define VMMIO_VERSION 0x004          /* R: 2 */
#define VMMIO_DEVICE_ID 0x008        /* R */
#define VMMIO_VENDOR_ID 0x00c        /* R */
#define VMMIO_DEVICE_FEATURES 0x010  /* R */
#define VMMIO_DEVICE_FEATURES_SEL 0x014 /* W */
#define VMMIO_DRIVER_FEATURES 0x020  /* W */
#define VMMIO_DRIVER_FEATURES_SEL 0x024 /* W */
#define VMMIO_QUEUE_SEL 0x030        /* W */
#define VMMIO_QUEUE_NUM_MAX 0x034    /* R */
#define VMMIO_QUEUE_NUM 0x038        /* W */
#define VMMIO_QUEUE_READY 0x044      /* RW */
#define VMMIO_INTERRUPT_STATUS 0x060 /* R */
#define VMMIO_INTERRUPT_ACK 0x064    /* W */
#define VMMIO_STATUS 0x070           /* RW */
#define VMMIO_QUEUE_DESC_LOW 0x080   /* W */
#define VMMIO_QUEUE_DESC_HIGH 0x084
#define VMMIO_QUEUE_DRIVER_LOW 0x090
#define VMMIO_QUEUE_DRIVER_HIGH 0x094
#define VMMIO_QUEUE_DEVICE_LOW 0x0a0
#define VMMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VMMIO_SHM_SEL 0x0ac
#define VMMIO_SHM_LEN_LOW 0x0b0
#define VMMIO_SHM_LEN_HIGH 0x0b4
#define VMMIO_SHM_BASE_LOW 0x0b8
#define VMMIO_SHM_BASE_HIGH 0x0bc
#define VMMIO_CONFIG_GENERATION 0x0fc /* R */
#define VMMIO_CONFIG 0x100           /* device config space starts here */

#define VMMIO_MAGIC 0x74726976u
#define VMMIO_VENDOR 0x52424d45u     /* "EMBR" */

/*
 * Locks, outermost first: ctrl_lock (one register access at a time; held
 * while the transport calls ops->config_read/config_write/activate/reset/
 * notify for a register write), then the device's own lock, then `lock`
 * (transport state; a leaf: the transport never calls out while holding
 * it). So a device may call any vmmio_* function while holding its own lock,
 * and device ops must not call vmmio_access. vmmio_notify from an ioeventfd
 * takes only `lock`, briefly, then calls ops->notify with no lock held.
 */

struct vmmio_dev {
	const struct virtio_dev_ops *ops;
	void *dev;                 /* the device, passed to ops */
	const struct guest_mem *mem;
	pthread_mutex_t lock;
	pthread_mutex_t ctrl_lock;
	/* Interrupt: an eventfd wired to the guest's GSI with KVM_IRQFD, or -1
	 * for guests that poll (no interrupt is ever raised). */
	int irq_fd;
	/* An eventfd written on every vmmio_signal_used() whether or not an
	 * interrupt is due, or -1: a polling guest that waits in the VMM (the
	 * micro guest's wait hypercall) sleeps on it. */
	int wake_fd;
	uint32_t gsi;
	uint64_t base;             /* window guest-physical address */

	uint32_t status;
	uint32_t device_features_sel, driver_features_sel;
	uint64_t driver_features;  /* as written, masked by offered */
	uint64_t acked_features;   /* fixed at FEATURES_OK */
	uint32_t queue_sel;
	uint32_t interrupt_status;
	uint32_t config_generation;
	bool activated;
	struct virtq vq[VMMIO_MAX_QUEUES];
};

/* Initialises a transport for `ops`/`dev` over guest memory `mem`. */
void vmmio_init(struct vmmio_dev *t, const struct virtio_dev_ops *ops,
		void *dev, const struct guest_mem *mem, uint64_t base,
		uint32_t gsi, int irq_fd);
/* Sets the wake eventfd (see wake_fd above); -1 by default. */
void vmmio_set_wake_fd(struct vmmio_dev *t, int wake_fd);
void vmmio_destroy(struct vmmio_dev *t);

/* The bus handler for the window (offset relative to the window base). */
int vmmio_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		 bool is_write);

/* Queue notification from an ioeventfd (or the QueueNotify register):
 * checks `q` against the device's queue count and that the device is live,
 * then calls ops->notify. */
void vmmio_notify(struct vmmio_dev *t, uint32_t q);

/* Device -> transport: used buffers were pushed on queue `q`; raises the
 * vring interrupt if the driver wants one. */
void vmmio_signal_used(struct vmmio_dev *t, unsigned q);

/* Device -> transport: the ring is broken or the driver misbehaved. Sets
 * DEVICE_NEEDS_RESET, raises a config interrupt and stops the device using
 * its queues until the driver resets it. */
void vmmio_set_needs_reset(struct vmmio_dev *t, const char *why);

/* True while the device is live (DRIVER_OK and not NEEDS_RESET). */
bool vmmio_is_live(const struct vmmio_dev *t);

/*
 * Persistence. vmmio_save() fills the transport part of *d (registers,
 * features, every queue); vmmio_restore() applies a saved one to a fresh
 * transport: acked features masked by the offered ones, every ready queue
 * of an activated device validated as virtq_activate() checks a new one,
 * then the device activated. 0 or -errno with a reason. Call with the
 * vCPUs stopped.
 */
struct snap_virtio_dev;
void vmmio_save(struct vmmio_dev *t, struct snap_virtio_dev *d);
int vmmio_restore(struct vmmio_dev *t, const struct snap_virtio_dev *d,
		  char *err, size_t errlen);

/* Returns the guest-visible virtio-mmio register offset of QueueNotify, for
 * wiring an ioeventfd. */
#define VMMIO_QUEUE_NOTIFY 0x50

#endif
