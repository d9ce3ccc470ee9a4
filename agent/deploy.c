/*
 * deploy.c - the deploy pipeline (see deploy.h): receive, extract,
 * manifest, image, boot, snapshot.
 *
 * The boot runs `ember-vmm --micro ... --vsock ... --control ...` as a
 * child in out_dir, rather than a VM inside the caller, because one VM per
 * process is the rule (a guest that escapes lands in a process that holds
 * nothing else) and because a handler that fails its initialisation then
 * fails a child, not emberd. The child's stderr (at -v) says when the guest
 * reached READY ("guest is ready") and how it ended; its console file holds
 * the handler's own initialisation output, which a failed deploy returns.
 *
 * The deploy connects to the guest over vsock, waits for READY, and
 * snapshots the paused VM through its control socket with that connection
 * open and idle, so the snapshot carries it and a cold start skips the
 * handshake and READY (docs/snapshots.md, sched.c).
 *
 * Guest "linux" (deploy_linux.c) takes the same steps with other tools: the
 * image is an ext4 root disk from the image tool, the VMM boots the Linux
 * kernel (fd 3) with it read-only, and the connection is closed before the
 * snapshot (its READY asks for SYNC, which every clone must get).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/archive.h"
#include "agent/deploy.h"
#include "agent/deploy_linux.h"
#include "agent/util.h"
#include "ember.h"
#include "ember/abi.h"
#include "log.h"
#include "tools/beneath.h"
#include "tools/mkimage.h"

/* ember-vmm's own log line for the READY hypercall (vmm/vcpu.c), at -v. */
#define READY_LINE "vcpu: info: guest is ready"
#define VMM_PREFIX "ember-vmm: "
#define STDERR_KEEP (8u << 10)
/* After --timeout the VMM stops by itself; this is for a VMM that hangs. */
#define KILL_GRACE_MS 30000u
/* Where the Python runtime's library lives in a python function's image
 * (sdk/python/runtime.c's default --home). */
#define PY_IMAGE_DIR "/.ember/python"

struct build {
	const struct deploy_request *rq;
	struct deploy_result *res;
	struct fn_archive_limits lim;
	int parent_fd, out_fd, tree_fd;
	bool created;                   /* out_dir is ours to remove */
	char out_name[NAME_MAX + 1];
	int boot_fd;                    /* the handler ELF the VM boots; for
					   guest "linux" the kernel */
	bool linux_guest;               /* manifest guest "linux" */
	char *guest_init, *image_tool;  /* guest "linux": absolute */
	int py_home_fd;                 /* python: the runtime's library */
	char cmdline[EMBER_CMDLINE_MAX];
	char *vmm, *micro;              /* absolute: the child runs in out_dir */
	char errs[STDERR_KEEP];         /* the VMM's stderr, noise removed */
	size_t errs_len;
	char last_vmm_line[256];
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int fail(struct build *b, const char *step, int ret, const char *fmt,
		...) __attribute__((format(printf, 4, 5)));
static int fail(struct build *b, const char *step, int ret, const char *fmt,
		...)
{
	va_list ap;

	snprintf(b->res->step, sizeof(b->res->step), "%s", step);
	va_start(ap, fmt);
	vsnprintf(b->res->message, sizeof(b->res->message), fmt, ap);
	va_end(ap);
	return ret;
}

static void progress(struct build *b, const char *step, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void progress(struct build *b, const char *step, const char *fmt, ...)
{
	char detail[256];
	va_list ap;

	if (!b->rq->progress)
		return;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	b->rq->progress(b->rq->ctx, step, detail);
}

int deploy_check_static_elf(int fd, char *why, size_t whylen)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[64];
	unsigned char head[128];
	ssize_t n = pread(fd, head, sizeof(head), 0);
	bool dynamic = false;
	Elf64_Phdr dyn = { 0 };

	if (n >= 2 && head[0] == '#' && head[1] == '!') {
		size_t l = 2;

		while (l < (size_t)n && l < 60 && head[l] != '\n' &&
		       head[l] >= 0x20 && head[l] < 0x7f)
			l++;
		return errbuf_fail(why, whylen, -ENOEXEC,
				   "is a script (%.*s): runtime \"static\" runs a "
				   "statically linked x86-64 executable (for Lua, "
				   "use runtime \"lua\")", (int)l, head);
	}
	if (n < 4 || memcmp(head, ELFMAG, SELFMAG))
		return errbuf_fail(why, whylen, -ENOEXEC,
				   "is not an ELF executable");
	if (n < (ssize_t)sizeof(eh))
		return errbuf_fail(why, whylen, -ENOEXEC,
				   "is a truncated ELF file");
	memcpy(&eh, head, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64)
		return errbuf_fail(why, whylen, -ENOEXEC,
				   "is a 32-bit ELF file: Ember runs x86-64 "
				   "executables");
	if (eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64)
		return errbuf_fail(why, whylen, -ENOEXEC,
				   "is an ELF file for another architecture "
				   "(e_machine %u), not x86-64", eh.e_machine);
	if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)
		return errbuf_fail(why, whylen, -ENOEXEC,
				   "is not an executable (ELF type %u: an object "
				   "or core file)", eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || !eh.e_phnum ||
	    eh.e_phnum > sizeof(ph) / sizeof(ph[0]) ||
	    pread(fd, ph, eh.e_phnum * sizeof(Elf64_Phdr), (off_t)eh.e_phoff) !=
		    (ssize_t)(eh.e_phnum * sizeof(Elf64_Phdr)))
		return errbuf_fail(why, whylen, -ENOEXEC,
				   "has a malformed or truncated program header "
				   "table");
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_INTERP) {
			char interp[128] = "";
			size_t l = ph[i].p_filesz < sizeof(interp) - 1 ?
					   ph[i].p_filesz : sizeof(interp) - 1;
			ssize_t r = pread(fd, interp, l, (off_t)ph[i].p_offset);

			interp[r > 0 ? (size_t)r : 0] = '\0';
			for (char *p = interp; *p; p++)
				if (*p < 0x20 || *p >= 0x7f)
					*p = '?';
			return errbuf_fail(why, whylen, -ENOEXEC,
					   "is dynamically linked (interpreter %s): "
					   "link it with -static", interp);
		}
		if (ph[i].p_type == PT_DYNAMIC) {
			dynamic = true;
			dyn = ph[i];
		}
	}
	if (eh.e_type == ET_DYN && !eh.e_entry)
		return errbuf_fail(why, whylen, -ENOEXEC,
				   "is a shared library, not an executable");
	/* static-pie has a dynamic section (its own relocations) but needs
	 * no library; a DT_NEEDED entry means it does. */
	if (dynamic) {
		Elf64_Dyn d[256];
		uint64_t left = dyn.p_filesz < (64u << 10) ? dyn.p_filesz : 64u << 10;
		off_t off = (off_t)dyn.p_offset;

		while (left >= sizeof(Elf64_Dyn)) {
			size_t want = left < sizeof(d) ? (size_t)left : sizeof(d);
			ssize_t r = pread(fd, d, want, off);

			if (r < (ssize_t)sizeof(Elf64_Dyn))
				break;
			for (size_t i = 0; i < (size_t)r / sizeof(Elf64_Dyn); i++) {
				if (d[i].d_tag == DT_NULL)
					return 0;
				if (d[i].d_tag == DT_NEEDED)
					return errbuf_fail(why, whylen, -ENOEXEC,
							   "is dynamically linked (it "
							   "needs shared libraries): "
							   "link it with -static");
			}
			left -= (uint64_t)r;
			off += r;
		}
	}
	return 0;
}

