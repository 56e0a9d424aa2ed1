/*
 * Debounce windows; see debounce.h for the contract and docs/debounce.md
 * for the reasoning.
 *
 * Layout: open windows live in a ring of fixed 32-byte entries (digest,
 * end time, pending token copy or NULL) in the order they opened. Every
 * window has the same length, so that is also the order in which they
 * end: expiry pops the head, and a trailing push re-appends its window at
 * the tail with an end after every other one (the ends stay sorted as long
 * as time does not go back, which debounce_clock ensures). An index of
 * 32-bit ring positions, open addressing with linear probing at a load of
 * at most 1/2, finds a token's window; deleting shifts the cluster back
 * (no tombstones). The index is hashed with the digest's low bits, and
 * the digest is keyed, so probe lengths cannot be steered from outside.
 *
 * Both arrays double when the ring is full and halve when it is at most
 * a third full, so memory follows the number of open windows: 40 bytes
 * per ring entry (32 of ring, two 4-byte index slots), the ring between
 * a third and completely full, so at most 120 bytes per open window above
 * the minimum size; about 42 at a million (docs/debounce.md).
 *
 * The digest is SipHash-2-4-128, written out here rather than taken from
 * OpenSSL's EVP_MAC "SIPHASH": that API allocates and fetches per message,
 * and this runs for every /notify. The unit test checks it against
 * OpenSSL.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "debounce.h"
#include "xmalloc.h"

#define DEBOUNCE_SLOT_EMPTY	UINT32_MAX
#define DEBOUNCE_MIN_CAP	1024

/* A token copy for a pending trailing push. */
struct debounce_pending {
	size_t	len;
	char	token[];
};

struct debounce_entry {
	uint8_t			 digest[DEBOUNCE_DIGEST_LEN];
	int64_t			 end_ms;
	struct debounce_pending	*pending;	/* NULL: nothing coalesced */
};

struct debounce {
	int64_t			 window_ms;
	size_t			 max_entries;
	size_t			 max_pending_bytes;
	uint64_t		 k0, k1;	/* SipHash key */
	int64_t			 last_now_ms;

	struct debounce_entry	*ring;		/* ring_cap entries */
	size_t			 ring_cap;	/* power of two */
	size_t			 head;		/* oldest window */
	size_t			 count;		/* open windows */
	uint32_t		*slots;		/* index: ring positions */
	size_t			 nslots;	/* 2 * ring_cap */

	struct debounce_stats	 stats;		/* counters and pending */
};

/* ---- SipHash-2-4-128 (Aumasson, Bernstein; reference siphash.c) ----- */

#define DEBOUNCE_ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static inline void
debounce_sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = DEBOUNCE_ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = DEBOUNCE_ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = DEBOUNCE_ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = DEBOUNCE_ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = DEBOUNCE_ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = DEBOUNCE_ROTL(v[2], 32);
}

static inline uint64_t
debounce_load64(const uint8_t *p)
{
	uint64_t x = 0;

	for (int i = 7; i >= 0; i--)
		x = x << 8 | p[i];
	return x;
}

static inline void
debounce_store64(uint8_t *p, uint64_t x)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(x >> (8 * i));
}

static void
debounce_siphash128(uint64_t k0, uint64_t k1, const uint8_t *in, size_t len,
    uint8_t out[16])
{
	uint64_t v[4] = {
		k0 ^ 0x736f6d6570736575ULL,
		k1 ^ 0x646f72616e646f6dULL ^ 0xee,	/* 128-bit output */
		k0 ^ 0x6c7967656e657261ULL,
		k1 ^ 0x7465646279746573ULL,
	};
	const uint8_t *end = in + (len & ~(size_t)7);
	uint64_t m, b = (uint64_t)len << 56;

	for (; in != end; in += 8) {
		m = debounce_load64(in);
		v[3] ^= m;
		debounce_sipround(v);
		debounce_sipround(v);
		v[0] ^= m;
	}
	for (size_t i = 0; i < (len & 7); i++)
		b |= (uint64_t)in[i] << (8 * i);
	v[3] ^= b;
	debounce_sipround(v);
	debounce_sipround(v);
	v[0] ^= b;
	v[2] ^= 0xee;
	for (int i = 0; i < 4; i++)
		debounce_sipround(v);
	debounce_store64(out, v[0] ^ v[1] ^ v[2] ^ v[3]);
	v[1] ^= 0xdd;
	for (int i = 0; i < 4; i++)
		debounce_sipround(v);
	debounce_store64(out + 8, v[0] ^ v[1] ^ v[2] ^ v[3]);
}

void
debounce_digest(const struct debounce *d, const void *key, size_t len,
    uint8_t out[DEBOUNCE_DIGEST_LEN])
{
	debounce_siphash128(d->k0, d->k1, key, len, out);
}

/* ---- ring and index ------------------------------------------------- */

static inline size_t
debounce_home(const struct debounce *d, const uint8_t *digest)
{
	return (size_t)debounce_load64(digest) & (d->nslots - 1);
}

/* The index slot holding digest's window (*found true), or the empty slot
 * where it would go (*found false). */
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

/* Move the windows into a ring of cap entries (a power of two >= count),
 * oldest at 0, and rebuild the index. */
