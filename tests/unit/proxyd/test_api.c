/* Tests of proxyd/api/api.c over real HTTP on 127.0.0.1: the loop thread runs
 * the API and answers /notify later from a timer (as a push in flight
 * would); a client thread uses libcurl. Checks routing, the body limit,
 * a Retry-After set by the handler (at once and later, api_reply_retry),
 * and that hundreds of requests can wait suspended at once; and, with
 * the process out of file descriptors, that accepting pauses with one log
 * line and no busy loop, and resumes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <event2/event.h>

#include "api.h"
#include "log.h"
#include "metrics.h"

#define CONCURRENT	300

struct answer_later {
	struct api_request	*req;
	struct event		*ev;
	unsigned int		 status, retry_after_s;
	char			 body[64];
};

struct world {
	struct event_base	*base;
	struct api		*api;
	struct event		*poll;
	atomic_int		 client_done;
	size_t			 max_pending;
	int			 notify_calls;
};

static void
on_later(evutil_socket_t fd, short what, void *arg)
{
	struct answer_later *l = arg;

	(void)fd;
	(void)what;
	if (l->retry_after_s > 0)
		api_reply_retry(l->req, l->status, l->body, l->retry_after_s);
	else
		api_reply(l->req, 200, l->body);
	event_free(l->ev);
	free(l);
}

static void
handler(struct api_request *req, enum api_route route, const char *body,
    size_t len, void *arg)
{
	struct world *w = arg;
	struct answer_later *l;
	struct timeval tv = { 0, 200000 };	/* a slow provider */

	if (route == API_ROUTE_REGISTER) {
		struct api_addr client, want;

		/* Counted against the peer: no proxy is trusted here. */
		assert_int_equal(api_request_client(req, &client), 0);
		api_addr_parse("127.0.0.1", 9, &want);
		assert_true(api_addr_equal(&client, &want));
		if (len == 5 && memcmp(body, "retry", 5) == 0) {
			/* at once, with Retry-After */
			api_reply_retry(req, 429, "slow down\n", 7);
			return;
		}
		api_reply(req, len > 0 ? 200 : 400, "");	/* at once */
		return;
	}
	w->notify_calls++;
	if (api_pending(w->api) > w->max_pending)
		w->max_pending = api_pending(w->api);
	l = calloc(1, sizeof(*l));
	l->req = req;
	snprintf(l->body, sizeof(l->body), "got %zu bytes", len);
	if (len == 4 && memcmp(body, "shed", 4) == 0) {
		/* later, with Retry-After */
		l->status = 503;
		l->retry_after_s = 3;
	}
	l->ev = evtimer_new(w->base, on_later, l);
	evtimer_add(l->ev, &tv);
}

static void
on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct world *w = arg;

	(void)fd;
	(void)what;
	if (atomic_load(&w->client_done))
		event_base_loopbreak(w->base);
}

struct result {
	long	 status;
	char	 body[128];
	size_t	 len;
	char	 retry_after[16];	/* "" if none */
};

static size_t
collect(char *p, size_t size, size_t n, void *arg)
{
	struct result *r = arg;
	size_t len = size * n, room = sizeof(r->body) - 1 - r->len;

	memcpy(r->body + r->len, p, len < room ? len : room);
	r->len += len < room ? len : room;
	r->body[r->len] = '\0';
	return len;
}

/* Keeps a Retry-After header's value. */
static size_t
header(char *p, size_t size, size_t n, void *arg)
{
	struct result *r = arg;
	size_t len = size * n, v;

	if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		for (v = 12; v < len && p[v] == ' '; v++)
			;
		snprintf(r->retry_after, sizeof(r->retry_after), "%.*s",
		    (int)strcspn(p + v, "\r\n"), p + v);
	}
	return len;
}

static CURL *
easy(uint16_t port, const char *path, const char *body, size_t len,
    struct result *res)
{
	CURL *c = curl_easy_init();
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, res);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, res);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	return c;
}

struct client_args {
	struct world	*w;
	uint16_t	 port;
	struct result	 root, notify, reg, big, missing, reg_retry, shed;
	struct result	 many[CONCURRENT];
};

static void
run1(CURL *c, struct result *r)
{
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(c);
}

static void *
client(void *arg)
{
	struct client_args *ca = arg;
	char *big = malloc(API_MAX_BODY_BYTES + 100);
	CURLM *m = curl_multi_init();
	CURL *hs[CONCURRENT];
	int running;

	memset(big, 'x', API_MAX_BODY_BYTES + 100);
	run1(easy(ca->port, "/", NULL, 0, &ca->root), &ca->root);
	run1(easy(ca->port, "/notify", "tok", 3, &ca->notify), &ca->notify);
	run1(easy(ca->port, "/register", "{\"token\":\"x\"}", 13, &ca->reg),
	    &ca->reg);
	run1(easy(ca->port, "/notify", big, API_MAX_BODY_BYTES + 1, &ca->big),
	    &ca->big);
	run1(easy(ca->port, "/nothing", "x", 1, &ca->missing), &ca->missing);
	run1(easy(ca->port, "/register", "retry", 5, &ca->reg_retry),
	    &ca->reg_retry);
	run1(easy(ca->port, "/notify", "shed", 4, &ca->shed), &ca->shed);
	/* Many at once: each waits 200 ms for its answer. */
	for (int i = 0; i < CONCURRENT; i++) {
		hs[i] = easy(ca->port, "/notify", "openpgp:abc", 11,
		    &ca->many[i]);
		curl_multi_add_handle(m, hs[i]);
	}
	do {
		curl_multi_perform(m, &running);
		curl_multi_poll(m, NULL, 0, 100, NULL);
	} while (running > 0);
	for (int i = 0; i < CONCURRENT; i++) {
		curl_easy_getinfo(hs[i], CURLINFO_RESPONSE_CODE,
		    &ca->many[i].status);
		curl_multi_remove_handle(m, hs[i]);
		curl_easy_cleanup(hs[i]);
	}
	curl_multi_cleanup(m);
	free(big);
	atomic_store(&ca->w->client_done, 1);
	return NULL;
}

