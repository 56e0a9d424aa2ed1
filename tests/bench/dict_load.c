/*
 * dict-load: a load generator for the Dovecot dict protocol 3.2 over a Unix
 * stream socket, to benchmark metadata-dictd (see tests/bench/README.md).
 *
 * Every connection plays one Dovecot mail process that keeps its dict
 * connection open: it sends the handshake once, then keeps exactly one
 * request in flight, as the 2.3 client does for a synchronous lookup or
 * commit.  All connections share one epoll thread, so the generator's own
 * cost does not grow with the connection count (64 connections are 64
 * sockets, not 64 threads).  Latency (request written -> whole reply line
 * read) goes into a fixed log-linear histogram, so memory does not grow
 * with the length of the run.
 *
 * --mode baseline runs the lookup load against a trivial responder thread
 * inside this process, on a temporary socket.  That is the ceiling of the
 * generator plus the kernel on this machine; the bench script reports the
 * daemon's figures as a ratio to it, measured in the same run, because the
 * machine is shared and absolute figures drift.
 *
 * stdout gets exactly one line of key=value figures; diagnostics go to
 * stderr.  Exit status: 0 clean, 1 if any error was counted, 2 on bad usage
 * or a setup failure.
 *
 * Self-contained on purpose (libc and pthread only): the generator must
 * not share code, and so bugs, with the daemon it measures.
 */

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

static const char prog[] = "dict-load";


/* Protocol doc section 2: sent once per connection, never answered. */
#define LOAD_HANDSHAKE		"H3\t2\t0\t\tmetadata\n"
#define LOAD_USER_DOMAIN	"@example.org"
#define LOAD_PREFIX_MAX_CHARS	32
#define LOAD_USER_MAX_BYTES	(LOAD_PREFIX_MAX_CHARS + 32)
/* A chatmail device token is "openpgp:" and ~700 bytes of base64. */
#define LOAD_TOKEN_PREFIX	"openpgp:"
#define LOAD_TOKEN_BODY_CHARS	700
#define LOAD_TOKEN_BYTES	(sizeof(LOAD_TOKEN_PREFIX) - 1 + \
				    LOAD_TOKEN_BODY_CHARS)
/* Handshake plus the largest request (a set transaction), with room. */
#define LOAD_REQ_MAX_BYTES	2048
#define LOAD_IN_INIT_BYTES	4096
/* A lookup reply joins every token of the user (metadata-dictd.md), so it
 * can be long after set mode piled tokens up; past this we call it broken. */
#define LOAD_IN_MAX_BYTES	(1024 * 1024)
/* Dovecot's own connect timeout (protocol doc section 5). */
#define LOAD_CONNECT_TIMEOUT_MS	1000
/* After the run, outstanding replies get this long; Dovecot would wait
 * 30 s, but a reply that late has already ruined the figures. */
#define LOAD_DRAIN_TIMEOUT_NS	(10 * NS_PER_S)
#define LOAD_PREPARE_TIMEOUT_NS	(120 * NS_PER_S)
/* epoll_wait never sleeps longer, so phase ends are noticed in time. */
#define LOAD_TICK_MS		100
#define LOAD_EVENTS		256
#define LOAD_ERR_SAMPLES	5
#define LOAD_ERR_DETAIL_BYTES	100
#define LOAD_MAX_CONNS		10000
#define LOAD_DEFAULT_USERS	10000
#define LOAD_DEFAULT_WARMUP_S	1.0

/* The baseline responder's per-client line buffer: our requests are
 * below LOAD_REQ_MAX_BYTES. */
#define LOAD_STUB_IN_BYTES	8192
#define LOAD_SUN_PATH_BYTES	sizeof(((struct sockaddr_un *)0)->sun_path)

enum load_mode {
	LOAD_MODE_LOOKUP,
	LOAD_MODE_SET,
	LOAD_MODE_NOTIFY,
	LOAD_MODE_BASELINE,
	LOAD_MODE_PREPARE,	/* internal: one fixed token per user */
};

static const char *const load_mode_names[] = {
	[LOAD_MODE_LOOKUP] = "lookup",
	[LOAD_MODE_SET] = "set",
	[LOAD_MODE_NOTIFY] = "notify",
	[LOAD_MODE_BASELINE] = "baseline",
	[LOAD_MODE_PREPARE] = "prepare",
};

enum load_err {
	LOAD_ERR_REPLY,		/* a reply of the wrong kind */
	LOAD_ERR_CLOSED,	/* EOF or a socket error */
	LOAD_ERR_STRAY,		/* bytes with no request in flight */
	LOAD_ERR_TOO_LONG,	/* a reply line above LOAD_IN_MAX_BYTES */
	LOAD_ERR_TIMEOUT,	/* no reply within the drain time */
	LOAD_ERR_CONNECT,
	LOAD_ERR_COUNT,
};

static const char *const load_err_names[] = {
	[LOAD_ERR_REPLY] = "bad-reply",
	[LOAD_ERR_CLOSED] = "closed",
	[LOAD_ERR_STRAY] = "stray-reply",
	[LOAD_ERR_TOO_LONG] = "line-too-long",
	[LOAD_ERR_TIMEOUT] = "timeout",
	[LOAD_ERR_CONNECT] = "connect",
};

