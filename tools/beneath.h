/*
 * beneath.h - file operations confined to a directory tree.
 *
 * Owns: opening, creating and removing paths under a directory file
 * descriptor without ever following a symlink in any component, so that a
 * tree built from a tenant's archive cannot redirect a host-side operation
 * outside itself (a symlink planted as "a", then "a/x" written). Uses
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) where the kernel has it
 * (Linux 5.6+) and otherwise walks the path one openat(O_NOFOLLOW) per
 * component; both refuse the same things.
 *
 * Paths given here are relative and already validated by the caller (no
 * "..", no empty components: manifest_check_path()); the kernel refuses
 * escapes again (RESOLVE_BENEATH) where it can. Pure functions, any thread.
 */
#ifndef EMBER_BENEATH_H
#define EMBER_BENEATH_H

#include <stdbool.h>
#include <sys/types.h>

/*
 * Opens the directory that holds the last component of `path`, under the
 * directory `dirfd`, following no symlink. Sets *leaf to that component
 * (a pointer into path). Returns a new O_DIRECTORY fd or a negative errno:
 * -ELOOP or -ENOTDIR when a component is a symlink or not a directory,
 * -ENOENT when one is missing.
 */
int beneath_open_parent(int dirfd, const char *path, const char **leaf);

/*
 * openat(dirfd, path, flags | O_NOFOLLOW | O_CLOEXEC, mode) with no symlink
 * followed in any component. Returns an fd or a negative errno (-ELOOP: the
 * last component is a symlink).
 */
int beneath_open(int dirfd, const char *path, int flags, mode_t mode);

/*
 * Like beneath_open_parent(), creating missing directories on the way
 * (mode `mode`, counted in *created when not NULL). A component that exists
 * and is not a directory, or is a symlink, is -ENOTDIR / -ELOOP.
 */
int beneath_mkdirs(int dirfd, const char *path, mode_t mode,
		   const char **leaf, unsigned *created);

/*
 * Removes `name` (one component) in `dirfd` and, if it is a directory,
 * everything below it, without following symlinks (a link is removed, not
 * its target). Returns 0 or the first negative errno (and goes on removing
 * what it can).
 */
int beneath_remove_tree(int dirfd, const char *name);

#ifdef EMBER_TESTING
/* Tests set this to exercise the per-component walk on kernels with
 * openat2. */
extern bool beneath_force_walk;
#endif

#endif
