/*
 * Thin wrappers over libcrypto for the primitives RFC 9580 decryption
 * needs besides the AEAD modes: X25519 (RFC 7748), HKDF-SHA256 (RFC 5869),
 * hashes, AES key unwrap (RFC 3394) and the CFB mode of SEIPDv1. Each
 * returns 0 or -1 and allocates only short-lived libcrypto contexts, so
 * they are safe to call from several threads at once.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "openpgp_private.h"

size_t
openpgp_crypto_cipher_key_len(uint8_t cipher)
{
	switch (cipher) {
	case OPENPGP_SYM_AES128:	return 16;
	case OPENPGP_SYM_AES192:	return 24;
	case OPENPGP_SYM_AES256:	return 32;
	default:			return 0;
	}
}

int
openpgp_crypto_x25519(EVP_PKEY *secret,
    const uint8_t peer[OPENPGP_X25519_BYTES],
    uint8_t shared_out[OPENPGP_X25519_BYTES])
{
	EVP_PKEY *pub;
	EVP_PKEY_CTX *ctx = NULL;
	size_t len = OPENPGP_X25519_BYTES;
	int rc = -1;

	pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer,
	    OPENPGP_X25519_BYTES);
	if (pub == NULL)
		return -1;
	/* The derive fails on an all-zero result (a small-order peer). */
	if ((ctx = EVP_PKEY_CTX_new(secret, NULL)) != NULL &&
	    EVP_PKEY_derive_init(ctx) > 0 &&
	    EVP_PKEY_derive_set_peer(ctx, pub) > 0 &&
	    EVP_PKEY_derive(ctx, shared_out, &len) > 0 &&
	    len == OPENPGP_X25519_BYTES)
		rc = 0;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pub);
	if (rc < 0)
		OPENSSL_cleanse(shared_out, OPENPGP_X25519_BYTES);
	return rc;
}

int
openpgp_crypto_x25519_public(EVP_PKEY *secret,
    uint8_t pub_out[OPENPGP_X25519_BYTES])
{
	size_t len = OPENPGP_X25519_BYTES;

	if (EVP_PKEY_get_raw_public_key(secret, pub_out, &len) <= 0 ||
	    len != OPENPGP_X25519_BYTES)
		return -1;
	return 0;
}

int
openpgp_crypto_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
    size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *out,
    size_t out_len)
{
	EVP_KDF *kdf;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[5], *p = params;
	int rc = -1;

	if ((kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL)) == NULL)
		return -1;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)ikm, ikm_len);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
	    (void *)info, info_len);
	if (salt != NULL)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
		    (void *)salt, salt_len);
	*p = OSSL_PARAM_construct_end();
	if ((kctx = EVP_KDF_CTX_new(kdf)) != NULL &&
	    EVP_KDF_derive(kctx, out, out_len, params) > 0)
		rc = 0;
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

static const EVP_MD *
crypto_md(uint8_t hash)
{
	switch (hash) {
	case 2:				return EVP_sha1();
	case OPENPGP_HASH_SHA256:	return EVP_sha256();
	case OPENPGP_HASH_SHA384:	return EVP_sha384();
	case OPENPGP_HASH_SHA512:	return EVP_sha512();
	default:			return NULL;
	}
}

int
openpgp_crypto_digest(uint8_t hash, const void *parts[], const size_t lens[],
    size_t nparts, uint8_t *out, size_t *out_len)
{
	const EVP_MD *md = crypto_md(hash);
	EVP_MD_CTX *ctx;
	unsigned int n = 0;
	int rc = -1;

	if (md == NULL || (ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (EVP_DigestInit_ex(ctx, md, NULL) <= 0)
		goto out;
	for (size_t i = 0; i < nparts; i++)
		if (EVP_DigestUpdate(ctx, parts[i], lens[i]) <= 0)
			goto out;
	if (EVP_DigestFinal_ex(ctx, out, &n) <= 0)
		goto out;
	*out_len = n;
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

static const EVP_CIPHER *
crypto_wrap_cipher(size_t kek_len)
{
	switch (kek_len) {
	case 16:	return EVP_aes_128_wrap();
	case 24:	return EVP_aes_192_wrap();
	case 32:	return EVP_aes_256_wrap();
	default:	return NULL;
	}
}

int
openpgp_crypto_unwrap(const uint8_t *kek, size_t kek_len, const uint8_t *in,
    size_t in_len, uint8_t *out, size_t *out_len)
{
	const EVP_CIPHER *cipher = crypto_wrap_cipher(kek_len);
	EVP_CIPHER_CTX *ctx;
	int n = 0, fin = 0, rc = -1;

	/* RFC 3394: at least two 64-bit blocks of wrapped key plus the
	 * integrity block; the session keys here are at most 32 octets,
	 * ECDH adds a checksum and padding, so 64 octets bound it. */
	if (cipher == NULL || in_len < 24 || in_len % 8 != 0 || in_len > 64)
		return -1;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return -1;
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_DecryptInit_ex(ctx, cipher, NULL, kek, NULL) > 0 &&
	    EVP_DecryptUpdate(ctx, out, &n, in, (int)in_len) > 0 &&
	    EVP_DecryptFinal_ex(ctx, out + n, &fin) > 0 &&
	    (size_t)(n + fin) == in_len - 8) {
		*out_len = (size_t)(n + fin);
		rc = 0;
	} else
		OPENSSL_cleanse(out, in_len);
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

static const EVP_CIPHER *
crypto_cfb_cipher(uint8_t cipher)
{
	switch (cipher) {
	case OPENPGP_SYM_AES128:	return EVP_aes_128_cfb128();
	case OPENPGP_SYM_AES192:	return EVP_aes_192_cfb128();
	case OPENPGP_SYM_AES256:	return EVP_aes_256_cfb128();
	default:			return NULL;
	}
}

int
openpgp_crypto_cfb_decrypt(uint8_t cipher, const uint8_t *key,
    const uint8_t *in, size_t len, uint8_t *out)
{
	static const uint8_t zero_iv[OPENPGP_AES_BLOCK_BYTES];
	const EVP_CIPHER *c = crypto_cfb_cipher(cipher);
	EVP_CIPHER_CTX *ctx;
	int n = 0, fin = 0, rc = -1;

	if (c == NULL || len > OPENPGP_TOKEN_MAX_BYTES)
		return -1;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return -1;
	if (EVP_DecryptInit_ex(ctx, c, NULL, key, zero_iv) > 0 &&
	    EVP_DecryptUpdate(ctx, out, &n, in, (int)len) > 0 &&
	    EVP_DecryptFinal_ex(ctx, out + n, &fin) > 0 &&
	    (size_t)(n + fin) == len)
		rc = 0;
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}
