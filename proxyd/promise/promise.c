/*
 * The promise behind a 200; see promise.h for the state machine and
 * docs/debounce.md for why it is this one.
 */
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "promise.h"
#include "xmalloc.h"

#define PROMISE_JITTER_PERMILLE	250	/* spread retries after an outage */

struct promise {
	struct debounce		*windows;
	struct owed		*owed;
	int64_t			 window_ms;
	int64_t			 deadline_ms, retry_min_ms, retry_max_ms;
	struct promise_stats	 st;
};

struct promise *
promise_new(const struct promise_config *cfg, char err[ERR_LEN])
{
	struct promise *p = xcalloc(1, sizeof(*p));
	struct debounce_config dc;
	struct owed_config oc;

	if (cfg->owed_deadline_ms < 1 || cfg->retry_min_ms < 1 ||
	    cfg->retry_max_ms < cfg->retry_min_ms) {
		err_set(err, "owed pushes: deadline and retry times out of "
		    "range");
		free(p);
		return NULL;
	}
	memset(&dc, 0, sizeof(dc));
	dc.window_ms = cfg->window_ms;
	dc.max_entries = cfg->max_windows;
	memcpy(dc.key, cfg->window_key, sizeof(dc.key));
	memset(&oc, 0, sizeof(oc));
	oc.max_items = cfg->owed_max;
	oc.max_bytes = cfg->owed_max_bytes;
	memcpy(oc.key, cfg->owed_key, sizeof(oc.key));
	if ((p->windows = debounce_new(&dc, err)) == NULL ||
	    (p->owed = owed_new(&oc, err)) == NULL) {
		promise_free(p);
		return NULL;
	}
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
	debounce_free(p->windows);
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
 * Retry-After; or drop it past the deadline. */
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
	it->attempts++;
	memcpy(&spread, it->key, sizeof(spread));
	delay = backoff_delay_ms(p->retry_min_ms, it->attempts,
	    p->retry_max_ms, PROMISE_JITTER_PERMILLE, spread);
	if (delay > p->retry_max_ms)	/* the spread stays under the cap */
		delay = p->retry_max_ms;
	if (r->retry_after_ms > delay)
		delay = r->retry_after_ms;
	it->due_ms = now_ms + delay;
	owed_changed(p->owed, it);
	p->st.retries++;
	return PROMISE_RETRY;
}

/* ---- requests and their pushes ---------------------------------------- */

enum promise_action
promise_request(struct promise *p, const char *token, size_t len,
    const char *input, size_t input_len, int64_t now_ms)
{
	uint8_t key[OWED_KEY_LEN];
	struct owed_item *it;
	int64_t end;

	owed_key(p->owed, token, len, key);
	if ((it = owed_find(p->owed, key)) != NULL) {
		/* Owed already: that push covers this request, unless it is
		 * in flight (sent before this request arrived). */
		if (it->sending && it->again_ms == 0) {
			it->again_ms = now_ms;
			owed_changed(p->owed, it);
		}
		p->st.owed_total++;
		return PROMISE_OWED;
	}
	if (debounce_hit(p->windows, token, len, now_ms, &end) ==
	    DEBOUNCE_SEND_NOW)
		return PROMISE_SEND;
	/* Inside a window: owe a push at its end. Full: send now instead,
	 * an extra push rather than a promise that cannot be kept. */
	if (owed_add(p->owed, key, token, len, input, input_len, now_ms,
	    end) == NULL)
		return PROMISE_SEND;
	p->st.owed_total++;
	return PROMISE_OWED;
}

enum promise_outcome
promise_leading_done(struct promise *p, const char *token, size_t len,
    const struct provider_result *r, int64_t now_ms)
{
	uint8_t key[OWED_KEY_LEN];
	struct owed_item *it;

	if (promise_verdict_ok(r))
		return PROMISE_NONE;	/* the window stands */
	/* Nothing was sent: no window. */
	debounce_cancel(p->windows, token, len);
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
	return it;
}

enum promise_outcome
promise_trailing_done(struct promise *p, struct owed_item *it,
    const struct provider_result *r, int64_t now_ms)
{
	int64_t end;

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
	/* Sent: the next window starts now. */
	end = debounce_reopen(p->windows, it->token, it->token_len, now_ms);
	if (it->again_ms == 0) {
		owed_remove(p->owed, it);
		return PROMISE_DONE;
	}
	/* A request came while it was in flight: owed again, at the end of
	 * the window this push opened. */
	it->first_ms = it->again_ms;
	it->again_ms = 0;
	it->attempts = 0;
	it->due_ms = end >= 0 ? end : now_ms + p->window_ms;
	owed_changed(p->owed, it);
	return PROMISE_OWED_AGAIN;
}

/* ---- time, start-up, stats -------------------------------------------- */

int64_t
promise_next_deadline(const struct promise *p)
{
	const struct owed_item *it = owed_first_due(p->owed);
	int64_t w = debounce_next_deadline(p->windows);

	if (it == NULL)
		return w;
	return w < 0 || it->due_ms < w ? it->due_ms : w;
}

void
promise_expire(struct promise *p, int64_t now_ms)
{
	debounce_expire(p->windows, now_ms);
}

enum promise_outcome
promise_load(struct promise *p, const char *token, size_t len,
    int64_t first_ms, int64_t due_ms, uint32_t attempts, int64_t now_ms)
{
	uint8_t key[OWED_KEY_LEN];
	struct owed_item *it;
	int64_t end;

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
	/* Not before a window that opened since the start ends. */
	end = debounce_end(p->windows, token, len, now_ms);
	if (due_ms < end)
		due_ms = end;
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
	debounce_get_stats(p->windows, &out->windows);
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
