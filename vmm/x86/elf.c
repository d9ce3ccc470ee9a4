/*
 * elf.c - validation and loading of x86-64 ELF executables (see elf.h).
 *
 * The file is hostile: header fields are copied once into local structs with
 * memcpy (no unaligned pointer casts into the file) and every offset, size
 * and address is checked, with overflow, before it is used. References: the
 * System V gABI, "ELF header", "Program header" and "Note section" chapters,
 * and the x86-64 psABI (EM_X86_64 = 62).
 */
#include "x86/elf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ember/abi.h"
#include "log.h"

/* The on-disk ELF64 layouts (gABI), declared here rather than taken from
 * <elf.h> so that the sizes we check are the ones we read. */
struct elf64_ehdr {
	uint8_t e_ident[16];
	uint16_t e_type;
	uint16_t e_machine;
	uint32_t e_version;
	uint64_t e_entry;
	uint64_t e_phoff;
	uint64_t e_shoff;
	uint32_t e_flags;
	uint16_t e_ehsize;
	uint16_t e_phentsize;
	uint16_t e_phnum;
	uint16_t e_shentsize;
	uint16_t e_shnum;
	uint16_t e_shstrndx;
};
_Static_assert(sizeof(struct elf64_ehdr) == 64, "ELF64 header is 64 bytes");

struct elf64_phdr {
	uint32_t p_type;
	uint32_t p_flags;
	uint64_t p_offset;
	uint64_t p_vaddr;
	uint64_t p_paddr;
	uint64_t p_filesz;
	uint64_t p_memsz;
	uint64_t p_align;
};
_Static_assert(sizeof(struct elf64_phdr) == 56, "ELF64 phdr is 56 bytes");

struct elf64_nhdr {
	uint32_t n_namesz;
	uint32_t n_descsz;
	uint32_t n_type;
};

#define EI_CLASS 4
#define EI_DATA 5
#define EI_VERSION 6
#define ELFCLASS64 2
#define ELFDATA2LSB 1
#define EV_CURRENT 1
#define ET_EXEC 2
#define EM_X86_64 62
#define PT_LOAD 1
#define PT_DYNAMIC 2
#define PT_INTERP 3
#define PT_NOTE 4
#define PF_X 1
/* e_phnum == PN_XNUM means "the real count is in section 0": not supported. */
#define PN_XNUM 0xffff

/* True if [off, off + size) lies inside a buffer of len bytes. */
static int range_in(uint64_t off, uint64_t size, uint64_t len)
{
	return off <= len && size <= len - off;
}

/* True if addr lies in the file-backed part of an executable segment, by its
 * physical (gpa) or its virtual address: a vmlinux's e_entry is physical
 * (startup_64 before paging is set up by the kernel), a plain-ELF guest's is
 * virtual and equal to its physical address (identity mapped). */
static int in_exec_seg(const struct elf_image *img, uint64_t addr)
{
	for (unsigned i = 0; i < img->nr_segs; i++) {
		const struct elf_segment *s = &img->seg[i];

		if (!(s->flags & PF_X))
			continue;
		if ((addr >= s->gpa && addr - s->gpa < s->filesz) ||
		    (addr >= s->vaddr && addr - s->vaddr < s->filesz))
			return 1;
	}
	return 0;
}

/*
 * Walks the notes of one PT_NOTE segment (gABI "Note Section": namesz, descsz,
 * type, then name and descriptor each padded to the note alignment, 4 bytes,
 * or 8 when the segment says p_align == 8) and records the Ember entries
 * note. Malformed notes reject the file: a note that claims more bytes than
 * its segment holds is not something a linker produces.
 */
static int parse_notes(struct elf_image *img, const struct elf64_phdr *ph,
		       char *err, size_t errlen)
{
	uint64_t align = ph->p_align == 8 ? 8 : 4;
	uint64_t pos = 0, size = ph->p_filesz;
	const uint8_t *base = img->data + ph->p_offset;

	while (size - pos >= sizeof(struct elf64_nhdr)) {
		struct elf64_nhdr nh;
		uint64_t name_off, desc_off, namesz_al, descsz_al;

		memcpy(&nh, base + pos, sizeof(nh));
		/* 32-bit sizes plus alignment cannot overflow 64 bits. */
		namesz_al = ((uint64_t)nh.n_namesz + align - 1) & ~(align - 1);
		descsz_al = ((uint64_t)nh.n_descsz + align - 1) & ~(align - 1);
		name_off = pos + sizeof(nh);
		desc_off = name_off + namesz_al;
		if (!range_in(name_off, namesz_al, size) ||
		    !range_in(desc_off, nh.n_descsz, size))
			return errbuf_fail(err, errlen, -EINVAL,
				    "ELF note at segment offset %llu runs past its segment",
				    (unsigned long long)pos);
		if (nh.n_namesz == sizeof(EMBER_NOTE_NAME) &&
		    !memcmp(base + name_off, EMBER_NOTE_NAME,
			    sizeof(EMBER_NOTE_NAME)) &&
		    nh.n_type == EMBER_NOTE_ENTRIES) {
			struct ember_entries_note en;

			if (nh.n_descsz != sizeof(en))
				return errbuf_fail(err, errlen, -EINVAL,
					    "Ember entries note has %u descriptor bytes, expected %zu",
					    nh.n_descsz, sizeof(en));
			if (img->has_entries_note)
				return errbuf_fail(err, errlen, -EINVAL,
					    "two Ember entries notes");
			memcpy(&en, base + desc_off, sizeof(en));
			img->has_entries_note = 1;
			img->syscall_entry = en.syscall_entry;
			img->exception_entry = en.exception_entry;
		}
		/* desc_off + descsz_al may exceed size only by padding of the
		 * last note; the loop condition then ends the walk. */
		if (descsz_al > size - desc_off)
			break;
		pos = desc_off + descsz_al;
	}
	return 0;
}

