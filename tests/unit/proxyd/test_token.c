/*
 * Unit tests of proxyd/token/token.c: one table of named rows, valid and invalid
 * tokens of every kind with the boundary lengths, then the Web Push parts
 * in detail. Every accepted row must format back to its input, and no
 * error message may quote the token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "token.h"

/* RFC 8291 Appendix A: ua_public and auth. */
#define UA	"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBH" \
		"m4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
#define AUTH	"BTBZMqHH6r4Tts7J_aSIgg"
#define KEYS	"|" UA "|" AUTH
/* UA with the last bit of y flipped: not on the curve. */
#define UA_OFF_CURVE "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWX" \
		"vTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw8"
/* UA with 0x02 (compressed) instead of 0x04 in front. */
#define UA_PREFIX_02 "AiVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWX" \
		"vTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
/* UA without its last character; UA in the standard alphabet. */
#define UA_86	"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBH" \
		"m4bjyPjs7Vd8pZGH6SRpkNtoIAiw"
#define UA_STD	"BCVxsr7N/eNgVRqvHtD0zTZsEc6+VV+JvLexhqUzORcxaOzi6+AYWXvTBH" \
		"m4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
/* UA and AUTH with unused low bits set: the same bytes, non-canonical. */
#define UA_NONCANON "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXv" \
		"TBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw5"
#define AUTH_NONCANON "BTBZMqHH6r4Tts7J_aSIgh"
#define EP	"https://push.example.net/wpush/v2/gAAAAABm-x_Yz"
#define APNS64	"2d4b7d1c0a3f5e6b8c9d0e1f2a3b4c5d" \
		"6e7f8091a2b3c4d5e6f708192a3b4c5d"
#define FCMTOK	"dG9rZW4tZm9yLWEtcGhvbmU:APA91bHun4MxP5egoKMwt2KZFBaFUH-1Rya" \
		"pWg_b-kTe4NbgMlJx8mYbLk3Vvp_DQXOfKZ29Z"
/* base64("deltatouch.lotharketterer_deltatouch::3f2a9c1be0d44c7a") */
#define UBTOK	"ZGVsdGF0b3VjaC5sb3RoYXJrZXR0ZXJlcl9kZWx0YXRvdWNoOjozZjJhOW" \
		"MxYmUwZDQ0Yzdh"

/* Input = prefix, fill repeated fill_len times, suffix. */
struct row {
	const char	*name;
	const char	*prefix;
	char		 fill;
	size_t		 fill_len;
	const char	*suffix;
	int		 want_rc;
	enum token_kind	 kind;
	size_t		 device_off;	/* where device starts in the input */
	size_t		 device_len;	/* 0: up to the end of the input */
	const char	*err_part;	/* on failure: part of err */
};

#define OK(n, p, f, fl, s, k, off, dl)	{ n, p, f, fl, s, 0, k, off, dl, NULL }
#define BAD(n, p, f, fl, s, k, e)	{ n, p, f, fl, s, -1, k, 0, 0, e }

