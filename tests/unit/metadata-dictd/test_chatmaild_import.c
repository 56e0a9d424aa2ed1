/* Unit tests of metadata-dictd/chatmaild_import.c on a generated tree of
 * chatmaild's layout (<vmail>/<addr>/metadata.json in both forms,
 * <vmail>/pending_notifications/<uuid>) and a real relay database:
 * timestamps kept, lookups answering on any mailbox, idempotency, garbage
 * skipped and counted with its log line, oversized files refused, queue
 * files turned into jobs, and no token ever in a log line. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "dictd.h"
#include "log.h"
#include "testutil.h"

#define G	"455d042d2ed60a6b1c36000083ecc375"
#define G2	"60555b3034d60a6b1c36000083ecc375"
#define TTL_MS	(90LL * 86400 * 1000)
#define NOW_S	1700000000LL
#define NOW	(NOW_S * 1000 + 123)
#define ALICE	"alice@example.org"
#define BOB	"bob@example.org"
#define PENDING	"pending_notifications"

struct fixture {
	char			 dir[TESTUTIL_DIR_LEN];
	char			 db[TESTUTIL_PATH_LEN];
	char			 vmail[TESTUTIL_PATH_LEN];
	struct dict_store	*store;
	struct chatmaild_import_report r;
	char			**lines;	/* captured log lines */
	size_t			 nlines;
};

static void
capture(enum log_level level, const char *line, void *arg)
{
	struct fixture *f = arg;

	(void)level;
	f->lines = realloc(f->lines, (f->nlines + 1) * sizeof(*f->lines));
	assert_non_null(f->lines);
	f->lines[f->nlines] = strdup(line);
	assert_non_null(f->lines[f->nlines]);
	f->nlines++;
}

static void
lines_clear(struct fixture *f)
{
	for (size_t i = 0; i < f->nlines; i++)
		free(f->lines[i]);
	free(f->lines);
	f->lines = NULL;
	f->nlines = 0;
}

/* How many captured lines hold every one of the (NULL-ended) parts. */
static size_t
lines_with(struct fixture *f, ...)
{
	size_t n = 0;

	for (size_t i = 0; i < f->nlines; i++) {
		va_list ap;
		const char *part;
		bool all = true;

		va_start(ap, f);
		while ((part = va_arg(ap, const char *)) != NULL)
			if (strstr(f->lines[i], part) == NULL)
				all = false;
		va_end(ap);
		n += all;
	}
	return n;
}

