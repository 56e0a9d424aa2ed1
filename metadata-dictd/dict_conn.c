/*
 * One client connection: Dovecot's imap or lmtp process, usually for a
 * single command (protocol doc §5: with idle_msecs=0 the client hangs up
 * as soon as it is idle). Owns the socket, splits input into lines, runs
 * each through dict_cmd_run(), and keeps replies in the order the
 * commands came: while a commit waits for the group commit, the
 * connection reads nothing further.
 *
 * Plain events rather than bufferevents: a reply is written at once with
 * one write() and the write event is armed only when the socket is full.
 * A bufferevent arms and disarms EPOLLOUT around every reply and sizes
 * every read with an ioctl, three extra system calls per lookup.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "dictd.h"
#include "log.h"
#include "metrics.h"
#include "xmalloc.h"

enum dict_conn_state {
	DICT_CONN_READING,
	DICT_CONN_COMMITTING,	/* a C waits for the group commit */
	DICT_CONN_WAITING,	/* an L waits for the TURN helper */
	DICT_CONN_CLOSING,	/* freed by the server from the loop */
};

/* Bytes read per read(): a few lines from one client at a time. */
#define DICT_CONN_READ_BYTES	16384

struct dict_conn {
	unsigned long long	 id;
	struct dict_server	*srv;
	int			 fd;
	struct event		*rev;		/* armed while reading */
	struct event		*wev;		/* armed while out is pending */
	struct buf		 in;		/* unparsed input from in_off */
	size_t			 in_off;
	struct buf		 out;		/* unsent output from out_off */
	size_t			 out_off;
	enum dict_conn_state	 state;
	bool			 hello;
	bool			 output_full;	/* paused until drained */
	bool			 closing;	/* on the server's free list */
	struct dict_txn_set	 txns;		/* open, not committed */
	struct dict_txn		*committing;	/* owned while waiting */
	struct dict_turn_req	*waiting;	/* owned while waiting */
	struct buf		 reply;
	struct dict_conn	*prev, *next;	/* the server's list */
};

static unsigned long long dict_conn_next_id = 1;

static void	dict_conn_process(struct dict_conn *);

unsigned long long
dict_conn_id(const struct dict_conn *c)
{
	return c->id;
}

struct dict_server *
dict_conn_server(struct dict_conn *c)
{
	return c->srv;
}

void
dict_conn_link(struct dict_conn *c, struct dict_conn **head)
{
	c->prev = NULL;
	c->next = *head;
	if (*head != NULL)
		(*head)->prev = c;
	*head = c;
}

void
dict_conn_unlink(struct dict_conn *c, struct dict_conn **head)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

struct dict_conn *
dict_conn_next(struct dict_conn *c)
{
	return c->next;
}

bool
dict_conn_closing(const struct dict_conn *c)
{
	return c->state == DICT_CONN_CLOSING;
}

void
dict_conn_set_hello(struct dict_conn *c)
{
	c->hello = true;
}

bool
dict_conn_has_hello(const struct dict_conn *c)
{
	return c->hello;
}

struct buf *
dict_conn_reply_buf(struct dict_conn *c)
{
	return &c->reply;
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
	c->out_off = 0;
	event_del(c->wev);
	return 0;
}

void
dict_conn_send(struct dict_conn *c)
{
	if (c->reply.len == 0 || c->state == DICT_CONN_CLOSING) {
		buf_reset(&c->reply);
		return;
	}
	if (c->out.len == 0) {
		/* The common case: nothing queued, hand the reply over. */
		struct buf tmp = c->out;

		c->out = c->reply;
		c->reply = tmp;
	} else
		buf_append(&c->out, c->reply.data, c->reply.len);
	buf_reset(&c->reply);
	if (dict_conn_flush(c) == 0 &&
	    c->out.len - c->out_off > DICT_CONN_OUTPUT_MAX_BYTES)
		c->output_full = true;
}

struct dict_txn_set *
dict_conn_txns(struct dict_conn *c)
{
	return &c->txns;
}

void
dict_conn_commit(struct dict_conn *c, struct dict_txn *t)
{
	c->state = DICT_CONN_COMMITTING;
	c->committing = t;
	event_del(c->rev);
	dict_server_commit_enqueue(c->srv, c, t);
}

/* The wait (commit, TURN lookup) is over and its reply is in c->reply:
 * send it, then go on with the commands buffered behind it. */
static void
dict_conn_resume(struct dict_conn *c)
{
	/* READING before sending: a failed write makes it CLOSING, which
	 * must stick (the connection is then queued to be freed once). */
	c->state = DICT_CONN_READING;
	dict_conn_send(c);
	if (c->state != DICT_CONN_READING)
		return;
	dict_conn_process(c);
	if (c->state == DICT_CONN_READING && !c->output_full)
		event_add(c->rev, NULL);
}

