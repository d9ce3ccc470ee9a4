/*
 * random.c - getrandom() and AT_RANDOM: a ChaCha20 generator (RFC 8439 block
 * function) keyed from the host's 256-bit boot_info.seed, with fast key
 * erasure: after each request the first 32 bytes of a fresh block become the
 * new key, so earlier output cannot be recomputed from a later state.
 * A restored snapshot must get a fresh seed from the host before its first
 * request (see docs/micro-guest.md: "clones").
 */
#include "kernel.h"

static uint32_t key[8];
static uint64_t counter;

static inline uint32_t rotl(uint32_t v, int n)
{
	return (v << n) | (v >> (32 - n));
}

#define QR(a, b, c, d)                                                        \
	a += b, d ^= a, d = rotl(d, 16), c += d, b ^= c, b = rotl(b, 12),     \
	a += b, d ^= a, d = rotl(d, 8), c += d, b ^= c, b = rotl(b, 7)

static void chacha_block(uint32_t out[16])
{
	uint32_t x[16] = {
		0x61707865, 0x3320646e, 0x79622d32, 0x6b206574, /* constant */
		key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
		(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0,
	};
	uint32_t in[16];

	memcpy(in, x, sizeof(in));
	for (int i = 0; i < 10; i++) {
		QR(x[0], x[4], x[8], x[12]);
		QR(x[1], x[5], x[9], x[13]);
		QR(x[2], x[6], x[10], x[14]);
		QR(x[3], x[7], x[11], x[15]);
		QR(x[0], x[5], x[10], x[15]);
		QR(x[1], x[6], x[11], x[12]);
		QR(x[2], x[7], x[8], x[13]);
		QR(x[3], x[4], x[9], x[14]);
	}
	for (int i = 0; i < 16; i++)
		out[i] = x[i] + in[i];
	counter++;
}

void random_init(const uint64_t seed[4])
{
	memcpy(key, seed, sizeof(key));
	counter = rdtsc(); /* a nonce; the secret is the key */
}

/* A new clone: mix the host's fresh seed into the key, so clones of one
 * snapshot never share a stream. */
void random_reseed(const uint64_t seed[4])
{
	uint32_t fresh[8];

	memcpy(fresh, seed, sizeof(fresh));
	for (int i = 0; i < 8; i++)
		key[i] ^= fresh[i];
	counter = rdtsc();
	random_bytes(fresh, 0); /* stir: one block, key erasure */
}

void random_bytes(void *buf, size_t len)
{
	micro_check_clone();
	uint32_t blk[16];
	uint8_t *p = buf;

	while (len) {
		size_t n = MIN(len, sizeof(blk));

		chacha_block(blk);
		memcpy(p, blk, n);
		p += n;
		len -= n;
	}
	chacha_block(blk);
	memcpy(key, blk, sizeof(key)); /* key erasure */
	memset(blk, 0, sizeof(blk));
}
