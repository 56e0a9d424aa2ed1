/* Unit tests of metadata-dictd/dict_cmd.c, the commands as a connection
 * runs them: lines in, replies in the session's buffer, with a real
 * store and group commit behind the context's hooks and a fake clock.
 * The command table is the protocol doc's; only L, I, C and D are
 * answered; a commit waits for the group commit and is answered through
 * the session's done callback; transactions are the session's; what is
 * refused or malformed is reported, not answered; an iteration answers
 * in pages, within max_rows; every command is counted, under the series
 * the metrics always had. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "dictd_test.h"

#define NELEM(a)	(sizeof(a) / sizeof(*(a)))

struct cmd_test {
	struct dt_fixture	*f;
	struct dict_cmd_session	 s;
	int			 dones;	/* session done calls */
};

static void
on_done(void *arg)
{
	struct cmd_test *t = arg;

	t->dones++;
}

static int
setup(void **state)
{
	struct cmd_test *t = calloc(1, sizeof(*t));

	t->f = dt_fixture_new("test_dict_cmd", NULL);
	dict_cmd_session_init(&t->s, &t->f->ctx, 17, on_done, t);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct cmd_test *t = *state;

	dict_cmd_session_clear(&t->s);
	dt_fixture_free(t->f);
	free(t);
	return 0;
}

/* Runs line; fails the test unless its status is want. */
static void
run(struct cmd_test *t, const char *line, enum dict_cmd_status want)
{
	char err[ERR_LEN] = "";
	enum dict_cmd_status got = dict_cmd_run(&t->s, line, strlen(line),
	    err);

	if (got != want)
		fail_msg("%s: status %d, want %d (%s)", line, got, want, err);
}

/* The replies written so far, as a string; empties the buffer. */
static const char *
replies(struct cmd_test *t)
{
	static char out[4096];

	snprintf(out, sizeof(out), "%.*s", (int)t->s.reply.len,
	    t->s.reply.data ? t->s.reply.data : "");
	buf_reset(&t->s.reply);
	return out;
}

static void
test_only_lookups_iterations_and_commits_answer(void **state)
{
	struct cmd_test *t = *state;

	run(t, DT_HELLO, DICT_CMD_DONE);
	run(t, "B1\talice", DICT_CMD_DONE);
	run(t, "S1\tpriv/" DT_G "/k\tv", DICT_CMD_DONE);
	run(t, "U1\tpriv/" DT_G "/gone", DICT_CMD_DONE);
	run(t, "A1\tpriv/" DT_G "/n\t2", DICT_CMD_DONE);
	run(t, "T1\t1700000000\t0", DICT_CMD_DONE);
	run(t, "V1", DICT_CMD_DONE);
	run(t, "B2\talice", DICT_CMD_DONE);
	run(t, "R2", DICT_CMD_DONE);
	/* Not one byte for H B S U A T V R (protocol doc §8.1). */
	assert_string_equal(replies(t), "");
	assert_int_equal(t->f->commits, 0);

	run(t, "Lpriv/" DT_G "/k\talice", DICT_CMD_DONE);
	assert_string_equal(replies(t), "N\n");
	run(t, "I9\t0\tpriv/" DT_G "/\talice", DICT_CMD_DONE);
	assert_string_equal(replies(t), "\n");
	assert_int_equal(t->f->read_dones, 2);
}

/* Stores n keys priv/G/k<i> for alice through the commands. */
static void
store_keys(struct cmd_test *t, int n)
{
	char line[128];

	dict_store_set_max_keys(t->f->store, (unsigned int)n);
	run(t, "B1\talice", DICT_CMD_DONE);
	for (int i = 0; i < n; i++) {
		snprintf(line, sizeof(line), "S1\tpriv/" DT_G "/k%05d\tv", i);
		run(t, line, DICT_CMD_DONE);
	}
	run(t, "C1", DICT_CMD_WAIT);
	dict_commit_flush(t->f->gc, fake_now_ms, fake_mono_ms);
	assert_string_equal(replies(t), "O1\n");
}

