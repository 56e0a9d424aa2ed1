/*
 * The pushes a 200 promised (promise.h, docs/debounce.md), on the loop:
 *
 * - a /notify inside a debounce window is owed: its job waits on a list
 *   until the group commit of this loop pass has stored the owed push
 *   (owed_store.c), then gets its 200 (500 if the store failed: the
 *   relay retries, nothing is promised);
 * - a timer hands out owed pushes when they are due (a window's end, or
 *   a retry), every one due in the loop pass it is due in, up to a bound
 *   on owed pushes in flight (their own, which requests cannot take), on
 *   the share of the rate limit of the client that asked; their answers
 *   go back into the promise (sent, retried, dropped);
 * - at start the stored rows are read back in key order, decrypted again
 *   on the workers and owed again.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "clock.h"
#include "log.h"
#include "proxy_private.h"
#include "workq.h"
#include "xmalloc.h"

/* Owed pushes in flight at most (their own bound: /notify's leading
 * pushes do not count, so a flood of requests cannot keep a promised push
 * from going out). Also the most handed out in one loop pass. */
#define PROXY_OWED_IN_FLIGHT	1000
#define PROXY_OWED_LOAD_BATCH	256	/* stored rows read per step */
#define PROXY_OWED_LOG_EVERY_MS	1000	/* store failures: one line */

/* Owed pushes read back at start have no request behind them any more:
 * they share a client of their own (a key no address has, as proxy.c's
 * heartbeat one). */
static const struct ratelimit_client proxy_owed_restart = { .key = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02 } };

static void	proxy_owed_on_flush(evutil_socket_t, short, void *);
static void	proxy_owed_on_timer(evutil_socket_t, short, void *);
static void	proxy_owed_on_load(evutil_socket_t, short, void *);

void
proxy_owed_metrics(struct proxy *px)
{
	struct metrics *m = px->metrics;
	struct proxy_stats *st = &px->st;

	st->owed = metrics_gauge(m, "owed_pushes",
	    "Pushes promised by a 200 and not sent yet", NULL);
	st->owed_bytes = metrics_gauge(m, "owed_push_bytes",
	    "Memory held by owed pushes", NULL);
	st->owed_sent = metrics_counter(m, "owed_pushes_sent",
	    "Owed pushes delivered to a provider", NULL);
	st->owed_retries = metrics_counter(m, "owed_push_retries",
	    "Owed pushes a provider did not take, scheduled again", NULL);
	st->owed_expired = metrics_counter(m, "owed_pushes_expired",
	    "Owed pushes dropped after failing past --owed-deadline", NULL);
	st->owed_full = metrics_counter(m, "owed_pushes_full",
	    "Requests sent at once because the owed pushes were at their "
	    "bound", NULL);
	st->owed_dropped = metrics_counter(m, "owed_pushes_unloadable",
	    "Stored owed pushes dropped at start (no longer decrypt, or no "
	    "room)", NULL);
	st->owed_commits = metrics_counter(m, "owed_store_commits",
	    "Group commits of owed pushes", NULL);
	st->owed_commit_failures = metrics_counter(m,
	    "owed_store_failures", "Group commits that failed (the waiting "
	    "requests got 500)", NULL);
}

int
proxy_owed_open(struct proxy *px, char err[ERR_LEN])
{
	struct proxy_owed *ow = &px->ow;
	const struct proxy_config *cfg = &px->cfg;
	struct promise_config pc;
	int64_t stored;

	if ((ow->store = owed_store_new(px->db.db, err)) == NULL)
		return -1;
	memset(&pc, 0, sizeof(pc));
	pc.state = px->state;
	pc.window_ms = cfg->debounce_ms;
	if (owed_store_key(ow->store, pc.owed_key, err) < 0)
		return -1;
	pc.owed_max = cfg->owed_max;
	pc.owed_max_bytes = cfg->owed_max_bytes;
	pc.owed_deadline_ms = cfg->owed_deadline_ms;
	pc.retry_min_ms = cfg->owed_retry_min_ms;
	pc.retry_max_ms = cfg->owed_retry_max_ms;
	ow->promise = promise_new(&pc, err);
	OPENSSL_cleanse(&pc, sizeof(pc));	/* the keys */
	if (ow->promise == NULL)
		return -1;
	ow->timer = evtimer_new(px->base, proxy_owed_on_timer, px);
	ow->flush = event_new(px->base, -1, 0, proxy_owed_on_flush, px);
	ow->load_ev = evtimer_new(px->base, proxy_owed_on_load, px);
	if ((stored = owed_store_count(ow->store, err)) < 0)
		return -1;
	ow->loading = stored > 0;
	if (stored > 0)
		log_info("proxy owed pushes stored=%lld: sending them again",
		    (long long)stored);
	return 0;
}

