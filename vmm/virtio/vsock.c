/*
 * vsock.c - the virtio-vsock device (virtio 1.2, section 5.10): packets,
 * the three queues and the device's lifecycle. The connection table and
 * credit accounting are vsock_conn.c's, host sockets vsock_unix.c's.
 *
 * Data path, guest -> host: a tx chain's header is copied once into a local
 * struct and validated (vsock_hdr_check), the payload is written straight
 * from guest memory to the host socket; what the socket does not take is
 * kept in the connection's buffer (at most VSOCK_BUF_ALLOC bytes, the credit
 * we advertise, so a host peer that stops reading stalls the guest instead
 * of growing memory).
 * Data path, host -> guest: a host socket is only read when the guest has
 * both an rx buffer and credit for the bytes, directly into the rx buffer;
 * otherwise its EPOLLIN interest is dropped until credit or buffers return.
 * Connection-less packets (RSTs) wait in a bounded queue; when it is nearly
 * full the device stops taking tx chains until rx buffers drain it.
 */
#define LOG_MOD "vsock"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../log.h"
#include "mmio.h"
#include "virtq.h"
#include "vsock_int.h"

_Static_assert(sizeof(struct vsock_hdr) == VSOCK_HDR_SIZE,
	       "virtio_vsock_hdr is 44 bytes (5.10.6)");

/* Ports we hand out for host-initiated connections, as Firecracker does:
 * from 2^30 up, so they never collide with well-known guest service ports. */
#define VSOCK_LOCAL_PORT_BASE (1u << 30)

uint64_t vsock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- iovec helpers (guest buffers are scattered) ---- */

/* Builds in `dst` (at most `max` entries) the view of bytes [off, off + len)
 * of `src`. Returns the entry count; *got receives the bytes covered. */
