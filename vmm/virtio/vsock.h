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

#include "ember/vsock_wire.h"

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

/*
 * The same with the host side given as file descriptors, for a process with
 * no view of the file system: `listen_fd` a listening AF_UNIX stream socket
 * (duplicated; the duplicate is made non-blocking, which the caller's copy
 * shares), or -1 for none. There is no path, so guest connections to host
 * ports are refused with RST. -ENOTSOCK / -EPROTOTYPE / -EINVAL (not
 * listening) for an fd of the wrong kind.
 */
struct vsock *vsock_create_fd(int listen_fd, uint64_t guest_cid,
			      struct evloop *loop, int *err);

/*
 * Adds one connected AF_UNIX stream socket (duplicated) as if it had just
 * been accepted on the listener: the "CONNECT <port>\n" handshake runs on
 * it. Call after vsock_transport_reset() on a restored VM (a reset drops
 * every connection). 0 or -errno (-EMFILE: connection table full).
 */
int vsock_add_host_conn(struct vsock *v, int conn_fd);

/*
 * On a VM restored from a snapshot that carries a connection (vsock_carry.c,
 * docs/snapshots.md): serves that connection on `conn_fd` (a connected
 * AF_UNIX stream socket, duplicated), no handshake, instead of resetting the
 * transport. 0 or -errno: -ENOENT the snapshot carries none (or its socket
 * was given already), -EMFILE the table is full, or the fd's kind.
 */
int vsock_add_carried_conn(struct vsock *v, int conn_fd);
/* The saved property that holds it, in the vsock device's state. */
#define VSOCK_CARRY_PROP "carried-conn"

/* Closes every host socket and the listener, unlinks uds_path, frees `v`.
 * Call it after evloop_destroy() of the loop given to vsock_create() and
 * after the transport stopped calling ops: it no longer touches the loop. */
void vsock_destroy(struct vsock *v);

/* The virtio device ops; the transport's dev pointer is the struct vsock. */
extern const struct virtio_dev_ops vsock_ops;

/*
 * Before a snapshot's capture, with the vCPUs paused and the event loop
 * parked: gives back the rx chain the device holds for a packet still to
 * come, so that no queue has a chain taken and not used. vsock_resume()
 * after the capture serves the queues again (the chain is taken anew).
 */
void vsock_quiesce(struct vsock *v);
void vsock_resume(struct vsock *v);

/*
 * Drops every connection (host peers see their socket closed) and queues a
 * VSOCK_EVENT_TRANSPORT_RESET event for the guest, delivered as soon as the
 * driver has an event buffer. Used after a snapshot restore.
 */
void vsock_transport_reset(struct vsock *v);

#endif
