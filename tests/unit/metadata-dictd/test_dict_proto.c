/* Unit tests of metadata-dictd/dict_proto.c, through dict_cmd_parse
 * (the command table's row, its fields parsed here): parsing every
 * command as Dovecot 2.3.19 sends it (lines from the protocol doc's
 * captures), rejecting malformed ones, the exact bytes written back, and
 * the exact reply bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dictd.h"

#define G "455d042d2ed60a6b1c36000083ecc375"

struct parse_case {
	const char	*name;
	const char	*line;
	size_t		 len;		/* 0: strlen(line) */
	int		 ok;
	char		 kind;
	unsigned int	 id;
	const char	*key;
	const char	*user;
	const char	*value;
	size_t		 value_len;
};

static const struct parse_case parse_cases[] = {
	{ "hello", "H3\t2\t0\t\tmetadata", 0, 1, 'H', 0, NULL, "", NULL, 0 },
	{ "lookup", "Lpriv/" G "/devicetoken\talice@example.org", 0, 1, 'L',
	    0, "priv/" G "/devicetoken", "alice@example.org", NULL, 0 },
	{ "iterate", "I9\t0\tpriv/" G "/\talice@example.org", 0, 1, 'I', 0,
	    "priv/" G "/", "alice@example.org", NULL, 0 },
	{ "begin", "B1\talice@example.org", 0, 1, 'B', 1, NULL,
	    "alice@example.org", NULL, 0 },
	{ "begin-v4", "B7\tbob\t3600", 0, 1, 'B', 7, NULL, "bob", NULL, 0 },
	{ "set", "S1\tpriv/" G "/devicetoken\ttok1", 0, 1, 'S', 1,
	    "priv/" G "/devicetoken", NULL, "tok1", 4 },
	{ "set-empty-value", "S1\tpriv/" G "/messagenew\t", 0, 1, 'S', 1,
	    "priv/" G "/messagenew", NULL, "", 0 },
	{ "set-escaped", "S8\tpriv/" G "/esc\tx\001ty\001r\001nz\0011w \xc3\xa4",
	    0, 1, 'S', 8, "priv/" G "/esc", NULL, "x\ty\r\nz\001w \xc3\xa4", 11 },
	{ "set-nul-value", "S2\tk\ta\0010b", 0, 1, 'S', 2, "k", NULL, "a\0b", 3 },
	{ "unset", "U3\tpriv/" G "/devicetoken", 0, 1, 'U', 3,
	    "priv/" G "/devicetoken", NULL, NULL, 0 },
	{ "commit", "C12", 0, 1, 'C', 12, NULL, NULL, NULL, 0 },
	{ "commit-async", "D4", 0, 1, 'D', 4, NULL, NULL, NULL, 0 },
	{ "rollback", "R5", 0, 1, 'R', 5, NULL, NULL, NULL, 0 },
	{ "atomic-inc", "A1\tpriv/x/n\t-5", 0, 1, 'A', 1, "priv/x/n", NULL,
	    NULL, 0 },
	{ "timestamp", "T1\t1700000000\t5", 0, 1, 'T', 1, NULL, NULL, NULL, 0 },
	{ "empty", "", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "unknown-letter", "Zfoo", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "binary", "\xff\xfe\x01", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "lookup-no-user", "Lpriv/x", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "hello-short", "H3\t2", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "hello-bad-major", "Hx\t2\t0\t\tm", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "begin-bad-id", "Bx\tuser", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "begin-negative-id", "B-1\tuser", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "commit-no-id", "C", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "commit-extra", "C1\tx", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "commit-huge-id", "C99999999999", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "set-missing-value", "S1\tkey", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "inc-bad-diff", "A1\tk\tten", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "key-with-nul", "U1\ta\0010b", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "iterate-bad-flags", "Ix\t0\tp\tu", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	/* A later protocol's extra fields are ignored, except where the
	 * command is only its id. */
	{ "lookup-extra", "Lk\tu\tmore", 0, 1, 'L', 0, "k", "u", NULL, 0 },
	{ "begin-v4-extra", "B1\tu\t5\tmore", 0, 1, 'B', 1, NULL, "u", NULL,
	    0 },
	{ "rollback-extra", "R1\tx", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "hide-v4", "V1\t1", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "begin-bad-expire", "B1\tu\tsoon", 0, 0, 0, 0, NULL, NULL, NULL, 0 },
	{ "hello-nul-name", "H3\t2\t0\t\tme\0010ta", 0, 0, 0, 0, NULL, NULL,
	    NULL, 0 },
	{ "timestamp", "T1\t-1\t5", 0, 1, 'T', 1, NULL, NULL, NULL, 0 },
};

static void
test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(*parse_cases);
	    i++) {
		const struct parse_case *pc = &parse_cases[i];
		size_t len = pc->len ? pc->len : strlen(pc->line);
		struct dict_cmd cmd;
		char err[ERR_LEN] = "";
		int rc = dict_cmd_parse(pc->line, len, &cmd, err);

		if ((rc == 0) != pc->ok)
			fail_msg("row %s: parse returned %d (%s)", pc->name, rc,
			    err);
		if (!pc->ok) {
			if (err[0] == '\0')
				fail_msg("row %s: no error message", pc->name);
			continue;
		}
		if ((char)cmd.kind != pc->kind || cmd.id != pc->id)
			fail_msg("row %s: kind %c id %u", pc->name,
			    (char)cmd.kind, cmd.id);
		if ((pc->key == NULL) != (cmd.key == NULL) ||
		    (pc->key && strcmp(pc->key, cmd.key) != 0))
			fail_msg("row %s: key %s", pc->name,
			    cmd.key ? cmd.key : "(null)");
		if ((pc->user == NULL) != (cmd.user == NULL) ||
		    (pc->user && strcmp(pc->user, cmd.user) != 0))
			fail_msg("row %s: user %s", pc->name,
			    cmd.user ? cmd.user : "(null)");
		if (pc->value != NULL && (cmd.value_len != pc->value_len ||
		    memcmp(cmd.value, pc->value, pc->value_len) != 0))
			fail_msg("row %s: value of %zu bytes", pc->name,
			    cmd.value_len);
		dict_cmd_clear(&cmd);
	}
}

