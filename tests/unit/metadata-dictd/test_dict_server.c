/* Unit tests of metadata-dictd/dict_server.c: a real server on a Unix
 * socket in a scratch directory, real clients, the loop driven by the
 * test and a fake clock. The commits of one loop pass, from any number of
 * connections, share one group commit; a client gone while its commit
 * waits is freed after the group commit stored it; closed connections
 * are freed once their pass is over; shutdown closes every connection
 * and removes the socket. Out of file descriptors the listener pauses
 * (one log line, no spinning) and resumes when a connection closes or
 * after its back-off; at --max-connections it pauses until one is freed,
 * the next clients waiting in the backlog; while another process holds
 * the write lock, commits wait on a timer, lookups are answered, and a
 * connection gone meanwhile is freed only once its commit was answered;
 * peer-caused log lines past their limit are counted. */
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "dictd_test.h"
#include "log.h"

#define CLIENTS_MAX	8

struct server_test {
	char			 dir[TESTUTIL_DIR_LEN];
	char			 db_path[TESTUTIL_PATH_LEN];
	char			 sock_path[TESTUTIL_PATH_LEN + 16];
	struct event_base	*base;
	struct dict_server	*srv;
	const struct dict_stats	*st;
	int			 client[CLIENTS_MAX];
};

/* A server on a scratch socket with --max-connections max_conns (0:
 * the default). */
static struct server_test *
server_test_new(size_t max_conns)
{
	struct server_test *t = calloc(1, sizeof(*t));
	struct dict_server_config cfg;
	struct dict_store *store;
	char err[ERR_LEN];

	assert_non_null(t);
	fake_now_ms = DT_T0_MS;
	testutil_db_dir(t->dir, "test_dict_server", "relay.db", t->db_path);
	snprintf(t->sock_path, sizeof(t->sock_path), "%s/dict.sock", t->dir);
	store = dict_store_open(t->db_path, DB_SYNC_NORMAL, DT_TTL_MS, err);
	assert_non_null(store);
	t->base = event_base_new();
	memset(&cfg, 0, sizeof(cfg));
	cfg.socket_path = t->sock_path;
	cfg.socket_mode = 0600;
	cfg.token_ttl_ms = DT_TTL_MS;
	cfg.wall_ms = fake_clock;
	cfg.max_connections = max_conns;
	t->srv = dict_server_new(t->base, &cfg, store, err);
	if (t->srv == NULL)
		fail_msg("server: %s", err);
	t->st = dict_server_stats(t->srv);
	for (int i = 0; i < CLIENTS_MAX; i++)
		t->client[i] = -1;
	return t;
}

static int
setup(void **state)
{
	*state = server_test_new(0);
	return 0;
}

static int
setup_max3(void **state)
{
	*state = server_test_new(3);
	return 0;
}

static int
teardown(void **state)
{
	struct server_test *t = *state;

	dict_server_free(t->srv);
	for (int i = 0; i < CLIENTS_MAX; i++)
		if (t->client[i] >= 0)
			close(t->client[i]);
	event_base_free(t->base);
	unlink(t->sock_path);
	testutil_db_dir_remove(t->dir, t->db_path);
	free(t);
	return 0;
}

static void
pump(struct server_test *t)
{
	for (int i = 0; i < 20; i++)
		event_base_loop(t->base, EVLOOP_NONBLOCK);
}

/* Client i connects (the connect completes in the listen backlog). */
static void
client_connect(struct server_test *t, int i)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	memcpy(sun.sun_path, t->sock_path, strlen(t->sock_path) + 1);
	t->client[i] = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(t->client[i] >= 0);
	assert_int_equal(connect(t->client[i], (struct sockaddr *)&sun,
	    sizeof(sun)), 0);
	assert_int_equal(fcntl(t->client[i], F_SETFL, O_NONBLOCK), 0);
}

static void
client_send(struct server_test *t, int i, const char *s)
{
	assert_int_equal(write(t->client[i], s, strlen(s)),
	    (ssize_t)strlen(s));
}

static void
client_close(struct server_test *t, int i)
{
	close(t->client[i]);
	t->client[i] = -1;
}

/* What client i has been sent since the last call ("<eof>" appended
 * once the server closed). A static buffer, for assertions. */
