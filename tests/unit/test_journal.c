/* Unit tests: the ledger's write-ahead journal (agent/journal.c) on real
 * files. Order and release, recovery after the writing process was killed
 * with SIGKILL (nothing appended is lost, nothing released comes back),
 * wrap-around, a full ring that makes appends wait instead of overwrite,
 * many writers at once, and damaged files: torn slots skipped and
 * counted, foreign or resized files refused. */
// link: agent/journal.c agent/util.c vmm/log.c
// libs: -lz -lpthread
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/journal.h"
#include "agent/util.h"

struct fixture {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/ember-test-journal.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/ledger.journal", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	util_rm_tree(AT_FDCWD, f->dir);
	free(f);
	return 0;
}

/* A payload that says which seq it was written as. */
static void payload_of(uint64_t v, uint8_t p[JOURNAL_PAYLOAD])
{
	memset(p, 0, JOURNAL_PAYLOAD);
	memcpy(p, &v, sizeof(v));
	p[JOURNAL_PAYLOAD - 1] = (uint8_t)(v * 7);
}

static uint64_t value_of(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	assert_int_equal(p[JOURNAL_PAYLOAD - 1], (uint8_t)(v * 7));
	return v;
}

static struct journal *open_ok(const char *path, uint32_t cap)
{
	char err[256] = "";
	struct journal *j = journal_open(path, cap, err, sizeof(err));

	if (!j)
		fail_msg("journal_open: %s", err);
	return j;
}

struct collected {
	uint64_t seqs[4096];
	uint64_t values[4096];
	size_t n;
};

static int collect(void *ctx, uint64_t seq, const void *payload)
{
	struct collected *c = ctx;

	assert_true(c->n < 4096);
	c->seqs[c->n] = seq;
	c->values[c->n] = value_of(payload);
	c->n++;
	return 0;
}

static void recover_ok(struct journal *j, uint64_t committed,
		       struct collected *c, size_t *bad)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(journal_recover(j, committed, collect, c, bad), 0);
}

static void test_append_peek_release(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_ok(f->path, 16);
	uint8_t p[JOURNAL_PAYLOAD], out[4 * JOURNAL_PAYLOAD];
	struct collected c;
	uint64_t seq, first;
	size_t bad;

	recover_ok(j, 0, &c, &bad);
	assert_int_equal(c.n, 0);
	assert_int_equal(journal_capacity(j), 16);
	for (uint64_t i = 1; i <= 3; i++) {
		payload_of(100 + i, p);
		journal_append(j, p, sizeof(p), &seq);
		assert_int_equal(seq, i);
	}
	assert_int_equal(journal_peek(j, out, 4, &first), 3);
	assert_int_equal(first, 1);
	assert_int_equal(value_of(out), 101);
	assert_int_equal(value_of(out + 2 * JOURNAL_PAYLOAD), 103);
	/* Peeking again without a release sees the same records. */
	assert_int_equal(journal_peek(j, out, 2, &first), 2);
	assert_int_equal(first, 1);
	journal_release(j, 2);
	assert_int_equal(journal_peek(j, out, 4, &first), 1);
	assert_int_equal(first, 3);
	assert_int_equal(value_of(out), 103);
	journal_release(j, 3);
	assert_int_equal(journal_peek(j, out, 4, &first), 0);
	journal_close(j);
}

/* A child appends records, releases some, and is killed with SIGKILL: the
 * parent finds exactly the unreleased ones. */
