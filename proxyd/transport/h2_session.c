/*
 * The nghttp2 session of a connection: starting it once TLS has
 * negotiated h2, and its callbacks, which read the server's frames into
 * the streams (status, Retry-After, body) and follow the connection's
 * life (first SETTINGS, GOAWAY, streams closed or refused). Callbacks
 * never free anything and never make done callbacks: they mark, and the
 * loop callback that fed nghttp2 delivers and reaps (h2client.c). See
 * h2_private.h.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/ssl.h>

#include "h2_private.h"
#include "xmalloc.h"

static int
h2_session_on_header(nghttp2_session *sess, const nghttp2_frame *frame,
    const uint8_t *name, size_t namelen, const uint8_t *value,
    size_t valuelen, uint8_t flags, void *arg)
{
	struct h2_stream *s;
	char tmp[64];

	(void)flags;
	(void)arg;
	if (frame->hd.type != NGHTTP2_HEADERS ||
	    (s = nghttp2_session_get_stream_user_data(sess,
	    frame->hd.stream_id)) == NULL)
		return 0;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0 &&
	    valuelen == 3 && isdigit(value[0]) && isdigit(value[1]) &&
	    isdigit(value[2]))
		s->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 +
		    (value[2] - '0');
	else if (namelen == 11 && memcmp(name, "retry-after", 11) == 0 &&
	    valuelen > 0 && valuelen < sizeof(tmp)) {
		memcpy(tmp, value, valuelen);
		tmp[valuelen] = '\0';
		if (strspn(tmp, "0123456789") == valuelen && valuelen <= 9)
			s->retry_after_s = strtoll(tmp, NULL, 10);
		else {
			/* An HTTP date. */
			time_t t = curl_getdate(tmp, NULL);

			if (t != -1)
				s->retry_after_s = t > time(NULL) ?
				    t - time(NULL) : 0;
		}
	}
	return 0;
}

static int
h2_session_on_data(nghttp2_session *sess, uint8_t flags, int32_t id,
    const uint8_t *data, size_t len, void *arg)
{
	struct h2_conn *conn = arg;
	struct h2_stream *s;
	size_t room, max = conn->c->cfg.max_body_bytes;

	(void)flags;
	if ((s = nghttp2_session_get_stream_user_data(sess, id)) == NULL ||
	    max == 0)
		return 0;
	if (s->body == NULL)
		s->body = xmalloc(max + 1);
	room = max - s->body_len;
	if (len > room)
		len = room;
	memcpy(s->body + s->body_len, data, len);
	s->body_len += len;
	s->body[s->body_len] = '\0';
	return 0;
}

static int
h2_session_on_stream_close(nghttp2_session *sess, int32_t id, uint32_t code,
    void *arg)
{
	struct h2_stream *s;

	(void)arg;
	if ((s = nghttp2_session_get_stream_user_data(sess, id)) == NULL)
		return 0;
	/* Refused before any processing (RST_STREAM REFUSED_STREAM, or
	 * beyond a GOAWAY's last stream): safe to send again, once. */
	if (code == NGHTTP2_REFUSED_STREAM && s->status == 0 &&
	    !s->retried) {
		h2_stream_requeue(s);
		return 0;
	}
	if (s->conn != NULL && s->status != 0)
		s->conn->timeouts_in_row = 0;	/* it answers */
	if (code != NGHTTP2_NO_ERROR && s->status == 0)
		h2_stream_finish(s, "stream reset by the server");
	else
		h2_stream_finish(s, NULL);
	return 0;
}

static int
h2_session_on_frame_recv(nghttp2_session *sess, const nghttp2_frame *frame,
    void *arg)
{
	struct h2_conn *conn = arg;

	(void)sess;
	/* Streams wait for the server's first SETTINGS: its concurrency
	 * limit may be far below the default (Apple starts token-auth
	 * connections at one stream). */
	if (frame->hd.type == NGHTTP2_SETTINGS &&
	    !(frame->hd.flags & NGHTTP2_FLAG_ACK) && !conn->settings_seen) {
		conn->settings_seen = true;
		event_active(conn->c->kick, EV_WRITE, 0);
	}
	if (frame->hd.type == NGHTTP2_GOAWAY &&
	    conn->state == CONN_OPEN) {
		conn->state = CONN_DRAINING;
		if (conn->origin->conn == conn)
			conn->origin->conn = NULL;
		if (!TAILQ_EMPTY(&conn->origin->queue))
			event_active(conn->c->kick, EV_WRITE, 0);
	}
	return 0;
}

void
h2_session_start(struct h2_conn *conn)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_settings_entry iv[2] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20 },
	};
	nghttp2_option *opt;
	const unsigned char *alpn = NULL;
	unsigned int alpn_len = 0;
	int rv;

	SSL_get0_alpn_selected(conn->ssl, &alpn, &alpn_len);
	if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
		h2_conn_fail(conn, "the server did not offer HTTP/2 (ALPN)");
		return;
	}
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_on_header_callback(cbs,
	    h2_session_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
	    h2_session_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
	    h2_session_on_stream_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
	    h2_session_on_frame_recv);
	nghttp2_option_new(&opt);
	nghttp2_option_set_peer_max_concurrent_streams(opt,
	    conn->c->cfg.max_streams > 0 ? conn->c->cfg.max_streams :
	    H2_DEFAULT_STREAMS);
	rv = nghttp2_session_client_new2(&conn->sess, cbs, conn, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	if (rv != 0) {
		h2_conn_fail(conn, "http2: %s", nghttp2_strerror(rv));
		return;
	}
	nghttp2_submit_settings(conn->sess, NGHTTP2_FLAG_NONE, iv, 2);
	/* A large connection window: answers are small, but many. */
	nghttp2_session_set_local_window_size(conn->sess, NGHTTP2_FLAG_NONE,
	    0, 1 << 24);
	conn->state = CONN_OPEN;
	event_del(conn->connect_timer);
	event_active(conn->c->kick, EV_WRITE, 0);
}
