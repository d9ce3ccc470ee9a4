/*
 * stdio.c - the handler's stdin, stdout and stderr, bound to the invocation
 * stream (proto/invoke.h, docs/function-abi.md) over virtio-vsock.
 *
 * The guest listens on EMBER_INV_VSOCK_PORT. The first time the handler
 * blocks reading stdin it has finished initializing: we make the
 * EMBER_HC_READY hypercall (the snapshot point, and the end of "boot"), then
 * take the host's connection and send it a READY frame. From then on:
 *   stdin  = the bytes the host sends (INVOKE frames, PINGs), unchanged;
 *   stdout = the bytes the handler writes (RESULT/ERROR/PONG frames),
 *            unchanged, to the host;
 *   stderr = wrapped by us into LOG frames (stream stderr), injected only
 *            between complete stdout frames: the handler's stdout frame
 *            headers are parsed (ember_inv_dec) to know the boundaries.
 * Both directions are also parsed to know the request being served (the id
 * of the last INVOKE without RESULT/ERROR yet), for LOG ids and crash
 * reports. When the host closes or resets the connection between frames,
 * the next stdin read waits for a new one (and sends READY again): one VM
 * serves any number of connections. Output written while no host is
 * connected is dropped. A connection cut inside a frame is end of file.
 *
 * Without a vsock device (or with "debug" on the command line) stdout and
 * stderr are echoed on the serial console; without one, stdin is at EOF.
 */
#include "kernel.h"
#include "vsock.h"

#define STDERR_BUF EMBER_INV_MAX_LOG

static struct gvsock vs;
static bool have_vsock;
static int conn = -1;
static bool hc_ready_done, stdin_eof;
static struct ember_inv_dec in_dec, out_dec; /* host->handler, handler->host */
static uint64_t cur_req;
static uint64_t cur_deadline = SCHED_NEVER; /* of cur_req, CLOCK_MONOTONIC */
static uint32_t cur_deadline_ms;
static uint8_t err_buf[EMBER_INV_HDR_SIZE + STDERR_BUF];
static uint32_t err_len; /* payload bytes pending in err_buf */
static bool err_dropped;

struct gvsock *micro_vsock(void);
struct gvsock *micro_vsock(void)
{
	return have_vsock ? &vs : NULL;
}

uint64_t stdio_current_request(void)
{
	return cur_req;
}

uint64_t stdio_deadline(void)
{
	return cur_req ? cur_deadline : SCHED_NEVER;
}

/* The guest runtime enforces an INVOKE's deadline (docs/function-abi.md):
 * checked when threads are scheduled, when the vCPU idles, and at each
 * preemption tick, so a handler that spins is stopped too. */
void stdio_check_deadline(void)
{
	char msg[128];

	if (!cur_req || cur_deadline == SCHED_NEVER ||
	    time_mono_ns() < cur_deadline)
		return;
	ksnprintf(msg, sizeof(msg), "the request's deadline of %u ms passed; "
		  "the handler was stopped", cur_deadline_ms);
	kprintf("%s\n", msg);
	sched_dump();
	stdio_report_end(EMBER_ERR_TIMEOUT, msg);
	micro_exit_vm(MICRO_EXIT_TIMEOUT);
}

int stdio_init(void)
{
	int ret;

	ember_inv_dec_init(&in_dec);
	ember_inv_dec_init(&out_dec);
	for (uint32_t i = 0; i < boot_info->nr_virtio &&
			     i < EMBER_VIRTIO_MAX_DEVICES; i++) {
		if (boot_info->virtio[i].device_id != GVSOCK_DEVICE_ID)
			continue;
		ret = gvsock_init(&vs, (uintptr_t)boot_info->virtio[i].gpa, 4,
				  0);
		if (ret)
			return ret;
		ret = gvsock_listen(&vs, EMBER_INV_VSOCK_PORT);
		if (ret)
			return ret;
		gd_spin_init(&vs.spin, micro_spin_max_ns);
		have_vsock = true;
		return 0;
	}
	return -ENODEV;
}

/* Sends all of buf on the connection, waiting for credit. 0 or -errno. */
static int send_all(const void *buf, uint64_t len)
{
	const uint8_t *p = buf;

	while (len) {
		uint32_t chunk = (uint32_t)MIN(len, 1u << 20);
		long n;

		if (conn < 0)
			return -EPIPE;
		n = gvsock_send(&vs, conn, p, chunk);
		if (n == -GD_EAGAIN) {
			if (gvsock_wait(&vs) < 0)
				return -EIO;
			continue;
		}
		if (n < 0)
			return -EPIPE;
		p += n;
		len -= (uint64_t)n;
	}
	return 0;
}

