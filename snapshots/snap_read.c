/*
 * snap_read.c - read and validate the state FDT; the CPU fingerprint.
 *
 * The state file is hostile input: it may come from another host, another
 * build, a full disk or an attacker who can write the snapshot store. So
 * the blob's size is capped before it is read, libfdt checks the whole
 * structure (fdt_check_full) before any lookup, every property's presence
 * and exact length are checked before it is copied, counts are capped
 * before they index anything, strings must be NUL-terminated within their
 * cap, and the result then goes through the same semantic checks as a
 * fresh device (snap_validate: queue programming as virtq_activate checks
 * it, virtio 1.2 section 2.7; ring indices; addresses inside RAM).
 */
#include <cpuid.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libfdt.h>

#include "snapshots/snap.h"
#include "virtio/virtio.h"

void snap_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int snap_open_regular(const char *dir, const char *name, char *path,
		      size_t pathlen, struct stat *st, char *err, size_t errlen)
{
	int fd, ret;

	if (snprintf(path, pathlen, "%s/%s", dir, name) >= (int)pathlen) {
		snap_seterr(err, errlen, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snap_seterr(err, errlen, "open %s: %s", path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, st) < 0) {
		ret = -errno;
		snap_seterr(err, errlen, "stat %s: %s", path, strerror(-ret));
		close(fd);
		return ret;
	}
	if (!S_ISREG(st->st_mode)) {
		snap_seterr(err, errlen, "%s is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static const char *const kind_names[] = {
	[SNAP_GUEST_PLAIN] = "plain",
	[SNAP_GUEST_MICRO] = "micro",
	[SNAP_GUEST_LINUX] = "linux",
};

const char *snap_guest_kind_name(uint32_t kind)
{
	if (kind < sizeof(kind_names) / sizeof(kind_names[0]))
		return kind_names[kind];
	return "unknown";
}

/* ---- semantic validation, shared with the writer ---- */

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/* True when [gpa, gpa + len) lies inside guest RAM of `mem_size` bytes laid
 * out as mem_layout() does (low RAM below the MMIO hole, the rest from
 * 4 GiB). Arithmetic only: nothing is dereferenced. */
static bool gpa_range_in_ram(uint64_t gpa, uint64_t len, uint64_t mem_size)
{
	uint64_t low = mem_size < EMBER_LOW_RAM_MAX ? mem_size
						    : EMBER_LOW_RAM_MAX;
	uint64_t high = mem_size - low;

	if (gpa + len < gpa)
		return false;
	if (gpa + len <= low)
		return true;
	return gpa >= EMBER_HIGH_RAM_BASE &&
	       gpa + len <= EMBER_HIGH_RAM_BASE + high;
}

static bool str_terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

static int check_queue(const struct snap_virtio_dev *d, unsigned di,
		       unsigned qi, uint64_t mem_size, char *err,
		       size_t errlen)
{
	const struct snap_virtq *q = &d->vq[qi];
	uint16_t in_flight;

	if (q->size > SNAP_MAX_QUEUE_SIZE) {
		snap_seterr(err, errlen, "device %u queue %u: size %u > %u", di,
			    qi, q->size, SNAP_MAX_QUEUE_SIZE);
		return -EINVAL;
	}
	if (!q->ready)
		return 0;
	/* The checks virtq_activate() applies to a fresh queue (virtio 1.2,
	 * 2.7 "Split Virtqueues": alignment 16/2/4, Queue Size a power of
	 * 2), so a restored queue is no more trusted than a new one. */
	if (!is_pow2(q->size)) {
		snap_seterr(err, errlen,
			    "device %u queue %u: size %u is not a power of two",
			    di, qi, q->size);
		return -EINVAL;
	}
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3)) {
		snap_seterr(err, errlen,
			    "device %u queue %u: misaligned ring (desc 0x%llx "
			    "avail 0x%llx used 0x%llx)",
			    di, qi, (unsigned long long)q->desc_gpa,
			    (unsigned long long)q->avail_gpa,
			    (unsigned long long)q->used_gpa);
		return -EINVAL;
	}
	if (!gpa_range_in_ram(q->desc_gpa, 16ULL * q->size, mem_size) ||
	    !gpa_range_in_ram(q->avail_gpa, 6 + 2ULL * q->size, mem_size) ||
	    !gpa_range_in_ram(q->used_gpa, 6 + 8ULL * q->size, mem_size)) {
		snap_seterr(err, errlen,
			    "device %u queue %u: ring outside guest RAM", di,
			    qi);
		return -EINVAL;
	}
	/* Every used entry was an avail entry first, so the device can be at
	 * most `size` chains ahead of what it has returned (free-running
	 * 16-bit indices, 2.7.6 / 2.7.8). */
	in_flight = (uint16_t)(q->last_avail - q->used_idx);
	if (in_flight > q->size) {
		snap_seterr(err, errlen,
			    "device %u queue %u: last_avail %u and used_idx %u "
			    "are %u apart (queue size %u)",
			    di, qi, q->last_avail, q->used_idx, in_flight,
			    q->size);
		return -EINVAL;
	}
	if (d->activated &&
	    q->event_idx !=
		    !!(d->acked_features & (1ULL << VIRTIO_F_RING_EVENT_IDX))) {
		snap_seterr(err, errlen,
			    "device %u queue %u: event_idx disagrees with the "
			    "acked features",
			    di, qi);
		return -EINVAL;
	}
	return 0;
}

static int check_device(const struct snap_vm *s, unsigned i, char *err,
			size_t errlen)
{
	const struct snap_virtio_dev *d = &s->dev[i];
	const uint32_t known_status =
		VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK |
		VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED;
	int ret;

	if (d->device_id != VIRTIO_ID_BLOCK && d->device_id != VIRTIO_ID_VSOCK) {
		snap_seterr(err, errlen, "device %u: unknown device id %u", i,
			    d->device_id);
		return -EINVAL;
	}
	if (d->mmio_base != EMBER_VIRTIO_MMIO_BASE + i * EMBER_VIRTIO_MMIO_SIZE) {
		snap_seterr(err, errlen,
			    "device %u: mmio base 0x%llx is not its window", i,
			    (unsigned long long)d->mmio_base);
		return -EINVAL;
	}
	if (d->gsi >= KVM_IOAPIC_NUM_PINS) {
		snap_seterr(err, errlen, "device %u: gsi %u out of range", i,
			    d->gsi);
		return -EINVAL;
	}
	if (d->status & ~known_status) {
		snap_seterr(err, errlen, "device %u: unknown status bits 0x%x",
			    i, d->status);
		return -EINVAL;
	}
	if (d->activated && !(d->status & VIRTIO_STATUS_DRIVER_OK)) {
		snap_seterr(err, errlen,
			    "device %u: activated without DRIVER_OK", i);
		return -EINVAL;
	}
	if (d->interrupt_status & ~3u) {
		snap_seterr(err, errlen,
			    "device %u: bad interrupt status 0x%x", i,
			    d->interrupt_status);
		return -EINVAL;
	}
	if (d->nr_queues < 1 || d->nr_queues > SNAP_MAX_QUEUES) {
		snap_seterr(err, errlen, "device %u: %u queues (1..%u)", i,
			    d->nr_queues, SNAP_MAX_QUEUES);
		return -EINVAL;
	}
	for (unsigned q = 0; q < d->nr_queues; q++) {
		ret = check_queue(d, i, q, s->machine.mem_size, err, errlen);
		if (ret < 0)
			return ret;
	}
	if (d->device_id == VIRTIO_ID_BLOCK) {
		if (!str_terminated(d->u.blk.path, sizeof(d->u.blk.path)) ||
		    d->u.blk.path[0] == '\0') {
			snap_seterr(err, errlen, "device %u: bad backing path",
				    i);
			return -EINVAL;
		}
		/* virtio-blk capacity is in 512-byte sectors (5.2.4). */
		if (d->u.blk.capacity % 512) {
			snap_seterr(err, errlen,
				    "device %u: capacity %llu not in sectors", i,
				    (unsigned long long)d->u.blk.capacity);
			return -EINVAL;
		}
	} else {
		/* CIDs 0-2 are reserved and 0xffffffff means "any"; the upper
		 * 32 bits of guest_cid are reserved and zero (5.10.4). */
		if (d->u.vsock.guest_cid < 3 ||
		    d->u.vsock.guest_cid > 0xfffffffeULL) {
			snap_seterr(err, errlen,
				    "device %u: bad vsock guest cid %llu", i,
				    (unsigned long long)d->u.vsock.guest_cid);
			return -EINVAL;
		}
		if (!str_terminated(d->u.vsock.uds_path,
				    sizeof(d->u.vsock.uds_path)) ||
		    d->u.vsock.uds_path[0] == '\0') {
			snap_seterr(err, errlen, "device %u: bad vsock uds path",
				    i);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_vcpu(const struct snap_vcpu *v, unsigned i, char *err,
		      size_t errlen)
{
	if (!v->has_xsave && !v->has_fpu) {
		snap_seterr(err, errlen, "vcpu %u: neither xsave nor fpu state",
			    i);
		return -EINVAL;
	}
	if (v->has_xcrs && v->xcrs.nr_xcrs > KVM_MAX_XCRS) {
		snap_seterr(err, errlen, "vcpu %u: %u xcrs (max %u)", i,
			    v->xcrs.nr_xcrs, KVM_MAX_XCRS);
		return -EINVAL;
	}
	if (v->mp_state.mp_state > KVM_MP_STATE_SUSPENDED) {
		snap_seterr(err, errlen, "vcpu %u: bad mp_state %u", i,
			    v->mp_state.mp_state);
		return -EINVAL;
	}
	if (v->nr_msrs > SNAP_MAX_MSRS) {
		snap_seterr(err, errlen, "vcpu %u: %u MSRs (max %u)", i,
			    v->nr_msrs, SNAP_MAX_MSRS);
		return -EINVAL;
	}
	for (unsigned m = 0; m < v->nr_msrs; m++) {
		if (v->msrs[m].reserved) {
			snap_seterr(err, errlen,
				    "vcpu %u: MSR entry %u has reserved bits",
				    i, m);
			return -EINVAL;
		}
	}
	return 0;
}

int snap_validate(const struct snap_vm *s, char *err, size_t errlen)
{
	const struct snap_machine *m = &s->machine;
	int ret;

	if (!str_terminated(s->cpu.vendor, sizeof(s->cpu.vendor))) {
		snap_seterr(err, errlen, "cpu vendor not terminated");
		return -EINVAL;
	}
	if (m->mem_size == 0 || m->mem_size % SNAP_PAGE_SIZE ||
	    m->mem_size > SNAP_MAX_MEM_SIZE) {
		snap_seterr(err, errlen,
			    "memory size %llu: not a page multiple in "
			    "(0, %llu]",
			    (unsigned long long)m->mem_size,
			    (unsigned long long)SNAP_MAX_MEM_SIZE);
		return -EINVAL;
	}
	if (m->nr_vcpus < 1 || m->nr_vcpus > SNAP_MAX_VCPUS) {
		snap_seterr(err, errlen, "%u vCPUs (1..%u)", m->nr_vcpus,
			    SNAP_MAX_VCPUS);
		return -EINVAL;
	}
	if (m->kind > SNAP_GUEST_LINUX) {
		snap_seterr(err, errlen, "unknown guest kind %u", m->kind);
		return -EINVAL;
	}
	if (!str_terminated(m->cmdline, sizeof(m->cmdline))) {
		snap_seterr(err, errlen, "cmdline not terminated");
		return -EINVAL;
	}
	if (s->has_irqchip) {
		for (uint32_t c = 0; c < 3; c++) {
			if (s->irqchip[c].chip_id != c) {
				snap_seterr(err, errlen,
					    "irqchip %u has chip_id %u", c,
					    s->irqchip[c].chip_id);
				return -EINVAL;
			}
		}
	}
	for (unsigned i = 0; i < m->nr_vcpus; i++) {
		ret = check_vcpu(&s->vcpu[i], i, err, errlen);
		if (ret < 0)
			return ret;
	}
	if (s->nr_devices > SNAP_MAX_DEVICES) {
		snap_seterr(err, errlen, "%u devices (max %u)", s->nr_devices,
			    SNAP_MAX_DEVICES);
		return -EINVAL;
	}
	for (unsigned i = 0; i < s->nr_devices; i++) {
		ret = check_device(s, i, err, errlen);
		if (ret < 0)
			return ret;
	}
	return 0;
}

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
		if (!strcmp(kind, kind_names[m->kind]))
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

static int rd_device(struct rd *r, int node, const char *w,
		     struct snap_virtio_dev *d)
{
	char kind[8];
	uint32_t ro = 0;
	int ret;

	ret = rd_u32(r, node, w, "device-id", &d->device_id);
	if (ret >= 0)
		ret = rd_u64(r, node, w, "mmio-base", &d->mmio_base);
	if (ret >= 0)
		ret = rd_u32(r, node, w, "gsi", &d->gsi);
	if (ret >= 0)
		ret = rd_transport(r, node, w, d);
	if (ret >= 0)
		ret = rd_str(r, node, w, "kind", kind, sizeof(kind));
	if (ret < 0)
		return ret;
	if (d->device_id == VIRTIO_ID_BLOCK && !strcmp(kind, "blk")) {
		ret = rd_str(r, node, w, "backing-path", d->u.blk.path,
			     sizeof(d->u.blk.path));
		if (ret >= 0)
			ret = rd_u32(r, node, w, "read-only", &ro);
		if (ret >= 0 && ro > 1) {
			snap_seterr(r->err, r->errlen, "%s: read-only is %u",
				    w, ro);
			ret = -EINVAL;
		}
		if (ret >= 0)
			ret = rd_u64(r, node, w, "capacity",
				     &d->u.blk.capacity);
		d->u.blk.read_only = ro == 1;
		return ret;
	}
	if (d->device_id == VIRTIO_ID_VSOCK && !strcmp(kind, "vsock")) {
		ret = rd_u64(r, node, w, "guest-cid", &d->u.vsock.guest_cid);
		if (ret >= 0)
			ret = rd_str(r, node, w, "uds-path", d->u.vsock.uds_path,
				     sizeof(d->u.vsock.uds_path));
		return ret;
	}
	snap_seterr(r->err, r->errlen, "%s: device id %u with kind \"%s\"", w,
		    d->device_id, kind);
	return -EINVAL;
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
	memset(s, 0, sizeof(*s));
	r.fdt = blob;
	ret = parse_checked(&r, s);
out:
	free(copy);
	return ret;
}

int snap_load_state_blob(const char *dir, void **out, size_t *outlen,
			 char *err, size_t errlen)
{
	char path[4096];
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0, cap;
	int fd, ret;

	fd = snap_open_regular(dir, SNAP_STATE_FILE, path, sizeof(path), &st,
			       err, errlen);
	if (fd < 0)
		return fd;
	if (st.st_size > SNAP_MAX_STATE_SIZE) {
		snap_seterr(err, errlen, "%s is %lld bytes, limit %u", path,
			    (long long)st.st_size, SNAP_MAX_STATE_SIZE);
		ret = -EFBIG;
		goto err_close;
	}
	/* The file's size (capped above) plus one byte, so that a file
	 * growing under us is caught; restore reads a few KiB, and should
	 * not allocate the 16 MiB cap each time. */
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf) {
		snap_seterr(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto err_close;
	}
	for (;;) {
		ssize_t n = read(fd, buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			snap_seterr(err, errlen, "read %s: %s", path,
				    strerror(-ret));
			goto err_free;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap) {
			snap_seterr(err, errlen, "%s grew while being read",
				    path);
			ret = -EFBIG;
			goto err_free;
		}
	}
	close(fd);
	*out = buf;
	*outlen = got;
	return 0;

err_free:
	free(buf);
err_close:
	close(fd);
	return ret;
}

int snap_load_state(const char *dir, struct snap_vm *s, unsigned flags,
		    char *err, size_t errlen)
{
	struct snap_cpu_fp here;
	void *blob;
	size_t len;
	int ret;

	ret = snap_load_state_blob(dir, &blob, &len, err, errlen);
	if (ret < 0)
		return ret;
	ret = snap_parse_state(blob, len, s, err, errlen);
	free(blob);
	if (ret < 0 || (flags & SNAP_LOAD_ANY_CPU))
		return ret;
	ret = snap_cpu_fingerprint(&here);
	if (ret < 0) {
		snap_seterr(err, errlen, "cannot identify this host's CPU");
		return ret;
	}
	return snap_cpu_compatible(&s->cpu, &here, err, errlen);
}

int snap_read_state(const char *dir, struct snap_vm *s, char *err,
		    size_t errlen)
{
	return snap_load_state(dir, s, 0, err, errlen);
}

/* ---- CPU fingerprint ---- */

static const char *const word_names[SNAP_CPU_WORDS] = {
	[SNAP_CPUW_1_ECX] = "CPUID.1:ECX",
	[SNAP_CPUW_1_EDX] = "CPUID.1:EDX",
	[SNAP_CPUW_7_EBX] = "CPUID.(7,0):EBX",
	[SNAP_CPUW_7_ECX] = "CPUID.(7,0):ECX",
	[SNAP_CPUW_7_EDX] = "CPUID.(7,0):EDX",
	[SNAP_CPUW_D_EAX] = "CPUID.(0xd,0):EAX",
	[SNAP_CPUW_D_EDX] = "CPUID.(0xd,0):EDX",
	[SNAP_CPUW_D1_EAX] = "CPUID.(0xd,1):EAX",
	[SNAP_CPUW_X1_ECX] = "CPUID.0x80000001:ECX",
	[SNAP_CPUW_X1_EDX] = "CPUID.0x80000001:EDX",
};

const char *snap_cpu_word_name(unsigned i)
{
	return i < SNAP_CPU_WORDS ? word_names[i] : "unknown";
}

/* Bits that reflect what the running OS enabled rather than what the CPU
 * can do (Intel SDM vol. 2A, CPUID): OSXSAVE (1:ECX bit 27), OSPKE
 * (7:ECX bit 4). */
#define CPUID_1_ECX_OSXSAVE (1u << 27)
#define CPUID_7_ECX_OSPKE (1u << 4)

int snap_cpu_fingerprint(struct snap_cpu_fp *fp)
{
	unsigned a, b, c, d, max, xmax, base_family;

	memset(fp, 0, sizeof(*fp));
	max = __get_cpuid_max(0, NULL);
	if (max < 1)
		return -ENOTSUP;
	__cpuid(0, a, b, c, d);
	memcpy(fp->vendor, &b, 4);
	memcpy(fp->vendor + 4, &d, 4);
	memcpy(fp->vendor + 8, &c, 4);
	fp->vendor[12] = '\0';

	/* Display family and model (SDM vol. 2A, CPUID leaf 1 EAX). */
	__cpuid(1, a, b, c, d);
	base_family = (a >> 8) & 0xf;
	fp->family = base_family;
	if (base_family == 0xf)
		fp->family += (a >> 20) & 0xff;
	fp->model = (a >> 4) & 0xf;
	if (base_family == 0x6 || base_family == 0xf)
		fp->model |= ((a >> 16) & 0xf) << 4;
	fp->stepping = a & 0xf;
	fp->words[SNAP_CPUW_1_ECX] = c & ~CPUID_1_ECX_OSXSAVE;
	fp->words[SNAP_CPUW_1_EDX] = d;
	if (max >= 7) {
		__cpuid_count(7, 0, a, b, c, d);
		fp->words[SNAP_CPUW_7_EBX] = b;
		fp->words[SNAP_CPUW_7_ECX] = c & ~CPUID_7_ECX_OSPKE;
		fp->words[SNAP_CPUW_7_EDX] = d;
	}
	if (max >= 0xd) {
		__cpuid_count(0xd, 0, a, b, c, d);
		fp->words[SNAP_CPUW_D_EAX] = a;
		fp->words[SNAP_CPUW_D_EDX] = d;
		__cpuid_count(0xd, 1, a, b, c, d);
		fp->words[SNAP_CPUW_D1_EAX] = a;
	}
	xmax = __get_cpuid_max(0x80000000, NULL);
	if (xmax >= 0x80000001) {
		__cpuid(0x80000001, a, b, c, d);
		fp->words[SNAP_CPUW_X1_ECX] = c;
		fp->words[SNAP_CPUW_X1_EDX] = d;
	}
	return 0;
}

int snap_cpu_compatible(const struct snap_cpu_fp *saved,
			const struct snap_cpu_fp *here, char *err,
			size_t errlen)
{
	if (strncmp(saved->vendor, here->vendor, sizeof(saved->vendor))) {
		snap_seterr(err, errlen,
			    "snapshot taken on a %.12s CPU, this host is %.12s",
			    saved->vendor, here->vendor);
		return -ENOEXEC;
	}
	if (saved->family != here->family || saved->model != here->model) {
		snap_seterr(err, errlen,
			    "snapshot taken on CPU family 0x%x model 0x%x, this "
			    "host is family 0x%x model 0x%x",
			    saved->family, saved->model, here->family,
			    here->model);
		return -ENOEXEC;
	}
	for (unsigned i = 0; i < SNAP_CPU_WORDS; i++) {
		uint32_t missing = saved->words[i] & ~here->words[i];

		if (missing) {
			snap_seterr(err, errlen,
				    "this host lacks CPU features the snapshot's "
				    "guest saw: %s bits 0x%08x (saved 0x%08x, "
				    "here 0x%08x)",
				    word_names[i], missing, saved->words[i],
				    here->words[i]);
			return -ENOEXEC;
		}
	}
	return 0;
}
