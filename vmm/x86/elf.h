/*
 * elf.h - parsing and loading of x86-64 ELF executables into guest memory.
 *
 * Owns: validation of an ELF file held in host memory (the file is hostile:
 * every header field, offset and size is checked before use) and the copy of
 * its PT_LOAD segments into guest RAM. Used for a Linux vmlinux (segments at
 * their physical addresses) and for plain-ELF guests such as the test guests
 * and the micro guest. Pure functions; any thread.
 */
#ifndef EMBER_ELF_H
#define EMBER_ELF_H

#include <stddef.h>
#include <stdint.h>

#include "../mem.h"

#define ELF_MAX_SEGS 16
#define ELF_MAX_FILE (512ULL << 20)
/* No segment may claim more memory than this (a guest has less RAM). */
#define ELF_MAX_SEG_MEMSZ (64ULL << 30)

struct elf_segment {
	uint64_t gpa;     /* p_paddr: where the segment goes in guest memory */
	uint64_t vaddr;   /* p_vaddr */
	uint64_t offset;  /* in the file */
	uint64_t filesz;
	uint64_t memsz;   /* >= filesz; the rest is zeroed */
	uint32_t flags;   /* PF_R | PF_W | PF_X */
};

/* An optional ELF note, name "Ember", type ELF_NOTE_EMBER_ENTRIES, whose
 * descriptor is struct ember_entries_note (see ember/abi.h). */
struct elf_image {
	const uint8_t *data;
	size_t len;
	uint64_t entry;
	unsigned nr_segs;
	struct elf_segment seg[ELF_MAX_SEGS];
	uint64_t lowest_gpa;   /* of all PT_LOAD segments */
	uint64_t highest_gpa;  /* one past the end of the last segment */
	int has_entries_note;
	uint64_t syscall_entry;   /* from the Ember note, if any */
	uint64_t exception_entry; /* from the Ember note, if any */
};

/*
 * Validates `data`/`len` as a little-endian ELF64 x86-64 executable (ET_EXEC)
 * with 1..ELF_MAX_SEGS PT_LOAD segments, each with filesz <= memsz, inside
 * the file, non-overlapping, not wrapping, the entry inside an executable
 * segment. Fills *img (which points into data). Returns 0, or -EINVAL /
 * -E2BIG / -ENOEXEC with a one-line reason in err (errlen bytes).
 */
int elf_parse(const void *data, size_t len, struct elf_image *img, char *err,
	      size_t errlen);

/*
 * Copies the segments of a parsed image into guest memory at their gpa and
 * zeroes each segment's tail (memsz - filesz). Every segment must lie in
 * [min_gpa, max_gpa) and inside RAM. Returns 0 or -ERANGE with a reason.
 */
int elf_load(const struct guest_mem *mem, const struct elf_image *img,
	     uint64_t min_gpa, uint64_t max_gpa, char *err, size_t errlen);

#endif
