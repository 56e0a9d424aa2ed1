/*
 * FCM HTTP v1 sends, the meaning of FCM's answers, and the provider that
 * sends with the cached access token and asks the engine to renew it;
 * see fcm.h and docs/push-providers.md §2.2-2.4.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "fcm.h"
#include "xmalloc.h"

/* The Rust service's body (notifiers src/server.rs), byte for byte: the
 * spaces before the closing braces are its format string's. Printed
 * rather than built with jansson, whose tree would hold copies of the
 * device token that are freed without being wiped (the request's own
 * copy is wiped by provider_request_clear). */
#define FCM_MESSAGE_FMT	"{\"message\":{\"token\":\"%.*s\",\"data\":" \
			"{\"level\":\"awesome\"},\"android\":" \
			"{\"priority\":\"high\"} } }"
#define FCM_ERROR_TYPE	"type.googleapis.com/google.firebase.fcm.v1.FcmError"
#define FCM_BAD_REQUEST_TYPE "type.googleapis.com/google.rpc.BadRequest"
/* How FCM words a malformed registration token in INVALID_ARGUMENT
 * (compared case-insensitively): "The registration token is not a valid
 * FCM registration token". */
#define FCM_TOKEN_WORDING	"registration token"
#define FCM_MESSAGE_MAX_BYTES	1024

struct fcm {
	const struct fcm_key	*key;
	char			*api_url;
	struct fcm_auth		*auth;
	/* The token endpoint refused our key (4xx), or the assertion could
	 * not be signed: pushes that waited for the renewal are CONFIG. */
	bool			 auth_refused;
};

struct fcm *
fcm_new(const struct fcm_config *cfg)
{
	struct fcm *f = xcalloc(1, sizeof(*f));

	f->key = cfg->key;
	f->api_url = xstrdup(cfg->api_url != NULL ? cfg->api_url :
	    FCM_API_URL);
	f->auth = fcm_auth_new(cfg->key, cfg->token_url);
	return f;
}

void
fcm_free(struct fcm *f)
{
	if (f == NULL)
		return;
	fcm_auth_free(f->auth);
	free(f->api_url);
	free(f);
}

/* The registration token charset notifiers enforces, as token.c does:
 * checked again because the bytes go into JSON unescaped. */
static bool
fcm_device_ok(const char *s, size_t n)
{
	if (n == 0 || n > TOKEN_FCM_MAX_BYTES)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		    s[i] == ':' || s[i] == '-'))
			return false;
	return true;
}

/* The access token goes into a header: no CR, LF or other surprises
 * (fcm_auth_parse already allows only RFC 6750 b64token). */
static bool
fcm_bearer_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > FCM_ACCESS_TOKEN_MAX_BYTES)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return true;
}

int
fcm_build(struct fcm *f, enum push_kind kind, const struct token *t,
    const char *access_token, struct provider_request *out,
    char err[ERR_LEN])
{
	memset(out, 0, sizeof(*out));
	if (kind != PUSH_VISIBLE) {
		err_set(err, "fcm: heartbeats are for APNs tokens only");
		return -1;
	}
	if (t->kind != TOKEN_FCM || !fcm_device_ok(t->device, t->device_len)) {
		err_set(err, "fcm: not a well-formed FCM token (%zu bytes)",
		    t->device_len);
		return -1;
	}
	if (access_token == NULL || !fcm_bearer_ok(access_token)) {
		err_set(err, "fcm: no usable access token");
		return -1;
	}
	out->url = xasprintf("%s/v1/projects/%s/messages:send", f->api_url,
	    f->key->project_id);
	provider_request_add_header(out, "authorization: Bearer %s",
	    access_token);
	provider_request_add_header(out, "content-type: application/json");
	out->body = xasprintf(FCM_MESSAGE_FMT, (int)t->device_len, t->device);
	out->body_len = strlen(out->body);
	return 0;
}

/* What a google.rpc.Status body says, reduced to what classification
 * needs. Strings are sanitised to [A-Z0-9_] for logs and may be ""; only
 * one that needed no sanitising may match a known value (as apns.c). */
#define FCM_CODE_CHARS	"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"

struct fcm_status {
	char	status[32];		/* "NOT_FOUND" */
	char	code[32];		/* FcmError errorCode: "UNREGISTERED" */
	bool	status_exact;
	bool	code_exact;
	bool	about_token;		/* INVALID_ARGUMENT names the token */
};

/* Whether s (at most FCM_MESSAGE_MAX_BYTES of it) contains what,
 * ASCII case-insensitively. */
static bool
fcm_mentions(const char *s, const char *what)
{
	size_t n = strnlen(s, FCM_MESSAGE_MAX_BYTES), w = strlen(what);

	for (size_t i = 0; i + w <= n; i++)
		if (strncasecmp(s + i, what, w) == 0)
			return true;
	return false;
}

