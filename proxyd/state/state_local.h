/*
 * The embedded state backend (state.h): this process's memory for the
 * debounce windows (debounce.c) and the rate-limit buckets, its SQLite
 * database for the heartbeat schedule (heartbeat_store.c). Every answer is
 * given before the call returns. What proxyd did before the state had an
 * interface, unchanged.
 */
#ifndef STATE_LOCAL_H
#define STATE_LOCAL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "debounce.h"
#include "err.h"
#include "siphash.h"
#include "state.h"

struct event_base;

#define STATE_LOCAL_MAX_BUCKETS	16

struct state_local_config {
	int64_t			 window_ms;	/* the debounce window */
	size_t			 max_windows;	/* debounce ring entries */
	uint8_t			 window_key[DEBOUNCE_KEY_LEN];	/* random */
	/* The heartbeat schedule's database (proxy_db.h's connection,
	 * borrowed); NULL: no schedule (heartbeat calls fail). */
	sqlite3			*db;
	/* Per-client buckets held at most (state.h's client_take), and
	 * their table's hash key (random). */
	size_t			 max_clients;
	uint8_t			 client_key[SIPHASH_KEY_LEN];
	/* Closed windows are dropped by a timer on base; NULL: only when
	 * state_local_expire is called (tests). */
	struct event_base	*base;
};

/* A new embedded backend (state_free frees it), or NULL and err. */
struct state	*state_local_new(const struct state_local_config *,
		    char err[ERR_LEN]);
/* Its heartbeat schedule (NULL without a database), borrowed: the
 * shared backend walks it to seed the shared schedule again. */
struct heartbeat_store *state_local_heartbeats(struct state *);
/* Drop the windows that ended by now_ms (the timer does it otherwise). */
void		 state_local_expire(struct state *, int64_t now_ms);

#endif
