/*
 * proxyd, the central push proxy: the pieces and how they meet.
 *
 *   api.c            HTTP API (/notify, /register, /) on libmicrohttpd
 *   openpgp_*.c      decryption of openpgp: tokens (RFC 9580 subset)
 *   decrypt_cache.c  ciphertext digest -> token, bounded LRU
 *   token.c          what a decrypted token is (APNs, FCM, Web Push, ...)
 *   debounce.c       one push per token per window
 *   promise.c        what a 200 promises: owed pushes (owed.c, stored by
 *                    owed_store.c in proxy_db.c's database), retried until
 *                    they go out
 *   push.c           sending through provider modules (providers/)
 *   heartbeat*.c     silent pushes to registered iOS devices
 *   proxy.c          the request flows that tie them together
 *   proxy_owed.c     ... and the owed pushes' part of them
 *   main.c           options, set-up, loop, tear-down
 *
 * One libevent loop thread does all I/O; decryption runs on a small
 * worker pool (common/workq.c) and comes back to the loop.
 */
#ifndef PROXY_H
#define PROXY_H

#include <stdint.h>

#include "db.h"
#include "err.h"
#include "push.h"

struct event_base;
struct proxy;

struct proxy_config {
	const char	*keyring_path;
	const char	*host;
	uint16_t	 port;
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
	struct push_config push;
};

struct proxy *proxy_new(struct event_base *, const struct proxy_config *,
	    char err[ERR_LEN]);
/* Stop accepting; requests in flight get their answers, then the loop
 * breaks. */
void	proxy_stop(struct proxy *);
void	proxy_free(struct proxy *);

#endif
