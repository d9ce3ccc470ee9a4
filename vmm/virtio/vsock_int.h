/*
 * vsock_int.h - internals shared by vsock.c (device: packets, queues),
 * vsock_conn.c (connection table, credit), vsock_unix.c (host side: Unix
 * sockets, handshake) and the unit tests / fuzzer. Not part of the VMM's
 * API: include vsock.h instead.
 *
 * Every function here expects v->lock held unless it says otherwise.
 */
#ifndef EMBER_VSOCK_INT_H
#define EMBER_VSOCK_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtq.h"
#include "vsock.h"

struct vmmio_dev;
struct guest_mem;

enum vsock_conn_state {
	VCONN_FREE = 0,
	VCONN_HANDSHAKE,   /* host peer accepted, waiting for "CONNECT <p>\n" */
	VCONN_REQ_SENT,    /* REQUEST queued/sent to the guest, awaiting reply */
	VCONN_ESTABLISHED,
};

/* Pending packets a connection owes the guest (bits of conn->pend). */
#define VPEND_REQUEST 1u
#define VPEND_RESPONSE 2u
#define VPEND_CREDIT 4u     /* CREDIT_UPDATE */
#define VPEND_SHUTDOWN 8u   /* SHUTDOWN with conn->shut_flags_out */
#define VPEND_DATA 16u      /* the host socket may have bytes to read */

/*
 * One connection. Slots live in a fixed array inside struct vsock and are
 * never freed before the device, so an evloop callback that races with a
 * close finds a free (or reused) slot and does nothing harmful: events are
 * only hints, every handler re-checks state under the lock.
 */
struct vsock_conn {
	struct vsock *v;
	enum vsock_conn_state state;
	int fd;                  /* host Unix socket, -1 when none */
	uint32_t local_port;     /* host side port (our src_port) */
	uint32_t peer_port;      /* guest port */
	bool host_initiated;
	uint64_t deadline_ms;    /* handshake deadline (CLOCK_MONOTONIC) */
	uint32_t ev_mask;        /* epoll interest currently registered */
	bool registered;         /* fd is in the evloop's epoll set */
	bool hashed;             /* in the lookup table */
	char line[VSOCK_CONNECT_LINE_MAX]; /* handshake bytes so far */
	uint32_t line_len;

	/* Guest's credit (5.10.6.3): what it can still accept from us. */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	uint32_t tx_cnt;         /* payload bytes we sent to the guest */

	/* Our side: bytes received from the guest, bytes written to the host
	 * socket (our fwd_cnt), and the fwd_cnt the guest last heard of. */
	uint32_t rx_cnt, fwd_cnt, fwd_cnt_sent;
	uint8_t *buf;            /* VSOCK_BUF_ALLOC bytes, allocated lazily */
	uint32_t buf_head, buf_len; /* ring of bytes not yet written to host */

	uint32_t pend;           /* VPEND_* */
	uint32_t shut_flags_out; /* SHUTDOWN flags we owe the guest */
	uint32_t guest_shut;     /* VSOCK_SHUTDOWN_* the guest sent us */
	bool host_eof;           /* the host peer will send no more */
	bool in_rxlist;
	struct vsock_conn *rx_next, *rx_prev;
	struct vsock_conn *hnext; /* hash chain */
};

/* Connection-less packets (RSTs mostly) waiting for rx buffers. */
#define VSOCK_CTRL_QUEUE 512

#define VSOCK_HASH_BUCKETS 512
/* vsock_conn_alloc refuses while VSOCK_MAX_CONNS closes are pending, so at
 * most 2 * VSOCK_MAX_CONNS sockets can close in one lock hold. */
#define VSOCK_MAX_ZOMBIES (2 * VSOCK_MAX_CONNS)

/*
 * A connection a snapshot carries across its restore (vsock_carry.c): the
 * device's side of one established host connection, saved so that a clone
 * handed a new connected host socket for it can serve the guest's
 * connection as it is, with no transport reset, no handshake and no READY.
 * Saved as VSOCK_CARRY_LEN bytes: these eight little-endian u32, in order.
 */
struct vsock_carry {
	uint32_t local_port, peer_port;
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt; /* the guest's credit */
	uint32_t fwd_cnt, fwd_cnt_sent; /* ours (rx_cnt == fwd_cnt: idle) */
	uint32_t flags;                 /* VSOCK_CARRY_F_* */
};
#define VSOCK_CARRY_LEN 32
#define VSOCK_CARRY_F_CREDIT 1u     /* a CREDIT_UPDATE is owed the guest */

