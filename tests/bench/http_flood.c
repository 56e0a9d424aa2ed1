/*
 * http-flood: POSTs N token-sized bodies to a URL with libcurl's multi
 * interface, at most C in flight, and prints the rate (see
 * tests/bench/README.md).
 *
 * This is the baseline of the notifierd benchmark: the same client
 * library, configured as notifierd's sender.c configures it (headers,
 * keep-alive, connection limits, timeouts, pooled easy handles), against
 * the same notify-sink, with no database and no bookkeeping.  Its rate is
 * the ceiling of "curl multi + sink" on this machine right now; the bench
 * script reports notifierd's rate as a ratio to it, because the machine is
 * shared and absolute figures drift.
 *
 * curl is driven the way that scales with the number of transfers:
 * curl_multi_socket_action() on the sockets epoll reports ready, and on
 * curl's timer, in a loop of our own.  (curl_multi_perform() walks every
 * transfer at each wake-up.)  libcurl and libc only: the flood must not
 * share code, and so bugs, with the daemon it is compared with.
 *
 * Each body is "openpgp:", the request's number in ten digits, and filler
 * up to --body-bytes, so every body is distinct and the sink's distinct
 * count checks that each request arrived once.  With --body-file the
 * bodies are the file's lines instead, used round-robin (request i sends
 * line i modulo their number): the proxyd benchmark sends its pool of
 * encrypted tokens that way.  --duration stops starting requests after
 * that many seconds (the ones in flight finish), whichever of it and
 * --requests comes first.
 *
 * stdout gets exactly one line:
 *
 *   http-flood requests=N secs=S req_per_s=R concurrency=C connects=K
 *     cpu_secs=T errors=E codes=200:N[,STATUS:N...][,none:N]
 *
 * connects counts the connections curl opened (C with keep-alive working);
 * cpu_secs is this process's user and system time over the run, so that
 * its CPU cost per request can be set beside notifierd's.  codes counts
 * the answers per HTTP status, in increasing order, and the requests that
 * got none (a transport error) as "none".
 *
 * Exit status: 0, 1 if any request failed (not 200, or a transport
 * error), 2 on bad usage or a setup failure.
 */

#include <sys/epoll.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "bench_util.h"

static const char prog[] = "http-flood";


#define FLOOD_TOKEN_PREFIX	"openpgp:"
#define FLOOD_SEQ_DIGITS	10
/* "openpgp:" and 700 base64 characters, like a chatmail device token. */
#define FLOOD_DEFAULT_BODY	708
#define FLOOD_MIN_BODY		(sizeof(FLOOD_TOKEN_PREFIX) - 1 + \
				    FLOOD_SEQ_DIGITS)
#define FLOOD_MAX_BODY		(1024 * 1024)
#define FLOOD_MAX_CONCURRENCY	10000
#define FLOOD_DEFAULT_REQUESTS	100000
#define FLOOD_DEFAULT_CONC	128
/* As notifierd's defaults (notifierd/main.c, sender.c). */
#define FLOOD_TIMEOUT_MS	60000L
#define FLOOD_CONNECT_TIMEOUT_MS 10000L
#define FLOOD_EVENTS		256
/* epoll_wait never sleeps longer when curl has no timer set. */
#define FLOOD_IDLE_MS		1000
#define FLOOD_ERR_SAMPLES	5
/* Statuses are three digits (RFC 9110 15); curl gives 0 for none. */
#define FLOOD_STATUS_MAX	1000
#define FLOOD_MAX_DURATION_S	86400

/* Filler: a token is base64 after its prefix. */
static const char flood_base64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

struct flood_req {
	CURL		*easy;
	char		 errbuf[CURL_ERROR_SIZE];
	char		*body;		/* --body-bytes, reused */
};

struct flood {
	const char		*url;
	uint64_t		 requests;
	unsigned		 conc;
	size_t			 body_bytes;
	const char		*body_file;
	uint64_t		 duration_s;	/* 0: no limit */

