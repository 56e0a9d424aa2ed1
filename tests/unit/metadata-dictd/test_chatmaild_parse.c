/* Unit tests of metadata-dictd/chatmaild_parse.c: chatmaild's
 * metadata.json in both forms, its notifier queue files, and the
 * addresses of its user directories. Tables name the failing row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dictd.h"

#define NELEM(a)	(sizeof(a) / sizeof(*(a)))

static void
test_metadata_dict_form(void **state)
{
	/* json.dump() of chatmaild's dict form (relay >= 1.7). */
	const char *json = "{\"devicetoken\": {\"openpgp:AAA=\": 1700000000, "
	    "\"sandbox:beef\": 1700000100}}";
	struct chatmaild_tokens t;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(chatmaild_parse_metadata(json, strlen(json), &t, err),
	    0);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.v[0].token, "openpgp:AAA=");
	assert_int_equal(t.v[0].len, 12);
	assert_int_equal(t.v[0].ts, 1700000000);
	assert_string_equal(t.v[1].token, "sandbox:beef");
	assert_int_equal(t.v[1].ts, 1700000100);
	chatmaild_tokens_clear(&t);
	assert_int_equal(t.n, 0);
}

static void
test_metadata_list_form(void **state)
{
	/* The form of relays before 1.7: no timestamps. */
	const char *json = "{\"devicetoken\": [\"tok1\", \"tok2\", \"tok3\"]}";
	struct chatmaild_tokens t;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(chatmaild_parse_metadata(json, strlen(json), &t, err),
	    0);
	assert_int_equal(t.n, 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(t.v[i].ts, CHATMAILD_TS_NONE);
	assert_string_equal(t.v[2].token, "tok3");
	chatmaild_tokens_clear(&t);
}

static void
test_metadata_table(void **state)
{
	static const struct {
		const char	*json;
		int		 rc;
		size_t		 n;	/* tokens when rc == 0 */
		const char	*err;	/* part of the error when rc < 0 */
	} rows[] = {
		{ "{}", 0, 0, NULL },
		{ "{\"other\": 1}", 0, 0, NULL },
		{ "{\"devicetoken\": []}", 0, 0, NULL },
		{ "{\"devicetoken\": {}}", 0, 0, NULL },
		/* Checked later, by the importer, as the daemon would. */
		{ "{\"devicetoken\": [\"a b\", \"\"]}", 0, 2, NULL },
		{ "", -1, 0, "invalid JSON" },
		{ "{\"devicetoken\": [\"a\"]", -1, 0, "invalid JSON" },
		{ "[\"tok\"]", -1, 0, "not a JSON object" },
		{ "\"tok\"", -1, 0, "invalid JSON" },
		{ "{\"devicetoken\": \"tok\"}", -1, 0, "neither" },
		{ "{\"devicetoken\": 5}", -1, 0, "neither" },
		{ "{\"devicetoken\": [\"a\", 5]}", -1, 0, "devicetoken[1]" },
		{ "{\"devicetoken\": {\"a\": \"1700000000\"}}", -1, 0,
		    "timestamp" },
		{ "{\"devicetoken\": {\"a\": 1.5}}", -1, 0, "timestamp" },
		{ "{\"devicetoken\": {\"a\": 0}}", -1, 0, "timestamp" },
		{ "{\"devicetoken\": {\"a\": -5}}", -1, 0, "timestamp" },
		{ "{\"devicetoken\": {\"a\": null}}", -1, 0, "timestamp" },
		{ "{\"devicetoken\": {\"a\": 99999999999999999}}", -1, 0,
		    "timestamp" },
		/* A NUL in a token is refused with the whole file. */
		{ "{\"devicetoken\": [\"a\\u0000b\"]}", -1, 0, "invalid JSON" },
		{ "{\"devicetoken\": [], \"devicetoken\": []}", -1, 0,
		    "invalid JSON" },
		{ "{\"devicetoken\": [\"\\u00e4\"]}", 0, 1, NULL },
		{ "{\"devicetoken\": [\"\xff\"]}", -1, 0, "invalid JSON" },
		/* The error never quotes the input (tokens are secrets). */
		{ "{\"devicetoken\": {\"SECRET-A\": 1700000000 "
		    "\"SECRET-B\": 1}}", -1, 0, "invalid JSON" },
		{ "{\"devicetoken\": {\"SECRET-A\": 1, \"SECRET-A\": 2}}", -1,
		    0, "invalid JSON" },
	};
	struct chatmaild_tokens t;
	char err[ERR_LEN];

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		int rc;

		err[0] = '\0';
		rc = chatmaild_parse_metadata(rows[i].json,
		    strlen(rows[i].json), &t, err);
		if (rc != rows[i].rc)
			fail_msg("row %zu (%s): rc %d, expected %d (%s)", i,
			    rows[i].json, rc, rows[i].rc, err);
		if (rc == 0 && t.n != rows[i].n)
			fail_msg("row %zu: %zu tokens, expected %zu", i, t.n,
			    rows[i].n);
		if (rc < 0 && strstr(err, rows[i].err) == NULL)
			fail_msg("row %zu: error \"%s\" lacks \"%s\"", i, err,
			    rows[i].err);
		if (rc < 0 && t.n != 0)
			fail_msg("row %zu: tokens left after a failure", i);
		if (rc < 0 && strstr(err, "SECRET") != NULL)
			fail_msg("row %zu: error quotes the input: %s", i, err);
		chatmaild_tokens_clear(&t);
	}
}

