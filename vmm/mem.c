#include "mem.h"

#include <errno.h>
#include <string.h>

#include "include/ember/abi.h"

void *mem_gpa_to_hva(const struct guest_mem *mem, gpa_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->region[i];
		uint64_t off;

		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		off = gpa - r->gpa;
		/* off < size, so size - off cannot underflow. */
		if (len > r->size - off)
			return NULL;
		return r->hva + off;
	}
	return NULL;
}

int mem_read(const struct guest_mem *mem, void *dst, gpa_t gpa, uint64_t len)
{
	void *src = mem_gpa_to_hva(mem, gpa, len);

	if (!src)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}

int mem_write(const struct guest_mem *mem, gpa_t gpa, const void *src,
	      uint64_t len)
{
	void *dst = mem_gpa_to_hva(mem, gpa, len);

	if (!dst)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}

void mem_layout(struct guest_mem *mem, uint8_t *hva, uint64_t ram_size)
{
	uint64_t low = ram_size < EMBER_LOW_RAM_MAX ? ram_size : EMBER_LOW_RAM_MAX;

	memset(mem, 0, sizeof(*mem));
	mem->region[0] = (struct mem_region){ .gpa = 0, .size = low, .hva = hva };
	mem->nr_regions = 1;
	if (ram_size > low) {
		mem->region[1] = (struct mem_region){
			.gpa = EMBER_HIGH_RAM_BASE,
			.size = ram_size - low,
			.hva = hva + low,
		};
		mem->nr_regions = 2;
	}
	mem->total = ram_size;
}
