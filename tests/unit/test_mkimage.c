/* Unit tests: the EMFS writer's grafts (tools/mkimage.c, mkimage_opts
 * .grafts): a second tree hung into the image at an absolute path, read
 * back with the guest's own reader; missing parents made; every bad path
 * and every clash refused with the documented errno. */
// link: tools/mkimage.c tools/beneath.c guest-micro/mfs.c
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest-micro/mfs.h"
#include "tools/mkimage.h"

struct fixture {
	char dir[64];
	int src, rt, out;
	uint8_t *img;       /* the built image, read back */
	size_t img_len;
	struct mfs fs;
};

static void put(const char *dir, const char *rel, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void mk(const char *dir, const char *rel)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	assert_int_equal(mkdir(p, 0700), 0);
}

/* src/: a/f ("src"), x (file); rt/: lib/os.pyc ("os"), lib/l -> os.pyc */
static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char p[128];

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/test_mkimage.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	mk(fx->dir, "src");
	mk(fx->dir, "src/a");
	put(fx->dir, "src/a/f", "src");
	put(fx->dir, "src/x", "file");
	mk(fx->dir, "rt");
	mk(fx->dir, "rt/lib");
	put(fx->dir, "rt/lib/os.pyc", "os");
	snprintf(p, sizeof(p), "%s/rt/lib/l", fx->dir);
	assert_int_equal(symlink("os.pyc", p), 0);
	snprintf(p, sizeof(p), "%s/src", fx->dir);
	fx->src = open(p, O_RDONLY | O_DIRECTORY);
	snprintf(p, sizeof(p), "%s/rt", fx->dir);
	fx->rt = open(p, O_RDONLY | O_DIRECTORY);
	snprintf(p, sizeof(p), "%s/img", fx->dir);
	fx->out = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fx->src >= 0 && fx->rt >= 0 && fx->out >= 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	close(fx->src);
	close(fx->rt);
	close(fx->out);
	free(fx->img);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

/* Builds with the given grafts; on success reads the image back and mounts
 * it into fx->fs. Returns mkimage_build's result; err gets its reason. */
static int build(struct fixture *fx, const struct mkimage_graft *g, size_t n,
		 char *err, size_t errlen)
{
	struct mkimage_opts o = { .grafts = g, .nr_grafts = n };
	struct stat st;
	int ret = mkimage_build(fx->src, fx->out, &o, NULL, err, errlen);

	if (ret)
		return ret;
	assert_int_equal(fstat(fx->out, &st), 0);
	free(fx->img);
	fx->img_len = (size_t)st.st_size;
	fx->img = malloc(fx->img_len);
	assert_non_null(fx->img);
	assert_int_equal(pread(fx->out, fx->img, fx->img_len, 0),
			 (ssize_t)fx->img_len);
	assert_int_equal(mfs_mount(&fx->fs, fx->img, fx->img_len,
				   fx->img_len), 0);
	return 0;
}

static long read_link(void *ctx, uint32_t ino, char *buf, size_t cap)
{
	struct fixture *fx = ctx;
	const struct mfs_inode *in = mfs_inode(&fx->fs, ino);

	if (!in || in->size > cap)
		return -EIO;
	memcpy(buf, fx->img + in->data, in->size);
	return (long)in->size;
}

/* The content of regular file `path` in the image, as a string. */
static const char *content(struct fixture *fx, const char *path)
{
	static char buf[64];
	const struct mfs_inode *in;
	uint32_t ino;

	if (mfs_resolve(&fx->fs, path, strlen(path), 1, read_link, fx, &ino))
		return NULL;
	in = mfs_inode(&fx->fs, ino);
	if ((in->mode & MFS_S_IFMT) != MFS_S_IFREG || in->size >= sizeof(buf))
		return NULL;
	memcpy(buf, fx->img + in->data, in->size);
	buf[in->size] = '\0';
	return buf;
}

static uint32_t mode_of(struct fixture *fx, const char *path)
{
	uint32_t ino;

	if (mfs_resolve(&fx->fs, path, strlen(path), 0, read_link, fx, &ino))
		return 0;
	return mfs_inode(&fx->fs, ino)->mode;
}

