/*
 * Unit tests of proxyd/transport/h2client.c and the files behind it,
 * against a fake HTTP/2 peer in the same event loop (TLS with a
 * certificate made for the test, an nghttp2 server session, behaviour
 * chosen per test): answers with their status, body and Retry-After;
 * one connection for many requests, none sent before the peer's
 * SETTINGS allow it; a refused stream sent again once; GOAWAY's
 * unprocessed streams on a new connection; a connection closed under
 * its streams; a peer without HTTP/2; requests abandoned at the end.
 * The loop runs until a condition holds (a deadline only as a safety
 * net), never for a time.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "h2client.h"

#define PEER_MAX_CONNS		8
#define PEER_MAX_REQS		32
#define PEER_BODY		"{\"ok\":1}"
#define CLIENT_MAX_DONE		32
#define SAFETY_MS		10000

/* ---- the fake peer --------------------------------------------------- */

enum peer_mode {
	PEER_ANSWER,		/* 200, body, Retry-After: 7 */
	PEER_HOLD,		/* never answers */
	PEER_REFUSE_FIRST,	/* REFUSED_STREAM to a path's first try */
	PEER_REFUSE_ALL,	/* REFUSED_STREAM always */
	PEER_GOAWAY,		/* on the first connection: hold until
				 * goaway_after requests, then GOAWAY past
				 * the first one and answer it */
	PEER_CLOSE,		/* close the connection on a request */
};

struct peer_stream {
	char	path[64];
};

struct peer_conn {
	struct peer		*p;
	/* The streams' records, kept until the connection is freed. */
	struct peer_stream	 streams[PEER_MAX_REQS];
	int			 nstreams;
	int			 fd;
	SSL			*ssl;
	nghttp2_session		*h2;
	struct event		*ev;
	int			 index;		/* connection number */
	int			 requests;
	int			 open;		/* streams open now */
	int32_t			 held[PEER_MAX_REQS];
	int			 nheld;
	bool			 goaway_sent;
	bool			 closing;
};

struct peer {
	struct event_base	*base;
	SSL_CTX			*ctx;
	int			 lfd;
	struct event		*lev;
	uint16_t		 port;
	enum peer_mode		 mode;
	bool			 no_h2;		/* ALPN without h2 */
	uint32_t		 max_streams;	/* SETTINGS; 0: none sent */
	int			 goaway_after;
	struct peer_conn	*conns[PEER_MAX_CONNS];
	int			 nconns;
	/* Every complete request, in arrival order. */
	char			 paths[PEER_MAX_REQS][64];
	int			 conn_of[PEER_MAX_REQS];
	int			 nreqs;
	int			 max_open;	/* most streams open at once */
	bool			 lower_case_names;
};

static struct peer P;
static char dir[64];

static void
sh(const char *cmd)
{
	char line[1024];

	snprintf(line, sizeof(line), "cd %s && %s", dir, cmd);
	if (system(line) != 0)
		fail_msg("command failed: %s", line);
}

static void
peer_flush(struct peer_conn *pc)
{
	const uint8_t *data;
	ssize_t n;
	int w, off;

	while ((n = nghttp2_session_mem_send(pc->h2, &data)) > 0)
		for (off = 0; off < n; off += w)
			while ((w = SSL_write(pc->ssl, data + off,
			    (int)(n - off))) <= 0) {
				struct pollfd pfd = { pc->fd, POLLOUT, 0 };

				if (SSL_get_error(pc->ssl, w) !=
				    SSL_ERROR_WANT_WRITE)
					return;
				poll(&pfd, 1, 1000);
			}
}

static void
peer_conn_close(struct peer_conn *pc)
{
	if (pc->fd < 0)
		return;
	event_free(pc->ev);
	if (pc->h2 != NULL)
		nghttp2_session_del(pc->h2);
	SSL_free(pc->ssl);
	close(pc->fd);
	pc->fd = -1;
	pc->h2 = NULL;
}

