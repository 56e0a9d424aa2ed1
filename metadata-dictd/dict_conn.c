/*
 * One client connection: Dovecot's imap or lmtp process, usually for a
 * single command (protocol doc §5: with idle_msecs=0 the client hangs up
 * as soon as it is idle). Owns the socket (a bufferevent), splits input
 * into lines, runs each through dict_cmd_run(), and keeps replies in the
 * order the commands came: while a commit waits for the group commit, the
 * connection reads nothing further.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "dictd.h"
#include "log.h"
#include "metrics.h"
#include "xmalloc.h"

enum dict_conn_state {
	DICT_CONN_READING,
	DICT_CONN_COMMITTING,	/* a C waits for the group commit */
	DICT_CONN_CLOSING,	/* freed by the server from the loop */
};

struct dict_conn {
	unsigned long long	 id;
	struct dict_server	*srv;
	struct bufferevent	*bev;
	enum dict_conn_state	 state;
	bool			 hello;
	bool			 output_full;	/* paused until drained */
	struct dict_txn		*txns;		/* open, not committed */
	unsigned int		 ntxns;
	struct dict_txn		*committing;	/* owned while waiting */
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

void
dict_conn_send(struct dict_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (c->reply.len > 0 && c->state != DICT_CONN_CLOSING)
		evbuffer_add(out, c->reply.data, c->reply.len);
	buf_reset(&c->reply);
	if (evbuffer_get_length(out) > DICT_CONN_OUTPUT_MAX_BYTES)
		c->output_full = true;
}

struct dict_txn *
dict_conn_txn_find(struct dict_conn *c, unsigned int id)
{
	struct dict_txn *t;

	for (t = c->txns; t != NULL; t = t->next)
		if (t->id == id)
			return t;
	return NULL;
}

int
dict_conn_txn_add(struct dict_conn *c, struct dict_txn *t)
{
	if (c->ntxns >= DICT_CONN_MAX_TXNS)
		return -1;
	t->next = c->txns;
	c->txns = t;
	c->ntxns++;
	return 0;
}

struct dict_txn *
dict_conn_txn_take(struct dict_conn *c, unsigned int id)
{
	struct dict_txn **tp, *t;

	for (tp = &c->txns; (t = *tp) != NULL; tp = &t->next) {
		if (t->id == id) {
			*tp = t->next;
			t->next = NULL;
			c->ntxns--;
			return t;
		}
	}
	return NULL;
}

void
dict_conn_commit(struct dict_conn *c, struct dict_txn *t)
{
	c->state = DICT_CONN_COMMITTING;
	c->committing = t;
	bufferevent_disable(c->bev, EV_READ);
	dict_server_commit_enqueue(c->srv, c, t);
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
	dict_conn_send(c);
	c->state = DICT_CONN_READING;
	/* Commands that arrived behind the commit are already buffered. */
	dict_conn_process(c);
	if (c->state == DICT_CONN_READING && !c->output_full)
		bufferevent_enable(c->bev, EV_READ);
}

void
dict_conn_close_later(struct dict_conn *c, const char *reason)
{
	if (c->state == DICT_CONN_CLOSING)
		return;
	log_debug("dict conn=%llu closed reason=%s", c->id, reason);
	c->state = DICT_CONN_CLOSING;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	dict_server_conn_closed(c->srv, c);
}

void
dict_conn_free(struct dict_conn *c)
{
	struct dict_txn *t, *next;

	if (c == NULL)
		return;
	/* An open transaction dies with its connection (protocol doc §5). */
	for (t = c->txns; t != NULL; t = next) {
		next = t->next;
		dict_txn_free(t);
	}
	dict_txn_free(c->committing);
	buf_clear(&c->reply);
	bufferevent_free(c->bev);
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
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct dict_cmd cmd;
	char err[ERR_LEN], shown[64 * 4 + 4];
	size_t len;
	char *line;

	while (c->state == DICT_CONN_READING && !c->output_full &&
	    (line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		if (len > DICT_LINE_MAX_BYTES) {
			free(line);
			dict_conn_protocol_error(c, st->err_line_too_long,
			    "line-too-long", "over 64 KiB");
			return;
		}
		if (dict_proto_parse(line, len, &cmd, err) < 0) {
			log_escape(line, len, 64, shown);
			free(line);
			dict_conn_protocol_error(c, st->err_parse,
			    "protocol-error", err);
			log_debug("dict conn=%llu bad line: %s", c->id, shown);
			return;
		}
		free(line);
		if (dict_cmd_run(c, &cmd, err) < 0)
			dict_conn_protocol_error(c, st->err_protocol,
			    "protocol-error", err);
		dict_cmd_clear(&cmd);
	}
	if (c->state == DICT_CONN_READING &&
	    evbuffer_get_length(in) > DICT_LINE_MAX_BYTES)
		dict_conn_protocol_error(c, st->err_line_too_long,
		    "line-too-long", "over 64 KiB without LF");
	if (c->output_full && c->state == DICT_CONN_READING)
		bufferevent_disable(c->bev, EV_READ);
}

static void
dict_conn_on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	dict_conn_process(arg);
}

static void
dict_conn_on_write(struct bufferevent *bev, void *arg)
{
	struct dict_conn *c = arg;

	(void)bev;
	/* The output drained (low watermark 0): resume a paused reader. */
	if (c->output_full) {
		c->output_full = false;
		if (c->state == DICT_CONN_READING) {
			dict_conn_process(c);
			if (c->state == DICT_CONN_READING && !c->output_full)
				bufferevent_enable(c->bev, EV_READ);
		}
	}
}

static void
dict_conn_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct dict_conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_EOF) {
		if (c->txns != NULL)
			log_debug("dict conn=%llu closed with open "
			    "transactions, discarded", c->id);
		dict_conn_close_later(c, "eof");
	} else if (what & BEV_EVENT_ERROR)
		dict_conn_close_later(c, "socket-error");
}

struct dict_conn *
dict_conn_new(struct dict_server *srv, int fd)
{
	struct dict_conn *c = xcalloc(1, sizeof(*c));

	c->id = dict_conn_next_id++;
	c->srv = srv;
	c->state = DICT_CONN_READING;
	buf_init(&c->reply);
	c->bev = bufferevent_socket_new(dict_server_base(srv), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		abort();	/* only on OOM */
	bufferevent_setcb(c->bev, dict_conn_on_read, dict_conn_on_write,
	    dict_conn_on_event, c);
	bufferevent_enable(c->bev, EV_READ);
	return c;
}
