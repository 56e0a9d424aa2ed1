/*
 * Unit tests of common/httpc.c (libcurl's multi interface on the
 * libevent loop) against a fake HTTP/1.1 server in the same loop: plain
 * TCP on 127.0.0.1, an ephemeral port, the answer chosen by the
 * request's path. A 200's status and body, and what the request carried;
 * a large body sent without an Expect round trip; a pooled handle that
 * forgets the last reply; Retry-After in its forms (empty, or too large
 * to be a pause: -1); a body over max_body_bytes cut to the bound, one
 * far over it not read to its end but still the server's answer; the
 * request's timeout; a refused
 * connection; an address refused by allow_address, no connection made;
 * a scheme not allowed; no redirect followed; requests in flight
 * together on as many connections, or in turn on one kept alive; a done
 * callback that sends again; httpc_free handing back each request still
 * running, once. No callback ever comes from inside httpc_send. The loop
 * runs until a condition holds (a deadline only as a safety net), never
 * for a time.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "clock.h"
#include "httpc.h"

#define NELEM(a)		(sizeof(a) / sizeof(*(a)))
#define FAKE_MAX_CONNS		16
#define FAKE_MAX_REQS		32
#define FAKE_HEAD_BYTES		1024
#define CLIENT_MAX_DONE		32
#define SAFETY_MS		5000
#define TICK_MS			50	/* wakes the loop to check SAFETY_MS */
#define BODY_MAX_BYTES		1024	/* the client's max_body_bytes */
#define TIMEOUT_MS		200	/* test_timeout's timeout_ms */
#define ERROR_BYTES		256	/* an error kept from done */
/* httpc.c cuts off a reply this far over max_body_bytes. */
#define HTTPC_BODY_SLACK_BYTES	65536
/* A body from which curl asks "Expect: 100-continue" unless told not to
 * (1 MiB in curl 7.88; 1 KiB in older ones). */
#define CURL_EXPECT_BYTES	(1024 * 1024)

/* ---- the fake server ------------------------------------------------- */

/* The answer to path /r<i> is answers[i]; all zero: 200, body the path. */
struct fake_answer {
	int		 status;	/* 0: 200 */
	const char	*headers;	/* extra lines, each ending "\r\n" */
	const char	*body;		/* NULL: the path (or fill) */
	size_t		 fill;		/* > 0: that many bytes of 'a'..'z' */
	bool		 hold;		/* not before fake_release() */
};

struct fake_req {
	char	method[16];
	char	path[64];
	char	head[FAKE_HEAD_BYTES];	/* request line and headers */
	char	body[64];		/* its start */
	size_t	body_len;
	int	conn;			/* connection number */
};

struct fake_conn {
	struct bufferevent	*bev;	/* NULL once closed */
	int			 held;	/* request held, or -1 */
};

static struct {
	struct event_base	*base;
	struct evconnlistener	*listener;
	uint16_t		 port;
	int			 refused_fd;	/* bound, not listening */
	uint16_t		 refused_port;
	struct fake_answer	 answers[FAKE_MAX_REQS];
	struct fake_conn	 conns[FAKE_MAX_CONNS];
	int			 nconns;
	int			 nclosed;
	struct fake_req		 reqs[FAKE_MAX_REQS];
	int			 nreqs;
} F;

static const struct fake_answer *
fake_answer_of(const char *path)
{
	int i;

	if (sscanf(path, "/r%d", &i) != 1 || i < 0 || i >= FAKE_MAX_REQS)
		fail_msg("the fake has no answer for %s", path);
	return &F.answers[i];
}

static void
fake_answer(struct fake_conn *fc, const struct fake_req *rq)
{
	static const char abc[] = "abcdefghijklmnopqrstuvwxyz";
	const struct fake_answer *a = fake_answer_of(rq->path);
	struct evbuffer *out = bufferevent_get_output(fc->bev);
	const char *body = a->body != NULL ? a->body : rq->path;
	size_t len = a->fill > 0 ? a->fill : strlen(body);

	evbuffer_add_printf(out, "HTTP/1.1 %d Test\r\nContent-Length: %zu\r\n"
	    "%s\r\n", a->status != 0 ? a->status : 200, len,
	    a->headers != NULL ? a->headers : "");
	if (a->fill == 0) {
		evbuffer_add(out, body, len);
		return;
	}
	for (size_t i = 0; i < a->fill; i += 26)
		evbuffer_add(out, abc, a->fill - i < 26 ? a->fill - i : 26);
}

