/* Unit tests of proxyd/providers/webpush/webpush.c: the request for a parsed
 * webpush: token (URL, every header, the VAPID header's aud, a body the
 * user agent decrypts to "ping"), refusals, the insecure flag and the
 * origin, and every row of the answer table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "token.h"
#include "webpush.h"
#include "webpush_ua.h"
#include "provider_test.h"

#define T0_MS	1700000000000LL
#define KEYS	"|" UA_PUBLIC_B64 "|" UA_AUTH_B64

struct fixture {
	struct vapid	*vapid;
	struct webpush	*wp;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	struct webpush_config cfg = { NULL, 0, false };
	char err[ERR_LEN];

	f->vapid = vapid_new(key, "mailto:ops@example.org", err);
	EVP_PKEY_free(key);
	if (f->vapid == NULL)
		return -1;
	cfg.vapid = f->vapid;
	f->wp = webpush_new(&cfg);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	webpush_free(f->wp);
	vapid_free(f->vapid);
	free(f);
	return 0;
}

/* The claims of the JWT in an Authorization value (NUL-terminated, in
 * b; caller clears). */
static void
jwt_claims(const char *authorization, struct buf *b)
{
	const char *t = authorization + strlen("vapid t="), *d1, *d2;

	assert_memory_equal(authorization, "vapid t=", 8);
	assert_non_null(d1 = strchr(t, '.'));
	assert_non_null(d2 = strchr(d1 + 1, '.'));
	buf_init(b);
	assert_int_equal(base64url_decode(b, d1 + 1, (size_t)(d2 - d1 - 1)),
	    0);
}

static void
test_request(void **state)
{
	struct fixture *f = *state;
	static const char tok[] = "webpush:https://Push.Example.net:443/wpush/"
	    "v2/gAAAAABk?x=1" KEYS;
	uint8_t ua_priv[32], ua_pub[65], auth[16];
	struct provider_request r;
	struct token t;
	struct buf claims;
	char err[ERR_LEN], want[256], *plain, *k;
	size_t plen;
	uint32_t rs;

	parse_token(tok, &t);
	assert_int_equal(webpush_build(f->wp, PUSH_VISIBLE, &t, T0_MS, &r,
	    err), 0);
	assert_string_equal(r.url, "https://Push.Example.net:443/wpush/v2/"
	    "gAAAAABk?x=1");
	assert_int_equal(r.nheaders, 5);
	assert_string_equal(header(&r, "Content-Encoding"), "aes128gcm");
	assert_string_equal(header(&r, "Content-Type"),
	    "application/octet-stream");
	assert_string_equal(header(&r, "TTL"), "43200");
	assert_string_equal(header(&r, "Urgency"), "high");

	/* aud: the origin in lower case, the default port dropped. */
	jwt_claims(header(&r, "Authorization"), &claims);
	snprintf(want, sizeof(want), "{\"aud\":\"https://push.example.net\","
	    "\"exp\":%lld,\"sub\":\"mailto:ops@example.org\"}",
	    (long long)(T0_MS / 1000 + 43200));
	assert_string_equal(claims.data, want);
	buf_clear(&claims);
	assert_non_null(k = strstr(header(&r, "Authorization"), ", k="));
	assert_string_equal(k + 4, vapid_public_key(f->vapid));

	/* "ping" in one record of rs 4096: 86 + 4 + 1 + 16 bytes. */
	assert_int_equal(r.body_len, 107);
	assert_int_equal(ua_b64(UA_PRIVATE_B64, ua_priv, 32), 0);
	assert_int_equal(ua_b64(UA_PUBLIC_B64, ua_pub, 65), 0);
	assert_int_equal(ua_b64(UA_AUTH_B64, auth, 16), 0);
	plain = ua_decrypt((uint8_t *)r.body, r.body_len, ua_priv, ua_pub,
	    auth, &plen, &rs);
	assert_non_null(plain);
	assert_string_equal(plain, WEBPUSH_PAYLOAD);
	assert_int_equal(rs, 4096);
	free(plain);
	provider_request_clear(&r);
	assert_null(r.url);
	assert_int_equal(r.nheaders, 0);
}

