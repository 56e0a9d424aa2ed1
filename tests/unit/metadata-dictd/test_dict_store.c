/* Unit tests of metadata-dictd/dict_store.c and dict_key.c on a real
 * SQLite file: several tokens per user, refresh, expiry, opt-out, the
 * per-user maximum (least recently set evicted, with its jobs),
 * new-mail events, generic attributes, iteration depth, listings in
 * pages, the per-user maximum of metadata keys, atomic-inc, one failing
 * transaction inside a group commit, and a write lock held by another
 * connection told from a failure. */
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

#include "dictd.h"
#include "testutil.h"

#define G	"455d042d2ed60a6b1c36000083ecc375"
#define G2	"60555b3034d60a6b1c36000083ecc375"
#define TTL_MS	(90LL * 86400 * 1000)
#define NOW	1700000000000LL

struct fixture {
	char			 dir[TESTUTIL_DIR_LEN];
	char			 path[TESTUTIL_PATH_LEN];
	struct dict_store	*store;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[ERR_LEN];

	testutil_db_dir(f->dir, "test_dict_store", "relay.db", f->path);
	f->store = dict_store_open(f->path, DB_SYNC_NORMAL, TTL_MS, err);
	assert_non_null(f->store);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	dict_store_close(f->store);
	testutil_db_dir_remove(f->dir, f->path);
	free(f);
	return 0;
}

/* Commit one transaction of (kind, key, value) triples alone. */
static enum dict_commit_result
commit1(struct fixture *f, const char *user, int64_t now, uint64_t *queued,
    const char *const *changes, size_t n)
{
	struct dict_txn *t = dict_txn_new(1, user);
	struct dict_apply_counts counts = { 0 };
	enum dict_commit_result r;
	char err[ERR_LEN];

	for (size_t i = 0; i < n; i += 3) {
		char kind = changes[i][0];
		const char *value = changes[i + 2];

		dict_txn_add(t, kind == 'S' ? DICT_CHANGE_SET : kind == 'U' ?
		    DICT_CHANGE_UNSET : DICT_CHANGE_INC, changes[i + 1], value,
		    value ? strlen(value) : 0, kind == 'A' ?
		    strtoll(value, NULL, 10) : 0);
	}
	assert_int_equal(dict_store_batch_begin(f->store, err), 0);
	r = dict_store_apply(f->store, t, now, &counts, err);
	assert_int_equal(dict_store_batch_commit(f->store, err), 0);
	if (queued != NULL)
		*queued = counts.queued;
	dict_txn_free(t);
	return r;
}

#define COMMIT(f, user, now, queued, ...) do {				\
	const char *const ch_[] = { __VA_ARGS__ };			\
	assert_int_equal(commit1(f, user, now, queued, ch_,		\
	    sizeof(ch_) / sizeof(*ch_)), DICT_COMMIT_OK);		\
} while (0)

/* The lookup's value, or NULL when not found (caller frees). */
static char *
lookup(struct fixture *f, const char *user, const char *key, int64_t now)
{
	struct buf b;
	char err[ERR_LEN];
	int rc;

	buf_init(&b);
	rc = dict_store_lookup(f->store, user, key, now, &b, err);
	assert_true(rc >= 0);
	if (rc == 0) {
		buf_clear(&b);
		return NULL;
	}
	return buf_steal(&b, NULL);
}

static void
assert_lookup(struct fixture *f, const char *user, const char *key,
    int64_t now, const char *expected)
{
	char *v = lookup(f, user, key, now);

	if (expected == NULL && v != NULL)
		fail_msg("lookup %s: expected not found, got \"%s\"", key, v);
	if (expected != NULL && (v == NULL || strcmp(v, expected) != 0))
		fail_msg("lookup %s: expected \"%s\", got \"%s\"", key,
		    expected, v ? v : "(not found)");
	free(v);
}

