/*
 * vsock-echo: echoes every byte back on every vsock stream connection.
 *
 * Listens on port 1234 (cmdline "port=N" to change) and serves up to 64
 * connections at once. With "connect=P" it first opens a connection to the
 * host (CID 2) port P, writes "hello from vsock-echo\n" and then echoes on it
 * too. Prints "vsock-echo: listening on port N, cid C" when ready (the
 * marker integration tests wait for) and runs until the host stops the VM.
 * Each connection's bytes come back in order; a connection ends when the
 * peer shuts down (after everything was echoed) or resets.
 *
 * Benchmark modes for bench/ (the host measures; "verbose" also prints the
 * guest's view per connection: "vsock-echo: conn H rx B tx B us T"):
 *   source=MIB  each accepted connection gets MIB MiB (byte i = i & 0xff),
 *               then the guest closes it
 *   sink        each accepted connection is read and discarded; when the
 *               peer shuts down, the guest answers "<bytes received>\n"
 */
#include "rt.h"

#include "guest-drivers/vsock.h"

#define MAX_CONNS 64
#define ECHO_BUF 4096
#define SOURCE_CHUNK (64 * 1024)

struct echo {
	bool active;
	uint32_t off, len;   /* bytes of buf still to send back */
	uint64_t rx, tx;     /* totals, for source/sink and verbose */
	uint64_t start_ns;
	uint8_t buf[ECHO_BUF];
};

static struct gvsock vs;
static struct echo echo[MAX_CONNS];
static bool verbose, sink;
static uint64_t source_bytes;

static void finish(int h, const char *why)
{
	struct echo *e = &echo[h];

	if (verbose)
		rt_printf("vsock-echo: conn %d %s rx %lu tx %lu us %lu\n", h, why,
			  e->rx, e->tx, (rt_now_ns() - e->start_ns) / 1000);
	gvsock_close(&vs, h);
	e->active = false;
}

/* source mode: keep the connection's send window full, then close. */
static bool serve_source(int h)
{
	struct echo *e = &echo[h];
	bool progress = false;
	long r;

	/* Byte i of the stream is i & 0xff: start in the shared pattern at
	 * the stream offset's low byte. Large sends mean one kick (one exit)
	 * per credit window rather than per packet. */
	static uint8_t pattern[SOURCE_CHUNK + 256];

	if (pattern[1] == 0)
		for (uint32_t i = 0; i < sizeof(pattern); i++)
			pattern[i] = (uint8_t)i;
	while (e->tx < source_bytes) {
		uint64_t n = source_bytes - e->tx;

		if (n > SOURCE_CHUNK)
			n = SOURCE_CHUNK;
		r = gvsock_send(&vs, h, pattern + (e->tx & 0xff), (uint32_t)n);
		if (r == -GD_EAGAIN)
			return progress;
		if (r < 0) {
			finish(h, "send failed");
			return true;
		}
		e->tx += (uint64_t)r;
		progress = true;
	}
	finish(h, "source done");
	return true;
}

/* sink mode: discard everything; at EOF reply with the byte count. */
static bool serve_sink(int h)
{
	struct echo *e = &echo[h];
	bool progress = false;
	long r;

	for (;;) {
		if (e->len) {
			r = gvsock_send(&vs, h, e->buf + e->off, e->len);
			if (r == -GD_EAGAIN)
				return progress;
			if (r < 0) {
				finish(h, "send failed");
				return true;
			}
			e->off += (uint32_t)r;
			e->len -= (uint32_t)r;
			if (e->len == 0) {
				finish(h, "sink done");
				return true;
			}
			continue;
		}
		r = gvsock_recv(&vs, h, e->buf, ECHO_BUF);
		if (r == -GD_EAGAIN)
			return progress;
		if (r < 0) {
			finish(h, "reset");
			return true;
		}
		progress = true;
		if (r > 0) {
			e->rx += (uint64_t)r;
			continue;
		}
		e->off = 0;
		e->len = (uint32_t)rt_snprintf((char *)e->buf, ECHO_BUF, "%lu\n",
					       e->rx);
	}
}

