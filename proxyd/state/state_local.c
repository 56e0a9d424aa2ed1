/*
 * The embedded state backend; see state_local.h. Windows: debounce.c,
 * with a timer that drops closed ones (memory only: a closed window's
 * answer is right whether or not it was dropped). Schedule:
 * heartbeat_store.c. Buckets: token buckets by name, with a pause.
 * Clients: client_buckets.c, a bounded table of buckets per address.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "client_buckets.h"
#include "clock.h"
#include "heartbeat_store.h"
#include "state_local.h"
#include "token_bucket.h"
#include "xmalloc.h"

#define STATE_LOCAL_CLAIM_MAX	256	/* registrations per claim */

struct state_bucket {
	char			 name[24];
	struct token_bucket	 tb;
	int64_t			 paused_until_ms;
};

struct state_local {
	struct state		 base;		/* first: what callers see */
	struct debounce		*windows;
	struct event		*expiry;
	struct heartbeat_store	*hb;
	struct state_bucket	 buckets[STATE_LOCAL_MAX_BUCKETS];
	size_t			 nbuckets;
	uint64_t		 failures;
	int64_t			 hb_count;	/* -1: not counted yet */
	struct client_buckets	*clients;
	uint64_t		 clients_forgotten;
};

static struct state_local *
state_local(struct state *s)
{
	return (struct state_local *)s;
}

/* ---- windows ------------------------------------------------------------ */

static void
state_local_arm(struct state_local *l)
{
	int64_t next = debounce_next_deadline(l->windows), wait;
	struct timeval tv;

	if (l->expiry == NULL)
		return;
	if (next < 0) {
		evtimer_del(l->expiry);
		return;
	}
	wait = next - clock_wall_ms();
	if (wait < 0)
		wait = 0;
	tv.tv_sec = wait / 1000;
	tv.tv_usec = (wait % 1000) * 1000;
	evtimer_add(l->expiry, &tv);
}

static void
state_local_on_expiry(evutil_socket_t fd, short what, void *arg)
{
	struct state_local *l = arg;

	(void)fd;
	(void)what;
	debounce_expire(l->windows, clock_wall_ms());
	state_local_arm(l);
}

struct heartbeat_store *
state_local_heartbeats(struct state *s)
{
	return state_local(s)->hb;
}

void
state_local_expire(struct state *s, int64_t now_ms)
{
	debounce_expire(state_local(s)->windows, now_ms);
}

static void
state_local_window_hit(struct state *s, const char *token, size_t len,
    const char *input, size_t input_len, int64_t now_ms, state_window_fn *fn,
    void *arg)
{
	struct state_local *l = state_local(s);
	int64_t end = -1;
	enum debounce_action a;

	(void)input;		/* the owed pushes are this process's */
	(void)input_len;
	a = debounce_hit(l->windows, token, len, now_ms, &end);
	if (a == DEBOUNCE_SEND_NOW && end >= 0 &&
	    debounce_next_deadline(l->windows) == end)
		state_local_arm(l);	/* the only window: arm for it */
	fn(arg, a == DEBOUNCE_COALESCED ? STATE_WINDOW_OPEN : end >= 0 ?
	    STATE_WINDOW_OPENED : STATE_WINDOW_NONE, end);
}

static void
state_local_window_cancel(struct state *s, const char *token, size_t len)
{
	debounce_cancel(state_local(s)->windows, token, len);
}

static void
state_local_window_reopen(struct state *s, const char *token, size_t len,
    int64_t now_ms)
{
	struct state_local *l = state_local(s);
	int64_t end = debounce_reopen(l->windows, token, len, now_ms);

	if (end >= 0 && debounce_next_deadline(l->windows) == end)
		state_local_arm(l);
}

/* ---- the heartbeat schedule -------------------------------------------- */

/* Rows in the schedule: counted once (a scan), then followed. */
static int64_t
state_local_hb_count(struct state_local *l)
{
	if (l->hb != NULL && l->hb_count < 0)
		l->hb_count = heartbeat_store_count(l->hb, NULL);
	return l->hb_count;
}

