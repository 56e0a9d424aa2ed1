/*
 * WAL checkpoints off the event loop. SQLite's automatic checkpoint runs
 * inside the COMMIT that crosses the threshold, on the loop thread: it
 * copies pages into the database file and (with synchronous=NORMAL)
 * fsyncs it, a 10-30 ms stall for every client waiting on the loop. This
 * moves that work to a thread with its own connection, which runs a
 * PASSIVE checkpoint (never blocks writers) when the WAL has grown past a
 * threshold, and at least once a second when there is anything to copy.
 */
#ifndef DB_CHECKPOINT_H
#define DB_CHECKPOINT_H

#include <sqlite3.h>

#include "err.h"

#define DB_CHECKPOINT_WAL_PAGES	1000	/* SQLite's own default */

struct db_checkpointer;

/* Disables auto-checkpoints on db (the loop's connection, borrowed: it
 * must outlive the checkpointer) and starts the thread on path. NULL and
 * err on failure. */
struct db_checkpointer	*db_checkpointer_start(sqlite3 *db, const char *path,
			    char err[ERR_LEN]);
/* Stops and joins the thread; NULL is a no-op. */
void			 db_checkpointer_stop(struct db_checkpointer *);

#endif