struct load_opts {
	const char	*socket_path;
	enum load_mode	 mode;
	unsigned	 conns;
	double		 duration_s;
	double		 warmup_s;
	uint32_t	 users;
	bool		 prepare;
	bool		 check;
	const char	*user_prefix;
};

enum load_conn_state {
	LOAD_CONN_IDLE,		/* connected, nothing in flight */
	LOAD_CONN_BUSY,		/* one request in flight */
	LOAD_CONN_BROKEN,	/* closed; the loop reconnects it */
	LOAD_CONN_DEAD,		/* gave up on it */
};

struct load_conn {
	int			 fd;
	unsigned		 idx;
	enum load_conn_state	 state;
	bool			 greeted;	/* sent H on this fd */
	bool			 watch_out;	/* EPOLLOUT registered */
	uint64_t		 next_txn_id;
	uint64_t		 seq;		/* requests issued */
	uint64_t		 rng;
	uint32_t		 user;		/* of the request */
	uint64_t		 sent_ns;
	size_t			 out_len;
	size_t			 out_off;
	char			 out[LOAD_REQ_MAX_BYTES];
	char			*in;
	size_t			 in_len;
	size_t			 in_cap;
};

struct load_ctx {
	struct load_opts	 opt;
	int			 epfd;
	struct load_conn	*conns;
	uint64_t		 run_nonce;	/* new set tokens per run */
	uint64_t		 prefix_hash;

	/* the phase being run */
	enum load_mode		 kind;
	bool			 stopping;	/* issue nothing more */
	uint64_t		 measure_start_ns;
	uint64_t		 stop_ns;
	uint32_t		 prepare_next;
	uint32_t		 prepare_done;

	unsigned		 busy;		/* conns LOAD_CONN_BUSY */
	unsigned		 alive;		/* conns not dead */
	unsigned		 broken;	/* conns in LOAD_CONN_BROKEN */

	struct bench_hist	 hist;		/* measured window only */
	struct bench_hist	 prep_hist;
	uint64_t		 ops;		/* good, in the window */
	uint64_t		 all_ops;	/* good, warmup included */
	uint64_t		 found;		/* O to L, in window */
	uint64_t		 errs[LOAD_ERR_COUNT];
	unsigned		 err_samples;
};

struct load_stub_client {
	struct load_stub_client	*next;
	int			 fd;
	size_t			 in_len;
	char			 in[LOAD_STUB_IN_BYTES];
};

/* The baseline responder: no storage, one epoll thread. */
struct load_stub {
	char			 dir[PATH_MAX];
	char			 path[LOAD_SUN_PATH_BYTES];
	int			 lfd;
	int			 epfd;
	int			 wakefd;
	pthread_t		 thread;
	struct load_stub_client	*clients;	/* all ever accepted */
};

/* splitmix64: cheap, and good enough that users and tokens look random. */
static uint64_t
load_mix64(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t
load_rand(uint64_t *state)
{
	*state += 0x9e3779b97f4a7c15ull;
	return load_mix64(*state);
}

static uint64_t
load_hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static double
load_us(uint64_t ns)
{
	return (double)ns / (double)NS_PER_US;
}

/* Count one error; the first few also go to stderr with their detail,
 * which is what tells a daemon bug from a generator bug. */
static void
load_error(struct load_ctx *ctx, const struct load_conn *c,
    enum load_err kind, const char *detail, size_t len)
{
	char esc[LOAD_ERR_DETAIL_BYTES * 4 + 8];

	ctx->errs[kind]++;
	if (ctx->err_samples >= LOAD_ERR_SAMPLES)
		return;
	ctx->err_samples++;
	bench_escape(detail, len, LOAD_ERR_DETAIL_BYTES, esc, sizeof(esc));
	fprintf(stderr, "dict-load: conn=%u mode=%s error=%s detail=\"%s\"%s\n",
	    c->idx, load_mode_names[ctx->kind], load_err_names[kind], esc,
	    ctx->err_samples == LOAD_ERR_SAMPLES ?
	    " (no more error samples)" : "");
}

static uint64_t
load_errors_total(const struct load_ctx *ctx)
{
	uint64_t total = 0;
	unsigned i;

	for (i = 0; i < LOAD_ERR_COUNT; i++)
		total += ctx->errs[i];
	return total;
}

static void
load_user_name(const struct load_ctx *ctx, uint32_t user, char *buf,
    size_t size)
{
	snprintf(buf, size, "%s%" PRIu32 LOAD_USER_DOMAIN,
	    ctx->opt.user_prefix, user);
}

/* The user's INBOX GUID: 32 lowercase hex digits, fixed per user. */
static void
load_user_guid(const struct load_ctx *ctx, uint32_t user, char buf[33])
{
	uint64_t a, b;

	a = load_mix64(ctx->prefix_hash ^ (0x6775696400000000ull + user));
	b = load_mix64(a);
	snprintf(buf, 33, "%016" PRIx64 "%016" PRIx64, a, b);
}

/* Fill buf (LOAD_TOKEN_BYTES + 1) with "openpgp:" and base64-like text
 * derived from seed.  The alphabet needs no tab-escaping on the wire. */
static void
load_token_make(uint64_t seed, char *buf)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const size_t plen = sizeof(LOAD_TOKEN_PREFIX) - 1;
	uint64_t state = seed, r = 0;
	unsigned left = 0;
	size_t i;

	memcpy(buf, LOAD_TOKEN_PREFIX, plen);
	for (i = 0; i < LOAD_TOKEN_BODY_CHARS; i++) {
		if (left == 0) {
			r = load_rand(&state);
			left = 10;
		}
		buf[plen + i] = b64[r & 63];
		r >>= 6;
		left--;
	}
	buf[plen + LOAD_TOKEN_BODY_CHARS] = '\0';
}

