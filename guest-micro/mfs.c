/*
 * mfs.c - validation and lookup for the EMFS read-only image (see mfs.h).
 *
 * The image is hostile: every offset, size and count comes from a file the
 * tenant built. mfs_mount() checks all of the metadata once, so the lookups
 * below index the tables without further checks except the ones that depend
 * on their arguments.
 */
#include <linux/errno.h>

#include "mfs.h"

/* No libc here: the same file is built into the freestanding guest. */
static int mfs_memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

static void mfs_memcpy(void *d, const void *s, size_t n)
{
	unsigned char *x = d;
	const unsigned char *y = s;

	while (n--)
		*x++ = *y++;
}

/* True if [off, off + count * size) lies inside [0, limit) without
 * overflowing. */
static int mfs_range_ok(uint64_t off, uint64_t count, uint64_t size,
			uint64_t limit)
{
	if (size && count > UINT64_MAX / size)
		return 0;
	uint64_t bytes = count * size;
	return off <= limit && bytes <= limit - off;
}

/* Compares two names: memcmp order, a prefix sorts first. */
static int mfs_name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = mfs_memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

int mfs_probe(const void *buf, uint64_t len, uint64_t image_size,
	      uint64_t *meta_size)
{
	struct mfs_super sb;

	if (len < sizeof(sb) || image_size < sizeof(sb))
		return -EINVAL;
	mfs_memcpy(&sb, buf, sizeof(sb));
	if (mfs_memcmp(sb.magic, MFS_MAGIC, 8) || sb.version != MFS_VERSION)
		return -ENOEXEC;
	if (sb.image_size > image_size || sb.meta_size < sizeof(sb) ||
	    sb.meta_size > sb.image_size)
		return -EINVAL;
	if (sb.meta_size > MFS_MAX_META)
		return -E2BIG;
	*meta_size = sb.meta_size;
	return 0;
}

static int mfs_check_inode(const struct mfs *fs, uint32_t ino)
{
	const struct mfs_inode *in = &fs->inodes[ino];

	if (in->reserved)
		return -EINVAL;
	switch (in->mode & MFS_S_IFMT) {
	case MFS_S_IFREG:
		/* Data lives after the metadata so a file can never alias it. */
		if (in->size && (in->data < fs->meta_size ||
				 !mfs_range_ok(in->data, in->size, 1,
					       fs->image_size)))
			return -EINVAL;
		return 0;
	case MFS_S_IFLNK:
		if (in->size == 0 || in->size >= MFS_PATH_MAX ||
		    in->data < fs->meta_size ||
		    !mfs_range_ok(in->data, in->size, 1, fs->image_size))
			return -EINVAL;
		return 0;
	case MFS_S_IFDIR:
		if (!mfs_range_ok(in->data, in->size, 1, fs->nr_dirents))
			return -EINVAL;
		for (uint64_t i = 0; i < in->size; i++) {
			const struct mfs_dirent *d = &fs->dirents[in->data + i];
			const char *name;

			if (d->ino >= fs->nr_inodes || d->name_len == 0 ||
			    d->name_len > MFS_NAME_MAX ||
			    !mfs_range_ok(d->name_off, d->name_len, 1,
					  fs->names_size))
				return -EINVAL;
			/* Only now is the pointer known to be in bounds. */
			name = fs->names + d->name_off;
			for (uint32_t k = 0; k < d->name_len; k++)
				if (name[k] == '/' || name[k] == '\0')
					return -EINVAL;
			if ((d->name_len == 1 && name[0] == '.') ||
			    (d->name_len == 2 && name[0] == '.' && name[1] == '.'))
				return -EINVAL;
			if (i > 0) {
				const struct mfs_dirent *p = d - 1;
				if (mfs_name_cmp(fs->names + p->name_off,
						 p->name_len, name,
						 d->name_len) >= 0)
					return -EINVAL; /* unsorted or dup */
			}
		}
		return 0;
	default:
		return -EINVAL;
	}
}

int mfs_mount(struct mfs *fs, const void *meta, uint64_t meta_len,
	      uint64_t image_size)
{
	struct mfs_super sb;
	uint64_t meta_size;
	int ret;

	ret = mfs_probe(meta, meta_len, image_size, &meta_size);
	if (ret)
		return ret;
	if (meta_len < meta_size || ((uintptr_t)meta & 7))
		return -EINVAL;
	mfs_memcpy(&sb, meta, sizeof(sb));
	if (sb.nr_inodes == 0)
		return -EINVAL;
	if (sb.nr_inodes > MFS_MAX_INODES || sb.nr_dirents > MFS_MAX_INODES)
		return -E2BIG;
	/* Tables: inside the metadata, aligned for direct access, and not
	 * overlapping the superblock. */
	if ((sb.inode_off & 7) || (sb.dirent_off & 7) ||
	    sb.inode_off < sizeof(sb) || sb.dirent_off < sizeof(sb) ||
	    sb.names_off < sizeof(sb) ||
	    !mfs_range_ok(sb.inode_off, sb.nr_inodes, sizeof(struct mfs_inode),
			  meta_size) ||
	    !mfs_range_ok(sb.dirent_off, sb.nr_dirents,
			  sizeof(struct mfs_dirent), meta_size) ||
	    !mfs_range_ok(sb.names_off, sb.names_size, 1, meta_size))
		return -EINVAL;

	fs->meta = meta;
	fs->meta_size = meta_size;
	fs->image_size = sb.image_size;
	fs->nr_inodes = sb.nr_inodes;
	fs->nr_dirents = sb.nr_dirents;
	fs->inodes = (const struct mfs_inode *)(fs->meta + sb.inode_off);
	fs->dirents = (const struct mfs_dirent *)(fs->meta + sb.dirent_off);
	fs->names = (const char *)(fs->meta + sb.names_off);
	fs->names_size = sb.names_size;

	if ((fs->inodes[0].mode & MFS_S_IFMT) != MFS_S_IFDIR)
		return -EINVAL;
	for (uint32_t i = 0; i < sb.nr_inodes; i++) {
		ret = mfs_check_inode(fs, i);
		if (ret)
			return ret;
	}
	return 0;
}

