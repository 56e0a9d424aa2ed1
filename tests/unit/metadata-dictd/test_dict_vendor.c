/* Unit tests of metadata-dictd/dict_vendor.c and the server-level keys
 * in dict_key.c and dict_store.c: which keys are the relay's entries, what
 * each answers from its flag, the app versions file (compact JSON,
 * re-read when it changes, a failure reported once), the flags' checks,
 * and writes to these keys refused. */
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

#include "dictd.h"
#include "testutil.h"

#define NELEM(a)	(sizeof(a) / sizeof(*(a)))
#define G	"455d042d2ed60a6b1c36000083ecc375"
#define SERVER	"shared/" G "/vendor/vendor.dovecot/pvt/server/"
#define ENTRY(n)	SERVER "vendor/deltachat/" n

static void
test_key_parse(void **state)
{
	static const struct {
		const char		*key;
		enum dict_key_kind	 kind;
		const char		*name;
	} rows[] = {
		/* GETMETADATA "" /shared/vendor/deltachat/irohrelay
		 * (protocol doc §9.3) */
		{ ENTRY("irohrelay"), DICT_KEY_DELTACHAT, "irohrelay" },
		{ ENTRY("turn"), DICT_KEY_DELTACHAT, "turn" },
		{ ENTRY(""), DICT_KEY_DELTACHAT, "" },
		{ ENTRY("a/b"), DICT_KEY_DELTACHAT, "a/b" },
		/* Whatever the GUID, like chatmail relay's service. */
		{ "shared/x/vendor/vendor.dovecot/pvt/server/vendor/deltachat/"
		    "turn", DICT_KEY_DELTACHAT, "turn" },
		/* A mailbox's own /shared/vendor/deltachat/... is not. */
		{ "shared/" G "/vendor/deltachat/irohrelay", DICT_KEY_SHARED,
		    NULL },
		{ SERVER "vendor/other/irohrelay", DICT_KEY_SHARED, NULL },
		{ SERVER "vendor/deltachat", DICT_KEY_SHARED, NULL },
		{ "shared//vendor/vendor.dovecot/pvt/server/vendor/deltachat/"
		    "turn", DICT_KEY_SHARED, NULL },
		/* Server-level private entries stay the user's. */
		{ "priv/" G "/vendor/vendor.dovecot/pvt/server/vendor/"
		    "deltachat/irohrelay", DICT_KEY_PRIVATE, NULL },
	};
	struct dict_key k;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		dict_key_parse(rows[i].key, &k);
		if (k.kind != rows[i].kind)
			fail_msg("row %zu (%s): kind %d, expected %d", i,
			    rows[i].key, k.kind, rows[i].kind);
		if (rows[i].name != NULL && strcmp(k.name, rows[i].name) != 0)
			fail_msg("row %zu: name \"%s\"", i, k.name);
		if (k.kind == DICT_KEY_DELTACHAT)
			assert_string_equal(dict_key_owner(&k, "alice"), "");
	}
}

/* What lookup answers; *err_out gets the reported failure or "". */
static enum dict_vendor_answer
lookup(struct dict_vendor *v, const char *name, char *value_out,
    size_t size, char err_out[ERR_LEN])
{
	enum dict_vendor_answer a;
	struct buf b;

	buf_init(&b);
	err_out[0] = '\0';
	a = dict_vendor_lookup(v, name, &b, err_out);
	snprintf(value_out, size, "%s", b.data ? b.data : "");
	if (a != DICT_VENDOR_VALUE)
		assert_int_equal(b.len, 0);
	buf_clear(&b);
	return a;
}

