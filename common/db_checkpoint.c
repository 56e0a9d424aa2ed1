/* Background WAL checkpoints; see db_checkpoint.h. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "db.h"
#include "db_checkpoint.h"
#include "xmalloc.h"

#define DB_CHECKPOINT_IDLE_MS	1000
/* ~256 MiB of WAL: only a long burst of writes gets there, and the
 * RESTART that rewinds it holds writers for its final copy and fsync
 * (measured: up to a few hundred ms here), so it must stay rare. */
#define DB_CHECKPOINT_RESTART_PAGES	(64 * DB_CHECKPOINT_WAL_PAGES)

struct db_checkpointer {
	sqlite3		*db;		/* the writer's, borrowed */
	sqlite3		*own;		/* the thread's */
	pthread_t	 thread;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	bool		 due;		/* WAL past the threshold */
	bool		 dirty;		/* frames written since last run */
	bool		 stop;
};

/* Called by SQLite on the writer's thread after each commit. */
static int
db_checkpoint_on_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct db_checkpointer *cp = arg;

	(void)db;
	(void)name;
	pthread_mutex_lock(&cp->lock);
	cp->dirty = true;
	if (pages >= DB_CHECKPOINT_WAL_PAGES && !cp->due) {
		cp->due = true;
		pthread_cond_signal(&cp->cond);
	}
	pthread_mutex_unlock(&cp->lock);
	return SQLITE_OK;
}

/* PASSIVE first: copy what no reader still needs, never wait for the
 * writer. Under a steady stream of commits that never catches up (the WAL
 * is only rewound once a checkpoint has copied every frame), so once the
 * WAL is very long, a RESTART copies the frames left and makes the next
 * commit rewind it; the writer waits for it in its busy handler. A
 * failure is retried next round. */
static void
db_checkpoint_run(struct db_checkpointer *cp)
{
	int log_frames = 0, copied = 0;

	sqlite3_wal_checkpoint_v2(cp->own, NULL, SQLITE_CHECKPOINT_PASSIVE,
	    &log_frames, &copied);
	if (log_frames >= DB_CHECKPOINT_RESTART_PAGES)
		sqlite3_wal_checkpoint_v2(cp->own, NULL,
		    SQLITE_CHECKPOINT_RESTART, NULL, NULL);
}

static void *
db_checkpoint_main(void *arg)
{
	struct db_checkpointer *cp = arg;
	struct timespec ts;

	pthread_mutex_lock(&cp->lock);
	while (!cp->stop) {
		if (!cp->due) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += DB_CHECKPOINT_IDLE_MS / 1000;
			pthread_cond_timedwait(&cp->cond, &cp->lock, &ts);
		}
		if (cp->stop)
			break;
		if (!cp->due && !cp->dirty)
			continue;
		cp->due = cp->dirty = false;
		pthread_mutex_unlock(&cp->lock);
		db_checkpoint_run(cp);
		pthread_mutex_lock(&cp->lock);
	}
	pthread_mutex_unlock(&cp->lock);
	return NULL;
}

struct db_checkpointer *
db_checkpointer_start(sqlite3 *db, const char *path, char err[ERR_LEN])
{
	struct db_checkpointer *cp = xcalloc(1, sizeof(*cp));

	cp->db = db;
	if (sqlite3_open_v2(path, &cp->own, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		err_set(err, "checkpoint connection to %s: %s", path,
		    cp->own ? sqlite3_errmsg(cp->own) : "out of memory");
		sqlite3_close(cp->own);
		free(cp);
		return NULL;
	}
	sqlite3_busy_timeout(cp->own, DB_BUSY_TIMEOUT_MS);
	/* A connection reads the file only at its first statement; until
	 * then a checkpoint on it reports "not in WAL mode" and does
	 * nothing. */
	if (db_exec(cp->own, "PRAGMA journal_mode=WAL", err) < 0) {
		sqlite3_close(cp->own);
		free(cp);
		return NULL;
	}
	pthread_mutex_init(&cp->lock, NULL);
	pthread_cond_init(&cp->cond, NULL);
	/* Replaces SQLite's auto-checkpoint, which is itself a WAL hook. */
	sqlite3_wal_hook(db, db_checkpoint_on_commit, cp);
	if (pthread_create(&cp->thread, NULL, db_checkpoint_main, cp) != 0) {
		err_set(err, "cannot start the checkpoint thread");
		sqlite3_wal_hook(db, NULL, NULL);
		sqlite3_wal_autocheckpoint(db, DB_CHECKPOINT_WAL_PAGES);
		sqlite3_close(cp->own);
		pthread_mutex_destroy(&cp->lock);
		pthread_cond_destroy(&cp->cond);
		free(cp);
		return NULL;
	}
	return cp;
}

void
db_checkpointer_stop(struct db_checkpointer *cp)
{
	if (cp == NULL)
		return;
	pthread_mutex_lock(&cp->lock);
	cp->stop = true;
	pthread_cond_signal(&cp->cond);
	pthread_mutex_unlock(&cp->lock);
	pthread_join(cp->thread, NULL);
	sqlite3_wal_hook(cp->db, NULL, NULL);
	sqlite3_wal_autocheckpoint(cp->db, DB_CHECKPOINT_WAL_PAGES);
	sqlite3_close(cp->own);
	pthread_mutex_destroy(&cp->lock);
	pthread_cond_destroy(&cp->cond);
	free(cp);
}
