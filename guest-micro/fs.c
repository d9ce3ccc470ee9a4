/*
 * fs.c - the handler's file descriptors, and its read-only file tree over
 * the EMFS image (mfs.c) on the first virtio-blk disk.
 *
 * A descriptor refers to an open file description (struct ofd: position,
 * status flags, the object behind it), shared by dup'ed descriptors as on
 * Linux. What the description is decides what it does, through its ops
 * table: an image file or directory (here), the invocation streams
 * (stdio.c), pipes and eventfds (pipe.c), timerfds (time.c), epoll
 * instances (poll.c), memfds (memfd.c). fds 0..2 start bound to the
 * invocation stream and can be dup'ed and closed like any fd.
 *
 * Image files: at boot the image's metadata is read into memory and
 * validated once (mfs_mount); file data is read from the disk on demand
 * through a 64 KiB window cache, or straight into the handler's buffer for
 * sector-aligned bulk reads into identity-mapped RAM (DMA-able as is).
 * Nothing in the image can be written: O_WRONLY, O_RDWR, O_CREAT give
 * -EROFS. The working directory starts at "/" and moves within the image.
 *
 * Threads waiting for a descriptor to become ready (a pipe read, poll,
 * epoll_wait) wait on one channel, fs_changed() wakes them all, and each
 * looks at its descriptors again: few threads, simple and lossless.
 */
#include "kernel.h"
#include "blk.h"
#include "mfs.h"

#define FS_WINDOW (64u << 10)

#define O_RDONLY 0
#define O_WRONLY 1
#define O_ACCMODE 3
#define O_CREAT 0x40
#define O_APPEND 0x400
#define O_NONBLOCK 0x800
#define O_DIRECTORY 0x10000
#define O_NOFOLLOW 0x20000
#define O_CLOEXEC 0x80000
#define AT_FDCWD (-100)
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_EMPTY_PATH 0x1000
#define W_OK 2
#define X_OK 1
#define SEEK_SET 0
#define SEEK_CUR 1
#define SEEK_END 2
#define F_DUPFD 0
#define F_GETFD 1
#define F_SETFD 2
#define F_GETFL 3
#define F_SETFL 4
#define F_DUPFD_CLOEXEC 1030
#define F_GETPIPE_SZ 1032

struct gblk *micro_blk(void);

/* An fd: its open file description and the close-on-exec flag. */
static struct {
	struct ofd *d;
	bool cloexec;
} fdt[FS_MAX_FDS];
static struct ofd ofds[FS_MAX_FDS]; /* refs == 0: free */
static uint64_t next_ino = 1000000; /* for objects that are not image files */

static struct mfs fs;
static bool mounted;
static uint64_t img_size;
static char cwd[FS_FD_PATH] = "/";
static char fd_event; /* the channel of fs_wait() and fs_changed() */
static uint32_t umask_val = 022;

static uint8_t *window;       /* FS_WINDOW bytes of the image */
static uint64_t window_off = UINT64_MAX, window_len;
static char pathbuf[MFS_PATH_MAX], pathbuf2[MFS_PATH_MAX];

