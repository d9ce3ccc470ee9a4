/*
 * mkimage.c - the EMFS image writer (see mkimage.h; the format is in
 * guest-micro/mfs.h).
 *
 * Two passes: scan the tree into memory (names, lstat data), lay out the
 * metadata (breadth-first numbering, so a directory's entries are
 * consecutive dirents) and the data, then write the metadata and copy each
 * file's bytes. Files are opened again for the copy, beneath the source
 * directory and without following links, and must still be what the scan
 * saw (same inode and size).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest-micro/mfs.h"
#include "tools/beneath.h"
#include "tools/mkimage.h"

#define DATA_ALIGN 64
#define REL_MAX 4096

struct node {
	char *name;             /* entry name in its parent (root: "") */
	char *rel;              /* path from its tree's root (root: "") */
	int src;                /* that tree's directory fd (source or graft) */
	struct stat st;
	struct node **kids;     /* directories: sorted children */
	size_t nr_kids;
	uint32_t ino;
	uint64_t data;          /* image offset of file data / first dirent */
	uint64_t size;
	uint64_t name_off;
};

struct builder {
	const struct mkimage_opts *o;
	char *err;
	size_t errlen;
	size_t nr_nodes;
};

static int fail(struct builder *b, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct builder *b, int ret, const char *fmt, ...)
{
	va_list ap;

	if (b->err && b->errlen) {
		va_start(ap, fmt);
		vsnprintf(b->err, b->errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static void report(struct builder *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void report(struct builder *b, const char *fmt, ...)
{
	char line[REL_MAX + 128];
	va_list ap;

	if (!b->o || !b->o->report)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	b->o->report(b->o->ctx, line);
}

static const char *shown(const struct node *n)
{
	return n->rel[0] ? n->rel : ".";
}

static int name_cmp(const void *a, const void *b)
{
	const struct node *x = *(struct node *const *)a;
	const struct node *y = *(struct node *const *)b;
	size_t lx = strlen(x->name), ly = strlen(y->name);
	int c = memcmp(x->name, y->name, lx < ly ? lx : ly);

	if (c)
		return c;
	return lx < ly ? -1 : lx > ly;
}

static void free_node(struct node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nr_kids; i++)
		free_node(n->kids[i]);
	free(n->kids);
	free(n->name);
	free(n->rel);
	free(n);
}

static struct node *new_node(const char *name, const char *parent_rel)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->name = strdup(name);
	if (!parent_rel || !parent_rel[0])
		n->rel = strdup(name);
	else if (asprintf(&n->rel, "%s/%s", parent_rel, name) < 0)
		n->rel = NULL;
	if (!n->name || !n->rel) {
		free_node(n);
		return NULL;
	}
	return n;
}

/* Reads the entries of directory `n`, open as `dirfd` (consumed). */
static int scan_dir(struct builder *b, struct node *n, int dirfd, int depth)
{
	DIR *d;
	struct dirent *de;
	size_t cap = 0;
	int ret = 0;

	if (depth > MKIMAGE_MAX_DEPTH) {
		close(dirfd);
		return fail(b, -E2BIG, "%s: tree deeper than %d levels",
			    shown(n), MKIMAGE_MAX_DEPTH);
	}
	d = fdopendir(dirfd);
	if (!d) {
		ret = -errno;
		close(dirfd);
		return fail(b, ret, "%s: %s", shown(n), strerror(-ret));
	}
	while (!ret && (errno = 0, de = readdir(d))) {
		struct node *k;
		size_t nl = strlen(de->d_name);

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (nl > MFS_NAME_MAX || strlen(n->rel) + 1 + nl >= REL_MAX) {
			ret = fail(b, -EINVAL, "%s/%s: name too long", shown(n),
				   de->d_name);
			break;
		}
		k = new_node(de->d_name, n->rel);
		if (!k) {
			ret = fail(b, -ENOMEM, "out of memory");
			break;
		}
		k->src = n->src;
		if (fstatat(dirfd, de->d_name, &k->st, AT_SYMLINK_NOFOLLOW)) {
			ret = -errno;
			fail(b, ret, "%s: %s", k->rel, strerror(-ret));
			free_node(k);
			break;
		}
		if (!S_ISDIR(k->st.st_mode) && !S_ISREG(k->st.st_mode) &&
		    !S_ISLNK(k->st.st_mode)) {
			report(b, "skipping %s (not a file, directory or "
			       "symlink)", k->rel);
			free_node(k);
			continue;
		}
		if (n->nr_kids == cap) {
			struct node **kids;

			cap = cap ? cap * 2 : 16;
			kids = realloc(n->kids, cap * sizeof(*n->kids));
			if (!kids) {
				free_node(k);
				ret = fail(b, -ENOMEM, "out of memory");
				break;
			}
			n->kids = kids;
		}
		n->kids[n->nr_kids++] = k;
		if (++b->nr_nodes >= MFS_MAX_INODES) {
			ret = fail(b, -E2BIG, "too many files (at most %u)",
				   MFS_MAX_INODES - 1);
			break;
		}
		if (S_ISDIR(k->st.st_mode)) {
			int sub = openat(dirfd, k->name, O_RDONLY | O_DIRECTORY |
							 O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				ret = -errno;
				fail(b, ret, "%s: %s", k->rel, strerror(-ret));
				break;
			}
			ret = scan_dir(b, k, sub, depth + 1);
		}
	}
	if (!ret && errno)
		ret = fail(b, -errno, "%s: %s", shown(n), strerror(errno));
	closedir(d);
	if (!ret)
		qsort(n->kids, n->nr_kids, sizeof(*n->kids), name_cmp);
	return ret;
}

/* Adds kid k to directory d, keeping the children sorted. */
static int add_kid(struct builder *b, struct node *d, struct node *k)
{
	struct node **kids = realloc(d->kids, (d->nr_kids + 1) * sizeof(*kids));

	if (!kids)
		return fail(b, -ENOMEM, "out of memory");
	d->kids = kids;
	d->kids[d->nr_kids++] = k;
	qsort(d->kids, d->nr_kids, sizeof(*d->kids), name_cmp);
	if (++b->nr_nodes >= MFS_MAX_INODES)
		return fail(b, -E2BIG, "too many files (at most %u)",
			    MFS_MAX_INODES - 1);
	return 0;
}

/* The child of directory d named p[0..len), or NULL. */
static struct node *find_kid(const struct node *d, const char *p, size_t len)
{
	for (size_t i = 0; i < d->nr_kids; i++)
		if (strlen(d->kids[i]->name) == len &&
		    !memcmp(d->kids[i]->name, p, len))
			return d->kids[i];
	return NULL;
}

/* Scans graft g and hangs it into the tree at g->image_dir, making the
 * missing parents (0755, the graft's mtime). */
static int graft(struct builder *b, struct node *root,
		 const struct mkimage_graft *g)
{
	const char *path = g->image_dir, *p, *e;
	struct node *d = root, *sub, *k;
	size_t len;
	int fd, ret;

	if (!path || path[0] != '/' || strlen(path) >= REL_MAX)
		return fail(b, -EINVAL, "graft %s: not an absolute image path",
			    path ? path : "(null)");
	for (p = path; *p == '/'; p++)
		;
	if (!*p)
		return fail(b, -EINVAL, "graft %s: not below the root", path);
	/* Every component: 1..MFS_NAME_MAX bytes, not "." or "..". */
	for (e = p; *e; e += len) {
		while (*e == '/')
			e++;
		len = strcspn(e, "/");
		if ((len == 0 && *e) || len > MFS_NAME_MAX ||
		    (len == 1 && e[0] == '.') ||
		    (len == 2 && e[0] == '.' && e[1] == '.'))
			return fail(b, -EINVAL, "graft %s: bad image path", path);
	}
	sub = new_node("", NULL);
	if (!sub)
		return fail(b, -ENOMEM, "out of memory");
	sub->src = g->dirfd;
	if (fstat(g->dirfd, &sub->st) || !S_ISDIR(sub->st.st_mode)) {
		free_node(sub);
		return fail(b, -ENOTDIR, "graft %s: not a directory", path);
	}
	fd = openat(g->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		free_node(sub);
		return fail(b, ret, "graft %s: %s", path, strerror(-ret));
	}
	ret = scan_dir(b, sub, fd, 1);
	if (ret) {
		free_node(sub);
		return ret;
	}
	for (;;) {
		len = strcspn(p, "/");
		for (e = p + len; *e == '/'; e++)
			;
		k = find_kid(d, p, len);
		if (!*e)
			break;
		if (k && !S_ISDIR(k->st.st_mode)) {
			free_node(sub);
			return fail(b, -ENOTDIR, "graft %s: %s is not a directory "
				    "in the source", path, k->rel);
		}
		if (!k) {
			char *nm = strndup(p, len);
			char *rl = strndup(path + 1, (size_t)(p + len - path - 1));

			k = new_node("", NULL);
			if (!k || !nm || !rl) {
				free(nm);
				free(rl);
				free_node(k);
				free_node(sub);
				return fail(b, -ENOMEM, "out of memory");
			}
			free(k->name);
			free(k->rel);
			k->name = nm;
			k->rel = rl;
			k->src = -1; /* never opened: a directory */
			k->st.st_mode = S_IFDIR | 0755;
			k->st.st_mtime = sub->st.st_mtime;
			if ((ret = add_kid(b, d, k))) {
				free_node(sub);
				return ret;
			}
		}
		d = k;
		p = e;
	}
	if (k) {
		free_node(sub);
		return fail(b, -EEXIST, "graft %s: already exists in the source",
			    path);
	}
	free(sub->name);
	sub->name = strndup(p, len);
	if (!sub->name) {
		free_node(sub);
		return fail(b, -ENOMEM, "out of memory");
	}
	return add_kid(b, d, sub);
}

static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* The file must still be the one the scan saw. */
static int open_same(struct builder *b, const struct node *n)
{
	struct stat now;
	int fd = beneath_open(n->src, n->rel, O_RDONLY, 0);

	if (fd < 0)
		return fail(b, fd, "%s: %s", n->rel, strerror(-fd));
	if (fstat(fd, &now) || now.st_ino != n->st.st_ino ||
	    now.st_dev != n->st.st_dev || now.st_size != n->st.st_size) {
		close(fd);
		return fail(b, -ESTALE, "%s changed while the image was built",
			    n->rel);
	}
	return fd;
}

static int copy_file(struct builder *b, int out, const struct node *n)
{
	char buf[1 << 16];
	uint64_t off = n->data, left = n->size;
	int in = open_same(b, n), ret = 0;

	if (in < 0)
		return in;
	while (left) {
		ssize_t r = read(in, buf, left < sizeof(buf) ? left : sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r < 0 ? -errno : -ESTALE; /* shrank under us */
			fail(b, ret, "%s: %s", n->rel,
			     r < 0 ? strerror(-ret) : "file shrank");
			break;
		}
		ret = write_all(out, buf, (size_t)r, off);
		if (ret) {
			fail(b, ret, "writing the image: %s", strerror(-ret));
			break;
		}
		off += (uint64_t)r;
		left -= (uint64_t)r;
	}
	close(in);
	return ret;
}

static int copy_link(struct builder *b, int out, const struct node *n)
{
	char t[MFS_PATH_MAX];
	const char *leaf;
	int dir = beneath_open_parent(n->src, n->rel, &leaf);
	ssize_t l;

	if (dir < 0)
		return fail(b, dir, "%s: %s", n->rel, strerror(-dir));
	l = readlinkat(dir, leaf, t, sizeof(t));
	close(dir);
	if (l != (ssize_t)n->size)
		return fail(b, -ESTALE, "%s changed while the image was built",
			    n->rel);
	return write_all(out, t, (size_t)l, n->data);
}

/* Breadth-first numbering: a directory's children get consecutive dirents
 * (and inodes), as the format requires. Fills order[0..nr). */
static int number(struct builder *b, struct node *root, struct node ***out,
		  size_t *nr_out, uint64_t *nr_dirents, uint64_t *names_size)
{
	size_t nr = 1, head = 0, cap = b->nr_nodes + 1;
	struct node **order = calloc(cap, sizeof(*order));

	if (!order)
		return fail(b, -ENOMEM, "out of memory");
	order[0] = root;
	*nr_dirents = *names_size = 0;
	while (head < nr) {
		struct node *n = order[head++];

		if (!S_ISDIR(n->st.st_mode))
			continue;
		n->data = *nr_dirents;
		n->size = n->nr_kids;
		*nr_dirents += n->nr_kids;
		for (size_t i = 0; i < n->nr_kids; i++) {
			n->kids[i]->ino = (uint32_t)nr;
			order[nr++] = n->kids[i];
			n->kids[i]->name_off = *names_size;
			*names_size += strlen(n->kids[i]->name);
		}
	}
	*out = order;
	*nr_out = nr;
	return 0;
}

static int write_image(struct builder *b, int out,
		       struct node **order, size_t nr, uint64_t nr_dirents,
		       uint64_t names_size, struct mkimage_stats *st)
{
	struct mfs_super sb;
	struct mfs_inode *inodes = NULL;
	struct mfs_dirent *dirents = NULL;
	char *names = NULL;
	void *meta = NULL;
	uint64_t meta_size, off, data_bytes = 0;
	struct mfs fs;
	int ret;

	memset(&sb, 0, sizeof(sb));
	memcpy(sb.magic, MFS_MAGIC, 8);
	sb.version = MFS_VERSION;
	sb.nr_inodes = (uint32_t)nr;
	sb.inode_off = sizeof(sb);
	sb.dirent_off = sb.inode_off + nr * sizeof(struct mfs_inode);
	sb.nr_dirents = nr_dirents;
	sb.names_off = sb.dirent_off + nr_dirents * sizeof(struct mfs_dirent);
	sb.names_size = names_size;
	meta_size = sb.names_off + names_size;
	if (meta_size > MFS_MAX_META)
		return fail(b, -E2BIG, "metadata too large (%llu bytes, at "
			    "most %u)", (unsigned long long)meta_size,
			    MFS_MAX_META);
	sb.meta_size = meta_size;

	/* Data: files and symlink targets after the metadata. */
	off = (meta_size + DATA_ALIGN - 1) & ~(uint64_t)(DATA_ALIGN - 1);
	for (size_t i = 1; i < nr; i++) {
		struct node *n = order[i];

		if (S_ISDIR(n->st.st_mode))
			continue;
		n->size = (uint64_t)n->st.st_size;
		if (S_ISLNK(n->st.st_mode) &&
		    (n->size == 0 || n->size >= MFS_PATH_MAX))
			return fail(b, -EINVAL, "%s: bad symlink", n->rel);
		n->data = off;
		data_bytes += n->size;
		off = (off + n->size + DATA_ALIGN - 1) &
		      ~(uint64_t)(DATA_ALIGN - 1);
	}
	sb.image_size = (off + 511) & ~511ULL;

	inodes = calloc(nr, sizeof(*inodes));
	dirents = calloc(nr_dirents ? nr_dirents : 1, sizeof(*dirents));
	names = calloc(names_size ? names_size : 1, 1);
	meta = calloc(1, meta_size + 8);
	if (!inodes || !dirents || !names || !meta) {
		ret = fail(b, -ENOMEM, "out of memory");
		goto out_free;
	}
	for (size_t i = 0; i < nr; i++) {
		struct node *n = order[i];

		inodes[i].mode = (uint32_t)n->st.st_mode & (MFS_S_IFMT | 07777);
		inodes[i].size = n->size;
		inodes[i].data = n->data;
		inodes[i].mtime = (uint64_t)n->st.st_mtime;
		for (size_t k = 0; S_ISDIR(n->st.st_mode) && k < n->nr_kids;
		     k++) {
			struct node *c = n->kids[k];
			struct mfs_dirent *d = &dirents[n->data + k];

			d->ino = c->ino;
			d->name_len = (uint32_t)strlen(c->name);
			d->name_off = c->name_off;
			memcpy(names + c->name_off, c->name, d->name_len);
		}
	}

	if (ftruncate(out, 0) ||
	    (ret = write_all(out, &sb, sizeof(sb), 0)) ||
	    (ret = write_all(out, inodes, nr * sizeof(*inodes), sb.inode_off)) ||
	    (ret = write_all(out, dirents, nr_dirents * sizeof(*dirents),
			     sb.dirent_off)) ||
	    (ret = write_all(out, names, names_size, sb.names_off)) ||
	    ftruncate(out, (off_t)sb.image_size)) {
		ret = ret ? ret : -errno;
		fail(b, ret, "writing the image: %s", strerror(-ret));
		goto out_free;
	}
	for (size_t i = 1; i < nr; i++) {
		struct node *n = order[i];

		if (S_ISREG(n->st.st_mode))
			ret = copy_file(b, out, n);
		else if (S_ISLNK(n->st.st_mode))
			ret = copy_link(b, out, n);
		if (ret)
			goto out_free;
		if (b->o && b->o->verbose)
			report(b, "%8u %06o %10llu %s", n->ino, inodes[i].mode,
			       (unsigned long long)n->size, n->rel);
	}

	/* Self-check with the guest's reader: an image we write must mount. */
	if (pread(out, meta, meta_size, 0) != (ssize_t)meta_size) {
		ret = fail(b, -EIO, "re-reading the image failed");
		goto out_free;
	}
	ret = mfs_mount(&fs, meta, meta_size, sb.image_size);
	if (ret) {
		fail(b, ret, "self-check failed: %s", strerror(-ret));
		goto out_free;
	}
	if (fsync(out)) {
		ret = -errno;
		fail(b, ret, "fsync: %s", strerror(-ret));
		goto out_free;
	}
	if (st) {
		st->nr_inodes = nr;
		st->data_bytes = data_bytes;
		st->meta_size = meta_size;
		st->image_size = sb.image_size;
	}
out_free:
	free(meta);
	free(names);
	free(dirents);
	free(inodes);
	return ret;
}

int mkimage_build(int src_dirfd, int out_fd, const struct mkimage_opts *o,
		  struct mkimage_stats *st, char *err, size_t errlen)
{
	struct builder b = { .o = o, .err = err, .errlen = errlen };
	struct node *root, **order = NULL;
	uint64_t nr_dirents = 0, names_size = 0;
	size_t nr = 0;
	int fd, ret;

	root = new_node("", NULL);
	if (!root)
		return fail(&b, -ENOMEM, "out of memory");
	if (fstat(src_dirfd, &root->st)) {
		ret = fail(&b, -errno, "source: %s", strerror(errno));
		goto out;
	}
	if (!S_ISDIR(root->st.st_mode)) {
		ret = fail(&b, -ENOTDIR, "the source is not a directory");
		goto out;
	}
	fd = openat(src_dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = fail(&b, -errno, "source: %s", strerror(errno));
		goto out;
	}
	root->src = src_dirfd;
	ret = scan_dir(&b, root, fd, 0);
	for (size_t i = 0; !ret && o && i < o->nr_grafts; i++)
		ret = graft(&b, root, &o->grafts[i]);
	if (!ret)
		ret = number(&b, root, &order, &nr, &nr_dirents, &names_size);
	if (!ret)
		ret = write_image(&b, out_fd, order, nr, nr_dirents,
				  names_size, st);
out:
	free(order);
	free_node(root);
	return ret;
}
