/*
 * journal.h - the ledger's write-ahead journal: a ring of fixed-size
 * records in a memory-mapped file, so that an invocation's record survives
 * any crash of emberd from the moment its answer is handed over.
 *
 * Owns: the file (STATE/ledger.journal), its layout and checks, the order
 * of records (a sequence number per record, 1, 2, 3, ...) and the room in
 * the ring. A record is opaque bytes here (JOURNAL_PAYLOAD of them); the
 * ledger (ledger.c) defines what they mean.
 *
 * Why a mapped ring and not write(2) or SQLite on the invoke path: a store
 * into a MAP_SHARED page is in the page cache the moment it is made, and
 * the page cache outlives the process (kill -9, a crash, an abort), so a
 * record appended before the answer is sent cannot be lost by anything
 * short of the machine itself going down. It costs a copy of 256 bytes and
 * two atomic operations, no system call; the SQLite commit (an fsync) is
 * batched off the critical path by the ledger thread. A power loss may lose
 * the records appended since the last batch commit (ledger_batch_ms), the
 * same window the kernel's dirty-page writeback leaves; docs/metering.md.
 *
 * File layout (host byte order: the file never leaves the machine):
 *   offset 0     header: magic "EMBERJNL", layout version, slot size,
 *                capacity (a power of two), then zeros up to 4096
 *   offset 4096  capacity slots of JOURNAL_SLOT bytes:
 *                  u64 seq   (0: never written; written last)
 *                  u32 crc   (CRC-32 of the payload and seq)
 *                  u32 len   (JOURNAL_PAYLOAD)
 *                  payload
 * Record seq lives in slot (seq - 1) % capacity. A slot is valid when its
 * crc matches; a slot of an older lap has a smaller seq than the one that
 * would overwrite it, so stale slots are told from live ones by seq alone.
 *
 * Threads: journal_append() from any thread (many at once); journal_peek()
 * and journal_release() from one consumer thread; the rest at start and at
 * the end, with no other thread running.
 */
#ifndef EMBER_AGENT_JOURNAL_H
#define EMBER_AGENT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOURNAL_SLOT 256
#define JOURNAL_PAYLOAD (JOURNAL_SLOT - 16)
#define JOURNAL_MIN_CAPACITY 16
#define JOURNAL_MAX_CAPACITY (1u << 20)

struct journal;

/* Opens the journal at path, creating it (capacity slots, rounded up to a
 * power of two) if missing. An existing file keeps its own capacity; one
 * whose header is not a journal's, or of another layout, is refused
 * (NULL, a one-line reason in err): emberd will not overwrite what it
 * cannot read. */
struct journal *journal_open(const char *path, uint32_t capacity, char *err,
			     size_t errlen);
void journal_close(struct journal *j);
uint32_t journal_capacity(const struct journal *j);

/*
 * Recovery, before any append: calls fn(ctx, seq, payload) for every valid
 * record whose seq is above `committed` (the last seq the consumer made
 * durable elsewhere), in seq order; *bad receives the number of slots whose
 * checksum failed (skipped). Then the journal continues after the highest
 * seq seen (or `committed`). fn returning nonzero stops the recovery and is
 * returned. 0 or -errno.
 */
int journal_recover(struct journal *j, uint64_t committed,
		    int (*fn)(void *ctx, uint64_t seq, const void *payload),
		    void *ctx, size_t *bad);

/*
 * Appends one record (len <= JOURNAL_PAYLOAD bytes; the rest of the slot is
 * zeroed). When the ring is full it waits for the consumer to release room
 * (counted in journal_stats.stalls). *seq (may be NULL) receives the
 * record's sequence number. Once it returns the record survives a crash of
 * the process.
 */
void journal_append(struct journal *j, const void *payload, size_t len,
		    uint64_t *seq);

/* Consumer: copies up to max consecutive published records, starting with
 * the oldest not yet released, into out[] (JOURNAL_PAYLOAD bytes each);
 * *first receives the seq of out[0]. Returns how many. */
size_t journal_peek(struct journal *j, void *out, size_t max,
		    uint64_t *first);

/* Consumer: every record up to and including seq is durable elsewhere; its
 * slot may be reused. */
void journal_release(struct journal *j, uint64_t seq);

struct journal_stats {
	uint64_t appended;  /* last seq handed out */
	uint64_t released;  /* last seq released */
	uint64_t stalls;    /* appends that waited for room */
};
void journal_stats(struct journal *j, struct journal_stats *st);

#endif
