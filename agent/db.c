/*
 * db.c - emberd's storage on SQLite: see db.h.
 *
 * Every statement is prepared once (lazily) into a table indexed by enum
 * stmt and reset after each use; the connection and that table are guarded
 * by one mutex. Multi-statement changes run between BEGIN IMMEDIATE and
 * COMMIT so that they are all-or-nothing even across a kill -9.
 */
#define LOG_MOD "db"

#include "agent/db.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The schema file, built into the binary (see the header of schema.sql). */
__asm__(".section .rodata\n"
	".global db_schema_sql\n"
	".type db_schema_sql, @object\n"
	"db_schema_sql:\n"
	".incbin \"agent/schema.sql\"\n"
	".byte 0\n"
	".previous\n");
extern const char db_schema_sql[];

#define MIGRATION_MARK "-- migration "

enum stmt {
	ST_SETTING_GET,
	ST_SETTING_SET,
	ST_TENANT_CREATE,
	ST_TENANT_GET,
	ST_TENANT_LIST,
	ST_TENANT_DELETE,
	ST_TENANT_LIMITS,
	ST_TOKEN_CREATE,
	ST_TOKEN_FIND,
	ST_TOKEN_LIST,
	ST_TOKEN_DELETE,
	ST_FN_GET,
	ST_FN_LOOKUP,
	ST_FN_GET_BY_ID,
	ST_FN_LIST,
	ST_FN_LIST_ALL,
	ST_FN_INSERT,
	ST_FN_DELETE,
	ST_FN_SET_CURRENT,
	ST_FN_DELETE_IF_EMPTY,
	ST_FN_SCALING,
	ST_VERSION_LIST,
	ST_VERSION_DIRS,
	ST_VERSION_INSERT,
	ST_VERSION_MAX,
	ST_SNAPSHOT_INSERT,
	ST_DEPLOY_RUNNING,
	ST_DEPLOY_INSERT,
	ST_DEPLOY_STEP,
	ST_DEPLOY_SUCCEED,
	ST_DEPLOY_FAIL,
	ST_DEPLOY_GET,
	ST_DEPLOY_STEPS,
	ST_DEPLOY_LIST_RUNNING,
	ST_DEPLOY_FN,
	NR_STMTS
};

/* The current version's columns, shared by the function queries. */
#define FN_COLS                                                               \
	"f.id, f.tenant_id, f.name, f.created, "                              \
	"coalesce(f.current_version, 0), v.created, v.manifest, v.dir, "      \
	"exists(select 1 from deploys d where d.tenant_id = f.tenant_id "     \
	"and d.function = f.name and d.state = 'running'), "                  \
	"f.min_instances, coalesce(f.idle_ttl_ms, -1), "                      \
	"(select t.name from tenants t where t.id = f.tenant_id) "
#define FN_FROM                                                               \
	"from functions f left join versions v on v.function_id = f.id "     \
	"and v.version = f.current_version "

