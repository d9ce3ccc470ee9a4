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
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "snapshots/snap.h"

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

	ret = kvm_ioctl_raw(vm->kvm.kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe);
	if (ret < 0 && ret != -E2BIG)
		return ret;
	ret = 0;
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
	if (!list)
		return -ENOMEM;
	list->nmsrs = probe.nmsrs;
	ret = kvm_ioctl_raw(vm->kvm.kvm_fd, KVM_GET_MSR_INDEX_LIST, list);
	if (ret < 0)
		goto out;
	sv->nr_msrs = 0;
	for (uint32_t i = 0; i < list->nmsrs && sv->nr_msrs < SNAP_MAX_MSRS; i++) {
		struct {
			struct kvm_msrs hdr;
			struct kvm_msr_entry e;
		} m = { .hdr.nmsrs = 1, .e.index = list->indices[i] };

		if (kvm_ioctl_raw(vcpu_fd, KVM_GET_MSRS, &m) == 1 &&
		    kvm_ioctl_raw(vcpu_fd, KVM_SET_MSRS, &m) == 1)
			sv->msrs[sv->nr_msrs++] = m.e;
	}
out:
	free(list);
	return ret;
}

static int capture_vcpu(struct ember_vm *vm, struct vcpu *v,
			struct snap_vcpu *sv, char *err, size_t errlen)
{
	char why[128];
	int fd = v->fd, ret;

	memset(sv, 0, sizeof(*sv));
#define GET(req, ptr)                                                         \
	do {                                                                  \
		ret = kvm_ioctl_named(fd, req, #req, (unsigned long)(ptr),    \
				      why, sizeof(why));                      \
		if (ret < 0)                                                  \
			return errbuf_fail(err, errlen, ret, "vCPU %u: %s",   \
					   v->id, why);                       \
	} while (0)
	GET(KVM_GET_REGS, &sv->regs);
	GET(KVM_GET_SREGS, &sv->sregs);
	GET(KVM_GET_VCPU_EVENTS, &sv->events);
	GET(KVM_GET_MP_STATE, &sv->mp_state);
	GET(KVM_GET_DEBUGREGS, &sv->debugregs);
	{
		struct kvm_xsave xs;

		if (kvm_ioctl_raw(fd, KVM_GET_XSAVE, &xs) == 0) {
			memcpy(sv->xsave.region, xs.region, sizeof(xs.region));
			sv->has_xsave = true;
		}
	}
	if (kvm_ioctl_raw(fd, KVM_GET_FPU, &sv->fpu) == 0)
		sv->has_fpu = true;
	if (!sv->has_xsave && !sv->has_fpu) {
		snprintf(err, errlen, "vCPU %u: neither XSAVE nor FPU state", v->id);
		return -EIO;
	}
	if (kvm_ioctl_raw(fd, KVM_GET_XCRS, &sv->xcrs) == 0 &&
	    sv->xcrs.nr_xcrs <= KVM_MAX_XCRS)
		sv->has_xcrs = true;
	if (vm->irqchip) {
		GET(KVM_GET_LAPIC, &sv->lapic);
		sv->has_lapic = true;
	}
#undef GET
	ret = collect_msrs(vm, fd, sv);
	if (ret < 0)
		return errbuf_fail(err, errlen, ret, "vCPU %u: cannot list MSRs: "
				   "%s", v->id, strerror(-ret));
	for (uint32_t i = 0; i < sv->nr_msrs; i++)
		if (sv->msrs[i].index == MSR_IA32_TSC)
			sv->tsc = sv->msrs[i].data;
	sv->tsc_khz = (uint32_t)kvm_tsc_khz(fd);
	return 0;
}

/* Device i: the transport saves its part, the device its own, under the
 * kind its type is known by. */
static int capture_device(struct ember_vm *vm, unsigned i,
			  struct snap_virtio_dev *d, char *err, size_t errlen)
{
	struct vm_virtio *vd = &vm->virtio[i];

	memset(d, 0, sizeof(*d));
	vmmio_save(&vd->transport, d);
	snprintf(d->kind, sizeof(d->kind), "%s", vd->type->name);
	return vd->type->save(vd->dev, d, err, errlen);
}

/*
 * Nothing may change the VM while it is captured: the vCPUs are paused (the
 * caller's job), the event thread is parked (a host connecting now waits
 * in the listen queue instead of making the vsock device pop an rx buffer
 * and write guest memory under us), and every device quiesces through its
 * type (devtable.h): disks complete what the guest queued and what is in
 * flight (a request taken from the ring and not answered would be lost),
 * vsock gives back the rx chain it holds. So every queue's last_avail
 * equals its used_idx.
 */
static int quiesce_devices(struct ember_vm *vm, char *err, size_t errlen)
{
	int ret;

	evloop_pause(vm->loop);
	for (unsigned i = 0; i < vm->nr_virtio; i++) {
		const struct vm_device_type *type = vm->virtio[i].type;

		ret = type->quiesce ? type->quiesce(vm->virtio[i].dev) : 0;
		if (ret < 0)
			return errbuf_fail(err, errlen, ret, "device %u (%s): "
					   "cannot quiesce: %s", i, type->name,
					   strerror(-ret));
	}
	return 0;
}

static void resume_devices(struct ember_vm *vm)
{
	for (unsigned i = 0; i < vm->nr_virtio; i++)
		if (vm->virtio[i].type->resume)
			vm->virtio[i].type->resume(vm->virtio[i].dev);
	evloop_resume(vm->loop);
}

int vm_snapshot_at(struct ember_vm *vm, int dirfd, char *err, size_t errlen)
{
	struct snap_vm *s = calloc(1, sizeof(*s));
	int ret;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = quiesce_devices(vm, err, errlen);
	if (ret < 0)
		goto out;
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
			ret = kvm_ioctl(vm->kvm.vm_fd, KVM_GET_IRQCHIP,
					&s->irqchip[c], err, errlen);
			if (ret < 0)
				goto out;
		}
		s->has_irqchip = true;
		if (kvm_ioctl_raw(vm->kvm.vm_fd, KVM_GET_PIT2, &s->pit) == 0)
			s->has_pit = true;
		if (kvm_ioctl_raw(vm->kvm.vm_fd, KVM_GET_CLOCK, &s->clock) == 0)
			s->has_clock = true;
	}
	s->has_serial = true;
	serial_save(&vm->serial, &s->serial);
	s->nr_devices = vm->nr_virtio;
	for (unsigned i = 0; i < vm->nr_virtio; i++) {
		ret = capture_device(vm, i, &s->dev[i], err, errlen);
		if (ret < 0)
			goto out;
	}

	ret = snap_write_memory_count_at(dirfd, vm->kvm.ram, vm->kvm.ram_size,
					 NULL, err,
				errlen);
	if (!ret)
		ret = snap_write_state_at(dirfd, s, err, errlen);
out:
	resume_devices(vm);
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
