/*
 * trace.c - timing libember's restore steps from inside: link-time
 * wrappers (-Wl,--wrap=..., mk/bench.mk) of ioctl(), mmap(), madvise() and
 * a few libember internals, whose prototypes are repeated here: the
 * benchmark must be rebuilt with the library it measures.
 *
 * Only the thread that armed the trace records (the restoring thread);
 * the vCPU thread's KVM_RUN is noted once per run as "first entry".
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "coldstart.h"
#include "ember.h"

static struct trace *g_tr;
static __thread int tl_armed, tl_depth;
uint64_t g_first_run_ns;
uint64_t g_kvm_runs; /* KVM_RUN calls in this process: ~VM exits */

static void tr_add(const char *name, uint64_t ns, bool top)
{
	struct trace *t = g_tr;
	unsigned i;

	if (!t)
		return;
	for (i = 0; i < t->n; i++)
		if (!strcmp(t->e[i].name, name) && t->e[i].top == top)
			break;
	if (i == t->n) {
		if (t->n == sizeof(t->e) / sizeof(t->e[0]))
			return;
		snprintf(t->e[i].name, sizeof(t->e[i].name), "%s", name);
		t->e[i].top = top;
		t->n++;
	}
	t->e[i].ns += ns;
	t->e[i].cur += ns;
	t->e[i].count++;
}

/* Closes one run: each entry's time in it becomes a per-run sample. */
void tr_end_run(struct trace *t)
{
	for (unsigned i = 0; i < t->n; i++) {
		s_add(&t->e[i].per_run, (double)t->e[i].cur / 1000.0);
		t->e[i].cur = 0;
	}
	t->runs++;
}

void tr_arm(struct trace *t)
{
	g_tr = t;
	tl_armed = 1;
	tl_depth = 0;
}

void tr_disarm(void)
{
	tl_armed = 0;
	g_tr = NULL;
}

static const char *kvm_ioctl_name(unsigned long req)
{
	static const struct {
		unsigned long req;
		const char *name;
	} names[] = {
#define N(x) { x, #x }
		N(KVM_GET_API_VERSION), N(KVM_CREATE_VM), N(KVM_CHECK_EXTENSION),
		N(KVM_GET_VCPU_MMAP_SIZE), N(KVM_GET_SUPPORTED_CPUID),
		N(KVM_CREATE_VCPU), N(KVM_SET_USER_MEMORY_REGION),
		N(KVM_SET_TSS_ADDR), N(KVM_SET_IDENTITY_MAP_ADDR),
		N(KVM_CREATE_IRQCHIP), N(KVM_CREATE_PIT2), N(KVM_SET_IRQCHIP),
		N(KVM_SET_PIT2), N(KVM_SET_CLOCK), N(KVM_IRQFD), N(KVM_IOEVENTFD),
		N(KVM_SET_CPUID2), N(KVM_SET_REGS), N(KVM_SET_SREGS),
		N(KVM_SET_FPU), N(KVM_SET_MSRS), N(KVM_GET_MSRS),
		N(KVM_SET_LAPIC), N(KVM_SET_XSAVE), N(KVM_SET_XCRS),
		N(KVM_SET_VCPU_EVENTS), N(KVM_SET_DEBUGREGS),
		N(KVM_SET_MP_STATE), N(KVM_SET_TSC_KHZ), N(KVM_GET_TSC_KHZ),
		N(KVM_GET_MSR_INDEX_LIST), N(KVM_GET_REGS), N(KVM_GET_SREGS),
		N(KVM_ENABLE_CAP), N(KVM_GET_CLOCK), N(KVM_SET_GSI_ROUTING),
		N(KVM_SET_GUEST_DEBUG),
#undef N
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].req == req)
			return names[i].name;
	return _IOC_TYPE(req) == KVMIO ? "KVM (other ioctl)" : "ioctl (other)";
}

/* The wrapped functions. Prototypes of libember internals are repeated
 * with incomplete struct types (vmm/kvm.h, vmm/vm.h, snapshots/snap.h). */
struct kvm;
struct snap_vm;
int __real_ioctl(int fd, unsigned long req, ...);
int __wrap_ioctl(int fd, unsigned long req, ...);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd,
		  off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
		  off_t off);
int __real_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice);
int __real_snap_read_state(const char *dir, struct snap_vm *s, char *err,
			   size_t errlen);
