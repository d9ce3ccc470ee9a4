/*
 * restore.c - building a VM from a snapshot, into a VM shell created ahead
 * of time (shell.c) or a fresh one.
 *
 * Restore maps the memory file MAP_PRIVATE (copy-on-write: nothing is
 * copied and every clone shares the page cache), recreates the devices,
 * and applies the saved state in the order documented at restore_vcpu().
 * Everything read back is validated twice: by the format reader, and again
 * here as untrusted guest state (queues through virtq_activate()).
 */
#define LOG_MOD "restore"
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
#include "virtio/virtio.h"
#include "virtio/vsock.h"

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
	char why[128];
	int fd = v->fd, ret = 0;

	if (!vm->cpuid_preset || vm->cpuid_preset_template != vm->cpu_template)
		ret = cpu_setup_cpuid(fd, vm->kvm.supported_cpuid,
				      vm->cpu_template, v->id, vm->nr_vcpus);
	if (ret < 0) {
		snprintf(err, errlen, "vCPU %u: CPUID: %s", v->id, strerror(-ret));
		return ret;
	}
#define SET(req, ptr)                                                         \
	do {                                                                  \
		ret = kvm_ioctl_named(fd, req, #req, (unsigned long)(ptr),    \
				      why, sizeof(why));                      \
		if (ret < 0)                                                  \
			return errbuf_fail(err, errlen, ret, "vCPU %u: %s",   \
					   v->id, why);                       \
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
		n = kvm_ioctl_raw(fd, KVM_SET_MSRS, m);
		free(m);
		if (n < 0)
			return errbuf_fail(err, errlen, n, "vCPU %u: KVM_SET_MSRS: "
					   "%s", v->id, strerror(-n));
		if (n != (int)sv->nr_msrs) {
			snprintf(err, errlen, "vCPU %u: KVM_SET_MSRS set %d of %u "
				 "MSRs (MSR 0x%x refused)", v->id, n, sv->nr_msrs,
				 (uint32_t)n < sv->nr_msrs ?
					 sv->msrs[n].index : 0);
			return -EINVAL;
		}
	}
	SET(KVM_SET_VCPU_EVENTS, &sv->events);
