/*
 * GET /metrics over libmicrohttpd; see metrics_http.h.
 *
 * The listener runs on a thread of its own with an event loop of its own
 * (libevent), so a scrape never waits for the daemon's loop and the
 * daemon's loop never waits for a scraper. The thread accepts
 * connections itself and hands each to libmicrohttpd
 * (MHD_USE_NO_LISTEN_SOCKET, MHD_add_connection), which it drives through
 * MHD's epoll descriptor, because 0.9.75's own accept loop, out of file
 * descriptors with no connection open, tries again at once, forever, and
 * writes two lines each time: measured, 3.97 M lines (933 MB of log) in
 * 45 s and a CPU at 100 %, while the process had run out of descriptors
 * for reasons of its own. Here:
 *
 *   - out of file descriptors (or memory), accepting pauses until one of
 *     the listener's connections closes or a back-off passes (100 ms
 *     doubling to 2 s, common/accept_pause.h), with one log line per
 *     episode; clients wait in the listen backlog meanwhile;
 *   - at METRICS_HTTP_MAX_CONNECTIONS accepting pauses until one closes;
 *   - a connection is cut METRICS_HTTP_DEADLINE_MS after its accept, and
 *     serves one request ("Connection: close"), so the deadline bounds
 *     its headers, its answer and everything between. MHD's own
 *     connection timeout is an idle timeout, renewed by every byte: a
 *     peer sending one byte every few seconds held a connection for
 *     ever, and 16 of them the listener (its former limit).
 *
 * Everything below runs on the listener's thread, except
 * metrics_http_start and metrics_http_stop (before the thread starts and
 * after it ended).
 */
#include <sys/queue.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <microhttpd.h>

#include "accept_pause.h"
#include "cli.h"
#include "clock.h"
#include "log.h"
#include "log_limit.h"
#include "metrics.h"
#include "metrics_http.h"
#include "xmalloc.h"

/* Connections the kernel queues while we pause: a few scrapers' worth. */
#define METRICS_HTTP_BACKLOG		64
/* Connections taken per readiness event (the rest come next pass). */
#define METRICS_HTTP_ACCEPT_BATCH	16
/* libmicrohttpd's memory per connection: a scrape's request is a few
 * hundred bytes. */
#define METRICS_HTTP_CONN_MEMORY	32768
/* MHD's idle timeout, a backstop behind the deadline, which ends every
 * connection first. */
#define METRICS_HTTP_MHD_TIMEOUT_S	(METRICS_HTTP_DEADLINE_MS / 1000 + 1)

/* One connection MHD holds for us, oldest first: the deadline order. */
struct metrics_http_conn {
	TAILQ_ENTRY(metrics_http_conn) link;
	int			 fd;		/* MHD's; shut down when late */
	int64_t			 deadline_ms;	/* monotonic */
	bool			 cut;		/* shut down, MHD closes it */
};
TAILQ_HEAD(metrics_http_conns, metrics_http_conn);

enum metrics_http_accepting {
	METRICS_HTTP_ACCEPTING,
	METRICS_HTTP_PAUSED_NOFD,	/* retry timer armed */
	METRICS_HTTP_PAUSED_FULL,	/* at METRICS_HTTP_MAX_CONNECTIONS */
	METRICS_HTTP_STOPPED,
};

struct metrics_http {
	struct metrics		*metrics;
	struct MHD_Daemon	*mhd;
	struct event_base	*base;		/* the thread's */
	pthread_t		 thread;
	int			 listen_fd;
	int			 stop_fd;	/* eventfd: stop the thread */
	struct event		*accept_ev;	/* listen_fd readable */
	struct event		*retry_ev;	/* out of fds: try again */
	struct event		*io_ev;		/* MHD's epoll fd readable */
	struct event		*run_ev;	/* MHD's next timeout, or now */
	struct event		*deadline_ev;	/* the oldest connection's */
	struct event		*stop_ev;
	enum metrics_http_accepting accepting;
	struct accept_pause	 nofd;		/* accept() failed */
	struct accept_pause	 full;		/* at the connection bound */
	struct metrics_http_conns conns;
	size_t			 nconns;
	struct metric		*accept_pauses;
	struct metric		*limit_pauses;
	struct metric		*timeouts;
	/* Lines a peer can cause, the thread's own (log_limit.h). */
	struct log_limit	 lim_mhd;
	struct log_limit	 lim_accept;
	struct log_limit	 lim_cut;
};