void
proxy_owed_close(struct proxy *px)
{
	struct proxy_owed *ow = &px->ow;

	if (ow->timer != NULL)
		event_free(ow->timer);
	if (ow->flush != NULL)
		event_free(ow->flush);
	if (ow->load_ev != NULL)
		event_free(ow->load_ev);
	promise_free(ow->promise);
	owed_store_free(ow->store);
}

/* ---- storing ---------------------------------------------------------- */

/* Store the journal; answer the requests that waited for it. */
static void
proxy_owed_commit(struct proxy *px)
{
	struct proxy_owed *ow = &px->ow;
	struct proxy_job *j;
	static int64_t last_log;
	char err[ERR_LEN];
	int rc = 0;

	if (!owed_journal_empty(promise_owed(ow->promise))) {
		rc = owed_store_commit(ow->store, promise_owed(ow->promise),
		    err);
		metric_inc(rc == 0 ? px->st.owed_commits :
		    px->st.owed_commit_failures);
		if (rc < 0 && clock_mono_ms() - last_log >=
		    PROXY_OWED_LOG_EVERY_MS) {
			last_log = clock_mono_ms();
			log_err("proxy cannot store owed pushes (%zu requests "
			    "answered 500): %s", ow->nwaiting, err);
		}
	}
	while ((j = TAILQ_FIRST(&ow->waiting)) != NULL) {
		TAILQ_REMOVE(&ow->waiting, j, link);
		ow->nwaiting--;
		/* 200: a push is owed and stored. Not stored: no promise;
		 * the relay retries (the push may still go out). */
		proxy_reply(j, rc == 0 ? 200 : 500, rc == 0 ? "" :
		    "cannot store, try later\n");
		proxy_job_free(j);
	}
}

void
proxy_owed_gauges(struct proxy *px)
{
	struct promise_stats ps;
	struct state_stats ss;

	promise_get_stats(px->ow.promise, &ps);
	state_get_stats(px->state, &ss);
	metric_set(px->st.owed, (int64_t)ps.owed.items);
	metric_set(px->st.owed_bytes, (int64_t)ps.owed.bytes);
	/* the promise counts them; the counter follows */
	if (ps.sent_full > (uint64_t)metric_value(px->st.owed_full))
		metric_add(px->st.owed_full, ps.sent_full -
		    (uint64_t)metric_value(px->st.owed_full));
	metric_set(px->st.debounced_size, (int64_t)ss.windows);
}

/* Owed pushes in flight now. */
static size_t
proxy_owed_sending(const struct proxy *px)
{
	struct promise_stats ps;

	promise_get_stats(px->ow.promise, &ps);
	return ps.owed.sending;
}

/* The timer at the next push due (the next loop pass if one is due now).
 * With PROXY_OWED_IN_FLIGHT out it waits for an answer instead, which
 * kicks it (proxy_owed_trailing_done). It used to hand out slices of 256
 * with 20 ms between them when more were due: at most 12,800 a second,
 * and fewer as loop passes grew under load, so owed pushes fell behind
 * their windows' ends and every request meanwhile was one more 200
 * without a push (docs/debounce.md, "Under load"). */
static void
proxy_owed_arm(struct proxy *px)
{
	struct proxy_owed *ow = &px->ow;
	int64_t next = promise_next_deadline(ow->promise), wait;
	struct timeval tv;

	if (next < 0 || proxy_owed_sending(px) >= PROXY_OWED_IN_FLIGHT) {
		evtimer_del(ow->timer);
		return;
	}
	wait = next - clock_wall_ms();
	if (wait < 0)
		wait = 0;
	tv.tv_sec = wait / 1000;
	tv.tv_usec = (wait % 1000) * 1000;
	evtimer_add(ow->timer, &tv);
}

