/*
 * vsock.c - guest driver for virtio-vsock (virtio 1.2, 5.10), polling.
 * See vsock.h for the contract.
 */
#include "vsock.h"

#define HDR_LEN ((uint32_t)sizeof(struct vsock_hdr))
#define PKT_BUF (HDR_LEN + GVSOCK_PKT_MAX)
#define RXQ 0
#define TXQ 1
#define EVQ 2
#define QSIZE 128
#define NR_EV 8
#define DEFAULT_CONNS 64
#define DEFAULT_BUF (64u * 1024)
#define EPHEMERAL_FIRST 49152u

_Static_assert(sizeof(struct vsock_hdr) == 44, "5.10.6 header is 44 bytes");

/* ---- transmit ---- */

/* Reclaims completed tx slots. Returns the number reclaimed or -GD_EIO. */
static int reap_tx(struct gvsock *v)
{
	void *cookie;
	uint32_t len;
	int n = 0, ret;

	while ((ret = gvq_get_used(&v->txq, &cookie, &len)) == 1) {
		uintptr_t off = (uintptr_t)((uint8_t *)cookie - v->txbufs);

		v->tx_free[v->tx_nfree++] = (uint16_t)(off / PKT_BUF);
		n++;
	}
	return ret < 0 ? ret : n;
}

/* Queues one packet (header + payload copied into a tx slot); no kick.
 * Returns 0 or -GD_EAGAIN when no slot is free. */
static int tx_put(struct gvsock *v, const struct vsock_hdr *h,
		  const void *data)
{
	struct gvq_buf b;
	uint8_t *slot;
	int ret;

	if (v->tx_nfree == 0 && reap_tx(v) <= 0)
		return -GD_EAGAIN;
	if (v->tx_nfree == 0)
		return -GD_EAGAIN;
	slot = v->txbufs + (size_t)v->tx_free[v->tx_nfree - 1] * PKT_BUF;
	memcpy(slot, h, HDR_LEN);
	if (h->len)
		memcpy(slot + HDR_LEN, data, h->len);
	/* One readable descriptor with header and payload: with VERSION_1 the
	 * device may not assume any particular framing (2.6.4). */
	b.addr = slot;
	b.len = HDR_LEN + h->len;
	ret = gvq_add(&v->txq, &b, 1, NULL, 0, slot);
	if (ret < 0)
		return ret == -GD_ENOSPC ? -GD_EAGAIN : ret;
	v->tx_nfree--;
	v->st.tx_pkts++;
	v->st.tx_bytes += h->len;
	return 0;
}

static void fill_hdr(struct gvsock *v, struct gvsock_conn *c,
		     struct vsock_hdr *h, uint16_t op, uint32_t flags,
		     uint32_t len)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = v->cid;
	h->dst_cid = c->peer_cid;
	h->src_port = c->local_port;
	h->dst_port = c->peer_port;
	h->len = len;
	h->type = VSOCK_TYPE_STREAM;
	h->op = op;
	h->flags = flags;
	/* Every packet carries our credit (5.10.6.3). */
	h->buf_alloc = v->buf_size;
	h->fwd_cnt = c->fwd_cnt;
	c->fwd_cnt_sent = c->fwd_cnt;
}

/* Sends a control packet now, or queues it behind earlier ones. */
static void send_ctrl_hdr(struct gvsock *v, const struct vsock_hdr *h)
{
	if (h->op == VSOCK_OP_RST)
		v->st.rst_sent++;
	if (v->ctrl_len == 0 && tx_put(v, h, NULL) == 0)
		return;
	if (v->ctrl_len == v->ctrl_cap) {
		v->st.ctrl_dropped++; /* the peer times out instead */
		return;
	}
	v->ctrl[(v->ctrl_head + v->ctrl_len) % v->ctrl_cap] = *h;
	v->ctrl_len++;
}

