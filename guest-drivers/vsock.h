/*
 * vsock.h - guest driver for virtio-vsock (virtio 1.2, 5.10), polling.
 *
 * Owns: one vsock device (rx, tx and event queues), the stream connections
 * of this guest (a fixed table, each with its own receive buffer), listening
 * ports, connection setup and teardown (REQUEST/RESPONSE/SHUTDOWN/RST), data
 * (RW) and credit-based flow control (CREDIT_UPDATE/CREDIT_REQUEST,
 * 5.10.6.3), and the TRANSPORT_RESET event. Every packet header the device
 * delivers is copied once and checked (length against the buffer, op, type,
 * addresses, credit) before it is acted on. Nothing here blocks: callers
 * drive the device with gvsock_poll() (or gvsock_wait()). Single-threaded.
 *
 * Connections are small integer handles (0 .. max_conns-1).
 */
#ifndef EMBER_GD_VSOCK_H
#define EMBER_GD_VSOCK_H

#include "gd_platform.h"
#include "spin.h"
#include "virtio_mmio.h"
#include "virtq.h"
#include "ember/vsock_wire.h"

#define GVSOCK_DEVICE_ID 19
#define GVSOCK_F_STREAM 0

/* The packet header and its constants: ember/vsock_wire.h (shared with
 * the VMM's device). */

#define GVSOCK_PKT_MAX 4096     /* payload of one rx buffer / tx packet */
#define GVSOCK_MAX_LISTEN 8
#define GVSOCK_CLOSE_TIMEOUT_NS 2000000000ULL /* SHUTDOWN -> forced RST */

enum gvsock_state {
	GVSOCK_FREE = 0,
	GVSOCK_CONNECTING,  /* REQUEST sent, waiting for RESPONSE */
	GVSOCK_ESTABLISHED,
	GVSOCK_CLOSING,     /* closed by the app, SHUTDOWN sent, awaiting RST */
	GVSOCK_CLOSED,      /* peer gone (RST either way); app must close */
};

struct gvsock_conn {
	uint8_t state;
	bool accept_pending;   /* accepted from a listener, not yet handed out */
	bool reset;            /* ended by RST / transport reset */
	bool refused;          /* our REQUEST was answered with RST */
	bool credit_requested; /* CREDIT_REQUEST sent, no update since */
	uint8_t peer_shut;     /* GVSOCK_SHUTDOWN_* received */
	uint32_t local_port, peer_port;
	uint64_t peer_cid;
	/* Receive ring of v->buf_size bytes: what we advertise as buf_alloc. */
	uint8_t *rxbuf;
	uint32_t rx_head, rx_used;
	uint32_t fwd_cnt;       /* bytes the app consumed (5.10.6.3) */
	uint32_t fwd_cnt_sent;  /* fwd_cnt the peer last heard from us */
	/* The peer's credit: we may have peer_buf_alloc - (tx_cnt -
	 * peer_fwd_cnt) bytes in flight. */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	uint64_t close_deadline;
};

struct gvsock_stats {
	uint64_t rx_pkts, tx_pkts, rx_bytes, tx_bytes;
	uint64_t bad_pkts;     /* malformed headers dropped */
	uint64_t rst_sent, credit_violations, ctrl_dropped;
	uint64_t transport_resets;
};

struct gvsock {
	struct gmmio dev;
	struct gvq rxq, txq, evq;
	uint64_t cid;
	uint8_t *rxbufs;       /* rxq.size buffers of hdr + GVSOCK_PKT_MAX */
	uint8_t *txbufs;       /* txq.size slots of hdr + GVSOCK_PKT_MAX */
	uint16_t *tx_free;     /* stack of free tx slot numbers */
	unsigned tx_nfree;
	uint32_t *evbufs;
	unsigned nr_ev;
	struct gvsock_conn *conns;
	unsigned max_conns;
	uint32_t buf_size;
	uint32_t listen_port[GVSOCK_MAX_LISTEN];
	unsigned nr_listen;
	uint32_t next_port;
	/* Control packets that found the tx queue full, sent first later. */
	struct vsock_hdr *ctrl;
	unsigned ctrl_head, ctrl_len, ctrl_cap;
	struct gd_spin spin;   /* how long gvsock_wait polls before gd_idle() */
	struct gvsock_stats st;
};

