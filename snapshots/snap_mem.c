/*
 * snap_mem.c - the sparse guest memory file and the working-set list.
 *
 * DIR/memory is guest RAM byte for byte (file offset = offset in the flat
 * host mapping mem_layout() splits), with zero pages left as holes so that
 * a mostly-empty 256 MiB guest costs only the pages it used, on disk and in
 * the page cache that every restored instance shares (MAP_PRIVATE).
 * DIR/workingset lists the pages a first invocation touched (snap.h).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshots/snap.h"

/* Little-endian working-set header (snap.h). */
struct snap_ws_header {
	char magic[8];
	uint32_t version;
	uint32_t page_size;
	uint64_t count;
};
_Static_assert(sizeof(struct snap_ws_header) == 24, "ws header layout");

/* A page is zero iff its first word is zero and every byte equals the one
 * 8 bytes before it; memcmp is the fastest loop libc has. */
static bool page_is_zero(const uint8_t *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
	return w == 0 && memcmp(p, p + 8, SNAP_PAGE_SIZE - 8) == 0;
}

int snap_write_memory(const char *dir, const void *ram, uint64_t size,
		      char *err, size_t errlen)
{
	return snap_write_memory_count(dir, ram, size, NULL, err, errlen);
}

int snap_write_memory_count_at(int dirfd, const void *ram, uint64_t size,
			       uint64_t *data_pages, char *err, size_t errlen)
{
	const uint8_t *mem = ram;
	const uint64_t npages = size / SNAP_PAGE_SIZE;
	uint64_t written = 0, run_start = 0, run_len = 0;
	char tmp[64];
	int fd, ret;

	if (size == 0 || size % SNAP_PAGE_SIZE || size > SNAP_MAX_MEM_SIZE) {
		snap_seterr(err, errlen, "memory size %llu is not a page "
			    "multiple in (0, %llu]", (unsigned long long)size,
			    (unsigned long long)SNAP_MAX_MEM_SIZE);
		return -EINVAL;
	}
	fd = snap_create_tmp_at(dirfd, SNAP_MEMORY_FILE, tmp, sizeof(tmp), err,
				errlen);
	if (fd < 0)
		return fd;
	/* Full size first: every page not written below stays a hole and
	 * reads back as zeroes. */
	if (ftruncate(fd, (off_t)size) < 0) {
		ret = -errno;
		snap_seterr(err, errlen, "truncate %s: %s", tmp, strerror(-ret));
		goto err_unlink;
	}
	/* Coalesce runs of non-zero pages into one pwrite each. */
	for (uint64_t p = 0; p <= npages; p++) {
		bool data = p < npages && !page_is_zero(mem + p * SNAP_PAGE_SIZE);

		if (data) {
			if (run_len == 0)
				run_start = p;
			run_len++;
			continue;
		}
		if (run_len == 0)
			continue;
		ret = snap_pwrite_all(fd, mem + run_start * SNAP_PAGE_SIZE,
				      run_len * SNAP_PAGE_SIZE,
				      run_start * SNAP_PAGE_SIZE);
		if (ret < 0) {
			snap_seterr(err, errlen, "write %s: %s", tmp,
				    strerror(-ret));
			goto err_unlink;
		}
		written += run_len;
		run_len = 0;
	}
	ret = snap_commit_tmp_at(dirfd, fd, tmp, SNAP_MEMORY_FILE, err, errlen);
	if (ret < 0)
		return ret;
	if (data_pages)
		*data_pages = written;
	return 0;

err_unlink:
	close(fd);
	unlinkat(dirfd, tmp, 0);
	return ret;
}

int snap_write_memory_count(const char *dir, const void *ram, uint64_t size,
			    uint64_t *data_pages, char *err, size_t errlen)
{
	int dfd = snap_open_dir(dir, err, errlen), ret;

	if (dfd < 0)
		return dfd;
	ret = snap_write_memory_count_at(dfd, ram, size, data_pages, err,
					 errlen);
	close(dfd);
	return ret;
}

int snap_check_memory_fd(int fd, const char *what, uint64_t expected_size,
			 char *err, size_t errlen)
{
	struct stat st;
	int ret = snap_check_regular_fd(fd, what, &st, err, errlen);

	if (ret < 0)
		return ret;
	/* A short file mapped as guest RAM would SIGBUS the VMM on the first
	 * guest access past its end: refuse it here, with the numbers. */
	if ((uint64_t)st.st_size < expected_size) {
		snap_seterr(err, errlen,
			    "%s is truncated: %lld bytes, the snapshot's "
			    "memory size is %llu",
			    what, (long long)st.st_size,
			    (unsigned long long)expected_size);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size != expected_size) {
		snap_seterr(err, errlen,
			    "%s is %lld bytes, the snapshot's memory size is "
			    "%llu",
			    what, (long long)st.st_size,
			    (unsigned long long)expected_size);
		return -EINVAL;
	}
	return 0;
}

