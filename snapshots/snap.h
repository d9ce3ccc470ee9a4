/*
 * snap.h - the snapshot format: in-memory state, the state file (an FDT blob)
 * and the sparse memory file.
 *
 * Owns: the layout of a snapshot directory (docs/snapshots.md), the plain-data
 * structs that describe a paused VM (struct snap_vm), writing them to DIR/state
 * and reading them back with every field validated as hostile input, the
 * sparse memory file DIR/memory, the optional working-set list
 * DIR/workingset, and the CPU fingerprint check.
 *
 * Does not own: KVM file descriptors. The caller (vm.c) fills struct snap_vm
 * from KVM_GET_* ioctls and the devices' save functions, and applies it back
 * with KVM_SET_*; this library never talks to /dev/kvm, never logs and never
 * exits. Every function is reentrant; none keeps global state.
 *
 * Errors: functions return 0 or a negative errno and, when `err` is not NULL,
 * write a one-line human-readable reason into err[errlen]:
 *   -EINVAL           malformed or inconsistent state (corrupt snapshot)
 *   -EFBIG            the state file is larger than SNAP_MAX_STATE_SIZE
 *   -EPROTONOSUPPORT  the snapshot's format version is newer than this build
 *   -ENOEXEC          the snapshot was taken on an incompatible CPU
 *   -ENOENT, -EIO ... file system errors, passed through
 */
#ifndef EMBER_SNAP_H
#define EMBER_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "ember/abi.h"

/* Bumped on any incompatible change of the state tree; readers reject newer
 * versions and accept older ones they know how to read. */
#define SNAP_FORMAT_VERSION 1
#define SNAP_COMPATIBLE "ember,snapshot"

/* File names inside a snapshot directory. */
#define SNAP_STATE_FILE "state"
#define SNAP_MEMORY_FILE "memory"
#define SNAP_WORKINGSET_FILE "workingset"
/* The subset of the working set the guest wrote (same format). */
#define SNAP_WORKINGSET_DIRTY_FILE "workingset-dirty"

/* Caps applied by the reader before anything is trusted. */
#define SNAP_MAX_STATE_SIZE (16u << 20) /* state blob, bytes */
#define SNAP_MAX_VCPUS 64
#define SNAP_MAX_MSRS 512               /* per vCPU */
#define SNAP_MAX_DEVICES EMBER_VIRTIO_MAX_DEVICES
#define SNAP_MAX_QUEUES 4               /* == VMMIO_MAX_QUEUES */
#define SNAP_MAX_QUEUE_SIZE 1024        /* == VIRTQ_MAX_SIZE */
#define SNAP_PATH_MAX 256               /* backing paths, incl. the NUL */
#define SNAP_UDS_PATH_MAX 108           /* sizeof(sun_path), incl. the NUL */
#define SNAP_CMDLINE_MAX EMBER_CMDLINE_MAX /* incl. the NUL */
#define SNAP_MAX_MEM_SIZE (1ULL << 40)  /* 1 TiB of guest RAM */
#define SNAP_PAGE_SIZE 4096ULL

/*
 * CPU fingerprint: CPUID identification plus the feature words the guest
 * could see. A snapshot restores only on the same vendor, family and model
 * (the XSAVE layout and errata follow the model) whose feature words are a
 * superset of the saved ones (the guest may be using any feature it saw).
 * The stepping is recorded but not compared.
 */
enum snap_cpu_word {
	SNAP_CPUW_1_ECX = 0,  /* CPUID.1:ECX (OSXSAVE masked out) */
	SNAP_CPUW_1_EDX,      /* CPUID.1:EDX */
	SNAP_CPUW_7_EBX,      /* CPUID.(7,0):EBX */
	SNAP_CPUW_7_ECX,      /* CPUID.(7,0):ECX (OSPKE masked out) */
	SNAP_CPUW_7_EDX,      /* CPUID.(7,0):EDX */
	SNAP_CPUW_D_EAX,      /* CPUID.(0xd,0):EAX, XCR0 bits supported, low */
	SNAP_CPUW_D_EDX,      /* CPUID.(0xd,0):EDX, XCR0 bits supported, high */
	SNAP_CPUW_D1_EAX,     /* CPUID.(0xd,1):EAX, XSAVEOPT/XSAVEC/XSAVES */
	SNAP_CPUW_X1_ECX,     /* CPUID.0x80000001:ECX */
	SNAP_CPUW_X1_EDX,     /* CPUID.0x80000001:EDX */
	SNAP_CPU_WORDS
};

