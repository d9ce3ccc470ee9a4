/* tarbuild.c - see tarbuild.h. */
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/unit/tarbuild.h"

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p)
		abort();
	return p;
}

static void put(struct tarb *t, const void *p, size_t n)
{
	if (t->len + n > t->cap) {
		t->cap = (t->len + n) * 2 + 4096;
		t->buf = xrealloc(t->buf, t->cap);
	}
	memcpy(t->buf + t->len, p, n);
	t->len += n;
}

static void pad(struct tarb *t)
{
	static const unsigned char zero[512];

	if (t->len % 512)
		put(t, zero, 512 - t->len % 512);
}

static void header(struct tarb *t, const char *name, char type,
		   unsigned mode, uint64_t size, const char *link)
{
	unsigned char h[512];
	unsigned sum = 0;

	memset(h, 0, sizeof(h));
	memcpy(h, name, strnlen(name, 100));
	snprintf((char *)h + 100, 8, "%07o", mode & 07777);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
	snprintf((char *)h + 136, 12, "%011o", 1700000000);
	h[156] = (unsigned char)type;
	if (link)
		memcpy(h + 157, link, strnlen(link, 100));
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	put(t, h, sizeof(h));
}

static void pax_record(char *out, size_t cap, const char *key, const char *v)
{
	size_t body = strlen(key) + strlen(v) + 3, n = body + 1;

	/* "LEN key=value\n", LEN counting its own digits. */
	while ((size_t)snprintf(NULL, 0, "%zu", n) + body != n)
		n = (size_t)snprintf(NULL, 0, "%zu", n) + body;
	snprintf(out, cap, "%zu %s=%s\n", n, key, v);
}

void tarb_raw(struct tarb *t, const char *name, char type, unsigned mode,
	      uint64_t size, const void *data, size_t len, const char *link)
{
	if (strlen(name) > 100 || (link && strlen(link) > 100)) {
		char rec[2 * 8192];
		size_t n = 0;

		rec[0] = '\0';
		if (strlen(name) > 100)
			pax_record(rec, sizeof(rec), "path", name);
		n = strlen(rec);
		if (link && strlen(link) > 100)
			pax_record(rec + n, sizeof(rec) - n, "linkpath", link);
		n = strlen(rec);
		header(t, "PaxHeader", 'x', 0644, n, NULL);
		put(t, rec, n);
		pad(t);
	}
	header(t, name, type, mode, size, link);
	if (len)
		put(t, data, len);
	pad(t);
}

void tarb_file(struct tarb *t, const char *name, const char *data)
{
	tarb_raw(t, name, TAR_REG, 0644, strlen(data), data, strlen(data), NULL);
}

void tarb_dir(struct tarb *t, const char *name)
{
	tarb_raw(t, name, TAR_DIR, 0755, 0, NULL, 0, NULL);
}

void tarb_link(struct tarb *t, const char *name, char type, const char *target)
{
	tarb_raw(t, name, type, 0777, 0, NULL, 0, target);
}

void tarb_end(struct tarb *t)
{
	static const unsigned char zero[1024];

	put(t, zero, sizeof(zero));
}

static size_t gzip_into(const struct tarb *t, int fd)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();

	if (!a || !e || archive_write_set_format_raw(a) != ARCHIVE_OK ||
	    archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(a, fd) != ARCHIVE_OK)
		abort();
	archive_entry_set_pathname(e, "data");
	archive_entry_set_filetype(e, AE_IFREG);
	if (archive_write_header(a, e) != ARCHIVE_OK ||
	    archive_write_data(a, t->buf, t->len) != (la_ssize_t)t->len ||
	    archive_write_close(a) != ARCHIVE_OK)
		abort();
	archive_entry_free(e);
	archive_write_free(a);
	return (size_t)lseek(fd, 0, SEEK_END);
}

int tarb_fd_cut(const struct tarb *t, bool gzip, size_t len)
{
	int fd = memfd_create("tar", MFD_CLOEXEC);
	size_t full;

	if (fd < 0)
		abort();
	if (gzip) {
		full = gzip_into(t, fd);
	} else {
		if (write(fd, t->buf, t->len) != (ssize_t)t->len)
			abort();
		full = t->len;
	}
	if (len < full && ftruncate(fd, (off_t)len))
		abort();
	lseek(fd, 0, SEEK_SET);
	return fd;
}

int tarb_fd(const struct tarb *t, bool gzip)
{
	return tarb_fd_cut(t, gzip, SIZE_MAX);
}

void tarb_free(struct tarb *t)
{
	free(t->buf);
	memset(t, 0, sizeof(*t));
}
