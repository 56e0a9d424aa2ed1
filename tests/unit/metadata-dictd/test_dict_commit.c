/* Unit tests of metadata-dictd/dict_commit.c, the group commit: every
 * queued transaction goes into one SQLite transaction and each is
 * answered after it, in queue order; a bad one fails alone; commits
 * queued while answering wait for the next flush; notifierd gets one
 * datagram per batch that queued jobs; while another connection holds
 * the write lock nothing is answered, the flush says when to try again
 * (growing), reads go on, and a transaction that waited --lock-wait
 * fails alone. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "dictd_test.h"

#define ANSWERS_MAX	8

/* What the done callbacks saw, in order. */
struct answers {
	struct dt_fixture	*f;
	int			 n;
	unsigned int		 id[ANSWERS_MAX];
	enum dict_commit_result	 result[ANSWERS_MAX];
	char			 reason[ANSWERS_MAX][ERR_LEN];
	/* Queue this one from inside the first callback. */
	struct dict_txn		*requeue;
};

static void
on_done(void *arg, struct dict_txn *t, enum dict_commit_result result,
    const char *reason)
{
	struct answers *a = arg;

	assert_true(a->n < ANSWERS_MAX);
	a->id[a->n] = t->id;
	a->result[a->n] = result;
	snprintf(a->reason[a->n], ERR_LEN, "%s", reason ? reason : "");
	a->n++;
	dict_txn_free(t);
	if (a->requeue != NULL) {
		dict_commit_enqueue(a->f->gc, a->requeue, on_done, a);
		a->requeue = NULL;
	}
}

static struct dict_txn *
txn(unsigned int id, const char *user, const char *key, const char *value)
{
	struct dict_txn *t = dict_txn_new(id, user);

	dict_txn_add(t, DICT_CHANGE_SET, key, value, strlen(value), 0);
	return t;
}

static int
setup(void **state)
{
	*state = dt_fixture_new("test_dict_commit", NULL);
	return 0;
}

static int
teardown(void **state)
{
	dt_fixture_free(*state);
	return 0;
}

static void
test_one_sqlite_transaction_answers_in_order(void **state)
{
	struct dt_fixture *f = *state;
	struct answers a = { .f = f };
	struct dict_txn *inc = dict_txn_new(4, "alice");

	dict_txn_add(inc, DICT_CHANGE_INC, "priv/" DT_G "/missing", NULL, 0, 1);
	dict_commit_enqueue(f->gc, txn(1, "alice", "priv/" DT_G "/devicetoken",
	    "tokA"), on_done, &a);
	dict_commit_enqueue(f->gc, txn(2, "bob", "priv/" DT_G "/devicetoken",
	    "tokB"), on_done, &a);
	/* A token with a space: this one fails, alone. */
	dict_commit_enqueue(f->gc, txn(3, "carol", "priv/" DT_G "/devicetoken",
	    "a b"), on_done, &a);
	dict_commit_enqueue(f->gc, inc, on_done, &a);
	assert_int_equal(dict_commit_pending(f->gc), 4);
	/* Nothing is answered before the flush. */
	assert_int_equal(a.n, 0);
	assert_string_equal(dt_lookup(f, "alice", "priv/" DT_G "/devicetoken"),
	    "N");

	dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms);
	assert_int_equal(dict_commit_pending(f->gc), 0);
	assert_int_equal(a.n, 4);
	for (int i = 0; i < 4; i++)
		if (a.id[i] != (unsigned int)i + 1)
			fail_msg("answer %d is for transaction %u", i, a.id[i]);
	assert_int_equal(a.result[0], DICT_COMMIT_OK);
	assert_int_equal(a.result[1], DICT_COMMIT_OK);
	assert_int_equal(a.result[2], DICT_COMMIT_FAILED);
	assert_non_null(strstr(a.reason[2], "byte 0x20"));
	assert_int_equal(a.result[3], DICT_COMMIT_NOT_FOUND);
	assert_string_equal(dt_lookup(f, "alice", "priv/" DT_G "/devicetoken"),
	    "tokA");
	assert_string_equal(dt_lookup(f, "bob", "priv/" DT_G "/devicetoken"),
	    "tokB");
	assert_string_equal(dt_lookup(f, "carol", "priv/" DT_G "/devicetoken"),
	    "N");
	assert_int_equal(metric_value(f->stats.group_commits), 1);
	assert_int_equal(metric_value(f->stats.commit_ok), 2);
	assert_int_equal(metric_value(f->stats.commit_failed), 1);
	assert_int_equal(metric_value(f->stats.commit_not_found), 1);
	assert_int_equal(metric_value(f->stats.fail_txn), 1);
	assert_int_equal(metric_value(f->stats.token_sets), 2);

	/* An empty flush is no group commit. */
	dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms);
	assert_int_equal(metric_value(f->stats.group_commits), 1);
}

