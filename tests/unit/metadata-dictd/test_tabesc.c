/* Unit tests of metadata-dictd/tabesc.c: Dovecot's tab-escaping as the dict
 * protocol uses it (table in tabesc.h), the captured example from the
 * protocol doc, and a round trip of every byte value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "tabesc.h"

#define NELEM(a)	(sizeof(a) / sizeof(*(a)))

/* Octal escapes stop after three digits, so "\0011" is 0x01 then '1'. */
#define CAPTURED_RAW	"x\ty\r\nz\001w \xc3\xa4"
#define CAPTURED_ESC	"x\001ty\001r\001nz\0011w \xc3\xa4"

struct esc_case {
	const char	*name;
	const char	*raw;
	size_t		 raw_len;
	const char	*esc;
	size_t		 esc_len;
};

/* Rows give lengths explicitly so that embedded NULs count. */
#define ROW(name, raw, esc) \
	{ name, raw, sizeof(raw) - 1, esc, sizeof(esc) - 1 }
/* The same, escaped form first. */
#define UROW(name, esc, raw)	ROW(name, raw, esc)

/* raw -> escaped; each row also decodes back (checked in round trip). */
static const struct esc_case escape_cases[] = {
	ROW("empty", "", ""),
	ROW("plain", "abc", "abc"),
	ROW("soh", "\001", "\0011"),
	ROW("tab", "\t", "\001t"),
	ROW("cr", "\r", "\001r"),
	ROW("lf", "\n", "\001n"),
	ROW("nul-not-escaped", "a\0b", "a\0b"),
	ROW("captured", CAPTURED_RAW, CAPTURED_ESC),
	ROW("adjacent", "\t\t\n\n", "\001t\001t\001n\001n"),
	ROW("at-both-ends", "\nx\r", "\001nx\001r"),
	ROW("soh-then-t", "\001t", "\0011t"),
	ROW("other-controls", "\002\037\177", "\002\037\177"),
	ROW("utf8", "\xc3\xa4\xe2\x82\xac", "\xc3\xa4\xe2\x82\xac"),
	ROW("high-bytes", "\x80\xfe\xff", "\x80\xfe\xff"),
	ROW("backslash", "a\\tb", "a\\tb"),
};

/* escaped -> raw, for inputs tabesc_escape never produces. */
static const struct esc_case unescape_cases[] = {
	UROW("nul", "\0010", "\0"),
	UROW("nul-inside", "a\0010b", "a\0b"),
	UROW("unknown-X", "\001X", "X"),
	UROW("unknown-l", "\001l", "l"),	/* 'l' is not LF for dict */
	UROW("unknown-soh", "\001\001", "\001"),
	UROW("unknown-nul-byte", "\001\0", "\0"),
	UROW("unknown-high", "\001\xff", "\xff"),
	UROW("trailing-lone-soh", "ab\001", "ab\001"),
	UROW("only-lone-soh", "\001", "\001"),
	UROW("pair-then-lone", "\001\001\001", "\001\001"),
	UROW("escaped-soh-before-lone", "\0011\001", "\001\001"),
	UROW("raw-controls-kept", "a\tb\nc", "a\tb\nc"),
};

/* Decode the len bytes of esc in a copy padded with 'Z' beyond len + 1,
 * so a missing NUL terminator shows up. Returns the copy (caller frees). */
static char *
unescape_copy(const char *esc, size_t len, size_t *len_out)
{
	char *s = malloc(len + 8);

	assert_non_null(s);
	memset(s, 'Z', len + 8);
	memcpy(s, esc, len);
	*len_out = tabesc_unescape(s, len);
	return s;
}

static void
hexdump(const char *what, const char *p, size_t len)
{
	char line[1024];
	size_t off = 0;

	for (size_t i = 0; i < len && off + 4 < sizeof(line); i++)
		off += (size_t)snprintf(line + off, sizeof(line) - off, " %02x",
		    (unsigned char)p[i]);
	line[off] = '\0';
	print_error("  %s (%zu bytes):%s\n", what, len, line);
}