/* ---- answers ---------------------------------------------------------- */

static enum MHD_Result
metrics_http_answer(void *arg, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_size, void **req_state)
{
	struct metrics_http *mh = arg;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	unsigned int status = MHD_HTTP_OK;
	char *body;
	size_t len;

	(void)version;
	(void)upload_data;
	if (*req_state == NULL) {	/* headers only so far */
		*req_state = mh;
		return MHD_YES;
	}
	if (*upload_size != 0) {	/* discard any body */
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		body = xstrdup("method not allowed\n");
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (strcmp(url, "/metrics") != 0) {
		body = xstrdup("not found\n");
		status = MHD_HTTP_NOT_FOUND;
	} else
		body = metrics_render(mh->metrics, &len);
	len = strlen(body);
	resp = MHD_create_response_from_buffer(len, body,
	    MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    status == MHD_HTTP_OK ? METRICS_CONTENT_TYPE :
	    "text/plain; charset=utf-8");
	/* One request per connection: the deadline is the connection's. */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* MHD's own messages (a peer that reset, a malformed request): through
 * a rate limit, escaped, at info. */
static void
metrics_http_on_mhd_log(void *arg, const char *fmt, va_list ap)
{
	struct metrics_http *mh = arg;

	log_limited_escaped(&mh->lim_mhd, LOG_LEVEL_INFO,
	    "metrics libmicrohttpd", fmt, ap);
}

/* ---- driving MHD ------------------------------------------------------ */

/* Let MHD work, then arm its next timeout. */
static void
metrics_http_on_run(evutil_socket_t fd, short what, void *arg)
{
	struct metrics_http *mh = arg;
	MHD_UNSIGNED_LONG_LONG ms;
	struct timeval tv;

	(void)fd;
	(void)what;
	MHD_run(mh->mhd);
	if (MHD_get_timeout(mh->mhd, &ms) == MHD_YES) {
		tv.tv_sec = (time_t)(ms / 1000);
		tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
		evtimer_add(mh->run_ev, &tv);
	}
}

static void
metrics_http_schedule(struct metrics_http *mh)
{
	event_active(mh->run_ev, EV_TIMEOUT, 0);
}

/* ---- the deadline ----------------------------------------------------- */

/* Arms the timer for the oldest connection not cut yet, if any. */
static void
metrics_http_deadline_arm(struct metrics_http *mh)
{
	struct metrics_http_conn *c;
	struct timeval tv;
	int64_t delay;

	TAILQ_FOREACH(c, &mh->conns, link)
		if (!c->cut)
			break;
	if (c == NULL) {
		evtimer_del(mh->deadline_ev);
		return;
	}
	delay = c->deadline_ms - clock_mono_ms();
	if (delay < 0)
		delay = 0;
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(mh->deadline_ev, &tv);
}

static void
metrics_http_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct metrics_http *mh = arg;
	struct metrics_http_conn *c;
	int64_t now = clock_mono_ms();

	(void)fd;
	(void)what;
	TAILQ_FOREACH(c, &mh->conns, link) {
		if (c->cut)
			continue;
		if (c->deadline_ms > now)
			break;
		/* MHD reads the end of the stream and closes the connection
		 * on its next pass: nothing is freed under it. */
		c->cut = true;
		metric_inc(mh->timeouts);
		shutdown(c->fd, SHUT_RDWR);
		log_limited(&mh->lim_cut, LOG_LEVEL_INFO, "metrics connection "
		    "cut: not done %d ms after its accept",
		    METRICS_HTTP_DEADLINE_MS);
	}
	metrics_http_deadline_arm(mh);
	metrics_http_schedule(mh);
}

/* ---- accepting -------------------------------------------------------- */

static void
metrics_http_accept_resume(struct metrics_http *mh)
{
	if (mh->accepting != METRICS_HTTP_PAUSED_NOFD &&
	    mh->accepting != METRICS_HTTP_PAUSED_FULL)
		return;
	mh->accepting = METRICS_HTTP_ACCEPTING;
	evtimer_del(mh->retry_ev);
	event_add(mh->accept_ev, NULL);
}

static void
metrics_http_on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	metrics_http_accept_resume(arg);
}