static void
proxy_owed_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;

	(void)fd;
	(void)what;
	proxy_owed_commit(px);
	proxy_owed_gauges(px);
	proxy_owed_arm(px);
	if (px->ow.loading && !px->ow.load_started) {
		px->ow.load_started = true;
		event_active(px->ow.load_ev, EV_TIMEOUT, 0);
	}
}

void
proxy_owed_kick(struct proxy *px)
{
	if (!event_pending(px->ow.flush, EV_TIMEOUT, NULL))
		event_active(px->ow.flush, EV_TIMEOUT, 0);
}

void
proxy_owed_final_commit(struct proxy *px)
{
	if (px->ow.promise != NULL)
		proxy_owed_commit(px);
}

/* ---- requests and their leading pushes -------------------------------- */

/* The promise decided a /notify: owe it (200 after the commit) or send
 * it now (answered with the provider's verdict). */
static void
proxy_owed_decided(void *arg, enum promise_action act)
{
	struct proxy_job *j = arg;
	struct proxy *px = j->px;
	struct proxy_owed *ow = &px->ow;

	if (act == PROMISE_SEND) {
		proxy_send_leading(j);
		proxy_owed_kick(px);
		return;
	}
	metric_inc(px->st.debounced);
	TAILQ_INSERT_TAIL(&ow->waiting, j, link);
	ow->nwaiting++;
	proxy_owed_kick(px);
}

void
proxy_owed_request(struct proxy_job *j)
{
	j->asked_ms = clock_wall_ms();
	promise_request(j->px->ow.promise, j->plain, strlen(j->plain),
	    j->input, j->input_len, j->has_client ? j->client.key : NULL,
	    j->asked_ms, proxy_owed_decided, j);
}

/* Log what became of an owed push. it: the item, still there for
 * PROMISE_RETRY only. */
static void
proxy_owed_log(struct proxy *px, const char *token, const char *provider,
    enum promise_outcome o, const struct owed_item *it,
    const struct provider_result *r)
{
	char digest[LOG_DIGEST_LEN];

	log_digest(token, strlen(token), digest);
	switch (o) {
	case PROMISE_DONE:
	case PROMISE_OWED_AGAIN:
		metric_inc(px->st.owed_sent);
		log_debug("proxy owed push token=%s provider=%s sent%s",
		    digest, provider, o == PROMISE_OWED_AGAIN ?
		    ", owed again" : "");
		break;
	case PROMISE_RETRY:
		/* One line per retry at debug only: an outage retries every
		 * owed push, and the metrics tell it. */
		metric_inc(px->st.owed_retries);
		log_debug("proxy owed push token=%s provider=%s failed "
		    "reason=%s attempt=%u retry_in_ms=%lld", digest, provider,
		    r->reason, it->attempts,
		    (long long)(it->due_ms - clock_wall_ms()));
		break;
	case PROMISE_DROPPED_EXPIRED:
		metric_inc(px->st.owed_expired);
		log_err("proxy owed push token=%s provider=%s dropped: still "
		    "failing after --owed-deadline (%lld s) reason=%s", digest,
		    provider, (long long)(px->cfg.owed_deadline_ms / 1000),
		    r->reason);
		break;
	case PROMISE_DROPPED_GONE:
		log_info("proxy owed push token=%s provider=%s dropped: token "
		    "gone", digest, provider);
		break;
	default:
		break;
	}
}

void
proxy_owed_leading_done(struct proxy_job *j, const struct provider_result *r)
{
	struct proxy *px = j->px;
	struct owed_item *it;
	uint8_t key[OWED_KEY_LEN];
	enum promise_outcome o;

	o = promise_leading_done(px->ow.promise, j->plain, strlen(j->plain),
	    r, j->asked_ms, clock_wall_ms());
	if (o != PROMISE_NONE) {
		owed_key(promise_owed(px->ow.promise), j->plain,
		    strlen(j->plain), key);
		it = owed_find(promise_owed(px->ow.promise), key);
		proxy_owed_log(px, j->plain,
		    proxy_provider_label(j->token.kind), o, it, r);
	}
	proxy_owed_kick(px);
}

