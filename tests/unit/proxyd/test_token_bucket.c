/* Unit tests of proxyd/state/token_bucket.c: refill, burst, waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "token_bucket.h"

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

static void
test_bucket_new_rate(void **state)
{
	struct token_bucket tb;

	(void)state;
	token_bucket_init(&tb, 100, 0, 0);	/* burst 100 */
	token_bucket_set(&tb, 10, 0);		/* burst cut to 10 */
	for (int i = 0; i < 10; i++)
		assert_true(token_bucket_take(&tb, 0));
	assert_false(token_bucket_take(&tb, 0));
	assert_in_range(token_bucket_wait_ms(&tb, 0), 100, 101);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_burst_then_rate),
		cmocka_unit_test(test_bucket_unlimited_and_default_burst),
		cmocka_unit_test(test_bucket_new_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
