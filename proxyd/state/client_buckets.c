/* Token buckets per client in a bounded LRU table; see client_buckets.h. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "client_buckets.h"
#include "token_bucket.h"
#include "xmalloc.h"

struct cb_entry {
	uint8_t			 key[CLIENT_BUCKETS_KEY_MAX];
	uint8_t			 len;
	struct token_bucket	 tb;
	struct cb_entry		*hnext;		/* bucket chain */
	struct cb_entry		*prev, *next;	/* LRU, most recent first */
};

struct client_buckets {
	struct cb_entry		**chains;
	size_t			  nchains;	/* power of two */
	size_t			  n, max;
	struct cb_entry		 *head, *tail;
	struct siphash_key	  hkey;
};

struct client_buckets *
client_buckets_new(size_t max_clients, const uint8_t hash_key[SIPHASH_KEY_LEN])
{
	struct client_buckets *t = xcalloc(1, sizeof(*t));

	t->max = max_clients ? max_clients : 1;
	t->nchains = 16;
	while (t->nchains < t->max)
		t->nchains *= 2;
	t->chains = xcalloc(t->nchains, sizeof(*t->chains));
	siphash_key_set(&t->hkey, hash_key);
	return t;
}

void
client_buckets_free(struct client_buckets *t)
{
	struct cb_entry *e, *next;

	if (t == NULL)
		return;
	for (e = t->head; e != NULL; e = next) {
		next = e->next;
		free(e);
	}
	free(t->chains);
	OPENSSL_cleanse(&t->hkey, sizeof(t->hkey));
	free(t);
}

static struct cb_entry **
cb_find(struct client_buckets *t, const uint8_t *key, size_t len)
{
	uint8_t d[SIPHASH_DIGEST_LEN];
	struct cb_entry **ep;

	siphash128(&t->hkey, key, len, d);
	ep = &t->chains[siphash_digest_u64(d) & (t->nchains - 1)];
	while (*ep != NULL && ((*ep)->len != len ||
	    memcmp((*ep)->key, key, len) != 0))
		ep = &(*ep)->hnext;
	return ep;
}

static void
cb_unlink(struct client_buckets *t, struct cb_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		t->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		t->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
cb_push(struct client_buckets *t, struct cb_entry *e)
{
	e->next = t->head;
	if (t->head != NULL)
		t->head->prev = e;
	t->head = e;
	if (t->tail == NULL)
		t->tail = e;
}

static void
cb_evict_oldest(struct client_buckets *t)
{
	struct cb_entry *old = t->tail, **op;

	cb_unlink(t, old);
	op = cb_find(t, old->key, old->len);
	*op = old->hnext;
	t->n--;
	free(old);
}

int64_t
client_buckets_take(struct client_buckets *t, const void *key, size_t len,
    double rate, double burst, int64_t now_ms, int *evicted_out)
{
	struct cb_entry **ep, *e;

	if (evicted_out != NULL)
		*evicted_out = 0;
	if (len > CLIENT_BUCKETS_KEY_MAX)
		len = CLIENT_BUCKETS_KEY_MAX;
	ep = cb_find(t, key, len);
	if ((e = *ep) != NULL)
		cb_unlink(t, e);
	else {
		if (t->n == t->max) {
			cb_evict_oldest(t);
			if (evicted_out != NULL)
				*evicted_out = 1;
			ep = cb_find(t, key, len);
		}
		e = xcalloc(1, sizeof(*e));
		memcpy(e->key, key, len);
		e->len = (uint8_t)len;
		token_bucket_init(&e->tb, rate, burst, now_ms);
		*ep = e;
		t->n++;
	}
	cb_push(t, e);
	token_bucket_set(&e->tb, rate, burst);
	if (token_bucket_take(&e->tb, now_ms))
		return 0;
	return token_bucket_wait_ms(&e->tb, now_ms);
}

size_t
client_buckets_count(const struct client_buckets *t)
{
	return t->n;
}
