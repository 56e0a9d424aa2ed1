/* Unit tests of common/buf.c: appending bytes, strings and formatted
 * text, stealing, resetting, growth, and the NUL that always follows the
 * bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

/* The invariant of buf.h: data[len] is NUL and fits in cap. */
static void
check_terminated(const struct buf *b, const char *where)
{
	if (b->data == NULL) {
		if (b->len != 0)
			fail_msg("%s: len %zu without data", where, b->len);
		return;
	}
	if (b->len + 1 > b->cap)
		fail_msg("%s: len %zu + NUL exceeds cap %zu", where, b->len,
		    b->cap);
	if (b->data[b->len] != '\0')
		fail_msg("%s: data[%zu] is 0x%02x, not NUL", where, b->len,
		    (unsigned char)b->data[b->len]);
}

static void
test_init(void **state)
{
	struct buf b;

	(void)state;
	memset(&b, 0xa5, sizeof(b));
	buf_init(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	buf_clear(&b);		/* clear of an empty buf is fine */
	assert_null(b.data);
}

static void
test_append(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b);
	buf_append(&b, "abc", 3);
	assert_int_equal(b.len, 3);
	assert_string_equal(b.data, "abc");
	check_terminated(&b, "append");

	buf_append(&b, "", 0);
	assert_int_equal(b.len, 3);
	check_terminated(&b, "append-empty");

	buf_append(&b, "d\0e", 3);	/* embedded NUL counts */
	assert_int_equal(b.len, 6);
	assert_memory_equal(b.data, "abcd\0e", 7);
	check_terminated(&b, "append-nul");

	buf_append_str(&b, "fg");
	buf_append_char(&b, 'h');
	buf_append_char(&b, '\0');
	assert_int_equal(b.len, 10);
	assert_memory_equal(b.data, "abcd\0efgh\0", 11);
	check_terminated(&b, "append-str-char");
	buf_clear(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
}

static void
test_append_zero_bytes_allocates(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b);
	buf_append(&b, "x", 0);
	assert_non_null(b.data);	/* usable as "" right away */
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_clear(&b);
}

static void
test_printf(void **state)
{
	struct buf b;
	char big[1000];

	(void)state;
	buf_init(&b);
	buf_printf(&b, "%d-%s", 42, "x");
	assert_int_equal(b.len, 4);
	assert_string_equal(b.data, "42-x");
	check_terminated(&b, "printf");

	buf_printf(&b, "|%05u|%c", 7u, 'z');
	assert_int_equal(b.len, 4 + 8);
	assert_string_equal(b.data, "42-x|00007|z");
	check_terminated(&b, "printf-append");

	buf_append(&b, "!", 1);
	assert_string_equal(b.data, "42-x|00007|z!");

	/* More than the first allocation in one call. */
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	buf_printf(&b, "<%s>", big);
	assert_int_equal(b.len, 13 + 2 + 999);
	assert_int_equal(b.data[13], '<');
	assert_memory_equal(b.data + 14, big, 999);
	assert_int_equal(b.data[13 + 1 + 999], '>');
	check_terminated(&b, "printf-big");
	buf_clear(&b);
}

static void
test_printf_empty(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b);
	buf_printf(&b, "%s", "");
	assert_int_equal(b.len, 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	check_terminated(&b, "printf-empty");
	buf_clear(&b);
}

static void
test_steal(void **state)
{
	struct buf b;
	size_t len = 99;
	char *p;

	(void)state;
	buf_init(&b);
	buf_append_str(&b, "hello");
	p = buf_steal(&b, &len);
	assert_int_equal(len, 5);
	assert_string_equal(p, "hello");
	/* The buf is empty again and does not own p any more. */
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	buf_append_str(&b, "again");
	assert_string_equal(b.data, "again");
	assert_string_equal(p, "hello");
	free(p);

	p = buf_steal(&b, NULL);	/* len_out may be NULL */
	assert_string_equal(p, "again");
	free(p);
	buf_clear(&b);
}

