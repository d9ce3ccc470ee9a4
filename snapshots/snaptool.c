/*
 * snaptool.c - ember-snap: inspect and verify Ember snapshot directories.
 *
 * A thin front end over snap.h: every check lives in the library, so what
 * `verify` accepts is exactly what restore accepts. The only exit() calls
 * are here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libfdt.h>

#include "snapshots/snap.h"
#include "virtio/virtio.h"

#define EXIT_USAGE 2

static const char usage_text[] =
"NAME\n"
"    ember-snap - inspect and verify Ember VM snapshots\n"
"\n"
"SYNOPSIS\n"
"    ember-snap inspect [--raw] DIR\n"
"    ember-snap verify [--any-cpu] [--quiet] DIR\n"
"    ember-snap --help\n"
"\n"
"DESCRIPTION\n"
"    An Ember snapshot is a directory holding a paused microVM:\n"
"\n"
"    state       a flattened devicetree blob (FDT, readable with\n"
"                `dtc -I dtb -O dts DIR/state`): format version, the CPU\n"
"                fingerprint, machine configuration, one node per vCPU\n"
"                (KVM registers, special registers, XSAVE or FPU, XCRs,\n"
"                LAPIC, events, MP state, debug registers, TSC, MSRs),\n"
"                the in-kernel irqchip, PIT and kvmclock, the COM1 UART\n"
"                and one node per virtio-mmio device (transport registers,\n"
"                queue state, backing file or vsock socket).\n"
"    memory      guest RAM, byte for byte, as a sparse file: pages that\n"
"                were all zero are holes. Restore maps it MAP_PRIVATE.\n"
"    workingset  optional: the guest pages the first invocation after a\n"
"                restore touched, prefetched by later restores.\n"
"\n"
"    The state file is treated as hostile input: its size is capped at\n"
"    16 MiB, the FDT structure is checked in full, every property must\n"
"    have its exact expected length, counts are capped (64 vCPUs, 512\n"
"    MSRs per vCPU, 16 devices, 4 queues per device) and device queue\n"
"    state is validated like a freshly programmed queue.\n"
"\n"
"COMMANDS\n"
"    inspect DIR\n"
"        Print the snapshot: format version, file sizes (the memory\n"
"        file's apparent size, the bytes actually allocated and its data\n"
"        pages), the CPU fingerprint and whether this host can restore\n"
"        it, the machine, each vCPU (mode, CPL, RIP, RSP, control\n"
"        registers, MSR count, TSC), VM-wide interrupt and timer state,\n"
"        the UART, each device with its transport and queues, the\n"
"        working-set size, and finally the raw state tree (every node\n"
"        and property with its length). A snapshot from a foreign CPU is\n"
"        shown; a corrupt one is reported (exit status 1) and, when its\n"
"        FDT structure is intact, its raw tree is still printed.\n"
"\n"
"    verify DIR\n"
"        Fully validate the snapshot as restore would: parse and check\n"
"        the state; check that this host's CPU can run it; check that\n"
"        the memory file is a regular file of exactly the snapshot's\n"
"        memory size and read every data extent of it back (catching\n"
"        I/O errors); validate the working set if present. Prints one\n"
"        line, `OK: ...` or `FAIL: <reason>`. Backing files that do not\n"
"        exist on this host are reported as warnings only.\n"
"\n"
"OPTIONS\n"
"    --any-cpu   verify: skip the CPU fingerprint check (for snapshots\n"
"                verified on a machine other than the one restoring them)\n"
"    --quiet     verify: print nothing on success\n"
"    --raw       inspect: print only the raw state tree\n"
"    -h, --help  print this text\n"
"\n"
"EXIT STATUS\n"
"    0  the snapshot is valid (verify) or was printed (inspect)\n"
"    1  the snapshot is invalid, incompatible or unreadable\n"
"    2  usage error\n"
"\n"
"EXAMPLES\n"
"    ember-snap verify /var/lib/ember/snap/fn-42 && echo restorable\n"
"    ember-snap inspect /var/lib/ember/snap/fn-42 | less\n"
"    dtc -I dtb -O dts /var/lib/ember/snap/fn-42/state\n"
"\n"
"SEE ALSO\n"
"    docs/snapshots.md (format, limits, compatibility rules), dtc(1)\n";

static void usage(FILE *f)
{
	fputs(usage_text, f);
}

/* ---- helpers ---- */

