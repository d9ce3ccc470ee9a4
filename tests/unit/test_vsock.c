/*
 * Unit tests: the virtio-vsock device (vsock.c) and its Unix-socket host
 * side (vsock_unix.c), driven through real split virtqueues (virtq.c) over a
 * fake guest RAM, the real event loop (run one round at a time) and real
 * Unix sockets in a temporary directory. The transport is faked: these
 * tests play the driver. Also the connection a snapshot carries across
 * its restore (vsock_carry.c).
 */
// link: vmm/mem.c vmm/log.c vmm/evloop.c vmm/thread.c vmm/virtio/virtq.c
// link: vmm/virtio/vsock.c vmm/virtio/vsock_conn.c vmm/virtio/vsock_unix.c
// link: vmm/virtio/vsock_carry.c
// link: snapshots/snap_prop.c
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "evloop.h"
#include "log.h"
#include "mem.h"
#include "virtio/mmio.h"
#include "virtio/virtq.h"
#include "virtio/vsock.h"
#include "virtio/vsock_int.h"

#define GUEST_CID 3
#define RAM_SIZE (4u << 20)
#define QSZ 16
#define RXBUF_GPA 0x100000ULL
#define RXBUF_SIZE 0x11000u /* a 64 KiB payload plus the header fits */
#define TXBUF_GPA 0x300000ULL
#define TXBUF_SIZE (VSOCK_MAX_PAYLOAD + 0x1000)
#define EVBUF_GPA 0x3f0000ULL

/* ---- a fake transport: only what vsock.c calls ---- */

static unsigned signalled[VSOCK_NR_QUEUES];
static int needs_reset;

void vmmio_signal_used(struct vmmio_dev *t, unsigned q)
{
	(void)t;
	assert_true(q < VSOCK_NR_QUEUES);
	signalled[q]++;
}

bool vmmio_is_live(const struct vmmio_dev *t)
{
	return t->activated && !needs_reset;
}

void vmmio_set_needs_reset(struct vmmio_dev *t, const char *why)
{
	(void)t;
	(void)why;
	needs_reset++;
}

/* ---- the "driver": rings in fake guest RAM ---- */

struct tq {
	uint64_t desc, avail, used;
	uint16_t avail_idx, used_seen;
};

static uint8_t *ram;
static struct guest_mem mem;
static struct vmmio_dev t;
static struct tq q[VSOCK_NR_QUEUES];
static struct evloop *loop;
static struct vsock *v;
static char dir[64], path[128];

