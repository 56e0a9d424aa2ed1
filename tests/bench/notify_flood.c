/*
 * notify-flood: POSTs bodies to an HTTP/1.1 server as fast as one thread
 * can, C keep-alive connections with one request in flight each, and
 * prints the rate (see tests/bench/README.md, "notify-flood").
 *
 * The proxyd benchmark's load generator.  http-flood (libcurl multi) costs
 * about 29 us of CPU per request, and on the 2-CPU machine the bench runs
 * on, the load generator, proxyd and the fake APNs share the CPUs: the
 * generator must cost a few us per request or it, not proxyd, sets the
 * rate.  So this one is plain C and libc, and per request it makes one
 * send() and (usually) one recv(), plus its share of an epoll_wait():
 *
 *   - every request is built once, at start, head and body in one buffer
 *     ("POST PATH HTTP/1.1", Host, Content-Length, Content-Type:
 *     text/plain), and leaves in one send() (more only on a partial write);
 *   - epoll is level-triggered and a connected socket stays registered for
 *     EPOLLIN alone, so sending and reading need no epoll_ctl(); EPOLLOUT
 *     is asked for only while connecting and after a partial write;
 *   - an answer is parsed just enough to find its end: the status line,
 *     Content-Length and Connection.  No body is kept.
 *
 * It is not an HTTP client library and does not try to be one (the style
 * guide's "no hand-written HTTP" is about the daemons: libcurl is what
 * made http-flood too expensive here).  What it accepts of an answer:
 * "HTTP/1.x NNN ...", headers up to NFLOOD_HEAD_MAX_BYTES in all, 1xx
 * interim answers (skipped), a body delimited by Content-Length, by the
 * status (204, 304) or by the server closing ("Connection: close" or no
 * length).  Transfer-Encoding (chunked) and anything that is not HTTP are
 * errors, reported with the offending bytes, and the connection is closed;
 * so are bytes that arrive with no request in flight.  A connection the
 * server closes (after "Connection: close", an HTTP/1.0 answer, or while
 * idle) is opened again for the next request.  If a server closes a
 * connection that already carried an answer before it answers the next
 * request (the keep-alive race every client meets), the request is sent
 * once more on a new connection, as curl does, and counted in retries.  A
 * connect that fails retires its connection: with the server gone, the
 * run ends instead of spinning.
 *
 * Bodies: with --body-file, the file's lines (a CR before the LF dropped,
 * empty lines skipped), round-robin: request i sends line i modulo their
 * number.  Without, as http-flood: "openpgp:", the request's number in ten
 * digits, and base64 filler up to --body-bytes.  --duration stops starting
 * requests after that many seconds (the ones in flight finish), whichever
 * of it and --requests comes first.  A request with no answer after
 * NFLOOD_TIMEOUT_S fails.
 *
 * --rate R makes it an open loop, as a server's load from many clients
 * is: request i starts at i / R seconds, whatever the answers so far, on
 * any connection that is free (a connection waits, kept alive, for the
 * next one due); with none free it starts late, and started_per_s says
 * what was really offered.  --clients N binds connection i to 127.0.0.(1
 * + i mod N) before connecting (an IPv4 server): N client addresses, as a
 * server counting its clients by address sees N relays.
 *
 * stdout gets exactly one line, http-flood's (so the bench scripts read
 * either) and a few more fields:
 *
 *   notify-flood requests=N secs=S req_per_s=R concurrency=C connects=K
 *     cpu_secs=T errors=E codes=200:N[,STATUS:N...][,none:N]
 *     cpu_us_per_req=U p50_us=L p99_us=L retries=Y ok_p50_us=L
 *     ok_p99_us=L started_per_s=R
 *
 * requests counts the requests that finished (answered or failed); codes
 * counts the answers per status, in increasing order, and the requests
 * that got none as "none"; connects the connections established;
 * cpu_secs this process's user and system time over the run, and
 * cpu_us_per_req that per request; p50_us and p99_us the latency of the
 * answered requests, from the request's send() to its answer's last byte,
 * within 1.6% (a log-linear histogram, as dict-load's), and ok_p50_us and
 * ok_p99_us the same for the 200s alone; started_per_s the requests
 * started per second (with --rate: the load really offered).
 *
 * Exit status: 0, 1 if any request failed (not 200, or no answer), 2 on
 * bad usage or a setup failure.
 */

#include <sys/epoll.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bench_util.h"

static const char prog[] = "notify-flood";


#define NFLOOD_TOKEN_PREFIX	"openpgp:"
#define NFLOOD_SEQ_DIGITS	10
/* As http-flood: "openpgp:" and 700 base64 characters, a device token. */
#define NFLOOD_DEFAULT_BODY	708
#define NFLOOD_MIN_BODY		(sizeof(NFLOOD_TOKEN_PREFIX) - 1 + \
				    NFLOOD_SEQ_DIGITS)
#define NFLOOD_MAX_BODY		(1024 * 1024)
#define NFLOOD_MAX_CONCURRENCY	10000
#define NFLOOD_DEFAULT_REQUESTS	100000
#define NFLOOD_DEFAULT_CONC	128
#define NFLOOD_MAX_DURATION_S	86400
#define NFLOOD_MAX_RATE		10000000	/* --rate, requests/s */
#define NFLOOD_MAX_CLIENTS	254		/* 127.0.0.1 .. .254 */
/* As http-flood (and notifierd's sender): a request gets a minute. */
#define NFLOOD_TIMEOUT_S	60
/* epoll_wait wakes at least this often, to check the timeouts. */
#define NFLOOD_TICK_MS		1000
#define NFLOOD_EVENTS		256
/* An answer's head (status line and headers).  libmicrohttpd's and
 * notify-sink's are under 200 bytes; a server that sends more than this
 * is not one we are here to measure.  Also the read buffer of each
 * connection, so 10,000 connections take 40 MB at most (calloc'ed, so
 * untouched pages cost nothing). */
#define NFLOOD_HEAD_MAX_BYTES	4096
#define NFLOOD_STR(x)		NFLOOD_STR_(x)
#define NFLOOD_STR_(x)		#x
/* Request heads: the request line and three headers. */
#define NFLOOD_HOST_MAX_BYTES	256
#define NFLOOD_PATH_MAX_BYTES	1024
#define NFLOOD_REQ_HEAD_MAX_BYTES (NFLOOD_PATH_MAX_BYTES + \
				    NFLOOD_HOST_MAX_BYTES + 128)
