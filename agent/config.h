/*
 * config.h - emberd's settings: defaults, the config file, the command line.
 *
 * Owns: struct agent_config and how it is filled: built-in defaults, then
 * the --config FILE ("key = value" lines, the keys being the long option
 * names), then the command line, each overriding the one before; then the
 * checks that make a bad setting a clear start-up error. emberd --help
 * lists every key.
 *
 * Threads: filled once in main() before any thread starts; read-only after.
 */
#ifndef EMBER_AGENT_CONFIG_H
#define EMBER_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_DEFAULT_STATE "/var/lib/ember"
#define CONFIG_DEFAULT_RUNTIME "/run/ember"

struct agent_config {
	/* where */
	char *state_dir;      /* database, admin token, function versions */
	char *runtime_dir;    /* API socket, pid files of VMM processes */
	char *socket;         /* API Unix socket (default RUNTIME/emberd.sock) */
	unsigned socket_mode;
	char *listen;         /* ADDR:PORT, optional */
	char *tls_cert, *tls_key;
	/* tools */
	char *vmm;            /* ember-vmm */
	char *micro;          /* ember-micro */
	char *lua_handler;    /* the Lua runtime's handler binary */
	char *python_handler; /* the Python runtime's handler binary */
	char *python_home;    /* its library, grafted into each image */
	char *linux_kernel;   /* guest "linux": vmlinux */
	char *guest_init;     /* guest "linux": its PID 1 */
	char *linux_image_tool; /* guest "linux": scripts/linux-image.sh */
	/* HTTP */
	unsigned http_threads;
	unsigned http_connections;
	unsigned http_per_ip;
	unsigned http_timeout_s;
	unsigned http_header_bytes;
	/* VMs */
	unsigned pool_size;       /* VM shells kept ready: the pool's floor */
	unsigned pool_max;        /* ... and its ceiling */
	unsigned queue_max;       /* waiting invocations per function */
	unsigned queue_wait_ms;   /* longest wait for an instance */
	unsigned restore_timeout_ms;
	unsigned idle_ttl_ms;     /* an idle instance is stopped after this */
	unsigned ping_interval_s; /* idle instances are PINGed this often */
	uint64_t memory_budget_mib; /* guest RAM + VMM overhead, all VMs */
	unsigned tenant_instances, tenant_concurrency; /* per tenant; 0: no */
	uint64_t tenant_memory_mib;                     /* limit */
	unsigned max_open_files;  /* RLIMIT_NOFILE emberd asks for */
	/* deploys */
	unsigned deploy_workers;
	unsigned deploy_queue;
	uint64_t max_archive_bytes;
	uint64_t max_files;
	uint64_t max_tree_bytes;
	/* life */
	unsigned shutdown_grace_s;
	int verbose;           /* 0 warnings, 1 info, 2 debug */
	char *log_file;        /* emberd's own log (NULL: stderr) */
	char *log_format;      /* "json" (default) or "text" */
	/* metering (docs/metering.md) */
	bool no_meter;         /* no ledger, usage, metrics or logs */
	unsigned ledger_batch_ms;
	bool bill_init;        /* bill a cold start's restore too */
	uint64_t log_invocation_bytes, logs_per_function;
	unsigned logs_retention_s;
	unsigned metrics_max_series;
	bool print_routes;     /* --routes: print the route table and exit */
	/* confinement (docs/security.md) */
	bool no_jail;          /* VMMs run unjailed (debugging) */
	bool no_cgroups;       /* no per-tenant / per-VM cgroups */
	bool no_seccomp;       /* VMMs without --seccomp (debugging) */
	unsigned jail_uid_base, jail_uid_count;
	char *cgroup_name;     /* below the start cgroup; NULL: derived */
	unsigned cgroup_version; /* 0 auto, 1, 2 */
	unsigned tenant_cpu_weight, tenant_cpu_max_pct, tenant_pids_max;
	unsigned vm_pids_max, vm_overhead_mib;
	bool cgroup_move_sync;
};

/* Fills *c from defaults, `--config FILE` if present in argv, then argv.
 * exe_dir is the directory of the emberd binary (the tools' default
 * home). Returns 0, 1 when --help or --version printed and main should
 * exit 0, or -1 after printing a usage error to stderr (exit 64). */
int config_load(struct agent_config *c, int argc, char **argv,
		const char *exe_dir);
void config_free(struct agent_config *c);

/* The --help text. */
void config_usage(FILE *out);

#endif
