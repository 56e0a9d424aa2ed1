/*
 * The FCM OAuth2 access token (docs/push-providers.md §2.2; RFC 7523 JWT
 * bearer grant, RFC 6749 §5 answers); see fcm.h. The assertion, the form
 * body that carries it and the access token are secrets: each lives in
 * one exactly-sized allocation that is wiped before it is freed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "backoff.h"
#include "fcm.h"
#include "jwt.h"
#include "xmalloc.h"

/* RFC 6749 appendix B: the form-encoded grant type. */
#define FCM_FORM_PREFIX	"grant_type=urn%3Aietf%3Aparams%3Aoauth%3A" \
			"grant-type%3Ajwt-bearer&assertion="
/* How much of the token endpoint's error (RFC 6749 §5.2) goes into err. */
#define FCM_OAUTH_ERROR_MAX		40
#define FCM_OAUTH_DESCRIPTION_MAX	100

struct fcm_auth {
	const struct fcm_key	*key;
	char			*token_url;
	char			*token;		/* a secret; NULL: none */
	uint64_t		 generation;	/* of token; 0: never had one */
	int64_t			 arrived_ms;
	int64_t			 usable_until_ms;
	int64_t			 renew_at_ms;
	bool			 renewing;
	int64_t			 renewal_started_ms;
	unsigned int		 failures;	/* consecutive */
	int64_t			 retry_at_ms;	/* no renewal before */
	int64_t			 rejected_ms;	/* last fcm_auth_rejected */
};

/* A compact JSON text from a jansson value (caller frees); the value is
 * released. */
static char *
fcm_auth_dump(json_t *v)
{
	char *s;

	if (v == NULL || (s = json_dumps(v, JSON_COMPACT)) == NULL)
		abort();	/* out of memory: as xmalloc */
	json_decref(v);
	return s;
}

char *
fcm_auth_assertion(const struct fcm_key *k, int64_t now_ms, char err[ERR_LEN])
{
	json_int_t iat = (json_int_t)(now_ms / 1000);
	char *header, *claims, *jwt;
	json_t *h;

	h = json_pack("{s:s,s:s}", "alg", "RS256", "typ", "JWT");
	if (h != NULL && k->private_key_id != NULL)
		json_object_set_new(h, "kid", json_string(k->private_key_id));
	header = fcm_auth_dump(h);
	claims = fcm_auth_dump(json_pack("{s:s,s:s,s:s,s:I,s:I}",
	    "iss", k->client_email, "scope", FCM_SCOPE, "aud", k->token_uri,
	    "iat", iat, "exp", iat + FCM_ASSERTION_LIFETIME_S));
	jwt = jwt_sign(JWT_RS256, k->pkey, header, claims, err);
	free(header);
	free(claims);
	return jwt;
}

