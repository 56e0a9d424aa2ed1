/*
 * notify-sink: the fastest push proxy we can stand in for, so that a
 * notifierd benchmark measures notifierd (see tests/bench/README.md).
 *
 * An HTTP/1.1 server on 127.0.0.1 that answers every request with an
 * empty 200, keeps connections alive and answers pipelined requests in
 * order.  It counts requests and body bytes, and the distinct bodies in a
 * hash set: the bench script checks that every queued token arrived at
 * least once.  The set's key for a body is crc32 << 32 | adler32 (zlib), and
 * the sum of the keys of the distinct bodies is printed as a digest, so the
 * script can compare the set of bodies with the set of tokens it queued:
 * Python's zlib computes the same two checksums at C speed.
 *
 * One epoll thread, level-triggered, no thread per connection.  Each
 * readable event costs one read and one write however many requests it
 * carried, so the sink stays well below what a curl client can send.
 * Hand-written HTTP on purpose: a server library (libmicrohttpd) would add
 * its own per-request cost to every figure measured against it, and only
 * the subset curl sends for a POST with a Content-Length has to work;
 * anything else (chunked bodies, oversized heads) gets an error status and
 * the connection is closed.
 *
 * stdout: "port=N" first (flushed at once, so a script can read it), then
 * on SIGTERM or SIGINT one line of figures, and exit 0:
 *
 *   requests=N bytes=M distinct=D digest=HEX conns=C errors=E
 *
 * Exit status 2 on bad usage or a setup failure.  Self-contained (libc and
 * zlib), like dict-load: it must not share code, and bugs, with what it
 * measures.
 */

#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

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

#include <zlib.h>

#include "bench_util.h"

/* A curl POST head is ~200 bytes; a proxy would refuse far less than
 * this, and anything longer is not what we are here to measure. */
#define SINK_HEAD_MAX_BYTES	(16 * 1024)
/* Tokens are ~700 bytes; leave room for other benchmarks' bodies. */
#define SINK_BODY_MAX_BYTES	(1024 * 1024)
/* Each read asks for at least this much, so one read takes a whole
 * batch of pipelined requests. */
#define SINK_READ_BYTES		(64 * 1024)
/* A client that pipelines but does not read its answers: stop reading
 * its requests once this much output waits, as a real server would. */
#define SINK_OUT_MAX_BYTES	(64 * 1024)
#define SINK_BACKLOG		4096
#define SINK_EVENTS		256
#define SINK_SET_INIT_SLOTS	(1u << 16)	/* a power of two */
#define SINK_MAX_CONNS		65536

#define SINK_RESP_OK \
	"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
#define SINK_RESP_CONTINUE	"HTTP/1.1 100 Continue\r\n\r\n"

struct sink_conn {
	struct sink_conn *prev, *next;	/* the sink's list */
	int		 fd;
	uint32_t	 events;	/* registered with epoll */
	bool		 closing;	/* close once out is written */
	bool		 held;		/* requests wait for out */
	/* The request being parsed; head_len 0 until its head is whole. */
	size_t		 head_len;
	size_t		 body_len;
	bool		 expect;	/* Expect: 100-continue */
	bool		 continued;	/* ... and we answered it */
	bool		 close_after;	/* Connection: close */
	char		*in;
	size_t		 in_len, in_cap;
	char		*out;
	size_t		 out_off, out_len, out_cap;
};

/* Open addressing, linear probing, grown at half full.  Key 0 marks an
 * empty slot, so a body whose key is 0 is remembered in has_zero. */
struct sink_set {
	uint64_t	*slot;
	size_t		 mask;
	size_t		 n;
	bool		 has_zero;
};

struct sink {
	int		 epfd;
	int		 lfd;
	int		 sigfd;
	bool		 stop;
	struct sink_set	 bodies;
	struct sink_conn *conns_open;
	uint64_t	 requests;
	uint64_t	 bytes;
	uint64_t	 digest;	/* sum of distinct bodies' keys */
	uint64_t	 conns;
	uint64_t	 errors;
};

/* epoll data for the two fds that are not connections. */
static char sink_tag_listen, sink_tag_signal;

static void *
sink_alloc(void *p, size_t size)
{
	if ((p = realloc(p, size)) == NULL) {
		perror("notify-sink: realloc");
		exit(2);
	}
	return p;
}

/* The set's key mixed, so that linear probing sees spread-out slots
 * (crc32 << 32 puts the best bits at the top). */
static size_t
sink_set_hash(uint64_t key)
{
	key ^= key >> 31;
	key *= 0x9e3779b97f4a7c15ull;
	return (size_t)(key ^ key >> 29);
}

