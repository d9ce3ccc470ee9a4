/*
 * db.h - emberd's storage: the one module that talks to SQLite.
 *
 * Owns: the database file in the state directory (WAL journal,
 * synchronous=FULL, foreign keys on), its schema and migrations
 * (agent/schema.sql, applied by version number at open), and every
 * statement emberd runs. Tenants, token hashes, functions, versions,
 * snapshots and deploy records live here and nowhere else: the files under
 * the state directory are only trusted when a row here names them.
 *
 * Does not: validate names (callers pass names util_name_valid() accepted),
 * hash tokens (auth.c), or touch files.
 *
 * Threads: one connection behind a mutex; every function may be called from
 * any thread. The two lookups every invocation makes (a token's tenant, a
 * function's id and version) are answered from a small cache that any
 * change to tenants, tokens, functions or versions empties, so a revoked
 * token or a new version is seen by the very next request. Functions return 0 or a negative errno: -ENOENT (no such row),
 * -EEXIST (unique name taken), -EBUSY (a deploy of that function is
 * running), -ENOMEM, -EIO (SQLite failed; the reason is logged).
 */
#ifndef EMBER_AGENT_DB_H
#define EMBER_AGENT_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/util.h"

#define DB_HASH_LEN 32 /* SHA-256 */
#define DB_ID_MAX 32   /* "tk_" / "dp_" + 16 hex digits, with room */

struct db;

/* Opens (creating if missing) the database at path and migrates it to the
 * schema's last version. NULL and a one-line reason in err on failure,
 * including a database written by a newer emberd. */
struct db *db_open(const char *path, char *err, size_t errlen);
void db_close(struct db *db);

/* The schema version the open database is at (PRAGMA user_version). */
int db_schema_version(struct db *db);
/* The last migration in agent/schema.sql. */
int db_schema_latest(void);

/* Small named values (the admin token's hash). get copies at most cap
 * bytes into buf and the value's length into *len; -ENOENT if unset. */
int db_setting_get(struct db *db, const char *key, void *buf, size_t cap,
		   size_t *len);
int db_setting_set(struct db *db, const char *key, const void *val,
		   size_t len);

/* A tenant's own limits; DB_LIMIT_DEFAULT where it has none (the
 * configured default applies), 0 for "no limit". */
#define DB_LIMIT_DEFAULT (-1)
struct db_limits {
	int64_t instances, memory_mib, concurrency;
};

struct db_tenant {
	int64_t id;
	char name[UTIL_NAME_MAX + 1];
	char created[UTIL_TIME_LEN];
	int64_t nr_functions; /* db_tenant_list only */
	struct db_limits limits;
};

int db_tenant_create(struct db *db, const char *name, struct db_tenant *out);
int db_tenant_get(struct db *db, const char *name, struct db_tenant *out);
/* All tenants by name; *out is malloc'd (free()). */
int db_tenant_list(struct db *db, struct db_tenant **out, size_t *n);
/* Deletes the tenant and, by cascade, its tokens, functions, versions,
 * snapshots and deploy records. The caller stops instances and removes
 * files (their ids come from db_function_list first). */
int db_tenant_delete(struct db *db, int64_t tenant_id);
/* Sets the tenant's limits (fields DB_LIMIT_DEFAULT: back to default). */
int db_tenant_set_limits(struct db *db, int64_t tenant_id,
			 const struct db_limits *l);

struct db_token {
	char id[DB_ID_MAX];
	char created[UTIL_TIME_LEN];
};

int db_token_create(struct db *db, int64_t tenant_id, const char *id,
		    const uint8_t hash[DB_HASH_LEN], struct db_token *out);
/* The tenant that owns the token whose hash is given. */
int db_token_find(struct db *db, const uint8_t hash[DB_HASH_LEN],
		  struct db_tenant *tenant);
int db_token_list(struct db *db, int64_t tenant_id, struct db_token **out,
		  size_t *n);
int db_token_delete(struct db *db, int64_t tenant_id, const char *id);

/* A function and its current version (version 0: none yet). manifest and
 * dir are the current version's (malloc'd, NULL without a version): free
 * with db_function_free. */
struct db_function {
	int64_t id;
	int64_t tenant_id;
	char name[UTIL_NAME_MAX + 1];
	char tenant[UTIL_NAME_MAX + 1]; /* the tenant's name */
	char created[UTIL_TIME_LEN];
	uint32_t version;
	char version_created[UTIL_TIME_LEN];
	char *manifest; /* JSON text */
	char *dir;      /* relative to the state directory */
	bool deploying; /* a deploy of it is running */
	uint32_t min_instances; /* kept warm (provisioned concurrency) */
	int64_t idle_ttl_ms;    /* DB_LIMIT_DEFAULT: emberd's --idle-ttl */
};

