/*
 * beneath.c - path operations confined to a directory (see beneath.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tools/beneath.h"

#ifdef EMBER_TESTING
bool beneath_force_walk;
#else
static const bool beneath_force_walk;
#endif

/* Cached: -1 unknown, 0 openat2 missing (ENOSYS), 1 present. Threads may
 * race to set it; they all find the same answer. */
static _Atomic int have_openat2 = -1;

static int sys_openat2(int dirfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (unsigned long long)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			   RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));

	return fd < 0 ? -errno : (int)fd;
}

/* Opens the directory path[0, len) under dirfd, one component at a time,
 * each with O_NOFOLLOW; with `mkdir_mode`, creates missing ones. */
static int walk_dirs(int dirfd, const char *path, size_t len, bool create,
		     mode_t mkdir_mode, unsigned *created)
{
	int cur = fcntl(dirfd, F_DUPFD_CLOEXEC, 0), next;
	size_t i = 0;

	if (cur < 0)
		return -errno;
	while (i < len) {
		char comp[256];
		size_t s = i;

		while (i < len && path[i] != '/')
			i++;
		if (i - s == 0 || i - s >= sizeof(comp)) {
			close(cur);
			return i - s ? -ENAMETOOLONG : -EINVAL;
		}
		memcpy(comp, path + s, i - s);
		comp[i - s] = '\0';
		if (!strcmp(comp, "..") || !strcmp(comp, ".")) {
			close(cur);
			return -EINVAL;
		}
		if (create) {
			if (mkdirat(cur, comp, mkdir_mode) == 0) {
				if (created)
					(*created)++;
			} else if (errno != EEXIST) {
				next = -errno;
				close(cur);
				return next;
			}
		}
		next = openat(cur, comp,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0) {
			next = -errno;
			close(cur);
			return next;
		}
		close(cur);
		cur = next;
		if (i < len)
			i++; /* the '/' */
	}
	return cur;
}

int beneath_open_parent(int dirfd, const char *path, const char **leaf)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd;

	if (!slash) {
		*leaf = path;
		fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
		return fd < 0 ? -errno : fd;
	}
	*leaf = slash + 1;
	if (!beneath_force_walk && have_openat2 != 0) {
		dir = strndup(path, (size_t)(slash - path));
		if (!dir)
			return -ENOMEM;
		fd = sys_openat2(dirfd, dir, O_RDONLY | O_DIRECTORY);
		free(dir);
		if (fd != -ENOSYS) {
			have_openat2 = 1;
			return fd;
		}
		have_openat2 = 0;
	}
	return walk_dirs(dirfd, path, (size_t)(slash - path), false, 0, NULL);
}

int beneath_mkdirs(int dirfd, const char *path, mode_t mode,
		   const char **leaf, unsigned *created)
{
	const char *slash = strrchr(path, '/');

	*leaf = slash ? slash + 1 : path;
	return walk_dirs(dirfd, path, slash ? (size_t)(slash - path) : 0, true,
			 mode, created);
}

int beneath_open(int dirfd, const char *path, int flags, mode_t mode)
{
	const char *leaf;
	int dir = beneath_open_parent(dirfd, path, &leaf), fd;

	if (dir < 0)
		return dir;
	fd = openat(dir, leaf, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		fd = -errno;
	close(dir);
	return fd;
}

/* Depth-first removal of everything inside the directory fd `dir`
 * (consumed). Linux's readdir neither skips nor repeats entries while
 * others are unlinked; a vanished one (ENOENT) is fine. */
static int empty_dir(int dir, int depth)
{
	DIR *d = fdopendir(dir);
	struct dirent *de;
	int ret = 0, r;

	if (!d) {
		ret = -errno;
		close(dir);
		return ret;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(dir, de->d_name, 0) == 0 || errno == ENOENT)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			ret = ret ? ret : -errno;
			continue;
		}
		if (depth > 512) {
			ret = ret ? ret : -ELOOP;
			continue;
		}
		r = openat(dir, de->d_name,
			   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (r < 0) {
			ret = ret ? ret : -errno;
			continue;
		}
		r = empty_dir(r, depth + 1);
		if (r)
			ret = ret ? ret : r;
		if (unlinkat(dir, de->d_name, AT_REMOVEDIR))
			ret = ret ? ret : -errno;
	}
	closedir(d);
	return ret;
}

int beneath_remove_tree(int dirfd, const char *name)
{
	int fd, ret;

	if (unlinkat(dirfd, name, 0) == 0)
		return 0;
	if (errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = empty_dir(fd, 0);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) && !ret)
		ret = -errno;
	return ret;
}