/* The request whose head (head_len bytes, the blank line included) and
 * body are at p; answered now or held. */
static void
fake_request(struct fake_conn *fc, const char *p, size_t head_len,
    size_t body_len)
{
	struct fake_req *rq;

	assert_true(F.nreqs < FAKE_MAX_REQS);
	rq = &F.reqs[F.nreqs];
	rq->conn = (int)(fc - F.conns);
	snprintf(rq->head, sizeof(rq->head), "%.*s", (int)head_len, p);
	snprintf(rq->body, sizeof(rq->body), "%.*s", (int)body_len,
	    p + head_len);
	rq->body_len = body_len;
	if (sscanf(rq->head, "%15s %63s", rq->method, rq->path) != 2)
		fail_msg("request line: %s", rq->head);
	if (fake_answer_of(rq->path)->hold)
		fc->held = F.nreqs;
	else
		fake_answer(fc, rq);
	F.nreqs++;
}

static size_t
fake_content_length(const char *head)
{
	const char *cl = strcasestr(head, "\r\nContent-Length:");

	return cl != NULL ? strtoul(cl + 17, NULL, 10) : 0;
}

/* Takes every complete request in turn; stops at one held. */
static void
fake_on_read(struct bufferevent *bev, void *arg)
{
	struct fake_conn *fc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char head[FAKE_HEAD_BYTES];
	struct evbuffer_ptr end;
	size_t head_len, body_len;

	while (fc->held < 0) {
		end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (end.pos < 0)
			return;
		head_len = (size_t)end.pos + 4;
		assert_true(head_len < sizeof(head));
		evbuffer_copyout(in, head, head_len);
		head[head_len] = '\0';
		body_len = fake_content_length(head);
		if (evbuffer_get_length(in) < head_len + body_len)
			return;
		fake_request(fc, (const char *)evbuffer_pullup(in,
		    (ev_ssize_t)(head_len + body_len)), head_len, body_len);
		evbuffer_drain(in, head_len + body_len);
	}
}

static void
fake_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct fake_conn *fc = arg;

	(void)what;		/* EOF or error: the client left */
	bufferevent_free(bev);
	fc->bev = NULL;
	F.nclosed++;
}

