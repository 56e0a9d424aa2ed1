/* Unit tests of common/ini.c (the INI reader) and common/chatmail_ini.c
 * (what the daemons take from chatmail relay's chatmail.ini): each row
 * is a file, accepted with its entries as iniconfig reads them, or
 * rejected with an error naming the file, the line and the reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "chatmail_ini.h"
#include "ini.h"
#include "testutil.h"

#define NELEM(a)	(sizeof(a) / sizeof(*(a)))

/* "section|key=value@line;" for each entry, LF in values as "\n". */
static void
dump(const struct ini *ini, char *out, size_t size)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < ini->n; i++) {
		const struct ini_entry *e = &ini->v[i];

		n += (size_t)snprintf(out + n, size - n, "%s|%s=", e->section,
		    e->key);
		for (const char *p = e->value; *p && n < size - 3; p++) {
			if (*p == '\n') {
				out[n++] = '\\';
				out[n++] = 'n';
			} else
				out[n++] = *p;
		}
		out[n] = '\0';
		n += (size_t)snprintf(out + n, size - n, "@%u;", e->line);
	}
}

struct parse_case {
	const char	*name;
	const char	*in;
	size_t		 len;	/* 0: strlen(in) */
	const char	*want;	/* the dump, or (NULL) */
	const char	*err;	/* substring of the error, "t.ini:N: ..." */
};

static const struct parse_case parse_cases[] = {
	{ "empty", "", 0, "", NULL },
	{ "comments-only", "# a\n; b\n   # c\n\n", 0, "", NULL },
	{ "one", "[params]\nmail_domain = example.org\n", 0,
	    "params|mail_domain=example.org@2;", NULL },
	{ "no-final-lf", "[params]\na=b", 0, "params|a=b@2;", NULL },
	{ "crlf", "[params]\r\na = b \r\n", 0, "params|a=b@2;", NULL },
	{ "trimmed", "[params]\n  \nkey\t =\t value with  spaces \t\n", 0,
	    "params|key=value with  spaces@3;", NULL },
	{ "empty-value", "[params]\nprivacy_mail =\n", 0,
	    "params|privacy_mail=@2;", NULL },
	{ "colon-form", "[p]\na: b\n", 0, "p|a=b@2;", NULL },
	/* iniconfig: '=' unless the part before it holds a ':' */
	{ "colon-before-eq", "[p]\na:b = c\n", 0, "p|a=b = c@2;", NULL },
	{ "eq-before-colon", "[p]\na = http://x:1/\n", 0,
	    "p|a=http://x:1/@2;", NULL },
	{ "hash-in-value", "[p]\nurl = https://x/#frag ; not a comment\n", 0,
	    "p|url=https://x/#frag ; not a comment@2;", NULL },
	{ "header-comment", "[params] # the one chatmaild reads\na=1\n", 0,
	    "params|a=1@2;", NULL },
	{ "continuation", "[p]\nk = one\n  two\n\n\tthree\n", 0,
	    "p|k=one\\ntwo\\nthree@2;", NULL },
	{ "continuation-of-empty", "[p]\nk =\n  two\n", 0, "p|k=two@2;", NULL },
	{ "two-sections", "[a]\nk=1\n[b]\nk=2\n", 0, "a|k=1@2;b|k=2@4;", NULL },
	{ "utf8", "[p]\nprivacy_postal = Stra\xc3\x9f" "e 1, K\xc3\xb6ln\n", 0,
	    "p|privacy_postal=Stra\xc3\x9f" "e 1, K\xc3\xb6ln@2;", NULL },
	{ "utf8-4", "[p]\nk = \xf0\x9f\x93\xab\n", 0,
	    "p|k=\xf0\x9f\x93\xab@2;", NULL },

	{ "key-before-section", "a = b\n[p]\n", 0, NULL,
	    "t.ini:1: key before the first [section]" },
	{ "no-equals", "[p]\na = b\njust words\n", 0, NULL,
	    "t.ini:3: expected key = value" },
	{ "empty-key", "[p]\n= b\n", 0, NULL, "t.ini:2: empty key" },
	{ "dup-key", "[p]\na = 1\n\na = 2\n", 0, NULL,
	    "t.ini:4: duplicate key a in [p] (first on line 2)" },
	{ "dup-section", "[p]\n[q]\n[p]\n", 0, NULL,
	    "t.ini:3: duplicate section [p] (first on line 1)" },
	{ "unclosed-header", "[params\n", 0, NULL,
	    "t.ini:1: a section header must be [name]" },
	{ "text-after-header", "[params] x\n", 0, NULL,
	    "t.ini:1: a section header must be [name]" },
	{ "empty-section", "[]\n", 0, NULL, "t.ini:1: empty section name" },
	{ "continuation-first", "  more\n", 0, NULL,
	    "t.ini:1: indented line continues no key" },
	{ "continuation-after-section", "[p]\n  more\n", 0, NULL,
	    "t.ini:2: indented line continues no key" },
	{ "nul", "[p]\na = b\0c\n", 12, NULL,
	    "t.ini:2: control character 0x00 at column 6" },
	{ "lone-cr", "[p]\na = b\rc\n", 0, NULL,
	    "t.ini:2: control character 0x0d" },
	{ "del", "[p]\na = \x7f\n", 0, NULL, "t.ini:2: control character 0x7f" },
	{ "bad-utf8", "[p]\na = \xc3\x28\n", 0, NULL,
	    "t.ini:2: invalid UTF-8 at column 5" },
	{ "overlong-utf8", "[p]\na = \xc0\xaf\n", 0, NULL,
	    "t.ini:2: invalid UTF-8" },
	{ "surrogate", "[p]\na = \xed\xa0\x80\n", 0, NULL,
	    "t.ini:2: invalid UTF-8" },
	{ "truncated-utf8", "[p]\na = \xe2\x82", 0, NULL,
	    "t.ini:2: invalid UTF-8" },
};