static int64_t
count(struct fixture *f, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t n;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void
test_key_parse(void **state)
{
	struct dict_key k;
	char err[ERR_LEN];

	(void)state;
	dict_key_parse("priv/" G "/devicetoken", &k);
	assert_int_equal(k.kind, DICT_KEY_DEVICETOKEN);
	assert_int_equal(k.guid_len, 32);
	assert_memory_equal(k.guid, G, 32);
	dict_key_parse("priv/" G "/messagenew", &k);
	assert_int_equal(k.kind, DICT_KEY_MESSAGENEW);
	dict_key_parse("priv/" G "/vendor/vendor.dovecot/pvt/server/"
	    "devicetoken", &k);
	assert_int_equal(k.kind, DICT_KEY_PRIVATE);
	dict_key_parse("priv//devicetoken", &k);
	assert_int_equal(k.kind, DICT_KEY_PRIVATE);
	dict_key_parse("shared/" G "/devicetoken", &k);
	assert_int_equal(k.kind, DICT_KEY_SHARED);
	assert_string_equal(dict_key_owner(&k, "alice"), "");
	dict_key_parse("other/x", &k);
	assert_int_equal(k.kind, DICT_KEY_INVALID);

	assert_int_equal(dict_key_token_check("openpgp:abc=", 12, err), 0);
	assert_int_equal(dict_key_token_check("", 0, err), -1);
	assert_int_equal(dict_key_token_check("a b", 3, err), -1);
	assert_int_equal(dict_key_token_check("a\nb", 3, err), -1);
}

static void
test_tokens_several_per_user(void **state)
{
	struct fixture *f = *state;

	COMMIT(f, "alice", NOW, NULL, "S", "priv/" G "/devicetoken", "tok1");
	COMMIT(f, "alice", NOW + 1, NULL, "S", "priv/" G "/devicetoken",
	    "tok2");
	COMMIT(f, "bob", NOW, NULL, "S", "priv/" G2 "/devicetoken", "tokb");
	assert_lookup(f, "alice", "priv/" G "/devicetoken", NOW + 2,
	    "tok1 tok2");
	assert_lookup(f, "bob", "priv/" G2 "/devicetoken", NOW + 2, "tokb");
	assert_lookup(f, "carol", "priv/" G "/devicetoken", NOW + 2, NULL);
	/* A token set on another mailbox does not answer for this one. */
	assert_lookup(f, "bob", "priv/" G "/devicetoken", NOW + 2, NULL);

	/* Re-setting refreshes, never duplicates. */
	COMMIT(f, "alice", NOW + 5000, NULL, "S", "priv/" G "/devicetoken",
	    "tok1");
	assert_int_equal(count(f, "SELECT count(*) FROM tokens WHERE "
	    "user = 'alice'"), 2);
	assert_int_equal(count(f, "SELECT updated_at FROM tokens WHERE "
	    "token = 'tok1'"), NOW + 5000);
	assert_lookup(f, "alice", "priv/" G "/devicetoken", NOW + 6000,
	    "tok2 tok1");
}

static void
test_tokens_expire(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN];

	COMMIT(f, "alice", NOW, NULL, "S", "priv/" G "/devicetoken", "old");
	COMMIT(f, "alice", NOW + TTL_MS / 2, NULL, "S",
	    "priv/" G "/devicetoken", "new");
	assert_lookup(f, "alice", "priv/" G "/devicetoken", NOW + TTL_MS,
	    "old new");
	assert_lookup(f, "alice", "priv/" G "/devicetoken", NOW + TTL_MS + 1,
	    "new");
	/* Expired tokens get no new-mail jobs either. */
	uint64_t queued = 0;
	COMMIT(f, "alice", NOW + TTL_MS + 1, &queued, "S",
	    "priv/" G "/messagenew", "");
	assert_int_equal(queued, 1);
	assert_int_equal(dict_store_sweep(f->store, NOW + TTL_MS + 1, 100,
	    err), 1);
	assert_int_equal(dict_store_count_tokens(f->store, err), 1);
	assert_int_equal(dict_store_sweep(f->store, NOW + TTL_MS + 1, 100,
	    err), 0);
}

