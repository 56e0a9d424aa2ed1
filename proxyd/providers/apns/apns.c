/*
 * APNs requests and answers; see apns.h and docs/push-providers.md §1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "apns.h"
#include "jwt.h"
#include "p12.h"
#include "token.h"
#include "xmalloc.h"

/* Apple's answers are small JSON objects. */
#define APNS_ANSWER_MAX_BYTES	4096
#define APNS_REASON_CHARS \
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/* The visible push, byte for byte what the Rust service sends (apns-h2's
 * key order), so clients see no difference. */
static const char apns_visible_payload[] =
    "{\"aps\":{\"alert\":{\"title\":\"New messages\","
    "\"body\":\"You have new messages\","
    "\"title-loc-key\":\"new_messages\","
    "\"loc-key\":\"new_messages_body\"},"
    "\"sound\":\"default\",\"mutable-content\":1}}";
/* Silent push: content-available only (Apple's rule for background). */
static const char apns_heartbeat_payload[] =
    "{\"aps\":{\"content-available\":1}}";

struct apns {
	struct apns_config	 cfg;
	char			*jwt;		/* a secret */
	int64_t			 jwt_issued_ms;
};

struct apns *
apns_new(const struct apns_config *cfg)
{
	struct apns *a = xcalloc(1, sizeof(*a));

	a->cfg = *cfg;
	if (a->cfg.production_url == NULL)
		a->cfg.production_url = APNS_PRODUCTION_URL;
	if (a->cfg.sandbox_url == NULL)
		a->cfg.sandbox_url = APNS_SANDBOX_URL;
	return a;
}

static void
apns_jwt_drop(struct apns *a)
{
	if (a->jwt != NULL) {
		OPENSSL_cleanse(a->jwt, strlen(a->jwt));
		free(a->jwt);
		a->jwt = NULL;
	}
}

void
apns_free(struct apns *a)
{
	if (a == NULL)
		return;
	apns_jwt_drop(a);
	free(a);
}

static int
apns_jwt_make(struct apns *a, int64_t now_ms, char err[ERR_LEN])
{
	char header[96], claims[96], *jwt;

	snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"kid\":\"%s\"}",
	    a->cfg.key_id);
	snprintf(claims, sizeof(claims), "{\"iss\":\"%s\",\"iat\":%lld}",
	    a->cfg.team_id, (long long)(now_ms / 1000));
	if ((jwt = jwt_sign(JWT_ES256, a->cfg.key, header, claims, err)) ==
	    NULL)
		return -1;
	apns_jwt_drop(a);
	a->jwt = jwt;
	a->jwt_issued_ms = now_ms;
	return 0;
}

bool
apns_jwt_expired(struct apns *a, int64_t now_ms)
{
	char err[ERR_LEN];

	if (a->cfg.key == NULL ||
	    now_ms - a->jwt_issued_ms < APNS_JWT_MIN_AGE_MS)
		return false;
	return apns_jwt_make(a, now_ms, err) == 0;
}

int64_t
apns_jwt_issued_at(const struct apns *a)
{
	return a->jwt_issued_ms;
}

int
apns_build(struct apns *a, enum push_kind kind, const char *device,
    bool sandbox, int64_t now_ms, struct provider_request *out,
    char err[ERR_LEN])
{
	const char *payload = kind == PUSH_VISIBLE ? apns_visible_payload :
	    apns_heartbeat_payload;

	memset(out, 0, sizeof(*out));
	if (a->cfg.key != NULL && (a->jwt == NULL ||
	    now_ms - a->jwt_issued_ms >= APNS_JWT_RENEW_MS) &&
	    apns_jwt_make(a, now_ms, err) < 0)
		return -1;
	out->url = xasprintf("%s/3/device/%s", sandbox ? a->cfg.sandbox_url :
	    a->cfg.production_url, device);
	if (kind == PUSH_VISIBLE) {
		provider_request_add_header(out, "apns-push-type: alert");
		provider_request_add_header(out, "apns-priority: 10");
		provider_request_add_header(out,
		    "apns-collapse-id: new_messages");
	} else {
		/* The Rust service omits the push type; Apple requires
		 * "background" with priority 5 for silent pushes. */
		provider_request_add_header(out, "apns-push-type: background");
		provider_request_add_header(out, "apns-priority: 5");
	}
	if (a->cfg.topic != NULL)
		provider_request_add_header(out, "apns-topic: %s",
		    a->cfg.topic);
	if (a->jwt != NULL)
		provider_request_add_header(out, "authorization: bearer %s",
		    a->jwt);
	provider_request_add_header(out, "content-type: application/json");
	out->body = xstrdup(payload);
	out->body_len = strlen(payload);
	return 0;
}

static int
apns_reason_is(const char *reason, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(reason, *list) == 0)
			return 1;
	return 0;
}

