/*
 * Storage of IMAP METADATA in the relay database: device tokens in
 * `tokens`, new-mail events as rows of `queue`, every other attribute in
 * `metadata` (schema in common/relay_db.c). Knows nothing of the wire
 * protocol; every statement is prepared once at open.
 *
 * Writes only happen inside a group commit (dict_store_batch_begin ...
 * dict_store_batch_commit), each dict transaction in its own savepoint so
 * that one bad transaction fails alone.
 *
 * A user keeps at most max_tokens device tokens: setting one more evicts
 * the least recently set in the same statement sequence, so the set, the
 * eviction and the commit's answer are one. Unbounded, 20,000 tokens of
 * one user made one mail queue 20,000 jobs and a lookup answer 21 MB.
 * Likewise at most max_keys metadata keys: a new key past it fails its
 * transaction (a key cannot be evicted: it is the client's data).
 *
 * Listings are read a page at a time (dict_store_iterate), each page
 * after the last key of the one before, so no listing holds more than a
 * page of rows, however many keys its path has.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_checkpoint.h"
#include "dictd.h"
#include "relay_db.h"
#include "xmalloc.h"

enum dict_stmt {
	ST_META_GET,
	ST_META_SET,
	ST_META_UNSET,
	ST_META_RANGE,
	ST_META_RANGE_AFTER,
	ST_META_EXISTS,
	ST_META_COUNT,
	ST_TOKENS_GET,
	ST_TOKEN_SET,
	ST_TOKENS_UNSET,
	ST_TOKEN_MAILBOXES,
	ST_TOKENS_COUNT,
	ST_TOKENS_EVICT,
	ST_QUEUE_INSERT,
	ST_SWEEP,
	ST_COUNT,
	ST_TOKEN_FIND,
	ST_TOKEN_IMPORT,
	ST_TOKEN_TOUCH,
	ST_QUEUE_IMPORT,
	ST_BEGIN,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_COUNT_OF_STATEMENTS,
};

static const char *const dict_store_sql[ST_COUNT_OF_STATEMENTS] = {
	[ST_META_GET] =
	    "SELECT value FROM metadata WHERE user = ?1 AND key = ?2",
	[ST_META_SET] =
	    "INSERT INTO metadata(user, key, value) VALUES (?1, ?2, ?3) "
	    "ON CONFLICT(user, key) DO UPDATE SET value = excluded.value",
	[ST_META_UNSET] =
	    "DELETE FROM metadata WHERE user = ?1 AND key = ?2",
	[ST_META_RANGE] =
	    "SELECT key, value FROM metadata "
	    "WHERE user = ?1 AND key >= ?2 AND key < ?3 ORDER BY key",
	/* The next page of a listing: one lower bound only, so that SQLite
	 * starts the index range there (two would leave one as a filter
	 * and every page would scan from the start). */
	[ST_META_RANGE_AFTER] =
	    "SELECT key, value FROM metadata "
	    "WHERE user = ?1 AND key > ?2 AND key < ?3 ORDER BY key",
	[ST_META_EXISTS] =
	    "SELECT 1 FROM metadata WHERE user = ?1 AND key = ?2",
	/* Up to ?4 keys in [?2, ?3): the LIMIT keeps the count's cost at
	 * the bound, whatever an owner holds from before it. */
	[ST_META_COUNT] =
	    "SELECT count(*) FROM (SELECT 1 FROM metadata "
	    "WHERE user = ?1 AND key >= ?2 AND key < ?3 LIMIT ?4)",
	/* '' = mailbox unknown (imported): answers on any mailbox */
	[ST_TOKENS_GET] =
	    "SELECT token FROM tokens WHERE user = ?1 "
	    "AND (mailbox = ?2 OR mailbox = '') AND updated_at >= ?3 "
	    "ORDER BY updated_at, id",
	[ST_TOKEN_SET] =
	    "INSERT INTO tokens(user, token, mailbox, updated_at, "
	    "token_hash) VALUES (?1, ?2, ?3, ?4, ?5) "
	    "ON CONFLICT(user, token_hash) DO UPDATE SET "
	    "token = excluded.token, mailbox = excluded.mailbox, "
	    "updated_at = excluded.updated_at",
	[ST_TOKENS_UNSET] =
	    "DELETE FROM tokens WHERE user = ?1 "
	    "AND (mailbox = ?2 OR mailbox = '')",
	[ST_TOKEN_MAILBOXES] =
	    "SELECT DISTINCT mailbox FROM tokens WHERE user = ?1 "
	    "AND mailbox != '' AND updated_at >= ?2",
	/* In the index tokens_by_user alone: no table row is read. */
	[ST_TOKENS_COUNT] =
	    "SELECT count(*) FROM tokens WHERE user = ?1",
	/* All but the user's ?2 most recently set tokens (the id breaks
	 * ties: tokens of one group commit share their time, and the one
	 * inserted last is the newest). Their jobs go with them. */
	[ST_TOKENS_EVICT] =
	    "DELETE FROM tokens WHERE id IN (SELECT id FROM tokens "
	    "WHERE user = ?1 ORDER BY updated_at DESC, id DESC "
	    "LIMIT -1 OFFSET ?2)",
	/* Relay-side coalescing: a token whose job is still waiting and was
	 * never sent gets no second job; that one push will tell the device
	 * about both mails. A job in flight or waiting for a retry does not
	 * absorb new mail (its request may predate it). */
	[ST_QUEUE_INSERT] =
	    "INSERT INTO queue(token_id, user, created_at, attempts, "
	    "next_at, state) SELECT t.id, t.user, ?3, 0, ?3, 0 FROM tokens t "
	    "WHERE t.user = ?1 AND t.updated_at >= ?2 AND NOT EXISTS ("
	    "SELECT 1 FROM queue q WHERE q.token_id = t.id AND q.state = 0 "
	    "AND q.attempts = 0)",
	[ST_SWEEP] =
	    "DELETE FROM tokens WHERE id IN (SELECT id FROM tokens "
	    "WHERE updated_at < ?1 LIMIT ?2)",
	[ST_COUNT] = "SELECT count(*) FROM tokens",
	/* Imports (chatmaild_import.c) */
	[ST_TOKEN_FIND] =
	    "SELECT id, updated_at FROM tokens "
	    "WHERE user = ?1 AND token_hash = ?2",
	[ST_TOKEN_IMPORT] =
	    "INSERT INTO tokens(user, token, mailbox, updated_at, "
	    "token_hash) VALUES (?1, ?2, '', ?3, ?4)",
	[ST_TOKEN_TOUCH] =
	    "UPDATE tokens SET updated_at = ?2 "
	    "WHERE id = ?1 AND updated_at < ?2",
	/* The same coalescing as ST_QUEUE_INSERT. */
	[ST_QUEUE_IMPORT] =
	    "INSERT INTO queue(token_id, user, created_at, attempts, "
	    "next_at, state) SELECT ?1, ?2, ?3, 0, ?4, 0 WHERE NOT EXISTS ("
	    "SELECT 1 FROM queue WHERE token_id = ?1 AND state = 0 "
	    "AND attempts = 0)",
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_BEGIN_READ] = "BEGIN",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT dict_txn",
	[ST_RELEASE] = "RELEASE dict_txn",
	[ST_ROLLBACK_TO] = "ROLLBACK TO dict_txn",
};

