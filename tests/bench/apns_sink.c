/*
 * apns-sink: a fast fake APNs for the proxyd benchmark (see
 * tests/bench/README.md, "proxyd").  Not a faithful fake: that is
 * tests/e2e/fakes/fake_apns.py.  This one only has to be much faster than
 * proxyd, so that a proxyd benchmark measures proxyd.
 *
 * HTTP/2 over TLS (OpenSSL, libnghttp2's server session), ALPN h2 only,
 * on 127.0.0.1.  Like Apple with certificate auth it requires a client
 * certificate and verifies it against --ca (purpose TLS client); a client
 * without one, or with one from another CA, fails the handshake and is
 * counted in tls_refused.  --no-client-cert drops that requirement, for
 * clients that cannot present one (h2load measures the sink's ceiling
 * that way; the handshake is the only difference, per request the work is
 * the same).  SETTINGS_MAX_CONCURRENT_STREAMS is --max-streams (1000, as
 * Apple grants once a connection is up).
 *
 * Every POST /3/device/<hex> is answered :status 200 with an apns-id
 * header (the request's own apns-id if it sent one, as Apple does) and no
 * body.  Anything else gets Apple's error status and JSON reason (405
 * MethodNotAllowed, 404 BadPath, 400 BadDeviceToken) and counts as an
 * error.  The sink counts requests, body bytes and the distinct device
 * tokens (a hash set of the hex strings), and sums the FNV-1a 64 hashes of
 * the distinct tokens modulo 2^64 as a digest: the bench script compares
 * it with the sum over the tokens it encrypted, so the set of tokens
 * proxyd decrypted and sent must be exactly the pool.
 *
 * One thread, one epoll set, level-triggered, non-blocking sockets.  A
 * readable connection is read until OpenSSL has nothing left, the bytes go
 * through nghttp2_session_mem_recv(), and everything nghttp2 then has to
 * send is gathered into one buffer and written with as few SSL_write()
 * calls as the records need: one read and one write per batch of requests,
 * not per request.
 *
 * stdout: "port=N" first (flushed at once), then one line of figures on
 * SIGUSR1 (a snapshot; the sink goes on) and on SIGTERM or SIGINT (then it
 * exits 0):
 *
 *   requests=N distinct=D digest=HEX conns=C errors=E tls_refused=T
 *     bytes=B resets=R gaps=G gap_min_us=U gap_p50_us=U gap_p99_us=U
 *
 * requests counts 200 answers; conns the connections that completed the
 * handshake; errors the requests answered with an error status plus the
 * connections that failed (TLS or HTTP/2 errors; the first few are told
 * on stderr); bytes the request bodies; resets the RST_STREAM frames
 * received.  gaps counts the pushes of a device token that had one before,
 * both since the previous line, and gap_* the time between them (minimum,
 * median, 99th percentile): what a device saw of proxyd's debounce
 * windows.  Exit status 2 on bad usage or a setup failure.  OpenSSL,
 * libnghttp2 and libc only: nothing shared with proxyd.
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
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "bench_util.h"
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* Each SSL_read asks for this much: a batch of requests at a time. */
#define ASINK_READ_BYTES	(64 * 1024)
/* A client that sends but does not read: stop reading it once this much
 * output waits, as a real server would. */
#define ASINK_OUT_MAX_BYTES	(1024 * 1024)
#define ASINK_BACKLOG		1024
#define ASINK_EVENTS		256
#define ASINK_MAX_CONNS		4096
#define ASINK_DEFAULT_STREAMS	1000
#define ASINK_MAX_STREAMS	100000
/* Flow control is not what we measure: big windows, so a client never
 * waits for a WINDOW_UPDATE. */
#define ASINK_STREAM_WINDOW	(1 << 20)
#define ASINK_CONN_WINDOW	(1 << 30)
/* Apple's tokens are 64 hex digits today; it documents no limit, so
 * allow longer ones. */
#define ASINK_TOKEN_MAX		200
#define ASINK_APNS_ID_MAX	64	/* a UUID is 36 */
#define ASINK_SET_INIT_SLOTS	(1u << 14)	/* a power of two */
#define ASINK_DEVICE_PREFIX	"/3/device/"
#define ASINK_ERR_SAMPLES	5	/* failures told on stderr */

