/*
 * config.c - emberd's settings: see config.h.
 *
 * One table (opts[]) names every setting once: its key (the long option
 * and the config-file key), its type, where it lands in struct
 * agent_config and its range. The command line parser and the file parser
 * both go through set_opt(), so a key means the same thing in both.
 */
#include "agent/config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/cgroup.h"
#include "agent/util.h"

enum opt_type { T_STR, T_UINT, T_SIZE, T_MODE, T_FLAG, T_COUNT, T_SECONDS };

struct opt {
	const char *key;
	enum opt_type type;
	size_t off;
	uint64_t min, max;
	int short_name;
};

#define O(k, t, f, lo, hi, s)                                                 \
	{ k, t, offsetof(struct agent_config, f), lo, hi, s }
static const struct opt opts[] = {
	O("state", T_STR, state_dir, 0, 0, 's'),
	O("runtime", T_STR, runtime_dir, 0, 0, 'r'),
	O("socket", T_STR, socket, 0, 0, 0),
	O("socket-mode", T_MODE, socket_mode, 0, 0777, 0),
	O("listen", T_STR, listen, 0, 0, 'l'),
	O("tls-cert", T_STR, tls_cert, 0, 0, 0),
	O("tls-key", T_STR, tls_key, 0, 0, 0),
	O("vmm", T_STR, vmm, 0, 0, 0),
	O("micro", T_STR, micro, 0, 0, 0),
	O("lua-handler", T_STR, lua_handler, 0, 0, 0),
	O("python-handler", T_STR, python_handler, 0, 0, 0),
	O("python-home", T_STR, python_home, 0, 0, 0),
	O("linux-kernel", T_STR, linux_kernel, 0, 0, 0),
	O("guest-init", T_STR, guest_init, 0, 0, 0),
	O("linux-image-tool", T_STR, linux_image_tool, 0, 0, 0),
	O("http-threads", T_UINT, http_threads, 1, 64, 0),
	O("http-connections", T_UINT, http_connections, 1, 65536, 0),
	O("http-per-ip", T_UINT, http_per_ip, 0, 65536, 0),
	O("http-timeout", T_UINT, http_timeout_s, 1, 3600, 0),
	O("http-header-bytes", T_UINT, http_header_bytes, 4096, 1 << 20, 0),
	O("pool-size", T_UINT, pool_size, 0, 1024, 0),
	O("pool-max", T_UINT, pool_max, 0, 4096, 0),
	O("idle-ttl", T_SECONDS, idle_ttl_ms, 1, 86400000, 0),
	O("ping-interval", T_UINT, ping_interval_s, 1, 3600, 0),
	O("memory-budget-mib", T_SIZE, memory_budget_mib, 0, 1ull << 40, 0),
	O("tenant-instances", T_UINT, tenant_instances, 0, 1000000, 0),
	O("tenant-memory-mib", T_SIZE, tenant_memory_mib, 0, 1ull << 40, 0),
	O("tenant-concurrency", T_UINT, tenant_concurrency, 0, 1000000, 0),
	O("max-open-files", T_UINT, max_open_files, 256, 1 << 24, 0),
	O("queue-max", T_UINT, queue_max, 0, 100000, 0),
	O("queue-wait-ms", T_UINT, queue_wait_ms, 1, 900000, 0),
	O("restore-timeout-ms", T_UINT, restore_timeout_ms, 10, 600000, 0),
	O("deploy-workers", T_UINT, deploy_workers, 1, 64, 0),
	O("deploy-queue", T_UINT, deploy_queue, 1, 10000, 0),
	O("max-archive-bytes", T_SIZE, max_archive_bytes, 1024, 1ull << 40, 0),
	O("max-files", T_SIZE, max_files, 1, 10000000, 0),
	O("max-tree-bytes", T_SIZE, max_tree_bytes, 1024, 1ull << 40, 0),
	O("shutdown-grace", T_UINT, shutdown_grace_s, 0, 3600, 0),
	O("verbose", T_COUNT, verbose, 0, 0, 'v'),
	O("log-file", T_STR, log_file, 0, 0, 0),
	O("log-format", T_STR, log_format, 0, 0, 0),
	O("no-meter", T_FLAG, no_meter, 0, 0, 0),
	O("ledger-batch-ms", T_UINT, ledger_batch_ms, 1, 600000, 0),
	O("bill-init", T_FLAG, bill_init, 0, 0, 0),
	O("log-invocation-bytes", T_SIZE, log_invocation_bytes, 256, 16 << 20,
	  0),
	O("logs-per-function", T_SIZE, logs_per_function, 64 << 10,
	  1ull << 40, 0),
	O("logs-retention", T_UINT, logs_retention_s, 60, 3650u * 86400, 0),
	O("metrics-max-series", T_UINT, metrics_max_series, 1, 1000000, 0),
	O("routes", T_FLAG, print_routes, 0, 0, 0),
	O("no-jail", T_FLAG, no_jail, 0, 0, 0),
	O("no-cgroups", T_FLAG, no_cgroups, 0, 0, 0),
	O("no-seccomp", T_FLAG, no_seccomp, 0, 0, 0),
	O("jail-uid-base", T_UINT, jail_uid_base, 1, 2000000000, 0),
	O("jail-uid-count", T_UINT, jail_uid_count, 1, 1 << 20, 0),
	O("cgroup-name", T_STR, cgroup_name, 0, 0, 0),
	O("cgroup-version", T_UINT, cgroup_version, 0, 2, 0),
	O("tenant-cpu-weight", T_UINT, tenant_cpu_weight, 1, 10000, 0),
	O("tenant-cpu-max-pct", T_UINT, tenant_cpu_max_pct, 0, 100000, 0),
	O("tenant-pids-max", T_UINT, tenant_pids_max, 0, 1 << 22, 0),
	O("vm-pids-max", T_UINT, vm_pids_max, 0, 1 << 22, 0),
	O("vm-memory-overhead-mib", T_UINT, vm_overhead_mib, 0, 1 << 16, 0),
	O("cgroup-move-sync", T_FLAG, cgroup_move_sync, 0, 0, 0),
};
#undef O
#define NR_OPTS (sizeof(opts) / sizeof(opts[0]))