static void send_ctrl(struct gvsock *v, struct gvsock_conn *c, uint16_t op,
		      uint32_t flags)
{
	struct vsock_hdr h;

	fill_hdr(v, c, &h, op, flags, 0);
	send_ctrl_hdr(v, &h);
}

/* RST in reply to a packet that matches no connection (5.10.6.4). */
static void send_rst_reply(struct gvsock *v, const struct vsock_hdr *in)
{
	struct vsock_hdr h;

	memset(&h, 0, sizeof(h));
	h.src_cid = v->cid;
	h.dst_cid = in->src_cid;
	h.src_port = in->dst_port;
	h.dst_port = in->src_port;
	h.type = VSOCK_TYPE_STREAM;
	h.op = VSOCK_OP_RST;
	send_ctrl_hdr(v, &h);
}

static int flush_ctrl(struct gvsock *v)
{
	int n = 0;

	while (v->ctrl_len) {
		if (tx_put(v, &v->ctrl[v->ctrl_head], NULL))
			break;
		v->ctrl_head = (v->ctrl_head + 1) % v->ctrl_cap;
		v->ctrl_len--;
		n++;
	}
	return n;
}

/* ---- connections ---- */

static struct gvsock_conn *conn_get(struct gvsock *v, int h)
{
	if (h < 0 || (unsigned)h >= v->max_conns)
		return NULL;
	if (v->conns[h].state == GVSOCK_FREE)
		return NULL;
	return &v->conns[h];
}

static struct gvsock_conn *conn_alloc(struct gvsock *v)
{
	unsigned i;

	for (i = 0; i < v->max_conns; i++) {
		struct gvsock_conn *c = &v->conns[i];

		if (c->state == GVSOCK_FREE) {
			uint8_t *buf = c->rxbuf;

			memset(c, 0, sizeof(*c));
			c->rxbuf = buf;
			return c;
		}
	}
	return NULL;
}

static void conn_free(struct gvsock_conn *c)
{
	c->state = GVSOCK_FREE;
	c->accept_pending = false;
}

/* The live connection a packet from the peer belongs to. Connections that
 * are CLOSED no longer exchange packets. */
static struct gvsock_conn *conn_lookup(struct gvsock *v,
				       const struct vsock_hdr *h)
{
	unsigned i;

	for (i = 0; i < v->max_conns; i++) {
		struct gvsock_conn *c = &v->conns[i];

		if (c->state != GVSOCK_FREE && c->state != GVSOCK_CLOSED &&
		    c->local_port == h->dst_port &&
		    c->peer_port == h->src_port && c->peer_cid == h->src_cid)
			return c;
	}
	return NULL;
}

static bool port_in_use(struct gvsock *v, uint32_t port)
{
	unsigned i;

	for (i = 0; i < v->nr_listen; i++)
		if (v->listen_port[i] == port)
			return true;
	for (i = 0; i < v->max_conns; i++)
		if (v->conns[i].state != GVSOCK_FREE &&
		    v->conns[i].local_port == port)
			return true;
	return false;
}

static bool is_listening(struct gvsock *v, uint32_t port)
{
	unsigned i;

	for (i = 0; i < v->nr_listen; i++)
		if (v->listen_port[i] == port)
			return true;
	return false;
}

/* Bytes the peer lets us send now. tx_cnt - peer_fwd_cnt is what is in
 * flight; a peer that shrank its buffer below that gives zero. */
static uint32_t credit(const struct gvsock_conn *c)
{
	uint32_t inflight = c->tx_cnt - c->peer_fwd_cnt;

	if (inflight >= c->peer_buf_alloc)
		return 0;
	return c->peer_buf_alloc - inflight;
}

/* The connection ends because of an RST (sent or received). */
static void conn_reset(struct gvsock_conn *c)
{
	if (c->state == GVSOCK_CLOSING) {
		conn_free(c); /* the app already let go of it */
		return;
	}
	if (c->state == GVSOCK_CONNECTING)
		c->refused = true;
	c->reset = true;
	c->state = GVSOCK_CLOSED;
}

