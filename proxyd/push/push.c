/* Sending pushes through provider modules; see push.h. */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "addr_policy.h"
#include "clock.h"
#include "db.h"
#include "fcm.h"
#include "h2client.h"
#include "httpc.h"
#include "log.h"
#include "metrics.h"
#include "p12.h"
#include "push.h"
#include "ubports.h"
#include "webpush.h"
#include "xmalloc.h"

/* A provider that says "slow down" without Retry-After pauses this long;
 * one that asks for more is believed up to the cap. */
#define PUSH_PAUSE_DEFAULT_MS	1000
#define PUSH_PAUSE_MAX_MS	(3600LL * 1000)
/* Answers are small JSON; anything longer is cut (classifiers cope). */
#define PUSH_ANSWER_MAX_BYTES	4096
/* Web Push origins remembered as paused (oldest replaced). */
#define PUSH_ORIGIN_PAUSES	64

/* Web Push endpoints are chosen by whoever made the token: one answering
 * 429 must not pause every Web Push delivery, so pauses are per origin
 * (and pushes to a paused origin get 500 at once). */
struct origin_pause {
	char			 origin[VAPID_AUDIENCE_MAX_BYTES];
	int64_t			 until_ms;
};

/* One push, from push_send until its verdict. */
struct push_call {
	struct push_engine	*e;
	void			*ctx;
	enum push_kind		 kind;
	enum push_provider	 prov;
	struct token		 token;		/* strings borrowed */
	char			*device;	/* APNs: the hex, a secret */
	bool			 retried;	/* after a renewed credential */
	int64_t			 apns_jwt_issued;	/* the JWT it carried */
	uint64_t		 fcm_generation;
	struct provider_request	 req;
	/* Deferred verdict (push_fail). */
	struct provider_result	 res;
	TAILQ_ENTRY(push_call)	 link;		/* later, or fcm_waiting */
};
TAILQ_HEAD(push_call_list, push_call);

struct push_provider_metrics {
	struct metric		*delayed;
	struct metric		*limited;
	struct metric		*paused;
	struct metric		*queue;
};

struct push_engine {
	struct event_base	*base;
	push_done_fn		*done;
	void			*arg;
	void			(*cancel)(void *, void *);
	bool			 allow_private;
	size_t			 in_flight;

	struct apns		*apns;
	struct h2client		*apns_h2;

	const struct fcm_key	*fcm_key;
	struct fcm		*fcm;
	struct fcm_auth		*fcm_auth;
	struct h2client		*fcm_h2;
	struct httpc		*fcm_auth_http;
	struct provider_request	 fcm_auth_req;	/* in flight */
	bool			 fcm_auth_config_error;
	struct push_call_list	 fcm_waiting;	/* for an access token */

	struct webpush		*webpush;
	struct httpc		*webpush_http;
	struct origin_pause	 origin_pauses[PUSH_ORIGIN_PAUSES];
	size_t			 origin_pause_next;

	struct ubports		*ubports;
	struct httpc		*ubports_http;

	struct ratelimit	*gate[PROVIDER_COUNT];
	struct push_provider_metrics m[PROVIDER_COUNT];

	struct push_call_list	 later;		/* verdicts to hand back */
	struct event		*later_ev;
};

static void	push_start(struct push_call *);

enum push_provider
push_provider_of(enum token_kind kind)
{
	switch (kind) {
	case TOKEN_APNS:
	case TOKEN_APNS_SANDBOX:
		return PROVIDER_APNS;
	case TOKEN_FCM:
		return PROVIDER_FCM;
	case TOKEN_WEBPUSH:
		return PROVIDER_WEBPUSH;
	case TOKEN_UBPORTS:
		return PROVIDER_UBPORTS;
	}
	return PROVIDER_COUNT;
}

const char *
push_provider_label(enum push_provider p)
{
	static const char *const names[PROVIDER_COUNT] = {
		"APNS", "FCM", "WebPush", "UBports",
	};

	return p < PROVIDER_COUNT ? names[p] : "unknown";
}

bool
push_enabled(const struct push_engine *e, enum push_provider p)
{
	switch (p) {
	case PROVIDER_APNS:
		return e->apns != NULL;
	case PROVIDER_FCM:
		return e->fcm != NULL;
	case PROVIDER_WEBPUSH:
		return e->webpush != NULL;
	case PROVIDER_UBPORTS:
		return e->ubports != NULL;
	default:
		return false;
	}
}