static void
sink_set_grow(struct sink_set *s)
{
	uint64_t *old = s->slot;
	size_t i, j, old_slots = old != NULL ? s->mask + 1 : 0;
	size_t slots = old_slots != 0 ? old_slots * 2 : SINK_SET_INIT_SLOTS;

	if ((s->slot = calloc(slots, sizeof(*s->slot))) == NULL) {
		perror("notify-sink: calloc");
		exit(2);
	}
	s->mask = slots - 1;
	for (i = 0; i < old_slots; i++) {
		if (old[i] == 0)
			continue;
		for (j = sink_set_hash(old[i]) & s->mask; s->slot[j] != 0;
		    j = (j + 1) & s->mask)
			;
		s->slot[j] = old[i];
	}
	free(old);
}

/* true if key was not in the set yet. */
static bool
sink_set_add(struct sink_set *s, uint64_t key)
{
	size_t j;

	if (key == 0) {
		if (s->has_zero)
			return false;
		s->has_zero = true;
		s->n++;
		return true;
	}
	if (s->slot == NULL || (s->n + 1) * 2 > s->mask + 1)
		sink_set_grow(s);
	for (j = sink_set_hash(key) & s->mask; s->slot[j] != 0;
	    j = (j + 1) & s->mask)
		if (s->slot[j] == key)
			return false;
	s->slot[j] = key;
	s->n++;
	return true;
}

static void
sink_body_seen(struct sink *s, const char *body, size_t len)
{
	uint64_t key;

	key = (uint64_t)crc32(0, (const Bytef *)body, (uInt)len) << 32 |
	    adler32(1, (const Bytef *)body, (uInt)len);
	if (sink_set_add(&s->bodies, key))
		s->digest += key;
	s->requests++;
	s->bytes += len;
}

static void
sink_out_add(struct sink_conn *c, const char *p, size_t len)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + len > c->out_cap) {
		c->out_cap = (c->out_len + len) * 2;
		c->out = sink_alloc(c->out, c->out_cap);
	}
	memcpy(c->out + c->out_len, p, len);
	c->out_len += len;
}

/* Answer with an error status and close: the client sent something this
 * sink does not handle, so its figures would mean nothing. */
static void
sink_conn_reject(struct sink *s, struct sink_conn *c, const char *status)
{
	char resp[128];
	int n;

	n = snprintf(resp, sizeof(resp), "HTTP/1.1 %s\r\nContent-Length: 0\r\n"
	    "Connection: close\r\n\r\n", status);
	sink_out_add(c, resp, (size_t)n);
	c->closing = true;
	s->errors++;
	if (s->errors <= 5)
		fprintf(stderr, "notify-sink: fd=%d: answered %s\n", c->fd,
		    status);
}

/* name matches the header line at p (case-insensitive, then ':'). */
static bool
sink_header_is(const char *p, const char *end, const char *name)
{
	size_t n = strlen(name);

	return (size_t)(end - p) > n && p[n] == ':' &&
	    strncasecmp(p, name, n) == 0;
}

/* The header's value with leading blanks and the trailing CR skipped. */
static void
sink_header_value(const char *p, const char *eol, size_t name_len,
    const char **v_out, size_t *len_out)
{
	p += name_len + 1;
	while (p < eol && (*p == ' ' || *p == '\t'))
		p++;
	while (eol > p && (eol[-1] == '\r' || eol[-1] == ' '))
		eol--;
	*v_out = p;
	*len_out = (size_t)(eol - p);
}

/* Parse the head at c->in [0, head_len): the request line must look like
 * "METHOD /target HTTP/1.x", and of the headers only Content-Length,
 * Transfer-Encoding, Expect and Connection matter.  NULL if fine, else
 * the status to reject it with. */
