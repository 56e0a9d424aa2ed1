/*
 * One client connection: Dovecot's imap or lmtp process, usually for a
 * single command (protocol doc §5: with idle_msecs=0 the client hangs up
 * as soon as it is idle). Owns the socket, splits input into lines, runs
 * each through dict_cmd_run(), and keeps replies in the order the
 * commands came: while a command waits (a commit for the group commit,
 * a lookup for the TURN helper), the connection reads nothing further.
 *
 * It knows no command and no server: the commands work through the
 * session it holds for them, and the one thing it tells its owner is
 * that it is closing (the callback given to dict_conn_new).
 *
 * Plain events rather than bufferevents: a reply is written at once with
 * one write() and the write event is armed only when the socket is full.
 * A bufferevent arms and disarms EPOLLOUT around every reply and sizes
 * every read with an ioctl, three extra system calls per lookup.
 *
 * What a connection holds is bounded, so that memory is bounded by the
 * number of connections (--max-connections): input up to one longest line
 * (reads stop there, DICT_CONN_IN_MAX_BYTES), unsent output up to
 * DICT_CONN_OUTPUT_MAX_BYTES plus one answer (then it reads no command
 * until the peer has read half), an iteration one page at a time (the
 * next from the write event, once the output drained), and buffers an
 * idle connection keeps up to DICT_CONN_KEEP_BYTES.
 *
 * Time is bounded too, for a line that has started: it must end within
 * --line-timeout of its first byte, or the connection is closed (before,
 * a local process could send part of a line and hold its place under
 * --max-connections for ever). Not an idle timeout: nothing runs between
 * lines, since Dovecot's processes keep connections open between
 * commands. The clock starts with the read that leaves part of a line in
 * the buffer, starts again with each new line, and is stopped while the
 * connection reads nothing (a command of its own waits, an iteration is
 * answered, the peer leaves our answers unread): what is missing may
 * then be in the socket, unread by us.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "dictd.h"
#include "log.h"
#include "log_limit.h"
#include "metrics.h"
#include "xmalloc.h"

enum dict_conn_state {
	DICT_CONN_READING,
	DICT_CONN_WAITING,	/* a command waits for its reply */
	DICT_CONN_STREAMING,	/* an iteration answers page by page */
	DICT_CONN_CLOSING,	/* for good: its owner frees it */
};

/* Bytes read per read(): a few lines from one client at a time. */
#define DICT_CONN_READ_BYTES	16384
/* The input buffer's first size: a handshake and a command, or a device
 * token's SETMETADATA, fit. */
#define DICT_CONN_IN_FIRST_BYTES	2048

struct dict_conn {
	unsigned long long	 id;
	int			 fd;
	struct event		*rev;		/* armed while reading */
	struct event		*wev;		/* armed while out is pending */
	char			*in;		/* unparsed input from in_off */
	size_t			 in_off, in_len;
	size_t			 in_cap;	/* <= DICT_CONN_IN_MAX_BYTES */
	struct buf		 out;		/* unsent output from out_off */
	size_t			 out_off;
	enum dict_conn_state	 state;
	bool			 output_full;	/* paused until drained */
	const struct dict_cmd_ctx *ctx;		/* the server's, borrowed */
	struct dict_cmd_session	 session;
	dict_conn_closed_fn	*closed;	/* the owner's */
	void			*closed_arg;
	/* The started line's deadline (--line-timeout); made the first
	 * time a read leaves part of a line, as few connections do. */
	struct event		*line_ev;
};

static void	dict_conn_process(struct dict_conn *);

/* A buffer larger than an idle connection keeps is freed once empty. */
static void
dict_conn_buf_trim(struct buf *b)
{
	if (b->len == 0 && b->cap > DICT_CONN_KEEP_BYTES)
		buf_clear(b);
}

unsigned long long
dict_conn_id(const struct dict_conn *c)
{
	return c->id;
}

bool
dict_conn_committing(const struct dict_conn *c)
{
	return c->session.committing;
}