static ssize_t
peer_read_body(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	size_t n = strlen(PEER_BODY);

	(void)h2;
	(void)id;
	(void)src;
	(void)arg;
	assert_true(len >= n);
	memcpy(buf, PEER_BODY, n);
	*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static void
peer_answer(struct peer_conn *pc, int32_t id)
{
	static const nghttp2_nv nv[] = {
		{ (uint8_t *)":status", (uint8_t *)"200", 7, 3, 0 },
		{ (uint8_t *)"retry-after", (uint8_t *)"7", 11, 1, 0 },
	};
	nghttp2_data_provider dp = { { 0 }, peer_read_body };

	assert_int_equal(nghttp2_submit_response(pc->h2, id, nv, 2, &dp), 0);
}

/* Whether the path came before (a refused stream sent again). */
static bool
peer_seen(const char *path, int before)
{
	for (int i = 0; i < before; i++)
		if (strcmp(P.paths[i], path) == 0)
			return true;
	return false;
}

static void
peer_request(struct peer_conn *pc, int32_t id, const char *path)
{
	int n = P.nreqs++;

	assert_true(n < PEER_MAX_REQS);
	snprintf(P.paths[n], sizeof(P.paths[n]), "%s", path);
	P.conn_of[n] = pc->index;
	pc->requests++;
	switch (P.mode) {
	case PEER_ANSWER:
		peer_answer(pc, id);
		break;
	case PEER_HOLD:
		break;
	case PEER_REFUSE_FIRST:
	case PEER_REFUSE_ALL:
		if (P.mode == PEER_REFUSE_ALL || !peer_seen(path, n))
			nghttp2_submit_rst_stream(pc->h2, NGHTTP2_FLAG_NONE,
			    id, NGHTTP2_REFUSED_STREAM);
		else
			peer_answer(pc, id);
		break;
	case PEER_GOAWAY:
		if (pc->index > 0) {
			peer_answer(pc, id);
			break;
		}
		pc->held[pc->nheld++] = id;
		if (pc->requests == P.goaway_after) {
			nghttp2_submit_goaway(pc->h2, NGHTTP2_FLAG_NONE,
			    pc->held[0], NGHTTP2_NO_ERROR, NULL, 0);
			pc->goaway_sent = true;
			peer_answer(pc, pc->held[0]);
		}
		break;
	case PEER_CLOSE:
		pc->closing = true;
		break;
	}
}

static int
peer_on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame,
    void *arg)
{
	struct peer_conn *pc = arg;

	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	assert_true(pc->nstreams < PEER_MAX_REQS);
	nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id,
	    &pc->streams[pc->nstreams++]);
	if (++pc->open > P.max_open)
		P.max_open = pc->open;
	return 0;
}

static int
peer_on_header(nghttp2_session *h2, const nghttp2_frame *frame,
    const uint8_t *name, size_t namelen, const uint8_t *value,
    size_t valuelen, uint8_t flags, void *arg)
{
	struct peer_stream *st;

	(void)flags;
	(void)arg;
	if ((st = nghttp2_session_get_stream_user_data(h2,
	    frame->hd.stream_id)) == NULL)
		return 0;
	if (namelen == 5 && memcmp(name, ":path", 5) == 0)
		snprintf(st->path, sizeof(st->path), "%.*s", (int)valuelen,
		    value);
	if (namelen == 10 && memcmp(name, "apns-topic", 10) == 0)
		P.lower_case_names = true;
	return 0;
}

static int
peer_on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame,
    void *arg)
{
	struct peer_stream *st;

	if ((frame->hd.type == NGHTTP2_HEADERS ||
	    frame->hd.type == NGHTTP2_DATA) &&
	    (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    (st = nghttp2_session_get_stream_user_data(h2,
	    frame->hd.stream_id)) != NULL)
		peer_request(arg, frame->hd.stream_id, st->path);
	return 0;
}

static int
peer_on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code,
    void *arg)
{
	struct peer_conn *pc = arg;
	struct peer_stream *st = nghttp2_session_get_stream_user_data(h2, id);

	(void)code;
	if (st != NULL)
		pc->open--;
	return 0;
}

static void
peer_session_start(struct peer_conn *pc)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_settings_entry iv = { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
	    P.max_streams };

	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
	    peer_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, peer_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
	    peer_on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
	    peer_on_stream_close);
	assert_int_equal(nghttp2_session_server_new(&pc->h2, cbs, pc), 0);
	nghttp2_session_callbacks_del(cbs);
	nghttp2_submit_settings(pc->h2, NGHTTP2_FLAG_NONE, &iv,
	    P.max_streams > 0 ? 1 : 0);
	peer_flush(pc);
}

