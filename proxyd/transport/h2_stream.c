/*
 * One request's stream: where it waits (its origin's queue, a
 * connection, the finished list), its submission to the nghttp2 session
 * with its body as the data source, its end, and its one second chance
 * when the server never processed it. See h2_private.h.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "h2_private.h"

void
h2_stream_unlink(struct h2_stream *s)
{
	switch (s->where) {
	case ON_QUEUE:
		TAILQ_REMOVE(&s->origin->queue, s, link);
		break;
	case ON_CONN:
		TAILQ_REMOVE(&s->conn->streams, s, link);
		break;
	case ON_FINISHED:
		TAILQ_REMOVE(&s->c->finished, s, link);
		break;
	case ON_NONE:
		break;
	}
	s->where = ON_NONE;
}

void
h2_stream_finish(struct h2_stream *s, const char *error)
{
	if (s->finished)
		return;
	if (s->conn != NULL && s->conn->sess != NULL && s->id > 0)
		nghttp2_session_set_stream_user_data(s->conn->sess, s->id,
		    NULL);
	h2_stream_unlink(s);
	TAILQ_REMOVE(&s->c->timeouts, s, tlink);
	s->finished = true;
	s->error = error;
	s->conn = NULL;
	TAILQ_INSERT_TAIL(&s->c->finished, s, link);
	s->where = ON_FINISHED;
}

void
h2_stream_free(struct h2_stream *s)
{
	free(s->body);
	free(s);
}

void
h2_stream_requeue(struct h2_stream *s)
{
	if (s->conn != NULL && s->conn->sess != NULL && s->id > 0)
		nghttp2_session_set_stream_user_data(s->conn->sess, s->id,
		    NULL);
	h2_stream_unlink(s);
	s->retried = true;
	s->conn = NULL;
	s->id = 0;
	s->sent = 0;
	TAILQ_INSERT_TAIL(&s->origin->queue, s, link);
	s->where = ON_QUEUE;
	event_active(s->c->kick, EV_WRITE, 0);
}

static ssize_t
h2_stream_read_body(nghttp2_session *sess, int32_t id, uint8_t *buf,
    size_t len, uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct h2_stream *s = src->ptr;
	size_t left = s->q.body_len - s->sent;

	(void)sess;
	(void)id;
	(void)arg;
	if (len > left)
		len = left;
	if (len > 0)
		memcpy(buf, s->q.body + s->sent, len);
	s->sent += len;
	if (s->sent == s->q.body_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)len;
}

void
h2_stream_submit(struct h2_conn *conn, struct h2_stream *s)
{
	struct h2client *c = conn->c;
	nghttp2_nv nv[H2_MAX_HEADERS];
	char names[H2_HEADER_NAMES_BYTES];
	nghttp2_data_provider dp;
	size_t n = 0, used = 0, i, k;
	const char *h, *colon, *v;
	int32_t id;

#define NV(nm, nl, vl, vll) do {					\
	nv[n].name = (uint8_t *)(nm); nv[n].namelen = (nl);		\
	nv[n].value = (uint8_t *)(vl); nv[n].valuelen = (vll);		\
	nv[n].flags = NGHTTP2_NV_FLAG_NONE; n++;			\
} while (0)
	NV(":method", 7, s->q.method != NULL ? s->q.method : "POST",
	    strlen(s->q.method != NULL ? s->q.method : "POST"));
	NV(":scheme", 7, "https", 5);
	NV(":authority", 10, s->origin->authority,
	    strlen(s->origin->authority));
	NV(":path", 5, s->path, strlen(s->path));
	if (c->user_agent != NULL)
		NV("user-agent", 10, c->user_agent, strlen(c->user_agent));
	/* HTTP/2 header names are lower case; callers write them as they
	 * would for HTTP/1.1. Checked in h2client_send. */
	for (i = 0; i < s->q.nheaders; i++) {
		h = s->q.headers[i];
		colon = strchr(h, ':');
		for (k = 0; h + k < colon; k++)
			names[used + k] = (char)tolower((unsigned char)h[k]);
		for (v = colon + 1; *v == ' '; v++)
			;
		NV(names + used, k, v, strlen(v));
		used += k;
	}
#undef NV
	dp.source.ptr = s;
	dp.read_callback = h2_stream_read_body;
	id = nghttp2_submit_request(conn->sess, NULL, nv, n, &dp, s);
	if (id < 0) {
		h2_stream_finish(s, "could not submit the request");
		return;
	}
	s->id = id;
	s->conn = conn;
	TAILQ_INSERT_TAIL(&conn->streams, s, link);
	s->where = ON_CONN;
}
