/*
 * files: reads files from the function's file tree. The request is a list of
 * absolute paths, one per line (e.g. "/data/a.bin"); the response has one
 * line per file in `sha256sum` format: "<64 hex>  <path>\n". A missing or
 * unreadable file fails the invocation (status 1, the response names it).
 *
 * usage: files [ROOT]   ROOT (default "") is prepended to every path, so the
 * same binary serves a VM's tree ("/") and a host test directory; paths with
 * a ".." component are refused so ROOT is a real boundary.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sdk/ember_handler.h"
#include "sdk/sha256.h"

#define PATH_MAX_LEN 1024

static int has_dotdot(const char *p, size_t n)
{
	size_t i = 0, start;

	while (i < n) {
		while (i < n && p[i] == '/')
			i++;
		start = i;
		while (i < n && p[i] != '/')
			i++;
		if (i - start == 2 && p[start] == '.' && p[start + 1] == '.')
			return 1;
	}
	return 0;
}

/* Hashes root+path into hex. 0 or -errno. */
static int hash_file(const char *root, const char *path, size_t plen,
		     char hex[SHA256_HEX_SIZE])
{
	static unsigned char buf[64 * 1024];
	char full[PATH_MAX_LEN + 256];
	struct sha256 s;
	unsigned char d[SHA256_DIGEST_SIZE];
	ssize_t n;
	int fd, n2;

	if (plen == 0 || plen > PATH_MAX_LEN || path[0] != '/' ||
	    memchr(path, '\0', plen) || has_dotdot(path, plen))
		return -EINVAL;
	n2 = snprintf(full, sizeof(full), "%s%.*s", root, (int)plen, path);
	if (n2 < 0 || (size_t)n2 >= sizeof(full))
		return -ENAMETOOLONG;
	fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	sha256_init(&s);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n2 = -errno;
			close(fd);
			return n2;
		}
		sha256_update(&s, buf, (size_t)n);
	}
	close(fd);
	sha256_final(&s, d);
	sha256_to_hex(d, hex);
	return 0;
}

static int files(const struct ember_request *req, struct ember_response *resp,
		 void *ctx)
{
	const char *root = ctx;
	const char *p = (const char *)req->data, *end = p + req->len, *nl;
	char hex[SHA256_HEX_SIZE], msg[PATH_MAX_LEN + 64];
	size_t n;
	int ret;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (n) {
			ret = hash_file(root, p, n, hex);
			if (ret) {
				ember_response_reset(resp);
				snprintf(msg, sizeof(msg), "%.*s: %s\n",
					 (int)(n > PATH_MAX_LEN ? PATH_MAX_LEN : n),
					 p, strerror(-ret));
				ember_response_puts(resp, msg);
				return 1;
			}
			if (ember_response_append(resp, hex, 64) ||
			    ember_response_append(resp, "  ", 2) ||
			    ember_response_append(resp, p, n) ||
			    ember_response_append(resp, "\n", 1))
				return 1;
		}
		p += n + (nl ? 1 : 0);
	}
	return 0;
}

int main(int argc, char **argv)
{
	char *root = argc > 1 ? argv[1] : "";

	return ember_handler_run(files, root);
}