/* ---- receive ---- */

static void rx_data(struct gvsock *v, struct gvsock_conn *c,
		    const struct vsock_hdr *h, const uint8_t *data)
{
	uint32_t tail, first;

	if (c->state == GVSOCK_CLOSING)
		return; /* we shut down receiving: discard */
	if (c->peer_shut & VSOCK_SHUTDOWN_SEND) {
		/* Data after the peer said it would send no more. */
		send_ctrl(v, c, VSOCK_OP_RST, 0);
		conn_reset(c);
		return;
	}
	/* The peer must stay within the credit we gave it (5.10.6.3); one
	 * that does not would overrun the ring, so the connection ends. */
	if (h->len > v->buf_size - c->rx_used) {
		v->st.credit_violations++;
		send_ctrl(v, c, VSOCK_OP_RST, 0);
		conn_reset(c);
		return;
	}
	tail = (c->rx_head + c->rx_used) % v->buf_size;
	first = v->buf_size - tail;
	if (first > h->len)
		first = h->len;
	memcpy(c->rxbuf + tail, data, first);
	memcpy(c->rxbuf, data + first, h->len - first);
	c->rx_used += h->len;
	v->st.rx_bytes += h->len;
}

static void rx_request(struct gvsock *v, const struct vsock_hdr *h)
{
	struct gvsock_conn *c;

	if (!is_listening(v, h->dst_port) || !(c = conn_alloc(v))) {
		send_rst_reply(v, h);
		return;
	}
	c->state = GVSOCK_ESTABLISHED;
	c->accept_pending = true;
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_cid = h->src_cid;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	send_ctrl(v, c, VSOCK_OP_RESPONSE, 0);
}

/* Acts on one validated packet. */
static void rx_packet(struct gvsock *v, const struct vsock_hdr *h,
		      const uint8_t *data)
{
	struct gvsock_conn *c;

	if (h->type != VSOCK_TYPE_STREAM) {
		/* Only streams are negotiated; refuse anything else. */
		if (h->op != VSOCK_OP_RST)
			send_rst_reply(v, h);
		return;
	}
	c = conn_lookup(v, h);
	if (!c) {
		if (h->op == VSOCK_OP_REQUEST)
			rx_request(v, h);
		else if (h->op != VSOCK_OP_RST)
			send_rst_reply(v, h);
		return;
	}

	/* Every header carries the peer's credit. */
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if (h->op == VSOCK_OP_CREDIT_UPDATE || credit(c) > 0)
		c->credit_requested = false;

	switch (h->op) {
	case VSOCK_OP_RESPONSE:
		if (c->state == GVSOCK_CONNECTING) {
			c->state = GVSOCK_ESTABLISHED;
			break;
		}
		send_ctrl(v, c, VSOCK_OP_RST, 0);
		conn_reset(c);
		break;
	case VSOCK_OP_RW:
		if (c->state == GVSOCK_CONNECTING) {
			send_ctrl(v, c, VSOCK_OP_RST, 0);
			conn_reset(c);
			break;
		}
		rx_data(v, c, h, data);
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		send_ctrl(v, c, VSOCK_OP_CREDIT_UPDATE, 0);
		break;
	case VSOCK_OP_SHUTDOWN:
		c->peer_shut |= h->flags & (VSOCK_SHUTDOWN_RCV |
					    VSOCK_SHUTDOWN_SEND);
		/* Both directions shut: the peer expects our RST to finish
		 * the connection (5.10.6.5). Buffered data stays readable. */
		if (c->peer_shut == (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND) ||
		    c->state == GVSOCK_CLOSING) {
			send_ctrl(v, c, VSOCK_OP_RST, 0);
			if (c->state == GVSOCK_CLOSING)
				conn_free(c);
			else
				c->state = GVSOCK_CLOSED;
		}
		break;
	case VSOCK_OP_RST:
		conn_reset(c);
		break;
	default: /* REQUEST on a live connection, or an unknown op */
		send_ctrl(v, c, VSOCK_OP_RST, 0);
		conn_reset(c);
		break;
	}
}