static const char *const stmt_sql[NR_STMTS] = {
	[ST_SETTING_GET] = "select value from settings where key = ?1",
	[ST_SETTING_SET] = "insert into settings(key, value) values (?1, ?2) "
			   "on conflict(key) do update set value = ?2",
	[ST_TENANT_CREATE] = "insert into tenants(name, created) values (?1, ?2)",
	[ST_TENANT_GET] = "select id, name, created, coalesce(max_instances, -1), "
			  "coalesce(max_memory_mib, -1), "
			  "coalesce(max_concurrency, -1) from tenants "
			  "where name = ?1",
	[ST_TENANT_LIST] = "select t.id, t.name, t.created, "
			   "coalesce(t.max_instances, -1), "
			   "coalesce(t.max_memory_mib, -1), "
			   "coalesce(t.max_concurrency, -1), "
			   "(select count(*) from functions f "
			   "where f.tenant_id = t.id) "
			   "from tenants t order by t.name",
	[ST_TENANT_DELETE] = "delete from tenants where id = ?1",
	[ST_TENANT_LIMITS] = "update tenants set max_instances = ?2, "
			     "max_memory_mib = ?3, max_concurrency = ?4 "
			     "where id = ?1",
	[ST_TOKEN_CREATE] = "insert into tokens(id, tenant_id, hash, created) "
			    "values (?1, ?2, ?3, ?4)",
	[ST_TOKEN_FIND] = "select t.id, t.name, t.created, "
			  "coalesce(t.max_instances, -1), "
			  "coalesce(t.max_memory_mib, -1), "
			  "coalesce(t.max_concurrency, -1), k.hash "
			  "from tokens k join tenants t on t.id = k.tenant_id "
			  "where k.hash = ?1",
	[ST_TOKEN_LIST] = "select id, created from tokens where tenant_id = ?1 "
			  "order by created, id",
	[ST_TOKEN_DELETE] = "delete from tokens where tenant_id = ?1 and id = ?2",
	[ST_FN_GET] = "select " FN_COLS FN_FROM
		      "where f.tenant_id = ?1 and f.name = ?2",
	[ST_FN_LOOKUP] = "select f.id, coalesce(f.current_version, 0), "
			 "exists(select 1 from deploys d where d.tenant_id = "
			 "f.tenant_id and d.function = f.name and d.state = "
			 "'running') from functions f "
			 "where f.tenant_id = ?1 and f.name = ?2",
	[ST_FN_GET_BY_ID] = "select " FN_COLS FN_FROM "where f.id = ?1",
	[ST_FN_LIST] = "select " FN_COLS FN_FROM
		       "where f.tenant_id = ?1 order by f.name",
	[ST_FN_LIST_ALL] = "select " FN_COLS FN_FROM "order by f.id",
	[ST_FN_INSERT] = "insert into functions(tenant_id, name, created) "
			 "values (?1, ?2, ?3)",
	[ST_FN_DELETE] = "delete from functions where id = ?1",
	[ST_FN_SET_CURRENT] = "update functions set current_version = ?2 "
			      "where id = ?1",
	[ST_FN_DELETE_IF_EMPTY] = "delete from functions where tenant_id = ?1 "
				  "and name = ?2 and not exists (select 1 from "
				  "versions v where v.function_id = functions.id)",
	[ST_FN_SCALING] = "update functions set min_instances = ?2, "
			  "idle_ttl_ms = ?3 where id = ?1",
	[ST_VERSION_LIST] = "select v.version, v.created, "
			    "v.version = coalesce(f.current_version, 0), "
			    "v.manifest, v.dir from versions v "
			    "join functions f on f.id = v.function_id "
			    "where v.function_id = ?1 order by v.version desc",
	[ST_VERSION_DIRS] = "select dir from versions",
	[ST_VERSION_INSERT] = "insert into versions(function_id, version, "
			      "created, manifest, dir, deploy_id) "
			      "values (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_VERSION_MAX] = "select coalesce(max(version), 0) from versions "
			   "where function_id = ?1",
	[ST_SNAPSHOT_INSERT] = "insert into snapshots(function_id, version, dir, "
			       "memory_mib, created) values (?1, ?2, ?3, ?4, ?5)",
	[ST_DEPLOY_RUNNING] = "select id from deploys where tenant_id = ?1 and "
			      "function = ?2 and state = 'running'",
	[ST_DEPLOY_INSERT] = "insert into deploys(id, tenant_id, function, "
			     "state, created) values (?1, ?2, ?3, 'running', ?4)",
	[ST_DEPLOY_STEP] = "insert into deploy_steps(deploy_id, seq, step, "
			   "detail, at) select ?1, coalesce(max(seq), 0) + 1, "
			   "?2, ?3, ?4 from deploy_steps where deploy_id = ?1",
	[ST_DEPLOY_SUCCEED] = "update deploys set state = 'succeeded', "
			      "version = ?2, finished = ?3 "
			      "where id = ?1 and state = 'running'",
	[ST_DEPLOY_FAIL] = "update deploys set state = 'failed', "
			   "error_step = ?2, error_message = ?3, "
			   "error_output = ?4, finished = ?5 "
			   "where id = ?1 and state = 'running'",
	[ST_DEPLOY_GET] = "select id, function, state, coalesce(version, 0), "
			  "created, coalesce(finished, ''), error_step, "
			  "error_message, error_output from deploys "
			  "where tenant_id = ?1 and id = ?2",
	[ST_DEPLOY_STEPS] = "select step, detail, at from deploy_steps "
			    "where deploy_id = ?1 order by seq",
	[ST_DEPLOY_LIST_RUNNING] = "select id from deploys "
				   "where state = 'running'",
	[ST_DEPLOY_FN] = "select tenant_id, function from deploys where id = ?1",
};

/* The lookup cache: direct-mapped, each entry valid for the generation
 * it was filled in (db->gen moves on at every change that could make an
 * entry wrong). */
#define CACHE_SLOTS 1024 /* a power of two */

struct token_slot {
	uint64_t gen; /* 0: empty */
	uint8_t hash[DB_HASH_LEN];
	struct db_tenant tenant;
};

struct fn_slot {
	uint64_t gen;
	int64_t tenant_id;
	char name[UTIL_NAME_MAX + 1];
	struct db_fn_ref ref;
};

struct db {
	sqlite3 *conn;
	pthread_mutex_t lock;
	sqlite3_stmt *st[NR_STMTS];
	uint64_t gen;
	struct token_slot tokens[CACHE_SLOTS];
	struct fn_slot fns[CACHE_SLOTS];
};

/* ---------------------------------------------------------------------
 * Plumbing
 */

/* Maps an SQLite result code to -errno, logging what is not an expected
 * outcome. */
static int db_errno(struct db *db, int rc, const char *what)
{
	switch (rc) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return -EEXIST;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return -ENOENT;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		log_err("%s: %s (%d)", what, sqlite3_errmsg(db->conn), rc);
		return -EIO;
	}
}

static sqlite3_stmt *stmt(struct db *db, enum stmt id)
{
	if (!db->st[id]) {
		int rc = sqlite3_prepare_v3(db->conn, stmt_sql[id], -1,
					    SQLITE_PREPARE_PERSISTENT,
					    &db->st[id], NULL);
		if (rc != SQLITE_OK) {
			/* A statement of ours that does not prepare is a bug
			 * in this file; say which. */
			log_err("preparing statement %d: %s", (int)id,
				sqlite3_errmsg(db->conn));
			return NULL;
		}
	}
	return db->st[id];
}

static void done(sqlite3_stmt *s)
{
	if (s) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static void col_copy(sqlite3_stmt *s, int i, char *dst, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

/* A malloc'd copy of a text column, NULL for SQL NULL; *ret = -ENOMEM if
 * the copy failed. */
static char *col_dup(sqlite3_stmt *s, int i, int *ret)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	char *d;

	if (!t)
		return NULL;
	d = strdup((const char *)t);
	if (!d)
		*ret = -ENOMEM;
	return d;
}

/* Runs a statement that returns no rows (its bindings already set). */
static int step_done(struct db *db, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s), ret = 0;

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = db_errno(db, sqlite3_extended_errcode(db->conn), what);
	done(s);
	return ret;
}

/* Steps s for its one row: 0 when there is one (read it, then done()),
 * -ENOENT when there is none, -errno when SQLite failed. */
