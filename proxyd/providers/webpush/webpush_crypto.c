/*
 * RFC 8291 encryption; see webpush_crypto.h. The steps follow RFC 8291
 * §3.3-3.4 (docs/push-providers.md §3.2), with its two HMAC chains
 * written as the HKDF-SHA256 calls they are:
 *
 *   ecdh_secret = ECDH(as_private, ua_public)            32 bytes (X)
 *   IKM   = HKDF(salt = auth, ecdh_secret,
 *                "WebPush: info" 0x00 ua_public as_public, 32)
 *   CEK   = HKDF(salt, IKM, "Content-Encoding: aes128gcm" 0x00, 16)
 *   NONCE = HKDF(salt, IKM, "Content-Encoding: nonce" 0x00, 12)
 *
 * One record, so the nonce is used as derived (record index 0). This is
 * not a hot path (one push, one ECDH and one key generation), so it uses
 * libcrypto's EVP_KDF HKDF as it is, unlike openpgp_crypto.c.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "webpush_crypto.h"
#include "xmalloc.h"

#define WEBPUSH_CRYPTO_CURVE		"prime256v1"
#define WEBPUSH_CRYPTO_ECDH_BYTES	32
#define WEBPUSH_CRYPTO_IKM_BYTES	32
#define WEBPUSH_CRYPTO_CEK_BYTES	16
#define WEBPUSH_CRYPTO_NONCE_BYTES	12
/* RFC 8188 §2: 0x02 ends the last record (0x01 would mean "more"). */
#define WEBPUSH_CRYPTO_DELIMITER_LAST	0x02
#define WEBPUSH_CRYPTO_GROUP_NAME_MAX	64

/* The info strings include their terminating NUL (RFC 8291 §3.4, RFC 8188
 * §2.2-2.3: "... || 0x00"), hence sizeof, not strlen. */
static const char webpush_crypto_key_label[] = "WebPush: info";
static const char webpush_crypto_cek_info[] = "Content-Encoding: aes128gcm";
static const char webpush_crypto_nonce_info[] = "Content-Encoding: nonce";

static bool
webpush_crypto_is_p256(EVP_PKEY *key)
{
	char name[WEBPUSH_CRYPTO_GROUP_NAME_MAX];
	size_t len = 0;

	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
	    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
	    name, sizeof(name), &len) != 1)
		return false;
	return OBJ_sn2nid(name) == NID_X9_62_prime256v1 ||
	    EC_curve_nist2nid(name) == NID_X9_62_prime256v1;
}

int
webpush_crypto_public_point(EVP_PKEY *key,
    uint8_t out[WEBPUSH_CRYPTO_POINT_BYTES], char err[ERR_LEN])
{
	BIGNUM *x = NULL, *y = NULL;
	int rc = -1;

	/* X and Y rather than the encoded public key: a SEC1 file may hold
	 * it compressed, and we always want the uncompressed form. */
	ERR_set_mark();
	if (!webpush_crypto_is_p256(key))
		err_set(err, "not an EC P-256 key");
	else if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) !=
	    1 ||
	    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1 ||
	    BN_bn2binpad(x, out + 1, WEBPUSH_CRYPTO_SCALAR_BYTES) !=
	    WEBPUSH_CRYPTO_SCALAR_BYTES ||
	    BN_bn2binpad(y, out + 1 + WEBPUSH_CRYPTO_SCALAR_BYTES,
	    WEBPUSH_CRYPTO_SCALAR_BYTES) != WEBPUSH_CRYPTO_SCALAR_BYTES)
		err_set(err, "the key has no P-256 public point");
	else {
		out[0] = POINT_CONVERSION_UNCOMPRESSED;
		rc = 0;
	}
	ERR_pop_to_mark();
	BN_free(x);
	BN_free(y);
	return rc;
}

/* An EVP_PKEY from the octets of a P-256 point (public key only), or
 * NULL. Hybrid encodings (0x06/0x07) are 65 bytes too: only 0x04 is the
 * form RFC 8291 §4 allows. OpenSSL refuses points off the curve on
 * import; EVP_PKEY_derive_set_peer checks the key again. */
