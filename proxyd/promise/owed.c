/*
 * The owed pushes' container; see owed.h.
 *
 * Items sit in a chained hash table by key (the key is a keyed digest, so
 * chains cannot be made long from outside) that doubles when it holds as
 * many items as buckets, and, while they wait, in a binary min-heap by
 * due time. The journal is a doubly-linked list of changed items plus an
 * array of keys whose rows go.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "owed.h"
#include "xmalloc.h"

#define OWED_MIN_BUCKETS	1024
#define OWED_NOT_WAITING	SIZE_MAX

struct owed {
	size_t			 max_items, max_bytes;
	struct siphash_key	 key;

	struct owed_item	**buckets;
	size_t			 nbuckets;	/* power of two */
	struct owed_item	**heap;		/* waiting items by due_ms */
	size_t			 nheap, heap_cap;

	struct owed_item	*dirty;		/* journal: changed items */
	uint8_t			(*dels)[OWED_KEY_LEN];	/* journal: rows to go */
	size_t			 ndels, dels_cap;

	struct owed_stats	 stats;
};

static size_t
owed_item_bytes(const struct owed_item *it)
{
	return sizeof(*it) + it->token_len + 1 + (it->input != NULL ?
	    it->input_len + 1 : 0);
}

/* ---- the table -------------------------------------------------------- */

static struct owed_item **
owed_bucket(const struct owed *o, const uint8_t key[OWED_KEY_LEN])
{
	return &o->buckets[siphash_digest_u64(key) & (o->nbuckets - 1)];
}

static void
owed_grow(struct owed *o)
{
	struct owed_item **old = o->buckets, *it, *next;
	size_t n = o->nbuckets;

	o->nbuckets = 2 * n;
	o->buckets = xcalloc(o->nbuckets, sizeof(*o->buckets));
	for (size_t i = 0; i < n; i++)
		for (it = old[i]; it != NULL; it = next) {
			struct owed_item **b = owed_bucket(o, it->key);

			next = it->chain;
			it->chain = *b;
			*b = it;
		}
	free(old);
}

static void
owed_unlink(struct owed *o, struct owed_item *it)
{
	struct owed_item **p = owed_bucket(o, it->key);

	while (*p != it)
		p = &(*p)->chain;
	*p = it->chain;
	it->chain = NULL;
}

/* ---- the heap --------------------------------------------------------- */

static void
owed_heap_set(struct owed *o, size_t i, struct owed_item *it)
{
	o->heap[i] = it;
	it->heap_at = i;
}

static void
owed_heap_up(struct owed *o, size_t i)
{
	struct owed_item *it = o->heap[i];

	while (i > 0 && o->heap[(i - 1) / 2]->due_ms > it->due_ms) {
		owed_heap_set(o, i, o->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	owed_heap_set(o, i, it);
}

static void
owed_heap_down(struct owed *o, size_t i)
{
	struct owed_item *it = o->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= o->nheap)
			break;
		if (c + 1 < o->nheap &&
		    o->heap[c + 1]->due_ms < o->heap[c]->due_ms)
			c++;
		if (o->heap[c]->due_ms >= it->due_ms)
			break;
		owed_heap_set(o, i, o->heap[c]);
		i = c;
	}
	owed_heap_set(o, i, it);
}

static void
owed_heap_push(struct owed *o, struct owed_item *it)
{
	if (o->nheap == o->heap_cap) {
		o->heap_cap = o->heap_cap ? 2 * o->heap_cap : 64;
		o->heap = xrealloc(o->heap, o->heap_cap * sizeof(*o->heap));
	}
	owed_heap_set(o, o->nheap++, it);
	owed_heap_up(o, it->heap_at);
}

static void
owed_heap_remove(struct owed *o, struct owed_item *it)
{
	size_t i = it->heap_at;
	struct owed_item *last;

	if (i == OWED_NOT_WAITING)
		return;
	it->heap_at = OWED_NOT_WAITING;
	last = o->heap[--o->nheap];
	if (last == it)
		return;
	owed_heap_set(o, i, last);
	owed_heap_up(o, i);
	owed_heap_down(o, last->heap_at);
}

/* ---- the journal ------------------------------------------------------ */

static void
owed_mark_dirty(struct owed *o, struct owed_item *it)
{
	if (it->dirty)
		return;
	it->dirty = true;
	it->dirty_prev = NULL;
	it->dirty_next = o->dirty;
	if (o->dirty != NULL)
		o->dirty->dirty_prev = it;
	o->dirty = it;
	o->stats.journal++;
}

static void
owed_unmark_dirty(struct owed *o, struct owed_item *it)
{
	if (!it->dirty)
		return;
	if (it->dirty_prev != NULL)
		it->dirty_prev->dirty_next = it->dirty_next;
	else
		o->dirty = it->dirty_next;
	if (it->dirty_next != NULL)
		it->dirty_next->dirty_prev = it->dirty_prev;
	it->dirty = false;
	it->dirty_prev = it->dirty_next = NULL;
	o->stats.journal--;
}

void
owed_forget(struct owed *o, const uint8_t key[OWED_KEY_LEN])
{
	if (o->ndels == o->dels_cap) {
		o->dels_cap = o->dels_cap ? 2 * o->dels_cap : 64;
		o->dels = xrealloc(o->dels, o->dels_cap * sizeof(*o->dels));
	}
	memcpy(o->dels[o->ndels++], key, OWED_KEY_LEN);
	o->stats.journal++;
}

/* ---- items ------------------------------------------------------------ */