struct dict_store {
	sqlite3		*db;
	struct db_checkpointer *checkpointer;
	sqlite3_stmt	*st[ST_COUNT_OF_STATEMENTS];
	int64_t		 token_ttl_ms;
	unsigned int	 max_tokens;	/* per user */
	unsigned int	 max_keys;	/* per user, dict_key_cap_prefix */
	bool		 reading;	/* a read transaction is open */
};

struct dict_store *
dict_store_open(const char *path, enum db_sync sync, int64_t token_ttl_ms,
    char err[ERR_LEN])
{
	struct dict_store *s = xcalloc(1, sizeof(*s));

	s->token_ttl_ms = token_ttl_ms;
	s->max_tokens = DICT_MAX_TOKENS_PER_USER_DEFAULT;
	s->max_keys = DICT_MAX_KEYS_PER_USER_DEFAULT;
	if ((s->db = relay_db_open(path, sync, err)) == NULL) {
		free(s);
		return NULL;
	}
	for (int i = 0; i < ST_COUNT_OF_STATEMENTS; i++) {
		if ((s->st[i] = db_prepare(s->db, dict_store_sql[i],
		    err)) == NULL) {
			dict_store_close(s);
			return NULL;
		}
	}
	if ((s->checkpointer = db_checkpointer_start(s->db, path,
	    err)) == NULL) {
		dict_store_close(s);
		return NULL;
	}
	return s;
}

void
dict_store_close(struct dict_store *s)
{
	if (s == NULL)
		return;
	dict_store_read_end(s);
	db_checkpointer_stop(s->checkpointer);
	for (int i = 0; i < ST_COUNT_OF_STATEMENTS; i++)
		sqlite3_finalize(s->st[i]);
	db_close(s->db);
	free(s);
}

void
dict_store_set_max_tokens(struct dict_store *s, unsigned int max)
{
	s->max_tokens = max > 0 ? max : 1;
}

void
dict_store_set_max_keys(struct dict_store *s, unsigned int max)
{
	s->max_keys = max > 0 ? max : 1;
}