static void set_desc(struct tq *tq, uint16_t i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *d = ram + tq->desc + 16 * i;

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void offer(struct tq *tq, uint16_t head)
{
	uint16_t *avail = (uint16_t *)(ram + tq->avail);

	avail[2 + tq->avail_idx % QSZ] = head;
	tq->avail_idx++;
	__atomic_store_n(&avail[1], tq->avail_idx, __ATOMIC_RELEASE);
}

/* Next used element of a queue: 1 and (id, len), or 0. */
static int take_used(struct tq *tq, uint32_t *id, uint32_t *len)
{
	uint8_t *used = ram + tq->used;
	uint16_t idx;

	memcpy(&idx, used + 2, 2);
	if (idx == tq->used_seen)
		return 0;
	memcpy(id, used + 4 + 8 * (tq->used_seen % QSZ), 4);
	memcpy(len, used + 8 + 8 * (tq->used_seen % QSZ), 4);
	tq->used_seen++;
	return 1;
}

static void post_rx(uint16_t slot)
{
	set_desc(&q[0], slot, RXBUF_GPA + (uint64_t)slot * RXBUF_SIZE, RXBUF_SIZE,
		 VIRTQ_DESC_F_WRITE, 0);
	offer(&q[0], slot);
}

static void post_all_rx(void)
{
	for (uint16_t i = 0; i < QSZ; i++)
		post_rx(i);
}

struct pkt {
	struct vsock_hdr h;
	uint8_t *data;
};

/* Takes one packet the device put in an rx buffer and re-posts the
 * buffer. 1 or 0 when none is waiting. */
static int rx_pkt(struct pkt *p)
{
	uint32_t id, len;

	if (!take_used(&q[0], &id, &len))
		return 0;
	assert_true(id < QSZ);
	assert_true(len >= VSOCK_HDR_SIZE);
	memcpy(&p->h, ram + RXBUF_GPA + (uint64_t)id * RXBUF_SIZE, sizeof(p->h));
	assert_int_equal(p->h.len, len - VSOCK_HDR_SIZE);
	assert_int_equal(p->h.src_cid, VSOCK_HOST_CID);
	assert_int_equal(p->h.dst_cid, GUEST_CID);
	assert_int_equal(p->h.type, VSOCK_TYPE_STREAM);
	p->data = ram + RXBUF_GPA + (uint64_t)id * RXBUF_SIZE + VSOCK_HDR_SIZE;
	post_rx((uint16_t)id);
	return 1;
}

static void kick(unsigned qi)
{
	vsock_ops.notify(v, qi);
}

/* Expects the next rx packet to have `op` between the given ports (failures
 * are reported at the caller's line). */
#define expect_pkt(op, src, dst) expect_pkt_at(op, src, dst, __FILE__, __LINE__)
static struct pkt expect_pkt_at(uint16_t op, uint32_t src_port,
				uint32_t dst_port, const char *file, int line)
{
	struct pkt p;

	_assert_int_equal(rx_pkt(&p), 1, file, line);
	_assert_int_equal(p.h.op, op, file, line);
	_assert_int_equal(p.h.src_port, src_port, file, line);
	_assert_int_equal(p.h.dst_port, dst_port, file, line);
	return p;
}

static void expect_no_pkt(void)
{
	struct pkt p;

	assert_int_equal(rx_pkt(&p), 0);
}

static struct vsock_hdr ghdr(uint16_t op, uint32_t src_port, uint32_t dst_port,
			     uint32_t len)
{
	return (struct vsock_hdr){
		.src_cid = GUEST_CID,
		.dst_cid = VSOCK_HOST_CID,
		.src_port = src_port,
		.dst_port = dst_port,
		.len = len,
		.type = VSOCK_TYPE_STREAM,
		.op = op,
		.buf_alloc = 1u << 20,
		.fwd_cnt = 0,
	};
}

/* Sends one packet on tx: header and payload in two descriptors (as Linux
 * does), `present` payload bytes actually in the chain. */
static void tx_raw(const struct vsock_hdr *h, const void *data,
		   uint32_t present)
{
	uint32_t id, len;

	memcpy(ram + TXBUF_GPA, h, sizeof(*h));
	if (present) {
		memcpy(ram + TXBUF_GPA + 0x1000, data, present);
		set_desc(&q[1], 0, TXBUF_GPA, VSOCK_HDR_SIZE, VIRTQ_DESC_F_NEXT, 1);
		set_desc(&q[1], 1, TXBUF_GPA + 0x1000, present, 0, 0);
	} else {
		set_desc(&q[1], 0, TXBUF_GPA, VSOCK_HDR_SIZE, 0, 0);
	}
	offer(&q[1], 0);
	kick(VSOCK_QUEUE_TX);
	assert_int_equal(take_used(&q[1], &id, &len), 1);
	assert_int_equal(id, 0);
}

/* A guest packet on (gport -> local) advertising the guest's credit. */
static void tx_credit(uint16_t op, uint32_t gport, uint32_t local,
		      const void *data, uint32_t len, uint32_t buf_alloc,
		      uint32_t fwd_cnt)
{
	struct vsock_hdr h = ghdr(op, gport, local, len);

	h.buf_alloc = buf_alloc;
	h.fwd_cnt = fwd_cnt;
	tx_raw(&h, data, len);
}

/* The same with ghdr()'s credit: buf_alloc 1 MiB, fwd_cnt 0. */
static void tx(uint16_t op, uint32_t src_port, uint32_t dst_port,
	       const void *data, uint32_t len)
{
	tx_credit(op, src_port, dst_port, data, len, 1u << 20, 0);
}

static void pump(int rounds)
{
	for (int i = 0; i < rounds; i++)
		evloop_run_once(loop, 0);
}

static int setup(void **state)
{
	int err = 0;

	(void)state;
	ember_log_set_level(EMBER_LOG_ERROR);
	ram = aligned_alloc(4096, RAM_SIZE);
	assert_non_null(ram);
	memset(ram, 0, RAM_SIZE);
	mem_layout(&mem, ram, RAM_SIZE);
	strcpy(dir, "/tmp/vsock-test-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/v.sock", dir);
	loop = evloop_create(&err);
	assert_non_null(loop);
	v = vsock_create(path, GUEST_CID, loop, &err);
	assert_non_null(v);

	memset(&t, 0, sizeof(t));
	memset(q, 0, sizeof(q));
	memset(signalled, 0, sizeof(signalled));
	needs_reset = 0;
	t.mem = &mem;
	for (unsigned i = 0; i < VSOCK_NR_QUEUES; i++) {
		q[i].desc = 0x10000 + 0x1000 * i;
		q[i].avail = q[i].desc + 0x400;
		q[i].used = q[i].desc + 0x800;
		virtq_reset(&t.vq[i]);
		t.vq[i].size = QSZ;
		t.vq[i].desc_gpa = q[i].desc;
		t.vq[i].avail_gpa = q[i].avail;
		t.vq[i].used_gpa = q[i].used;
		t.vq[i].ready = true;
		assert_int_equal(virtq_activate(&t.vq[i], &mem, VSOCK_QUEUE_MAX), 0);
	}
	t.activated = true;
	t.status = VIRTIO_STATUS_DRIVER_OK;
	assert_int_equal(vsock_ops.activate(v, &t), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	evloop_destroy(loop); /* the VM's order: no callback runs after */
	vsock_destroy(v);
	/* The device unlinked its socket; remove listeners tests made. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(ram);
	return 0;
}

/* A host listener at "<path>_<port>". */
static int host_listen(uint32_t port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_true(snprintf(sa.sun_path, sizeof(sa.sun_path), "%.80s_%u", path,
			     port) < (int)sizeof(sa.sun_path));
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 128), 0);
	return fd;
}

/* A host client of the device's socket. */
static int host_dial(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_true(snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", path) <
		    (int)sizeof(sa.sun_path));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void write_all(int fd, const void *buf, size_t len)
{
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

/* True when the peer closed `fd` (read returns EOF or a reset) within
 * a short wait, pumping the device meanwhile. */
static bool host_closed(int fd)
{
	char c;

	for (int i = 0; i < 50; i++) {
		ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n > 0)
			return false;
		pump(1);
		usleep(1000);
	}
	return false;
}

/* Guest connects to host port `port` from guest port `gport`; returns the
 * accepted host socket. */
static int guest_connect(int lfd, uint32_t gport, uint32_t port)
{
	int fd;

	tx(VSOCK_OP_REQUEST, gport, port, NULL, 0);
	expect_pkt(VSOCK_OP_RESPONSE, port, gport);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	return fd;
}

/* Host connects to guest port `gport` and the guest accepts, advertising
 * `buf_alloc`. Sets *local to the host-side port the device chose. */
static int host_connect_alloc(uint32_t gport, uint32_t *local,
			      uint32_t buf_alloc)
{
	char line[64], want[32];
	struct pkt p;
	int fd = host_dial();
	ssize_t n;

	snprintf(line, sizeof(line), "CONNECT %u\n", gport);
	write_all(fd, line, strlen(line));
	pump(3);
	assert_int_equal(rx_pkt(&p), 1);
	assert_int_equal(p.h.op, VSOCK_OP_REQUEST);
	assert_int_equal(p.h.dst_port, gport);
	assert_true(p.h.src_port >= (1u << 30));
	*local = p.h.src_port;
	tx_credit(VSOCK_OP_RESPONSE, gport, *local, NULL, 0, buf_alloc, 0);
	snprintf(want, sizeof(want), "OK %u\n", *local);
	n = recv(fd, line, strlen(want), MSG_WAITALL);
	assert_int_equal(n, (ssize_t)strlen(want));
	assert_memory_equal(line, want, strlen(want));
	return fd;
}

static int host_connect(uint32_t gport, uint32_t *local)
{
	return host_connect_alloc(gport, local, 1u << 20);
}

/* The next rx packet is the REQUEST of host socket fd's connection to
 * guest port gport; the guest accepts, and fd gets the "OK" line. */
static void guest_accepts(int fd, uint32_t gport)
{
	char want[32], got[32];
	struct pkt p;

	assert_int_equal(rx_pkt(&p), 1);
	assert_int_equal(p.h.op, VSOCK_OP_REQUEST);
	assert_int_equal(p.h.dst_port, gport);
	tx(VSOCK_OP_RESPONSE, gport, p.h.src_port, NULL, 0);
	snprintf(want, sizeof(want), "OK %u\n", p.h.src_port);
	assert_int_equal(recv(fd, got, strlen(want), MSG_WAITALL),
			 (ssize_t)strlen(want));
	assert_memory_equal(got, want, strlen(want));
}

/* ---- tests ---- */

static void test_config(void **state)
{
	uint8_t b[8];
	uint32_t hi;

	(void)state;
	assert_int_equal(vsock_ops.device_id, VIRTIO_ID_VSOCK);
	assert_int_equal(vsock_ops.nr_queues, 3);
	vsock_ops.config_read(v, 0, b, 8);
	assert_int_equal(b[0], GUEST_CID);
	assert_int_equal(b[1] | b[7], 0);
	vsock_ops.config_read(v, 4, (uint8_t *)&hi, 4);
	assert_int_equal(hi, 0);
	b[0] = 99;
	vsock_ops.config_write(v, 0, b, 1); /* read-only */
	vsock_ops.config_read(v, 0, b, 1);
	assert_int_equal(b[0], GUEST_CID);
}

static void test_create_checks(void **state)
{
	char p2[160];
	int err = 0, fd;

	(void)state;
	/* Bad CIDs. */
	snprintf(p2, sizeof(p2), "%s/x.sock", dir);
	assert_null(vsock_create(p2, 2, loop, &err));
	assert_int_equal(err, -EINVAL);
	assert_null(vsock_create(p2, 0xffffffffULL, loop, &err));
	assert_int_equal(err, -EINVAL);
	/* A regular file is never replaced. */
	snprintf(p2, sizeof(p2), "%s/file", dir);
	fd = open(p2, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_null(vsock_create(p2, 3, loop, &err));
	assert_int_equal(err, -EEXIST);
	/* A path longer than sun_path. */
	memset(p2, 'a', sizeof(p2) - 1);
	p2[sizeof(p2) - 1] = 0;
	assert_null(vsock_create(p2, 3, loop, &err));
	assert_int_equal(err, -ENAMETOOLONG);
}

static void test_hdr_check(void **state)
{
	struct vsock_hdr h = ghdr(VSOCK_OP_RW, 1, 2, 10);

	(void)state;
	assert_int_equal(vsock_hdr_check(v, &h, 10), 0);
	assert_int_equal(vsock_hdr_check(v, &h, 9), -EBADMSG);
	h.len = VSOCK_MAX_PAYLOAD + 1;
	assert_int_equal(vsock_hdr_check(v, &h, h.len), -EMSGSIZE);
	h.len = 0xffffffffu;
	assert_int_equal(vsock_hdr_check(v, &h, 0), -EMSGSIZE);
	h = ghdr(VSOCK_OP_RW, 1, 2, 0);
	h.type = VSOCK_TYPE_SEQPACKET;
	assert_int_equal(vsock_hdr_check(v, &h, 0), -EPROTOTYPE);
	h = ghdr(VSOCK_OP_INVALID, 1, 2, 0);
	assert_int_equal(vsock_hdr_check(v, &h, 0), -EOPNOTSUPP);
	h.op = 8;
	assert_int_equal(vsock_hdr_check(v, &h, 0), -EOPNOTSUPP);
	h = ghdr(VSOCK_OP_RW, 1, 2, 0);
	h.src_cid = 4;
	assert_int_equal(vsock_hdr_check(v, &h, 0), -EADDRNOTAVAIL);
	h.src_cid = GUEST_CID | (1ULL << 32);
	assert_int_equal(vsock_hdr_check(v, &h, 0), -EADDRNOTAVAIL);
	h = ghdr(VSOCK_OP_RW, 1, 2, 0);
	h.dst_cid = 1;
	assert_int_equal(vsock_hdr_check(v, &h, 0), -EADDRNOTAVAIL);
}

/* Every malformed packet is answered by an RST with swapped ports. */
static void test_bad_packets_rst(void **state)
{
	static uint8_t data[VSOCK_MAX_PAYLOAD + 16];
	struct vsock_hdr h;
	uint32_t id, len;

	(void)state;
	post_all_rx();
	h = ghdr(VSOCK_OP_RW, 10, 20, 100); /* says 100, carries 50 */
	tx_raw(&h, data, 50);
	expect_pkt(VSOCK_OP_RST, 20, 10);
	h = ghdr(VSOCK_OP_RW, 11, 20, VSOCK_MAX_PAYLOAD + 16); /* oversize */
	tx_raw(&h, data, VSOCK_MAX_PAYLOAD + 16);
	expect_pkt(VSOCK_OP_RST, 20, 11);
	h = ghdr(9, 12, 20, 0); /* unknown op */
	tx_raw(&h, NULL, 0);
	expect_pkt(VSOCK_OP_RST, 20, 12);
	h = ghdr(VSOCK_OP_REQUEST, 13, 20, 0); /* seqpacket */
	h.type = VSOCK_TYPE_SEQPACKET;
	tx_raw(&h, NULL, 0);
	expect_pkt(VSOCK_OP_RST, 20, 13);
	h = ghdr(VSOCK_OP_REQUEST, 14, 20, 0); /* spoofed source */
	h.src_cid = 77;
	tx_raw(&h, NULL, 0);
	expect_pkt(VSOCK_OP_RST, 20, 14);
	/* An RST to an unknown connection is never answered. */
	tx(VSOCK_OP_RST, 15, 20, NULL, 0);
	expect_no_pkt();
	/* Data for a connection that does not exist: RST. */
	tx(VSOCK_OP_RW, 16, 20, "x", 1);
	expect_pkt(VSOCK_OP_RST, 20, 16);
	/* A chain shorter than a header is dropped without an answer. */
	set_desc(&q[1], 0, TXBUF_GPA, 20, 0, 0);
	offer(&q[1], 0);
	kick(VSOCK_QUEUE_TX);
	assert_int_equal(take_used(&q[1], &id, &len), 1);
	expect_no_pkt();
	assert_int_equal(v->stat_bad_pkts, 6);
	assert_int_equal(needs_reset, 0);
	assert_int_equal(v->nr_conns, 0);
}

static void test_parse_connect(void **state)
{
	uint32_t port = 0;
	static const char *const bad[] = {
		"CONNECT \n", "CONNECT  1\n", "CONNECT -1\n", "CONNECT +1\n",
		"CONNECT 12a\n", "CONNECT 4294967295\n", "CONNECT 99999999999\n",
		"connect 1\n", "CONNECT 1", "CONNECT 1\r\n", "CONNECTX 1\n",
		"CONNECT 000000000000000000001\n", "\n", "",
	};

	(void)state;
	assert_int_equal(vsock_parse_connect("CONNECT 1234\n", 13, &port), 0);
	assert_int_equal(port, 1234);
	assert_int_equal(vsock_parse_connect("CONNECT 0\n", 10, &port), 0);
	assert_int_equal(port, 0);
	assert_int_equal(vsock_parse_connect("CONNECT 4294967294\n", 19, &port), 0);
	assert_int_equal(port, 4294967294u);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(vsock_parse_connect(bad[i], strlen(bad[i]), &port),
				 -EINVAL);
}

/* Garbage, over-long or missing handshakes close the host socket. */
static void test_handshake_errors(void **state)
{
	static const char *const lines[] = {
		"CONNECT abc\n", "GET / HTTP/1.0\n", "CONNECT 4294967295\n",
		"CONNECT 1234567890123456789012345678901234567890", /* no \n */
	};
	int fd;

	(void)state;
	post_all_rx();
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		fd = host_dial();
		write_all(fd, lines[i], strlen(lines[i]));
		assert_true(host_closed(fd));
		close(fd);
	}
	/* A partial line is kept, not busy-looped on; EOF closes it. */
	fd = host_dial();
	write_all(fd, "CONN", 4);
	pump(3);
	assert_int_equal(v->nr_conns, 1);
	shutdown(fd, SHUT_WR);
	assert_true(host_closed(fd));
	close(fd);
	/* Silence: the deadline closes it. */
	fd = host_dial();
	pump(2);
	assert_int_equal(v->nr_conns, 1);
	for (int i = 0; i < 40 && !host_closed(fd); i++)
		evloop_run_once(loop, 100);
	assert_int_equal(v->nr_conns, 0);
	close(fd);
	expect_no_pkt(); /* the guest never heard of any of them */
}

static void test_guest_connect_refused(void **state)
{
	(void)state;
	post_all_rx();
	tx(VSOCK_OP_REQUEST, 1000, 5000, NULL, 0);
	expect_pkt(VSOCK_OP_RST, 5000, 1000);
	assert_int_equal(v->nr_conns, 0);
}

static void fill_pattern(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 131 + seed + (i >> 8));
}

static void test_guest_connect_data(void **state)
{
	static uint8_t out[300000], in[300000];
	size_t got = 0, off;
	struct pkt p;
	int lfd, fd;

	(void)state;
	post_all_rx();
	lfd = host_listen(5001);
	fd = guest_connect(lfd, 1001, 5001);
	/* guest -> host, byte-exact, in 64 KiB packets. */
	fill_pattern(out, sizeof(out), 7);
	for (off = 0; off < sizeof(out);) {
		uint32_t n = sizeof(out) - off > VSOCK_MAX_PAYLOAD
				     ? VSOCK_MAX_PAYLOAD
				     : (uint32_t)(sizeof(out) - off);

		tx(VSOCK_OP_RW, 1001, 5001, out + off, n);
		off += n;
		/* Read as we go: the guest's credit is 256 KiB. */
		while (got < off) {
			ssize_t r = recv(fd, in + got, sizeof(in) - got, MSG_DONTWAIT);

			if (r <= 0) {
				pump(1);
				continue;
			}
			got += (size_t)r;
		}
	}
	assert_memory_equal(in, out, sizeof(out));
	/* host -> guest, byte-exact. */
	fill_pattern(out, 100000, 9);
	write_all(fd, out, 100000);
	got = 0;
	for (int i = 0; i < 100 && got < 100000; i++) {
		pump(1);
		while (rx_pkt(&p)) {
			if (p.h.op != VSOCK_OP_RW)
				continue; /* credit updates */
			assert_int_equal(p.h.src_port, 5001);
			assert_int_equal(p.h.dst_port, 1001);
			assert_true(got + p.h.len <= 100000);
			memcpy(in + got, p.data, p.h.len);
			got += p.h.len;
		}
	}
	assert_int_equal(got, 100000);
	assert_memory_equal(in, out, 100000);
	close(fd);
	close(lfd);
}

static void test_host_connect(void **state)
{
	uint32_t local;
	struct pkt p;
	char buf[16];
	int fd, fd2;

	(void)state;
	post_all_rx();
	fd = host_connect(1234, &local);
	/* Bytes pipelined right after the CONNECT line are not lost. */
	fd2 = host_dial();
	write_all(fd2, "CONNECT 1235\nhello", 18);
	pump(3);
	expect_pkt(VSOCK_OP_REQUEST, local + 1, 1235);
	tx(VSOCK_OP_RESPONSE, 1235, local + 1, NULL, 0);
	assert_int_equal(recv(fd2, buf, 16, 0), (ssize_t)strlen("OK 1073741825\n"));
	pump(2);
	p = expect_pkt(VSOCK_OP_RW, local + 1, 1235);
	assert_int_equal(p.h.len, 5);
	assert_memory_equal(p.data, "hello", 5);
	/* guest -> host on the first one. */
	tx(VSOCK_OP_RW, 1234, local, "abc", 3);
	assert_int_equal(recv(fd, buf, 3, MSG_WAITALL), 3);
	assert_memory_equal(buf, "abc", 3);
	/* A guest with nobody on the port answers RST: the host socket closes
	 * at once. */
	{
		int fd3 = host_dial();

		write_all(fd3, "CONNECT 4444\n", 13);
		pump(3);
		p = expect_pkt(VSOCK_OP_REQUEST, local + 2, 4444);
		tx(VSOCK_OP_RST, 4444, local + 2, NULL, 0);
		assert_true(host_closed(fd3));
		close(fd3);
	}
	assert_int_equal(v->nr_conns, 2);
	close(fd);
	close(fd2);
}

/* Host -> guest never exceeds the guest's advertised credit. */
static void test_host_to_guest_credit(void **state)
{
	static uint8_t out[5000];
	struct vsock_hdr h;
	uint32_t local, got = 0;
	struct pkt p;
	char ok[32];
	int fd = host_dial();

	(void)state;
	post_all_rx();
	write_all(fd, "CONNECT 77\n", 11);
	pump(3);
	assert_int_equal(rx_pkt(&p), 1);
	assert_int_equal(p.h.op, VSOCK_OP_REQUEST);
	assert_int_equal(p.h.dst_port, 77);
	local = p.h.src_port;
	h = ghdr(VSOCK_OP_RESPONSE, 77, local, 0);
	h.buf_alloc = 1000;
	h.fwd_cnt = 0;
	tx_raw(&h, NULL, 0);
	assert_true(recv(fd, ok, sizeof(ok), 0) > 0);
	fill_pattern(out, sizeof(out), 3);
	write_all(fd, out, sizeof(out));
	pump(5);
	while (rx_pkt(&p)) {
		assert_int_equal(p.h.op, VSOCK_OP_RW);
		assert_memory_equal(p.data, out + got, p.h.len);
		got += p.h.len;
	}
	assert_int_equal(got, 1000);
	/* Still stalled after more events: no reads without credit. */
	pump(5);
	expect_no_pkt();
	/* The guest consumed 600: exactly 600 more may come. */
	h = ghdr(VSOCK_OP_CREDIT_UPDATE, 77, local, 0);
	h.buf_alloc = 1000;
	h.fwd_cnt = 600;
	tx_raw(&h, NULL, 0);
	pump(3);
	while (rx_pkt(&p)) {
		assert_int_equal(p.h.op, VSOCK_OP_RW);
		assert_memory_equal(p.data, out + got, p.h.len);
		got += p.h.len;
	}
	assert_int_equal(got, 1600);
	/* A guest that lies (fwd_cnt ahead of what we sent) gets nothing. */
	h.fwd_cnt = 100000;
	tx_raw(&h, NULL, 0);
	pump(3);
	expect_no_pkt();
	/* CREDIT_REQUEST is answered with our credit (the guest's own credit
	 * is exactly used up, so no data may come with it). */
	h = ghdr(VSOCK_OP_CREDIT_REQUEST, 77, local, 0);
	h.buf_alloc = 1000;
	h.fwd_cnt = 600;
	tx_raw(&h, NULL, 0);
	p = expect_pkt(VSOCK_OP_CREDIT_UPDATE, local, 77);
	assert_int_equal(p.h.buf_alloc, VSOCK_BUF_ALLOC);
	close(fd);
}

/* A host peer that stops reading: we buffer at most our advertised credit,
 * send CREDIT_UPDATE once it reads, and RST a guest that overruns. */
static void test_guest_to_host_credit(void **state)
{
	static uint8_t out[VSOCK_MAX_PAYLOAD], sink[VSOCK_BUF_ALLOC * 2];
	struct vsock_conn *c;
	struct pkt p;
	int lfd, fd, sz = 4096;
	bool update = false;
	unsigned sent = 0;

	(void)state;
	post_all_rx();
	lfd = host_listen(6001);
	fd = guest_connect(lfd, 2001, 6001);
	c = vsock_conn_lookup(v, 6001, 2001);
	assert_non_null(c);
	/* Shrink both socket buffers so the device must hold the bytes. */
	assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)), 0);
	fill_pattern(out, sizeof(out), 1);
	for (int i = 0; i < 4; i++) {
		tx(VSOCK_OP_RW, 2001, 6001, out, sizeof(out));
		sent += sizeof(out);
	}
	assert_true(c->buf_len > 0);
	assert_true(c->buf_len <= VSOCK_BUF_ALLOC);
	assert_int_equal(c->state, VCONN_ESTABLISHED);
	/* The host drains: the device flushes and tells the guest. */
	for (int i = 0; i < 200 && !update; i++) {
		ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);

		(void)n;
		pump(1);
		while (rx_pkt(&p))
			if (p.h.op == VSOCK_OP_CREDIT_UPDATE) {
				assert_true(p.h.fwd_cnt > 0);
				assert_true(p.h.fwd_cnt <= sent);
				update = true;
			}
	}
	assert_true(update);
	/* Now stop reading and overrun the credit: RST, connection gone. */
	for (int i = 0; i < 8 && vsock_conn_lookup(v, 6001, 2001); i++)
		tx(VSOCK_OP_RW, 2001, 6001, out, sizeof(out));
	assert_null(vsock_conn_lookup(v, 6001, 2001));
	assert_int_equal(v->stat_credit_violations, 1);
	for (;;) {
		assert_int_equal(rx_pkt(&p), 1);
		if (p.h.op == VSOCK_OP_RST)
			break;
	}
	assert_int_equal(p.h.src_port, 6001);
	/* The host reads what was already in its socket, then EOF. */
	for (int i = 0;; i++) {
		ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);

		assert_true(i < 1000);
		if (n == 0)
			break;
		assert_true(n > 0);
	}
	close(fd);
	close(lfd);
}

