/*
 * cli.c - ember-vmm, the command-line front end of libember.
 *
 * Turns flags into a struct ember_config, runs one VM, and maps how it ended
 * to an exit status. The only place in the VMM that prints usage or calls
 * exit().
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ember.h"
#include "kvm.h"
#include "log.h"
#include "seccomp.h"

static const char usage_text[] =
"Usage: ember-vmm --kernel FILE [OPTIONS]\n"
"       ember-vmm --micro --handler FILE [OPTIONS]\n"
"       ember-vmm --restore DIR [OPTIONS]\n"
"       ember-vmm --shell --control-fd FD | --control PATH [SHELL OPTIONS]\n"
"\n"
"Run one virtual machine on /dev/kvm until its guest powers off, fails or\n"
"times out. The kind of guest is chosen from the kernel file: a Linux\n"
"vmlinux (uncompressed ELF) boots through the Linux x86-64 boot protocol;\n"
"any other static x86-64 ELF is entered at its entry point in 64-bit mode\n"
"(a \"plain\" guest, such as Ember's test guests and micro guest).\n"
"\n"
"Guest:\n"
"  -k, --kernel FILE      vmlinux or plain ELF to boot (required unless --micro)\n"
"  -i, --initrd FILE      Linux: initial ramdisk. Plain guests: a boot module\n"
"                         placed after the image (see docs/guest-abi.md)\n"
"  -c, --cmdline STRING   kernel command line. Linux default:\n"
"                         \"console=ttyS0 reboot=k panic=-1\"; Ember appends the\n"
"                         CPU template's words and one virtio_mmio.device= per\n"
"                         device\n"
"  -m, --mem MIB          guest RAM in MiB (default 256; plain guests <= 3072)\n"
"  -n, --cpus N           vCPUs, 1..8 (default 1; plain guests use one).\n"
"                         Linux SMP uses an MP table (docs/linux-guest.md)\n"
"      --kind KIND        auto (default), linux or plain\n"
"      --cpl N            plain guests: start at CPL 3 (default) or 0\n"
"      --cpu-template T   auto (default: pvm on kvm-pvm hosts, else host),\n"
"                         host, or pvm (hide the CPU features the PVM\n"
"                         emulator cannot run; docs/guest-abi.md)\n"
"      --micro            run Ember's micro guest (the ember-micro binary\n"
"                         beside ember-vmm) with --handler as its function\n"
"      --handler FILE     with --micro: the static x86-64 Linux executable\n"
"                         to run (passed as the boot module)\n"
"\n"
"Devices:\n"
"  -s, --serial DEST      console: stdout (default), stderr, none, or a file\n"
"                         path (created or truncated)\n"
"  -d, --disk PATH[,ro]   a virtio-blk disk backed by PATH; ',ro' makes it\n"
"                         read-only (writes fail with VIRTIO_BLK_S_IOERR).\n"
"                         Repeatable, up to 8; devices appear in order\n"
"      --disk-backend B   uring (default, io_uring) or sync (pread/pwrite)\n"
"      --vsock PATH       a virtio-vsock device; the host side is the Unix\n"
"                         socket PATH (connect, send \"CONNECT <port>\\n\",\n"
"                         read \"OK <n>\\n\"); guest connections to host port\n"
"                         P go to the socket PATH_P\n"
"      --cid N            the guest's vsock CID (default 3)\n"
"\n"
"Snapshots:\n"
"      --restore DIR      start from the snapshot in DIR instead of a kernel\n"
"                         (guest RAM mapped copy-on-write from DIR/memory).\n"
"                         --vsock and --disk then override the saved socket\n"
"                         path and disk paths (a clone must not share them)\n"
"      --paused           start with the vCPUs paused (resume through the\n"
"                         control socket)\n"
"      --vsock-carry-fd FD\n"
"                         with --restore: FD, an inherited connected AF_UNIX\n"
"                         stream socket, is the host end of the connection\n"
"                         the snapshot carries (taken with one idle host\n"
"                         connection, docs/snapshots.md): no transport\n"
"                         reset, no CONNECT, no READY on it; its next bytes\n"
"                         are the host's next frame. Exit 64 if the snapshot\n"
"                         carries none\n"
"      --prefetch         with --restore: map the pages recorded in\n"
"                         DIR/workingset before the guest runs\n"
"      --control PATH     serve the control socket PATH (a stream socket): one\n"
"                         command per line, status | pause | resume | ping |\n"
"                         snapshot DIR | workingset | stop, answered\n"
"                         \"OK ...\" or \"ERR reason\" (docs/shell.md)\n"
"      --snapshot-at-ready DIR\n"
"                         write a snapshot to DIR when the guest reports\n"
"                         READY (the micro guest does, when its handler\n"
"                         first waits for a request), then exit 0\n"
"\n"
"Shell mode (a pooled VMM; docs/shell.md):\n"
"      --shell            open KVM, create the VM and its vCPUs, say\n"
"                         \"READY shell pid=N\", then restore the snapshot a\n"
"                         controller sends as file descriptors (restore\n"
"                         state=I memory=J vsock=K ...), serve its commands\n"
"                         and end with an \"EXIT reason status=N detail\" line.\n"
"                         The VM stops when the controller closes its end\n"
"      --control-fd FD    the controller: an inherited, connected AF_UNIX\n"
"                         SOCK_SEQPACKET socket (one message = one line, fds\n"
"                         attached with SCM_RIGHTS)\n"
"      --control PATH     with --shell: listen on PATH (SOCK_SEQPACKET), one\n"
"                         client at a time\n"
"  -n, --cpus N           the shell's vCPUs (default 1; match the snapshot)\n"
"      --irqchip          the shell has an in-kernel irqchip (Linux snapshots)\n"
"  -m, --mem MIB          map that much guest RAM in the shell ahead of time,\n"
"                         its memory slots made before the restore (~0.2 ms\n"
"                         off it here without --seccomp; with --seccomp no\n"
"                         gain was measured: docs/shell.md); a snapshot of\n"
"                         another size still restores, paying for both.\n"
"                         Default: none\n"
"      --threads-at-restore\n"
"                         create the VM's vCPU and event threads when the\n"
"                         restore starts the VM, not while the shell waits\n"
"                         (the default: they wait ready, ~0.2-0.3 ms off\n"
"                         the restore). For a controller that moves the\n"
"                         shell into a cgroup with a pids limit before the\n"
"                         restore: creating threads meets the limit, moving\n"
"                         them does not (emberd --cgroup-move-sync)\n"
"      --kvm-fd FD        use FD, an inherited open /dev/kvm, instead of the\n"
"                         path (emberd's jail: an empty root, no privileges)\n"
"\n"
"Confinement (docs/seccomp.md):\n"
"      --seccomp[=MODE]   every VMM thread (main, vCPU, event, control)\n"
"                         loads its own system-call allow-list once its\n"
"                         setup is done, before guest code runs; any other\n"
"                         call kills the process with SIGSYS. MODE: kill\n"
"                         (default) or log (allowed and logged by the\n"
"                         kernel, for debugging the lists). Also in --shell\n"
"      --no-seccomp       no filters (the default; emberd passes --seccomp)\n"
"\n"
"Control:\n"
"  -t, --timeout SECONDS  stop the guest after this long (decimals allowed)\n"
"  -v, --verbose          more log lines on stderr (repeat for more)\n"
"  -q, --quiet            only errors on stderr\n"
"  -h, --help             this text\n"
"\n"
"Exit status:\n"
"  0       the guest powered off cleanly (i8042 reset, or status 0 on the\n"
"          Ember exit port), or was stopped (control socket, SIGTERM,\n"
"          SIGINT, SIGHUP, the shell's controller gone)\n"
"  1-63    a plain guest reported this non-zero status (larger ones: 63)\n"
"  64      usage error (shell: a malformed restore command)\n"
"  65      invalid kernel, snapshot or other input\n"
"  66      a file cannot be opened or a socket created (--vsock, --control)\n"
"  69      /dev/kvm missing, not accessible, or lacking a feature;\n"
"          --seccomp on a kernel that cannot load seccomp filters\n"
"  70      internal VMM error\n"
"  124     --timeout expired\n"
"  125     the guest crashed: unhandled exception, triple fault, access to\n"
"          unmapped MMIO, emulation failure or an unknown exit; the reason,\n"
"          RIP and registers are printed on stderr\n"
"  SIGSYS  (a shell shows 159) with --seccomp: a thread made a system call\n"
"          outside its allow-list; the kernel log names it (docs/seccomp.md)\n";

static void usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ember-vmm: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'ember-vmm --help'.\n");
	exit(ST_USAGE);
}

static uint64_t parse_u64(const char *s, const char *what, uint64_t min,
			  uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		usage_error("invalid %s '%s' (expected %llu..%llu)", what, s,
			    (unsigned long long)min, (unsigned long long)max);
	return v;
}

/* The inherited descriptor option `opt` names (3 and up, open; `what` in
 * a parse error), made close-on-exec so no child of ours inherits it. */
