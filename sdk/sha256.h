/*
 * sha256.h - SHA-256 (FIPS 180-4) for the example handlers.
 *
 * Owns: a streaming SHA-256 context and a hex helper. Freestanding-safe (no
 * libc beyond memcpy), single-threaded per context.
 */
#ifndef EMBER_SDK_SHA256_H
#define EMBER_SDK_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE 65 /* 64 hex digits + NUL */

struct sha256 {
	uint32_t h[8];
	uint64_t total; /* bytes hashed so far */
	uint8_t block[64];
	size_t used;    /* bytes in block */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_DIGEST_SIZE]);
/* One-shot: hex digest of data, lowercase, NUL-terminated. */
void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_SIZE]);
void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_SIZE],
		   char hex[SHA256_HEX_SIZE]);

#endif