static void
debounce_resize(struct debounce *d, size_t cap)
{
	struct debounce_entry *ring = xcalloc(cap, sizeof(*ring));
	size_t old_mask = d->ring_cap - 1, s;

	for (size_t i = 0; i < d->count; i++)
		ring[i] = d->ring[(d->head + i) & old_mask];
	free(d->ring);
	free(d->slots);
	d->ring = ring;
	d->ring_cap = cap;
	d->head = 0;
	d->nslots = 2 * cap;
	d->slots = xcalloc(d->nslots, sizeof(*d->slots));
	memset(d->slots, 0xff, d->nslots * sizeof(*d->slots));
	for (size_t i = 0; i < d->count; i++) {
		s = debounce_home(d, ring[i].digest);
		while (d->slots[s] != DEBOUNCE_SLOT_EMPTY)
			s = (s + 1) & (d->nslots - 1);
		d->slots[s] = (uint32_t)i;
	}
}

/* Append a window at the tail, its index slot being s. */
static void
debounce_append(struct debounce *d, size_t s, const uint8_t *digest,
    int64_t end_ms)
{
	size_t pos = (d->head + d->count) & (d->ring_cap - 1);
	struct debounce_entry *e = &d->ring[pos];

	memcpy(e->digest, digest, DEBOUNCE_DIGEST_LEN);
	e->end_ms = end_ms;
	e->pending = NULL;
	d->slots[s] = (uint32_t)pos;
	d->count++;
}

static void
debounce_pending_free(struct debounce *d, struct debounce_pending *p)
{
	d->stats.pending--;
	d->stats.pending_bytes -= sizeof(*p) + p->len;
	OPENSSL_cleanse(p->token, p->len);
	free(p);
}

/* Whether a copy of a len-byte token fits the pending budget. */
static bool
debounce_pending_fits(const struct debounce *d, size_t len)
{
	size_t room = d->max_pending_bytes - d->stats.pending_bytes;

	return sizeof(struct debounce_pending) <= room &&
	    len <= room - sizeof(struct debounce_pending);
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

static int64_t
debounce_window_end(const struct debounce *d, int64_t now_ms)
{
	return now_ms > INT64_MAX - d->window_ms ? INT64_MAX :
	    now_ms + d->window_ms;
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
	d->max_pending_bytes = cfg->max_pending_bytes;
	d->k0 = debounce_load64(cfg->key);
	d->k1 = debounce_load64(cfg->key + 8);
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
	for (size_t i = 0; i < d->count; i++) {
		struct debounce_entry *e =
		    &d->ring[(d->head + i) & (d->ring_cap - 1)];

		if (e->pending != NULL)
			debounce_pending_free(d, e->pending);
	}
	free(d->ring);
	free(d->slots);
	OPENSSL_cleanse(d, sizeof(*d));	/* the SipHash key */
	free(d);
}

enum debounce_action
debounce_hit(struct debounce *d, const void *key, size_t len, int64_t now_ms)
{
	uint8_t digest[DEBOUNCE_DIGEST_LEN];
	struct debounce_entry *e;
	struct debounce_pending *p;
	bool found;
	size_t s;

	now_ms = debounce_clock(d, now_ms);
	debounce_digest(d, key, len, digest);
	s = debounce_find(d, digest, &found);
	if (found) {
		e = &d->ring[d->slots[s]];
		if (e->pending == NULL) {
			if (!debounce_pending_fits(d, len)) {
				/* Cannot remember it: send rather than lose
				 * it. */
				d->stats.pending_full++;
				d->stats.sent_now++;
				return DEBOUNCE_SEND_NOW;
			}
			p = xmalloc(sizeof(*p) + len);
			p->len = len;
			memcpy(p->token, key, len);
			e->pending = p;
			d->stats.pending++;
			d->stats.pending_bytes += sizeof(*p) + len;
		}
		d->stats.coalesced++;
		return DEBOUNCE_COALESCED;
	}
	if (d->count >= d->max_entries) {
		/* Evicting an open window early would cost its trailing push
		 * or send it early; not debouncing the newcomer costs one
		 * extra push at most. */
		d->stats.table_full++;
		d->stats.sent_now++;
		return DEBOUNCE_SEND_NOW;
	}
	if (d->count == d->ring_cap) {
		debounce_resize(d, 2 * d->ring_cap);
		s = debounce_find(d, digest, &found);
	}
	debounce_append(d, s, digest, debounce_window_end(d, now_ms));
	d->stats.sent_now++;
	return DEBOUNCE_SEND_NOW;
}

size_t
debounce_expire(struct debounce *d, int64_t now_ms, debounce_fire_fn *fire,
    void *arg)
{
	struct debounce_entry e;
	size_t fired = 0, s, cap;
	bool found;

	now_ms = debounce_clock(d, now_ms);
	while (d->count > 0 && d->ring[d->head].end_ms <= now_ms) {
		e = d->ring[d->head];
		s = debounce_find(d, e.digest, &found);
		d->head = (d->head + 1) & (d->ring_cap - 1);
		d->count--;
		if (e.pending == NULL) {
			debounce_slot_delete(d, s);
			continue;
		}
		/* The trailing push goes out now and opens the next window
		 * (docs/debounce.md: why). Its end is after every other
		 * one's, so it goes to the tail; moved before fire() runs,
		 * so that fire may call debounce_hit. */
		debounce_append(d, s, e.digest, debounce_window_end(d, now_ms));
		d->stats.trailing++;
		fired++;
		if (fire != NULL)
			fire(e.digest, e.pending->token, e.pending->len, arg);
		debounce_pending_free(d, e.pending);
	}
	/* Straight to the size that fits, even after a mass expiry. */
	for (cap = d->ring_cap; cap > DEBOUNCE_MIN_CAP && d->count <= cap / 3;)
		cap /= 2;
	if (cap != d->ring_cap)
		debounce_resize(d, cap);
	return fired;
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
	out->entries = d->count;
	out->memory_bytes = sizeof(*d) + d->ring_cap * sizeof(*d->ring) +
	    d->nslots * sizeof(*d->slots) + d->stats.pending_bytes;
}