static void
test_entries_from_flags(void **state)
{
	struct dict_vendor_config cfg = {
		.iroh_relay = "https://iroh.example.org",
		.max_smtp_recipients = 1000,
		.turn_host = "example.org",
		.turn_port = 3478,
		.turn_socket = "/run/chatmail-turn/turn.socket",
		.turn_timeout_ms = 3000,
	};
	struct dict_vendor *v;
	char value[256], err[ERR_LEN];
	struct buf b;

	(void)state;
	assert_int_equal(dict_vendor_config_check(&cfg, err), 0);
	v = dict_vendor_new(&cfg);
	assert_int_equal(lookup(v, "irohrelay", value, sizeof(value), err),
	    DICT_VENDOR_VALUE);
	assert_string_equal(value, "https://iroh.example.org");
	assert_int_equal(lookup(v, "maxsmtprecipients", value, sizeof(value),
	    err), DICT_VENDOR_VALUE);
	assert_string_equal(value, "1000");
	assert_int_equal(lookup(v, "turn", value, sizeof(value), err),
	    DICT_VENDOR_TURN);
	/* No --appversions: NIL, no complaint. */
	assert_int_equal(lookup(v, "appversions", value, sizeof(value), err),
	    DICT_VENDOR_NONE);
	assert_string_equal(err, "");
	assert_int_equal(lookup(v, "nothing", value, sizeof(value), err),
	    DICT_VENDOR_NONE);
	assert_int_equal(lookup(v, "", value, sizeof(value), err),
	    DICT_VENDOR_NONE);
	assert_int_equal(lookup(v, "irohrelay/x", value, sizeof(value), err),
	    DICT_VENDOR_NONE);
	assert_string_equal(dict_vendor_turn_socket(v),
	    "/run/chatmail-turn/turn.socket");
	assert_int_equal(dict_vendor_turn_timeout_ms(v), 3000);

	/* chatmaild's format: f"{turn_hostname}:3478:{res}". */
	buf_init(&b);
	dict_vendor_turn_value(v, "1700000000:c2VjcmV0xyz", 17, &b);
	assert_string_equal(b.data, "example.org:3478:1700000000:c2Vjcm");
	buf_clear(&b);
	dict_vendor_free(v);

	/* Nothing configured: every entry is NIL. */
	memset(&cfg, 0, sizeof(cfg));
	v = dict_vendor_new(&cfg);
	const char *names[] = { "irohrelay", "turn", "maxsmtprecipients",
	    "appversions" };
	for (size_t i = 0; i < NELEM(names); i++)
		assert_int_equal(lookup(v, names[i], value, sizeof(value),
		    err), DICT_VENDOR_NONE);
	dict_vendor_free(v);
	dict_vendor_free(NULL);
}

static void
test_config_check(void **state)
{
	static const struct {
		const char	*iroh;
		const char	*turn_host;
		unsigned int	 port;
		const char	*socket;
		int		 rc;
		const char	*flag;
	} rows[] = {
		{ "https://iroh.example.org", NULL, 0, NULL, 0, NULL },
		{ "http://127.0.0.1:3340", NULL, 0, NULL, 0, NULL },
		{ "ftp://iroh.example.org", NULL, 0, NULL, -1, "--iroh-relay" },
		{ "iroh.example.org", NULL, 0, NULL, -1, "--iroh-relay" },
		{ "https://a b", NULL, 0, NULL, -1, "--iroh-relay" },
		{ "https://a\nb", NULL, 0, NULL, -1, "--iroh-relay" },
		{ "", NULL, 0, NULL, -1, "--iroh-relay" },
		{ NULL, "example.org", 3478, "/s", 0, NULL },
		{ NULL, "192.0.2.1", 3478, "/s", 0, NULL },
		/* chatmail.ini's mail_domain of a test relay */
		{ NULL, "_chat.example.org", 3478, "/s", 0, NULL },
		{ NULL, "ex ample.org", 3478, "/s", -1, "--turn-host" },
		{ NULL, "example.org:3478", 3478, "/s", -1, "--turn-host" },
		{ NULL, "[::1]", 3478, "/s", -1, "--turn-host" },
		{ NULL, "", 3478, "/s", -1, "--turn-host" },
		{ NULL, "example.org", 0, "/s", -1, "--turn-port" },
		{ NULL, "example.org", 70000, "/s", -1, "--turn-port" },
		{ NULL, "example.org", 3478, NULL, -1, "--turn-socket" },
	};
	char err[ERR_LEN];

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct dict_vendor_config cfg = {
			.iroh_relay = rows[i].iroh,
			.turn_host = rows[i].turn_host,
			.turn_port = rows[i].port,
			.turn_socket = rows[i].socket,
			.turn_timeout_ms = 1000,
		};
		int rc;

		err[0] = '\0';
		rc = dict_vendor_config_check(&cfg, err);
		if (rc != rows[i].rc)
			fail_msg("row %zu: rc %d, expected %d (%s)", i, rc,
			    rows[i].rc, err);
		if (rc < 0 && strstr(err, rows[i].flag) == NULL)
			fail_msg("row %zu: \"%s\" does not name %s", i, err,
			    rows[i].flag);
	}
	char long_url[1100] = "https://";
	memset(long_url + 8, 'a', 1020);
	long_url[1028] = '\0';
	struct dict_vendor_config cfg = { .iroh_relay = long_url };
	assert_int_equal(dict_vendor_config_check(&cfg, err), -1);
}