static int step_one(struct db *db, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return -ENOENT;
	return db_errno(db, sqlite3_extended_errcode(db->conn), what);
}

/* Runs statement id, which returns no rows, its parameters bound in order
 * from the arguments fmt describes: 'i' an int64_t, 't' a const char *
 * (NULL: SQL NULL). Returns 0 or -errno; *changes (may be NULL) receives
 * the number of rows it changed. Lock held. */
static int run(struct db *db, enum stmt id, int *changes, const char *fmt,
	       ...)
{
	sqlite3_stmt *s = stmt(db, id);
	va_list ap;
	int i = 1, ret;

	if (!s)
		return -EIO;
	va_start(ap, fmt);
	for (const char *f = fmt; *f; f++, i++) {
		if (*f == 'i') {
			sqlite3_bind_int64(s, i, va_arg(ap, int64_t));
		} else if (*f == 'n') { /* an int64, NULL when negative */
			int64_t v = va_arg(ap, int64_t);

			if (v < 0)
				sqlite3_bind_null(s, i);
			else
				sqlite3_bind_int64(s, i, v);
		} else
			bind_text(s, i, va_arg(ap, const char *));
	}
	va_end(ap);
	ret = step_done(db, s, stmt_sql[id]);
	if (!ret && changes)
		*changes = sqlite3_changes(db->conn);
	return ret;
}

static int exec_sql(struct db *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db->conn, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_err("%.60s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return rc == SQLITE_BUSY ? -EBUSY : -EIO;
	}
	return 0;
}

static int tx_begin(struct db *db)
{
	return exec_sql(db, "begin immediate");
}

/* Commits when ret is 0, else rolls back; returns ret or the commit's
 * failure. */
static int tx_end(struct db *db, int ret)
{
	if (!ret) {
		ret = exec_sql(db, "commit");
		if (!ret) {
			db->gen++; /* every cached lookup may be stale now */
			return 0;
		}
	}
	exec_sql(db, "rollback");
	return ret;
}

/* ---------------------------------------------------------------------
 * Open and migrate
 */

/* Finds migration `n`'s SQL in the schema text: [*start, *end). Returns
 * false when there is no migration n. */
static bool migration_find(int n, const char **start, const char **end)
{
	const char *p = db_schema_sql;

	while ((p = strstr(p, MIGRATION_MARK))) {
		char *num_end;
		long v = strtol(p + strlen(MIGRATION_MARK), &num_end, 10);

		p = num_end;
		if (v != n || *num_end != ':')
			continue;
		/* The SQL starts on the line after the marker. */
		*start = strchr(p, '\n');
		if (!*start)
			*start = p + strlen(p);
		*end = strstr(p, MIGRATION_MARK);
		if (!*end)
			*end = p + strlen(p);
		return true;
	}
	return false;
}

int db_schema_latest(void)
{
	const char *a, *b;
	int n = 0;

	while (migration_find(n + 1, &a, &b))
		n++;
	return n;
}

