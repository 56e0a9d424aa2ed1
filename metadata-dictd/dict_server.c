/*
 * The server: the listening socket, the list of connections, the group
 * commit, the wake-up datagram to notifierd, the token sweep and the
 * metrics. Connections hand it their commits and their closing; it runs
 * both from one event made active after the loop's I/O callbacks, so a
 * connection is never freed under its own callback.
 *
 * Group commit: every C that arrives in one loop pass is applied in one
 * SQLite transaction and answered only after COMMIT returned. Under load
 * that is one WAL append (and with --sync full one fsync) for dozens of
 * Dovecot transactions, without giving up "answered means stored".
 */
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "clock.h"
#include "dictd.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "unixsock.h"
#include "xmalloc.h"

/* Sweep expired tokens in slices so the loop never stalls on it. */
#define DICT_SWEEP_BATCH_ROWS	5000
#define DICT_SWEEP_MAX_PERIOD_MS	(5 * 60 * 1000)
#define DICT_SWEEP_MIN_PERIOD_MS	1000
/* Room for the listen backlog: a burst of new imap processes. */
#define DICT_LISTEN_BACKLOG	4096

struct dict_pending {
	struct dict_conn	*conn;
	struct dict_txn		*txn;
};

struct dict_server {
	struct event_base	*base;
	struct dict_store	*store;
	struct dict_vendor	*vendor;
	struct evconnlistener	*listener;
	char			*socket_path;
	int			 notify_fd;
	struct sockaddr_un	 notify_addr;
	struct event		*after_io;
	struct event		*sweep;
	int64_t			 sweep_period_ms;
	struct metrics		*metrics;
	struct metrics_http	*metrics_http;
	struct dict_stats	 stats;
	struct dict_pending	*pending;	/* commits of this pass */
	size_t			 npending, cap_pending;
	struct dict_conn	**closing;	/* to free after this pass */
	size_t			 nclosing, cap_closing;
	struct dict_conn	*conns;		/* every open connection */
	size_t			 nconns;
};

struct dict_store *
dict_server_store(struct dict_server *srv)
{
	return srv->store;
}

struct dict_stats *
dict_server_stats(struct dict_server *srv)
{
	return &srv->stats;
}

struct dict_vendor *
dict_server_vendor(struct dict_server *srv)
{
	return srv->vendor;
}

struct event_base *
dict_server_base(struct dict_server *srv)
{
	return srv->base;
}

static void
dict_server_wake_later(struct dict_server *srv)
{
	event_active(srv->after_io, 0, 0);
}

void
dict_server_read_done_later(struct dict_server *srv)
{
	dict_server_wake_later(srv);
}

void
dict_server_commit_enqueue(struct dict_server *srv, struct dict_conn *c,
    struct dict_txn *t)
{
	srv->pending = dict_array_grow(srv->pending, srv->npending,
	    &srv->cap_pending, sizeof(*srv->pending), 64);
	srv->pending[srv->npending].conn = c;
	srv->pending[srv->npending].txn = t;
	srv->npending++;
	dict_server_wake_later(srv);
}

void
dict_server_conn_closed(struct dict_server *srv, struct dict_conn *c)
{
	srv->closing = dict_array_grow(srv->closing, srv->nclosing,
	    &srv->cap_closing, sizeof(*srv->closing), 64);
	srv->closing[srv->nclosing++] = c;
	dict_server_wake_later(srv);
}

/* Best effort: notifierd also polls, so a lost datagram costs at most its
 * poll interval. Non-blocking, errors ignored (notifierd may be down). */
static void
dict_server_notify(struct dict_server *srv)
{
	if (srv->notify_fd < 0)
		return;
	(void)sendto(srv->notify_fd, "w", 1, MSG_DONTWAIT,
	    (struct sockaddr *)&srv->notify_addr, sizeof(srv->notify_addr));
}

