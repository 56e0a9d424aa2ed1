/*
 * Sending pushes through the providers' operations; see push.h. Nothing
 * here names a provider: what differs between them is in their tables
 * (provider.h), what is the same is here.
 */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "push.h"
#include "state.h"
#include "xmalloc.h"

/* A provider that says "slow down" without Retry-After pauses this long;
 * one that asks for more is believed up to the cap. */
#define PUSH_PAUSE_DEFAULT_MS	1000
#define PUSH_PAUSE_MAX_MS	(3600LL * 1000)
/* Answers are small JSON; anything longer is cut (classifiers cope). */
#define PUSH_ANSWER_MAX_BYTES	4096
/* Connections per host of the libcurl transport. */
#define PUSH_HTTP_CONNECTIONS	4
/* A push that waited its provider's queue out is told to come back this
 * much later (the queue's own refusals say how long, ratelimit.h). */
#define PUSH_OVERLOAD_RETRY_MS	1000
/* After push_engine_prefetch, how often the credentials fetched over the
 * network are looked at: a renewal starts when its provider says one is
 * due (ahead of expiry, or after a failure's back-off), so this is only
 * how late that may be noticed. */
#define PUSH_RENEW_CHECK_MS	1000
#define PUSH_USER_AGENT		"chatmail-proxyd"

struct push_provider;

/* One push, from push_send until its verdict. */
struct push_call {
	struct push_engine	*e;
	struct push_provider	*pp;
	void			*ctx;
	struct token		 token;		/* strings borrowed */
	struct provider_push	 push;		/* the provider's view */
	bool			 retried;	/* after a renewed credential */
	bool			 sending;	/* with its transport */
	int64_t			 sent_ms;	/* wall clock; 0: never sent */
	TAILQ_ENTRY(push_call)	 link;		/* later, or waiting */
};
TAILQ_HEAD(push_call_list, push_call);

struct push_provider_metrics {
	struct metric		*delayed;
	struct metric		*limited;
	struct metric		*paused;
	struct metric		*queue;
	struct metric		*clients;
	struct metric		*credential_refused;
};

/* A provider in the engine: its state and what the engine keeps for it. */
struct push_provider {
	struct push_engine		*e;
	const struct provider_ops	*ops;
	struct provider			*p;	/* NULL: not configured */
	const struct transport_ops	*tops;
	struct transport		*t;
	struct ratelimit		*gate;
	struct push_provider_metrics	 m;
	/* Our credential refused even when just made (APNs'
	 * ExpiredProviderToken for a JWT minutes old: the host's clock),
	 * until the provider takes a push again: one error line each. */
	bool				 credential_refused;
	/* A credential renewal (ops->renewal_start): its transport, the
	 * request in flight, and the pushes waiting for it. */
	const struct transport_ops	*renewal_tops;
	struct transport		*renewal_t;
	struct provider_request		 renewal_req;
	struct push_call_list		 waiting;
};

struct push_engine {
	struct event_base	*base;
	struct state		*state;		/* the rate-limit buckets */
	push_done_fn		*done;
	void			*arg;
	void			(*cancel)(void *, void *);
	struct push_clock	 clock;
	size_t			 in_flight;
	size_t			 sending;	/* of those, with a transport */
	struct push_provider	 pp[PROVIDERS_MAX];
	struct push_call_list	 later;		/* verdicts to hand back */
	struct event		*later_ev;
	struct event		*renew_ev;	/* push_engine_prefetch */
};

static void	push_start(struct push_call *);

const struct provider_ops *
push_provider_of(enum token_kind kind)
{
	return providers_of(kind);
}

const char *
push_provider_label(const struct provider_ops *ops)
{
	return ops != NULL ? ops->label : "unknown";
}

static struct push_provider *
push_provider_get(const struct push_engine *e, const struct provider_ops *ops)
{
	int i = ops != NULL ? providers_index(ops) : -1;

	return i >= 0 ? (struct push_provider *)&e->pp[i] : NULL;
}

bool
push_enabled(const struct push_engine *e, const struct provider_ops *ops)
{
	struct push_provider *pp = push_provider_get(e, ops);

	return pp != NULL && pp->p != NULL;
}

