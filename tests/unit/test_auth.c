/* Unit tests: tokens and authentication (agent/auth.c) and the name rule
 * (agent/util.c). Token format and hashing, strict parsing of the
 * Authorization header, the admin token written once to a 0600 file,
 * revoked and deleted tenants' tokens refused; names that are paths, SQL,
 * headers, too long or look-alikes refused. */
// link: agent/auth.c agent/db.c agent/util.c sdk/sha256.c vmm/log.c
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/auth.h"
#include "agent/util.h"

static void test_names(void **state)
{
	static const char *const good[] = { "a", "0", "acme", "hello-world",
					    "a-", "x9-y8" };
	char long_name[301];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(util_name_valid(good[i], strlen(good[i])));
	memset(long_name, 'a', 300);
	long_name[300] = '\0';
	assert_true(util_name_valid(long_name, 63));
	assert_false(util_name_valid(long_name, 64));
	assert_false(util_name_valid(long_name, 300));
	assert_false(util_name_valid("", 0));
	assert_false(util_name_valid("..", 2));
	assert_false(util_name_valid("a/b", 3));
	assert_false(util_name_valid("/etc", 4));
	assert_false(util_name_valid("-a", 2));
	assert_false(util_name_valid("Acme", 4));
	assert_false(util_name_valid("a b", 3));
	assert_false(util_name_valid("a'--", 4));
	assert_false(util_name_valid("a\";", 3));
	assert_false(util_name_valid("a%2e", 4));
	assert_false(util_name_valid("a\r\nX-Evil: 1", 13));
	/* An embedded NUL: "ab" followed by more. */
	assert_false(util_name_valid("ab\0cd", 5));
	/* Look-alikes: Cyrillic 'а' (U+0430), fullwidth 'ａ', a zero-width
	 * space inside. */
	assert_false(util_name_valid("\xd0\xb0" "cme", 5));
	assert_false(util_name_valid("\xef\xbd\x81" "cme", 6));
	assert_false(util_name_valid("ac\xe2\x80\x8bme", 7));
}

static void test_token_format(void **state)
{
	char tok[AUTH_TOKEN_LEN + 1], tok2[AUTH_TOKEN_LEN + 1];
	uint8_t h[DB_HASH_LEN], h2[DB_HASH_LEN];

	(void)state;
	assert_int_equal(auth_token_new(tok, h), 0);
	assert_int_equal(strlen(tok), AUTH_TOKEN_LEN);
	assert_memory_equal(tok, "ek_", 3);
	assert_int_equal(auth_token_hash(tok, strlen(tok), h2), 0);
	assert_memory_equal(h, h2, DB_HASH_LEN);
	assert_int_equal(auth_token_new(tok2, h2), 0);
	assert_string_not_equal(tok, tok2);
	assert_memory_not_equal(h, h2, DB_HASH_LEN);
	/* Wrong length, prefix, case, characters. */
	assert_int_equal(auth_token_hash(tok, AUTH_TOKEN_LEN - 1, h2), -EINVAL);
	tok2[0] = 'E';
	assert_int_equal(auth_token_hash(tok2, AUTH_TOKEN_LEN, h2), -EINVAL);
	memcpy(tok2, tok, sizeof(tok));
	tok2[10] = 'A';
	assert_int_equal(auth_token_hash(tok2, AUTH_TOKEN_LEN, h2), -EINVAL);
	tok2[10] = 'g';
	assert_int_equal(auth_token_hash(tok2, AUTH_TOKEN_LEN, h2), -EINVAL);
	tok2[10] = '\0';
	assert_int_equal(auth_token_hash(tok2, AUTH_TOKEN_LEN, h2), -EINVAL);
}

