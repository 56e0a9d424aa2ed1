/* The owed pushes' table; see owed_store.h. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "owed_store.h"
#include "xmalloc.h"

enum owed_stmt {
	OS_INSERT,
	OS_UPDATE,
	OS_DELETE,
	OS_SCAN_FIRST,
	OS_SCAN_AFTER,
	OS_COUNT,
	OS_KEY_MAKE,
	OS_KEY_GET,
	OS_NSTMTS,
};

static const char *const os_sql[OS_NSTMTS] = {
	[OS_INSERT] = "INSERT INTO owed(key, input, first_at, due_at, attempts)"
	    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(key) DO UPDATE SET"
	    " input = excluded.input, first_at = excluded.first_at,"
	    " due_at = excluded.due_at, attempts = excluded.attempts",
	/* An item whose input is stored already. */
	[OS_UPDATE] = "UPDATE owed SET first_at = ?3, due_at = ?4,"
	    " attempts = ?5 WHERE key = ?1",
	[OS_DELETE] = "DELETE FROM owed WHERE key = ?1",
	[OS_SCAN_FIRST] = "SELECT key, input, first_at, due_at, attempts"
	    " FROM owed ORDER BY key LIMIT ?2",
	[OS_SCAN_AFTER] = "SELECT key, input, first_at, due_at, attempts"
	    " FROM owed WHERE key > ?1 ORDER BY key LIMIT ?2",
	[OS_COUNT] = "SELECT count(*) FROM owed",
	[OS_KEY_MAKE] = "INSERT OR IGNORE INTO proxy_keys(name, key)"
	    " VALUES ('owed', ?1)",
	[OS_KEY_GET] = "SELECT key FROM proxy_keys WHERE name = 'owed'",
};

struct owed_store {
	sqlite3		*db;
	sqlite3_stmt	*st[OS_NSTMTS];
	char		*err;		/* the commit's, for the callbacks */
};

struct owed_store *
owed_store_new(sqlite3 *db, char err[ERR_LEN])
{
	struct owed_store *s = xcalloc(1, sizeof(*s));

	s->db = db;
	for (int i = 0; i < OS_NSTMTS; i++)
		if ((s->st[i] = db_prepare(db, os_sql[i], err)) == NULL) {
			owed_store_free(s);
			return NULL;
		}
	return s;
}

void
owed_store_free(struct owed_store *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < OS_NSTMTS; i++)
		sqlite3_finalize(s->st[i]);
	free(s);
}

int
owed_store_key(struct owed_store *s, uint8_t key[SIPHASH_KEY_LEN],
    char err[ERR_LEN])
{
	uint8_t fresh[SIPHASH_KEY_LEN];
	sqlite3_stmt *st;
	int rc;

	if (RAND_bytes(fresh, sizeof(fresh)) != 1) {
		err_set(err, "no random bytes for the owed pushes' key");
		return -1;
	}
	st = db_stmt_ready(s->st[OS_KEY_MAKE]);
	sqlite3_bind_blob(st, 1, fresh, sizeof(fresh), SQLITE_STATIC);
	rc = db_stmt_run(st, err);
	OPENSSL_cleanse(fresh, sizeof(fresh));
	if (rc < 0)
		return -1;
	st = db_stmt_ready(s->st[OS_KEY_GET]);
	if (sqlite3_step(st) != SQLITE_ROW ||
	    sqlite3_column_bytes(st, 0) != SIPHASH_KEY_LEN) {
		sqlite3_reset(st);
		err_set(err, "the owed pushes' key in the database is damaged");
		return -1;
	}
	memcpy(key, sqlite3_column_blob(st, 0), SIPHASH_KEY_LEN);
	sqlite3_reset(st);
	return 0;
}

static int
owed_store_put(void *arg, const struct owed_item *it)
{
	struct owed_store *s = arg;
	sqlite3_stmt *st = db_stmt_ready(s->st[it->input != NULL ? OS_INSERT :
	    OS_UPDATE]);

	sqlite3_bind_blob(st, 1, it->key, OWED_KEY_LEN, SQLITE_STATIC);
	if (it->input != NULL)
		sqlite3_bind_text(st, 2, it->input, (int)it->input_len,
		    SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, it->first_ms);
	sqlite3_bind_int64(st, 4, it->due_ms);
	sqlite3_bind_int64(st, 5, it->attempts);
	return db_stmt_run(st, s->err);
}

static int
owed_store_del(void *arg, const uint8_t key[OWED_KEY_LEN])
{
	struct owed_store *s = arg;
	sqlite3_stmt *st = db_stmt_ready(s->st[OS_DELETE]);

	sqlite3_bind_blob(st, 1, key, OWED_KEY_LEN, SQLITE_STATIC);
	return db_stmt_run(st, s->err);
}

int
owed_store_commit(struct owed_store *s, struct owed *o, char err[ERR_LEN])
{
	if (owed_journal_empty(o))
		return 0;
	if (db_begin_immediate(s->db, err) < 0)
		return -1;
	s->err = err;
	if (owed_journal_apply(o, owed_store_put, owed_store_del, s) < 0) {
		s->err = NULL;
		db_rollback(s->db);
		return -1;
	}
	s->err = NULL;
	if (db_commit(s->db, err) < 0) {
		db_rollback(s->db);
		return -1;
	}
	owed_journal_done(o);
	return 0;
}

int
owed_store_scan(struct owed_store *s, const uint8_t *after, size_t max,
    struct owed_row *out, char err[ERR_LEN])
{
	sqlite3_stmt *st = db_stmt_ready(s->st[after != NULL ? OS_SCAN_AFTER :
	    OS_SCAN_FIRST]);
	size_t n = 0;
	int rc = SQLITE_DONE;

	if (after != NULL)
		sqlite3_bind_blob(st, 1, after, OWED_KEY_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct owed_row *r = &out[n];

		if (sqlite3_column_bytes(st, 0) != OWED_KEY_LEN)
			continue;	/* not ours: never written so */
		memcpy(r->key, sqlite3_column_blob(st, 0), OWED_KEY_LEN);
		r->input_len = (size_t)sqlite3_column_bytes(st, 1);
		r->input = xmemdup0(sqlite3_column_text(st, 1), r->input_len);
		r->first_ms = sqlite3_column_int64(st, 2);
		r->due_ms = sqlite3_column_int64(st, 3);
		r->attempts = (uint32_t)sqlite3_column_int64(st, 4);
		n++;
	}
	if (n < max && rc != SQLITE_DONE) {
		owed_rows_clear(out, n);
		return db_stmt_fail(st, err);
	}
	sqlite3_reset(st);
	return (int)n;
}

void
owed_rows_clear(struct owed_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (rows[i].input != NULL) {
			OPENSSL_cleanse(rows[i].input, rows[i].input_len);
			free(rows[i].input);
		}
		rows[i].input = NULL;
	}
}

int64_t
owed_store_count(struct owed_store *s, char err[ERR_LEN])
{
	int64_t n = 0;

	return db_stmt_int64(db_stmt_ready(s->st[OS_COUNT]), &n, err) < 0 ?
	    -1 : n;
}