struct snap_cpu_fp {
	char vendor[13];      /* CPUID.0 EBX,EDX,ECX, NUL-terminated */
	uint32_t family;      /* display family (base + extended) */
	uint32_t model;       /* display model (extended model folded in) */
	uint32_t stepping;
	uint32_t words[SNAP_CPU_WORDS];
};

enum snap_guest_kind {
	SNAP_GUEST_PLAIN = 0, /* a plain ELF test guest */
	SNAP_GUEST_MICRO = 1, /* the micro guest kernel */
	SNAP_GUEST_LINUX = 2, /* vmlinux + guest-init */
};

struct snap_machine {
	uint64_t mem_size;    /* bytes of RAM, a multiple of SNAP_PAGE_SIZE */
	uint32_t nr_vcpus;    /* 1..SNAP_MAX_VCPUS */
	uint32_t kind;        /* enum snap_guest_kind */
	char cmdline[SNAP_CMDLINE_MAX]; /* NUL-terminated, may be empty */
};

/*
 * The legacy 4 KiB XSAVE area of struct kvm_xsave (its `region`). Not struct
 * kvm_xsave itself: that ends in a flexible array (KVM_GET_XSAVE2), which
 * cannot sit inside another struct. Copy with memcpy(x.region, ...).
 */
struct snap_xsave {
	uint32_t region[1024];
};
_Static_assert(sizeof(struct snap_xsave) ==
		       sizeof(((struct kvm_xsave *)0)->region),
	       "xsave region size");

/* One vCPU: the kernel's structs, byte for byte as KVM_GET_* returned them. */
struct snap_vcpu {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	bool has_xsave;       /* at least one of xsave and fpu is present */
	struct snap_xsave xsave; /* KVM_GET_XSAVE's struct kvm_xsave.region */
	bool has_fpu;
	struct kvm_fpu fpu;
	bool has_xcrs;
	struct kvm_xcrs xcrs; /* nr_xcrs <= KVM_MAX_XCRS */
	bool has_lapic;       /* false without an in-kernel irqchip */
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp_state;
	struct kvm_debugregs debugregs;
	uint64_t tsc;         /* MSR_IA32_TSC at capture (also in msrs) */
	uint32_t tsc_khz;     /* KVM_GET_TSC_KHZ, 0 if unknown */
	uint32_t nr_msrs;     /* <= SNAP_MAX_MSRS; reserved fields are 0 */
	struct kvm_msr_entry msrs[SNAP_MAX_MSRS];
};

/* A split virtqueue, as struct virtq of virtio/virtq.h holds it. */
struct snap_virtq {
	uint16_t size;
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t last_avail;
	uint16_t used_idx;
	bool event_idx;
	uint16_t signalled_used;
	bool signalled_valid;
};

/*
 * A device's own state: named properties the device writes and reads back
 * itself (vmm/devtable.h), stored verbatim in its node. Scalars are FDT
 * cells (big-endian), strings NUL-terminated; the format library checks
 * only names and sizes, the device checks the values.
 */
#define SNAP_MAX_DEV_PROPS 8
#define SNAP_DEV_PROP_MAX 256           /* bytes of one property */
#define SNAP_DEV_PROP_NAME_MAX 32       /* incl. the NUL */
#define SNAP_KIND_MAX 16                /* a device kind, incl. the NUL */

struct snap_prop {
	char name[SNAP_DEV_PROP_NAME_MAX];
	uint32_t len;
	uint8_t data[SNAP_DEV_PROP_MAX];
};

/*
 * One virtio-mmio device: the transport registers of virtio/mmio.h, the
 * device's kind (its type's name: "blk", "vsock", ...) and its own props.
 * Device i sits at EMBER_VIRTIO_MMIO_BASE + i * EMBER_VIRTIO_MMIO_SIZE.
 * queue_sel is stored as the driver wrote it and is not range-checked: the
 * transport checks it on every use.
 */
struct snap_virtio_dev {
	uint32_t device_id;   /* virtio device id (blk 2, vsock 19, ...) */
	uint64_t mmio_base;
	uint32_t gsi;
	uint32_t status;
	uint32_t device_features_sel, driver_features_sel;
	uint64_t driver_features;
	uint64_t acked_features;
	uint32_t queue_sel;
	uint32_t interrupt_status;
	uint32_t config_generation;
	bool activated;
	uint32_t nr_queues;   /* 1..SNAP_MAX_QUEUES */
	struct snap_virtq vq[SNAP_MAX_QUEUES];
	char kind[SNAP_KIND_MAX]; /* [a-z0-9-]+ */
	uint32_t nr_props;    /* 0..SNAP_MAX_DEV_PROPS */
	struct snap_prop props[SNAP_MAX_DEV_PROPS];
};

