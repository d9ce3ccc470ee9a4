/*
 * mfs.h - the micro guest's read-only file tree image ("EMFS") and its reader.
 *
 * Owns: the on-disk format (written by tools/ember-mkimage, read by the micro
 * guest from its virtio-blk disk) and a reader that validates an image's
 * metadata once, at mount, so that every later lookup is bounds-safe. It does
 * not do I/O: the caller hands it the metadata bytes and reads file data
 * itself at the offsets it returns. Pure code over caller memory, no libc: it
 * is built both into the freestanding guest and into host tests and fuzzers.
 * Single-threaded.
 *
 * Layout (all integers little-endian; docs/micro-guest.md has the picture):
 *   [0, meta_size)   superblock, inode table, dirent table, name table
 *   [meta_size, image_size)  file data and symlink targets
 * Inode 0 is the root directory. A directory's entries are a contiguous,
 * strictly name-sorted (memcmp order, then shorter first) run of the dirent
 * table, so lookup is a binary search and duplicate names are impossible.
 */
#ifndef EMBER_MFS_H
#define EMBER_MFS_H

#include <stddef.h>
#include <stdint.h>

#define MFS_MAGIC "EMBRFS01"
#define MFS_VERSION 1
#define MFS_NAME_MAX 255
#define MFS_PATH_MAX 4096
#define MFS_MAX_INODES (1u << 20)
#define MFS_MAX_META (64u << 20)  /* metadata is read into guest RAM */
#define MFS_SYMLOOP_MAX 16

/* Inode types: the S_IFMT bits of st_mode, as Linux defines them. */
#define MFS_S_IFMT 0170000u
#define MFS_S_IFDIR 0040000u
#define MFS_S_IFREG 0100000u
#define MFS_S_IFLNK 0120000u

struct mfs_super {
	char magic[8];          /* MFS_MAGIC, no NUL */
	uint32_t version;       /* MFS_VERSION */
	uint32_t nr_inodes;     /* >= 1; inode 0 is the root directory */
	uint64_t image_size;    /* bytes in the whole image */
	uint64_t meta_size;     /* bytes of metadata at the start of the image */
	uint64_t inode_off;     /* inode table: nr_inodes * struct mfs_inode */
	uint64_t dirent_off;    /* dirent table: nr_dirents * struct mfs_dirent */
	uint64_t nr_dirents;
	uint64_t names_off;     /* name table: names_size bytes, no terminators */
	uint64_t names_size;
};

struct mfs_inode {
	uint32_t mode;          /* MFS_S_IF* | permission bits */
	uint32_t reserved;      /* 0 */
	uint64_t size;          /* file bytes; symlink target length; dir: entries */
	uint64_t data;          /* file/symlink: image offset; dir: first dirent */
	uint64_t mtime;         /* seconds since the epoch */
};

struct mfs_dirent {
	uint32_t ino;
	uint32_t name_len;      /* 1..MFS_NAME_MAX */
	uint64_t name_off;      /* into the name table */
};

_Static_assert(sizeof(struct mfs_super) == 72, "mfs_super layout");
_Static_assert(sizeof(struct mfs_inode) == 32, "mfs_inode layout");
_Static_assert(sizeof(struct mfs_dirent) == 16, "mfs_dirent layout");

/* A mounted image: points into the caller's copy of the metadata. */
struct mfs {
	const uint8_t *meta;
	uint64_t meta_size;
	uint64_t image_size;
	uint32_t nr_inodes;
	uint64_t nr_dirents;
	const struct mfs_inode *inodes;
	const struct mfs_dirent *dirents;
	const char *names;
	uint64_t names_size;
};

/*
 * Validates the metadata `meta` (meta_len bytes: the first bytes of an image
 * of image_size bytes; meta_len >= the superblock's meta_size) and fills *fs.
 * Checks every table and every inode and dirent: ranges inside the image with
 * overflow-checked arithmetic, known types, names 1..255 bytes without '/' or
 * NUL and not "." or "..", entries strictly sorted, the root a directory.
 * `meta` must stay alive and 8-byte aligned while fs is used.
 * Returns 0 or -EINVAL (bad field), -E2BIG (over a limit), -ENOEXEC (magic,
 * version).
 */
int mfs_mount(struct mfs *fs, const void *meta, uint64_t meta_len,
	      uint64_t image_size);

/* Reads the superblock at the start of `buf` (len bytes) and returns its
 * meta_size in *meta_size after basic checks, so a caller knows how many
 * bytes to read before mfs_mount(). 0, -EINVAL or -ENOEXEC. */
int mfs_probe(const void *buf, uint64_t len, uint64_t image_size,
	      uint64_t *meta_size);

/* The inode `ino`, or NULL if out of range. */
const struct mfs_inode *mfs_inode(const struct mfs *fs, uint32_t ino);

/* Looks up `name` (len bytes) in directory `dir`. 0 and *ino, -ENOTDIR,
 * -ENOENT. */
int mfs_lookup(const struct mfs *fs, uint32_t dir, const char *name,
	       size_t len, uint32_t *ino);

/*
 * Resolves the path `path` (len bytes, need not be NUL-terminated) from the
 * root directory (a leading '/' is optional: the micro guest's cwd is "/"). "." and ".." are handled lexically on
 * the resolved path; symlinks are followed (the last component only if
 * `follow`), at most MFS_SYMLOOP_MAX times. `read_link` reads a symlink's
 * target of inode `ino` into buf (at most MFS_PATH_MAX bytes) and returns its
 * length or -errno; it is how file data is reached without I/O in this code.
 * Returns 0 and *ino, or -ENOENT, -ENOTDIR, -ELOOP, -ENAMETOOLONG, -EIO.
 */
typedef long (*mfs_read_link_fn)(void *ctx, uint32_t ino, char *buf,
				 size_t cap);
int mfs_resolve(const struct mfs *fs, const char *path,
		size_t len, int follow, mfs_read_link_fn read_link, void *ctx,
		uint32_t *ino);

/* Entry `idx` of directory `dir`: 0 with *ino, *name, *name_len, or -ENOENT
 * past the end, -ENOTDIR. */
int mfs_dirent_at(const struct mfs *fs, uint32_t dir, uint64_t idx,
		  uint32_t *ino, const char **name, uint32_t *name_len);

#endif
