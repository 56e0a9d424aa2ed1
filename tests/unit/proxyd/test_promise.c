/*
 * Unit tests of proxyd/promise/promise.c, the state machine behind a 200 (debounce
 * windows and owed pushes), with a fake clock: nothing sleeps, every time
 * is an argument. Each test plays what proxy.c does (a request, a push
 * handed out, the provider's verdict) and checks what is sent when, what
 * is owed, and what the journal would store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "promise.h"
#include "state_local.h"

#define W		10000	/* window, ms */
#define RETRY_MIN	1000
#define RETRY_MAX	8000
#define DEADLINE	60000
#define T0		((int64_t)1700000000000)	/* unix ms */

/* The windows: the embedded state backend, expired by hand. One per
 * promise; freed with it (promise_done). */
static struct state *windows;

static struct promise *
new_promise(size_t owed_max, size_t owed_max_bytes)
{
	struct state_local_config sc;
	struct promise_config c;
	struct promise *p;
	char err[ERR_LEN];

	memset(&sc, 0, sizeof(sc));
	sc.window_ms = W;
	sc.max_windows = 1000;
	for (int i = 0; i < 16; i++)
		sc.window_key[i] = (uint8_t)i;
	if ((windows = state_local_new(&sc, err)) == NULL)
		fail_msg("state_local_new: %s", err);
	memset(&c, 0, sizeof(c));
	c.state = windows;
	c.window_ms = W;
	c.owed_max = owed_max;
	c.owed_max_bytes = owed_max_bytes;
	c.owed_deadline_ms = DEADLINE;
	c.retry_min_ms = RETRY_MIN;
	c.retry_max_ms = RETRY_MAX;
	for (int i = 0; i < 16; i++)
		c.owed_key[i] = (uint8_t)(0x40 + i);
	if ((p = promise_new(&c, err)) == NULL)
		fail_msg("promise_new: %s", err);
	return p;
}

static void
promise_done(struct promise *p)
{
	promise_free(p);
	state_free(windows);
	windows = NULL;
}

static void
decided(void *arg, enum promise_action act)
{
	*(int *)arg = (int)act;
}

static enum promise_action
req(struct promise *p, const char *tok, int64_t now)
{
	char input[64];
	int act = -1;

	snprintf(input, sizeof(input), "openpgp:enc-%s", tok);
	promise_request(p, tok, strlen(tok), input, strlen(input), NULL, now,
	    decided, &act);
	/* the embedded state answers before the call returns */
	assert_true(act >= 0);
	return (enum promise_action)act;
}

static struct provider_result
result(enum provider_verdict v, int64_t retry_after_ms)
{
	struct provider_result r;

	memset(&r, 0, sizeof(r));
	r.verdict = v;
	r.retry_after_ms = retry_after_ms;
	return r;
}

static enum promise_outcome
leading(struct promise *p, const char *tok, enum provider_verdict v,
    int64_t now)
{
	struct provider_result r = result(v, 0);

	return promise_leading_done(p, tok, strlen(tok), &r, now, now);
}

static enum promise_outcome
trailing(struct promise *p, struct owed_item *it, enum provider_verdict v,
    int64_t retry_after, int64_t now)
{
	struct provider_result r = result(v, retry_after);

	return promise_trailing_done(p, it, &r, now);
}

static size_t
owed_count(struct promise *p)
{
	struct promise_stats st;

	promise_get_stats(p, &st);
	return st.owed.items;
}

/* The journal as the store would see it. */
struct journal {
	int	puts, dels;
	bool	put_had_input;
	int	fail_at;	/* 1-based call that fails; 0: none */
	int	calls;
};

static int
j_put(void *arg, const struct owed_item *it)
{
	struct journal *j = arg;

	if (++j->calls == j->fail_at)
		return -1;
	j->puts++;
	j->put_had_input = it->input != NULL;
	return 0;
}

static int
j_del(void *arg, const uint8_t key[OWED_KEY_LEN])
{
	struct journal *j = arg;

	(void)key;
	if (++j->calls == j->fail_at)
		return -1;
	j->dels++;
	return 0;
}

/* Apply and mark done; what it held. */
static struct journal
store(struct promise *p)
{
	struct journal j = { 0 };

	assert_int_equal(owed_journal_apply(promise_owed(p), j_put, j_del,
	    &j), 0);
	owed_journal_done(promise_owed(p));
	return j;
}

