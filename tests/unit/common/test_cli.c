/* Unit tests of common/cli.c: durations, sizes, bounded numbers,
 * HOST:PORT and file modes, accepted and rejected, with the error text
 * naming the bad value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"

#define NELEM(a)	(sizeof(a) / sizeof(*(a)))

/* A rejected value leaves *out alone and says what was wrong with it. */
static void
check_rejected(const char *row, const char *input, const char *err)
{
	if (err[0] == '\0')
		fail_msg("row %s: rejected without an error message", row);
	if (input[0] != '\0' && strstr(err, input) == NULL)
		fail_msg("row %s: error \"%s\" does not name the input", row,
		    err);
}

struct duration_case {
	const char	*name;
	const char	*in;
	int		 ok;
	int64_t		 ms;
};

static const struct duration_case duration_cases[] = {
	{ "ms", "250ms", 1, 250 },
	{ "s", "10s", 1, 10000 },
	{ "m", "20m", 1, 20 * 60000 },
	{ "h", "5h", 1, 5 * 3600000LL },
	{ "d", "90d", 1, 90 * 86400000LL },
	{ "w", "1w", 1, 7 * 86400000LL },
	{ "h+m", "1h30m", 1, 5400000 },
	{ "d+h+m+s+ms", "1d2h3m4s5ms", 1,
	    86400000LL + 2 * 3600000LL + 3 * 60000 + 4000 + 5 },
	{ "bare-seconds", "10", 1, 10000 },
	{ "zero", "0", 1, 0 },
	{ "zero-ms", "0ms", 1, 0 },
	{ "leading-zeros", "007s", 1, 7000 },
	{ "int64-max-ms", "9223372036854775807ms", 1, INT64_MAX },
	{ "largest-days", "106751991167d", 1, 106751991167LL * 86400000 },
	{ "empty", "", 0, 0 },
	{ "unknown-unit", "10x", 0, 0 },
	{ "negative", "-5s", 0, 0 },
	{ "plus-sign", "+5s", 0, 0 },
	{ "unit-only", "s", 0, 0 },
	{ "fraction", "1.5h", 0, 0 },
	{ "overflow-strtoull", "99999999999999999999d", 0, 0 },
	{ "overflow-days", "106751991168d", 0, 0 },
	{ "overflow-int64-ms", "9223372036854775808ms", 0, 0 },
	{ "overflow-sum", "9223372036854775807ms1ms", 0, 0 },
	{ "leading-space", " 10s", 0, 0 },
	{ "trailing-space", "10s ", 0, 0 },
	{ "inner-space", "10 s", 0, 0 },
	{ "double-unit", "1hh", 0, 0 },
	{ "unit-prefix", "1sec", 0, 0 },
	{ "trailing-garbage", "10s-", 0, 0 },
	{ "bare-after-unit", "1h30", 0, 0 },	/* 30 what? */
};

static void
test_duration_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(duration_cases); i++) {
		const struct duration_case *c = &duration_cases[i];
		char err[ERR_LEN] = "";
		int64_t ms = -42;
		int rc = cli_parse_duration_ms(c->in, &ms, err);

		if (c->ok) {
			if (rc != 0)
				fail_msg("row %s: \"%s\" rejected: %s", c->name,
				    c->in, err);
			if (ms != c->ms)
				fail_msg("row %s: \"%s\" -> %lld ms, expected "
				    "%lld", c->name, c->in, (long long)ms,
				    (long long)c->ms);
		} else {
			if (rc != -1)
				fail_msg("row %s: \"%s\" accepted as %lld ms",
				    c->name, c->in, (long long)ms);
			if (ms != -42)
				fail_msg("row %s: output written on error",
				    c->name);
			check_rejected(c->name, c->in, err);
		}
	}
}

struct size_case {
	const char	*name;
	const char	*in;
	int		 ok;
	uint64_t	 bytes;
};

static const struct size_case size_cases[] = {
	{ "bare", "512", 1, 512 },
	{ "zero", "0", 1, 0 },
	{ "b", "1b", 1, 1 },
	{ "k", "8k", 1, 8192 },
	{ "K", "8K", 1, 8192 },
	{ "KiB", "8KiB", 1, 8192 },
	{ "kb-is-binary", "8kb", 1, 8192 },
	{ "M", "16M", 1, 16ULL << 20 },
	{ "MiB", "16MiB", 1, 16ULL << 20 },
	{ "G", "1G", 1, 1ULL << 30 },
	{ "GiB", "3GiB", 1, 3ULL << 30 },
	{ "uint64-max", "18446744073709551615", 1, UINT64_MAX },
	{ "largest-G", "17179869183G", 1, 17179869183ULL << 30 },
	{ "empty", "", 0, 0 },
	{ "unit-only", "k", 0, 0 },
	{ "unknown-unit", "8q", 0, 0 },
	{ "negative", "-1", 0, 0 },
	{ "plus-sign", "+8", 0, 0 },
	{ "fraction", "1.5k", 0, 0 },
	{ "space", "8 k", 0, 0 },
	{ "double-unit", "8kk", 0, 0 },
	{ "terabytes", "1T", 0, 0 },
	{ "overflow-strtoull", "18446744073709551616", 0, 0 },
	{ "overflow-shift", "17179869184G", 0, 0 },
};

