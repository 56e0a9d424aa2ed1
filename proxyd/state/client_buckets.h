/*
 * A token bucket per client (an address, in whatever form the caller
 * keys it: api_addr.h's IPv4 address or IPv6 /64), in a table of bounded
 * size: when it is full, the client seen least recently is forgotten
 * (its next request finds a full bucket again). Bounds what one address
 * may do per unit of time (proxyd: /register, docs/proxyd.md) without
 * letting the set of addresses, which a peer chooses, grow memory.
 *
 * Chained hash under a random SipHash key, so that keys chosen by a peer
 * cannot pile up in one chain; lookups, inserts and evictions are O(1).
 * Pure: no I/O, never logs; time is the caller's (now_ms).
 */
#ifndef CLIENT_BUCKETS_H
#define CLIENT_BUCKETS_H

#include <stddef.h>
#include <stdint.h>

#include "siphash.h"

/* The longest key: an IPv6 address. */
#define CLIENT_BUCKETS_KEY_MAX	16

struct client_buckets;

/* A table of at most max_clients buckets (0 means 1), hashed under
 * hash_key (random). */
struct client_buckets *client_buckets_new(size_t max_clients,
	    const uint8_t hash_key[SIPHASH_KEY_LEN]);
void	client_buckets_free(struct client_buckets *);
/* Takes one token from the bucket of key (len at most
 * CLIENT_BUCKETS_KEY_MAX; longer keys are cut), refilled at rate per
 * second up to burst; a new client starts full. 0: taken; else the
 * milliseconds until one is there (nothing taken). *evicted_out, if not
 * NULL, is set when a client was forgotten to make room. */
int64_t	client_buckets_take(struct client_buckets *, const void *key,
	    size_t len, double rate, double burst, int64_t now_ms,
	    int *evicted_out);
size_t	client_buckets_count(const struct client_buckets *);

#endif