/* ---- clocks ------------------------------------------------------------ */

static int64_t
push_clock_wall(void *arg)
{
	(void)arg;
	return clock_wall_ms();
}

static int64_t
push_clock_mono(void *arg)
{
	(void)arg;
	return clock_mono_ms();
}

static int64_t
push_wall_ms(const struct push_engine *e)
{
	return e->clock.wall_ms(e->clock.arg);
}

static int64_t
push_mono_ms(const struct push_engine *e)
{
	return e->clock.mono_ms(e->clock.arg);
}

/* ---- calls and verdicts ---------------------------------------------- */

static void
push_call_free(struct push_call *c)
{
	provider_request_clear(&c->push.req);
	free(c);
}

/* c's transport is done with it (answered, failed, or never had it). */
static void
push_unsend(struct push_call *c)
{
	if (c->sending) {
		c->sending = false;
		c->e->sending--;
	}
}

static void
push_finish(struct push_call *c, const struct provider_result *res)
{
	struct push_engine *e = c->e;
	struct provider_result r = *res;

	push_unsend(c);
	r.sent_ms = c->sent_ms;
	e->in_flight--;
	e->done(c->ctx, &r, e->arg);
	push_call_free(c);
}

static void
push_on_later(evutil_socket_t fd, short what, void *arg)
{
	struct push_engine *e = arg;
	struct push_call *c;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&e->later)) != NULL) {
		TAILQ_REMOVE(&e->later, c, link);
		push_finish(c, &c->push.res);
	}
}

/* A verdict reached without the provider's answer (c->push.res): handed
 * back from the loop, never from inside push_send. */
static void
push_fail_with(struct push_call *c)
{
	TAILQ_INSERT_TAIL(&c->e->later, c, link);
	event_active(c->e->later_ev, EV_WRITE, 0);
}

static void
push_fail(struct push_call *c, enum provider_verdict v, const char *reason)
{
	provider_result_set(&c->push.res, v, reason);
	push_fail_with(c);
}

/* What a transport sends for a provider's request (strings borrowed). */
static void
push_transport_request(const struct provider_request *pr,
    struct httpc_request *q)
{
	memset(q, 0, sizeof(*q));
	q->url = pr->url;
	q->headers = (const char *const *)pr->headers;
	q->nheaders = pr->nheaders;
	q->body = pr->body;
	q->body_len = pr->body_len;
}

void
push_apply_pause(struct push_engine *e, const char *scope, int64_t ms)
{
	const char *colon = strchr(scope, ':');

	if (colon == NULL || ms <= 0)
		return;
	for (size_t i = 0; i < PROVIDERS_MAX; i++) {
		struct push_provider *pp = &e->pp[i];

		if (pp->ops == NULL || pp->p == NULL ||
		    pp->ops->pause_named == NULL ||
		    strlen(pp->ops->name) != (size_t)(colon - scope) ||
		    strncmp(pp->ops->name, scope, (size_t)(colon - scope)) != 0)
			continue;
		pp->ops->pause_named(pp->p, colon + 1, ms, push_mono_ms(e));
	}
}

/* The provider refuses a credential it would not let us renew, or the
 * renewed one too: APNs says ExpiredProviderToken for a JWT made minutes
 * ago almost only when this host's clock is off (by about an hour). No
 * retry helps and every push of the provider fails: a configuration
 * failure, one error line per episode, and a counter for the alert. */
static void
push_credential_refused(struct push_provider *pp, struct provider_result *res)
{
	res->verdict = VERDICT_CONFIG;
	res->logged = true;
	metric_inc(pp->m.credential_refused);
	if (pp->credential_refused)
		return;
	pp->credential_refused = true;
	log_err("push %s refuses the credential we just made (%s): every %s "
	    "push fails until it is fixed (APNs' ExpiredProviderToken: this "
	    "host's clock is off, usually by an hour; check NTP)",
	    pp->ops->label, res->reason, pp->ops->label);
}

