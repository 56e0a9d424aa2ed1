/* Unit tests of common/log.c: token digests, level names, the sink hook,
 * level filtering, log_warn's strerror suffix, and escaping peer data. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "log.h"
#include "log_limit.h"

#define NELEM(a)	(sizeof(a) / sizeof(*(a)))
#define CAPTURE_MAX	16

struct capture {
	int		 n;
	enum log_level	 level[CAPTURE_MAX];
	char		*line[CAPTURE_MAX];
};

static void
capture_sink(enum log_level level, const char *line, void *arg)
{
	struct capture *c = arg;

	if (c->n == CAPTURE_MAX)
		fail_msg("more than %d log lines", CAPTURE_MAX);
	c->level[c->n] = level;
	c->line[c->n] = strdup(line);
	assert_non_null(c->line[c->n]);
	c->n++;
	errno = EBADF;		/* stdio may do this too */
}

static void
capture_reset(struct capture *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->line[i]);
	c->n = 0;
}

static int
setup_sink(void **state)
{
	struct capture *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -1;
	log_init("test", LOG_LEVEL_INFO);
	log_set_sink(capture_sink, c);
	*state = c;
	return 0;
}

static int
teardown_sink(void **state)
{
	struct capture *c = *state;

	log_set_sink(NULL, NULL);
	log_set_level(LOG_LEVEL_INFO);
	capture_reset(c);
	free(c);
	return 0;
}

/* ---- log_digest ---------------------------------------------------------- */

static void
sha256_prefix_hex(const void *p, size_t len, char out[LOG_DIGEST_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	assert_int_equal(EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL),
	    1);
	assert_int_equal(mdlen, 32);
	snprintf(out, LOG_DIGEST_LEN, "%02x%02x%02x%02x", md[0], md[1], md[2],
	    md[3]);
}

static void
check_digest_shape(const char *d, const char *what)
{
	if (strlen(d) != 8)
		fail_msg("digest of %s: \"%s\" is not 8 characters", what, d);
	if (strspn(d, "0123456789abcdef") != 8)
		fail_msg("digest of %s: \"%s\" is not lowercase hex", what, d);
}

static void
test_digest_tok1(void **state)
{
	char got[LOG_DIGEST_LEN], want[LOG_DIGEST_LEN];

	(void)state;
	memset(got, 'Z', sizeof(got));
	log_digest("tok1", 4, got);
	check_digest_shape(got, "tok1");
	sha256_prefix_hex("tok1", 4, want);
	assert_string_equal(got, want);
	/* sha256("tok1") = 80b3ad2d 438bfafa... (sha256sum) */
	assert_string_equal(got, "80b3ad2d");
}