static void test_survives_sigkill(void **state)
{
	struct fixture *f = *state;
	struct collected c;
	struct journal *j;
	size_t bad;
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256];
		struct journal *cj = journal_open(f->path, 64, err, sizeof(err));
		struct collected none;
		uint8_t p[JOURNAL_PAYLOAD];
		size_t b;

		if (!cj || journal_recover(cj, 0, collect, &none, &b))
			_exit(3);
		for (uint64_t i = 1; i <= 50; i++) {
			payload_of(1000 + i, p);
			journal_append(cj, p, sizeof(p), NULL);
		}
		journal_release(cj, 20); /* "committed" up to 20 */
		kill(getpid(), SIGKILL);
		_exit(4);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	j = open_ok(f->path, 64);
	recover_ok(j, 20, &c, &bad);
	assert_int_equal(bad, 0);
	assert_int_equal(c.n, 30);
	for (size_t i = 0; i < c.n; i++) {
		assert_int_equal(c.seqs[i], 21 + i);
		assert_int_equal(c.values[i], 1021 + i);
	}
	/* The journal continues after what it held. */
	{
		uint8_t p[JOURNAL_PAYLOAD];
		uint64_t seq;

		payload_of(7, p);
		journal_append(j, p, sizeof(p), &seq);
		assert_int_equal(seq, 51);
	}
	journal_close(j);
}

/* Capacity 16, 40 records released, 10 more pending: the older laps'
 * slots are never mistaken for live ones. */
static void test_wraparound(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_ok(f->path, 16);
	uint8_t p[JOURNAL_PAYLOAD];
	struct collected c;
	size_t bad;

	recover_ok(j, 0, &c, &bad);
	for (uint64_t i = 1; i <= 50; i++) {
		payload_of(i, p);
		journal_append(j, p, sizeof(p), NULL);
		if (i <= 40)
			journal_release(j, i);
	}
	journal_close(j);

	j = open_ok(f->path, 16);
	recover_ok(j, 40, &c, &bad);
	assert_int_equal(bad, 0);
	assert_int_equal(c.n, 10);
	for (size_t i = 0; i < c.n; i++)
		assert_int_equal(c.seqs[i], 41 + i);
	journal_close(j);

	/* A consumer that committed less than it released (its database was
	 * restored from a backup) still gets whatever the ring holds. */
	j = open_ok(f->path, 16);
	recover_ok(j, 30, &c, &bad);
	assert_int_equal(c.n, 16);
	assert_int_equal(c.seqs[0], 35);
	journal_close(j);
}

/* A damaged slot is skipped and counted; the others are recovered. */
static void test_torn_slot(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_ok(f->path, 16);
	uint8_t p[JOURNAL_PAYLOAD];
	struct collected c;
	size_t bad;
	int fd;

	recover_ok(j, 0, &c, &bad);
	for (uint64_t i = 1; i <= 5; i++) {
		payload_of(i, p);
		journal_append(j, p, sizeof(p), NULL);
	}
	journal_close(j);
	/* Flip one payload byte of seq 3 (slot 2) behind the journal's back. */
	fd = open(f->path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 4096 + 2 * JOURNAL_SLOT + 40), 1);
	/* And give slot 4 (seq 5) a seq that belongs elsewhere. */
	{
		uint64_t wrong = 9;

		assert_int_equal(pwrite(fd, &wrong, 8, 4096 + 4 * JOURNAL_SLOT),
				 8);
	}
	close(fd);
	j = open_ok(f->path, 16);
	recover_ok(j, 0, &c, &bad);
	assert_int_equal(bad, 2);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.seqs[0], 1);
	assert_int_equal(c.seqs[1], 2);
	assert_int_equal(c.seqs[2], 4);
	journal_close(j);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void test_foreign_files_refused(void **state)
{
	struct fixture *f = *state;
	char err[256];
	struct journal *j;
	uint8_t page[8192];

	/* Not a journal at all. */
	memset(page, 'a', sizeof(page));
	write_file(f->path, page, sizeof(page));
	err[0] = '\0';
	assert_null(journal_open(f->path, 16, err, sizeof(err)));
	assert_non_null(strstr(err, "not an Ember ledger journal"));

	/* Empty. */
	write_file(f->path, page, 0);
	assert_null(journal_open(f->path, 16, err, sizeof(err)));

	/* A real journal cut short. */
	unlink(f->path);
	j = open_ok(f->path, 16);
	journal_close(j);
	assert_int_equal(truncate(f->path, 4096 + 3 * JOURNAL_SLOT), 0);
	err[0] = '\0';
	assert_null(journal_open(f->path, 16, err, sizeof(err)));
	assert_non_null(strstr(err, "expected"));

	/* A header claiming a capacity that is not a power of two. */
	unlink(f->path);
	j = open_ok(f->path, 16);
	journal_close(j);
	{
		int fd = open(f->path, O_RDWR);
		uint32_t cap = 17;

		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, &cap, 4, 16), 4);
		close(fd);
	}
	err[0] = '\0';
	assert_null(journal_open(f->path, 16, err, sizeof(err)));
	assert_non_null(strstr(err, "unsupported"));

	/* A symlink is not followed. */
	unlink(f->path);
	assert_int_equal(symlink("/etc/passwd", f->path), 0);
	assert_null(journal_open(f->path, 16, err, sizeof(err)));
}