static void
test_escape_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(escape_cases); i++) {
		const struct esc_case *c = &escape_cases[i];
		struct buf b;

		buf_init(&b);
		tabesc_escape(&b, c->raw, c->raw_len);
		if (b.len != c->esc_len || b.data == NULL ||
		    memcmp(b.data, c->esc, c->esc_len) != 0 ||
		    b.data[b.len] != '\0') {
			hexdump("expected", c->esc, c->esc_len);
			hexdump("got", b.data ? b.data : "", b.len);
			fail_msg("row %s: escape mismatch", c->name);
		}
		buf_clear(&b);
	}
}

static void
test_unescape_table(void **state)
{
	(void)state;
	/* The escape rows backwards, then the decode-only rows. */
	for (size_t pass = 0; pass < 2; pass++) {
		const struct esc_case *cases = pass ? unescape_cases :
		    escape_cases;
		size_t n = pass ? NELEM(unescape_cases) : NELEM(escape_cases);

		for (size_t i = 0; i < n; i++) {
			const struct esc_case *c = &cases[i];
			size_t len;
			char *s = unescape_copy(c->esc, c->esc_len, &len);

			if (len != c->raw_len ||
			    memcmp(s, c->raw, c->raw_len) != 0) {
				hexdump("expected", c->raw, c->raw_len);
				hexdump("got", s, len);
				fail_msg("row %s: unescape mismatch", c->name);
			}
			if (s[len] != '\0')
				fail_msg("row %s: result not NUL-terminated",
				    c->name);
			free(s);
		}
	}
}

static void
test_captured_example(void **state)
{
	struct buf b;
	size_t len;
	char *s;

	(void)state;
	assert_int_equal(sizeof(CAPTURED_RAW) - 1, 11);
	assert_int_equal(sizeof(CAPTURED_ESC) - 1, 15);
	buf_init(&b);
	tabesc_escape(&b, CAPTURED_RAW, sizeof(CAPTURED_RAW) - 1);
	assert_int_equal(b.len, 15);
	assert_memory_equal(b.data, "x\x01" "ty\x01" "r\x01" "nz\x01" "1w "
	    "\xc3\xa4", 15);
	s = unescape_copy(b.data, b.len, &len);
	assert_int_equal(len, 11);
	assert_memory_equal(s, CAPTURED_RAW, 11);
	free(s);
	buf_clear(&b);
}

static void
test_escape_appends(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b);
	buf_append_str(&b, "S1\tkey\t");
	tabesc_escape(&b, "v\tw", 3);
	buf_append_char(&b, '\n');
	assert_int_equal(b.len, 7 + 4 + 1);
	assert_string_equal(b.data, "S1\tkey\tv\001tw\n");
	buf_clear(&b);
}

/* Every single byte: only 01, TAB, CR, LF grow to two bytes; NUL is
 * documented as not escaped. Each decodes back to itself. */
static void
test_every_byte(void **state)
{
	(void)state;
	for (int v = 0; v < 256; v++) {
		char raw = (char)v, code = 0;
		struct buf b;
		size_t len;
		char *s;

		switch (v) {
		case 0x01: code = '1'; break;
		case '\t': code = 't'; break;
		case '\r': code = 'r'; break;
		case '\n': code = 'n'; break;
		}
		buf_init(&b);
		tabesc_escape(&b, &raw, 1);
		if (code != 0) {
			if (b.len != 2 || b.data[0] != '\001' ||
			    b.data[1] != code)
				fail_msg("byte 0x%02x: escaped to %zu bytes, "
				    "expected 01 '%c'", v, b.len, code);
		} else if (b.len != 1 || b.data[0] != raw) {
			fail_msg("byte 0x%02x: escaped to %zu bytes, expected "
			    "itself", v, b.len);
		}
		s = unescape_copy(b.data, b.len, &len);
		if (len != 1 || s[0] != raw || s[1] != '\0')
			fail_msg("byte 0x%02x: did not decode back (len %zu)",
			    v, len);
		free(s);
		buf_clear(&b);
	}
}

