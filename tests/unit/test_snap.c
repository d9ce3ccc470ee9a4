/* Unit tests: the snapshot format (state FDT, sparse memory, working set). */
// link: snapshots/snap_read.c snapshots/snap_write.c snapshots/snap_mem.c
// link: snapshots/snap_validate.c snapshots/snap_file.c snapshots/snap_cpu.c
// link: snapshots/snap_prop.c
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libfdt.h>

#include "snapshots/snap.h"
#include "virtio/virtio.h"

#define MEM_SIZE (64ULL << 20)

static char err[256];

/* Deterministic filler for the opaque kernel structs. */
static void fill(void *p, size_t n, uint32_t seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (uint8_t)(seed >> 16);
	}
}

static void set_queue(struct snap_virtq *q, uint16_t size, uint64_t base)
{
	q->size = size;
	q->ready = true;
	q->desc_gpa = base;
	q->avail_gpa = base + 16ULL * size;
	q->used_gpa = (q->avail_gpa + 6 + 2ULL * size + 3) & ~3ULL;
	q->last_avail = 0xfffe; /* wraps: 5 in flight */
	q->used_idx = 0xfff9;
	q->event_idx = true;
	q->signalled_used = 0xfff0;
	q->signalled_valid = true;
}

/* A plausible two-vCPU, two-device VM with everything present. */
static struct snap_vm *make_vm(void)
{
	struct snap_vm *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	assert_int_equal(snap_cpu_fingerprint(&s->cpu), 0);
	s->machine.mem_size = MEM_SIZE;
	s->machine.nr_vcpus = 2;
	s->machine.kind = SNAP_GUEST_MICRO;
	strcpy(s->machine.cmdline, "console=ttyS0 quiet");
	s->has_irqchip = true;
	for (uint32_t c = 0; c < 3; c++) {
		fill(&s->irqchip[c], sizeof(s->irqchip[c]), 100 + c);
		s->irqchip[c].chip_id = c;
	}
	s->has_pit = true;
	fill(&s->pit, sizeof(s->pit), 7);
	s->has_clock = true;
	fill(&s->clock, sizeof(s->clock), 8);
	s->has_serial = true;
	s->serial = (struct snap_serial){ .ier = 1, .lcr = 3, .lsr = 0x60,
					  .dll = 1, .scr = 0x5a };
	for (unsigned i = 0; i < 2; i++) {
		struct snap_vcpu *v = &s->vcpu[i];

		fill(&v->regs, sizeof(v->regs), 10 + i);
		fill(&v->sregs, sizeof(v->sregs), 20 + i);
		v->has_xsave = true;
		fill(&v->xsave, sizeof(v->xsave), 30 + i);
		v->has_fpu = i == 1; /* absent state stays zero */
		if (v->has_fpu)
			fill(&v->fpu, sizeof(v->fpu), 40 + i);
		v->has_xcrs = true;
		fill(&v->xcrs, sizeof(v->xcrs), 50 + i);
		v->xcrs.nr_xcrs = 1;
		v->has_lapic = true;
		fill(&v->lapic, sizeof(v->lapic), 60 + i);
		fill(&v->events, sizeof(v->events), 70 + i);
		v->mp_state.mp_state = KVM_MP_STATE_RUNNABLE;
		fill(&v->debugregs, sizeof(v->debugregs), 80 + i);
		v->tsc = 0x123456789abcULL + i;
		v->tsc_khz = 2500000;
		v->nr_msrs = 40;
		for (unsigned m = 0; m < v->nr_msrs; m++) {
			v->msrs[m].index = 0xc0000080 + m;
			v->msrs[m].data = 0x1000ULL * m + i;
		}
	}
	/* virtio-blk at window 0, activated with EVENT_IDX. */
	s->nr_devices = 2;
	s->dev[0].device_id = VIRTIO_ID_BLOCK;
	s->dev[0].mmio_base = EMBER_VIRTIO_MMIO_BASE;
	s->dev[0].gsi = EMBER_VIRTIO_IRQ_BASE;
	s->dev[0].status = 0xf;
	s->dev[0].driver_features = s->dev[0].acked_features =
		(1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_RING_EVENT_IDX);
	s->dev[0].queue_sel = 0;
	s->dev[0].interrupt_status = 1;
	s->dev[0].config_generation = 3;
	s->dev[0].activated = true;
	s->dev[0].nr_queues = 1;
	set_queue(&s->dev[0].vq[0], 256, 0x200000);
	strcpy(s->dev[0].kind, "blk");
	assert_int_equal(snap_prop_set_str(&s->dev[0], "backing-path",
					   "/var/lib/ember/fn.ext4"), 0);
	assert_int_equal(snap_prop_set_u32(&s->dev[0], "read-only", 1), 0);
	assert_int_equal(snap_prop_set_u64(&s->dev[0], "capacity", 8ULL << 20),
			 0);
	/* virtio-vsock at window 1: three queues, the event queue idle. */
	s->dev[1].device_id = VIRTIO_ID_VSOCK;
	s->dev[1].mmio_base = EMBER_VIRTIO_MMIO_BASE + EMBER_VIRTIO_MMIO_SIZE;
	s->dev[1].gsi = EMBER_VIRTIO_IRQ_BASE + 1;
	s->dev[1].status = 0xf;
	s->dev[1].driver_features = s->dev[1].acked_features =
		(1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_RING_EVENT_IDX);
	s->dev[1].queue_sel = 2;
	s->dev[1].activated = true;
	s->dev[1].nr_queues = 3;
	set_queue(&s->dev[1].vq[0], 128, 0x300000);
	set_queue(&s->dev[1].vq[1], 128, 0x310000);
	s->dev[1].vq[2].size = 0;
	strcpy(s->dev[1].kind, "vsock");
	assert_int_equal(snap_prop_set_u64(&s->dev[1], "guest-cid", 3), 0);
	assert_int_equal(snap_prop_set_str(&s->dev[1], "uds-path",
					   "/run/ember/vm1.vsock"), 0);
	return s;
}