static unsigned iov_slice(const struct iovec *src, unsigned n, uint64_t off,
			  uint64_t len, struct iovec *dst, unsigned max,
			  uint64_t *got)
{
	unsigned k = 0;

	*got = 0;
	for (unsigned i = 0; i < n && k < max && len > 0; i++) {
		uint64_t l = src[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		l -= off;
		if (l > len)
			l = len;
		dst[k].iov_base = (uint8_t *)src[i].iov_base + off;
		dst[k].iov_len = l;
		k++;
		*got += l;
		len -= l;
		off = 0;
	}
	return k;
}

static void iov_copy_to(const struct iovec *iov, unsigned n, const void *src,
			uint64_t len)
{
	const uint8_t *p = src;

	for (unsigned i = 0; i < n && len > 0; i++) {
		uint64_t l = iov[i].iov_len < len ? iov[i].iov_len : len;

		memcpy(iov[i].iov_base, p, l);
		p += l;
		len -= l;
	}
}

/* ---- header encoding: the wire is little-endian (5.10.6) ---- */

static void hdr_to_le(struct vsock_hdr *h)
{
	h->src_cid = htole64(h->src_cid);
	h->dst_cid = htole64(h->dst_cid);
	h->src_port = htole32(h->src_port);
	h->dst_port = htole32(h->dst_port);
	h->len = htole32(h->len);
	h->type = htole16(h->type);
	h->op = htole16(h->op);
	h->flags = htole32(h->flags);
	h->buf_alloc = htole32(h->buf_alloc);
	h->fwd_cnt = htole32(h->fwd_cnt);
}

static void hdr_from_le(struct vsock_hdr *h)
{
	h->src_cid = le64toh(h->src_cid);
	h->dst_cid = le64toh(h->dst_cid);
	h->src_port = le32toh(h->src_port);
	h->dst_port = le32toh(h->dst_port);
	h->len = le32toh(h->len);
	h->type = le16toh(h->type);
	h->op = le16toh(h->op);
	h->flags = le32toh(h->flags);
	h->buf_alloc = le32toh(h->buf_alloc);
	h->fwd_cnt = le32toh(h->fwd_cnt);
}

/* ---- guest -> host packets ---- */

int vsock_hdr_check(const struct vsock *v, const struct vsock_hdr *h,
		    uint64_t present)
{
	if (h->len > VSOCK_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (h->len != present)
		return -EBADMSG;
	if (h->src_cid != v->guest_cid || h->dst_cid != VSOCK_HOST_CID)
		return -EADDRNOTAVAIL;
	if (h->type != VSOCK_TYPE_STREAM)
		return -EPROTOTYPE;
	if (h->op < VSOCK_OP_REQUEST || h->op > VSOCK_OP_CREDIT_REQUEST)
		return -EOPNOTSUPP;
	return 0;
}

/* The guest named connection (dst_port, src_port) in a packet we cannot
 * accept: drop the connection if it exists and answer RST (5.10.6.6: an
 * unknown or invalid packet is answered with RST, an RST never is). */
static void reject_pkt(struct vsock *v, const struct vsock_hdr *h)
{
	struct vsock_conn *c = vsock_conn_lookup(v, h->dst_port, h->src_port);

	if (c) {
		vsock_conn_close(v, c, true);
		return;
	}
	if (h->op != VSOCK_OP_RST)
		vsock_queue_rst(v, h->dst_port, h->src_port);
}

static void handle_request(struct vsock *v, const struct vsock_hdr *h)
{
	struct vsock_conn *c = vsock_conn_lookup(v, h->dst_port, h->src_port);
	int fd;

	if (c) {
		/* A REQUEST for a live connection: the guest is confused. */
		log_warn_rl("duplicate REQUEST %u -> %u", h->src_port, h->dst_port);
		vsock_conn_close(v, c, true);
		return;
	}
	c = vsock_conn_alloc(v, -1);
	if (!c) {
		log_warn_rl("connection table full, refusing port %u", h->dst_port);
		vsock_queue_rst(v, h->dst_port, h->src_port);
		return;
	}
	fd = vsock_host_connect(v, h->dst_port);
	if (fd < 0) {
		vsock_conn_close(v, c, false); /* still a bare slot: no RST */
		vsock_queue_rst(v, h->dst_port, h->src_port); /* no listener */
		return;
	}
	c->fd = fd;
	c->state = VCONN_ESTABLISHED;
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	vsock_conn_hash(v, c);
	vsock_conn_kick(v, c, VPEND_RESPONSE);
	vsock_conn_rewatch(v, c);
}

static void handle_response(struct vsock *v, struct vsock_conn *c)
{
	char line[32];
	int n;
	ssize_t w;

	if (c->state != VCONN_REQ_SENT || (c->pend & VPEND_REQUEST)) {
		vsock_conn_close(v, c, true); /* a RESPONSE we never asked for */
		return;
	}
	/* Firecracker's hybrid vsock acknowledgement. The socket is fresh and
	 * its send buffer empty, so a short write means the peer is gone. */
	n = snprintf(line, sizeof(line), "OK %u\n", c->local_port);
	w = send(c->fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w != n) {
		vsock_conn_close(v, c, true);
		return;
	}
	c->state = VCONN_ESTABLISHED;
	vsock_conn_rewatch(v, c);
}

static void handle_rw(struct vsock *v, struct vsock_conn *c,
		      const struct iovec *payload, unsigned niov,
		      uint64_t present)
{
	uint32_t buffered = c->rx_cnt - c->fwd_cnt;
	uint64_t sent = 0;

	if (c->state != VCONN_ESTABLISHED ||
	    (c->guest_shut & VSOCK_SHUTDOWN_SEND)) {
		vsock_conn_close(v, c, true);
		return;
	}
	if (present > VSOCK_BUF_ALLOC - buffered) {
		/* More than the credit we advertised (5.10.6.3.1). */
		v->stat_credit_violations++;
		log_warn_rl("guest port %u exceeded its credit (%u buffered, %lu new)",
			    c->peer_port, buffered, (unsigned long)present);
		vsock_conn_close(v, c, true);
		return;
	}
	if (present == 0)
		return;
	c->rx_cnt += (uint32_t)present;
	if (c->buf_len == 0) {
		/* Fast path: straight from guest memory to the host socket. */
		struct iovec iov[VIRTQ_MAX_SEGS];
		struct msghdr msg = { .msg_iov = iov };
		uint64_t got;
		ssize_t n;

		msg.msg_iovlen = iov_slice(payload, niov, 0, present, iov,
					   VIRTQ_MAX_SEGS, &got);

		do {
			n = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		} while (n < 0 && errno == EINTR);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			vsock_conn_close(v, c, true);
			return;
		}
		sent = n > 0 ? (uint64_t)n : 0;
		c->fwd_cnt += (uint32_t)sent;
	}
	if (sent < present &&
	    vsock_conn_buffer(c, payload, niov, sent, present) < 0) {
		vsock_conn_close(v, c, true);
		return;
	}
	vsock_conn_maybe_credit_update(v, c);
	vsock_conn_rewatch(v, c);
}

static void handle_shutdown(struct vsock *v, struct vsock_conn *c,
			    uint32_t flags)
{
	if (c->state != VCONN_ESTABLISHED) {
		vsock_conn_close(v, c, true);
		return;
	}
	c->guest_shut |= flags & (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
	if (c->guest_shut & VSOCK_SHUTDOWN_RCV)
		c->pend &= ~VPEND_DATA; /* it takes no more data */
	if (vsock_conn_after_output(v, c))
		vsock_conn_rewatch(v, c);
}

void vsock_handle_tx_pkt(struct vsock *v, const struct vsock_hdr *h,
			 const struct iovec *payload, unsigned niov,
			 uint64_t present)
{
	struct vsock_conn *c;
	int ret = vsock_hdr_check(v, h, present);

	if (ret < 0) {
		v->stat_bad_pkts++;
		log_warn_rl("bad packet op %u %u -> %u: %s", h->op, h->src_port,
			    h->dst_port, strerror(-ret));
		reject_pkt(v, h);
		return;
	}
	if (h->op == VSOCK_OP_REQUEST) {
		handle_request(v, h);
		return;
	}
	c = vsock_conn_lookup(v, h->dst_port, h->src_port);
	if (!c) {
		if (h->op != VSOCK_OP_RST)
			vsock_queue_rst(v, h->dst_port, h->src_port);
		return;
	}
	/* Every packet carries the guest's current credit (5.10.6.3). */
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if ((c->pend & VPEND_DATA) && vsock_conn_peer_credit(c) > 0)
		vsock_conn_kick(v, c, 0); /* credit is back: resume reading */

	switch (h->op) {
	case VSOCK_OP_RESPONSE:
		handle_response(v, c);
		break;
	case VSOCK_OP_RST:
		vsock_conn_close(v, c, false);
		break;
	case VSOCK_OP_SHUTDOWN:
		handle_shutdown(v, c, h->flags);
		break;
	case VSOCK_OP_RW:
		handle_rw(v, c, payload, niov, present);
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break; /* the credit was taken above */
	case VSOCK_OP_CREDIT_REQUEST:
		if (c->state == VCONN_ESTABLISHED)
			vsock_conn_kick(v, c, VPEND_CREDIT);
		break;
	}
}

/* ---- host -> guest packets ---- */

static void conn_hdr(const struct vsock *v, struct vsock_conn *c,
		     struct vsock_hdr *h, uint16_t op, uint32_t flags,
		     uint32_t len)
{
	*h = (struct vsock_hdr){
		.src_cid = VSOCK_HOST_CID,
		.dst_cid = v->guest_cid,
		.src_port = c->local_port,
		.dst_port = c->peer_port,
		.len = len,
		.type = VSOCK_TYPE_STREAM,
		.op = op,
		.flags = flags,
		.buf_alloc = VSOCK_BUF_ALLOC,
		.fwd_cnt = c->fwd_cnt,
	};
	/* The guest now knows our fwd_cnt: no separate update is owed. */
	c->fwd_cnt_sent = c->fwd_cnt;
	c->pend &= ~VPEND_CREDIT;
}

/*
 * Tries to read host bytes for `c` into the payload area. Returns the byte
 * count (> 0), 0 when nothing was produced (state updated), or -1 when `c`
 * was closed.
 */
static ssize_t conn_read_host(struct vsock *v, struct vsock_conn *c,
			      const struct iovec *iov, unsigned niov,
			      uint64_t cap)
{
	struct iovec part[VIRTQ_MAX_SEGS];
	struct msghdr msg = { .msg_iov = part };
	uint64_t want = cap - VSOCK_HDR_SIZE, got;
	uint32_t credit = vsock_conn_peer_credit(c);
	ssize_t n;

	if (want > VSOCK_MAX_PAYLOAD)
		want = VSOCK_MAX_PAYLOAD;
	if (want > credit)
		want = credit;
	if (want == 0)
		return 0; /* no credit: DATA stays pending, EPOLLIN stays off */
	msg.msg_iovlen = iov_slice(iov, niov, VSOCK_HDR_SIZE, want, part,
				   VIRTQ_MAX_SEGS, &got);
	do {
		n = recvmsg(c->fd, &msg, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		c->pend &= ~VPEND_DATA;
		vsock_conn_rewatch(v, c);
		return 0;
	}
	if (n < 0) {
		vsock_conn_close(v, c, true); /* ECONNRESET and friends */
		return -1;
	}
	/* EOF: the host peer sends no more. Tell the guest (SHUTDOWN SEND);
	 * if the guest is done sending too, the connection is over. */
	c->host_eof = true;
	c->pend &= ~VPEND_DATA;
	if ((c->guest_shut & VSOCK_SHUTDOWN_SEND) && !c->buf_len) {
		vsock_conn_close(v, c, true);
		return -1;
	}
	c->shut_flags_out |= VSOCK_SHUTDOWN_SEND;
	c->pend |= VPEND_SHUTDOWN;
	vsock_conn_rewatch(v, c);
	return 0;
}

/* Produces c's next packet into the buffer: 1 when one was written, 0 when
 * c had nothing it could send now (it is then off the rx list, or closed). */
static int conn_produce(struct vsock *v, struct vsock_conn *c,
			const struct iovec *iov, unsigned niov, uint64_t cap,
			uint32_t *written)
{
	struct vsock_hdr h;
	ssize_t n;

	if (c->pend & VPEND_REQUEST) {
		if (v->reset_unacked) {
			/* Not before the guest handled the reset (see
			 * reset_handled): reset_handled puts c back. */
			vsock_rxlist_remove(v, c);
			return 0;
		}
		c->pend &= ~VPEND_REQUEST;
		conn_hdr(v, c, &h, VSOCK_OP_REQUEST, 0, 0);
		goto out_hdr;
	}
	if (c->pend & VPEND_RESPONSE) {
		c->pend &= ~VPEND_RESPONSE;
		conn_hdr(v, c, &h, VSOCK_OP_RESPONSE, 0, 0);
		goto out_hdr;
	}
	if ((c->pend & VPEND_DATA) &&
	    (c->state != VCONN_ESTABLISHED || c->host_eof ||
	     (c->guest_shut & VSOCK_SHUTDOWN_RCV)))
		c->pend &= ~VPEND_DATA;
	if (c->pend & VPEND_DATA) {
		n = conn_read_host(v, c, iov, niov, cap);
		if (n < 0)
			return 0;
		if (n > 0) {
			conn_hdr(v, c, &h, VSOCK_OP_RW, 0, (uint32_t)n);
			c->tx_cnt += (uint32_t)n;
			/* Round robin: others get the next buffer. */
			vsock_rxlist_remove(v, c);
			vsock_rxlist_append(v, c);
			hdr_to_le(&h);
			iov_copy_to(iov, niov, &h, sizeof(h));
			*written = VSOCK_HDR_SIZE + (uint32_t)n;
			return 1;
		}
	}
	if (c->pend & VPEND_CREDIT) {
		conn_hdr(v, c, &h, VSOCK_OP_CREDIT_UPDATE, 0, 0);
		goto out_hdr;
	}
	if ((c->pend & VPEND_SHUTDOWN) && !(c->pend & VPEND_DATA)) {
		c->pend &= ~VPEND_SHUTDOWN;
		conn_hdr(v, c, &h, VSOCK_OP_SHUTDOWN, c->shut_flags_out, 0);
		goto out_hdr;
	}
	/* Nothing sendable now: only DATA waiting for credit can remain, and
	 * the guest's next credit update puts c back on the list. */
	vsock_rxlist_remove(v, c);
	return 0;

out_hdr:
	if (!c->pend || c->pend == VPEND_DATA) {
		if (!(c->pend & VPEND_DATA) || vsock_conn_peer_credit(c) == 0)
			vsock_rxlist_remove(v, c);
	}
	hdr_to_le(&h);
	iov_copy_to(iov, niov, &h, sizeof(h));
	*written = VSOCK_HDR_SIZE;
	return 1;
}

int vsock_rx_fill(struct vsock *v, const struct iovec *iov, unsigned niov,
		  uint64_t cap, uint32_t *written)
{
	*written = 0;
	if (cap < VSOCK_HDR_SIZE)
		return -ENOBUFS;
	for (;;) {
		/* Connection-less packets first; a connection that closes while
		 * producing (peer gone) may have just queued its RST. */
		if (v->ctrl_len) {
			struct vsock_hdr h = v->ctrl[v->ctrl_head];

			v->ctrl_head = (v->ctrl_head + 1) % VSOCK_CTRL_QUEUE;
			v->ctrl_len--;
			hdr_to_le(&h);
			iov_copy_to(iov, niov, &h, sizeof(h));
			*written = VSOCK_HDR_SIZE;
			return 1;
		}
		if (!v->rx_head)
			return 0;
		if (conn_produce(v, v->rx_head, iov, niov, cap, written))
			return 1;
	}
}

/* ---- queues ---- */

/* The device-writable (or readable) segments of a chain as an iovec. */
static unsigned chain_iov(const struct virtq_chain *ch, bool writable,
			  struct iovec *iov)
{
	unsigned n = 0;

	for (unsigned i = 0; i < ch->nr_segs; i++) {
		if (ch->seg[i].writable != writable)
			continue;
		iov[n].iov_base = ch->seg[i].hva;
		iov[n].iov_len = ch->seg[i].len;
		n++;
	}
	return n;
}

static void mark_broken(struct vsock *v, const char *why)
{
	v->broken = true;
	vmmio_set_needs_reset(v->t, why);
}

static void handle_tx_chain(struct vsock *v, const struct virtq_chain *ch)
{
	struct iovec all[VIRTQ_MAX_SEGS], payload[VIRTQ_MAX_SEGS];
	struct vsock_hdr h;
	uint64_t present, got;
	unsigned n, np;

	if (ch->readable_len < VSOCK_HDR_SIZE) {
		/* Not even a header: nothing to answer to. */
		v->stat_bad_pkts++;
		log_warn_rl("tx chain of %lu bytes, shorter than a header",
			    (unsigned long)ch->readable_len);
		return;
	}
	/* Copy the header once; only the copy is used from here on. */
	virtq_chain_read(ch, 0, &h, sizeof(h));
	hdr_from_le(&h);
	present = ch->readable_len - VSOCK_HDR_SIZE;
	n = chain_iov(ch, false, all);
	np = iov_slice(all, n, VSOCK_HDR_SIZE, present, payload, VIRTQ_MAX_SEGS,
		       &got);
	vsock_handle_tx_pkt(v, &h, payload, np, got);
}

static void process_tx(struct vsock *v)
{
	struct virtq *q = &v->t->vq[VSOCK_QUEUE_TX];

	for (;;) {
		int r;

		/* Each tx packet queues at most one connection-less packet:
		 * keep room, or wait for rx buffers (back-pressure). */
		if (v->ctrl_len > VSOCK_CTRL_QUEUE - 4) {
			v->tx_stalled = true;
			return;
		}
		r = virtq_pop(q, v->mem, &v->tx_chain);
		if (r < 0) {
			mark_broken(v, "vsock: broken tx ring");
			return;
		}
		if (r == 0)
			break;
		handle_tx_chain(v, &v->tx_chain);
		virtq_push(q, v->tx_chain.head, 0);
		v->signal_mask |= 1u << VSOCK_QUEUE_TX;
	}
	v->tx_stalled = false;
}

/*
 * Fills guest rx buffers with pending packets. The device looks at the rx
 * ring whenever it has something to deliver, so the driver's notifications
 * of new rx buffers are only needed while packets wait for one: they are
 * switched off otherwise. That saves a wake-up of the event thread per
 * message (the guest reposts a buffer after each packet it takes).
 */
static void process_rx(struct vsock *v)
{
	struct virtq *q = &v->t->vq[VSOCK_QUEUE_RX];
	struct iovec iov[VIRTQ_MAX_SEGS];

	while (v->ctrl_len || v->rx_head) {
		uint32_t written = 0;
		unsigned n;
		int r;

		if (!v->rx_held) {
			r = virtq_pop(q, v->mem, &v->rx_chain);
			if (r == 0) {
				/* Out of buffers with packets waiting: ask
				 * to be told of new ones, then look again in
				 * case one came meanwhile. */
				virtq_set_notify(q, true);
				r = virtq_pop(q, v->mem, &v->rx_chain);
			}
			if (r < 0) {
				mark_broken(v, "vsock: broken rx ring");
				return;
			}
			if (r == 0)
				return; /* resumed by the next rx notify */
			v->rx_held = true;
		}
		n = chain_iov(&v->rx_chain, true, iov);
		r = vsock_rx_fill(v, iov, n, v->rx_chain.writable_len, &written);
		if (r == 0)
			return; /* keep the buffer for the next packet */
		if (r < 0)
			log_warn_rl("rx buffer of %lu bytes is too small",
				    (unsigned long)v->rx_chain.writable_len);
		virtq_push(q, v->rx_chain.head, written);
		v->rx_held = false;
		v->signal_mask |= 1u << VSOCK_QUEUE_RX;
	}
	virtq_set_notify(q, false); /* nothing waits for a buffer */
}

static void process_event(struct vsock *v)
{
	struct virtq *q = &v->t->vq[VSOCK_QUEUE_EVENT];

	while (v->event_pending) {
		uint32_t ev = htole32(VSOCK_EVENT_TRANSPORT_RESET);
		int r = virtq_pop(q, v->mem, &v->ev_chain);

		if (r < 0) {
			mark_broken(v, "vsock: broken event ring");
			return;
		}
		if (r == 0)
			return;
		if (v->ev_chain.writable_len < sizeof(ev)) {
			virtq_push(q, v->ev_chain.head, 0);
		} else {
			/* Read before the push: a polling guest may take the
			 * event and offer a new buffer the moment it is used. */
			v->reset_ev_avail = virtq_avail_idx(q);
			virtq_chain_write(&v->ev_chain, 0, &ev, sizeof(ev));
			virtq_push(q, v->ev_chain.head, sizeof(ev));
			v->event_pending = false;
		}
		v->signal_mask |= 1u << VSOCK_QUEUE_EVENT;
	}
}

/*
 * After a TRANSPORT_RESET (a restore), the guest must have handled it
 * before it sees a new host connection. The event and rx queues are
 * separate and the spec orders neither: a guest caught by the snapshot
 * after its look at the event queue takes a fresh REQUEST first, accepts
 * it, and then drops it with the old connections when it reads the event;
 * the host peer then waits forever (a clone of a busy VM that never
 * answers: snapshot-busy). Both Ember's guest driver and Linux's re-offer
 * the event buffer once they have handled the event, so a new avail entry
 * on the event queue is the sign. Until then host REQUESTs wait on their
 * handshake deadline. (A guest-initiated REQUEST sent before the guest
 * read the event is not covered: the guest then refuses its own
 * connection, and the host peer is closed when the guest says nothing
 * more.)
 */
static void reset_handled(struct vsock *v)
{
	const struct virtq *q = &v->t->vq[VSOCK_QUEUE_EVENT];

	if (!v->reset_unacked)
		return;
	if (v->event_pending || virtq_avail_idx(q) == v->reset_ev_avail)
		return;
	v->reset_unacked = false;
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[i];

		if (c->state == VCONN_REQ_SENT && (c->pend & VPEND_REQUEST))
			vsock_rxlist_append(v, c);
	}
}

void vsock_process_queues_locked(struct vsock *v)
{
	if (!v->t || v->broken || !vmmio_is_live(v->t))
		return;
	reset_handled(v);
	for (int round = 0; round < 64; round++) {
		process_tx(v);
		if (v->broken)
			return;
		process_rx(v);
		if (v->broken)
			return;
		if (!v->tx_stalled || v->ctrl_len > VSOCK_CTRL_QUEUE - 4)
			break;
	}
	process_event(v);
}

void vsock_unlock(struct vsock *v)
{
	struct vmmio_dev *t = v->t;
	unsigned mask = v->signal_mask;
	int fds[VSOCK_MAX_ZOMBIES];
	unsigned nfds = v->nr_zombies;

	v->signal_mask = 0;
	memcpy(fds, v->zombie, nfds * sizeof(fds[0]));
	v->nr_zombies = 0;
	pthread_mutex_unlock(&v->lock);
	vsock_host_reap(v, fds, nfds);
	for (unsigned q = 0; q < VSOCK_NR_QUEUES; q++)
		if (t && (mask & (1u << q)))
			vmmio_signal_used(t, q);
}

/* ---- virtio ops ---- */

static void drop_all_locked(struct vsock *v)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		vsock_conn_close(v, &v->conns[i], false);
	v->ctrl_head = v->ctrl_len = 0;
	v->tx_stalled = false;
}

/*
 * A driver reset forgets what the guest knew: connections it saw go.
 * Host peers still in their handshake (or whose REQUEST the guest never
 * received) are the host's business, not the driver's: a host that
 * connected while the guest was still bringing the device up keeps its
 * connection, and its REQUEST goes out once the driver is back.
 */
static void drop_guest_known_locked(struct vsock *v)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[i];

		if (c->state == VCONN_HANDSHAKE ||
		    (c->state == VCONN_REQ_SENT && (c->pend & VPEND_REQUEST)))
			continue;
		vsock_conn_close(v, c, false);
	}
	v->ctrl_head = v->ctrl_len = 0;
	v->tx_stalled = false;
}

