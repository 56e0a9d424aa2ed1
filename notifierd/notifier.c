/*
 * The loop's logic: wake up (datagram from metadata-dictd, at most one
 * pass per --wake-interval; a poll timer; or a finished request), claim
 * due jobs up to the concurrency limit and what the circuit breaker
 * allows, POST each token, and write the
 * outcomes of one loop pass in one SQLite transaction. On SIGTERM, stop
 * claiming, give in-flight requests a grace period, and put whatever did
 * not finish back in the queue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "backoff.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "notifierd.h"
#include "unixsock.h"
#include "xmalloc.h"

/* Jobs claimed per SQLite transaction. */
#define NOTIFIER_CLAIM_BATCH	512
#define NOTIFIER_STATS_MS	2000
#define NOTIFIER_JITTER_PERMILLE	100	/* +/- 10 % */
/* Consecutive proxy failures that open the breaker, and its cooldown. */
#define NOTIFIER_BREAKER_THRESHOLD	5
#define NOTIFIER_BREAKER_MIN_MS		1000
#define NOTIFIER_BREAKER_MAX_MS		(5 * 60 * 1000)
#define NOTIFIER_FLUSH_RETRY_MS		200
/* Wake-up datagrams read in one pass at most: the rest wait in the
 * socket (whose queue the kernel bounds: net.unix.max_dgram_qlen, 10 by
 * default) for the next pass, --wake-interval later. */
#define NOTIFIER_WAKE_DRAIN		64
/* Bind the wake socket under this umask: created 0660, never briefly
 * wider (bind() makes it 0777 & ~umask). */
#define NOTIFIER_WAKE_UMASK		0117

struct outcome {
	struct job		*job;
	enum job_outcome	 what;
	bool			 drop;		/* RETRY past the deadline */
	bool			 release;	/* shutdown: back to waiting */
	int64_t			 next_at;
};

struct notifier_stats {
	struct metric	*sent, *succeeded, *gone, *retried, *dropped;
	struct metric	*failed_transport, *failed_status;
	struct metric	*queue_length, *oldest_age, *breaker_open;
	struct metric	*in_flight, *latency;
	struct metric	*wakeups, *wakeups_coalesced;
};

struct notifier {
	struct event_base	*base;
	struct notifier_config	 cfg;
	struct queue		*queue;
	struct httpc		*http;
	struct breaker		 breaker;
	struct metrics		*metrics;
	struct metrics_http	*metrics_http;
	struct notifier_stats	 st;
	int			 wake_fd;
	struct event		*wake_ev;	/* readable; off while paused */
	struct event		*wake_pause;	/* --wake-interval after a
						 * wake-up's pass */
	struct event		*poll_ev;
	struct event		*stats_ev;
	struct event		*flush_ev;	/* after this pass's I/O */
	struct event		*grace_ev;
	struct outcome		*outcomes;
	size_t			 noutcomes, cap_outcomes;
	bool			 stopping;
};

static void	notifier_pump(struct notifier *);

enum job_outcome
notifier_classify(long status)
{
	if (status == 200)
		return JOB_DONE;
	if (status == 410)
		return JOB_GONE;
	return JOB_RETRY;
}

static void
notifier_outcome_add(struct notifier *n, struct job *j, enum job_outcome what,
    bool drop, bool release, int64_t next_at)
{
	if (n->noutcomes == n->cap_outcomes) {
		n->cap_outcomes = n->cap_outcomes ? n->cap_outcomes * 2 : 256;
		n->outcomes = xrealloc(n->outcomes, n->cap_outcomes *
		    sizeof(*n->outcomes));
	}
	n->outcomes[n->noutcomes++] = (struct outcome){ j, what, drop,
	    release, next_at };
	event_active(n->flush_ev, 0, 0);
}

static void
notifier_log_job(const char *what, const struct job *j, long status,
    const char *reason, int64_t latency_us)
{
	char digest[LOG_DIGEST_LEN];

	if (!log_enabled(LOG_LEVEL_DEBUG))
		return;
	log_digest(j->token, strlen(j->token), digest);
	log_debug("notify job=%lld token=%s %s status=%ld attempts=%u "
	    "latency_ms=%.1f%s%s", (long long)j->id, digest, what, status,
	    j->attempts + 1, latency_us / 1000.0, *reason ? " reason=" : "",
	    reason);
}