int elf_parse(const void *data, size_t len, struct elf_image *img, char *err,
	      size_t errlen)
{
	struct elf64_ehdr eh;
	uint64_t ph_bytes;
	int ret;

	memset(img, 0, sizeof(*img));
	if (!data)
		return errbuf_fail(err, errlen, -EINVAL, "no ELF data");
	if (len > ELF_MAX_FILE)
		return errbuf_fail(err, errlen, -E2BIG,
			    "ELF file is %zu bytes, the limit is %llu", len,
			    (unsigned long long)ELF_MAX_FILE);
	if (len < sizeof(eh))
		return errbuf_fail(err, errlen, -ENOEXEC,
			    "file too short for an ELF header (%zu bytes)", len);
	memcpy(&eh, data, sizeof(eh));

	if (memcmp(eh.e_ident, "\177ELF", 4))
		return errbuf_fail(err, errlen, -ENOEXEC, "not an ELF file (bad magic)");
	if (eh.e_ident[EI_CLASS] != ELFCLASS64)
		return errbuf_fail(err, errlen, -ENOEXEC,
			    "not a 64-bit ELF file (class %u)", eh.e_ident[EI_CLASS]);
	if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return errbuf_fail(err, errlen, -ENOEXEC,
			    "not a little-endian ELF file (data %u)",
			    eh.e_ident[EI_DATA]);
	if (eh.e_ident[EI_VERSION] != EV_CURRENT || eh.e_version != EV_CURRENT)
		return errbuf_fail(err, errlen, -ENOEXEC, "unknown ELF version %u/%u",
			    eh.e_ident[EI_VERSION], eh.e_version);
	if (eh.e_machine != EM_X86_64)
		return errbuf_fail(err, errlen, -ENOEXEC,
			    "not an x86-64 ELF file (machine %u)", eh.e_machine);
	if (eh.e_type != ET_EXEC)
		return errbuf_fail(err, errlen, -ENOEXEC,
			    "not a static executable (ELF type %u; need ET_EXEC)",
			    eh.e_type);
	if (eh.e_phentsize != sizeof(struct elf64_phdr))
		return errbuf_fail(err, errlen, -EINVAL,
			    "program header entry size %u, expected %zu",
			    eh.e_phentsize, sizeof(struct elf64_phdr));
	if (eh.e_phnum == 0 || eh.e_phnum == PN_XNUM)
		return errbuf_fail(err, errlen, -EINVAL, "bad program header count %u",
			    eh.e_phnum);
	/* phnum < 2^16 and phentsize == 56: no overflow. */
	ph_bytes = (uint64_t)eh.e_phnum * sizeof(struct elf64_phdr);
	if (!range_in(eh.e_phoff, ph_bytes, len))
		return errbuf_fail(err, errlen, -EINVAL,
			    "program headers [%llu, +%llu) lie outside the %zu-byte file",
			    (unsigned long long)eh.e_phoff,
			    (unsigned long long)ph_bytes, len);

	img->data = data;
	img->len = len;
	img->entry = eh.e_entry;
	img->lowest_gpa = UINT64_MAX;

	for (unsigned i = 0; i < eh.e_phnum; i++) {
		struct elf64_phdr ph;
		struct elf_segment *s;

		memcpy(&ph, img->data + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_INTERP || ph.p_type == PT_DYNAMIC)
			return errbuf_fail(err, errlen, -ENOEXEC,
				    "dynamically linked executable (program header %u)",
				    i);
		if (ph.p_type == PT_NOTE) {
			if (!range_in(ph.p_offset, ph.p_filesz, len))
				return errbuf_fail(err, errlen, -EINVAL,
					    "note segment %u lies outside the file", i);
			ret = parse_notes(img, &ph, err, errlen);
			if (ret)
				return ret;
			continue;
		}
		if (ph.p_type != PT_LOAD)
			continue; /* GNU_STACK, TLS, ...: nothing to load */
		if (ph.p_memsz == 0)
			continue; /* occupies no memory; nothing to check */
		if (img->nr_segs == ELF_MAX_SEGS)
			return errbuf_fail(err, errlen, -E2BIG,
				    "more than %d PT_LOAD segments", ELF_MAX_SEGS);
		if (ph.p_filesz > ph.p_memsz)
			return errbuf_fail(err, errlen, -EINVAL,
				    "segment %u: file size %llu > memory size %llu", i,
				    (unsigned long long)ph.p_filesz,
				    (unsigned long long)ph.p_memsz);
		if (ph.p_memsz > ELF_MAX_SEG_MEMSZ)
			return errbuf_fail(err, errlen, -E2BIG,
				    "segment %u: memory size %llu exceeds %llu", i,
				    (unsigned long long)ph.p_memsz,
				    (unsigned long long)ELF_MAX_SEG_MEMSZ);
		if (!range_in(ph.p_offset, ph.p_filesz, len))
			return errbuf_fail(err, errlen, -EINVAL,
				    "segment %u: file range [%llu, +%llu) lies outside the %zu-byte file",
				    i, (unsigned long long)ph.p_offset,
				    (unsigned long long)ph.p_filesz, len);
		if (ph.p_paddr > UINT64_MAX - ph.p_memsz ||
		    ph.p_vaddr > UINT64_MAX - ph.p_memsz)
			return errbuf_fail(err, errlen, -EINVAL,
				    "segment %u: address range wraps around", i);
		for (unsigned j = 0; j < img->nr_segs; j++) {
			const struct elf_segment *o = &img->seg[j];

			if (ph.p_paddr < o->gpa + o->memsz &&
			    o->gpa < ph.p_paddr + ph.p_memsz)
				return errbuf_fail(err, errlen, -EINVAL,
					    "segment %u overlaps an earlier segment at 0x%llx",
					    i, (unsigned long long)o->gpa);
		}
		s = &img->seg[img->nr_segs++];
		s->gpa = ph.p_paddr;
		s->vaddr = ph.p_vaddr;
		s->offset = ph.p_offset;
		s->filesz = ph.p_filesz;
		s->memsz = ph.p_memsz;
		s->flags = ph.p_flags;
		if (s->gpa < img->lowest_gpa)
			img->lowest_gpa = s->gpa;
		if (s->gpa + s->memsz > img->highest_gpa)
			img->highest_gpa = s->gpa + s->memsz;
	}

	if (img->nr_segs == 0)
		return errbuf_fail(err, errlen, -EINVAL, "no loadable segment");
	if (!in_exec_seg(img, img->entry))
		return errbuf_fail(err, errlen, -EINVAL,
			    "entry point 0x%llx is not inside an executable segment",
			    (unsigned long long)img->entry);
	if (img->has_entries_note && (!in_exec_seg(img, img->syscall_entry) ||
				      !in_exec_seg(img, img->exception_entry)))
		return errbuf_fail(err, errlen, -EINVAL,
			    "Ember note entries (0x%llx, 0x%llx) are not inside an executable segment",
			    (unsigned long long)img->syscall_entry,
			    (unsigned long long)img->exception_entry);
	return 0;
}

