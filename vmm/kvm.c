#define LOG_MOD "kvm"
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ember/abi.h"
#include "log.h"

#define KVM_MAX_CPUID_ENTRIES 256

/* The capabilities the VMM cannot work without, with the reason each is
 * needed, so the error message tells the user what is missing and why. */
static const struct {
	int cap;
	const char *name;
} required_caps[] = {
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY (guest RAM slots)" },
	{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD (virtio queue notifications)" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT (pausing vCPUs)" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID (CPUID templates)" },
	{ KVM_CAP_GET_TSC_KHZ, "KVM_CAP_GET_TSC_KHZ (guest clock)" },
};

int kvm_ioctl_raw_ul(int fd, unsigned long req, unsigned long arg)
{
	int ret = ioctl(fd, req, (void *)arg);

	return ret < 0 ? -errno : ret;
}

int kvm_ioctl_named(int fd, unsigned long req, const char *name,
		    unsigned long arg, char *err, size_t errlen)
{
	int ret = kvm_ioctl_raw_ul(fd, req, arg);

	if (ret < 0 && err && errlen)
		snprintf(err, errlen, "%s: %s", name, strerror(-ret));
	return ret;
}

/* Looked up once (kvm_open() asks first, at setup): later callers, such as
 * a snapshot or a restore under --seccomp, must not touch the file system. */
bool kvm_host_is_pvm(void)
{
	static int is_pvm = -1;
	int v = __atomic_load_n(&is_pvm, __ATOMIC_RELAXED);

	if (v < 0) {
		v = access("/sys/module/kvm_pvm", F_OK) == 0;
		__atomic_store_n(&is_pvm, v, __ATOMIC_RELAXED);
	}
	return v;
}

/* kvm_use_fd(): an inherited /dev/kvm, -1 for none. */
static int inherited_kvm_fd = -1;

void kvm_use_fd(int fd)
{
	inherited_kvm_fd = fd;
}

int kvm_open(struct kvm *kvm, char *err, size_t errlen)
{
	int ret, version;

	memset(kvm, 0, sizeof(*kvm));
	kvm->vm_fd = -1;
	/* A duplicate, so that kvm_close() may close it like its own. */
	kvm->kvm_fd = inherited_kvm_fd >= 0 ?
		fcntl(inherited_kvm_fd, F_DUPFD_CLOEXEC, 0) :
		open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm->kvm_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open /dev/kvm: %s%s", strerror(-ret),
			 ret == -ENOENT ? " (is the kvm module loaded?)" :
			 ret == -EACCES ? " (is this user in the kvm group?)" :
					  "");
		/* Missing, forbidden or broken, KVM is what is unavailable
		 * (not an input file): callers map -ENODEV to "no KVM". */
		return -ENODEV;
	}
	version = kvm_ioctl_raw(kvm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (version < 0) {
		snprintf(err, errlen, "/dev/kvm is not a KVM device: "
			 "KVM_GET_API_VERSION: %s", strerror(-version));
		ret = -ENOTSUP;
		goto err_close_kvm;
	}
	if (version != KVM_API_VERSION) {
		snprintf(err, errlen, "KVM API version %d, expected %d", version,
			 KVM_API_VERSION);
		ret = -ENOTSUP;
		goto err_close_kvm;
	}
	for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]);
	     i++) {
		if (kvm_ioctl_raw(kvm->kvm_fd, KVM_CHECK_EXTENSION,
				  required_caps[i].cap) <= 0) {
			snprintf(err, errlen, "KVM lacks %s", required_caps[i].name);
			ret = -ENOTSUP;
			goto err_close_kvm;
		}
	}
	kvm->vcpu_mmap_size = kvm_ioctl(kvm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0,
					err, errlen);
	if (kvm->vcpu_mmap_size < (int)sizeof(struct kvm_run)) {
		if (kvm->vcpu_mmap_size >= 0)
			snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE: %d bytes, "
				 "less than struct kvm_run", kvm->vcpu_mmap_size);
		ret = -ENOTSUP;
		goto err_close_kvm;
	}
	kvm->supported_cpuid = calloc(1, sizeof(struct kvm_cpuid2) +
		KVM_MAX_CPUID_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	if (!kvm->supported_cpuid) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto err_close_kvm;
	}
	kvm->supported_cpuid->nent = KVM_MAX_CPUID_ENTRIES;
	ret = kvm_ioctl(kvm->kvm_fd, KVM_GET_SUPPORTED_CPUID,
			kvm->supported_cpuid, err, errlen);
	if (ret < 0)
		goto err_free_cpuid;
	kvm->is_pvm = kvm_host_is_pvm();
	kvm->vm_fd = kvm_ioctl(kvm->kvm_fd, KVM_CREATE_VM, 0, err, errlen);
	if (kvm->vm_fd < 0) {
		ret = kvm->vm_fd;
		kvm->vm_fd = -1;
		goto err_free_cpuid;
	}
	return 0;

