/*
 * The connection to Redis; see redis_conn.h.
 *
 * A link is one hiredis context and what waits on it. Links are only
 * ever freed by us outside hiredis's callbacks (redis_link_drop, from a
 * timer or the drop event), or by hiredis itself after a connection
 * error, in which case its disconnect callback is the last thing that
 * touches the link. Answers come back in the order the commands went
 * out, so the callbacks waiting on the data link are a ring.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "clock.h"
#include "log.h"
#include "redis_conn.h"
#include "xmalloc.h"

#define REDIS_TICK_MS		50
#define REDIS_BACKOFF_MIN_MS	100
#define REDIS_BACKOFF_MAX_MS	2000
#define REDIS_SHA_HEX		(SHA_DIGEST_LENGTH * 2 + 1)

struct redis_wait {
	redis_reply_fn	*fn;
	void		*arg;
	int64_t		 at_ms;		/* sent, monotonic */
};

struct redis_link {
	struct redis_conn	*rc;
	redisAsyncContext	*ac;
	bool			 sentinel;	/* asks, then goes */
	bool			 connected;
	bool			 dropping;	/* we free it */
	int64_t			 started_ms;
	struct redis_wait	*ring;		/* max_pending slots */
	size_t			 head, n;
};

enum redis_phase {
	REDIS_IDLE,		/* waiting to try again */
	REDIS_ASKING,		/* a sentinel is asked for the master */
	REDIS_CONNECTING,	/* connect and handshake */
	REDIS_UP,
};

struct redis_conn {
	struct redis_conn_config cfg;
	struct redis_link	*data;		/* to the master */
	struct redis_link	*ask;		/* to a sentinel */
	enum redis_phase	 phase;
	bool			 was_up;	/* on_down owed at a drop */
	size_t			 next_sentinel, asked_round;
	struct redis_endpoint	 master;	/* where data goes */
	struct redis_endpoint	 last_master;	/* the last that came up */
	size_t			 handshake_left;
	char			 sha[REDIS_CONN_MAX_SCRIPTS][REDIS_SHA_HEX];
	char			 why[160];
	int64_t			 backoff_ms;
	struct event		*tick, *retry, *drop_ev;
	char			 drop_why[160];
	struct redis_conn_stats	 st;
};

static void	redis_connect_next(struct redis_conn *);
static void	redis_fail(struct redis_conn *, const char *why);

/* From inside hiredis's callbacks a context cannot be freed: the drop
 * event does it once they are over. */
static void
redis_fail_later(struct redis_conn *rc, const char *why)
{
	if (rc->drop_why[0] == '\0')
		snprintf(rc->drop_why, sizeof(rc->drop_why), "%s", why);
	event_active(rc->drop_ev, EV_TIMEOUT, 0);
}

/* ---- links -------------------------------------------------------------- */

static void
redis_link_answer_all(struct redis_link *l)
{
	/* hiredis answers what it still holds with NULL when freed; this
	 * covers a ring left by a context that never was (connect error). */
	while (l->n > 0) {
		struct redis_wait w = l->ring[l->head];

		l->head = (l->head + 1) % l->rc->cfg.max_pending;
		l->n--;
		l->rc->st.failed++;
		if (w.fn != NULL)
			w.fn(w.arg, NULL);
	}
}

static void
redis_link_free(struct redis_link *l)
{
	if (l == NULL)
		return;
	free(l->ring);
	free(l);
}

/* Ours to free, outside hiredis's callbacks: the commands in flight are
 * answered NULL by redisAsyncFree, then the link goes. */
static void
redis_link_drop(struct redis_link *l)
{
	if (l == NULL)
		return;
	l->dropping = true;
	if (l->ac != NULL)
		redisAsyncFree(l->ac);
	redis_link_answer_all(l);
	redis_link_free(l);
}