/* ---- the normal path -------------------------------------------------- */

/* 50 requests in 1 s: one leading push, one owed push at the window's
 * end, which starts the next window; nothing else. */
static void
test_fifty_requests_two_pushes(void **state)
{
	struct promise *p = new_promise(100, 1 << 20);
	struct owed_item *it;
	struct journal j;

	(void)state;
	assert_int_equal(req(p, "tok", T0), PROMISE_SEND);
	assert_int_equal(leading(p, "tok", VERDICT_OK, T0 + 20), PROMISE_NONE);
	for (int i = 1; i < 50; i++)
		assert_int_equal(req(p, "tok", T0 + i * 20), PROMISE_OWED);
	assert_int_equal(owed_count(p), 1);
	j = store(p);
	assert_int_equal(j.puts, 1);		/* one row for 49 requests */
	assert_true(j.put_had_input);
	assert_true(owed_journal_empty(promise_owed(p)));
	/* due at the end of the window opened by the first request */
	assert_int_equal(promise_next_deadline(p), T0 + W);
	assert_null(promise_next(p, T0 + W - 1));
	assert_non_null(it = promise_next(p, T0 + W));
	assert_string_equal(it->token, "tok");
	assert_null(promise_next(p, T0 + W));	/* in flight, once */
	assert_int_equal(trailing(p, it, VERDICT_OK, 0, T0 + W + 30),
	    PROMISE_DONE);
	assert_int_equal(owed_count(p), 0);
	j = store(p);
	assert_int_equal(j.dels, 1);
	/* the push just sent opened a window: the next request is owed */
	assert_int_equal(req(p, "tok", T0 + W + 40), PROMISE_OWED);
	promise_done(p);
}

/* A single request: sent, nothing owed, nothing stored. */
static void
test_single_request(void **state)
{
	struct promise *p = new_promise(100, 1 << 20);

	(void)state;
	assert_int_equal(req(p, "a", T0), PROMISE_SEND);
	assert_int_equal(leading(p, "a", VERDICT_OK, T0 + 5), PROMISE_NONE);
	assert_true(owed_journal_empty(promise_owed(p)));
	assert_null(promise_next(p, T0 + 10 * W));
	state_local_expire(windows, T0 + W);
	assert_int_equal(promise_next_deadline(p), -1);
	assert_int_equal(req(p, "a", T0 + W), PROMISE_SEND);
	promise_done(p);
}

/* ---- leading pushes that fail ----------------------------------------- */

/* Regression: a failed leading push opens no window. */
static void
test_failed_leading_opens_no_window(void **state)
{
	struct promise *p = new_promise(100, 1 << 20);

	(void)state;
	assert_int_equal(req(p, "a", T0), PROMISE_SEND);
	assert_int_equal(leading(p, "a", VERDICT_TEMPORARY, T0 + 5),
	    PROMISE_NONE);
	assert_int_equal(req(p, "a", T0 + 6), PROMISE_SEND);
	assert_int_equal(leading(p, "a", VERDICT_PAUSE, T0 + 7),
	    PROMISE_NONE);
	assert_int_equal(req(p, "a", T0 + 8), PROMISE_SEND);
	assert_int_equal(leading(p, "a", VERDICT_CONFIG, T0 + 9),
	    PROMISE_NONE);
	assert_int_equal(req(p, "a", T0 + 10), PROMISE_SEND);
	assert_int_equal(leading(p, "a", VERDICT_GONE, T0 + 11), PROMISE_NONE);
	assert_int_equal(req(p, "a", T0 + 12), PROMISE_SEND);
	assert_int_equal(owed_count(p), 0);
	promise_done(p);
}

/* Requests that came while the leading push was in flight got 200: when
 * it fails, their push is owed and retried soon, not at a window end. */