/* A request ended: decide the job's fate; the write happens in flush. */
static void
notifier_on_done(void *ctx, const struct httpc_response *resp, void *arg)
{
	struct notifier *n = arg;
	struct job *j = ctx;
	long status = resp->status;
	const char *reason = resp->error;
	int64_t latency_us = resp->latency_us;
	int64_t now = clock_wall_ms(), next_at;
	enum job_outcome what = notifier_classify(status);
	bool proxy_ok = status != 0 && status < 500;
	uint32_t rnd = 0;

	metric_gauge_add(n->st.in_flight, -1);
	metric_observe_us(n->st.latency, (uint64_t)latency_us);
	if (breaker_record(&n->breaker, proxy_ok, clock_mono_ms()))
		log_warnx("notify proxy unreachable (%s), pausing for %lld ms",
		    status == 0 ? reason : "5xx answers",
		    (long long)n->breaker.cooldown_ms);
	metric_set(n->st.breaker_open, breaker_is_open(&n->breaker,
	    clock_mono_ms()));

	switch (what) {
	case JOB_DONE:
		metric_inc(n->st.succeeded);
		notifier_log_job("delivered", j, status, reason, latency_us);
		notifier_outcome_add(n, j, what, false, false, 0);
		break;
	case JOB_GONE:
		metric_inc(n->st.gone);
		notifier_log_job("gone", j, status, reason, latency_us);
		notifier_outcome_add(n, j, what, false, false, 0);
		break;
	case JOB_RETRY:
		metric_inc(status == 0 ? n->st.failed_transport :
		    n->st.failed_status);
		RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
		next_at = now + backoff_delay_ms(n->cfg.retry_base_ms,
		    j->attempts + 1, n->cfg.deadline_ms,
		    NOTIFIER_JITTER_PERMILLE, rnd);
		if (!backoff_within_deadline(j->created_at, next_at,
		    n->cfg.deadline_ms)) {
			char digest[LOG_DIGEST_LEN];

			log_digest(j->token, strlen(j->token), digest);
			log_warnx("notify job=%lld token=%s dropped after %u "
			    "attempts: deadline passed (last status=%ld%s%s)",
			    (long long)j->id, digest, j->attempts + 1, status,
			    *reason ? " " : "", reason);
			metric_inc(n->st.dropped);
			notifier_outcome_add(n, j, what, true, false, 0);
		} else {
			metric_inc(n->st.retried);
			notifier_log_job("retry", j, status, reason,
			    latency_us);
			notifier_outcome_add(n, j, what, false, false,
			    next_at);
		}
		break;
	}
}

static int
notifier_write_outcome(struct notifier *n, const struct outcome *o,
    char err[ERR_LEN])
{
	if (o->release)
		return queue_job_release(n->queue, o->job, err);
	switch (o->what) {
	case JOB_DONE:
		return queue_job_done(n->queue, o->job, err);
	case JOB_GONE:
		return queue_token_gone(n->queue, o->job, err);
	case JOB_RETRY:
		return o->drop ? queue_job_done(n->queue, o->job, err) :
		    queue_job_retry(n->queue, o->job, o->next_at, err);
	}
	return -1;
}

/* Write every outcome of this pass in one transaction. On failure the
 * outcomes stay queued and the flush is tried again shortly: the jobs are
 * still marked in flight in the database, so nothing is lost meanwhile. */
static int
notifier_flush(struct notifier *n)
{
	char err[ERR_LEN];
	size_t i;

	if (n->noutcomes == 0)
		return 0;
	if (queue_batch_begin(n->queue, err) < 0)
		goto fail;
	for (i = 0; i < n->noutcomes; i++)
		if (notifier_write_outcome(n, &n->outcomes[i], err) < 0) {
			queue_batch_rollback(n->queue);
			goto fail;
		}
	if (queue_batch_commit(n->queue, err) < 0)
		goto fail;
	for (i = 0; i < n->noutcomes; i++)
		job_free(n->outcomes[i].job);
	n->noutcomes = 0;
	return 0;
fail:
	log_warnx("notify cannot record %zu outcomes, will retry: %s",
	    n->noutcomes, err);
	return -1;
}

static void
notifier_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct notifier *n = arg;
	struct timeval tv = { 0, NOTIFIER_FLUSH_RETRY_MS * 1000 };

	(void)fd;
	(void)what;
	if (notifier_flush(n) < 0) {
		event_add(n->flush_ev, &tv);
		return;
	}
	if (n->stopping) {
		if (httpc_in_flight(n->http) == 0)
			event_base_loopbreak(n->base);
		return;
	}
	notifier_pump(n);
}

