/*
 * ledger.c - the usage ledger and the invocation logs: see ledger.h.
 *
 * The ledger thread wakes every batch_ms (or at once when a query waits in
 * ledger_sync), takes the journal's published records and the queued logs,
 * and commits them in one transaction that also moves ledger_state's
 * journal_seq; only then does it release the records' journal slots. A
 * crash before the COMMIT leaves the records in the journal and the
 * watermark where it was, so the next start replays them; a crash after it
 * leaves them committed and the watermark past them. Either way each
 * record is in the table once: its row id is its journal seq, so INSERT
 * OR IGNORE drops a replay of a committed row even if the watermark were
 * lost.
 */
#define LOG_MOD "ledger"

#include "agent/ledger.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/journal.h"
#include "agent/list.h"
#include "agent/utf8.h"
#include "log.h"

_Static_assert(sizeof(struct ledger_rec) <= JOURNAL_PAYLOAD,
	       "a ledger record fits a journal slot");

#define US_PER_HOUR 3600000000LL
#define US_PER_DAY 86400000000LL
/* Expired logs are deleted every minute, or every half retention period
 * when that is shorter (at least every second). */
#define RETENTION_EVERY_NS (60ull * 1000000000ull)
#define RETRY_MAX_MS 2000

static const char *const outcome_names[LEDGER_NR_OUTCOMES] = {
	[LEDGER_OK] = "ok",
	[LEDGER_ERROR] = "error",
	[LEDGER_TIMEOUT] = "timeout",
	[LEDGER_CRASH] = "crash",
	[LEDGER_THROTTLED] = "throttled",
	[LEDGER_REJECTED] = "rejected",
};

const char *ledger_outcome_name(enum ledger_outcome o)
{
	return (unsigned)o < LEDGER_NR_OUTCOMES ? outcome_names[o] : "unknown";
}

int ledger_outcome_parse(const char *name)
{
	for (int i = 0; i < LEDGER_NR_OUTCOMES; i++)
		if (!strcmp(name, outcome_names[i]))
			return i;
	return -1;
}

enum wstmt {
	W_INSERT,
	W_WATERMARK,
	W_LOG_INSERT,
	W_LOG_USAGE_ADD,
	W_LOG_TRIM,
	W_LOG_USAGE_SET,
	W_LOG_EXPIRE,
	W_LOG_USAGE_RECOUNT,
	NR_WSTMTS
};

#define LOG_BYTES_OF(fn) \
	"(select coalesce(sum(length(cast(text as blob))), 0) from logs " \
	"where function_id = " fn ")"

static const char *const wstmt_sql[NR_WSTMTS] = {
	[W_INSERT] = "insert or ignore into invocations(request_id, tenant_id, "
		     "tenant, function_id, function, version, start_us, "
		     "duration_ns, billed_ms, memory_mib, cold, init_ns, "
		     "queued_ns, outcome, bytes_in, bytes_out, id) values (?1, "
		     "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
		     "?15, ?16, ?17)",
	[W_WATERMARK] = "update ledger_state set journal_seq = ?1 where id = 1",
	[W_LOG_INSERT] = "insert into logs(tenant_id, function_id, request_id, "
			 "at_us, truncated, text) values (?1, ?2, ?3, ?4, ?5, "
			 "?6)",
	[W_LOG_USAGE_ADD] = "insert into log_usage(function_id, bytes) values "
			    "(?1, ?2) on conflict(function_id) do update set "
			    "bytes = bytes + ?2 returning bytes",
	/* The oldest entries of function ?1 whose bytes add up to ?2. */
	[W_LOG_TRIM] = "delete from logs where function_id = ?1 and id <= "
		       "(select id from (select id, sum(length(cast(text as "
		       "blob))) over (order by id) as run from logs where "
		       "function_id = ?1) where run >= ?2 order by id limit 1)",
	[W_LOG_USAGE_SET] = "update log_usage set bytes = " LOG_BYTES_OF("?1")
			    " where function_id = ?1",
	[W_LOG_EXPIRE] = "delete from logs where at_us < ?1",
	[W_LOG_USAGE_RECOUNT] = "update log_usage set bytes = "
				LOG_BYTES_OF("log_usage.function_id"),
};

struct queued_log {
	struct list_node node;
	int64_t tenant_id, fn_id, at_us;
	uint64_t request_id;
	bool truncated;
	size_t len;
	char text[];
};

struct ledger {
	struct ledger_config cfg;
	struct journal *j;
	sqlite3 *w;                 /* the ledger thread's */
	sqlite3_stmt *ws[NR_WSTMTS];
	sqlite3 *r;                 /* queries, under rlock */
	pthread_mutex_t rlock;

