/*
 * archive.c - a function archive validated and extracted into its tree
 * (see archive.h). libarchive parses tar and gzip; everything it hands
 * back (names, link targets, types, sizes, data) is checked here before
 * anything is created, and created only through directory fds.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/archive.h"
#include "agent/manifest.h"
#include "guest-micro/mfs.h"
#include "log.h"
#include "tools/beneath.h"

struct extract {
	int fd;                    /* the archive */
	int tree;                  /* the tree's root directory */
	const struct fn_archive_limits *lim;
	struct fn_archive_stats st;
	bool over_size;            /* the read callback hit max_archive_bytes */
	char buf[64 << 10];
	char *err;
	size_t errlen;
};

static la_ssize_t read_cb(struct archive *a, void *opaque, const void **out)
{
	struct extract *x = opaque;
	ssize_t n;

	do
		n = read(x->fd, x->buf, sizeof(x->buf));
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		archive_set_error(a, errno, "reading the archive: %s",
				  strerror(errno));
		return -1;
	}
	x->st.archive_bytes += (uint64_t)n;
	if (x->st.archive_bytes > x->lim->max_archive_bytes) {
		x->over_size = true;
		archive_set_error(a, EFBIG, "the archive is over %llu bytes",
				  (unsigned long long)x->lim->max_archive_bytes);
		return -1;
	}
	*out = x->buf;
	return n;
}

/* Strips "./" prefixes and, for directories, trailing slashes; checks the
 * rest. `what` names the path in messages ("entry", "hard link target"). */
static int clean_path(struct extract *x, const char *raw, bool is_dir,
		      char *out, size_t cap, const char *what)
{
	char why[160];
	size_t len;

	if (!raw)
		return errbuf_fail(x->err, x->errlen, -EINVAL,
				   "an %s has a name that cannot be read", what);
	if (raw[0] == '/')
		return errbuf_fail(x->err, x->errlen, -EINVAL,
				   "%s \"%.200s\": absolute paths are not allowed",
				   what, raw);
	while (raw[0] == '.' && raw[1] == '/')
		for (raw += 2; raw[0] == '/'; raw++)
			;
	len = strlen(raw);
	while (is_dir && len && raw[len - 1] == '/')
		len--;
	if (len >= cap)
		return errbuf_fail(x->err, x->errlen, -EINVAL,
				   "%s \"%.200s...\": path over %zu bytes", what,
				   raw, cap - 1);
	memcpy(out, raw, len);
	out[len] = '\0';
	if (!len || !strcmp(out, "."))
		return 1; /* the root itself */
	if (manifest_check_path(out, cap - 1, why, sizeof(why)))
		return errbuf_fail(x->err, x->errlen, -EINVAL,
				   "%s \"%.200s\" %s", what, out, why);
	return 0;
}

static unsigned depth_of(const char *p)
{
	unsigned d = 1;

	for (; *p; p++)
		d += *p == '/';
	return d;
}

/* A symlink may point anywhere inside the tree, resolved lexically from
 * its own directory. (On the host nothing ever follows it: every open in
 * a tree refuses symlinks. In the guest the image is the whole world.) */
static int check_link_target(struct extract *x, const char *path,
			     const char *target)
{
	long depth = (long)depth_of(path) - 1; /* the link's directory */
	size_t len = strlen(target);
	const char *p = target;

	if (!len || len >= MFS_PATH_MAX)
		return errbuf_fail(x->err, x->errlen, -EINVAL,
				   "symlink \"%s\": target must be 1..%d bytes",
				   path, MFS_PATH_MAX - 1);
	if (target[0] == '/')
		return errbuf_fail(x->err, x->errlen, -EINVAL,
				   "symlink \"%s\" -> \"%.200s\": absolute "
				   "targets leave the tree", path, target);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)target[i] < 0x20 || target[i] == 0x7f)
			return errbuf_fail(x->err, x->errlen, -EINVAL,
					   "symlink \"%s\": target contains a "
					   "control character", path);
	while (*p) {
		const char *e = strchrnul(p, '/');
		size_t l = (size_t)(e - p);

		if (l == 2 && p[0] == '.' && p[1] == '.')
			depth--;
		else if (l && !(l == 1 && p[0] == '.'))
			depth++;
		if (depth < 0)
			return errbuf_fail(x->err, x->errlen, -EINVAL,
					   "symlink \"%s\" -> \"%.200s\" leaves "
					   "the tree", path, target);
		p = *e ? e + 1 : e;
	}
	return 0;
}

static int count_file(struct extract *x, const char *path, unsigned n)
{
	x->st.files += n;
	if (x->st.files > x->lim->max_files)
		return errbuf_fail(x->err, x->errlen, -EFBIG,
				   "entry \"%s\": more than %llu files", path,
				   (unsigned long long)x->lim->max_files);
	return 0;
}

static int count_bytes(struct extract *x, const char *path, uint64_t n)
{
	if (n > x->lim->max_tree_bytes - x->st.tree_bytes)
		return errbuf_fail(x->err, x->errlen, -EFBIG,
				   "entry \"%s\" (%llu bytes): the files would "
				   "exceed %llu bytes", path,
				   (unsigned long long)n,
				   (unsigned long long)x->lim->max_tree_bytes);
	x->st.tree_bytes += n;
	return 0;
}

