/*
 * snapshot.c - capturing a paused VM into a snapshot directory and building
 * a VM from one (the format itself lives in snapshots/).
 *
 * Capture reads every piece of state KVM keeps (per vCPU and VM-wide) plus
 * Ember's device state, then writes DIR/state and the sparse DIR/memory.
 * Restore maps DIR/memory MAP_PRIVATE (copy-on-write: nothing is copied and
 * every clone shares the page cache), recreates the devices, and applies the
 * saved state in the order documented at restore_vcpu(). Everything read
 * back is validated twice: by the format reader, and again here as
 * untrusted guest state (queues through virtq_activate()).
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
		struct stat st;

		snprintf(d->u.blk.path, sizeof(d->u.blk.path), "%s", disk->path);
		d->u.blk.read_only = disk->read_only;
		d->u.blk.capacity = stat(disk->path, &st) == 0 ?
					    (uint64_t)st.st_size & ~511ULL : 0;
	} else {
		d->u.vsock.guest_cid = vm->cfg.vsock_cid ? vm->cfg.vsock_cid : 3;
		snprintf(d->u.vsock.uds_path, sizeof(d->u.vsock.uds_path), "%s",
			 vm->cfg.vsock_path);
	}
}

int vm_snapshot(struct ember_vm *vm, const char *dir, char *err,
		size_t errlen)
{
	struct snap_vm *s = calloc(1, sizeof(*s));
	int ret;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		ret = -errno;
		snprintf(err, errlen, "cannot create '%s': %s", dir, strerror(errno));
		goto out;
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

	ret = snap_write_memory(dir, vm->kvm.ram, vm->kvm.ram_size, err,
				errlen);
	if (!ret)
		ret = snap_write_state(dir, s, err, errlen);
out:
	free(s);
	return ret;
}

/*
 * Restore order, per vCPU (Firecracker's order, with KVM's reasons): CPUID
 * first (it decides which MSRs and XSAVE features exist); MP state; regs
 * and sregs (sregs sets EFER and the APIC base); XSAVE or FPU and XCRs;
 * debug registers; the LAPIC (after the APIC base MSR in sregs); MSRs (after
 * the LAPIC: the TSC-deadline MSR needs it); vCPU events last (pending
 * exceptions refer to the state above).
 */
static int restore_vcpu(struct ember_vm *vm, struct vcpu *v,
			const struct snap_vcpu *sv, char *err, size_t errlen)
{
	int fd = v->fd, ret;

	ret = cpu_setup_cpuid(fd, vm->kvm.supported_cpuid, vm->cpu_template,
			      v->id, vm->nr_vcpus);
	if (ret < 0) {
		snprintf(err, errlen, "vCPU %u: CPUID: %s", v->id, strerror(-ret));
		return ret;
	}
#define SET(req, ptr)                                                         \
	do {                                                                  \
		if (ioctl(fd, req, ptr) < 0) {                                \
			snprintf(err, errlen, "vCPU %u: %s: %s", v->id, #req, \
				 strerror(errno));                            \
			return -errno;                                        \
		}                                                             \
	} while (0)
	SET(KVM_SET_MP_STATE, &sv->mp_state);
	SET(KVM_SET_REGS, &sv->regs);
	SET(KVM_SET_SREGS, &sv->sregs);
	if (sv->has_xsave) {
		struct kvm_xsave xs;

		memset(&xs, 0, sizeof(xs));
		memcpy(xs.region, sv->xsave.region, sizeof(xs.region));
		SET(KVM_SET_XSAVE, &xs);
	} else {
		SET(KVM_SET_FPU, &sv->fpu);
	}
	if (sv->has_xcrs)
		SET(KVM_SET_XCRS, &sv->xcrs);
	SET(KVM_SET_DEBUGREGS, &sv->debugregs);
	if (sv->has_lapic && vm->irqchip)
		SET(KVM_SET_LAPIC, &sv->lapic);
	{
		size_t size = sizeof(struct kvm_msrs) +
			      sv->nr_msrs * sizeof(struct kvm_msr_entry);
		struct kvm_msrs *m = calloc(1, size);
		int n;

		if (!m)
			return -ENOMEM;
		m->nmsrs = sv->nr_msrs;
		memcpy(m->entries, sv->msrs, sv->nr_msrs * sizeof(sv->msrs[0]));
		n = ioctl(fd, KVM_SET_MSRS, m);
		free(m);
		if (n != (int)sv->nr_msrs) {
			snprintf(err, errlen, "vCPU %u: KVM_SET_MSRS set %d of %u "
				 "MSRs (MSR 0x%x refused)", v->id, n, sv->nr_msrs,
				 n >= 0 && (uint32_t)n < sv->nr_msrs ?
					 sv->msrs[n].index : 0);
			return -EINVAL;
		}
	}
	SET(KVM_SET_VCPU_EVENTS, &sv->events);
#undef SET
	return 0;
}

