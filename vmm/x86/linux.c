/*
 * linux.c - the Linux x86-64 64-bit boot protocol for a vmlinux ELF (see
 * linux.h). Facts relied on:
 *  - Documentation/x86/boot.rst (Linux 6.1): "64-bit Boot Protocol", the
 *    setup header fields and their offsets, initrd_addr_max, cmd_line_ptr;
 *  - Documentation/x86/zero-page.rst: the boot_params layout (e820_table at
 *    0x2d0, ext_* fields, sentinel at 0x1ef);
 *  - Intel MultiProcessor Specification 1.4, chapter 4 (MP floating pointer,
 *    configuration table header, entry types 0-4) and appendix on checksums;
 *  - Linux arch/x86/kernel/mpparse.c: where the floating pointer is searched
 *    for (the last KiB of base memory, 639 KiB = 0x9fc00, is one place).
 * Every guest write goes through mem_write()/mem_gpa_to_hva().
 */
#include "x86/linux.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "ember/abi.h"
#include "log.h"
#include "x86/elf.h"

/* The offsets the kernel reads; a layout slip here would be silent. */
_Static_assert(sizeof(struct linux_e820_entry) == 20, "e820 entry");
_Static_assert(sizeof(struct linux_boot_params) == 4096, "zero page size");
_Static_assert(offsetof(struct linux_boot_params, ext_ramdisk_image) == 0x0c0,
	       "ext_ramdisk_image");
_Static_assert(offsetof(struct linux_boot_params, ext_cmd_line_ptr) == 0x0c8,
	       "ext_cmd_line_ptr");
_Static_assert(offsetof(struct linux_boot_params, e820_entries) == 0x1e8,
	       "e820_entries");
_Static_assert(offsetof(struct linux_boot_params, sentinel) == 0x1ef,
	       "sentinel");
_Static_assert(offsetof(struct linux_boot_params, hdr) == 0x1f1, "hdr");
_Static_assert(offsetof(struct linux_boot_params, e820_table) == 0x2d0,
	       "e820_table");
#define HDR_OFF(f) (0x1f1 + offsetof(struct linux_setup_header, f))
_Static_assert(HDR_OFF(vid_mode) == 0x1fa, "vid_mode");
_Static_assert(HDR_OFF(boot_flag) == 0x1fe, "boot_flag");
_Static_assert(HDR_OFF(header) == 0x202, "header");
_Static_assert(HDR_OFF(version) == 0x206, "version");
_Static_assert(HDR_OFF(type_of_loader) == 0x210, "type_of_loader");
_Static_assert(HDR_OFF(loadflags) == 0x211, "loadflags");
_Static_assert(HDR_OFF(ramdisk_image) == 0x218, "ramdisk_image");
_Static_assert(HDR_OFF(ramdisk_size) == 0x21c, "ramdisk_size");
_Static_assert(HDR_OFF(cmd_line_ptr) == 0x228, "cmd_line_ptr");
_Static_assert(HDR_OFF(initrd_addr_max) == 0x22c, "initrd_addr_max");
_Static_assert(HDR_OFF(kernel_alignment) == 0x230, "kernel_alignment");
_Static_assert(HDR_OFF(cmdline_size) == 0x238, "cmdline_size");
_Static_assert(HDR_OFF(setup_data) == 0x250, "setup_data");
_Static_assert(HDR_OFF(kernel_info_offset) == 0x268, "kernel_info_offset");

_Static_assert(LINUX_MP_MAX_GSI ==
		       EMBER_VIRTIO_IRQ_BASE + EMBER_VIRTIO_MAX_DEVICES - 1,
	       "the MP table must route every virtio GSI");
_Static_assert(LINUX_MP_MAX_GSI < 24, "KVM's IOAPIC has 24 pins");

#define PAGE_SIZE 0x1000ULL

/* --- MP table (Intel MP spec 1.4, section 4) ------------------------------ */

struct mp_floating {         /* 4.1, 16 bytes */
	char signature[4];   /* "_MP_" */
	uint32_t physptr;    /* configuration table */
	uint8_t length;      /* in 16-byte units: 1 */
	uint8_t spec_rev;    /* 4 = version 1.4 */
	uint8_t checksum;    /* all 16 bytes sum to 0 */
	uint8_t feature[5];  /* feature1 = 0: a configuration table exists */
} __attribute__((packed));

