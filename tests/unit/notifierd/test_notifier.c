/* Unit tests of notifierd/notifier.c, the loop's logic, on a real SQLite
 * file and a real libevent loop, with a fake HTTP client and a fake
 * clock: what is sent, when, and what each answer leaves in the queue;
 * the concurrency limit, back-off and deadline, the circuit breaker, a
 * request that cannot start, the start after a crash and the stop with
 * requests in flight.
 *
 * The fakes stand in at link time: this file defines common/httpc.h's
 * functions and common/clock.h's, so the linker takes no httpc.o or
 * clock.o from libcommon.a (an object of it that needed another of
 * their functions would make the link fail with a duplicate symbol,
 * never run the real ones). notifier.c is the daemon's, unchanged.
 * Requests wait in the fake until a test answers them; the clock moves
 * only when a test moves it. The loop runs without blocking (drive()),
 * and a datagram on the wake socket makes it look for due jobs, as
 * metadata-dictd's do. The poll interval and the grace period are an
 * hour; a timer the loop arms from the fake clock (a due job that has
 * to wait for room: 1 ms of real time) only runs a pass that a wake-up
 * would run, so the tests hold whenever it fires. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <sqlite3.h>

#include "clock.h"
#include "evloop.h"
#include "httpc.h"
#include "log.h"
#include "notifierd.h"
#include "testutil.h"
#include "unixsock.h"

#define T0_WALL_MS	INT64_C(1700000000000)
#define T0_MONO_MS	INT64_C(5000000)
#define RETRY_BASE_MS	1000	/* doubles per retry, +/- 10 % */
#define DEADLINE_MS	10000
#define PROXY_URL	"http://proxy.test/notify"

/* ---- the fake clock (common/clock.h) ----------------------------------- */

static int64_t fake_wall_ms, fake_mono_ms;

int64_t
clock_wall_ms(void)
{
	return fake_wall_ms;
}

int64_t
clock_mono_ms(void)
{
	return fake_mono_ms;
}

int64_t
clock_mono_us(void)
{
	return fake_mono_ms * 1000;
}

static void
advance(int64_t ms)
{
	fake_wall_ms += ms;
	fake_mono_ms += ms;
}

/* ---- the fake HTTP client (common/httpc.h) ------------------------------ */

#define FAKE_MAX_REQS	64

struct httpc {
	httpc_done_fn	*done;
	void		*arg;
};

struct fake_req {
	void	*ctx;
	char	 body[128];
};

static struct {
	struct httpc	*client;
	struct fake_req	 reqs[FAKE_MAX_REQS];	/* in flight, oldest first */
	size_t		 n;
	unsigned int	 sent;		/* requests started, in all */
	unsigned int	 refused;	/* httpc_send calls failed */
	unsigned int	 cancelled;	/* handed back by httpc_free */
	unsigned int	 refuse;	/* httpc_send calls to fail */
	bool		 bad_request;	/* a request not shaped as expected */
} fake;

struct httpc *
httpc_new(struct event_base *base, const struct httpc_config *cfg,
    httpc_done_fn *done, void *arg, char err[ERR_LEN])
{
	(void)base;
	(void)cfg;
	(void)err;
	fake.client = calloc(1, sizeof(*fake.client));
	fake.client->done = done;
	fake.client->arg = arg;
	return fake.client;
}

int
httpc_send(struct httpc *h, const struct httpc_request *req, void *ctx,
    char err[ERR_LEN])
{
	struct fake_req *r;

	assert_ptr_equal(h, fake.client);
	if (fake.refuse > 0) {
		fake.refuse--;
		fake.refused++;
		err_set(err, "fake: cannot start a request");
		return -1;
	}
	assert_true(fake.n < FAKE_MAX_REQS);
	/* POST of the bare token, as chatmail relays send it. */
	if (req->method != NULL || strcmp(req->url, PROXY_URL) != 0 ||
	    req->nheaders != 1 || strcmp(req->headers[0],
	    "Content-Type: application/octet-stream") != 0 ||
	    req->body_len >= sizeof(r->body))
		fake.bad_request = true;
	r = &fake.reqs[fake.n++];
	r->ctx = ctx;
	snprintf(r->body, sizeof(r->body), "%.*s", (int)req->body_len,
	    req->body);
	fake.sent++;
	return 0;
}

size_t
httpc_in_flight(const struct httpc *h)
{
	assert_ptr_equal(h, fake.client);
	return fake.n;
}