/* The token --prepare sets for a user: fixed, so preparing twice
 * refreshes the token instead of adding a second one. */
static void
load_token_prepared(const struct load_ctx *ctx, uint32_t user, char *buf)
{
	load_token_make(ctx->prefix_hash ^ (0x7072657000000000ull + user), buf);
}

/*
 * 1 if the lookup value (up to an optional TAB and timing fields) holds
 * tok as one of its space-separated tokens, 0 if not.
 */
static int
load_value_has_token(const char *v, size_t len, const char *tok,
    size_t toklen)
{
	const char *end, *tab, *word, *sp;

	if ((tab = memchr(v, '\t', len)) != NULL)
		len = (size_t)(tab - v);
	end = v + len;
	for (word = v; word < end; word = sp + 1) {
		if ((sp = memchr(word, ' ', (size_t)(end - word))) == NULL)
			sp = end;
		if ((size_t)(sp - word) == toklen &&
		    memcmp(word, tok, toklen) == 0)
			return 1;
	}
	return 0;
}

/* Whether line is the reply the request in flight on c asks for. */
static bool
load_reply_ok(const struct load_ctx *ctx, const struct load_conn *c,
    const char *line, size_t len)
{
	char tok[LOAD_TOKEN_BYTES + 1];

	if (len == 0)
		return false;
	switch (ctx->kind) {
	case LOAD_MODE_LOOKUP:
	case LOAD_MODE_BASELINE:
		if (line[0] == 'N')
			return !ctx->opt.check;
		if (line[0] != 'O')
			return false;
		if (!ctx->opt.check)
			return true;
		load_token_prepared(ctx, c->user, tok);
		return load_value_has_token(line + 1, len - 1, tok,
		    LOAD_TOKEN_BYTES) == 1;
	case LOAD_MODE_SET:
	case LOAD_MODE_NOTIFY:
	case LOAD_MODE_PREPARE:
		/* Protocol doc section 4: O[<id>] is the only success. */
		return line[0] == 'O';
	}
	return false;
}

static void
load_conn_watch(struct load_ctx *ctx, struct load_conn *c, bool out)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

	if (out == c->watch_out)
		return;
	if (out)
		ev.events |= EPOLLOUT;
	if (epoll_ctl(ctx->epfd, EPOLL_CTL_MOD, c->fd, &ev) == -1) {
		perror("dict-load: epoll_ctl");
		abort();	/* only fails on a broken invariant */
	}
	c->watch_out = out;
}

/* Close c's socket and leave it for the loop to reconnect: callers up the
 * stack may still hold c, so it must stay valid (no free here). */
static void
load_conn_break(struct load_ctx *ctx, struct load_conn *c,
    enum load_err kind, const char *detail, size_t len)
{
	load_error(ctx, c, kind, detail, len);
	if (c->state == LOAD_CONN_BUSY)
		ctx->busy--;
	close(c->fd);
	c->fd = -1;
	c->in_len = 0;
	c->state = LOAD_CONN_BROKEN;
	ctx->broken++;
}

static void
load_conn_flush(struct load_ctx *ctx, struct load_conn *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				load_conn_watch(ctx, c, true);
				return;
			}
			load_conn_break(ctx, c, LOAD_ERR_CLOSED,
			    strerror(errno), strlen(strerror(errno)));
			return;
		}
		c->out_off += (size_t)n;
	}
	load_conn_watch(ctx, c, false);
}

/* Put the next request of the phase on c, if c is idle and the phase
 * wants more.  Request shapes are those of protocol doc section 6. */
