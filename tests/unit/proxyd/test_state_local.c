/*
 * Unit tests of proxyd/state/state_local.c, the embedded state backend,
 * through the state.h operations as the request path uses them: every
 * answer comes before the call returns; windows open, coalesce, cancel
 * and reopen; the heartbeat schedule claims due registrations once and
 * moves them on, and refuses a new registration at the bound it is
 * given (moving one is never refused); buckets admit at their rate, say
 * how long to wait, and pause; per-client buckets likewise, each client
 * its own, the least recently seen forgotten when the table is full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy_db.h"
#include "state_local.h"
#include "testutil.h"

#define W	1000

struct fixture {
	char		 dir[TESTUTIL_DIR_LEN];
	char		 path[TESTUTIL_PATH_LEN];
	struct proxy_db	 db;
	struct state	*s;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct state_local_config c;
	char err[ERR_LEN];

	testutil_db_dir(f->dir, "test_state_local", "proxy.db", f->path);
	assert_int_equal(proxy_db_open(&f->db, f->path, DB_SYNC_NORMAL, false,
	    err), 0);
	memset(&c, 0, sizeof(c));
	c.window_ms = W;
	c.max_windows = 100;
	c.db = f->db.db;
	c.max_clients = 3;
	f->s = state_local_new(&c, err);
	assert_non_null(f->s);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	state_free(f->s);
	proxy_db_close(&f->db);
	testutil_db_dir_remove(f->dir, f->path);
	free(f);
	return 0;
}

struct answer {
	int		 n;
	int		 w;
	int64_t		 end, wait;
	const char	*err;
	char		 tokens[8][32];
	size_t		 ntokens;
	int64_t		 next_at;
};

static void
on_window(void *arg, enum state_window w, int64_t end)
{
	struct answer *a = arg;

	a->n++;
	a->w = (int)w;
	a->end = end;
}

static struct answer
hit(struct state *s, const char *tok, int64_t now)
{
	struct answer a = { 0 };

	state_window_hit(s, tok, strlen(tok), "", 0, now, on_window, &a);
	assert_int_equal(a.n, 1);	/* answered before returning */
	return a;
}

static void
test_windows(void **state)
{
	struct fixture *f = *state;
	struct state_stats st;
	struct answer a;

	a = hit(f->s, "tok", 100);
	assert_int_equal(a.w, STATE_WINDOW_OPENED);
	assert_int_equal(a.end, 100 + W);
	a = hit(f->s, "tok", 200);
	assert_int_equal(a.w, STATE_WINDOW_OPEN);
	assert_int_equal(a.end, 100 + W);
	/* a failed push: the window goes */
	state_window_cancel(f->s, "tok", 3);
	assert_int_equal(hit(f->s, "tok", 300).w, STATE_WINDOW_OPENED);
	/* an owed push went out: the window starts anew */
	state_window_reopen(f->s, "tok", 3, 900);
	a = hit(f->s, "tok", 1500);
	assert_int_equal(a.w, STATE_WINDOW_OPEN);
	assert_int_equal(a.end, 900 + W);
	state_get_stats(f->s, &st);
	assert_int_equal(st.windows, 1);
	state_local_expire(f->s, 900 + W);
	state_get_stats(f->s, &st);
	assert_int_equal(st.windows, 0);
	assert_int_equal(hit(f->s, "tok", 900 + W).w, STATE_WINDOW_OPENED);
}

static void
on_stored(void *arg, enum state_store res, const char *err)
{
	struct answer *a = arg;

	a->n++;
	a->w = (int)res;
	a->err = err;
}

static void
on_due(void *arg, const char *const *tokens, size_t n, int64_t next_at,
    const char *err)
{
	struct answer *a = arg;

	a->n++;
	a->err = err;
	a->ntokens = n;
	a->next_at = next_at;
	for (size_t i = 0; i < n && i < 8; i++)
		snprintf(a->tokens[i], sizeof(a->tokens[i]), "%s", tokens[i]);
}

static int64_t
next_hour(void *arg)
{
	return *(int64_t *)arg + 3600 * 1000;
}

static void
test_heartbeat_schedule(void **state)
{
	struct fixture *f = *state;
	struct state_stats st;
	struct answer a = { 0 };
	int64_t now = 10000;

	state_heartbeat_put(f->s, "aa11", 5000, 0, on_stored, &a);
	state_heartbeat_put(f->s, "bb22", 20000, 0, on_stored, &a);
	assert_int_equal(a.n, 2);
	assert_null(a.err);
	state_get_stats(f->s, &st);
	assert_int_equal(st.heartbeat_tokens, 2);
	memset(&a, 0, sizeof(a));
	state_heartbeat_claim(f->s, now, 10, next_hour, &now, on_due, &a);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.ntokens, 1);
	assert_string_equal(a.tokens[0], "aa11");
	assert_int_equal(a.next_at, 20000);	/* bb22 is next */
	/* claimed: moved on, not handed out again now */
	memset(&a, 0, sizeof(a));
	state_heartbeat_claim(f->s, now, 10, next_hour, &now, on_due, &a);
	assert_int_equal(a.ntokens, 0);
	state_heartbeat_remove(f->s, "bb22");
	memset(&a, 0, sizeof(a));
	state_heartbeat_claim(f->s, 30000, 10, next_hour, &now, on_due, &a);
	assert_int_equal(a.ntokens, 0);
	assert_int_equal(a.next_at, now + 3600 * 1000);	/* aa11's */
}

