/*
 * Symmetrically Encrypted and Integrity Protected Data (RFC 9580 section
 * 5.13). v2: HKDF-SHA256(session key, salt, info d2 02 cipher aead c)
 * gives the message key and an IV of nonce size - 8 octets; chunk i is
 * opened with nonce IV || i (8 octets big-endian) and AD = the five info
 * octets, then the final tag with nonce IV || number of chunks and AD ||
 * total plaintext length. v1: AES-CFB with a zero IV, a 16+2 octet random
 * prefix, and an MDC packet (d3 14 SHA-1) closing the plaintext.
 *
 * Everything is decrypted into a private buffer and handed out only after
 * every tag (or the MDC) verified; on failure the buffer is cleansed.
 */
#include <stdlib.h>

#include <openssl/crypto.h>

#include "openpgp_private.h"
#include "xmalloc.h"

#define SEIPD_SALT_BYTES	32
#define SEIPD_INFO_BYTES	5
#define SEIPD_CHUNK_OCTET_MAX	16	/* 4 MiB chunks (section 5.13.2) */
#define SEIPD_MDC_BYTES		22	/* d3 14 + SHA-1 */
#define SEIPD_SHA1_BYTES	20

enum openpgp_error
openpgp_seipd_check(const uint8_t *body, size_t len, uint8_t *version_out,
    char err[ERR_LEN])
{
	if (len < 1) {
		err_set(err, "empty SEIPD packet");
		return OPENPGP_ERR_MALFORMED;
	}
	*version_out = body[0];
	if (body[0] == 1)
		return OPENPGP_OK;
	if (body[0] != 2) {
		err_set(err, "SEIPD version %u not supported", body[0]);
		return OPENPGP_ERR_UNSUPPORTED;
	}
	if (len < 4 + SEIPD_SALT_BYTES + OPENPGP_TAG_BYTES) {
		err_set(err, "SEIPDv2 packet too short");
		return OPENPGP_ERR_MALFORMED;
	}
	if (openpgp_crypto_cipher_key_len(body[1]) == 0) {
		err_set(err, "SEIPDv2 cipher %u not supported", body[1]);
		return OPENPGP_ERR_UNSUPPORTED;
	}
	if (openpgp_aead_nonce_len(body[2]) == 0) {
		err_set(err, "SEIPDv2 AEAD algorithm %u not supported",
		    body[2]);
		return OPENPGP_ERR_UNSUPPORTED;
	}
	if (body[3] > SEIPD_CHUNK_OCTET_MAX) {
		err_set(err, "SEIPDv2 chunk size octet %u above %u", body[3],
		    SEIPD_CHUNK_OCTET_MAX);
		return OPENPGP_ERR_MALFORMED;
	}
	return OPENPGP_OK;
}

/* Open every chunk of region (chunks of chunk + 16 octets), then the
 * final tag. *plain_len_out is the plaintext length in plain. */
static enum openpgp_error
seipd_open_chunks(struct openpgp_aead *a, const uint8_t *iv, size_t iv_len,
    const uint8_t info[SEIPD_INFO_BYTES], size_t chunk,
    const uint8_t *region, size_t region_len,
    const uint8_t final_tag[OPENPGP_TAG_BYTES], uint8_t *plain,
    size_t *plain_len_out, char err[ERR_LEN])
{
	uint8_t nonce[16], ad[SEIPD_INFO_BYTES + 8], none[1];
	size_t off = 0, total = 0, piece;
	uint64_t index = 0;
	enum openpgp_error e;

	memcpy(nonce, iv, iv_len);
	while (off < region_len) {
		piece = region_len - off;
		if (piece > chunk + OPENPGP_TAG_BYTES)
			piece = chunk + OPENPGP_TAG_BYTES;
		if (piece < OPENPGP_TAG_BYTES) {
			err_set(err, "SEIPDv2 chunk %llu shorter than its tag",
			    (unsigned long long)index);
			return OPENPGP_ERR_MALFORMED;
		}
		openpgp_put_be64(nonce + iv_len, index);
		e = openpgp_aead_open(a, nonce, info, SEIPD_INFO_BYTES,
		    region + off, piece - OPENPGP_TAG_BYTES,
		    region + off + piece - OPENPGP_TAG_BYTES, plain + total);
		if (e != OPENPGP_OK) {
			err_set(err, "SEIPDv2 chunk %llu: %s",
			    (unsigned long long)index,
			    e == OPENPGP_ERR_AUTH ?
			    "authentication tag mismatch" :
			    "libcrypto failure");
			return e;
		}
		total += piece - OPENPGP_TAG_BYTES;
		off += piece;
		index++;
	}
	openpgp_put_be64(nonce + iv_len, index);
	memcpy(ad, info, SEIPD_INFO_BYTES);
	openpgp_put_be64(ad + SEIPD_INFO_BYTES, total);
	e = openpgp_aead_open(a, nonce, ad, sizeof(ad), none, 0, final_tag,
	    none);
	if (e != OPENPGP_OK) {
		err_set(err, "SEIPDv2 final tag: %s", e == OPENPGP_ERR_AUTH ?
		    "authentication tag mismatch" : "libcrypto failure");
		return e;
	}
	*plain_len_out = total;
	return OPENPGP_OK;
}

