/*
 * shell.c - VM shells: a KVM VM with its vCPUs, event loop and eventfds
 * created ahead of time (off the critical path), waiting for a snapshot to
 * be restored into it (restore.c).
 */
#define LOG_MOD "shell"
#include "vm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The CPUID a restore with the default template will want, set now, off
 * the restore's critical path (restore_vcpu skips it then). */
static int preset_cpuid(struct ember_vm *vm, char *err, size_t errlen)
{
	enum cpu_template t = vm_pick_template(EMBER_CPU_AUTO);

	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		int ret = cpu_setup_cpuid(vm->vcpu[i].fd, vm->kvm.supported_cpuid,
					  t, i, vm->nr_vcpus);

		if (ret < 0) {
			snprintf(err, errlen, "vCPU %u: CPUID: %s", i,
				 strerror(-ret));
			return ret;
		}
	}
	vm->cpuid_preset = true;
	vm->cpuid_preset_template = t;
	return 0;
}

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
	if (!ret)
		ret = preset_cpuid(sh->vm, err, errlen);
	if (ret < 0)
		goto err;
	*retp = 0;
	return sh;
err:
	ember_shell_destroy(sh);
	*retp = ret;
	return NULL;
}

int ember_shell_reserve_memory(struct ember_shell *sh, unsigned mem_mib,
			       char *err, size_t errlen)
{
	if (mem_mib == 0 || mem_mib > 64u * 1024)
		return errbuf_fail(err, errlen, -EINVAL,
				   "memory size %u MiB out of range (1-65536)",
				   mem_mib);
	return kvm_reserve_ram(&sh->vm->kvm, (uint64_t)mem_mib << 20, err,
			       errlen);
}

int ember_shell_start_threads(struct ember_shell *sh, char *err,
			      size_t errlen)
{
	if (sh->vm->threads_parked)
		return errbuf_fail(err, errlen, -EBUSY, "the shell's threads "
				   "are started already");
	return vm_prestart_threads(sh->vm, err, errlen);
}

void ember_shell_destroy(struct ember_shell *sh)
{
	if (!sh)
		return;
	ember_vm_destroy(sh->vm);
	free(sh);
}
