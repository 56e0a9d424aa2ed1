/*
 * Rate limiting toward one provider: a token bucket (N pushes per second,
 * bursts up to B), a pause while the provider asked us to back off
 * (Retry-After), and a bounded FIFO of pushes waiting for either to pass.
 * A push waits at most max_wait; then, or when the queue is full, it is
 * refused and the caller answers 500, so the relay retries later. Nothing
 * is dropped silently.
 *
 * One loop thread. The bucket's arithmetic is exposed for unit tests;
 * the clock can be a test's (the loop's timers still run in real time).
 */
#ifndef RATELIMIT_H
#define RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct ratelimit;

/* tokens refill at rate per second up to burst; rate 0: unlimited. */
struct token_bucket {
	double	 rate;
	double	 burst;
	double	 tokens;
	int64_t	 last_ms;
};

void	token_bucket_init(struct token_bucket *, double rate, double burst,
	    int64_t now_ms);
/* Takes one token if there is one. */
bool	token_bucket_take(struct token_bucket *, int64_t now_ms);
/* Milliseconds until a token is there (0: now). */
int64_t	token_bucket_wait_ms(struct token_bucket *, int64_t now_ms);

struct ratelimit_config {
	double		 rate;		/* per second; 0: unlimited */
	double		 burst;		/* 0: one second's worth */
	size_t		 max_queue;	/* waiting pushes */
	int64_t		 max_wait_ms;	/* per waiting push */
	/* Monotonic milliseconds; NULL: clock_mono_ms (tests set theirs). */
	int64_t		(*clock_ms)(void *arg);
	void		*clock_arg;
};

/* A queued item's turn came (go true: send it now) or it waited too long
 * (go false: refuse it). */
typedef void ratelimit_go_fn(void *item, bool go, void *arg);

struct ratelimit *ratelimit_new(struct event_base *,
	    const struct ratelimit_config *, ratelimit_go_fn *, void *arg);
/* 1: send item now; 0: queued, go_fn will be called for it (never from
 * inside this call); -1: the queue is full, refuse it. */
int	ratelimit_admit(struct ratelimit *, void *item);
/* The provider said to wait ms (Retry-After; a default when it gave
 * none): nothing is sent before, queued items wait (up to max_wait). */
void	ratelimit_pause(struct ratelimit *, int64_t ms);
bool	ratelimit_paused(const struct ratelimit *);
size_t	ratelimit_queued(const struct ratelimit *);
/* Counters for metrics: pushes that had to wait, refusals. */
uint64_t ratelimit_delayed_total(const struct ratelimit *);
uint64_t ratelimit_refused_total(const struct ratelimit *);
/* Items still queued are handed to cancel. NULL is a no-op. */
void	ratelimit_free(struct ratelimit *, void (*cancel)(void *item,
	    void *arg));

#endif
