/*
 * HTTP/2 over TLS with nghttp2 on the libevent loop; see h2client.h.
 *
 * A request is a stream. It waits in its origin's queue until the
 * origin's connection is open, is then submitted to the nghttp2 session,
 * and ends in the client's finished list, from which the done callbacks
 * are made at the end of whatever loop callback ended it (never inside an
 * nghttp2 callback, never inside h2client_send). Connections that fail
 * or finish are freed at the same point ("reaped").
 *
 * Writes are deferred: h2client_send() only queues and activates the
 * "kick" event, which runs once after the loop's current callbacks, so
 * everything submitted in one loop pass leaves in one SSL_write().
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "h2client.h"
#include "log.h"
#include "xmalloc.h"

#define H2_MAX_ORIGINS		16
#define H2_MAX_HEADERS		24	/* the caller's, plus ours */
#define H2_HEADER_NAMES_BYTES	1024	/* lower-cased names, per request */
#define H2_READ_BYTES		16384	/* one TLS record */
#define H2_WRITE_BATCH_BYTES	65536	/* frames gathered per SSL_write */
#define H2_DEFAULT_STREAMS	100
#define H2_DRAINED		"drained after GOAWAY"
#define H2_TIMEOUTS_TO_REPLACE	3
/* Unacknowledged data for this long ends a connection (TCP_USER_TIMEOUT):
 * a path that silently drops packets while pushes are in flight. */
#define H2_USER_TIMEOUT_MS	30000

struct h2_conn;
struct h2_origin;

struct h2_stream {
	struct h2client		*c;
	struct h2_origin	*origin;
	struct h2_conn		*conn;		/* NULL while queued */
	void			*ctx;
	struct httpc_request	 q;		/* strings borrowed */
	const char		*path;		/* inside q.url */
	int32_t			 id;		/* 0: not submitted */
	size_t			 sent;		/* body bytes */
	long			 status;
	int64_t			 retry_after_s;
	char			*body;
	size_t			 body_len;
	int64_t			 start_us;
	int64_t			 deadline_us;
	const char		*error;		/* static string; NULL: none */
	bool			 retried;	/* after a refused stream */
	bool			 finished;
	enum { ON_NONE, ON_QUEUE, ON_CONN, ON_FINISHED } where;
	TAILQ_ENTRY(h2_stream)	 link;		/* per where */
	TAILQ_ENTRY(h2_stream)	 tlink;		/* the timeout FIFO */
};
TAILQ_HEAD(h2_stream_list, h2_stream);

enum h2_conn_state {
	CONN_RESOLVING,
	CONN_CONNECTING,
	CONN_HANDSHAKE,
	CONN_OPEN,
	CONN_DRAINING,		/* GOAWAY received: no new streams */
	CONN_DEAD,		/* to be reaped */
};

struct h2_conn {
	struct h2client		*c;
	struct h2_origin	*origin;
	enum h2_conn_state	 state;
	int			 fd;
	SSL			*ssl;
	struct event		*ev;		/* read, and write when asked */
	bool			 want_write_ev;
	struct event		*connect_timer;
	nghttp2_session		*sess;
	struct evutil_addrinfo	*ai;		/* resolved addresses */
	struct evutil_addrinfo	*ai_next;	/* next to try */
	struct h2_dns_wait	*dns_wait;	/* a lookup in flight */
	char			 error[96];	/* why it died */
	bool			 settings_seen;	/* the server's first */
	unsigned int		 timeouts_in_row;
	struct h2_stream_list	 streams;
	char			*out;		/* frames not yet written */
	size_t			 out_len;
	size_t			 out_off;
	size_t			 out_cap;
	LIST_ENTRY(h2_conn)	 link;
};

/* What evdns calls back with. libevent 2.1 calls a cancelled lookup back
 * later, from the loop: by then the connection may be freed, so the
 * callback reaches it only through this record, which outlives it. */
struct h2_dns_wait {
	struct h2_conn		*conn;		/* NULL once it is gone */
	struct evdns_getaddrinfo_request *req;
};

struct h2_origin {
	char			*prefix;	/* "https://authority" */
	size_t			 prefix_len;
	char			*authority;	/* as in the URL */
	char			*host;		/* no brackets */
	char			 port[8];
	bool			 host_is_ip;
	struct h2_conn		*conn;		/* takes new streams */
	struct h2_stream_list	 queue;
};

