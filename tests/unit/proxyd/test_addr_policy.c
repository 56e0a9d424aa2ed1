/* Unit tests of proxyd/providers/webpush/addr_policy.c. Every range's first and last
 * address and its neighbours outside; each IPv4 row again in the IPv6
 * forms that embed it (mapped, compatible, NAT64, 6to4); sockaddrs as
 * getaddrinfo makes them, short or of other families. Addresses are
 * only constructed and classified: nothing here opens a socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cmocka.h>

#include "addr_policy.h"

struct row {
	const char	*ip;
	enum addr_class	 want;
};

static const struct row v4_rows[] = {
	{ "0.0.0.0", ADDR_UNSPECIFIED },
	{ "0.255.255.255", ADDR_UNSPECIFIED },
	{ "1.0.0.0", ADDR_PUBLIC },
	{ "1.1.1.1", ADDR_PUBLIC },
	{ "8.8.8.8", ADDR_PUBLIC },
	{ "9.255.255.255", ADDR_PUBLIC },
	{ "10.0.0.0", ADDR_PRIVATE },
	{ "10.255.255.255", ADDR_PRIVATE },
	{ "11.0.0.0", ADDR_PUBLIC },
	{ "100.63.255.255", ADDR_PUBLIC },
	{ "100.64.0.0", ADDR_SHARED },
	{ "100.127.255.255", ADDR_SHARED },
	{ "100.128.0.0", ADDR_PUBLIC },
	{ "126.255.255.255", ADDR_PUBLIC },
	{ "127.0.0.0", ADDR_LOOPBACK },
	{ "127.0.0.1", ADDR_LOOPBACK },
	{ "127.0.0.2", ADDR_LOOPBACK },
	{ "127.255.255.255", ADDR_LOOPBACK },
	{ "128.0.0.0", ADDR_PUBLIC },
	{ "169.253.255.255", ADDR_PUBLIC },
	{ "169.254.0.0", ADDR_LINK_LOCAL },
	{ "169.254.169.254", ADDR_LINK_LOCAL },	/* cloud metadata */
	{ "169.254.255.255", ADDR_LINK_LOCAL },
	{ "169.255.0.0", ADDR_PUBLIC },
	{ "172.15.255.255", ADDR_PUBLIC },
	{ "172.16.0.0", ADDR_PRIVATE },
	{ "172.31.255.255", ADDR_PRIVATE },
	{ "172.32.0.0", ADDR_PUBLIC },
	{ "191.255.255.255", ADDR_PUBLIC },
	{ "192.0.0.0", ADDR_RESERVED },
	{ "192.0.0.8", ADDR_RESERVED },
	{ "192.0.0.170", ADDR_RESERVED },
	{ "192.0.0.255", ADDR_RESERVED },
	{ "192.0.1.0", ADDR_PUBLIC },
	{ "192.0.2.0", ADDR_DOCUMENTATION },
	{ "192.0.2.255", ADDR_DOCUMENTATION },
	{ "192.0.3.0", ADDR_PUBLIC },
	{ "192.88.98.255", ADDR_PUBLIC },
	{ "192.88.99.1", ADDR_RESERVED },
	{ "192.88.100.0", ADDR_PUBLIC },
	{ "192.167.255.255", ADDR_PUBLIC },
	{ "192.168.0.0", ADDR_PRIVATE },
	{ "192.168.1.1", ADDR_PRIVATE },
	{ "192.168.255.255", ADDR_PRIVATE },
	{ "192.169.0.0", ADDR_PUBLIC },
	{ "198.17.255.255", ADDR_PUBLIC },
	{ "198.18.0.0", ADDR_BENCHMARKING },
	{ "198.19.255.255", ADDR_BENCHMARKING },
	{ "198.20.0.0", ADDR_PUBLIC },
	{ "198.51.99.255", ADDR_PUBLIC },
	{ "198.51.100.0", ADDR_DOCUMENTATION },
	{ "198.51.100.255", ADDR_DOCUMENTATION },
	{ "198.51.101.0", ADDR_PUBLIC },
	{ "203.0.112.255", ADDR_PUBLIC },
	{ "203.0.113.0", ADDR_DOCUMENTATION },
	{ "203.0.113.255", ADDR_DOCUMENTATION },
	{ "203.0.114.0", ADDR_PUBLIC },
	{ "223.255.255.255", ADDR_PUBLIC },
	{ "224.0.0.0", ADDR_MULTICAST },
	{ "224.0.0.251", ADDR_MULTICAST },
	{ "239.255.255.255", ADDR_MULTICAST },
	{ "240.0.0.0", ADDR_RESERVED },
	{ "255.255.255.254", ADDR_RESERVED },
	{ "255.255.255.255", ADDR_BROADCAST },
};

