/*
 * snap_read.c - parse the state FDT into struct snap_vm.
 *
 * The blob is hostile input: it may come from another host, another build,
 * a full disk or an attacker who can write the snapshot store. So its size
 * is capped, libfdt checks the whole structure (fdt_check_full) before any
 * lookup, every property's presence and exact length are checked before it
 * is copied, counts are capped before they index anything, strings must be
 * NUL-terminated within their cap, and the result then goes through
 * snap_validate() (snap_validate.c). Reading the file is snap_file.c's.
 */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "snapshots/snap.h"
#include "virtio/virtio.h"

/* ---- structural parsing of the blob ---- */

/* A parse context: the checked blob and the error sink. */
struct rd {
	const void *fdt;
	char *err;
	size_t errlen;
};

/* Returns the node `name` under `parent`, or -EINVAL with a message. */
static int rd_node(struct rd *r, int parent, const char *name)
{
	int off = fdt_subnode_offset(r->fdt, parent, name);

	if (off < 0) {
		snap_seterr(r->err, r->errlen, "missing node %s", name);
		return -EINVAL;
	}
	return off;
}

/* Copies property `name` of exactly `size` bytes into dst. Returns 1 when
 * copied, 0 when absent (only if `optional`), -EINVAL otherwise. */
static int rd_blob(struct rd *r, int node, const char *where,
		   const char *name, void *dst, size_t size, bool optional)
{
	int len;
	const void *p = fdt_getprop(r->fdt, node, name, &len);

	if (!p) {
		if (optional && len == -FDT_ERR_NOTFOUND)
			return 0;
		snap_seterr(r->err, r->errlen, "%s: missing property %s", where,
			    name);
		return -EINVAL;
	}
	if (len < 0 || (size_t)len != size) {
		snap_seterr(r->err, r->errlen,
			    "%s: property %s is %d bytes, expected %zu", where,
			    name, len, size);
		return -EINVAL;
	}
	memcpy(dst, p, size);
	return 1;
}

static int rd_u32(struct rd *r, int node, const char *where,
		  const char *name, uint32_t *v)
{
	fdt32_t be;
	int ret = rd_blob(r, node, where, name, &be, sizeof(be), false);

	if (ret < 0)
		return ret;
	*v = fdt32_to_cpu(be);
	return 0;
}

static int rd_u64(struct rd *r, int node, const char *where,
		  const char *name, uint64_t *v)
{
	fdt64_t be;
	int ret = rd_blob(r, node, where, name, &be, sizeof(be), false);

	if (ret < 0)
		return ret;
	*v = fdt64_to_cpu(be);
	return 0;
}

/* A string property: NUL-terminated, no embedded NUL, at most cap bytes
 * including the NUL. */
static int rd_str(struct rd *r, int node, const char *where,
		  const char *name, char *dst, size_t cap)
{
	int len;
	const char *p = fdt_getprop(r->fdt, node, name, &len);

	if (!p) {
		snap_seterr(r->err, r->errlen, "%s: missing property %s", where,
			    name);
		return -EINVAL;
	}
	if (len < 1 || (size_t)len > cap || p[len - 1] != '\0' ||
	    strlen(p) != (size_t)len - 1) {
		snap_seterr(r->err, r->errlen,
			    "%s: property %s is not a string of at most %zu "
			    "bytes",
			    where, name, cap - 1);
		return -EINVAL;
	}
	memcpy(dst, p, (size_t)len);
	return 0;
}

/* A numbered node name@N must carry reg = <N>. */
static int rd_reg(struct rd *r, int node, const char *where, unsigned idx)
{
	uint32_t reg;
	int ret = rd_u32(r, node, where, "reg", &reg);

	if (ret == 0 && reg != idx) {
		snap_seterr(r->err, r->errlen, "%s: reg is %u", where, reg);
		ret = -EINVAL;
	}
	return ret;
}

