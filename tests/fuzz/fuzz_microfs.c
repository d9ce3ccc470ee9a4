/* libFuzzer target: the micro guest's EMFS image reader. The input is an
 * image; a mounted image is then walked (every directory listed, a few paths
 * resolved with symlinks followed) to prove lookups stay in bounds after
 * mfs_mount() accepted it. Built and run by mk/fuzz.mk (make fuzz); corpus
 * and past crashers in tests/data/fuzz_microfs/. */
// link: guest-micro/mfs.c
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guest-micro/mfs.h"

static const uint8_t *img;
static size_t img_len;

static long read_link(void *ctx, uint32_t ino, char *buf, size_t cap)
{
	const struct mfs_inode *in = mfs_inode(ctx, ino);

	/* mfs_mount() guarantees the range is inside the image. */
	if (!in || in->size > cap || in->data + in->size > img_len)
		abort();
	memcpy(buf, img + in->data, in->size);
	return (long)in->size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *paths[] = { "/", "/a", "/a/b", "../a/./b/", "x/y/z",
				       "/bin/handler" };
	struct mfs fs;
	uint64_t *copy;
	uint32_t ino;

	/* mfs_mount wants 8-byte aligned metadata, as the guest provides. */
	copy = malloc(size + 8);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	img = (const uint8_t *)copy;
	img_len = size;
	if (mfs_mount(&fs, copy, size, size) == 0) {
		for (uint32_t d = 0; d < fs.nr_inodes && d < 4096; d++) {
			const char *name;
			uint32_t nl, child;
			for (uint64_t i = 0;
			     mfs_dirent_at(&fs, d, i, &child, &name, &nl) == 0;
			     i++)
				if (!mfs_inode(&fs, child) ||
				    name + nl > fs.names + fs.names_size)
					abort();
		}
		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
			mfs_resolve(&fs, paths[i], strlen(paths[i]), 1,
				    read_link, &fs, &ino);
			mfs_resolve(&fs, paths[i], strlen(paths[i]), 0,
				    read_link, &fs, &ino);
		}
	}
	free(copy);
	return 0;
}
