/* Tests of what proxyd/api/ offers a load balancer: GET and HEAD /health
 * and /ready answered by the owner's probe (api_config.probe) at once,
 * the answers without one, and other methods and paths left alone; and
 * --reuse-port: two intakes with it share one port and both get
 * connections, while without it the second cannot bind and says why.
 * The loop runs in this thread: a request is written to a socket, then
 * the loop turns until the answer is in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <event2/event.h>

#include "api.h"

struct owner {
	unsigned int	 status;	/* what the probe answers */
	const char	*why;
	int		 health, ready;	/* probes asked */
	int		 handled;	/* POSTs given to the handler */
};

static unsigned int
probe(enum api_probe p, char *body, size_t size, void *arg)
{
	struct owner *o = arg;

	if (p == API_PROBE_HEALTH)
		o->health++;
	else
		o->ready++;
	snprintf(body, size, "%s %s\n", p == API_PROBE_HEALTH ? "health" :
	    "ready", o->why);
	return o->status;
}

static void
handler(struct api_request *req, enum api_route route, const char *body,
    size_t len, void *arg)
{
	struct owner *o = arg;

	(void)route;
	(void)body;
	(void)len;
	o->handled++;
	api_reply(req, 200, "handled\n");
}

static struct api *
intake(struct event_base *base, uint16_t port, bool reuse_port,
    struct owner *o, char err[ERR_LEN])
{
	struct api_config cfg = { .host = "127.0.0.1", .port = port };

	api_limits_default(&cfg.limits);
	cfg.reuse_port = reuse_port;
	if (o != NULL) {
		cfg.probe = probe;
		cfg.probe_arg = o;
	}
	return api_new(base, &cfg, handler, o, err);
}

/* Sends an HTTP/1.0 request (the server closes after its answer) and
 * turns the loop until the whole answer is in: its text, in out. */
static void
ask(struct event_base *base, uint16_t port, const char *request, char *out,
    size_t size)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct timeval slice = { 0, 5000 };
	size_t len = 0;
	ssize_t n;
	int s, i;

	sin.sin_port = htons(port);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	s = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(write(s, request, strlen(request)),
	    (ssize_t)strlen(request));
	for (i = 0; i < 1000; i++) {
		event_base_loopexit(base, &slice);
		event_base_dispatch(base);
		while ((n = recv(s, out + len, size - 1 - len,
		    MSG_DONTWAIT)) > 0)
			len += (size_t)n;
		if (n == 0)
			break;		/* closed: all in */
	}
	out[len] = '\0';
	close(s);
	assert_true(i < 1000);
}

/* The answer's status line and body. */
static void
assert_answer(const char *answer, const char *status_line, const char *body)
{
	const char *b = strstr(answer, "\r\n\r\n");

	if (strncmp(answer, status_line, strlen(status_line)) != 0)
		fail_msg("answer %s, want %s", answer, status_line);
	assert_non_null(b);
	assert_string_equal(b + 4, body);
}