#define ASINK_FNV_OFFSET	0xcbf29ce484222325ull
#define ASINK_FNV_PRIME		0x100000001b3ull

/* One request stream, from its HEADERS to its close. */
struct asink_stream {
	bool		 post;
	bool		 device_path;	/* :path is /3/device/... */
	bool		 token_ok;	/* ... followed by 1..TOKEN_MAX hex */
	size_t		 token_len;
	char		 token[ASINK_TOKEN_MAX + 1];
	char		 apns_id[ASINK_APNS_ID_MAX + 1];
	const char	*err_body;	/* JSON reason of an error answer */
	size_t		 err_off;
};

struct asink_conn {
	struct asink_conn	*prev, *next;	/* the sink's list */
	struct asink		*s;
	int			 fd;
	uint32_t		 events;	/* registered with epoll */
	SSL			*ssl;
	nghttp2_session		*h2;		/* NULL until handshake */
	bool			 closing;	/* close at the end of io */
	const char		*why;		/* a failure, or NULL */
	unsigned char		*out;		/* to SSL_write */
	size_t			 out_len, out_off, out_cap;
};

/* The distinct device tokens: open addressing on their FNV-1a 64 hash. */
struct asink_set {
	uint64_t	*hashes;
	uint64_t	*last_ns;	/* the token's last push */
	char		**tokens;	/* NULL: empty slot */
	size_t		 slots;		/* a power of two */
	size_t		 used;
	uint64_t	 digest;	/* sum of the hashes, mod 2^64 */
};

struct asink {
	int			 lfd, epfd, sigfd;
	uint16_t		 port;
	bool			 client_cert;
	uint32_t		 max_streams;
	SSL_CTX			*ctx;
	nghttp2_session_callbacks *cbs;
	nghttp2_option		*h2opt;
	struct asink_conn	*conns;
	size_t			 nconns;
	struct asink_set	 set;
	uint64_t		 requests, errors, tls_refused, handshakes;
	uint64_t		 conn_errors, resets;
	uint64_t		 bytes, apns_ids;
	/* Time between two pushes of one token, both since the last
	 * report. */
	struct bench_hist	 gaps;
	uint64_t		 gap_min_ns;
	uint64_t		 report_ns;
	unsigned char		 rbuf[ASINK_READ_BYTES];
};

static const unsigned char asink_alpn_h2[] = "\x02h2";

static uint64_t
asink_fnv1a(const char *p, size_t len)
{
	uint64_t h = ASINK_FNV_OFFSET;

	while (len-- > 0) {
		h ^= (unsigned char)*p++;
		h *= ASINK_FNV_PRIME;
	}
	return h;
}

/* ---- the set of distinct tokens ------------------------------------ */

static int
asink_set_init(struct asink_set *set)
{
	set->slots = ASINK_SET_INIT_SLOTS;
	set->hashes = calloc(set->slots, sizeof(*set->hashes));
	set->last_ns = calloc(set->slots, sizeof(*set->last_ns));
	set->tokens = calloc(set->slots, sizeof(*set->tokens));
	return set->hashes != NULL && set->last_ns != NULL &&
	    set->tokens != NULL ? 0 : -1;
}

/* Twice the slots, every token moved: keeps the load under a half. */
static int
asink_set_grow(struct asink_set *set)
{
	size_t slots = set->slots * 2, i, j;
	uint64_t *hashes = calloc(slots, sizeof(*hashes));
	uint64_t *last_ns = calloc(slots, sizeof(*last_ns));
	char **tokens = calloc(slots, sizeof(*tokens));

	if (hashes == NULL || last_ns == NULL || tokens == NULL) {
		free(hashes);
		free(last_ns);
		free(tokens);
		return -1;
	}
	for (i = 0; i < set->slots; i++) {
		if (set->tokens[i] == NULL)
			continue;
		for (j = set->hashes[i] & (slots - 1); tokens[j] != NULL;
		    j = (j + 1) & (slots - 1))
			;
		hashes[j] = set->hashes[i];
		last_ns[j] = set->last_ns[i];
		tokens[j] = set->tokens[i];
	}
	free(set->hashes);
	free(set->last_ns);
	free(set->tokens);
	set->hashes = hashes;
	set->last_ns = last_ns;
	set->tokens = tokens;
	set->slots = slots;
	return 0;
}

