/*
 * Web Push requests and answers; see webpush.h and docs/push-providers.md §3.
 * The encryption is webpush_crypto.c's and the VAPID header vapid.c's;
 * this file puts a request together and reads an answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "addr_policy.h"
#include "webpush.h"
#include "webpush_crypto.h"
#include "xmalloc.h"

/* Error bodies worth parsing are small JSON objects. */
#define WEBPUSH_ANSWER_PARSE_MAX_BYTES	4096
/* Mozilla autopush: "invalid URL endpoint" (the subscription part of
 * the URL does not decode): that endpoint can never work. */
#define WEBPUSH_AUTOPUSH_ERRNO_BAD_ENDPOINT	102
/* autopush's errnos are three digits; others are not labelled. */
#define WEBPUSH_ERRNO_MIN	100
#define WEBPUSH_ERRNO_MAX	999
#define WEBPUSH_STATUS_TOO_MANY	429

/* An origin that asked us to wait (429, or 5xx with Retry-After). */
struct webpush_pause {
	char			 origin[VAPID_AUDIENCE_MAX_BYTES];
	int64_t			 until_ms;	/* monotonic */
};

struct webpush {
	struct webpush_config	 cfg;
	struct webpush_pause	 pauses[WEBPUSH_ORIGIN_PAUSES];
	size_t			 pause_next;	/* the oldest, replaced next */
};

/* Reasons of APNs-style JSON answers ({"reason": ...}, as Apple's web
 * push service sends) kept as metric details; any other string is
 * replaced by the status. Only BadDeviceToken changes a verdict. */
static const char *const webpush_known_reasons[] = {
	"BadDeviceToken", "Unregistered", "ExpiredToken", "BadJwtToken",
	"ExpiredJwtToken", "BadWebPushTopic", "BadExpirationDate",
	"BadPriority", "BadMessageId", "Forbidden", "PayloadTooLarge",
	"TooManyRequests", "InternalServerError", "ServiceUnavailable", NULL
};

struct webpush *
webpush_new(const struct webpush_config *cfg)
{
	struct webpush *w = xcalloc(1, sizeof(*w));

	w->cfg = *cfg;
	if (w->cfg.ttl_s <= 0)
		w->cfg.ttl_s = WEBPUSH_TTL_DEFAULT_S;
	return w;
}

void
webpush_free(struct webpush *w)
{
	free(w);
}

bool
webpush_token_insecure(const struct token *t)
{
	return t->kind == TOKEN_WEBPUSH && t->webpush.insecure;
}

int
webpush_origin(const struct token *t, char out[VAPID_AUDIENCE_MAX_BYTES],
    char err[ERR_LEN])
{
	if (t->kind != TOKEN_WEBPUSH) {
		err_set(err, "webpush: a %s token", token_kind_name(t->kind));
		return -1;
	}
	return vapid_audience(!t->webpush.insecure, t->webpush.host,
	    t->webpush.host_len, t->webpush.port, out, err);
}

int
webpush_build(struct webpush *w, enum push_kind kind, const struct token *t,
    int64_t now_ms, struct provider_request *out, char err[ERR_LEN])
{
	char aud[VAPID_AUDIENCE_MAX_BYTES];
	const char *authorization;
	uint8_t *body;
	size_t body_len;

	memset(out, 0, sizeof(*out));
	if (kind != PUSH_VISIBLE) {
		err_set(err, "webpush: heartbeats are for APNs tokens only");
		return -1;
	}
	if (webpush_origin(t, aud, err) < 0)
		return -1;
	if ((authorization = vapid_authorization(w->cfg.vapid, aud, now_ms,
	    err)) == NULL)
		return -1;
	if (webpush_crypto_encrypt(t->webpush.ua_public, t->webpush.auth,
	    WEBPUSH_PAYLOAD, strlen(WEBPUSH_PAYLOAD), &body, &body_len,
	    err) < 0)
		return -1;
	out->url = xmemdup0(t->device, t->device_len);
	provider_request_add_header(out, "Content-Encoding: aes128gcm");
	provider_request_add_header(out, "Content-Type: "
	    "application/octet-stream");
	provider_request_add_header(out, "TTL: %ld", w->cfg.ttl_s);
	/* A new-mail wake-up: UnifiedPush distributors hold back lower
	 * urgencies on battery (RFC 8030 §5.3). */
	provider_request_add_header(out, "Urgency: high");
	provider_request_add_header(out, "Authorization: %s", authorization);
	out->body = (char *)body;
	out->body_len = body_len;
	return 0;
}