static void
fake_on_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int len, void *arg)
{
	struct fake_conn *fc;

	(void)l;
	(void)sa;
	(void)len;
	(void)arg;
	assert_true(F.nconns < FAKE_MAX_CONNS);
	fc = &F.conns[F.nconns++];
	fc->held = -1;
	fc->bev = bufferevent_socket_new(F.base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(fc->bev, fake_on_read, NULL, fake_on_event, fc);
	bufferevent_enable(fc->bev, EV_READ);
}

/* Answers every held request. */
static void
fake_release(void)
{
	for (int i = 0; i < F.nconns; i++) {
		struct fake_conn *fc = &F.conns[i];

		if (fc->bev == NULL || fc->held < 0)
			continue;
		fake_answer(fc, &F.reqs[fc->held]);
		fc->held = -1;
		fake_on_read(fc->bev, fc);
	}
}

static void
fake_start(struct event_base *base)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	F.base = base;
	F.refused_fd = -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	F.listener = evconnlistener_new_bind(base, fake_on_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
	    (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(F.listener);
	assert_int_equal(getsockname(evconnlistener_get_fd(F.listener),
	    (struct sockaddr *)&sin, &len), 0);
	F.port = ntohs(sin.sin_port);
}

/* A port of 127.0.0.1 where a connection is refused: bound (no one else
 * can take it) but not listening, so the kernel answers with a reset. */
static void
fake_refused_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	F.refused_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(F.refused_fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(F.refused_fd, (struct sockaddr *)&sin,
	    sizeof(sin)), 0);
	assert_int_equal(getsockname(F.refused_fd, (struct sockaddr *)&sin,
	    &len), 0);
	F.refused_port = ntohs(sin.sin_port);
}

static void
fake_stop(void)
{
	for (int i = 0; i < F.nconns; i++)
		if (F.conns[i].bev != NULL)
			bufferevent_free(F.conns[i].bev);
	evconnlistener_free(F.listener);
	if (F.refused_fd >= 0)
		close(F.refused_fd);
}

/* ---- the client under test ------------------------------------------- */

struct done {
	uintptr_t	 ctx;
	long		 status;
	char		 error[ERROR_BYTES];
	char		 body[BODY_MAX_BYTES + 1];
	size_t		 body_len;
	bool		 truncated;
	int64_t		 retry_after_s;
	int64_t		 latency_us;
};

static struct {
	struct event_base	*base;
	struct event		*tick;
	struct httpc		*c;
	struct httpc_config	 cfg;
	bool			 in_send;
	struct done		 done[CLIENT_MAX_DONE];
	int			 ndone;
	int			 cancelled[CLIENT_MAX_DONE];	/* by ctx */
	int			 ncancelled;
	/* The answer to resend_from sends request resend_to. */
	int			 resend_from, resend_to;
	/* allow_address's verdict, and what it was asked. */
	bool			 allow;
	int			 nasked;
	unsigned int		 asked_len;
	struct sockaddr_in	 asked;
	char			 url[CLIENT_MAX_DONE][96];
	char			 body[CLIENT_MAX_DONE][32];
} C;

static const char *const headers[] = { "X-Test: yes" };

static void send_req(uintptr_t, const char *method, const char *url);

static void
on_done(void *ctx, const struct httpc_response *r, void *arg)
{
	struct done *d;

	assert_ptr_equal(arg, &C);
	assert_false(C.in_send);	/* "called from the loop" */
	assert_true(C.ndone < CLIENT_MAX_DONE);
	assert_non_null(r->error);
	assert_non_null(r->body);
	assert_true(r->body_len <= C.cfg.max_body_bytes);
	assert_int_equal(r->body[r->body_len], '\0');
	d = &C.done[C.ndone++];
	d->ctx = (uintptr_t)ctx;
	d->status = r->status;
	snprintf(d->error, sizeof(d->error), "%s", r->error);
	memcpy(d->body, r->body, r->body_len + 1);
	d->body_len = r->body_len;
	d->truncated = r->body_truncated;
	d->retry_after_s = r->retry_after_s;
	d->latency_us = r->latency_us;
	if ((int)d->ctx == C.resend_from)
		send_req((uintptr_t)C.resend_to, NULL, C.url[C.resend_to]);
}

static void
on_cancel(void *ctx, void *arg)
{
	assert_ptr_equal(arg, &C);
	assert_true((uintptr_t)ctx < CLIENT_MAX_DONE);
	C.cancelled[(uintptr_t)ctx]++;
	C.ncancelled++;
}

/* Called inside curl: records, the test asserts afterwards. */
static bool
on_allow_address(const struct sockaddr *sa, unsigned int len, void *arg)
{
	if (arg != &C)
		return false;
	C.nasked++;
	C.asked_len = len;
	memset(&C.asked, 0, sizeof(C.asked));
	memcpy(&C.asked, sa, len < sizeof(C.asked) ? len : sizeof(C.asked));
	return C.allow;
}

static void
client_start(void)
{
	char err[ERR_LEN];

	if ((C.c = httpc_new(C.base, &C.cfg, on_done, &C, err)) == NULL)
		fail_msg("httpc_new: %s", err);
}

/* A client with C.cfg as the test changed it; nothing in flight. */
static void
client_restart(void)
{
	httpc_free(C.c, on_cancel);
	client_start();
}

/* A loop with nothing to wait for would block past the deadline. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static int
setup(void **state)
{
	struct timeval tick = { 0, TICK_MS * 1000 };

	(void)state;
	memset(&F, 0, sizeof(F));
	memset(&C, 0, sizeof(C));
	C.resend_from = -1;
	C.base = event_base_new();
	C.tick = event_new(C.base, -1, EV_PERSIST, on_tick, NULL);
	event_add(C.tick, &tick);
	fake_start(C.base);
	C.cfg.timeout_ms = SAFETY_MS;
	C.cfg.max_connections = 4;
	C.cfg.max_body_bytes = BODY_MAX_BYTES;
	C.cfg.user_agent = "httpc-test";
	C.cfg.protocols = "http";
	client_start();
	for (int i = 0; i < CLIENT_MAX_DONE; i++) {
		snprintf(C.url[i], sizeof(C.url[i]), "http://127.0.0.1:%u/r%d",
		    F.port, i);
		snprintf(C.body[i], sizeof(C.body[i]), "{\"n\":%d}", i);
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	httpc_free(C.c, on_cancel);
	fake_stop();
	event_free(C.tick);
	event_base_free(C.base);
	return 0;
}

/* Every pointer is borrowed until done. */
static void
send_body(uintptr_t ctx, const char *method, const char *url,
    const char *body, size_t body_len)
{
	struct httpc_request q;
	char err[ERR_LEN];

	memset(&q, 0, sizeof(q));
	q.method = method;
	q.url = url;
	q.headers = headers;
	q.nheaders = NELEM(headers);
	q.body = body;
	q.body_len = body_len;
	C.in_send = true;
	if (httpc_send(C.c, &q, (void *)ctx, err) != 0)
		fail_msg("httpc_send: %s", err);
	C.in_send = false;
}

/* The request's body is {"n":ctx}. */
static void
send_req(uintptr_t ctx, const char *method, const char *url)
{
	assert_true(ctx < CLIENT_MAX_DONE);
	send_body(ctx, method, url, C.body[ctx], strlen(C.body[ctx]));
}

/* Request i: POST to the fake's /r<i>, context i. */
static void
request(int i)
{
	send_req((uintptr_t)i, NULL, C.url[i]);
}

/* Runs the loop until *counter reaches n (or the safety deadline). */
static void
run_until(const int *counter, int n, const char *what)
{
	int64_t until = clock_mono_ms() + SAFETY_MS;

	while (*counter < n && clock_mono_ms() < until)
		event_base_loop(C.base, EVLOOP_ONCE);
	if (*counter < n)
		fail_msg("%d %s of %d", *counter, what, n);
}

static void
run_until_done(int n)
{
	run_until(&C.ndone, n, "answers");
}

/* One pass over what is ready now: a connection made would be accepted. */
static void
run_ready(void)
{
	event_base_loop(C.base, EVLOOP_NONBLOCK);
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

/* 200, body the path (the fake's default), no error, no Retry-After. */
static void
assert_ok(uintptr_t ctx)
{
	const struct done *d = answer_of(ctx);
	char path[16];

	snprintf(path, sizeof(path), "/r%lu", (unsigned long)ctx);
	if (d->status != 200 || strcmp(d->body, path) != 0 ||
	    d->error[0] != '\0' || d->retry_after_s != -1)
		fail_msg("request %lu: status %ld body %s error %s "
		    "retry_after %lld", (unsigned long)ctx, d->status, d->body,
		    d->error, (long long)d->retry_after_s);
}

/* A failure: no status, an error that contains want. */
static void
assert_failed(uintptr_t ctx, const char *want)
{
	const struct done *d = answer_of(ctx);

	if (d->status != 0 || strcasestr(d->error, want) == NULL ||
	    d->body_len != 0)
		fail_msg("request %lu: status %ld error \"%s\", want \"%s\"",
		    (unsigned long)ctx, d->status, d->error, want);
}

/* ---- the tests ------------------------------------------------------- */

/* A 200 hands its status and body to done; the request carried method,
 * headers, body and user agent; the next request reuses the connection
 * and may choose its method. */
static void
test_answer(void **state)
{
	const struct done *d;

	(void)state;
	F.answers[0].body = "hello";
	request(0);
	assert_int_equal(httpc_in_flight(C.c), 1);
	assert_int_equal(C.ndone, 0);
	run_until_done(1);
	d = answer_of(0);
	assert_int_equal(d->status, 200);
	assert_string_equal(d->body, "hello");
	assert_int_equal(d->body_len, 5);
	assert_string_equal(d->error, "");
	assert_int_equal(d->retry_after_s, -1);
	assert_true(d->latency_us > 0);
	assert_int_equal(httpc_in_flight(C.c), 0);

	assert_int_equal(F.nreqs, 1);
	assert_string_equal(F.reqs[0].method, "POST");
	assert_string_equal(F.reqs[0].path, "/r0");
	assert_string_equal(F.reqs[0].body, "{\"n\":0}");
	assert_non_null(strstr(F.reqs[0].head, "\r\nX-Test: yes\r\n"));
	assert_non_null(strstr(F.reqs[0].head,
	    "\r\nUser-Agent: httpc-test\r\n"));

	send_req(1, "PUT", C.url[1]);
	run_until_done(2);
	assert_ok(1);
	assert_string_equal(F.reqs[1].method, "PUT");
	assert_string_equal(F.reqs[1].body, "{\"n\":1}");
	assert_int_equal(F.nconns, 1);
}

/* A large body goes with its headers, no "Expect: 100-continue" round
 * trip (curl would wait a second for a server that does not answer
 * 100). */
static void
test_no_expect(void **state)
{
	size_t len = CURL_EXPECT_BYTES + 1;
	char *body = malloc(len);

	(void)state;
	assert_non_null(body);
	memset(body, 'b', len);
	send_body(0, NULL, C.url[0], body, len);
	run_until_done(1);
	free(body);
	assert_ok(0);
	assert_int_equal(F.reqs[0].body_len, len);
	assert_null(strcasestr(F.reqs[0].head, "\r\nExpect:"));
}

/* A handle back from the pool forgets the last reply: its status, body
 * and Retry-After. */
static void
test_pool_forgets(void **state)
{
	const struct done *d;

	(void)state;
	F.answers[0] = (struct fake_answer){ 503, "Retry-After: 120\r\n",
	    "busy", 0, false };
	request(0);
	run_until_done(1);
	d = answer_of(0);
	assert_int_equal(d->status, 503);
	assert_string_equal(d->body, "busy");
	assert_int_equal(d->retry_after_s, 120);
	request(1);
	run_until_done(2);
	assert_ok(1);
}

/* Retry-After as seconds; anything else (a date, a sign, junk, an empty
 * value, more than 9 digits as h2_session.c takes it) is unknown, -1:
 * an empty value is no pause of 0, and a huge one must not overflow a
 * caller's seconds * 1000 (push.c). */
static void
test_retry_after(void **state)
{
	static const struct {
		const char	*header;
		int64_t		 want;
	} rows[] = {
		{ "", -1 },
		{ "Retry-After: 120\r\n", 120 },
		{ "retry-after:7\r\n", 7 },
		{ "RETRY-AFTER:   30  \r\n", 30 },
		{ "Retry-After: 0\r\n", 0 },
		{ "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n", -1 },
		{ "Retry-After: -5\r\n", -1 },
		{ "Retry-After: 12s\r\n", -1 },
		{ "Retry-After:\r\n", -1 },
		{ "Retry-After-Max: 5\r\n", -1 },
		{ "Retry-After: 999999999\r\n", 999999999 },
		{ "Retry-After: 1000000000\r\n", -1 },
		{ "Retry-After: 99999999999999999999\r\n", -1 },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		F.answers[i] = (struct fake_answer){ 429, rows[i].header,
		    "slow down", 0, false };
		request((int)i);
	}
	run_until_done((int)NELEM(rows));
	for (size_t i = 0; i < NELEM(rows); i++) {
		const struct done *d = answer_of(i);

		if (d->status != 429 || strcmp(d->body, "slow down") != 0 ||
		    d->retry_after_s != rows[i].want)
			fail_msg("row %zu (%.*s): status %ld retry_after %lld, "
			    "want %lld", i, (int)strcspn(rows[i].header, "\r"),
			    rows[i].header, d->status,
			    (long long)d->retry_after_s,
			    (long long)rows[i].want);
	}
}

/* A body over max_body_bytes is cut to it, still a 200 with its start
 * kept and body_truncated set; one more than HTTPC_BODY_SLACK_BYTES over
 * it (or 1 MiB) is not read to its end, and is still the server's 200,
 * not a transport failure (a caller such as notifierd would otherwise
 * send again what was delivered); the next request works. 0 keeps
 * nothing. */
static void
test_body_bound(void **state)
{
	static const size_t fills[] = {
	    BODY_MAX_BYTES,
	    BODY_MAX_BYTES + 100,
	    BODY_MAX_BYTES + HTTPC_BODY_SLACK_BYTES + 1000,
	    1024 * 1024,
	};
	const struct done *d;

	(void)state;
	for (size_t i = 0; i < NELEM(fills); i++) {
		F.answers[i].fill = fills[i];
		request((int)i);
	}
	run_until_done((int)NELEM(fills));
	for (uintptr_t i = 0; i < NELEM(fills); i++) {
		d = answer_of(i);
		if (d->status != 200 || d->error[0] != '\0' ||
		    d->body_len != BODY_MAX_BYTES ||
		    d->truncated != (fills[i] > BODY_MAX_BYTES))
			fail_msg("row %lu (%zu bytes): status %ld error \"%s\" "
			    "kept %zu truncated %d", (unsigned long)i,
			    fills[i], d->status, d->error, d->body_len,
			    d->truncated);
		for (size_t j = 0; j < d->body_len; j++)
			if (d->body[j] != (char)('a' + j % 26))
				fail_msg("request %lu: byte %zu is %c",
				    (unsigned long)i, j, d->body[j]);
	}
	F.answers[4].body = "after";
	request(4);
	run_until_done(5);
	d = answer_of(4);
	assert_int_equal(d->status, 200);
	assert_string_equal(d->body, "after");
	assert_false(d->truncated);

	C.cfg.max_body_bytes = 0;
	client_restart();
	F.answers[5].body = "not kept";
	request(5);
	run_until_done(6);
	d = answer_of(5);
	assert_int_equal(d->status, 200);
	assert_int_equal(d->body_len, 0);
	assert_string_equal(d->body, "");
	assert_true(d->truncated);
}

/* A server that takes the request and never answers: done with status 0
 * after timeout_ms, not before; the connection is not used again. */
static void
test_timeout(void **state)
{
	const struct done *d;

	(void)state;
	C.cfg.timeout_ms = TIMEOUT_MS;
	client_restart();
	F.answers[0].hold = true;
	request(0);
	run_until_done(1);
	assert_int_equal(F.nreqs, 1);
	assert_failed(0, "timed out");
	d = answer_of(0);
	assert_true(d->latency_us >= TIMEOUT_MS * 1000);
	assert_true(d->latency_us < (TIMEOUT_MS + 1000) * 1000);
	assert_int_equal(httpc_in_flight(C.c), 0);

	request(1);
	run_until_done(2);
	assert_ok(1);
	assert_int_equal(F.nconns, 2);
	assert_int_equal(F.reqs[1].conn, 1);
}

/* Nothing listening: done with a failure, from the loop. */
static void
test_refused(void **state)
{
	char url[64];

	(void)state;
	fake_refused_port();
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/r0", F.refused_port);
	send_req(0, NULL, url);
	assert_int_equal(C.ndone, 0);
	assert_int_equal(httpc_in_flight(C.c), 1);
	run_until_done(1);
	assert_failed(0, "connect");
	assert_int_equal(httpc_in_flight(C.c), 0);
}

/* allow_address is asked with the address about to be connected; its
 * "no" fails the request with HTTPC_ADDRESS_REFUSED and no connection
 * made, its "yes" lets the next one through. */
static void
test_address_refused(void **state)
{
	(void)state;
	C.cfg.allow_address = on_allow_address;
	C.cfg.allow_address_arg = &C;
	client_restart();
	request(0);
	assert_int_equal(C.ndone, 0);
	run_until_done(1);
	assert_failed(0, HTTPC_ADDRESS_REFUSED);
	assert_string_equal(answer_of(0)->error, HTTPC_ADDRESS_REFUSED);
	assert_int_equal(C.nasked, 1);
	assert_int_equal(C.asked_len, sizeof(struct sockaddr_in));
	assert_int_equal(C.asked.sin_family, AF_INET);
	assert_int_equal(ntohl(C.asked.sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(ntohs(C.asked.sin_port), F.port);
	run_ready();
	assert_int_equal(F.nconns, 0);
	assert_int_equal(F.nreqs, 0);

	C.allow = true;
	request(1);
	run_until_done(2);
	assert_ok(1);
	assert_int_equal(C.nasked, 2);
	assert_int_equal(F.nconns, 1);
}

/* A scheme outside cfg.protocols fails from the loop, unsent; a redirect
 * is an answer, not followed. */
static void
test_scheme_and_redirect(void **state)
{
	char url[64];
	const struct done *d;

	(void)state;
	snprintf(url, sizeof(url), "https://127.0.0.1:%u/r0", F.port);
	send_req(0, NULL, url);
	assert_int_equal(C.ndone, 0);
	run_until_done(1);
	assert_failed(0, "https");
	run_ready();
	assert_int_equal(F.nconns, 0);

	F.answers[1] = (struct fake_answer){ 302, "Location: /r2\r\n",
	    "moved", 0, false };
	request(1);
	run_until_done(2);
	d = answer_of(1);
	assert_int_equal(d->status, 302);
	assert_string_equal(d->body, "moved");
	assert_int_equal(F.nreqs, 1);
}

/* Requests in flight together, each on its connection (HTTP/1.1), each
 * answer to its own ctx. */
static void
test_in_flight(void **state)
{
	(void)state;
	for (int i = 0; i < 4; i++) {
		F.answers[i].hold = true;
		request(i);
	}
	assert_int_equal(httpc_in_flight(C.c), 4);
	run_until(&F.nreqs, 4, "requests at the server");
	assert_int_equal(F.nconns, 4);
	assert_int_equal(C.ndone, 0);
	fake_release();
	run_until_done(4);
	for (int i = 0; i < 4; i++)
		assert_ok((uintptr_t)i);
	assert_int_equal(httpc_in_flight(C.c), 0);
}

/* max_connections 1: requests wait their turn on one kept-alive
 * connection. */
static void
test_one_connection(void **state)
{
	(void)state;
	C.cfg.max_connections = 1;
	client_restart();
	for (int i = 0; i < 3; i++)
		request(i);
	assert_int_equal(httpc_in_flight(C.c), 3);
	run_until_done(3);
	for (int i = 0; i < 3; i++)
		assert_ok((uintptr_t)i);
	assert_int_equal(F.nconns, 1);
	assert_int_equal(F.nreqs, 3);
}

/* The done callback may send: the new request is answered in its turn,
 * not inside the callback. */
static void
test_send_from_done(void **state)
{
	(void)state;
	C.resend_from = 0;
	C.resend_to = 1;
	request(0);
	run_until_done(2);
	assert_ok(0);
	assert_ok(1);
	assert_int_equal(C.done[1].ctx, 1);
	assert_int_equal(F.nreqs, 2);
}

/* httpc_free hands back each request still running once, whether on the
 * wire or waiting for a connection, and closes its connections. */
static void
test_free_cancels(void **state)
{
	(void)state;
	C.cfg.max_connections = 2;
	client_restart();
	for (int i = 0; i < 3; i++) {
		F.answers[i].hold = true;
		request(i);
	}
	run_until(&F.nreqs, 2, "requests at the server");
	assert_int_equal(httpc_in_flight(C.c), 3);
	httpc_free(C.c, on_cancel);
	C.c = NULL;
	assert_int_equal(C.ncancelled, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(C.cancelled[i], 1);
	assert_int_equal(C.ndone, 0);
	run_until(&F.nclosed, 2, "connections closed");
	assert_int_equal(F.nreqs, 2);
	httpc_free(NULL, on_cancel);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_expect, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pool_forgets, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_retry_after, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_body_bound, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_address_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_scheme_and_redirect,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_flight, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_one_connection, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_send_from_done, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_cancels, setup,
		    teardown),
	};

	/* The fake writes to clients that may have left (a body cut off):
	 * EPIPE, not a killed process. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