static void
state_local_heartbeat_put(struct state *s, const char *token,
    int64_t next_at_ms, int64_t max_tokens, state_stored_fn *fn, void *arg)
{
	struct state_local *l = state_local(s);
	char err[ERR_LEN];
	int known;

	if (l->hb == NULL) {
		fn(arg, STATE_FAILED, "no heartbeat schedule");
		return;
	}
	/* The count follows puts and removes (counting is a scan). */
	if ((known = heartbeat_store_has(l->hb, token, err)) < 0) {
		fn(arg, STATE_FAILED, err);
		return;
	}
	if (!known && max_tokens > 0 && state_local_hb_count(l) >= max_tokens) {
		fn(arg, STATE_FULL, NULL);
		return;
	}
	if (heartbeat_store_put(l->hb, token, next_at_ms, err) < 0) {
		fn(arg, STATE_FAILED, err);
		return;
	}
	if (!known && l->hb_count >= 0)
		l->hb_count++;
	fn(arg, STATE_STORED, NULL);
}

static void
state_local_heartbeat_remove(struct state *s, const char *token)
{
	struct state_local *l = state_local(s);
	char err[ERR_LEN];
	int r = l->hb != NULL ? heartbeat_store_remove(l->hb, token, err) : -1;

	if (r < 0)
		l->failures++;
	else if (r == 1 && l->hb_count > 0)
		l->hb_count--;
}

static void
state_local_heartbeat_claim(struct state *s, int64_t now_ms, size_t max,
    int64_t (*next_at)(void *), void *next_arg, state_due_fn *fn, void *arg)
{
	struct state_local *l = state_local(s);
	struct heartbeat_due due[STATE_LOCAL_CLAIM_MAX];
	const char *tokens[STATE_LOCAL_CLAIM_MAX];
	char err[ERR_LEN];
	int64_t next = -1;
	size_t n = 0;
	int got;

	if (l->hb == NULL) {
		fn(arg, NULL, 0, -1, "no heartbeat schedule");
		return;
	}
	if (max > STATE_LOCAL_CLAIM_MAX)
		max = STATE_LOCAL_CLAIM_MAX;
	if ((got = heartbeat_store_due(l->hb, now_ms, max, due, err)) < 0) {
		fn(arg, NULL, 0, 0, err);
		return;
	}
	/* Moved before they are handed out: never twice in flight, and a
	 * crash now loses no registration. */
	for (int i = 0; i < got; i++) {
		if (heartbeat_store_put(l->hb, due[i].token, next_at(next_arg),
		    err) < 0) {
			l->failures++;
			continue;
		}
		tokens[n++] = due[i].token;
	}
	switch (heartbeat_store_next(l->hb, &next, err)) {
	case -1:
		next = 0;		/* unknown: ask again soon */
		break;
	case 0:
		next = -1;		/* nothing scheduled */
		break;
	}
	fn(arg, tokens, n, next, NULL);
	heartbeat_due_clear(due, (size_t)got);
}

/* ---- buckets ------------------------------------------------------------ */

static struct state_bucket *
state_local_bucket(struct state_local *l, const char *name, int64_t now_ms)
{
	struct state_bucket *b;

	for (size_t i = 0; i < l->nbuckets; i++)
		if (strcmp(l->buckets[i].name, name) == 0)
			return &l->buckets[i];
	if (l->nbuckets == STATE_LOCAL_MAX_BUCKETS)
		return NULL;
	b = &l->buckets[l->nbuckets++];
	snprintf(b->name, sizeof(b->name), "%s", name);
	/* Full; its rate comes with each take. */
	token_bucket_init(&b->tb, 0, 0, now_ms);
	return b;
}

