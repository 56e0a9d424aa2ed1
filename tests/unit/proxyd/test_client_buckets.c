/* Unit tests of proxyd/state/client_buckets.c: a bucket per key (keys of
 * different lengths apart), refill at the rate up to the burst, the
 * table's bound with the least recently seen forgotten, and a flood of
 * distinct keys never holding more than the bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client_buckets.h"

static const uint8_t hkey[SIPHASH_KEY_LEN] = "0123456789abcdef";

static int64_t
take(struct client_buckets *t, const char *key, int64_t now, int *evicted)
{
	/* 2 per second, bursts of 3 */
	return client_buckets_take(t, key, strlen(key), 2, 3, now, evicted);
}

static void
test_bucket_per_key(void **state)
{
	struct client_buckets *t = client_buckets_new(10, hkey);
	int ev;

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(take(t, "10.0.0.1", 0, &ev), 0);
	assert_int_equal(take(t, "10.0.0.1", 0, &ev), 501);
	assert_int_equal(ev, 0);
	/* A prefix of the key is another key. */
	assert_int_equal(take(t, "10.0.0.", 0, &ev), 0);
	assert_int_equal(take(t, "10.0.0.1", 501, &ev), 0);
	assert_int_equal(client_buckets_count(t), 2);
	/* Refilled to the burst, not beyond. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(take(t, "10.0.0.1", 60000, &ev), 0);
	assert_true(take(t, "10.0.0.1", 60000, &ev) > 0);
	client_buckets_free(t);
}

static void
test_bound_forgets_least_recent(void **state)
{
	struct client_buckets *t = client_buckets_new(2, hkey);
	int ev;

	(void)state;
	for (int i = 0; i < 3; i++)
		take(t, "A", 0, &ev);
	take(t, "B", 0, &ev);
	assert_int_equal(ev, 0);
	take(t, "A", 0, &ev);		/* A seen last: B goes next */
	take(t, "C", 0, &ev);
	assert_int_equal(ev, 1);
	assert_int_equal(client_buckets_count(t), 2);
	assert_true(take(t, "A", 0, &ev) > 0);	/* A kept, still empty */
	assert_int_equal(ev, 0);
	assert_int_equal(take(t, "B", 0, &ev), 0);	/* B anew, full */
	assert_int_equal(ev, 1);
	client_buckets_free(t);
}

static void
test_flood_of_keys(void **state)
{
	struct client_buckets *t = client_buckets_new(1000, hkey);
	uint8_t key[16];
	int ev, evicted = 0;

	(void)state;
	memset(key, 0, sizeof(key));
	for (uint32_t i = 0; i < 100000; i++) {
		memcpy(key, &i, sizeof(i));
		assert_int_equal(client_buckets_take(t, key, sizeof(key), 1, 1,
		    0, &ev), 0);
		evicted += ev;
		assert_true(client_buckets_count(t) <= 1000);
	}
	assert_int_equal(client_buckets_count(t), 1000);
	assert_int_equal(evicted, 100000 - 1000);
	/* Longer keys are cut to CLIENT_BUCKETS_KEY_MAX. */
	assert_int_equal(client_buckets_take(t, "0123456789abcdefXX", 18, 1, 1,
	    0, &ev), 0);
	assert_true(client_buckets_take(t, "0123456789abcdefYY", 18, 1, 1,
	    0, &ev) > 0);
	client_buckets_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_per_key),
		cmocka_unit_test(test_bound_forgets_least_recent),
		cmocka_unit_test(test_flood_of_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
