/*
 * The server, top of the chain server -> connection -> command -> store:
 * the listening socket, the connections it accepted (it owns them), the
 * context the commands work with (store, server-level entries, counters,
 * the hooks below), the group commit (dict_commit.c), the token sweep and
 * the metrics listener.
 *
 * Nothing below calls up into this file except through what it
 * registered: a connection reports its closing through the callback
 * given to dict_conn_new, a command hands its commit and its read
 * transaction through the context's hooks. Both are settled by one event
 * made active after the loop's I/O callbacks: end the pass's read
 * transaction, run the group commit (which answers the commits), then
 * free the closed connections; so a connection is never freed under its
 * own callback, nor before the group commit answered it. When another
 * process holds SQLite's write lock the group commit asks to be tried
 * again later (dict_commit.c): a timer then ends a pass of its own, and
 * a connection whose commit still waits stays on the closing list.
 *
 * Out of file descriptors, accept() fails while the listening socket
 * stays readable: libevent would call it again at once, forever
 * (measured: 100 % CPU and 33 MB/s of "accept failed" lines, clients in
 * the backlog never served). The listener is paused instead, and resumed
 * when a connection of ours is freed or after a back-off, with one log
 * line per episode.
 *
 * With --max-connections held (open, or closed and not yet freed) it
 * pauses the same way and resumes when one is freed. Pausing rather than
 * accepting and closing at once: Dovecot's client takes a closed
 * connection as a failed command (IMAP NO, a lost push), while its
 * connect completes in the listen backlog and its command waits there,
 * served in turn as other mail processes hang up (protocol doc §5: they
 * hold a connection per command, and wait 30 s for an answer). Without
 * the bound, 2,000 connections, 1,800 of them sending most of a 64 KiB
 * line, grew its RSS by 125 MiB; at --max-connections 500 by 32 MiB.
 */
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "accept_pause.h"
#include "clock.h"
#include "dictd.h"
#include "log.h"
#include "log_limit.h"
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
/* Bind under this umask: the socket is ours alone (0600) until chmod
 * gives it --socket-mode, never briefly 0777 & ~umask. */
#define DICT_SOCKET_BIND_UMASK	0177

/* One accepted connection, as the server holds it: on the open list,
 * then on the closing list until the pass's end frees it. */
struct dict_server_conn {
	TAILQ_ENTRY(dict_server_conn) link;
	struct dict_server	*srv;
	struct dict_conn	*conn;
};
TAILQ_HEAD(dict_server_conns, dict_server_conn);

struct dict_server {
	struct event_base	*base;
	struct dict_store	*store;
	struct dict_vendor	*vendor;
	struct dict_commit	*commits;
	struct dict_cmd_ctx	 ctx;		/* every command's */
	struct evconnlistener	*listener;
	char			*socket_path;
	struct event		*after_io;
	struct event		*commit_retry;	/* armed: the lock is held */
	bool			 commit_waiting; /* commit_retry is armed */
	struct event		*accept_retry;	/* armed: out of fds */
	bool			 paused_fds;	/* accept_retry is armed */
	bool			 listening;	/* the listener is enabled */
	struct accept_pause	 fds_episode;	/* accept() failed */
	struct accept_pause	 full_episode; /* at max_conns */
	size_t			 max_conns;	/* --max-connections */
	struct dict_txn_budget	 txn_budget;
	struct event		*sweep;
	int64_t			 sweep_period_ms;
	struct metrics		*metrics;
	struct metrics_http	*metrics_http;
	struct dict_stats	 stats;
	struct dict_server_conns open;
	struct dict_server_conns closing;	/* freed after this pass */
	size_t			 nopen;
	size_t			 nconns;	/* open and closing: held */
	unsigned long long	 next_conn_id;
};

struct dict_vendor *
dict_server_vendor(struct dict_server *srv)
{
	return srv->vendor;
}

const struct dict_stats *
dict_server_stats(const struct dict_server *srv)
{
	return &srv->stats;
}

static void
dict_server_wake_later(struct dict_server *srv)
{
	event_active(srv->after_io, 0, 0);
}

/* The commands' hooks (struct dict_cmd_ctx). */
static void
dict_server_on_read_done(void *arg)
{
	dict_server_wake_later(arg);
}

static void
dict_server_on_commit(void *arg, struct dict_txn *t,
    dict_commit_done_fn *done, void *done_arg)
{
	struct dict_server *srv = arg;

	dict_commit_enqueue(srv->commits, t, done, done_arg);
	dict_server_wake_later(srv);
}

