/* tarbuild.h - hand-built tar archives for the deploy tests: every header
 * field under the test's control (absolute names, "..", links anywhere,
 * devices, sizes that lie), unlike an archiver that would refuse or fix
 * them. gzip through libarchive's raw writer. Test code: aborts on error. */
#ifndef EMBER_TEST_TARBUILD_H
#define EMBER_TEST_TARBUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tarb {
	unsigned char *buf;
	size_t len, cap;
};

/* ustar type flags */
#define TAR_REG '0'
#define TAR_HARD '1'
#define TAR_SYM '2'
#define TAR_CHR '3'
#define TAR_BLK '4'
#define TAR_DIR '5'
#define TAR_FIFO '6'

/* Appends one entry: `size` is what the header declares, `data`/`len`
 * what follows (padded to 512). Names over 100 bytes get a pax header. */
void tarb_raw(struct tarb *t, const char *name, char type, unsigned mode,
	      uint64_t size, const void *data, size_t len, const char *link);
void tarb_file(struct tarb *t, const char *name, const char *data);
void tarb_dir(struct tarb *t, const char *name);
void tarb_link(struct tarb *t, const char *name, char type, const char *target);
/* The two zero blocks that end an archive. */
void tarb_end(struct tarb *t);
/* A memfd holding the archive (gzip-compressed when asked), offset 0. */
int tarb_fd(const struct tarb *t, bool gzip);
/* The same, cut to `len` bytes of the (compressed) stream. */
int tarb_fd_cut(const struct tarb *t, bool gzip, size_t len);
void tarb_free(struct tarb *t);

#endif
