/*
 * snap_write.c - serialise struct snap_vm into the state FDT and write it.
 *
 * The tree is built with libfdt's sequential-write API (libfdt.h,
 * fdt_create .. fdt_finish); docs/snapshots.md shows the resulting tree.
 * The writer validates its input with snap_validate() first, so a snapshot
 * the reader would reject is never written.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libfdt.h>

#include "snapshots/snap.h"
#include "virtio/mmio.h"
#include "virtio/virtio.h"
#include "virtio/virtq.h"

_Static_assert(SNAP_MAX_QUEUES == VMMIO_MAX_QUEUES, "queue count cap");
_Static_assert(SNAP_MAX_QUEUE_SIZE == VIRTQ_MAX_SIZE, "queue size cap");

/* Initial blob buffer; doubled on -FDT_ERR_NOSPACE up to the reader's cap. */
#define SNAP_BUILD_START (256u << 10)

static void enc_transport(struct snap_le_transport *o,
			  const struct snap_virtio_dev *d)
{
	memset(o, 0, sizeof(*o));
	o->status = htole32(d->status);
	o->device_features_sel = htole32(d->device_features_sel);
	o->driver_features_sel = htole32(d->driver_features_sel);
	o->queue_sel = htole32(d->queue_sel);
	o->driver_features = htole64(d->driver_features);
	o->acked_features = htole64(d->acked_features);
	o->interrupt_status = htole32(d->interrupt_status);
	o->config_generation = htole32(d->config_generation);
	o->activated = d->activated ? 1 : 0;
}

static void enc_virtq(struct snap_le_virtq *o, const struct snap_virtq *q)
{
	memset(o, 0, sizeof(*o));
	o->size = htole16(q->size);
	o->last_avail = htole16(q->last_avail);
	o->used_idx = htole16(q->used_idx);
	o->signalled_used = htole16(q->signalled_used);
	o->ready = q->ready ? 1 : 0;
	o->event_idx = q->event_idx ? 1 : 0;
	o->signalled_valid = q->signalled_valid ? 1 : 0;
	o->desc_gpa = htole64(q->desc_gpa);
	o->avail_gpa = htole64(q->avail_gpa);
	o->used_gpa = htole64(q->used_gpa);
}

static void enc_serial(struct snap_le_serial *o, const struct snap_serial *s)
{
	memset(o, 0, sizeof(*o));
	o->rbr = s->rbr;
	o->ier = s->ier;
	o->iir = s->iir;
	o->fcr = s->fcr;
	o->lcr = s->lcr;
	o->mcr = s->mcr;
	o->lsr = s->lsr;
	o->msr = s->msr;
	o->scr = s->scr;
	o->dll = s->dll;
	o->dlm = s->dlm;
}

/* A container whose children are numbered name@N with reg = <N>, as
 * devicetree convention wants for unit addresses (so dtc stays quiet). */
static int begin_numbered(void *fdt, const char *name)
{
	int ret = fdt_begin_node(fdt, name);

	if (ret == 0)
		ret = fdt_property_u32(fdt, "#address-cells", 1);
	if (ret == 0)
		ret = fdt_property_u32(fdt, "#size-cells", 0);
	return ret;
}

/* Every fdt_* call below returns 0 or a negative FDT_ERR; FDT_TRY stops at
 * the first failure (usually -FDT_ERR_NOSPACE, which makes the caller grow
 * the buffer). */
#define FDT_TRY(call)                                                         \
	do {                                                                  \
		int r_ = (call);                                              \
		if (r_ < 0)                                                   \
			return r_;                                            \
	} while (0)

static int put_cpu_fp(void *fdt, const struct snap_cpu_fp *fp)
{
	fdt32_t words[SNAP_CPU_WORDS];

	for (unsigned i = 0; i < SNAP_CPU_WORDS; i++)
		words[i] = cpu_to_fdt32(fp->words[i]);
	FDT_TRY(fdt_begin_node(fdt, "cpu-fingerprint"));
	FDT_TRY(fdt_property_string(fdt, "vendor", fp->vendor));
	FDT_TRY(fdt_property_u32(fdt, "cpuid-family", fp->family));
	FDT_TRY(fdt_property_u32(fdt, "cpuid-model", fp->model));
	FDT_TRY(fdt_property_u32(fdt, "cpuid-stepping", fp->stepping));
	FDT_TRY(fdt_property(fdt, "features", words, sizeof(words)));
	return fdt_end_node(fdt);
}

