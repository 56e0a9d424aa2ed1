/*
 * One HTTP/2 connection: DNS (evdns, never blocking the loop), a
 * non-blocking connect to each resolved address in turn, the TLS
 * handshake (ALPN h2, the server checked against the CA store, the
 * client certificate presented), then TLS reads and batched writes for
 * the nghttp2 session (h2_session.c); and its end. See h2_private.h.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "h2_private.h"
#include "xmalloc.h"

static void	h2_conn_on_io(evutil_socket_t, short, void *);
static void	h2_conn_try_connect(struct h2_conn *);

void
h2_conn_fail(struct h2_conn *conn, const char *fmt, ...)
{
	struct h2_stream *s;
	bool opened;
	va_list ap;

	if (conn->state == CONN_DEAD)
		return;
	va_start(ap, fmt);
	vsnprintf(conn->error, sizeof(conn->error), fmt, ap);
	va_end(ap);
	opened = conn->state == CONN_OPEN || conn->state == CONN_DRAINING;
	/* The caller logs (docs/style.md: a transport returns errors): a
	 * connection's end is told once, not with every stream it fails. */
	if (!conn->c->freeing && strcmp(fmt, H2_DRAINED) != 0 &&
	    conn->c->cfg.conn_failed != NULL)
		conn->c->cfg.conn_failed(conn->origin->authority, conn->error,
		    conn->c->cfg.conn_failed_arg);
	conn->state = CONN_DEAD;
	if (conn->origin->conn == conn)
		conn->origin->conn = NULL;
	while ((s = TAILQ_FIRST(&conn->streams)) != NULL) {
		/* Submitted but never opened (waiting in nghttp2 for the
		 * server's concurrency limit): never sent, so safe to send
		 * again. Apple closes after GOAWAY with such streams. */
		if (!s->retried && conn->sess != NULL && s->id > 0 &&
		    nghttp2_session_find_stream(conn->sess, s->id) == NULL) {
			h2_stream_requeue(s);
			continue;
		}
		h2_stream_finish(s, "connection failed");
	}
	/* The streams that waited for this connection to open fail with it
	 * (no reconnecting in a loop); those that waited behind an open one
	 * that died get a new connection. */
	while (!opened && (s = TAILQ_FIRST(&conn->origin->queue)) != NULL)
		h2_stream_finish(s, "no connection");
	if (!TAILQ_EMPTY(&conn->origin->queue))
		event_active(conn->c->kick, EV_WRITE, 0);
}

void
h2_conn_free(struct h2_conn *conn)
{
	LIST_REMOVE(conn, link);
	if (conn->dns_wait != NULL) {
		/* The callback still comes, and frees the record. */
		conn->dns_wait->conn = NULL;
		if (conn->dns_wait->req != NULL)
			evdns_getaddrinfo_cancel(conn->dns_wait->req);
	}
	if (conn->sess != NULL)
		nghttp2_session_del(conn->sess);
	if (conn->ssl != NULL)
		SSL_free(conn->ssl);
	if (conn->ev != NULL)
		event_free(conn->ev);
	if (conn->connect_timer != NULL)
		event_free(conn->connect_timer);
	if (conn->fd >= 0)
		close(conn->fd);
	if (conn->ai != NULL)
		evutil_freeaddrinfo(conn->ai);
	if (conn->out != NULL) {
		/* HEADERS frames: device tokens, bearer tokens. */
		OPENSSL_cleanse(conn->out, conn->out_cap);
		free(conn->out);
	}
	free(conn);
}

static void
h2_conn_want_write(struct h2_conn *conn, bool on)
{
	if (on == conn->want_write_ev &&
	    event_pending(conn->ev, EV_READ | EV_WRITE, NULL))
		return;
	event_del(conn->ev);
	event_assign(conn->ev, conn->c->base, conn->fd,
	    EV_READ | EV_PERSIST | (on ? EV_WRITE : 0), h2_conn_on_io, conn);
	event_add(conn->ev, NULL);
	conn->want_write_ev = on;
}

const char *
h2_conn_ssl_error(void)
{
	static char buf[80];
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (e == 0)
		return "connection closed";
	ERR_error_string_n(e, buf, sizeof(buf));
	return buf;
}