static int send_frame(uint8_t type, uint16_t flags, uint32_t arg, uint64_t id,
		      const void *payload, uint32_t len)
{
	uint8_t hdr[EMBER_INV_HDR_SIZE];

	if (ember_inv_hdr_encode(hdr, type, flags, arg, len, id))
		return -EINVAL;
	if (send_all(hdr, sizeof(hdr)))
		return -EPIPE;
	return len ? send_all(payload, len) : 0;
}

/* Sends pending stderr bytes as one LOG frame, if stdout is between frames
 * (a LOG inside a RESULT would corrupt the stream). */
static void flush_stderr(void)
{
	if (!err_len || conn < 0 || !ember_inv_dec_idle(&out_dec))
		return;
	send_frame(EMBER_INV_LOG, err_dropped ? EMBER_INV_F_LOG_DROPPED : 0,
		   EMBER_INV_STREAM_STDERR, cur_req, err_buf, err_len);
	err_len = 0;
	err_dropped = false;
}

void stdio_log(const char *msg, size_t len)
{
	if (conn < 0)
		return;
	len = MIN(len, (size_t)(STDERR_BUF - err_len));
	memcpy(err_buf + err_len, msg, len);
	err_len += (uint32_t)len;
	flush_stderr();
}

/* Follows one direction's frames; `in` says which. Updates cur_req. */
static void track(struct ember_inv_dec *d, const uint8_t *p, uint64_t len,
		  bool in)
{
	while (len) {
		size_t used = 0;
		int r = ember_inv_dec_feed(d, p, len, &used);

		if (r < 0) {
			/* The stream is not framed (or corrupt): stop
			 * tracking, and treat it as between frames. */
			ember_inv_dec_init(d);
			return;
		}
		if (r == EMBER_INV_DEC_HEADER || r == EMBER_INV_DEC_FRAME) {
			if (in && d->hdr.type == EMBER_INV_INVOKE &&
			    cur_req != d->hdr.id) {
				/* arg: ms from receipt (docs/function-abi.md) */
				cur_req = d->hdr.id;
				cur_deadline_ms = d->hdr.arg;
				cur_deadline = d->hdr.arg ?
					time_mono_ns() +
						(uint64_t)d->hdr.arg * 1000000u :
					SCHED_NEVER;
				sched_want_ticks();
			}
			if (!in && (d->hdr.type == EMBER_INV_RESULT ||
				    d->hdr.type == EMBER_INV_ERROR) &&
			    d->hdr.id == cur_req && r == EMBER_INV_DEC_FRAME) {
				cur_req = 0;
				sched_want_ticks();
			}
		}
		p += used;
		len -= used;
	}
}

/* Takes a pending host connection, if any, and greets it with READY. */
static void try_accept(void)
{
	int h;

	if (conn >= 0)
		return;
	h = gvsock_accept(&vs, EMBER_INV_VSOCK_PORT);
	if (h < 0)
		return;
	conn = h;
	ember_inv_dec_init(&in_dec);
	ember_inv_dec_init(&out_dec);
	cur_req = 0;
	send_frame(EMBER_INV_READY, 0, 0, 0, "ember-micro", 11);
	flush_stderr();
}

void stdio_mark_ready(void)
{
	if (hc_ready_done || !have_vsock)
		return;
	/* The handler is initialized and waits for work. */
	hc_ready_done = true;
	hypercall(EMBER_HC_READY, 0);
}

static long stdio_read(void *buf, uint64_t len, bool nonblock)
{
	long n;

	if (!len)
		return 0;
	if (!have_vsock || stdin_eof)
		return 0;
	stdio_mark_ready();
	flush_stderr();
	for (;;) {
		try_accept();
		/* (Again after a wait: another thread may have unmapped it.) */
		if (!mm_access_ok(buf, len))
			return -EFAULT;
		if (conn >= 0) {
			n = gvsock_recv(&vs, conn, buf,
					(uint32_t)MIN(len, 1u << 30));
			if (n > 0) {
				track(&in_dec, buf, (uint64_t)n, true);
				return n;
			}
			if (n != -GD_EAGAIN) {
				/* The host closed (0) or reset the connection.
				 * Between frames the handler just waits for
				 * the next connection (a warm instance); cut
				 * inside a frame, the handler's stream is
				 * broken: it gets end of file. */
				bool mid = !ember_inv_dec_idle(&in_dec);

				gvsock_close(&vs, conn);
				conn = -1;
				cur_req = 0;
				if (mid) {
					kprintf("host left inside a frame: "
						"stdin at end of file\n");
					stdin_eof = true;
					return 0;
				}
				continue;
			}
		}
		/* Nothing yet: other threads run while this one waits. */
		n = gvsock_poll(&vs);
		if (n < 0) {
			kprintf("vsock device failed\n");
			return -EIO;
		}
		if (n == 0 && nonblock)
			return -EAGAIN;
		if (n == 0 && sched_block(&vs, 0, SCHED_NEVER,
					  SCHED_IO | SCHED_INTR) == WAKE_SIGNAL)
			return -ERESTARTSYS;
	}
}

