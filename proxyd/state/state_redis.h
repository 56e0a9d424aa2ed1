/*
 * The shared state backend (state.h; docs/scaling.md): several proxyd
 * instances behind a load balancer keep their debounce windows, the
 * pushes owed at the windows' ends, the heartbeat schedule and the
 * providers' rate-limit buckets in one Redis, with atomic Lua scripts,
 * so that a device gets one push per window whichever instance its
 * relay reaches, each registration one heartbeat per interval, and each
 * provider the configured rate from all instances together.
 *
 * Keys are named by a keyed digest (SipHash-2-4-128) of the decrypted
 * token, under a key every instance derives alike (proxy.c: from the
 * keyring), so that no key reveals a token and a Redis Cluster could
 * spread them. A window's value holds the token only in the form it
 * arrived (encrypted), and only while a push is owed at its end; a
 * heartbeat registration holds the token as /register received it.
 *
 * It fails open: while Redis is unreachable every call is answered by an
 * embedded backend (state_local.c) inside this one (local debounce,
 * local buckets), heartbeats pause, state_degraded says why, and one
 * line is logged per episode; sharing resumes when Redis answers again,
 * and each instance then seeds the shared schedule from the
 * registrations in its own database (which it always writes too). No
 * call waits for Redis longer than --redis-timeout.
 *
 * The push owed at a window's end is sent by the instance that owed it;
 * every instance refreshes a liveness key, and an owed push whose window
 * ended while its instance's key is gone (or long overdue) is taken over
 * by another: the takeover callback gets the token as it arrived, to
 * owe the push there (proxy_owed.c).
 */
#ifndef STATE_REDIS_H
#define STATE_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "metrics.h"
#include "redis_addr.h"
#include "siphash.h"
#include "state.h"
#include "state_local.h"

struct state_redis_config {
	struct state_local_config local;	/* the fallback, and the
						 * registrations' database */
	struct redis_addr	 addr;		/* --redis, or the password and
						 * db with sentinels */
	struct redis_endpoint	 sentinels[REDIS_ADDR_SENTINELS];
	size_t			 nsentinels;
	const char		*master_name;	/* --redis-master */
	int64_t			 timeout_ms;	/* --redis-timeout */
	size_t			 max_pending;	/* commands in flight */
	uint8_t			 key_key[SIPHASH_KEY_LEN];	/* names keys */
	struct metrics		*metrics;
	/* A push owed by a dead instance, taken over: input is the token
	 * as it arrived (borrowed for the call), first_ms (unix) the
	 * window's end it was owed at. */
	void			(*on_takeover)(void *arg, const char *input,
				    size_t len, int64_t first_ms);
	/* A pause another instance (or this one) shared (state.h's
	 * scope_pause), polled twice a second: scope borrowed, ms left. */
	void			(*on_pause)(void *arg, const char *scope,
				    int64_t ms);
	void			*arg;
};

/* A new shared backend (state_free frees it); it connects in the
 * background and serves from its embedded backend until Redis answers.
 * NULL and err for a configuration error only. */
struct state	*state_redis_new(const struct state_redis_config *,
		    char err[ERR_LEN]);

#endif
