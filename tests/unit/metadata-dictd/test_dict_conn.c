/* Unit tests of metadata-dictd/dict_conn.c: one connection on a
 * socketpair, the test playing both Dovecot (the other end) and the
 * connection's owner (the closed callback), with the commands' context
 * of dictd_test.h (real store, a group commit the test flushes). Pipelined
 * commands are answered in order; a commit or a TURN lookup holds the
 * commands behind it; a client gone while its commit waits costs no
 * crash and no data; bad input closes the connection, once; a long
 * listing goes out page by page as the peer reads it, the commands
 * behind it answered after it. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "dictd_test.h"

#define TURN_KEY "shared/" DT_G \
	"/vendor/vendor.dovecot/pvt/server/vendor/deltachat/turn"

struct conn_test {
	struct dt_fixture	*f;
	struct dict_conn	*c;
	int			 peer;		/* Dovecot's end */
	int			 closes;	/* closed callback calls */
	char			 got[1 << 16];	/* what the peer read */
	size_t			 got_len;
	bool			 peer_eof;
};

static void
on_closed(void *arg, struct dict_conn *c)
{
	struct conn_test *t = arg;

	assert_ptr_equal(c, t->c);
	t->closes++;
}

/* A connection whose socket takes sndbuf bytes (0: the default). */
static void
conn_open_sndbuf(struct conn_test *t, int sndbuf)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	if (sndbuf > 0)
		assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF,
		    &sndbuf, sizeof(sndbuf)), 0);
	t->peer = sv[1];
	t->c = dict_conn_new(t->f->base, sv[0], 5, &t->f->ctx, on_closed, t);
	t->got_len = 0;
	t->peer_eof = false;
	t->closes = 0;
}

static void
conn_open(struct conn_test *t)
{
	conn_open_sndbuf(t, 0);
}

static struct conn_test *
conn_test_new(const struct dict_vendor_config *vcfg)
{
	struct conn_test *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->f = dt_fixture_new("test_dict_conn", vcfg);
	conn_open(t);
	return t;
}

static int
setup(void **state)
{
	*state = conn_test_new(NULL);
	return 0;
}

/* What the owner does with a closed connection, as the server does. */
static void
conn_free(struct conn_test *t)
{
	dict_conn_free(t->c);
	t->c = NULL;
	if (t->peer >= 0)
		close(t->peer);
	t->peer = -1;
}

static int
teardown(void **state)
{
	struct conn_test *t = *state;

	conn_free(t);
	dt_fixture_free(t->f);
	free(t);
	return 0;
}

/* Run the loop until it has nothing more to do at once. */
static void
pump(struct conn_test *t)
{
	for (int i = 0; i < 20; i++)
		event_base_loop(t->f->base, EVLOOP_NONBLOCK);
}

static void
peer_send(struct conn_test *t, const char *s)
{
	assert_int_equal(write(t->peer, s, strlen(s)), (ssize_t)strlen(s));
}

/* Everything the connection wrote so far, as a string. */
static const char *
peer_read(struct conn_test *t)
{
	ssize_t n = -1;

	while (!t->peer_eof && (n = read(t->peer, t->got + t->got_len,
	    sizeof(t->got) - 1 - t->got_len)) != 0) {
		if (n < 0) {
			assert_int_equal(errno, EAGAIN);
			break;
		}
		t->got_len += (size_t)n;
	}
	if (n == 0)
		t->peer_eof = true;
	t->got[t->got_len] = '\0';
	return t->got;
}

static void
test_pipelined_commands_answered_in_order(void **state)
{
	struct conn_test *t = *state;

	/* One write, as Dovecot pipelines: the commit, then lookups. */
	peer_send(t, DT_HELLO "\nB1\talice\nS1\tpriv/" DT_G "/k\tv1\nC1\n"
	    "Lpriv/" DT_G "/k\talice\nLpriv/" DT_G "/none\talice\n");
	pump(t);
	/* The commit waits for the group commit and the lookups behind
	 * it have not run: their answers would overtake its reply. */
	assert_int_equal(t->f->commits, 1);
	assert_int_equal(t->f->read_dones, 0);
	assert_string_equal(peer_read(t), "");
	/* Nor is anything read meanwhile. */
	peer_send(t, "Lpriv/" DT_G "/k\talice\n");
	pump(t);
	assert_string_equal(peer_read(t), "");

	dict_commit_flush(t->f->gc, fake_now_ms, fake_mono_ms);
	pump(t);
	assert_string_equal(peer_read(t), "O1\nOv1\nN\nOv1\n");
	assert_int_equal(t->f->read_dones, 3);
	assert_int_equal(t->closes, 0);

	/* Two transactions interleaved, committed back to back (protocol
	 * doc §5: SETMETADATA of a private and a shared entry). */
	peer_send(t, "B4\talice\nS4\tpriv/" DT_G "/a\t1\nB5\talice\n"
	    "S5\tshared/" DT_G "/b\t2\nC4\nC5\n");
	pump(t);
	dict_commit_flush(t->f->gc, fake_now_ms, fake_mono_ms);
	pump(t);
	assert_string_equal(peer_read(t), "O1\nOv1\nN\nOv1\nO4\n");
	dict_commit_flush(t->f->gc, fake_now_ms, fake_mono_ms);
	pump(t);
	assert_string_equal(peer_read(t), "O1\nOv1\nN\nOv1\nO4\nO5\n");
	assert_string_equal(dt_lookup(t->f, "", "shared/" DT_G "/b"), "2");
}