static const struct row rows[] = {
	/* APNs production */
	OK("apns-64", APNS64, 0, 0, "", TOKEN_APNS, 0, 0),
	OK("apns-min-32", "", 'a', 32, "", TOKEN_APNS, 0, 0),
	OK("apns-max-200", "", '0', 200, "", TOKEN_APNS, 0, 0),
	OK("apns-upper-hex", "ABCDEF", '9', 58, "", TOKEN_APNS, 0, 0),
	BAD("apns-short-30", "", 'a', 30, "", TOKEN_APNS, "30 hex digits"),
	BAD("apns-long-202", "", 'a', 202, "", TOKEN_APNS, "202 hex digits"),
	BAD("apns-odd-63", "", 'a', 63, "", TOKEN_APNS, "odd number"),
	BAD("apns-not-hex", "", 'a', 40, "g", TOKEN_APNS,
	    "not a hex digit at offset 40"),
	BAD("apns-unknown-prefix", "openpgp:", 'a', 64, "", TOKEN_APNS,
	    "not a hex digit at offset 0"),
	BAD("apns-uppercase-sandbox", "SANDBOX:", 'a', 64, "", TOKEN_APNS,
	    "not a hex digit"),
	/* APNs sandbox */
	OK("sandbox-64", "sandbox:" APNS64, 0, 0, "", TOKEN_APNS_SANDBOX, 8, 0),
	OK("sandbox-min-32", "sandbox:", 'f', 32, "", TOKEN_APNS_SANDBOX, 8, 0),
	OK("sandbox-max-200", "sandbox:", 'f', 200, "", TOKEN_APNS_SANDBOX, 8,
	    0),
	BAD("sandbox-empty", "sandbox:", 0, 0, "", TOKEN_APNS_SANDBOX,
	    "0 hex digits"),
	BAD("sandbox-short-30", "sandbox:", 'f', 30, "", TOKEN_APNS_SANDBOX,
	    "apns-sandbox: 30 hex digits"),
	BAD("sandbox-long-202", "sandbox:", 'f', 202, "", TOKEN_APNS_SANDBOX,
	    "202 hex digits"),
	BAD("sandbox-not-hex", "sandbox:", 'f', 63, "x", TOKEN_APNS_SANDBOX,
	    "offset 63"),
	/* FCM */
	OK("fcm-delta", "fcm-chat.delta:" FCMTOK, 0, 0, "", TOKEN_FCM, 15, 0),
	OK("fcm-fdroid-beta", "fcm-com.b44t.messenger.beta:" FCMTOK, 0, 0, "",
	    TOKEN_FCM, 28, 0),
	OK("fcm-token-min-32", "fcm-chat.delta:", 'x', 32, "", TOKEN_FCM, 15,
	    0),
	OK("fcm-token-max-1024", "fcm-chat.delta:", '-', 1024, "", TOKEN_FCM,
	    15, 0),
	OK("fcm-package-max-150", "fcm-a.", 'b', 148, ":" FCMTOK, TOKEN_FCM,
	    155, 0),
	OK("fcm-package-underscore", "fcm-org.my_app.x_1:" FCMTOK, 0, 0, "",
	    TOKEN_FCM, 19, 0),
	BAD("fcm-token-short-31", "fcm-chat.delta:", 'x', 31, "", TOKEN_FCM,
	    "token of 31 bytes"),
	BAD("fcm-token-long-1025", "fcm-chat.delta:", 'x', 1025, "",
	    TOKEN_FCM, "token of 1025 bytes"),
	BAD("fcm-package-long-151", "fcm-a.", 'b', 149, ":" FCMTOK, TOKEN_FCM,
	    "package of 151 bytes"),
	BAD("fcm-no-colon", "fcm-chat.delta", 'x', 40, "", TOKEN_FCM,
	    "no ':'"),
	BAD("fcm-empty-package", "fcm-:" FCMTOK, 0, 0, "", TOKEN_FCM,
	    "package of 0 bytes"),
	BAD("fcm-package-one-segment", "fcm-delta:" FCMTOK, 0, 0, "",
	    TOKEN_FCM, "not an Android application id"),
	BAD("fcm-package-digit-first", "fcm-chat.1delta:" FCMTOK, 0, 0, "",
	    TOKEN_FCM, "not an Android"),
	BAD("fcm-package-empty-segment", "fcm-chat..delta:" FCMTOK, 0, 0, "",
	    TOKEN_FCM, "not an Android"),
	BAD("fcm-package-trailing-dot", "fcm-chat.delta.:" FCMTOK, 0, 0, "",
	    TOKEN_FCM, "not an Android"),
	BAD("fcm-package-dash", "fcm-chat.del-ta:" FCMTOK, 0, 0, "",
	    TOKEN_FCM, "not an Android"),
	BAD("fcm-token-dot", "fcm-chat.delta:" FCMTOK ".x", 0, 0, "",
	    TOKEN_FCM, "not in [A-Za-z0-9_:-]"),
	BAD("fcm-token-slash", "fcm-chat.delta:/" FCMTOK, 0, 0, "", TOKEN_FCM,
	    "offset 0 not in"),
	/* UBports */
	OK("ubports-real", "ubports-" UBTOK, 0, 0, "", TOKEN_UBPORTS, 8, 0),
	OK("ubports-plus-slash-pad", "ubports-+/+/AQI=", 0, 0, "",
	    TOKEN_UBPORTS, 8, 0),
	OK("ubports-pad2", "ubports-QUJDRA==", 0, 0, "", TOKEN_UBPORTS, 8, 0),
	OK("ubports-min-8", "ubports-", 'A', 8, "", TOKEN_UBPORTS, 8, 0),
	OK("ubports-max-1024", "ubports-", 'A', 1024, "", TOKEN_UBPORTS, 8, 0),
	BAD("ubports-short-4", "ubports-QUJD", 0, 0, "", TOKEN_UBPORTS,
	    "token of 4 bytes"),
	BAD("ubports-long-1028", "ubports-", 'A', 1028, "", TOKEN_UBPORTS,
	    "token of 1028 bytes"),
	BAD("ubports-unpadded", "ubports-QUJDREVGRw", 0, 0, "", TOKEN_UBPORTS,
	    "not padded base64"),
	BAD("ubports-url-alphabet", "ubports-ab-_cdef", 0, 0, "",
	    TOKEN_UBPORTS, "offset 2 is not standard base64"),
	BAD("ubports-pad-inside", "ubports-ab=cdefg", 0, 0, "", TOKEN_UBPORTS,
	    "offset 2"),
	BAD("ubports-pad-3", "ubports-AAAAA===", 0, 0, "", TOKEN_UBPORTS,
	    "offset 5"),
	BAD("ubports-colon", "ubports-abc:defg", 0, 0, "", TOKEN_UBPORTS,
	    "offset 3"),
	/* Web Push */
	OK("webpush-https", "webpush:" EP KEYS, 0, 0, "", TOKEN_WEBPUSH, 8,
	    sizeof(EP) - 1),
	OK("webpush-http", "webpush:http://10.0.0.7:8080/up?x=1" KEYS, 0, 0,
	    "", TOKEN_WEBPUSH, 8, 27),
	OK("webpush-ipv6-port", "webpush:https://[2001:db8::1]:8443/p" KEYS, 0,
	    0, "", TOKEN_WEBPUSH, 8, 28),
	OK("webpush-no-path", "webpush:https://up.example" KEYS, 0, 0, "",
	    TOKEN_WEBPUSH, 8, 18),
	OK("webpush-query-only", "webpush:https://up.example?token=a%2Fb" KEYS,
	    0, 0, "", TOKEN_WEBPUSH, 8, 30),
	OK("webpush-endpoint-max-1000", "webpush:https://e.example/", 'a', 982,
	    KEYS, TOKEN_WEBPUSH, 8, 1000),
	BAD("webpush-endpoint-long-1001", "webpush:https://e.example/", 'a',
	    983, KEYS, TOKEN_WEBPUSH, "endpoint of 1001 bytes"),
	BAD("webpush-one-part", "webpush:" EP, 0, 0, "", TOKEN_WEBPUSH,
	    "want <endpoint>|<ua_public>|<auth>"),
	BAD("webpush-two-parts", "webpush:" EP "|" UA, 0, 0, "",
	    TOKEN_WEBPUSH, "want <endpoint>"),
	BAD("webpush-four-parts", "webpush:" EP KEYS "|", 0, 0, "",
	    TOKEN_WEBPUSH, "auth of 23 bytes"),
	BAD("webpush-ftp", "webpush:ftp://e.example/x" KEYS, 0, 0, "",
	    TOKEN_WEBPUSH, "not an https:// or http://"),
	BAD("webpush-scheme-case", "webpush:HTTPS://e.example/x" KEYS, 0, 0,
	    "", TOKEN_WEBPUSH, "not an https://"),
	BAD("webpush-no-host", "webpush:https:///x" KEYS, 0, 0, "",
	    TOKEN_WEBPUSH, "host of 0 bytes"),
	BAD("webpush-userinfo", "webpush:https://me@e.example/x" KEYS, 0, 0,
	    "", TOKEN_WEBPUSH, "userinfo"),
	BAD("webpush-port-0", "webpush:https://e.example:0/x" KEYS, 0, 0, "",
	    TOKEN_WEBPUSH, "port 0 out of range"),
	BAD("webpush-port-65536", "webpush:https://e.example:65536/x" KEYS, 0,
	    0, "", TOKEN_WEBPUSH, "port 65536 out of range"),
	BAD("webpush-port-empty", "webpush:https://e.example:/x" KEYS, 0, 0,
	    "", TOKEN_WEBPUSH, "port is malformed"),
	BAD("webpush-port-alpha", "webpush:https://e.example:8o/x" KEYS, 0, 0,
	    "", TOKEN_WEBPUSH, "port is malformed"),
	BAD("webpush-port-6-digits", "webpush:https://e.example:000443/x" KEYS,
	    0, 0, "", TOKEN_WEBPUSH, "port is malformed"),
	BAD("webpush-fragment", "webpush:https://e.example/x#y" KEYS, 0, 0, "",
	    TOKEN_WEBPUSH, "offset 19 not allowed"),
	BAD("webpush-bad-escape", "webpush:https://e.example/x%zz" KEYS, 0, 0,
	    "", TOKEN_WEBPUSH, "offset 19"),
	BAD("webpush-cut-escape", "webpush:https://e.example/x%4" KEYS, 0, 0,
	    "", TOKEN_WEBPUSH, "offset 19"),
	BAD("webpush-backslash", "webpush:https://e.example/a\\b" KEYS, 0, 0,
	    "", TOKEN_WEBPUSH, "offset 19"),
	BAD("webpush-host-dash-first", "webpush:https://-e.example/x" KEYS, 0,
	    0, "", TOKEN_WEBPUSH, "not a host name"),
	BAD("webpush-host-dash-last", "webpush:https://e-.example/x" KEYS, 0,
	    0, "", TOKEN_WEBPUSH, "not a host name"),
	BAD("webpush-host-empty-label", "webpush:https://e..example/x" KEYS, 0,
	    0, "", TOKEN_WEBPUSH, "not a host name"),
	BAD("webpush-host-underscore", "webpush:https://e_x.example/x" KEYS, 0,
	    0, "", TOKEN_WEBPUSH, "not a host name"),
	BAD("webpush-host-label-64", "webpush:https://", 'h', 64,
	    ".example/x" KEYS, TOKEN_WEBPUSH, "not a host name"),
	BAD("webpush-ipv6-unclosed", "webpush:https://[2001:db8::1/x" KEYS, 0,
	    0, "", TOKEN_WEBPUSH, "not an IPv6 literal"),
	BAD("webpush-ipv6-zone", "webpush:https://[fe80::1%25eth0]/x" KEYS, 0,
	    0, "", TOKEN_WEBPUSH, "not an IPv6 literal"),
	BAD("webpush-ipv6-junk", "webpush:https://[::1]x/x" KEYS, 0, 0, "",
	    TOKEN_WEBPUSH, "port is malformed"),
	BAD("webpush-ua-86", "webpush:" EP "|" UA_86 "|" AUTH, 0, 0, "",
	    TOKEN_WEBPUSH, "ua_public of 86 bytes"),
	BAD("webpush-ua-short", "webpush:" EP "|BCVxsr7N|" AUTH, 0, 0, "",
	    TOKEN_WEBPUSH, "ua_public of 8 bytes"),
	BAD("webpush-ua-padded", "webpush:" EP "|" UA "=|" AUTH, 0, 0, "",
	    TOKEN_WEBPUSH, "ua_public of 88 bytes"),
	BAD("webpush-ua-std-alphabet", "webpush:" EP "|" UA_STD "|" AUTH, 0,
	    0, "", TOKEN_WEBPUSH, "ua_public of 87 bytes"),
	BAD("webpush-ua-noncanonical", "webpush:" EP "|" UA_NONCANON "|" AUTH,
	    0, 0, "", TOKEN_WEBPUSH, "canonical unpadded base64url"),
	BAD("webpush-ua-off-curve", "webpush:" EP "|" UA_OFF_CURVE "|" AUTH,
	    0, 0, "", TOKEN_WEBPUSH, "not an uncompressed point on P-256"),
	BAD("webpush-ua-compressed", "webpush:" EP "|" UA_PREFIX_02 "|" AUTH,
	    0, 0, "", TOKEN_WEBPUSH, "not an uncompressed point"),
	BAD("webpush-auth-21", "webpush:" EP "|" UA "|BTBZMqHH6r4Tts7J_aSIg",
	    0, 0, "", TOKEN_WEBPUSH, "auth of 21 bytes"),
	BAD("webpush-auth-padded", "webpush:" EP KEYS "==", 0, 0, "",
	    TOKEN_WEBPUSH, "auth of 24 bytes"),
	BAD("webpush-auth-noncanonical", "webpush:" EP "|" UA "|"
	    AUTH_NONCANON, 0, 0, "", TOKEN_WEBPUSH, "auth of 22 bytes"),
	BAD("webpush-auth-empty", "webpush:" EP "|" UA "|", 0, 0, "",
	    TOKEN_WEBPUSH, "auth of 0 bytes"),
	/* Any kind */
	BAD("empty", "", 0, 0, "", TOKEN_APNS, "empty"),
	BAD("max-8192", "", 'a', 8192, "", TOKEN_APNS, "8192 hex digits"),
	BAD("too-long-8193", "", 'a', 8193, "", TOKEN_APNS,
	    "8193 bytes, at most 8192"),
	BAD("too-long-fcm", "fcm-chat.delta:", 'a', 8193, "", TOKEN_FCM,
	    "at most 8192"),
	BAD("newline", APNS64 "\n", 0, 0, "", TOKEN_APNS,
	    "non-ASCII byte at offset 64"),
	BAD("trailing-space", "fcm-chat.delta:" FCMTOK " ", 0, 0, "",
	    TOKEN_FCM, "whitespace"),
	BAD("space-padded", "sandbox:" APNS64, ' ', 100, "", TOKEN_APNS_SANDBOX,
	    "offset 72"),
	BAD("tab", "\t" APNS64, 0, 0, "", TOKEN_APNS, "offset 0"),
	BAD("del", APNS64 "\x7f", 0, 0, "", TOKEN_APNS, "offset 64"),
	BAD("utf8", "webpush:https://\xc3\xa9.example/x" KEYS, 0, 0, "",
	    TOKEN_WEBPUSH, "offset 16"),
};

