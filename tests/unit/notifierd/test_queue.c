/* Unit tests of notifierd/queue.c on a real SQLite file: claiming due
 * jobs in order, crash recovery of in-flight jobs, and what each outcome
 * leaves in the database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "notifierd.h"
#include "testutil.h"

struct fixture {
	char		 dir[TESTUTIL_DIR_LEN];
	char		 path[TESTUTIL_PATH_LEN];
	struct queue	*q;
	sqlite3		*db;	/* a second connection, as metadata-dictd */
};

static void
exec_sql(struct fixture *f, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(f->db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static int64_t
count(struct fixture *f, const char *sql)
{
	sqlite3_stmt *st;
	int64_t n;

	assert_int_equal(sqlite3_prepare_v2(f->db, sql, -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[ERR_LEN];

	testutil_db_dir(f->dir, "test_queue", "relay.db", f->path);
	f->q = queue_open(f->path, DB_SYNC_NORMAL, err);
	assert_non_null(f->q);
	assert_int_equal(sqlite3_open(f->path, &f->db), SQLITE_OK);
	sqlite3_busy_timeout(f->db, 5000);
	exec_sql(f, "PRAGMA foreign_keys=ON;"
	    "INSERT INTO tokens(id, user, token, token_hash, mailbox, "
	    "updated_at) VALUES (1, 'alice', 'tokA', 11, 'g', 0), "
	    "(2, 'alice', 'tokB', 12, 'g', 0), (3, 'bob', 'tokC', 13, 'g', 0);"
	    /* job 10 due at 100, 11 at 50, 12 not due until 5000, 13 for
	     * alice's tokA again */
	    "INSERT INTO queue(id, token_id, user, created_at, next_at) "
	    "VALUES (10, 1, 'alice', 0, 100), (11, 2, 'alice', 0, 50), "
	    "(12, 3, 'bob', 0, 5000), (13, 1, 'alice', 0, 100)");
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	sqlite3_close(f->db);
	queue_close(f->q);
	testutil_db_dir_remove(f->dir, f->path);
	free(f);
	return 0;
}

static void
free_jobs(struct job **jobs, int n)
{
	for (int i = 0; i < n; i++)
		job_free(jobs[i]);
}

/* The claimed job with this id (claims come back in no set order). */
static struct job *
find_job(struct job **jobs, int n, int64_t id)
{
	for (int i = 0; i < n; i++)
		if (jobs[i]->id == id)
			return jobs[i];
	fail_msg("job %lld not claimed", (long long)id);
	return NULL;
}

static void
test_claim_due(void **state)
{
	struct fixture *f = *state;
	struct job *jobs[8];
	char err[ERR_LEN];
	int64_t due;
	int n;

	n = queue_claim(f->q, 1000, 8, jobs, err);
	assert_int_equal(n, 3);
	assert_string_equal(find_job(jobs, n, 11)->token, "tokB");
	assert_string_equal(find_job(jobs, n, 10)->token, "tokA");
	assert_string_equal(find_job(jobs, n, 13)->token, "tokA");
	assert_int_equal(count(f, "SELECT count(*) FROM queue WHERE "
	    "state = 1"), 3);
	/* Claimed jobs are not claimed again. */
	assert_int_equal(queue_claim(f->q, 1000, 8, jobs + 3, err), 0);
	assert_int_equal(queue_next_due(f->q, &due, err), 1);
	assert_int_equal(due, 5000);
	free_jobs(jobs, n);
}

static void
test_claim_limit(void **state)
{
	struct fixture *f = *state;
	struct job *jobs[8];
	char err[ERR_LEN];
	int n;

	/* The limit takes the earliest due first. */
	n = queue_claim(f->q, 10000, 1, jobs, err);
	assert_int_equal(n, 1);
	assert_int_equal(jobs[0]->id, 11);
	free_jobs(jobs, n);
	n = queue_claim(f->q, 10000, 2, jobs, err);
	assert_int_equal(n, 2);
	assert_int_equal(count(f, "SELECT count(*) FROM queue WHERE "
	    "state = 1"), 3);
	free_jobs(jobs, n);
}

static void
test_requeue_after_crash(void **state)
{
	struct fixture *f = *state;
	struct job *jobs[8];
	char err[ERR_LEN];
	int n;

	n = queue_claim(f->q, 1000, 8, jobs, err);
	free_jobs(jobs, n);	/* "crash": outcomes never written */
	assert_int_equal(queue_requeue_in_flight(f->q, err), 3);
	assert_int_equal(count(f, "SELECT count(*) FROM queue WHERE "
	    "state = 0"), 4);
	n = queue_claim(f->q, 1000, 8, jobs, err);
	assert_int_equal(n, 3);
	free_jobs(jobs, n);
}

static void
test_outcomes(void **state)
{
	struct fixture *f = *state;
	struct job *jobs[8];
	char err[ERR_LEN];
	int64_t len, age;
	int n;

	n = queue_claim(f->q, 1000, 8, jobs, err);	/* 11, 10, 13 */
	assert_int_equal(n, 3);
	assert_int_equal(queue_batch_begin(f->q, err), 0);
	assert_int_equal(queue_job_done(f->q, find_job(jobs, n, 11), err), 0);
	/* 410 for tokA: the token and both of its jobs go. */
	assert_int_equal(queue_token_gone(f->q, find_job(jobs, n, 10), err),
	    0);
	assert_int_equal(queue_batch_commit(f->q, err), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM tokens WHERE "
	    "token = 'tokA'"), 0);
	assert_int_equal(count(f, "SELECT count(*) FROM queue"), 1);
	assert_int_equal(count(f, "SELECT id FROM queue"), 12);
	free_jobs(jobs, n);

	n = queue_claim(f->q, 6000, 8, jobs, err);
	assert_int_equal(n, 1);
	assert_int_equal(queue_batch_begin(f->q, err), 0);
	assert_int_equal(queue_job_retry(f->q, jobs[0], 9000, err), 0);
	assert_int_equal(queue_batch_commit(f->q, err), 0);
	assert_int_equal(count(f, "SELECT attempts FROM queue WHERE "
	    "id = 12"), 1);
	assert_int_equal(count(f, "SELECT next_at FROM queue WHERE "
	    "id = 12 AND state = 0"), 9000);
	assert_int_equal(queue_stats(f->q, 7000, &len, &age, err), 0);
	assert_int_equal(len, 1);
	assert_int_equal(age, 7000);
	free_jobs(jobs, n);
	/* Not due before its next_at. */
	assert_int_equal(queue_claim(f->q, 8999, 8, jobs, err), 0);
}

static void
test_rolled_back_batch_keeps_jobs(void **state)
{
	struct fixture *f = *state;
	struct job *jobs[8];
	char err[ERR_LEN];
	int n;

	n = queue_claim(f->q, 1000, 8, jobs, err);
	assert_int_equal(queue_batch_begin(f->q, err), 0);
	assert_int_equal(queue_job_done(f->q, jobs[0], err), 0);
	queue_batch_rollback(f->q);
	assert_int_equal(count(f, "SELECT count(*) FROM queue"), 4);
	free_jobs(jobs, n);
}

static void
test_token_deleted_while_queued(void **state)
{
	struct fixture *f = *state;
	struct job *jobs[8];
	char err[ERR_LEN];
	int n;

	/* An opt-out at the relay takes the token's jobs with it. */
	exec_sql(f, "DELETE FROM tokens WHERE id = 2");
	n = queue_claim(f->q, 1000, 8, jobs, err);
	assert_int_equal(n, 2);
	for (int i = 0; i < n; i++)
		assert_string_equal(jobs[i]->token, "tokA");
	free_jobs(jobs, n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_claim_due, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_claim_limit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_requeue_after_crash, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_outcomes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_rolled_back_batch_keeps_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_deleted_while_queued,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
