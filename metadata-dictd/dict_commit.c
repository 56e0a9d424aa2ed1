/*
 * The group commit: every dict transaction committed during one pass of
 * the event loop is applied in one SQLite transaction and answered only
 * after COMMIT returned. Under load that is one WAL append (and with
 * --sync full one fsync) for dozens of Dovecot transactions, without
 * giving up "answered means stored" (protocol doc §7: Dovecot delivers
 * the mail whatever the commit answers, so the queue row must be stored
 * when the answer goes out).
 *
 * The commands queue transactions (dict_commit_enqueue, through the
 * server's hook); the server flushes once its pass's I/O is done. A
 * batch that queued push jobs ends with one datagram to notifierd.
 *
 * Another process holding SQLite's write lock (notifierd, an import, an
 * operator's sqlite3 shell) must not stall the loop: the loop's busy
 * timeout is a few milliseconds (DICT_LOOP_BUSY_TIMEOUT_MS), and a flush
 * that finds the lock held keeps its queue and tells the server when to
 * try again, with a growing back-off, until a transaction has waited
 * lock_wait_ms; that one is then answered with failure (IMAP NO, LMTP
 * still delivers: protocol doc §7). Lookups go on meanwhile: WAL readers
 * need no write lock. With the old 5 s busy timeout on the loop, one held
 * lock made an unrelated lookup wait 4.8 s.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "backoff.h"
#include "dictd.h"
#include "log.h"
#include "log_limit.h"
#include "metrics.h"
#include "unixsock.h"
#include "xmalloc.h"

/* The commits of one busy pass: Dovecot processes commit one at a time
 * per connection, so this grows with the connections, rarely past 64. */
#define DICT_COMMIT_FIRST_CAP	64
/* Retrying a held write lock: 10 ms, doubling up to 200 ms, so a lock
 * released is noticed within 200 ms, at a few attempts per second. */
#define DICT_COMMIT_RETRY_FIRST_MS	10
#define DICT_COMMIT_RETRY_MAX_MS	200

struct dict_commit_entry {
	struct dict_txn		*txn;
	dict_commit_done_fn	*done;
	void			*arg;
	bool			 tried;		/* first_try_ms is set */
	int64_t			 first_try_ms;	/* monotonic */
};

struct dict_commit {
	struct dict_store	*store;
	struct dict_stats	*stats;
	int			 notify_fd;	/* -1: no notifierd socket */
	struct sockaddr_un	 notify_addr;
	struct dict_commit_entry *queue;	/* for the next flush */
	size_t			 n, cap;
	int64_t			 lock_wait_ms;
	unsigned int		 busy_tries;	/* flushes in a row that
						 * found the lock held */
};

struct dict_commit *
dict_commit_new(struct dict_store *store, const char *notify_socket,
    int64_t lock_wait_ms, struct dict_stats *st, char err[ERR_LEN])
{
	struct dict_commit *gc = xcalloc(1, sizeof(*gc));

	gc->store = store;
	gc->stats = st;
	gc->lock_wait_ms = lock_wait_ms;
	gc->notify_fd = -1;
	if (notify_socket != NULL) {
		if (unixsock_addr(notify_socket, &gc->notify_addr, err) < 0)
			goto fail;
		gc->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0);
		if (gc->notify_fd < 0) {
			err_set(err, "notify socket: %s", strerror(errno));
			goto fail;
		}
	}
	return gc;
fail:
	dict_commit_free(gc);
	return NULL;
}

void
dict_commit_free(struct dict_commit *gc)
{
	if (gc == NULL)
		return;
	for (size_t i = 0; i < gc->n; i++)
		dict_txn_free(gc->queue[i].txn);
	free(gc->queue);
	if (gc->notify_fd >= 0)
		close(gc->notify_fd);
	free(gc);
}

void
dict_commit_enqueue(struct dict_commit *gc, struct dict_txn *txn,
    dict_commit_done_fn *done, void *arg)
{
	gc->queue = dict_array_grow(gc->queue, gc->n, &gc->cap,
	    sizeof(*gc->queue), DICT_COMMIT_FIRST_CAP);
	memset(&gc->queue[gc->n], 0, sizeof(gc->queue[gc->n]));
	gc->queue[gc->n].txn = txn;
	gc->queue[gc->n].done = done;
	gc->queue[gc->n].arg = arg;
	gc->n++;
}

size_t
dict_commit_pending(const struct dict_commit *gc)
{
	return gc->n;
}

/* Best effort: notifierd also polls, so a lost datagram costs at most its
 * poll interval. Non-blocking, errors ignored (notifierd may be down). */
static void
dict_commit_notify(struct dict_commit *gc)
{
	if (gc->notify_fd < 0)
		return;
	(void)sendto(gc->notify_fd, "w", 1, MSG_DONTWAIT,
	    (struct sockaddr *)&gc->notify_addr, sizeof(gc->notify_addr));
}

/* The write lock is held elsewhere: answer with failure the transactions
 * that have waited lock_wait_ms since their first flush, keep the others
 * queued, in order. */