/* Runs an iteration to its end: the rows it answered (checked to be
 * k00000, k00001, ... in order, each page a bounded part of the reply)
 * and the pages it took. */
static int
iterate_all(struct cmd_test *t, const char *line, int *pages_out)
{
	enum dict_cmd_status st;
	char want[128];
	int rows = 0, pages = 0;
	bool ended = false;

	st = dict_cmd_run(&t->s, line, strlen(line), (char[ERR_LEN]){ 0 });
	for (;;) {
		const char *p = t->s.reply.data ? t->s.reply.data : "";
		const char *end = p + t->s.reply.len;

		pages++;
		if (t->s.reply.len > DICT_ITER_PAGE_BYTES + 128)
			fail_msg("page %d: %zu bytes", pages, t->s.reply.len);
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));

			assert_non_null(nl);
			assert_false(ended);
			if (nl == p) {
				ended = true;
			} else {
				snprintf(want, sizeof(want), "Opriv/" DT_G
				    "/k%05d\t", rows++);
				if ((size_t)(nl - p) != strlen(want) ||
				    memcmp(p, want, strlen(want)) != 0)
					fail_msg("row %d: %.*s", rows - 1,
					    (int)(nl - p), p);
			}
			p = nl + 1;
		}
		buf_reset(&t->s.reply);
		if (st == DICT_CMD_DONE)
			break;
		assert_int_equal(st, DICT_CMD_MORE);
		assert_false(ended);
		st = dict_cmd_continue(&t->s);
	}
	assert_true(ended);
	assert_null(t->s.iter);
	*pages_out = pages;
	return rows;
}

static void
test_iteration_answers_in_pages(void **state)
{
	struct cmd_test *t = *state;
	int pages;

	run(t, DT_HELLO, DICT_CMD_DONE);
	store_keys(t, 3000);
	assert_int_equal(iterate_all(t, "I9\t0\tpriv/" DT_G "/\talice",
	    &pages), 3000);
	assert_true(pages >= 3);
	/* max_rows, within a page and across pages. */
	assert_int_equal(iterate_all(t, "I9\t5\tpriv/" DT_G "/\talice",
	    &pages), 5);
	assert_int_equal(pages, 1);
	assert_int_equal(iterate_all(t, "I9\t1500\tpriv/" DT_G "/\talice",
	    &pages), 1500);
	assert_int_equal(pages, 2);
	/* The session goes on with the next command. */
	run(t, "Lpriv/" DT_G "/k00001\talice", DICT_CMD_DONE);
	assert_string_equal(replies(t), "Ov\n");
	/* A connection closed in the middle: the iteration is freed with
	 * the session (teardown; ASan's leak check). */
	run(t, "I9\t0\tpriv/" DT_G "/\talice", DICT_CMD_MORE);
	assert_non_null(t->s.iter);
}

static void
test_commit_waits_for_the_group_commit(void **state)
{
	struct cmd_test *t = *state;

	run(t, DT_HELLO, DICT_CMD_DONE);
	run(t, "B1\talice", DICT_CMD_DONE);
	run(t, "S1\tpriv/" DT_G "/devicetoken\ttok1", DICT_CMD_DONE);
	run(t, "C1", DICT_CMD_WAIT);
	assert_int_equal(t->f->commits, 1);
	assert_true(t->s.committing);
	assert_int_equal(t->s.txns.n, 0);
	/* Nothing stored, nothing answered before the group commit. */
	assert_string_equal(replies(t), "");
	assert_int_equal(t->dones, 0);
	assert_string_equal(dt_lookup(t->f, "alice",
	    "priv/" DT_G "/devicetoken"), "N");

	dict_commit_flush(t->f->gc, fake_now_ms, fake_mono_ms);
	assert_int_equal(t->dones, 1);
	assert_false(t->s.committing);
	assert_string_equal(replies(t), "O1\n");
	assert_string_equal(dt_lookup(t->f, "alice",
	    "priv/" DT_G "/devicetoken"), "tok1");

	/* D: the same, its reply prefixed with A (protocol doc §3). */
	run(t, "B2\talice", DICT_CMD_DONE);
	run(t, "U2\tpriv/" DT_G "/devicetoken", DICT_CMD_DONE);
	run(t, "D2", DICT_CMD_WAIT);
	dict_commit_flush(t->f->gc, fake_now_ms, fake_mono_ms);
	assert_int_equal(t->dones, 2);
	assert_string_equal(replies(t), "AO2\n");
	assert_string_equal(dt_lookup(t->f, "alice",
	    "priv/" DT_G "/devicetoken"), "N");
}