void
dict_store_set_busy_timeout(struct dict_store *s, int ms)
{
	sqlite3_busy_timeout(s->db, ms);
}

bool
dict_store_locked(const struct dict_store *s)
{
	/* SQLITE_BUSY and its extended codes; not SQLITE_LOCKED, which is
	 * a conflict inside this connection (a bug, not a wait). */
	return (sqlite3_extended_errcode(s->db) & 0xff) == SQLITE_BUSY;
}

static void
dict_store_bind_text(sqlite3_stmt *st, int i, const char *s, size_t len)
{
	sqlite3_bind_text(st, i, s, (int)len, SQLITE_STATIC);
}

/* Lookups of one loop pass share one read transaction: an autocommit
 * read takes and drops SQLite's file locks (fcntl) every time, a fifth of
 * a lookup's cost. The snapshot is taken at the pass's first lookup, after
 * every commit this process has answered, so nothing stale is seen. */
static int
dict_store_read_begin(struct dict_store *s, char err[ERR_LEN])
{
	if (s->reading)
		return 0;
	if (db_stmt_run(db_stmt_ready(s->st[ST_BEGIN_READ]), err) < 0)
		return -1;
	s->reading = true;
	return 0;
}

bool
dict_store_read_end(struct dict_store *s)
{
	if (!s->reading)
		return false;
	s->reading = false;
	db_stmt_run(db_stmt_ready(s->st[ST_COMMIT]), NULL);
	return true;
}

static int64_t
dict_store_cutoff(const struct dict_store *s, int64_t now_ms)
{
	return now_ms - s->token_ttl_ms;
}

/* Append the valid tokens of (user, guid) joined by spaces to out;
 * returns how many, or -1. */
static int
dict_store_tokens_get(struct dict_store *s, const char *user,
    const char *guid, size_t guid_len, int64_t now_ms, struct buf *out,
    char err[ERR_LEN])
{
	sqlite3_stmt *st = db_stmt_ready(s->st[ST_TOKENS_GET]);
	int n = 0, rc;

	dict_store_bind_text(st, 1, user, strlen(user));
	dict_store_bind_text(st, 2, guid, guid_len);
	sqlite3_bind_int64(st, 3, dict_store_cutoff(s, now_ms));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n++ > 0)
			buf_append_char(out, ' ');
		buf_append(out, sqlite3_column_text(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0));
	}
	if (rc != SQLITE_DONE)
		return db_stmt_fail(st, err);
	sqlite3_reset(st);
	return n;
}

int
dict_store_lookup(struct dict_store *s, const char *user, const char *key,
    int64_t now_ms, struct buf *value_out, char err[ERR_LEN])
{
	struct dict_key k;
	sqlite3_stmt *st;
	int rc;

	if (dict_store_read_begin(s, err) < 0)
		return -1;
	dict_key_parse(key, &k);
	switch (k.kind) {
	case DICT_KEY_INVALID:
		err_set(err, "key is neither priv/ nor shared/");
		return -1;
	case DICT_KEY_DEVICETOKEN:
		rc = dict_store_tokens_get(s, user, k.guid, k.guid_len,
		    now_ms, value_out, err);
		return rc < 0 ? -1 : rc > 0;
	case DICT_KEY_MESSAGENEW:
		return 0;		/* an event, never stored */
	case DICT_KEY_DELTACHAT:
		return 0;		/* dict_vendor.c's, never stored */
	case DICT_KEY_PRIVATE:
	case DICT_KEY_SHARED:
		break;
	}
	st = db_stmt_ready(s->st[ST_META_GET]);
	user = dict_key_owner(&k, user);
	dict_store_bind_text(st, 1, user, strlen(user));
	dict_store_bind_text(st, 2, key, strlen(key));
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		buf_append(value_out, sqlite3_column_blob(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0));
		sqlite3_reset(st);
		return 1;
	}
	if (rc != SQLITE_DONE)
		return db_stmt_fail(st, err);
	sqlite3_reset(st);
	return 0;
}

static void
dict_rows_add(struct dict_rows *r, const char *key, size_t key_len,
    const void *value, size_t value_len)
{
	struct dict_row *row;

	r->rows = dict_array_grow(r->rows, r->n, &r->cap, sizeof(*r->rows),
	    16);
	row = &r->rows[r->n++];
	row->key = xmemdup0(key, key_len);
	row->value = value != NULL ? xmemdup0(value, value_len) : NULL;
	row->value_len = value_len;
}

void
dict_rows_clear(struct dict_rows *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->rows[i].key);
		free(r->rows[i].value);
	}
	free(r->rows);
	memset(r, 0, sizeof(*r));
}

static int
dict_row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dict_row *)a)->key,
	    ((const struct dict_row *)b)->key);
}

