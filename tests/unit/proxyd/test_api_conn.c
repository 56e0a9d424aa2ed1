/* Unit tests of proxyd/api/api_conn.c: phases, total deadlines (a drip
 * does not move them), the order of expiry, who gives way when the table
 * is full. Time is driven, not waited for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api_conn.h"

#define REQUEST_MS	10000
#define IDLE_MS		30000

static void
test_conn_request_deadline_is_total(void **state)
{
	struct api_conns t;
	struct api_conn a = { .fd = 1 }, b = { .fd = 2 };
	bool idle;

	(void)state;
	api_conns_init(&t, REQUEST_MS, IDLE_MS);
	assert_int_equal(api_conns_next_deadline(&t), -1);
	api_conns_add(&t, &a, 1000);
	api_conns_add(&t, &b, 2000);
	assert_int_equal(t.open, 2);
	assert_int_equal(api_conns_next_deadline(&t), 11000);
	/* The first request line keeps the deadline from the start. */
	api_conn_reading(&t, &a, 9000);
	assert_int_equal(a.deadline_ms, 11000);
	assert_null(api_conns_expired(&t, 10999, &idle));
	assert_ptr_equal(api_conns_expired(&t, 11000, &idle), &a);
	assert_false(idle);
	assert_int_equal(a.phase, API_CONN_CUT);
	assert_null(api_conns_expired(&t, 11000, &idle));
	/* Cut stays cut; it leaves the table when closed. */
	api_conn_idle(&t, &a, 11000);
	api_conn_reading(&t, &a, 11000);
	assert_int_equal(a.phase, API_CONN_CUT);
	assert_int_equal(api_conns_next_deadline(&t), 12000);
	api_conns_remove(&t, &a);
	assert_int_equal(t.open, 1);
	/* A request that is in (BUSY) has no deadline. */
	api_conn_busy(&t, &b);
	assert_int_equal(api_conns_next_deadline(&t), -1);
	assert_null(api_conns_expired(&t, 1000000, &idle));
	api_conns_remove(&t, &b);
	assert_int_equal(t.open, 0);
}

static void
test_conn_keep_alive_phases(void **state)
{
	struct api_conns t;
	struct api_conn a = { .fd = 1 };
	bool idle;

	(void)state;
	api_conns_init(&t, REQUEST_MS, IDLE_MS);
	api_conns_add(&t, &a, 0);
	api_conn_busy(&t, &a);
	/* Answered: the next request line must come within IDLE_MS. */
	api_conn_idle(&t, &a, 5000);
	assert_int_equal(api_conns_next_deadline(&t), 35000);
	/* It came: the request has REQUEST_MS from its request line. */
	api_conn_reading(&t, &a, 20000);
	assert_int_equal(a.phase, API_CONN_READING);
	assert_int_equal(api_conns_next_deadline(&t), 30000);
	api_conn_busy(&t, &a);
	api_conn_idle(&t, &a, 31000);
	assert_ptr_equal(api_conns_expired(&t, 61000, &idle), &a);
	assert_true(idle);
	api_conns_remove(&t, &a);
}

static void
test_conn_expiry_order_across_lists(void **state)
{
	struct api_conns t;
	struct api_conn r1 = { .fd = 1 }, r2 = { .fd = 2 }, i1 = { .fd = 3 };
	bool idle;

	(void)state;
	/* Idle shorter than a request: the lists interleave. */
	api_conns_init(&t, 10000, 2000);
	api_conns_add(&t, &i1, 0);
	api_conns_add(&t, &r1, 1000);		/* due 11000 */
	api_conn_busy(&t, &i1);
	api_conn_idle(&t, &i1, 5000);		/* due 7000 */
	api_conns_add(&t, &r2, 6000);		/* due 16000 */
	assert_int_equal(api_conns_next_deadline(&t), 7000);
	assert_ptr_equal(api_conns_expired(&t, 20000, &idle), &i1);
	assert_true(idle);
	assert_ptr_equal(api_conns_expired(&t, 20000, &idle), &r1);
	assert_ptr_equal(api_conns_expired(&t, 20000, &idle), &r2);
	assert_null(api_conns_expired(&t, 20000, &idle));
}

static void
test_conn_victim_order(void **state)
{
	struct api_conns t;
	struct api_conn c[4] = { { .fd = 0 }, { .fd = 1 }, { .fd = 2 },
	    { .fd = 3 } };

	(void)state;
	api_conns_init(&t, REQUEST_MS, IDLE_MS);
	for (int i = 0; i < 4; i++)
		api_conns_add(&t, &c[i], i);
	api_conn_busy(&t, &c[0]);		/* in progress: never */
	api_conn_busy(&t, &c[1]);
	api_conn_idle(&t, &c[1], 10);		/* idle: after readers */
	/* The oldest still reading first, then the next, then idle. */
	assert_ptr_equal(api_conns_victim(&t), &c[2]);
	assert_ptr_equal(api_conns_victim(&t), &c[3]);
	assert_ptr_equal(api_conns_victim(&t), &c[1]);
	assert_null(api_conns_victim(&t));
	assert_int_equal(c[2].phase, API_CONN_CUT);
	assert_int_equal(c[0].phase, API_CONN_BUSY);
	assert_int_equal(t.open, 4);		/* until they close */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conn_request_deadline_is_total),
		cmocka_unit_test(test_conn_keep_alive_phases),
		cmocka_unit_test(test_conn_expiry_order_across_lists),
		cmocka_unit_test(test_conn_victim_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
