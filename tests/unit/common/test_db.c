/* Unit tests of common/db.c and common/relay_db.c on real SQLite files in
 * a temporary directory: WAL and pragmas on open, migrations run once and
 * in one transaction, a newer schema refused, and the relay schema. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "clock.h"
#include "db.h"
#include "relay_db.h"

#define NELEM(a)	(sizeof(a) / sizeof(*(a)))

struct fixture {
	char	 dir[64];
	char	 path[128];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/test_db.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	struct dirent *de;
	char p[512];
	DIR *d;

	if ((d = opendir(f->dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", f->dir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	if (rmdir(f->dir) < 0) {
		print_error("cannot remove %s\n", f->dir);
		free(f);
		return -1;
	}
	free(f);
	return 0;
}

/* The first column of the first row of sql as text ("" for no row or
 * NULL), copied into out. */
static const char *
query_text(sqlite3 *db, const char *sql, char *out, size_t outsz)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("prepare \"%s\": %s", sql, sqlite3_errmsg(db));
	out[0] = '\0';
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
		snprintf(out, outsz, "%s", sqlite3_column_text(st, 0));
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		fail_msg("step \"%s\": %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return out;
}

static long long
query_int(sqlite3 *db, const char *sql)
{
	char buf[64];

	return strtoll(query_text(db, sql, buf, sizeof(buf)), NULL, 10);
}

static int
table_exists(sqlite3 *db, const char *name)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM sqlite_master "
	    "WHERE type = 'table' AND name = '%s'", name);
	return query_int(db, sql) == 1;
}

/* ---- db_open ----------------------------------------------------------- */

static void
test_open_sets_wal_and_pragmas(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN] = "", buf[64];
	sqlite3 *db;

	db = db_open(f->path, DB_SYNC_NORMAL, err);
	if (db == NULL)
		fail_msg("db_open: %s", err);
	assert_string_equal(query_text(db, "PRAGMA journal_mode", buf,
	    sizeof(buf)), "wal");
	assert_int_equal(query_int(db, "PRAGMA synchronous"), 1);  /* NORMAL */
	assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
	assert_int_equal(query_int(db, "PRAGMA busy_timeout"),
	    DB_BUSY_TIMEOUT_MS);
	assert_int_equal(access(f->path, F_OK), 0);	/* created */
	db_close(db);

	/* WAL is a property of the file: a plain open still sees it. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_string_equal(query_text(db, "PRAGMA journal_mode", buf,
	    sizeof(buf)), "wal");
	sqlite3_close(db);
}

/* The mode of path + suffix, or -1 when it does not exist. */
static int
file_mode(const char *path, const char *suffix)
{
	char p[256];
	struct stat sb;

	snprintf(p, sizeof(p), "%s%s", path, suffix);
	return stat(p, &sb) < 0 ? -1 : (int)(sb.st_mode & 07777);
}

static void
test_open_creates_0600_whatever_the_umask(void **state)
{
	struct fixture *f = *state;
	const mode_t masks[] = { 0, 022, 0277 };
	char err[ERR_LEN] = "";
	sqlite3 *db;

	for (size_t i = 0; i < NELEM(masks); i++) {
		mode_t old = umask(masks[i]);

		unlink(f->path);
		db = db_open(f->path, DB_SYNC_NORMAL, err);
		umask(old);
		if (db == NULL)
			fail_msg("umask %03o: %s", (unsigned)masks[i], err);
		assert_int_equal(db_exec(db, "CREATE TABLE IF NOT EXISTS "
		    "t(x); INSERT INTO t VALUES (1)", err), 0);
		/* SQLite gives -wal and -shm the main file's mode. */
		if (file_mode(f->path, "") != DB_FILE_MODE ||
		    file_mode(f->path, "-wal") != DB_FILE_MODE ||
		    file_mode(f->path, "-shm") != DB_FILE_MODE)
			fail_msg("umask %03o: modes %o %o %o", (unsigned)masks[i],
			    file_mode(f->path, ""), file_mode(f->path, "-wal"),
			    file_mode(f->path, "-shm"));
		db_close(db);
	}
	/* An existing file keeps the mode its operator gave it. */
	assert_int_equal(chmod(f->path, 0640), 0);
	db = db_open(f->path, DB_SYNC_NORMAL, err);
	assert_non_null(db);
	assert_int_equal(file_mode(f->path, ""), 0640);
	db_close(db);
}