int db_schema_version(struct db *db)
{
	sqlite3_stmt *s;
	int v = -1;

	pthread_mutex_lock(&db->lock);
	if (sqlite3_prepare_v2(db->conn, "pragma user_version", -1, &s,
			       NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int(s, 0);
		sqlite3_finalize(s);
	}
	pthread_mutex_unlock(&db->lock);
	return v;
}

static int migrate(struct db *db, char *err, size_t errlen)
{
	int have = -1, latest = db_schema_latest();
	sqlite3_stmt *s;

	if (sqlite3_prepare_v2(db->conn, "pragma user_version", -1, &s,
			       NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			have = sqlite3_column_int(s, 0);
		sqlite3_finalize(s);
	}
	if (have < 0)
		return errbuf_fail(err, errlen, -EIO,
				   "cannot read the schema version: %s",
				   sqlite3_errmsg(db->conn));
	if (have > latest)
		return errbuf_fail(err, errlen, -EPROTONOSUPPORT,
				   "the database is at schema version %d, this "
				   "emberd knows up to %d: it was written by a "
				   "newer emberd", have, latest);
	for (int n = have + 1; n <= latest; n++) {
		const char *a, *b;
		char *sql, *msg = NULL;
		int rc;

		if (!migration_find(n, &a, &b))
			return errbuf_fail(err, errlen, -EINVAL,
					   "schema.sql has no migration %d", n);
		/* The migration's text plus the version bump, so both commit
		 * together. */
		sql = sqlite3_mprintf("begin immediate; %.*s; "
				      "pragma user_version = %d; commit;",
				      (int)(b - a), a, n);
		if (!sql)
			return errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		rc = sqlite3_exec(db->conn, sql, NULL, NULL, &msg);
		sqlite3_free(sql);
		if (rc != SQLITE_OK) {
			errbuf_fail(err, errlen, -EIO, "migration %d: %s", n,
				    msg ? msg : sqlite3_errstr(rc));
			sqlite3_free(msg);
			sqlite3_exec(db->conn, "rollback", NULL, NULL, NULL);
			return -EIO;
		}
		log_info("database migrated to schema version %d", n);
	}
	return 0;
}

struct db *db_open(const char *path, char *err, size_t errlen)
{
	struct db *db = calloc(1, sizeof(*db));
	int rc;

	if (!db) {
		errbuf_fail(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&db->lock, NULL);
	db->gen = 1;
	rc = sqlite3_open_v2(path, &db->conn,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		errbuf_fail(err, errlen, -EIO, "%s: %s", path,
			    db->conn ? sqlite3_errmsg(db->conn) :
				       sqlite3_errstr(rc));
		goto err_close;
	}
	sqlite3_extended_result_codes(db->conn, 1);
	sqlite3_busy_timeout(db->conn, 5000);
	/* WAL: readers never wait for the writer. synchronous=FULL: a
	 * commit that returned is on disk, so a tenant, token or deploy we
	 * answered for survives a crash of the machine, not only of emberd. */
	if (exec_sql(db, "pragma journal_mode = wal") ||
	    exec_sql(db, "pragma synchronous = full") ||
	    exec_sql(db, "pragma foreign_keys = on")) {
		errbuf_fail(err, errlen, -EIO, "%s: %s", path,
			    sqlite3_errmsg(db->conn));
		goto err_close;
	}
	if (migrate(db, err, errlen))
		goto err_close;
	return db;
err_close:
	sqlite3_close(db->conn);
	pthread_mutex_destroy(&db->lock);
	free(db);
	return NULL;
}

void db_close(struct db *db)
{
	if (!db)
		return;
	for (int i = 0; i < NR_STMTS; i++)
		sqlite3_finalize(db->st[i]);
	sqlite3_close(db->conn);
	pthread_mutex_destroy(&db->lock);
	free(db);
}

/* ---------------------------------------------------------------------
 * Settings
 */

int db_setting_get(struct db *db, const char *key, void *buf, size_t cap,
		   size_t *len)
{
	sqlite3_stmt *s;
	int ret = -EIO;

	pthread_mutex_lock(&db->lock);
	s = stmt(db, ST_SETTING_GET);
	if (!s)
		goto out;
	bind_text(s, 1, key);
	switch (sqlite3_step(s)) {
	case SQLITE_ROW: {
		size_t n = (size_t)sqlite3_column_bytes(s, 0);
		const void *v = sqlite3_column_blob(s, 0);

		if (v)
			memcpy(buf, v, n < cap ? n : cap);
		*len = n;
		ret = 0;
		break;
	}
	case SQLITE_DONE:
		ret = -ENOENT;
		break;
	default:
		ret = db_errno(db, sqlite3_extended_errcode(db->conn), key);
	}
	done(s);
out:
	pthread_mutex_unlock(&db->lock);
	return ret;
}

int db_setting_set(struct db *db, const char *key, const void *val,
		   size_t len)
{
	sqlite3_stmt *s;
	int ret = -EIO;

	pthread_mutex_lock(&db->lock);
	s = stmt(db, ST_SETTING_SET);
	if (s) {
		bind_text(s, 1, key);
		sqlite3_bind_blob(s, 2, val, (int)len, SQLITE_TRANSIENT);
		ret = step_done(db, s, "setting");
	}
	pthread_mutex_unlock(&db->lock);
	return ret;
}

/* ---------------------------------------------------------------------
 * Tenants and tokens
 */

/* Columns: id, name, created, max_instances, max_memory_mib,
 * max_concurrency (-1 for NULL). */
static void tenant_row(sqlite3_stmt *s, struct db_tenant *t)
{
	t->id = sqlite3_column_int64(s, 0);
	col_copy(s, 1, t->name, sizeof(t->name));
	col_copy(s, 2, t->created, sizeof(t->created));
	t->nr_functions = 0;
	t->limits.instances = sqlite3_column_int64(s, 3);
	t->limits.memory_mib = sqlite3_column_int64(s, 4);
	t->limits.concurrency = sqlite3_column_int64(s, 5);
}

int db_tenant_create(struct db *db, const char *name, struct db_tenant *out)
{
	int ret;

	memset(out, 0, sizeof(*out));
	util_time_iso8601(out->created);
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->limits = (struct db_limits){ DB_LIMIT_DEFAULT, DB_LIMIT_DEFAULT,
					  DB_LIMIT_DEFAULT };
	pthread_mutex_lock(&db->lock);
	ret = run(db, ST_TENANT_CREATE, NULL, "tt", name, out->created);
	if (!ret)
		out->id = sqlite3_last_insert_rowid(db->conn);
	pthread_mutex_unlock(&db->lock);
	return ret;
}

int db_tenant_get(struct db *db, const char *name, struct db_tenant *out)
{
	sqlite3_stmt *s;
	int ret = -EIO;

	pthread_mutex_lock(&db->lock);
	s = stmt(db, ST_TENANT_GET);
	if (s) {
		bind_text(s, 1, name);
		ret = step_one(db, s, "tenant get");
		if (!ret)
			tenant_row(s, out);
		done(s);
	}
	pthread_mutex_unlock(&db->lock);
	return ret;
}

/* Grows *arr (of elements of size sz) to hold at least n + 1. */
static int grow(void **arr, size_t *cap, size_t n, size_t sz)
{
	void *p;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 8;
	p = realloc(*arr, c * sz);
	if (!p)
		return -ENOMEM;
	memset((char *)p + *cap * sz, 0, (c - *cap) * sz);
	*arr = p;
	*cap = c;
	return 0;
}

/* Runs statement `id` (with key bound to ?1 when has_key) and appends one
 * element of sz bytes per row to a malloc'd array, each filled by row()
 * (0 or -errno). *out and *n receive the array even on failure (a partial
 * one, for the caller's own release). Lock held. */
static int collect(struct db *db, enum stmt id, bool has_key, int64_t key,
		   size_t sz, int (*row)(sqlite3_stmt *s, void *elem),
		   void **out, size_t *n, const char *what)
{
	sqlite3_stmt *s = stmt(db, id);
	size_t cnt = 0, cap = 0;
	void *arr = NULL;
	int rc = SQLITE_DONE, ret = 0;

	if (!s)
		ret = -EIO;
	else if (has_key)
		sqlite3_bind_int64(s, 1, key);
	while (!ret && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		ret = grow(&arr, &cap, cnt, sz);
		if (!ret)
			ret = row(s, (char *)arr + cnt * sz);
		if (!ret)
			cnt++;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = db_errno(db, sqlite3_extended_errcode(db->conn), what);
	done(s);
	*out = arr;
	*n = cnt;
	return ret;
}

static int tenant_list_row(sqlite3_stmt *s, void *elem)
{
	struct db_tenant *t = elem;

	tenant_row(s, t);
	t->nr_functions = sqlite3_column_int64(s, 6);
	return 0;
}

int db_tenant_list(struct db *db, struct db_tenant **out, size_t *n)
{
	int ret;

	pthread_mutex_lock(&db->lock);
	ret = collect(db, ST_TENANT_LIST, false, 0, sizeof(**out),
		      tenant_list_row, (void **)out, n, "tenant list");
	pthread_mutex_unlock(&db->lock);
	if (ret)
		free(*out);
	return ret;
}

int db_tenant_delete(struct db *db, int64_t tenant_id)
{
	int ret, changed = 0;

	pthread_mutex_lock(&db->lock);
	ret = run(db, ST_TENANT_DELETE, &changed, "i", tenant_id);
	if (!ret && !changed)
		ret = -ENOENT;
	db->gen++;
	pthread_mutex_unlock(&db->lock);
	return ret;
}

int db_tenant_set_limits(struct db *db, int64_t tenant_id,
			 const struct db_limits *l)
{
	int ret, changed = 0;

	pthread_mutex_lock(&db->lock);
	ret = run(db, ST_TENANT_LIMITS, &changed, "innn", tenant_id,
		  l->instances, l->memory_mib, l->concurrency);
	if (!ret && !changed)
		ret = -ENOENT;
	db->gen++; /* cached tenants carry their limits */
	pthread_mutex_unlock(&db->lock);
	return ret;
}

int db_token_create(struct db *db, int64_t tenant_id, const char *id,
		    const uint8_t hash[DB_HASH_LEN], struct db_token *out)
{
	sqlite3_stmt *s;
	int ret = -EIO;

	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", id);
	util_time_iso8601(out->created);
	pthread_mutex_lock(&db->lock);
	s = stmt(db, ST_TOKEN_CREATE);
	if (s) {
		bind_text(s, 1, id);
		sqlite3_bind_int64(s, 2, tenant_id);
		sqlite3_bind_blob(s, 3, hash, DB_HASH_LEN, SQLITE_TRANSIENT);
		bind_text(s, 4, out->created);
		ret = step_done(db, s, "token create");
	}
	pthread_mutex_unlock(&db->lock);
	return ret;
}

/* Constant-time comparison of two hashes: the time taken never depends on
 * where they differ. */
static bool hash_equal(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t d = 0;

	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

int db_token_find(struct db *db, const uint8_t hash[DB_HASH_LEN],
		  struct db_tenant *tenant)
{
	struct token_slot *slot;
	sqlite3_stmt *s;
	uint32_t h;
	int ret = -EIO;

	/* The hash of a 256-bit random token is uniform: its first bytes
	 * are a fine slot index. */
	memcpy(&h, hash, sizeof(h));
	slot = &db->tokens[h & (CACHE_SLOTS - 1)];
	pthread_mutex_lock(&db->lock);
	if (slot->gen == db->gen && hash_equal(slot->hash, hash, DB_HASH_LEN)) {
		*tenant = slot->tenant;
		pthread_mutex_unlock(&db->lock);
		return 0;
	}
	s = stmt(db, ST_TOKEN_FIND);
	if (s) {
		sqlite3_bind_blob(s, 1, hash, DB_HASH_LEN, SQLITE_STATIC);
		ret = step_one(db, s, "token find");
		if (!ret) {
			/* The index found the row by the hash; compare the
			 * stored hash once more in constant time, so the
			 * decision itself never rests on an early-exit
			 * comparison. */
			ret = -ENOENT;
			if (sqlite3_column_bytes(s, 6) == DB_HASH_LEN &&
			    hash_equal(sqlite3_column_blob(s, 6), hash,
				       DB_HASH_LEN)) {
				tenant_row(s, tenant);
				memcpy(slot->hash, hash, DB_HASH_LEN);
				slot->tenant = *tenant;
				slot->gen = db->gen;
				ret = 0;
			}
		}
		done(s);
	}
	pthread_mutex_unlock(&db->lock);
	return ret;
}

static int token_row(sqlite3_stmt *s, void *elem)
{
	struct db_token *t = elem;

	col_copy(s, 0, t->id, sizeof(t->id));
	col_copy(s, 1, t->created, sizeof(t->created));
	return 0;
}

int db_token_list(struct db *db, int64_t tenant_id, struct db_token **out,
		  size_t *n)
{
	int ret;

	pthread_mutex_lock(&db->lock);
	ret = collect(db, ST_TOKEN_LIST, true, tenant_id, sizeof(**out),
		      token_row, (void **)out, n, "token list");
	pthread_mutex_unlock(&db->lock);
	if (ret)
		free(*out);
	return ret;
}

int db_token_delete(struct db *db, int64_t tenant_id, const char *id)
{
	int ret, changed = 0;

	pthread_mutex_lock(&db->lock);
	ret = run(db, ST_TOKEN_DELETE, &changed, "it", tenant_id, id);
	if (!ret && !changed)
		ret = -ENOENT;
	db->gen++;
	pthread_mutex_unlock(&db->lock);
	return ret;
}

/* ---------------------------------------------------------------------
 * Functions and versions
 */

void db_function_free(struct db_function *f)
{
	if (!f)
		return;
	free(f->manifest);
	free(f->dir);
	f->manifest = f->dir = NULL;
}

void db_function_free_array(struct db_function *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		db_function_free(&f[i]);
	free(f);
}

static int function_row(sqlite3_stmt *s, struct db_function *f)
{
	int ret = 0;

	memset(f, 0, sizeof(*f));
	f->id = sqlite3_column_int64(s, 0);
	f->tenant_id = sqlite3_column_int64(s, 1);
	col_copy(s, 2, f->name, sizeof(f->name));
	col_copy(s, 3, f->created, sizeof(f->created));
	f->version = (uint32_t)sqlite3_column_int64(s, 4);
	col_copy(s, 5, f->version_created, sizeof(f->version_created));
	f->manifest = col_dup(s, 6, &ret);
	f->dir = col_dup(s, 7, &ret);
	f->deploying = sqlite3_column_int(s, 8) != 0;
	f->min_instances = (uint32_t)sqlite3_column_int64(s, 9);
	f->idle_ttl_ms = sqlite3_column_int64(s, 10);
	col_copy(s, 11, f->tenant, sizeof(f->tenant));
	if (ret)
		db_function_free(f);
	return ret;
}

static int function_get(struct db *db, enum stmt id, int64_t key,
			const char *name, struct db_function *out)
{
	sqlite3_stmt *s;
	int ret = -EIO;

	pthread_mutex_lock(&db->lock);
	s = stmt(db, id);
	if (s) {
		sqlite3_bind_int64(s, 1, key);
		if (name)
			bind_text(s, 2, name);
		ret = step_one(db, s, "function get");
		if (!ret)
			ret = function_row(s, out);
		done(s);
	}
	pthread_mutex_unlock(&db->lock);
	return ret;
}

int db_function_get(struct db *db, int64_t tenant_id, const char *name,
		    struct db_function *out)
{
	return function_get(db, ST_FN_GET, tenant_id, name, out);
}

static uint32_t fn_slot_index(int64_t tenant_id, const char *name)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)tenant_id;

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	return (uint32_t)(h & (CACHE_SLOTS - 1));
}

int db_function_lookup(struct db *db, int64_t tenant_id, const char *name,
		       struct db_fn_ref *out)
{
	struct fn_slot *slot = &db->fns[fn_slot_index(tenant_id, name)];
	sqlite3_stmt *s;
	int ret = -EIO;

	pthread_mutex_lock(&db->lock);
	if (slot->gen == db->gen && slot->tenant_id == tenant_id &&
	    !strcmp(slot->name, name)) {
		*out = slot->ref;
		pthread_mutex_unlock(&db->lock);
		return 0;
	}
	s = stmt(db, ST_FN_LOOKUP);
	if (s) {
		sqlite3_bind_int64(s, 1, tenant_id);
		bind_text(s, 2, name);
		ret = step_one(db, s, "function lookup");
		if (!ret) {
			out->id = sqlite3_column_int64(s, 0);
			out->version = (uint32_t)sqlite3_column_int64(s, 1);
			out->deploying = sqlite3_column_int(s, 2) != 0;
			slot->tenant_id = tenant_id;
			util_copy(slot->name, sizeof(slot->name), name);
			slot->ref = *out;
			slot->gen = db->gen;
		}
		done(s);
	}
	pthread_mutex_unlock(&db->lock);
	return ret;
}

int db_function_get_by_id(struct db *db, int64_t fn_id,
			  struct db_function *out)
{
	return function_get(db, ST_FN_GET_BY_ID, fn_id, NULL, out);
}

static int function_list_row(sqlite3_stmt *s, void *elem)
{
	return function_row(s, elem);
}

int db_function_list(struct db *db, int64_t tenant_id,
		     struct db_function **out, size_t *n)
{
	int ret;

	pthread_mutex_lock(&db->lock);
	ret = collect(db, tenant_id > 0 ? ST_FN_LIST : ST_FN_LIST_ALL,
		      tenant_id > 0, tenant_id, sizeof(**out),
		      function_list_row, (void **)out, n, "function list");
	pthread_mutex_unlock(&db->lock);
	if (ret)
		db_function_free_array(*out, *n);
	return ret;
}

/* Whether a deploy of (tenant, function) is running; its id into busy_id.
 * Lock held. */
static int deploy_running(struct db *db, int64_t tenant_id,
			  const char *function, char busy_id[DB_ID_MAX])
{
	sqlite3_stmt *s = stmt(db, ST_DEPLOY_RUNNING);
	int ret = -EIO;

	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, tenant_id);
	bind_text(s, 2, function);
	ret = step_one(db, s, "deploy running");
	if (!ret) {
		if (busy_id)
			col_copy(s, 0, busy_id, DB_ID_MAX);
		ret = -EBUSY;
	} else if (ret == -ENOENT) {
		ret = 0;
	}
	done(s);
	return ret;
}

int db_function_set_scaling(struct db *db, int64_t fn_id,
			    uint32_t min_instances, int64_t idle_ttl_ms)
{
	int ret, changed = 0;

	pthread_mutex_lock(&db->lock);
	ret = run(db, ST_FN_SCALING, &changed, "iin", fn_id,
		  (int64_t)min_instances, idle_ttl_ms);
	if (!ret && !changed)
		ret = -ENOENT;
	db->gen++;
	pthread_mutex_unlock(&db->lock);
	return ret;
}

int db_function_delete(struct db *db, int64_t fn_id)
{
	struct db_function f;
	int ret, changed = 0;

	ret = db_function_get_by_id(db, fn_id, &f);
	if (ret)
		return ret;
	db_function_free(&f);
	pthread_mutex_lock(&db->lock);
	ret = tx_begin(db);
	if (ret)
		goto out;
	ret = deploy_running(db, f.tenant_id, f.name, NULL);
	if (!ret)
		ret = run(db, ST_FN_DELETE, &changed, "i", fn_id);
	if (!ret && !changed)
		ret = -ENOENT;
	ret = tx_end(db, ret);
out:
	pthread_mutex_unlock(&db->lock);
	return ret;
}

void db_version_free_array(struct db_version *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].manifest);
		free(v[i].dir);
	}
	free(v);
}

