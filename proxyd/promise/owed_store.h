/*
 * The owed pushes in proxyd's database (table `owed`, proxy_db.c): what
 * promise.c's journal says changed goes in with one transaction per
 * group commit, and at start-up the rows are read back in key order to be
 * decrypted and owed again. The tokens are stored as they arrived
 * (encrypted), never in clear. Runs on the loop thread, on proxy_db's
 * connection (borrowed).
 */
#ifndef OWED_STORE_H
#define OWED_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "err.h"
#include "owed.h"

struct owed_store;

/* One stored row (owed_rows_clear frees the input). */
struct owed_row {
	uint8_t		 key[OWED_KEY_LEN];
	char		*input;
	size_t		 input_len;
	int64_t		 first_ms, due_ms;
	uint32_t	 attempts;
};

struct owed_store *owed_store_new(sqlite3 *db, char err[ERR_LEN]);
void	owed_store_free(struct owed_store *);
/* The SipHash key of the rows, made (random) the first time and kept in
 * the database, so a device's row keeps its key across restarts. */
int	owed_store_key(struct owed_store *, uint8_t key[SIPHASH_KEY_LEN],
	    char err[ERR_LEN]);
/* Writes the journal of o in one transaction (BEGIN IMMEDIATE ... COMMIT)
 * and, once committed, marks it done: 0, or -1 and err (nothing written,
 * the journal kept for the next try). */
int	owed_store_commit(struct owed_store *, struct owed *,
	    char err[ERR_LEN]);
/* Up to max rows with a key after `after` (NULL: from the first), in key
 * order: the count, or -1 and err. */
int	owed_store_scan(struct owed_store *, const uint8_t *after, size_t max,
	    struct owed_row *out, char err[ERR_LEN]);
void	owed_rows_clear(struct owed_row *, size_t n);
int64_t	owed_store_count(struct owed_store *, char err[ERR_LEN]);

#endif