static void vsock_config_read(void *dev, uint32_t off, uint8_t *data,
			      uint32_t len)
{
	struct vsock *v = dev;
	uint64_t cid = htole64(v->guest_cid);

	/* The transport checked off + len <= config_len (8). */
	if (off < sizeof(cid) && len <= sizeof(cid) - off)
		memcpy(data, (uint8_t *)&cid + off, len);
}

static void vsock_config_write(void *dev, uint32_t off, const uint8_t *data,
			       uint32_t len)
{
	(void)dev; /* guest_cid is read-only (5.10.4) */
	(void)off;
	(void)data;
	(void)len;
}

static int vsock_activate(void *dev, struct vmmio_dev *t)
{
	struct vsock *v = dev;

	pthread_mutex_lock(&v->lock);
	v->t = t;
	v->mem = t->mem;
	v->broken = false;
	v->rx_held = false;
	vsock_process_queues_locked(v);
	vsock_unlock(v);
	return 0;
}

static void vsock_notify(void *dev, unsigned q)
{
	struct vsock *v = dev;

	(void)q; /* any queue can unblock any other: serve them all */
	pthread_mutex_lock(&v->lock);
	vsock_process_queues_locked(v);
	vsock_unlock(v);
}

static void vsock_reset(void *dev)
{
	struct vsock *v = dev;

	pthread_mutex_lock(&v->lock);
	drop_guest_known_locked(v);
	v->t = NULL;
	v->mem = NULL;
	v->rx_held = false;
	v->broken = false;
	v->event_pending = false;
	v->reset_unacked = false;
	v->signal_mask = 0;
	vsock_unlock(v);
}

