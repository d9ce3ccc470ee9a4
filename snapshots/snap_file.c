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


int snap_load_state_blob(const char *dir, void **out, size_t *outlen,
			 char *err, size_t errlen)
{
	char path[4096];
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0, cap;
	int fd, ret;

	fd = snap_open_regular(dir, SNAP_STATE_FILE, path, sizeof(path), &st,
			       err, errlen);
	if (fd < 0)
		return fd;
	if (st.st_size > SNAP_MAX_STATE_SIZE) {
		snap_seterr(err, errlen, "%s is %lld bytes, limit %u", path,
			    (long long)st.st_size, SNAP_MAX_STATE_SIZE);
		ret = -EFBIG;
		goto err_close;
	}
	/* The file's size (capped above) plus one byte, so that a file
	 * growing under us is caught; restore reads a few KiB, and should
	 * not allocate the 16 MiB cap each time. */
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf) {
		snap_seterr(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto err_close;
	}
	for (;;) {
		ssize_t n = read(fd, buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			snap_seterr(err, errlen, "read %s: %s", path,
				    strerror(-ret));
			goto err_free;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap) {
			snap_seterr(err, errlen, "%s grew while being read",
				    path);
			ret = -EFBIG;
			goto err_free;
		}
	}
	close(fd);
	*out = buf;
	*outlen = got;
	return 0;

err_free:
	free(buf);
err_close:
	close(fd);
	return ret;
}

int snap_load_state(const char *dir, struct snap_vm *s, unsigned flags,
		    char *err, size_t errlen)
{
	struct snap_cpu_fp here;
	void *blob;
	size_t len;
	int ret;

	ret = snap_load_state_blob(dir, &blob, &len, err, errlen);
	if (ret < 0)
		return ret;
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

int snap_read_state(const char *dir, struct snap_vm *s, char *err,
		    size_t errlen)
{
	return snap_load_state(dir, s, 0, err, errlen);
}

int snap_write_file_atomic(const char *dir, const char *name, const void *buf,
			   size_t len, char *err, size_t errlen)
{
	char tmp[4096], dst[4096];
	const uint8_t *p = buf;
	int fd, dfd, ret = 0;

	if (snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= (int)sizeof(dst) ||
	    snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name) >=
		    (int)sizeof(tmp)) {
		snap_seterr(err, errlen, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snap_seterr(err, errlen, "create %s: %s", tmp, strerror(-ret));
		return ret;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			snap_seterr(err, errlen, "write %s: %s", tmp,
				    strerror(-ret));
			goto err_unlink;
		}
		p += n;
		len -= (size_t)n;
	}
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
	if (rename(tmp, dst) < 0) {
		ret = -errno;
		snap_seterr(err, errlen, "rename %s: %s", dst, strerror(-ret));
		goto err_unlink;
	}
	/* Make the rename itself durable. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;

err_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return ret;
}
