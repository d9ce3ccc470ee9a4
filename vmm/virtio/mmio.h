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

struct vmmio_dev {
	const struct virtio_dev_ops *ops;
	void *dev;                 /* the device, passed to ops */
	const struct guest_mem *mem;
	pthread_mutex_t lock;
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

/* Returns the guest-visible virtio-mmio register offset of QueueNotify, for
 * wiring an ioeventfd. */
#define VMMIO_QUEUE_NOTIFY 0x50

#endif
