/*
 * What a 200 from proxyd to a /notify promises, and how it is kept
 * (docs/debounce.md): once proxyd answers 200, a push for that device
 * reaches the provider after the request arrived, unless the provider
 * says the token is gone, across provider faults and restarts, for up to
 * owed_deadline_ms; past that the push is dropped (and reported).
 *
 * The state machine over the debounce windows (state.h: this process's
 * or shared) and the owed pushes (owed.h), with no clock and no I/O of
 * its own so that it can be tested with a fake clock:
 *
 *   request, no window open      -> PROMISE_SEND: send now, answer with
 *                                   the provider's verdict; the window
 *                                   opens with the request
 *   request, window open or a
 *   push owed already            -> PROMISE_OWED: answer 200 once the
 *                                   owed push is stored (the journal),
 *                                   on the asking client's share of the
 *                                   provider's rate limit
 *   request, window open and its
 *   push owed by another instance
 *   (a shared state)             -> PROMISE_OWED at once: that
 *                                   instance sends it, or another one if
 *                                   it dies (docs/scaling.md)
 *   leading push ok              -> window stays (owed pushes wait for
 *                                   its end); if the push waited in its
 *                                   provider's queue, the window runs
 *                                   from when it went out
 *   leading push failed          -> window closed (it opens no window);
 *                                   a push owed meanwhile is retried
 *   leading push: token gone     -> window closed, owed push dropped
 *   window end, push owed        -> promise_next hands it out to send
 *   trailing push ok             -> the next window runs from when it
 *                                   went out (not from its answer: a
 *                                   slow answer does not lengthen it);
 *                                   owed again if a request came after
 *                                   it went out
 *   trailing push failed         -> retried with back-off (and at least
 *                                   the provider's Retry-After), until
 *                                   owed_deadline_ms after the request
 *   trailing push: token gone    -> dropped
 *
 * Times are unix milliseconds (owed pushes are stored with them).
 */
#ifndef PROMISE_H
#define PROMISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "owed.h"
#include "provider.h"
#include "state.h"

struct promise_config {
	struct state	*state;		/* the windows (borrowed) */
	int64_t	 window_ms;		/* the debounce window */
	size_t	 owed_max;		/* owed pushes at once */
	size_t	 owed_max_bytes;	/* ... and their bytes in memory */
	uint8_t	 owed_key[SIPHASH_KEY_LEN];	/* kept in the database */
	int64_t	 owed_deadline_ms;	/* give up this long after a request */
	int64_t	 retry_min_ms;		/* first retry after a failure */
	int64_t	 retry_max_ms;		/* back-off cap */
};

enum promise_action {
	PROMISE_SEND,	/* send now, answer with the verdict, then call
			 * promise_leading_done */
	PROMISE_OWED,	/* answer 200 once the journal is stored */
};

enum promise_outcome {
	PROMISE_NONE,		/* nothing was owed */
	PROMISE_LOADED,		/* a stored owed push is owed again */
	PROMISE_DONE,		/* sent: nothing owed any more */
	PROMISE_OWED_AGAIN,	/* sent, and owed again (a request came
				 * while it was in flight) */
	PROMISE_RETRY,		/* failed: sent again at item->due_ms */
	PROMISE_DROPPED_GONE,	/* the provider says the token is gone */
	PROMISE_DROPPED_EXPIRED,	/* failed past the deadline */
	PROMISE_DROPPED_FULL,	/* a stored one that no longer fits */
};

struct promise_stats {
	struct owed_stats	 owed;
	uint64_t		 owed_total;	/* PROMISE_OWED answers */
	uint64_t		 sent_full;	/* PROMISE_SEND: no room to owe */
	uint64_t		 sent;		/* trailing pushes that went out */
	uint64_t		 retries;	/* failed owed pushes rescheduled */
	uint64_t		 expired;	/* dropped past the deadline */
	uint64_t		 gone;		/* dropped: token gone */
};

struct promise	*promise_new(const struct promise_config *, char err[ERR_LEN]);
/* Frees everything; items handed out by promise_next and not yet ended
 * must have been ended first. NULL is a no-op. */
void		 promise_free(struct promise *);

/* A /notify for the decrypted token, as input (what arrived), from client
 * (OWED_CLIENT_LEN bytes, or NULL: none known) at now: the answer comes
 * through fn, before the call returns when the state's answer does (the
 * embedded backend), later otherwise. token, input and client are copied
 * when needed; an owed push keeps the client (owed_item.client). */
typedef void promise_decided_fn(void *arg, enum promise_action);
void		 promise_request(struct promise *, const char *token,
		    size_t len, const char *input, size_t input_len,
		    const uint8_t client[OWED_CLIENT_LEN], int64_t now_ms,
		    promise_decided_fn *, void *arg);
/* The push of a PROMISE_SEND request asked at asked_ms ended with verdict
 * (its sent_ms: when it went out). Says what became of a push owed for
 * the token meanwhile (PROMISE_NONE: none). */
enum promise_outcome promise_leading_done(struct promise *, const char *token,
		    size_t len, const struct provider_result *,
		    int64_t asked_ms, int64_t now_ms);

/* An owed push due at now_ms, marked in flight (its token is borrowed
 * until promise_trailing_done), or NULL. */
struct owed_item *promise_next(struct promise *, int64_t now_ms);
/* Its push ended; for every outcome but PROMISE_OWED_AGAIN and
 * PROMISE_RETRY the item is freed. */
enum promise_outcome promise_trailing_done(struct promise *,
		    struct owed_item *, const struct provider_result *,
		    int64_t now_ms);

/* When the next owed push is due (call promise_next then); -1: none. */
int64_t		 promise_next_deadline(const struct promise *);

/* A stored owed push read back at start-up (its token decrypted again):
 * PROMISE_LOADED, or a PROMISE_DROPPED_* whose row the journal now
 * deletes. */
enum promise_outcome promise_load(struct promise *, const char *token,
		    size_t len, int64_t first_ms, int64_t due_ms,
		    uint32_t attempts, int64_t now_ms);
/* A stored row that cannot be loaded (it no longer decrypts) goes. */
void		 promise_forget(struct promise *,
		    const uint8_t key[OWED_KEY_LEN]);

/* The owed pushes, for the journal (owed_journal_apply / _done). */
struct owed	*promise_owed(struct promise *);
void		 promise_get_stats(const struct promise *,
		    struct promise_stats *);
const char	*promise_outcome_name(enum promise_outcome);

#endif