static void
load_conn_issue(struct load_ctx *ctx, struct load_conn *c)
{
	char user_s[LOAD_USER_MAX_BYTES], guid[33], tok[LOAD_TOKEN_BYTES + 1];
	size_t len = 0, room;
	uint64_t id;
	uint32_t user;
	int n = -1;

	if (c->state != LOAD_CONN_IDLE || ctx->stopping)
		return;
	if (ctx->kind == LOAD_MODE_PREPARE) {
		if (ctx->prepare_next >= ctx->opt.users)
			return;
		user = ctx->prepare_next++;
	} else
		user = (uint32_t)(load_rand(&c->rng) % ctx->opt.users);
	c->user = user;
	load_user_name(ctx, user, user_s, sizeof(user_s));
	load_user_guid(ctx, user, guid);

	/* Dovecot writes H in the same burst as its first command. */
	if (!c->greeted) {
		len = sizeof(LOAD_HANDSHAKE) - 1;
		memcpy(c->out, LOAD_HANDSHAKE, len);
		c->greeted = true;
	}
	room = sizeof(c->out) - len;
	/* Ids count up per connection; the daemon keys by (conn, id). */
	id = c->next_txn_id;
	switch (ctx->kind) {
	case LOAD_MODE_LOOKUP:
	case LOAD_MODE_BASELINE:
		n = snprintf(c->out + len, room, "Lpriv/%s/devicetoken\t%s\n",
		    guid, user_s);
		break;
	case LOAD_MODE_SET:
	case LOAD_MODE_PREPARE:
		if (ctx->kind == LOAD_MODE_SET)
			/* New per request and per run, so each set adds a
			 * device instead of refreshing one. */
			load_token_make(load_mix64(ctx->run_nonce ^
			    ((uint64_t)c->idx << 40) ^ c->seq), tok);
		else
			load_token_prepared(ctx, user, tok);
		n = snprintf(c->out + len, room, "B%" PRIu64 "\t%s\n"
		    "S%" PRIu64 "\tpriv/%s/devicetoken\t%s\nC%" PRIu64 "\n",
		    id, user_s, id, guid, tok, id);
		c->next_txn_id++;
		break;
	case LOAD_MODE_NOTIFY:
		/* What the Lua push script does on LMTP delivery. */
		n = snprintf(c->out + len, room, "B%" PRIu64 "\t%s\n"
		    "S%" PRIu64 "\tpriv/%s/messagenew\t\nC%" PRIu64 "\n",
		    id, user_s, id, guid, id);
		c->next_txn_id++;
		break;
	}
	if (n < 0 || (size_t)n >= room)
		abort();	/* sizes are compile-time constants */
	c->out_len = len + (size_t)n;
	c->out_off = 0;
	c->seq++;
	c->state = LOAD_CONN_BUSY;
	ctx->busy++;
	c->sent_ns = bench_now_ns();
	load_conn_flush(ctx, c);
}

static void
load_conn_on_reply(struct load_ctx *ctx, struct load_conn *c,
    const char *line, size_t len, uint64_t now)
{
	uint64_t lat = now - c->sent_ns;

	c->state = LOAD_CONN_IDLE;
	ctx->busy--;
	if (!load_reply_ok(ctx, c, line, len)) {
		load_error(ctx, c, LOAD_ERR_REPLY, line, len);
		return;
	}
	if (ctx->kind == LOAD_MODE_PREPARE) {
		ctx->prepare_done++;
		bench_hist_add(&ctx->prep_hist, lat);
		return;
	}
	ctx->all_ops++;
	/* Only replies inside the window count: warmup fills caches and
	 * the WAL, and replies after the end come from the drain. */
	if (now < ctx->measure_start_ns || now > ctx->stop_ns)
		return;
	ctx->ops++;
	bench_hist_add(&ctx->hist, lat);
	if (line[0] == 'O' && (ctx->kind == LOAD_MODE_LOOKUP ||
	    ctx->kind == LOAD_MODE_BASELINE))
		ctx->found++;
}

/* Read what is there, handle each complete reply line, then issue the
 * next request at once: one request in flight, never zero for long. */
static void
load_conn_on_readable(struct load_ctx *ctx, struct load_conn *c)
{
	char *start, *nl, *end;
	ssize_t n;
	uint64_t now;

	if (c->in_len == c->in_cap) {
		size_t cap = c->in_cap * 2;
		char *p;

		if (c->in_cap >= LOAD_IN_MAX_BYTES) {
			load_conn_break(ctx, c, LOAD_ERR_TOO_LONG, c->in,
			    c->in_len);
			return;
		}
		if (cap > LOAD_IN_MAX_BYTES)
			cap = LOAD_IN_MAX_BYTES;
		if ((p = realloc(c->in, cap)) == NULL) {
			perror("dict-load: realloc");
			abort();
		}
		c->in = p;
		c->in_cap = cap;
	}
	n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	if (n == 0) {
		load_conn_break(ctx, c, LOAD_ERR_CLOSED, "eof", 3);
		return;
	}
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		load_conn_break(ctx, c, LOAD_ERR_CLOSED, strerror(errno),
		    strlen(strerror(errno)));
		return;
	}
	now = bench_now_ns();
	c->in_len += (size_t)n;
	start = c->in;
	end = c->in + c->in_len;
	while ((nl = memchr(start, '\n', (size_t)(end - start))) != NULL) {
		/* A line with no request waiting breaks the pairing of
		 * replies to requests for the rest of this connection, as
		 * it would for Dovecot (protocol doc section 4). */
		if (c->state != LOAD_CONN_BUSY) {
			load_conn_break(ctx, c, LOAD_ERR_STRAY, start,
			    (size_t)(nl - start));
			return;
		}
		load_conn_on_reply(ctx, c, start, (size_t)(nl - start), now);
		start = nl + 1;
	}
	c->in_len = (size_t)(end - start);
	memmove(c->in, start, c->in_len);
	if (c->state != LOAD_CONN_IDLE)
		return;
	if (c->in_len > 0) {
		load_conn_break(ctx, c, LOAD_ERR_STRAY, c->in, c->in_len);
		return;
	}
	load_conn_issue(ctx, c);
}

