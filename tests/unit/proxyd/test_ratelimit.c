/* Unit tests of proxyd/push/ratelimit.c: the gate on a real libevent loop
 * (FIFO order within a client, round-robin between clients, pauses, the
 * bounded wait refused at admission or when it runs out, the bounded
 * queue and the bound per client) over the embedded state's buckets, and
 * over a state that answers later, as a shared one would. */
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

#define RECORD_MAX	1024

/* What the gate handed back, in order. */
struct record {
	int		 order[RECORD_MAX];
	bool		 go[RECORD_MAX];
	int64_t		 at_ms[RECORD_MAX];
	size_t		 n;
	struct event_base *base;
	struct state	*state;
	size_t		 stop_after;
};

static void	on_go(void *, bool, void *);

/* Clients: one address each (the key's last byte). */
static const struct ratelimit_client *
client(uint8_t n)
{
	static struct ratelimit_client c[256];

	memset(c[n].key, 0, sizeof(c[n].key));
	c[n].key[10] = c[n].key[11] = 0xff;
	c[n].key[12] = 192;
	c[n].key[15] = n;
	return &c[n];
}

static enum ratelimit_refusal last_why;
static int64_t last_retry_ms;

/* ratelimit_admit for client n; a refusal's why and retry kept. */
static int
admit_as(struct ratelimit *rl, uint8_t n, int *item)
{
	return ratelimit_admit(rl, client(n), item, &last_why,
	    &last_retry_ms);
}

static int
admit(struct ratelimit *rl, int *item)
{
	return admit_as(rl, 1, item);
}

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
	assert_int_equal(admit(rl, &ids[0]), 1);
	assert_int_equal(admit(rl, &ids[1]), 1);
	for (i = 2; i < 8; i++)
		assert_int_equal(admit(rl, &ids[i]), 0);
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
	assert_int_equal(admit(rl, &a), 1);	/* unlimited */
	ratelimit_pause(rl, 100);
	assert_true(ratelimit_paused(rl));
	assert_int_equal(admit(rl, &a), 0);
	assert_int_equal(admit(rl, &b), 0);
	run_until(&r, 2);
	assert_true(r.go[0] && r.go[1]);
	assert_int_equal(r.order[0], 1);
	assert_true(r.at_ms[0] - t0 >= 100);
	assert_false(ratelimit_paused(rl));
	assert_int_equal(admit(rl, &a), 1);
	gate_free(&r, rl);
}

/* Nothing is accepted that would wait past max_wait: a pause longer than
 * it refuses a push at once, saying when to come back. One accepted
 * within it that then waits max_wait (the pause grew) is refused then,
 * not after the pause. And the queue is bounded in all. */
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
	assert_int_equal(admit(rl, &a), -1);
	assert_int_equal(last_why, RATELIMIT_TOO_LONG);
	assert_true(last_retry_ms > 9000 && last_retry_ms <= 10000);
	gate_free(&r, rl);

	memset(&r, 0, sizeof(r));
	rl = gate_new(&r, &cfg);
	ratelimit_pause(rl, 30);		/* within max_wait */
	assert_int_equal(admit(rl, &a), 0);
	assert_int_equal(admit(rl, &b), 0);
	assert_int_equal(admit(rl, &c), -1);	/* full */
	assert_int_equal(last_why, RATELIMIT_QUEUE_FULL);
	assert_true(last_retry_ms >= 1000);	/* never "at once" */
	ratelimit_pause(rl, 10000);		/* then it grew */
	run_until(&r, 2);
	/* Refused after max_wait, not after the pause. */
	assert_false(r.go[0]);
	assert_false(r.go[1]);
	assert_true(r.at_ms[1] - t0 >= 50 && r.at_ms[1] - t0 < 5000);
	assert_int_equal(ratelimit_refused_total(rl), 3);
	assert_int_equal(ratelimit_queued(rl), 0);
	assert_int_equal(ratelimit_clients(rl), 0);
	gate_free(&r, rl);
}

/* Clients are served round-robin, each in its own order: one that queued
 * five pushes before another queued two does not make the other wait for
 * all five. */
static void
test_round_robin_between_clients(void **state)
{
	struct ratelimit_config cfg = { .rate = 200, .burst = 1,
	    .max_queue = 16, .max_wait_ms = 5000 };
	struct record r = { 0 };
	struct ratelimit *rl = gate_new(&r, &cfg);
	int a[6] = { 10, 11, 12, 13, 14, 15 }, b[2] = { 20, 21 };
	static const int want[] = { 11, 20, 12, 21, 13, 14, 15 };
	size_t i;

	(void)state;
	assert_int_equal(admit_as(rl, 1, &a[0]), 1);	/* the burst */
	for (i = 1; i < 6; i++)
		assert_int_equal(admit_as(rl, 1, &a[i]), 0);
	for (i = 0; i < 2; i++)
		assert_int_equal(admit_as(rl, 2, &b[i]), 0);
	assert_int_equal(ratelimit_queued(rl), 7);
	assert_int_equal(ratelimit_clients(rl), 2);
	run_until(&r, 7);
	for (i = 0; i < 7; i++) {
		if (r.order[i] != want[i] || !r.go[i])
			fail_msg("turn %zu: push %d (go %d), want %d", i,
			    r.order[i], r.go[i], want[i]);
	}
	assert_int_equal(ratelimit_clients(rl), 0);
	gate_free(&r, rl);
}