/* Whether key belongs to an iteration of path with these flags. */
static bool
dict_store_iter_match(const char *path, size_t path_len, const char *key,
    unsigned int flags)
{
	if (strncmp(key, path, path_len) != 0)
		return false;
	if (flags & DICT_ITER_EXACT_KEY)
		return key[path_len] == '\0';
	/* Without RECURSE only the direct children of path. */
	return (flags & DICT_ITER_RECURSE) ||
	    strchr(key + path_len, '/') == NULL;
}

/* The synthetic priv/<guid>/devicetoken rows of the user's tokens that
 * belong to the listing of path and come after after (NULL: all), keys
 * only, sorted. One per mailbox holding a token, so at most max_tokens:
 * they are read whole at every page. */
static int
dict_store_iterate_tokens(struct dict_store *s, const char *user,
    const char *path, size_t path_len, unsigned int flags, const char *after,
    int64_t now_ms, struct dict_rows *rows, char err[ERR_LEN])
{
	sqlite3_stmt *st = db_stmt_ready(s->st[ST_TOKEN_MAILBOXES]);
	struct buf key;
	int rc, ret = 0;

	buf_init(&key);
	dict_store_bind_text(st, 1, user, strlen(user));
	sqlite3_bind_int64(st, 2, dict_store_cutoff(s, now_ms));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		buf_reset(&key);
		buf_printf(&key, "priv/%s/devicetoken",
		    (const char *)sqlite3_column_text(st, 0));
		if (dict_store_iter_match(path, path_len, key.data, flags) &&
		    (after == NULL || strcmp(key.data, after) > 0))
			dict_rows_add(rows, key.data, key.len, NULL, 0);
	}
	if (rc != SQLITE_DONE)
		ret = db_stmt_fail(st, err);
	sqlite3_reset(st);
	buf_clear(&key);
	if (rows->n > 1)
		qsort(rows->rows, rows->n, sizeof(*rows->rows), dict_row_cmp);
	return ret;
}

/* Each token row's value: the mailbox's tokens, as a lookup answers. Run
 * after ST_TOKEN_MAILBOXES was reset: it reuses the connection. */
static int
dict_store_token_values(struct dict_store *s, const char *user,
    struct dict_rows *rows, int64_t now_ms, char err[ERR_LEN])
{
	struct buf value;
	int ret = 0;

	buf_init(&value);
	for (size_t i = 0; i < rows->n; i++) {
		struct dict_key k;
		struct dict_row *row = &rows->rows[i];

		dict_key_parse(row->key, &k);
		buf_reset(&value);
		if (dict_store_tokens_get(s, user, k.guid, k.guid_len, now_ms,
		    &value, err) < 0) {
			ret = -1;
			break;
		}
		row->value = xmemdup0(value.data ? value.data : "", value.len);
		row->value_len = value.len;
	}
	buf_clear(&value);
	return ret;
}

/* The metadata rows of owner under path after after, in key order, until
 * about DICT_ITER_PAGE_BYTES of them or DICT_ITER_PAGE_ROWS read.
 * *last_out is the last key read (matching or not), where the next page
 * starts; *more_out tells whether rows remain after it. */
static int
dict_store_iterate_meta(struct dict_store *s, const char *owner,
    const char *path, size_t path_len, unsigned int flags, const char *after,
    struct dict_rows *rows, struct buf *last_out, bool *more_out,
    char err[ERR_LEN])
{
	bool from_after = after != NULL && strcmp(after, path) >= 0;
	sqlite3_stmt *st = db_stmt_ready(s->st[from_after ?
	    ST_META_RANGE_AFTER : ST_META_RANGE]);
	size_t bytes = 0, nread = 0;
	char *upper;
	int rc;

	/* Every key with the prefix path sorts in [path, path + 0xff):
	 * keys are UTF-8 and no UTF-8 byte is 0xff. */
	upper = xmalloc(path_len + 2);
	memcpy(upper, path, path_len);
	upper[path_len] = (char)0xff;
	upper[path_len + 1] = '\0';
	dict_store_bind_text(st, 1, owner, strlen(owner));
	if (from_after)
		dict_store_bind_text(st, 2, after, strlen(after));
	else
		dict_store_bind_text(st, 2, path, path_len);
	dict_store_bind_text(st, 3, upper, path_len + 1);
	*more_out = false;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 0);
		size_t key_len = (size_t)sqlite3_column_bytes(st, 0);

		if (nread == DICT_ITER_PAGE_ROWS ||
		    bytes >= DICT_ITER_PAGE_BYTES) {
			*more_out = true;
			break;
		}
		nread++;
		buf_reset(last_out);
		buf_append(last_out, key, key_len);
		if (!dict_store_iter_match(path, path_len, key, flags))
			continue;
		if (flags & DICT_ITER_NO_VALUE)
			dict_rows_add(rows, key, key_len, NULL, 0);
		else
			dict_rows_add(rows, key, key_len,
			    sqlite3_column_blob(st, 1),
			    (size_t)sqlite3_column_bytes(st, 1));
		bytes += key_len + rows->rows[rows->n - 1].value_len;
	}
	free(upper);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_stmt_fail(st, err);
	sqlite3_reset(st);
	return 0;
}

