/*
 * TURN credentials from the TURN helper's Unix socket, for the server
 * entry /shared/vendor/deltachat/turn (dict_vendor.c formats the value).
 *
 * The helper's protocol, as chatmail relay's chatmail-turn speaks it and
 * its Python service reads it (chatmaild/src/chatmaild/metadata.py,
 * turn_credentials()): connect to the stream socket, send nothing, read
 * one line "<username>:<password>\n"; the helper then closes. The newline
 * is what tells a whole answer from one cut short by a helper restart.
 *
 * The Python service blocks a thread for up to 5 s on this; here a
 * lookup must not stall the loop, so the connect is non-blocking, the
 * answer is read from the loop with a deadline, and the asking connection
 * waits (dict_conn_wait) while the others go on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "dictd.h"
#include "unixsock.h"
#include "xmalloc.h"

struct dict_turn_req {
	int		 fd;
	struct event	*rev;
	struct event	*timer;
	char		*path;
	int64_t		 timeout_ms;
	dict_turn_cb	*cb;
	void		*arg;
	size_t		 len;
	char		 buf[DICT_TURN_REPLY_MAX_BYTES];
};

int
dict_turn_parse(const char *data, size_t len, bool eof, size_t *cred_len_out,
    char err[ERR_LEN])
{
	const char *nl, *colon;
	size_t n;

	nl = memchr(data, '\n', len);
	if (nl == NULL) {
		if (len >= DICT_TURN_REPLY_MAX_BYTES) {
			err_set(err, "answer longer than %d bytes",
			    DICT_TURN_REPLY_MAX_BYTES);
			return -1;
		}
		if (!eof)
			return 0;
		err_set(err, len == 0 ? "closed without an answer" :
		    "answer cut short (no newline)");
		return -1;
	}
	n = (size_t)(nl - data);
	if (n > 0 && data[n - 1] == '\r')
		n--;
	/* Credentials go to clients inside "<host>:<port>:<user>:<pw>":
	 * printable ASCII only, no spaces, both halves present. */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)data[i];

		if (c <= 0x20 || c >= 0x7f) {
			err_set(err, "answer holds byte 0x%02x at %zu", c, i);
			return -1;
		}
	}
	colon = memchr(data, ':', n);
	if (colon == NULL || colon == data || colon == data + n - 1) {
		err_set(err, "answer is not <username>:<password>");
		return -1;
	}
	*cred_len_out = n;
	return 1;
}

void
dict_turn_cancel(struct dict_turn_req *r)
{
	if (r == NULL)
		return;
	if (r->rev != NULL)
		event_free(r->rev);
	if (r->timer != NULL)
		event_free(r->timer);
	if (r->fd >= 0)
		close(r->fd);
	/* The credentials are secrets: do not leave them in freed memory. */
	explicit_bzero(r->buf, sizeof(r->buf));
	free(r->path);
	free(r);
}

/* Report once and free: the callback is the last use of r. */
static void
dict_turn_finish(struct dict_turn_req *r, const char *cred, size_t len,
    const char *reason)
{
	char err[ERR_LEN];

	err[0] = '\0';
	if (reason != NULL)
		err_set(err, "TURN helper %s: %s", r->path, reason);
	r->cb(r->arg, cred, len, cred != NULL ? NULL : err);
	dict_turn_cancel(r);
}

static void
dict_turn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct dict_turn_req *r = arg;
	char err[ERR_LEN];
	size_t cred_len;
	ssize_t n;
	int rc;

	(void)what;
	n = read(fd, r->buf + r->len, sizeof(r->buf) - r->len);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n < 0) {
		dict_turn_finish(r, NULL, 0, strerror(errno));
		return;
	}
	r->len += (size_t)n;
	rc = dict_turn_parse(r->buf, r->len, n == 0, &cred_len, err);
	if (rc > 0)
		dict_turn_finish(r, r->buf, cred_len, NULL);
	else if (rc < 0)
		dict_turn_finish(r, NULL, 0, err);
}

static void
dict_turn_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct dict_turn_req *r = arg;
	char reason[64];

	(void)fd;
	(void)what;
	snprintf(reason, sizeof(reason), "no answer within %lld ms",
	    (long long)r->timeout_ms);
	dict_turn_finish(r, NULL, 0, reason);
}

struct dict_turn_req *
dict_turn_fetch(struct event_base *base, const char *socket_path,
    int64_t timeout_ms, dict_turn_cb *cb, void *arg, char err[ERR_LEN])
{
	struct dict_turn_req *r;
	struct sockaddr_un sun;
	struct timeval tv;

	if (unixsock_addr(socket_path, &sun, err) < 0)
		return NULL;
	r = xcalloc(1, sizeof(*r));
	r->path = xstrdup(socket_path);
	r->timeout_ms = timeout_ms;
	r->cb = cb;
	r->arg = arg;
	r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->fd < 0) {
		err_set(err, "TURN helper %s: socket: %s", socket_path,
		    strerror(errno));
		goto fail;
	}
	/* A Unix stream connect completes at once or fails at once; EAGAIN
	 * means the helper's listen queue is full, which is a failure too
	 * (Linux offers no completion to wait for). */
	if (connect(r->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		err_set(err, "TURN helper %s: %s", socket_path,
		    errno == EAGAIN ? "listen queue full" : strerror(errno));
		goto fail;
	}
	r->rev = event_new(base, r->fd, EV_READ | EV_PERSIST,
	    dict_turn_on_read, r);
	r->timer = evtimer_new(base, dict_turn_on_timeout, r);
	if (r->rev == NULL || r->timer == NULL)
		abort();	/* only on OOM */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	event_add(r->rev, NULL);
	evtimer_add(r->timer, &tv);
	return r;
fail:
	dict_turn_cancel(r);
	return NULL;
}
