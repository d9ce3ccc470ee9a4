/* Unit tests: function archives validated and extracted (agent/archive.c).
 * Hand-built tar and tar.gz archives (tests/unit/tarbuild.c), good ones and
 * hostile ones: path traversal, absolute paths, symlink and hard-link
 * escapes (including links that look inside but lead out), devices, fifos,
 * tar bombs by size, by file count and by expansion ratio, truncated and
 * garbage input. Every hostile archive must be refused with a clear
 * message, and after every test the file system is checked: nothing exists
 * beside the tree, and the decoy directory next to it stays empty. The
 * escapes run twice: with openat2 and with the per-component walk. */
// link: agent/archive.c agent/manifest.c tools/beneath.c vmm/log.c
// link: tests/unit/tarbuild.c
// libs: -larchive -ljansson
#include <dirent.h>
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

#include "agent/archive.h"
#include "tests/unit/tarbuild.h"
#include "tools/beneath.h"

static char base[64];   /* base/tree is extracted into; base/outside decoy */
static int base_fd = -1, tree_fd = -1;
static char err[512];
static struct fn_archive_stats st;

static const struct fn_archive_limits lim_default = {
	.max_archive_bytes = 64 << 20,
	.max_files = 1000,
	.max_tree_bytes = 64 << 20,
	.max_ratio = FN_ARCHIVE_MAX_RATIO,
};