/* A transport's answer in the providers' terms. */
static void
push_answer(const struct httpc_response *resp, struct provider_answer *a)
{
	a->status = resp->status;
	a->body = resp->body;
	a->len = resp->body_len;
	a->retry_after_ms = resp->retry_after_s >= 0 ?
	    resp->retry_after_s * 1000 : 0;
}

/* ---- answers --------------------------------------------------------- */

/* The provider asked us to wait ms (PAUSE): its own pause if it has one
 * narrower than itself (an origin), else the whole provider's. */
static void
push_pause(struct push_call *c, int64_t ms, const char *reason)
{
	struct push_provider *pp = c->pp;

	char scope[PUSH_SCOPE_MAX];
	size_t n;

	if (pp->ops->pause != NULL) {
		pp->ops->pause(pp->p, &c->token, ms, push_mono_ms(c->e));
		/* Told to the other instances of a shared state. */
		n = (size_t)snprintf(scope, sizeof(scope), "%s:",
		    pp->ops->name);
		if (pp->ops->pause_name != NULL && n < sizeof(scope) &&
		    pp->ops->pause_name(pp->p, &c->token, scope + n,
		    sizeof(scope) - n) == 0)
			state_scope_pause(c->e->state, scope, ms);
	} else
		ratelimit_pause(pp->gate, ms);
	metric_inc(pp->m.paused);
	log_info("push %s asks us to wait %lld ms (%s)", pp->ops->label,
	    (long long)ms, reason);
}

static void
push_on_answer(void *ctx, const struct httpc_response *resp, void *arg)
{
	struct push_call *c = ctx;
	struct push_provider *pp = c->pp;
	struct provider_result res;
	struct provider_answer a;
	int64_t retry_ms;

	(void)arg;
	push_unsend(c);
	push_answer(resp, &a);
	retry_ms = a.retry_after_ms;
	pp->ops->classify(&a, &res);
	if (resp->status == 0) {
		res.verdict = VERDICT_TEMPORARY;
		snprintf(res.reason, sizeof(res.reason), "%s",
		    strcmp(resp->error, HTTPC_ADDRESS_REFUSED) == 0 ?
		    "address_refused" : "send");
	}
	/* Our credential was refused: one more try if the provider says a
	 * renewed one may work (it renewed it, or will before the retry's
	 * request is built). */
	if (res.verdict == VERDICT_RENEW_AUTH && !c->retried) {
		c->retried = true;
		if (pp->ops->renew_auth != NULL && pp->ops->renew_auth(pp->p,
		    c->push.credential, push_wall_ms(c->e))) {
			push_start(c);
			return;
		}
	}
	if (res.verdict == VERDICT_RENEW_AUTH)
		push_credential_refused(pp, &res);
	else if (res.verdict == VERDICT_OK && pp->credential_refused) {
		pp->credential_refused = false;
		log_info("push %s takes our credential again", pp->ops->label);
	}
	if (res.verdict == VERDICT_PAUSE) {
		if (res.retry_after_ms > 0)
			retry_ms = res.retry_after_ms;
		if (retry_ms <= 0)
			retry_ms = PUSH_PAUSE_DEFAULT_MS;
		if (retry_ms > PUSH_PAUSE_MAX_MS)
			retry_ms = PUSH_PAUSE_MAX_MS;
		push_pause(c, retry_ms, res.reason);
	}
	/* Whatever the verdict, a Retry-After travels with it: a push that
	 * is owed (promise.c) is not tried again before it. */
	if (res.verdict != VERDICT_OK && res.verdict != VERDICT_GONE &&
	    retry_ms > res.retry_after_ms)
		res.retry_after_ms = retry_ms > PUSH_PAUSE_MAX_MS ?
		    PUSH_PAUSE_MAX_MS : retry_ms;
	push_finish(c, &res);
}

/* ---- credential renewals --------------------------------------------- */

/* The renewal failed: the pushes that waited for it end with fail. */
static void
push_waiting_fail(struct push_provider *pp, const struct provider_result *fail)
{
	struct push_call *c;

	while ((c = TAILQ_FIRST(&pp->waiting)) != NULL) {
		TAILQ_REMOVE(&pp->waiting, c, link);
		c->push.res = *fail;
		push_fail_with(c);
	}
}

