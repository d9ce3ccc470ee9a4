/* Unit tests: the micro guest's EMFS image reader (guest-micro/mfs.c), built
 * for the host. A small valid image is built by hand, then every defect a
 * hostile image can carry is injected one at a time and must be rejected. */
// link: guest-micro/mfs.c
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guest-micro/mfs.h"

/*
 * The test image:
 *   /            ino 0: bin etc lib
 *   /bin         ino 1: handler, sh -> handler
 *   /etc         ino 2: hosts
 *   /lib         ino 3 -> "bin" (symlink)
 *   /bin/handler ino 4 "HELLO" ; /bin/sh ino 5 -> "handler"
 *   /etc/hosts   ino 6 "127.0.0.1 localhost\n"
 */
#define NI 7
#define ND 6
static const char names[] = "binetclibhandlershhosts";
struct img {
	struct mfs_super sb;
	struct mfs_inode in[NI];
	struct mfs_dirent de[ND];
	char names[sizeof(names) - 1];
	char pad[1];
	char data[64];
} __attribute__((aligned(8)));
static struct img im;
static uint64_t data_off;

static void build(void)
{
	memset(&im, 0, sizeof(im));
	memcpy(im.sb.magic, MFS_MAGIC, 8);
	im.sb.version = MFS_VERSION;
	im.sb.nr_inodes = NI;
	im.sb.image_size = sizeof(im);
	im.sb.inode_off = offsetof(struct img, in);
	im.sb.dirent_off = offsetof(struct img, de);
	im.sb.nr_dirents = ND;
	im.sb.names_off = offsetof(struct img, names);
	im.sb.names_size = sizeof(im.names);
	im.sb.meta_size = offsetof(struct img, pad);
	data_off = offsetof(struct img, data);

	im.in[0] = (struct mfs_inode){ MFS_S_IFDIR | 0755, 0, 3, 0, 0 };
	im.in[1] = (struct mfs_inode){ MFS_S_IFDIR | 0755, 0, 2, 3, 0 };
	im.in[2] = (struct mfs_inode){ MFS_S_IFDIR | 0755, 0, 1, 5, 0 };
	im.in[3] = (struct mfs_inode){ MFS_S_IFLNK | 0777, 0, 3, data_off + 32, 0 };
	im.in[4] = (struct mfs_inode){ MFS_S_IFREG | 0755, 0, 5, data_off, 0 };
	im.in[5] = (struct mfs_inode){ MFS_S_IFLNK | 0777, 0, 7, data_off + 40, 0 };
	im.in[6] = (struct mfs_inode){ MFS_S_IFREG | 0644, 0, 20, data_off + 8, 0 };
	/* root: bin etc lib; bin: handler sh; etc: hosts */
	im.de[0] = (struct mfs_dirent){ 1, 3, 0 };
	im.de[1] = (struct mfs_dirent){ 2, 3, 3 };
	im.de[2] = (struct mfs_dirent){ 3, 3, 6 };
	im.de[3] = (struct mfs_dirent){ 4, 7, 9 };
	im.de[4] = (struct mfs_dirent){ 5, 2, 16 };
	im.de[5] = (struct mfs_dirent){ 6, 5, 18 };
	memcpy(im.names, names, sizeof(im.names));
	memcpy(im.data, "HELLO", 5);
	memcpy(im.data + 8, "127.0.0.1 localhost\n", 20);
	memcpy(im.data + 32, "bin", 3);
	memcpy(im.data + 40, "handler", 7);
}

static int mount(struct mfs *fs)
{
	return mfs_mount(fs, &im, im.sb.meta_size, sizeof(im));
}

/* The test's symlink reader: targets are in the same buffer. */
static long read_link(void *ctx, uint32_t ino, char *buf, size_t cap)
{
	const struct mfs *fs = ctx;
	const struct mfs_inode *in = mfs_inode(fs, ino);

	if (!in || in->size > cap)
		return -EIO;
	memcpy(buf, (const char *)&im + in->data, in->size);
	return (long)in->size;
}

static struct mfs fsref; /* read_link's ctx: a copy of the mounted fs */

static int resolve(const struct mfs *fs, const char *p, int follow,
		   uint32_t *ino)
{
	fsref = *fs;
	return mfs_resolve(fs, p, strlen(p), follow, read_link, &fsref, ino);
}

