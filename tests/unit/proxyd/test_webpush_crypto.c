/* Unit tests of proxyd/providers/webpush/webpush_crypto.c: RFC 8291 Appendix A byte for
 * byte, the notifiers-shaped "ping" vector, fresh keys decrypted back by
 * the user agent's side (webpush_ua.h), and refusals: sizes, record
 * sizes, UA keys off the curve or in other encodings, bad scalars. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "webpush_crypto.h"
#include "webpush_ua.h"

#define RFC_PLAINTEXT	"When I grow up, I want to be a watermelon"
/* docs/push-providers.md §3.3: the RFC's body (rs 4096, 144 bytes) and the
 * "ping" body with rs 21 (107 bytes), base64url. */
#define RFC_BODY_B64 \
	"DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy" \
	"27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95b" \
	"Qpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxs" \
	"j_Qulcy4a-fN"
#define PING_BODY_B64 \
	"DGv6ra1nlYgDCS1FRnbzlwAAABVBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy" \
	"27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_VltVS" \
	"YNUyTD4YwQ4tDR_WJDLw0xw"

struct vectors {
	uint8_t	ua_priv[32], ua_pub[65], auth[16];
	uint8_t	as_priv[32], as_pub[65];
	uint8_t	salt[16];
};

static void
load(struct vectors *v)
{
	assert_int_equal(ua_b64(UA_PRIVATE_B64, v->ua_priv, 32), 0);
	assert_int_equal(ua_b64(UA_PUBLIC_B64, v->ua_pub, 65), 0);
	assert_int_equal(ua_b64(UA_AUTH_B64, v->auth, 16), 0);
	assert_int_equal(ua_b64(AS_PRIVATE_B64, v->as_priv, 32), 0);
	assert_int_equal(ua_b64(AS_PUBLIC_B64, v->as_pub, 65), 0);
	assert_int_equal(ua_b64(RFC_SALT_B64, v->salt, 16), 0);
}

static void
expect_body(const char *b64, const uint8_t *got, size_t got_len)
{
	struct buf want;

	buf_init(&want);
	assert_int_equal(base64url_decode(&want, b64, strlen(b64)), 0);
	assert_int_equal(got_len, want.len);
	assert_memory_equal(got, want.data, want.len);
	buf_clear(&want);
}

static void
test_rfc8291_appendix_a(void **state)
{
	struct vectors v;
	uint8_t *body;
	size_t len, plen;
	char err[ERR_LEN], *plain;

	(void)state;
	load(&v);
	assert_int_equal(webpush_crypto_encrypt_fixed(v.ua_pub, v.auth,
	    v.as_priv, v.salt, 4096, RFC_PLAINTEXT, strlen(RFC_PLAINTEXT),
	    &body, &len, err), 0);
	assert_int_equal(len, 144);
	expect_body(RFC_BODY_B64, body, len);
	/* The keyid is the as_public of the appendix. */
	assert_memory_equal(body + 21, v.as_pub, 65);
	plain = ua_decrypt(body, len, v.ua_priv, v.ua_pub, v.auth, &plen,
	    NULL);
	assert_non_null(plain);
	assert_string_equal(plain, RFC_PLAINTEXT);
	free(plain);
	free(body);
}

static void
test_ping_rs21_vector(void **state)
{
	struct vectors v;
	uint8_t *body;
	size_t len;
	char err[ERR_LEN];

	(void)state;
	load(&v);
	assert_int_equal(webpush_crypto_encrypt_fixed(v.ua_pub, v.auth,
	    v.as_priv, v.salt, 21, "ping", 4, &body, &len, err), 0);
	assert_int_equal(len, 107);
	expect_body(PING_BODY_B64, body, len);
	free(body);
	/* One byte less and the record no longer fits. */
	assert_int_equal(webpush_crypto_encrypt_fixed(v.ua_pub, v.auth,
	    v.as_priv, v.salt, 20, "ping", 4, &body, &len, err), -1);
	assert_null(body);
	assert_non_null(strstr(err, "record size 20"));
}

/* Fresh keys: the UA decrypts; salt and ephemeral key change each time;
 * the header is salt | 4096 | 65 | a point on the curve. */
static void
test_random_round_trip(void **state)
{
	struct vectors v;
	uint8_t *b1, *b2;
	size_t l1, l2, plen;
	uint32_t rs;
	char err[ERR_LEN], *plain;

	(void)state;
	load(&v);
	assert_int_equal(webpush_crypto_encrypt(v.ua_pub, v.auth, "ping", 4,
	    &b1, &l1, err), 0);
	assert_int_equal(webpush_crypto_encrypt(v.ua_pub, v.auth, "ping", 4,
	    &b2, &l2, err), 0);
	assert_int_equal(l1, 107);
	assert_int_equal(l2, 107);
	assert_memory_not_equal(b1, b2, 16);		/* salt */
	assert_memory_not_equal(b1 + 21, b2 + 21, 65);	/* ephemeral */
	assert_int_equal(b1[20], 65);
	assert_int_equal(b1[21], 0x04);
	plain = ua_decrypt(b1, l1, v.ua_priv, v.ua_pub, v.auth, &plen, &rs);
	assert_non_null(plain);
	assert_int_equal(rs, WEBPUSH_CRYPTO_RECORD_SIZE);
	assert_int_equal(plen, 4);
	assert_string_equal(plain, "ping");
	free(plain);
	/* Another auth secret, or a flipped ciphertext bit: no plaintext. */
	v.auth[0] ^= 1;
	assert_null(ua_decrypt(b2, l2, v.ua_priv, v.ua_pub, v.auth, &plen,
	    NULL));
	v.auth[0] ^= 1;
	b2[90] ^= 0x40;
	assert_null(ua_decrypt(b2, l2, v.ua_priv, v.ua_pub, v.auth, &plen,
	    NULL));
	free(b1);
	free(b2);
}

