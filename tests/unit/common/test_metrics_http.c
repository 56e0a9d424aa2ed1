/* Unit tests of common/metrics_http.c on a loopback port: what a scrape
 * is answered (one request per connection: the deadline is the
 * connection's), and the connection bound: with
 * METRICS_HTTP_MAX_CONNECTIONS held, the next connection waits in the
 * backlog, counted, and is answered as soon as one closes. The deadline
 * and running out of descriptors take seconds and a process of their
 * own: tests/e2e/daemons/test_metadata_dictd_bounds.py. */
#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "metrics.h"
#include "metrics_http.h"

/* A wait for the listener's thread: polled, with this deadline. */
#define WAIT_MS		10000
#define POLL_MS		5

/* Log lines of the listener's thread that announce a pause at the
 * connection bound. */
static atomic_int full_lines;

static void
count_lines(enum log_level level, const char *line, void *arg)
{
	(void)level;
	(void)arg;
	if (strstr(line, "metrics listener at ") != NULL)
		atomic_fetch_add(&full_lines, 1);
}

struct fixture {
	struct metrics		*m;
	struct metrics_http	*mh;
	uint16_t		 port;
};

/* A port the kernel just gave out and took back (a small race, as the
 * e2e harness's free_tcp_port). */
static uint16_t
free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int s = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(s >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &len), 0);
	close(s);
	return ntohs(sin.sin_port);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char addr[32], err[ERR_LEN];

	assert_non_null(f);
	f->m = metrics_new();
	metric_add(metrics_counter(f->m, "test_things", "Things", NULL), 5);
	atomic_store(&full_lines, 0);
	log_set_sink(count_lines, NULL);
	f->port = free_port();
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", f->port);
	f->mh = metrics_http_start(f->m, addr, err);
	if (f->mh == NULL)
		fail_msg("metrics_http_start: %s", err);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	metrics_http_stop(f->mh);
	log_set_sink(NULL, NULL);
	metrics_free(f->m);
	free(f);
	return 0;
}

static int
connect_to(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct timeval tv = { WAIT_MS / 1000, 0 };
	int s = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(s >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	assert_int_equal(connect(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return s;
}

static void
send_all(int s, const char *req)
{
	assert_int_equal(send(s, req, strlen(req), MSG_NOSIGNAL),
	    (ssize_t)strlen(req));
}

/* Everything until the server closes, NUL-terminated (caller frees);
 * fails on the receive timeout. */
static char *
read_to_close(int s)
{
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap);
	ssize_t n;

	assert_non_null(buf);
	while ((n = recv(s, buf + len, cap - len - 1, 0)) > 0) {
		len += (size_t)n;
		if (len + 1 == cap)
			assert_non_null(buf = realloc(buf, cap *= 2));
	}
	if (n < 0)
		fail_msg("recv: %s after %zu bytes", strerror(errno), len);
	buf[len] = '\0';
	return buf;
}

static char *
request(uint16_t port, const char *req)
{
	int s = connect_to(port);
	char *answer;

	send_all(s, req);
	answer = read_to_close(s);
	close(s);
	return answer;
}

/* A counter of the registry, from its exposition. */
static long long
counter_value(struct metrics *m, const char *name)
{
	size_t len;
	char *text = metrics_render(m, &len), *p, want[128];
	long long v = -1;

	snprintf(want, sizeof(want), "\n%s_total ", name);
	if ((p = strstr(text, want)) != NULL)
		v = strtoll(p + strlen(want), NULL, 10);
	free(text);
	return v;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	nanosleep(&ts, NULL);
}

static void
test_scrape(void **state)
{
	struct fixture *f = *state;
	char *a;

	a = request(f->port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_non_null(strstr(a, "HTTP/1.1 200 "));
	assert_non_null(strstr(a, "\r\nContent-Type: "
	    "application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"));
	/* One request per connection, said and done (read_to_close saw
	 * the server close it). */
	assert_non_null(strstr(a, "\r\nConnection: close\r\n"));
	assert_non_null(strstr(a, "\ntest_things_total 5\n"));
	assert_non_null(strstr(a, "\nmetrics_http_timeouts_total 0\n"));
	assert_int_equal(strcmp(a + strlen(a) - 6, "# EOF\n"), 0);
	free(a);
	a = request(f->port, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_non_null(strstr(a, "HTTP/1.1 404 "));
	free(a);
	a = request(f->port, "POST /metrics HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 3\r\n\r\nabc");
	assert_non_null(strstr(a, "HTTP/1.1 405 "));
	free(a);
}

static void
test_connection_bound(void **state)
{
	struct fixture *f = *state;
	int held[METRICS_HTTP_MAX_CONNECTIONS], s, i, waited;
	char c, *a;

	for (i = 0; i < METRICS_HTTP_MAX_CONNECTIONS; i++)
		held[i] = connect_to(f->port);	/* sending nothing */
	for (waited = 0; counter_value(f->m,
	    "metrics_http_connection_limit_pauses") < 1; waited += POLL_MS) {
		if (waited > WAIT_MS)
			fail_msg("the listener did not pause at %d "
			    "connections", METRICS_HTTP_MAX_CONNECTIONS);
		sleep_ms(POLL_MS);
	}
	s = connect_to(f->port);		/* in the backlog */
	send_all(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	/* Not taken: nothing answered it (it would be at once). */
	assert_int_equal(recv(s, &c, 1, MSG_DONTWAIT), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	close(held[0]);
	a = read_to_close(s);
	assert_non_null(strstr(a, "HTTP/1.1 200 "));
	/* Taken, it made eight again: a second pause, counted before its
	 * request was read. */
	assert_non_null(strstr(a,
	    "\nmetrics_http_connection_limit_pauses_total 2\n"));
	free(a);
	close(s);
	for (i = 1; i < METRICS_HTTP_MAX_CONNECTIONS; i++)
		close(held[i]);
	/* Both pauses are one episode: one line. */
	assert_int_equal(atomic_load(&full_lines), 1);
	assert_int_equal(counter_value(f->m, "metrics_http_accept_pauses"),
	    0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_scrape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_bound, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
