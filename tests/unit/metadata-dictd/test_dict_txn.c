/* Unit tests of metadata-dictd/dict_txn.c: a transaction's changes and
 * its bounds (DICT_TXN_MAX_CHANGES, the bytes of a connection's and of
 * all connections' transactions: past them it is marked failed and
 * emptied, not grown, and the bytes are given back), and a connection's
 * set of open transactions (keyed by id, an id begun twice refused, at
 * most DICT_CONN_MAX_TXNS, taken out for the commit, the rest freed with
 * the set). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dictd.h"
#include "metrics.h"

static void
test_changes_are_copied_in_order(void **state)
{
	struct dict_txn *t = dict_txn_new(7, "alice@example.org");
	char key[32], value[] = { 'a', '\0', 'b' };

	(void)state;
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "priv/g/k%d", i);
		dict_txn_add(t, i % 3 == 0 ? DICT_CHANGE_SET : i % 3 == 1 ?
		    DICT_CHANGE_UNSET : DICT_CHANGE_INC, key,
		    i % 3 == 0 ? value : NULL, i % 3 == 0 ? sizeof(value) : 0,
		    i % 3 == 2 ? -i : 0);
	}
	assert_int_equal(t->id, 7);
	assert_string_equal(t->user, "alice@example.org");
	assert_null(t->failed);
	assert_int_equal(t->nchanges, 100);
	for (int i = 0; i < 100; i++) {
		const struct dict_change *ch = &t->changes[i];

		snprintf(key, sizeof(key), "priv/g/k%d", i);
		if (strcmp(ch->key, key) != 0 || (int)ch->kind != i % 3)
			fail_msg("change %d: %s kind %d", i, ch->key, ch->kind);
		if (i % 3 == 0 && (ch->value_len != 3 ||
		    memcmp(ch->value, value, 3) != 0))
			fail_msg("change %d: value of %zu bytes", i,
			    ch->value_len);
		if (i % 3 == 2 && ch->diff != -i)
			fail_msg("change %d: diff %lld", i,
			    (long long)ch->diff);
	}
	dict_txn_free(t);
	dict_txn_free(NULL);
}

static void
test_too_many_changes_fail_the_transaction(void **state)
{
	struct dict_txn *t = dict_txn_new(1, "u");

	(void)state;
	for (int i = 0; i < DICT_TXN_MAX_CHANGES; i++)
		dict_txn_add(t, DICT_CHANGE_SET, "k", "v", 1, 0);
	assert_null(t->failed);
	assert_int_equal(dict_txn_add(t, DICT_CHANGE_SET, "k", "v", 1, 0),
	    DICT_TXN_OVER_CHANGES);
	assert_non_null(t->failed);
	assert_string_equal(t->failed, "transaction too large");
	/* Emptied at once: what a failed transaction held is given back. */
	assert_int_equal(t->nchanges, 0);
	assert_int_equal(t->bytes, 0);
	/* Reported once; later changes are dropped quietly. */
	assert_int_equal(dict_txn_add(t, DICT_CHANGE_UNSET, "k", NULL, 0, 0),
	    DICT_TXN_WITHIN);
	assert_int_equal(t->nchanges, 0);
	dict_txn_free(t);
}

/* A budget of conn_max bytes per set and total_max for all, with its
 * gauge on a registry of its own. */
struct budget_fixture {
	struct metrics		*m;
	struct dict_txn_budget	 b;
};

static void
budget_init(struct budget_fixture *bf, size_t conn_max, size_t total_max)
{
	memset(bf, 0, sizeof(*bf));
	bf->m = metrics_new();
	bf->b.conn_max = conn_max;
	bf->b.total_max = total_max;
	bf->b.held = metrics_gauge(bf->m, "held", "bytes", NULL);
}

static void
test_connection_bytes_bound(void **state)
{
	struct budget_fixture bf;
	struct dict_txn_set set;
	struct dict_txn *a, *b;
	char err[ERR_LEN], value[1000];
	size_t one = dict_txn_change_bytes("priv/g/k", sizeof(value));

	(void)state;
	memset(value, 'v', sizeof(value));
	budget_init(&bf, 10 * one, 1000 * one);
	dict_txn_set_init(&set, &bf.b);
	a = dict_txn_begin(&set, 1, "u", err);
	b = dict_txn_begin(&set, 2, "u", err);
	/* Two transactions of one connection share its bound. */
	for (int i = 0; i < 5; i++) {
		assert_int_equal(dict_txn_add(a, DICT_CHANGE_SET, "priv/g/k",
		    value, sizeof(value), 0), DICT_TXN_WITHIN);
		assert_int_equal(dict_txn_add(b, DICT_CHANGE_SET, "priv/g/k",
		    value, sizeof(value), 0), DICT_TXN_WITHIN);
	}
	assert_int_equal(set.bytes, 10 * one);
	assert_int_equal(bf.b.total, 10 * one);
	assert_int_equal(metric_value(bf.b.held), (int64_t)(10 * one));
	/* Exactly full: one more byte fails b, which gives its half back. */
	assert_int_equal(dict_txn_add(b, DICT_CHANGE_UNSET, "k", NULL, 0, 0),
	    DICT_TXN_OVER_CONN);
	assert_non_null(strstr(b->failed, "transaction too large"));
	assert_int_equal(b->nchanges, 0);
	assert_int_equal(set.bytes, 5 * one);
	assert_int_equal(bf.b.total, 5 * one);
	assert_null(a->failed);
	/* a is charged until freed, also once taken for its commit. */
	assert_ptr_equal(dict_txn_take(&set, 1), a);
	assert_int_equal(set.bytes, 5 * one);
	dict_txn_free(a);
	assert_int_equal(set.bytes, 0);
	assert_int_equal(bf.b.total, 0);
	dict_txn_set_clear(&set);
	assert_int_equal(metric_value(bf.b.held), 0);
	metrics_free(bf.m);
}