struct vsock {
	pthread_mutex_t lock;
	uint64_t guest_cid;
	struct evloop *loop;
	char *uds_path;          /* we listen here; NULL: host side by fd */
	char *record_path;       /* what a snapshot names (the device table's) */
	int listen_fd;
	int timer_fd;
	bool timer_armed;

	struct vmmio_dev *t;     /* set by activate, NULL when not live */
	const struct guest_mem *mem;
	unsigned signal_mask;    /* queues to signal once the lock is dropped */
	bool tx_stalled;         /* stopped popping tx: ctrl queue nearly full */
	bool event_pending;      /* TRANSPORT_RESET not yet delivered */
	/* TRANSPORT_RESET queued or delivered, and the guest has not yet
	 * shown it handled it: host REQUESTs wait (vsock.c, reset_handled). */
	bool reset_unacked;
	uint16_t reset_ev_avail; /* event avail->idx when it was delivered */
	bool broken;             /* a ring was broken: NEEDS_RESET was set */
	bool rx_held;            /* rx_chain popped but not yet filled */
	struct virtq_chain rx_chain, tx_chain, ev_chain;

	struct vsock_conn conns[VSOCK_MAX_CONNS];
	unsigned nr_conns;
	struct vsock_conn *hash[VSOCK_HASH_BUCKETS];
	struct vsock_conn *rx_head, *rx_tail;
	uint32_t next_local_port;

	/* Host sockets closed under the lock: evloop_del() from a foreign
	 * thread waits for that fd's running callback, which may be waiting
	 * for our lock, so they are deleted and closed by vsock_unlock(). */
	int zombie[VSOCK_MAX_ZOMBIES];
	unsigned nr_zombies;

	/* Restored from a snapshot that carries a connection: its record,
	 * used when the restore hands over the host socket for it. */
	bool has_carry;
	struct vsock_carry carry;

	struct vsock_hdr ctrl[VSOCK_CTRL_QUEUE];
	unsigned ctrl_head, ctrl_len;

	/* Counters (tests, debugging). */
	uint64_t stat_rst_sent, stat_bad_pkts, stat_credit_violations;
};

/* ---- vsock.c: device logic (no socket creation; reads/writes conn->fd) */

/* Initialises the device part of `v` (lock, table) for `guest_cid`. */
int vsock_dev_init(struct vsock *v, uint64_t guest_cid);
/* Drops every connection without queueing anything; frees buffers. */
void vsock_dev_fini(struct vsock *v);

/*
 * Validates a header copied from the guest, `present` being the payload
 * bytes actually in the chain. 0, or a distinct error:
 * -EMSGSIZE len > VSOCK_MAX_PAYLOAD, -EBADMSG len != present,
 * -EPROTOTYPE type != STREAM, -EOPNOTSUPP unknown op,
 * -EADDRNOTAVAIL src_cid != guest cid or dst_cid != host.
 */
int vsock_hdr_check(const struct vsock *v, const struct vsock_hdr *h,
		    uint64_t present);

/* Handles one guest -> host packet (header already copied out of guest
 * memory; `payload` maps the `present` payload bytes). */
void vsock_handle_tx_pkt(struct vsock *v, const struct vsock_hdr *h,
			 const struct iovec *payload, unsigned niov,
			 uint64_t present);

/*
 * Produces the next pending host -> guest packet into the guest buffer
 * described by `iov` (`niov` entries, `cap` bytes in all). Returns 1 and sets
 * *written, 0 when nothing is pending, -ENOBUFS when cap < VSOCK_HDR_SIZE.
 */
int vsock_rx_fill(struct vsock *v, const struct iovec *iov, unsigned niov,
		  uint64_t cap, uint32_t *written);

/* Serves the rx, tx and event queues (called with the lock held). */
void vsock_process_queues_locked(struct vsock *v);
/* Drops v->lock, then removes from the evloop and closes the host sockets
 * closed meanwhile, then signals the queues that got used buffers. Every
 * lock hold ends here. */
void vsock_unlock(struct vsock *v);

/* ---- vsock_conn.c: connection table, control queue, credit */

struct vsock_conn *vsock_conn_lookup(struct vsock *v, uint32_t local_port,
				     uint32_t peer_port);
/* Takes a free slot (state set by the caller), or NULL when full. */
struct vsock_conn *vsock_conn_alloc(struct vsock *v, int fd);
/* Enters the connection into the lookup table under (local, peer). */
void vsock_conn_hash(struct vsock *v, struct vsock_conn *c);
/* Closes the host socket and frees the slot; with `rst`, queues an RST to
 * the guest first (when the guest knows the connection). */
