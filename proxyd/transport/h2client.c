/*
 * The HTTP/2 client's public face (h2client.h): requests in, answers out,
 * one origin per scheme://authority, and the loop events that drive the
 * rest: the per-pass kick (open connections, submit queued streams,
 * write) and the stream timeout timer. See h2_private.h for the files
 * behind it.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/dns.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "h2_private.h"
#include "xmalloc.h"

void
h2client_deliver(struct h2client *c)
{
	struct httpc_response r;
	struct h2_stream *s;

	while ((s = TAILQ_FIRST(&c->finished)) != NULL) {
		h2_stream_unlink(s);
		memset(&r, 0, sizeof(r));
		r.status = s->error != NULL ? 0 : s->status;
		r.error = s->error != NULL ? s->error :
		    s->status == 0 ? "no status in the answer" : "";
		r.body = s->body != NULL ? s->body : "";
		r.body_len = s->body_len;
		r.retry_after_s = s->retry_after_s;
		r.latency_us = clock_mono_us() - s->start_us;
		c->in_flight--;
		c->done(s->ctx, &r, c->arg);
		h2_stream_free(s);
	}
}

void
h2client_reap(struct h2client *c)
{
	struct h2_conn *conn, *next;

	for (conn = LIST_FIRST(&c->conns); conn != NULL; conn = next) {
		next = LIST_NEXT(conn, link);
		if (conn->state == CONN_DRAINING &&
		    TAILQ_EMPTY(&conn->streams) && conn->out_len == 0)
			h2_conn_fail(conn, H2_DRAINED);
		if (conn->state == CONN_DEAD) {
			/* A dead connection must not linger in the dns
			 * resolver's callback list: cancelled above. */
			h2_conn_free(conn);
		}
	}
}

static void
h2client_arm_timer(struct h2client *c)
{
	struct h2_stream *s = TAILQ_FIRST(&c->timeouts);
	struct timeval tv;
	int64_t wait;

	if (s == NULL || c->timer_armed)
		return;
	wait = s->deadline_us - clock_mono_us();
	if (wait < 0)
		wait = 0;
	tv.tv_sec = wait / 1000000;
	tv.tv_usec = wait % 1000000;
	evtimer_add(c->timer, &tv);
	c->timer_armed = true;
}

/* Runs once per loop pass when there is something to do: opens
 * connections, submits queued streams, writes. */
static void
h2client_on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct h2client *c = arg;
	struct h2_origin *o;
	struct h2_stream *s;
	struct h2_conn *conn;
	size_t i;

	(void)fd;
	(void)what;
	for (i = 0; i < c->norigins; i++) {
		o = c->origins[i];
		if (TAILQ_EMPTY(&o->queue))
			continue;
		if (o->conn == NULL)
			h2_conn_open(c, o);
		if ((conn = o->conn) == NULL || conn->state != CONN_OPEN ||
		    !conn->settings_seen)
			continue;
		while ((s = TAILQ_FIRST(&o->queue)) != NULL) {
			h2_stream_unlink(s);
			h2_stream_submit(conn, s);
		}
	}
	LIST_FOREACH(conn, &c->conns, link)
		if ((conn->state == CONN_OPEN ||
		    conn->state == CONN_DRAINING) &&
		    nghttp2_session_want_write(conn->sess))
			h2_conn_flush(conn);
	h2client_arm_timer(c);
	h2client_deliver(c);
	h2client_reap(c);
}

static void
h2client_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct h2client *c = arg;
	struct h2_stream *s;
	struct h2_conn *conn;
	int64_t now = clock_mono_us();

	(void)fd;
	(void)what;
	c->timer_armed = false;
	while ((s = TAILQ_FIRST(&c->timeouts)) != NULL &&
	    s->deadline_us <= now) {
		conn = s->conn;
		if (conn != NULL && conn->sess != NULL && s->id > 0) {
			nghttp2_submit_rst_stream(conn->sess,
			    NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
			event_active(c->kick, EV_WRITE, 0);
		}
		h2_stream_finish(s, "timed out");
		/* A server that takes streams and never answers would get
		 * every push until TCP gives up: a few timeouts in a row
		 * with no answer between them replace the connection. */
		if (conn != NULL && ++conn->timeouts_in_row >=
		    H2_TIMEOUTS_TO_REPLACE)
			h2_conn_fail(conn, "%u requests in a row timed out",
			    conn->timeouts_in_row);
	}
	h2client_arm_timer(c);
	h2client_deliver(c);
	h2client_reap(c);
}

