/*
 * i8042.h - the PC keyboard controller, reduced to what guests use: the
 * reset line. Writing command 0xfe to port 0x64 (how Linux reboots with
 * reboot=k, and how Ember's test guests power off) ends the VM cleanly.
 * Reads return an idle controller. Called from vCPU threads.
 */
#ifndef EMBER_I8042_H
#define EMBER_I8042_H

#include <stdbool.h>
#include <stdint.h>

struct i8042 {
	void (*on_reset)(void *opaque);
	void *opaque;
};

void i8042_init(struct i8042 *k, void (*on_reset)(void *opaque),
		void *opaque);
/* Bus handler for ports 0x60 and 0x64 (register both with this handler;
 * the offset is 0 for each single-port range, so opaque picks the port). */
int i8042_data_access(void *opaque, uint64_t offset, uint8_t *data,
		      uint32_t len, bool is_write);
int i8042_cmd_access(void *opaque, uint64_t offset, uint8_t *data,
		     uint32_t len, bool is_write);

#endif