/* accept() failed with e, for want of descriptors or memory: pause
 * rather than spin (see the top of this file). */
static void
metrics_http_accept_failed(struct metrics_http *mh, int e)
{
	struct timeval tv;
	int64_t delay;

	metric_inc(mh->accept_pauses);
	if (accept_pause_begin(&mh->nofd, clock_mono_ms()))
		log_limited(&mh->lim_accept, LOG_LEVEL_WARN, "metrics listener "
		    "paused: accept: %s; resumes when a connection closes or "
		    "after a back-off (one line per episode) open=%zu",
		    strerror(e), mh->nconns);
	mh->accepting = METRICS_HTTP_PAUSED_NOFD;
	event_del(mh->accept_ev);
	delay = accept_pause_delay_ms(&mh->nofd);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(mh->retry_ev, &tv);
}

/* At METRICS_HTTP_MAX_CONNECTIONS: the next ones wait in the backlog. */
static void
metrics_http_accept_full(struct metrics_http *mh)
{
	metric_inc(mh->limit_pauses);
	if (accept_pause_begin(&mh->full, clock_mono_ms()))
		log_limited(&mh->lim_accept, LOG_LEVEL_WARN, "metrics listener "
		    "at %d connections: accepting paused until one closes "
		    "(one line per episode)", METRICS_HTTP_MAX_CONNECTIONS);
	mh->accepting = METRICS_HTTP_PAUSED_FULL;
	event_del(mh->accept_ev);
}

/* An accept worked: the end of an episode of either kind is logged. */
static void
metrics_http_accepted(struct metrics_http *mh)
{
	int64_t now = clock_mono_ms();
	unsigned int n;

	if ((n = accept_pause_accepted(&mh->nofd, now)) > 0)
		log_info("metrics accept recovered pauses=%u open=%zu", n,
		    mh->nconns);
	if ((n = accept_pause_accepted(&mh->full, now)) > 0)
		log_info("metrics connections below %d again pauses=%u",
		    METRICS_HTTP_MAX_CONNECTIONS, n);
}

static void
metrics_http_on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct metrics_http *mh = arg;
	struct sockaddr_storage ss;
	socklen_t len;
	int i, s;

	(void)what;
	for (i = 0; i < METRICS_HTTP_ACCEPT_BATCH &&
	    mh->accepting == METRICS_HTTP_ACCEPTING; i++) {
		len = sizeof(ss);
		s = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK |
		    SOCK_CLOEXEC);
		if (s < 0) {
			if (accept_pause_peer_error(errno))
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				metrics_http_accept_failed(mh, errno);
			break;
		}
		metrics_http_accepted(mh);
		/* MHD closes s itself when it cannot take it; when it does,
		 * metrics_http_on_connection has counted it already. */
		if (MHD_add_connection(mh->mhd, s, (struct sockaddr *)&ss,
		    len) != MHD_YES)
			log_limited(&mh->lim_accept, LOG_LEVEL_WARN, "metrics "
			    "accept: libmicrohttpd did not take a connection: "
			    "%s", strerror(errno));
		if (mh->nconns >= METRICS_HTTP_MAX_CONNECTIONS)
			metrics_http_accept_full(mh);
	}
	metrics_http_schedule(mh);
}

/* MHD took a connection, or closed one (also from MHD_stop_daemon, after
 * the thread ended). */
static void
metrics_http_on_connection(void *arg, struct MHD_Connection *conn,
    void **socket_context, enum MHD_ConnectionNotificationCode code)
{
	struct metrics_http *mh = arg;
	struct metrics_http_conn *c;
	const union MHD_ConnectionInfo *info;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		info = MHD_get_connection_info(conn,
		    MHD_CONNECTION_INFO_CONNECTION_FD);
		c = xcalloc(1, sizeof(*c));
		c->fd = info->connect_fd;
		c->deadline_ms = clock_mono_ms() + METRICS_HTTP_DEADLINE_MS;
		TAILQ_INSERT_TAIL(&mh->conns, c, link);
		mh->nconns++;
		*socket_context = c;
		if (!evtimer_pending(mh->deadline_ev, NULL))
			metrics_http_deadline_arm(mh);
		return;
	}
	if ((c = *socket_context) == NULL)
		return;
	*socket_context = NULL;
	TAILQ_REMOVE(&mh->conns, c, link);
	mh->nconns--;
	free(c);
	if (mh->accepting == METRICS_HTTP_STOPPED)
		return;
	/* A descriptor and a place are free: a paused listener resumes. */
	metrics_http_accept_resume(mh);
	metrics_http_deadline_arm(mh);
}

