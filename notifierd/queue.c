/*
 * notifierd's side of the relay database (schema in common/relay_db.c):
 * claim due jobs, write their outcomes in batches, report statistics.
 * Every statement is prepared once; every write transaction starts with
 * BEGIN IMMEDIATE because metadata-dictd writes the same file.
 */
#include <stdlib.h>
#include <string.h>

#include "db_checkpoint.h"
#include "notifierd.h"
#include "relay_db.h"
#include "xmalloc.h"

enum queue_stmt {
	QS_REQUEUE,
	QS_CLAIM,
	QS_TOKEN,
	QS_NEXT_DUE,
	QS_DONE,
	QS_GONE,
	QS_RETRY,
	QS_RELEASE,
	QS_STATS,
	QS_BEGIN,
	QS_COMMIT,
	QS_ROLLBACK,
	QS_COUNT,
};

static const char *const queue_sql[QS_COUNT] = {
	[QS_REQUEUE] =
	    "UPDATE queue SET state = 0 WHERE state = 1",
	/* The earliest due first (the rows come back in no set order);
	 * queue_by_due(state, next_at) serves it. */
	[QS_CLAIM] =
	    "UPDATE queue SET state = 1 WHERE id IN (SELECT id FROM queue "
	    "WHERE state = 0 AND next_at <= ?1 ORDER BY next_at LIMIT ?2) "
	    "RETURNING id, token_id, created_at, attempts",
	[QS_TOKEN] = "SELECT token FROM tokens WHERE id = ?1",
	[QS_NEXT_DUE] =
	    "SELECT min(next_at) FROM queue WHERE state = 0",
	[QS_DONE] = "DELETE FROM queue WHERE id = ?1",
	/* Deletes the token's jobs too (ON DELETE CASCADE). */
	[QS_GONE] = "DELETE FROM tokens WHERE id = ?1",
	[QS_RETRY] =
	    "UPDATE queue SET state = 0, attempts = ?2, next_at = ?3 "
	    "WHERE id = ?1",
	[QS_RELEASE] = "UPDATE queue SET state = 0 WHERE id = ?1",
	[QS_STATS] = "SELECT count(*), min(created_at) FROM queue",
	[QS_BEGIN] = "BEGIN IMMEDIATE",
	[QS_COMMIT] = "COMMIT",
	[QS_ROLLBACK] = "ROLLBACK",
};

struct queue {
	sqlite3			*db;
	sqlite3_stmt		*st[QS_COUNT];
	struct db_checkpointer	*checkpointer;
};

void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	if (j->token != NULL) {
		/* A device token is a secret. */
		memset(j->token, 0, strlen(j->token));
		free(j->token);
	}
	free(j);
}

struct queue *
queue_open(const char *path, enum db_sync sync, char err[ERR_LEN])
{
	struct queue *q = xcalloc(1, sizeof(*q));

	if ((q->db = relay_db_open(path, sync, err)) == NULL) {
		free(q);
		return NULL;
	}
	for (int i = 0; i < QS_COUNT; i++) {
		if ((q->st[i] = db_prepare(q->db, queue_sql[i], err)) ==
		    NULL) {
			queue_close(q);
			return NULL;
		}
	}
	if ((q->checkpointer = db_checkpointer_start(q->db, path, err)) ==
	    NULL) {
		queue_close(q);
		return NULL;
	}
	return q;
}

void
queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	db_checkpointer_stop(q->checkpointer);
	for (int i = 0; i < QS_COUNT; i++)
		sqlite3_finalize(q->st[i]);
	db_close(q->db);
	free(q);
}




int
queue_batch_begin(struct queue *q, char err[ERR_LEN])
{
	return db_stmt_run(db_stmt_ready(q->st[QS_BEGIN]), err);
}

int
queue_batch_commit(struct queue *q, char err[ERR_LEN])
{
	if (db_stmt_run(db_stmt_ready(q->st[QS_COMMIT]), err) < 0) {
		queue_batch_rollback(q);
		return -1;
	}
	return 0;
}

void
queue_batch_rollback(struct queue *q)
{
	if (!sqlite3_get_autocommit(q->db))
		db_stmt_run(db_stmt_ready(q->st[QS_ROLLBACK]), NULL);
}

