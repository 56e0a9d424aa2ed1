/* Unit tests of metadata-dictd/dict_turn.c: the TURN helper's answer
 * (table), and fetching it from a real Unix socket played by the test
 * through a real event loop: credentials, a helper that never answers
 * (the deadline), one that closes early or talks nonsense, no helper at
 * all, and a request cancelled before its answer. */
#include <errno.h>
#include <setjmp.h>
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
#include <event2/event.h>

#include "dictd.h"
#include "testutil.h"

#define NELEM(a)	(sizeof(a) / sizeof(*(a)))

static void
test_parse_table(void **state)
{
	static const struct {
		const char	*data;
		bool		 eof;
		int		 rc;
		size_t		 cred_len;
		const char	*err;
	} rows[] = {
		/* chatmail-turn: format!("{username}:{password}\n") */
		{ "1700000000:c2VjcmV0==\n", false, 1, 21, NULL },
		{ "1700000000:c2VjcmV0==\n", true, 1, 21, NULL },
		{ "u:p\r\n", false, 1, 3, NULL },
		{ "u:p\nextra", false, 1, 3, NULL },
		{ "", false, 0, 0, NULL },
		{ "1700000000:c2Vj", false, 0, 0, NULL },
		{ "", true, -1, 0, "without an answer" },
		{ "1700000000:c2Vj", true, -1, 0, "cut short" },
		{ "\n", false, -1, 0, "not <username>:<password>" },
		{ "nocolon\n", false, -1, 0, "not <username>:<password>" },
		{ ":p\n", false, -1, 0, "not <username>:<password>" },
		{ "u:\n", false, -1, 0, "not <username>:<password>" },
		{ "u :p\n", false, -1, 0, "byte 0x20" },
		{ "u:p\tq\n", false, -1, 0, "byte 0x09" },
		{ "u:\xc3\xa4\n", false, -1, 0, "byte 0xc3" },
	};
	char err[ERR_LEN], big[DICT_TURN_REPLY_MAX_BYTES + 1];
	size_t n;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		int rc;

		n = 0;
		err[0] = '\0';
		rc = dict_turn_parse(rows[i].data, strlen(rows[i].data),
		    rows[i].eof, &n, err);
		if (rc != rows[i].rc)
			fail_msg("row %zu: rc %d, expected %d (%s)", i, rc,
			    rows[i].rc, err);
		if (rc > 0 && n != rows[i].cred_len)
			fail_msg("row %zu: length %zu", i, n);
		if (rc < 0 && strstr(err, rows[i].err) == NULL)
			fail_msg("row %zu: \"%s\" lacks \"%s\"", i, err,
			    rows[i].err);
	}
	/* A full buffer without a newline can never become an answer. */
	memset(big, 'a', sizeof(big));
	assert_int_equal(dict_turn_parse(big, DICT_TURN_REPLY_MAX_BYTES - 1,
	    false, &n, err), 0);
	assert_int_equal(dict_turn_parse(big, DICT_TURN_REPLY_MAX_BYTES,
	    false, &n, err), -1);
	assert_non_null(strstr(err, "longer than"));
}

struct helper {
	char			 dir[TESTUTIL_DIR_LEN];
	char			 path[TESTUTIL_PATH_LEN];
	int			 lfd;
	struct event_base	*base;
	/* What the callback saw. */
	int			 calls;
	char			 cred[128];
	char			 err[ERR_LEN];
};