static void
test_transactions_are_the_sessions(void **state)
{
	struct cmd_test *t = *state;
	struct dict_cmd_session other;
	char err[ERR_LEN];

	dict_cmd_session_init(&other, &t->f->ctx, 18, on_done, t);
	run(t, DT_HELLO, DICT_CMD_DONE);
	assert_int_equal(dict_cmd_run(&other, DT_HELLO, strlen(DT_HELLO),
	    err), DICT_CMD_DONE);
	/* The same id on two connections: two transactions. */
	run(t, "B1\talice", DICT_CMD_DONE);
	assert_int_equal(dict_cmd_run(&other, "B1\tbob", 6, err),
	    DICT_CMD_DONE);
	assert_string_equal(dict_txn_find(&t->s.txns, 1)->user, "alice");
	assert_string_equal(dict_txn_find(&other.txns, 1)->user, "bob");
	assert_int_equal(dict_txn_find(&t->s.txns, 1)->conn_id, 17);
	/* Rolled back on one, still open on the other. */
	run(t, "R1", DICT_CMD_DONE);
	assert_null(dict_txn_find(&t->s.txns, 1));
	assert_non_null(dict_txn_find(&other.txns, 1));
	/* Its commit now fails; changes to it are logged and dropped. */
	run(t, "S1\tpriv/" DT_G "/k\tv", DICT_CMD_DONE);
	assert_int_equal(metric_value(t->f->stats.err_protocol), 1);
	run(t, "C1", DICT_CMD_DONE);
	assert_string_equal(replies(t), "F1\tunknown transaction\n");
	assert_int_equal(metric_value(t->f->stats.err_protocol), 2);
	run(t, "D9", DICT_CMD_DONE);
	assert_string_equal(replies(t), "AF9\tunknown transaction\n");
	assert_int_equal(t->f->commits, 0);
	/* Open transactions die with the session (leak-checked). */
	dict_cmd_session_clear(&other);
}

static void
test_refused_and_malformed(void **state)
{
	struct cmd_test *t = *state;
	static const struct {
		const char		*line;
		enum dict_cmd_status	 status;
		const char		*err;
	} rows[] = {
		{ "Lpriv/x\talice", DICT_CMD_REFUSED,
		    "command before handshake" },
		{ "H4\t0\t0\t\tmetadata", DICT_CMD_REFUSED,
		    "unsupported protocol version 4.0" },
		{ DT_HELLO, DICT_CMD_DONE, "" },
		{ "Zfoo", DICT_CMD_MALFORMED, "unknown command 0x5a" },
		{ "Lpriv/x", DICT_CMD_MALFORMED, "expected 2" },
		{ "Bx\talice", DICT_CMD_MALFORMED, "malformed begin" },
		{ "B1\talice", DICT_CMD_DONE, "" },
		{ "B1\talice", DICT_CMD_REFUSED,
		    "transaction 1 begun twice" },
	};
	char err[ERR_LEN];

	for (size_t i = 0; i < NELEM(rows); i++) {
		enum dict_cmd_status got;

		err[0] = '\0';
		got = dict_cmd_run(&t->s, rows[i].line, strlen(rows[i].line),
		    err);
		if (got != rows[i].status || strstr(err, rows[i].err) == NULL)
			fail_msg("row %zu (%s): status %d err \"%s\"", i,
			    rows[i].line, got, err);
	}
	assert_string_equal(replies(t), "");
	/* Counted: the two handshakes and the good B, nothing refused
	 * before the handshake or unparsed. */
	assert_int_equal(metric_value(t->f->stats.commands['H']), 2);
	assert_int_equal(metric_value(t->f->stats.commands['B']), 2);
	assert_int_equal(metric_value(t->f->stats.commands['L']), 0);
}