int
queue_requeue_in_flight(struct queue *q, char err[ERR_LEN])
{
	int n;

	if (queue_batch_begin(q, err) < 0)
		return -1;
	if (db_stmt_run(db_stmt_ready(q->st[QS_REQUEUE]), err) < 0) {
		queue_batch_rollback(q);
		return -1;
	}
	n = sqlite3_changes(q->db);
	return queue_batch_commit(q, err) < 0 ? -1 : n;
}

int
queue_claim(struct queue *q, int64_t now_ms, size_t max,
    struct job **jobs_out, char err[ERR_LEN])
{
	sqlite3_stmt *st, *tok;
	size_t n = 0;
	int rc;

	if (max == 0)
		return 0;
	if (queue_batch_begin(q, err) < 0)
		return -1;
	st = db_stmt_ready(q->st[QS_CLAIM]);
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct job *j = xcalloc(1, sizeof(*j));

		j->id = sqlite3_column_int64(st, 0);
		j->token_id = sqlite3_column_int64(st, 1);
		j->created_at = sqlite3_column_int64(st, 2);
		j->attempts = (unsigned int)sqlite3_column_int(st, 3);
		jobs_out[n++] = j;
	}
	/* RETURNING rows come before the update completes: step to the
	 * end so that every row is written before the commit. */
	if (n == max)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		db_stmt_fail(st, err);
		goto fail;
	}
	sqlite3_reset(st);
	for (size_t i = 0; i < n; i++) {
		tok = db_stmt_ready(q->st[QS_TOKEN]);
		sqlite3_bind_int64(tok, 1, jobs_out[i]->token_id);
		rc = sqlite3_step(tok);
		if (rc == SQLITE_ROW)
			jobs_out[i]->token = xmemdup0(sqlite3_column_text(tok,
			    0), (size_t)sqlite3_column_bytes(tok, 0));
		else if (rc != SQLITE_DONE) {
			db_stmt_fail(tok, err);
			goto fail;
		}
		/* No token: deleted under us; the cascade took the job too,
		 * so the caller just drops it (token stays NULL). */
		sqlite3_reset(tok);
	}
	if (queue_batch_commit(q, err) < 0)
		goto fail_rolled_back;
	return (int)n;
fail:
	queue_batch_rollback(q);
fail_rolled_back:
	for (size_t i = 0; i < n; i++)
		job_free(jobs_out[i]);
	return -1;
}

int
queue_next_due(struct queue *q, int64_t *at_out, char err[ERR_LEN])
{
	return db_stmt_int64(db_stmt_ready(q->st[QS_NEXT_DUE]), at_out, err);
}

static int
queue_by_id(struct queue *q, enum queue_stmt which, int64_t id,
    char err[ERR_LEN])
{
	sqlite3_stmt *st = db_stmt_ready(q->st[which]);

	sqlite3_bind_int64(st, 1, id);
	return db_stmt_run(st, err);
}

int
queue_job_done(struct queue *q, const struct job *j, char err[ERR_LEN])
{
	return queue_by_id(q, QS_DONE, j->id, err);
}

int
queue_token_gone(struct queue *q, const struct job *j, char err[ERR_LEN])
{
	/* The job goes with its token (cascade); delete it explicitly too
	 * in case the token row was already gone. */
	if (queue_by_id(q, QS_GONE, j->token_id, err) < 0)
		return -1;
	return queue_by_id(q, QS_DONE, j->id, err);
}

int
queue_job_retry(struct queue *q, const struct job *j, int64_t next_at_ms,
    char err[ERR_LEN])
{
	sqlite3_stmt *st = db_stmt_ready(q->st[QS_RETRY]);

	sqlite3_bind_int64(st, 1, j->id);
	sqlite3_bind_int(st, 2, (int)j->attempts + 1);
	sqlite3_bind_int64(st, 3, next_at_ms);
	return db_stmt_run(st, err);
}

int
queue_job_release(struct queue *q, const struct job *j, char err[ERR_LEN])
{
	return queue_by_id(q, QS_RELEASE, j->id, err);
}

int
queue_stats(struct queue *q, int64_t now_ms, int64_t *length_out,
    int64_t *oldest_age_ms_out, char err[ERR_LEN])
{
	sqlite3_stmt *st = db_stmt_ready(q->st[QS_STATS]);

	if (sqlite3_step(st) != SQLITE_ROW)
		return db_stmt_fail(st, err);
	*length_out = sqlite3_column_int64(st, 0);
	*oldest_age_ms_out = sqlite3_column_type(st, 1) == SQLITE_NULL ? 0 :
	    now_ms - sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	return 0;
}