#define NFLOOD_ERR_SAMPLES	5
#define NFLOOD_ERR_DETAIL_BYTES	80
/* Statuses are three digits (RFC 9110 15); [0] counts no answer. */
#define NFLOOD_STATUS_MAX	1000

/* Filler: a token is base64 after its prefix. */
static const char nflood_base64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

enum nflood_state {
	NFLOOD_CLOSED,		/* no socket; connect for the next request */
	NFLOOD_CONNECTING,	/* connect() under way, EPOLLOUT asked */
	NFLOOD_SENDING,		/* request partly written, EPOLLOUT asked */
	NFLOOD_READING,		/* request written, its answer awaited */
	NFLOOD_IDLE,		/* --rate: kept alive, waiting for the next
				 * request due */
	NFLOOD_DONE,		/* no more requests for this connection */
};

struct nflood_conn {
	int		 id;		/* for messages: 0..C-1 */
	int		 fd;		/* -1 when closed */
	enum nflood_state state;
	uint32_t	 events;	/* registered with epoll, 0 if none */
	bool		 reused;	/* an answer came on this socket */
	bool		 retried;	/* this request was sent again */
	bool		 free;		/* --rate: on the free list */
	/* The request in flight: borrowed from the flood's requests (or
	 * from gen), which outlive every connection. */
	const char	*req;
	size_t		 req_len;
	size_t		 req_off;	/* bytes sent */
	uint64_t	 start_ns;	/* connect or first send */
	uint64_t	 sent_ns;	/* last byte of the request sent */
	/* The answer: the head is collected in `in`, the body counted and
	 * dropped. */
	bool		 in_body;
	bool		 body_to_close;	/* no length: the body ends at EOF */
	bool		 close_after;	/* Connection: close, or HTTP/1.0 */
	unsigned	 status;
	uint64_t	 body_left;
	size_t		 in_len;	/* bytes of the head in `in` */
	size_t		 answer_bytes;	/* of the answer so far */
	char		*gen;		/* without --body-file: own request */
	char		 in[NFLOOD_HEAD_MAX_BYTES];
};

struct nflood {
	/* Options. */
	const char		*url;
	const char		*host;		/* --host, or from --url */
	const char		*port;
	const char		*path;
	uint64_t		 requests;
	unsigned		 conc;
	size_t			 body_bytes;
	const char		*body_file;
	uint64_t		 duration_s;	/* 0: no limit */
	uint64_t		 rate;		/* --rate; 0: closed loop */
	unsigned		 clients;	/* --clients; 0: no bind */

	char			*url_buf;	/* --url cut into host, port,
						 * path */
	struct sockaddr_storage	 addr;
	socklen_t		 addr_len;
	int			 family;

	/* Every request, built at start: body i's, head and all, is
	 * req_buf[req_offs[i] .. req_offs[i + 1]). */
	char			*req_buf;
	size_t			*req_offs;	/* nreqs + 1 offsets */
	size_t			 nreqs;
	/* Without --body-file: the head of every request (the bodies all
	 * have body_bytes). */
	char			 gen_head[NFLOOD_REQ_HEAD_MAX_BYTES];
	size_t			 gen_head_len;

	int			 epfd;
	struct nflood_conn	*conns;
	uint64_t		 deadline_ns;	/* 0: none (--duration) */
	uint64_t		 t0_ns;		/* --rate: request i due at
						 * t0 + i / rate */
	/* --rate: connections with nothing in flight, a stack. */
	struct nflood_conn	**idle;
	unsigned		 nidle;

	uint64_t		 started;	/* requests handed out */
	uint64_t		 finished;
	uint64_t		 inflight;
	uint64_t		 errors;
	uint64_t		 connects;
	uint64_t		 retries;
	uint64_t		 codes[NFLOOD_STATUS_MAX];	/* [0]: none */
	struct bench_hist	 hist;
	struct bench_hist	 ok_hist;	/* 200s only */
};

/* ---- latency histogram ---------------------------------------------- */

/* ---- errors ------------------------------------------------------------ */

/* Count an error, and print the first few. */
static void
nflood_error(struct nflood *f, const struct nflood_conn *c, const char *what)
{
	f->errors++;
	if (f->errors <= NFLOOD_ERR_SAMPLES)
		fprintf(stderr, "notify-flood: conn=%d request failed: %s\n",
		    c->id, what);
	else if (f->errors == NFLOOD_ERR_SAMPLES + 1)
		fprintf(stderr, "notify-flood: (further errors counted, not "
		    "shown)\n");
}

/* ---- connections ------------------------------------------------------- */

/* Ask epoll for events (EPOLLIN, EPOLLOUT), only if they changed. */
static int
nflood_conn_watch(struct nflood *f, struct nflood_conn *c, uint32_t events)
{
	struct epoll_event ev;

	if (events == c->events)
		return 0;
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(f->epfd, c->events == 0 ? EPOLL_CTL_ADD :
	    EPOLL_CTL_MOD, c->fd, &ev) == -1)
		return -1;
	c->events = events;
	return 0;
}

static void
nflood_conn_close(struct nflood_conn *c)
{
	if (c->fd != -1)
		close(c->fd);	/* and out of the epoll set with it */
	c->fd = -1;
	c->events = 0;
	c->reused = false;
	c->state = NFLOOD_CLOSED;
}

static void
nflood_conn_reset_answer(struct nflood_conn *c)
{
	c->in_body = false;
	c->body_to_close = false;
	c->close_after = false;
	c->status = 0;
	c->body_left = 0;
	c->in_len = 0;
	c->answer_bytes = 0;
}

/* --clients: c's source address, 127.0.0.(1 + id mod clients).  0, -1
 * with the reason in err. */
