/* Unit tests of common/accept_pause.c: one log line at an episode's
 * start and one at its end, pauses in between belonging to it, the
 * back-off's steps, and which accept() errors are the peer's. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "accept_pause.h"

static void
test_episode_logged_once(void **state)
{
	struct accept_pause p = { 0 };
	int64_t t = 1000;

	(void)state;
	assert_true(accept_pause_begin(&p, t));		/* starts: log */
	/* Connections close one by one, the next accept fails again: the
	 * same episode, nothing to log. */
	assert_int_equal(accept_pause_accepted(&p, t + 100), 0);
	assert_false(accept_pause_begin(&p, t + 200));
	assert_false(accept_pause_begin(&p, t + 2100));
	assert_int_equal(accept_pause_accepted(&p, t + 2100 +
	    ACCEPT_PAUSE_EPISODE_GAP_MS - 1), 0);
	/* The first accept a gap after the last pause ends it, once. */
	assert_int_equal(accept_pause_accepted(&p, t + 2100 +
	    ACCEPT_PAUSE_EPISODE_GAP_MS), 3);
	assert_int_equal(accept_pause_accepted(&p, t + 9000), 0);
	/* The next pause starts another. */
	assert_true(accept_pause_begin(&p, t + 9100));
}

static void
test_delay_doubles_to_cap(void **state)
{
	static const int64_t want[] = { 100, 200, 400, 800, 1600, 2000, 2000 };
	struct accept_pause p = { 0 };
	size_t i;

	(void)state;
	assert_int_equal(accept_pause_delay_ms(&p), ACCEPT_PAUSE_FIRST_MS);
	for (i = 0; i < sizeof(want) / sizeof(*want); i++) {
		accept_pause_begin(&p, (int64_t)i);
		if (accept_pause_delay_ms(&p) != want[i])
			fail_msg("pause %zu: %lld ms, want %lld", i + 1,
			    (long long)accept_pause_delay_ms(&p),
			    (long long)want[i]);
	}
	p.pauses = 4000000000u;		/* no overflow however long */
	assert_int_equal(accept_pause_delay_ms(&p), ACCEPT_PAUSE_MAX_MS);
}

static void
test_peer_errors(void **state)
{
	(void)state;
	assert_true(accept_pause_peer_error(ECONNABORTED));
	assert_true(accept_pause_peer_error(EINTR));
	assert_true(accept_pause_peer_error(EPROTO));
	assert_false(accept_pause_peer_error(EMFILE));
	assert_false(accept_pause_peer_error(ENFILE));
	assert_false(accept_pause_peer_error(ENOBUFS));
	assert_false(accept_pause_peer_error(ENOMEM));
	assert_false(accept_pause_peer_error(EAGAIN));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_episode_logged_once),
		cmocka_unit_test(test_delay_doubles_to_cap),
		cmocka_unit_test(test_peer_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
