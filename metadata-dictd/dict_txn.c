/*
 * Dict transactions: the changes of one B ... C, held in memory until
 * the commit hands them to the group commit (dict_store_apply writes
 * them), and the set of transactions a connection has open.
 *
 * Transactions belong to a connection and are keyed by their id there:
 * ids count up per mail process, so many connections use the same ones
 * at once (protocol doc §5, §8.2). A connection holds few (Dovecot opens
 * one or two at a time); DICT_CONN_MAX_TXNS bounds what a peer can open.
 *
 * Memory: every change is charged to its transaction, the transaction's
 * set (its connection) and the server's budget, from the moment it is
 * recorded until the transaction is freed, after its commit was answered
 * (a commit waiting for SQLite's lock still holds its bytes). Past a
 * bound the transaction gives its changes back at once and fails at its
 * commit, so a peer can make the daemon hold no more than the bounds, not
 * 64 transactions of 4 MiB per connection (measured before the bounds:
 * four connections took the daemon from 8 MB to 1.05 GB).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dictd.h"
#include "metrics.h"
#include "xmalloc.h"

struct dict_txn *
dict_txn_new(unsigned int id, const char *user)
{
	struct dict_txn *t = xcalloc(1, sizeof(*t));

	t->id = id;
	t->user = xstrdup(user);
	return t;
}

/* Charge (or, with a negative sign, give back) bytes to t's set and the
 * set's budget. */
static void
dict_txn_charge(struct dict_txn *t, size_t bytes, int sign)
{
	struct dict_txn_set *set = t->set;
	struct dict_txn_budget *b = set != NULL ? set->budget : NULL;

	if (sign > 0) {
		t->bytes += bytes;
		if (set != NULL)
			set->bytes += bytes;
		if (b != NULL)
			b->total += bytes;
	} else {
		t->bytes -= bytes;
		if (set != NULL)
			set->bytes -= bytes;
		if (b != NULL)
			b->total -= bytes;
	}
	if (b != NULL && b->held != NULL)
		metric_gauge_add(b->held, sign > 0 ? (int64_t)bytes :
		    -(int64_t)bytes);
}

/* Frees t's changes and gives their bytes back. */
static void
dict_txn_release(struct dict_txn *t)
{
	for (size_t i = 0; i < t->nchanges; i++) {
		free(t->changes[i].key);
		free(t->changes[i].value);
	}
	free(t->changes);
	t->changes = NULL;
	t->nchanges = t->cap = 0;
	dict_txn_charge(t, t->bytes, -1);
}

void
dict_txn_free(struct dict_txn *t)
{
	if (t == NULL)
		return;
	dict_txn_release(t);
	free(t->user);
	free(t->failed);
	free(t);
}

size_t
dict_txn_change_bytes(const char *key, size_t value_len)
{
	/* The two copies with their NULs, and the change's slot: what a
	 * flood of tiny changes costs too. */
	return strlen(key) + 1 + value_len + 1 + sizeof(struct dict_change);
}

/* Which bound adding bytes to t would pass, if any. */
static enum dict_txn_bound
dict_txn_bound_check(const struct dict_txn *t, size_t bytes)
{
	const struct dict_txn_set *set = t->set;
	const struct dict_txn_budget *b = set != NULL ? set->budget : NULL;

	if (t->nchanges >= DICT_TXN_MAX_CHANGES)
		return DICT_TXN_OVER_CHANGES;
	if (b == NULL)
		return DICT_TXN_WITHIN;
	if (set->bytes + bytes > b->conn_max)
		return DICT_TXN_OVER_CONN;
	if (b->total + bytes > b->total_max)
		return DICT_TXN_OVER_TOTAL;
	return DICT_TXN_WITHIN;
}

/* The reason the commit of a transaction past bound fails with (sent to
 * Dovecot, which logs it). */
static void
dict_txn_fail(struct dict_txn *t, enum dict_txn_bound bound)
{
	const struct dict_txn_budget *b = t->set != NULL ?
	    t->set->budget : NULL;
	char reason[ERR_LEN];

	switch (bound) {
	case DICT_TXN_OVER_CONN:
		snprintf(reason, sizeof(reason), "transaction too large: the "
		    "connection's open transactions would hold over %zu bytes",
		    b->conn_max);
		break;
	case DICT_TXN_OVER_TOTAL:
		snprintf(reason, sizeof(reason), "server busy: open "
		    "transactions would hold over %zu bytes", b->total_max);
		break;
	default:
		snprintf(reason, sizeof(reason), "transaction too large");
		break;
	}
	t->failed = xstrdup(reason);
	dict_txn_release(t);
}

enum dict_txn_bound
dict_txn_add(struct dict_txn *t, enum dict_change_kind kind, const char *key,
    const char *value, size_t value_len, int64_t diff)
{
	struct dict_change *ch;
	size_t bytes = dict_txn_change_bytes(key, value_len);
	enum dict_txn_bound bound;

	if (t->failed != NULL)
		return DICT_TXN_WITHIN;
	/* Past the bounds the transaction is kept, empty of further
	 * changes, so that its commit fails with the reason (not the
	 * connection, which may hold other work: protocol doc §8.7 allows
	 * either, and a failed commit is what Dovecot reports best). */
	if ((bound = dict_txn_bound_check(t, bytes)) != DICT_TXN_WITHIN) {
		dict_txn_fail(t, bound);
		return bound;
	}
	t->changes = dict_array_grow(t->changes, t->nchanges, &t->cap,
	    sizeof(*t->changes), 4);
	ch = &t->changes[t->nchanges++];
	ch->kind = kind;
	ch->key = xstrdup(key);
	ch->value = value != NULL ? xmemdup0(value, value_len) : NULL;
	ch->value_len = value_len;
	ch->diff = diff;
	dict_txn_charge(t, bytes, 1);
	return DICT_TXN_WITHIN;
}

void
dict_txn_set_init(struct dict_txn_set *set, struct dict_txn_budget *budget)
{
	LIST_INIT(&set->open);
	set->n = 0;
	set->bytes = 0;
	set->budget = budget;
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
	t->set = set;
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
