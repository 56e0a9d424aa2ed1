/*
 * The HTTP API on libmicrohttpd in external epoll mode; see api.h.
 *
 * MHD calls api_on_request several times per request: first with the
 * headers (we check them, find the client the request counts against
 * and route it; a verdict reached here is answered at once, and MHD then
 * neither reads the body nor keeps the connection), then with pieces of
 * the body (we collect them, bounded), then once more with nothing (we
 * hand the request to the handler; an answer it gives at once is queued
 * there and then, otherwise the connection is suspended). api_reply()
 * resumes it; MHD then calls us a last time and we queue the response.
 *
 * Around the requests MHD tells us of each connection
 * (api_on_connection), each request line (api_on_uri) and each finished
 * request (api_on_completed); they move the connection between the
 * phases of api_conn.h, and a timer (api_on_sweep) cuts the connections
 * past their deadline. Accepting is api_accept.c's.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <microhttpd.h>

#include "api_headers.h"
#include "api_private.h"
#include "buf.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "xmalloc.h"

/* The defaults of struct api_limits (docs/proxyd.md "Intake bounds"). */
#define API_DEFAULT_MAX_CONNECTIONS	20000
#define API_DEFAULT_MAX_PER_IP		5000
/* notifierd's default --concurrency is 256 requests in flight. */
#define API_DEFAULT_MAX_REQUESTS	256
#define API_DEFAULT_REQUEST_TIMEOUT_MS	(10 * 1000)
#define API_DEFAULT_IDLE_TIMEOUT_MS	(30 * 1000)
/* MHD's per-connection memory: request line and headers must fit. */
#define API_CONNECTION_MEMORY		((size_t)32768)
/* A chunked body over the limit is read on and dropped up to this many
 * times the limit, so that a small overshoot still gets its 413 (a
 * declared one gets it before any body is read); past that the
 * connection is cut. */
#define API_DISCARD_FACTOR		2
/* Retry-After of a 429: requests in progress finish within seconds. */
#define API_RETRY_AFTER_S		1
/* The longest Retry-After a handler may ask for (api_reply_retry). */
#define API_RETRY_AFTER_MAX_S		86400
/* MHD's own (idle) timeout, a backstop: at most a day. */
#define API_BACKSTOP_MAX_S		(24 * 3600)
/* Connections past their deadline cut per timer callback; the rest go
 * in the next loop pass. */
#define API_SWEEP_BATCH			1024

enum api_req_state {
	API_REQ_READING,	/* body coming in */
	API_REQ_HANDLING,	/* inside the handler: an answer now is
				 * queued at once, no suspend */
	API_REQ_WAITING,	/* suspended, the handler has it */
	API_REQ_ANSWERED,	/* resumed, response to queue */
};

struct api_request {
	struct api		*api;
	struct MHD_Connection	*conn;
	struct api_conn		*ac;		/* its connection */
	struct api_client	*client;	/* counted there, or NULL */
	enum api_req_state	 state;
	enum api_route		 route;
	bool			 routed;	/* a POST to a known path */
	bool			 too_large;
	bool			 cut;		/* too large to read on */
	size_t			 dropped;	/* body bytes past the limit */
	struct buf		 body;
	unsigned int		 status;
	unsigned int		 retry_after_s;	/* 0: no Retry-After */
	char			*answer;
	struct api_request	*prev, *next;	/* pending list */
};

void
api_limits_default(struct api_limits *l)
{
	memset(l, 0, sizeof(*l));
	l->max_connections = API_DEFAULT_MAX_CONNECTIONS;
	l->max_per_ip = API_DEFAULT_MAX_PER_IP;
	l->max_requests_per_client = API_DEFAULT_MAX_REQUESTS;
	l->max_body_bytes = API_MAX_BODY_BYTES;
	l->request_timeout_ms = API_DEFAULT_REQUEST_TIMEOUT_MS;
	l->idle_timeout_ms = API_DEFAULT_IDLE_TIMEOUT_MS;
}

/* Queues an answer; retry_after_s > 0 adds Retry-After (RFC 9110
 * 10.2.3, in seconds). */
