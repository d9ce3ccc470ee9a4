/* Unit tests for the shell control protocol's messages and client
 * (vmm/shellctl.c) and the control line's words (vmm/ctlargs.c), over real
 * SOCK_SEQPACKET socketpairs with hostile input: too many fds, NUL bytes,
 * oversized lines, malformed EXIT lines, replies that never come. */
// link: vmm/shellctl.c vmm/ctlargs.c vmm/log.c
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "control.h"
#include "ember/shellctl.h"

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				    sv), 0);
}

static void test_send_recv_fds(void **state)
{
	char buf[64];
	int sv[2], fds[4], got[EMBER_SHELLCTL_MAX_FDS];
	unsigned n = EMBER_SHELLCTL_MAX_FDS;
	struct stat a, b;

	(void)state;
	pair(sv);
	fds[0] = open("/dev/null", O_RDONLY);
	fds[1] = open("/dev/zero", O_RDONLY);
	assert_int_equal(ember_shellctl_send(sv[0], "restore state=0 memory=1\n",
					     fds, 2), 0);
	assert_int_equal(ember_shellctl_recv(sv[1], buf, sizeof(buf), got, &n,
					     1000), 24);
	assert_string_equal(buf, "restore state=0 memory=1");
	assert_int_equal(n, 2);
	fstat(fds[1], &a);
	fstat(got[1], &b);
	assert_true(a.st_rdev == b.st_rdev);
	assert_true(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
	for (unsigned i = 0; i < 2; i++) {
		close(fds[i]);
		close(got[i]);
	}
	/* "\r\n" endings are accepted too. */
	assert_int_equal(send(sv[0], "ping\r\n", 6, 0), 6);
	n = 0;
	assert_int_equal(ember_shellctl_recv(sv[1], buf, sizeof(buf), NULL, &n,
					     1000), 4);
	assert_string_equal(buf, "ping");
	/* Nothing there: a timeout, not a hang. */
	assert_int_equal(ember_shellctl_recv(sv[1], buf, sizeof(buf), NULL,
					     NULL, 20), -ETIMEDOUT);
	close(sv[0]);
	assert_int_equal(ember_shellctl_recv(sv[1], buf, sizeof(buf), NULL,
					     NULL, 1000), -EPIPE);
	close(sv[1]);
}

/* More fds than the receiver takes: the message is refused and every fd
 * that came is closed, none leaks into the receiver. */
static void test_recv_too_many_fds(void **state)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 20)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm;
	int sv[2], fds[20], got[4], lowest;
	unsigned n = 4;
	char buf[64];

	(void)state;
	pair(sv);
	for (int i = 0; i < 20; i++)
		fds[i] = open("/dev/null", O_RDONLY);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	assert_int_equal(sendmsg(sv[0], &msg, 0), 1);
	for (int i = 0; i < 20; i++)
		close(fds[i]);
	assert_int_equal(ember_shellctl_recv(sv[1], buf, sizeof(buf), got, &n,
					     1000), -EMSGSIZE);
	assert_int_equal(n, 0);
	/* Every passed fd was closed again: the next open gets the lowest
	 * number that was free before the test. */
	lowest = open("/dev/null", O_RDONLY);
	assert_true(lowest <= sv[1] + 1);
	close(lowest);
	assert_int_equal(ember_shellctl_send(sv[0], "x", fds, 17), -EMSGSIZE);
	close(sv[0]);
	close(sv[1]);
}

static void test_recv_hostile_lines(void **state)
{
	char big[5000], buf[4097];
	int sv[2];

	(void)state;
	pair(sv);
	memset(big, 'a', sizeof(big));
	assert_int_equal(send(sv[0], big, sizeof(big), 0), (ssize_t)sizeof(big));
	assert_int_equal(ember_shellctl_recv(sv[1], buf, sizeof(buf), NULL,
					     NULL, 1000), -EMSGSIZE);
	assert_int_equal(send(sv[0], "st\0atus", 7, 0), 7);
	assert_int_equal(ember_shellctl_recv(sv[1], buf, sizeof(buf), NULL,
					     NULL, 1000), -EPROTO);
	close(sv[0]);
	close(sv[1]);
}