static void
test_digest_known_values(void **state)
{
	static const struct {
		const char	*name;
		const char	*in;
		size_t		 len;
		const char	*want;
	} cases[] = {
		{ "empty", "", 0, "e3b0c442" },
		{ "abc", "abc", 3, "ba7816bf" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		char got[LOG_DIGEST_LEN];

		log_digest(cases[i].in, cases[i].len, got);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("row %s: digest %s, expected %s",
			    cases[i].name, got, cases[i].want);
	}
}

static void
test_digest_differs(void **state)
{
	static const char *const tokens[] = {
		"tok1", "tok2", "Tok1", "tok1 ", "a-long-fcm-token:APA91b",
	};
	char d[NELEM(tokens)][LOG_DIGEST_LEN];
	char a[LOG_DIGEST_LEN], b[LOG_DIGEST_LEN];

	(void)state;
	for (size_t i = 0; i < NELEM(tokens); i++) {
		log_digest(tokens[i], strlen(tokens[i]), d[i]);
		check_digest_shape(d[i], tokens[i]);
		for (size_t j = 0; j < i; j++)
			if (strcmp(d[i], d[j]) == 0)
				fail_msg("\"%s\" and \"%s\" share digest %s",
				    tokens[i], tokens[j], d[i]);
	}
	/* Same input, same digest; len counts, NUL bytes included. */
	log_digest("tok1", 4, a);
	assert_string_equal(a, d[0]);
	log_digest("a\0b", 3, a);
	log_digest("a", 1, b);
	assert_string_not_equal(a, b);
	sha256_prefix_hex("a\0b", 3, b);
	assert_string_equal(a, b);
}

/* ---- levels ----------------------------------------------------------- */

static void
test_level_parse(void **state)
{
	static const struct {
		const char	*in;
		int		 ok;
		enum log_level	 level;
	} cases[] = {
		{ "error", 1, LOG_LEVEL_ERR },
		{ "warn", 1, LOG_LEVEL_WARN },
		{ "info", 1, LOG_LEVEL_INFO },
		{ "debug", 1, LOG_LEVEL_DEBUG },
		{ "", 0, 0 },
		{ "err", 0, 0 },
		{ "inf", 0, 0 },
		{ "infos", 0, 0 },
		{ "verbose", 0, 0 },
		{ "trace", 0, 0 },
		{ "debug ", 0, 0 },
		{ "2", 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		enum log_level level = (enum log_level)99;
		int rc = log_level_parse(cases[i].in, &level);

		if (cases[i].ok && (rc != 0 || level != cases[i].level))
			fail_msg("row \"%s\": rc %d level %d, expected %d",
			    cases[i].in, rc, (int)level, (int)cases[i].level);
		if (!cases[i].ok && (rc != -1 || level != (enum log_level)99))
			fail_msg("row \"%s\": accepted as %d", cases[i].in,
			    (int)level);
	}
}

static void
test_enabled(void **state)
{
	(void)state;
	log_set_level(LOG_LEVEL_INFO);
	assert_true(log_enabled(LOG_LEVEL_ERR));
	assert_true(log_enabled(LOG_LEVEL_WARN));
	assert_true(log_enabled(LOG_LEVEL_INFO));
	assert_false(log_enabled(LOG_LEVEL_DEBUG));
	log_set_level(LOG_LEVEL_ERR);
	assert_true(log_enabled(LOG_LEVEL_ERR));
	assert_false(log_enabled(LOG_LEVEL_WARN));
	log_set_level(LOG_LEVEL_DEBUG);
	assert_true(log_enabled(LOG_LEVEL_DEBUG));
	log_set_level(LOG_LEVEL_INFO);
}

/* ---- the sink ------------------------------------------------------------ */

static void
test_sink_captures_line(void **state)
{
	struct capture *c = *state;

	log_info("started listen=%s port=%d", "127.0.0.1", 9100);
	assert_int_equal(c->n, 1);
	assert_int_equal(c->level[0], LOG_LEVEL_INFO);
	/* No timestamp and no newline when a sink is set. */
	assert_string_equal(c->line[0],
	    "test: info: started listen=127.0.0.1 port=9100");
}

static void
test_level_filtering(void **state)
{
	struct capture *c = *state;

	log_debug("per request");
	assert_int_equal(c->n, 0);		/* debug not at info */
	log_info("i");
	log_warnx("w");
	log_err("e");
	assert_int_equal(c->n, 3);
	assert_string_equal(c->line[0], "test: info: i");
	assert_string_equal(c->line[1], "test: warn: w");
	assert_string_equal(c->line[2], "test: error: e");
	assert_int_equal(c->level[0], LOG_LEVEL_INFO);
	assert_int_equal(c->level[1], LOG_LEVEL_WARN);
	assert_int_equal(c->level[2], LOG_LEVEL_ERR);
	capture_reset(c);

	log_set_level(LOG_LEVEL_DEBUG);
	log_debug("now %s", "shown");
	assert_int_equal(c->n, 1);
	assert_int_equal(c->level[0], LOG_LEVEL_DEBUG);
	assert_string_equal(c->line[0], "test: debug: now shown");
	capture_reset(c);

	log_set_level(LOG_LEVEL_ERR);
	log_info("no");
	log_warnx("no");
	errno = EIO;
	log_warn("no");
	log_err("yes");
	assert_int_equal(c->n, 1);
	assert_string_equal(c->line[0], "test: error: yes");
}

static void
test_warn_appends_strerror(void **state)
{
	struct capture *c = *state;
	char want[256];

	errno = ENOENT;
	log_warn("open %s", "/nonexistent");
	assert_int_equal(errno, ENOENT);	/* preserved */
	assert_int_equal(c->n, 1);
	assert_int_equal(c->level[0], LOG_LEVEL_WARN);
	snprintf(want, sizeof(want), "test: warn: open /nonexistent: %s",
	    strerror(ENOENT));
	assert_string_equal(c->line[0], want);

	/* log_warnx does not, even with errno set. */
	errno = EACCES;
	log_warnx("plain");
	assert_int_equal(errno, EACCES);
	assert_int_equal(c->n, 2);
	assert_string_equal(c->line[1], "test: warn: plain");

	/* Formatting does not clobber the errno being reported. */
	errno = ECONNREFUSED;
	log_warn("connect %s", strerror(EPIPE));
	snprintf(want, sizeof(want), "test: warn: connect %s: %s",
	    strerror(EPIPE), strerror(ECONNREFUSED));
	assert_string_equal(c->line[2], want);
}

static void
test_long_line_truncated(void **state)
{
	struct capture *c = *state;
	size_t n = 5000;
	char *msg = malloc(n + 1);

	assert_non_null(msg);
	memset(msg, 'a', n);
	msg[n] = '\0';
	log_info("%s", msg);
	assert_int_equal(c->n, 1);
	assert_int_equal(strncmp(c->line[0], "test: info: aaaa", 16), 0);
	assert_true(strlen(c->line[0]) < n);
	assert_true(strlen(c->line[0]) >= 1024);
	assert_int_equal(strspn(c->line[0] + 12, "a"),
	    strlen(c->line[0]) - 12);
	free(msg);
}

static void
test_sink_null_restores_stderr(void **state)
{
	struct capture *c = *state;
	char got[512];
	FILE *tmp = tmpfile();
	int saved_fd, n;
	const char *want = "test: info: to stderr\n";

	assert_non_null(tmp);
	fflush(stderr);
	saved_fd = dup(STDERR_FILENO);
	assert_true(saved_fd >= 0);
	assert_int_equal(dup2(fileno(tmp), STDERR_FILENO), STDERR_FILENO);

	log_set_sink(NULL, NULL);
	log_info("to stderr");
	fflush(stderr);
	log_set_sink(capture_sink, c);

	assert_int_equal(dup2(saved_fd, STDERR_FILENO), STDERR_FILENO);
	close(saved_fd);
	assert_int_equal(c->n, 0);
	rewind(tmp);
	n = (int)fread(got, 1, sizeof(got) - 1, tmp);
	fclose(tmp);
	got[n] = '\0';
	/* Possibly after a timestamp, one line ending in a newline. */
	assert_true((size_t)n >= strlen(want));
	assert_string_equal(got + n - strlen(want), want);
	assert_ptr_equal(strchr(got, '\n'), got + n - 1);
}

/* ---- log_escape ------------------------------------------------------- */

struct escape_case {
	const char	*name;
	const char	*in;
	size_t		 len;
	size_t		 max;
	const char	*want;
};

static const struct escape_case escape_cases[] = {
	{ "plain", "abc", 3, 10, "abc" },
	{ "empty", "", 0, 5, "" },
	{ "printable-edges", " ~", 2, 10, " ~" },
	{ "newline", "a\nb", 3, 10, "a\\x0ab" },
	{ "cr-tab", "\r\t", 2, 10, "\\x0d\\x09" },
	{ "backslash", "a\\b", 3, 10, "a\\x5cb" },
	{ "nul", "a\0b", 3, 10, "a\\x00b" },
	{ "unit-sep", "\x1f", 1, 10, "\\x1f" },
	{ "del", "\x7f", 1, 10, "\\x7f" },
	{ "high", "\x80\xff", 2, 10, "\\x80\\xff" },
	{ "utf8", "\xc3\xa4", 2, 10, "\\xc3\\xa4" },
	{ "forged-line", "x\ntest: error: pwned", 20, 64,
	    "x\\x0atest: error: pwned" },
	{ "truncated", "abcdef", 6, 3, "abc..." },
	{ "exactly-max", "abc", 3, 3, "abc" },
	{ "one-over", "abcd", 4, 3, "abc..." },
	{ "max-zero", "abc", 3, 0, "..." },
	{ "max-zero-empty", "", 0, 0, "" },
	{ "truncated-escaped", "\n\n\n\n", 4, 2, "\\x0a\\x0a..." },
};

static void
test_escape_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(escape_cases); i++) {
		const struct escape_case *c = &escape_cases[i];
		/* Exactly the documented size, so ASan sees an overrun. */
		char *out = malloc(c->max * 4 + 4);

		assert_non_null(out);
		log_escape(c->in, c->len, c->max, out);
		if (strcmp(out, c->want) != 0)
			fail_msg("row %s: \"%s\", expected \"%s\"", c->name,
			    out, c->want);
		free(out);
	}
}