static void build(const struct snap_vm *s, void **blob, size_t *len)
{
	int ret = snap_build_state(s, blob, len, err, sizeof(err));

	if (ret)
		fail_msg("snap_build_state: %d %s", ret, err);
}

/* Returns a copy of `blob` with property `prop` of node `path` set to
 * val[vlen], or deleted when val is NULL. */
static void *mutate(const void *blob, size_t *len, const char *path,
		    const char *prop, const void *val, int vlen)
{
	size_t cap = *len + (1u << 20);
	void *buf = malloc(cap);
	int node;

	assert_non_null(buf);
	assert_int_equal(fdt_open_into(blob, buf, (int)cap), 0);
	node = fdt_path_offset(buf, path);
	assert_true(node >= 0);
	if (val)
		assert_int_equal(fdt_setprop(buf, node, prop, val, vlen), 0);
	else
		assert_int_equal(fdt_delprop(buf, node, prop), 0);
	assert_int_equal(fdt_pack(buf), 0);
	*len = fdt_totalsize(buf);
	return buf;
}

static void *mutate_u32(const void *blob, size_t *len, const char *path,
			const char *prop, uint32_t v)
{
	fdt32_t be = cpu_to_fdt32(v);

	return mutate(blob, len, path, prop, &be, sizeof(be));
}

/* Parses `blob` and expects failure `want` with `msg` in the message. */
static void expect_reject(const void *blob, size_t len, int want,
			  const char *msg)
{
	struct snap_vm *out = calloc(1, sizeof(*out));
	int ret;

	assert_non_null(out);
	err[0] = '\0';
	ret = snap_parse_state(blob, len, out, err, sizeof(err));
	if (ret != want || (msg && !strstr(err, msg)))
		fail_msg("want %d \"%s\", got %d \"%s\"", want, msg ? msg : "",
			 ret, err);
	free(out);
}

/* Parses `blob` and expects it to be accepted. */
static void expect_accept(const void *blob, size_t len)
{
	struct snap_vm *out = calloc(1, sizeof(*out));
	int ret;

	assert_non_null(out);
	ret = snap_parse_state(blob, len, out, err, sizeof(err));
	if (ret != 0)
		fail_msg("want it accepted, got %d \"%s\"", ret, err);
	free(out);
}

static char tmpdir[64];

static int setup_dir(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/test_snap.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char p[512];

	(void)state;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.' && (!e->d_name[1] ||
					    (e->d_name[1] == '.' && !e->d_name[2])))
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	return rmdir(tmpdir);
}

/* ---- round trip ---- */

static void test_round_trip_blob(void **state)
{
	struct snap_vm *s = make_vm(), *out = calloc(1, sizeof(*out));
	void *blob;
	size_t len;

	(void)state;
	assert_non_null(out);
	build(s, &blob, &len);
	assert_int_equal(snap_parse_state(blob, len, out, err, sizeof(err)), 0);
	s->format_version = SNAP_FORMAT_VERSION;
	/* Field-by-field equality of everything, including kernel structs. */
	assert_memory_equal(s, out, sizeof(*s));
	/* A blob at an odd address (libfdt wants 8-byte alignment) parses to
	 * the same state. */
	{
		uint8_t *odd = malloc(len + 1);

		assert_non_null(odd);
		memcpy(odd + 1, blob, len);
		memset(out, 0xa5, sizeof(*out));
		assert_int_equal(snap_parse_state(odd + 1, len, out, err,
						  sizeof(err)),
				 0);
		/* Everything parsed is rewritten (padding included); vcpu[]
		 * and dev[] entries past the counts are left alone, so a
		 * restore does not touch ~1 MiB of fresh memory. */
		assert_memory_equal(s, out, offsetof(struct snap_vm, dev));
		assert_memory_equal(s->dev, out->dev,
				    s->nr_devices * sizeof(s->dev[0]));
		assert_memory_equal(s->vcpu, out->vcpu,
				    s->machine.nr_vcpus * sizeof(s->vcpu[0]));
		assert_true(s->nr_devices < SNAP_MAX_DEVICES);
		assert_int_equal(((uint8_t *)&out->dev[s->nr_devices])[0],
				 0xa5);
		free(odd);
	}
	free(blob);
	free(s);
	free(out);
}

