/*
 * journal.c - the ledger's write-ahead journal: see journal.h.
 *
 * Appends reserve a sequence number with one atomic add, copy the record
 * into its slot and publish it by storing the slot's seq last (a release
 * store: whoever sees the seq sees the payload). The consumer reads slots
 * in seq order and stops at the first one not yet published. Room in the
 * ring is what the consumer has released; an append that would overwrite
 * an unreleased slot waits on a condition variable (the only lock here,
 * taken only when the ring is full and at each release).
 */
#define LOG_MOD "journal"

#include "agent/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "log.h"

#define JOURNAL_MAGIC "EMBERJNL"
#define JOURNAL_LAYOUT 1
#define JOURNAL_HDR_SIZE 4096

struct journal_hdr {
	char magic[8];
	uint32_t layout;
	uint32_t slot_size;
	uint32_t capacity;
	uint32_t reserved;
};

struct journal_slot {
	_Atomic uint64_t seq;
	uint32_t crc;
	uint32_t len;
	uint8_t payload[JOURNAL_PAYLOAD];
};

_Static_assert(sizeof(struct journal_slot) == JOURNAL_SLOT,
	       "a slot is JOURNAL_SLOT bytes");

struct journal {
	int fd;
	void *map;
	size_t map_len;
	struct journal_slot *slots;
	uint32_t cap, mask;
	_Atomic uint64_t head;   /* last seq handed out */
	_Atomic uint64_t tail;   /* last seq released */
	_Atomic uint64_t stalls;
	pthread_mutex_t lock;
	pthread_cond_t room;
	unsigned waiters;        /* appends waiting for room (lock held) */
};

static uint32_t slot_crc(uint64_t seq, const uint8_t *payload, uint32_t len)
{
	uint32_t c = (uint32_t)crc32(0L, (const Bytef *)&seq, sizeof(seq));

	return (uint32_t)crc32(c, payload, len);
}

static uint32_t round_pow2(uint32_t n)
{
	uint32_t p = JOURNAL_MIN_CAPACITY;

	while (p < n && p < JOURNAL_MAX_CAPACITY)
		p <<= 1;
	return p;
}

/* Writes a fresh journal file of `cap` slots at path (through a temporary
 * name, so that a crash never leaves a half-made header behind). */
static int journal_create(const char *path, uint32_t cap, char *err,
			  size_t errlen)
{
	struct journal_hdr h = { .layout = JOURNAL_LAYOUT,
				 .slot_size = JOURNAL_SLOT,
				 .capacity = cap };
	char tmp[4096];
	off_t size = JOURNAL_HDR_SIZE + (off_t)cap * JOURNAL_SLOT;
	int fd, ret;

	memcpy(h.magic, JOURNAL_MAGIC, sizeof(h.magic));
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", path) >= sizeof(tmp))
		return errbuf_fail(err, errlen, -ENAMETOOLONG,
				   "%s: path too long", path);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return errbuf_fail(err, errlen, -errno, "%s: %s", tmp,
				   strerror(errno));
	/* Blocks are allocated now: a store into a mapped hole of a full file
	 * system would be SIGBUS later, on the invoke path. */
	ret = posix_fallocate(fd, 0, size);
	if (ret) {
		errbuf_fail(err, errlen, -ret, "%s: allocating %lld bytes: %s",
			    tmp, (long long)size, strerror(ret));
		ret = -ret;
		goto err_unlink;
	}
	if (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || fsync(fd)) {
		ret = errbuf_fail(err, errlen, -EIO, "%s: writing the header: %s",
				  tmp, strerror(errno));
		goto err_unlink;
	}
	if (rename(tmp, path)) {
		ret = errbuf_fail(err, errlen, -errno, "%s: %s", path,
				  strerror(errno));
		goto err_unlink;
	}
	close(fd);
	return 0;

err_unlink:
	unlink(tmp);
	close(fd);
	return ret;
}

struct journal *journal_open(const char *path, uint32_t capacity, char *err,
			     size_t errlen)
{
	struct journal_hdr h;
	struct journal *j;
	struct stat st;
	int fd;

	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		if (journal_create(path, round_pow2(capacity), err, errlen))
			return NULL;
		fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0) {
		errbuf_fail(err, errlen, -errno, "%s: %s", path,
			    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    memcmp(h.magic, JOURNAL_MAGIC, sizeof(h.magic))) {
		errbuf_fail(err, errlen, -EINVAL,
			    "%s is not an Ember ledger journal (move it away "
			    "to start a new one)", path);
		goto err_close;
	}
	if (h.layout != JOURNAL_LAYOUT || h.slot_size != JOURNAL_SLOT ||
	    h.capacity < JOURNAL_MIN_CAPACITY ||
	    h.capacity > JOURNAL_MAX_CAPACITY ||
	    (h.capacity & (h.capacity - 1))) {
		errbuf_fail(err, errlen, -EINVAL,
			    "%s: unsupported journal layout %u (slot %u, "
			    "capacity %u)", path, h.layout, h.slot_size,
			    h.capacity);
		goto err_close;
	}
	if (st.st_size != JOURNAL_HDR_SIZE + (off_t)h.capacity * JOURNAL_SLOT) {
		errbuf_fail(err, errlen, -EINVAL,
			    "%s: %lld bytes, expected %lld for %u slots", path,
			    (long long)st.st_size,
			    (long long)(JOURNAL_HDR_SIZE +
					(off_t)h.capacity * JOURNAL_SLOT),
			    h.capacity);
		goto err_close;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		goto err_close;
	}
	j->fd = fd;
	j->cap = h.capacity;
	j->mask = h.capacity - 1;
	j->map_len = (size_t)st.st_size;
	j->map = mmap(NULL, j->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		      0);
	if (j->map == MAP_FAILED) {
		errbuf_fail(err, errlen, -errno, "%s: mmap: %s", path,
			    strerror(errno));
		free(j);
		goto err_close;
	}
	j->slots = (struct journal_slot *)((char *)j->map + JOURNAL_HDR_SIZE);
	/* Fault every page in now, writable: a first write into a page of a
	 * shared file mapping costs a fault (microseconds in a VM), which
	 * would otherwise land on every 16th invocation of the first lap.
	 * Best effort: older kernels lack MADV_POPULATE_WRITE (5.14). */
#ifdef MADV_POPULATE_WRITE
	madvise(j->map, j->map_len, MADV_POPULATE_WRITE);
#endif
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->room, NULL);
	return j;

