/*
 * The user agent's side of RFC 8291, for the Web Push unit tests: the
 * RFC 8291 Appendix A key pair and auth secret, and decryption of an
 * aes128gcm body as a browser does it. Written from RFC 8291 §3.4 and
 * RFC 8188 §2 with its own key handling, not by calling
 * webpush_crypto.c, so a shared mistake would have to be made twice.
 * Header-only (static inline) so each test binary takes what it uses.
 */
#ifndef WEBPUSH_UA_H
#define WEBPUSH_UA_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>

#include "base64.h"
#include "buf.h"

/* RFC 8291 Appendix A (docs/push-providers.md §3.3), base64url. */
#define UA_PRIVATE_B64	"q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
#define UA_PUBLIC_B64 \
	"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4" \
	"bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
#define UA_AUTH_B64	"BTBZMqHH6r4Tts7J_aSIgg"
#define AS_PRIVATE_B64	"yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
#define AS_PUBLIC_B64 \
	"BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmY" \
	"WAmS6TlzAC8wEqKK6PBru3jl7A8"
#define RFC_SALT_B64	"DGv6ra1nlYgDCS1FRnbzlw"

/* Decode base64url into out, which must be exactly want bytes. */
static inline int
ua_b64(const char *s, uint8_t *out, size_t want)
{
	struct buf b;
	int rc = -1;

	buf_init(&b);
	if (base64url_decode(&b, s, strlen(s)) == 0 && b.len == want) {
		memcpy(out, b.data, want);
		rc = 0;
	}
	buf_clear(&b);
	return rc;
}

/* An EC P-256 EVP_PKEY from raw parts: pub (65 bytes) and, if priv is
 * not NULL, the private scalar (32 bytes). */
static inline EVP_PKEY *
ua_p256_key(const uint8_t *priv, const uint8_t *pub)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *key = NULL;
	BIGNUM *d = priv ? BN_bin2bn(priv, 32, NULL) : NULL;

	OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	    "prime256v1", 0);
	OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
	    65);
	if (d != NULL)
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d);
	params = OSSL_PARAM_BLD_to_param(bld);
	if (EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &key,
	    d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) != 1)
		key = NULL;
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_clear_free(d);
	return key;
}

static inline int
ua_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
    size_t ikm_len, const void *info, size_t info_len, uint8_t *out,
    size_t out_len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *k = EVP_KDF_CTX_new(kdf);
	OSSL_PARAM p[] = {
		OSSL_PARAM_utf8_string("digest", "SHA256", 0),
		OSSL_PARAM_octet_string("salt", (void *)salt, salt_len),
		OSSL_PARAM_octet_string("key", (void *)ikm, ikm_len),
		OSSL_PARAM_octet_string("info", (void *)info, info_len),
		OSSL_PARAM_END
	};
	int rc = EVP_KDF_derive(k, out, out_len, p) == 1 ? 0 : -1;

	EVP_KDF_CTX_free(k);
	EVP_KDF_free(kdf);
	return rc;
}

/*
 * Decrypt an aes128gcm body with the UA's private key and auth secret,
 * as RFC 8291 §3.4 and RFC 8188 §2 say a receiver does: one record, the
 * last (delimiter 0x02), zero padding stripped. The plaintext (NUL
 * added; caller frees) and its length, or NULL. rs_out: the header's rs.
 */
static inline char *
ua_decrypt(const uint8_t *body, size_t len, const uint8_t ua_priv[32],
    const uint8_t ua_pub[65], const uint8_t auth[16], size_t *len_out,
    uint32_t *rs_out)
{
	static const char key_label[] = "WebPush: info";	/* with NUL */
	static const char cek_info[] = "Content-Encoding: aes128gcm";
	static const char nonce_info[] = "Content-Encoding: nonce";
	uint8_t secret[32], ikm[32], cek[16], nonce[12];
	uint8_t info[sizeof(key_label) + 130];
	const uint8_t *salt = body, *as_pub = body + 21, *rec = body + 86;
	size_t rec_len, n = 32;
	EVP_PKEY *ua = NULL, *as = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_CIPHER_CTX *c = NULL;
	char *plain = NULL;
	int outl = 0, fin = 0;
	uint32_t rs;

	if (len < 86 + 17 || body[20] != 65)
		return NULL;
	rs = (uint32_t)body[16] << 24 | (uint32_t)body[17] << 16 |
	    (uint32_t)body[18] << 8 | body[19];
	rec_len = len - 86;
	if (rs < 18 || rec_len > rs)	/* one record only */
		return NULL;
	if ((ua = ua_p256_key(ua_priv, ua_pub)) == NULL ||
	    (as = ua_p256_key(NULL, as_pub)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new(ua, NULL)) == NULL ||
	    EVP_PKEY_derive_init(ctx) != 1 ||
	    EVP_PKEY_derive_set_peer(ctx, as) != 1 ||
	    EVP_PKEY_derive(ctx, secret, &n) != 1 || n != 32)
		goto out;
	memcpy(info, key_label, sizeof(key_label));
	memcpy(info + sizeof(key_label), ua_pub, 65);
	memcpy(info + sizeof(key_label) + 65, as_pub, 65);
	if (ua_hkdf(auth, 16, secret, 32, info, sizeof(info), ikm, 32) < 0 ||
	    ua_hkdf(salt, 16, ikm, 32, cek_info, sizeof(cek_info), cek, 16) <
	    0 || ua_hkdf(salt, 16, ikm, 32, nonce_info, sizeof(nonce_info),
	    nonce, 12) < 0)
		goto out;
	plain = malloc(rec_len);
	c = EVP_CIPHER_CTX_new();
	if (EVP_DecryptInit_ex2(c, EVP_aes_128_gcm(), cek, nonce, NULL) != 1 ||
	    EVP_DecryptUpdate(c, (uint8_t *)plain, &outl, rec,
	    (int)(rec_len - 16)) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16,
	    (void *)(rec + rec_len - 16)) != 1 ||
	    EVP_DecryptFinal_ex(c, (uint8_t *)plain + outl, &fin) != 1)
		goto fail;
	outl += fin;
	while (outl > 0 && plain[outl - 1] == 0)	/* padding */
		outl--;
	if (outl == 0 || plain[outl - 1] != 2)		/* last record */
		goto fail;
	plain[--outl] = '\0';
	*len_out = (size_t)outl;
	if (rs_out != NULL)
		*rs_out = rs;
	goto out;
fail:
	free(plain);
	plain = NULL;
out:
	EVP_CIPHER_CTX_free(c);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(ua);
	EVP_PKEY_free(as);
	return plain;
}

#endif