static void
assert_no_line_has(struct fixture *f, const char *secret)
{
	for (size_t i = 0; i < f->nlines; i++)
		if (strstr(f->lines[i], secret) != NULL)
			fail_msg("log line holds a token: %s", f->lines[i]);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[ERR_LEN];

	testutil_db_dir(f->dir, "test_chatmaild", "relay.db", f->db);
	snprintf(f->vmail, sizeof(f->vmail), "%s/vmail", f->dir);
	assert_int_equal(mkdir(f->vmail, 0755), 0);
	f->store = dict_store_open(f->db, DB_SYNC_NORMAL, TTL_MS, err);
	assert_non_null(f->store);
	log_init("test", LOG_LEVEL_INFO);
	log_set_sink(capture, f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[TESTUTIL_PATH_LEN + 16];

	log_set_sink(NULL, NULL);
	lines_clear(f);
	dict_store_close(f->store);
	snprintf(cmd, sizeof(cmd), "rm -rf %s/vmail", f->dir);
	assert_int_equal(system(cmd), 0);
	testutil_db_dir_remove(f->dir, f->db);
	free(f);
	return 0;
}

/* <vmail>/<rel>, with its parent directory made. */
static void
put(struct fixture *f, const char *rel, const void *data, size_t len)
{
	char path[512], *slash;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", f->vmail, rel);
	slash = strrchr(path, '/');
	*slash = '\0';
	mkdir(path, 0755);
	*slash = '/';
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void
puts_(struct fixture *f, const char *rel, const char *text)
{
	put(f, rel, text, strlen(text));
}

static void
putf(struct fixture *f, const char *rel, const char *fmt, ...)
{
	char text[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	puts_(f, rel, text);
}

static void
mkdir_(struct fixture *f, const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", f->vmail, rel);
	assert_int_equal(mkdir(path, 0755), 0);
}

static int
run(struct fixture *f, int64_t now)
{
	char err[ERR_LEN];
	int rc;

	rc = chatmaild_import_run(f->store, f->vmail, now, TTL_MS, &f->r, err);
	if (rc < 0)
		fail_msg("import failed: %s", err);
	return rc;
}

static int64_t
count(struct fixture *f, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t n;

	dict_store_read_end(f->store);
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* Every row of tokens and queue as one string (caller frees), to show
 * that a second import changed nothing. */
static char *
dump(struct fixture *f)
{
	static const char *const sql[] = {
		"SELECT id, user, token, token_hash, mailbox, updated_at "
		"FROM tokens ORDER BY id",
		"SELECT id, token_id, user, created_at, attempts, next_at, "
		"state FROM queue ORDER BY id",
	};
	struct buf b;
	sqlite3 *db;
	sqlite3_stmt *st;

	dict_store_read_end(f->store);
	buf_init(&b);
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(sqlite3_prepare_v2(db, sql[i], -1, &st, NULL),
		    SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW) {
			for (int c = 0; c < sqlite3_column_count(st); c++)
				buf_printf(&b, "%s|", (const char *)
				    sqlite3_column_text(st, c));
			buf_append_char(&b, '\n');
		}
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return buf_steal(&b, NULL);
}

static void
assert_lookup(struct fixture *f, const char *user, const char *key,
    const char *expected)
{
	struct buf b;
	char err[ERR_LEN];
	int rc;

	buf_init(&b);
	rc = dict_store_lookup(f->store, user, key, NOW, &b, err);
	assert_true(rc >= 0);
	if (expected == NULL && rc != 0)
		fail_msg("lookup %s: expected none, got \"%s\"", key, b.data);
	if (expected != NULL && (rc == 0 || strcmp(b.data, expected) != 0))
		fail_msg("lookup %s: expected \"%s\", got \"%s\"", key,
		    expected, rc ? b.data : "(none)");
	buf_clear(&b);
	dict_store_read_end(f->store);
}

static uint64_t
skipped_total(const struct chatmaild_import_report *r)
{
	uint64_t n = 0;

	for (int i = 0; i < CHATMAILD_SKIP_COUNT; i++)
		n += r->skipped[i];
	return n;
}

static void
test_both_forms_with_timestamps(void **state)
{
	struct fixture *f = *state;

	/* alice: the dict form; bob: the older list form. */
	putf(f, ALICE "/metadata.json", "{\"devicetoken\": {\"tokA1\": %lld, "
	    "\"tokA2\": %lld}}", NOW_S - 86400, NOW_S - 100);
	puts_(f, BOB "/metadata.json", "{\"devicetoken\": [\"tokB1\", "
	    "\"tokB2\"]}");
	/* A user who never registered a device. */
	mkdir_(f, "carol@example.org");
	puts_(f, "carol@example.org/password", "x");

	run(f, NOW);
	assert_int_equal(f->r.users, 3);
	assert_int_equal(f->r.metadata_files, 2);
	assert_int_equal(f->r.tokens_imported, 4);
	assert_int_equal(f->r.tokens_present + f->r.tokens_refreshed +
	    f->r.tokens_expired + f->r.tokens_invalid, 0);
	assert_int_equal(skipped_total(&f->r), 0);

	/* The file's timestamps, in ms; the list form gets the import's
	 * time, as chatmaild gives it when it reads that form. */
	assert_int_equal(count(f, "SELECT updated_at FROM tokens "
	    "WHERE token = 'tokA1'"), (NOW_S - 86400) * 1000);
	assert_int_equal(count(f, "SELECT updated_at FROM tokens "
	    "WHERE token = 'tokA2'"), (NOW_S - 100) * 1000);
	assert_int_equal(count(f, "SELECT count(*) FROM tokens "
	    "WHERE user = '" BOB "' AND updated_at = " "1700000000123"), 2);
	assert_int_equal(count(f, "SELECT count(*) FROM tokens "
	    "WHERE mailbox != ''"), 0);

	/* As the daemon answers them: oldest first, on any mailbox. */
	assert_lookup(f, ALICE, "priv/" G "/devicetoken", "tokA1 tokA2");
	assert_lookup(f, ALICE, "priv/" G2 "/devicetoken", "tokA1 tokA2");
	assert_lookup(f, BOB, "priv/" G "/devicetoken", "tokB1 tokB2");
	assert_lookup(f, "carol@example.org", "priv/" G "/devicetoken", NULL);
}

static void
test_rows_are_the_daemons(void **state)
{
	struct fixture *f = *state;
	struct dict_txn *t;
	struct dict_apply_counts counts = { 0 };
	char err[ERR_LEN];

	putf(f, ALICE "/metadata.json", "{\"devicetoken\": {\"tokA1\": %lld}}",
	    NOW_S - 100);
	run(f, NOW);
	/* The device sets its token again through Dovecot: the same row,
	 * now on its mailbox and fresh, never a second one. */
	t = dict_txn_new(1, ALICE);
	dict_txn_add(t, DICT_CHANGE_SET, "priv/" G "/devicetoken", "tokA1", 5,
	    0);
	dict_txn_add(t, DICT_CHANGE_SET, "priv/" G "/messagenew", "", 0, 0);
	assert_int_equal(dict_store_batch_begin(f->store, err), 0);
	assert_int_equal(dict_store_apply(f->store, t, NOW + 5, &counts, err),
	    DICT_COMMIT_OK);
	assert_int_equal(dict_store_batch_commit(f->store, err), 0);
	dict_txn_free(t);
	assert_int_equal(counts.queued, 1);
	assert_int_equal(count(f, "SELECT count(*) FROM tokens"), 1);
	assert_int_equal(count(f, "SELECT updated_at FROM tokens"), NOW + 5);
	assert_int_equal(count(f, "SELECT mailbox = '" G "' FROM tokens"), 1);
	/* A second import does not move it back. */
	run(f, NOW + 10);
	assert_int_equal(f->r.tokens_present, 1);
	assert_int_equal(count(f, "SELECT updated_at FROM tokens"), NOW + 5);
	assert_int_equal(count(f, "SELECT mailbox = '" G "' FROM tokens"), 1);
}

static void
test_idempotent(void **state)
{
	struct fixture *f = *state;
	char *before, *after;

	putf(f, ALICE "/metadata.json", "{\"devicetoken\": {\"tokA1\": %lld, "
	    "\"tokA2\": %lld}}", NOW_S - 100, NOW_S - 50);
	puts_(f, BOB "/metadata.json", "{\"devicetoken\": [\"tokB1\"]}");
	putf(f, PENDING "/0123456789abcdef0123456789abcdef",
	    ALICE "\n%lld\ntokA1", NOW_S - 10);
	putf(f, PENDING "/1123456789abcdef0123456789abcdef",
	    BOB "\n%lld\ntokB1", NOW_S - 20);
	puts_(f, PENDING "/garbage", "not a queue item");

	run(f, NOW);
	assert_int_equal(f->r.tokens_imported, 3);
	assert_int_equal(f->r.pending_queued, 2);
	assert_int_equal(skipped_total(&f->r), 1);
	before = dump(f);

	/* Later, as an operator runs it again: nothing changes. */
	run(f, NOW + 60000);
	after = dump(f);
	assert_string_equal(before, after);
	assert_int_equal(f->r.tokens_imported, 0);
	assert_int_equal(f->r.tokens_refreshed, 0);
	assert_int_equal(f->r.tokens_present, 3);
	assert_int_equal(f->r.pending_queued, 0);
	assert_int_equal(f->r.pending_present, 2);
	assert_int_equal(f->r.skipped[CHATMAILD_SKIP_BAD_FORMAT], 1);
	free(before);
	free(after);
}

static void
test_newer_file_refreshes(void **state)
{
	struct fixture *f = *state;

	putf(f, ALICE "/metadata.json", "{\"devicetoken\": {\"tokA1\": %lld}}",
	    NOW_S - 1000);
	run(f, NOW);
	/* chatmaild kept running and saw the device again. */
	putf(f, ALICE "/metadata.json", "{\"devicetoken\": {\"tokA1\": %lld}}",
	    NOW_S - 10);
	run(f, NOW + 1);
	assert_int_equal(f->r.tokens_refreshed, 1);
	assert_int_equal(f->r.tokens_imported, 0);
	assert_int_equal(count(f, "SELECT updated_at FROM tokens"),
	    (NOW_S - 10) * 1000);
	/* An older file never moves it back. */
	putf(f, ALICE "/metadata.json", "{\"devicetoken\": {\"tokA1\": %lld}}",
	    NOW_S - 500);
	run(f, NOW + 2);
	assert_int_equal(f->r.tokens_present, 1);
	assert_int_equal(count(f, "SELECT updated_at FROM tokens"),
	    (NOW_S - 10) * 1000);
}

static void
test_token_checks(void **state)
{
	struct fixture *f = *state;
	static char big[DICT_TOKEN_MAX_BYTES + 64], json[3 * sizeof(big)];
	const char *spaced = "has a space and secret0123456789";

	/* 8 KiB is the daemon's own limit: exactly that is taken. */
	memset(big, 'x', DICT_TOKEN_MAX_BYTES + 1);
	big[DICT_TOKEN_MAX_BYTES + 1] = '\0';
	snprintf(json, sizeof(json), "{\"devicetoken\": {\"%s\": %lld, "
	    "\"%.*s\": %lld, \"%s\": %lld, \"ctl\\u0001secret01234567\": %lld, "
	    "\"old\": %lld, \"future\": %lld, \"edge\": %lld}}",
	    big, NOW_S, DICT_TOKEN_MAX_BYTES, big, NOW_S, spaced, NOW_S, NOW_S,
	    NOW_S - TTL_MS / 1000 - 1, NOW_S + 3600, NOW_S + 59);
	puts_(f, ALICE "/metadata.json", json);

	run(f, NOW);
	assert_int_equal(f->r.tokens_imported, 2);	/* 8 KiB and edge */
	assert_int_equal(f->r.tokens_invalid, 4);	/* big, space, ctl,
							 * future */
	assert_int_equal(f->r.tokens_expired, 1);
	assert_int_equal(count(f, "SELECT max(length(token)) FROM tokens"),
	    DICT_TOKEN_MAX_BYTES);
	assert_int_equal(count(f, "SELECT count(*) FROM tokens "
	    "WHERE token = 'edge'"), 1);
	/* Each refused token is logged by its digest, never itself. */
	assert_int_equal(lines_with(f, "skipped user=" ALICE " token=",
	    NULL), 4);
	assert_int_equal(lines_with(f, "too long", NULL), 1);
	assert_int_equal(lines_with(f, "in the future", NULL), 1);
	assert_no_line_has(f, "secret0123456789");
	assert_no_line_has(f, "secret01234567");
	assert_no_line_has(f, "xxxxxxxxxxxxxxxx");
}

static void
test_garbage_skipped_and_counted(void **state)
{
	struct fixture *f = *state;
	char path[512];

	puts_(f, "bad@@example.org/metadata.json", "{\"devicetoken\": []}");
	puts_(f, "sp ace@example.org/metadata.json", "{}");
	puts_(f, "file@example.org", "a file where a directory belongs");
	puts_(f, "c1@example.org/metadata.json", "{\"devicetoken\": [\"t\"");
	puts_(f, "c2@example.org/metadata.json", "[\"tok\"]");
	puts_(f, "c3@example.org/metadata.json", "{\"devicetoken\": \"tok\"}");
	puts_(f, "c4@example.org/metadata.json", "");
	mkdir_(f, "c5@example.org");
	mkdir_(f, "c5@example.org/metadata.json");
	/* A symlink could point anywhere; never followed. */
	puts_(f, "c6@example.org/elsewhere.json", "{\"devicetoken\": "
	    "[\"stolen\"]}");
	snprintf(path, sizeof(path), "%s/c6@example.org/metadata.json",
	    f->vmail);
	assert_int_equal(symlink("elsewhere.json", path), 0);
	snprintf(path, sizeof(path), "%s/c7@example.org", f->vmail);
	assert_int_equal(symlink("c1@example.org", path), 0);
	snprintf(path, sizeof(path), "%s/c8@example.org", f->vmail);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/c8@example.org/metadata.json",
	    f->vmail);
	assert_int_equal(mkfifo(path, 0644), 0);
	/* Not users at all: ignored without a word. */
	mkdir_(f, "lost+found");
	puts_(f, "passdb.sqlite", "x");
	/* chatmaild's own leftovers next to a good file. */
	puts_(f, "good@example.org/metadata.json", "{\"devicetoken\": "
	    "[\"tokG\"]}");
	puts_(f, "good@example.org/metadata.json.lock", "");
	puts_(f, "good@example.org/metadata.json.tmp", "{\"devicetoken\": "
	    "[\"half");

	run(f, NOW);
	assert_int_equal(f->r.skipped[CHATMAILD_SKIP_BAD_ADDRESS], 2);
	assert_int_equal(f->r.skipped[CHATMAILD_SKIP_WRONG_TYPE], 5);
	assert_int_equal(f->r.skipped[CHATMAILD_SKIP_BAD_FORMAT], 4);
	assert_int_equal(skipped_total(&f->r), 11);
	assert_int_equal(f->r.metadata_files, 1);
	assert_int_equal(f->r.tokens_imported, 1);
	assert_int_equal(count(f, "SELECT count(*) FROM tokens"), 1);
	assert_lookup(f, "good@example.org", "priv/" G "/devicetoken", "tokG");

	/* One warning per file, naming it and the reason. */
	assert_int_equal(lines_with(f, "file=bad@@example.org ",
	    "reason=bad_address", NULL), 1);
	assert_int_equal(lines_with(f, "file=file@example.org ",
	    "reason=wrong_type", "not a directory", NULL), 1);
	assert_int_equal(lines_with(f, "file=c1@example.org/metadata.json ",
	    "reason=bad_format", "invalid JSON", NULL), 1);
	assert_int_equal(lines_with(f, "file=c2@example.org/metadata.json ",
	    "reason=bad_format", "not a JSON object", NULL), 1);
	assert_int_equal(lines_with(f, "file=c5@example.org/metadata.json ",
	    "reason=wrong_type", NULL), 1);
	assert_int_equal(lines_with(f, "file=c6@example.org/metadata.json ",
	    "reason=wrong_type", "symbolic link", NULL), 1);
	assert_int_equal(lines_with(f, "file=c7@example.org ",
	    "reason=wrong_type", NULL), 1);
	assert_int_equal(lines_with(f, "file=c8@example.org/metadata.json ",
	    "reason=wrong_type", NULL), 1);
	assert_int_equal(lines_with(f, "reason=", NULL), 11);
	assert_int_equal(lines_with(f, "lost+found", NULL), 0);
	assert_no_line_has(f, "stolen");
}

static void
test_oversized_refused(void **state)
{
	struct fixture *f = *state;
	const char *head = "{\"devicetoken\": [\"tokBig\"]}";
	size_t max = CHATMAILD_METADATA_MAX_BYTES;
	char *data = malloc(max + 1);

	/* Valid JSON padded with spaces: exactly the limit is read... */
	memset(data, ' ', max + 1);
	memcpy(data, head, strlen(head));
	put(f, "edge@example.org/metadata.json", data, max);
	/* ...one byte more is refused unread. */
	put(f, "big@example.org/metadata.json", data, max + 1);
	free(data);
	data = calloc(1, CHATMAILD_PENDING_MAX_BYTES + 1);
	snprintf(data, 64, "edge@example.org\n%lld\ntokBig", NOW_S - 5);
	memset(data + strlen(data), 'x', CHATMAILD_PENDING_MAX_BYTES + 1 -
	    strlen(data));
	put(f, PENDING "/big", data, CHATMAILD_PENDING_MAX_BYTES + 1);
	free(data);

	run(f, NOW);
	assert_int_equal(f->r.skipped[CHATMAILD_SKIP_TOO_LARGE], 2);
	assert_int_equal(skipped_total(&f->r), 2);
	assert_int_equal(f->r.tokens_imported, 1);
	assert_lookup(f, "edge@example.org", "priv/" G "/devicetoken",
	    "tokBig");
	assert_lookup(f, "big@example.org", "priv/" G "/devicetoken", NULL);
	assert_int_equal(lines_with(f, "file=big@example.org/metadata.json ",
	    "reason=too_large", NULL), 1);
	assert_int_equal(lines_with(f, "file=" PENDING "/big ",
	    "reason=too_large", NULL), 1);
	assert_int_equal(count(f, "SELECT count(*) FROM queue"), 0);
}

static void
test_pending_files_queued(void **state)
{
	struct fixture *f = *state;

	putf(f, ALICE "/metadata.json", "{\"devicetoken\": {\"tokA1\": %lld, "
	    "\"tokA2\": %lld, \"tokOld\": %lld}}", NOW_S - 100, NOW_S - 100,
	    NOW_S - TTL_MS / 1000 - 10);
	puts_(f, BOB "/metadata.json", "{\"devicetoken\": [\"tokB1\"]}");
	/* Two mails for alice while her devices were away: one job per
	 * token, as the daemon coalesces new mail. */
	putf(f, PENDING "/a1", ALICE "\n%lld\ntokA1", NOW_S - 30);
	putf(f, PENDING "/a1again", ALICE "\n%lld\ntokA1", NOW_S - 20);
	putf(f, PENDING "/a2", ALICE "\n%lld\ntokA2", NOW_S - 30);
	putf(f, PENDING "/b1", BOB "\n%lld\ntokB1", NOW_S - 3600);
	/* Left out, each for its reason. */
	putf(f, PENDING "/stale", ALICE "\n%lld\ntokA1", NOW_S - 5 * 3600 - 1);
	putf(f, PENDING "/x.tmp", ALICE "\n%lld\ntokA1", NOW_S);
	putf(f, PENDING "/future", ALICE "\n%lld\ntokA1", NOW_S + 3600);
	putf(f, PENDING "/twolines", ALICE "\n%lld", NOW_S);
	putf(f, PENDING "/nobody", "carol@example.org\n%lld\ntokA1", NOW_S);
	putf(f, PENDING "/expiredtok", ALICE "\n%lld\ntokOld", NOW_S);
	putf(f, PENDING "/spaced", ALICE "\n%lld\ntok secret0123456789",
	    NOW_S);
	putf(f, PENDING "/badaddr", "alice\n%lld\ntokA1", NOW_S);

	run(f, NOW);
	assert_int_equal(f->r.pending_queued, 3);
	assert_int_equal(f->r.pending_present, 1);
	assert_int_equal(f->r.skipped[CHATMAILD_SKIP_EXPIRED], 1);
	assert_int_equal(f->r.skipped[CHATMAILD_SKIP_PARTIAL], 1);
	assert_int_equal(f->r.skipped[CHATMAILD_SKIP_BAD_FORMAT], 3);
	assert_int_equal(f->r.skipped[CHATMAILD_SKIP_UNKNOWN_TOKEN], 2);
	assert_int_equal(f->r.skipped[CHATMAILD_SKIP_INVALID_TOKEN], 1);
	assert_int_equal(skipped_total(&f->r), 8);

	/* Jobs as the daemon queues them: waiting, due now, created when
	 * chatmaild first queued the push. */
	assert_int_equal(count(f, "SELECT count(*) FROM queue"), 3);
	assert_int_equal(count(f, "SELECT count(*) FROM queue WHERE "
	    "state = 0 AND attempts = 0 AND next_at = 1700000000123"), 3);
	assert_int_equal(count(f, "SELECT q.created_at FROM queue q JOIN "
	    "tokens t ON t.id = q.token_id WHERE t.token = 'tokB1' AND "
	    "q.user = '" BOB "'"), (NOW_S - 3600) * 1000);
	assert_int_equal(count(f, "SELECT q.created_at FROM queue q "
	    "JOIN tokens t ON t.id = q.token_id WHERE t.token = 'tokA2'"),
	    (NOW_S - 30) * 1000);
	assert_int_equal(lines_with(f, "file=" PENDING "/nobody ",
	    "reason=unknown_token", NULL), 1);
	assert_int_equal(lines_with(f, "file=" PENDING "/stale ",
	    "reason=expired", NULL), 1);
	assert_int_equal(lines_with(f, "file=" PENDING "/x.tmp ",
	    "reason=partial", NULL), 1);
	assert_no_line_has(f, "secret0123456789");
	/* An opt-out through Dovecot takes the imported jobs with it. */
	{
		struct dict_txn *t = dict_txn_new(1, ALICE);
		struct dict_apply_counts counts = { 0 };
		char err[ERR_LEN];

		dict_txn_add(t, DICT_CHANGE_UNSET, "priv/" G "/devicetoken",
		    NULL, 0, 0);
		assert_int_equal(dict_store_batch_begin(f->store, err), 0);
		assert_int_equal(dict_store_apply(f->store, t, NOW, &counts,
		    err), DICT_COMMIT_OK);
		assert_int_equal(dict_store_batch_commit(f->store, err), 0);
		dict_txn_free(t);
	}
	assert_int_equal(count(f, "SELECT count(*) FROM queue"), 1);
}

static void
test_report_and_failures(void **state)
{
	struct fixture *f = *state;
	struct chatmaild_import_report r;
	char err[ERR_LEN], path[TESTUTIL_PATH_LEN + 16];
	struct buf b;

	/* No pending_notifications directory at all is fine. */
	puts_(f, ALICE "/metadata.json", "{\"devicetoken\": [\"tokA1\"]}");
	run(f, NOW);
	buf_init(&b);
	chatmaild_import_report_format(&f->r, &b);
	assert_non_null(strstr(b.data, "users=1 metadata_files=1 "
	    "tokens_imported=1 tokens_present=0"));
	assert_non_null(strstr(b.data, " files_skipped=0 "));
	assert_non_null(strstr(b.data, " skipped_too_large=0 "));
	buf_clear(&b);

	snprintf(path, sizeof(path), "%s/nothere", f->dir);
	assert_int_equal(chatmaild_import_run(f->store, path, NOW, TTL_MS, &r,
	    err), -1);
	assert_non_null(strstr(err, "nothere"));
	/* A queue "directory" that is a file stops the import, loudly. */
	puts_(f, PENDING, "not a directory");
	assert_int_equal(chatmaild_import_run(f->store, f->vmail, NOW, TTL_MS,
	    &r, err), -1);
	assert_non_null(strstr(err, PENDING));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_both_forms_with_timestamps,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_rows_are_the_daemons,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_idempotent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_newer_file_refreshes,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_checks, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_garbage_skipped_and_counted,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pending_files_queued,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_and_failures,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