/* Wipe and free a NUL-terminated secret. */
static void
fcm_auth_wipe_free(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

static void
fcm_auth_build_request(const char *url, const char *jwt,
    struct provider_request *out)
{
	size_t plen = strlen(FCM_FORM_PREFIX), jlen = strlen(jwt);

	memset(out, 0, sizeof(*out));
	out->url = xstrdup(url);
	provider_request_add_header(out,
	    "content-type: application/x-www-form-urlencoded");
	provider_request_add_header(out, "accept: application/json");
	/* A JWT is base64url and dots: nothing to percent-encode. */
	out->body_len = plen + jlen;
	out->body = xmalloc(out->body_len + 1);
	memcpy(out->body, FCM_FORM_PREFIX, plen);
	memcpy(out->body + plen, jwt, jlen + 1);
}

/* RFC 6750 §2.1 b64token: what may follow "Bearer " in a header. */
static bool
fcm_auth_b64token_ok(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && s[i] != '\0' && ((s[i] >= 'A' && s[i] <= 'Z') ||
	    (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
	    strchr("-._~+/", s[i]) != NULL))
		i++;
	if (i == 0)
		return false;
	while (i < n && s[i] == '=')
		i++;
	return i == n;
}

/* Copy s into out (size outlen), keeping only bytes in keep (or any
 * printable ASCII but quotes and backslashes if keep is NULL), at most
 * max of them. */
static void
fcm_auth_sanitise(const char *s, const char *keep, size_t max, char *out,
    size_t outlen)
{
	size_t n = 0;

	for (; *s != '\0' && n < max && n + 1 < outlen; s++) {
		if (keep != NULL ? strchr(keep, *s) == NULL :
		    (*s < ' ' || *s > '~' || *s == '"' || *s == '\\'))
			continue;
		out[n++] = *s;
	}
	out[n] = '\0';
}

/* err for a refusal: the status, and RFC 6749 §5.2's error and
 * error_description if the body has them. */
static void
fcm_auth_refusal(long status, json_t *root, char err[ERR_LEN])
{
	static const char code_chars[] = "abcdefghijklmnopqrstuvwxyz_";
	char code[FCM_OAUTH_ERROR_MAX + 1] = "";
	char desc[FCM_OAUTH_DESCRIPTION_MAX + 1] = "";
	json_t *e = json_object_get(root, "error");
	json_t *d = json_object_get(root, "error_description");

	if (json_is_string(e))
		fcm_auth_sanitise(json_string_value(e), code_chars,
		    FCM_OAUTH_ERROR_MAX, code, sizeof(code));
	if (json_is_string(d))
		fcm_auth_sanitise(json_string_value(d), NULL,
		    FCM_OAUTH_DESCRIPTION_MAX, desc, sizeof(desc));
	if (status == 0)
		err_set(err, "fcm token endpoint: no answer");
	else if (code[0] != '\0')
		err_set(err, "fcm token endpoint: HTTP %ld error=%s "
		    "description=\"%s\"", status, code, desc);
	else
		err_set(err, "fcm token endpoint: HTTP %ld", status);
}

int
fcm_auth_parse(long status, const char *body, size_t len,
    struct fcm_access_token *out, char err[ERR_LEN])
{
	json_t *root = NULL, *tok, *type, *exp;
	json_error_t jerr;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (len > FCM_TOKEN_ANSWER_MAX_BYTES) {
		err_set(err, "fcm token endpoint: HTTP %ld, answer of %zu "
		    "bytes", status, len);
		return -1;
	}
	if (body != NULL && len > 0)
		root = json_loadb(body, len, 0, &jerr);
	if (status != 200) {
		fcm_auth_refusal(status, root, err);
		goto out;
	}
	if (!json_is_object(root)) {
		err_set(err, "fcm token endpoint: answer is not a JSON object");
		goto out;
	}
	tok = json_object_get(root, "access_token");
	type = json_object_get(root, "token_type");
	exp = json_object_get(root, "expires_in");
	if (!json_is_string(tok) || json_string_length(tok) >
	    FCM_ACCESS_TOKEN_MAX_BYTES || !fcm_auth_b64token_ok(
	    json_string_value(tok), json_string_length(tok)))
		err_set(err, "fcm token endpoint: \"access_token\" missing or "
		    "malformed");
	/* RFC 6749 §7.1: the type is case-insensitive. */
	else if (!json_is_string(type) ||
	    strcasecmp(json_string_value(type), "Bearer") != 0)
		err_set(err, "fcm token endpoint: \"token_type\" is not "
		    "\"Bearer\"");
	/* expires_in is only RECOMMENDED by RFC 6749, but without it there
	 * is no renewal time: Google always sends it. */
	else if (!json_is_integer(exp) || json_integer_value(exp) < 1 ||
	    json_integer_value(exp) > FCM_ACCESS_TOKEN_MAX_LIFETIME_S)
		err_set(err, "fcm token endpoint: \"expires_in\" missing or "
		    "not in 1..%d", FCM_ACCESS_TOKEN_MAX_LIFETIME_S);
	else {
		out->value = xmemdup0(json_string_value(tok),
		    json_string_length(tok));
		out->lifetime_ms = (int64_t)json_integer_value(exp) * 1000;
		rc = 0;
	}
out:
	tok = json_object_get(root, "access_token");
	if (json_is_string(tok))
		OPENSSL_cleanse((char *)json_string_value(tok),
		    json_string_length(tok));
	json_decref(root);
	return rc;
}

void
fcm_access_token_clear(struct fcm_access_token *t)
{
	fcm_auth_wipe_free(t->value);
	memset(t, 0, sizeof(*t));
}

/* ---- the token's state ------------------------------------------------ */

struct fcm_auth *
fcm_auth_new(const struct fcm_key *k, const char *token_url)
{
	struct fcm_auth *a = xcalloc(1, sizeof(*a));

	a->key = k;
	a->token_url = xstrdup(token_url != NULL ? token_url : k->token_uri);
	return a;
}

static void
fcm_auth_drop(struct fcm_auth *a)
{
	fcm_auth_wipe_free(a->token);
	a->token = NULL;
}

void
fcm_auth_free(struct fcm_auth *a)
{
	if (a == NULL)
		return;
	fcm_auth_drop(a);
	free(a->token_url);
	free(a);
}

static bool
fcm_auth_usable(const struct fcm_auth *a, int64_t now_ms)
{
	return a->token != NULL && now_ms < a->usable_until_ms;
}

enum fcm_auth_state
fcm_auth_state(const struct fcm_auth *a, int64_t now_ms)
{
	bool due = !a->renewing && now_ms >= a->retry_at_ms;

	if (fcm_auth_usable(a, now_ms))
		return due && now_ms >= a->renew_at_ms ? FCM_AUTH_RENEW_EARLY :
		    FCM_AUTH_READY;
	if (a->renewing)
		return FCM_AUTH_WAIT;
	return due ? FCM_AUTH_RENEW : FCM_AUTH_BACKOFF;
}

const char *
fcm_auth_state_name(enum fcm_auth_state s)
{
	switch (s) {
	case FCM_AUTH_READY: return "ready";
	case FCM_AUTH_RENEW_EARLY: return "renew_early";
	case FCM_AUTH_RENEW: return "renew";
	case FCM_AUTH_WAIT: return "wait";
	case FCM_AUTH_BACKOFF: return "backoff";
	}
	return "unknown";
}

const char *
fcm_auth_token(const struct fcm_auth *a, int64_t now_ms,
    uint64_t *generation_out)
{
	if (!fcm_auth_usable(a, now_ms))
		return NULL;
	if (generation_out != NULL)
		*generation_out = a->generation;
	return a->token;
}

bool
fcm_auth_needs_renewal(const struct fcm_auth *a, int64_t now_ms)
{
	enum fcm_auth_state s = fcm_auth_state(a, now_ms);

	return s == FCM_AUTH_RENEW_EARLY || s == FCM_AUTH_RENEW;
}

bool
fcm_auth_renewing(const struct fcm_auth *a)
{
	return a->renewing;
}

int64_t
fcm_auth_renew_at(const struct fcm_auth *a)
{
	int64_t due = a->token != NULL ? a->renew_at_ms : 0;

	return due > a->retry_at_ms ? due : a->retry_at_ms;
}

unsigned int
fcm_auth_failures(const struct fcm_auth *a)
{
	return a->failures;
}

static void
fcm_auth_failed(struct fcm_auth *a, int64_t now_ms)
{
	if (a->failures < 64)
		a->failures++;
	a->retry_at_ms = now_ms + backoff_delay_ms(FCM_AUTH_RETRY_BASE_MS,
	    a->failures, FCM_AUTH_RETRY_MAX_MS, 0, 0);
}

int
fcm_auth_renewal_start(struct fcm_auth *a, int64_t now_ms,
    struct provider_request *out, char err[ERR_LEN])
{
	char *jwt;

	memset(out, 0, sizeof(*out));
	if (a->renewing) {
		err_set(err, "fcm token renewal already in flight");
		return -1;
	}
	if ((jwt = fcm_auth_assertion(a->key, now_ms, err)) == NULL) {
		fcm_auth_failed(a, now_ms);
		return -1;
	}
	fcm_auth_build_request(a->token_url, jwt, out);
	fcm_auth_wipe_free(jwt);
	a->renewing = true;
	a->renewal_started_ms = now_ms;
	return 0;
}

static int64_t
fcm_auth_min(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

int
fcm_auth_renewal_done(struct fcm_auth *a, long status, const char *body,
    size_t len, int64_t now_ms, char err[ERR_LEN])
{
	struct fcm_access_token t;
	int64_t start = a->renewing ? a->renewal_started_ms : now_ms;

	a->renewing = false;
	if (fcm_auth_parse(status, body, len, &t, err) < 0) {
		fcm_auth_failed(a, now_ms);
		return -1;
	}
	fcm_auth_drop(a);
	a->token = t.value;	/* ownership moves, nothing to clear */
	a->generation++;
	a->arrived_ms = now_ms;
	/* Google counts expires_in from when it answered; counting from
	 * when we asked errs on the early side. */
	a->usable_until_ms = start + t.lifetime_ms -
	    fcm_auth_min(FCM_AUTH_EXPIRY_MARGIN_MS, t.lifetime_ms / 4);
	a->renew_at_ms = start + t.lifetime_ms -
	    fcm_auth_min(FCM_AUTH_RENEW_BEFORE_MS, t.lifetime_ms / 2);
	a->failures = 0;
	a->retry_at_ms = 0;
	return 0;
}

void
fcm_auth_rejected(struct fcm_auth *a, uint64_t generation, int64_t now_ms)
{
	bool fresh, again;

	if (a->token == NULL || generation != a->generation)
		return;		/* already renewed or dropped */
	fcm_auth_drop(a);
	/* The first refusal renews at once (a revoked token); a fresh token
	 * refused again within the minute means renewing does not help. */
	fresh = now_ms - a->arrived_ms < FCM_AUTH_FRESH_MS;
	again = a->rejected_ms != 0 && now_ms - a->rejected_ms <
	    FCM_AUTH_FRESH_MS;
	if (fresh && again)
		fcm_auth_failed(a, now_ms);
	a->rejected_ms = now_ms;
}