static void
test_total_bytes_bound(void **state)
{
	struct budget_fixture bf;
	struct dict_txn_set s1, s2;
	struct dict_txn *a, *b;
	char err[ERR_LEN];
	size_t one = dict_txn_change_bytes("k", 100);
	char value[100];

	(void)state;
	memset(value, 'v', sizeof(value));
	budget_init(&bf, 100 * one, 3 * one);
	dict_txn_set_init(&s1, &bf.b);
	dict_txn_set_init(&s2, &bf.b);
	a = dict_txn_begin(&s1, 1, "u", err);
	b = dict_txn_begin(&s2, 1, "v", err);
	assert_int_equal(dict_txn_add(a, DICT_CHANGE_SET, "k", value,
	    sizeof(value), 0), DICT_TXN_WITHIN);
	assert_int_equal(dict_txn_add(a, DICT_CHANGE_SET, "k", value,
	    sizeof(value), 0), DICT_TXN_WITHIN);
	assert_int_equal(dict_txn_add(b, DICT_CHANGE_SET, "k", value,
	    sizeof(value), 0), DICT_TXN_WITHIN);
	/* Every connection within its own bound, all of them past theirs. */
	assert_int_equal(dict_txn_add(b, DICT_CHANGE_SET, "k", value,
	    sizeof(value), 0), DICT_TXN_OVER_TOTAL);
	assert_non_null(strstr(b->failed, "server busy"));
	assert_int_equal(bf.b.total, 2 * one);
	/* The connection that closes gives its bytes to the others. */
	dict_txn_set_clear(&s1);
	assert_int_equal(bf.b.total, 0);
	b = dict_txn_begin(&s2, 2, "v", err);
	assert_int_equal(dict_txn_add(b, DICT_CHANGE_SET, "k", value,
	    sizeof(value), 0), DICT_TXN_WITHIN);
	dict_txn_set_clear(&s2);
	assert_int_equal(bf.b.total, 0);
	assert_int_equal(metric_value(bf.b.held), 0);
	metrics_free(bf.m);
}

static void
test_set_keys_transactions_by_id(void **state)
{
	struct dict_txn_set set;
	struct dict_txn *a, *b, *t;
	char err[ERR_LEN];

	(void)state;
	dict_txn_set_init(&set, NULL);
	assert_null(dict_txn_find(&set, 1));
	a = dict_txn_begin(&set, 1, "alice", err);
	b = dict_txn_begin(&set, 2, "bob", err);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(set.n, 2);
	assert_ptr_equal(dict_txn_find(&set, 1), a);
	assert_ptr_equal(dict_txn_find(&set, 2), b);
	assert_string_equal(dict_txn_find(&set, 2)->user, "bob");

	err[0] = '\0';
	assert_null(dict_txn_begin(&set, 1, "mallory", err));
	assert_string_equal(err, "transaction 1 begun twice");
	assert_string_equal(dict_txn_find(&set, 1)->user, "alice");

	t = dict_txn_take(&set, 1);
	assert_ptr_equal(t, a);
	assert_int_equal(set.n, 1);
	assert_null(dict_txn_find(&set, 1));
	assert_null(dict_txn_take(&set, 1));
	dict_txn_free(t);
	/* Its id is free again once taken (Dovecot reuses none, but a
	 * rollback followed by a B of the same id must work). */
	assert_non_null(dict_txn_begin(&set, 1, "alice", err));
	dict_txn_set_clear(&set);
	assert_int_equal(set.n, 0);
	assert_null(dict_txn_find(&set, 2));
}

static void
test_set_is_bounded(void **state)
{
	struct dict_txn_set set;
	char err[ERR_LEN];

	(void)state;
	dict_txn_set_init(&set, NULL);
	for (unsigned int i = 0; i < DICT_CONN_MAX_TXNS; i++)
		if (dict_txn_begin(&set, i, "u", err) == NULL)
			fail_msg("transaction %u: %s", i, err);
	err[0] = '\0';
	assert_null(dict_txn_begin(&set, DICT_CONN_MAX_TXNS, "u", err));
	assert_string_equal(err, "too many open transactions");
	dict_txn_free(dict_txn_take(&set, 3));
	assert_non_null(dict_txn_begin(&set, DICT_CONN_MAX_TXNS, "u", err));
	/* Freed by the set: the sanitizer build reports a leak otherwise. */
	dict_txn_set_clear(&set);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_changes_are_copied_in_order),
		cmocka_unit_test(test_too_many_changes_fail_the_transaction),
		cmocka_unit_test(test_connection_bytes_bound),
		cmocka_unit_test(test_total_bytes_bound),
		cmocka_unit_test(test_set_keys_transactions_by_id),
		cmocka_unit_test(test_set_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
