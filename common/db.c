/* SQLite open helper and small transaction wrappers; see db.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"

/* Creates path with DB_FILE_MODE if it does not exist; an existing file
 * keeps its mode. SQLite would create it 0644 & ~umask, and its -wal and
 * -shm files take the main file's mode, so this sets all three. Paths
 * SQLite treats specially (":memory:", "" for a temporary database,
 * "file:" URIs) are left to it. */
static int
db_create(const char *path, char err[ERR_LEN])
{
	int fd;

	if (path[0] == '\0' || strcmp(path, ":memory:") == 0 ||
	    strncmp(path, "file:", 5) == 0)
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, DB_FILE_MODE);
	if (fd < 0) {
		if (errno == EEXIST)
			return 0;
		err_set(err, "create %s: %s", path, strerror(errno));
		return -1;
	}
	/* open() applied the umask, which may take more (0277 would leave
	 * the file unwritable): the mode is set exactly. */
	if (fchmod(fd, DB_FILE_MODE) < 0) {
		err_set(err, "chmod %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

sqlite3 *
db_open(const char *path, enum db_sync sync, char err[ERR_LEN])
{
	sqlite3 *db = NULL;
	int rc;

	if (db_create(path, err) < 0)
		return NULL;
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		err_set(err, "open %s: %s", path,
		    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, DB_BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(db, 1);
	if (db_exec(db, "PRAGMA journal_mode=WAL", err) < 0 ||
	    db_exec(db, sync == DB_SYNC_FULL ? "PRAGMA synchronous=FULL" :
	    "PRAGMA synchronous=NORMAL", err) < 0 ||
	    /* Reads straight from the page cache (no read() per page) and a
	     * 64 MiB cache: lookups are the hot path. */
	    db_exec(db, "PRAGMA mmap_size=1073741824", err) < 0 ||
	    db_exec(db, "PRAGMA cache_size=-65536", err) < 0 ||
	    /* Give back the WAL's disk space after a burst. */
	    db_exec(db, "PRAGMA journal_size_limit=67108864", err) < 0 ||
	    db_exec(db, "PRAGMA foreign_keys=ON", err) < 0) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

void
db_close(sqlite3 *db)
{
	if (db == NULL)
		return;
	/* Every statement must be finalized by its owner first; close_v2
	 * would hide a leak by deferring the close. */
	sqlite3_close(db);
}

int
db_sync_parse(const char *s, enum db_sync *sync_out)
{
	if (strcasecmp(s, "normal") == 0)
		*sync_out = DB_SYNC_NORMAL;
	else if (strcasecmp(s, "full") == 0)
		*sync_out = DB_SYNC_FULL;
	else
		return -1;
	return 0;
}

int
db_exec(sqlite3 *db, const char *sql, char err[ERR_LEN])
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		err_set(err, "%s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

sqlite3_stmt *
db_prepare(sqlite3 *db, const char *sql, char err[ERR_LEN])
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
	    NULL) != SQLITE_OK) {
		err_set(err, "prepare: %s", sqlite3_errmsg(db));
		return NULL;
	}
	return st;
}

sqlite3_stmt *
db_stmt_ready(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

int
db_stmt_fail(sqlite3_stmt *st, char err[ERR_LEN])
{
	err_set(err, "sqlite: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
	sqlite3_reset(st);
	return -1;
}

int
db_stmt_run(sqlite3_stmt *st, char err[ERR_LEN])
{
	if (sqlite3_step(st) != SQLITE_DONE)
		return db_stmt_fail(st, err);
	sqlite3_reset(st);
	return 0;
}

int
db_stmt_int64(sqlite3_stmt *st, int64_t *out, char err[ERR_LEN])
{
	int found;

	if (sqlite3_step(st) != SQLITE_ROW)
		return db_stmt_fail(st, err);
	found = sqlite3_column_type(st, 0) != SQLITE_NULL;
	if (found)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return found;
}

int
db_migrate(sqlite3 *db, const char *const *migrations, int version,
    char err[ERR_LEN])
{
	sqlite3_stmt *st;
	int current;
	char sql[64];

	if (db_begin_immediate(db, err) < 0)
		return -1;
	if ((st = db_prepare(db, "PRAGMA user_version", err)) == NULL)
		goto fail;
	current = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) :
	    0;
	sqlite3_finalize(st);
	if (current > version) {
		err_set(err, "database schema version %d is newer than this "
		    "program's %d", current, version);
		goto fail;
	}
	for (int v = current; v < version; v++)
		if (db_exec(db, migrations[v], err) < 0)
			goto fail;
	snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", version);
	if (db_exec(db, sql, err) < 0 || db_commit(db, err) < 0)
		goto fail;
	return 0;
fail:
	db_rollback(db);
	return -1;
}

int
db_begin_immediate(sqlite3 *db, char err[ERR_LEN])
{
	return db_exec(db, "BEGIN IMMEDIATE", err);
}

int
db_commit(sqlite3 *db, char err[ERR_LEN])
{
	return db_exec(db, "COMMIT", err);
}

void
db_rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}
