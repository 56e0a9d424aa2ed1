/* A provider's wait queue in front of its bucket in the state, shared
 * fairly between clients; see ratelimit.h.
 *
 * Every waiting push is on two lists: its client's FIFO (the order it is
 * served in) and the queue's list by arrival (the order the deadlines
 * fall in: every push waits at most the same max_wait, so the oldest is
 * always the first to expire, and it is also the head of its client's
 * FIFO). Clients with pushes waiting sit in a ring, served one push per
 * turn, and in a hash table by key; a client whose FIFO empties leaves
 * both. */
#include <sys/queue.h>
#include <sys/random.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "ratelimit.h"
#include "siphash.h"
#include "state.h"
#include "xmalloc.h"

/* A refused push is told to come back after its estimated wait, and
 * never sooner than this: a relay that retries at once only adds load. */
#define RATELIMIT_RETRY_MIN_MS	1000
/* Hash buckets: one per two waiting pushes at most (every client has one
 * waiting at least), within these. */
#define RATELIMIT_BUCKETS_MIN	16
#define RATELIMIT_BUCKETS_MAX	((size_t)1 << 20)

struct rl_client;

struct rl_item {
	void			*item;
	int64_t			 since_ms;
	struct rl_client	*cl;
	TAILQ_ENTRY(rl_item)	 by_client;
	TAILQ_ENTRY(rl_item)	 by_age;
};
TAILQ_HEAD(rl_item_list, rl_item);

struct rl_client {
	struct ratelimit_client	 id;
	struct rl_item_list	 items;		/* its FIFO */
	size_t			 n;
	TAILQ_ENTRY(rl_client)	 ring;
	struct rl_client	*chain;		/* hash bucket */
};
TAILQ_HEAD(rl_client_ring, rl_client);

/* One take asked of the state, for the client whose turn it is. Its own
 * allocation so that an answer arriving after ratelimit_free finds rl
 * NULL. */
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
	struct rl_item_list	 age;		/* every waiting push */
	size_t			 count;
	struct rl_client_ring	 ring;		/* clients, in turn order */
	size_t			 nclients;
	struct rl_client	**buckets;
	size_t			 nbuckets;	/* a power of two */
	struct siphash_key	 hkey;
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
	uint8_t key[SIPHASH_KEY_LEN];
	size_t n = RATELIMIT_BUCKETS_MIN;

	rl->cfg = *cfg;
	if (rl->cfg.max_queue == 0)
		rl->cfg.max_queue = 1;
	if (rl->cfg.max_client_queue == 0 ||
	    rl->cfg.max_client_queue > rl->cfg.max_queue)
		rl->cfg.max_client_queue = rl->cfg.max_queue;
	rl->state = state;
	rl->answer_ms = -1;
	TAILQ_INIT(&rl->age);
	TAILQ_INIT(&rl->ring);
	while (n < rl->cfg.max_queue / 2 && n < RATELIMIT_BUCKETS_MAX)
		n <<= 1;
	rl->buckets = xcalloc(n, sizeof(*rl->buckets));
	rl->nbuckets = n;
	/* Keyed, so that a peer choosing its addresses cannot pile them
	 * into one bucket; without randomness it still works, guessably. */
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
		memset(key, 0, sizeof(key));
		memcpy(key, &rl, sizeof(rl));
	}
	siphash_key_set(&rl->hkey, key);
	rl->timer = evtimer_new(base, ratelimit_on_timer, rl);
	rl->go = go;
	rl->arg = arg;
	return rl;
}

/* ---- clients ---------------------------------------------------------- */

static struct rl_client **
ratelimit_bucket(struct ratelimit *rl, const struct ratelimit_client *id)
{
	uint8_t d[SIPHASH_DIGEST_LEN];

	siphash128(&rl->hkey, id->key, sizeof(id->key), d);
	return &rl->buckets[siphash_digest_u64(d) & (rl->nbuckets - 1)];
}

static struct rl_client *
ratelimit_client_find(struct ratelimit *rl, const struct ratelimit_client *id)
{
	struct rl_client *cl;

	for (cl = *ratelimit_bucket(rl, id); cl != NULL; cl = cl->chain)
		if (memcmp(cl->id.key, id->key, sizeof(id->key)) == 0)
			return cl;
	return NULL;
}

/* A client gets its first waiting push: into the table and, last, into
 * the ring (it is served after every client already waiting). */
