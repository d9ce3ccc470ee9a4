/*
 * control.c - controlling a started VM: the command interpreter both
 * control sockets share (control.h), and the stream socket of
 * `ember-vmm --control PATH` (ember_control_start): a Unix stream socket
 * that takes one command per line and answers one line, served by one
 * thread of its own, one client at a time (the controller is the host
 * agent or a test, not a tenant). Lines are capped at 4 KiB; a longer line
 * is refused and the connection closed. Protocol: docs/shell.md.
 */
#define LOG_MOD "control"
#include "vm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "log.h"

#define CONTROL_LINE_MAX 4096

struct ember_control {
	struct ember_vm *vm;
	int listen_fd;
	char *path;
	pthread_t thread;
	pthread_mutex_t lock;  /* protects client_fd and stopping */
	int client_fd;         /* the connection being served, or -1 */
	bool stopping;
};

/* ------------------------------------------------------------- commands */

static void cmd_snapshot(struct ember_vm *vm, struct ctl_args *a,
			 const int *fds, unsigned nfds, char *reply,
			 size_t len)
{
	char err[512];
	int fd, ret;

	ret = ctl_fd(a, "dir", fds, nfds, &fd, err, sizeof(err));
	if (ret == 0 && a->n == 1 && !a->a[0].val) {
		/* The stream socket's form: snapshot DIR (a path). */
		const char *dir = a->a[0].key;

		a->a[0].used = true;
		if (ember_vm_snapshot(vm, dir, err, sizeof(err)) < 0)
			snprintf(reply, len, "ERR %s", err);
		else
			snprintf(reply, len, "OK snapshot %s", dir);
		return;
	}
	if (ret == 0)
		ret = errbuf_fail(err, sizeof(err), -EINVAL, "snapshot needs "
				  "dir=I (a directory fd) or a path");
	if (ret > 0)
		ret = ctl_check_used(a, err, sizeof(err));
	if (ret >= 0)
		ret = ember_vm_snapshot_fd(vm, fd, err, sizeof(err));
	if (ret < 0)
		snprintf(reply, len, "ERR %s", err);
	else
		snprintf(reply, len, "OK snapshot");
}

static void cmd_workingset(struct ember_vm *vm, struct ctl_args *a,
			   const int *fds, unsigned nfds, char *reply,
			   size_t len)
{
	char err[512];
	int fd, dirty, ret;

	ret = ctl_fd(a, "fd", fds, nfds, &fd, err, sizeof(err));
	if (ret >= 0)
		ret = ctl_fd(a, "dirty", fds, nfds, &dirty, err, sizeof(err));
	if (ret >= 0)
		ret = ctl_check_used(a, err, sizeof(err));
	if (ret >= 0)
		ret = fd >= 0 ? ember_vm_record_workingset_fd(vm, fd, dirty, err,
							      sizeof(err)) :
				dirty >= 0 ? errbuf_fail(err, sizeof(err),
							 -EINVAL, "dirty= "
							 "needs fd=") :
					     ember_vm_record_workingset(vm, err,
									sizeof(err));
	if (ret < 0)
		snprintf(reply, len, "ERR %s", err);
	else
		snprintf(reply, len, "OK workingset");
}

/* Diagnostics: where each vCPU is (tests/integration/linux-smp tells a
 * secondary CPU stuck in its real-mode trampoline by this). The vCPUs are
 * parked for the look, and resumed unless they were paused already. */
static void cmd_vcpus(struct ember_vm *vm, char *reply, size_t len)
{
	struct ember_vm_status st;
	size_t n;

	ember_vm_get_status(vm, &st);
	if (st.state != EMBER_VM_PAUSED && ember_vm_pause(vm) < 0) {
		snprintf(reply, len, "ERR the VM is stopping");
		return;
	}
	n = (size_t)snprintf(reply, len, "OK");
	for (unsigned i = 0; i < vm->nr_vcpus && n < len; i++) {
		char one[160];

		if (vcpu_describe(&vm->vcpu[i], one, sizeof(one)) < 0)
			snprintf(one, sizeof(one), "vcpu%u unknown", i);
		n += (size_t)snprintf(reply + n, len - n, "%s%s", i ? "; " : " ",
				      one);
	}
	if (st.state != EMBER_VM_PAUSED)
		ember_vm_resume(vm);
}

