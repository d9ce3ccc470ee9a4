/* Unit tests: the ELF parser and loader (vmm/x86/elf.c), on ELF files built
 * in memory and a heap buffer as guest RAM. */
// link: vmm/x86/elf.c vmm/mem.c vmm/log.c
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ember/abi.h"
#include "mem.h"
#include "x86/elf.h"

#define FILE_SZ 0x3000
#define RAM_SZ (4u << 20)
#define TEXT_GPA 0x100000ULL
#define DATA_GPA 0x200000ULL

static uint8_t file[FILE_SZ] __attribute__((aligned(8)));
static uint8_t *ram;
static struct guest_mem mem;
static char err[256];

static Elf64_Ehdr *eh(void)
{
	return (Elf64_Ehdr *)file;
}

static Elf64_Phdr *ph(unsigned i)
{
	return (Elf64_Phdr *)(file + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr));
}

/* A valid static executable: text (R+X) at 1 MiB, data (R+W) at 2 MiB with
 * 0x10 file bytes and 0xff0 bytes of bss. */
static int setup(void **state)
{
	(void)state;
	memset(file, 0, sizeof(file));
	memcpy(eh()->e_ident, ELFMAG, SELFMAG);
	eh()->e_ident[EI_CLASS] = ELFCLASS64;
	eh()->e_ident[EI_DATA] = ELFDATA2LSB;
	eh()->e_ident[EI_VERSION] = EV_CURRENT;
	eh()->e_type = ET_EXEC;
	eh()->e_machine = EM_X86_64;
	eh()->e_version = EV_CURRENT;
	eh()->e_entry = TEXT_GPA + 0x10;
	eh()->e_phoff = sizeof(Elf64_Ehdr);
	eh()->e_ehsize = sizeof(Elf64_Ehdr);
	eh()->e_phentsize = sizeof(Elf64_Phdr);
	eh()->e_phnum = 2;
	*ph(0) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_X,
			       .p_offset = 0x1000, .p_vaddr = TEXT_GPA,
			       .p_paddr = TEXT_GPA, .p_filesz = 0x100,
			       .p_memsz = 0x100, .p_align = 0x1000 };
	*ph(1) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_W,
			       .p_offset = 0x2000, .p_vaddr = DATA_GPA,
			       .p_paddr = DATA_GPA, .p_filesz = 0x10,
			       .p_memsz = 0x1000, .p_align = 0x1000 };
	memset(file + 0x1000, 0xab, 0x100);
	memset(file + 0x2000, 0xcd, 0x10);

	ram = malloc(RAM_SZ);
	assert_non_null(ram);
	memset(ram, 0xee, RAM_SZ);
	mem_layout(&mem, ram, RAM_SZ);
	err[0] = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(ram);
	return 0;
}

static int parse(size_t len, struct elf_image *img)
{
	err[0] = 0;
	return elf_parse(file, len, img, err, sizeof(err));
}

/* Expects rejection with `ret` and a non-empty reason. */
static void expect_reject(int ret)
{
	struct elf_image img;

	assert_int_equal(parse(sizeof(file), &img), ret);
	if (ret)
		assert_true(strlen(err) > 0);
}

static void test_valid_parse(void **state)
{
	struct elf_image img;

	(void)state;
	assert_int_equal(parse(sizeof(file), &img), 0);
	assert_int_equal(img.nr_segs, 2);
	assert_int_equal(img.entry, TEXT_GPA + 0x10);
	assert_int_equal(img.lowest_gpa, TEXT_GPA);
	assert_int_equal(img.highest_gpa, DATA_GPA + 0x1000);
	assert_int_equal(img.seg[1].filesz, 0x10);
	assert_int_equal(img.seg[1].memsz, 0x1000);
	assert_int_equal(img.seg[0].flags, PF_R | PF_X);
	assert_false(img.has_entries_note);
}

static void test_valid_load_zeroes_bss(void **state)
{
	struct elf_image img;

	(void)state;
	assert_int_equal(parse(sizeof(file), &img), 0);
	assert_int_equal(elf_load(&mem, &img, EMBER_ELF_MIN_GPA, RAM_SZ, err,
				  sizeof(err)), 0);
	for (unsigned i = 0; i < 0x100; i++)
		assert_int_equal(ram[TEXT_GPA + i], 0xab);
	assert_int_equal(ram[TEXT_GPA + 0x100], 0xee); /* past memsz: untouched */
	assert_int_equal(ram[TEXT_GPA - 1], 0xee);
	for (unsigned i = 0; i < 0x10; i++)
		assert_int_equal(ram[DATA_GPA + i], 0xcd);
	for (unsigned i = 0x10; i < 0x1000; i++)
		assert_int_equal(ram[DATA_GPA + i], 0); /* bss zeroed */
	assert_int_equal(ram[DATA_GPA + 0x1000], 0xee);
}