static enum openpgp_error
seipd_v2(const struct openpgp_algs *algs, const uint8_t *body, size_t len,
    const struct openpgp_session_key *sk, struct buf *plain_out,
    char err[ERR_LEN])
{
	uint8_t info[SEIPD_INFO_BYTES], okm[OPENPGP_SESSION_KEY_MAX_BYTES + 8];
	const uint8_t *salt = body + 4, *region;
	uint8_t cipher = body[1], aead = body[2], c = body[3], *plain = NULL;
	size_t key_len = openpgp_crypto_cipher_key_len(cipher), region_len;
	size_t iv_len = openpgp_aead_nonce_len(aead) - 8, plain_len = 0;
	struct openpgp_aead *a = NULL;
	enum openpgp_error e;

	if (sk->len != key_len) {
		err_set(err, "session key of %zu octets for a cipher with "
		    "%zu-octet keys", sk->len, key_len);
		return OPENPGP_ERR_MALFORMED;
	}
	info[0] = 0xc0 | OPENPGP_TAG_SEIPD;	/* d2: the header octet */
	memcpy(info + 1, body, 4);
	if (openpgp_crypto_hkdf(algs, salt, SEIPD_SALT_BYTES, sk->key,
	    sk->len, info, sizeof(info), okm, key_len + iv_len) < 0 ||
	    (a = openpgp_aead_new(algs, aead, cipher, okm)) == NULL) {
		OPENSSL_cleanse(okm, sizeof(okm));
		err_set(err, "libcrypto failure deriving the message key");
		return OPENPGP_ERR_INTERNAL;
	}
	region = body + 4 + SEIPD_SALT_BYTES;
	region_len = len - 4 - SEIPD_SALT_BYTES - OPENPGP_TAG_BYTES;
	plain = xmalloc(region_len + 1);
	e = seipd_open_chunks(a, okm + key_len, iv_len, info,
	    (size_t)1 << (c + 6), region, region_len, region + region_len,
	    plain, &plain_len, err);
	if (e == OPENPGP_OK)
		buf_append(plain_out, plain, plain_len);
	OPENSSL_cleanse(plain, region_len + 1);
	free(plain);
	OPENSSL_cleanse(okm, sizeof(okm));
	openpgp_aead_free(a);
	return e;
}

static enum openpgp_error
seipd_v1(const struct openpgp_algs *algs, const uint8_t *body, size_t len,
    const struct openpgp_session_key *sk, struct buf *plain_out,
    char err[ERR_LEN])
{
	const size_t prefix = OPENPGP_AES_BLOCK_BYTES + 2;
	uint8_t *plain, sha1[SEIPD_SHA1_BYTES];
	size_t key_len = openpgp_crypto_cipher_key_len(sk->cipher), n, hlen = 0;
	const void *parts[1];
	size_t lens[1];
	enum openpgp_error e = OPENPGP_ERR_AUTH;

	if (key_len == 0) {
		err_set(err, "SEIPDv1 cipher %u not supported", sk->cipher);
		return OPENPGP_ERR_UNSUPPORTED;
	}
	if (sk->len != key_len) {
		err_set(err, "session key of %zu octets for a cipher with "
		    "%zu-octet keys", sk->len, key_len);
		return OPENPGP_ERR_MALFORMED;
	}
	n = len - 1;
	if (n < prefix + SEIPD_MDC_BYTES) {
		err_set(err, "SEIPDv1 packet too short");
		return OPENPGP_ERR_MALFORMED;
	}
	plain = xmalloc(n);
	if (openpgp_crypto_cfb_decrypt(algs, sk->cipher, sk->key, body + 1, n,
	    plain) < 0) {
		err_set(err, "libcrypto failure in CFB decryption");
		e = OPENPGP_ERR_INTERNAL;
		goto out;
	}
	/* The MDC hashes the prefix, the data and its own header d3 14. The
	 * prefix's repeated octets are not checked (no quick-check oracle,
	 * section 5.13.1). */
	parts[0] = plain;
	lens[0] = n - SEIPD_SHA1_BYTES;
	if (openpgp_crypto_digest(algs, 2, parts, lens, 1, sha1, &hlen) < 0 ||
	    hlen != SEIPD_SHA1_BYTES) {
		err_set(err, "libcrypto failure in SHA-1");
		e = OPENPGP_ERR_INTERNAL;
		goto out;
	}
	if ((plain[n - SEIPD_MDC_BYTES] ^ 0xd3) |
	    (plain[n - SEIPD_MDC_BYTES + 1] ^ 0x14) |
	    CRYPTO_memcmp(sha1, plain + n - SEIPD_SHA1_BYTES,
	    SEIPD_SHA1_BYTES)) {
		err_set(err, "SEIPDv1 modification detection code mismatch");
		goto out;
	}
	buf_append(plain_out, plain + prefix, n - prefix - SEIPD_MDC_BYTES);
	e = OPENPGP_OK;
out:
	OPENSSL_cleanse(plain, n);
	free(plain);
	return e;
}

enum openpgp_error
openpgp_seipd_decrypt(const struct openpgp_algs *algs, const uint8_t *body,
    size_t len, const struct openpgp_session_key *sk, struct buf *plain_out,
    char err[ERR_LEN])
{
	uint8_t version;
	enum openpgp_error e;

	if ((e = openpgp_seipd_check(body, len, &version, err)) != OPENPGP_OK)
		return e;
	if (version == 2)
		return seipd_v2(algs, body, len, sk, plain_out, err);
	return seipd_v1(algs, body, len, sk, plain_out, err);
}