void control_exec(struct ember_vm *vm, char *line, const int *fds,
		  unsigned nfds, char *reply, size_t len)
{
	struct ember_vm_status st;
	struct ctl_args a;
	char err[512];
	const char *cmd;

	if (ctl_parse(line, &a, err, sizeof(err)) < 0) {
		snprintf(reply, len, "ERR %s", err);
		return;
	}
	cmd = a.cmd;
	if (!strcmp(cmd, "snapshot")) {
		cmd_snapshot(vm, &a, fds, nfds, reply, len);
		return;
	}
	if (!strcmp(cmd, "workingset")) {
		cmd_workingset(vm, &a, fds, nfds, reply, len);
		return;
	}
	if (a.n && (!strcmp(cmd, "status") || !strcmp(cmd, "pause") ||
		    !strcmp(cmd, "resume") || !strcmp(cmd, "ping") ||
		    !strcmp(cmd, "vcpus") || !strcmp(cmd, "stop"))) {
		snprintf(reply, len, "ERR %s takes no arguments", cmd);
		return;
	}
	if (!strcmp(cmd, "status")) {
		ember_vm_get_status(vm, &st);
		snprintf(reply, len, "OK %s ready=%d",
			 ember_vm_state_name(st.state), st.guest_ready);
	} else if (!strcmp(cmd, "pause")) {
		if (ember_vm_pause(vm) < 0)
			snprintf(reply, len, "ERR the VM is stopping");
		else
			snprintf(reply, len, "OK paused");
	} else if (!strcmp(cmd, "resume")) {
		ember_vm_resume(vm);
		snprintf(reply, len, "OK running");
	} else if (!strcmp(cmd, "ping")) {
		snprintf(reply, len, "OK pong");
	} else if (!strcmp(cmd, "vcpus")) {
		cmd_vcpus(vm, reply, len);
	} else if (!strcmp(cmd, "stop")) {
		snprintf(reply, len, "OK stopping");
		ember_vm_stop(vm);
	} else {
		snprintf(reply, len, "ERR unknown command '%.64s' (status, "
			 "pause, resume, ping, vcpus, snapshot, workingset, "
			 "stop)", cmd);
	}
}

/* -------------------------------------------------------- stream socket */

static void reply(int fd, const char *line)
{
	char buf[CONTROL_LINE_MAX + 64];
	size_t n = strlen(line);

	if (n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	memcpy(buf, line, n);
	buf[n++] = '\n';
	if (send(fd, buf, n, MSG_NOSIGNAL) < 0)
		log_warn_errno("control reply");
}

static void run_command(struct ember_vm *vm, int fd, char *cmd)
{
	char out[CONTROL_LINE_MAX];

	control_exec(vm, cmd, NULL, 0, out, sizeof(out));
	reply(fd, out);
}

static void serve_client(struct ember_vm *vm, int fd)
{
	char buf[CONTROL_LINE_MAX + 1];
	size_t len = 0;

	for (;;) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		char *nl;

		if (n <= 0)
			return;
		len += (size_t)n;
		buf[len] = '\0';
		while ((nl = memchr(buf, '\n', len))) {
			*nl = '\0';
			if (nl > buf && nl[-1] == '\r')
				nl[-1] = '\0';
			run_command(vm, fd, buf);
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len);
		}
		if (len == sizeof(buf) - 1) {
			reply(fd, "ERR line longer than 4096 bytes");
			return;
		}
	}
}

static void *control_thread(void *arg)
{
	struct ember_control *c = arg;

	pthread_setname_np(pthread_self(), "control");
	ember_thread_serving(EMBER_THREAD_CONTROL); /* setup ends here */
	for (;;) {
		int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL; /* shut down by ember_control_stop() */
		}
		pthread_mutex_lock(&c->lock);
		if (c->stopping) {
			pthread_mutex_unlock(&c->lock);
			close(fd);
			return NULL;
		}
		c->client_fd = fd;
		pthread_mutex_unlock(&c->lock);
		serve_client(c->vm, fd);
		pthread_mutex_lock(&c->lock);
		c->client_fd = -1;
		pthread_mutex_unlock(&c->lock);
		close(fd);
	}
}

struct ember_control *ember_control_start(struct ember_vm *vm,
					  const char *path, int *ret)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct ember_control *c;
	struct stat st;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		*ret = -ENAMETOOLONG;
		return NULL;
	}
	/* Replace a stale socket, never any other kind of file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			*ret = -EEXIST;
			return NULL;
		}
		unlink(path);
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		*ret = -ENOMEM;
		return NULL;
	}
	c->vm = vm;
	c->client_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	c->path = strdup(path);
	strcpy(addr.sun_path, path);
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!c->path || c->listen_fd < 0 ||
	    bind(c->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(c->listen_fd, 4) < 0) {
		*ret = -errno;
		goto err;
	}
	*ret = -pthread_create(&c->thread, NULL, control_thread, c);
	if (*ret)
		goto err_unlink;
	return c;

err_unlink:
	unlink(path);
err:
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	pthread_mutex_destroy(&c->lock);
	free(c->path);
	free(c);
	return NULL;
}

void ember_control_stop(struct ember_control *c)
{
	if (!c)
		return;
	/* Wake the thread wherever it blocks (accept, or recv on a client)
	 * by shutting the sockets down; it then returns on its own. A command
	 * in progress finishes first (the VM is stopped by now, so a pause
	 * returns at once). Only the client's read side: the command being
	 * run may be the "stop" that brought us here, and its "OK stopping"
	 * must still reach the client (shutting both sides lost it now and
	 * then: snapshot-plain's "stop" got no reply). */
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	if (c->client_fd >= 0)
		shutdown(c->client_fd, SHUT_RD);
	pthread_mutex_unlock(&c->lock);
	shutdown(c->listen_fd, SHUT_RDWR);
	pthread_join(c->thread, NULL);
	close(c->listen_fd);
	pthread_mutex_destroy(&c->lock);
	unlink(c->path);
	free(c->path);
	free(c);
}