void
httpc_free(struct httpc *h, httpc_cancel_fn *cancel)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < fake.n; i++) {
		if (cancel != NULL)
			cancel(fake.reqs[i].ctx, h->arg);
		fake.cancelled++;
	}
	fake.n = 0;
	free(h);
	fake.client = NULL;
}

/* The proxy answers the request for token (status 0: no answer, as a
 * refused connection). Like httpc, the request no longer counts as in
 * flight during the callback. */
static void
answer(const char *token, long status)
{
	struct httpc_response resp = { .status = status,
	    .error = status == 0 ? "Connection refused" : "", .body = "",
	    .retry_after_s = -1, .latency_us = 2000 };
	void *ctx;
	size_t i;

	for (i = 0; i < fake.n; i++)
		if (strcmp(fake.reqs[i].body, token) == 0)
			break;
	if (i == fake.n)
		fail_msg("no request in flight for %s", token);
	ctx = fake.reqs[i].ctx;
	memmove(&fake.reqs[i], &fake.reqs[i + 1],
	    (fake.n - i - 1) * sizeof(fake.reqs[0]));
	fake.n--;
	fake.client->done(ctx, &resp, fake.client->arg);
}

static bool
in_flight(const char *token)
{
	for (size_t i = 0; i < fake.n; i++)
		if (strcmp(fake.reqs[i].body, token) == 0)
			return true;
	return false;
}

/* ---- log lines -------------------------------------------------------- */

#define LOG_LINES	64

static struct {
	char	*line[LOG_LINES];
	int	 n;
} logged;

static void
log_capture(enum log_level level, const char *line, void *arg)
{
	(void)level;
	(void)arg;
	if (logged.n < LOG_LINES)
		logged.line[logged.n++] = strdup(line);
}

static int
log_count(const char *needle)
{
	int c = 0;

	for (int i = 0; i < logged.n; i++)
		if (strstr(logged.line[i], needle) != NULL)
			c++;
	return c;
}

/* ---- the fixture: a relay database, a loop, a notifier ----------------- */

struct fixture {
	char			 dir[TESTUTIL_DIR_LEN];
	char			 path[TESTUTIL_PATH_LEN];
	char			 wake_path[TESTUTIL_PATH_LEN];
	sqlite3			*db;	/* a second connection, as metadata-dictd */
	struct event_base	*base;
	struct notifier		*n;
};

