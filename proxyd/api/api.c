/*
 * The HTTP API on libmicrohttpd in external epoll mode; see api.h.
 *
 * MHD calls api_on_request several times per request: first with the
 * headers (we route and check the size), then with pieces of the body
 * (we collect them, bounded), then once more with nothing (we hand the
 * request to the handler; an answer it gives at once is queued there and
 * then, otherwise the connection is suspended). api_reply() resumes it;
 * MHD then calls us a last time and we queue the response.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <microhttpd.h>

#include "api.h"
#include "buf.h"
#include "xmalloc.h"

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
	enum api_req_state	 state;
	enum api_route		 route;
	bool			 routed;	/* a POST to a known path */
	bool			 too_large;
	struct buf		 body;
	unsigned int		 status;
	char			*answer;
	struct api_request	*prev, *next;	/* pending list */
};

struct api {
	struct event_base	*base;
	struct MHD_Daemon	*mhd;
	struct event		*io;		/* MHD's epoll fd readable */
	struct event		*run;		/* run MHD soon / its timer */
	api_handler_fn		*handler;
	void			*arg;
	struct api_request	*pending;
	size_t			 npending;
	uint16_t		 port;
};

static void	api_schedule(struct api *);

static enum MHD_Result
api_queue(struct MHD_Connection *conn, unsigned int status, const char *body)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (body == NULL)
		body = "";
	resp = MHD_create_response_from_buffer(strlen(body), (void *)body,
	    MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain; charset=utf-8");
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

static enum MHD_Result
api_on_request(void *arg, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **state)
{
	struct api *a = arg;
	struct api_request *r = *state;

	(void)version;
	if (r == NULL) {		/* headers only so far */
		const char *cl;

		r = xcalloc(1, sizeof(*r));
		r->api = a;
		r->conn = conn;
		buf_init(&r->body);
		*state = r;
		if (strcmp(method, "POST") == 0) {
			if (strcmp(url, "/notify") == 0) {
				r->route = API_ROUTE_NOTIFY;
				r->routed = true;
			} else if (strcmp(url, "/register") == 0) {
				r->route = API_ROUTE_REGISTER;
				r->routed = true;
			}
		}
		/* Refuse a declared oversized body before reading it. */
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > API_MAX_BODY_BYTES)
			r->too_large = true;
		return MHD_YES;
	}
	if (*upload_size != 0) {
		if (!r->too_large && r->body.len + *upload_size >
		    API_MAX_BODY_BYTES)
			r->too_large = true;
		if (!r->too_large)
			buf_append(&r->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	switch (r->state) {
	case API_REQ_READING:
		if (r->too_large)
			return api_queue(conn, MHD_HTTP_CONTENT_TOO_LARGE,
			    "request body too large\n");
		if (!r->routed) {
			if (strcmp(url, "/") == 0 && (strcmp(method, "GET") ==
			    0 || strcmp(method, "HEAD") == 0))
				return api_queue(conn, MHD_HTTP_OK,
				    "Hello, world!");
			return api_queue(conn, MHD_HTTP_NOT_FOUND,
			    "not found\n");
		}
		if (r->body.data == NULL)
			buf_append(&r->body, "", 0);
		/* An answer given inside the handler (debounced, malformed,
		 * cached) is queued right here: suspending and resuming in
		 * the same call left such answers unsent on a new
		 * connection while another one was open (MHD 0.9.75). */
		r->state = API_REQ_HANDLING;
		a->handler(r, r->route, r->body.data, r->body.len, a->arg);
		if (r->state == API_REQ_ANSWERED)
			return api_queue(conn, r->status, r->answer);
		r->state = API_REQ_WAITING;
		r->next = a->pending;
		if (a->pending != NULL)
			a->pending->prev = r;
		a->pending = r;
		a->npending++;
		MHD_suspend_connection(conn);
		return MHD_YES;
	case API_REQ_HANDLING:
	case API_REQ_WAITING:
		return MHD_YES;		/* not resumed yet */
	case API_REQ_ANSWERED:
		return api_queue(conn, r->status, r->answer);
	}
	return MHD_NO;
}

static void
api_on_completed(void *arg, struct MHD_Connection *conn, void **state,
    enum MHD_RequestTerminationCode code)
{
	struct api *a = arg;
	struct api_request *r = *state;

	(void)conn;
	(void)code;
	if (r == NULL)
		return;
	if (r->state == API_REQ_WAITING)
		api_pending_unlink(a, r);	/* daemon stopping */
	buf_clear(&r->body);
	free(r->answer);
	free(r);
	*state = NULL;
}

void
api_reply(struct api_request *r, unsigned int status, const char *body)
{
	struct api *a = r->api;

	if (r->state == API_REQ_HANDLING) {	/* queued by the caller */
		r->state = API_REQ_ANSWERED;
		r->status = status;
		r->answer = xstrdup(body != NULL ? body : "");
		return;
	}
	if (r->state != API_REQ_WAITING)
		return;
	api_pending_unlink(a, r);
	r->state = API_REQ_ANSWERED;
	r->status = status;
	r->answer = xstrdup(body != NULL ? body : "");
	MHD_resume_connection(r->conn);
	api_schedule(a);
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

static void
api_schedule(struct api *a)
{
	event_active(a->run, EV_TIMEOUT, 0);
}

struct api *
api_new(struct event_base *base, const struct api_config *cfg,
    api_handler_fn *handler, void *arg, char err[ERR_LEN])
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	struct api *a;
	unsigned int flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
	    MHD_USE_ERROR_LOG;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, cfg->host, &((struct sockaddr_in *)&ss)->
	    sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(cfg->port);
	} else if (inet_pton(AF_INET6, cfg->host, &((struct sockaddr_in6 *)
	    &ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(cfg->port);
		flags |= MHD_USE_IPv6;
	} else {
		err_set(err, "--host %s: not a numeric IP address", cfg->host);
		return NULL;
	}
	a = xcalloc(1, sizeof(*a));
	a->base = base;
	a->handler = handler;
	a->arg = arg;
	a->mhd = MHD_start_daemon(flags, cfg->port, NULL, NULL,
	    api_on_request, a,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_per_ip,
	    MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
	    MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096U,
	    MHD_OPTION_NOTIFY_COMPLETED, api_on_completed, a,
	    MHD_OPTION_END);
	if (a->mhd == NULL) {
		err_set(err, "cannot listen on %s:%u", cfg->host, cfg->port);
		free(a);
		return NULL;
	}
	info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
	a->port = info != NULL ? info->port : cfg->port;
	info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	a->io = event_new(base, info->epoll_fd, EV_READ | EV_PERSIST,
	    api_on_run, a);
	a->run = evtimer_new(base, api_on_run, a);
	event_add(a->io, NULL);
	api_schedule(a);
	return a;
}

void
api_free(struct api *a)
{
	if (a == NULL)
		return;
	/* MHD cannot stop with suspended connections: answer them. */
	while (a->pending != NULL)
		api_reply(a->pending, MHD_HTTP_SERVICE_UNAVAILABLE,
		    "shutting down\n");
	MHD_run(a->mhd);
	MHD_stop_daemon(a->mhd);
	event_free(a->io);
	event_free(a->run);
	free(a);
}