static void
test_probes(void **state)
{
	struct event_base *base = event_base_new();
	struct owner o = { .status = 200, .why = "fine" };
	struct api *a;
	char err[ERR_LEN], answer[1024], longer[API_PROBE_BODY_MAX + 100];
	uint16_t port;

	(void)state;
	a = intake(base, 0, false, &o, err);
	assert_non_null(a);
	port = api_port(a);

	ask(base, port, "GET /health HTTP/1.0\r\n\r\n", answer,
	    sizeof(answer));
	assert_answer(answer, "HTTP/1.1 200 ", "health fine\n");
	ask(base, port, "GET /ready HTTP/1.0\r\n\r\n", answer, sizeof(answer));
	assert_answer(answer, "HTTP/1.1 200 ", "ready fine\n");
	assert_int_equal(o.health, 1);
	assert_int_equal(o.ready, 1);
	/* The owner's status goes through as it is; a query is no other
	 * path. */
	o.status = 503;
	o.why = "stopping";
	ask(base, port, "GET /health?from=haproxy HTTP/1.0\r\n\r\n", answer,
	    sizeof(answer));
	assert_answer(answer, "HTTP/1.1 503 ", "health stopping\n");
	/* HEAD: the same status, no body. */
	ask(base, port, "HEAD /ready HTTP/1.0\r\n\r\n", answer, sizeof(answer));
	assert_answer(answer, "HTTP/1.1 503 ", "");
	assert_int_equal(o.ready, 2);
	/* Other methods, and other paths, are not probes. */
	ask(base, port, "POST /health HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
	    answer, sizeof(answer));
	assert_answer(answer, "HTTP/1.1 404 ", "not found\n");
	ask(base, port, "GET /healthz HTTP/1.0\r\n\r\n", answer,
	    sizeof(answer));
	assert_answer(answer, "HTTP/1.1 404 ", "not found\n");
	ask(base, port, "GET / HTTP/1.0\r\n\r\n", answer, sizeof(answer));
	assert_answer(answer, "HTTP/1.1 200 ", "Hello, world!");
	assert_int_equal(o.health, 2);
	assert_int_equal(o.handled, 0);
	/* The owner's words are cut to API_PROBE_BODY_MAX. */
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	o.status = 200;
	o.why = longer;
	ask(base, port, "GET /health HTTP/1.0\r\n\r\n", answer,
	    sizeof(answer));
	assert_int_equal(strlen(strstr(answer, "\r\n\r\n") + 4),
	    API_PROBE_BODY_MAX - 1);
	api_free(a);

	/* No probe: an intake that answers is all there is to know. */
	a = intake(base, 0, false, NULL, err);
	assert_non_null(a);
	ask(base, api_port(a), "GET /health HTTP/1.0\r\n\r\n", answer,
	    sizeof(answer));
	assert_answer(answer, "HTTP/1.1 200 ", "ok\n");
	ask(base, api_port(a), "GET /ready HTTP/1.0\r\n\r\n", answer,
	    sizeof(answer));
	assert_answer(answer, "HTTP/1.1 200 ", "ready\n");
	api_free(a);
	event_base_free(base);
}

/* Two intakes with reuse_port on one port, as two processes would be:
 * the kernel spreads new connections between them, by a hash of the
 * peer's address and port. */
static void
test_reuse_port(void **state)
{
	struct event_base *base = event_base_new();
	struct owner o1 = { .status = 200, .why = "one" };
	struct owner o2 = { .status = 200, .why = "two" };
	struct api *a1, *a2, *a3;
	char err[ERR_LEN], answer[1024];
	uint16_t port;
	int i;

	(void)state;
	a1 = intake(base, 0, true, &o1, err);
	assert_non_null(a1);
	port = api_port(a1);
	a2 = intake(base, port, true, &o2, err);
	if (a2 == NULL)
		fail_msg("second intake with reuse_port: %s", err);
	assert_int_equal(api_port(a2), port);
	for (i = 0; i < 64; i++) {
		ask(base, port, "GET /health HTTP/1.0\r\n\r\n", answer,
		    sizeof(answer));
		assert_answer(answer, "HTTP/1.1 200 ", strstr(answer,
		    "health one") != NULL ? "health one\n" : "health two\n");
	}
	assert_int_equal(o1.health + o2.health, 64);
	/* 2^-63 that all went to one of them. */
	assert_true(o1.health > 0);
	assert_true(o2.health > 0);

	/* A third without it is refused, and told why. */
	a3 = intake(base, port, false, NULL, err);
	assert_null(a3);
	assert_non_null(strstr(err, "Address already in use"));
	assert_non_null(strstr(err, "--reuse-port"));
	api_free(a2);
	api_free(a1);
	event_base_free(base);
}

/* Without reuse_port the port stays one intake's: the second cannot bind,
 * and the error says what would share it. */
static void
test_port_taken(void **state)
{
	struct event_base *base = event_base_new();
	struct api *a1, *a2;
	char err[ERR_LEN];

	(void)state;
	a1 = intake(base, 0, false, NULL, err);
	assert_non_null(a1);
	a2 = intake(base, api_port(a1), false, NULL, err);
	assert_null(a2);
	assert_non_null(strstr(err, "cannot listen on 127.0.0.1:"));
	assert_non_null(strstr(err, "Address already in use"));
	assert_non_null(strstr(err, "each has --reuse-port"));
	/* One with it cannot join one without it either. */
	a2 = intake(base, api_port(a1), true, NULL, err);
	assert_null(a2);
	assert_non_null(strstr(err, "without --reuse-port"));
	api_free(a1);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probes),
		cmocka_unit_test(test_reuse_port),
		cmocka_unit_test(test_port_taken),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