bool stdio_poll(uint64_t until)
{
	/* A spin first: an answer that is already on its way costs less than
	 * a WAIT exit (news, or a broken device to report, ends it). */
	return have_vsock && gvsock_spin(&vs, until) != 0;
}

void stdio_woke(void)
{
	if (have_vsock)
		gd_spin_woke(&vs.spin);
}

static long stdio_write(int fd, const void *buf, uint64_t len)
{
	if (!len)
		return 0;
	/* The console shows output that has no other place to go yet (the
	 * handler's start-up errors before any host connected). */
	if (!have_vsock || micro_cmdline_debug || (conn < 0 && fd == 2))
		serial_write(buf, len);
	if (!have_vsock)
		return (long)len;
	if (fd == 2) {
		/* Collect; flush when full or when stdout is idle. */
		const uint8_t *p = buf;
		uint64_t left = len;

		while (left) {
			uint32_t n = (uint32_t)MIN(left, STDERR_BUF - err_len);

			memcpy(err_buf + err_len, p, n);
			err_len += n;
			p += n;
			left -= n;
			if (err_len == STDERR_BUF) {
				if (conn < 0 || !ember_inv_dec_idle(&out_dec)) {
					err_len = 0; /* nowhere to go yet */
					err_dropped = true;
					break;
				}
				flush_stderr();
			}
		}
		flush_stderr();
		return (long)len;
	}
	/* Tracked even without a host, so that a new connection (taken
	 * only when the handler reads stdin again) starts between frames. */
	track(&out_dec, buf, len, false);
	if (conn < 0)
		return (long)len; /* no host (any more): nowhere to send */
	if (send_all(buf, len))
		return -EPIPE;
	flush_stderr();
	return (long)len;
}

/* --- the three descriptors --- */

static long stdin_read(struct ofd *d, void *buf, uint64_t len)
{
	if (!mm_access_ok(buf, len))
		return -EFAULT;
	return stdio_read(buf, len, d->flags & O_NONBLOCK_FLAG);
}

/* Readable when bytes are waiting, or at end of file (a read returns at
 * once). No host connection, or one that closed between frames, is
 * nothing to read yet (the next read waits for the next connection). */
static unsigned stdin_poll(struct ofd *d)
{
	(void)d;
	if (!have_vsock || stdin_eof)
		return POLLIN | POLLHUP;
	gvsock_poll(&vs);
	if (hc_ready_done)
		try_accept();
	return conn >= 0 && gvsock_rx_avail(&vs, conn) ? POLLIN : 0;
}

static long stdout_write(struct ofd *d, const void *buf, uint64_t len)
{
	(void)d;
	if (!mm_access_ok(buf, len))
		return -EFAULT;
	return stdio_write(1, buf, len);
}

static long stderr_write(struct ofd *d, const void *buf, uint64_t len)
{
	(void)d;
	if (!mm_access_ok(buf, len))
		return -EFAULT;
	return stdio_write(2, buf, len);
}

static unsigned out_poll(struct ofd *d)
{
	(void)d;
	return POLLOUT;
}

/* They look like pipes (as for a handler run by a host process), so C
 * libraries buffer stdout fully. */
static const struct file_ops stdin_ops = {
	.mode = S_IFIFO | 0600,
	.io = true,
	.read = stdin_read,
	.poll = stdin_poll,
};
static const struct file_ops stdout_ops = {
	.mode = S_IFIFO | 0600,
	.write = stdout_write,
	.poll = out_poll,
};
static const struct file_ops stderr_ops = {
	.mode = S_IFIFO | 0600,
	.write = stderr_write,
	.poll = out_poll,
};

void stdio_install_fds(void)
{
	fs_install(&stdin_ops, NULL, 0 /* O_RDONLY */, false);
	fs_install(&stdout_ops, NULL, 1 /* O_WRONLY */, false);
	fs_install(&stderr_ops, NULL, 1, false);
}

/* Waits (bounded) until every queued packet was taken by the device. */
static void drain(void)
{
	uint64_t end = time_mono_ns() + 1000000000ULL;

	while (time_mono_ns() < end) {
		if (gvsock_poll(&vs) < 0)
			return;
		if (vs.tx_nfree == vs.txq.size && vs.ctrl_len == 0)
			return;
		micro_wait(1000000);
	}
}

void stdio_report_end(uint32_t code, const char *msg)
{
	if (!have_vsock)
		return;
	if (conn < 0 && code)
		try_accept(); /* a host waiting for READY gets the ERROR */
	if (conn >= 0) {
		flush_stderr();
		if (code && ember_inv_dec_idle(&out_dec))
			send_frame(EMBER_INV_ERROR, 0, code, cur_req, msg,
				   (uint32_t)MIN(strlen(msg),
						 (size_t)EMBER_INV_MAX_ERROR));
		drain();
		gvsock_close(&vs, conn);
		conn = -1;
	}
	drain();
}