static int
nflood_conn_bind(const struct nflood *f, const struct nflood_conn *c,
    char *err, size_t err_size)
{
	struct sockaddr_in sin;

	if (f->clients == 0)
		return 0;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1u +
	    (unsigned)c->id % f->clients - 1u);
	if (bind(c->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		snprintf(err, err_size, "bind: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Open c's socket and start connecting.  0, -1 with the reason in err. */
static int
nflood_conn_open(struct nflood *f, struct nflood_conn *c, char *err,
    size_t err_size)
{
	int one = 1;

	c->fd = socket(f->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (c->fd == -1) {
		snprintf(err, err_size, "socket: %s", strerror(errno));
		return -1;
	}
	/* Each request leaves in one send(); a partial one must not wait
	 * for an ACK either. */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (nflood_conn_bind(f, c, err, err_size) == -1) {
		nflood_conn_close(c);
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&f->addr, f->addr_len) == -1 &&
	    errno != EINPROGRESS) {
		snprintf(err, err_size, "connect: %s", strerror(errno));
		nflood_conn_close(c);
		return -1;
	}
	/* Writable once connected, even when connect() already was. */
	if (nflood_conn_watch(f, c, EPOLLIN | EPOLLOUT) == -1) {
		snprintf(err, err_size, "epoll_ctl: %s", strerror(errno));
		nflood_conn_close(c);
		return -1;
	}
	c->state = NFLOOD_CONNECTING;
	return 0;
}

/* Another request may start: --requests and --duration allow it. */
static bool
nflood_may_start(const struct nflood *f, uint64_t now)
{
	return f->started < f->requests && (f->deadline_ns == 0 ||
	    now < f->deadline_ns);
}

/* Point c at the next request. */
static void
nflood_conn_pick(struct nflood *f, struct nflood_conn *c)
{
	char seq[NFLOOD_SEQ_DIGITS + 1];
	size_t i;

	if (f->req_buf != NULL) {
		i = (size_t)(f->started % f->nreqs);
		c->req = f->req_buf + f->req_offs[i];
		c->req_len = f->req_offs[i + 1] - f->req_offs[i];
	} else {
		snprintf(seq, sizeof(seq), "%0*" PRIu64, NFLOOD_SEQ_DIGITS,
		    (uint64_t)(f->started % 10000000000ull));
		memcpy(c->gen + f->gen_head_len +
		    sizeof(NFLOOD_TOKEN_PREFIX) - 1, seq, NFLOOD_SEQ_DIGITS);
		c->req = c->gen;
		c->req_len = f->gen_head_len + f->body_bytes;
	}
	f->started++;
	f->inflight++;
}

static void	nflood_conn_next(struct nflood *, struct nflood_conn *,
		    uint64_t);
static void	nflood_conn_send(struct nflood *, struct nflood_conn *,
		    uint64_t);

/* The request in flight on c is over: count it.  status 0: it failed
 * (what says why), and c is closed. */
static void
nflood_conn_count(struct nflood *f, struct nflood_conn *c, unsigned status,
    const char *what, uint64_t now)
{
	char buf[64];

	f->codes[status < NFLOOD_STATUS_MAX ? status : 0]++;
	f->finished++;
	f->inflight--;
	if (status == 0) {
		nflood_error(f, c, what);
		nflood_conn_close(c);
	} else {
		bench_hist_add(&f->hist, now - c->sent_ns);
		if (status == 200)
			bench_hist_add(&f->ok_hist, now - c->sent_ns);
		if (status != 200) {
			snprintf(buf, sizeof(buf), "status %u", status);
			nflood_error(f, c, buf);
		}
		if (c->close_after)
			nflood_conn_close(c);
		else
			c->reused = true;
	}
	c->retried = false;
	nflood_conn_reset_answer(c);
}

/* The request in flight on c is over: count it and start the next. */
static void
nflood_conn_finish(struct nflood *f, struct nflood_conn *c,
    unsigned status, const char *what, uint64_t now)
{
	nflood_conn_count(f, c, status, what, now);
	nflood_conn_next(f, c, now);
}

/* c's connect failed: fail its request and use c no more.  With the
 * server gone every connect would fail at once; this way the run ends
 * instead of spinning through the requests. */
static void
nflood_conn_retire(struct nflood *f, struct nflood_conn *c, const char *what,
    uint64_t now)
{
	nflood_conn_count(f, c, 0, what, now);
	c->state = NFLOOD_DONE;
}

/* --rate: c waits for the next request due (its socket, if any, stays
 * open and watched: a server closing it is noticed). */
static void
nflood_conn_idle(struct nflood *f, struct nflood_conn *c)
{
	if (c->fd != -1)
		c->state = NFLOOD_IDLE;
	if (!c->free) {
		c->free = true;
		f->idle[f->nidle++] = c;
	}
}

/* Start a request on c (a free connection, or one that just finished). */
static void
nflood_conn_start(struct nflood *f, struct nflood_conn *c, uint64_t now)
{
	char err[128];

	nflood_conn_pick(f, c);
	c->req_off = 0;
	c->start_ns = now;
	if (c->fd != -1) {
		nflood_conn_send(f, c, now);
		return;
	}
	if (nflood_conn_open(f, c, err, sizeof(err)) == -1)
		nflood_conn_retire(f, c, err, now);
}

/* Requests due by now (--rate), at most what may start. */
static uint64_t
nflood_due(const struct nflood *f, uint64_t now)
{
	uint64_t due = (uint64_t)((double)(now - f->t0_ns) * (double)f->rate /
	    (double)NS_PER_S) + 1;

	return due < f->requests ? due : f->requests;
}

/* Start c's next request if one may start, else close c for good.  With
 * --rate only a request that is due: else c waits on the free list. */
static void
nflood_conn_next(struct nflood *f, struct nflood_conn *c, uint64_t now)
{
	if (!nflood_may_start(f, now)) {
		nflood_conn_close(c);
		c->state = NFLOOD_DONE;
		return;
	}
	if (f->rate > 0 && f->started >= nflood_due(f, now)) {
		nflood_conn_idle(f, c);
		return;
	}
	nflood_conn_start(f, c, now);
}

/* --rate: start every request due on free connections; the time until
 * the next one is due, in ms for epoll_wait (-1: none will be). */
static int
nflood_start_due(struct nflood *f, uint64_t now)
{
	struct nflood_conn *c;
	uint64_t next_ns;

	while (f->nidle > 0 && nflood_may_start(f, now) &&
	    f->started < nflood_due(f, now)) {
		c = f->idle[--f->nidle];
		c->free = false;
		nflood_conn_start(f, c, now);
	}
	if (!nflood_may_start(f, now))
		return -1;
	next_ns = f->t0_ns + (uint64_t)((double)f->started * NS_PER_S /
	    (double)f->rate);
	return next_ns <= now ? 0 : (int)((next_ns - now) / NS_PER_MS) + 1;
}

/* The server closed c (or reset it) before the whole answer came.  The
 * request is sent again once, on a new connection, if c had carried an
 * answer already and nothing of this one came: the server may have
 * closed the idle connection as we sent.  RFC 9112 9.3.1 lets a client
 * retry a POST only if it knows that is safe: a /notify sent twice is at
 * worst one more push, and curl (so http-flood) retries the same way. */
static void
nflood_conn_lost(struct nflood *f, struct nflood_conn *c, const char *what,
    uint64_t now)
{
	char err[160];

	if (c->reused && !c->retried && c->answer_bytes == 0) {
		nflood_conn_close(c);
		nflood_conn_reset_answer(c);
		c->retried = true;
		c->req_off = 0;
		f->retries++;
		if (nflood_conn_open(f, c, err, sizeof(err)) == -1)
			nflood_conn_retire(f, c, err, now);
		return;
	}
	snprintf(err, sizeof(err), "%s after %zu bytes of the answer", what,
	    c->answer_bytes);
	nflood_conn_finish(f, c, 0, err, now);
}

/* Write what is left of c's request; on a partial write wait for
 * EPOLLOUT. */
static void
nflood_conn_send(struct nflood *f, struct nflood_conn *c, uint64_t now)
{
	char err[128];
	ssize_t n;

	for (;;) {
		n = send(c->fd, c->req + c->req_off, c->req_len - c->req_off,
		    MSG_NOSIGNAL);
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->state = NFLOOD_SENDING;
			if (nflood_conn_watch(f, c, EPOLLIN | EPOLLOUT) == -1)
				goto fail;
			return;
		}
		if (errno == EPIPE || errno == ECONNRESET) {
			nflood_conn_lost(f, c, strerror(errno), now);
			return;
		}
		goto fail;
	}
	c->req_off += (size_t)n;
	if (c->req_off < c->req_len) {
		c->state = NFLOOD_SENDING;
		if (nflood_conn_watch(f, c, EPOLLIN | EPOLLOUT) == -1)
			goto fail;
		return;
	}
	c->sent_ns = c->req_off == (size_t)n ? now : bench_now_ns();
	c->state = NFLOOD_READING;
	if (nflood_conn_watch(f, c, EPOLLIN) == -1)
		goto fail;
	return;
fail:
	snprintf(err, sizeof(err), "send: %s", strerror(errno));
	nflood_conn_finish(f, c, 0, err, now);
}

/* The connect() under way on c is over: send the request, or fail. */
static void
nflood_conn_connected(struct nflood *f, struct nflood_conn *c, uint64_t now)
{
	char err[128];
	socklen_t len = sizeof(int);
	int soerr = 0;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		soerr = errno;
	if (soerr != 0) {
		snprintf(err, sizeof(err), "connect: %s", strerror(soerr));
		nflood_conn_retire(f, c, err, now);
		return;
	}
	f->connects++;
	nflood_conn_send(f, c, now);
}

/* The header line [p, eol) is name (case-insensitive) followed by ':'. */
static bool
nflood_header_is(const char *p, const char *eol, const char *name)
{
	size_t n = strlen(name);

	return (size_t)(eol - p) > n && p[n] == ':' &&
	    strncasecmp(p, name, n) == 0;
}

/* The value of the header line [p, eol) whose name is name_len bytes,
 * blanks and the CR trimmed. */
static void
nflood_header_value(const char *p, const char *eol, size_t name_len,
    const char **v_out, size_t *len_out)
{
	p += name_len + 1;
	while (p < eol && (*p == ' ' || *p == '\t'))
		p++;
	while (eol > p && (eol[-1] == '\r' || eol[-1] == ' ' ||
	    eol[-1] == '\t'))
		eol--;
	*v_out = p;
	*len_out = (size_t)(eol - p);
}

/* value (len bytes) holds token as a comma-separated element. */
static bool
nflood_list_has(const char *v, size_t len, const char *token)
{
	size_t n = strlen(token), i = 0, start;

	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		start = i;
		while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
			i++;
		if (i - start == n && strncasecmp(v + start, token, n) == 0)
			return true;
	}
	return false;
}

/* Parse the answer head [head, head + len) (it ends with CRLF CRLF) into
 * c: status, where the body ends, whether the connection closes after.
 * NULL if fine, else what is wrong with it (static text). */
static const char *
nflood_head_parse(struct nflood_conn *c, const char *head, size_t len)
{
	const char *end = head + len, *eol, *p, *v;
	size_t vlen, i;
	bool http10, keep_alive = false, has_length = false;
	uint64_t length = 0;

	/* "HTTP/1.x NNN[ reason]" (RFC 9112 4). */
	eol = memchr(head, '\n', len);
	if (eol - head < 13 || memcmp(head, "HTTP/1.", 7) != 0 ||
	    (head[7] != '0' && head[7] != '1') || head[8] != ' ' ||
	    head[9] < '1' || head[9] > '5' || head[10] < '0' ||
	    head[10] > '9' || head[11] < '0' || head[11] > '9' ||
	    (head[12] != ' ' && head[12] != '\r') || eol[-1] != '\r')
		return "not an HTTP/1.x status line";
	http10 = head[7] == '0';
	c->status = (unsigned)((head[9] - '0') * 100 + (head[10] - '0') * 10 +
	    (head[11] - '0'));
	for (p = eol + 1; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL || eol[-1] != '\r')
			return "a header line not ended by CRLF";
		if (eol == p + 1)
			break;		/* the empty line */
		if (nflood_header_is(p, eol, "content-length")) {
			nflood_header_value(p, eol, 14, &v, &vlen);
			if (vlen == 0 || vlen > 15 || has_length)
				return "a bad or repeated Content-Length";
			for (length = 0, i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9')
					return "a bad Content-Length";
				length = length * 10 + (uint64_t)(v[i] - '0');
			}
			has_length = true;
		} else if (nflood_header_is(p, eol, "transfer-encoding")) {
			return "Transfer-Encoding (not supported)";
		} else if (nflood_header_is(p, eol, "connection")) {
			nflood_header_value(p, eol, 10, &v, &vlen);
			if (nflood_list_has(v, vlen, "close"))
				c->close_after = true;
			else if (nflood_list_has(v, vlen, "keep-alive"))
				keep_alive = true;
		}
	}
	if (http10 && !keep_alive)
		c->close_after = true;
	/* RFC 9112 6.3: no body after 1xx, 204 and 304; else Content-Length,
	 * else until the server closes. */
	if (c->status < 200 || c->status == 204 || c->status == 304)
		c->body_left = 0;
	else if (has_length)
		c->body_left = length;
	else {
		c->body_to_close = true;
		c->close_after = true;
	}
	return NULL;
}