static void
state_local_bucket_take(struct state *s, const char *name, double rate,
    double burst, int64_t now_ms, state_bucket_fn *fn, void *arg)
{
	struct state_local *l = state_local(s);
	struct state_bucket *b = state_local_bucket(l, name, now_ms);
	bool fresh;

	if (b == NULL) {		/* more providers than slots */
		l->failures++;
		fn(arg, 0);
		return;
	}
	if (now_ms < b->paused_until_ms) {
		fn(arg, b->paused_until_ms - now_ms);
		return;
	}
	fresh = b->tb.rate <= 0;	/* made by a pause, or unlimited */
	token_bucket_set(&b->tb, rate, burst);
	if (fresh)
		token_bucket_init(&b->tb, rate, burst, now_ms);
	if (token_bucket_take(&b->tb, now_ms))
		fn(arg, 0);
	else
		fn(arg, token_bucket_wait_ms(&b->tb, now_ms));
}

static void
state_local_bucket_pause(struct state *s, const char *name, int64_t ms,
    int64_t now_ms)
{
	struct state_local *l = state_local(s);
	struct state_bucket *b = state_local_bucket(l, name, now_ms);

	if (b == NULL)
		l->failures++;
	else if (now_ms + ms > b->paused_until_ms)
		b->paused_until_ms = now_ms + ms;
}

/* ---- per-client buckets ------------------------------------------------- */

static void
state_local_client_take(struct state *s, const void *key, size_t len,
    double rate, double burst, int64_t now_ms, state_bucket_fn *fn, void *arg)
{
	struct state_local *l = state_local(s);
	int evicted;
	int64_t wait;

	wait = client_buckets_take(l->clients, key, len, rate, burst, now_ms,
	    &evicted);
	if (evicted)
		l->clients_forgotten++;
	fn(arg, wait);
}

/* ---- the rest ----------------------------------------------------------- */

static void
state_local_get_stats(struct state *s, struct state_stats *out)
{
	struct state_local *l = state_local(s);
	struct debounce_stats ds;

	debounce_get_stats(l->windows, &ds);
	memset(out, 0, sizeof(*out));
	out->windows = ds.entries;
	out->window_bytes = ds.memory_bytes;
	out->heartbeat_tokens = state_local_hb_count(l);
	out->failures = l->failures;
	out->clients = client_buckets_count(l->clients);
	out->clients_forgotten = l->clients_forgotten;
}

static void
state_local_free(struct state *s)
{
	struct state_local *l = state_local(s);

	if (l->expiry != NULL)
		event_free(l->expiry);
	heartbeat_store_free(l->hb);
	client_buckets_free(l->clients);
	debounce_free(l->windows);
	OPENSSL_cleanse(l, sizeof(*l));
	free(l);
}

static const struct state_ops state_local_ops = {
	.name = "local",
	.window_hit = state_local_window_hit,
	.window_cancel = state_local_window_cancel,
	.window_reopen = state_local_window_reopen,
	.heartbeat_put = state_local_heartbeat_put,
	.heartbeat_remove = state_local_heartbeat_remove,
	.heartbeat_claim = state_local_heartbeat_claim,
	.bucket_take = state_local_bucket_take,
	.bucket_pause = state_local_bucket_pause,
	.client_take = state_local_client_take,
	.get_stats = state_local_get_stats,
	.free = state_local_free,
	/* .degraded NULL: everything is in this process, nothing to lose. */
};

struct state *
state_local_new(const struct state_local_config *cfg, char err[ERR_LEN])
{
	struct state_local *l = xcalloc(1, sizeof(*l));
	struct debounce_config dc;

	l->base.ops = &state_local_ops;
	l->hb_count = -1;
	memset(&dc, 0, sizeof(dc));
	dc.window_ms = cfg->window_ms;
	dc.max_entries = cfg->max_windows;
	memcpy(dc.key, cfg->window_key, sizeof(dc.key));
	if ((l->windows = debounce_new(&dc, err)) == NULL)
		goto fail;
	l->clients = client_buckets_new(cfg->max_clients, cfg->client_key);
	if (cfg->db != NULL && (l->hb = heartbeat_store_new(cfg->db,
	    err)) == NULL)
		goto fail;
	if (cfg->base != NULL)
		l->expiry = evtimer_new(cfg->base, state_local_on_expiry, l);
	return &l->base;
fail:
	state_local_free(&l->base);
	return NULL;
}