static const char *
client_read(struct server_test *t, int i)
{
	static char out[4096];
	size_t len = 0;
	ssize_t n;

	while ((n = read(t->client[i], out + len, sizeof(out) - 8 - len)) > 0)
		len += (size_t)n;
	if (n < 0)
		assert_int_equal(errno, EAGAIN);
	out[len] = '\0';
	if (n == 0)
		strcat(out, "<eof>");
	return out;
}

static void
test_one_group_commit_for_a_pass(void **state)
{
	struct server_test *t = *state;

	client_connect(t, 0);
	client_connect(t, 1);
	pump(t);
	assert_int_equal(metric_value(t->st->connections), 2);
	assert_int_equal(metric_value(t->st->connections_total), 2);
	/* Both commits arrive before the loop runs: one pass reads them. */
	client_send(t, 0, DT_HELLO "\nB1\talice\nS1\tpriv/" DT_G
	    "/devicetoken\ttokA\nC1\n");
	client_send(t, 1, DT_HELLO "\nB1\tbob\nS1\tpriv/" DT_G
	    "/devicetoken\ttokB\nC1\n");
	pump(t);
	assert_string_equal(client_read(t, 0), "O1\n");
	assert_string_equal(client_read(t, 1), "O1\n");
	assert_int_equal(metric_value(t->st->group_commits), 1);
	assert_int_equal(metric_value(t->st->commit_ok), 2);

	/* A commit pipelined behind another goes into the next one. */
	client_send(t, 0, "B2\talice\nS2\tpriv/" DT_G "/a\t1\nC2\n"
	    "B3\talice\nS3\tpriv/" DT_G "/b\t2\nC3\n"
	    "Lpriv/" DT_G "/b\talice\nLpriv/" DT_G "/devicetoken\tbob\n");
	pump(t);
	assert_string_equal(client_read(t, 0), "O2\nO3\nO2\nOtokB\n");
	assert_int_equal(metric_value(t->st->group_commits), 3);
}

static void
test_client_gone_while_its_commit_waits(void **state)
{
	struct server_test *t = *state;

	client_connect(t, 0);
	client_send(t, 0, DT_HELLO "\nB1\talice\nS1\tpriv/" DT_G
	    "/devicetoken\ttokA\nC1\n");
	client_close(t, 0);
	pump(t);
	/* Stored, and the connection freed after its group commit. */
	assert_int_equal(metric_value(t->st->commit_ok), 1);
	assert_int_equal(metric_value(t->st->connections), 0);
	client_connect(t, 1);
	client_send(t, 1, DT_HELLO "\nLpriv/" DT_G "/devicetoken\talice\n");
	pump(t);
	assert_string_equal(client_read(t, 1), "OtokA\n");
}

static void
test_closed_connections_freed_idle_ones_kept(void **state)
{
	struct server_test *t = *state;

	for (int i = 0; i < 6; i++)
		client_connect(t, i);
	pump(t);
	assert_int_equal(metric_value(t->st->connections), 6);
	/* Four hang up (one with an open transaction), two stay idle:
	 * Dovecot's proxy:idle_msecs keeps a connection for reuse, and the
	 * server lets it (protocol doc §5). */
	client_send(t, 0, DT_HELLO "\n");
	client_send(t, 1, DT_HELLO "\nB1\talice\nS1\tpriv/" DT_G "/k\tv\n");
	for (int i = 0; i < 4; i++)
		client_close(t, i);
	pump(t);
	assert_int_equal(metric_value(t->st->connections), 2);
	assert_int_equal(metric_value(t->st->group_commits), 0);
	client_send(t, 4, DT_HELLO "\nLpriv/" DT_G "/k\talice\n");
	pump(t);
	assert_string_equal(client_read(t, 4), "N\n");
	assert_string_equal(client_read(t, 5), "");
}

static void
test_shutdown_closes_every_connection(void **state)
{
	struct server_test *t = *state;
	struct stat sb;

	client_connect(t, 0);
	client_connect(t, 1);
	client_send(t, 1, DT_HELLO "\nB1\talice\nS1\tpriv/" DT_G "/k\tv\n");
	pump(t);
	dict_server_shutdown(t->srv);
	assert_string_equal(client_read(t, 0), "<eof>");
	assert_string_equal(client_read(t, 1), "<eof>");
	assert_int_equal(metric_value(t->st->connections), 0);
	assert_int_equal(stat(t->sock_path, &sb), -1);
	/* The open transaction died with its connection. */
	assert_int_equal(metric_value(t->st->group_commits), 0);
}