	pthread_t thread;
	pthread_mutex_t lock;       /* everything below */
	pthread_cond_t wake;        /* the thread: work or stop */
	pthread_cond_t synced;      /* ledger_sync waiters */
	bool stop;
	unsigned sync_waiters;
	uint64_t committed;         /* last journal seq committed */
	struct list_node logs;      /* struct queued_log, FIFO */
	uint64_t logs_bytes;
	struct ledger_stats st;
};

/* ---------------------------------------------------------------------
 * SQLite plumbing
 */

static int sql_open(const char *path, bool writer, sqlite3 **out, char *err,
		    size_t errlen)
{
	sqlite3 *c = NULL;
	int rc = sqlite3_open_v2(path, &c,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
				 NULL);

	if (rc != SQLITE_OK)
		goto err;
	sqlite3_extended_result_codes(c, 1);
	sqlite3_busy_timeout(c, 5000);
	/* WAL was set by db_open (it is persistent); synchronous is per
	 * connection: FULL, so a committed batch survives the machine. */
	rc = sqlite3_exec(c, writer ? "pragma synchronous = full" :
				      "pragma query_only = on",
			  NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto err;
	*out = c;
	return 0;
err:
	errbuf_fail(err, errlen, -EIO, "%s: %s", path,
		    c ? sqlite3_errmsg(c) : sqlite3_errstr(rc));
	sqlite3_close(c);
	return -EIO;
}

static int wexec(struct ledger *l, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(l->w, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_warn_rl("%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

static sqlite3_stmt *wstmt(struct ledger *l, enum wstmt id)
{
	if (!l->ws[id] &&
	    sqlite3_prepare_v3(l->w, wstmt_sql[id], -1,
			       SQLITE_PREPARE_PERSISTENT, &l->ws[id],
			       NULL) != SQLITE_OK) {
		log_err("preparing ledger statement %d: %s", (int)id,
			sqlite3_errmsg(l->w));
		return NULL;
	}
	return l->ws[id];
}

/* Steps s to its end and resets it: 0 or -EIO. */
static int wstep(struct ledger *l, sqlite3_stmt *s)
{
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE) {
		log_warn_rl("ledger statement failed: %s", sqlite3_errmsg(l->w));
		return -EIO;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * Writing
 */

/* Row id = journal seq: see the schema's comment. */
static int insert_rec(struct ledger *l, uint64_t seq,
		      const struct ledger_rec *r, bool *inserted)
{
	sqlite3_stmt *s = wstmt(l, W_INSERT);
	int ret;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)r->request_id);
	sqlite3_bind_int64(s, 2, r->tenant_id);
	sqlite3_bind_text(s, 3, r->tenant, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, r->fn_id);
	sqlite3_bind_text(s, 5, r->function, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, r->version);
	sqlite3_bind_int64(s, 7, r->start_us);
	sqlite3_bind_int64(s, 8, (int64_t)r->duration_ns);
	sqlite3_bind_int64(s, 9, r->billed_ms);
	sqlite3_bind_int64(s, 10, r->memory_mib);
	sqlite3_bind_int(s, 11, r->cold ? 1 : 0);
	sqlite3_bind_int64(s, 12, (int64_t)r->init_ns);
	sqlite3_bind_int64(s, 13, (int64_t)r->queued_ns);
	sqlite3_bind_text(s, 14, ledger_outcome_name(r->outcome), -1,
			  SQLITE_STATIC);
	sqlite3_bind_int64(s, 15, (int64_t)r->bytes_in);
	sqlite3_bind_int64(s, 16, (int64_t)r->bytes_out);
	sqlite3_bind_int64(s, 17, (int64_t)seq);
	ret = wstep(l, s);
	if (!ret && inserted)
		*inserted = sqlite3_changes(l->w) > 0;
	return ret;
}

static int set_watermark(struct ledger *l, uint64_t seq)
{
	sqlite3_stmt *s = wstmt(l, W_WATERMARK);

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)seq);
	return wstep(l, s);
}

/* A record read back from the journal is checked like any file input: a
 * damaged one is skipped (and counted), never inserted. */
static bool rec_valid(const struct ledger_rec *r)
{
	size_t tl = strnlen(r->tenant, sizeof(r->tenant));
	size_t fl = strnlen(r->function, sizeof(r->function));

	return r->request_id && r->tenant_id > 0 && r->fn_id > 0 &&
	       r->outcome < LEDGER_NR_OUTCOMES && r->cold <= 1 &&
	       tl < sizeof(r->tenant) && util_name_valid(r->tenant, tl) &&
	       fl < sizeof(r->function) && util_name_valid(r->function, fl);
}

/* Logs of one function over the per-function bound lose their oldest
 * entries, down to 3/4 of the bound (so trimming is not every batch). */
static int log_account(struct ledger *l, int64_t fn_id, int64_t added)
{
	sqlite3_stmt *s = wstmt(l, W_LOG_USAGE_ADD);
	int64_t total = 0;
	int rc;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, fn_id);
	sqlite3_bind_int64(s, 2, added);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		total = sqlite3_column_int64(s, 0);
	if (wstep(l, s))
		return -EIO;
	if ((uint64_t)total <= l->cfg.logs_per_function)
		return 0;
	s = wstmt(l, W_LOG_TRIM);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, fn_id);
	sqlite3_bind_int64(s, 2,
			   total - (int64_t)(l->cfg.logs_per_function / 4 * 3));
	if (wstep(l, s))
		return -EIO;
	s = wstmt(l, W_LOG_USAGE_SET);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, fn_id);
	return wstep(l, s);
}

