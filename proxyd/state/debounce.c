/*
 * Debounce windows; see debounce.h for the contract and docs/debounce.md
 * for the reasoning.
 *
 * Layout: windows live in a ring of fixed 24-byte entries (digest, end
 * time) in the order they opened. Every window has the same length, so
 * that is also the order in which they end: expiry pops the head, and a
 * window that starts anew (debounce_reopen) or replaces a closed one is
 * appended at the tail with an end after every other one (the ends stay
 * sorted as long as time does not go back, which debounce_clock ensures).
 *
 * An index of 32-bit ring positions, open addressing with linear probing
 * at a load of at most 1/2, finds a token's open window; deleting shifts
 * the cluster back (no tombstones in the index). A window that closes
 * before its end (cancelled, reopened, or found ended by a request) only
 * leaves the index: its ring entry stays until expiry or the next resize
 * reaches it, and is recognised as closed because the index does not
 * point at it. The index is hashed with the digest's low bits, and the
 * digest is keyed, so probe lengths cannot be steered from outside.
 *
 * Both arrays double when the ring is full and halve when it is at most a
 * third full; a resize keeps only the open windows. So memory follows the
 * number of windows: 32 bytes per ring entry (24 of ring, two 4-byte index
 * slots), at most 96 bytes per open window above the minimum size.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "debounce.h"
#include "xmalloc.h"

#define DEBOUNCE_SLOT_EMPTY	UINT32_MAX
#define DEBOUNCE_MIN_CAP	1024

struct debounce_entry {
	uint8_t		digest[DEBOUNCE_DIGEST_LEN];
	int64_t		end_ms;
};

struct debounce {
	int64_t			 window_ms;
	size_t			 max_entries;
	struct siphash_key	 key;
	int64_t			 last_now_ms;

	struct debounce_entry	*ring;		/* ring_cap entries */
	size_t			 ring_cap;	/* power of two */
	size_t			 head;		/* oldest entry */
	size_t			 count;		/* ring entries */
	uint32_t		*slots;		/* index: ring positions */
	size_t			 nslots;	/* 2 * ring_cap */

	struct debounce_stats	 stats;		/* counters; entries = open */
};

void
debounce_digest(const struct debounce *d, const void *key, size_t len,
    uint8_t out[DEBOUNCE_DIGEST_LEN])
{
	siphash128(&d->key, key, len, out);
}

/* ---- ring and index ------------------------------------------------- */

static inline size_t
debounce_home(const struct debounce *d, const uint8_t *digest)
{
	return (size_t)siphash_digest_u64(digest) & (d->nslots - 1);
}

/* The index slot holding digest's open window (*found true), or the empty
 * slot where it would go (*found false). */
static size_t
debounce_find(const struct debounce *d, const uint8_t *digest, bool *found)
{
	size_t mask = d->nslots - 1, s = debounce_home(d, digest);
	uint32_t pos;

	while ((pos = d->slots[s]) != DEBOUNCE_SLOT_EMPTY) {
		if (memcmp(d->ring[pos].digest, digest,
		    DEBOUNCE_DIGEST_LEN) == 0) {
			*found = true;
			return s;
		}
		s = (s + 1) & mask;
	}
	*found = false;
	return s;
}

/* The token's digest, and the index slot of its window (true) or where
 * one would go (false). */
static bool
debounce_lookup(const struct debounce *d, const void *key, size_t len,
    uint8_t digest[DEBOUNCE_DIGEST_LEN], size_t *slot)
{
	bool found;

	debounce_digest(d, key, len, digest);
	*slot = debounce_find(d, digest, &found);
	return found;
}

/* Whether the ring entry at pos is an open window (the index points at
 * it), not one closed early. */
static bool
debounce_is_open(const struct debounce *d, size_t pos)
{
	bool found;
	size_t s = debounce_find(d, d->ring[pos].digest, &found);

	return found && d->slots[s] == pos;
}

/* Empty slot s, moving later members of its cluster back so that every
 * window stays reachable from its home slot (Knuth 6.4, Algorithm R). */
