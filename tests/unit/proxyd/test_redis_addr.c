/* Unit tests of proxyd/redis/redis_addr.c: --redis URLs and
 * --redis-sentinel lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "redis_addr.h"

static void
test_url_forms(void **state)
{
	struct redis_addr a;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(redis_addr_parse("redis://127.0.0.1:6379", &a, err),
	    0);
	assert_string_equal(a.ep.host, "127.0.0.1");
	assert_int_equal(a.ep.port, 6379);
	assert_int_equal(a.db, 0);
	assert_string_equal(a.password, "");

	assert_int_equal(redis_addr_parse("redis://proxy:s3cr@t@[::1]:6380/4",
	    &a, err), 0);
	assert_string_equal(a.user, "proxy");
	assert_string_equal(a.password, "s3cr@t");	/* the last @ */
	assert_string_equal(a.ep.host, "::1");
	assert_int_equal(a.ep.port, 6380);
	assert_int_equal(a.db, 4);

	assert_int_equal(redis_addr_parse("redis://:pw@redis.internal:1/", &a,
	    err), 0);
	assert_string_equal(a.user, "");
	assert_string_equal(a.password, "pw");
	assert_string_equal(a.ep.host, "redis.internal");

	assert_int_equal(redis_addr_parse("unix:/run/redis/redis.sock?db=2",
	    &a, err), 0);
	assert_string_equal(a.ep.path, "/run/redis/redis.sock");
	assert_string_equal(a.ep.host, "");
	assert_int_equal(a.db, 2);
	assert_int_equal(redis_addr_parse("unix:///run/r.sock", &a, err), 0);
	assert_string_equal(a.ep.path, "/run/r.sock");
	redis_addr_clear(&a);
}

static void
test_url_refused_with_a_reason(void **state)
{
	static const char *const bad[] = {
		"", "127.0.0.1:6379", "rediss://h:1", "redis://h", "redis://h:0",
		"redis://h:65536", "redis://h:1/x", "redis://h:1/70000",
		"redis://h h:1", "redis://:1", "unix:", "unix:relative",
		"unix:/a?db=", "unix:/a?x=1", "redis://[::1:6379",
	};
	struct redis_addr a;
	char err[ERR_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		err[0] = '\0';
		assert_int_equal(redis_addr_parse(bad[i], &a, err), -1);
		assert_true(err[0] != '\0');
	}
	/* The refusal never quotes a password. */
	assert_int_equal(redis_addr_parse("redis://u:hunter2@h:x", &a, err),
	    -1);
	assert_null(strstr(err, "hunter2"));
}

static void
test_sentinel_lists(void **state)
{
	struct redis_endpoint eps[REDIS_ADDR_SENTINELS];
	char err[ERR_LEN], many[400];
	size_t n = 0;

	(void)state;
	assert_int_equal(redis_sentinels_parse("10.0.0.1:26379", eps,
	    REDIS_ADDR_SENTINELS, err), 1);
	assert_int_equal(redis_sentinels_parse(
	    "10.0.0.1:26379,[fd00::2]:26380,s3:26381", eps,
	    REDIS_ADDR_SENTINELS, err), 3);
	assert_string_equal(eps[1].host, "fd00::2");
	assert_int_equal(eps[1].port, 26380);
	assert_string_equal(eps[2].host, "s3");
	assert_int_equal(redis_sentinels_parse("a:1,,b:2", eps,
	    REDIS_ADDR_SENTINELS, err), -1);
	assert_int_equal(redis_sentinels_parse("a:1,", eps,
	    REDIS_ADDR_SENTINELS, err), -1);
	for (int i = 0; i <= REDIS_ADDR_SENTINELS; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "%sh%d:1",
		    i > 0 ? "," : "", i);
	assert_int_equal(redis_sentinels_parse(many, eps,
	    REDIS_ADDR_SENTINELS, err), -1);
	assert_non_null(strstr(err, "more than"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_forms),
		cmocka_unit_test(test_url_refused_with_a_reason),
		cmocka_unit_test(test_sentinel_lists),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