static const char *fmt_bytes(uint64_t v, char *buf, size_t len)
{
	if (v >= (1ULL << 30) && v % (1ULL << 30) == 0)
		snprintf(buf, len, "%llu GiB", (unsigned long long)(v >> 30));
	else if (v >= (1ULL << 20))
		snprintf(buf, len, "%.1f MiB", (double)v / (1 << 20));
	else if (v >= 1024)
		snprintf(buf, len, "%.1f KiB", (double)v / 1024);
	else
		snprintf(buf, len, "%llu B", (unsigned long long)v);
	return buf;
}

static void print_status(uint32_t st)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
		{ VIRTIO_STATUS_ACKNOWLEDGE, "ACKNOWLEDGE" },
		{ VIRTIO_STATUS_DRIVER, "DRIVER" },
		{ VIRTIO_STATUS_FEATURES_OK, "FEATURES_OK" },
		{ VIRTIO_STATUS_DRIVER_OK, "DRIVER_OK" },
		{ VIRTIO_STATUS_NEEDS_RESET, "NEEDS_RESET" },
		{ VIRTIO_STATUS_FAILED, "FAILED" },
	};
	const char *sep = "";

	printf("0x%02x (", st);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (st & names[i].bit) {
			printf("%s%s", sep, names[i].name);
			sep = "|";
		}
	}
	printf("%s)", *sep ? "" : "reset");
}

static const char *vcpu_mode(const struct kvm_sregs *sr)
{
	if (!(sr->cr0 & 1))
		return "real";
	if (sr->efer & (1ULL << 10)) /* EFER.LMA */
		return sr->cs.l ? "64-bit" : "compat";
	return "protected";
}

/* One line per node ("name/") and per property ("name: N bytes"),
 * indented by depth: the shape `dtc -I dtb -O dts` would print, without
 * the values. */
static void print_raw_tree(const void *fdt)
{
	int depth = -1, node, prop; /* the root comes back at depth 0 */

	for (node = fdt_next_node(fdt, -1, &depth); node >= 0 && depth >= 0;
	     node = fdt_next_node(fdt, node, &depth)) {
		const char *name = fdt_get_name(fdt, node, NULL);

		printf("  %*s%s/\n", 2 * depth, "",
		       depth == 0 ? "" : (name ? name : "?"));
		fdt_for_each_property_offset(prop, fdt, node) {
			const char *pname;
			int len;
			const void *val =
				fdt_getprop_by_offset(fdt, prop, &pname, &len);

			if (!val)
				continue;
			printf("  %*s%s: %d bytes\n", 2 * depth + 2, "", pname,
			       len);
		}
	}
}

static void print_memory_files(const char *dir, const struct snap_vm *s)
{
	char path[4096], b1[32], b2[32], err[256];
	uint64_t data = 0;
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_STATE_FILE);
	if (stat(path, &st) == 0)
		printf("  state        %s\n",
		       fmt_bytes((uint64_t)st.st_size, b1, sizeof(b1)));
	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_MEMORY_FILE);
	if (stat(path, &st) < 0) {
		printf("  memory       missing (%s)\n", strerror(errno));
		return;
	}
	printf("  memory       %s apparent, %s allocated",
	       fmt_bytes((uint64_t)st.st_size, b1, sizeof(b1)),
	       fmt_bytes((uint64_t)st.st_blocks * 512, b2, sizeof(b2)));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && snap_memory_data_pages(fd, (uint64_t)st.st_size, &data,
					      err, sizeof(err)) == 0)
		printf(", %llu data pages of %llu",
		       (unsigned long long)data,
		       (unsigned long long)((uint64_t)st.st_size /
					    SNAP_PAGE_SIZE));
	if (fd >= 0)
		close(fd);
	if ((uint64_t)st.st_size != s->machine.mem_size)
		printf("  [SIZE MISMATCH: state says %llu]",
		       (unsigned long long)s->machine.mem_size);
	printf("\n");
}

