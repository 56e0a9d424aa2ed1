/* A provider's wait queue in front of its bucket in the state; see
 * ratelimit.h. */
#include <stdlib.h>

#include <event2/event.h>

#include "clock.h"
#include "ratelimit.h"
#include "state.h"
#include "xmalloc.h"

struct waiting {
	void		*item;
	int64_t		 since_ms;
};

/* One take asked of the state, for the queue's head. Its own allocation
 * so that an answer arriving after ratelimit_free finds rl NULL. */
struct ratelimit_ask {
	struct ratelimit	*rl;	/* NULL: the queue is gone */
};

struct ratelimit {
	struct ratelimit_config	 cfg;
	struct state		*state;
	int64_t			 paused_until_ms;	/* told here */
	int64_t			 retry_at_ms;	/* the bucket said wait */
	struct ratelimit_ask	*ask;		/* a take in flight */
	struct ratelimit_ask	*spare;		/* the last one, for reuse */
	/* An answer given inside the take call (the embedded backend):
	 * kept here for the caller instead of acted on. */
	bool			 in_take;
	int64_t			 answer_ms;	/* -1: none yet */
	struct waiting		*ring;		/* max_queue slots */
	size_t			 head, count;
	struct event		*timer;
	ratelimit_go_fn		*go;
	void			*arg;
	uint64_t		 delayed, refused;
};

static void	ratelimit_on_timer(evutil_socket_t, short, void *);
static void	ratelimit_drain(struct ratelimit *);

static int64_t
ratelimit_now(const struct ratelimit *rl)
{
	return rl->cfg.clock_ms != NULL ? rl->cfg.clock_ms(rl->cfg.clock_arg) :
	    clock_mono_ms();
}

struct ratelimit *
ratelimit_new(struct event_base *base, struct state *state,
    const struct ratelimit_config *cfg, ratelimit_go_fn *go, void *arg)
{
	struct ratelimit *rl = xcalloc(1, sizeof(*rl));

	rl->cfg = *cfg;
	if (rl->cfg.max_queue == 0)
		rl->cfg.max_queue = 1;
	rl->state = state;
	rl->answer_ms = -1;
	rl->ring = xcalloc(rl->cfg.max_queue, sizeof(*rl->ring));
	rl->timer = evtimer_new(base, ratelimit_on_timer, rl);
	rl->go = go;
	rl->arg = arg;
	return rl;
}

/* The state's answer to a take: 0, a token was taken for the head;
 * else wait that long before asking again. */
static void
ratelimit_answered(void *arg, int64_t wait_ms)
{
	struct ratelimit_ask *ask = arg;
	struct ratelimit *rl = ask->rl;

	if (rl == NULL) {
		free(ask);
		return;
	}
	rl->ask = NULL;
	rl->spare = ask;	/* no allocation per push */
	rl->answer_ms = wait_ms > 0 ? wait_ms : 0;
	if (!rl->in_take)
		ratelimit_drain(rl);	/* a later answer: act on it now */
}

/* Asks the state for a token; the answer is in rl->answer_ms when it came
 * at once (and rl->ask is NULL), else it comes to ratelimit_answered. */
static void
ratelimit_take(struct ratelimit *rl, int64_t now)
{
	struct ratelimit_ask *ask = rl->spare != NULL ? rl->spare :
	    xcalloc(1, sizeof(*ask));

	rl->spare = NULL;
	ask->rl = rl;
	rl->ask = ask;
	rl->answer_ms = -1;
	rl->in_take = true;
	state_bucket_take(rl->state, rl->cfg.name, rl->cfg.rate,
	    rl->cfg.burst, now, ratelimit_answered, ask);
	rl->in_take = false;
}

/* Wakes up for the next try or the head's deadline. */
static void
ratelimit_arm(struct ratelimit *rl, int64_t now)
{
	int64_t at, wait;
	struct timeval tv;

	if (rl->count == 0 || rl->ask != NULL) {
		evtimer_del(rl->timer);
		return;
	}
	at = rl->retry_at_ms > rl->paused_until_ms ? rl->retry_at_ms :
	    rl->paused_until_ms;
	if (rl->ring[rl->head].since_ms + rl->cfg.max_wait_ms < at)
		at = rl->ring[rl->head].since_ms + rl->cfg.max_wait_ms;
	wait = at > now ? at - now : 0;
	tv.tv_sec = wait / 1000;
	tv.tv_usec = (wait % 1000) * 1000;
	evtimer_add(rl->timer, &tv);
}