static void
test_api_routes_and_suspension(void **state)
{
	struct api_config cfg = { .host = "127.0.0.1" };
	struct timeval tv = { 0, 20000 };
	struct world w = { 0 };
	struct client_args *ca = calloc(1, sizeof(*ca));
	char err[ERR_LEN];
	pthread_t t;

	(void)state;
	api_limits_default(&cfg.limits);
	cfg.limits.max_requests_per_client = CONCURRENT + 10;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	w.base = event_base_new();
	w.api = api_new(w.base, &cfg, handler, &w, err);
	assert_non_null(w.api);
	assert_true(api_port(w.api) != 0);
	w.poll = event_new(w.base, -1, EV_PERSIST, on_poll, &w);
	event_add(w.poll, &tv);
	ca->w = &w;
	ca->port = api_port(w.api);
	pthread_create(&t, NULL, client, ca);
	event_base_dispatch(w.base);
	pthread_join(t, NULL);

	assert_int_equal(ca->root.status, 200);
	assert_string_equal(ca->root.body, "Hello, world!");
	assert_int_equal(ca->notify.status, 200);
	assert_string_equal(ca->notify.body, "got 3 bytes");
	assert_int_equal(ca->reg.status, 200);
	assert_string_equal(ca->reg.retry_after, "");
	assert_int_equal(ca->big.status, 413);
	assert_int_equal(ca->missing.status, 404);
	assert_int_equal(ca->reg_retry.status, 429);
	assert_string_equal(ca->reg_retry.body, "slow down\n");
	assert_string_equal(ca->reg_retry.retry_after, "7");
	assert_int_equal(ca->shed.status, 503);
	assert_string_equal(ca->shed.retry_after, "3");
	assert_string_equal(ca->notify.retry_after, "");
	for (int i = 0; i < CONCURRENT; i++)
		if (ca->many[i].status != 200)
			fail_msg("request %d: status %ld", i,
			    ca->many[i].status);
	/* They all waited together, not one after the other. */
	assert_true(w.max_pending >= CONCURRENT / 2);
	assert_int_equal(w.notify_calls, CONCURRENT + 2);
	assert_int_equal(api_pending(w.api), 0);

	api_free(w.api);
	event_free(w.poll);
	event_base_free(w.base);
	free(ca);
	curl_global_cleanup();
}

static int accept_lines;

static void
count_accept_lines(enum log_level level, const char *line, void *arg)
{
	(void)level;
	(void)arg;
	if (strstr(line, "api accept") != NULL)
		accept_lines++;
}

static void
run_loop_ms(struct event_base *base, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void
test_api_out_of_descriptors_pauses_accepting(void **state)
{
	struct api_config cfg = { .host = "127.0.0.1" };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct rlimit saved, low;
	struct world w = { 0 };
	int fds[512], nfds = 0, c, fd;
	char err[ERR_LEN], answer[256];
	double cpu0;
	ssize_t n;
	char *text;

	(void)state;
	api_limits_default(&cfg.limits);
	cfg.metrics = metrics_new();
	w.base = event_base_new();
	w.api = api_new(w.base, &cfg, handler, &w, err);
	assert_non_null(w.api);
	log_set_sink(count_accept_lines, NULL);
	/* A client in the backlog, then no descriptor left to accept it. */
	sin.sin_port = htons(api_port(w.api));
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	c = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(write(c, "GET / HTTP/1.0\r\n\r\n", 18), 18);
	getrlimit(RLIMIT_NOFILE, &saved);
	low = saved;
	low.rlim_cur = (rlim_t)c + 64;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (nfds < 512 && (fd = dup(c)) >= 0)
		fds[nfds++] = fd;
	assert_true(nfds < 512);		/* ran out */

	cpu0 = cpu_s();
	run_loop_ms(w.base, 300);
	/* Paused, once: not a loop around accept(). */
	assert_true(cpu_s() - cpu0 < 0.1);
	assert_int_equal(accept_lines, 1);
	assert_int_equal(api_connections(w.api), 0);
	text = metrics_render(cfg.metrics, NULL);
	assert_non_null(strstr(text, "\nhttp_fd_exhausted_total 1\n"));
	free(text);

	/* Descriptors back: the retry takes the client and answers it. */
	while (nfds > 0)
		close(fds[--nfds]);
	setrlimit(RLIMIT_NOFILE, &saved);
	run_loop_ms(w.base, 800);
	n = read(c, answer, sizeof(answer) - 1);
	assert_true(n > 0);
	answer[n] = '\0';
	assert_non_null(strstr(answer, "HTTP/1.1 200 OK"));
	assert_int_equal(accept_lines, 1);

	log_set_sink(NULL, NULL);
	close(c);
	api_free(w.api);
	event_base_free(w.base);
	metrics_free(cfg.metrics);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_api_routes_and_suspension),
		cmocka_unit_test(test_api_out_of_descriptors_pauses_accepting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