static void test_round_trip_dir(void **state)
{
	struct snap_vm *s = make_vm(), *out = calloc(1, sizeof(*out));
	char cmd[256];

	(void)state;
	/* Minimal VM: one vCPU with only the legacy FPU, no irqchip, no
	 * devices: the micro guest's shape. */
	s->machine.nr_vcpus = 1;
	s->vcpu[0].has_xsave = false;
	s->vcpu[0].has_fpu = true;
	s->vcpu[0].has_lapic = false;
	s->vcpu[0].has_xcrs = false;
	s->has_irqchip = s->has_pit = s->has_clock = s->has_serial = false;
	s->nr_devices = 0;
	memset(s->dev, 0, sizeof(s->dev));
	memset(&s->vcpu[1], 0, sizeof(s->vcpu[1]));
	memset(s->irqchip, 0, sizeof(s->irqchip));
	memset(&s->pit, 0, sizeof(s->pit));
	memset(&s->clock, 0, sizeof(s->clock));
	memset(&s->serial, 0, sizeof(s->serial));
	memset(&s->vcpu[0].xsave, 0, sizeof(s->vcpu[0].xsave));
	memset(&s->vcpu[0].xcrs, 0, sizeof(s->vcpu[0].xcrs));
	memset(&s->vcpu[0].lapic, 0, sizeof(s->vcpu[0].lapic));

	assert_int_equal(snap_write_state(tmpdir, s, err, sizeof(err)), 0);
	assert_int_equal(snap_read_state(tmpdir, out, err, sizeof(err)), 0);
	s->format_version = SNAP_FORMAT_VERSION;
	assert_memory_equal(s, out, sizeof(*s));

	/* The state is a real devicetree blob: dtc decompiles it. */
	if (access("/usr/bin/dtc", X_OK) == 0) {
		snprintf(cmd, sizeof(cmd),
			 "dtc -q -I dtb -O dts %s/state | grep -q 'ember,snapshot'",
			 tmpdir);
		assert_int_equal(system(cmd), 0);
	}
	free(s);
	free(out);
}

/* ---- corruption ---- */

static void test_truncated(void **state)
{
	struct snap_vm *s = make_vm();
	void *blob;
	size_t len;
	const size_t cuts[] = { 0, 1, 39, 40, 100, 4096 };

	(void)state;
	build(s, &blob, &len);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		expect_reject(blob, cuts[i], -EINVAL, NULL);
	expect_reject(blob, len / 2, -EINVAL, "truncated");
	expect_reject(blob, len - 1, -EINVAL, "truncated");
	free(blob);
	free(s);
}

static void test_flipped_bytes(void **state)
{
	struct snap_vm *s = make_vm(), *out = calloc(1, sizeof(*out));
	uint8_t *blob, *copy;
	size_t len;
	uint32_t off_struct;
	unsigned rejected = 0;

	(void)state;
	assert_non_null(out);
	build(s, (void **)&blob, &len);
	copy = malloc(len);
	assert_non_null(copy);
	off_struct = fdt_off_dt_struct(blob);
	/* Header fields every check depends on: magic, totalsize, the block
	 * offsets, last compatible version, structure size, the first
	 * structure token. */
	const size_t must_fail[] = { 0, 3, 4, 7, 8, 11, 12, 15, 24, 27, 36,
				     off_struct, off_struct + 3 };
	for (size_t i = 0; i < sizeof(must_fail) / sizeof(must_fail[0]); i++) {
		memcpy(copy, blob, len);
		copy[must_fail[i]] ^= 0xff;
		expect_reject(copy, len, -EINVAL, NULL);
	}
	/* Every single byte flipped: never a crash (ASan/UBSan watch), and a
	 * blob that still parses must be one the validator accepts. */
	for (size_t i = 0; i < len; i++) {
		memcpy(copy, blob, len);
		copy[i] ^= 0x41;
		int ret = snap_parse_state(copy, len, out, err, sizeof(err));

		if (ret == 0)
			assert_int_equal(snap_validate(out, err, sizeof(err)), 0);
		else
			rejected++;
	}
	/* The opaque kernel structs absorb most flips, but structure and
	 * Ember's own fields must catch some. */
	assert_true(rejected > 100);
	free(copy);
	free(blob);
	free(s);
	free(out);
}

static void test_version(void **state)
{
	struct snap_vm *s = make_vm();
	void *blob, *m;
	size_t len, mlen;

	(void)state;
	build(s, &blob, &len);
	mlen = len;
	m = mutate_u32(blob, &mlen, "/", "ember,format-version",
		       SNAP_FORMAT_VERSION + 1);
	expect_reject(m, mlen, -EPROTONOSUPPORT, "newer");
	free(m);
	mlen = len;
	m = mutate_u32(blob, &mlen, "/", "ember,format-version", 0);
	expect_reject(m, mlen, -EINVAL, "version 0");
	free(m);
	mlen = len;
	m = mutate(blob, &mlen, "/", "compatible", "linux,dummy", 12);
	expect_reject(m, mlen, -EINVAL, "not an Ember snapshot");
	free(m);
	free(blob);
	free(s);
}

