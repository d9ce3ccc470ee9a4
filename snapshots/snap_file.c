/*
 * snap_file.c - the files of a snapshot directory: opening them checked,
 * loading the state file under its size cap, and replacing a file
 * atomically (temporary name, fsync, rename, fsync of the directory).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshots/snap.h"

void snap_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int snap_open_regular(const char *dir, const char *name, char *path,
		      size_t pathlen, struct stat *st, char *err, size_t errlen)
{
	int fd, ret;

	if (snprintf(path, pathlen, "%s/%s", dir, name) >= (int)pathlen) {
		snap_seterr(err, errlen, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snap_seterr(err, errlen, "open %s: %s", path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, st) < 0) {
		ret = -errno;
		snap_seterr(err, errlen, "stat %s: %s", path, strerror(-ret));
		close(fd);
		return ret;
	}
	if (!S_ISREG(st->st_mode)) {
		snap_seterr(err, errlen, "%s is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	return fd;
}


int snap_open_dir(const char *dir, char *err, size_t errlen)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0) {
		int ret = -errno;

		snap_seterr(err, errlen, "open %s: %s", dir, strerror(-ret));
		return ret;
	}
	return fd;
}

int snap_check_regular_fd(int fd, const char *what, struct stat *st,
			  char *err, size_t errlen)
{
	int ret;

	if (fstat(fd, st) < 0) {
		ret = -errno;
		snap_seterr(err, errlen, "%s: %s", what, strerror(-ret));
		return ret;
	}
	if (!S_ISREG(st->st_mode)) {
		snap_seterr(err, errlen, "%s is not a regular file", what);
		return -EINVAL;
	}
	return 0;
}

int snap_load_state_blob_fd(int fd, const char *what, void **out,
			    size_t *outlen, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0, cap;
	int ret;

	ret = snap_check_regular_fd(fd, what, &st, err, errlen);
	if (ret < 0)
		return ret;
	if (st.st_size > SNAP_MAX_STATE_SIZE) {
		snap_seterr(err, errlen, "%s is %lld bytes, limit %u", what,
			    (long long)st.st_size, SNAP_MAX_STATE_SIZE);
		return -EFBIG;
	}
	/* The file's size (capped above) plus one byte, so that a file
	 * growing under us is caught; restore reads a few KiB, and should
	 * not allocate the 16 MiB cap each time. */
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf) {
		snap_seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* pread from 0: an fd handed over by another process may have been
	 * read from already. */
	for (;;) {
		ssize_t n = pread(fd, buf + got, cap - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			snap_seterr(err, errlen, "read %s: %s", what,
				    strerror(-ret));
			goto err_free;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap) {
			snap_seterr(err, errlen, "%s grew while being read",
				    what);
			ret = -EFBIG;
			goto err_free;
		}
	}
	*out = buf;
	*outlen = got;
	return 0;

err_free:
	free(buf);
	return ret;
}

int snap_load_state_blob(const char *dir, void **out, size_t *outlen,
			 char *err, size_t errlen)
{
	char path[4096];
	struct stat st;
	int fd, ret;

	fd = snap_open_regular(dir, SNAP_STATE_FILE, path, sizeof(path), &st,
			       err, errlen);
	if (fd < 0)
		return fd;
	ret = snap_load_state_blob_fd(fd, path, out, outlen, err, errlen);
	close(fd);
	return ret;
}

/* Parses a loaded blob and, unless SNAP_LOAD_ANY_CPU, checks the CPU. */
static int load_parsed(void *blob, size_t len, struct snap_vm *s,
		       unsigned flags, char *err, size_t errlen)
{
	struct snap_cpu_fp here;
	int ret;

	ret = snap_parse_state(blob, len, s, err, errlen);
	free(blob);
	if (ret < 0 || (flags & SNAP_LOAD_ANY_CPU))
		return ret;
	ret = snap_cpu_fingerprint(&here);
	if (ret < 0) {
		snap_seterr(err, errlen, "cannot identify this host's CPU");
		return ret;
	}
	return snap_cpu_compatible(&s->cpu, &here, err, errlen);
}

