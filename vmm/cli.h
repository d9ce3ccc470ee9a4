/*
 * cli.h - what the two halves of ember-vmm share: the exit statuses (the
 * only place they are defined; --help and docs/shell.md list them) and
 * the mappings from library errors and VM exits to them, and shell mode
 * (cli_shell.c). Part of the ember-vmm program, not of libember.
 */
#ifndef EMBER_CLI_H
#define EMBER_CLI_H

#include <stdbool.h>

#include "ember.h"

/* Exit statuses (sysexits.h values where one fits). */
enum {
	ST_OK = 0,
	ST_GUEST_MAX = 63,  /* 1..63: the guest's own non-zero status */
	ST_USAGE = 64,      /* bad flags, or a malformed shell command */
	ST_DATAERR = 65,    /* a file is invalid (kernel not an ELF, ...) */
	ST_NOINPUT = 66,    /* a file could not be opened, a socket not made */
	ST_UNAVAILABLE = 69,/* /dev/kvm missing, unusable or lacking a feature */
	ST_SOFTWARE = 70,   /* VMM internal error */
	ST_TIMEOUT = 124,   /* --timeout expired (as timeout(1)) */
	ST_CRASH = 125,     /* the guest crashed */
};

int cli_status_for_create_error(int ret);
int cli_status_for_restore_error(int ret);
int cli_status_for_exit(const struct ember_exit *e);

/* Makes SIGTERM, SIGINT and SIGHUP stop `vm` (ember_vm_stop, which is
 * async-signal-safe) instead of killing the process; NULL: exit at once
 * with 128 + signal (nothing to clean up yet). */
void cli_stop_on_signals(struct ember_vm *vm);

struct cli_shell_opts {
	int control_fd;           /* an inherited SOCK_SEQPACKET socket, or -1 */
	const char *control_path; /* or listen here */
	unsigned nr_cpus;
	bool irqchip;
	enum ember_cpu_template cpu_template;
	unsigned mem_mib;         /* guest RAM to map ahead (--mem), or 0 */
	bool threads_at_restore;  /* --threads-at-restore */
};

/* --seccomp[=MODE] (cli_seccomp.c): MODE "kill", "log", or "off"/NULL
 * (nothing to do). Compiles the filters for `flags` (SECCOMP_F_* of
 * vmm/seccomp.h) and makes every thread load its own where its setup
 * ends. ST_OK, or the exit status after a one-line error on stderr. */
int cli_seccomp_setup(const char *mode, unsigned flags);

/* `ember-vmm --shell`: serves the shell protocol (docs/shell.md) until the
 * VM ends or the controller goes away. Returns the exit status. */
int cli_shell_main(const struct cli_shell_opts *o);

#endif