/* Writes what nghttp2 has to send, gathered into batches. */
void
h2_conn_flush(struct h2_conn *conn)
{
	const uint8_t *data;
	ssize_t n;
	int w;

	if (conn->state != CONN_OPEN && conn->state != CONN_DRAINING)
		return;
	for (;;) {
		if (conn->out_off == conn->out_len) {
			conn->out_off = conn->out_len = 0;
			while (conn->out_len < H2_WRITE_BATCH_BYTES &&
			    (n = nghttp2_session_mem_send(conn->sess,
			    &data)) != 0) {
				if (n < 0) {
					h2_conn_fail(conn, "http2: %s",
					    nghttp2_strerror((int)n));
					return;
				}
				if (conn->out_len + (size_t)n > conn->out_cap) {
					conn->out_cap = conn->out_len +
					    (size_t)n + H2_WRITE_BATCH_BYTES;
					conn->out = xrealloc(conn->out,
					    conn->out_cap);
				}
				memcpy(conn->out + conn->out_len, data,
				    (size_t)n);
				conn->out_len += (size_t)n;
			}
			if (conn->out_len == 0)
				break;
		}
		ERR_clear_error();
		w = SSL_write(conn->ssl, conn->out + conn->out_off,
		    (int)(conn->out_len - conn->out_off));
		if (w > 0) {
			conn->out_off += (size_t)w;
			continue;
		}
		switch (SSL_get_error(conn->ssl, w)) {
		case SSL_ERROR_WANT_WRITE:
			h2_conn_want_write(conn, true);
			return;
		case SSL_ERROR_WANT_READ:
			return;		/* the read event resumes */
		default:
			h2_conn_fail(conn, "write: %s", h2_conn_ssl_error());
			return;
		}
	}
	h2_conn_want_write(conn, false);
	/* After GOAWAY, nghttp2 wants nothing more once the last stream is
	 * done: that is the drain's end, not a failure to tell. */
	if (!nghttp2_session_want_read(conn->sess) &&
	    !nghttp2_session_want_write(conn->sess))
		h2_conn_fail(conn, conn->state == CONN_DRAINING ? H2_DRAINED :
		    "session ended");
}

static void
h2_conn_read(struct h2_conn *conn)
{
	uint8_t buf[H2_READ_BYTES];
	ssize_t rv;
	int n;

	while (conn->state == CONN_OPEN || conn->state == CONN_DRAINING) {
		ERR_clear_error();
		n = SSL_read(conn->ssl, buf, sizeof(buf));
		if (n > 0) {
			rv = nghttp2_session_mem_recv(conn->sess, buf,
			    (size_t)n);
			if (rv < 0) {
				h2_conn_fail(conn, "http2: %s",
				    nghttp2_strerror((int)rv));
				return;
			}
			continue;
		}
		switch (SSL_get_error(conn->ssl, n)) {
		case SSL_ERROR_WANT_READ:
			return;
		case SSL_ERROR_WANT_WRITE:
			h2_conn_want_write(conn, true);
			return;
		case SSL_ERROR_ZERO_RETURN:
			h2_conn_fail(conn, "closed by the server");
			return;
		default:
			h2_conn_fail(conn, "read: %s", h2_conn_ssl_error());
			return;
		}
	}
}

static void
h2_conn_handshake(struct h2_conn *conn)
{
	int n;

	ERR_clear_error();
	if ((n = SSL_do_handshake(conn->ssl)) == 1) {
		h2_conn_want_write(conn, false);
		h2_session_start(conn);
		return;
	}
	switch (SSL_get_error(conn->ssl, n)) {
	case SSL_ERROR_WANT_READ:
		h2_conn_want_write(conn, false);
		break;
	case SSL_ERROR_WANT_WRITE:
		h2_conn_want_write(conn, true);
		break;
	default:
		h2_conn_fail(conn, "TLS handshake with %s: %s",
		    conn->origin->authority, h2_conn_ssl_error());
		break;
	}
}

static void
h2_conn_tls_start(struct h2_conn *conn)
{
	struct h2_origin *o = conn->origin;

	if ((conn->ssl = SSL_new(conn->c->ssl_ctx)) == NULL ||
	    SSL_set_fd(conn->ssl, conn->fd) != 1) {
		h2_conn_fail(conn, "TLS: %s", h2_conn_ssl_error());
		return;
	}
	if (o->host_is_ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(conn->ssl),
		    o->host) != 1) {
			h2_conn_fail(conn, "TLS: bad address");
			return;
		}
	} else if (SSL_set_tlsext_host_name(conn->ssl, o->host) != 1 ||
	    SSL_set1_host(conn->ssl, o->host) != 1) {
		h2_conn_fail(conn, "TLS: bad host name");
		return;
	}
	SSL_set_connect_state(conn->ssl);
	conn->state = CONN_HANDSHAKE;
	h2_conn_handshake(conn);
}

static void
h2_conn_on_io(evutil_socket_t fd, short what, void *arg)
{
	struct h2_conn *conn = arg;
	struct h2client *c = conn->c;
	socklen_t len = sizeof(int);
	int soerr = 0;

	switch (conn->state) {
	case CONN_CONNECTING:
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		if (soerr != 0) {
			snprintf(conn->error, sizeof(conn->error),
			    "connect: %s", strerror(soerr));
			event_del(conn->ev);
			close(conn->fd);
			conn->fd = -1;
			h2_conn_try_connect(conn);
		} else
			h2_conn_tls_start(conn);
		break;
	case CONN_HANDSHAKE:
		h2_conn_handshake(conn);
		break;
	case CONN_OPEN:
	case CONN_DRAINING:
		if (what & EV_READ)
			h2_conn_read(conn);
		h2_conn_flush(conn);
		break;
	default:
		break;
	}
	h2client_deliver(c);
	h2client_reap(c);
}

