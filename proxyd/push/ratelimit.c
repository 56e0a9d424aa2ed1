/* Token bucket, pause and wait queue per provider; see ratelimit.h. */
#include <stdlib.h>

#include <event2/event.h>

#include "clock.h"
#include "ratelimit.h"
#include "xmalloc.h"

void
token_bucket_init(struct token_bucket *tb, double rate, double burst,
    int64_t now_ms)
{
	tb->rate = rate;
	tb->burst = burst > 0 ? burst : rate > 1 ? rate : 1;
	tb->tokens = tb->burst;
	tb->last_ms = now_ms;
}

static void
token_bucket_refill(struct token_bucket *tb, int64_t now_ms)
{
	if (now_ms > tb->last_ms) {
		tb->tokens += (double)(now_ms - tb->last_ms) * tb->rate / 1000.0;
		if (tb->tokens > tb->burst)
			tb->tokens = tb->burst;
		tb->last_ms = now_ms;
	}
}

bool
token_bucket_take(struct token_bucket *tb, int64_t now_ms)
{
	if (tb->rate <= 0)
		return true;
	token_bucket_refill(tb, now_ms);
	if (tb->tokens < 1.0)
		return false;
	tb->tokens -= 1.0;
	return true;
}

int64_t
token_bucket_wait_ms(struct token_bucket *tb, int64_t now_ms)
{
	double missing;

	if (tb->rate <= 0)
		return 0;
	token_bucket_refill(tb, now_ms);
	if (tb->tokens >= 1.0)
		return 0;
	missing = 1.0 - tb->tokens;
	/* Rounded up: waking a millisecond early would find no token. */
	return (int64_t)(missing * 1000.0 / tb->rate) + 1;
}

struct waiting {
	void		*item;
	int64_t		 since_ms;
};

struct ratelimit {
	struct ratelimit_config	 cfg;
	struct token_bucket	 bucket;
	int64_t			 paused_until_ms;
	struct waiting		*ring;		/* max_queue slots */
	size_t			 head, count;
	struct event		*timer;
	ratelimit_go_fn		*go;
	void			*arg;
	uint64_t		 delayed, refused;
};

static void	ratelimit_on_timer(evutil_socket_t, short, void *);

static int64_t
ratelimit_now(const struct ratelimit *rl)
{
	return rl->cfg.clock_ms != NULL ? rl->cfg.clock_ms(rl->cfg.clock_arg) :
	    clock_mono_ms();
}

struct ratelimit *
ratelimit_new(struct event_base *base, const struct ratelimit_config *cfg,
    ratelimit_go_fn *go, void *arg)
{
	struct ratelimit *rl = xcalloc(1, sizeof(*rl));

	rl->cfg = *cfg;
	if (rl->cfg.max_queue == 0)
		rl->cfg.max_queue = 1;
	token_bucket_init(&rl->bucket, cfg->rate, cfg->burst,
	    ratelimit_now(rl));
	rl->ring = xcalloc(rl->cfg.max_queue, sizeof(*rl->ring));
	rl->timer = evtimer_new(base, ratelimit_on_timer, rl);
	rl->go = go;
	rl->arg = arg;
	return rl;
}

static bool
ratelimit_can_send(struct ratelimit *rl, int64_t now)
{
	return now >= rl->paused_until_ms &&
	    token_bucket_take(&rl->bucket, now);
}

/* Wakes up for the next queued item's turn or deadline. */
static void
ratelimit_arm(struct ratelimit *rl, int64_t now)
{
	int64_t wait, deadline;
	struct timeval tv;

	if (rl->count == 0) {
		evtimer_del(rl->timer);
		return;
	}
	wait = rl->paused_until_ms > now ? rl->paused_until_ms - now :
	    token_bucket_wait_ms(&rl->bucket, now);
	deadline = rl->ring[rl->head].since_ms + rl->cfg.max_wait_ms - now;
	if (deadline < wait)
		wait = deadline > 0 ? deadline : 0;
	tv.tv_sec = wait / 1000;
	tv.tv_usec = (wait % 1000) * 1000;
	evtimer_add(rl->timer, &tv);
}

int
ratelimit_admit(struct ratelimit *rl, void *item)
{
	int64_t now = ratelimit_now(rl);
	struct waiting *w;

	/* First come, first served: nobody overtakes the queue. */
	if (rl->count == 0 && ratelimit_can_send(rl, now))
		return 1;
	if (rl->count == rl->cfg.max_queue) {
		rl->refused++;
		return -1;
	}
	w = &rl->ring[(rl->head + rl->count) % rl->cfg.max_queue];
	w->item = item;
	w->since_ms = now;
	rl->count++;
	rl->delayed++;
	if (rl->count == 1)
		ratelimit_arm(rl, now);
	return 0;
}

static void *
ratelimit_pop(struct ratelimit *rl)
{
	void *item = rl->ring[rl->head].item;

	rl->head = (rl->head + 1) % rl->cfg.max_queue;
	rl->count--;
	return item;
}

static void
ratelimit_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct ratelimit *rl = arg;
	int64_t now = ratelimit_now(rl);
	void *item;

	(void)fd;
	(void)what;
	while (rl->count > 0) {
		if (now - rl->ring[rl->head].since_ms >= rl->cfg.max_wait_ms) {
			item = ratelimit_pop(rl);
			rl->refused++;
			rl->go(item, false, rl->arg);
		} else if (ratelimit_can_send(rl, now)) {
			item = ratelimit_pop(rl);
			rl->go(item, true, rl->arg);
		} else
			break;
	}
	ratelimit_arm(rl, now);
}

void
ratelimit_pause(struct ratelimit *rl, int64_t ms)
{
	int64_t now = ratelimit_now(rl);

	if (now + ms > rl->paused_until_ms)
		rl->paused_until_ms = now + ms;
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
	while (rl->count > 0) {
		void *item = ratelimit_pop(rl);

		if (cancel != NULL)
			cancel(item, rl->arg);
	}
	event_free(rl->timer);
	free(rl->ring);
	free(rl);
}