static char *
row_input(const struct row *r, size_t *len_out)
{
	struct buf b;

	buf_init(&b);
	buf_append_str(&b, r->prefix);
	for (size_t i = 0; i < r->fill_len; i++)
		buf_append_char(&b, r->fill);
	buf_append_str(&b, r->suffix);
	return buf_steal(&b, len_out);
}

/* Whether err quotes 12 or more consecutive bytes of the token. */
static int
err_quotes(const char *err, const char *in, size_t len)
{
	const size_t w = 12;

	for (size_t i = 0; i + w <= len; i++)
		if (memmem(err, strlen(err), in + i, w) != NULL)
			return 1;
	return 0;
}

static void
test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
		const struct row *r = &rows[i];
		struct token t;
		char err[ERR_LEN] = "", *in, *back;
		size_t len, back_len, dlen;
		int rc;

		in = row_input(r, &len);
		rc = token_parse(in, len, &t, err);
		if (rc != r->want_rc)
			fail_msg("row %s: rc %d, want %d (err: %s)", r->name,
			    rc, r->want_rc, err);
		if (t.kind != r->kind)
			fail_msg("row %s: kind %s, want %s", r->name,
			    token_kind_name(t.kind), token_kind_name(r->kind));
		if (rc < 0) {
			if (strstr(err, r->err_part) == NULL)
				fail_msg("row %s: err \"%s\" lacks \"%s\"",
				    r->name, err, r->err_part);
			if (err_quotes(err, in, len))
				fail_msg("row %s: err quotes the token: %s",
				    r->name, err);
			free(in);
			continue;
		}
		dlen = r->device_len ? r->device_len : len - r->device_off;
		if (t.device != in + r->device_off || t.device_len != dlen)
			fail_msg("row %s: device at %td len %zu, want %zu len "
			    "%zu", r->name, t.device - in, t.device_len,
			    r->device_off, dlen);
		back = token_format(&t, &back_len);
		if (back_len != len || memcmp(back, in, len) != 0 ||
		    back[back_len] != '\0')
			fail_msg("row %s: formats back differently", r->name);
		free(back);
		free(in);
	}
}

