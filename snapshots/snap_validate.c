/*
 * snap_validate.c - the semantic checks of a snapshot's state, shared by
 * the writer (a snapshot the reader would reject is never written) and the
 * reader (after the structure was parsed).
 *
 * A restored queue is no more trusted than one a driver just programmed:
 * the checks are virtq_activate()'s (virtio 1.2 section 2.7: sizes, ring
 * alignment, rings inside guest RAM) plus what a saved device adds (ring
 * indices, flags, strings within their caps).
 */
#include <errno.h>
#include <string.h>

#include "snapshots/snap.h"
#include "virtio/virtio.h"

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

/* The kind names the device's type: [a-z0-9-]+ (it selects code). */
static int check_kind(const struct snap_virtio_dev *d, unsigned i, char *err,
		      size_t errlen)
{
	size_t n;

	if (!str_terminated(d->kind, sizeof(d->kind)) || !d->kind[0])
		goto bad;
	n = strlen(d->kind);
	for (size_t k = 0; k < n; k++) {
		char c = d->kind[k];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			goto bad;
	}
	return 0;
bad:
	snap_seterr(err, errlen, "device %u: bad kind", i);
	return -EINVAL;
}

/* The device's own props: bounded, named, unique; their values are the
 * device's to check. */
static int check_props(const struct snap_virtio_dev *d, unsigned i, char *err,
		       size_t errlen)
{
	if (d->nr_props > SNAP_MAX_DEV_PROPS) {
		snap_seterr(err, errlen, "device %u: %u properties (max %u)", i,
			    d->nr_props, SNAP_MAX_DEV_PROPS);
		return -EINVAL;
	}
	for (uint32_t p = 0; p < d->nr_props; p++) {
		const struct snap_prop *pr = &d->props[p];

		if (!str_terminated(pr->name, sizeof(pr->name)) || !pr->name[0] ||
		    pr->len > SNAP_DEV_PROP_MAX) {
			snap_seterr(err, errlen, "device %u: bad property %u", i,
				    p);
			return -EINVAL;
		}
		for (uint32_t q = 0; q < p; q++)
			if (!strcmp(d->props[q].name, pr->name)) {
				snap_seterr(err, errlen, "device %u: property "
					    "%s twice", i, pr->name);
				return -EINVAL;
			}
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

	if (d->device_id == 0 || d->device_id > 63) {
		snap_seterr(err, errlen, "device %u: device id %u out of range",
			    i, d->device_id);
		return -EINVAL;
	}
	ret = check_kind(d, i, err, errlen);
	if (ret < 0)
		return ret;
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
	return check_props(d, i, err, errlen);
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