static void
debounce_slot_delete(struct debounce *d, size_t s)
{
	size_t mask = d->nslots - 1, hole = s, j = s, home;
	uint32_t pos;

	for (;;) {
		j = (j + 1) & mask;
		if ((pos = d->slots[j]) == DEBOUNCE_SLOT_EMPTY)
			break;
		home = debounce_home(d, d->ring[pos].digest);
		/* Stays if home lies cyclically in (hole, j]. */
		if (hole <= j ? (hole < home && home <= j) :
		    (hole < home || home <= j))
			continue;
		d->slots[hole] = pos;
		hole = j;
	}
	d->slots[hole] = DEBOUNCE_SLOT_EMPTY;
}

/* Move the open windows into a ring of cap entries (a power of two >= the
 * number open), oldest at 0, dropping the entries of windows closed
 * early, and rebuild the index. */
static void
debounce_resize(struct debounce *d, size_t cap)
{
	struct debounce_entry *ring = xcalloc(cap, sizeof(*ring));
	size_t old_mask = d->ring_cap - 1, n = 0, s;

	for (size_t i = 0; i < d->count && d->ring != NULL; i++) {
		size_t pos = (d->head + i) & old_mask;

		if (debounce_is_open(d, pos))
			ring[n++] = d->ring[pos];
	}
	free(d->ring);
	free(d->slots);
	d->ring = ring;
	d->ring_cap = cap;
	d->head = 0;
	d->count = n;
	d->nslots = 2 * cap;
	d->slots = xcalloc(d->nslots, sizeof(*d->slots));
	memset(d->slots, 0xff, d->nslots * sizeof(*d->slots));
	for (size_t i = 0; i < n; i++) {
		s = debounce_home(d, ring[i].digest);
		while (d->slots[s] != DEBOUNCE_SLOT_EMPTY)
			s = (s + 1) & (d->nslots - 1);
		d->slots[s] = (uint32_t)i;
	}
}

/* now_ms, but never less than a time seen before: the ring's order
 * relies on ends that do not go back. */
static int64_t
debounce_clock(struct debounce *d, int64_t now_ms)
{
	if (now_ms < d->last_now_ms)
		return d->last_now_ms;
	d->last_now_ms = now_ms;
	return now_ms;
}

/* Close the open window in index slot s (its ring entry stays). */
static void
debounce_close(struct debounce *d, size_t s)
{
	debounce_slot_delete(d, s);
	d->stats.entries--;
}

/* Open a window for digest ending window_ms after now_ms (no window may be
 * open for it): its end, or -1 when the ring holds max_entries. */
static int64_t
debounce_open(struct debounce *d, const uint8_t *digest, int64_t now_ms)
{
	int64_t end = now_ms > INT64_MAX - d->window_ms ? INT64_MAX :
	    now_ms + d->window_ms;
	bool found;
	size_t s, pos;

	if (d->count >= d->max_entries)
		debounce_expire(d, now_ms);
	if (d->count >= d->max_entries && d->stats.entries < d->count)
		debounce_resize(d, d->ring_cap);	/* drop closed ones */
	if (d->count >= d->max_entries) {
		/* Evicting an open window early would let its token be
		 * pushed twice in a window; not debouncing the newcomer
		 * costs the same at most. */
		d->stats.table_full++;
		return -1;
	}
	if (d->count == d->ring_cap)
		debounce_resize(d, d->stats.entries < d->ring_cap / 2 ?
		    d->ring_cap : 2 * d->ring_cap);
	s = debounce_find(d, digest, &found);
	pos = (d->head + d->count) & (d->ring_cap - 1);
	memcpy(d->ring[pos].digest, digest, DEBOUNCE_DIGEST_LEN);
	d->ring[pos].end_ms = end;
	d->slots[s] = (uint32_t)pos;
	d->count++;
	d->stats.entries++;
	return end;
}

/* ---- API ------------------------------------------------------------ */

