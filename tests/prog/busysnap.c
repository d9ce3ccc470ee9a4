/*
 * busysnap.c - snapshots of a busy VM (issue 12, defect 1);
 * tests/integration/snapshot-busy runs it:
 *
 *   busysnap --vmm VMM --snapshot DIR --tmp DIR [--rounds N]
 *
 * Restores the echo snapshot in `VMM --restore ... --control SOCK` and,
 * while host threads storm its vsock socket (invocations on fresh
 * connections, connections dropped right after CONNECT, connections that
 * never say CONNECT), pauses it, snapshots it and resumes it N times. Each
 * snapshot must be consistent:
 *  - no virtqueue holds a chain the device took and did not give back
 *    (last_avail - used_idx == 0 in the saved state): such a chain is an
 *    rx buffer every clone has lost for good, counted here per snapshot
 *    as "held" (and read back from the guest's avail ring in the memory
 *    file, to show the guest's own count agrees);
 *  - every clone restores in a new process and serves an invocation.
 * Exit 0 when all snapshots are consistent and every clone served.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "invoke.h"
#include "proto/invoke.h"
#include "snapshots/snap.h"
#include "virtio/virtio.h"

static const char *vmm, *tmp;
static char vsock_path[256], clone_ctl[256], clone_log[256];
static char clone_console[256];
static atomic_bool stop_storm;
static atomic_uint storm_ok, storm_fail;

/* The busy VM (control socket ctl), or with ctl NULL a clone. */
static pid_t spawn_vmm(const char *snap, const char *vsock, const char *ctl)
{
	pid_t pid = fork();

	if (pid == 0 && ctl) {
		execl(vmm, vmm, "--restore", snap, "--vsock", vsock,
		      "--control", ctl, "--serial", "none", "--timeout", "300",
		      "-q", (char *)NULL);
		_exit(127);
	}
	if (pid == 0) {
		/* A clone keeps its log, console and control socket, so that
		 * a failure can say why (clone_report). */
		int fd = open(clone_log, O_WRONLY | O_CREAT | O_TRUNC |
			      O_CLOEXEC, 0644);

		if (fd >= 0)
			dup2(fd, 2);
		execl(vmm, vmm, "--restore", snap, "--vsock", vsock,
		      "--control", clone_ctl, "--serial", clone_console,
		      "--timeout", "60", "-v", (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int ctl(int fd, const char *cmd, char *reply, size_t cap)
{
	size_t len = 0;

	if (send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) != (ssize_t)strlen(cmd))
		return -1;
	while (len + 1 < cap) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 30000) <= 0)
			return -1;
		n = recv(fd, reply + len, cap - 1 - len, 0);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		reply[len] = '\0';
		if (memchr(reply, '\n', len))
			return 0;
	}
	return -1;
}

/* Invocations, each on a fresh connection. */
static void *storm_invoke(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg, n = 0;

	while (!atomic_load(&stop_storm)) {
		struct inv_result res;
		char msg[64];
		int len = snprintf(msg, sizeof(msg), "storm %u.%u", id, n++);

		ember_invoke(vsock_path, EMBER_INV_VSOCK_PORT, msg, (size_t)len,
			     10000, &res);
		if (res.status == EMBER_INVOKE_OK && res.len == (size_t)len &&
		    !memcmp(res.payload, msg, res.len))
			atomic_fetch_add(&storm_ok, 1);
		else
			atomic_fetch_add(&storm_fail, 1);
		inv_result_free(&res);
	}
	return NULL;
}

/* Host-side churn: CONNECT then gone at once, or a connection that never
 * finishes its handshake line. */
static void *storm_churn(void *arg)
{
	unsigned n = 0;

	(void)arg;
	while (!atomic_load(&stop_storm)) {
		int fd = unix_connect(vsock_path);

		if (fd >= 0) {
			if (n % 3 == 0 &&
			    send(fd, "CONNECT 1024\n", 13, MSG_NOSIGNAL) < 0)
				n++;
			else if (n % 3 == 1 && send(fd, "CONN", 4, MSG_NOSIGNAL) < 0)
				n++;
			poll(NULL, 0, n % 3 == 2 ? 5 : 0);
			close(fd);
		}
		n++;
		poll(NULL, 0, 1);
	}
	return NULL;
}