const struct virtio_dev_ops vsock_ops = {
	.name = "vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.nr_queues = VSOCK_NR_QUEUES,
	.queue_max = VSOCK_QUEUE_MAX,
	/* No feature bits: stream sockets only (5.10.3). */
	.features = 0,
	.config_len = sizeof(uint64_t),
	.config_read = vsock_config_read,
	.config_write = vsock_config_write,
	.activate = vsock_activate,
	.notify = vsock_notify,
	.reset = vsock_reset,
};

/*
 * Where host-initiated connections take their local ports from: a random
 * point of [2^30, 2^32 - 1). A restored guest may still talk about the
 * connections it had when the snapshot was taken (an RST for one it only
 * learns is gone when it reads the TRANSPORT_RESET): a fresh device that
 * handed out the same ports again would take those stale packets for its
 * new connections and drop them.
 */
static void pick_port_base(struct vsock *v)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint32_t)vsock_now_ms() * 2654435761u;
	v->next_local_port = VSOCK_LOCAL_PORT_BASE +
			     r % (0xffffffffu - VSOCK_LOCAL_PORT_BASE);
}

void vsock_quiesce(struct vsock *v)
{
	pthread_mutex_lock(&v->lock);
	/* An rx buffer taken for a packet that is not there yet: give it
	 * back, or the snapshot records it as the device's forever and every
	 * clone has one buffer less. */
	if (v->rx_held && v->t) {
		virtq_unpop(&v->t->vq[VSOCK_QUEUE_RX]);
		v->rx_held = false;
	}
	vsock_unlock(v);
}