/* Write what is pending; arm the write event for the rest. -1 when the
 * socket failed (the connection is then closing). */
static int
dict_conn_flush(struct dict_conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = write(c->fd, c->out.data + c->out_off,
		    c->out.len - c->out_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(c->wev, NULL);
			return 0;
		}
		if (n <= 0) {
			dict_conn_close_later(c, "write-error");
			return -1;
		}
		c->out_off += (size_t)n;
	}
	buf_reset(&c->out);
	dict_conn_buf_trim(&c->out);
	c->out_off = 0;
	event_del(c->wev);
	return 0;
}

/* Send the replies the commands wrote to the session's buffer. */
static void
dict_conn_send(struct dict_conn *c)
{
	struct buf *reply = &c->session.reply;

	if (reply->len == 0 || c->state == DICT_CONN_CLOSING) {
		buf_reset(reply);
		return;
	}
	if (c->out.len == 0) {
		/* The common case: nothing queued, hand the reply over. */
		struct buf tmp = c->out;

		c->out = *reply;
		*reply = tmp;
	} else
		buf_append(&c->out, reply->data, reply->len);
	buf_reset(reply);
	dict_conn_buf_trim(reply);
	if (dict_conn_flush(c) == 0 &&
	    c->out.len - c->out_off > DICT_CONN_OUTPUT_MAX_BYTES)
		c->output_full = true;
}

/* The waiting command's reply is in the session's buffer (its commit was
 * answered, its TURN lookup ended): send it, then go on with the
 * commands buffered behind it. */
static void
dict_conn_on_cmd_done(void *arg)
{
	struct dict_conn *c = arg;

	if (c->state == DICT_CONN_CLOSING) {
		/* The peer left meanwhile: a commit is stored all the
		 * same, nobody to tell. */
		buf_reset(&c->session.reply);
		return;
	}
	/* READING before sending: a failed write makes it CLOSING, which
	 * must stick (the owner frees a connection once). */
	c->state = DICT_CONN_READING;
	dict_conn_send(c);
	if (c->state != DICT_CONN_READING)
		return;
	dict_conn_process(c);
	if (c->state == DICT_CONN_READING && !c->output_full)
		event_add(c->rev, NULL);
}

void
dict_conn_close_later(struct dict_conn *c, const char *reason)
{
	if (c->state == DICT_CONN_CLOSING)
		return;
	log_debug("dict conn=%llu closed reason=%s", c->id, reason);
	c->state = DICT_CONN_CLOSING;
	event_del(c->rev);
	event_del(c->wev);
	if (c->line_ev != NULL)
		event_del(c->line_ev);
	c->closed(c->closed_arg, c);
}

void
dict_conn_free(struct dict_conn *c)
{
	if (c == NULL)
		return;
	dict_cmd_session_clear(&c->session);
	free(c->in);
	buf_clear(&c->out);
	event_free(c->rev);
	event_free(c->wev);
	if (c->line_ev != NULL)
		event_free(c->line_ev);
	close(c->fd);
	free(c);
}

static void
dict_conn_protocol_error(struct dict_conn *c, struct metric *m,
    const char *what, const char *detail)
{
	/* Any peer can open connections and send garbage: one line per
	 * connection would be a log flood. */
	static struct log_limit lim = DICT_LOG_LIMIT;

	log_limited(&lim, LOG_LEVEL_WARN, "dict conn=%llu closed reason=%s: "
	    "%s", c->id, what, detail);
	metric_inc(m);
	dict_conn_close_later(c, what);
}

static void
dict_conn_on_line_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct dict_conn *c = arg;
	char detail[64];

	(void)fd;
	(void)what;
	snprintf(detail, sizeof(detail), "a line unfinished after "
	    "--line-timeout=%lldms", (long long)c->ctx->line_timeout_ms);
	dict_conn_protocol_error(c, c->ctx->stats->err_line_timeout,
	    "line-timeout", detail);
}