/* Add token (len bytes, NUL-terminated) unless it is there, and note a
 * push of it at now: 1 if added, 0 if known, -1 out of memory. For a
 * known token, *gap_ns_out gets the time since its previous push. */
static int
asink_set_add(struct asink_set *set, const char *token, size_t len,
    uint64_t now, uint64_t *gap_ns_out)
{
	uint64_t h = asink_fnv1a(token, len);
	size_t i;

	for (i = h & (set->slots - 1); set->tokens[i] != NULL;
	    i = (i + 1) & (set->slots - 1))
		if (set->hashes[i] == h && strcmp(set->tokens[i], token) == 0) {
			*gap_ns_out = now - set->last_ns[i];
			set->last_ns[i] = now;
			return 0;
		}
	if ((set->tokens[i] = strdup(token)) == NULL)
		return -1;
	set->hashes[i] = h;
	set->last_ns[i] = now;
	set->used++;
	set->digest += h;
	if (set->used * 2 > set->slots && asink_set_grow(set) == -1)
		return -1;
	return 1;
}

static void
asink_set_free(struct asink_set *set)
{
	for (size_t i = 0; set->tokens != NULL && i < set->slots; i++)
		free(set->tokens[i]);
	free(set->tokens);
	free(set->hashes);
	free(set->last_ns);
}

/* ---- HTTP/2: nghttp2 callbacks ------------------------------------- */

static int
asink_on_begin_headers(nghttp2_session *h2, const nghttp2_frame *frame,
    void *arg)
{
	struct asink_stream *st;

	(void)arg;
	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (nghttp2_session_set_stream_user_data(h2, frame->hd.stream_id,
	    st) != 0) {
		free(st);
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	return 0;
}

static bool
asink_is_hex(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		    (p[i] >= 'a' && p[i] <= 'f') ||
		    (p[i] >= 'A' && p[i] <= 'F')))
			return false;
	return true;
}

static int
asink_on_header(nghttp2_session *h2, const nghttp2_frame *frame,
    const uint8_t *name, size_t namelen, const uint8_t *value,
    size_t valuelen, uint8_t flags, void *arg)
{
	static const char prefix[] = ASINK_DEVICE_PREFIX;
	const size_t plen = sizeof(prefix) - 1;
	struct asink_stream *st;
	size_t tlen;

	(void)flags;
	(void)arg;
	if (frame->hd.type != NGHTTP2_HEADERS ||
	    (st = nghttp2_session_get_stream_user_data(h2,
	    frame->hd.stream_id)) == NULL)
		return 0;
	if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
		st->post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
	} else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
		st->device_path = valuelen > plen &&
		    memcmp(value, prefix, plen) == 0;
		if (!st->device_path)
			return 0;
		tlen = valuelen - plen;
		st->token_ok = tlen <= ASINK_TOKEN_MAX &&
		    asink_is_hex(value + plen, tlen);
		if (st->token_ok) {
			memcpy(st->token, value + plen, tlen);
			st->token[tlen] = '\0';
			st->token_len = tlen;
		}
	} else if (namelen == 7 && memcmp(name, "apns-id", 7) == 0 &&
	    valuelen <= ASINK_APNS_ID_MAX) {
		memcpy(st->apns_id, value, valuelen);
		st->apns_id[valuelen] = '\0';
	}
	return 0;
}

static int
asink_on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t stream_id,
    const uint8_t *data, size_t len, void *arg)
{
	struct asink_conn *c = arg;

	(void)h2;
	(void)flags;
	(void)stream_id;
	(void)data;
	c->s->bytes += len;
	return 0;
}

