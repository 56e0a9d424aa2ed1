/*
 * SQLite storage of the heartbeat schedule (see heartbeat.h): one table,
 * `heartbeat(token PRIMARY KEY, next_at)`, indexed by next_at (the schema
 * is proxy_db.c's).
 */
#include <stdlib.h>
#include <string.h>

#include "heartbeat_store.h"
#include "xmalloc.h"

enum hb_stmt {
	HB_PUT,
	HB_REMOVE,
	HB_DUE,
	HB_NEXT,
	HB_COUNT,
	HB_HAS,
	HB_SCAN,
	HB_NSTMTS,
};

static const char *const hb_sql[HB_NSTMTS] = {
	[HB_PUT] = "INSERT INTO heartbeat(token, next_at) VALUES (?1, ?2) "
	    "ON CONFLICT(token) DO UPDATE SET next_at = excluded.next_at",
	[HB_REMOVE] = "DELETE FROM heartbeat WHERE token = ?1",
	[HB_DUE] = "SELECT token, next_at FROM heartbeat WHERE next_at <= ?1 "
	    "ORDER BY next_at LIMIT ?2",
	[HB_NEXT] = "SELECT min(next_at) FROM heartbeat",
	[HB_COUNT] = "SELECT count(*) FROM heartbeat",
	[HB_HAS] = "SELECT count(*) FROM heartbeat WHERE token = ?1",
	[HB_SCAN] = "SELECT token, next_at FROM heartbeat WHERE token > ?1 "
	    "ORDER BY token LIMIT ?2",
};

struct heartbeat_store {
	sqlite3		*db;
	sqlite3_stmt	*st[HB_NSTMTS];
};

struct heartbeat_store *
heartbeat_store_new(sqlite3 *db, char err[ERR_LEN])
{
	struct heartbeat_store *h = xcalloc(1, sizeof(*h));

	h->db = db;
	for (int i = 0; i < HB_NSTMTS; i++)
		if ((h->st[i] = db_prepare(h->db, hb_sql[i], err)) == NULL) {
			heartbeat_store_free(h);
			return NULL;
		}
	return h;
}

void
heartbeat_store_free(struct heartbeat_store *h)
{
	if (h == NULL)
		return;
	for (int i = 0; i < HB_NSTMTS; i++)
		sqlite3_finalize(h->st[i]);
	free(h);
}

int
heartbeat_store_put(struct heartbeat_store *h, const char *token,
    int64_t next_at_ms, char err[ERR_LEN])
{
	sqlite3_stmt *st = db_stmt_ready(h->st[HB_PUT]);

	sqlite3_bind_text(st, 1, token, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, next_at_ms);
	return db_stmt_run(st, err);
}

int
heartbeat_store_remove(struct heartbeat_store *h, const char *token,
    char err[ERR_LEN])
{
	sqlite3_stmt *st = db_stmt_ready(h->st[HB_REMOVE]);

	sqlite3_bind_text(st, 1, token, -1, SQLITE_STATIC);
	if (db_stmt_run(st, err) < 0)
		return -1;
	return sqlite3_changes(h->db) > 0;
}

/* Up to max rows of st (bound already) into out. */
static int
heartbeat_store_rows(sqlite3_stmt *st, size_t max, struct heartbeat_due *out,
    char err[ERR_LEN])
{
	size_t n = 0;
	int rc = SQLITE_DONE;

	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		out[n].token = xmemdup0(sqlite3_column_text(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0));
		out[n].next_at = sqlite3_column_int64(st, 1);
		n++;
	}
	if (n < max && rc != SQLITE_DONE) {
		heartbeat_due_clear(out, n);
		return db_stmt_fail(st, err);
	}
	sqlite3_reset(st);
	return (int)n;
}

int
heartbeat_store_due(struct heartbeat_store *h, int64_t now_ms, size_t max,
    struct heartbeat_due *out, char err[ERR_LEN])
{
	sqlite3_stmt *st = db_stmt_ready(h->st[HB_DUE]);

	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	return heartbeat_store_rows(st, max, out, err);
}

int
heartbeat_store_scan(struct heartbeat_store *h, const char *after,
    size_t max, struct heartbeat_due *out, char err[ERR_LEN])
{
	sqlite3_stmt *st = db_stmt_ready(h->st[HB_SCAN]);

	sqlite3_bind_text(st, 1, after != NULL ? after : "", -1,
	    SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	return heartbeat_store_rows(st, max, out, err);
}

void
heartbeat_due_clear(struct heartbeat_due *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(d[i].token);
		d[i].token = NULL;
	}
}

int
heartbeat_store_next(struct heartbeat_store *h, int64_t *at_out,
    char err[ERR_LEN])
{
	return db_stmt_int64(db_stmt_ready(h->st[HB_NEXT]), at_out, err);
}

int64_t
heartbeat_store_count(struct heartbeat_store *h, char err[ERR_LEN])
{
	int64_t n = 0;

	return db_stmt_int64(db_stmt_ready(h->st[HB_COUNT]), &n, err) < 0 ?
	    -1 : n;
}

int64_t
heartbeat_next_at(int64_t now_ms, int64_t interval_ms, int64_t jitter_ms,
    uint32_t rnd)
{
	int64_t spread = jitter_ms > 0 ?
	    (int64_t)(rnd % (uint64_t)(2 * jitter_ms + 1)) - jitter_ms : 0;

	return now_ms + interval_ms + spread;
}

int
heartbeat_store_has(struct heartbeat_store *h, const char *token,
    char err[ERR_LEN])
{
	sqlite3_stmt *st = db_stmt_ready(h->st[HB_HAS]);
	int64_t n = 0;

	sqlite3_bind_text(st, 1, token, -1, SQLITE_STATIC);
	return db_stmt_int64(st, &n, err) < 0 ? -1 : n > 0;
}
