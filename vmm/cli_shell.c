/*
 * cli_shell.c - `ember-vmm --shell`: a pooled VMM that holds a VM shell
 * (KVM VM and vCPUs created, threads ready) and restores a snapshot when
 * its controller says so, everything travelling as file descriptors over
 * a SOCK_SEQPACKET control socket. Protocol: docs/shell.md; the client is
 * ember/shellctl.h.
 *
 * Threads: main creates the shell, starts the control thread and waits
 * (shell_main); once a restore succeeded it is the VM's owner, in
 * ember_vm_wait(), and sends the EXIT line when the VM ends. The control
 * thread (control_thread) reads commands, performs the restore, and
 * serves the running VM's commands through control_exec(). Statuses are
 * returned to main(), which alone exits.
 */
#define LOG_MOD "shell"
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "ember/shellctl.h"
#include "log.h"

enum srv_phase {
	SRV_SERVING,    /* no VM yet */
	SRV_RUNNING,    /* restored and started: main owns the VM */
	SRV_DONE,       /* end without a running VM: `status` says how */
};

struct srv {
	const struct cli_shell_opts *o;
	struct ember_shell *sh;     /* until a restore consumes it */
	struct ember_vm *vm;        /* from the restore on */
	int listen_fd;              /* --control PATH, or -1 */
	int handoff_fd;             /* eventfd: phase changed (main polls) */
	pthread_mutex_t lock;       /* phase, status, client_fd, stopping */
	enum srv_phase phase;
	int status;                 /* SRV_DONE: the exit status */
	bool exit_line;             /* SRV_DONE: send an EXIT line too */
	bool restore_failed_start;  /* SRV_RUNNING after a failed start */
	bool restored;              /* control thread: CONTROL's turn */
	int client_fd;              /* the controller being served, or -1 */
	bool stopping;              /* main asks the control thread to end */
};

static void srv_set_phase(struct srv *s, enum srv_phase ph, int status)
{
	uint64_t one = 1;

	pthread_mutex_lock(&s->lock);
	s->phase = ph;
	s->status = status;
	pthread_mutex_unlock(&s->lock);
	if (write(s->handoff_fd, &one, sizeof(one)) < 0)
		log_warn_errno("handoff eventfd");
}

static bool srv_stopping(struct srv *s)
{
	bool v;

	pthread_mutex_lock(&s->lock);
	v = s->stopping;
	pthread_mutex_unlock(&s->lock);
	return v;
}

/* Checks that an attached fd is of the kind an argument wants. */
static int check_regular(int fd, const char *what, char *err, size_t len)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return errbuf_fail(err, len, -EINVAL, "%s: not a regular file",
				   what);
	return 0;
}

static int check_socket(int fd, char *err, size_t len)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return errbuf_fail(err, len, -EINVAL, "vsock: not a socket");
	return 0;
}

static int check_writable(int fd, const char *what, char *err, size_t len)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY)
		return errbuf_fail(err, len, -EINVAL, "%s: not open for "
				   "writing", what);
	return 0;
}

/*
 * restore state=I memory=J [vsock=K [vsock-connected]] [vsock-carry=C]
 *         [disk=D]...
 *         [workingset=L [workingset-dirty=W]] [serial=M] [prefetch]
 *         [timeout_ms=N]
 * Fills *r from the arguments and the attached fds. -EINVAL + reason.
 */
static int parse_restore(struct ctl_args *a, const int *fds, unsigned nfds,
			 struct ember_restore *r, char *err, size_t len)
{
	const char *d;
	uint64_t ms = 0;
	int vsock = -1, connected, ret;