/* Runs the loop for ms milliseconds of real time (timers fire). */
static void
run_for(struct server_test *t, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(t->base, &tv);
	event_base_dispatch(t->base);
}

/* Log lines containing what, counted through the log sink. */
struct line_count {
	const char	*what;
	int		 n;
};

static void
count_lines(enum log_level level, const char *line, void *arg)
{
	struct line_count *lc = arg;

	(void)level;
	if (strstr(line, lc->what) != NULL)
		lc->n++;
}

/* Makes every new file descriptor fail (EMFILE): the limit becomes the
 * lowest free descriptor. Returns the limit to restore. */
static struct rlimit
fds_exhaust(void)
{
	struct rlimit saved, rl;
	int probe = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(probe >= 0);
	close(probe);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	rl = saved;
	rl.rlim_cur = (rlim_t)probe;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	return saved;
}

static void
test_out_of_fds_pauses_the_listener(void **state)
{
	struct server_test *t = *state;
	struct line_count lc = { "accept failed", 0 };
	struct rlimit saved;

	log_set_sink(count_lines, &lc);
	client_connect(t, 0);
	pump(t);
	assert_int_equal(metric_value(t->st->connections), 1);
	/* Two more wait in the backlog while the server has no fd left. */
	client_connect(t, 1);
	client_connect(t, 2);
	client_send(t, 1, DT_HELLO "\nLpriv/" DT_G "/k\talice\n");
	client_send(t, 2, DT_HELLO "\nLpriv/" DT_G "/k\talice\n");
	saved = fds_exhaust();
	pump(t);
	pump(t);
	setrlimit(RLIMIT_NOFILE, &saved);
	/* Paused after one failure: no accept() per loop pass. */
	assert_int_equal(metric_value(t->st->accept_pauses), 1);
	assert_int_equal(metric_value(t->st->connections), 1);
	assert_int_equal(lc.n, 1);
	/* A connection of ours closes: the listener resumes at once. */
	client_close(t, 0);
	pump(t);
	assert_int_equal(metric_value(t->st->connections_total), 3);
	assert_string_equal(client_read(t, 1), "N\n");
	assert_string_equal(client_read(t, 2), "N\n");

	/* Out again, and nothing closes: the back-off's timer resumes. */
	client_connect(t, 3);
	client_send(t, 3, DT_HELLO "\nLpriv/" DT_G "/k\talice\n");
	saved = fds_exhaust();
	pump(t);
	setrlimit(RLIMIT_NOFILE, &saved);
	assert_int_equal(metric_value(t->st->accept_pauses), 2);
	assert_int_equal(metric_value(t->st->connections_total), 3);
	run_for(t, 500);	/* the second pause of the episode: 200 ms */
	assert_int_equal(metric_value(t->st->connections_total), 4);
	assert_string_equal(client_read(t, 3), "N\n");
	/* One episode, one line. */
	assert_int_equal(lc.n, 1);
	log_set_sink(NULL, NULL);
}

/* At --max-connections (3) the listener pauses: the next clients wait in
 * the backlog, their commands unread, and are served one by one as
 * connections are freed; one log line for the episode. */
static void
test_max_connections_pauses_the_listener(void **state)
{
	struct server_test *t = *state;
	struct line_count lc = { "--max-connections", 0 };

	log_set_sink(count_lines, &lc);
	for (int i = 0; i < 5; i++) {
		client_connect(t, i);
		client_send(t, i, DT_HELLO "\nLpriv/" DT_G "/k\talice\n");
	}
	pump(t);
	assert_int_equal(metric_value(t->st->connections), 3);
	assert_int_equal(metric_value(t->st->connections_total), 3);
	assert_int_equal(metric_value(t->st->conn_limit_pauses), 1);
	for (int i = 0; i < 3; i++)
		assert_string_equal(client_read(t, i), "N\n");
	assert_string_equal(client_read(t, 3), "");
	/* One leaves: the first waiting one is served, the last waits. */
	client_close(t, 0);
	pump(t);
	assert_int_equal(metric_value(t->st->connections_total), 4);
	assert_string_equal(client_read(t, 3), "N\n");
	assert_string_equal(client_read(t, 4), "");
	assert_int_equal(metric_value(t->st->conn_limit_pauses), 2);
	client_close(t, 1);
	pump(t);
	assert_string_equal(client_read(t, 4), "N\n");
	assert_int_equal(metric_value(t->st->connections), 3);
	assert_int_equal(lc.n, 1);
	log_set_sink(NULL, NULL);
}