static void
test_open_sync_full(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN] = "";
	sqlite3 *db;

	db = db_open(f->path, DB_SYNC_FULL, err);
	assert_non_null(db);
	assert_int_equal(query_int(db, "PRAGMA synchronous"), 2);  /* FULL */
	db_close(db);
	db_close(NULL);
}

static void
test_open_fails(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN] = "", path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/missing-dir/x.db", f->dir);
	assert_null(db_open(path, DB_SYNC_NORMAL, err));
	assert_non_null(strstr(err, "missing-dir"));

	/* A file that is not a database fails at the first statement. */
	fp = fopen(f->path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 64; i++)
		fputs("not a database, ", fp);
	fclose(fp);
	err[0] = '\0';
	assert_null(db_open(f->path, DB_SYNC_NORMAL, err));
	assert_non_null(strstr(err, "not a database"));
}

static void
test_sync_parse(void **state)
{
	static const struct {
		const char	*in;
		int		 ok;
		enum db_sync	 sync;
	} cases[] = {
		{ "normal", 1, DB_SYNC_NORMAL },
		{ "full", 1, DB_SYNC_FULL },
		{ "", 0, 0 },
		{ "off", 0, 0 },
		{ "extra", 0, 0 },
		{ "norm", 0, 0 },
		{ "full ", 0, 0 },
		{ "fullx", 0, 0 },
		{ "1", 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		enum db_sync sync = (enum db_sync)99;
		int rc = db_sync_parse(cases[i].in, &sync);

		if (cases[i].ok && (rc != 0 || sync != cases[i].sync))
			fail_msg("row \"%s\": rc %d sync %d", cases[i].in, rc,
			    (int)sync);
		if (!cases[i].ok && (rc != -1 || sync != (enum db_sync)99))
			fail_msg("row \"%s\": accepted as %d", cases[i].in,
			    (int)sync);
	}
}

/* ---- db_migrate -------------------------------------------------------- */

/* Each migration records that it ran. */
static const char *const counting_migrations[] = {
	"CREATE TABLE runs(v INTEGER NOT NULL); INSERT INTO runs VALUES(0)",
	"INSERT INTO runs VALUES(1)",
	"INSERT INTO runs VALUES(2)",
};

#define RUNS_SQL \
	"SELECT group_concat(v, ',') FROM (SELECT v FROM runs ORDER BY rowid)"

static void
test_migrate_runs_once(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN] = "", buf[64];
	sqlite3 *db = db_open(f->path, DB_SYNC_NORMAL, err);

	assert_non_null(db);
	assert_int_equal(query_int(db, "PRAGMA user_version"), 0);
	if (db_migrate(db, counting_migrations, 2, err) < 0)
		fail_msg("migrate to 2: %s", err);
	assert_int_equal(query_int(db, "PRAGMA user_version"), 2);
	assert_string_equal(query_text(db, RUNS_SQL, buf, sizeof(buf)), "0,1");

	/* Idempotent: nothing runs again. */
	if (db_migrate(db, counting_migrations, 2, err) < 0)
		fail_msg("second migrate to 2: %s", err);
	assert_int_equal(query_int(db, "PRAGMA user_version"), 2);
	assert_string_equal(query_text(db, RUNS_SQL, buf, sizeof(buf)), "0,1");
	assert_int_equal(sqlite3_get_autocommit(db), 1);

	/* A later version runs only the new step, also after reopening. */
	db_close(db);
	db = db_open(f->path, DB_SYNC_NORMAL, err);
	assert_non_null(db);
	assert_int_equal(query_int(db, "PRAGMA user_version"), 2);
	if (db_migrate(db, counting_migrations, 3, err) < 0)
		fail_msg("migrate to 3: %s", err);
	assert_int_equal(query_int(db, "PRAGMA user_version"), 3);
	assert_string_equal(query_text(db, RUNS_SQL, buf, sizeof(buf)),
	    "0,1,2");
	if (db_migrate(db, counting_migrations, 3, err) < 0)
		fail_msg("second migrate to 3: %s", err);
	assert_string_equal(query_text(db, RUNS_SQL, buf, sizeof(buf)),
	    "0,1,2");
	db_close(db);
}

