/*
 * Inside proxyd's request flows: what proxy.c (requests, decryption,
 * heartbeats, set-up) and proxy_owed.c (the pushes a 200 promised:
 * storing them, sending them at a window's end, retrying, loading them
 * at start) share. Not for other modules.
 */
#ifndef PROXY_PRIVATE_H
#define PROXY_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "decrypt_cache.h"
#include "log_limit.h"
#include "metrics.h"
#include "openpgp.h"
#include "owed_store.h"
#include "promise.h"
#include "proxy.h"
#include "proxy_db.h"
#include "push.h"
#include "ratelimit.h"
#include "state.h"
#include "token.h"

enum proxy_purpose {
	PURPOSE_NOTIFY,		/* a /notify request waits */
	PURPOSE_REGISTER,	/* a /register request waits */
	PURPOSE_TRAILING,	/* an owed push, nobody waits */
	PURPOSE_HEARTBEAT,	/* the schedule, nobody waits */
	PURPOSE_LOAD,		/* a stored owed push read back at start */
};

/* One unit of work from request to answer. */
struct proxy_job {
	struct proxy		*px;
	enum proxy_purpose	 purpose;
	struct api_request	*api;		/* NULL when nobody waits */
	char			*input;		/* what arrived (a secret) */
	size_t			 input_len;
	unsigned char		 digest[DECRYPT_CACHE_DIGEST_LEN];
	char			*plain;		/* decrypted token (secret) */
	enum openpgp_error	 perr;
	bool			 not_token;	/* cached: decrypts to no
						 * token (plain NULL) */
	struct token		 token;
	/* Whose share of the provider's rate limit its push takes: the
	 * request's client (api_request_client), or one of proxy.c's own
	 * (heartbeats; owed pushes read back at start). */
	struct ratelimit_client	 client;
	bool			 has_client;	/* a request's */
	int64_t			 asked_ms;	/* when the promise was asked */
	struct owed_item	*item;		/* PURPOSE_TRAILING */
	struct owed_row		 row;		/* PURPOSE_LOAD (input NULL) */
	bool			 adopted;	/* PURPOSE_LOAD: taken over
						 * from another instance */
	TAILQ_ENTRY(proxy_job)	 link;		/* waiting for a commit */
};
TAILQ_HEAD(proxy_job_list, proxy_job);

struct proxy_stats {
	struct metric	*direct, *heartbeat, *registrations, *heartbeat_tokens;
	struct metric	*debounced, *debounced_size, *decrypt_failures;
	struct metric	*decrypt_cache_hits, *busy, *heartbeat_retries;
	struct metric	*log_suppressed;	/* log_limit.h's hook */
	struct metric	*pushes_sending;	/* gauge: with a transport */
	/* the bounds on what a client can make us hold */
	struct metric	*cache_evicted_bytes, *cache_bytes, *plain_refused;
	struct metric	*registrations_refused, *registrations_full;
	struct metric	*registrations_ignored;	/* --interval 0 */
	struct metric	*registrations_limited, *register_clients;
	struct metric	*register_clients_forgotten;
	/* owed pushes */
	struct metric	*owed, *owed_bytes, *owed_sent, *owed_retries;
	struct metric	*owed_expired, *owed_full, *owed_dropped;
	struct metric	*owed_commits, *owed_commit_failures;
};

/* The owed pushes' side of the proxy (proxy_owed.c). */
struct proxy_owed {
	struct owed_store	*store;
	struct promise		*promise;
	struct event		*timer;		/* next due push or window end */
	struct event		*flush;		/* group commit, once per pass */
	struct proxy_job_list	 waiting;	/* 200s waiting for the commit */
	size_t			 nwaiting;
	/* start-up: stored rows read back in key order */
	bool			 loading;
	bool			 load_started;
	uint8_t			 load_after[OWED_KEY_LEN];	/* last read */
	bool			 load_after_set;
	size_t			 load_pending;	/* decryptions in flight */
	size_t			 loaded, load_dropped;
	struct event		*load_ev;
};

