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
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dictd.h"
#include "log.h"
#include "metrics.h"
#include "unixsock.h"
#include "xmalloc.h"

/* The commits of one busy pass: Dovecot processes commit one at a time
 * per connection, so this grows with the connections, rarely past 64. */
#define DICT_COMMIT_FIRST_CAP	64

struct dict_commit_entry {
	struct dict_txn		*txn;
	dict_commit_done_fn	*done;
	void			*arg;
};

struct dict_commit {
	struct dict_store	*store;
	struct dict_stats	*stats;
	int			 notify_fd;	/* -1: no notifierd socket */
	struct sockaddr_un	 notify_addr;
	struct dict_commit_entry *queue;	/* for the next flush */
	size_t			 n, cap;
};

struct dict_commit *
dict_commit_new(struct dict_store *store, const char *notify_socket,
    struct dict_stats *st, char err[ERR_LEN])
{
	struct dict_commit *gc = xcalloc(1, sizeof(*gc));

	gc->store = store;
	gc->stats = st;
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

void
dict_commit_flush(struct dict_commit *gc, int64_t now_ms)
{
	struct dict_commit_entry *batch = gc->queue;
	struct dict_stats *st = gc->stats;
	size_t n = gc->n;
	enum dict_commit_result *results;
	char **reasons;
	uint64_t queued = 0, tokens_set = 0;
	char err[ERR_LEN];
	bool ok;

	if (n == 0)
		return;
	/* Commits queued by the callbacks below (a connection's pipelined
	 * C, read once its reply is out) go to a fresh queue and the next
	 * flush. */
	gc->queue = NULL;
	gc->n = gc->cap = 0;
	results = xcalloc(n, sizeof(*results));
	reasons = xcalloc(n, sizeof(*reasons));

	ok = dict_store_batch_begin(gc->store, err) == 0;
	for (size_t i = 0; ok && i < n; i++) {
		results[i] = dict_store_apply(gc->store, batch[i].txn, now_ms,
		    &queued, &tokens_set, err);
		if (results[i] == DICT_COMMIT_FAILED) {
			log_warnx("dict conn=%llu transaction=%u failed: %s",
			    batch[i].txn->conn_id, batch[i].txn->id, err);
			metric_inc(st->fail_txn);
			reasons[i] = xstrdup(err);
		}
	}
	if (ok && dict_store_batch_commit(gc->store, err) < 0)
		ok = false;
	if (!ok) {
		log_warnx("dict group commit of %zu transactions failed: %s",
		    n, err);
		metric_inc(st->fail_store);
		for (size_t i = 0; i < n; i++) {
			results[i] = DICT_COMMIT_FAILED;
			free(reasons[i]);
			reasons[i] = xstrdup("storage failure");
		}
		queued = tokens_set = 0;
	}
	metric_inc(st->group_commits);
	metric_add(st->queue_rows, queued);
	metric_add(st->token_sets, tokens_set);
	if (queued > 0)
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
}