static int check_ratio(struct extract *x, struct archive *a)
{
	uint64_t out = (uint64_t)archive_filter_bytes(a, 0);
	uint64_t in = x->st.archive_bytes ? x->st.archive_bytes : 1;

	if (x->lim->max_ratio && out > FN_ARCHIVE_RATIO_AFTER &&
	    out / in > x->lim->max_ratio)
		return errbuf_fail(x->err, x->errlen, -EFBIG,
				   "the archive expands more than %ux (%llu "
				   "bytes from %llu): refused as a compression "
				   "bomb", x->lim->max_ratio,
				   (unsigned long long)out,
				   (unsigned long long)in);
	return 0;
}

static int archive_fail(struct extract *x, struct archive *a,
			const char *path)
{
	const char *msg = archive_error_string(a);

	if (x->over_size)
		return errbuf_fail(x->err, x->errlen, -EFBIG,
				   "the archive is over %llu bytes",
				   (unsigned long long)x->lim->max_archive_bytes);
	if (path)
		return errbuf_fail(x->err, x->errlen, -EINVAL,
				   "entry \"%s\": %s", path,
				   msg ? msg : "unreadable data");
	return errbuf_fail(x->err, x->errlen, -EINVAL,
			   "not a readable tar or tar.gz archive: %s",
			   msg ? msg : "unknown error");
}

static int errno_fail(struct extract *x, int ret, const char *path,
		      const char *doing)
{
	if (ret == -ELOOP || ret == -ENOTDIR)
		return errbuf_fail(x->err, x->errlen, -EINVAL,
				   "entry \"%s\": its directory is a symlink or "
				   "not a directory", path);
	if (ret == -EEXIST)
		return errbuf_fail(x->err, x->errlen, -EINVAL,
				   "entry \"%s\" appears twice in the archive",
				   path);
	return errbuf_fail(x->err, x->errlen, ret, "entry \"%s\": %s: %s", path,
			   doing, strerror(-ret));
}

static int write_file(struct extract *x, struct archive *a,
		      struct archive_entry *e, int dir, const char *leaf,
		      const char *path)
{
	int64_t size = archive_entry_size(e);
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };
	int fd, ret;

	if (!archive_entry_size_is_set(e) || size < 0)
		return errbuf_fail(x->err, x->errlen, -EINVAL,
				   "entry \"%s\" has no size", path);
	ret = count_bytes(x, path, (uint64_t)size);
	if (ret)
		return ret;
	fd = openat(dir, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				       O_CLOEXEC, 0600);
	if (fd < 0)
		return errno_fail(x, -errno, path, "create");
	for (;;) {
		const void *buf;
		size_t n;
		la_int64_t off;
		int r = archive_read_data_block(a, &buf, &n, &off);

		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			ret = archive_fail(x, a, path);
			goto out;
		}
		/* Sparse entries may skip ahead, never past the size. */
		if (off < 0 || (uint64_t)off > (uint64_t)size ||
		    n > (uint64_t)size - (uint64_t)off) {
			ret = errbuf_fail(x->err, x->errlen, -EINVAL,
					  "entry \"%s\": data beyond its size",
					  path);
			goto out;
		}
		for (size_t done = 0; done < n;) {
			ssize_t w = pwrite(fd, (const char *)buf + done,
					   n - done, off + (off_t)done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				ret = errno_fail(x, -errno, path, "write");
				goto out;
			}
			done += (size_t)w;
		}
		ret = check_ratio(x, a);
		if (ret)
			goto out;
	}
	if (ftruncate(fd, size) ||
	    fchmod(fd, (archive_entry_perm(e) & 0755) | 0400)) {
		ret = errno_fail(x, -errno, path, "finish");
		goto out;
	}
	if (archive_entry_mtime_is_set(e) && archive_entry_mtime(e) >= 0) {
		ts[1].tv_sec = archive_entry_mtime(e);
		ts[1].tv_nsec = 0;
		futimens(fd, ts); /* cosmetic: the image keeps mtimes */
	}
out:
	close(fd);
	return ret;
}

static int make_hardlink(struct extract *x, struct archive_entry *e, int dir,
			 const char *leaf, const char *path)
{
	char target[FN_ARCHIVE_MAX_PATH + 1];
	const char *tleaf;
	struct stat sb;
	int tdir, ret;

	ret = clean_path(x, archive_entry_hardlink(e), false, target,
			 sizeof(target), "hard link target");
	if (ret > 0)
		return errbuf_fail(x->err, x->errlen, -EINVAL,
				   "hard link \"%s\" points at the root", path);
	if (ret)
		return ret;
	tdir = beneath_open_parent(x->tree, target, &tleaf);
	if (tdir < 0)
		goto missing;
	if (fstatat(tdir, tleaf, &sb, AT_SYMLINK_NOFOLLOW) ||
	    !S_ISREG(sb.st_mode)) {
		close(tdir);
		goto missing;
	}
	/* The image stores hard links as copies: they cost their size. */
	ret = count_bytes(x, path, (uint64_t)sb.st_size);
	if (!ret && linkat(tdir, tleaf, dir, leaf, 0))
		ret = errno_fail(x, -errno, path, "link");
	close(tdir);
	return ret;
missing:
	return errbuf_fail(x->err, x->errlen, -EINVAL,
			   "hard link \"%s\" -> \"%.200s\": the target is not a "
			   "regular file extracted before it", path, target);
}

