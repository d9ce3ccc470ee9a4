/* Unit tests: emberd's storage (agent/db.c) on a real SQLite file in a
 * temporary directory. Migrations (fresh, reopened, a newer schema
 * refused), tenants and tokens (unique names, lookups by hash, revocation,
 * cascades), and the deploy records: the switch of the current version in
 * one transaction, a failed first deploy leaving no function behind, one
 * deploy per function at a time, interrupted deploys failed at start. */
// link: agent/db.c agent/util.c vmm/log.c
// libs: -lsqlite3
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "agent/db.h"
#include "agent/util.h"

struct fixture {
	char dir[64];
	char path[128];
	struct db *db;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/ember-test-db.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/ember.db", f->dir);
	f->db = db_open(f->path, err, sizeof(err));
	if (!f->db) {
		fprintf(stderr, "db_open: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	db_close(f->db);
	util_rm_tree(AT_FDCWD, f->dir);
	free(f);
	return 0;
}

static void hash_of(uint8_t h[DB_HASH_LEN], uint8_t seed)
{
	for (int i = 0; i < DB_HASH_LEN; i++)
		h[i] = (uint8_t)(seed * 31 + i);
}

static void test_migrations(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";
	struct db *db2;
	sqlite3 *raw;

	assert_true(db_schema_latest() >= 1);
	assert_int_equal(db_schema_version(f->db), db_schema_latest());
	/* Reopening runs nothing new and keeps the data. */
	assert_int_equal(db_setting_set(f->db, "k", "v", 1), 0);
	db_close(f->db);
	f->db = db_open(f->path, err, sizeof(err));
	assert_non_null(f->db);
	{
		char v[4];
		size_t len;

		assert_int_equal(db_setting_get(f->db, "k", v, sizeof(v), &len),
				 0);
		assert_int_equal(len, 1);
		assert_int_equal(v[0], 'v');
	}
	/* A database from a newer emberd is refused, saying so. */
	assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "pragma user_version = 999", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(raw);
	db2 = db_open(f->path, err, sizeof(err));
	assert_null(db2);
	assert_non_null(strstr(err, "newer emberd"));
	/* A database at schema 2 (tenants, functions, the ledger: as an
	 * emberd before the scaling settings left it) is migrated on open,
	 * its rows kept. */
	assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw,
				      "insert into tenants(name, created) "
				      "values ('old', 'x');"
				      "alter table tenants drop column max_instances;"
				      "alter table tenants drop column max_memory_mib;"
				      "alter table tenants drop column max_concurrency;"
				      "alter table functions drop column min_instances;"
				      "alter table functions drop column idle_ttl_ms;"
				      "pragma user_version = 2",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(raw);
	db_close(f->db);
	f->db = db_open(f->path, err, sizeof(err));
	assert_non_null(f->db);
	assert_int_equal(db_schema_version(f->db), db_schema_latest());
	{
		struct db_limits l = { 5, DB_LIMIT_DEFAULT, 0 };
		struct db_tenant t;

		assert_int_equal(db_tenant_get(f->db, "old", &t), 0);
		assert_int_equal(t.limits.instances, DB_LIMIT_DEFAULT);
		assert_int_equal(db_tenant_set_limits(f->db, t.id, &l), 0);
		assert_int_equal(db_tenant_get(f->db, "old", &t), 0);
		assert_int_equal(t.limits.instances, 5);
		assert_int_equal(t.limits.memory_mib, DB_LIMIT_DEFAULT);
		assert_int_equal(t.limits.concurrency, 0);
	}
}

static void test_tenants_and_tokens(void **state)
{
	struct fixture *f = *state;
	struct db_tenant a, b, got, *list;
	struct db_token tk, *tks;
	uint8_t h1[DB_HASH_LEN], h2[DB_HASH_LEN], h3[DB_HASH_LEN];
	size_t n;

	assert_int_equal(db_tenant_create(f->db, "acme", &a), 0);
	assert_int_equal(db_tenant_create(f->db, "beta", &b), 0);
	assert_int_equal(db_tenant_create(f->db, "acme", &got), -EEXIST);
	assert_int_equal(db_tenant_get(f->db, "acme", &got), 0);
	assert_int_equal(got.id, a.id);
	assert_string_equal(got.created, a.created);
	assert_int_equal(db_tenant_get(f->db, "nobody", &got), -ENOENT);
	assert_int_equal(db_tenant_list(f->db, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "acme");
	assert_string_equal(list[1].name, "beta");
	free(list);

	hash_of(h1, 1);
	hash_of(h2, 2);
	hash_of(h3, 3);
	assert_int_equal(db_token_create(f->db, a.id, "tk_1", h1, &tk), 0);
	assert_int_equal(db_token_create(f->db, a.id, "tk_2", h2, &tk), 0);
	assert_int_equal(db_token_create(f->db, b.id, "tk_3", h3, &tk), 0);
	/* The same hash twice would make a token ambiguous. */
	assert_int_equal(db_token_create(f->db, b.id, "tk_4", h1, &tk), -EEXIST);
	assert_int_equal(db_token_find(f->db, h2, &got), 0);
	assert_string_equal(got.name, "acme");
	assert_int_equal(db_token_find(f->db, h3, &got), 0);
	assert_string_equal(got.name, "beta");
	assert_int_equal(db_token_list(f->db, a.id, &tks, &n), 0);
	assert_int_equal(n, 2);
	free(tks);
	/* A tenant revokes only its own tokens; a revoked token is refused
	 * at once although its lookup was cached just before. */
	assert_int_equal(db_token_find(f->db, h1, &got), 0);
	assert_int_equal(db_token_find(f->db, h1, &got), 0);
	assert_int_equal(db_token_delete(f->db, b.id, "tk_1"), -ENOENT);
	assert_int_equal(db_token_delete(f->db, a.id, "tk_1"), 0);
	assert_int_equal(db_token_find(f->db, h1, &got), -ENOENT);
	assert_int_equal(db_token_delete(f->db, a.id, "tk_1"), -ENOENT);
	/* Deleting a tenant takes its tokens. */
	assert_int_equal(db_tenant_delete(f->db, a.id), 0);
	assert_int_equal(db_token_find(f->db, h2, &got), -ENOENT);
	assert_int_equal(db_token_find(f->db, h3, &got), 0);
	assert_int_equal(db_tenant_delete(f->db, a.id), -ENOENT);
}

static void test_deploy_switch(void **state)
{
	struct fixture *f = *state;
	char busy[DB_ID_MAX] = "";
	struct db_function fn, *fns;
	struct db_version *vs;
	struct db_deploy d;
	struct db_tenant t;
	int64_t fn_id, fn_id2;
	uint32_t v;
	bool created;
	size_t n;
	char **dirs;

	assert_int_equal(db_tenant_create(f->db, "acme", &t), 0);
	/* First deploy: the function appears, without a version. */
	assert_int_equal(db_deploy_begin(f->db, t.id, "hello", "dp_1", &fn_id,
					 &created, busy), 0);
	assert_true(created);
	assert_int_equal(db_function_get(f->db, t.id, "hello", &fn), 0);
	assert_int_equal(fn.version, 0);
	assert_true(fn.deploying);
	assert_null(fn.manifest);
	db_function_free(&fn);
	/* One deploy per function at a time. */
	assert_int_equal(db_deploy_begin(f->db, t.id, "hello", "dp_2", &fn_id2,
					 &created, busy), -EBUSY);
	assert_string_equal(busy, "dp_1");
	assert_int_equal(db_function_delete(f->db, fn_id), -EBUSY);
	assert_int_equal(db_deploy_step(f->db, "dp_1", "extract", "2 files"), 0);
	assert_int_equal(db_deploy_step(f->db, "dp_1", "boot", "READY"), 0);
	assert_int_equal(db_deploy_next_version(f->db, fn_id, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(db_deploy_succeed(f->db, "dp_1", fn_id, 1, "{\"a\":1}",
					   "functions/1/v1",
					   "functions/1/v1/snapshot", 128), 0);
	assert_int_equal(db_function_get(f->db, t.id, "hello", &fn), 0);
	assert_int_equal(fn.version, 1);
	assert_false(fn.deploying);
	assert_string_equal(fn.manifest, "{\"a\":1}");
	{
		struct db_fn_ref ref;

		/* The cached lookup follows every change. */
		assert_int_equal(db_function_lookup(f->db, t.id, "hello", &ref),
				 0);
		assert_int_equal(ref.id, fn_id);
		assert_int_equal(ref.version, 1);
		assert_int_equal(db_function_lookup(f->db, t.id, "nope", &ref),
				 -ENOENT);
	}
	assert_string_equal(fn.dir, "functions/1/v1");
	db_function_free(&fn);
	assert_int_equal(db_deploy_get(f->db, t.id, "dp_1", &d), 0);
	assert_string_equal(d.state, "succeeded");
	assert_int_equal(d.version, 1);
	assert_int_equal(d.nr_steps, 3);
	assert_string_equal(d.steps[0].step, "extract");
	assert_string_equal(d.steps[1].detail, "READY");
	/* The switch records its own step, in its transaction. */
	assert_string_equal(d.steps[2].step, "activate");
	assert_string_equal(d.steps[2].detail, "version 1 is current");
	db_deploy_free(&d);

	/* A failed second deploy changes nothing. */
	assert_int_equal(db_deploy_begin(f->db, t.id, "hello", "dp_2", &fn_id2,
					 &created, busy), 0);
	assert_false(created);
	assert_int_equal(fn_id2, fn_id);
	assert_int_equal(db_deploy_fail(f->db, "dp_2", "boot", "no READY",
					"init: boom"), 0);
	assert_int_equal(db_function_get(f->db, t.id, "hello", &fn), 0);
	assert_int_equal(fn.version, 1);
	db_function_free(&fn);
	assert_int_equal(db_deploy_get(f->db, t.id, "dp_2", &d), 0);
	assert_string_equal(d.state, "failed");
	assert_string_equal(d.error_step, "boot");
	assert_string_equal(d.error_output, "init: boom");
	db_deploy_free(&d);
	/* Failing twice is refused (it is no longer running). */
	assert_int_equal(db_deploy_fail(f->db, "dp_2", "boot", "x", NULL),
			 -ENOENT);

	/* A third deploy becomes version 2; both are listed, 2 current. */
	assert_int_equal(db_deploy_begin(f->db, t.id, "hello", "dp_3", &fn_id2,
					 &created, busy), 0);
	assert_int_equal(db_deploy_next_version(f->db, fn_id, &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(db_deploy_succeed(f->db, "dp_3", fn_id, 2, "{}",
					   "functions/1/v2",
					   "functions/1/v2/snapshot", 64), 0);
	{
		struct db_fn_ref ref;

		assert_int_equal(db_function_lookup(f->db, t.id, "hello", &ref),
				 0);
		assert_int_equal(ref.version, 2);
		assert_false(ref.deploying);
	}
	assert_int_equal(db_version_list(f->db, fn_id, &vs, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(vs[0].version, 2);
	assert_true(vs[0].current);
	assert_false(vs[1].current);
	db_version_free_array(vs, n);
	assert_int_equal(db_version_dirs(f->db, &dirs, &n), 0);
	assert_int_equal(n, 2);
	db_strings_free(dirs, n);

	/* Another tenant's deploy and function are invisible. */
	{
		struct db_tenant o;

		assert_int_equal(db_tenant_create(f->db, "other", &o), 0);
		assert_int_equal(db_deploy_get(f->db, o.id, "dp_1", &d), -ENOENT);
		assert_int_equal(db_function_get(f->db, o.id, "hello", &fn),
				 -ENOENT);
		assert_int_equal(db_function_list(f->db, o.id, &fns, &n), 0);
		assert_int_equal(n, 0);
		db_function_free_array(fns, n);
	}
	/* Deleting the function takes its versions. */
	assert_int_equal(db_function_delete(f->db, fn_id), 0);
	{
		struct db_fn_ref ref;

		assert_int_equal(db_function_lookup(f->db, t.id, "hello", &ref),
				 -ENOENT);
	}
	assert_int_equal(db_version_dirs(f->db, &dirs, &n), 0);
	assert_int_equal(n, 0);
	db_strings_free(dirs, n);
}

static void test_first_deploy_fails(void **state)
{
	struct fixture *f = *state;
	char busy[DB_ID_MAX];
	struct db_function fn;
	struct db_deploy d;
	struct db_tenant t;
	int64_t fn_id;
	bool created;

	assert_int_equal(db_tenant_create(f->db, "acme", &t), 0);
	assert_int_equal(db_deploy_begin(f->db, t.id, "bad", "dp_9", &fn_id,
					 &created, busy), 0);
	assert_int_equal(db_deploy_fail(f->db, "dp_9", "manifest",
					"runtime: unknown", NULL), 0);
	/* No function left behind; the record stays readable. */
	assert_int_equal(db_function_get(f->db, t.id, "bad", &fn), -ENOENT);
	assert_int_equal(db_deploy_get(f->db, t.id, "dp_9", &d), 0);
	assert_string_equal(d.function, "bad");
	assert_string_equal(d.error_message, "runtime: unknown");
	db_deploy_free(&d);
	/* The version of a deleted function cannot be recorded. */
	assert_int_equal(db_deploy_begin(f->db, t.id, "gone", "dp_10", &fn_id,
					 &created, busy), 0);
	assert_int_equal(db_tenant_delete(f->db, t.id), 0);
	assert_int_equal(db_deploy_succeed(f->db, "dp_10", fn_id, 1, "{}",
					   "functions/9/v1", "x", 1), -ENOENT);
}

static void test_interrupted(void **state)
{
	struct fixture *f = *state;
	char busy[DB_ID_MAX], err[256];
	struct db_function fn;
	struct db_deploy d;
	struct db_tenant t;
	int64_t id1, id2;
	bool created;
	size_t n;

	assert_int_equal(db_tenant_create(f->db, "acme", &t), 0);
	/* Function "old" has version 1 and a second deploy running; "new"
	 * has only its first deploy running. */
	assert_int_equal(db_deploy_begin(f->db, t.id, "old", "dp_1", &id1,
					 &created, busy), 0);
	assert_int_equal(db_deploy_succeed(f->db, "dp_1", id1, 1, "{}",
					   "functions/1/v1", "s", 1), 0);
	assert_int_equal(db_deploy_begin(f->db, t.id, "old", "dp_2", &id1,
					 &created, busy), 0);
	assert_int_equal(db_deploy_begin(f->db, t.id, "new", "dp_3", &id2,
					 &created, busy), 0);
	/* emberd dies here; the next one opens the same file. */
	db_close(f->db);
	f->db = db_open(f->path, err, sizeof(err));
	assert_non_null(f->db);
	assert_int_equal(db_deploy_fail_interrupted(f->db, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(db_function_get(f->db, t.id, "old", &fn), 0);
	assert_int_equal(fn.version, 1);
	assert_false(fn.deploying);
	db_function_free(&fn);
	assert_int_equal(db_function_get(f->db, t.id, "new", &fn), -ENOENT);
	assert_int_equal(db_deploy_get(f->db, t.id, "dp_2", &d), 0);
	assert_string_equal(d.state, "failed");
	assert_string_equal(d.error_step, "interrupted");
	db_deploy_free(&d);
	assert_int_equal(db_deploy_fail_interrupted(f->db, &n), 0);
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenants_and_tokens, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deploy_switch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_first_deploy_fails, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_interrupted, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
