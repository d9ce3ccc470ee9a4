/*
 * archive.h - a function archive (tar or tar.gz, read with libarchive)
 * validated and extracted into a version's tree.
 *
 * Owns: the rules for what an archive may contain (docs/functions.md):
 * regular files, directories, symlinks and hard links that stay inside the
 * tree; nothing else (devices, fifos, sockets), no absolute paths, no ".."
 * components, no duplicate entries; limits on the archive's size, the
 * number of entries, the extracted bytes and the expansion ratio (a
 * compression bomb is stopped early, not after filling the disk).
 *
 * Extraction cannot be tricked into writing outside the tree: every file
 * is created relative to a directory fd reached one component at a time
 * with O_NOFOLLOW (tools/beneath.h), with O_CREAT|O_EXCL|O_NOFOLLOW, so a
 * symlink an earlier entry planted is never followed. The string checks
 * give clear messages; the fd discipline is what makes it safe.
 *
 * Does not own: the manifest (manifest.h) or whether the handler is a
 * usable executable (deploy.c). Any thread; no global state.
 */
#ifndef EMBER_AGENT_ARCHIVE_H
#define EMBER_AGENT_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FN_ARCHIVE_MAX_PATH 1024u   /* an entry's path, bytes */
#define FN_ARCHIVE_MAX_DEPTH 64u    /* directory levels */
/* A tar of ordinary files rarely expands 10x under gzip; gzip itself tops
 * out near 1030x. Checked once the expanded stream passes 4 MiB. */
#define FN_ARCHIVE_MAX_RATIO 256u
#define FN_ARCHIVE_RATIO_AFTER (4ull << 20)

struct fn_archive_limits {
	uint64_t max_archive_bytes; /* bytes read from the fd (compressed) */
	uint64_t max_files;         /* entries, including implied directories */
	uint64_t max_tree_bytes;    /* file sizes, hard links counted again */
	unsigned max_ratio;         /* expanded / compressed; 0 = no check */
};

struct fn_archive_stats {
	uint64_t archive_bytes;     /* read from the fd */
	uint64_t files;             /* entries created */
	uint64_t tree_bytes;        /* as counted against max_tree_bytes */
	bool gzip;
};

/*
 * Reads the tar or gzip-compressed tar on `fd` from its current offset to
 * its end and extracts it into the empty directory `tree_fd`, within *lim.
 * Fills *st (when not NULL) also on failure, as far as it got. Returns 0,
 * or a negative errno with a one-line reason naming the entry in
 * err[errlen]: -EINVAL a forbidden entry or a malformed/truncated archive,
 * -EFBIG a limit exceeded, -ENOMEM, file system errors passed through.
 * On failure the tree holds what was extracted so far: the caller removes
 * it.
 */
int fn_archive_extract(int fd, int tree_fd, const struct fn_archive_limits *lim,
		       struct fn_archive_stats *st, char *err, size_t errlen);

#endif
