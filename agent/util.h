/*
 * util.h - small helpers every emberd module uses.
 *
 * Owns: the rule for tenant and function names, wall-clock timestamps in
 * ISO 8601, monotonic time, random bytes and hex, and the few file-system
 * operations emberd needs on its state directory (mkdir -p, a recursive
 * delete that never follows symlinks, fsync of a directory), and the one
 * way emberd starts a helper process (util_spawn). No state, no
 * threads of its own; every function is safe to call from any thread.
 */
#ifndef EMBER_AGENT_UTIL_H
#define EMBER_AGENT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Names of tenants and functions: ^[a-z0-9][a-z0-9-]{0,62}$. The charset
 * keeps a name from ever being a path, a SQL fragment, a header or a
 * look-alike of another name. */
#define UTIL_NAME_MAX 63

/* True when s[0..len) is a valid name (len counts bytes; an embedded NUL
 * makes it invalid). */
bool util_name_valid(const char *s, size_t len);

/* "2026-11-27T12:34:56.789Z": the current UTC time, millisecond precision,
 * into out[UTIL_TIME_LEN]. */
#define UTIL_TIME_LEN 32
void util_time_iso8601(char out[UTIL_TIME_LEN]);

/* Copies src into dst[cap], cut to fit, always NUL-terminated. */
void util_copy(char *dst, size_t cap, const char *src);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t util_now_ns(void);

/* Fills buf[n] from getrandom(2). 0 or -errno. */
int util_random(void *buf, size_t n);

/* Lowercase hex of in[n] into out[2n + 1], NUL-terminated. */
void util_hex(const void *in, size_t n, char *out);

/* A random identifier: prefix then 16 hex digits (64 bits), into
 * out[cap]. 0 or -errno. */
int util_random_id(const char *prefix, char *out, size_t cap);

/* Creates path and its missing parents with mode (like mkdir -p).
 * 0 or -errno. */
int util_mkdir_p(const char *path, unsigned mode);

/* Removes name (file or directory tree) under the directory dirfd
 * (AT_FDCWD for a path). Never follows symlinks: a symlink is removed, not
 * its target. A missing name is not an error. 0 or -errno (the first
 * failure; the rest is still attempted). */
int util_rm_tree(int dirfd, const char *name);

/* fsync of the directory at path, so a rename or create in it is durable.
 * 0 or -errno. */
int util_fsync_dir(const char *path);

/* Reads a whole small file (at most max bytes) into a malloc'd,
 * NUL-terminated buffer. 0 or -errno (-EFBIG when larger than max). */
int util_read_file(const char *path, size_t max, char **out, size_t *len);

/*
 * Starts `argv` (argv[0] the path) as a helper: no signal blocked, every
 * disposition back to default (the caller's threads may block or catch
 * signals), working directory `dir_fd`, stdin and stdout /dev/null, stderr
 * `err_fd`, `fd3` as fd 3 when >= 0, no other fd; in a process group of
 * its own when `own_pgroup` (so a kill of the group ends its children
 * too). envp NULL passes ours. 0 and *pid, or an errno value.
 */
int util_spawn(pid_t *pid, char *const *argv, char *const *envp, int dir_fd,
	       int err_fd, int fd3, bool own_pgroup);

#endif