static ssize_t
asink_read_err_body(nghttp2_session *h2, int32_t stream_id, uint8_t *buf,
    size_t len, uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct asink_stream *st = src->ptr;
	size_t left = strlen(st->err_body) - st->err_off;

	(void)h2;
	(void)stream_id;
	(void)arg;
	if (len > left)
		len = left;
	memcpy(buf, st->err_body + st->err_off, len);
	st->err_off += len;
	if (st->err_off == strlen(st->err_body))
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)len;
}

#define ASINK_NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), \
	sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

/* The request on stream_id is complete: answer it. */
static int
asink_answer(struct asink_conn *c, int32_t stream_id, struct asink_stream *st)
{
	struct asink *s = c->s;
	nghttp2_data_provider dp;
	nghttp2_nv nva[3];
	const char *status = "200";
	uint64_t id, gap = 0, now = bench_now_ns();
	int added;

	if (!st->post) {
		status = "405";
		st->err_body = "{\"reason\":\"MethodNotAllowed\"}";
	} else if (!st->device_path) {
		status = "404";
		st->err_body = "{\"reason\":\"BadPath\"}";
	} else if (!st->token_ok) {
		status = "400";
		st->err_body = "{\"reason\":\"BadDeviceToken\"}";
	}
	if (st->apns_id[0] == '\0') {
		/* Apple makes a UUID up when the request has none. */
		id = s->apns_ids++;
		snprintf(st->apns_id, sizeof(st->apns_id),
		    "%08" PRIX32 "-0000-4000-8000-%012" PRIX64,
		    (uint32_t)(id >> 48), (uint64_t)(id & 0xffffffffffffu));
	}
	nva[0] = (nghttp2_nv)ASINK_NV(":status", status);
	nva[1] = (nghttp2_nv)ASINK_NV("apns-id", st->apns_id);
	nva[2] = (nghttp2_nv)ASINK_NV("content-type", "application/json");
	if (st->err_body != NULL) {
		s->errors++;
		dp.source.ptr = st;
		dp.read_callback = asink_read_err_body;
		return nghttp2_submit_response(c->h2, stream_id, nva, 3,
		    &dp) == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	s->requests++;
	if ((added = asink_set_add(&s->set, st->token, st->token_len,
	    now, &gap)) == -1)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (added == 0 && now - gap >= s->report_ns) {
		bench_hist_add(&s->gaps, gap);
		if (s->gap_min_ns == 0 || gap < s->gap_min_ns)
			s->gap_min_ns = gap;
	}
	/* Apple answers a 200 with headers only. */
	return nghttp2_submit_response(c->h2, stream_id, nva, 2, NULL) == 0 ?
	    0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int
asink_on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame,
    void *arg)
{
	struct asink_conn *c = arg;
	struct asink_stream *st;

	if (frame->hd.type == NGHTTP2_RST_STREAM)
		c->s->resets++;
	if ((frame->hd.type != NGHTTP2_HEADERS &&
	    frame->hd.type != NGHTTP2_DATA) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
	    (st = nghttp2_session_get_stream_user_data(h2,
	    frame->hd.stream_id)) == NULL)
		return 0;
	return asink_answer(c, frame->hd.stream_id, st);
}

static int
asink_on_stream_close(nghttp2_session *h2, int32_t stream_id,
    uint32_t error_code, void *arg)
{
	(void)error_code;
	(void)arg;
	free(nghttp2_session_get_stream_user_data(h2, stream_id));
	return 0;
}

/* ---- connections ----------------------------------------------------- */

static void
asink_conn_watch(struct asink_conn *c, uint32_t events)
{
	struct epoll_event ev;

	if (c->events == events)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(c->s->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = events;
	else
		c->closing = true;
}

static void
asink_conn_free(struct asink_conn *c)
{
	struct asink *s = c->s;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->nconns--;
	if (c->why != NULL) {
		s->conn_errors++;
		if (s->conn_errors <= ASINK_ERR_SAMPLES) {
			fprintf(stderr, "apns-sink: connection failed: %s ",
			    c->why);
			ERR_print_errors_fp(stderr);
			fputc('\n', stderr);
		}
	}
	ERR_clear_error();
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	nghttp2_session_del(c->h2);	/* frees the streams' data */
	SSL_free(c->ssl);
	close(c->fd);
	free(c->out);
	free(c);
}

/* The handshake is over: HTTP/2 over it, or nothing. */
static int
asink_conn_start_h2(struct asink_conn *c)
{
	struct asink *s = c->s;
	const unsigned char *proto;
	unsigned int plen;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->max_streams },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, ASINK_STREAM_WINDOW },
	};

	SSL_get0_alpn_selected(c->ssl, &proto, &plen);
	if (plen != 2 || memcmp(proto, "h2", 2) != 0)
		return -1;	/* the ALPN callback makes this unreachable */
	if (nghttp2_session_server_new2(&c->h2, s->cbs, c, s->h2opt) != 0)
		return -1;
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv,
	    sizeof(iv) / sizeof(iv[0])) != 0 ||
	    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE,
	    0, ASINK_CONN_WINDOW) != 0)
		return -1;
	s->handshakes++;
	return 0;
}

