/*
 * bus.h - address -> device dispatch for port I/O and MMIO exits.
 *
 * Owns: two sorted tables of non-overlapping ranges (one per address space)
 * and the handlers registered on them. Registration happens at VM setup, on
 * one thread; dispatch is then read-only and called from vCPU threads, so a
 * device handler must do its own locking.
 */
#ifndef EMBER_BUS_H
#define EMBER_BUS_H

#include <stdbool.h>
#include <stdint.h>

enum bus_space { BUS_PIO = 0, BUS_MMIO = 1 };

/*
 * A device's access handler. `offset` is relative to the registered base;
 * `data` holds `len` bytes (1, 2, 4 or 8) to write, or receives the bytes
 * read. Returns 0, or a negative errno that stops the VM (use it only for
 * impossible states; a confused guest is answered, not punished).
 */
typedef int (*bus_handler_fn)(void *opaque, uint64_t offset, uint8_t *data,
			      uint32_t len, bool is_write);

#define BUS_MAX_RANGES 64

struct bus_range {
	uint64_t base;
	uint64_t len;
	bus_handler_fn fn;
	void *opaque;
};

struct bus {
	struct bus_range range[BUS_MAX_RANGES];
	unsigned nr;
};

/* Registers [base, base + len). -EINVAL on an empty or wrapping range,
 * -EEXIST when it overlaps another, -ENOSPC when the table is full. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 bus_handler_fn fn, void *opaque);

/* Dispatches one access. -ENOENT when no device claims every byte of it. */
int bus_dispatch(const struct bus *bus, uint64_t addr, uint8_t *data,
		 uint32_t len, bool is_write);

#endif