int snap_open_memory(const char *dir, uint64_t expected_size, int *fd,
		     char *err, size_t errlen)
{
	char path[4096];
	struct stat st;
	int mfd, ret;

	mfd = snap_open_regular(dir, SNAP_MEMORY_FILE, path, sizeof(path), &st,
				err, errlen);
	if (mfd < 0)
		return mfd;
	ret = snap_check_memory_fd(mfd, path, expected_size, err, errlen);
	if (ret < 0) {
		close(mfd);
		return ret;
	}
	*fd = mfd;
	return 0;
}

int snap_memory_data_pages(int fd, uint64_t size, uint64_t *pages, char *err,
			   size_t errlen)
{
	uint64_t off = 0, count = 0;

	while (off < size) {
		off_t data = lseek(fd, (off_t)off, SEEK_DATA);
		off_t hole;
		uint64_t start, end;

		if (data < 0 && errno == ENXIO)
			break; /* only a hole up to the end */
		if (data < 0)
			goto err;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			goto err;
		start = (uint64_t)data & ~(SNAP_PAGE_SIZE - 1);
		end = ((uint64_t)hole + SNAP_PAGE_SIZE - 1) &
		      ~(SNAP_PAGE_SIZE - 1);
		if (end > size)
			end = size;
		if (start < off)
			start = off;
		if (end > start)
			count += (end - start) / SNAP_PAGE_SIZE;
		if (end <= off)
			break;
		off = end;
	}
	*pages = count;
	return 0;
err: {
	int e = errno;

	snap_seterr(err, errlen, "seek in memory file: %s", strerror(e));
	return -e;
}
}

/* ---- working set ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The file image of a page list: header then sorted, unique entries.
 * malloc'ed into *out (*outlen bytes). */