static struct h2_origin *
h2client_origin_new(struct h2client *c, const char *url, char err[ERR_LEN])
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL;
	struct h2_origin *o = NULL;
	const char *auth_start, *auth_end;
	struct in6_addr a6;
	size_t hl;

	if (c->norigins == H2_MAX_ORIGINS) {
		err_set(err, "more than %d origins", H2_MAX_ORIGINS);
		goto out;
	}
	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK) {
		err_set(err, "not a URL");
		goto out;
	}
	if (strcmp(scheme, "https") != 0) {
		err_set(err, "HTTP/2 client: https:// only");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
		err_set(err, "user information in a URL");
		goto out;
	}
	/* The authority exactly as written, for :authority and the prefix
	 * that later URLs of this origin are matched with. */
	auth_start = url + strlen("https://");
	auth_end = auth_start + strcspn(auth_start, "/?#");
	o = xcalloc(1, sizeof(*o));
	o->prefix_len = (size_t)(auth_end - url);
	o->prefix = xstrndup(url, o->prefix_len);
	o->authority = xstrndup(auth_start, (size_t)(auth_end - auth_start));
	hl = strlen(host);
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
		o->host = xstrndup(host + 1, hl - 2);
	else
		o->host = xstrdup(host);
	o->host_is_ip = inet_pton(AF_INET, o->host, &a6) == 1 ||
	    inet_pton(AF_INET6, o->host, &a6) == 1;
	snprintf(o->port, sizeof(o->port), "%s", port);
	TAILQ_INIT(&o->queue);
	c->origins[c->norigins++] = o;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(user);
	curl_url_cleanup(u);
	return o;
}

static struct h2_origin *
h2client_origin_find(struct h2client *c, const char *url, const char **path)
{
	struct h2_origin *o;
	size_t i;

	for (i = 0; i < c->norigins; i++) {
		o = c->origins[i];
		if (strncmp(url, o->prefix, o->prefix_len) == 0 &&
		    (url[o->prefix_len] == '/' ||
		    url[o->prefix_len] == '\0' ||
		    url[o->prefix_len] == '?')) {
			*path = url + o->prefix_len;
			return o;
		}
	}
	return NULL;
}

/* The client certificate, its key and chain, for every handshake. */
static int
h2client_use_identity(SSL_CTX *ctx, const struct h2client_config *cfg,
    char err[ERR_LEN])
{
	int i;

	if (SSL_CTX_use_certificate(ctx, cfg->client_cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, cfg->client_key) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		err_set(err, "client certificate and key do not match");
		ERR_clear_error();
		return -1;
	}
	for (i = 0; cfg->client_chain != NULL &&
	    i < sk_X509_num(cfg->client_chain); i++)
		if (SSL_CTX_add1_chain_cert(ctx,
		    sk_X509_value(cfg->client_chain, i)) != 1) {
			err_set(err, "cannot use the client certificate's "
			    "chain");
			ERR_clear_error();
			return -1;
		}
	return 0;
}

