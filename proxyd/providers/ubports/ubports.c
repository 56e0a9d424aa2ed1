/*
 * UBports push requests and answers; see ubports.h.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ubports.h"
#include "xmalloc.h"

/* The Rust service's body (notifiers src/server.rs), byte for byte but
 * for expire_on's spelling; the spaces before two closing braces are its
 * format string's. Printed rather than built with jansson, whose tree
 * would hold copies of the device token that are freed without being
 * wiped (the request's own copy is wiped by provider_request_clear). */
#define UBPORTS_BODY_FMT \
	"{\"expire_on\":\"%s\",\"appid\":\"%s\",\"token\":\"%.*s\"," \
	"\"data\":{\"notification\":{\"tag\":\"sent_by_chatmail_server\"," \
	"\"card\":{\"popup\":true,\"persist\":true," \
	"\"summary\":\"New message\",\"body\":\"You have a new message\"}," \
	"\"sound\":true,\"vibrate\":{\"pattern\":[200],\"duration\":200," \
	"\"repeat\":1} },\"sent-by\":\"Chatmail Server\"} }"
#define UBPORTS_TIME_LEN	sizeof("2026-01-08T12:00:00Z")

struct ubports {
	char	*url;
	char	*appid;
};

static bool
ubports_is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9');
}

/* "<package>_<app>" (click package names: letters, digits, '.', '+',
 * '-'); it goes into the JSON unescaped. */
static bool
ubports_appid_ok(const char *s)
{
	size_t n = strlen(s);
	const char *us = strchr(s, '_');

	if (n == 0 || n > UBPORTS_APPID_MAX_BYTES || us == NULL || us == s ||
	    s[n - 1] == '_')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!ubports_is_alnum(s[i]) && strchr("._+-", s[i]) == NULL)
			return false;
	return true;
}

struct ubports *
ubports_new(const struct ubports_config *cfg, char err[ERR_LEN])
{
	const char *appid = cfg->appid != NULL ? cfg->appid : UBPORTS_APPID;
	struct ubports *u;

	if (!ubports_appid_ok(appid)) {
		err_set(err, "ubports: app id of %zu bytes is not "
		    "<package>_<app>", strlen(appid));
		return NULL;
	}
	u = xcalloc(1, sizeof(*u));
	u->url = xstrdup(cfg->url != NULL ? cfg->url : UBPORTS_URL);
	u->appid = xstrdup(appid);
	return u;
}

void
ubports_free(struct ubports *u)
{
	if (u == NULL)
		return;
	free(u->url);
	free(u->appid);
	free(u);
}

/* Standard padded base64 of a bounded length, as token.c checks it:
 * again here because the bytes go into the JSON unescaped. */
static bool
ubports_device_ok(const char *s, size_t n)
{
	size_t pad = 0;

	if (n < TOKEN_UBPORTS_MIN_BYTES || n > TOKEN_UBPORTS_MAX_BYTES ||
	    n % 4 != 0)
		return false;
	while (pad < 2 && s[n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++)
		if (!ubports_is_alnum(s[i]) && s[i] != '+' && s[i] != '/')
			return false;
	return true;
}

int
ubports_build(struct ubports *u, enum push_kind kind, const struct token *t,
    int64_t now_ms, struct provider_request *out, char err[ERR_LEN])
{
	char expire[UBPORTS_TIME_LEN];
	time_t when = (time_t)((now_ms + UBPORTS_EXPIRE_MS) / 1000);
	struct tm tm;

	memset(out, 0, sizeof(*out));
	if (kind != PUSH_VISIBLE) {
		err_set(err, "ubports: heartbeats are for APNs tokens only");
		return -1;
	}
	if (t->kind != TOKEN_UBPORTS ||
	    !ubports_device_ok(t->device, t->device_len)) {
		err_set(err, "ubports: not a well-formed UBports token (%zu "
		    "bytes)", t->device_len);
		return -1;
	}
	if (gmtime_r(&when, &tm) == NULL ||
	    strftime(expire, sizeof(expire), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		err_set(err, "ubports: expiry time out of range");
		return -1;
	}
	out->url = xstrdup(u->url);
	provider_request_add_header(out, "content-type: application/json");
	out->body = xasprintf(UBPORTS_BODY_FMT, expire, u->appid,
	    (int)t->device_len, t->device);
	out->body_len = strlen(out->body);
	if (out->body_len > UBPORTS_BODY_MAX_BYTES) {
		/* Cannot happen with the limits on app id and token. */
		err_set(err, "ubports: body of %zu bytes", out->body_len);
		provider_request_clear(out);
		return -1;
	}
	return 0;
}

void
ubports_classify(const struct provider_answer *a, struct provider_result *out)
{
	char clean[sizeof(out->reason)];
	long status = a->status;
	const char *label;

	memset(out, 0, sizeof(*out));
	/* {"error": label}, [a-z-] only. */
	label = provider_json_reason(a->body, a->len,
	    UBPORTS_ERROR_BODY_MAX_BYTES,
	    "error", "abcdefghijklmnopqrstuvwxyz-", clean, sizeof(clean)) ?
	    clean : "";
	if (clean[0] != '\0')
		snprintf(out->reason, sizeof(out->reason), "%s", clean);
	else
		snprintf(out->reason, sizeof(out->reason), "%ld", status);

	if (status == 200)
		out->verdict = VERDICT_OK;
	else if (status == 400 && strcmp(label, "unknown-token") == 0)
		out->verdict = VERDICT_GONE;
	else if (status == 401 && strcmp(label, "unauthorized") == 0)
		out->verdict = VERDICT_GONE;
	else if (status == 413 && strcmp(label, "too-many-pending") == 0)
		out->verdict = VERDICT_TEMPORARY;
	else if (status == 400 && strcmp(label, "io-error") == 0)
		out->verdict = VERDICT_TEMPORARY;
	else if (status == 429 || status == 503)
		out->verdict = VERDICT_PAUSE;
	else if (status >= 500 || status == 0)
		out->verdict = VERDICT_TEMPORARY;
	else
		out->verdict = VERDICT_CONFIG;
}

/* ---- the provider's table (provider.h) ------------------------------- */

static int
ubports_op_new(const void *settings, struct provider **out,
    char err[ERR_LEN])
{
	/* No credentials: always on, unless its app id cannot work. */
	return (*out = (struct provider *)ubports_new(settings, err)) !=
	    NULL ? 0 : -1;
}

static void
ubports_op_free(struct provider *p)
{
	ubports_free((struct ubports *)p);
}

static enum provider_build
ubports_op_build(struct provider *p, struct provider_push *push,
    char err[ERR_LEN])
{
	return ubports_build((struct ubports *)p, push->kind, push->token,
	    push->now_ms, &push->req, err) == 0 ? PROVIDER_SEND :
	    PROVIDER_FAILED;
}

const struct provider_ops ubports_ops = {
	.name = "ubports",
	.label = "UBports",
	.token_kinds = PROVIDER_TOKEN(TOKEN_UBPORTS),
	.heartbeats = false,
	.default_rate = 100,		/* one server for all of Ubuntu Touch */
	.transport = TRANSPORT_HTTP,
	.new = ubports_op_new,
	.free = ubports_op_free,
	.build = ubports_op_build,
	.classify = ubports_classify,
};
