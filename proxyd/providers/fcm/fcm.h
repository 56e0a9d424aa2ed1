/*
 * Firebase Cloud Messaging, HTTP v1 API (docs/push-providers.md §2), in three
 * small parts that share this header:
 *
 *   fcm_key.c   the service-account JSON key file (--fcm-key-path)
 *   fcm_auth.c  the OAuth2 access token: the RS256 JWT-bearer assertion,
 *               the token request and its answer, and the state of the
 *               cached token (when to renew; one renewal in flight shared
 *               by every request that needs it)
 *   fcm.c       the send request for a device, the meaning of FCM's
 *               answers, and the provider (fcm_ops, provider.h) that
 *               sends with the cached access token and renews it
 *
 * Like every provider, nothing here does I/O on the network or logs (the
 * push engine sends the token request fcm_ops asks for):
 * requests are built as struct provider_request, answers come in as a
 * status and a body, errors go to the caller's err. Secrets (the private
 * key, the assertion, the access token, device tokens) never appear in
 * err, and buffers that held them are wiped before they are freed.
 * Objects (struct fcm_auth, struct fcm) belong to the loop thread; the
 * parsers and fcm_classify keep no state and are thread-safe.
 */
#ifndef FCM_H
#define FCM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "provider.h"
#include "token.h"

#define FCM_API_URL		"https://fcm.googleapis.com"
#define FCM_TOKEN_URL		"https://oauth2.googleapis.com/token"
#define FCM_SCOPE		"https://www.googleapis.com/auth/firebase.messaging"
#define FCM_GRANT_TYPE		"urn:ietf:params:oauth:grant-type:jwt-bearer"

/* Key file limits. Google's files are ~2.3 KiB, the PEM of a 2048-bit
 * key ~1.7 KiB; a 4096-bit key still fits well. */
#define FCM_KEY_FILE_MAX_BYTES		(64 * 1024)
#define FCM_KEY_PEM_MAX_BYTES		(16 * 1024)
#define FCM_KEY_PROJECT_ID_MAX_BYTES	100	/* [domain:]id, id 6..30 */
#define FCM_KEY_EMAIL_MAX_BYTES		254	/* RFC 5321 path limit */
#define FCM_KEY_ID_MAX_BYTES		128	/* Google's: 40 hex digits */
#define FCM_KEY_URL_MAX_BYTES		2048
#define FCM_KEY_RSA_MIN_BITS		2048	/* Google issues 2048 */
#define FCM_KEY_RSA_MAX_BITS		8192

/* The assertion's lifetime: Google refuses exp - iat > 3600 s. */
#define FCM_ASSERTION_LIFETIME_S	3600
/* Token endpoint answers: Google's are ~1 KiB with tokens of 200-1100
 * characters; expires_in is 3599. */
#define FCM_TOKEN_ANSWER_MAX_BYTES	(64 * 1024)
#define FCM_ACCESS_TOKEN_MAX_BYTES	4096
#define FCM_ACCESS_TOKEN_MAX_LIFETIME_S	86400
/* Renew this long before expiry (at most half the lifetime), and stop
 * using a token this long before it expires (at most a quarter of the
 * lifetime): a request in flight must not outlive its token. */
#define FCM_AUTH_RENEW_BEFORE_MS	(5LL * 60 * 1000)
#define FCM_AUTH_EXPIRY_MARGIN_MS	(30LL * 1000)
/* After a failed renewal, the next one waits 1 s, 2 s, 4 s ... 60 s: a
 * broken key must not turn every push into a request to Google. */
#define FCM_AUTH_RETRY_BASE_MS		1000
#define FCM_AUTH_RETRY_MAX_MS		(60LL * 1000)
/* A 401 for a token younger than this, less than this after another
 * 401, counts as a failed renewal (with the back-off above) rather than
 * a reason to renew at once. */
#define FCM_AUTH_FRESH_MS		(60LL * 1000)

/* Error bodies (google.rpc.Status) looked at; larger ones are classified
 * by their HTTP status alone. */
#define FCM_ERROR_BODY_MAX_BYTES	(64 * 1024)
#define FCM_ERROR_DETAILS_MAX		16

/* ---- fcm_key.c ------------------------------------------------------- */

/* A service account (docs/push-providers.md §2.1). Read-only for users. */
struct fcm_key {
	char		*project_id;	/* the send URL's project */
	char		*client_email;	/* the assertion's iss */
	char		*private_key_id; /* the assertion's kid; may be NULL */
	char		*token_uri;	/* the assertion's aud */
	EVP_PKEY	*pkey;		/* RSA, FCM_KEY_RSA_MIN_BITS or more */
};