/* receive: out_dir created (it must not exist), the archive's size known
 * when it is a file. */
static int do_receive(struct build *b)
{
	const struct deploy_request *rq = b->rq;
	char *copy, *slash;
	struct stat sb;
	int ret = 0;

	if (!rq->out_dir || !rq->out_dir[0] || !rq->tools || !rq->tools->vmm ||
	    !rq->tools->micro || !rq->tools->lua_handler)
		return fail(b, DEPLOY_STEP_RECEIVE, -EINVAL,
			    "deploy request without out_dir or tools");
	if (fstat(rq->archive_fd, &sb))
		return fail(b, DEPLOY_STEP_RECEIVE, -errno, "the archive: %s",
			    strerror(errno));
	if (S_ISREG(sb.st_mode) &&
	    (uint64_t)sb.st_size > b->lim.max_archive_bytes)
		return fail(b, DEPLOY_STEP_RECEIVE, -EFBIG,
			    "the archive is %lld bytes, over the limit of %llu",
			    (long long)sb.st_size,
			    (unsigned long long)b->lim.max_archive_bytes);

	copy = strdup(rq->out_dir);
	if (!copy)
		return fail(b, DEPLOY_STEP_RECEIVE, -ENOMEM, "out of memory");
	while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
		copy[strlen(copy) - 1] = '\0';
	slash = strrchr(copy, '/');
	if (slash && slash[1] == '\0') {
		ret = fail(b, DEPLOY_STEP_RECEIVE, -EINVAL, "out_dir is /");
		goto out;
	}
	snprintf(b->out_name, sizeof(b->out_name), "%s", slash ? slash + 1 : copy);
	if (slash == copy)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	b->parent_fd = open(slash ? copy : ".",
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->parent_fd < 0) {
		ret = fail(b, DEPLOY_STEP_RECEIVE, -errno, "%s: %s", copy,
			   strerror(errno));
		goto out;
	}
	if (mkdirat(b->parent_fd, b->out_name, 0750)) {
		ret = fail(b, DEPLOY_STEP_RECEIVE, -errno, "%s: %s",
			   rq->out_dir, strerror(errno));
		goto out;
	}
	b->created = true;
	b->out_fd = openat(b->parent_fd, b->out_name,
			   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (b->out_fd < 0) {
		ret = fail(b, DEPLOY_STEP_RECEIVE, -errno, "%s: %s",
			   rq->out_dir, strerror(errno));
		goto out;
	}
	if (S_ISREG(sb.st_mode))
		progress(b, DEPLOY_STEP_RECEIVE, "%lld bytes",
			 (long long)sb.st_size);
	else
		progress(b, DEPLOY_STEP_RECEIVE, "a stream");
out:
	free(copy);
	return ret;
}

static int do_extract(struct build *b)
{
	struct fn_archive_stats st;
	char why[400];
	int ret;

	if (mkdirat(b->out_fd, "tree", 0755))
		return fail(b, DEPLOY_STEP_EXTRACT, -errno, "tree: %s",
			    strerror(errno));
	b->tree_fd = openat(b->out_fd, "tree",
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (b->tree_fd < 0)
		return fail(b, DEPLOY_STEP_EXTRACT, -errno, "tree: %s",
			    strerror(errno));
	ret = fn_archive_extract(b->rq->archive_fd, b->tree_fd, &b->lim, &st,
				 why, sizeof(why));
	if (ret)
		return fail(b, DEPLOY_STEP_EXTRACT, ret, "%s", why);
	progress(b, DEPLOY_STEP_EXTRACT, "%llu files, %llu bytes%s",
		 (unsigned long long)st.files,
		 (unsigned long long)st.tree_bytes, st.gzip ? ", gzip" : "");
	return 0;
}

/* Opens a file of the tree named by the manifest: a regular file, reached
 * without following any symlink. */
static int open_in_tree(struct build *b, const char *what, const char *path)
{
	struct stat sb;
	int fd = beneath_open(b->tree_fd, path, O_RDONLY, 0);

	if (fd == -ENOENT)
		return fail(b, DEPLOY_STEP_MANIFEST, -EINVAL,
			    "%s \"%s\" is not in the archive", what, path);
	if (fd == -ELOOP || fd == -ENOTDIR)
		return fail(b, DEPLOY_STEP_MANIFEST, -EINVAL,
			    "%s \"%s\" is a symlink or under one: name the "
			    "file itself", what, path);
	if (fd < 0)
		return fail(b, DEPLOY_STEP_MANIFEST, fd, "%s \"%s\": %s", what,
			    path, strerror(-fd));
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
		close(fd);
		return fail(b, DEPLOY_STEP_MANIFEST, -EINVAL,
			    "%s \"%s\" is not a regular file", what, path);
	}
	return fd;
}

static int read_manifest(struct build *b, struct fn_manifest *m)
{
	char *buf, why[300];
	struct stat sb;
	ssize_t n;
	int fd, ret;

	fd = beneath_open(b->tree_fd, MANIFEST_FILE, O_RDONLY, 0);
	if (fd == -ENOENT)
		return fail(b, DEPLOY_STEP_MANIFEST, -EINVAL,
			    "the archive has no " MANIFEST_FILE " at its root");
	if (fd < 0 || fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
		if (fd >= 0)
			close(fd);
		return fail(b, DEPLOY_STEP_MANIFEST, -EINVAL,
			    MANIFEST_FILE " is not a regular file");
	}
	if (sb.st_size > MANIFEST_MAX_BYTES) {
		close(fd);
		return fail(b, DEPLOY_STEP_MANIFEST, -EINVAL,
			    MANIFEST_FILE " is %lld bytes (at most %u)",
			    (long long)sb.st_size, MANIFEST_MAX_BYTES);
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (!buf) {
		close(fd);
		return fail(b, DEPLOY_STEP_MANIFEST, -ENOMEM, "out of memory");
	}
	n = pread(fd, buf, (size_t)sb.st_size, 0);
	close(fd);
	if (n != sb.st_size) {
		free(buf);
		return fail(b, DEPLOY_STEP_MANIFEST, -EIO,
			    "reading " MANIFEST_FILE " failed");
	}
	ret = manifest_parse(buf, (size_t)n, m, why, sizeof(why));
	free(buf);
	if (ret)
		return fail(b, DEPLOY_STEP_MANIFEST, ret, MANIFEST_FILE ": %s",
			    why);
	return 0;
}

/* The micro guest's command line: handler= (its argv[0]), the environment
 * as KEY=VALUE words (manifest.c made them safe), and for Lua the script,
 * for Python the module, as the runtime's argv[1]. */
static int make_cmdline(struct build *b, const struct fn_manifest *m)
{
	size_t n = 0, cap = sizeof(b->cmdline);
	int w;

	if (!strcmp(m->runtime, "static"))
		w = snprintf(b->cmdline, cap, "handler=/%s", m->handler);
	else if (!strcmp(m->runtime, "python"))
		w = snprintf(b->cmdline, cap, "handler=" PY_IMAGE_DIR "/python");
	else
		w = snprintf(b->cmdline, cap, "handler=/.ember/lua");
	n = (size_t)w;
	for (size_t i = 0; i < m->nr_env && n < cap; i++)
		n += (size_t)snprintf(b->cmdline + n, cap - n, " %s", m->env[i]);
	if (!strcmp(m->runtime, "lua") && n < cap)
		n += (size_t)snprintf(b->cmdline + n, cap - n, " -- /%s",
				      m->handler);
	/* The Python runtime takes the module's path relative to its root,
	 * "/" (docs/python.md). */
	if (!strcmp(m->runtime, "python") && n < cap)
		n += (size_t)snprintf(b->cmdline + n, cap - n, " -- %s",
				      m->handler);
	if (n >= cap)
		return fail(b, DEPLOY_STEP_MANIFEST, -EINVAL,
			    "the environment and handler path do not fit the "
			    "guest's %zu-byte command line", cap);
	return 0;
}

/* Runtime "python": the runtime's ELF boots, its library is grafted into
 * the image at PY_IMAGE_DIR, which the archive must leave alone (the
 * whole of /.ember is the platform's). */
static int python_runtime(struct build *b)
{
	const struct deploy_tools *t = b->rq->tools;
	struct stat sb;

	if (!fstatat(b->tree_fd, ".ember", &sb, AT_SYMLINK_NOFOLLOW))
		return fail(b, DEPLOY_STEP_MANIFEST, -EINVAL,
			    "the archive has .ember at its root: that name is "
			    "reserved for the runtime");
	if (!t->python_handler || !t->python_home)
		return fail(b, DEPLOY_STEP_MANIFEST, -ENOENT,
			    "the Python runtime is not installed on this host");
	b->boot_fd = open(t->python_handler, O_RDONLY | O_CLOEXEC);
	if (b->boot_fd < 0)
		return fail(b, DEPLOY_STEP_MANIFEST, -errno,
			    "the Python runtime %s: %s", t->python_handler,
			    strerror(errno));
	b->py_home_fd = open(t->python_home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->py_home_fd < 0)
		return fail(b, DEPLOY_STEP_MANIFEST, -errno,
			    "the Python runtime's library %s: %s",
			    t->python_home, strerror(errno));
	return 0;
}

/* A tool guest "linux" needs: configured, present, and made absolute
 * (the image tool runs inside out_dir). */
static int linux_tool(struct build *b, const char *what, const char *path,
		      const char *hint, char **abs)
{
	if (!path)
		return fail(b, DEPLOY_STEP_MANIFEST, -ENOENT,
			    "guest \"linux\" is not set up on this host: no %s "
			    "is configured (%s)", what, hint);
	*abs = realpath(path, NULL);
	if (!*abs || access(*abs, R_OK))
		return fail(b, DEPLOY_STEP_MANIFEST, -ENOENT,
			    "guest \"linux\" is not set up on this host: the "
			    "%s %s: %s (%s)", what, path, strerror(errno), hint);
	return 0;
}

/* Guest "linux": any x86-64 Linux executable of the archive (static or
 * with its libraries in the archive) runs under guest-init. */
static int linux_manifest(struct build *b, const struct fn_manifest *m)
{
	const struct deploy_tools *t = b->rq->tools;
	char *kernel = NULL;
	int fd, ret;

	/* The one thing this host can say for sure: on kvm-pvm, a Linux
	 * guest's user space never runs (shared PLATFORM.md). */
	if (ember_host_is_pvm())
		return fail(b, DEPLOY_STEP_MANIFEST, -EOPNOTSUPP,
			    "guest \"linux\" cannot run on this host: its "
			    "KVM is nested kvm-pvm, where a Linux guest's "
			    "user space cannot run (guest kernel code is "
			    "emulated); use guest \"micro\"");
	if (strcmp(m->runtime, "static"))
		return fail(b, DEPLOY_STEP_MANIFEST, -EOPNOTSUPP,
			    "runtime \"%s\" runs in the micro guest only: "
			    "guest \"linux\" takes runtime \"static\" (any "
			    "x86-64 Linux executable, its libraries in the "
			    "archive)", m->runtime);
	b->linux_guest = true;
	ret = linux_tool(b, "Linux guest kernel", t->linux_kernel,
			 "build it with make kernel, or start emberd with "
			 "--linux-kernel FILE", &kernel);
	if (!ret)
		ret = linux_tool(b, "guest-init binary", t->guest_init,
				 "make builds it; emberd --guest-init FILE",
				 &b->guest_init);
	if (!ret)
		ret = linux_tool(b, "Linux image tool", t->linux_image,
				 "make builds it from scripts/linux-image.sh; "
				 "emberd --linux-image-tool FILE",
				 &b->image_tool);
	if (!ret) {
		b->boot_fd = open(kernel, O_RDONLY | O_CLOEXEC);
		if (b->boot_fd < 0)
			ret = fail(b, DEPLOY_STEP_MANIFEST, -errno,
				   "the Linux guest kernel %s: %s", kernel,
				   strerror(errno));
	}
	free(kernel);
	if (ret)
		return ret;
	fd = open_in_tree(b, "handler", m->handler);
	if (fd < 0)
		return fd;
	close(fd);
	progress(b, DEPLOY_STEP_MANIFEST,
		 "guest linux, handler %s, %u MiB, timeout %u ms, %zu env",
		 m->handler, m->memory_mib, m->timeout_ms, m->nr_env);
	return 0;
}

static int do_manifest(struct build *b)
{
	struct fn_manifest *m = &b->res->manifest;
	char why[300];
	int fd, ret;

	ret = read_manifest(b, m);
	if (ret)
		return ret;
	if (!strcmp(m->guest, "linux"))
		return linux_manifest(b, m);
	fd = open_in_tree(b, "handler", m->handler);
	if (fd < 0)
		return fd;
	if (!strcmp(m->runtime, "python")) {
		close(fd);
		ret = python_runtime(b);
		if (ret)
			return ret;
	} else if (!strcmp(m->runtime, "static")) {
		ret = deploy_check_static_elf(fd, why, sizeof(why));
		if (ret) {
			close(fd);
			return fail(b, DEPLOY_STEP_MANIFEST, ret,
				    "handler \"%s\" %s", m->handler, why);
		}
		b->boot_fd = fd;
	} else {
		char head[4];

		if (pread(fd, head, sizeof(head), 0) == 4 &&
		    !memcmp(head, ELFMAG, SELFMAG)) {
			close(fd);
			return fail(b, DEPLOY_STEP_MANIFEST, -EINVAL,
				    "handler \"%s\" is an ELF executable: runtime "
				    "\"lua\" runs a Lua script (use runtime "
				    "\"static\")", m->handler);
		}
		close(fd);
		b->boot_fd = open(b->rq->tools->lua_handler,
				  O_RDONLY | O_CLOEXEC);
		if (b->boot_fd < 0)
			return fail(b, DEPLOY_STEP_MANIFEST, -errno,
				    "the Lua runtime %s: %s",
				    b->rq->tools->lua_handler, strerror(errno));
	}
	ret = make_cmdline(b, m);
	if (ret)
		return ret;
	progress(b, DEPLOY_STEP_MANIFEST,
		 "runtime %s, handler %s, %u MiB, timeout %u ms, %zu env", m->runtime,
		 m->handler, m->memory_mib, m->timeout_ms, m->nr_env);
	return 0;
}

/* Guest "linux": the ext4 root disk, written by the image tool. */
static int linux_image(struct build *b)
{
	const struct fn_manifest *m = &b->res->manifest;
	char *argv[DEPLOY_LINUX_ARGV_MAX], hpath[MANIFEST_PATH_MAX + 2];
	char why[400], *tmp = realpath(b->rq->out_dir, NULL);
	uint64_t t0 = now_us();
	struct stat sb;
	int ret;

	if (!tmp)
		return fail(b, DEPLOY_STEP_IMAGE, -errno, "%s: %s",
			    b->rq->out_dir, strerror(errno));
	if (deploy_linux_image_argv(b->image_tool, b->guest_init, m, "tree",
				    "image", hpath, sizeof(hpath), argv) < 0) {
		free(tmp);
		return fail(b, DEPLOY_STEP_IMAGE, -E2BIG,
			    "the image tool's arguments do not fit");
	}
	ret = deploy_linux_run_image(b->out_fd, tmp, argv,
				     DEPLOY_IMAGE_TIMEOUT_MS, why, sizeof(why));
	free(tmp);
	if (ret)
		return fail(b, DEPLOY_STEP_IMAGE, ret, "%s", why);
	if (fstatat(b->out_fd, "image", &sb, AT_SYMLINK_NOFOLLOW) ||
	    !S_ISREG(sb.st_mode))
		return fail(b, DEPLOY_STEP_IMAGE, -EIO,
			    "the image tool wrote no image");
	progress(b, DEPLOY_STEP_IMAGE, "ext4, %lld bytes, %.1f ms",
		 (long long)sb.st_size, (double)(now_us() - t0) / 1000.0);
	return 0;
}

static int do_image(struct build *b)
{
	struct mkimage_graft py = { PY_IMAGE_DIR, b->py_home_fd };
	struct mkimage_opts o = { .grafts = &py,
				  .nr_grafts = b->py_home_fd >= 0 };
	struct mkimage_stats st;
	char why[400];
	int fd, ret;

	if (b->linux_guest)
		return linux_image(b);
	fd = openat(b->out_fd, "image",
		    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail(b, DEPLOY_STEP_IMAGE, -errno, "image: %s",
			    strerror(errno));
	ret = mkimage_build(b->tree_fd, fd, &o, &st, why, sizeof(why));
	close(fd);
	if (ret)
		return fail(b, DEPLOY_STEP_IMAGE, ret, "%s", why);
	progress(b, DEPLOY_STEP_IMAGE, "%llu entries, %llu bytes",
		 (unsigned long long)st.nr_inodes,
		 (unsigned long long)st.image_size);
	return 0;
}

/* The VMM's stderr, line by line: READY noted, noise dropped, the rest
 * kept (the tail, bounded) for the failure's output. */
static void vmm_line(struct build *b, const char *line, bool *ready,
		     uint64_t t0)
{
	size_t l = strlen(line);

	if (strstr(line, READY_LINE)) {
		if (!*ready)
			progress(b, DEPLOY_STEP_BOOT, "READY after %.1f ms",
				 (double)(now_us() - t0) / 1000.0);
		*ready = true;
		return;
	}
	if (strstr(line, ": info: ") || strstr(line, "using the 'pvm' CPU"))
		return;
	if (!strncmp(line, VMM_PREFIX, strlen(VMM_PREFIX)))
		snprintf(b->last_vmm_line, sizeof(b->last_vmm_line), "%s",
			 line + strlen(VMM_PREFIX));
	if (l > sizeof(b->errs) - 1)
		l = sizeof(b->errs) - 1;
	if (b->errs_len + l + 1 > sizeof(b->errs)) {
		size_t drop = b->errs_len + l + 1 - sizeof(b->errs);

		memmove(b->errs, b->errs + drop, b->errs_len - drop);
		b->errs_len -= drop;
	}
	memcpy(b->errs + b->errs_len, line, l);
	b->errs_len += l;
	b->errs[b->errs_len++] = '\n';
}

static pid_t spawn_vmm(struct build *b, int err_w, char *const *argv)
{
	pid_t pid = -1;
	int ret = util_spawn(&pid, argv, NULL, b->out_fd, err_w, b->boot_fd,
			     false);

	if (ret) {
		errno = ret;
		return -1;
	}
	return pid;
}

/* Waits for the child, collecting its stderr, until it ends or the deadline
 * passes (then it is killed). Returns its wait status, -1 on timeout, -2
 * if the caller's process reaped it behind our back. */
static int watch_vmm(struct build *b, pid_t pid, int err_r, uint64_t t0,
		     uint64_t deadline, bool *ready)
{
	char buf[4096], line[1024];
	size_t ll = 0;
	bool eof = false;
	int status;

	while (!eof) {
		uint64_t t = now_us();
		struct pollfd p = { .fd = err_r, .events = POLLIN };
		ssize_t n;

		if (t >= deadline)
			break;
		if (poll(&p, 1, (int)((deadline - t) / 1000 + 1)) <= 0)
			continue;
		n = read(err_r, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			eof = true;
			break;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n' && ll < sizeof(line) - 1) {
				line[ll++] = buf[i];
				continue;
			}
			if (buf[i] != '\n')
				continue; /* an over-long line is cut */
			line[ll] = '\0';
			vmm_line(b, line, ready, t0);
			ll = 0;
		}
	}
	if (ll) {
		line[ll] = '\0';
		vmm_line(b, line, ready, t0);
	}
	/* Its stderr is closed: it exits in a moment. Past the deadline it
	 * is killed. */
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			return status;
		if (w < 0 && errno != EINTR)
			return -2; /* reaped by someone else */
		if (!eof || now_us() >= deadline)
			break;
		usleep(1000);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return -1;
}

/* The failure's output: the console (the handler's and the guest's own
 * lines), then what the VMM said; the last DEPLOY_OUTPUT_MAX bytes. */
static void collect_output(struct build *b)
{
	size_t cap = DEPLOY_OUTPUT_MAX, n = 0;
	char *out = malloc(cap + 1);
	struct stat sb;
	int fd;

	if (!out)
		return;
	fd = openat(b->out_fd, "init.log", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && !fstat(fd, &sb)) {
		size_t want = cap - (b->errs_len < cap / 2 ? b->errs_len : cap / 2);
		off_t off = sb.st_size > (off_t)want ? sb.st_size - (off_t)want : 0;
		ssize_t r = pread(fd, out, want, off);

		n = r > 0 ? (size_t)r : 0;
		if (n && out[n - 1] != '\n' && n < cap)
			out[n++] = '\n';
	}
	if (fd >= 0)
		close(fd);
	if (b->errs_len) {
		size_t take = b->errs_len < cap - n ? b->errs_len : cap - n;

		memcpy(out + n, b->errs + b->errs_len - take, take);
		n += take;
	}
	out[n] = '\0';
	if (!n) {
		free(out);
		return;
	}
	b->res->output = out;
}

/* Why the VMM ended, from its exit status and its last line. */
static int boot_failure(struct build *b, int status, bool ready,
			uint32_t timeout_ms)
{
	const char *step = ready ? DEPLOY_STEP_SNAPSHOT : DEPLOY_STEP_BOOT;
	const char *last = b->last_vmm_line[0] ? b->last_vmm_line : "no message";
	const char *st = strstr(last, "guest exited with status ");
	int code;

	collect_output(b);
	if (status == -2)
		return fail(b, step, -ECHILD, "the VMM's exit status was taken "
			    "by another waitpid() in this process");
	if (status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 124))
		return fail(b, step, -ETIMEDOUT, ready ?
			    "the snapshot was not written within %u ms" :
			    "the handler was not ready within %u ms (it never "
			    "read its first request)", timeout_ms);
	if (WIFSIGNALED(status))
		return fail(b, step, -EIO, "ember-vmm was killed by signal %d",
			    WTERMSIG(status));
	code = WEXITSTATUS(status);
	if (st) {
		int gs = atoi(st + strlen("guest exited with status "));

		if (gs == 257)
			return fail(b, step, -ENOEXEC,
				    "the micro guest could not load the handler");
		if (gs == 256)
			return fail(b, step, -EIO, "the micro guest failed");
		if (gs > 128 && gs < 256)
			return fail(b, step, -ECANCELED,
				    "the handler crashed during its "
				    "initialisation (status %d: signal %d)", gs,
				    gs - 128);
		return fail(b, step, -ECANCELED,
			    "the handler exited with status %d during its "
			    "initialisation, before it was ready", gs);
	}
	if (code == 125)
		return fail(b, step, -ECANCELED, "the guest crashed: %s", last);
	if (code == 69)
		return fail(b, step, -EIO, "ember-vmm cannot use /dev/kvm: %s",
			    last);
	if (code == 0)
		return fail(b, step, -EIO, "the VM ended without a snapshot: %s",
			    last);
	return fail(b, step, -EIO, "ember-vmm failed (exit %d): %s", code, last);
}

/* Guest "linux": why the boot or the snapshot failed (deploy_linux.c's
 * reason first, then what the VMM's status adds). */
static int linux_boot_failure(struct build *b, int lret, int status,
			      bool ready, uint32_t timeout_ms, const char *why)
{
	const char *last = b->last_vmm_line[0] ? b->last_vmm_line : "no message";
	const char *panic;

	collect_output(b);
	if (lret == -ETIMEDOUT)
		return fail(b, DEPLOY_STEP_BOOT, -ETIMEDOUT,
			    "the Linux guest was not ready within %u ms: %s "
			    "(its console is in the output)", timeout_ms, why);
	if (ready)
		return fail(b, DEPLOY_STEP_SNAPSHOT, -EIO, "%s", why);
	/* The kernel's own last words, when it panicked (a root disk it
	 * could not mount, an init that died). */
	if (lret == -EPIPE && b->res->output &&
	    (panic = strstr(b->res->output, "Kernel panic - not syncing: "))) {
		size_t l = strcspn(panic, "\r\n");

		return fail(b, DEPLOY_STEP_BOOT, -ECANCELED,
			    "%s: the Linux guest's kernel panicked: %.*s", why,
			    (int)(l < 200 ? l : 200), panic);
	}
	if (lret == -EPIPE && status >= 0 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0)
		return fail(b, DEPLOY_STEP_BOOT, -ECANCELED,
			    "%s: the Linux guest powered off before it was "
			    "ready (the handler failed its initialisation, or "
			    "guest-init could not start it: see the output)",
			    why);
	if (lret == -EPIPE && status >= 0 && WIFEXITED(status))
		return fail(b, DEPLOY_STEP_BOOT, WEXITSTATUS(status) == 125 ?
				    -ECANCELED : -EIO,
			    "%s: ember-vmm ended with status %d: %s", why,
			    WEXITSTATUS(status), last);
	return fail(b, DEPLOY_STEP_BOOT, -EIO, "%s (%s)", why, last);
}

/* The micro guest: the READY wait or the snapshot exchange failed while
 * the VMM still ran (it was killed then). An end of the VM on its own
 * (-EPIPE) is boot_failure()'s to explain from its status. */
static int micro_boot_failure(struct build *b, int lret, bool ready,
			      uint32_t timeout_ms, const char *why)
{
	collect_output(b);
	if (lret == -ETIMEDOUT)
		return fail(b, DEPLOY_STEP_BOOT, -ETIMEDOUT,
			    "the handler was not ready within %u ms (it never "
			    "read its first request)", timeout_ms);
	return fail(b, ready ? DEPLOY_STEP_SNAPSHOT : DEPLOY_STEP_BOOT, -EIO,
		    "%s", why);
}

static int do_boot(struct build *b)
{
	const struct fn_manifest *m = &b->res->manifest;
	uint32_t timeout_ms = b->rq->boot_timeout_ms ? b->rq->boot_timeout_ms :
						      DEPLOY_BOOT_TIMEOUT_MS;
	char mem[16], timeout[32], lwhy[300] = "";
	/* No -Wwrite-strings: the literals are never written. */
	char *argv[] = {
		b->vmm, "-v", "--micro", "--kernel", b->micro,
		"--handler", "/proc/self/fd/3", "--mem", mem,
		"--disk", "image,ro", "--vsock", DEPLOY_VSOCK,
		"--control", DEPLOY_CONTROL, "--serial", "init.log",
		"--cmdline", b->cmdline, "--timeout", timeout,
		NULL /* --seccomp when asked */, NULL,
	};
	/* Guest "linux": the kernel is fd 3, the root disk read-only (every
	 * clone shares it). For both, READY and the snapshot go through vsock
	 * and the control socket (deploy_snapshot_at_ready()); the micro
	 * guest's snapshot keeps the connection. */
	char *largv[] = {
		b->vmm, "-v", "--kernel", "/proc/self/fd/3", "--mem", mem,
		"--disk", "image,ro", "--vsock", DEPLOY_VSOCK,
		"--control", DEPLOY_CONTROL, "--serial", "init.log",
		"--cmdline", DEPLOY_LINUX_CMDLINE, "--timeout", timeout, NULL,
	};
	int pipefd[2], err_r, err_w, status, lret = 0;
	bool ready = false;
	uint64_t t0, t1, vmm_ms, ready_us = 0;
	struct stat sb;
	pid_t pid;

	if (b->linux_guest)
		timeout_ms = b->rq->linux_boot_timeout_ms ?
				     b->rq->linux_boot_timeout_ms :
				     DEPLOY_LINUX_BOOT_TIMEOUT_MS;
	b->vmm = realpath(b->rq->tools->vmm, NULL);
	b->micro = b->linux_guest ? strdup("-") :
				    realpath(b->rq->tools->micro, NULL);
	if (!b->vmm || !b->micro)
		return fail(b, DEPLOY_STEP_BOOT, -ENOENT, "%s: %s",
			    b->vmm ? b->rq->tools->micro : b->rq->tools->vmm,
			    strerror(errno));
	argv[0] = largv[0] = b->vmm;
	argv[4] = b->micro;
	if (b->rq->tools->seccomp)
		argv[sizeof(argv) / sizeof(argv[0]) - 2] = "--seccomp";
	snprintf(mem, sizeof(mem), "%u", m->memory_mib);
	/* The VMM also has to write the snapshot after READY: it stops by
	 * itself a minute after the boot's deadline. */
	vmm_ms = timeout_ms + 60000u;
	snprintf(timeout, sizeof(timeout), "%llu.%03llu",
		 (unsigned long long)(vmm_ms / 1000),
		 (unsigned long long)(vmm_ms % 1000));
	if (pipe2(pipefd, O_CLOEXEC))
		return fail(b, DEPLOY_STEP_BOOT, -errno, "pipe: %s",
			    strerror(errno));
	/* Above the child's fds 0-3, so that its dup2s never meet them. */
	err_r = fcntl(pipefd[0], F_DUPFD_CLOEXEC, 10);
	err_w = fcntl(pipefd[1], F_DUPFD_CLOEXEC, 10);
	close(pipefd[0]);
	close(pipefd[1]);
	if (b->boot_fd < 10) {
		int fd = fcntl(b->boot_fd, F_DUPFD_CLOEXEC, 10);

		close(b->boot_fd);
		b->boot_fd = fd;
	}
	if (err_r < 0 || err_w < 0 || b->boot_fd < 0) {
		if (err_r >= 0)
			close(err_r);
		if (err_w >= 0)
			close(err_w);
		return fail(b, DEPLOY_STEP_BOOT, -EMFILE, "out of descriptors");
	}
	t0 = now_us();
	pid = spawn_vmm(b, err_w, b->linux_guest ? largv : argv);
	close(err_w);
	if (pid < 0) {
		close(err_r);
		return fail(b, DEPLOY_STEP_BOOT, -errno, "cannot start %s: %s",
			    b->vmm, strerror(errno));
	}
	if (b->rq->vmm_child)
		b->rq->vmm_child(b->rq->ctx, pid, true);
	lret = deploy_snapshot_at_ready(b->out_fd, pid,
					t0 + (uint64_t)timeout_ms * 1000u,
					!b->linux_guest, &ready, &ready_us,
					lwhy, sizeof(lwhy));
	/* Not ready in time, or the exchange failed: it ends now (unreaped,
	 * the pid cannot have been reused). */
	if (lret && lret != -EPIPE)
		kill(pid, SIGKILL);
	if (ready)
		progress(b, DEPLOY_STEP_BOOT, "READY after %.1f ms",
			 (double)(ready_us - t0) / 1000.0);
	status = watch_vmm(b, pid, err_r, t0,
			   t0 + (vmm_ms + KILL_GRACE_MS) * 1000u, &ready);
	if (b->rq->vmm_child)
		b->rq->vmm_child(b->rq->ctx, pid, false);
	close(err_r);
	t1 = now_us();
	/* If the VMM left them. */
	unlinkat(b->out_fd, DEPLOY_VSOCK, 0);
	unlinkat(b->out_fd, DEPLOY_CONTROL, 0);
	if (lret && b->linux_guest)
		return linux_boot_failure(b, lret, status, ready, timeout_ms,
					  lwhy);
	if (lret && lret != -EPIPE)
		return micro_boot_failure(b, lret, ready, timeout_ms, lwhy);
	if (status != 0 || !ready ||
	    fstatat(b->out_fd, "snapshot/state", &sb, AT_SYMLINK_NOFOLLOW) ||
	    fstatat(b->out_fd, "snapshot/memory", &sb, AT_SYMLINK_NOFOLLOW))
		return boot_failure(b, status, ready, timeout_ms);
	progress(b, DEPLOY_STEP_SNAPSHOT,
		 "%lld MiB of RAM, %lld KiB written, %.1f ms from start",
		 (long long)(sb.st_size >> 20), (long long)sb.st_blocks / 2,
		 (double)(t1 - t0) / 1000.0);
	return 0;
}

int deploy_build(const struct deploy_request *rq, struct deploy_result *res)
{
	struct build *b = calloc(1, sizeof(*b));
	int ret;

	memset(res, 0, sizeof(*res));
	if (!b) {
		snprintf(res->step, sizeof(res->step), DEPLOY_STEP_RECEIVE);
		snprintf(res->message, sizeof(res->message), "out of memory");
		return -ENOMEM;
	}
	b->rq = rq;
	b->res = res;
	b->parent_fd = b->out_fd = b->tree_fd = b->boot_fd = -1;
	b->py_home_fd = -1;
	b->lim = (struct fn_archive_limits){
		.max_archive_bytes = rq->max_archive_bytes ?
				rq->max_archive_bytes : DEPLOY_MAX_ARCHIVE_BYTES,
		.max_files = rq->max_files ? rq->max_files : DEPLOY_MAX_FILES,
		.max_tree_bytes = rq->max_tree_bytes ? rq->max_tree_bytes :
						       DEPLOY_MAX_TREE_BYTES,
		.max_ratio = FN_ARCHIVE_MAX_RATIO,
	};
	ret = do_receive(b);
	if (!ret)
		ret = do_extract(b);
	if (!ret)
		ret = do_manifest(b);
	if (!ret)
		ret = do_image(b);
	if (!ret)
		ret = do_boot(b);

	if (b->boot_fd >= 0)
		close(b->boot_fd);
	if (b->py_home_fd >= 0)
		close(b->py_home_fd);
	if (b->tree_fd >= 0)
		close(b->tree_fd);
	if (b->out_fd >= 0)
		close(b->out_fd);
	if (ret) {
		manifest_free(&res->manifest);
		if (b->created)
			beneath_remove_tree(b->parent_fd, b->out_name);
	}
	if (b->parent_fd >= 0)
		close(b->parent_fd);
	free(b->vmm);
	free(b->micro);
	free(b->guest_init);
	free(b->image_tool);
	free(b);
	return ret;
}

void deploy_result_free(struct deploy_result *res)
{
	manifest_free(&res->manifest);
	free(res->output);
	res->output = NULL;
}