static void
redis_on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct redis_link *l = priv;
	struct redis_conn *rc = l->rc;
	redisReply *r = reply;
	struct redis_wait w;

	(void)ac;
	if (l->n == 0)			/* cannot happen: one per command */
		return;
	w = l->ring[l->head];
	l->head = (l->head + 1) % rc->cfg.max_pending;
	l->n--;
	rc->st.pending = l->n;
	if (r == NULL) {
		rc->st.failed++;
	} else if (r->type == REDIS_REPLY_ERROR) {
		rc->st.errors++;
		/* A master turned replica, a script cache flushed, a
		 * server loading its data: this connection cannot serve
		 * the state any more; a new one asks again. */
		if (strncmp(r->str, "READONLY", 8) == 0 ||
		    strncmp(r->str, "NOSCRIPT", 8) == 0 ||
		    strncmp(r->str, "LOADING", 7) == 0 ||
		    strncmp(r->str, "MASTERDOWN", 10) == 0) {
			char why[80];

			snprintf(why, sizeof(why), "the server answered %.40s",
			    r->str);
			redis_fail_later(rc, why);
		}
	}
	if (w.fn != NULL)
		w.fn(w.arg, r);
}

static int
redis_link_send(struct redis_link *l, redis_reply_fn *fn, void *arg,
    int argc, const char **argv, const size_t *lens)
{
	struct redis_conn *rc = l->rc;
	size_t tail;

	if (l->n == rc->cfg.max_pending)
		return -1;
	tail = (l->head + l->n) % rc->cfg.max_pending;
	l->ring[tail] = (struct redis_wait){ fn, arg, clock_mono_ms() };
	l->n++;
	if (redisAsyncCommandArgv(l->ac, redis_on_reply, l, argc, argv,
	    lens) != REDIS_OK) {
		l->n--;
		return -1;
	}
	rc->st.commands++;
	rc->st.pending = l->n;
	return 0;
}

static void
redis_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_link *l = ac->data;
	struct redis_conn *rc = l->rc;
	char why[160];

	(void)status;
	if (l->dropping)
		return;			/* redis_link_drop frees it */
	/* hiredis frees the context after this: the link goes with it. */
	snprintf(why, sizeof(why), "connection lost: %.100s",
	    ac->errstr[0] != '\0' ? ac->errstr : "closed by the server");
	if (rc->data == l)
		rc->data = NULL;
	if (rc->ask == l)
		rc->ask = NULL;
	redis_link_answer_all(l);
	redis_link_free(l);
	redis_fail(rc, why);
}

static void	redis_on_connect(const redisAsyncContext *, int);
static const char *redis_endpoint_name(const struct redis_endpoint *, char *,
		    size_t);

static struct redis_link *
redis_link_open(struct redis_conn *rc, const struct redis_endpoint *ep,
    bool sentinel, char why[160])
{
	struct redis_link *l = xcalloc(1, sizeof(*l));

	l->rc = rc;
	l->sentinel = sentinel;
	l->started_ms = clock_mono_ms();
	l->ring = xcalloc(rc->cfg.max_pending, sizeof(*l->ring));
	l->ac = ep->path[0] != '\0' ? redisAsyncConnectUnix(ep->path) :
	    redisAsyncConnect(ep->host, ep->port);
	if (l->ac == NULL || l->ac->err) {
		char name[300];

		snprintf(why, 160, "connect to %s%.60s: %.60s",
		    sentinel ? "sentinel " : "",
		    redis_endpoint_name(ep, name, sizeof(name)),
		    l->ac != NULL ? l->ac->errstr : "out of memory");
		if (l->ac != NULL)
			redisAsyncFree(l->ac);
		redis_link_free(l);
		return NULL;
	}
	l->ac->data = l;
	redisLibeventAttach(l->ac, event_get_base(rc->tick));
	redisAsyncSetConnectCallback(l->ac, redis_on_connect);
	redisAsyncSetDisconnectCallback(l->ac, redis_on_disconnect);
	return l;
}

/* ---- up and down --------------------------------------------------------- */

static const char *
redis_endpoint_name(const struct redis_endpoint *ep, char *buf, size_t len)
{
	if (ep->path[0] != '\0')
		snprintf(buf, len, "%s", ep->path);
	else if (strchr(ep->host, ':') != NULL)
		snprintf(buf, len, "[%s]:%d", ep->host, ep->port);
	else
		snprintf(buf, len, "%s:%d", ep->host, ep->port);
	return buf;
}

/* Drops the links, tells the owner once, and tries again after the
 * back-off. */
