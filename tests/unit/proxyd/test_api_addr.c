/* Unit tests of proxyd/api/api_addr.c: addresses, clients per /64,
 * --trusted-proxy lists, the last X-Forwarded-For entry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "api_addr.h"

static struct api_addr
addr(const char *s)
{
	struct api_addr a;

	if (api_addr_parse(s, strlen(s), &a) < 0)
		fail_msg("cannot parse %s", s);
	return a;
}

static void
test_addr_parse_and_format(void **state)
{
	static const struct {
		const char	*in, *out;	/* out NULL: refused */
	} rows[] = {
		{ "127.0.0.1", "127.0.0.1" },
		{ "::1", "::1" },
		{ "::ffff:10.1.2.3", "10.1.2.3" },	/* mapped is IPv4 */
		{ "2001:db8::7", "2001:db8::7" },
		{ "", NULL },
		{ "127.0.0.1 ", NULL },
		{ "[::1]", NULL },
		{ "1.2.3.4:80", NULL },
		{ "localhost", NULL },
		{ "1.2.3", NULL },
	};
	char buf[API_ADDR_STRLEN];
	struct api_addr a;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int r = api_addr_parse(rows[i].in, strlen(rows[i].in), &a);

		if (rows[i].out == NULL) {
			if (r == 0)
				fail_msg("row %zu (%s): accepted", i,
				    rows[i].in);
			continue;
		}
		if (r < 0)
			fail_msg("row %zu (%s): refused", i, rows[i].in);
		api_addr_format(&a, buf);
		if (strcmp(buf, rows[i].out) != 0)
			fail_msg("row %zu (%s): formatted %s", i, rows[i].in,
			    buf);
	}
	/* A NUL inside the given length is not an address. */
	assert_int_equal(api_addr_parse("1.2.3.4\0x", 9, &a), -1);
}

static void
test_addr_from_sockaddr_and_client(void **state)
{
	struct sockaddr_in in4 = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	struct api_addr a, c, want;

	(void)state;
	inet_pton(AF_INET, "192.0.2.9", &in4.sin_addr);
	assert_int_equal(api_addr_from_sockaddr((struct sockaddr *)&in4,
	    sizeof(in4), &a), 0);
	want = addr("::ffff:192.0.2.9");
	assert_true(api_addr_equal(&a, &want));
	/* IPv4: the client is the address. */
	api_addr_client(&a, &c);
	assert_true(api_addr_equal(&c, &a));
	/* IPv6: its /64. */
	inet_pton(AF_INET6, "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
	    &in6.sin6_addr);
	assert_int_equal(api_addr_from_sockaddr((struct sockaddr *)&in6,
	    sizeof(in6), &a), 0);
	api_addr_client(&a, &c);
	want = addr("2001:db8:1:2::");
	assert_true(api_addr_equal(&c, &want));
	/* Too short, or another family. */
	assert_int_equal(api_addr_from_sockaddr((struct sockaddr *)&in6, 4,
	    &a), -1);
	in4.sin_family = AF_UNIX;
	assert_int_equal(api_addr_from_sockaddr((struct sockaddr *)&in4,
	    sizeof(in4), &a), -1);
}

static void
test_trust_parse_and_match(void **state)
{
	struct api_trust t;
	char err[ERR_LEN];
	struct api_addr a;

	(void)state;
	assert_int_equal(api_trust_parse("127.0.0.2, 10.0.0.0/8,"
	    "2001:db8::/32 ,::1", &t, err), 0);
	assert_int_equal(t.n, 4);
	a = addr("127.0.0.2");
	assert_true(api_trust_match(&t, &a));
	a = addr("127.0.0.3");
	assert_false(api_trust_match(&t, &a));
	a = addr("10.200.3.4");
	assert_true(api_trust_match(&t, &a));
	a = addr("::ffff:10.0.0.1");		/* v4 on a dual-stack socket */
	assert_true(api_trust_match(&t, &a));
	a = addr("11.0.0.1");
	assert_false(api_trust_match(&t, &a));
	a = addr("2001:db8:ffff::1");
	assert_true(api_trust_match(&t, &a));
	a = addr("2001:db9::1");
	assert_false(api_trust_match(&t, &a));
	a = addr("::1");
	assert_true(api_trust_match(&t, &a));
	/* An IPv4 rule does not match the IPv6 address with those bits. */
	assert_int_equal(api_trust_parse("0.0.0.0/0", &t, err), 0);
	a = addr("::1");
	assert_false(api_trust_match(&t, &a));
	a = addr("8.8.8.8");
	assert_true(api_trust_match(&t, &a));
}