/* The worst case fills the documented max*4+4 bytes exactly. */
static void
test_escape_worst_case_fits(void **state)
{
	unsigned char in[64];
	size_t max = 32;
	char *out = malloc(max * 4 + 4);

	(void)state;
	assert_non_null(out);
	memset(in, 0xff, sizeof(in));
	log_escape(in, sizeof(in), max, out);
	assert_int_equal(strlen(out), max * 4 + 3);
	assert_string_equal(out + max * 4, "...");
	assert_null(strchr(out, '\n'));
	free(out);
}

/* ---- log_limited ---------------------------------------------------------- */

static int hook_calls;

static void
count_hook(void *arg)
{
	(void)arg;
	hook_calls++;
}

static void
test_limited_counts_what_it_drops(void **state)
{
	struct capture *c = *state;
	struct log_limit lim = LOG_LIMIT(0.001, 3);	/* no refill here */
	uint64_t total0 = log_limit_suppressed_total();

	hook_calls = 0;
	log_limit_set_hook(count_hook, NULL);
	for (int i = 0; i < 10; i++)
		log_limited(&lim, LOG_LEVEL_WARN, "flood n=%d", i);
	assert_int_equal(c->n, 3);
	assert_string_equal(c->line[2], "test: warn: flood n=2");
	assert_int_equal(hook_calls, 7);
	assert_int_equal(log_limit_suppressed_total() - total0, 7);
	/* Below the level: neither logged nor counted. */
	log_limited(&lim, LOG_LEVEL_DEBUG, "quiet");
	assert_int_equal(hook_calls, 7);
	/* The next line that passes says how many it stood for. */
	lim.tokens = 1;
	log_limited(&lim, LOG_LEVEL_WARN, "flood n=%d", 10);
	assert_int_equal(c->n, 4);
	assert_string_equal(c->line[3], "test: warn: flood n=10 suppressed=7");
	lim.tokens = 1;
	log_limited(&lim, LOG_LEVEL_WARN, "calm");
	assert_string_equal(c->line[4], "test: warn: calm");
	log_limit_set_hook(NULL, NULL);
}