/* ---- calls and verdicts ---------------------------------------------- */

static void
push_call_free(struct push_call *c)
{
	provider_request_clear(&c->req);
	if (c->device != NULL) {
		OPENSSL_cleanse(c->device, strlen(c->device));
		free(c->device);
	}
	free(c);
}

static void
push_finish(struct push_call *c, const struct provider_result *res)
{
	struct push_engine *e = c->e;

	e->in_flight--;
	e->done(c->ctx, res, e->arg);
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
		push_finish(c, &c->res);
	}
}

/* A verdict reached without the provider's answer: handed back from the
 * loop, never from inside push_send. */
static void
push_fail(struct push_call *c, enum provider_verdict v, const char *reason)
{
	memset(&c->res, 0, sizeof(c->res));
	c->res.verdict = v;
	snprintf(c->res.reason, sizeof(c->res.reason), "%s", reason);
	TAILQ_INSERT_TAIL(&c->e->later, c, link);
	event_active(c->e->later_ev, EV_WRITE, 0);
}

/* ---- Web Push pauses, per origin ------------------------------------ */

static struct origin_pause *
push_origin_pause_find(struct push_engine *e, const char *origin)
{
	size_t i;

	for (i = 0; i < PUSH_ORIGIN_PAUSES; i++)
		if (strcmp(e->origin_pauses[i].origin, origin) == 0)
			return &e->origin_pauses[i];
	return NULL;
}

static void
push_origin_pause(struct push_engine *e, const struct token *t, int64_t ms)
{
	char origin[VAPID_AUDIENCE_MAX_BYTES], err[ERR_LEN];
	struct origin_pause *op;

	if (webpush_origin(t, origin, err) < 0)
		return;
	if ((op = push_origin_pause_find(e, origin)) == NULL) {
		op = &e->origin_pauses[e->origin_pause_next];
		e->origin_pause_next = (e->origin_pause_next + 1) %
		    PUSH_ORIGIN_PAUSES;
		snprintf(op->origin, sizeof(op->origin), "%s", origin);
		op->until_ms = 0;
	}
	/* A shorter Retry-After does not end a longer pause early. */
	if (op->until_ms < clock_mono_ms() + ms)
		op->until_ms = clock_mono_ms() + ms;
}

static bool
push_origin_paused(struct push_engine *e, const struct token *t)
{
	char origin[VAPID_AUDIENCE_MAX_BYTES], err[ERR_LEN];
	struct origin_pause *op;

	if (webpush_origin(t, origin, err) < 0)
		return false;
	return (op = push_origin_pause_find(e, origin)) != NULL &&
	    clock_mono_ms() < op->until_ms;
}

/* ---- answers --------------------------------------------------------- */