/* A bad answer: report it with its first bytes, drop the connection. */
static void
nflood_conn_garbage(struct nflood *f, struct nflood_conn *c, const char *why,
    const char *p, size_t len, uint64_t now)
{
	/* Each peer byte takes at most 4 escaped ("\xNN"). */
	char esc[NFLOOD_ERR_DETAIL_BYTES * 4 + 8];
	char what[sizeof(esc) + 160];

	bench_escape(p, len, NFLOOD_ERR_DETAIL_BYTES, esc, sizeof(esc));
	snprintf(what, sizeof(what), "bad answer: %s: \"%s\"", why, esc);
	nflood_conn_finish(f, c, 0, what, now);
}

/* n new bytes at c->in + c->in_len (head) or at c->in (body): parse or
 * count them, and finish the request once its answer is whole. */
static void
nflood_conn_take(struct nflood *f, struct nflood_conn *c, size_t n,
    uint64_t now)
{
	const char *eoh, *why;
	size_t from, head_len, extra;

	c->answer_bytes += n;
	if (c->in_body) {
		if (c->body_to_close)
			return;
		if (n > c->body_left) {
			nflood_conn_garbage(f, c, "bytes after the body",
			    c->in + c->body_left, n - (size_t)c->body_left,
			    now);
			return;
		}
		c->body_left -= n;
		goto check;
	}
	from = c->in_len > 3 ? c->in_len - 3 : 0;
	c->in_len += n;
	while (!c->in_body) {
		/* Garbage shows at once, not after NFLOOD_HEAD_MAX_BYTES. */
		if (memcmp(c->in, "HTTP/1.", c->in_len < 7 ? c->in_len : 7)
		    != 0) {
			nflood_conn_garbage(f, c, "not HTTP/1.x", c->in,
			    c->in_len, now);
			return;
		}
		eoh = memmem(c->in + from, c->in_len - from, "\r\n\r\n", 4);
		if (eoh == NULL) {
			if (c->in_len == sizeof(c->in))
				nflood_conn_garbage(f, c, "head over "
				    NFLOOD_STR(NFLOOD_HEAD_MAX_BYTES) " bytes",
				    c->in, c->in_len, now);
			return;
		}
		head_len = (size_t)(eoh - c->in) + 4;
		if ((why = nflood_head_parse(c, c->in, head_len)) != NULL) {
			nflood_conn_garbage(f, c, why, c->in, head_len, now);
			return;
		}
		extra = c->in_len - head_len;
		if (c->status < 200) {
			/* An interim answer (100 Continue, 103): the final
			 * one follows. */
			memmove(c->in, c->in + head_len, extra);
			c->in_len = extra;
			from = 0;
			if (c->in_len == 0)
				return;
			continue;
		}
		c->in_body = true;
		c->in_len = 0;
		if (c->body_to_close)
			return;
		if (extra > c->body_left) {
			nflood_conn_garbage(f, c, "bytes after the body",
			    c->in + head_len + c->body_left,
			    extra - (size_t)c->body_left, now);
			return;
		}
		c->body_left -= extra;
	}
check:
	if (c->body_left == 0)
		nflood_conn_finish(f, c, c->status, NULL, now);
}

