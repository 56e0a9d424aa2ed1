/*
 * The intake's listening socket: who may connect, and what happens when
 * connections or file descriptors run out. Ours rather than
 * libmicrohttpd's (MHD_USE_NO_LISTEN_SOCKET, MHD_add_connection) because
 * in 0.9.75 its accept loop
 *
 *   - counts connections per TCP peer only (MHD_OPTION_PER_IP_...), so a
 *     reverse proxy's one address is one client for everyone behind it,
 *   - at its connection limit leaves newcomers in the backlog behind a
 *     table of slow clients until those time out, and
 *   - on EMFILE writes two lines per attempt (and busy-loops when it
 *     happens with no connection open),
 *
 * each with no counter. Here:
 *
 *   - a direct peer at --max-connections-per-ip is refused at once (its
 *     socket closed), a --trusted-proxy never is (its clients are counted
 *     per request, by X-Forwarded-For: api.c);
 *   - at --max-connections a newcomer takes the place of the oldest
 *     connection still sending its request, else of the oldest idle one
 *     (api_conns_victim); when all are busy with requests in progress,
 *     accepting pauses until one closes;
 *   - out of descriptors, accepting pauses until a connection closes or
 *     API_ACCEPT_RETRY_MS passes, with one line per episode (an episode
 *     ends when the backlog has been emptied).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <microhttpd.h>

#include "api_private.h"
#include "log.h"
#include "metrics.h"

/* libmicrohttpd's former setting: connections the kernel queues for us. */
#define API_ACCEPT_BACKLOG	4096
/* Connections taken per readiness event, so one flood cannot hold the
 * loop (the event is level-triggered: the rest come next pass). */
#define API_ACCEPT_BATCH	64
/* Out of descriptors: the next try, if no connection closed before. */
#define API_ACCEPT_RETRY_MS	500

static void
api_accept_pause(struct api *a, enum api_accept_state why)
{
	struct timeval tv = { API_ACCEPT_RETRY_MS / 1000,
	    (API_ACCEPT_RETRY_MS % 1000) * 1000 };

	if (a->accept_state == API_ACCEPT_ON)
		event_del(a->accept_ev);
	a->accept_state = why;
	if (why == API_ACCEPT_NOFD)
		evtimer_add(a->accept_retry, &tv);
}

static void
api_accept_resume(struct api *a)
{
	if (a->accept_state == API_ACCEPT_ON || a->stopping)
		return;
	a->accept_state = API_ACCEPT_ON;
	evtimer_del(a->accept_retry);
	event_add(a->accept_ev, NULL);
}

static void
api_accept_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct api *a = arg;

	(void)fd;
	(void)what;
	if (a->accept_state == API_ACCEPT_NOFD)
		api_accept_resume(a);
}

/* Whether a newcomer can come in: below the limit, or within the slack
 * with a connection to give way. */
static bool
api_accept_has_room(const struct api *a)
{
	const struct api_conns *t = &a->conns;

	return t->open < a->limits.max_connections ||
	    (t->open < a->limits.max_connections + a->slack &&
	    (!TAILQ_EMPTY(&t->reading) || !TAILQ_EMPTY(&t->idle)));
}

void
api_accept_room(struct api *a)
{
	if (a->accept_state == API_ACCEPT_NOFD ||
	    (a->accept_state == API_ACCEPT_FULL && api_accept_has_room(a)))
		api_accept_resume(a);
}

/* accept() failed with err (not EAGAIN). */
static void
api_accept_failed(struct api *a, int err)
{
	if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
	    err == ENOMEM) {
		if (!a->fd_episode) {
			a->fd_episode = true;
			metric_inc(a->st.fd_exhausted);
			log_limited(&a->lim.accept, LOG_LEVEL_WARN,
			    "api accept: %s with %zu connections open: "
			    "accepting paused until one closes",
			    strerror(err), a->conns.open);
		}
	} else
		log_limited(&a->lim.accept, LOG_LEVEL_WARN, "api accept: %s",
		    strerror(err));
	/* Either way not a spin: the next try waits for a close or the
	 * retry timer. */
	api_accept_pause(a, API_ACCEPT_NOFD);
}

/* At --max-connections: make a connection give way to the newcomer, or
 * pause accepting when none can. */
static void
api_accept_make_room(struct api *a)
{
	struct api_conn *victim;

	if (a->conns.open < a->limits.max_connections)
		return;
	if ((victim = api_conns_victim(&a->conns)) != NULL) {
		metric_inc(a->st.evicted);	/* before the peer sees it */
		api_conn_shut(a, victim);
	}
	/* Connections given up close on MHD's next pass; meanwhile the
	 * table may overshoot by a->slack at most (api.c sizes MHD's own
	 * limit above that, so it never refuses one itself). */
	if (victim == NULL || a->conns.open >= a->limits.max_connections +
	    a->slack)
		api_accept_pause(a, API_ACCEPT_FULL);
}