static void
on_bucket(void *arg, int64_t wait)
{
	struct answer *a = arg;

	a->n++;
	a->wait = wait;
}

static int64_t
take(struct state *s, const char *name, double rate, int64_t now)
{
	struct answer a = { 0 };

	state_bucket_take(s, name, rate, 0, now, on_bucket, &a);
	assert_int_equal(a.n, 1);
	return a.wait;
}

static void
test_buckets(void **state)
{
	struct fixture *f = *state;

	/* 2 per second, bursts of 2 */
	assert_int_equal(take(f->s, "fcm", 2, 0), 0);
	assert_int_equal(take(f->s, "fcm", 2, 0), 0);
	assert_int_equal(take(f->s, "fcm", 2, 0), 501);
	assert_int_equal(take(f->s, "fcm", 2, 501), 0);
	/* unlimited, and each bucket its own */
	for (int i = 0; i < 100; i++)
		assert_int_equal(take(f->s, "apns", 0, 0), 0);
	/* a pause: nothing until then, whatever the tokens */
	state_bucket_pause(f->s, "ubports", 4000, 1000);
	assert_int_equal(take(f->s, "ubports", 100, 1000), 4000);
	assert_int_equal(take(f->s, "ubports", 100, 5000), 0);
}

/* Rows: a put with a bound, and the answer it must get. */
static void
test_heartbeat_bound(void **state)
{
	static const struct {
		const char	*token;
		int64_t		 max;
		enum state_store want;
		int64_t		 count;		/* rows afterwards */
	} rows[] = {
		{ "aa11", 2, STATE_STORED, 1 },
		{ "bb22", 2, STATE_STORED, 2 },
		{ "cc33", 2, STATE_FULL, 2 },	/* new, at the bound */
		{ "aa11", 2, STATE_STORED, 2 },	/* moved: never refused */
		{ "bb22", 1, STATE_STORED, 2 },	/* even past the bound */
		{ "cc33", 0, STATE_STORED, 3 },	/* 0: no bound */
		{ "dd44", 3, STATE_FULL, 3 },
	};
	struct fixture *f = *state;
	struct state_stats st;

	for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
		struct answer a = { 0 };

		state_heartbeat_put(f->s, rows[i].token, 5000, rows[i].max,
		    on_stored, &a);
		state_get_stats(f->s, &st);
		if (a.n != 1 || a.w != (int)rows[i].want ||
		    st.heartbeat_tokens != rows[i].count)
			fail_msg("row %zu (%s max %lld): answers %d result %d "
			    "rows %lld, want result %d rows %lld", i,
			    rows[i].token, (long long)rows[i].max, a.n, a.w,
			    (long long)st.heartbeat_tokens, (int)rows[i].want,
			    (long long)rows[i].count);
	}
}

static int64_t
client_take(struct state *s, const char *client, int64_t now)
{
	struct answer a = { 0 };

	/* 1 per second, bursts of 2 */
	state_client_take(s, client, strlen(client), 1, 2, now, on_bucket,
	    &a);
	assert_int_equal(a.n, 1);
	return a.wait;
}

static void
test_client_buckets(void **state)
{
	struct fixture *f = *state;
	struct state_stats st;

	assert_int_equal(client_take(f->s, "A", 0), 0);
	assert_int_equal(client_take(f->s, "A", 0), 0);
	assert_int_equal(client_take(f->s, "A", 0), 1001);
	assert_int_equal(client_take(f->s, "B", 0), 0);	/* its own */
	assert_int_equal(client_take(f->s, "A", 1001), 0);
	/* Three at most (setup): C fills the table, D forgets B (seen
	 * least recently), so B starts full again. */
	assert_int_equal(client_take(f->s, "C", 1001), 0);
	state_get_stats(f->s, &st);
	assert_int_equal(st.clients, 3);
	assert_int_equal(st.clients_forgotten, 0);
	assert_int_equal(client_take(f->s, "D", 1001), 0);
	state_get_stats(f->s, &st);
	assert_int_equal(st.clients, 3);
	assert_int_equal(st.clients_forgotten, 1);
	assert_true(client_take(f->s, "A", 1001) > 0);		/* kept */
	assert_int_equal(client_take(f->s, "B", 1001), 0);	/* anew */
	state_get_stats(f->s, &st);
	assert_int_equal(st.clients_forgotten, 2);		/* C went */
}

static const char *
say_degraded(struct state *s)
{
	(void)s;
	return "shared state unreachable";
}

/* GET /health asks state_degraded: the embedded backend never is (its
 * operation is NULL); a backend's own answer comes through as it is. */
static void
test_degraded(void **state)
{
	struct fixture *f = *state;
	static const struct state_ops ops = { .name = "fake",
	    .degraded = say_degraded };
	struct state fake = { .ops = &ops };

	assert_null(f->s->ops->degraded);
	assert_null(state_degraded(f->s));
	assert_string_equal(state_degraded(&fake), "shared state unreachable");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_windows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_schedule, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_buckets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_bound, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_client_buckets, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_degraded, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