static void
test_parse_fields(void **state)
{
	struct dict_cmd cmd;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(dict_cmd_parse("H3\t2\t0\t\tmetadata", 16, &cmd,
	    err), 0);
	assert_int_equal(cmd.major, 3);
	assert_int_equal(cmd.minor, 2);
	assert_string_equal(cmd.dict_name, "metadata");
	dict_cmd_clear(&cmd);

	assert_int_equal(dict_cmd_parse("I9\t5\tpriv/\tu", 12, &cmd, err), 0);
	assert_int_equal(cmd.flags, DICT_ITER_RECURSE | DICT_ITER_NO_VALUE);
	assert_int_equal(cmd.max_rows, 5);
	dict_cmd_clear(&cmd);

	assert_int_equal(dict_cmd_parse("A3\tpriv/x/n\t-5", 14, &cmd, err),
	    0);
	assert_int_equal(cmd.diff, -5);
	dict_cmd_clear(&cmd);
}

static void
test_parse_line_limit(void **state)
{
	size_t len = DICT_LINE_MAX_BYTES + 1;
	char *line = malloc(len);
	struct dict_cmd cmd;
	char err[ERR_LEN];

	(void)state;
	memset(line, 'a', len);
	memcpy(line, "S1\tk\t", 5);
	assert_int_equal(dict_cmd_parse(line, len, &cmd, err), -1);
	assert_non_null(strstr(err, "too long"));
	/* Exactly at the limit is fine. */
	assert_int_equal(dict_cmd_parse(line, len - 1, &cmd, err), 0);
	assert_int_equal(cmd.value_len, len - 1 - 5);
	dict_cmd_clear(&cmd);
	free(line);
}

/* What we accept, we can write back, and it reads the same. */
static void
test_format_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(*parse_cases);
	    i++) {
		const struct parse_case *pc = &parse_cases[i];
		size_t len = pc->len ? pc->len : strlen(pc->line), n;
		struct dict_cmd a, b;
		char err[ERR_LEN], *line;

		if (!pc->ok)
			continue;
		assert_int_equal(dict_cmd_parse(pc->line, len, &a, err), 0);
		line = dict_proto_format(&a, &n);
		assert_true(n > 0 && line[n - 1] == '\n');
		if (dict_cmd_parse(line, n - 1, &b, err) != 0 ||
		    !dict_cmd_equal(&a, &b))
			fail_msg("row %s: round trip differs: %s", pc->name,
			    err);
		free(line);
		dict_cmd_clear(&a);
		dict_cmd_clear(&b);
	}
}