static const char usage_text[] =
"NAME\n"
"    emberd - Ember's host agent: tenants deploy functions and invoke them\n"
"    by name over an HTTP API, each invocation served by its own microVM\n"
"\n"
"SYNOPSIS\n"
"    emberd [--config FILE] [--state DIR] [--runtime DIR] [--socket PATH]\n"
"           [--listen ADDR:PORT [--tls-cert FILE --tls-key FILE]] [OPTIONS]\n"
"    emberd --routes\n"
"\n"
"DESCRIPTION\n"
"    emberd serves the API described in agent/openapi.yaml (HTTP/1.1 and\n"
"    JSON) on a Unix socket, and on ADDR:PORT when asked. Every request\n"
"    carries \"Authorization: Bearer TOKEN\". At first start emberd makes\n"
"    the admin token and writes it, once, to STATE/admin.token (mode\n"
"    0600); the admin creates tenants and their tokens; a tenant deploys\n"
"    functions (PUT of a tar or tar.gz archive with an ember.json\n"
"    manifest) and invokes them. Each function instance is an ember-vmm\n"
"    process restored from the function's snapshot into a VM shell that\n"
"    was started ahead of time; an idle instance is reused warm.\n"
"\n"
"    Everything emberd knows is in STATE/ember.db (SQLite) and the\n"
"    function versions under STATE/functions/; restarted on the same\n"
"    state directory, it serves every tenant and function as before.\n"
"\n"
"OPTIONS\n"
"    Every option is also a config-file key: \"key = value\" per line, '#'\n"
"    starts a comment. The command line overrides the file.\n"
"\n"
"    -c, --config FILE        read settings from FILE first\n"
"    -s, --state DIR          state directory (default " CONFIG_DEFAULT_STATE ")\n"
"    -r, --runtime DIR        runtime directory: API socket, pid files of the\n"
"                             VMM processes emberd runs (default " CONFIG_DEFAULT_RUNTIME ")\n"
"        --socket PATH        the API's Unix socket (default RUNTIME/emberd.sock)\n"
"        --socket-mode MODE   its permission bits, octal (default 0660)\n"
"    -l, --listen ADDR:PORT   also serve TCP on ADDR:PORT (IPv4, or [IPv6]:PORT).\n"
"                             Anything but a loopback address needs TLS\n"
"        --tls-cert FILE      PEM certificate chain for --listen (TLS)\n"
"        --tls-key FILE       PEM private key for --listen\n"
"        --vmm FILE           ember-vmm (default: beside emberd)\n"
"        --micro FILE         the micro guest kernel (default: beside emberd)\n"
"        --lua-handler FILE   the Lua runtime's handler (default: handlers/lua\n"
"                             beside emberd)\n"
"        --python-handler FILE  the Python runtime's handler (default:\n"
"                             handlers/python beside emberd)\n"
"        --python-home DIR    its standard library (default: runtimes/python\n"
"                             beside emberd); without both, runtime\n"
"                             \"python\" deploys fail, the others work\n"
"        --linux-kernel FILE  the Linux guest's kernel, for guest \"linux\"\n"
"                             (default: vmlinux beside emberd, the cached\n"
"                             build of make kernel)\n"
"        --guest-init FILE    its PID 1 (default: guest-init beside emberd)\n"
"        --linux-image-tool FILE  builds its root disks (default: linux-image\n"
"                             beside emberd, a copy of scripts/linux-image.sh);\n"
"                             guest \"linux\" deploys fail saying which is\n"
"                             missing, and always on kvm-pvm hosts\n"
"        --http-threads N     HTTP threads per listener (default 2)\n"
"        --http-connections N open connections per listener (default 1024)\n"
"        --http-per-ip N      TCP connections per client address (default 64;\n"
"                             0 = unlimited)\n"
"        --http-timeout S     close a connection idle this long (default 30)\n"
"        --http-header-bytes N  request line + headers, at most (default 16384)\n"
"        --pool-size N        VM shells kept started and ready, at least\n"
"                             (default 2); the pool grows with the restore\n"
"                             rate and when it runs dry, up to --pool-max\n"
"        --pool-max N         the pool's ceiling (default 16)\n"
"        --idle-ttl S         stop an instance idle this long, the last one\n"
"                             too: scale to zero (seconds, decimals allowed;\n"
"                             default 300; PUT /v1/functions/NAME/scaling\n"
"                             sets it per function)\n"
"        --ping-interval S    PING idle instances this often; one that does\n"
"                             not answer within 2 s is reaped (default 30)\n"
"        --memory-budget-mib N  guest RAM plus VMM overhead all instances\n"
"                             may commit (default: 3/4 of the host's RAM).\n"
"                             Idle instances are reclaimed, least recently\n"
"                             used first, before an invocation must wait\n"
"        --tenant-instances N, --tenant-memory-mib N, --tenant-concurrency N\n"
"                             every tenant's limits unless the admin set its\n"
"                             own (PATCH /v1/tenants/NAME); 0 = none (default)\n"
"        --max-open-files N   RLIMIT_NOFILE emberd asks for: 3 per instance\n"
"                             (default 65536)\n"
"        --queue-max N        invocations that may wait per function for an\n"
"                             instance; beyond, 429 (default 64)\n"
"        --queue-wait-ms MS   longest such wait; then 429 (default 10000; a\n"
"                             request may ask for less: X-Ember-Max-Wait-Ms)\n"
"        --restore-timeout-ms MS  a restore that takes longer fails (default 5000)\n"
"        --deploy-workers N   deploys built at the same time (default 1)\n"
"        --deploy-queue N     deploys waiting for a worker; beyond, 429 (default 16)\n"
"        --max-archive-bytes N  largest function archive (default 64M)\n"
"        --max-files N        most files in an archive (default 10000)\n"
"        --max-tree-bytes N   most bytes the archive may unpack to (default 256M)\n"
"        --shutdown-grace S   on SIGTERM, how long in-flight invocations may\n"
"                             finish before their VMs are stopped (default 10)\n"
"    -v, --verbose            log more (repeat for debug)\n"
"        --log-file FILE      emberd's log goes to FILE (appended; reopened\n"
"                             on SIGHUP, for log rotation), not stderr\n"
"        --log-format F       json: one JSON object per line (default);\n"
"                             text: plain lines, for a terminal\n"
"\n"
"  Metering (docs/metering.md)\n"
"        --ledger-batch-ms MS how often the ledger commits its journal to the\n"
"                             database (default 20); a record is durable in\n"
"                             the journal before its answer is sent\n"
"        --bill-init          bill a cold start's restore time as well\n"
"                             (default: reported, not billed)\n"
"        --log-invocation-bytes N\n"
"                             handler output kept per invocation (64K)\n"
"        --logs-per-function N  logs kept per function, oldest out (16M)\n"
"        --logs-retention S   logs older than S seconds are deleted\n"
"                             (default 604800: 7 days)\n"
"        --metrics-max-series N  functions with series of their own in\n"
"                             /metrics (default 1000; the rest: _other)\n"
"        --no-meter           no ledger, usage, metrics or logs (for\n"
"                             measuring what metering costs)\n"
"        --routes             print the API's routes and exit\n"
"\n"
"  Confinement (docs/security.md)\n"
"        --no-jail            run VMMs unconfined: no namespaces, empty root,\n"
"                             own uid or rlimits (for debugging only)\n"
"        --jail-uid-base N    jailed VMMs run as uid and gid N, N+1, ... one\n"
"                             per live VMM (default 900000000); a range no\n"
"                             other user or container of the host uses\n"
"        --jail-uid-count N   how many (default 4096): the most VMMs at once\n"
"        --no-seccomp         do not pass --seccomp to ember-vmm (debugging;\n"
"                             docs/seccomp.md)\n"
"        --no-cgroups         no cgroups per tenant and per VM\n"
"        --cgroup-name NAME   emberd's subtree below the cgroup it was started\n"
"                             in (default: ember-HASH of the state directory);\n"
"                             whatever a crashed emberd left there is removed\n"
"        --cgroup-version V   0 detect (default), 1 or 2\n"
"        --tenant-cpu-weight N  each tenant's CPU weight, 1-10000 (default 100:\n"
"                             tenants share the CPUs equally under contention)\n"
"        --tenant-cpu-max-pct N  cap on a tenant's CPU, percent of one CPU\n"
"                             (default 0: none)\n"
"        --tenant-pids-max N  threads of all a tenant's VMMs (default 4096)\n"
"        --vm-pids-max N      threads of one VMM (default 64)\n"
"        --vm-memory-overhead-mib N  a VM's cgroup memory limit is its\n"
"                             function's memory plus N (default 64); a\n"
"                             tenant's group has --tenant-memory-mib (or its\n"
"                             own limit) if set\n"
"        --cgroup-move-sync   move a VMM into its cgroups before its restore\n"
"                             starts, not beside it: exact memory accounting\n"
"                             from the first page, at the cost of the move\n"
"                             (an RCU grace period per hierarchy, ~10 ms on\n"
"                             some hosts) on every cold start\n"
"    -h, --help               this text\n"
"\n"
"    Sizes take a K, M or G suffix (powers of 1024).\n"
"\n"
"FILES\n"
"    STATE/ember.db           tenants, token hashes, functions, versions,\n"
"                             snapshots, deploy records (SQLite, WAL)\n"
"    STATE/admin.token        the admin token, written once at first start\n"
"    STATE/functions/ID/vN/   a function version: tree/, image, snapshot/\n"
"    STATE/staging/           deploys being built (emptied at start)\n"
"    RUNTIME/emberd.sock      the API socket\n"
"    RUNTIME/vmm/PID          one file per ember-vmm process emberd started;\n"
"                             a restarted emberd ends those that remain\n"
"\n"
"SIGNALS\n"
"    SIGTERM, SIGINT   stop accepting connections, let in-flight invocations\n"
"                      finish (up to --shutdown-grace), stop every VM, exit 0\n"
"\n"
"EXIT STATUS\n"
"    0   clean shutdown          64  usage or configuration error\n"
"    69  a required service is unavailable (socket in use, state locked)\n"
"    70  internal error          73  cannot create the state or runtime dir\n"
"\n"
"EXAMPLE\n"
"    emberd --state /tmp/ember --runtime /tmp/ember-run &\n"
"    export EMBER_ENDPOINT=unix:/tmp/ember-run/emberd.sock\n"
"    export EMBER_TOKEN=$(cat /tmp/ember/admin.token)\n"
"    ember tenant create acme\n";