static int rx_post(struct gvsock *v, uint8_t *buf)
{
	struct gvq_buf b = { buf, PKT_BUF };

	return gvq_add(&v->rxq, NULL, 0, &b, 1, buf);
}

static int reap_rx(struct gvsock *v)
{
	struct vsock_hdr h;
	void *cookie;
	uint32_t len;
	int n = 0, ret;

	while ((ret = gvq_get_used(&v->rxq, &cookie, &len)) == 1) {
		uint8_t *buf = cookie;

		n++;
		v->st.rx_pkts++;
		/* Copy the header once, then check the copy: the payload
		 * must fit in what the device says it wrote, which
		 * gvq_get_used already clamped to our buffer. */
		if (len < HDR_LEN) {
			v->st.bad_pkts++;
		} else {
			memcpy(&h, buf, HDR_LEN);
			if (h.len > len - HDR_LEN || h.len > GVSOCK_PKT_MAX ||
			    h.dst_cid != v->cid ||
			    (h.op != VSOCK_OP_RW && h.len != 0))
				v->st.bad_pkts++;
			else
				rx_packet(v, &h, buf + HDR_LEN);
		}
		/* Give the buffer straight back: a slot just freed. */
		if (rx_post(v, buf) < 0)
			return -GD_EIO;
	}
	if (n)
		gvq_kick(&v->rxq);
	return ret < 0 ? ret : n;
}

/*
 * 5.10.4: guest_cid is a le64 of which only the low 32 bits are used, the
 * upper ones reserved and zero. One aligned 32-bit read of the low half is
 * atomic, so it needs no ConfigGeneration loop around two halves (2.5.1):
 * one exit to the VMM instead of four. That matters after every restore,
 * where the transport reset makes the guest read it again on the way to
 * its first connection (each read is a trip to the VMM's MMIO handler,
 * ~55 us on nested PVM: docs/benchmarks.md).
 */
static uint32_t read_cid(struct gvsock *v)
{
	return gmmio_config32(&v->dev, 0);
}

static void transport_reset(struct gvsock *v)
{
	unsigned i;

	/* 5.10.6.6: existing connections are gone, listeners stay; the CID
	 * may have changed. Queued control packets refer to dead
	 * connections. */
	v->st.transport_resets++;
	v->cid = read_cid(v);
	v->ctrl_len = 0;
	for (i = 0; i < v->max_conns; i++) {
		struct gvsock_conn *c = &v->conns[i];

		if (c->state == GVSOCK_FREE)
			continue;
		if (c->state == GVSOCK_CLOSING) {
			conn_free(c);
			continue;
		}
		if (c->state == GVSOCK_CONNECTING)
			c->refused = true;
		c->reset = true;
		c->state = GVSOCK_CLOSED;
	}
}

static int reap_ev(struct gvsock *v)
{
	void *cookie;
	uint32_t len;
	int n = 0, ret;

	while ((ret = gvq_get_used(&v->evq, &cookie, &len)) == 1) {
		uint32_t *ev = cookie;
		struct gvq_buf b = { ev, sizeof(*ev) };

		n++;
		if (len >= sizeof(*ev) && *ev == VSOCK_EVENT_TRANSPORT_RESET)
			transport_reset(v);
		*ev = 0xffffffff;
		if (gvq_add(&v->evq, NULL, 0, &b, 1, ev) < 0)
			return -GD_EIO;
	}
	if (n)
		gvq_kick(&v->evq);
	return ret < 0 ? ret : n;
}

/* ---- API ---- */