static void test_missing_property(void **state)
{
	struct snap_vm *s = make_vm();
	void *blob, *m;
	size_t len, mlen;
	const struct {
		const char *path, *prop, *msg;
	} cases[] = {
		{ "/cpus/cpu@1", "regs", "missing property regs" },
		{ "/cpus/cpu@0", "msrs", "missing property msrs" },
		{ "/cpus/cpu@0", "mp-state", "missing property mp-state" },
		{ "/machine", "memory-size", "missing property memory-size" },
		{ "/cpu-fingerprint", "features", "missing property features" },
		{ "/devices/virtio@1", "kind", "missing property kind" },
		{ "/devices/virtio@0", "transport", "missing property transport" },
		{ "/vm", "ioapic", "must come together" },
		{ "/", "ember,format-version", "missing property" },
	};

	(void)state;
	build(s, &blob, &len);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mlen = len;
		m = mutate(blob, &mlen, cases[i].path, cases[i].prop, NULL, 0);
		expect_reject(m, mlen, -EINVAL, cases[i].msg);
		free(m);
	}
	/* Both xsave and fpu gone from a vCPU: no FPU state at all. */
	mlen = len;
	m = mutate(blob, &mlen, "/cpus/cpu@0", "xsave", NULL, 0);
	expect_reject(m, mlen, -EINVAL, "neither xsave nor fpu");
	free(m);
	free(blob);
	free(s);
}

static void test_wrong_length(void **state)
{
	struct snap_vm *s = make_vm();
	uint8_t junk[8192] = { 0 };
	void *blob, *m;
	size_t len, mlen;
	const struct {
		const char *path, *prop;
		int len;
	} cases[] = {
		{ "/cpus/cpu@0", "sregs", (int)sizeof(struct kvm_sregs) - 1 },
		{ "/cpus/cpu@0", "regs", (int)sizeof(struct kvm_regs) + 8 },
		{ "/cpus/cpu@1", "xsave", 4096 + 4 },
		{ "/cpus/cpu@1", "lapic", 0 },
		{ "/cpus/cpu@0", "tsc", 4 },
		{ "/vm", "pit", (int)sizeof(struct kvm_pit_state2) - 4 },
		{ "/vm", "clock", 1 },
		{ "/machine", "memory-size", 4 },
		{ "/machine", "vcpus", 8 },
		{ "/devices/virtio@0", "transport", 47 },
		{ "/devices/virtio@0", "queues", 41 },
		{ "/devices/virtio@0", "queues", 0 },
		{ "/devices/virtio@0", "queues", 5 * 40 },
		{ "/cpu-fingerprint", "features", 4 * SNAP_CPU_WORDS + 4 },
		{ "/serial", "regs", 15 },
	};

	(void)state;
	build(s, &blob, &len);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mlen = len;
		m = mutate(blob, &mlen, cases[i].path, cases[i].prop, junk,
			   cases[i].len);
		expect_reject(m, mlen, -EINVAL, NULL);
		free(m);
	}
	free(blob);
	free(s);
}

static void test_bad_strings(void **state)
{
	struct snap_vm *s = make_vm();
	char big[SNAP_CMDLINE_MAX + 1];
	void *blob, *m;
	size_t len, mlen;

	(void)state;
	build(s, &blob, &len);
	/* Not NUL-terminated. */
	mlen = len;
	m = mutate(blob, &mlen, "/machine", "cmdline", "abc", 3);
	expect_reject(m, mlen, -EINVAL, "not a string");
	free(m);
	/* Embedded NUL. */
	mlen = len;
	m = mutate(blob, &mlen, "/machine", "cmdline", "a\0b", 4);
	expect_reject(m, mlen, -EINVAL, "not a string");
	free(m);
	/* Over the cap: a cmdline of SNAP_CMDLINE_MAX chars plus NUL. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	mlen = len;
	m = mutate(blob, &mlen, "/machine", "cmdline", big, (int)sizeof(big));
	expect_reject(m, mlen, -EINVAL, "cmdline");
	free(m);
	/* A device property over SNAP_DEV_PROP_MAX bytes. */
	mlen = len;
	m = mutate(blob, &mlen, "/devices/virtio@1", "uds-path", big,
		   SNAP_DEV_PROP_MAX + 1);
	expect_reject(m, mlen, -EINVAL, "device properties");
	free(m);
	/* Unknown guest kind; a device kind that is not [a-z0-9-]+. */
	mlen = len;
	m = mutate(blob, &mlen, "/machine", "guest-kind", "bsd", 4);
	expect_reject(m, mlen, -EINVAL, "guest-kind");
	free(m);
	mlen = len;
	m = mutate(blob, &mlen, "/devices/virtio@0", "kind", "Blk/", 5);
	expect_reject(m, mlen, -EINVAL, "kind");
	free(m);
	mlen = len;
	m = mutate(blob, &mlen, "/devices/virtio@0", "kind", "", 1);
	expect_reject(m, mlen, -EINVAL, "kind");
	free(m);
	free(blob);
	free(s);
}

