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
	bool ram_reserved;    /* a placeholder under ready slots (kvm_reserve_ram) */
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
 * the guest ABI layout. After kvm_reserve_ram() of the same size, a file is
 * mapped in place over the placeholder (MAP_FIXED) and the slots stay as
 * they are; of another size, the placeholder and its slots go first. 0 or
 * -errno with a reason.
 */

int kvm_map_ram(struct kvm *kvm, uint64_t ram_size, int fd, char *err,
		size_t errlen);

/*
 * A placeholder for `ram_size` bytes of guest RAM (anonymous, never touched)
 * with its memory slots registered now, for a shell: each
 * KVM_SET_USER_MEMORY_REGION costs ~0.2 ms here (KVM waits for an SRCU
 * grace period), which a restore of that size then skips. The vCPUs must
 * not run before kvm_map_ram() replaces it. KVM follows the new mapping:
 * a slot names a range of the process's addresses, not the pages behind
 * it. 0 or -errno with a reason.
 */
int kvm_reserve_ram(struct kvm *kvm, uint64_t ram_size, char *err,
		    size_t errlen);

void kvm_close(struct kvm *kvm);

/*
 * The one way vmm/ calls ioctl(2), a checked pair (the KVM selftests'
 * __kvm_ioctl / kvm_ioctl): `arg` is an integer or a pointer, as the
 * request wants.
 *
 * kvm_ioctl_raw(fd, req, arg) returns the ioctl's result (>= 0; some
 * requests return a count or an fd) or -errno, captured right after the
 * call: nothing the caller formats or logs next can change it. For the
 * calls whose failure is expected (KVM_RUN's -EINTR) or handled in place.
 *
 * kvm_ioctl(fd, req, arg, err, errlen) is the same and, on failure, writes
 * "REQ: <strerror>" to err[errlen] (REQ the request's name as spelt at the
 * call, e.g. "KVM_SET_REGS: Invalid argument"; err may be NULL).
 * kvm_ioctl_named() is kvm_ioctl for a macro that has the name as a string
 * already (passing REQ through another macro would expand it).
 */
#define kvm_ioctl_raw(fd, req, arg)                                           \
	kvm_ioctl_raw_ul((fd), (req), (unsigned long)(arg))
#define kvm_ioctl(fd, req, arg, err, errlen)                                  \
	kvm_ioctl_named((fd), (req), #req, (unsigned long)(arg), (err),       \
			(errlen))
int kvm_ioctl_raw_ul(int fd, unsigned long req, unsigned long arg);
int kvm_ioctl_named(int fd, unsigned long req, const char *name,
		    unsigned long arg, char *err, size_t errlen);

/* Returns a vCPU's TSC rate in kHz, or 0 when KVM cannot tell. */
uint64_t kvm_tsc_khz(int vcpu_fd);

/* True when the host's KVM is kvm-pvm (/sys/module/kvm_pvm exists). */
bool kvm_host_is_pvm(void);

#endif