static enum MHD_Result
api_queue(struct MHD_Connection *conn, unsigned int status, const char *body,
    unsigned int retry_after_s)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char retry[16];

	if (body == NULL)
		body = "";
	resp = MHD_create_response_from_buffer(strlen(body), (void *)body,
	    MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain; charset=utf-8");
	if (retry_after_s > 0) {
		snprintf(retry, sizeof(retry), "%u", retry_after_s);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER,
		    retry);
	}
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void
api_pending_unlink(struct api *a, struct api_request *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		a->pending = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	a->npending--;
}

/* ---- connections and deadlines ------------------------------------- */

static struct api_conn *
api_conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info;

	info = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return info != NULL ? info->socket_context : NULL;
}

/* The sweep timer fires at the earliest deadline. Deadlines are appended
 * in order (api_conn.h), so it only moves earlier when the other list's
 * head is earlier than the one it was armed for. */
static void
api_sweep_arm(struct api *a)
{
	int64_t next = api_conns_next_deadline(&a->conns), wait;
	struct timeval tv;

	if (next < 0 || (a->sweep_at >= 0 && a->sweep_at <= next))
		return;
	wait = next - clock_mono_ms();
	if (wait < 0)
		wait = 0;
	tv.tv_sec = (time_t)(wait / 1000);
	tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
	evtimer_add(a->sweep, &tv);
	a->sweep_at = next;
}

void
api_conn_shut(struct api *a, struct api_conn *c)
{
	/* MHD reads the end of the stream and closes the connection (and
	 * ends its request) on its next pass: nothing is freed under it. */
	shutdown(c->fd, SHUT_RDWR);
	api_schedule(a);
}

static void
api_on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct api *a = arg;
	struct api_conn *c;
	int64_t now = clock_mono_ms();
	bool idle;
	int n;

	(void)fd;
	(void)what;
	a->sweep_at = -1;
	for (n = 0; n < API_SWEEP_BATCH &&
	    (c = api_conns_expired(&a->conns, now, &idle)) != NULL; n++) {
		/* Counted before the peer can see the end. */
		metric_inc(idle ? a->st.idle_timeouts : a->st.request_timeouts);
		api_conn_shut(a, c);
	}
	api_sweep_arm(a);
}

static void
api_conn_started(struct api *a, struct MHD_Connection *conn,
    void **socket_context)
{
	const union MHD_ConnectionInfo *info;
	const struct sockaddr *sa;
	struct api_conn *c = xcalloc(1, sizeof(*c));
	struct api_addr key;

	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	c->fd = info->connect_fd;
	info = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	sa = info->client_addr;
	/* api_accept.c only hands over IPv4 and IPv6 peers. */
	api_addr_from_sockaddr(sa, sa->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
	    &c->peer);
	c->trusted = api_trust_match(&a->trust, &c->peer);
	if (!c->trusted) {
		api_addr_client(&c->peer, &key);
		c->counted = api_clients_get(a->clients, &key);
		c->counted->conns++;
	}
	api_conns_add(&a->conns, c, clock_mono_ms());
	metric_set(a->st.connections, (int64_t)a->conns.open);
	*socket_context = c;
	api_sweep_arm(a);
}

static void
api_conn_closed(struct api *a, struct api_conn *c)
{
	if (c->counted != NULL) {
		c->counted->conns--;
		api_clients_put(a->clients, c->counted);
	}
	api_conns_remove(&a->conns, c);
	metric_set(a->st.connections, (int64_t)a->conns.open);
	free(c);
	api_accept_room(a);
}

static void
api_on_connection(void *arg, struct MHD_Connection *conn,
    void **socket_context, enum MHD_ConnectionNotificationCode code)
{
	struct api *a = arg;

	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		api_conn_started(a, conn, socket_context);
	else if (*socket_context != NULL) {
		api_conn_closed(a, *socket_context);
		*socket_context = NULL;
	}
}

/* A request line is in: a kept-alive connection starts a new request's
 * clock here (its first request's runs from the connection's start). */
