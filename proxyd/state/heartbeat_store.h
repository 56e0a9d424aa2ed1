/*
 * The heartbeat schedule of proxyd: iOS devices that POSTed /register get
 * a silent push every --interval (plus jitter), so that the app can fetch
 * mail even when a visible push was missed. Stored in SQLite so that
 * registrations survive restarts; a due-time index makes "what is due
 * now" a range scan, never a scan of every token.
 *
 * Tokens here are decrypted APNs tokens (secrets: never logged). Every
 * function runs on proxyd's loop thread.
 */
#ifndef HEARTBEAT_STORE_H
#define HEARTBEAT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "err.h"

struct heartbeat_store;

/* One due registration (caller frees token with heartbeat_due_clear). */
struct heartbeat_due {
	char	*token;
	int64_t	 next_at;	/* unix ms */
};

/* Statements on db (proxy_db.h's connection, borrowed: it must outlive
 * the store); NULL and err on failure. */
struct heartbeat_store *heartbeat_store_new(sqlite3 *db, char err[ERR_LEN]);
void	heartbeat_store_free(struct heartbeat_store *);
/* Insert or move a registration; answered only once committed. */
int	heartbeat_store_put(struct heartbeat_store *, const char *token,
	    int64_t next_at_ms, char err[ERR_LEN]);
/* 1 removed, 0 absent, -1 error. */
int	heartbeat_store_remove(struct heartbeat_store *, const char *token,
	    char err[ERR_LEN]);
/* Up to max registrations due at now_ms, earliest first; returns the
 * count or -1. */
int	heartbeat_store_due(struct heartbeat_store *, int64_t now_ms,
	    size_t max, struct heartbeat_due *out, char err[ERR_LEN]);
void	heartbeat_due_clear(struct heartbeat_due *, size_t n);
/* Up to max registrations with a token after `after` (NULL: from the
 * first), in token order: the count or -1. For a walk over all of them
 * (the shared schedule seeded again, state_redis.c). */
int	heartbeat_store_scan(struct heartbeat_store *, const char *after,
	    size_t max, struct heartbeat_due *out, char err[ERR_LEN]);
/* Earliest next_at: 1 and *at_out, 0 when empty, -1 error. */
int	heartbeat_store_next(struct heartbeat_store *, int64_t *at_out,
	    char err[ERR_LEN]);
int64_t	heartbeat_store_count(struct heartbeat_store *, char err[ERR_LEN]);
/* 1 the token is registered, 0 not, -1 error (an index lookup). */
int	heartbeat_store_has(struct heartbeat_store *, const char *token,
	    char err[ERR_LEN]);

/* When a registration is next due: interval after now, spread by up to
 * +/- jitter_ms with rnd (uniform 32-bit). */
int64_t	heartbeat_next_at(int64_t now_ms, int64_t interval_ms,
	    int64_t jitter_ms, uint32_t rnd);

#endif