struct debounce *
debounce_new(const struct debounce_config *cfg, char err[ERR_LEN])
{
	struct debounce *d;

	if (cfg->window_ms < 1 || cfg->window_ms > DEBOUNCE_MAX_WINDOW_MS) {
		err_set(err, "debounce window of %lld ms, want 1..%lld",
		    (long long)cfg->window_ms,
		    (long long)DEBOUNCE_MAX_WINDOW_MS);
		return NULL;
	}
	if (cfg->max_entries < 1 ||
	    cfg->max_entries > DEBOUNCE_MAX_ENTRIES_LIMIT) {
		err_set(err, "debounce max entries %zu, want 1..%zu",
		    cfg->max_entries, DEBOUNCE_MAX_ENTRIES_LIMIT);
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	d->window_ms = cfg->window_ms;
	d->max_entries = cfg->max_entries;
	siphash_key_set(&d->key, cfg->key);
	d->last_now_ms = INT64_MIN;
	d->ring_cap = 1;		/* nothing to move yet */
	debounce_resize(d, DEBOUNCE_MIN_CAP);
	return d;
}

void
debounce_free(struct debounce *d)
{
	if (d == NULL)
		return;
	free(d->ring);
	free(d->slots);
	OPENSSL_cleanse(d, sizeof(*d));	/* the SipHash key */
	free(d);
}

enum debounce_action
debounce_hit(struct debounce *d, const void *key, size_t len, int64_t now_ms,
    int64_t *end_out)
{
	uint8_t digest[DEBOUNCE_DIGEST_LEN];
	int64_t end;
	size_t s;

	now_ms = debounce_clock(d, now_ms);
	if (debounce_lookup(d, key, len, digest, &s)) {
		end = d->ring[d->slots[s]].end_ms;
		if (end > now_ms) {
			d->stats.coalesced++;
			if (end_out != NULL)
				*end_out = end;
			return DEBOUNCE_COALESCED;
		}
		debounce_close(d, s);	/* ended; expiry has not run yet */
	}
	end = debounce_open(d, digest, now_ms);
	d->stats.sent_now++;
	if (end_out != NULL)
		*end_out = end;
	return DEBOUNCE_SEND_NOW;
}

int
debounce_cancel(struct debounce *d, const void *key, size_t len)
{
	uint8_t digest[DEBOUNCE_DIGEST_LEN];
	size_t s;

	if (!debounce_lookup(d, key, len, digest, &s))
		return 0;
	debounce_close(d, s);
	d->stats.cancelled++;
	return 1;
}

int64_t
debounce_reopen(struct debounce *d, const void *key, size_t len,
    int64_t now_ms)
{
	uint8_t digest[DEBOUNCE_DIGEST_LEN];
	size_t s;

	now_ms = debounce_clock(d, now_ms);
	if (debounce_lookup(d, key, len, digest, &s))
		debounce_close(d, s);
	d->stats.reopened++;
	return debounce_open(d, digest, now_ms);
}

int64_t
debounce_end(struct debounce *d, const void *key, size_t len, int64_t now_ms)
{
	uint8_t digest[DEBOUNCE_DIGEST_LEN];
	size_t s;
	int64_t end;

	now_ms = debounce_clock(d, now_ms);
	if (!debounce_lookup(d, key, len, digest, &s))
		return -1;
	end = d->ring[d->slots[s]].end_ms;
	return end > now_ms ? end : -1;
}

size_t
debounce_expire(struct debounce *d, int64_t now_ms)
{
	size_t closed = 0, s, cap;
	bool found;

	now_ms = debounce_clock(d, now_ms);
	while (d->count > 0 && d->ring[d->head].end_ms <= now_ms) {
		s = debounce_find(d, d->ring[d->head].digest, &found);
		if (found && d->slots[s] == d->head) {
			debounce_close(d, s);
			closed++;
		}
		d->head = (d->head + 1) & (d->ring_cap - 1);
		d->count--;
	}
	/* Straight to the size that fits, even after a mass expiry. */
	for (cap = d->ring_cap; cap > DEBOUNCE_MIN_CAP && d->count <= cap / 3;)
		cap /= 2;
	if (cap != d->ring_cap)
		debounce_resize(d, cap);
	return closed;
}

int64_t
debounce_next_deadline(const struct debounce *d)
{
	return d->count > 0 ? d->ring[d->head].end_ms : -1;
}

void
debounce_get_stats(const struct debounce *d, struct debounce_stats *out)
{
	*out = d->stats;
	out->ring = d->count;
	out->memory_bytes = sizeof(*d) + d->ring_cap * sizeof(*d->ring) +
	    d->nslots * sizeof(*d->slots);
}