static void print_workingset(const char *dir, const struct snap_vm *s)
{
	char err[256], b[32];
	uint64_t *pages;
	size_t n;
	int ret;

	ret = snap_read_workingset(dir, s->machine.mem_size, &pages, &n, err,
				   sizeof(err));
	if (ret == -ENOENT) {
		printf("  workingset   none\n");
		return;
	}
	if (ret < 0) {
		printf("  workingset   INVALID: %s\n", err);
		return;
	}
	printf("  workingset   %zu pages (%s)\n", n,
	       fmt_bytes(n * SNAP_PAGE_SIZE, b, sizeof(b)));
	free(pages);
}

static void print_vcpu(unsigned i, const struct snap_vcpu *v)
{
	const struct kvm_sregs *sr = &v->sregs;

	printf("  cpu@%u: %s mode, CPL %u, mp_state %u\n", i, vcpu_mode(sr),
	       sr->cs.selector & 3, v->mp_state.mp_state);
	printf("    rip 0x%016llx rsp 0x%016llx rflags 0x%llx\n",
	       (unsigned long long)v->regs.rip, (unsigned long long)v->regs.rsp,
	       (unsigned long long)v->regs.rflags);
	printf("    cr0 0x%llx cr3 0x%llx cr4 0x%llx efer 0x%llx\n",
	       (unsigned long long)sr->cr0, (unsigned long long)sr->cr3,
	       (unsigned long long)sr->cr4, (unsigned long long)sr->efer);
	printf("    state: %s%s%s%s, %u MSRs, tsc 0x%llx at %u kHz\n",
	       v->has_xsave ? "xsave " : "", v->has_fpu ? "fpu " : "",
	       v->has_xcrs ? "xcrs " : "", v->has_lapic ? "lapic" : "no-lapic",
	       v->nr_msrs, (unsigned long long)v->tsc, v->tsc_khz);
}

/* The device's own props, shown by shape: a printable string, a 32- or
 * 64-bit cell, or a byte count. */
static void print_props(const struct snap_virtio_dev *d)
{
	for (uint32_t i = 0; i < d->nr_props; i++) {
		const struct snap_prop *p = &d->props[i];
		bool text = p->len > 0 && p->data[p->len - 1] == '\0';
		uint64_t v = 0;

		for (uint32_t k = 0; text && k + 1 < p->len; k++)
			text = p->data[k] >= 0x20 && p->data[k] < 0x7f;
		if (text) {
			printf("    %s \"%s\"\n", p->name, (const char *)p->data);
		} else if (p->len == 4 || p->len == 8) {
			for (uint32_t k = 0; k < p->len; k++)
				v = v << 8 | p->data[k];
			printf("    %s %llu (0x%llx)\n", p->name,
			       (unsigned long long)v, (unsigned long long)v);
		} else {
			printf("    %s: %u bytes\n", p->name, p->len);
		}
	}
}

static void print_device(unsigned i, const struct snap_virtio_dev *d)
{
	printf("  virtio@%u: virtio-%s (id %u) at 0x%llx gsi %u, status ", i,
	       d->kind, d->device_id, (unsigned long long)d->mmio_base, d->gsi);
	print_status(d->status);
	printf("%s\n", d->activated ? ", activated" : "");
	printf("    features driver 0x%llx acked 0x%llx, queue_sel %u, "
	       "interrupt 0x%x, config generation %u\n",
	       (unsigned long long)d->driver_features,
	       (unsigned long long)d->acked_features, d->queue_sel,
	       d->interrupt_status, d->config_generation);
	for (unsigned q = 0; q < d->nr_queues; q++) {
		const struct snap_virtq *vq = &d->vq[q];

		printf("    queue %u: size %u %s", q, vq->size,
		       vq->ready ? "ready" : "not ready");
		if (vq->ready)
			printf(", desc 0x%llx avail 0x%llx used 0x%llx, "
			       "last_avail %u used_idx %u (%u in flight)%s",
			       (unsigned long long)vq->desc_gpa,
			       (unsigned long long)vq->avail_gpa,
			       (unsigned long long)vq->used_gpa,
			       vq->last_avail, vq->used_idx,
			       (uint16_t)(vq->last_avail - vq->used_idx),
			       vq->event_idx ? ", event_idx" : "");
		printf("\n");
	}
	print_props(d);
}