static void
test_steal_empty(void **state)
{
	struct buf b;
	size_t len = 99;
	char *p;

	(void)state;
	buf_init(&b);
	p = buf_steal(&b, &len);
	assert_non_null(p);		/* "" the caller frees, not NULL */
	assert_int_equal(len, 0);
	assert_string_equal(p, "");
	assert_null(b.data);
	free(p);

	buf_append_str(&b, "x");
	buf_reset(&b);
	p = buf_steal(&b, &len);
	assert_int_equal(len, 0);
	assert_string_equal(p, "");
	free(p);
}

static void
test_reset(void **state)
{
	struct buf b;
	char *data;
	size_t cap;

	(void)state;
	buf_init(&b);
	buf_reset(&b);		/* on a fresh buf: no allocation */
	assert_null(b.data);
	assert_int_equal(b.len, 0);

	for (int i = 0; i < 100; i++)
		buf_append_str(&b, "0123456789");
	assert_int_equal(b.len, 1000);
	data = b.data;
	cap = b.cap;
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_ptr_equal(b.data, data);	/* keeps its memory */
	assert_int_equal(b.cap, cap);
	assert_string_equal(b.data, "");
	check_terminated(&b, "reset");

	buf_append_str(&b, "ab");
	assert_ptr_equal(b.data, data);	/* fits: no reallocation */
	assert_string_equal(b.data, "ab");
	buf_printf(&b, "%s", "cd");
	assert_string_equal(b.data, "abcd");
	buf_clear(&b);
}

/* Many small appends of every kind: contents and terminator after each. */
static void
test_growth(void **state)
{
	struct buf b;
	size_t want = 0, cap = 0, growths = 0;

	(void)state;
	buf_init(&b);
	for (size_t i = 0; i < 20000; i++) {
		char c = (char)('a' + i % 26);

		switch (i % 3) {
		case 0: buf_append_char(&b, c); break;
		case 1: buf_append(&b, &c, 1); break;
		case 2: buf_printf(&b, "%c", c); break;
		}
		want++;
		if (b.len != want)
			fail_msg("append %zu: len %zu, expected %zu", i, b.len,
			    want);
		if (b.data[b.len] != '\0' || b.cap < b.len + 1)
			fail_msg("append %zu: no NUL after %zu bytes (cap %zu)",
			    i, b.len, b.cap);
		if (b.cap != cap) {
			growths++;
			cap = b.cap;
		}
	}
	/* Geometric growth: a few reallocations, not one per append. */
	if (growths > 20)
		fail_msg("%zu reallocations for 20000 appends", growths);
	for (size_t i = 0; i < want; i++)
		if (b.data[i] != (char)('a' + i % 26))
			fail_msg("offset %zu: 0x%02x", i,
			    (unsigned char)b.data[i]);
	assert_int_equal(strlen(b.data), 20000);
	buf_clear(&b);
}

/* One append far beyond the current capacity, then exactly to it. */
static void
test_growth_large_and_exact(void **state)
{
	struct buf b;
	size_t n = 1 << 20;
	char *big = malloc(n);

	(void)state;
	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)(i * 7 + 1);
	buf_init(&b);
	buf_append_char(&b, '>');
	buf_append(&b, big, n);
	assert_int_equal(b.len, n + 1);
	assert_int_equal(b.data[0], '>');
	assert_memory_equal(b.data + 1, big, n);
	check_terminated(&b, "large");

	/* Fill up to cap - 1 so the NUL takes the last byte. */
	while (b.len + 1 < b.cap)
		buf_append_char(&b, 'x');
	check_terminated(&b, "exactly-full");
	buf_append_char(&b, 'y');
	assert_int_equal(b.data[b.len - 1], 'y');
	check_terminated(&b, "past-full");
	free(big);
	buf_clear(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_append_zero_bytes_allocates),
		cmocka_unit_test(test_printf),
		cmocka_unit_test(test_printf_empty),
		cmocka_unit_test(test_steal),
		cmocka_unit_test(test_steal_empty),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_growth_large_and_exact),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