/* Device props (snap_prop.c). The setters return 0, -E2BIG (no room, or a
 * value over SNAP_DEV_PROP_MAX) or -EINVAL (a bad name). The getters return
 * 0, -ENOENT when the prop is absent, -EINVAL when it has the wrong size
 * or (strings) no terminating NUL, an embedded NUL or more than cap - 1
 * characters; they write a reason naming the prop into err. */
int snap_prop_set(struct snap_virtio_dev *d, const char *name,
		  const void *data, size_t len);
int snap_prop_set_u32(struct snap_virtio_dev *d, const char *name, uint32_t v);
int snap_prop_set_u64(struct snap_virtio_dev *d, const char *name, uint64_t v);
int snap_prop_set_str(struct snap_virtio_dev *d, const char *name,
		      const char *v);
const struct snap_prop *snap_prop_find(const struct snap_virtio_dev *d,
				       const char *name);
int snap_prop_u32(const struct snap_virtio_dev *d, const char *name,
		  uint32_t *v, char *err, size_t errlen);
int snap_prop_u64(const struct snap_virtio_dev *d, const char *name,
		  uint64_t *v, char *err, size_t errlen);
int snap_prop_str(const struct snap_virtio_dev *d, const char *name,
		  char *buf, size_t cap, char *err, size_t errlen);

/* The 8250 UART at COM1: its registers, as the serial device keeps them. */
struct snap_serial {
	uint8_t rbr, ier, iir, fcr, lcr, mcr, lsr, msr, scr, dll, dlm;
};

/*
 * A whole paused VM. About 1 MiB: allocate it on the heap (calloc). Only the
 * first machine.nr_vcpus vcpu[] and nr_devices dev[] entries are used.
 */
struct snap_vm {
	uint32_t format_version; /* set by the reader; the writer ignores it */
	struct snap_cpu_fp cpu;
	struct snap_machine machine;
	bool has_irqchip;     /* PIC master, PIC slave, IOAPIC, all or none */
	struct kvm_irqchip irqchip[3]; /* indexed by KVM_IRQCHIP_*; chip_id too */
	bool has_pit;
	struct kvm_pit_state2 pit;
	bool has_clock;
	struct kvm_clock_data clock;
	bool has_serial;
	struct snap_serial serial;
	uint32_t nr_devices;  /* 0..SNAP_MAX_DEVICES */
	struct snap_virtio_dev dev[SNAP_MAX_DEVICES];
	struct snap_vcpu vcpu[SNAP_MAX_VCPUS];
};

/*
 * On-disk encodings of Ember's own state inside the FDT (little-endian, no
 * implicit padding, reserved bytes must be zero). FDT cells (u32/u64
 * properties) are big-endian as the devicetree spec requires; these blobs
 * are opaque byte strings to dtc.
 */
struct snap_le_transport {        /* property "transport", 48 bytes */
	uint32_t status;
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint32_t queue_sel;
	uint64_t driver_features;
	uint64_t acked_features;
	uint32_t interrupt_status;
	uint32_t config_generation;
	uint8_t activated;
	uint8_t reserved[7];
};

struct snap_le_virtq {            /* property "queues": n x 40 bytes */
	uint16_t size;
	uint16_t last_avail;
	uint16_t used_idx;
	uint16_t signalled_used;
	uint8_t ready;
	uint8_t event_idx;
	uint8_t signalled_valid;
	uint8_t reserved[5];
	uint64_t desc_gpa;
	uint64_t avail_gpa;
	uint64_t used_gpa;
};

struct snap_le_serial {           /* property "regs" of /serial, 16 bytes */
	uint8_t rbr, ier, iir, fcr, lcr, mcr, lsr, msr, scr, dll, dlm;
	uint8_t reserved[5];
};

_Static_assert(sizeof(struct snap_le_transport) == 48, "transport layout");
_Static_assert(sizeof(struct snap_le_virtq) == 40, "virtq layout");
_Static_assert(sizeof(struct snap_le_serial) == 16, "serial layout");

/* ---- state file (snap_write.c, snap_read.c) ---- */

/*
 * Validates `s` with the same semantic checks the reader applies (counts,
 * memory size, strings, device and queue state: see docs/snapshots.md).
 * Returns 0 or -EINVAL.
 */
int snap_validate(const struct snap_vm *s, char *err, size_t errlen);