static void
push_on_renewal(void *ctx, const struct httpc_response *resp, void *arg)
{
	struct push_provider *pp = ctx;
	struct push_call_list ready;
	struct provider_result fail;
	struct provider_answer a;
	struct push_call *c;
	char err[ERR_LEN];

	(void)arg;
	provider_request_clear(&pp->renewal_req);
	push_answer(resp, &a);
	if (pp->ops->renewal_done(pp->p, &a, push_wall_ms(pp->e), &fail,
	    err) < 0) {
		log_warnx("push %s %s: %s%s%s", pp->ops->label,
		    pp->ops->renewal_name, err, resp->status == 0 ? ": " : "",
		    resp->status == 0 ? resp->error : "");
		push_waiting_fail(pp, &fail);
		return;
	}
	log_info("push %s %s renewed", pp->ops->label, pp->ops->renewal_name);
	/* Each is built again: with the new credential, or it waits for
	 * the next renewal (a new list: it must not be met again here). */
	TAILQ_INIT(&ready);
	TAILQ_CONCAT(&ready, &pp->waiting, link);
	while ((c = TAILQ_FIRST(&ready)) != NULL) {
		TAILQ_REMOVE(&ready, c, link);
		push_start(c);
	}
}

/* One renewal for everybody, when the provider says one is due. */
static void
push_renew(struct push_provider *pp)
{
	struct provider_request req;
	struct provider_result fail;
	struct provider_answer a;
	struct httpc_request q;
	char err[ERR_LEN], done_err[ERR_LEN];
	int rv;

	if (pp->renewal_req.url != NULL)
		return;		/* ours is in flight: it ends first */
	rv = pp->ops->renewal_start(pp->p, push_wall_ms(pp->e), &req, &fail,
	    err);
	if (rv == 0)
		return;
	if (rv > 0) {
		pp->renewal_req = req;	/* until its answer */
		push_transport_request(&pp->renewal_req, &q);
		if (pp->renewal_tops->send(pp->renewal_t, &q, pp, err) == 0)
			return;
		/* Not sent: that renewal ended with no answer. */
		provider_request_clear(&pp->renewal_req);
		memset(&a, 0, sizeof(a));
		a.body = "";
		if (pp->ops->renewal_done(pp->p, &a, push_wall_ms(pp->e),
		    &fail, done_err) == 0)
			return;		/* cannot be, without an answer */
	}
	log_warnx("push %s %s: %s", pp->ops->label, pp->ops->renewal_name,
	    err);
	push_waiting_fail(pp, &fail);
}

/* Renewals without a push: each provider that fetches its credential
 * over the network is asked whether one is due, every
 * PUSH_RENEW_CHECK_MS. */
static void
push_on_renew_check(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval next = { PUSH_RENEW_CHECK_MS / 1000,
	    (PUSH_RENEW_CHECK_MS % 1000) * 1000 };
	struct push_engine *e = arg;
	size_t i;

	(void)fd;
	(void)what;
	for (i = 0; i < providers_count; i++)
		if (e->pp[i].p != NULL && e->pp[i].ops->renewal_start != NULL)
			push_renew(&e->pp[i]);
	evtimer_add(e->renew_ev, &next);
}

void
push_engine_prefetch(struct push_engine *e)
{
	static const struct timeval now = { 0, 0 };
	size_t i;

	if (e->renew_ev != NULL)
		return;
	for (i = 0; i < providers_count; i++)
		if (e->pp[i].p != NULL && e->pp[i].ops->renewal_start != NULL)
			break;
	if (i == providers_count)
		return;		/* nothing to fetch: no timer */
	e->renew_ev = evtimer_new(e->base, push_on_renew_check, e);
	evtimer_add(e->renew_ev, &now);		/* the first at the next pass */
}