void
dict_conn_commit_done(struct dict_conn *c, struct dict_txn *t,
    enum dict_commit_result result, const char *reason)
{
	c->committing = NULL;
	if (c->state == DICT_CONN_CLOSING) {
		/* The peer left while we committed: the data is stored,
		 * nobody to tell. */
		dict_txn_free(t);
		return;
	}
	dict_proto_reply_commit(&c->reply, t->id, t->async, result, reason);
	dict_txn_free(t);
	dict_conn_resume(c);
}

void
dict_conn_wait(struct dict_conn *c, struct dict_turn_req *req)
{
	c->state = DICT_CONN_WAITING;
	c->waiting = req;
	event_del(c->rev);
}

void
dict_conn_wait_done(struct dict_conn *c)
{
	c->waiting = NULL;	/* its owner frees it after this returns */
	if (c->state == DICT_CONN_CLOSING) {
		buf_reset(&c->reply);
		return;
	}
	dict_conn_resume(c);
}

void
dict_conn_close_later(struct dict_conn *c, const char *reason)
{
	/* Once only: the server frees each connection on its list once. */
	if (c->state == DICT_CONN_CLOSING || c->closing)
		return;
	log_debug("dict conn=%llu closed reason=%s", c->id, reason);
	c->closing = true;
	c->state = DICT_CONN_CLOSING;
	event_del(c->rev);
	event_del(c->wev);
	dict_server_conn_closed(c->srv, c);
}

void
dict_conn_free(struct dict_conn *c)
{
	if (c == NULL)
		return;
	/* An open transaction dies with its connection (protocol doc §5). */
	dict_txn_set_clear(&c->txns);
	dict_txn_free(c->committing);
	dict_turn_cancel(c->waiting);
	buf_clear(&c->reply);
	buf_clear(&c->in);
	buf_clear(&c->out);
	event_free(c->rev);
	event_free(c->wev);
	close(c->fd);
	free(c);
}

static void
dict_conn_protocol_error(struct dict_conn *c, struct metric *m,
    const char *what, const char *detail)
{
	log_warnx("dict conn=%llu closed reason=%s: %s", c->id, what, detail);
	metric_inc(m);
	dict_conn_close_later(c, what);
}

/* Handle every complete line already buffered, then return to the loop:
 * one chatty client must not starve the others, and a commit or a full
 * output buffer stops the loop until it is resolved. */
static void
dict_conn_process(struct dict_conn *c)
{
	struct dict_stats *st = dict_server_stats(c->srv);
	struct dict_cmd cmd;
	char err[ERR_LEN];
	const char *line, *nl;
	size_t len;

	while (c->state == DICT_CONN_READING && !c->output_full &&
	    c->in_off < c->in.len && (nl = memchr(c->in.data + c->in_off,
	    '\n', c->in.len - c->in_off)) != NULL) {
		line = c->in.data + c->in_off;
		len = (size_t)(nl - line);
		c->in_off += len + 1;
		if (len > DICT_LINE_MAX_BYTES) {
			dict_conn_protocol_error(c, st->err_line_too_long,
			    "line-too-long", "over 64 KiB");
			return;
		}
		if (dict_proto_parse(line, len, &cmd, err) < 0) {
			/* Only the first byte and the length: the rest may
			 * hold a device token. */
			dict_conn_protocol_error(c, st->err_parse,
			    "protocol-error", err);
			log_debug("dict conn=%llu bad line: first=0x%02x "
			    "length=%zu", c->id, len ? (unsigned char)line[0] :
			    0, len);
			return;
		}
		if (dict_cmd_run(c, &cmd, err) < 0)
			dict_conn_protocol_error(c, st->err_protocol,
			    "protocol-error", err);
		dict_cmd_clear(&cmd);
	}
	/* Keep only the unparsed tail, at the start of the buffer. */
	if (c->in_off > 0) {
		memmove(c->in.data, c->in.data + c->in_off,
		    c->in.len - c->in_off);
		c->in.len -= c->in_off;
		c->in_off = 0;
	}
	if (c->state == DICT_CONN_READING && c->in.len > DICT_LINE_MAX_BYTES)
		dict_conn_protocol_error(c, st->err_line_too_long,
		    "line-too-long", "over 64 KiB without LF");
	if (c->state == DICT_CONN_READING && c->output_full)
		event_del(c->rev);
}

static void
dict_conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct dict_conn *c = arg;
	char chunk[DICT_CONN_READ_BYTES];
	ssize_t n;

	(void)what;
	n = read(fd, chunk, sizeof(chunk));
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		if (c->txns.n > 0)
			log_debug("dict conn=%llu closed with open "
			    "transactions, discarded", c->id);
		dict_conn_close_later(c, n == 0 ? "eof" : "read-error");
		return;
	}
	buf_append(&c->in, chunk, (size_t)n);
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
dict_conn_new(struct dict_server *srv, int fd)
{
	struct dict_conn *c = xcalloc(1, sizeof(*c));
	struct event_base *base = dict_server_base(srv);

	c->id = dict_conn_next_id++;
	c->srv = srv;
	c->fd = fd;
	c->state = DICT_CONN_READING;
	dict_txn_set_init(&c->txns);
	buf_init(&c->reply);
	buf_init(&c->in);
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