/*
 * Parse a service-account key file's contents json[0..len) (need not be
 * NUL-terminated): type "service_account", project_id, client_email,
 * private_key (PEM RSA), token_uri (https://), optional private_key_id;
 * other members are ignored, duplicate members refused. A new key (free
 * with fcm_key_free), or NULL with the reason in err. err names fields,
 * lines and columns, never the bytes of the private key. The caller
 * should wipe json afterwards; what jansson copied while parsing is
 * wiped where reachable (the private_key string), but its parser's
 * scratch buffers are freed as they are.
 */
struct fcm_key *fcm_key_parse(const char *json, size_t len,
	    char err[ERR_LEN]);
/* fcm_key_parse on the file at path (a regular file of at most
 * FCM_KEY_FILE_MAX_BYTES), whose bytes are wiped after parsing. */
struct fcm_key *fcm_key_load(const char *path, char err[ERR_LEN]);
void	fcm_key_free(struct fcm_key *);

/* ---- fcm_auth.c ------------------------------------------------------ */

/*
 * The signed JWT-bearer assertion for key at now_ms (caller wipes and
 * frees; a secret, usable for an hour): header {"alg":"RS256","typ":"JWT"
 * [,"kid":private_key_id]}, claims {"iss":client_email,"scope":FCM_SCOPE,
 * "aud":token_uri,"iat":now,"exp":now+3600}. NULL and err on failure.
 * The aud is always the key's token_uri, even when the request goes to
 * another URL (--fcm-token-url): that is what Google checks.
 */
char	*fcm_auth_assertion(const struct fcm_key *, int64_t now_ms,
	    char err[ERR_LEN]);

/* An access token from the token endpoint; value is a secret. */
struct fcm_access_token {
	char	*value;		/* b64token (RFC 6750 §2.1), owned */
	int64_t	 lifetime_ms;	/* expires_in */
};

/*
 * Parse the token endpoint's answer (RFC 6749 §5.1): status 200 and
 * {"access_token","expires_in" (1..86400),"token_type":"Bearer"} -> 0
 * and *out filled (clear it with fcm_access_token_clear). Anything else
 * -> -1 and err with the HTTP status and, for RFC 6749 §5.2 errors, the
 * sanitised "error" and a shortened "error_description". The body is
 * the caller's (a secret on success: wipe it).
 */
int	fcm_auth_parse(long status, const char *body, size_t len,
	    struct fcm_access_token *out, char err[ERR_LEN]);
/* Wipes and frees the value; the struct is reusable. */
void	fcm_access_token_clear(struct fcm_access_token *);

/*
 * What to do with a push now, by the state of the cached access token
 * (fcm_auth_state). One renewal at a time is in flight; the requests
 * that need it wait together and resume or fail together when
 * fcm_auth_renewal_done is called. fcm_ops (fcm.c) follows this protocol
 * with the push engine doing the I/O and keeping the waiting list:
 *
 *	build:
 *		READY, RENEW_EARLY: send with fcm_auth_token(auth, now, &gen)
 *		RENEW, WAIT: wait for the renewal
 *		BACKOFF: fail now (500)
 *	after each build, if fcm_auth_needs_renewal(auth, now):
 *		fcm_auth_renewal_start(auth, now, &req, err), send req
 *	its answer (or none: status 0):
 *		fcm_auth_renewal_done(auth, status, body, len, now, err);
 *		the waiting requests are built again, or fail
 *	a send answered VERDICT_RENEW_AUTH (401):
 *		fcm_auth_rejected(auth, gen, now); built again, once
 */
enum fcm_auth_state {
	FCM_AUTH_READY,		/* a usable token, renewal not yet due (or
				 * already in flight): send with it */
	FCM_AUTH_RENEW_EARLY,	/* a usable token, renewal due and none in
				 * flight: start one, send with the token */
	FCM_AUTH_RENEW,		/* no usable token, none in flight: start a
				 * renewal, wait for it */
	FCM_AUTH_WAIT,		/* no usable token, a renewal in flight:
				 * wait for it */
	FCM_AUTH_BACKOFF,	/* no usable token, the last renewal failed
				 * and the next is not due: fail now (500) */
};

struct fcm_auth;

/* The token state for key (borrowed: it must outlive the state), whose
 * token requests go to token_url (copied; NULL: the key's token_uri). */
struct fcm_auth *fcm_auth_new(const struct fcm_key *, const char *token_url);
/* Wipes the cached token. */
void	fcm_auth_free(struct fcm_auth *);
enum fcm_auth_state fcm_auth_state(const struct fcm_auth *, int64_t now_ms);
/* "ready", "renew_early", ...: for logs and metrics. */
const char *fcm_auth_state_name(enum fcm_auth_state);
/* The usable access token or NULL; borrowed until the next call of
 * fcm_auth_renewal_done, fcm_auth_rejected or fcm_auth_free (copy it into
 * the request at once: fcm_build does). *generation_out (may be NULL)
 * names it for fcm_auth_rejected. */
