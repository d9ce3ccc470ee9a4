/*
 * vsock_conn.c - the virtio-vsock device's connection table and credit:
 * slots, the (local, peer) port lookup, the list of connections that owe
 * the guest a packet, the control queue of connection-less packets (RSTs),
 * credit-based flow control (5.10.6.3) and the ring of guest bytes not yet
 * written to the host socket. Packets are vsock.c's, host sockets
 * vsock_unix.c's.
 *
 * Every function here expects v->lock held.
 */
#define LOG_MOD "vsock"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "../log.h"
#include "vsock_int.h"

/* Send a CREDIT_UPDATE once the guest believes it has less than this much
 * of our buffer left but we have actually freed some of it. */
#define VSOCK_CREDIT_LOW (VSOCK_BUF_ALLOC / 4)

/* ---- connection table ---- */

static unsigned hash_idx(uint32_t local, uint32_t peer)
{
	uint32_t h = local * 2654435761u ^ (peer + 0x9e3779b9u) * 40503u;

	return (h ^ (h >> 16)) % VSOCK_HASH_BUCKETS;
}

struct vsock_conn *vsock_conn_lookup(struct vsock *v, uint32_t local_port,
				     uint32_t peer_port)
{
	struct vsock_conn *c = v->hash[hash_idx(local_port, peer_port)];

	for (; c; c = c->hnext)
		if (c->local_port == local_port && c->peer_port == peer_port)
			return c;
	return NULL;
}

void vsock_conn_hash(struct vsock *v, struct vsock_conn *c)
{
	unsigned i = hash_idx(c->local_port, c->peer_port);

	c->hnext = v->hash[i];
	v->hash[i] = c;
	c->hashed = true;
}

static void conn_unhash(struct vsock *v, struct vsock_conn *c)
{
	struct vsock_conn **pp = &v->hash[hash_idx(c->local_port, c->peer_port)];

	if (!c->hashed)
		return;
	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	}
	c->hnext = NULL;
	c->hashed = false;
}

struct vsock_conn *vsock_conn_alloc(struct vsock *v, int fd)
{
	if (v->nr_conns >= VSOCK_MAX_CONNS ||
	    v->nr_zombies >= VSOCK_MAX_ZOMBIES - VSOCK_MAX_CONNS)
		return NULL;
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[i];

		if (c->state != VCONN_FREE)
			continue;
		memset(c, 0, sizeof(*c));
		c->v = v;
		c->fd = fd;
		c->state = VCONN_HANDSHAKE; /* the caller sets the real state */
		v->nr_conns++;
		return c;
	}
	return NULL;
}

void vsock_rxlist_remove(struct vsock *v, struct vsock_conn *c)
{
	if (!c->in_rxlist)
		return;
	if (c->rx_prev)
		c->rx_prev->rx_next = c->rx_next;
	else
		v->rx_head = c->rx_next;
	if (c->rx_next)
		c->rx_next->rx_prev = c->rx_prev;
	else
		v->rx_tail = c->rx_prev;
	c->rx_next = c->rx_prev = NULL;
	c->in_rxlist = false;
}

void vsock_rxlist_append(struct vsock *v, struct vsock_conn *c)
{
	if (c->in_rxlist)
		return;
	c->rx_prev = v->rx_tail;
	c->rx_next = NULL;
	if (v->rx_tail)
		v->rx_tail->rx_next = c;
	else
		v->rx_head = c;
	v->rx_tail = c;
	c->in_rxlist = true;
}

void vsock_conn_kick(struct vsock *v, struct vsock_conn *c, uint32_t pend)
{
	c->pend |= pend;
	vsock_rxlist_append(v, c);
}

/* What the guest may still receive from us on `c` (5.10.6.3.1):
 * buf_alloc - (tx_cnt - fwd_cnt), zero if the guest's numbers are absurd. */
uint32_t vsock_conn_peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	if (in_flight > c->peer_buf_alloc)
		return 0;
	return c->peer_buf_alloc - in_flight;
}

void vsock_conn_rewatch(struct vsock *v, struct vsock_conn *c)
{
	uint32_t ev = 0;

	if (c->fd < 0)
		return;
	switch (c->state) {
	case VCONN_HANDSHAKE:
		ev = EPOLLIN;
		break;
	case VCONN_ESTABLISHED:
		/* Read the host only when we are not already waiting to (DATA
		 * pending means "readable, waiting for rx buffer or credit"). */
		if (!(c->pend & VPEND_DATA) && !c->host_eof &&
		    !(c->guest_shut & VSOCK_SHUTDOWN_RCV))
			ev |= EPOLLIN;
		if (c->buf_len)
			ev |= EPOLLOUT;
		break;
	default:
		break;
	}
	if (ev != c->ev_mask || (ev && !c->registered))
		vsock_host_watch(v, c, ev);
}

static int ctrl_push(struct vsock *v, const struct vsock_hdr *h)
{
	if (v->ctrl_len >= VSOCK_CTRL_QUEUE) {
		log_warn_rl("control queue full, dropping op %u to port %u",
			    h->op, h->dst_port);
		return -ENOBUFS;
	}
	v->ctrl[(v->ctrl_head + v->ctrl_len) % VSOCK_CTRL_QUEUE] = *h;
	v->ctrl_len++;
	return 0;
}

