/*
 * emberd.c - Ember's host agent: main(), start-up and shutdown.
 *
 * Start-up, in order: settings (config.c); the state and runtime
 * directories and an exclusive lock on the state directory (one emberd per
 * state); VMM processes a crashed predecessor left (vmmproc.c); the
 * database (db.c) and the admin token (auth.c); the scheduler and its
 * shell pool (sched.c); deploy workers and the recovery of function
 * versions (functions.c); last the HTTP server (server.c, api.c), so that
 * nothing is answered before everything behind it is ready.
 *
 * Shutdown on SIGTERM or SIGINT, in order: stop accepting connections;
 * let in-flight invocations finish (--shutdown-grace); stop every VM; stop
 * the HTTP threads, the deploy workers and the scheduler; close the
 * database. Nothing is left behind: no process, no socket, no pid file.
 */
#define LOG_MOD "emberd"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/api.h"
#include "agent/auth.h"
#include "agent/config.h"
#include "agent/confine.h"
#include "agent/db.h"
#include "agent/elog.h"
#include "agent/functions.h"
#include "agent/meter.h"
#include "agent/meter_api.h"
#include "agent/sched.h"
#include "agent/server.h"
#include "agent/vmmproc.h"
#include "log.h"

enum {
	EXIT_USAGE = 64,
	EXIT_UNAVAILABLE = 69,
	EXIT_SOFTWARE = 70,
	EXIT_CANTCREAT = 73,
};

/* A daemon may be started with 0, 1 or 2 closed; a socket that landed on
 * one of them would be written to by accident. */
static void ensure_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 &&
		    open("/dev/null", fd ? O_WRONLY : O_RDONLY) < 0)
			exit(EXIT_SOFTWARE);
}

static void exe_dir(char *buf, size_t cap)
{
	ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
	char *slash;

	if (n <= 0) {
		snprintf(buf, cap, ".");
		return;
	}
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash && slash != buf)
		*slash = '\0';
}

/* The memory budget when none is configured: three quarters of the
 * host's RAM. */
static uint64_t default_budget_mib(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);

	if (pages <= 0 || size <= 0)
		return 0;
	return (uint64_t)pages * (uint64_t)size / 4 * 3 >> 20;
}

/* Three fds per instance (control, vsock, pidfd): raise the soft limit
 * toward `want` (the hard limit bounds it). */
static void raise_nofile(unsigned want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		log_warn_errno("setrlimit(RLIMIT_NOFILE)");
}

/* An exclusive lock on STATE/lock for as long as emberd runs. */
static int lock_state(const char *state_dir)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/lock", state_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "emberd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "emberd: %s is in use by another emberd\n",
			state_dir);
		close(fd);
		return -1;
	}
	return fd;
}

static int make_dirs(const struct agent_config *c)
{
	char path[PATH_MAX];
	int ret;

	ret = util_mkdir_p(c->state_dir, 0700);
	if (!ret)
		ret = util_mkdir_p(c->runtime_dir, 0755);
	if (!ret) {
		snprintf(path, sizeof(path), "%s/vmm", c->runtime_dir);
		ret = util_mkdir_p(path, 0700);
	}
	if (ret)
		fprintf(stderr, "emberd: creating %s or %s: %s\n",
			c->state_dir, c->runtime_dir, strerror(-ret));
	return ret;
}