struct mp_config {           /* 4.2, 44 bytes */
	char signature[4];   /* "PCMP" */
	uint16_t length;     /* header + base entries */
	uint8_t spec_rev;
	uint8_t checksum;    /* base table sums to 0 */
	char oem[8];
	char product[12];
	uint32_t oem_table;
	uint16_t oem_table_size;
	uint16_t entry_count;
	uint32_t lapic_addr;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mp_cpu {              /* 4.3.1, type 0, 20 bytes */
	uint8_t type;
	uint8_t apic_id;
	uint8_t apic_ver;
	uint8_t flags;       /* bit 0 enabled, bit 1 bootstrap processor */
	uint32_t signature;  /* family/model/stepping */
	uint32_t features;   /* CPUID.1:EDX */
	uint32_t reserved[2];
} __attribute__((packed));

struct mp_bus {              /* 4.3.2, type 1, 8 bytes */
	uint8_t type;
	uint8_t bus_id;
	char bus_type[6];    /* "ISA   " */
} __attribute__((packed));

struct mp_ioapic {           /* 4.3.3, type 2, 8 bytes */
	uint8_t type;
	uint8_t apic_id;
	uint8_t apic_ver;
	uint8_t flags;       /* bit 0 enabled */
	uint32_t addr;
} __attribute__((packed));

struct mp_irq {              /* 4.3.4/4.3.5, types 3 and 4, 8 bytes */
	uint8_t type;
	uint8_t irq_type;    /* 0 INT, 1 NMI, 2 SMI, 3 ExtINT */
	uint16_t flags;      /* 0: polarity and trigger conform to the bus */
	uint8_t src_bus;
	uint8_t src_irq;
	uint8_t dst_apic;    /* 0xff: all local APICs (type 4) */
	uint8_t dst_pin;
} __attribute__((packed));

_Static_assert(sizeof(struct mp_floating) == 16, "MP floating pointer");
_Static_assert(sizeof(struct mp_config) == 44, "MP config header");
_Static_assert(sizeof(struct mp_cpu) == 20, "MP processor entry");
_Static_assert(sizeof(struct mp_bus) == 8 && sizeof(struct mp_ioapic) == 8 &&
		       sizeof(struct mp_irq) == 8,
	       "MP 8-byte entries");

enum { MP_CPU = 0, MP_BUS, MP_IOAPIC, MP_IOINT, MP_LINT };
#define MP_SPEC_REV 4
#define MP_APIC_VER 0x14   /* integrated local APIC */
#define MP_IOAPIC_VER 0x11 /* 82093AA-style IOAPIC */
#define MP_CPU_EN 0x01
#define MP_CPU_BSP 0x02
/* Family 6; FPU and APIC present (CPUID.1:EDX bits 0 and 9). Informational:
 * Linux takes CPU features from CPUID, not from here. */
#define MP_CPU_SIGNATURE 0x600
#define MP_CPU_FEATURES ((1u << 0) | (1u << 9))
#define MP_ISA_BUS 0
#define MP_INT 0
#define MP_NMI 1
#define MP_EXTINT 3
#define MP_AREA_END 0xa0000ULL /* the MP table stays inside the last KiB */

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += p[i];
	return (uint8_t)(0 - sum);
}

/* Bytes the table takes for nr_cpus CPUs. */
static size_t mptable_size(unsigned nr_cpus)
{
	return sizeof(struct mp_floating) + sizeof(struct mp_config) +
	       nr_cpus * sizeof(struct mp_cpu) + sizeof(struct mp_bus) +
	       sizeof(struct mp_ioapic) +
	       (LINUX_MP_MAX_GSI + 1) * sizeof(struct mp_irq) +
	       2 * sizeof(struct mp_irq);
}
_Static_assert(sizeof(struct mp_floating) + sizeof(struct mp_config) +
			       LINUX_MAX_CPUS * sizeof(struct mp_cpu) + 8 + 8 +
			       (LINUX_MP_MAX_GSI + 1 + 2) * 8 <=
		       MP_AREA_END - LINUX_MPTABLE_GPA,
	       "the MP table for LINUX_MAX_CPUS fits in the last KiB");