static void *
ratelimit_pop(struct ratelimit *rl)
{
	void *item = rl->ring[rl->head].item;

	rl->head = (rl->head + 1) % rl->cfg.max_queue;
	rl->count--;
	return item;
}

/* An answer for the head is in rl->answer_ms: send it, or note when to
 * ask again. */
static void
ratelimit_use_answer(struct ratelimit *rl, int64_t now)
{
	int64_t wait = rl->answer_ms;

	rl->answer_ms = -1;
	if (wait > 0) {
		rl->retry_at_ms = now + wait;
		return;
	}
	if (rl->count > 0)
		rl->go(ratelimit_pop(rl), true, rl->arg);
}

/* Hands out what may go: the overdue refused, then the head each time the
 * state gives a token, until it says wait or answers later. */
static void
ratelimit_drain(struct ratelimit *rl)
{
	int64_t now = ratelimit_now(rl);

	if (rl->answer_ms >= 0)
		ratelimit_use_answer(rl, now);
	while (rl->count > 0 && rl->ask == NULL) {
		if (now - rl->ring[rl->head].since_ms >= rl->cfg.max_wait_ms) {
			rl->refused++;
			rl->go(ratelimit_pop(rl), false, rl->arg);
			continue;
		}
		if (now < rl->retry_at_ms || now < rl->paused_until_ms)
			break;
		ratelimit_take(rl, now);
		if (rl->ask != NULL)
			break;		/* the answer comes later */
		ratelimit_use_answer(rl, now);
	}
	ratelimit_arm(rl, now);
}

static void
ratelimit_queue(struct ratelimit *rl, void *item, int64_t now)
{
	struct waiting *w = &rl->ring[(rl->head + rl->count) %
	    rl->cfg.max_queue];

	w->item = item;
	w->since_ms = now;
	rl->count++;
}

int
ratelimit_admit(struct ratelimit *rl, void *item)
{
	int64_t now = ratelimit_now(rl);

	/* First come, first served: nobody overtakes the queue. */
	if (rl->count == 0 && rl->ask == NULL && now >= rl->retry_at_ms &&
	    now >= rl->paused_until_ms) {
		ratelimit_take(rl, now);
		if (rl->answer_ms == 0) {
			rl->answer_ms = -1;
			return 1;
		}
		if (rl->answer_ms > 0)
			rl->retry_at_ms = now + rl->answer_ms;
		rl->answer_ms = -1;
		/* Queued: it waits for the time said, or for the answer
		 * (which hands it out, as it is the head). */
		ratelimit_queue(rl, item, now);
		rl->delayed++;
		ratelimit_arm(rl, now);
		return 0;
	}
	if (rl->count == rl->cfg.max_queue) {
		rl->refused++;
		return -1;
	}
	ratelimit_queue(rl, item, now);
	rl->delayed++;
	if (rl->count == 1)
		ratelimit_arm(rl, now);
	return 0;
}

static void
ratelimit_on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ratelimit_drain(arg);
}

void
ratelimit_pause(struct ratelimit *rl, int64_t ms)
{
	int64_t now = ratelimit_now(rl);

	if (now + ms > rl->paused_until_ms)
		rl->paused_until_ms = now + ms;
	state_bucket_pause(rl->state, rl->cfg.name, ms, now);
	ratelimit_arm(rl, now);
}

bool
ratelimit_paused(const struct ratelimit *rl)
{
	return ratelimit_now(rl) < rl->paused_until_ms;
}

size_t
ratelimit_queued(const struct ratelimit *rl)
{
	return rl->count;
}

uint64_t
ratelimit_delayed_total(const struct ratelimit *rl)
{
	return rl->delayed;
}

uint64_t
ratelimit_refused_total(const struct ratelimit *rl)
{
	return rl->refused;
}

void
ratelimit_free(struct ratelimit *rl, void (*cancel)(void *, void *))
{
	if (rl == NULL)
		return;
	if (rl->ask != NULL)
		rl->ask->rl = NULL;	/* its answer finds nobody */
	while (rl->count > 0) {
		void *item = ratelimit_pop(rl);

		if (cancel != NULL)
			cancel(item, rl->arg);
	}
	free(rl->spare);
	event_free(rl->timer);
	free(rl->ring);
	free(rl);
}
