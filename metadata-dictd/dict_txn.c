/*
 * Dict transactions: the changes of one B ... C, held in memory until
 * the commit hands them to the group commit (dict_store_apply writes
 * them), and the set of transactions a connection has open.
 *
 * Transactions belong to a connection and are keyed by their id there:
 * ids count up per mail process, so many connections use the same ones
 * at once (protocol doc §5, §8.2). A connection holds few (Dovecot opens
 * one or two at a time); DICT_CONN_MAX_TXNS bounds what a peer can open.
 */
#include <stdlib.h>
#include <string.h>

#include "dictd.h"
#include "xmalloc.h"

struct dict_txn *
dict_txn_new(unsigned int id, const char *user)
{
	struct dict_txn *t = xcalloc(1, sizeof(*t));

	t->id = id;
	t->user = xstrdup(user);
	return t;
}

void
dict_txn_free(struct dict_txn *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nchanges; i++) {
		free(t->changes[i].key);
		free(t->changes[i].value);
	}
	free(t->changes);
	free(t->user);
	free(t->failed);
	free(t);
}

static void
dict_txn_fail(struct dict_txn *t, const char *reason)
{
	if (t->failed == NULL)
		t->failed = xstrdup(reason);
}

void
dict_txn_add(struct dict_txn *t, enum dict_change_kind kind, const char *key,
    const char *value, size_t value_len, int64_t diff)
{
	struct dict_change *ch;
	size_t bytes = strlen(key) + value_len;

	if (t->failed != NULL)
		return;
	/* Past the bounds the transaction is kept, empty of further
	 * changes, so that its commit fails with the reason (not the
	 * connection, which may hold other work). */
	if (t->nchanges >= DICT_TXN_MAX_CHANGES ||
	    t->bytes + bytes > DICT_TXN_MAX_BYTES) {
		dict_txn_fail(t, "transaction too large");
		return;
	}
	t->changes = dict_array_grow(t->changes, t->nchanges, &t->cap,
	    sizeof(*t->changes), 4);
	ch = &t->changes[t->nchanges++];
	ch->kind = kind;
	ch->key = xstrdup(key);
	ch->value = value != NULL ? xmemdup0(value, value_len) : NULL;
	ch->value_len = value_len;
	ch->diff = diff;
	t->bytes += bytes;
}

void
dict_txn_set_init(struct dict_txn_set *set)
{
	LIST_INIT(&set->open);
	set->n = 0;
}

void
dict_txn_set_clear(struct dict_txn_set *set)
{
	struct dict_txn *t;

	while ((t = LIST_FIRST(&set->open)) != NULL) {
		LIST_REMOVE(t, link);
		dict_txn_free(t);
	}
	set->n = 0;
}

struct dict_txn *
dict_txn_find(struct dict_txn_set *set, unsigned int id)
{
	struct dict_txn *t;

	LIST_FOREACH(t, &set->open, link)
		if (t->id == id)
			return t;
	return NULL;
}

struct dict_txn *
dict_txn_begin(struct dict_txn_set *set, unsigned int id, const char *user,
    char err[ERR_LEN])
{
	struct dict_txn *t;

	if (dict_txn_find(set, id) != NULL) {
		err_set(err, "transaction %u begun twice", id);
		return NULL;
	}
	if (set->n >= DICT_CONN_MAX_TXNS) {
		err_set(err, "too many open transactions");
		return NULL;
	}
	t = dict_txn_new(id, user);
	LIST_INSERT_HEAD(&set->open, t, link);
	set->n++;
	return t;
}

struct dict_txn *
dict_txn_take(struct dict_txn_set *set, unsigned int id)
{
	struct dict_txn *t = dict_txn_find(set, id);

	if (t != NULL) {
		LIST_REMOVE(t, link);
		set->n--;
	}
	return t;
}