int
dict_store_iterate(struct dict_store *s, const char *user, const char *path,
    unsigned int flags, const char *after, int64_t now_ms,
    struct dict_rows *rows, char **next_out, char err[ERR_LEN])
{
	size_t path_len = strlen(path);
	struct dict_rows tok;
	struct dict_key k;
	struct buf last;
	const char *owner;
	bool more = false;
	size_t keep = 0;

	memset(rows, 0, sizeof(*rows));
	memset(&tok, 0, sizeof(tok));
	*next_out = NULL;
	buf_init(&last);
	if (dict_store_read_begin(s, err) < 0)
		return -1;
	/* The path's own kind decides the owner: priv/ paths are the
	 * user's, shared/ paths global. An empty path lists the user's. */
	dict_key_parse(path, &k);
	owner = dict_key_owner(&k, user);
	if (strncmp(path, "priv/", path_len < 5 ? path_len : 5) == 0 &&
	    dict_store_iterate_tokens(s, user, path, path_len, flags, after,
	    now_ms, &tok, err) < 0)
		goto fail;
	if (dict_store_iterate_meta(s, owner, path, path_len, flags, after,
	    rows, &last, &more, err) < 0)
		goto fail;
	/* Token rows past the last key read belong to a later page: the
	 * metadata rows before them are not read yet. */
	while (keep < tok.n && (!more || strcmp(tok.rows[keep].key,
	    last.data) < 0))
		keep++;
	for (size_t i = keep; i < tok.n; i++)
		free(tok.rows[i].key);
	tok.n = keep;
	if (!(flags & DICT_ITER_NO_VALUE) &&
	    dict_store_token_values(s, user, &tok, now_ms, err) < 0)
		goto fail;
	for (size_t i = 0; i < tok.n; i++) {
		rows->rows = dict_array_grow(rows->rows, rows->n, &rows->cap,
		    sizeof(*rows->rows), 16);
		rows->rows[rows->n++] = tok.rows[i];
	}
	free(tok.rows);
	if (rows->n > 1)
		qsort(rows->rows, rows->n, sizeof(*rows->rows), dict_row_cmp);
	if (more)
		*next_out = buf_steal(&last, NULL);
	buf_clear(&last);
	return 0;
fail:
	dict_rows_clear(&tok);
	dict_rows_clear(rows);
	buf_clear(&last);
	return -1;
}

int
dict_store_batch_begin(struct dict_store *s, char err[ERR_LEN])
{
	dict_store_read_end(s);
	return db_stmt_run(db_stmt_ready(s->st[ST_BEGIN]), err);
}

int
dict_store_batch_commit(struct dict_store *s, char err[ERR_LEN])
{
	if (db_stmt_run(db_stmt_ready(s->st[ST_COMMIT]), err) < 0) {
		dict_store_batch_rollback(s);
		return -1;
	}
	return 0;
}

void
dict_store_batch_rollback(struct dict_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		db_stmt_run(db_stmt_ready(s->st[ST_ROLLBACK]), NULL);
}

/* Sets or refreshes the token, then evicts the user's tokens past
 * max_tokens, least recently set first (the token just set sorts newest,
 * unless more than max_tokens others come after it in the same group
 * commit). The eviction reads and sorts every token row of the user: run
 * on every set it cut the set rate to 0.4 of what it was
 * (tests/bench/run-dictd-bench.sh, 64 connections: 11,100-14,700 sets/s
 * against 20,800-32,700 without it), so it runs only when a count of the
 * user's entries in the index tokens_by_user, which reads no table row,
 * says the user is past the bound (21,700-32,200 sets/s). */
static int
dict_store_set_token(struct dict_store *s, const char *user,
    const struct dict_key *k, const struct dict_change *ch, int64_t now_ms,
    struct dict_apply_counts *counts, char err[ERR_LEN])
{
	sqlite3_stmt *st;
	int64_t n = 0;

