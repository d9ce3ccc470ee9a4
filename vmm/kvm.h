/*
 * kvm.h - /dev/kvm, the VM file descriptor, capabilities and memory slots.
 *
 * Owns: the KVM and VM fds, the guest RAM mapping and its memory slots, and
 * the host facts learnt once (PVM or hardware, supported CPUID, vCPU mmap
 * size). Does not own vCPUs (vcpu.c) or devices. Called at setup from one
 * thread; afterwards the fields are read-only.
 */
#ifndef EMBER_KVM_H
#define EMBER_KVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

struct kvm_cpuid2;

struct kvm {
	int kvm_fd;
	int vm_fd;
	int vcpu_mmap_size;
	bool is_pvm;          /* /dev/kvm is kvm-pvm (nested, emulated CPL0) */
	struct kvm_cpuid2 *supported_cpuid;
	uint8_t *ram;         /* one anonymous (or file) mapping of all RAM */
	uint64_t ram_size;
	bool ram_is_file;     /* mapped from a snapshot memory file */
	struct guest_mem mem;
};

/*
 * Opens /dev/kvm, checks the API version and every capability Ember relies
 * on, and creates a VM. On failure returns -errno and writes a one-line
 * reason naming the missing piece to err: -ENODEV when /dev/kvm cannot be
 * opened at all (missing, no permission), -ENOTSUP when it lacks something.
 */
int kvm_open(struct kvm *kvm, char *err, size_t errlen);

/*
 * From now on kvm_open() uses a duplicate of fd, an open /dev/kvm, instead of
 * opening the path (ember-vmm --kvm-fd: emberd's jail opens /dev/kvm as root
 * before dropping to an unprivileged uid in an empty root, where the path
 * neither exists nor would be allowed). The fd stays open; -1 reverts.
 */
void kvm_use_fd(int fd);

/*
 * Maps `ram_size` bytes of RAM (anonymous, or MAP_PRIVATE from `fd` when fd
 * >= 0, the copy-on-write restore path) and registers the memory slots of
 * the guest ABI layout. 0 or -errno with a reason.
 */
int kvm_map_ram(struct kvm *kvm, uint64_t ram_size, int fd, char *err,
		size_t errlen);

void kvm_close(struct kvm *kvm);

/* Returns a vCPU's TSC rate in kHz, or 0 when KVM cannot tell. */
uint64_t kvm_tsc_khz(int vcpu_fd);

/* True when the host's KVM is kvm-pvm (/sys/module/kvm_pvm exists). */
bool kvm_host_is_pvm(void);

#endif
