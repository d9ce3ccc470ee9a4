/*
 * vcpu.c - vCPU threads: the KVM_RUN loop and exit dispatch.
 *
 * Each vCPU thread enters KVM_RUN, handles the exit (port I/O and MMIO go to
 * the buses; Ember's own ports are handled here), and loops until the VM is
 * stopping. A stop is noticed in three ways: vm->stopping is checked after
 * every exit, run->immediate_exit makes the next KVM_RUN return at once, and
 * EMBER_KICK_SIGNAL interrupts a KVM_RUN in progress (-EINTR). A micro
 * guest with threads also asks for preemption ticks (struct ember_preempt):
 * a per-vCPU timer sends the same signal while the guest runs, and the
 * tick is reflected to the guest like an exception.
 */
#define LOG_MOD "vcpu"
#include "vm.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"

/* Set on a vCPU thread when its preemption tick timer fired. */
static __thread volatile sig_atomic_t tick_due;

static void kick_handler(int sig, siginfo_t *si, void *uc)
{
	/* Its main job is to make KVM_RUN return -EINTR. The preemption tick
	 * timer sends the same signal (SI_TIMER) and is told apart here. */
	(void)sig;
	(void)uc;
	if (si && si->si_code == SI_TIMER)
		tick_due = 1;
}

static void install_kick_handler_once(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = kick_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(EMBER_KICK_SIGNAL, &sa, NULL);
}

void vcpu_install_kick_handler(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, install_kick_handler_once);
}

int vcpu_create(struct ember_vm *vm, unsigned id, char *err, size_t errlen)
{
	struct vcpu *v = &vm->vcpu[id];
	void *run;
	int ret;

	v->vm = vm;
	v->id = id;
	v->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->kick_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "eventfd for vCPU %u: %s", id,
			 strerror(-ret));
		return ret;
	}
	v->fd = kvm_ioctl_raw(vm->kvm.vm_fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0) {
		ret = v->fd;
		v->fd = -1;
		snprintf(err, errlen, "KVM_CREATE_VCPU %u: %s", id, strerror(-ret));
		return ret;
	}
	run = mmap(NULL, (size_t)vm->kvm.vcpu_mmap_size, PROT_READ | PROT_WRITE,
		   MAP_SHARED, v->fd, 0);
	if (run == MAP_FAILED) {
		ret = -errno;
		snprintf(err, errlen, "mmap of vCPU %u: %s", id, strerror(-ret));
		close(v->fd);
		v->fd = -1;
		return ret;
	}
	v->run = run;
	return 0;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, (size_t)v->vm->kvm.vcpu_mmap_size);
	if (v->fd >= 0)
		close(v->fd);
	if (v->kick_fd >= 0)
		close(v->kick_fd);
	v->run = NULL;
	v->fd = v->kick_fd = -1;
}

/*
 * Three ways, one per place the vCPU thread can be: immediate_exit for a
 * KVM_RUN about to start, the signal for one in progress, the eventfd for
 * the WAIT hypercall's poll() (about to start or in progress).
 */
