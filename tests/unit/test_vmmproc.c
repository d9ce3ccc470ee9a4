/* Unit tests: the shape of the shells vmmproc_spawn() (agent/vmmproc.c)
 * starts, with the real build/ember-vmm on /dev/kvm. A shell for micro
 * guests restores a micro guest's snapshot; one spawned with `irqchip`
 * (for Linux guests' snapshots, which have an in-kernel irqchip) is a
 * shell of that other shape, which ember-vmm's restore shows from outside:
 * it refuses the same micro snapshot saying the shell has an irqchip
 * (vmm/restore.c's shape check). Skips without /dev/kvm or the build. */
// link: agent/vmmproc.c vmm/shellctl.c vmm/log.c
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/vmmproc.h"
#include "ember/shellctl.h"

extern char **environ;

static char base[64], vmm[4096], micro[4096], echo[4096], runtime[128];
static bool have_vm;

static int setup_group(void **state)
{
	const char *b = getenv("BUILD") ? getenv("BUILD") : "build";
	char p[256], *abs;
	int st = -1;

	(void)state;
	snprintf(p, sizeof(p), "%s/ember-vmm", b);
	abs = realpath(p, NULL);
	snprintf(vmm, sizeof(vmm), "%s", abs ? abs : p);
	free(abs);
	snprintf(p, sizeof(p), "%s/ember-micro", b);
	abs = realpath(p, NULL);
	snprintf(micro, sizeof(micro), "%s", abs ? abs : p);
	free(abs);
	snprintf(p, sizeof(p), "%s/handlers/echo.musl", b);
	abs = realpath(p, NULL);
	snprintf(echo, sizeof(echo), "%s", abs ? abs : p);
	free(abs);
	have_vm = access("/dev/kvm", R_OK | W_OK) == 0 &&
		  access(vmm, X_OK) == 0 && access(micro, R_OK) == 0 &&
		  access(echo, R_OK) == 0;
	if (!have_vm) {
		print_message("no /dev/kvm or no build: the tests skip\n");
		return 0;
	}
	snprintf(base, sizeof(base), "/tmp/ember-test-vmmproc.XXXXXX");
	assert_non_null(mkdtemp(base));
	snprintf(runtime, sizeof(runtime), "%s/run", base);
	assert_int_equal(mkdir(runtime, 0700), 0);
	snprintf(p, sizeof(p), "%s/vmm", runtime);
	assert_int_equal(mkdir(p, 0700), 0);  /* the pid files */
	/* A micro guest's snapshot at READY (no irqchip, one vCPU). */
	{
		char *argv[] = { vmm, "-q", "--micro", "--kernel", micro,
				 "--handler", echo, "--vsock", "v.sock",
				 "--serial", "none", "--snapshot-at-ready",
				 "snap", "--timeout", "30", NULL };
		posix_spawn_file_actions_t fa;
		pid_t pid;

		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addchdir_np(&fa, base);
		assert_int_equal(posix_spawn(&pid, vmm, &fa, NULL, argv,
					     environ), 0);
		posix_spawn_file_actions_destroy(&fa);
		assert_int_equal(waitpid(pid, &st, 0), pid);
	}
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return 0;
}

static int teardown_group(void **state)
{
	char cmd[128];

	(void)state;
	if (base[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
		assert_int_equal(system(cmd), 0);
	}
	return 0;
}

/* Spawns a shell of the given shape, sends it the micro snapshot and
 * returns the restore's answer (0 OK, 1 ERR) with its text in reply. */
static int restore_micro(bool irqchip, char *reply, size_t replylen)
{
	struct ember_shellctl *c;
	struct vmmproc p;
	char err[256], why[256], path[256];
	int fds[3], sv[2], e = 0, r, n = 0;

	assert_int_equal(vmmproc_spawn(vmm, runtime, NULL, 1, irqchip, &p, err,
				       sizeof(err)), 0);
	assert_int_equal(p.sp.irqchip, irqchip);
	c = ember_shellctl_open(p.ctl, &e);
	assert_non_null(c);
	r = ember_shellctl_wait_ready(c, 20000, NULL, why, sizeof(why));
	if (r)
		print_error("shell: %d %s\n", r, why);
	assert_int_equal(r, 0);
	snprintf(path, sizeof(path), "%s/snap/state", base);
	fds[n++] = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/snap/memory", base);
	fds[n++] = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fds[0] >= 0 && fds[1] >= 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	fds[n++] = sv[1];
	r = ember_shellctl_command(c, "restore state=0 memory=1 vsock=2 "
				   "vsock-connected", fds, 3, 20000, reply,
				   replylen);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	close(sv[0]);
	if (r == 0)
		ember_shellctl_command(c, "stop", NULL, 0, 20000, why,
				       sizeof(why));
	ember_shellctl_close(c);
	vmmproc_kill(&p);
	while (vmmproc_reap(&p, runtime) == -EAGAIN)
		poll(NULL, 0, 10);
	return r;
}

static void test_micro_shell(void **state)
{
	char reply[512];

	(void)state;
	if (!have_vm)
		skip();
	assert_int_equal(restore_micro(false, reply, sizeof(reply)), 0);
	assert_non_null(strstr(reply, "restored"));
}

static void test_irqchip_shell(void **state)
{
	char reply[512];

	(void)state;
	if (!have_vm)
		skip();
	assert_int_equal(restore_micro(true, reply, sizeof(reply)), 1);
	if (!strstr(reply, "the shell has 1 and an irqchip")) {
		print_error("restore: %s\n", reply);
		fail();
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_micro_shell),
		cmocka_unit_test(test_irqchip_shell),
	};
	return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