bool
push_ready(const struct push_engine *e)
{
	const struct push_provider *pp;
	int64_t now = push_wall_ms(e);
	size_t i;

	for (i = 0; i < providers_count; i++) {
		pp = &e->pp[i];
		if (pp->p != NULL && pp->ops->credential_ready != NULL &&
		    !pp->ops->credential_ready(pp->p, now))
			return false;
	}
	return true;
}

/* ---- sending --------------------------------------------------------- */

static void
push_start(struct push_call *c)
{
	struct push_provider *pp = c->pp;
	struct httpc_request q;
	char err[ERR_LEN];

	provider_request_clear(&c->push.req);
	c->push.now_ms = push_wall_ms(c->e);
	c->push.mono_ms = push_mono_ms(c->e);
	err[0] = '\0';
	switch (pp->ops->build(pp->p, &c->push, err)) {
	case PROVIDER_SEND:
		push_transport_request(&c->push.req, &q);
		if (pp->tops->send(pp->t, &q, c, err) == 0) {
			c->sending = true;
			c->e->sending++;
			c->sent_ms = c->push.now_ms;
			break;
		}
		/* FALLTHROUGH */
	case PROVIDER_FAILED:
		log_warnx("push %s: %s", pp->ops->label, err);
		push_fail(c, VERDICT_TEMPORARY, "send");
		break;
	case PROVIDER_DECIDED:
		push_fail_with(c);
		break;
	case PROVIDER_WAIT:
		TAILQ_INSERT_TAIL(&pp->waiting, c, link);
		break;
	}
	/* After the build: a push that waits is on the list when a renewal
	 * that cannot start fails the list. */
	if (pp->ops->renewal_start != NULL)
		push_renew(pp);
}

static void
push_update_queue_metric(struct push_provider *pp)
{
	metric_set(pp->m.queue, (int64_t)ratelimit_queued(pp->gate));
	metric_set(pp->m.clients, (int64_t)ratelimit_clients(pp->gate));
}

/* The provider's queue would not take c, or gave up on it: nothing was
 * sent, the caller is to come back after retry_ms (503 to a relay). */
static void
push_overload(struct push_call *c, enum ratelimit_refusal why,
    int64_t retry_ms)
{
	metric_inc(c->pp->m.limited);
	provider_result_set(&c->push.res, VERDICT_OVERLOAD,
	    ratelimit_refusal_name(why));
	c->push.res.retry_after_ms = retry_ms;
	push_fail_with(c);
}

/* The rate limiter let a waiting push go, or gave up on it. */
static void
push_on_gate(void *item, bool go, void *arg)
{
	struct push_call *c = item;

	(void)arg;
	push_update_queue_metric(c->pp);
	if (go) {
		push_start(c);
		return;
	}
	push_overload(c, RATELIMIT_WAITED, PUSH_OVERLOAD_RETRY_MS);
}

int
push_send(struct push_engine *e, enum push_kind kind, const struct token *t,
    const struct ratelimit_client *client, void *ctx, char err[ERR_LEN])
{
	/* Pushes nobody attributed share one client that no address is
	 * (an IPv6 /64 ends in zeros, a mapped IPv4 starts with them). */
	static const struct ratelimit_client nobody = { .key = {
	    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } };
	const struct provider_ops *ops = push_provider_of(t->kind);
	struct push_provider *pp = push_provider_get(e, ops);
	enum ratelimit_refusal why;
	struct push_call *c;
	int64_t retry_ms;

	if (pp == NULL || pp->p == NULL) {
		err_set(err, "%s is not configured", push_provider_label(ops));
		return -1;
	}
	if (kind == PUSH_HEARTBEAT && !ops->heartbeats) {
		err_set(err, "%s takes no heartbeats", ops->label);
		return -1;
	}
	c = xcalloc(1, sizeof(*c));
	c->e = e;
	c->pp = pp;
	c->ctx = ctx;
	c->token = *t;
	c->push.kind = kind;
	c->push.token = &c->token;
	e->in_flight++;
	switch (ratelimit_admit(pp->gate, client != NULL ? client : &nobody,
	    c, &why, &retry_ms)) {
	case 1:
		push_start(c);
		break;
	case 0:
		metric_inc(pp->m.delayed);
		push_update_queue_metric(pp);
		break;
	default:
		push_overload(c, why, retry_ms);
		break;
	}
	return 0;
}