static void
test_migrate_to_zero(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN] = "";
	sqlite3 *db = db_open(f->path, DB_SYNC_NORMAL, err);

	assert_non_null(db);
	assert_int_equal(db_migrate(db, counting_migrations, 0, err), 0);
	assert_int_equal(query_int(db, "PRAGMA user_version"), 0);
	assert_false(table_exists(db, "runs"));
	db_close(db);
}

static void
test_migrate_refuses_newer(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN] = "";
	sqlite3 *db = db_open(f->path, DB_SYNC_NORMAL, err);

	assert_non_null(db);
	assert_int_equal(db_exec(db, "PRAGMA user_version=5", err), 0);
	assert_int_equal(db_migrate(db, counting_migrations, 3, err), -1);
	assert_non_null(strstr(err, "newer"));
	assert_non_null(strstr(err, "version 5"));
	assert_non_null(strstr(err, "3"));
	/* Untouched, and no transaction left open. */
	assert_int_equal(query_int(db, "PRAGMA user_version"), 5);
	assert_false(table_exists(db, "runs"));
	assert_int_equal(sqlite3_get_autocommit(db), 1);
	db_close(db);
}

/* A failing step rolls back the steps before it and the version. */
static void
test_migrate_failure_is_atomic(void **state)
{
	static const char *const broken[] = {
		"CREATE TABLE first(x)",
		"CREATE TABLE second(",
	};
	static const char *const fixed[] = {
		"CREATE TABLE first(x)",
		"CREATE TABLE second(y)",
	};
	struct fixture *f = *state;
	char err[ERR_LEN] = "";
	sqlite3 *db = db_open(f->path, DB_SYNC_NORMAL, err);

	assert_non_null(db);
	assert_int_equal(db_migrate(db, broken, 2, err), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(query_int(db, "PRAGMA user_version"), 0);
	assert_false(table_exists(db, "first"));
	assert_int_equal(sqlite3_get_autocommit(db), 1);

	if (db_migrate(db, fixed, 2, err) < 0)
		fail_msg("migrate after failure: %s", err);
	assert_true(table_exists(db, "first"));
	assert_true(table_exists(db, "second"));
	assert_int_equal(query_int(db, "PRAGMA user_version"), 2);
	db_close(db);
}

/* ---- small wrappers ----------------------------------------------------- */

static void
test_exec_prepare_errors(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN] = "";
	sqlite3 *db = db_open(f->path, DB_SYNC_NORMAL, err);
	sqlite3_stmt *st;

	assert_non_null(db);
	assert_int_equal(db_exec(db, "SELEC 1", err), -1);
	assert_non_null(strstr(err, "syntax error"));
	assert_null(db_prepare(db, "SELECT * FROM nowhere", err));
	assert_int_equal(strncmp(err, "prepare: ", 9), 0);
	assert_non_null(strstr(err, "nowhere"));

	assert_int_equal(db_exec(db, "CREATE TABLE t(x); INSERT INTO t "
	    "VALUES(1); INSERT INTO t VALUES(2)", err), 0);
	st = db_prepare(db, "SELECT sum(x) FROM t", err);
	assert_non_null(st);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 3);
	sqlite3_finalize(st);
	db_close(db);
}