/* Arm the poll timer for the earlier of the poll interval and the next
 * job's due time. */
static void
notifier_schedule(struct notifier *n)
{
	int64_t due, now = clock_wall_ms(), wait_ms = n->cfg.poll_ms;
	struct timeval tv;
	char err[ERR_LEN];

	if (queue_next_due(n->queue, &due, err) == 1 && due - now < wait_ms)
		wait_ms = due - now;
	if (breaker_is_open(&n->breaker, clock_mono_ms()) &&
	    n->breaker.open_until_ms - clock_mono_ms() > wait_ms)
		wait_ms = n->breaker.open_until_ms - clock_mono_ms();
	if (wait_ms < 1)
		wait_ms = 1;
	tv.tv_sec = wait_ms / 1000;
	tv.tv_usec = (wait_ms % 1000) * 1000;
	evtimer_add(n->poll_ev, &tv);
}

static void
notifier_pump(struct notifier *n)
{
	/* The token is the whole body, as chatmail relays send it. */
	static const char *const headers[] = {
	    "Content-Type: application/octet-stream" };
	struct httpc_request req = { NULL, n->cfg.proxy_url, headers, 1,
	    NULL, 0 };
	struct job *jobs[NOTIFIER_CLAIM_BATCH];
	char err[ERR_LEN];
	size_t room, allowed;
	int got, sent;

	while (!n->stopping) {
		room = n->cfg.concurrency - httpc_in_flight(n->http);
		allowed = breaker_allow(&n->breaker, clock_mono_ms(), room);
		if (allowed > NOTIFIER_CLAIM_BATCH)
			allowed = NOTIFIER_CLAIM_BATCH;
		if (allowed == 0)
			break;
		got = queue_claim(n->queue, clock_wall_ms(), allowed, jobs, err);
		if (got < 0)
			log_warnx("notify cannot claim jobs: %s", err);
		if (got <= 0) {
			if (n->breaker.probing)
				breaker_probe_unused(&n->breaker);
			break;
		}
		sent = 0;
		for (int i = 0; i < got; i++) {
			struct job *j = jobs[i];

			if (j->token == NULL) {	/* token deleted meanwhile */
				job_free(j);
				continue;
			}
			req.body = j->token;
			req.body_len = strlen(j->token);
			if (httpc_send(n->http, &req, j, err) < 0) {
				log_warnx("notify job=%lld not sent: %s",
				    (long long)j->id, err);
				notifier_outcome_add(n, j, JOB_RETRY, false,
				    true, 0);
				continue;
			}
			metric_inc(n->st.sent);
			metric_gauge_add(n->st.in_flight, 1);
			sent++;
		}
		if (sent == 0 && n->breaker.probing)
			breaker_probe_unused(&n->breaker);
		if ((size_t)got < allowed)
			break;		/* nothing more due */
	}
	notifier_schedule(n);
}

static void
notifier_on_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	notifier_pump(arg);
}

/*
 * Any number of wake-ups are one pass. Anyone who may write to the socket
 * can send them as fast as we read, so reading is bounded too: at most
 * NOTIFIER_WAKE_DRAIN datagrams, then the socket is not watched for
 * --wake-interval. The first wake-up after a quiet spell is served at
 * once; a stream of them costs one pass per interval, and what comes
 * meanwhile waits in the socket (the sender's datagrams are dropped or
 * it blocks when that is full: a wake-up is pending then anyway).
 */
static void
notifier_on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct notifier *n = arg;
	struct timeval tv;
	char dgram[64];
	int got = 0;

	(void)what;
	while (got < NOTIFIER_WAKE_DRAIN &&
	    recv(fd, dgram, sizeof(dgram), MSG_DONTWAIT) >= 0)
		got++;
	if (got == 0)
		return;
	metric_add(n->st.wakeups, (uint64_t)got);
	metric_add(n->st.wakeups_coalesced, (uint64_t)got - 1);
	event_del(n->wake_ev);
	tv.tv_sec = n->cfg.wake_interval_ms / 1000;
	tv.tv_usec = (n->cfg.wake_interval_ms % 1000) * 1000;
	evtimer_add(n->wake_pause, &tv);
	notifier_pump(n);
}

/* The pause after a wake-up's pass is over: watch the socket again (a
 * datagram that came meanwhile makes it readable at once). */