/* A connected, non-blocking socket, or -1 with errno set. */
static int
load_connect(const char *path)
{
	struct sockaddr_un sun;
	struct timeval tv = {
		.tv_sec = LOAD_CONNECT_TIMEOUT_MS / 1000,
		.tv_usec = (LOAD_CONNECT_TIMEOUT_MS % 1000) * 1000,
	};
	int fd, saved, flags;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	/*
	 * Connect blocking, bounded by SO_SNDTIMEO: a non-blocking connect
	 * on a Unix socket fails with EAGAIN as soon as the listen backlog
	 * is full, which 64 connections at once can do.
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    (flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Connect c (again); on failure c is dead for the rest of the run. */
static void
load_conn_open(struct load_ctx *ctx, struct load_conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	const char *why;

	if ((c->fd = load_connect(ctx->opt.socket_path)) == -1 ||
	    epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1) {
		why = strerror(errno);
		load_error(ctx, c, LOAD_ERR_CONNECT, why, strlen(why));
		if (c->fd != -1)
			close(c->fd);
		c->fd = -1;
		c->state = LOAD_CONN_DEAD;
		return;
	}
	c->state = LOAD_CONN_IDLE;
	c->greeted = false;
	c->watch_out = false;
	c->in_len = 0;
	ctx->alive++;
}

/* Reconnect what broke during the last batch of events, as Dovecot
 * would for its next command.  During a drain nothing is sent, so a broken
 * connection waits for the next phase (prepare is followed by the run). */
static void
load_conns_repair(struct load_ctx *ctx)
{
	struct load_conn *c;
	unsigned i;

	if (ctx->stopping)
		return;
	for (i = 0; i < ctx->opt.conns && ctx->broken > 0; i++) {
		c = &ctx->conns[i];
		if (c->state != LOAD_CONN_BROKEN)
			continue;
		ctx->broken--;
		ctx->alive--;
		c->state = LOAD_CONN_DEAD;
		load_conn_open(ctx, c);
		load_conn_issue(ctx, c);
	}
}

/* The drain ran out: every request still in flight is a timeout. */
static void
load_conns_expire(struct load_ctx *ctx)
{
	struct load_conn *c;
	unsigned i;

	for (i = 0; i < ctx->opt.conns; i++) {
		c = &ctx->conns[i];
		if (c->state != LOAD_CONN_BUSY)
			continue;
		load_conn_break(ctx, c, LOAD_ERR_TIMEOUT, "no reply", 8);
	}
}

/*
 * Run one phase: issue kind requests on every connection until stop_ns
 * (or, for prepare, until every user is done), then wait for the replies
 * in flight.  -1 only if epoll itself fails.
 */
static int
load_run(struct load_ctx *ctx, enum load_mode kind, uint64_t measure_start_ns,
    uint64_t stop_ns)
{
	struct epoll_event ev[LOAD_EVENTS];
	struct load_conn *c;
	uint64_t now, next, drain_end = 0;
	unsigned i;
	int n, timeout;

	ctx->kind = kind;
	ctx->stopping = false;
	ctx->measure_start_ns = measure_start_ns;
	ctx->stop_ns = stop_ns;
	load_conns_repair(ctx);
	for (i = 0; i < ctx->opt.conns; i++)
		load_conn_issue(ctx, &ctx->conns[i]);
	for (;;) {
		load_conns_repair(ctx);
		now = bench_now_ns();
		if (!ctx->stopping && (now >= ctx->stop_ns ||
		    (kind == LOAD_MODE_PREPARE &&
		    ctx->prepare_next >= ctx->opt.users))) {
			ctx->stopping = true;
			drain_end = now + LOAD_DRAIN_TIMEOUT_NS;
		}
		if (ctx->busy == 0 && (ctx->stopping || ctx->alive == 0))
			break;
		if (ctx->stopping && now >= drain_end) {
			load_conns_expire(ctx);
			break;
		}
		next = ctx->stopping ? drain_end : ctx->stop_ns;
		if (next <= now)
			timeout = 0;
		else if (next - now >= LOAD_TICK_MS * NS_PER_MS)
			timeout = LOAD_TICK_MS;
		else
			timeout = (int)((next - now) / NS_PER_MS) + 1;
		n = epoll_wait(ctx->epfd, ev, LOAD_EVENTS, timeout);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			perror("dict-load: epoll_wait");
			return -1;
		}
		for (i = 0; i < (unsigned)n; i++) {
			c = ev[i].data.ptr;
			/* Broken earlier in this batch: stale events. */
			if (c->state == LOAD_CONN_BROKEN ||
			    c->state == LOAD_CONN_DEAD)
				continue;
			if (ev[i].events & EPOLLOUT && c->watch_out)
				load_conn_flush(ctx, c);
			if (c->fd != -1 && ev[i].events &
			    (EPOLLIN | EPOLLHUP | EPOLLERR))
				load_conn_on_readable(ctx, c);
		}
	}
	return 0;
}

/* ---- the baseline responder ------------------------------------------ */

/* Answer every complete line in cl's buffer: N to L, O to C, the end line
 * to I, nothing to the rest (protocol doc section 8, rule 1).  -1 if the
 * client must go. */
