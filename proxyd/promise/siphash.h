/*
 * SipHash-2-4 with 128-bit output (Aumasson and Bernstein; the bytes of
 * the reference siphash.c), for keyed digests of device tokens: the
 * debounce windows' index and the owed pushes' table and database key.
 * Keyed, so that nobody who does not know the key can choose tokens that
 * collide. Written out rather than taken from OpenSSL's EVP_MAC
 * "SIPHASH", which allocates and fetches per message; the debounce unit
 * test checks it against OpenSSL.
 */
#ifndef SIPHASH_H
#define SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN		16
#define SIPHASH_DIGEST_LEN	16

struct siphash_key {
	uint64_t	k0, k1;
};

/* The key from 16 bytes, as the reference reads them (little-endian). */
void	siphash_key_set(struct siphash_key *, const uint8_t key[SIPHASH_KEY_LEN]);
void	siphash128(const struct siphash_key *, const void *in, size_t len,
	    uint8_t out[SIPHASH_DIGEST_LEN]);
/* The first 8 bytes of a digest as a number (for hash table slots). */
uint64_t siphash_digest_u64(const uint8_t digest[SIPHASH_DIGEST_LEN]);

#endif
