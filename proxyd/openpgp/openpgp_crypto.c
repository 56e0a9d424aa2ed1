/*
 * Thin wrappers over libcrypto for the primitives RFC 9580 decryption
 * needs besides the AEAD modes: X25519 (RFC 7748), HKDF-SHA256 (RFC 5869),
 * hashes, AES key unwrap (RFC 3394) and the CFB mode of SEIPDv1, all on
 * the algorithms a keyring fetched once (struct openpgp_algs, set up and
 * torn down here too). Each per-token function returns 0 or -1, only
 * reads the keyring and allocates only short-lived libcrypto contexts, so
 * they are safe to call from several threads at once.
 *
 * HKDF (with its HMAC) and the key unwrap are written out here over
 * SHA-256 and AES-ECB rather than taken from EVP_KDF "HKDF" and the
 * AES-WRAP ciphers: in OpenSSL 3.0 the HKDF provider looks up HMAC and
 * SHA-256 by name on every call (HKDF_Extract calls the one-shot HMAC()),
 * EVP_MAC's HMAC sets up three digest contexts per key, and AES-WRAP runs
 * the table-based software AES with a fresh decryption key schedule
 * instead of AES-NI. Together they were a seventh of a token's time; each
 * is a few lines of its RFC, and every test vector goes through them.
 */
#include <stdio.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include "openpgp_private.h"

#define CRYPTO_SHA256_BYTES	32
#define CRYPTO_SHA256_BLOCK_BYTES	64
#define CRYPTO_HMAC_IPAD	0x36
#define CRYPTO_HMAC_OPAD	0x5c
#define CRYPTO_HKDF_MAX_BYTES	(255 * CRYPTO_SHA256_BYTES)
#define CRYPTO_WRAP_HALF_BYTES	8	/* RFC 3394 works on 64-bit halves */
#define CRYPTO_WRAP_MAX_BYTES	64

int
openpgp_crypto_algs_fetch(struct openpgp_algs *algs)
{
	static const char *const modes[] = { "ECB", "CFB", "CTR", "OCB",
	    "GCM" };
	EVP_CIPHER **tables[] = { algs->ecb, algs->cfb, algs->ctr, algs->ocb,
	    algs->gcm };
	char name[32];

	algs->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
	algs->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	algs->sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
	algs->sha512 = EVP_MD_fetch(NULL, "SHA512", NULL);
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
		for (int i = 0; i < OPENPGP_AES_SIZES; i++) {
			snprintf(name, sizeof(name), "AES-%d-%s", 128 + 64 * i,
			    modes[m]);
			tables[m][i] = EVP_CIPHER_fetch(NULL, name, NULL);
		}
	algs->cmac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_CMAC, NULL);
	if ((algs->x25519 = EVP_PKEY_CTX_new_from_name(NULL, "X25519",
	    NULL)) == NULL)
		return -1;
	return 0;
}

void
openpgp_crypto_algs_free(struct openpgp_algs *algs)
{
	EVP_MD_free(algs->sha1);
	EVP_MD_free(algs->sha256);
	EVP_MD_free(algs->sha384);
	EVP_MD_free(algs->sha512);
	for (int i = 0; i < OPENPGP_AES_SIZES; i++) {
		EVP_CIPHER_free(algs->ecb[i]);
		EVP_CIPHER_free(algs->cfb[i]);
		EVP_CIPHER_free(algs->ctr[i]);
		EVP_CIPHER_free(algs->ocb[i]);
		EVP_CIPHER_free(algs->gcm[i]);
	}
	EVP_MAC_free(algs->cmac);
	EVP_PKEY_CTX_free(algs->x25519);
	memset(algs, 0, sizeof(*algs));
}

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

/* EVP_PKEY_CTX_new and EVP_PKEY_derive_init look the key management and
 * the X25519 exchange up by name; done here once per key, what each token
 * pays is a copy (EVP_PKEY_CTX_dup), which only allocates and takes
 * references. */