static void
test_every_command_counted(void **state)
{
	struct cmd_test *t = *state;
	static const char *const lines[] = {
		DT_HELLO, "Lk\tu", "Ipriv/\tu", "B1\tu", "S1\tk\tv", "U1\tk",
		"A1\tk\t1", "T1\t1\t2", "V1", "R1", "B2\tu", "C2",
	};

	for (size_t i = 0; i < NELEM(lines); i++) {
		char err[ERR_LEN];

		(void)dict_cmd_run(&t->s, lines[i], strlen(lines[i]), err);
	}
	dict_commit_flush(t->f->gc, fake_now_ms, fake_mono_ms);
	assert_int_equal(metric_value(t->f->stats.commands['L']), 1);
	/* "Ipriv/\tu" lacks fields: malformed, not counted. */
	assert_int_equal(metric_value(t->f->stats.commands['I']), 0);
	assert_int_equal(metric_value(t->f->stats.commands['B']), 2);
	assert_int_equal(metric_value(t->f->stats.commands['S']), 1);
	assert_int_equal(metric_value(t->f->stats.commands['U']), 1);
	assert_int_equal(metric_value(t->f->stats.commands['A']), 1);
	assert_int_equal(metric_value(t->f->stats.commands['R']), 1);
	assert_int_equal(metric_value(t->f->stats.commands['C']), 1);
	assert_int_equal(metric_value(t->f->stats.commands['H']), 3);
}

static void
test_lookups_use_the_contexts_clock(void **state)
{
	struct cmd_test *t = *state;
	const char *l = "Lpriv/" DT_G "/devicetoken\talice";

	run(t, DT_HELLO, DICT_CMD_DONE);
	run(t, "B1\talice", DICT_CMD_DONE);
	run(t, "S1\tpriv/" DT_G "/devicetoken\ttok1", DICT_CMD_DONE);
	run(t, "C1", DICT_CMD_WAIT);
	dict_commit_flush(t->f->gc, fake_now_ms, fake_mono_ms);
	assert_string_equal(replies(t), "O1\n");
	fake_now_ms += DT_TTL_MS - 1;
	run(t, l, DICT_CMD_DONE);
	assert_string_equal(replies(t), "Otok1\n");
	/* Past --token-ttl by the context's clock: expired. */
	fake_now_ms += 2;
	run(t, l, DICT_CMD_DONE);
	assert_string_equal(replies(t), "N\n");
}

/* The session cleared while its commit waits would leave the group
 * commit a dangling callback: a programming error, so abort(). */
static void
test_clear_while_committing_aborts(void **state)
{
	struct cmd_test *t = *state;
	pid_t pid;
	int status;

	run(t, DT_HELLO, DICT_CMD_DONE);
	run(t, "B1\talice", DICT_CMD_DONE);
	run(t, "C1", DICT_CMD_WAIT);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dict_cmd_session_clear(&t->s);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
	dict_commit_flush(t->f->gc, fake_now_ms, fake_mono_ms);
	assert_int_equal(t->dones, 1);
}

/* The table against protocol doc §3 and §8.1: one row per letter
 * Dovecot may send, answered exactly for L I C D, waiting only where an
 * answer depends on the group commit or the TURN helper. */