static int count_subnodes(const void *fdt, int parent)
{
	int node, n = 0;

	fdt_for_each_subnode(node, fdt, parent)
		n++;
	return n;
}

static int rd_cpu_fp(struct rd *r, struct snap_cpu_fp *fp)
{
	const char *w = "/cpu-fingerprint";
	fdt32_t words[SNAP_CPU_WORDS];
	int node, ret;

	node = rd_node(r, 0, "cpu-fingerprint");
	if (node < 0)
		return node;
	ret = rd_str(r, node, w, "vendor", fp->vendor, sizeof(fp->vendor));
	if (ret == 0 && strlen(fp->vendor) != 12) {
		snap_seterr(r->err, r->errlen, "%s: vendor must be 12 chars", w);
		ret = -EINVAL;
	}
	if (ret == 0)
		ret = rd_u32(r, node, w, "cpuid-family", &fp->family);
	if (ret == 0)
		ret = rd_u32(r, node, w, "cpuid-model", &fp->model);
	if (ret == 0)
		ret = rd_u32(r, node, w, "cpuid-stepping", &fp->stepping);
	if (ret == 0)
		ret = rd_blob(r, node, w, "features", words, sizeof(words),
			      false);
	if (ret < 0)
		return ret;
	for (unsigned i = 0; i < SNAP_CPU_WORDS; i++)
		fp->words[i] = fdt32_to_cpu(words[i]);
	return 0;
}

static int rd_machine(struct rd *r, struct snap_machine *m)
{
	const char *w = "/machine";
	char kind[16];
	int node, ret;

	node = rd_node(r, 0, "machine");
	if (node < 0)
		return node;
	ret = rd_u64(r, node, w, "memory-size", &m->mem_size);
	if (ret == 0)
		ret = rd_u32(r, node, w, "vcpus", &m->nr_vcpus);
	if (ret == 0)
		ret = rd_str(r, node, w, "guest-kind", kind, sizeof(kind));
	if (ret == 0)
		ret = rd_str(r, node, w, "cmdline", m->cmdline,
			     sizeof(m->cmdline));
	if (ret < 0)
		return ret;
	for (m->kind = 0; m->kind <= SNAP_GUEST_LINUX; m->kind++)
		if (!strcmp(kind, snap_guest_kind_name(m->kind)))
			break;
	if (m->kind > SNAP_GUEST_LINUX) {
		snap_seterr(r->err, r->errlen, "%s: unknown guest-kind \"%s\"",
			    w, kind);
		return -EINVAL;
	}
	/* Checked here as well as in snap_validate(): it bounds the vcpu
	 * loop below. */
	if (m->nr_vcpus < 1 || m->nr_vcpus > SNAP_MAX_VCPUS) {
		snap_seterr(r->err, r->errlen, "%u vCPUs (1..%u)", m->nr_vcpus,
			    SNAP_MAX_VCPUS);
		return -EINVAL;
	}
	return 0;
}

static int rd_vm(struct rd *r, struct snap_vm *s)
{
	const char *w = "/vm";
	int node, a, b, c;

	node = rd_node(r, 0, "vm");
	if (node < 0)
		return node;
	a = rd_blob(r, node, w, "pic-master",
		    &s->irqchip[KVM_IRQCHIP_PIC_MASTER],
		    sizeof(struct kvm_irqchip), true);
	if (a < 0)
		return a;
	b = rd_blob(r, node, w, "pic-slave", &s->irqchip[KVM_IRQCHIP_PIC_SLAVE],
		    sizeof(struct kvm_irqchip), true);
	if (b < 0)
		return b;
	c = rd_blob(r, node, w, "ioapic", &s->irqchip[KVM_IRQCHIP_IOAPIC],
		    sizeof(struct kvm_irqchip), true);
	if (c < 0)
		return c;
	/* KVM_CREATE_IRQCHIP makes all three, so a partial set is corrupt. */
	if (a != b || b != c) {
		snap_seterr(r->err, r->errlen,
			    "%s: pic-master, pic-slave and ioapic must come "
			    "together", w);
		return -EINVAL;
	}
	s->has_irqchip = a;
	a = rd_blob(r, node, w, "pit", &s->pit, sizeof(s->pit), true);
	if (a < 0)
		return a;
	s->has_pit = a;
	a = rd_blob(r, node, w, "clock", &s->clock, sizeof(s->clock), true);
	if (a < 0)
		return a;
	s->has_clock = a;
	return 0;
}

