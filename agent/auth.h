/*
 * auth.h - API tokens and who a request is.
 *
 * Owns: the token format ("ek_" + 64 lowercase hex digits = 256 random
 * bits), making tokens, hashing them (SHA-256: the database stores only
 * hashes), parsing the Authorization header strictly, the admin token
 * (created at first start, written once to a 0600 file in the state
 * directory, its hash kept in the database), and deciding whether a
 * request is the admin, a tenant, or nobody.
 *
 * Threads: any; the admin hash is read-only after auth_init().
 */
#ifndef EMBER_AGENT_AUTH_H
#define EMBER_AGENT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/db.h"

#define AUTH_TOKEN_PREFIX "ek_"
#define AUTH_TOKEN_LEN 67 /* "ek_" + 64 hex digits */
#define AUTH_ADMIN_FILE "admin.token"

enum auth_kind {
	AUTH_NOBODY = 0,
	AUTH_ADMIN,
	AUTH_TENANT,
};

struct auth_who {
	enum auth_kind kind;
	struct db_tenant tenant; /* AUTH_TENANT */
};

struct auth {
	struct db *db;
	uint8_t admin_hash[DB_HASH_LEN];
};

/* Loads the admin token's hash from the database; at first start (none
 * recorded) makes an admin token, writes it to STATE_DIR/admin.token
 * (mode 0600, created exclusively) and records its hash. *created says
 * which happened. 0 or -errno with a reason in err. */
int auth_init(struct auth *a, struct db *db, const char *state_dir,
	      bool *created, char *err, size_t errlen);

/* A new random token into token[AUTH_TOKEN_LEN + 1] and its hash. */
int auth_token_new(char token[AUTH_TOKEN_LEN + 1],
		   uint8_t hash[DB_HASH_LEN]);

/* Hashes a presented token after checking its exact format. 0 or -EINVAL. */
int auth_token_hash(const char *token, size_t len, uint8_t hash[DB_HASH_LEN]);

/* Who sent a request whose Authorization header is `header` (NULL when
 * absent). Accepts exactly "Bearer <token>" (scheme case-insensitive, one
 * space). 0 with *who filled, -EACCES when the header is missing,
 * malformed, or names no live token, -EIO when the database failed. */
int auth_check(const struct auth *a, const char *header,
	       struct auth_who *who);

#endif