static void
test_ttl_port_and_insecure(void **state)
{
	struct fixture *f = *state;
	struct webpush_config cfg = { f->vapid, 60, false };
	struct webpush *wp = webpush_new(&cfg);
	struct provider_request r;
	struct token t;
	struct buf claims;
	char err[ERR_LEN], origin[VAPID_AUDIENCE_MAX_BYTES];

	parse_token("webpush:http://127.0.0.1:8080/up/abc" KEYS, &t);
	assert_true(webpush_token_insecure(&t));
	assert_int_equal(webpush_origin(&t, origin, err), 0);
	assert_string_equal(origin, "http://127.0.0.1:8080");
	/* Built all the same: refusing http is the transport's decision. */
	assert_int_equal(webpush_build(wp, PUSH_VISIBLE, &t, T0_MS, &r, err),
	    0);
	assert_string_equal(header(&r, "TTL"), "60");
	jwt_claims(header(&r, "Authorization"), &claims);
	assert_non_null(strstr(claims.data,
	    "\"aud\":\"http://127.0.0.1:8080\""));
	buf_clear(&claims);
	provider_request_clear(&r);
	webpush_free(wp);

	parse_token("webpush:https://[2001:DB8::1]:8443/p" KEYS, &t);
	assert_false(webpush_token_insecure(&t));
	assert_int_equal(webpush_origin(&t, origin, err), 0);
	assert_string_equal(origin, "https://[2001:db8::1]:8443");
	parse_token("webpush:https://up.example" KEYS, &t);
	assert_int_equal(webpush_origin(&t, origin, err), 0);
	assert_string_equal(origin, "https://up.example");
}

static void
test_refusals(void **state)
{
	struct fixture *f = *state;
	struct provider_request r;
	struct token t;
	char err[ERR_LEN], origin[VAPID_AUDIENCE_MAX_BYTES];

	parse_token("webpush:https://up.example/x" KEYS, &t);
	assert_int_equal(webpush_build(f->wp, PUSH_HEARTBEAT, &t, T0_MS, &r,
	    err), -1);
	assert_non_null(strstr(err, "heartbeat"));
	assert_null(r.url);

	parse_token("a1b2c3d4e5f60718293a4b5c6d7e8f90"
	    "a1b2c3d4e5f60718293a4b5c6d7e8f90", &t);
	assert_false(webpush_token_insecure(&t));
	assert_int_equal(webpush_build(f->wp, PUSH_VISIBLE, &t, T0_MS, &r,
	    err), -1);
	assert_null(r.url);
	assert_int_equal(webpush_origin(&t, origin, err), -1);
	assert_non_null(strstr(err, "apns"));

	/* A struct that did not come from token_parse: the key is refused
	 * by the encryption, nothing is left in r. */
	parse_token("webpush:https://up.example/x" KEYS, &t);
	t.webpush.ua_public[64] ^= 1;
	assert_int_equal(webpush_build(f->wp, PUSH_VISIBLE, &t, T0_MS, &r,
	    err), -1);
	assert_non_null(strstr(err, "ua_public"));
	assert_null(r.url);
	assert_int_equal(r.nheaders, 0);
}