/* Apply every pending commit in one SQLite transaction, then answer. */
static void
dict_server_flush(struct dict_server *srv)
{
	struct dict_pending *batch = srv->pending;
	size_t n = srv->npending;
	enum dict_commit_result *results;
	char **reasons;
	uint64_t queued = 0, tokens_set = 0;
	int64_t now = clock_wall_ms();
	char err[ERR_LEN];
	bool ok;

	if (n == 0)
		return;
	/* Commits enqueued by the replies below (pipelined C) go to a
	 * fresh list and the next pass. */
	srv->pending = NULL;
	srv->npending = srv->cap_pending = 0;
	results = xcalloc(n, sizeof(*results));
	reasons = xcalloc(n, sizeof(*reasons));

	ok = dict_store_batch_begin(srv->store, err) == 0;
	for (size_t i = 0; ok && i < n; i++) {
		results[i] = dict_store_apply(srv->store, batch[i].txn, now,
		    &queued, &tokens_set, err);
		if (results[i] == DICT_COMMIT_FAILED) {
			log_warnx("dict conn=%llu transaction=%u failed: %s",
			    dict_conn_id(batch[i].conn), batch[i].txn->id,
			    err);
			metric_inc(srv->stats.fail_txn);
			reasons[i] = xstrdup(err);
		}
	}
	if (ok && dict_store_batch_commit(srv->store, err) < 0)
		ok = false;
	if (!ok) {
		log_warnx("dict group commit of %zu transactions failed: %s",
		    n, err);
		metric_inc(srv->stats.fail_store);
		for (size_t i = 0; i < n; i++) {
			results[i] = DICT_COMMIT_FAILED;
			free(reasons[i]);
			reasons[i] = xstrdup("storage failure");
		}
		queued = tokens_set = 0;
	}
	metric_inc(srv->stats.group_commits);
	metric_add(srv->stats.queue_rows, queued);
	metric_add(srv->stats.token_sets, tokens_set);
	if (queued > 0)
		dict_server_notify(srv);

	for (size_t i = 0; i < n; i++) {
		metric_inc(results[i] == DICT_COMMIT_OK ?
		    srv->stats.commit_ok : results[i] ==
		    DICT_COMMIT_NOT_FOUND ? srv->stats.commit_not_found :
		    srv->stats.commit_failed);
		dict_conn_commit_done(batch[i].conn, batch[i].txn, results[i],
		    reasons[i]);
		free(reasons[i]);
	}
	free(reasons);
	free(results);
	free(batch);
}

static void
dict_server_reap(struct dict_server *srv)
{
	/* Freeing may not add to the list: dict_conn_free closes nothing
	 * that calls back into the server. */
	for (size_t i = 0; i < srv->nclosing; i++) {
		dict_conn_unlink(srv->closing[i], &srv->conns);
		dict_conn_free(srv->closing[i]);
		srv->nconns--;
		metric_gauge_add(srv->stats.connections, -1);
	}
	srv->nclosing = 0;
}

static void
dict_server_on_after_io(evutil_socket_t fd, short what, void *arg)
{
	struct dict_server *srv = arg;

	(void)fd;
	(void)what;
	dict_store_read_end(srv->store);
	dict_server_flush(srv);
	dict_server_reap(srv);
	if (srv->npending > 0 || srv->nclosing > 0)
		dict_server_wake_later(srv);
}

static void
dict_server_on_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct dict_server *srv = arg;
	struct dict_conn *c;

	(void)l;
	(void)sa;
	(void)salen;
	c = dict_conn_new(srv, fd);
	dict_conn_link(c, &srv->conns);
	srv->nconns++;
	metric_inc(srv->stats.connections_total);
	metric_gauge_add(srv->stats.connections, 1);
	log_debug("dict conn=%llu accepted open=%zu", dict_conn_id(c),
	    srv->nconns);
}

static void
dict_server_on_accept_error(struct evconnlistener *l, void *arg)
{
	int e = EVUTIL_SOCKET_ERROR();

	(void)l;
	(void)arg;
	/* EMFILE and friends: the listener retries on the next event;
	 * keep going rather than die with every Dovecot process waiting. */
	log_warnx("dict accept failed: %s", evutil_socket_error_to_string(e));
}

static void
dict_server_on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct dict_server *srv = arg;
	struct timeval tv;
	char err[ERR_LEN];
	int64_t count;
	int n;

	(void)fd;
	(void)what;
	n = dict_store_sweep(srv->store, clock_wall_ms(), DICT_SWEEP_BATCH_ROWS,
	    err);
	if (n < 0)
		log_warnx("dict token sweep failed: %s", err);
	else if (n > 0)
		log_info("dict token sweep expired=%d", n);
	if ((count = dict_store_count_tokens(srv->store, err)) >= 0)
		metric_set(srv->stats.tokens, count);
	/* A full slice means more are waiting: come back soon. */
	tv.tv_sec = n == DICT_SWEEP_BATCH_ROWS ? 0 :
	    srv->sweep_period_ms / 1000;
	tv.tv_usec = n == DICT_SWEEP_BATCH_ROWS ? 10000 :
	    (srv->sweep_period_ms % 1000) * 1000;
	evtimer_add(srv->sweep, &tv);
}