/* The text is cleaned here, on the ledger thread, not on the invocation's
 * path: ledger_add_log() only copies it. */
static int insert_log(struct ledger *l, const struct queued_log *q)
{
	sqlite3_stmt *s = wstmt(l, W_LOG_INSERT);
	char *clean = malloc(3 * q->len + 1);
	size_t n;
	int ret = -EIO;

	if (!clean)
		return -ENOMEM;
	n = utf8_clean(clean, (const uint8_t *)q->text, q->len);
	if (!s)
		goto out;
	sqlite3_bind_int64(s, 1, q->tenant_id);
	sqlite3_bind_int64(s, 2, q->fn_id);
	sqlite3_bind_int64(s, 3, (int64_t)q->request_id);
	sqlite3_bind_int64(s, 4, q->at_us);
	sqlite3_bind_int(s, 5, q->truncated);
	sqlite3_bind_text(s, 6, clean, (int)n, SQLITE_STATIC);
	if (!wstep(l, s))
		ret = log_account(l, q->fn_id, (int64_t)n);
out:
	free(clean);
	return ret;
}

/* CPU time of the calling thread (the ledger thread's own cost, which a
 * loaded machine's wall clock would inflate). */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One batch: n journal records from seq `first` on, and the logs. */
static int commit_batch(struct ledger *l, const uint8_t *recs, size_t n,
			uint64_t first, struct list_node *logs)
{
	struct list_node *node, *tmp;
	uint64_t t0 = util_now_ns(), c0 = thread_cpu_ns();
	int ret;

	if (wexec(l, "begin immediate"))
		return -EIO;
	for (size_t i = 0; i < n; i++) {
		struct ledger_rec r;

		memcpy(&r, recs + i * JOURNAL_PAYLOAD, sizeof(r));
		if (!rec_valid(&r)) {
			/* Our own process wrote it this run: a bug, say so. */
			log_warn_rl("journal record %llu is invalid; skipped",
				    (unsigned long long)(first + i));
			l->st.journal_bad++;
			continue;
		}
		ret = insert_rec(l, first + i, &r, NULL);
		if (ret)
			goto err_rollback;
	}
	if (n && (ret = set_watermark(l, first + n - 1)))
		goto err_rollback;
	list_for_each_safe(node, tmp, logs) {
		ret = insert_log(l, container_of(node, struct queued_log, node));
		if (ret)
			goto err_rollback;
	}
	ret = wexec(l, "commit");
	if (ret)
		goto err_rollback;
	l->st.commit_ns_total += util_now_ns() - t0;
	l->st.commit_cpu_ns_total += thread_cpu_ns() - c0;
	return 0;

err_rollback:
	wexec(l, "rollback");
	return ret;
}

static void expire_logs(struct ledger *l)
{
	struct timespec now;
	sqlite3_stmt *s = wstmt(l, W_LOG_EXPIRE);
	int64_t cut;

	if (!s || !l->cfg.logs_retention_s)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	cut = ((int64_t)now.tv_sec - l->cfg.logs_retention_s) * 1000000LL;
	if (wexec(l, "begin immediate"))
		return;
	sqlite3_bind_int64(s, 1, cut);
	if (wstep(l, s))
		goto rollback;
	if (sqlite3_changes(l->w) > 0) {
		s = wstmt(l, W_LOG_USAGE_RECOUNT);
		if (!s || wstep(l, s))
			goto rollback;
	}
	if (!wexec(l, "commit"))
		return;
rollback:
	wexec(l, "rollback");
}

static void free_logs(struct list_node *logs)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, logs) {
		list_del(n);
		free(container_of(n, struct queued_log, node));
	}
}

/* Moves every node of src to the end of dst. */
static void logs_move(struct list_node *dst, struct list_node *src)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, src) {
		list_del(n);
		list_append(dst, n);
	}
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/*
 * The ledger thread. Each round: wait for batch_ms (less when a batch was
 * full or a query waits in ledger_sync), take the published journal
 * records and the queued logs, commit them in one transaction, release the
 * records' slots. A failed commit keeps both for the next round, with a
 * growing pause (SQLite busy or the disk full: nothing is dropped).
 */
