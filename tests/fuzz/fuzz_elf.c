/*
 * libFuzzer target for the ELF parser and loader (vmm/x86/elf.c): any byte
 * string goes through elf_parse(); what it accepts is loaded into a small
 * fake guest RAM. ASan/UBSan catch out-of-bounds reads of the file, writes
 * outside RAM and arithmetic overflow. Also checks the parser's promises on
 * what it accepts (segments inside the file, filesz <= memsz, no overlap).
 *   make fuzz-elf [FUZZ_SECONDS=60]
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "x86/elf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM_SZ (4u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	struct guest_mem mem;
	struct elf_image img;
	char err[128];

	if (!ram) {
		ram = malloc(RAM_SZ);
		if (!ram)
			abort();
	}
	mem_layout(&mem, ram, RAM_SZ);
	if (elf_parse(data, size, &img, err, sizeof(err)))
		return 0;
	if (img.nr_segs < 1 || img.nr_segs > ELF_MAX_SEGS)
		abort();
	for (unsigned i = 0; i < img.nr_segs; i++) {
		const struct elf_segment *s = &img.seg[i];

		if (s->filesz > s->memsz || s->offset > size ||
		    s->filesz > size - s->offset)
			abort();
		for (unsigned j = 0; j < i; j++) {
			const struct elf_segment *o = &img.seg[j];

			if (s->gpa < o->gpa + o->memsz && o->gpa < s->gpa + s->memsz)
				abort();
		}
	}
	(void)elf_load(&mem, &img, 0x100000, RAM_SZ, err, sizeof(err));
	return 0;
}
