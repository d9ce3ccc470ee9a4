/*
 * snapshot.c - capturing a paused VM into a snapshot directory (the format
 * itself lives in snapshots/; restoring is restore.c, the working set
 * workingset.c).
 *
 * Capture reads every piece of state KVM keeps (per vCPU and VM-wide) plus
 * Ember's device state, then writes DIR/memory (sparse) and DIR/state,
 * state last: a directory with a state file is complete.
 */
#define LOG_MOD "snapshot"
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "snapshots/snap.h"
#include "virtio/blk.h"
#include "virtio/vsock.h"

#define MSR_IA32_TSC 0x10

/* MSRs to save: KVM's index list, minus those this vCPU refuses to read or
 * to have written back (KVM lists paravirtual MSRs whose host writes it
 * then rejects for a guest without the matching CPUID feature; writing the
 * value just read to a paused vCPU changes nothing). */
static int collect_msrs(struct ember_vm *vm, int vcpu_fd,
			struct snap_vcpu *sv)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *list;
	int ret = 0;

	if (ioctl(vm->kvm.kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 &&
	    errno != E2BIG)
		return -errno;
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
	if (!list)
		return -ENOMEM;
	list->nmsrs = probe.nmsrs;
	if (ioctl(vm->kvm.kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		ret = -errno;
		goto out;
	}
	sv->nr_msrs = 0;
	for (uint32_t i = 0; i < list->nmsrs && sv->nr_msrs < SNAP_MAX_MSRS; i++) {
		struct {
			struct kvm_msrs hdr;
			struct kvm_msr_entry e;
		} m = { .hdr.nmsrs = 1, .e.index = list->indices[i] };

		if (ioctl(vcpu_fd, KVM_GET_MSRS, &m) == 1 &&
		    ioctl(vcpu_fd, KVM_SET_MSRS, &m) == 1)
			sv->msrs[sv->nr_msrs++] = m.e;
	}
out:
	free(list);
	return ret;
}

static int capture_vcpu(struct ember_vm *vm, struct vcpu *v,
			struct snap_vcpu *sv, char *err, size_t errlen)
{
	int fd = v->fd;

	memset(sv, 0, sizeof(*sv));
#define GET(req, ptr)                                                         \
	do {                                                                  \
		if (ioctl(fd, req, ptr) < 0) {                                \
			snprintf(err, errlen, "vCPU %u: %s: %s", v->id, #req, \
				 strerror(errno));                            \
			return -errno;                                        \
		}                                                             \
	} while (0)
	GET(KVM_GET_REGS, &sv->regs);
	GET(KVM_GET_SREGS, &sv->sregs);
	GET(KVM_GET_VCPU_EVENTS, &sv->events);
	GET(KVM_GET_MP_STATE, &sv->mp_state);
	GET(KVM_GET_DEBUGREGS, &sv->debugregs);
#undef GET
	{
		struct kvm_xsave xs;

		if (ioctl(fd, KVM_GET_XSAVE, &xs) == 0) {
			memcpy(sv->xsave.region, xs.region, sizeof(xs.region));
			sv->has_xsave = true;
		}
	}
	if (ioctl(fd, KVM_GET_FPU, &sv->fpu) == 0)
		sv->has_fpu = true;
	if (!sv->has_xsave && !sv->has_fpu) {
		snprintf(err, errlen, "vCPU %u: neither XSAVE nor FPU state", v->id);
		return -EIO;
	}
	if (ioctl(fd, KVM_GET_XCRS, &sv->xcrs) == 0 &&
	    sv->xcrs.nr_xcrs <= KVM_MAX_XCRS)
		sv->has_xcrs = true;
	if (vm->irqchip) {
		if (ioctl(fd, KVM_GET_LAPIC, &sv->lapic) < 0) {
			snprintf(err, errlen, "vCPU %u: KVM_GET_LAPIC: %s", v->id,
				 strerror(errno));
			return -errno;
		}
		sv->has_lapic = true;
	}
	if (collect_msrs(vm, fd, sv) < 0) {
		snprintf(err, errlen, "vCPU %u: cannot list MSRs", v->id);
		return -EIO;
	}
	for (uint32_t i = 0; i < sv->nr_msrs; i++)
		if (sv->msrs[i].index == MSR_IA32_TSC)
			sv->tsc = sv->msrs[i].data;
	sv->tsc_khz = (uint32_t)kvm_tsc_khz(fd);
	return 0;
}

static void capture_device(const struct ember_vm *vm, unsigned i,
			   struct snap_virtio_dev *d)
{
	const struct vm_virtio *vd = &vm->virtio[i];
	const struct vmmio_dev *t = &vd->transport;

	memset(d, 0, sizeof(*d));
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
	d->nr_queues = t->ops->nr_queues;
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
	if (vd->kind == VM_VIRTIO_BLK) {
		const struct ember_disk *disk = &vm->cfg.disks[i];

		snprintf(d->u.blk.path, sizeof(d->u.blk.path), "%s", disk->path);
		d->u.blk.read_only = disk->read_only;
		/* What the guest saw, however the image was opened. */
		d->u.blk.capacity = vblk_capacity(vd->dev) * VBLK_SECTOR_SIZE;
	} else {
		d->u.vsock.guest_cid = vm->cfg.vsock_cid ? vm->cfg.vsock_cid : 3;
		snprintf(d->u.vsock.uds_path, sizeof(d->u.vsock.uds_path), "%s",
			 vm->cfg.vsock_path);
	}
}

int vm_snapshot_at(struct ember_vm *vm, int dirfd, char *err, size_t errlen)
{
	struct snap_vm *s = calloc(1, sizeof(*s));
	int ret;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* Device I/O drained first: a request in flight would be lost (its
	 * chain taken from the avail ring, its used entry never written). */
	for (unsigned i = 0; i < vm->nr_virtio; i++) {
		if (vm->virtio[i].kind != VM_VIRTIO_BLK)
			continue;
		ret = vblk_quiesce(vm->virtio[i].dev);
		if (ret < 0) {
			snprintf(err, errlen, "disk %u: cannot drain its I/O: %s",
				 i, strerror(-ret));
			goto out;
		}
	}
	snap_cpu_fingerprint(&s->cpu);
	s->machine.mem_size = vm->kvm.ram_size;
	s->machine.nr_vcpus = vm->nr_vcpus;
	s->machine.kind = vm->boot == BOOT_LINUX ? SNAP_GUEST_LINUX :
			  vm->exception_entry ? SNAP_GUEST_MICRO :
						 SNAP_GUEST_PLAIN;
	snprintf(s->machine.cmdline, sizeof(s->machine.cmdline), "%s",
		 vm->cmdline ? vm->cmdline : vm->cfg.cmdline ? vm->cfg.cmdline : "");
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		ret = capture_vcpu(vm, &vm->vcpu[i], &s->vcpu[i], err, errlen);
		if (ret < 0)
			goto out;
	}
	if (vm->irqchip) {
		for (unsigned c = 0; c < 3; c++) {
			s->irqchip[c].chip_id = c;
			if (ioctl(vm->kvm.vm_fd, KVM_GET_IRQCHIP, &s->irqchip[c]) < 0) {
				ret = -errno;
				snprintf(err, errlen, "KVM_GET_IRQCHIP: %s",
					 strerror(errno));
				goto out;
			}
		}
		s->has_irqchip = true;
		if (ioctl(vm->kvm.vm_fd, KVM_GET_PIT2, &s->pit) == 0)
			s->has_pit = true;
		if (ioctl(vm->kvm.vm_fd, KVM_GET_CLOCK, &s->clock) == 0)
			s->has_clock = true;
	}
	s->has_serial = true;
	pthread_mutex_lock(&vm->serial.lock);
	s->serial = (struct snap_serial){
		.ier = vm->serial.ier, .iir = vm->serial.iir,
		.fcr = vm->serial.fcr, .lcr = vm->serial.lcr,
		.mcr = vm->serial.mcr, .lsr = vm->serial.lsr,
		.msr = vm->serial.msr, .scr = vm->serial.scr,
		.dll = vm->serial.dll, .dlm = vm->serial.dlm,
	};
	pthread_mutex_unlock(&vm->serial.lock);
	s->nr_devices = vm->nr_virtio;
	for (unsigned i = 0; i < vm->nr_virtio; i++)
		capture_device(vm, i, &s->dev[i]);

	ret = snap_write_memory_count_at(dirfd, vm->kvm.ram, vm->kvm.ram_size,
					 NULL, err,
				errlen);
	if (!ret)
		ret = snap_write_state_at(dirfd, s, err, errlen);
out:
	free(s);
	return ret;
}

int vm_snapshot(struct ember_vm *vm, const char *dir, char *err,
		size_t errlen)
{
	int dfd, ret;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		ret = -errno;
		snprintf(err, errlen, "cannot create '%s': %s", dir,
			 strerror(-ret));
		return ret;
	}
	dfd = snap_open_dir(dir, err, errlen);
	if (dfd < 0)
		return dfd;
	ret = vm_snapshot_at(vm, dfd, err, errlen);
	close(dfd);
	return ret;
}
