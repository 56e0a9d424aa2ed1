/*
 * Rate limiting toward one provider: the provider's bucket in the shared
 * state (state.h: N pushes per second, bursts up to B, paused while the
 * provider asked us to back off, Retry-After), and here a bounded FIFO
 * of pushes waiting for it. A push waits at most max_wait; then, or when
 * the queue is full, it is refused and the caller answers 500, so the
 * relay retries later. Nothing is dropped silently.
 *
 * The queue asks the state for one token at a time, for the push at its
 * head, and waits for the answer (the embedded backend gives it at once,
 * a shared one later); an answer "wait w ms" arms a timer. One loop
 * thread. The clock can be a test's (the loop's timers still run in
 * real time).
 */
#ifndef RATELIMIT_H
#define RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct ratelimit;
struct state;

struct ratelimit_config {
	const char	*name;		/* the state's bucket (borrowed) */
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

/* A queue in front of bucket cfg->name of state (borrowed: it outlives
 * the queue). */
struct ratelimit *ratelimit_new(struct event_base *, struct state *,
	    const struct ratelimit_config *, ratelimit_go_fn *, void *arg);
/* 1: send item now; 0: queued, go_fn will be called for it (never from
 * inside this call); -1: the queue is full, refuse it. */
int	ratelimit_admit(struct ratelimit *, void *item);
/* The provider said to wait ms (Retry-After; a default when it gave
 * none): nothing is sent before, queued items wait (up to max_wait). */
void	ratelimit_pause(struct ratelimit *, int64_t ms);
/* Whether a pause told here is still running (this instance's view). */
bool	ratelimit_paused(const struct ratelimit *);
size_t	ratelimit_queued(const struct ratelimit *);
/* Counters for metrics: pushes that had to wait, refusals. */
uint64_t ratelimit_delayed_total(const struct ratelimit *);
uint64_t ratelimit_refused_total(const struct ratelimit *);
/* Items still queued are handed to cancel; an answer the state still
 * owes is dropped. NULL is a no-op. */
void	ratelimit_free(struct ratelimit *, void (*cancel)(void *item,
	    void *arg));

#endif