/* c (sending or reading) is readable.  One recv(): level-triggered epoll
 * says if more is there, and an answer nearly always comes whole in one.
 * No connection is ever idle (after an answer the next request leaves at
 * once, or the connection is closed for good), so anything that arrives
 * is part of the answer to the request in flight or an error in it. */
static void
nflood_conn_read(struct nflood *f, struct nflood_conn *c, uint64_t now)
{
	char err[128], *buf;
	size_t room;
	ssize_t n;

	if (c->in_body) {
		buf = c->in;	/* the body is dropped */
		room = sizeof(c->in);
	} else {
		buf = c->in + c->in_len;
		room = sizeof(c->in) - c->in_len;
	}
	n = recv(c->fd, buf, room, 0);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		if (errno == ECONNRESET) {
			nflood_conn_lost(f, c, "connection reset", now);
			return;
		}
		snprintf(err, sizeof(err), "recv: %s", strerror(errno));
		nflood_conn_finish(f, c, 0, err, now);
		return;
	}
	if (n == 0) {
		if (c->in_body && c->body_to_close) {
			c->close_after = true;
			nflood_conn_finish(f, c, c->status, NULL, now);
		} else
			nflood_conn_lost(f, c, "connection closed by the "
			    "server", now);
		return;
	}
	if (c->state == NFLOOD_SENDING) {
		/* An answer before the whole request (a 413, say): whatever
		 * it is, this connection cannot carry another request. */
		c->close_after = true;
	}
	nflood_conn_take(f, c, (size_t)n, now);
}

/* A free connection (--rate) is readable: the server closed it (it is
 * opened again for its next request) or sent what nobody asked for. */
static void
nflood_conn_idle_event(struct nflood *f, struct nflood_conn *c)
{
	char buf[64];
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n > 0) {
		f->errors++;
		fprintf(stderr, "notify-flood: conn=%d: bytes with no request "
		    "in flight\n", c->id);
	}
	nflood_conn_close(c);	/* still on the free list */
}

static void
nflood_conn_on_event(struct nflood *f, struct nflood_conn *c,
    uint32_t events)
{
	uint64_t now = bench_now_ns();

	switch (c->state) {
	case NFLOOD_CONNECTING:
		nflood_conn_connected(f, c, now);
		return;
	case NFLOOD_SENDING:
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
			nflood_conn_read(f, c, now);
			if (c->state != NFLOOD_SENDING)
				return;
		}
		if (events & EPOLLOUT)
			nflood_conn_send(f, c, now);
		return;
	case NFLOOD_READING:
		nflood_conn_read(f, c, now);
		return;
	case NFLOOD_IDLE:
		nflood_conn_idle_event(f, c);
		return;
	case NFLOOD_CLOSED:
	case NFLOOD_DONE:
		return;
	}
}