static EVP_PKEY *
webpush_crypto_point_key(const uint8_t pt[WEBPUSH_CRYPTO_POINT_BYTES])
{
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *key = NULL;
	OSSL_PARAM params[3];

	if (pt[0] != POINT_CONVERSION_UNCOMPRESSED)
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_GROUP_NAME, (char *)WEBPUSH_CRYPTO_CURVE, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
	    (void *)pt, WEBPUSH_CRYPTO_POINT_BYTES);
	params[2] = OSSL_PARAM_construct_end();
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL)
		return NULL;
	if (EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		key = NULL;
	EVP_PKEY_CTX_free(ctx);
	return key;
}

/* The key pair of a given private scalar (tests only), its public point
 * in pub_out; NULL if the scalar is 0 or not below the group order. */
static EVP_PKEY *
webpush_crypto_scalar_key(const uint8_t d_bytes[WEBPUSH_CRYPTO_SCALAR_BYTES],
    uint8_t pub_out[WEBPUSH_CRYPTO_POINT_BYTES])
{
	EC_GROUP *g = NULL;
	EC_POINT *p = NULL;
	BIGNUM *d = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;

	if ((g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)) == NULL ||
	    (p = EC_POINT_new(g)) == NULL ||
	    (d = BN_secure_new()) == NULL ||
	    BN_bin2bn(d_bytes, WEBPUSH_CRYPTO_SCALAR_BYTES, d) == NULL ||
	    BN_is_zero(d) || BN_cmp(d, EC_GROUP_get0_order(g)) >= 0 ||
	    EC_POINT_mul(g, p, d, NULL, NULL, NULL) != 1 ||
	    EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, pub_out,
	    WEBPUSH_CRYPTO_POINT_BYTES, NULL) != WEBPUSH_CRYPTO_POINT_BYTES)
		goto out;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	    WEBPUSH_CRYPTO_CURVE, 0) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
	    pub_out, WEBPUSH_CRYPTO_POINT_BYTES) != 1 ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
		goto out;
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) != 1)
		key = NULL;
out:
	EVP_PKEY_CTX_free(ctx);
	/* d is a secure BIGNUM, so the builder put its copy in the secure
	 * heap, which OSSL_PARAM_free clears (OSSL_PARAM_clear_free is 3.2). */
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_clear_free(d);
	EC_POINT_free(p);
	EC_GROUP_free(g);
	return key;
}

static int
webpush_crypto_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
    size_t ikm_len, const void *info, size_t info_len, uint8_t *out,
    size_t out_len)
{
	EVP_KDF *kdf;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[5];
	int rc = -1;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
	    (void *)salt, salt_len);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)ikm, ikm_len);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
	    (void *)info, info_len);
	params[4] = OSSL_PARAM_construct_end();
	if ((kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL)) != NULL &&
	    (kctx = EVP_KDF_CTX_new(kdf)) != NULL &&
	    EVP_KDF_derive(kctx, out, out_len, params) == 1)
		rc = 0;
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* ECDH(as_key, ua_public) and the key schedule: CEK and NONCE. */
static int
webpush_crypto_keys(EVP_PKEY *as_key,
    const uint8_t as_public[WEBPUSH_CRYPTO_POINT_BYTES],
    const uint8_t ua_public[WEBPUSH_CRYPTO_POINT_BYTES],
    const uint8_t auth[WEBPUSH_CRYPTO_AUTH_BYTES],
    const uint8_t salt[WEBPUSH_CRYPTO_SALT_BYTES],
    uint8_t cek[WEBPUSH_CRYPTO_CEK_BYTES],
    uint8_t nonce[WEBPUSH_CRYPTO_NONCE_BYTES], char err[ERR_LEN])
{
	uint8_t secret[WEBPUSH_CRYPTO_ECDH_BYTES];
	uint8_t ikm[WEBPUSH_CRYPTO_IKM_BYTES];
	uint8_t info[sizeof(webpush_crypto_key_label) +
	    2 * WEBPUSH_CRYPTO_POINT_BYTES];
	size_t secret_len = sizeof(secret);
	EVP_PKEY *ua_key;
	EVP_PKEY_CTX *ctx = NULL;
	int rc = -1;

	if ((ua_key = webpush_crypto_point_key(ua_public)) == NULL) {
		err_set(err, "ua_public is not an uncompressed point on P-256");
		return -1;
	}
	/* EVP_PKEY_derive_set_peer validates the peer key (on the curve, not
	 * the point at infinity) before the exchange. */
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, as_key, NULL)) == NULL ||
	    EVP_PKEY_derive_init(ctx) != 1 ||
	    EVP_PKEY_derive_set_peer(ctx, ua_key) != 1 ||
	    EVP_PKEY_derive(ctx, secret, &secret_len) != 1 ||
	    secret_len != sizeof(secret)) {
		err_set(err, "ECDH with ua_public failed");
		goto out;
	}
	memcpy(info, webpush_crypto_key_label,
	    sizeof(webpush_crypto_key_label));
	memcpy(info + sizeof(webpush_crypto_key_label), ua_public,
	    WEBPUSH_CRYPTO_POINT_BYTES);
	memcpy(info + sizeof(webpush_crypto_key_label) +
	    WEBPUSH_CRYPTO_POINT_BYTES, as_public, WEBPUSH_CRYPTO_POINT_BYTES);
	if (webpush_crypto_hkdf(auth, WEBPUSH_CRYPTO_AUTH_BYTES, secret,
	    sizeof(secret), info, sizeof(info), ikm, sizeof(ikm)) < 0 ||
	    webpush_crypto_hkdf(salt, WEBPUSH_CRYPTO_SALT_BYTES, ikm,
	    sizeof(ikm), webpush_crypto_cek_info,
	    sizeof(webpush_crypto_cek_info), cek, WEBPUSH_CRYPTO_CEK_BYTES) <
	    0 || webpush_crypto_hkdf(salt, WEBPUSH_CRYPTO_SALT_BYTES, ikm,
	    sizeof(ikm), webpush_crypto_nonce_info,
	    sizeof(webpush_crypto_nonce_info), nonce,
	    WEBPUSH_CRYPTO_NONCE_BYTES) < 0) {
		err_set(err, "HKDF failed");
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(ikm, sizeof(ikm));
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(ua_key);
	return rc;
}