static void *
api_on_uri(void *arg, const char *uri, struct MHD_Connection *conn)
{
	struct api *a = arg;
	struct api_conn *c = api_conn_of(conn);

	(void)uri;
	if (c != NULL) {
		api_conn_reading(&a->conns, c, clock_mono_ms());
		api_sweep_arm(a);
	}
	return NULL;		/* api_on_request makes the request state */
}

/* libmicrohttpd's own lines: mostly about a client (one that went away
 * mid-request, a malformed line), so rate-limited like ours; escaped,
 * as some quote what the peer sent. */
static void
api_on_mhd_log(void *arg, const char *fmt, va_list ap)
{
	struct api *a = arg;

	log_limited_escaped(&a->lim.mhd, LOG_LEVEL_INFO, "api libmicrohttpd",
	    fmt, ap);
}

/* ---- requests ------------------------------------------------------ */

static enum MHD_Result
api_on_header(void *arg, enum MHD_ValueKind kind, const char *name,
    size_t name_len, const char *value, size_t value_len)
{
	(void)kind;
	api_headers_add(arg, name, name_len, value != NULL ? value : "",
	    value != NULL ? value_len : 0);
	return MHD_YES;
}

/* Answered from the first call, before the body: MHD sends it, drops
 * whatever body follows and closes the connection. */
static enum MHD_Result
api_answer_early(struct api_request *r, unsigned int status,
    const char *body, unsigned int retry_after_s)
{
	if (r->ac != NULL)
		api_conn_busy(&r->api->conns, r->ac);
	r->state = API_REQ_ANSWERED;
	return api_queue(r->conn, status, body, retry_after_s);
}

/* True once headers api_headers.c refuses are answered (400 or 413, the
 * queueing's result in *ret_out); false to go on. */
static bool
api_check_headers(struct api_request *r, const struct api_headers *h,
    enum MHD_Result *ret_out)
{
	struct api *a = r->api;
	enum api_headers_verdict v;
	const char *reason;
	char msg[96], peer[API_ADDR_STRLEN] = "?";

	v = api_headers_verdict(h, a->limits.max_body_bytes, &reason);
	if (v == API_HEADERS_OK)
		return false;
	snprintf(msg, sizeof(msg), "%s\n", reason);
	if (v == API_HEADERS_TOO_LARGE) {
		metric_inc(a->st.too_large);
		*ret_out = api_answer_early(r, MHD_HTTP_CONTENT_TOO_LARGE,
		    msg, 0);
		return true;
	}
	metric_inc(v == API_HEADERS_BAD_LENGTH ? a->st.bad_length :
	    v == API_HEADERS_BAD_ENCODING ? a->st.bad_encoding :
	    a->st.bad_char);
	if (r->ac != NULL)
		api_addr_format(&r->ac->peer, peer);
	log_limited(&a->lim.bad, LOG_LEVEL_INFO, "api bad request peer=%s: "
	    "%s", peer, reason);
	*ret_out = api_answer_early(r, MHD_HTTP_BAD_REQUEST, msg, 0);
	return true;
}

/* The client a request counts against: the peer, or, from a trusted
 * proxy, the address it appended to X-Forwarded-For. A proxy's own
 * requests without one (its health checks: GET) are not worth a line. */
static void
api_client_key(struct api *a, const struct api_conn *c,
    const struct api_headers *h, bool post, struct api_addr *key_out)
{
	struct api_addr xff;
	char peer[API_ADDR_STRLEN];

	if (c->trusted) {
		if (h->xff != NULL && api_xff_last(h->xff, h->xff_len, &xff)
		    == 0) {
			api_addr_client(&xff, key_out);
			return;
		}
		if (post) {
			api_addr_format(&c->peer, peer);
			log_limited(&a->lim.xff, LOG_LEVEL_WARN, "api request "
			    "from trusted proxy %s without an address in "
			    "X-Forwarded-For: counted as the proxy's own",
			    peer);
		}
	}
	api_addr_client(&c->peer, key_out);
}