int gvsock_init(struct gvsock *v, uintptr_t base, unsigned max_conns,
		uint32_t buf_size)
{
	unsigned i;
	int ret;

	memset(v, 0, sizeof(*v));
	v->max_conns = max_conns ? max_conns : DEFAULT_CONNS;
	v->buf_size = buf_size ? buf_size : DEFAULT_BUF;
	gd_spin_init(&v->spin, GD_SPIN_DEFAULT_MAX_NS);
	v->next_port = EPHEMERAL_FIRST;
	ret = gmmio_probe(&v->dev, base);
	if (ret)
		return ret;
	if (v->dev.device_id != GVSOCK_DEVICE_ID)
		return -GD_ENODEV;
	ret = gmmio_begin(&v->dev);
	if (ret)
		return ret;
	/* Streams only. F_STREAM is implied when no type bit is negotiated
	 * (5.10.3.1); ack it when offered. */
	ret = gmmio_negotiate(&v->dev, 1ULL << GVSOCK_F_STREAM);
	if (ret)
		return ret;
	v->cid = read_cid(v);

	ret = gvq_init(&v->rxq, &v->dev, RXQ, QSIZE);
	if (!ret)
		ret = gvq_init(&v->txq, &v->dev, TXQ, QSIZE);
	if (!ret)
		ret = gvq_init(&v->evq, &v->dev, EVQ, NR_EV);
	if (ret)
		goto err_fail;

	ret = -GD_ENOMEM;
	v->rxbufs = gd_alloc((size_t)v->rxq.size * PKT_BUF, 64);
	v->txbufs = gd_alloc((size_t)v->txq.size * PKT_BUF, 64);
	v->tx_free = gd_alloc(sizeof(*v->tx_free) * v->txq.size, 2);
	v->nr_ev = v->evq.size;
	v->evbufs = gd_alloc(sizeof(*v->evbufs) * v->nr_ev, 4);
	v->conns = gd_alloc(sizeof(*v->conns) * v->max_conns, 64);
	v->ctrl_cap = 2 * v->max_conns + 64;
	v->ctrl = gd_alloc(sizeof(*v->ctrl) * v->ctrl_cap, 8);
	if (!v->rxbufs || !v->txbufs || !v->tx_free || !v->evbufs ||
	    !v->conns || !v->ctrl)
		goto err_fail;
	for (i = 0; i < v->max_conns; i++) {
		v->conns[i].rxbuf = gd_alloc(v->buf_size, 64);
		if (!v->conns[i].rxbuf)
			goto err_fail;
	}
	for (i = 0; i < v->txq.size; i++)
		v->tx_free[i] = (uint16_t)i;
	v->tx_nfree = v->txq.size;

	/* 5.10.6.1: the rx and event queues are filled before use. */
	ret = -GD_EIO;
	for (i = 0; i < v->rxq.size; i++)
		if (rx_post(v, v->rxbufs + (size_t)i * PKT_BUF) < 0)
			goto err_fail;
	for (i = 0; i < v->nr_ev; i++) {
		struct gvq_buf b = { &v->evbufs[i], sizeof(uint32_t) };

		v->evbufs[i] = 0xffffffff;
		if (gvq_add(&v->evq, NULL, 0, &b, 1, &v->evbufs[i]) < 0)
			goto err_fail;
	}
	ret = gmmio_driver_ok(&v->dev);
	if (ret)
		goto err_fail;
	/* Publish the buffers after DRIVER_OK (3.1.1 step 8). */
	gvq_kick(&v->rxq);
	gvq_kick(&v->evq);
	return 0;

err_fail:
	gmmio_fail(&v->dev);
	return ret;
}

int gvsock_listen(struct gvsock *v, uint32_t port)
{
	if (port_in_use(v, port))
		return -GD_EADDRINUSE;
	if (v->nr_listen == GVSOCK_MAX_LISTEN)
		return -GD_ENOSPC;
	v->listen_port[v->nr_listen++] = port;
	return 0;
}

