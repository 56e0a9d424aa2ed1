/* Relay database schema and its migrations; see relay_db.h. */
#include <stddef.h>

#include "relay_db.h"

/* migrations[v] brings a database at user_version v to v + 1. Never edit a
 * shipped one: add the next. Times are unix milliseconds. */
static const char *const relay_db_migrations[RELAY_DB_SCHEMA_VERSION] = {
	/* 0 -> 1 */
	"CREATE TABLE tokens("
	"  user TEXT NOT NULL,"
	"  token TEXT NOT NULL,"
	/* mailbox GUID the token was set on; '' when unknown (imported) */
	"  mailbox TEXT NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY (user, token)) WITHOUT ROWID;"
	"CREATE INDEX tokens_by_updated ON tokens(updated_at);"
	"CREATE INDEX tokens_by_token ON tokens(token);"
	"CREATE TABLE metadata("
	"  user TEXT NOT NULL,"		/* '' for shared/ keys */
	"  key TEXT NOT NULL,"
	"  value BLOB NOT NULL,"
	"  PRIMARY KEY (user, key)) WITHOUT ROWID;"
	"CREATE TABLE queue("
	"  id INTEGER PRIMARY KEY,"
	"  user TEXT NOT NULL,"
	"  token TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_at INTEGER NOT NULL,"
	"  state INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX queue_by_due ON queue(state, next_at);"
	"CREATE INDEX queue_by_token ON queue(token);",
};

sqlite3 *
relay_db_open(const char *path, enum db_sync sync, char err[ERR_LEN])
{
	sqlite3 *db;

	if ((db = db_open(path, sync, err)) == NULL)
		return NULL;
	if (db_migrate(db, relay_db_migrations, RELAY_DB_SCHEMA_VERSION,
	    err) < 0) {
		db_close(db);
		return NULL;
	}
	return db;
}