static void test_too_many_vcpus(void **state)
{
	struct snap_vm *s = make_vm();
	void *blob, *m;
	size_t len, mlen;

	(void)state;
	build(s, &blob, &len);
	mlen = len;
	m = mutate_u32(blob, &mlen, "/machine", "vcpus", SNAP_MAX_VCPUS + 1);
	expect_reject(m, mlen, -EINVAL, "vCPUs");
	free(m);
	mlen = len;
	m = mutate_u32(blob, &mlen, "/machine", "vcpus", 0);
	expect_reject(m, mlen, -EINVAL, "vCPUs");
	free(m);
	/* Count and nodes disagree. */
	mlen = len;
	m = mutate_u32(blob, &mlen, "/machine", "vcpus", 3);
	expect_reject(m, mlen, -EINVAL, "/cpus has 2 nodes");
	free(m);
	mlen = len;
	m = mutate_u32(blob, &mlen, "/machine", "vcpus", 1);
	expect_reject(m, mlen, -EINVAL, "/cpus has 2 nodes");
	free(m);
	/* The writer refuses too. */
	s->machine.nr_vcpus = SNAP_MAX_VCPUS + 1;
	assert_int_equal(snap_build_state(s, &m, &mlen, err, sizeof(err)),
			 -EINVAL);
	/* 64 vCPUs is fine. */
	s->machine.nr_vcpus = SNAP_MAX_VCPUS;
	for (unsigned i = 2; i < SNAP_MAX_VCPUS; i++)
		s->vcpu[i] = s->vcpu[i % 2];
	free(blob);
	build(s, &blob, &len);
	struct snap_vm *out = calloc(1, sizeof(*out));
	assert_int_equal(snap_parse_state(blob, len, out, err, sizeof(err)), 0);
	assert_int_equal(out->machine.nr_vcpus, SNAP_MAX_VCPUS);
	free(out);
	free(blob);
	free(s);
}

static void test_too_many_msrs(void **state)
{
	struct snap_vm *s = make_vm();
	static struct kvm_msr_entry msrs[SNAP_MAX_MSRS + 1];
	void *blob, *m;
	size_t len, mlen;

	(void)state;
	build(s, &blob, &len);
	mlen = len;
	m = mutate(blob, &mlen, "/cpus/cpu@1", "msrs", msrs, sizeof(msrs));
	expect_reject(m, mlen, -EINVAL, "msrs");
	free(m);
	mlen = len;
	m = mutate(blob, &mlen, "/cpus/cpu@1", "msrs", msrs, 24);
	expect_reject(m, mlen, -EINVAL, "not a multiple");
	free(m);
	/* Exactly the cap is accepted, with reserved fields checked. */
	mlen = len;
	m = mutate(blob, &mlen, "/cpus/cpu@1", "msrs", msrs,
		   SNAP_MAX_MSRS * sizeof(msrs[0]));
	struct snap_vm *out = calloc(1, sizeof(*out));
	assert_int_equal(snap_parse_state(m, mlen, out, err, sizeof(err)), 0);
	assert_int_equal(out->vcpu[1].nr_msrs, SNAP_MAX_MSRS);
	free(m);
	msrs[3].reserved = 1;
	mlen = len;
	m = mutate(blob, &mlen, "/cpus/cpu@1", "msrs", msrs, 16 * 4);
	expect_reject(m, mlen, -EINVAL, "reserved");
	free(m);
	s->vcpu[0].nr_msrs = SNAP_MAX_MSRS + 1;
	assert_int_equal(snap_build_state(s, &m, &mlen, err, sizeof(err)),
			 -EINVAL);
	free(out);
	free(blob);
	free(s);
}