/* Counts r against its client: true, or false after a 429. */
static bool
api_count_client(struct api_request *r, const struct api_headers *h,
    bool post, enum MHD_Result *ret_out)
{
	struct api *a = r->api;
	struct api_client *cl;
	struct api_addr key;
	char addr[API_ADDR_STRLEN];

	if (r->ac == NULL)
		return true;
	api_client_key(a, r->ac, h, post, &key);
	cl = api_clients_get(a->clients, &key);
	if (cl->requests >= a->limits.max_requests_per_client) {
		api_clients_put(a->clients, cl);
		metric_inc(a->st.client_refused);
		api_addr_format(&key, addr);
		log_limited(&a->lim.client, LOG_LEVEL_INFO, "api client %s: "
		    "--max-requests-per-client %u reached, 429", addr,
		    a->limits.max_requests_per_client);
		*ret_out = api_answer_early(r, MHD_HTTP_TOO_MANY_REQUESTS,
		    "too many requests in progress\n", API_RETRY_AFTER_S);
		return false;
	}
	cl->requests++;
	r->client = cl;
	return true;
}

/* The first call: headers only. */
static enum MHD_Result
api_request_start(struct api *a, struct MHD_Connection *conn,
    const char *url, const char *method, void **state)
{
	const union MHD_ConnectionInfo *info;
	struct api_request *r = xcalloc(1, sizeof(*r));
	struct api_headers h;
	enum MHD_Result ret = MHD_YES;

	r->api = a;
	r->conn = conn;
	r->ac = api_conn_of(conn);
	buf_init(&r->body);
	*state = r;
	/* MHD parsed the header block in place, starting at the method
	 * (api_headers.h says why that matters). */
	info = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	api_headers_init(&h, info != NULL ? method : NULL,
	    info != NULL ? info->header_size : 0);
	MHD_get_connection_values_n(conn, MHD_HEADER_KIND, api_on_header, &h);
	if (api_check_headers(r, &h, &ret) || !api_count_client(r, &h,
	    strcmp(method, "POST") == 0, &ret))
		return ret;
	if (strcmp(method, "POST") == 0) {
		if (strcmp(url, "/notify") == 0) {
			r->route = API_ROUTE_NOTIFY;
			r->routed = true;
		} else if (strcmp(url, "/register") == 0) {
			r->route = API_ROUTE_REGISTER;
			r->routed = true;
		}
	}
	return MHD_YES;
}

/* A piece of the body. */
static void
api_request_body(struct api_request *r, const char *data, size_t len)
{
	struct api *a = r->api;

	if (!r->too_large && r->body.len + len > a->limits.max_body_bytes)
		r->too_large = true;
	if (!r->too_large) {
		buf_append(&r->body, data, len);
		return;
	}
	r->dropped += len;
	if (r->dropped > API_DISCARD_FACTOR * a->limits.max_body_bytes &&
	    !r->cut) {
		r->cut = true;
		metric_inc(a->st.too_large);
		if (r->ac != NULL && r->ac->phase != API_CONN_CUT) {
			api_conns_cut(&a->conns, r->ac);
			api_conn_shut(a, r->ac);
		}
	}
}

/* A request that is no POST to a handler's path: /, the probes, or 404.
 * Answered here, at once: a load balancer's probe costs its answer and
 * nothing more, whatever else waits. MHD leaves the body out of an
 * answer to HEAD. */
static enum MHD_Result
api_answer_get(struct api_request *r, const char *url, const char *method)
{
	struct api *a = r->api;
	enum api_probe probe;
	char body[API_PROBE_BODY_MAX];
	unsigned int status;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return api_queue(r->conn, MHD_HTTP_NOT_FOUND, "not found\n",
		    0);
	if (strcmp(url, "/") == 0)
		return api_queue(r->conn, MHD_HTTP_OK, "Hello, world!", 0);
	if (strcmp(url, "/health") == 0)
		probe = API_PROBE_HEALTH;
	else if (strcmp(url, "/ready") == 0)
		probe = API_PROBE_READY;
	else
		return api_queue(r->conn, MHD_HTTP_NOT_FOUND, "not found\n",
		    0);
	if (a->probe == NULL) {
		status = MHD_HTTP_OK;
		snprintf(body, sizeof(body), "%s\n", probe == API_PROBE_HEALTH ?
		    "ok" : "ready");
	} else {
		body[0] = '\0';
		status = a->probe(probe, body, sizeof(body), a->probe_arg);
		body[sizeof(body) - 1] = '\0';
	}
	return api_queue(r->conn, status, body, 0);
}

