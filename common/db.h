/*
 * Opening SQLite the way every daemon here needs it: WAL (readers never
 * block the writer), a busy timeout (two processes write the relay
 * database), and statements prepared once and reused. Write transactions
 * start with BEGIN IMMEDIATE: a deferred one that reads first and writes
 * later fails at once with SQLITE_BUSY when the other process wrote in
 * between, without calling the busy handler.
 */
#ifndef DB_H
#define DB_H

#include <sqlite3.h>
#include <stdint.h>

#include "err.h"

#define DB_BUSY_TIMEOUT_MS	5000
/* A database file db_open creates: device tokens are secrets, and the
 * daemons that share a file run as one user (a reader in another group
 * would need write access to the -shm file anyway, WAL readers write
 * it). */
#define DB_FILE_MODE		0600

enum db_sync {
	DB_SYNC_NORMAL,		/* WAL: durable across process crashes */
	DB_SYNC_FULL,		/* also across power loss: fsync per commit */
};

/* Opens (creating, DB_FILE_MODE whatever the umask) path with WAL and
 * the busy timeout; NULL and err on failure. Close with db_close(). */
sqlite3	*db_open(const char *path, enum db_sync, char err[ERR_LEN]);
void	 db_close(sqlite3 *);
/* 0 and *sync_out for "normal"/"full"; -1 otherwise. */
int	 db_sync_parse(const char *, enum db_sync *sync_out);

/* Run one or more statements without results. */
int	 db_exec(sqlite3 *, const char *sql, char err[ERR_LEN]);
/* A prepared statement, or NULL and err. Finalize with sqlite3_finalize. */
sqlite3_stmt *db_prepare(sqlite3 *, const char *sql, char err[ERR_LEN]);
/* The statement reset and unbound, ready for new values. */
sqlite3_stmt *db_stmt_ready(sqlite3_stmt *);
/* Steps a statement that returns no rows to its end: 0, or -1 and err.
 * The statement is reset either way. */
int	 db_stmt_run(sqlite3_stmt *, char err[ERR_LEN]);
/* Fills err from the statement's connection, resets it, returns -1. */
int	 db_stmt_fail(sqlite3_stmt *, char err[ERR_LEN]);
/* Runs a statement that yields one row with one integer column, as
 * "SELECT min(x) ..." or "SELECT count(*) ...": 1 and *out, 0 when the
 * value is NULL (min of nothing), -1 and err on a failure. Reset after. */
int	 db_stmt_int64(sqlite3_stmt *, int64_t *out, char err[ERR_LEN]);
/* Brings the schema to `version` by running migrations[v] for every
 * v >= PRAGMA user_version, in one transaction. */
int	 db_migrate(sqlite3 *, const char *const *migrations, int version,
	    char err[ERR_LEN]);

int	 db_begin_immediate(sqlite3 *, char err[ERR_LEN]);
int	 db_commit(sqlite3 *, char err[ERR_LEN]);
/* Never fails from the caller's view: a failed rollback is logged by
 * SQLite's own state and the next BEGIN reports it. */
void	 db_rollback(sqlite3 *);


#endif