static void
test_fcm_parts(void **state)
{
	static const char s[] = "fcm-com.b44t.messenger:" FCMTOK;
	struct token t;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(token_parse(s, sizeof(s) - 1, &t, err), 0);
	assert_int_equal(t.kind, TOKEN_FCM);
	assert_int_equal(t.fcm_package_len, strlen("com.b44t.messenger"));
	assert_memory_equal(t.fcm_package, "com.b44t.messenger",
	    t.fcm_package_len);
	/* Split at the first ':': the token keeps its own colon. */
	assert_int_equal(t.device_len, strlen(FCMTOK));
	assert_memory_equal(t.device, FCMTOK, t.device_len);
}

static void
test_webpush_parts(void **state)
{
	static const uint8_t ua[TOKEN_WEBPUSH_UA_PUBLIC_BYTES] = {
		0x04, 0x25, 0x71, 0xb2, 0xbe, 0xcd, 0xfd, 0xe3, 0x60, 0x55,
		0x1a, 0xaf, 0x1e, 0xd0, 0xf4, 0xcd, 0x36, 0x6c, 0x11, 0xce,
		0xbe, 0x55, 0x5f, 0x89, 0xbc, 0xb7, 0xb1, 0x86, 0xa5, 0x33,
		0x39, 0x17, 0x31, 0x68, 0xec, 0xe2, 0xeb, 0xe0, 0x18, 0x59,
		0x7b, 0xd3, 0x04, 0x79, 0xb8, 0x6e, 0x3c, 0x8f, 0x8e, 0xce,
		0xd5, 0x77, 0xca, 0x59, 0x18, 0x7e, 0x92, 0x46, 0x99, 0x0d,
		0xb6, 0x82, 0x00, 0x8b, 0x0e,
	};
	static const uint8_t auth[TOKEN_WEBPUSH_AUTH_BYTES] = {
		0x05, 0x30, 0x59, 0x32, 0xa1, 0xc7, 0xea, 0xbe, 0x13, 0xb6,
		0xce, 0xc9, 0xfd, 0xa4, 0x88, 0x82,
	};
	static const char https[] = "webpush:" EP KEYS;
	static const char http[] = "webpush:http://10.0.0.7:8080/up?x=1" KEYS;
	static const char v6[] = "webpush:https://[2001:db8::1]:8443/p" KEYS;
	struct token t;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(token_parse(https, sizeof(https) - 1, &t, err), 0);
	assert_false(t.webpush.insecure);
	assert_int_equal(t.device_len, strlen(EP));
	assert_int_equal(t.webpush.origin_len,
	    strlen("https://push.example.net"));
	assert_int_equal(t.webpush.host_len, strlen("push.example.net"));
	assert_memory_equal(t.webpush.host, "push.example.net",
	    t.webpush.host_len);
	assert_int_equal(t.webpush.port, 0);
	assert_memory_equal(t.webpush.ua_public, ua, sizeof(ua));
	assert_memory_equal(t.webpush.auth, auth, sizeof(auth));

	assert_int_equal(token_parse(http, sizeof(http) - 1, &t, err), 0);
	assert_true(t.webpush.insecure);
	assert_int_equal(t.webpush.origin_len, strlen("http://10.0.0.7:8080"));
	assert_memory_equal(t.webpush.host, "10.0.0.7", t.webpush.host_len);
	assert_int_equal(t.webpush.port, 8080);

	assert_int_equal(token_parse(v6, sizeof(v6) - 1, &t, err), 0);
	assert_int_equal(t.webpush.host_len, strlen("[2001:db8::1]"));
	assert_memory_equal(t.webpush.host, "[2001:db8::1]",
	    t.webpush.host_len);
	assert_int_equal(t.webpush.port, 8443);
	assert_int_equal(t.webpush.origin_len,
	    strlen("https://[2001:db8::1]:8443"));
}