static void test_shutdown_and_rst_free(void **state)
{
	char buf[8];
	int lfd, fd;

	(void)state;
	post_all_rx();
	lfd = host_listen(7001);

	/* Guest shuts down both ways: the data still reaches the host, then
	 * the host sees EOF, the guest gets our RST, the slot is free. */
	fd = guest_connect(lfd, 3001, 7001);
	tx(VSOCK_OP_RW, 3001, 7001, "bye", 3);
	{
		struct vsock_hdr h = ghdr(VSOCK_OP_SHUTDOWN, 3001, 7001, 0);

		h.flags = VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND;
		tx_raw(&h, NULL, 0);
	}
	expect_pkt(VSOCK_OP_RST, 7001, 3001);
	assert_int_equal(recv(fd, buf, 3, MSG_WAITALL), 3);
	assert_true(host_closed(fd));
	assert_int_equal(v->nr_conns, 0);
	close(fd);

	/* Guest half-close (SEND): host reads EOF but may still write. */
	fd = guest_connect(lfd, 3002, 7001);
	{
		struct vsock_hdr h = ghdr(VSOCK_OP_SHUTDOWN, 3002, 7001, 0);

		h.flags = VSOCK_SHUTDOWN_SEND;
		tx_raw(&h, NULL, 0);
	}
	assert_true(host_closed(fd));
	write_all(fd, "late", 4);
	pump(3);
	{
		struct pkt p = expect_pkt(VSOCK_OP_RW, 7001, 3002);

		assert_memory_equal(p.data, "late", 4);
	}
	/* Host closes too: both directions are over, the device ends the
	 * connection with RST. */
	close(fd);
	pump(3);
	expect_pkt(VSOCK_OP_RST, 7001, 3002);
	assert_int_equal(v->nr_conns, 0);

	/* Host closes first: SHUTDOWN(SEND) to the guest, guest RSTs. */
	fd = guest_connect(lfd, 3003, 7001);
	close(fd);
	pump(3);
	{
		struct pkt p = expect_pkt(VSOCK_OP_SHUTDOWN, 7001, 3003);

		assert_int_equal(p.h.flags, VSOCK_SHUTDOWN_SEND);
	}
	assert_int_equal(v->nr_conns, 1);
	tx(VSOCK_OP_RST, 3003, 7001, NULL, 0);
	assert_int_equal(v->nr_conns, 0);
	expect_no_pkt();

	/* Host peer killed mid-stream: the next write fails, RST, freed. */
	fd = guest_connect(lfd, 3004, 7001);
	close(fd);
	tx(VSOCK_OP_RW, 3004, 7001, "data", 4);
	pump(2);
	for (;;) {
		struct pkt p;

		assert_int_equal(rx_pkt(&p), 1);
		if (p.h.op == VSOCK_OP_RST) {
			assert_int_equal(p.h.dst_port, 3004);
			break;
		}
		assert_int_equal(p.h.op, VSOCK_OP_SHUTDOWN);
	}
	assert_int_equal(v->nr_conns, 0);

	/* Duplicate REQUEST for a live connection: RST, dropped. */
	fd = guest_connect(lfd, 3005, 7001);
	tx(VSOCK_OP_REQUEST, 3005, 7001, NULL, 0);
	expect_pkt(VSOCK_OP_RST, 7001, 3005);
	assert_int_equal(v->nr_conns, 0);
	assert_true(host_closed(fd));
	close(fd);
	close(lfd);
}

