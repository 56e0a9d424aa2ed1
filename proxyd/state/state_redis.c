/*
 * The shared state backend over Redis; see state_redis.h, and
 * state_redis_scripts.h for the keys and the scripts.
 *
 * Every call that asks Redis keeps what its answer needs in a small
 * context (struct state_redis_ask), freed in the answer's callback;
 * redis_conn answers each command exactly once (NULL when it failed),
 * and then the embedded backend answers instead. A call Redis cannot
 * take at once (down, too many in flight) is answered by the embedded
 * backend before it returns, as that backend always does.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "clock.h"
#include "heartbeat_store.h"
#include "log.h"
#include "redis_conn.h"
#include "state_redis.h"
#include "state_redis_scripts.h"
#include "xmalloc.h"

#define STATE_REDIS_KEEP_MS	60000	/* an owed push's window, past e */
#define STATE_REDIS_LIVE_MS	3000	/* an instance's liveness key */
#define STATE_REDIS_TICK_MS	500	/* liveness, takeovers, gauges */
#define STATE_REDIS_GRACE_MS	30000	/* an alive owner's lateness */
#define STATE_REDIS_TAKEOVER_MAX 256	/* owed pushes looked at per tick */
#define STATE_REDIS_CLAIM_MAX	256	/* registrations per claim */
#define STATE_REDIS_SEED_BATCH	256	/* registrations per seeding step */
#define STATE_REDIS_ID_LEN	16	/* hex digits */
#define STATE_REDIS_KEY_MAX	64
/* Shared pauses kept and read per tick: as many as Web Push's own table
 * holds (webpush.h's WEBPUSH_ORIGIN_PAUSES). */
#define STATE_REDIS_PAUSES_MAX	64

struct state_redis {
	struct state		 base;		/* first: what callers see */
	struct state		*local;		/* the fallback, and the
						 * registrations' database */
	struct redis_conn	*rc;
	struct siphash_key	 key;
	int64_t			 window_ms;
	char			 id[STATE_REDIS_ID_LEN + 1];
	struct event		*tick;
	bool			 down_logged;
	char			 degraded[200];
	/* Seeding the shared schedule from this instance's registrations:
	 * a walk in token order, one batch in flight at a time. */
	bool			 seeding;
	size_t			 seed_wait;	/* answers due for the batch */
	char			*seed_after;
	uint64_t		 seeded;
	bool			 takeover_wait, poll_wait;
	void			(*on_pause)(void *, const char *, int64_t);
	void			(*on_takeover)(void *, const char *, size_t,
				    int64_t);
	void			*arg;
	struct redis_conn_stats	 last;		/* for the counters' deltas */
	struct {
		struct metric	*up, *pending, *commands, *failed, *refused,
				*errors, *timeouts, *connects, *master_changes,
				*fallbacks, *takeovers, *seeded;
	} m;
};

/* A call waiting for Redis: the state, the caller's answer, and what
 * the fallback needs (the token, the input, the rate...). */
struct state_redis_ask {
	struct state_redis	*r;
	union {
		state_window_fn	*window;
		state_stored_fn	*stored;
		state_due_fn	*due;
		state_bucket_fn	*bucket;
	} fn;
	void			*arg;
	int64_t			 now_ms, sent_ms;
	double			 rate, burst;
	int64_t			 max;
	size_t			 len, input_len;
	char			*input;		/* after the token */
	char			 token[];	/* or a bucket's name */
};

static struct state_redis *
state_redis(struct state *s)
{
	return (struct state_redis *)s;
}

/* Connected, and not closed (state_close). */
static bool
state_redis_up(const struct state_redis *r)
{
	return r->rc != NULL && redis_conn_up(r->rc);
}

static struct state_redis_ask *
state_redis_ask_new(struct state_redis *r, const char *token, size_t len,
    const char *input, size_t input_len, void *arg)
{
	struct state_redis_ask *a = xcalloc(1, sizeof(*a) + len + input_len +
	    2);

	a->r = r;
	a->arg = arg;
	a->len = len;
	a->input_len = input_len;
	memcpy(a->token, token, len);
	a->input = a->token + len + 1;
	if (input_len > 0)
		memcpy(a->input, input, input_len);
	a->sent_ms = clock_mono_ms();
	return a;
}

