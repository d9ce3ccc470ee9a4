/*
 * session.c - one cold start seen from the client: connect as soon as the
 * instance's vsock socket accepts, then libember's invoke client for the
 * handshake, READY and two invokes, each step timed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "coldstart.h"
#include "invoke.h"
#include "proto/invoke.h"

void series_add(struct series *s, const struct run *r)
{
	s_add(&s->total, r->total);
	s_add(&s->sock, r->sock);
	s_add(&s->hs, r->hs - r->sock);
	s_add(&s->ready, r->ready - r->hs);
	s_add(&s->invoke, r->total - r->ready);
	s_add(&s->warm, r->warm);
	if (r->restore > 0)
		s_add(&s->restore, r->restore);
	if (r->runstart > 0)
		s_add(&s->runstart, r->runstart);
	if (r->minflt >= 0)
		s_add(&s->minflt, (double)r->minflt);
	if (r->exits_inv > 0) {
		s_add(&s->exits_hs, (double)r->exits_hs);
		s_add(&s->exits_ready, (double)r->exits_ready);
		s_add(&s->exits_inv, (double)r->exits_inv);
		s_add(&s->exits_warm, (double)r->exits_warm);
	}
}

static uint64_t kvm_runs(void)
{
	return __atomic_load_n(&g_kvm_runs, __ATOMIC_RELAXED);
}

void series_fail(struct series *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->failures++) {
		va_start(ap, fmt);
		vsnprintf(s->first_error, sizeof(s->first_error), fmt, ap);
		va_end(ap);
		fprintf(stderr, "coldstart: %s\n", s->first_error);
	}
}

const char g_req[] = "hello, ember";

/* Milliseconds left until `deadline`, at least 1 (the client's timeouts
 * must be positive). */
static int ms_until(uint64_t deadline)
{
	uint64_t t = now_ns();

	return t >= deadline ? 1 : (int)((deadline - t + 999999) / 1000000);
}

/* From client `c` whose handshake is done (owned from here on): READY, an
 * invoke (checked to echo), a second warm invoke. Fills r->ready, total,
 * warm relative to t0; `pid` > 0 is sampled for page faults. */
static int finish_start(struct inv_client *c, uint64_t t0, pid_t pid,
			struct run *r, char *why, size_t whylen)
{
	struct inv_result res = { 0 };
	long flt0 = -1, flt1;
	int ret;
	uint64_t t, x0 = kvm_runs(), x1;

	ret = inv_client_wait_ready(c, 10000);
	if (ret < 0) {
		snprintf(why, whylen, "READY: %s", strerror(-ret));
		goto out;
	}
	r->ready = us_since(t0, now_ns());
	x1 = kvm_runs();
	r->exits_ready = (long)(x1 - x0);
	if (pid > 0)
		flt0 = proc_minflt(pid);
	if (inv_client_invoke(c, g_req, sizeof(g_req) - 1, 10000, &res) !=
		    EMBER_INVOKE_OK ||
	    res.len != sizeof(g_req) - 1 ||
	    memcmp(res.payload, g_req, res.len)) {
		snprintf(why, whylen, "invoke: %.200s", res.msg[0] ? res.msg :
			 "wrong echo");
		ret = -EIO;
		goto out;
	}
	t = now_ns();
	r->total = us_since(t0, t);
	x0 = kvm_runs();
	r->exits_inv = (long)(x0 - x1);
	flt1 = pid > 0 ? proc_minflt(pid) : -1;
	r->minflt = flt0 >= 0 && flt1 >= 0 ? flt1 - flt0 : -1;
	inv_result_free(&res);
	memset(&res, 0, sizeof(res));
	if (inv_client_invoke(c, g_req, sizeof(g_req) - 1, 10000, &res) !=
	    EMBER_INVOKE_OK) {
		snprintf(why, whylen, "second invoke: %.200s", res.msg);
		ret = -EIO;
		goto out;
	}
	r->warm = us_since(t, now_ns());
	r->exits_warm = (long)(kvm_runs() - x0);
	ret = 0;
out:
	inv_result_free(&res);
	inv_client_destroy(c);
	return ret;
}

/* A whole session with a starting instance behind `sock`: connect as soon
 * as the socket accepts (r->sock), the hybrid-vsock handshake (r->hs),
 * then finish_start(). While the guest's vsock driver is not up yet (a
 * boot from scratch) the VMM refuses the handshake by closing the
 * connection: reconnect until it is accepted or 10 s pass. */
int start_session(const char *sock, pid_t pid, uint64_t t0,
		  struct run *r, char *why, size_t whylen)
{
	uint64_t deadline = t0 + 10000000000ull;
	const struct timespec pause = { 0, 100000 };
	struct inv_client *c;
	int fd, ret;
	uint64_t x0 = 0;

	r->sock = 0;
	for (;;) {
		fd = connect_wait(sock, pid, deadline);
		if (fd < 0) {
			snprintf(why, whylen, "connect %s: %s%s", sock,
				 strerror(-fd), fd == -ECHILD ?
				 " (the VMM exited: see its log)" : "");
			return fd;
		}
		if (r->sock == 0) {
			r->sock = us_since(t0, now_ns());
			x0 = kvm_runs();
		}
		/* Takes fd over, closed on failure. */
		c = inv_client_handshake_fd(fd, EMBER_INV_VSOCK_PORT,
					    ms_until(deadline), &ret);
		if (c)
			break;
		if ((ret != -EPIPE && ret != -ECONNRESET &&
		     ret != -ECONNREFUSED) || now_ns() > deadline) {
			snprintf(why, whylen, "handshake: %s", strerror(-ret));
			return ret;
		}
		nanosleep(&pause, NULL);
	}
	r->hs = us_since(t0, now_ns());
	r->exits_hs = (long)(kvm_runs() - x0);
	return finish_start(c, t0, pid, r, why, whylen);
}

int carried_session(int fd, uint64_t t0, struct run *r, char *why,
		    size_t whylen)
{
	struct inv_client *c;
	int ret;

	r->sock = r->hs = 0;
	c = inv_client_from_carried_fd(fd, &ret); /* takes fd over */
	if (!c) {
		snprintf(why, whylen, "client: %s", strerror(-ret));
		return ret;
	}
	return finish_start(c, t0, 0, r, why, whylen);
}
