/*
 * The HTTP/2 client's insides, shared by its four files (the face is
 * h2client.h; nothing outside proxyd/transport/ includes this):
 *
 *   h2client.c    the public face: requests in, answers out (the done
 *                 callbacks), origins, the per-pass "kick" that opens
 *                 connections, submits queued streams and writes, the
 *                 timeout timer, reaping
 *   h2_conn.c     one connection: DNS (evdns), connect, TLS handshake
 *                 and I/O (non-blocking OpenSSL), failing and freeing
 *   h2_session.c  the nghttp2 session on a connection and its callbacks:
 *                 what the server's frames mean for streams
 *   h2_stream.c   one request's stream: where it waits, submitting it,
 *                 finishing it, sending it again once
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
 *
 * Nothing here logs: a connection's end is handed to the caller's
 * conn_failed callback (h2client_config), a stream's to its done
 * callback.
 */
#ifndef H2_PRIVATE_H
#define H2_PRIVATE_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/util.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "h2client.h"

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

enum h2_stream_where {
	ON_NONE,
	ON_QUEUE,		/* its origin's queue: waits for a connection */
	ON_CONN,		/* submitted on a connection */
	ON_FINISHED,		/* the client's finished list: answer ready */
};

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
	enum h2_stream_where	 where;
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

/* ---- h2client.c ------------------------------------------------------ */

/* Makes the done callbacks for every finished stream. A callback may send
 * new requests (they are only queued). */
void	h2client_deliver(struct h2client *);
/* Frees dead connections, and draining ones whose streams are done. */
void	h2client_reap(struct h2client *);

/* ---- h2_conn.c ------------------------------------------------------- */

/* Opens a connection for o (resolve, connect, handshake: one step per
 * loop callback) and makes it the one that takes o's new streams. */
void	h2_conn_open(struct h2client *, struct h2_origin *o);
/* Marks the connection dead; its streams fail (or go back to the queue
 * when they were never sent), and the origin will open a new connection
 * for what comes next. Tells the caller's conn_failed why, unless the
 * client is being freed or the connection drained. Freed by
 * h2client_reap(). */
void	h2_conn_fail(struct h2_conn *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	h2_conn_free(struct h2_conn *);
/* Writes what nghttp2 has to send, gathered into batches. */
void	h2_conn_flush(struct h2_conn *);
/* OpenSSL's last error as text (a static buffer), its queue cleared. */
const char *h2_conn_ssl_error(void);

/* ---- h2_session.c ---------------------------------------------------- */

/* The TLS handshake is done: checks ALPN and starts the nghttp2 session;
 * the connection is then open (or failed). */
void	h2_session_start(struct h2_conn *);

/* ---- h2_stream.c ----------------------------------------------------- */

void	h2_stream_unlink(struct h2_stream *);
/* The stream's answer is complete (or it failed, error a static string):
 * it goes to the finished list; its nghttp2 stream, if any, no longer
 * points to it. */
void	h2_stream_finish(struct h2_stream *, const char *error);
/* The stream never reached the server's processing (refused, or still
 * in nghttp2's queue when its connection ended): it waits for the
 * origin's next connection, once. */
void	h2_stream_requeue(struct h2_stream *);
/* Submits the stream on an open connection (or finishes it failed). */
void	h2_stream_submit(struct h2_conn *, struct h2_stream *);
void	h2_stream_free(struct h2_stream *);

#endif