int gvsock_accept(struct gvsock *v, uint32_t port)
{
	unsigned i;

	for (i = 0; i < v->max_conns; i++) {
		struct gvsock_conn *c = &v->conns[i];

		if (c->state != GVSOCK_FREE && c->accept_pending &&
		    (port == 0 || c->local_port == port)) {
			c->accept_pending = false;
			return (int)i;
		}
	}
	return -GD_EAGAIN;
}

int gvsock_connect(struct gvsock *v, uint64_t cid, uint32_t port)
{
	struct gvsock_conn *c;
	uint32_t tries;

	c = conn_alloc(v);
	if (!c)
		return -GD_ENOSPC;
	/* A local port no listener or connection uses (from 49152 up). */
	for (tries = 0; tries < 16384; tries++) {
		uint32_t p = v->next_port++;

		if (v->next_port == 0)
			v->next_port = EPHEMERAL_FIRST;
		if (!port_in_use(v, p)) {
			c->local_port = p;
			break;
		}
	}
	if (tries == 16384)
		return -GD_ENOSPC;
	c->peer_cid = cid;
	c->peer_port = port;
	c->state = GVSOCK_CONNECTING;
	send_ctrl(v, c, VSOCK_OP_REQUEST, 0);
	gvq_kick(&v->txq);
	return (int)(c - v->conns);
}

int gvsock_connected(struct gvsock *v, int h)
{
	struct gvsock_conn *c = conn_get(v, h);

	if (!c || c->state == GVSOCK_CLOSING)
		return -GD_ENOTCONN;
	if (c->refused)
		return -GD_ECONNREFUSED;
	if (c->reset)
		return -GD_ECONNRESET;
	if (c->state == GVSOCK_CONNECTING)
		return 0;
	return 1;
}

uint32_t gvsock_tx_credit(struct gvsock *v, int h)
{
	struct gvsock_conn *c = conn_get(v, h);

	return c && c->state == GVSOCK_ESTABLISHED ? credit(c) : 0;
}

uint32_t gvsock_rx_avail(struct gvsock *v, int h)
{
	struct gvsock_conn *c = conn_get(v, h);

	return c ? c->rx_used : 0;
}

long gvsock_send(struct gvsock *v, int h, const void *buf, uint32_t len)
{
	struct gvsock_conn *c = conn_get(v, h);
	const uint8_t *p = buf;
	struct vsock_hdr hdr;
	uint32_t sent = 0;

	if (!c || c->state == GVSOCK_CLOSING || c->state == GVSOCK_CONNECTING)
		return -GD_ENOTCONN;
	if (c->reset)
		return -GD_ECONNRESET;
	if (c->state != GVSOCK_ESTABLISHED ||
	    (c->peer_shut & VSOCK_SHUTDOWN_RCV))
		return -GD_EPIPE;
	if (len == 0)
		return 0;
	/* Control packets queued earlier (a RESPONSE, say) go first. */
	flush_ctrl(v);
	if (v->ctrl_len) {
		gvq_kick(&v->txq);
		return -GD_EAGAIN;
	}
	while (sent < len) {
		uint32_t n = len - sent, cr = credit(c);

		if (cr == 0) {
			/* 5.10.6.3: ask once; the answer resets the flag. */
			if (!c->credit_requested && sent == 0) {
				c->credit_requested = true;
				send_ctrl(v, c, VSOCK_OP_CREDIT_REQUEST, 0);
			}
			break;
		}
		if (n > cr)
			n = cr;
		if (n > GVSOCK_PKT_MAX)
			n = GVSOCK_PKT_MAX;
		fill_hdr(v, c, &hdr, VSOCK_OP_RW, 0, n);
		if (tx_put(v, &hdr, p + sent))
			break;
		c->tx_cnt += n;
		sent += n;
	}
	gvq_kick(&v->txq);
	return sent ? (long)sent : -GD_EAGAIN;
}

