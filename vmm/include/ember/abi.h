/*
 * ember/abi.h - the guest ABI of Ember's VMM: the machine a guest sees.
 *
 * Owns: guest-physical layout, I/O ports, the virtio-mmio window range and the
 * boot-info block handed to plain-ELF guests. Shared, unchanged, by the VMM,
 * the test guests, the guest drivers and the micro guest, so it is C99 with
 * fixed-width types only and no host headers. docs/guest-abi.md explains it.
 * Any layout change bumps EMBER_BOOT_INFO_VERSION.
 */
#ifndef EMBER_ABI_H
#define EMBER_ABI_H

#include <stdint.h>

/* Guest RAM starts at 0. RAM above EMBER_LOW_RAM_MAX continues at 4 GiB so
 * that [3 GiB, 4 GiB) stays free for MMIO, as on a PC. */
#define EMBER_LOW_RAM_MAX 0xc0000000ULL
#define EMBER_HIGH_RAM_BASE 0x100000000ULL

/* virtio-mmio windows: device i lives at BASE + i * SIZE and, for guests that
 * take interrupts, raises GSI EMBER_VIRTIO_IRQ_BASE + i. */
#define EMBER_VIRTIO_MMIO_BASE 0xd0000000ULL
#define EMBER_VIRTIO_MMIO_SIZE 0x1000ULL
#define EMBER_VIRTIO_MAX_DEVICES 16
#define EMBER_VIRTIO_IRQ_BASE 5

/* An address in the MMIO hole that no device answers: accesses stop the VM. */
#define EMBER_UNMAPPED_MMIO 0xc0000000ULL

/* PC ports the VMM emulates. */
#define EMBER_PORT_COM1 0x3f8
#define EMBER_PORT_I8042_DATA 0x60
#define EMBER_PORT_I8042_CMD 0x64
#define EMBER_I8042_CMD_RESET 0xfe

/*
 * Ember's own ports, registered for plain-ELF guests only.
 * EXCEPTION: written by the VMM's exception stubs (the value is the vector);
 *   the VMM reads the exception frame from the guest stack and stops the VM.
 * EXIT: a 32-bit write ends the VM with that value as the guest exit status
 *   (0 = clean power-off), an alternative to the i8042 reset.
 * HYPERCALL: reserved for the micro guest (see guest-micro/).
 */
#define EMBER_PORT_EXCEPTION 0xe0
#define EMBER_PORT_EXIT 0xe4
#define EMBER_PORT_HYPERCALL 0xe8

/*
 * Hypercalls: the guest fills struct ember_hypercall at EMBER_HCALL_GPA, then
 * writes the op (32 bits) to EMBER_PORT_HYPERCALL; when the `out` returns,
 * `ret` holds the result. One page, no register traffic, so a hypercall costs
 * one port-I/O exit.
 *   EMBER_HC_WAIT(arg0 = timeout in ns, 0 = none): sleeps until a virtio
 *     device pushed used buffers (any queue) since the last WAIT, or the
 *     timeout. ret = 1 woken, 0 timed out.
 *   EMBER_HC_READY: the guest is initialized and waits for its first
 *     request (the point a snapshot is taken). ret = 0.
 *   EMBER_HC_FLUSH_TLB: drops every cached translation of the vCPU (a CPL3
 *     guest cannot: INVLPG and CR3 writes are privileged), so that page
 *     table entries the guest cleared or changed take effect. ret = 0.
 */
#define EMBER_HC_WAIT 1
#define EMBER_HC_READY 2
#define EMBER_HC_FLUSH_TLB 3
struct ember_hypercall {
	uint64_t arg0, arg1, arg2;
	int64_t ret;
};

/*
 * A reflected exception's interrupted context, complete: the VMM writes it
 * at EMBER_XFRAME_GPA before it resumes the guest at exception_entry (see
 * EMBER_NOTE_ENTRIES), so that a guest can resume the faulting code (after
 * mapping a page, or through a signal handler) with every register as it
 * was. Valid until the guest's next exception; one vCPU.
 */
struct ember_xframe {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags, cs, ss;
	uint64_t vector, error_code, cr2;
};

/*
 * Preemption ticks, for a guest that runs code it does not trust to yield
 * (the micro guest's handler threads) and takes no interrupts. The guest
 * fills struct ember_preempt at EMBER_PREEMPT_GPA (plain stores, read by
 * the VMM before each KVM_RUN and at each tick; snapshots carry it):
 *   slice_ns            0 = no ticks; else the VMM interrupts the vCPU
 *                       every slice_ns of guest running time (never while
 *                       it waits in EMBER_HC_WAIT);
 *   text_start/text_end the guest kernel's code: a tick that finds RIP in
 *                       there (or CS.RPL != 3) is dropped;
 *   want                0 = drop ticks for now (one runnable thread and
 *                       nothing to watch).
 * A tick that is not dropped is reflected like an exception with vector
 * EMBER_VEC_PREEMPT (no error code, CR2 0, the context in struct
 * ember_xframe), so the guest can switch threads and resume the
 * interrupted code with every register. `ticks` counts reflected ticks.
 */
#define EMBER_VEC_PREEMPT 32
struct ember_preempt {
	uint64_t slice_ns;
	uint64_t text_start, text_end;
	uint32_t want;
	uint32_t reserved;
	uint64_t ticks;
};