void vsock_conn_close(struct vsock *v, struct vsock_conn *c, bool rst);
/* Marks pending work and puts the connection on the rx list. */
void vsock_conn_kick(struct vsock *v, struct vsock_conn *c, uint32_t pend);
/* Writes buffered guest bytes to the host socket and finishes a shutdown
 * once the buffer is empty; a dead peer closes the connection with an RST.
 * Returns false when `c` was closed. */
bool vsock_conn_output(struct vsock *v, struct vsock_conn *c);
/* Recomputes the epoll interest the connection's state calls for. */
void vsock_conn_rewatch(struct vsock *v, struct vsock_conn *c);
/* Takes `c` off (puts it on) the list of connections owing the guest a
 * packet; both are no-ops when already so. */
void vsock_rxlist_remove(struct vsock *v, struct vsock_conn *c);
void vsock_rxlist_append(struct vsock *v, struct vsock_conn *c);
/* Queues a connection-less RST from host port `local` to guest port `peer`
 * (dropped, with a rate-limited warning, when the control queue is full). */
void vsock_queue_rst(struct vsock *v, uint32_t local, uint32_t peer);
/* What the guest may still receive from us on `c` (5.10.6.3.1): its
 * buf_alloc minus what is in flight, 0 when its numbers are absurd. */
uint32_t vsock_conn_peer_credit(const struct vsock_conn *c);
/* Owes the guest a CREDIT_UPDATE when it believes our buffer nearly full
 * and we have freed some of it. */
void vsock_conn_maybe_credit_update(struct vsock *v, struct vsock_conn *c);
/* After the buffer may have emptied: completes the guest's SHUTDOWN (half
 * close to the host, or the final RST). Returns false when `c` was closed. */
bool vsock_conn_after_output(struct vsock *v, struct vsock_conn *c);
/* Appends payload bytes [skip, present) of `payload` to the connection's
 * buffer (allocated on first use); the caller has checked the credit, so
 * they fit. 0 or -ENOMEM. */
int vsock_conn_buffer(struct vsock_conn *c, const struct iovec *payload,
		      unsigned niov, uint64_t skip, uint64_t present);

/* ---- vsock_carry.c: a connection carried by a snapshot */

/*
 * With the device quiesced for a snapshot: fills *k and returns true when
 * the device's one connection can be carried (established by the host,
 * idle: every guest byte written to the host, no shutdown under way, no
 * other connection or control packet, no reset pending); false and *why
 * otherwise. Takes v->lock.
 */
bool vsock_carry_capture(struct vsock *v, struct vsock_carry *k,
			 const char **why);
void vsock_carry_encode(const struct vsock_carry *k,
			uint8_t out[VSOCK_CARRY_LEN]);
/* Parses a saved record (untrusted: from a snapshot file): 0, or -EINVAL
 * for a wrong length, an unknown flag or port 0xffffffff (VMADDR_PORT_ANY). */
int vsock_carry_decode(const uint8_t *p, size_t len, struct vsock_carry *k);
/* Enters the carried connection with `fd` (already checked and ours) as
 * its host socket. 0 or -EMFILE (table full). */
int vsock_carry_attach_locked(struct vsock *v, const struct vsock_carry *k,
			      int fd);

/* ---- vsock_unix.c: host side */

/* Sets the epoll interest of a connection's socket (0 = none). */
void vsock_host_watch(struct vsock *v, struct vsock_conn *c, uint32_t events);
/* Detaches the connection's socket (c->fd = -1); it is unwatched and
 * closed by vsock_unlock(). */
void vsock_host_close(struct vsock *v, struct vsock_conn *c);
/* Unwatches and closes detached sockets (no lock held). */
void vsock_host_reap(struct vsock *v, const int *fds, unsigned n);
/* Connects to "<uds_path>_<port>" without blocking: fd or -errno. */
int vsock_host_connect(struct vsock *v, uint32_t port);
/* Arms the handshake timer if not armed. */
void vsock_host_arm_timer(struct vsock *v);

/*
 * Parses one handshake line `buf` (`len` bytes including the final '\n'):
 * "CONNECT <port>\n", port decimal without sign or leading '+', at most 10
 * digits, <= 0xfffffffe. 0 and *port, or -EINVAL.
 */
int vsock_parse_connect(const char *buf, size_t len, uint32_t *port);

uint64_t vsock_now_ms(void);

#endif
