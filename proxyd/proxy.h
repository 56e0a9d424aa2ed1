/*
 * proxyd, the central push proxy: the pieces and how they meet.
 *
 * proxyd's rooms, in the order a token goes through them:
 *
 *   api/             HTTP intake (/notify, /register, /, /health,
 *                    /ready) on libmicrohttpd
 *   openpgp/         decryption of openpgp: tokens (RFC 9580 subset);
 *                    openpgp.h is its only face
 *   token/           what a decrypted token is (APNs, FCM, Web Push, ...)
 *                    and the bounded cache of decryptions
 *   promise/         what a 200 promises: owed pushes, stored
 *                    (owed_store.c) and retried until they go out
 *   state/           what a second instance would share, behind one
 *                    interface (state.h): the debounce windows, the
 *                    heartbeat schedule, the rate-limit buckets, the
 *                    registrations per client; the embedded backend
 *                    (state_local.c) keeps them here
 *   push/            the push engine (push.c: rate-limit queues, pauses,
 *                    the retry after a renewed credential, verdicts,
 *                    metrics; no provider named), ratelimit, credentials
 *   providers/       the operations every provider has (provider.h), the
 *                    table of them (providers.c), jwt, and one folder per
 *                    provider (apns/, fcm/, webpush/, ubports/), each
 *                    with its requests, answers, credential and pauses
 *   transport/       one face (transport.h) for the two HTTP clients:
 *                    h2client (HTTP/2 for APNs and FCM: h2client.c,
 *                    h2_conn.c, h2_session.c, h2_stream.c) and
 *                    common/httpc.c (libcurl, for the rest)
 *
 * and here, the flows that tie them together:
 *
 *   proxy.c          requests, decryption, heartbeats (the silent pushes
 *                    to registered iOS devices), set-up
 *   proxy_owed.c     the owed pushes' part of them
 *   proxy_db.c       proxyd's database (heartbeats, owed pushes)
 *   workq.c          the decryption worker pool
 *   main.c           options, set-up, loop, tear-down
 *
 * One libevent loop thread does all I/O; decryption runs on a small
 * worker pool (proxyd/workq.c) and comes back to the loop.
 */
#ifndef PROXY_H
#define PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "api.h"
#include "db.h"
#include "err.h"
#include "push.h"
#include "redis_addr.h"

struct event_base;
struct proxy;

struct proxy_config {
	const char	*keyring_path;
	const char	*host;
	uint16_t	 port;
	bool		 reuse_port;		/* --reuse-port */
	const char	*db_path;		/* heartbeats, owed pushes */
	enum db_sync	 sync;
	const char	*metrics_addr;
	int64_t		 interval_ms;		/* heartbeat period */
	int64_t		 debounce_ms;
	/* Pushes a 200 promised (docs/debounce.md). */
	int64_t		 owed_deadline_ms;	/* give up after this */
	size_t		 owed_max;		/* owed at once */
	size_t		 owed_max_bytes;	/* their memory */
	int64_t		 owed_retry_min_ms;	/* back-off after a failure */
	int64_t		 owed_retry_max_ms;
	unsigned int	 workers;		/* decryption threads */
	size_t		 cache_entries;
	size_t		 cache_bytes;		/* the cache's memory */
	bool		 require_encrypted;	/* refuse plain tokens */
	/* /register's bounds (docs/proxyd.md "Registrations"). */
	uint64_t	 max_registrations;	/* rows in all; 0: none */
	double		 register_rate;		/* per client, per second */
	double		 register_burst;
	size_t		 register_clients;	/* buckets held */
	struct api_limits intake;		/* the HTTP intake's bounds */
	/* A /notify whose push would be handed to a provider while this
	 * many are (pushes_sending) gets 503 instead. */
	size_t		 max_pushes_in_flight;
	struct push_config push;
	/* The shared state (docs/scaling.md): with redis_on, the debounce,
	 * the owed pushes, the heartbeat schedule and the providers' rate
	 * limits are shared through Redis; without, this process's. */
	bool		 redis_on;
	struct redis_addr redis;		/* --redis (or password, db) */
	struct redis_endpoint redis_sentinels[REDIS_ADDR_SENTINELS];
	size_t		 redis_nsentinels;	/* --redis-sentinel */
	const char	*redis_master;		/* --redis-master */
	int64_t		 redis_timeout_ms;	/* --redis-timeout */
	size_t		 redis_max_pending;	/* --redis-max-pending */
};

struct proxy *proxy_new(struct event_base *, const struct proxy_config *,
	    char err[ERR_LEN]);
/* Stop taking requests (503; /health and /ready say so, for a load
 * balancer to drain this instance); requests in flight get their
 * answers, then the loop breaks. */
void	proxy_stop(struct proxy *);
void	proxy_free(struct proxy *);

#endif