/* The largest message makes a 4096-byte body; one more byte is refused.
 * The empty message is one delimiter in a record. */
static void
test_sizes(void **state)
{
	struct vectors v;
	uint8_t *body;
	size_t len, plen;
	char err[ERR_LEN], *msg, *plain;

	(void)state;
	load(&v);
	msg = malloc(WEBPUSH_CRYPTO_MESSAGE_MAX_BYTES + 1);
	memset(msg, 'x', WEBPUSH_CRYPTO_MESSAGE_MAX_BYTES + 1);
	assert_int_equal(WEBPUSH_CRYPTO_MESSAGE_MAX_BYTES, 3993);
	assert_int_equal(webpush_crypto_encrypt(v.ua_pub, v.auth, msg,
	    WEBPUSH_CRYPTO_MESSAGE_MAX_BYTES, &body, &len, err), 0);
	assert_int_equal(len, WEBPUSH_CRYPTO_BODY_MAX_BYTES);
	plain = ua_decrypt(body, len, v.ua_priv, v.ua_pub, v.auth, &plen,
	    NULL);
	assert_non_null(plain);
	assert_int_equal(plen, WEBPUSH_CRYPTO_MESSAGE_MAX_BYTES);
	free(plain);
	free(body);
	assert_int_equal(webpush_crypto_encrypt(v.ua_pub, v.auth, msg,
	    WEBPUSH_CRYPTO_MESSAGE_MAX_BYTES + 1, &body, &len, err), -1);
	assert_null(body);
	assert_int_equal(len, 0);
	assert_non_null(strstr(err, "at most 3993"));
	free(msg);

	assert_int_equal(webpush_crypto_encrypt(v.ua_pub, v.auth, NULL, 0,
	    &body, &len, err), 0);
	assert_int_equal(len, 86 + 1 + 16);
	free(body);
	/* RFC 8188's smallest rs fits the empty message, 17 does not. */
	assert_int_equal(webpush_crypto_encrypt_fixed(v.ua_pub, v.auth,
	    v.as_priv, v.salt, 18, NULL, 0, &body, &len, err), 0);
	free(body);
	assert_int_equal(webpush_crypto_encrypt_fixed(v.ua_pub, v.auth,
	    v.as_priv, v.salt, 17, NULL, 0, &body, &len, err), -1);
}

static void
expect_ua_refused(const uint8_t ua[65], const char *row)
{
	uint8_t auth[16] = { 0 }, *body = (uint8_t *)1;
	size_t len = 1;
	char err[ERR_LEN] = "";

	if (webpush_crypto_encrypt(ua, auth, "ping", 4, &body, &len, err) !=
	    -1 || body != NULL || len != 0 ||
	    strstr(err, "ua_public") == NULL)
		fail_msg("row %s: accepted or wrong error \"%s\"", row, err);
}

/* Points that are not an uncompressed P-256 point are refused before any
 * ECDH: off the curve, all zero (infinity has no affine form), the
 * compressed and hybrid prefixes, and coordinates >= p. */
static void
test_bad_ua_keys(void **state)
{
	struct vectors v;
	uint8_t ua[65];

	(void)state;
	load(&v);
	memcpy(ua, v.ua_pub, 65);
	ua[64] ^= 1;
	expect_ua_refused(ua, "y-flipped");
	memset(ua, 0, 65);
	expect_ua_refused(ua, "zero");
	ua[0] = 0x04;
	expect_ua_refused(ua, "04-zero");
	memcpy(ua, v.ua_pub, 65);
	ua[0] = 0x02;
	expect_ua_refused(ua, "prefix-02");
	/* Hybrid form: 0x06 | 0x07 by the parity of y; OpenSSL would
	 * accept the right one, RFC 8291 §4 does not. */
	ua[0] = 0x06;
	expect_ua_refused(ua, "hybrid-06");
	ua[0] = 0x07;
	expect_ua_refused(ua, "hybrid-07");
	memset(ua, 0xff, 65);
	ua[0] = 0x04;
	expect_ua_refused(ua, "coordinates-ff");
}

/* Fixed scalars must be in [1, n-1]; public_point wants P-256. */
static void
test_bad_scalars_and_curves(void **state)
{
	struct vectors v;
	uint8_t d[32], *body, pt[65];
	size_t len;
	char err[ERR_LEN];
	EVP_PKEY *p384, *p256;

	(void)state;
	load(&v);
	memset(d, 0, sizeof(d));
	assert_int_equal(webpush_crypto_encrypt_fixed(v.ua_pub, v.auth, d,
	    v.salt, 4096, "ping", 4, &body, &len, err), -1);
	assert_non_null(strstr(err, "as_private"));
	memset(d, 0xff, sizeof(d));		/* above the group order */
	assert_int_equal(webpush_crypto_encrypt_fixed(v.ua_pub, v.auth, d,
	    v.salt, 4096, "ping", 4, &body, &len, err), -1);

	p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	assert_int_equal(webpush_crypto_public_point(p384, pt, err), -1);
	assert_non_null(strstr(err, "P-256"));
	EVP_PKEY_free(p384);
	p256 = ua_p256_key(v.ua_priv, v.ua_pub);
	assert_int_equal(webpush_crypto_public_point(p256, pt, err), 0);
	assert_memory_equal(pt, v.ua_pub, 65);
	EVP_PKEY_free(p256);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc8291_appendix_a),
		cmocka_unit_test(test_ping_rs21_vector),
		cmocka_unit_test(test_random_round_trip),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_bad_ua_keys),
		cmocka_unit_test(test_bad_scalars_and_curves),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
