/*
 * control.c - the VM control socket: a Unix stream socket that takes one
 * command per line and answers one line.
 *
 *   status          -> "OK running|paused|stopping ready=0|1"
 *   pause           -> "OK paused"
 *   resume          -> "OK running"
 *   snapshot DIR    -> "OK snapshot DIR" (the VM must be paused)
 *   workingset      -> "OK workingset" (restored VMs: records the pages
 *                      touched since the restore into the snapshot's
 *                      workingset file, for --prefetch on later restores)
 *   stop            -> "OK stopping"
 *   anything else   -> "ERR <reason>"
 *
 * Served by one thread of its own, one client at a time (the controller is
 * the host agent or a test, not a tenant). Lines are capped at 4 KiB; a
 * longer line is refused and the connection closed.
 */
#define LOG_MOD "control"
#include "vm.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

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

static void reply(int fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void reply(int fd, const char *fmt, ...)
{
	char line[CONTROL_LINE_MAX + 64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL) < 0)
		log_warn_errno("control reply");
}

static void run_command(struct ember_vm *vm, int fd, char *cmd)
{
	char err[512];

	if (!strcmp(cmd, "status")) {
		const char *state;
		int ready;

		/* Never hold the VM lock across a socket write. */
		pthread_mutex_lock(&vm->lock);
		state = vm->stopping ? "stopping" :
			vm->pause_requested ? "paused" : "running";
		ready = vm->guest_ready;
		pthread_mutex_unlock(&vm->lock);
		reply(fd, "OK %s ready=%d", state, ready);
	} else if (!strcmp(cmd, "pause")) {
		if (ember_vm_pause(vm) < 0)
			reply(fd, "ERR the VM is stopping");
		else
			reply(fd, "OK paused");
	} else if (!strcmp(cmd, "resume")) {
		ember_vm_resume(vm);
		reply(fd, "OK running");
	} else if (!strncmp(cmd, "snapshot ", 9) && cmd[9]) {
		if (ember_vm_snapshot(vm, cmd + 9, err, sizeof(err)) < 0)
			reply(fd, "ERR %s", err);
		else
			reply(fd, "OK snapshot %s", cmd + 9);
	} else if (!strcmp(cmd, "workingset")) {
		if (ember_vm_record_workingset(vm, err, sizeof(err)) < 0)
			reply(fd, "ERR %s", err);
		else
			reply(fd, "OK workingset");
	} else if (!strcmp(cmd, "stop")) {
		reply(fd, "OK stopping");
		ember_vm_stop(vm);
	} else {
		reply(fd, "ERR unknown command (status, pause, resume, "
			  "snapshot DIR, workingset, stop)");
	}
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
			reply(fd, "ERR line longer than %d bytes",
			      CONTROL_LINE_MAX);
			return;
		}
	}
}

static void *control_thread(void *arg)
{
	struct ember_control *c = arg;

	pthread_setname_np(pthread_self(), "control");
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
	 * returns at once). */
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	if (c->client_fd >= 0)
		shutdown(c->client_fd, SHUT_RDWR);
	pthread_mutex_unlock(&c->lock);
	shutdown(c->listen_fd, SHUT_RDWR);
	pthread_join(c->thread, NULL);
	close(c->listen_fd);
	pthread_mutex_destroy(&c->lock);
	unlink(c->path);
	free(c->path);
	free(c);
}