EVP_PKEY_CTX *
openpgp_crypto_x25519_prepare(EVP_PKEY *secret)
{
	EVP_PKEY_CTX *ctx;

	if ((ctx = EVP_PKEY_CTX_new(secret, NULL)) == NULL)
		return NULL;
	if (EVP_PKEY_derive_init(ctx) <= 0) {
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int
openpgp_crypto_x25519(const struct openpgp_algs *algs,
    const EVP_PKEY_CTX *derive, const uint8_t peer[OPENPGP_X25519_BYTES],
    uint8_t shared_out[OPENPGP_X25519_BYTES])
{
	EVP_PKEY_CTX *kctx = NULL, *ctx = NULL;
	EVP_PKEY *pub = NULL;
	OSSL_PARAM params[2];
	size_t len = OPENPGP_X25519_BYTES;
	int rc = -1;

	/* The peer key as EVP_PKEY_new_raw_public_key makes it, minus its
	 * lookup of the X25519 key management by name. */
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
	    (void *)peer, OPENPGP_X25519_BYTES);
	params[1] = OSSL_PARAM_construct_end();
	if ((kctx = EVP_PKEY_CTX_dup(algs->x25519)) == NULL ||
	    EVP_PKEY_fromdata_init(kctx) <= 0 ||
	    EVP_PKEY_fromdata(kctx, &pub, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto out;
	/* No peer validation (the 0): for X25519 it only checks that a
	 * 32-octet public key is present (ecx_validate in OpenSSL's
	 * ecx_kmgmt.c), which fromdata just made sure of, and it would cost
	 * a context and a lookup. A small-order peer is still refused: the
	 * derive fails on an all-zero result. */
	if ((ctx = EVP_PKEY_CTX_dup(derive)) != NULL &&
	    EVP_PKEY_derive_set_peer_ex(ctx, pub, 0) > 0 &&
	    EVP_PKEY_derive(ctx, shared_out, &len) > 0 &&
	    len == OPENPGP_X25519_BYTES)
		rc = 0;
out:
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_CTX_free(kctx);
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

/* HMAC-SHA256 (RFC 2104) of the concatenated parts into out, which may
 * be one of the parts: H((K ^ opad) || H((K ^ ipad) || text)), K padded
 * with zeros to the 64-octet block, or hashed first when longer. */
static int
crypto_hmac_sha256(EVP_MD_CTX *ctx, const EVP_MD *sha256, const uint8_t *key,
    size_t key_len, const uint8_t *const parts[], const size_t lens[],
    size_t nparts, uint8_t out[CRYPTO_SHA256_BYTES])
{
	uint8_t pad[CRYPTO_SHA256_BLOCK_BYTES], hashed[CRYPTO_SHA256_BYTES];
	unsigned int n = 0;
	int rc = -1;

	if (key_len > sizeof(pad)) {
		if (EVP_DigestInit_ex2(ctx, sha256, NULL) <= 0 ||
		    EVP_DigestUpdate(ctx, key, key_len) <= 0 ||
		    EVP_DigestFinal_ex(ctx, hashed, &n) <= 0)
			goto out;
		key = hashed;
		key_len = sizeof(hashed);
	}
	memset(pad, CRYPTO_HMAC_IPAD, sizeof(pad));
	for (size_t i = 0; i < key_len; i++)
		pad[i] ^= key[i];
	if (EVP_DigestInit_ex2(ctx, sha256, NULL) <= 0 ||
	    EVP_DigestUpdate(ctx, pad, sizeof(pad)) <= 0)
		goto out;
	for (size_t i = 0; i < nparts; i++)
		if (EVP_DigestUpdate(ctx, parts[i], lens[i]) <= 0)
			goto out;
	if (EVP_DigestFinal_ex(ctx, out, &n) <= 0 || n != CRYPTO_SHA256_BYTES)
		goto out;
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] ^= CRYPTO_HMAC_IPAD ^ CRYPTO_HMAC_OPAD;
	if (EVP_DigestInit_ex2(ctx, sha256, NULL) <= 0 ||
	    EVP_DigestUpdate(ctx, pad, sizeof(pad)) <= 0 ||
	    EVP_DigestUpdate(ctx, out, CRYPTO_SHA256_BYTES) <= 0 ||
	    EVP_DigestFinal_ex(ctx, out, &n) <= 0 || n != CRYPTO_SHA256_BYTES)
		goto out;
	rc = 0;
out:
	OPENSSL_cleanse(pad, sizeof(pad));
	OPENSSL_cleanse(hashed, sizeof(hashed));
	return rc;
}

int
openpgp_crypto_hkdf(const struct openpgp_algs *algs, const uint8_t *salt,
    size_t salt_len, const uint8_t *ikm, size_t ikm_len, const uint8_t *info,
    size_t info_len, uint8_t *out, size_t out_len)
{
	static const uint8_t zero_salt[CRYPTO_SHA256_BYTES];
	uint8_t prk[CRYPTO_SHA256_BYTES], t[CRYPTO_SHA256_BYTES], i;
	const uint8_t *parts[3] = { ikm, info, &i };
	size_t lens[3] = { ikm_len, info_len, 1 };
	size_t done = 0, n;
	EVP_MD_CTX *ctx;
	int rc = -1;

	if (algs->sha256 == NULL || out_len > CRYPTO_HKDF_MAX_BYTES ||
	    (ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	/* Extract: PRK = HMAC(salt, IKM), no salt being HashLen zeros. */
	if (salt == NULL) {
		salt = zero_salt;
		salt_len = sizeof(zero_salt);
	}
	if (crypto_hmac_sha256(ctx, algs->sha256, salt, salt_len, parts, lens,
	    1, prk) < 0)
		goto out;
	/* Expand: T(i) = HMAC(PRK, T(i-1) || info || i) with T(0) empty,
	 * for i = 1, 2...; OKM is T(1) || T(2)... cut to out_len. */
	parts[0] = t;
	lens[0] = 0;
	for (i = 1; done < out_len; i++) {
		if (crypto_hmac_sha256(ctx, algs->sha256, prk, sizeof(prk),
		    parts, lens, 3, t) < 0)
			goto out;
		lens[0] = sizeof(t);
		n = out_len - done < sizeof(t) ? out_len - done : sizeof(t);
		memcpy(out + done, t, n);
		done += n;
	}
	rc = 0;
out:
	OPENSSL_cleanse(prk, sizeof(prk));
	OPENSSL_cleanse(t, sizeof(t));
	if (rc < 0)
		OPENSSL_cleanse(out, out_len);
	/* Frees the SHA-256 state cleansed (the provider's freectx). */
	EVP_MD_CTX_free(ctx);
	return rc;
}

static const EVP_MD *
crypto_md(const struct openpgp_algs *algs, uint8_t hash)
{
	switch (hash) {
	case 2:				return algs->sha1;
	case OPENPGP_HASH_SHA256:	return algs->sha256;
	case OPENPGP_HASH_SHA384:	return algs->sha384;
	case OPENPGP_HASH_SHA512:	return algs->sha512;
	default:			return NULL;
	}
}

int
openpgp_crypto_digest(const struct openpgp_algs *algs, uint8_t hash,
    const void *parts[], const size_t lens[], size_t nparts, uint8_t *out,
    size_t *out_len)
{
	const EVP_MD *md = crypto_md(algs, hash);
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
crypto_ecb_by_key_len(const struct openpgp_algs *algs, size_t key_len)
{
	switch (key_len) {
	case 16:	return algs->ecb[0];
	case 24:	return algs->ecb[1];
	case 32:	return algs->ecb[2];
	default:	return NULL;
	}
}

/*
 * RFC 3394 section 2.2.2, index form: with A = C[0] and R[1..n] = C[1..n],
 * for j = 5..0 and i = n..1, B = AES-1(K, (A ^ t) || R[i]) with t = n*j+i
 * (64-bit big-endian), A = MSB64(B), R[i] = LSB64(B); the key is R[1..n]
 * if A is the default IV A6A6A6A6A6A6A6A6 (2.2.3.1). The same result as
 * OpenSSL's CRYPTO_128_unwrap, including the constant-time IV check and
 * the cleansed output on failure.
 */
int
openpgp_crypto_unwrap(const struct openpgp_algs *algs, const uint8_t *kek,
    size_t kek_len, const uint8_t *in, size_t in_len, uint8_t *out,
    size_t *out_len)
{
	static const uint8_t default_iv[CRYPTO_WRAP_HALF_BYTES] = {
		0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6
	};
	const EVP_CIPHER *ecb = crypto_ecb_by_key_len(algs, kek_len);
	uint8_t a[CRYPTO_WRAP_HALF_BYTES], b[OPENPGP_AES_BLOCK_BYTES];
	uint8_t t[CRYPTO_WRAP_HALF_BYTES], *r;
	EVP_CIPHER_CTX *ctx;
	size_t n;
	int len = 0, rc = -1;

	/* At least two 64-bit blocks of wrapped key plus the integrity
	 * block; the session keys here are at most 32 octets, ECDH adds a
	 * checksum and padding, so 64 octets bound it. */
	if (ecb == NULL || in_len < 3 * CRYPTO_WRAP_HALF_BYTES ||
	    in_len % CRYPTO_WRAP_HALF_BYTES != 0 ||
	    in_len > CRYPTO_WRAP_MAX_BYTES)
		return -1;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return -1;
	/* ECB without padding: every 16-octet update is one block out. */
	if (EVP_DecryptInit_ex2(ctx, ecb, kek, NULL, NULL) <= 0 ||
	    EVP_CIPHER_CTX_set_padding(ctx, 0) <= 0)
		goto out;
	n = in_len / CRYPTO_WRAP_HALF_BYTES - 1;
	memcpy(a, in, sizeof(a));
	memcpy(out, in + CRYPTO_WRAP_HALF_BYTES, in_len - sizeof(a));
	for (size_t j = 6; j-- > 0;)
		for (size_t i = n; i >= 1; i--) {
			r = out + CRYPTO_WRAP_HALF_BYTES * (i - 1);
			openpgp_put_be64(t, (uint64_t)(n * j + i));
			for (size_t k = 0; k < sizeof(a); k++)
				b[k] = a[k] ^ t[k];
			memcpy(b + sizeof(a), r, CRYPTO_WRAP_HALF_BYTES);
			if (EVP_DecryptUpdate(ctx, b, &len, b,
			    (int)sizeof(b)) <= 0 || len != (int)sizeof(b))
				goto out;
			memcpy(a, b, sizeof(a));
			memcpy(r, b + sizeof(a), CRYPTO_WRAP_HALF_BYTES);
		}
	if (CRYPTO_memcmp(a, default_iv, sizeof(a)) != 0)
		goto out;
	*out_len = in_len - sizeof(a);
	rc = 0;
out:
	if (rc < 0)
		OPENSSL_cleanse(out, in_len);
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int
openpgp_crypto_cfb_decrypt(const struct openpgp_algs *algs, uint8_t cipher,
    const uint8_t *key, const uint8_t *in, size_t len, uint8_t *out)
{
	static const uint8_t zero_iv[OPENPGP_AES_BLOCK_BYTES];
	int slot = openpgp_aes_slot(cipher);
	const EVP_CIPHER *c = slot < 0 ? NULL : algs->cfb[slot];
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
