/*
 * vm.h - the VM object behind ember.h: what a running VM is made of.
 *
 * Owns: the assembly of a VM (KVM, memory, boot, devices, vCPUs) and its
 * life cycle (created -> running -> stopped). Private to libember: the
 * public API is ember.h. vcpu.c runs the vCPU threads over this structure.
 */
#ifndef EMBER_VM_H
#define EMBER_VM_H

#include <pthread.h>
#include <time.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "devtable.h"
#include "dev/i8042.h"
#include "dev/serial.h"
#include "ember.h"
#include "ember/abi.h"
#include "evloop.h"
#include "kvm.h"
#include "virtio/mmio.h"
#include "x86/cpu.h"

struct kvm_run;
struct ember_vm;

struct vcpu {
	struct ember_vm *vm;
	unsigned id;
	int fd;
	/* eventfd written by every kick: a vCPU that left KVM_RUN for the
	 * WAIT hypercall but is not yet in its poll() would miss the kick
	 * signal; it never misses this. */
	int kick_fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	/* Preemption ticks for a plain guest that asks for them
	 * (struct ember_preempt): a timer signalling this vCPU's thread. */
	timer_t tick_timer;
	bool tick_timer_ok, tick_armed;
	uint64_t tick_slice_ns;
};

/* One queue's ioeventfd, as seen by its evloop callback. */
struct vm_notify {
	struct vmmio_dev *t;
	uint32_t queue;
	int fd;
};

struct vm_virtio {
	const struct vm_device_type *type; /* devtable.h */
	struct vmmio_dev transport;
	void *dev;
	int ioeventfd[VMMIO_MAX_QUEUES];
	struct vm_notify notify[VMMIO_MAX_QUEUES];
	int irqfd;
};

struct ember_vm {
	struct ember_config cfg;
	char *cmdline;              /* the final command line given to the guest */
	enum boot_kind boot;
	enum cpu_template cpu_template;
	/* A shell's vCPUs carry this template's CPUID already, set while it
	 * was made (ember_shell_create): KVM_SET_CPUID2 costs ~0.1 ms per
	 * vCPU here, and a restore with the same template skips it. (KVM lets
	 * a vCPU that never ran take another CPUID.) */
	bool cpuid_preset;
	enum cpu_template cpuid_preset_template;
	bool irqchip;               /* in-kernel PIC/IOAPIC/PIT (Linux guests) */
	struct kvm kvm;
	struct bus pio, mmio;
	struct serial serial;
	bool serial_ready;
	struct i8042 i8042;
	struct evloop *loop;

	unsigned nr_vcpus;
	struct vcpu vcpu[EMBER_MAX_VCPUS];

	unsigned nr_virtio;
	struct vm_virtio virtio[EMBER_VIRTIO_MAX_DEVICES];
	int wake_fd;                /* eventfd: a device pushed used buffers */

	/* Plain-ELF exception reflection (the Ember ELF note). */
	bool reflect_exceptions;
	uint64_t exception_entry;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;
	/* Pause: vCPUs park at a clean point (any pending I/O exit completed)
	 * while pause_requested; vcpus_paused counts the parked ones. */
	bool pause_requested;
	unsigned vcpus_paused;
	/* Set by EMBER_HC_READY; snapshot_at_ready makes the vCPU write a
	 * snapshot to that directory and stop the VM right there. */
	bool guest_ready;
	const char *snapshot_at_ready;
	int snapshot_at_ready_fd;   /* that directory, opened at setup */
	int pagemap_fd;             /* /proc/self/pagemap, opened at setup */
	char *snapshot_dir;         /* restored from here, NULL when booted */
	/* Strings cfg points to that the VM owns (a restored VM's paths come
	 * from a snapshot that is freed after the restore). */
	char *owned[EMBER_MAX_DISKS + 2];
	unsigned nr_owned;
	unsigned vcpus_running;
	struct ember_exit exit;
	pthread_t stop_thread;      /* the thread whose vm_request_stop won */
	int stop_fd;                /* eventfd written when the VM stops */
	int stop_req_fd;            /* eventfd: ember_vm_stop() was called */
	bool started, waited;       /* ember_vm_start() / ember_vm_wait() done */
	/* A shell's threads, started ahead (vm_prestart_threads): the vCPU
	 * threads wait for `go`, the event thread is parked; ember_vm_start()
	 * releases them. Both under lock. */
	bool threads_parked, go;
	bool restored;              /* built from a snapshot */
	uint64_t deadline_ns;       /* CLOCK_MONOTONIC end (--timeout), or 0 */
	int serial_fd;              /* our dup of cfg.serial_fd, or -1 */
};

