/* Sending pushes through provider modules; see push.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "db.h"
#include "h2client.h"
#include "push.h"
#include "xmalloc.h"

/* One push in flight. */
struct push_call {
	struct push_engine	*e;
	void			*ctx;
	enum push_kind		 kind;
	char			*device;	/* a secret */
	bool			 sandbox;
	bool			 retried;	/* after a renewed credential */
	struct provider_request	 req;
};

struct push_engine {
	struct h2client		*apns_http;
	struct apns		*apns;
	push_done_fn		*done;
	void			*arg;
	void			(*cancel)(void *, void *);
};

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

static int
push_apns_start(struct push_call *c, char err[ERR_LEN])
{
	struct httpc_request hr;

	provider_request_clear(&c->req);
	if (apns_build(c->e->apns, c->kind, c->device, c->sandbox,
	    db_now_ms(), &c->req, err) < 0)
		return -1;
	memset(&hr, 0, sizeof(hr));
	hr.url = c->req.url;
	hr.headers = (const char *const *)c->req.headers;
	hr.nheaders = c->req.nheaders;
	hr.body = c->req.body;
	hr.body_len = c->req.body_len;
	return h2client_send(c->e->apns_http, &hr, c, err);
}

static void
push_on_apns_answer(void *ctx, const struct httpc_response *resp, void *arg)
{
	struct push_engine *e = arg;
	struct push_call *c = ctx;
	struct provider_result res;
	char err[ERR_LEN];

	apns_classify(resp->status, resp->body, resp->body_len, &res);
	if (resp->status == 0)
		snprintf(res.reason, sizeof(res.reason), "send");
	/* ExpiredProviderToken: a new token and one more try, unless the
	 * current token is too young to be replaced (Apple's limit). */
	if (res.verdict == VERDICT_RENEW_AUTH && !c->retried &&
	    apns_jwt_expired(e->apns, db_now_ms())) {
		c->retried = true;
		if (push_apns_start(c, err) == 0)
			return;
	}
	if (res.verdict == VERDICT_RENEW_AUTH)
		res.verdict = VERDICT_TEMPORARY;
	e->done(c->ctx, &res, e->arg);
	push_call_free(c);
}

struct push_engine *
push_engine_new(struct event_base *base, const struct push_config *cfg,
    push_done_fn *done, void *arg, char err[ERR_LEN])
{
	struct push_engine *e = xcalloc(1, sizeof(*e));
	struct httpc_config hc;

	e->done = done;
	e->arg = arg;
	if (!cfg->apns_enabled)
		return e;
	memset(&hc, 0, sizeof(hc));
	hc.ca_file = cfg->ca_file;
	hc.timeout_ms = cfg->timeout_ms;
	/* One multiplexed connection per endpoint (production, sandbox):
	 * Apple dislikes connection churn and allows many streams. */
	hc.max_connections = 1;
	hc.max_streams = cfg->apns_streams;
	hc.max_body_bytes = 4096;
	hc.client_p12 = cfg->apns_p12;
	hc.client_p12_password = cfg->apns_p12_password;
	hc.user_agent = "chatmail-proxyd";
	if ((e->apns_http = h2client_new(base, &hc, push_on_apns_answer, e,
	    err)) == NULL) {
		free(e);
		return NULL;
	}
	e->apns = apns_new(&cfg->apns);
	return e;
}

bool
push_apns_enabled(const struct push_engine *e)
{
	return e->apns != NULL;
}

int
push_apns(struct push_engine *e, enum push_kind kind, const char *device,
    bool sandbox, void *ctx, char err[ERR_LEN])
{
	struct push_call *c;

	if (e->apns == NULL) {
		err_set(err, "no APNs credentials configured");
		return -1;
	}
	c = xcalloc(1, sizeof(*c));
	c->e = e;
	c->ctx = ctx;
	c->kind = kind;
	c->device = xstrdup(device);
	c->sandbox = sandbox;
	if (push_apns_start(c, err) < 0) {
		push_call_free(c);
		return -1;
	}
	return 0;
}

size_t
push_in_flight(const struct push_engine *e)
{
	return e->apns_http != NULL ? h2client_in_flight(e->apns_http) : 0;
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

void
push_engine_free(struct push_engine *e, void (*cancel)(void *, void *))
{
	if (e == NULL)
		return;
	e->cancel = cancel;
	h2client_free(e->apns_http, push_on_cancel);
	apns_free(e->apns);
	free(e);
}