static void
peer_on_io(evutil_socket_t fd, short what, void *arg)
{
	struct peer_conn *pc = arg;
	uint8_t buf[16384];
	int n;

	(void)fd;
	(void)what;
	if (pc->h2 == NULL) {
		ERR_clear_error();
		if ((n = SSL_accept(pc->ssl)) != 1) {
			if (SSL_get_error(pc->ssl, n) != SSL_ERROR_WANT_READ &&
			    SSL_get_error(pc->ssl, n) != SSL_ERROR_WANT_WRITE)
				peer_conn_close(pc);
			return;
		}
		if (P.no_h2) {
			SSL_shutdown(pc->ssl);
			peer_conn_close(pc);
			return;
		}
		peer_session_start(pc);
	}
	for (;;) {
		ERR_clear_error();
		n = SSL_read(pc->ssl, buf, sizeof(buf));
		if (n <= 0) {
			if (SSL_get_error(pc->ssl, n) != SSL_ERROR_WANT_READ)
				peer_conn_close(pc);	/* the client left */
			return;
		}
		if (nghttp2_session_mem_recv(pc->h2, buf, (size_t)n) < 0) {
			peer_conn_close(pc);
			return;
		}
		peer_flush(pc);
		if (pc->closing) {
			SSL_shutdown(pc->ssl);
			peer_conn_close(pc);
			return;
		}
	}
}

static void
peer_on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct peer_conn *pc;
	int cfd;

	(void)what;
	(void)arg;
	if ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK)) < 0)
		return;
	assert_true(P.nconns < PEER_MAX_CONNS);
	pc = calloc(1, sizeof(*pc));
	pc->p = &P;
	pc->fd = cfd;
	pc->index = P.nconns;
	P.conns[P.nconns++] = pc;
	pc->ssl = SSL_new(P.ctx);
	SSL_set_fd(pc->ssl, cfd);
	SSL_set_accept_state(pc->ssl);
	pc->ev = event_new(P.base, cfd, EV_READ | EV_PERSIST, peer_on_io, pc);
	event_add(pc->ev, NULL);
}

static int
peer_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	if (P.no_h2)
		return SSL_TLSEXT_ERR_NOACK;
	for (unsigned int i = 0; i + 2 < inlen + 0u; i += 1u + in[i])
		if (in[i] == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
			*out = in + i + 1;
			*outlen = 2;
			return SSL_TLSEXT_ERR_OK;
		}
	return SSL_TLSEXT_ERR_NOACK;
}

static void
peer_start(struct event_base *base)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char path[128];

	P.base = base;
	P.ctx = SSL_CTX_new(TLS_server_method());
	snprintf(path, sizeof(path), "%s/cert.pem", dir);
	assert_int_equal(SSL_CTX_use_certificate_file(P.ctx, path,
	    SSL_FILETYPE_PEM), 1);
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(P.ctx, path,
	    SSL_FILETYPE_PEM), 1);
	SSL_CTX_set_alpn_select_cb(P.ctx, peer_alpn, NULL);
	P.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(P.lfd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	assert_int_equal(listen(P.lfd, 16), 0);
	getsockname(P.lfd, (struct sockaddr *)&sin, &len);
	P.port = ntohs(sin.sin_port);
	P.lev = event_new(base, P.lfd, EV_READ | EV_PERSIST, peer_on_accept,
	    NULL);
	event_add(P.lev, NULL);
}

static void
peer_stop(void)
{
	for (int i = 0; i < P.nconns; i++) {
		peer_conn_close(P.conns[i]);
		free(P.conns[i]);
	}
	event_free(P.lev);
	close(P.lfd);
	SSL_CTX_free(P.ctx);
}

/* ---- the client under test ------------------------------------------- */

struct done {
	uintptr_t	 ctx;
	long		 status;
	char		 error[96];
	char		 body[64];
	int64_t		 retry_after_s;
};

static struct {
	struct event_base	*base;
	struct h2client		*c;
	struct done		 done[CLIENT_MAX_DONE];
	int			 ndone;
	uintptr_t		 cancelled[CLIENT_MAX_DONE];
	int			 ncancelled;
	char			 conn_failed[4][128];
	int			 nconn_failed;
	char			 url[8][96];
	const char		*headers[2];
} C;

static void
on_done(void *ctx, const struct httpc_response *r, void *arg)
{
	struct done *d = &C.done[C.ndone++];

	(void)arg;
	assert_true(C.ndone <= CLIENT_MAX_DONE);
	d->ctx = (uintptr_t)ctx;
	d->status = r->status;
	snprintf(d->error, sizeof(d->error), "%s", r->error);
	snprintf(d->body, sizeof(d->body), "%.*s", (int)r->body_len, r->body);
	d->retry_after_s = r->retry_after_s;
}

