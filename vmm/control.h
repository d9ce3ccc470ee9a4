/*
 * control.h - the commands a started VM takes from its controller, shared
 * by the stream control socket (ember_control_start, `--control PATH`) and
 * shell mode (vmm/cli_shell.c), and the "key=value" arguments they carry.
 * Protocol: docs/shell.md.
 *
 * Called on the control thread, never on a vCPU or the event thread.
 */
#ifndef EMBER_CONTROL_H
#define EMBER_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "ember.h"

#define CTL_MAX_ARGS 16

/* A command line split in place: argv[0] is the command, the rest are
 * "key=value" or bare "flag" words. */
struct ctl_args {
	unsigned n;
	struct {
		const char *key, *val; /* val NULL for a flag */
		bool used;
	} a[CTL_MAX_ARGS];
	const char *cmd;
};

/* Splits `line` (modified) into words. -E2BIG (too many), -EINVAL (no
 * command, an empty key or a repeated one), with a reason. */
int ctl_parse(char *line, struct ctl_args *a, char *err, size_t errlen);

/* The value of `key` (marking it used), or NULL. */
const char *ctl_get(struct ctl_args *a, const char *key);
/* Whether the bare word `flag` is present (marking it used); -EINVAL with
 * a reason when it carries a value. */
int ctl_flag(struct ctl_args *a, const char *flag, char *err, size_t errlen);
/* `key`=I naming attached fd I (< nfds): 1 and *fd, 0 when absent (*fd
 * -1), -EINVAL with a reason. */
int ctl_fd(struct ctl_args *a, const char *key, const int *fds, unsigned nfds,
	   int *fd, char *err, size_t errlen);
/* `key`=N as a decimal number <= max: 1, 0 absent, -EINVAL. */
int ctl_u64(struct ctl_args *a, const char *key, uint64_t max, uint64_t *v,
	    char *err, size_t errlen);
/* -EINVAL naming the first word nothing asked for, else 0. */
int ctl_check_used(const struct ctl_args *a, char *err, size_t errlen);

/*
 * Runs one command on a started VM: status, pause, resume, ping,
 * snapshot (DIR, or dir=I with fds), workingset (into the snapshot
 * directory, or fd=I [dirty=J] with fds), stop. Writes the reply line
 * (without newline) into reply: "OK ..." or "ERR reason". `fds` are the
 * message's attached descriptors, still the caller's to close.
 */
void control_exec(struct ember_vm *vm, char *line, const int *fds,
		  unsigned nfds, char *reply, size_t replylen);

#endif