void
apns_classify(const struct provider_answer *a, struct provider_result *out)
{
	static const char *const gone_400[] = { "BadDeviceToken",
	    "DeviceTokenNotForTopic", NULL };
	static const char *const renew_403[] = { "ExpiredProviderToken",
	    NULL };
	static const char *const reconnect_403[] = { "UnrelatedKeyIdInToken",
	    NULL };

	long status = a->status;
	const char *known;

	memset(out, 0, sizeof(*out));
	/* {"reason": "..."}, letters and digits only. */
	known = provider_json_reason(a->body, a->len, APNS_ANSWER_MAX_BYTES,
	    "reason", APNS_REASON_CHARS, out->reason, sizeof(out->reason)) ?
	    out->reason : "";
	if (out->reason[0] == '\0')
		snprintf(out->reason, sizeof(out->reason), "%ld", status);

	if (status == 200)
		out->verdict = VERDICT_OK;
	else if (status == 410)
		out->verdict = VERDICT_GONE;	/* Unregistered, ExpiredToken */
	else if (status == 400 && apns_reason_is(known, gone_400))
		out->verdict = VERDICT_GONE;
	else if (status == 400 && strcmp(known, "IdleTimeout") == 0)
		out->verdict = VERDICT_TEMPORARY;
	else if (status == 403 && apns_reason_is(known, renew_403))
		out->verdict = VERDICT_RENEW_AUTH;
	else if (status == 403 && apns_reason_is(known, reconnect_403))
		out->verdict = VERDICT_TEMPORARY;
	else if (status == 429 &&
	    strcmp(known, "TooManyProviderTokenUpdates") == 0)
		out->verdict = VERDICT_CONFIG;
	else if (status == 429)
		out->verdict = VERDICT_TEMPORARY;	/* one device hammered */
	else if (status >= 400 && status < 500)
		/* Bad certificate, environment (BadEnvironmentKeyIdInToken,
		 * also spelled BadEnvironmentKeyInToken), topic, our own
		 * request: never make every relay delete a valid token. */
		out->verdict = VERDICT_CONFIG;
	else
		out->verdict = VERDICT_TEMPORARY;	/* 5xx, no answer */
}

/* ---- the provider's table (provider.h) ------------------------------- */

static int
apns_op_new(const void *settings, struct provider **out, char err[ERR_LEN])
{
	const struct apns_config *cfg = settings;

	(void)err;
	*out = cfg->key != NULL || cfg->cert != NULL ?
	    (struct provider *)apns_new(cfg) : NULL;
	return 0;
}

static void
apns_op_free(struct provider *p)
{
	apns_free((struct apns *)p);
}

/* HTTP/2, with the certificate when there is one. */
static void
apns_op_transport_config(const struct provider *p,
    struct transport_config *tc)
{
	const struct apns *a = (const struct apns *)p;

	if (a->cfg.streams > 0)
		tc->h2.max_streams = a->cfg.streams;
	if (a->cfg.cert != NULL) {
		tc->h2.client_key = a->cfg.cert->key;
		tc->h2.client_cert = a->cfg.cert->cert;
		tc->h2.client_chain = a->cfg.cert->chain;
	}
}

static enum provider_build
apns_op_build(struct provider *p, struct provider_push *push,
    char err[ERR_LEN])
{
	struct apns *a = (struct apns *)p;
	const struct token *t = push->token;
	char device[TOKEN_APNS_MAX_HEX + 1];	/* a secret */
	int rv;

	if (t->device_len >= sizeof(device)) {
		err_set(err, "apns: a device token of %zu bytes",
		    t->device_len);
		return PROVIDER_FAILED;
	}
	memcpy(device, t->device, t->device_len);
	device[t->device_len] = '\0';
	rv = apns_build(a, push->kind, device, t->kind == TOKEN_APNS_SANDBOX,
	    push->now_ms, &push->req, err);
	OPENSSL_cleanse(device, sizeof(device));
	push->credential = (uint64_t)a->jwt_issued_ms;
	return rv == 0 ? PROVIDER_SEND : PROVIDER_FAILED;
}

/* ExpiredProviderToken: retry once if another answer replaced the JWT
 * the request carried already, or if it may be replaced now (Apple
 * refuses a new one within 20 minutes of the last). */
static bool
apns_op_renew_auth(struct provider *p, uint64_t credential, int64_t now_ms)
{
	struct apns *a = (struct apns *)p;

	return (uint64_t)a->jwt_issued_ms > credential ||
	    apns_jwt_expired(a, now_ms);
}

const struct provider_ops apns_ops = {
	.name = "apns",
	.label = "APNS",
	.token_kinds = PROVIDER_TOKEN(TOKEN_APNS) |
	    PROVIDER_TOKEN(TOKEN_APNS_SANDBOX),
	.heartbeats = true,
	.off_reason = "no_certificate",
	.default_rate = 0,		/* Apple publishes no limit */
	.transport = TRANSPORT_H2,
	.new = apns_op_new,
	.free = apns_op_free,
	.transport_config = apns_op_transport_config,
	.build = apns_op_build,
	.classify = apns_classify,
	.renew_auth = apns_op_renew_auth,
};