#undef SET
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
		for (unsigned c = 0; c < 3; c++) {
			ret = kvm_ioctl(vm->kvm.vm_fd, KVM_SET_IRQCHIP,
					&s->irqchip[c], err, errlen);
			if (ret < 0)
				return ret;
		}
		if (s->has_pit) {
			ret = kvm_ioctl(vm->kvm.vm_fd, KVM_SET_PIT2, &s->pit, err,
					errlen);
			if (ret < 0)
				return ret;
		}
		if (s->has_clock) {
			struct kvm_clock_data c = { .clock = s->clock.clock };

			ret = kvm_ioctl(vm->kvm.vm_fd, KVM_SET_CLOCK, &c, err,
					errlen);
			if (ret < 0)
				return ret;
		}
	}
	if (s->has_serial)
		serial_restore(&vm->serial, &s->serial);
	/* Devices come back with the queues the guest had programmed, each
	 * validated again as if the driver had just written it. */
	for (unsigned i = 0; i < s->nr_devices; i++) {
		ret = vmmio_restore(&vm->virtio[i].transport, &s->dev[i], err,
				    errlen);
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

void ember_restore_init(struct ember_restore *r)
{
	memset(r, 0, sizeof(*r));
	r->state_fd = r->memory_fd = -1;
	r->workingset_fd = r->workingset_dirty_fd = -1;
	r->vsock_listen_fd = r->vsock_conn_fd = r->vsock_carry_fd = -1;
	for (unsigned i = 0; i < EMBER_MAX_DISKS; i++)
		r->disk_fds[i] = -1;
	r->serial_fd = -1;
}

/* The configuration of a restored VM: what the snapshot and the caller
 * say about the machine (its devices restore themselves from their saved
 * state, vm_restore_devices). */
static void restore_config(const struct snap_vm *s,
			   const struct ember_restore *r,
			   struct ember_config *cfg)
{
	ember_config_init(cfg);
	cfg->kernel = "(snapshot)";
	cfg->mem_mib = s->machine.mem_size >> 20;
	cfg->nr_cpus = s->machine.nr_vcpus;
	cfg->serial_fd = r->serial_fd;
	cfg->timeout_ms = r->timeout_ms;
	cfg->cpu_template = r->cpu_template;
}

/* Maps the snapshot's memory file as guest RAM (MAP_PRIVATE). */
static int map_memory(struct ember_vm *vm, const struct ember_restore *r,
		      uint64_t size, char *err, size_t errlen)
{
	int ret, fd = -1;

	if (!r->dir) {
		ret = snap_check_memory_fd(r->memory_fd, "memory file", size,
					   err, errlen);
		/* The mapping keeps the file; the fd stays the caller's. */
		return ret < 0 ? ret :
			kvm_map_ram(&vm->kvm, size, r->memory_fd, err, errlen);
	}
	ret = snap_open_memory(r->dir, size, &fd, err, errlen);
	if (ret < 0)
		return ret;
	ret = kvm_map_ram(&vm->kvm, size, fd, err, errlen);
	close(fd);
	return ret;
}

/* Restores parsed state `s` into shell `sh`; consumes the shell. */
static struct ember_vm *shell_restore_state(struct ember_shell *sh,
					    const struct ember_restore *r,
					    const struct snap_vm *s, int *retp,
					    char *err, size_t errlen)
{
	struct ember_vm *vm = sh->vm;
	struct ember_config cfg;
	int ret;

	if (s->machine.nr_vcpus != sh->nr_vcpus ||
	    s->has_irqchip != sh->irqchip) {
		ret = -EINVAL;
		snprintf(err, errlen, "snapshot needs %u vCPUs%s; the shell has "
			 "%u%s", s->machine.nr_vcpus,
			 s->has_irqchip ? " and an irqchip" : "", sh->nr_vcpus,
			 sh->irqchip ? " and an irqchip" : "");
		goto out;
	}
	restore_config(s, r, &cfg);
	if (r->dir && !(vm->snapshot_dir = strdup(r->dir))) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	vm->cfg = cfg;
	vm->restored = true;
	vm->boot = s->machine.kind == SNAP_GUEST_LINUX ? BOOT_LINUX : BOOT_PLAIN;
	vm->cpu_template = vm_pick_template(cfg.cpu_template);
	ret = map_memory(vm, r, s->machine.mem_size, err, errlen);
	if (ret < 0)
		goto out;
	if (r->prefetch)
		vm_prefetch_workingset(vm, r);
	ret = vm_restore_devices(vm, s, r, err, errlen);
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
	/* The devices' own after-restore work (vsock: the transport reset). */
	for (unsigned i = 0; i < vm->nr_virtio; i++) {
		struct vm_virtio *vd = &vm->virtio[i];
		struct vm_dev_ctx ctx = {
			.loop = vm->loop, .mem = &vm->kvm.mem, .cfg = &vm->cfg,
			.restore = r,
		};

		if (vd->type->restored &&
		    (ret = vd->type->restored(vd->dev, &ctx, err, errlen)) < 0)
			goto out;
	}
	sh->vm = NULL;
	ember_shell_destroy(sh);
	*retp = 0;
	return vm;
out:
	ember_shell_destroy(sh); /* the half-restored VM goes with it */
	*retp = ret;
	return NULL;
}

/* Reads and validates the snapshot's state, from DIR/state or state_fd. */
static int read_state(const struct ember_restore *r, struct snap_vm *s,
		      char *err, size_t errlen)
{
	if (r->dir)
		return snap_read_state(r->dir, s, err, errlen);
	if (r->state_fd < 0 || r->memory_fd < 0)
		return errbuf_fail(err, errlen, -EINVAL, "no snapshot: give a "
				   "directory, or a state and a memory fd");
	return snap_load_state_fd(r->state_fd, s, 0, err, errlen);
}

struct ember_vm *ember_shell_restore(struct ember_shell *sh,
				     const struct ember_restore *r, int *retp,
				     char *err, size_t errlen)
{
	struct snap_vm *s = calloc(1, sizeof(*s));
	struct ember_vm *vm = NULL;

	*retp = s ? read_state(r, s, err, errlen) : -ENOMEM;
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
	ret = read_state(r, s, err, errlen);
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

int ember_snapshot_carries_connection(int state_fd, char *err, size_t errlen)
{
	struct snap_vm *s = calloc(1, sizeof(*s)); /* ~1 MiB: not on a stack */
	int ret;

	if (!s)
		return errbuf_fail(err, errlen, -ENOMEM, "out of memory");
	/* Another host's CPU does not change what the file holds. */
	ret = snap_load_state_fd(state_fd, s, SNAP_LOAD_ANY_CPU, err, errlen);
	for (uint32_t i = 0; ret == 0 && i < s->nr_devices; i++)
		if (s->dev[i].device_id == VIRTIO_ID_VSOCK &&
		    snap_prop_find(&s->dev[i], VSOCK_CARRY_PROP))
			ret = 1;
	free(s);
	return ret;
}