static void
on_cancel(void *ctx, void *arg)
{
	(void)arg;
	C.cancelled[C.ncancelled++] = (uintptr_t)ctx;
}

static void
on_conn_failed(const char *authority, const char *why, void *arg)
{
	(void)arg;
	assert_true(C.nconn_failed < 4);
	snprintf(C.conn_failed[C.nconn_failed++], sizeof(C.conn_failed[0]),
	    "%s: %s", authority, why);
}

static int
setup(void **state)
{
	struct h2client_config cfg;
	char err[ERR_LEN], ca[128];

	(void)state;
	memset(&P, 0, sizeof(P));
	memset(&C, 0, sizeof(C));
	C.base = event_base_new();
	peer_start(C.base);
	memset(&cfg, 0, sizeof(cfg));
	snprintf(ca, sizeof(ca), "%s/cert.pem", dir);
	cfg.ca_file = ca;
	cfg.timeout_ms = SAFETY_MS;
	cfg.max_body_bytes = 4096;
	cfg.user_agent = "test";
	cfg.conn_failed = on_conn_failed;
	if ((C.c = h2client_new(C.base, &cfg, on_done, NULL, err)) == NULL)
		fail_msg("h2client_new: %s", err);
	C.headers[0] = "Content-Type: application/json";
	C.headers[1] = "apns-topic: chat.delta";
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	h2client_free(C.c, on_cancel);
	peer_stop();
	event_base_free(C.base);
	return 0;
}

/* Request number i to path /r<i>, context i. */
static void
request(int i)
{
	struct httpc_request q;
	char err[ERR_LEN];

	snprintf(C.url[i], sizeof(C.url[i]), "https://127.0.0.1:%u/r%d",
	    P.port, i);
	memset(&q, 0, sizeof(q));
	q.url = C.url[i];
	q.headers = C.headers;
	q.nheaders = 2;
	q.body = "{}";
	q.body_len = 2;
	if (h2client_send(C.c, &q, (void *)(uintptr_t)i, err) != 0)
		fail_msg("h2client_send: %s", err);
}

/* Runs the loop until n answers came (or the safety deadline). */
static void
run_until_done(int n)
{
	int64_t until = clock_mono_ms() + SAFETY_MS;

	while (C.ndone < n && clock_mono_ms() < until)
		event_base_loop(C.base, EVLOOP_ONCE);
	if (C.ndone < n)
		fail_msg("%d answers of %d", C.ndone, n);
}

static void
run_until_requests(int n)
{
	int64_t until = clock_mono_ms() + SAFETY_MS;

	while (P.nreqs < n && clock_mono_ms() < until)
		event_base_loop(C.base, EVLOOP_ONCE);
	if (P.nreqs < n)
		fail_msg("the peer saw %d requests of %d", P.nreqs, n);
}

static const struct done *
answer_of(uintptr_t ctx)
{
	for (int i = 0; i < C.ndone; i++)
		if (C.done[i].ctx == ctx)
			return &C.done[i];
	fail_msg("no answer for %lu", (unsigned long)ctx);
	return NULL;
}

static void
assert_ok(uintptr_t ctx)
{
	const struct done *d = answer_of(ctx);

	if (d->status != 200 || strcmp(d->body, PEER_BODY) != 0 ||
	    d->error[0] != '\0')
		fail_msg("request %lu: status %ld body %s error %s",
		    (unsigned long)ctx, d->status, d->body, d->error);
	assert_int_equal(d->retry_after_s, 7);
}

/* ---- the tests ------------------------------------------------------- */

/* Requests of one pass share one connection; answers carry status, body
 * and Retry-After; header names go lower case. */
static void
test_answers(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++)
		request(i);
	assert_int_equal(h2client_in_flight(C.c), 3);
	assert_int_equal(C.ndone, 0);	/* never from inside send */
	run_until_done(3);
	for (int i = 0; i < 3; i++)
		assert_ok((uintptr_t)i);
	assert_int_equal(h2client_in_flight(C.c), 0);
	assert_int_equal(P.nconns, 1);
	assert_string_equal(P.paths[0], "/r0");
	assert_true(P.lower_case_names);
	/* Later requests reuse it. */
	request(3);
	run_until_done(4);
	assert_ok(3);
	assert_int_equal(P.nconns, 1);
	assert_int_equal(C.nconn_failed, 0);
}