static void
h2_conn_on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct h2_conn *conn = arg;
	struct h2client *c = conn->c;

	(void)fd;
	(void)what;
	h2_conn_fail(conn, "no connection to %s in %ld ms",
	    conn->origin->authority, c->cfg.timeout_ms);
	h2client_deliver(c);
	h2client_reap(c);
}

/* Tries the next resolved address; the connection fails when none is
 * left. */
static void
h2_conn_try_connect(struct h2_conn *conn)
{
	struct evutil_addrinfo *ai;
	int one = 1, idle = 60, intvl = 10, cnt = 3;
	unsigned int utimeout = H2_USER_TIMEOUT_MS;

	while ((ai = conn->ai_next) != NULL) {
		conn->ai_next = ai->ai_next;
		conn->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (conn->fd < 0) {
			snprintf(conn->error, sizeof(conn->error),
			    "socket: %s", strerror(errno));
			continue;
		}
		setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		/* A connection kept for hours must notice a dead path (a NAT
		 * that forgot it) before a push waits on it: probe after a
		 * minute of silence, give up after three unanswered. */
		setsockopt(conn->fd, SOL_SOCKET, SO_KEEPALIVE, &one,
		    sizeof(one));
		setsockopt(conn->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle,
		    sizeof(idle));
		setsockopt(conn->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
		    sizeof(intvl));
		setsockopt(conn->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt,
		    sizeof(cnt));
		setsockopt(conn->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &utimeout,
		    sizeof(utimeout));
		if (connect(conn->fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    errno == EINPROGRESS) {
			conn->state = CONN_CONNECTING;
			event_assign(conn->ev, conn->c->base, conn->fd,
			    EV_WRITE, h2_conn_on_io, conn);
			event_add(conn->ev, NULL);
			conn->want_write_ev = true;
			return;
		}
		snprintf(conn->error, sizeof(conn->error), "connect: %s",
		    strerror(errno));
		close(conn->fd);
		conn->fd = -1;
	}
	h2_conn_fail(conn, "%s (%s)", conn->error[0] != '\0' ? conn->error :
	    "no address", conn->origin->authority);
}

static void
h2_conn_on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct h2_dns_wait *w = arg;
	struct h2_conn *conn = w->conn;
	struct h2client *c;

	free(w);
	if (conn == NULL) {		/* the connection is gone */
		if (res != NULL)
			evutil_freeaddrinfo(res);
		return;
	}
	conn->dns_wait = NULL;
	c = conn->c;
	if (result != 0) {
		h2_conn_fail(conn, "resolving %s: %s", conn->origin->host,
		    evutil_gai_strerror(result));
	} else {
		conn->ai = conn->ai_next = res;
		h2_conn_try_connect(conn);
	}
	/* Called from the resolver's own event, or synchronously from
	 * evdns_getaddrinfo() inside the kick, which reaps after. */
	if (conn->state == CONN_DEAD && !c->freeing)
		event_active(c->kick, EV_WRITE, 0);
}

void
h2_conn_open(struct h2client *c, struct h2_origin *o)
{
	struct h2_conn *conn = xcalloc(1, sizeof(*conn));
	struct evdns_getaddrinfo_request *req;
	struct evutil_addrinfo hints;
	struct timeval tv;

	conn->c = c;
	conn->origin = o;
	conn->fd = -1;
	conn->state = CONN_RESOLVING;
	TAILQ_INIT(&conn->streams);
	conn->ev = event_new(c->base, -1, 0, h2_conn_on_io, conn);
	conn->connect_timer = evtimer_new(c->base,
	    h2_conn_on_connect_timeout, conn);
	LIST_INSERT_HEAD(&c->conns, conn, link);
	o->conn = conn;
	tv.tv_sec = c->cfg.timeout_ms / 1000;
	tv.tv_usec = (c->cfg.timeout_ms % 1000) * 1000;
	evtimer_add(conn->connect_timer, &tv);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	conn->dns_wait = xcalloc(1, sizeof(*conn->dns_wait));
	conn->dns_wait->conn = conn;
	req = evdns_getaddrinfo(c->dns, o->host, o->port, &hints,
	    h2_conn_on_resolved, conn->dns_wait);
	/* A numeric host is answered inside the call: the record is gone. */
	if (conn->dns_wait != NULL)
		conn->dns_wait->req = req;
}
