/* Unit tests of proxyd/push/ratelimit.c: the token bucket's arithmetic, and the
 * gate on a real libevent loop (FIFO order, pauses, the bounded wait and
 * the bounded queue). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "clock.h"
#include "ratelimit.h"

static void
test_bucket_burst_then_rate(void **state)
{
	struct token_bucket tb;
	int i;

	(void)state;
	token_bucket_init(&tb, 10, 5, 1000);
	for (i = 0; i < 5; i++)
		assert_true(token_bucket_take(&tb, 1000));
	assert_false(token_bucket_take(&tb, 1000));
	/* 10/s: a token every 100 ms. */
	assert_in_range(token_bucket_wait_ms(&tb, 1000), 100, 101);
	assert_false(token_bucket_take(&tb, 1099));
	assert_true(token_bucket_take(&tb, 1100));
	assert_false(token_bucket_take(&tb, 1100));
	/* A long idle time refills up to the burst only. */
	for (i = 0; i < 5; i++)
		assert_true(token_bucket_take(&tb, 60000));
	assert_false(token_bucket_take(&tb, 60000));
}

static void
test_bucket_unlimited_and_default_burst(void **state)
{
	struct token_bucket tb;
	int i;

	(void)state;
	token_bucket_init(&tb, 0, 0, 0);
	for (i = 0; i < 100000; i++)
		assert_true(token_bucket_take(&tb, 0));
	assert_int_equal(token_bucket_wait_ms(&tb, 0), 0);
	/* Burst 0 means one second's worth. */
	token_bucket_init(&tb, 50, 0, 0);
	for (i = 0; i < 50; i++)
		assert_true(token_bucket_take(&tb, 0));
	assert_false(token_bucket_take(&tb, 0));
	/* Slower than one per second: burst 1. */
	token_bucket_init(&tb, 0.5, 0, 0);
	assert_true(token_bucket_take(&tb, 0));
	assert_false(token_bucket_take(&tb, 1999));
	assert_true(token_bucket_take(&tb, 2000));
}

/* What the gate handed back, in order. */
struct record {
	int		 order[64];
	bool		 go[64];
	int64_t		 at_ms[64];
	size_t		 n;
	struct event_base *base;
	size_t		 stop_after;
};

static void
on_go(void *item, bool go, void *arg)
{
	struct record *r = arg;

	r->order[r->n] = *(int *)item;
	r->go[r->n] = go;
	r->at_ms[r->n] = clock_mono_ms();
	if (++r->n == r->stop_after)
		event_base_loopbreak(r->base);
}

static void
run_until(struct record *r, size_t n)
{
	struct timeval limit = { 5, 0 };

	r->stop_after = n;
	event_base_loopexit(r->base, &limit);	/* a safety net */
	event_base_dispatch(r->base);
	assert_int_equal(r->n, n);
}