/*
 * Brings up the vsock device at window `base` with room for `max_conns`
 * connections (0 = 64), each advertising a `buf_size`-byte receive buffer
 * (0 = 64 KiB). Reads guest_cid, fills the rx and event queues. Returns 0,
 * -GD_ENODEV, -GD_ENOTSUP, -GD_ENOMEM, -GD_EIO.
 */
int gvsock_init(struct gvsock *v, uintptr_t base, unsigned max_conns,
		uint32_t buf_size);

/* Accept connections to `port`. Returns 0, -GD_EADDRINUSE, -GD_ENOSPC. */
int gvsock_listen(struct gvsock *v, uint32_t port);

/* Takes a new connection to listening `port` (0 = any): a handle, or
 * -GD_EAGAIN when none is waiting. */
int gvsock_accept(struct gvsock *v, uint32_t port);

/*
 * Starts a connection to (cid, port) from a fresh local port: a handle in
 * the CONNECTING state (see gvsock_connected), or -GD_ENOSPC (no free
 * connection), -GD_EAGAIN (tx queue full). */
int gvsock_connect(struct gvsock *v, uint64_t cid, uint32_t port);
/* 1 established, 0 still connecting, -GD_ECONNREFUSED, -GD_ECONNRESET,
 * -GD_ENOTCONN (bad handle). */
int gvsock_connected(struct gvsock *v, int h);

/*
 * Sends up to `len` bytes within the peer's credit. Returns the number sent
 * (> 0), -GD_EAGAIN (no credit, or tx queue full: poll and retry; a
 * CREDIT_REQUEST is sent when credit is what is missing), -GD_EPIPE (the
 * peer shut down receiving), -GD_ECONNRESET, -GD_ENOTCONN.
 */
long gvsock_send(struct gvsock *v, int h, const void *buf, uint32_t len);

/*
 * Copies up to `len` received bytes. Returns the number (> 0), 0 at end of
 * stream (the peer shut down sending and everything was read), -GD_EAGAIN
 * (nothing yet), -GD_ECONNRESET, -GD_ENOTCONN. Freed space is announced to
 * the peer with CREDIT_UPDATE once a quarter of the buffer has drained.
 */
long gvsock_recv(struct gvsock *v, int h, void *buf, uint32_t len);

/* Bytes waiting to be read / that the peer's credit lets us send now. */
uint32_t gvsock_rx_avail(struct gvsock *v, int h);
uint32_t gvsock_tx_credit(struct gvsock *v, int h);

/*
 * Closes handle `h` (invalid afterwards): a live connection gets SHUTDOWN
 * (both directions) and is released when the peer answers RST, or after
 * GVSOCK_CLOSE_TIMEOUT_NS with an RST of ours (5.10.6.5).
 */
void gvsock_close(struct gvsock *v, int h);

/*
 * Processes everything the device returned: received packets (answering
 * as the protocol requires), completed transmissions, events; sends queued
 * control packets; expires closing connections. Returns the number of
 * items processed (0 = nothing happened) or -GD_EIO when the device broke
 * a ring (the device must then be reset).
 */
int gvsock_poll(struct gvsock *v);

/* Polls until something happens, deadline_ns passes or v->spin's budget
 * says to sleep (spin.h). Returns as gvsock_poll: 0 when nothing happened.
 * A caller that then sleeps calls gd_spin_woke(&v->spin) when it wakes. */
int gvsock_spin(struct gvsock *v, uint64_t deadline_ns);

/* gvsock_spin(); if nothing happened, gd_idle() once (which may sleep in
 * the VMM) and a poll again. Returns as gvsock_poll (0 possible: callers
 * loop). */
int gvsock_wait(struct gvsock *v);

#endif