/* A connection's callback (dict_conn_new): move it to the closing list. */
static void
dict_server_on_conn_closed(void *arg, struct dict_conn *c)
{
	struct dict_server_conn *sc = arg;
	struct dict_server *srv = sc->srv;

	(void)c;
	TAILQ_REMOVE(&srv->open, sc, link);
	srv->nopen--;
	TAILQ_INSERT_TAIL(&srv->closing, sc, link);
	dict_server_wake_later(srv);
}

/* The listener accepts unless out of file descriptors (until the retry
 * timer or a freed connection) or at --max-connections. */
static void
dict_server_listener_update(struct dict_server *srv)
{
	bool on = !srv->paused_fds && srv->nconns < srv->max_conns;

	if (srv->listener == NULL || on == srv->listening)
		return;
	if (on)
		evconnlistener_enable(srv->listener);
	else
		evconnlistener_disable(srv->listener);
	srv->listening = on;
}

static void
dict_server_on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct dict_server *srv = arg;

	(void)fd;
	(void)what;
	srv->paused_fds = false;
	dict_server_listener_update(srv);
}

/* Frees the closing connections, except those whose commit still waits
 * for the write lock (freed at a later pass, once answered). Each freed
 * one gives back a file descriptor and a place under --max-connections:
 * a paused listener resumes. */
static void
dict_server_reap(struct dict_server *srv)
{
	struct dict_server_conn *sc, *next;
	bool freed = false;

	/* Freeing adds nothing to the list: dict_conn_free closes nothing
	 * that calls back into the server. */
	for (sc = TAILQ_FIRST(&srv->closing); sc != NULL; sc = next) {
		next = TAILQ_NEXT(sc, link);
		if (dict_conn_committing(sc->conn))
			continue;
		TAILQ_REMOVE(&srv->closing, sc, link);
		dict_conn_free(sc->conn);
		free(sc);
		metric_gauge_add(srv->stats.connections, -1);
		srv->nconns--;
		freed = true;
	}
	if (freed) {
		srv->paused_fds = false;
		evtimer_del(srv->accept_retry);
		dict_server_listener_update(srv);
	}
}

/* The end of a loop pass (or of a commit retry's timer): end the read
 * transaction, run the group commit unless it waits for the write lock,
 * free the closed connections. */
static void
dict_server_pass_end(struct dict_server *srv)
{
	struct timeval tv;
	int64_t delay;

	dict_store_read_end(srv->store);
	/* Before the reaping: a connection that closed while its commit
	 * waited is answered (to nobody) before it is freed. While the
	 * lock is held, only the retry timer flushes: a pass of lookups
	 * must not wait the loop's busy timeout every time. */
	if (!srv->commit_waiting) {
		delay = dict_commit_flush(srv->commits, srv->ctx.wall_ms(),
		    clock_mono_ms());
		if (delay > 0) {
			tv.tv_sec = delay / 1000;
			tv.tv_usec = (delay % 1000) * 1000;
			evtimer_add(srv->commit_retry, &tv);
			srv->commit_waiting = true;
		}
	}
	dict_server_reap(srv);
	if (!srv->commit_waiting && dict_commit_pending(srv->commits) > 0)
		dict_server_wake_later(srv);
}

static void
dict_server_on_after_io(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dict_server_pass_end(arg);
}

static void
dict_server_on_commit_retry(evutil_socket_t fd, short what, void *arg)
{
	struct dict_server *srv = arg;

	(void)fd;
	(void)what;
	srv->commit_waiting = false;
	dict_server_pass_end(srv);
}

static void
dict_server_on_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct dict_server *srv = arg;
	struct dict_server_conn *sc = xcalloc(1, sizeof(*sc));
	unsigned int ended;

	(void)l;
	(void)sa;
	(void)salen;
	if ((ended = accept_pause_accepted(&srv->fds_episode,
	    clock_mono_ms())) > 0)
		log_info("dict accept recovered failures=%u open=%zu", ended,
		    srv->nopen);
	if ((ended = accept_pause_accepted(&srv->full_episode,
	    clock_mono_ms())) > 0)
		log_info("dict connections below --max-connections again "
		    "pauses=%u open=%zu", ended, srv->nopen);
	sc->srv = srv;
	sc->conn = dict_conn_new(srv->base, fd, srv->next_conn_id++,
	    &srv->ctx, dict_server_on_conn_closed, sc);
	TAILQ_INSERT_TAIL(&srv->open, sc, link);
	srv->nopen++;
	srv->nconns++;
	metric_inc(srv->stats.connections_total);
	metric_gauge_add(srv->stats.connections, 1);
	log_debug("dict conn=%llu accepted open=%zu", dict_conn_id(sc->conn),
	    srv->nopen);
	if (srv->nconns < srv->max_conns)
		return;
	/* The next ones wait in the backlog (see the top of this file);
	 * libevent accepts no more in this callback once disabled. */
	metric_inc(srv->stats.conn_limit_pauses);
	if (accept_pause_begin(&srv->full_episode, clock_mono_ms()))
		log_warnx("dict connections at --max-connections=%zu: "
		    "accepting paused until one closes (one line per "
		    "episode)", srv->max_conns);
	dict_server_listener_update(srv);
}

