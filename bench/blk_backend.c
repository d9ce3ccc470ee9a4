/*
 * blk_backend.c - host-side microbenchmark of virtio-blk's disk backends
 * (vmm/virtio/disk.h), without a guest: the same calls blk.c makes.
 *
 *   4 KiB random reads, IOPS:  disk_uring (queue depth 1 and 32),
 *                              disk_sync, plain pread (the ceiling)
 *   128 KiB sequential reads, MB/s: the same four
 *
 * The image is a fresh temp file (buffered I/O, as ember-vmm opens disks),
 * so after the warm-up pass this measures the backend's per-request cost
 * over the page cache, not the device. Each case runs RUNS times; the median
 * is reported. Writes bench/results/blk.json and prints a table.
 *
 *   blk_backend [--size-mb N] [--runs N] [--out PATH] [--dir DIR]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "virtio/disk.h"

#define RAND_BS 4096
#define SEQ_BS (128 * 1024)
#define MAX_QD 32

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

struct ctx {
	unsigned done;
	unsigned errors;
};

static void on_done(void *opaque, uint64_t cookie, int64_t res)
{
	struct ctx *c = opaque;

	(void)cookie;
	c->done++;
	if (res <= 0)
		c->errors++;
}

/* Runs `ops` requests of `bs` bytes through a backend at queue depth `qd`
 * (submit qd, kick, wait: the pattern of one guest notification carrying
 * qd requests). Random offsets when `random`. Returns seconds. */
static double run_backend(const struct disk_ops *dops, int fd, uint64_t size,
			  unsigned bs, unsigned qd, unsigned ops, bool random,
			  uint8_t *bufs)
{
	struct iovec iov[MAX_QD];
	struct ctx c = { 0 };
	struct disk *d;
	uint64_t off = 0, t0;
	int err = 0;

	d = dops->create(fd, MAX_QD, on_done, &c, &err);
	if (!d) {
		fprintf(stderr, "%s: %s\n", dops->name, strerror(-err));
		exit(1);
	}
	t0 = now_ns();
	for (unsigned issued = 0; issued < ops;) {
		unsigned n = ops - issued < qd ? ops - issued : qd;

		for (unsigned i = 0; i < n; i++) {
			struct disk_req r = { .op = DISK_OP_READ, .iovcnt = 1,
					      .iov = &iov[i], .cookie = i };

			if (random) {
				off = next_rand() % (size / bs) * bs;
			} else {
				off += bs;
				if (off + bs > size)
					off = 0;
			}
			iov[i].iov_base = bufs + (size_t)i * bs;
			iov[i].iov_len = bs;
			r.offset = off;
			if (dops->submit(d, &r) < 0) {
				fprintf(stderr, "submit failed\n");
				exit(1);
			}
		}
		dops->kick(d);
		dops->wait(d);
		issued += n;
	}
	t0 = now_ns() - t0;
	dops->destroy(d);
	if (c.done != ops || c.errors) {
		fprintf(stderr, "%s: %u of %u done, %u errors\n", dops->name,
			c.done, ops, c.errors);
		exit(1);
	}
	return (double)t0 / 1e9;
}