static void
test_size_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(size_cases); i++) {
		const struct size_case *c = &size_cases[i];
		char err[ERR_LEN] = "";
		uint64_t bytes = 42;
		int rc = cli_parse_size(c->in, &bytes, err);

		if (c->ok) {
			if (rc != 0)
				fail_msg("row %s: \"%s\" rejected: %s", c->name,
				    c->in, err);
			if (bytes != c->bytes)
				fail_msg("row %s: \"%s\" -> %llu, expected "
				    "%llu", c->name, c->in,
				    (unsigned long long)bytes,
				    (unsigned long long)c->bytes);
		} else {
			if (rc != -1)
				fail_msg("row %s: \"%s\" accepted as %llu",
				    c->name, c->in, (unsigned long long)bytes);
			if (bytes != 42)
				fail_msg("row %s: output written on error",
				    c->name);
			check_rejected(c->name, c->in, err);
		}
	}
}

struct uint_case {
	const char	*name;
	const char	*in;
	uint64_t	 min, max;
	int		 ok;
	uint64_t	 v;
};

static const struct uint_case uint_cases[] = {
	{ "min", "0", 0, 10, 1, 0 },
	{ "max", "10", 0, 10, 1, 10 },
	{ "inside", "5", 1, 10, 1, 5 },
	{ "single", "1", 1, 1, 1, 1 },
	{ "decimal-not-octal", "010", 0, 100, 1, 10 },
	{ "uint64-max", "18446744073709551615", 0, UINT64_MAX, 1, UINT64_MAX },
	{ "above-max", "11", 0, 10, 0, 0 },
	{ "below-min", "0", 1, 10, 0, 0 },
	{ "far-above", "4294967296", 0, 65535, 0, 0 },
	{ "overflow", "18446744073709551616", 0, UINT64_MAX, 0, 0 },
	{ "empty", "", 0, 10, 0, 0 },
	{ "negative", "-1", 0, 10, 0, 0 },
	{ "plus-sign", "+1", 0, 10, 0, 0 },
	{ "leading-space", " 1", 0, 10, 0, 0 },
	{ "trailing-space", "1 ", 0, 10, 0, 0 },
	{ "hex", "0x10", 0, 100, 0, 0 },
	{ "suffix", "5k", 0, 10000, 0, 0 },
};

static void
test_uint_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(uint_cases); i++) {
		const struct uint_case *c = &uint_cases[i];
		char err[ERR_LEN] = "";
		uint64_t v = 42;
		int rc = cli_parse_uint(c->in, c->min, c->max, &v, err);

		if (c->ok) {
			if (rc != 0)
				fail_msg("row %s: \"%s\" rejected: %s", c->name,
				    c->in, err);
			if (v != c->v)
				fail_msg("row %s: \"%s\" -> %llu, expected "
				    "%llu", c->name, c->in,
				    (unsigned long long)v,
				    (unsigned long long)c->v);
		} else {
			if (rc != -1)
				fail_msg("row %s: \"%s\" accepted as %llu",
				    c->name, c->in, (unsigned long long)v);
			if (v != 42)
				fail_msg("row %s: output written on error",
				    c->name);
			check_rejected(c->name, c->in, err);
		}
	}
}

static void
test_uint_error_names_range(void **state)
{
	char err[ERR_LEN] = "";
	uint64_t v;

	(void)state;
	assert_int_equal(cli_parse_uint("70000", 1, 65535, &v, err), -1);
	assert_non_null(strstr(err, "\"70000\""));
	assert_non_null(strstr(err, "1..65535"));
	/* err may be NULL (err.h). */
	assert_int_equal(cli_parse_uint("x", 0, 1, &v, NULL), -1);
}

struct hostport_case {
	const char	*name;
	const char	*in;
	int		 ok;
	const char	*host;
	uint16_t	 port;
};