/* Without rx buffers, packets wait (bounded) and resume on the rx kick. */
/* After host data is delivered the device takes one more rx buffer, finds
 * the host socket empty, and holds the buffer for the next bytes. A
 * snapshot must not record that (every clone would lose the buffer):
 * vsock_quiesce() gives it back, vsock_resume() serves on. */
static void test_quiesce_returns_held_rx(void **state)
{
	uint32_t local;
	struct pkt p;
	int fd;

	(void)state;
	post_all_rx();
	fd = host_connect(1000, &local);
	write_all(fd, "ping", 4);
	pump(3);
	p = expect_pkt(VSOCK_OP_RW, local, 1000);
	assert_memory_equal(p.data, "ping", 4);
	assert_int_equal((uint16_t)(t.vq[0].last_avail - t.vq[0].used_idx), 1);
	vsock_quiesce(v);
	assert_int_equal(t.vq[0].last_avail, t.vq[0].used_idx);
	vsock_resume(v);
	write_all(fd, "pong", 4);
	pump(3);
	p = expect_pkt(VSOCK_OP_RW, local, 1000);
	assert_memory_equal(p.data, "pong", 4);
	close(fd);
}

/* A host that connects while the guest's driver is still resetting the
 * device (a booting guest) keeps its connection: the reset drops what the
 * guest knew, not the host's pending handshakes. */