static void
test_parse_table(void **state)
{
	char err[ERR_LEN], got[1024];
	struct ini ini;

	(void)state;
	for (size_t i = 0; i < NELEM(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->in);
		int rc;

		err[0] = '\0';
		rc = ini_parse(&ini, "t.ini", c->in, len, err);
		if (c->want != NULL) {
			if (rc != 0)
				fail_msg("row %s: rejected: %s", c->name, err);
			dump(&ini, got, sizeof(got));
			if (strcmp(got, c->want) != 0)
				fail_msg("row %s: got \"%s\", want \"%s\"",
				    c->name, got, c->want);
		} else {
			if (rc != -1)
				fail_msg("row %s: accepted", c->name);
			if (strstr(err, c->err) == NULL)
				fail_msg("row %s: error \"%s\", want \"%s\"",
				    c->name, err, c->err);
			if (ini.n != 0 || ini.v != NULL || ini.name != NULL)
				fail_msg("row %s: left entries behind", c->name);
		}
		ini_clear(&ini);
	}
}

static void
test_bounds(void **state)
{
	size_t big = INI_MAX_BYTES + 1, n = 0;
	char *buf = malloc(big + INI_MAX_LINE + 64);
	char err[ERR_LEN];
	struct ini ini;

	(void)state;
	assert_non_null(buf);
	/* A file over INI_MAX_BYTES, however well formed. */
	memset(buf, '#', big);
	assert_int_equal(ini_parse(&ini, "t.ini", buf, big, err), -1);
	assert_non_null(strstr(err, "t.ini: 65537 bytes, at most 65536"));

	/* A line of INI_MAX_LINE bytes passes; one more does not. */
	n = (size_t)sprintf(buf, "[p]\nk = ");
	memset(buf + n, 'v', INI_MAX_LINE - 4);
	n += INI_MAX_LINE - 4;
	assert_int_equal(ini_parse(&ini, "t.ini", buf, n, err), 0);
	assert_int_equal(strlen(ini.v[0].value), INI_MAX_LINE - 4);
	ini_clear(&ini);
	buf[n++] = 'v';
	assert_int_equal(ini_parse(&ini, "t.ini", buf, n, err), -1);
	assert_non_null(strstr(err, "t.ini:2: line longer than 4096 bytes"));

	/* INI_MAX_ENTRIES keys and sections together. */
	n = (size_t)sprintf(buf, "[p]\n");
	for (int i = 1; i < INI_MAX_ENTRIES; i++)
		n += (size_t)sprintf(buf + n, "k%d=\n", i);
	assert_int_equal(ini_parse(&ini, "t.ini", buf, n, err), 0);
	assert_int_equal(ini.n, INI_MAX_ENTRIES - 1);
	ini_clear(&ini);
	n += (size_t)sprintf(buf + n, "one_more=\n");
	assert_int_equal(ini_parse(&ini, "t.ini", buf, n, err), -1);
	assert_non_null(strstr(err, "t.ini:1025: more than 1024 keys"));
	free(buf);
}