static void
test_owed_while_leading_fails(void **state)
{
	struct promise *p = new_promise(100, 1 << 20);
	struct owed_item *it;
	int64_t due;

	(void)state;
	assert_int_equal(req(p, "a", T0), PROMISE_SEND);
	assert_int_equal(req(p, "a", T0 + 2), PROMISE_OWED);
	assert_int_equal(leading(p, "a", VERDICT_TEMPORARY, T0 + 50),
	    PROMISE_RETRY);
	due = promise_next_deadline(p);
	assert_true(due >= T0 + 50 + RETRY_MIN * 3 / 4);
	assert_true(due <= T0 + 50 + RETRY_MIN * 5 / 4);
	/* no window: a new request is sent at once (the owed push stays) */
	assert_int_equal(req(p, "b", T0 + 60), PROMISE_SEND);
	it = promise_next(p, due);
	assert_non_null(it);
	assert_int_equal(it->attempts, 1);
	assert_int_equal(trailing(p, it, VERDICT_OK, 0, due + 10),
	    PROMISE_DONE);
	assert_int_equal(owed_count(p), 0);
	/* and when the leading push hears the token is gone */
	assert_int_equal(req(p, "c", T0), PROMISE_SEND);
	assert_int_equal(req(p, "c", T0 + 1), PROMISE_OWED);
	assert_int_equal(leading(p, "c", VERDICT_GONE, T0 + 2),
	    PROMISE_DROPPED_GONE);
	assert_int_equal(owed_count(p), 0);
	promise_done(p);
}

/* ---- owed pushes that fail -------------------------------------------- */

static struct owed_item *
owe(struct promise *p, const char *tok, int64_t now)
{
	assert_int_equal(req(p, tok, now), PROMISE_SEND);
	assert_int_equal(leading(p, tok, VERDICT_OK, now), PROMISE_NONE);
	assert_int_equal(req(p, tok, now + 1), PROMISE_OWED);
	/* (the windows' clock never goes back: a window opened "at now"
	 * after a later time was seen ends a little later) */
	return promise_next(p, now + W + 5);
}

/* Back-off doubles from retry_min to retry_max (give or take a quarter),
 * a Retry-After is honoured, and past the deadline the push is dropped
 * with its row. */
static void
test_retry_backoff_and_deadline(void **state)
{
	struct promise *p = new_promise(100, 1 << 20);
	struct promise_stats st;
	struct owed_item *it = owe(p, "a", T0);
	int64_t now = T0 + W, want = RETRY_MIN, due;
	enum promise_outcome o;

	(void)state;
	assert_non_null(it);
	store(p);
	for (int n = 1; n <= 6; n++) {
		assert_int_equal(trailing(p, it, VERDICT_TEMPORARY, 0, now),
		    PROMISE_RETRY);
		assert_int_equal(it->attempts, n);
		due = it->due_ms - now;
		if (due < want * 3 / 4 || due > want * 5 / 4 ||
		    due > RETRY_MAX)
			fail_msg("retry %d after %lld ms, want about %lld", n,
			    (long long)due, (long long)want);
		assert_null(promise_next(p, it->due_ms - 1));
		now = it->due_ms;
		assert_ptr_equal(promise_next(p, now), it);
		want = want * 2 > RETRY_MAX ? RETRY_MAX : want * 2;
	}
	/* the provider's Retry-After wins over a shorter back-off */
	assert_int_equal(trailing(p, it, VERDICT_PAUSE, 30000, now),
	    PROMISE_RETRY);
	assert_true(it->due_ms >= now + 30000);
	/* a stored item's change goes in the journal (an update: no input) */
	{
		struct journal j = store(p);

		assert_int_equal(j.puts, 1);
		assert_false(j.put_had_input);
	}
	now = it->due_ms;
	assert_ptr_equal(promise_next(p, now), it);
	/* past the deadline (60 s after the request at T0 + 1) */
	now = T0 + 2 + DEADLINE;
	o = trailing(p, it, VERDICT_TEMPORARY, 0, now);
	assert_int_equal(o, PROMISE_DROPPED_EXPIRED);
	promise_get_stats(p, &st);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.owed.items, 0);
	assert_int_equal(store(p).dels, 1);
	promise_done(p);
}

/* A push proxyd's own queue did not take (overload) comes back when the
 * queue said, give or take a quarter, however often it happens: no
 * back-off toward --owed-retry-max (before: doubling, 8 s here after four,
 * minutes in production, while every request for the device got 200). */
