/* Unit tests of proxyd/token/decrypt_cache.c: hits, cached failures, LRU
 * eviction order and the bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "decrypt_cache.h"

static struct decrypt_cache *cur;

static void
digest_of(const char *s, unsigned char d[DECRYPT_CACHE_DIGEST_LEN])
{
	decrypt_cache_digest(cur, s, strlen(s), d);
}

static void
test_hit_miss_and_failure(void **state)
{
	struct decrypt_cache *c = cur = decrypt_cache_new(10);
	unsigned char d1[32], d2[32], d3[32];
	char *plain;
	int error;

	(void)state;
	digest_of("openpgp:AAAA", d1);
	digest_of("openpgp:BBBB", d2);
	digest_of("openpgp:CCCC", d3);
	assert_int_equal(decrypt_cache_get(c, d1, &plain, &error), 0);
	decrypt_cache_put(c, d1, "apns-token-1", 0);
	decrypt_cache_put(c, d2, NULL, 7);	/* a failure */
	assert_int_equal(decrypt_cache_get(c, d1, &plain, &error), 1);
	assert_string_equal(plain, "apns-token-1");
	free(plain);
	assert_int_equal(decrypt_cache_get(c, d2, &plain, &error), 1);
	assert_null(plain);
	assert_int_equal(error, 7);
	assert_int_equal(decrypt_cache_get(c, d3, &plain, &error), 0);
	assert_int_equal(decrypt_cache_size(c), 2);
	decrypt_cache_free(c);
}

static void
test_lru_eviction(void **state)
{
	struct decrypt_cache *c = cur = decrypt_cache_new(3);
	unsigned char d[5][32];
	char name[16], *plain;
	int error;

	(void)state;
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "ct%d", i);
		digest_of(name, d[i]);
	}
	decrypt_cache_put(c, d[0], "t0", 0);
	decrypt_cache_put(c, d[1], "t1", 0);
	decrypt_cache_put(c, d[2], "t2", 0);
	/* Touch 0, so 1 is the least recently used. */
	assert_int_equal(decrypt_cache_get(c, d[0], &plain, &error), 1);
	free(plain);
	decrypt_cache_put(c, d[3], "t3", 0);
	assert_int_equal(decrypt_cache_size(c), 3);
	assert_int_equal(decrypt_cache_get(c, d[1], &plain, &error), 0);
	assert_int_equal(decrypt_cache_get(c, d[0], &plain, &error), 1);
	free(plain);
	decrypt_cache_put(c, d[4], "t4", 0);	/* evicts 2 */
	assert_int_equal(decrypt_cache_get(c, d[2], &plain, &error), 0);
	assert_int_equal(decrypt_cache_get(c, d[3], &plain, &error), 1);
	free(plain);
	decrypt_cache_free(c);
}

static void
test_many_entries_bounded(void **state)
{
	struct decrypt_cache *c = cur = decrypt_cache_new(1000);
	unsigned char d[32];
	char name[32], *plain;
	int error, hits = 0;

	(void)state;
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "ciphertext-%d", i);
		digest_of(name, d);
		decrypt_cache_put(c, d, name, 0);
	}
	assert_int_equal(decrypt_cache_size(c), 1000);
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "ciphertext-%d", i);
		digest_of(name, d);
		if (decrypt_cache_get(c, d, &plain, &error) == 1) {
			assert_string_equal(plain, name);
			assert_true(i >= 4000);		/* the newest */
			free(plain);
			hits++;
		}
	}
	assert_int_equal(hits, 1000);
	decrypt_cache_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_miss_and_failure),
		cmocka_unit_test(test_lru_eviction),
		cmocka_unit_test(test_many_entries_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
