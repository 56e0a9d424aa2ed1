/* Unit tests of proxyd/api/api_headers.c: the verdict on a request's
 * headers (lengths, encodings, control bytes), and the check that every
 * byte of a header block parsed in place, as libmicrohttpd 0.9.75 does,
 * is accounted for (how a NUL hidden by its strlen() shows). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api_headers.h"

#define MAX_HEADERS	16

struct hdr {
	const char	*name, *value;
	size_t		 name_len, value_len;
};

/* Header lines "Name: value" separated by newlines (no block check); h
 * points into buf, valid until the next call. */
static enum api_headers_verdict
verdict_of(const char *lines, uint64_t max_body, struct api_headers *h)
{
	static char buf[512];
	char *line, *save = NULL, *colon;

	strncpy(buf, lines, sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	api_headers_init(h, NULL, 0);
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		colon = strchr(line, ':');
		assert_non_null(colon);
		api_headers_add(h, line, (size_t)(colon - line), colon + 1 +
		    (colon[1] == ' '), strlen(colon + 1 + (colon[1] == ' ')));
	}
	return api_headers_verdict(h, max_body, NULL);
}

static void
test_headers_verdicts(void **state)
{
	static const struct {
		const char			*lines;
		enum api_headers_verdict	 want;
	} rows[] = {
		{ "Host: x", API_HEADERS_OK },
		{ "Host: x\nContent-Length: 16384", API_HEADERS_OK },
		{ "Content-Length: 16385", API_HEADERS_TOO_LARGE },
		{ "Content-Length: 100000000000", API_HEADERS_TOO_LARGE },
		{ "Content-Length: 99999999999999999999999",
		    API_HEADERS_BAD_LENGTH },		/* overflow */
		{ "Content-Length: 3\ncontent-length: 3",
		    API_HEADERS_BAD_LENGTH },
		{ "Content-Length: 3\nContent-Length: 5",
		    API_HEADERS_BAD_LENGTH },
		{ "Content-Length: 3, 3", API_HEADERS_BAD_LENGTH },
		{ "Content-Length: +3", API_HEADERS_BAD_LENGTH },
		{ "Content-Length: ", API_HEADERS_BAD_LENGTH },
		{ "Transfer-Encoding: chunked", API_HEADERS_OK },
		{ "Transfer-Encoding: CHUNKED", API_HEADERS_OK },
		{ "Transfer-Encoding: chunked\nContent-Length: 3",
		    API_HEADERS_BAD_ENCODING },
		{ "Content-Length: 3\nTransfer-Encoding: chunked",
		    API_HEADERS_BAD_ENCODING },
		{ "Transfer-Encoding: gzip, chunked",
		    API_HEADERS_BAD_ENCODING },
		{ "Transfer-Encoding: chunked\nTransfer-Encoding: chunked",
		    API_HEADERS_BAD_ENCODING },
		{ "Transfer-Encoding: xchunked", API_HEADERS_BAD_ENCODING },
		{ "X-A: a\tb", API_HEADERS_OK },
		{ "X-A: a\x01" "b", API_HEADERS_BAD_CHAR },
		{ "X-A: a\rb", API_HEADERS_BAD_CHAR },
		{ "X-A: a\x7f" "b", API_HEADERS_BAD_CHAR },
		{ "X\tA: b", API_HEADERS_BAD_CHAR },
		{ "Content-Length : 3", API_HEADERS_BAD_CHAR },
		{ "X(A): b", API_HEADERS_BAD_CHAR },
		{ ": b", API_HEADERS_BAD_CHAR },
		{ "X-A!#$%&'*+-.^_`|~09: b", API_HEADERS_OK },
		/* A control byte wins over what else is wrong. */
		{ "Content-Length: 3\nContent-Length: 4\nX: \x02",
		    API_HEADERS_BAD_CHAR },
	};
	struct api_headers h;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum api_headers_verdict v = verdict_of(rows[i].lines,
		    16384, &h);

		if (v != rows[i].want)
			fail_msg("row %zu (%s): verdict %d, want %d", i,
			    rows[i].lines, v, rows[i].want);
	}
}

static void
test_headers_reason_and_xff(void **state)
{
	struct api_headers h;
	const char *reason;

	(void)state;
	verdict_of("X-Forwarded-For: 10.0.0.1\nHost: x\n"
	    "x-forwarded-for: 10.0.0.2, 10.0.0.3", 100, &h);
	assert_int_equal(h.xff_len, strlen("10.0.0.2, 10.0.0.3"));
	assert_memory_equal(h.xff, "10.0.0.2, 10.0.0.3", h.xff_len);
	verdict_of("Content-Length: 101", 100, &h);
	assert_int_equal(api_headers_verdict(&h, 100, &reason),
	    API_HEADERS_TOO_LARGE);
	assert_string_equal(reason, "request body too large");
	assert_int_equal(api_headers_verdict(&h, 101, &reason),
	    API_HEADERS_OK);
	assert_null(reason);
}

/* What libmicrohttpd 0.9.75 makes of raw, in place: CR and LF of each
 * line end replaced by NUL, the request line split at its spaces, each
 * header's colon replaced by NUL, spaces after it skipped, and names
 * and values measured with strlen(). hdrs point into block. */