static void
test_client_gone_while_its_commit_waits(void **state)
{
	struct conn_test *t = *state;

	peer_send(t, DT_HELLO "\nB1\talice\nS1\tpriv/" DT_G
	    "/devicetoken\ttok1\nC1\n");
	pump(t);
	assert_int_equal(t->f->commits, 1);
	close(t->peer);
	t->peer = -1;
	pump(t);
	/* Waiting, the connection reads nothing: it learns of the hang-up
	 * when the reply cannot be written. */
	assert_int_equal(t->closes, 0);
	dict_commit_flush(t->f->gc, fake_now_ms, fake_mono_ms);
	pump(t);
	assert_int_equal(t->closes, 1);
	/* Stored all the same: the commit was received. */
	assert_string_equal(dt_lookup(t->f, "alice",
	    "priv/" DT_G "/devicetoken"), "tok1");
	pump(t);
	assert_int_equal(t->closes, 1);
}

static void
test_closed_by_its_owner_while_its_commit_waits(void **state)
{
	struct conn_test *t = *state;

	peer_send(t, DT_HELLO "\nB1\talice\nS1\tpriv/" DT_G "/k\tv\nC1\n");
	pump(t);
	/* The server shuts down: the connection closes, the group commit
	 * still answers (to nobody), then the owner frees it. */
	dict_conn_close_later(t->c, "shutdown");
	dict_conn_close_later(t->c, "shutdown");
	assert_int_equal(t->closes, 1);
	dict_commit_flush(t->f->gc, fake_now_ms, fake_mono_ms);
	assert_string_equal(dt_lookup(t->f, "alice", "priv/" DT_G "/k"), "v");
	dict_conn_free(t->c);
	t->c = NULL;
	assert_string_equal(peer_read(t), "");
	assert_true(t->peer_eof);
}

static void
test_hang_up_discards_open_transactions(void **state)
{
	struct conn_test *t = *state;

	peer_send(t, DT_HELLO "\nB1\talice\nS1\tpriv/" DT_G "/k\tv\n");
	close(t->peer);
	t->peer = -1;
	pump(t);
	assert_int_equal(t->closes, 1);
	conn_free(t);
	pump(t);
	assert_int_equal(dict_commit_pending(t->f->gc), 0);
	assert_string_equal(dt_lookup(t->f, "alice", "priv/" DT_G "/k"), "N");
}

static void
test_bad_input_closes_once(void **state)
{
	struct conn_test *t = *state;
	static const struct {
		const char	*what;
		const char	*input;		/* NULL: an overlong line */
	} rows[] = {
		{ "line too long", NULL },
		{ "unknown command", DT_HELLO "\nZfoo\n" },
		{ "command before handshake", "Lpriv/x\talice\n" },
		{ "malformed line", DT_HELLO "\nC\n" },
	};
	static char big[DICT_LINE_MAX_BYTES + 2];

	memset(big, 'L', sizeof(big) - 1);
	for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
		if (i > 0) {
			conn_free(t);
			conn_open(t);
		}
		if (rows[i].input == NULL)
			assert_int_equal(write(t->peer, big, sizeof(big) - 1),
			    (ssize_t)sizeof(big) - 1);
		else
			peer_send(t, rows[i].input);
		/* Whatever follows is not run. */
		peer_send(t, "Lpriv/x\talice\n");
		pump(t);
		if (t->closes != 1)
			fail_msg("row %zu (%s): closed %d times", i,
			    rows[i].what, t->closes);
		if (strcmp(peer_read(t), "") != 0)
			fail_msg("row %zu (%s): answered \"%s\"", i,
			    rows[i].what, t->got);
	}
	assert_int_equal(metric_value(t->f->stats.err_line_too_long), 1);
	assert_int_equal(metric_value(t->f->stats.err_parse), 2);
	assert_int_equal(metric_value(t->f->stats.err_protocol), 1);
	assert_int_equal(t->f->read_dones, 0);
}

/* A listing of 3,000 keys of ~100 bytes (~330 KB) to a peer that does
 * not read: the connection makes no page past its output bound (each
 * page is one ctx->read_done); once the peer reads, every row comes, in
 * order, then the answer to the lookup sent behind the listing. */
