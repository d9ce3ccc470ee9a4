/*
 * jail.c - spawning a confined process (jail.h).
 *
 * One clone3() makes the child in its new namespaces; the child then runs
 * the steps below, in this order, and executes the program by file
 * descriptor. Between clone and exec the child is a copy of a possibly
 * multi-threaded emberd, so it makes system calls only: no malloc, no stdio,
 * no locks another thread could have held. Everything it needs (paths,
 * argv, the fd map) is prepared by the parent before the clone.
 *
 * The parent learns how the child fared through a SOCK_SEQPACKET pair whose
 * child end is close-on-exec: end of file means the exec succeeded, one
 * message {step, errno} means that step failed and the child exited.
 *
 * Why this order:
 *  1. signals back to defaults (emberd ignores or blocks some);
 *  2. /dev/kvm and /dev/null opened while the host's /dev is still there and
 *     the child is still root (/dev/kvm is 0600 root);
 *  3. mounts private, then the empty tmpfs root (+ procfs) and pivot_root:
 *     only root may mount, so this precedes the change of uid;
 *  4. hostname (UTS namespace), fds moved into place and every other one
 *     marked close-on-exec, then rlimits (RLIMIT_NOFILE would otherwise
 *     limit the temporary descriptors of the shuffle);
 *  5. the capability bounding set dropped (needs CAP_SETPCAP, so before the
 *     uid change), then groups, gid, uid (the kernel clears the effective and
 *     permitted capabilities when all uids leave 0), then the inheritable
 *     set and no_new_privs;
 *  6. the parent-death signal last: the kernel clears it on any change of
 *     credentials, so it must follow the uid change; then a check that the
 *     parent did not die before it was set (its end of the socket pair);
 *  7. execveat(fd, "", AT_EMPTY_PATH): the program's file is not in the
 *     jail's root, only its descriptor is.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/jail.h"
#include "log.h"

#define DEFAULT_MAX_FDS 256
#define DEFAULT_MAX_PROCS 64
#define MAX_TARGET 255   /* highest fd number a jailed process may inherit */
#define NOBODY_UID 65534
#define HOSTNAME "ember"
/* The root: a tiny read-only tmpfs holding /proc and, for a dynamically
 * linked VMM, its loader and libraries (bound read-only, file by file). */
#define ROOT_OPTS "size=64k,nr_inodes=128,mode=0755"
/* Only the jail's own processes, and no /proc/sys, /proc/kcore & co. */
#define PROC_OPTS "subset=pid,hidepid=invisible"

enum jail_step {
	STEP_SIGNALS = 1,
	STEP_OPEN_KVM,
	STEP_OPEN_NULL,
	STEP_MOUNT_PRIVATE,
	STEP_MOUNT_ROOT,
	STEP_MOUNT_PROC,
	STEP_BIND,
	STEP_MKDIR,
	STEP_PIVOT,
	STEP_REMOUNT,
	STEP_HOSTNAME,
	STEP_FDS,
	STEP_RLIMITS,
	STEP_CAPS,
	STEP_IDS,
	STEP_NO_NEW_PRIVS,
	STEP_PDEATHSIG,
	STEP_PARENT_GONE,
	STEP_EXEC,
};

static const char *step_name(int step)
{
	switch (step) {
	case STEP_SIGNALS: return "resetting signals";
	case STEP_OPEN_KVM: return "opening /dev/kvm";
	case STEP_OPEN_NULL: return "opening /dev/null";
	case STEP_MOUNT_PRIVATE: return "making mounts private";
	case STEP_MOUNT_ROOT: return "mounting the empty root";
	case STEP_MOUNT_PROC: return "mounting /proc";
	case STEP_BIND: return "binding a library read-only";
	case STEP_MKDIR: return "making a directory in the root";
	case STEP_PIVOT: return "pivot_root into the empty root";
	case STEP_REMOUNT: return "remounting the root read-only";
	case STEP_HOSTNAME: return "setting the hostname";
	case STEP_FDS: return "placing the inherited fds";
	case STEP_RLIMITS: return "setting rlimits";
	case STEP_CAPS: return "dropping capabilities";
	case STEP_IDS: return "changing uid and gid";
	case STEP_NO_NEW_PRIVS: return "setting no_new_privs";
	case STEP_PDEATHSIG: return "setting the parent-death signal";
	case STEP_PARENT_GONE: return "checking the parent";
	case STEP_EXEC: return "executing the program";
	default: return "an unknown step";
	}
}