static int
load_stub_on_lines(struct load_stub_client *cl)
{
	char out[LOAD_STUB_IN_BYTES], *start, *nl, *end;
	size_t olen = 0;
	ssize_t n;

	start = cl->in;
	end = cl->in + cl->in_len;
	while ((nl = memchr(start, '\n', (size_t)(end - start))) != NULL) {
		switch (start[0]) {
		case 'L':
			memcpy(out + olen, "N\n", 2);
			olen += 2;
			break;
		case 'C':
			memcpy(out + olen, "O\n", 2);
			olen += 2;
			break;
		case 'I':
			out[olen++] = '\n';
			break;
		default:
			break;
		}
		start = nl + 1;
	}
	cl->in_len = (size_t)(end - start);
	memmove(cl->in, start, cl->in_len);
	if (cl->in_len == sizeof(cl->in))
		return -1;	/* a line longer than any we send */
	if (olen == 0)
		return 0;
	/*
	 * Our clients keep one request in flight, so a reply of a few bytes
	 * always fits the socket buffer; a short write would mean a client
	 * that is not ours, and it is dropped rather than buffered.
	 */
	n = send(cl->fd, out, olen, MSG_NOSIGNAL);
	return n == (ssize_t)olen ? 0 : -1;
}

static void
load_stub_accept(struct load_stub *st)
{
	struct load_stub_client *cl;
	struct epoll_event ev = { .events = EPOLLIN };
	int fd;

	while ((fd = accept4(st->lfd, NULL, NULL,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
		if ((cl = calloc(1, sizeof(*cl))) == NULL) {
			perror("dict-load: stub: calloc");
			abort();
		}
		cl->fd = fd;
		cl->next = st->clients;
		st->clients = cl;
		ev.data.ptr = cl;
		if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
			perror("dict-load: stub: epoll_ctl");
			close(fd);
			cl->fd = -1;
		}
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		perror("dict-load: stub: accept4");
}

static void *
load_stub_main(void *arg)
{
	struct load_stub *st = arg;
	struct epoll_event ev[LOAD_EVENTS];
	struct load_stub_client *cl;
	ssize_t r;
	int i, n;

	for (;;) {
		if ((n = epoll_wait(st->epfd, ev, LOAD_EVENTS, -1)) == -1) {
			if (errno == EINTR)
				continue;
			perror("dict-load: stub: epoll_wait");
			return NULL;
		}
		for (i = 0; i < n; i++) {
			if (ev[i].data.ptr == &st->wakefd)
				return NULL;
			if (ev[i].data.ptr == &st->lfd) {
				load_stub_accept(st);
				continue;
			}
			cl = ev[i].data.ptr;
			if (cl->fd == -1)
				continue;
			r = recv(cl->fd, cl->in + cl->in_len,
			    sizeof(cl->in) - cl->in_len, 0);
			if (r == -1 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r > 0) {
				cl->in_len += (size_t)r;
				if (load_stub_on_lines(cl) == 0)
					continue;
			}
			close(cl->fd);
			cl->fd = -1;
		}
	}
}

/* Listen on a fresh private directory and start the responder thread.
 * 0, or -1 with the reason on stderr. */
static int
load_stub_start(struct load_stub *st)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct sockaddr_un sun;
	const char *tmp = getenv("TMPDIR");
	int rc;

	memset(st, 0, sizeof(*st));
	st->lfd = st->epfd = st->wakefd = -1;
	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	if ((size_t)snprintf(st->dir, sizeof(st->dir), "%s/dict-load.XXXXXX",
	    tmp) >= sizeof(st->dir) || mkdtemp(st->dir) == NULL) {
		fprintf(stderr, "dict-load: stub: mkdtemp %s: %s\n", st->dir,
		    strerror(errno));
		st->dir[0] = '\0';
		return -1;
	}
	if ((size_t)snprintf(st->path, sizeof(st->path), "%s/stub.sock",
	    st->dir) >= sizeof(st->path)) {
		fprintf(stderr, "dict-load: stub: %s: path too long\n",
		    st->dir);
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, st->path, strlen(st->path) + 1);
	if ((st->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1 ||
	    bind(st->lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(st->lfd, SOMAXCONN) == -1 ||
	    (st->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (st->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
		fprintf(stderr, "dict-load: stub: listen %s: %s\n", st->path,
		    strerror(errno));
		return -1;
	}
	ev.data.ptr = &st->lfd;
	if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, st->lfd, &ev) == -1)
		goto fail;
	ev.data.ptr = &st->wakefd;
	if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, st->wakefd, &ev) == -1)
		goto fail;
	if ((rc = pthread_create(&st->thread, NULL, load_stub_main, st)) != 0) {
		errno = rc;
		goto fail;
	}
	return 0;
fail:
	fprintf(stderr, "dict-load: stub: %s\n", strerror(errno));
	return -1;
}

/* Stop the thread if it runs, free everything, remove the directory. */
static void
load_stub_stop(struct load_stub *st, bool running)
{
	struct load_stub_client *cl, *next;
	uint64_t one = 1;

	if (running) {
		if (write(st->wakefd, &one, sizeof(one)) != sizeof(one))
			perror("dict-load: stub: wake");
		pthread_join(st->thread, NULL);
	}
	for (cl = st->clients; cl != NULL; cl = next) {
		next = cl->next;
		if (cl->fd != -1)
			close(cl->fd);
		free(cl);
	}
	if (st->lfd != -1)
		close(st->lfd);
	if (st->epfd != -1)
		close(st->epfd);
	if (st->wakefd != -1)
		close(st->wakefd);
	if (st->path[0] != '\0')
		unlink(st->path);
	if (st->dir[0] != '\0')
		rmdir(st->dir);
}

/* ---- setup and report ------------------------------------------------ */

static void
load_usage(FILE *f)
{
	fprintf(f,
	    "usage: dict-load --socket PATH --mode set|lookup|notify|baseline\n"
	    "                 --connections N --duration SECONDS [--users U]\n"
	    "                 [--warmup SECONDS] [--prepare] [--check]\n"
	    "                 [--user-prefix P]\n"
	    "  --users U        users <P><i>@example.org, i < U (default %d)\n"
	    "  --warmup S       not measured, before the run (default 1)\n"
	    "  --prepare        first set one fixed token for every user;\n"
	    "                   with --duration 0 that is all it does\n"
	    "  --check          lookup: every reply must be O and hold the\n"
	    "                   user's --prepare token\n"
	    "  --user-prefix P  user name prefix (default \"user\"), to keep\n"
	    "                   the users of one run apart from another's\n"
	    "  --duration 0     without --prepare: connect, then stop (a\n"
	    "                   readiness probe)\n"
	    "baseline ignores --socket: it runs lookups against a trivial\n"
	    "responder thread of its own.\n", LOAD_DEFAULT_USERS);
}

static int
load_parse_secs(const char *name, const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(*out >= 0) ||
	    *out > 86400) {
		fprintf(stderr, "dict-load: --%s: want seconds in 0..86400, "
		    "got \"%s\"\n", name, s);
		return -1;
	}
	return 0;
}

