/* The intake's table of clients; see api_clients.h. */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "api_clients.h"
#include "xmalloc.h"

struct api_clients {
	struct api_client	**buckets;
	size_t			 mask;		/* buckets - 1 (a power of 2) */
	size_t			 count;
	uint64_t		 k0, k1;	/* hash key */
};

/* A keyed mix of the 16 address bytes (multiply-xorshift rounds). Not a
 * MAC: it only has to keep a peer that picks its addresses from guessing
 * which land in one bucket, and the key never leaves the process. */
static size_t
api_clients_hash(const struct api_clients *t, const struct api_addr *a)
{
	uint64_t w0, w1, h;

	memcpy(&w0, a->b, 8);
	memcpy(&w1, a->b + 8, 8);
	h = (w0 ^ t->k0) * 0x9e3779b97f4a7c15ULL;
	h ^= h >> 29;
	h = (h ^ w1 ^ t->k1) * 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 32;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return (size_t)h & t->mask;
}

struct api_clients *
api_clients_new(size_t expected)
{
	struct api_clients *t = xcalloc(1, sizeof(*t));
	size_t n = 16;

	while (n < expected && n < ((size_t)1 << 24))
		n <<= 1;
	t->buckets = xcalloc(n, sizeof(*t->buckets));
	t->mask = n - 1;
	/* Without the random key the table still works, only guessably. */
	if (getrandom(&t->k0, sizeof(t->k0), 0) != sizeof(t->k0) ||
	    getrandom(&t->k1, sizeof(t->k1), 0) != sizeof(t->k1)) {
		t->k0 = (uint64_t)(uintptr_t)t;
		t->k1 = (uint64_t)(uintptr_t)t->buckets;
	}
	return t;
}

void
api_clients_free(struct api_clients *t)
{
	struct api_client *c, *next;
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i <= t->mask; i++)
		for (c = t->buckets[i]; c != NULL; c = next) {
			next = c->next;
			free(c);
		}
	free(t->buckets);
	free(t);
}

struct api_client *
api_clients_find(struct api_clients *t, const struct api_addr *a)
{
	struct api_client *c;

	for (c = t->buckets[api_clients_hash(t, a)]; c != NULL; c = c->next)
		if (api_addr_equal(&c->addr, a))
			return c;
	return NULL;
}

struct api_client *
api_clients_get(struct api_clients *t, const struct api_addr *a)
{
	struct api_client *c;
	size_t h;

	if ((c = api_clients_find(t, a)) != NULL)
		return c;
	h = api_clients_hash(t, a);
	c = xcalloc(1, sizeof(*c));
	c->addr = *a;
	c->next = t->buckets[h];
	t->buckets[h] = c;
	t->count++;
	return c;
}

void
api_clients_put(struct api_clients *t, struct api_client *c)
{
	struct api_client **pp;

	if (c->conns > 0 || c->requests > 0)
		return;
	for (pp = &t->buckets[api_clients_hash(t, &c->addr)]; *pp != NULL;
	    pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			free(c);
			t->count--;
			return;
		}
}

size_t
api_clients_count(const struct api_clients *t)
{
	return t->count;
}