static void
test_too_large_transaction_fails_at_commit(void **state)
{
	struct dt_fixture *f = *state;
	struct answers a = { .f = f };
	struct dict_txn *big = dict_txn_new(9, "alice");

	for (int i = 0; i <= DICT_TXN_MAX_CHANGES; i++)
		dict_txn_add(big, DICT_CHANGE_SET, "priv/" DT_G "/k", "v", 1,
		    0);
	dict_commit_enqueue(f->gc, big, on_done, &a);
	dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.result[0], DICT_COMMIT_FAILED);
	assert_string_equal(a.reason[0], "transaction too large");
	assert_string_equal(dt_lookup(f, "alice", "priv/" DT_G "/k"), "N");
}

/* Another process's write lock, held as notifierd or an import holds
 * it (BEGIN IMMEDIATE on a connection of its own). */
static sqlite3 *
lock_hold(struct dt_fixture *f)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(f->db_path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL,
	    NULL), SQLITE_OK);
	return db;
}

static void
lock_release(sqlite3 *db)
{
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
}

static void
test_held_lock_keeps_the_queue_and_backs_off(void **state)
{
	struct dt_fixture *f = *state;
	struct answers a = { .f = f };
	sqlite3 *other;
	int64_t d1, d2, d3;

	dict_store_set_busy_timeout(f->store, 1);
	other = lock_hold(f);
	dict_commit_enqueue(f->gc, txn(1, "alice", "priv/" DT_G "/devicetoken",
	    "tokA"), on_done, &a);
	d1 = dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms);
	assert_true(d1 > 0);
	assert_int_equal(a.n, 0);
	assert_int_equal(dict_commit_pending(f->gc), 1);
	assert_int_equal(metric_value(f->stats.write_busy), 1);
	assert_int_equal(metric_value(f->stats.group_commits), 0);
	/* Readers need no write lock. */
	assert_string_equal(dt_lookup(f, "alice", "priv/" DT_G "/x"), "N");
	/* Still held: the wait grows; a commit that comes meanwhile
	 * waits behind the first. */
	fake_mono_ms += d1;
	dict_commit_enqueue(f->gc, txn(2, "bob", "priv/" DT_G "/devicetoken",
	    "tokB"), on_done, &a);
	d2 = dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms);
	assert_true(d2 > d1);
	fake_mono_ms += d2;
	d3 = dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms);
	assert_true(d3 >= d2);
	assert_int_equal(a.n, 0);
	lock_release(other);
	assert_int_equal(dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms), 0);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.id[0], 1);
	assert_int_equal(a.result[0], DICT_COMMIT_OK);
	assert_int_equal(a.result[1], DICT_COMMIT_OK);
	assert_string_equal(dt_lookup(f, "bob", "priv/" DT_G "/devicetoken"),
	    "tokB");
	assert_int_equal(metric_value(f->stats.group_commits), 1);
	/* The back-off starts over at the next held lock. */
	other = lock_hold(f);
	dict_commit_enqueue(f->gc, txn(3, "alice", "priv/" DT_G "/y", "1"),
	    on_done, &a);
	assert_int_equal(dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms), d1);
	lock_release(other);
	assert_int_equal(dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms), 0);
	assert_int_equal(a.n, 3);
}

static void
test_held_lock_past_lock_wait_fails_alone(void **state)
{
	struct dt_fixture *f = *state;
	struct answers a = { .f = f };
	sqlite3 *other;

	dict_store_set_busy_timeout(f->store, 1);
	other = lock_hold(f);
	dict_commit_enqueue(f->gc, txn(1, "alice", "priv/" DT_G "/old", "1"),
	    on_done, &a);
	assert_true(dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms) > 0);
	fake_mono_ms += DT_LOCK_WAIT_MS - 1;
	dict_commit_enqueue(f->gc, txn(2, "alice", "priv/" DT_G "/new", "2"),
	    on_done, &a);
	assert_true(dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms) > 0);
	assert_int_equal(a.n, 0);
	/* The first has waited --lock-wait since its first flush. */
	fake_mono_ms += 1;
	assert_true(dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms) > 0);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.id[0], 1);
	assert_int_equal(a.result[0], DICT_COMMIT_FAILED);
	assert_non_null(strstr(a.reason[0], "locked by another process"));
	assert_int_equal(dict_commit_pending(f->gc), 1);
	assert_int_equal(metric_value(f->stats.fail_busy), 1);
	assert_int_equal(metric_value(f->stats.commit_failed), 1);
	lock_release(other);
	assert_int_equal(dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms), 0);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.result[1], DICT_COMMIT_OK);
	assert_string_equal(dt_lookup(f, "alice", "priv/" DT_G "/old"), "N");
	assert_string_equal(dt_lookup(f, "alice", "priv/" DT_G "/new"), "2");
}