static int count_entries(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	DIR *d;
	struct dirent *de;
	int n = 0;

	assert_true(fd >= 0);
	d = fdopendir(fd);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static int setup(void **state)
{
	(void)state;
	snprintf(base, sizeof(base), "/tmp/ember-test-archive.XXXXXX");
	assert_non_null(mkdtemp(base));
	base_fd = open(base, O_RDONLY | O_DIRECTORY);
	assert_true(base_fd >= 0);
	assert_int_equal(mkdirat(base_fd, "tree", 0755), 0);
	assert_int_equal(mkdirat(base_fd, "outside", 0755), 0);
	tree_fd = openat(base_fd, "tree", O_RDONLY | O_DIRECTORY);
	assert_true(tree_fd >= 0);
	beneath_force_walk = false;
	return 0;
}

/* Nothing was written outside the tree: the base holds exactly "tree" and
 * the empty "outside". Then the tree is removed. */
static int teardown(void **state)
{
	(void)state;
	assert_int_equal(count_entries(base_fd, "."), 2);
	assert_int_equal(count_entries(base_fd, "outside"), 0);
	close(tree_fd);
	assert_int_equal(beneath_remove_tree(base_fd, "tree"), 0);
	assert_int_equal(beneath_remove_tree(base_fd, "outside"), 0);
	close(base_fd);
	assert_int_equal(rmdir(base), 0);
	return 0;
}

static int extract_lim(struct tarb *t, bool gz, const struct fn_archive_limits *l)
{
	int fd = tarb_fd(t, gz), ret;

	err[0] = '\0';
	ret = fn_archive_extract(fd, tree_fd, l, &st, err, sizeof(err));
	close(fd);
	return ret;
}

static int extract(struct tarb *t, bool gz)
{
	return extract_lim(t, gz, &lim_default);
}

#define assert_refused(ret_expr, code, needle)                                \
	do {                                                                  \
		int r_ = (ret_expr);                                          \
		if (r_ != (code) || !strstr(err, (needle))) {                 \
			print_error("got %d '%s', expected %d '%s'\n", r_,    \
				    err, (code), (needle));                   \
			fail();                                               \
		}                                                             \
	} while (0)

static bool exists_in(int dirfd, const char *path)
{
	struct stat sb;

	return fstatat(dirfd, path, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

static void read_tree_file(const char *path, char *buf, size_t cap)
{
	int fd = beneath_open(tree_fd, path, O_RDONLY, 0);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, cap - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
}

static void test_valid(void **state)
{
	struct tarb t = { 0 };
	char buf[64], link[64];
	struct stat sb;
	ssize_t n;

	(void)state;
	for (int gz = 0; gz <= 1; gz++) {
		tarb_dir(&t, "./");
		tarb_file(&t, "./ember.json", "{}");
		tarb_dir(&t, "bin/");
		tarb_raw(&t, "bin/fn", TAR_REG, 04755, 5, "ELF!!", 5, NULL);
		tarb_file(&t, "data/deep/er/x.txt", "hello"); /* implied dirs */
		tarb_link(&t, "data/link", TAR_SYM, "deep/er/x.txt");
		tarb_link(&t, "data/up", TAR_SYM, "../bin/fn");
		tarb_link(&t, "data/copy", TAR_HARD, "data/deep/er/x.txt");
		tarb_dir(&t, "data/deep"); /* named after it was implied */
		tarb_end(&t);
		assert_int_equal(extract(&t, gz), 0);
		assert_true(st.gzip == (bool)gz);
		/* ember.json bin bin/fn data data/deep data/deep/er x.txt
		 * link up copy; "data/deep" named again is not counted */
		assert_int_equal(st.files, 10);
		assert_int_equal(st.tree_bytes, 2 + 5 + 5 + 5);
		read_tree_file("data/copy", buf, sizeof(buf));
		assert_string_equal(buf, "hello");
		read_tree_file("data/deep/er/x.txt", buf, sizeof(buf));
		assert_string_equal(buf, "hello");
		n = readlinkat(tree_fd, "data/up", link, sizeof(link) - 1);
		assert_int_equal(n, 9);
		link[n] = '\0';
		assert_string_equal(link, "../bin/fn");
		assert_int_equal(fstatat(tree_fd, "bin/fn", &sb, 0), 0);
		assert_int_equal(sb.st_mode & 07777, 0755); /* no setuid */
		assert_int_equal(sb.st_mtime, 1700000000);
		tarb_free(&t);
		assert_int_equal(beneath_remove_tree(base_fd, "tree"), 0);
		assert_int_equal(mkdirat(base_fd, "tree", 0755), 0);
		close(tree_fd);
		tree_fd = openat(base_fd, "tree", O_RDONLY | O_DIRECTORY);
	}
}

static void test_traversal(void **state)
{
	static const char *const names[] = {
		"../outside/evil", "a/../../outside/evil", "a/..", "./../evil",
		"a/./b", "a//b", "..",
	};
	struct tarb t = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		tarb_file(&t, names[i], "x");
		tarb_end(&t);
		assert_refused(extract(&t, false), -EINVAL, "component");
		assert_non_null(strstr(err, names[i] + (names[i][0] == '.' &&
							 names[i][1] == '/' ? 2 : 0)));
		tarb_free(&t);
	}
	assert_int_equal(count_entries(base_fd, "tree"), 0);
}

static void test_absolute(void **state)
{
	struct tarb t = { 0 };
	char abs[128];

	(void)state;
	snprintf(abs, sizeof(abs), "%s/outside/evil", base);
	tarb_file(&t, abs, "x");
	tarb_end(&t);
	assert_refused(extract(&t, true), -EINVAL, "absolute paths are not allowed");
	tarb_free(&t);
	tarb_dir(&t, "/");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "absolute");
	tarb_free(&t);
}

static void test_symlink_escape(void **state)
{
	static const char *const targets[] = {
		"../outside", "/etc", "a/../../..", "../../../../etc/passwd",
		"x/../../outside",
	};
	struct tarb t = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		tarb_link(&t, "l", TAR_SYM, targets[i]);
		tarb_file(&t, "l/evil", "x");
		tarb_end(&t);
		assert_refused(extract(&t, false), -EINVAL, "symlink \"l\"");
		tarb_free(&t);
	}
	tarb_link(&t, "l", TAR_SYM, "");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "target must be");
	tarb_free(&t);
	assert_int_equal(count_entries(base_fd, "tree"), 0);
}

/* Links that a lexical check accepts but that lead out when the kernel
 * follows them: d/s -> ".." is the tree's root; d/t -> "s/../outside" is
 * then base/outside. Only never following links keeps the writes in. */