static int put_machine(void *fdt, const struct snap_machine *m)
{
	FDT_TRY(fdt_begin_node(fdt, "machine"));
	FDT_TRY(fdt_property_u64(fdt, "memory-size", m->mem_size));
	FDT_TRY(fdt_property_u32(fdt, "vcpus", m->nr_vcpus));
	FDT_TRY(fdt_property_string(fdt, "guest-kind",
				    snap_guest_kind_name(m->kind)));
	FDT_TRY(fdt_property_string(fdt, "cmdline", m->cmdline));
	return fdt_end_node(fdt);
}

static int put_vm(void *fdt, const struct snap_vm *s)
{
	FDT_TRY(fdt_begin_node(fdt, "vm"));
	if (s->has_irqchip) {
		FDT_TRY(fdt_property(fdt, "pic-master",
				     &s->irqchip[KVM_IRQCHIP_PIC_MASTER],
				     sizeof(struct kvm_irqchip)));
		FDT_TRY(fdt_property(fdt, "pic-slave",
				     &s->irqchip[KVM_IRQCHIP_PIC_SLAVE],
				     sizeof(struct kvm_irqchip)));
		FDT_TRY(fdt_property(fdt, "ioapic",
				     &s->irqchip[KVM_IRQCHIP_IOAPIC],
				     sizeof(struct kvm_irqchip)));
	}
	if (s->has_pit)
		FDT_TRY(fdt_property(fdt, "pit", &s->pit, sizeof(s->pit)));
	if (s->has_clock)
		FDT_TRY(fdt_property(fdt, "clock", &s->clock,
				     sizeof(s->clock)));
	FDT_TRY(fdt_end_node(fdt));
	if (s->has_serial) {
		struct snap_le_serial ser;

		enc_serial(&ser, &s->serial);
		FDT_TRY(fdt_begin_node(fdt, "serial"));
		FDT_TRY(fdt_property(fdt, "regs", &ser, sizeof(ser)));
		FDT_TRY(fdt_end_node(fdt));
	}
	return 0;
}

static int put_vcpu(void *fdt, unsigned idx, const struct snap_vcpu *v)
{
	char name[16];
	/* struct kvm_msr_entry is (u32 index, u32 reserved, u64 data) in host
	 * order; on x86 that is already little-endian, the documented layout. */
	const size_t msr_len = (size_t)v->nr_msrs * sizeof(v->msrs[0]);

	snprintf(name, sizeof(name), "cpu@%u", idx);
	FDT_TRY(fdt_begin_node(fdt, name));
	FDT_TRY(fdt_property_u32(fdt, "reg", idx));
	FDT_TRY(fdt_property(fdt, "regs", &v->regs, sizeof(v->regs)));
	FDT_TRY(fdt_property(fdt, "sregs", &v->sregs, sizeof(v->sregs)));
	if (v->has_xsave)
		FDT_TRY(fdt_property(fdt, "xsave", &v->xsave,
				     sizeof(v->xsave)));
	if (v->has_fpu)
		FDT_TRY(fdt_property(fdt, "fpu", &v->fpu, sizeof(v->fpu)));
	if (v->has_xcrs)
		FDT_TRY(fdt_property(fdt, "xcrs", &v->xcrs, sizeof(v->xcrs)));
	if (v->has_lapic)
		FDT_TRY(fdt_property(fdt, "lapic", &v->lapic,
				     sizeof(v->lapic)));
	FDT_TRY(fdt_property(fdt, "events", &v->events, sizeof(v->events)));
	FDT_TRY(fdt_property(fdt, "mp-state", &v->mp_state,
			     sizeof(v->mp_state)));
	FDT_TRY(fdt_property(fdt, "debugregs", &v->debugregs,
			     sizeof(v->debugregs)));
	FDT_TRY(fdt_property_u64(fdt, "tsc", v->tsc));
	FDT_TRY(fdt_property_u32(fdt, "tsc-khz", v->tsc_khz));
	FDT_TRY(fdt_property(fdt, "msrs", v->msrs, msr_len));
	return fdt_end_node(fdt);
}

