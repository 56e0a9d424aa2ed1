/*
 * POSTs to the push proxy with libcurl's multi interface, driven by the
 * libevent loop (curl tells us which sockets to watch and when to call it
 * back; no thread per request). Connections are kept alive and reused;
 * over TLS, curl multiplexes requests on one HTTP/2 connection when the
 * proxy offers h2. Easy handles are pooled: setting one up costs more
 * than the request itself against a fast proxy.
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "evloop.h"
#include "notifierd.h"
#include "xmalloc.h"

/* A reply body is read only to be thrown away; cap what we accept. */
#define SENDER_MAX_BODY_BYTES	(64 * 1024)

struct sender_req {
	struct sender		*s;
	CURL			*easy;
	void			*ctx;
	int64_t			 started_us;
	size_t			 body_bytes;
	char			 errbuf[CURL_ERROR_SIZE];
	struct sender_req	*next;		/* free list or in-flight list */
	struct sender_req	*prev;
};

struct sender_sock {
	struct event		*ev;
	curl_socket_t		 fd;
	struct sender_sock	*next, *prev;	/* the sender's list */
};

struct sender {
	struct event_base	*base;
	CURLM			*multi;
	struct event		*timer;
	struct curl_slist	*headers;
	struct sender_config	 cfg;
	sender_done_fn		*done;
	void			*arg;
	struct sender_req	*free_reqs;
	struct sender_req	*in_flight;
	struct sender_sock	*socks;	/* freed at the end if curl did not */
	size_t			 n_in_flight;
};

static size_t
sender_on_body(char *p, size_t size, size_t n, void *arg)
{
	struct sender_req *r = arg;

	(void)p;
	r->body_bytes += size * n;
	if (r->body_bytes > SENDER_MAX_BODY_BYTES)
		return 0;	/* makes curl fail the transfer */
	return size * n;
}

static void
sender_check_done(struct sender *s)
{
	struct CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
		struct sender_req *r;
		long status = 0;
		const char *reason = "";

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &r);
		if (msg->data.result == CURLE_OK)
			curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE,
			    &status);
		else
			reason = r->errbuf[0] != '\0' ? r->errbuf :
			    curl_easy_strerror(msg->data.result);
		curl_multi_remove_handle(s->multi, r->easy);
		/* Unlink before calling back: the callback may post. */
		if (r->prev != NULL)
			r->prev->next = r->next;
		else
			s->in_flight = r->next;
		if (r->next != NULL)
			r->next->prev = r->prev;
		s->n_in_flight--;
		s->done(r->ctx, status, reason, evloop_mono_us() -
		    r->started_us, s->arg);
		r->prev = NULL;
		r->next = s->free_reqs;
		s->free_reqs = r;
	}
}

static void
sender_on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	struct sender *s = arg;
	int flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(s->multi, fd, flags, &running);
	sender_check_done(s);
}

static void
sender_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sender *s = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	sender_check_done(s);
}

static void
sender_sock_free(struct sender *s, struct sender_sock *ss)
{
	if (ss->prev != NULL)
		ss->prev->next = ss->next;
	else
		s->socks = ss->next;
	if (ss->next != NULL)
		ss->next->prev = ss->prev;
	if (ss->ev != NULL)
		event_free(ss->ev);
	free(ss);
}