static void chain_escapes(void)
{
	struct tarb t = { 0 };

	tarb_dir(&t, "d");
	tarb_link(&t, "d/s", TAR_SYM, "..");
	tarb_link(&t, "d/t", TAR_SYM, "s/../outside");
	tarb_file(&t, "d/t/evil", "x"); /* through the chain */
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL,
		       "entry \"d/t/evil\": its directory is a symlink");
	tarb_free(&t);
	assert_int_equal(beneath_remove_tree(tree_fd, "d"), 0);

	tarb_dir(&t, "d");
	tarb_link(&t, "d/s", TAR_SYM, "..");
	tarb_link(&t, "d/t", TAR_SYM, "s/../outside/victim");
	tarb_file(&t, "d/t", "x"); /* over the link itself */
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "\"d/t\" appears twice");
	tarb_free(&t);
	assert_int_equal(beneath_remove_tree(tree_fd, "d"), 0);

	tarb_link(&t, "s", TAR_SYM, "d");
	tarb_dir(&t, "d");
	tarb_file(&t, "s/x", "x"); /* a directory that is a link */
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "its directory is a symlink");
	tarb_free(&t);
	assert_int_equal(beneath_remove_tree(tree_fd, "s"), 0);
	assert_int_equal(beneath_remove_tree(tree_fd, "d"), 0);

	/* A hard link to a symlink (that would be followed by linkat with
	 * AT_SYMLINK_FOLLOW) or through one. */
	tarb_dir(&t, "d");
	tarb_link(&t, "d/s", TAR_SYM, "..");
	tarb_link(&t, "h", TAR_HARD, "d/s");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "not a regular file");
	tarb_free(&t);
	assert_int_equal(beneath_remove_tree(tree_fd, "d"), 0);
	tarb_dir(&t, "d");
	tarb_link(&t, "d/s", TAR_SYM, "..");
	tarb_file(&t, "f", "x");
	tarb_link(&t, "h", TAR_HARD, "d/s/f");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "not a regular file");
	tarb_free(&t);
	assert_int_equal(beneath_remove_tree(tree_fd, "d"), 0);
	assert_int_equal(beneath_remove_tree(tree_fd, "f"), 0);
	assert_int_equal(count_entries(base_fd, "tree"), 0);
}

static void test_chain_escape_openat2(void **state)
{
	(void)state;
	beneath_force_walk = false;
	chain_escapes();
}

static void test_chain_escape_walk(void **state)
{
	(void)state;
	beneath_force_walk = true;
	chain_escapes();
}

static void test_hardlink(void **state)
{
	static char big[600 << 10];
	struct fn_archive_limits l = lim_default;
	struct tarb t = { 0 };

	(void)state;
	tarb_file(&t, "f", "x");
	tarb_link(&t, "h", TAR_HARD, "../outside/x");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL,
		       "hard link target \"../outside/x\" has a '..' component");
	tarb_free(&t);
	assert_int_equal(beneath_remove_tree(tree_fd, "f"), 0);

	tarb_link(&t, "h", TAR_HARD, "/etc/passwd");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "absolute");
	tarb_free(&t);

	tarb_link(&t, "h", TAR_HARD, "later");
	tarb_file(&t, "later", "x");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "extracted before it");
	tarb_free(&t);

	tarb_dir(&t, "dir");
	tarb_link(&t, "h", TAR_HARD, "dir");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "not a regular file");
	tarb_free(&t);
	assert_int_equal(beneath_remove_tree(tree_fd, "dir"), 0);

	/* Hard links cost their size again (the image copies them). */
	memset(big, 'b', sizeof(big));
	l.max_tree_bytes = 2 << 20;
	tarb_raw(&t, "big", TAR_REG, 0644, sizeof(big), big, sizeof(big), NULL);
	tarb_link(&t, "h1", TAR_HARD, "big");
	tarb_link(&t, "h2", TAR_HARD, "big");
	tarb_link(&t, "h3", TAR_HARD, "big");
	tarb_end(&t);
	assert_refused(extract_lim(&t, false, &l), -EFBIG,
		       "entry \"h3\" (614400 bytes): the files would exceed");
	tarb_free(&t);
	assert_int_equal(count_entries(base_fd, "tree"), 3);
	assert_false(exists_in(tree_fd, "h3"));
}

static void test_special_files(void **state)
{
	static const struct {
		char type;
		const char *what;
	} types[] = {
		{ TAR_CHR, "a character device" },
		{ TAR_BLK, "a block device" },
		{ TAR_FIFO, "a fifo" },
	};
	struct tarb t = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		tarb_raw(&t, "dev/null", types[i].type, 0666, 0, NULL, 0, NULL);
		tarb_end(&t);
		assert_refused(extract(&t, i % 2), -EINVAL, types[i].what);
		assert_non_null(strstr(err, "only files, directories and symlinks"));
		tarb_free(&t);
		assert_false(exists_in(tree_fd, "dev"));
	}
}

