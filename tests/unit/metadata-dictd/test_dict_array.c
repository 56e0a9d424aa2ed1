/* Unit tests of metadata-dictd/dict_array.c: the array grows only when
 * full, by doubling from the caller's first size, keeps what it held, and
 * aborts (a programming error) rather than wrap a size. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "dictd.h"

static void
test_grows_by_doubling_and_keeps_elements(void **state)
{
	static const size_t caps[] = { 4, 4, 4, 4, 8, 8, 8, 8, 16, 16 };
	uint32_t *v = NULL;
	size_t cap = 0;

	(void)state;
	for (size_t n = 0; n < sizeof(caps) / sizeof(*caps); n++) {
		v = dict_array_grow(v, n, &cap, sizeof(*v), 4);
		if (cap != caps[n])
			fail_msg("append %zu: room for %zu, want %zu", n, cap,
			    caps[n]);
		v[n] = (uint32_t)(n * 7919);
	}
	for (size_t n = 0; n < sizeof(caps) / sizeof(*caps); n++)
		assert_int_equal(v[n], n * 7919);
	free(v);
}

static void
test_room_left_changes_nothing(void **state)
{
	char *v = malloc(8), *same;
	size_t cap = 8;

	(void)state;
	same = dict_array_grow(v, 7, &cap, 1, 4);
	assert_ptr_equal(same, v);
	assert_int_equal(cap, 8);
	free(v);
}

/* The overflow check, in a child: abort() is the expected outcome. */
static void
test_overflow_aborts(void **state)
{
	size_t cap = SIZE_MAX / 16 + 1;
	pid_t pid;
	int status;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* A growth to 2 * cap elements of 8 bytes wraps size_t. */
		(void)dict_array_grow(NULL, cap, &cap, 8, 4);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grows_by_doubling_and_keeps_elements),
		cmocka_unit_test(test_room_left_changes_nothing),
		cmocka_unit_test(test_overflow_aborts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