/* Moves as many bytes as credit and buffers allow; returns true on progress. */
static bool serve(int h)
{
	struct echo *e = &echo[h];
	bool progress = false;
	long r;

	if (source_bytes)
		return serve_source(h);
	if (sink)
		return serve_sink(h);
	for (;;) {
		if (e->len) {
			r = gvsock_send(&vs, h, e->buf + e->off, e->len);
			if (r == -GD_EAGAIN)
				return progress;
			if (r < 0) {
				finish(h, "send failed");
				return true;
			}
			e->off += (uint32_t)r;
			e->len -= (uint32_t)r;
			e->tx += (uint64_t)r;
			progress = true;
			continue;
		}
		r = gvsock_recv(&vs, h, e->buf, ECHO_BUF);
		if (r == -GD_EAGAIN)
			return progress;
		if (r <= 0) {
			finish(h, r == 0 ? "closed by peer" : "reset");
			return true;
		}
		e->off = 0;
		e->len = (uint32_t)r;
		e->rx += (uint64_t)r;
		progress = true;
	}
}

static int find_vsock(void)
{
	const struct ember_boot_info *bi = rt_boot_info;
	uint32_t n = bi->nr_virtio;

	if (n > EMBER_VIRTIO_MAX_DEVICES)
		n = EMBER_VIRTIO_MAX_DEVICES;
	for (uint32_t i = 0; i < n; i++)
		if (bi->virtio[i].device_id == GVSOCK_DEVICE_ID)
			return gvsock_init(&vs, (uintptr_t)bi->virtio[i].gpa,
					   MAX_CONNS, 0);
	return -GD_ENODEV;
}

/* Opens the guest-initiated connection and queues the greeting. */
static void connect_host(uint64_t port)
{
	static const char hello[] = "hello from vsock-echo\n";
	uint64_t deadline = rt_now_ns() + 5000000000ULL;
	int h, r;

	h = gvsock_connect(&vs, VSOCK_HOST_CID, (uint32_t)port);
	if (h < 0) {
		rt_printf("vsock-echo: FAIL connect %lu: %d\n", port, h);
		return;
	}
	while ((r = gvsock_connected(&vs, h)) == 0) {
		if (gvsock_wait(&vs) < 0 || rt_now_ns() > deadline) {
			r = -GD_ETIMEDOUT;
			break;
		}
	}
	if (r != 1) {
		rt_printf("vsock-echo: FAIL connect %lu: %d\n", port, r);
		gvsock_close(&vs, h);
		return;
	}
	memset(&echo[h], 0, offsetof(struct echo, buf));
	echo[h].active = true;
	echo[h].start_ns = rt_now_ns();
	memcpy(echo[h].buf, hello, sizeof(hello) - 1);
	echo[h].off = 0;
	echo[h].len = sizeof(hello) - 1;
	rt_printf("vsock-echo: connected to host port %lu\n", port);
}

int main(void)
{
	uint64_t port = 1234, cport;
	int ret, h;

	uint64_t mib;

	verbose = rt_cmdline_has("verbose");
	sink = rt_cmdline_has("sink");
	if (rt_cmdline_u64("source", &mib))
		source_bytes = mib << 20;
	rt_cmdline_u64("port", &port);
	ret = find_vsock();
	if (ret) {
		rt_printf("vsock-echo: FAIL no usable vsock device (%d)\n", ret);
		return 1;
	}
	ret = gvsock_listen(&vs, (uint32_t)port);
	if (ret) {
		rt_printf("vsock-echo: FAIL listen: %d\n", ret);
		return 1;
	}
	if (rt_cmdline_u64("connect", &cport))
		connect_host(cport);
	rt_printf("vsock-echo: listening on port %lu, cid %lu\n", port, vs.cid);

	for (;;) {
		bool progress = false;

		ret = gvsock_poll(&vs);
		if (ret < 0) {
			rt_printf("vsock-echo: FAIL device error %d\n", ret);
			return 1;
		}
		while ((h = gvsock_accept(&vs, (uint32_t)port)) >= 0) {
			memset(&echo[h], 0, offsetof(struct echo, buf));
			echo[h].active = true;
			echo[h].start_ns = rt_now_ns();
			if (verbose)
				rt_printf("vsock-echo: conn %d accepted\n", h);
		}
		for (h = 0; h < MAX_CONNS; h++)
			if (echo[h].active && serve(h))
				progress = true;
		if (!progress && ret == 0 && gvsock_wait(&vs) < 0)
			return 1;
	}
}
