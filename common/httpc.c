/*
 * The multi-request HTTP client; see httpc.h. curl tells us which sockets
 * to watch and when to call it back; we map that onto libevent events.
 * Easy handles are pooled: setting one up costs more than a request to a
 * fast peer.
 */
#include <sys/socket.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "buf.h"
#include "clock.h"
#include "httpc.h"
#include "xmalloc.h"

/* The longest Retry-After taken, in seconds: 9 digits (31 years), as
 * proxyd's h2_session.c takes it. More is no pause anyone means, and
 * callers count it in ms (push.c: seconds * 1000 must not overflow). */
#define HTTPC_RETRY_AFTER_MAX_S	999999999LL
/* Body bytes past max_body_bytes read and dropped before the transfer is
 * stopped (httpc_on_body). */
#define HTTPC_BODY_SLACK	65536

struct httpc_req {
	struct httpc		*s;
	CURL			*easy;
	void			*ctx;
	int64_t			 started_us;
	struct buf		 body;		/* the reply, bounded */
	size_t			 body_bytes;	/* all that came */
	bool			 cut;		/* stopped: body far too long */
	int64_t			 retry_after_s;
	struct curl_slist	*headers;
	bool			 address_refused;
	char			 errbuf[CURL_ERROR_SIZE];
	struct httpc_req	*next;		/* free list or in-flight list */
	struct httpc_req	*prev;
};

struct httpc_sock {
	struct event		*ev;
	curl_socket_t		 fd;
	struct httpc_sock	*next, *prev;	/* the client's list */
};

struct httpc {
	struct event_base	*base;
	CURLM			*multi;
	struct event		*timer;
	struct httpc_config	 cfg;
	httpc_done_fn		*done;
	void			*arg;
	struct httpc_req	*free_reqs;
	struct httpc_req	*in_flight;
	struct httpc_sock	*socks;	/* freed at the end if curl did not */
	size_t			 n_in_flight;
};

static size_t
httpc_on_body(char *p, size_t size, size_t n, void *arg)
{
	struct httpc_req *r = arg;
	size_t len = size * n, keep;

	r->body_bytes += len;
	/* A little more than we keep is read and dropped, so that the
	 * connection can be used again; far more is not read at all: the
	 * transfer stops (curl then closes the connection), and the answer
	 * is what the status and the kept part say (httpc_check_done). */
	if (r->body_bytes > r->s->cfg.max_body_bytes + HTTPC_BODY_SLACK) {
		r->cut = true;
		return 0;	/* curl ends the transfer: a write error */
	}
	keep = r->body.len < r->s->cfg.max_body_bytes ?
	    r->s->cfg.max_body_bytes - r->body.len : 0;
	buf_append(&r->body, p, len < keep ? len : keep);
	return len;
}

/* Only Retry-After interests us (FCM and Web Push pauses). */
static size_t
httpc_on_header(char *p, size_t size, size_t n, void *arg)
{
	struct httpc_req *r = arg;
	size_t len = size * n;
	static const char name[] = "retry-after:";

	if (len > sizeof(name) && strncasecmp(p, name, sizeof(name) - 1) == 0) {
		char value[32];
		size_t vlen = len - (sizeof(name) - 1);

		if (vlen >= sizeof(value))
			vlen = sizeof(value) - 1;
		memcpy(value, p + sizeof(name) - 1, vlen);
		value[vlen] = '\0';
		/* Seconds; an HTTP date, an empty value or one over the
		 * bound counts as unknown (-1). */
		char *end;
		long long v = strtoll(value, &end, 10);
		bool digits = end != value;

		while (*end == ' ' || *end == '\r' || *end == '\n')
			end++;
		if (digits && *end == '\0' && v >= 0 &&
		    v <= HTTPC_RETRY_AFTER_MAX_S)
			r->retry_after_s = v;
	}
	return len;
}
/* Back to the pool: forget the last request's reply and headers. */
static void
httpc_req_reset(struct httpc_req *r)
{
	buf_clear(&r->body);
	curl_slist_free_all(r->headers);
	r->headers = NULL;
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, NULL);
}