	if (dict_key_token_check(ch->value, ch->value_len, err) < 0)
		return -1;
	st = db_stmt_ready(s->st[ST_TOKEN_SET]);
	dict_store_bind_text(st, 1, user, strlen(user));
	dict_store_bind_text(st, 2, ch->value, ch->value_len);
	dict_store_bind_text(st, 3, k->guid, k->guid_len);
	sqlite3_bind_int64(st, 4, now_ms);
	sqlite3_bind_int64(st, 5, relay_db_token_hash(ch->value,
	    ch->value_len));
	if (db_stmt_run(st, err) < 0)
		return -1;
	counts->tokens_set++;
	st = db_stmt_ready(s->st[ST_TOKENS_COUNT]);
	dict_store_bind_text(st, 1, user, strlen(user));
	if (db_stmt_int64(st, &n, err) < 0)
		return -1;
	if (n <= (int64_t)s->max_tokens)
		return 0;
	st = db_stmt_ready(s->st[ST_TOKENS_EVICT]);
	dict_store_bind_text(st, 1, user, strlen(user));
	sqlite3_bind_int64(st, 2, s->max_tokens);
	if (db_stmt_run(st, err) < 0)
		return -1;
	/* The tokens only: the jobs deleted by the cascade are not
	 * counted by sqlite3_changes. */
	counts->tokens_evicted += (uint64_t)sqlite3_changes(s->db);
	return 0;
}

/* 0 when key may be set under owner: it is there already, or fewer than
 * max_keys keys are counted with it (dict_key_cap_prefix); -1 and err
 * when it may not (counted in keys_refused) or on a failure. */
static int
dict_store_key_room(struct dict_store *s, const char *owner, const char *key,
    struct dict_apply_counts *counts, char err[ERR_LEN])
{
	size_t plen = dict_key_cap_prefix(key);
	sqlite3_stmt *st = db_stmt_ready(s->st[ST_META_EXISTS]);
	int64_t n = 0;
	char *upper;
	int rc;

	dict_store_bind_text(st, 1, owner, strlen(owner));
	dict_store_bind_text(st, 2, key, strlen(key));
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_stmt_fail(st, err);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return 0;		/* a change, not a new key */
	/* The keys in [prefix, prefix + 0xff), as a listing finds them. */
	upper = xmalloc(plen + 2);
	memcpy(upper, key, plen);
	upper[plen] = (char)0xff;
	upper[plen + 1] = '\0';
	st = db_stmt_ready(s->st[ST_META_COUNT]);
	dict_store_bind_text(st, 1, owner, strlen(owner));
	dict_store_bind_text(st, 2, key, plen);
	dict_store_bind_text(st, 3, upper, plen + 1);
	sqlite3_bind_int64(st, 4, s->max_keys);
	rc = db_stmt_int64(st, &n, err);
	free(upper);
	if (rc < 0)
		return -1;
	if (n < (int64_t)s->max_keys)
		return 0;
	counts->keys_refused++;
	/* Neither the user nor the key: the caller's log line names the
	 * connection, and the key is the peer's bytes. */
	err_set(err, "too many keys: %s %u (--max-keys-per-user)",
	    key[0] == 'p' ? "the user's private keys number" :
	    "the mailbox's shared keys number", s->max_keys);
	return -1;
}

/* One queue row per valid token of the user; *rows_out counts them. */
static int
dict_store_queue_event(struct dict_store *s, const char *user,
    int64_t now_ms, uint64_t *rows_out, char err[ERR_LEN])
{
	sqlite3_stmt *st = db_stmt_ready(s->st[ST_QUEUE_INSERT]);

	dict_store_bind_text(st, 1, user, strlen(user));
	sqlite3_bind_int64(st, 2, dict_store_cutoff(s, now_ms));
	sqlite3_bind_int64(st, 3, now_ms);
	if (db_stmt_run(st, err) < 0)
		return -1;
	*rows_out += (uint64_t)sqlite3_changes(s->db);
	return 0;
}

/* 1 done, 0 key not found, -1 error. */
static int
dict_store_inc(struct dict_store *s, const char *owner, const char *key,
    int64_t diff, char err[ERR_LEN])
{
	sqlite3_stmt *st = db_stmt_ready(s->st[ST_META_GET]);
	char num[32], *end;
	long long v;
	int rc, len;

	dict_store_bind_text(st, 1, owner, strlen(owner));
	dict_store_bind_text(st, 2, key, strlen(key));
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		return 0;
	}
	if (rc != SQLITE_ROW)
		return db_stmt_fail(st, err);
	len = sqlite3_column_bytes(st, 0);
	if (len <= 0 || len >= (int)sizeof(num)) {
		sqlite3_reset(st);
		err_set(err, "atomic-inc on a non-numeric value");
		return -1;
	}
	memcpy(num, sqlite3_column_blob(st, 0), (size_t)len);
	num[len] = '\0';
	sqlite3_reset(st);
	errno = 0;
	v = strtoll(num, &end, 10);
	if (errno != 0 || *end != '\0' ||
	    (diff > 0 && v > INT64_MAX - diff) ||
	    (diff < 0 && v < INT64_MIN - diff)) {
		err_set(err, "atomic-inc on a non-numeric value");
		return -1;
	}
	len = snprintf(num, sizeof(num), "%lld", v + (long long)diff);
	st = db_stmt_ready(s->st[ST_META_SET]);
	dict_store_bind_text(st, 1, owner, strlen(owner));
	dict_store_bind_text(st, 2, key, strlen(key));
	sqlite3_bind_blob(st, 3, num, len, SQLITE_STATIC);
	return db_stmt_run(st, err) < 0 ? -1 : 1;
}