/*
 * Serialises `s` into a freshly malloc'ed FDT blob (*blob, *len; the caller
 * frees it). Validates `s` first. Returns 0, -EINVAL or -ENOMEM.
 */
int snap_build_state(const struct snap_vm *s, void **blob, size_t *len,
		     char *err, size_t errlen);

/* Writes DIR/state atomically (a temporary file, fsync, rename, fsync of the
 * directory). DIR must exist. Returns 0 or a negative errno. The _at form
 * writes into the open directory dirfd (a jailed VMM has no paths). */
int snap_write_state(const char *dir, const struct snap_vm *s, char *err,
		     size_t errlen);
int snap_write_state_at(int dirfd, const struct snap_vm *s, char *err,
			size_t errlen);

/*
 * Parses and fully validates a state blob of `len` bytes (untrusted: any
 * bytes at all) into *s. Does not check the CPU fingerprint against this
 * host. Returns 0, -EINVAL, -EFBIG or -EPROTONOSUPPORT; *s is undefined on
 * error. vcpu[] and dev[] entries past the parsed counts are not written.
 */
int snap_parse_state(const void *blob, size_t len, struct snap_vm *s,
		     char *err, size_t errlen);

/* Flags of snap_load_state(). */
#define SNAP_LOAD_ANY_CPU 1u /* skip the CPU fingerprint check (inspection) */

/*
 * Reads DIR/state (refusing files over SNAP_MAX_STATE_SIZE before reading),
 * parses it as snap_parse_state() does and, unless SNAP_LOAD_ANY_CPU, checks
 * that this host's CPU can run it (-ENOEXEC otherwise).
 */
int snap_load_state(const char *dir, struct snap_vm *s, unsigned flags,
		    char *err, size_t errlen);

/* Reads DIR/state raw into a malloc'ed *blob (*len bytes; free it),
 * refusing a file over SNAP_MAX_STATE_SIZE before reading. Not parsed. */
int snap_load_state_blob(const char *dir, void **blob, size_t *len,
			 char *err, size_t errlen);

/* snap_load_state(dir, s, 0, ...): what restore calls. */
int snap_read_state(const char *dir, struct snap_vm *s, char *err,
		    size_t errlen);

/* The same from an open state file (read with pread from offset 0, so the
 * fd's position does not matter; the fd stays open). */
int snap_load_state_fd(int fd, struct snap_vm *s, unsigned flags, char *err,
		       size_t errlen);
int snap_load_state_blob_fd(int fd, const char *what, void **blob,
			    size_t *len, char *err, size_t errlen);

/* ---- CPU fingerprint (snap_cpu.c) ---- */

/* Fills *fp from this host's CPUID, read once per process (thread-safe).
 * Returns 0, or -ENOTSUP when CPUID leaf 1 is missing. The caller may then
 * overwrite fp->words with the (filtered) feature words actually given to
 * the guest. */
int snap_cpu_fingerprint(struct snap_cpu_fp *fp);

/* Returns 0 when a snapshot taken on `saved` can run on `here`, else
 * -ENOEXEC and a message naming the first difference. */
int snap_cpu_compatible(const struct snap_cpu_fp *saved,
			const struct snap_cpu_fp *here, char *err,
			size_t errlen);

/* ---- memory file and working set (snap_mem.c) ---- */

/*
 * Writes guest RAM (`size` bytes at `ram`, the flat host mapping that
 * mem_layout() splits: file offset = offset in that mapping, not gpa) to
 * DIR/memory as a sparse file: only pages with a non-zero byte are written,
 * then the file is extended to `size`. Written to a temporary name, fsynced
 * and renamed. `size` must be a non-zero multiple of SNAP_PAGE_SIZE.
 * snap_write_memory_count() also returns the number of pages written.
 */
int snap_write_memory(const char *dir, const void *ram, uint64_t size,
		      char *err, size_t errlen);
int snap_write_memory_count(const char *dir, const void *ram, uint64_t size,
			    uint64_t *data_pages, char *err, size_t errlen);
int snap_write_memory_count_at(int dirfd, const void *ram, uint64_t size,
			       uint64_t *data_pages, char *err, size_t errlen);

/*
 * Opens DIR/memory read-only (O_CLOEXEC) into *fd after checking it is a
 * regular file of exactly `expected_size` bytes (a short file would SIGBUS
 * the guest on restore). The caller mmaps it MAP_PRIVATE and closes *fd.
 */
int snap_open_memory(const char *dir, uint64_t expected_size, int *fd,
		     char *err, size_t errlen);