static void
test_pending(void **state)
{
	/* PersistentQueueItem.create: f"{addr}\n{start_ts}\n{token}". */
	const char *file = "alice@example.org\n1700000000\nopenpgp:AAA=";
	struct chatmaild_pending p;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(chatmaild_parse_pending(file, strlen(file), &p, err),
	    0);
	assert_string_equal(p.addr, "alice@example.org");
	assert_int_equal(p.start_ts, 1700000000);
	assert_string_equal(p.token, "openpgp:AAA=");
	assert_int_equal(p.token_len, 12);
	chatmaild_pending_clear(&p);
	assert_null(p.addr);
}

static void
test_pending_table(void **state)
{
	static const struct {
		const char	*file;
		int		 rc;
		const char	*token;	/* when rc == 0 */
	} rows[] = {
		{ "a@b.c\n1\ntok", 0, "tok" },
		/* The token is the rest, as chatmaild's maxsplit=2 reads it;
		 * the importer then refuses one with a newline. */
		{ "a@b.c\n1\ntok\nmore", 0, "tok\nmore" },
		{ "a@b.c\n1\n", 0, "" },
		/* chatmail relay 1.1's queue held empty files named after
		 * the address: not this format. */
		{ "", -1, NULL },
		{ "a@b.c", -1, NULL },
		{ "a@b.c\n1700000000", -1, NULL },
		{ "a@b.c\n\ntok", -1, NULL },
		{ "a@b.c\n-5\ntok", -1, NULL },
		{ "a@b.c\n17.5\ntok", -1, NULL },
		{ "a@b.c\n 17\ntok", -1, NULL },
		{ "a@b.c\n1234567890123456\ntok", -1, NULL },
		{ "\n1\ntok", -1, NULL },
		{ "nobody\n1\ntok", -1, NULL },
		{ "a b@c.d\n1\ntok", -1, NULL },
	};
	struct chatmaild_pending p;
	char err[ERR_LEN];

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		int rc = chatmaild_parse_pending(rows[i].file,
		    strlen(rows[i].file), &p, err);

		if (rc != rows[i].rc)
			fail_msg("row %zu: rc %d, expected %d", i, rc,
			    rows[i].rc);
		if (rc == 0 && strcmp(p.token, rows[i].token) != 0)
			fail_msg("row %zu: token \"%s\"", i, p.token);
		chatmaild_pending_clear(&p);
	}
}

static void
test_addr_table(void **state)
{
	static const struct {
		const char	*addr;
		int		 rc;
	} rows[] = {
		{ "alice@example.org", 0 },
		{ "x7h2k9@c1.testrun.org", 0 },
		{ "first.last+tag@sub.example-host.org", 0 },
		{ "a@b", 0 },
		{ "", -1 },
		{ "@", -1 },
		{ "alice", -1 },
		{ "alice@", -1 },
		{ "@example.org", -1 },
		{ "a@b@c", -1 },
		{ ".alice@example.org", -1 },
		{ "alice.@example.org", -1 },
		{ "alice@.example.org", -1 },
		{ "alice@example.org.", -1 },
		{ "alice@-example.org", -1 },
		{ "al ice@example.org", -1 },
		{ "al/ice@example.org", -1 },
		{ "alice@exa/mple.org", -1 },
		{ "alice@exa_mple.org", -1 },
		{ "al\tice@example.org", -1 },
		{ "\xc3\xa4@example.org", -1 },
		{ "..", -1 },
	};
	char err[ERR_LEN], local65[80], long_domain[300];

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		int rc = chatmaild_parse_addr(rows[i].addr,
		    strlen(rows[i].addr), err);

		if (rc != rows[i].rc)
			fail_msg("row %zu (%s): rc %d, expected %d", i,
			    rows[i].addr, rc, rows[i].rc);
	}
	memset(local65, 'a', 65);
	strcpy(local65 + 65, "@b.c");
	assert_int_equal(chatmaild_parse_addr(local65, strlen(local65), err),
	    -1);
	assert_int_equal(chatmaild_parse_addr(local65 + 1,
	    strlen(local65 + 1), err), 0);
	strcpy(long_domain, "a@");
	memset(long_domain + 2, 'b', 252);
	long_domain[254] = '\0';
	assert_int_equal(chatmaild_parse_addr(long_domain, 254, err), 0);
	strcpy(long_domain + 254, "b");
	assert_int_equal(chatmaild_parse_addr(long_domain, 255, err), -1);
	/* The length, not a NUL, bounds the address, and a NUL is no
	 * address byte (found by fuzz_chatmaild_parse: strchr() matches
	 * the NUL that ends its set). */
	assert_int_equal(chatmaild_parse_addr("a@b.c\0x", 7, err), -1);
	assert_int_equal(chatmaild_parse_addr("a\0b@c.d", 7, err), -1);
	assert_int_equal(chatmaild_parse_addr("a\0@c.d", 6, err), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metadata_dict_form),
		cmocka_unit_test(test_metadata_list_form),
		cmocka_unit_test(test_metadata_table),
		cmocka_unit_test(test_pending),
		cmocka_unit_test(test_pending_table),
		cmocka_unit_test(test_addr_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