static size_t
mhd_parse(char *block, size_t len, struct hdr *hdrs)
{
	char *p = block, *end = block + len, *line, *colon;
	size_t n = 0;
	bool first = true;

	while (p < end) {
		line = p;
		while (p < end && *p != '\n' && !(*p == '\r' && p + 1 < end &&
		    p[1] == '\n'))
			p++;
		assert_true(p < end);
		if (*p == '\r')
			*p++ = '\0';
		*p++ = '\0';
		if (first) {
			for (char *q = line; *q != '\0'; q++)
				if (*q == ' ')
					*q = '\0';
			first = false;
			continue;
		}
		if (*line == '\0')
			break;		/* the empty line */
		colon = strchr(line, ':');
		assert_non_null(colon);
		*colon++ = '\0';
		while (*colon == ' ' || *colon == '\t')
			colon++;
		assert_true(n < MAX_HEADERS);
		hdrs[n].name = line;
		hdrs[n].name_len = strlen(line);
		hdrs[n].value = colon;
		hdrs[n].value_len = strlen(colon);
		n++;
	}
	assert_true(p == end);		/* the block ends at the empty line */
	return n;
}

static enum api_headers_verdict
verdict_in_place(const char *raw, size_t len)
{
	char block[512];
	struct hdr hdrs[MAX_HEADERS];
	struct api_headers h;
	size_t n, i;

	assert_true(len <= sizeof(block));
	memcpy(block, raw, len);
	n = mhd_parse(block, len, hdrs);
	api_headers_init(&h, block, len);
	for (i = 0; i < n; i++)
		api_headers_add(&h, hdrs[i].name, hdrs[i].name_len,
		    hdrs[i].value, hdrs[i].value_len);
	return api_headers_verdict(&h, 16384, NULL);
}

#define RAW(s)	(s), sizeof(s) - 1

static void
test_headers_block_accounted_for(void **state)
{
	static const struct {
		const char			*raw;
		size_t				 len;
		enum api_headers_verdict	 want;
	} rows[] = {
		{ RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\n"),
		    API_HEADERS_OK },
		{ RAW("GET / HTTP/1.1\nHost: x\nX-A: b\n\n"), API_HEADERS_OK },
		{ RAW("GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\n"),
		    API_HEADERS_OK },
		{ RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\nX-B: \r\n\r\n"),
		    API_HEADERS_OK },
		{ RAW("GET / HTTP/1.1\r\nHost:x\r\nX-A: \t b  \r\n\r\n"),
		    API_HEADERS_OK },
		{ RAW("GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n"),
		    API_HEADERS_OK },
		/* A NUL hides the rest of a value from strlen(). */
		{ RAW("GET / HTTP/1.1\r\nX-A: a\0b\r\nHost: x\r\n\r\n"),
		    API_HEADERS_BAD_CHAR },
		{ RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"),
		    API_HEADERS_BAD_CHAR },
		{ RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0\r\n\r\n"),
		    API_HEADERS_BAD_CHAR },
		/* The one NUL this cannot see: right before a bare LF it
		 * reads as the CR of a CRLF (and hides nothing after it). */
		{ RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0\n\n"),
		    API_HEADERS_OK },
		{ RAW("GET / HTTP/1.1\r\nHost: x\r\nX-A: \0a\r\n\r\n"),
		    API_HEADERS_BAD_CHAR },
		{ RAW("GET / HTTP/1.1\r\nContent-Length: 3\0" "99\r\n\r\n"),
		    API_HEADERS_BAD_CHAR },
		{ RAW("GET / HTTP/1.1\nX-A: a\0\nHost: x\n\n"),
		    API_HEADERS_OK },
		/* But not before a CRLF, nor two of them. */
		{ RAW("GET / HTTP/1.1\nX-A: a\0\r\nHost: x\n\n"),
		    API_HEADERS_BAD_CHAR },
		{ RAW("GET / HTTP/1.1\nX-A: a\0\0\nHost: x\n\n"),
		    API_HEADERS_BAD_CHAR },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum api_headers_verdict v = verdict_in_place(rows[i].raw,
		    rows[i].len);

		if (v != rows[i].want)
			fail_msg("row %zu: verdict %d, want %d", i, v,
			    rows[i].want);
	}
}

static void
test_headers_not_in_place_is_not_checked(void **state)
{
	char block[] = "GET / HTTP/1.1\0\0X-A\0 b\0\0\0\0";
	char copy[] = "X-A\0b";
	struct api_headers h;

	(void)state;
	/* Names that do not point into the block: skipped, not refused. */
	api_headers_init(&h, block, sizeof(block) - 1);
	api_headers_add(&h, copy, 3, copy + 4, 1);
	api_headers_add(&h, copy, 3, copy + 4, 1);
	assert_int_equal(api_headers_verdict(&h, 100, NULL), API_HEADERS_OK);
	/* A second header elsewhere than where the first ended: refused
	 * (an obs-fold line moves the name in 0.9.75). */
	api_headers_init(&h, block, sizeof(block) - 1);
	api_headers_add(&h, block + 16, 3, block + 21, 1);
	api_headers_add(&h, copy, 3, copy + 4, 1);
	assert_int_equal(api_headers_verdict(&h, 100, NULL),
	    API_HEADERS_BAD_CHAR);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_headers_verdicts),
		cmocka_unit_test(test_headers_reason_and_xff),
		cmocka_unit_test(test_headers_block_accounted_for),
		cmocka_unit_test(test_headers_not_in_place_is_not_checked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