/* curl: watch (or stop watching) fd for what. */
static int
sender_socket_cb(CURL *easy, curl_socket_t fd, int what, void *arg,
    void *sockp)
{
	struct sender *s = arg;
	struct sender_sock *ss = sockp;
	short events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (ss != NULL) {
			curl_multi_assign(s->multi, fd, NULL);
			sender_sock_free(s, ss);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	if (ss == NULL) {
		ss = xcalloc(1, sizeof(*ss));
		ss->fd = fd;
		ss->next = s->socks;
		if (s->socks != NULL)
			s->socks->prev = ss;
		s->socks = ss;
		curl_multi_assign(s->multi, fd, ss);
		ss->ev = event_new(s->base, fd, events | EV_PERSIST,
		    sender_on_socket_event, s);
	} else {
		/* Re-arm in place: curl changes its interest on every
		 * request, and a new event each time costs a malloc. */
		event_del(ss->ev);
		event_assign(ss->ev, s->base, fd, events | EV_PERSIST,
		    sender_on_socket_event, s);
	}
	event_add(ss->ev, NULL);
	return 0;
}

/* curl: call us back in timeout_ms (-1: cancel). */
static int
sender_timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct sender *s = arg;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(s->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(s->timer, &tv);
	return 0;
}

struct sender *
sender_new(struct event_base *base, const struct sender_config *cfg,
    sender_done_fn *done, void *arg, char err[ERR_LEN])
{
	struct sender *s;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		err_set(err, "curl_global_init failed");
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->cfg = *cfg;
	s->done = done;
	s->arg = arg;
	s->multi = curl_multi_init();
	s->timer = evtimer_new(base, sender_on_timer, s);
	if (s->multi == NULL || s->timer == NULL) {
		err_set(err, "cannot set up the HTTP client");
		sender_free(s, NULL);	/* nothing in flight yet */
		return NULL;
	}
	curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, sender_socket_cb);
	curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
	curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, sender_timer_cb);
	curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
	curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)cfg->max_connections);
	curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS,
	    (long)cfg->max_connections);
	/* The token is the whole body, as chatmail relays send it. */
	s->headers = curl_slist_append(NULL,
	    "Content-Type: application/octet-stream");
	s->headers = curl_slist_append(s->headers, "Expect:");
	return s;
}

static struct sender_req *
sender_req_get(struct sender *s)
{
	struct sender_req *r = s->free_reqs;

	if (r != NULL) {
		s->free_reqs = r->next;
		r->next = NULL;
		curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
		return r;
	}
	r = xcalloc(1, sizeof(*r));
	r->s = s;
	if ((r->easy = curl_easy_init()) == NULL)
		abort();	/* only on OOM */
	curl_easy_setopt(r->easy, CURLOPT_URL, s->cfg.url);
	curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, s->headers);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, sender_on_body);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, s->cfg.timeout_ms);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    s->cfg.timeout_ms < 10000 ? s->cfg.timeout_ms : 10000L);
	curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_2TLS);
	/* Wait for a connection that may multiplex rather than open more:
	 * only where HTTP/2 can be negotiated. Over http:// curl learns that
	 * a connection cannot multiplex only from its first answer, and a
	 * burst would go out one request at a time. */
	if (strncmp(s->cfg.url, "https://", 8) == 0)
		curl_easy_setopt(r->easy, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "chatmail-notifierd");
	if (s->cfg.ca_file != NULL)
		curl_easy_setopt(r->easy, CURLOPT_CAINFO, s->cfg.ca_file);
	return r;
}

int
sender_post(struct sender *s, const char *body, size_t len, void *ctx,
    char err[ERR_LEN])
{
	struct sender_req *r = sender_req_get(s);
	CURLMcode mc;

	r->ctx = ctx;
	r->body_bytes = 0;
	r->errbuf[0] = '\0';
	r->started_us = evloop_mono_us();
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)len);
	if ((mc = curl_multi_add_handle(s->multi, r->easy)) != CURLM_OK) {
		err_set(err, "curl: %s", curl_multi_strerror(mc));
		r->next = s->free_reqs;
		s->free_reqs = r;
		return -1;
	}
	r->prev = NULL;
	r->next = s->in_flight;
	if (s->in_flight != NULL)
		s->in_flight->prev = r;
	s->in_flight = r;
	s->n_in_flight++;
	return 0;
}

size_t
sender_in_flight(const struct sender *s)
{
	return s->n_in_flight;
}

static void
sender_req_free(struct sender_req *r)
{
	curl_easy_cleanup(r->easy);
	free(r);
}

void
sender_free(struct sender *s, sender_cancel_fn *cancel)
{
	struct sender_req *r, *next;

	if (s == NULL)
		return;
	for (r = s->in_flight; r != NULL; r = next) {
		next = r->next;
		curl_multi_remove_handle(s->multi, r->easy);
		if (cancel != NULL)
			cancel(r->ctx, s->arg);
		sender_req_free(r);
	}
	for (r = s->free_reqs; r != NULL; r = next) {
		next = r->next;
		sender_req_free(r);
	}
	if (s->multi != NULL)
		curl_multi_cleanup(s->multi);
	while (s->socks != NULL)
		sender_sock_free(s, s->socks);
	if (s->timer != NULL)
		event_free(s->timer);
	curl_slist_free_all(s->headers);
	free(s);
	curl_global_cleanup();
}