static void
redis_fail(struct redis_conn *rc, const char *why)
{
	struct redis_link *d = rc->data, *a = rc->ask;
	struct timeval tv;
	bool was_up = rc->was_up;

	rc->phase = REDIS_IDLE;		/* commands refused from here */
	rc->data = NULL;
	rc->ask = NULL;
	rc->was_up = false;
	snprintf(rc->why, sizeof(rc->why), "%s", why);
	redis_link_drop(a);
	redis_link_drop(d);
	if (was_up && rc->cfg.on_down != NULL)
		rc->cfg.on_down(rc->cfg.arg, rc->why);
	if (rc->backoff_ms == 0)
		rc->backoff_ms = REDIS_BACKOFF_MIN_MS;
	else if ((rc->backoff_ms *= 2) > REDIS_BACKOFF_MAX_MS)
		rc->backoff_ms = REDIS_BACKOFF_MAX_MS;
	/* After an episode that was up, the first try is at once: a
	 * failover's new master, a restarted server. */
	if (was_up)
		rc->backoff_ms = 0;
	tv.tv_sec = rc->backoff_ms / 1000;
	tv.tv_usec = (rc->backoff_ms % 1000) * 1000;
	evtimer_add(rc->retry, &tv);
}

static void
redis_up(struct redis_conn *rc)
{
	char name[300];

	rc->phase = REDIS_UP;
	rc->was_up = true;
	rc->backoff_ms = 0;
	rc->why[0] = '\0';
	rc->st.connects++;
	if (rc->st.connects > 1 && memcmp(&rc->master, &rc->last_master,
	    sizeof(rc->master)) != 0)
		rc->st.master_changes++;
	rc->last_master = rc->master;
	log_debug("redis up at %s", redis_endpoint_name(&rc->master, name,
	    sizeof(name)));
	if (rc->cfg.on_up != NULL)
		rc->cfg.on_up(rc->cfg.arg);
}

/* ---- the handshake ------------------------------------------------------- */

static void
redis_on_handshake(void *arg, const redisReply *r)
{
	struct redis_conn *rc = arg;
	char why[160];

	if (rc->phase != REDIS_CONNECTING)
		return;			/* dropped meanwhile */
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof(why), "handshake: %.100s", r == NULL ?
		    "no answer" : r->str);
		redis_fail_later(rc, why);
		return;
	}
	if (--rc->handshake_left == 0)
		redis_up(rc);
}

static void
redis_on_role(void *arg, const redisReply *r)
{
	struct redis_conn *rc = arg;

	if (rc->phase != REDIS_CONNECTING)
		return;
	if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(r->element[0]->str, "master") != 0) {
		redis_fail_later(rc, "reached a replica, not the master");
		return;
	}
	redis_on_handshake(arg, r);
}

static void
redis_handshake(struct redis_conn *rc)
{
	struct redis_link *l = rc->data;
	const struct redis_addr *a = &rc->cfg.addr;
	const char *argv[4];
	size_t lens[4];
	char db[16];
	int fail = 0;

	rc->handshake_left = 1 + rc->cfg.nscripts;	/* ROLE, scripts */
	if (a->password[0] != '\0') {
		int n = 0;

		argv[n] = "AUTH";
		lens[n++] = 4;
		if (a->user[0] != '\0') {
			argv[n] = a->user;
			lens[n++] = strlen(a->user);
		}
		argv[n] = a->password;
		lens[n++] = strlen(a->password);
		rc->handshake_left++;
		fail |= redis_link_send(l, redis_on_handshake, rc, n, argv,
		    lens);
	}
	if (a->db != 0) {
		snprintf(db, sizeof(db), "%d", a->db);
		argv[0] = "SELECT";
		argv[1] = db;
		lens[0] = 6;
		lens[1] = strlen(db);
		rc->handshake_left++;
		fail |= redis_link_send(l, redis_on_handshake, rc, 2, argv,
		    lens);
	}
	argv[0] = "ROLE";
	lens[0] = 4;
	fail |= redis_link_send(l, redis_on_role, rc, 1, argv, lens);
	for (size_t i = 0; i < rc->cfg.nscripts; i++) {
		argv[0] = "SCRIPT";
		argv[1] = "LOAD";
		argv[2] = rc->cfg.scripts[i];
		lens[0] = 6;
		lens[1] = 4;
		lens[2] = strlen(rc->cfg.scripts[i]);
		fail |= redis_link_send(l, redis_on_handshake, rc, 3, argv,
		    lens);
	}
	if (fail)
		redis_fail_later(rc, "handshake: could not send");
}