struct h2client *
h2client_new(struct event_base *base, const struct h2client_config *cfg,
    httpc_done_fn *done, void *arg, char err[ERR_LEN])
{
	static const unsigned char alpn[] = "\x02h2";
	struct h2client *c = xcalloc(1, sizeof(*c));

	c->base = base;
	c->cfg = *cfg;
	c->done = done;
	c->arg = arg;
	c->cfg.ca_file = NULL;
	c->cfg.client_key = NULL;
	c->cfg.client_cert = NULL;
	c->cfg.client_chain = NULL;
	c->user_agent = cfg->user_agent != NULL ? xstrdup(cfg->user_agent) :
	    NULL;
	c->cfg.user_agent = NULL;
	LIST_INIT(&c->conns);
	TAILQ_INIT(&c->timeouts);
	TAILQ_INIT(&c->finished);
	if ((c->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		err_set(err, "TLS: %s", h2_conn_ssl_error());
		goto fail;
	}
	SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_alpn_protos(c->ssl_ctx, alpn, sizeof(alpn) - 1);
	if (cfg->ca_file != NULL ?
	    SSL_CTX_load_verify_locations(c->ssl_ctx, cfg->ca_file, NULL) != 1 :
	    SSL_CTX_set_default_verify_paths(c->ssl_ctx) != 1) {
		err_set(err, "CA certificates %s: %s", cfg->ca_file != NULL ?
		    cfg->ca_file : "(system)", h2_conn_ssl_error());
		goto fail;
	}
	if (cfg->client_cert != NULL && h2client_use_identity(c->ssl_ctx, cfg,
	    err) < 0)
		goto fail;
	if ((c->dns = evdns_base_new(base,
	    EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE)) == NULL &&
	    (c->dns = evdns_base_new(base, 0)) == NULL) {
		err_set(err, "DNS resolver: cannot start");
		goto fail;
	}
	c->timer = evtimer_new(base, h2client_on_timer, c);
	c->kick = event_new(base, -1, 0, h2client_on_kick, c);
	return c;
fail:
	SSL_CTX_free(c->ssl_ctx);
	free(c->user_agent);
	free(c);
	return NULL;
}

int
h2client_send(struct h2client *c, const struct httpc_request *q, void *ctx,
    char err[ERR_LEN])
{
	struct h2_origin *o;
	struct h2_stream *s;
	const char *path, *colon;
	size_t i, names = 0;

	if (q->nheaders + 5 > H2_MAX_HEADERS) {
		err_set(err, "too many headers");
		return -1;
	}
	for (i = 0; i < q->nheaders; i++) {
		if ((colon = strchr(q->headers[i], ':')) == NULL ||
		    colon == q->headers[i]) {
			err_set(err, "header %zu has no name", i);
			return -1;
		}
		names += (size_t)(colon - q->headers[i]);
	}
	if (names > H2_HEADER_NAMES_BYTES) {
		err_set(err, "header names too long");
		return -1;
	}
	if ((o = h2client_origin_find(c, q->url, &path)) == NULL) {
		if ((o = h2client_origin_new(c, q->url, err)) == NULL)
			return -1;
		path = q->url + o->prefix_len;
	}
	s = xcalloc(1, sizeof(*s));
	s->c = c;
	s->origin = o;
	s->ctx = ctx;
	s->q = *q;
	s->path = *path == '/' ? path : "/";
	s->retry_after_s = -1;
	s->start_us = clock_mono_us();
	s->deadline_us = s->start_us + c->cfg.timeout_ms * 1000;
	TAILQ_INSERT_TAIL(&o->queue, s, link);
	s->where = ON_QUEUE;
	TAILQ_INSERT_TAIL(&c->timeouts, s, tlink);
	c->in_flight++;
	event_active(c->kick, EV_WRITE, 0);
	return 0;
}

size_t
h2client_in_flight(const struct h2client *c)
{
	return c->in_flight;
}

void
h2client_free(struct h2client *c, httpc_cancel_fn *cancel)
{
	struct h2_stream *s;
	struct h2_conn *conn;
	size_t i;

	if (c == NULL)
		return;
	c->freeing = true;
	while ((s = TAILQ_FIRST(&c->timeouts)) != NULL) {
		TAILQ_REMOVE(&c->timeouts, s, tlink);
		h2_stream_unlink(s);
		if (cancel != NULL)
			cancel(s->ctx, c->arg);
		h2_stream_free(s);
	}
	while ((s = TAILQ_FIRST(&c->finished)) != NULL) {
		h2_stream_unlink(s);
		if (cancel != NULL)
			cancel(s->ctx, c->arg);
		h2_stream_free(s);
	}
	while ((conn = LIST_FIRST(&c->conns)) != NULL) {
		TAILQ_INIT(&conn->streams);	/* freed above */
		h2_conn_free(conn);
	}
	for (i = 0; i < c->norigins; i++) {
		free(c->origins[i]->prefix);
		free(c->origins[i]->authority);
		free(c->origins[i]->host);
		free(c->origins[i]);
	}
	if (c->dns != NULL)
		evdns_base_free(c->dns, 1);
	event_free(c->timer);
	event_free(c->kick);
	SSL_CTX_free(c->ssl_ctx);
	free(c->user_agent);
	free(c);
}