const char *fcm_auth_token(const struct fcm_auth *, int64_t now_ms,
	    uint64_t *generation_out);
/* Whether a renewal should start now (states RENEW_EARLY and RENEW). */
bool	fcm_auth_needs_renewal(const struct fcm_auth *, int64_t now_ms);
/* Whether a renewal is in flight. */
bool	fcm_auth_renewing(const struct fcm_auth *);
/* When a renewal becomes due (ms; at or before now: due or in flight,
 * see the state): for a caller that arms a timer to renew ahead of the
 * next push rather than on it. */
int64_t	fcm_auth_renew_at(const struct fcm_auth *);
/*
 * Start a renewal: out is the token request (POST token_url, form body
 * grant_type=...&assertion=..., a secret: provider_request_clear wipes
 * it) and the state notes a renewal in flight. The caller must then call
 * fcm_auth_renewal_done exactly once, transport failures included
 * (status 0). -1 and err if the assertion cannot be signed; that counts
 * as a failed renewal (back-off) and nothing is in flight.
 */
int	fcm_auth_renewal_start(struct fcm_auth *, int64_t now_ms,
	    struct provider_request *out, char err[ERR_LEN]);
/*
 * The token endpoint answered (status 0: no answer). 0: a new token is
 * cached (lifetime counted from the renewal's start), failures reset.
 * -1 and err (fcm_auth_parse's): the renewal failed, the previous token
 * stays in use while it is usable, and the next renewal waits for the
 * back-off. Either way nothing is in flight afterwards.
 */
int	fcm_auth_renewal_done(struct fcm_auth *, long status,
	    const char *body, size_t len, int64_t now_ms, char err[ERR_LEN]);
/*
 * FCM refused the token of this generation (401): if it is still the
 * cached one it is dropped, so the next state is RENEW (or WAIT). A
 * token refused within FCM_AUTH_FRESH_MS of its arrival, when another
 * refusal came less than FCM_AUTH_FRESH_MS before, also counts as a
 * failed renewal (back-off): a key Google accepts and FCM refuses must
 * not make every push renew. A stale generation changes nothing.
 */
void	fcm_auth_rejected(struct fcm_auth *, uint64_t generation,
	    int64_t now_ms);
/* Consecutive failed renewals (for metrics and tests). */
unsigned int fcm_auth_failures(const struct fcm_auth *);

/* ---- fcm.c ----------------------------------------------------------- */

struct fcm_config {
	const struct fcm_key *key;	/* borrowed; NULL: FCM is off */
	const char	*api_url;	/* NULL: FCM_API_URL */
	const char	*token_url;	/* NULL: the key's token_uri */
};

struct fcm;

/* The provider (provider.h): configured with a key; its access token
 * renewed through the engine (renewal_start, renewal_done). */
extern const struct provider_ops fcm_ops;

/* Sends for cfg->key's project (the key borrowed: it must outlive the
 * struct; the URLs copied), with an access token state of its own
 * (fcm_auth_new). */
struct fcm *fcm_new(const struct fcm_config *);
void	fcm_free(struct fcm *);
/*
 * The request for t (TOKEN_FCM) with the access token: POST
 * <api_url>/v1/projects/<project_id>/messages:send, authorization: Bearer,
 * the high-priority data message the Rust service sends, byte for byte
 * (docs/push-providers.md §2.3, §5.3). PUSH_HEARTBEAT is refused: heartbeats
 * are for APNs only (§5.4; notifiers drops other tokens from the
 * schedule). 0, or -1 and err (wrong kind, a token or access token with
 * bytes that cannot go into the JSON or a header).
 */
int	fcm_build(struct fcm *, enum push_kind, const struct token *,
	    const char *access_token, struct provider_request *out,
	    char err[ERR_LEN]);
/*
 * What FCM's answer means (docs/push-providers.md §2.4): 200 OK; 404
 * UNREGISTERED, 400 INVALID_ARGUMENT about the registration token, 403
 * SENDER_ID_MISMATCH -> GONE; 401 -> RENEW_AUTH (THIRD_PARTY_AUTH_ERROR
 * -> CONFIG); 429, 503 -> PAUSE (the caller reads Retry-After); 500,
 * other 5xx, no answer -> TEMPORARY; every other answer, 403
 * PERMISSION_DENIED and a 404 without UNREGISTERED included -> CONFIG:
 * a GONE makes every relay delete the token, so it needs FCM's explicit
 * word. reason: the FcmError errorCode, else the google.rpc status, else
 * the HTTP status.
 */
void	fcm_classify(const struct provider_answer *,
	    struct provider_result *out);

#endif