/* The input need not be NUL-terminated, and bytes past len are not read
 * (the copy is exact-size, so ASan would catch a read past it). */
static void
test_not_terminated(void **state)
{
	static const char s[] = "sandbox:" APNS64 "zz";
	size_t len = sizeof(s) - 3;
	char *copy = malloc(len), err[ERR_LEN];
	struct token t;

	(void)state;
	memcpy(copy, s, len);
	assert_int_equal(token_parse(copy, len, &t, err), 0);
	assert_int_equal(t.kind, TOKEN_APNS_SANDBOX);
	assert_int_equal(t.device_len, 64);
	free(copy);
}

static void
test_kind_names(void **state)
{
	(void)state;
	assert_string_equal(token_kind_name(TOKEN_APNS), "apns");
	assert_string_equal(token_kind_name(TOKEN_APNS_SANDBOX),
	    "apns-sandbox");
	assert_string_equal(token_kind_name(TOKEN_FCM), "fcm");
	assert_string_equal(token_kind_name(TOKEN_UBPORTS), "ubports");
	assert_string_equal(token_kind_name(TOKEN_WEBPUSH), "webpush");
	assert_string_equal(token_kind_name((enum token_kind)99), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_fcm_parts),
		cmocka_unit_test(test_webpush_parts),
		cmocka_unit_test(test_not_terminated),
		cmocka_unit_test(test_kind_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