/* The same checks on an open memory file (`what` names it in messages). */
int snap_check_memory_fd(int fd, const char *what, uint64_t expected_size,
			 char *err, size_t errlen);

/* Counts the pages of an open memory file that hold data (SEEK_DATA and
 * SEEK_HOLE; a file system without holes reports every page). */
int snap_memory_data_pages(int fd, uint64_t size, uint64_t *pages,
			   char *err, size_t errlen);

/*
 * Working set: the page numbers (file offset / SNAP_PAGE_SIZE) the first
 * invocation after a restore touched, so later restores can prefetch them.
 * File format (little-endian): "EMBRWSET", u32 version (1), u32 page size
 * (4096), u64 count, then count u64 page numbers, strictly increasing.
 */
#define SNAP_WS_MAGIC "EMBRWSET"
#define SNAP_WS_VERSION 1

/* The same for any page-list file DIR/NAME (the working set, and the
 * subset of it the guest wrote: SNAP_WORKINGSET_DIRTY_FILE). */
int snap_write_pagelist(const char *dir, const char *name,
			const uint64_t *pages, size_t n, uint64_t mem_size,
			char *err, size_t errlen);
int snap_read_pagelist(const char *dir, const char *name, uint64_t mem_size,
		       uint64_t **pages, size_t *n, char *err, size_t errlen);
/* The same on open files: reading with pread from 0; writing truncates the
 * file, writes the list and fsyncs (not atomic: the caller gave us the
 * file to fill). */
int snap_read_pagelist_fd(int fd, const char *what, uint64_t mem_size,
			  uint64_t **pages, size_t *n, char *err, size_t errlen);
int snap_write_pagelist_fd(int fd, const uint64_t *pages, size_t n,
			   uint64_t mem_size, char *err, size_t errlen);

/* Writes DIR/workingset atomically from `n` page numbers (any order,
 * duplicates dropped; each must be < mem_size / SNAP_PAGE_SIZE). */
int snap_write_workingset(const char *dir, const uint64_t *pages, size_t n,
			  uint64_t mem_size, char *err, size_t errlen);

/*
 * Reads and validates DIR/workingset against `mem_size`: *pages is malloc'ed
 * (free it), sorted, unique, all in range; *n its length. Returns -ENOENT
 * when the snapshot has no working set, -EINVAL when it is malformed.
 */
int snap_read_workingset(const char *dir, uint64_t mem_size, uint64_t **pages,
			 size_t *n, char *err, size_t errlen);

/* ---- shared by the snap_*.c files ---- */

/* Formats a message into err[errlen] (ignored when err is NULL). */
void snap_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Opens DIR/NAME read-only (path receives it, for messages) and checks it
 * is a regular file (*st filled). Returns the fd or a negative errno with a
 * reason. */
struct stat;
int snap_open_regular(const char *dir, const char *name, char *path,
		      size_t pathlen, struct stat *st, char *err,
		      size_t errlen);

/* Writes `len` bytes to DIR/NAME atomically (tmp file, fsync, rename, fsync
 * of DIR); the _at form in the open directory dirfd. */
int snap_write_file_atomic(const char *dir, const char *name, const void *buf,
			   size_t len, char *err, size_t errlen);
int snap_write_file_atomic_at(int dirfd, const char *name, const void *buf,
			      size_t len, char *err, size_t errlen);

/* The pieces of an atomic write: a fresh ".NAME.<random>" in dirfd (0600,
 * its name into tmp), and once it is filled, fsync + close + rename to NAME
 * + fsync of dirfd (on error the temporary is removed). */
int snap_create_tmp_at(int dirfd, const char *name, char *tmp, size_t cap,
		       char *err, size_t errlen);
int snap_commit_tmp_at(int dirfd, int fd, const char *tmp, const char *name,
		       char *err, size_t errlen);
/* pwrite(2) until done. 0 or -errno. */
int snap_pwrite_all(int fd, const void *buf, uint64_t len, uint64_t off);
/* open(dir, O_DIRECTORY): the fd or -errno with a reason. */
int snap_open_dir(const char *dir, char *err, size_t errlen);
/* fstat + S_ISREG. 0 or -errno / -EINVAL with a reason naming `what`. */
int snap_check_regular_fd(int fd, const char *what, struct stat *st,
			  char *err, size_t errlen);

/* Human-readable names, never NULL. */
const char *snap_guest_kind_name(uint32_t kind);
const char *snap_cpu_word_name(unsigned word); /* enum snap_cpu_word */

#endif