void vcpu_kick(struct vcpu *v)
{
	uint64_t one = 1;

	if (v->run)
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (v->kick_fd >= 0 && write(v->kick_fd, &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		log_warn_errno("vCPU %u kick eventfd", v->id);
	if (v->thread_started)
		pthread_kill(v->thread, EMBER_KICK_SIGNAL);
}

static void drain_kicks(struct vcpu *v)
{
	uint64_t n;

	if (read(v->kick_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn_errno("vCPU %u kick eventfd", v->id);
}

int vcpu_describe(struct vcpu *v, char *buf, size_t len)
{
	static const char *const mp[] = {
		[KVM_MP_STATE_RUNNABLE] = "runnable",
		[KVM_MP_STATE_UNINITIALIZED] = "uninitialized",
		[KVM_MP_STATE_INIT_RECEIVED] = "init-received",
		[KVM_MP_STATE_HALTED] = "halted",
		[KVM_MP_STATE_SIPI_RECEIVED] = "sipi-received",
	};
	struct kvm_mp_state m;
	struct kvm_regs r;
	struct kvm_sregs sr;
	const char *mode;
	int ret;

	if ((ret = kvm_ioctl_raw(v->fd, KVM_GET_MP_STATE, &m)) < 0 ||
	    (ret = kvm_ioctl_raw(v->fd, KVM_GET_REGS, &r)) < 0 ||
	    (ret = kvm_ioctl_raw(v->fd, KVM_GET_SREGS, &sr)) < 0)
		return ret;
	mode = !(sr.cr0 & 1) ? "real" : (sr.efer & (1u << 10)) ? "long" :
							     "protected";
	snprintf(buf, len, "vcpu%u %s mp=%s cs=%#x cs.base=%#llx rip=%#llx",
		 v->id, mode,
		 m.mp_state < sizeof(mp) / sizeof(mp[0]) && mp[m.mp_state] ?
			 mp[m.mp_state] : "other",
		 sr.cs.selector, (unsigned long long)sr.cs.base,
		 (unsigned long long)r.rip);
	return 0;
}

static uint64_t vcpu_rip(struct vcpu *v)
{
	struct kvm_regs regs;

	if (kvm_ioctl_raw(v->fd, KVM_GET_REGS, &regs) < 0)
		return 0;
	return regs.rip;
}

static void format_registers(struct vcpu *v, const struct kvm_regs *r,
			     const struct kvm_sregs *s)
{
	snprintf(v->vm->exit.registers, sizeof(v->vm->exit.registers),
		 "vcpu%u rip=%llx rsp=%llx rflags=%llx rax=%llx rbx=%llx "
		 "rcx=%llx rdx=%llx rsi=%llx rdi=%llx rbp=%llx r8=%llx "
		 "r9=%llx r10=%llx r11=%llx r12=%llx r13=%llx r14=%llx "
		 "r15=%llx cs=%x ss=%x cr0=%llx cr2=%llx cr3=%llx cr4=%llx "
		 "efer=%llx",
		 v->id, r->rip, r->rsp, r->rflags, r->rax, r->rbx, r->rcx,
		 r->rdx, r->rsi, r->rdi, r->rbp, r->r8, r->r9, r->r10, r->r11,
		 r->r12, r->r13, r->r14, r->r15, s->cs.selector,
		 s->ss.selector, s->cr0, s->cr2, s->cr3, s->cr4, s->efer);
}

/*
 * Resumes the guest at its exception entry (the Ember note) as if vector
 * had been raised in context ctx (segments cs/ss): the whole context goes
 * to struct ember_xframe, the entry's arguments to registers, the CPL stays
 * the one it was running at, and the stack is its own below the red zone.
 */
static void reflect(struct vcpu *v, const struct kvm_regs *ctx,
		    struct kvm_sregs *sregs, uint64_t cs, uint64_t ss,
		    unsigned vector, uint64_t err_code, uint64_t cr2)
{
	struct ember_vm *vm = v->vm;
	struct ember_xframe *x = mem_gpa_to_hva(&vm->kvm.mem, EMBER_XFRAME_GPA,
						sizeof(*x));
	uint64_t cpl = cs & 3;
	struct kvm_regs r = *ctx;

	if (!x) {
		vm_request_stop(vm, EMBER_EXIT_VMM_ERROR, 0, ctx->rip,
				"no room for the exception frame");
		return;
	}
	*x = (struct ember_xframe){
		.rax = ctx->rax, .rbx = ctx->rbx, .rcx = ctx->rcx,
		.rdx = ctx->rdx, .rsi = ctx->rsi, .rdi = ctx->rdi,
		.rbp = ctx->rbp, .rsp = ctx->rsp, .r8 = ctx->r8,
		.r9 = ctx->r9, .r10 = ctx->r10, .r11 = ctx->r11,
		.r12 = ctx->r12, .r13 = ctx->r13, .r14 = ctx->r14,
		.r15 = ctx->r15, .rip = ctx->rip, .rflags = ctx->rflags,
		.cs = cs, .ss = ss, .vector = vector, .error_code = err_code,
		.cr2 = cr2,
	};
	r.rip = vm->exception_entry;
	r.rsp = ((ctx->rsp & ~15ULL) - 256);
	r.rflags = (ctx->rflags & ~(1ULL << 8)) | 2; /* clear TF */
	r.rdi = vector;
	r.rsi = err_code;
	r.rdx = ctx->rip;
	r.rcx = cr2;
	r.r8 = ctx->rsp;
	sregs->cs.dpl = (uint8_t)cpl;
	sregs->ss.dpl = (uint8_t)cpl;
	if (kvm_ioctl_raw(v->fd, KVM_SET_SREGS, sregs) < 0 ||
	    kvm_ioctl_raw(v->fd, KVM_SET_REGS, &r) < 0)
		vm_request_stop(vm, EMBER_EXIT_VMM_ERROR, 0, ctx->rip,
				"cannot reflect exception %u", vector);
}

/*
 * Reports or reflects an exception caught by the stub for `vector`. The IST
 * stack holds, from RSP up: the RAX the stub saved, [error code], then the
 * CPU's frame: RIP, CS, RFLAGS, RSP, SS of the interrupted context.
 */
static void handle_exception(struct vcpu *v, unsigned vector)
{
	struct ember_vm *vm = v->vm;
	const struct guest_mem *mem = &vm->kvm.mem;
	struct kvm_regs regs, ctx;
	struct kvm_sregs sregs;
	uint64_t frame[7] = { 0 }, err_code = 0, *f;
	bool has_err = cpu_vector_has_error_code(vector);

	if (kvm_ioctl_raw(v->fd, KVM_GET_REGS, &regs) < 0 ||
	    kvm_ioctl_raw(v->fd, KVM_GET_SREGS, &sregs) < 0) {
		vm_request_stop(vm, EMBER_EXIT_VMM_ERROR, 0, 0,
				"cannot read vCPU state after exception %u", vector);
		return;
	}
	/* The frame is guest memory: read it through the checked accessor. */
	if (vector >= 32 ||
	    mem_read(mem, frame, regs.rsp, sizeof(frame)) < 0) {
		vm_request_stop(vm, EMBER_EXIT_EXCEPTION, 0, regs.rip,
				"guest exception %u with an unreadable frame "
				"(RSP 0x%llx)", vector,
				(unsigned long long)regs.rsp);
		return;
	}
	f = frame + 1;
	if (has_err)
		err_code = *f++;
	/* The faulting context: the stub changed only RAX, RIP, RSP, RFLAGS
	 * and the segments, all of which it saved. */
	ctx = regs;
	ctx.rax = frame[0];
	ctx.rip = f[0];
	ctx.rflags = f[2];
	ctx.rsp = f[3];
	sregs.cs.selector = (uint16_t)f[1];
	sregs.ss.selector = (uint16_t)f[4];
	/*
	 * The frame is guest memory, and a CPL3 guest can jump to a stub
	 * itself with a stack of its own making: only the selectors of the
	 * boot GDT are resumed with, anything else ends the VM.
	 */
	if (vm->reflect_exceptions && vector != 8 && vector != 18 &&
	    !((f[1] == (EMBER_SEL_UCODE | 3) && f[4] == (EMBER_SEL_UDATA | 3)) ||
	      (f[1] == EMBER_SEL_KCODE &&
	       (f[4] == EMBER_SEL_KDATA || f[4] == 0)))) {
		vm_request_stop(vm, EMBER_EXIT_EXCEPTION, 0, f[0],
				"guest exception %u with a forged frame "
				"(CS 0x%" PRIx64 ", SS 0x%" PRIx64 ")", vector,
				f[1], f[4]);
		return;
	}
	if (vm->reflect_exceptions && vector != 8 && vector != 18) {
		reflect(v, &ctx, &sregs, f[1], f[4], vector, err_code,
			sregs.cr2);
		return;
	}
	if (vector == 14)
		vm_request_stop(vm, EMBER_EXIT_EXCEPTION, 0, f[0],
				"guest exception: %s at RIP 0x%" PRIx64
				", address 0x%llx, error code 0x%" PRIx64
				" (%s, %s, %s mode), RSP 0x%" PRIx64,
				cpu_vector_name(vector), f[0],
				(unsigned long long)sregs.cr2, err_code,
				err_code & 1 ? "protection" : "not present",
				err_code & 2 ? "write" : "read",
				err_code & 4 ? "user" : "kernel", f[3]);
	else
		vm_request_stop(vm, EMBER_EXIT_EXCEPTION, 0, f[0],
				"guest exception: %s at RIP 0x%" PRIx64
				", error code 0x%" PRIx64 ", RSP 0x%" PRIx64
				", RFLAGS 0x%" PRIx64 ", CS 0x%" PRIx64,
				cpu_vector_name(vector), f[0], err_code, f[3],
				f[2], f[1]);
	if (pthread_equal(vm->stop_thread, pthread_self()))
		format_registers(v, &ctx, &sregs);
}

/* --- preemption ticks (struct ember_preempt in ember/abi.h) --- */

static volatile struct ember_preempt *preempt_block(struct vcpu *v)
{
	if (!v->vm->reflect_exceptions || v->vm->nr_vcpus != 1)
		return NULL; /* only the micro guest asks, on one vCPU */
	return mem_gpa_to_hva(&v->vm->kvm.mem, EMBER_PREEMPT_GPA,
			      sizeof(struct ember_preempt));
}

static void tick_set(struct vcpu *v, uint64_t ns)
{
	struct itimerspec it = {
		.it_interval = { (time_t)(ns / 1000000000u),
				 (long)(ns % 1000000000u) },
		.it_value = { (time_t)(ns / 1000000000u),
			      (long)(ns % 1000000000u) },
	};

	if (timer_settime(v->tick_timer, 0, &it, NULL) == 0) {
		v->tick_armed = ns != 0;
		v->tick_slice_ns = ns;
	}
}

/* Before KVM_RUN: ticks run while the guest runs, if it asks for them. The
 * timer is made on first use, on the vCPU thread it signals. */
static void tick_arm(struct vcpu *v)
{
	volatile struct ember_preempt *p = preempt_block(v);
	uint64_t slice = p ? p->slice_ns : 0;

	if (slice && slice < 1000000)
		slice = 1000000; /* at most 1000 ticks a second */
	if (slice == (v->tick_armed ? v->tick_slice_ns : 0))
		return;
	if (slice && !v->tick_timer_ok) {
		struct sigevent sev;

		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify = SIGEV_THREAD_ID;
		sev.sigev_signo = EMBER_KICK_SIGNAL;
		sev._sigev_un._tid = (pid_t)gettid();
		if (timer_create(CLOCK_MONOTONIC, &sev, &v->tick_timer) < 0) {
			log_warn_rl("no preemption ticks: timer_create: %s",
				    strerror(errno));
			return;
		}
		v->tick_timer_ok = true;
	}
	if (v->tick_timer_ok)
		tick_set(v, slice);
}

/* No ticks while the guest sleeps in the VMM: an idle VM costs nothing. */
static void tick_pause(struct vcpu *v)
{
	if (v->tick_armed)
		tick_set(v, 0);
}

/* A tick fired: hand it to the guest as EMBER_VEC_PREEMPT if it runs its
 * handler's code now (not its own kernel, and at CPL3) and wants it. */
static void tick_deliver(struct vcpu *v)
{
	volatile struct ember_preempt *p = preempt_block(v);
	struct kvm_vcpu_events ev;
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	if (!p || !p->want || !v->vm->exception_entry)
		return;
	/* KVM_RUN may have stopped while an exception was being delivered
	 * (the guest touched an unbacked page just then): moving RIP now
	 * would have KVM deliver it at the new RIP. Leave that tick. */
	if (kvm_ioctl_raw(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0 ||
	    ev.exception.injected || ev.exception.pending ||
	    ev.interrupt.injected || ev.nmi.injected)
		return;
	if (kvm_ioctl_raw(v->fd, KVM_GET_REGS, &regs) < 0 ||
	    kvm_ioctl_raw(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return;
	if ((sregs.cs.selector & 3) != 3 ||
	    (regs.rip >= p->text_start && regs.rip < p->text_end))
		return; /* the guest's own code: the next tick will do */
	reflect(v, &regs, &sregs, sregs.cs.selector, sregs.ss.selector,
		EMBER_VEC_PREEMPT, 0, 0);
	p->ticks++;
}

/* EMBER_HC_WAIT: sleep until a device signals, the VM stops or pauses, or
 * the timeout (ns) passes. Returns 1 when woken by a device, 0 otherwise
 * (a pause then parks the vCPU as soon as the exit is done). */
static int64_t hypercall_wait(struct vcpu *v, uint64_t timeout_ns)
{
	struct ember_vm *vm = v->vm;
	struct pollfd p[3] = {
		{ .fd = vm->wake_fd, .events = POLLIN },
		{ .fd = vm->stop_fd, .events = POLLIN },
		{ .fd = v->kick_fd, .events = POLLIN },
	};
	struct timespec ts, *tsp = NULL;
	uint64_t val;
	int n;

	tick_pause(v);
	if (timeout_ns) {
		/* In ns, as asked (a thread's 200 us sleep must not become a
		 * millisecond), and capped so that nothing wraps: a guest
		 * asking for ~2^64 ns means "as long as you can" (an hour,
		 * then it looks again), not 0. */
		uint64_t ns = timeout_ns > 3600000000000ULL ? 3600000000000ULL :
							      timeout_ns;

		ts.tv_sec = (time_t)(ns / 1000000000u);
		ts.tv_nsec = (long)(ns % 1000000000u);
		tsp = &ts;
	}
	/* A pause asked for before we got here was kicked through the
	 * eventfd too: ppoll() returns at once then, nothing is lost. */
	n = ppoll(p, 3, tsp, NULL);
	if (n > 0 && (p[2].revents & POLLIN))
		drain_kicks(v);
	if (n > 0 && (p[0].revents & POLLIN)) {
		if (read(vm->wake_fd, &val, sizeof(val)) < 0)
			return 0;
		return 1;
	}
	return 0;
}

/*
 * EMBER_HC_FLUSH_TLB. KVM has no "flush this vCPU's TLB" call, but a new CR3
 * value makes KVM_SET_SREGS reset the vCPU's MMU context, and reloading it
 * flushes the current translations (kvm_mmu_load: flush_tlb_current, with
 * shadow paging and with EPT/NPT alike). CR3's PWT bit is flipped and put
 * back: two resets, the vCPU never runs in between.
 */
static int64_t hypercall_flush_tlb(struct vcpu *v)
{
	struct kvm_sregs s;

	if (kvm_ioctl_raw(v->fd, KVM_GET_SREGS, &s) < 0)
		return -5; /* EIO */
	s.cr3 ^= 0x8;
	if (kvm_ioctl_raw(v->fd, KVM_SET_SREGS, &s) < 0)
		return -5;
	s.cr3 ^= 0x8;
	if (kvm_ioctl_raw(v->fd, KVM_SET_SREGS, &s) < 0) {
		vm_request_stop(v->vm, EMBER_EXIT_VMM_ERROR, 0, 0,
				"cannot restore CR3 after a TLB flush");
		return -5;
	}
	return 0;
}

/* --snapshot-at-ready: on the vCPU thread, complete the READY hypercall's
 * exit, write the snapshot and end the VM. One vCPU (plain guests). */
static void snapshot_here(struct vcpu *v)
{
	struct ember_vm *vm = v->vm;
	char err[512];
	int ret;

	ret = vcpu_complete_exit(v);
	if (!ret)
		ret = vm_snapshot_at(vm, vm->snapshot_at_ready_fd, err,
				     sizeof(err));
	else
		snprintf(err, sizeof(err), "cannot complete the exit: %s",
			 strerror(-ret));
	if (ret < 0)
		vm_request_stop(vm, EMBER_EXIT_VMM_ERROR, 0, 0,
				"snapshot at READY failed: %s", err);
	else
		vm_request_stop(vm, EMBER_EXIT_POWEROFF, 0, 0,
				"snapshot written to %s at READY",
				vm->snapshot_at_ready);
}

static void handle_hypercall(struct vcpu *v, uint32_t op)
{
	struct ember_vm *vm = v->vm;
	struct ember_hypercall *hc;

	hc = mem_gpa_to_hva(&vm->kvm.mem, EMBER_HCALL_GPA, sizeof(*hc));
	if (!hc)
		return;
	switch (op) {
	case EMBER_HC_WAIT:
		hc->ret = hypercall_wait(v, hc->arg0);
		break;
	case EMBER_HC_FLUSH_TLB:
		hc->ret = hypercall_flush_tlb(v);
		break;
	case EMBER_HC_READY:
		log_info("guest is ready");
		hc->ret = 0;
		pthread_mutex_lock(&vm->lock);
		vm->guest_ready = true;
		pthread_cond_broadcast(&vm->cond);
		pthread_mutex_unlock(&vm->lock);
		if (vm->snapshot_at_ready)
			snapshot_here(v);
		break;
	default:
		log_warn_rl("unknown hypercall %u", op);
		hc->ret = -38; /* ENOSYS, as the guest sees it */
		break;
	}
}

/* Ember's own ports, handled here rather than on the bus because they need
 * the vCPU (registers) and the VM (stop). */
static bool handle_ember_port(struct vcpu *v, uint16_t port, uint8_t *data,
			      uint32_t size, bool is_write)
{
	struct ember_vm *vm = v->vm;
	uint32_t val = 0;

	if (vm->boot != BOOT_PLAIN)
		return false;
	if (port != EMBER_PORT_EXCEPTION && port != EMBER_PORT_EXIT &&
	    port != EMBER_PORT_HYPERCALL)
		return false;
	if (!is_write) {
		memset(data, 0xff, size);
		return true;
	}
	memcpy(&val, data, size > 4 ? 4 : size);
	switch (port) {
	case EMBER_PORT_EXCEPTION:
		handle_exception(v, val & 0xff);
		break;
	case EMBER_PORT_EXIT:
		if (val == 0)
			vm_request_stop(vm, EMBER_EXIT_POWEROFF, 0, 0,
					"guest exited with status 0");
		else
			vm_request_stop(vm, EMBER_EXIT_GUEST_STATUS, (int)val,
					vcpu_rip(v),
					"guest exited with status %u", val);
		break;
	default:
		handle_hypercall(v, val);
		break;
	}
	return true;
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (handle_ember_port(v, run->io.port, data, run->io.size,
				      is_write))
			continue;
		if (bus_dispatch(&v->vm->pio, run->io.port, data, run->io.size,
				 is_write) == -ENOENT) {
			/* A PC has many ports nobody here emulates (POST
			 * code 0x80, PIT speaker 0x61...): reads float high,
			 * writes vanish. */
			if (!is_write)
				memset(data, 0xff, run->io.size);
		}
	}
}

static void handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint64_t addr = run->mmio.phys_addr;
	uint32_t len = run->mmio.len;
	int ret;

	if (len > 8) {
		vm_request_stop(v->vm, EMBER_EXIT_EMULATION, 0, vcpu_rip(v),
				"MMIO access of %u bytes at 0x%llx", len,
				(unsigned long long)addr);
		return;
	}
	ret = bus_dispatch(&v->vm->mmio, addr, run->mmio.data, len,
			   run->mmio.is_write);
	if (ret == -ENOENT)
		vm_request_stop(v->vm, EMBER_EXIT_MMIO_UNMAPPED, 0, vcpu_rip(v),
				"guest %s %u bytes at unmapped MMIO address "
				"0x%llx (RIP 0x%llx)",
				run->mmio.is_write ? "wrote" : "read", len,
				(unsigned long long)addr,
				(unsigned long long)vcpu_rip(v));
	else if (ret < 0)
		vm_request_stop(v->vm, EMBER_EXIT_VMM_ERROR, 0, vcpu_rip(v),
				"device at MMIO 0x%llx failed: %s",
				(unsigned long long)addr, strerror(-ret));
}

static void report_internal_error(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct kvm_regs regs;
	char extra[160] = "";

	if (kvm_ioctl_raw(v->fd, KVM_GET_REGS, &regs) < 0)
		memset(&regs, 0, sizeof(regs));
	if (run->internal.ndata >= 1)
		snprintf(extra, sizeof(extra), ", data[0] 0x%llx",
			 (unsigned long long)run->internal.data[0]);
	vm_request_stop(v->vm, EMBER_EXIT_EMULATION, 0, regs.rip,
			"KVM internal error, suberror %u (%s)%s at RIP 0x%llx, "
			"RSP 0x%llx, RAX 0x%llx",
			run->internal.suberror,
			run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ?
				"instruction emulation failed" : "other",
			extra, (unsigned long long)regs.rip,
			(unsigned long long)regs.rsp,
			(unsigned long long)regs.rax);
}

static void handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct ember_vm *vm = v->vm;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(v);
		break;
	case KVM_EXIT_MMIO:
		handle_mmio(v);
		break;
	case KVM_EXIT_HLT:
		/* Only without the in-kernel irqchip: nothing can wake us. */
		vm_request_stop(vm, EMBER_EXIT_POWEROFF, 0, vcpu_rip(v),
				"guest halted with no interrupt source");
		break;
	case KVM_EXIT_SHUTDOWN:
		vm_request_stop(vm, EMBER_EXIT_TRIPLE_FAULT, 0, vcpu_rip(v),
				"guest triple fault (KVM_EXIT_SHUTDOWN) on vCPU "
				"%u, RIP 0x%llx", v->id,
				(unsigned long long)vcpu_rip(v));
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ||
		    run->system_event.type == KVM_SYSTEM_EVENT_RESET)
			vm_request_stop(vm, EMBER_EXIT_POWEROFF, 0, 0,
					"guest %s",
					run->system_event.type ==
							KVM_SYSTEM_EVENT_RESET ?
						"reset" : "shut down");
		else
			vm_request_stop(vm, EMBER_EXIT_TRIPLE_FAULT, 0,
					vcpu_rip(v),
					"guest system event %u (crash)",
					run->system_event.type);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		report_internal_error(v);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		vm_request_stop(vm, EMBER_EXIT_EMULATION, 0, vcpu_rip(v),
				"KVM_RUN failed to enter the guest, hardware "
				"reason 0x%llx",
				(unsigned long long)run->fail_entry
					.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTR:
		break;
	default:
		vm_request_stop(vm, EMBER_EXIT_UNKNOWN, 0, vcpu_rip(v),
				"unhandled KVM exit %u on vCPU %u at RIP 0x%llx",
				run->exit_reason, v->id,
				(unsigned long long)vcpu_rip(v));
		break;
	}
}

int vcpu_complete_exit(struct vcpu *v)
{
	int ret = 0, run;

	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	run = kvm_ioctl_raw(v->fd, KVM_RUN, 0);
	if (run != -EINTR && run != -EAGAIN)
		ret = -EIO; /* KVM_RUN must return -EINTR at once here */
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	return ret;
}

/* Parks this vCPU while a pause is requested. */
static void vcpu_park(struct vcpu *v)
{
	struct ember_vm *vm = v->vm;

	if (vcpu_complete_exit(v) < 0)
		log_warn("vCPU %u: pending exit not completed before pause",
			 v->id);
	/* This pause's kick is consumed: the next WAIT must sleep. */
	drain_kicks(v);
	pthread_mutex_lock(&vm->lock);
	vm->vcpus_paused++;
	pthread_cond_broadcast(&vm->cond);
	while (vm->pause_requested && !vm->stopping)
		pthread_cond_wait(&vm->cond, &vm->lock);
	vm->vcpus_paused--;
	pthread_mutex_unlock(&vm->lock);
}

static bool vm_is_stopping(struct ember_vm *vm)
{
	return __atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE);
}

static bool is_crash(enum ember_exit_reason r)
{
	return r == EMBER_EXIT_EXCEPTION || r == EMBER_EXIT_TRIPLE_FAULT ||
	       r == EMBER_EXIT_MMIO_UNMAPPED || r == EMBER_EXIT_EMULATION ||
	       r == EMBER_EXIT_UNKNOWN;
}

/* After this vCPU crashed the VM: its registers, for the report (an
 * exception already recorded the faulting context's). */
static void record_registers(struct vcpu *v)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (v->vm->exit.registers[0] ||
	    kvm_ioctl_raw(v->fd, KVM_GET_REGS, &r) < 0 ||
	    kvm_ioctl_raw(v->fd, KVM_GET_SREGS, &s) < 0)
		return;
	format_registers(v, &r, &s);
}

/*
 * A shell's vCPU thread is started ahead (vm_prestart_threads) and waits
 * here until the restored VM starts; false when the shell is destroyed
 * unrestored (the thread never counted as running). Before it waits it
 * makes its first KVM_RUN, with immediate_exit set: KVM then does its
 * once-per-VM and once-per-thread work and returns -EINTR without entering
 * the guest. On x86 that work is starting the VM's NX-huge-page recovery
 * worker (a new task in this process, which inherits this thread's
 * seccomp filter) and taking this thread as the vCPU's. It must be this
 * thread: made by the thread that creates the shell, it cost the restore
 * 1.5 ms more, not less (KVM handing the vCPU to another task; this
 * host's kernel waits for an RCU grace period there). A vCPU that never entered the guest still takes KVM_SET_CPUID2,
 * so the restore may set its CPUID after this. Measured: docs/benchmarks.md.
 */
static bool wait_for_go(struct vcpu *v)
{
	struct ember_vm *vm = v->vm;
	bool go;

	pthread_mutex_lock(&vm->lock);
	if (!vm->go && !vm->stopping) {
		pthread_mutex_unlock(&vm->lock);
		if (vcpu_complete_exit(v) < 0)
			log_warn("vCPU %u: the first KVM_RUN, made ahead, did "
				 "not return -EINTR", v->id);
		pthread_mutex_lock(&vm->lock);
	}
	while (!vm->go && !vm->stopping)
		pthread_cond_wait(&vm->cond, &vm->lock);
	go = vm->go;
	pthread_mutex_unlock(&vm->lock);
	return go;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct ember_vm *vm = v->vm;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", v->id);
	pthread_setname_np(pthread_self(), name);
	ember_thread_serving(EMBER_THREAD_VCPU); /* setup ends here */
	if (!wait_for_go(v))
		return NULL;
	while (!vm_is_stopping(vm)) {
		int ret;

		if (__atomic_load_n(&vm->pause_requested, __ATOMIC_ACQUIRE)) {
			vcpu_park(v);
			continue;
		}
		tick_arm(v);
		/* The result carries the errno: tick_deliver()'s own ioctls
		 * below cannot change what this one said. */
		ret = kvm_ioctl_raw(v->fd, KVM_RUN, 0);
		if (tick_due) {
			tick_due = 0;
			if (ret == -EINTR)
				tick_deliver(v);
		}
		if (ret < 0) {
			if (ret == -EINTR || ret == -EAGAIN) {
				__atomic_store_n(&v->run->immediate_exit, 0,
						 __ATOMIC_SEQ_CST);
				continue;
			}
			vm_request_stop(vm, EMBER_EXIT_VMM_ERROR, 0, 0,
					"KVM_RUN on vCPU %u: %s", v->id,
					strerror(-ret));
			break;
		}
		handle_exit(v);
	}
	if (v->tick_timer_ok)
		timer_delete(v->tick_timer);
	v->tick_timer_ok = v->tick_armed = false;
	/* The winner of vm_request_stop is the only writer of vm->exit. */
	if (pthread_equal(vm->stop_thread, pthread_self()) &&
	    is_crash(vm->exit.reason))
		record_registers(v);
	pthread_mutex_lock(&vm->lock);
	vm->vcpus_running--;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	sigset_t set, old;
	int ret;

	/* The new thread inherits this mask: keep the kick signal unblocked
	 * there. */
	sigemptyset(&set);
	sigaddset(&set, EMBER_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, &old);
	ret = -pthread_create(&v->thread, NULL, vcpu_thread, v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret == 0)
		v->thread_started = true;
	return ret;
}

void vcpu_join(struct vcpu *v)
{
	if (v->thread_started)
		pthread_join(v->thread, NULL);
	v->thread_started = false;
}
