/*
 * A bounded cache from ciphertext digest to decrypted token. Relays send
 * the same `openpgp:` ciphertext for a device every time, so after the
 * first request a token costs a SHA-256 instead of an X25519 agreement.
 * Failures are cached too (a relay retrying an undecryptable token gets
 * its 410 at once). Least recently used entries are evicted; lookups and
 * inserts are O(1). Plaintexts are secrets: wiped when evicted or freed.
 *
 * One thread (the loop) uses a cache.
 */
#ifndef DECRYPT_CACHE_H
#define DECRYPT_CACHE_H

#include <stddef.h>

#define DECRYPT_CACHE_DIGEST_LEN	32

struct decrypt_cache;

struct decrypt_cache *decrypt_cache_new(size_t max_entries);
void	decrypt_cache_free(struct decrypt_cache *);
/* The key of a ciphertext: its SHA-256 (with the cache's fetched
 * digest, not OpenSSL's per-call lookup). */
void	decrypt_cache_digest(struct decrypt_cache *, const void *ciphertext,
	    size_t len, unsigned char out[DECRYPT_CACHE_DIGEST_LEN]);
/* 1 if cached: then *plain_out is a copy the caller frees (NULL for a
 * cached failure, with its error code in *error_out); 0 if not cached. */
int	decrypt_cache_get(struct decrypt_cache *,
	    const unsigned char digest[DECRYPT_CACHE_DIGEST_LEN],
	    char **plain_out, int *error_out);
/* Remember a result (plain copied; NULL with an error code for a
 * failure), evicting the least recently used entry when full. */
void	decrypt_cache_put(struct decrypt_cache *,
	    const unsigned char digest[DECRYPT_CACHE_DIGEST_LEN],
	    const char *plain, int error);
size_t	decrypt_cache_size(const struct decrypt_cache *);

#endif