static void
test_overload_retried_without_backoff(void **state)
{
	struct promise *p = new_promise(100, 1 << 20);
	struct owed_item *it = owe(p, "a", T0);
	int64_t now = T0 + W;

	(void)state;
	assert_non_null(it);
	for (int n = 1; n <= 6; n++) {
		assert_int_equal(trailing(p, it, VERDICT_OVERLOAD, 1500, now),
		    PROMISE_RETRY);
		if (it->due_ms - now < 1500 * 3 / 4 ||
		    it->due_ms - now > 1500 * 5 / 4)
			fail_msg("overload %d: retry after %lld ms, want about "
			    "1500", n, (long long)(it->due_ms - now));
		assert_int_equal(it->attempts, 0);
		now = it->due_ms;
		assert_ptr_equal(promise_next(p, now), it);
	}
	/* and at least --owed-retry-min when the queue said less */
	assert_int_equal(trailing(p, it, VERDICT_OVERLOAD, 0, now),
	    PROMISE_RETRY);
	assert_true(it->due_ms - now >= RETRY_MIN * 3 / 4);
	promise_done(p);
}

/* Every kind of failure is retried; gone is final. */
static void
test_verdicts_at_window_end(void **state)
{
	static const enum provider_verdict retried[] = {
		VERDICT_TEMPORARY, VERDICT_PAUSE, VERDICT_CONFIG,
		VERDICT_RENEW_AUTH,
	};
	struct promise *p = new_promise(100, 1 << 20);
	struct owed_item *it;
	char tok[16];

	(void)state;
	for (size_t i = 0; i < sizeof(retried) / sizeof(*retried); i++) {
		snprintf(tok, sizeof(tok), "t%zu", i);
		it = owe(p, tok, T0);
		assert_int_equal(trailing(p, it, retried[i], 0, T0 + W),
		    PROMISE_RETRY);
	}
	assert_int_equal(owed_count(p), 4);
	it = owe(p, "gone", T0);
	assert_int_equal(trailing(p, it, VERDICT_GONE, 0, T0 + W),
	    PROMISE_DROPPED_GONE);
	assert_int_equal(owed_count(p), 4);
	promise_done(p);
}

/* ---- requests while an owed push is in flight -------------------------- */

/* A request that arrives while the owed push is in flight is not covered
 * by it: owed again, at the end of the window that push opened. */
static void
test_request_while_sending(void **state)
{
	struct promise *p = new_promise(100, 1 << 20);
	struct owed_item *it = owe(p, "a", T0);

	(void)state;
	assert_non_null(it);
	assert_int_equal(req(p, "a", T0 + W + 5), PROMISE_OWED);
	assert_int_equal(trailing(p, it, VERDICT_OK, 0, T0 + W + 100),
	    PROMISE_OWED_AGAIN);
	assert_int_equal(it->first_ms, T0 + W + 5);
	assert_int_equal(it->due_ms, T0 + W + 100 + W);
	assert_int_equal(owed_count(p), 1);
	it = promise_next(p, T0 + 2 * W + 100);
	assert_non_null(it);
	assert_int_equal(trailing(p, it, VERDICT_OK, 0, T0 + 2 * W + 150),
	    PROMISE_DONE);
	promise_done(p);
	/* the same, but the push fails: the retry covers the request */
	p = new_promise(100, 1 << 20);
	it = owe(p, "b", T0);
	assert_int_equal(req(p, "b", T0 + W + 5), PROMISE_OWED);
	assert_int_equal(trailing(p, it, VERDICT_TEMPORARY, 0, T0 + W + 10),
	    PROMISE_RETRY);
	it = promise_next(p, it->due_ms);
	assert_int_equal(trailing(p, it, VERDICT_OK, 0, it->due_ms),
	    PROMISE_DONE);
	assert_int_equal(owed_count(p), 0);
	promise_done(p);
}

/* A window runs from when its push went out, not from its answer: an
 * owed push handed out at the window's end that went out at once but was
 * answered 3 s later owes the request that came meanwhile at the end of
 * the window its sending opened (before: 3 s later, the answer's time
 * plus the window: under load, windows lasted as long as the pushes'
 * queues). */
static void
test_window_runs_from_send(void **state)
{
	struct promise *p = new_promise(100, 1 << 20);
	struct owed_item *it = owe(p, "a", T0);
	struct provider_result r = result(VERDICT_OK, 0);
	int64_t sent = T0 + W + 5;

	(void)state;
	assert_non_null(it);
	assert_int_equal(req(p, "a", sent + 100), PROMISE_OWED);
	r.sent_ms = sent;
	assert_int_equal(promise_trailing_done(p, it, &r, sent + 3000),
	    PROMISE_OWED_AGAIN);
	assert_int_equal(it->due_ms, sent + W);
	/* answered later than a window after it went out: due at once */
	it = promise_next(p, sent + W);
	assert_non_null(it);
	assert_int_equal(req(p, "a", sent + W + 1), PROMISE_OWED);
	r.sent_ms = sent + W;
	assert_int_equal(promise_trailing_done(p, it, &r, sent + 3 * W),
	    PROMISE_OWED_AGAIN);
	assert_int_equal(it->due_ms, sent + 3 * W);
	promise_done(p);
}

