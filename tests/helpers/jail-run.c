/*
 * jail-run: runs a static test program (jail-probe) in place of ember-vmm,
 * in exactly the jail emberd gives a shell: the same settings (emberd's own
 * option parser, so the same --vmm, --jail-uid-base, ...), the same code
 * (confine_spawn_program, which shell spawns also go through), fd 3 being
 * this process's stdout so that the program's report comes back.
 *
 *   jail-run [EMBERD OPTIONS] -- PROGRAM ARGS...
 *
 * Prints "info uid N" (the jailed uid), then the program's output; exits
 * with the program's exit status (128 + signal if killed). No cgroups (the
 * emberd under test owns its subtree); seccomp is the VMM's own business.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/config.h"
#include "agent/confine.h"
#include "agent/jail.h"

int main(int argc, char **argv)
{
	struct agent_config cfg;
	struct confine *c;
	struct jail_proc jp;
	char err[512];
	int dd, slot, status, ret;

	for (dd = 1; dd < argc && strcmp(argv[dd], "--"); dd++)
		;
	if (dd >= argc - 1) {
		fprintf(stderr, "usage: jail-run [EMBERD OPTIONS] -- PROGRAM "
			"ARGS...\n");
		return 2;
	}
	argv[dd] = NULL;
	if (config_load(&cfg, dd, argv, ".") != 0)
		return 2;
	{
		struct confine_config cc = {
			.vmm = cfg.vmm,
			.runtime_dir = cfg.runtime_dir,
			.state_dir = cfg.state_dir,
			.jail = true,
			.keep_root = true, /* emberd's, which still runs */
			.uid_base = cfg.jail_uid_base,
			.uid_count = cfg.jail_uid_count,
		};

		c = confine_create(&cc, err, sizeof(err));
	}
	if (!c) {
		fprintf(stderr, "jail-run: %s\n", err);
		return 1;
	}
	fflush(stdout);
	ret = confine_spawn_program(c, argv[dd + 1], argv + dd + 1, 1, &jp,
				    &slot, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "jail-run: %s\n", err);
		confine_destroy(c);
		return 1;
	}
	printf("info uid %u\n", (unsigned)confine_slot_uid(c, slot));
	fflush(stdout);
	while (waitpid(jp.pid, &status, 0) < 0 && errno == EINTR)
		;
	close(jp.pidfd);
	confine_destroy(c);
	config_free(&cfg);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