long gvsock_recv(struct gvsock *v, int h, void *buf, uint32_t len)
{
	struct gvsock_conn *c = conn_get(v, h);
	uint8_t *p = buf;
	uint32_t n, first;

	if (!c || c->state == GVSOCK_CLOSING)
		return -GD_ENOTCONN;
	if (c->rx_used == 0) {
		if (c->reset)
			return -GD_ECONNRESET;
		if ((c->peer_shut & VSOCK_SHUTDOWN_SEND) ||
		    c->state == GVSOCK_CLOSED)
			return 0;
		return -GD_EAGAIN;
	}
	n = len < c->rx_used ? len : c->rx_used;
	first = v->buf_size - c->rx_head;
	if (first > n)
		first = n;
	memcpy(p, c->rxbuf + c->rx_head, first);
	memcpy(p + first, c->rxbuf, n - first);
	c->rx_head = (c->rx_head + n) % v->buf_size;
	c->rx_used -= n;
	c->fwd_cnt += n;
	/* Tell the peer about freed space once it is worth a packet. Every
	 * packet we send carries fwd_cnt too, so echoing peers rarely need
	 * this. */
	if (c->state == GVSOCK_ESTABLISHED &&
	    c->fwd_cnt - c->fwd_cnt_sent >= v->buf_size / 4) {
		send_ctrl(v, c, VSOCK_OP_CREDIT_UPDATE, 0);
		gvq_kick(&v->txq);
	}
	return (long)n;
}

void gvsock_close(struct gvsock *v, int h)
{
	struct gvsock_conn *c = conn_get(v, h);

	if (!c || c->state == GVSOCK_CLOSING)
		return;
	if (c->state == GVSOCK_CLOSED) {
		conn_free(c);
		return;
	}
	if (c->state == GVSOCK_CONNECTING) {
		/* Nothing to shut down cleanly: abort the attempt. */
		send_ctrl(v, c, VSOCK_OP_RST, 0);
		gvq_kick(&v->txq);
		conn_free(c);
		return;
	}
	/* ESTABLISHED: 5.10.6.5 clean disconnect. */
	send_ctrl(v, c, VSOCK_OP_SHUTDOWN,
		  VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
	gvq_kick(&v->txq);
	c->state = GVSOCK_CLOSING;
	c->accept_pending = false;
	c->rx_used = 0;
	{
		uint64_t now = gd_now_ns();

		c->close_deadline = now ? now + GVSOCK_CLOSE_TIMEOUT_NS : 0;
	}
}

static int expire_closing(struct gvsock *v)
{
	uint64_t now = gd_now_ns();
	unsigned i;
	int n = 0;

	if (!now)
		return 0;
	for (i = 0; i < v->max_conns; i++) {
		struct gvsock_conn *c = &v->conns[i];

		if (c->state == GVSOCK_CLOSING && c->close_deadline &&
		    now >= c->close_deadline) {
			send_ctrl(v, c, VSOCK_OP_RST, 0);
			conn_free(c);
			n++;
		}
	}
	return n;
}

int gvsock_poll(struct gvsock *v)
{
	int n = 0, r;

	r = reap_tx(v);
	if (r < 0)
		return r;
	n += r;
	r = reap_ev(v);
	if (r < 0)
		return r;
	n += r;
	r = reap_rx(v);
	if (r < 0)
		return r;
	n += r;
	n += flush_ctrl(v);
	n += expire_closing(v);
	/* Replies produced above (RESPONSE, RST, CREDIT_UPDATE). */
	gvq_kick(&v->txq);
	return n;
}

static int poll_once(void *v)
{
	return gvsock_poll(v);
}

int gvsock_spin(struct gvsock *v, uint64_t deadline_ns)
{
	return gd_spin_poll(&v->spin, poll_once, v, deadline_ns);
}

int gvsock_wait(struct gvsock *v)
{
	int r = gvsock_spin(v, UINT64_MAX);

	if (r != 0)
		return r;
	gd_idle();
	gd_spin_woke(&v->spin);
	return gvsock_poll(v);
}