static void
test_gate_fifo_at_rate(void **state)
{
	struct ratelimit_config cfg = { .rate = 100, .burst = 2,
	    .max_queue = 16, .max_wait_ms = 5000 };
	struct record r = { .base = event_base_new() };
	struct ratelimit *rl = ratelimit_new(r.base, &cfg, on_go, &r);
	int ids[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
	int64_t t0 = clock_mono_ms();
	size_t i;

	(void)state;
	assert_int_equal(ratelimit_admit(rl, &ids[0]), 1);
	assert_int_equal(ratelimit_admit(rl, &ids[1]), 1);
	for (i = 2; i < 8; i++)
		assert_int_equal(ratelimit_admit(rl, &ids[i]), 0);
	assert_int_equal(ratelimit_queued(rl), 6);
	run_until(&r, 6);
	for (i = 0; i < 6; i++) {
		assert_int_equal(r.order[i], (int)i + 2);
		assert_true(r.go[i]);
	}
	/* Six tokens at 100/s take at least 50 ms after the burst. */
	assert_true(r.at_ms[5] - t0 >= 50);
	assert_int_equal(ratelimit_delayed_total(rl), 6);
	assert_int_equal(ratelimit_refused_total(rl), 0);
	ratelimit_free(rl, NULL);
	event_base_free(r.base);
}

static void
test_gate_pause_holds_everything(void **state)
{
	struct ratelimit_config cfg = { .rate = 0, .max_queue = 4,
	    .max_wait_ms = 5000 };
	struct record r = { .base = event_base_new() };
	struct ratelimit *rl = ratelimit_new(r.base, &cfg, on_go, &r);
	int a = 1, b = 2;
	int64_t t0 = clock_mono_ms();

	(void)state;
	assert_int_equal(ratelimit_admit(rl, &a), 1);	/* unlimited */
	ratelimit_pause(rl, 100);
	assert_true(ratelimit_paused(rl));
	assert_int_equal(ratelimit_admit(rl, &a), 0);
	assert_int_equal(ratelimit_admit(rl, &b), 0);
	run_until(&r, 2);
	assert_true(r.go[0] && r.go[1]);
	assert_int_equal(r.order[0], 1);
	assert_true(r.at_ms[0] - t0 >= 100);
	assert_false(ratelimit_paused(rl));
	assert_int_equal(ratelimit_admit(rl, &a), 1);
	ratelimit_free(rl, NULL);
	event_base_free(r.base);
}

static void
test_gate_bounded_wait_and_queue(void **state)
{
	struct ratelimit_config cfg = { .rate = 0, .max_queue = 2,
	    .max_wait_ms = 50 };
	struct record r = { .base = event_base_new() };
	struct ratelimit *rl = ratelimit_new(r.base, &cfg, on_go, &r);
	int a = 1, b = 2, c = 3;
	int64_t t0 = clock_mono_ms();

	(void)state;
	ratelimit_pause(rl, 10000);		/* Retry-After far away */
	assert_int_equal(ratelimit_admit(rl, &a), 0);
	assert_int_equal(ratelimit_admit(rl, &b), 0);
	assert_int_equal(ratelimit_admit(rl, &c), -1);	/* full */
	run_until(&r, 2);
	/* Refused after max_wait, not after the pause. */
	assert_false(r.go[0]);
	assert_false(r.go[1]);
	assert_true(r.at_ms[1] - t0 >= 50 && r.at_ms[1] - t0 < 5000);
	assert_int_equal(ratelimit_refused_total(rl), 3);
	assert_int_equal(ratelimit_queued(rl), 0);
	ratelimit_free(rl, NULL);
	event_base_free(r.base);
}

static int cancelled;

static void
on_cancel(void *item, void *arg)
{
	(void)item;
	(void)arg;
	cancelled++;
}

static void
test_free_hands_back_the_queue(void **state)
{
	struct ratelimit_config cfg = { .rate = 1, .burst = 1,
	    .max_queue = 8, .max_wait_ms = 1000 };
	struct record r = { .base = event_base_new() };
	struct ratelimit *rl = ratelimit_new(r.base, &cfg, on_go, &r);
	int a = 1;

	(void)state;
	assert_int_equal(ratelimit_admit(rl, &a), 1);
	assert_int_equal(ratelimit_admit(rl, &a), 0);
	assert_int_equal(ratelimit_admit(rl, &a), 0);
	cancelled = 0;
	ratelimit_free(rl, on_cancel);
	assert_int_equal(cancelled, 2);
	assert_int_equal(r.n, 0);
	event_base_free(r.base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_burst_then_rate),
		cmocka_unit_test(test_bucket_unlimited_and_default_burst),
		cmocka_unit_test(test_gate_fifo_at_rate),
		cmocka_unit_test(test_gate_pause_holds_everything),
		cmocka_unit_test(test_gate_bounded_wait_and_queue),
		cmocka_unit_test(test_free_hands_back_the_queue),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
