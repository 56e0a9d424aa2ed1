/*
 * Unit tests of proxyd/providers/ubports/ubports.c: the app id check, the exact
 * request (the Rust service's body with our expire_on, read back with
 * jansson as the push server reads it), refusals that never quote the
 * token, and the server's answer table (labels and statuses of
 * ubports/ubuntu-push server/api/handlers.go).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "ubports.h"
#include "provider_test.h"

/* base64("deltatouch.lotharketterer_deltatouch::3f2a9c1be0d44c7a") */
#define UBTOK	"ZGVsdGF0b3VjaC5sb3RoYXJrZXR0ZXJlcl9kZWx0YXRvdWNoOjozZjJhOW" \
		"MxYmUwZDQ0Yzdh"
#define T0	1700000000000LL		/* 2023-11-14T22:13:20Z */

static void
test_appid(void **state)
{
	static const char *const bad[] = { "", "deltatouch", "_deltatouch",
	    "deltatouch_", "delta touch_x", "delta\"touch_x", "delta/touch_x",
	    "d\xc3\xa9lta_x", NULL };
	struct ubports_config cfg = { 0 };
	struct ubports *u;
	char err[ERR_LEN], longid[UBPORTS_APPID_MAX_BYTES + 2];

	(void)state;
	u = ubports_new(&cfg, err);
	assert_non_null(u);
	ubports_free(u);
	cfg.appid = "com.example+beta.app_hook-1.2";
	u = ubports_new(&cfg, err);
	assert_non_null(u);
	ubports_free(u);
	ubports_free(NULL);
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	longid[1] = '_';
	cfg.appid = longid;
	assert_null(ubports_new(&cfg, err));
	assert_string_equal(err, "ubports: app id of 257 bytes is not "
	    "<package>_<app>");
	longid[UBPORTS_APPID_MAX_BYTES] = '\0';
	assert_non_null(u = ubports_new(&cfg, err));
	ubports_free(u);
	for (size_t i = 0; bad[i] != NULL; i++) {
		cfg.appid = bad[i];
		if (ubports_new(&cfg, err) != NULL)
			fail_msg("app id \"%s\" accepted", bad[i]);
	}
}

static void
test_request(void **state)
{
	struct ubports_config cfg = { 0 };
	struct ubports *u = ubports_new(&cfg, NULL);
	struct provider_request r;
	struct token t;
	char err[ERR_LEN];
	json_error_t jerr;
	json_t *root;
	const char *expire, *appid, *tok, *tag, *summary, *body, *sent_by;
	int popup, persist, sound, duration, repeat, pattern0;

	(void)state;
	parse_token("ubports-" UBTOK, &t);
	assert_int_equal(ubports_build(u, PUSH_VISIBLE, &t, T0 + 999, &r, err),
	    0);
	assert_string_equal(r.url, "https://push.ubports.com/notify");
	assert_string_equal(header(&r, "content-type"), "application/json");
	assert_int_equal(r.nheaders, 1);
	/* The Rust service's body, expire_on now + 7 days in UTC. */
	assert_string_equal(r.body, "{\"expire_on\":\"2023-11-21T22:13:20Z\","
	    "\"appid\":\"deltatouch.lotharketterer_deltatouch\",\"token\":\""
	    UBTOK "\",\"data\":{\"notification\":{\"tag\":"
	    "\"sent_by_chatmail_server\",\"card\":{\"popup\":true,\"persist\":"
	    "true,\"summary\":\"New message\",\"body\":\"You have a new "
	    "message\"},\"sound\":true,\"vibrate\":{\"pattern\":[200],"
	    "\"duration\":200,\"repeat\":1} },\"sent-by\":\"Chatmail Server\"} }");
	assert_int_equal(r.body_len, strlen(r.body));
	/* What the server reads in it (Unicast: appid, token, expire_on,
	 * data), nothing else at the top. */
	root = json_loadb(r.body, r.body_len, JSON_REJECT_DUPLICATES, &jerr);
	assert_non_null(root);
	assert_int_equal(json_unpack_ex(root, &jerr, JSON_STRICT,
	    "{s:s,s:s,s:s,s:{s:{s:s,s:{s:b,s:b,s:s,s:s},s:b,s:{s:[i],s:i,s:i}},"
	    "s:s}}", "expire_on", &expire, "appid", &appid, "token", &tok,
	    "data", "notification", "tag", &tag, "card", "popup", &popup,
	    "persist", &persist, "summary", &summary, "body", &body, "sound",
	    &sound, "vibrate", "pattern", &pattern0, "duration", &duration,
	    "repeat", &repeat, "sent-by", &sent_by), 0);
	assert_string_equal(expire, "2023-11-21T22:13:20Z");
	assert_string_equal(appid, UBPORTS_APPID);
	assert_string_equal(tok, UBTOK);
	assert_string_equal(tag, "sent_by_chatmail_server");
	assert_true(popup && persist && sound);
	assert_string_equal(summary, "New message");
	assert_string_equal(body, "You have a new message");
	assert_int_equal(pattern0, 200);
	assert_int_equal(duration, 200);
	assert_int_equal(repeat, 1);
	assert_string_equal(sent_by, "Chatmail Server");
	assert_true(r.body_len <= UBPORTS_BODY_MAX_BYTES);
	json_decref(root);
	provider_request_clear(&r);
	ubports_free(u);

	/* --ubports-url and --ubports-appid. */
	cfg.url = "https://127.0.0.1:8443/notify";
	cfg.appid = "chat.example_app";
	u = ubports_new(&cfg, err);
	assert_int_equal(ubports_build(u, PUSH_VISIBLE, &t, T0, &r, err), 0);
	assert_string_equal(r.url, "https://127.0.0.1:8443/notify");
	assert_non_null(strstr(r.body, "\"appid\":\"chat.example_app\""));
	provider_request_clear(&r);
	ubports_free(u);
}

