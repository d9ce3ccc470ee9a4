/*
 * noseccomp.c - runs a program as if the kernel had no seccomp filters, for
 * tests/integration/seccomp-vmm (ember-vmm --seccomp must then give one clear
 * line and exit 69, not run unconfined or crash):
 *
 *   noseccomp PROGRAM [ARGS...]
 *
 * It loads a filter of its own that makes prctl(PR_GET_SECCOMP) fail with
 * EINVAL and seccomp(2) with ENOSYS (what a kernel without
 * CONFIG_SECCOMP answers), everything else allowed, then execs PROGRAM.
 */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	scmp_filter_ctx ctx;
	int ret;

	if (argc < 2) {
		fprintf(stderr, "usage: %s PROGRAM [ARGS...]\n", argv[0]);
		return 64;
	}
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return 70;
	ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EINVAL), SCMP_SYS(prctl), 1,
			       SCMP_A0(SCMP_CMP_EQ, PR_GET_SECCOMP));
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EINVAL),
				       SCMP_SYS(prctl), 1,
				       SCMP_A0(SCMP_CMP_EQ, PR_SET_SECCOMP));
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
				       SCMP_SYS(seccomp), 0);
	if (!ret)
		ret = seccomp_load(ctx);
	seccomp_release(ctx);
	if (ret) {
		fprintf(stderr, "noseccomp: cannot load the filter: %s\n",
			strerror(-ret));
		return 70;
	}
	execv(argv[1], argv + 1);
	fprintf(stderr, "noseccomp: exec %s: %s\n", argv[1], strerror(errno));
	return 127;
}
