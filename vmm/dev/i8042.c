#include "i8042.h"

#include <string.h>

#include "ember/abi.h"

void i8042_init(struct i8042 *k, void (*on_reset)(void *opaque), void *opaque)
{
	k->on_reset = on_reset;
	k->opaque = opaque;
}

int i8042_data_access(void *opaque, uint64_t offset, uint8_t *data,
		      uint32_t len, bool is_write)
{
	(void)opaque;
	(void)offset;
	if (!is_write)
		memset(data, 0, len); /* no keyboard, no data */
	return 0;
}

int i8042_cmd_access(void *opaque, uint64_t offset, uint8_t *data,
		     uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;

	(void)offset;
	if (!is_write) {
		/* Status: output buffer empty, input buffer empty. */
		memset(data, 0, len);
		return 0;
	}
	if (data[0] == EMBER_I8042_CMD_RESET && k->on_reset)
		k->on_reset(k->opaque);
	return 0;
}