/* The peer's SETTINGS allow one stream: the others wait their turn. */
static void
test_concurrency_limit(void **state)
{
	(void)state;
	P.max_streams = 1;
	for (int i = 0; i < 5; i++)
		request(i);
	run_until_done(5);
	for (int i = 0; i < 5; i++)
		assert_ok((uintptr_t)i);
	assert_int_equal(P.max_open, 1);
	assert_int_equal(P.nconns, 1);
}

/* REFUSED_STREAM means unprocessed: sent again, once. */
static void
test_refused(void **state)
{
	const struct done *d;

	(void)state;
	P.mode = PEER_REFUSE_FIRST;
	request(0);
	request(1);
	run_until_done(2);
	assert_ok(0);
	assert_ok(1);
	assert_int_equal(P.nreqs, 4);
	assert_int_equal(P.nconns, 1);

	P.mode = PEER_REFUSE_ALL;
	request(2);
	run_until_done(3);
	d = answer_of(2);
	assert_int_equal(d->status, 0);
	assert_string_equal(d->error, "stream reset by the server");
	assert_int_equal(P.nreqs, 6);		/* two tries */
}

/* GOAWAY: what the peer did not process goes out on a new connection,
 * the rest finishes on the old one. */
static void
test_goaway(void **state)
{
	(void)state;
	P.mode = PEER_GOAWAY;
	P.goaway_after = 3;
	for (int i = 0; i < 3; i++)
		request(i);
	run_until_done(3);
	for (int i = 0; i < 3; i++)
		assert_ok((uintptr_t)i);
	assert_int_equal(P.nconns, 2);
	assert_int_equal(P.conns[0]->requests, 3);
	assert_int_equal(P.conns[1]->requests, 2);
	/* Drained after GOAWAY: not a failure to tell. */
	if (C.nconn_failed != 0)
		fail_msg("told: %s", C.conn_failed[0]);
	request(3);
	run_until_done(4);
	assert_ok(3);
	assert_int_equal(P.conns[1]->requests, 3);
}

/* A connection that ends under its streams fails them and says why;
 * the next request opens a new one. */
static void
test_closed_by_peer(void **state)
{
	char authority[32];
	const struct done *d;

	(void)state;
	P.mode = PEER_CLOSE;
	request(0);
	run_until_done(1);
	d = answer_of(0);
	assert_int_equal(d->status, 0);
	assert_string_equal(d->error, "connection failed");
	assert_int_equal(C.nconn_failed, 1);
	snprintf(authority, sizeof(authority), "127.0.0.1:%u: ", P.port);
	assert_memory_equal(C.conn_failed[0], authority, strlen(authority));
	assert_true(strlen(C.conn_failed[0]) > strlen(authority));

	P.mode = PEER_ANSWER;
	request(1);
	run_until_done(2);
	assert_ok(1);
	assert_int_equal(P.nconns, 2);
}

/* No HTTP/2 at the other end: the requests that waited for the
 * connection fail, and the caller is told why. */
static void
test_no_h2(void **state)
{
	const struct done *d;
	char want[96];

	(void)state;
	P.no_h2 = true;
	request(0);
	request(1);
	run_until_done(2);
	d = answer_of(1);
	assert_int_equal(d->status, 0);
	assert_string_equal(d->error, "no connection");
	assert_int_equal(C.nconn_failed, 1);
	snprintf(want, sizeof(want), "127.0.0.1:%u: the server did not offer "
	    "HTTP/2 (ALPN)", P.port);
	assert_string_equal(C.conn_failed[0], want);
	assert_int_equal(P.nreqs, 0);
}

/* h2client_free hands back what is still running, once each. */
static void
test_free_cancels(void **state)
{
	(void)state;
	P.mode = PEER_HOLD;
	request(0);
	request(1);
	run_until_requests(2);
	assert_int_equal(h2client_in_flight(C.c), 2);
	h2client_free(C.c, on_cancel);
	C.c = NULL;
	assert_int_equal(C.ncancelled, 2);
	assert_true(C.cancelled[0] + C.cancelled[1] == 1);
	assert_int_equal(C.ndone, 0);
	assert_int_equal(C.nconn_failed, 0);	/* not at the end */
}

static int
group_setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/test_h2client.XXXXXX");
	assert_non_null(mkdtemp(dir));
	sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	    "-nodes -days 1 -subj /CN=127.0.0.1 "
	    "-addext subjectAltName=IP:127.0.0.1 -keyout key.pem "
	    "-out cert.pem 2>/dev/null");
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	sh("rm -f key.pem cert.pem");
	rmdir(dir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_answers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_concurrency_limit,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_goaway, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_closed_by_peer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_h2, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_cancels, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
