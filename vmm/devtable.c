/*
 * devtable.c - the virtio device types (devtable.h). A new device is its
 * own file (defining `const struct vm_device_type NAME`) and one line in
 * VM_DEVICES below. Booting, instances take their MMIO windows in this
 * order: disks first, then vsock, then the rest (guests and snapshots
 * taken before a device was added rely on that order).
 */
#include "devtable.h"

#include <string.h>

#define VM_DEVICES(X)                                                         \
	X(vblk_type)                                                          \
	X(vsock_type)                                                         \
	X(vrng_type)

#define DECLARE(type) extern const struct vm_device_type type;
VM_DEVICES(DECLARE)
#undef DECLARE

#define ENTRY(type) &type,
const struct vm_device_type *const vm_device_types[] = {
	VM_DEVICES(ENTRY) NULL
};
#undef ENTRY

const struct vm_device_type *vm_device_type_find(const char *kind)
{
	for (unsigned i = 0; vm_device_types[i]; i++)
		if (!strcmp(vm_device_types[i]->name, kind))
			return vm_device_types[i];
	return NULL;
}