	char			*file_buf;	/* --body-file, lines cut */
	char			**bodies;	/* into file_buf */
	size_t			*body_lens;
	size_t			 nbodies;
	uint64_t		 deadline_ns;	/* 0: none (--duration) */

	CURLM			*multi;
	int			 epfd;
	struct curl_slist	*headers;
	struct flood_req	*reqs;
	bool			 timer_set;
	uint64_t		 timer_ns;	/* monotonic */

	uint64_t		 started;	/* requests handed to curl */
	uint64_t		 finished;
	uint64_t		 errors;
	uint64_t		 connects;
	uint64_t		 codes[FLOOD_STATUS_MAX];	/* [0]: none */
};

/* curl: watch fd for what, or stop watching it.  sockp is non-NULL once
 * the fd is in the epoll set: curl keeps it for us per socket. */
static int
flood_on_socket(CURL *easy, curl_socket_t fd, int what, void *arg,
    void *sockp)
{
	static char registered;
	struct flood *f = arg;
	struct epoll_event ev;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		/* curl may have closed fd already: EBADF is fine. */
		epoll_ctl(f->epfd, EPOLL_CTL_DEL, fd, NULL);
		curl_multi_assign(f->multi, fd, NULL);
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	if (what & CURL_POLL_IN)
		ev.events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		ev.events |= EPOLLOUT;
	ev.data.fd = fd;
	if (sockp != NULL)
		return epoll_ctl(f->epfd, EPOLL_CTL_MOD, fd, &ev) == 0 ? 0 :
		    -1;
	if (epoll_ctl(f->epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
		return -1;
	curl_multi_assign(f->multi, fd, &registered);
	return 0;
}

/* curl: call socket_action(CURL_SOCKET_TIMEOUT) in timeout_ms, -1 never. */
static int
flood_on_timer(CURLM *multi, long timeout_ms, void *arg)
{
	struct flood *f = arg;

	(void)multi;
	f->timer_set = timeout_ms >= 0;
	if (f->timer_set)
		f->timer_ns = bench_now_ns() + (uint64_t)timeout_ms * NS_PER_MS;
	return 0;
}

static size_t
flood_on_body(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* The options notifierd's sender.c sets, so that the two differ only in
 * what notifierd does around curl. */
static int
flood_req_init(struct flood *f, struct flood_req *r)
{
	size_t i;

	if ((r->easy = curl_easy_init()) == NULL)
		return -1;
	/* From the file, flood_req_start() picks each request's body. */
	if (f->bodies == NULL) {
		if ((r->body = malloc(f->body_bytes)) == NULL)
			return -1;
		memcpy(r->body, FLOOD_TOKEN_PREFIX,
		    sizeof(FLOOD_TOKEN_PREFIX) - 1);
		for (i = FLOOD_MIN_BODY; i < f->body_bytes; i++)
			r->body[i] = flood_base64[i % 64];
	}
	curl_easy_setopt(r->easy, CURLOPT_URL, f->url);
	curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, f->headers);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, flood_on_body);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, FLOOD_TIMEOUT_MS);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    FLOOD_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(r->easy, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "http-flood");
	if (f->bodies == NULL) {
		curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE,
		    (long)f->body_bytes);
	}
	return 0;
}

/* Hand the next request to curl on r's handle. */
static int
flood_req_start(struct flood *f, struct flood_req *r)
{
	char seq[FLOOD_SEQ_DIGITS + 1];
	CURLMcode mc;
	size_t i;

	if (f->bodies != NULL) {
		/* Borrowed from file_buf, which outlives every request. */
		i = (size_t)(f->started % f->nbodies);
		curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE,
		    (long)f->body_lens[i]);
		curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, f->bodies[i]);
	} else {
		snprintf(seq, sizeof(seq), "%0*" PRIu64, FLOOD_SEQ_DIGITS,
		    (uint64_t)(f->started % 10000000000ull));
		memcpy(r->body + sizeof(FLOOD_TOKEN_PREFIX) - 1, seq,
		    FLOOD_SEQ_DIGITS);
	}
	r->errbuf[0] = '\0';
	if ((mc = curl_multi_add_handle(f->multi, r->easy)) != CURLM_OK) {
		fprintf(stderr, "http-flood: curl_multi_add_handle: %s\n",
		    curl_multi_strerror(mc));
		return -1;
	}
	f->started++;
	return 0;
}