struct child_report {
	int32_t step;
	int32_t err;
};

/* Everything the child needs, computed by the parent. */
struct child_plan {
	const struct jail_config *c;
	const struct jail_spec *s;
	char proc_dir[PATH_MAX];
	/* root_dir + each bind / dir path, made by the parent (malloc'd) */
	char (*bind_dst)[PATH_MAX];
	char (*dir_dst)[PATH_MAX];
	unsigned nr_binds, nr_dirs;
	int status_fd;     /* child end of the socket pair */
	uid_t id;          /* uid and gid */
	struct rlimit nofile, nproc, fsize;
};

static __attribute__((noreturn)) void child_fail(int fd, int step)
{
	struct child_report r = { .step = step, .err = errno ? errno : EIO };

	/* Nothing to do if this fails: the parent then sees EOF without an
	 * exec, and the exit status. */
	if (send(fd, &r, sizeof(r), MSG_NOSIGNAL) < 0)
		_exit(126);
	_exit(126);
}

static void child_signals(void)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL); /* fails harmlessly for KILL, STOP
					    * and libc's reserved ones */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * Moves every descriptor to its target. Sources, targets and the two fds
 * the child still needs (status, exec) may overlap, so each is first
 * duplicated above all of them; then every fd is marked close-on-exec and
 * only the targets are made inheritable again.
 */