static void
test_transactions(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN] = "";
	sqlite3 *db = db_open(f->path, DB_SYNC_NORMAL, err);

	assert_non_null(db);
	assert_int_equal(db_exec(db, "CREATE TABLE t(x)", err), 0);

	assert_int_equal(db_begin_immediate(db, err), 0);
	assert_int_equal(sqlite3_get_autocommit(db), 0);
	assert_int_equal(db_exec(db, "INSERT INTO t VALUES(1)", err), 0);
	db_rollback(db);
	assert_int_equal(sqlite3_get_autocommit(db), 1);
	assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 0);

	assert_int_equal(db_begin_immediate(db, err), 0);
	assert_int_equal(db_exec(db, "INSERT INTO t VALUES(2)", err), 0);
	assert_int_equal(db_commit(db, err), 0);
	assert_int_equal(query_int(db, "SELECT sum(x) FROM t"), 2);

	db_rollback(db);		/* no transaction: harmless */
	assert_int_equal(db_commit(db, err), -1);	/* nothing to commit */
	assert_true(err[0] != '\0');
	db_close(db);
}

static void
test_now_ms(void **state)
{
	time_t before, after;
	int64_t now;

	(void)state;
	before = time(NULL);
	now = clock_wall_ms();
	after = time(NULL);
	/* time() reads the coarse clock, which may lag clock_wall_ms()'s
	 * precise one by a tick: allow a second on each side. */
	assert_true(now >= ((int64_t)before - 1) * 1000);
	assert_true(now < ((int64_t)after + 2) * 1000);
}

/* ---- relay_db_open ---------------------------------------------------- */

static void
check_relay_schema(sqlite3 *db)
{
	char buf[256];

	assert_string_equal(query_text(db, "SELECT group_concat(name, ',') "
	    "FROM (SELECT name FROM sqlite_master WHERE type = 'table' "
	    "ORDER BY name)", buf, sizeof(buf)), "metadata,queue,tokens");
	assert_int_equal(query_int(db, "PRAGMA user_version"),
	    RELAY_DB_SCHEMA_VERSION);
	assert_string_equal(query_text(db, "PRAGMA journal_mode", buf,
	    sizeof(buf)), "wal");
	assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
}

static void
test_relay_db_open(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN] = "";
	sqlite3 *db, *db2;

	db = relay_db_open(f->path, DB_SYNC_NORMAL, err);
	if (db == NULL)
		fail_msg("relay_db_open: %s", err);
	check_relay_schema(db);

	/* A second process opening while the first is open: no re-run. */
	db2 = relay_db_open(f->path, DB_SYNC_FULL, err);
	if (db2 == NULL)
		fail_msg("second relay_db_open: %s", err);
	check_relay_schema(db2);
	db_close(db2);
	db_close(db);

	db = relay_db_open(f->path, DB_SYNC_NORMAL, err);
	assert_non_null(db);
	check_relay_schema(db);
	db_close(db);
}

static void
insert_token(sqlite3 *db, const char *user, const char *token, int want_ok)
{
	char err[ERR_LEN] = "";
	sqlite3_stmt *st = db_prepare(db, "INSERT INTO tokens(user, token, "
	    "token_hash, mailbox, updated_at) VALUES(?, ?, ?, '', 5)", err);
	int rc;

	if (st == NULL)
		fail_msg("%s", err);
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, token, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, relay_db_token_hash(token, strlen(token)));
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if ((rc == SQLITE_DONE) != want_ok)
		fail_msg("insert %s/%s: rc %d", user, token, rc);
}