/* Another request may start: --requests and --duration allow it. */
static bool
flood_may_start(const struct flood *f)
{
	return f->started < f->requests && (f->deadline_ns == 0 ||
	    bench_now_ns() < f->deadline_ns);
}

static void
flood_error(struct flood *f, const char *what)
{
	f->errors++;
	if (f->errors <= FLOOD_ERR_SAMPLES)
		fprintf(stderr, "http-flood: request failed: %s\n", what);
}

/* Count what curl finished and reuse each handle for the next request.
 * -1 on a setup failure. */
static int
flood_collect(struct flood *f)
{
	struct flood_req *r;
	CURLMsg *msg;
	long status, connects;
	char what[CURL_ERROR_SIZE + 32];
	int left;

	while ((msg = curl_multi_info_read(f->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &r);
		status = 0;
		connects = 0;
		if (msg->data.result != CURLE_OK) {
			f->codes[0]++;
			flood_error(f, r->errbuf[0] != '\0' ? r->errbuf :
			    curl_easy_strerror(msg->data.result));
		} else {
			curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE,
			    &status);
			if (status > 0 && status < FLOOD_STATUS_MAX)
				f->codes[status]++;
			else
				f->codes[0]++;
			if (status != 200) {
				snprintf(what, sizeof(what), "status %ld",
				    status);
				flood_error(f, what);
			}
		}
		curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects);
		f->connects += (uint64_t)connects;
		f->finished++;
		curl_multi_remove_handle(f->multi, r->easy);
		if (flood_may_start(f) && flood_req_start(f, r) == -1)
			return -1;
	}
	return 0;
}

static int
flood_run(struct flood *f)
{
	struct epoll_event evs[FLOOD_EVENTS];
	uint64_t now;
	int i, n, running, wait_ms, flags;

	/* Each finished request starts the next while that may be: none
	 * in flight means the run is over. */
	while (f->finished < f->started) {
		wait_ms = FLOOD_IDLE_MS;
		if (f->timer_set) {
			now = bench_now_ns();
			wait_ms = f->timer_ns <= now ? 0 :
			    (int)((f->timer_ns - now + NS_PER_MS - 1) /
			    NS_PER_MS);
			if (wait_ms > FLOOD_IDLE_MS)
				wait_ms = FLOOD_IDLE_MS;
		}
		n = epoll_wait(f->epfd, evs, FLOOD_EVENTS, wait_ms);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			perror("http-flood: epoll_wait");
			return -1;
		}
		for (i = 0; i < n; i++) {
			flags = 0;
			if (evs[i].events & (EPOLLIN | EPOLLHUP))
				flags |= CURL_CSELECT_IN;
			if (evs[i].events & EPOLLOUT)
				flags |= CURL_CSELECT_OUT;
			if (evs[i].events & EPOLLERR)
				flags |= CURL_CSELECT_ERR;
			curl_multi_socket_action(f->multi, evs[i].data.fd,
			    flags, &running);
		}
		if (f->timer_set && bench_now_ns() >= f->timer_ns) {
			f->timer_set = false;
			curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT,
			    0, &running);
		}
		if (flood_collect(f) == -1)
			return -1;
	}
	return 0;
}