static void
state_redis_ask_free(struct state_redis_ask *a)
{
	OPENSSL_cleanse(a->token, a->len + a->input_len + 2);
	free(a);
}

/* A token's keys: "proxyd:<what><D>", D the hex digest of the token. */
struct state_redis_key {
	char	 key[STATE_REDIS_KEY_MAX];
	char	 hex[2 * SIPHASH_DIGEST_LEN + 1];
};

static void
state_redis_key(const struct state_redis *r, const char *what,
    const char *token, size_t len, struct state_redis_key *k)
{
	static const char digits[] = "0123456789abcdef";
	size_t plen = strlen(STATE_REDIS_PREFIX), wlen = strlen(what);
	uint8_t d[SIPHASH_DIGEST_LEN];

	/* Once or twice per push: no printf. */
	siphash128(&r->key, token, len, d);
	for (size_t i = 0; i < sizeof(d); i++) {
		k->hex[2 * i] = digits[d[i] >> 4];
		k->hex[2 * i + 1] = digits[d[i] & 0xf];
	}
	k->hex[2 * sizeof(d)] = '\0';
	memcpy(k->key, STATE_REDIS_PREFIX, plen);
	memcpy(k->key + plen, what, wlen);
	memcpy(k->key + plen + wlen, k->hex, sizeof(k->hex));
}

static void
state_redis_fallback(struct state_redis *r)
{
	metric_inc(r->m.fallbacks);
}

/* ---- windows ------------------------------------------------------------- */

/* HSET w:D i <the token as it arrived>: fire and forget. */
static void
state_redis_keep_input(struct state_redis *r, const struct state_redis_ask *a)
{
	struct state_redis_key k;
	struct redis_args args;

	state_redis_key(r, "w:", a->token, a->len, &k);
	redis_args_init(&args);
	redis_args_str(&args, "HSET");
	redis_args_str(&args, k.key);
	redis_args_str(&args, "i");
	redis_args_add(&args, a->input, a->input_len);
	(void)redis_conn_command(r->rc, NULL, NULL, &args);
}

static void
state_redis_on_hit(void *arg, const redisReply *rep)
{
	struct state_redis_ask *a = arg;
	struct state_redis *r = a->r;
	enum state_window w;
	int64_t left;

	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER ||
	    rep->element[1]->type != REDIS_REPLY_INTEGER) {
		state_redis_fallback(r);
		state_window_hit(r->local, a->token, a->len, a->input,
		    a->input_len, a->now_ms, a->fn.window, a->arg);
		state_redis_ask_free(a);
		return;
	}
	switch (rep->element[0]->integer) {
	case 0:
		w = STATE_WINDOW_OPENED;
		break;
	case 1:
		/* This instance owes the push: the token as it arrived goes
		 * with it, for another instance to send it if this one
		 * dies. Next on the connection, so before any takeover
		 * could look (the window has not ended). */
		state_redis_keep_input(r, a);
		/* FALLTHROUGH */
	case 3:
		w = STATE_WINDOW_OPEN;
		break;
	default:
		w = STATE_WINDOW_COVERED;
		break;
	}
	/* Redis's clock gave a duration: the end on ours, from when the
	 * question was asked (the answer's trip only shortens it). */
	left = rep->element[1]->integer;
	if (left < 0)
		left = 0;
	a->fn.window(a->arg, w, a->now_ms + left);
	state_redis_ask_free(a);
}

static void
state_redis_window_hit(struct state *s, const char *token, size_t len,
    const char *input, size_t input_len, int64_t now_ms, state_window_fn *fn,
    void *arg)
{
	struct state_redis *r = state_redis(s);
	struct state_redis_ask *a;
	struct state_redis_key k;
	struct redis_args args;

	if (!state_redis_up(r)) {
		state_redis_fallback(r);
		state_window_hit(r->local, token, len, input, input_len, now_ms,
		    fn, arg);
		return;
	}
	a = state_redis_ask_new(r, token, len, input, input_len, arg);
	a->fn.window = fn;
	a->now_ms = now_ms;
	state_redis_key(r, "w:", token, len, &k);
	redis_args_init(&args);
	redis_args_str(&args, k.key);
	redis_args_str(&args, STATE_REDIS_PREFIX "owed");
	redis_args_int(&args, r->window_ms);
	redis_args_str(&args, r->id);
	redis_args_str(&args, k.hex);
	redis_args_int(&args, STATE_REDIS_KEEP_MS);
	if (redis_conn_script(r->rc, SCRIPT_HIT, 2, state_redis_on_hit, a,
	    &args) < 0) {
		state_redis_ask_free(a);
		state_redis_fallback(r);
		state_window_hit(r->local, token, len, input, input_len, now_ms,
		    fn, arg);
	}
}