/* The whole body is in: answer or hand to the handler. */
static enum MHD_Result
api_request_ready(struct api_request *r, const char *url, const char *method)
{
	struct api *a = r->api;

	if (r->ac != NULL)
		api_conn_busy(&a->conns, r->ac);
	if (r->too_large) {
		if (!r->cut)
			metric_inc(a->st.too_large);
		return api_queue(r->conn, MHD_HTTP_CONTENT_TOO_LARGE,
		    "request body too large\n", 0);
	}
	if (!r->routed)
		return api_answer_get(r, url, method);
	if (r->body.data == NULL)
		buf_append(&r->body, "", 0);
	/* An answer given inside the handler (debounced, malformed,
	 * cached) is queued right here: suspending and resuming in the
	 * same call left such answers unsent on a new connection while
	 * another one was open (MHD 0.9.75). */
	r->state = API_REQ_HANDLING;
	a->handler(r, r->route, r->body.data, r->body.len, a->arg);
	if (r->state == API_REQ_ANSWERED)
		return api_queue(r->conn, r->status, r->answer,
		    r->retry_after_s);
	r->state = API_REQ_WAITING;
	r->next = a->pending;
	if (a->pending != NULL)
		a->pending->prev = r;
	a->pending = r;
	a->npending++;
	MHD_suspend_connection(r->conn);
	return MHD_YES;
}