static int inherited_fd(const char *s, const char *opt, const char *what)
{
	int fd = (int)parse_u64(s, what, 3, INT_MAX);

	if (fcntl(fd, F_GETFD) < 0)
		usage_error("%s %d: not an open descriptor", opt, fd);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
}

static uint64_t parse_seconds_ms(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 86400.0 * 365)
		usage_error("invalid timeout '%s' (seconds, > 0)", s);
	return (uint64_t)(v * 1000.0 + 0.5) ? (uint64_t)(v * 1000.0 + 0.5) : 1;
}

static int open_serial(const char *dest)
{
	int fd;

	if (!strcmp(dest, "stdout"))
		return STDOUT_FILENO;
	if (!strcmp(dest, "stderr"))
		return STDERR_FILENO;
	if (!strcmp(dest, "none"))
		return -1;
	fd = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "ember-vmm: cannot open serial output '%s': %s\n",
			dest, strerror(errno));
		exit(ST_NOINPUT);
	}
	return fd;
}

/* The micro guest lives beside the ember-vmm binary. */
static char *sibling_path(const char *name)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash, *out;

	if (n <= 0)
		return NULL;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return NULL;
	slash[1] = '\0';
	if (asprintf(&out, "%s%s", self, name) < 0)
		return NULL;
	return out;
}