static void test_reset_keeps_handshakes(void **state)
{
	const char line[] = "CONNECT 1000\n";
	int fd;

	(void)state;
	post_all_rx();
	fd = host_dial();
	pump(2); /* accepted, in its handshake */
	vsock_ops.reset(v);
	assert_false(host_closed(fd));
	assert_int_equal(vsock_ops.activate(v, &t), 0);
	write_all(fd, line, strlen(line));
	pump(3);
	guest_accepts(fd, 1000);
	close(fd);
}

/* After a transport reset (a restore), a host REQUEST waits until the
 * guest has handled the reset, shown by its re-offering an event buffer:
 * a guest that took the REQUEST first would drop the new connection with
 * the old ones (snapshot-busy's clone that never answered). */
static void test_reset_before_requests(void **state)
{
	const char line[] = "CONNECT 1000\n";
	uint32_t id, len;
	int fd;

	(void)state;
	post_all_rx();
	/* No event buffer yet: the event waits, and so do REQUESTs. */
	vsock_transport_reset(v);
	fd = host_dial();
	write_all(fd, line, strlen(line));
	pump(3);
	expect_no_pkt();
	set_desc(&q[2], 0, EVBUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
	offer(&q[2], 0);
	kick(VSOCK_QUEUE_EVENT);
	assert_int_equal(take_used(&q[2], &id, &len), 1);
	assert_int_equal(len, 4);
	/* Delivered, not yet handled: an rx kick does not release it. */
	kick(VSOCK_QUEUE_RX);
	expect_no_pkt();
	/* The guest handled it and offers the buffer again. */
	offer(&q[2], 0);
	kick(VSOCK_QUEUE_EVENT);
	guest_accepts(fd, 1000);
	/* Later connections are not held. */
	{
		uint32_t local;
		int fd2 = host_connect(1001, &local);

		close(fd2);
	}
	close(fd);
}

static void test_rx_without_buffers(void **state)
{
	(void)state;
	for (uint32_t i = 0; i < 40; i++)
		tx(VSOCK_OP_REQUEST, 100 + i, 9999, NULL, 0);
	assert_int_equal(v->ctrl_len, 40);
	post_all_rx();
	kick(VSOCK_QUEUE_RX);
	for (uint32_t i = 0; i < 40; i++) {
		expect_pkt(VSOCK_OP_RST, 9999, 100 + i);
		kick(VSOCK_QUEUE_RX);
	}
	expect_no_pkt();
	/* A flood without rx buffers stalls tx instead of growing. */
	for (uint32_t i = 0; i < VSOCK_CTRL_QUEUE + 64; i++) {
		struct vsock_hdr h = ghdr(VSOCK_OP_RW, 1, 2, 0);
		uint32_t id, len;

		while (take_used(&q[0], &id, &len))
			; /* the driver stops re-posting */
		memcpy(ram + TXBUF_GPA, &h, sizeof(h));
		set_desc(&q[1], 0, TXBUF_GPA, VSOCK_HDR_SIZE, 0, 0);
		offer(&q[1], 0);
		kick(VSOCK_QUEUE_TX);
		if (v->tx_stalled)
			break;
	}
	assert_true(v->tx_stalled);
	assert_true(v->ctrl_len <= VSOCK_CTRL_QUEUE);
}

static void test_many_connections(void **state)
{
	enum { N = 64 };
	int hfd[N], cfd[N], lfd;
	uint32_t local[N];
	char buf[32];

	(void)state;
	post_all_rx();
	lfd = host_listen(8001);
	for (int i = 0; i < N; i++)
		hfd[i] = guest_connect(lfd, 4000 + (uint32_t)i, 8001);
	for (int i = 0; i < N; i++)
		cfd[i] = host_connect(5000 + (uint32_t)i, &local[i]);
	assert_int_equal(v->nr_conns, 2 * N);
	/* Each carries its own bytes. */
	for (int i = 0; i < N; i++) {
		snprintf(buf, sizeof(buf), "conn %d", i);
		tx(VSOCK_OP_RW, 4000 + (uint32_t)i, 8001, buf, (uint32_t)strlen(buf));
		tx(VSOCK_OP_RW, 5000 + (uint32_t)i, local[i], buf, (uint32_t)strlen(buf));
	}
	for (int i = 0; i < N; i++) {
		char want[32], got[32] = { 0 };

		snprintf(want, sizeof(want), "conn %d", i);
		assert_int_equal(recv(hfd[i], got, strlen(want), MSG_WAITALL),
				 (ssize_t)strlen(want));
		assert_string_equal(got, want);
		memset(got, 0, sizeof(got));
		assert_int_equal(recv(cfd[i], got, strlen(want), MSG_WAITALL),
				 (ssize_t)strlen(want));
		assert_string_equal(got, want);
	}
	/* Killing one host peer leaves the others alone. */
	close(hfd[5]);
	tx(VSOCK_OP_RW, 4005, 8001, "x", 1);
	pump(2);
	assert_null(vsock_conn_lookup(v, 8001, 4005));
	tx(VSOCK_OP_RW, 4006, 8001, "y", 1);
	assert_int_equal(recv(hfd[6], buf, 1, 0), 1);
	assert_int_equal(v->nr_conns, 2 * N - 1);
	/* Transport reset drops them all and tells the guest. */
	set_desc(&q[2], 0, EVBUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
	offer(&q[2], 0);
	memset(ram + EVBUF_GPA, 0xff, 8);
	vsock_transport_reset(v);
	assert_int_equal(v->nr_conns, 0);
	{
		uint32_t id, len, ev;

		assert_int_equal(take_used(&q[2], &id, &len), 1);
		assert_int_equal(len, 4);
		memcpy(&ev, ram + EVBUF_GPA, 4);
		assert_int_equal(ev, VSOCK_EVENT_TRANSPORT_RESET);
	}
	for (int i = 0; i < N; i++) {
		if (i != 5)
			assert_true(host_closed(hfd[i]));
		assert_true(host_closed(cfd[i]));
		if (i != 5)
			close(hfd[i]);
		close(cfd[i]);
	}
	close(lfd);
}

/* The table is bounded: connection VSOCK_MAX_CONNS + 1 gets an RST. */
static void test_table_full(void **state)
{
	int lfd, fds[VSOCK_MAX_CONNS];

	(void)state;
	post_all_rx();
	lfd = host_listen(9001);
	for (int i = 0; i < VSOCK_MAX_CONNS; i++)
		fds[i] = guest_connect(lfd, 10000 + (uint32_t)i, 9001);
	tx(VSOCK_OP_REQUEST, 20000, 9001, NULL, 0);
	expect_pkt(VSOCK_OP_RST, 9001, 20000);
	assert_int_equal(v->nr_conns, VSOCK_MAX_CONNS);
	for (int i = 0; i < VSOCK_MAX_CONNS; i++)
		close(fds[i]);
	close(lfd);
}

/* A broken ring marks the device for reset and nothing more happens. */
static void test_broken_ring(void **state)
{
	(void)state;
	set_desc(&q[1], 0, RAM_SIZE - 8, 64, 0, 0); /* past the end of RAM */
	offer(&q[1], 0);
	kick(VSOCK_QUEUE_TX);
	assert_int_equal(needs_reset, 1);
	/* The driver resets the device. */
	vsock_ops.reset(v);
	assert_int_equal(v->nr_conns, 0);
}

/* ---- a connection carried by a snapshot (vsock_carry.c) ---- */

/* vsock_carry_capture() on the test's device: true with *why NULL, or
 * false with a reason (failures are reported at the caller's line). */
#define capture(k) capture_at(k, __FILE__, __LINE__)
static bool capture_at(struct vsock_carry *k, const char *file, int line)
{
	const char *why = "unset";
	bool ok = vsock_carry_capture(v, k, &why);

	if (ok)
		_assert_true(why == NULL, "why == NULL", file, line);
	else
		_assert_true(why != NULL, "why != NULL", file, line);
	return ok;
}

/* Every field of two carried-connection records is equal. */
static void expect_carry_eq(const struct vsock_carry *a,
			    const struct vsock_carry *b)
{
	assert_int_equal(a->local_port, b->local_port);
	assert_int_equal(a->peer_port, b->peer_port);
	assert_int_equal(a->peer_buf_alloc, b->peer_buf_alloc);
	assert_int_equal(a->peer_fwd_cnt, b->peer_fwd_cnt);
	assert_int_equal(a->tx_cnt, b->tx_cnt);
	assert_int_equal(a->fwd_cnt, b->fwd_cnt);
	assert_int_equal(a->fwd_cnt_sent, b->fwd_cnt_sent);
	assert_int_equal(a->flags, b->flags);
}

/*
 * The record a snapshot saves is exactly the device's side of its one
 * idle host connection, and every state a clone could not serve is
 * refused. Each refusal is shown on a device that is carriable once the
 * one condition goes away, so it is that condition that refuses.
 */
static void test_carry_capture(void **state)
{
	static uint8_t out[VSOCK_MAX_PAYLOAD], sink[VSOCK_BUF_ALLOC];
	char line[32], buf[16];
	struct vsock_carry k;
	struct vsock_conn *c;
	uint32_t local, local2;
	struct pkt p;
	int fd, fd2, lfd, sz = 4096;

	(void)state;
	post_all_rx();
	/* No connection at all. */
	assert_false(capture(&k));

	/* A host peer in its handshake, then one whose REQUEST the guest has
	 * not answered: neither is established. */
	fd = host_dial();
	pump(2);
	assert_int_equal(v->nr_conns, 1);
	assert_int_equal(v->conns[0].state, VCONN_HANDSHAKE);
	assert_false(capture(&k));
	write_all(fd, "CONNECT 1000\n", 13);
	pump(3);
	assert_int_equal(rx_pkt(&p), 1);
	assert_int_equal(p.h.op, VSOCK_OP_REQUEST);
	local = p.h.src_port;
	c = vsock_conn_lookup(v, local, 1000);
	assert_non_null(c);
	assert_int_equal(c->state, VCONN_REQ_SENT);
	assert_false(capture(&k));
	/* The guest accepts, advertising buf_alloc 12345 (and, once it has
	 * consumed 4 of the 6 bytes below, fwd_cnt 4). */
	tx_credit(VSOCK_OP_RESPONSE, 1000, local, NULL, 0, 12345, 0);
	snprintf(line, sizeof(line), "OK %u\n", local);
	assert_int_equal(recv(fd, buf, strlen(line), MSG_WAITALL),
			 (ssize_t)strlen(line));
	assert_memory_equal(buf, line, strlen(line));
	assert_int_equal(c->state, VCONN_ESTABLISHED);

	/* Data both ways, everything written: host "ping!!" (tx_cnt 6, of
	 * which the guest consumed 4), guest "pong!" (fwd_cnt 5), a
	 * CREDIT_REQUEST that tells the guest our fwd_cnt (fwd_cnt_sent 5),
	 * then "abc" (fwd_cnt 8). Distinct values, so a field saved in
	 * another's place shows. */
	write_all(fd, "ping!!", 6);
	pump(3);
	p = expect_pkt(VSOCK_OP_RW, local, 1000);
	assert_int_equal(p.h.len, 6);
	assert_memory_equal(p.data, "ping!!", 6);
	tx_credit(VSOCK_OP_RW, 1000, local, "pong!", 5, 12345, 4);
	tx_credit(VSOCK_OP_CREDIT_REQUEST, 1000, local, NULL, 0, 12345, 4);
	p = expect_pkt(VSOCK_OP_CREDIT_UPDATE, local, 1000);
	assert_int_equal(p.h.fwd_cnt, 5);
	tx_credit(VSOCK_OP_RW, 1000, local, "abc", 3, 12345, 4);
	assert_int_equal(recv(fd, buf, 8, MSG_WAITALL), 8);
	assert_memory_equal(buf, "pong!abc", 8);
	assert_int_equal(c->buf_len, 0);

	assert_true(capture(&k));
	expect_carry_eq(&k, &(struct vsock_carry){
		.local_port = local, .peer_port = 1000,
		.peer_buf_alloc = 12345, .peer_fwd_cnt = 4, .tx_cnt = 6,
		.fwd_cnt = 8, .fwd_cnt_sent = 5, .flags = 0 });
	/* ... which are the connection's own fields. */
	expect_carry_eq(&k, &(struct vsock_carry){
		.local_port = c->local_port, .peer_port = c->peer_port,
		.peer_buf_alloc = c->peer_buf_alloc,
		.peer_fwd_cnt = c->peer_fwd_cnt, .tx_cnt = c->tx_cnt,
		.fwd_cnt = c->fwd_cnt, .fwd_cnt_sent = c->fwd_cnt_sent });

	/* A CREDIT_UPDATE still owed is carried as VSOCK_CARRY_F_CREDIT. The
	 * guest stops re-posting rx buffers and keeps asking for credit: once
	 * the ring is empty, the update stays pending. */
	for (int i = 0; i < 2 * QSZ && !(c->pend & VPEND_CREDIT); i++)
		tx_credit(VSOCK_OP_CREDIT_REQUEST, 1000, local, NULL, 0, 12345, 4);
	assert_true(c->pend & VPEND_CREDIT);
	assert_true(capture(&k));
	assert_int_equal(k.flags, VSOCK_CARRY_F_CREDIT);
	/* The guest takes the updates and posts buffers again: paid, and the
	 * flag goes. */
	while (rx_pkt(&p))
		assert_int_equal(p.h.op, VSOCK_OP_CREDIT_UPDATE);
	kick(VSOCK_QUEUE_RX);
	while (rx_pkt(&p))
		assert_int_equal(p.h.op, VSOCK_OP_CREDIT_UPDATE);
	assert_false(c->pend & VPEND_CREDIT);
	assert_true(capture(&k));
	assert_int_equal(k.flags, 0);

	/* Two connections: refused; carriable again once the second is gone
	 * (its host closes, the guest answers the SHUTDOWN with RST). */
	fd2 = host_connect_alloc(1001, &local2, 12345);
	assert_int_equal(v->nr_conns, 2);
	assert_false(capture(&k));
	close(fd2);
	pump(3);
	expect_pkt(VSOCK_OP_SHUTDOWN, local2, 1001);
	tx(VSOCK_OP_RST, 1001, local2, NULL, 0);
	assert_int_equal(v->nr_conns, 1);
	assert_true(capture(&k));

	/* Guest bytes the host has not read yet: with both socket buffers
	 * shrunk (as in test_guest_to_host_credit) the device must keep some
	 * in c->buf. Refused until the host has read everything. */
	assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)), 0);
	fill_pattern(out, sizeof(out), 5);
	{
		size_t sent = 0, got = 0;

		for (int i = 0; i < 3 && !c->buf_len; i++) {
			tx_credit(VSOCK_OP_RW, 1000, local, out, sizeof(out), 12345, 4);
			sent += sizeof(out);
		}
		assert_true(c->buf_len > 0);
		assert_false(capture(&k));
		for (int i = 0; i < 5000 && (got < sent || c->buf_len); i++) {
			ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);

			if (n > 0)
				got += (size_t)n;
			pump(1);
		}
		assert_int_equal(got, sent);
		assert_int_equal(c->buf_len, 0);
	}
	while (rx_pkt(&p))
		assert_int_equal(p.h.op, VSOCK_OP_CREDIT_UPDATE);
	assert_true(capture(&k));
	assert_int_equal(k.fwd_cnt, c->rx_cnt);

	/* A transport reset under way (event not delivered, or not yet
	 * handled by the guest). vsock_transport_reset() would also drop the
	 * connection, so its flags are set by hand here to show that they
	 * alone refuse; the real call is below. */
	v->event_pending = true;
	assert_false(capture(&k));
	v->event_pending = false;
	v->reset_unacked = true;
	assert_false(capture(&k));
	v->reset_unacked = false;
	assert_true(capture(&k));

	/* The guest shut its sending side down: refused, though the
	 * connection is still there and idle. */
	{
		struct vsock_hdr h = ghdr(VSOCK_OP_SHUTDOWN, 1000, local, 0);

		h.flags = VSOCK_SHUTDOWN_SEND;
		tx_raw(&h, NULL, 0);
	}
	assert_int_equal(v->nr_conns, 1);
	assert_int_equal(c->buf_len, 0);
	assert_false(capture(&k));
	tx(VSOCK_OP_RST, 1000, local, NULL, 0);
	assert_int_equal(v->nr_conns, 0);
	close(fd);

	/* A connection the guest initiated is not the host's to carry. */
	lfd = host_listen(6001);
	fd = guest_connect(lfd, 2001, 6001);
	assert_int_equal(v->nr_conns, 1);
	assert_false(capture(&k));
	tx(VSOCK_OP_RST, 2001, 6001, NULL, 0);
	close(fd);
	close(lfd);

	/* The host peer finished sending (EOF, SHUTDOWN to the guest). */
	fd = host_connect(1002, &local);
	assert_true(capture(&k));
	shutdown(fd, SHUT_WR);
	pump(3);
	expect_pkt(VSOCK_OP_SHUTDOWN, local, 1002);
	assert_int_equal(v->nr_conns, 1);
	assert_false(capture(&k));
	tx(VSOCK_OP_RST, 1002, local, NULL, 0);
	assert_int_equal(v->nr_conns, 0);
	close(fd);

	/* And after a real transport reset. */
	fd = host_connect(1003, &local);
	assert_true(capture(&k));
	vsock_transport_reset(v);
	assert_false(capture(&k));
	close(fd);
}

