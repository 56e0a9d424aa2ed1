/* Unit tests of notifierd/breaker.c and the status classification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "notifierd.h"

static void
test_classify(void **state)
{
	static const struct {
		long			status;
		enum job_outcome	want;
	} rows[] = {
		{ 200, JOB_DONE }, { 410, JOB_GONE }, { 0, JOB_RETRY },
		{ 500, JOB_RETRY }, { 502, JOB_RETRY }, { 429, JOB_RETRY },
		{ 404, JOB_RETRY }, { 201, JOB_RETRY }, { 400, JOB_RETRY },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++)
		if (notifier_classify(rows[i].status) != rows[i].want)
			fail_msg("status %ld: outcome %d, want %d",
			    rows[i].status, notifier_classify(rows[i].status),
			    rows[i].want);
}

static void
test_opens_after_threshold(void **state)
{
	struct breaker b;

	(void)state;
	breaker_init(&b, 3, 1000, 8000);
	assert_int_equal(breaker_allow(&b, 0, 100), 100);
	assert_false(breaker_record(&b, false, 10));
	assert_false(breaker_record(&b, false, 11));
	assert_true(breaker_record(&b, false, 12));	/* third: opens */
	assert_true(breaker_is_open(&b, 13));
	assert_int_equal(breaker_allow(&b, 500, 100), 0);
	assert_int_equal(breaker_allow(&b, 1011, 100), 0);
	/* Cooldown over: exactly one probe. */
	assert_int_equal(breaker_allow(&b, 1012, 100), 1);
	assert_int_equal(breaker_allow(&b, 1013, 100), 0);
}

static void
test_probe_failure_doubles_cooldown(void **state)
{
	struct breaker b;

	(void)state;
	breaker_init(&b, 1, 1000, 3000);
	assert_true(breaker_record(&b, false, 0));
	assert_int_equal(breaker_allow(&b, 1000, 10), 1);
	assert_true(breaker_record(&b, false, 1000));	/* probe failed */
	assert_int_equal(b.open_until_ms, 3000);	/* 2 s cooldown */
	assert_int_equal(breaker_allow(&b, 3000, 10), 1);
	assert_true(breaker_record(&b, false, 3000));
	assert_int_equal(b.open_until_ms, 6000);	/* capped at 3 s */
}

static void
test_answer_closes(void **state)
{
	struct breaker b;

	(void)state;
	breaker_init(&b, 2, 1000, 8000);
	breaker_record(&b, false, 0);
	breaker_record(&b, true, 1);	/* resets the count */
	assert_false(breaker_record(&b, false, 2));
	assert_true(breaker_record(&b, false, 3));
	assert_int_equal(breaker_allow(&b, 1003, 5), 1);
	assert_false(breaker_record(&b, true, 1004));
	assert_false(breaker_is_open(&b, 1005));
	assert_int_equal(breaker_allow(&b, 1005, 5), 5);
	assert_int_equal(b.cooldown_ms, 1000);
}

static void
test_unused_probe_is_granted_again(void **state)
{
	struct breaker b;

	(void)state;
	breaker_init(&b, 1, 1000, 8000);
	breaker_record(&b, false, 0);
	assert_int_equal(breaker_allow(&b, 1000, 10), 1);
	breaker_probe_unused(&b);	/* nothing was due */
	assert_int_equal(breaker_allow(&b, 1500, 10), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_opens_after_threshold),
		cmocka_unit_test(test_probe_failure_doubles_cooldown),
		cmocka_unit_test(test_answer_closes),
		cmocka_unit_test(test_unused_probe_is_granted_again),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