static void
flood_usage(FILE *f)
{
	fprintf(f,
	    "usage: http-flood --url URL [--requests N] [--concurrency C]\n"
	    "                  [--body-bytes B | --body-file FILE]\n"
	    "                  [--duration SECONDS]\n"
	    "  --requests N     POSTs to make (default %d, or no limit\n"
	    "                   with --duration)\n"
	    "  --concurrency C  at most C in flight, on up to C keep-alive\n"
	    "                   connections (default %d)\n"
	    "  --body-bytes B   body size (default %d, a device token's)\n"
	    "  --body-file FILE the bodies: its lines, round-robin\n"
	    "  --duration S     start no request after S seconds\n",
	    FLOOD_DEFAULT_REQUESTS, FLOOD_DEFAULT_CONC, FLOOD_DEFAULT_BODY);
}

/* 0, -1 on bad usage (reason on stderr), 1 after --help. */
static int
flood_parse_args(int argc, char **argv, struct flood *f)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "requests", required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "body-bytes", required_argument, NULL, 'b' },
		{ "body-file", required_argument, NULL, 'f' },
		{ "duration", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long v;
	bool requests_set = false, bytes_set = false;
	int ch;

	f->requests = FLOOD_DEFAULT_REQUESTS;
	f->conc = FLOOD_DEFAULT_CONC;
	f->body_bytes = FLOOD_DEFAULT_BODY;
	while ((ch = getopt_long(argc, argv, "u:n:c:b:f:d:h", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'u':
			f->url = optarg;
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
			    FLOOD_MAX_CONCURRENCY, &v) == -1)
				return -1;
			f->conc = (unsigned)v;
			break;
		case 'b':
			if (bench_parse_uint(prog, "body-bytes", optarg,
			    FLOOD_MIN_BODY, FLOOD_MAX_BODY, &v) == -1)
				return -1;
			f->body_bytes = (size_t)v;
			bytes_set = true;
			break;
		case 'f':
			f->body_file = optarg;
			break;
		case 'd':
			if (bench_parse_uint(prog, "duration", optarg, 1,
			    FLOOD_MAX_DURATION_S, &v) == -1)
				return -1;
			f->duration_s = v;
			break;
		case 'h':
			flood_usage(stdout);
			return 1;
		default:
			flood_usage(stderr);
			return -1;
		}
	}
	if (optind != argc || f->url == NULL) {
		flood_usage(stderr);
		return -1;
	}
	if (f->body_file != NULL && bytes_set) {
		fprintf(stderr, "http-flood: --body-bytes and --body-file "
		    "exclude each other\n");
		return -1;
	}
	if (f->duration_s > 0 && !requests_set)
		f->requests = UINT64_MAX;
	return 0;
}

/* Room for twice as many bodies (*cap updated); -1 out of memory, the
 * old arrays kept (main frees them). */
static int
flood_grow_bodies(struct flood *f, size_t *cap)
{
	size_t n = *cap > 0 ? *cap * 2 : 1024;
	char **bodies;
	size_t *lens;

	if ((bodies = realloc(f->bodies, n * sizeof(*bodies))) == NULL)
		return -1;
	f->bodies = bodies;
	if ((lens = realloc(f->body_lens, n * sizeof(*lens))) == NULL)
		return -1;
	f->body_lens = lens;
	*cap = n;
	return 0;
}

/* Read --body-file and cut it into lines (a CR before the LF dropped,
 * empty lines skipped); 0, -1 with the reason on stderr. */
