/* Relay database schema and its migrations; see relay_db.h. */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "relay_db.h"

/* migrations[v] brings a database at user_version v to v + 1. Never edit a
 * shipped one: add the next. Times are unix milliseconds. */
static const char *const relay_db_migrations[RELAY_DB_SCHEMA_VERSION] = {
	/* 0 -> 1 */
	/* Tokens are ~700 bytes (openpgp:...): rows live in a rowid table
	 * and the per-user uniqueness is on a 63-bit digest of the token,
	 * so no index repeats the token itself. */
	"CREATE TABLE tokens("
	"  id INTEGER PRIMARY KEY,"
	"  user TEXT NOT NULL,"
	"  token TEXT NOT NULL,"
	"  token_hash INTEGER NOT NULL,"	/* relay_db_token_hash() */
	/* mailbox GUID the token was set on; '' when unknown (imported) */
	"  mailbox TEXT NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX tokens_by_user ON tokens(user, token_hash);"
	"CREATE INDEX tokens_by_updated ON tokens(updated_at);"
	"CREATE TABLE metadata("
	"  user TEXT NOT NULL,"		/* '' for shared/ keys */
	"  key TEXT NOT NULL,"
	"  value BLOB NOT NULL,"
	"  PRIMARY KEY (user, key)) WITHOUT ROWID;"
	/* One row per (new-mail event, token). A job refers to its token:
	 * an opt-out, an expiry or a 410 that deletes the token deletes
	 * its jobs with it. */
	"CREATE TABLE queue("
	"  id INTEGER PRIMARY KEY,"
	"  token_id INTEGER NOT NULL"
	"    REFERENCES tokens(id) ON DELETE CASCADE,"
	"  user TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_at INTEGER NOT NULL,"
	"  state INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX queue_by_due ON queue(state, next_at);"
	"CREATE INDEX queue_by_token ON queue(token_id);",
};

static EVP_MD *relay_db_sha256;
static pthread_once_t relay_db_sha256_once = PTHREAD_ONCE_INIT;

/* Fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm up again
 * at every digest, a visible share of a token set. Never freed (one per
 * process, like OpenSSL's own tables). */
static void
relay_db_sha256_fetch(void)
{
	relay_db_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int64_t
relay_db_token_hash(const void *token, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	uint64_t h = 0;

	pthread_once(&relay_db_sha256_once, relay_db_sha256_fetch);
	if (relay_db_sha256 == NULL ||
	    EVP_Digest(token, len, md, &mdlen, relay_db_sha256, NULL) != 1)
		abort();	/* SHA-256 cannot fail but on OOM */
	for (int i = 0; i < 8; i++)
		h = h << 8 | md[i];
	return (int64_t)(h >> 1);	/* SQLite integers are signed */
}

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
