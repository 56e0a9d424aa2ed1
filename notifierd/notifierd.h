/*
 * notifierd: drains the relay's notification queue (filled by
 * metadata-dictd) into the push proxy.
 *
 *   queue.c     SQLite: claim due jobs, record outcomes, statistics
 *   breaker.c   circuit breaker shared by all requests to the proxy
 *   notifier.c  the loop's logic: wake-ups, claims, outcomes, shutdown
 *   main.c      options, set-up, loop, tear-down
 *
 * A job leaves the database only after the proxy answered 200 (done) or
 * 410 (token gone: the token and all its jobs are deleted), or when its
 * deadline passed. Jobs are marked in flight while their request runs, and
 * jobs still marked at start-up (a crash) are retried: at least once.
 */
#ifndef NOTIFIERD_H
#define NOTIFIERD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "err.h"
#include "httpc.h"

struct event_base;
struct metric;

/* One queued notification, in memory while its request runs. */
struct job {
	int64_t		 id;
	int64_t		 token_id;
	char		*token;		/* owned; a secret: never logged */
	int64_t		 created_at;	/* unix ms */
	unsigned int	 attempts;	/* requests made before this one */
	int64_t		 started_us;	/* monotonic, for latency */
};

enum job_outcome {
	JOB_DONE,	/* 200: delivered */
	JOB_GONE,	/* 410: token dead, delete it */
	JOB_RETRY,	/* anything else: try again later */
};

/* queue.c */
struct queue;
struct queue *queue_open(const char *path, enum db_sync, char err[ERR_LEN]);
void	queue_close(struct queue *);
/* Jobs left in flight by a previous run become waiting again; returns
 * how many, or -1 and err. */
int	queue_requeue_in_flight(struct queue *, char err[ERR_LEN]);
/* Claims up to max due jobs (next_at <= now_ms), oldest due first, marks
 * them in flight and fills jobs_out (caller frees each with job_free).
 * Returns the count, or -1 and err. */
int	queue_claim(struct queue *, int64_t now_ms, size_t max,
	    struct job **jobs_out, char err[ERR_LEN]);
/* next_at of the earliest waiting job: 1 and *at_out, 0 if none, -1. */
int	queue_next_due(struct queue *, int64_t *at_out, char err[ERR_LEN]);
/* Outcomes are written in batches: begin, any number of the calls below,
 * commit. A failed commit leaves every job of the batch in flight in the
 * database, to be retried at the next start (or by the next batch). */
int	queue_batch_begin(struct queue *, char err[ERR_LEN]);
int	queue_job_done(struct queue *, const struct job *, char err[ERR_LEN]);
int	queue_token_gone(struct queue *, const struct job *, char err[ERR_LEN]);
int	queue_job_retry(struct queue *, const struct job *, int64_t next_at_ms,
	    char err[ERR_LEN]);
int	queue_job_release(struct queue *, const struct job *, char err[ERR_LEN]);
int	queue_batch_commit(struct queue *, char err[ERR_LEN]);
void	queue_batch_rollback(struct queue *);
/* Waiting and in-flight jobs, and the age of the oldest (0 if none). */
int	queue_stats(struct queue *, int64_t now_ms, int64_t *length_out,
	    int64_t *oldest_age_ms_out, char err[ERR_LEN]);
void	job_free(struct job *);

/* breaker.c */
struct breaker {
	unsigned int	 failures;	/* consecutive */
	unsigned int	 threshold;	/* failures that open it */
	int64_t		 open_until_ms;	/* monotonic; 0 when closed */
	int64_t		 cooldown_ms;	/* current, doubles per opening */
	int64_t		 min_cooldown_ms, max_cooldown_ms;
	bool		 probing;	/* half-open: one request out */
};
void	breaker_init(struct breaker *, unsigned int threshold,
	    int64_t min_cooldown_ms, int64_t max_cooldown_ms);
/* How many new requests may start now: 0 while open, 1 while probing,
 * `wanted` when closed. */
size_t	breaker_allow(struct breaker *, int64_t now_ms, size_t wanted);
/* Record an answer from the proxy (any HTTP status but 5xx counts as the
 * proxy being up) or a failure (no answer, 5xx). Returns true when this
 * call opened the breaker. */
bool	breaker_record(struct breaker *, bool proxy_ok, int64_t now_ms);
bool	breaker_is_open(const struct breaker *, int64_t now_ms);
/* The probe breaker_allow() granted was not sent (nothing was due). */
void	breaker_probe_unused(struct breaker *);

/* notifier.c */
struct notifier;
struct notifier_config {
	const char	*db_path;
	enum db_sync	 sync;
	const char	*wake_socket;		/* NULL: poll only */
	int64_t		 wake_interval_ms;	/* wake-up passes at most
						 * this often */
	unsigned int	 concurrency;
	int64_t		 retry_base_ms;
	int64_t		 deadline_ms;
	int64_t		 poll_ms;
	int64_t		 grace_ms;		/* in-flight time at SIGTERM */
	const char	*proxy_url;
	struct httpc_config http;
	const char	*metrics_addr;
};
struct notifier *notifier_new(struct event_base *,
	    const struct notifier_config *, char err[ERR_LEN]);
/* Stop claiming; finish in-flight requests within the grace period, then
 * break the loop. */
void	notifier_stop(struct notifier *);
void	notifier_free(struct notifier *);

/* Map an HTTP answer to what happens to the job. */
enum job_outcome notifier_classify(long status);

#endif
