/*
 * snap_prop.c - a device's own properties in its snapshot node (snap.h):
 * set by the device when it saves, read and checked by it when it
 * restores. The values come back from a file: every getter checks the
 * exact size (cells) or the termination and length (strings).
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "snapshots/snap.h"

/* prop_err()'s job, here so that a device links only this file. */
static void prop_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void prop_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int snap_prop_set(struct snap_virtio_dev *d, const char *name,
		  const void *data, size_t len)
{
	struct snap_prop *p;
	size_t n = strlen(name);

	if (!n || n >= SNAP_DEV_PROP_NAME_MAX || snap_prop_find(d, name))
		return -EINVAL;
	if (d->nr_props >= SNAP_MAX_DEV_PROPS || len > SNAP_DEV_PROP_MAX)
		return -E2BIG;
	p = &d->props[d->nr_props++];
	memset(p, 0, sizeof(*p));
	memcpy(p->name, name, n + 1);
	memcpy(p->data, data, len);
	p->len = (uint32_t)len;
	return 0;
}

int snap_prop_set_u32(struct snap_virtio_dev *d, const char *name, uint32_t v)
{
	uint32_t be = htobe32(v);

	return snap_prop_set(d, name, &be, sizeof(be));
}

int snap_prop_set_u64(struct snap_virtio_dev *d, const char *name, uint64_t v)
{
	uint64_t be = htobe64(v);

	return snap_prop_set(d, name, &be, sizeof(be));
}

int snap_prop_set_str(struct snap_virtio_dev *d, const char *name,
		      const char *v)
{
	return snap_prop_set(d, name, v, strlen(v) + 1);
}

const struct snap_prop *snap_prop_find(const struct snap_virtio_dev *d,
				       const char *name)
{
	for (uint32_t i = 0; i < d->nr_props && i < SNAP_MAX_DEV_PROPS; i++)
		if (!strcmp(d->props[i].name, name))
			return &d->props[i];
	return NULL;
}

/* The prop `name` of exactly `len` bytes, or NULL + *ret and a reason. */
static const struct snap_prop *sized(const struct snap_virtio_dev *d,
				     const char *name, size_t len, int *ret,
				     char *err, size_t errlen)
{
	const struct snap_prop *p = snap_prop_find(d, name);

	if (!p) {
		prop_err(err, errlen, "%s: missing property %s", d->kind,
			    name);
		*ret = -ENOENT;
		return NULL;
	}
	if (p->len != len) {
		prop_err(err, errlen, "%s: property %s is %u bytes, expected "
			    "%zu", d->kind, name, p->len, len);
		*ret = -EINVAL;
		return NULL;
	}
	return p;
}

int snap_prop_u32(const struct snap_virtio_dev *d, const char *name,
		  uint32_t *v, char *err, size_t errlen)
{
	const struct snap_prop *p;
	uint32_t be;
	int ret = 0;

	p = sized(d, name, sizeof(be), &ret, err, errlen);
	if (!p)
		return ret;
	memcpy(&be, p->data, sizeof(be));
	*v = be32toh(be);
	return 0;
}

int snap_prop_u64(const struct snap_virtio_dev *d, const char *name,
		  uint64_t *v, char *err, size_t errlen)
{
	const struct snap_prop *p;
	uint64_t be;
	int ret = 0;

	p = sized(d, name, sizeof(be), &ret, err, errlen);
	if (!p)
		return ret;
	memcpy(&be, p->data, sizeof(be));
	*v = be64toh(be);
	return 0;
}

int snap_prop_str(const struct snap_virtio_dev *d, const char *name,
		  char *buf, size_t cap, char *err, size_t errlen)
{
	const struct snap_prop *p = snap_prop_find(d, name);

	if (!p) {
		prop_err(err, errlen, "%s: missing property %s", d->kind,
			    name);
		return -ENOENT;
	}
	if (p->len < 1 || p->len > cap || p->len > SNAP_DEV_PROP_MAX ||
	    p->data[p->len - 1] != '\0' ||
	    strlen((const char *)p->data) != p->len - 1) {
		prop_err(err, errlen, "%s: property %s is not a string of at "
			    "most %zu bytes", d->kind, name, cap - 1);
		return -EINVAL;
	}
	memcpy(buf, p->data, p->len);
	return 0;
}