/* Fixed low-memory layout of a plain-ELF guest (all below 1 MiB). Page 0 is
 * never mapped so that a null dereference faults. */
#define EMBER_GDT_GPA 0x1000ULL
#define EMBER_IDT_GPA 0x2000ULL
#define EMBER_TSS_GPA 0x3000ULL
#define EMBER_STUBS_GPA 0x4000ULL
#define EMBER_BOOT_INFO_GPA 0x5000ULL
#define EMBER_HCALL_GPA 0x5800ULL
#define EMBER_XFRAME_GPA 0x5c00ULL /* struct ember_xframe */
#define EMBER_PREEMPT_GPA 0x5900ULL /* struct ember_preempt */
#define EMBER_EXC_STACK_TOP 0x8000ULL /* RSP0 and IST1 for exceptions */
#define EMBER_PML4_GPA 0x9000ULL
#define EMBER_PDPT_GPA 0xa000ULL
#define EMBER_PD_GPA 0xb000ULL /* 4 pages: 4 GiB in 2 MiB pages */
#define EMBER_PT0_GPA 0xf000ULL /* 4 KiB pages of the first 2 MiB */
#define EMBER_CMDLINE_GPA 0x10000ULL
#define EMBER_CMDLINE_MAX 4096
/* Plain-ELF PT_LOAD segments must lie in [EMBER_ELF_MIN_GPA, end of RAM). */
#define EMBER_ELF_MIN_GPA 0x100000ULL

/* Segment selectors of the plain-ELF GDT. The order suits SYSCALL/SYSRET:
 * STAR.SYSRET_CS = EMBER_SEL_USER32, so SS = +8 and 64-bit CS = +16. */
#define EMBER_SEL_KCODE 0x08
#define EMBER_SEL_KDATA 0x10
#define EMBER_SEL_USER32 0x18
#define EMBER_SEL_UDATA 0x20
#define EMBER_SEL_UCODE 0x28
#define EMBER_SEL_TSS 0x30

#define EMBER_BOOT_INFO_MAGIC 0x544f4f4252424d45ULL /* "EMBRBOOT" */
#define EMBER_BOOT_INFO_VERSION 1

struct ember_boot_virtio {
	uint64_t gpa;   /* window base */
	uint32_t irq;   /* GSI, unused by polling guests */
	uint32_t device_id; /* virtio device type (2 = blk, 19 = vsock) */
};

/*
 * Handed to a plain-ELF guest in RDI at entry (and found at
 * EMBER_BOOT_INFO_GPA). Everything a guest needs to know about its machine.
 */
struct ember_boot_info {
	uint64_t magic;
	uint32_t version;
	uint32_t cpl;            /* privilege level the guest was started at */
	uint64_t low_ram_size;   /* RAM [0, low_ram_size) */
	uint64_t high_ram_size;  /* RAM [4 GiB, 4 GiB + high_ram_size) */
	uint64_t cmdline_gpa;    /* NUL-terminated */
	uint64_t tsc_khz;        /* 0 if unknown */
	uint64_t seed[4];        /* 256 bits of host entropy */
	uint64_t wall_ns;        /* host CLOCK_REALTIME at boot */
	uint64_t image_end;      /* first page past the loaded ELF image */
	uint64_t initrd_gpa;     /* a second boot module, 0 if none */
	uint64_t initrd_size;
	uint32_t nr_virtio;
	uint32_t reserved;
	struct ember_boot_virtio virtio[EMBER_VIRTIO_MAX_DEVICES];
	/*
	 * Clock and clone identity. wall_ns was the host's CLOCK_REALTIME when
	 * the guest's TSC read wall_tsc. Each restore from a snapshot
	 * increments `generation` and rewrites seed[], wall_ns and wall_tsc
	 * before the vCPU runs again (like VMGenID): a guest that sees the
	 * generation change knows it is a new clone, reseeds its entropy and
	 * resets its clock from these fields. Written by the VMM only while
	 * the vCPU is stopped; the guest reads generation last-to-first
	 * (read generation, then the rest).
	 */
	uint64_t wall_tsc;
	uint64_t generation;
	/* The exception entry from the ELF note (0: none), kept by the VMM
	 * across snapshots. Guests ignore it. */
	uint64_t exception_entry;
};

/*
 * A plain-ELF guest that handles its own system calls and exceptions (the
 * micro guest) carries an ELF note named "Ember" of this type. The VMM then
 * points MSR_LSTAR at syscall_entry (SYSCALL enabled in EFER, STAR set for
 * the GDT above, SFMASK clearing TF|DF|IF|AC), and reflects every exception
 * to exception_entry at the guest's CPL with:
 *   rdi = vector, rsi = error code (0 if none), rdx = faulting RIP,
 *   rcx = CR2 (page faults), r8 = faulting RSP, rsp = the faulting RSP
 *   rounded down to 16 and lowered by 256 bytes (red zone and scratch),
 *   and the whole interrupted context in struct ember_xframe.
 * Without the note, an exception ends the VM with a report.
 */
#define EMBER_NOTE_NAME "Ember"
#define EMBER_NOTE_ENTRIES 0x454d4201
struct ember_entries_note {
	uint64_t syscall_entry;
	uint64_t exception_entry;
};

#endif