static void test_devices(void **state)
{
	struct snap_vm *s = make_vm();
	void *blob, *m;
	size_t len, mlen;

	(void)state;
	/* A gap: virtio@0 and virtio@2. */
	build(s, &blob, &len);
	{
		size_t cap = len + 4096;
		void *buf = malloc(cap);
		int devs, node;

		assert_int_equal(fdt_open_into(blob, buf, (int)cap), 0);
		devs = fdt_path_offset(buf, "/devices");
		node = fdt_subnode_offset(buf, devs, "virtio@1");
		assert_int_equal(fdt_set_name(buf, node, "virtio@2"), 0);
		expect_reject(buf, fdt_totalsize(buf), -EINVAL,
			      "missing node virtio@1");
		free(buf);
	}
	/* Device at the wrong window, unknown status bits, bad CID. */
	mlen = len;
	{
		fdt64_t base = cpu_to_fdt64(EMBER_VIRTIO_MMIO_BASE + 0x800);

		m = mutate(blob, &mlen, "/devices/virtio@0", "mmio-base", &base,
			   8);
	}
	expect_reject(m, mlen, -EINVAL, "mmio base");
	free(m);
	mlen = len;
	m = mutate_u32(blob, &mlen, "/devices/virtio@0", "device-id", 0);
	expect_reject(m, mlen, -EINVAL, NULL);
	free(m);
	mlen = len;
	m = mutate_u32(blob, &mlen, "/devices/virtio@0", "device-id", 64);
	expect_reject(m, mlen, -EINVAL, NULL);
	free(m);
	/* The device's own values are its to check (read-only=2 parses);
	 * a property name over the cap does not. */
	mlen = len;
	m = mutate_u32(blob, &mlen, "/devices/virtio@0", "read-only", 2);
	expect_accept(m, mlen);
	free(m);
	mlen = len;
	m = mutate_u32(blob, &mlen, "/devices/virtio@0",
		       "a-property-name-longer-than-31-bytes", 1);
	expect_reject(m, mlen, -EINVAL, "device properties");
	free(m);
	free(blob);

	/* 16 devices are fine, the writer and reader agree. */
	s->nr_devices = SNAP_MAX_DEVICES;
	for (unsigned i = 2; i < SNAP_MAX_DEVICES; i++) {
		s->dev[i] = s->dev[i % 2];
		s->dev[i].mmio_base =
			EMBER_VIRTIO_MMIO_BASE + i * EMBER_VIRTIO_MMIO_SIZE;
	}
	build(s, &blob, &len);
	/* Add a 17th node. */
	{
		size_t cap = len + 65536;
		void *buf = malloc(cap);
		int devs;

		assert_int_equal(fdt_open_into(blob, buf, (int)cap), 0);
		devs = fdt_path_offset(buf, "/devices");
		assert_true(fdt_add_subnode(buf, devs, "virtio@16") >= 0);
		expect_reject(buf, fdt_totalsize(buf), -EINVAL, "17 devices");
		free(buf);
	}
	free(blob);
	s->nr_devices = SNAP_MAX_DEVICES + 1;
	assert_int_equal(snap_build_state(s, &m, &mlen, err, sizeof(err)),
			 -EINVAL);
	free(s);
}

static void test_irqchip_ids(void **state)
{
	struct snap_vm *s = make_vm();
	struct kvm_irqchip chip;
	void *blob, *m;
	size_t len, mlen;

	(void)state;
	build(s, &blob, &len);
	chip = s->irqchip[KVM_IRQCHIP_IOAPIC];
	chip.chip_id = KVM_IRQCHIP_PIC_MASTER;
	mlen = len;
	m = mutate(blob, &mlen, "/vm", "ioapic", &chip, sizeof(chip));
	expect_reject(m, mlen, -EINVAL, "chip_id");
	free(m);
	free(blob);
	free(s);
}

/* Rewrites queue `q` of device `dev` in the blob through the on-disk
 * struct and expects rejection with `msg`. */
static void queue_case(const void *blob, size_t len, const char *dev,
		       unsigned q, void (*edit)(struct snap_le_virtq *),
		       const char *msg)
{
	char path[64];
	const void *p;
	struct snap_le_virtq qs[SNAP_MAX_QUEUES];
	int plen, node;
	size_t mlen = len;
	void *m;

	snprintf(path, sizeof(path), "/devices/%s", dev);
	node = fdt_path_offset(blob, path);
	p = fdt_getprop(blob, node, "queues", &plen);
	assert_non_null(p);
	memcpy(qs, p, (size_t)plen);
	edit(&qs[q]);
	m = mutate(blob, &mlen, path, "queues", qs, plen);
	expect_reject(m, mlen, -EINVAL, msg);
	free(m);
}

static void q_far_ahead(struct snap_le_virtq *q)
{
	q->last_avail = htole16(le16toh(q->used_idx) + le16toh(q->size) + 1);
}
static void q_behind(struct snap_le_virtq *q)
{
	/* used_idx ahead of last_avail: the device returned chains it never
	 * took. */
	q->used_idx = htole16(le16toh(q->last_avail) + 1);
}
static void q_not_pow2(struct snap_le_virtq *q)
{
	q->size = htole16(96);
}
static void q_too_big(struct snap_le_virtq *q)
{
	q->size = htole16(2048);
	q->ready = 0;
}
static void q_misaligned(struct snap_le_virtq *q)
{
	q->desc_gpa = htole64(le64toh(q->desc_gpa) + 8);
}
static void q_outside(struct snap_le_virtq *q)
{
	q->used_gpa = htole64(MEM_SIZE - 4);
}
static void q_in_hole(struct snap_le_virtq *q)
{
	q->avail_gpa = htole64(EMBER_VIRTIO_MMIO_BASE);
}
static void q_overflow(struct snap_le_virtq *q)
{
	q->desc_gpa = htole64(UINT64_MAX - 15);
}
static void q_bad_bool(struct snap_le_virtq *q)
{
	q->ready = 2;
}
static void q_reserved(struct snap_le_virtq *q)
{
	q->reserved[4] = 1;
}
static void q_no_event_idx(struct snap_le_virtq *q)
{
	q->event_idx = 0;
}