/* One accepted socket: refuse it, or hand it to MHD. */
static void
api_accept_one(struct api *a, int s, const struct sockaddr *sa,
    socklen_t len)
{
	struct api_addr peer, key;
	struct api_client *c;
	char addr[API_ADDR_STRLEN];

	if (api_addr_from_sockaddr(sa, len, &peer) < 0) {
		close(s);
		return;
	}
	if (!api_trust_match(&a->trust, &peer)) {
		api_addr_client(&peer, &key);
		c = api_clients_find(a->clients, &key);
		if (c != NULL && c->conns >= a->limits.max_per_ip) {
			metric_inc(a->st.peer_refused);
			close(s);
			api_addr_format(&peer, addr);
			log_limited(&a->lim.peer, LOG_LEVEL_INFO, "api "
			    "connection refused peer=%s: "
			    "--max-connections-per-ip %u reached", addr,
			    a->limits.max_per_ip);
			return;
		}
	}
	api_accept_make_room(a);
	/* MHD closes s itself when it cannot take it. */
	if (MHD_add_connection(a->mhd, s, sa, len) != MHD_YES)
		log_limited(&a->lim.accept, LOG_LEVEL_WARN, "api accept: "
		    "libmicrohttpd did not take a connection: %s",
		    strerror(errno));
}

static void
api_accept_on_ready(evutil_socket_t fd, short what, void *arg)
{
	struct api *a = arg;
	struct sockaddr_storage ss;
	socklen_t len;
	int i, s;

	(void)what;
	for (i = 0; i < API_ACCEPT_BATCH && a->accept_state ==
	    API_ACCEPT_ON; i++) {
		len = sizeof(ss);
		s = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK |
		    SOCK_CLOEXEC);
		if (s < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				a->fd_episode = false;	/* caught up */
			else
				api_accept_failed(a, errno);
			break;
		}
		api_accept_one(a, s, (struct sockaddr *)&ss, len);
	}
	api_schedule(a);
}

/* host:port into ss: 0, or -1 and err. */
static int
api_accept_sockaddr(const char *host, uint16_t port,
    struct sockaddr_storage *ss, socklen_t *len_out, char err[ERR_LEN])
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*len_out = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len_out = sizeof(*in6);
		return 0;
	}
	err_set(err, "--host %s: not a numeric IP address", host);
	return -1;
}

/* Bound and listening, as libmicrohttpd did it: SO_REUSEADDR, and an
 * IPv6 address listens for IPv6 only. With reuse_port, SO_REUSEPORT:
 * several processes (one host, one user) that all set it listen on the
 * same port, each with a queue of its own that the kernel fills by a
 * hash of the peer, so that one that stops takes only its own queue
 * with it. Without it a second process finds the port taken, and says
 * so rather than quietly sharing it. */
static int
api_accept_socket(const struct sockaddr_storage *ss, socklen_t len,
    const char *host, uint16_t port, bool reuse_port, char err[ERR_LEN])
{
	int s, e, on = 1;

	s = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (s < 0) {
		err_set(err, "cannot listen on %s:%u: socket: %s", host, port,
		    strerror(errno));
		return -1;
	}
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ss->ss_family == AF_INET6)
		setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (reuse_port && setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &on,
	    sizeof(on)) < 0) {
		err_set(err, "cannot listen on %s:%u: SO_REUSEPORT: %s", host,
		    port, strerror(errno));
		close(s);
		return -1;
	}
	if (bind(s, (const struct sockaddr *)ss, len) < 0 ||
	    listen(s, API_ACCEPT_BACKLOG) < 0) {
		e = errno;
		err_set(err, "cannot listen on %s:%u: %s%s", host, port,
		    strerror(e), e != EADDRINUSE ? "" : reuse_port ?
		    " (by a process without --reuse-port, or another user's)" :
		    " (several processes share a port only when each has "
		    "--reuse-port)");
		close(s);
		return -1;
	}
	return s;
}

int
api_accept_listen(struct api *a, const char *host, uint16_t port,
    bool reuse_port, char err[ERR_LEN])
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (api_accept_sockaddr(host, port, &ss, &len, err) < 0 ||
	    (a->listen_fd = api_accept_socket(&ss, len, host, port,
	    reuse_port, err)) < 0)
		return -1;
	len = sizeof(ss);
	if (getsockname(a->listen_fd, (struct sockaddr *)&ss, &len) == 0)
		a->port = ntohs(ss.ss_family == AF_INET ?
		    ((struct sockaddr_in *)&ss)->sin_port :
		    ((struct sockaddr_in6 *)&ss)->sin6_port);
	a->accept_ev = event_new(a->base, a->listen_fd, EV_READ | EV_PERSIST,
	    api_accept_on_ready, a);
	a->accept_retry = evtimer_new(a->base, api_accept_on_retry, a);
	a->accept_state = API_ACCEPT_ON;
	event_add(a->accept_ev, NULL);
	return 0;
}

void
api_accept_stop(struct api *a)
{
	if (a->accept_ev != NULL)
		event_free(a->accept_ev);
	if (a->accept_retry != NULL)
		event_free(a->accept_retry);
	a->accept_ev = a->accept_retry = NULL;
	if (a->listen_fd >= 0)
		close(a->listen_fd);
	a->listen_fd = -1;
}