static void
dict_commit_expire(struct dict_commit *gc, int64_t mono_ms)
{
	static struct log_limit lim = DICT_LOG_LIMIT;
	struct dict_commit_entry *old = gc->queue, *expired;
	size_t n = gc->n, nexpired = 0;

	expired = xcalloc(n, sizeof(*expired));
	/* Rebuilt from the kept ones: the callbacks below may queue more,
	 * which then go after them. */
	gc->queue = NULL;
	gc->n = gc->cap = 0;
	for (size_t i = 0; i < n; i++) {
		if (mono_ms - old[i].first_try_ms >= gc->lock_wait_ms)
			expired[nexpired++] = old[i];
		else {
			gc->queue = dict_array_grow(gc->queue, gc->n, &gc->cap,
			    sizeof(*gc->queue), DICT_COMMIT_FIRST_CAP);
			gc->queue[gc->n++] = old[i];
		}
	}
	free(old);
	if (nexpired > 0)
		log_limited(&lim, LOG_LEVEL_WARN, "dict commit failed "
		    "transactions=%zu reason=busy: the database stayed locked "
		    "by another process for %lld ms", nexpired,
		    (long long)gc->lock_wait_ms);
	for (size_t i = 0; i < nexpired; i++) {
		metric_inc(gc->stats->fail_busy);
		metric_inc(gc->stats->commit_failed);
		expired[i].done(expired[i].arg, expired[i].txn,
		    DICT_COMMIT_FAILED, "storage busy: the database is locked "
		    "by another process");
	}
	free(expired);
}

/* After a flush that found the lock held: the wait before the next. */
static int64_t
dict_commit_busy(struct dict_commit *gc, int64_t mono_ms)
{
	metric_inc(gc->stats->write_busy);
	dict_commit_expire(gc, mono_ms);
	if (gc->n == 0) {
		gc->busy_tries = 0;
		return 0;
	}
	if (gc->busy_tries < 32)
		gc->busy_tries++;
	return backoff_delay_ms(DICT_COMMIT_RETRY_FIRST_MS, gc->busy_tries,
	    DICT_COMMIT_RETRY_MAX_MS, 0, 0);
}

int64_t
dict_commit_flush(struct dict_commit *gc, int64_t now_ms, int64_t mono_ms)
{
	static struct log_limit txn_lim = DICT_LOG_LIMIT;
	static struct log_limit batch_lim = DICT_LOG_LIMIT;
	struct dict_commit_entry *batch = gc->queue;
	struct dict_stats *st = gc->stats;
	size_t n = gc->n;
	enum dict_commit_result *results;
	char **reasons;
	struct dict_apply_counts counts = { 0 };
	char err[ERR_LEN];
	bool ok;

	if (n == 0) {
		gc->busy_tries = 0;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (!batch[i].tried) {
			batch[i].tried = true;
			batch[i].first_try_ms = mono_ms;
		}
	ok = dict_store_batch_begin(gc->store, err) == 0;
	if (!ok && dict_store_locked(gc->store))
		return dict_commit_busy(gc, mono_ms);
	/* Begun, or failed for good: either way every entry is answered
	 * below (a failure fails them all). */
	gc->busy_tries = 0;
	/* Commits queued by the callbacks below (a connection's pipelined
	 * C, read once its reply is out) go to a fresh queue and the next
	 * flush. */
	gc->queue = NULL;
	gc->n = gc->cap = 0;
	results = xcalloc(n, sizeof(*results));
	reasons = xcalloc(n, sizeof(*reasons));

	for (size_t i = 0; ok && i < n; i++) {
		results[i] = dict_store_apply(gc->store, batch[i].txn, now_ms,
		    &counts, err);
		if (results[i] == DICT_COMMIT_FAILED) {
			log_limited(&txn_lim, LOG_LEVEL_WARN, "dict conn=%llu "
			    "transaction=%u failed: %s", batch[i].txn->conn_id,
			    batch[i].txn->id, err);
			metric_inc(st->fail_txn);
			reasons[i] = xstrdup(err);
		}
	}
	if (ok && dict_store_batch_commit(gc->store, err) < 0)
		ok = false;
	if (!ok) {
		log_limited(&batch_lim, LOG_LEVEL_WARN, "dict group commit of "
		    "%zu transactions failed: %s", n, err);
		metric_inc(st->fail_store);
		for (size_t i = 0; i < n; i++) {
			results[i] = DICT_COMMIT_FAILED;
			free(reasons[i]);
			reasons[i] = xstrdup("storage failure");
		}
		memset(&counts, 0, sizeof(counts));
	}
	metric_inc(st->group_commits);
	metric_add(st->queue_rows, counts.queued);
	metric_add(st->token_sets, counts.tokens_set);
	metric_add(st->tokens_evicted, counts.tokens_evicted);
	metric_add(st->keys_refused, counts.keys_refused);
	if (counts.queued > 0)
		dict_commit_notify(gc);

	for (size_t i = 0; i < n; i++) {
		metric_inc(results[i] == DICT_COMMIT_OK ? st->commit_ok :
		    results[i] == DICT_COMMIT_NOT_FOUND ?
		    st->commit_not_found : st->commit_failed);
		batch[i].done(batch[i].arg, batch[i].txn, results[i],
		    reasons[i]);
		free(reasons[i]);
	}
	free(reasons);
	free(results);
	free(batch);
	return 0;
}