/* Reads image bytes [off, off + len) into buf. 0 or -EIO. */
static int img_read(uint64_t off, void *buf, uint64_t len)
{
	struct gblk *b = micro_blk();
	uint8_t *p = buf;

	if (!b || off > img_size || len > img_size - off)
		return -EIO;
	while (len) {
		uint64_t n;

		if (!(off % GBLK_SECTOR) && len >= GBLK_SECTOR &&
		    mm_is_low(p, len)) {
			/* Whole sectors go straight to the caller (low RAM is
			 * identity-mapped, so DMA-able; vma.c pages are not
			 * contiguous: they take the window path). */
			n = MIN(len & ~(uint64_t)(GBLK_SECTOR - 1),
				(uint64_t)GBLK_MAX_REQ_BYTES);
			if (gblk_read(b, off / GBLK_SECTOR, p,
				      n / GBLK_SECTOR))
				return -EIO;
		} else {
			if (off < window_off || off >= window_off + window_len) {
				window_off = off & ~(uint64_t)(FS_WINDOW - 1);
				window_len = MIN((uint64_t)FS_WINDOW,
						 img_size - window_off);
				if (gblk_read(b, window_off / GBLK_SECTOR, window,
					      (window_len + GBLK_SECTOR - 1) /
						      GBLK_SECTOR)) {
					window_off = UINT64_MAX;
					return -EIO;
				}
			}
			n = MIN(len, window_off + window_len - off);
			memcpy(p, window + (off - window_off), n);
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

int fs_init(void)
{
	struct gblk *b = micro_blk();
	uint64_t meta_size, a;
	int ret;

	/* The window must hold whole sectors past the image end too. */
	window = gd_alloc(FS_WINDOW + GBLK_SECTOR, 4096);
	if (!b || !window)
		return -ENOMEM;
	img_size = b->capacity * GBLK_SECTOR;
	if (img_size < GBLK_SECTOR || img_size / GBLK_SECTOR != b->capacity)
		return -EINVAL;
	if (gblk_read(b, 0, window, 1))
		return -EIO;
	ret = mfs_probe(window, GBLK_SECTOR, img_size, &meta_size);
	if (ret)
		return ret;
	a = mm_alloc_top(PAGE_UP(meta_size));
	if (!a)
		return -ENOMEM;
	ret = img_read(0, (void *)a, meta_size);
	if (!ret)
		ret = mfs_mount(&fs, (void *)a, meta_size, img_size);
	if (ret) {
		mm_release(a, a + PAGE_UP(meta_size));
		return ret;
	}
	mounted = true;
	return 0;
}

/* Copies a NUL-terminated path from the handler. Length or -errno. */
static long copy_path(const char *u, char *out)
{
	size_t n = 0;

	if (!mm_access_ok(u, 1))
		return -EFAULT;
	for (;;) {
		if (!mm_access_ok(u + n, 1))
			return -EFAULT;
		if (!u[n])
			break;
		if (n + 1 >= MFS_PATH_MAX)
			return -ENAMETOOLONG;
		out[n] = u[n];
		n++;
	}
	out[n] = '\0';
	return (long)n;
}

/* --- descriptors --- */

struct ofd *fs_get(int fd)
{
	if (fd < 0 || fd >= FS_MAX_FDS)
		return NULL;
	return fdt[fd].d;
}

static int lowest_free(int min)
{
	for (int fd = MAX(min, 0); fd < FS_MAX_FDS; fd++)
		if (!fdt[fd].d)
			return fd;
	return -EMFILE;
}

struct ofd *fs_new_ofd(const struct file_ops *ops, void *obj, uint32_t flags)
{
	for (unsigned i = 0; i < FS_MAX_FDS; i++) {
		struct ofd *d = &ofds[i];

		if (d->refs)
			continue;
		memset(d, 0, sizeof(*d));
		d->ops = ops;
		d->obj = obj;
		d->flags = flags;
		d->refs = 1;
		d->ino = next_ino++;
		return d;
	}
	return NULL;
}

static void put_ofd(struct ofd *d)
{
	if (--d->refs)
		return;
	if (d->ops->release)
		d->ops->release(d);
	poll_forget(d); /* epoll instances drop it, as Linux does */
	fs_changed();   /* a pipe lost an end: its peer sees HUP / EPIPE */
}

long fs_install(const struct file_ops *ops, void *obj, uint32_t flags,
		bool cloexec)
{
	int fd = lowest_free(0);
	struct ofd *d;

	if (fd < 0)
		return fd;
	d = fs_new_ofd(ops, obj, flags);
	if (!d)
		return -ENFILE;
	fdt[fd].d = d;
	fdt[fd].cloexec = cloexec;
	return fd;
}

long fs_install_pair(const struct file_ops *ops0, void *obj0, uint32_t fl0,
		     const struct file_ops *ops1, void *obj1, uint32_t fl1,
		     bool cloexec, int fds[2])
{
	long a = fs_install(ops0, obj0, fl0, cloexec), b;

	if (a < 0)
		return a;
	b = fs_install(ops1, obj1, fl1, cloexec);
	if (b < 0) {
		/* Undo the first without releasing its object (the caller
		 * still owns both). */
		fdt[a].d->refs = 0;
		fdt[a].d = NULL;
		return b;
	}
	fds[0] = (int)a;
	fds[1] = (int)b;
	return 0;
}

long fs_close(int fd)
{
	struct ofd *d = fs_get(fd);

	if (!d)
		return -EBADF;
	fdt[fd].d = NULL;
	put_ofd(d);
	return 0;
}

long fs_dup(int fd, int newfd, int min)
{
	struct ofd *d = fs_get(fd);

	if (!d)
		return -EBADF;
	if (newfd < 0) {
		newfd = lowest_free(min);
		if (newfd < 0)
			return newfd;
	} else if (newfd >= FS_MAX_FDS) {
		return -EBADF;
	}
	if (newfd == fd)
		return newfd;
	d->refs++;
	/* dup2 semantics: whatever newfd was is closed first. */
	if (fdt[newfd].d)
		fs_close(newfd);
	fdt[newfd].d = d;
	fdt[newfd].cloexec = false;
	return newfd;
}

void fs_changed(void)
{
	poll_changed();
	sched_wake(&fd_event, ~0u, MICRO_MAX_THREADS);
}

int fs_wait(uint64_t deadline, bool io)
{
	return sched_block(&fd_event, ~0u, deadline,
			   SCHED_INTR | (io ? SCHED_IO : 0));
}

unsigned fs_poll(int fd)
{
	struct ofd *d = fs_get(fd);

	if (!d)
		return POLLNVAL;
	if (d->ops->poll)
		return d->ops->poll(d);
	return POLLIN | POLLOUT; /* regular files are always ready */
}

uint64_t fs_timeout(int fd)
{
	struct ofd *d = fs_get(fd);

	return d && d->ops->deadline ? d->ops->deadline(d) : SCHED_NEVER;
}

bool fs_waits_on_io(int fd)
{
	struct ofd *d = fs_get(fd);

	return d && d->ops->io;
}

long fs_read(int fd, void *buf, uint64_t len)
{
	struct ofd *d = fs_get(fd);
	long n;

	if (!d || (d->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if (!d->ops->read) {
		if (!d->ops->pread)
			return -EINVAL;
		n = d->ops->pread(d, buf, len, d->pos);
		if (n > 0)
			d->pos += (uint64_t)n;
		return n;
	}
	return d->ops->read(d, buf, len);
}

long fs_write(int fd, const void *buf, uint64_t len)
{
	struct ofd *d = fs_get(fd);
	long n;

	if (!d || (d->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	if (!d->ops->write) {
		if (!d->ops->pwrite)
			return -EINVAL;
		if (d->flags & O_APPEND)
			d->pos = (uint64_t)d->ops->size(d);
		n = d->ops->pwrite(d, buf, len, d->pos);
		if (n > 0)
			d->pos += (uint64_t)n;
		return n;
	}
	return d->ops->write(d, buf, len);
}

long fs_pread(int fd, void *buf, uint64_t len, int64_t off)
{
	struct ofd *d = fs_get(fd);

	if (!d || (d->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if (!d->ops->pread)
		return -ESPIPE;
	if (off < 0)
		return -EINVAL;
	return d->ops->pread(d, buf, len, (uint64_t)off);
}

long fs_pwrite(int fd, const void *buf, uint64_t len, int64_t off)
{
	struct ofd *d = fs_get(fd);

	if (!d || (d->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	if (!d->ops->pwrite)
		return d->ops->pread ? -EBADF : -ESPIPE;
	if (off < 0)
		return -EINVAL;
	return d->ops->pwrite(d, buf, len, (uint64_t)off);
}

long fs_lseek(int fd, int64_t off, int whence)
{
	struct ofd *d = fs_get(fd);
	int64_t base;

	if (!d)
		return -EBADF;
	if (!d->ops->pread && d->ops != &image_ops)
		return -ESPIPE;
	switch (whence) {
	case SEEK_SET:
		base = 0;
		break;
	case SEEK_CUR:
		base = (int64_t)d->pos;
		break;
	case SEEK_END:
		base = d->ops->size ? d->ops->size(d) : 0;
		break;
	default:
		return -EINVAL;
	}
	if ((off > 0 && base > INT64_MAX - off) || base + off < 0)
		return -EINVAL;
	d->pos = (uint64_t)(base + off);
	return (long)d->pos;
}

long fs_fcntl(int fd, int cmd, uint64_t arg)
{
	struct ofd *d = fs_get(fd);
	long ret;

	if (!d)
		return -EBADF;
	switch (cmd) {
	case F_GETFD:
		return fdt[fd].cloexec ? 1 : 0;
	case F_SETFD:
		fdt[fd].cloexec = arg & 1;
		return 0;
	case F_GETFL:
		return d->flags;
	case F_SETFL:
		/* Only these two status flags can change after open. */
		d->flags = (d->flags & ~(uint32_t)(O_APPEND | O_NONBLOCK)) |
			   ((uint32_t)arg & (O_APPEND | O_NONBLOCK));
		return 0;
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		if (arg >= FS_MAX_FDS)
			return -EINVAL;
		ret = fs_dup(fd, -1, (int)arg);
		if (ret >= 0 && cmd == F_DUPFD_CLOEXEC)
			fdt[ret].cloexec = true;
		return ret;
	case F_GETPIPE_SZ:
		return d->ops->pipe_size ? (long)d->ops->pipe_size : -EBADF;
	default:
		return -EINVAL;
	}
}

/* --- image files --- */

static long image_pread(struct ofd *d, void *buf, uint64_t len, uint64_t off)
{
	const struct mfs_inode *in = mfs_inode(&fs, d->img_ino);
	uint64_t n;

	if ((in->mode & MFS_S_IFMT) == MFS_S_IFDIR)
		return -EISDIR;
	if (off >= in->size || !len)
		return 0;
	n = MIN(len, in->size - off);
	n = MIN(n, 0x7ffff000ULL); /* Linux's per-call cap */
	if (!mm_access_ok(buf, n))
		return -EFAULT;
	if (img_read(in->data + off, buf, n))
		return -EIO;
	return (long)n;
}

static int64_t image_size(struct ofd *d)
{
	return (int64_t)mfs_inode(&fs, d->img_ino)->size;
}

const struct file_ops image_ops = {
	.pread = image_pread,
	.size = image_size,
};

/* The open image file (or directory) behind fd, or NULL. */
static struct ofd *get_file(int fd)
{
	struct ofd *d = fs_get(fd);

	return d && d->ops == &image_ops ? d : NULL;
}

static bool is_dir(uint32_t ino)
{
	return (mfs_inode(&fs, ino)->mode & MFS_S_IFMT) == MFS_S_IFDIR;
}

static long read_link_cb(void *ctx, uint32_t ino, char *buf, size_t cap)
{
	const struct mfs_inode *in = mfs_inode(&fs, ino);

	(void)ctx;
	if (!in || in->size > cap)
		return -EIO;
	return img_read(in->data, buf, in->size) ? -EIO : (long)in->size;
}

/* Resolves user path `u` relative to dirfd (or the working directory)
 * into *ino; the absolute path (for fds) is left in pathbuf2 with its
 * length. */
static long resolve(int dirfd, const char *u, bool follow, bool empty_ok,
		    uint32_t *ino, size_t *abs_len)
{
	const char *base_path = cwd;
	size_t base;
	long n;

	if (!mounted)
		return -ENOENT;
	n = copy_path(u, pathbuf);
	if (n < 0)
		return n;
	if (n == 0) {
		struct ofd *f = get_file(dirfd);

		if (!empty_ok)
			return -ENOENT;
		if (!f)
			return -EBADF;
		*ino = f->img_ino;
		*abs_len = strlen(f->path);
		memcpy(pathbuf2, f->path, *abs_len + 1);
		return 0;
	}
	if (pathbuf[0] != '/' && dirfd != AT_FDCWD) {
		struct ofd *f = get_file(dirfd);

		if (!f)
			return fs_get(dirfd) ? -ENOTDIR : -EBADF;
		if (!is_dir(f->img_ino))
			return -ENOTDIR;
		base_path = f->path;
	}
	if (pathbuf[0] == '/') {
		base = 0;
	} else {
		base = strlen(base_path);
		memcpy(pathbuf2, base_path, base);
		if (!base || pathbuf2[base - 1] != '/')
			pathbuf2[base++] = '/';
	}
	if (base + (size_t)n >= MFS_PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(pathbuf2 + base, pathbuf, (size_t)n + 1);
	*abs_len = base + (size_t)n;
	return mfs_resolve(&fs, pathbuf2, *abs_len, follow, read_link_cb, NULL,
			   ino);
}

long fs_openat(int dirfd, const char *path, int flags, int mode)
{
	uint32_t ino;
	size_t alen;
	long ret, fd;
	struct ofd *d;

	(void)mode;
	if ((flags & O_ACCMODE) != 0 || (flags & O_CREAT)) {
		/* Would a write or a creation: read-only file system. */
		ret = resolve(dirfd, path, true, false, &ino, &alen);
		if (ret == -EFAULT || ret == -ENAMETOOLONG)
			return ret;
		return -EROFS;
	}
	ret = resolve(dirfd, path, !(flags & O_NOFOLLOW), false, &ino, &alen);
	if (ret)
		return ret;
	const struct mfs_inode *in = mfs_inode(&fs, ino);
	if ((in->mode & MFS_S_IFMT) == MFS_S_IFLNK)
		return -ELOOP; /* O_NOFOLLOW on a symlink */
	if ((flags & O_DIRECTORY) && (in->mode & MFS_S_IFMT) != MFS_S_IFDIR)
		return -ENOTDIR;
	fd = fs_install(&image_ops, NULL,
			(uint32_t)flags & (O_ACCMODE | O_NONBLOCK | O_APPEND),
			flags & O_CLOEXEC);
	if (fd < 0)
		return fd;
	d = fdt[fd].d;
	d->img_ino = ino;
	/* Keep the path for *at() calls; a too-long one just cannot serve
	 * as a directory fd. */
	if (alen < FS_FD_PATH)
		memcpy(d->path, pathbuf2, alen + 1);
	else
		memcpy(d->path, "/(too long)", 12);
	return fd;
}

/* The absolute path `in` (len bytes) without ".", "..", repeated and
 * trailing slashes, into out (cap bytes): 0 or -ENAMETOOLONG. Lexical, as
 * ".." is everywhere in this file tree (mfs.h), so symlinks stay as named. */
static long normalize(const char *in, size_t len, char *out, size_t cap)
{
	size_t o = 0, i = 0;

	while (i < len) {
		size_t s, n;

		while (i < len && in[i] == '/')
			i++;
		s = i;
		while (i < len && in[i] != '/')
			i++;
		n = i - s;
		if (!n || (n == 1 && in[s] == '.'))
			continue;
		if (n == 2 && in[s] == '.' && in[s + 1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--; /* the slash; "/.." is "/" */
			continue;
		}
		if (o + 1 + n >= cap)
			return -ENAMETOOLONG;
		out[o++] = '/';
		memcpy(out + o, in + s, n);
		o += n;
	}
	if (!o)
		out[o++] = '/';
	out[o] = '\0';
	return 0;
}

long fs_chdir(const char *path)
{
	uint32_t ino;
	size_t alen;
	long ret = resolve(AT_FDCWD, path, true, false, &ino, &alen);

	if (ret)
		return ret;
	if (!is_dir(ino))
		return -ENOTDIR;
	return normalize(pathbuf2, alen, cwd, sizeof(cwd));
}

long fs_fchdir(int fd)
{
	struct ofd *f = get_file(fd);

	if (!f)
		return fs_get(fd) ? -ENOTDIR : -EBADF;
	if (!is_dir(f->img_ino))
		return -ENOTDIR;
	return normalize(f->path, strlen(f->path), cwd, sizeof(cwd));
}

long fs_getcwd(char *buf, uint64_t size)
{
	size_t n = strlen(cwd) + 1;

	if (size < n)
		return -ERANGE;
	if (!mm_access_ok(buf, n))
		return -EFAULT;
	memcpy(buf, cwd, n);
	return (long)n;
}

long fs_umask(uint32_t mask)
{
	uint32_t old = umask_val;

	umask_val = mask & 0777;
	return old;
}

/* struct stat of x86-64 Linux (arch/x86/include/uapi/asm/stat.h). */
struct kstat {
	uint64_t dev, ino, nlink;
	uint32_t mode, uid, gid, pad0;
	uint64_t rdev;
	int64_t size, blksize, blocks;
	uint64_t atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns;
	int64_t unused[3];
};
_Static_assert(sizeof(struct kstat) == 144, "struct stat layout");

static void fill_stat(uint32_t ino, struct kstat *st)
{
	const struct mfs_inode *in = mfs_inode(&fs, ino);
	bool dir = (in->mode & MFS_S_IFMT) == MFS_S_IFDIR;

	memset(st, 0, sizeof(*st));
	st->dev = 0xfe01;
	st->ino = ino + 1; /* 0 is not a valid inode number for libcs */
	st->nlink = dir ? 2 : 1;
	st->mode = in->mode;
	st->size = dir ? 4096 : (int64_t)in->size;
	st->blksize = 4096;
	st->blocks = (st->size + 511) / 512;
	st->atime = st->mtime = st->ctime = in->mtime;
}

/* Other objects: the streams look like pipes (so C libraries buffer
 * stdout fully), the rest as their ops say. */
static void fill_stat_obj(const struct ofd *d, struct kstat *st)
{
	uint64_t now = time_real_ns() / 1000000000u;

	memset(st, 0, sizeof(*st));
	st->dev = 0xc;
	st->ino = d->ino;
	st->nlink = 1;
	st->mode = d->ops->mode;
	st->blksize = 4096;
	st->size = d->ops->size ? d->ops->size((struct ofd *)(uintptr_t)d) : 0;
	st->blocks = (st->size + 511) / 512;
	st->atime = st->mtime = st->ctime = now;
}

static void fill_stat_fd(const struct ofd *d, struct kstat *st)
{
	if (d->ops == &image_ops)
		fill_stat(d->img_ino, st);
	else
		fill_stat_obj(d, st);
}

long fs_fstat(int fd, void *ust)
{
	struct kstat st;
	struct ofd *d = fs_get(fd);

	if (!d)
		return -EBADF;
	fill_stat_fd(d, &st);
	if (!mm_access_ok(ust, sizeof(st)))
		return -EFAULT;
	memcpy(ust, &st, sizeof(st));
	return 0;
}

long fs_fstatat(int dirfd, const char *path, void *ust, int flags)
{
	struct kstat st;
	uint32_t ino;
	size_t alen;
	long ret;

	if ((flags & AT_EMPTY_PATH) && mm_access_ok(path, 1) && !path[0] &&
	    fs_get(dirfd) && !get_file(dirfd))
		return fs_fstat(dirfd, ust);
	ret = resolve(dirfd, path, !(flags & AT_SYMLINK_NOFOLLOW),
		      flags & AT_EMPTY_PATH, &ino, &alen);
	if (ret)
		return ret;
	fill_stat(ino, &st);
	if (!mm_access_ok(ust, sizeof(st)))
		return -EFAULT;
	memcpy(ust, &st, sizeof(st));
	return 0;
}

long fs_statx(int dirfd, const char *path, int flags, unsigned mask,
	      void *ustx)
{
	struct kstat st;
	uint8_t stx[256];
	long ret;

	(void)mask; /* everything basic is always filled */
	ret = fs_fstatat(dirfd, path, &st, flags);
	if (ret)
		return ret;
	memset(stx, 0, sizeof(stx));
	uint32_t m = 0x7ff, blksize = 4096, nlink = (uint32_t)st.nlink;
	uint16_t mode = (uint16_t)st.mode;
	uint64_t ino = st.ino, size = (uint64_t)st.size,
		 blocks = (uint64_t)st.blocks;
	memcpy(stx + 0, &m, 4);        /* stx_mask: STATX_BASIC_STATS */
	memcpy(stx + 4, &blksize, 4);
	memcpy(stx + 16, &nlink, 4);
	memcpy(stx + 28, &mode, 2);
	memcpy(stx + 32, &ino, 8);
	memcpy(stx + 40, &size, 8);
	memcpy(stx + 48, &blocks, 8);
	memcpy(stx + 64, &st.atime, 8);  /* stx_atime.tv_sec */
	memcpy(stx + 96, &st.ctime, 8);  /* stx_ctime */
	memcpy(stx + 112, &st.mtime, 8); /* stx_mtime */
	if (!mm_access_ok(ustx, sizeof(stx)))
		return -EFAULT;
	memcpy(ustx, stx, sizeof(stx));
	return 0;
}

/* One linux_dirent64 record; 0 if it does not fit in `cap`. */
static size_t put_dirent(uint8_t *out, size_t cap, uint64_t ino, int64_t off,
			 uint8_t type, const char *name, size_t nl)
{
	size_t reclen = (19 + nl + 1 + 7) & ~(size_t)7;
	uint16_t rl = (uint16_t)reclen;

	if (reclen > cap)
		return 0;
	memset(out, 0, reclen);
	memcpy(out, &ino, 8);
	memcpy(out + 8, &off, 8);
	memcpy(out + 16, &rl, 2);
	out[18] = type;
	memcpy(out + 19, name, nl);
	return reclen;
}

static uint8_t dtype(uint32_t mode)
{
	switch (mode & MFS_S_IFMT) {
	case MFS_S_IFDIR:
		return 4;
	case MFS_S_IFLNK:
		return 10;
	default:
		return 8;
	}
}

long fs_getdents64(int fd, void *ubuf, uint64_t len)
{
	struct ofd *f = get_file(fd);
	uint8_t *out = ubuf;
	size_t used = 0;

	if (!f)
		return fs_get(fd) ? -ENOTDIR : -EBADF;
	if (!is_dir(f->img_ino))
		return -ENOTDIR;
	if (!mm_access_ok(ubuf, len))
		return -EFAULT;
	/* Positions: 0 ".", 1 "..", 2 + i the directory's entry i. */
	for (;;) {
		const char *name;
		uint32_t nl, ino = f->img_ino;
		uint8_t type = 4;
		size_t r;

		if (f->pos == 0) {
			name = ".", nl = 1;
		} else if (f->pos == 1) {
			name = "..", nl = 2;
		} else {
			if (mfs_dirent_at(&fs, f->img_ino, f->pos - 2, &ino,
					  &name, &nl))
				break;
			type = dtype(mfs_inode(&fs, ino)->mode);
		}
		r = put_dirent(out + used, len - used, (uint64_t)ino + 1,
			       (int64_t)f->pos + 1, type, name, nl);
		if (!r) {
			if (!used)
				return -EINVAL; /* buffer too small */
			break;
		}
		used += r;
		f->pos++;
	}
	return (long)used;
}

long fs_readlinkat(int dirfd, const char *path, char *ubuf, uint64_t len)
{
	uint32_t ino;
	size_t alen;
	long ret, n;
	const struct mfs_inode *in;

	if (!mm_access_ok(ubuf, len))
		return -EFAULT;
	if ((int64_t)len <= 0)
		return -EINVAL;
	n = copy_path(path, pathbuf);
	if (n < 0)
		return n;
	if (!strncmp(pathbuf, "/proc/self/exe", 15)) {
		const char *p = micro_handler_path();
		size_t l = MIN(strlen(p), len);

		memcpy(ubuf, p, l);
		return (long)l;
	}
	ret = resolve(dirfd, path, false, false, &ino, &alen);
	if (ret)
		return ret;
	in = mfs_inode(&fs, ino);
	if ((in->mode & MFS_S_IFMT) != MFS_S_IFLNK)
		return -EINVAL;
	n = (long)MIN(in->size, len);
	if (img_read(in->data, ubuf, (uint64_t)n))
		return -EIO;
	return n;
}

long fs_faccessat(int dirfd, const char *path, int mode)
{
	uint32_t ino;
	size_t alen;
	long ret = resolve(dirfd, path, true, false, &ino, &alen);

	if (ret)
		return ret;
	if (mode & W_OK)
		return -EROFS;
	if ((mode & X_OK) && !(mfs_inode(&fs, ino)->mode & 0111))
		return -EACCES;
	return 0;
}