int snap_load_state(const char *dir, struct snap_vm *s, unsigned flags,
		    char *err, size_t errlen)
{
	void *blob;
	size_t len;
	int ret;

	ret = snap_load_state_blob(dir, &blob, &len, err, errlen);
	if (ret < 0)
		return ret;
	return load_parsed(blob, len, s, flags, err, errlen);
}

int snap_load_state_fd(int fd, struct snap_vm *s, unsigned flags, char *err,
		       size_t errlen)
{
	void *blob;
	size_t len;
	int ret;

	ret = snap_load_state_blob_fd(fd, "state file", &blob, &len, err,
				      errlen);
	if (ret < 0)
		return ret;
	return load_parsed(blob, len, s, flags, err, errlen);
}

int snap_read_state(const char *dir, struct snap_vm *s, char *err,
		    size_t errlen)
{
	return snap_load_state(dir, s, 0, err, errlen);
}

int snap_create_tmp_at(int dirfd, const char *name, char *tmp, size_t cap,
		       char *err, size_t errlen)
{
	for (int tries = 0; tries < 100; tries++) {
		uint32_t r;
		int fd;

		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (uint32_t)getpid() * 2654435761u + (uint32_t)tries;
		if (snprintf(tmp, cap, ".%s.%08x", name, r) >= (int)cap) {
			snap_seterr(err, errlen, "%s: name too long", name);
			return -ENAMETOOLONG;
		}
		fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			    0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST) {
			int ret = -errno;

			snap_seterr(err, errlen, "create %s: %s", tmp,
				    strerror(-ret));
			return ret;
		}
	}
	snap_seterr(err, errlen, "create .%s.*: no free temporary name", name);
	return -EEXIST;
}

int snap_commit_tmp_at(int dirfd, int fd, const char *tmp, const char *name,
		       char *err, size_t errlen)
{
	int ret;

	/* The data must be durable before the rename makes it visible, or a
	 * crash could leave a complete-looking but empty file (ext4 rename
	 * semantics are not a guarantee elsewhere). */
	if (fsync(fd) < 0) {
		ret = -errno;
		snap_seterr(err, errlen, "fsync %s: %s", tmp, strerror(-ret));
		goto err_unlink;
	}
	if (close(fd) < 0) {
		ret = -errno;
		fd = -1;
		snap_seterr(err, errlen, "close %s: %s", tmp, strerror(-ret));
		goto err_unlink;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		ret = -errno;
		snap_seterr(err, errlen, "rename %s: %s", name, strerror(-ret));
		goto err_unlink;
	}
	/* Make the rename itself durable. */
	fsync(dirfd);
	return 0;

err_unlink:
	if (fd >= 0)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	return ret;
}

int snap_pwrite_all(int fd, const void *buf, uint64_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		/* Cap each call: Linux writes at most ~2 GiB per call anyway. */
		size_t chunk = len > (1u << 30) ? (1u << 30) : (size_t)len;
		ssize_t n = pwrite(fd, p, chunk, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int snap_write_file_atomic_at(int dirfd, const char *name, const void *buf,
			      size_t len, char *err, size_t errlen)
{
	char tmp[256];
	int fd, ret;

	fd = snap_create_tmp_at(dirfd, name, tmp, sizeof(tmp), err, errlen);
	if (fd < 0)
		return fd;
	ret = snap_pwrite_all(fd, buf, len, 0);
	if (ret < 0) {
		snap_seterr(err, errlen, "write %s: %s", tmp, strerror(-ret));
		close(fd);
		unlinkat(dirfd, tmp, 0);
		return ret;
	}
	return snap_commit_tmp_at(dirfd, fd, tmp, name, err, errlen);
}

int snap_write_file_atomic(const char *dir, const char *name, const void *buf,
			   size_t len, char *err, size_t errlen)
{
	int dfd = snap_open_dir(dir, err, errlen), ret;

	if (dfd < 0)
		return dfd;
	ret = snap_write_file_atomic_at(dfd, name, buf, len, err, errlen);
	close(dfd);
	return ret;
}