/* 0, -1 on bad usage (reason on stderr), 1 after --help. */
static int
load_parse_args(int argc, char **argv, struct load_opts *o)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "mode", required_argument, NULL, 'm' },
		{ "connections", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 'd' },
		{ "users", required_argument, NULL, 'u' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "prepare", no_argument, NULL, 'p' },
		{ "check", no_argument, NULL, 'k' },
		{ "user-prefix", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_mode = false, have_conns = false, have_dur = false;
	unsigned long long v;
	size_t i;
	int ch;

	memset(o, 0, sizeof(*o));
	o->users = LOAD_DEFAULT_USERS;
	o->warmup_s = LOAD_DEFAULT_WARMUP_S;
	o->user_prefix = "user";
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			o->socket_path = optarg;
			break;
		case 'm':
			for (i = 0; i < LOAD_MODE_PREPARE; i++)
				if (strcmp(optarg, load_mode_names[i]) == 0)
					break;
			if (i == LOAD_MODE_PREPARE) {
				fprintf(stderr, "dict-load: --mode: unknown "
				    "\"%s\"\n", optarg);
				return -1;
			}
			o->mode = (enum load_mode)i;
			have_mode = true;
			break;
		case 'c':
			if (bench_parse_uint(prog, "connections", optarg, 1,
			    LOAD_MAX_CONNS, &v) == -1)
				return -1;
			o->conns = (unsigned)v;
			have_conns = true;
			break;
		case 'd':
			if (load_parse_secs("duration", optarg,
			    &o->duration_s) == -1)
				return -1;
			have_dur = true;
			break;
		case 'u':
			if (bench_parse_uint(prog, "users", optarg, 1,
			    UINT32_MAX, &v) == -1)
				return -1;
			o->users = (uint32_t)v;
			break;
		case 'w':
			if (load_parse_secs("warmup", optarg,
			    &o->warmup_s) == -1)
				return -1;
			break;
		case 'p':
			o->prepare = true;
			break;
		case 'k':
			o->check = true;
			break;
		case 'P':
			o->user_prefix = optarg;
			break;
		case 'h':
			load_usage(stdout);
			return 1;
		default:
			load_usage(stderr);
			return -1;
		}
	}
	if (optind != argc || !have_mode || !have_conns || !have_dur) {
		load_usage(stderr);
		return -1;
	}
	if (o->mode != LOAD_MODE_BASELINE && o->socket_path == NULL) {
		fprintf(stderr, "dict-load: --socket is required\n");
		return -1;
	}
	if (o->mode == LOAD_MODE_BASELINE && (o->prepare || o->check)) {
		fprintf(stderr, "dict-load: baseline stores nothing: no "
		    "--prepare or --check\n");
		return -1;
	}
	if (o->check && o->mode != LOAD_MODE_LOOKUP) {
		fprintf(stderr, "dict-load: --check is for lookup mode\n");
		return -1;
	}
	/* The prefix goes into user names raw, so keep it to bytes that
	 * need no tab-escaping. */
	if (strlen(o->user_prefix) > LOAD_PREFIX_MAX_CHARS ||
	    strspn(o->user_prefix, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
	    strlen(o->user_prefix)) {
		fprintf(stderr, "dict-load: --user-prefix: up to %d of "
		    "[A-Za-z0-9._-]\n", LOAD_PREFIX_MAX_CHARS);
		return -1;
	}
	return 0;
}

