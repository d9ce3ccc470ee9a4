/*
 * pid1.c - process 1's chores: see pid1.h and docs/guest-init.md.
 */
#include "pid1.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* uapi linux/random.h: the names are ours, the numbers the kernel's. */
#define GI_RNDADDENTROPY _IOW('R', 0x03, int[2])
#define GI_RNDRESEEDCRNG _IO('R', 0x07)

/* Nothing we open may become fd 0-2 by accident (a pipe to the handler,
 * say): fill the gaps with /dev/null, when there is one. */
static void fill_std_fds(void)
{
	int fd;

	for (;;) {
		fd = open("/dev/null", O_RDWR);
		if (fd < 0 || fd > 2) {
			if (fd > 2)
				close(fd);
			return;
		}
	}
}

void pid1_init(struct pid1 *p, int in_vm)
{
	p->is_pid1 = getpid() == 1;
	p->in_vm = in_vm && p->is_pid1;
	p->step_clock = p->in_vm;
	fill_std_fds();
}

static void do_mount(const char *src, const char *dst, const char *type,
		     unsigned long flags, const char *data)
{
	if (mount(src, dst, type, flags, data) == 0)
		return;
	/* In a test's namespace /sys is the host's sysfs already, which
	 * cannot be mounted twice on one place (EBUSY): that is fine. */
	if (errno == EBUSY)
		log_dbg("mount %s on %s: already there", type, dst);
	else
		log_msg("mount %s on %s: %s", type, dst, strerror(errno));
}

/* The device nodes and links a handler expects in /dev. */
static void make_dev(void)
{
	static const struct {
		const char *name;
		mode_t mode;
		unsigned maj, min;
	} nodes[] = {
		{ "console", 0600, 5, 1 }, { "tty", 0666, 5, 0 },
		{ "null", 0666, 1, 3 },    { "zero", 0666, 1, 5 },
		{ "full", 0666, 1, 7 },    { "random", 0666, 1, 8 },
		{ "urandom", 0666, 1, 9 },
	};
	static const struct {
		const char *name, *target;
	} links[] = {
		{ "fd", "/proc/self/fd" },
		{ "stdin", "/proc/self/fd/0" },
		{ "stdout", "/proc/self/fd/1" },
		{ "stderr", "/proc/self/fd/2" },
	};
	char path[64];
	mode_t old = umask(0);

	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		snprintf(path, sizeof(path), "/dev/%s", nodes[i].name);
		if (mknod(path, S_IFCHR | nodes[i].mode,
			  makedev(nodes[i].maj, nodes[i].min)) < 0 &&
		    errno != EEXIST)
			log_msg("mknod %s: %s", path, strerror(errno));
	}
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		snprintf(path, sizeof(path), "/dev/%s", links[i].name);
		if (symlink(links[i].target, path) < 0 && errno != EEXIST)
			log_msg("symlink %s: %s", path, strerror(errno));
	}
	if (mkdir("/dev/shm", 01777) < 0 && errno != EEXIST)
		log_msg("mkdir /dev/shm: %s", strerror(errno));
	umask(old);
}

/* In a VM whose root has no /dev/console the kernel started us without
 * fds 0-2 (they are /dev/null now, from pid1_init): use the console. */
static void console_fds(void)
{
	struct stat st;
	int fd;

	if (fstat(2, &st) == 0 && S_ISCHR(st.st_mode) &&
	    major(st.st_rdev) != 1) /* already a real console */
		return;
	fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0) {
		for (int i = 0; i < 3; i++)
			dup2(fd, i);
		if (fd > 2)
			close(fd);
	}
	fill_std_fds();
}

void pid1_mount_early(const struct pid1 *p)
{
	if (!p->is_pid1)
		return;
	do_mount("dev", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC,
		 "mode=0755,size=1m");
	make_dev();
	if (p->in_vm)
		console_fds();
	do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		 NULL);
}

void pid1_mount_late(const struct pid1 *p)
{
	if (!p->is_pid1)
		return;
	do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		 NULL);
	do_mount("tmp", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	do_mount("run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	do_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
		 "mode=1777");
}

void pid1_sync(const struct pid1 *p, uint64_t realtime_ns,
	       const uint8_t entropy[EMBER_INV_SYNC_ENTROPY])
{
	struct {
		int entropy_count; /* bits */
		int buf_size;
		uint8_t buf[EMBER_INV_SYNC_ENTROPY];
	} e = { .entropy_count = 8 * EMBER_INV_SYNC_ENTROPY,
		.buf_size = EMBER_INV_SYNC_ENTROPY };
	static int warned;
	struct timespec now, to;
	int64_t off;
	int fd;

	clock_gettime(CLOCK_REALTIME, &now);
	off = (int64_t)(realtime_ns -
			((uint64_t)now.tv_sec * 1000000000ull +
			 (uint64_t)now.tv_nsec));
	if (p->step_clock && (off >= 1000000 || off <= -1000000)) {
		to.tv_sec = (time_t)(realtime_ns / 1000000000ull);
		to.tv_nsec = (long)(realtime_ns % 1000000000ull);
		if (clock_settime(CLOCK_REALTIME, &to) < 0)
			log_msg("cannot step the clock: %s", strerror(errno));
		else if (off >= 1000000000 || off <= -1000000000)
			/* A restore from a snapshot: worth a console line. */
			log_msg("clock stepped by %+.3f s from the host's",
				(double)off / 1e9);
		else
			log_dbg("clock stepped by %+.3f ms", (double)off / 1e6);
	} else {
		log_dbg("sync: host clock %+.3f ms from ours%s",
			(double)off / 1e6,
			p->step_clock ? "" : "; not stepped (not a VM)");
	}

	memcpy(e.buf, entropy, sizeof(e.buf));
	fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, GI_RNDADDENTROPY, &e) < 0 ||
	    ioctl(fd, GI_RNDRESEEDCRNG) < 0) {
		if (!warned++)
			log_msg("cannot add the host's entropy to the kernel "
				"RNG: %s", strerror(errno));
	} else {
		log_dbg("sync: %d bits of host entropy added, RNG reseeded",
			e.entropy_count);
	}
	if (fd >= 0)
		close(fd);
	memset(&e, 0, sizeof(e));
}

void pid1_kill_all(const struct pid1 *p, int sig)
{
	/* kill(-1) from process 1 reaches every process of its PID
	 * namespace but itself; anywhere else it would reach every process
	 * of the user, so never. */
	if (p->is_pid1)
		kill(-1, sig);
}

void pid1_poweroff(const struct pid1 *p)
{
	if (!p->in_vm)
		return;
	sync();
	/* With reboot=k a restart goes through the keyboard controller,
	 * which ember-vmm turns into the end of the VM; a power-off would
	 * only halt (no ACPI). */
	reboot(RB_AUTOBOOT);
	log_msg("reboot: %s", strerror(errno));
	for (;;)
		pause();
}