/* Chains the device holds in snapshot `dir` (summed over every queue), and
 * the vsock rx queue's numbers as the guest's avail ring tells them. */
static int held_chains(const char *dir, unsigned *held, unsigned *rx_avail,
		       char *err, size_t errlen)
{
	struct snap_vm *s = calloc(1, sizeof(*s));
	char path[1024];
	int ret, fd;

	*held = 0;
	*rx_avail = 0;
	if (!s)
		return -ENOMEM;
	ret = snap_load_state(dir, s, SNAP_LOAD_ANY_CPU, err, errlen);
	for (unsigned i = 0; !ret && i < s->nr_devices; i++) {
		const struct snap_virtio_dev *d = &s->dev[i];

		for (unsigned q = 0; q < d->nr_queues; q++)
			*held += (uint16_t)(d->vq[q].last_avail - d->vq[q].used_idx);
		if (d->device_id != VIRTIO_ID_VSOCK)
			continue;
		/* avail->idx: 2 bytes at avail_gpa + 2; low RAM is the file's
		 * first bytes. */
		snprintf(path, sizeof(path), "%s/memory", dir);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			uint16_t idx = 0;

			if (pread(fd, &idx, 2, (off_t)d->vq[0].avail_gpa + 2) == 2)
				*rx_avail = (uint16_t)(idx - d->vq[0].last_avail);
			close(fd);
		}
	}
	free(s);
	return ret;
}

static void print_tail(const char *what, const char *path)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t end = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
	ssize_t n;

	if (end < 0) {
		fprintf(stderr, "  %s: none\n", what);
		if (fd >= 0)
			close(fd);
		return;
	}
	n = pread(fd, buf, sizeof(buf) - 1, end > (off_t)sizeof(buf) - 1 ?
		  end - (off_t)sizeof(buf) + 1 : 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	fprintf(stderr, "  %s (last %zd bytes):\n%s\n", what, n, buf);
}

/* A clone that did not serve: what its VMM says of itself (state, where
 * each vCPU is) and the end of its log and console. */
static void clone_report(void)
{
	char reply[512];
	int fd = unix_connect(clone_ctl);

	if (fd < 0) {
		fprintf(stderr, "  clone control socket: %s\n", strerror(errno));
	} else {
		if (!ctl(fd, "status\n", reply, sizeof(reply)))
			fprintf(stderr, "  clone status: %s", reply);
		if (!ctl(fd, "vcpus\n", reply, sizeof(reply)))
			fprintf(stderr, "  clone vcpus: %s", reply);
		close(fd);
	}
	print_tail("clone log", clone_log);
	print_tail("clone console", clone_console);
}