static bool
webpush_reason_known(const char *s)
{
	for (const char *const *r = webpush_known_reasons; *r != NULL; r++)
		if (strcmp(s, *r) == 0)
			return true;
	return false;
}

/* The known "reason" or the autopush "errno" of a JSON answer into out
 * ("" if neither); *errno_out the errno, or 0. */
static void
webpush_answer_reason(const char *body, size_t len, char *out,
    size_t outlen, long *errno_out)
{
	json_error_t jerr;
	json_t *root, *v;

	out[0] = '\0';
	*errno_out = 0;
	if (body == NULL || len == 0 || len > WEBPUSH_ANSWER_PARSE_MAX_BYTES ||
	    (root = json_loadb(body, len, 0, &jerr)) == NULL)
		return;
	v = json_object_get(root, "reason");
	if (json_is_string(v) && webpush_reason_known(json_string_value(v)))
		snprintf(out, outlen, "%s", json_string_value(v));
	v = json_object_get(root, "errno");
	if (out[0] == '\0' && json_is_integer(v) &&
	    json_integer_value(v) >= WEBPUSH_ERRNO_MIN &&
	    json_integer_value(v) <= WEBPUSH_ERRNO_MAX) {
		*errno_out = (long)json_integer_value(v);
		snprintf(out, outlen, "errno-%ld", *errno_out);
	}
	json_decref(root);
}

void
webpush_classify(const struct provider_answer *a, struct provider_result *out)
{
	long status = a->status, autopush_errno;
	int64_t retry_after_ms = a->retry_after_ms;

	memset(out, 0, sizeof(*out));
	webpush_answer_reason(a->body, a->len, out->reason,
	    sizeof(out->reason), &autopush_errno);
	if (out->reason[0] == '\0')
		snprintf(out->reason, sizeof(out->reason), "%ld", status);
	if (retry_after_ms < 0)
		retry_after_ms = 0;
	if (retry_after_ms > WEBPUSH_RETRY_AFTER_MAX_MS)
		retry_after_ms = WEBPUSH_RETRY_AFTER_MAX_MS;

	if (status >= 200 && status <= 299)
		out->verdict = VERDICT_OK;
	else if (status == 404 || status == 410)
		out->verdict = VERDICT_GONE;
	else if (status == 400 && (strcmp(out->reason, "BadDeviceToken") ==
	    0 || autopush_errno == WEBPUSH_AUTOPUSH_ERRNO_BAD_ENDPOINT))
		out->verdict = VERDICT_GONE;
	else if (status == 400 || status == 401 || status == 403 ||
	    status == 413)
		out->verdict = VERDICT_CONFIG;
	else if (status == WEBPUSH_STATUS_TOO_MANY ||
	    (status >= 500 && status <= 599 && retry_after_ms > 0)) {
		out->verdict = VERDICT_PAUSE;
		out->retry_after_ms = retry_after_ms;
	} else
		out->verdict = VERDICT_TEMPORARY;	/* 3xx, 5xx, other 4xx,
							 * no answer */
}

/* ---- the provider's table (provider.h) ------------------------------- */

static int
webpush_op_new(const void *settings, struct provider **out,
    char err[ERR_LEN])
{
	const struct webpush_config *cfg = settings;

	(void)err;
	*out = cfg->vapid != NULL ? (struct provider *)webpush_new(cfg) : NULL;
	return 0;
}

static void
webpush_op_free(struct provider *p)
{
	webpush_free((struct webpush *)p);
}

/* Endpoints are untrusted: https only (no redirects, no proxy: httpc). */
static void
webpush_op_transport_config(const struct provider *p,
    struct transport_config *tc)
{
	const struct webpush *w = (const struct webpush *)p;

	if (!w->cfg.allow_private)
		tc->http.protocols = "https";
}

/* The SSRF rule on every address the transport is about to connect to,
 * after DNS: a name resolving to 127.0.0.1 is as bad as the literal. */
static bool
webpush_op_allow_address(const struct provider *p, const struct sockaddr *sa,
    unsigned int len, const char **why)
{
	const struct webpush *w = (const struct webpush *)p;
	enum addr_class cls;

	if (w->cfg.allow_private)
		return true;
	cls = addr_policy_classify(sa, (socklen_t)len);
	*why = addr_policy_class_name(cls);
	return addr_policy_is_public(cls);
}

/* The endpoint's host is a literal non-public address: it can never be
 * sent to, so it is refused before any lookup. */
