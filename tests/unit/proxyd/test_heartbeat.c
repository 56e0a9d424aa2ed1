/* Unit tests of proxyd/state/heartbeat_store.c on a real SQLite file:
 * registrations survive a reopen, re-registration moves instead of
 * duplicating, due order and limits, removal, jitter bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "heartbeat_store.h"
#include "proxy_db.h"
#include "testutil.h"

struct fixture {
	char			 dir[TESTUTIL_DIR_LEN];
	char			 path[TESTUTIL_PATH_LEN];
	struct proxy_db		 db;
	struct heartbeat_store	*h;
};

/* proxyd's database and the store on it. */
static void
fixture_open(struct fixture *f, enum db_sync sync)
{
	char err[ERR_LEN];

	if (proxy_db_open(&f->db, f->path, sync, false, err) < 0)
		fail_msg("proxy_db_open: %s", err);
	f->h = heartbeat_store_new(f->db.db, err);
	assert_non_null(f->h);
}

static void
fixture_close(struct fixture *f)
{
	heartbeat_store_free(f->h);
	proxy_db_close(&f->db);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	testutil_db_dir(f->dir, "test_heartbeat", "notifiers.db", f->path);
	fixture_open(f, DB_SYNC_NORMAL);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	fixture_close(f);
	testutil_db_dir_remove(f->dir, f->path);
	free(f);
	return 0;
}

static void
test_put_due_remove(void **state)
{
	struct fixture *f = *state;
	struct heartbeat_due due[8];
	char err[ERR_LEN];
	int64_t next;

	assert_int_equal(heartbeat_store_next(f->h, &next, err), 0);
	assert_int_equal(heartbeat_store_put(f->h, "aa11", 3000, err), 0);
	assert_int_equal(heartbeat_store_put(f->h, "bb22", 1000, err), 0);
	assert_int_equal(heartbeat_store_put(f->h, "cc33", 2000, err), 0);
	/* Re-registering moves the entry, never duplicates it. */
	assert_int_equal(heartbeat_store_put(f->h, "aa11", 5000, err), 0);
	assert_int_equal(heartbeat_store_count(f->h, err), 3);
	assert_int_equal(heartbeat_store_next(f->h, &next, err), 1);
	assert_int_equal(next, 1000);

	assert_int_equal(heartbeat_store_due(f->h, 2500, 8, due, err), 2);
	assert_string_equal(due[0].token, "bb22");	/* earliest first */
	assert_string_equal(due[1].token, "cc33");
	heartbeat_due_clear(due, 2);
	assert_int_equal(heartbeat_store_due(f->h, 9999, 1, due, err), 1);
	heartbeat_due_clear(due, 1);

	assert_int_equal(heartbeat_store_remove(f->h, "bb22", err), 1);
	assert_int_equal(heartbeat_store_remove(f->h, "bb22", err), 0);
	assert_int_equal(heartbeat_store_count(f->h, err), 2);
}

static void
test_survives_reopen(void **state)
{
	struct fixture *f = *state;
	struct heartbeat_due due[4];
	char err[ERR_LEN];

	assert_int_equal(heartbeat_store_put(f->h, "dd44", 42, err), 0);
	fixture_close(f);
	fixture_open(f, DB_SYNC_FULL);
	assert_int_equal(heartbeat_store_due(f->h, 100, 4, due, err), 1);
	assert_string_equal(due[0].token, "dd44");
	assert_int_equal(due[0].next_at, 42);
	heartbeat_due_clear(due, 1);
}

static void
test_next_at_jitter(void **state)
{
	int64_t lo = INT64_MAX, hi = INT64_MIN;

	(void)state;
	assert_int_equal(heartbeat_next_at(1000, 1200000, 0, 12345), 1201000);
	for (uint32_t r = 0; r < 200000; r += 13) {
		int64_t t = heartbeat_next_at(0, 1200000, 60000,
		    r * 2654435761u);

		lo = t < lo ? t : lo;
		hi = t > hi ? t : hi;
	}
	assert_true(lo >= 1140000 && lo < 1141000);
	assert_true(hi <= 1260000 && hi > 1259000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_due_remove, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_survives_reopen, setup,
		    teardown),
		cmocka_unit_test(test_next_at_jitter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