/* A push for the token goes out (owed_out: the owed one): fire and
 * forget, the embedded windows follow too (for a fallback). */
static void
state_redis_out(struct state_redis *r, const char *token, size_t len,
    bool owed_out)
{
	struct state_redis_key k;
	struct redis_args args;

	if (!state_redis_up(r))
		return;
	state_redis_key(r, "w:", token, len, &k);
	redis_args_init(&args);
	redis_args_str(&args, k.key);
	redis_args_str(&args, STATE_REDIS_PREFIX "owed");
	redis_args_int(&args, r->window_ms);
	redis_args_str(&args, k.hex);
	redis_args_str(&args, r->id);
	redis_args_int(&args, owed_out);
	(void)redis_conn_script(r->rc, SCRIPT_OUT, 2, NULL, NULL, &args);
}

static void
state_redis_window_cancel(struct state *s, const char *token, size_t len)
{
	struct state_redis *r = state_redis(s);
	struct state_redis_key k;
	struct redis_args args;

	state_window_cancel(r->local, token, len);
	if (!state_redis_up(r))
		return;
	state_redis_key(r, "w:", token, len, &k);
	redis_args_init(&args);
	redis_args_str(&args, k.key);
	(void)redis_conn_script(r->rc, SCRIPT_CANCEL, 1, NULL, NULL, &args);
}

static void
state_redis_window_reopen(struct state *s, const char *token, size_t len,
    int64_t now_ms)
{
	struct state_redis *r = state_redis(s);

	state_window_reopen(r->local, token, len, now_ms);
	state_redis_out(r, token, len, false);
}

static void
state_redis_window_owed_out(struct state *s, const char *token, size_t len,
    int64_t now_ms)
{
	struct state_redis *r = state_redis(s);

	state_window_reopen(r->local, token, len, now_ms);
	state_redis_out(r, token, len, true);
}

/* ---- the heartbeat schedule ---------------------------------------------- */

static void
state_redis_on_hb_put(void *arg, const redisReply *rep)
{
	struct state_redis_ask *a = arg;
	struct state_redis *r = a->r;

	if (rep != NULL && rep->type == REDIS_REPLY_INTEGER &&
	    rep->integer == 1) {
		/* Full across the instances: this one's row goes too. */
		state_heartbeat_remove(r->local, a->token);
		a->fn.stored(a->arg, STATE_FULL, NULL);
	} else {
		/* Stored here in any case: a schedule Redis lost is seeded
		 * again from the databases. */
		if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
			state_redis_fallback(r);
		a->fn.stored(a->arg, STATE_STORED, NULL);
	}
	state_redis_ask_free(a);
}

/* EVALSHA hb_put for one registration: 0 sent, -1 not. */
static int
state_redis_hb_send(struct state_redis *r, const char *token, int64_t next,
    int64_t max, bool nx, redis_reply_fn *fn, void *arg)
{
	struct state_redis_key k;
	struct redis_args args;

	state_redis_key(r, "hb:", token, strlen(token), &k);
	redis_args_init(&args);
	redis_args_str(&args, STATE_REDIS_PREFIX "hb");
	redis_args_str(&args, k.key);
	redis_args_str(&args, token);
	redis_args_int(&args, next);
	redis_args_str(&args, k.hex);
	redis_args_int(&args, max);
	redis_args_int(&args, nx);
	return redis_conn_script(r->rc, SCRIPT_HB_PUT, 2, fn, arg, &args);
}

/* The embedded backend stored it (or refused): then Redis. */
struct state_redis_put {
	enum state_store	 res;
	char			 err[ERR_LEN];
};

static void
state_redis_on_local_put(void *arg, enum state_store res, const char *err)
{
	struct state_redis_put *p = arg;

	p->res = res;
	snprintf(p->err, sizeof(p->err), "%s", err != NULL ? err : "");
}