	ember_restore_init(r);
	ret = ctl_fd(a, "state", fds, nfds, &r->state_fd, err, len);
	if (ret == 0)
		return errbuf_fail(err, len, -EINVAL, "restore needs state=I");
	if (ret > 0)
		ret = ctl_fd(a, "memory", fds, nfds, &r->memory_fd, err, len);
	if (ret == 0)
		return errbuf_fail(err, len, -EINVAL, "restore needs memory=J");
	if (ret > 0)
		ret = ctl_fd(a, "vsock", fds, nfds, &vsock, err, len);
	connected = ret >= 0 ? ctl_flag(a, "vsock-connected", err, len) : ret;
	if (connected < 0)
		return connected;
	if (connected && vsock < 0)
		return errbuf_fail(err, len, -EINVAL, "vsock-connected needs "
				   "vsock=K");
	if (connected)
		r->vsock_conn_fd = vsock;
	else
		r->vsock_listen_fd = vsock;
	ret = ctl_fd(a, "vsock-carry", fds, nfds, &r->vsock_carry_fd, err, len);
	if (ret >= 0)
		ret = ctl_fd(a, "workingset", fds, nfds, &r->workingset_fd, err,
			     len);
	if (ret >= 0)
		ret = ctl_fd(a, "workingset-dirty", fds, nfds,
			     &r->workingset_dirty_fd, err, len);
	if (ret >= 0)
		ret = ctl_fd(a, "serial", fds, nfds, &r->serial_fd, err, len);
	if (ret >= 0)
		ret = ctl_flag(a, "prefetch", err, len);
	if (ret < 0)
		return ret;
	r->prefetch = ret;
	ret = ctl_u64(a, "timeout_ms", 365ULL * 86400 * 1000, &ms, err, len);
	if (ret < 0)
		return ret;
	r->timeout_ms = ms;
	while ((d = ctl_get(a, "disk"))) {
		char *end;
		unsigned long i;

		errno = 0;
		i = strtoul(d, &end, 10);
		if (errno || end == d || *end || *d == '-' || i >= nfds)
			return errbuf_fail(err, len, -EINVAL, "disk=%s: not an "
					   "attached fd", d);
		if (r->nr_disks == EMBER_MAX_DISKS)
			return errbuf_fail(err, len, -EINVAL, "at most %d disks",
					   EMBER_MAX_DISKS);
		r->disk_fds[r->nr_disks++] = fds[i];
	}
	ret = ctl_check_used(a, err, len);
	if (ret < 0)
		return ret;
	if (r->prefetch && r->workingset_fd < 0)
		return errbuf_fail(err, len, -EINVAL, "prefetch needs "
				   "workingset=L");
	if (r->workingset_dirty_fd >= 0 && r->workingset_fd < 0)
		return errbuf_fail(err, len, -EINVAL, "workingset-dirty needs "
				   "workingset=L");
	ret = check_regular(r->state_fd, "state", err, len);
	if (!ret)
		ret = check_regular(r->memory_fd, "memory", err, len);
	if (!ret && r->workingset_fd >= 0)
		ret = check_regular(r->workingset_fd, "workingset", err, len);
	if (!ret && r->workingset_dirty_fd >= 0)
		ret = check_regular(r->workingset_dirty_fd, "workingset-dirty",
				    err, len);
	if (!ret && r->serial_fd >= 0)
		ret = check_writable(r->serial_fd, "serial", err, len);
	if (!ret && vsock >= 0)
		ret = check_socket(vsock, err, len);
	return ret;
}

/* The restore command: on success the VM runs and main owns it; on any
 * failure the process is to end (docs/shell.md: a failed restore is
 * final) with the status for what went wrong. */
static void do_restore(struct srv *s, struct ctl_args *a, const int *fds,
		       unsigned nfds, char *reply, size_t len)
{
	struct ember_restore r;
	struct ember_vm *vm;
	char err[1024];
	int ret;

	ret = parse_restore(a, fds, nfds, &r, err, sizeof(err));
	if (ret < 0) {
		snprintf(reply, len, "ERR %s", err);
		srv_set_phase(s, SRV_DONE, ST_USAGE);
		return;
	}
	r.cpu_template = s->o->cpu_template;
	vm = ember_shell_restore(s->sh, &r, &ret, err, sizeof(err));
	s->sh = NULL; /* consumed either way */
	if (!vm) {
		snprintf(reply, len, "ERR cannot restore: %s", err);
		srv_set_phase(s, SRV_DONE, cli_status_for_restore_error(ret));
		return;
	}
	s->vm = vm;
	cli_stop_on_signals(vm);
	ret = ember_vm_start(vm);
	s->restored = true; /* serve() says CONTROL once the reply is out */
	if (ret < 0) {
		snprintf(reply, len, "ERR cannot start the VM: %s",
			 strerror(-ret));
		s->restore_failed_start = true;
	} else {
		snprintf(reply, len, "OK restored");
	}
}