struct h2client {
	struct event_base	*base;
	struct evdns_base	*dns;
	SSL_CTX			*ssl_ctx;
	struct h2client_config	 cfg;
	char			*user_agent;
	httpc_done_fn		*done;
	void			*arg;
	struct h2_origin	*origins[H2_MAX_ORIGINS];
	size_t			 norigins;
	LIST_HEAD(, h2_conn)	 conns;
	struct h2_stream_list	 timeouts;
	struct h2_stream_list	 finished;
	struct event		*timer;
	bool			 timer_armed;
	struct event		*kick;
	size_t			 in_flight;
	bool			 freeing;
};

static void	h2_conn_on_io(evutil_socket_t, short, void *);
static void	h2_conn_try_connect(struct h2_conn *);

static int64_t
h2_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- streams ---- */

static void
h2_stream_unlink(struct h2_stream *s)
{
	switch (s->where) {
	case ON_QUEUE:
		TAILQ_REMOVE(&s->origin->queue, s, link);
		break;
	case ON_CONN:
		TAILQ_REMOVE(&s->conn->streams, s, link);
		break;
	case ON_FINISHED:
		TAILQ_REMOVE(&s->c->finished, s, link);
		break;
	case ON_NONE:
		break;
	}
	s->where = ON_NONE;
}

/* The stream's answer is complete (or it failed): hand it to the done
 * list; its nghttp2 stream, if any, no longer points to it. */
static void
h2_stream_finish(struct h2_stream *s, const char *error)
{
	if (s->finished)
		return;
	if (s->conn != NULL && s->conn->sess != NULL && s->id > 0)
		nghttp2_session_set_stream_user_data(s->conn->sess, s->id,
		    NULL);
	h2_stream_unlink(s);
	TAILQ_REMOVE(&s->c->timeouts, s, tlink);
	s->finished = true;
	s->error = error;
	s->conn = NULL;
	TAILQ_INSERT_TAIL(&s->c->finished, s, link);
	s->where = ON_FINISHED;
}

static void
h2_stream_free(struct h2_stream *s)
{
	free(s->body);
	free(s);
}

/* The stream never reached the server's processing (refused, or still
 * in nghttp2's queue when its connection ended): it waits for the
 * origin's next connection, once. */
static void
h2_stream_requeue(struct h2_stream *s)
{
	if (s->conn != NULL && s->conn->sess != NULL && s->id > 0)
		nghttp2_session_set_stream_user_data(s->conn->sess, s->id,
		    NULL);
	h2_stream_unlink(s);
	s->retried = true;
	s->conn = NULL;
	s->id = 0;
	s->sent = 0;
	TAILQ_INSERT_TAIL(&s->origin->queue, s, link);
	s->where = ON_QUEUE;
	event_active(s->c->kick, EV_WRITE, 0);
}

/* Makes the done callbacks for every finished stream. A callback may send
 * new requests (they are only queued). */
static void
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
		r.latency_us = h2_now_us() - s->start_us;
		c->in_flight--;
		c->done(s->ctx, &r, c->arg);
		h2_stream_free(s);
	}
}

/* ---- connections ---- */

static void
h2_conn_fail(struct h2_conn *conn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Marks the connection dead; its streams fail, and the origin will open
 * a new connection for what comes next. Freed by h2client_reap(). */
static void
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
	if (!conn->c->freeing && strcmp(fmt, H2_DRAINED) != 0)
		log_info("http2 %s: %s", conn->origin->authority,
		    conn->error);
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

static void
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

/* Frees dead connections, and draining ones whose streams are done. */
static void
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

static const char *
h2_ssl_error(void)
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
static void
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
			h2_conn_fail(conn, "write: %s", h2_ssl_error());
			return;
		}
	}
	h2_conn_want_write(conn, false);
	if (!nghttp2_session_want_read(conn->sess) &&
	    !nghttp2_session_want_write(conn->sess))
		h2_conn_fail(conn, "session ended");
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
			h2_conn_fail(conn, "read: %s", h2_ssl_error());
			return;
		}
	}
}

/* ---- nghttp2 callbacks (no freeing, no done callbacks in here) ---- */

static int
h2_on_header(nghttp2_session *sess, const nghttp2_frame *frame,
    const uint8_t *name, size_t namelen, const uint8_t *value,
    size_t valuelen, uint8_t flags, void *arg)
{
	struct h2_stream *s;
	char tmp[64];

	(void)flags;
	(void)arg;
	if (frame->hd.type != NGHTTP2_HEADERS ||
	    (s = nghttp2_session_get_stream_user_data(sess,
	    frame->hd.stream_id)) == NULL)
		return 0;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0 &&
	    valuelen == 3 && isdigit(value[0]) && isdigit(value[1]) &&
	    isdigit(value[2]))
		s->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 +
		    (value[2] - '0');
	else if (namelen == 11 && memcmp(name, "retry-after", 11) == 0 &&
	    valuelen > 0 && valuelen < sizeof(tmp)) {
		memcpy(tmp, value, valuelen);
		tmp[valuelen] = '\0';
		if (strspn(tmp, "0123456789") == valuelen && valuelen <= 9)
			s->retry_after_s = strtoll(tmp, NULL, 10);
		else {
			/* An HTTP date. */
			time_t t = curl_getdate(tmp, NULL);

			if (t != -1)
				s->retry_after_s = t > time(NULL) ?
				    t - time(NULL) : 0;
		}
	}
	return 0;
}