int main(int argc, char **argv)
{
	const char *snap = NULL;
	char ctlp[256], reply[512], dir[512], err[512], csock[256];
	unsigned rounds = 20, bad = 0, clones_ok = 0, total_held = 0;
	pthread_t th[6];
	pid_t pid;
	int fd = -1;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--vmm"))
			vmm = argv[i + 1];
		else if (!strcmp(argv[i], "--snapshot"))
			snap = argv[i + 1];
		else if (!strcmp(argv[i], "--tmp"))
			tmp = argv[i + 1];
		else if (!strcmp(argv[i], "--rounds"))
			rounds = (unsigned)atoi(argv[i + 1]);
	}
	if (!vmm || !snap || !tmp || !rounds) {
		fprintf(stderr, "usage: %s --vmm VMM --snapshot DIR --tmp DIR "
			"[--rounds N]\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(ctlp, sizeof(ctlp), "%s/busy.ctl", tmp);
	snprintf(vsock_path, sizeof(vsock_path), "%s/busy.sock", tmp);
	snprintf(csock, sizeof(csock), "%s/clone.sock", tmp);
	snprintf(clone_ctl, sizeof(clone_ctl), "%s/clone.ctl", tmp);
	snprintf(clone_log, sizeof(clone_log), "%s/clone.log", tmp);
	snprintf(clone_console, sizeof(clone_console), "%s/clone.console", tmp);
	pid = spawn_vmm(snap, vsock_path, ctlp);
	for (int i = 0; i < 500 && fd < 0; i++) {
		fd = unix_connect(ctlp);
		if (fd < 0)
			poll(NULL, 0, 10);
	}
	if (fd < 0) {
		fprintf(stderr, "FAIL: no control socket\n");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return 1;
	}
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, storm_invoke, (void *)i);
	for (unsigned i = 4; i < 6; i++)
		pthread_create(&th[i], NULL, storm_churn, NULL);
	srand((unsigned)getpid());
	for (unsigned r = 0; r < rounds; r++) {
		unsigned held, rx_avail;

		poll(NULL, 0, 5 + rand() % 25);
		snprintf(dir, sizeof(dir), "snapshot %s/busy.%u\n", tmp, r);
		if (ctl(fd, "pause\n", reply, sizeof(reply)) < 0 ||
		    strncmp(reply, "OK paused", 9) ||
		    ctl(fd, dir, reply, sizeof(reply)) < 0 ||
		    strncmp(reply, "OK snapshot", 11) ||
		    ctl(fd, "resume\n", reply, sizeof(reply)) < 0) {
			fprintf(stderr, "FAIL: round %u: '%s'\n", r, reply);
			bad++;
			break;
		}
		snprintf(dir, sizeof(dir), "%s/busy.%u", tmp, r);
		if (held_chains(dir, &held, &rx_avail, err, sizeof(err)) < 0) {
			fprintf(stderr, "FAIL: round %u: %s\n", r, err);
			bad++;
			continue;
		}
		total_held += held;
		if (held)
			printf("snapshot %u: %u chain(s) taken by the device and "
			       "not returned (rx buffers left for the device: "
			       "%u)\n", r, held, rx_avail);
	}
	atomic_store(&stop_storm, true);
	for (unsigned i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	ctl(fd, "stop\n", reply, sizeof(reply));
	close(fd);
	waitpid(pid, NULL, 0);

	for (unsigned r = 0; r < rounds; r++) {
		struct inv_result res;
		char msg[32];
		int st = 0;
		pid_t c;
		int len = snprintf(msg, sizeof(msg), "clone %u", r);

		snprintf(dir, sizeof(dir), "%s/busy.%u", tmp, r);
		unlink(csock);
		unlink(clone_ctl);
		c = spawn_vmm(dir, csock, NULL);
		ember_invoke(csock, EMBER_INV_VSOCK_PORT, msg, (size_t)len, 15000,
			     &res);
		if (res.status == EMBER_INVOKE_OK && res.len == (size_t)len &&
		    !memcmp(res.payload, msg, res.len))
			clones_ok++;
		else {
			fprintf(stderr, "FAIL: clone of snapshot %u: %s\n", r,
				res.msg);
			clone_report();
			if (waitpid(c, &st, WNOHANG) == c) {
				fprintf(stderr, "  clone exited: status 0x%x\n",
					st);
				c = 0;
			}
		}
		inv_result_free(&res);
		if (c > 0) {
			kill(c, SIGKILL);
			waitpid(c, NULL, 0);
		}
	}
	printf("%u snapshots under a storm (%u invocations served, %u failed "
	       "meanwhile): %u chains held across them; %u of %u clones "
	       "served\n", rounds, atomic_load(&storm_ok),
	       atomic_load(&storm_fail), total_held, clones_ok, rounds);
	if (total_held)
		fprintf(stderr, "FAIL: snapshots lost %u rx buffers\n", total_held);
	return bad || total_held || clones_ok != rounds ? 1 : 0;
}
