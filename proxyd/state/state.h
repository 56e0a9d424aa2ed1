/*
 * What a second proxyd instance would have to share (docs/architecture.md
 * "Proxy state"), behind one small interface: the debounce windows, the
 * heartbeat schedule, the providers' rate-limit buckets and the
 * per-client buckets (registrations per address). A backend is
 * chosen once at start, like OpenSMTPD's queue backends; the embedded
 * default (state_local.c) keeps the windows in this process's memory and
 * the schedule in its SQLite database, exactly as proxyd always did. The
 * request path, the promise (promise/) and the push engine only ever call
 * through these operations, so a shared backend (Redis, for several
 * instances behind a load balancer) is one more file.
 *
 * Calls that have an answer give it through a callback on the loop
 * thread: the embedded backend calls it before the call returns, a
 * backend over the network later. Callers handle both, and never assume
 * the answer has come when the call returns. Calls without an answer are
 * fire and forget: nothing on the request path waits for them, and a
 * backend that cannot apply one counts it (state_stats) and goes on.
 *
 * Tokens are the decrypted device tokens (secrets): a backend keeps a
 * keyed digest where it can (the windows) and never logs one.
 */
#ifndef STATE_H
#define STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct state;

/* A debounce window's answer to a request for a token. */
enum state_window {
	STATE_WINDOW_OPENED,	/* none was open: this request's push goes
				 * now, a window ending at end_ms opened */
	STATE_WINDOW_OPEN,	/* one is open until end_ms: coalesce */
	STATE_WINDOW_NONE,	/* none was open and none could be (full):
				 * send now, nothing is debounced */
	STATE_WINDOW_COVERED,	/* one is open and a push at its end is
				 * owed already, by this instance or
				 * another (a shared state): nothing more
				 * to owe */
};
typedef void state_window_fn(void *arg, enum state_window, int64_t end_ms);

/* A write the caller waits for: STATE_STORED, STATE_FULL (refused: a
 * bound the caller gave would be passed), or STATE_FAILED with err. */
enum state_store {
	STATE_STORED,
	STATE_FULL,
	STATE_FAILED,
};
typedef void state_stored_fn(void *arg, enum state_store, const char *err);

/* Heartbeat registrations claimed as due: each was moved to its next time
 * before it was handed out, so no other claim (here or in another
 * instance) gets it again now. next_at_ms: when the next one is due (-1:
 * none is scheduled; 0: unknown, ask again soon). err NULL, or why
 * nothing was claimed. The tokens are borrowed for the call. */
typedef void state_due_fn(void *arg, const char *const *tokens, size_t n,
    int64_t next_at_ms, const char *err);

/* A rate-limit bucket's answer: 0 a push may go now (one token taken),
 * or the milliseconds until one may (nothing taken). */
typedef void state_bucket_fn(void *arg, int64_t wait_ms);

struct state_stats {
	size_t		 windows;	/* open debounce windows (this view) */
	size_t		 window_bytes;	/* their memory, embedded backend */
	int64_t		 heartbeat_tokens;	/* -1: unknown */
	uint64_t	 failures;	/* fire-and-forget calls not applied */
	size_t		 clients;	/* per-client buckets held */
	uint64_t	 clients_forgotten;	/* to make room for others */
};

struct state_ops {
	const char *name;

	/* ---- debounce windows (keyed by the decrypted token) ---- */
	/* A request for token at now_ms: answers with the window. input
	 * is the token as it arrived (encrypted): a shared state keeps it
	 * with a window that answers STATE_WINDOW_OPEN, so that another
	 * instance can send the push owed at its end if this one dies. */
	void	(*window_hit)(struct state *, const char *token, size_t len,
		    const char *input, size_t input_len, int64_t now_ms,
		    state_window_fn *, void *arg);
	/* Close the token's window: its leading push failed, so nothing
	 * went out in it. */
	void	(*window_cancel)(struct state *, const char *token,
		    size_t len);
	/* A push for the token just went out (an owed one): its window
	 * starts anew at now_ms. */
	void	(*window_reopen)(struct state *, const char *token,
		    size_t len, int64_t now_ms);
	/* The push owed at a window's end is handed out to be sent at
	 * now_ms: a shared state forgets the input it kept and starts the
	 * next window (later requests owe a push again). Optional (NULL:
	 * the owed pushes are this process's alone). */
	void	(*window_owed_out)(struct state *, const char *token,
		    size_t len, int64_t now_ms);

	/* ---- the heartbeat schedule (decrypted APNs tokens) ---- */
	/* Insert or move a registration; answered once stored. A token
	 * not yet in the schedule is refused with STATE_FULL when it holds
	 * max_tokens already (0: no bound); moving one never is. */
	void	(*heartbeat_put)(struct state *, const char *token,
		    int64_t next_at_ms, int64_t max_tokens, state_stored_fn *,
		    void *arg);
	void	(*heartbeat_remove)(struct state *, const char *token);
	/* Up to max registrations due at now_ms, each moved to the time
	 * next_at(next_arg) gives before it is handed out. */
	void	(*heartbeat_claim)(struct state *, int64_t now_ms, size_t max,
		    int64_t (*next_at)(void *next_arg), void *next_arg,
		    state_due_fn *, void *arg);