static void
state_redis_heartbeat_put(struct state *s, const char *token,
    int64_t next_at_ms, int64_t max_tokens, state_stored_fn *fn, void *arg)
{
	struct state_redis *r = state_redis(s);
	struct state_redis_put p = { STATE_FAILED, "" };
	struct state_redis_ask *a;

	/* The embedded backend answers before it returns. */
	state_heartbeat_put(r->local, token, next_at_ms, max_tokens,
	    state_redis_on_local_put, &p);
	if (p.res != STATE_STORED || !state_redis_up(r)) {
		fn(arg, p.res, p.res == STATE_FAILED ? p.err : NULL);
		return;
	}
	a = state_redis_ask_new(r, token, strlen(token), NULL, 0, arg);
	a->fn.stored = fn;
	if (state_redis_hb_send(r, token, next_at_ms, max_tokens, false,
	    state_redis_on_hb_put, a) < 0) {
		state_redis_ask_free(a);
		state_redis_fallback(r);
		fn(arg, STATE_STORED, NULL);
	}
}

static void
state_redis_heartbeat_remove(struct state *s, const char *token)
{
	struct state_redis *r = state_redis(s);
	struct state_redis_key k;
	struct redis_args args;

	state_heartbeat_remove(r->local, token);
	if (!state_redis_up(r))
		return;
	state_redis_key(r, "hb:", token, strlen(token), &k);
	redis_args_init(&args);
	redis_args_str(&args, "DEL");
	redis_args_str(&args, k.key);
	(void)redis_conn_command(r->rc, NULL, NULL, &args);
	redis_args_init(&args);
	redis_args_str(&args, "ZREM");
	redis_args_str(&args, STATE_REDIS_PREFIX "hb");
	redis_args_str(&args, k.hex);
	(void)redis_conn_command(r->rc, NULL, NULL, &args);
}

static void
state_redis_on_claim(void *arg, const redisReply *rep)
{
	struct state_redis_ask *a = arg;
	const char *tokens[STATE_REDIS_CLAIM_MAX];
	const redisReply *list;
	size_t n = 0;
	int64_t next = -1;

	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_ARRAY) {
		/* Heartbeats pause while the schedule is unreachable (the
		 * episode's line says so once). */
		a->fn.due(a->arg, NULL, 0, 0, NULL);
		state_redis_ask_free(a);
		return;
	}
	list = rep->element[0];
	for (size_t i = 0; i < list->elements && n < STATE_REDIS_CLAIM_MAX;
	    i++)
		if (list->element[i]->type == REDIS_REPLY_STRING)
			tokens[n++] = list->element[i]->str;
	if (rep->element[1]->type == REDIS_REPLY_STRING)
		next = strtoll(rep->element[1]->str, NULL, 10);
	a->fn.due(a->arg, tokens, n, next, NULL);
	state_redis_ask_free(a);
}

static void
state_redis_heartbeat_claim(struct state *s, int64_t now_ms, size_t max,
    int64_t (*next_at)(void *), void *next_arg, state_due_fn *fn, void *arg)
{
	struct state_redis *r = state_redis(s);
	struct state_redis_ask *a;
	struct redis_args args;

	if (!state_redis_up(r)) {
		/* Paused: other instances may be sending them all. */
		fn(arg, NULL, 0, 0, NULL);
		return;
	}
	if (max > STATE_REDIS_CLAIM_MAX)
		max = STATE_REDIS_CLAIM_MAX;
	a = state_redis_ask_new(r, "", 0, NULL, 0, arg);
	a->fn.due = fn;
	redis_args_init(&args);
	redis_args_str(&args, STATE_REDIS_PREFIX "hb");
	redis_args_int(&args, now_ms);
	redis_args_int(&args, (int64_t)max);
	/* One next time for the batch: the jitter spreads batches. */
	redis_args_int(&args, next_at(next_arg));
	if (redis_conn_script(r->rc, SCRIPT_HB_CLAIM, 1, state_redis_on_claim,
	    a, &args) < 0) {
		state_redis_ask_free(a);
		fn(arg, NULL, 0, 0, NULL);
	}
}

/* ---- seeding the shared schedule ----------------------------------------- */