static void
test_iteration_streams_as_the_peer_reads(void **state)
{
	struct conn_test *t = *state;
	struct dict_txn *txn = dict_txn_new(1, "alice");
	struct dict_apply_counts counts = { 0 };
	char key[160], err[ERR_LEN], line[256];
	size_t len = 0;
	int rows = 0;
	bool ended = false, answered = false;

	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof(key), "priv/" DT_G "/%060d/k%05d", 0, i);
		dict_txn_add(txn, DICT_CHANGE_SET, key, "v", 1, 0);
	}
	dict_store_set_max_keys(t->f->store, 3000);
	assert_int_equal(dict_store_batch_begin(t->f->store, err), 0);
	assert_int_equal(dict_store_apply(t->f->store, txn, fake_now_ms,
	    &counts, err), DICT_COMMIT_OK);
	assert_int_equal(dict_store_batch_commit(t->f->store, err), 0);
	dict_txn_free(txn);
	/* A small socket buffer, so the output bound is what stops it. */
	conn_free(t);
	conn_open_sndbuf(t, 8192);
	peer_send(t, DT_HELLO "\nI9\t0\tpriv/" DT_G "/\talice\n"
	    "Lpriv/" DT_G "/none\talice\n");
	pump(t);
	pump(t);
	/* ~16 KiB in the socket, under 64 KiB + a page in the buffer. */
	if (t->f->read_dones > 3)
		fail_msg("%d pages made for a peer that reads nothing",
		    t->f->read_dones);
	while (!answered) {
		char c;
		ssize_t n;

		pump(t);
		while ((n = read(t->peer, &c, 1)) == 1) {
			if (c != '\n') {
				assert_true(len < sizeof(line) - 1);
				line[len++] = c;
				continue;
			}
			line[len] = '\0';
			len = 0;
			if (ended) {
				assert_string_equal(line, "N");
				answered = true;
			} else if (line[0] == '\0')
				ended = true;
			else {
				snprintf(key, sizeof(key), "Opriv/" DT_G
				    "/%060d/k%05d\t", 0, rows++);
				if (strcmp(line, key) != 0)
					fail_msg("row %d: %s", rows - 1, line);
			}
		}
		assert_true(n < 0 && errno == EAGAIN);
		assert_int_equal(t->closes, 0);
	}
	assert_int_equal(rows, 3000);
	assert_true(t->f->read_dones >= 6);
}

/* A TURN lookup waits for the helper: the lookups behind it wait too. */
static void
test_turn_lookup_holds_the_commands_behind_it(void **state)
{
	struct dict_vendor_config v;
	struct conn_test *t;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char dir[TESTUTIL_DIR_LEN], path[TESTUTIL_PATH_LEN];
	int lfd, hfd;

	(void)state;
	testutil_db_dir(dir, "test_dict_conn_turn", "turn.socket", path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	memset(&v, 0, sizeof(v));
	v.turn_host = "turn.example.org";
	v.turn_port = 3478;
	v.turn_socket = path;
	v.turn_timeout_ms = 5000;
	t = conn_test_new(&v);

	peer_send(t, DT_HELLO "\nL" TURN_KEY "\talice\n"
	    "Lpriv/" DT_G "/k\talice\n");
	pump(t);
	hfd = accept(lfd, NULL, NULL);
	assert_true(hfd >= 0);
	assert_string_equal(peer_read(t), "");
	assert_int_equal(t->f->read_dones, 0);
	assert_int_equal(write(hfd, "1700000000:pw\n", 14), 14);
	close(hfd);
	pump(t);
	assert_string_equal(peer_read(t),
	    "Oturn.example.org:3478:1700000000:pw\nN\n");

	/* The client gone while the helper is silent: freeing the
	 * connection cancels the lookup (no callback into freed memory). */
	peer_send(t, "L" TURN_KEY "\talice\n");
	pump(t);
	hfd = accept(lfd, NULL, NULL);
	assert_true(hfd >= 0);
	dict_conn_close_later(t->c, "shutdown");
	conn_free(t);
	close(hfd);
	pump(t);
	assert_int_equal(t->closes, 1);

	dt_fixture_free(t->f);
	free(t);
	close(lfd);
	testutil_db_dir_remove(dir, path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_pipelined_commands_answered_in_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_client_gone_while_its_commit_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_closed_by_its_owner_while_its_commit_waits, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_hang_up_discards_open_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input_closes_once,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_iteration_streams_as_the_peer_reads, setup, teardown),
		cmocka_unit_test(
		    test_turn_lookup_holds_the_commands_behind_it),
	};

	/* As the daemon (evloop_new): a write to a closed peer fails with
	 * EPIPE instead of killing the process. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