/* Commands before a restore. */
static void serve_shell(struct srv *s, char *line, const int *fds,
			unsigned nfds, char *reply, size_t len)
{
	struct ctl_args a;
	char err[512];

	if (ctl_parse(line, &a, err, sizeof(err)) < 0) {
		snprintf(reply, len, "ERR %s", err);
		return;
	}
	if (!strcmp(a.cmd, "restore")) {
		do_restore(s, &a, fds, nfds, reply, len);
	} else if (a.n) {
		snprintf(reply, len, "ERR %s: unknown argument '%s'", a.cmd,
			 a.a[0].key);
	} else if (!strcmp(a.cmd, "status")) {
		snprintf(reply, len, "OK shell ready=0");
	} else if (!strcmp(a.cmd, "ping")) {
		snprintf(reply, len, "OK pong");
	} else if (!strcmp(a.cmd, "stop")) {
		snprintf(reply, len, "OK stopping");
		pthread_mutex_lock(&s->lock);
		s->exit_line = true;
		pthread_mutex_unlock(&s->lock);
		srv_set_phase(s, SRV_DONE, ST_OK);
	} else {
		snprintf(reply, len, "ERR no VM yet: '%.64s' needs a restore "
			 "first (restore, status, ping, stop)", a.cmd);
	}
}

enum serve_end { END_PEER_CLOSED, END_STOPPING, END_DONE };

/* Serves one controller until it closes, main stops us, or the shell is
 * done without a VM. */
static enum serve_end serve(struct srv *s, int fd)
{
	char line[EMBER_SHELLCTL_LINE_MAX + 1], reply[EMBER_SHELLCTL_LINE_MAX];

	for (;;) {
		int fds[EMBER_SHELLCTL_MAX_FDS];
		unsigned nfds = EMBER_SHELLCTL_MAX_FDS;
		enum srv_phase ph;
		int n;

		n = ember_shellctl_recv(fd, line, sizeof(line), fds, &nfds, -1);
		if (srv_stopping(s)) {
			for (unsigned i = 0; n >= 0 && i < nfds; i++)
				close(fds[i]);
			return END_STOPPING;
		}
		if (n == -EPIPE || n == -ECONNRESET)
			return END_PEER_CLOSED;
		if (n == -EMSGSIZE || n == -EPROTO) {
			ember_shellctl_send(fd, n == -EPROTO ?
					    "ERR a NUL byte in the line" :
					    "ERR line over 4096 bytes or more "
					    "than 16 file descriptors", NULL, 0);
			continue;
		}
		if (n < 0) {
			log_err("control socket: %s", strerror(-n));
			return END_PEER_CLOSED;
		}
		if (s->vm)
			control_exec(s->vm, line, fds, nfds, reply,
				     sizeof(reply));
		else
			serve_shell(s, line, fds, nfds, reply, sizeof(reply));
		/* Every fd was only borrowed: libember dups what it keeps. */
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		if (ember_shellctl_send(fd, reply, NULL, 0) < 0)
			log_warn("control reply not sent");
		/* The restore is done: from here the thread serves the VM. Said
		 * after the reply, so that loading the control thread's seccomp
		 * filter (~0.1 ms here) is off the cold start's path; nothing
		 * but that reply happened since the restore. */
		if (s->restored) {
			s->restored = false;
			ember_thread_serving(EMBER_THREAD_CONTROL);
		}
		pthread_mutex_lock(&s->lock);
		ph = s->phase;
		pthread_mutex_unlock(&s->lock);
		if (ph == SRV_DONE)
			return END_DONE;
		/* The OK went out before main may send EXIT. */
		if (s->vm && ph == SRV_SERVING)
			srv_set_phase(s, SRV_RUNNING, 0);
	}
}

static int send_ready(int fd)
{
	char line[64];

	snprintf(line, sizeof(line), "READY shell pid=%d", (int)getpid());
	return ember_shellctl_send(fd, line, NULL, 0);
}