static const char *
sink_head_parse(struct sink_conn *c, const char *head, size_t head_len)
{
	const char *end = head + head_len, *eol, *p, *v;
	size_t vlen;
	bool http10, keep_alive = false;
	char num[24];

	if ((eol = memchr(head, '\n', head_len)) == NULL)
		return "400 Bad Request";
	if ((p = memchr(head, ' ', (size_t)(eol - head))) == NULL ||
	    p == head || p[1] != '/' || eol - head < 10 ||
	    memcmp(eol - 9, "HTTP/1.", 7) != 0 || eol[-1] != '\r')
		return "400 Bad Request";
	http10 = eol[-2] == '0';
	c->body_len = 0;
	c->expect = c->continued = false;
	c->close_after = false;
	for (p = eol + 1; p < end; p = eol + 1) {
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			break;
		if (sink_header_is(p, eol, "content-length")) {
			sink_header_value(p, eol, 14, &v, &vlen);
			if (vlen == 0 || vlen >= sizeof(num) ||
			    strspn(v, "0123456789") < vlen)
				return "400 Bad Request";
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			c->body_len = strtoull(num, NULL, 10);
			if (c->body_len > SINK_BODY_MAX_BYTES)
				return "413 Content Too Large";
		} else if (sink_header_is(p, eol, "transfer-encoding"))
			return "501 Not Implemented";
		else if (sink_header_is(p, eol, "expect")) {
			sink_header_value(p, eol, 6, &v, &vlen);
			c->expect = vlen == 12 &&
			    strncasecmp(v, "100-continue", 12) == 0;
		} else if (sink_header_is(p, eol, "connection")) {
			sink_header_value(p, eol, 10, &v, &vlen);
			if (vlen == 5 && strncasecmp(v, "close", 5) == 0)
				c->close_after = true;
			else if (vlen == 10 &&
			    strncasecmp(v, "keep-alive", 10) == 0)
				keep_alive = true;
		}
	}
	if (http10 && !keep_alive)
		c->close_after = true;
	return NULL;
}

/* Answer every whole request in c->in, in order, then keep what is left
 * of the next one. */
static void
sink_conn_parse(struct sink *s, struct sink_conn *c)
{
	size_t off = 0, avail;
	const char *head, *eoh, *bad;

	c->held = false;
	while (!c->closing) {
		if (c->out_len - c->out_off >= SINK_OUT_MAX_BYTES) {
			c->held = true;
			break;
		}
		head = c->in + off;
		avail = c->in_len - off;
		if (c->head_len == 0) {
			if ((eoh = memmem(head, avail, "\r\n\r\n", 4)) ==
			    NULL) {
				if (avail > SINK_HEAD_MAX_BYTES)
					sink_conn_reject(s, c, "431 Request "
					    "Header Fields Too Large");
				break;
			}
			c->head_len = (size_t)(eoh - head) + 4;
			if ((bad = sink_head_parse(c, head, c->head_len)) !=
			    NULL) {
				sink_conn_reject(s, c, bad);
				break;
			}
		}
		if (avail < c->head_len + c->body_len) {
			/* RFC 9110 10.1.1: the client may wait for this
			 * before it sends the body. */
			if (c->expect && !c->continued) {
				sink_out_add(c, SINK_RESP_CONTINUE,
				    sizeof(SINK_RESP_CONTINUE) - 1);
				c->continued = true;
			}
			break;
		}
		sink_body_seen(s, head + c->head_len, c->body_len);
		sink_out_add(c, SINK_RESP_OK, sizeof(SINK_RESP_OK) - 1);
		off += c->head_len + c->body_len;
		c->head_len = 0;
		if (c->close_after)
			c->closing = true;
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
}

static void
sink_conn_close(struct sink *s, struct sink_conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns_open = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

/* Write what is pending.  -1 if the connection is done with (error, or
 * closing and all written): the caller closes it. */
static int
sink_conn_flush(struct sink_conn *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return -1;
		}
		c->out_off += (size_t)n;
	}
	return c->closing ? -1 : 0;
}

/* Watch for what the connection waits for: input unless it is closing or
 * has too much unread output, output while some is pending. */
static void
sink_conn_watch(struct sink *s, struct sink_conn *c)
{
	struct epoll_event ev;
	uint32_t want = 0;
	bool pending = c->out_off < c->out_len;

	if (!c->closing && (!pending ||
	    c->out_len - c->out_off < SINK_OUT_MAX_BYTES))
		want |= EPOLLIN;
	if (pending)
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	ev.events = want;
	ev.data.ptr = c;
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = want;
}

/* -1 if the connection is to be closed. */
static int
sink_conn_read(struct sink *s, struct sink_conn *c)
{
	ssize_t n;

	for (;;) {
		if (c->in_cap - c->in_len < SINK_READ_BYTES) {
			c->in_cap = c->in_len + SINK_READ_BYTES;
			c->in = sink_alloc(c->in, c->in_cap);
		}
		n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
		if (n == 0)
			return -1;	/* the client closed: curl does not
					 * half-close, so neither do we */
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return -1;
		}
		c->in_len += (size_t)n;
		sink_conn_parse(s, c);
		if (c->closing || c->held || (size_t)n < SINK_READ_BYTES)
			return 0;
	}
}