/* A google.rpc.BadRequest detail whose field violation is about
 * message.token. */
static bool
fcm_bad_request_about_token(json_t *detail)
{
	json_t *fv = json_object_get(detail, "fieldViolations"), *v, *field;
	size_t i;

	if (!json_is_array(fv))
		return false;
	json_array_foreach(fv, i, v) {
		if (i >= FCM_ERROR_DETAILS_MAX)
			break;
		field = json_object_get(v, "field");
		if (json_is_string(field) &&
		    strcmp(json_string_value(field), "message.token") == 0)
			return true;
	}
	return false;
}

static void
fcm_parse_status(const char *body, size_t len, struct fcm_status *out)
{
	json_t *root, *error, *v, *details, *d, *type;
	json_error_t jerr;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (body == NULL || len == 0 || len > FCM_ERROR_BODY_MAX_BYTES ||
	    (root = json_loadb(body, len, 0, &jerr)) == NULL)
		return;
	error = json_object_get(root, "error");
	if (!json_is_object(error))
		goto out;
	v = json_object_get(error, "status");
	if (json_is_string(v))
		out->status_exact = provider_reason_copy(
		    json_string_value(v), FCM_CODE_CHARS, out->status,
		    sizeof(out->status));
	v = json_object_get(error, "message");
	if (json_is_string(v) && fcm_mentions(json_string_value(v),
	    FCM_TOKEN_WORDING))
		out->about_token = true;
	details = json_object_get(error, "details");
	if (!json_is_array(details))
		goto out;
	json_array_foreach(details, i, d) {
		if (i >= FCM_ERROR_DETAILS_MAX)
			break;
		type = json_object_get(d, "@type");
		if (!json_is_string(type))
			continue;
		v = json_object_get(d, "errorCode");
		if (strcmp(json_string_value(type), FCM_ERROR_TYPE) == 0 &&
		    json_is_string(v) && out->code[0] == '\0')
			out->code_exact = provider_reason_copy(
			    json_string_value(v), FCM_CODE_CHARS, out->code,
			    sizeof(out->code));
		else if (strcmp(json_string_value(type),
		    FCM_BAD_REQUEST_TYPE) == 0 && fcm_bad_request_about_token(d))
			out->about_token = true;
	}
out:
	json_decref(root);
}

void
fcm_classify(const struct provider_answer *a, struct provider_result *out)
{
	long status = a->status;
	struct fcm_status st;
	const char *code, *rpc;

	memset(out, 0, sizeof(*out));
	fcm_parse_status(a->body, a->len, &st);
	code = st.code_exact ? st.code : "";
	rpc = st.status_exact ? st.status : "";
	if (st.code[0] != '\0')
		snprintf(out->reason, sizeof(out->reason), "%s", st.code);
	else if (st.status[0] != '\0')
		snprintf(out->reason, sizeof(out->reason), "%s", st.status);
	else
		snprintf(out->reason, sizeof(out->reason), "%ld", status);

	if (status == 200)
		out->verdict = VERDICT_OK;
	else if (status == 404 && strcmp(code, "UNREGISTERED") == 0)
		out->verdict = VERDICT_GONE;
	/* INVALID_ARGUMENT is also our payload's fault (bad data key, too
	 * big, ...): only FCM naming the token makes it the token's. */
	else if (status == 400 && strcmp(rpc, "INVALID_ARGUMENT") == 0 &&
	    st.about_token)
		out->verdict = VERDICT_GONE;
	/* A token of another project. A wrong project id in our key file
	 * would look like this for every token; the caller watches the
	 * rate (docs/push-providers.md §2.4). */
	else if (status == 403 && strcmp(code, "SENDER_ID_MISMATCH") == 0)
		out->verdict = VERDICT_GONE;
	/* APNs or web credentials missing in the Firebase project: ours. */
	else if (status == 401 && strcmp(code, "THIRD_PARTY_AUTH_ERROR") == 0)
		out->verdict = VERDICT_CONFIG;
	else if (status == 401)
		out->verdict = VERDICT_RENEW_AUTH;
	/* QUOTA_EXCEEDED (project or device rate) and UNAVAILABLE: FCM
	 * asks for a pause, with Retry-After when it knows how long. */
	else if (status == 429 || status == 503)
		out->verdict = VERDICT_PAUSE;
	else if (status >= 500 || status == 0)
		out->verdict = VERDICT_TEMPORARY;
	else
		/* 403 PERMISSION_DENIED (API disabled, IAM), 404 without
		 * UNREGISTERED (a wrong URL or project), 400 about our
		 * payload, 413, anything unknown: never GONE. */
		out->verdict = VERDICT_CONFIG;
}

