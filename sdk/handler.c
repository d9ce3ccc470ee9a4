/*
 * handler.c - the SDK's invocation loop: see ember_handler.h and
 * docs/function-abi.md.
 *
 * Syscalls matter here (each costs ~3 us on a nested-PVM host, see
 * shared/PLATFORM.md), so the loop reads stdin through a 64 KiB buffer (a
 * small INVOKE arrives in one read) and writes each RESULT as one write(2):
 * the response buffer keeps room for the frame header in front of the data.
 */
#include "ember_handler.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/invoke.h"

/* Buffers above this are freed after each invocation so an idle handler
 * (what a snapshot captures) stays small. */
#define SDK_KEEP_MAX (1024u * 1024u)

static int out_fd = 1;
static uint8_t rbuf[64 * 1024];
static size_t rpos, rlen;

void ember_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* Best effort: a log that cannot be written is dropped. */
	if (write(2, line, (size_t)n) < 0)
		return;
}

static int write_full(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads exactly n bytes from stdin (through rbuf, or directly into dst for
 * large remainders; dst NULL discards). Returns the bytes read: n, or fewer
 * at end of file; -errno on error. */
static long read_in(void *dst, size_t n)
{
	uint8_t *d = dst;
	size_t got = 0, k;
	ssize_t r;

	while (got < n) {
		if (rpos < rlen) {
			k = rlen - rpos < n - got ? rlen - rpos : n - got;
			if (d)
				memcpy(d + got, rbuf + rpos, k);
			rpos += k;
			got += k;
			continue;
		}
		/* Large remainder: read straight into place, no copy. */
		if (d && n - got >= sizeof(rbuf))
			r = read(0, d + got, n - got);
		else {
			r = read(0, rbuf, sizeof(rbuf));
			rpos = 0;
			rlen = r > 0 ? (size_t)r : 0;
			if (r > 0)
				continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (long)got;
}

static int send_frame(uint8_t type, uint32_t arg, uint64_t id,
		      const void *p, uint32_t len)
{
	uint8_t buf[EMBER_INV_HDR_SIZE + EMBER_INV_MAX_ERROR];
	long n = ember_inv_frame_encode(buf, sizeof(buf), type, 0, arg, id, p,
					len);

	if (n < 0)
		return -EINVAL;
	return write_full(out_fd, buf, (size_t)n);
}

static int send_error(uint32_t code, uint64_t id, const char *msg)
{
	size_t n = strlen(msg);

	if (n > EMBER_INV_MAX_ERROR)
		n = EMBER_INV_MAX_ERROR;
	return send_frame(EMBER_INV_ERROR, code, id, msg, (uint32_t)n);
}

int ember_response_append(struct ember_response *resp, const void *p,
			  size_t n)
{
	size_t need, cap;
	uint8_t *f;

	if (n > EMBER_INV_MAX_PAYLOAD - resp->len) {
		resp->overflow = 1;
		return -E2BIG;
	}
	need = EMBER_INV_HDR_SIZE + resp->len + n;
	if (need > resp->cap_) {
		cap = resp->cap_ ? resp->cap_ : 4096;
		while (cap < need)
			cap *= 2;
		if (cap > EMBER_INV_HDR_SIZE + EMBER_INV_MAX_PAYLOAD)
			cap = EMBER_INV_HDR_SIZE + EMBER_INV_MAX_PAYLOAD;
		f = realloc(resp->frame_, cap);
		if (!f)
			return -ENOMEM;
		resp->frame_ = f;
		resp->cap_ = cap;
		resp->data = f + EMBER_INV_HDR_SIZE;
	}
	if (n)
		memcpy(resp->data + resp->len, p, n);
	resp->len += n;
	return 0;
}

int ember_response_puts(struct ember_response *resp, const char *s)
{
	return ember_response_append(resp, s, strlen(s));
}

void ember_response_reset(struct ember_response *resp)
{
	resp->len = 0;
	resp->overflow = 0;
}

/* Keeps the frame stream private: stray printf()s to stdout would corrupt
 * it, so frames go to a duplicate of fd 1 and fd 1 becomes stderr. A runtime
 * without fcntl/dup2 (or EMBER_SDK_KEEP_STDOUT set) keeps fd 1 as is. */
void ember_stdout_protect(void)
{
	static int done;
	int fd;

	if (done)
		return;
	done = 1;
	if (getenv("EMBER_SDK_KEEP_STDOUT"))
		return;
	fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return;
	if (dup2(2, 1) != 1) {
		close(fd);
		return;
	}
	out_fd = fd;
}

/* One INVOKE whose validated header is h: read, call, answer. 0 to go on,
 * or the run's exit code. */
static int serve(const struct ember_inv_hdr *h, ember_handler_fn fn,
		 void *ctx, struct ember_response *resp, uint8_t **req_buf,
		 size_t *req_cap)
{
	struct ember_request req = { .id = h->id, .len = h->length,
				     .deadline_ms = h->arg };
	uint8_t *b;
	long n;
	int ret, status;

	if (h->length > *req_cap) {
		b = realloc(*req_buf, h->length);
		if (!b) {
			if (read_in(NULL, h->length) != (long)h->length)
				return 2;
			ember_log("ember-sdk: no memory for a %u-byte request",
				  h->length);
			return send_error(EMBER_ERR_OOM, h->id,
					  "handler out of memory for request")
				       ? 3
				       : 0;
		}
		*req_buf = b;
		*req_cap = h->length;
	}
	n = read_in(*req_buf, h->length);
	if (n != (long)h->length) {
		ember_log("ember-sdk: stdin ended inside a request");
		return 2;
	}
	req.data = *req_buf;
	ember_response_reset(resp);
	/* Make sure data is valid even for an empty response. */
	if (ember_response_append(resp, NULL, 0))
		return send_error(EMBER_ERR_OOM, h->id, "handler out of memory")
			       ? 3
			       : 0;

	ret = fn(&req, resp, ctx);
	fflush(stdout);
	fflush(stderr);

	if (resp->overflow) {
		ret = send_error(EMBER_ERR_TOO_LARGE, h->id,
				 "response over the 6291456-byte limit");
	} else {
		status = ret == 0 ? 0 : ret > 0 ? ret : 1;
		ember_inv_hdr_encode(resp->frame_, EMBER_INV_RESULT, 0,
				     (uint32_t)status, (uint32_t)resp->len,
				     h->id);
		ret = write_full(out_fd, resp->frame_,
				 EMBER_INV_HDR_SIZE + resp->len);
	}
	if (*req_cap > SDK_KEEP_MAX) {
		free(*req_buf);
		*req_buf = NULL;
		*req_cap = 0;
	}
	if (resp->cap_ > SDK_KEEP_MAX) {
		free(resp->frame_);
		resp->frame_ = resp->data = NULL;
		resp->cap_ = 0;
	}
	return ret ? 3 : 0;
}

int ember_handler_run(ember_handler_fn fn, void *ctx)
{
	struct ember_response resp = { 0 };
	uint8_t hbuf[EMBER_INV_HDR_SIZE], small[EMBER_INV_MAX_PING];
	struct ember_inv_hdr h;
	uint8_t *req_buf = NULL;
	size_t req_cap = 0;
	char msg[160];
	long n;
	int ret = 0, r;

	ember_stdout_protect();
	for (;;) {
		n = read_in(hbuf, sizeof(hbuf));
		if (n == 0)
			break; /* clean end of the stream */
		if (n != (long)sizeof(hbuf)) {
			ember_log("ember-sdk: stdin ended inside a frame header");
			ret = 2;
			break;
		}
		r = ember_inv_hdr_decode(hbuf, &h);
		if (r == EMBER_INV_E2BIG && h.type == EMBER_INV_INVOKE) {
			/* The header is sound, only too long: skip the payload
			 * and refuse this request; the stream stays in sync. */
			snprintf(msg, sizeof(msg),
				 "request of %u bytes over the %u-byte limit",
				 h.length, EMBER_INV_MAX_PAYLOAD);
			ember_log("ember-sdk: %s", msg);
			if (read_in(NULL, h.length) != (long)h.length) {
				ret = 2;
				break;
			}
			if (send_error(EMBER_ERR_TOO_LARGE, h.id, msg)) {
				ret = 3;
				break;
			}
			continue;
		}
		if (r) {
			/* Unknown framing: nothing after this can be trusted. */
			snprintf(msg, sizeof(msg), "bad frame on stdin: %s",
				 ember_inv_strerror(r));
			ember_log("ember-sdk: %s", msg);
			send_error(EMBER_ERR_PROTOCOL, 0, msg);
			ret = 2;
			break;
		}
		if (h.type == EMBER_INV_INVOKE) {
			ret = serve(&h, fn, ctx, &resp, &req_buf, &req_cap);
			if (ret)
				break;
		} else if (h.type == EMBER_INV_PING) {
			if (read_in(small, h.length) != (long)h.length) {
				ret = 2;
				break;
			}
			if (send_frame(EMBER_INV_PONG, 0, h.id, small, h.length)) {
				ret = 3;
				break;
			}
		} else {
			ember_log("ember-sdk: ignoring a %s frame",
				  ember_inv_type_name(h.type));
			if (read_in(NULL, h.length) != (long)h.length) {
				ret = 2;
				break;
			}
		}
	}
	free(req_buf);
	free(resp.frame_);
	return ret;
}
