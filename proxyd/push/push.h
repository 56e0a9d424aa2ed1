/*
 * Sending pushes: a provider module builds the request and judges the
 * answer, h2client (HTTP/2: APNs, FCM) or httpc (Web Push, UBports, the
 * OAuth2 token endpoint) carries it. This is where what providers share
 * lives (docs/style.md: transport, retries and metrics once, not per
 * provider): the rate limiter and Retry-After pauses of each provider,
 * one retry after a renewed credential, the SSRF policy for Web Push
 * endpoints, and the verdict handed back with the request's context.
 */
#ifndef PUSH_H
#define PUSH_H

#include <stdbool.h>
#include <stdint.h>

#include "apns.h"
#include "err.h"
#include "provider.h"
#include "ratelimit.h"
#include "token.h"

struct event_base;
struct metrics;
struct push_engine;
struct fcm_key;
struct p12;
struct vapid;

enum push_provider {
	PROVIDER_APNS,
	PROVIDER_FCM,
	PROVIDER_WEBPUSH,
	PROVIDER_UBPORTS,
	PROVIDER_COUNT
};

struct push_config {
	/* APNs: apns_enabled once credentials are given. */
	struct apns_config	 apns;		/* strings borrowed */
	bool			 apns_enabled;
	const struct p12	*apns_cert;	/* certificate auth */
	unsigned int		 apns_streams;	/* before Apple's SETTINGS */
	/* FCM: enabled with a service-account key (borrowed). */
	const struct fcm_key	*fcm_key;
	const char		*fcm_api_url;	/* NULL: Google's */
	const char		*fcm_token_url;	/* NULL: the key's token_uri */
	/* Web Push: enabled with a VAPID key (borrowed). */
	struct vapid		*vapid;
	bool			 webpush_allow_private;	/* tests only */
	/* UBports: always enabled (no credentials). */
	const char		*ubports_url;	/* NULL: push.ubports.com */
	const char		*ubports_appid;	/* NULL: Delta Touch's */

	const char		*ca_file;	/* NULL: system store */
	long			 timeout_ms;
	struct ratelimit_config	 limits[PROVIDER_COUNT];
};

/* The push for ctx ended with this verdict (on the loop thread, never
 * from inside push_send). */
typedef void push_done_fn(void *ctx, const struct provider_result *,
    void *arg);

/* Metrics of rate limiting (per provider) go to m. */
struct push_engine *push_engine_new(struct event_base *,
	    const struct push_config *, struct metrics *m, push_done_fn *,
	    void *arg, char err[ERR_LEN]);
/* The provider of a token kind, and its metric label ("APNS", "FCM",
 * "WebPush", "UBports"). */
enum push_provider push_provider_of(enum token_kind);
const char *push_provider_label(enum push_provider);
bool	push_enabled(const struct push_engine *, enum push_provider);
/* Sends to t's provider: 0 (done will be called), or -1 and err (the
 * provider is not configured, or a heartbeat for a provider other than
 * APNs). t and the string it points into are borrowed until done. */
int	push_send(struct push_engine *, enum push_kind, const struct token *t,
	    void *ctx, char err[ERR_LEN]);
size_t	push_in_flight(const struct push_engine *);
/* Pushes still running or waiting are abandoned, their ctx handed to
 * cancel. */
void	push_engine_free(struct push_engine *,
	    void (*cancel)(void *ctx, void *arg));

#endif