static void
test_trust_parse_errors(void **state)
{
	static const struct {
		const char	*in, *err;
	} rows[] = {
		{ "", "empty entry" },
		{ "10.0.0.1,,10.0.0.2", "empty entry" },
		{ "10.0.0.1,", "empty entry" },
		{ "10.0.0.0/33", "prefix length must be 0 to 32" },
		{ "::/129", "prefix length must be 0 to 128" },
		{ "10.0.0.0/", "expected a prefix length" },
		{ "10.0.0.0/-1", "expected a prefix length" },
		{ "10.0.0.0/8x", "prefix length must be" },
		{ "proxy.example", "not a numeric IPv4 or IPv6 address" },
	};
	struct api_trust t;
	char err[ERR_LEN];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		err[0] = '\0';
		if (api_trust_parse(rows[i].in, &t, err) == 0)
			fail_msg("row %zu (%s): accepted", i, rows[i].in);
		if (strstr(err, rows[i].err) == NULL)
			fail_msg("row %zu (%s): err \"%s\"", i, rows[i].in,
			    err);
	}
}

static void
test_xff_last_entry(void **state)
{
	static const struct {
		const char	*in, *out;	/* out NULL: refused */
	} rows[] = {
		{ "192.0.2.1", "192.0.2.1" },
		{ "10.0.0.1, 192.0.2.1", "192.0.2.1" },
		{ "10.0.0.1,192.0.2.1", "192.0.2.1" },
		{ " 192.0.2.1\t", "192.0.2.1" },
		{ "2001:db8::1", "2001:db8::1" },
		{ "[2001:db8::1]", "2001:db8::1" },
		{ "[2001:db8::1]:4711", "2001:db8::1" },
		{ "192.0.2.1:4711", "192.0.2.1" },
		/* Only the last entry counts: the client wrote the others. */
		{ "garbage, 192.0.2.1", "192.0.2.1" },
		{ "192.0.2.1, garbage", NULL },
		{ "192.0.2.1,", NULL },
		{ "", NULL },
		{ "unknown", NULL },
		{ "[192.0.2.1]", NULL },
		{ "[2001:db8::1]x", NULL },
		{ "[2001:db8::1]:", NULL },
		{ "192.0.2.1:", NULL },
		{ "192.0.2.1:80x", NULL },
		{ "2001:db8::1:80:", NULL },
	};
	char buf[API_ADDR_STRLEN];
	struct api_addr a;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int r = api_xff_last(rows[i].in, strlen(rows[i].in), &a);

		if (rows[i].out == NULL) {
			if (r == 0)
				fail_msg("row %zu (%s): accepted", i,
				    rows[i].in);
			continue;
		}
		if (r < 0)
			fail_msg("row %zu (%s): refused", i, rows[i].in);
		api_addr_format(&a, buf);
		if (strcmp(buf, rows[i].out) != 0)
			fail_msg("row %zu (%s): got %s", i, rows[i].in, buf);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_parse_and_format),
		cmocka_unit_test(test_addr_from_sockaddr_and_client),
		cmocka_unit_test(test_trust_parse_and_match),
		cmocka_unit_test(test_trust_parse_errors),
		cmocka_unit_test(test_xff_last_entry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
