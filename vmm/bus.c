#include "bus.h"

#include <errno.h>
#include <string.h>

int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 bus_handler_fn fn, void *opaque)
{
	unsigned pos;

	if (len == 0 || base + len < base || !fn)
		return -EINVAL;
	if (bus->nr == BUS_MAX_RANGES)
		return -ENOSPC;
	for (pos = 0; pos < bus->nr; pos++) {
		const struct bus_range *r = &bus->range[pos];

		if (base < r->base + r->len && r->base < base + len)
			return -EEXIST;
		if (base < r->base)
			break;
	}
	memmove(&bus->range[pos + 1], &bus->range[pos],
		(bus->nr - pos) * sizeof(bus->range[0]));
	bus->range[pos] = (struct bus_range){ base, len, fn, opaque };
	bus->nr++;
	return 0;
}

int bus_dispatch(const struct bus *bus, uint64_t addr, uint8_t *data,
		 uint32_t len, bool is_write)
{
	unsigned lo = 0, hi = bus->nr;

	/* Binary search for the last range whose base <= addr. */
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (bus->range[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return -ENOENT;
	const struct bus_range *r = &bus->range[lo - 1];
	uint64_t off = addr - r->base;

	if (off >= r->len || len > r->len - off)
		return -ENOENT;
	return r->fn(r->opaque, off, data, len, is_write);
}