static void
push_on_answer(void *ctx, const struct httpc_response *resp, void *arg)
{
	struct push_call *c = ctx;
	struct push_engine *e = arg;
	struct provider_result res;
	int64_t retry_ms = resp->retry_after_s >= 0 ?
	    resp->retry_after_s * 1000 : 0;
	int64_t now = clock_wall_ms();

	switch (c->prov) {
	case PROVIDER_APNS:
		apns_classify(resp->status, resp->body, resp->body_len, &res);
		break;
	case PROVIDER_FCM:
		fcm_classify(resp->status, resp->body, resp->body_len, &res);
		break;
	case PROVIDER_WEBPUSH:
		webpush_classify(resp->status, resp->body, resp->body_len,
		    retry_ms, &res);
		break;
	default:
		ubports_classify(resp->status, resp->body, resp->body_len,
		    &res);
		break;
	}
	if (resp->status == 0) {
		res.verdict = VERDICT_TEMPORARY;
		snprintf(res.reason, sizeof(res.reason), "%s",
		    strcmp(resp->error, HTTPC_ADDRESS_REFUSED) == 0 ?
		    "address_refused" : "send");
	}
	if (res.verdict == VERDICT_RENEW_AUTH && !c->retried) {
		c->retried = true;
		/* APNs: a new provider token unless the current one is too
		 * young to be replaced (Apple's limit). FCM: the access token
		 * is dropped and the push waits for a new one. */
		if (c->prov == PROVIDER_APNS ?
		    /* Another push's answer renewed it already, or we may. */
		    apns_jwt_issued_at(e->apns) > c->apns_jwt_issued ||
		    apns_jwt_expired(e->apns, now) :
		    c->prov == PROVIDER_FCM) {
			if (c->prov == PROVIDER_FCM)
				fcm_auth_rejected(e->fcm_auth,
				    c->fcm_generation, now);
			push_start(c);
			return;
		}
	}
	if (res.verdict == VERDICT_RENEW_AUTH)
		res.verdict = VERDICT_TEMPORARY;
	if (res.verdict == VERDICT_PAUSE) {
		if (res.retry_after_ms > 0)
			retry_ms = res.retry_after_ms;
		if (retry_ms <= 0)
			retry_ms = PUSH_PAUSE_DEFAULT_MS;
		if (retry_ms > PUSH_PAUSE_MAX_MS)
			retry_ms = PUSH_PAUSE_MAX_MS;
		if (c->prov == PROVIDER_WEBPUSH)
			push_origin_pause(e, &c->token, retry_ms);
		else
			ratelimit_pause(e->gate[c->prov], retry_ms);
		metric_inc(e->m[c->prov].paused);
		log_info("push %s asks us to wait %lld ms (%s)",
		    push_provider_label(c->prov), (long long)retry_ms,
		    res.reason);
	}
	/* Whatever the verdict, a Retry-After travels with it: a push that
	 * is owed (promise.c) is not tried again before it. */
	if (res.verdict != VERDICT_OK && res.verdict != VERDICT_GONE &&
	    retry_ms > res.retry_after_ms)
		res.retry_after_ms = retry_ms > PUSH_PAUSE_MAX_MS ?
		    PUSH_PAUSE_MAX_MS : retry_ms;
	push_finish(c, &res);
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

/* ---- FCM access tokens ----------------------------------------------- */

static void
push_fcm_fail_waiting(struct push_engine *e)
{
	struct push_call *c;

	while ((c = TAILQ_FIRST(&e->fcm_waiting)) != NULL) {
		TAILQ_REMOVE(&e->fcm_waiting, c, link);
		push_fail(c, e->fcm_auth_config_error ? VERDICT_CONFIG :
		    VERDICT_TEMPORARY, "oauth");
	}
}

static void
push_on_fcm_token(void *ctx, const struct httpc_response *resp, void *arg)
{
	struct push_engine *e = arg;
	struct push_call_list ready;
	struct push_call *c;
	char err[ERR_LEN];

	(void)ctx;
	provider_request_clear(&e->fcm_auth_req);
	if (fcm_auth_renewal_done(e->fcm_auth, resp->status, resp->body,
	    resp->body_len, clock_wall_ms(), err) < 0) {
		/* 4xx from the token endpoint: our key is refused. */
		e->fcm_auth_config_error = resp->status >= 400 &&
		    resp->status < 500;
		log_warnx("push FCM access token: %s%s%s", err,
		    resp->status == 0 ? ": " : "",
		    resp->status == 0 ? resp->error : "");
		push_fcm_fail_waiting(e);
		return;
	}
	e->fcm_auth_config_error = false;
	log_info("push FCM access token renewed");
	TAILQ_INIT(&ready);
	TAILQ_CONCAT(&ready, &e->fcm_waiting, link);
	while ((c = TAILQ_FIRST(&ready)) != NULL) {
		TAILQ_REMOVE(&ready, c, link);
		push_start(c);
	}
}

/* One renewal for everybody (fcm_auth says when one is due). */
static void
push_fcm_renew(struct push_engine *e)
{
	struct httpc_request q;
	char err[ERR_LEN];

	if (fcm_auth_renewal_start(e->fcm_auth, clock_wall_ms(), &e->fcm_auth_req,
	    err) < 0) {
		log_warnx("push FCM access token: %s", err);
		e->fcm_auth_config_error = true;
		push_fcm_fail_waiting(e);
		return;
	}
	push_transport_request(&e->fcm_auth_req, &q);
	if (httpc_send(e->fcm_auth_http, &q, e, err) < 0) {
		provider_request_clear(&e->fcm_auth_req);
		fcm_auth_renewal_done(e->fcm_auth, 0, NULL, 0, clock_wall_ms(),
		    err);
		log_warnx("push FCM access token: %s", err);
		push_fcm_fail_waiting(e);
	}
}

/* 0 and the request in c->req, 1 when c waits for an access token, -1
 * and err. */
static int
push_fcm_build(struct push_call *c, char err[ERR_LEN])
{
	struct push_engine *e = c->e;
	int64_t now = clock_wall_ms();
	const char *access;

	switch (fcm_auth_state(e->fcm_auth, now)) {
	case FCM_AUTH_RENEW_EARLY:
		push_fcm_renew(e);
		/* FALLTHROUGH */
	case FCM_AUTH_READY:
		if ((access = fcm_auth_token(e->fcm_auth, now,
		    &c->fcm_generation)) != NULL)
			return fcm_build(e->fcm, c->kind, &c->token, access,
			    &c->req, err);
		break;
	case FCM_AUTH_BACKOFF:
		err_set(err, "no FCM access token (renewal backing off "
		    "after %u failures)", fcm_auth_failures(e->fcm_auth));
		return -1;
	default:
		break;
	}
	TAILQ_INSERT_TAIL(&e->fcm_waiting, c, link);
	if (!fcm_auth_renewing(e->fcm_auth))
		push_fcm_renew(e);
	return 1;
}

/* ---- sending --------------------------------------------------------- */

/* A Web Push endpoint's host is a literal non-public address: it can
 * never be sent to (without --webpush-allow-private). */
static bool
push_webpush_literal_refused(const struct token *t)
{
	char host[TOKEN_WEBPUSH_HOST_MAX_BYTES + 1];
	const char *h = t->webpush.host;
	size_t n = t->webpush.host_len;
	enum addr_class cls;

	if (n >= 2 && h[0] == '[') {
		h++;
		n -= 2;
	}
	if (n >= sizeof(host))
		return true;
	memcpy(host, h, n);
	host[n] = '\0';
	cls = addr_policy_classify_text(host);
	return cls != ADDR_INVALID && !addr_policy_is_public(cls);
}

static void
push_start(struct push_call *c)
{
	struct push_engine *e = c->e;
	struct httpc_request q;
	char err[ERR_LEN];
	int rv = -1;

	provider_request_clear(&c->req);
	err[0] = '\0';
	switch (c->prov) {
	case PROVIDER_APNS:
		rv = apns_build(e->apns, c->kind, c->device,
		    c->token.kind == TOKEN_APNS_SANDBOX, clock_wall_ms(), &c->req,
		    err);
		c->apns_jwt_issued = apns_jwt_issued_at(e->apns);
		break;
	case PROVIDER_FCM:
		if ((rv = push_fcm_build(c, err)) == 1)
			return;		/* waits for an access token */
		break;
	case PROVIDER_WEBPUSH:
		if (!e->allow_private && (c->token.webpush.insecure ||
		    push_webpush_literal_refused(&c->token))) {
			push_fail(c, VERDICT_GONE, c->token.webpush.insecure ?
			    "insecure_endpoint" : "address_refused");
			return;
		}
		if (push_origin_paused(e, &c->token)) {
			push_fail(c, VERDICT_PAUSE, "paused");
			return;
		}
		rv = webpush_build(e->webpush, c->kind, &c->token,
		    clock_wall_ms(), &c->req, err);
		break;
	default:
		rv = ubports_build(e->ubports, c->kind, &c->token,
		    clock_wall_ms(), &c->req, err);
		break;
	}
	if (rv == 0) {
		push_transport_request(&c->req, &q);
		switch (c->prov) {
		case PROVIDER_APNS:
			rv = h2client_send(e->apns_h2, &q, c, err);
			break;
		case PROVIDER_FCM:
			rv = h2client_send(e->fcm_h2, &q, c, err);
			break;
		case PROVIDER_WEBPUSH:
			rv = httpc_send(e->webpush_http, &q, c, err);
			break;
		default:
			rv = httpc_send(e->ubports_http, &q, c, err);
			break;
		}
	}
	if (rv < 0) {
		log_warnx("push %s: %s", push_provider_label(c->prov), err);
		push_fail(c, VERDICT_TEMPORARY, "send");
	}
}

static void
push_update_queue_metric(struct push_engine *e, enum push_provider p)
{
	metric_set(e->m[p].queue, (int64_t)ratelimit_queued(e->gate[p]));
}

/* The rate limiter let a waiting push go, or gave up on it. */
static void
push_on_gate(void *item, bool go, void *arg)
{
	struct push_call *c = item;
	struct push_engine *e = arg;

	push_update_queue_metric(e, c->prov);
	if (go) {
		push_start(c);
		return;
	}
	metric_inc(e->m[c->prov].limited);
	push_fail(c, VERDICT_TEMPORARY, "rate_limited");
}

int
push_send(struct push_engine *e, enum push_kind kind, const struct token *t,
    void *ctx, char err[ERR_LEN])
{
	enum push_provider p = push_provider_of(t->kind);
	struct push_call *c;

	if (!push_enabled(e, p)) {
		err_set(err, "%s is not configured", push_provider_label(p));
		return -1;
	}
	if (kind == PUSH_HEARTBEAT && p != PROVIDER_APNS) {
		err_set(err, "heartbeats are for APNs tokens only");
		return -1;
	}
	c = xcalloc(1, sizeof(*c));
	c->e = e;
	c->ctx = ctx;
	c->kind = kind;
	c->prov = p;
	c->token = *t;
	if (p == PROVIDER_APNS)
		c->device = xstrndup(t->device, t->device_len);
	e->in_flight++;
	switch (ratelimit_admit(e->gate[p], c)) {
	case 1:
		push_start(c);
		break;
	case 0:
		metric_inc(e->m[p].delayed);
		push_update_queue_metric(e, p);
		break;
	default:
		metric_inc(e->m[p].limited);
		push_fail(c, VERDICT_TEMPORARY, "rate_limited");
		break;
	}
	return 0;
}

size_t
push_in_flight(const struct push_engine *e)
{
	return e->in_flight;
}

/* ---- the engine ------------------------------------------------------ */

static bool
push_allow_address(const struct sockaddr *sa, unsigned int len, void *arg)
{
	enum addr_class cls = addr_policy_classify(sa, (socklen_t)len);

	(void)arg;
	if (addr_policy_is_public(cls))
		return true;
	log_info("push WebPush endpoint refused: its address is %s",
	    addr_policy_class_name(cls));
	return false;
}

static void
push_metrics_new(struct push_engine *e, struct metrics *m)
{
	char labels[64];
	int p;

	for (p = 0; p < PROVIDER_COUNT; p++) {
		snprintf(labels, sizeof(labels), "provider=\"%s\"",
		    push_provider_label(p));
		e->m[p].delayed = metrics_counter(m, "provider_delayed",
		    "Pushes that waited for the provider's rate limit or pause",
		    labels);
		e->m[p].limited = metrics_counter(m, "provider_rate_limited",
		    "Pushes refused (500) because the provider's queue was "
		    "full or they waited too long", labels);
		e->m[p].paused = metrics_counter(m, "provider_paused",
		    "Times the provider asked us to wait (Retry-After)",
		    labels);
		e->m[p].queue = metrics_gauge(m, "provider_queue_depth",
		    "Pushes waiting for the provider's rate limit or pause",
		    labels);
	}
}

static struct httpc *
push_httpc(struct push_engine *e, const struct push_config *cfg,
    httpc_done_fn *done, bool webpush, char err[ERR_LEN])
{
	struct httpc_config hc;

	memset(&hc, 0, sizeof(hc));
	hc.ca_file = cfg->ca_file;
	hc.timeout_ms = cfg->timeout_ms;
	hc.max_connections = 4;
	hc.max_body_bytes = PUSH_ANSWER_MAX_BYTES;
	hc.user_agent = "chatmail-proxyd";
	if (webpush && !cfg->webpush_allow_private) {
		hc.protocols = "https";
		hc.allow_address = push_allow_address;
	}
	return httpc_new(e->base, &hc, done, e, err);
}

/* The HTTP/2 client logs nothing: a connection's end is told here. */
static void
push_on_conn_failed(const char *authority, const char *why, void *arg)
{
	(void)arg;
	log_info("http2 %s: %s", authority, why);
}

static struct h2client *
push_h2client(struct push_engine *e, const struct push_config *cfg,
    bool apns, char err[ERR_LEN])
{
	struct h2client_config hc;

	memset(&hc, 0, sizeof(hc));
	hc.ca_file = cfg->ca_file;
	hc.timeout_ms = cfg->timeout_ms;
	hc.max_streams = apns ? cfg->apns_streams : 100;
	hc.max_body_bytes = PUSH_ANSWER_MAX_BYTES;
	hc.user_agent = "chatmail-proxyd";
	hc.conn_failed = push_on_conn_failed;
	if (apns && cfg->apns_cert != NULL) {
		hc.client_key = cfg->apns_cert->key;
		hc.client_cert = cfg->apns_cert->cert;
		hc.client_chain = cfg->apns_cert->chain;
	}
	return h2client_new(e->base, &hc, push_on_answer, e, err);
}

struct push_engine *
push_engine_new(struct event_base *base, const struct push_config *cfg,
    struct metrics *m, push_done_fn *done, void *arg, char err[ERR_LEN])
{
	struct push_engine *e = xcalloc(1, sizeof(*e));
	struct webpush_config wc;
	struct ubports_config uc;
	struct fcm_config fc;
	int p;

	e->base = base;
	e->done = done;
	e->arg = arg;
	e->allow_private = cfg->webpush_allow_private;
	TAILQ_INIT(&e->later);
	TAILQ_INIT(&e->fcm_waiting);
	e->later_ev = event_new(base, -1, 0, push_on_later, e);
	for (p = 0; p < PROVIDER_COUNT; p++)
		e->gate[p] = ratelimit_new(base, &cfg->limits[p], push_on_gate,
		    e);
	push_metrics_new(e, m);
	if (cfg->apns_enabled) {
		if ((e->apns_h2 = push_h2client(e, cfg, true, err)) == NULL)
			goto fail;
		e->apns = apns_new(&cfg->apns);
	}
	if (cfg->fcm_key != NULL) {
		if ((e->fcm_h2 = push_h2client(e, cfg, false, err)) == NULL ||
		    (e->fcm_auth_http = push_httpc(e, cfg, push_on_fcm_token,
		    false, err)) == NULL)
			goto fail;
		memset(&fc, 0, sizeof(fc));
		fc.api_url = cfg->fcm_api_url;
		e->fcm_key = cfg->fcm_key;
		e->fcm = fcm_new(cfg->fcm_key, &fc);
		e->fcm_auth = fcm_auth_new(cfg->fcm_key, cfg->fcm_token_url);
	}
	if (cfg->vapid != NULL) {
		if ((e->webpush_http = push_httpc(e, cfg, push_on_answer, true,
		    err)) == NULL)
			goto fail;
		memset(&wc, 0, sizeof(wc));
		wc.vapid = cfg->vapid;
		e->webpush = webpush_new(&wc);
	}
	if ((e->ubports_http = push_httpc(e, cfg, push_on_answer, false,
	    err)) == NULL)
		goto fail;
	memset(&uc, 0, sizeof(uc));
	uc.url = cfg->ubports_url;
	uc.appid = cfg->ubports_appid;
	if ((e->ubports = ubports_new(&uc, err)) == NULL)
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
	int p;

	if (e == NULL)
		return;
	e->cancel = cancel;
	h2client_free(e->apns_h2, push_on_cancel);
	h2client_free(e->fcm_h2, push_on_cancel);
	httpc_free(e->webpush_http, push_on_cancel);
	httpc_free(e->ubports_http, push_on_cancel);
	httpc_free(e->fcm_auth_http, NULL);	/* ctx is the engine */
	provider_request_clear(&e->fcm_auth_req);
	for (p = 0; p < PROVIDER_COUNT; p++)
		ratelimit_free(e->gate[p], push_on_cancel);
	push_cancel_list(e, &e->fcm_waiting);
	push_cancel_list(e, &e->later);
	if (e->later_ev != NULL)
		event_free(e->later_ev);
	apns_free(e->apns);
	fcm_auth_free(e->fcm_auth);
	fcm_free(e->fcm);
	webpush_free(e->webpush);
	ubports_free(e->ubports);
	free(e);
}