static int put_device(void *fdt, unsigned idx, const struct snap_virtio_dev *d)
{
	char name[24];
	struct snap_le_transport tr;
	struct snap_le_virtq q[SNAP_MAX_QUEUES];

	enc_transport(&tr, d);
	for (unsigned i = 0; i < d->nr_queues; i++)
		enc_virtq(&q[i], &d->vq[i]);
	snprintf(name, sizeof(name), "virtio@%u", idx);
	FDT_TRY(fdt_begin_node(fdt, name));
	FDT_TRY(fdt_property_u32(fdt, "reg", idx));
	FDT_TRY(fdt_property_u32(fdt, "device-id", d->device_id));
	FDT_TRY(fdt_property_u64(fdt, "mmio-base", d->mmio_base));
	FDT_TRY(fdt_property_u32(fdt, "gsi", d->gsi));
	FDT_TRY(fdt_property(fdt, "transport", &tr, sizeof(tr)));
	FDT_TRY(fdt_property(fdt, "queues", q, d->nr_queues * sizeof(q[0])));
	FDT_TRY(fdt_property_string(fdt, "kind", d->kind));
	for (uint32_t i = 0; i < d->nr_props; i++)
		FDT_TRY(fdt_property(fdt, d->props[i].name, d->props[i].data,
				     (int)d->props[i].len));
	return fdt_end_node(fdt);
}

static int build_into(void *buf, int size, const struct snap_vm *s)
{
	FDT_TRY(fdt_create(buf, size));
	FDT_TRY(fdt_finish_reservemap(buf));
	FDT_TRY(fdt_begin_node(buf, ""));
	FDT_TRY(fdt_property_string(buf, "compatible", SNAP_COMPATIBLE));
	FDT_TRY(fdt_property_u32(buf, "ember,format-version",
				 SNAP_FORMAT_VERSION));
	FDT_TRY(put_cpu_fp(buf, &s->cpu));
	FDT_TRY(put_machine(buf, &s->machine));
	FDT_TRY(put_vm(buf, s));
	FDT_TRY(begin_numbered(buf, "cpus"));
	for (unsigned i = 0; i < s->machine.nr_vcpus; i++)
		FDT_TRY(put_vcpu(buf, i, &s->vcpu[i]));
	FDT_TRY(fdt_end_node(buf));
	FDT_TRY(begin_numbered(buf, "devices"));
	for (unsigned i = 0; i < s->nr_devices; i++)
		FDT_TRY(put_device(buf, i, &s->dev[i]));
	FDT_TRY(fdt_end_node(buf));
	FDT_TRY(fdt_end_node(buf));
	return fdt_finish(buf);
}

int snap_build_state(const struct snap_vm *s, void **blob, size_t *len,
		     char *err, size_t errlen)
{
	size_t size = SNAP_BUILD_START;
	void *buf = NULL;
	int ret;

	ret = snap_validate(s, err, errlen);
	if (ret < 0)
		return ret;
	for (;;) {
		void *nbuf = realloc(buf, size);

		if (!nbuf) {
			snap_seterr(err, errlen, "out of memory building state");
			ret = -ENOMEM;
			goto err_free;
		}
		buf = nbuf;
		ret = build_into(buf, (int)size, s);
		if (ret != -FDT_ERR_NOSPACE)
			break;
		if (size >= SNAP_MAX_STATE_SIZE) {
			snap_seterr(err, errlen,
				    "state exceeds %u bytes", SNAP_MAX_STATE_SIZE);
			ret = -EFBIG;
			goto err_free;
		}
		size *= 2;
	}
	if (ret < 0) {
		snap_seterr(err, errlen, "building state: %s",
			    fdt_strerror(ret));
		ret = -EINVAL;
		goto err_free;
	}
	*blob = buf;
	*len = fdt_totalsize(buf);
	return 0;

err_free:
	free(buf);
	return ret;
}

int snap_write_state_at(int dirfd, const struct snap_vm *s, char *err,
			size_t errlen)
{
	void *blob;
	size_t len;
	int ret;

	ret = snap_build_state(s, &blob, &len, err, errlen);
	if (ret < 0)
		return ret;
	ret = snap_write_file_atomic_at(dirfd, SNAP_STATE_FILE, blob, len, err,
					errlen);
	free(blob);
	return ret;
}

int snap_write_state(const char *dir, const struct snap_vm *s, char *err,
		     size_t errlen)
{
	int dfd = snap_open_dir(dir, err, errlen), ret;

	if (dfd < 0)
		return dfd;
	ret = snap_write_state_at(dfd, s, err, errlen);
	close(dfd);
	return ret;
}