/* ---- the provider's table (provider.h) -------------------------------
 *
 * The access token's protocol (fcm.h, fcm_auth.c) with the engine doing
 * the I/O: build sends with a usable token or waits for the renewal;
 * after every build the engine asks renewal_start whether one is due
 * (once the token is near its end, or gone, and no renewal is in flight
 * or backing off), sends it, and hands the answer to renewal_done; a
 * 401 drops the token (renew_auth) and the push is built once more. */

static int
fcm_op_new(const void *settings, struct provider **out, char err[ERR_LEN])
{
	const struct fcm_config *cfg = settings;

	(void)err;
	*out = cfg->key != NULL ? (struct provider *)fcm_new(cfg) : NULL;
	return 0;
}

static void
fcm_op_free(struct provider *p)
{
	fcm_free((struct fcm *)p);
}

static enum provider_build
fcm_op_build(struct provider *p, struct provider_push *push,
    char err[ERR_LEN])
{
	struct fcm *f = (struct fcm *)p;
	const char *access;

	switch (fcm_auth_state(f->auth, push->now_ms)) {
	case FCM_AUTH_READY:
	case FCM_AUTH_RENEW_EARLY:	/* renewal_start starts one */
		access = fcm_auth_token(f->auth, push->now_ms,
		    &push->credential);
		return fcm_build(f, push->kind, push->token, access,
		    &push->req, err) == 0 ? PROVIDER_SEND : PROVIDER_FAILED;
	case FCM_AUTH_BACKOFF:
		err_set(err, "no FCM access token (renewal backing off "
		    "after %u failures)", fcm_auth_failures(f->auth));
		return PROVIDER_FAILED;
	case FCM_AUTH_RENEW:		/* renewal_start starts one */
	case FCM_AUTH_WAIT:
		break;
	}
	return PROVIDER_WAIT;
}

/* The pushes that waited for a renewal that failed. */
static void
fcm_op_renewal_failed(const struct fcm *f, struct provider_result *fail)
{
	provider_result_set(fail, f->auth_refused ? VERDICT_CONFIG :
	    VERDICT_TEMPORARY, "oauth");
}

static int
fcm_op_renewal_start(struct provider *p, int64_t now_ms,
    struct provider_request *out, struct provider_result *fail,
    char err[ERR_LEN])
{
	struct fcm *f = (struct fcm *)p;

	memset(out, 0, sizeof(*out));
	if (!fcm_auth_needs_renewal(f->auth, now_ms))
		return 0;
	if (fcm_auth_renewal_start(f->auth, now_ms, out, err) < 0) {
		f->auth_refused = true;	/* our key cannot sign */
		fcm_op_renewal_failed(f, fail);
		return -1;
	}
	return 1;
}

static int
fcm_op_renewal_done(struct provider *p, const struct provider_answer *a,
    int64_t now_ms, struct provider_result *fail, char err[ERR_LEN])
{
	struct fcm *f = (struct fcm *)p;

	if (fcm_auth_renewal_done(f->auth, a->status, a->body, a->len,
	    now_ms, err) < 0) {
		/* 4xx from the token endpoint: our key is refused. */
		f->auth_refused = a->status >= 400 && a->status < 500;
		fcm_op_renewal_failed(f, fail);
		return -1;
	}
	f->auth_refused = false;
	return 0;
}

/* Whether a usable access token is in hand: until the first renewal
 * answers there is none, and every push would wait for it. */
static bool
fcm_op_credential_ready(const struct provider *p, int64_t now_ms)
{
	const struct fcm *f = (const struct fcm *)p;

	return fcm_auth_token(f->auth, now_ms, NULL) != NULL;
}

/* A 401: the token of this generation is dropped (unless another answer
 * dropped it already), and the push waits for a new one, once. */
static bool
fcm_op_renew_auth(struct provider *p, uint64_t credential, int64_t now_ms)
{
	struct fcm *f = (struct fcm *)p;

	fcm_auth_rejected(f->auth, credential, now_ms);
	return true;
}

const struct provider_ops fcm_ops = {
	.name = "fcm",
	.label = "FCM",
	.token_kinds = PROVIDER_TOKEN(TOKEN_FCM),
	.heartbeats = false,
	/* Google: 600,000 per minute and project; we stay below. */
	.default_rate = 8000,
	.transport = TRANSPORT_H2,
	.new = fcm_op_new,
	.free = fcm_op_free,
	.build = fcm_op_build,
	.classify = fcm_classify,
	.renew_auth = fcm_op_renew_auth,
	.renewal_start = fcm_op_renewal_start,
	.renewal_done = fcm_op_renewal_done,
	.renewal_name = "access token",
	.renewal_transport = TRANSPORT_HTTP,
	.credential_ready = fcm_op_credential_ready,
};