int linux_write_mptable(const struct guest_mem *mem, unsigned nr_cpus)
{
	uint8_t buf[MP_AREA_END - LINUX_MPTABLE_GPA];
	struct mp_floating mpf;
	struct mp_config mpc;
	size_t pos, size;
	uint8_t ioapic_id;

	if (nr_cpus < 1 || nr_cpus > LINUX_MAX_CPUS)
		return -EINVAL;
	size = mptable_size(nr_cpus);
	ioapic_id = (uint8_t)nr_cpus; /* after the CPUs' APIC ids */
	memset(buf, 0, sizeof(buf));
	pos = sizeof(mpf) + sizeof(mpc);

	for (unsigned i = 0; i < nr_cpus; i++) {
		struct mp_cpu c = {
			.type = MP_CPU,
			.apic_id = (uint8_t)i,
			.apic_ver = MP_APIC_VER,
			.flags = MP_CPU_EN | (i == 0 ? MP_CPU_BSP : 0),
			.signature = MP_CPU_SIGNATURE,
			.features = MP_CPU_FEATURES,
		};
		memcpy(buf + pos, &c, sizeof(c));
		pos += sizeof(c);
	}
	{
		struct mp_bus b = { .type = MP_BUS, .bus_id = MP_ISA_BUS };
		struct mp_ioapic io = { .type = MP_IOAPIC, .apic_id = ioapic_id,
					.apic_ver = MP_IOAPIC_VER, .flags = 1,
					.addr = LINUX_IOAPIC_GPA };

		memcpy(b.bus_type, "ISA   ", 6);
		memcpy(buf + pos, &b, sizeof(b));
		pos += sizeof(b);
		memcpy(buf + pos, &io, sizeof(io));
		pos += sizeof(io);
	}
	/* GSI n -> IOAPIC pin n for every GSI a device can raise: that is
	 * KVM's default routing after KVM_CREATE_IRQCHIP (GSI n goes to
	 * IOAPIC pin n, and to PIC pin n for n < 16), so the kernel's view and
	 * KVM's agree, including the PIT on GSI 0. GSIs 16..20 are virtio
	 * devices beyond the ISA range; they are declared on the ISA bus too
	 * (edge-triggered, active high: what irqfd delivers). */
	for (unsigned gsi = 0; gsi <= LINUX_MP_MAX_GSI; gsi++) {
		struct mp_irq e = { .type = MP_IOINT, .irq_type = MP_INT,
				    .src_bus = MP_ISA_BUS, .src_irq = (uint8_t)gsi,
				    .dst_apic = ioapic_id, .dst_pin = (uint8_t)gsi };

		memcpy(buf + pos, &e, sizeof(e));
		pos += sizeof(e);
	}
	{
		/* The PC wiring (MP spec 5.1 / figure 3-3): the 8259's output
		 * on the BSP's LINT0 as ExtINT, NMI on every CPU's LINT1. */
		struct mp_irq l0 = { .type = MP_LINT, .irq_type = MP_EXTINT,
				     .src_bus = MP_ISA_BUS, .dst_apic = 0,
				     .dst_pin = 0 };
		struct mp_irq l1 = { .type = MP_LINT, .irq_type = MP_NMI,
				     .src_bus = MP_ISA_BUS, .dst_apic = 0xff,
				     .dst_pin = 1 };

		memcpy(buf + pos, &l0, sizeof(l0));
		pos += sizeof(l0);
		memcpy(buf + pos, &l1, sizeof(l1));
		pos += sizeof(l1);
	}
	if (pos != size)
		return -EINVAL; /* cannot happen: mptable_size() disagrees */

	memset(&mpc, 0, sizeof(mpc));
	memcpy(mpc.signature, "PCMP", 4);
	mpc.length = (uint16_t)(size - sizeof(mpf));
	mpc.spec_rev = MP_SPEC_REV;
	memcpy(mpc.oem, "EMBER   ", 8);
	memcpy(mpc.product, "EMBER VMM   ", 12);
	mpc.entry_count = (uint16_t)(nr_cpus + 2 + LINUX_MP_MAX_GSI + 1 + 2);
	mpc.lapic_addr = LINUX_LAPIC_GPA;
	memcpy(buf + sizeof(mpf), &mpc, sizeof(mpc));
	/* The checksum byte is still 0 in buf, so summing it in is harmless. */
	buf[sizeof(mpf) + offsetof(struct mp_config, checksum)] =
		checksum(buf + sizeof(mpf), mpc.length);

	memset(&mpf, 0, sizeof(mpf));
	memcpy(mpf.signature, "_MP_", 4);
	mpf.physptr = (uint32_t)(LINUX_MPTABLE_GPA + sizeof(mpf));
	mpf.length = 1;
	mpf.spec_rev = MP_SPEC_REV;
	memcpy(buf, &mpf, sizeof(mpf));
	buf[offsetof(struct mp_floating, checksum)] = checksum(buf, sizeof(mpf));

	if (mem_write(mem, LINUX_MPTABLE_GPA, buf, size))
		return -EFAULT;
	return (int)size;
}

/* --- e820, command line, initrd, zero page ---------------------------------- */