static void test_queue_state(void **state)
{
	struct snap_vm *s = make_vm();
	void *blob;
	size_t len;

	(void)state;
	build(s, &blob, &len);
	queue_case(blob, len, "virtio@0", 0, q_far_ahead, "apart");
	queue_case(blob, len, "virtio@1", 1, q_behind, "apart");
	queue_case(blob, len, "virtio@0", 0, q_not_pow2, "power of two");
	queue_case(blob, len, "virtio@1", 2, q_too_big, "size 2048");
	queue_case(blob, len, "virtio@0", 0, q_misaligned, "misaligned");
	queue_case(blob, len, "virtio@0", 0, q_outside, "outside guest RAM");
	queue_case(blob, len, "virtio@1", 0, q_in_hole, "outside guest RAM");
	queue_case(blob, len, "virtio@1", 0, q_overflow, "outside guest RAM");
	queue_case(blob, len, "virtio@0", 0, q_bad_bool, "flag byte");
	queue_case(blob, len, "virtio@0", 0, q_reserved, "reserved");
	queue_case(blob, len, "virtio@0", 0, q_no_event_idx, "event_idx");
	/* The writer applies the same checks. */
	s->dev[0].vq[0].last_avail = s->dev[0].vq[0].used_idx + 257;
	assert_int_equal(snap_build_state(s, &blob, &len, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "apart"));
	free(blob);
	free(s);
}

static void test_oversize(void **state)
{
	struct snap_vm *s = make_vm();
	uint8_t *big;
	char path[128];
	int fd;

	(void)state;
	big = calloc(1, SNAP_MAX_STATE_SIZE + 1u);
	assert_non_null(big);
	expect_reject(big, SNAP_MAX_STATE_SIZE + 1u, -EFBIG, "limit");
	free(big);
	/* A state file over the cap is refused before it is read. */
	snprintf(path, sizeof(path), "%s/state", tmpdir);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)SNAP_MAX_STATE_SIZE + 4096), 0);
	close(fd);
	assert_int_equal(snap_load_state(tmpdir, s, SNAP_LOAD_ANY_CPU, err,
					 sizeof(err)),
			 -EFBIG);
	assert_non_null(strstr(err, "limit"));
	unlink(path);
	assert_int_equal(snap_read_state(tmpdir, s, err, sizeof(err)), -ENOENT);
	free(s);
}

/* ---- CPU fingerprint ---- */

static void test_cpu_fingerprint(void **state)
{
	struct snap_cpu_fp here, saved;
	struct snap_vm *s = make_vm(), *out = calloc(1, sizeof(*out));

	(void)state;
	assert_int_equal(snap_cpu_fingerprint(&here), 0);
	assert_int_equal(strlen(here.vendor), 12);
	assert_true(here.family > 0);
	saved = here;
	assert_int_equal(snap_cpu_compatible(&saved, &here, err, sizeof(err)), 0);
	/* Fewer features saved than present: fine. */
	saved.words[SNAP_CPUW_7_EBX] &= ~1u;
	assert_int_equal(snap_cpu_compatible(&saved, &here, err, sizeof(err)), 0);
	/* A feature the host lacks. */
	saved = here;
	here.words[SNAP_CPUW_1_ECX] &= ~(1u << 20); /* SSE4.2 */
	saved.words[SNAP_CPUW_1_ECX] |= 1u << 20;
	assert_int_equal(snap_cpu_compatible(&saved, &here, err, sizeof(err)),
			 -ENOEXEC);
	assert_non_null(strstr(err, "CPUID.1:ECX"));
	assert_int_equal(snap_cpu_fingerprint(&here), 0);
	saved = here;
	saved.model ^= 1;
	assert_int_equal(snap_cpu_compatible(&saved, &here, err, sizeof(err)),
			 -ENOEXEC);
	assert_non_null(strstr(err, "model"));
	saved = here;
	saved.stepping ^= 1; /* stepping is not compared */
	assert_int_equal(snap_cpu_compatible(&saved, &here, err, sizeof(err)), 0);
	saved = here;
	memcpy(saved.vendor, "FakeCPUVndr!", 13);
	assert_int_equal(snap_cpu_compatible(&saved, &here, err, sizeof(err)),
			 -ENOEXEC);
	assert_non_null(strstr(err, "FakeCPUVndr!"));

	/* End to end: a snapshot from a foreign CPU is refused by restore's
	 * reader and still readable for inspection. */
	s->cpu = saved;
	assert_int_equal(snap_write_state(tmpdir, s, err, sizeof(err)), 0);
	assert_int_equal(snap_read_state(tmpdir, out, err, sizeof(err)),
			 -ENOEXEC);
	assert_non_null(strstr(err, "FakeCPUVndr!"));
	assert_int_equal(snap_load_state(tmpdir, out, SNAP_LOAD_ANY_CPU, err,
					 sizeof(err)),
			 0);
	assert_string_equal(out->cpu.vendor, "FakeCPUVndr!");
	free(s);
	free(out);
}

/* ---- memory file ---- */