static void
dict_server_register_metrics(struct dict_server *srv)
{
	struct metrics *m = srv->metrics;
	struct dict_stats *st = &srv->stats;
	const char *cmd_help = "Dict protocol commands received";

	st->connections = metrics_gauge(m, "dictd_connections_open",
	    "Open dict connections", NULL);
	st->connections_total = metrics_counter(m, "dictd_connections",
	    "Dict connections accepted", NULL);
	st->cmd_lookup = metrics_counter(m, "dictd_commands", cmd_help,
	    "command=\"lookup\"");
	st->cmd_iterate = metrics_counter(m, "dictd_commands", cmd_help,
	    "command=\"iterate\"");
	st->cmd_begin = metrics_counter(m, "dictd_commands", cmd_help,
	    "command=\"begin\"");
	st->cmd_set = metrics_counter(m, "dictd_commands", cmd_help,
	    "command=\"set\"");
	st->cmd_unset = metrics_counter(m, "dictd_commands", cmd_help,
	    "command=\"unset\"");
	st->cmd_inc = metrics_counter(m, "dictd_commands", cmd_help,
	    "command=\"atomic_inc\"");
	st->cmd_commit = metrics_counter(m, "dictd_commands", cmd_help,
	    "command=\"commit\"");
	st->cmd_rollback = metrics_counter(m, "dictd_commands", cmd_help,
	    "command=\"rollback\"");
	st->cmd_other = metrics_counter(m, "dictd_commands", cmd_help,
	    "command=\"other\"");
	st->commit_ok = metrics_counter(m, "dictd_commits",
	    "Dict transactions committed, by result", "result=\"ok\"");
	st->commit_not_found = metrics_counter(m, "dictd_commits",
	    "Dict transactions committed, by result", "result=\"not_found\"");
	st->commit_failed = metrics_counter(m, "dictd_commits",
	    "Dict transactions committed, by result", "result=\"failed\"");
	st->group_commits = metrics_counter(m, "dictd_group_commits",
	    "SQLite transactions that carried dict commits", NULL);
	st->token_sets = metrics_counter(m, "dictd_token_sets",
	    "Device tokens set or refreshed", NULL);
	st->tokens = metrics_gauge(m, "dictd_tokens",
	    "Device tokens stored (as of the last sweep)", NULL);
	st->queue_rows = metrics_counter(m, "dictd_queue_rows_inserted",
	    "Notification jobs queued for notifierd", NULL);
	st->err_line_too_long = metrics_counter(m, "dictd_protocol_errors",
	    "Connections closed for bad input", "reason=\"line_too_long\"");
	st->err_parse = metrics_counter(m, "dictd_protocol_errors",
	    "Connections closed for bad input", "reason=\"malformed\"");
	st->err_protocol = metrics_counter(m, "dictd_protocol_errors",
	    "Connections closed for bad input", "reason=\"protocol\"");
	st->fail_store = metrics_counter(m, "dictd_failures",
	    "Failed operations", "reason=\"storage\"");
	st->fail_txn = metrics_counter(m, "dictd_failures",
	    "Failed operations", "reason=\"transaction\"");
	st->fail_turn = metrics_counter(m, "dictd_failures",
	    "Failed operations", "reason=\"turn\"");
	st->fail_appversions = metrics_counter(m, "dictd_failures",
	    "Failed operations", "reason=\"appversions\"");
}