/* Low RAM is region 0 and starts at 0 (mem_layout); returns its size, or 0
 * if the memory does not look like that. */
static uint64_t low_ram_end(const struct guest_mem *mem)
{
	if (mem->nr_regions < 1 || mem->region[0].gpa != 0)
		return 0;
	return mem->region[0].size;
}

int linux_build_e820(const struct guest_mem *mem, struct linux_e820_entry *tab,
		     unsigned max)
{
	uint64_t low = low_ram_end(mem);
	unsigned n = 0;

	if (low <= LINUX_EBDA_END || max < 4)
		return -EINVAL;
	/* Base memory up to the EBDA (the MP table lives there), the legacy
	 * EBDA/VGA/BIOS area reserved so the kernel never allocates it, then
	 * extended memory, then RAM above the 3-4 GiB MMIO hole. */
	tab[n++] = (struct linux_e820_entry){ 0, LINUX_MPTABLE_GPA,
					      LINUX_E820_RAM };
	tab[n++] = (struct linux_e820_entry){ LINUX_MPTABLE_GPA,
					      LINUX_EBDA_END - LINUX_MPTABLE_GPA,
					      LINUX_E820_RESERVED };
	tab[n++] = (struct linux_e820_entry){ LINUX_EBDA_END,
					      low - LINUX_EBDA_END,
					      LINUX_E820_RAM };
	for (unsigned i = 1; i < mem->nr_regions; i++) {
		if (mem->region[i].gpa < EMBER_HIGH_RAM_BASE)
			return -EINVAL;
		if (n == max)
			return -EINVAL;
		tab[n++] = (struct linux_e820_entry){ mem->region[i].gpa,
						      mem->region[i].size,
						      LINUX_E820_RAM };
	}
	return (int)n;
}

int linux_write_cmdline(const struct guest_mem *mem, const char *cmdline)
{
	size_t len;

	if (!cmdline)
		cmdline = "";
	len = strnlen(cmdline, LINUX_CMDLINE_MAX);
	if (len >= LINUX_CMDLINE_MAX)
		return -E2BIG;
	return mem_write(mem, LINUX_CMDLINE_GPA, cmdline, len + 1);
}