/* Fail the requests that have waited longer than NFLOOD_TIMEOUT_S.  An
 * O(C) scan, once per NFLOOD_TICK_MS: cheaper than a timer per request. */
static void
nflood_check_timeouts(struct nflood *f, uint64_t now)
{
	struct nflood_conn *c;
	char err[64];
	unsigned i;

	for (i = 0; i < f->conc; i++) {
		c = &f->conns[i];
		if ((c->state == NFLOOD_CONNECTING ||
		    c->state == NFLOOD_SENDING ||
		    c->state == NFLOOD_READING) &&
		    now - c->start_ns > NFLOOD_TIMEOUT_S * NS_PER_S) {
			snprintf(err, sizeof(err), "no answer in %d s",
			    NFLOOD_TIMEOUT_S);
			nflood_conn_finish(f, c, 0, err, now);
		}
	}
}

static int
nflood_run(struct nflood *f)
{
	struct epoll_event evs[NFLOOD_EVENTS];
	uint64_t now, next_tick;
	unsigned i;
	int n, j, wait_ms = NFLOOD_TICK_MS, due_ms;

	now = bench_now_ns();
	f->t0_ns = now;
	for (i = 0; i < f->conc; i++)
		nflood_conn_next(f, &f->conns[i], now);
	next_tick = now + NFLOOD_TICK_MS * NS_PER_MS;
	/* Each finished request starts the next while that may be (with
	 * --rate: when it is due): none in flight and none to come means
	 * the run is over. */
	while (f->inflight > 0 || (f->rate > 0 &&
	    nflood_may_start(f, bench_now_ns()))) {
		if (f->rate > 0) {
			due_ms = nflood_start_due(f, bench_now_ns());
			wait_ms = due_ms >= 0 && due_ms < NFLOOD_TICK_MS ?
			    due_ms : NFLOOD_TICK_MS;
		}
		n = epoll_wait(f->epfd, evs, NFLOOD_EVENTS, wait_ms);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			perror("notify-flood: epoll_wait");
			return -1;
		}
		for (j = 0; j < n; j++)
			nflood_conn_on_event(f, evs[j].data.ptr,
			    evs[j].events);
		if ((now = bench_now_ns()) >= next_tick) {
			nflood_check_timeouts(f, now);
			next_tick = now + NFLOOD_TICK_MS * NS_PER_MS;
		}
	}
	return 0;
}

/* ---- setup ------------------------------------------------------------- */

static void
nflood_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: notify-flood (--url http://HOST[:PORT]/PATH |\n"
	    "                     --host HOST [--port PORT] [--path PATH])\n"
	    "                    [--requests N] [--concurrency C]\n"
	    "                    [--body-bytes B | --body-file FILE]\n"
	    "                    [--duration SECONDS] [--rate R]\n"
	    "                    [--clients N]\n"
	    "  --url URL        where to POST (http only)\n"
	    "  --host HOST      or the same in parts: a name or address,\n"
	    "  --port PORT      port (default 80) and path (default\n"
	    "  --path PATH      /notify)\n"
	    "  --requests N     POSTs to make (default %d, or no limit\n"
	    "                   with --duration)\n"
	    "  --concurrency C  C keep-alive connections, one request in\n"
	    "                   flight on each (default %d)\n"
	    "  --body-bytes B   body size (default %d, a device token's)\n"
	    "  --body-file FILE the bodies: its lines, round-robin\n"
	    "  --duration S     start no request after S seconds\n"
	    "  --rate R         open loop: start R requests per second,\n"
	    "                   whatever the answers (C connections at most)\n"
	    "  --clients N      bind connection i to 127.0.0.(1 + i mod N)\n"
	    "Prints one line:\n"
	    "  notify-flood requests=N secs=S req_per_s=R concurrency=C\n"
	    "    connects=K cpu_secs=T errors=E codes=200:N,... \\\n"
	    "    cpu_us_per_req=U p50_us=L p99_us=L retries=Y ok_p50_us=L \\\n"
	    "    ok_p99_us=L started_per_s=R\n"
	    "Exit status 0, 1 if a request failed, 2 on bad usage.\n",
	    NFLOOD_DEFAULT_REQUESTS, NFLOOD_DEFAULT_CONC,
	    NFLOOD_DEFAULT_BODY);
}

/* Cut --url ("http://HOST[:PORT][/PATH]", HOST maybe "[v6]") into host,
 * port and path, pointing into f->url_buf.  0, -1 with the reason on
 * stderr. */
static int
nflood_parse_url(struct nflood *f)
{
	char *p, *host, *slash, *colon;

	if (strncasecmp(f->url, "http://", 7) != 0) {
		fprintf(stderr, "notify-flood: --url %s: want http://HOST"
		    "[:PORT]/PATH (no TLS here)\n", f->url);
		return -1;
	}
	if ((f->url_buf = malloc(strlen(f->url) + 2)) == NULL) {
		fprintf(stderr, "notify-flood: out of memory\n");
		return -1;
	}
	/* The authority, then a NUL, then the path with its '/'. */
	host = f->url_buf;
	strcpy(host, f->url + 7);
	if ((slash = strchr(host, '/')) != NULL) {
		memmove(slash + 1, slash, strlen(slash) + 1);
		*slash = '\0';
		f->path = slash + 1;
	} else
		f->path = "/";
	if (*host == '[') {
		if ((p = strchr(host, ']')) == NULL || (p[1] != '\0' &&
		    p[1] != ':'))
			goto bad;
		*p = '\0';
		colon = p[1] == ':' ? p + 1 : NULL;
		host++;
	} else
		colon = strrchr(host, ':');
	if (colon != NULL) {
		*colon = '\0';
		f->port = colon + 1;
	}
	if (*host == '\0' || (f->port != NULL && *f->port == '\0'))
		goto bad;
	f->host = host;
	return 0;
bad:
	fprintf(stderr, "notify-flood: --url %s: cannot read HOST[:PORT]\n",
	    f->url);
	return -1;
}