static int version_row(sqlite3_stmt *s, void *elem)
{
	struct db_version *v = elem;
	int ret = 0;

	v->version = (uint32_t)sqlite3_column_int64(s, 0);
	col_copy(s, 1, v->created, sizeof(v->created));
	v->current = sqlite3_column_int(s, 2) != 0;
	v->manifest = col_dup(s, 3, &ret);
	v->dir = col_dup(s, 4, &ret);
	if (ret) {
		free(v->manifest);
		free(v->dir);
	}
	return ret;
}

int db_version_list(struct db *db, int64_t fn_id, struct db_version **out,
		    size_t *n)
{
	int ret;

	pthread_mutex_lock(&db->lock);
	ret = collect(db, ST_VERSION_LIST, true, fn_id, sizeof(**out),
		      version_row, (void **)out, n, "version list");
	pthread_mutex_unlock(&db->lock);
	if (ret)
		db_version_free_array(*out, *n);
	return ret;
}

void db_strings_free(char **s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(s[i]);
	free(s);
}

/* One text column as a malloc'd string (NULL columns are refused). */
static int string_row(sqlite3_stmt *s, void *elem)
{
	char **str = elem;
	int ret = 0;

	*str = col_dup(s, 0, &ret);
	return ret ? ret : *str ? 0 : -EINVAL;
}

