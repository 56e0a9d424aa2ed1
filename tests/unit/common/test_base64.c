/* Unit tests of common/base64.c: RFC 4648 §10 vectors in both dialects,
 * strict rejection of malformed input, and round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"

static const struct {
	const char	*plain;
	const char	*std;
	const char	*url;
} rfc4648[] = {
	{ "", "", "" },
	{ "f", "Zg==", "Zg" },
	{ "fo", "Zm8=", "Zm8" },
	{ "foo", "Zm9v", "Zm9v" },
	{ "foob", "Zm9vYg==", "Zm9vYg" },
	{ "fooba", "Zm9vYmE=", "Zm9vYmE" },
	{ "foobar", "Zm9vYmFy", "Zm9vYmFy" },
};

static void
test_rfc4648_vectors(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b);
	for (size_t i = 0; i < sizeof(rfc4648) / sizeof(*rfc4648); i++) {
		size_t n = strlen(rfc4648[i].plain);

		buf_reset(&b);
		base64_encode(&b, rfc4648[i].plain, n);
		if (strcmp(b.data ? b.data : "", rfc4648[i].std) != 0)
			fail_msg("row %zu: encode %s", i, b.data);
		buf_reset(&b);
		base64url_encode(&b, rfc4648[i].plain, n);
		if (strcmp(b.data ? b.data : "", rfc4648[i].url) != 0)
			fail_msg("row %zu: url-encode %s", i, b.data);
		buf_reset(&b);
		assert_int_equal(base64_decode(&b, rfc4648[i].std,
		    strlen(rfc4648[i].std)), 0);
		assert_int_equal(b.len, n);
		assert_memory_equal(b.data ? b.data : "", rfc4648[i].plain, n);
		buf_reset(&b);
		assert_int_equal(base64url_decode(&b, rfc4648[i].url,
		    strlen(rfc4648[i].url)), 0);
		assert_int_equal(b.len, n);
	}
	buf_clear(&b);
}

static void
test_url_alphabet(void **state)
{
	static const unsigned char bytes[] = { 0xfb, 0xff, 0xbf };
	struct buf b;

	(void)state;
	buf_init(&b);
	base64_encode(&b, bytes, 3);
	assert_string_equal(b.data, "+/+/");
	buf_reset(&b);
	base64url_encode(&b, bytes, 3);
	assert_string_equal(b.data, "-_-_");
	buf_reset(&b);
	assert_int_equal(base64url_decode(&b, "-_-_", 4), 0);
	assert_memory_equal(b.data, bytes, 3);
	buf_reset(&b);
	/* Each dialect refuses the other's alphabet. */
	assert_int_equal(base64url_decode(&b, "+/+/", 4), -1);
	assert_int_equal(base64_decode(&b, "-_-_", 4), -1);
	buf_clear(&b);
}

static void
test_rejects(void **state)
{
	static const char *const bad[] = {
		"Zg=", "Zg", "Z===", "Zm9v\n", " Zm9v", "Zm=v", "Zm9vYg=a",
		"Zm9v!A==", "====",
	};
	struct buf b;

	(void)state;
	buf_init(&b);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (base64_decode(&b, bad[i], strlen(bad[i])) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
	assert_int_equal(base64url_decode(&b, "Z", 1), -1);
	assert_int_equal(base64url_decode(&b, "Zm9v.g", 6), -1);
	buf_clear(&b);
}

static void
test_round_trip_all_lengths(void **state)
{
	unsigned char data[300];
	struct buf enc, dec;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 37 + 11);
	buf_init(&enc);
	buf_init(&dec);
	for (size_t n = 0; n <= sizeof(data); n++) {
		buf_reset(&enc);
		buf_reset(&dec);
		base64_encode(&enc, data, n);
		assert_int_equal(base64_decode(&dec, enc.data ? enc.data : "",
		    enc.len), 0);
		assert_int_equal(dec.len, n);
		assert_memory_equal(dec.data ? dec.data : "", data, n);
		buf_reset(&enc);
		buf_reset(&dec);
		base64url_encode(&enc, data, n);
		assert_int_equal(base64url_decode(&dec, enc.data ? enc.data :
		    "", enc.len), 0);
		assert_int_equal(dec.len, n);
	}
	buf_clear(&enc);
	buf_clear(&dec);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_vectors),
		cmocka_unit_test(test_url_alphabet),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_round_trip_all_lengths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
