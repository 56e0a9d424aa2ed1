/* Unit tests of proxyd/providers/jwt.c: ES256 and RS256 tokens verified with
 * OpenSSL, the raw r || s signature form, and key-type checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base64.h"
#include "jwt.h"

static EVP_PKEY *
gen_key(const char *type)
{
	if (strcmp(type, "EC") == 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
}

/* Split "a.b.c" into three decoded parts; asserts the form. */
static void
split(const char *jwt, struct buf parts[3], size_t *signed_len)
{
	const char *dot1 = strchr(jwt, '.'), *dot2;

	assert_non_null(dot1);
	dot2 = strchr(dot1 + 1, '.');
	assert_non_null(dot2);
	assert_null(strchr(dot2 + 1, '.'));
	assert_null(strchr(jwt, '='));	/* no padding anywhere */
	for (int i = 0; i < 3; i++)
		buf_init(&parts[i]);
	assert_int_equal(base64url_decode(&parts[0], jwt,
	    (size_t)(dot1 - jwt)), 0);
	assert_int_equal(base64url_decode(&parts[1], dot1 + 1,
	    (size_t)(dot2 - dot1 - 1)), 0);
	assert_int_equal(base64url_decode(&parts[2], dot2 + 1,
	    strlen(dot2 + 1)), 0);
	*signed_len = (size_t)(dot2 - jwt);
}

static int
verify(EVP_PKEY *key, const char *data, size_t len, const unsigned char *sig,
    size_t siglen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1
	    && EVP_DigestVerify(md, sig, siglen, (const unsigned char *)data,
	    len) == 1;

	EVP_MD_CTX_free(md);
	return ok;
}

static void
test_es256(void **state)
{
	const char *hdr = "{\"alg\":\"ES256\",\"kid\":\"ABC123DEFG\"}";
	const char *claims = "{\"iss\":\"DEF123GHIJ\",\"iat\":1700000000}";
	EVP_PKEY *key = gen_key("EC");
	struct buf parts[3];
	char err[ERR_LEN], *jwt;
	unsigned char *der = NULL;
	ECDSA_SIG *sig;
	BIGNUM *r, *s;
	size_t signed_len;
	int derlen;

	(void)state;
	jwt = jwt_sign(JWT_ES256, key, hdr, claims, err);
	assert_non_null(jwt);
	split(jwt, parts, &signed_len);
	assert_string_equal(parts[0].data, hdr);
	assert_string_equal(parts[1].data, claims);
	/* JWS wants raw r || s, 64 bytes; OpenSSL verifies DER. */
	assert_int_equal(parts[2].len, 64);
	sig = ECDSA_SIG_new();
	r = BN_bin2bn((unsigned char *)parts[2].data, 32, NULL);
	s = BN_bin2bn((unsigned char *)parts[2].data + 32, 32, NULL);
	ECDSA_SIG_set0(sig, r, s);
	derlen = i2d_ECDSA_SIG(sig, &der);
	assert_true(derlen > 0);
	assert_true(verify(key, jwt, signed_len, der, (size_t)derlen));
	/* A changed claim no longer verifies. */
	jwt[signed_len - 2] ^= 1;
	assert_false(verify(key, jwt, signed_len, der, (size_t)derlen));
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	for (int i = 0; i < 3; i++)
		buf_clear(&parts[i]);
	free(jwt);
	EVP_PKEY_free(key);
}

static void
test_rs256(void **state)
{
	EVP_PKEY *key = gen_key("RSA");
	struct buf parts[3];
	char err[ERR_LEN], *jwt;
	size_t signed_len;

	(void)state;
	jwt = jwt_sign(JWT_RS256, key, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
	    "{\"aud\":\"x\"}", err);
	assert_non_null(jwt);
	split(jwt, parts, &signed_len);
	assert_int_equal(parts[2].len, 256);
	assert_true(verify(key, jwt, signed_len,
	    (unsigned char *)parts[2].data, parts[2].len));
	for (int i = 0; i < 3; i++)
		buf_clear(&parts[i]);
	free(jwt);
	EVP_PKEY_free(key);
}

static void
test_key_type_and_pem(void **state)
{
	EVP_PKEY *ec = gen_key("EC"), *loaded;
	char err[ERR_LEN], *pem, *jwt;
	BIO *bio = BIO_new(BIO_s_mem());
	long n;

	(void)state;
	assert_null(jwt_sign(JWT_RS256, ec, "{}", "{}", err));
	assert_non_null(strstr(err, "RS256"));
	/* A .p8 file is PKCS#8 PEM. */
	assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, ec, NULL, NULL, 0,
	    NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &pem);
	loaded = jwt_load_key_pem(pem, (size_t)n, err);
	assert_non_null(loaded);
	jwt = jwt_sign(JWT_ES256, loaded, "{}", "{}", err);
	assert_non_null(jwt);
	free(jwt);
	assert_null(jwt_load_key_pem("garbage", 7, err));
	EVP_PKEY_free(loaded);
	BIO_free(bio);
	EVP_PKEY_free(ec);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_es256),
		cmocka_unit_test(test_rs256),
		cmocka_unit_test(test_key_type_and_pem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