/* Append what nghttp2 has to send to c->out; -1 on a session error. */
static int
asink_conn_gather(struct asink_conn *c)
{
	const uint8_t *p;
	ssize_t n;
	size_t cap;
	unsigned char *out;

	while ((n = nghttp2_session_mem_send(c->h2, &p)) > 0) {
		if (c->out_off == c->out_len)
			c->out_off = c->out_len = 0;
		if (c->out_len + (size_t)n > c->out_cap) {
			cap = c->out_cap > 0 ? c->out_cap : 16384;
			while (cap < c->out_len + (size_t)n)
				cap *= 2;
			if ((out = realloc(c->out, cap)) == NULL)
				return -1;
			c->out = out;
			c->out_cap = cap;
		}
		memcpy(c->out + c->out_len, p, (size_t)n);
		c->out_len += (size_t)n;
	}
	return n == 0 ? 0 : -1;
}

/* The connection failed: say why (a static string), close it after io. */
static int
asink_conn_fail(struct asink_conn *c, const char *why)
{
	c->closing = true;
	if (c->why == NULL)
		c->why = why;
	return -1;
}

/* Write what waits; 0 (all written or the socket is full), -1 on error. */
static int
asink_conn_flush(struct asink_conn *c)
{
	size_t done;

	while (c->out_off < c->out_len) {
		if (SSL_write_ex(c->ssl, c->out + c->out_off,
		    c->out_len - c->out_off, &done) == 1) {
			c->out_off += done;
			continue;
		}
		switch (SSL_get_error(c->ssl, 0)) {
		case SSL_ERROR_WANT_WRITE:
		case SSL_ERROR_WANT_READ:
			return 0;
		default:
			return asink_conn_fail(c, "tls-write");
		}
	}
	c->out_off = c->out_len = 0;
	return 0;
}

/* Read all OpenSSL has into nghttp2: 0 when it has no more, 1 when it
 * stopped because too much output waits, -1 when the connection is done
 * (peer closed, TLS or HTTP/2 error). */
static int
asink_conn_read(struct asink_conn *c)
{
	struct asink *s = c->s;
	ssize_t rv;
	size_t n;

	for (;;) {
		if (c->out_len - c->out_off > ASINK_OUT_MAX_BYTES)
			return 1;	/* read on once the peer reads */
		if (SSL_read_ex(c->ssl, s->rbuf, sizeof(s->rbuf), &n) != 1) {
			switch (SSL_get_error(c->ssl, 0)) {
			case SSL_ERROR_WANT_READ:
			case SSL_ERROR_WANT_WRITE:
				return 0;
			case SSL_ERROR_ZERO_RETURN:
				c->closing = true;	/* close_notify */
				return -1;
			case SSL_ERROR_SYSCALL:
				if (ERR_peek_error() == 0 && (errno == 0 ||
				    errno == ECONNRESET)) {
					c->closing = true;	/* EOF */
					return -1;
				}
				/* FALLTHROUGH */
			default:
				return asink_conn_fail(c, "tls-read");
			}
		}
		if ((rv = nghttp2_session_mem_recv(c->h2, s->rbuf, n)) !=
		    (ssize_t)n)
			return asink_conn_fail(c, rv < 0 ?
			    nghttp2_strerror((int)rv) : "h2-short-recv");
		/* Answer as we go: a long burst must not pile up. */
		if (asink_conn_gather(c) == -1)
			return asink_conn_fail(c, "h2-send");
	}
}