/* 0, -1 on bad usage (reason on stderr), 1 after --help. */
static int
nflood_parse_args(int argc, char **argv, struct nflood *f)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "path", required_argument, NULL, 'P' },
		{ "requests", required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "body-bytes", required_argument, NULL, 'b' },
		{ "body-file", required_argument, NULL, 'f' },
		{ "duration", required_argument, NULL, 'd' },
		{ "rate", required_argument, NULL, 'r' },
		{ "clients", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long v;
	bool requests_set = false, bytes_set = false;
	int ch;

	f->requests = NFLOOD_DEFAULT_REQUESTS;
	f->conc = NFLOOD_DEFAULT_CONC;
	f->body_bytes = NFLOOD_DEFAULT_BODY;
	while ((ch = getopt_long(argc, argv, "u:H:p:P:n:c:b:f:d:r:C:h",
	    longopts, NULL)) != -1) {
		switch (ch) {
		case 'u':
			f->url = optarg;
			break;
		case 'H':
			f->host = optarg;
			break;
		case 'p':
			if (bench_parse_uint(prog, "port", optarg, 1, 65535,
			    &v) == -1)
				return -1;
			f->port = optarg;
			break;
		case 'P':
			f->path = optarg;
			break;
		case 'n':
			if (bench_parse_uint(prog, "requests", optarg, 1,
			    UINT64_MAX, &v) == -1)
				return -1;
			f->requests = v;
			requests_set = true;
			break;
		case 'c':
			if (bench_parse_uint(prog, "concurrency", optarg, 1,
			    NFLOOD_MAX_CONCURRENCY, &v) == -1)
				return -1;
			f->conc = (unsigned)v;
			break;
		case 'b':
			if (bench_parse_uint(prog, "body-bytes", optarg,
			    NFLOOD_MIN_BODY, NFLOOD_MAX_BODY, &v) == -1)
				return -1;
			f->body_bytes = (size_t)v;
			bytes_set = true;
			break;
		case 'f':
			f->body_file = optarg;
			break;
		case 'd':
			if (bench_parse_uint(prog, "duration", optarg, 1,
			    NFLOOD_MAX_DURATION_S, &v) == -1)
				return -1;
			f->duration_s = v;
			break;
		case 'r':
			if (bench_parse_uint(prog, "rate", optarg, 1,
			    NFLOOD_MAX_RATE, &v) == -1)
				return -1;
			f->rate = v;
			break;
		case 'C':
			if (bench_parse_uint(prog, "clients", optarg, 1,
			    NFLOOD_MAX_CLIENTS, &v) == -1)
				return -1;
			f->clients = (unsigned)v;
			break;
		case 'h':
			nflood_usage(stdout);
			return 1;
		default:
			nflood_usage(stderr);
			return -1;
		}
	}
	if (optind != argc || (f->url == NULL) == (f->host == NULL) ||
	    (f->url != NULL && (f->port != NULL || f->path != NULL))) {
		if (optind == argc)
			fprintf(stderr, "notify-flood: want either --url, or "
			    "--host with optional --port and --path\n");
		nflood_usage(stderr);
		return -1;
	}
	if (f->body_file != NULL && bytes_set) {
		fprintf(stderr, "notify-flood: --body-bytes and --body-file "
		    "exclude each other\n");
		return -1;
	}
	if (f->url != NULL && (nflood_parse_url(f) == -1 ||
	    (f->port != NULL && bench_parse_uint(prog, "url's port", f->port,
	    1, 65535, &v) == -1)))
		return -1;
	if (f->port == NULL)
		f->port = "80";
	if (f->path == NULL)
		f->path = "/notify";
	if (f->path[0] != '/' || strlen(f->path) > NFLOOD_PATH_MAX_BYTES ||
	    strpbrk(f->path, " \r\n") != NULL) {
		fprintf(stderr, "notify-flood: the path must start with '/', "
		    "hold no blank and be under %d bytes\n",
		    NFLOOD_PATH_MAX_BYTES);
		return -1;
	}
	if (strlen(f->host) > NFLOOD_HOST_MAX_BYTES - 8 ||
	    strpbrk(f->host, " \r\n/") != NULL) {
		fprintf(stderr, "notify-flood: bad host \"%s\"\n", f->host);
		return -1;
	}
	if (f->duration_s > 0 && !requests_set)
		f->requests = UINT64_MAX;
	return 0;
}

/* --clients binds IPv4 loopback addresses: the server must be IPv4. */
static int
nflood_check_clients(const struct nflood *f)
{
	if (f->clients > 0 && f->family != AF_INET) {
		fprintf(stderr, "notify-flood: --clients needs an IPv4 "
		    "server\n");
		return -1;
	}
	return 0;
}

/* Resolve the host once, at start (a numeric address needs no DNS). */
static int
nflood_resolve(struct nflood *f)
{
	struct addrinfo hints, *res;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(f->host, f->port, &hints, &res)) != 0) {
		fprintf(stderr, "notify-flood: %s port %s: %s\n", f->host,
		    f->port, gai_strerror(rc));
		return -1;
	}
	memcpy(&f->addr, res->ai_addr, res->ai_addrlen);
	f->addr_len = res->ai_addrlen;
	f->family = res->ai_family;
	freeaddrinfo(res);
	return 0;
}

/* The request head for a body of len bytes into out (size bytes): its
 * length. */
static size_t
nflood_format_head(const struct nflood *f, size_t len, char *out,
    size_t size)
{
	bool v6 = strchr(f->host, ':') != NULL;
	int n;

	/* Host is the URL's authority (RFC 9110 7.2). */
	n = snprintf(out, size, "POST %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\n"
	    "Content-Length: %zu\r\nContent-Type: text/plain\r\n\r\n",
	    f->path, v6 ? "[" : "", f->host, v6 ? "]" : "",
	    strcmp(f->port, "80") != 0 ? ":" : "",
	    strcmp(f->port, "80") != 0 ? f->port : "", len);
	return (size_t)n;
}

/* Read --body-file and build one request per line (empty lines skipped)
 * into f->req_buf: a first pass sizes it, a second fills it.  0, -1 with
 * the reason on stderr. */