int db_version_dirs(struct db *db, char ***out, size_t *n)
{
	int ret;

	pthread_mutex_lock(&db->lock);
	ret = collect(db, ST_VERSION_DIRS, false, 0, sizeof(**out), string_row,
		      (void **)out, n, "version dirs");
	pthread_mutex_unlock(&db->lock);
	if (ret)
		db_strings_free(*out, *n);
	return ret;
}

/* ---------------------------------------------------------------------
 * Deploys
 */

int db_deploy_begin(struct db *db, int64_t tenant_id, const char *function,
		    const char *id, int64_t *fn_id, bool *created,
		    char busy_id[DB_ID_MAX])
{
	char now[UTIL_TIME_LEN];
	sqlite3_stmt *s;
	int ret;

	util_time_iso8601(now);
	*created = false;
	pthread_mutex_lock(&db->lock);
	ret = tx_begin(db);
	if (ret)
		goto out;
	ret = deploy_running(db, tenant_id, function, busy_id);
	if (ret)
		goto end;
	/* The function row: found, or created for this first deploy. */
	s = stmt(db, ST_FN_GET);
	ret = -EIO;
	if (!s)
		goto end;
	sqlite3_bind_int64(s, 1, tenant_id);
	bind_text(s, 2, function);
	ret = step_one(db, s, "deploy begin");
	if (!ret)
		*fn_id = sqlite3_column_int64(s, 0);
	done(s);
	if (ret == -ENOENT) {
		ret = run(db, ST_FN_INSERT, NULL, "itt", tenant_id, function,
			  now);
		if (ret)
			goto end;
		*fn_id = sqlite3_last_insert_rowid(db->conn);
		*created = true;
	}
	if (!ret)
		ret = run(db, ST_DEPLOY_INSERT, NULL, "titt", id, tenant_id,
			  function, now);
end:
	ret = tx_end(db, ret);
out:
	pthread_mutex_unlock(&db->lock);
	return ret;
}