static void
test_token_limits(void **state)
{
	struct fixture *f = *state;
	char *tok = malloc(DICT_TOKEN_MAX_BYTES + 2);
	const char *ch[3] = { "S", "priv/" G "/devicetoken", tok };

	memset(tok, 'a', DICT_TOKEN_MAX_BYTES + 1);
	tok[DICT_TOKEN_MAX_BYTES + 1] = '\0';
	assert_int_equal(commit1(f, "alice", NOW, NULL, ch, 3),
	    DICT_COMMIT_FAILED);
	assert_int_equal(count(f, "SELECT count(*) FROM tokens"), 0);
	tok[DICT_TOKEN_MAX_BYTES] = '\0';
	assert_int_equal(commit1(f, "alice", NOW, NULL, ch, 3),
	    DICT_COMMIT_OK);
	assert_int_equal(count(f, "SELECT length(token) FROM tokens"),
	    DICT_TOKEN_MAX_BYTES);
	free(tok);
}

static void
test_opt_out(void **state)
{
	struct fixture *f = *state;

	COMMIT(f, "alice", NOW, NULL, "S", "priv/" G "/devicetoken", "tok1",
	    "S", "priv/" G "/devicetoken", "tok2");
	COMMIT(f, "bob", NOW, NULL, "S", "priv/" G2 "/devicetoken", "tokb");
	COMMIT(f, "alice", NOW, NULL, "U", "priv/" G "/devicetoken", NULL);
	assert_lookup(f, "alice", "priv/" G "/devicetoken", NOW, NULL);
	assert_lookup(f, "bob", "priv/" G2 "/devicetoken", NOW, "tokb");
}

static void
test_messagenew_queues_one_row_per_token(void **state)
{
	struct fixture *f = *state;
	uint64_t queued = 99;

	COMMIT(f, "alice", NOW, NULL, "S", "priv/" G "/devicetoken", "tok1",
	    "S", "priv/" G "/devicetoken", "tok2");
	COMMIT(f, "alice", NOW + 10, &queued, "S", "priv/" G "/messagenew",
	    "");
	assert_int_equal(queued, 2);
	assert_int_equal(count(f, "SELECT count(*) FROM queue WHERE "
	    "user = 'alice' AND state = 0 AND attempts = 0 AND "
	    "created_at = next_at"), 2);
	/* A second event while those jobs wait unsent adds nothing... */
	COMMIT(f, "alice", NOW + 20, &queued, "S", "priv/" G "/messagenew",
	    "");
	assert_int_equal(queued, 0);
	assert_int_equal(count(f, "SELECT count(*) FROM queue"), 2);
	/* ...but a job in flight or retrying does not absorb new mail. */
	{
		sqlite3 *db;

		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "UPDATE queue SET state = 1 "
		    "WHERE id = (SELECT min(id) FROM queue); UPDATE queue SET "
		    "attempts = 1 WHERE id = (SELECT max(id) FROM queue)",
		    NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
	}
	COMMIT(f, "alice", NOW + 30, &queued, "S", "priv/" G "/messagenew",
	    "");
	assert_int_equal(queued, 2);
	/* Not stored as an attribute. */
	assert_lookup(f, "alice", "priv/" G "/messagenew", NOW, NULL);
	COMMIT(f, "nobody", NOW, &queued, "S", "priv/" G "/messagenew", "");
	assert_int_equal(queued, 0);
	assert_int_equal(count(f, "SELECT count(*) FROM metadata"), 0);
}

