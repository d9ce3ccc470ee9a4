/*
 * invoke.c - host side of the invocation protocol: see invoke.h.
 *
 * One non-blocking fd pair and one poll() loop: the request is written while
 * frames are read, so a handler that logs before it has read all of a large
 * request cannot deadlock us (both pipe directions full). Every length the
 * peer sends is checked by proto/invoke.c before any payload is read; only a
 * RESULT for the request in flight gets a buffer of its (checked) length,
 * every other payload lands in a fixed buffer of the largest small limit.
 */
#define LOG_MOD "invoke"

#include "invoke.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proto/invoke.h"

/* Extra wait past the request's deadline, so the guest's own TIMEOUT report
 * (with the logs gathered so far) wins over our local timeout. */
#define INV_GRACE_MS 200
/* The hybrid vsock handshake reply "OK <u32>\n" is at most 14 bytes. */
#define INV_HANDSHAKE_MAX 32

_Static_assert(EMBER_INV_MAX_LOG >= EMBER_INV_MAX_ERROR &&
		       EMBER_INV_MAX_LOG >= EMBER_INV_MAX_READY &&
		       EMBER_INV_MAX_LOG >= EMBER_INV_MAX_PING,
	       "small frames must fit the fixed scratch buffer");

struct inv_client {
	int rfd, wfd;
	int own;
	int is_sock;     /* wfd is a socket: send() with MSG_NOSIGNAL */
	int ready;       /* READY seen (or not expected) */
	int broken;      /* a timeout or transport error happened */
	uint64_t next_id;
	size_t log_cap;
	/* A SYNC frame owed to a runtime whose READY asked for one: written
	 * before anything else we send (docs/function-abi.md). */
	uint8_t sync[EMBER_INV_HDR_SIZE + EMBER_INV_SYNC_LEN];
	size_t sync_len, sync_off;
	/* Logs that arrive outside an invocation (handler initialisation)
	 * are kept here and handed to the next result. */
	char *logs;
	size_t logs_len, logs_dropped;
	struct ember_inv_dec dec;
	size_t rpos, rlen;
	uint8_t rbuf[64 * 1024];
	uint8_t small[EMBER_INV_MAX_LOG];
};

enum op_kind { OP_READY, OP_INVOKE, OP_PING };