/* The control thread: every command comes through here. */
static void *control_thread(void *arg)
{
	struct srv *s = arg;

	pthread_setname_np(pthread_self(), "control");
	/* Setup ends here; CONTROL follows in serve(), after the restore. */
	ember_thread_serving(EMBER_THREAD_RESTORE);
	for (;;) {
		enum serve_end end;
		int fd = s->o->control_fd;

		if (s->listen_fd >= 0) {
			fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0) {
				if (!srv_stopping(s) &&
				    (errno == EINTR || errno == ECONNABORTED))
					continue;
				if (!srv_stopping(s)) {
					log_err_errno("accept on the control "
						      "socket");
					srv_set_phase(s, SRV_DONE, ST_SOFTWARE);
				}
				return NULL;
			}
		}
		pthread_mutex_lock(&s->lock);
		if (s->stopping) {
			pthread_mutex_unlock(&s->lock);
			if (s->listen_fd >= 0)
				close(fd);
			return NULL;
		}
		s->client_fd = fd;
		pthread_mutex_unlock(&s->lock);
		end = send_ready(fd) < 0 ? END_PEER_CLOSED : serve(s, fd);
		if (end != END_PEER_CLOSED)
			return NULL; /* main closes client_fd */
		if (s->vm) {
			/* No VMM outlives its controller. */
			log_info("the controller closed the control socket: "
				 "stopping the VM");
			ember_vm_stop(s->vm);
			return NULL;
		}
		if (s->listen_fd < 0) {
			log_info("the controller closed the control socket");
			srv_set_phase(s, SRV_DONE, ST_OK);
			return NULL;
		}
		/* --control PATH before a restore: wait for the next one. */
		pthread_mutex_lock(&s->lock);
		s->client_fd = -1;
		pthread_mutex_unlock(&s->lock);
		close(fd);
	}
}

static int listen_seqpacket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		unlink(path);
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 4) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

/* Validates the inherited control socket. */
static int check_control_fd(int fd)
{
	int type = 0;
	socklen_t l = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0)
		return -errno;
	if (type != SOCK_SEQPACKET)
		return -EPROTOTYPE;
	/* Not for the children we never have, but a dup-safe habit. */
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	return 0;
}

/* Waits until the control thread hands over (a VM runs, or done). */
static enum srv_phase wait_handoff(struct srv *s)
{
	for (;;) {
		struct pollfd p = { .fd = s->handoff_fd, .events = POLLIN };
		enum srv_phase ph;
		uint64_t v;

		pthread_mutex_lock(&s->lock);
		ph = s->phase;
		pthread_mutex_unlock(&s->lock);
		if (ph != SRV_SERVING)
			return ph;
		if (poll(&p, 1, -1) > 0 && read(s->handoff_fd, &v, sizeof(v)) < 0)
			log_warn_errno("handoff eventfd");
	}
}

/* Stops the control thread, then says how the VM ended to the
 * controller, if one is there to hear it. */
static void finish(struct srv *s, pthread_t thread, const char *exit_line)
{
	int fd;

	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	fd = s->client_fd;
	if (fd >= 0)
		shutdown(fd, SHUT_RD);
	pthread_mutex_unlock(&s->lock);
	if (s->listen_fd >= 0)
		shutdown(s->listen_fd, SHUT_RDWR);
	pthread_join(thread, NULL);
	if (fd >= 0 && exit_line && ember_shellctl_send(fd, exit_line, NULL, 0) < 0)
		log_info("EXIT not delivered: the controller is gone");
	if (fd >= 0 && fd != s->o->control_fd)
		close(fd);
}

/* The shell could not be set up: says why on stderr and, as an ERR line,
 * to a controller already connected; returns `status`. */
static int setup_failed(const struct cli_shell_opts *o, int status,
			const char *what, const char *err)
{
	char line[EMBER_SHELLCTL_LINE_MAX + 1];

	fprintf(stderr, "ember-vmm: %s: %s\n", what, err);
	if (o->control_fd >= 0) {
		snprintf(line, sizeof(line), "ERR %.*s",
			 (int)(sizeof(line) - sizeof("ERR ")), err);
		ember_shellctl_send(o->control_fd, line, NULL, 0);
	}
	return status;
}