static bool
webpush_literal_refused(const struct token *t)
{
	char host[TOKEN_WEBPUSH_HOST_MAX_BYTES + 1];
	const char *h = t->webpush.host;
	size_t n = t->webpush.host_len;
	enum addr_class cls;

	if (n >= 2 && h[0] == '[') {
		h++;
		n -= 2;
	}
	if (n >= sizeof(host))
		return true;
	memcpy(host, h, n);
	host[n] = '\0';
	cls = addr_policy_classify_text(host);
	return cls != ADDR_INVALID && !addr_policy_is_public(cls);
}

static struct webpush_pause *
webpush_pause_find(struct webpush *w, const char *origin)
{
	size_t i;

	for (i = 0; i < WEBPUSH_ORIGIN_PAUSES; i++)
		if (strcmp(w->pauses[i].origin, origin) == 0)
			return &w->pauses[i];
	return NULL;
}

static bool
webpush_origin_paused(struct webpush *w, const struct token *t,
    int64_t mono_ms)
{
	char origin[VAPID_AUDIENCE_MAX_BYTES], err[ERR_LEN];
	struct webpush_pause *wp;

	if (webpush_origin(t, origin, err) < 0)
		return false;
	return (wp = webpush_pause_find(w, origin)) != NULL &&
	    mono_ms < wp->until_ms;
}

static void
webpush_op_pause_named(struct provider *p, const char *origin, int64_t ms,
    int64_t mono_ms)
{
	struct webpush *w = (struct webpush *)p;
	struct webpush_pause *wp;

	if (strlen(origin) >= sizeof(wp->origin))
		return;
	if ((wp = webpush_pause_find(w, origin)) == NULL) {
		wp = &w->pauses[w->pause_next];
		w->pause_next = (w->pause_next + 1) % WEBPUSH_ORIGIN_PAUSES;
		snprintf(wp->origin, sizeof(wp->origin), "%s", origin);
		wp->until_ms = 0;
	}
	/* A shorter Retry-After does not end a longer pause early. */
	if (wp->until_ms < mono_ms + ms)
		wp->until_ms = mono_ms + ms;
}

static int
webpush_op_pause_name(const struct provider *p, const struct token *t,
    char *out, size_t len)
{
	char origin[VAPID_AUDIENCE_MAX_BYTES], err[ERR_LEN];

	(void)p;
	if (webpush_origin(t, origin, err) < 0 || strlen(origin) >= len)
		return -1;
	memcpy(out, origin, strlen(origin) + 1);
	return 0;
}

static void
webpush_op_pause(struct provider *p, const struct token *t, int64_t ms,
    int64_t mono_ms)
{
	char origin[VAPID_AUDIENCE_MAX_BYTES];

	if (webpush_op_pause_name(p, t, origin, sizeof(origin)) == 0)
		webpush_op_pause_named(p, origin, ms, mono_ms);
}

static enum provider_build
webpush_op_build(struct provider *p, struct provider_push *push,
    char err[ERR_LEN])
{
	struct webpush *w = (struct webpush *)p;
	const struct token *t = push->token;

	if (!w->cfg.allow_private && (t->webpush.insecure ||
	    webpush_literal_refused(t))) {
		provider_result_set(&push->res, VERDICT_GONE,
		    t->webpush.insecure ? "insecure_endpoint" :
		    "address_refused");
		return PROVIDER_DECIDED;
	}
	/* Pushes to a paused origin get 500 at once. */
	if (webpush_origin_paused(w, t, push->mono_ms)) {
		provider_result_set(&push->res, VERDICT_PAUSE, "paused");
		return PROVIDER_DECIDED;
	}
	return webpush_build(w, push->kind, t, push->now_ms, &push->req,
	    err) == 0 ? PROVIDER_SEND : PROVIDER_FAILED;
}

const struct provider_ops webpush_ops = {
	.name = "webpush",
	.label = "WebPush",
	.token_kinds = PROVIDER_TOKEN(TOKEN_WEBPUSH),
	.heartbeats = false,
	/* Push services are shared by everybody: stay modest. */
	.default_rate = 1000,
	.transport = TRANSPORT_HTTP,
	.new = webpush_op_new,
	.free = webpush_op_free,
	.transport_config = webpush_op_transport_config,
	.build = webpush_op_build,
	.classify = webpush_classify,
	.pause = webpush_op_pause,
	.pause_name = webpush_op_pause_name,
	.pause_named = webpush_op_pause_named,
	.allow_address = webpush_op_allow_address,
};