/* accept() failed for another reason than a connection gone meanwhile
 * (libevent retries those itself): EMFILE, ENFILE, ENOBUFS, ENOMEM.
 * Pause rather than spin (see the top of this file), and keep going
 * rather than die with every Dovecot process waiting. */
static void
dict_server_on_accept_error(struct evconnlistener *l, void *arg)
{
	struct dict_server *srv = arg;
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval tv;
	int64_t delay;

	(void)l;
	metric_inc(srv->stats.accept_pauses);
	if (accept_pause_begin(&srv->fds_episode, clock_mono_ms()))
		log_warnx("dict accept failed: %s; paused until a connection "
		    "closes (one line per episode) open=%zu",
		    evutil_socket_error_to_string(e), srv->nopen);
	srv->paused_fds = true;
	dict_server_listener_update(srv);
	delay = accept_pause_delay_ms(&srv->fds_episode);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(srv->accept_retry, &tv);
}

static void
dict_server_on_log_suppressed(void *arg)
{
	struct dict_server *srv = arg;

	metric_inc(srv->stats.log_suppressed);
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
	n = dict_store_sweep(srv->store, srv->ctx.wall_ms(),
	    DICT_SWEEP_BATCH_ROWS, err);
	if (n < 0 && dict_store_locked(srv->store)) {
		/* Another process writes: not a failure, try again soon. */
		log_debug("dict token sweep postponed: database locked");
		tv.tv_sec = DICT_SWEEP_MIN_PERIOD_MS / 1000;
		tv.tv_usec = (DICT_SWEEP_MIN_PERIOD_MS % 1000) * 1000;
		evtimer_add(srv->sweep, &tv);
		return;
	}
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

static int
dict_server_listen(struct dict_server *srv,
    const struct dict_server_config *cfg, char err[ERR_LEN])
{
	struct sockaddr_un sun;
	struct group *gr;
	mode_t umask_before;

	if (unixsock_addr(cfg->socket_path, &sun, err) < 0)
		return -1;
	/* A stale socket from a previous run would make bind fail. */
	if (unlink(cfg->socket_path) < 0 && errno != ENOENT) {
		err_set(err, "unlink %s: %s", cfg->socket_path,
		    strerror(errno));
		return -1;
	}
	/* bind() creates the socket 0777 & ~umask: under the caller's
	 * umask (0 in a careless shell) anybody could connect between bind
	 * and the chmod below. The umask is the process's, but no other
	 * thread creates files now (the checkpoint thread only copies). */
	umask_before = umask(DICT_SOCKET_BIND_UMASK);
	srv->listener = evconnlistener_new_bind(srv->base,
	    dict_server_on_accept, srv, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_CLOSE_ON_EXEC, DICT_LISTEN_BACKLOG,
	    (struct sockaddr *)&sun, sizeof(sun));
	umask(umask_before);
	if (srv->listener == NULL) {
		err_set(err, "listen on %s: %s", cfg->socket_path,
		    strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(srv->listener,
	    dict_server_on_accept_error);
	srv->listening = true;
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
	TAILQ_INIT(&srv->open);
	TAILQ_INIT(&srv->closing);
	srv->next_conn_id = 1;
	srv->vendor = dict_vendor_new(&cfg->vendor);
	srv->metrics = metrics_new();
	dict_stats_register(&srv->stats, srv->metrics);
	log_limit_set_hook(dict_server_on_log_suppressed, srv);
	srv->txn_budget.conn_max = cfg->txn_conn_max_bytes > 0 ?
	    cfg->txn_conn_max_bytes : DICT_TXN_CONN_MAX_BYTES_DEFAULT;
	srv->txn_budget.total_max = cfg->txn_total_max_bytes > 0 ?
	    cfg->txn_total_max_bytes : DICT_TXN_TOTAL_MAX_BYTES_DEFAULT;
	srv->txn_budget.held = srv->stats.txn_bytes;
	dict_store_set_max_tokens(store, cfg->max_tokens_per_user > 0 ?
	    cfg->max_tokens_per_user : DICT_MAX_TOKENS_PER_USER_DEFAULT);
	dict_store_set_max_keys(store, cfg->max_keys_per_user > 0 ?
	    cfg->max_keys_per_user : DICT_MAX_KEYS_PER_USER_DEFAULT);
	srv->max_conns = cfg->max_connections > 0 ? cfg->max_connections :
	    DICT_MAX_CONNECTIONS_DEFAULT;
	dict_store_set_busy_timeout(store, DICT_LOOP_BUSY_TIMEOUT_MS);
	srv->ctx.base = base;
	srv->ctx.store = store;
	srv->ctx.vendor = srv->vendor;
	srv->ctx.stats = &srv->stats;
	srv->ctx.txn_budget = &srv->txn_budget;
	srv->ctx.wall_ms = cfg->wall_ms != NULL ? cfg->wall_ms : clock_wall_ms;
	srv->ctx.commit = dict_server_on_commit;
	srv->ctx.read_done = dict_server_on_read_done;
	srv->ctx.hook_arg = srv;
	srv->ctx.line_timeout_ms = cfg->line_timeout_ms > 0 ?
	    cfg->line_timeout_ms : DICT_LINE_TIMEOUT_MS_DEFAULT;
	srv->after_io = event_new(base, -1, 0, dict_server_on_after_io, srv);
	srv->commit_retry = evtimer_new(base, dict_server_on_commit_retry,
	    srv);
	srv->accept_retry = evtimer_new(base, dict_server_on_accept_retry,
	    srv);
	srv->sweep = evtimer_new(base, dict_server_on_sweep, srv);
	srv->sweep_period_ms = cfg->token_ttl_ms / 4;
	if (srv->sweep_period_ms > DICT_SWEEP_MAX_PERIOD_MS)
		srv->sweep_period_ms = DICT_SWEEP_MAX_PERIOD_MS;
	if (srv->sweep_period_ms < DICT_SWEEP_MIN_PERIOD_MS)
		srv->sweep_period_ms = DICT_SWEEP_MIN_PERIOD_MS;
	evtimer_add(srv->sweep, &now);

	if (dict_vendor_config_check(&cfg->vendor, err) < 0)
		goto fail;
	if ((srv->commits = dict_commit_new(store, cfg->notify_socket,
	    cfg->lock_wait_ms > 0 ? cfg->lock_wait_ms :
	    DICT_LOCK_WAIT_MS_DEFAULT, &srv->stats, err)) == NULL)
		goto fail;
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
	struct dict_server_conn *sc;

	/* Stop accepting, answer every commit already received, then close
	 * the connections; open transactions die with them, as with
	 * Dovecot's own server. */
	if (srv->listener != NULL) {
		evconnlistener_free(srv->listener);
		srv->listener = NULL;
		unlink(srv->socket_path);
	}
	if (srv->accept_retry != NULL)
		evtimer_del(srv->accept_retry);
	srv->paused_fds = false;
	if (srv->commit_retry != NULL)
		evtimer_del(srv->commit_retry);
	srv->commit_waiting = false;
	/* The loop has stopped: waiting here for a held write lock delays
	 * nobody else, and dict_commit_flush gives up after --lock-wait. */
	while (srv->commits != NULL && dict_commit_pending(srv->commits) > 0) {
		int64_t delay = dict_commit_flush(srv->commits,
		    srv->ctx.wall_ms(), clock_mono_ms());
		struct timespec ts = { delay / 1000, (delay % 1000) * 1000000 };

		if (delay > 0)
			nanosleep(&ts, NULL);
	}
	/* Each close moves its connection to the closing list at once. */
	while ((sc = TAILQ_FIRST(&srv->open)) != NULL)
		dict_conn_close_later(sc->conn, "shutdown");
	dict_server_reap(srv);
}

void
dict_server_free(struct dict_server *srv)
{
	if (srv == NULL)
		return;
	metrics_http_stop(srv->metrics_http);
	dict_server_shutdown(srv);
	dict_commit_free(srv->commits);
	log_limit_set_hook(NULL, NULL);
	if (srv->after_io != NULL)
		event_free(srv->after_io);
	if (srv->commit_retry != NULL)
		event_free(srv->commit_retry);
	if (srv->accept_retry != NULL)
		event_free(srv->accept_retry);
	if (srv->sweep != NULL)
		event_free(srv->sweep);
	free(srv->socket_path);
	metrics_free(srv->metrics);
	dict_vendor_free(srv->vendor);
	dict_store_close(srv->store);
	free(srv);
}
