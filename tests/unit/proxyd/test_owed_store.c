/*
 * Unit tests of proxyd/promise/owed_store.c on a real SQLite file (proxy_db.c's
 * schema): the journal goes in with one commit, rows come back in key
 * order across a reopen, the key is made once and kept, stored items are
 * updated without their input, deletes, and a failed commit keeps the
 * journal. The tokens are stored as they arrived, never in clear.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "owed_store.h"
#include "proxy_db.h"
#include "testutil.h"

struct fixture {
	char			 dir[TESTUTIL_DIR_LEN];
	char			 path[TESTUTIL_PATH_LEN];
	struct proxy_db		 db;
	struct owed_store	*s;
	struct owed		*o;
	uint8_t			 key[SIPHASH_KEY_LEN];
};

static void
fixture_open(struct fixture *f)
{
	struct owed_config oc = { .max_items = 100, .max_bytes = 1 << 20 };
	char err[ERR_LEN];

	if (proxy_db_open(&f->db, f->path, DB_SYNC_NORMAL, false, err) < 0)
		fail_msg("proxy_db_open: %s", err);
	f->s = owed_store_new(f->db.db, err);
	assert_non_null(f->s);
	assert_int_equal(owed_store_key(f->s, f->key, err), 0);
	memcpy(oc.key, f->key, sizeof(oc.key));
	f->o = owed_new(&oc, err);
	assert_non_null(f->o);
}

static void
fixture_close(struct fixture *f)
{
	owed_free(f->o);
	owed_store_free(f->s);
	proxy_db_close(&f->db);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	testutil_db_dir(f->dir, "test_owed_store", "proxy.db", f->path);
	fixture_open(f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	fixture_close(f);
	testutil_db_dir_remove(f->dir, f->path);
	free(f);
	return 0;
}

static struct owed_item *
add(struct fixture *f, const char *token, int64_t due)
{
	static unsigned int n;
	uint8_t k[OWED_KEY_LEN];
	char input[128];

	/* stands for the ciphertext: nothing of the token in it */
	snprintf(input, sizeof(input), "openpgp:ENCRYPTED-%u", n++);
	owed_key(f->o, token, strlen(token), k);
	return owed_add(f->o, k, token, strlen(token), input, strlen(input),
	    1000, due);
}

static void
test_commit_and_read_back(void **state)
{
	struct fixture *f = *state;
	struct owed_row rows[8];
	uint8_t key_before[SIPHASH_KEY_LEN];
	struct owed_item *it;
	char err[ERR_LEN];
	int n;

	assert_non_null(add(f, "tok-a", 5000));
	assert_non_null(it = add(f, "tok-b", 6000));
	assert_int_equal(owed_store_commit(f->s, f->o, err), 0);
	assert_true(owed_journal_empty(f->o));
	assert_null(it->input);			/* stored: dropped here */
	assert_int_equal(owed_store_count(f->s, err), 2);
	/* a stored item changes: an update without its input */
	it->due_ms = 7000;
	it->attempts = 3;
	owed_changed(f->o, it);
	assert_int_equal(owed_store_commit(f->s, f->o, err), 0);

	memcpy(key_before, f->key, sizeof(key_before));
	fixture_close(f);
	fixture_open(f);
	/* the key is the database's: the same after a reopen */
	assert_memory_equal(key_before, f->key, sizeof(key_before));
	n = owed_store_scan(f->s, NULL, 8, rows, err);
	assert_int_equal(n, 2);
	assert_true(memcmp(rows[0].key, rows[1].key, OWED_KEY_LEN) < 0);
	for (int i = 0; i < n; i++) {
		assert_memory_equal(rows[i].input, "openpgp:ENCRYPTED-", 18);
		if (rows[i].due_ms == 7000)
			assert_int_equal(rows[i].attempts, 3);
		else
			assert_int_equal(rows[i].due_ms, 5000);
		assert_int_equal(rows[i].first_ms, 1000);
	}
	/* paging: after the first key, the second only */
	{
		struct owed_row more[8];

		assert_int_equal(owed_store_scan(f->s, rows[0].key, 8, more,
		    err), 1);
		assert_memory_equal(more[0].key, rows[1].key, OWED_KEY_LEN);
		assert_int_equal(owed_store_scan(f->s, rows[1].key, 8, more,
		    err), 0);
		owed_rows_clear(more, 1);
	}
	/* forget one, commit: one row left */
	owed_forget(f->o, rows[0].key);
	assert_int_equal(owed_store_commit(f->s, f->o, err), 0);
	assert_int_equal(owed_store_count(f->s, err), 1);
	owed_rows_clear(rows, (size_t)n);
}

/* Remove, re-add the same token before the commit: deletes go first, so
 * the new row survives. */
static void
test_delete_then_add(void **state)
{
	struct fixture *f = *state;
	struct owed_item *it;
	char err[ERR_LEN];

	assert_non_null(it = add(f, "tok-c", 1));
	assert_int_equal(owed_store_commit(f->s, f->o, err), 0);
	owed_remove(f->o, it);
	assert_non_null(add(f, "tok-c", 2));
	assert_int_equal(owed_store_commit(f->s, f->o, err), 0);
	assert_int_equal(owed_store_count(f->s, err), 1);
}

/* The database refuses (read-only): nothing is marked stored, the journal
 * stays for the next try. */
static void
test_failed_commit_keeps_journal(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN];

	assert_non_null(add(f, "tok-d", 1));
	assert_int_equal(db_exec(f->db.db, "PRAGMA query_only=1", err), 0);
	assert_int_equal(owed_store_commit(f->s, f->o, err), -1);
	assert_false(owed_journal_empty(f->o));
	assert_int_equal(db_exec(f->db.db, "PRAGMA query_only=0", err), 0);
	assert_int_equal(owed_store_commit(f->s, f->o, err), 0);
	assert_int_equal(owed_store_count(f->s, err), 1);
}

/* Nothing of the clear token reaches the file. */
static void
test_no_clear_token_on_disk(void **state)
{
	struct fixture *f = *state;
	const char *clear = "0123456789abcdef0123456789abcdefCLEARTOKEN";
	char err[ERR_LEN], *buf;
	FILE *fp;
	long len;

	assert_non_null(add(f, clear, 1));
	assert_int_equal(owed_store_commit(f->s, f->o, err), 0);
	fixture_close(f);		/* checkpoints the WAL into the file */
	fixture_open(f);		/* (teardown closes it) */
	assert_non_null(fp = fopen(f->path, "rb"));
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)len);
	assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	assert_null(memmem(buf, (size_t)len, "0123456789abcdef0123", 20));
	assert_non_null(memmem(buf, (size_t)len, "openpgp:ENCRYPTED-", 18));
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_and_read_back,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_then_add, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_failed_commit_keeps_journal,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_clear_token_on_disk,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