static void test_sparse_memory(void **state)
{
	const uint64_t size = 4ULL << 20; /* 1024 pages */
	uint8_t *ram = calloc(1, size);
	char path[128];
	struct stat st;
	uint64_t written = 0, data = 0;
	void *map;
	int fd;

	(void)state;
	assert_non_null(ram);
	ram[3 * 4096] = 1;              /* page 3 */
	ram[4 * 4096 + 4095] = 0xff;    /* page 4, last byte */
	ram[100 * 4096 + 8] = 7;        /* page 100 */
	ram[size - 1] = 9;              /* last page */
	assert_int_equal(snap_write_memory_count(tmpdir, ram, size, &written,
						 err, sizeof(err)),
			 0);
	assert_int_equal(written, 4);
	assert_int_equal(snap_open_memory(tmpdir, size, &fd, err, sizeof(err)),
			 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, size);
	/* Zero pages are holes: only the written pages are allocated (file
	 * systems may round up allocation a little, never to the full size). */
	assert_true((uint64_t)st.st_blocks * 512 <= 64 * 4096);
	assert_int_equal(snap_memory_data_pages(fd, size, &data, err,
						sizeof(err)),
			 0);
	assert_true(data >= 4 && data < 64);
	/* SEEK_DATA from 0 lands on page 3 where holes are supported. */
	off_t first = lseek(fd, 0, SEEK_DATA);
	assert_true(first == 0 || first == 3 * 4096);
	map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	assert_true(map != MAP_FAILED);
	assert_memory_equal(map, ram, size);
	munmap(map, size);
	close(fd);

	/* Wrong sizes are refused with numbers in the message. */
	assert_int_equal(snap_open_memory(tmpdir, size + 4096, &fd, err,
					  sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "truncated"));
	snprintf(path, sizeof(path), "%s/memory", tmpdir);
	assert_int_equal(truncate(path, (off_t)(size / 2)), 0);
	assert_int_equal(snap_open_memory(tmpdir, size, &fd, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "truncated"));
	assert_int_equal(snap_open_memory(tmpdir, size / 4, &fd, err,
					  sizeof(err)),
			 -EINVAL);
	assert_int_equal(snap_write_memory(tmpdir, ram, size - 1, err,
					   sizeof(err)),
			 -EINVAL);
	assert_int_equal(snap_write_memory(tmpdir, ram, 0, err,
					   sizeof(err)),
			 -EINVAL);
	unlink(path);
	assert_int_equal(snap_open_memory(tmpdir, size, &fd, err, sizeof(err)),
			 -ENOENT);
	free(ram);
}

static void test_workingset(void **state)
{
	const uint64_t pages_in[] = { 9, 3, 1000, 3, 0, 9 };
	const uint64_t mem = 4ULL << 20;
	uint64_t *pages = NULL, bad = 1024;
	char path[128];
	size_t n = 0;
	int fd;

	(void)state;
	assert_int_equal(snap_read_workingset(tmpdir, mem, &pages, &n, err,
					      sizeof(err)),
			 -ENOENT);
	assert_int_equal(snap_write_workingset(tmpdir, pages_in, 6, mem, err,
					       sizeof(err)),
			 0);
	assert_int_equal(snap_read_workingset(tmpdir, mem, &pages, &n, err,
					      sizeof(err)),
			 0);
	assert_int_equal(n, 4);
	assert_int_equal(pages[0], 0);
	assert_int_equal(pages[1], 3);
	assert_int_equal(pages[2], 9);
	assert_int_equal(pages[3], 1000);
	free(pages);
	/* Smaller RAM than the set covers. */
	assert_int_equal(snap_read_workingset(tmpdir, 1ULL << 20, &pages, &n,
					      err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(snap_write_workingset(tmpdir, &bad, 1, mem, err,
					       sizeof(err)),
			 -EINVAL);
	/* Truncated by one byte, then an out-of-order entry. */
	snprintf(path, sizeof(path), "%s/workingset", tmpdir);
	assert_int_equal(truncate(path, 24 + 4 * 8 - 1), 0);
	assert_int_equal(snap_read_workingset(tmpdir, mem, &pages, &n, err,
					      sizeof(err)),
			 -EINVAL);
	assert_int_equal(truncate(path, 24 + 4 * 8), 0);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	uint64_t five = htole64(5);
	assert_int_equal(pwrite(fd, &five, 8, 24 + 8 * 3), 8);
	close(fd);
	assert_int_equal(snap_read_workingset(tmpdir, mem, &pages, &n, err,
					      sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "order"));
	/* Wrong magic. */
	fd = open(path, O_WRONLY);
	assert_int_equal(pwrite(fd, "XXXX", 4, 0), 4);
	close(fd);
	assert_int_equal(snap_read_workingset(tmpdir, mem, &pages, &n, err,
					      sizeof(err)),
			 -EINVAL);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_blob),
		cmocka_unit_test_setup_teardown(test_round_trip_dir, setup_dir,
						teardown_dir),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_flipped_bytes),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_missing_property),
		cmocka_unit_test(test_wrong_length),
		cmocka_unit_test(test_bad_strings),
		cmocka_unit_test(test_too_many_vcpus),
		cmocka_unit_test(test_too_many_msrs),
		cmocka_unit_test(test_devices),
		cmocka_unit_test(test_irqchip_ids),
		cmocka_unit_test(test_queue_state),
		cmocka_unit_test_setup_teardown(test_oversize, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_cpu_fingerprint, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_sparse_memory, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_workingset, setup_dir,
						teardown_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