static struct rl_client *
ratelimit_client_add(struct ratelimit *rl, const struct ratelimit_client *id)
{
	struct rl_client **b = ratelimit_bucket(rl, id);
	struct rl_client *cl = xcalloc(1, sizeof(*cl));

	cl->id = *id;
	TAILQ_INIT(&cl->items);
	cl->chain = *b;
	*b = cl;
	TAILQ_INSERT_TAIL(&rl->ring, cl, ring);
	rl->nclients++;
	return cl;
}

static void
ratelimit_client_remove(struct ratelimit *rl, struct rl_client *cl)
{
	struct rl_client **pp;

	for (pp = ratelimit_bucket(rl, &cl->id); *pp != cl;
	    pp = &(*pp)->chain)
		;
	*pp = cl->chain;
	TAILQ_REMOVE(&rl->ring, cl, ring);
	rl->nclients--;
	free(cl);
}

/* Takes wi out of both lists (and its client out of the ring when it has
 * no more): its item. */
static void *
ratelimit_unlink(struct ratelimit *rl, struct rl_item *wi)
{
	struct rl_client *cl = wi->cl;
	void *item = wi->item;

	TAILQ_REMOVE(&cl->items, wi, by_client);
	TAILQ_REMOVE(&rl->age, wi, by_age);
	cl->n--;
	rl->count--;
	if (cl->n == 0)
		ratelimit_client_remove(rl, cl);
	free(wi);
	return item;
}

/* The push whose turn it is: the head of the first client in the ring,
 * which then goes to the ring's end. */
static void *
ratelimit_pop_turn(struct ratelimit *rl)
{
	struct rl_client *cl = TAILQ_FIRST(&rl->ring);

	if (cl->n > 1) {
		TAILQ_REMOVE(&rl->ring, cl, ring);
		TAILQ_INSERT_TAIL(&rl->ring, cl, ring);
	}
	return ratelimit_unlink(rl, TAILQ_FIRST(&cl->items));
}

/* ---- the state's buckets ---------------------------------------------- */

/* The state's answer to a take: 0, a token was taken for the push whose
 * turn it is; else wait that long before asking again. */
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

/* When nothing may be sent before: the pause told here, or the bucket's
 * last "wait". */
static int64_t
ratelimit_blocked_until(const struct ratelimit *rl)
{
	return rl->retry_at_ms > rl->paused_until_ms ? rl->retry_at_ms :
	    rl->paused_until_ms;
}

/* Wakes up for the next try or the oldest push's deadline. */
static void
ratelimit_arm(struct ratelimit *rl, int64_t now)
{
	struct rl_item *oldest = TAILQ_FIRST(&rl->age);
	int64_t at, wait;
	struct timeval tv;

	if (oldest == NULL || rl->ask != NULL) {
		evtimer_del(rl->timer);
		return;
	}
	at = ratelimit_blocked_until(rl);
	if (oldest->since_ms + rl->cfg.max_wait_ms < at)
		at = oldest->since_ms + rl->cfg.max_wait_ms;
	wait = at > now ? at - now : 0;
	tv.tv_sec = wait / 1000;
	tv.tv_usec = (wait % 1000) * 1000;
	evtimer_add(rl->timer, &tv);
}

/* An answer is in rl->answer_ms: send the push whose turn it is, or note
 * when to ask again. */
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
		rl->go(ratelimit_pop_turn(rl), true, rl->arg);
}

/* Hands out what may go: the overdue refused, then a push per token the
 * state gives, round-robin, until it says wait or answers later. */
static void
ratelimit_drain(struct ratelimit *rl)
{
	int64_t now = ratelimit_now(rl);
	struct rl_item *oldest;

	if (rl->answer_ms >= 0)
		ratelimit_use_answer(rl, now);
	while (rl->count > 0 && rl->ask == NULL) {
		oldest = TAILQ_FIRST(&rl->age);
		if (now - oldest->since_ms >= rl->cfg.max_wait_ms) {
			rl->refused++;
			rl->go(ratelimit_unlink(rl, oldest), false, rl->arg);
			continue;
		}
		if (now < ratelimit_blocked_until(rl))
			break;
		ratelimit_take(rl, now);
		if (rl->ask != NULL)
			break;		/* the answer comes later */
		ratelimit_use_answer(rl, now);
	}
	ratelimit_arm(rl, now);
}

/* ---- admission -------------------------------------------------------- */

/* Milliseconds until a push of a client with `ahead` pushes waiting would
 * get its turn, with nclients clients waiting (its own included): the
 * pause or the bucket's "wait", then a token for each push served before
 * it. Round-robin serves at most nclients per turn and this push in turn
 * ahead + 1, and never more than every push waiting goes first. An upper
 * bound: the bucket may have a burst left. */
