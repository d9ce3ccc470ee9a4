/* libFuzzer target: the function archive reader (agent/archive.c). Each
 * input is a tar or tar.gz extracted into a fresh directory under a private
 * temporary base; afterwards the base must hold nothing but that directory
 * and an empty decoy beside it (no write escaped), whatever was accepted or
 * refused. Small limits keep each run cheap. Seeds in
 * tests/data/fuzz_archive/ (tar and tar.gz, good and hostile). */
// link: agent/archive.c agent/manifest.c tools/beneath.c vmm/log.c
// libs: -larchive -ljansson
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/archive.h"
#include "tools/beneath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int base_fd = -1;
static char base[] = "/tmp/ember-fuzz-archive.XXXXXX";

static void remove_base(void)
{
	beneath_remove_tree(base_fd, "tree");
	beneath_remove_tree(base_fd, "outside");
	rmdir(base);
}

static int entries(const char *name)
{
	int fd = openat(base_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	int n = 0;

	if (!d)
		abort();
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fn_archive_limits lim = {
		.max_archive_bytes = 1 << 20,
		.max_files = 64,
		.max_tree_bytes = 1 << 20,
		.max_ratio = FN_ARCHIVE_MAX_RATIO,
	};
	char err[512];
	int fd, tree;

	if (base_fd < 0) {
		if (!mkdtemp(base))
			abort();
		base_fd = open(base, O_RDONLY | O_DIRECTORY);
		if (base_fd < 0 || mkdirat(base_fd, "outside", 0755))
			abort();
		atexit(remove_base);
	}
	fd = memfd_create("archive", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size ||
	    lseek(fd, 0, SEEK_SET) || mkdirat(base_fd, "tree", 0755))
		abort();
	tree = openat(base_fd, "tree", O_RDONLY | O_DIRECTORY);
	if (tree < 0)
		abort();
	err[0] = '\0';
	if (fn_archive_extract(fd, tree, &lim, NULL, err, sizeof(err)) &&
	    !err[0])
		abort(); /* a refusal always says why */
	if (entries(".") != 2 || entries("outside") != 0)
		abort();
	close(tree);
	close(fd);
	if (beneath_remove_tree(base_fd, "tree"))
		abort();
	return 0;
}