static void write_pid_file(const struct agent_config *c, char *path,
			   size_t cap)
{
	FILE *f;

	snprintf(path, cap, "%s/emberd.pid", c->runtime_dir);
	f = fopen(path, "we");
	if (f) {
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
}

int main(int argc, char **argv)
{
	char dir[PATH_MAX], err[512], path[PATH_MAX], pid_path[PATH_MAX];
	struct agent_config cfg;
	struct auth auth;
	struct api api = { 0 };
	struct db *db = NULL;
	struct sched *sched = NULL;
	struct fns *fns = NULL;
	struct meter *meter = NULL;
	struct sched_hooks hooks = { 0 };
	struct confine *confine = NULL;
	char confined[256] = "";
	struct server *srv = NULL;
	const struct http_route *routes;
	size_t nr_routes;
	sigset_t sigs;
	unsigned orphans = 0;
	bool created;
	int ret, lock_fd, status = EXIT_SOFTWARE, sig;

	ensure_std_fds();
	exe_dir(dir, sizeof(dir));
	ret = config_load(&cfg, argc, argv, dir);
	if (ret)
		return ret > 0 ? 0 : EXIT_USAGE;
	routes = api_routes(&nr_routes);
	if (cfg.print_routes) {
		server_print_routes(routes, nr_routes);
		config_free(&cfg);
		return 0;
	}
	if (cfg.listen) {
		bool loopback;

		if (server_check_listen(cfg.listen, &loopback)) {
			fprintf(stderr, "emberd: --listen %s: expected ADDR:PORT "
				"with a numeric IPv4 address, or [IPv6]:PORT\n",
				cfg.listen);
			config_free(&cfg);
			return EXIT_USAGE;
		}
		if (!loopback && !cfg.tls_cert) {
			fprintf(stderr, "emberd: --listen %s is not a loopback "
				"address: tokens would cross the network in the "
				"clear; give --tls-cert and --tls-key\n",
				cfg.listen);
			config_free(&cfg);
			return EXIT_USAGE;
		}
	}
	ret = elog_open(cfg.log_file, cfg.log_format &&
					       !strcmp(cfg.log_format, "text") ?
				       ELOG_TEXT : ELOG_JSON);
	if (ret) {
		fprintf(stderr, "emberd: --log-file %s: %s\n", cfg.log_file,
			strerror(-ret));
		config_free(&cfg);
		return EXIT_CANTCREAT;
	}
	ember_log_set_level(cfg.verbose >= 2 ? EMBER_LOG_DEBUG :
			    cfg.verbose == 1 ? EMBER_LOG_INFO : EMBER_LOG_WARN);

	/* Signals: SIGTERM and SIGINT are taken by sigwait() below, in this
	 * thread only (every thread started later inherits the mask);
	 * SIGPIPE never kills emberd (a client that went away is an error
	 * return). */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	raise_nofile(cfg.max_open_files);
	if (make_dirs(&cfg)) {
		config_free(&cfg);
		return EXIT_CANTCREAT;
	}
	lock_fd = lock_state(cfg.state_dir);
	if (lock_fd < 0) {
		config_free(&cfg);
		return EXIT_UNAVAILABLE;
	}
	ret = vmmproc_reap_orphans(cfg.runtime_dir, &orphans);
	if (ret)
		log_warn("looking for VMM processes left behind: %s",
			 strerror(-ret));

	snprintf(path, sizeof(path), "%s/ember.db", cfg.state_dir);
	db = db_open(path, err, sizeof(err));
	if (!db) {
		fprintf(stderr, "emberd: %s\n", err);
		goto out;
	}
	if (auth_init(&auth, db, cfg.state_dir, &created, err, sizeof(err))) {
		fprintf(stderr, "emberd: admin token: %s\n", err);
		goto out;
	}
	if (created)
		elog_event(LOG_MOD, "admin_token", NULL, "first start: the admin "
			   "token is in %s/%s (mode 0600)", cfg.state_dir,
			   AUTH_ADMIN_FILE);
	if (!cfg.no_meter) {
		/* Before the scheduler: the journal a crash left is replayed
		 * into the ledger before any new invocation is recorded. */
		char jpath[PATH_MAX];
		struct meter_config mc = {
			.db_path = path,
			.journal_path = jpath,
			.batch_ms = cfg.ledger_batch_ms,
			.log_invocation_bytes = cfg.log_invocation_bytes,
			.logs_per_function = cfg.logs_per_function,
			.logs_retention_s = cfg.logs_retention_s,
			.bill_init = cfg.bill_init,
			.metrics_max_series = cfg.metrics_max_series,
		};
		size_t replayed = 0;

		snprintf(jpath, sizeof(jpath), "%s/ledger.journal",
			 cfg.state_dir);
		meter = meter_create(&mc, &replayed, err, sizeof(err));
		if (!meter) {
			fprintf(stderr, "emberd: ledger: %s\n", err);
			goto out;
		}
		hooks.ctx = meter;
		hooks.finished = meter_api_finished;
	}

	{
		/* Before the scheduler, whose pool thread spawns the first
		 * shells through these hooks. */
		struct confine_config cc = {
			.vmm = cfg.vmm,
			.runtime_dir = cfg.runtime_dir,
			.state_dir = cfg.state_dir,
			.jail = !cfg.no_jail,
			.cgroups = !cfg.no_cgroups,
			.seccomp = !cfg.no_seccomp,
			.uid_base = cfg.jail_uid_base,
			.uid_count = cfg.jail_uid_count,
			.cgroup_name = cfg.cgroup_name,
			.cgroup_version = (int)cfg.cgroup_version,
			.tenant_cpu_weight = cfg.tenant_cpu_weight,
			.tenant_cpu_max_pct = cfg.tenant_cpu_max_pct,
			.tenant_pids_max = cfg.tenant_pids_max,
			.vm_pids_max = cfg.vm_pids_max,
			.vm_overhead_mib = cfg.vm_overhead_mib,
			.cgroup_move_sync = cfg.cgroup_move_sync,
		};

		confine = confine_create(&cc, err, sizeof(err));
		if (!confine) {
			if (errno == ENOTSUP)
				status = EXIT_USAGE;
			fprintf(stderr, "emberd: confinement: %s\n(--no-jail, "
				"--no-cgroups and --no-seccomp turn its parts "
				"off, for debugging)\n",
				err);
			goto out;
		}
		confine_hooks(confine, &hooks);
		confine_describe(confine, confined, sizeof(confined));
	}
	{
		struct sched_config sc = {
			.vmm = cfg.vmm,
			.runtime_dir = cfg.runtime_dir,
			.pool_min = cfg.pool_size,
			.pool_max = cfg.pool_max,
			.queue_max = cfg.queue_max,
			.queue_wait_ms = cfg.queue_wait_ms,
			.restore_timeout_ms = cfg.restore_timeout_ms,
			.idle_ttl_ms = cfg.idle_ttl_ms,
			.ping_interval_ms = cfg.ping_interval_s * 1000,
			.memory_budget_mib = cfg.memory_budget_mib ?
				cfg.memory_budget_mib : default_budget_mib(),
			.tenant_default = {
				.instances = cfg.tenant_instances,
				.memory_mib = cfg.tenant_memory_mib,
				.concurrency = cfg.tenant_concurrency,
			},
			.hooks = &hooks,
		};

		sched = sched_create(&sc, err, sizeof(err));
		if (!sched) {
			fprintf(stderr, "emberd: scheduler: %s\n", err);
			goto out;
		}
	}
	{
		struct fns_config fc = {
			.state_dir = cfg.state_dir,
			.runtime_dir = cfg.runtime_dir,
			.tools = {
				.vmm = cfg.vmm,
				.micro = cfg.micro,
				.lua_handler = cfg.lua_handler,
				.python_handler = cfg.python_handler,
				.python_home = cfg.python_home,
				.linux_kernel = cfg.linux_kernel,
				.guest_init = cfg.guest_init,
				.linux_image = cfg.linux_image_tool,
				.seccomp = !cfg.no_seccomp,
			},
			.max_archive_bytes = cfg.max_archive_bytes,
			.max_files = cfg.max_files,
			.max_tree_bytes = cfg.max_tree_bytes,
			.workers = cfg.deploy_workers,
			.queue_max = cfg.deploy_queue,
		};

		fns = fns_create(&fc, db, sched, err, sizeof(err));
		if (!fns || fns_recover(fns, err, sizeof(err))) {
			fprintf(stderr, "emberd: functions: %s\n", err);
			goto out;
		}
	}
	api.db = db;
	api.sched = sched;
	api.fns = fns;
	api.meter = meter;
	if (api_load_limits(&api)) {
		fprintf(stderr, "emberd: reading tenants' limits failed\n");
		goto out;
	}
	{
		char tmp[PATH_MAX];
		struct server_config svc = {
			.socket_path = cfg.socket,
			.socket_mode = cfg.socket_mode,
			.listen = cfg.listen,
			.tls_cert = cfg.tls_cert,
			.tls_key = cfg.tls_key,
			.threads = cfg.http_threads,
			.conn_limit = cfg.http_connections,
			.per_ip_limit = cfg.http_per_ip,
			.timeout_s = cfg.http_timeout_s,
			.header_limit = cfg.http_header_bytes,
			.file_body_limit = cfg.max_archive_bytes,
			.tmp_dir = tmp,
		};

		snprintf(tmp, sizeof(tmp), "%s/staging", cfg.state_dir);
		srv = server_start(&svc, routes, nr_routes, &api, &auth, err,
				   sizeof(err));
		if (!srv) {
			fprintf(stderr, "emberd: %s\n", err);
			status = EXIT_UNAVAILABLE;
			goto out;
		}
	}
	write_pid_file(&cfg, pid_path, sizeof(pid_path));
	elog_event(LOG_MOD, "start", NULL,
		   "ready: socket %s%s%s, state %s, pool of %u shells%s%s; %s",
		   cfg.socket, cfg.listen ? ", listening on " : "",
		   cfg.listen ? cfg.listen : "", cfg.state_dir, cfg.pool_size,
		   orphans ? " (ended VMMs a previous emberd left)" : "",
		   meter ? "" : ", metering off", confined);

	do {
		if (sigwait(&sigs, &sig))
			sig = SIGTERM;
		if (sig == SIGHUP && elog_reopen())
			log_warn("SIGHUP: could not reopen %s; logging on to "
				 "the old file", cfg.log_file);
		else if (sig == SIGHUP)
			log_info("SIGHUP: log reopened (settings need a "
				 "restart)");
	} while (sig == SIGHUP);

	log_msg(EMBER_LOG_WARN, LOG_MOD, 0, "%s: draining (grace %u s)",
		strsignal(sig), cfg.shutdown_grace_s);
	atomic_store(&api.draining, true);
	server_quiesce(srv);
	sched_drain(sched, cfg.shutdown_grace_s * 1000);
	/* Every invocation has its answer now; let the HTTP threads send
	 * them before they stop. */
	for (int i = 0; i < 300 && server_suspended(srv); i++)
		usleep(10000);
	server_stop(srv);
	srv = NULL;
	unlink(pid_path);
	status = 0;
out:
	server_stop(srv);
	fns_destroy(fns);
	sched_destroy(sched);
	/* No VMM left: remove the cgroups and the jail's mount point. */
	confine_destroy(confine);
	/* After the scheduler: no invocation finishes any more; the last
	 * batch is committed here. */
	meter_destroy(meter);
	db_close(db);
	close(lock_fd);
	config_free(&cfg);
	if (!status)
		elog_event(LOG_MOD, "stop", NULL, "stopped");
	elog_close();
	return status;
}