/* The saved record: eight little-endian u32 in struct order, decoded back
 * to the same values; a wrong length, an unknown flag or port
 * VMADDR_PORT_ANY (a record no device produces) is refused. */
static void test_carry_codec(void **state)
{
	const struct vsock_carry in = {
		.local_port = 0x40000001, .peer_port = 0x2345,
		.peer_buf_alloc = 0x31323334, .peer_fwd_cnt = 0xa1a2a3a4,
		.tx_cnt = 0x51525354, .fwd_cnt = 0xfedcba98,
		.fwd_cnt_sent = 0x01020304, .flags = VSOCK_CARRY_F_CREDIT,
	};
	const uint32_t want[8] = {
		in.local_port, in.peer_port, in.peer_buf_alloc, in.peer_fwd_cnt,
		in.tx_cnt, in.fwd_cnt, in.fwd_cnt_sent, in.flags,
	};
	uint8_t rec[VSOCK_CARRY_LEN + 1];
	struct vsock_carry out;

	(void)state;
	assert_int_equal(VSOCK_CARRY_LEN, 32);
	memset(rec, 0xee, sizeof(rec));
	vsock_carry_encode(&in, rec);
	assert_int_equal(rec[VSOCK_CARRY_LEN], 0xee); /* no overrun */
	for (unsigned i = 0; i < 8; i++) {
		const uint8_t *b = rec + 4 * i;

		assert_int_equal(b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24,
				 want[i]);
	}
	memset(&out, 0, sizeof(out));
	assert_int_equal(vsock_carry_decode(rec, VSOCK_CARRY_LEN, &out), 0);
	expect_carry_eq(&out, &in);

	/* Wrong lengths. */
	assert_int_equal(vsock_carry_decode(rec, VSOCK_CARRY_LEN - 1, &out), -EINVAL);
	assert_int_equal(vsock_carry_decode(rec, VSOCK_CARRY_LEN + 1, &out), -EINVAL);
	/* A flag this version does not know. */
	{
		struct vsock_carry bad = in;

		bad.flags = 2;
		vsock_carry_encode(&bad, rec);
		assert_int_equal(vsock_carry_decode(rec, VSOCK_CARRY_LEN, &out), -EINVAL);
		bad.flags = 0x80000000u | VSOCK_CARRY_F_CREDIT;
		vsock_carry_encode(&bad, rec);
		assert_int_equal(vsock_carry_decode(rec, VSOCK_CARRY_LEN, &out), -EINVAL);
		/* Either port VMADDR_PORT_ANY. */
		bad = in;
		bad.local_port = 0xffffffffu;
		vsock_carry_encode(&bad, rec);
		assert_int_equal(vsock_carry_decode(rec, VSOCK_CARRY_LEN, &out), -EINVAL);
		bad = in;
		bad.peer_port = 0xffffffffu;
		vsock_carry_encode(&bad, rec);
		assert_int_equal(vsock_carry_decode(rec, VSOCK_CARRY_LEN, &out), -EINVAL);
		/* Flags 0 is fine. */
		bad = in;
		bad.flags = 0;
		vsock_carry_encode(&bad, rec);
		assert_int_equal(vsock_carry_decode(rec, VSOCK_CARRY_LEN, &out), 0);
		assert_int_equal(out.flags, 0);
	}
	/* The counters are not checked: all ones is a record like another. */
	memset(rec, 0xff, VSOCK_CARRY_LEN);
	memset(rec, 0, 8);       /* ports 0 and 0 */
	memset(rec + 28, 0, 4);  /* flags 0 */
	rec[0] = 7;
	rec[4] = 9;
	assert_int_equal(vsock_carry_decode(rec, VSOCK_CARRY_LEN, &out), 0);
	assert_int_equal(out.local_port, 7);
	assert_int_equal(out.peer_port, 9);
	assert_int_equal(out.peer_buf_alloc, 0xffffffffu);
	assert_int_equal(out.peer_fwd_cnt, 0xffffffffu);
	assert_int_equal(out.tx_cnt, 0xffffffffu);
	assert_int_equal(out.fwd_cnt, 0xffffffffu);
	assert_int_equal(out.fwd_cnt_sent, 0xffffffffu);
	assert_int_equal(out.flags, 0);
}

