/*
 * devtable.h - the virtio devices a VM can have, as one table of types.
 *
 * Owns: the contract between the VM (vm.c, snapshot.c, restore.c) and each
 * kind of virtio device: how many instances a configuration asks for, how
 * an instance is created from the configuration or from its saved state,
 * how it quiesces for a snapshot and saves its own state, and how it goes.
 * The VM walks vm_device_types[] (devtable.c) for all of it, so a new
 * device is its own file plus one line there. The transport (mmio.c) and
 * the queues are the VM's: a type only sees its device.
 *
 * Persistence: an instance's state is the `props` of its snapshot node
 * (struct snap_virtio_dev, snapshots/snap.h), named and encoded by the
 * device itself (snap_prop_* helpers), under the node's `kind` = the type's
 * name. On restore the props are hostile input: the type checks every one
 * it reads, and refuses a node it cannot make sense of (-EINVAL).
 *
 * Threads: every op runs on the thread building, snapshotting or
 * destroying the VM, with the vCPUs stopped (restore, destroy) or paused
 * and the event loop parked (quiesce, save, resume).
 */
#ifndef EMBER_DEVTABLE_H
#define EMBER_DEVTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ember.h"

struct evloop;
struct guest_mem;
struct snap_virtio_dev;
struct virtio_dev_ops;

/* What a type gets to build an instance. */
struct vm_dev_ctx {
	struct evloop *loop;                 /* the VM's event loop */
	const struct guest_mem *mem;
	const struct ember_config *cfg;      /* the VM's configuration */
	const struct ember_restore *restore; /* restoring: the overrides */
	unsigned index;                      /* instance of this type, 0.. */
};

struct vm_device_type {
	const char *name;     /* the snapshot node's `kind`: "blk", "vsock" */
	uint32_t virtio_id;
	/* Booting: how many instances the configuration asks for. */
	unsigned (*count)(const struct ember_config *cfg);
	/* Booting: instance ctx->index. Sets *ops (the table its transport
	 * serves). NULL and *ret = -errno with a reason on failure. */
	void *(*create)(const struct vm_dev_ctx *ctx,
			const struct virtio_dev_ops **ops, int *ret, char *err,
			size_t errlen);
	/* Restoring: an instance from its saved node (props checked here)
	 * and the caller's overrides. As create(); -EINVAL for a node that
	 * makes no sense, -EDESTADDRREQ when restoring from fds (restore->dir
	 * NULL: no saved path may be used) and a host resource the device
	 * needs was not given. */
	void *(*restore)(const struct vm_dev_ctx *ctx,
			 const struct snap_virtio_dev *saved,
			 const struct virtio_dev_ops **ops, int *ret, char *err,
			 size_t errlen);
	/* Restoring, before any instance: the overrides that concern this
	 * type against the number of saved instances (an override nothing
	 * would use is an error). NULL: nothing to check. */
	int (*check_restore)(const struct ember_restore *r, unsigned instances,
			     char *err, size_t errlen);
	/* Restoring, after the VM state is applied (vsock: the transport
	 * reset, the caller's connected socket). NULL: nothing. */
	int (*restored)(void *dev, const struct vm_dev_ctx *ctx, char *err,
			size_t errlen);
	/* Snapshot: finish or give back whatever the device holds of the
	 * queues (nothing taken from a ring may stay unanswered); after the
	 * capture, resume() serves on. NULL: nothing held. */
	int (*quiesce)(void *dev);
	void (*resume)(void *dev);
	/* Snapshot: the device's own state into saved->props. */
	int (*save)(void *dev, struct snap_virtio_dev *saved, char *err,
		    size_t errlen);
	/* After the transport stopped calling it and the event loop is
	 * gone. */
	void (*destroy)(void *dev);
};

/* Every type, in the order instances take their MMIO windows when booting
 * (a snapshot keeps its own order); NULL-terminated. */
extern const struct vm_device_type *const vm_device_types[];

/* The type named `kind`, or NULL. */
const struct vm_device_type *vm_device_type_find(const char *kind);

#endif