/* ---- asking Sentinel ----------------------------------------------------- */

static void
redis_on_master_addr(redisAsyncContext *ac, void *reply, void *priv)
{
	struct redis_link *l = priv;
	struct redis_conn *rc = l->rc;
	redisReply *r = reply;
	struct redis_endpoint ep;
	char err[ERR_LEN], buf[300], why[160];

	(void)ac;
	if (l->dropping || rc->ask != l || rc->phase != REDIS_ASKING)
		return;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		snprintf(why, sizeof(why), "sentinel knows no master %.60s",
		    rc->cfg.master_name);
		redis_fail_later(rc, why);
		return;
	}
	snprintf(buf, sizeof(buf), "%s%s%s:%s",
	    strchr(r->element[0]->str, ':') != NULL ? "[" : "",
	    r->element[0]->str,
	    strchr(r->element[0]->str, ':') != NULL ? "]" : "",
	    r->element[1]->str);
	if (redis_endpoint_parse(buf, strlen(buf), &ep, err) < 0) {
		snprintf(why, sizeof(why), "sentinel's master address: %.100s",
		    err);
		redis_fail_later(rc, why);
		return;
	}
	rc->master = ep;
	rc->asked_round = 0;
	/* The sentinel link goes once this callback is over. */
	event_active(rc->drop_ev, EV_TIMEOUT, 0);
	rc->drop_why[0] = '\0';
}

static void
redis_on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_link *l = ac->data;
	struct redis_conn *rc = l->rc;
	const char *argv[3];
	size_t lens[3];
	char why[160];

	if (l->dropping)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this; nothing was sent
		 * on it yet (the handshake waits for the connect). */
		snprintf(why, sizeof(why), "connect%s: %.100s",
		    l->sentinel ? " to sentinel" : "", ac->errstr);
		if (rc->data == l)
			rc->data = NULL;
		if (rc->ask == l)
			rc->ask = NULL;
		l->ac = NULL;
		l->dropping = true;	/* no disconnect callback follows */
		redis_link_free(l);
		if (rc->phase == REDIS_ASKING && rc->cfg.nsentinels > 1 &&
		    rc->asked_round + 1 < rc->cfg.nsentinels) {
			rc->asked_round++;
			redis_connect_next(rc);	/* the next sentinel */
			return;
		}
		redis_fail(rc, why);
		return;
	}
	l->connected = true;
	if (l->sentinel) {
		argv[0] = "SENTINEL";
		argv[1] = "get-master-addr-by-name";
		argv[2] = rc->cfg.master_name;
		lens[0] = 8;
		lens[1] = strlen(argv[1]);
		lens[2] = strlen(argv[2]);
		if (redisAsyncCommandArgv(l->ac, redis_on_master_addr, l, 3,
		    argv, lens) != REDIS_OK)
			redis_fail_later(rc, "sentinel: could not send");
		return;
	}
	redis_handshake(rc);
}

/* ---- the steps ----------------------------------------------------------- */

static void
redis_connect_next(struct redis_conn *rc)
{
	char why[160];

	if (rc->cfg.nsentinels > 0 && rc->phase != REDIS_ASKING) {
		const struct redis_endpoint *ep =
		    &rc->cfg.sentinels[rc->next_sentinel];

		rc->next_sentinel = (rc->next_sentinel + 1) %
		    rc->cfg.nsentinels;
		rc->phase = REDIS_ASKING;
		if ((rc->ask = redis_link_open(rc, ep, true, why)) == NULL)
			redis_fail(rc, why);
		return;
	}
	if (rc->cfg.nsentinels > 0) {	/* another sentinel, same round */
		const struct redis_endpoint *ep =
		    &rc->cfg.sentinels[rc->next_sentinel];

		rc->next_sentinel = (rc->next_sentinel + 1) %
		    rc->cfg.nsentinels;
		if ((rc->ask = redis_link_open(rc, ep, true, why)) == NULL)
			redis_fail(rc, why);
		return;
	}
	rc->master = rc->cfg.addr.ep;
	rc->phase = REDIS_CONNECTING;
	if ((rc->data = redis_link_open(rc, &rc->master, false, why)) == NULL)
		redis_fail(rc, why);
}