static void test_truncated_header(void **state)
{
	struct elf_image img;

	(void)state;
	assert_int_equal(parse(sizeof(Elf64_Ehdr) - 1, &img), -ENOEXEC);
	assert_int_equal(parse(0, &img), -ENOEXEC);
	assert_int_equal(elf_parse(NULL, 100, &img, err, sizeof(err)), -EINVAL);
	/* Header present, program headers cut off. */
	assert_int_equal(parse(sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr), &img),
			 -EINVAL);
	/* No error buffer: still a clean rejection. */
	assert_int_equal(elf_parse(file, 10, &img, NULL, 0), -ENOEXEC);
}

static void test_file_too_big(void **state)
{
	struct elf_image img;

	(void)state;
	/* The length is checked before any byte is read. */
	assert_int_equal(parse((size_t)ELF_MAX_FILE + 1, &img), -E2BIG);
}

static void test_wrong_ident(void **state)
{
	(void)state;
	file[1] = 'F';
	expect_reject(-ENOEXEC);
	file[1] = 'E';
	eh()->e_ident[EI_CLASS] = ELFCLASS32;
	expect_reject(-ENOEXEC);
	eh()->e_ident[EI_CLASS] = ELFCLASS64;
	eh()->e_ident[EI_DATA] = ELFDATA2MSB;
	expect_reject(-ENOEXEC);
	eh()->e_ident[EI_DATA] = ELFDATA2LSB;
	eh()->e_version = 2;
	expect_reject(-ENOEXEC);
	eh()->e_version = EV_CURRENT;
	eh()->e_machine = EM_386;
	expect_reject(-ENOEXEC);
	eh()->e_machine = EM_X86_64;
	eh()->e_type = ET_DYN;
	expect_reject(-ENOEXEC);
	eh()->e_type = ET_EXEC;
	expect_reject(0);
}

static void test_bad_program_headers(void **state)
{
	(void)state;
	eh()->e_phoff = FILE_SZ - 10;
	expect_reject(-EINVAL);
	eh()->e_phoff = UINT64_MAX - 8; /* offset + size wraps */
	expect_reject(-EINVAL);
	eh()->e_phoff = sizeof(Elf64_Ehdr);
	eh()->e_phentsize = 32;
	expect_reject(-EINVAL);
	eh()->e_phentsize = sizeof(Elf64_Phdr);
	eh()->e_phnum = 0;
	expect_reject(-EINVAL);
	eh()->e_phnum = 0xffff; /* PN_XNUM */
	expect_reject(-EINVAL);
}

static void test_too_many_segments(void **state)
{
	(void)state;
	eh()->e_phnum = ELF_MAX_SEGS + 1;
	eh()->e_entry = TEXT_GPA;
	for (unsigned i = 0; i < ELF_MAX_SEGS + 1; i++)
		*ph(i) = (Elf64_Phdr){ .p_type = PT_LOAD, .p_flags = PF_R | PF_X,
				       .p_offset = 0x1000,
				       .p_paddr = TEXT_GPA + i * 0x1000,
				       .p_vaddr = TEXT_GPA + i * 0x1000,
				       .p_filesz = 0x10, .p_memsz = 0x10 };
	expect_reject(-E2BIG);
	eh()->e_phnum = ELF_MAX_SEGS; /* exactly the limit is fine */
	expect_reject(0);
}

static void test_filesz_gt_memsz(void **state)
{
	(void)state;
	ph(1)->p_filesz = 0x1001;
	expect_reject(-EINVAL);
}

static void test_segment_outside_file(void **state)
{
	(void)state;
	ph(1)->p_offset = FILE_SZ - 8; /* 0x10 bytes from 8 before the end */
	expect_reject(-EINVAL);
	ph(1)->p_offset = UINT64_MAX - 4;
	expect_reject(-EINVAL);
	ph(1)->p_offset = 0x2000;
	ph(1)->p_filesz = FILE_SZ;
	ph(1)->p_memsz = FILE_SZ;
	expect_reject(-EINVAL);
}