static int child_fds(const struct child_plan *pl, int kvm, int devnull,
		     int *status_fd, int *exec_fd)
{
	const struct jail_spec *s = pl->s;
	int tmp[JAIL_MAX_FDS], kvm_tmp = -1, null_tmp, st, hi = MAX_TARGET + 1;
	bool placed[3] = { false, false, false };

	for (unsigned i = 0; i < s->nr_fds; i++)
		if (s->fds[i].fd >= hi)
			hi = s->fds[i].fd + 1;
	if (*status_fd >= hi)
		hi = *status_fd + 1;
	if (*exec_fd >= hi)
		hi = *exec_fd + 1;
	if (kvm >= hi)
		hi = kvm + 1;
	if (devnull >= hi)
		hi = devnull + 1;
	/* The status fd first, and only replaced once its copy exists, so
	 * that a failure below can still be reported. */
	st = fcntl(*status_fd, F_DUPFD_CLOEXEC, hi);
	if (st < 0)
		return -1;
	*status_fd = st;
	*exec_fd = fcntl(*exec_fd, F_DUPFD_CLOEXEC, hi);
	null_tmp = fcntl(devnull, F_DUPFD_CLOEXEC, hi);
	if (*exec_fd < 0 || null_tmp < 0)
		return -1;
	if (kvm >= 0 && (kvm_tmp = fcntl(kvm, F_DUPFD_CLOEXEC, hi)) < 0)
		return -1;
	for (unsigned i = 0; i < s->nr_fds; i++)
		if ((tmp[i] = fcntl(s->fds[i].fd, F_DUPFD_CLOEXEC, hi)) < 0)
			return -1;
	if (close_range(0, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		return -1;
	for (unsigned i = 0; i < s->nr_fds; i++) {
		if (dup3(tmp[i], s->fds[i].target, 0) < 0)
			return -1;
		if (s->fds[i].target < 3)
			placed[s->fds[i].target] = true;
	}
	if (kvm_tmp >= 0 && dup3(kvm_tmp, s->kvm_target, 0) < 0)
		return -1;
	for (int t = 0; t < 3; t++)
		if (!placed[t] && dup3(null_tmp, t, 0) < 0)
			return -1;
	return 0;
}

/* mkdir -p of the directories above path (the child's own copy of it,
 * cut and mended in place: no allocation), from depth `skip` on. */
static int child_mkdirs(char *path, size_t skip, bool last_too)
{
	for (char *p = path + skip + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	if (last_too && mkdir(path, 0755) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Each bind: the mount point (an empty file) made, then the host file
 * bound over it and made read-only (a bind mount ignores MS_RDONLY until
 * it is remounted). */
static int child_binds(const struct child_plan *pl)
{
	size_t skip = strlen(pl->c->root_dir);

	for (unsigned i = 0; i < pl->nr_binds; i++) {
		int fd;

		if (child_mkdirs(pl->bind_dst[i], skip, false) < 0)
			return -1;
		fd = open(pl->bind_dst[i], O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
		if (fd < 0)
			return -1;
		close(fd);
		if (mount(pl->c->binds[i], pl->bind_dst[i], NULL, MS_BIND,
			  NULL) < 0 ||
		    mount(NULL, pl->bind_dst[i], NULL,
			  MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID |
				  MS_NODEV, NULL) < 0)
			return -1;
	}
	return 0;
}

static int child_drop_caps(void)
{
	/* The bounding set: until the kernel says there is no such cap. */
	for (unsigned long cap = 0; cap < 64; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
	    errno != EINVAL)
		return -1;
	return 0;
}

/* After the uid change: the inheritable set is all that is left. */
static int child_clear_inheritable(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];

	memset(data, 0, sizeof(data));
	return (int)syscall(SYS_capset, &hdr, data);
}

static __attribute__((noreturn)) void child_main(struct child_plan *pl)
{
	const struct jail_config *c = pl->c;
	const struct jail_spec *s = pl->s;
	static char *const empty_env[] = { NULL };
	int st = pl->status_fd, exec_fd = s->exec_fd, kvm = -1, devnull;
	struct pollfd pfd;

	errno = 0;
	child_signals();

	if (s->kvm_target >= 0) {
		kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		if (kvm < 0)
			child_fail(st, STEP_OPEN_KVM);
	}
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		child_fail(st, STEP_OPEN_NULL);

	/* Nothing mounted from here on may propagate to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(st, STEP_MOUNT_PRIVATE);
	if (mount("ember-jail", c->root_dir, "tmpfs",
		  MS_NOSUID | MS_NODEV | MS_NOEXEC, ROOT_OPTS) < 0)
		child_fail(st, STEP_MOUNT_ROOT);
	if (!c->no_proc) {
		if (mkdir(pl->proc_dir, 0555) < 0 ||
		    mount("proc", pl->proc_dir, "proc",
			  MS_NOSUID | MS_NODEV | MS_NOEXEC, PROC_OPTS) < 0)
			child_fail(st, STEP_MOUNT_PROC);
	}
	if (child_binds(pl) < 0)
		child_fail(st, STEP_BIND);
	for (unsigned i = 0; i < pl->nr_dirs; i++)
		if (child_mkdirs(pl->dir_dst[i], strlen(c->root_dir), true) < 0)
			child_fail(st, STEP_MKDIR);
	/* pivot_root(".", ".") stacks the old root on the new one; detaching
	 * it leaves only the new root (pivot_root(2), NOTES). */
	if (chdir(c->root_dir) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		child_fail(st, STEP_PIVOT);
	if (mount(NULL, "/", NULL,
		  MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV |
			  MS_NOEXEC, NULL) < 0)
		child_fail(st, STEP_REMOUNT);
	if (sethostname(HOSTNAME, strlen(HOSTNAME)) < 0)
		child_fail(st, STEP_HOSTNAME);

	if (child_fds(pl, kvm, devnull, &st, &exec_fd) < 0)
		child_fail(st, STEP_FDS);
	if (setrlimit(RLIMIT_NOFILE, &pl->nofile) < 0 ||
	    setrlimit(RLIMIT_NPROC, &pl->nproc) < 0 ||
	    setrlimit(RLIMIT_FSIZE, &pl->fsize) < 0 ||
	    setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 }) < 0 ||
	    setrlimit(RLIMIT_MSGQUEUE, &(struct rlimit){ 0, 0 }) < 0)
		child_fail(st, STEP_RLIMITS);

	if (child_drop_caps() < 0)
		child_fail(st, STEP_CAPS);
	/* Raw system calls: glibc's wrappers would try to change every
	 * thread of emberd, whose threads do not exist in this copy. */
	if (syscall(SYS_setgroups, 0, NULL) < 0 ||
	    syscall(SYS_setresgid, pl->id, pl->id, pl->id) < 0 ||
	    syscall(SYS_setresuid, pl->id, pl->id, pl->id) < 0)
		child_fail(st, STEP_IDS);
	if (child_clear_inheritable() < 0)
		child_fail(st, STEP_CAPS);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(st, STEP_NO_NEW_PRIVS);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail(st, STEP_PDEATHSIG);
	pfd = (struct pollfd){ .fd = st, .events = POLLIN };
	if (poll(&pfd, 1, 0) != 0) {
		errno = ESRCH;
		child_fail(st, STEP_PARENT_GONE);
	}

	syscall(SYS_execveat, exec_fd, "", s->argv,
		s->envp ? s->envp : empty_env, AT_EMPTY_PATH);
	child_fail(st, STEP_EXEC);
}

int jail_config_check(const struct jail_config *c, char *err, size_t errlen)
{
	uint64_t last = (uint64_t)c->uid_base + c->uid_count - 1;
	struct stat st;

	if (c->uid_base == 0 || c->uid_count == 0 || last >= INT32_MAX)
		return errbuf_fail(err, errlen, -EINVAL,
				   "jail uid range %u+%u: must be non-empty, "
				   "above 0 and below 2^31", (unsigned)c->uid_base,
				   c->uid_count);
	if (c->uid_base <= NOBODY_UID && last >= NOBODY_UID)
		return errbuf_fail(err, errlen, -EINVAL,
				   "jail uid range %u+%u contains nobody (%u)",
				   (unsigned)c->uid_base, c->uid_count,
				   NOBODY_UID);
	if (!c->root_dir || c->root_dir[0] != '/' ||
	    stat(c->root_dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return errbuf_fail(err, errlen, -EINVAL,
				   "jail root '%s' is not an existing absolute "
				   "directory", c->root_dir ? c->root_dir : "");
	return 0;
}

int jail_check_exec(int fd, char *err, size_t errlen)
{
	char self[64];
	Elf64_Ehdr eh;
	int rfd, ret = 0;

	/* fd may be O_PATH, which cannot be read: reopen it. */
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	rfd = open(self, O_RDONLY | O_CLOEXEC);
	if (rfd < 0)
		return errbuf_fail(err, errlen, -errno,
				   "cannot read the jailed program: %s",
				   strerror(errno));
	if (pread(rfd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 128) {
		ret = errbuf_fail(err, errlen, -ENOEXEC,
				  "the jailed program is not a 64-bit ELF "
				  "executable");
		goto out;
	}
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		if (pread(rfd, &ph, sizeof(ph),
			  (off_t)(eh.e_phoff + i * sizeof(ph))) != sizeof(ph)) {
			ret = errbuf_fail(err, errlen, -ENOEXEC,
					  "the jailed program's program "
					  "headers are truncated");
			goto out;
		}
		if (ph.p_type == PT_INTERP) {
			ret = errbuf_fail(err, errlen, -ENOEXEC,
					  "the jailed program is dynamically "
					  "linked: it starts in an empty root "
					  "with no ld.so, so it must be static");
			goto out;
		}
	}
out:
	close(rfd);
	return ret;
}

/* The PT_INTERP of the ELF file at path into buf: 1, 0 if it has none
 * (static), or -errno. */
static int elf_interp(const char *path, char *buf, size_t len)
{
	Elf64_Ehdr eh;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_phnum > 128 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr)) {
		close(fd);
		return -ENOEXEC;
	}
	for (unsigned i = 0; i < eh.e_phnum && !ret; i++) {
		Elf64_Phdr ph;

		if (pread(fd, &ph, sizeof(ph),
			  (off_t)(eh.e_phoff + i * sizeof(ph))) != sizeof(ph))
			ret = -ENOEXEC;
		else if (ph.p_type == PT_INTERP) {
			if (ph.p_filesz < 2 || ph.p_filesz > len ||
			    pread(fd, buf, ph.p_filesz, (off_t)ph.p_offset) !=
				    (ssize_t)ph.p_filesz ||
			    buf[ph.p_filesz - 1] != '\0' || buf[0] != '/')
				ret = -ENOEXEC;
			else
				ret = 1;
		}
	}
	close(fd);
	return ret;
}

void jail_libs_free(char **libs)
{
	for (size_t i = 0; libs && libs[i]; i++)
		free(libs[i]);
	free(libs);
}

/* Adds the path at p (ending at a space or newline) to libs, once. */
static int libs_add(char **libs, unsigned *n, const char *p)
{
	size_t len = strcspn(p, " \t\n");

	for (unsigned i = 0; i < *n; i++)
		if (strlen(libs[i]) == len && !memcmp(libs[i], p, len))
			return 0;
	if (*n >= JAIL_MAX_BINDS)
		return -E2BIG;
	libs[*n] = strndup(p, len);
	if (!libs[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

int jail_exec_libs(const char *path, char ***out, char *err, size_t errlen)
{
	char interp[PATH_MAX], prog[PATH_MAX], buf[16384], *line, *save = NULL;
	char **libs;
	size_t got = 0;
	unsigned n = 0;
	int pfd[2], ret, status;
	pid_t pid;

	*out = NULL;
	ret = elf_interp(path, interp, sizeof(interp));
	if (ret <= 0)
		return ret ? errbuf_fail(err, errlen, ret, "%s: not a readable "
					 "ELF executable", path) : 0;
	if ((size_t)snprintf(prog, sizeof(prog), "%s", path) >= sizeof(prog))
		return errbuf_fail(err, errlen, -ENAMETOOLONG, "path too long");
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return errbuf_fail(err, errlen, -errno, "pipe: %s",
				   strerror(errno));
	pid = fork();
	if (pid == 0) {
		char *const argv[] = { interp, "--list", prog, NULL };
		char *const envp[] = { NULL };

		if (dup2(pfd[1], 1) == 1)
			execve(interp, argv, envp);
		_exit(127);
	}
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return errbuf_fail(err, errlen, -errno, "fork: %s",
				   strerror(errno));
	}
	for (;;) {
		ssize_t r = read(pfd[0], buf + got, sizeof(buf) - 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got == sizeof(buf) - 1)
			break;
	}
	buf[got] = '\0';
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) || strstr(buf, "not found"))
		return errbuf_fail(err, errlen, -ENOENT, "%s --list %s failed "
				   "or lacks a library: the jail cannot bind "
				   "what the VMM needs", interp, path);
	libs = calloc(JAIL_MAX_BINDS + 1, sizeof(*libs));
	if (!libs)
		return errbuf_fail(err, errlen, -ENOMEM, "out of memory");
	ret = libs_add(libs, &n, interp);
	/* "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
	 * "\t/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no path. */
	for (line = strtok_r(buf, "\n", &save); line && !ret;
	     line = strtok_r(NULL, "\n", &save)) {
		char *arrow = strstr(line, "=> "), *p;

		p = arrow ? arrow + 3 : line + strspn(line, " \t");
		if (*p == '/')
			ret = libs_add(libs, &n, p);
	}
	if (ret) {
		jail_libs_free(libs);
		return errbuf_fail(err, errlen, ret, "%s: more than %d libraries "
				   "to bind into the jail", path,
				   JAIL_MAX_BINDS);
	}
	*out = libs;
	return 0;
}

static int check_spec(const struct jail_config *c, const struct jail_spec *s,
		      char *err, size_t errlen)
{
	if (s->slot >= c->uid_count)
		return errbuf_fail(err, errlen, -EINVAL,
				   "jail slot %u out of range (%u slots)",
				   s->slot, c->uid_count);
	if (!s->argv || !s->argv[0] || s->exec_fd < 0)
		return errbuf_fail(err, errlen, -EINVAL,
				   "jail: no program to run");
	if (s->nr_fds > JAIL_MAX_FDS)
		return errbuf_fail(err, errlen, -EINVAL,
				   "jail: at most %d inherited fds",
				   JAIL_MAX_FDS);
	if (s->kvm_target > MAX_TARGET)
		return errbuf_fail(err, errlen, -EINVAL,
				   "jail: fd %d out of range", s->kvm_target);
	for (unsigned i = 0; i < s->nr_fds; i++) {
		int t = s->fds[i].target;

		if (s->fds[i].fd < 0 || t < 0 || t > MAX_TARGET ||
		    t == s->kvm_target)
			return errbuf_fail(err, errlen, -EINVAL,
					   "jail: invalid fd mapping %d -> %d",
					   s->fds[i].fd, t);
		for (unsigned j = 0; j < i; j++)
			if (s->fds[j].target == t)
				return errbuf_fail(err, errlen, -EINVAL,
						   "jail: fd %d inherited twice",
						   t);
	}
	return 0;
}

static void plan_free(struct child_plan *pl)
{
	free(pl->bind_dst);
	free(pl->dir_dst);
	pl->bind_dst = pl->dir_dst = NULL;
}

/* root_dir + path for every bind and dir: the child cannot allocate. */
static int plan_one(const char *root, const char *const *list,
		    char (**out)[PATH_MAX], unsigned *nr, char *err,
		    size_t errlen)
{
	unsigned n = 0;

	while (list && list[n])
		n++;
	*nr = n;
	if (!n)
		return 0;
	if (n > JAIL_MAX_BINDS)
		return errbuf_fail(err, errlen, -E2BIG,
				   "jail: at most %d binds or dirs",
				   JAIL_MAX_BINDS);
	*out = calloc(n, PATH_MAX);
	if (!*out)
		return errbuf_fail(err, errlen, -ENOMEM, "jail: out of memory");
	for (unsigned i = 0; i < n; i++)
		if (list[i][0] != '/' || strstr(list[i], "/../") ||
		    (size_t)snprintf((*out)[i], PATH_MAX, "%s%s", root,
				     list[i]) >= PATH_MAX)
			return errbuf_fail(err, errlen, -EINVAL,
					   "jail: bad path '%s' for the root",
					   list[i]);
	return 0;
}

static int plan_paths(const struct jail_config *c, struct child_plan *pl,
		      char *err, size_t errlen)
{
	int ret = plan_one(c->root_dir, c->binds, &pl->bind_dst,
			   &pl->nr_binds, err, errlen);

	if (!ret)
		ret = plan_one(c->root_dir, c->dirs, &pl->dir_dst,
			       &pl->nr_dirs, err, errlen);
	if (ret)
		plan_free(pl);
	return ret;
}

int jail_spawn(const struct jail_config *c, const struct jail_spec *s,
	       struct jail_proc *p, char *err, size_t errlen)
{
	struct child_plan pl = { .c = c, .s = s };
	struct clone_args ca;
	struct child_report rep;
	int sp[2], pidfd = -1, ret;
	unsigned max_fds = c->max_fds ? c->max_fds : DEFAULT_MAX_FDS;
	unsigned max_procs = c->max_procs ? c->max_procs : DEFAULT_MAX_PROCS;
	ssize_t n;
	pid_t pid;

	ret = check_spec(c, s, err, errlen);
	if (ret)
		return ret;
	if ((size_t)snprintf(pl.proc_dir, sizeof(pl.proc_dir), "%s/proc",
			     c->root_dir) >= sizeof(pl.proc_dir))
		return errbuf_fail(err, errlen, -ENAMETOOLONG,
				   "jail root path too long");
	ret = plan_paths(c, &pl, err, errlen);
	if (ret)
		return ret;
	pl.id = c->uid_base + s->slot;
	pl.nofile = (struct rlimit){ max_fds, max_fds };
	pl.nproc = (struct rlimit){ max_procs, max_procs };
	pl.fsize = (struct rlimit){ s->max_file_bytes, s->max_file_bytes };
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		ret = errbuf_fail(err, errlen, -errno, "jail: socketpair: %s",
				  strerror(errno));
		plan_free(&pl);
		return ret;
	}
	pl.status_fd = sp[1];

	memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
		   CLONE_NEWNET | CLONE_NEWCGROUP | CLONE_PIDFD;
	ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
	ca.exit_signal = SIGCHLD;
	pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid == 0)
		child_main(&pl);
	close(sp[1]);
	plan_free(&pl);
	if (pid < 0) {
		ret = errbuf_fail(err, errlen, -errno,
				  "jail: cannot create the namespaces: %s",
				  strerror(errno));
		close(sp[0]);
		return ret;
	}
	do
		n = recv(sp[0], &rep, sizeof(rep), 0);
	while (n < 0 && errno == EINTR);
	close(sp[0]);
	if (n == 0) {
		p->pid = pid;
		p->pidfd = pidfd;
		return 0;
	}
	if (n == (ssize_t)sizeof(rep))
		ret = errbuf_fail(err, errlen, -rep.err, "jail: %s failed: %s",
				  step_name(rep.step), strerror(rep.err));
	else
		ret = errbuf_fail(err, errlen, -EIO,
				  "jail: the child died before its exec");
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	close(pidfd);
	return ret;
}

/* ---- slots ---------------------------------------------------------------*/

struct jail_slots {
	pthread_mutex_t lock;
	unsigned count, next;
	uint64_t used[];
};

struct jail_slots *jail_slots_new(unsigned count)
{
	size_t words = (count + 63) / 64;
	struct jail_slots *s;

	if (count == 0)
		return NULL;
	s = calloc(1, sizeof(*s) + words * sizeof(uint64_t));
	if (!s)
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	s->count = count;
	return s;
}

void jail_slots_free(struct jail_slots *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Next fit: a freed uid is the last to be handed out again. */
int jail_slot_get(struct jail_slots *s)
{
	int ret = -ENOSPC;

	pthread_mutex_lock(&s->lock);
	for (unsigned k = 0; k < s->count; k++) {
		unsigned i = (s->next + k) % s->count;

		if (!(s->used[i / 64] & (1ull << (i % 64)))) {
			s->used[i / 64] |= 1ull << (i % 64);
			s->next = (i + 1) % s->count;
			ret = (int)i;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

void jail_slot_put(struct jail_slots *s, unsigned slot)
{
	if (slot >= s->count)
		return;
	pthread_mutex_lock(&s->lock);
	s->used[slot / 64] &= ~(1ull << (slot % 64));
	pthread_mutex_unlock(&s->lock);
}