void config_usage(FILE *out)
{
	fputs(usage_text, out);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("emberd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(emberd --help lists every option)\n", stderr);
	return -1;
}

static const struct opt *opt_find(const char *key)
{
	for (size_t i = 0; i < NR_OPTS; i++)
		if (!strcmp(opts[i].key, key))
			return &opts[i];
	return NULL;
}

static int parse_u64(const char *v, bool sizes, uint64_t *out)
{
	unsigned long long n;
	char *end;
	unsigned shift = 0;

	if (!*v || *v == '-')
		return -EINVAL;
	errno = 0;
	n = strtoull(v, &end, 0);
	if (errno || end == v)
		return -EINVAL;
	if (sizes && *end) {
		switch (*end) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		default: return -EINVAL;
		}
		end++;
	}
	if (*end)
		return -EINVAL;
	if (shift && n > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)n << shift;
	return 0;
}

/* Applies one key = value. `where` names the source for messages. */
static int set_opt(struct agent_config *c, const struct opt *o, const char *v,
		   const char *where)
{
	char *base = (char *)c + o->off;
	uint64_t n;

	switch (o->type) {
	case T_STR: {
		char **dst = (char **)base;
		char *dup = strdup(v);

		if (!dup)
			return usage_error("out of memory");
		free(*dst);
		*dst = dup;
		return 0;
	}
	case T_FLAG:
		*(bool *)base = true;
		return 0;
	case T_COUNT:
		(*(int *)base)++;
		return 0;
	case T_MODE: {
		char *end;
		unsigned long m;

		errno = 0;
		m = strtoul(v, &end, 8);
		if (errno || end == v || *end || m > o->max)
			return usage_error("%s: --%s %s: expected octal "
					   "permission bits such as 0660",
					   where, o->key, v);
		*(unsigned *)base = (unsigned)m;
		return 0;
	}
	case T_SECONDS: {
		char *end;
		double d;

		errno = 0;
		d = strtod(v, &end);
		/* !(a >= b) is also true of a NaN. */
		if (errno || end == v || *end || !(d * 1000 >= (double)o->min) ||
		    !(d * 1000 <= (double)o->max))
			return usage_error("%s: --%s %s: expected seconds from "
					   "%g to %g", where, o->key, v,
					   (double)o->min / 1000,
					   (double)o->max / 1000);
		*(unsigned *)base = (unsigned)(d * 1000 + 0.5);
		return 0;
	}
	case T_UINT:
	case T_SIZE:
		if (parse_u64(v, o->type == T_SIZE, &n) || n < o->min ||
		    n > o->max)
			return usage_error("%s: --%s %s: expected a number "
					   "from %llu to %llu%s", where,
					   o->key, v,
					   (unsigned long long)o->min,
					   (unsigned long long)o->max,
					   o->type == T_SIZE ?
						   " (K, M, G suffixes allowed)" :
						   "");
		if (o->type == T_UINT)
			*(unsigned *)base = (unsigned)n;
		else
			*(uint64_t *)base = n;
		return 0;
	}
	return -1;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
			 e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int load_file(struct agent_config *c, const char *path)
{
	char *text, *line, *save = NULL;
	unsigned lineno = 0;
	int ret;

	ret = util_read_file(path, 1 << 20, &text, NULL);
	if (ret)
		return usage_error("--config %s: %s", path, strerror(-ret));
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char where[300], *eq, *key, *val, *hash;
		const struct opt *o;

		lineno++;
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		key = trim(line);
		if (!*key)
			continue;
		snprintf(where, sizeof(where), "%s:%u", path, lineno);
		eq = strchr(key, '=');
		if (!eq) {
			ret = usage_error("%s: expected \"key = value\"",
					  where);
			break;
		}
		*eq = '\0';
		val = trim(eq + 1);
		key = trim(key);
		o = opt_find(key);
		if (!o || !strcmp(key, "routes")) {
			ret = usage_error("%s: unknown key \"%s\"", where, key);
			break;
		}
		if (o->type == T_FLAG || o->type == T_COUNT) {
			uint64_t n;

			if (parse_u64(val, false, &n) || n > 3) {
				ret = usage_error("%s: %s takes a number 0-3",
						  where, key);
				break;
			}
			/* A flag is a bool: an int store would overwrite
			 * the fields beside it. */
			if (o->type == T_FLAG)
				*(bool *)((char *)c + o->off) = n != 0;
			else
				*(int *)((char *)c + o->off) = (int)n;
			continue;
		}
		ret = set_opt(c, o, val, where);
		if (ret)
			break;
	}
	free(text);
	return ret;
}

