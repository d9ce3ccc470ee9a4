/*
 * ember-mkimage - builds the micro guest's read-only file tree image (EMFS,
 * format in guest-micro/mfs.h and docs/micro-guest.md) from a directory.
 *
 *   ember-mkimage [-v] [--add IMAGE_DIR=HOST_DIR]... SRC_DIR OUT_IMAGE
 *
 * --add puts the tree HOST_DIR into the image at the absolute IMAGE_DIR,
 * beside SRC_DIR's files (missing parents become directories; IMAGE_DIR
 * must not exist in SRC_DIR): how a runtime such as Python's standard
 * library joins a function's own files without copying them first.
 * Regular files, directories and symlinks are stored (permissions and mtime
 * kept, owners dropped: everything belongs to the handler); other file types
 * (sockets, devices, fifos) are skipped with a warning. Hard links become
 * copies. The output is padded to a multiple of 512 bytes (a virtio-blk
 * sector), and is re-read and validated with the guest's own reader
 * (mfs_mount) before the tool reports success.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest-micro/mfs.h"

#define DATA_ALIGN 64

struct node {
	char *name;             /* entry name in its parent (root: "") */
	char *path;             /* host path */
	struct stat st;
	struct node **kids;     /* directories: sorted children */
	size_t nr_kids;
	uint32_t ino;
	uint64_t data;          /* image offset of file data / first dirent */
	uint64_t size;
	uint64_t name_off;
};

static int verbose;

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

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);

	if (!p) {
		fprintf(stderr, "ember-mkimage: out of memory\n");
		exit(1);
	}
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p) {
		fprintf(stderr, "ember-mkimage: out of memory\n");
		exit(1);
	}
	return p;
}

/* Reads the tree under `path` (lstat: symlinks are stored, not followed). */
static struct node *scan(const char *path, const char *name, int depth)
{
	struct node *n = xcalloc(1, sizeof(*n));
	DIR *d;
	struct dirent *de;
	size_t cap = 0;