static int rd_bool_byte(struct rd *r, const char *where, uint8_t v, bool *out)
{
	if (v > 1) {
		snap_seterr(r->err, r->errlen, "%s: flag byte %u is not 0/1",
			    where, v);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static int rd_serial(struct rd *r, struct snap_vm *s)
{
	struct snap_le_serial le;
	int node, ret;

	node = fdt_subnode_offset(r->fdt, 0, "serial");
	if (node == -FDT_ERR_NOTFOUND)
		return 0;
	if (node < 0)
		return rd_node(r, 0, "serial");
	ret = rd_blob(r, node, "/serial", "regs", &le, sizeof(le), false);
	if (ret < 0)
		return ret;
	if (!all_zero(le.reserved, sizeof(le.reserved))) {
		snap_seterr(r->err, r->errlen, "/serial: reserved bytes set");
		return -EINVAL;
	}
	s->has_serial = true;
	s->serial = (struct snap_serial){
		.rbr = le.rbr, .ier = le.ier, .iir = le.iir, .fcr = le.fcr,
		.lcr = le.lcr, .mcr = le.mcr, .lsr = le.lsr, .msr = le.msr,
		.scr = le.scr, .dll = le.dll, .dlm = le.dlm,
	};
	return 0;
}

static int rd_vcpu(struct rd *r, int node, const char *w, struct snap_vcpu *v)
{
	const void *p;
	int len, ret;

	ret = rd_blob(r, node, w, "regs", &v->regs, sizeof(v->regs), false);
	if (ret >= 0)
		ret = rd_blob(r, node, w, "sregs", &v->sregs, sizeof(v->sregs),
			      false);
	if (ret < 0)
		return ret;
	ret = rd_blob(r, node, w, "xsave", &v->xsave, sizeof(v->xsave), true);
	if (ret < 0)
		return ret;
	v->has_xsave = ret;
	ret = rd_blob(r, node, w, "fpu", &v->fpu, sizeof(v->fpu), true);
	if (ret < 0)
		return ret;
	v->has_fpu = ret;
	ret = rd_blob(r, node, w, "xcrs", &v->xcrs, sizeof(v->xcrs), true);
	if (ret < 0)
		return ret;
	v->has_xcrs = ret;
	ret = rd_blob(r, node, w, "lapic", &v->lapic, sizeof(v->lapic), true);
	if (ret < 0)
		return ret;
	v->has_lapic = ret;
	ret = rd_blob(r, node, w, "events", &v->events, sizeof(v->events),
		      false);
	if (ret >= 0)
		ret = rd_blob(r, node, w, "mp-state", &v->mp_state,
			      sizeof(v->mp_state), false);
	if (ret >= 0)
		ret = rd_blob(r, node, w, "debugregs", &v->debugregs,
			      sizeof(v->debugregs), false);
	if (ret >= 0)
		ret = rd_u64(r, node, w, "tsc", &v->tsc);
	if (ret >= 0)
		ret = rd_u32(r, node, w, "tsc-khz", &v->tsc_khz);
	if (ret < 0)
		return ret;
	/* MSRs: a whole number of 16-byte entries, capped before copying. */
	p = fdt_getprop(r->fdt, node, "msrs", &len);
	if (!p) {
		snap_seterr(r->err, r->errlen, "%s: missing property msrs", w);
		return -EINVAL;
	}
	if (len % sizeof(v->msrs[0]) ||
	    (size_t)len / sizeof(v->msrs[0]) > SNAP_MAX_MSRS) {
		snap_seterr(r->err, r->errlen,
			    "%s: msrs is %d bytes: not a multiple of %zu or "
			    "more than %u entries",
			    w, len, sizeof(v->msrs[0]), SNAP_MAX_MSRS);
		return -EINVAL;
	}
	v->nr_msrs = (uint32_t)((size_t)len / sizeof(v->msrs[0]));
	for (uint32_t i = 0; i < v->nr_msrs; i++) {
		struct kvm_msr_entry e;

		memcpy(&e, (const uint8_t *)p + i * sizeof(e), sizeof(e));
		v->msrs[i].index = le32toh(e.index);
		v->msrs[i].reserved = le32toh(e.reserved);
		v->msrs[i].data = le64toh(e.data);
	}
	return 0;
}

static int rd_vcpus(struct rd *r, struct snap_vm *s)
{
	char name[16], where[32];
	int cpus, node, ret, n;

	cpus = rd_node(r, 0, "cpus");
	if (cpus < 0)
		return cpus;
	n = count_subnodes(r->fdt, cpus);
	if (n != (int)s->machine.nr_vcpus) {
		snap_seterr(r->err, r->errlen,
			    "/cpus has %d nodes for %u vCPUs", n,
			    s->machine.nr_vcpus);
		return -EINVAL;
	}
	for (unsigned i = 0; i < s->machine.nr_vcpus; i++) {
		snprintf(name, sizeof(name), "cpu@%u", i);
		snprintf(where, sizeof(where), "/cpus/%s", name);
		node = rd_node(r, cpus, name);
		if (node < 0)
			return node;
		ret = rd_reg(r, node, where, i);
		memset(&s->vcpu[i], 0, sizeof(s->vcpu[i]));
		if (ret == 0)
			ret = rd_vcpu(r, node, where, &s->vcpu[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int rd_transport(struct rd *r, int node, const char *w,
			struct snap_virtio_dev *d)
{
	struct snap_le_transport t;
	struct snap_le_virtq q[SNAP_MAX_QUEUES + 1];
	const void *p;
	int len, ret;

	ret = rd_blob(r, node, w, "transport", &t, sizeof(t), false);
	if (ret < 0)
		return ret;
	if (!all_zero(t.reserved, sizeof(t.reserved))) {
		snap_seterr(r->err, r->errlen, "%s: transport reserved bytes",
			    w);
		return -EINVAL;
	}
	d->status = le32toh(t.status);
	d->device_features_sel = le32toh(t.device_features_sel);
	d->driver_features_sel = le32toh(t.driver_features_sel);
	d->queue_sel = le32toh(t.queue_sel);
	d->driver_features = le64toh(t.driver_features);
	d->acked_features = le64toh(t.acked_features);
	d->interrupt_status = le32toh(t.interrupt_status);
	d->config_generation = le32toh(t.config_generation);
	ret = rd_bool_byte(r, w, t.activated, &d->activated);
	if (ret < 0)
		return ret;

	p = fdt_getprop(r->fdt, node, "queues", &len);
	if (!p || len <= 0 || len % sizeof(q[0]) ||
	    (size_t)len / sizeof(q[0]) > SNAP_MAX_QUEUES) {
		snap_seterr(r->err, r->errlen,
			    "%s: queues must be 1..%u entries of %zu bytes", w,
			    SNAP_MAX_QUEUES, sizeof(q[0]));
		return -EINVAL;
	}
	d->nr_queues = (uint32_t)((size_t)len / sizeof(q[0]));
	memcpy(q, p, (size_t)len);
	for (unsigned i = 0; i < d->nr_queues; i++) {
		struct snap_virtq *v = &d->vq[i];

		if (!all_zero(q[i].reserved, sizeof(q[i].reserved))) {
			snap_seterr(r->err, r->errlen,
				    "%s: queue %u reserved bytes", w, i);
			return -EINVAL;
		}
		v->size = le16toh(q[i].size);
		v->last_avail = le16toh(q[i].last_avail);
		v->used_idx = le16toh(q[i].used_idx);
		v->signalled_used = le16toh(q[i].signalled_used);
		v->desc_gpa = le64toh(q[i].desc_gpa);
		v->avail_gpa = le64toh(q[i].avail_gpa);
		v->used_gpa = le64toh(q[i].used_gpa);
		ret = rd_bool_byte(r, w, q[i].ready, &v->ready);
		if (ret >= 0)
			ret = rd_bool_byte(r, w, q[i].event_idx, &v->event_idx);
		if (ret >= 0)
			ret = rd_bool_byte(r, w, q[i].signalled_valid,
					   &v->signalled_valid);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The properties every device node has; all others are the device's. */
static bool generic_prop(const char *name)
{
	static const char *const names[] = {
		"reg", "device-id", "mmio-base", "gsi", "transport", "queues",
		"kind",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

static int rd_device(struct rd *r, int node, const char *w,
		     struct snap_virtio_dev *d)
{
	int off, ret;

	ret = rd_u32(r, node, w, "device-id", &d->device_id);
	if (ret >= 0)
		ret = rd_u64(r, node, w, "mmio-base", &d->mmio_base);
	if (ret >= 0)
		ret = rd_u32(r, node, w, "gsi", &d->gsi);
	if (ret >= 0)
		ret = rd_transport(r, node, w, d);
	if (ret >= 0)
		ret = rd_str(r, node, w, "kind", d->kind, sizeof(d->kind));
	if (ret < 0)
		return ret;
	/* The device's own properties: copied as they are, bounded in count
	 * and size; the device checks what they say when it restores. */
	fdt_for_each_property_offset(off, r->fdt, node) {
		const char *name;
		const void *val;
		struct snap_prop *p;
		int len;

		val = fdt_getprop_by_offset(r->fdt, off, &name, &len);
		if (!val || len < 0) {
			snap_seterr(r->err, r->errlen, "%s: unreadable property",
				    w);
			return -EINVAL;
		}
		if (generic_prop(name))
			continue;
		if (d->nr_props == SNAP_MAX_DEV_PROPS ||
		    strlen(name) >= SNAP_DEV_PROP_NAME_MAX ||
		    (size_t)len > SNAP_DEV_PROP_MAX) {
			snap_seterr(r->err, r->errlen,
				    "%s: property %.40s: more than %u device "
				    "properties, a name over %u bytes or a value "
				    "over %u bytes", w, name, SNAP_MAX_DEV_PROPS,
				    SNAP_DEV_PROP_NAME_MAX - 1, SNAP_DEV_PROP_MAX);
			return -EINVAL;
		}
		p = &d->props[d->nr_props++];
		memcpy(p->name, name, strlen(name) + 1);
		memcpy(p->data, val, (size_t)len);
		p->len = (uint32_t)len;
	}
	return 0;
}

static int rd_devices(struct rd *r, struct snap_vm *s)
{
	char name[24], where[40];
	int devs, node, ret, n;

	devs = rd_node(r, 0, "devices");
	if (devs < 0)
		return devs;
	n = count_subnodes(r->fdt, devs);
	if (n > SNAP_MAX_DEVICES) {
		snap_seterr(r->err, r->errlen, "%d devices (max %u)", n,
			    SNAP_MAX_DEVICES);
		return -EINVAL;
	}
	s->nr_devices = (uint32_t)n;
	/* Devices are numbered by window: virtio@0 .. virtio@n-1, no gaps. */
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "virtio@%d", i);
		snprintf(where, sizeof(where), "/devices/%s", name);
		node = rd_node(r, devs, name);
		if (node < 0)
			return node;
		ret = rd_reg(r, node, where, (unsigned)i);
		memset(&s->dev[i], 0, sizeof(s->dev[i]));
		if (ret == 0)
			ret = rd_device(r, node, where, &s->dev[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int parse_checked(struct rd *r, struct snap_vm *s)
{
	char compat[32];
	uint32_t version;
	int ret;

	/* Not ours: say so rather than complaining about a missing node. */
	if (rd_str(r, 0, "/", "compatible", compat, sizeof(compat)) < 0 ||
	    strcmp(compat, SNAP_COMPATIBLE)) {
		snap_seterr(r->err, r->errlen,
			    "not an Ember snapshot (compatible is not \"%s\")",
			    SNAP_COMPATIBLE);
		return -EINVAL;
	}
	ret = rd_u32(r, 0, "/", "ember,format-version", &version);
	if (ret < 0)
		return ret;
	if (version > SNAP_FORMAT_VERSION) {
		snap_seterr(r->err, r->errlen,
			    "snapshot format version %u is newer than this "
			    "build reads (%u): restore it with a newer Ember",
			    version, SNAP_FORMAT_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (version == 0) {
		snap_seterr(r->err, r->errlen, "snapshot format version 0");
		return -EINVAL;
	}
	s->format_version = version;
	ret = rd_cpu_fp(r, &s->cpu);
	if (ret >= 0)
		ret = rd_machine(r, &s->machine);
	if (ret >= 0)
		ret = rd_vm(r, s);
	if (ret >= 0)
		ret = rd_serial(r, s);
	if (ret >= 0)
		ret = rd_vcpus(r, s);
	if (ret >= 0)
		ret = rd_devices(r, s);
	if (ret < 0)
		return ret;
	return snap_validate(s, r->err, r->errlen);
}

int snap_parse_state(const void *blob, size_t len, struct snap_vm *s,
		     char *err, size_t errlen)
{
	struct rd r = { .err = err, .errlen = errlen };
	void *copy = NULL;
	int ret;

	if (len > SNAP_MAX_STATE_SIZE) {
		snap_seterr(err, errlen, "state is %zu bytes, limit %u", len,
			    SNAP_MAX_STATE_SIZE);
		return -EFBIG;
	}
	if (len < sizeof(struct fdt_header)) {
		snap_seterr(err, errlen, "state is truncated (%zu bytes)", len);
		return -EINVAL;
	}
	/* libfdt wants an 8-byte aligned blob (FDT_ERR_ALIGNMENT). */
	if ((uintptr_t)blob & 7) {
		copy = malloc(len);
		if (!copy) {
			snap_seterr(err, errlen, "out of memory");
			return -ENOMEM;
		}
		memcpy(copy, blob, len);
		blob = copy;
	}
	ret = fdt_check_header(blob);
	if (ret == 0 && fdt_totalsize(blob) > len) {
		snap_seterr(err, errlen,
			    "state is truncated: header says %u bytes, file has "
			    "%zu",
			    fdt_totalsize(blob), len);
		ret = -EINVAL;
		goto out;
	}
	/* Every node, property and string offset checked once, up front:
	 * after this libfdt lookups stay inside the blob. */
	if (ret == 0)
		ret = fdt_check_full(blob, len);
	if (ret != 0) {
		snap_seterr(err, errlen, "state is not a valid FDT: %s",
			    fdt_strerror(ret));
		ret = -EINVAL;
		goto out;
	}
	/* Not the whole ~1 MiB: zeroing it touched ~240 fresh pages, each a
	 * page fault (several us on nested PVM), on every restore. The vcpu[]
	 * and dev[] entries are zeroed one by one as they are parsed. */
	memset(s, 0, offsetof(struct snap_vm, dev));
	r.fdt = blob;
	ret = parse_checked(&r, s);
out:
	free(copy);
	return ret;
}
