/*
 * proxyd's database (--db, one SQLite file, WAL): the heartbeat schedule
 * (heartbeat_store.c) and the owed pushes (owed_store.c) share one
 * connection on the loop thread, with the schema brought up to date at
 * open, and WAL checkpoints on a thread of their own (db_checkpoint.h),
 * as the relay daemons do.
 */
#ifndef PROXY_DB_H
#define PROXY_DB_H

#include <stdbool.h>

#include "db.h"

#define PROXY_DB_SCHEMA_VERSION	2

struct proxy_db {
	sqlite3			*db;
	struct db_checkpointer	*checkpointer;	/* NULL: none started */
};

/* Opens path (creating it) with the current schema; with checkpoints
 * off the loop when `checkpoints`. 0, or -1 and err. */
int	proxy_db_open(struct proxy_db *, const char *path, enum db_sync,
	    bool checkpoints, char err[ERR_LEN]);
void	proxy_db_close(struct proxy_db *);

#endif