static const struct hostport_case hostport_cases[] = {
	{ "v4", "127.0.0.1:9100", 1, "127.0.0.1", 9100 },
	{ "v6", "[::1]:80", 1, "::1", 80 },
	{ "v6-long", "[2001:db8::17]:8443", 1, "2001:db8::17", 8443 },
	{ "port-only", ":9000", 1, "127.0.0.1", 9000 },
	{ "name", "localhost:1", 1, "localhost", 1 },
	{ "max-port", "h:65535", 1, "h", 65535 },
	{ "no-colon", "nohost", 0, NULL, 0 },
	{ "bare-v6", "::1:80", 0, NULL, 0 },
	{ "v6-no-port", "[::1]", 0, NULL, 0 },
	{ "port-zero", "h:0", 0, NULL, 0 },
	{ "port-too-big", "h:65536", 0, NULL, 0 },
	{ "port-not-number", "h:x", 0, NULL, 0 },
	{ "port-empty", "h:", 0, NULL, 0 },
	{ "port-negative", "h:-1", 0, NULL, 0 },
	{ "port-trailing-space", "h:80 ", 0, NULL, 0 },
	{ "colon-only", ":", 0, NULL, 0 },
	{ "empty", "", 0, NULL, 0 },
};

static void
test_hostport_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(hostport_cases); i++) {
		const struct hostport_case *c = &hostport_cases[i];
		char err[ERR_LEN] = "";
		char *host = NULL;
		uint16_t port = 42;
		int rc = cli_parse_hostport(c->in, &host, &port, err);

		if (c->ok) {
			if (rc != 0)
				fail_msg("row %s: \"%s\" rejected: %s", c->name,
				    c->in, err);
			if (host == NULL || strcmp(host, c->host) != 0 ||
			    port != c->port)
				fail_msg("row %s: \"%s\" -> host \"%s\" port "
				    "%u, expected \"%s\" %u", c->name, c->in,
				    host ? host : "(null)", port, c->host,
				    c->port);
			free(host);
		} else {
			if (rc != -1)
				fail_msg("row %s: \"%s\" accepted as \"%s\" %u",
				    c->name, c->in, host ? host : "(null)",
				    port);
			if (host != NULL || port != 42)
				fail_msg("row %s: output written on error",
				    c->name);
			if (err[0] == '\0')
				fail_msg("row %s: no error message", c->name);
		}
	}
}

static void
test_hostport_errors(void **state)
{
	char err[ERR_LEN] = "";
	char *host = NULL;
	uint16_t port;

	(void)state;
	assert_int_equal(cli_parse_hostport("nohost", &host, &port, err), -1);
	assert_non_null(strstr(err, "\"nohost\""));
	assert_non_null(strstr(err, "HOST:PORT"));
	assert_int_equal(cli_parse_hostport("::1:80", &host, &port, err), -1);
	assert_non_null(strstr(err, "[addr]:port"));
	assert_null(host);
}

struct mode_case {
	const char	*name;
	const char	*in;
	int		 ok;
	mode_t		 mode;
};

static const struct mode_case mode_cases[] = {
	{ "leading-zero", "0660", 1, 0660 },
	{ "no-leading-zero", "666", 1, 0666 },
	{ "zero", "0", 1, 0 },
	{ "dir", "0755", 1, 0755 },
	{ "sticky", "1777", 1, 01777 },
	{ "all-bits", "07777", 1, 07777 },
	{ "not-octal", "9", 0, 0 },
	{ "empty", "", 0, 0 },
	{ "too-big", "77777", 0, 0 },
	{ "just-too-big", "10000", 0, 0 },
	{ "octal-then-8", "0668", 0, 0 },
	{ "letters", "rw", 0, 0 },
	{ "trailing-garbage", "0660x", 0, 0 },
	{ "negative", "-1", 0, 0 },
};

static void
test_mode_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(mode_cases); i++) {
		const struct mode_case *c = &mode_cases[i];
		char err[ERR_LEN] = "";
		mode_t mode = 042;
		int rc = cli_parse_mode(c->in, &mode, err);

		if (c->ok) {
			if (rc != 0)
				fail_msg("row %s: \"%s\" rejected: %s", c->name,
				    c->in, err);
			if (mode != c->mode)
				fail_msg("row %s: \"%s\" -> 0%o, expected 0%o",
				    c->name, c->in, (unsigned)mode,
				    (unsigned)c->mode);
		} else {
			if (rc != -1)
				fail_msg("row %s: \"%s\" accepted as 0%o",
				    c->name, c->in, (unsigned)mode);
			if (mode != 042)
				fail_msg("row %s: output written on error",
				    c->name);
			check_rejected(c->name, c->in, err);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_table),
		cmocka_unit_test(test_size_table),
		cmocka_unit_test(test_uint_table),
		cmocka_unit_test(test_uint_error_names_range),
		cmocka_unit_test(test_hostport_table),
		cmocka_unit_test(test_hostport_errors),
		cmocka_unit_test(test_mode_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