/* A VM shell (shell.c): a VM with KVM, vCPUs and the event loop made,
 * waiting for restore.c to fill it. */
struct ember_shell {
	struct ember_vm *vm;
	unsigned nr_vcpus;
	bool irqchip;
};

/* Records why the VM ends (the first caller wins) and kicks every vCPU out
 * of KVM_RUN. Any thread. */
void vm_request_stop(struct ember_vm *vm, enum ember_exit_reason reason,
		     int guest_status, uint64_t rip, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* vm.c helpers shared with snapshot.c. */
const char *vm_own_string(struct ember_vm *vm, const char *s);
struct ember_vm *vm_alloc(const struct ember_config *cfg);
enum cpu_template vm_pick_template(enum ember_cpu_template t);
int vm_setup_irqchip(struct ember_vm *vm, char *err, size_t errlen);
int vm_create_core(struct ember_vm *vm, char *err, size_t errlen);
/* The devices of a booting VM, from its configuration (the device table's
 * order); and those of a restored VM, from the snapshot's devices and the
 * caller's overrides (their saved order). 0 or -errno + reason. */
int vm_create_devices(struct ember_vm *vm, char *err, size_t errlen);
struct snap_vm;
int vm_restore_devices(struct ember_vm *vm, const struct snap_vm *s,
		       const struct ember_restore *r, char *err,
		       size_t errlen);

/* Writes the guest TSC / wall-clock pair into a plain guest's boot info. */
int vm_sync_guest_clock(struct ember_vm *vm);

/* vcpu.c: creates vCPU `id` (fd and kvm_run mapping). 0 or -errno. */
int vcpu_create(struct ember_vm *vm, unsigned id, char *err, size_t errlen);
/* vm.c: a shell's vCPU and event threads started now, waiting for
 * ember_vm_start(); their setup (and their seccomp filters, through the
 * thread hook) is then off the restore's critical path. */
int vm_prestart_threads(struct ember_vm *vm, char *err, size_t errlen);

/* vcpu.c: starts / joins the vCPU threads. */
int vcpu_start(struct vcpu *v);
void vcpu_join(struct vcpu *v);
void vcpu_kick(struct vcpu *v);
/* One line about a parked (or not yet started) vCPU: its mode (real,
 * protected, long), MP state, CS and RIP. 0 or -errno. Not while the vCPU
 * is in KVM_RUN (the ioctls would wait for it). */
int vcpu_describe(struct vcpu *v, char *buf, size_t len);
void vcpu_destroy(struct vcpu *v);
/* Parks the vCPU at a clean point: completes a pending I/O or MMIO exit by
 * re-entering KVM_RUN with immediate_exit set, so that its registers are
 * architecturally complete. Called on the vCPU's own thread. */
int vcpu_complete_exit(struct vcpu *v);

/* snapshot.c: captures the (paused) VM into DIR. 0 or -errno + reason. */
int vm_snapshot(struct ember_vm *vm, const char *dir, char *err,
		size_t errlen);
/* The same into the open directory dirfd. */
int vm_snapshot_at(struct ember_vm *vm, int dirfd, char *err, size_t errlen);

/* workingset.c: the recorded working set brought in before the vCPU runs
 * (r->prefetch), from r->dir or r->workingset_fd. Best effort. */
void vm_prefetch_workingset(struct ember_vm *vm, const struct ember_restore *r);

/* Installs the no-op EMBER_KICK_SIGNAL handler (once per process). */
void vcpu_install_kick_handler(void);

#endif