int db_deploy_step(struct db *db, const char *id, const char *step,
		   const char *detail)
{
	char now[UTIL_TIME_LEN];
	int ret;

	util_time_iso8601(now);
	pthread_mutex_lock(&db->lock);
	ret = run(db, ST_DEPLOY_STEP, NULL, "tttt", id, step,
		  detail ? detail : "", now);
	pthread_mutex_unlock(&db->lock);
	return ret;
}

int db_deploy_next_version(struct db *db, int64_t fn_id, uint32_t *version)
{
	sqlite3_stmt *s;
	int ret = -EIO;

	pthread_mutex_lock(&db->lock);
	s = stmt(db, ST_VERSION_MAX);
	if (s) {
		sqlite3_bind_int64(s, 1, fn_id);
		if (sqlite3_step(s) == SQLITE_ROW) {
			*version = (uint32_t)sqlite3_column_int64(s, 0) + 1;
			ret = 0;
		} else {
			ret = db_errno(db, sqlite3_extended_errcode(db->conn),
				       "next version");
		}
		done(s);
	}
	pthread_mutex_unlock(&db->lock);
	return ret;
}

int db_deploy_succeed(struct db *db, const char *id, int64_t fn_id,
		      uint32_t version, const char *manifest, const char *dir,
		      const char *snap_dir, uint32_t memory_mib)
{
	char now[UTIL_TIME_LEN], detail[64];
	int ret, changed = 0;

	util_time_iso8601(now);
	snprintf(detail, sizeof(detail), "version %u is current", version);
	pthread_mutex_lock(&db->lock);
	ret = tx_begin(db);
	if (ret)
		goto out;
	ret = run(db, ST_VERSION_INSERT, NULL, "iitttt", fn_id,
		  (int64_t)version, now, manifest, dir, id);
	if (!ret)
		ret = run(db, ST_SNAPSHOT_INSERT, NULL, "iitit", fn_id,
			  (int64_t)version, snap_dir, (int64_t)memory_mib, now);
	if (!ret)
		ret = run(db, ST_FN_SET_CURRENT, &changed, "ii", fn_id,
			  (int64_t)version);
	if (!ret && changed != 1)
		ret = -ENOENT;
	if (!ret)
		ret = run(db, ST_DEPLOY_SUCCEED, &changed, "tit", id,
			  (int64_t)version, now);
	if (!ret && changed != 1)
		ret = -ENOENT;
	/* The last progress record commits with the switch it reports. */
	if (!ret)
		ret = run(db, ST_DEPLOY_STEP, NULL, "tttt", id, "activate",
			  detail, now);
	ret = tx_end(db, ret);
out:
	pthread_mutex_unlock(&db->lock);
	return ret;
}