err_free_cpuid:
	free(kvm->supported_cpuid);
	kvm->supported_cpuid = NULL;
err_close_kvm:
	close(kvm->kvm_fd);
	kvm->kvm_fd = -1;
	return ret;
}

/* Registers (or, with `remove`, deletes) the slots of kvm->mem. */
static int set_slots(struct kvm *kvm, bool remove, char *err, size_t errlen)
{
	for (unsigned i = 0; i < kvm->mem.nr_regions; i++) {
		const struct mem_region *r = &kvm->mem.region[i];
		struct kvm_userspace_memory_region slot = {
			.slot = i,
			.guest_phys_addr = r->gpa,
			.memory_size = remove ? 0 : r->size,
			.userspace_addr = (uintptr_t)r->hva,
		};
		int ret = kvm_ioctl(kvm->vm_fd, KVM_SET_USER_MEMORY_REGION,
				    &slot, err, errlen);

		if (ret < 0)
			return ret;
	}
	return 0;
}

static void unmap_ram(struct kvm *kvm)
{
	munmap(kvm->ram, kvm->ram_size);
	kvm->ram = NULL;
	kvm->ram_size = 0;
	kvm->ram_reserved = false;
}

/* The snapshot's memory over the reserved placeholder, slots untouched. */
static int map_over_reserved(struct kvm *kvm, int fd, char *err,
			     size_t errlen)
{
	void *p = mmap(kvm->ram, kvm->ram_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_FIXED, fd, 0);
	int ret;

	if (p == MAP_FAILED) {
		ret = -errno;
		/* (A failed MAP_FIXED may have unmapped the placeholder: the
		 * slots then name nothing; the VM is not run after this.) */
		snprintf(err, errlen, "cannot map %llu MiB of guest RAM: %s",
			 (unsigned long long)(kvm->ram_size >> 20),
			 strerror(-ret));
		return ret;
	}
	madvise(p, kvm->ram_size, MADV_DONTDUMP);
	kvm->ram_reserved = false;
	kvm->ram_is_file = true;
	return 0;
}

int kvm_map_ram(struct kvm *kvm, uint64_t ram_size, int fd, char *err,
		size_t errlen)
{
	int flags = fd >= 0 ? MAP_PRIVATE : MAP_PRIVATE | MAP_ANONYMOUS |
		MAP_NORESERVE;
	void *p;
	int ret;

	if (kvm->ram_reserved) {
		if (fd >= 0 && ram_size == kvm->ram_size)
			return map_over_reserved(kvm, fd, err, errlen);
		ret = set_slots(kvm, true, err, errlen);
		if (ret < 0)
			return ret;
		unmap_ram(kvm);
	}
	p = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (p == MAP_FAILED) {
		ret = -errno;
		snprintf(err, errlen, "cannot map %llu MiB of guest RAM: %s",
			 (unsigned long long)(ram_size >> 20), strerror(-ret));
		return ret;
	}
	/* Guest RAM in a core dump would leak tenant data and be huge. */
	madvise(p, ram_size, MADV_DONTDUMP);
	kvm->ram = p;
	kvm->ram_size = ram_size;
	kvm->ram_is_file = fd >= 0;
	mem_layout(&kvm->mem, kvm->ram, ram_size);
	ret = set_slots(kvm, false, err, errlen);
	if (ret < 0)
		unmap_ram(kvm);
	return ret;
}

int kvm_reserve_ram(struct kvm *kvm, uint64_t ram_size, char *err,
		    size_t errlen)
{
	int ret;

	if (kvm->ram)
		return errbuf_fail(err, errlen, -EBUSY,
				   "guest RAM is already mapped");
	ret = kvm_map_ram(kvm, ram_size, -1, err, errlen);
	if (ret == 0)
		kvm->ram_reserved = true;
	return ret;
}

void kvm_close(struct kvm *kvm)
{
	if (kvm->vm_fd >= 0)
		close(kvm->vm_fd);
	if (kvm->kvm_fd >= 0)
		close(kvm->kvm_fd);
	if (kvm->ram)
		munmap(kvm->ram, kvm->ram_size);
	free(kvm->supported_cpuid);
	memset(kvm, 0, sizeof(*kvm));
	kvm->vm_fd = kvm->kvm_fd = -1;
}

uint64_t kvm_tsc_khz(int vcpu_fd)
{
	int khz = kvm_ioctl_raw(vcpu_fd, KVM_GET_TSC_KHZ, 0);

	return khz > 0 ? (uint64_t)khz : 0;
}