static void test_parse_exit(void **state)
{
	struct ember_shellctl_exit ex;

	(void)state;
	assert_int_equal(ember_shellctl_parse_exit(
				 "EXIT guest-exception status=125 guest "
				 "exception: #UD at RIP 0x1", &ex), 0);
	assert_string_equal(ex.reason, "guest-exception");
	assert_int_equal(ex.status, 125);
	assert_string_equal(ex.detail, "guest exception: #UD at RIP 0x1");
	assert_int_equal(ember_shellctl_parse_exit("EXIT stopped status=0", &ex),
			 0);
	assert_string_equal(ex.detail, "");
	assert_int_equal(ember_shellctl_parse_exit("EXIT stopped", &ex), -EPROTO);
	assert_int_equal(ember_shellctl_parse_exit("EXIT x status=", &ex),
			 -EPROTO);
	assert_int_equal(ember_shellctl_parse_exit("EXIT x status=256 y", &ex),
			 -EPROTO);
	assert_int_equal(ember_shellctl_parse_exit("EXIT x status=-1", &ex),
			 -EPROTO);
	assert_int_equal(ember_shellctl_parse_exit("EXIT x status=1x", &ex),
			 -EPROTO);
	assert_int_equal(ember_shellctl_parse_exit(
				 "EXIT aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
				 "status=1", &ex), -EPROTO);
	assert_int_equal(ember_shellctl_parse_exit("OK stopping", &ex), -EPROTO);
}

/* The client against a scripted peer: the replies are queued on the
 * socket before the command is sent (a SOCK_SEQPACKET socket keeps them
 * in order), so each case is deterministic. */
