/*
 * The two HTTP clients behind transport.h's operations. Each client is
 * its own opaque type; a struct transport is that client's handle under
 * another name, so a send costs one indirect call and nothing more.
 */
#include "transport.h"

static struct transport *
transport_h2_new(struct event_base *base, const struct transport_config *cfg,
    httpc_done_fn *done, void *arg, char err[ERR_LEN])
{
	return (struct transport *)h2client_new(base, &cfg->h2, done, arg,
	    err);
}

static int
transport_h2_send(struct transport *t, const struct httpc_request *q,
    void *ctx, char err[ERR_LEN])
{
	return h2client_send((struct h2client *)t, q, ctx, err);
}

static size_t
transport_h2_in_flight(const struct transport *t)
{
	return h2client_in_flight((const struct h2client *)t);
}

static void
transport_h2_free(struct transport *t, httpc_cancel_fn *cancel)
{
	h2client_free((struct h2client *)t, cancel);
}

static struct transport *
transport_http_new(struct event_base *base,
    const struct transport_config *cfg, httpc_done_fn *done, void *arg,
    char err[ERR_LEN])
{
	return (struct transport *)httpc_new(base, &cfg->http, done, arg,
	    err);
}

static int
transport_http_send(struct transport *t, const struct httpc_request *q,
    void *ctx, char err[ERR_LEN])
{
	return httpc_send((struct httpc *)t, q, ctx, err);
}

static size_t
transport_http_in_flight(const struct transport *t)
{
	return httpc_in_flight((const struct httpc *)t);
}

static void
transport_http_free(struct transport *t, httpc_cancel_fn *cancel)
{
	httpc_free((struct httpc *)t, cancel);
}

static const struct transport_ops transport_h2 = {
	.name = "h2",
	.new = transport_h2_new,
	.send = transport_h2_send,
	.in_flight = transport_h2_in_flight,
	.free = transport_h2_free,
};

static const struct transport_ops transport_http = {
	.name = "http",
	.new = transport_http_new,
	.send = transport_http_send,
	.in_flight = transport_http_in_flight,
	.free = transport_http_free,
};

const struct transport_ops *const transports[TRANSPORT_KINDS] = {
	[TRANSPORT_HTTP] = &transport_http,
	[TRANSPORT_H2] = &transport_h2,
};