static void
test_limited_refills(void **state)
{
	struct capture *c = *state;
	struct log_limit lim = LOG_LIMIT(1000, 1);	/* a line per ms */

	log_limited(&lim, LOG_LEVEL_INFO, "one");
	log_limited(&lim, LOG_LEVEL_INFO, "dropped");
	usleep(20000);
	log_limited(&lim, LOG_LEVEL_INFO, "two");
	assert_int_equal(c->n, 2);
	assert_string_equal(c->line[1], "test: info: two suppressed=1");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest_tok1),
		cmocka_unit_test(test_digest_known_values),
		cmocka_unit_test(test_digest_differs),
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_enabled),
		cmocka_unit_test_setup_teardown(test_sink_captures_line,
		    setup_sink, teardown_sink),
		cmocka_unit_test_setup_teardown(test_level_filtering,
		    setup_sink, teardown_sink),
		cmocka_unit_test_setup_teardown(test_warn_appends_strerror,
		    setup_sink, teardown_sink),
		cmocka_unit_test_setup_teardown(test_long_line_truncated,
		    setup_sink, teardown_sink),
		cmocka_unit_test_setup_teardown(test_sink_null_restores_stderr,
		    setup_sink, teardown_sink),
		cmocka_unit_test_setup_teardown(test_limited_counts_what_it_drops,
		    setup_sink, teardown_sink),
		cmocka_unit_test_setup_teardown(test_limited_refills,
		    setup_sink, teardown_sink),
		cmocka_unit_test(test_escape_table),
		cmocka_unit_test(test_escape_worst_case_fits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