/* Whatever epoll reported: handshake, read, answer, write, re-arm. */
static void
asink_conn_io(struct asink_conn *c)
{
	struct asink *s = c->s;
	uint32_t want;
	int rv;

	if (c->h2 == NULL) {
		ERR_clear_error();
		if ((rv = SSL_accept(c->ssl)) != 1) {
			switch (SSL_get_error(c->ssl, rv)) {
			case SSL_ERROR_WANT_READ:
				asink_conn_watch(c, EPOLLIN);
				return;
			case SSL_ERROR_WANT_WRITE:
				asink_conn_watch(c, EPOLLOUT);
				return;
			default:
				/* No certificate, a foreign one, no h2. */
				s->tls_refused++;
				c->closing = true;
				return;
			}
		}
		if (asink_conn_start_h2(c) == -1) {
			asink_conn_fail(c, "h2-setup");
			return;
		}
	}
	/* Read, answer, write; again if reading stopped for the output and
	 * writing made room: OpenSSL may hold records the socket will not
	 * signal again. */
	do {
		ERR_clear_error();
		errno = 0;
		if ((rv = asink_conn_read(c)) == -1)
			return;		/* closing, and why if it failed */
		if (asink_conn_gather(c) == -1) {
			asink_conn_fail(c, "h2-send");
			return;
		}
		if (asink_conn_flush(c) == -1)
			return;
	} while (rv == 1 && c->out_len - c->out_off <= ASINK_OUT_MAX_BYTES);
	if (!nghttp2_session_want_read(c->h2) &&
	    !nghttp2_session_want_write(c->h2) && c->out_off == c->out_len) {
		c->closing = true;
		return;
	}
	/* Level-triggered: no EPOLLIN while reading is held back. */
	want = rv == 1 ? 0 : EPOLLIN;
	if (c->out_off < c->out_len)
		want |= EPOLLOUT;
	asink_conn_watch(c, want);
}