static enum MHD_Result
api_on_request(void *arg, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **state)
{
	struct api *a = arg;
	struct api_request *r = *state;

	(void)version;
	if (r == NULL)			/* headers only so far */
		return api_request_start(a, conn, url, method, state);
	if (*upload_size != 0) {
		api_request_body(r, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	switch (r->state) {
	case API_REQ_READING:
		return api_request_ready(r, url, method);
	case API_REQ_HANDLING:
	case API_REQ_WAITING:
		return MHD_YES;		/* not resumed yet */
	case API_REQ_ANSWERED:
		return api_queue(conn, r->status, r->answer, r->retry_after_s);
	}
	return MHD_NO;
}

/* A request is over (answered, or its connection gone): the connection,
 * if kept, waits for the next one. */
static void
api_on_completed(void *arg, struct MHD_Connection *conn, void **state,
    enum MHD_RequestTerminationCode code)
{
	struct api *a = arg;
	struct api_request *r = *state;
	struct api_conn *c = api_conn_of(conn);

	(void)code;
	if (c != NULL && !a->stopping) {
		api_conn_idle(&a->conns, c, clock_mono_ms());
		api_sweep_arm(a);
		api_accept_room(a);	/* one more that can give way */
	}
	if (r == NULL)
		return;
	if (r->state == API_REQ_WAITING)
		api_pending_unlink(a, r);	/* daemon stopping */
	if (r->client != NULL) {
		r->client->requests--;
		api_clients_put(a->clients, r->client);
	}
	buf_clear(&r->body);
	free(r->answer);
	free(r);
	*state = NULL;
}

void
api_reply_retry(struct api_request *r, unsigned int status, const char *body,
    unsigned int retry_after_s)
{
	struct api *a = r->api;

	if (r->state != API_REQ_HANDLING && r->state != API_REQ_WAITING)
		return;
	r->retry_after_s = retry_after_s > API_RETRY_AFTER_MAX_S ?
	    API_RETRY_AFTER_MAX_S : retry_after_s;
	r->status = status;
	r->answer = xstrdup(body != NULL ? body : "");
	if (r->state == API_REQ_HANDLING) {	/* queued by the caller */
		r->state = API_REQ_ANSWERED;
		return;
	}
	api_pending_unlink(a, r);
	r->state = API_REQ_ANSWERED;
	MHD_resume_connection(r->conn);
	api_schedule(a);
}

void
api_reply(struct api_request *r, unsigned int status, const char *body)
{
	api_reply_retry(r, status, body, 0);
}

int
api_request_client(const struct api_request *r, struct api_addr *client_out)
{
	if (r->client == NULL)
		return -1;
	*client_out = r->client->addr;
	return 0;
}

size_t
api_pending(const struct api *a)
{
	return a->npending;
}

uint16_t
api_port(const struct api *a)
{
	return a->port;
}

size_t
api_connections(const struct api *a)
{
	return a->conns.open;
}

/* ---- the loop ------------------------------------------------------ */

/* Let MHD work, then arm its next timeout. */
static void
api_on_run(evutil_socket_t fd, short what, void *arg)
{
	struct api *a = arg;
	MHD_UNSIGNED_LONG_LONG ms;
	struct timeval tv;

	(void)fd;
	(void)what;
	MHD_run(a->mhd);
	if (MHD_get_timeout(a->mhd, &ms) == MHD_YES) {
		tv.tv_sec = (time_t)(ms / 1000);
		tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
		event_add(a->run, &tv);
	}
}

/* MHD runs at the start of the next loop pass, not in this one. Made
 * active from inside this pass's callbacks, it took new requests whose
 * answers (an owed push's 200 after the group commit) made it active
 * again, and libevent ran that chain without ever going back to poll the
 * sockets and the timers: under 256 connections of requests answered
 * without a push, the providers' answers and due owed pushes waited up
 * to 350 ms at a time, and windows of 50 ms lasted several times that.
 * A timer of zero is run after the next poll. */
void
api_schedule(struct api *a)
{
	static const struct timeval next_pass = { 0, 0 };

	evtimer_add(a->run, &next_pass);
}

static void
api_register_metrics(struct api *a, struct metrics *m)
{
	struct api_stats *st = &a->st;
	const char *bad = "Requests answered 400 before their body: headers "
	    "a proxy could read differently";

	st->connections = metrics_gauge(m, "http_connections",
	    "Connections open to the HTTP intake", NULL);
	st->request_timeouts = metrics_counter(m, "http_request_timeouts",
	    "Connections cut because a request's headers and body took "
	    "longer than --request-timeout", NULL);
	st->idle_timeouts = metrics_counter(m, "http_idle_timeouts",
	    "Kept-alive connections closed after --idle-timeout without a "
	    "new request", NULL);
	st->evicted = metrics_counter(m, "http_connections_evicted",
	    "Connections given up at --max-connections for a newcomer "
	    "(the oldest still sending its request, else the oldest idle)",
	    NULL);
	st->peer_refused = metrics_counter(m, "http_connections_refused",
	    "Connections refused at --max-connections-per-ip", NULL);
	st->client_refused = metrics_counter(m, "http_client_requests_refused",
	    "Requests answered 429 at --max-requests-per-client", NULL);
	st->too_large = metrics_counter(m, "http_body_too_large",
	    "Requests answered 413 (or cut) over --max-body-size", NULL);
	st->bad_length = metrics_counter(m, "http_bad_requests", bad,
	    "reason=\"content_length\"");
	st->bad_encoding = metrics_counter(m, "http_bad_requests", bad,
	    "reason=\"transfer_encoding\"");
	st->bad_char = metrics_counter(m, "http_bad_requests", bad,
	    "reason=\"malformed_header\"");
	st->fd_exhausted = metrics_counter(m, "http_fd_exhausted",
	    "Times accepting paused for lack of file descriptors", NULL);
}

static void
api_log_limits_init(struct api_log_limits *l)
{
	/* A burst, then one line a second per site: a flood shows as a
	 * counter (log_lines_suppressed) and "suppressed=N", not as the
	 * journal's size. */
	l->mhd = (struct log_limit)LOG_LIMIT(1, 10);
	l->bad = (struct log_limit)LOG_LIMIT(1, 10);
	l->client = (struct log_limit)LOG_LIMIT(1, 10);
	l->peer = (struct log_limit)LOG_LIMIT(1, 10);
	l->xff = (struct log_limit)LOG_LIMIT(1, 10);
	l->accept = (struct log_limit)LOG_LIMIT(1, 10);
}

/* The MHD daemon: no listening socket of its own (api_accept.c). */
static struct MHD_Daemon *
api_mhd_start(struct api *a)
{
	const struct api_limits *l = &a->limits;
	unsigned int flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
	    MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
	/* MHD's idle timeout is only a backstop now (a client that stops
	 * reading its answer): the deadlines above end every other wait
	 * first. */
	int64_t backstop_ms = l->request_timeout_ms + l->idle_timeout_ms;
	unsigned int backstop_s = backstop_ms / 1000 + 1 > API_BACKSTOP_MAX_S ?
	    API_BACKSTOP_MAX_S : (unsigned int)(backstop_ms / 1000 + 1);

	/* The logger first, or MHD prints what comes before it. */
	return MHD_start_daemon(flags, 0, NULL, NULL, api_on_request, a,
	    MHD_OPTION_EXTERNAL_LOGGER, api_on_mhd_log, a,
	    MHD_OPTION_CONNECTION_LIMIT, l->max_connections + a->slack + 1,
	    MHD_OPTION_CONNECTION_TIMEOUT, backstop_s,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, API_CONNECTION_MEMORY,
	    MHD_OPTION_NOTIFY_COMPLETED, api_on_completed, a,
	    MHD_OPTION_NOTIFY_CONNECTION, api_on_connection, a,
	    MHD_OPTION_URI_LOG_CALLBACK, api_on_uri, a,
	    MHD_OPTION_END);
}

struct api *
api_new(struct event_base *base, const struct api_config *cfg,
    api_handler_fn *handler, void *arg, char err[ERR_LEN])
{
	const union MHD_DaemonInfo *info;
	struct api *a = xcalloc(1, sizeof(*a));

	a->base = base;
	a->handler = handler;
	a->arg = arg;
	a->probe = cfg->probe;
	a->probe_arg = cfg->probe_arg;
	a->limits = cfg->limits;
	a->listen_fd = -1;
	a->sweep_at = -1;
	a->slack = a->limits.max_connections / 4 + 1;
	if (a->slack > API_ACCEPT_SLACK)
		a->slack = API_ACCEPT_SLACK;
	if (a->limits.trusted_proxies != NULL && api_trust_parse(
	    a->limits.trusted_proxies, &a->trust, err) < 0) {
		free(a);
		return NULL;
	}
	a->limits.trusted_proxies = NULL;	/* parsed; not kept */
	if (cfg->metrics == NULL)
		a->own_metrics = metrics_new();
	api_register_metrics(a, cfg->metrics != NULL ? cfg->metrics :
	    a->own_metrics);
	api_log_limits_init(&a->lim);
	a->clients = api_clients_new(a->limits.max_connections);
	api_conns_init(&a->conns, a->limits.request_timeout_ms,
	    a->limits.idle_timeout_ms);
	a->run = evtimer_new(base, api_on_run, a);
	a->sweep = evtimer_new(base, api_on_sweep, a);
	if ((a->mhd = api_mhd_start(a)) == NULL) {
		err_set(err, "cannot start libmicrohttpd");
		api_free(a);
		return NULL;
	}
	if (api_accept_listen(a, cfg->host, cfg->port, cfg->reuse_port,
	    err) < 0) {
		api_free(a);
		return NULL;
	}
	info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	a->io = event_new(base, info->epoll_fd, EV_READ | EV_PERSIST,
	    api_on_run, a);
	event_add(a->io, NULL);
	api_schedule(a);
	return a;
}

void
api_free(struct api *a)
{
	if (a == NULL)
		return;
	a->stopping = true;
	api_accept_stop(a);
	if (a->mhd != NULL) {
		/* MHD cannot stop with suspended connections: answer
		 * them. */
		while (a->pending != NULL)
			api_reply(a->pending, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "shutting down\n");
		MHD_run(a->mhd);
		MHD_stop_daemon(a->mhd);
	}
	if (a->io != NULL)
		event_free(a->io);
	event_free(a->run);
	event_free(a->sweep);
	api_clients_free(a->clients);
	metrics_free(a->own_metrics);
	free(a);
}