static int build_pagelist(const uint64_t *pages, size_t n, uint64_t mem_size,
			  void **out, size_t *outlen, char *err, size_t errlen)
{
	const uint64_t mem_pages = mem_size / SNAP_PAGE_SIZE;
	struct snap_ws_header h;
	uint64_t *sorted;
	uint8_t *buf;
	size_t uniq = 0;

	if (mem_pages == 0 || mem_size % SNAP_PAGE_SIZE) {
		snap_seterr(err, errlen, "bad memory size %llu",
			    (unsigned long long)mem_size);
		return -EINVAL;
	}
	if (n > mem_pages) {
		/* Duplicates would be dropped, but more entries than pages
		 * means a confused caller. */
		snap_seterr(err, errlen, "%zu working-set pages for %llu "
			    "pages of RAM", n, (unsigned long long)mem_pages);
		return -EINVAL;
	}
	buf = malloc(sizeof(h) + (n ? n : 1) * sizeof(uint64_t));
	if (!buf) {
		snap_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	sorted = (uint64_t *)(buf + sizeof(h));
	if (n)
		memcpy(sorted, pages, n * sizeof(uint64_t));
	qsort(sorted, n, sizeof(uint64_t), cmp_u64);
	for (size_t i = 0; i < n; i++) {
		if (sorted[i] >= mem_pages) {
			snap_seterr(err, errlen,
				    "working-set page %llu beyond RAM (%llu "
				    "pages)",
				    (unsigned long long)sorted[i],
				    (unsigned long long)mem_pages);
			free(buf);
			return -EINVAL;
		}
		if (uniq && sorted[uniq - 1] == sorted[i])
			continue;
		sorted[uniq++] = sorted[i];
	}
	for (size_t i = 0; i < uniq; i++)
		sorted[i] = htole64(sorted[i]);
	memcpy(h.magic, SNAP_WS_MAGIC, sizeof(h.magic));
	h.version = htole32(SNAP_WS_VERSION);
	h.page_size = htole32((uint32_t)SNAP_PAGE_SIZE);
	h.count = htole64(uniq);
	memcpy(buf, &h, sizeof(h));
	*out = buf;
	*outlen = sizeof(h) + uniq * sizeof(uint64_t);
	return 0;
}

int snap_write_pagelist(const char *dir, const char *name,
			const uint64_t *pages, size_t n, uint64_t mem_size,
			char *err, size_t errlen)
{
	void *buf;
	size_t len;
	int ret;

	ret = build_pagelist(pages, n, mem_size, &buf, &len, err, errlen);
	if (ret < 0)
		return ret;
	ret = snap_write_file_atomic(dir, name, buf, len, err, errlen);
	free(buf);
	return ret;
}

int snap_write_pagelist_fd(int fd, const uint64_t *pages, size_t n,
			   uint64_t mem_size, char *err, size_t errlen)
{
	void *buf;
	size_t len;
	int ret;

	ret = build_pagelist(pages, n, mem_size, &buf, &len, err, errlen);
	if (ret < 0)
		return ret;
	/* Not atomic: the caller handed us this very file to fill. */
	if (ftruncate(fd, 0) < 0) {
		ret = -errno;
		snap_seterr(err, errlen, "truncate working-set file: %s",
			    strerror(-ret));
	} else if ((ret = snap_pwrite_all(fd, buf, len, 0)) < 0) {
		snap_seterr(err, errlen, "write working-set file: %s",
			    strerror(-ret));
	} else if (fsync(fd) < 0 && errno != EINVAL) {
		ret = -errno;
		snap_seterr(err, errlen, "fsync working-set file: %s",
			    strerror(-ret));
	}
	free(buf);
	return ret;
}

static int pread_exact(int fd, void *buf, size_t len, off_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file shrank under us */
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

int snap_read_pagelist_fd(int fd, const char *what, uint64_t mem_size,
			  uint64_t **pages, size_t *n, char *err, size_t errlen)
{
	const uint64_t mem_pages = mem_size / SNAP_PAGE_SIZE;
	struct snap_ws_header h;
	struct stat st;
	uint64_t count, *list = NULL;
	int ret;

	if (mem_pages == 0 || mem_size % SNAP_PAGE_SIZE ||
	    mem_size > SNAP_MAX_MEM_SIZE) {
		snap_seterr(err, errlen, "bad memory size %llu",
			    (unsigned long long)mem_size);
		return -EINVAL;
	}
	ret = snap_check_regular_fd(fd, what, &st, err, errlen);
	if (ret < 0)
		return ret;
	if ((uint64_t)st.st_size < sizeof(h)) {
		snap_seterr(err, errlen, "%s: truncated header", what);
		return -EINVAL;
	}
	ret = pread_exact(fd, &h, sizeof(h), 0);
	if (ret < 0) {
		snap_seterr(err, errlen, "read %s: %s", what, strerror(-ret));
		return ret;
	}
	count = le64toh(h.count);
	if (memcmp(h.magic, SNAP_WS_MAGIC, sizeof(h.magic))) {
		snap_seterr(err, errlen, "%s: not a working-set file", what);
		return -EINVAL;
	}
	if (le32toh(h.version) != SNAP_WS_VERSION ||
	    le32toh(h.page_size) != SNAP_PAGE_SIZE) {
		snap_seterr(err, errlen, "%s: version %u page size %u "
			    "unsupported", what, le32toh(h.version),
			    le32toh(h.page_size));
		return -EINVAL;
	}
	/* The count is bounded by RAM before it sizes anything; then the
	 * file must hold exactly that many entries. */
	if (count > mem_pages ||
	    (uint64_t)st.st_size != sizeof(h) + count * sizeof(uint64_t)) {
		snap_seterr(err, errlen,
			    "%s: %llu entries do not match a %lld-byte file "
			    "or %llu pages of RAM",
			    what, (unsigned long long)count,
			    (long long)st.st_size,
			    (unsigned long long)mem_pages);
		return -EINVAL;
	}
	list = malloc(count ? count * sizeof(uint64_t) : 1);
	if (!list) {
		snap_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = pread_exact(fd, list, count * sizeof(uint64_t), sizeof(h));
	if (ret < 0) {
		snap_seterr(err, errlen, "read %s: %s", what, strerror(-ret));
		goto err_free;
	}
	ret = -EINVAL;
	for (uint64_t i = 0; i < count; i++) {
		list[i] = le64toh(list[i]);
		if (list[i] >= mem_pages || (i && list[i] <= list[i - 1])) {
			snap_seterr(err, errlen,
				    "%s: entry %llu (page %llu) out of range or "
				    "order",
				    what, (unsigned long long)i,
				    (unsigned long long)list[i]);
			goto err_free;
		}
	}
	*pages = list;
	*n = (size_t)count;
	return 0;

err_free:
	free(list);
	return ret;
}

int snap_read_pagelist(const char *dir, const char *name, uint64_t mem_size,
		       uint64_t **pages, size_t *n, char *err, size_t errlen)
{
	char path[4096];
	struct stat st;
	int fd, ret;

	fd = snap_open_regular(dir, name, path, sizeof(path), &st, err, errlen);
	if (fd < 0)
		return fd;
	ret = snap_read_pagelist_fd(fd, path, mem_size, pages, n, err, errlen);
	close(fd);
	return ret;
}

int snap_write_workingset(const char *dir, const uint64_t *pages, size_t n,
			  uint64_t mem_size, char *err, size_t errlen)
{
	return snap_write_pagelist(dir, SNAP_WORKINGSET_FILE, pages, n,
				   mem_size, err, errlen);
}

int snap_read_workingset(const char *dir, uint64_t mem_size, uint64_t **pages,
			 size_t *n, char *err, size_t errlen)
{
	return snap_read_pagelist(dir, SNAP_WORKINGSET_FILE, mem_size, pages,
				  n, err, errlen);
}
