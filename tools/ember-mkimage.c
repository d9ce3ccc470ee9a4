/*
 * ember-mkimage - builds the micro guest's read-only file tree image (EMFS,
 * format in guest-micro/mfs.h and docs/micro-guest.md) from a directory.
 *
 *   ember-mkimage [-v] SRC_DIR OUT_IMAGE
 *
 * The writer is tools/mkimage.c, shared with emberd's deploy: regular
 * files, directories and symlinks are stored (permissions and mtime kept,
 * owners dropped), other file types are skipped with a warning, hard links
 * become copies, and the image is validated with the guest's own reader
 * before the tool reports success.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tools/mkimage.h"

static void report(void *ctx, const char *line)
{
	FILE *f = ctx;

	fprintf(f, "%s%s\n", f == stderr ? "ember-mkimage: " : "", line);
}

/* Skips go to stderr, the verbose listing to stdout. */
static void report_verbose(void *ctx, const char *line)
{
	(void)ctx;
	report(strncmp(line, "skipping ", 9) ? stdout : stderr, line);
}

int main(int argc, char **argv)
{
	struct mkimage_opts o = { .report = report, .ctx = stderr };
	struct mkimage_stats st;
	char err[512];
	int a = 1, src, out, ret;

	if (argc > 1 && !strcmp(argv[1], "-v")) {
		o.verbose = 1;
		o.report = report_verbose;
		a++;
	}
	if (argc - a != 2) {
		fprintf(stderr, "usage: ember-mkimage [-v] SRC_DIR OUT_IMAGE\n");
		return 2;
	}
	src = open(argv[a], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src < 0) {
		fprintf(stderr, "ember-mkimage: %s: %m\n", argv[a]);
		return 1;
	}
	out = open(argv[a + 1], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		fprintf(stderr, "ember-mkimage: %s: %m\n", argv[a + 1]);
		return 1;
	}
	ret = mkimage_build(src, out, &o, &st, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "ember-mkimage: %s\n", err);
		return 1;
	}
	if (close(out)) {
		fprintf(stderr, "ember-mkimage: %s: %m\n", argv[a + 1]);
		return 1;
	}
	if (o.verbose)
		printf("%llu inodes, %llu bytes of metadata, image %llu bytes\n",
		       (unsigned long long)st.nr_inodes,
		       (unsigned long long)st.meta_size,
		       (unsigned long long)st.image_size);
	return 0;
}