/* The started line's clock (see the top of this file), after the input
 * was processed: running while the connection reads and its buffer ends
 * in part of a line, from when that began; started again when a line
 * ended (line_ended) and part of the next is there; stopped otherwise. */
static void
dict_conn_line_clock(struct dict_conn *c, bool line_ended)
{
	int64_t ms = c->ctx->line_timeout_ms;
	bool started = c->state == DICT_CONN_READING && !c->output_full &&
	    c->in_len > 0;
	struct timeval tv;

	if (c->line_ev != NULL && (!started || line_ended))
		event_del(c->line_ev);
	if (!started || ms <= 0)
		return;
	if (c->line_ev == NULL &&
	    (c->line_ev = evtimer_new(event_get_base(c->rev),
	    dict_conn_on_line_timeout, c)) == NULL)
		abort();	/* only on OOM */
	if (evtimer_pending(c->line_ev, NULL))
		return;		/* the same line: its clock runs on */
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->line_ev, &tv);
}

/* The part of an iteration's answer that is ready goes out; the next
 * page is asked for from the write event (dict_conn_stream), which fires
 * once the socket takes more: one page per loop pass, so the other
 * connections are served between the pages of a long listing. */
static void
dict_conn_stream_send(struct dict_conn *c)
{
	dict_conn_send(c);
	if (c->state == DICT_CONN_STREAMING)
		event_add(c->wev, NULL);
}

/* Handle every complete line already buffered, then return to the loop:
 * one chatty client must not starve the others, and a waiting command,
 * an iteration under way or a full output buffer stops the loop until it
 * is resolved. */
static void
dict_conn_process(struct dict_conn *c)
{
	struct dict_stats *st = c->ctx->stats;
	char err[ERR_LEN];
	const char *line, *nl;
	size_t len;
	bool line_ended = false;

	/* No complete line is longer than DICT_LINE_MAX_BYTES: the buffer
	 * holds at most that and its LF. */
	while (c->state == DICT_CONN_READING && !c->output_full &&
	    c->in_off < c->in_len && (nl = memchr(c->in + c->in_off, '\n',
	    c->in_len - c->in_off)) != NULL) {
		line = c->in + c->in_off;
		len = (size_t)(nl - line);
		c->in_off += len + 1;
		line_ended = true;
		switch (dict_cmd_run(&c->session, line, len, err)) {
		case DICT_CMD_DONE:
			dict_conn_send(c);
			break;
		case DICT_CMD_WAIT:
			c->state = DICT_CONN_WAITING;
			event_del(c->rev);
			break;
		case DICT_CMD_MORE:
			c->state = DICT_CONN_STREAMING;
			event_del(c->rev);
			dict_conn_stream_send(c);
			break;
		case DICT_CMD_MALFORMED:
			/* Only the first byte and the length: the rest may
			 * hold a device token. */
			dict_conn_protocol_error(c, st->err_parse,
			    "protocol-error", err);
			log_debug("dict conn=%llu bad line: first=0x%02x "
			    "length=%zu", c->id, len ? (unsigned char)line[0] :
			    0, len);
			return;
		case DICT_CMD_REFUSED:
			dict_conn_protocol_error(c, st->err_protocol,
			    "protocol-error", err);
			break;
		}
	}
	/* Keep only the unparsed tail, at the start of the buffer. */
	if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (c->in_len == 0 && c->in_cap > DICT_CONN_KEEP_BYTES) {
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
	if (c->state == DICT_CONN_READING && c->in_len > DICT_LINE_MAX_BYTES)
		dict_conn_protocol_error(c, st->err_line_too_long,
		    "line-too-long", "over 64 KiB without LF");
	if (c->state == DICT_CONN_READING && c->output_full)
		event_del(c->rev);
	dict_conn_line_clock(c, line_ended);
}

/* The next page of an iteration, once the output has drained below
 * DICT_CONN_OUTPUT_MAX_BYTES; after the last one, the commands buffered
 * behind it. */
static void
dict_conn_stream(struct dict_conn *c)
{
	if (c->out.len - c->out_off >= DICT_CONN_OUTPUT_MAX_BYTES)
		return;		/* the write event is armed: it drains */
	/* The pages' own limit is the one above; the reader's pause is
	 * decided again by the send that ends the listing. */
	c->output_full = false;
	if (dict_cmd_continue(&c->session) == DICT_CMD_MORE) {
		dict_conn_stream_send(c);
		return;
	}
	/* READING before sending: a failed write makes it CLOSING, which
	 * must stick. */
	c->state = DICT_CONN_READING;
	dict_conn_send(c);
	if (c->state != DICT_CONN_READING)
		return;
	dict_conn_process(c);
	if (c->state == DICT_CONN_READING && !c->output_full)
		event_add(c->rev, NULL);
}

/* Room for n more bytes of input: doubled as it fills, never past
 * DICT_CONN_IN_MAX_BYTES (the reads stop there). */
static void
dict_conn_in_reserve(struct dict_conn *c, size_t n)
{
	size_t cap = c->in_cap > 0 ? c->in_cap : DICT_CONN_IN_FIRST_BYTES;

	if (c->in_len + n <= c->in_cap)
		return;
	while (cap < c->in_len + n)
		cap *= 2;
	if (cap > DICT_CONN_IN_MAX_BYTES)
		cap = DICT_CONN_IN_MAX_BYTES;
	c->in = xrealloc(c->in, cap);
	c->in_cap = cap;
}

static void
dict_conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct dict_conn *c = arg;
	char chunk[DICT_CONN_READ_BYTES];
	/* At least 1: while reading, the buffer holds part of one line,
	 * at most DICT_LINE_MAX_BYTES (dict_conn_process closes past it). */
	size_t room = DICT_CONN_IN_MAX_BYTES - c->in_len;
	ssize_t n;

	(void)what;
	n = read(fd, chunk, room < sizeof(chunk) ? room : sizeof(chunk));
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		if (c->session.txns.n > 0)
			log_debug("dict conn=%llu closed with open "
			    "transactions, discarded", c->id);
		dict_conn_close_later(c, n == 0 ? "eof" : "read-error");
		return;
	}
	dict_conn_in_reserve(c, (size_t)n);
	memcpy(c->in + c->in_len, chunk, (size_t)n);
	c->in_len += (size_t)n;
	dict_conn_process(c);
}