static void
redis_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct redis_conn *rc = arg;

	(void)fd;
	(void)what;
	if (rc->phase == REDIS_IDLE) {
		rc->asked_round = 0;
		redis_connect_next(rc);
	}
}

/* A step that must happen outside hiredis's callbacks: a sentinel that
 * answered (or failed) goes, a connection that cannot serve goes. */
static void
redis_on_drop(evutil_socket_t fd, short what, void *arg)
{
	struct redis_conn *rc = arg;
	struct redis_link *a = rc->ask;
	char why[160];

	(void)fd;
	(void)what;
	if (rc->phase == REDIS_ASKING && a != NULL) {
		rc->ask = NULL;
		redis_link_drop(a);
		if (rc->drop_why[0] != '\0') {
			snprintf(why, sizeof(why), "%s", rc->drop_why);
			rc->drop_why[0] = '\0';
			if (rc->asked_round + 1 < rc->cfg.nsentinels) {
				rc->asked_round++;
				redis_connect_next(rc);
			} else
				redis_fail(rc, why);
			return;
		}
		rc->phase = REDIS_CONNECTING;
		if ((rc->data = redis_link_open(rc, &rc->master, false,
		    why)) == NULL)
			redis_fail(rc, why);
		return;
	}
	if (rc->drop_why[0] != '\0' && (rc->phase == REDIS_UP ||
	    rc->phase == REDIS_CONNECTING)) {
		snprintf(why, sizeof(why), "%s", rc->drop_why);
		rc->drop_why[0] = '\0';
		redis_fail(rc, why);
	}
}

/* Every wait has a deadline: the connect, the sentinel's answer, the
 * oldest command's answer. */
static void
redis_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct redis_conn *rc = arg;
	int64_t now = clock_mono_ms(), limit = rc->cfg.timeout_ms;
	struct redis_link *l = rc->phase == REDIS_ASKING ? rc->ask : rc->data;
	char why[160];

	(void)fd;
	(void)what;
	if (l == NULL || rc->phase == REDIS_IDLE)
		return;
	if (!l->connected && now - l->started_ms > limit) {
		snprintf(why, sizeof(why), "connect%s: timed out after %lld "
		    "ms", l->sentinel ? " to sentinel" : "", (long long)limit);
	} else if (l->sentinel && now - l->started_ms > 2 * limit) {
		snprintf(why, sizeof(why), "sentinel: no answer in %lld ms",
		    (long long)(2 * limit));
	} else if (l->n > 0 && now - l->ring[l->head].at_ms > limit) {
		snprintf(why, sizeof(why), "no answer in %lld ms",
		    (long long)limit);
	} else
		return;
	rc->st.timeouts++;
	if (l->sentinel && rc->asked_round + 1 < rc->cfg.nsentinels) {
		rc->ask = NULL;
		redis_link_drop(l);
		rc->asked_round++;
		redis_connect_next(rc);
		return;
	}
	redis_fail(rc, why);
}

/* ---- the face ------------------------------------------------------------ */

struct redis_conn *
redis_conn_new(const struct redis_conn_config *cfg, char err[ERR_LEN])
{
	struct redis_conn *rc;
	struct timeval tick = { 0, REDIS_TICK_MS * 1000 };

	if (cfg->base == NULL || cfg->timeout_ms < 1 || cfg->max_pending < 1 ||
	    cfg->nscripts > REDIS_CONN_MAX_SCRIPTS ||
	    (cfg->nsentinels > 0 && (cfg->master_name == NULL ||
	    cfg->master_name[0] == '\0'))) {
		err_set(err, "redis: a timeout, a bound on commands in flight "
		    "and, with sentinels, a master name are needed");
		return NULL;
	}
	rc = xcalloc(1, sizeof(*rc));
	rc->cfg = *cfg;
	for (size_t i = 0; i < cfg->nscripts; i++) {
		unsigned char md[SHA_DIGEST_LENGTH];

		SHA1((const unsigned char *)cfg->scripts[i],
		    strlen(cfg->scripts[i]), md);
		for (size_t j = 0; j < sizeof(md); j++)
			snprintf(rc->sha[i] + 2 * j, 3, "%02x", md[j]);
	}
	snprintf(rc->why, sizeof(rc->why), "connecting");
	rc->tick = event_new(cfg->base, -1, EV_PERSIST, redis_on_tick, rc);
	rc->retry = evtimer_new(cfg->base, redis_on_retry, rc);
	rc->drop_ev = event_new(cfg->base, -1, 0, redis_on_drop, rc);
	event_add(rc->tick, &tick);
	redis_connect_next(rc);
	return rc;
}