static void print_vm(const char *dir, const struct snap_vm *s)
{
	struct snap_cpu_fp here;
	char err[256], b[32];
	int ret;

	printf("snapshot %s\n", dir);
	printf("  format       version %u\n", s->format_version);
	print_memory_files(dir, s);
	print_workingset(dir, s);
	printf("cpu fingerprint\n");
	printf("  %s family 0x%x model 0x%x stepping %u\n", s->cpu.vendor,
	       s->cpu.family, s->cpu.model, s->cpu.stepping);
	for (unsigned i = 0; i < SNAP_CPU_WORDS; i++)
		printf("  %-22s 0x%08x\n", snap_cpu_word_name(i),
		       s->cpu.words[i]);
	ret = snap_cpu_fingerprint(&here);
	if (ret == 0)
		ret = snap_cpu_compatible(&s->cpu, &here, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "cannot identify this host's CPU");
	printf("  this host:   %s%s\n", ret == 0 ? "compatible" : "NOT compatible: ",
	       ret == 0 ? "" : err);
	printf("machine\n");
	printf("  memory %s, %u vCPU%s, %s guest\n",
	       fmt_bytes(s->machine.mem_size, b, sizeof(b)), s->machine.nr_vcpus,
	       s->machine.nr_vcpus == 1 ? "" : "s",
	       snap_guest_kind_name(s->machine.kind));
	printf("  cmdline \"%s\"\n", s->machine.cmdline);
	printf("vm\n");
	printf("  irqchip %s, pit %s, kvmclock %s",
	       s->has_irqchip ? "yes" : "no", s->has_pit ? "yes" : "no",
	       s->has_clock ? "yes" : "no");
	if (s->has_clock)
		printf(" (clock %llu ns, flags 0x%x)",
		       (unsigned long long)s->clock.clock, s->clock.flags);
	printf("\n");
	if (s->has_serial)
		printf("  serial: ier 0x%02x lcr 0x%02x mcr 0x%02x lsr 0x%02x "
		       "divisor %u\n",
		       s->serial.ier, s->serial.lcr, s->serial.mcr,
		       s->serial.lsr, s->serial.dll | s->serial.dlm << 8);
	printf("vcpus\n");
	for (unsigned i = 0; i < s->machine.nr_vcpus; i++)
		print_vcpu(i, &s->vcpu[i]);
	printf("devices (%u)\n", s->nr_devices);
	for (unsigned i = 0; i < s->nr_devices; i++)
		print_device(i, &s->dev[i]);
}

/* ---- commands ---- */

static int cmd_inspect(const char *dir, int raw_only)
{
	struct snap_vm *s = calloc(1, sizeof(*s));
	char err[512];
	void *blob = NULL;
	size_t len = 0;
	int ret, status = 1;

	if (!s) {
		fprintf(stderr, "ember-snap: out of memory\n");
		return 1;
	}
	ret = snap_load_state_blob(dir, &blob, &len, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "ember-snap: %s\n", err);
		goto out;
	}
	ret = snap_parse_state(blob, len, s, err, sizeof(err));
	if (ret < 0)
		fprintf(stderr, "ember-snap: %s/state: %s\n", dir, err);
	else if (!raw_only)
		print_vm(dir, s);
	/* The raw tree is only walked when libfdt vouched for the structure. */
	if (len >= sizeof(struct fdt_header) && fdt_check_header(blob) == 0 &&
	    fdt_totalsize(blob) <= len && fdt_check_full(blob, len) == 0) {
		printf("state tree (%zu bytes)\n", len);
		print_raw_tree(blob);
	}
	status = ret < 0 ? 1 : 0;
out:
	free(blob);
	free(s);
	return status;
}

/* Reads every data extent of the memory file, so a file the kernel cannot
 * read back (I/O error, truncated extent) fails here, not in the guest. */