static void
write_file(const char *path, const char *text)
{
	char tmp[TESTUTIL_PATH_LEN + 8];
	FILE *fp;

	/* Replaced by rename, as deploy tools do: a new inode each time. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fp = fopen(tmp, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(rename(tmp, path), 0);
}

static void
test_appversions_file(void **state)
{
	char dir[TESTUTIL_DIR_LEN], path[TESTUTIL_PATH_LEN];
	char value[1024], err[ERR_LEN];
	struct dict_vendor_config cfg = { 0 };
	struct dict_vendor *v;

	(void)state;
	testutil_db_dir(dir, "test_dict_vendor", "appversions.json", path);
	cfg.appversions_path = path;
	v = dict_vendor_new(&cfg);

	/* Missing: NIL, reported once, not at every login. */
	assert_int_equal(lookup(v, "appversions", value, sizeof(value), err),
	    DICT_VENDOR_NONE);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(lookup(v, "appversions", value, sizeof(value), err),
	    DICT_VENDOR_NONE);
	assert_string_equal(err, "");

	/* chatmaild's shipped file, pretty-printed: sent on one line. */
	write_file(path, "{\n  \"clients\": [\n    {\n      \"clientId\": "
	    "\"deltachat\",\n      \"sources\": [\n        {\n          "
	    "\"sourceId\": \"gplay\",\n          \"versionInteger\": 754,\n"
	    "          \"versionString\": \"2.57.0\"\n        }\n      ]\n"
	    "    }\n  ]\n}\n");
	assert_int_equal(lookup(v, "appversions", value, sizeof(value), err),
	    DICT_VENDOR_VALUE);
	assert_string_equal(value, "{\"clients\":[{\"clientId\":\"deltachat\","
	    "\"sources\":[{\"sourceId\":\"gplay\",\"versionInteger\":754,"
	    "\"versionString\":\"2.57.0\"}]}]}");
	assert_string_equal(err, "");

	/* A new file is picked up without a restart; non-ASCII is sent
	 * escaped, as Python's json.dumps does by default. */
	write_file(path, "{\"b\": 1, \"a\": \"\xc3\xa4\\t\"}");
	assert_int_equal(lookup(v, "appversions", value, sizeof(value), err),
	    DICT_VENDOR_VALUE);
	assert_string_equal(value, "{\"b\":1,\"a\":\"\\u00E4\\t\"}");

	/* Broken: NIL, reported once; fixed: served again. */
	write_file(path, "{\"clients\": [");
	assert_int_equal(lookup(v, "appversions", value, sizeof(value), err),
	    DICT_VENDOR_NONE);
	assert_non_null(strstr(err, "invalid JSON"));
	assert_non_null(strstr(err, path));
	assert_int_equal(lookup(v, "appversions", value, sizeof(value), err),
	    DICT_VENDOR_NONE);
	assert_string_equal(err, "");
	write_file(path, "[1, 2]");
	assert_int_equal(lookup(v, "appversions", value, sizeof(value), err),
	    DICT_VENDOR_NONE);
	assert_non_null(strstr(err, "not a JSON object"));
	write_file(path, "{}");
	assert_int_equal(lookup(v, "appversions", value, sizeof(value), err),
	    DICT_VENDOR_VALUE);
	assert_string_equal(value, "{}");

	/* Too large for one dict reply we want to send. */
	{
		char *big = malloc(DICT_APPVERSIONS_MAX_BYTES + 64);

		memset(big, ' ', DICT_APPVERSIONS_MAX_BYTES + 63);
		memcpy(big, "{}", 2);
		big[DICT_APPVERSIONS_MAX_BYTES + 63] = '\0';
		write_file(path, big);
		free(big);
	}
	assert_int_equal(lookup(v, "appversions", value, sizeof(value), err),
	    DICT_VENDOR_NONE);
	assert_non_null(strstr(err, "at most"));
	dict_vendor_free(v);
	testutil_db_dir_remove(dir, path);
}

