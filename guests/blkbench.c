/*
 * blkbench: virtio-blk throughput and IOPS measured inside the guest with
 * the TSC (boot_info.tsc_khz), through guest-drivers/blk.c's asynchronous
 * API. Uses the first virtio-blk device; the disk's contents are destroyed
 * (unless "ro": reads only). Command line (all optional):
 *   mb=N     bytes for the sequential passes, in MiB (default: the disk,
 *            at most 64)
 *   bs=N     sequential request size in KiB (default 128, max 1024)
 *   qd=N     requests in flight (default 16, max 64)
 *   ops=N    4 KiB random requests per random pass (default 20000)
 *   ro       skip the write passes
 *   noseq    skip the sequential passes (so that the random reads can meet
 *            a cold page cache on the host)
 * Prints one parseable line, values in MB/s (10^6 bytes) and IO/s:
 *   blkbench: seq_write_mbps=W seq_read_mbps=R rand_read_iops=I
 *     rand_write_iops=J qd=Q bs_kib=B mib=M ops=O
 * (the write fields are -1 with "ro", the seq ones with "noseq"), and exits 0; "blkbench: FAIL ..."
 * and exit 1 on any I/O error.
 */
#include "rt.h"

#include "guest-drivers/blk.h"

#define MAX_QD 64

static struct gblk blk;
static uint8_t *bufs[MAX_QD];
static uint64_t rng = 0x853c49e6748fea9bULL;

static uint64_t xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static __attribute__((noreturn)) void fail(const char *what, int err)
{
	rt_printf("blkbench: FAIL %s (%d)\n", what, err);
	rt_exit(1);
}

/*
 * Runs `count` requests of `len` bytes, `qd` in flight, sequential from
 * sector 0 or at random 4 KiB-aligned offsets below `span` sectors.
 * Returns the elapsed TSC ticks.
 */
static uint64_t run(uint32_t type, uint64_t count, uint32_t len, unsigned qd,
		    bool random, uint64_t span)
{
	uint64_t submitted = 0, done = 0, next = 0, t0 = rt_rdtsc();
	unsigned free_slot[MAX_QD], nfree = qd;
	uint32_t nsect = len / GBLK_SECTOR;
	void *cookie;
	int ret, result;

	for (unsigned i = 0; i < qd; i++)
		free_slot[i] = i;
	while (done < count) {
		while (submitted < count && nfree) {
			unsigned slot = free_slot[--nfree];
			uint64_t sector;

			if (random) {
				sector = xorshift() % (span / nsect) * nsect;
			} else {
				sector = next;
				next += nsect;
			}
			ret = gblk_submit(&blk, type, sector, bufs[slot], len,
					  (void *)(uintptr_t)(slot + 1), 0);
			if (ret == -GD_ENOSPC) {
				nfree++;
				break;
			}
			if (ret)
				fail("submit", ret);
			submitted++;
		}
		gblk_kick(&blk);
		ret = gblk_reap(&blk, &cookie, &result, true);
		if (ret != 1)
			fail("reap", ret);
		if (result)
			fail("request", result);
		free_slot[nfree++] = (unsigned)((uintptr_t)cookie - 1);
		done++;
		/* Take everything else that completed meanwhile. */
		while (gblk_reap(&blk, &cookie, &result, false) == 1) {
			if (result)
				fail("request", result);
			free_slot[nfree++] = (unsigned)((uintptr_t)cookie - 1);
			done++;
		}
	}
	return rt_rdtsc() - t0;
}

/* Prints bytes/ticks as MB/s, or ops/ticks as IO/s, one decimal. */
static void rate(const char *name, uint64_t amount, uint64_t ticks,
		 uint64_t scale)
{
	uint64_t ns = rt_tsc_to_ns(ticks);
	uint64_t x10 = ns ? amount * 10000000000ULL / scale / ns : 0;

	rt_printf(" %s=%lu.%lu", name, x10 / 10, x10 % 10);
}

int main(void)
{
	uint64_t mib = 64, bs_kib = 128, qd = 16, ops = 20000, span, count;
	const struct ember_boot_info *bi = rt_boot_info;
	bool ro = rt_cmdline_has("ro"), noseq = rt_cmdline_has("noseq");
	uint64_t tw = 0, tr = 0, trr, trw = 0;
	int ret = -GD_ENODEV;

	for (uint32_t i = 0; i < bi->nr_virtio && i < EMBER_VIRTIO_MAX_DEVICES; i++)
		if (bi->virtio[i].device_id == GBLK_DEVICE_ID) {
			ret = gblk_init(&blk, (uintptr_t)bi->virtio[i].gpa, 256);
			break;
		}
	if (ret)
		fail("no usable virtio-blk device", ret);
	if (!bi->tsc_khz)
		fail("TSC frequency unknown", 0);
	rt_cmdline_u64("bs", &bs_kib);
	rt_cmdline_u64("qd", &qd);
	rt_cmdline_u64("ops", &ops);
	if (!rt_cmdline_u64("mb", &mib) && mib * 2048 > blk.capacity)
		mib = blk.capacity / 2048;
	if (bs_kib == 0 || bs_kib > 1024 || qd == 0 || qd > MAX_QD ||
	    qd * 3 > blk.vq.size || mib == 0 || mib * 2048 > blk.capacity ||
	    mib * 1024 < bs_kib)
		fail("bad parameters", -GD_EINVAL);
	for (unsigned i = 0; i < qd; i++) {
		bufs[i] = rt_alloc(bs_kib * 1024, 4096);
		if (!bufs[i])
			fail("out of memory", -GD_ENOMEM);
		memset(bufs[i], 0xa5 ^ (int)i, bs_kib * 1024);
	}
	count = mib * 1024 / bs_kib;
	span = mib * 2048;

	if (!ro && !noseq) {
		tw = run(GBLK_T_OUT, count, (uint32_t)bs_kib * 1024, (unsigned)qd,
			 false, span);
		ret = gblk_flush(&blk);
		if (ret)
			fail("flush", ret);
	}
	if (!noseq)
		tr = run(GBLK_T_IN, count, (uint32_t)bs_kib * 1024, (unsigned)qd,
			 false, span);
	trr = run(GBLK_T_IN, ops, 4096, (unsigned)qd, true, span);
	if (!ro)
		trw = run(GBLK_T_OUT, ops, 4096, (unsigned)qd, true, span);

	rt_puts("blkbench:");
	if (ro || noseq)
		rt_puts(" seq_write_mbps=-1");
	else
		rate("seq_write_mbps", count * bs_kib * 1024, tw, 1000000);
	if (noseq)
		rt_puts(" seq_read_mbps=-1");
	else
		rate("seq_read_mbps", count * bs_kib * 1024, tr, 1000000);
	rate("rand_read_iops", ops, trr, 1);
	if (ro)
		rt_puts(" rand_write_iops=-1");
	else
		rate("rand_write_iops", ops, trw, 1);
	rt_printf(" qd=%lu bs_kib=%lu mib=%lu ops=%lu\n", qd, bs_kib, mib, ops);
	return 0;
}