/* What an invocation needs of a function: its id, current version (0:
 * none yet) and whether a deploy of it runs. Cached. */
struct db_fn_ref {
	int64_t id;
	uint32_t version;
	bool deploying;
};
int db_function_lookup(struct db *db, int64_t tenant_id, const char *name,
		       struct db_fn_ref *out);

void db_function_free(struct db_function *f);
void db_function_free_array(struct db_function *f, size_t n);
int db_function_get(struct db *db, int64_t tenant_id, const char *name,
		    struct db_function *out);
int db_function_get_by_id(struct db *db, int64_t fn_id,
			  struct db_function *out);
/* The tenant's functions by name (tenant_id > 0), or every function of
 * every tenant (tenant_id 0, used at start). */
int db_function_list(struct db *db, int64_t tenant_id,
		     struct db_function **out, size_t *n);
/* Sets the function's scaling: instances kept warm, idle time before an
 * instance stops (DB_LIMIT_DEFAULT: the configured default). */
int db_function_set_scaling(struct db *db, int64_t fn_id,
			    uint32_t min_instances, int64_t idle_ttl_ms);
/* Deletes the function and its versions; -EBUSY while a deploy of it runs. */
int db_function_delete(struct db *db, int64_t fn_id);

struct db_version {
	uint32_t version;
	char created[UTIL_TIME_LEN];
	bool current;
	char *manifest;
	char *dir;
};

void db_version_free_array(struct db_version *v, size_t n);
/* Newest first. */
int db_version_list(struct db *db, int64_t fn_id, struct db_version **out,
		    size_t *n);
/* Every version directory the database knows (for the clean-up at start):
 * *out is an array of n malloc'd strings; free with db_strings_free. */
int db_version_dirs(struct db *db, char ***out, size_t *n);
void db_strings_free(char **s, size_t n);

/* Deploys. db_deploy_begin, in one transaction: creates the function row if
 * the tenant has none of that name (*created = true), refuses with -EBUSY
 * when a deploy of it is already running (its id into busy_id), and records
 * deploy `id` as running. *fn_id receives the function's id. */
int db_deploy_begin(struct db *db, int64_t tenant_id, const char *function,
		    const char *id, int64_t *fn_id, bool *created,
		    char busy_id[DB_ID_MAX]);
/* Appends a progress record (step, detail) to a running deploy. */
int db_deploy_step(struct db *db, const char *id, const char *step,
		   const char *detail);
/* The version number the next successful deploy of fn_id gets. */
int db_deploy_next_version(struct db *db, int64_t fn_id, uint32_t *version);
/* The switch, in one transaction: version `version` of fn_id (files in
 * dir, snapshot in snap_dir) is recorded with its manifest, becomes the
 * current version, and the deploy is marked succeeded with a last step
 * "activate". -ENOENT if the
 * function or the deploy is gone (deleted meanwhile): nothing changed. */
int db_deploy_succeed(struct db *db, const char *id, int64_t fn_id,
		      uint32_t version, const char *manifest, const char *dir,
		      const char *snap_dir, uint32_t memory_mib);
/* Marks the deploy failed with its step, message and the handler's output
 * (may be NULL); a function left without any version (its first deploy
 * failed) is removed again, in the same transaction. */
int db_deploy_fail(struct db *db, const char *id, const char *step,
		   const char *message, const char *output);
/* At start: every deploy still "running" was interrupted by the end of the
 * previous emberd; each is failed like db_deploy_fail (step "interrupted").
 * *n receives how many. */
int db_deploy_fail_interrupted(struct db *db, size_t *n);

struct db_deploy_step {
	char step[32];
	char *detail;
	char at[UTIL_TIME_LEN];
};

struct db_deploy {
	char id[DB_ID_MAX];
	char function[UTIL_NAME_MAX + 1];
	char state[16];
	uint32_t version; /* 0 unless succeeded */
	char created[UTIL_TIME_LEN];
	char finished[UTIL_TIME_LEN]; /* "" while running */
	char *error_step, *error_message, *error_output; /* failed only */
	struct db_deploy_step *steps;
	size_t nr_steps;
};

/* The tenant's deploy `id` with its steps; free with db_deploy_free. */
int db_deploy_get(struct db *db, int64_t tenant_id, const char *id,
		  struct db_deploy *out);
void db_deploy_free(struct db_deploy *d);

#endif