static const char *type_name(mode_t t)
{
	switch (t) {
	case AE_IFCHR: return "a character device";
	case AE_IFBLK: return "a block device";
	case AE_IFIFO: return "a fifo";
	case AE_IFSOCK: return "a socket";
	}
	return "of an unknown type";
}

static int extract_entry(struct extract *x, struct archive *a,
			 struct archive_entry *e)
{
	char path[FN_ARCHIVE_MAX_PATH + 1];
	mode_t type = archive_entry_filetype(e);
	bool hard = archive_entry_hardlink(e) != NULL;
	bool is_dir = !hard && type == AE_IFDIR;
	const char *leaf;
	unsigned created = 0;
	int dir, ret;

	ret = clean_path(x, archive_entry_pathname(e), is_dir, path,
			 sizeof(path), "entry");
	if (ret > 0) {
		if (!is_dir)
			return errbuf_fail(x->err, x->errlen, -EINVAL,
					   "an entry that is not a directory "
					   "names the root");
		return 0; /* "./": the tree's root exists */
	}
	if (ret)
		return ret;
	if (!hard && type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
		return errbuf_fail(x->err, x->errlen, -EINVAL,
				   "entry \"%s\" is %s: only files, directories "
				   "and symlinks are allowed", path,
				   type_name(type));
	if (depth_of(path) > FN_ARCHIVE_MAX_DEPTH)
		return errbuf_fail(x->err, x->errlen, -EINVAL,
				   "entry \"%s\" is more than %u levels deep",
				   path, FN_ARCHIVE_MAX_DEPTH);
	if (!hard && type == AE_IFLNK) {
		ret = check_link_target(x, path, archive_entry_symlink(e) ?
							 archive_entry_symlink(e) :
							 "");
		if (ret)
			return ret;
	}

	dir = beneath_mkdirs(x->tree, path, 0755, &leaf, &created);
	if (dir < 0)
		return errno_fail(x, dir, path, "create its directory");
	ret = count_file(x, path, created + 1);
	if (ret)
		goto out;
	if (hard) {
		ret = make_hardlink(x, e, dir, leaf, path);
	} else if (type == AE_IFREG) {
		ret = write_file(x, a, e, dir, leaf, path);
	} else if (type == AE_IFLNK) {
		if (symlinkat(archive_entry_symlink(e), dir, leaf))
			ret = errno_fail(x, -errno, path, "symlink");
	} else {
		struct stat sb;
		mode_t mode = (archive_entry_perm(e) & 0755) | 0700;

		if (mkdirat(dir, leaf, mode) == 0) {
			/* mkdirat applies the umask. */
			if (fchmodat(dir, leaf, mode, 0))
				ret = errno_fail(x, -errno, path, "chmod");
		} else if (errno != EEXIST ||
			   fstatat(dir, leaf, &sb, AT_SYMLINK_NOFOLLOW) ||
			   !S_ISDIR(sb.st_mode)) {
			ret = errno_fail(x, -EEXIST, path, "mkdir");
		} else {
			x->st.files--; /* named again after an implied one */
		}
	}
out:
	close(dir);
	return ret;
}

int fn_archive_extract(int fd, int tree_fd, const struct fn_archive_limits *lim,
		       struct fn_archive_stats *st, char *err, size_t errlen)
{
	struct extract *x = calloc(1, sizeof(*x));
	struct archive *a = NULL;
	struct archive_entry *e;
	int ret = 0, r;

	if (!x)
		return errbuf_fail(err, errlen, -ENOMEM, "out of memory");
	x->fd = fd;
	x->tree = tree_fd;
	x->lim = lim;
	x->err = err;
	x->errlen = errlen;
	a = archive_read_new();
	if (!a) {
		ret = errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	/* Built-in zlib only: ARCHIVE_WARN would mean an external gzip. */
	if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(a) != ARCHIVE_OK) {
		ret = errbuf_fail(err, errlen, -ENOSYS,
				  "libarchive lacks built-in tar or gzip");
		goto out;
	}
	if (archive_read_open(a, x, NULL, read_cb, NULL) != ARCHIVE_OK) {
		ret = archive_fail(x, a, NULL);
		goto out;
	}
	while (!ret) {
		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN) {
			ret = archive_fail(x, a, NULL);
			break;
		}
		ret = extract_entry(x, a, e);
		if (!ret)
			ret = check_ratio(x, a);
	}
	x->st.gzip = archive_filter_code(a, 0) == ARCHIVE_FILTER_GZIP;
	if (!ret && !x->st.files)
		ret = errbuf_fail(err, errlen, -EINVAL, "the archive is empty");
out:
	if (st)
		*st = x->st;
	archive_read_free(a);
	free(x);
	return ret;
}