struct consumer {
	struct journal *j;
	uint64_t want;
	uint64_t got, bad_order;
	unsigned delay_us;
};

static void *consume(void *arg)
{
	struct consumer *c = arg;
	uint8_t *buf = malloc(64 * JOURNAL_PAYLOAD);
	uint64_t expect = 1;

	while (c->got < c->want) {
		uint64_t first;
		size_t n = journal_peek(c->j, buf, 64, &first);

		if (!n) {
			usleep(100);
			continue;
		}
		if (first != expect)
			c->bad_order++;
		expect = first + n;
		c->got += n;
		if (c->delay_us)
			usleep(c->delay_us);
		journal_release(c->j, first + n - 1);
	}
	free(buf);
	return NULL;
}

/* Appends beyond a full ring wait for the consumer; none is lost. */
static void test_full_ring_waits(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_ok(f->path, 16);
	struct consumer c = { .j = j, .want = 200, .delay_us = 2000 };
	struct journal_stats st;
	uint8_t p[JOURNAL_PAYLOAD];
	struct collected none;
	pthread_t t;
	size_t bad;

	recover_ok(j, 0, &none, &bad);
	assert_int_equal(pthread_create(&t, NULL, consume, &c), 0);
	for (uint64_t i = 1; i <= 200; i++) {
		payload_of(i, p);
		journal_append(j, p, sizeof(p), NULL);
	}
	pthread_join(t, NULL);
	journal_stats(j, &st);
	assert_int_equal(c.got, 200);
	assert_int_equal(c.bad_order, 0);
	assert_int_equal(st.appended, 200);
	assert_int_equal(st.released, 200);
	assert_true(st.stalls > 0);
	journal_close(j);
}

struct writer {
	struct journal *j;
	unsigned n;
};

static void *write_many(void *arg)
{
	struct writer *w = arg;
	uint8_t p[JOURNAL_PAYLOAD];

	for (unsigned i = 0; i < w->n; i++) {
		payload_of(i, p);
		journal_append(w->j, p, sizeof(p), NULL);
	}
	return NULL;
}

/* Four writers and one consumer: every record delivered once, in seq
 * order. */
static void test_many_writers(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_ok(f->path, 256);
	struct writer w = { .j = j, .n = 5000 };
	struct consumer c = { .j = j, .want = 4 * 5000 };
	struct collected none;
	pthread_t wt[4], ct;
	size_t bad;

	recover_ok(j, 0, &none, &bad);
	assert_int_equal(pthread_create(&ct, NULL, consume, &c), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&wt[i], NULL, write_many, &w),
				 0);
	for (int i = 0; i < 4; i++)
		pthread_join(wt[i], NULL);
	pthread_join(ct, NULL);
	assert_int_equal(c.got, 20000);
	assert_int_equal(c.bad_order, 0);
	journal_close(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_peek_release, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_survives_sigkill, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wraparound, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_torn_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_files_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_ring_waits, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_many_writers, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