void vsock_resume(struct vsock *v)
{
	pthread_mutex_lock(&v->lock);
	vsock_process_queues_locked(v);
	vsock_unlock(v);
}

void vsock_transport_reset(struct vsock *v)
{
	pthread_mutex_lock(&v->lock);
	drop_all_locked(v);
	pick_port_base(v);
	v->event_pending = true;
	v->reset_unacked = true;
	vsock_process_queues_locked(v);
	vsock_unlock(v);
}

int vsock_dev_init(struct vsock *v, uint64_t guest_cid)
{
	int ret;

	if (guest_cid < VSOCK_MIN_GUEST_CID || guest_cid > VSOCK_MAX_GUEST_CID)
		return -EINVAL;
	ret = -pthread_mutex_init(&v->lock, NULL);
	if (ret)
		return ret;
	v->guest_cid = guest_cid;
	v->listen_fd = -1;
	v->timer_fd = -1;
	pick_port_base(v);
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		v->conns[i].v = v;
		v->conns[i].fd = -1;
	}
	return 0;
}

void vsock_dev_fini(struct vsock *v)
{
	pthread_mutex_lock(&v->lock);
	drop_all_locked(v);
	v->t = NULL;
	vsock_unlock(v);
	pthread_mutex_destroy(&v->lock);
}
