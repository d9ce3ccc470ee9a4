/*
 * auth.c - API tokens and who a request is: see auth.h.
 *
 * Tokens carry 256 random bits, so a plain SHA-256 is the right hash (a
 * slow password hash protects low-entropy secrets; these have none to
 * protect). The admin decision compares hashes in constant time; tenant
 * tokens are found through the database's index on the hash and then
 * compared in constant time again (db_token_find), so no comparison of a
 * secret ever exits early.
 */
#define LOG_MOD "auth"

#include "agent/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "sdk/sha256.h"

#define ADMIN_HASH_KEY "admin_token_sha256"

static bool const_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t d = 0;

	for (size_t i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

static void hash_token(const char *token, size_t len,
		       uint8_t hash[DB_HASH_LEN])
{
	struct sha256 s;

	sha256_init(&s);
	sha256_update(&s, token, len);
	sha256_final(&s, hash);
}

int auth_token_new(char token[AUTH_TOKEN_LEN + 1], uint8_t hash[DB_HASH_LEN])
{
	uint8_t raw[32];
	int ret = util_random(raw, sizeof(raw));

	if (ret)
		return ret;
	memcpy(token, AUTH_TOKEN_PREFIX, 3);
	util_hex(raw, sizeof(raw), token + 3);
	hash_token(token, AUTH_TOKEN_LEN, hash);
	memset(raw, 0, sizeof(raw));
	return 0;
}

int auth_token_hash(const char *token, size_t len, uint8_t hash[DB_HASH_LEN])
{
	if (len != AUTH_TOKEN_LEN || memcmp(token, AUTH_TOKEN_PREFIX, 3))
		return -EINVAL;
	for (size_t i = 3; i < len; i++) {
		char c = token[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -EINVAL;
	}
	hash_token(token, len, hash);
	return 0;
}

/* Writes the admin token to DIR/admin.token: created exclusively with mode
 * 0600 (never over an existing file), written, fsynced. */
static int write_admin_file(const char *state_dir, const char *token,
			    char *err, size_t errlen)
{
	char path[4096], line[AUTH_TOKEN_LEN + 2];
	size_t len;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", state_dir, AUTH_ADMIN_FILE);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return errbuf_fail(err, errlen, -errno,
				   "creating %s: %s (a token file without a "
				   "recorded hash: remove it to make a new "
				   "admin token)", path, strerror(errno));
	len = (size_t)snprintf(line, sizeof(line), "%s\n", token);
	if (write(fd, line, len) != (ssize_t)len || fsync(fd) < 0)
		ret = errbuf_fail(err, errlen, -EIO, "writing %s: %s", path,
				  strerror(errno));
	close(fd);
	if (ret)
		unlink(path);
	else
		util_fsync_dir(state_dir);
	memset(line, 0, sizeof(line));
	return ret;
}

int auth_init(struct auth *a, struct db *db, const char *state_dir,
	      bool *created, char *err, size_t errlen)
{
	char token[AUTH_TOKEN_LEN + 1];
	size_t len = 0;
	int ret;

	memset(a, 0, sizeof(*a));
	a->db = db;
	*created = false;
	ret = db_setting_get(db, ADMIN_HASH_KEY, a->admin_hash,
			     sizeof(a->admin_hash), &len);
	if (ret == 0 && len == DB_HASH_LEN)
		return 0;
	if (ret == 0)
		return errbuf_fail(err, errlen, -EINVAL,
				   "the database's admin token hash is %zu "
				   "bytes, not %d", len, DB_HASH_LEN);
	if (ret != -ENOENT)
		return errbuf_fail(err, errlen, ret,
				   "reading the admin token hash: %s",
				   strerror(-ret));
	ret = auth_token_new(token, a->admin_hash);
	if (ret)
		return errbuf_fail(err, errlen, ret, "getrandom: %s",
				   strerror(-ret));
	/* File first, then the hash: a crash between the two leaves a file
	 * that auth_init refuses to overwrite and tells the operator about,
	 * never a recorded hash whose token nobody has. */
	ret = write_admin_file(state_dir, token, err, errlen);
	memset(token, 0, sizeof(token));
	if (ret)
		return ret;
	ret = db_setting_set(db, ADMIN_HASH_KEY, a->admin_hash, DB_HASH_LEN);
	if (ret)
		return errbuf_fail(err, errlen, ret,
				   "recording the admin token hash: %s",
				   strerror(-ret));
	*created = true;
	return 0;
}

int auth_check(const struct auth *a, const char *header, struct auth_who *who)
{
	uint8_t hash[DB_HASH_LEN];
	const char *tok;
	int ret;

	memset(who, 0, sizeof(*who));
	if (!header || strncasecmp(header, "Bearer ", 7))
		return -EACCES;
	tok = header + 7;
	if (auth_token_hash(tok, strlen(tok), hash))
		return -EACCES;
	if (const_equal(hash, a->admin_hash, DB_HASH_LEN)) {
		who->kind = AUTH_ADMIN;
		return 0;
	}
	ret = db_token_find(a->db, hash, &who->tenant);
	if (ret == -ENOENT)
		return -EACCES;
	if (ret)
		return ret;
	who->kind = AUTH_TENANT;
	return 0;
}