err_close:
	close(fd);
	return NULL;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	/* The mapping's pages are the page cache's already; msync makes them
	 * durable on disk too, as a clean shutdown should. */
	msync(j->map, j->map_len, MS_SYNC);
	munmap(j->map, j->map_len);
	close(j->fd);
	pthread_cond_destroy(&j->room);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

uint32_t journal_capacity(const struct journal *j)
{
	return j->cap;
}

struct found {
	uint64_t seq;
	uint32_t idx;
};

static int found_cmp(const void *a, const void *b)
{
	const struct found *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int journal_recover(struct journal *j, uint64_t committed,
		    int (*fn)(void *ctx, uint64_t seq, const void *payload),
		    void *ctx, size_t *bad)
{
	struct found *f;
	size_t n = 0;
	uint64_t last = committed;
	int ret = 0;

	*bad = 0;
	f = malloc(sizeof(*f) * j->cap);
	if (!f)
		return -ENOMEM;
	for (uint32_t i = 0; i < j->cap; i++) {
		struct journal_slot *s = &j->slots[i];
		uint64_t seq = atomic_load_explicit(&s->seq,
						    memory_order_acquire);

		if (seq <= committed)
			continue; /* empty, or already made durable */
		/* A live slot holds its own seq at its own place, the whole
		 * payload, and a matching checksum; anything else is a torn
		 * or damaged slot. */
		if (((seq - 1) & j->mask) != i || s->len != JOURNAL_PAYLOAD ||
		    s->crc != slot_crc(seq, s->payload, s->len)) {
			(*bad)++;
			continue;
		}
		f[n].seq = seq;
		f[n].idx = i;
		n++;
	}
	qsort(f, n, sizeof(*f), found_cmp);
	for (size_t k = 0; k < n && !ret; k++) {
		ret = fn(ctx, f[k].seq, j->slots[f[k].idx].payload);
		last = f[k].seq;
	}
	free(f);
	if (ret)
		return ret;
	atomic_store(&j->head, last);
	atomic_store(&j->tail, last);
	return 0;
}

void journal_append(struct journal *j, const void *payload, size_t len,
		    uint64_t *seq_out)
{
	uint64_t seq = atomic_fetch_add(&j->head, 1) + 1;
	struct journal_slot *s;

	if (seq - atomic_load_explicit(&j->tail, memory_order_acquire) >
	    j->cap) {
		/* The consumer is behind by a whole ring (SQLite stalled):
		 * wait rather than overwrite a record not yet durable. */
		atomic_fetch_add(&j->stalls, 1);
		pthread_mutex_lock(&j->lock);
		j->waiters++;
		while (seq - atomic_load(&j->tail) > j->cap)
			pthread_cond_wait(&j->room, &j->lock);
		j->waiters--;
		pthread_mutex_unlock(&j->lock);
	}
	if (len > JOURNAL_PAYLOAD)
		len = JOURNAL_PAYLOAD; /* callers' records are fixed-size */
	s = &j->slots[(seq - 1) & j->mask];
	memcpy(s->payload, payload, len);
	memset(s->payload + len, 0, JOURNAL_PAYLOAD - len);
	s->len = JOURNAL_PAYLOAD;
	s->crc = slot_crc(seq, s->payload, JOURNAL_PAYLOAD);
	atomic_store_explicit(&s->seq, seq, memory_order_release);
	if (seq_out)
		*seq_out = seq;
}

size_t journal_peek(struct journal *j, void *out, size_t max, uint64_t *first)
{
	uint64_t next = atomic_load(&j->tail) + 1;
	uint8_t *o = out;
	size_t n;

	*first = next;
	for (n = 0; n < max; n++) {
		struct journal_slot *s = &j->slots[(next + n - 1) & j->mask];

		if (atomic_load_explicit(&s->seq, memory_order_acquire) !=
		    next + n)
			break;
		memcpy(o + n * JOURNAL_PAYLOAD, s->payload, JOURNAL_PAYLOAD);
	}
	return n;
}

void journal_release(struct journal *j, uint64_t seq)
{
	pthread_mutex_lock(&j->lock);
	if (seq > atomic_load(&j->tail))
		atomic_store_explicit(&j->tail, seq, memory_order_release);
	if (j->waiters)
		pthread_cond_broadcast(&j->room);
	pthread_mutex_unlock(&j->lock);
}

void journal_stats(struct journal *j, struct journal_stats *st)
{
	st->appended = atomic_load(&j->head);
	st->released = atomic_load(&j->tail);
	st->stalls = atomic_load(&j->stalls);
}