static void
notifier_on_wake_pause(evutil_socket_t fd, short what, void *arg)
{
	struct notifier *n = arg;

	(void)fd;
	(void)what;
	if (!n->stopping)
		event_add(n->wake_ev, NULL);
}

static void
notifier_on_stats(evutil_socket_t fd, short what, void *arg)
{
	struct notifier *n = arg;
	struct timeval tv = { NOTIFIER_STATS_MS / 1000, 0 };
	int64_t len, age;
	char err[ERR_LEN];

	(void)fd;
	(void)what;
	if (queue_stats(n->queue, clock_wall_ms(), &len, &age, err) == 0) {
		metric_set(n->st.queue_length, len);
		metric_set(n->st.oldest_age, age / 1000);
	}
	evtimer_add(n->stats_ev, &tv);
}

/* The wake socket, mode 0660: metadata-dictd runs as the same user
 * (chatmail-push, docs/operator-relay.md), and nobody else may make us
 * spin. Bound under NOTIFIER_WAKE_UMASK, so that it is never wider, even
 * for a moment, whatever umask we were started with. */
static int
notifier_bind_wake(struct notifier *n, const char *path, char err[ERR_LEN])
{
	struct sockaddr_un sun;
	mode_t umask_before;
	int rc;

	if (unixsock_addr(path, &sun, err) < 0)
		return -1;
	n->wake_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (n->wake_fd < 0 || (unlink(path) < 0 && errno != ENOENT)) {
		err_set(err, "wake socket %s: %s", path, strerror(errno));
		return -1;
	}
	/* The umask is the process's: the database's checkpoint thread
	 * may run meanwhile, but it creates no file (the database and its
	 * WAL exist by now), and a narrower umask could only narrow one. */
	umask_before = umask(NOTIFIER_WAKE_UMASK);
	rc = bind(n->wake_fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(umask_before);
	if (rc < 0) {
		err_set(err, "wake socket %s: %s", path, strerror(errno));
		return -1;
	}
	n->wake_ev = event_new(n->base, n->wake_fd, EV_READ | EV_PERSIST,
	    notifier_on_wake, n);
	n->wake_pause = evtimer_new(n->base, notifier_on_wake_pause, n);
	event_add(n->wake_ev, NULL);
	return 0;
}

static void
notifier_register_metrics(struct notifier *n)
{
	static const double bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
	    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
	struct metrics *m = n->metrics = metrics_new();
	struct notifier_stats *st = &n->st;

	st->sent = metrics_counter(m, "notifierd_sent",
	    "Requests sent to the proxy", NULL);
	st->succeeded = metrics_counter(m, "notifierd_succeeded",
	    "Jobs the proxy accepted (200)", NULL);
	st->gone = metrics_counter(m, "notifierd_gone",
	    "Tokens the proxy reported gone (410), deleted", NULL);
	st->retried = metrics_counter(m, "notifierd_retried",
	    "Jobs rescheduled after a failure", NULL);
	st->dropped = metrics_counter(m, "notifierd_dropped",
	    "Jobs given up after their deadline", NULL);
	st->failed_transport = metrics_counter(m, "notifierd_failures",
	    "Requests that failed", "reason=\"transport\"");
	st->failed_status = metrics_counter(m, "notifierd_failures",
	    "Requests that failed", "reason=\"status\"");
	st->queue_length = metrics_gauge(m, "notifierd_queue_length",
	    "Jobs in the queue (waiting and in flight)", NULL);
	st->oldest_age = metrics_gauge(m, "notifierd_oldest_job_age_seconds",
	    "Age of the oldest queued job", NULL);
	st->breaker_open = metrics_gauge(m, "notifierd_breaker_open",
	    "1 while requests to the proxy are paused", NULL);
	st->in_flight = metrics_gauge(m, "notifierd_in_flight",
	    "Requests in flight", NULL);
	st->wakeups = metrics_counter(m, "notifierd_wakeups",
	    "Wake-up datagrams read", NULL);
	st->wakeups_coalesced = metrics_counter(m,
	    "notifierd_wakeups_coalesced",
	    "Wake-up datagrams that did not start a pass of their own",
	    NULL);
	st->latency = metrics_histogram(m, "notifierd_request_duration_seconds",
	    "Time from request start to the proxy's answer", NULL, bounds,
	    sizeof(bounds) / sizeof(*bounds));
}

struct notifier *
notifier_new(struct event_base *base, const struct notifier_config *cfg,
    char err[ERR_LEN])
{
	struct notifier *n = xcalloc(1, sizeof(*n));
	int requeued;

	n->base = base;
	n->cfg = *cfg;
	n->wake_fd = -1;
	breaker_init(&n->breaker, NOTIFIER_BREAKER_THRESHOLD,
	    NOTIFIER_BREAKER_MIN_MS, NOTIFIER_BREAKER_MAX_MS);
	notifier_register_metrics(n);
	n->poll_ev = evtimer_new(base, notifier_on_poll, n);
	n->stats_ev = evtimer_new(base, notifier_on_stats, n);
	n->flush_ev = event_new(base, -1, 0, notifier_on_flush, n);
	if ((n->queue = queue_open(cfg->db_path, cfg->sync, err)) == NULL)
		goto fail;
	if ((requeued = queue_requeue_in_flight(n->queue, err)) < 0)
		goto fail;
	/* The wake socket once the schema exists: its presence tells
	 * metadata-dictd, scripts and tests that notifierd is ready. */
	if (cfg->wake_socket != NULL &&
	    notifier_bind_wake(n, cfg->wake_socket, err) < 0)
		goto fail;
	if (requeued > 0)
		log_info("notify %d jobs were in flight at the last stop, "
		    "retrying them", requeued);
	if ((n->http = httpc_new(base, &cfg->http, notifier_on_done, n,
	    err)) == NULL)
		goto fail;
	if (cfg->metrics_addr != NULL && (n->metrics_http =
	    metrics_http_start(n->metrics, cfg->metrics_addr, err)) == NULL)
		goto fail;
	notifier_on_stats(-1, 0, n);
	event_active(n->poll_ev, EV_TIMEOUT, 0);
	return n;
fail:
	notifier_free(n);
	return NULL;
}

static void
notifier_on_grace_over(evutil_socket_t fd, short what, void *arg)
{
	struct notifier *n = arg;

	(void)fd;
	(void)what;
	log_info("notify grace period over, %zu requests left to retry at "
	    "the next start", httpc_in_flight(n->http));
	event_base_loopbreak(n->base);
}

void
notifier_stop(struct notifier *n)
{
	struct timeval tv = { n->cfg.grace_ms / 1000,
	    (n->cfg.grace_ms % 1000) * 1000 };

	if (n->stopping)
		return;
	n->stopping = true;
	evtimer_del(n->poll_ev);
	if (n->wake_ev != NULL) {
		event_del(n->wake_ev);
		evtimer_del(n->wake_pause);
	}
	if (httpc_in_flight(n->http) == 0) {
		event_active(n->flush_ev, 0, 0);	/* flush, then break */
		return;
	}
	log_info("notify stopping, waiting up to %lld ms for %zu requests",
	    (long long)n->cfg.grace_ms, httpc_in_flight(n->http));
	n->grace_ev = evtimer_new(n->base, notifier_on_grace_over, n);
	evtimer_add(n->grace_ev, &tv);
}

static void
notifier_on_cancel(void *ctx, void *arg)
{
	(void)arg;
	job_free(ctx);		/* its row is still marked in flight */
}

void
notifier_free(struct notifier *n)
{
	char err[ERR_LEN];

	if (n == NULL)
		return;
	/* Requests still running are abandoned; their jobs are marked
	 * waiting again below. Write what finished. */
	httpc_free(n->http, notifier_on_cancel);
	if (n->queue != NULL && notifier_flush(n) < 0)
		log_warnx("notify %zu outcomes not recorded; those jobs will "
		    "be retried", n->noutcomes);
	for (size_t i = 0; i < n->noutcomes; i++)
		job_free(n->outcomes[i].job);
	free(n->outcomes);
	if (n->queue != NULL && queue_requeue_in_flight(n->queue, err) < 0)
		log_warnx("notify cannot requeue in-flight jobs: %s", err);
	metrics_http_stop(n->metrics_http);
	queue_close(n->queue);
	if (n->wake_ev != NULL)
		event_free(n->wake_ev);
	if (n->wake_pause != NULL)
		event_free(n->wake_pause);
	if (n->wake_fd >= 0) {
		close(n->wake_fd);
		unlink(n->cfg.wake_socket);
	}
	if (n->grace_ev != NULL)
		event_free(n->grace_ev);
	if (n->poll_ev != NULL)
		event_free(n->poll_ev);
	if (n->stats_ev != NULL)
		event_free(n->stats_ev);
	if (n->flush_ev != NULL)
		event_free(n->flush_ev);
	metrics_free(n->metrics);
	free(n);
}
