/*
 * linux.h - loading a Linux x86-64 kernel (vmlinux ELF) for the 64-bit boot
 * protocol (Documentation/x86/boot.rst, "64-bit Boot Protocol", and
 * Documentation/x86/zero-page.rst of Linux 6.1).
 *
 * Owns: the zero page (struct boot_params) with its e820 map, the kernel
 * command line, the initrd placement and the Intel MultiProcessor table
 * (MP spec 1.4) that tells the kernel about CPUs and the IOAPIC without ACPI.
 * Does not own: the CPU state at entry (64-bit mode, GDT with CS=0x10 and
 * DS=0x18, identity page tables at 0x9000.., RSI = zero page, interrupts off)
 * nor the command line additions for devices and PVM hosts: the VM core
 * does that. Pure functions over a struct guest_mem; any thread, at setup.
 *
 * Guest-physical layout below 1 MiB used for a Linux guest:
 *   0x1000 GDT (VM core)            0x7000 zero page (here)
 *   0x9000-0xffff page tables (VM core)   0x20000 command line (here)
 *   0x9fc00-0x100000 EBDA + BIOS area, reserved in e820: the MP table (here)
 * The kernel's PT_LOAD segments must lie at or above 1 MiB in low RAM.
 */
#ifndef EMBER_X86_LINUX_H
#define EMBER_X86_LINUX_H

#include <stddef.h>
#include <stdint.h>

#include "../mem.h"

#define LINUX_ZERO_PAGE_GPA 0x7000ULL
#define LINUX_CMDLINE_GPA 0x20000ULL
/* COMMAND_LINE_SIZE of x86 Linux; a vmlinux has no setup header telling
 * cmdline_size, so this is what we write there. Includes the NUL. */
#define LINUX_CMDLINE_MAX 2048
#define LINUX_MPTABLE_GPA 0x9fc00ULL /* last KiB of base memory (EBDA) */
#define LINUX_EBDA_END 0x100000ULL  /* EBDA, VGA hole, BIOS: reserved */
#define LINUX_KERNEL_MIN_GPA 0x100000ULL
/* The MP table must fit in [LINUX_MPTABLE_GPA, 0xa0000): 1 KiB. */
#define LINUX_MAX_CPUS 32
/* A 64-bit kernel's initrd_addr_max (arch/x86/boot/header.S): the highest
 * byte an initrd may occupy. */
#define LINUX_INITRD_ADDR_MAX 0x7fffffffULL

/* e820 types (zero-page.rst, "e820_table"). */
#define LINUX_E820_RAM 1
#define LINUX_E820_RESERVED 2
#define LINUX_E820_MAX 128 /* E820_MAX_ENTRIES_ZEROPAGE */

struct linux_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/* struct setup_header at boot_params offset 0x1f1 (boot.rst, "The Real-Mode
 * Kernel Header"); offsets asserted in linux.c. Only the fields a loader of
 * a 64-bit kernel writes are named; the rest are kept as padding-free
 * fields so the layout is the kernel's. */
struct linux_setup_header {
	uint8_t setup_sects;
	uint16_t root_flags;
	uint32_t syssize;
	uint16_t ram_size;
	uint16_t vid_mode;
	uint16_t root_dev;
	uint16_t boot_flag;
	uint16_t jump;
	uint32_t header;
	uint16_t version;
	uint32_t realmode_swtch;
	uint16_t start_sys_seg;
	uint16_t kernel_version;
	uint8_t type_of_loader;
	uint8_t loadflags;
	uint16_t setup_move_size;
	uint32_t code32_start;
	uint32_t ramdisk_image;
	uint32_t ramdisk_size;
	uint32_t bootsect_kludge;
	uint16_t heap_end_ptr;
	uint8_t ext_loader_ver;
	uint8_t ext_loader_type;
	uint32_t cmd_line_ptr;
	uint32_t initrd_addr_max;
	uint32_t kernel_alignment;
	uint8_t relocatable_kernel;
	uint8_t min_alignment;
	uint16_t xloadflags;
	uint32_t cmdline_size;
	uint32_t hardware_subarch;
	uint64_t hardware_subarch_data;
	uint32_t payload_offset;
	uint32_t payload_length;
	uint64_t setup_data;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t handover_offset;
	uint32_t kernel_info_offset;
} __attribute__((packed));

/* struct boot_params, the 4 KiB "zero page" (zero-page.rst). */
struct linux_boot_params {
	uint8_t pad0[0xc0];
	uint32_t ext_ramdisk_image; /* 0x0c0: high 32 bits of ramdisk_image */
	uint32_t ext_ramdisk_size;  /* 0x0c4 */
	uint32_t ext_cmd_line_ptr;  /* 0x0c8 */
	uint8_t pad1[0x1e8 - 0xcc];
	uint8_t e820_entries;       /* 0x1e8 */
	uint8_t pad2[0x1ef - 0x1e9];
	uint8_t sentinel;           /* 0x1ef: must be 0 (else the kernel wipes
				     * fields it thinks a sloppy loader left) */
	uint8_t pad3;
	struct linux_setup_header hdr; /* 0x1f1 */
	uint8_t pad4[0x2d0 - 0x1f1 - sizeof(struct linux_setup_header)];
	struct linux_e820_entry e820_table[LINUX_E820_MAX]; /* 0x2d0 */
	uint8_t pad5[0x1000 - 0xcd0];
} __attribute__((packed));

