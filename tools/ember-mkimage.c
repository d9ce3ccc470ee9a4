/*
 * ember-mkimage - builds the micro guest's read-only file tree image (EMFS,
 * format in guest-micro/mfs.h and docs/micro-guest.md) from a directory.
 *
 *   ember-mkimage [-v] [--add IMAGE_DIR=HOST_DIR]... SRC_DIR OUT_IMAGE
 *
 * --add hangs the tree HOST_DIR into the image at the absolute IMAGE_DIR,
 * beside SRC_DIR's files (missing parents become directories; IMAGE_DIR
 * must not exist in SRC_DIR): how a runtime such as Python's standard
 * library joins a function's own files without copying them first.
 *
 * The writer is tools/mkimage.c, shared with emberd's deploy: regular
 * files, directories and symlinks are stored (permissions and mtime kept,
 * owners dropped), other file types are skipped with a warning, hard links
 * become copies, and the image is validated with the guest's own reader
 * before the tool reports success.
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
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

static int usage(void)
{
	fprintf(stderr, "usage: ember-mkimage [-v] [--add IMAGE_DIR=HOST_DIR]... "
		"SRC_DIR OUT_IMAGE\n");
	return 2;
}

/* --add IMAGE_DIR=HOST_DIR into *g (HOST_DIR opened). 0, or an exit code. */
static int parse_add(char *spec, struct mkimage_graft *g)
{
	char *eq = strchr(spec, '=');

	if (!eq || spec[0] != '/' || !eq[1]) {
		fprintf(stderr, "ember-mkimage: --add %s: expected "
			"/IMAGE_DIR=HOST_DIR\n", spec);
		return 2;
	}
	*eq = '\0';
	g->image_dir = spec;
	g->dirfd = open(eq + 1, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (g->dirfd < 0) {
		fprintf(stderr, "ember-mkimage: --add %s: %m\n", eq + 1);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "add", required_argument, NULL, 'a' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct mkimage_opts o = { .report = report, .ctx = stderr };
	struct mkimage_graft *grafts;
	struct mkimage_stats st;
	char err[512];
	int a, src, out, ret, c;

	grafts = calloc((size_t)argc, sizeof(*grafts));
	if (!grafts) {
		fprintf(stderr, "ember-mkimage: out of memory\n");
		return 1;
	}
	o.grafts = grafts;
	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		if (c == 'v') {
			o.verbose = 1;
			o.report = report_verbose;
		} else if (c == 'a') {
			ret = parse_add(optarg, &grafts[o.nr_grafts]);
			if (ret)
				return ret;
			o.nr_grafts++;
		} else {
			return usage();
		}
	}
	a = optind;
	if (argc - a != 2)
		return usage();
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