static void
test_refusals(void **state)
{
	struct ubports_config cfg = { 0 };
	struct ubports *u = ubports_new(&cfg, NULL);
	struct provider_request r;
	struct token t;
	char err[ERR_LEN];

	(void)state;
	parse_token("ubports-" UBTOK, &t);
	assert_int_equal(ubports_build(u, PUSH_HEARTBEAT, &t, T0, &r, err), -1);
	assert_string_equal(err, "ubports: heartbeats are for APNs tokens only");
	assert_null(r.url);
	t.kind = TOKEN_FCM;
	assert_int_equal(ubports_build(u, PUSH_VISIBLE, &t, T0, &r, err), -1);
	t.kind = TOKEN_UBPORTS;
	t.device_len -= 4;	/* "...Yzdh" -> ends inside: still base64 */
	assert_int_equal(ubports_build(u, PUSH_VISIBLE, &t, T0, &r, err), 0);
	provider_request_clear(&r);
	t.device_len += 3;	/* not a multiple of 4 */
	assert_int_equal(ubports_build(u, PUSH_VISIBLE, &t, T0, &r, err), -1);
	assert_string_equal(err, "ubports: not a well-formed UBports token "
	    "(71 bytes)");
	t.device = "abcdefgh:jklmnop";	/* ':' is not base64 */
	t.device_len = strlen(t.device);
	assert_int_equal(ubports_build(u, PUSH_VISIBLE, &t, T0, &r, err), -1);
	assert_null(strstr(err, "abcdefgh"));
	assert_null(r.url);
	ubports_free(u);
}

/* The server's answers (handlers.go: RespondError bodies). */
#define ERRB(label, msg) "{\"error\":\"" label "\",\"message\":\"" msg "\"}"

static const struct {
	long			 status;
	const char		*body;
	enum provider_verdict	 want;
	const char		*reason;
} answers[] = {
	{ 200, "{\"ok\":true}", VERDICT_OK, "200" },
	{ 400, ERRB("unknown-token", "Unknown token"), VERDICT_GONE,
	    "unknown-token" },
	{ 401, ERRB("unauthorized", "Unauthorized"), VERDICT_GONE,
	    "unauthorized" },
	{ 413, "{\"error\":\"too-many-pending\",\"message\":\"Too many pending "
	    "notifications for this application\",\"extra\":{\"notification\":"
	    "{\"tag\":\"x\"}}}", VERDICT_TEMPORARY, "too-many-pending" },
	{ 413, ERRB("invalid-request", "Request body too large"),
	    VERDICT_CONFIG, "invalid-request" },
	{ 400, ERRB("invalid-request", "Invalid expiration date"),
	    VERDICT_CONFIG, "invalid-request" },
	{ 400, ERRB("invalid-request", "Malformed JSON Object"),
	    VERDICT_CONFIG, "invalid-request" },
	{ 400, ERRB("invalid-request", "Missing id field"), VERDICT_CONFIG,
	    "invalid-request" },
	{ 400, ERRB("io-error", "Could not read request body"),
	    VERDICT_TEMPORARY, "io-error" },
	{ 405, ERRB("invalid-request", "Wrong request method, should be POST"),
	    VERDICT_CONFIG, "invalid-request" },
	{ 411, ERRB("invalid-request", "A Content-Length must be provided"),
	    VERDICT_CONFIG, "invalid-request" },
	{ 415, ERRB("invalid-request", "Wrong content type, should be "
	    "application/json"), VERDICT_CONFIG, "invalid-request" },
	{ 500, "{\"error\":\"internal\",\"message\":\"INTERNAL SERVER ERROR\"}",
	    VERDICT_TEMPORARY, "internal" },
	{ 503, ERRB("unavailable", "Could not store notification"),
	    VERDICT_PAUSE, "unavailable" },
	{ 429, "", VERDICT_PAUSE, "429" },
	{ 502, "<html>Bad Gateway</html>", VERDICT_TEMPORARY, "502" },
	{ 0, NULL, VERDICT_TEMPORARY, "0" },
	/* A label-less or unexpected answer is never GONE. */
	{ 400, "", VERDICT_CONFIG, "400" },
	{ 401, "<html>401 Authorization Required</html>", VERDICT_CONFIG,
	    "401" },
	{ 404, "404 page not found", VERDICT_CONFIG, "404" },
	{ 410, "", VERDICT_CONFIG, "410" },
	{ 400, ERRB("unknown-token", "x") "junk", VERDICT_CONFIG, "400" },
	{ 400, "{\"error\":\"Unknown-Token\"}", VERDICT_CONFIG, "nknown-oken" },
	{ 413, "{\"error\":\"too-many-pending\\n\"}", VERDICT_CONFIG,
	    "too-many-pending" },	/* sanitised, not trusted */
	{ 400, "{\"error\":7}", VERDICT_CONFIG, "400" },
};

static void
test_answers(void **state)
{
	struct provider_result res;

	(void)state;
	for (size_t i = 0; i < sizeof(answers) / sizeof(*answers); i++) {
		classify(ubports_classify, answers[i].status,
		    answers[i].body, answers[i].body ?
		    strlen(answers[i].body) : 0, 0, &res);
		if (res.verdict != answers[i].want ||
		    strcmp(res.reason, answers[i].reason) != 0)
			fail_msg("row %zu (%ld %s): verdict %s reason %s", i,
			    answers[i].status, answers[i].reason,
			    provider_verdict_name(res.verdict), res.reason);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_appid),
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