static void	state_redis_seed_step(struct state_redis *);

static void
state_redis_on_seeded(void *arg, const redisReply *rep)
{
	struct state_redis *r = arg;

	(void)rep;
	if (r->seed_wait > 0 && --r->seed_wait == 0)
		state_redis_seed_step(r);
}

/* One batch of this instance's registrations into the shared schedule
 * (ZADD NX: a time another instance set stays); the next batch when its
 * answers are in. */
static void
state_redis_seed_step(struct state_redis *r)
{
	struct heartbeat_store *hb = state_local_heartbeats(r->local);
	struct heartbeat_due rows[STATE_REDIS_SEED_BATCH];
	char err[ERR_LEN];
	int n;

	if (!r->seeding)
		return;
	if (hb == NULL || !state_redis_up(r) || (n = heartbeat_store_scan(
	    hb, r->seed_after, STATE_REDIS_SEED_BATCH, rows, err)) <= 0) {
		if (r->seeded > 0)
			log_info("redis: %" PRIu64 " heartbeat registrations "
			    "of this instance seeded into the shared schedule",
			    r->seeded);
		r->seeding = false;
		free(r->seed_after);
		r->seed_after = NULL;
		return;
	}
	r->seed_wait = 0;
	for (int i = 0; i < n; i++) {
		if (state_redis_hb_send(r, rows[i].token, rows[i].next_at, 0,
		    true, state_redis_on_seeded, r) == 0) {
			r->seed_wait++;
			r->seeded++;
			metric_inc(r->m.seeded);
		}
	}
	free(r->seed_after);
	r->seed_after = xstrdup(rows[n - 1].token);
	heartbeat_due_clear(rows, (size_t)n);
	if (r->seed_wait == 0) {	/* nothing went: stop, next up again */
		r->seeding = false;
		free(r->seed_after);
		r->seed_after = NULL;
	}
}

/* ---- buckets ------------------------------------------------------------- */

static void
state_redis_on_bucket(void *arg, const redisReply *rep)
{
	struct state_redis_ask *a = arg;
	struct state_redis *r = a->r;

	if (rep == NULL || rep->type != REDIS_REPLY_INTEGER) {
		state_redis_fallback(r);
		state_bucket_take(r->local, a->token, a->rate, a->burst,
		    a->now_ms + (clock_mono_ms() - a->sent_ms), a->fn.bucket,
		    a->arg);
	} else
		a->fn.bucket(a->arg, rep->integer > 0 ? rep->integer : 0);
	state_redis_ask_free(a);
}

static void
state_redis_bucket_take(struct state *s, const char *name, double rate,
    double burst, int64_t now_ms, state_bucket_fn *fn, void *arg)
{
	struct state_redis *r = state_redis(s);
	struct state_redis_ask *a;
	char key[STATE_REDIS_KEY_MAX];
	struct redis_args args;

	if (rate <= 0) {		/* unlimited: nothing to share */
		fn(arg, 0);
		return;
	}
	if (!state_redis_up(r)) {
		state_redis_fallback(r);
		state_bucket_take(r->local, name, rate, burst, now_ms, fn, arg);
		return;
	}
	a = state_redis_ask_new(r, name, strlen(name), NULL, 0, arg);
	a->fn.bucket = fn;
	a->rate = rate;
	a->burst = burst;
	a->now_ms = now_ms;
	snprintf(key, sizeof(key), "%sb:%.40s", STATE_REDIS_PREFIX, name);
	redis_args_init(&args);
	redis_args_str(&args, key);
	redis_args_double(&args, rate);
	redis_args_double(&args, burst);
	if (redis_conn_script(r->rc, SCRIPT_BUCKET_TAKE, 1,
	    state_redis_on_bucket, a, &args) < 0) {
		state_redis_ask_free(a);
		state_redis_fallback(r);
		state_bucket_take(r->local, name, rate, burst, now_ms, fn, arg);
	}
}