static void test_overlapping_segments(void **state)
{
	(void)state;
	ph(1)->p_paddr = TEXT_GPA + 0xff; /* last byte of the text segment */
	expect_reject(-EINVAL);
	ph(1)->p_paddr = TEXT_GPA - 0x10; /* straddles the start */
	ph(1)->p_memsz = 0x20;
	expect_reject(-EINVAL);
	ph(1)->p_paddr = TEXT_GPA + 0x100; /* adjacent is fine */
	expect_reject(0);
}

static void test_wrapping_and_absurd(void **state)
{
	(void)state;
	ph(1)->p_paddr = UINT64_MAX - 0x10;
	expect_reject(-EINVAL);
	ph(1)->p_paddr = DATA_GPA;
	ph(1)->p_vaddr = UINT64_MAX - 0x10;
	expect_reject(-EINVAL);
	ph(1)->p_vaddr = DATA_GPA;
	ph(1)->p_memsz = 1ULL << 40;
	expect_reject(-E2BIG);
}

static void test_entry_outside(void **state)
{
	(void)state;
	eh()->e_entry = DATA_GPA; /* not executable */
	expect_reject(-EINVAL);
	eh()->e_entry = TEXT_GPA + 0x100; /* one past the end */
	expect_reject(-EINVAL);
	eh()->e_entry = 0;
	expect_reject(-EINVAL);
	/* A vmlinux: virtual addresses high, entry physical. */
	ph(0)->p_vaddr = 0xffffffff81000000ULL;
	eh()->e_entry = TEXT_GPA;
	expect_reject(0);
	eh()->e_entry = 0xffffffff81000004ULL; /* virtual also accepted */
	expect_reject(0);
}

static void test_no_load_segment_and_interp(void **state)
{
	(void)state;
	ph(0)->p_type = PT_GNU_STACK;
	ph(1)->p_type = PT_GNU_STACK;
	expect_reject(-EINVAL);
	ph(0)->p_type = PT_LOAD;
	ph(1)->p_type = PT_INTERP;
	expect_reject(-ENOEXEC);
}

static void test_load_range_checks(void **state)
{
	struct elf_image img;

	(void)state;
	/* Data segment straddles the end of RAM. */
	ph(1)->p_paddr = RAM_SZ - 0x800;
	assert_int_equal(parse(sizeof(file), &img), 0);
	assert_int_equal(elf_load(&mem, &img, EMBER_ELF_MIN_GPA, UINT64_MAX, err,
				  sizeof(err)), -ERANGE);
	/* Nothing was written: the text segment is checked and copied only
	 * once every segment passed. */
	assert_int_equal(ram[TEXT_GPA], 0xee);

	/* Below min_gpa (would overlap the boot structures). */
	ph(1)->p_paddr = 0x8000;
	assert_int_equal(parse(sizeof(file), &img), 0);
	assert_int_equal(elf_load(&mem, &img, EMBER_ELF_MIN_GPA, RAM_SZ, err,
				  sizeof(err)), -ERANGE);
	assert_int_equal(ram[0x8000], 0xee);

	/* At or past max_gpa. */
	ph(1)->p_paddr = DATA_GPA;
	assert_int_equal(parse(sizeof(file), &img), 0);
	assert_int_equal(elf_load(&mem, &img, EMBER_ELF_MIN_GPA, DATA_GPA + 0xfff,
				  err, sizeof(err)), -ERANGE);
	assert_int_equal(elf_load(&mem, &img, EMBER_ELF_MIN_GPA, DATA_GPA + 0x1000,
				  err, sizeof(err)), 0);

	/* Inside [min, max) but in the MMIO hole of a big guest: our RAM is
	 * 4 MiB, so 3 GiB is not RAM. */
	ph(1)->p_paddr = EMBER_LOW_RAM_MAX;
	assert_int_equal(parse(sizeof(file), &img), 0);
	assert_int_equal(elf_load(&mem, &img, 0, UINT64_MAX, err, sizeof(err)),
			 -ERANGE);
}

