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
#include <endian.h>
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

void vsock_carry_encode(const struct vsock_carry *k,
			uint8_t out[VSOCK_CARRY_LEN])
{
	const uint32_t f[VSOCK_CARRY_LEN / 4] = {
		htole32(k->local_port), htole32(k->peer_port),
		htole32(k->peer_buf_alloc), htole32(k->peer_fwd_cnt),
		htole32(k->tx_cnt), htole32(k->fwd_cnt),
		htole32(k->fwd_cnt_sent), htole32(k->flags),
	};

	memcpy(out, f, VSOCK_CARRY_LEN);
}

int vsock_carry_decode(const uint8_t *p, size_t len, struct vsock_carry *k)
{
	uint32_t f[VSOCK_CARRY_LEN / 4];

	if (len != VSOCK_CARRY_LEN)
		return -EINVAL;
	memcpy(f, p, VSOCK_CARRY_LEN);
	*k = (struct vsock_carry){
		.local_port = le32toh(f[0]), .peer_port = le32toh(f[1]),
		.peer_buf_alloc = le32toh(f[2]), .peer_fwd_cnt = le32toh(f[3]),
		.tx_cnt = le32toh(f[4]), .fwd_cnt = le32toh(f[5]),
		.fwd_cnt_sent = le32toh(f[6]), .flags = le32toh(f[7]),
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