int cli_shell_main(const struct cli_shell_opts *o)
{
	struct srv s = { .o = o, .listen_fd = -1, .client_fd = -1 };
	char err[1024], line[EMBER_SHELLCTL_LINE_MAX];
	struct ember_exit ex;
	pthread_t thread;
	int ret, status;

	if (o->control_fd >= 0 && (ret = check_control_fd(o->control_fd)) < 0) {
		fprintf(stderr, "ember-vmm: --control-fd %d: %s\n", o->control_fd,
			ret == -EPROTOTYPE ? "not a SOCK_SEQPACKET socket" :
					     strerror(-ret));
		return ST_USAGE;
	}
	cli_stop_on_signals(NULL);
	s.sh = ember_shell_create(o->nr_cpus, o->irqchip, &ret, err,
				  sizeof(err));
	if (!s.sh)
		return setup_failed(o, cli_status_for_create_error(ret),
				    "cannot create the VM shell", err);
	if (o->mem_mib &&
	    (ret = ember_shell_reserve_memory(s.sh, o->mem_mib, err,
					      sizeof(err))) < 0) {
		ember_shell_destroy(s.sh);
		return setup_failed(o, ST_SOFTWARE,
				    "cannot map the shell's guest RAM", err);
	}
	if (!o->threads_at_restore &&
	    (ret = ember_shell_start_threads(s.sh, err, sizeof(err))) < 0) {
		ember_shell_destroy(s.sh);
		return setup_failed(o, ST_SOFTWARE,
				    "cannot start the shell's threads", err);
	}
	if (o->control_path) {
		s.listen_fd = listen_seqpacket(o->control_path);
		if (s.listen_fd < 0) {
			fprintf(stderr, "ember-vmm: cannot listen on '%s': %s\n",
				o->control_path, strerror(-s.listen_fd));
			ember_shell_destroy(s.sh);
			return ST_NOINPUT;
		}
	}
	s.handoff_fd = eventfd(0, EFD_CLOEXEC);
	pthread_mutex_init(&s.lock, NULL);
	ret = s.handoff_fd < 0 ? -errno :
		-pthread_create(&thread, NULL, control_thread, &s);
	if (ret < 0) {
		fprintf(stderr, "ember-vmm: cannot start the control thread: "
			"%s\n", strerror(-ret));
		status = ST_SOFTWARE;
		goto out;
	}
	ember_thread_serving(EMBER_THREAD_MAIN); /* setup ends here */
	if (wait_handoff(&s) == SRV_DONE) {
		status = s.status;
		finish(&s, thread, s.exit_line ?
		       "EXIT stopped status=0 stopped before a restore" : NULL);
		goto out;
	}
	/* The VM's owner from here: its end is ours to report. */
	ember_vm_wait(s.vm, &ex);
	status = s.restore_failed_start ? ST_SOFTWARE : cli_status_for_exit(&ex);
	snprintf(line, sizeof(line), "EXIT %s status=%d %s",
		 ember_exit_reason_name(ex.reason), status, ex.detail);
	finish(&s, thread, s.restore_failed_start ? NULL : line);
	/* The EXIT line told the controller; under --quiet (emberd's shells)
	 * the guest's own end is not an error of this process, and a line on
	 * stderr would land in the controller's log at a time that depends on
	 * who is faster: the controller killing us, or this printf. */
	if (status != ST_OK && ember_log_get_level() > EMBER_LOG_ERROR) {
		fprintf(stderr, "ember-vmm: %s: %s\n",
			ember_exit_reason_name(ex.reason), ex.detail);
		if (ex.registers[0])
			fprintf(stderr, "ember-vmm: registers: %s\n",
				ex.registers);
	}
	cli_stop_on_signals(NULL);
	ember_vm_destroy(s.vm);
out:
	ember_shell_destroy(s.sh);
	if (s.listen_fd >= 0) {
		close(s.listen_fd);
		unlink(o->control_path);
	}
	if (s.handoff_fd >= 0)
		close(s.handoff_fd);
	pthread_mutex_destroy(&s.lock);
	return status;
}
