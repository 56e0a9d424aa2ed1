/*
 * How a push travels, behind one face: proxyd's two HTTP clients,
 *
 *   TRANSPORT_H2    h2client (this folder): HTTP/2 only, nghttp2 on
 *                   OpenSSL, one connection per origin; for the providers
 *                   that carry the volume (APNs, FCM sends)
 *   TRANSPORT_HTTP  httpc (common/httpc.c): libcurl, HTTP/1.1 or 2,
 *                   redirects never followed, an address policy before
 *                   every connect; for untrusted or small peers (Web Push
 *                   endpoints, UBports, Google's OAuth2 token endpoint)
 *
 * A provider names its transport in its table entry (provider.h) and
 * adjusts that transport's config; the push engine creates it and sends
 * through these operations only, never knowing which client is behind.
 * Requests, answers and callbacks are httpc.h's types, which h2client
 * speaks too; each client keeps a config of its own (transport_config
 * holds one of each, and each client reads only its own).
 *
 * One loop thread: every call and every callback happens on it; done is
 * never called from inside send.
 */
#ifndef TRANSPORT_H
#define TRANSPORT_H

#include <stddef.h>

#include "err.h"
#include "h2client.h"
#include "httpc.h"

struct event_base;

enum transport_kind {
	TRANSPORT_HTTP,		/* httpc */
	TRANSPORT_H2,		/* h2client */
	TRANSPORT_KINDS
};

struct transport_config {
	struct h2client_config	 h2;	/* read by TRANSPORT_H2 */
	struct httpc_config	 http;	/* read by TRANSPORT_HTTP */
};

/* A client of either kind (an h2client or an httpc behind its ops). */
struct transport;

struct transport_ops {
	const char	*name;		/* "h2", "http": for logs */
	/* A client reading its member of cfg (strings borrowed while it
	 * lives, certificate objects only during the call), whose answers
	 * go to done(ctx, answer, arg) on the loop. NULL and err if it
	 * cannot be set up. */
	struct transport *(*new)(struct event_base *,
		    const struct transport_config *cfg, httpc_done_fn *done,
		    void *arg, char err[ERR_LEN]);
	/* 0: done will be called for ctx (never from inside this call); -1
	 * and err: nothing will be. The request's strings are borrowed
	 * until done. */
	int	(*send)(struct transport *, const struct httpc_request *,
		    void *ctx, char err[ERR_LEN]);
	/* Requests sent and not yet answered. */
	size_t	(*in_flight)(const struct transport *);
	/* Requests still running are abandoned, each ctx handed to cancel
	 * (may be NULL when nothing is in flight); NULL is a no-op. Not from
	 * inside a done callback. */
	void	(*free)(struct transport *, httpc_cancel_fn *cancel);
};

/* The transports by kind. */
extern const struct transport_ops *const transports[TRANSPORT_KINDS];

#endif