int __wrap_snap_read_state(const char *dir, struct snap_vm *s, char *err,
			   size_t errlen);
int __real_snap_open_memory(const char *dir, uint64_t expected, int *fd,
			    char *err, size_t errlen);
int __wrap_snap_open_memory(const char *dir, uint64_t expected, int *fd,
			    char *err, size_t errlen);
int __real_kvm_map_ram(struct kvm *kvm, uint64_t size, int fd, char *err,
		       size_t errlen);
int __wrap_kvm_map_ram(struct kvm *kvm, uint64_t size, int fd, char *err,
		       size_t errlen);
int __real_kvm_open(struct kvm *kvm, char *err, size_t errlen);
int __wrap_kvm_open(struct kvm *kvm, char *err, size_t errlen);
int __real_vm_create_core(struct ember_vm *vm, char *err, size_t errlen);
int __wrap_vm_create_core(struct ember_vm *vm, char *err, size_t errlen);
int __real_vm_create_devices(struct ember_vm *vm, char *err, size_t errlen);
int __wrap_vm_create_devices(struct ember_vm *vm, char *err, size_t errlen);

#define TRACED(label, call)                                               \
	({                                                                \
		uint64_t t_ = now_ns();                                   \
		int e_;                                                   \
		tl_depth++;                                               \
		__typeof__(call) r_ = (call);                             \
		e_ = errno;                                               \
		tl_depth--;                                               \
		if (tl_armed)                                             \
			tr_add(label, now_ns() - t_, tl_depth == 0);      \
		errno = e_;                                               \
		r_;                                                       \
	})

int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (req == KVM_RUN) {
		uint64_t zero = 0;

		__atomic_add_fetch(&g_kvm_runs, 1, __ATOMIC_RELAXED);
		__atomic_compare_exchange_n(&g_first_run_ns, &zero, now_ns(),
					    false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED);
		return __real_ioctl(fd, req, arg);
	}
	if (!tl_armed)
		return __real_ioctl(fd, req, arg);
	return TRACED(kvm_ioctl_name(req), __real_ioctl(fd, req, arg));
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
		  off_t off)
{
	if (!tl_armed)
		return __real_mmap(addr, len, prot, flags, fd, off);
	return TRACED(fd >= 0 ? "mmap (file)" : "mmap (anonymous)",
		      __real_mmap(addr, len, prot, flags, fd, off));
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
	if (!tl_armed)
		return __real_madvise(addr, len, advice);
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
	if (advice == MADV_POPULATE_READ && g_tr)
		g_tr->prefetch_bytes += len;
	return TRACED(advice == MADV_POPULATE_READ ?
			      "madvise POPULATE_READ (prefetch)" :
			      "madvise (other)",
		      __real_madvise(addr, len, advice));
}

int __wrap_snap_read_state(const char *dir, struct snap_vm *s, char *err,
			   size_t errlen)
{
	return TRACED("state file read+parse (snap_read_state)",
		      __real_snap_read_state(dir, s, err, errlen));
}

int __wrap_snap_open_memory(const char *dir, uint64_t expected, int *fd,
			    char *err, size_t errlen)
{
	return TRACED("open memory file (snap_open_memory)",
		      __real_snap_open_memory(dir, expected, fd, err, errlen));
}

int __wrap_kvm_map_ram(struct kvm *kvm, uint64_t size, int fd, char *err,
		       size_t errlen)
{
	return TRACED("map guest RAM + memslots (kvm_map_ram)",
		      __real_kvm_map_ram(kvm, size, fd, err, errlen));
}

int __wrap_kvm_open(struct kvm *kvm, char *err, size_t errlen)
{
	return TRACED("open /dev/kvm + KVM_CREATE_VM (kvm_open)",
		      __real_kvm_open(kvm, err, errlen));
}

int __wrap_vm_create_core(struct ember_vm *vm, char *err, size_t errlen)
{
	return TRACED("eventfds, evloop, vCPUs (vm_create_core)",
		      __real_vm_create_core(vm, err, errlen));
}

int __wrap_vm_create_devices(struct ember_vm *vm, char *err, size_t errlen)
{
	return TRACED("device setup (vm_create_devices)",
		      __real_vm_create_devices(vm, err, errlen));
}
