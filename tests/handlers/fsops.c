/* Test handler for the micro guest's file system calls, run over an image
 * built by tests/integration/micro-fsops (layout below). Prints one line per
 * failed check and "fsops: N checks, F failed"; exits with F (0 = all
 * passed). Also checks nanosleep and dup2 of the standard streams.
 *   /etc/hosts ("127.0.0.1 localhost\n"), /bin/tool (mode 0755),
 *   /data/big (100000 bytes, byte i = i % 251), /data/link -> big,
 *   /data/sub/ (empty directory)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int checks, failed;

#define CHECK(cond)                                                           \
	do {                                                                  \
		checks++;                                                     \
		if (!(cond)) {                                                \
			failed++;                                             \
			printf("FAILED line %d: %s (errno %d)\n", __LINE__,   \
			       #cond, errno);                                 \
		}                                                             \
	} while (0)

int main(void)
{
	char buf[256], big[4096];
	struct stat st;
	struct timespec t0, t1, d = { 0, 20 * 1000 * 1000 };
	int fd, n, ok;
	DIR *dir;
	struct dirent *de;

	fd = open("/etc/hosts", O_RDONLY);
	CHECK(fd >= 3);
	n = (int)read(fd, buf, sizeof(buf));
	CHECK(n == 20 && !memcmp(buf, "127.0.0.1 localhost\n", 20));
	CHECK(read(fd, buf, sizeof(buf)) == 0);
	CHECK(lseek(fd, 4, SEEK_SET) == 4);
	CHECK(read(fd, buf, 3) == 3 && !memcmp(buf, "0.0", 3));
	CHECK(pread(fd, buf, 4, 10) == 4 && !memcmp(buf, "loca", 4));
	CHECK(lseek(fd, -1, SEEK_END) == 19);
	CHECK(fstat(fd, &st) == 0 && st.st_size == 20 && S_ISREG(st.st_mode));
	CHECK(write(fd, "x", 1) == -1 && errno == EBADF);
	CHECK(close(fd) == 0);
	CHECK(close(fd) == -1 && errno == EBADF);

	/* Read-only: no writes, no creation. */
	CHECK(open("/etc/hosts", O_WRONLY) == -1 && errno == EROFS);
	CHECK(open("/etc/new", O_WRONLY | O_CREAT, 0644) == -1 && errno == EROFS);
	CHECK(access("/etc/hosts", W_OK) == -1 && errno == EROFS);
	CHECK(access("/etc/hosts", R_OK) == 0);
	CHECK(access("/bin/tool", X_OK) == 0);
	CHECK(access("/etc/hosts", X_OK) == -1 && errno == EACCES);
	CHECK(open("/nope", O_RDONLY) == -1 && errno == ENOENT);
	CHECK(open("/etc/hosts/x", O_RDONLY) == -1 && errno == ENOTDIR);
	CHECK(open("/etc/hosts", O_RDONLY | O_DIRECTORY) == -1 && errno == ENOTDIR);
	CHECK(mkdir("/x", 0755) == -1 && errno == EROFS);

	/* A bigger file read in odd pieces, through a symlink. */
	fd = open("/data/link", O_RDONLY);
	CHECK(fd >= 0);
	ok = 1;
	for (long off = 0; off < 100000;) {
		n = (int)read(fd, big, 1000 + (off % 3000));
		if (n <= 0) {
			ok = 0;
			break;
		}
		for (int i = 0; i < n; i++)
			if ((unsigned char)big[i] != (off + i) % 251)
				ok = 0;
		off += n;
	}
	CHECK(ok);
	CHECK(read(fd, big, sizeof(big)) == 0);
	close(fd);
	CHECK(stat("/data/link", &st) == 0 && st.st_size == 100000);
	CHECK(lstat("/data/link", &st) == 0 && S_ISLNK(st.st_mode));
	n = (int)readlink("/data/link", buf, sizeof(buf));
	CHECK(n == 3 && !memcmp(buf, "big", 3));
	n = (int)readlink("/proc/self/exe", buf, sizeof(buf));
	CHECK(n > 0 && buf[0] == '/');
	CHECK(stat("/data/../etc/./hosts", &st) == 0 && st.st_size == 20);

	/* Directories: *at() relative to a directory fd, listing. */
	fd = open("/etc", O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0);
	CHECK(fstatat(fd, "hosts", &st, 0) == 0 && st.st_size == 20);
	n = openat(fd, "hosts", O_RDONLY);
	CHECK(n >= 0 && read(n, buf, 3) == 3 && !memcmp(buf, "127", 3));
	close(n);
	CHECK(read(fd, buf, 1) == -1 && errno == EISDIR);
	close(fd);
	dir = opendir("/data");
	CHECK(dir != NULL);
	ok = 0;
	while (dir && (de = readdir(dir)))
		ok |= (!strcmp(de->d_name, "big") && de->d_type == DT_REG) |
		      (!strcmp(de->d_name, "link") && de->d_type == DT_LNK) << 1 |
		      (!strcmp(de->d_name, "sub") && de->d_type == DT_DIR) << 2 |
		      (!strcmp(de->d_name, "..")) << 3;
	CHECK(ok == 15);
	if (dir)
		closedir(dir);
	CHECK(stat("/data/sub", &st) == 0 && S_ISDIR(st.st_mode));

	/* The standard streams: pipes, dup-able. */
	CHECK(fstat(1, &st) == 0 && S_ISFIFO(st.st_mode));
	fd = dup(2);
	CHECK(fd >= 3 && write(fd, "dup'ed stderr\n", 14) == 14);
	close(fd);

	/* Time. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(nanosleep(&d, NULL) == 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	CHECK(ms >= 20 && ms < 2000);
	CHECK(time(NULL) > 1600000000);

	printf("fsops: %d checks, %d failed\n", checks, failed);
	return failed;
}