static void
test_generic_attributes(void **state)
{
	struct fixture *f = *state;
	struct dict_txn *t = dict_txn_new(1, "alice");
	struct dict_apply_counts counts = { 0 };
	char err[ERR_LEN], *v;

	COMMIT(f, "alice", NOW, NULL, "S", "priv/" G "/foo", "bar",
	    "S", "shared/" G "/s", "shared value",
	    "S", "priv/" G "/vendor/vendor.dovecot/pvt/server/foo", "x");
	assert_lookup(f, "alice", "priv/" G "/foo", NOW, "bar");
	assert_lookup(f, "bob", "priv/" G "/foo", NOW, NULL);
	/* shared/ keys are global, as in Dovecot's dict API. */
	assert_lookup(f, "bob", "shared/" G "/s", NOW, "shared value");
	COMMIT(f, "alice", NOW, NULL, "S", "priv/" G "/foo", "");
	assert_lookup(f, "alice", "priv/" G "/foo", NOW, "");
	COMMIT(f, "alice", NOW, NULL, "U", "priv/" G "/foo", NULL);
	assert_lookup(f, "alice", "priv/" G "/foo", NOW, NULL);

	/* Binary-safe values. */
	dict_txn_add(t, DICT_CHANGE_SET, "priv/" G "/bin", "a\0b\tc", 5, 0);
	assert_int_equal(dict_store_batch_begin(f->store, err), 0);
	assert_int_equal(dict_store_apply(f->store, t, NOW, &counts, err),
	    DICT_COMMIT_OK);
	assert_int_equal(dict_store_batch_commit(f->store, err), 0);
	dict_txn_free(t);
	v = lookup(f, "alice", "priv/" G "/bin", NOW);
	assert_memory_equal(v, "a\0b\tc", 5);
	free(v);
}

/* A listing that fits one page: its rows (the caller clears them). */
static void
iterate(struct fixture *f, const char *user, const char *path,
    unsigned int flags, struct dict_rows *rows)
{
	char err[ERR_LEN], *next = NULL;

	if (dict_store_iterate(f->store, user, path, flags, NULL, NOW, rows,
	    &next, err) < 0)
		fail_msg("iterate %s: %s", path, err);
	if (next != NULL)
		fail_msg("iterate %s: more than one page (next %s)", path,
		    next);
}

static void
test_iterate_depth(void **state)
{
	struct fixture *f = *state;
	struct dict_rows rows;

	COMMIT(f, "alice", NOW, NULL, "S", "priv/" G "/devicetoken", "tok1",
	    "S", "priv/" G "/a", "1", "S", "priv/" G "/a/b", "2",
	    "S", "priv/" G2 "/other", "3", "S", "shared/" G "/s", "4");
	/* DEPTH infinity: RECURSE | NO_VALUE, as Dovecot sends (9). */
	iterate(f, "alice", "priv/" G "/",
	    DICT_ITER_RECURSE | DICT_ITER_NO_VALUE, &rows);
	assert_int_equal(rows.n, 3);
	assert_string_equal(rows.rows[0].key, "priv/" G "/a");
	assert_string_equal(rows.rows[1].key, "priv/" G "/a/b");
	assert_string_equal(rows.rows[2].key, "priv/" G "/devicetoken");
	dict_rows_clear(&rows);
	/* Without RECURSE: direct children only, with values. */
	iterate(f, "alice", "priv/" G "/", 0, &rows);
	assert_int_equal(rows.n, 2);
	assert_string_equal(rows.rows[0].key, "priv/" G "/a");
	assert_string_equal(rows.rows[0].value, "1");
	assert_string_equal(rows.rows[1].value, "tok1");
	dict_rows_clear(&rows);
	/* Another user sees nothing private; shared keys are global. */
	iterate(f, "bob", "priv/" G "/", DICT_ITER_RECURSE, &rows);
	assert_int_equal(rows.n, 0);
	dict_rows_clear(&rows);
	iterate(f, "bob", "shared/" G "/", DICT_ITER_RECURSE, &rows);
	assert_int_equal(rows.n, 1);
	dict_rows_clear(&rows);
	/* EXACT_KEY (max_rows is the command's: test_dict_cmd). */
	iterate(f, "alice", "priv/" G "/a", DICT_ITER_EXACT_KEY, &rows);
	assert_int_equal(rows.n, 1);
	dict_rows_clear(&rows);
	/* Dovecot's server-level listing uses a path ending in "//" that
	 * matches nothing (protocol doc §6). */
	iterate(f, "alice", "priv/" G "/vendor/vendor.dovecot/pvt/server//",
	    DICT_ITER_RECURSE | DICT_ITER_NO_VALUE, &rows);
	assert_int_equal(rows.n, 0);
	dict_rows_clear(&rows);
}