static void test_valid(void **state)
{
	struct mfs fs;
	uint32_t ino;
	const char *name;
	uint32_t nl;
	uint64_t meta;

	(void)state;
	build();
	assert_int_equal(mfs_probe(&im, sizeof(im.sb), sizeof(im), &meta), 0);
	assert_int_equal(meta, im.sb.meta_size);
	assert_int_equal(mount(&fs), 0);
	assert_int_equal(resolve(&fs, "/bin/handler", 1, &ino), 0);
	assert_int_equal(ino, 4);
	assert_int_equal(resolve(&fs, "bin//handler", 1, &ino), 0);
	assert_int_equal(ino, 4);
	assert_int_equal(resolve(&fs, "/etc/../bin/./handler", 1, &ino), 0);
	assert_int_equal(ino, 4);
	assert_int_equal(resolve(&fs, "/../../etc/hosts", 1, &ino), 0);
	assert_int_equal(ino, 6);
	assert_int_equal(resolve(&fs, "/", 1, &ino), 0);
	assert_int_equal(ino, 0);
	assert_int_equal(resolve(&fs, "/bin/", 1, &ino), 0);
	assert_int_equal(ino, 1);
	/* Symlinks: followed in the middle always, at the end on request. */
	assert_int_equal(resolve(&fs, "/lib/handler", 0, &ino), 0);
	assert_int_equal(ino, 4);
	assert_int_equal(resolve(&fs, "/bin/sh", 1, &ino), 0);
	assert_int_equal(ino, 4);
	assert_int_equal(resolve(&fs, "/bin/sh", 0, &ino), 0);
	assert_int_equal(ino, 5);
	assert_int_equal(resolve(&fs, "/lib/sh", 1, &ino), 0);
	assert_int_equal(ino, 4);
	/* Errors. */
	assert_int_equal(resolve(&fs, "/bin/nope", 1, &ino), -ENOENT);
	assert_int_equal(resolve(&fs, "/bin/handler/x", 1, &ino), -ENOTDIR);
	assert_int_equal(resolve(&fs, "/bin/handler/", 1, &ino), -ENOTDIR);
	assert_int_equal(resolve(&fs, "", 1, &ino), -ENOENT);
	assert_int_equal(mfs_lookup(&fs, 4, "x", 1, &ino), -ENOTDIR);
	assert_int_equal(mfs_lookup(&fs, 99, "x", 1, &ino), -ENOENT);
	/* Directory listing. */
	assert_int_equal(mfs_dirent_at(&fs, 0, 2, &ino, &name, &nl), 0);
	assert_int_equal(ino, 3);
	assert_int_equal(nl, 3);
	assert_memory_equal(name, "lib", 3);
	assert_int_equal(mfs_dirent_at(&fs, 0, 3, &ino, &name, &nl), -ENOENT);
	assert_int_equal(mfs_dirent_at(&fs, 4, 0, &ino, &name, &nl), -ENOTDIR);
	assert_null(mfs_inode(&fs, NI));
}

static void test_symlink_loop(void **state)
{
	struct mfs fs;
	uint32_t ino;

	(void)state;
	build();
	/* /lib -> "lib/x": resolving /lib/.. never ends without the limit. */
	memcpy(im.data + 32, "/lib/", 5);
	im.in[3].size = 5;
	assert_int_equal(mount(&fs), 0);
	assert_int_equal(resolve(&fs, "/lib/handler", 1, &ino), -ELOOP);
	assert_int_equal(resolve(&fs, "/lib", 0, &ino), 0);
	assert_int_equal(ino, 3);
}

static void test_long_path(void **state)
{
	struct mfs fs;
	uint32_t ino;
	static char p[MFS_PATH_MAX + 10];

	(void)state;
	build();
	assert_int_equal(mount(&fs), 0);
	memset(p, '/', sizeof(p) - 1);
	assert_int_equal(mfs_resolve(&fs, p, sizeof(p) - 1, 1, read_link, &fs,
				     &ino), -ENAMETOOLONG);
	memset(p, 'a', 300);
	assert_int_equal(mfs_resolve(&fs, p, 300, 1, read_link, &fs, &ino),
			 -ENAMETOOLONG);
}