/* A request that came after the owed push was handed out but before it
 * went out (it waited for the provider's rate limit) is covered by it:
 * nothing more is owed. One that came after it went out is not. */
static void
test_request_before_send_is_covered(void **state)
{
	struct promise *p = new_promise(100, 1 << 20);
	struct owed_item *it = owe(p, "a", T0);
	struct provider_result r = result(VERDICT_OK, 0);

	(void)state;
	assert_non_null(it);
	assert_int_equal(req(p, "a", T0 + W + 10), PROMISE_OWED);
	r.sent_ms = T0 + W + 500;
	assert_int_equal(promise_trailing_done(p, it, &r, T0 + W + 600),
	    PROMISE_DONE);
	assert_int_equal(owed_count(p), 0);
	promise_done(p);
	p = new_promise(100, 1 << 20);
	it = owe(p, "b", T0);
	assert_non_null(it);
	assert_int_equal(req(p, "b", T0 + W + 501), PROMISE_OWED);
	assert_int_equal(promise_trailing_done(p, it, &r, T0 + W + 600),
	    PROMISE_OWED_AGAIN);
	promise_done(p);
}

/* A leading push that waited 4 s in its provider's queue: the window
 * starts again from when it went out, and the push owed meanwhile waits a
 * whole window after that (not W after the request: two pushes 6 s apart
 * in a 10 s window). */
static void
test_leading_late_restarts_window(void **state)
{
	struct promise *p = new_promise(100, 1 << 20);
	struct provider_result r = result(VERDICT_OK, 0);

	(void)state;
	assert_int_equal(req(p, "a", T0), PROMISE_SEND);
	assert_int_equal(req(p, "a", T0 + 100), PROMISE_OWED);
	assert_int_equal(promise_next_deadline(p), T0 + W);
	r.sent_ms = T0 + 4000;
	assert_int_equal(promise_leading_done(p, "a", 1, &r, T0, T0 + 4050),
	    PROMISE_NONE);
	assert_int_equal(promise_next_deadline(p), T0 + 4000 + W);
	/* the window too: a request after the first one's end is owed */
	assert_int_equal(req(p, "b", T0 + 4060), PROMISE_SEND);
	assert_int_equal(leading(p, "b", VERDICT_OK, T0 + 4060), PROMISE_NONE);
	assert_int_equal(req(p, "a", T0 + W + 100), PROMISE_OWED);
	promise_done(p);
}

/* An owed push keeps the client of the request that made it owed (its
 * share of the provider's rate limit); one without a client has none. */
static void
test_owed_keeps_client(void **state)
{
	static const uint8_t client[OWED_CLIENT_LEN] = { 0, 0, 0, 0, 0, 0, 0,
	    0, 0, 0, 0xff, 0xff, 127, 0, 0, 2 };
	struct promise *p = new_promise(100, 1 << 20);
	struct owed_item *it;
	int act = -1;

	(void)state;
	assert_int_equal(req(p, "a", T0), PROMISE_SEND);
	promise_request(p, "a", 1, "in", 2, client, T0 + 1, decided, &act);
	assert_int_equal(act, PROMISE_OWED);
	it = promise_next(p, T0 + W);
	assert_non_null(it);
	assert_true(it->has_client);
	assert_memory_equal(it->client, client, OWED_CLIENT_LEN);
	assert_int_equal(req(p, "b", T0 + 1), PROMISE_SEND);
	assert_int_equal(req(p, "b", T0 + 2), PROMISE_OWED);
	it = promise_next(p, T0 + W + 1);
	assert_non_null(it);
	assert_false(it->has_client);
	promise_done(p);
}

/* The leading push of another request hears "gone" while the owed push is
 * in flight: the item is dropped once its push ends (no use after free:
 * the sanitizer build runs this). */