/* db_deploy_fail's work with the lock held and a transaction open. */
static int deploy_fail_locked(struct db *db, const char *id, const char *step,
			      const char *message, const char *output,
			      const char *now)
{
	char function[UTIL_NAME_MAX + 1];
	int64_t tenant_id;
	sqlite3_stmt *s;
	int ret, changed = 0;

	s = stmt(db, ST_DEPLOY_FN);
	if (!s)
		return -EIO;
	bind_text(s, 1, id);
	if (sqlite3_step(s) != SQLITE_ROW) {
		done(s);
		return -ENOENT;
	}
	tenant_id = sqlite3_column_int64(s, 0);
	col_copy(s, 1, function, sizeof(function));
	done(s);

	ret = run(db, ST_DEPLOY_FAIL, &changed, "ttttt", id, step, message,
		  output, now);
	if (ret)
		return ret;
	if (changed != 1)
		return -ENOENT; /* not running any more */
	/* A first deploy that failed leaves no function behind. */
	return run(db, ST_FN_DELETE_IF_EMPTY, NULL, "it", tenant_id, function);
}

int db_deploy_fail(struct db *db, const char *id, const char *step,
		   const char *message, const char *output)
{
	char now[UTIL_TIME_LEN];
	int ret;

	util_time_iso8601(now);
	pthread_mutex_lock(&db->lock);
	ret = tx_begin(db);
	if (!ret) {
		ret = deploy_fail_locked(db, id, step, message, output, now);
		ret = tx_end(db, ret);
	}
	pthread_mutex_unlock(&db->lock);
	return ret;
}

int db_deploy_fail_interrupted(struct db *db, size_t *n)
{
	char now[UTIL_TIME_LEN], **ids = NULL;
	size_t cnt = 0;
	int ret;

	util_time_iso8601(now);
	*n = 0;
	pthread_mutex_lock(&db->lock);
	ret = tx_begin(db);
	if (ret)
		goto out;
	ret = collect(db, ST_DEPLOY_LIST_RUNNING, false, 0, sizeof(*ids),
		      string_row, (void **)&ids, &cnt, "running deploys");
	for (size_t i = 0; !ret && i < cnt; i++)
		ret = deploy_fail_locked(db, ids[i], "interrupted",
					 "emberd stopped before the deploy "
					 "finished; nothing was changed",
					 NULL, now);
	ret = tx_end(db, ret);
	if (!ret)
		*n = cnt;
out:
	pthread_mutex_unlock(&db->lock);
	db_strings_free(ids, cnt);
	return ret;
}

void db_deploy_free(struct db_deploy *d)
{
	if (!d)
		return;
	free(d->error_step);
	free(d->error_message);
	free(d->error_output);
	for (size_t i = 0; i < d->nr_steps; i++)
		free(d->steps[i].detail);
	free(d->steps);
	memset(d, 0, sizeof(*d));
}

static int step_row(sqlite3_stmt *s, void *elem)
{
	struct db_deploy_step *st = elem;
	int ret = 0;

	col_copy(s, 0, st->step, sizeof(st->step));
	st->detail = col_dup(s, 1, &ret);
	col_copy(s, 2, st->at, sizeof(st->at));
	return ret;
}

int db_deploy_get(struct db *db, int64_t tenant_id, const char *id,
		  struct db_deploy *out)
{
	sqlite3_stmt *s;
	int rc, ret = -EIO;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&db->lock);
	s = stmt(db, ST_DEPLOY_GET);
	if (!s)
		goto out;
	sqlite3_bind_int64(s, 1, tenant_id);
	bind_text(s, 2, id);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		ret = rc == SQLITE_DONE ? -ENOENT :
		      db_errno(db, sqlite3_extended_errcode(db->conn),
			       "deploy get");
		done(s);
		goto out;
	}
	ret = 0;
	col_copy(s, 0, out->id, sizeof(out->id));
	col_copy(s, 1, out->function, sizeof(out->function));
	col_copy(s, 2, out->state, sizeof(out->state));
	out->version = (uint32_t)sqlite3_column_int64(s, 3);
	col_copy(s, 4, out->created, sizeof(out->created));
	col_copy(s, 5, out->finished, sizeof(out->finished));
	out->error_step = col_dup(s, 6, &ret);
	out->error_message = col_dup(s, 7, &ret);
	out->error_output = col_dup(s, 8, &ret);
	done(s);
	if (ret)
		goto out;
	/* Steps are keyed by the deploy's (text) id: bound here, then the
	 * statement is collected like the others. */
	s = stmt(db, ST_DEPLOY_STEPS);
	if (!s) {
		ret = -EIO;
		goto out;
	}
	bind_text(s, 1, id);
	ret = collect(db, ST_DEPLOY_STEPS, false, 0, sizeof(*out->steps),
		      step_row, (void **)&out->steps, &out->nr_steps,
		      "deploy steps");
out:
	pthread_mutex_unlock(&db->lock);
	if (ret)
		db_deploy_free(out);
	return ret;
}