/* Each mutation makes the image invalid; mount must fail with `err`. */
static void test_hostile(void **state)
{
	struct mfs fs;
	uint64_t meta;

	(void)state;
#define BAD(err, stmt)                                                        \
	do {                                                                  \
		build();                                                      \
		stmt;                                                         \
		assert_int_equal(mount(&fs), err);                            \
	} while (0)
	BAD(-ENOEXEC, im.sb.magic[0] = 'X');
	BAD(-ENOEXEC, im.sb.version = 2);
	BAD(-EINVAL, im.sb.image_size = sizeof(im) + 1);
	BAD(-EINVAL, im.sb.meta_size = 8);
	BAD(-EINVAL, im.sb.meta_size = sizeof(im) + 512);
	BAD(-EINVAL, im.sb.nr_inodes = 0);
	BAD(-E2BIG, im.sb.nr_inodes = MFS_MAX_INODES + 1);
	BAD(-EINVAL, im.sb.nr_inodes = NI + 100);
	BAD(-EINVAL, im.sb.inode_off = 4);
	BAD(-EINVAL, im.sb.inode_off = UINT64_MAX - 7);
	BAD(-EINVAL, im.sb.dirent_off += 4);
	BAD(-EINVAL, im.sb.nr_dirents = ND + 1000);
	BAD(-E2BIG, im.sb.nr_dirents = UINT64_MAX / 8);
	BAD(-EINVAL, im.sb.names_size = UINT64_MAX);
	BAD(-EINVAL, im.sb.names_off = 0);
	/* Root must be a directory. */
	BAD(-EINVAL, im.in[0].mode = MFS_S_IFREG | 0644);
	/* Unknown type, reserved field. */
	BAD(-EINVAL, im.in[6].mode = 0020000 | 0644);
	BAD(-EINVAL, im.in[6].reserved = 1);
	/* File data past the end, wrapping, inside the metadata. */
	BAD(-EINVAL, im.in[6].size = sizeof(im));
	BAD(-EINVAL, im.in[6].data = UINT64_MAX - 4);
	BAD(-EINVAL, im.in[6].data = 0);
	/* Symlinks: empty, too long, out of range. */
	BAD(-EINVAL, im.in[3].size = 0);
	BAD(-EINVAL, im.in[3].size = MFS_PATH_MAX);
	BAD(-EINVAL, im.in[3].data = sizeof(im));
	/* Directory entry ranges. */
	BAD(-EINVAL, im.in[1].data = ND);
	BAD(-EINVAL, im.in[1].size = UINT64_MAX);
	BAD(-EINVAL, im.in[1].data = UINT64_MAX);
	/* Dirents: bad inode, name length, name range, bad names, order. */
	BAD(-EINVAL, im.de[3].ino = NI);
	BAD(-EINVAL, im.de[3].name_len = 0);
	BAD(-EINVAL, im.de[3].name_len = 256);
	BAD(-EINVAL, im.de[5].name_off = sizeof(names) - 2);
	BAD(-EINVAL, im.de[5].name_off = UINT64_MAX - 1);
	BAD(-EINVAL, im.names[9] = '/');
	BAD(-EINVAL, im.names[9] = '\0');
	BAD(-EINVAL, im.de[5].name_len = 1; im.names[18] = '.');
	BAD(-EINVAL, im.de[5].name_len = 2; im.names[18] = '.'; im.names[19] = '.');
	BAD(-EINVAL, im.de[1] = im.de[0]);                 /* duplicate */
	BAD(-EINVAL, { struct mfs_dirent t = im.de[0];     /* unsorted */
		       im.de[0] = im.de[1]; im.de[1] = t; });
	/* The metadata handed over is shorter than the superblock says. */
	build();
	assert_int_equal(mfs_mount(&fs, &im, im.sb.meta_size - 1, sizeof(im)),
			 -EINVAL);
	assert_int_equal(mfs_mount(&fs, &im, 10, sizeof(im)), -EINVAL);
	assert_int_equal(mfs_probe(&im, sizeof(im), 10, &meta), -EINVAL);
	/* Metadata over the limit on a huge (claimed) image. */
	im.sb.image_size = UINT64_MAX;
	im.sb.meta_size = 1ULL << 40;
	assert_int_equal(mfs_mount(&fs, &im, sizeof(im), UINT64_MAX), -E2BIG);
	build();
	/* Misaligned metadata buffer. */
	assert_int_equal(mfs_mount(&fs, (char *)&im + 1, im.sb.meta_size,
				   sizeof(im)), -ENOEXEC);
#undef BAD
}

/* A directory whose entry points back at an ancestor is not rejected (it
 * is harmless: lookups consume path bytes, so they always end). */
static void test_cycle(void **state)
{
	struct mfs fs;
	uint32_t ino;

	(void)state;
	build();
	im.de[5].ino = 0; /* /etc/hosts is now the root directory */
	assert_int_equal(mount(&fs), 0);
	assert_int_equal(resolve(&fs, "/etc/hosts/etc/hosts/bin/handler", 1,
				 &ino), 0);
	assert_int_equal(ino, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_symlink_loop),
		cmocka_unit_test(test_long_path),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_cycle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