/* Devices come back with the queues the guest had programmed; each queue is
 * validated again as if the driver had just written it. */
static int restore_device(struct ember_vm *vm, unsigned i,
			  const struct snap_virtio_dev *d, char *err,
			  size_t errlen)
{
	struct vm_virtio *vd = &vm->virtio[i];
	struct vmmio_dev *t = &vd->transport;
	int ret;

	if (d->device_id != t->ops->device_id || d->nr_queues != t->ops->nr_queues) {
		snprintf(err, errlen, "device %u: kind or queue count differs", i);
		return -EINVAL;
	}
	pthread_mutex_lock(&t->lock);
	t->status = d->status;
	t->device_features_sel = d->device_features_sel;
	t->driver_features_sel = d->driver_features_sel;
	t->driver_features = d->driver_features & (t->ops->features |
						   (1ULL << VIRTIO_F_VERSION_1));
	t->acked_features = d->acked_features & (t->ops->features |
						 (1ULL << VIRTIO_F_VERSION_1));
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
		if (d->activated && vq->ready) {
			ret = virtq_activate(vq, &vm->kvm.mem, t->ops->queue_max);
			if (ret < 0) {
				pthread_mutex_unlock(&t->lock);
				snprintf(err, errlen, "device %u queue %u: saved "
					 "queue state is invalid", i, q);
				return -EINVAL;
			}
		}
		vq->last_avail = sq->last_avail;
		vq->used_idx = sq->used_idx;
		vq->signalled_used = sq->signalled_used;
		vq->signalled_valid = sq->signalled_valid;
	}
	pthread_mutex_unlock(&t->lock);
	if (d->activated) {
		ret = t->ops->activate(vd->dev, t);
		if (ret < 0) {
			snprintf(err, errlen, "device %u: cannot activate: %s", i,
				 strerror(-ret));
			return ret;
		}
		t->activated = true;
	}
	return 0;
}