/* ---- the thread ------------------------------------------------------- */

static void
metrics_http_on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct metrics_http *mh = arg;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	event_base_loopbreak(mh->base);
}

static void *
metrics_http_main(void *arg)
{
	struct metrics_http *mh = arg;

	if (event_base_dispatch(mh->base) < 0)
		log_err("metrics listener: event loop failed");
	return NULL;
}

/* ---- start and stop --------------------------------------------------- */

/* hostport into ss: 0, or -1 and err. */
static int
metrics_http_sockaddr(const char *hostport, struct sockaddr_storage *ss,
    socklen_t *len_out, char err[ERR_LEN])
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	char *host;
	uint16_t port;
	int ret = 0;

	memset(ss, 0, sizeof(*ss));
	if (cli_parse_hostport(hostport, &host, &port, err) < 0)
		return -1;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*len_out = sizeof(*in4);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len_out = sizeof(*in6);
	} else {
		err_set(err, "metrics address %s: not a numeric IP address",
		    host);
		ret = -1;
	}
	free(host);
	return ret;
}

/* Bound and listening as libmicrohttpd did it: SO_REUSEADDR, and an IPv6
 * address listens for IPv6 only. The socket, or -1 and err. */
static int
metrics_http_listen(const char *hostport, char err[ERR_LEN])
{
	struct sockaddr_storage ss;
	socklen_t len;
	int s, on = 1;

	if (metrics_http_sockaddr(hostport, &ss, &len, err) < 0)
		return -1;
	s = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (s < 0) {
		err_set(err, "cannot listen on %s for metrics: %s", hostport,
		    strerror(errno));
		return -1;
	}
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ss.ss_family == AF_INET6)
		setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(s, (struct sockaddr *)&ss, len) < 0 ||
	    listen(s, METRICS_HTTP_BACKLOG) < 0) {
		err_set(err, "cannot listen on %s for metrics: %s", hostport,
		    strerror(errno));
		close(s);
		return -1;
	}
	return s;
}

static void
metrics_http_register(struct metrics_http *mh, struct metrics *m)
{
	mh->accept_pauses = metrics_counter(m, "metrics_http_accept_pauses",
	    "Times the metrics listener paused accepting for lack of file "
	    "descriptors", NULL);
	mh->limit_pauses = metrics_counter(m,
	    "metrics_http_connection_limit_pauses",
	    "Times the metrics listener paused accepting at its connection "
	    "bound", NULL);
	mh->timeouts = metrics_counter(m, "metrics_http_timeouts",
	    "Metrics connections cut at their deadline", NULL);
}

/* The MHD daemon (no listening socket of its own) and the thread's
 * events: 0, or -1 and err. */