static void test_bomb_size(void **state)
{
	struct fn_archive_limits l = lim_default;
	struct tarb t = { 0 };

	(void)state;
	/* Declared over the limit: refused before a byte is written (the
	 * data need not even be there). */
	l.max_tree_bytes = 1 << 20;
	tarb_raw(&t, "huge", TAR_REG, 0644, 1ull << 32, NULL, 0, NULL);
	assert_refused(extract_lim(&t, true, &l), -EFBIG,
		       "entry \"huge\" (4294967296 bytes)");
	assert_false(exists_in(tree_fd, "huge"));
	tarb_free(&t);

	/* Many files that each fit, together over the limit. */
	for (int i = 0; i < 5; i++) {
		static char chunk[300 << 10];
		char name[16];

		snprintf(name, sizeof(name), "part%d", i);
		tarb_raw(&t, name, TAR_REG, 0644, sizeof(chunk), chunk,
			 sizeof(chunk), NULL);
	}
	tarb_end(&t);
	assert_refused(extract_lim(&t, true, &l), -EFBIG, "entry \"part3\"");
	assert_false(exists_in(tree_fd, "part3"));
	tarb_free(&t);
}

static void test_bomb_ratio(void **state)
{
	size_t n = 24 << 20;
	char *zeros = calloc(1, n);
	struct tarb t = { 0 };
	struct stat sb;

	(void)state;
	assert_non_null(zeros);
	tarb_raw(&t, "zeros", TAR_REG, 0644, n, zeros, n, NULL);
	tarb_end(&t);
	assert_refused(extract(&t, true), -EFBIG, "refused as a compression bomb");
	/* Stopped early: far less than the 24 MiB were written. */
	assert_int_equal(fstatat(tree_fd, "zeros", &sb, 0), 0);
	assert_true(sb.st_size <= 8 << 20);
	/* Uncompressed, the same archive is fine. */
	assert_int_equal(beneath_remove_tree(tree_fd, "zeros"), 0);
	assert_int_equal(extract(&t, false), 0);
	assert_int_equal(st.tree_bytes, n);
	tarb_free(&t);
	free(zeros);
}

static void test_bomb_files(void **state)
{
	struct fn_archive_limits l = lim_default;
	struct tarb t = { 0 };
	char name[32];

	(void)state;
	l.max_files = 100;
	for (int i = 0; i < 101; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		tarb_file(&t, name, "");
	}
	tarb_end(&t);
	assert_refused(extract_lim(&t, true, &l), -EFBIG,
		       "entry \"f100\": more than 100 files");
	assert_int_equal(count_entries(base_fd, "tree"), 100);
	tarb_free(&t);
	assert_int_equal(beneath_remove_tree(base_fd, "tree"), 0);
	assert_int_equal(mkdirat(base_fd, "tree", 0755), 0);
	close(tree_fd);
	tree_fd = openat(base_fd, "tree", O_RDONLY | O_DIRECTORY);

	/* Implied directories count. */
	l.max_files = 3;
	tarb_file(&t, "a/b/c/d", "x");
	tarb_end(&t);
	assert_refused(extract_lim(&t, false, &l), -EFBIG, "more than 3 files");
	tarb_free(&t);
	assert_int_equal(beneath_remove_tree(tree_fd, "a"), 0);
}

static void test_archive_size(void **state)
{
	static char data[64 << 10];
	struct fn_archive_limits l = lim_default;
	struct tarb t = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7919 % 251);
	l.max_archive_bytes = 32 << 10;
	tarb_raw(&t, "data", TAR_REG, 0644, sizeof(data), data, sizeof(data), NULL);
	tarb_end(&t);
	assert_refused(extract_lim(&t, false, &l), -EFBIG,
		       "the archive is over 32768 bytes");
	assert_true(st.archive_bytes <= (64 << 10) + 32768);
	tarb_free(&t);
	beneath_remove_tree(tree_fd, "data");
}