static void
test_gone_while_sending(void **state)
{
	struct promise *p = new_promise(100, 1 << 20);
	struct owed_item *it = owe(p, "a", T0);

	(void)state;
	/* the owed push is in flight; its window ended, so a request now is
	 * owed again (covered by a later push) ... */
	assert_int_equal(req(p, "a", T0 + W + 1), PROMISE_OWED);
	assert_int_equal(trailing(p, it, VERDICT_GONE, 0, T0 + W + 2),
	    PROMISE_DROPPED_GONE);
	assert_int_equal(owed_count(p), 0);
	promise_done(p);
}

/* ---- bounds ------------------------------------------------------------ */

/* Owed pushes at their bound (count or bytes): the request is sent at
 * once rather than promised. */
static void
test_full_sends_now(void **state)
{
	struct promise *p = new_promise(1, 1 << 20);
	struct promise_stats st;

	(void)state;
	owe(p, "a", T0);
	assert_int_equal(req(p, "b", T0), PROMISE_SEND);
	assert_int_equal(leading(p, "b", VERDICT_OK, T0), PROMISE_NONE);
	assert_int_equal(req(p, "b", T0 + 1), PROMISE_SEND);	/* full */
	promise_get_stats(p, &st);
	assert_int_equal(st.owed.full, 1);
	promise_done(p);
	/* bytes: room for one small item only (an item is its struct, the
	 * token and the input) */
	p = new_promise(100, sizeof(struct owed_item) + 40);
	assert_int_equal(req(p, "c", T0), PROMISE_SEND);
	assert_int_equal(req(p, "c", T0 + 1), PROMISE_OWED);
	assert_int_equal(req(p, "d", T0), PROMISE_SEND);
	assert_int_equal(req(p, "d", T0 + 1), PROMISE_SEND);
	promise_get_stats(p, &st);
	assert_true(st.owed.bytes <= sizeof(struct owed_item) + 40);
	promise_done(p);
}

/* ---- start-up ----------------------------------------------------------- */

static void
test_load(void **state)
{
	struct promise *p = new_promise(2, 1 << 20);
	struct owed_item *it;
	struct journal j;

	(void)state;
	/* overdue: due now; stored already, so nothing to write */
	assert_int_equal(promise_load(p, "a", 1, T0 - 5000, T0 - 1000, 2, T0),
	    PROMISE_LOADED);
	assert_true(owed_journal_empty(promise_owed(p)));
	it = promise_next(p, T0);
	assert_non_null(it);
	assert_int_equal(it->attempts, 2);
	assert_int_equal(trailing(p, it, VERDICT_OK, 0, T0 + 1), PROMISE_DONE);
	/* too old: dropped, its row deleted */
	assert_int_equal(promise_load(p, "b", 1, T0 - DEADLINE - 1, T0, 0, T0),
	    PROMISE_DROPPED_EXPIRED);
	/* overdue: due at once, even if the device was pushed since the
	 * start (at most one extra push) */
	assert_int_equal(req(p, "c", T0), PROMISE_SEND);
	assert_int_equal(promise_load(p, "c", 1, T0 - 10, T0 - 10, 0, T0 + 1),
	    PROMISE_LOADED);
	assert_int_equal(promise_next_deadline(p), T0 + 1);
	/* the same device owed again meanwhile: one item, the earlier time */
	assert_int_equal(req(p, "c", T0 + 2), PROMISE_OWED);
	assert_int_equal(promise_load(p, "c", 1, T0 - 20, T0, 0, T0 + 3),
	    PROMISE_LOADED);
	assert_int_equal(owed_count(p), 1);
	/* more rows than room */
	assert_int_equal(promise_load(p, "d", 1, T0, T0, 0, T0),
	    PROMISE_LOADED);
	assert_int_equal(promise_load(p, "e", 1, T0, T0, 0, T0),
	    PROMISE_DROPPED_FULL);
	j = store(p);
	assert_int_equal(j.dels, 3);	/* a (sent), b (old), e (no room) */
	promise_done(p);
}

/* A journal that the store could not take stays for the next try. */
static void
test_journal_kept_on_failure(void **state)
{
	struct promise *p = new_promise(100, 1 << 20);
	struct journal j = { .fail_at = 2 };
	struct promise_stats st;

	(void)state;
	owe(p, "a", T0);
	owe(p, "b", T0);
	assert_int_equal(owed_journal_apply(promise_owed(p), j_put, j_del,
	    &j), -1);
	assert_false(owed_journal_empty(promise_owed(p)));
	promise_get_stats(p, &st);
	assert_int_equal(st.owed.journal, 2);
	j = store(p);
	assert_int_equal(j.puts, 2);
	promise_get_stats(p, &st);
	assert_int_equal(st.owed.journal, 0);
	promise_done(p);
}

