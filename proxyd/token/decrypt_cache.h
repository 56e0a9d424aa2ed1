/*
 * A bounded cache from ciphertext digest to decrypted token. Relays send
 * the same `openpgp:` ciphertext for a device every time, so after the
 * first request a token costs a SHA-256 instead of an X25519 agreement.
 * Failures are cached too (a relay retrying an undecryptable token gets
 * its 410 at once). Least recently used entries are evicted; lookups and
 * inserts are O(1). Plaintexts are secrets: wiped when evicted or freed.
 *
 * Anybody can make a ciphertext (the key is public), so what an entry may
 * hold is bounded twice: only a plaintext that parses as a token
 * (token_parse, at most TOKEN_MAX_BYTES) is kept; any other plaintext is
 * remembered as a small negative entry without it. And the cache is
 * bounded by the bytes its entries hold as well as by their count.
 *
 * One thread (the loop) uses a cache.
 */
#ifndef DECRYPT_CACHE_H
#define DECRYPT_CACHE_H

#include <stddef.h>

#define DECRYPT_CACHE_DIGEST_LEN	32
/* The error of a cached plaintext that is not a token (openpgp.h's
 * errors are 0 or more). */
#define DECRYPT_CACHE_NOT_TOKEN		(-1)

struct decrypt_cache;

/* At most max_entries entries holding at most max_bytes in all (each
 * counted with its bookkeeping, decrypt_cache_entry_bytes); 0 means 1. */
struct decrypt_cache *decrypt_cache_new(size_t max_entries,
	    size_t max_bytes);
void	decrypt_cache_free(struct decrypt_cache *);
/* The key of a ciphertext: its SHA-256 (with the cache's fetched
 * digest, not OpenSSL's per-call lookup). */
void	decrypt_cache_digest(struct decrypt_cache *, const void *ciphertext,
	    size_t len, unsigned char out[DECRYPT_CACHE_DIGEST_LEN]);
/* 1 if cached: then *plain_out is a copy the caller frees (NULL for a
 * cached failure, with its error code in *error_out: an openpgp.h error,
 * or DECRYPT_CACHE_NOT_TOKEN); 0 if not cached. */
int	decrypt_cache_get(struct decrypt_cache *,
	    const unsigned char digest[DECRYPT_CACHE_DIGEST_LEN],
	    char **plain_out, int *error_out);
/* Remember a result: plain (copied) if it parses as a token, else a
 * failure with DECRYPT_CACHE_NOT_TOKEN and no copy; plain NULL: a
 * failure with error. Evicts the least recently used entries while the
 * count or the bytes would pass their bound. Returns how many were
 * evicted for the bytes (not for the count). */
size_t	decrypt_cache_put(struct decrypt_cache *,
	    const unsigned char digest[DECRYPT_CACHE_DIGEST_LEN],
	    const char *plain, int error);
size_t	decrypt_cache_size(const struct decrypt_cache *);
/* The bytes the entries hold now. */
size_t	decrypt_cache_bytes(const struct decrypt_cache *);
/* What an entry holding plain (NULL: a failure) counts against the byte
 * bound: its copy and its bookkeeping. */
size_t	decrypt_cache_entry_bytes(const char *plain);

#endif