static void *ledger_main(void *arg)
{
	struct ledger *l = arg;
	size_t cap = l->cfg.batch_max;
	uint8_t *buf = malloc(cap * JOURNAL_PAYLOAD);
	struct list_node logs;        /* taken from the queue, not committed */
	uint64_t last_expire = util_now_ns();
	unsigned backoff_ms = 0;
	bool full = false;
	uint64_t expire_every = RETENTION_EVERY_NS;

	if (l->cfg.logs_retention_s &&
	    (uint64_t)l->cfg.logs_retention_s * 500000000ull < expire_every)
		expire_every = (uint64_t)l->cfg.logs_retention_s * 500000000ull;
	list_init(&logs);
	if (!buf) {
		/* Nothing can be committed: say so loudly; records stay in
		 * the journal for the next start. */
		log_err("ledger thread: out of memory; rows wait in the "
			"journal");
		return NULL;
	}
	pthread_mutex_lock(&l->lock);
	for (;;) {
		struct journal_stats js;
		struct timespec until;
		uint64_t first, taken;
		size_t n;
		bool stop, ok = true;

		if (!l->stop && !full && (!l->sync_waiters || backoff_ms)) {
			deadline_in(&until, backoff_ms ? backoff_ms :
							 l->cfg.batch_ms);
			pthread_cond_timedwait(&l->wake, &l->lock, &until);
		}
		stop = l->stop;
		logs_move(&logs, &l->logs);
		taken = l->logs_bytes;
		pthread_mutex_unlock(&l->lock);

		n = journal_peek(l->j, buf, cap, &first);
		full = n == cap;
		if (n || !list_empty(&logs))
			ok = !commit_batch(l, buf, n, first, &logs);
		if (ok) {
			backoff_ms = 0;
			if (n)
				journal_release(l->j, first + n - 1);
			free_logs(&logs);
		} else {
			backoff_ms = backoff_ms ? backoff_ms * 2 : 50;
			if (backoff_ms > RETRY_MAX_MS)
				backoff_ms = RETRY_MAX_MS;
			full = false;
			if (stop)
				/* Shutting down and SQLite refuses: the rows
				 * stay in the journal for the next start. */
				log_err("ledger: the last commit failed; the "
					"journal keeps its rows for the next "
					"start");
		}
		if (util_now_ns() - last_expire > expire_every) {
			expire_logs(l);
			last_expire = util_now_ns();
		}

		pthread_mutex_lock(&l->lock);
		if (!ok) {
			l->st.commit_errors++;
		} else if (n || taken) {
			l->st.commits++;
			l->logs_bytes -= taken;
			if (n) {
				l->committed = first + n - 1;
				l->st.rows += n;
			}
		}
		pthread_cond_broadcast(&l->synced);
		journal_stats(l->j, &js);
		if (stop && (js.released == js.appended || !ok))
			break;
		if (ok && l->sync_waiters && !n) {
			/* A record ahead is reserved but not yet published:
			 * give its writer a moment instead of spinning. */
			deadline_in(&until, 1);
			pthread_cond_timedwait(&l->wake, &l->lock, &until);
		}
	}
	pthread_mutex_unlock(&l->lock);
	free_logs(&logs);
	free(buf);
	return NULL;
}

/* ---------------------------------------------------------------------
 * Open, replay, close
 */

struct replay {
	struct ledger *l;
	size_t added, bad;
	uint64_t last;
};

static int replay_one(void *ctx, uint64_t seq, const void *payload)
{
	struct replay *rp = ctx;
	struct ledger_rec r;
	bool inserted = false;

	memcpy(&r, payload, sizeof(r));
	rp->last = seq;
	if (!rec_valid(&r)) {
		rp->bad++;
		return 0;
	}
	if (insert_rec(rp->l, seq, &r, &inserted))
		return -EIO;
	rp->added += inserted;
	return 0;
}

static int read_watermark(struct ledger *l, uint64_t *seq)
{
	sqlite3_stmt *s;
	int ret = -EIO;

	if (sqlite3_prepare_v2(l->w,
			       "select journal_seq from ledger_state where id = 1",
			       -1, &s, NULL) != SQLITE_OK)
		return -EIO;
	if (sqlite3_step(s) == SQLITE_ROW) {
		*seq = (uint64_t)sqlite3_column_int64(s, 0);
		ret = 0;
	}
	sqlite3_finalize(s);
	return ret;
}