static int
nflood_load_bodies(struct nflood *f)
{
	char *file, head[NFLOOD_REQ_HEAD_MAX_BYTES];
	const char *p, *end, *line;
	size_t len, n, lines = 0, total = 0, used = 0, head_len;
	int rc = -1;

	if ((file = bench_read_file(prog, f->body_file, &n)) == NULL)
		return -1;
	for (p = file, end = file + n; bench_next_line(&p, end, &line,
	    &len);) {
		if (len == 0)
			continue;
		if (len > NFLOOD_MAX_BODY) {
			fprintf(stderr, "notify-flood: %s: a line over %d "
			    "bytes\n", f->body_file, NFLOOD_MAX_BODY);
			goto out;
		}
		lines++;
		total += nflood_format_head(f, len, head, sizeof(head)) + len;
	}
	if (lines == 0) {
		fprintf(stderr, "notify-flood: %s: no body in it\n",
		    f->body_file);
		goto out;
	}
	if ((f->req_offs = malloc((lines + 1) * sizeof(*f->req_offs))) ==
	    NULL || (f->req_buf = malloc(total)) == NULL) {
		fprintf(stderr, "notify-flood: out of memory\n");
		goto out;
	}
	for (p = file; bench_next_line(&p, end, &line, &len);) {
		if (len == 0)
			continue;
		head_len = nflood_format_head(f, len, head, sizeof(head));
		f->req_offs[f->nreqs++] = used;
		memcpy(f->req_buf + used, head, head_len);
		memcpy(f->req_buf + used + head_len, line, len);
		used += head_len + len;
	}
	f->req_offs[f->nreqs] = used;
	rc = 0;
out:
	free(file);
	return rc;
}

/* Without --body-file: each connection's request buffer, head and a
 * token-like body whose sequence number nflood_conn_pick() fills in. */
static int
nflood_make_gen(struct nflood *f)
{
	struct nflood_conn *c;
	unsigned i;
	size_t j;

	f->gen_head_len = nflood_format_head(f, f->body_bytes, f->gen_head,
	    sizeof(f->gen_head));
	for (i = 0; i < f->conc; i++) {
		c = &f->conns[i];
		if ((c->gen = malloc(f->gen_head_len + f->body_bytes)) ==
		    NULL) {
			fprintf(stderr, "notify-flood: out of memory\n");
			return -1;
		}
		memcpy(c->gen, f->gen_head, f->gen_head_len);
		memcpy(c->gen + f->gen_head_len, NFLOOD_TOKEN_PREFIX,
		    sizeof(NFLOOD_TOKEN_PREFIX) - 1);
		for (j = NFLOOD_MIN_BODY; j < f->body_bytes; j++)
			c->gen[f->gen_head_len + j] = nflood_base64[j % 64];
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct nflood *f;
	uint64_t t0, t1;
	double secs, cpu0, cpu;
	char codes[256];
	unsigned i;
	int rc, status = 2;

	/* The histogram makes the context too big for a comfortable
	 * stack. */
	if ((f = calloc(1, sizeof(*f))) == NULL) {
		fprintf(stderr, "notify-flood: out of memory\n");
		return 2;
	}
	f->epfd = -1;
	if ((rc = nflood_parse_args(argc, argv, f)) != 0) {
		status = rc == 1 ? 0 : 2;
		goto out;
	}
	if (nflood_resolve(f) == -1 || nflood_check_clients(f) == -1)
		goto out;
	if ((f->conns = calloc(f->conc, sizeof(*f->conns))) == NULL ||
	    (f->idle = calloc(f->conc, sizeof(*f->idle))) == NULL) {
		fprintf(stderr, "notify-flood: out of memory\n");
		goto out;
	}
	for (i = 0; i < f->conc; i++) {
		f->conns[i].id = (int)i;
		f->conns[i].fd = -1;
	}
	if (f->body_file != NULL ? nflood_load_bodies(f) == -1 :
	    nflood_make_gen(f) == -1)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	/* A socket per connection, plus stdio. */
	bench_raise_nofile(prog, (unsigned long long)f->conc + 64);
	if ((f->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		perror("notify-flood: epoll_create1");
		goto out;
	}

	t0 = bench_now_ns();
	cpu0 = bench_cpu_secs();
	if (f->duration_s > 0)
		f->deadline_ns = t0 + f->duration_s * NS_PER_S;
	if (nflood_run(f) == -1)
		goto out;
	t1 = bench_now_ns();
	cpu = bench_cpu_secs() - cpu0;
	secs = (double)(t1 - t0) / NS_PER_S;
	bench_format_codes(f->codes, NFLOOD_STATUS_MAX, codes, sizeof(codes));
	printf("notify-flood requests=%" PRIu64 " secs=%.3f req_per_s=%.0f "
	    "concurrency=%u connects=%" PRIu64 " cpu_secs=%.2f errors=%"
	    PRIu64 " %s cpu_us_per_req=%.2f p50_us=%.0f p99_us=%.0f "
	    "retries=%" PRIu64 " ok_p50_us=%.0f ok_p99_us=%.0f "
	    "started_per_s=%.0f\n", f->finished, secs, secs > 0 ?
	    (double)f->finished / secs : 0, f->conc, f->connects, cpu,
	    f->errors, codes, f->finished > 0 ? cpu * 1e6 /
	    (double)f->finished : 0,
	    (double)bench_hist_quantile(&f->hist, 500000) / NS_PER_US,
	    (double)bench_hist_quantile(&f->hist, 990000) / NS_PER_US,
	    f->retries,
	    (double)bench_hist_quantile(&f->ok_hist, 500000) / NS_PER_US,
	    (double)bench_hist_quantile(&f->ok_hist, 990000) / NS_PER_US,
	    f->duration_s > 0 ? (double)f->started / (double)f->duration_s :
	    (secs > 0 ? (double)f->started / secs : 0));
	status = f->errors > 0 ? 1 : 0;
	if (fflush(stdout) != 0)
		status = 2;
out:
	for (i = 0; f->conns != NULL && i < f->conc; i++) {
		nflood_conn_close(&f->conns[i]);
		free(f->conns[i].gen);
	}
	free(f->conns);
	free(f->idle);
	free(f->req_buf);
	free(f->req_offs);
	free(f->url_buf);
	if (f->epfd != -1)
		close(f->epfd);
	free(f);
	return status;
}