static void
state_redis_bucket_pause(struct state *s, const char *name, int64_t ms,
    int64_t now_ms)
{
	struct state_redis *r = state_redis(s);
	char key[STATE_REDIS_KEY_MAX];
	struct redis_args args;

	state_bucket_pause(r->local, name, ms, now_ms);
	if (!state_redis_up(r))
		return;
	snprintf(key, sizeof(key), "%sb:%.40s", STATE_REDIS_PREFIX, name);
	redis_args_init(&args);
	redis_args_str(&args, key);
	redis_args_int(&args, ms);
	(void)redis_conn_script(r->rc, SCRIPT_BUCKET_PAUSE, 1, NULL, NULL,
	    &args);
}

static void
state_redis_scope_pause(struct state *s, const char *scope, int64_t ms)
{
	struct state_redis *r = state_redis(s);
	struct redis_args args;

	if (!state_redis_up(r) || ms <= 0)
		return;
	redis_args_init(&args);
	redis_args_str(&args, STATE_REDIS_PREFIX "pauses");
	redis_args_str(&args, scope);
	redis_args_int(&args, ms);
	redis_args_int(&args, STATE_REDIS_PAUSES_MAX);
	(void)redis_conn_script(r->rc, SCRIPT_SCOPE_PAUSE, 1, NULL, NULL,
	    &args);
}

static void
state_redis_on_pauses(void *arg, const redisReply *rep)
{
	struct state_redis *r = arg;

	r->poll_wait = false;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i + 1 < rep->elements; i += 2)
		if (rep->element[i]->type == REDIS_REPLY_STRING &&
		    rep->element[i + 1]->type == REDIS_REPLY_INTEGER &&
		    r->on_pause != NULL)
			r->on_pause(r->arg, rep->element[i]->str,
			    rep->element[i + 1]->integer);
}

/* Per-client buckets stay in each instance: the balancer spreads a
 * client's requests, so each instance sees a share of them. */
static void
state_redis_client_take(struct state *s, const void *key, size_t len,
    double rate, double burst, int64_t now_ms, state_bucket_fn *fn, void *arg)
{
	state_client_take(state_redis(s)->local, key, len, rate, burst, now_ms,
	    fn, arg);
}

/* ---- liveness, takeovers, up and down ------------------------------------ */

static void
state_redis_on_takeover(void *arg, const redisReply *rep)
{
	struct state_redis *r = arg;
	int64_t now = clock_wall_ms();

	r->takeover_wait = false;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i + 1 < rep->elements; i += 2) {
		const redisReply *in = rep->element[i];
		const redisReply *ago = rep->element[i + 1];

		if (in->type != REDIS_REPLY_STRING)
			continue;
		metric_inc(r->m.takeovers);
		if (r->on_takeover != NULL)
			r->on_takeover(r->arg, in->str, in->len, now -
			    (ago->type == REDIS_REPLY_INTEGER ? ago->integer :
			    0));
	}
}

static void
state_redis_sync_metrics(struct state_redis *r)
{
	struct redis_conn_stats st;

	if (r->rc == NULL)
		return;
	redis_conn_get_stats(r->rc, &st);
	metric_set(r->m.up, state_redis_up(r));
	metric_set(r->m.pending, (int64_t)st.pending);
	metric_add(r->m.commands, st.commands - r->last.commands);
	metric_add(r->m.failed, st.failed - r->last.failed);
	metric_add(r->m.refused, st.refused - r->last.refused);
	metric_add(r->m.errors, st.errors - r->last.errors);
	metric_add(r->m.timeouts, st.timeouts - r->last.timeouts);
	metric_add(r->m.connects, st.connects - r->last.connects);
	metric_add(r->m.master_changes, st.master_changes -
	    r->last.master_changes);
	r->last = st;
}

