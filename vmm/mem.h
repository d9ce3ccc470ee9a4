/*
 * mem.h - guest physical memory and the one checked gpa -> hva accessor.
 *
 * Owns: the description of guest RAM as up to two regions (below the 3 GiB
 * MMIO hole and above 4 GiB) backed by host mappings. It does not create the
 * mappings or the KVM memory slots (kvm.c does); tests build a guest_mem over
 * a heap buffer. Every access to guest memory in the VMM goes through
 * mem_gpa_to_hva(): no other code does arithmetic on guest addresses. Read
 * only after setup, so any thread may call it.
 */
#ifndef EMBER_MEM_H
#define EMBER_MEM_H

#include <stddef.h>
#include <stdint.h>

typedef uint64_t gpa_t;

#define MEM_MAX_REGIONS 2

struct mem_region {
	gpa_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct guest_mem {
	struct mem_region region[MEM_MAX_REGIONS];
	unsigned nr_regions;
	uint64_t total; /* sum of region sizes */
};

/*
 * Returns a host pointer to guest bytes [gpa, gpa + len) when the whole range
 * lies inside one RAM region, else NULL (overflow, holes, past the end). A
 * zero len is valid inside RAM (gpa < region end).
 */
void *mem_gpa_to_hva(const struct guest_mem *mem, gpa_t gpa, uint64_t len);

/* Copy helpers over mem_gpa_to_hva(): 0 or -EFAULT. */
int mem_read(const struct guest_mem *mem, void *dst, gpa_t gpa, uint64_t len);
int mem_write(const struct guest_mem *mem, gpa_t gpa, const void *src,
	      uint64_t len);

/* Splits `ram_size` bytes of RAM at hva into the regions of the guest ABI
 * (low RAM up to EMBER_LOW_RAM_MAX, the rest from 4 GiB). */
void mem_layout(struct guest_mem *mem, uint8_t *hva, uint64_t ram_size);

#endif