/* A client flooding a provider limited to 100/s: it gets what fits in
 * max_wait (2 s, about 200 pushes) queued and the rest refused at once
 * (TOO_LONG, told to come back when its queue would have drained), and
 * another client's push, queued after all of that, is served within a
 * couple of tokens, not after the flood's 2 s. */
static void
test_flood_does_not_delay_another_client(void **state)
{
	struct ratelimit_config cfg = { .rate = 100, .burst = 1,
	    .max_queue = 10000, .max_client_queue = 1000,
	    .max_wait_ms = 2000 };
	struct record r = { 0 };
	struct ratelimit *rl = gate_new(&r, &cfg);
	static int flood[600];
	int mine = 7, queued = 0, refused = 0;
	int64_t t0;
	size_t i;

	(void)state;
	for (i = 0; i < 600; i++) {
		flood[i] = 1000 + (int)i;
		switch (admit_as(rl, 1, &flood[i])) {
		case 0:
			queued++;
			break;
		case -1:
			refused++;
			assert_int_equal(last_why, RATELIMIT_TOO_LONG);
			assert_true(last_retry_ms > 1900);
			break;
		}
	}
	assert_true(queued >= 190 && queued <= 201);
	assert_int_equal(queued + refused, 599);	/* one went at once */
	t0 = clock_mono_ms();
	assert_int_equal(admit_as(rl, 2, &mine), 0);
	run_until(&r, 2);
	assert_int_equal(r.order[1], mine);
	assert_true(r.go[1]);
	if (r.at_ms[1] - t0 > 100)
		fail_msg("the other client waited %lld ms",
		    (long long)(r.at_ms[1] - t0));
	gate_free(&r, rl);
}

/* The bound per client: its next push is refused (CLIENT_FULL), another
 * client's is still taken; the bound in all (QUEUE_FULL) holds for
 * everybody. */
static void
test_client_bound(void **state)
{
	struct ratelimit_config cfg = { .rate = 1, .burst = 1,
	    .max_queue = 5, .max_client_queue = 3, .max_wait_ms = 60000 };
	struct record r = { 0 };
	struct ratelimit *rl = gate_new(&r, &cfg);
	int x = 1;

	(void)state;
	assert_int_equal(admit_as(rl, 1, &x), 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(admit_as(rl, 1, &x), 0);
	assert_int_equal(admit_as(rl, 1, &x), -1);
	assert_int_equal(last_why, RATELIMIT_CLIENT_FULL);
	assert_true(last_retry_ms >= 3000);
	assert_int_equal(admit_as(rl, 2, &x), 0);
	assert_int_equal(admit_as(rl, 3, &x), 0);
	assert_int_equal(admit_as(rl, 4, &x), -1);
	assert_int_equal(last_why, RATELIMIT_QUEUE_FULL);
	assert_int_equal(ratelimit_queued(rl), 5);
	assert_int_equal(ratelimit_clients(rl), 3);
	assert_int_equal(ratelimit_refused_total(rl), 2);
	assert_string_equal(ratelimit_refusal_name(RATELIMIT_CLIENT_FULL),
	    "client_queue_full");
	assert_string_equal(ratelimit_refusal_name(RATELIMIT_QUEUE_FULL),
	    "queue_full");
	assert_string_equal(ratelimit_refusal_name(RATELIMIT_TOO_LONG),
	    "queue_wait");
	assert_string_equal(ratelimit_refusal_name(RATELIMIT_WAITED),
	    "queue_waited");
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
	    .max_queue = 8, .max_wait_ms = 5000 };
	struct record r = { 0 };
	struct ratelimit *rl = gate_new(&r, &cfg);
	int a = 1;

	(void)state;
	assert_int_equal(admit(rl, &a), 1);
	assert_int_equal(admit(rl, &a), 0);
	assert_int_equal(admit(rl, &a), 0);
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
	assert_int_equal(admit(rl, &ids[0]), 0);
	assert_int_equal(admit(rl, &ids[1]), 0);
	assert_int_equal(ls->takes, 1);
	run_until(&r, 2);
	assert_int_equal(r.order[0], 0);
	assert_int_equal(r.order[1], 1);
	assert_true(r.go[0] && r.go[1]);
	assert_int_equal(ls->takes, 2);
	/* "Wait 30 ms": asked again after that, then sent. */
	ls->wait_ms = 30;
	assert_int_equal(admit(rl, &ids[2]), 0);
	event_base_loop(r.base, EVLOOP_ONCE);	/* the answer: wait */
	assert_int_equal(r.n, 2);
	ls->wait_ms = 0;
	run_until(&r, 3);
	assert_int_equal(r.order[2], 2);
	assert_int_equal(ls->takes, 4);
	/* Freed with an answer outstanding: it finds nobody (ASan watches),
	 * and the queued push is handed back. */
	assert_int_equal(admit(rl, &ids[0]), 0);
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
		cmocka_unit_test(test_round_robin_between_clients),
		cmocka_unit_test(test_flood_does_not_delay_another_client),
		cmocka_unit_test(test_client_bound),
		cmocka_unit_test(test_free_hands_back_the_queue),
		cmocka_unit_test(test_gate_over_a_later_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