static void
test_compact(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;	/* NULL: refused */
	} rows[] = {
		{ "{}", "{}" },
		{ " { \"a\" : [ 1 , 2 ] , \"b\" : null } ", "{\"a\":[1,2],"
		    "\"b\":null}" },
		/* Member order is kept, as Python keeps it. */
		{ "{\"z\": 1, \"a\": 2}", "{\"z\":1,\"a\":2}" },
		{ "{\"nl\": \"a\\nb\"}", "{\"nl\":\"a\\nb\"}" },
		{ "{\"a\": 1, \"a\": 2}", NULL },
		{ "[]", NULL },
		{ "\"s\"", NULL },
		{ "{", NULL },
		{ "", NULL },
	};
	char err[ERR_LEN];

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		char *out = dict_vendor_appversions_compact(rows[i].in,
		    strlen(rows[i].in), err);

		if (rows[i].out == NULL && out != NULL)
			fail_msg("row %zu: accepted as %s", i, out);
		if (rows[i].out != NULL && (out == NULL ||
		    strcmp(out, rows[i].out) != 0))
			fail_msg("row %zu: %s, expected %s", i,
			    out ? out : err, rows[i].out);
		free(out);
	}
}

/* dict_store: these keys are never stored nor read from the table. */
static void
test_store_refuses_writes(void **state)
{
	char dir[TESTUTIL_DIR_LEN], path[TESTUTIL_PATH_LEN], err[ERR_LEN];
	const enum dict_change_kind kinds[] = { DICT_CHANGE_SET,
	    DICT_CHANGE_UNSET, DICT_CHANGE_INC };
	struct dict_store *s;
	struct dict_apply_counts counts = { 0 };
	struct buf b;

	(void)state;
	testutil_db_dir(dir, "test_dict_vendor", "relay.db", path);
	s = dict_store_open(path, DB_SYNC_NORMAL, 86400000, err);
	assert_non_null(s);
	for (size_t i = 0; i < NELEM(kinds); i++) {
		struct dict_txn *t = dict_txn_new(1, "alice");

		/* A legitimate change first: all or nothing. */
		dict_txn_add(t, DICT_CHANGE_SET, "priv/" G "/ok", "v", 1, 0);
		dict_txn_add(t, kinds[i], ENTRY("irohrelay"), "https://evil",
		    12, 1);
		assert_int_equal(dict_store_batch_begin(s, err), 0);
		err[0] = '\0';
		if (dict_store_apply(s, t, 1, &counts, err) !=
		    DICT_COMMIT_FAILED)
			fail_msg("change kind %zu accepted", i);
		assert_non_null(strstr(err, "read-only"));
		assert_int_equal(dict_store_batch_commit(s, err), 0);
		dict_txn_free(t);
	}
	buf_init(&b);
	assert_int_equal(dict_store_lookup(s, "alice", "priv/" G "/ok", 1, &b,
	    err), 0);
	assert_int_equal(dict_store_lookup(s, "alice", ENTRY("irohrelay"), 1,
	    &b, err), 0);
	buf_clear(&b);
	dict_store_close(s);
	testutil_db_dir_remove(dir, path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_parse),
		cmocka_unit_test(test_entries_from_flags),
		cmocka_unit_test(test_config_check),
		cmocka_unit_test(test_appversions_file),
		cmocka_unit_test(test_compact),
		cmocka_unit_test(test_store_refuses_writes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
