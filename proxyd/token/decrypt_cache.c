/* LRU cache of decrypted tokens; see decrypt_cache.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "decrypt_cache.h"
#include "token.h"
#include "xmalloc.h"

struct dc_entry {
	unsigned char	 digest[DECRYPT_CACHE_DIGEST_LEN];
	char		*plain;		/* NULL: a cached failure */
	int		 error;
	size_t		 bytes;		/* decrypt_cache_entry_bytes */
	struct dc_entry	*hnext;		/* bucket chain */
	struct dc_entry	*prev, *next;	/* LRU list, most recent first */
};

struct decrypt_cache {
	struct dc_entry	**buckets;
	size_t		  nbuckets;	/* power of two */
	size_t		  n, max;
	size_t		  bytes, max_bytes;
	struct dc_entry	 *head, *tail;
	EVP_MD		 *sha256;
};

struct decrypt_cache *
decrypt_cache_new(size_t max_entries, size_t max_bytes)
{
	struct decrypt_cache *c = xcalloc(1, sizeof(*c));

	c->max = max_entries ? max_entries : 1;
	c->max_bytes = max_bytes ? max_bytes : 1;
	c->nbuckets = 16;
	while (c->nbuckets < c->max * 2)
		c->nbuckets *= 2;
	c->buckets = xcalloc(c->nbuckets, sizeof(*c->buckets));
	c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	return c;
}

size_t
decrypt_cache_entry_bytes(const char *plain)
{
	return sizeof(struct dc_entry) + (plain != NULL ? strlen(plain) + 1 :
	    0);
}

static void
dc_entry_free(struct dc_entry *e)
{
	if (e->plain != NULL) {
		OPENSSL_cleanse(e->plain, strlen(e->plain));
		free(e->plain);
	}
	free(e);
}

void
decrypt_cache_free(struct decrypt_cache *c)
{
	struct dc_entry *e, *next;

	if (c == NULL)
		return;
	for (e = c->head; e != NULL; e = next) {
		next = e->next;
		dc_entry_free(e);
	}
	EVP_MD_free(c->sha256);
	free(c->buckets);
	free(c);
}

void
decrypt_cache_digest(struct decrypt_cache *c, const void *ciphertext,
    size_t len, unsigned char out[DECRYPT_CACHE_DIGEST_LEN])
{
	unsigned int n = 0;

	if (c->sha256 == NULL ||
	    EVP_Digest(ciphertext, len, out, &n, c->sha256, NULL) != 1)
		abort();	/* SHA-256 fails only on OOM */
}

/* The digest is uniformly random already: its first bytes index. */
static size_t
dc_bucket(const struct decrypt_cache *c, const unsigned char *d)
{
	uint64_t h;

	memcpy(&h, d, sizeof(h));
	return (size_t)h & (c->nbuckets - 1);
}

static struct dc_entry **
dc_find(struct decrypt_cache *c, const unsigned char *d)
{
	struct dc_entry **ep = &c->buckets[dc_bucket(c, d)];

	while (*ep != NULL && memcmp((*ep)->digest, d,
	    DECRYPT_CACHE_DIGEST_LEN) != 0)
		ep = &(*ep)->hnext;
	return ep;
}

static void
dc_lru_unlink(struct decrypt_cache *c, struct dc_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
dc_lru_push(struct decrypt_cache *c, struct dc_entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head != NULL)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

/* Drops the least recently used entry. */
static void
dc_evict_oldest(struct decrypt_cache *c)
{
	struct dc_entry *old = c->tail, **op;

	dc_lru_unlink(c, old);
	op = dc_find(c, old->digest);
	*op = old->hnext;
	c->n--;
	c->bytes -= old->bytes;
	dc_entry_free(old);
}

int
decrypt_cache_get(struct decrypt_cache *c,
    const unsigned char digest[DECRYPT_CACHE_DIGEST_LEN], char **plain_out,
    int *error_out)
{
	struct dc_entry *e = *dc_find(c, digest);

	if (e == NULL)
		return 0;
	dc_lru_unlink(c, e);
	dc_lru_push(c, e);
	*plain_out = e->plain != NULL ? xstrdup(e->plain) : NULL;
	*error_out = e->error;
	return 1;
}

size_t
decrypt_cache_put(struct decrypt_cache *c,
    const unsigned char digest[DECRYPT_CACHE_DIGEST_LEN], const char *plain,
    int error)
{
	struct dc_entry **ep = dc_find(c, digest), *e;
	struct token t;
	char err[ERR_LEN];
	size_t bytes, for_bytes = 0;

	if (*ep != NULL)
		return 0;	/* same ciphertext, same plaintext */
	/* A plaintext that is no token is answered the same way every time
	 * (410): only that is worth remembering, not the bytes, which
	 * anybody can make as large as the decryptor allows. */
	if (plain != NULL && token_parse(plain, strlen(plain), &t, err) < 0) {
		plain = NULL;
		error = DECRYPT_CACHE_NOT_TOKEN;
	}
	OPENSSL_cleanse(&t, sizeof(t));		/* Web Push's auth secret */
	bytes = decrypt_cache_entry_bytes(plain);
	if (bytes > c->max_bytes)
		return 0;	/* would not fit even alone */
	while (c->n > 0 && (c->n == c->max ||
	    c->bytes + bytes > c->max_bytes)) {
		if (c->n < c->max)
			for_bytes++;
		dc_evict_oldest(c);
	}
	ep = dc_find(c, digest);	/* the chain may have moved */
	e = xcalloc(1, sizeof(*e));
	memcpy(e->digest, digest, DECRYPT_CACHE_DIGEST_LEN);
	e->plain = plain != NULL ? xstrdup(plain) : NULL;
	e->error = error;
	e->bytes = bytes;
	*ep = e;
	dc_lru_push(c, e);
	c->n++;
	c->bytes += bytes;
	return for_bytes;
}

size_t
decrypt_cache_size(const struct decrypt_cache *c)
{
	return c->n;
}

size_t
decrypt_cache_bytes(const struct decrypt_cache *c)
{
	return c->bytes;
}