/* AES-128-GCM of msg | 0x02 into out (len + 1 + tag bytes). */
static int
webpush_crypto_seal(const uint8_t cek[WEBPUSH_CRYPTO_CEK_BYTES],
    const uint8_t nonce[WEBPUSH_CRYPTO_NONCE_BYTES], const void *msg,
    size_t len, uint8_t *out)
{
	static const uint8_t delim = WEBPUSH_CRYPTO_DELIMITER_LAST;
	EVP_CIPHER_CTX *c;
	int n, total = 0, rc = -1;

	if ((c = EVP_CIPHER_CTX_new()) == NULL)
		return -1;
	/* GCM's default IV length is the 12 bytes of NONCE. */
	if (EVP_EncryptInit_ex2(c, EVP_aes_128_gcm(), cek, nonce, NULL) != 1)
		goto out;
	if (len > 0) {
		if (EVP_EncryptUpdate(c, out, &n, msg, (int)len) != 1)
			goto out;
		total += n;
	}
	if (EVP_EncryptUpdate(c, out + total, &n, &delim, 1) != 1)
		goto out;
	total += n;
	if (EVP_EncryptFinal_ex(c, out + total, &n) != 1)
		goto out;
	total += n;
	if ((size_t)total != len + 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG,
	    WEBPUSH_CRYPTO_TAG_BYTES, out + total) != 1)
		goto out;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(c);
	return rc;
}

static int
webpush_crypto_body(EVP_PKEY *as_key,
    const uint8_t as_public[WEBPUSH_CRYPTO_POINT_BYTES],
    const uint8_t ua_public[WEBPUSH_CRYPTO_POINT_BYTES],
    const uint8_t auth[WEBPUSH_CRYPTO_AUTH_BYTES],
    const uint8_t salt[WEBPUSH_CRYPTO_SALT_BYTES], uint32_t rs,
    const void *msg, size_t len, uint8_t **body_out, size_t *len_out,
    char err[ERR_LEN])
{
	uint8_t cek[WEBPUSH_CRYPTO_CEK_BYTES];
	uint8_t nonce[WEBPUSH_CRYPTO_NONCE_BYTES];
	uint8_t *body, *p;
	size_t n;
	int rc = -1;

	if (webpush_crypto_keys(as_key, as_public, ua_public, auth, salt, cek,
	    nonce, err) < 0)
		goto out;
	n = WEBPUSH_CRYPTO_HEADER_BYTES + len + 1 + WEBPUSH_CRYPTO_TAG_BYTES;
	p = body = xmalloc(n);
	memcpy(p, salt, WEBPUSH_CRYPTO_SALT_BYTES);
	p += WEBPUSH_CRYPTO_SALT_BYTES;
	*p++ = (uint8_t)(rs >> 24);
	*p++ = (uint8_t)(rs >> 16);
	*p++ = (uint8_t)(rs >> 8);
	*p++ = (uint8_t)rs;
	*p++ = WEBPUSH_CRYPTO_POINT_BYTES;
	memcpy(p, as_public, WEBPUSH_CRYPTO_POINT_BYTES);
	p += WEBPUSH_CRYPTO_POINT_BYTES;
	if (webpush_crypto_seal(cek, nonce, msg, len, p) < 0) {
		err_set(err, "AES-128-GCM failed");
		free(body);
		goto out;
	}
	*body_out = body;
	*len_out = n;
	rc = 0;
out:
	OPENSSL_cleanse(cek, sizeof(cek));
	OPENSSL_cleanse(nonce, sizeof(nonce));
	return rc;
}