static int
metrics_http_setup(struct metrics_http *mh, char err[ERR_LEN])
{
	const union MHD_DaemonInfo *info;

	/* The logger first, or MHD prints what comes before it. */
	mh->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET |
	    MHD_USE_ERROR_LOG, 0, NULL, NULL, metrics_http_answer, mh,
	    MHD_OPTION_EXTERNAL_LOGGER, metrics_http_on_mhd_log, mh,
	    /* Never reached: the listener pauses at the bound first. */
	    MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned int)METRICS_HTTP_MAX_CONNECTIONS + 1,
	    MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)METRICS_HTTP_MHD_TIMEOUT_S,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)METRICS_HTTP_CONN_MEMORY,
	    MHD_OPTION_NOTIFY_CONNECTION, metrics_http_on_connection, mh,
	    MHD_OPTION_END);
	if (mh->mhd == NULL) {
		err_set(err, "metrics listener: cannot start libmicrohttpd");
		return -1;
	}
	if ((mh->base = event_base_new()) == NULL ||
	    (mh->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		err_set(err, "metrics listener: cannot set up its loop");
		return -1;
	}
	info = MHD_get_daemon_info(mh->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	mh->accept_ev = event_new(mh->base, mh->listen_fd,
	    EV_READ | EV_PERSIST, metrics_http_on_accept, mh);
	mh->retry_ev = evtimer_new(mh->base, metrics_http_on_retry, mh);
	mh->io_ev = event_new(mh->base, info->epoll_fd, EV_READ | EV_PERSIST,
	    metrics_http_on_run, mh);
	mh->run_ev = evtimer_new(mh->base, metrics_http_on_run, mh);
	mh->deadline_ev = evtimer_new(mh->base, metrics_http_on_deadline, mh);
	mh->stop_ev = event_new(mh->base, mh->stop_fd, EV_READ | EV_PERSIST,
	    metrics_http_on_stop, mh);
	if (mh->accept_ev == NULL || mh->retry_ev == NULL ||
	    mh->io_ev == NULL || mh->run_ev == NULL ||
	    mh->deadline_ev == NULL || mh->stop_ev == NULL)
		abort();	/* only on OOM */
	event_add(mh->accept_ev, NULL);
	event_add(mh->io_ev, NULL);
	event_add(mh->stop_ev, NULL);
	return 0;
}

/* Frees what metrics_http_setup made; the thread is not running. */
static void
metrics_http_free(struct metrics_http *mh)
{
	struct metrics_http_conn *c;

	mh->accepting = METRICS_HTTP_STOPPED;
	/* Closes every connection (their close notifications free them). */
	if (mh->mhd != NULL)
		MHD_stop_daemon(mh->mhd);
	while ((c = TAILQ_FIRST(&mh->conns)) != NULL) {
		TAILQ_REMOVE(&mh->conns, c, link);
		free(c);
	}
	if (mh->accept_ev != NULL)
		event_free(mh->accept_ev);
	if (mh->retry_ev != NULL)
		event_free(mh->retry_ev);
	if (mh->io_ev != NULL)
		event_free(mh->io_ev);
	if (mh->run_ev != NULL)
		event_free(mh->run_ev);
	if (mh->deadline_ev != NULL)
		event_free(mh->deadline_ev);
	if (mh->stop_ev != NULL)
		event_free(mh->stop_ev);
	if (mh->base != NULL)
		event_base_free(mh->base);
	if (mh->stop_fd >= 0)
		close(mh->stop_fd);
	if (mh->listen_fd >= 0)
		close(mh->listen_fd);
	free(mh);
}

struct metrics_http *
metrics_http_start(struct metrics *metrics, const char *hostport,
    char err[ERR_LEN])
{
	struct metrics_http *mh = xcalloc(1, sizeof(*mh));
	sigset_t all, old;
	int e;

	mh->metrics = metrics;
	mh->stop_fd = -1;
	mh->accepting = METRICS_HTTP_ACCEPTING;
	TAILQ_INIT(&mh->conns);
	/* A burst, then one line a second per site. */
	mh->lim_mhd = (struct log_limit)LOG_LIMIT(1, 10);
	mh->lim_accept = (struct log_limit)LOG_LIMIT(1, 10);
	mh->lim_cut = (struct log_limit)LOG_LIMIT(1, 10);
	if ((mh->listen_fd = metrics_http_listen(hostport, err)) < 0 ||
	    metrics_http_setup(mh, err) < 0) {
		metrics_http_free(mh);
		return NULL;
	}
	metrics_http_register(mh, metrics);
	/* Signals stay the daemon's loop's: the thread blocks them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&mh->thread, NULL, metrics_http_main, mh);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		err_set(err, "metrics listener: cannot start its thread: %s",
		    strerror(e));
		metrics_http_free(mh);
		return NULL;
	}
	pthread_setname_np(mh->thread, "metrics-http");
	return mh;
}

void
metrics_http_stop(struct metrics_http *mh)
{
	uint64_t one = 1;

	if (mh == NULL)
		return;
	/* An eventfd's counter cannot overflow with one write. */
	if (write(mh->stop_fd, &one, sizeof(one)) < 0)
		abort();
	pthread_join(mh->thread, NULL);
	metrics_http_free(mh);
}
