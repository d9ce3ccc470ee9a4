/* libFuzzer target: the ledger journal read back after a crash
 * (agent/journal.c). The input becomes a journal file: either as it is
 * (the header is fuzzed too) or, when its first byte is even, after a
 * valid header for 16 slots (the slots are fuzzed). journal_open() must
 * refuse or accept without crashing; journal_recover() must hand over
 * records in strictly increasing seq order, all above the committed mark
 * taken from the input, each at its own slot. */
// link: agent/journal.c agent/util.c vmm/log.c
// libs: -lz -lpthread
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	uint64_t committed, last;
	size_t n;
	unsigned sum;
};

static int on_record(void *ctx, uint64_t seq, const void *payload)
{
	struct seen *s = ctx;
	uint8_t sum = 0;

	if (seq <= s->committed || seq <= s->last)
		abort();
	for (size_t i = 0; i < JOURNAL_PAYLOAD; i++)
		sum += ((const uint8_t *)payload)[i]; /* all readable */
	s->sum += sum;
	s->last = seq;
	s->n++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct seen s = { 0 };
	struct journal *j;
	char err[256];
	size_t bad;
	int fd;

	if (!path[0])
		snprintf(path, sizeof(path), "/tmp/fuzz-journal.%d",
			 (int)getpid());
	if (!size)
		return 0;
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return 0;
	if (!(data[0] & 1)) {
		/* A valid header for 16 slots, then the input as slots. */
		uint8_t hdr[4096] = "EMBERJNL";
		uint32_t v[3] = { 1, JOURNAL_SLOT, 16 };
		uint8_t slots[16 * JOURNAL_SLOT] = { 0 };

		memcpy(hdr + 8, v, sizeof(v));
		memcpy(slots, data + 1,
		       size - 1 < sizeof(slots) ? size - 1 : sizeof(slots));
		if (write(fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr) ||
		    write(fd, slots, sizeof(slots)) != (ssize_t)sizeof(slots)) {
			close(fd);
			return 0;
		}
		s.committed = size > 9 ? data[size - 1] : 0;
	} else if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	close(fd);
	j = journal_open(path, 16, err, sizeof(err));
	if (j) {
		if (journal_recover(j, s.committed, on_record, &s, &bad) ||
		    s.n + bad > journal_capacity(j))
			abort();
		journal_close(j);
	}
	unlink(path);
	return 0;
}