static void
asink_accept(struct asink *s)
{
	struct asink_conn *c;
	struct epoll_event ev;
	int fd, one = 1;

	while ((fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) != -1) {
		if (s->nconns >= ASINK_MAX_CONNS ||
		    (c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->s = s;
		c->fd = fd;
		if ((c->ssl = SSL_new(s->ctx)) == NULL ||
		    SSL_set_fd(c->ssl, fd) != 1) {
			SSL_free(c->ssl);
			free(c);
			close(fd);
			continue;
		}
		SSL_set_accept_state(c->ssl);
		memset(&ev, 0, sizeof(ev));
		ev.events = c->events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
			SSL_free(c->ssl);
			free(c);
			close(fd);
			continue;
		}
		c->next = s->conns;
		if (s->conns != NULL)
			s->conns->prev = c;
		s->conns = c;
		s->nconns++;
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
	    errno != ECONNABORTED)
		perror("apns-sink: accept4");
}

/* ---- set-up ---------------------------------------------------------- */

/* ALPN: h2 or the handshake fails, as Apple's servers do. */
static int
asink_on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&sel, outlen, asink_alpn_h2,
	    sizeof(asink_alpn_h2) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static void
asink_ssl_error(const char *what, const char *path)
{
	fprintf(stderr, "apns-sink: %s %s: ", what, path);
	ERR_print_errors_fp(stderr);
	fputc('\n', stderr);
}

static int
asink_tls_init(struct asink *s, const char *cert, const char *key,
    const char *ca)
{
	if ((s->ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		asink_ssl_error("SSL_CTX_new", "");
		return -1;
	}
	SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(s->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* libcurl closes without close_notify: that is an end, not an
	 * error, once HTTP/2 has framed every answer. */
	SSL_CTX_set_options(s->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* No resumption: clients here connect once. */
	SSL_CTX_set_num_tickets(s->ctx, 0);
	SSL_CTX_set_session_cache_mode(s->ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(s->ctx, cert) != 1) {
		asink_ssl_error("cannot load", cert);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(s->ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(s->ctx) != 1) {
		asink_ssl_error("cannot load", key);
		return -1;
	}
	SSL_CTX_set_alpn_select_cb(s->ctx, asink_on_alpn, NULL);
	if (!s->client_cert)
		return 0;
	if (SSL_CTX_load_verify_locations(s->ctx, ca, NULL) != 1) {
		asink_ssl_error("cannot load", ca);
		return -1;
	}
	SSL_CTX_set_client_CA_list(s->ctx, SSL_load_client_CA_file(ca));
	/* A certificate issued for TLS clients, chaining up to ca. */
	SSL_CTX_set_purpose(s->ctx, X509_PURPOSE_SSL_CLIENT);
	SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER |
	    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return 0;
}

static int
asink_h2_init(struct asink *s)
{
	if (nghttp2_session_callbacks_new(&s->cbs) != 0 ||
	    nghttp2_option_new(&s->h2opt) != 0)
		return -1;
	nghttp2_session_callbacks_set_on_begin_headers_callback(s->cbs,
	    asink_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(s->cbs,
	    asink_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(s->cbs,
	    asink_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(s->cbs,
	    asink_on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(s->cbs,
	    asink_on_stream_close);
	/*
	 * libcurl 7.88 sends RST_STREAM(STREAM_CLOSED) for a stream it is
	 * done with, after the answer, so proxyd resets every push stream.
	 * nghttp2's defence against "rapid reset" (CVE-2023-44487: a burst
	 * of 1000 resets, then 33 a second; backported to Debian's 1.52)
	 * would answer GOAWAY(INTERNAL_ERROR) every ~1000 pushes and fail
	 * the pushes in flight.  What Apple does with these resets is not
	 * known; this sink counts them (resets=) and lets them be.
	 */
	nghttp2_option_set_stream_reset_rate_limit(s->h2opt, UINT64_MAX,
	    UINT64_MAX);

	return 0;
}

static int
asink_listen(struct asink *s)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(s->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1 ||
	    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) == -1 ||
	    bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    listen(s->lfd, ASINK_BACKLOG) == -1 ||
	    getsockname(s->lfd, (struct sockaddr *)&sa, &len) == -1) {
		perror("apns-sink: listen");
		return -1;
	}
	s->port = ntohs(sa.sin_port);
	return 0;
}

/* SIGTERM, SIGINT and SIGUSR1 arrive on a descriptor in the epoll set. */
static int
asink_signals(struct asink *s)
{
	struct epoll_event ev;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
	    (s->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) ==
	    -1) {
		perror("apns-sink: signalfd");
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = &s->sigfd;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sigfd, &ev) == -1) {
		perror("apns-sink: epoll_ctl");
		return -1;
	}
	return 0;
}

static void
asink_report(struct asink *s)
{
	printf("requests=%" PRIu64 " distinct=%zu digest=%016" PRIx64
	    " conns=%" PRIu64 " errors=%" PRIu64 " tls_refused=%" PRIu64
	    " bytes=%" PRIu64 " resets=%" PRIu64 " gaps=%" PRIu64
	    " gap_min_us=%.0f gap_p50_us=%.0f gap_p99_us=%.0f\n", s->requests,
	    s->set.used, s->set.digest, s->handshakes,
	    s->errors + s->conn_errors, s->tls_refused, s->bytes, s->resets,
	    s->gaps.n, (double)s->gap_min_ns / NS_PER_US,
	    (double)bench_hist_quantile(&s->gaps, 500000) / NS_PER_US,
	    (double)bench_hist_quantile(&s->gaps, 990000) / NS_PER_US);
	fflush(stdout);
	/* Gaps are counted from one line to the next, between pushes both
	 * after the line. */
	memset(&s->gaps, 0, sizeof(s->gaps));
	s->gap_min_ns = 0;
	s->report_ns = bench_now_ns();
}

/* 1 to go on, 0 on SIGTERM or SIGINT. */
static int
asink_on_signal(struct asink *s)
{
	struct signalfd_siginfo si;

	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		asink_report(s);
		if (si.ssi_signo != SIGUSR1)
			return 0;
	}
	return 1;
}

static int
asink_run(struct asink *s)
{
	struct epoll_event evs[ASINK_EVENTS], ev;
	struct asink_conn *c;
	int i, n;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = s;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev) == -1) {
		perror("apns-sink: epoll_ctl");
		return -1;
	}
	for (;;) {
		if ((n = epoll_wait(s->epfd, evs, ASINK_EVENTS, -1)) == -1) {
			if (errno == EINTR)
				continue;
			perror("apns-sink: epoll_wait");
			return -1;
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == s) {
				asink_accept(s);
				continue;
			}
			if (evs[i].data.ptr == &s->sigfd) {
				if (asink_on_signal(s) == 0)
					return 0;
				continue;
			}
			c = evs[i].data.ptr;
			asink_conn_io(c);
			/* Nothing else points at c: free it now. */
			if (c->closing)
				asink_conn_free(c);
		}
	}
}

static void
asink_usage(FILE *f)
{
	fprintf(f,
	    "usage: apns-sink --cert PEM --key PEM (--ca PEM | "
	    "--no-client-cert)\n"
	    "                 [--port PORT] [--max-streams N]\n"
	    "  --cert, --key     the server's certificate chain and key\n"
	    "  --ca PEM          client certificates must chain up to it\n"
	    "  --no-client-cert  ask for none (for h2load)\n"
	    "  --port PORT       on 127.0.0.1 (default 0: any free port)\n"
	    "  --max-streams N   SETTINGS_MAX_CONCURRENT_STREAMS (default "
	    "%d)\n", ASINK_DEFAULT_STREAMS);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "ca", required_argument, NULL, 'a' },
		{ "no-client-cert", no_argument, NULL, 'N' },
		{ "port", required_argument, NULL, 'p' },
		{ "max-streams", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct asink s;	/* the read buffer is big */
	const char *cert = NULL, *key = NULL, *ca = NULL;
	unsigned long long v;
	int ch, status = 2;

	s.lfd = s.epfd = s.sigfd = -1;
	s.client_cert = true;
	s.max_streams = ASINK_DEFAULT_STREAMS;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'a': ca = optarg; break;
		case 'N': s.client_cert = false; break;
		case 'p':
			if (bench_parse_uint("apns-sink", "port", optarg, 0,
			    65535, &v) == -1)
				return 2;
			s.port = (uint16_t)v;
			break;
		case 'm':
			if (bench_parse_uint("apns-sink", "max-streams", optarg, 0,
			    ASINK_MAX_STREAMS, &v) == -1 || v == 0)
				return 2;
			s.max_streams = (uint32_t)v;
			break;
		case 'h':
			asink_usage(stdout);
			return 0;
		default:
			asink_usage(stderr);
			return 2;
		}
	}
	if (optind != argc || cert == NULL || key == NULL ||
	    (s.client_cert == (ca == NULL))) {
		asink_usage(stderr);
		return 2;
	}
	if (asink_set_init(&s.set) == -1 || asink_h2_init(&s) == -1 ||
	    asink_tls_init(&s, cert, key, ca) == -1 ||
	    (s.epfd = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    asink_signals(&s) == -1 || asink_listen(&s) == -1)
		goto out;
	printf("port=%u\n", s.port);
	fflush(stdout);
	if (asink_run(&s) == 0)
		status = 0;
out:
	while (s.conns != NULL)
		asink_conn_free(s.conns);
	if (s.lfd != -1)
		close(s.lfd);
	if (s.sigfd != -1)
		close(s.sigfd);
	if (s.epfd != -1)
		close(s.epfd);
	SSL_CTX_free(s.ctx);
	nghttp2_session_callbacks_del(s.cbs);
	nghttp2_option_del(s.h2opt);
	asink_set_free(&s.set);
	return status;
}