static int
h2_on_data(nghttp2_session *sess, uint8_t flags, int32_t id,
    const uint8_t *data, size_t len, void *arg)
{
	struct h2_conn *conn = arg;
	struct h2_stream *s;
	size_t room, max = conn->c->cfg.max_body_bytes;

	(void)flags;
	if ((s = nghttp2_session_get_stream_user_data(sess, id)) == NULL ||
	    max == 0)
		return 0;
	if (s->body == NULL)
		s->body = xmalloc(max + 1);
	room = max - s->body_len;
	if (len > room)
		len = room;
	memcpy(s->body + s->body_len, data, len);
	s->body_len += len;
	s->body[s->body_len] = '\0';
	return 0;
}

static int
h2_on_stream_close(nghttp2_session *sess, int32_t id, uint32_t code,
    void *arg)
{
	struct h2_stream *s;

	(void)arg;
	if ((s = nghttp2_session_get_stream_user_data(sess, id)) == NULL)
		return 0;
	/* Refused before any processing (RST_STREAM REFUSED_STREAM, or
	 * beyond a GOAWAY's last stream): safe to send again, once. */
	if (code == NGHTTP2_REFUSED_STREAM && s->status == 0 &&
	    !s->retried) {
		h2_stream_requeue(s);
		return 0;
	}
	if (s->conn != NULL && s->status != 0)
		s->conn->timeouts_in_row = 0;	/* it answers */
	if (code != NGHTTP2_NO_ERROR && s->status == 0)
		h2_stream_finish(s, "stream reset by the server");
	else
		h2_stream_finish(s, NULL);
	return 0;
}

static int
h2_on_frame_recv(nghttp2_session *sess, const nghttp2_frame *frame,
    void *arg)
{
	struct h2_conn *conn = arg;

	(void)sess;
	/* Streams wait for the server's first SETTINGS: its concurrency
	 * limit may be far below the default (Apple starts token-auth
	 * connections at one stream). */
	if (frame->hd.type == NGHTTP2_SETTINGS &&
	    !(frame->hd.flags & NGHTTP2_FLAG_ACK) && !conn->settings_seen) {
		conn->settings_seen = true;
		event_active(conn->c->kick, EV_WRITE, 0);
	}
	if (frame->hd.type == NGHTTP2_GOAWAY &&
	    conn->state == CONN_OPEN) {
		conn->state = CONN_DRAINING;
		if (conn->origin->conn == conn)
			conn->origin->conn = NULL;
		if (!TAILQ_EMPTY(&conn->origin->queue))
			event_active(conn->c->kick, EV_WRITE, 0);
	}
	return 0;
}

static ssize_t
h2_read_body(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct h2_stream *s = src->ptr;
	size_t left = s->q.body_len - s->sent;

	(void)sess;
	(void)id;
	(void)arg;
	if (len > left)
		len = left;
	if (len > 0)
		memcpy(buf, s->q.body + s->sent, len);
	s->sent += len;
	if (s->sent == s->q.body_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)len;
}

/* ---- opening a connection ---- */

static void
h2_conn_session_start(struct h2_conn *conn)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_settings_entry iv[2] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20 },
	};
	nghttp2_option *opt;
	const unsigned char *alpn = NULL;
	unsigned int alpn_len = 0;
	int rv;

	SSL_get0_alpn_selected(conn->ssl, &alpn, &alpn_len);
	if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
		h2_conn_fail(conn, "the server did not offer HTTP/2 (ALPN)");
		return;
	}
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_on_header_callback(cbs, h2_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
	    h2_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
	    h2_on_stream_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
	    h2_on_frame_recv);
	nghttp2_option_new(&opt);
	nghttp2_option_set_peer_max_concurrent_streams(opt,
	    conn->c->cfg.max_streams > 0 ? conn->c->cfg.max_streams :
	    H2_DEFAULT_STREAMS);
	rv = nghttp2_session_client_new2(&conn->sess, cbs, conn, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	if (rv != 0) {
		h2_conn_fail(conn, "http2: %s", nghttp2_strerror(rv));
		return;
	}
	nghttp2_submit_settings(conn->sess, NGHTTP2_FLAG_NONE, iv, 2);
	/* A large connection window: answers are small, but many. */
	nghttp2_session_set_local_window_size(conn->sess, NGHTTP2_FLAG_NONE,
	    0, 1 << 24);
	conn->state = CONN_OPEN;
	event_del(conn->connect_timer);
	event_active(conn->c->kick, EV_WRITE, 0);
}