static int default_path(char **dst, const char *dir, const char *name)
{
	if (*dst)
		return 0;
	if (asprintf(dst, "%s/%s", dir, name) < 0) {
		*dst = NULL;
		return usage_error("out of memory");
	}
	return 0;
}

int config_load(struct agent_config *c, int argc, char **argv,
		const char *exe_dir)
{
	struct option lopts[NR_OPTS + 3];
	char shorts[64] = "+hc:";
	size_t ns = strlen(shorts);
	const char *config_file = NULL;
	int ch, idx;

	memset(c, 0, sizeof(*c));
	c->socket_mode = 0660;
	c->http_threads = 2;
	c->http_connections = 1024;
	c->http_per_ip = 64;
	c->http_timeout_s = 30;
	c->http_header_bytes = 16384;
	c->pool_size = 2;
	c->pool_max = 16;
	c->idle_ttl_ms = 300000;
	c->ping_interval_s = 30;
	c->max_open_files = 65536;
	c->queue_max = 64;
	c->queue_wait_ms = 10000;
	c->restore_timeout_ms = 5000;
	c->deploy_workers = 1;
	c->deploy_queue = 16;
	c->max_archive_bytes = 64ull << 20;
	c->max_files = 10000;
	c->max_tree_bytes = 256ull << 20;
	c->shutdown_grace_s = 10;
	c->jail_uid_base = 900000000;
	c->jail_uid_count = 4096;
	c->tenant_cpu_weight = 100;
	c->tenant_pids_max = 4096;
	c->vm_pids_max = 64;
	c->vm_overhead_mib = 64;

	for (size_t i = 0; i < NR_OPTS; i++) {
		bool arg = opts[i].type != T_FLAG && opts[i].type != T_COUNT;

		lopts[i] = (struct option){ opts[i].key,
					    arg ? required_argument : no_argument,
					    NULL, 1000 + (int)i };
		if (opts[i].short_name) {
			shorts[ns++] = (char)opts[i].short_name;
			if (arg)
				shorts[ns++] = ':';
		}
	}
	lopts[NR_OPTS] = (struct option){ "config", required_argument, NULL, 'c' };
	lopts[NR_OPTS + 1] = (struct option){ "help", no_argument, NULL, 'h' };
	lopts[NR_OPTS + 2] = (struct option){ 0 };
	shorts[ns] = '\0';

	/* First pass: --config and --help only, so the file comes before
	 * the rest of the command line whatever the order. */
	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, shorts, lopts, &idx)) != -1) {
		if (ch == 'h') {
			config_usage(stdout);
			return 1;
		}
		if (ch == 'c')
			config_file = optarg;
	}
	if (config_file && load_file(c, config_file))
		return -1;
	opterr = 1;
	optind = 1;
	while ((ch = getopt_long(argc, argv, shorts, lopts, &idx)) != -1) {
		const struct opt *o = NULL;

		if (ch == 'c')
			continue;
		if (ch == '?')
			return usage_error("bad option");
		if (ch >= 1000)
			o = &opts[ch - 1000];
		else
			for (size_t i = 0; i < NR_OPTS; i++)
				if (opts[i].short_name == ch)
					o = &opts[i];
		if (!o || set_opt(c, o, optarg ? optarg : "", "command line"))
			return -1;
	}
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]);

	if ((!c->state_dir && !(c->state_dir = strdup(CONFIG_DEFAULT_STATE))) ||
	    (!c->runtime_dir &&
	     !(c->runtime_dir = strdup(CONFIG_DEFAULT_RUNTIME))))
		return usage_error("out of memory");
	if (c->state_dir[0] != '/' || c->runtime_dir[0] != '/')
		return usage_error("--state and --runtime must be absolute "
				   "paths");
	if (default_path(&c->socket, c->runtime_dir, "emberd.sock") ||
	    default_path(&c->vmm, exe_dir, "ember-vmm") ||
	    default_path(&c->micro, exe_dir, "ember-micro") ||
	    default_path(&c->lua_handler, exe_dir, "handlers/lua") ||
	    default_path(&c->python_handler, exe_dir, "handlers/python") ||
	    default_path(&c->python_home, exe_dir, "runtimes/python") ||
	    default_path(&c->linux_kernel, exe_dir, "vmlinux") ||
	    default_path(&c->guest_init, exe_dir, "guest-init") ||
	    default_path(&c->linux_image_tool, exe_dir, "linux-image"))
		return -1;
	if (c->log_format && strcmp(c->log_format, "json") &&
	    strcmp(c->log_format, "text"))
		return usage_error("--log-format is json or text");
	if (c->cgroup_name && !cg_path_valid(c->cgroup_name))
		return usage_error("--cgroup-name %s: [A-Za-z0-9_.-], at most "
				   "63 characters", c->cgroup_name);
	if ((uint64_t)c->jail_uid_base + c->jail_uid_count > 2147483647ull)
		return usage_error("--jail-uid-base + --jail-uid-count must "
				   "stay below 2^31");
	if (!!c->tls_cert != !!c->tls_key)
		return usage_error("--tls-cert and --tls-key go together");
	if (c->tls_cert && !c->listen)
		return usage_error("--tls-cert needs --listen (the Unix socket "
				   "is local and never uses TLS)");
	return 0;
}

void config_free(struct agent_config *c)
{
	for (size_t i = 0; i < NR_OPTS; i++)
		if (opts[i].type == T_STR)
			free(*(char **)((char *)c + opts[i].off));
	memset(c, 0, sizeof(*c));
}
