/* libFuzzer target: invocation frames (proto/invoke.c). Feeds arbitrary bytes
 * to the header decoder and, in pieces whose sizes come from the input, to
 * the incremental decoder; checks the decoder's invariants (never consumes
 * more than given, never reports a length over its type's limit, a decoded
 * header re-encodes to the same bytes). */
// link: proto/invoke.c
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/invoke.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t payload[64 * 1024];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ember_inv_dec d;
	struct ember_inv_hdr h;
	uint8_t re[EMBER_INV_HDR_SIZE];
	size_t off, used, piece;
	unsigned step;
	int r;

	if (size >= EMBER_INV_HDR_SIZE &&
	    ember_inv_hdr_decode(data, &h) == 0) {
		if (ember_inv_hdr_encode(re, h.type, h.flags, h.arg, h.length,
					 h.id) != 0 ||
		    memcmp(re, data, sizeof(re)))
			abort();
	}
	if (size == 0)
		return 0;
	/* The first byte picks the read size, as a socket would. */
	step = data[0] % 64 + 1;
	ember_inv_dec_init(&d);
	for (off = 1; off < size; off += used) {
		piece = size - off < step ? size - off : step;
		r = ember_inv_dec_feed(&d, data + off, piece, &used);
		if (used > piece)
			abort();
		if (r < 0)
			break;
		if (r == EMBER_INV_DEC_HEADER) {
			if (d.hdr.length == 0 ||
			    d.hdr.length > ember_inv_max_len(d.hdr.type))
				abort();
			/* Offer a buffer only when it fits, like the host. */
			if (d.hdr.length <= sizeof(payload) &&
			    ember_inv_dec_set_buf(&d, payload, sizeof(payload)))
				abort();
		}
		if (r == EMBER_INV_DEC_FRAME &&
		    d.hdr.length > ember_inv_max_len(d.hdr.type))
			abort();
	}
	r = ember_inv_dec_finish(&d);
	(void)r;
	return 0;
}
