/*
 * vsock.h - the virtio-vsock device (virtio 1.2, section 5.10) with a host
 * side compatible with Firecracker's "hybrid vsock" over Unix sockets.
 *
 * Owns: the device's three queues (rx = 0, tx = 1, event = 2), its config
 * space (guest_cid), the connection table and per-connection credit, the
 * listening Unix socket `uds_path` and every host socket of a connection.
 * Does not own: the transport (mmio.c), the queues' ring checks (virtq.c) or
 * the event thread (evloop.c).
 *
 * Host side (docs/vsock.md):
 *  - host -> guest: a host program connects to `uds_path`, writes
 *    "CONNECT <port>\n"; when the guest accepts, it reads "OK <local_port>\n"
 *    and the socket is then the stream. Refused or garbage: the socket closes.
 *  - guest -> host port P: the device connects to "<uds_path>_<P>".
 *
 * Threads: host sockets are served on the evloop thread; queue notifications
 * arrive on a vCPU thread or the evloop thread. One mutex per device covers
 * all state; no blocking I/O is done under it (every socket is non-blocking).
 */
#ifndef EMBER_VSOCK_H
#define EMBER_VSOCK_H

#include <stdint.h>

#include "virtio.h"

/* Well-known CIDs (virtio 1.2, 5.10.4): the host is always 2. */
#define VSOCK_HOST_CID 2
/* Guest CIDs the device accepts: 3 .. 0xfffffffe (0xffffffff is "any"; only
 * the low 32 bits are used by drivers, 5.10.4). */
#define VSOCK_MIN_GUEST_CID 3
#define VSOCK_MAX_GUEST_CID 0xfffffffeULL

/* Packet header, little-endian, packed: 44 bytes (5.10.6). */
struct vsock_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
} __attribute__((packed));

#define VSOCK_HDR_SIZE 44

#define VSOCK_TYPE_STREAM 1
#define VSOCK_TYPE_SEQPACKET 2

#define VSOCK_OP_INVALID 0
#define VSOCK_OP_REQUEST 1
#define VSOCK_OP_RESPONSE 2
#define VSOCK_OP_RST 3
#define VSOCK_OP_SHUTDOWN 4
#define VSOCK_OP_RW 5
#define VSOCK_OP_CREDIT_UPDATE 6
#define VSOCK_OP_CREDIT_REQUEST 7

/* SHUTDOWN flags: the sender will receive / send no more. */
#define VSOCK_SHUTDOWN_RCV 1
#define VSOCK_SHUTDOWN_SEND 2

/* Event queue (5.10.6.7): struct { le32 id; }. */
#define VSOCK_EVENT_TRANSPORT_RESET 0

#define VSOCK_QUEUE_RX 0
#define VSOCK_QUEUE_TX 1
#define VSOCK_QUEUE_EVENT 2
#define VSOCK_NR_QUEUES 3
#define VSOCK_QUEUE_MAX 256

/* Limits, all documented in docs/vsock.md. */
#define VSOCK_MAX_PAYLOAD (64u * 1024)   /* a packet's len, either way */
#define VSOCK_BUF_ALLOC (256u * 1024)    /* our buffer per connection */
#define VSOCK_MAX_CONNS 256              /* live connections per device */
#define VSOCK_HANDSHAKE_MS 2000          /* CONNECT line and guest reply */
#define VSOCK_CONNECT_LINE_MAX 32        /* "CONNECT 4294967294\n" is 19 */

struct vsock;
struct evloop;

/*
 * Creates the device for guest `guest_cid` (VSOCK_MIN_GUEST_CID ..
 * VSOCK_MAX_GUEST_CID) and binds + listens on `uds_path`, registering the
 * listener with `loop`. A stale socket at the path is unlinked first; any
 * other kind of file there is refused (-EEXIST). NULL and *err = -errno on
 * failure (-EINVAL for a bad cid or a path too long for sun_path).
 */
struct vsock *vsock_create(const char *uds_path, uint64_t guest_cid,
			   struct evloop *loop, int *err);

/* Closes every host socket and the listener, unlinks uds_path, frees `v`.
 * Call it after evloop_destroy() of the loop given to vsock_create() and
 * after the transport stopped calling ops: it no longer touches the loop. */
void vsock_destroy(struct vsock *v);

/* The virtio device ops; the transport's dev pointer is the struct vsock. */
extern const struct virtio_dev_ops vsock_ops;

/*
 * Drops every connection (host peers see their socket closed) and queues a
 * VSOCK_EVENT_TRANSPORT_RESET event for the guest, delivered as soon as the
 * driver has an event buffer. Used after a snapshot restore.
 */
void vsock_transport_reset(struct vsock *v);

#endif