static int
flood_load_bodies(struct flood *f)
{
	const char *p, *end, *line;
	size_t cap = 0, len, n;

	if ((f->file_buf = bench_read_file(prog, f->body_file, &n)) == NULL)
		return -1;
	for (p = f->file_buf, end = p + n; bench_next_line(&p, end, &line,
	    &len);) {
		if (len == 0)
			continue;
		if (len > FLOOD_MAX_BODY) {
			fprintf(stderr, "http-flood: %s: a line over %d "
			    "bytes\n", f->body_file, FLOOD_MAX_BODY);
			return -1;
		}
		if (f->nbodies == cap && flood_grow_bodies(f, &cap) == -1) {
			fprintf(stderr, "http-flood: out of memory\n");
			return -1;
		}
		/* Into file_buf, which main keeps until the end. */
		f->bodies[f->nbodies] = f->file_buf + (line - f->file_buf);
		f->body_lens[f->nbodies++] = len;
	}
	if (f->nbodies == 0) {
		fprintf(stderr, "http-flood: %s: no body in it\n",
		    f->body_file);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct flood f;
	uint64_t t0, t1;
	double secs, cpu0;
	char codes[256];
	unsigned i;
	int rc, status = 2;

	memset(&f, 0, sizeof(f));
	f.epfd = -1;
	if ((rc = flood_parse_args(argc, argv, &f)) != 0)
		return rc == 1 ? 0 : 2;
	if (f.body_file != NULL && flood_load_bodies(&f) == -1)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	/* A socket per connection, plus stdio and curl's own. */
	bench_raise_nofile(prog, (unsigned long long)f.conc + 64);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "http-flood: curl_global_init failed\n");
		return 2;
	}
	if ((f.epfd = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (f.multi = curl_multi_init()) == NULL) {
		fprintf(stderr, "http-flood: cannot set up epoll or curl\n");
		goto out;
	}
	curl_multi_setopt(f.multi, CURLMOPT_SOCKETFUNCTION, flood_on_socket);
	curl_multi_setopt(f.multi, CURLMOPT_SOCKETDATA, &f);
	curl_multi_setopt(f.multi, CURLMOPT_TIMERFUNCTION, flood_on_timer);
	curl_multi_setopt(f.multi, CURLMOPT_TIMERDATA, &f);
	curl_multi_setopt(f.multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	curl_multi_setopt(f.multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)f.conc);
	curl_multi_setopt(f.multi, CURLMOPT_MAXCONNECTS, (long)f.conc);
	f.headers = curl_slist_append(NULL,
	    "Content-Type: application/octet-stream");
	f.headers = curl_slist_append(f.headers, "Expect:");
	if (f.headers == NULL || (f.reqs = calloc(f.conc,
	    sizeof(*f.reqs))) == NULL) {
		fprintf(stderr, "http-flood: out of memory\n");
		goto out;
	}
	for (i = 0; i < f.conc; i++)
		if (flood_req_init(&f, &f.reqs[i]) == -1) {
			fprintf(stderr, "http-flood: cannot set up a "
			    "request\n");
			goto out;
		}

	t0 = bench_now_ns();
	cpu0 = bench_cpu_secs();
	if (f.duration_s > 0)
		f.deadline_ns = t0 + f.duration_s * NS_PER_S;
	for (i = 0; i < f.conc && f.started < f.requests; i++)
		if (flood_req_start(&f, &f.reqs[i]) == -1)
			goto out;
	if (flood_run(&f) == -1)
		goto out;
	t1 = bench_now_ns();
	secs = (double)(t1 - t0) / NS_PER_S;
	bench_format_codes(f.codes, FLOOD_STATUS_MAX, codes, sizeof(codes));
	printf("http-flood requests=%" PRIu64 " secs=%.3f req_per_s=%.0f "
	    "concurrency=%u connects=%" PRIu64 " cpu_secs=%.2f errors=%"
	    PRIu64 " %s\n", f.finished, secs, secs > 0 ?
	    (double)f.finished / secs : 0, f.conc, f.connects,
	    bench_cpu_secs() - cpu0, f.errors, codes);
	status = f.errors > 0;
out:
	/* calloc'ed: a request that never got set up is all NULL. */
	for (i = 0; f.reqs != NULL && i < f.conc; i++) {
		if (f.reqs[i].easy != NULL) {
			curl_multi_remove_handle(f.multi, f.reqs[i].easy);
			curl_easy_cleanup(f.reqs[i].easy);
		}
		free(f.reqs[i].body);
	}
	free(f.reqs);
	free(f.bodies);
	free(f.body_lens);
	free(f.file_buf);
	if (f.multi != NULL)
		curl_multi_cleanup(f.multi);
	curl_slist_free_all(f.headers);
	if (f.epfd != -1)
		close(f.epfd);
	curl_global_cleanup();
	return status;
}