static void test_client(void **state)
{
	struct ember_shellctl_exit ex;
	struct ember_shellctl *c;
	char reply[256], why[64], buf[64];
	int sv[2], err = 0;
	pid_t pid = 0;

	(void)state;
	pair(sv);
	c = ember_shellctl_open(sv[0], &err);
	assert_non_null(c);
	ember_shellctl_send(sv[1], "READY shell pid=1234", NULL, 0);
	assert_int_equal(ember_shellctl_wait_ready(c, 1000, &pid, why,
						   sizeof(why)), 0);
	assert_int_equal(pid, 1234);
	ember_shellctl_send(sv[1], "OK pong", NULL, 0);
	assert_int_equal(ember_shellctl_command(c, "ping", NULL, 0, 1000, reply,
						sizeof(reply)), 0);
	assert_string_equal(reply, "pong");
	assert_int_equal(ember_shellctl_recv(sv[1], buf, sizeof(buf), NULL,
					     NULL, 1000), 4);
	assert_string_equal(buf, "ping");
	ember_shellctl_send(sv[1], "ERR no such thing", NULL, 0);
	assert_int_equal(ember_shellctl_command(c, "frob", NULL, 0, 1000, reply,
						sizeof(reply)), 1);
	assert_string_equal(reply, "no such thing");
	ember_shellctl_send(sv[1], "what?", NULL, 0);
	assert_int_equal(ember_shellctl_command(c, "ping", NULL, 0, 1000, reply,
						sizeof(reply)), -EPROTO);
	/* No reply at all: a timeout. */
	assert_int_equal(ember_shellctl_command(c, "ping", NULL, 0, 30, reply,
						sizeof(reply)), -ETIMEDOUT);
	/* The VM ends while a command waits: -ESRCH, and the EXIT is kept. */
	ember_shellctl_send(sv[1], "EXIT poweroff status=0 guest reset", NULL,
			    0);
	assert_int_equal(ember_shellctl_command(c, "status", NULL, 0, 1000,
						reply, sizeof(reply)), -ESRCH);
	assert_int_equal(ember_shellctl_wait_exit(c, 0, &ex), 0);
	assert_string_equal(ex.reason, "poweroff");
	assert_string_equal(ex.detail, "guest reset");
	assert_int_equal(ember_shellctl_command(c, "status", NULL, 0, 1000,
						reply, sizeof(reply)), -ESRCH);
	ember_shellctl_close(c);
	close(sv[1]);

	/* An ERR instead of READY, and a peer that closes first. */
	pair(sv);
	c = ember_shellctl_open(sv[0], &err);
	ember_shellctl_send(sv[1], "ERR cannot open /dev/kvm", NULL, 0);
	assert_int_equal(ember_shellctl_wait_ready(c, 1000, &pid, why,
						   sizeof(why)), -EPROTO);
	assert_string_equal(why, "cannot open /dev/kvm");
	close(sv[1]);
	assert_int_equal(ember_shellctl_wait_exit(c, 1000, &ex), -EPIPE);
	assert_int_equal(ember_shellctl_command(c, "ping", NULL, 0, 1000, reply,
						sizeof(reply)), -EPIPE);
	ember_shellctl_close(c);
	/* Only SOCK_SEQPACKET keeps message boundaries. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_null(ember_shellctl_open(sv[0], &err));
	assert_int_equal(err, -EPROTOTYPE);
	close(sv[0]);
	close(sv[1]);
}

static void test_ctl_args(void **state)
{
	char line[256], err[128];
	struct ctl_args a;
	int fds[2] = { 7, 9 }, fd, flag;
	uint64_t v;

	(void)state;
	strcpy(line, "restore  state=0 memory=1\tprefetch timeout_ms=1500");
	assert_int_equal(ctl_parse(line, &a, err, sizeof(err)), 0);
	assert_string_equal(a.cmd, "restore");
	assert_int_equal(ctl_fd(&a, "state", fds, 2, &fd, err, sizeof(err)), 1);
	assert_int_equal(fd, 7);
	assert_int_equal(ctl_fd(&a, "memory", fds, 2, &fd, err, sizeof(err)), 1);
	assert_int_equal(fd, 9);
	assert_int_equal(ctl_fd(&a, "vsock", fds, 2, &fd, err, sizeof(err)), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(ctl_u64(&a, "timeout_ms", 10000, &v, err, sizeof(err)),
			 1);
	assert_int_equal(v, 1500);
	assert_int_equal(ctl_check_used(&a, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "prefetch"));
	flag = ctl_flag(&a, "prefetch", err, sizeof(err));
	assert_int_equal(flag, 1);
	assert_int_equal(ctl_check_used(&a, err, sizeof(err)), 0);

	strcpy(line, "restore state=2");
	ctl_parse(line, &a, err, sizeof(err));
	assert_int_equal(ctl_fd(&a, "state", fds, 2, &fd, err, sizeof(err)),
			 -EINVAL);
	strcpy(line, "restore state=-1");
	ctl_parse(line, &a, err, sizeof(err));
	assert_int_equal(ctl_fd(&a, "state", fds, 2, &fd, err, sizeof(err)),
			 -EINVAL);
	strcpy(line, "restore state=0x1");
	ctl_parse(line, &a, err, sizeof(err));
	assert_int_equal(ctl_fd(&a, "state", fds, 2, &fd, err, sizeof(err)),
			 -EINVAL);
	strcpy(line, "restore state=99999999999999999999999");
	ctl_parse(line, &a, err, sizeof(err));
	assert_int_equal(ctl_fd(&a, "state", fds, 2, &fd, err, sizeof(err)),
			 -EINVAL);
	strcpy(line, "restore prefetch=1");
	ctl_parse(line, &a, err, sizeof(err));
	assert_int_equal(ctl_flag(&a, "prefetch", err, sizeof(err)), -EINVAL);
	strcpy(line, "restore state=0 state=1");
	assert_int_equal(ctl_parse(line, &a, err, sizeof(err)), -EINVAL);
	strcpy(line, "restore disk=0 disk=1");
	assert_int_equal(ctl_parse(line, &a, err, sizeof(err)), 0);
	strcpy(line, "restore =3");
	assert_int_equal(ctl_parse(line, &a, err, sizeof(err)), -EINVAL);
	strcpy(line, "   ");
	assert_int_equal(ctl_parse(line, &a, err, sizeof(err)), -EINVAL);
	strcpy(line, "x a b c d e f g h i j k l m n o p q");
	assert_int_equal(ctl_parse(line, &a, err, sizeof(err)), -E2BIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_send_recv_fds),
		cmocka_unit_test(test_recv_too_many_fds),
		cmocka_unit_test(test_recv_hostile_lines),
		cmocka_unit_test(test_parse_exit),
		cmocka_unit_test(test_client),
		cmocka_unit_test(test_ctl_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