static void
state_redis_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct state_redis *r = arg;
	char key[STATE_REDIS_KEY_MAX];
	struct redis_args args;

	(void)fd;
	(void)what;
	state_redis_sync_metrics(r);
	if (r->rc == NULL)
		return;				/* closed */
	if (!state_redis_up(r)) {
		if (!r->down_logged) {	/* never up since the start */
			r->down_logged = true;
			log_warnx("redis unreachable (%s): serving alone, "
			    "with local debounce and limits, heartbeats "
			    "paused, until it answers",
			    redis_conn_why(r->rc));
		}
		return;
	}
	/* I am alive, for STATE_REDIS_LIVE_MS. */
	snprintf(key, sizeof(key), "%slive:%s", STATE_REDIS_PREFIX, r->id);
	redis_args_init(&args);
	redis_args_str(&args, "SET");
	redis_args_str(&args, key);
	redis_args_str(&args, "1");
	redis_args_str(&args, "PX");
	redis_args_int(&args, STATE_REDIS_LIVE_MS);
	(void)redis_conn_command(r->rc, NULL, NULL, &args);
	if (!r->poll_wait) {
		redis_args_init(&args);
		redis_args_str(&args, STATE_REDIS_PREFIX "pauses");
		redis_args_int(&args, STATE_REDIS_PAUSES_MAX);
		if (redis_conn_script(r->rc, SCRIPT_SCOPE_POLL, 1,
		    state_redis_on_pauses, r, &args) == 0)
			r->poll_wait = true;
	}
	if (r->takeover_wait)
		return;
	redis_args_init(&args);
	redis_args_str(&args, STATE_REDIS_PREFIX "owed");
	redis_args_str(&args, r->id);
	redis_args_int(&args, r->window_ms);
	redis_args_int(&args, STATE_REDIS_GRACE_MS);
	redis_args_int(&args, STATE_REDIS_TAKEOVER_MAX);
	if (redis_conn_script(r->rc, SCRIPT_TAKEOVER, 1,
	    state_redis_on_takeover, r, &args) == 0)
		r->takeover_wait = true;
}

static void
state_redis_on_up(void *arg)
{
	struct state_redis *r = arg;

	if (r->down_logged)
		log_info("redis answers again: debounce, heartbeats and rate "
		    "limits shared again");
	else
		log_info("redis connected: debounce, heartbeats and rate "
		    "limits shared");
	r->down_logged = false;
	r->degraded[0] = '\0';
	metric_set(r->m.up, 1);
	/* Whatever Redis kept, add this instance's registrations it does
	 * not have (a Redis that came back empty, registrations made while
	 * it was away). */
	if (!r->seeding) {
		r->seeding = true;
		r->seeded = 0;
		state_redis_seed_step(r);
	}
}

static void
state_redis_on_down(void *arg, const char *why)
{
	struct state_redis *r = arg;

	r->down_logged = true;
	metric_set(r->m.up, 0);
	log_warnx("redis unreachable (%s): serving alone, with local debounce "
	    "and limits, heartbeats paused, until it answers", why);
}

static const char *
state_redis_degraded(struct state *s)
{
	struct state_redis *r = state_redis(s);

	if (state_redis_up(r))
		return NULL;
	snprintf(r->degraded, sizeof(r->degraded), "redis unreachable (%s)",
	    r->rc != NULL ? redis_conn_why(r->rc) : "closed");
	return r->degraded;
}

/* ---- the rest ------------------------------------------------------------ */

static void
state_redis_get_stats(struct state *s, struct state_stats *out)
{
	state_get_stats(state_redis(s)->local, out);
}

/* No more Redis: every call waiting for it is answered now (by the
 * embedded backend, as redis_conn answers each command NULL), while the
 * caller is still whole; later calls are answered before they return. */
static void
state_redis_close(struct state *s)
{
	struct state_redis *r = state_redis(s);
	struct redis_conn *rc = r->rc;

	r->seeding = false;
	r->rc = NULL;
	redis_conn_free(rc);
}

static void
state_redis_free(struct state *s)
{
	struct state_redis *r = state_redis(s);

	state_redis_close(s);
	if (r->tick != NULL)
		event_free(r->tick);
	state_free(r->local);
	free(r->seed_after);
	OPENSSL_cleanse(&r->key, sizeof(r->key));
	free(r);
}

static const struct state_ops state_redis_ops = {
	.name = "redis",
	.window_hit = state_redis_window_hit,
	.window_cancel = state_redis_window_cancel,
	.window_reopen = state_redis_window_reopen,
	.window_owed_out = state_redis_window_owed_out,
	.heartbeat_put = state_redis_heartbeat_put,
	.heartbeat_remove = state_redis_heartbeat_remove,
	.heartbeat_claim = state_redis_heartbeat_claim,
	.bucket_take = state_redis_bucket_take,
	.bucket_pause = state_redis_bucket_pause,
	.scope_pause = state_redis_scope_pause,
	.client_take = state_redis_client_take,
	.get_stats = state_redis_get_stats,
	.degraded = state_redis_degraded,
	.close = state_redis_close,
	.free = state_redis_free,
};