/* Replays the journal past the watermark in one transaction. */
static int replay(struct ledger *l, size_t *replayed, char *err,
		  size_t errlen)
{
	struct replay rp = { .l = l };
	uint64_t committed;
	size_t torn = 0;
	int ret;

	if (read_watermark(l, &committed))
		return errbuf_fail(err, errlen, -EIO,
				   "the database has no ledger (schema older "
				   "than migration 2?): %s",
				   sqlite3_errmsg(l->w));
	rp.last = committed;
	if (wexec(l, "begin immediate"))
		return errbuf_fail(err, errlen, -EIO, "ledger replay: %s",
				   sqlite3_errmsg(l->w));
	ret = journal_recover(l->j, committed, replay_one, &rp, &torn);
	if (!ret && rp.last > committed)
		ret = set_watermark(l, rp.last);
	if (!ret)
		ret = wexec(l, "commit");
	if (ret) {
		wexec(l, "rollback");
		return errbuf_fail(err, errlen, ret, "ledger replay: %s",
				   sqlite3_errmsg(l->w));
	}
	l->committed = rp.last > committed ? rp.last : committed;
	l->st.replayed = rp.added;
	l->st.journal_bad = rp.bad + torn;
	if (rp.bad + torn)
		log_warn("ledger journal: %zu damaged record(s) skipped",
			 rp.bad + torn);
	if (rp.added)
		log_warn("ledger journal: %zu row(s) replayed after an unclean "
			 "stop", rp.added);
	*replayed = rp.added;
	return 0;
}

/* Everything ledger_open() made, with no thread running. */
static void ledger_free(struct ledger *l)
{
	free_logs(&l->logs);
	journal_close(l->j);
	for (int i = 0; i < NR_WSTMTS; i++)
		sqlite3_finalize(l->ws[i]);
	sqlite3_close(l->w);
	sqlite3_close(l->r);
	pthread_cond_destroy(&l->wake);
	pthread_cond_destroy(&l->synced);
	pthread_mutex_destroy(&l->lock);
	pthread_mutex_destroy(&l->rlock);
	free(l);
}