static int
setup(void **state)
{
	struct helper *h = calloc(1, sizeof(*h));
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	testutil_db_dir(h->dir, "test_dict_turn", "turn.socket", h->path);
	assert_true(strlen(h->path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, h->path, strlen(h->path) + 1);
	h->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(h->lfd >= 0);
	assert_int_equal(bind(h->lfd, (struct sockaddr *)&sun, sizeof(sun)),
	    0);
	assert_int_equal(listen(h->lfd, 8), 0);
	h->base = event_base_new();
	assert_non_null(h->base);
	*state = h;
	return 0;
}

static int
teardown(void **state)
{
	struct helper *h = *state;

	close(h->lfd);
	event_base_free(h->base);
	testutil_db_dir_remove(h->dir, h->path);
	free(h);
	return 0;
}

static void
on_answer(void *arg, const char *cred, size_t len, const char *err)
{
	struct helper *h = arg;

	h->calls++;
	if (cred != NULL) {
		assert_null(err);
		assert_true(len < sizeof(h->cred));
		memcpy(h->cred, cred, len);
		h->cred[len] = '\0';
	} else
		snprintf(h->err, sizeof(h->err), "%s", err);
	event_base_loopbreak(h->base);
}

/* Start a request, then play the helper: accept and write answer (NULL:
 * write nothing and keep the connection open), close unless keep. */
static int
play(struct helper *h, const char *answer, int64_t timeout_ms)
{
	char err[ERR_LEN];
	struct dict_turn_req *r;
	int cfd;

	r = dict_turn_fetch(h->base, h->path, timeout_ms, on_answer, h, err);
	if (r == NULL)
		fail_msg("fetch: %s", err);
	/* The connect completed at once: it waits in our backlog. */
	cfd = accept(h->lfd, NULL, NULL);
	assert_true(cfd >= 0);
	if (answer != NULL) {
		assert_int_equal(write(cfd, answer, strlen(answer)),
		    (ssize_t)strlen(answer));
		close(cfd);
		cfd = -1;
	}
	event_base_dispatch(h->base);
	return cfd;
}

static void
test_fetch_credentials(void **state)
{
	struct helper *h = *state;

	assert_int_equal(play(h, "1700000000:c2VjcmV0==\n", 5000), -1);
	assert_int_equal(h->calls, 1);
	assert_string_equal(h->cred, "1700000000:c2VjcmV0==");
}

static void
test_fetch_deadline(void **state)
{
	struct helper *h = *state;
	int cfd;

	/* Accepted, never answered: the deadline fails it. */
	cfd = play(h, NULL, 50);
	assert_int_equal(h->calls, 1);
	assert_non_null(strstr(h->err, "no answer within 50 ms"));
	assert_non_null(strstr(h->err, h->path));
	close(cfd);
}

static void
test_fetch_bad_answers(void **state)
{
	struct helper *h = *state;

	play(h, "1700000000:c2Vj", 5000);	/* helper died mid-line */
	assert_int_equal(h->calls, 1);
	assert_non_null(strstr(h->err, "cut short"));
	play(h, "", 5000);
	assert_int_equal(h->calls, 2);
	assert_non_null(strstr(h->err, "without an answer"));
	play(h, "garbage without colon\n", 5000);
	assert_int_equal(h->calls, 3);
	assert_non_null(strstr(h->err, "byte 0x20"));
}

static void
test_fetch_no_helper(void **state)
{
	struct helper *h = *state;
	char err[ERR_LEN], path[TESTUTIL_PATH_LEN + 8];

	snprintf(path, sizeof(path), "%s.absent", h->path);
	assert_null(dict_turn_fetch(h->base, path, 1000, on_answer, h, err));
	assert_non_null(strstr(err, "No such file"));
	assert_non_null(strstr(err, path));
	/* A socket file nobody listens on any more. */
	close(h->lfd);
	h->lfd = -1;
	assert_null(dict_turn_fetch(h->base, h->path, 1000, on_answer, h,
	    err));
	assert_non_null(strstr(err, "refused"));
	assert_int_equal(h->calls, 0);
}

static void
test_cancel(void **state)
{
	struct helper *h = *state;
	struct dict_turn_req *r;
	char err[ERR_LEN];
	int cfd;

	r = dict_turn_fetch(h->base, h->path, 20, on_answer, h, err);
	assert_non_null(r);
	cfd = accept(h->lfd, NULL, NULL);
	assert_int_equal(write(cfd, "u:p\n", 4), 4);
	dict_turn_cancel(r);
	/* Nothing left to run: no callback, no timer. */
	assert_int_equal(event_base_dispatch(h->base), 1);
	assert_int_equal(h->calls, 0);
	close(cfd);
	dict_turn_cancel(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test_setup_teardown(test_fetch_credentials, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fetch_deadline, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fetch_bad_answers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fetch_no_helper, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