static const struct row v6_rows[] = {
	{ "::", ADDR_UNSPECIFIED },
	{ "::1", ADDR_LOOPBACK },
	{ "::2", ADDR_UNSPECIFIED },		/* compatible 0.0.0.2 */
	{ "::ffff:0:0", ADDR_UNSPECIFIED },	/* mapped 0.0.0.0 */
	{ "::ffff:0:0:1", ADDR_RESERVED },	/* SIIT, not mapped */
	{ "::1:0:0:1", ADDR_RESERVED },
	{ "64:ff9b::", ADDR_UNSPECIFIED },	/* NAT64 of 0.0.0.0 */
	{ "64:ff9b::1:0:0:1", ADDR_RESERVED },	/* outside the /96 */
	{ "64:ff9b:1::", ADDR_RESERVED },
	{ "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED },
	{ "64:ff9b:2::", ADDR_RESERVED },	/* not 2000::/3 */
	{ "100::", ADDR_DISCARD },
	{ "100::ffff:ffff:ffff:ffff", ADDR_DISCARD },
	{ "100:0:0:1::", ADDR_RESERVED },
	{ "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED },
	{ "2000::", ADDR_PUBLIC },
	{ "2001::", ADDR_TEREDO },
	{ "2001:0:4136:e378:8000:63bf:3fff:fdd2", ADDR_TEREDO },
	{ "2001:0:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_TEREDO },
	{ "2001:1::1", ADDR_RESERVED },
	{ "2001:2::", ADDR_BENCHMARKING },
	{ "2001:2:0:ffff:ffff:ffff:ffff:ffff", ADDR_BENCHMARKING },
	{ "2001:2:1::", ADDR_RESERVED },
	{ "2001:3::1", ADDR_RESERVED },		/* AMT */
	{ "2001:20::1", ADDR_RESERVED },	/* ORCHIDv2 */
	{ "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED },
	{ "2001:200::", ADDR_PUBLIC },		/* after 2001::/23 */
	{ "2001:4860:4860::8888", ADDR_PUBLIC },
	{ "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_PUBLIC },
	{ "2001:db8::", ADDR_DOCUMENTATION },
	{ "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_DOCUMENTATION },
	{ "2001:db9::", ADDR_PUBLIC },
	{ "2002:808:808::1", ADDR_PUBLIC },	/* 6to4 of 8.8.8.8 */
	{ "2002:7f00:1::1", ADDR_LOOPBACK },	/* 6to4 of 127.0.0.1 */
	{ "2002:a00:1::", ADDR_PRIVATE },	/* 6to4 of 10.0.0.1 */
	{ "2003::", ADDR_PUBLIC },
	{ "2a00:1450:4001:80b::200e", ADDR_PUBLIC },
	{ "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_PUBLIC },
	{ "3fff::", ADDR_DOCUMENTATION },
	{ "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_DOCUMENTATION },
	{ "3fff:1000::", ADDR_PUBLIC },
	{ "4000::", ADDR_RESERVED },
	{ "5f00::1", ADDR_RESERVED },		/* SRv6 SIDs */
	{ "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_RESERVED },
	{ "fc00::", ADDR_ULA },
	{ "fd12:3456:789a::1", ADDR_ULA },
	{ "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_ULA },
	{ "fe00::", ADDR_RESERVED },
	{ "fe80::", ADDR_LINK_LOCAL },
	{ "fe80::1", ADDR_LINK_LOCAL },
	{ "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_LINK_LOCAL },
	{ "fec0::", ADDR_SITE_LOCAL },
	{ "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_SITE_LOCAL },
	{ "ff00::", ADDR_MULTICAST },
	{ "ff02::1", ADDR_MULTICAST },
	{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ADDR_MULTICAST },
};

static void
check_rows(const struct row *rows, size_t n)
{
	enum addr_class got;

	for (size_t i = 0; i < n; i++) {
		got = addr_policy_classify_text(rows[i].ip);
		if (got != rows[i].want)
			fail_msg("row %zu %s: %s, want %s", i, rows[i].ip,
			    addr_policy_class_name(got),
			    addr_policy_class_name(rows[i].want));
		if (addr_policy_is_public(got) != (rows[i].want == ADDR_PUBLIC))
			fail_msg("row %zu %s: is_public wrong", i, rows[i].ip);
	}
}

static void
test_v4_ranges(void **state)
{
	(void)state;
	check_rows(v4_rows, sizeof(v4_rows) / sizeof(*v4_rows));
}

static void
test_v6_ranges(void **state)
{
	(void)state;
	check_rows(v6_rows, sizeof(v6_rows) / sizeof(*v6_rows));
}

/* Each IPv4 row, embedded in IPv6 the four ways a peer address can carry
 * it, gets the IPv4 class; a public address behind the deprecated
 * IPv4-compatible form is still refused (nothing routes it). */
static void
test_embedded_v4(void **state)
{
	uint8_t v4[4], v6[16];
	enum addr_class got, want;

	(void)state;
	for (size_t i = 0; i < sizeof(v4_rows) / sizeof(*v4_rows); i++) {
		assert_int_equal(inet_pton(AF_INET, v4_rows[i].ip, v4), 1);
		for (int form = 0; form < 4; form++) {
			memset(v6, 0, sizeof(v6));
			want = v4_rows[i].want;
			switch (form) {
			case 0:			/* ::ffff:a.b.c.d */
				v6[10] = v6[11] = 0xff;
				memcpy(v6 + 12, v4, 4);
				break;
			case 1:			/* ::a.b.c.d */
				memcpy(v6 + 12, v4, 4);
				if (want == ADDR_PUBLIC)
					want = ADDR_RESERVED;
				/* ::0.0.0.0 and ::0.0.0.1 are :: and ::1 */
				if (memcmp(v4, "\0\0\0\0", 4) == 0)
					want = ADDR_UNSPECIFIED;
				break;
			case 2:			/* 64:ff9b::a.b.c.d */
				v6[1] = 0x64;
				v6[2] = 0xff;
				v6[3] = 0x9b;
				memcpy(v6 + 12, v4, 4);
				break;
			case 3:			/* 2002:a.b.c.d::1 */
				v6[0] = 0x20;
				v6[1] = 0x02;
				memcpy(v6 + 2, v4, 4);
				v6[15] = 1;
				break;
			}
			got = addr_policy_classify_v6(v6);
			if (got != want)
				fail_msg("row %zu %s form %d: %s, want %s", i,
				    v4_rows[i].ip, form,
				    addr_policy_class_name(got),
				    addr_policy_class_name(want));
		}
	}
	/* The text forms the resolver or libcurl may show. */
	assert_int_equal(addr_policy_classify_text("::ffff:127.0.0.1"),
	    ADDR_LOOPBACK);
	assert_int_equal(addr_policy_classify_text("::ffff:7f00:1"),
	    ADDR_LOOPBACK);
	assert_int_equal(addr_policy_classify_text("::ffff:169.254.169.254"),
	    ADDR_LINK_LOCAL);
	assert_int_equal(addr_policy_classify_text("::ffff:8.8.8.8"),
	    ADDR_PUBLIC);
	assert_int_equal(addr_policy_classify_text("::127.0.0.1"),
	    ADDR_LOOPBACK);
	assert_int_equal(addr_policy_classify_text("64:ff9b::10.1.2.3"),
	    ADDR_PRIVATE);
	assert_int_equal(addr_policy_classify_text("64:ff9b::8.8.8.8"),
	    ADDR_PUBLIC);
}

static void
test_text_forms(void **state)
{
	static const char *const invalid[] = {
		"", "localhost", "127.1", "0x7f.0.0.1", "2130706433",
		"127.0.0.1.", " 127.0.0.1", "127.0.0.1 ", "256.0.0.1",
		"fe80::1%eth0", "[::1]", "::1/128", "1.2.3.4:80", ":::",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(invalid) / sizeof(*invalid); i++)
		if (addr_policy_classify_text(invalid[i]) != ADDR_INVALID)
			fail_msg("row %zu \"%s\" classified", i, invalid[i]);
	assert_int_equal(addr_policy_classify_text(NULL), ADDR_INVALID);
	/* inet_pton takes leading zeros in IPv6 groups, case-insensitive. */
	assert_int_equal(addr_policy_classify_text("0:0:0:0:0:0:0:0001"),
	    ADDR_LOOPBACK);
	assert_int_equal(addr_policy_classify_text("FE80::ABCD"),
	    ADDR_LINK_LOCAL);
}

static void
test_sockaddrs(void **state)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;
	struct sockaddr_storage ss;

	(void)state;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(443);
	assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr), 1);
	assert_int_equal(addr_policy_classify((struct sockaddr *)&sin,
	    sizeof(sin)), ADDR_LOOPBACK);
	assert_int_equal(inet_pton(AF_INET, "93.184.216.34", &sin.sin_addr),
	    1);
	assert_int_equal(addr_policy_classify((struct sockaddr *)&sin,
	    sizeof(sin)), ADDR_PUBLIC);
	assert_int_equal(addr_policy_classify((struct sockaddr *)&sin,
	    sizeof(sin) - 1), ADDR_INVALID);

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(443);
	assert_int_equal(inet_pton(AF_INET6, "::1", &sin6.sin6_addr), 1);
	assert_int_equal(addr_policy_classify((struct sockaddr *)&sin6,
	    sizeof(sin6)), ADDR_LOOPBACK);
	assert_int_equal(inet_pton(AF_INET6, "::ffff:10.0.0.1",
	    &sin6.sin6_addr), 1);
	assert_int_equal(addr_policy_classify((struct sockaddr *)&sin6,
	    sizeof(sin6)), ADDR_PRIVATE);
	/* A scope id does not make a link-local address public. */
	assert_int_equal(inet_pton(AF_INET6, "fe80::1", &sin6.sin6_addr), 1);
	sin6.sin6_scope_id = 2;
	assert_int_equal(addr_policy_classify((struct sockaddr *)&sin6,
	    sizeof(sin6)), ADDR_LINK_LOCAL);
	assert_int_equal(inet_pton(AF_INET6, "2606:4700::1111",
	    &sin6.sin6_addr), 1);
	assert_int_equal(addr_policy_classify((struct sockaddr *)&sin6,
	    sizeof(sin6)), ADDR_PUBLIC);
	/* An AF_INET6 length too short for sockaddr_in6. */
	assert_int_equal(addr_policy_classify((struct sockaddr *)&sin6,
	    sizeof(struct sockaddr_in)), ADDR_INVALID);

	/* In a sockaddr_storage, as getaddrinfo's callers keep them. */
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, &sin, sizeof(sin));
	assert_int_equal(inet_pton(AF_INET, "192.168.0.10",
	    &((struct sockaddr_in *)&ss)->sin_addr), 1);
	assert_int_equal(addr_policy_classify((struct sockaddr *)&ss,
	    sizeof(ss)), ADDR_PRIVATE);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_int_equal(addr_policy_classify((struct sockaddr *)&sun,
	    sizeof(sun)), ADDR_INVALID);
	ss.ss_family = AF_UNSPEC;
	assert_int_equal(addr_policy_classify((struct sockaddr *)&ss,
	    sizeof(ss)), ADDR_INVALID);
	assert_int_equal(addr_policy_classify(NULL, 0), ADDR_INVALID);
	assert_int_equal(addr_policy_classify((struct sockaddr *)&sin, 1),
	    ADDR_INVALID);
}

static void
test_names(void **state)
{
	(void)state;
	for (int c = ADDR_PUBLIC; c <= ADDR_RESERVED; c++) {
		assert_string_not_equal(addr_policy_class_name(c), "unknown");
		assert_int_equal(addr_policy_is_public(c), c == ADDR_PUBLIC);
	}
	assert_string_equal(addr_policy_class_name(ADDR_LOOPBACK), "loopback");
	assert_string_equal(addr_policy_class_name((enum addr_class)99),
	    "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v4_ranges),
		cmocka_unit_test(test_v6_ranges),
		cmocka_unit_test(test_embedded_v4),
		cmocka_unit_test(test_text_forms),
		cmocka_unit_test(test_sockaddrs),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