int elf_load(const struct guest_mem *mem, const struct elf_image *img,
	     uint64_t min_gpa, uint64_t max_gpa, char *err, size_t errlen)
{
	/* Check every segment before writing any, so that a rejected image
	 * leaves guest memory untouched. The image may not come from
	 * elf_parse, so the file ranges are checked again too. */
	for (unsigned i = 0; i < img->nr_segs; i++) {
		const struct elf_segment *s = &img->seg[i];

		if (s->filesz > s->memsz || !range_in(s->offset, s->filesz, img->len))
			return errbuf_fail(err, errlen, -ERANGE,
				    "segment %u: file range is inconsistent", i);
		if (s->gpa < min_gpa || s->gpa > UINT64_MAX - s->memsz ||
		    s->gpa + s->memsz > max_gpa)
			return errbuf_fail(err, errlen, -ERANGE,
				    "segment [0x%llx, 0x%llx) is outside the allowed [0x%llx, 0x%llx)",
				    (unsigned long long)s->gpa,
				    (unsigned long long)(s->gpa + s->memsz),
				    (unsigned long long)min_gpa,
				    (unsigned long long)max_gpa);
		if (!mem_gpa_to_hva(mem, s->gpa, s->memsz))
			return errbuf_fail(err, errlen, -ERANGE,
				    "segment [0x%llx, +0x%llx) is not inside guest RAM",
				    (unsigned long long)s->gpa,
				    (unsigned long long)s->memsz);
	}
	for (unsigned i = 0; i < img->nr_segs; i++) {
		const struct elf_segment *s = &img->seg[i];
		uint8_t *dst = mem_gpa_to_hva(mem, s->gpa, s->memsz);

		memcpy(dst, img->data + s->offset, s->filesz);
		memset(dst + s->filesz, 0, s->memsz - s->filesz);
	}
	return 0;
}
