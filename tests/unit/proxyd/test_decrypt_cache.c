/* Unit tests of proxyd/token/decrypt_cache.c: hits, cached failures, LRU
 * eviction order, the entry bound, the byte bound, and plaintexts that
 * are no token kept as failures without their bytes. */
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

/* An APNs token (64 hex digits) that names i. */
static void
token_of(int i, char out[65])
{
	snprintf(out, 65, "%064x", i);
}

static void
test_hit_miss_and_failure(void **state)
{
	struct decrypt_cache *c = cur = decrypt_cache_new(10, 1 << 20);
	unsigned char d1[32], d2[32], d3[32];
	char tok[65], *plain;
	int error;

	(void)state;
	token_of(1, tok);
	digest_of("openpgp:AAAA", d1);
	digest_of("openpgp:BBBB", d2);
	digest_of("openpgp:CCCC", d3);
	assert_int_equal(decrypt_cache_get(c, d1, &plain, &error), 0);
	decrypt_cache_put(c, d1, tok, 0);
	decrypt_cache_put(c, d2, NULL, 7);	/* a failure */
	assert_int_equal(decrypt_cache_get(c, d1, &plain, &error), 1);
	assert_string_equal(plain, tok);
	free(plain);
	assert_int_equal(decrypt_cache_get(c, d2, &plain, &error), 1);
	assert_null(plain);
	assert_int_equal(error, 7);
	assert_int_equal(decrypt_cache_get(c, d3, &plain, &error), 0);
	assert_int_equal(decrypt_cache_size(c), 2);
	assert_int_equal(decrypt_cache_bytes(c),
	    decrypt_cache_entry_bytes(tok) + decrypt_cache_entry_bytes(NULL));
	decrypt_cache_free(c);
}

static void
test_lru_eviction(void **state)
{
	struct decrypt_cache *c = cur = decrypt_cache_new(3, 1 << 20);
	unsigned char d[5][32];
	char name[16], tok[5][65], *plain;
	int error;

	(void)state;
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "ct%d", i);
		digest_of(name, d[i]);
		token_of(i, tok[i]);
	}
	decrypt_cache_put(c, d[0], tok[0], 0);
	decrypt_cache_put(c, d[1], tok[1], 0);
	decrypt_cache_put(c, d[2], tok[2], 0);
	/* Touch 0, so 1 is the least recently used. */
	assert_int_equal(decrypt_cache_get(c, d[0], &plain, &error), 1);
	free(plain);
	/* Evicted for the count, not the bytes: 0 returned. */
	assert_int_equal(decrypt_cache_put(c, d[3], tok[3], 0), 0);
	assert_int_equal(decrypt_cache_size(c), 3);
	assert_int_equal(decrypt_cache_get(c, d[1], &plain, &error), 0);
	assert_int_equal(decrypt_cache_get(c, d[0], &plain, &error), 1);
	free(plain);
	decrypt_cache_put(c, d[4], tok[4], 0);	/* evicts 2 */
	assert_int_equal(decrypt_cache_get(c, d[2], &plain, &error), 0);
	assert_int_equal(decrypt_cache_get(c, d[3], &plain, &error), 1);
	free(plain);
	decrypt_cache_free(c);
}

static void
test_many_entries_bounded(void **state)
{
	struct decrypt_cache *c = cur = decrypt_cache_new(1000, 1 << 30);
	unsigned char d[32];
	char name[32], tok[65], *plain;
	int error, hits = 0;

	(void)state;
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "ciphertext-%d", i);
		digest_of(name, d);
		token_of(i, tok);
		decrypt_cache_put(c, d, tok, 0);
	}
	assert_int_equal(decrypt_cache_size(c), 1000);
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "ciphertext-%d", i);
		digest_of(name, d);
		token_of(i, tok);
		if (decrypt_cache_get(c, d, &plain, &error) == 1) {
			assert_string_equal(plain, tok);
			assert_true(i >= 4000);		/* the newest */
			free(plain);
			hits++;
		}
	}
	assert_int_equal(hits, 1000);
	decrypt_cache_free(c);
}

/* A plaintext that does not parse as a token (token_parse) is cached as
 * a failure: no copy of it, whatever its size, answered as not a token
 * the next time. Rows: what decrypted. */
static void
test_non_token_kept_without_its_bytes(void **state)
{
	static const char *const rows[] = {
	    "hello world",			/* space */
	    "apns-token-1",			/* no kind */
	    "abc",				/* hex too short */
	    "fcm-x:tok",			/* bad package */
	};
	struct decrypt_cache *c = cur = decrypt_cache_new(100, 1 << 20);
	unsigned char d[32];
	char name[32], *big, *plain;
	int error;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
		snprintf(name, sizeof(name), "ct-row-%zu", i);
		digest_of(name, d);
		decrypt_cache_put(c, d, rows[i], 0);
		if (decrypt_cache_get(c, d, &plain, &error) != 1 ||
		    plain != NULL || error != DECRYPT_CACHE_NOT_TOKEN)
			fail_msg("row %zu (%s): plain %s error %d", i, rows[i],
			    plain != NULL ? plain : "NULL", error);
	}
	assert_int_equal(decrypt_cache_bytes(c), decrypt_cache_size(c) *
	    decrypt_cache_entry_bytes(NULL));
	/* 64 KiB of non-token: a small entry all the same. */
	big = malloc(65536 + 1);
	memset(big, 'A', 65536);
	big[65536] = '\0';
	digest_of("ct-big", d);
	decrypt_cache_put(c, d, big, 0);
	assert_int_equal(decrypt_cache_bytes(c), decrypt_cache_size(c) *
	    decrypt_cache_entry_bytes(NULL));
	assert_true(decrypt_cache_bytes(c) < 4096);
	free(big);
	decrypt_cache_free(c);
}

/* The bytes are bounded with room for many entries by count: the least
 * recently used go, each counted as evicted for the bytes. */
static void
test_byte_bound(void **state)
{
	size_t per = decrypt_cache_entry_bytes("0000000000000000000000000000"
	    "000000000000000000000000000000000000");
	struct decrypt_cache *c = cur = decrypt_cache_new(1000, 10 * per);
	unsigned char d[32];
	char name[32], tok[65], *plain = NULL;
	size_t evicted = 0;
	int error;

	(void)state;
	for (int i = 0; i < 25; i++) {
		snprintf(name, sizeof(name), "ct-%d", i);
		digest_of(name, d);
		token_of(i, tok);
		evicted += decrypt_cache_put(c, d, tok, 0);
		assert_true(decrypt_cache_bytes(c) <= 10 * per);
	}
	assert_int_equal(decrypt_cache_size(c), 10);
	assert_int_equal(evicted, 15);
	/* The newest ten are there, the oldest not. */
	for (int i = 0; i < 25; i++) {
		snprintf(name, sizeof(name), "ct-%d", i);
		digest_of(name, d);
		assert_int_equal(decrypt_cache_get(c, d, &plain, &error),
		    i >= 15);
		free(plain);
		plain = NULL;
	}
	decrypt_cache_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_miss_and_failure),
		cmocka_unit_test(test_lru_eviction),
		cmocka_unit_test(test_many_entries_bounded),
		cmocka_unit_test(test_non_token_kept_without_its_bytes),
		cmocka_unit_test(test_byte_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