size_t
push_in_flight(const struct push_engine *e)
{
	return e->in_flight;
}

size_t
push_sending(const struct push_engine *e)
{
	return e->sending;
}

/* ---- the engine ------------------------------------------------------ */

/* The provider's address rules, asked by its transport before every
 * connect; a refusal is logged here (providers never log). */
static bool
push_allow_address(const struct sockaddr *sa, unsigned int len, void *arg)
{
	struct push_provider *pp = arg;
	const char *why = "not allowed";

	if (pp->ops->allow_address(pp->p, sa, len, &why))
		return true;
	log_info("push %s endpoint refused: its address is %s",
	    pp->ops->label, why);
	return false;
}

/* The HTTP/2 transport logs nothing: a connection's end is told here. */
static void
push_on_conn_failed(const char *authority, const char *why, void *arg)
{
	struct push_provider *pp = arg;

	log_info("push %s http2 %s: %s", pp->ops->label, authority, why);
}

/* What every transport gets unless its provider says otherwise. */
static void
push_transport_defaults(struct push_provider *pp,
    const struct push_config *cfg, struct transport_config *tc)
{
	memset(tc, 0, sizeof(*tc));
	tc->h2.ca_file = tc->http.ca_file = cfg->ca_file;
	tc->h2.timeout_ms = tc->http.timeout_ms = cfg->timeout_ms;
	tc->h2.max_body_bytes = tc->http.max_body_bytes =
	    PUSH_ANSWER_MAX_BYTES;
	tc->h2.user_agent = tc->http.user_agent = PUSH_USER_AGENT;
	tc->h2.conn_failed = push_on_conn_failed;
	tc->h2.conn_failed_arg = pp;
	tc->http.max_connections = PUSH_HTTP_CONNECTIONS;
}

/* The transport of pp's pushes, or (renewal) of its credential's
 * renewals, which only the engine's defaults shape. */
static struct transport *
push_transport_new(struct push_engine *e, struct push_provider *pp,
    const struct push_config *cfg, bool renewal,
    const struct transport_ops **tops_out, char err[ERR_LEN])
{
	struct transport_config tc;
	struct transport *t;
	char why[ERR_LEN];

	*tops_out = cfg->transport != NULL ? cfg->transport :
	    transports[renewal ? pp->ops->renewal_transport :
	    pp->ops->transport];
	push_transport_defaults(pp, cfg, &tc);
	if (!renewal && pp->ops->transport_config != NULL)
		pp->ops->transport_config(pp->p, &tc);
	if (!renewal && pp->ops->allow_address != NULL) {
		tc.http.allow_address = push_allow_address;
		tc.http.allow_address_arg = pp;
	}
	why[0] = '\0';
	if ((t = (*tops_out)->new(e->base, &tc, renewal ? push_on_renewal :
	    push_on_answer, e, why)) == NULL)
		err_set(err, "%s%s: %s", pp->ops->label, renewal ?
		    " renewals" : "", why[0] != '\0' ? why : "cannot start "
		    "its transport");
	return t;
}

static void
push_metrics_new(struct push_provider *pp, struct metrics *m)
{
	char labels[64];

	snprintf(labels, sizeof(labels), "provider=\"%s\"", pp->ops->label);
	pp->m.delayed = metrics_counter(m, "provider_delayed",
	    "Pushes that waited for the provider's rate limit or pause",
	    labels);
	pp->m.limited = metrics_counter(m, "provider_rate_limited",
	    "Pushes refused (503 and Retry-After) because the provider's "
	    "queue, or their client's share of it, was full, or they would "
	    "have waited, or waited, too long", labels);
	pp->m.paused = metrics_counter(m, "provider_paused",
	    "Times the provider asked us to wait (Retry-After)", labels);
	pp->m.credential_refused = metrics_counter(m,
	    "provider_credential_refused", "Pushes refused because the provider "
	    "refused a credential we had just made (APNs ExpiredProviderToken: "
	    "the host's clock)", labels);
	pp->m.queue = metrics_gauge(m, "provider_queue_depth",
	    "Pushes waiting for the provider's rate limit or pause", labels);
	pp->m.clients = metrics_gauge(m, "provider_queue_clients",
	    "Clients with pushes waiting for the provider, served "
	    "round-robin", labels);
}

