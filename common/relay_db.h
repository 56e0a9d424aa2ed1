/*
 * The relay database, shared by metadata-dictd (writes tokens, metadata,
 * queue rows) and notifierd (drains the queue, deletes dead tokens). Both
 * open it through relay_db_open(), which brings the schema up to date, so
 * either may start first.
 */
#ifndef RELAY_DB_H
#define RELAY_DB_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"

#define RELAY_DB_SCHEMA_VERSION	1

/* Queue row states. */
#define RELAY_QUEUE_WAITING	0
#define RELAY_QUEUE_IN_FLIGHT	1

/* The tokens.token_hash of a token: 63 bits of its SHA-256. */
int64_t	 relay_db_token_hash(const void *token, size_t len);

/* db_open() plus the relay schema; NULL and err on failure. */
sqlite3	*relay_db_open(const char *path, enum db_sync, char err[ERR_LEN]);

#endif
