/*
 * rngcheck: reads entropy from virtio-rng (virtio 1.2, 5.4) with the
 * shared polling virtqueue driver: a 4 KiB request must come back full and
 * two 32-byte ones must differ. It prints 16 bytes, makes the READY
 * hypercall (the --snapshot-at-ready point) and prints 16 more: clones of
 * that snapshot must print different "after" bytes (fresh host entropy
 * for each clone). tests/integration/virtio-rng.
 */
#include "rt.h"

#include "guest-drivers/virtio_mmio.h"
#include "guest-drivers/virtq.h"

#define RNG_DEVICE_ID 4

static struct gmmio dev;
static struct gvq vq;
static uint8_t big[4096], a[32], b[32];

static __attribute__((noreturn)) void fail(const char *what, int err)
{
	rt_printf("rngcheck: FAIL %s (%d)\n", what, err);
	rt_exit(1);
}

/* One request for len bytes into buf: the count the device wrote. */
static uint32_t get(void *buf, uint32_t len)
{
	struct gvq_buf in = { buf, len };
	void *cookie;
	uint32_t got;
	int ret = gvq_add(&vq, NULL, 0, &in, 1, buf);

	if (ret < 0)
		fail("gvq_add", ret);
	gvq_kick(&vq);
	ret = gvq_wait_used(&vq, &cookie, &got, 1000, 5000000000ULL);
	if (ret != 1 || cookie != buf)
		fail("no answer", ret);
	return got;
}

static void hex(const char *what, const uint8_t *p, unsigned n)
{
	rt_printf("rngcheck: %s ", what);
	for (unsigned i = 0; i < n; i++)
		rt_printf("%02x", p[i]);
	rt_printf("\n");
}

int main(void)
{
	const struct ember_boot_info *bi = rt_boot_info;
	unsigned zeros = 0;
	int ret = -GD_ENODEV;

	for (uint32_t i = 0; i < bi->nr_virtio && i < EMBER_VIRTIO_MAX_DEVICES;
	     i++)
		if (bi->virtio[i].device_id == RNG_DEVICE_ID) {
			ret = gmmio_probe(&dev, (uintptr_t)bi->virtio[i].gpa);
			break;
		}
	if (ret)
		fail("no virtio-rng device", ret);
	if ((ret = gmmio_begin(&dev)) || (ret = gmmio_negotiate(&dev, 0)) ||
	    (ret = gvq_init(&vq, &dev, 0, 8)) || (ret = gmmio_driver_ok(&dev)))
		fail("device bring-up", ret);
	if (get(big, sizeof(big)) != sizeof(big))
		fail("a 4 KiB request came back short", 0);
	for (unsigned i = 0; i < sizeof(big); i++)
		zeros += big[i] == 0;
	/* 4096 random bytes have ~16 zeros; 200 is far beyond chance. */
	if (zeros > 200)
		fail("4 KiB of entropy is mostly zeros", (int)zeros);
	if (get(a, sizeof(a)) != sizeof(a) || get(b, sizeof(b)) != sizeof(b) ||
	    !memcmp(a, b, sizeof(a)))
		fail("two requests returned the same bytes", 0);
	hex("before", a, 16);
	rt_hc_ready();
	if (get(a, sizeof(a)) != sizeof(a))
		fail("request after READY", 0);
	hex("after", a, 16);
	rt_printf("rngcheck: OK\n");
	return 0;
}