/* What the frame loop is waiting for, and where the frames go. */
struct op {
	enum op_kind kind;
	uint64_t id;
	int done;
	int err;                 /* negative errno: transport/protocol */
	struct inv_result *res;  /* OP_INVOKE */
	uint8_t *result_buf;     /* RESULT payload being received */
	const void *ping;        /* OP_PING expected echo */
	size_t ping_len;
	/* Output still to write: header then payload. */
	uint8_t hdr[EMBER_INV_HDR_SIZE];
	size_t hoff, plen, poff;
	const uint8_t *pay;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Copies peer text into dst for display: bounded, NUL-terminated, and with
 * control bytes replaced so a hostile message cannot drive a terminal. */
static void copy_text(char *dst, size_t cap, const uint8_t *src, size_t len)
{
	size_t i;

	if (cap == 0)
		return;
	if (len > cap - 1)
		len = cap - 1;
	for (i = 0; i < len; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : '?';
	dst[len] = '\0';
}

static struct inv_client *client_alloc(int *err)
{
	struct inv_client *c = calloc(1, sizeof(*c));

	if (!c) {
		*err = -ENOMEM;
		return NULL;
	}
	c->rfd = c->wfd = -1;
	c->next_id = 1;
	c->log_cap = INV_LOG_CAP_DEFAULT;
	ember_inv_dec_init(&c->dec);
	return c;
}

struct inv_client *inv_client_from_fds(int rfd, int wfd, int own, int *err)
{
	struct inv_client *c;
	struct stat st;
	int ret;

	if (rfd < 0 || wfd < 0) {
		*err = -EINVAL;
		return NULL;
	}
	c = client_alloc(err);
	if (!c)
		return NULL;
	ret = set_nonblock(rfd);
	if (!ret && wfd != rfd)
		ret = set_nonblock(wfd);
	if (ret) {
		free(c);
		*err = ret;
		return NULL;
	}
	c->rfd = rfd;
	c->wfd = wfd;
	c->own = own;
	c->is_sock = fstat(wfd, &st) == 0 && S_ISSOCK(st.st_mode);
	c->ready = 1; /* a plain process sends no READY */
	return c;
}

void inv_client_set_log_cap(struct inv_client *c, size_t cap)
{
	c->log_cap = cap;
}

void inv_client_destroy(struct inv_client *c)
{
	if (!c)
		return;
	if (c->own) {
		close(c->rfd);
		if (c->wfd != c->rfd)
			close(c->wfd);
	}
	free(c->logs);
	free(c);
}

void inv_result_free(struct inv_result *res)
{
	free(res->payload);
	free(res->logs);
	res->payload = NULL;
	res->logs = NULL;
	res->len = res->logs_len = 0;
}

/* Milliseconds left until deadline (>= 0), for poll(). */
static int ms_left(uint64_t deadline)
{
	uint64_t now = now_ns();

	if (now >= deadline)
		return 0;
	return (int)((deadline - now + 999999) / 1000000);
}

/* Keeps LOG bytes up to the cap; counts the rest. */
static void keep_log(struct inv_client *c, const uint8_t *p, size_t n)
{
	size_t room = c->log_cap > c->logs_len ? c->log_cap - c->logs_len : 0;
	size_t take = n < room ? n : room;
	char *nl;

	if (take) {
		nl = realloc(c->logs, c->logs_len + take);
		if (!nl) {
			take = 0;
		} else {
			c->logs = nl;
			memcpy(c->logs + c->logs_len, p, take);
			c->logs_len += take;
		}
	}
	c->logs_dropped += n - take;
}

static void finish(struct op *op, enum ember_invoke_status st, int err,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void finish(struct op *op, enum ember_invoke_status st, int err,
		   const char *fmt, ...)
{
	va_list ap;

	op->done = 1;
	op->err = err;
	if (op->res) {
		op->res->status = st;
		if (fmt) {
			va_start(ap, fmt);
			vsnprintf(op->res->msg, sizeof(op->res->msg), fmt, ap);
			va_end(ap);
		}
	}
}

/* Builds the SYNC frame a READY asked for: our wall clock and 32 fresh bytes
 * of entropy, so that a guest restored from a snapshot fixes its clock and
 * reseeds its RNG before the first INVOKE reaches its handler. 0, or -1 with
 * errno set when getrandom() fails. */
static int queue_sync(struct inv_client *c)
{
	uint8_t ent[EMBER_INV_SYNC_ENTROPY], pay[EMBER_INV_SYNC_LEN];
	struct timespec ts;
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(ent)) {
		n = getrandom(ent + got, sizeof(ent) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		got += (size_t)n;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ember_inv_sync_encode(pay,
			      (uint64_t)ts.tv_sec * 1000000000ull +
				      (uint64_t)ts.tv_nsec,
			      ent);
	/* Cannot fail: type, length and fields are within the limits. */
	c->sync_len = (size_t)ember_inv_frame_encode(c->sync, sizeof(c->sync),
						     EMBER_INV_SYNC, 0, 0, 0,
						     pay, sizeof(pay));
	c->sync_off = 0;
	return 0;
}

/* A validated header with a payload arrived: pick where the payload goes. */
static void on_header(struct inv_client *c, struct op *op)
{
	const struct ember_inv_hdr *h = &c->dec.hdr;

	if (h->type == EMBER_INV_RESULT) {
		if (op->kind != OP_INVOKE || h->id != op->id) {
			finish(op, EMBER_INVOKE_TRANSPORT, -EPROTO,
			       "protocol: RESULT for request %llu, none pending",
			       (unsigned long long)h->id);
			return;
		}
		/* The length is checked against EMBER_INV_MAX_PAYLOAD. */
		op->result_buf = malloc(h->length);
		if (!op->result_buf) {
			finish(op, EMBER_INVOKE_TRANSPORT, -ENOMEM,
			       "out of memory for a %u-byte result", h->length);
			return;
		}
		ember_inv_dec_set_buf(&c->dec, op->result_buf, h->length);
		return;
	}
	if (h->type == EMBER_INV_INVOKE) {
		finish(op, EMBER_INVOKE_TRANSPORT, -EPROTO,
		       "protocol: guest sent an INVOKE frame");
		return;
	}
	/* Every other type is bounded by the small limits. */
	ember_inv_dec_set_buf(&c->dec, c->small, sizeof(c->small));
}

/* A complete frame arrived. */
static void on_frame(struct inv_client *c, struct op *op)
{
	const struct ember_inv_hdr *h = &c->dec.hdr;
	struct inv_result *res = op->res;
	char text[EMBER_INV_MAX_ERROR + 1];

	switch (h->type) {
	case EMBER_INV_INVOKE: /* empty INVOKE: no HEADER event came */
		finish(op, EMBER_INVOKE_TRANSPORT, -EPROTO,
		       "protocol: guest sent an INVOKE frame");
		break;
	case EMBER_INV_READY:
		c->ready = 1;
		if ((h->flags & EMBER_INV_F_READY_SYNC) && queue_sync(c)) {
			finish(op, EMBER_INVOKE_TRANSPORT, -EIO,
			       "no entropy for the SYNC frame: %s",
			       strerror(errno));
			break;
		}
		if (op->kind == OP_READY)
			finish(op, EMBER_INVOKE_OK, 0, NULL);
		break;
	case EMBER_INV_LOG:
		if (h->flags & EMBER_INV_F_LOG_DROPPED) {
			static const char note[] =
				"\n[ember: guest dropped log output here]\n";
			keep_log(c, (const uint8_t *)note, sizeof(note) - 1);
		}
		keep_log(c, c->small, h->length);
		break;
	case EMBER_INV_RESULT:
		/* Empty frames skip the HEADER event: check again here. */
		if (op->kind != OP_INVOKE || h->id != op->id) {
			finish(op, EMBER_INVOKE_TRANSPORT, -EPROTO,
			       "protocol: RESULT for request %llu, none pending",
			       (unsigned long long)h->id);
			break;
		}
		res->fn_status = h->arg;
		res->payload = op->result_buf;
		res->len = h->length;
		op->result_buf = NULL;
		if (h->arg == 0)
			finish(op, EMBER_INVOKE_OK, 0, NULL);
		else
			finish(op, EMBER_INVOKE_FUNC_ERROR, 0,
			       "function returned status %u", h->arg);
		break;
	case EMBER_INV_ERROR:
		/* An ERROR about another request is stale or hostile: ignore
		 * it; id 0 is about the instance (e.g. init crashed). */
		if (h->id != 0 && (op->kind != OP_INVOKE || h->id != op->id)) {
			log_warn_rl("ignoring ERROR for request %llu",
				    (unsigned long long)h->id);
			break;
		}
		copy_text(text, sizeof(text), c->small, h->length);
		if (!res) {
			log_warn_rl("instance error %s: %s",
				    ember_inv_err_name(h->arg), text);
			finish(op, EMBER_INVOKE_TRANSPORT, -ECONNABORTED, NULL);
			break;
		}
		/* While waiting for READY inside an invoke, an ERROR is the
		 * function's initialisation failing: report it as such. */
		res->err_code = h->arg;
		finish(op,
		       h->arg == EMBER_ERR_TIMEOUT ? EMBER_INVOKE_TIMEOUT
						   : EMBER_INVOKE_FUNC_ERROR,
		       op->kind == OP_INVOKE ? 0 : -ECONNABORTED, "%s: %s",
		       ember_inv_err_name(h->arg), text);
		break;
	case EMBER_INV_PONG:
		if (op->kind == OP_PING && h->id == op->id &&
		    h->length == op->ping_len &&
		    (h->length == 0 || !memcmp(c->small, op->ping, h->length)))
			finish(op, EMBER_INVOKE_OK, 0, NULL);
		break;
	default:
		/* PING from the guest: the host does not answer (see
		 * docs/function-abi.md). */
		break;
	}
}

/* Feeds buffered bytes to the decoder until the op completes or the buffer
 * is empty. */
static void drain_rbuf(struct inv_client *c, struct op *op)
{
	size_t used;
	int r;

	while (!op->done && c->rpos < c->rlen) {
		r = ember_inv_dec_feed(&c->dec, c->rbuf + c->rpos,
				       c->rlen - c->rpos, &used);
		c->rpos += used;
		if (r < 0) {
			finish(op, EMBER_INVOKE_TRANSPORT, -EPROTO,
			       "protocol: bad frame from peer: %s (type %u, length %u)",
			       ember_inv_strerror(r), c->dec.hdr.type,
			       c->dec.hdr.length);
			return;
		}
		if (r == EMBER_INV_DEC_HEADER)
			on_header(c, op);
		else if (r == EMBER_INV_DEC_FRAME)
			on_frame(c, op);
	}
	if (c->rpos == c->rlen)
		c->rpos = c->rlen = 0;
}

static int out_pending(const struct inv_client *c, const struct op *op)
{
	return c->sync_off < c->sync_len || op->hoff < sizeof(op->hdr) ||
	       op->poff < op->plen;
}

/* Writes as much of the pending output (an owed SYNC first, then the op's
 * frame) as the fd takes. 0 or -errno. */
static int flush_out(struct inv_client *c, struct op *op)
{
	struct iovec iov[3];
	struct msghdr mh = { .msg_iov = iov };
	ssize_t n;
	size_t k;

	while (out_pending(c, op)) {
		k = 0;
		if (c->sync_off < c->sync_len) {
			iov[k].iov_base = c->sync + c->sync_off;
			iov[k++].iov_len = c->sync_len - c->sync_off;
		}
		if (op->hoff < sizeof(op->hdr)) {
			iov[k].iov_base = op->hdr + op->hoff;
			iov[k++].iov_len = sizeof(op->hdr) - op->hoff;
		}
		if (op->poff < op->plen) {
			iov[k].iov_base = (void *)(uintptr_t)(op->pay + op->poff);
			iov[k++].iov_len = op->plen - op->poff;
		}
		mh.msg_iovlen = k;
		if (c->is_sock)
			n = sendmsg(c->wfd, &mh, MSG_NOSIGNAL);
		else
			n = writev(c->wfd, iov, (int)k);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		k = (size_t)n;
		if (c->sync_off < c->sync_len) {
			size_t y = c->sync_len - c->sync_off;

			y = k < y ? k : y;
			c->sync_off += y;
			k -= y;
		}
		if (op->hoff < sizeof(op->hdr)) {
			size_t h = sizeof(op->hdr) - op->hoff;

			h = k < h ? k : h;
			op->hoff += h;
			k -= h;
		}
		op->poff += k;
	}
	return 0;
}

/* The loop: write pending output, read and decode frames, until the op is
 * done or the deadline passes. */
static void run_op(struct inv_client *c, struct op *op, uint64_t deadline)
{
	struct pollfd pfd[2];
	int nfds, ret, pending;
	ssize_t n;

	drain_rbuf(c, op);
	while (!op->done) {
		pending = out_pending(c, op);
		if (pending) {
			ret = flush_out(c, op);
			if (ret) {
				finish(op, EMBER_INVOKE_TRANSPORT, ret,
				       "write to instance: %s", strerror(-ret));
				break;
			}
			pending = out_pending(c, op);
		}
		pfd[0] = (struct pollfd){ .fd = c->rfd, .events = POLLIN };
		nfds = 1;
		if (pending) {
			if (c->wfd == c->rfd) {
				pfd[0].events |= POLLOUT;
			} else {
				pfd[1] = (struct pollfd){ .fd = c->wfd,
							  .events = POLLOUT };
				nfds = 2;
			}
		}
		ret = poll(pfd, (nfds_t)nfds, ms_left(deadline));
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			finish(op, EMBER_INVOKE_TRANSPORT, -errno, "poll: %s",
			       strerror(errno));
			break;
		}
		if (ret == 0) {
			finish(op, EMBER_INVOKE_TIMEOUT, -ETIMEDOUT,
			       "no answer before the deadline");
			break;
		}
		/* POLLHUP with data still buffered: read until EOF first. */
		if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = read(c->rfd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			finish(op, EMBER_INVOKE_TRANSPORT, -errno,
			       "read from instance: %s", strerror(errno));
			break;
		}
		if (n == 0) {
			finish(op, EMBER_INVOKE_TRANSPORT, -EPIPE,
			       ember_inv_dec_idle(&c->dec)
				       ? "instance closed the connection"
				       : "instance closed the connection inside a frame");
			break;
		}
		c->rlen += (size_t)n;
		drain_rbuf(c, op);
	}
	/* A SYNC owed since the READY that ended this op: send it now if the
	 * socket takes it, so the guest fixes its clock before it is needed;
	 * whatever is left goes out ahead of the next op's frame. */
	if (op->done && !op->err && c->sync_off < c->sync_len) {
		struct op none = { .hoff = sizeof(none.hdr) };

		if (flush_out(c, &none))
			c->broken = 1;
	}
	free(op->result_buf);
	op->result_buf = NULL;
}

int inv_client_wait_ready(struct inv_client *c, int timeout_ms)
{
	struct op op = { .kind = OP_READY };

	if (c->broken)
		return -EIO;
	if (c->ready)
		return 0;
	/* Nothing to write. */
	op.hoff = sizeof(op.hdr);
	run_op(c, &op, now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull);
	if (op.err)
		c->broken = 1;
	return op.err;
}

static void take_logs(struct inv_client *c, struct inv_result *res)
{
	res->logs = c->logs;
	res->logs_len = c->logs_len;
	res->logs_dropped = c->logs_dropped;
	c->logs = NULL;
	c->logs_len = c->logs_dropped = 0;
}

enum ember_invoke_status inv_client_invoke(struct inv_client *c,
					   const void *in, size_t len,
					   int timeout_ms,
					   struct inv_result *res)
{
	struct op op = { .kind = OP_INVOKE, .res = res };
	uint64_t start, deadline;
	int ret;

	memset(res, 0, sizeof(*res));
	if (c->broken) {
		res->status = EMBER_INVOKE_TRANSPORT;
		snprintf(res->msg, sizeof(res->msg),
			 "connection unusable after an earlier failure");
		return res->status;
	}
	if (len > EMBER_INV_MAX_PAYLOAD || timeout_ms <= 0 || (len && !in)) {
		res->status = EMBER_INVOKE_TRANSPORT;
		snprintf(res->msg, sizeof(res->msg),
			 len > EMBER_INV_MAX_PAYLOAD
				 ? "request too large: %zu bytes, limit %u"
				 : "invalid request (%zu bytes, limit %u)",
			 len, EMBER_INV_MAX_PAYLOAD);
		return res->status;
	}
	start = now_ns();
	deadline = start + ((uint64_t)timeout_ms + INV_GRACE_MS) * 1000000ull;
	op.id = c->next_id++;
	ret = ember_inv_hdr_encode(op.hdr, EMBER_INV_INVOKE, 0,
				   (uint32_t)timeout_ms, (uint32_t)len, op.id);
	if (ret) { /* cannot happen: checked above */
		res->status = EMBER_INVOKE_TRANSPORT;
		snprintf(res->msg, sizeof(res->msg), "encode: %s",
			 ember_inv_strerror(ret));
		return res->status;
	}
	op.pay = in;
	op.plen = len;

	if (!c->ready) {
		/* The instance must say READY before the INVOKE is sent; an
		 * ERROR it sends instead is the function's (init) error. */
		struct op rop = { .kind = OP_READY, .res = res,
				  .hoff = sizeof(rop.hdr) };

		run_op(c, &rop, deadline);
		if (rop.err) {
			/* res->status/msg were set by the failure. */
			c->broken = 1;
			take_logs(c, res);
			return res->status;
		}
	}
	run_op(c, &op, deadline);
	res->elapsed_ns = now_ns() - start;
	if (res->status == EMBER_INVOKE_TIMEOUT ||
	    res->status == EMBER_INVOKE_TRANSPORT)
		c->broken = 1;
	take_logs(c, res);
	return res->status;
}

int inv_client_ping(struct inv_client *c, const void *data, size_t len,
		    int timeout_ms)
{
	struct op op = { .kind = OP_PING, .ping = data, .ping_len = len };
	int ret;

	if (c->broken)
		return -EIO;
	if (len > EMBER_INV_MAX_PING || (len && !data))
		return -EINVAL;
	op.id = c->next_id++;
	ret = ember_inv_hdr_encode(op.hdr, EMBER_INV_PING, 0, 0, (uint32_t)len,
				   op.id);
	if (ret)
		return -EINVAL;
	op.pay = data;
	op.plen = len;
	run_op(c, &op, now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull);
	if (op.err)
		c->broken = 1;
	return op.err;
}

/* Reads the "OK <port>\n" reply of the hybrid vsock handshake; bytes past the
 * newline already belong to the stream and stay in rbuf. */
static int read_handshake(struct inv_client *c, uint64_t deadline)
{
	struct pollfd pfd = { .fd = c->rfd, .events = POLLIN };
	uint8_t *nl;
	size_t i, len;
	ssize_t n;
	int ret;

	for (;;) {
		nl = memchr(c->rbuf, '\n', c->rlen);
		if (nl)
			break;
		if (c->rlen >= INV_HANDSHAKE_MAX)
			return -EPROTO;
		ret = poll(&pfd, 1, ms_left(deadline));
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return -errno;
		if (ret == 0)
			return -ETIMEDOUT;
		n = read(c->rfd, c->rbuf + c->rlen, INV_HANDSHAKE_MAX - c->rlen);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) /* Firecracker closes when nobody listens */
			return -ECONNREFUSED;
		c->rlen += (size_t)n;
	}
	len = (size_t)(nl - c->rbuf);
	if (len < 4 || len > 3 + 10 || memcmp(c->rbuf, "OK ", 3))
		return -EPROTO;
	for (i = 3; i < len; i++)
		if (c->rbuf[i] < '0' || c->rbuf[i] > '9')
			return -EPROTO;
	c->rpos = len + 1;
	return 0;
}

/* "CONNECT <port>\n" then the "OK <n>\n" reply, on c's socket. */
static int handshake(struct inv_client *c, uint32_t port, uint64_t deadline)
{
	struct pollfd pfd = { .fd = c->wfd, .events = POLLOUT };
	char line[32];
	int n = snprintf(line, sizeof(line), "CONNECT %u\n", port);

	/* A fresh socket's buffer takes 16 bytes; poll once in case. */
	if (poll(&pfd, 1, ms_left(deadline)) <= 0)
		return -ETIMEDOUT;
	if (send(c->wfd, line, (size_t)n, MSG_NOSIGNAL) != n)
		return errno ? -errno : -EIO;
	return read_handshake(c, deadline);
}

/* A client on connected stream socket `fd` (taken over), READY pending. */
static struct inv_client *client_on_socket(int fd, int *err)
{
	struct inv_client *c;
	int ret = set_nonblock(fd);

	if (ret < 0) {
		*err = ret;
		return NULL;
	}
	c = client_alloc(err);
	if (!c)
		return NULL;
	c->rfd = c->wfd = fd;
	c->own = 1;
	c->is_sock = 1;
	return c;
}

struct inv_client *inv_client_from_vsock_fd(int fd, int *err)
{
	struct inv_client *c = client_on_socket(fd, err);

	if (!c)
		close(fd);
	return c;
}

struct inv_client *inv_client_from_carried_fd(int fd, int *err)
{
	struct inv_client *c = inv_client_from_vsock_fd(fd, err);

	if (c)
		c->ready = 1;
	return c;
}

struct inv_client *inv_client_handshake_fd(int fd, uint32_t port,
					   int timeout_ms, int *err)
{
	struct inv_client *c;
	int ret;

	if (timeout_ms <= 0) {
		close(fd);
		*err = -EINVAL;
		return NULL;
	}
	c = inv_client_from_vsock_fd(fd, err);
	if (!c)
		return NULL;
	ret = handshake(c, port, now_ns() + (uint64_t)timeout_ms * 1000000ull);
	if (ret < 0) {
		inv_client_destroy(c);
		*err = ret;
		return NULL;
	}
	return c;
}

/* One attempt at the hybrid handshake, until `deadline`. */
static struct inv_client *connect_once(const struct sockaddr_un *sa,
				       uint32_t port, uint64_t deadline,
				       int *err)
{
	struct inv_client *c;
	int fd, ret;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	/* A non-blocking AF_UNIX connect either completes at once or fails
	 * with EAGAIN when the listener's backlog is full: retry briefly. */
	while (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		ret = -errno;
		if (ret != -EAGAIN && ret != -EINTR)
			goto err_close;
		if (ms_left(deadline) == 0) {
			ret = -ETIMEDOUT;
			goto err_close;
		}
		poll(NULL, 0, 1);
	}
	c = client_on_socket(fd, err);
	if (!c) {
		ret = *err;
		goto err_close;
	}
	ret = handshake(c, port, deadline);
	if (ret) {
		inv_client_destroy(c);
		*err = ret;
		return NULL;
	}
	return c;

err_close:
	close(fd);
	*err = ret;
	return NULL;
}

/*
 * A VM that is starting (or restoring) has its socket before its guest
 * listens: the socket may not exist yet (ENOENT), or the device answers
 * CONNECT by closing (ECONNREFUSED: the guest sent RST). Those are retried
 * every millisecond until the deadline; anything else fails at once.
 */
struct inv_client *inv_client_connect(const char *uds_path, uint32_t port,
				      int timeout_ms, int *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t deadline;
	struct inv_client *c;
	int last = 0;

	if (!uds_path || strlen(uds_path) >= sizeof(sa.sun_path) ||
	    timeout_ms <= 0) {
		*err = uds_path && timeout_ms > 0 ? -ENAMETOOLONG : -EINVAL;
		return NULL;
	}
	memcpy(sa.sun_path, uds_path, strlen(uds_path) + 1);
	deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		c = connect_once(&sa, port, deadline, err);
		if (c)
			return c;
		if (*err == -ENOENT || *err == -ECONNREFUSED)
			last = *err;
		else if (*err != -ETIMEDOUT || !last)
			return NULL;
		if (ms_left(deadline) == 0) {
			/* Report why it never worked, not that time ran out. */
			*err = last;
			return NULL;
		}
		poll(NULL, 0, 1);
	}
}

enum ember_invoke_status ember_invoke(const char *uds_path, uint32_t port,
				      const void *in, size_t len,
				      int timeout_ms, struct inv_result *res)
{
	uint64_t start = now_ns();
	struct inv_client *c;
	int err = 0, left;

	memset(res, 0, sizeof(*res));
	c = inv_client_connect(uds_path, port, timeout_ms, &err);
	if (!c) {
		res->status = err == -ETIMEDOUT ? EMBER_INVOKE_TIMEOUT
						: EMBER_INVOKE_TRANSPORT;
		snprintf(res->msg, sizeof(res->msg), "connect %s port %u: %s",
			 uds_path ? uds_path : "(null)", port, strerror(-err));
		return res->status;
	}
	/* One budget for the whole call: what the handshake used is gone. */
	left = timeout_ms - (int)((now_ns() - start) / 1000000ull);
	if (left < 1)
		left = 1;
	inv_client_invoke(c, in, len, left, res);
	inv_client_destroy(c);
	return res->status;
}