/* Key i of a listing of n keys under priv/G/: d<i> for the first half,
 * f<i> for the rest (zero-padded, so they sort as numbered), so that the
 * device token's row, priv/G/devicetoken, sorts in the middle. */
static void
key_at(char *out, size_t size, int i, int n)
{
	snprintf(out, size, "priv/" G "/%c%05d", i < n / 2 ? 'd' : 'f', i);
}

/* Sets n keys (key_at) with values of value_bytes, in one transaction. */
static void
set_keys(struct fixture *f, const char *user, int n, size_t value_bytes)
{
	struct dict_txn *t = dict_txn_new(1, user);
	struct dict_apply_counts counts = { 0 };
	char key[64], err[ERR_LEN], *value = malloc(value_bytes + 1);

	assert_non_null(value);
	memset(value, 'v', value_bytes);
	value[value_bytes] = '\0';
	for (int i = 0; i < n; i++) {
		key_at(key, sizeof(key), i, n);
		assert_int_equal(dict_txn_add(t, DICT_CHANGE_SET, key, value,
		    value_bytes, 0), DICT_TXN_WITHIN);
	}
	assert_int_equal(dict_store_batch_begin(f->store, err), 0);
	if (dict_store_apply(f->store, t, NOW, &counts, err) !=
	    DICT_COMMIT_OK)
		fail_msg("apply: %s", err);
	assert_int_equal(dict_store_batch_commit(f->store, err), 0);
	dict_txn_free(t);
	free(value);
}

/* A listing longer than a page comes in pages: each one bounded in rows
 * and bytes, together every key once, in order, the token rows in their
 * place among them. */
static void
test_iterate_in_pages(void **state)
{
	static const unsigned int flags[] = {
		DICT_ITER_RECURSE | DICT_ITER_NO_VALUE,	/* rows bound a page */
		DICT_ITER_RECURSE,			/* bytes bound it */
		0,
	};
	struct fixture *f = *state;

	dict_store_set_max_keys(f->store, 100000);
	set_keys(f, "alice", 3000, 3000);
	COMMIT(f, "alice", NOW, NULL, "S", "priv/" G "/devicetoken", "tok1",
	    "S", "priv/" G "/a", "first", "S", "priv/" G2 "/devicetoken",
	    "tok2");
	for (size_t r = 0; r < sizeof(flags) / sizeof(*flags); r++) {
		char *after = NULL, *next, err[ERR_LEN], want[64];
		int seen = 0, pages = 0;
		bool token_seen = false;

		do {
			struct dict_rows rows;
			size_t bytes = 0;

			if (dict_store_iterate(f->store, "alice", "priv/" G "/",
			    flags[r], after, NOW, &rows, &next, err) < 0)
				fail_msg("row %zu: %s", r, err);
			dict_store_read_end(f->store);
			pages++;
			/* Read rows, and the token rows among them. */
			if (rows.n > DICT_ITER_PAGE_ROWS + 1)
				fail_msg("row %zu page %d: %zu rows", r, pages,
				    rows.n);
			for (size_t i = 0; i < rows.n; i++) {
				const char *key = rows.rows[i].key;

				bytes += strlen(key) + rows.rows[i].value_len;
				if (strcmp(key, "priv/" G "/a") == 0) {
					assert_int_equal(seen, 0);
					continue;
				}
				if (strcmp(key, "priv/" G "/devicetoken") ==
				    0) {
					if (seen != 1500)
						fail_msg("row %zu: token row "
						    "after %d keys", r, seen);
					token_seen = true;
					continue;
				}
				key_at(want, sizeof(want), seen++, 3000);
				if (strcmp(key, want) != 0)
					fail_msg("row %zu page %d: %s, want %s",
					    r, pages, key, want);
			}
			/* A page stops once it holds DICT_ITER_PAGE_BYTES:
			 * at most one row more. */
			if (bytes > DICT_ITER_PAGE_BYTES + 3000 + 64)
				fail_msg("row %zu page %d: %zu bytes", r,
				    pages, bytes);
			dict_rows_clear(&rows);
			free(after);
			after = next;
		} while (after != NULL);
		assert_int_equal(seen, 3000);
		assert_true(token_seen);
		assert_true(pages >= 3);
	}
}

