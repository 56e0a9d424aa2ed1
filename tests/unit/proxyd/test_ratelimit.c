/* Unit tests of proxyd/push/ratelimit.c: the gate on a real libevent loop
 * (FIFO order, pauses, the bounded wait and the bounded queue) over the
 * embedded state's buckets, and over a state that answers later, as a
 * shared one would. */
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
#include "state_local.h"

/* What the gate handed back, in order. */
struct record {
	int		 order[64];
	bool		 go[64];
	int64_t		 at_ms[64];
	size_t		 n;
	struct event_base *base;
	struct state	*state;
	size_t		 stop_after;
};

static void	on_go(void *, bool, void *);

/* The embedded backend: every answer before the call returns. */
static struct state *
local_state(void)
{
	char err[ERR_LEN];
	struct state *s = state_local_new(&(struct state_local_config){
	    .window_ms = 1000, .max_windows = 16 }, err);

	assert_non_null(s);
	return s;
}

static struct ratelimit *
gate_new(struct record *r, struct ratelimit_config *cfg)
{
	cfg->name = "test";
	r->base = event_base_new();
	if (r->state == NULL)
		r->state = local_state();
	return ratelimit_new(r->base, r->state, cfg, on_go, r);
}

static void
gate_free(struct record *r, struct ratelimit *rl)
{
	ratelimit_free(rl, NULL);
	state_free(r->state);
	event_base_free(r->base);
}

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
	struct record r = { 0 };
	struct ratelimit *rl = gate_new(&r, &cfg);
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
	gate_free(&r, rl);
}

static void
test_gate_pause_holds_everything(void **state)
{
	struct ratelimit_config cfg = { .rate = 0, .max_queue = 4,
	    .max_wait_ms = 5000 };
	struct record r = { 0 };
	struct ratelimit *rl = gate_new(&r, &cfg);
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
	gate_free(&r, rl);
}

static void
test_gate_bounded_wait_and_queue(void **state)
{
	struct ratelimit_config cfg = { .rate = 0, .max_queue = 2,
	    .max_wait_ms = 50 };
	struct record r = { 0 };
	struct ratelimit *rl = gate_new(&r, &cfg);
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
	gate_free(&r, rl);
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
	struct record r = { 0 };
	struct ratelimit *rl = gate_new(&r, &cfg);
	int a = 1;

	(void)state;
	assert_int_equal(ratelimit_admit(rl, &a), 1);
	assert_int_equal(ratelimit_admit(rl, &a), 0);
	assert_int_equal(ratelimit_admit(rl, &a), 0);
	cancelled = 0;
	ratelimit_free(rl, on_cancel);
	assert_int_equal(cancelled, 2);
	assert_int_equal(r.n, 0);
	state_free(r.state);
	event_base_free(r.base);
}

/* ---- a state that answers later, as one over the network does -------- */

struct later_state {
	struct state	 base;
	struct event	*ev;		/* answers the oldest take */
	state_bucket_fn	*fn[8];
	void		*arg[8];
	size_t		 n;
	int64_t		 wait_ms;	/* what it answers */
	size_t		 takes;
};

static void
later_answer(evutil_socket_t fd, short what, void *arg)
{
	struct later_state *ls = arg;

	(void)fd;
	(void)what;
	while (ls->n > 0) {
		state_bucket_fn *fn = ls->fn[0];
		void *a = ls->arg[0];

		ls->n--;
		memmove(ls->fn, ls->fn + 1, ls->n * sizeof(ls->fn[0]));
		memmove(ls->arg, ls->arg + 1, ls->n * sizeof(ls->arg[0]));
		fn(a, ls->wait_ms);
	}
}

static void
later_take(struct state *s, const char *name, double rate, double burst,
    int64_t now_ms, state_bucket_fn *fn, void *arg)
{
	struct later_state *ls = (struct later_state *)s;

	(void)name;
	(void)rate;
	(void)burst;
	(void)now_ms;
	assert_true(ls->n < 8);
	ls->fn[ls->n] = fn;
	ls->arg[ls->n++] = arg;
	ls->takes++;
	event_active(ls->ev, EV_TIMEOUT, 0);
}

static void
later_pause(struct state *s, const char *name, int64_t ms, int64_t now_ms)
{
	(void)s;
	(void)name;
	(void)ms;
	(void)now_ms;
}

static void
later_free(struct state *s)
{
	struct later_state *ls = (struct later_state *)s;

	ls->wait_ms = 0;
	later_answer(-1, 0, ls);	/* state.h: answers due are given */
	event_free(ls->ev);
	free(ls);
}

static const struct state_ops later_ops = {
	.name = "later",
	.bucket_take = later_take,
	.bucket_pause = later_pause,
	.free = later_free,
};

static struct later_state *
later_state_new(struct event_base *base)
{
	struct later_state *ls = calloc(1, sizeof(*ls));

	assert_non_null(ls);
	ls->base.ops = &later_ops;
	ls->ev = event_new(base, -1, 0, later_answer, ls);
	return ls;
}

static void
test_gate_over_a_later_state(void **state)
{
	struct ratelimit_config cfg = { .name = "test", .rate = 10,
	    .max_queue = 4, .max_wait_ms = 5000 };
	struct record r = { .base = event_base_new() };
	struct later_state *ls = later_state_new(r.base);
	struct ratelimit *rl = ratelimit_new(r.base, &ls->base, &cfg, on_go,
	    &r);
	int ids[3] = { 0, 1, 2 };

	(void)state;
	/* Each push waits for the state's answer, one take at a time, in
	 * order: the first is not sent from inside admit. */
	assert_int_equal(ratelimit_admit(rl, &ids[0]), 0);
	assert_int_equal(ratelimit_admit(rl, &ids[1]), 0);
	assert_int_equal(ls->takes, 1);
	run_until(&r, 2);
	assert_int_equal(r.order[0], 0);
	assert_int_equal(r.order[1], 1);
	assert_true(r.go[0] && r.go[1]);
	assert_int_equal(ls->takes, 2);
	/* "Wait 30 ms": asked again after that, then sent. */
	ls->wait_ms = 30;
	assert_int_equal(ratelimit_admit(rl, &ids[2]), 0);
	event_base_loop(r.base, EVLOOP_ONCE);	/* the answer: wait */
	assert_int_equal(r.n, 2);
	ls->wait_ms = 0;
	run_until(&r, 3);
	assert_int_equal(r.order[2], 2);
	assert_int_equal(ls->takes, 4);
	/* Freed with an answer outstanding: it finds nobody (ASan watches),
	 * and the queued push is handed back. */
	assert_int_equal(ratelimit_admit(rl, &ids[0]), 0);
	cancelled = 0;
	ratelimit_free(rl, on_cancel);
	assert_int_equal(cancelled, 1);
	state_free(&ls->base);
	assert_int_equal(r.n, 3);
	event_base_free(r.base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gate_fifo_at_rate),
		cmocka_unit_test(test_gate_pause_holds_everything),
		cmocka_unit_test(test_gate_bounded_wait_and_queue),
		cmocka_unit_test(test_free_hands_back_the_queue),
		cmocka_unit_test(test_gate_over_a_later_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
