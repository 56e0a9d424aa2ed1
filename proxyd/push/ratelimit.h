/*
 * Rate limiting toward one provider: the provider's bucket in the shared
 * state (state.h: N pushes per second, bursts up to B, paused while the
 * provider asked us to back off, Retry-After), and here the pushes
 * waiting for it, shared fairly between clients.
 *
 * Each client (a relay's address, or one of proxyd's own senders: the
 * caller decides, ratelimit_client) has a FIFO of its waiting pushes, and
 * the clients with pushes waiting are served round-robin, one push each
 * per turn: a client flooding the provider's queue lengthens its own FIFO,
 * not the others' wait, which stays about (clients waiting) / rate. The
 * table of clients holds only those with pushes waiting, so it is bounded
 * by max_queue.
 *
 * Nothing is accepted that would wait past max_wait: a push is refused at
 * once (-1, and the caller answers 503 with Retry-After) when the queue
 * holds max_queue pushes, when its client has max_client_queue waiting, or
 * when its turn would come later than max_wait (estimated from its place
 * in its client's FIFO, the clients waiting and the rate, and any pause).
 * One that still waits max_wait (the rate or a pause changed) is refused
 * then. Nothing is dropped silently.
 *
 * The queue asks the state for one token at a time, for the client whose
 * turn it is, and waits for the answer (the embedded backend gives it at
 * once, a shared one later); an answer "wait w ms" arms a timer. One loop
 * thread. The clock can be a test's (the loop's timers still run in real
 * time).
 */
#ifndef RATELIMIT_H
#define RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A client: 16 bytes, an address in api_addr.h's client form, or a key
 * of proxyd's own that no address has (proxy.c). */
#define RATELIMIT_CLIENT_LEN	16

struct event_base;
struct ratelimit;
struct state;

struct ratelimit_client {
	uint8_t		 key[RATELIMIT_CLIENT_LEN];
};

struct ratelimit_config {
	const char	*name;		/* the state's bucket (borrowed) */
	double		 rate;		/* per second; 0: unlimited */
	double		 burst;		/* 0: one second's worth */
	size_t		 max_queue;	/* waiting pushes, all clients */
	size_t		 max_client_queue; /* per client; 0: max_queue */
	int64_t		 max_wait_ms;	/* per waiting push */
	/* Monotonic milliseconds; NULL: clock_mono_ms (tests set theirs). */
	int64_t		(*clock_ms)(void *arg);
	void		*clock_arg;
};

/* Why a push was refused. */
enum ratelimit_refusal {
	RATELIMIT_QUEUE_FULL,	/* max_queue pushes wait */
	RATELIMIT_CLIENT_FULL,	/* its client has max_client_queue waiting */
	RATELIMIT_TOO_LONG,	/* its turn would come after max_wait */
	RATELIMIT_WAITED,	/* it waited max_wait (go_fn, go false) */
};

/* A queued item's turn came (go true: send it now) or it waited too long
 * (go false: refuse it, RATELIMIT_WAITED). */
typedef void ratelimit_go_fn(void *item, bool go, void *arg);

/* A queue in front of bucket cfg->name of state (borrowed: it outlives
 * the queue). */
struct ratelimit *ratelimit_new(struct event_base *, struct state *,
	    const struct ratelimit_config *, ratelimit_go_fn *, void *arg);
/* item of client (borrowed for the call): 1, send it now; 0, queued,
 * go_fn will be called for it (never from inside this call); -1, refused:
 * why in *why_out, and in *retry_ms_out how long the caller should ask
 * its client to wait before trying again (at least a second). */
int	ratelimit_admit(struct ratelimit *, const struct ratelimit_client *,
	    void *item, enum ratelimit_refusal *why_out,
	    int64_t *retry_ms_out);
/* The provider said to wait ms (Retry-After; a default when it gave
 * none): nothing is sent before, queued items wait (up to max_wait). */
void	ratelimit_pause(struct ratelimit *, int64_t ms);
/* Whether a pause told here is still running (this instance's view). */
bool	ratelimit_paused(const struct ratelimit *);
/* Pushes waiting, and the clients they belong to. */
size_t	ratelimit_queued(const struct ratelimit *);
size_t	ratelimit_clients(const struct ratelimit *);
/* Counters for metrics: pushes that had to wait, refusals. */
uint64_t ratelimit_delayed_total(const struct ratelimit *);
uint64_t ratelimit_refused_total(const struct ratelimit *);
const char *ratelimit_refusal_name(enum ratelimit_refusal);
/* Items still queued are handed to cancel, oldest first; an answer the
 * state still owes is dropped. NULL is a no-op. */
void	ratelimit_free(struct ratelimit *, void (*cancel)(void *item,
	    void *arg));

#endif