void
redis_conn_free(struct redis_conn *rc)
{
	struct redis_link *d, *a;

	if (rc == NULL)
		return;
	d = rc->data;
	a = rc->ask;
	rc->phase = REDIS_IDLE;
	rc->data = rc->ask = NULL;
	redis_link_drop(a);
	redis_link_drop(d);
	event_free(rc->tick);
	event_free(rc->retry);
	event_free(rc->drop_ev);
	OPENSSL_cleanse(&rc->cfg.addr, sizeof(rc->cfg.addr));
	free(rc);
}

bool
redis_conn_up(const struct redis_conn *rc)
{
	return rc->phase == REDIS_UP;
}

const char *
redis_conn_why(const struct redis_conn *rc)
{
	return rc->phase == REDIS_UP ? "" : rc->why;
}

void
redis_args_init(struct redis_args *a)
{
	a->n = 0;
	a->overflow = false;
}

void
redis_args_add(struct redis_args *a, const char *s, size_t len)
{
	if (a->n == REDIS_ARGS_MAX) {
		a->overflow = true;
		return;
	}
	a->v[a->n] = s;
	a->len[a->n++] = len;
}

void
redis_args_str(struct redis_args *a, const char *s)
{
	redis_args_add(a, s, strlen(s));
}

void
redis_args_int(struct redis_args *a, int64_t v)
{
	if (a->n < REDIS_ARGS_MAX) {
		snprintf(a->num[a->n], sizeof(a->num[a->n]), "%lld",
		    (long long)v);
		redis_args_str(a, a->num[a->n]);
	} else
		a->overflow = true;
}

void
redis_args_double(struct redis_args *a, double v)
{
	if (a->n < REDIS_ARGS_MAX) {
		snprintf(a->num[a->n], sizeof(a->num[a->n]), "%.6f", v);
		redis_args_str(a, a->num[a->n]);
	} else
		a->overflow = true;
}

static int
redis_conn_send(struct redis_conn *rc, redis_reply_fn *fn, void *arg,
    int argc, const char **argv, const size_t *lens)
{
	if (rc->phase != REDIS_UP || rc->data == NULL ||
	    redis_link_send(rc->data, fn, arg, argc, argv, lens) < 0) {
		rc->st.refused++;
		return -1;
	}
	return 0;
}

int
redis_conn_command(struct redis_conn *rc, redis_reply_fn *fn, void *arg,
    const struct redis_args *a)
{
	const char *av[REDIS_ARGS_MAX];

	if (a->overflow || a->n == 0)
		return -1;
	memcpy(av, a->v, sizeof(*av) * (size_t)a->n);
	return redis_conn_send(rc, fn, arg, a->n, av, a->len);
}

int
redis_conn_script(struct redis_conn *rc, size_t i, int nkeys,
    redis_reply_fn *fn, void *arg, const struct redis_args *a)
{
	const char *av[3 + REDIS_ARGS_MAX];
	size_t lv[3 + REDIS_ARGS_MAX];
	char nk[16];

	if (i >= rc->cfg.nscripts || a->overflow || nkeys < 0 || nkeys > a->n)
		return -1;
	snprintf(nk, sizeof(nk), "%d", nkeys);
	av[0] = "EVALSHA";
	lv[0] = 7;
	av[1] = rc->sha[i];
	lv[1] = REDIS_SHA_HEX - 1;
	av[2] = nk;
	lv[2] = strlen(nk);
	for (int j = 0; j < a->n; j++) {
		av[3 + j] = a->v[j];
		lv[3 + j] = a->len[j];
	}
	return redis_conn_send(rc, fn, arg, 3 + a->n, av, lv);
}

void
redis_conn_get_stats(const struct redis_conn *rc, struct redis_conn_stats *out)
{
	*out = rc->st;
	out->pending = rc->data != NULL ? rc->data->n : 0;
}