static void
httpc_check_done(struct httpc *s)
{
	struct CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
		struct httpc_response resp;
		struct httpc_req *r;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &r);
		memset(&resp, 0, sizeof(resp));
		resp.error = "";
		/* A transfer we stopped for its body still has its answer:
		 * the status came before the body. */
		if (msg->data.result == CURLE_OK || (r->cut &&
		    msg->data.result == CURLE_WRITE_ERROR))
			curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE,
			    &resp.status);
		else if (r->address_refused)
			resp.error = HTTPC_ADDRESS_REFUSED;
		else
			resp.error = r->errbuf[0] != '\0' ? r->errbuf :
			    curl_easy_strerror(msg->data.result);
		if (r->body.data == NULL)
			buf_append(&r->body, "", 0);
		resp.body = r->body.data;
		resp.body_len = r->body.len;
		resp.body_truncated = r->body_bytes > r->body.len;
		resp.retry_after_s = r->retry_after_s;
		resp.latency_us = clock_mono_us() - r->started_us;
		curl_multi_remove_handle(s->multi, r->easy);
		/* Unlink before calling back: the callback may send. */
		if (r->prev != NULL)
			r->prev->next = r->next;
		else
			s->in_flight = r->next;
		if (r->next != NULL)
			r->next->prev = r->prev;
		s->n_in_flight--;
		s->done(r->ctx, &resp, s->arg);
		httpc_req_reset(r);
		r->prev = NULL;
		r->next = s->free_reqs;
		s->free_reqs = r;
	}
}
static void
httpc_on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	struct httpc *s = arg;
	int flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(s->multi, fd, flags, &running);
	httpc_check_done(s);
}

static void
httpc_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct httpc *s = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	httpc_check_done(s);
}

static void
httpc_sock_free(struct httpc *s, struct httpc_sock *ss)
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
httpc_socket_cb(CURL *easy, curl_socket_t fd, int what, void *arg,
    void *sockp)
{
	struct httpc *s = arg;
	struct httpc_sock *ss = sockp;
	short events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (ss != NULL) {
			curl_multi_assign(s->multi, fd, NULL);
			httpc_sock_free(s, ss);
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
		    httpc_on_socket_event, s);
	} else {
		/* Re-arm in place: curl changes its interest on every
		 * request, and a new event each time costs a malloc. */
		event_del(ss->ev);
		event_assign(ss->ev, s->base, fd, events | EV_PERSIST,
		    httpc_on_socket_event, s);
	}
	event_add(ss->ev, NULL);
	return 0;
}

/* curl: call us back in timeout_ms (-1: cancel). */
static int
httpc_timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct httpc *s = arg;
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

struct httpc *
httpc_new(struct event_base *base, const struct httpc_config *cfg,
    httpc_done_fn *done, void *arg, char err[ERR_LEN])
{
	struct httpc *s;

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
	s->timer = evtimer_new(base, httpc_on_timer, s);
	if (s->multi == NULL || s->timer == NULL) {
		err_set(err, "cannot set up the HTTP client");
		httpc_free(s, NULL);	/* nothing in flight yet */
		return NULL;
	}
	curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, httpc_socket_cb);
	curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
	curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, httpc_timer_cb);
	curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
	curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)cfg->max_connections);
	curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS,
	    (long)cfg->max_connections);
	if (cfg->max_streams > 0)
		curl_multi_setopt(s->multi, CURLMOPT_MAX_CONCURRENT_STREAMS,
		    (long)cfg->max_streams);
	return s;
}
/* curl is about to open a socket to addr: the caller's address policy
 * decides first (SSRF: the URL came from an untrusted token). */
static curl_socket_t
httpc_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct httpc_req *r = arg;
	struct httpc *s = r->s;

	if (purpose == CURLSOCKTYPE_IPCXN && s->cfg.allow_address != NULL &&
	    !s->cfg.allow_address(&addr->addr, addr->addrlen,
	    s->cfg.allow_address_arg)) {
		r->address_refused = true;
		return CURL_SOCKET_BAD;
	}
	return socket(addr->family, addr->socktype | SOCK_CLOEXEC,
	    addr->protocol);
}