static int restore_vm_state(struct ember_vm *vm, const struct snap_vm *s,
			    char *err, size_t errlen)
{
	int ret;

	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		ret = restore_vcpu(vm, &vm->vcpu[i], &s->vcpu[i], err, errlen);
		if (ret < 0)
			return ret;
	}
	if (vm->irqchip && s->has_irqchip) {
		for (unsigned c = 0; c < 3; c++)
			if (ioctl(vm->kvm.vm_fd, KVM_SET_IRQCHIP, &s->irqchip[c]) < 0) {
				snprintf(err, errlen, "KVM_SET_IRQCHIP: %s",
					 strerror(errno));
				return -errno;
			}
		if (s->has_pit && ioctl(vm->kvm.vm_fd, KVM_SET_PIT2, &s->pit) < 0) {
			snprintf(err, errlen, "KVM_SET_PIT2: %s", strerror(errno));
			return -errno;
		}
		if (s->has_clock) {
			struct kvm_clock_data c = { .clock = s->clock.clock };

			if (ioctl(vm->kvm.vm_fd, KVM_SET_CLOCK, &c) < 0) {
				snprintf(err, errlen, "KVM_SET_CLOCK: %s",
					 strerror(errno));
				return -errno;
			}
		}
	}
	if (s->has_serial) {
		vm->serial.ier = s->serial.ier;
		vm->serial.iir = s->serial.iir;
		vm->serial.fcr = s->serial.fcr;
		vm->serial.lcr = s->serial.lcr;
		vm->serial.mcr = s->serial.mcr;
		vm->serial.scr = s->serial.scr;
		vm->serial.dll = s->serial.dll;
		vm->serial.dlm = s->serial.dlm;
	}
	for (unsigned i = 0; i < s->nr_devices; i++) {
		ret = restore_device(vm, i, &s->dev[i], err, errlen);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The clone learns it is a clone: new generation, entropy and clock. */
static int refresh_identity(struct ember_vm *vm)
{
	struct ember_boot_info *bi;
	uint64_t seed[4];

	bi = mem_gpa_to_hva(&vm->kvm.mem, EMBER_BOOT_INFO_GPA, sizeof(*bi));
	if (!bi || bi->magic != EMBER_BOOT_INFO_MAGIC)
		return -EINVAL;
	/* Where exceptions are reflected to was taken from the ELF note at
	 * boot and kept here. Guest memory, so guest-controlled: it can only
	 * redirect the guest's own exceptions, never affect the host. */
	vm->exception_entry = bi->exception_entry;
	vm->reflect_exceptions = bi->exception_entry != 0;
	if (getrandom(seed, sizeof(seed), 0) != sizeof(seed))
		return -EIO;
	memcpy(bi->seed, seed, sizeof(seed));
	__atomic_store_n(&bi->generation, bi->generation + 1, __ATOMIC_RELEASE);
	return vm_sync_guest_clock(vm);
}

/* /proc/self/pagemap: one u64 per page (Documentation/admin-guide/mm/
 * pagemap.rst). Bit 63: present in our page tables, which for guest RAM
 * means the guest (through KVM) touched it since the mapping was made. Bit
 * 61: a file page; a page the guest wrote was copied on write and is then
 * anonymous, so "present and not file" means written. */
#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_FILE (1ULL << 61)
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

int vm_record_workingset(struct ember_vm *vm, char *err, size_t errlen)
{
	uint64_t npages = vm->kvm.ram_size / SNAP_PAGE_SIZE, n = 0, nw = 0;
	uint64_t *pages = NULL, *written = NULL, *entries = NULL;
	const uint64_t chunk = 4096;
	int fd, ret = 0;

	if (!vm->snapshot_dir || !vm->kvm.ram_is_file) {
		snprintf(err, errlen, "the VM was not restored from a snapshot");
		return -EINVAL;
	}
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	pages = malloc(npages * sizeof(*pages));
	written = malloc(npages * sizeof(*written));
	entries = malloc(chunk * sizeof(*entries));
	if (fd < 0 || !pages || !written || !entries) {
		ret = fd < 0 ? -errno : -ENOMEM;
		snprintf(err, errlen, "cannot read pagemap: %s", strerror(-ret));
		goto out;
	}
	for (uint64_t first = 0; first < npages; first += chunk) {
		uint64_t cnt = npages - first < chunk ? npages - first : chunk;
		off_t off = (off_t)(((uintptr_t)vm->kvm.ram / SNAP_PAGE_SIZE +
				     first) * sizeof(uint64_t));
		ssize_t got = pread(fd, entries, cnt * sizeof(uint64_t), off);

		if (got != (ssize_t)(cnt * sizeof(uint64_t))) {
			ret = -EIO;
			snprintf(err, errlen, "short pagemap read");
			goto out;
		}
		for (uint64_t i = 0; i < cnt; i++) {
			if (!(entries[i] & PAGEMAP_PRESENT))
				continue;
			pages[n++] = first + i;
			if (!(entries[i] & PAGEMAP_FILE))
				written[nw++] = first + i;
		}
	}
	ret = snap_write_workingset(vm->snapshot_dir, pages, n,
				    vm->kvm.ram_size, err, errlen);
	if (!ret)
		ret = snap_write_pagelist(vm->snapshot_dir,
					  SNAP_WORKINGSET_DIRTY_FILE, written,
					  nw, vm->kvm.ram_size, err, errlen);
	if (!ret)
		log_info("working set: %llu pages, %llu of them written",
			 (unsigned long long)n, (unsigned long long)nw);
out:
	if (fd >= 0)
		close(fd);
	free(pages);
	free(written);
	free(entries);
	return ret;
}

/* One madvise per run of consecutive pages of a list; false on failure. */
static bool populate(struct ember_vm *vm, const uint64_t *pages, size_t n,
		     int advice)
{
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;

		while (j < n && pages[j] == pages[j - 1] + 1)
			j++;
		if (madvise(vm->kvm.ram + pages[i] * SNAP_PAGE_SIZE,
			    (j - i) * SNAP_PAGE_SIZE, advice) < 0) {
			log_warn_errno("working-set prefetch");
			return false;
		}
		i = j;
	}
	return true;
}

/*
 * Brings the recorded working set into our page tables before the vCPU
 * runs, so that the guest's first touches do not each take a host page
 * fault: pages the recording run only read are mapped from the page cache
 * (MADV_POPULATE_READ); pages it wrote get their private copy now
 * (MADV_POPULATE_WRITE) instead of a copy-on-write fault each. Best effort:
 * without a working set, or on a kernel without these advices, restore
 * just goes on lazily.
 */