int linux_place_initrd(const struct guest_mem *mem, uint64_t kernel_end,
		       uint64_t len, uint64_t *gpa)
{
	uint64_t top = low_ram_end(mem), lowest, at;

	if (len == 0)
		return -EINVAL;
	/* initrd_addr_max is the highest byte the initrd may occupy. */
	if (top > LINUX_INITRD_ADDR_MAX + 1)
		top = LINUX_INITRD_ADDR_MAX + 1;
	lowest = (kernel_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	if (kernel_end > UINT64_MAX - PAGE_SIZE || len > top ||
	    (top - len) < lowest)
		return -E2BIG;
	at = (top - len) & ~(PAGE_SIZE - 1);
	if (at < lowest)
		return -E2BIG;
	*gpa = at;
	return 0;
}

int linux_build_boot_params(struct linux_boot_params *bp,
			    const struct guest_mem *mem, uint64_t initrd_gpa,
			    uint64_t initrd_len)
{
	int n;

	memset(bp, 0, sizeof(*bp));
	n = linux_build_e820(mem, bp->e820_table, LINUX_E820_MAX);
	if (n < 0)
		return n;
	bp->e820_entries = (uint8_t)n;
	/* boot.rst: a 64-bit loader fills the setup header as the 16-bit
	 * protocol would. A vmlinux carries no header to copy, so we write
	 * the fields a loader owns and the constants a bzImage would hold. */
	bp->hdr.boot_flag = LINUX_BOOT_FLAG;
	bp->hdr.header = LINUX_HDR_MAGIC;
	bp->hdr.version = LINUX_BOOT_VERSION;
	bp->hdr.vid_mode = 0xffff; /* "normal" */
	bp->hdr.type_of_loader = LINUX_LOADER_UNDEFINED; /* non-zero: the
		* kernel ignores ramdisk_image when type_of_loader is 0 */
	bp->hdr.loadflags = LINUX_LOADED_HIGH;
	bp->hdr.kernel_alignment = LINUX_KERNEL_ALIGN;
	bp->hdr.cmd_line_ptr = (uint32_t)LINUX_CMDLINE_GPA;
	bp->hdr.cmdline_size = LINUX_CMDLINE_MAX - 1; /* excludes the NUL */
	bp->hdr.initrd_addr_max = (uint32_t)LINUX_INITRD_ADDR_MAX;
	bp->hdr.ramdisk_image = (uint32_t)initrd_gpa;
	bp->hdr.ramdisk_size = (uint32_t)initrd_len;
	bp->ext_ramdisk_image = (uint32_t)(initrd_gpa >> 32);
	bp->ext_ramdisk_size = (uint32_t)(initrd_len >> 32);
	return 0;
}

/* --- the whole load --------------------------------------------------------- */

int linux_load(const struct guest_mem *mem, const struct linux_load_args *a,
	       struct linux_entry *out, char *err, size_t errlen)
{
	struct linux_boot_params bp;
	struct elf_image img;
	uint64_t low = low_ram_end(mem), initrd_gpa = 0, entry_ok = 0;
	char why[160];
	int ret;

	if (!a || !out || !a->kernel)
		return errbuf_fail(err, errlen, -EINVAL, "no kernel image");
	if (a->nr_cpus < 1 || a->nr_cpus > LINUX_MAX_CPUS)
		return errbuf_fail(err, errlen, -EINVAL,
			    "%u CPUs: a Linux guest takes 1 to %d", a->nr_cpus,
			    LINUX_MAX_CPUS);
	if (low < 2 * LINUX_KERNEL_MIN_GPA)
		return errbuf_fail(err, errlen, -EINVAL,
			    "guest RAM too small for Linux (%llu bytes low RAM)",
			    (unsigned long long)low);
	if (a->cmdline && strnlen(a->cmdline, LINUX_CMDLINE_MAX) >= LINUX_CMDLINE_MAX)
		return errbuf_fail(err, errlen, -E2BIG,
			    "kernel command line longer than %d bytes",
			    LINUX_CMDLINE_MAX - 1);
	if (a->initrd_len && !a->initrd)
		return errbuf_fail(err, errlen, -EINVAL, "initrd length without data");

	why[0] = 0;
	ret = elf_parse(a->kernel, a->kernel_len, &img, why, sizeof(why));
	if (ret)
		return errbuf_fail(err, errlen, ret, "kernel: %s", why);
	/* The CPU starts with paging identity-mapped, so the entry must be a
	 * physical address inside the loaded code, not only a virtual one. */
	for (unsigned i = 0; i < img.nr_segs; i++)
		if (img.entry >= img.seg[i].gpa &&
		    img.entry - img.seg[i].gpa < img.seg[i].filesz)
			entry_ok = 1;
	if (!entry_ok)
		return errbuf_fail(err, errlen, -EINVAL,
			    "kernel entry 0x%llx is not a physical address in the image",
			    (unsigned long long)img.entry);
	if (a->initrd_len) {
		ret = linux_place_initrd(mem, img.highest_gpa, a->initrd_len,
					 &initrd_gpa);
		if (ret)
			return errbuf_fail(err, errlen, ret,
				    "initrd of %zu bytes does not fit between the kernel end 0x%llx and 0x%llx",
				    a->initrd_len,
				    (unsigned long long)img.highest_gpa,
				    (unsigned long long)(low < LINUX_INITRD_ADDR_MAX
								 ? low
								 : LINUX_INITRD_ADDR_MAX + 1));
	}
	/* At or above 1 MiB the kernel cannot overlap the zero page, the
	 * command line, the page tables, the GDT or the MP table; it must stay
	 * in low RAM, where the identity map and the e820 RAM entry are. */
	ret = elf_load(mem, &img, LINUX_KERNEL_MIN_GPA, low, why, sizeof(why));
	if (ret)
		return errbuf_fail(err, errlen, ret, "kernel: %s", why);
	if (a->initrd_len &&
	    mem_write(mem, initrd_gpa, a->initrd, a->initrd_len))
		return errbuf_fail(err, errlen, -EFAULT, "initrd write failed");
	ret = linux_write_cmdline(mem, a->cmdline);
	if (ret)
		return errbuf_fail(err, errlen, ret, "cannot write the command line");
	ret = linux_build_boot_params(&bp, mem, initrd_gpa, a->initrd_len);
	if (ret)
		return errbuf_fail(err, errlen, ret, "cannot build the e820 map");
	if (mem_write(mem, LINUX_ZERO_PAGE_GPA, &bp, sizeof(bp)))
		return errbuf_fail(err, errlen, -EFAULT, "cannot write the zero page");
	ret = linux_write_mptable(mem, a->nr_cpus);
	if (ret < 0)
		return errbuf_fail(err, errlen, ret, "cannot write the MP table");

	out->rip = img.entry;
	out->zero_page_gpa = LINUX_ZERO_PAGE_GPA;
	return 0;
}