static const struct {
	long			 status;
	const char		*body;
	int64_t			 retry_after_ms;
	enum provider_verdict	 want;
	const char		*reason;
	int64_t			 want_retry_ms;
} answers[] = {
	{ 201, "", 0, VERDICT_OK, "201", 0 },
	{ 200, "{\"ok\":true}", 0, VERDICT_OK, "200", 0 },
	{ 202, NULL, 0, VERDICT_OK, "202", 0 },
	{ 204, NULL, 0, VERDICT_OK, "204", 0 },
	{ 404, "{\"code\":404,\"errno\":102}", 0, VERDICT_GONE, "errno-102",
	    0 },
	{ 404, "", 0, VERDICT_GONE, "404", 0 },
	{ 410, "{\"code\":410,\"errno\":106,\"message\":\"gone\"}", 0,
	    VERDICT_GONE, "errno-106", 0 },
	{ 410, "{\"reason\":\"Unregistered\"}", 0, VERDICT_GONE,
	    "Unregistered", 0 },
	{ 400, "{\"reason\":\"BadDeviceToken\"}", 0, VERDICT_GONE,
	    "BadDeviceToken", 0 },
	{ 400, "{\"code\":400,\"errno\":102}", 0, VERDICT_GONE, "errno-102",
	    0 },
	{ 400, "{\"code\":400,\"errno\":110}", 0, VERDICT_CONFIG, "errno-110",
	    0 },
	{ 400, "{\"reason\":\"BadWebPushTopic\"}", 0, VERDICT_CONFIG,
	    "BadWebPushTopic", 0 },
	{ 400, "UnauthorizedRegistration", 0, VERDICT_CONFIG, "400", 0 },
	{ 400, "{\"reason\":\"Bad\\nDeviceToken\"}", 0, VERDICT_CONFIG, "400",
	    0 },				/* not a known reason */
	{ 400, "{\"reason\":\"BadDeviceToken\",", 0, VERDICT_CONFIG, "400",
	    0 },				/* not JSON */
	{ 400, "{\"errno\":\"102\"}", 0, VERDICT_CONFIG, "400", 0 },
	{ 401, "", 0, VERDICT_CONFIG, "401", 0 },
	{ 403, "{\"reason\":\"BadJwtToken\"}", 0, VERDICT_CONFIG,
	    "BadJwtToken", 0 },
	{ 403, "{\"reason\":\"BadDeviceToken\"}", 0, VERDICT_CONFIG,
	    "BadDeviceToken", 0 },		/* only a 400 says so */
	{ 413, "", 0, VERDICT_CONFIG, "413", 0 },
	{ 429, "", 0, VERDICT_PAUSE, "429", 0 },
	{ 429, "", 30000, VERDICT_PAUSE, "429", 30000 },
	{ 429, "", 86400000, VERDICT_PAUSE, "429", WEBPUSH_RETRY_AFTER_MAX_MS },
	{ 429, "", -5, VERDICT_PAUSE, "429", 0 },
	{ 500, "", 0, VERDICT_TEMPORARY, "500", 0 },
	{ 502, "<html>bad gateway</html>", 0, VERDICT_TEMPORARY, "502", 0 },
	{ 503, "", 0, VERDICT_TEMPORARY, "503", 0 },
	{ 503, "", 120000, VERDICT_PAUSE, "503", 120000 },
	{ 301, "", 0, VERDICT_TEMPORARY, "301", 0 },	/* never followed */
	{ 308, "", 0, VERDICT_TEMPORARY, "308", 0 },
	{ 405, "", 0, VERDICT_TEMPORARY, "405", 0 },
	{ 100, "", 0, VERDICT_TEMPORARY, "100", 0 },
	{ 0, NULL, 0, VERDICT_TEMPORARY, "0", 0 },	/* no answer */
	{ 600, "", 0, VERDICT_TEMPORARY, "600", 0 },
	{ 500, "{\"errno\":5}", 0, VERDICT_TEMPORARY, "500", 0 },
	{ 500, "{\"errno\":999}", 0, VERDICT_TEMPORARY, "errno-999", 0 },
	{ 500, "{\"errno\":1000}", 0, VERDICT_TEMPORARY, "500", 0 },
};

static void
test_answers(void **state)
{
	struct provider_result res;

	(void)state;
	for (size_t i = 0; i < sizeof(answers) / sizeof(*answers); i++) {
		classify(webpush_classify, answers[i].status,
		    answers[i].body, answers[i].body ?
		    strlen(answers[i].body) : 0, answers[i].retry_after_ms,
		    &res);
		if (res.verdict != answers[i].want ||
		    strcmp(res.reason, answers[i].reason) != 0 ||
		    res.retry_after_ms != answers[i].want_retry_ms)
			fail_msg("row %zu (%ld %s): verdict %s reason %s "
			    "retry %lld", i, answers[i].status,
			    answers[i].reason,
			    provider_verdict_name(res.verdict), res.reason,
			    (long long)res.retry_after_ms);
	}
}

/* A large body is not parsed: the reason is the status. */
static void
test_large_answer(void **state)
{
	struct provider_result res;
	char *body = malloc(8192);

	(void)state;
	memset(body, ' ', 8192);
	memcpy(body, "{\"reason\":\"BadDeviceToken\"}", 27);
	classify(webpush_classify, 400, body, 8192, 0, &res);
	assert_int_equal(res.verdict, VERDICT_CONFIG);
	assert_string_equal(res.reason, "400");
	free(body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ttl_port_and_insecure,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup,
		    teardown),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_large_answer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