static struct httpc_req *
httpc_req_get(struct httpc *s)
{
	struct httpc_req *r = s->free_reqs;

	if (r != NULL) {
		s->free_reqs = r->next;
		r->next = NULL;
		return r;
	}
	r = xcalloc(1, sizeof(*r));
	r->s = s;
	buf_init(&r->body);
	if ((r->easy = curl_easy_init()) == NULL)
		abort();	/* only on OOM */
	curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, httpc_on_body);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, httpc_on_header);
	curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, s->cfg.timeout_ms);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    s->cfg.timeout_ms < 10000 ? s->cfg.timeout_ms : 10000L);
	curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR,
	    s->cfg.protocols != NULL ? s->cfg.protocols : "http,https");
	/* No proxy from the environment: the address policy would judge
	 * the proxy, not the server. */
	curl_easy_setopt(r->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(r->easy, CURLOPT_OPENSOCKETFUNCTION,
	    httpc_open_socket);
	curl_easy_setopt(r->easy, CURLOPT_OPENSOCKETDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(r->easy, CURLOPT_USERAGENT, s->cfg.user_agent ?
	    s->cfg.user_agent : "chatmail-push");
	if (s->cfg.ca_file != NULL)
		curl_easy_setopt(r->easy, CURLOPT_CAINFO, s->cfg.ca_file);
	return r;
}
int
httpc_send(struct httpc *s, const struct httpc_request *q, void *ctx,
    char err[ERR_LEN])
{
	struct httpc_req *r = httpc_req_get(s);
	CURLMcode mc;

	r->ctx = ctx;
	r->body_bytes = 0;
	r->cut = false;
	r->address_refused = false;
	r->retry_after_s = -1;
	r->errbuf[0] = '\0';
	r->started_us = clock_mono_us();
	curl_easy_setopt(r->easy, CURLOPT_URL, q->url);
	/* Wait for a connection that may multiplex rather than open more:
	 * only where HTTP/2 can be negotiated. Over http:// curl learns that
	 * a connection cannot multiplex only from its first answer, and a
	 * burst would go out one request at a time. */
	curl_easy_setopt(r->easy, CURLOPT_PIPEWAIT,
	    strncmp(q->url, "https://", 8) == 0 ? 1L : 0L);
	curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, q->method);
	for (size_t i = 0; i < q->nheaders; i++)
		r->headers = curl_slist_append(r->headers, q->headers[i]);
	/* No "Expect: 100-continue" round trip for small bodies. */
	r->headers = curl_slist_append(r->headers, "Expect:");
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, q->body ? q->body : "");
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)q->body_len);
	if ((mc = curl_multi_add_handle(s->multi, r->easy)) != CURLM_OK) {
		err_set(err, "curl: %s", curl_multi_strerror(mc));
		httpc_req_reset(r);
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
httpc_in_flight(const struct httpc *s)
{
	return s->n_in_flight;
}

static void
httpc_req_free(struct httpc_req *r)
{
	httpc_req_reset(r);
	curl_easy_cleanup(r->easy);
	free(r);
}
void
httpc_free(struct httpc *s, httpc_cancel_fn *cancel)
{
	struct httpc_req *r, *next;

	if (s == NULL)
		return;
	for (r = s->in_flight; r != NULL; r = next) {
		next = r->next;
		curl_multi_remove_handle(s->multi, r->easy);
		if (cancel != NULL)
			cancel(r->ctx, s->arg);
		httpc_req_free(r);
	}
	for (r = s->free_reqs; r != NULL; r = next) {
		next = r->next;
		httpc_req_free(r);
	}
	if (s->multi != NULL)
		curl_multi_cleanup(s->multi);
	while (s->socks != NULL)
		httpc_sock_free(s, s->socks);
	if (s->timer != NULL)
		event_free(s->timer);
	free(s);
	curl_global_cleanup();
}