static void
sink_on_conn(struct sink *s, struct sink_conn *c, uint32_t events)
{
	if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN)) {
		sink_conn_close(s, c);
		return;
	}
	if (events & EPOLLIN && sink_conn_read(s, c) == -1) {
		sink_conn_close(s, c);
		return;
	}
	if (sink_conn_flush(c) == -1) {
		sink_conn_close(s, c);
		return;
	}
	/* Output drained below the limit: answer what was held back. */
	if (c->held && c->out_off == c->out_len) {
		sink_conn_parse(s, c);
		if (sink_conn_flush(c) == -1) {
			sink_conn_close(s, c);
			return;
		}
	}
	sink_conn_watch(s, c);
}

static void
sink_on_accept(struct sink *s)
{
	struct epoll_event ev;
	struct sink_conn *c;
	int fd, one = 1;

	while ((fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) != -1) {
		/* One write per batch of answers: Nagle would only hold
		 * the next batch back for the client's delayed ACK. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = sink_alloc(NULL, sizeof(*c));
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->events = EPOLLIN;
		ev.events = c->events;
		ev.data.ptr = c;
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
			perror("notify-sink: epoll_ctl");
			close(fd);
			free(c);
			continue;
		}
		c->next = s->conns_open;
		if (c->next != NULL)
			c->next->prev = c;
		s->conns_open = c;
		s->conns++;
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
	    errno != ECONNABORTED)
		perror("notify-sink: accept");
}

static int
sink_listen(struct sink *s, uint16_t port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct epoll_event ev;
	int one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) == -1 ||
	    bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(s->lfd, SINK_BACKLOG) == -1 ||
	    getsockname(s->lfd, (struct sockaddr *)&sin, &len) == -1) {
		perror("notify-sink: listen on 127.0.0.1");
		return -1;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = &sink_tag_listen;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev) == -1) {
		perror("notify-sink: epoll_ctl");
		return -1;
	}
	printf("port=%u\n", ntohs(sin.sin_port));
	fflush(stdout);
	return 0;
}

/* SIGTERM and SIGINT through a signalfd: the loop stops between events,
 * never inside one, so the counts it prints are whole. */
static int
sink_signals(struct sink *s)
{
	struct epoll_event ev;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
	    (s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) ==
	    -1) {
		perror("notify-sink: signalfd");
		return -1;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = &sink_tag_signal;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sigfd, &ev) == -1) {
		perror("notify-sink: epoll_ctl");
		return -1;
	}
	return 0;
}

static void
sink_usage(FILE *f)
{
	fprintf(f,
	    "usage: notify-sink [--port PORT]\n"
	    "  --port PORT  listen on 127.0.0.1:PORT (default 0: any free\n"
	    "               port; the first line of stdout says which)\n"
	    "Answers every HTTP/1.1 request with an empty 200.  On SIGTERM\n"
	    "or SIGINT prints\n"
	    "  requests=N bytes=M distinct=D digest=HEX conns=C errors=E\n"
	    "and exits 0.\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct epoll_event evs[SINK_EVENTS];
	struct sink s;
	unsigned long port = 0;
	char *end;
	int ch, i, n;

	while ((ch = getopt_long(argc, argv, "p:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			errno = 0;
			port = strtoul(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    port > 65535) {
				fprintf(stderr, "notify-sink: --port: want "
				    "0..65535, got \"%s\"\n", optarg);
				return 2;
			}
			break;
		case 'h':
			sink_usage(stdout);
			return 0;
		default:
			sink_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		sink_usage(stderr);
		return 2;
	}
	memset(&s, 0, sizeof(s));
	bench_raise_nofile("notify-sink", SINK_MAX_CONNS);
	if ((s.epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		perror("notify-sink: epoll_create1");
		return 2;
	}
	if (sink_signals(&s) == -1 || sink_listen(&s, (uint16_t)port) == -1)
		return 2;

	while (!s.stop) {
		n = epoll_wait(s.epfd, evs, SINK_EVENTS, -1);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			perror("notify-sink: epoll_wait");
			return 2;
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == &sink_tag_listen)
				sink_on_accept(&s);
			else if (evs[i].data.ptr == &sink_tag_signal)
				s.stop = true;
			else
				sink_on_conn(&s, evs[i].data.ptr,
				    evs[i].events);
		}
	}
	printf("requests=%" PRIu64 " bytes=%" PRIu64 " distinct=%zu "
	    "digest=%016" PRIx64 " conns=%" PRIu64 " errors=%" PRIu64 "\n",
	    s.requests, s.bytes, s.bodies.n, s.digest, s.conns, s.errors);
	/* Freed, not left to exit(), so that the sink runs clean under
	 * LeakSanitizer too. */
	while (s.conns_open != NULL)
		sink_conn_close(&s, s.conns_open);
	free(s.bodies.slot);
	close(s.lfd);
	close(s.sigfd);
	close(s.epfd);
	return fflush(stdout) == 0 ? 0 : 2;
}
