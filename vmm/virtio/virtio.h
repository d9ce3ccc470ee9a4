/*
 * virtio.h - the contract between the virtio-mmio transport and a device.
 *
 * The transport (mmio.c) owns the registers, feature negotiation, the status
 * state machine, the queues' programming and interrupt status. A device
 * (blk.c, vsock.c) owns its config space and what its queues carry. The
 * transport calls the device through struct virtio_dev_ops; the device calls
 * back through the vmmio_* functions of mmio.h.
 */
#ifndef EMBER_VIRTIO_H
#define EMBER_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_VSOCK 19

#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

struct vmmio_dev;

struct virtio_dev_ops {
	const char *name;
	uint32_t device_id;
	unsigned nr_queues;
	uint16_t queue_max;
	/* Feature bits the device offers (VIRTIO_F_VERSION_1 is added). */
	uint64_t features;
	/* Config space: reads beyond config_len return zeroes, writes there are
	 * ignored; the transport checks offset + len <= config_len first. */
	uint32_t config_len;
	void (*config_read)(void *dev, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(void *dev, uint32_t off, const uint8_t *data,
			     uint32_t len);
	/* DRIVER_OK was set: queues are validated. Returns 0 or a negative
	 * errno (the transport then sets DEVICE_NEEDS_RESET). */
	int (*activate)(void *dev, struct vmmio_dev *t);
	/* The driver notified queue `q` (already range-checked). May be called
	 * on a vCPU thread or the event thread (ioeventfd). */
	void (*notify)(void *dev, unsigned q);
	/* The driver reset the device: drop all queue and connection state. */
	void (*reset)(void *dev);
};

#endif
