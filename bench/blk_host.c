/*
 * blk_host.c - the host's own I/O on a disk image: the ceiling that
 * bench/blk-guest sets the blkbench guest's figures against.
 *
 * The same four passes as guests/blkbench.c, same sizes and order, on the
 * same file, from one thread at queue depth 1 (pread/pwrite):
 *   sequential write, sequential read (bs KiB requests over mib MiB),
 *   4 KiB random read, 4 KiB random write (ops requests below mib MiB).
 * Buffered (the way ember-vmm opens disks: the page cache is the device
 * here), or with --direct, O_DIRECT (the file system's and device's own
 * speed, no page cache) if the file system accepts it.
 *
 *   blk_host FILE [--mib N] [--bs KIB] [--ops N] [--direct] [--ro]
 *
 * Prints one line, like blkbench's, and exits 0; exit 1 on an I/O error
 * (message on stderr), 77 when --direct is refused (EINVAL from open).
 *   blkhost: seq_write_mbps=W seq_read_mbps=R rand_read_iops=I
 *     rand_write_iops=J direct=0|1 bs_kib=B mib=M ops=O
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RAND_BS 4096

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The generator blkbench uses (xorshift64, same seed), so both sides touch
 * the same offsets. */
static uint64_t rng = 0x853c49e6748fea9bULL;
static uint64_t xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* One full transfer of len bytes at off, retrying short ones.
 * 0 or -errno (-EIO for an unexpected end of file). */
static int xfer(int fd, bool write_it, uint8_t *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write_it ? pwrite(fd, buf + done, len - done,
					      off + (off_t)done)
				     : pread(fd, buf + done, len - done,
					     off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* count requests of len bytes, sequential from 0 or random 4 KiB-aligned
 * below span bytes. Elapsed ns, or 0 after printing the error. */
static uint64_t pass(int fd, bool write_it, uint8_t *buf, uint64_t count,
		     size_t len, bool random, uint64_t span)
{
	uint64_t t0 = now_ns(), slots = span / len;

	for (uint64_t i = 0; i < count; i++) {
		uint64_t off = random ? xorshift() % slots * len : i * len;
		int ret = xfer(fd, write_it, buf, len, (off_t)off);

		if (ret) {
			fprintf(stderr, "blk_host: %s at %" PRIu64 ": %s\n",
				write_it ? "write" : "read", off,
				strerror(-ret));
			return 0;
		}
	}
	return now_ns() - t0 ?: 1;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return !errno && end != s && !*end;
}

int main(int argc, char **argv)
{
	uint64_t mib = 64, bs_kib = 128, ops = 20000, count, span;
	uint64_t tw = 0, tr, trr, trw = 0;
	bool direct = false, ro = false;
	const char *path = NULL;
	uint8_t *buf = NULL;
	int fd, ret = 1;

	for (int i = 1; i < argc; i++) {
		bool ok = true;

		if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			ok = parse_u64(argv[++i], &mib);
		else if (!strcmp(argv[i], "--bs") && i + 1 < argc)
			ok = parse_u64(argv[++i], &bs_kib);
		else if (!strcmp(argv[i], "--ops") && i + 1 < argc)
			ok = parse_u64(argv[++i], &ops);
		else if (!strcmp(argv[i], "--direct"))
			direct = true;
		else if (!strcmp(argv[i], "--ro"))
			ro = true;
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else
			ok = false;
		if (!ok) {
			fprintf(stderr, "usage: blk_host FILE [--mib N] "
					"[--bs KIB] [--ops N] [--direct] "
					"[--ro]\n");
			return 64;
		}
	}
	if (!path || !mib || !bs_kib || bs_kib > 1024 || !ops ||
	    mib > (1u << 20) || mib * 1024 < bs_kib) {
		fprintf(stderr, "blk_host: bad parameters\n");
		return 64;
	}
	fd = open(path, (ro ? O_RDONLY : O_RDWR) | (direct ? O_DIRECT : 0) |
				O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "blk_host: %s: %s\n", path, strerror(errno));
		return direct && errno == EINVAL ? 77 : 1;
	}
	/* O_DIRECT wants the buffer aligned to the logical block size; a page
	 * is enough for every device here. */
	if (posix_memalign((void **)&buf, 4096, bs_kib * 1024)) {
		fprintf(stderr, "blk_host: out of memory\n");
		goto out_close;
	}
	memset(buf, 0xa5, bs_kib * 1024);
	count = mib * 1024 / bs_kib;
	span = mib << 20;

	if (!ro) {
		tw = pass(fd, true, buf, count, bs_kib * 1024, false, span);
		/* Not timed: blkbench's flush is outside its timing too. */
		if (!tw || fdatasync(fd))
			goto out_free;
	}
	tr = pass(fd, false, buf, count, bs_kib * 1024, false, span);
	if (!tr)
		goto out_free;
	trr = pass(fd, false, buf, ops, RAND_BS, true, span);
	if (!trr)
		goto out_free;
	if (!ro) {
		trw = pass(fd, true, buf, ops, RAND_BS, true, span);
		if (!trw)
			goto out_free;
	}
	printf("blkhost: seq_write_mbps=%.1f seq_read_mbps=%.1f "
	       "rand_read_iops=%.1f rand_write_iops=%.1f direct=%d "
	       "bs_kib=%" PRIu64 " mib=%" PRIu64 " ops=%" PRIu64 "\n",
	       ro ? -1.0 : (double)(count * bs_kib * 1024) * 1e3 / (double)tw,
	       (double)(count * bs_kib * 1024) * 1e3 / (double)tr,
	       (double)ops * 1e9 / (double)trr,
	       ro ? -1.0 : (double)ops * 1e9 / (double)trw, direct, bs_kib,
	       mib, ops);
	ret = 0;
out_free:
	free(buf);
out_close:
	close(fd);
	return ret;
}
