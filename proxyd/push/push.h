/*
 * The push engine: a push goes to the provider of its token's kind
 * (providers.h), whose operations (provider.h) build the request, judge
 * the answer and keep their own credentials, pauses and address rules;
 * the provider's transport (transport.h) carries it. What every provider
 * shares lives here, once, and nothing here depends on which provider it
 * is: the rate limiter (ratelimit.h) and provider-wide Retry-After
 * pauses, the one retry after a renewed credential, credential renewals
 * sent and pushes waiting for them, the verdict handed back with the
 * push's context, metrics and logging.
 */
#ifndef PUSH_H
#define PUSH_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "provider.h"
#include "providers.h"
#include "ratelimit.h"
#include "token.h"
#include "transport.h"

struct event_base;
struct metrics;
struct push_engine;
struct state;

/* The engine's clocks, for tests that drive time (NULL: common/clock.c's
 * clock_wall_ms and clock_mono_ms): wall for what credentials carry,
 * monotonic for pauses and rate limits. */
struct push_clock {
	int64_t	(*wall_ms)(void *arg);
	int64_t	(*mono_ms)(void *arg);
	void	*arg;
};

struct push_config {
	/* Each provider's own settings; one left unset is off (UBports
	 * needs none). */
	struct providers_config	 providers;
	const char		*ca_file;	/* NULL: system store */
	long			 timeout_ms;	/* per provider request */
	/* By index in providers[]. */
	struct ratelimit_config	 limits[PROVIDERS_MAX];
	/* Tests: every provider's requests go to this transport instead of
	 * its own (NULL: transports[provider's kind]). */
	const struct transport_ops *transport;
	const struct push_clock	*clock;		/* tests; NULL: the real one */
};

/* The push for ctx ended with this verdict (on the loop thread, never
 * from inside push_send). */
typedef void push_done_fn(void *ctx, const struct provider_result *,
    void *arg);

/* Every configured provider with its transports (a provider's settings
 * that cannot work, or a transport that cannot be set up: NULL and err).
 * The providers' rate-limit buckets are in state (borrowed: it outlives
 * the engine), under each provider's name. Metrics of rate limiting (per
 * provider) go to m. */
struct push_engine *push_engine_new(struct event_base *,
	    const struct push_config *, struct state *state,
	    struct metrics *m, push_done_fn *, void *arg, char err[ERR_LEN]);
/* The provider of a token kind (NULL: none), and its metric label
 * ("APNS", "FCM", "WebPush", "UBports"; "unknown" for NULL). */
const struct provider_ops *push_provider_of(enum token_kind);
const char *push_provider_label(const struct provider_ops *);
/* Whether the provider is configured (its pushes can be sent). */
bool	push_enabled(const struct push_engine *, const struct provider_ops *);
/* Sends to t's provider on behalf of client (whose share of the
 * provider's rate limit it takes, ratelimit.h; borrowed for the call;
 * NULL: one shared by every push without a client): 0 (done will be
 * called; VERDICT_OVERLOAD if the provider's queue would not take it), or
 * -1 and err (the provider is not configured, or takes no heartbeats). t
 * and the string it points into are borrowed until done. */
int	push_send(struct push_engine *, enum push_kind, const struct token *t,
	    const struct ratelimit_client *client, void *ctx,
	    char err[ERR_LEN]);
/* Credentials that come over the network (FCM's access token) are
 * fetched from the next loop pass on, not on the first push, then kept
 * usable without traffic (renewed ahead of expiry, retried after the
 * provider's back-off), so that push_ready() turns true by itself and an
 * idle instance does not wait for a credential on its next push. */
void	push_engine_prefetch(struct push_engine *);
/* Whether every configured provider has a usable credential now (a
 * provider without one configured does not count): for GET /ready. */
bool	push_ready(const struct push_engine *);
/* Pushes sent and not yet ended (waiting, in flight, or being answered). */
size_t	push_in_flight(const struct push_engine *);
/* A pause another instance heard of (the shared state's, scope
 * "PROVIDER:NAME", state.h's scope_pause): applied as if this one had
 * heard it. */
#define PUSH_SCOPE_MAX	300
void	push_apply_pause(struct push_engine *, const char *scope, int64_t ms);
/* Of those, the ones handed to a transport (not waiting for a rate limit
 * or a credential). */
size_t	push_sending(const struct push_engine *);
/* Pushes still running or waiting are abandoned, their ctx handed to
 * cancel. */
void	push_engine_free(struct push_engine *,
	    void (*cancel)(void *ctx, void *arg));

#endif