/* New metadata keys past --max-keys-per-user fail their transaction,
 * counted; changing or unsetting a key that is there never does. Private
 * keys count per user, shared ones per mailbox; tokens not at all. */
static void
test_max_keys_per_user(void **state)
{
	struct fixture *f = *state;
	struct dict_txn *t;
	struct dict_apply_counts counts = { 0 };
	char err[ERR_LEN];

	dict_store_set_max_keys(f->store, 3);
	COMMIT(f, "alice", NOW, NULL, "S", "priv/" G "/a", "1",
	    "S", "priv/" G "/b", "2", "S", "priv/" G2 "/c", "3",
	    "S", "priv/" G "/devicetoken", "tok1");
	/* A fourth, even on another mailbox, fails the whole transaction. */
	t = dict_txn_new(1, "alice");
	dict_txn_add(t, DICT_CHANGE_SET, "priv/" G "/a", "changed", 7, 0);
	dict_txn_add(t, DICT_CHANGE_SET, "priv/" G2 "/d", "4", 1, 0);
	assert_int_equal(dict_store_batch_begin(f->store, err), 0);
	assert_int_equal(dict_store_apply(f->store, t, NOW, &counts, err),
	    DICT_COMMIT_FAILED);
	assert_string_equal(err, "too many keys: the user's private keys "
	    "number 3 (--max-keys-per-user)");
	assert_int_equal(dict_store_batch_commit(f->store, err), 0);
	dict_txn_free(t);
	assert_int_equal(counts.keys_refused, 1);
	assert_lookup(f, "alice", "priv/" G "/a", NOW, "1");
	assert_lookup(f, "alice", "priv/" G2 "/d", NOW, NULL);
	/* Changes, more tokens, another user: all fine. */
	COMMIT(f, "alice", NOW, NULL, "S", "priv/" G "/a", "changed",
	    "S", "priv/" G "/devicetoken", "tok2");
	COMMIT(f, "bob", NOW, NULL, "S", "priv/" G "/a", "1",
	    "S", "priv/" G "/b", "2", "S", "priv/" G "/c", "3");
	/* Room made by an unset, used in the same transaction. */
	COMMIT(f, "alice", NOW, NULL, "U", "priv/" G "/b", NULL,
	    "S", "priv/" G2 "/d", "4");
	assert_lookup(f, "alice", "priv/" G2 "/d", NOW, "4");
	/* Shared keys: three per mailbox, whoever sets them. */
	COMMIT(f, "alice", NOW, NULL, "S", "shared/" G "/a", "1",
	    "S", "shared/" G "/b", "2", "S", "shared/" G2 "/a", "3");
	COMMIT(f, "bob", NOW, NULL, "S", "shared/" G "/c", "3");
	assert_int_equal(commit1(f, "bob", NOW, NULL, (const char *const[]){
	    "S", "shared/" G "/d", "4" }, 3), DICT_COMMIT_FAILED);
	COMMIT(f, "bob", NOW, NULL, "S", "shared/" G2 "/b", "4");
	assert_int_equal(count(f, "SELECT count(*) FROM metadata"), 11);
}