void vm_prefetch_workingset(struct ember_vm *vm, const char *dir)
{
	uint64_t *pages, *written = NULL;
	size_t n, nw = 0;
	char err[256];

	if (snap_read_workingset(dir, vm->kvm.ram_size, &pages, &n, err,
				 sizeof(err)) < 0)
		return;
	if (snap_read_pagelist(dir, SNAP_WORKINGSET_DIRTY_FILE,
			       vm->kvm.ram_size, &written, &nw, err,
			       sizeof(err)) < 0)
		nw = 0;
	/* Written pages first: the read pass then skips them (present). */
	if (!nw || populate(vm, written, nw, MADV_POPULATE_WRITE))
		populate(vm, pages, n, MADV_POPULATE_READ);
	free(pages);
	free(written);
}

void ember_restore_init(struct ember_restore *r)
{
	memset(r, 0, sizeof(*r));
	r->state_fd = r->memory_fd = -1;
	r->workingset_fd = r->workingset_dirty_fd = -1;
	r->vsock_listen_fd = r->vsock_conn_fd = -1;
	for (unsigned i = 0; i < EMBER_MAX_DISKS; i++)
		r->disk_fds[i] = -1;
	r->serial_fd = -1;
}

struct ember_shell {
	struct ember_vm *vm;
	unsigned nr_vcpus;
	bool irqchip;
};

struct ember_shell *ember_shell_create(unsigned nr_vcpus, bool irqchip,
				       int *retp, char *err, size_t errlen)
{
	struct ember_config cfg;
	struct ember_shell *sh = calloc(1, sizeof(*sh));
	int ret;

	vcpu_install_kick_handler();
	ember_config_init(&cfg);
	cfg.kernel = "(shell)";
	cfg.nr_cpus = nr_vcpus;
	if (!sh || nr_vcpus < 1 || nr_vcpus > EMBER_MAX_VCPUS) {
		ret = sh ? -EINVAL : -ENOMEM;
		snprintf(err, errlen, sh ? "vCPU count out of range" :
					   "out of memory");
		goto err;
	}
	sh->nr_vcpus = nr_vcpus;
	sh->irqchip = irqchip;
	sh->vm = vm_alloc(&cfg);
	if (!sh->vm) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto err;
	}
	sh->vm->nr_vcpus = nr_vcpus;
	ret = kvm_open(&sh->vm->kvm, err, errlen);
	if (!ret && irqchip)
		ret = vm_setup_irqchip(sh->vm, err, errlen);
	if (!ret)
		ret = vm_create_core(sh->vm, err, errlen);
	if (ret < 0)
		goto err;
	*retp = 0;
	return sh;
err:
	ember_shell_destroy(sh);
	*retp = ret;
	return NULL;
}

void ember_shell_destroy(struct ember_shell *sh)
{
	if (!sh)
		return;
	ember_vm_destroy(sh->vm);
	free(sh);
}

/* Fills the configuration of a restored VM from the snapshot and the
 * overrides. */
static int restore_config(const struct snap_vm *s, const struct ember_restore *r,
			  struct ember_config *cfg, char *err, size_t errlen)
{
	ember_config_init(cfg);
	cfg->kernel = "(snapshot)";
	cfg->mem_mib = s->machine.mem_size >> 20;
	cfg->nr_cpus = s->machine.nr_vcpus;
	cfg->serial_fd = r->serial_fd;
	cfg->timeout_ms = r->timeout_ms;
	cfg->cpu_template = r->cpu_template;
	for (unsigned i = 0; i < s->nr_devices; i++) {
		const struct snap_virtio_dev *d = &s->dev[i];

		if (d->device_id == VIRTIO_ID_BLOCK) {
			unsigned k = cfg->nr_disks;

			/* Disks come first, in --disk order (vm.c). */
			if (k >= EMBER_MAX_DISKS || i != k) {
				snprintf(err, errlen, "device %u: unexpected "
					 "device order", i);
				return -EINVAL;
			}
			cfg->disks[k].path = k < r->nr_disks && r->disks[k] ?
						     r->disks[k] : d->u.blk.path;
			cfg->disks[k].read_only = d->u.blk.read_only;
			cfg->nr_disks++;
		} else if (!cfg->vsock_path) {
			cfg->vsock_path = r->vsock_path ? r->vsock_path :
							  d->u.vsock.uds_path;
			cfg->vsock_cid = d->u.vsock.guest_cid;
		} else {
			snprintf(err, errlen, "more than one vsock device");
			return -EINVAL;
		}
	}
	return 0;
}