static void
h2_conn_handshake(struct h2_conn *conn)
{
	int n;

	ERR_clear_error();
	if ((n = SSL_do_handshake(conn->ssl)) == 1) {
		h2_conn_want_write(conn, false);
		h2_conn_session_start(conn);
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
		    conn->origin->authority, h2_ssl_error());
		break;
	}
}

static void
h2_conn_tls_start(struct h2_conn *conn)
{
	struct h2_origin *o = conn->origin;

	if ((conn->ssl = SSL_new(conn->c->ssl_ctx)) == NULL ||
	    SSL_set_fd(conn->ssl, conn->fd) != 1) {
		h2_conn_fail(conn, "TLS: %s", h2_ssl_error());
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

static void
h2_origin_connect(struct h2client *c, struct h2_origin *o)
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

/* ---- submitting ---- */

static void
h2_stream_submit(struct h2_conn *conn, struct h2_stream *s)
{
	struct h2client *c = conn->c;
	nghttp2_nv nv[H2_MAX_HEADERS];
	char names[H2_HEADER_NAMES_BYTES];
	nghttp2_data_provider dp;
	size_t n = 0, used = 0, i, k;
	const char *h, *colon, *v;
	int32_t id;

#define NV(nm, nl, vl, vll) do {					\
	nv[n].name = (uint8_t *)(nm); nv[n].namelen = (nl);		\
	nv[n].value = (uint8_t *)(vl); nv[n].valuelen = (vll);		\
	nv[n].flags = NGHTTP2_NV_FLAG_NONE; n++;			\
} while (0)
	NV(":method", 7, s->q.method != NULL ? s->q.method : "POST",
	    strlen(s->q.method != NULL ? s->q.method : "POST"));
	NV(":scheme", 7, "https", 5);
	NV(":authority", 10, s->origin->authority,
	    strlen(s->origin->authority));
	NV(":path", 5, s->path, strlen(s->path));
	if (c->user_agent != NULL)
		NV("user-agent", 10, c->user_agent, strlen(c->user_agent));
	/* HTTP/2 header names are lower case; callers write them as they
	 * would for HTTP/1.1. Checked in h2client_send. */
	for (i = 0; i < s->q.nheaders; i++) {
		h = s->q.headers[i];
		colon = strchr(h, ':');
		for (k = 0; h + k < colon; k++)
			names[used + k] = (char)tolower((unsigned char)h[k]);
		for (v = colon + 1; *v == ' '; v++)
			;
		NV(names + used, k, v, strlen(v));
		used += k;
	}
#undef NV
	dp.source.ptr = s;
	dp.read_callback = h2_read_body;
	id = nghttp2_submit_request(conn->sess, NULL, nv, n, &dp, s);
	if (id < 0) {
		h2_stream_finish(s, "could not submit the request");
		return;
	}
	s->id = id;
	s->conn = conn;
	TAILQ_INSERT_TAIL(&conn->streams, s, link);
	s->where = ON_CONN;
}

static void
h2client_arm_timer(struct h2client *c)
{
	struct h2_stream *s = TAILQ_FIRST(&c->timeouts);
	struct timeval tv;
	int64_t wait;

	if (s == NULL || c->timer_armed)
		return;
	wait = s->deadline_us - h2_now_us();
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
			h2_origin_connect(c, o);
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
	int64_t now = h2_now_us();

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

/* ---- origins ---- */

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

/* ---- the public face ---- */

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
		err_set(err, "TLS: %s", h2_ssl_error());
		goto fail;
	}
	SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_alpn_protos(c->ssl_ctx, alpn, sizeof(alpn) - 1);
	if (cfg->ca_file != NULL ?
	    SSL_CTX_load_verify_locations(c->ssl_ctx, cfg->ca_file, NULL) != 1 :
	    SSL_CTX_set_default_verify_paths(c->ssl_ctx) != 1) {
		err_set(err, "CA certificates %s: %s", cfg->ca_file != NULL ?
		    cfg->ca_file : "(system)", h2_ssl_error());
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
	s->start_us = h2_now_us();
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