static void
test_get_and_unused(void **state)
{
	static const char text[] = "[params]\nmail_domain = a.example\n"
	    "max_user_send_per_minute = 60\n[other]\nmail_domain = b\n";
	const struct ini_entry *e;
	unsigned int line = 0;
	char err[ERR_LEN];
	struct ini ini;
	size_t pos = 0;

	(void)state;
	assert_int_equal(ini_parse(&ini, "t.ini", text, sizeof(text) - 1, err),
	    0);
	assert_true(ini_has_section(&ini, "other", &line));
	assert_int_equal(line, 4);
	assert_false(ini_has_section(&ini, "nope", NULL));
	e = ini_get(&ini, "params", "mail_domain");
	assert_non_null(e);
	assert_string_equal(e->value, "a.example");
	assert_null(ini_get(&ini, "params", "nope"));
	/* What was not taken, in file order, each once. */
	e = ini_next_unused(&ini, &pos);
	assert_non_null(e);
	assert_string_equal(e->key, "max_user_send_per_minute");
	e = ini_next_unused(&ini, &pos);
	assert_non_null(e);
	assert_string_equal(e->section, "other");
	assert_null(ini_next_unused(&ini, &pos));
	ini_clear(&ini);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void
test_load(void **state)
{
	char dir[TESTUTIL_DIR_LEN], path[TESTUTIL_PATH_LEN], err[ERR_LEN];
	struct ini ini;
	FILE *f;

	(void)state;
	testutil_db_dir(dir, "test_ini", "chatmail.ini", path);
	write_file(path, "[params]\nmail_domain = example.org\n");
	assert_int_equal(ini_load(&ini, path, err), 0);
	assert_int_equal(ini.n, 1);
	assert_string_equal(ini.name, path);
	ini_clear(&ini);

	/* A parse error names the path and the line. */
	write_file(path, "[params]\nmail_domain example.org\n");
	assert_int_equal(ini_load(&ini, path, err), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, ":2: expected key = value"));

	/* Too large: refused before it is read. */
	assert_non_null(f = fopen(path, "w"));
	for (int i = 0; i < INI_MAX_BYTES / 8 + 1; i++)
		fputs("#comment\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ini_load(&ini, path, err), -1);
	assert_non_null(strstr(err, "bytes, at most 65536"));
	unlink(path);

	assert_int_equal(ini_load(&ini, path, err), -1);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(ini_load(&ini, dir, err), -1);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(ini_load(&ini, path, err), -1);	/* no hang */
	assert_non_null(strstr(err, "not a regular file"));
	testutil_db_dir_remove(dir, path);
}

struct vendor_case {
	const char	*name;
	const char	*in;
	const char	*err;		/* NULL: accepted */
	const char	*iroh;		/* "" for none */
	const char	*turn_host;
	const char	*turn_socket;
};

static const struct vendor_case vendor_cases[] = {
	/* config.py: no iroh_relay is https://<mail_domain> */
	{ "defaults", "[params]\nmail_domain = chat.example.org\n", NULL,
	    "https://chat.example.org", "chat.example.org",
	    "/run/chatmail-turn/turn.socket" },
	{ "iroh-set", "[params]\nmail_domain = c.example\n"
	    "iroh_relay = https://iroh.example.net/\n", NULL,
	    "https://iroh.example.net/", "c.example",
	    "/run/chatmail-turn/turn.socket" },
	/* metadata.py: an empty iroh_relay answers NIL */
	{ "iroh-empty", "[params]\nmail_domain = c.example\niroh_relay =\n",
	    NULL, "", "c.example", "/run/chatmail-turn/turn.socket" },
	{ "turn-socket", "[params]\nmail_domain = c.example\n"
	    "turn_socket_path = /run/t/t.sock\n", NULL, "https://c.example",
	    "c.example", "/run/t/t.sock" },
	/* an IP-only relay; cmdeploy's test relays start with '_' */
	{ "ipv4", "[params]\nmail_domain = 192.0.2.7\n", NULL,
	    "https://192.0.2.7", "192.0.2.7",
	    "/run/chatmail-turn/turn.socket" },
	{ "underscore", "[params]\nmail_domain = _c.example\n", NULL,
	    "https://_c.example", "_c.example",
	    "/run/chatmail-turn/turn.socket" },

	{ "no-params", "[chatmail]\nmail_domain = c.example\n",
	    "t.ini: no [params] section", NULL, NULL, NULL },
	{ "no-domain", "[params]\nmax_mailbox_size = 1G\n",
	    "t.ini: [params] has no mail_domain", NULL, NULL, NULL },
	{ "empty-domain", "[params]\n\nmail_domain =\n",
	    "t.ini:3: mail_domain is empty", NULL, NULL, NULL },
	{ "template-domain", "[params]\nmail_domain = {mail_domain}\n",
	    "t.ini:2: mail_domain: expected a domain name", NULL, NULL, NULL },
	{ "domain-with-colon", "[params]\nmail_domain = c.example:25\n",
	    "t.ini:2: mail_domain: expected", NULL, NULL, NULL },
	{ "iroh-not-url", "[params]\nmail_domain = c\niroh_relay = iroh.c\n",
	    "t.ini:3: iroh_relay: expected an http:// or https:// URL", NULL,
	    NULL, NULL },
	{ "iroh-space", "[params]\nmail_domain = c\n"
	    "iroh_relay = https://a b\n", "t.ini:3: iroh_relay", NULL, NULL,
	    NULL },
	{ "iroh-multiline", "[params]\nmail_domain = c\n"
	    "iroh_relay = https://a\n  b\n", "t.ini:3: iroh_relay", NULL, NULL,
	    NULL },
	{ "socket-relative", "[params]\nmail_domain = c\n"
	    "turn_socket_path = turn.socket\n",
	    "t.ini:3: turn_socket_path: expected an absolute path", NULL,
	    NULL, NULL },
};

static void
test_chatmail_vendor_table(void **state)
{
	struct chatmail_ini_vendor cv;
	char err[ERR_LEN];
	struct ini ini;

	(void)state;
	for (size_t i = 0; i < NELEM(vendor_cases); i++) {
		const struct vendor_case *c = &vendor_cases[i];
		int rc;

		err[0] = '\0';
		if (ini_parse(&ini, "t.ini", c->in, strlen(c->in), err) < 0)
			fail_msg("row %s: %s", c->name, err);
		rc = chatmail_ini_check(&ini, err);
		if (rc == 0)
			rc = chatmail_ini_vendor(&ini, &cv, err);
		if (c->err != NULL) {
			if (rc != -1 || strstr(err, c->err) == NULL)
				fail_msg("row %s: rc %d error \"%s\", want "
				    "\"%s\"", c->name, rc, err, c->err);
			ini_clear(&ini);
			continue;
		}
		if (rc != 0)
			fail_msg("row %s: rejected: %s", c->name, err);
		if (strcmp(cv.iroh_relay != NULL ? cv.iroh_relay : "",
		    c->iroh) != 0 || strcmp(cv.turn_host, c->turn_host) != 0 ||
		    strcmp(cv.turn_socket, c->turn_socket) != 0)
			fail_msg("row %s: iroh \"%s\" turn \"%s\" socket \"%s\"",
			    c->name, cv.iroh_relay ? cv.iroh_relay : "(none)",
			    cv.turn_host, cv.turn_socket);
		ini_clear(&ini);
	}
}

static void
test_chatmail_unused_keys(void **state)
{
	static const char text[] = "[params]\nmail_domain = c.example\n"
	    "max_user_send_per_minute = 60\niroh_relay =\n"
	    "privacy_mail =\n";
	struct chatmail_ini_vendor cv;
	const struct ini_entry *e;
	char err[ERR_LEN];
	struct ini ini;
	size_t pos = 0;

	(void)state;
	assert_int_equal(ini_parse(&ini, "t.ini", text, sizeof(text) - 1, err),
	    0);
	/* The check alone takes nothing. */
	assert_int_equal(chatmail_ini_check(&ini, err), 0);
	assert_non_null(ini_next_unused(&ini, &pos));
	pos = 0;
	assert_int_equal(chatmail_ini_vendor(&ini, &cv, err), 0);
	e = ini_next_unused(&ini, &pos);
	assert_string_equal(e->key, "max_user_send_per_minute");
	assert_int_equal(e->line, 3);
	e = ini_next_unused(&ini, &pos);
	assert_string_equal(e->key, "privacy_mail");
	assert_null(ini_next_unused(&ini, &pos));
	ini_clear(&ini);
}

static void
test_chatmail_load(void **state)
{
	char dir[TESTUTIL_DIR_LEN], path[TESTUTIL_PATH_LEN], err[ERR_LEN];
	struct ini ini;

	(void)state;
	testutil_db_dir(dir, "test_chatmail_ini", "chatmail.ini", path);
	write_file(path, "[params]\nmail_domain = example.org\n");
	assert_int_equal(chatmail_ini_load(&ini, path, err), 0);
	ini_clear(&ini);
	write_file(path, "[params]\nmailboxes_dir = /home/vmail\n");
	assert_int_equal(chatmail_ini_load(&ini, path, err), -1);
	assert_non_null(strstr(err, "has no mail_domain"));
	assert_int_equal(ini.n, 0);
	testutil_db_dir_remove(dir, path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_get_and_unused),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_chatmail_vendor_table),
		cmocka_unit_test(test_chatmail_unused_keys),
		cmocka_unit_test(test_chatmail_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
