/*
 * mkimage.h - builds the micro guest's read-only file tree image (EMFS,
 * format in guest-micro/mfs.h and docs/micro-guest.md) from a directory.
 *
 * Owns: the EMFS writer. Used by the ember-mkimage tool and by emberd's
 * deploy (agent/deploy.c), which builds a function's image from the tree it
 * extracted from the tenant's archive. The writer never follows a symlink
 * (symlinks are stored as links; every file is opened beneath the source
 * directory without following links, tools/beneath.h), so a hostile tree
 * cannot make it read host files. It does not print or exit: problems go
 * to the caller's report callback or come back as errors.
 *
 * Regular files, directories and symlinks are stored (permissions and mtime
 * kept, owners dropped: everything belongs to the handler); other file types
 * (sockets, devices, fifos) are skipped and reported. Hard links become
 * copies. The image is padded to a multiple of 512 bytes (a virtio-blk
 * sector) and re-read and mounted with the guest's own reader (mfs_mount)
 * before success is returned. Any thread; no global state.
 */
#ifndef EMBER_MKIMAGE_H
#define EMBER_MKIMAGE_H

#include <stdint.h>

#define MKIMAGE_MAX_DEPTH 256

struct mkimage_stats {
	uint64_t nr_inodes;   /* including the root directory */
	uint64_t data_bytes;  /* file and symlink contents */
	uint64_t meta_size;
	uint64_t image_size;
};

/* Lines for a human: a skipped file, or with `verbose`, one per entry. */
typedef void (*mkimage_report_fn)(void *ctx, const char *line);

/* A second tree hung into the image at the absolute path `image_dir`
 * (e.g. "/.ember/python"), read beneath `dirfd` the same way as the source:
 * how a language runtime joins a function's files. Missing parents become
 * 0755 directories; `image_dir` itself must not exist in the source. */
struct mkimage_graft {
	const char *image_dir;
	int dirfd;
};

struct mkimage_opts {
	int verbose;
	mkimage_report_fn report;  /* may be NULL */
	void *ctx;
	const struct mkimage_graft *grafts; /* nr_grafts of them, may be NULL */
	size_t nr_grafts;
};

/*
 * Writes the image of the tree under the directory fd `src_dirfd`, plus
 * o->grafts, into `out_fd` (a regular file opened read-write; truncated and
 * fsynced here). Fills *st when not NULL. Returns 0, or a negative errno
 * with a one-line reason in err[errlen]: -ENOMEM, -E2BIG (too many files,
 * metadata over MFS_MAX_META, a tree deeper than MKIMAGE_MAX_DEPTH),
 * -EINVAL (a bad symlink, name or graft path), -EEXIST (a graft's path
 * exists in the source), -ENOTDIR (a graft's parent is not a directory
 * there, or its dirfd is not a directory), -ESTALE (the tree changed while
 * being read), I/O errors.
 */
int mkimage_build(int src_dirfd, int out_fd, const struct mkimage_opts *o,
		  struct mkimage_stats *st, char *err, size_t errlen);

#endif