/* A record as a restore would decode it: host port L, guest port P; the
 * guest's credit leaves room for exactly 10 bytes (1000 - (5000 - 4010));
 * our fwd_cnt 777, of which the guest heard 700. */
#define CARRY_L 0x40000123u
#define CARRY_P 1234u
static const struct vsock_carry carry_rec = {
	.local_port = CARRY_L, .peer_port = CARRY_P,
	.peer_buf_alloc = 1000, .peer_fwd_cnt = 4010, .tx_cnt = 5000,
	.fwd_cnt = 777, .fwd_cnt_sent = 700,
};

/*
 * Given the host socket for the connection a snapshot carries, the device
 * serves the guest's connection as it stands: no handshake, the saved
 * ports and counters, the guest's credit honoured; and only once.
 */
static void test_carry_attach(void **state)
{
	int sp[2], sp2[2];
	struct vsock_carry k;
	struct vsock_conn *c;
	struct pkt p;
	char buf[16];

	(void)state;
	post_all_rx();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	v->has_carry = true;
	v->carry = carry_rec;
	assert_int_equal(vsock_add_carried_conn(v, sp[0]), 0);
	close(sp[0]); /* the device serves its own duplicate */
	assert_false(v->has_carry);
	assert_int_equal(v->nr_conns, 1);
	c = vsock_conn_lookup(v, CARRY_L, CARRY_P);
	assert_non_null(c);
	assert_int_equal(c->state, VCONN_ESTABLISHED);
	/* Idle, it is the record's connection: a snapshot taken now would
	 * save the very same record (a clone can be snapshotted again). */
	assert_true(capture(&k));
	expect_carry_eq(&k, &carry_rec);
	/* Nothing goes to the guest by itself: no REQUEST, no RESPONSE. */
	pump(2);
	kick(VSOCK_QUEUE_RX);
	expect_no_pkt();

	/* Host bytes arrive as RW on (L -> P), first of all packets, limited
	 * to the guest's saved credit, headed with the saved fwd_cnt. */
	write_all(sp[1], "0123456789abcdef", 16);
	pump(3);
	p = expect_pkt(VSOCK_OP_RW, CARRY_L, CARRY_P);
	assert_int_equal(p.h.len, 10);
	assert_memory_equal(p.data, "0123456789", 10);
	assert_int_equal(p.h.fwd_cnt, 777);
	assert_int_equal(p.h.buf_alloc, VSOCK_BUF_ALLOC);
	pump(3);
	expect_no_pkt(); /* credit used up */

	/* The guest writes on (P -> L), telling it consumed all 5010 bytes:
	 * they reach the host, and the rest of the host's bytes follow with
	 * our fwd_cnt counted on from the saved one. */
	{
		struct vsock_hdr h = ghdr(VSOCK_OP_RW, CARRY_P, CARRY_L, 2);

		h.buf_alloc = 1000;
		h.fwd_cnt = 5010;
		tx_raw(&h, "hi", 2);
	}
	assert_int_equal(recv(sp[1], buf, 2, MSG_WAITALL), 2);
	assert_memory_equal(buf, "hi", 2);
	pump(3);
	p = expect_pkt(VSOCK_OP_RW, CARRY_L, CARRY_P);
	assert_int_equal(p.h.len, 6);
	assert_memory_equal(p.data, "abcdef", 6);
	assert_int_equal(p.h.fwd_cnt, 779);
	assert_int_equal(v->stat_rst_sent, 0);
	/* Still idle, with the counters carried on. */
	assert_true(capture(&k));
	assert_int_equal(k.peer_buf_alloc, 1000);
	assert_int_equal(k.peer_fwd_cnt, 5010);
	assert_int_equal(k.tx_cnt, 5016);
	assert_int_equal(k.fwd_cnt, 779);
	assert_int_equal(k.fwd_cnt_sent, 779);

	/* The record was used: a second socket for it is refused. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp2), 0);
	assert_int_equal(vsock_add_carried_conn(v, sp2[0]), -ENOENT);
	assert_int_equal(v->nr_conns, 1);
	close(sp2[0]);
	close(sp2[1]);
	close(sp[1]);
}

/* No record, or an fd that is not a connected Unix stream socket: the
 * socket is refused and no connection appears. */
static void test_carry_attach_refused(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int sp[2], pfd[2], lfd;

	(void)state;
	post_all_rx();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	v->has_carry = false;
	assert_int_equal(vsock_add_carried_conn(v, sp[0]), -ENOENT);
	assert_int_equal(v->nr_conns, 0);

	v->has_carry = true;
	v->carry = carry_rec;
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(vsock_add_carried_conn(v, pfd[0]), -ENOTSOCK);
	assert_int_equal(v->nr_conns, 0);
	close(pfd[0]);
	close(pfd[1]);

	v->has_carry = true;
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/l.sock", dir);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(vsock_add_carried_conn(v, lfd), -EINVAL);
	assert_int_equal(v->nr_conns, 0);
	close(lfd);

	pump(2);
	kick(VSOCK_QUEUE_RX);
	expect_no_pkt();
	close(sp[0]);
	close(sp[1]);
}

/* A record saved while a CREDIT_UPDATE was owed: the guest gets it first,
 * on (L -> P) with the saved fwd_cnt, before any data. */
static void test_carry_attach_credit(void **state)
{
	int sp[2];
	struct pkt p;

	(void)state;
	post_all_rx();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	v->has_carry = true;
	v->carry = carry_rec;
	v->carry.flags = VSOCK_CARRY_F_CREDIT;
	assert_int_equal(vsock_add_carried_conn(v, sp[0]), 0);
	/* Sent at the device's next look at its queues, here the guest's rx
	 * notification. (vsock_add_carried_conn() does not run the queues
	 * itself: without this kick, or host bytes, nothing is sent yet.) */
	kick(VSOCK_QUEUE_RX);
	p = expect_pkt(VSOCK_OP_CREDIT_UPDATE, CARRY_L, CARRY_P);
	assert_int_equal(p.h.fwd_cnt, 777);
	assert_int_equal(p.h.buf_alloc, VSOCK_BUF_ALLOC);
	assert_int_equal(p.h.len, 0);
	expect_no_pkt(); /* once */
	/* Then data as usual. */
	write_all(sp[1], "x", 1);
	pump(3);
	p = expect_pkt(VSOCK_OP_RW, CARRY_L, CARRY_P);
	assert_memory_equal(p.data, "x", 1);
	expect_no_pkt();
	close(sp[0]);
	close(sp[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hdr_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_packets_rst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_connect_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_to_guest_credit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_to_host_credit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_and_rst_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_without_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quiesce_returns_held_rx, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reset_keeps_handshakes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reset_before_requests, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_many_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_ring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_carry_capture, setup, teardown),
		cmocka_unit_test_setup_teardown(test_carry_codec, setup, teardown),
		cmocka_unit_test_setup_teardown(test_carry_attach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_carry_attach_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_carry_attach_credit, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