static int
dict_server_listen(struct dict_server *srv,
    const struct dict_server_config *cfg, char err[ERR_LEN])
{
	struct sockaddr_un sun;
	struct group *gr;

	if (unixsock_addr(cfg->socket_path, &sun, err) < 0)
		return -1;
	/* A stale socket from a previous run would make bind fail. */
	if (unlink(cfg->socket_path) < 0 && errno != ENOENT) {
		err_set(err, "unlink %s: %s", cfg->socket_path,
		    strerror(errno));
		return -1;
	}
	srv->listener = evconnlistener_new_bind(srv->base,
	    dict_server_on_accept, srv, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_CLOSE_ON_EXEC, DICT_LISTEN_BACKLOG,
	    (struct sockaddr *)&sun, sizeof(sun));
	if (srv->listener == NULL) {
		err_set(err, "listen on %s: %s", cfg->socket_path,
		    strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(srv->listener,
	    dict_server_on_accept_error);
	srv->socket_path = xstrdup(cfg->socket_path);
	if (cfg->socket_group != NULL) {
		if ((gr = getgrnam(cfg->socket_group)) == NULL) {
			err_set(err, "unknown group %s", cfg->socket_group);
			return -1;
		}
		if (chown(cfg->socket_path, (uid_t)-1, gr->gr_gid) < 0) {
			err_set(err, "chown %s: %s", cfg->socket_path,
			    strerror(errno));
			return -1;
		}
	}
	if (chmod(cfg->socket_path, cfg->socket_mode) < 0) {
		err_set(err, "chmod %s: %s", cfg->socket_path, strerror(errno));
		return -1;
	}
	return 0;
}

struct dict_server *
dict_server_new(struct event_base *base, const struct dict_server_config *cfg,
    struct dict_store *store, char err[ERR_LEN])
{
	struct dict_server *srv = xcalloc(1, sizeof(*srv));
	struct timeval now = { 0, 0 };

	srv->base = base;
	srv->store = store;
	srv->notify_fd = -1;
	srv->vendor = dict_vendor_new(&cfg->vendor);
	srv->metrics = metrics_new();
	dict_server_register_metrics(srv);
	srv->after_io = event_new(base, -1, 0, dict_server_on_after_io, srv);
	srv->sweep = evtimer_new(base, dict_server_on_sweep, srv);
	srv->sweep_period_ms = cfg->token_ttl_ms / 4;
	if (srv->sweep_period_ms > DICT_SWEEP_MAX_PERIOD_MS)
		srv->sweep_period_ms = DICT_SWEEP_MAX_PERIOD_MS;
	if (srv->sweep_period_ms < DICT_SWEEP_MIN_PERIOD_MS)
		srv->sweep_period_ms = DICT_SWEEP_MIN_PERIOD_MS;
	evtimer_add(srv->sweep, &now);

	if (dict_vendor_config_check(&cfg->vendor, err) < 0)
		goto fail;
	if (cfg->notify_socket != NULL) {
		if (unixsock_addr(cfg->notify_socket, &srv->notify_addr,
		    err) < 0)
			goto fail;
		srv->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0);
		if (srv->notify_fd < 0) {
			err_set(err, "notify socket: %s", strerror(errno));
			goto fail;
		}
	}
	if (dict_server_listen(srv, cfg, err) < 0)
		goto fail;
	if (cfg->metrics_addr != NULL && (srv->metrics_http =
	    metrics_http_start(srv->metrics, cfg->metrics_addr, err)) == NULL)
		goto fail;
	return srv;
fail:
	dict_server_free(srv);
	return NULL;
}

void
dict_server_shutdown(struct dict_server *srv)
{
	/* Stop accepting, answer every commit already received, then close
	 * the connections; open transactions die with them, as with
	 * Dovecot's own server. */
	if (srv->listener != NULL) {
		evconnlistener_free(srv->listener);
		srv->listener = NULL;
		unlink(srv->socket_path);
	}
	while (srv->npending > 0)
		dict_server_flush(srv);
	for (struct dict_conn *c = srv->conns; c != NULL; c = dict_conn_next(c))
		dict_conn_close_later(c, "shutdown");
	dict_server_reap(srv);
}

void
dict_server_free(struct dict_server *srv)
{
	if (srv == NULL)
		return;
	metrics_http_stop(srv->metrics_http);
	dict_server_shutdown(srv);
	free(srv->pending);
	free(srv->closing);
	if (srv->after_io != NULL)
		event_free(srv->after_io);
	if (srv->sweep != NULL)
		event_free(srv->sweep);
	if (srv->notify_fd >= 0)
		close(srv->notify_fd);
	free(srv->socket_path);
	metrics_free(srv->metrics);
	dict_vendor_free(srv->vendor);
	dict_store_close(srv->store);
	free(srv);
}