struct proxy {
	struct event_base		*base;
	struct proxy_config		 cfg;
	struct api			*api;
	struct openpgp_keyring		*keyring;
	struct decrypt_cache		*cache;
	struct workq			*decrypt;
	struct push_engine		*push;
	struct proxy_db			 db;	/* heartbeats, owed pushes */
	/* What a second instance would share (state.h): the windows, the
	 * heartbeat schedule, the rate-limit buckets. */
	struct state			*state;
	struct event			*hb_timer;
	struct event			*gauge_timer;	/* every second */
	struct proxy_owed		 ow;
	struct metrics			*metrics;
	struct metrics_http		*metrics_http;
	struct proxy_stats		 st;
	struct log_limit		 lim_undecryptable;
	/* --require-encrypted, --max-registrations, --register-rate */
	struct log_limit		 lim_plain;
	struct log_limit		 lim_register_full;
	struct log_limit		 lim_register_rate;
	struct log_limit		 lim_shed;	/* 503s */
	uint64_t			 clients_forgotten_seen;  /* counted */
	bool				 stopping;
	bool				 ready;	/* GET /ready: once, for good */
	int64_t				 stop_deadline_ms;
	struct event			*stop_ev;
};

/* proxy.c */
struct proxy_job *proxy_job_new(struct proxy *, enum proxy_purpose,
	    struct api_request *, const char *input, size_t len);
void	proxy_job_free(struct proxy_job *);
void	proxy_reply(struct proxy_job *, unsigned int status, const char *);
/* The push path is saturated (why: the shed metric's reason): 503 with
 * Retry-After (at least a second) to a request that waits, counted. */
void	proxy_shed(struct proxy_job *, const char *why, int64_t retry_ms);
/* Send the job's parsed token to its provider: 0 (the answer comes to
 * proxy.c's push callback), or -1 and err (nothing was sent). */
int	proxy_push(struct proxy_job *, char err[ERR_LEN]);
/* Send a /notify's push now (no window, or no room to owe it). */
void	proxy_send_leading(struct proxy_job *);
/* Decrypt a PURPOSE_LOAD job's input: 0, or -1 when the workers are busy
 * (the job is the caller's again). */
int	proxy_start_load(struct proxy_job *);
/* A provider result made up here, for a push that could not be sent. */
void	proxy_result_set(struct provider_result *, enum provider_verdict,
	    const char *reason);
void	proxy_count_failure(struct proxy *, const char *provider,
	    const char *reason, const char *details);
const char *proxy_provider_label(enum token_kind);

/* proxy_owed.c */
int	proxy_owed_open(struct proxy *, char err[ERR_LEN]);
void	proxy_owed_close(struct proxy *);
void	proxy_owed_metrics(struct proxy *);
/* A /notify whose token is known: owe it (answered 200 after the commit)
 * or send it now (answered with the verdict). */
void	proxy_owed_request(struct proxy_job *);
/* The leading push of a /notify ended. */
void	proxy_owed_leading_done(struct proxy_job *,
	    const struct provider_result *);
/* An owed push ended (the job is freed). */
void	proxy_owed_trailing_done(struct proxy_job *,
	    const struct provider_result *);
/* A stored owed push was decrypted again (the job is freed). */
void	proxy_owed_loaded(struct proxy_job *);
/* A push another instance owed and can no longer send (the shared
 * state's takeover, state_redis.h): owed here, at once. */
void	proxy_owed_adopt(void *px, const char *input, size_t len,
	    int64_t first_ms);
/* Something changed: store it (once per loop pass) and re-arm. */
void	proxy_owed_kick(struct proxy *);
/* Stores what is left before the process ends. */
void	proxy_owed_final_commit(struct proxy *);
/* The owed pushes' and windows' gauges, brought up to date. */
void	proxy_owed_gauges(struct proxy *);

#endif
