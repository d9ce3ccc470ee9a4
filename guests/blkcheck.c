/*
 * blkcheck: end-to-end check of virtio-blk through guest-drivers/blk.c.
 *
 * Uses the first virtio-blk device in boot_info. Command line words:
 *   sectors=N   how many sectors from 0 (default: the disk, at most 8 MiB)
 *   seed=S      pattern seed (default 0)
 *   (default)   write the pattern over [0, N), flush, read back, compare:
 *               prints "blkcheck: OK N sectors" and exits 0
 *   verify      only read [0, N) and compare with the pattern (data the host
 *               wrote): "blkcheck: VERIFY OK N sectors"
 *   expect_ro   the disk is read-only: the driver must refuse a write
 *               (-EROFS, when the device offers VIRTIO_BLK_F_RO) and the
 *               device must fail a forced one with VIRTIO_BLK_S_IOERR, with
 *               sector 0 unchanged: "blkcheck: RO OK"
 * Failures print "blkcheck: FAIL <reason>" and exit 1.
 *
 * The pattern, so that the host can regenerate it (tests/integration/
 * blk-check does, in Python): the 64-bit little-endian word k (0..63) of
 * sector s is splitmix64(s * 64 + k + (seed << 48)), where
 *   splitmix64(x): z = x + 0x9e3779b97f4a7c15;
 *                  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
 *                  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
 *                  return z ^ (z >> 31);      (all mod 2^64)
 */
#include "rt.h"

#include "guest-drivers/blk.h"

#define CHUNK_SECTORS 2048 /* 1 MiB per request */
#define DEFAULT_MAX_SECTORS (8u << 20) / GBLK_SECTOR

static uint64_t splitmix64(uint64_t x)
{
	uint64_t z = x + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill(uint64_t *buf, uint64_t sector, uint64_t n, uint64_t seed)
{
	for (uint64_t s = 0; s < n; s++)
		for (uint64_t k = 0; k < 64; k++)
			buf[s * 64 + k] =
				splitmix64((sector + s) * 64 + k + (seed << 48));
}

/* Returns the first mismatching sector, or UINT64_MAX. */
static uint64_t compare(const uint64_t *buf, uint64_t sector, uint64_t n,
			uint64_t seed)
{
	for (uint64_t s = 0; s < n; s++)
		for (uint64_t k = 0; k < 64; k++)
			if (buf[s * 64 + k] !=
			    splitmix64((sector + s) * 64 + k + (seed << 48)))
				return sector + s;
	return UINT64_MAX;
}

static __attribute__((noreturn)) void fail(const char *what, int err)
{
	rt_printf("blkcheck: FAIL %s (%d)\n", what, err);
	rt_exit(1);
}

static int find_blk(struct gblk *b)
{
	const struct ember_boot_info *bi = rt_boot_info;
	uint32_t n = bi->nr_virtio;

	if (n > EMBER_VIRTIO_MAX_DEVICES)
		n = EMBER_VIRTIO_MAX_DEVICES;
	for (uint32_t i = 0; i < n; i++)
		if (bi->virtio[i].device_id == GBLK_DEVICE_ID)
			return gblk_init(b, (uintptr_t)bi->virtio[i].gpa, 0);
	return -GD_ENODEV;
}

static int check_ro(struct gblk *b, uint64_t *buf)
{
	uint64_t *before = buf, *after = buf + 64;
	void *cookie;
	int ret, result;

	ret = gblk_read(b, 0, before, 1);
	if (ret)
		fail("read sector 0", ret);
	if (b->read_only) {
		ret = gblk_write(b, 0, after, 1);
		if (ret != -GD_EROFS)
			fail("driver wrote to a read-only disk", ret);
	}
	/* Force the write past the driver: the device must refuse it. */
	memset(after, 0x5a, GBLK_SECTOR);
	ret = gblk_submit(b, GBLK_T_OUT, 0, after, GBLK_SECTOR, after,
			  GBLK_F_IGNORE_RO);
	if (ret)
		fail("submit forced write", ret);
	gblk_kick(b);
	ret = gblk_reap(b, &cookie, &result, true);
	if (ret != 1)
		fail("reap forced write", ret);
	if (result != -GD_EIO)
		fail("read-only device accepted a write or wrong status",
		     result);
	ret = gblk_read(b, 0, after, 1);
	if (ret)
		fail("re-read sector 0", ret);
	if (memcmp(before, after, GBLK_SECTOR))
		fail("sector 0 changed on a read-only disk", 0);
	rt_printf("blkcheck: RO OK (F_RO %s)\n", b->read_only ? "offered" :
							       "not offered");
	return 0;
}

int main(void)
{
	static struct gblk blk;
	uint64_t n, seed = 0, bad, t0, t1;
	bool verify = rt_cmdline_has("verify");
	uint64_t *buf;
	int ret;

	ret = find_blk(&blk);
	if (ret)
		fail("no usable virtio-blk device", ret);
	rt_printf("blkcheck: capacity %lu sectors, ro=%d flush=%d queue=%u\n",
		  blk.capacity, blk.read_only, blk.has_flush, blk.vq.size);
	buf = rt_alloc(CHUNK_SECTORS * GBLK_SECTOR, 4096);
	if (!buf)
		fail("out of memory", -GD_ENOMEM);

	if (rt_cmdline_has("expect_ro"))
		return check_ro(&blk, buf);

	if (!rt_cmdline_u64("sectors", &n)) {
		n = blk.capacity;
		if (n > DEFAULT_MAX_SECTORS)
			n = DEFAULT_MAX_SECTORS;
	}
	rt_cmdline_u64("seed", &seed);
	if (n == 0 || n > blk.capacity)
		fail("sectors= out of range", -GD_EINVAL);

	t0 = rt_now_ns();
	if (!verify) {
		for (uint64_t s = 0; s < n; s += CHUNK_SECTORS) {
			uint64_t c = n - s < CHUNK_SECTORS ? n - s : CHUNK_SECTORS;

			fill(buf, s, c, seed);
			ret = gblk_write(&blk, s, buf, c);
			if (ret)
				fail("write", ret);
		}
		ret = gblk_flush(&blk);
		if (ret)
			fail("flush", ret);
	}
	for (uint64_t s = 0; s < n; s += CHUNK_SECTORS) {
		uint64_t c = n - s < CHUNK_SECTORS ? n - s : CHUNK_SECTORS;

		memset(buf, 0, c * GBLK_SECTOR);
		ret = gblk_read(&blk, s, buf, c);
		if (ret)
			fail("read", ret);
		bad = compare(buf, s, c, seed);
		if (bad != UINT64_MAX) {
			rt_printf("blkcheck: FAIL mismatch in sector %lu\n", bad);
			return 1;
		}
	}
	t1 = rt_now_ns();
	rt_printf("blkcheck: %sOK %lu sectors (%lu us)\n",
		  verify ? "VERIFY " : "", n, (t1 - t0) / 1000);
	return 0;
}