/* Restores parsed state `s` into shell `sh`; consumes the shell. */
static struct ember_vm *shell_restore_state(struct ember_shell *sh,
					    const struct ember_restore *r,
					    const struct snap_vm *s, int *retp,
					    char *err, size_t errlen)
{
	struct ember_vm *vm = sh->vm;
	struct ember_config cfg;
	int ret, mem_fd = -1;

	if (s->machine.nr_vcpus != sh->nr_vcpus ||
	    s->has_irqchip != sh->irqchip) {
		ret = -EINVAL;
		snprintf(err, errlen, "snapshot needs %u vCPUs%s; the shell has "
			 "%u%s", s->machine.nr_vcpus,
			 s->has_irqchip ? " and an irqchip" : "", sh->nr_vcpus,
			 sh->irqchip ? " and an irqchip" : "");
		goto out;
	}
	ret = restore_config(s, r, &cfg, err, errlen);
	if (ret < 0)
		goto out;
	/* Paths may point into `s`, which the caller frees: the VM keeps
	 * its own copies (a later snapshot of this VM records them). */
	for (unsigned i = 0; i < cfg.nr_disks; i++)
		if (!(cfg.disks[i].path = vm_own_string(vm, cfg.disks[i].path)))
			ret = -ENOMEM;
	if (cfg.vsock_path &&
	    !(cfg.vsock_path = vm_own_string(vm, cfg.vsock_path)))
		ret = -ENOMEM;
	vm->snapshot_dir = strdup(r->dir);
	if (ret < 0 || !vm->snapshot_dir) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	vm->cfg = cfg;
	vm->boot = s->machine.kind == SNAP_GUEST_LINUX ? BOOT_LINUX : BOOT_PLAIN;
	vm->cpu_template = vm_pick_template(cfg.cpu_template);
	ret = snap_open_memory(r->dir, s->machine.mem_size, &mem_fd, err, errlen);
	if (ret < 0)
		goto out;
	ret = kvm_map_ram(&vm->kvm, s->machine.mem_size, mem_fd, err, errlen);
	close(mem_fd);
	if (ret < 0)
		goto out;
	if (r->prefetch)
		vm_prefetch_workingset(vm, r->dir);
	ret = vm_create_devices(vm, err, errlen);
	if (!ret)
		ret = restore_vm_state(vm, s, err, errlen);
	if (ret < 0)
		goto out;
	if (vm->boot == BOOT_PLAIN) {
		ret = refresh_identity(vm);
		if (ret < 0) {
			snprintf(err, errlen, "snapshot has no Ember boot info");
			goto out;
		}
	}
	for (unsigned i = 0; i < vm->nr_virtio; i++)
		if (vm->virtio[i].kind == VM_VIRTIO_VSOCK &&
		    vm->virtio[i].transport.activated)
			vsock_transport_reset(vm->virtio[i].dev);
	sh->vm = NULL;
	ember_shell_destroy(sh);
	*retp = 0;
	return vm;
out:
	ember_shell_destroy(sh); /* the half-restored VM goes with it */
	*retp = ret;
	return NULL;
}

struct ember_vm *ember_shell_restore(struct ember_shell *sh,
				     const struct ember_restore *r, int *retp,
				     char *err, size_t errlen)
{
	struct snap_vm *s = calloc(1, sizeof(*s));
	struct ember_vm *vm = NULL;

	*retp = s ? snap_read_state(r->dir, s, err, errlen) : -ENOMEM;
	if (*retp == 0)
		vm = shell_restore_state(sh, r, s, retp, err, errlen);
	else
		ember_shell_destroy(sh);
	free(s);
	return vm;
}

struct ember_vm *ember_vm_restore(const struct ember_restore *r, int *retp,
				  char *err, size_t errlen)
{
	struct snap_vm *s = calloc(1, sizeof(*s));
	struct ember_vm *vm = NULL;
	struct ember_shell *sh;
	int ret;

	/* The shell's shape (vCPUs, irqchip) comes from the snapshot. */
	if (!s) {
		*retp = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ret = snap_read_state(r->dir, s, err, errlen);
	if (ret < 0) {
		free(s);
		*retp = ret;
		return NULL;
	}
	sh = ember_shell_create(s->machine.nr_vcpus, s->has_irqchip, retp, err,
				errlen);
	if (sh)
		vm = shell_restore_state(sh, r, s, retp, err, errlen);
	free(s);
	return vm;
}

int ember_vm_record_workingset(struct ember_vm *vm, char *err, size_t errlen)
{
	return vm_record_workingset(vm, err, errlen);
}