static int read_all_data(int fd, uint64_t size, char *err, size_t errlen)
{
	static uint8_t buf[1 << 20];
	uint64_t off = 0;

	while (off < size) {
		off_t data = lseek(fd, (off_t)off, SEEK_DATA);
		off_t hole;

		if (data < 0 && errno == ENXIO)
			return 0;
		if (data < 0)
			goto err;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			goto err;
		for (off = (uint64_t)data; off < (uint64_t)hole && off < size;) {
			uint64_t want = (uint64_t)hole - off;
			ssize_t n = pread(fd, buf,
					  want > sizeof(buf) ? sizeof(buf) : want,
					  (off_t)off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				goto err;
			if (n == 0) {
				snprintf(err, errlen,
					 "memory file ends early at %llu",
					 (unsigned long long)off);
				return -EIO;
			}
			off += (uint64_t)n;
		}
	}
	return 0;
err:
	snprintf(err, errlen, "reading memory file: %s", strerror(errno));
	return -EIO;
}

static void warn_missing_backing(const struct snap_vm *s)
{
	for (unsigned i = 0; i < s->nr_devices; i++) {
		const struct snap_virtio_dev *d = &s->dev[i];
		char path[SNAP_DEV_PROP_MAX];

		if (!strcmp(d->kind, "blk") &&
		    snap_prop_str(d, "backing-path", path, sizeof(path), NULL,
				  0) == 0 && access(path, R_OK) < 0)
			fprintf(stderr,
				"ember-snap: warning: virtio@%u backing file "
				"%s: %s\n",
				i, path, strerror(errno));
	}
}

static int cmd_verify(const char *dir, int any_cpu, int quiet)
{
	struct snap_vm *s = calloc(1, sizeof(*s));
	char err[512], b[32];
	uint64_t data = 0, *pages = NULL;
	size_t nws = 0;
	int fd = -1, ret, have_ws;

	if (!s) {
		fprintf(stderr, "ember-snap: out of memory\n");
		return 1;
	}
	ret = snap_load_state(dir, s, any_cpu ? SNAP_LOAD_ANY_CPU : 0, err,
			      sizeof(err));
	if (ret < 0)
		goto fail;
	ret = snap_open_memory(dir, s->machine.mem_size, &fd, err, sizeof(err));
	if (ret < 0)
		goto fail;
	ret = read_all_data(fd, s->machine.mem_size, err, sizeof(err));
	if (ret == 0)
		ret = snap_memory_data_pages(fd, s->machine.mem_size, &data, err,
					     sizeof(err));
	close(fd);
	if (ret < 0)
		goto fail;
	ret = snap_read_workingset(dir, s->machine.mem_size, &pages, &nws, err,
				   sizeof(err));
	have_ws = ret == 0;
	if (ret < 0 && ret != -ENOENT)
		goto fail;
	free(pages);
	warn_missing_backing(s);
	if (!quiet) {
		printf("OK: %s: format %u, %u vCPU%s, %s RAM (%llu data pages), "
		       "%u device%s",
		       dir, s->format_version, s->machine.nr_vcpus,
		       s->machine.nr_vcpus == 1 ? "" : "s",
		       fmt_bytes(s->machine.mem_size, b, sizeof(b)),
		       (unsigned long long)data, s->nr_devices,
		       s->nr_devices == 1 ? "" : "s");
		if (have_ws)
			printf(", working set %zu pages", nws);
		printf("\n");
	}
	free(s);
	return 0;
fail:
	printf("FAIL: %s: %s\n", dir, err);
	free(s);
	return 1;
}

int main(int argc, char **argv)
{
	int any_cpu = 0, quiet = 0, raw = 0;
	const char *cmd, *dir = NULL;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--any-cpu"))
			any_cpu = 1;
		else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q"))
			quiet = 1;
		else if (!strcmp(argv[i], "--raw"))
			raw = 1;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] == '-' || dir) {
			fprintf(stderr, "ember-snap: unexpected argument '%s' "
				"(see ember-snap --help)\n", argv[i]);
			return EXIT_USAGE;
		} else {
			dir = argv[i];
		}
	}
	if (!dir) {
		fprintf(stderr, "ember-snap: %s needs a snapshot directory "
			"(see ember-snap --help)\n", cmd);
		return EXIT_USAGE;
	}
	if (!strcmp(cmd, "inspect") && !any_cpu && !quiet)
		return cmd_inspect(dir, raw);
	if (!strcmp(cmd, "verify") && !raw)
		return cmd_verify(dir, any_cpu, quiet);
	fprintf(stderr, "ember-snap: unknown command or option for '%s' (see "
		"ember-snap --help)\n", cmd);
	return EXIT_USAGE;
}