static void
test_table_is_the_protocol(void **state)
{
	static const struct {
		char		 letter;
		unsigned int	 flags;
		unsigned int	 nrequired, nfields;
	} want[] = {
		{ 'H', DICT_CMD_F_HANDSHAKE, 5, 5 },
		{ 'L', DICT_CMD_F_REPLIES | DICT_CMD_F_WAITS, 2, 2 },
		{ 'I', DICT_CMD_F_REPLIES | DICT_CMD_F_STREAMS, 4, 4 },
		{ 'B', 0, 2, 3 },
		{ 'S', 0, 3, 3 },
		{ 'U', 0, 2, 2 },
		{ 'A', 0, 3, 3 },
		{ 'T', 0, 3, 3 },
		{ 'C', DICT_CMD_F_REPLIES | DICT_CMD_F_WAITS |
		    DICT_CMD_F_EXACT, 1, 1 },
		{ 'D', DICT_CMD_F_REPLIES | DICT_CMD_F_WAITS |
		    DICT_CMD_F_ASYNC | DICT_CMD_F_EXACT, 1, 1 },
		{ 'R', DICT_CMD_F_EXACT, 1, 1 },
		{ 'V', DICT_CMD_F_EXACT, 1, 1 },
	};
	const struct dict_cmd_def *def;
	size_t rows = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(want); i++) {
		def = dict_cmd_def_find(want[i].letter);
		if (def == NULL)
			fail_msg("row %c: missing", want[i].letter);
		if (def->flags != want[i].flags ||
		    def->nrequired != want[i].nrequired ||
		    def->nfields != want[i].nfields ||
		    def->handler == NULL || def->name == NULL ||
		    def->counter == NULL)
			fail_msg("row %c: flags 0x%x fields %u of %u",
			    want[i].letter, def->flags, def->nrequired,
			    def->nfields);
	}
	for (size_t i = 0; (def = dict_cmd_def_at(i)) != NULL; i++) {
		rows++;
		if (dict_cmd_def_find(def->kind) != def)
			fail_msg("letter %c has two rows", (char)def->kind);
		if (def->nfields > DICT_CMD_MAX_FIELDS ||
		    def->nrequired > def->nfields)
			fail_msg("row %c: %u of %u fields", (char)def->kind,
			    def->nrequired, def->nfields);
	}
	assert_int_equal(rows, NELEM(want));
	/* Reply letters are not commands. */
	assert_null(dict_cmd_def_find('O'));
	assert_null(dict_cmd_def_find('N'));
	assert_null(dict_cmd_def_find('F'));
	assert_null(dict_cmd_def_find(0));
}

/* dictd_commands keeps its series and their order in the exposition:
 * one per label, letters sharing a label sharing it. */
static void
test_counter_series(void **state)
{
	static const char *const labels[] = {
		"lookup", "iterate", "begin", "set", "unset", "atomic_inc",
		"commit", "rollback", "other",
	};
	struct cmd_test *t = *state;
	char *text, *at, want[64];
	size_t len;

	run(t, DT_HELLO, DICT_CMD_DONE);
	run(t, "T1\t1\t2", DICT_CMD_DONE);
	run(t, "B1\tu", DICT_CMD_DONE);
	run(t, "D1", DICT_CMD_WAIT);
	dict_commit_flush(t->f->gc, fake_now_ms, fake_mono_ms);
	text = metrics_render(t->f->metrics, &len);
	at = text;
	for (size_t i = 0; i < NELEM(labels); i++) {
		snprintf(want, sizeof(want), "dictd_commands_total{command="
		    "\"%s\"}", labels[i]);
		if ((at = strstr(at, want)) == NULL)
			fail_msg("%s missing or out of order", want);
		at += strlen(want);
	}
	assert_null(strstr(at, "dictd_commands_total{"));
	assert_non_null(strstr(text,
	    "dictd_commands_total{command=\"other\"} 2\n"));
	assert_non_null(strstr(text,
	    "dictd_commands_total{command=\"commit\"} 1\n"));
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_only_lookups_iterations_and_commits_answer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_commit_waits_for_the_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_transactions_are_the_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_and_malformed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_command_counted,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_lookups_use_the_contexts_clock, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_clear_while_committing_aborts, setup, teardown),
		cmocka_unit_test(test_table_is_the_protocol),
		cmocka_unit_test_setup_teardown(
		    test_iteration_answers_in_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counter_series, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