static void test_admin_and_check(void **state)
{
	char dir[] = "/tmp/ember-test-auth.XXXXXX", path[128], err[256];
	char admin[128], header[160], tok[AUTH_TOKEN_LEN + 1];
	uint8_t h[DB_HASH_LEN];
	struct auth a, a2;
	struct auth_who who;
	struct db_tenant t;
	struct db_token tk;
	struct db *db;
	struct stat st;
	bool created;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ember.db", dir);
	db = db_open(path, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(auth_init(&a, db, dir, &created, err, sizeof(err)), 0);
	assert_true(created);
	snprintf(path, sizeof(path), "%s/%s", dir, AUTH_ADMIN_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	fp = fopen(path, "r");
	assert_non_null(fp);
	assert_non_null(fgets(admin, sizeof(admin), fp));
	fclose(fp);
	admin[strcspn(admin, "\n")] = '\0';
	assert_int_equal(strlen(admin), AUTH_TOKEN_LEN);
	/* Second start: the hash is read back, the file left alone. */
	assert_int_equal(auth_init(&a2, db, dir, &created, err, sizeof(err)), 0);
	assert_false(created);
	assert_memory_equal(a.admin_hash, a2.admin_hash, DB_HASH_LEN);

	snprintf(header, sizeof(header), "Bearer %s", admin);
	assert_int_equal(auth_check(&a, header, &who), 0);
	assert_int_equal(who.kind, AUTH_ADMIN);
	snprintf(header, sizeof(header), "bearer %s", admin);
	assert_int_equal(auth_check(&a, header, &who), 0);

	assert_int_equal(db_tenant_create(db, "acme", &t), 0);
	assert_int_equal(auth_token_new(tok, h), 0);
	assert_int_equal(db_token_create(db, t.id, "tk_1", h, &tk), 0);
	snprintf(header, sizeof(header), "Bearer %s", tok);
	assert_int_equal(auth_check(&a, header, &who), 0);
	assert_int_equal(who.kind, AUTH_TENANT);
	assert_string_equal(who.tenant.name, "acme");

	/* Malformed headers. */
	assert_int_equal(auth_check(&a, NULL, &who), -EACCES);
	assert_int_equal(auth_check(&a, "", &who), -EACCES);
	assert_int_equal(auth_check(&a, "Bearer", &who), -EACCES);
	assert_int_equal(auth_check(&a, "Bearer ", &who), -EACCES);
	snprintf(header, sizeof(header), "Bearer  %s", tok);
	assert_int_equal(auth_check(&a, header, &who), -EACCES);
	snprintf(header, sizeof(header), "Bearer %s ", tok);
	assert_int_equal(auth_check(&a, header, &who), -EACCES);
	snprintf(header, sizeof(header), "Basic %s", tok);
	assert_int_equal(auth_check(&a, header, &who), -EACCES);
	snprintf(header, sizeof(header), "%s", tok);
	assert_int_equal(auth_check(&a, header, &who), -EACCES);
	/* A well-formed token nobody issued. */
	snprintf(header, sizeof(header), "Bearer ek_%064d", 0);
	assert_int_equal(auth_check(&a, header, &who), -EACCES);
	assert_int_equal(who.kind, AUTH_NOBODY);

	/* Revoked, then a deleted tenant's token. */
	snprintf(header, sizeof(header), "Bearer %s", tok);
	assert_int_equal(db_token_delete(db, t.id, "tk_1"), 0);
	assert_int_equal(auth_check(&a, header, &who), -EACCES);
	assert_int_equal(auth_token_new(tok, h), 0);
	assert_int_equal(db_token_create(db, t.id, "tk_2", h, &tk), 0);
	snprintf(header, sizeof(header), "Bearer %s", tok);
	assert_int_equal(auth_check(&a, header, &who), 0);
	assert_int_equal(db_tenant_delete(db, t.id), 0);
	assert_int_equal(auth_check(&a, header, &who), -EACCES);

	/* A token file without a recorded hash is never overwritten. */
	db_close(db);
	snprintf(path, sizeof(path), "%s/ember.db", dir);
	unlink(path);
	db = db_open(path, err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(auth_init(&a2, db, dir, &created, err, sizeof(err)),
			 -EEXIST);
	assert_non_null(strstr(err, "remove it"));
	db_close(db);
	util_rm_tree(AT_FDCWD, dir);
}

static void test_rm_tree_no_follow(void **state)
{
	char dir[] = "/tmp/ember-test-rm.XXXXXX", p[256], outside[256];
	struct stat st;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(outside, sizeof(outside), "%s.outside", dir);
	fd = open(outside, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/a/b/c", dir);
	assert_int_equal(util_mkdir_p(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/a/link", dir);
	assert_int_equal(symlink(outside, p), 0);
	snprintf(p, sizeof(p), "%s/a/dirlink", dir);
	assert_int_equal(symlink("/tmp", p), 0);
	assert_int_equal(util_rm_tree(AT_FDCWD, dir), 0);
	assert_int_equal(stat(dir, &st), -1);
	/* The symlinks went, not what they pointed at. */
	assert_int_equal(stat(outside, &st), 0);
	assert_int_equal(stat("/tmp", &st), 0);
	assert_int_equal(util_rm_tree(AT_FDCWD, dir), 0);
	unlink(outside);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_token_format),
		cmocka_unit_test(test_admin_and_check),
		cmocka_unit_test(test_rm_tree_no_follow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
