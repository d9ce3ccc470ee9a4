/*
 * fs.c - the handler's read-only file tree: file descriptors over the EMFS
 * image (mfs.c) on the first virtio-blk disk.
 *
 * At boot the image's metadata is read into memory and validated once
 * (mfs_mount); file data is read from the disk on demand through a 64 KiB
 * window cache, or straight into the handler's buffer for sector-aligned
 * bulk reads (identity mapping makes any buffer DMA-able). The fd table
 * holds image files and directories and the three invocation streams
 * (stdio.c), which start as fds 0..2 and can be dup'ed like any fd.
 * Nothing can be written: O_WRONLY, O_RDWR, O_CREAT give -EROFS.
 */
#include "kernel.h"
#include "blk.h"
#include "mfs.h"

#define FS_MAX_FDS 64
#define FS_FD_PATH 512
#define FS_WINDOW (64u << 10)

#define O_ACCMODE 3
#define O_CREAT 0x40
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
#define S_IFIFO 0010000u

struct gblk *micro_blk(void);

struct file {
	uint8_t kind;       /* FS_KIND_*; FS_KIND_FREE = unused slot */
	bool cloexec;
	uint32_t ino;
	uint64_t pos;       /* byte offset; directories: entry index */
	char path[FS_FD_PATH]; /* absolute, for *at() relative to this fd */
};

static struct mfs fs;
static bool mounted;
static uint64_t img_size;
/* fds 0, 1, 2 start bound to the invocation stream; dup/dup2/fcntl may
 * move the streams to other numbers (the SDK moves its frames off fd 1). */
static struct file files[FS_MAX_FDS] = {
	[0] = { .kind = FS_KIND_STDIN },
	[1] = { .kind = FS_KIND_STDOUT },
	[2] = { .kind = FS_KIND_STDERR },
};

int fs_kind(int fd)
{
	if (fd < 0 || fd >= FS_MAX_FDS)
		return FS_KIND_FREE;
	return files[fd].kind;
}
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

/* The open image file (or directory) behind fd, or NULL. */
static struct file *get_file(int fd)
{
	if (fs_kind(fd) != FS_KIND_FILE)
		return NULL;
	return &files[fd];
}

static bool is_stream(int fd)
{
	int k = fs_kind(fd);

	return k == FS_KIND_STDIN || k == FS_KIND_STDOUT || k == FS_KIND_STDERR;
}

static long read_link_cb(void *ctx, uint32_t ino, char *buf, size_t cap)
{
	const struct mfs_inode *in = mfs_inode(&fs, ino);

	(void)ctx;
	if (!in || in->size > cap)
		return -EIO;
	return img_read(in->data, buf, in->size) ? -EIO : (long)in->size;
}

/* Resolves user path `u` relative to dirfd into *ino; the absolute path
 * (for fds) is left in pathbuf2 with its length. */
