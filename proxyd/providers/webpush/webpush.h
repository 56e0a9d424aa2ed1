/*
 * Web Push (RFC 8030 delivery, RFC 8291 encryption, RFC 8292 VAPID;
 * UnifiedPush distributors speak the same): the request for a webpush:
 * token and the meaning of the push service's answer
 * (docs/push-providers.md §3).
 *
 * The endpoint is chosen by whoever made the token, and the provider
 * (webpush_ops, provider.h) keeps the SSRF rules of
 * docs/push-providers.md §3.6 and issue 5 unless --webpush-allow-private:
 * an http:// endpoint or one whose host is a literal non-public address
 * is refused before any lookup (GONE), its transport (libcurl: no
 * redirects, bounded answer size and time) speaks https only, and every
 * address it is about to connect to must be public (addr_policy.h,
 * asked through allow_address). A pause (VERDICT_PAUSE) applies to the
 * endpoint's origin (webpush_origin), never to Web Push as a whole:
 * anyone can make an endpoint that answers 429; the provider remembers
 * WEBPUSH_ORIGIN_PAUSES of them.
 */
#ifndef WEBPUSH_H
#define WEBPUSH_H

#include <stdbool.h>
#include <stdint.h>

#include "provider.h"
#include "token.h"
#include "vapid.h"

/* What notifiers sends (docs/push-providers.md §3.5): "ping" in one record;
 * the client fetches mail itself, so the payload carries nothing. */
#define WEBPUSH_PAYLOAD		"ping"
/* Seconds the push service keeps an undelivered message (notifiers:
 * 12 h); the relay's own retries end 5 h after the mail arrived. */
#define WEBPUSH_TTL_DEFAULT_S	43200
/* A Retry-After beyond this is capped: the endpoint is untrusted, and
 * the relay gives up on a push after 5 h anyway. */
#define WEBPUSH_RETRY_AFTER_MAX_MS (3600LL * 1000)
/* Origins remembered as paused (the oldest replaced). */
#define WEBPUSH_ORIGIN_PAUSES	64

struct webpush_config {
	struct vapid	*vapid;		/* borrowed; required (NULL: Web Push
					 * is off) */
	long		 ttl_s;		/* 0: the default */
	bool		 allow_private;	/* --webpush-allow-private: tests */
};

struct webpush;

/* The provider (provider.h): configured with a VAPID key. */
extern const struct provider_ops webpush_ops;

struct webpush *webpush_new(const struct webpush_config *);
void	webpush_free(struct webpush *);

/*
 * The request for a visible push to t (a parsed TOKEN_WEBPUSH token):
 * POST to the endpoint, headers Content-Encoding: aes128gcm, TTL,
 * Urgency: high, Authorization: vapid (aud = the endpoint's origin),
 * Content-Type: application/octet-stream, and WEBPUSH_PAYLOAD encrypted
 * to the token's keys (a fresh ephemeral key and salt each time). 0, or
 * -1 and err: another token kind, PUSH_HEARTBEAT (heartbeats are for
 * APNs only, docs/push-providers.md §5.4), or a key the encryption refuses.
 * An http:// endpoint is built like any other: refusing it is the
 * provider's build op's decision (webpush_token_insecure). Wipe out with
 * provider_request_clear.
 */
int	webpush_build(struct webpush *, enum push_kind,
	    const struct token *t, int64_t now_ms,
	    struct provider_request *out, char err[ERR_LEN]);

/*
 * What the push service's answer means (docs/push-providers.md §3.1):
 *
 *   2xx                       OK (201 is RFC 8030's; 200 and 202 are seen,
 *                             and UnifiedPush counts any 2xx)
 *   404, 410                  GONE: expired or unsubscribed (RFC 8030 §7.3)
 *   400 saying the token is   GONE: {"reason":"BadDeviceToken"} (Apple's
 *     invalid                 web push uses APNs' reasons) or Mozilla
 *                             autopush's {"errno":102} ("invalid URL
 *                             endpoint": the endpoint's token part is
 *                             corrupt and will never work)
 *   400 otherwise             CONFIG: our headers or body are wrong, for
 *                             every token alike; deleting tokens would not
 *                             fix it
 *   401, 403                  CONFIG: VAPID missing, refused, or another
 *                             key than the subscription's (RFC 8292 §4.2)
 *   413                       CONFIG: our payload is too large
 *   429                       PAUSE this origin, for retry_after_ms (the
 *                             answer's Retry-After, 0 if none; capped at
 *                             WEBPUSH_RETRY_AFTER_MAX_MS)
 *   5xx                       PAUSE with a Retry-After, else TEMPORARY
 *   3xx (never followed), other 4xx, no answer (0): TEMPORARY
 *
 * A 400, 401, 403, 413 or 429 is about us or our rate, not the device: a
 * 410 for it would make every relay delete valid tokens (issue 5).
 * out->reason is the known reason or errno found in the body
 * ("BadDeviceToken", "errno-102"), else the status: a short list of
 * constants, since the body comes from an untrusted endpoint and feeds a
 * metric label.
 */
void	webpush_classify(const struct provider_answer *,
	    struct provider_result *out);

/* Whether t's endpoint is http://, to refuse unless
 * --webpush-allow-private. */
bool	webpush_token_insecure(const struct token *t);

/* t's endpoint origin, as in its VAPID aud: the key for per-endpoint
 * pauses and rate limits. 0, or -1 and err. */
int	webpush_origin(const struct token *t,
	    char out[VAPID_AUDIENCE_MAX_BYTES], char err[ERR_LEN]);

#endif
