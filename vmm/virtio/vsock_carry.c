/*
 * vsock_carry.c - a host connection that survives a snapshot.
 *
 * A restore normally resets the vsock transport: the guest drops the
 * connections it had (they belong to the original VM), reads its CID again,
 * and the host's first request pays for a new connection, its handshake
 * and the runtime's READY. When the snapshot was taken with one idle host
 * connection to the guest, its device-side state is small and complete:
 * two ports and the credit counters of virtio 1.2, 5.10.6.3. Saving it lets
 * a clone take a fresh connected host socket in its place and skip the
 * reset: the guest's connection, still in its memory, simply continues,
 * now with the clone's host on the other end.
 *
 * "Idle" is what makes that sound. Bytes the guest sent and we had not yet
 * written to the host would be lost, and a shutdown under way has no
 * meaning for a new peer, so neither may be in progress. Bytes the original
 * host sent that we had not read are not part of the guest's state and do
 * not matter. Any other connection, or a control packet still queued,
 * would leave the guest with state no clone can serve, so the carried
 * connection must be the only one. Whether the byte stream is between two
 * of the protocol's frames is the snapshotting host's business: it takes
 * the snapshot after a complete reply (docs/snapshots.md).
 */
#include <errno.h>
#include <string.h>

#include "vsock_int.h"

#define VMADDR_PORT_ANY 0xffffffffu

static const char *carry_refusal(const struct vsock *v,
				 const struct vsock_conn **out)
{
	const struct vsock_conn *c = NULL;

	if (!v->t)
		return "the device is not in use";
	if (v->broken || v->event_pending || v->reset_unacked)
		return "a transport reset is under way";
	if (v->nr_conns != 1 || v->ctrl_len)
		return "not exactly one connection";
	for (unsigned i = 0; i < VSOCK_MAX_CONNS && !c; i++)
		if (v->conns[i].state != VCONN_FREE)
			c = &v->conns[i];
	if (!c || c->state != VCONN_ESTABLISHED || !c->host_initiated ||
	    c->fd < 0)
		return "the connection is not an established host connection";
	if (c->buf_len || c->rx_cnt != c->fwd_cnt)
		return "guest bytes not yet written to the host";
	if (c->guest_shut || c->host_eof || c->shut_flags_out ||
	    (c->pend & (VPEND_REQUEST | VPEND_RESPONSE | VPEND_SHUTDOWN)))
		return "the connection is shutting down";
	*out = c;
	return NULL;
}

bool vsock_carry_capture(struct vsock *v, struct vsock_carry *k,
			 const char **why)
{
	const struct vsock_conn *c = NULL;

	pthread_mutex_lock(&v->lock);
	*why = carry_refusal(v, &c);
	if (!*why) {
		*k = (struct vsock_carry){
			.local_port = c->local_port,
			.peer_port = c->peer_port,
			.peer_buf_alloc = c->peer_buf_alloc,
			.peer_fwd_cnt = c->peer_fwd_cnt,
			.tx_cnt = c->tx_cnt,
			.fwd_cnt = c->fwd_cnt,
			.fwd_cnt_sent = c->fwd_cnt_sent,
			.flags = (c->pend & VPEND_CREDIT) ?
				 VSOCK_CARRY_F_CREDIT : 0,
		};
	}
	vsock_unlock(v);
	return !*why;
}

static void put32(uint8_t *p, uint32_t x)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(x >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

void vsock_carry_encode(const struct vsock_carry *k,
			uint8_t out[VSOCK_CARRY_LEN])
{
	const uint32_t f[VSOCK_CARRY_LEN / 4] = {
		k->local_port, k->peer_port, k->peer_buf_alloc,
		k->peer_fwd_cnt, k->tx_cnt, k->fwd_cnt, k->fwd_cnt_sent,
		k->flags,
	};

	for (unsigned i = 0; i < VSOCK_CARRY_LEN / 4; i++)
		put32(out + 4 * i, f[i]);
}

int vsock_carry_decode(const uint8_t *p, size_t len, struct vsock_carry *k)
{
	if (len != VSOCK_CARRY_LEN)
		return -EINVAL;
	*k = (struct vsock_carry){
		.local_port = get32(p), .peer_port = get32(p + 4),
		.peer_buf_alloc = get32(p + 8), .peer_fwd_cnt = get32(p + 12),
		.tx_cnt = get32(p + 16), .fwd_cnt = get32(p + 20),
		.fwd_cnt_sent = get32(p + 24), .flags = get32(p + 28),
	};
	/* The counters are the guest's business as much as ours: any value
	 * is one a guest could have produced, and the credit code copes with
	 * absurd ones (vsock_conn_peer_credit). */
	if (k->flags & ~VSOCK_CARRY_F_CREDIT || k->local_port == VMADDR_PORT_ANY ||
	    k->peer_port == VMADDR_PORT_ANY)
		return -EINVAL;
	return 0;
}

int vsock_carry_attach_locked(struct vsock *v, const struct vsock_carry *k,
			      int fd)
{
	struct vsock_conn *c = vsock_conn_alloc(v, fd);

	if (!c)
		return -EMFILE;
	c->state = VCONN_ESTABLISHED;
	c->host_initiated = true;
	c->local_port = k->local_port;
	c->peer_port = k->peer_port;
	c->peer_buf_alloc = k->peer_buf_alloc;
	c->peer_fwd_cnt = k->peer_fwd_cnt;
	c->tx_cnt = k->tx_cnt;
	c->rx_cnt = c->fwd_cnt = k->fwd_cnt;
	c->fwd_cnt_sent = k->fwd_cnt_sent;
	vsock_conn_hash(v, c);
	if (k->flags & VSOCK_CARRY_F_CREDIT)
		vsock_conn_kick(v, c, VPEND_CREDIT);
	vsock_conn_rewatch(v, c); /* read what the new host sends */
	return 0;
}