/* Apply one change; 1 done, 0 not found (atomic-inc), -1 error. */
static int
dict_store_change(struct dict_store *s, const char *user,
    const struct dict_change *ch, int64_t now_ms,
    struct dict_apply_counts *counts, char err[ERR_LEN])
{
	struct dict_key k;
	const char *owner;
	sqlite3_stmt *st;

	dict_key_parse(ch->key, &k);
	if (k.kind == DICT_KEY_INVALID) {
		err_set(err, "key is neither priv/ nor shared/");
		return -1;
	}
	/* The relay's server-level entries come from its configuration;
	 * a client may read them, never change them. */
	if (k.kind == DICT_KEY_DELTACHAT) {
		err_set(err, "server entries under /shared/vendor/deltachat/ "
		    "are read-only");
		return -1;
	}
	owner = dict_key_owner(&k, user);
	switch (ch->kind) {
	case DICT_CHANGE_SET:
		if (k.kind == DICT_KEY_DEVICETOKEN)
			return dict_store_set_token(s, user, &k, ch, now_ms,
			    counts, err) < 0 ? -1 : 1;
		if (k.kind == DICT_KEY_MESSAGENEW)
			return dict_store_queue_event(s, user, now_ms,
			    &counts->queued, err) < 0 ? -1 : 1;
		if (dict_store_key_room(s, owner, ch->key, counts, err) < 0)
			return -1;
		st = db_stmt_ready(s->st[ST_META_SET]);
		dict_store_bind_text(st, 1, owner, strlen(owner));
		dict_store_bind_text(st, 2, ch->key, strlen(ch->key));
		sqlite3_bind_blob(st, 3, ch->value, (int)ch->value_len,
		    SQLITE_STATIC);
		return db_stmt_run(st, err) < 0 ? -1 : 1;
	case DICT_CHANGE_UNSET:
		if (k.kind == DICT_KEY_MESSAGENEW)
			return 1;
		if (k.kind == DICT_KEY_DEVICETOKEN) {
			st = db_stmt_ready(s->st[ST_TOKENS_UNSET]);
			dict_store_bind_text(st, 1, user, strlen(user));
			dict_store_bind_text(st, 2, k.guid, k.guid_len);
		} else {
			st = db_stmt_ready(s->st[ST_META_UNSET]);
			dict_store_bind_text(st, 1, owner, strlen(owner));
			dict_store_bind_text(st, 2, ch->key, strlen(ch->key));
		}
		return db_stmt_run(st, err) < 0 ? -1 : 1;
	case DICT_CHANGE_INC:
		if (k.kind == DICT_KEY_DEVICETOKEN ||
		    k.kind == DICT_KEY_MESSAGENEW) {
			err_set(err, "atomic-inc on a device token or event");
			return -1;
		}
		return dict_store_inc(s, owner, ch->key, ch->diff, err);
	}
	return -1;
}

enum dict_commit_result
dict_store_apply(struct dict_store *s, const struct dict_txn *txn,
    int64_t now_ms, struct dict_apply_counts *counts, char err[ERR_LEN])
{
	enum dict_commit_result result = DICT_COMMIT_OK;
	struct dict_apply_counts mine = { 0 };
	char ignored[ERR_LEN];

	if (txn->failed != NULL) {
		err_set(err, "%s", txn->failed);
		return DICT_COMMIT_FAILED;
	}
	if (db_stmt_run(db_stmt_ready(s->st[ST_SAVEPOINT]), err) < 0)
		return DICT_COMMIT_FAILED;
	for (size_t i = 0; i < txn->nchanges; i++) {
		int rc = dict_store_change(s, txn->user, &txn->changes[i],
		    now_ms, &mine, err);

		if (rc < 0) {
			result = DICT_COMMIT_FAILED;
			break;
		}
		if (rc == 0)
			result = DICT_COMMIT_NOT_FOUND;
	}
	if (result == DICT_COMMIT_FAILED)
		db_stmt_run(db_stmt_ready(s->st[ST_ROLLBACK_TO]), ignored);
	if (db_stmt_run(db_stmt_ready(s->st[ST_RELEASE]),
	    result == DICT_COMMIT_FAILED ? ignored : err) < 0)
		return DICT_COMMIT_FAILED;
	if (result != DICT_COMMIT_FAILED) {
		counts->queued += mine.queued;
		counts->tokens_set += mine.tokens_set;
		counts->tokens_evicted += mine.tokens_evicted;
	}
	counts->keys_refused += mine.keys_refused;
	return result;
}