int cli_status_for_create_error(int ret)
{
	switch (ret) {
	case -ENOENT:
	case -EACCES:
	case -EPERM:
	case -EISDIR:
	case -ENOTDIR:
	case -EEXIST: /* a --vsock path taken by something not a socket */
		return ST_NOINPUT;
	case -ENAMETOOLONG:
		return ST_USAGE;
	case -ENOEXEC:
	case -E2BIG:
	case -ENOTBLK: /* a --disk that is neither a file nor a block device */
		return ST_DATAERR;
	case -EINVAL:
		return ST_USAGE;
	case -ENOTSUP:
	case -ENODEV:
		return ST_UNAVAILABLE;
	default:
		return ST_SOFTWARE;
	}
}

/* A snapshot that cannot be used is invalid input (65), whatever the
 * reader's errno, unless a file is missing or KVM is the problem. */
int cli_status_for_restore_error(int ret)
{
	switch (ret) {
	case -EDESTADDRREQ:
	case -ENAMETOOLONG:
		return ST_USAGE;
	case -ENOENT:
	case -EACCES:
	case -EPERM:
	case -ENOTDIR:
	case -EEXIST: /* a --vsock path taken by something not a socket */
		return ST_NOINPUT;
	case -ENOTSUP:
	case -ENODEV:
		return ST_UNAVAILABLE;
	case -ENOMEM:
		return ST_SOFTWARE;
	default:
		return ST_DATAERR;
	}
}