static double run_pread(int fd, uint64_t size, unsigned bs, unsigned ops,
			bool random, uint8_t *buf)
{
	uint64_t off = 0, t0 = now_ns();

	for (unsigned i = 0; i < ops; i++) {
		if (random) {
			off = next_rand() % (size / bs) * bs;
		} else {
			off += bs;
			if (off + bs > size)
				off = 0;
		}
		if (pread(fd, buf, bs, (off_t)off) != (ssize_t)bs) {
			perror("pread");
			exit(1);
		}
	}
	return (double)(now_ns() - t0) / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct result {
	const char *name;
	double rand_iops, seq_mbps;
};

int main(int argc, char **argv)
{
	unsigned size_mb = 64, runs = 5;
	const char *out = "bench/results/blk.json", *dir = "/tmp";
	const unsigned rand_ops = 50000, seq_ops = 2000;
	struct result res[4];
	char path[256];
	uint8_t *bufs;
	uint64_t size;
	FILE *f;
	int fd;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--size-mb") && i + 1 < argc)
			size_mb = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--size-mb N] [--runs N] "
					"[--out PATH] [--dir DIR]\n", argv[0]);
			return 2;
		}
	}
	if (runs < 1 || runs > 99 || size_mb < 1)
		return 2;
	size = (uint64_t)size_mb << 20;
	bufs = aligned_alloc(4096, (size_t)MAX_QD * SEQ_BS);
	if (!bufs)
		return 1;
	memset(bufs, 0x5a, (size_t)MAX_QD * SEQ_BS);
	snprintf(path, sizeof(path), "%s/ember-blkbench-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0) {
		perror("mkstemp");
		return 1;
	}
	unlink(path);
	for (uint64_t off = 0; off < size; off += SEQ_BS)
		if (pwrite(fd, bufs, SEQ_BS, (off_t)off) != SEQ_BS) {
			perror("pwrite");
			return 1;
		}
	fsync(fd);
	run_pread(fd, size, SEQ_BS, (unsigned)(size / SEQ_BS), false, bufs);

	res[0].name = "pread";
	res[1].name = "disk_sync";
	res[2].name = "disk_uring_qd1";
	res[3].name = "disk_uring_qd32";
	for (int k = 0; k < 4; k++) {
		double tr[99], ts[99];

		for (unsigned r = 0; r < runs; r++) {
			switch (k) {
			case 0:
				tr[r] = run_pread(fd, size, RAND_BS, rand_ops,
						  true, bufs);
				ts[r] = run_pread(fd, size, SEQ_BS, seq_ops,
						  false, bufs);
				break;
			case 1:
				tr[r] = run_backend(&disk_sync_ops, fd, size,
						    RAND_BS, 1, rand_ops, true,
						    bufs);
				ts[r] = run_backend(&disk_sync_ops, fd, size,
						    SEQ_BS, 1, seq_ops, false,
						    bufs);
				break;
			default: {
				unsigned qd = k == 2 ? 1 : MAX_QD;

				tr[r] = run_backend(&disk_uring_ops, fd, size,
						    RAND_BS, qd, rand_ops, true,
						    bufs);
				ts[r] = run_backend(&disk_uring_ops, fd, size,
						    SEQ_BS, qd, seq_ops, false,
						    bufs);
			}
			}
		}
		qsort(tr, runs, sizeof(double), cmp_double);
		qsort(ts, runs, sizeof(double), cmp_double);
		res[k].rand_iops = rand_ops / tr[runs / 2];
		res[k].seq_mbps = (double)seq_ops * SEQ_BS / ts[runs / 2] / 1e6;
	}
	close(fd);

	printf("%-18s %14s %14s\n", "backend", "4K rand IOPS", "128K seq MB/s");
	for (int k = 0; k < 4; k++)
		printf("%-18s %14.0f %14.0f\n", res[k].name, res[k].rand_iops,
		       res[k].seq_mbps);
	f = fopen(out, "w");
	if (!f) {
		perror(out);
		return 1;
	}
	fprintf(f, "{\n  \"bench\": \"blk_backend\",\n"
		   "  \"note\": \"host-side, buffered I/O over a warm page cache, "
		   "median of %u runs\",\n  \"file_mb\": %u,\n"
		   "  \"rand_ops\": %u, \"seq_ops\": %u,\n  \"results\": [\n",
		runs, size_mb, rand_ops, seq_ops);
	for (int k = 0; k < 4; k++)
		fprintf(f, "    {\"backend\": \"%s\", \"rand4k_iops\": %.0f, "
			   "\"seq128k_MBps\": %.0f}%s\n",
			res[k].name, res[k].rand_iops, res[k].seq_mbps,
			k < 3 ? "," : "");
	fprintf(f, "  ]\n}\n");
	fclose(f);
	free(bufs);
	return 0;
}