static void
dict_conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct dict_conn *c = arg;

	(void)fd;
	(void)what;
	if (dict_conn_flush(c) < 0)
		return;
	if (c->state == DICT_CONN_STREAMING) {
		dict_conn_stream(c);
		return;
	}
	/* Drained below the limit: resume a paused reader. */
	if (c->output_full &&
	    c->out.len - c->out_off <= DICT_CONN_OUTPUT_MAX_BYTES / 2) {
		c->output_full = false;
		if (c->state == DICT_CONN_READING) {
			dict_conn_process(c);
			if (c->state == DICT_CONN_READING && !c->output_full)
				event_add(c->rev, NULL);
		}
	}
}

struct dict_conn *
dict_conn_new(struct event_base *base, int fd, unsigned long long id,
    const struct dict_cmd_ctx *ctx, dict_conn_closed_fn *closed,
    void *closed_arg)
{
	struct dict_conn *c = xcalloc(1, sizeof(*c));

	c->id = id;
	c->fd = fd;
	c->state = DICT_CONN_READING;
	c->ctx = ctx;
	c->closed = closed;
	c->closed_arg = closed_arg;
	dict_cmd_session_init(&c->session, ctx, id, dict_conn_on_cmd_done, c);
	buf_init(&c->out);
	evutil_make_socket_nonblocking(fd);
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, dict_conn_on_read,
	    c);
	c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST,
	    dict_conn_on_write, c);
	if (c->rev == NULL || c->wev == NULL)
		abort();	/* only on OOM */
	event_add(c->rev, NULL);
	return c;
}