static long resolve(int dirfd, const char *u, bool follow, bool empty_ok,
		    uint32_t *ino, size_t *abs_len)
{
	long n;
	size_t base = 0;

	if (!mounted)
		return -ENOENT;
	n = copy_path(u, pathbuf);
	if (n < 0)
		return n;
	if (n == 0) {
		struct file *f = get_file(dirfd);

		if (!empty_ok)
			return -ENOENT;
		if (!f)
			return -EBADF;
		*ino = f->ino;
		*abs_len = strlen(f->path);
		memcpy(pathbuf2, f->path, *abs_len + 1);
		return 0;
	}
	if (pathbuf[0] != '/' && dirfd != AT_FDCWD) {
		struct file *f = get_file(dirfd);

		if (!f)
			return -EBADF;
		if ((mfs_inode(&fs, f->ino)->mode & MFS_S_IFMT) != MFS_S_IFDIR)
			return -ENOTDIR;
		base = strlen(f->path);
		memcpy(pathbuf2, f->path, base);
		pathbuf2[base++] = '/';
	} else if (pathbuf[0] != '/') {
		pathbuf2[base++] = '/'; /* cwd is the root */
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
	long ret;
	int fd;

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
	for (fd = 0; fd < FS_MAX_FDS && files[fd].kind; fd++)
		;
	if (fd == FS_MAX_FDS)
		return -EMFILE;
	files[fd].kind = FS_KIND_FILE;
	files[fd].cloexec = !!(flags & O_CLOEXEC);
	files[fd].ino = ino;
	files[fd].pos = 0;
	/* Keep the path for *at() calls; a too-long one just cannot serve
	 * as a directory fd. */
	if (alen < FS_FD_PATH)
		memcpy(files[fd].path, pathbuf2, alen + 1);
	else
		memcpy(files[fd].path, "/(too long)", 12);
	return fd;
}

long fs_close(int fd)
{
	if (fs_kind(fd) == FS_KIND_FREE)
		return -EBADF;
	files[fd].kind = FS_KIND_FREE;
	return 0;
}

long fs_pread(int fd, void *buf, uint64_t len, int64_t off)
{
	struct file *f = get_file(fd);
	const struct mfs_inode *in;
	uint64_t n;

	if (!f)
		return is_stream(fd) ? -ESPIPE : -EBADF;
	if (off < 0)
		return -EINVAL;
	in = mfs_inode(&fs, f->ino);
	if ((in->mode & MFS_S_IFMT) == MFS_S_IFDIR)
		return -EISDIR;
	if ((uint64_t)off >= in->size || !len)
		return 0;
	n = MIN(len, in->size - (uint64_t)off);
	n = MIN(n, 0x7ffff000ULL); /* Linux's per-call cap */
	if (img_read(in->data + (uint64_t)off, buf, n))
		return -EIO;
	return (long)n;
}

long fs_read(int fd, void *buf, uint64_t len)
{
	struct file *f = get_file(fd);
	long n;

	if (!f)
		return -EBADF;
	n = fs_pread(fd, buf, len, (int64_t)f->pos);
	if (n > 0)
		f->pos += (uint64_t)n;
	return n;
}

long fs_lseek(int fd, int64_t off, int whence)
{
	struct file *f = get_file(fd);
	int64_t base;

	if (!f)
		return is_stream(fd) ? -ESPIPE : -EBADF;
	switch (whence) {
	case SEEK_SET:
		base = 0;
		break;
	case SEEK_CUR:
		base = (int64_t)f->pos;
		break;
	case SEEK_END:
		base = (int64_t)mfs_inode(&fs, f->ino)->size;
		break;
	default:
		return -EINVAL;
	}
	if ((off > 0 && base > INT64_MAX - off) || base + off < 0)
		return -EINVAL;
	f->pos = (uint64_t)(base + off);
	return (long)f->pos;
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

/* The standard streams look like pipes (as for a handler run by a host
 * process), so C libraries buffer stdout fully. */
static void fill_stat_std(int fd, struct kstat *st)
{
	memset(st, 0, sizeof(*st));
	st->dev = 0xc;
	st->ino = (uint64_t)fd + 1;
	st->nlink = 1;
	st->mode = S_IFIFO | 0600;
	st->blksize = 4096;
}

long fs_fstat(int fd, void *ust)
{
	struct kstat st;
	struct file *f = get_file(fd);

	if (is_stream(fd))
		fill_stat_std(fd, &st);
	else if (f)
		fill_stat(f->ino, &st);
	else
		return -EBADF;
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
	    is_stream(dirfd))
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
	struct file *f = get_file(fd);
	uint8_t *out = ubuf;
	size_t used = 0;

	if (!f)
		return -EBADF;
	if ((mfs_inode(&fs, f->ino)->mode & MFS_S_IFMT) != MFS_S_IFDIR)
		return -ENOTDIR;
	if (!mm_access_ok(ubuf, len))
		return -EFAULT;
	/* Positions: 0 ".", 1 "..", 2 + i the directory's entry i. */
	for (;;) {
		const char *name;
		uint32_t nl, ino = f->ino;
		uint8_t type = 4;
		size_t r;

		if (f->pos == 0) {
			name = ".", nl = 1;
		} else if (f->pos == 1) {
			name = "..", nl = 2;
		} else {
			if (mfs_dirent_at(&fs, f->ino, f->pos - 2, &ino, &name,
					  &nl))
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

long fs_dup(int fd, int newfd, int min)
{
	if (fs_kind(fd) == FS_KIND_FREE)
		return -EBADF;
	if (newfd < 0) {
		for (newfd = MAX(min, 0); newfd < FS_MAX_FDS &&
					  files[newfd].kind;
		     newfd++)
			;
		if (newfd >= FS_MAX_FDS)
			return -EMFILE;
	} else if (newfd >= FS_MAX_FDS) {
		return -EBADF;
	}
	if (newfd == fd)
		return newfd;
	/* dup2 semantics: whatever newfd was is closed first. */
	files[newfd] = files[fd];
	files[newfd].cloexec = false;
	return newfd;
}

long fs_fcntl(int fd, int cmd, uint64_t arg)
{
	int k = fs_kind(fd);
	long ret;

	if (k == FS_KIND_FREE)
		return -EBADF;
	switch (cmd) {
	case F_GETFD:
		return files[fd].cloexec ? 1 : 0;
	case F_SETFD:
		files[fd].cloexec = arg & 1;
		return 0;
	case F_GETFL:
		return k == FS_KIND_STDOUT || k == FS_KIND_STDERR ?
			       1 /* O_WRONLY */ : 0;
	case F_SETFL:
		return 0;
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		if (arg >= FS_MAX_FDS)
			return -EINVAL;
		ret = fs_dup(fd, -1, (int)arg);
		if (ret >= 0 && cmd == F_DUPFD_CLOEXEC)
			files[ret].cloexec = true;
		return ret;
	default:
		return -EINVAL;
	}
}