/* ---- owed pushes ------------------------------------------------------ */

/* Send one due owed push; a push that cannot even be handed to its
 * provider fails like one the provider refused. */
static void
proxy_owed_send(struct proxy *px, struct owed_item *it)
{
	struct proxy_job *j = proxy_job_new(px, PURPOSE_TRAILING, NULL, "", 0);
	struct provider_result r;
	char err[ERR_LEN];

	j->item = it;
	j->plain = xmemdup0(it->token, it->token_len);
	if (it->has_client)
		memcpy(j->client.key, it->client, sizeof(j->client.key));
	else
		j->client = proxy_owed_restart;
	j->has_client = true;
	if (token_parse(j->plain, strlen(j->plain), &j->token, err) < 0) {
		/* Cannot happen: it parsed when it was owed. */
		proxy_result_set(&r, VERDICT_GONE, "malformed");
		proxy_owed_trailing_done(j, &r);
		return;
	}
	if (!push_enabled(px->push, push_provider_of(j->token.kind))) {
		proxy_result_set(&r, VERDICT_CONFIG, "no_provider");
		proxy_owed_trailing_done(j, &r);
		return;
	}
	if (proxy_push(j, err) < 0) {
		log_warnx("proxy owed push: %s", err);
		proxy_result_set(&r, VERDICT_TEMPORARY, "send");
		proxy_owed_trailing_done(j, &r);
	}
}

static void
proxy_owed_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;
	struct owed_item *it;
	int64_t now = clock_wall_ms();
	size_t sending = proxy_owed_sending(px);

	(void)fd;
	(void)what;
	if (px->stopping)
		return;		/* what is owed stays stored for the restart */
	while (sending < PROXY_OWED_IN_FLIGHT &&
	    (it = promise_next(px->ow.promise, now)) != NULL) {
		proxy_owed_send(px, it);
		sending++;
	}
	proxy_owed_gauges(px);
	proxy_owed_arm(px);
}

void
proxy_owed_trailing_done(struct proxy_job *j, const struct provider_result *r)
{
	struct proxy *px = j->px;
	struct owed_item *it = j->item;
	enum promise_outcome o;

	j->item = NULL;
	o = promise_trailing_done(px->ow.promise, it, r, clock_wall_ms());
	/* it is freed unless owed again or retried */
	proxy_owed_log(px, j->plain, proxy_provider_label(j->token.kind), o,
	    o == PROMISE_RETRY || o == PROMISE_OWED_AGAIN ? it : NULL, r);
	proxy_job_free(j);
	proxy_owed_kick(px);
}

/* ---- start-up: reading the stored ones back --------------------------- */

static void
proxy_owed_on_load(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;
	struct proxy_owed *ow = &px->ow;
	struct owed_row rows[PROXY_OWED_LOAD_BATCH];
	struct timeval now = { 0, 0 }, soon = { 0, 50000 }, later = { 1, 0 };
	char err[ERR_LEN];
	int n, i;

	(void)fd;
	(void)what;
	if (!ow->loading || ow->load_pending > 0 || px->stopping)
		return;
	n = owed_store_scan(ow->store, ow->load_after_set ? ow->load_after :
	    NULL, PROXY_OWED_LOAD_BATCH, rows, err);
	if (n < 0) {
		log_err("proxy reading owed pushes: %s", err);
		evtimer_add(ow->load_ev, &later);
		return;
	}
	if (n == 0) {
		ow->loading = false;
		log_info("proxy owed pushes loaded=%zu dropped=%zu", ow->loaded,
		    ow->load_dropped);
		proxy_owed_kick(px);
		return;
	}
	for (i = 0; i < n; i++) {
		struct proxy_job *j = proxy_job_new(px, PURPOSE_LOAD, NULL,
		    rows[i].input, rows[i].input_len);

		j->row = rows[i];
		j->row.input = NULL;	/* the job's input is the copy */
		/* Counted before it starts: a plain token (or one in the
		 * cache) is done before proxy_start_load returns. */
		ow->load_pending++;
		if (proxy_start_load(j) < 0) {
			/* Workers busy: this row and the rest next time. */
			ow->load_pending--;
			proxy_job_free(j);
			break;
		}
		memcpy(ow->load_after, rows[i].key, OWED_KEY_LEN);
		ow->load_after_set = true;
	}
	owed_rows_clear(rows, (size_t)n);
	/* All done already (plain tokens), or none could start: next. */
	if (ow->load_pending == 0)
		evtimer_add(ow->load_ev, i < n ? &soon : &now);
}

