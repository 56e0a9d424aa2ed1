/* Unit tests of metadata-dictd/dict_txn.c: a transaction's changes and
 * its bounds (DICT_TXN_MAX_CHANGES, DICT_TXN_MAX_BYTES: past them it is
 * marked failed, not grown), and a connection's set of open transactions
 * (keyed by id, an id begun twice refused, at most DICT_CONN_MAX_TXNS,
 * taken out for the commit, the rest freed with the set). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dictd.h"

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
	dict_txn_add(t, DICT_CHANGE_SET, "k", "v", 1, 0);
	assert_non_null(t->failed);
	assert_string_equal(t->failed, "transaction too large");
	assert_int_equal(t->nchanges, DICT_TXN_MAX_CHANGES);
	dict_txn_add(t, DICT_CHANGE_UNSET, "k", NULL, 0, 0);
	assert_int_equal(t->nchanges, DICT_TXN_MAX_CHANGES);
	dict_txn_free(t);
}

static void
test_too_many_bytes_fail_the_transaction(void **state)
{
	struct dict_txn *t = dict_txn_new(1, "u");
	size_t half = DICT_TXN_MAX_BYTES / 2;
	char *big = calloc(1, half);

	(void)state;
	assert_non_null(big);
	dict_txn_add(t, DICT_CHANGE_SET, "k", big, half - 1, 0);
	assert_null(t->failed);
	dict_txn_add(t, DICT_CHANGE_SET, "k", big, half - 1, 0);
	assert_null(t->failed);			/* 2 * half exactly */
	dict_txn_add(t, DICT_CHANGE_SET, "k", "", 0, 0);
	assert_non_null(t->failed);
	assert_int_equal(t->nchanges, 2);
	free(big);
	dict_txn_free(t);
}

static void
test_set_keys_transactions_by_id(void **state)
{
	struct dict_txn_set set;
	struct dict_txn *a, *b, *t;
	char err[ERR_LEN];

	(void)state;
	dict_txn_set_init(&set);
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
	dict_txn_set_init(&set);
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
		cmocka_unit_test(test_too_many_bytes_fail_the_transaction),
		cmocka_unit_test(test_set_keys_transactions_by_id),
		cmocka_unit_test(test_set_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