static int
push_provider_init(struct push_engine *e, struct push_provider *pp,
    const struct push_config *cfg, size_t i, char err[ERR_LEN])
{
	const struct provider_ops *ops = pp->ops;
	struct ratelimit_config rc = cfg->limits[i];

	rc.name = ops->name;
	rc.clock_ms = e->clock.mono_ms;
	rc.clock_arg = e->clock.arg;
	pp->gate = ratelimit_new(e->base, e->state, &rc, push_on_gate, e);
	if (ops->new(providers_settings(&cfg->providers, i), &pp->p, err) < 0)
		return -1;
	if (pp->p == NULL)
		return 0;	/* not configured */
	if ((pp->t = push_transport_new(e, pp, cfg, false, &pp->tops,
	    err)) == NULL)
		return -1;
	if (ops->renewal_start != NULL && (pp->renewal_t = push_transport_new(
	    e, pp, cfg, true, &pp->renewal_tops, err)) == NULL)
		return -1;
	return 0;
}

struct push_engine *
push_engine_new(struct event_base *base, const struct push_config *cfg,
    struct state *state, struct metrics *m, push_done_fn *done, void *arg,
    char err[ERR_LEN])
{
	struct push_engine *e = xcalloc(1, sizeof(*e));
	size_t i;

	e->base = base;
	e->state = state;
	e->done = done;
	e->arg = arg;
	if (cfg->clock != NULL)
		e->clock = *cfg->clock;
	else {
		e->clock.wall_ms = push_clock_wall;
		e->clock.mono_ms = push_clock_mono;
	}
	TAILQ_INIT(&e->later);
	e->later_ev = event_new(base, -1, 0, push_on_later, e);
	for (i = 0; i < providers_count; i++) {
		e->pp[i].e = e;
		e->pp[i].ops = providers[i];
		TAILQ_INIT(&e->pp[i].waiting);
		push_metrics_new(&e->pp[i], m);
	}
	for (i = 0; i < providers_count; i++)
		if (push_provider_init(e, &e->pp[i], cfg, i, err) < 0)
			goto fail;
	return e;
fail:
	push_engine_free(e, NULL);
	return NULL;
}

static void
push_on_cancel(void *ctx, void *arg)
{
	struct push_engine *e = arg;
	struct push_call *c = ctx;

	if (e->cancel != NULL)
		e->cancel(c->ctx, e->arg);
	push_call_free(c);
}

static void
push_cancel_list(struct push_engine *e, struct push_call_list *l)
{
	struct push_call *c;

	while ((c = TAILQ_FIRST(l)) != NULL) {
		TAILQ_REMOVE(l, c, link);
		push_on_cancel(c, e);
	}
}

void
push_engine_free(struct push_engine *e, void (*cancel)(void *, void *))
{
	struct push_provider *pp;
	size_t i;

	if (e == NULL)
		return;
	e->cancel = cancel;
	for (i = 0; i < providers_count; i++) {
		pp = &e->pp[i];
		if (pp->t != NULL)
			pp->tops->free(pp->t, push_on_cancel);
		/* Its ctx is the engine's own record, nobody's push. */
		if (pp->renewal_t != NULL)
			pp->renewal_tops->free(pp->renewal_t, NULL);
		provider_request_clear(&pp->renewal_req);
		ratelimit_free(pp->gate, push_on_cancel);
		push_cancel_list(e, &pp->waiting);
	}
	push_cancel_list(e, &e->later);
	if (e->later_ev != NULL)
		event_free(e->later_ev);
	if (e->renew_ev != NULL)
		event_free(e->renew_ev);
	for (i = 0; i < providers_count; i++)
		if (e->pp[i].p != NULL)
			e->pp[i].ops->free(e->pp[i].p);
	free(e);
}