void
proxy_owed_adopt(void *arg, const char *input, size_t len, int64_t first_ms)
{
	struct proxy *px = arg;
	struct proxy_job *j;

	if (px->stopping)
		return;		/* another instance takes it over */
	j = proxy_job_new(px, PURPOSE_LOAD, NULL, input, len);
	j->adopted = true;
	j->row.first_ms = first_ms;
	j->row.due_ms = clock_wall_ms();
	if (proxy_start_load(j) < 0) {
		log_err("proxy owed push taken over from another instance "
		    "dropped: the decryption queue is full");
		metric_inc(px->st.owed_dropped);
		proxy_job_free(j);
	}
}

/* An adopted push decrypted (or not). */
static void
proxy_owed_adopted(struct proxy_job *j)
{
	struct proxy *px = j->px;
	enum promise_outcome out = PROMISE_DROPPED_GONE;
	char err[ERR_LEN];

	if (j->plain != NULL && token_parse(j->plain, strlen(j->plain),
	    &j->token, err) == 0)
		out = promise_load(px->ow.promise, j->plain, strlen(j->plain),
		    j->row.first_ms, j->row.due_ms, 0, clock_wall_ms());
	if (out != PROMISE_LOADED) {
		log_err("proxy owed push taken over from another instance "
		    "dropped (%s)", j->plain == NULL ? "does not decrypt" :
		    promise_outcome_name(out));
		metric_inc(px->st.owed_dropped);
	}
	proxy_job_free(j);
	proxy_owed_kick(px);
}

void
proxy_owed_loaded(struct proxy_job *j)
{
	struct proxy *px = j->px;
	struct proxy_owed *ow = &px->ow;
	struct owed *o = promise_owed(ow->promise);
	uint8_t key[OWED_KEY_LEN];
	enum promise_outcome out;
	char err[ERR_LEN];

	if (j->adopted) {
		proxy_owed_adopted(j);
		return;
	}
	ow->load_pending--;
	if (j->plain != NULL)
		owed_key(o, j->plain, strlen(j->plain), key);
	if (j->plain == NULL ||
	    token_parse(j->plain, strlen(j->plain), &j->token, err) < 0 ||
	    memcmp(key, j->row.key, OWED_KEY_LEN) != 0) {
		log_err("proxy owed push dropped at start: the stored token "
		    "no longer decrypts to a valid one (error=%s)",
		    j->plain == NULL ? openpgp_error_name(j->perr) :
		    "malformed or re-keyed");
		promise_forget(ow->promise, j->row.key);
		metric_inc(px->st.owed_dropped);
		ow->load_dropped++;
	} else {
		out = promise_load(ow->promise, j->plain, strlen(j->plain),
		    j->row.first_ms, j->row.due_ms, j->row.attempts,
		    clock_wall_ms());
		if (out == PROMISE_DROPPED_FULL) {
			log_err("proxy owed push dropped at start: more are "
			    "stored than --owed-max/--owed-max-bytes allow");
			metric_inc(px->st.owed_dropped);
			ow->load_dropped++;
		} else if (out == PROMISE_DROPPED_EXPIRED) {
			log_err("proxy owed push dropped at start: older than "
			    "--owed-deadline");
			metric_inc(px->st.owed_expired);
			ow->load_dropped++;
		} else
			ow->loaded++;
	}
	proxy_job_free(j);
	if (ow->load_pending == 0)
		event_active(ow->load_ev, EV_TIMEOUT, 0);
	proxy_owed_kick(px);
}