struct ledger *ledger_open(const struct ledger_config *cfg, size_t *replayed,
			   char *err, size_t errlen)
{
	struct ledger *l = calloc(1, sizeof(*l));
	size_t dummy;

	if (!replayed)
		replayed = &dummy;
	*replayed = 0;
	if (!l) {
		errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	l->cfg = *cfg;
	if (!l->cfg.batch_ms)
		l->cfg.batch_ms = 20;
	if (!l->cfg.batch_max)
		l->cfg.batch_max = 4096;
	if (!l->cfg.journal_slots)
		l->cfg.journal_slots = 32768;
	if (!l->cfg.logs_per_function)
		l->cfg.logs_per_function = 16ull << 20;
	if (!l->cfg.logs_queue_bytes)
		l->cfg.logs_queue_bytes = 8ull << 20;
	l->cfg.db_path = NULL; /* not kept: the caller's string */
	l->cfg.journal_path = NULL;
	list_init(&l->logs);
	pthread_mutex_init(&l->lock, NULL);
	pthread_mutex_init(&l->rlock, NULL);
	{
		/* Deadlines are CLOCK_MONOTONIC (deadline_in). */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&l->wake, &ca);
		pthread_cond_init(&l->synced, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (sql_open(cfg->db_path, true, &l->w, err, errlen) ||
	    sql_open(cfg->db_path, false, &l->r, err, errlen))
		goto err_free;
	l->j = journal_open(cfg->journal_path, l->cfg.journal_slots, err,
			    errlen);
	if (!l->j)
		goto err_free;
	if (replay(l, replayed, err, errlen))
		goto err_free;
	if (pthread_create(&l->thread, NULL, ledger_main, l)) {
		errbuf_fail(err, errlen, -EAGAIN, "starting the ledger thread");
		goto err_free;
	}
	return l;

err_free:
	ledger_free(l);
	return NULL;
}

void ledger_close(struct ledger *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	l->stop = true;
	pthread_cond_signal(&l->wake);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);
	ledger_free(l);
}

void ledger_add(struct ledger *l, const struct ledger_rec *r)
{
	journal_append(l->j, r, sizeof(*r), NULL);
}

bool ledger_add_log(struct ledger *l, const struct ledger_rec *r,
		    const char *text, size_t len, bool truncated)
{
	struct queued_log *q;
	size_t need;

	if (!len)
		return true;
	pthread_mutex_lock(&l->lock);
	need = l->logs_bytes + len;
	pthread_mutex_unlock(&l->lock);
	if (need > l->cfg.logs_queue_bytes)
		goto dropped;
	q = malloc(sizeof(*q) + len);
	if (!q)
		goto dropped;
	q->tenant_id = r->tenant_id;
	q->fn_id = r->fn_id;
	q->at_us = r->start_us;
	q->request_id = r->request_id;
	q->truncated = truncated;
	q->len = len;
	memcpy(q->text, text, len);
	pthread_mutex_lock(&l->lock);
	list_append(&l->logs, &q->node);
	l->logs_bytes += q->len;
	pthread_mutex_unlock(&l->lock);
	return true;
dropped:
	pthread_mutex_lock(&l->lock);
	l->st.logs_dropped++;
	pthread_mutex_unlock(&l->lock);
	return false;
}

int ledger_sync(struct ledger *l, unsigned timeout_ms)
{
	struct journal_stats js;
	struct timespec until;
	int ret = 0;

	journal_stats(l->j, &js);
	deadline_in(&until, timeout_ms);
	pthread_mutex_lock(&l->lock);
	l->sync_waiters++;
	pthread_cond_signal(&l->wake);
	while (l->committed < js.appended && !ret)
		if (pthread_cond_timedwait(&l->synced, &l->lock, &until))
			ret = -ETIMEDOUT;
	l->sync_waiters--;
	pthread_mutex_unlock(&l->lock);
	return ret;
}

void ledger_stats(struct ledger *l, struct ledger_stats *st)
{
	struct journal_stats js;

	journal_stats(l->j, &js);
	pthread_mutex_lock(&l->lock);
	*st = l->st;
	st->committed = l->committed;
	st->logs_queued_bytes = l->logs_bytes;
	pthread_mutex_unlock(&l->lock);
	st->appended = js.appended;
	st->stalls = js.stalls;
}

/* ---------------------------------------------------------------------
 * Queries (the reader connection, under rlock)
 */

uint64_t ledger_usage_errors(const struct ledger_usage *u)
{
	return u->by_outcome[LEDGER_ERROR] + u->by_outcome[LEDGER_TIMEOUT] +
	       u->by_outcome[LEDGER_CRASH];
}

double ledger_usage_gb_s(const struct ledger_usage *u)
{
	return (double)u->mib_ms / (1024.0 * 1000.0);
}

void ledger_usage_add(struct ledger_usage *a, const struct ledger_usage *b)
{
	a->requests += b->requests;
	a->invocations += b->invocations;
	for (int i = 0; i < LEDGER_NR_OUTCOMES; i++)
		a->by_outcome[i] += b->by_outcome[i];
	a->cold_starts += b->cold_starts;
	a->billed_ms += b->billed_ms;
	a->mib_ms += b->mib_ms;
	a->duration_ns += b->duration_ns;
	a->init_ns += b->init_ns;
	a->bytes_in += b->bytes_in;
	a->bytes_out += b->bytes_out;
}

static int rerr(struct ledger *l, const char *what)
{
	log_warn_rl("ledger query (%s): %s", what, sqlite3_errmsg(l->r));
	return -EIO;
}

/* The WHERE clause every ledger query shares; binds ?1..?5. */
#define Q_WHERE                                                               \
	" where start_us >= ?1 and start_us < ?2 and (?3 = 0 or tenant_id = " \
	"?3) and (?4 is null or function = ?4) and (?5 is null or tenant = "  \
	"?5) "

static void bind_query(sqlite3_stmt *s, const struct ledger_query *q)
{
	sqlite3_bind_int64(s, 1, q->from_us);
	sqlite3_bind_int64(s, 2, q->to_us);
	sqlite3_bind_int64(s, 3, q->tenant_id > 0 ? q->tenant_id : 0);
	if (q->function)
		sqlite3_bind_text(s, 4, q->function, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 4);
	if (q->tenant)
		sqlite3_bind_text(s, 5, q->tenant, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 5);
}

static void col_name(sqlite3_stmt *s, int i, char *dst, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	util_copy(dst, cap, t ? (const char *)t : "");
}

static int grow(void **arr, size_t *cap, size_t n, size_t sz)
{
	void *p;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 64;
	p = realloc(*arr, c * sz);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = c;
	return 0;
}

int ledger_usage(struct ledger *l, const struct ledger_query *q,
		 struct ledger_usage **out, size_t *n)
{
	/* Keys come from a fixed set of fragments, never from input. */
	char keys[160] = "", sel[200] = "", sql[1400];
	struct ledger_usage *rows = NULL;
	size_t cap = 0, cnt = 0;
	sqlite3_stmt *s;
	int rc, ret = 0;

	*out = NULL;
	*n = 0;
#define KEY(cond, expr, name)                                                 \
	do {                                                                  \
		if (cond) {                                                   \
			size_t kl_ = strlen(keys), sl_ = strlen(sel);         \
			snprintf(keys + kl_, sizeof(keys) - kl_, "%s%s",      \
				 kl_ ? ", " : "", name);                      \
			snprintf(sel + sl_, sizeof(sel) - sl_, "%s as %s, ",  \
				 expr, name);                                 \
		}                                                             \
	} while (0)
	KEY(q->group_by & LEDGER_BY_TENANT, "tenant_id", "k_tenant_id");
	KEY(q->group_by & LEDGER_BY_FUNCTION, "function", "k_function");
	KEY(q->group_by & (LEDGER_BY_DAY | LEDGER_BY_HOUR),
	    (q->group_by & LEDGER_BY_DAY) ?
		    "(start_us / 86400000000) * 86400000000" :
		    "(start_us / 3600000000) * 3600000000",
	    "k_period");
#undef KEY
	snprintf(sql, sizeof(sql),
		 "select %s max(tenant), count(*), "
		 "sum(outcome = 'ok'), sum(outcome = 'error'), "
		 "sum(outcome = 'timeout'), sum(outcome = 'crash'), "
		 "sum(outcome = 'throttled'), sum(outcome = 'rejected'), "
		 "sum(cold), sum(billed_ms), sum(billed_ms * memory_mib), "
		 "sum(duration_ns), sum(init_ns), sum(bytes_in), "
		 "sum(bytes_out) from invocations" Q_WHERE "%s%s %s%s",
		 sel, keys[0] ? "group by " : "", keys,
		 keys[0] ? "order by " : "", keys);
	pthread_mutex_lock(&l->rlock);
	if (sqlite3_prepare_v2(l->r, sql, -1, &s, NULL) != SQLITE_OK) {
		ret = rerr(l, "usage");
		goto out;
	}
	bind_query(s, q);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ledger_usage *u;
		int c = 0;

		if (grow((void **)&rows, &cap, cnt, sizeof(*rows))) {
			ret = -ENOMEM;
			break;
		}
		u = &rows[cnt];
		memset(u, 0, sizeof(*u));
		if (q->group_by & LEDGER_BY_TENANT)
			c++; /* the id: the name is max(tenant) below */
		if (q->group_by & LEDGER_BY_FUNCTION)
			col_name(s, c++, u->function, sizeof(u->function));
		if (q->group_by & (LEDGER_BY_DAY | LEDGER_BY_HOUR))
			u->period_us = sqlite3_column_int64(s, c++);
		if (q->group_by & LEDGER_BY_TENANT)
			col_name(s, c, u->tenant, sizeof(u->tenant));
		c++;
		u->requests = (uint64_t)sqlite3_column_int64(s, c++);
		if (!u->requests)
			continue; /* no group by and no rows: one empty row */
		for (int o = 0; o < LEDGER_NR_OUTCOMES; o++)
			u->by_outcome[o] = (uint64_t)sqlite3_column_int64(s, c++);
		for (int o = 0; o < LEDGER_NR_OUTCOMES; o++)
			if (ledger_outcome_ran(o))
				u->invocations += u->by_outcome[o];
		u->cold_starts = (uint64_t)sqlite3_column_int64(s, c++);
		u->billed_ms = (uint64_t)sqlite3_column_int64(s, c++);
		u->mib_ms = (uint64_t)sqlite3_column_int64(s, c++);
		u->duration_ns = (uint64_t)sqlite3_column_int64(s, c++);
		u->init_ns = (uint64_t)sqlite3_column_int64(s, c++);
		u->bytes_in = (uint64_t)sqlite3_column_int64(s, c++);
		u->bytes_out = (uint64_t)sqlite3_column_int64(s, c++);
		cnt++;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = rerr(l, "usage");
	sqlite3_finalize(s);
out:
	pthread_mutex_unlock(&l->rlock);
	if (ret) {
		free(rows);
		return ret;
	}
	*out = rows;
	*n = cnt;
	return 0;
}

int ledger_records(struct ledger *l, const struct ledger_query *q,
		   int64_t after, size_t limit, struct ledger_rec **out,
		   int64_t **ids_out, size_t *n)
{
	static const char sql[] =
		"select id, request_id, tenant_id, tenant, function_id, "
		"function, version, start_us, duration_ns, billed_ms, "
		"memory_mib, cold, init_ns, queued_ns, outcome, bytes_in, "
		"bytes_out from invocations" Q_WHERE
		"and id > ?6 order by id limit ?7";
	struct ledger_rec *recs = NULL;
	int64_t *ids = NULL;
	size_t cap = 0, idcap = 0, cnt = 0;
	sqlite3_stmt *s;
	int rc, ret = 0;

	*out = NULL;
	*n = 0;
	if (ids_out)
		*ids_out = NULL;
	pthread_mutex_lock(&l->rlock);
	if (sqlite3_prepare_v2(l->r, sql, -1, &s, NULL) != SQLITE_OK) {
		ret = rerr(l, "records");
		goto out;
	}
	bind_query(s, q);
	sqlite3_bind_int64(s, 6, after);
	sqlite3_bind_int64(s, 7, (int64_t)limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ledger_rec *r;
		const unsigned char *o;

		if (grow((void **)&recs, &cap, cnt, sizeof(*recs)) ||
		    (ids_out && grow((void **)&ids, &idcap, cnt, sizeof(*ids)))) {
			ret = -ENOMEM;
			break;
		}
		r = &recs[cnt];
		memset(r, 0, sizeof(*r));
		if (ids_out)
			ids[cnt] = sqlite3_column_int64(s, 0);
		r->request_id = (uint64_t)sqlite3_column_int64(s, 1);
		r->tenant_id = sqlite3_column_int64(s, 2);
		col_name(s, 3, r->tenant, sizeof(r->tenant));
		r->fn_id = sqlite3_column_int64(s, 4);
		col_name(s, 5, r->function, sizeof(r->function));
		r->version = (uint32_t)sqlite3_column_int64(s, 6);
		r->start_us = sqlite3_column_int64(s, 7);
		r->duration_ns = (uint64_t)sqlite3_column_int64(s, 8);
		r->billed_ms = (uint32_t)sqlite3_column_int64(s, 9);
		r->memory_mib = (uint32_t)sqlite3_column_int64(s, 10);
		r->cold = (uint8_t)sqlite3_column_int(s, 11);
		r->init_ns = (uint64_t)sqlite3_column_int64(s, 12);
		r->queued_ns = (uint64_t)sqlite3_column_int64(s, 13);
		o = sqlite3_column_text(s, 14);
		rc = o ? ledger_outcome_parse((const char *)o) : -1;
		r->outcome = rc < 0 ? LEDGER_REJECTED : (uint8_t)rc;
		r->bytes_in = (uint64_t)sqlite3_column_int64(s, 15);
		r->bytes_out = (uint64_t)sqlite3_column_int64(s, 16);
		cnt++;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = rerr(l, "records");
	sqlite3_finalize(s);
out:
	pthread_mutex_unlock(&l->rlock);
	if (ret) {
		free(recs);
		free(ids);
		return ret;
	}
	*out = recs;
	if (ids_out)
		*ids_out = ids;
	else
		free(ids);
	*n = cnt;
	return 0;
}

void ledger_logs_free(struct ledger_log *logs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(logs[i].text);
	free(logs);
}

int ledger_logs(struct ledger *l, const struct ledger_log_query *q,
		struct ledger_log **out, size_t *n)
{
	/* The newest `tail` first (then reversed), or the oldest first. */
	static const char sql_fwd[] =
		"select id, request_id, at_us, truncated, text from logs "
		"where tenant_id = ?1 and function_id = ?2 and "
		"(?3 = 0 or request_id = ?3) and at_us >= ?4 and id > ?5 "
		"order by id limit ?6";
	static const char sql_tail[] =
		"select id, request_id, at_us, truncated, text from logs "
		"where tenant_id = ?1 and function_id = ?2 and "
		"(?3 = 0 or request_id = ?3) and at_us >= ?4 and id > ?5 "
		"order by id desc limit ?6";
	struct ledger_log *logs = NULL;
	size_t cap = 0, cnt = 0, limit = q->limit ? q->limit : 1000;
	sqlite3_stmt *s;
	int rc, ret = 0;

	*out = NULL;
	*n = 0;
	if (q->tail && q->tail < limit)
		limit = q->tail;
	pthread_mutex_lock(&l->rlock);
	if (sqlite3_prepare_v2(l->r, q->tail ? sql_tail : sql_fwd, -1, &s,
			       NULL) != SQLITE_OK) {
		ret = rerr(l, "logs");
		goto out;
	}
	sqlite3_bind_int64(s, 1, q->tenant_id);
	sqlite3_bind_int64(s, 2, q->fn_id);
	sqlite3_bind_int64(s, 3, (int64_t)q->request_id);
	sqlite3_bind_int64(s, 4, q->since_us);
	sqlite3_bind_int64(s, 5, q->after);
	sqlite3_bind_int64(s, 6, (int64_t)limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ledger_log *g;
		const unsigned char *t;
		int len;

		if (grow((void **)&logs, &cap, cnt, sizeof(*logs))) {
			ret = -ENOMEM;
			break;
		}
		g = &logs[cnt];
		g->id = sqlite3_column_int64(s, 0);
		g->request_id = (uint64_t)sqlite3_column_int64(s, 1);
		g->at_us = sqlite3_column_int64(s, 2);
		g->truncated = sqlite3_column_int(s, 3) != 0;
		t = sqlite3_column_text(s, 4);
		len = sqlite3_column_bytes(s, 4);
		g->text = malloc((size_t)len + 1);
		if (!g->text) {
			ret = -ENOMEM;
			break;
		}
		memcpy(g->text, t ? (const char *)t : "", (size_t)len);
		g->text[len] = '\0';
		g->len = (size_t)len;
		cnt++;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = rerr(l, "logs");
	sqlite3_finalize(s);
out:
	pthread_mutex_unlock(&l->rlock);
	if (ret) {
		ledger_logs_free(logs, cnt);
		return ret;
	}
	if (q->tail) /* newest first from SQL: oldest first for the caller */
		for (size_t i = 0; i < cnt / 2; i++) {
			struct ledger_log t = logs[i];

			logs[i] = logs[cnt - 1 - i];
			logs[cnt - 1 - i] = t;
		}
	*out = logs;
	*n = cnt;
	return 0;
}
