/* proxyd's database; see proxy_db.h. */
#include <stdbool.h>
#include <string.h>

#include "db_checkpoint.h"
#include "proxy_db.h"

static const char *const proxy_db_migrations[PROXY_DB_SCHEMA_VERSION] = {
	/* 0 -> 1: the heartbeat schedule (decrypted APNs tokens). */
	"CREATE TABLE heartbeat("
	"  token TEXT PRIMARY KEY,"
	"  next_at INTEGER NOT NULL);"	/* unix ms */
	"CREATE INDEX heartbeat_by_due ON heartbeat(next_at);",
	/* 1 -> 2: pushes owed for a 200 already given (docs/debounce.md).
	 * key: SipHash-2-4-128 of the decrypted token under the "owed" key
	 * of proxy_keys; input: the token as it arrived (encrypted, for a
	 * relay that encrypts); times in unix ms. */
	"CREATE TABLE owed("
	"  key BLOB PRIMARY KEY,"
	"  input TEXT NOT NULL,"
	"  first_at INTEGER NOT NULL,"
	"  due_at INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE proxy_keys("
	"  name TEXT PRIMARY KEY,"
	"  key BLOB NOT NULL) WITHOUT ROWID;",
};

int
proxy_db_open(struct proxy_db *pdb, const char *path, enum db_sync sync,
    bool checkpoints, char err[ERR_LEN])
{
	memset(pdb, 0, sizeof(*pdb));
	if ((pdb->db = db_open(path, sync, err)) == NULL)
		return -1;
	if (db_migrate(pdb->db, proxy_db_migrations, PROXY_DB_SCHEMA_VERSION,
	    err) < 0)
		goto fail;
	if (checkpoints && (pdb->checkpointer = db_checkpointer_start(pdb->db,
	    path, err)) == NULL)
		goto fail;
	return 0;
fail:
	proxy_db_close(pdb);
	return -1;
}

void
proxy_db_close(struct proxy_db *pdb)
{
	db_checkpointer_stop(pdb->checkpointer);
	db_close(pdb->db);
	memset(pdb, 0, sizeof(*pdb));
}