static void test_graft_with_new_parents(void **state)
{
	struct fixture *fx = *state;
	struct mkimage_graft g[] = { { "/.ember/python", fx->rt } };
	char err[256] = "";

	assert_int_equal(build(fx, g, 1, err, sizeof(err)), 0);
	assert_string_equal(content(fx, "/a/f"), "src");
	assert_string_equal(content(fx, "/.ember/python/lib/os.pyc"), "os");
	/* The link is kept as a link and resolves inside the graft. */
	assert_int_equal(mode_of(fx, "/.ember/python/lib/l") & MFS_S_IFMT,
			 MFS_S_IFLNK);
	assert_string_equal(content(fx, "/.ember/python/lib/l"), "os");
	assert_int_equal(mode_of(fx, "/.ember"), MFS_S_IFDIR | 0755);
	assert_int_equal(mode_of(fx, "/.ember/python") & MFS_S_IFMT,
			 MFS_S_IFDIR);
}

static void test_graft_into_existing_dir_and_twice(void **state)
{
	struct fixture *fx = *state;
	struct mkimage_graft g[] = { { "/a/rt", fx->rt },
				     { "//b//c/", fx->rt } };
	char err[256] = "";

	assert_int_equal(build(fx, g, 2, err, sizeof(err)), 0);
	assert_string_equal(content(fx, "/a/f"), "src");
	assert_string_equal(content(fx, "/a/rt/lib/os.pyc"), "os");
	assert_string_equal(content(fx, "/b/c/lib/os.pyc"), "os");
}

static void test_graft_refused(void **state)
{
	struct fixture *fx = *state;
	static const struct {
		const char *path;
		int err;
		const char *msg;
	} bad[] = {
		{ "/a", -EEXIST, "already exists" },
		{ "/x/y", -ENOTDIR, "not a directory" },
		{ "relative", -EINVAL, "not an absolute" },
		{ "/", -EINVAL, "not below the root" },
		{ "///", -EINVAL, "not below the root" },
		{ "/p/../q", -EINVAL, "bad image path" },
		{ "/p/./q", -EINVAL, "bad image path" },
		{ "/..", -EINVAL, "bad image path" },
	};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mkimage_graft g = { bad[i].path, fx->rt };

		err[0] = '\0';
		assert_int_equal(build(fx, &g, 1, err, sizeof(err)), bad[i].err);
		assert_non_null(strstr(err, bad[i].msg));
	}
}

static void test_graft_name_too_long_and_null(void **state)
{
	struct fixture *fx = *state;
	char path[MFS_NAME_MAX + 8];
	struct mkimage_graft g = { path, fx->rt };
	char err[256];

	path[0] = '/';
	memset(path + 1, 'n', MFS_NAME_MAX + 1);
	path[MFS_NAME_MAX + 2] = '\0';
	assert_int_equal(build(fx, &g, 1, err, sizeof(err)), -EINVAL);
	g.image_dir = NULL;
	assert_int_equal(build(fx, &g, 1, err, sizeof(err)), -EINVAL);
}

static void test_graft_clash_between_grafts(void **state)
{
	struct fixture *fx = *state;
	struct mkimage_graft g[] = { { "/g", fx->rt }, { "/g/lib", fx->rt } };
	char err[256];

	assert_int_equal(build(fx, g, 2, err, sizeof(err)), -EEXIST);
}

static void test_graft_not_a_directory(void **state)
{
	struct fixture *fx = *state;
	char p[128];
	int fd;

	snprintf(p, sizeof(p), "%s/src/x", fx->dir);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	struct mkimage_graft g = { "/y", fd };
	char err[256];

	assert_int_equal(build(fx, &g, 1, err, sizeof(err)), -ENOTDIR);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_graft_with_new_parents,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_graft_into_existing_dir_and_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_graft_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_graft_name_too_long_and_null, setup, teardown),
		cmocka_unit_test_setup_teardown(test_graft_clash_between_grafts,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_graft_not_a_directory,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