/* Appends one note at `off` (4-byte aligned layout); returns its size. */
static size_t put_note(size_t off, const char *name, uint32_t type,
		       const void *desc, uint32_t descsz)
{
	Elf64_Nhdr nh = { .n_namesz = (uint32_t)strlen(name) + 1,
			  .n_descsz = descsz, .n_type = type };
	size_t namesz = (nh.n_namesz + 3) & ~3u, size;

	memcpy(file + off, &nh, sizeof(nh));
	memcpy(file + off + sizeof(nh), name, nh.n_namesz);
	memcpy(file + off + sizeof(nh) + namesz, desc, descsz);
	size = sizeof(nh) + namesz + ((descsz + 3) & ~3u);
	return size;
}

static void add_note_segment(size_t off, size_t size)
{
	eh()->e_phnum = 3;
	*ph(2) = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = off,
			       .p_filesz = size, .p_align = 4 };
}

static void test_ember_note(void **state)
{
	struct ember_entries_note en = { .syscall_entry = TEXT_GPA + 0x20,
					 .exception_entry = TEXT_GPA + 0x40 };
	uint32_t gnu[4] = { 0, 3, 2, 0 };
	struct elf_image img;
	size_t n;

	(void)state;
	/* A GNU ABI-tag note first, so the walker must skip one. */
	n = put_note(0x2800, "GNU", 1, gnu, sizeof(gnu));
	n += put_note(0x2800 + n, EMBER_NOTE_NAME, EMBER_NOTE_ENTRIES, &en,
		      sizeof(en));
	add_note_segment(0x2800, n);
	assert_int_equal(parse(sizeof(file), &img), 0);
	assert_true(img.has_entries_note);
	assert_int_equal(img.syscall_entry, TEXT_GPA + 0x20);
	assert_int_equal(img.exception_entry, TEXT_GPA + 0x40);
	assert_int_equal(img.nr_segs, 2); /* PT_NOTE is not loaded */

	/* Same name, other type: ignored. */
	memset(file + 0x2800, 0, 0x100);
	n = put_note(0x2800, EMBER_NOTE_NAME, 7, &en, sizeof(en));
	add_note_segment(0x2800, n);
	assert_int_equal(parse(sizeof(file), &img), 0);
	assert_false(img.has_entries_note);
}

static void test_bad_notes(void **state)
{
	struct ember_entries_note en = { .syscall_entry = TEXT_GPA + 0x20,
					 .exception_entry = TEXT_GPA + 0x40 };
	size_t n;

	(void)state;
	/* Wrong descriptor size. */
	n = put_note(0x2800, EMBER_NOTE_NAME, EMBER_NOTE_ENTRIES, &en, 8);
	add_note_segment(0x2800, n);
	expect_reject(-EINVAL);
	/* Entries outside any executable segment. */
	en.exception_entry = DATA_GPA;
	n = put_note(0x2800, EMBER_NOTE_NAME, EMBER_NOTE_ENTRIES, &en, sizeof(en));
	add_note_segment(0x2800, n);
	expect_reject(-EINVAL);
	/* A note claiming more bytes than its segment. */
	en.exception_entry = TEXT_GPA;
	n = put_note(0x2800, EMBER_NOTE_NAME, EMBER_NOTE_ENTRIES, &en, sizeof(en));
	((Elf64_Nhdr *)(file + 0x2800))->n_descsz = 0xffffffffu;
	add_note_segment(0x2800, n);
	expect_reject(-EINVAL);
	((Elf64_Nhdr *)(file + 0x2800))->n_descsz = sizeof(en);
	((Elf64_Nhdr *)(file + 0x2800))->n_namesz = 0xfffffff0u;
	expect_reject(-EINVAL);
	/* The note segment itself outside the file. */
	((Elf64_Nhdr *)(file + 0x2800))->n_namesz = sizeof(EMBER_NOTE_NAME);
	expect_reject(0);
	ph(2)->p_offset = FILE_SZ - 4;
	expect_reject(-EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_valid_parse),
		T(test_valid_load_zeroes_bss),
		T(test_truncated_header),
		T(test_file_too_big),
		T(test_wrong_ident),
		T(test_bad_program_headers),
		T(test_too_many_segments),
		T(test_filesz_gt_memsz),
		T(test_segment_outside_file),
		T(test_overlapping_segments),
		T(test_wrapping_and_absurd),
		T(test_entry_outside),
		T(test_no_load_segment_and_interp),
		T(test_load_range_checks),
		T(test_ember_note),
		T(test_bad_notes),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