static void
exec_sql(struct fixture *f, const char *fmt, ...)
{
	char sql[512], *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	if (sqlite3_exec(f->db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static int64_t
query_int(struct fixture *f, const char *fmt, ...)
{
	char sql[512];
	sqlite3_stmt *st;
	va_list ap;
	int64_t v;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	assert_int_equal(sqlite3_prepare_v2(f->db, sql, -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Token `token` (id) with one job (id) due at wall + due_in_ms, made
 * created_ago_ms before now. */
static void
add_job(struct fixture *f, int id, const char *token, int64_t due_in_ms,
    int64_t created_ago_ms)
{
	exec_sql(f, "INSERT OR IGNORE INTO tokens(id, user, token, token_hash, "
	    "mailbox, updated_at) VALUES (%d, 'alice', '%s', %d, 'g', 0)",
	    id, token, id);
	exec_sql(f, "INSERT INTO queue(id, token_id, user, created_at, "
	    "next_at) VALUES (%d, %d, 'alice', %lld, %lld)", id, id,
	    (long long)(fake_wall_ms - created_ago_ms),
	    (long long)(fake_wall_ms + due_in_ms));
}

static int64_t
jobs_left(struct fixture *f)
{
	return query_int(f, "SELECT count(*) FROM queue");
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[ERR_LEN];
	struct queue *q;

	memset(&fake, 0, sizeof(fake));
	fake_wall_ms = T0_WALL_MS;
	fake_mono_ms = T0_MONO_MS;
	log_init("test_notifier", LOG_LEVEL_INFO);
	log_set_sink(log_capture, NULL);
	testutil_db_dir(f->dir, "test_notifier", "relay.db", f->path);
	snprintf(f->wake_path, sizeof(f->wake_path), "%s/notify.sock",
	    f->dir);
	/* queue_open makes the relay schema. */
	q = queue_open(f->path, DB_SYNC_NORMAL, err);
	assert_non_null(q);
	queue_close(q);
	assert_int_equal(sqlite3_open(f->path, &f->db), SQLITE_OK);
	sqlite3_busy_timeout(f->db, 5000);
	exec_sql(f, "PRAGMA foreign_keys=ON");
	f->base = evloop_new(err);
	assert_non_null(f->base);
	*state = f;
	return 0;
}

/* Run the loop until nothing is left to do now (it never blocks) or
 * the notifier ended it (then event_base_got_break() says so until the
 * next drive). */
static void
drive(struct fixture *f)
{
	int i = 0;

	do	/* event_base_loop() clears the last break first */
		assert_int_not_equal(event_base_loop(f->base,
		    EVLOOP_NONBLOCK), -1);
	while (++i < 8 && !event_base_got_break(f->base));
}

static void
start(struct fixture *f, unsigned int concurrency)
{
	struct notifier_config cfg = {
		.db_path = f->path,
		.sync = DB_SYNC_NORMAL,
		.wake_socket = f->wake_path,
		.concurrency = concurrency,
		.retry_base_ms = RETRY_BASE_MS,
		.deadline_ms = DEADLINE_MS,
		.poll_ms = 3600 * 1000,
		.grace_ms = 3600 * 1000,
		.proxy_url = PROXY_URL,
	};
	char err[ERR_LEN];

	f->n = notifier_new(f->base, &cfg, err);
	if (f->n == NULL)
		fail_msg("notifier_new: %s", err);
	drive(f);
}

/* A wake-up datagram, as metadata-dictd sends after a commit. */
static void
wake(struct fixture *f)
{
	struct sockaddr_un sun;
	char err[ERR_LEN];
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);

	assert_true(s >= 0);
	assert_int_equal(unixsock_addr(f->wake_path, &sun, err), 0);
	assert_int_equal(sendto(s, "1", 1, 0, (struct sockaddr *)&sun,
	    sizeof(sun)), 1);
	close(s);
	drive(f);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	notifier_free(f->n);
	event_base_free(f->base);
	sqlite3_close(f->db);
	unlink(f->wake_path);
	testutil_db_dir_remove(f->dir, f->path);
	log_set_sink(NULL, NULL);
	for (int i = 0; i < logged.n; i++)
		free(logged.line[i]);
	logged.n = 0;
	assert_false(fake.bad_request);
	free(f);
	return 0;
}

/* ---- the tests ---------------------------------------------------------- */

/* At start the due jobs go out without a wake-up, one POST of the bare
 * token each; a job not yet due waits for its time. */
static void
test_start_sends_due_jobs(void **state)
{
	struct fixture *f = *state;

	add_job(f, 1, "tokA", 0, 0);
	add_job(f, 2, "tokB", -50, 0);
	add_job(f, 3, "tokC", 5000, 0);
	start(f, 8);
	assert_int_equal(fake.n, 2);
	assert_true(in_flight("tokA") && in_flight("tokB"));
	assert_int_equal(query_int(f, "SELECT count(*) FROM queue "
	    "WHERE state = 1"), 2);

	advance(4999);
	wake(f);
	assert_int_equal(fake.n, 2);
	advance(1);
	wake(f);
	assert_int_equal(fake.n, 3);
	assert_true(in_flight("tokC"));
}

/* 200: the job is done. 410: the token and every job of it are deleted.
 * Anything else: the job waits for its back-off, one attempt counted. */
static void
test_answers(void **state)
{
	struct fixture *f = *state;
	int64_t next_at;

	add_job(f, 1, "tokA", 0, 0);
	add_job(f, 2, "tokB", 0, 0);
	add_job(f, 3, "tokC", 0, 0);
	start(f, 8);
	/* Another job of tokB, not yet due, goes with its token. */
	exec_sql(f, "INSERT INTO queue(id, token_id, user, created_at, "
	    "next_at) VALUES (4, 2, 'alice', %lld, %lld)",
	    (long long)fake_wall_ms, (long long)fake_wall_ms + 60000);
	assert_int_equal(fake.n, 3);

	answer("tokA", 200);
	answer("tokB", 410);
	answer("tokC", 500);
	drive(f);
	assert_int_equal(query_int(f, "SELECT count(*) FROM queue "
	    "WHERE id = 1"), 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM tokens "
	    "WHERE id = 2"), 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM queue "
	    "WHERE token_id = 2"), 0);
	assert_int_equal(jobs_left(f), 1);
	assert_int_equal(query_int(f, "SELECT state FROM queue WHERE id = 3"),
	    0);
	assert_int_equal(query_int(f, "SELECT attempts FROM queue "
	    "WHERE id = 3"), 1);
	next_at = query_int(f, "SELECT next_at FROM queue WHERE id = 3");
	assert_in_range(next_at - fake_wall_ms, RETRY_BASE_MS * 9 / 10,
	    RETRY_BASE_MS * 11 / 10);
	assert_int_equal(fake.n, 0);

	/* Not before its time; then again, and the next wait doubles. */
	advance(next_at - fake_wall_ms - 1);
	wake(f);
	assert_int_equal(fake.n, 0);
	advance(1);
	wake(f);
	assert_true(in_flight("tokC"));
	answer("tokC", 503);
	drive(f);
	assert_int_equal(query_int(f, "SELECT attempts FROM queue "
	    "WHERE id = 3"), 2);
	next_at = query_int(f, "SELECT next_at FROM queue WHERE id = 3");
	assert_in_range(next_at - fake_wall_ms, 2 * RETRY_BASE_MS * 9 / 10,
	    2 * RETRY_BASE_MS * 11 / 10);
	advance(next_at - fake_wall_ms);
	wake(f);
	answer("tokC", 200);
	drive(f);
	assert_int_equal(jobs_left(f), 0);
	assert_int_equal(fake.sent, 5);
}

/* A failure whose retry would fall past the deadline drops the job (the
 * token stays); one that still fits is retried. */
static void
test_deadline_drops(void **state)
{
	struct fixture *f = *state;

	add_job(f, 1, "tokA", 0, DEADLINE_MS - 500);
	add_job(f, 2, "tokB", 0, DEADLINE_MS - 2000);
	start(f, 8);
	answer("tokA", 500);
	answer("tokB", 0);
	drive(f);
	assert_int_equal(query_int(f, "SELECT count(*) FROM queue "
	    "WHERE id = 1"), 0);
	assert_int_equal(query_int(f, "SELECT count(*) FROM tokens "
	    "WHERE id = 1"), 1);
	assert_int_equal(query_int(f, "SELECT attempts FROM queue "
	    "WHERE id = 2"), 1);
	assert_int_equal(log_count("dropped after 1 attempts: deadline "
	    "passed (last status=500)"), 1);
	assert_int_equal(log_count("deadline passed"), 1);
}

/* No more than `concurrency` requests at once; an answer makes room for
 * the next due job at once. */
static void
test_concurrency_limit(void **state)
{
	struct fixture *f = *state;
	char tok[16];

	for (int i = 1; i <= 7; i++) {
		snprintf(tok, sizeof(tok), "tok%d", i);
		add_job(f, i, tok, -i, 0);	/* tok7 is due first */
	}
	start(f, 3);
	assert_int_equal(fake.n, 3);
	assert_true(in_flight("tok7") && in_flight("tok6") &&
	    in_flight("tok5"));
	wake(f);
	assert_int_equal(fake.n, 3);

	answer("tok6", 200);
	drive(f);
	assert_int_equal(fake.n, 3);
	assert_true(in_flight("tok4"));
	while (fake.n > 0) {
		answer(fake.reqs[0].body, 200);
		drive(f);
		assert_true(fake.n <= 3);
	}
	assert_int_equal(fake.sent, 7);
	assert_int_equal(jobs_left(f), 0);
}

/* Five failures in a row open the breaker: no request for its cooldown,
 * then one probe; a failed probe doubles the cooldown, an answer closes
 * it and the due jobs go out. */
static void
test_breaker(void **state)
{
	struct fixture *f = *state;
	char tok[16];

	for (int i = 1; i <= 5; i++) {
		snprintf(tok, sizeof(tok), "tok%d", i);
		add_job(f, i, tok, 0, 0);
	}
	add_job(f, 6, "tok6", 500, 0);
	start(f, 8);
	assert_int_equal(fake.n, 5);
	for (int i = 1; i <= 5; i++) {
		snprintf(tok, sizeof(tok), "tok%d", i);
		answer(tok, 0);
	}
	drive(f);
	assert_int_equal(log_count("notify proxy unreachable (Connection "
	    "refused), pausing for 1000 ms"), 1);

	/* Everything due, but the breaker is open for 1000 ms. */
	fake_wall_ms += 2 * RETRY_BASE_MS;
	fake_mono_ms += 999;
	wake(f);
	assert_int_equal(fake.n, 0);

	fake_mono_ms += 1;
	wake(f);
	assert_int_equal(fake.n, 1);		/* the probe */
	wake(f);
	assert_int_equal(fake.n, 1);
	answer(fake.reqs[0].body, 500);
	drive(f);
	assert_int_equal(log_count("pausing for 2000 ms"), 1);
	assert_int_equal(fake.n, 0);

	fake_mono_ms += 1999;
	wake(f);
	assert_int_equal(fake.n, 0);
	fake_mono_ms += 1;
	wake(f);
	assert_int_equal(fake.n, 1);
	answer(fake.reqs[0].body, 200);
	drive(f);
	/* Closed: the four others still due go out together (the first
	 * probe's job waits for its own back-off). */
	assert_int_equal(fake.n, 4);
	assert_int_equal(fake.sent, 5 + 2 + 4);
}

/* A request that cannot start puts its job back as it was (no attempt
 * counted), and the job is claimed again at once. (The fake refuses one
 * request only: notifier.c claims a released job again in the same loop
 * pass, so a client that refused every request would keep the loop busy
 * without end.) */
static void
test_send_failure_releases_the_job(void **state)
{
	struct fixture *f = *state;

	add_job(f, 1, "tokA", 0, 0);
	fake.refuse = 1;
	start(f, 8);
	assert_int_equal(fake.refused, 1);
	assert_int_equal(log_count("notify job=1 not sent: fake: cannot "
	    "start a request"), 1);
	assert_true(in_flight("tokA"));
	assert_int_equal(fake.sent, 1);
	assert_int_equal(query_int(f, "SELECT attempts FROM queue "
	    "WHERE id = 1"), 0);
	assert_int_equal(query_int(f, "SELECT next_at FROM queue "
	    "WHERE id = 1"), T0_WALL_MS);
	answer("tokA", 200);
	drive(f);
	assert_int_equal(jobs_left(f), 0);
}

/* Jobs a crash left in flight are sent again at start (at least once). */
static void
test_start_requeues_in_flight(void **state)
{
	struct fixture *f = *state;

	add_job(f, 1, "tokA", 0, 0);
	exec_sql(f, "UPDATE queue SET state = 1 WHERE id = 1");
	start(f, 8);
	assert_int_equal(log_count("notify 1 jobs were in flight at the "
	    "last stop, retrying them"), 1);
	assert_true(in_flight("tokA"));
}

/* notifier_stop: nothing new is claimed, answers still count; what is
 * still in flight at the end goes back to waiting, attempts unchanged. */
static void
test_stop_with_requests_in_flight(void **state)
{
	struct fixture *f = *state;

	add_job(f, 1, "tokA", 0, 0);
	add_job(f, 2, "tokB", 0, 0);
	start(f, 8);
	assert_int_equal(fake.n, 2);
	add_job(f, 3, "tokC", 0, 0);

	notifier_stop(f->n);
	drive(f);
	assert_int_equal(fake.n, 2);
	assert_false(event_base_got_break(f->base));
	answer("tokA", 200);
	drive(f);
	assert_false(in_flight("tokC"));
	assert_false(event_base_got_break(f->base));
	answer("tokB", 500);
	drive(f);
	/* The last answer is written, then the loop ends. */
	assert_true(event_base_got_break(f->base));
	assert_int_equal(query_int(f, "SELECT attempts FROM queue "
	    "WHERE id = 2"), 1);

	/* Stopped again with one in flight, past the grace period. */
	notifier_free(f->n);
	f->n = NULL;
	fake_wall_ms = T0_WALL_MS + 60 * 1000;
	start(f, 8);
	assert_int_equal(fake.n, 2);	/* tokB's retry is due, tokC */
	notifier_stop(f->n);
	notifier_free(f->n);
	f->n = NULL;
	assert_int_equal(fake.cancelled, 2);
	assert_int_equal(query_int(f, "SELECT count(*) FROM queue "
	    "WHERE state = 1"), 0);
	assert_int_equal(query_int(f, "SELECT attempts FROM queue "
	    "WHERE id = 3"), 0);
	assert_int_equal(jobs_left(f), 2);
}

/* Stopped with nothing in flight, the loop ends at once. */
static void
test_stop_when_idle(void **state)
{
	struct fixture *f = *state;

	start(f, 8);
	notifier_stop(f->n);
	drive(f);
	assert_true(event_base_got_break(f->base));
	assert_int_equal(fake.sent, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_start_sends_due_jobs,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_answers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_deadline_drops, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_concurrency_limit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_breaker, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_send_failure_releases_the_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_requeues_in_flight,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_stop_with_requests_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_when_idle, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