	n->name = xstrdup(name);
	n->path = xstrdup(path);
	if (lstat(path, &n->st)) {
		fprintf(stderr, "ember-mkimage: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	if (!S_ISDIR(n->st.st_mode))
		return n;
	if (depth > 256) {
		fprintf(stderr, "ember-mkimage: %s: tree too deep\n", path);
		exit(1);
	}
	d = opendir(path);
	if (!d) {
		fprintf(stderr, "ember-mkimage: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	while ((de = readdir(d))) {
		char sub[PATH_MAX];
		struct node *k;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (strlen(de->d_name) > MFS_NAME_MAX ||
		    snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name) >=
			    (int)sizeof(sub)) {
			fprintf(stderr, "ember-mkimage: %s/%s: name too long\n",
				path, de->d_name);
			exit(1);
		}
		k = scan(sub, de->d_name, depth + 1);
		if (!S_ISDIR(k->st.st_mode) && !S_ISREG(k->st.st_mode) &&
		    !S_ISLNK(k->st.st_mode)) {
			fprintf(stderr, "ember-mkimage: skipping %s (not a file, "
				"directory or symlink)\n", sub);
			continue;
		}
		if (n->nr_kids == cap) {
			cap = cap ? cap * 2 : 16;
			n->kids = realloc(n->kids, cap * sizeof(*n->kids));
			if (!n->kids) {
				fprintf(stderr, "ember-mkimage: out of memory\n");
				exit(1);
			}
		}
		n->kids[n->nr_kids++] = k;
	}
	closedir(d);
	qsort(n->kids, n->nr_kids, sizeof(*n->kids), name_cmp);
	return n;
}

/* The child of directory d named name[0..len), or NULL. */
static struct node *find_kid(const struct node *d, const char *name,
			     size_t len)
{
	for (size_t i = 0; i < d->nr_kids; i++)
		if (strlen(d->kids[i]->name) == len &&
		    !memcmp(d->kids[i]->name, name, len))
			return d->kids[i];
	return NULL;
}

static void add_kid(struct node *d, struct node *k)
{
	d->kids = realloc(d->kids, (d->nr_kids + 1) * sizeof(*d->kids));
	if (!d->kids) {
		fprintf(stderr, "ember-mkimage: out of memory\n");
		exit(1);
	}
	d->kids[d->nr_kids++] = k;
	qsort(d->kids, d->nr_kids, sizeof(*d->kids), name_cmp);
}

/* --add IMAGE_DIR=HOST_DIR: scans HOST_DIR and hangs it into the tree at
 * IMAGE_DIR, creating missing parent directories (mode 0755, the added
 * tree's mtime). Exits with a message on a bad spec or a clash. */
static void graft(struct node *root, const char *spec)
{
	const char *eq = strchr(spec, '='), *p, *e;
	struct node *d = root, *k, *sub;
	char *dest;

	if (!eq || spec[0] != '/' || !eq[1]) {
		fprintf(stderr, "ember-mkimage: --add %s: expected "
			"/IMAGE_DIR=HOST_DIR\n", spec);
		exit(2);
	}
	dest = strndup(spec, (size_t)(eq - spec));
	if (!dest) {
		fprintf(stderr, "ember-mkimage: out of memory\n");
		exit(1);
	}
	sub = scan(eq + 1, "", 1);
	if (!S_ISDIR(sub->st.st_mode)) {
		fprintf(stderr, "ember-mkimage: --add %s: not a directory\n",
			eq + 1);
		exit(1);
	}
	for (p = dest;; p = e) {
		size_t len;

		while (*p == '/')
			p++;
		e = p + strcspn(p, "/");
		len = (size_t)(e - p);
		if (!len || len > MFS_NAME_MAX || (len == 1 && p[0] == '.') ||
		    (len == 2 && !memcmp(p, "..", 2))) {
			fprintf(stderr, "ember-mkimage: --add %s: bad image "
				"path\n", dest);
			exit(2);
		}
		k = find_kid(d, p, len);
		while (*e == '/')
			e++;
		if (!*e) {
			if (k) {
				fprintf(stderr, "ember-mkimage: --add: %s "
					"already exists in the source tree\n",
					dest);
				exit(1);
			}
			free(sub->name);
			sub->name = strndup(p, len);
			if (!sub->name) {
				fprintf(stderr, "ember-mkimage: out of memory\n");
				exit(1);
			}
			add_kid(d, sub);
			break;
		}
		if (!k) {
			k = xcalloc(1, sizeof(*k));
			k->name = strndup(p, len);
			k->path = xstrdup("(a parent of --add)");
			if (!k->name) {
				fprintf(stderr, "ember-mkimage: out of memory\n");
				exit(1);
			}
			k->st.st_mode = S_IFDIR | 0755;
			k->st.st_mtime = sub->st.st_mtime;
			add_kid(d, k);
		} else if (!S_ISDIR(k->st.st_mode)) {
			fprintf(stderr, "ember-mkimage: --add %s: a parent is "
				"not a directory in the source tree\n", dest);
			exit(1);
		}
		d = k;
	}
	free(dest);
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

/* Copies the host file n->path into the image at n->data. */
static int copy_file(int out, const struct node *n)
{
	char buf[1 << 16];
	uint64_t off = n->data, left = n->size;
	int in = open(n->path, O_RDONLY);

	if (in < 0)
		return -errno;
	while (left) {
		ssize_t r = read(in, buf, left < sizeof(buf) ? left : sizeof(buf));
		if (r <= 0) {
			int e = r < 0 ? -errno : -EIO; /* shrank under us */
			close(in);
			return e;
		}
		if (write_all(out, buf, (size_t)r, off)) {
			close(in);
			return -EIO;
		}
		off += (uint64_t)r;
		left -= (uint64_t)r;
	}
	close(in);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: ember-mkimage [-v] [--add IMAGE_DIR=HOST_DIR]... "
		"SRC_DIR OUT_IMAGE\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct node *root, **order;
	size_t nr = 1, head = 0, nr_dirents = 0, names_size = 0;
	struct mfs_super sb;
	struct mfs_inode *inodes;
	struct mfs_dirent *dirents;
	char *names;
	uint64_t meta_size, off;
	static const struct option opts[] = {
		{ "add", required_argument, NULL, 'a' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	const char **adds;
	size_t nr_adds = 0;
	int out, o;

	adds = xcalloc((size_t)argc, sizeof(*adds));
	while ((o = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		if (o == 'v')
			verbose = 1;
		else if (o == 'a')
			adds[nr_adds++] = optarg;
		else
			return usage();
	}
	if (argc - optind != 2)
		return usage();
	root = scan(argv[optind], "", 0);
	if (!S_ISDIR(root->st.st_mode)) {
		fprintf(stderr, "ember-mkimage: %s: not a directory\n",
			argv[optind]);
		return 1;
	}
	for (size_t i = 0; i < nr_adds; i++)
		graft(root, adds[i]);
	free(adds);

	/* Breadth-first numbering: a directory's children get consecutive
	 * dirents (and inodes), as the format requires. */
	size_t cap = 1024;
	order = xcalloc(cap, sizeof(*order));
	order[0] = root;
	root->ino = 0;
	while (head < nr) {
		struct node *n = order[head++];

		if (!S_ISDIR(n->st.st_mode))
			continue;
		n->data = nr_dirents;
		n->size = n->nr_kids;
		nr_dirents += n->nr_kids;
		for (size_t i = 0; i < n->nr_kids; i++) {
			if (nr == cap) {
				cap *= 2;
				order = realloc(order, cap * sizeof(*order));
				if (!order) {
					fprintf(stderr, "ember-mkimage: out of memory\n");
					return 1;
				}
			}
			n->kids[i]->ino = (uint32_t)nr;
			order[nr++] = n->kids[i];
			n->kids[i]->name_off = names_size;
			names_size += strlen(n->kids[i]->name);
		}
	}
	if (nr > MFS_MAX_INODES) {
		fprintf(stderr, "ember-mkimage: too many files (%zu > %u)\n", nr,
			MFS_MAX_INODES);
		return 1;
	}

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
	if (meta_size > MFS_MAX_META) {
		fprintf(stderr, "ember-mkimage: metadata too large\n");
		return 1;
	}
	sb.meta_size = meta_size;

	/* Data: files and symlink targets after the metadata. */
	off = (meta_size + DATA_ALIGN - 1) & ~(uint64_t)(DATA_ALIGN - 1);
	for (size_t i = 1; i < nr; i++) {
		struct node *n = order[i];

		if (S_ISDIR(n->st.st_mode))
			continue;
		n->size = (uint64_t)n->st.st_size;
		if (S_ISLNK(n->st.st_mode) &&
		    (n->size == 0 || n->size >= MFS_PATH_MAX)) {
			fprintf(stderr, "ember-mkimage: %s: bad symlink\n", n->path);
			return 1;
		}
		n->data = off;
		off = (off + n->size + DATA_ALIGN - 1) &
		      ~(uint64_t)(DATA_ALIGN - 1);
	}
	sb.image_size = (off + 511) & ~511ULL;

	inodes = xcalloc(nr, sizeof(*inodes));
	dirents = xcalloc(nr_dirents, sizeof(*dirents));
	names = xcalloc(names_size, 1);
	for (size_t i = 0; i < nr; i++) {
		struct node *n = order[i];

		inodes[i].mode = (uint32_t)n->st.st_mode &
				 (MFS_S_IFMT | 07777);
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

	out = open(argv[optind + 1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (out < 0) {
		fprintf(stderr, "ember-mkimage: %s: %s\n", argv[optind + 1],
			strerror(errno));
		return 1;
	}
	if (write_all(out, &sb, sizeof(sb), 0) ||
	    write_all(out, inodes, nr * sizeof(*inodes), sb.inode_off) ||
	    write_all(out, dirents, nr_dirents * sizeof(*dirents),
		      sb.dirent_off) ||
	    write_all(out, names, names_size, sb.names_off) ||
	    ftruncate(out, (off_t)sb.image_size)) {
		fprintf(stderr, "ember-mkimage: write: %s\n", strerror(errno));
		return 1;
	}
	for (size_t i = 1; i < nr; i++) {
		struct node *n = order[i];
		int ret = 0;

		if (S_ISREG(n->st.st_mode)) {
			ret = copy_file(out, n);
		} else if (S_ISLNK(n->st.st_mode)) {
			char t[MFS_PATH_MAX];
			ssize_t l = readlink(n->path, t, sizeof(t));
			ret = l == (ssize_t)n->size ?
				      write_all(out, t, (size_t)l, n->data) :
				      -EIO;
		}
		if (ret) {
			fprintf(stderr, "ember-mkimage: %s: %s\n", n->path,
				strerror(-ret));
			return 1;
		}
		if (verbose)
			printf("%8u %06o %10llu %s\n", n->ino,
			       inodes[i].mode, (unsigned long long)n->size,
			       n->path);
	}

	/* Self-check with the guest's reader: an image we write must mount. */
	void *meta = xcalloc(1, meta_size + 8);
	struct mfs fs;
	int ret;
	if (pread(out, meta, meta_size, 0) != (ssize_t)meta_size) {
		fprintf(stderr, "ember-mkimage: re-read failed\n");
		return 1;
	}
	ret = mfs_mount(&fs, meta, meta_size, sb.image_size);
	if (ret) {
		fprintf(stderr, "ember-mkimage: self-check failed: %s\n",
			strerror(-ret));
		return 1;
	}
	if (fsync(out) || close(out)) {
		fprintf(stderr, "ember-mkimage: %s: %s\n", argv[optind + 1],
			strerror(errno));
		return 1;
	}
	if (verbose)
		printf("%zu inodes, %llu bytes of metadata, image %llu bytes\n",
		       nr, (unsigned long long)meta_size,
		       (unsigned long long)sb.image_size);
	return 0;
}
