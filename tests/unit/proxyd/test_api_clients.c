/* Unit tests of proxyd/api/api_clients.c: entries per client, freed when
 * both counts are back at zero, many clients at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api_clients.h"

static struct api_addr
v4(unsigned int n)
{
	char s[32];
	struct api_addr a;

	snprintf(s, sizeof(s), "10.%u.%u.%u", (n >> 16) & 0xff,
	    (n >> 8) & 0xff, n & 0xff);
	assert_int_equal(api_addr_parse(s, strlen(s), &a), 0);
	return a;
}

static void
test_clients_get_find_put(void **state)
{
	struct api_clients *t = api_clients_new(16);
	struct api_client *c, *d;
	struct api_addr a = v4(1), b = v4(2);

	(void)state;
	assert_null(api_clients_find(t, &a));
	c = api_clients_get(t, &a);
	assert_non_null(c);
	assert_true(api_addr_equal(&c->addr, &a));
	assert_int_equal(c->conns + c->requests, 0);
	c->conns++;
	assert_ptr_equal(api_clients_get(t, &a), c);
	assert_ptr_equal(api_clients_find(t, &a), c);
	d = api_clients_get(t, &b);
	assert_ptr_not_equal(c, d);
	d->requests++;
	assert_int_equal(api_clients_count(t), 2);
	/* Kept while a count is above zero. */
	c->requests++;
	c->conns--;
	api_clients_put(t, c);
	assert_ptr_equal(api_clients_find(t, &a), c);
	c->requests--;
	api_clients_put(t, c);
	assert_null(api_clients_find(t, &a));
	assert_int_equal(api_clients_count(t), 1);
	/* An entry got and never counted goes at its put. */
	c = api_clients_get(t, &a);
	api_clients_put(t, c);
	assert_int_equal(api_clients_count(t), 1);
	api_clients_free(t);
}

static void
test_clients_many(void **state)
{
	struct api_clients *t = api_clients_new(64);	/* far fewer buckets */
	struct api_client *c;
	struct api_addr a;
	unsigned int i;

	(void)state;
	for (i = 0; i < 5000; i++) {
		a = v4(i);
		api_clients_get(t, &a)->conns = i + 1;
	}
	assert_int_equal(api_clients_count(t), 5000);
	for (i = 0; i < 5000; i++) {
		a = v4(i);
		c = api_clients_find(t, &a);
		if (c == NULL || c->conns != i + 1)
			fail_msg("client %u lost", i);
		if (i % 2 == 0) {
			c->conns = 0;
			api_clients_put(t, c);
		}
	}
	assert_int_equal(api_clients_count(t), 2500);
	for (i = 0; i < 5000; i++) {
		a = v4(i);
		if ((api_clients_find(t, &a) != NULL) != (i % 2 == 1))
			fail_msg("client %u: wrong presence", i);
	}
	api_clients_free(t);		/* frees what is left */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clients_get_find_put),
		cmocka_unit_test(test_clients_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