static void
test_queued_while_answering_waits_for_next_flush(void **state)
{
	struct dt_fixture *f = *state;
	struct answers a = { .f = f };

	a.requeue = txn(2, "alice", "priv/" DT_G "/second", "2");
	dict_commit_enqueue(f->gc, txn(1, "alice", "priv/" DT_G "/first",
	    "1"), on_done, &a);
	dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms);
	assert_int_equal(a.n, 1);
	assert_int_equal(dict_commit_pending(f->gc), 1);
	assert_string_equal(dt_lookup(f, "alice", "priv/" DT_G "/second"), "N");
	dict_commit_flush(f->gc, DT_T0_MS, fake_mono_ms);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.id[1], 2);
	assert_string_equal(dt_lookup(f, "alice", "priv/" DT_G "/second"), "2");
	assert_int_equal(metric_value(f->stats.group_commits), 2);
}

static void
test_notifierd_woken_once_per_batch_with_jobs(void **state)
{
	struct dt_fixture *f = *state;
	struct answers a = { .f = f };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct dict_commit *gc;
	char path[TESTUTIL_PATH_LEN + 16], err[ERR_LEN], dgram[8];
	struct dict_txn *t;
	int fd;

	snprintf(path, sizeof(path), "%s/notify.sock", f->dir);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	gc = dict_commit_new(f->store, path, DT_LOCK_WAIT_MS, &f->stats, err);
	assert_non_null(gc);

	/* A token, then a batch with no job: no datagram. */
	dict_commit_enqueue(gc, txn(1, "alice", "priv/" DT_G "/devicetoken",
	    "tokA"), on_done, &a);
	dict_commit_flush(gc, DT_T0_MS, fake_mono_ms);
	assert_int_equal(recv(fd, dgram, sizeof(dgram), 0), -1);
	assert_int_equal(errno, EAGAIN);
	/* Two new-mail events in one batch: one job each, one datagram. */
	for (unsigned int id = 2; id <= 3; id++) {
		t = dict_txn_new(id, "alice");
		dict_txn_add(t, DICT_CHANGE_SET, "priv/" DT_G "/messagenew", "",
		    0, 0);
		dict_commit_enqueue(gc, t, on_done, &a);
	}
	dict_commit_flush(gc, DT_T0_MS, fake_mono_ms);
	assert_int_equal(a.n, 3);
	assert_int_equal(recv(fd, dgram, sizeof(dgram), 0), 1);
	assert_int_equal(dgram[0], 'w');
	assert_int_equal(recv(fd, dgram, sizeof(dgram), 0), -1);
	/* The second event found the first one's job waiting: one row. */
	assert_int_equal(metric_value(f->stats.queue_rows), 1);

	/* Freed with transactions still queued: they are freed (the
	 * sanitizer build checks), their callbacks never run. */
	dict_commit_enqueue(gc, txn(4, "alice", "priv/" DT_G "/x", "1"),
	    on_done, &a);
	dict_commit_free(gc);
	assert_int_equal(a.n, 3);
	close(fd);
	unlink(path);
}

static void
test_unusable_notify_socket(void **state)
{
	struct dt_fixture *f = *state;
	char path[200], err[ERR_LEN];

	memset(path, 'x', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	err[0] = '\0';
	assert_null(dict_commit_new(f->store, path, DT_LOCK_WAIT_MS, &f->stats,
	    err));
	assert_true(err[0] != '\0');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_one_sqlite_transaction_answers_in_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_too_large_transaction_fails_at_commit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_queued_while_answering_waits_for_next_flush, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_held_lock_keeps_the_queue_and_backs_off, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_held_lock_past_lock_wait_fails_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_notifierd_woken_once_per_batch_with_jobs, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unusable_notify_socket,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