	/* ---- rate-limit buckets (one per provider) ---- */
	/* Take one token from bucket name (rate per second, bursts up to
	 * burst; rate 0: unlimited) unless it is paused. now_ms is the
	 * caller's monotonic clock; a shared backend keeps time on its own
	 * and answers only in durations. */
	void	(*bucket_take)(struct state *, const char *name, double rate,
		    double burst, int64_t now_ms, state_bucket_fn *, void *arg);
	/* The provider asked to wait ms from now_ms (Retry-After): takes
	 * answer with the rest of the pause until it ends. */
	void	(*bucket_pause)(struct state *, const char *name, int64_t ms,
		    int64_t now_ms);

	/* A provider's pause narrower than itself (scope: "webpush:" and
	 * the origin) for ms: a shared state tells the other instances,
	 * which apply it through their on_pause callback (state_redis.h).
	 * Optional (NULL: this process's alone). */
	void	(*scope_pause)(struct state *, const char *scope, int64_t ms);

	/* ---- per-client buckets (what one client address may do) ---- */
	/* Take one token from the bucket of client key (len bytes, at most
	 * 16: an address), refilled at rate per second up to burst; a
	 * client not seen before starts full. Answers like bucket_take. A
	 * backend holds a bounded number of clients and forgets the one
	 * seen least recently to make room (state_stats). */
	void	(*client_take)(struct state *, const void *key, size_t len,
		    double rate, double burst, int64_t now_ms,
		    state_bucket_fn *, void *arg);

	void	(*get_stats)(struct state *, struct state_stats *);
	/* Answers still due are given first, as the answer that lets the
	 * caller go on alone (a window STATE_WINDOW_NONE, a bucket 0, a
	 * store or claim with err), so that no caller's context is left
	 * waiting; NULL-safe through state_free. */
	void	(*free)(struct state *);

	/* Optional (NULL: never): why the backend cannot do its whole job
	 * now while the instance goes on serving (a shared backend that
	 * lost its server answers from what it has), as a short string,
	 * static or the backend's own until its next call; NULL when all
	 * is well. GET /health asks it every few seconds per load
	 * balancer, so it does no I/O: it tells what the backend already
	 * knows. */
	const char *(*degraded)(struct state *);
	/* Optional: stop using any server before the caller tears itself
	 * down: every answer still due is given now, later calls are
	 * answered before they return. NULL: nothing to do. */
	void	(*close)(struct state *);
};

/* Every backend's handle starts with this. */
struct state {
	const struct state_ops	*ops;
};

static inline void
state_window_hit(struct state *s, const char *token, size_t len,
    const char *input, size_t input_len, int64_t now_ms,
    state_window_fn *fn, void *arg)
{
	s->ops->window_hit(s, token, len, input, input_len, now_ms, fn, arg);
}

static inline void
state_window_cancel(struct state *s, const char *token, size_t len)
{
	s->ops->window_cancel(s, token, len);
}

static inline void
state_window_reopen(struct state *s, const char *token, size_t len,
    int64_t now_ms)
{
	s->ops->window_reopen(s, token, len, now_ms);
}

static inline void
state_window_owed_out(struct state *s, const char *token, size_t len,
    int64_t now_ms)
{
	if (s->ops->window_owed_out != NULL)
		s->ops->window_owed_out(s, token, len, now_ms);
}

static inline void
state_heartbeat_put(struct state *s, const char *token, int64_t next_at_ms,
    int64_t max_tokens, state_stored_fn *fn, void *arg)
{
	s->ops->heartbeat_put(s, token, next_at_ms, max_tokens, fn, arg);
}

static inline void
state_heartbeat_remove(struct state *s, const char *token)
{
	s->ops->heartbeat_remove(s, token);
}

static inline void
state_heartbeat_claim(struct state *s, int64_t now_ms, size_t max,
    int64_t (*next_at)(void *), void *next_arg, state_due_fn *fn, void *arg)
{
	s->ops->heartbeat_claim(s, now_ms, max, next_at, next_arg, fn, arg);
}

static inline void
state_bucket_take(struct state *s, const char *name, double rate,
    double burst, int64_t now_ms, state_bucket_fn *fn, void *arg)
{
	s->ops->bucket_take(s, name, rate, burst, now_ms, fn, arg);
}

static inline void
state_bucket_pause(struct state *s, const char *name, int64_t ms,
    int64_t now_ms)
{
	s->ops->bucket_pause(s, name, ms, now_ms);
}

static inline void
state_scope_pause(struct state *s, const char *scope, int64_t ms)
{
	if (s->ops->scope_pause != NULL)
		s->ops->scope_pause(s, scope, ms);
}

static inline void
state_client_take(struct state *s, const void *key, size_t len, double rate,
    double burst, int64_t now_ms, state_bucket_fn *fn, void *arg)
{
	s->ops->client_take(s, key, len, rate, burst, now_ms, fn, arg);
}

static inline void
state_get_stats(struct state *s, struct state_stats *out)
{
	s->ops->get_stats(s, out);
}

static inline const char *
state_degraded(struct state *s)
{
	return s->ops->degraded != NULL ? s->ops->degraded(s) : NULL;
}

static inline void
state_close(struct state *s)
{
	if (s != NULL && s->ops->close != NULL)
		s->ops->close(s);
}

static inline void
state_free(struct state *s)
{
	if (s != NULL)
		s->ops->free(s);
}

#endif