static void test_truncated(void **state)
{
	static char data[20000];
	struct tarb t = { 0 };
	size_t full;
	int fd;

	(void)state;
	memset(data, 'd', sizeof(data));
	tarb_file(&t, "a", "first");
	tarb_raw(&t, "b", TAR_REG, 0644, sizeof(data), data, sizeof(data), NULL);
	tarb_end(&t);
	/* Cut inside the second header, inside its data, and (gzip) inside
	 * the compressed stream: each is an error, never a crash. */
	{
		static const size_t cuts[] = { 1, 100, 511, 700, 1030, 5000, 15000 };

		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
			fd = tarb_fd_cut(&t, false, cuts[i]);
			err[0] = '\0';
			assert_int_equal(fn_archive_extract(fd, tree_fd, &lim_default,
							    &st, err, sizeof(err)),
					 -EINVAL);
			assert_true(err[0] != '\0');
			close(fd);
			beneath_remove_tree(tree_fd, "a");
			beneath_remove_tree(tree_fd, "b");
		}
	}
	fd = tarb_fd(&t, true);
	full = (size_t)lseek(fd, 0, SEEK_END);
	close(fd);
	for (size_t cut = 10; cut < full - 8; cut += full / 7) {
		fd = tarb_fd_cut(&t, true, cut);
		err[0] = '\0';
		assert_int_equal(fn_archive_extract(fd, tree_fd, &lim_default, &st,
						    err, sizeof(err)), -EINVAL);
		close(fd);
		beneath_remove_tree(tree_fd, "a");
		beneath_remove_tree(tree_fd, "b");
	}
	fd = tarb_fd_cut(&t, false, 5000);
	fn_archive_extract(fd, tree_fd, &lim_default, &st, err, sizeof(err));
	close(fd);
	assert_non_null(strstr(err, "entry \"b\": Truncated"));
	beneath_remove_tree(tree_fd, "a");
	beneath_remove_tree(tree_fd, "b");
	tarb_free(&t);
}

static void test_garbage(void **state)
{
	struct tarb t = { 0 };
	unsigned char junk[4096];

	(void)state;
	assert_refused(extract(&t, false), -EINVAL, "not a readable tar");
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 131 + 7);
	tarb_raw(&t, "", 0, 0, 0, NULL, 0, NULL);
	t.len = 0;
	tarb_raw(&t, "x", TAR_REG, 0644, 0, NULL, 0, NULL);
	memcpy(t.buf, junk, 512); /* a header with a bad checksum */
	assert_refused(extract(&t, false), -EINVAL, "not a readable tar");
	/* gzip of something that is not a tar */
	memcpy(t.buf, "hello, not a tar", 16);
	assert_refused(extract(&t, true), -EINVAL, "not a readable tar");
	tarb_free(&t);
	/* Only the end blocks: an empty archive. */
	tarb_dir(&t, "./");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "the archive is empty");
	tarb_free(&t);
}

static void test_names(void **state)
{
	struct tarb t = { 0 };
	char name[1100];
	size_t n = 0;

	(void)state;
	tarb_file(&t, "a\nb", "x");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "control character");
	tarb_free(&t);

	memset(name, 'n', 256);
	name[256] = '\0';
	tarb_file(&t, name, "x");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "component over 255 bytes");
	tarb_free(&t);

	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(name + n, sizeof(name) - n, "d/");
	snprintf(name + n, sizeof(name) - n, "f");
	tarb_file(&t, name, "x");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "more than 64 levels deep");
	tarb_free(&t);

	memset(name, 'a', 1099);
	for (int i = 100; i < 1099; i += 100)
		name[i] = '/';
	name[1099] = '\0';
	tarb_file(&t, name, "x");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "path over 1024 bytes");
	tarb_free(&t);

	tarb_file(&t, "same", "1");
	tarb_file(&t, "same", "2");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "\"same\" appears twice");
	tarb_free(&t);
	beneath_remove_tree(tree_fd, "same");

	tarb_file(&t, "f", "1");
	tarb_dir(&t, "f");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "\"f\" appears twice");
	tarb_free(&t);
	beneath_remove_tree(tree_fd, "f");

	tarb_file(&t, "f", "1");
	tarb_file(&t, "f/g", "2");
	tarb_end(&t);
	assert_refused(extract(&t, false), -EINVAL, "not a directory");
	tarb_free(&t);
	beneath_remove_tree(tree_fd, "f");
	assert_int_equal(count_entries(base_fd, "tree"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_valid),
		T(test_traversal),
		T(test_absolute),
		T(test_symlink_escape),
		T(test_chain_escape_openat2),
		T(test_chain_escape_walk),
		T(test_hardlink),
		T(test_special_files),
		T(test_bomb_size),
		T(test_bomb_ratio),
		T(test_bomb_files),
		T(test_archive_size),
		T(test_truncated),
		T(test_garbage),
		T(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