static void
state_redis_metrics(struct state_redis *r, struct metrics *m)
{
	r->m.up = metrics_gauge(m, "redis_up", "1 while the shared "
	    "state in Redis answers, 0 while proxyd serves alone", NULL);
	r->m.pending = metrics_gauge(m, "redis_commands_in_flight",
	    "Redis commands waiting for their answer", NULL);
	r->m.commands = metrics_counter(m, "redis_commands",
	    "Redis commands sent", NULL);
	r->m.failed = metrics_counter(m, "redis_commands_failed",
	    "Redis commands without an answer (connection dropped or timed "
	    "out)", NULL);
	r->m.refused = metrics_counter(m, "redis_commands_refused",
	    "Redis commands not sent: not connected, or --redis-max-pending "
	    "in flight", NULL);
	r->m.errors = metrics_counter(m, "redis_command_errors",
	    "Redis commands answered with an error", NULL);
	r->m.timeouts = metrics_counter(m, "redis_timeouts",
	    "Redis connections dropped for an answer later than "
	    "--redis-timeout", NULL);
	r->m.connects = metrics_counter(m, "redis_connects",
	    "Redis connections that came up", NULL);
	r->m.master_changes = metrics_counter(m,
	    "redis_master_changes",
	    "Redis connections that came up at another master than the last "
	    "(a Sentinel failover)", NULL);
	r->m.fallbacks = metrics_counter(m, "redis_fallbacks",
	    "State calls answered by this instance alone because Redis did "
	    "not", NULL);
	r->m.takeovers = metrics_counter(m, "redis_takeovers",
	    "Owed pushes taken over from an instance that stopped", NULL);
	r->m.seeded = metrics_counter(m, "redis_seeded",
	    "Heartbeat registrations of this instance written into the shared "
	    "schedule when Redis came (back) up", NULL);
}

struct state *
state_redis_new(const struct state_redis_config *cfg, char err[ERR_LEN])
{
	struct state_redis *r;
	struct redis_conn_config rcc;
	uint8_t id[STATE_REDIS_ID_LEN / 2];
	struct timeval tick = { 0, STATE_REDIS_TICK_MS * 1000 };

	if (cfg->local.base == NULL || cfg->metrics == NULL) {
		err_set(err, "redis state: an event base and metrics needed");
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->base.ops = &state_redis_ops;
	r->window_ms = cfg->local.window_ms;
	r->on_takeover = cfg->on_takeover;
	r->on_pause = cfg->on_pause;
	r->arg = cfg->arg;
	siphash_key_set(&r->key, cfg->key_key);
	RAND_bytes(id, sizeof(id));
	for (size_t i = 0; i < sizeof(id); i++)
		snprintf(r->id + 2 * i, 3, "%02x", id[i]);
	state_redis_metrics(r, cfg->metrics);
	/* Names this instance's owed pushes and liveness key in Redis. */
	log_info("redis shared state: instance %s", r->id);
	if ((r->local = state_local_new(&cfg->local, err)) == NULL)
		goto fail;
	memset(&rcc, 0, sizeof(rcc));
	rcc.base = cfg->local.base;
	rcc.addr = cfg->addr;
	memcpy(rcc.sentinels, cfg->sentinels, sizeof(rcc.sentinels));
	rcc.nsentinels = cfg->nsentinels;
	rcc.master_name = cfg->master_name;
	rcc.timeout_ms = cfg->timeout_ms;
	rcc.max_pending = cfg->max_pending;
	for (size_t i = 0; i < SCRIPT_COUNT; i++)
		rcc.scripts[i] = state_redis_scripts[i];
	rcc.nscripts = SCRIPT_COUNT;
	rcc.on_up = state_redis_on_up;
	rcc.on_down = state_redis_on_down;
	rcc.arg = r;
	r->rc = redis_conn_new(&rcc, err);
	redis_addr_clear(&rcc.addr);
	if (r->rc == NULL)
		goto fail;
	r->tick = event_new(cfg->local.base, -1, EV_PERSIST,
	    state_redis_on_tick, r);
	event_add(r->tick, &tick);
	return &r->base;
fail:
	state_redis_free(&r->base);
	return NULL;
}
