/*
 * The promise behind a 200; see promise.h for the state machine and
 * docs/debounce.md for why it is this one.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "backoff.h"
#include "promise.h"
#include "xmalloc.h"

#define PROMISE_JITTER_PERMILLE	250	/* spread retries after an outage */
/* A leading push that went out this much after its request waited in a
 * queue: its window starts again. Less is the loop's own delay, and
 * shortens the next window by no more than that. */
#define PROMISE_LATE_MS		5

struct promise {
	struct state		*state;		/* the windows */
	struct owed		*owed;
	int64_t			 window_ms;
	int64_t			 deadline_ms, retry_min_ms, retry_max_ms;
	struct promise_stats	 st;
};

struct promise *
promise_new(const struct promise_config *cfg, char err[ERR_LEN])
{
	struct promise *p;
	struct owed_config oc;

	if (cfg->state == NULL || cfg->window_ms < 1 ||
	    cfg->owed_deadline_ms < 1 || cfg->retry_min_ms < 1 ||
	    cfg->retry_max_ms < cfg->retry_min_ms) {
		err_set(err, "owed pushes: no state, or window, deadline and "
		    "retry times out of range");
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	memset(&oc, 0, sizeof(oc));
	oc.max_items = cfg->owed_max;
	oc.max_bytes = cfg->owed_max_bytes;
	memcpy(oc.key, cfg->owed_key, sizeof(oc.key));
	if ((p->owed = owed_new(&oc, err)) == NULL) {
		promise_free(p);
		return NULL;
	}
	p->state = cfg->state;
	p->window_ms = cfg->window_ms;
	p->deadline_ms = cfg->owed_deadline_ms;
	p->retry_min_ms = cfg->retry_min_ms;
	p->retry_max_ms = cfg->retry_max_ms;
	return p;
}

void
promise_free(struct promise *p)
{
	if (p == NULL)
		return;
	owed_free(p->owed);
	free(p);
}

/* ---- failures --------------------------------------------------------- */

static bool
promise_verdict_ok(const struct provider_result *r)
{
	return r->verdict == VERDICT_OK;
}

static bool
promise_verdict_gone(const struct provider_result *r)
{
	return r->verdict == VERDICT_GONE;
}

/* The push owed in it failed at now: reschedule with back-off, spread by
 * its key (a stable, per-device value) so that the devices of an outage
 * do not all come back at once, and never before the provider's
 * Retry-After; or drop it past the deadline. A push proxyd's own queue
 * toward the provider did not take (overload) failed nowhere: it comes
 * back when the queue said, spread the same way, without backing off
 * further (it used to double up to --owed-retry-max, minutes, while every
 * request for the device got a 200 it covered). */
static enum promise_outcome
promise_failed(struct promise *p, struct owed_item *it,
    const struct provider_result *r, int64_t now_ms)
{
	uint32_t spread;
	int64_t delay;

	if (!backoff_within_deadline(it->first_ms, now_ms, p->deadline_ms)) {
		p->st.expired++;
		owed_remove(p->owed, it);
		return PROMISE_DROPPED_EXPIRED;
	}
	memcpy(&spread, it->key, sizeof(spread));
	if (r->verdict == VERDICT_OVERLOAD)
		delay = backoff_delay_ms(r->retry_after_ms > p->retry_min_ms ?
		    r->retry_after_ms : p->retry_min_ms, 1, p->retry_max_ms,
		    PROMISE_JITTER_PERMILLE, spread);
	else
		delay = backoff_delay_ms(p->retry_min_ms, ++it->attempts,
		    p->retry_max_ms, PROMISE_JITTER_PERMILLE, spread);
	if (delay > p->retry_max_ms)	/* the spread stays under the cap */
		delay = p->retry_max_ms;
	if (r->retry_after_ms > delay && r->verdict != VERDICT_OVERLOAD)
		delay = r->retry_after_ms;
	it->due_ms = now_ms + delay;
	owed_changed(p->owed, it);
	p->st.retries++;
	return PROMISE_RETRY;
}

/* ---- requests and their pushes ---------------------------------------- */

/* Owed already: that push covers this request, unless it is in flight
 * (sent before this request arrived): then it is owed again. */
static void
promise_cover(struct promise *p, struct owed_item *it, int64_t now_ms)
{
	if (it->sending && it->again_ms == 0) {
		it->again_ms = now_ms;
		owed_changed(p->owed, it);
	}
	p->st.owed_total++;
}

/* A request waiting for the windows' answer. */
struct promise_ask {
	struct promise		*p;
	uint8_t			 key[OWED_KEY_LEN];
	bool			 has_client;
	uint8_t			 client[OWED_CLIENT_LEN];
	int64_t			 now_ms;
	promise_decided_fn	*fn;
	void			*arg;
	size_t			 len, input_len;
	char			*input;		/* after the token */
	char			 token[];
};

static void
promise_ask_free(struct promise_ask *a)
{
	OPENSSL_cleanse(a->token, a->len + a->input_len);
	free(a);
}

static void
promise_on_window(void *arg, enum state_window w, int64_t end_ms)
{
	struct promise_ask *a = arg;
	struct promise *p = a->p;
	struct owed_item *it;
	enum promise_action act = PROMISE_SEND;

	if (w == STATE_WINDOW_COVERED) {
		/* A shared state: the push at the window's end is owed
		 * already (here, or by the instance that owes it). */
		if ((it = owed_find(p->owed, a->key)) != NULL)
			promise_cover(p, it, a->now_ms);
		else
			p->st.owed_total++;
		act = PROMISE_OWED;
	} else if (w == STATE_WINDOW_OPEN) {
		if ((it = owed_find(p->owed, a->key)) != NULL) {
			/* owed since the question was asked */
			promise_cover(p, it, a->now_ms);
			act = PROMISE_OWED;
		} else if ((it = owed_add(p->owed, a->key, a->token, a->len,
		    a->input, a->input_len, a->now_ms, end_ms)) != NULL) {
			/* inside a window: owe a push at its end, on the
			 * asking client's share of the provider */
			it->has_client = a->has_client;
			memcpy(it->client, a->client, sizeof(it->client));
			p->st.owed_total++;
			act = PROMISE_OWED;
		}
		else	/* full: send now instead, an extra push rather than
			 * a promise that cannot be kept */
			p->st.sent_full++;
	}
	a->fn(a->arg, act);
	promise_ask_free(a);
}

void
promise_request(struct promise *p, const char *token, size_t len,
    const char *input, size_t input_len,
    const uint8_t client[OWED_CLIENT_LEN], int64_t now_ms,
    promise_decided_fn *fn, void *arg)
{
	struct promise_ask *a;
	struct owed_item *it;
	uint8_t key[OWED_KEY_LEN];

	owed_key(p->owed, token, len, key);
	if ((it = owed_find(p->owed, key)) != NULL) {
		promise_cover(p, it, now_ms);
		fn(arg, PROMISE_OWED);
		return;
	}
	/* The windows may answer later (a shared state): keep what the
	 * answer needs. */
	a = xmalloc(sizeof(*a) + len + input_len + 2);
	a->p = p;
	memcpy(a->key, key, sizeof(a->key));
	a->has_client = client != NULL;
	if (client != NULL)
		memcpy(a->client, client, sizeof(a->client));
	a->now_ms = now_ms;
	a->fn = fn;
	a->arg = arg;
	a->len = len;
	a->input_len = input_len;
	memcpy(a->token, token, len);
	a->token[len] = '\0';
	a->input = a->token + len + 1;
	memcpy(a->input, input, input_len);
	a->input[input_len] = '\0';
	state_window_hit(p->state, a->token, len, a->input, input_len, now_ms,
	    promise_on_window, a);
}

/* When a push went out: when it was handed to its transport, else (an
 * answer made up without sending) now. */
static int64_t
promise_sent_at(const struct provider_result *r, int64_t now_ms)
{
	return r->sent_ms > 0 && r->sent_ms < now_ms ? r->sent_ms : now_ms;
}

/* A leading push that waited in its provider's queue went out at sent_ms,
 * later than its request opened the window: the window starts again from
 * there (at its answer, as the windows' clock only goes forward), and a
 * push owed meanwhile waits a whole window after it, so that the device
 * never gets two pushes within one window. */
static void
promise_leading_late(struct promise *p, const char *token, size_t len,
    int64_t sent_ms, int64_t now_ms)
{
	uint8_t key[OWED_KEY_LEN];
	struct owed_item *it;

	state_window_reopen(p->state, token, len, now_ms);
	owed_key(p->owed, token, len, key);
	if ((it = owed_find(p->owed, key)) != NULL && !it->sending &&
	    it->due_ms < sent_ms + p->window_ms) {
		it->due_ms = sent_ms + p->window_ms;
		owed_changed(p->owed, it);
	}
}

enum promise_outcome
promise_leading_done(struct promise *p, const char *token, size_t len,
    const struct provider_result *r, int64_t asked_ms, int64_t now_ms)
{
	uint8_t key[OWED_KEY_LEN];
	struct owed_item *it;
	int64_t sent = promise_sent_at(r, now_ms);

	if (promise_verdict_ok(r)) {
		if (sent - asked_ms > PROMISE_LATE_MS)
			promise_leading_late(p, token, len, sent, now_ms);
		return PROMISE_NONE;	/* the window stands */
	}
	/* Nothing was sent: no window. */
	state_window_cancel(p->state, token, len);
	owed_key(p->owed, token, len, key);
	if ((it = owed_find(p->owed, key)) == NULL || it->sending)
		return PROMISE_NONE;	/* (a trailing push decides) */
	if (promise_verdict_gone(r)) {
		p->st.gone++;
		owed_remove(p->owed, it);
		return PROMISE_DROPPED_GONE;
	}
	return promise_failed(p, it, r, now_ms);
}

struct owed_item *
promise_next(struct promise *p, int64_t now_ms)
{
	struct owed_item *it = owed_first_due(p->owed);

	if (it == NULL || it->due_ms > now_ms)
		return NULL;
	owed_set_sending(p->owed, it, true);
	state_window_owed_out(p->state, it->token, it->token_len, now_ms);
	return it;
}

enum promise_outcome
promise_trailing_done(struct promise *p, struct owed_item *it,
    const struct provider_result *r, int64_t now_ms)
{
	int64_t sent;

	owed_set_sending(p->owed, it, false);
	if (it->gone) {
		/* Dropped meanwhile (a leading push heard the token is
		 * gone): nothing more to do. */
		owed_release(p->owed, it);
		return PROMISE_DROPPED_GONE;
	}
	if (promise_verdict_gone(r)) {
		p->st.gone++;
		owed_remove(p->owed, it);
		return PROMISE_DROPPED_GONE;
	}
	if (!promise_verdict_ok(r)) {
		if (it->again_ms != 0) {
			/* This request is covered by the retry too. */
			it->again_ms = 0;
		}
		return promise_failed(p, it, r, now_ms);
	}
	p->st.sent++;
	/* Sent: the next window runs from when it went out (the windows'
	 * own, from its answer: their clock only goes forward). A request
	 * that came after it was handed out but before it went out (it
	 * waited for the provider's rate limit) is covered by it. */
	sent = promise_sent_at(r, now_ms);
	state_window_reopen(p->state, it->token, it->token_len, now_ms);
	if (it->again_ms != 0 && r->sent_ms > 0 && it->again_ms < sent)
		it->again_ms = 0;
	if (it->again_ms == 0) {
		owed_remove(p->owed, it);
		return PROMISE_DONE;
	}
	/* A request came while it was in flight: owed again, at the end of
	 * the window this push opened (at once if its answer took longer:
	 * a slow answer does not lengthen the window). */
	it->first_ms = it->again_ms;
	it->again_ms = 0;
	it->attempts = 0;
	it->due_ms = sent + p->window_ms > now_ms ? sent + p->window_ms :
	    now_ms;
	owed_changed(p->owed, it);
	return PROMISE_OWED_AGAIN;
}

/* ---- time, start-up, stats -------------------------------------------- */

int64_t
promise_next_deadline(const struct promise *p)
{
	const struct owed_item *it = owed_first_due(p->owed);

	return it != NULL ? it->due_ms : -1;
}

enum promise_outcome
promise_load(struct promise *p, const char *token, size_t len,
    int64_t first_ms, int64_t due_ms, uint32_t attempts, int64_t now_ms)
{
	uint8_t key[OWED_KEY_LEN];
	struct owed_item *it;

	owed_key(p->owed, token, len, key);
	if ((it = owed_find(p->owed, key)) != NULL) {
		/* Owed again since the start: one item covers both. */
		if (first_ms < it->first_ms) {
			it->first_ms = first_ms;
			owed_changed(p->owed, it);
		}
		return PROMISE_LOADED;
	}
	if (!backoff_within_deadline(first_ms, now_ms, p->deadline_ms)) {
		p->st.expired++;
		owed_forget(p->owed, key);
		return PROMISE_DROPPED_EXPIRED;
	}
	/* Overdue ones go at once (at most one extra push for a device
	 * pushed again since the start). */
	if (due_ms < now_ms)
		due_ms = now_ms;
	if ((it = owed_add(p->owed, key, token, len, NULL, 0, first_ms,
	    due_ms)) == NULL) {
		owed_forget(p->owed, key);
		return PROMISE_DROPPED_FULL;
	}
	it->attempts = attempts;
	return PROMISE_LOADED;
}

void
promise_forget(struct promise *p, const uint8_t key[OWED_KEY_LEN])
{
	owed_forget(p->owed, key);
}

struct owed *
promise_owed(struct promise *p)
{
	return p->owed;
}

void
promise_get_stats(const struct promise *p, struct promise_stats *out)
{
	*out = p->st;
	owed_get_stats(p->owed, &out->owed);
}

const char *
promise_outcome_name(enum promise_outcome o)
{
	static const char *const names[] = {
		[PROMISE_NONE] = "none",
		[PROMISE_LOADED] = "loaded",
		[PROMISE_DONE] = "done",
		[PROMISE_OWED_AGAIN] = "owed_again",
		[PROMISE_RETRY] = "retry",
		[PROMISE_DROPPED_GONE] = "gone",
		[PROMISE_DROPPED_EXPIRED] = "expired",
		[PROMISE_DROPPED_FULL] = "full",
	};

	return (size_t)o < sizeof(names) / sizeof(*names) ? names[o] : "?";
}