int cli_status_for_exit(const struct ember_exit *e)
{
	switch (e->reason) {
	case EMBER_EXIT_POWEROFF:
	case EMBER_EXIT_STOPPED:
		return ST_OK;
	case EMBER_EXIT_GUEST_STATUS:
		return e->guest_status > 0 && e->guest_status < ST_GUEST_MAX ?
			       e->guest_status : ST_GUEST_MAX;
	case EMBER_EXIT_TIMEOUT:
		return ST_TIMEOUT;
	case EMBER_EXIT_VMM_ERROR:
		return ST_SOFTWARE;
	default:
		return ST_CRASH;
	}
}

/* The VM a termination signal stops (NULL: none yet or any more). */
static struct ember_vm *volatile signal_vm;

static void on_stop_signal(int sig)
{
	struct ember_vm *vm = signal_vm;

	if (vm)
		ember_vm_stop(vm); /* an eventfd write: async-signal-safe */
	else
		_exit(128 + sig);
}

void cli_stop_on_signals(struct ember_vm *vm)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	struct sigaction sa;

	signal_vm = vm;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

int main(int argc, char **argv)
{
	enum {
		OPT_KIND = 256, OPT_CPL, OPT_TEMPLATE, OPT_MICRO, OPT_HANDLER,
		OPT_BACKEND, OPT_VSOCK, OPT_CID, OPT_RESTORE, OPT_CONTROL,
		OPT_SNAP_READY, OPT_PREFETCH, OPT_PAUSED, OPT_SHELL,
		OPT_CONTROL_FD, OPT_IRQCHIP, OPT_SECCOMP, OPT_NO_SECCOMP,
		OPT_KVM_FD, OPT_THREADS_AT_RESTORE, OPT_CARRY_FD,
	};
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'n' },
		{ "serial", required_argument, NULL, 's' },
		{ "disk", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "kind", required_argument, NULL, OPT_KIND },
		{ "cpl", required_argument, NULL, OPT_CPL },
		{ "cpu-template", required_argument, NULL, OPT_TEMPLATE },
		{ "micro", no_argument, NULL, OPT_MICRO },
		{ "handler", required_argument, NULL, OPT_HANDLER },
		{ "disk-backend", required_argument, NULL, OPT_BACKEND },
		{ "vsock", required_argument, NULL, OPT_VSOCK },
		{ "cid", required_argument, NULL, OPT_CID },
		{ "restore", required_argument, NULL, OPT_RESTORE },
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "snapshot-at-ready", required_argument, NULL, OPT_SNAP_READY },
		{ "prefetch", no_argument, NULL, OPT_PREFETCH },
		{ "paused", no_argument, NULL, OPT_PAUSED },
		{ "shell", no_argument, NULL, OPT_SHELL },
		{ "control-fd", required_argument, NULL, OPT_CONTROL_FD },
		{ "irqchip", no_argument, NULL, OPT_IRQCHIP },
		{ "seccomp", optional_argument, NULL, OPT_SECCOMP },
		{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
		{ "kvm-fd", required_argument, NULL, OPT_KVM_FD },
		{ "vsock-carry-fd", required_argument, NULL, OPT_CARRY_FD },
		{ "threads-at-restore", no_argument, NULL,
		  OPT_THREADS_AT_RESTORE },
		{ NULL, 0, NULL, 0 },
	};
	struct ember_config cfg;
	struct ember_exit ex;
	struct ember_vm *vm;
	const char *handler = NULL, *restore = NULL, *control = NULL;
	const char *snap_ready = NULL;
	const char *seccomp = NULL; /* --seccomp's mode; NULL: off */
	unsigned seccomp_flags = 0;
	bool prefetch = false, paused = false, shell = false, irqchip = false;
	bool threads_at_restore = false;
	bool mem_set = false;
	int control_fd = -1, carry_fd = -1;
	char *micro_kernel = NULL; /* ember-micro beside us, with --micro */
	struct ember_control *ctl = NULL;
	bool micro = false;
	char err[1024];
	int c, ret, verbosity = 0, status;

	ember_config_init(&cfg);
	while ((c = getopt_long(argc, argv, "k:i:c:m:n:s:d:t:vqh", opts,
				NULL)) != -1) {
		switch (c) {
		case 'k':
			cfg.kernel = optarg;
			break;
		case 'i':
			cfg.initrd = optarg;
			break;
		case 'c':
			cfg.cmdline = optarg;
			break;
		case 'm':
			cfg.mem_mib = parse_u64(optarg, "memory size (MiB)", 2,
						64 * 1024);
			mem_set = true;
			break;
		case 'n':
			cfg.nr_cpus = (unsigned)parse_u64(optarg, "vCPU count",
							  1, EMBER_MAX_VCPUS);
			break;
		case 's':
			cfg.serial_fd = open_serial(optarg);
			break;
		case 'd': {
			char *comma = strrchr(optarg, ',');

			if (cfg.nr_disks == EMBER_MAX_DISKS)
				usage_error("too many disks (at most 8): '%s'",
					    optarg);
			cfg.disks[cfg.nr_disks].read_only = false;
			if (comma && !strcmp(comma, ",ro")) {
				*comma = '\0';
				cfg.disks[cfg.nr_disks].read_only = true;
			} else if (comma && !strcmp(comma, ",rw")) {
				*comma = '\0';
			}
			if (!*optarg)
				usage_error("empty disk path");
			cfg.disks[cfg.nr_disks++].path = optarg;
			break;
		}
		case 't':
			cfg.timeout_ms = parse_seconds_ms(optarg);
			break;
		case 'v':
			verbosity++;
			break;
		case 'q':
			verbosity = -1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return ST_OK;
		case OPT_KIND:
			if (!strcmp(optarg, "auto"))
				cfg.kind = EMBER_KIND_AUTO;
			else if (!strcmp(optarg, "linux"))
				cfg.kind = EMBER_KIND_LINUX;
			else if (!strcmp(optarg, "plain"))
				cfg.kind = EMBER_KIND_PLAIN;
			else
				usage_error("unknown guest kind '%s' (auto, linux, plain)",
					    optarg);
			break;
		case OPT_CPL:
			if (strcmp(optarg, "0") && strcmp(optarg, "3"))
				usage_error("invalid CPL '%s' (0 or 3)", optarg);
			cfg.cpl = (unsigned)(optarg[0] - '0');
			break;
		case OPT_TEMPLATE:
			if (!strcmp(optarg, "auto"))
				cfg.cpu_template = EMBER_CPU_AUTO;
			else if (!strcmp(optarg, "host"))
				cfg.cpu_template = EMBER_CPU_HOST;
			else if (!strcmp(optarg, "pvm"))
				cfg.cpu_template = EMBER_CPU_PVM;
			else
				usage_error("unknown CPU template '%s' (auto, host, pvm)",
					    optarg);
			break;
		case OPT_MICRO:
			micro = true;
			break;
		case OPT_HANDLER:
			handler = optarg;
			break;
		case OPT_BACKEND:
			if (!strcmp(optarg, "uring"))
				cfg.disk_sync = false;
			else if (!strcmp(optarg, "sync"))
				cfg.disk_sync = true;
			else
				usage_error("unknown disk backend '%s' (uring, sync)",
					    optarg);
			break;
		case OPT_VSOCK:
			cfg.vsock_path = optarg;
			break;
		case OPT_RESTORE:
			restore = optarg;
			break;
		case OPT_CONTROL:
			control = optarg;
			break;
		case OPT_PAUSED:
			paused = true;
			break;
		case OPT_SHELL:
			shell = true;
			break;
		case OPT_IRQCHIP:
			irqchip = true;
			break;
		case OPT_CONTROL_FD:
			control_fd = (int)parse_u64(optarg, "control fd", 0,
						    INT_MAX);
			break;
		case OPT_KVM_FD:
			kvm_use_fd(inherited_fd(optarg, "--kvm-fd", "KVM fd"));
			break;
		case OPT_CARRY_FD:
			carry_fd = inherited_fd(optarg, "--vsock-carry-fd",
						"carried connection fd");
			break;
		case OPT_PREFETCH:
			prefetch = true;
			break;
		case OPT_SNAP_READY:
			snap_ready = optarg;
			break;
		case OPT_SECCOMP:
			seccomp = optarg ? optarg : "kill";
			if (strcmp(seccomp, "kill") && strcmp(seccomp, "log"))
				usage_error("unknown --seccomp mode '%s' (kill, "
					    "log)", seccomp);
			break;
		case OPT_NO_SECCOMP:
			seccomp = NULL;
			break;
		case OPT_THREADS_AT_RESTORE:
			threads_at_restore = true;
			break;
		case OPT_CID:
			cfg.vsock_cid = parse_u64(optarg, "CID", 3, UINT32_MAX - 1);
			break;
		default:
			fprintf(stderr, "Try 'ember-vmm --help'.\n");
			return ST_USAGE;
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (verbosity < 0)
		ember_log_set_level(EMBER_LOG_ERROR);
	else if (verbosity == 1)
		ember_log_set_level(EMBER_LOG_INFO);
	else if (verbosity > 1)
		ember_log_set_level(EMBER_LOG_DEBUG);
	if (shell) {
		struct cli_shell_opts so = {
			.control_fd = control_fd,
			.control_path = control,
			.nr_cpus = cfg.nr_cpus,
			.irqchip = irqchip,
			.cpu_template = cfg.cpu_template,
			.mem_mib = mem_set ? (unsigned)cfg.mem_mib : 0,
			.threads_at_restore = threads_at_restore,
		};

		if ((control_fd >= 0) == (control != NULL))
			usage_error("--shell needs exactly one of --control-fd "
				    "FD and --control PATH");
		if (cfg.kernel || micro || handler || cfg.initrd || cfg.cmdline ||
		    restore || snap_ready || paused || prefetch || cfg.nr_disks ||
		    carry_fd >= 0 ||
		    cfg.vsock_path || cfg.timeout_ms ||
		    cfg.serial_fd != STDOUT_FILENO)
			usage_error("--shell takes only --control-fd or --control, "
				    "--cpus, --irqchip, --mem, --cpu-template, "
				    "--threads-at-restore, --seccomp, -v and -q "
				    "(the rest comes with the restore command)");
		/* Everything reaches a shell as fds: only --control PATH's
		 * socket file is a path (main unlinks it at exit). */
		status = cli_seccomp_setup(seccomp,
					   (control ? SECCOMP_F_UNLINK : 0) |
					   (threads_at_restore ?
					    SECCOMP_F_THREADS_AT_RESTORE : 0));
		if (status != ST_OK)
			return status;
		return cli_shell_main(&so);
	}
	if (control_fd >= 0 || irqchip || threads_at_restore)
		usage_error("--control-fd, --irqchip and --threads-at-restore need "
			    "--shell");
	if (micro) {
		if (!handler)
			usage_error("--micro needs --handler FILE");
		if (cfg.initrd)
			usage_error("--micro takes the handler, not --initrd");
		if (!cfg.kernel) {
			micro_kernel = sibling_path("ember-micro");
			cfg.kernel = micro_kernel;
		}
		cfg.initrd = handler;
		cfg.kind = EMBER_KIND_PLAIN;
	} else if (handler) {
		usage_error("--handler needs --micro");
	}
	if (restore && (cfg.kernel || micro || cfg.initrd || cfg.cmdline))
		usage_error("--restore takes no --kernel, --micro, --initrd or --cmdline");
	if (!cfg.kernel && !restore)
		usage_error("no kernel given: use --kernel FILE");
	if (carry_fd >= 0 && !restore)
		usage_error("--vsock-carry-fd needs --restore");
	if (paused && !control)
		usage_error("--paused needs --control PATH to resume the VM");

	/* The lists this configuration needs beyond the base ones. */
	if (snap_ready)
		seccomp_flags |= SECCOMP_F_SNAPSHOT_AT_READY;
	if (control)
		seccomp_flags |= SECCOMP_F_PATHS | SECCOMP_F_UNLINK;
	/* vsock by path: connections to PATH_P, PATH removed at exit. */
	if (cfg.vsock_path || restore)
		seccomp_flags |= SECCOMP_F_VSOCK_CONNECT | SECCOMP_F_UNLINK;
	status = cli_seccomp_setup(seccomp, seccomp_flags);
	if (status != ST_OK) {
		free(micro_kernel);
		return status;
	}

	if (restore) {
		struct ember_restore r;

		ember_restore_init(&r);
		r.dir = restore;
		r.vsock_path = cfg.vsock_path;
		r.nr_disks = cfg.nr_disks;
		r.serial_fd = cfg.serial_fd;
		r.timeout_ms = cfg.timeout_ms;
		r.cpu_template = cfg.cpu_template;
		r.prefetch = prefetch;
		r.vsock_carry_fd = carry_fd;
		for (unsigned i = 0; i < cfg.nr_disks; i++)
			r.disks[i] = cfg.disks[i].path;
		vm = ember_vm_restore(&r, &ret, err, sizeof(err));
	} else {
		vm = ember_vm_create(&cfg, &ret, err, sizeof(err));
	}
	free(micro_kernel); /* ember_vm_create() read it and keeps no pointer */
	micro_kernel = NULL;
	if (!vm) {
		if (restore) {
			fprintf(stderr, "ember-vmm: cannot restore '%s': %s\n",
				restore, err);
			return cli_status_for_restore_error(ret);
		}
		fprintf(stderr, "ember-vmm: %s\n", err);
		return cli_status_for_create_error(ret);
	}
	if (snap_ready &&
	    (ret = ember_vm_snapshot_at_ready(vm, snap_ready, err,
					      sizeof(err))) < 0) {
		fprintf(stderr, "ember-vmm: --snapshot-at-ready: %s\n", err);
		ember_vm_destroy(vm);
		return ST_NOINPUT;
	}
	if (paused)
		ember_vm_pause(vm); /* not running yet: only marks it */
	cli_stop_on_signals(vm);
	if (control) {
		ctl = ember_control_start(vm, control, &ret);
		if (!ctl) {
			fprintf(stderr, "ember-vmm: cannot serve control socket "
				"'%s': %s\n", control, strerror(-ret));
			ember_vm_destroy(vm);
			return ST_NOINPUT;
		}
	}
	ret = ember_vm_start(vm);
	ember_thread_serving(EMBER_THREAD_MAIN); /* setup ends here */
	if (ret != -EBUSY)
		ember_vm_wait(vm, &ex);
	ember_control_stop(ctl);
	cli_stop_on_signals(NULL);
	if (ret < 0) {
		fprintf(stderr, "ember-vmm: cannot run the VM: %s\n",
			strerror(-ret));
		ember_vm_destroy(vm);
		return ST_SOFTWARE;
	}
	status = cli_status_for_exit(&ex);
	if (status != ST_OK || verbosity > 0)
		fprintf(stderr, "ember-vmm: %s: %s\n",
			ember_exit_reason_name(ex.reason), ex.detail);
	if (ex.registers[0])
		fprintf(stderr, "ember-vmm: registers: %s\n", ex.registers);
	ember_vm_destroy(vm);
	return status;
}