/* 1 and the row's id and updated_at if user has token, 0 if not, -1. */
static int
dict_store_token_find(struct dict_store *s, const char *user,
    const char *token, size_t len, int64_t *id_out, int64_t *updated_out,
    char err[ERR_LEN])
{
	sqlite3_stmt *st = db_stmt_ready(s->st[ST_TOKEN_FIND]);
	int rc;

	dict_store_bind_text(st, 1, user, strlen(user));
	sqlite3_bind_int64(st, 2, relay_db_token_hash(token, len));
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id_out = sqlite3_column_int64(st, 0);
		*updated_out = sqlite3_column_int64(st, 1);
		sqlite3_reset(st);
		return 1;
	}
	if (rc != SQLITE_DONE)
		return db_stmt_fail(st, err);
	sqlite3_reset(st);
	return 0;
}

int
dict_store_token_import(struct dict_store *s, const char *user,
    const char *token, size_t len, int64_t updated_at_ms, bool refresh,
    enum dict_import_result *result_out, char err[ERR_LEN])
{
	sqlite3_stmt *st;
	int64_t id, updated;
	int rc;

	if (dict_key_token_check(token, len, err) < 0)
		return -1;
	if ((rc = dict_store_token_find(s, user, token, len, &id, &updated,
	    err)) < 0)
		return -1;
	if (rc == 0) {
		st = db_stmt_ready(s->st[ST_TOKEN_IMPORT]);
		dict_store_bind_text(st, 1, user, strlen(user));
		dict_store_bind_text(st, 2, token, len);
		sqlite3_bind_int64(st, 3, updated_at_ms);
		sqlite3_bind_int64(st, 4, relay_db_token_hash(token, len));
		*result_out = DICT_IMPORT_ADDED;
		return db_stmt_run(st, err);
	}
	*result_out = DICT_IMPORT_PRESENT;
	if (!refresh || updated >= updated_at_ms)
		return 0;
	st = db_stmt_ready(s->st[ST_TOKEN_TOUCH]);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, updated_at_ms);
	*result_out = DICT_IMPORT_REFRESHED;
	return db_stmt_run(st, err);
}

int
dict_store_queue_import(struct dict_store *s, const char *user,
    const char *token, size_t len, int64_t created_at_ms, int64_t now_ms,
    enum dict_import_job_result *result_out, char err[ERR_LEN])
{
	sqlite3_stmt *st;
	int64_t id, updated;
	int rc;

	if ((rc = dict_store_token_find(s, user, token, len, &id, &updated,
	    err)) < 0)
		return -1;
	/* An expired token gets no job, as with new mail. */
	if (rc == 0 || updated < dict_store_cutoff(s, now_ms)) {
		*result_out = DICT_IMPORT_JOB_NO_TOKEN;
		return 0;
	}
	st = db_stmt_ready(s->st[ST_QUEUE_IMPORT]);
	sqlite3_bind_int64(st, 1, id);
	dict_store_bind_text(st, 2, user, strlen(user));
	sqlite3_bind_int64(st, 3, created_at_ms);
	sqlite3_bind_int64(st, 4, now_ms);
	if (db_stmt_run(st, err) < 0)
		return -1;
	*result_out = sqlite3_changes(s->db) > 0 ? DICT_IMPORT_JOB_QUEUED :
	    DICT_IMPORT_JOB_COALESCED;
	return 0;
}

int
dict_store_sweep(struct dict_store *s, int64_t now_ms, int limit,
    char err[ERR_LEN])
{
	sqlite3_stmt *st;
	int n;

	if (dict_store_batch_begin(s, err) < 0)
		return -1;
	st = db_stmt_ready(s->st[ST_SWEEP]);
	sqlite3_bind_int64(st, 1, dict_store_cutoff(s, now_ms));
	sqlite3_bind_int(st, 2, limit);
	if (db_stmt_run(st, err) < 0) {
		dict_store_batch_rollback(s);
		return -1;
	}
	n = sqlite3_changes(s->db);
	if (dict_store_batch_commit(s, err) < 0)
		return -1;
	return n;
}

int64_t
dict_store_count_tokens(struct dict_store *s, char err[ERR_LEN])
{
	int64_t n = 0;

	dict_store_read_end(s);	/* count what is committed now */
	return db_stmt_int64(db_stmt_ready(s->st[ST_COUNT]), &n, err) < 0 ?
	    -1 : n;
}