static int64_t
ratelimit_estimate(const struct ratelimit *rl, size_t ahead, size_t nclients,
    int64_t now)
{
	int64_t at = ratelimit_blocked_until(rl);
	int64_t wait = at > now ? at - now : 0;
	double before;

	if (rl->cfg.rate <= 0)
		return wait;	/* only pauses and the state hold it */
	before = (double)(ahead + 1) * (double)nclients - 1;
	if (before > (double)rl->count)
		before = (double)rl->count;
	return wait + (int64_t)ceil(before * 1000.0 / rl->cfg.rate);
}

/* -1 with why and when to come back, for admit. */
static int
ratelimit_refuse(struct ratelimit *rl, enum ratelimit_refusal why,
    int64_t wait_ms, enum ratelimit_refusal *why_out, int64_t *retry_ms_out)
{
	rl->refused++;
	*why_out = why;
	*retry_ms_out = wait_ms > RATELIMIT_RETRY_MIN_MS ? wait_ms :
	    RATELIMIT_RETRY_MIN_MS;
	return -1;
}

static void
ratelimit_queue(struct ratelimit *rl, struct rl_client *cl,
    const struct ratelimit_client *id, void *item, int64_t now)
{
	struct rl_item *wi = xcalloc(1, sizeof(*wi));

	if (cl == NULL)
		cl = ratelimit_client_add(rl, id);
	wi->item = item;
	wi->since_ms = now;
	wi->cl = cl;
	TAILQ_INSERT_TAIL(&cl->items, wi, by_client);
	TAILQ_INSERT_TAIL(&rl->age, wi, by_age);
	cl->n++;
	rl->count++;
	rl->delayed++;
}

int
ratelimit_admit(struct ratelimit *rl, const struct ratelimit_client *id,
    void *item, enum ratelimit_refusal *why_out, int64_t *retry_ms_out)
{
	int64_t now = ratelimit_now(rl), est;
	struct rl_client *cl;
	bool was_empty = rl->count == 0;

	/* Nobody waits and nothing holds us back: ask for a token now. */
	if (rl->count == 0 && rl->ask == NULL &&
	    now >= ratelimit_blocked_until(rl)) {
		ratelimit_take(rl, now);
		if (rl->answer_ms == 0) {
			rl->answer_ms = -1;
			return 1;
		}
		if (rl->answer_ms > 0)
			rl->retry_at_ms = now + rl->answer_ms;
		rl->answer_ms = -1;
		/* Otherwise it waits for the time said, or for the answer
		 * (which hands it out: it will be the only one). */
	}
	if (rl->count >= rl->cfg.max_queue)
		return ratelimit_refuse(rl, RATELIMIT_QUEUE_FULL,
		    ratelimit_estimate(rl, 0, rl->nclients + 1, now), why_out,
		    retry_ms_out);
	cl = ratelimit_client_find(rl, id);
	if (cl != NULL && cl->n >= rl->cfg.max_client_queue)
		return ratelimit_refuse(rl, RATELIMIT_CLIENT_FULL,
		    ratelimit_estimate(rl, cl->n, rl->nclients, now), why_out,
		    retry_ms_out);
	est = ratelimit_estimate(rl, cl != NULL ? cl->n : 0, rl->nclients +
	    (cl == NULL ? 1 : 0), now);
	if (est > rl->cfg.max_wait_ms)
		return ratelimit_refuse(rl, RATELIMIT_TOO_LONG, est, why_out,
		    retry_ms_out);
	ratelimit_queue(rl, cl, id, item, now);
	if (was_empty)
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

size_t
ratelimit_clients(const struct ratelimit *rl)
{
	return rl->nclients;
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

const char *
ratelimit_refusal_name(enum ratelimit_refusal why)
{
	switch (why) {
	case RATELIMIT_QUEUE_FULL: return "queue_full";
	case RATELIMIT_CLIENT_FULL: return "client_queue_full";
	case RATELIMIT_TOO_LONG: return "queue_wait";
	case RATELIMIT_WAITED: return "queue_waited";
	}
	return "queue";
}

void
ratelimit_free(struct ratelimit *rl, void (*cancel)(void *, void *))
{
	struct rl_item *wi;

	if (rl == NULL)
		return;
	if (rl->ask != NULL)
		rl->ask->rl = NULL;	/* its answer finds nobody */
	while ((wi = TAILQ_FIRST(&rl->age)) != NULL) {
		void *item = ratelimit_unlink(rl, wi);

		if (cancel != NULL)
			cancel(item, rl->arg);
	}
	free(rl->spare);
	event_free(rl->timer);
	free(rl->buckets);
	free(rl);
}