/* ---- a random walk against the contract ---------------------------------- */

/*
 * Requests for a few tokens at random times, providers failing at random,
 * pushes ending in random order. The contract, checked at the end with
 * the providers healthy: for every request answered PROMISE_OWED at time
 * t, a push for that token succeeded at a time >= t (a PROMISE_SEND is
 * answered with its own push's verdict, so only its success counts).
 */
#define WALK_TOKENS	5
#define WALK_INFLIGHT	64

struct walk_push {
	struct owed_item	*item;		/* NULL: a leading push */
	int			 tok;
};

static void
test_random_walk(void **state)
{
	struct promise *p = new_promise(100, 1 << 20);
	struct walk_push fl[WALK_INFLIGHT];
	int64_t now = T0, last_owed[WALK_TOKENS], last_ok[WALK_TOKENS];
	uint64_t rng = 0x243f6a8885a308d3ULL;
	size_t nfl = 0;
	char tok[8];

	(void)state;
	for (int t = 0; t < WALK_TOKENS; t++)
		last_owed[t] = last_ok[t] = INT64_MIN;
	for (int step = 0; step < 200000; step++) {
		struct owed_item *it;
		unsigned int r;
		int t;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		r = (unsigned int)(rng >> 32);
		t = (int)(r % WALK_TOKENS);
		snprintf(tok, sizeof(tok), "tk%d", t);
		now += (r >> 8) % 97;
		if ((r >> 16) % 4 == 0 && nfl < WALK_INFLIGHT) {
			if (req(p, tok, now) == PROMISE_OWED)
				last_owed[t] = now;
			else
				fl[nfl++] = (struct walk_push){ NULL, t };
		} else if ((r >> 16) % 4 == 1 && nfl > 0) {
			/* a push in flight ends (any of them) */
			size_t k = (r >> 20) % nfl;
			bool ok = (r >> 28) % 3 != 0 || step > 190000;
			struct provider_result res = result(ok ?
			    VERDICT_OK : VERDICT_TEMPORARY, 0);

			snprintf(tok, sizeof(tok), "tk%d", fl[k].tok);
			if (ok)
				last_ok[fl[k].tok] = now;
			if (fl[k].item == NULL)
				promise_leading_done(p, tok, strlen(tok), &res,
				    now, now);
			else
				promise_trailing_done(p, fl[k].item, &res, now);
			fl[k] = fl[--nfl];
		} else if (nfl < WALK_INFLIGHT &&
		    (it = promise_next(p, now)) != NULL) {
			fl[nfl++] = (struct walk_push){ it,
			    it->token[2] - '0' };
		}
		if (step % 1000 == 0) {
			state_local_expire(windows, now);
			store(p);
		}
	}
	/* Drain: providers healthy, time runs on. */
	for (int round = 0; round < 100000 && (nfl > 0 ||
	    owed_count(p) > 0); round++) {
		struct owed_item *it;
		struct provider_result ok = result(VERDICT_OK, 0);

		now += 50;
		while (nfl > 0) {
			nfl--;
			snprintf(tok, sizeof(tok), "tk%d", fl[nfl].tok);
			last_ok[fl[nfl].tok] = now;
			if (fl[nfl].item == NULL)
				promise_leading_done(p, tok, strlen(tok), &ok,
				    now, now);
			else
				promise_trailing_done(p, fl[nfl].item, &ok,
				    now);
		}
		while ((it = promise_next(p, now)) != NULL &&
		    nfl < WALK_INFLIGHT)
			fl[nfl++] = (struct walk_push){ it,
			    it->token[2] - '0' };
	}
	assert_int_equal(owed_count(p), 0);
	for (int t = 0; t < WALK_TOKENS; t++)
		if (last_owed[t] != INT64_MIN && last_ok[t] < last_owed[t])
			fail_msg("token %d: owed at %lld, last push at %lld",
			    t, (long long)last_owed[t], (long long)last_ok[t]);
	promise_done(p);
}

/* ---- a shared state's answers (state_redis.c) ------------------------- */

/* A state that answers what the test scripts and records the owed
 * pushes handed out, as a shared backend would see them. */