/* Queues an RST from host port `local` to guest port `peer`. */
void vsock_queue_rst(struct vsock *v, uint32_t local, uint32_t peer)
{
	struct vsock_hdr h = {
		.src_cid = VSOCK_HOST_CID,
		.dst_cid = v->guest_cid,
		.src_port = local,
		.dst_port = peer,
		.type = VSOCK_TYPE_STREAM,
		.op = VSOCK_OP_RST,
	};

	if (ctrl_push(v, &h) == 0)
		v->stat_rst_sent++;
}

void vsock_conn_close(struct vsock *v, struct vsock_conn *c, bool rst)
{
	if (c->state == VCONN_FREE)
		return;
	/* The guest knows the connection once it has our REQUEST, or it sent
	 * its own; only then is an RST meaningful to it. */
	if (rst && (c->state == VCONN_ESTABLISHED ||
		    (c->state == VCONN_REQ_SENT && !(c->pend & VPEND_REQUEST))))
		vsock_queue_rst(v, c->local_port, c->peer_port);
	conn_unhash(v, c);
	vsock_rxlist_remove(v, c);
	if (c->fd >= 0)
		vsock_host_close(v, c);
	free(c->buf);
	c->buf = NULL;
	c->state = VCONN_FREE;
	c->fd = -1;
	v->nr_conns--;
}

void vsock_conn_maybe_credit_update(struct vsock *v, struct vsock_conn *c)
{
	uint32_t guest_view_used = c->rx_cnt - c->fwd_cnt_sent;

	if (c->state == VCONN_ESTABLISHED && c->fwd_cnt != c->fwd_cnt_sent &&
	    guest_view_used > VSOCK_BUF_ALLOC - VSOCK_CREDIT_LOW)
		vsock_conn_kick(v, c, VPEND_CREDIT);
}

/* Called when the buffer may have emptied: completes the guest's SHUTDOWN.
 * Returns false when `c` was closed. */
bool vsock_conn_after_output(struct vsock *v, struct vsock_conn *c)
{
	if (c->buf_len)
		return true;
	if ((c->guest_shut & VSOCK_SHUTDOWN_SEND) &&
	    ((c->guest_shut & VSOCK_SHUTDOWN_RCV) || c->host_eof)) {
		/* Both directions are over and everything reached the host:
		 * the clean end of 5.10.6.6 is our RST. */
		vsock_conn_close(v, c, true);
		return false;
	}
	if (c->guest_shut & VSOCK_SHUTDOWN_SEND)
		shutdown(c->fd, SHUT_WR); /* the host peer reads EOF */
	return true;
}

bool vsock_conn_output(struct vsock *v, struct vsock_conn *c)
{
	while (c->buf_len) {
		struct iovec iov[2];
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 1 };
		uint32_t first = VSOCK_BUF_ALLOC - c->buf_head;
		ssize_t n;

		if (first > c->buf_len)
			first = c->buf_len;
		iov[0].iov_base = c->buf + c->buf_head;
		iov[0].iov_len = first;
		if (first < c->buf_len) {
			iov[1].iov_base = c->buf;
			iov[1].iov_len = c->buf_len - first;
			msg.msg_iovlen = 2;
		}
		n = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			/* EPIPE, ECONNRESET: the host peer is gone. */
			vsock_conn_close(v, c, true);
			return false;
		}
		c->buf_head = (uint32_t)((c->buf_head + (uint64_t)n) % VSOCK_BUF_ALLOC);
		c->buf_len -= (uint32_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	if (!c->buf_len)
		c->buf_head = 0;
	vsock_conn_maybe_credit_update(v, c);
	if (!vsock_conn_after_output(v, c))
		return false;
	vsock_conn_rewatch(v, c);
	return true;
}

/* Appends payload bytes [skip, present) to the connection's ring. */
int vsock_conn_buffer(struct vsock_conn *c, const struct iovec *payload,
		      unsigned niov, uint64_t skip, uint64_t present)
{
	uint64_t off = 0;

	if (!c->buf) {
		c->buf = malloc(VSOCK_BUF_ALLOC);
		if (!c->buf)
			return -ENOMEM;
		c->buf_head = 0;
	}
	for (unsigned i = 0; i < niov && off < present; i++) {
		const uint8_t *p = payload[i].iov_base;
		uint64_t l = payload[i].iov_len;

		if (off + l <= skip) {
			off += l;
			continue;
		}
		if (off < skip) {
			p += skip - off;
			l -= skip - off;
			off = skip;
		}
		while (l) {
			uint32_t tail = (c->buf_head + c->buf_len) % VSOCK_BUF_ALLOC;
			uint32_t room = VSOCK_BUF_ALLOC - tail;
			uint32_t k = l < room ? (uint32_t)l : room;

			/* The credit check guarantees buf_len + present fits. */
			memcpy(c->buf + tail, p, k);
			c->buf_len += k;
			p += k;
			l -= k;
			off += k;
		}
	}
	return 0;
}
