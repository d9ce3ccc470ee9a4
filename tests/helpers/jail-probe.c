/*
 * jail-probe: a static test helper exec'd in place of ember-vmm, in the same
 * jail (agent/jail.c), to check each wall from inside.
 *
 *   jail-probe walls KEY=VALUE...   run the checks the keys ask for; print
 *                                   "ok NAME" or "FAIL NAME: why" per check
 *                                   and "done N" (N failures); exit 0 if none
 *   jail-probe sleep                wait until killed
 *
 * Keys (repeatable where it makes sense):
 *   uid=N        the uid and gid the process must run as
 *   hidden=PATH  a host path that must not exist here
 *   sock=PATH    a host Unix socket that must not be reachable
 *   pid=N        a host pid that must be neither signalable nor traceable
 *   port=N       a TCP port listening on the host's 127.0.0.1
 *   abstract=S   an abstract Unix socket bound in the host's namespace
 *   shm=KEY      a System V shared memory key that exists on the host
 *   kvm=FD       a /dev/kvm descriptor that must work
 *   fds=A,B,..   exactly these descriptors are open
 *   nproc=N      RLIMIT_NPROC: N - 1 forks succeed, then EAGAIN
 *   fsize=N      RLIMIT_FSIZE: a write past N bytes fails with EFBIG
 *   cgfile=PATH  a cgroup file that must not be writable
 *   allow=NAME   a name / may hold besides proc (the directories of the
 *                libraries bound for a dynamically linked VMM)
 *   ro=PATH      a file that must be there and read-only (a bound library)
 *   out=FD       print the report on FD instead of stdout (jail-run: 3)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

/* Appends " word" to buf (truncating). */
static void append(char *buf, size_t len, const char *sep, const char *word)
{
	size_t n = strlen(buf);

	snprintf(buf + n, len - n, "%s", sep);
	n = strlen(buf);
	if (n + 1 < len) {
		size_t k = strlen(word);

		if (k > len - n - 1)
			k = len - n - 1;
		memcpy(buf + n, word, k);
		buf[n + k] = '\0';
	}
}

static void result(bool ok, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void result(bool ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		printf("ok %s\n", name);
		return;
	}
	failures++;
	printf("FAIL %s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* The "Name:\tvalue" line of /proc/self/status. */
static void status_field(const char *key, char *out, size_t len)
{
	char line[256];
	size_t kl = strlen(key);
	FILE *f = fopen("/proc/self/status", "r");

	out[0] = '\0';
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			snprintf(out, len, "%s", line + kl + 1 + strspn(line + kl + 1, " \t"));
			out[strcspn(out, "\n")] = '\0';
			break;
		}
	}
	fclose(f);
}

static void check_identity(unsigned uid)
{
	char v[128];
	gid_t groups[4];
	bool caps_zero = true;
	static const char *const caps[] = { "CapInh", "CapPrm", "CapEff",
					    "CapBnd", "CapAmb" };

	result(getuid() == uid && geteuid() == uid && getgid() == uid &&
		       getegid() == uid,
	       "uid", "uid %u euid %u gid %u egid %u, want %u", getuid(),
	       geteuid(), getgid(), getegid(), uid);
	result(getgroups(4, groups) == 0, "no-groups", "%d groups",
	       getgroups(4, groups));
	for (unsigned i = 0; i < 5; i++) {
		status_field(caps[i], v, sizeof(v));
		if (strcmp(v, "0000000000000000")) {
			caps_zero = false;
			result(false, "no-capabilities", "%s %s", caps[i], v);
		}
	}
	if (caps_zero)
		result(true, "no-capabilities", "-");
	status_field("NoNewPrivs", v, sizeof(v));
	result(!strcmp(v, "1"), "no-new-privs", "NoNewPrivs '%s'", v);
	status_field("Seccomp", v, sizeof(v));
	printf("info seccomp mode %s\n", v);
}

/* allow= keys: ",name1,name2," */
static char allowed[512] = ",proc,";

static void check_root(void)
{
	struct dirent *e;
	char names[256] = "";
	DIR *d = opendir("/");
	bool only_proc = true;

	if (!d) {
		result(false, "empty-root", "opendir /: %s", strerror(errno));
		return;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char item[300];

		append(names, sizeof(names), " ", e->d_name);
		snprintf(item, sizeof(item), ",%s,", e->d_name);
		if (!strstr(allowed, item))
			only_proc = false;
	}
	closedir(d);
	result(only_proc, "empty-root", "/ holds:%s", names);
	result(open("/etc/passwd", O_RDONLY) < 0 && errno == ENOENT,
	       "no-etc-passwd", "open /etc/passwd: %s", strerror(errno));
	result(open("/dev/kvm", O_RDWR) < 0, "no-dev-kvm", "opened /dev/kvm");
	result(mkdir("/x", 0700) < 0 && (errno == EROFS || errno == EACCES),
	       "root-read-only", "mkdir /x: %s", strerror(errno));
	result(mount("none", "/proc", "tmpfs", 0, NULL) < 0 && errno == EPERM,
	       "no-mount", "mount: %s", strerror(errno));
}

