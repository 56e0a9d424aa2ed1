/*
 * Web Push message encryption (RFC 8291) in the aes128gcm content coding
 * (RFC 8188): what a push service relays to the browser or UnifiedPush
 * distributor without being able to read it. One message is one record;
 * the result is the whole HTTP body, header included:
 *
 *   salt(16) | rs(uint32 BE) | idlen(1) = 65 | as_public(65) | record
 *   record = AES-128-GCM(CEK, NONCE, message | 0x02) | tag(16)
 *
 * Keys come from an ECDH between a fresh P-256 key pair ("as", the
 * application server's) and the subscription's ua_public, mixed with the
 * subscription's 16-byte auth secret and a fresh 16-byte salt through
 * HKDF-SHA256 (docs/push-providers.md §3.2). Pure computation: no I/O, never
 * logs, thread-safe; every intermediate secret is wiped before return.
 */
#ifndef WEBPUSH_CRYPTO_H
#define WEBPUSH_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "err.h"

/* Uncompressed P-256 point: 0x04 | X(32) | Y(32). */
#define WEBPUSH_CRYPTO_POINT_BYTES	65
#define WEBPUSH_CRYPTO_SCALAR_BYTES	32
#define WEBPUSH_CRYPTO_AUTH_BYTES	16
#define WEBPUSH_CRYPTO_SALT_BYTES	16
#define WEBPUSH_CRYPTO_TAG_BYTES	16
/* RFC 8188 §2.1: salt, rs, idlen and the keyid (as_public, RFC 8291 §4). */
#define WEBPUSH_CRYPTO_HEADER_BYTES \
	(WEBPUSH_CRYPTO_SALT_BYTES + 4 + 1 + WEBPUSH_CRYPTO_POINT_BYTES)
/* RFC 8030 §7.2: a push service must accept bodies of 4096 bytes; more
 * may be refused (413), so that is the most we make. */
#define WEBPUSH_CRYPTO_BODY_MAX_BYTES	4096
/* 3993: the body limit less header, padding delimiter and tag. */
#define WEBPUSH_CRYPTO_MESSAGE_MAX_BYTES (WEBPUSH_CRYPTO_BODY_MAX_BYTES - \
	    WEBPUSH_CRYPTO_HEADER_BYTES - 1 - WEBPUSH_CRYPTO_TAG_BYTES)
/* The rs we announce: RFC 8291 §4 wants it greater than the one record
 * (message + delimiter + tag), which 4096 is for every message we accept;
 * RFC 8291's own example uses it too. */
#define WEBPUSH_CRYPTO_RECORD_SIZE	4096
/* RFC 8188 §2.1: the smallest rs, a tag and one octet. */
#define WEBPUSH_CRYPTO_RECORD_SIZE_MIN	18

/*
 * Encrypt msg[0..len) to the subscription (ua_public: an uncompressed
 * point on P-256; auth: its secret) with a fresh ephemeral key and salt.
 * 0 and *body_out (caller frees; not secret) of *len_out bytes, or -1
 * with the reason in err: len over WEBPUSH_CRYPTO_MESSAGE_MAX_BYTES,
 * ua_public not a point on the curve, or a libcrypto failure.
 */
int	webpush_crypto_encrypt(
	    const uint8_t ua_public[WEBPUSH_CRYPTO_POINT_BYTES],
	    const uint8_t auth[WEBPUSH_CRYPTO_AUTH_BYTES], const void *msg,
	    size_t len, uint8_t **body_out, size_t *len_out,
	    char err[ERR_LEN]);

/*
 * For tests: the same with the ephemeral private key (a P-256 scalar,
 * big-endian), the salt and rs given, so that known vectors (RFC 8291
 * Appendix A; docs/push-providers.md §3.3) come out byte for byte. rs may be
 * as small as RFC 8188 allows (the record just fits, as notifiers' rs 21
 * for "ping"); the body limit still applies. Never use a fixed key or
 * salt for real messages: the pair must be fresh per message.
 */
int	webpush_crypto_encrypt_fixed(
	    const uint8_t ua_public[WEBPUSH_CRYPTO_POINT_BYTES],
	    const uint8_t auth[WEBPUSH_CRYPTO_AUTH_BYTES],
	    const uint8_t as_private[WEBPUSH_CRYPTO_SCALAR_BYTES],
	    const uint8_t salt[WEBPUSH_CRYPTO_SALT_BYTES], uint32_t rs,
	    const void *msg, size_t len, uint8_t **body_out, size_t *len_out,
	    char err[ERR_LEN]);

/*
 * The public half of an EC P-256 key as an uncompressed point, whatever
 * form the key was loaded in (VAPID's k= and the ephemeral keyid). 0, or
 * -1 and err if the key is not P-256.
 */
int	webpush_crypto_public_point(EVP_PKEY *key,
	    uint8_t out[WEBPUSH_CRYPTO_POINT_BYTES], char err[ERR_LEN]);

#endif