static void
load_report(const struct load_ctx *ctx, const char *mode, uint64_t ops,
    uint64_t all_ops, double secs, const struct bench_hist *h)
{
	char found[48] = "";

	if (strcmp(mode, "lookup") == 0 || strcmp(mode, "baseline") == 0)
		snprintf(found, sizeof(found), " found=%" PRIu64, ctx->found);
	printf("dict-load mode=%s conns=%u users=%" PRIu32 " ops=%" PRIu64
	    " secs=%.2f ops_per_s=%.0f mean_us=%.0f p50_us=%.0f p90_us=%.0f"
	    " p99_us=%.0f p999_us=%.0f max_us=%.0f all_ops=%" PRIu64 "%s"
	    " errors=%" PRIu64 "\n",
	    mode, ctx->opt.conns, ctx->opt.users, ops, secs,
	    secs > 0 ? (double)ops / secs : 0.0,
	    h->n > 0 ? load_us(h->sum_ns / h->n) : 0.0,
	    load_us(bench_hist_quantile(h, 500000)),
	    load_us(bench_hist_quantile(h, 900000)),
	    load_us(bench_hist_quantile(h, 990000)),
	    load_us(bench_hist_quantile(h, 999000)),
	    load_us(h->max_ns), all_ops, found, load_errors_total(ctx));
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct load_ctx *ctx;
	struct load_stub stub;
	struct load_conn *c;
	uint64_t t0, t1, warm;
	bool stub_running = false;
	unsigned i;
	int rc, status = 2;

	/* The histograms make the context too big for a comfortable stack. */
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL) {
		perror("dict-load: calloc");
		return 2;
	}
	if ((rc = load_parse_args(argc, argv, &ctx->opt)) != 0) {
		free(ctx);
		return rc == 1 ? 0 : 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Room for every connection, the epoll fd, the stub and stdio. */
	bench_raise_nofile(prog, (unsigned long long)ctx->opt.conns * 2 + 32);
	ctx->epfd = -1;
	ctx->prefix_hash = load_hash_str(ctx->opt.user_prefix);
	{
		struct timespec rt;

		clock_gettime(CLOCK_REALTIME, &rt);
		ctx->run_nonce = load_mix64((uint64_t)rt.tv_sec * NS_PER_S +
		    (uint64_t)rt.tv_nsec) ^ ((uint64_t)getpid() << 32);
	}
	if (ctx->opt.mode == LOAD_MODE_BASELINE) {
		if (load_stub_start(&stub) == -1) {
			load_stub_stop(&stub, false);
			free(ctx);
			return 2;
		}
		stub_running = true;
		ctx->opt.socket_path = stub.path;
	}
	if ((ctx->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (ctx->conns = calloc(ctx->opt.conns, sizeof(*ctx->conns))) ==
	    NULL) {
		perror("dict-load: setup");
		goto out;
	}
	for (i = 0; i < ctx->opt.conns; i++) {
		c = &ctx->conns[i];
		c->idx = i;
		c->fd = -1;
		c->next_txn_id = 1;
		c->rng = ctx->run_nonce ^ load_mix64(i + 1);
		c->in_cap = LOAD_IN_INIT_BYTES;
		if ((c->in = malloc(c->in_cap)) == NULL) {
			perror("dict-load: malloc");
			goto out;
		}
		load_conn_open(ctx, c);
	}

	if (ctx->opt.prepare) {
		t0 = bench_now_ns();
		if (load_run(ctx, LOAD_MODE_PREPARE, t0,
		    t0 + LOAD_PREPARE_TIMEOUT_NS) == -1)
			goto out;
		t1 = bench_now_ns();
		fprintf(stderr, "dict-load: prepared %" PRIu32 " of %" PRIu32
		    " users in %.2f s\n", ctx->prepare_done, ctx->opt.users,
		    (double)(t1 - t0) / NS_PER_S);
		if (ctx->prepare_done != ctx->opt.users &&
		    load_errors_total(ctx) == 0)
			ctx->errs[LOAD_ERR_TIMEOUT]++;	/* out of time */
		if (ctx->opt.duration_s == 0) {
			load_report(ctx, "prepare", ctx->prepare_done,
			    ctx->prepare_done, (double)(t1 - t0) / NS_PER_S,
			    &ctx->prep_hist);
			status = load_errors_total(ctx) > 0;
			goto out;
		}
	}
	if (ctx->opt.duration_s > 0) {
		warm = bench_now_ns() + (uint64_t)(ctx->opt.warmup_s * NS_PER_S);
		if (load_run(ctx, ctx->opt.mode, warm,
		    warm + (uint64_t)(ctx->opt.duration_s * NS_PER_S)) == -1)
			goto out;
	}
	load_report(ctx, load_mode_names[ctx->opt.mode], ctx->ops,
	    ctx->all_ops, ctx->opt.duration_s, &ctx->hist);
	status = load_errors_total(ctx) > 0;
out:
	if (load_errors_total(ctx) > 0) {
		fprintf(stderr, "dict-load: errors:");
		for (i = 0; i < LOAD_ERR_COUNT; i++)
			if (ctx->errs[i] > 0)
				fprintf(stderr, " %s=%" PRIu64,
				    load_err_names[i], ctx->errs[i]);
		fprintf(stderr, "\n");
	}
	if (ctx->conns != NULL) {
		for (i = 0; i < ctx->opt.conns; i++) {
			if (ctx->conns[i].fd != -1)
				close(ctx->conns[i].fd);
			free(ctx->conns[i].in);
		}
		free(ctx->conns);
	}
	if (ctx->epfd != -1)
		close(ctx->epfd);
	if (ctx->opt.mode == LOAD_MODE_BASELINE)
		load_stub_stop(&stub, stub_running);
	free(ctx);
	return status;
}