static void
test_relay_db_tables(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN] = "", buf[128];
	sqlite3 *db = relay_db_open(f->path, DB_SYNC_NORMAL, err);

	assert_non_null(db);
	/* tokens: one row per (user, token). */
	insert_token(db, "alice", "tok1", 1);
	insert_token(db, "bob", "tok1", 1);
	insert_token(db, "alice", "tok2", 1);
	insert_token(db, "alice", "tok1", 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM tokens"), 3);

	/* queue defaults: waiting, no attempts. */
	assert_int_equal(db_exec(db, "INSERT INTO queue(token_id, user, "
	    "created_at, next_at) SELECT id, user, 1, 2 FROM tokens WHERE "
	    "user = 'alice'", err), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM queue WHERE "
	    "state = 0 AND attempts = 0"), 2);
	assert_int_equal(query_int(db, "SELECT DISTINCT state FROM queue"),
	    RELAY_QUEUE_WAITING);
	/* A job needs its token; deleting the token deletes its jobs. */
	assert_int_equal(db_exec(db, "INSERT INTO queue(token_id, user, "
	    "created_at, next_at) VALUES(999, 'x', 1, 2)", err), -1);
	assert_non_null(strstr(err, "FOREIGN KEY"));
	assert_int_equal(db_exec(db, "DELETE FROM tokens WHERE user = 'alice' "
	    "AND token = 'tok1'", err), 0);
	assert_int_equal(query_int(db, "SELECT count(*) FROM queue"), 1);

	/* metadata: value is required, a blob round-trips. */
	assert_int_equal(db_exec(db, "INSERT INTO metadata VALUES('', "
	    "'shared/k', NULL)", err), -1);
	assert_non_null(strstr(err, "NOT NULL"));
	assert_int_equal(db_exec(db, "INSERT INTO metadata VALUES('alice', "
	    "'priv/k', x'00ff')", err), 0);
	assert_string_equal(query_text(db, "SELECT hex(value) FROM metadata",
	    buf, sizeof(buf)), "00FF");
	db_close(db);
}

/* 63 bits of SHA-256: the first 8 bytes, big-endian, shifted right. */
static void
test_relay_token_hash(void **state)
{
	static const struct {
		const char	*name;
		const char	*in;
		size_t		 len;
		int64_t		 want;
	} cases[] = {
		/* sha256("") = e3b0c44298fc1c14..., sha256("tok1") =
		 * 80b3ad2d438bfafa..., sha256("abc") = ba7816bf8f01cfea... */
		{ "empty", "", 0, (int64_t)(0xe3b0c44298fc1c14ULL >> 1) },
		{ "tok1", "tok1", 4, (int64_t)(0x80b3ad2d438bfafaULL >> 1) },
		{ "abc", "abc", 3, (int64_t)(0xba7816bf8f01cfeaULL >> 1) },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		int64_t h = relay_db_token_hash(cases[i].in, cases[i].len);

		if (h != cases[i].want)
			fail_msg("row %s: %lld, expected %lld", cases[i].name,
			    (long long)h, (long long)cases[i].want);
		if (h < 0)
			fail_msg("row %s: negative", cases[i].name);
	}
	assert_true(relay_db_token_hash("tok1", 4) !=
	    relay_db_token_hash("tok2", 4));
	assert_true(relay_db_token_hash("a\0b", 3) !=
	    relay_db_token_hash("a", 1));
}

static void
test_relay_db_refuses_newer(void **state)
{
	struct fixture *f = *state;
	char err[ERR_LEN] = "", path[256];
	sqlite3 *db = db_open(f->path, DB_SYNC_NORMAL, err);

	assert_non_null(db);
	assert_int_equal(db_exec(db, "PRAGMA user_version=2", err), 0);
	db_close(db);
	err[0] = '\0';
	assert_null(relay_db_open(f->path, DB_SYNC_NORMAL, err));
	assert_non_null(strstr(err, "newer"));

	snprintf(path, sizeof(path), "%s/missing-dir/relay.db", f->dir);
	err[0] = '\0';
	assert_null(relay_db_open(path, DB_SYNC_NORMAL, err));
	assert_true(err[0] != '\0');
}

int
main(void)
{
#define T(fn)	cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_open_sets_wal_and_pragmas),
		T(test_open_creates_0600_whatever_the_umask),
		T(test_open_sync_full),
		T(test_open_fails),
		cmocka_unit_test(test_sync_parse),
		T(test_migrate_runs_once),
		T(test_migrate_to_zero),
		T(test_migrate_refuses_newer),
		T(test_migrate_failure_is_atomic),
		T(test_exec_prepare_errors),
		T(test_transactions),
		cmocka_unit_test(test_now_ms),
		T(test_relay_db_open),
		T(test_relay_db_tables),
		cmocka_unit_test(test_relay_token_hash),
		T(test_relay_db_refuses_newer),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