static void
test_atomic_inc(void **state)
{
	struct fixture *f = *state;
	const char *missing[] = { "A", "priv/" G "/n", "5" };
	const char *bad[] = { "S", "priv/" G "/t", "text", "A",
	    "priv/" G "/t", "1" };

	assert_int_equal(commit1(f, "alice", NOW, NULL, missing, 3),
	    DICT_COMMIT_NOT_FOUND);
	assert_lookup(f, "alice", "priv/" G "/n", NOW, NULL);
	COMMIT(f, "alice", NOW, NULL, "S", "priv/" G "/n", "10");
	COMMIT(f, "alice", NOW, NULL, "A", "priv/" G "/n", "-3",
	    "A", "priv/" G "/n", "5");
	assert_lookup(f, "alice", "priv/" G "/n", NOW, "12");
	/* A failing change rolls back its whole transaction. */
	assert_int_equal(commit1(f, "alice", NOW, NULL, bad, 6),
	    DICT_COMMIT_FAILED);
	assert_lookup(f, "alice", "priv/" G "/t", NOW, NULL);
}

/* One bad transaction in a group commit fails alone. */
static void
test_group_commit_isolation(void **state)
{
	struct fixture *f = *state;
	struct dict_txn *good = dict_txn_new(1, "alice");
	struct dict_txn *bad = dict_txn_new(1, "bob");
	struct dict_txn *big = dict_txn_new(2, "carol");
	struct dict_apply_counts counts = { 0 };
	char err[ERR_LEN];

	dict_txn_add(good, DICT_CHANGE_SET, "priv/" G "/devicetoken", "t1", 2,
	    0);
	dict_txn_add(bad, DICT_CHANGE_SET, "priv/" G "/x", "1", 1, 0);
	dict_txn_add(bad, DICT_CHANGE_SET, "priv/" G "/devicetoken", "a b", 3,
	    0);
	for (int i = 0; i <= DICT_TXN_MAX_CHANGES; i++)
		dict_txn_add(big, DICT_CHANGE_SET, "priv/" G "/k", "v", 1, 0);
	assert_non_null(big->failed);

	assert_int_equal(dict_store_batch_begin(f->store, err), 0);
	assert_int_equal(dict_store_apply(f->store, good, NOW, &counts, err),
	    DICT_COMMIT_OK);
	assert_int_equal(dict_store_apply(f->store, bad, NOW, &counts, err),
	    DICT_COMMIT_FAILED);
	assert_non_null(strstr(err, "0x20"));
	assert_int_equal(dict_store_apply(f->store, big, NOW, &counts, err),
	    DICT_COMMIT_FAILED);
	assert_int_equal(dict_store_batch_commit(f->store, err), 0);
	assert_int_equal(counts.tokens_set, 1);
	assert_lookup(f, "alice", "priv/" G "/devicetoken", NOW, "t1");
	assert_lookup(f, "bob", "priv/" G "/x", NOW, NULL);
	assert_lookup(f, "carol", "priv/" G "/k", NOW, NULL);
	dict_txn_free(good);
	dict_txn_free(bad);
	dict_txn_free(big);
}

/* One transaction of token sets for user at now; the tokens evicted. */
static uint64_t
set_tokens(struct fixture *f, const char *user, int64_t now,
    const char *const *tokens, size_t n)
{
	struct dict_txn *t = dict_txn_new(1, user);
	struct dict_apply_counts counts = { 0 };
	char err[ERR_LEN];

	for (size_t i = 0; i < n; i++)
		dict_txn_add(t, DICT_CHANGE_SET, "priv/" G "/devicetoken",
		    tokens[i], strlen(tokens[i]), 0);
	assert_int_equal(dict_store_batch_begin(f->store, err), 0);
	if (dict_store_apply(f->store, t, now, &counts, err) != DICT_COMMIT_OK)
		fail_msg("apply: %s", err);
	assert_int_equal(dict_store_batch_commit(f->store, err), 0);
	dict_txn_free(t);
	assert_int_equal(counts.tokens_set, n);
	return counts.tokens_evicted;
}

#define SET_TOKENS(f, user, now, ...)					\
	set_tokens(f, user, now, (const char *const[]){ __VA_ARGS__ },	\
	    sizeof((const char *const[]){ __VA_ARGS__ }) /		\
	    sizeof(const char *))

