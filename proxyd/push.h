/*
 * Sending pushes: a provider module builds the request and judges the
 * answer, h2client (HTTP/2, APNs) or httpc carries it. This is where
 * what providers share lives (style.md: transport, retries and metrics
 * once, not per provider):
 * one retry after a renewed credential, the verdict handed back to the
 * caller with the request's context.
 *
 * APNs today (one multiplexed HTTP/2 connection per endpoint, client
 * certificate or provider token); FCM, Web Push and UBports plug in the
 * same way.
 */
#ifndef PUSH_H
#define PUSH_H

#include <stdbool.h>
#include <stdint.h>

#include "apns.h"
#include "err.h"
#include "provider.h"

struct event_base;
struct push_engine;

struct push_config {
	struct apns_config	 apns;		/* strings borrowed */
	bool			 apns_enabled;	/* credentials given */
	const char		*apns_p12;	/* certificate auth */
	const char		*apns_p12_password;
	const char		*ca_file;	/* NULL: system store */
	long			 timeout_ms;
	unsigned int		 apns_streams;	/* per connection */
};

/* The push for ctx ended with this verdict (on the loop thread). */
typedef void push_done_fn(void *ctx, const struct provider_result *,
    void *arg);

struct push_engine *push_engine_new(struct event_base *,
	    const struct push_config *, push_done_fn *, void *arg,
	    char err[ERR_LEN]);
/* Sends to Apple: 0, or -1 and err (nothing will be called back; the
 * provider is not configured, or the request could not start). */
int	push_apns(struct push_engine *, enum push_kind, const char *device,
	    bool sandbox, void *ctx, char err[ERR_LEN]);
bool	push_apns_enabled(const struct push_engine *);
size_t	push_in_flight(const struct push_engine *);
/* Requests still running are abandoned, their ctx handed to cancel. */
void	push_engine_free(struct push_engine *,
	    void (*cancel)(void *ctx, void *arg));

#endif
