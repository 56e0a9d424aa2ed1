/* Unit tests of common/backoff.c: chatmail relay's 8^n schedule, small
 * test bases, caps, jitter bounds and the deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"

#define HOUR_MS	(3600LL * 1000)

static void
test_chatmail_schedule(void **state)
{
	static const int64_t want[] = { 8000, 64000, 512000, 4096000,
	    32768000 };

	(void)state;
	for (unsigned i = 0; i < sizeof(want) / sizeof(*want); i++) {
		int64_t got = backoff_delay_ms(8000, i + 1, 100 * HOUR_MS, 0,
		    0);

		if (got != want[i])
			fail_msg("retry %u: %lld ms, want %lld", i + 1,
			    (long long)got, (long long)want[i]);
	}
}

static void
test_small_base_doubles(void **state)
{
	(void)state;
	assert_int_equal(backoff_delay_ms(200, 1, HOUR_MS, 0, 0), 200);
	assert_int_equal(backoff_delay_ms(200, 2, HOUR_MS, 0, 0), 400);
	assert_int_equal(backoff_delay_ms(200, 5, HOUR_MS, 0, 0), 3200);
	assert_int_equal(backoff_delay_ms(1000, 3, HOUR_MS, 0, 0), 4000);
}

static void
test_cap_and_overflow(void **state)
{
	(void)state;
	assert_int_equal(backoff_delay_ms(8000, 6, 5 * HOUR_MS, 0, 0),
	    5 * HOUR_MS);
	assert_int_equal(backoff_delay_ms(8000, 1000, 5 * HOUR_MS, 0, 0),
	    5 * HOUR_MS);
	assert_int_equal(backoff_delay_ms(INT64_MAX / 2, 3, INT64_MAX, 0, 0),
	    INT64_MAX);
}

static void
test_jitter_bounds(void **state)
{
	int64_t lo = INT64_MAX, hi = 0;

	(void)state;
	for (uint32_t r = 0; r < 100000; r += 7) {
		int64_t d = backoff_delay_ms(8000, 1, HOUR_MS, 100,
		    r * 2654435761u);

		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	assert_true(lo >= 7200 && lo < 7400);
	assert_true(hi <= 8800 && hi > 8600);
}

static void
test_deadline(void **state)
{
	(void)state;
	assert_true(backoff_within_deadline(0, 5 * HOUR_MS, 5 * HOUR_MS));
	assert_false(backoff_within_deadline(0, 5 * HOUR_MS + 1,
	    5 * HOUR_MS));
	/* 8 s base, 5 h deadline: retries 1-4 fit (8 s+64 s+512 s+68 min),
	 * the fifth (9 h later) does not. */
	int64_t t = 0;
	unsigned retries = 0;

	for (unsigned n = 1; n < 10; n++) {
		t += backoff_delay_ms(8000, n, 5 * HOUR_MS, 0, 0);
		if (!backoff_within_deadline(0, t, 5 * HOUR_MS))
			break;
		retries++;
	}
	assert_int_equal(retries, 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chatmail_schedule),
		cmocka_unit_test(test_small_base_doubles),
		cmocka_unit_test(test_cap_and_overflow),
		cmocka_unit_test(test_jitter_bounds),
		cmocka_unit_test(test_deadline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