/* The bytes written back: every field in the row's order, TAB between,
 * an optional field only when set. */
static void
test_format_bytes(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;
	} rows[] = {
		{ "H3\t2\t0\t\tmetadata", "H3\t2\t0\t\tmetadata\n" },
		{ "Lpriv/" G "/devicetoken\talice", "Lpriv/" G
		    "/devicetoken\talice\n" },
		{ "I9\t0\tpriv/" G "/\talice", "I9\t0\tpriv/" G "/\talice\n" },
		{ "B1\talice", "B1\talice\n" },
		{ "B7\tbob\t3600", "B7\tbob\t3600\n" },
		{ "B7\tbob\t0", "B7\tbob\n" },
		{ "S1\tk\t", "S1\tk\t\n" },
		{ "S8\tk\tx\001ty", "S8\tk\tx\001ty\n" },
		{ "U3\tk", "U3\tk\n" },
		{ "A1\tk\t-5", "A1\tk\t-5\n" },
		{ "C12", "C12\n" },
		{ "D4", "D4\n" },
		{ "R5", "R5\n" },
		{ "T1\t1700000000\t5", "T1\t1700000000\t5\n" },
		{ "V2", "V2\n" },
		{ "Lk\tu\tmore", "Lk\tu\n" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
		struct dict_cmd cmd;
		char err[ERR_LEN], *line;
		size_t n;

		if (dict_cmd_parse(rows[i].in, strlen(rows[i].in), &cmd,
		    err) < 0)
			fail_msg("row %zu (%s): %s", i, rows[i].in, err);
		line = dict_proto_format(&cmd, &n);
		if (n != strlen(rows[i].out) ||
		    memcmp(line, rows[i].out, n) != 0)
			fail_msg("row %zu (%s): wrote %.*s", i, rows[i].in,
			    (int)n, line);
		free(line);
		dict_cmd_clear(&cmd);
	}
}

static void
test_replies(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b);
	dict_proto_reply_value(&b, "tok1 tok2", 9);
	assert_string_equal(b.data, "Otok1 tok2\n");
	buf_reset(&b);
	dict_proto_reply_value(&b, "", 0);	/* found, empty: not N */
	assert_string_equal(b.data, "O\n");
	buf_reset(&b);
	dict_proto_reply_value(&b, "x\ty\r\nz\001w", 8);
	assert_string_equal(b.data, "Ox\001ty\001r\001nz\0011w\n");
	buf_reset(&b);
	dict_proto_reply_not_found(&b);
	assert_string_equal(b.data, "N\n");
	buf_reset(&b);
	/* NO_VALUE rows keep the TAB (protocol doc §4). */
	dict_proto_reply_row(&b, "priv/" G "/devicetoken", NULL, 0);
	dict_proto_reply_row(&b, "shared/" G "/s", "v\t", 2);
	dict_proto_reply_iter_end(&b);
	assert_string_equal(b.data, "Opriv/" G "/devicetoken\t\n"
	    "Oshared/" G "/s\tv\001t\n\n");
	buf_reset(&b);
	dict_proto_reply_commit(&b, 3, false, DICT_COMMIT_OK, NULL);
	dict_proto_reply_commit(&b, 4, false, DICT_COMMIT_NOT_FOUND, NULL);
	dict_proto_reply_commit(&b, 5, false, DICT_COMMIT_FAILED,
	    "too\tlong");
	dict_proto_reply_commit(&b, 6, true, DICT_COMMIT_OK, NULL);
	assert_string_equal(b.data, "O3\nN4\nF5\ttoo\001tlong\nAO6\n");
	buf_reset(&b);
	dict_proto_reply_fail(&b, "db\nerror");
	assert_string_equal(b.data, "Fdb\001nerror\n");
	buf_clear(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_parse_line_limit),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_format_bytes),
		cmocka_unit_test(test_replies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