/* Values of the setup header fields we set (boot.rst). */
#define LINUX_BOOT_FLAG 0xaa55
#define LINUX_HDR_MAGIC 0x53726448 /* "HdrS" */
#define LINUX_BOOT_VERSION 0x020f  /* protocol 2.15 (Linux 6.1) */
#define LINUX_LOADER_UNDEFINED 0xff
#define LINUX_LOADED_HIGH 0x01
#define LINUX_KERNEL_ALIGN 0x200000

struct linux_load_args {
	const void *kernel;  /* the vmlinux file in host memory (hostile) */
	size_t kernel_len;
	const char *cmdline; /* NUL-terminated; NULL = empty */
	const void *initrd;  /* NULL if none */
	size_t initrd_len;
	unsigned nr_cpus;    /* 1..LINUX_MAX_CPUS; APIC ids 0..nr_cpus-1 */
};

struct linux_entry {
	uint64_t rip;           /* physical startup_64 (vmlinux e_entry) */
	uint64_t zero_page_gpa; /* goes in RSI */
};

/*
 * Loads the vmlinux at `a->kernel` into guest memory (segments at their
 * physical addresses, which must lie in [1 MiB, end of low RAM)), writes the
 * command line, the initrd (if any), the zero page and the MP table, and
 * returns the entry state in *out. Guest memory must start at gpa 0 and hold
 * at least 2 MiB of low RAM. Returns 0, or a negative errno with a one-line
 * reason in err: -ENOEXEC/-EINVAL/-E2BIG (bad ELF, from elf_parse), -ERANGE
 * (kernel does not fit / overlaps boot structures), -E2BIG (command line or
 * initrd too big), -EINVAL (bad args such as nr_cpus).
 */
int linux_load(const struct guest_mem *mem, const struct linux_load_args *a,
	       struct linux_entry *out, char *err, size_t errlen);

/*
 * The pieces, exposed for tests and for other loaders.
 */

/* Fills tab (max entries) with the e820 map of `mem`: [0, EBDA) RAM,
 * [EBDA, 1 MiB) reserved, [1 MiB, low RAM end) RAM, then high RAM at 4 GiB if
 * any. Returns the number of entries, or -EINVAL if low RAM does not start at
 * 0 or is not above 1 MiB, or max is too small. */
int linux_build_e820(const struct guest_mem *mem, struct linux_e820_entry *tab,
		     unsigned max);

/* Copies `cmdline` (NULL = "") NUL-terminated to LINUX_CMDLINE_GPA. Returns 0,
 * -E2BIG if strlen(cmdline) + 1 > LINUX_CMDLINE_MAX, -EFAULT if the page is
 * not RAM. */
int linux_write_cmdline(const struct guest_mem *mem, const char *cmdline);

/* Chooses where an initrd of `len` bytes goes: page-aligned, as high as
 * possible below min(low RAM end, LINUX_INITRD_ADDR_MAX + 1), and not below
 * `kernel_end` (one past the kernel's last byte). Returns 0 with *gpa set,
 * -E2BIG if it does not fit, -EINVAL if len is 0. */
int linux_place_initrd(const struct guest_mem *mem, uint64_t kernel_end,
		       uint64_t len, uint64_t *gpa);

/* Fills *bp (zeroed first) for a kernel with the given initrd (gpa 0 and
 * len 0 for none) and command line at LINUX_CMDLINE_GPA. Returns 0 or the
 * error of linux_build_e820. */
int linux_build_boot_params(struct linux_boot_params *bp,
			    const struct guest_mem *mem, uint64_t initrd_gpa,
			    uint64_t initrd_len);

/* Writes the MP floating pointer and configuration table for nr_cpus CPUs
 * (APIC ids 0..nr_cpus-1, CPU 0 the bootstrap processor), one ISA bus, the
 * IOAPIC (id nr_cpus, at 0xfec00000), I/O interrupt entries mapping GSIs
 * 0..LINUX_MP_MAX_GSI to the IOAPIC pin of the same number (ISA IRQs 0-15,
 * virtio GSIs up to EMBER_VIRTIO_IRQ_BASE + EMBER_VIRTIO_MAX_DEVICES - 1)
 * and the two local interrupt entries (LINT0 ExtINT, LINT1 NMI), at
 * LINUX_MPTABLE_GPA. Returns the bytes written, or -EINVAL (nr_cpus out of
 * 1..LINUX_MAX_CPUS), -EFAULT (not RAM). */
int linux_write_mptable(const struct guest_mem *mem, unsigned nr_cpus);

#define LINUX_IOAPIC_GPA 0xfec00000U
#define LINUX_LAPIC_GPA 0xfee00000U
#define LINUX_MP_MAX_GSI 20 /* 5 + 16 - 1: the last virtio GSI */

#endif