static void
owed_item_free(struct owed *o, struct owed_item *it)
{
	o->stats.bytes -= owed_item_bytes(it);
	o->stats.items--;
	OPENSSL_cleanse(it->token, it->token_len);
	free(it->token);
	if (it->input != NULL) {
		OPENSSL_cleanse(it->input, it->input_len);
		free(it->input);
	}
	free(it);
}

struct owed *
owed_new(const struct owed_config *cfg, char err[ERR_LEN])
{
	struct owed *o;

	if (cfg->max_items < 1) {
		err_set(err, "owed pushes: at most 0 items");
		return NULL;
	}
	o = xcalloc(1, sizeof(*o));
	o->max_items = cfg->max_items;
	o->max_bytes = cfg->max_bytes;
	siphash_key_set(&o->key, cfg->key);
	o->nbuckets = OWED_MIN_BUCKETS;
	o->buckets = xcalloc(o->nbuckets, sizeof(*o->buckets));
	return o;
}

void
owed_free(struct owed *o)
{
	struct owed_item *it, *next;

	if (o == NULL)
		return;
	for (size_t i = 0; i < o->nbuckets; i++)
		for (it = o->buckets[i]; it != NULL; it = next) {
			next = it->chain;
			owed_item_free(o, it);
		}
	/* Items marked gone are out of the table: their sender frees them
	 * with owed_release before the container goes. */
	free(o->buckets);
	free(o->heap);
	free(o->dels);
	OPENSSL_cleanse(o, sizeof(*o));		/* the SipHash key */
	free(o);
}

void
owed_key(const struct owed *o, const char *token, size_t len,
    uint8_t out[OWED_KEY_LEN])
{
	siphash128(&o->key, token, len, out);
}

struct owed_item *
owed_find(struct owed *o, const uint8_t key[OWED_KEY_LEN])
{
	struct owed_item *it;

	for (it = *owed_bucket(o, key); it != NULL; it = it->chain)
		if (memcmp(it->key, key, OWED_KEY_LEN) == 0)
			return it;
	return NULL;
}

struct owed_item *
owed_add(struct owed *o, const uint8_t key[OWED_KEY_LEN], const char *token,
    size_t token_len, const char *input, size_t input_len, int64_t first_ms,
    int64_t due_ms)
{
	struct owed_item *it, **b;
	size_t need = sizeof(*it) + token_len + 1 +
	    (input != NULL ? input_len + 1 : 0);

	if (o->stats.items >= o->max_items ||
	    need > o->max_bytes - o->stats.bytes) {
		o->stats.full++;
		return NULL;
	}
	it = xcalloc(1, sizeof(*it));
	memcpy(it->key, key, OWED_KEY_LEN);
	it->token = xmemdup0(token, token_len);
	it->token_len = token_len;
	if (input != NULL) {
		it->input = xmemdup0(input, input_len);
		it->input_len = input_len;
	}
	it->first_ms = first_ms;
	it->due_ms = due_ms;
	it->heap_at = OWED_NOT_WAITING;
	if (o->stats.items >= o->nbuckets)
		owed_grow(o);
	b = owed_bucket(o, key);
	it->chain = *b;
	*b = it;
	o->stats.items++;
	o->stats.bytes += owed_item_bytes(it);
	owed_heap_push(o, it);
	if (input != NULL)
		owed_mark_dirty(o, it);		/* a loaded row is stored */
	return it;
}

void
owed_changed(struct owed *o, struct owed_item *it)
{
	if (it->heap_at != OWED_NOT_WAITING) {
		owed_heap_up(o, it->heap_at);
		owed_heap_down(o, it->heap_at);
	}
	owed_mark_dirty(o, it);
}

void
owed_set_sending(struct owed *o, struct owed_item *it, bool sending)
{
	if (it->sending == sending)
		return;
	it->sending = sending;
	if (sending) {
		owed_heap_remove(o, it);
		o->stats.sending++;
	} else {
		o->stats.sending--;
		if (!it->gone)
			owed_heap_push(o, it);
	}
}

void
owed_remove(struct owed *o, struct owed_item *it)
{
	if (it->gone)
		return;
	owed_unlink(o, it);
	owed_heap_remove(o, it);
	owed_unmark_dirty(o, it);
	owed_forget(o, it->key);
	if (it->sending) {
		it->gone = true;
		return;
	}
	owed_item_free(o, it);
}

void
owed_release(struct owed *o, struct owed_item *it)
{
	if (it->sending)
		o->stats.sending--;
	owed_item_free(o, it);
}

struct owed_item *
owed_first_due(const struct owed *o)
{
	return o->nheap > 0 ? o->heap[0] : NULL;
}

int
owed_journal_apply(struct owed *o, owed_put_fn *put, owed_del_fn *del,
    void *arg)
{
	for (size_t i = 0; i < o->ndels; i++)
		if (del(arg, o->dels[i]) < 0)
			return -1;
	for (struct owed_item *it = o->dirty; it != NULL; it = it->dirty_next)
		if (put(arg, it) < 0)
			return -1;
	return 0;
}

void
owed_journal_done(struct owed *o)
{
	struct owed_item *it;

	while ((it = o->dirty) != NULL) {
		owed_unmark_dirty(o, it);
		if (it->input != NULL) {
			/* Stored: the database has what arrived. */
			o->stats.bytes -= it->input_len + 1;
			OPENSSL_cleanse(it->input, it->input_len);
			free(it->input);
			it->input = NULL;
		}
	}
	o->stats.journal -= o->ndels;
	o->ndels = 0;
}

bool
owed_journal_empty(const struct owed *o)
{
	return o->dirty == NULL && o->ndels == 0;
}

void
owed_get_stats(const struct owed *o, struct owed_stats *out)
{
	*out = o->stats;
}