static int
webpush_crypto_check_len(size_t len, uint32_t rs, char err[ERR_LEN])
{
	if (len > WEBPUSH_CRYPTO_MESSAGE_MAX_BYTES) {
		err_set(err, "message of %zu bytes, at most %d in one record",
		    len, WEBPUSH_CRYPTO_MESSAGE_MAX_BYTES);
		return -1;
	}
	if (rs < WEBPUSH_CRYPTO_RECORD_SIZE_MIN ||
	    rs < len + 1 + WEBPUSH_CRYPTO_TAG_BYTES) {
		err_set(err, "record size %u too small for a message of %zu "
		    "bytes", rs, len);
		return -1;
	}
	return 0;
}

int
webpush_crypto_encrypt(const uint8_t ua_public[WEBPUSH_CRYPTO_POINT_BYTES],
    const uint8_t auth[WEBPUSH_CRYPTO_AUTH_BYTES], const void *msg,
    size_t len, uint8_t **body_out, size_t *len_out, char err[ERR_LEN])
{
	uint8_t salt[WEBPUSH_CRYPTO_SALT_BYTES];
	uint8_t as_public[WEBPUSH_CRYPTO_POINT_BYTES];
	EVP_PKEY *as_key = NULL;
	int rc = -1;

	*body_out = NULL;
	*len_out = 0;
	if (webpush_crypto_check_len(len, WEBPUSH_CRYPTO_RECORD_SIZE, err) < 0)
		return -1;
	ERR_set_mark();
	if (RAND_bytes(salt, sizeof(salt)) != 1 ||
	    (as_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL) {
		err_set(err, "no randomness for the salt or ephemeral key");
		goto out;
	}
	if (webpush_crypto_public_point(as_key, as_public, err) < 0)
		goto out;
	rc = webpush_crypto_body(as_key, as_public, ua_public, auth, salt,
	    WEBPUSH_CRYPTO_RECORD_SIZE, msg, len, body_out, len_out, err);
out:
	ERR_pop_to_mark();
	EVP_PKEY_free(as_key);		/* clears the private scalar */
	return rc;
}

int
webpush_crypto_encrypt_fixed(
    const uint8_t ua_public[WEBPUSH_CRYPTO_POINT_BYTES],
    const uint8_t auth[WEBPUSH_CRYPTO_AUTH_BYTES],
    const uint8_t as_private[WEBPUSH_CRYPTO_SCALAR_BYTES],
    const uint8_t salt[WEBPUSH_CRYPTO_SALT_BYTES], uint32_t rs,
    const void *msg, size_t len, uint8_t **body_out, size_t *len_out,
    char err[ERR_LEN])
{
	uint8_t as_public[WEBPUSH_CRYPTO_POINT_BYTES];
	EVP_PKEY *as_key;
	int rc = -1;

	*body_out = NULL;
	*len_out = 0;
	if (webpush_crypto_check_len(len, rs, err) < 0)
		return -1;
	ERR_set_mark();
	if ((as_key = webpush_crypto_scalar_key(as_private, as_public)) ==
	    NULL)
		err_set(err, "as_private is not a P-256 private key");
	else
		rc = webpush_crypto_body(as_key, as_public, ua_public, auth,
		    salt, rs, msg, len, body_out, len_out, err);
	ERR_pop_to_mark();
	EVP_PKEY_free(as_key);
	return rc;
}
