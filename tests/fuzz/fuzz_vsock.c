/*
 * libFuzzer target: the virtio-vsock device's packet handling (vsock.c) and
 * the handshake parser (vsock_unix.c). The input is a stream of packets as a
 * hostile guest would send them: a 44-byte header then up to 64 KiB of
 * payload, whose real size need not match the header's len. Four
 * connections backed by socketpairs exist at host ports 1000..1003 / guest
 * ports 2000..2003, so data, credit and shutdown paths are reached; after
 * each packet the rx side is drained like a driver with buffers would.
 * When the input's first 32 bytes decode as a carried connection's record
 * (vsock_carry.c: a snapshot file's, so hostile too), connection 0 enters
 * the table from it, its counters as the record says.
 * Invariants checked: every rx packet is well formed and never carries more
 * payload than the buffer or VSOCK_MAX_PAYLOAD; the table count is sane.
 */
// link: vmm/mem.c vmm/log.c vmm/evloop.c vmm/thread.c vmm/virtio/virtq.c
// link: vmm/virtio/vsock.c vmm/virtio/vsock_conn.c vmm/virtio/vsock_unix.c
// link: vmm/virtio/vsock_carry.c
// link: snapshots/snap_prop.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evloop.h"
#include "log.h"
#include "virtio/mmio.h"
#include "virtio/vsock.h"
#include "virtio/vsock_int.h"

/* The fuzzer plays the transport: vsock.c only signals through these. */
void vmmio_signal_used(struct vmmio_dev *t, unsigned q)
{
	(void)t;
	(void)q;
}

bool vmmio_is_live(const struct vmmio_dev *t)
{
	(void)t;
	return true;
}

void vmmio_set_needs_reset(struct vmmio_dev *t, const char *why)
{
	(void)t;
	(void)why;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NCONN 4

static struct evloop *loop;
static uint8_t rxbuf[VSOCK_HDR_SIZE + VSOCK_MAX_PAYLOAD];
static uint8_t sink[1 << 16];
static char uds[] = "/nonexistent-ember-fuzz/v.sock";

static void drain_rx(struct vsock *v, uint64_t cap)
{
	struct iovec iov = { .iov_base = rxbuf, .iov_len = cap };
	uint32_t written;

	for (int i = 0; i < 64; i++) {
		struct vsock_hdr h;

		if (vsock_rx_fill(v, &iov, 1, cap, &written) != 1)
			return;
		if (written < VSOCK_HDR_SIZE || written > cap)
			abort();
		memcpy(&h, rxbuf, sizeof(h));
		if (h.len != written - VSOCK_HDR_SIZE || h.len > VSOCK_MAX_PAYLOAD ||
		    h.src_cid != VSOCK_HOST_CID || h.dst_cid != v->guest_cid ||
		    h.type != VSOCK_TYPE_STREAM)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vsock *v;
	struct vsock_carry k;
	bool carried;
	int host[NCONN];
	uint32_t port;
	int err;

	if (!loop) {
		ember_log_set_level(EMBER_LOG_ERROR);
		loop = evloop_create(&err);
		if (!loop)
			abort();
	}
	/* The handshake parser sees the first bytes too. */
	vsock_parse_connect((const char *)data,
			    size < VSOCK_CONNECT_LINE_MAX ? size : VSOCK_CONNECT_LINE_MAX,
			    &port);

	carried = size >= VSOCK_CARRY_LEN &&
		  vsock_carry_decode(data, VSOCK_CARRY_LEN, &k) == 0;
	v = calloc(1, sizeof(*v));
	if (!v || vsock_dev_init(v, 3) < 0)
		abort();
	v->loop = loop;
	v->uds_path = uds; /* guest connects fail: ENOENT -> RST */
	for (int i = 0; i < NCONN; i++) {
		int sp[2];
		struct vsock_conn *c;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp) < 0)
			abort();
		host[i] = sp[1];
		pthread_mutex_lock(&v->lock);
		if (i == 0 && carried) {
			k.local_port = 1000;
			k.peer_port = 2000;
			if (vsock_carry_attach_locked(v, &k, sp[0]) < 0)
				abort();
			vsock_unlock(v);
			if (write(host[i], "host bytes", 10) != 10)
				abort();
			continue;
		}
		c = vsock_conn_alloc(v, sp[0]);
		c->state = VCONN_ESTABLISHED;
		c->local_port = 1000 + (uint32_t)i;
		c->peer_port = 2000 + (uint32_t)i;
		c->peer_buf_alloc = 4096;
		vsock_conn_hash(v, c);
		vsock_conn_rewatch(v, c);
		vsock_unlock(v);
		if (write(host[i], "host bytes", 10) != 10)
			abort();
	}

	while (size >= VSOCK_HDR_SIZE) {
		struct vsock_hdr h;
		struct iovec iov;
		uint64_t present;

		memcpy(&h, data, sizeof(h));
		data += VSOCK_HDR_SIZE;
		size -= VSOCK_HDR_SIZE;
		/* Steer most packets at the live connections and the right CIDs,
		 * or the fuzzer would only ever meet the header checks. */
		if (!(h.flags & 0x80000000u)) {
			h.src_cid = 3;
			h.dst_cid = VSOCK_HOST_CID;
			h.src_port = 2000 + h.src_port % (NCONN + 1);
			h.dst_port = 1000 + h.dst_port % (NCONN + 1);
			h.type = VSOCK_TYPE_STREAM;
		}
		present = h.len <= size ? h.len : size;
		if (present > VSOCK_MAX_PAYLOAD + 1)
			present = VSOCK_MAX_PAYLOAD + 1;
		iov.iov_base = (void *)(uintptr_t)data;
		iov.iov_len = present;
		pthread_mutex_lock(&v->lock);
		vsock_handle_tx_pkt(v, &h, &iov, 1, present);
		drain_rx(v, h.fwd_cnt & 1 ? VSOCK_HDR_SIZE + 100 : sizeof(rxbuf));
		if (v->nr_conns > VSOCK_MAX_CONNS)
			abort();
		vsock_unlock(v);
		data += present;
		size -= present;
		/* Let the host ends read sometimes, so buffers flush. */
		if (h.buf_alloc & 1)
			for (int i = 0; i < NCONN; i++)
				while (read(host[i], sink, sizeof(sink)) > 0)
					;
		evloop_run_once(loop, 0);
	}

	vsock_dev_fini(v);
	for (int i = 0; i < NCONN; i++)
		close(host[i]);
	free(v);
	return 0;
}