/* 01 followed by each byte value: '0' '1' 't' 'r' 'n' are codes, every
 * other byte stands for itself. */
static void
test_unescape_every_code(void **state)
{
	(void)state;
	for (int v = 0; v < 256; v++) {
		char in[2] = { '\001', (char)v }, want;
		size_t len;
		char *s;

		switch (v) {
		case '0': want = '\0'; break;
		case '1': want = '\001'; break;
		case 't': want = '\t'; break;
		case 'r': want = '\r'; break;
		case 'n': want = '\n'; break;
		default: want = (char)v; break;
		}
		s = unescape_copy(in, 2, &len);
		if (len != 1 || s[0] != want || s[1] != '\0')
			fail_msg("01 0x%02x: decoded to %zu bytes, first "
			    "0x%02x, expected 0x%02x", v, len,
			    (unsigned char)s[0], (unsigned char)want);
		free(s);
	}
}

/* All 256 byte values in one string: the escaped form has no TAB, CR or
 * LF, every 01 starts a known pair, and decoding gives the input back. */
static void
test_round_trip_all_bytes(void **state)
{
	char raw[256];
	struct buf b;
	size_t len;
	char *s;

	(void)state;
	for (int i = 0; i < 256; i++)
		raw[i] = (char)i;
	buf_init(&b);
	tabesc_escape(&b, raw, sizeof(raw));
	assert_int_equal(b.len, 256 + 4);
	assert_null(memchr(b.data, '\t', b.len));
	assert_null(memchr(b.data, '\r', b.len));
	assert_null(memchr(b.data, '\n', b.len));
	assert_int_equal(b.data[0], '\0');	/* NUL passes through raw */
	for (size_t i = 0; i < b.len; i++) {
		if (b.data[i] != '\001')
			continue;
		if (i + 1 == b.len || strchr("1trn", b.data[i + 1]) == NULL ||
		    b.data[i + 1] == '\0')
			fail_msg("escaped output: bad pair at offset %zu", i);
		i++;
	}
	s = unescape_copy(b.data, b.len, &len);
	assert_int_equal(len, 256);
	assert_memory_equal(s, raw, 256);
	assert_int_equal(s[256], '\0');
	free(s);

	/* The same bytes, repeated, in reverse order. */
	buf_reset(&b);
	for (int rep = 0; rep < 3; rep++)
		for (int i = 255; i >= 0; i--) {
			char c = (char)i;

			tabesc_escape(&b, &c, 1);
		}
	s = unescape_copy(b.data, b.len, &len);
	assert_int_equal(len, 3 * 256);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] != 255 - i % 256)
			fail_msg("reverse round trip: offset %zu is 0x%02x", i,
			    (unsigned char)s[i]);
	free(s);
	buf_clear(&b);
}

static void
test_unescape_no_escape_terminates(void **state)
{
	char s[8] = "abcZZZZ";
	size_t len;

	(void)state;
	len = tabesc_unescape(s, 3);
	assert_int_equal(len, 3);
	assert_string_equal(s, "abc");
	memcpy(s, "ZZZZZZZ", 8);
	assert_int_equal(tabesc_unescape(s, 0), 0);
	assert_int_equal(s[0], '\0');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_table),
		cmocka_unit_test(test_unescape_table),
		cmocka_unit_test(test_captured_example),
		cmocka_unit_test(test_escape_appends),
		cmocka_unit_test(test_every_byte),
		cmocka_unit_test(test_unescape_every_code),
		cmocka_unit_test(test_round_trip_all_bytes),
		cmocka_unit_test(test_unescape_no_escape_terminates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