static void check_hidden(const char *path)
{
	struct stat st;
	char name[300];

	snprintf(name, sizeof(name), "hidden:%s", path);
	result(stat(path, &st) < 0 && errno == ENOENT, name, "stat: %s",
	       errno ? strerror(errno) : "visible");
}

static void check_sock(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char name[300];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(name, sizeof(name), "unreachable:%s", path);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	result(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 &&
		       errno == ENOENT,
	       name, "connect: %s", fd < 0 ? "no socket" : strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void check_abstract(const char *sname)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				    1 + strlen(sname));
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memcpy(a.sun_path + 1, sname, strlen(sname));
	result(fd >= 0 && connect(fd, (struct sockaddr *)&a, len) < 0 &&
		       errno == ECONNREFUSED,
	       "abstract-socket-unreachable", "connect: %s",
	       fd < 0 ? "no socket" : strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void check_pid(int pid)
{
	char name[64], buf[8];
	struct iovec l = { buf, sizeof(buf) }, r = { (void *)0x400000, 8 };

	snprintf(name, sizeof(name), "no-kill:%d", pid);
	result(kill(pid, 0) < 0 && errno == ESRCH, name, "kill: %s",
	       errno ? strerror(errno) : "allowed");
	snprintf(name, sizeof(name), "no-ptrace:%d", pid);
	errno = 0;
	result(ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0, name, "attached");
	snprintf(name, sizeof(name), "no-vm-read:%d", pid);
	result(process_vm_readv(pid, &l, 1, &r, 1, 0) < 0, name, "read it");
}

static void check_processes(void)
{
	struct dirent *e;
	char names[256] = "";
	DIR *d = opendir("/proc");
	bool only_self = true;

	if (!d) {
		result(false, "proc-own-namespace", "opendir: %s",
		       strerror(errno));
		return;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		append(names, sizeof(names), " ", e->d_name);
		if (strcmp(e->d_name, "1"))
			only_self = false;
	}
	closedir(d);
	result(only_self && getpid() == 1, "proc-own-namespace",
	       "pid %d; /proc lists:%s", getpid(), names);
	result(access("/proc/sys", F_OK) < 0 && access("/proc/meminfo", F_OK) < 0,
	       "proc-no-host-files", "/proc/sys or /proc/meminfo visible");
	result(access("/proc/self/pagemap", R_OK) == 0, "proc-self-pagemap",
	       "%s", strerror(errno));
	result(getppid() == 0, "no-parent-visible", "getppid %d", getppid());
	result(kill(-1, 0) < 0 && errno == ESRCH, "kill-all-reaches-none",
	       "kill(-1): %s", errno ? strerror(errno) : "allowed");
}

static void check_network(int port)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	char names[256] = "";
	bool only_lo = ifs != NULL;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	struct ifreq ifr;
	int fd;

	for (i = ifs; i && i->if_index; i++) {
		append(names, sizeof(names), " ", i->if_name);
		if (strcmp(i->if_name, "lo"))
			only_lo = false;
	}
	if (ifs)
		if_freenameindex(ifs);
	result(only_lo, "only-loopback-interface", "interfaces:%s", names);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	result(fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 &&
		       !(ifr.ifr_flags & IFF_UP),
	       "loopback-down", "lo flags %#x", ifr.ifr_flags);
	if (fd >= 0)
		close(fd);
	if (port <= 0)
		return;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	result(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 &&
		       errno == ENETUNREACH,
	       "no-tcp-to-host", "connect 127.0.0.1:%d: %s", port,
	       errno ? strerror(errno) : "connected");
	if (fd >= 0)
		close(fd);
}

static void check_ipc_uts(int key)
{
	struct utsname u;

	uname(&u);
	result(!strcmp(u.nodename, "ember"), "own-hostname", "hostname %s",
	       u.nodename);
	if (key)
		result(shmget(key, 0, 0) < 0 && errno == ENOENT,
		       "no-host-sysv-ipc", "shmget: %s",
		       errno ? strerror(errno) : "found");
}

static void check_kvm(int fd)
{
	int vm;

	result(ioctl(fd, KVM_GET_API_VERSION, 0) == 12, "kvm-fd-works",
	       "KVM_GET_API_VERSION: %s", strerror(errno));
	vm = ioctl(fd, KVM_CREATE_VM, 0);
	result(vm >= 0, "kvm-create-vm", "KVM_CREATE_VM: %s", strerror(errno));
	if (vm >= 0)
		close(vm);
}

static void check_fds(const char *list)
{
	char want[256], have[256] = "";
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");

	snprintf(want, sizeof(want), ",%s,", list);
	if (!d) {
		result(false, "only-listed-fds", "opendir: %s", strerror(errno));
		return;
	}
	while ((e = readdir(d))) {
		char item[32] = ",";

		if (e->d_name[0] < '0' || e->d_name[0] > '9' ||
		    atoi(e->d_name) == dirfd(d))
			continue;
		append(item, sizeof(item), "", e->d_name);
		append(item, sizeof(item), "", ",");
		append(have, sizeof(have), have[0] ? "," : "", e->d_name);
		if (!strstr(want, item))
			result(false, "only-listed-fds", "fd %s is open",
			       e->d_name);
	}
	closedir(d);
	printf("info fds %s\n", have);
	result(true, "fds-listed", "-");
	{
		struct rlimit r;

		getrlimit(RLIMIT_CORE, &r);
		result(r.rlim_cur == 0 && r.rlim_max == 0, "no-core-dumps",
		       "RLIMIT_CORE %llu", (unsigned long long)r.rlim_cur);
	}
}

static void check_nproc(int n)
{
	pid_t kids[64];
	int ok = 0, err = 0;

	for (int i = 0; i < 64; i++) {
		kids[ok] = fork();
		if (kids[ok] == 0) {
			pause();
			_exit(0);
		}
		if (kids[ok] < 0) {
			err = errno;
			break;
		}
		ok++;
	}
	for (int i = 0; i < ok; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
	result(ok == n - 1 && err == EAGAIN, "nproc-limit",
	       "%d forks then %s, want %d then EAGAIN", ok, strerror(err),
	       n - 1);
}

static void check_fsize(long n)
{
	char buf[4096];
	int fd = memfd_create("probe", 0);
	ssize_t w;
	long total = 0;

	signal(SIGXFSZ, SIG_IGN);
	memset(buf, 'x', sizeof(buf));
	while ((w = write(fd, buf, sizeof(buf))) > 0)
		total += w;
	result(w < 0 && errno == EFBIG && total == n, "fsize-limit",
	       "wrote %ld (limit %ld): %s", total, n, strerror(errno));
	close(fd);
}

static void check_ro(const char *path)
{
	char name[300];
	int fd;

	snprintf(name, sizeof(name), "read-only:%s", path);
	fd = open(path, O_WRONLY);
	result(fd < 0 && (errno == EROFS || errno == EACCES) &&
	       access(path, R_OK) == 0, name, "open for writing: %s",
	       fd < 0 ? strerror(errno) : "succeeded");
	if (fd >= 0)
		close(fd);
}

static void check_cgfile(const char *path)
{
	char name[300];

	snprintf(name, sizeof(name), "cgroup-not-writable:%s", path);
	result(open(path, O_WRONLY) < 0, name, "opened for writing");
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "sleep")) {
		for (;;)
			pause();
	}
	if (argc < 2 || strcmp(argv[1], "walls")) {
		fprintf(stderr, "usage: jail-probe walls KEY=VALUE... | sleep\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (!strncmp(argv[i], "out=", 4) && dup2(atoi(argv[i] + 4), 1) < 0)
			return 3;
		if (!strncmp(argv[i], "allow=", 6)) {
			append(allowed, sizeof(allowed), "", argv[i] + 6);
			append(allowed, sizeof(allowed), "", ",");
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	check_root();
	check_processes();
	for (int i = 2; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		const char *v;

		if (!eq)
			continue;
		*eq = '\0';
		v = eq + 1;
		if (!strcmp(argv[i], "uid"))
			check_identity((unsigned)atoi(v));
		else if (!strcmp(argv[i], "hidden"))
			check_hidden(v);
		else if (!strcmp(argv[i], "sock"))
			check_sock(v);
		else if (!strcmp(argv[i], "pid"))
			check_pid(atoi(v));
		else if (!strcmp(argv[i], "port"))
			check_network(atoi(v));
		else if (!strcmp(argv[i], "abstract"))
			check_abstract(v);
		else if (!strcmp(argv[i], "shm"))
			check_ipc_uts(atoi(v));
		else if (!strcmp(argv[i], "kvm"))
			check_kvm(atoi(v));
		else if (!strcmp(argv[i], "fds"))
			check_fds(v);
		else if (!strcmp(argv[i], "nproc"))
			check_nproc(atoi(v));
		else if (!strcmp(argv[i], "fsize"))
			check_fsize(atol(v));
		else if (!strcmp(argv[i], "cgfile"))
			check_cgfile(v);
		else if (!strcmp(argv[i], "ro"))
			check_ro(v);
		else if (!strcmp(argv[i], "out") || !strcmp(argv[i], "allow"))
			continue;
		else
			result(false, argv[i], "unknown key");
	}
	printf("done %d\n", failures);
	return failures ? 1 : 0;
}