static void
test_tokens_per_user_evicts_least_recently_set(void **state)
{
	struct fixture *f = *state;
	uint64_t queued = 0;

	dict_store_set_max_tokens(f->store, 3);
	assert_int_equal(SET_TOKENS(f, "bob", NOW, "b0"), 0);
	for (int i = 0; i < 5; i++) {
		char tok[16];

		snprintf(tok, sizeof(tok), "t%d", i);
		assert_int_equal(SET_TOKENS(f, "alice", NOW + i, tok),
		    i < 3 ? 0 : 1);
	}
	assert_lookup(f, "alice", "priv/" G "/devicetoken", NOW + 5,
	    "t2 t3 t4");
	/* A refresh makes a token the newest; the next new one evicts the
	 * least recently set (t3), not the oldest inserted (t2). */
	assert_int_equal(SET_TOKENS(f, "alice", NOW + 10, "t2"), 0);
	assert_int_equal(SET_TOKENS(f, "alice", NOW + 11, "t5"), 1);
	assert_lookup(f, "alice", "priv/" G "/devicetoken", NOW + 12,
	    "t4 t2 t5");
	/* Jobs go with their token; another user's are not touched. */
	COMMIT(f, "alice", NOW + 20, &queued, "S", "priv/" G "/messagenew",
	    "");
	assert_int_equal(queued, 3);
	assert_int_equal(SET_TOKENS(f, "alice", NOW + 21, "t6"), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM queue"), 2);
	assert_lookup(f, "bob", "priv/" G "/devicetoken", NOW + 21, "b0");
	/* Many in one transaction (one time for all): the last three set
	 * are kept. */
	assert_int_equal(SET_TOKENS(f, "carol", NOW, "c0", "c1", "c2", "c3",
	    "c4"), 2);
	assert_lookup(f, "carol", "priv/" G "/devicetoken", NOW, "c2 c3 c4");
	assert_int_equal(count(f, "SELECT count(*) FROM tokens"), 7);
}

static void
test_locked_tells_a_held_lock_from_a_failure(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN];
	sqlite3 *other;

	dict_store_set_busy_timeout(f->store, 1);
	assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL,
	    NULL), SQLITE_OK);
	assert_int_equal(dict_store_batch_begin(f->store, err), -1);
	assert_true(dict_store_locked(f->store));
	assert_int_equal(dict_store_sweep(f->store, NOW, 10, err), -1);
	assert_true(dict_store_locked(f->store));
	/* Reads go on. */
	assert_lookup(f, "alice", "priv/" G "/x", NOW, NULL);
	dict_store_read_end(f->store);
	assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(other);
	assert_int_equal(dict_store_batch_begin(f->store, err), 0);
	/* A failure of another kind: a transaction inside a transaction. */
	assert_int_equal(dict_store_batch_begin(f->store, err), -1);
	assert_false(dict_store_locked(f->store));
	dict_store_batch_rollback(f->store);
}

static void
test_reopen_keeps_data(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN];

	COMMIT(f, "alice", NOW, NULL, "S", "priv/" G "/devicetoken", "tok1",
	    "S", "priv/" G "/foo", "bar");
	dict_store_close(f->store);
	f->store = dict_store_open(f->path, DB_SYNC_FULL, TTL_MS, err);
	assert_non_null(f->store);
	assert_lookup(f, "alice", "priv/" G "/devicetoken", NOW, "tok1");
	assert_lookup(f, "alice", "priv/" G "/foo", NOW, "bar");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_parse),
		cmocka_unit_test_setup_teardown(test_tokens_several_per_user,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens_expire, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_token_limits, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_opt_out, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_messagenew_queues_one_row_per_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generic_attributes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_iterate_in_pages, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_max_keys_per_user, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_iterate_depth, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_atomic_inc, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_isolation,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_tokens_per_user_evicts_least_recently_set, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_locked_tells_a_held_lock_from_a_failure, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