struct scripted_state {
	struct state		 base;
	enum state_window	 answer;
	int64_t			 end_ms;
	char			 input[64];	/* the last hit's */
	int			 owed_out;
	char			 out_token[64];
};

static void
scripted_hit(struct state *s, const char *token, size_t len,
    const char *input, size_t input_len, int64_t now_ms, state_window_fn *fn,
    void *arg)
{
	struct scripted_state *ss = (struct scripted_state *)s;

	(void)token;
	(void)len;
	(void)now_ms;
	snprintf(ss->input, sizeof(ss->input), "%.*s", (int)input_len, input);
	fn(arg, ss->answer, ss->end_ms);
}

static void
scripted_owed_out(struct state *s, const char *token, size_t len,
    int64_t now_ms)
{
	struct scripted_state *ss = (struct scripted_state *)s;

	(void)now_ms;
	ss->owed_out++;
	snprintf(ss->out_token, sizeof(ss->out_token), "%.*s", (int)len,
	    token);
}

static void
scripted_noop(struct state *s, const char *token, size_t len, int64_t now)
{
	(void)s;
	(void)token;
	(void)len;
	(void)now;
}

static void
test_shared_state_covered_and_owed_out(void **state)
{
	static const struct state_ops ops = {
		.name = "scripted",
		.window_hit = scripted_hit,
		.window_reopen = scripted_noop,
		.window_owed_out = scripted_owed_out,
	};
	struct scripted_state ss;
	struct promise_config c;
	struct promise *p;
	struct owed_item *it;
	char err[ERR_LEN];

	(void)state;
	memset(&ss, 0, sizeof(ss));
	ss.base.ops = &ops;
	memset(&c, 0, sizeof(c));
	c.state = &ss.base;
	c.window_ms = W;
	c.owed_max = 100;
	c.owed_max_bytes = 1 << 20;
	c.owed_deadline_ms = DEADLINE;
	c.retry_min_ms = RETRY_MIN;
	c.retry_max_ms = RETRY_MAX;
	p = promise_new(&c, err);
	assert_non_null(p);

	/* Another instance owes the push at the window's end: this one
	 * answers 200 and owes nothing. */
	ss.answer = STATE_WINDOW_COVERED;
	ss.end_ms = T0 + W;
	assert_int_equal(req(p, "tokA", T0), PROMISE_OWED);
	assert_string_equal(ss.input, "openpgp:enc-tokA");	/* kept there */
	assert_int_equal(owed_count(p), 0);
	assert_null(promise_next(p, T0 + 2 * W));

	/* This one owes it: handed out at the end, and the shared state
	 * hears of it (the next window starts, the input goes). */
	ss.answer = STATE_WINDOW_OPEN;
	assert_int_equal(req(p, "tokB", T0 + 1), PROMISE_OWED);
	assert_int_equal(owed_count(p), 1);
	assert_null(promise_next(p, T0 + W - 1));
	assert_int_equal(ss.owed_out, 0);
	it = promise_next(p, T0 + W);
	assert_non_null(it);
	assert_int_equal(ss.owed_out, 1);
	assert_string_equal(ss.out_token, "tokB");
	/* A request covered while it is in flight: owed again here. */
	ss.answer = STATE_WINDOW_COVERED;
	assert_int_equal(req(p, "tokB", T0 + W + 1), PROMISE_OWED);
	assert_int_equal(trailing(p, it, VERDICT_OK, 0, T0 + W + 5),
	    PROMISE_OWED_AGAIN);
	promise_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fifty_requests_two_pushes),
		cmocka_unit_test(test_single_request),
		cmocka_unit_test(test_failed_leading_opens_no_window),
		cmocka_unit_test(test_owed_while_leading_fails),
		cmocka_unit_test(test_retry_backoff_and_deadline),
		cmocka_unit_test(test_verdicts_at_window_end),
		cmocka_unit_test(test_overload_retried_without_backoff),
		cmocka_unit_test(test_request_while_sending),
		cmocka_unit_test(test_window_runs_from_send),
		cmocka_unit_test(test_request_before_send_is_covered),
		cmocka_unit_test(test_leading_late_restarts_window),
		cmocka_unit_test(test_owed_keeps_client),
		cmocka_unit_test(test_gone_while_sending),
		cmocka_unit_test(test_full_sends_now),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_journal_kept_on_failure),
		cmocka_unit_test(test_random_walk),
		cmocka_unit_test(test_shared_state_covered_and_owed_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