static void
test_held_write_lock_waits_on_a_timer(void **state)
{
	struct server_test *t = *state;
	sqlite3 *other;

	assert_int_equal(sqlite3_open(t->db_path, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL,
	    NULL), SQLITE_OK);
	client_connect(t, 0);
	client_connect(t, 1);
	client_send(t, 0, DT_HELLO "\nB1\talice\nS1\tpriv/" DT_G "/k\tv\nC1\n");
	pump(t);
	assert_string_equal(client_read(t, 0), "");
	assert_int_equal(metric_value(t->st->write_busy), 1);
	/* Lookups are answered meanwhile, without another attempt at the
	 * lock per loop pass (only the timer tries). */
	client_send(t, 1, DT_HELLO "\nLpriv/" DT_G "/k\talice\n");
	pump(t);
	assert_string_equal(client_read(t, 1), "N\n");
	assert_int_equal(metric_value(t->st->write_busy), 1);
	/* The committing client leaves: kept until its commit is done. */
	client_close(t, 0);
	pump(t);
	assert_int_equal(metric_value(t->st->connections), 2);
	assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(other);
	run_for(t, 300);	/* the retry timer: 10, 20, 40... ms */
	assert_int_equal(metric_value(t->st->commit_ok), 1);
	assert_int_equal(metric_value(t->st->connections), 1);
	client_send(t, 1, "Lpriv/" DT_G "/k\talice\n");
	pump(t);
	assert_string_equal(client_read(t, 1), "Ov\n");
}

static void
test_flood_of_bad_commands_is_counted_not_logged(void **state)
{
	struct server_test *t = *state;
	struct line_count lc = { "unknown transaction", 0 };
	char line[64];

	log_set_sink(count_lines, &lc);
	client_connect(t, 0);
	client_send(t, 0, DT_HELLO "\n");
	for (int i = 0; i < 1000; i++) {
		snprintf(line, sizeof(line), "S99\tpriv/" DT_G "/k%d\tv\n", i);
		client_send(t, 0, line);
		if (i % 100 == 99)
			pump(t);
	}
	client_send(t, 0, "Lpriv/" DT_G "/k\talice\n");
	pump(t);
	assert_string_equal(client_read(t, 0), "N\n");
	log_set_sink(NULL, NULL);
	/* The burst, and maybe a line for the time the test took. */
	assert_true(lc.n >= 1 && lc.n <= 25);
	assert_true(metric_value(t->st->log_suppressed) >= 1000 - lc.n);
	assert_int_equal(metric_value(t->st->err_protocol), 1000);
}

static void
test_token_ttl_by_the_servers_clock(void **state)
{
	struct server_test *t = *state;

	client_connect(t, 0);
	client_send(t, 0, DT_HELLO "\nB1\talice\nS1\tpriv/" DT_G
	    "/devicetoken\ttokA\nC1\n");
	pump(t);
	assert_string_equal(client_read(t, 0), "O1\n");
	fake_now_ms += DT_TTL_MS + 1;
	client_send(t, 0, "Lpriv/" DT_G "/devicetoken\talice\n");
	pump(t);
	assert_string_equal(client_read(t, 0), "N\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_max_connections_pauses_the_listener, setup_max3,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_one_group_commit_for_a_pass, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_client_gone_while_its_commit_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_closed_connections_freed_idle_ones_kept, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_shutdown_closes_every_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_token_ttl_by_the_servers_clock, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_out_of_fds_pauses_the_listener, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_held_write_lock_waits_on_a_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_flood_of_bad_commands_is_counted_not_logged, setup,
		    teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