const struct mfs_inode *mfs_inode(const struct mfs *fs, uint32_t ino)
{
	return ino < fs->nr_inodes ? &fs->inodes[ino] : NULL;
}

int mfs_lookup(const struct mfs *fs, uint32_t dir, const char *name,
	       size_t len, uint32_t *ino)
{
	const struct mfs_inode *d = mfs_inode(fs, dir);
	uint64_t lo = 0, hi;

	if (!d)
		return -ENOENT;
	if ((d->mode & MFS_S_IFMT) != MFS_S_IFDIR)
		return -ENOTDIR;
	hi = d->size;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const struct mfs_dirent *e = &fs->dirents[d->data + mid];
		int c = mfs_name_cmp(fs->names + e->name_off, e->name_len, name,
				     len);
		if (c == 0) {
			*ino = e->ino;
			return 0;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -ENOENT;
}

int mfs_dirent_at(const struct mfs *fs, uint32_t dir, uint64_t idx,
		  uint32_t *ino, const char **name, uint32_t *name_len)
{
	const struct mfs_inode *d = mfs_inode(fs, dir);
	const struct mfs_dirent *e;

	if (!d)
		return -ENOENT;
	if ((d->mode & MFS_S_IFMT) != MFS_S_IFDIR)
		return -ENOTDIR;
	if (idx >= d->size)
		return -ENOENT;
	e = &fs->dirents[d->data + idx];
	*ino = e->ino;
	*name = fs->names + e->name_off;
	*name_len = e->name_len;
	return 0;
}

/* Depth of the lexical ".." stack: enough for any MFS_PATH_MAX path. */
#define MFS_DEPTH_MAX (MFS_PATH_MAX / 2 + 1)

int mfs_resolve(const struct mfs *fs, const char *path, size_t len,
		int follow, mfs_read_link_fn read_link, void *ctx,
		uint32_t *ino)
{
	/* The path still to walk lives in buf[pos, end); a symlink's target
	 * is spliced in front of the rest through tmp. Directories walked so
	 * far are on stack[0..depth] so ".." pops one (root's ".." is root). */
	static char buf[MFS_PATH_MAX], tmp[MFS_PATH_MAX];
	static uint32_t stack[MFS_DEPTH_MAX];
	size_t pos = 0, end = len;
	unsigned depth = 0, links = 0;

	if (len == 0)
		return -ENOENT; /* Linux: an empty path is ENOENT */
	if (len >= MFS_PATH_MAX)
		return -ENAMETOOLONG;
	mfs_memcpy(buf, path, len);
	stack[0] = 0;

	for (;;) {
		size_t start, clen;
		uint32_t next;
		int ret;

		while (pos < end && buf[pos] == '/')
			pos++;
		if (pos == end)
			break;
		start = pos;
		while (pos < end && buf[pos] != '/')
			pos++;
		clen = pos - start;
		if (clen > MFS_NAME_MAX)
			return -ENAMETOOLONG;
		if (clen == 1 && buf[start] == '.')
			continue;
		if (clen == 2 && buf[start] == '.' && buf[start + 1] == '.') {
			if (depth > 0)
				depth--;
			continue;
		}
		ret = mfs_lookup(fs, stack[depth], buf + start, clen, &next);
		if (ret)
			return ret;

		/* pos < end: more components or a trailing '/' follow, so
		 * this one must be (or lead to) a directory. */
		const struct mfs_inode *in = &fs->inodes[next];
		if ((in->mode & MFS_S_IFMT) == MFS_S_IFLNK &&
		    (follow || pos < end)) {
			long tl;
			size_t rest = end - pos;

			if (++links > MFS_SYMLOOP_MAX)
				return -ELOOP;
			if (!read_link)
				return -EIO;
			tl = read_link(ctx, next, tmp, sizeof(tmp));
			if (tl < 0)
				return (int)tl;
			if (tl == 0)
				return -ENOENT;
			if ((size_t)tl + rest >= MFS_PATH_MAX)
				return -ENAMETOOLONG;
			mfs_memcpy(tmp + tl, buf + pos, rest);
			mfs_memcpy(buf, tmp, (size_t)tl + rest);
			pos = 0;
			end = (size_t)tl + rest;
			if (buf[0] == '/')
				depth = 0;
			continue;
		}
		if (pos < end && (in->mode & MFS_S_IFMT) != MFS_S_IFDIR)
			return -ENOTDIR;
		if (depth + 1 >= MFS_DEPTH_MAX)
			return -ENAMETOOLONG;
		stack[++depth] = next;
	}
	*ino = stack[depth];
	return 0;
}
