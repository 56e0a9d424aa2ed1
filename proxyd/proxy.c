/*
 * proxyd's request flows (see proxy.h for the map):
 *
 *   /notify    body -> [openpgp: cache or worker decrypt] -> token kind
 *              -> promise (debounce window, owed push) -> provider
 *              -> 200 / 410 / 500
 *   /register  {"token": ...} -> [decrypt] -> APNs only -> heartbeat
 *              schedule (stored before the 200)
 *   heartbeat  timer -> due registrations -> silent push -> reschedule,
 *              sooner after a failure, or drop on a dead token
 *   owed       proxy_owed.c: pushes a 200 promised, stored, sent at a
 *              window's end, retried until they go out
 *
 * Everything runs on the loop thread but the decryption itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "api.h"
#include "api_addr.h"
#include "clock.h"
#include "heartbeat_store.h"
#include "state_local.h"
#include "state_redis.h"
#include "log.h"
#include "log_limit.h"
#include "metrics_http.h"
#include "providers.h"
#include "proxy_private.h"
#include "workq.h"
#include "xmalloc.h"

#define PROXY_OPENPGP_PREFIX	"openpgp:"
#define PROXY_DECRYPT_QUEUE	4096	/* waiting decryptions */
#define PROXY_HEARTBEAT_BATCH	64
/* Jitter spreads registrations that arrived together (the Rust service
 * uses +/- 60 s); a tenth of the interval when that is shorter. */
#define PROXY_HEARTBEAT_JITTER_MS	(60 * 1000)
/* A heartbeat the provider did not take is tried again this soon (or at
 * its interval, if that is shorter), not a whole interval later. */
#define PROXY_HEARTBEAT_RETRY_MS	(60 * 1000)
#define PROXY_FAILURE_SERIES	256	/* notification_failures labels */
/* Debounce windows held by the embedded state (about 32 bytes each). */
#define PROXY_MAX_WINDOWS		(4 * 1000 * 1000)
#define PROXY_STOP_GRACE_MS	5000	/* answers in flight at SIGTERM */
/* A decryption queue that is full empties within a second or so at the
 * workers' pace: the relay's retry comes after that. */
#define PROXY_DECRYPT_RETRY_MS	1000
/* notify_shed's label sets: the reasons below, and the queues'
 * (ratelimit_refusal_name). */
#define PROXY_SHED_SERIES	16

/* Heartbeats have no request behind them: they take a share of their
 * own of the providers' rate limits (ratelimit.h), under a key no client
 * address has (an IPv6 /64 ends in eight zero bytes, a mapped IPv4
 * address starts with ten zero bytes; proxy_owed.c has another). */
static const struct ratelimit_client proxy_client_heartbeat = { .key = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 } };

static void	proxy_continue(struct proxy_job *);

static void
proxy_wipe(char *s, size_t len)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, len);
		free(s);
	}
}

void
proxy_job_free(struct proxy_job *j)
{
	proxy_wipe(j->input, j->input_len);
	proxy_wipe(j->plain, j->plain ? strlen(j->plain) : 0);
	free(j);
}

struct proxy_job *
proxy_job_new(struct proxy *px, enum proxy_purpose purpose,
    struct api_request *api, const char *input, size_t len)
{
	struct proxy_job *j = xcalloc(1, sizeof(*j));

	j->px = px;
	j->purpose = purpose;
	j->api = api;
	j->input = xmemdup0(input, len);
	j->input_len = len;
	return j;
}

void
proxy_reply(struct proxy_job *j, unsigned int status, const char *body)
{
	if (j->api != NULL)
		api_reply(j->api, status, body);
	j->api = NULL;
}

/* Seconds for Retry-After: ms rounded up, at least one. */
static unsigned int
proxy_retry_after_s(int64_t ms)
{
	int64_t s = (ms + 999) / 1000;

	return s < 1 ? 1 : s > 86400 ? 86400 : (unsigned int)s;
}

void
proxy_shed(struct proxy_job *j, const char *why, int64_t retry_ms)
{
	struct proxy *px = j->px;
	struct metric *m;
	char labels[64];

	if (j->api == NULL)
		return;
	snprintf(labels, sizeof(labels), "reason=\"%s\"", why);
	m = metrics_counter_labeled(px->metrics, "notify_shed",
	    "Requests answered 503 with Retry-After because the push path "
	    "was saturated, by reason", labels, PROXY_SHED_SERIES);
	if (m != NULL)
		metric_inc(m);
	log_limited(&px->lim_shed, LOG_LEVEL_INFO, "proxy push path "
	    "saturated (%s): 503, retry after %u s", why,
	    proxy_retry_after_s(retry_ms));
	api_reply_retry(j->api, 503, "busy, try later\n",
	    proxy_retry_after_s(retry_ms));
	j->api = NULL;
}

void
proxy_result_set(struct provider_result *r, enum provider_verdict v,
    const char *reason)
{
	memset(r, 0, sizeof(*r));
	r->verdict = v;
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
}

/* notification_failures{provider,reason,details}, as the Rust service
 * names them; label values are ours or sanitised provider reasons. */
void
proxy_count_failure(struct proxy *px, const char *provider,
    const char *reason, const char *details)
{
	struct metric *m;
	char labels[160];

	snprintf(labels, sizeof(labels),
	    "provider=\"%s\",reason=\"%s\",details=\"%s\"", provider, reason,
	    details);
	m = metrics_counter_labeled(px->metrics, "notification_failures",
	    "Pushes that failed, by provider and reason", labels,
	    PROXY_FAILURE_SERIES);
	if (m == NULL)
		m = metrics_counter_labeled(px->metrics,
		    "notification_failures", "Pushes that failed",
		    "provider=\"other\",reason=\"other\",details=\"\"",
		    PROXY_FAILURE_SERIES + 1);
	if (m != NULL)
		metric_inc(m);
}

const char *
proxy_provider_label(enum token_kind kind)
{
	return push_provider_label(push_provider_of(kind));
}

/* Whether t's provider takes heartbeats (only those may /register). */
static bool
proxy_takes_heartbeats(const struct token *t)
{
	const struct provider_ops *p = push_provider_of(t->kind);

	return p != NULL && p->heartbeats;
}

/* The failure detail of a push to a provider that is not configured. */
static const char *
proxy_off_reason(const struct token *t)
{
	const struct provider_ops *p = push_provider_of(t->kind);

	return p != NULL && p->off_reason != NULL ? p->off_reason :
	    "no_provider";
}

/* ---- decryption ------------------------------------------------------ */

static void
proxy_decrypt_work(void *job, void *arg)
{
	struct proxy_job *j = job;
	struct proxy *px = arg;
	char err[ERR_LEN];

	j->perr = openpgp_decrypt_token(px->keyring, j->input, j->input_len,
	    &j->plain, err);
}

static void
proxy_decrypt_done(void *job, int cancelled, void *arg)
{
	struct proxy_job *j = job;
	struct proxy *px = arg;

	if (cancelled) {
		proxy_reply(j, 503, "shutting down\n");
		if (j->purpose == PURPOSE_LOAD)
			px->ow.load_pending--;
		proxy_job_free(j);
		return;
	}
	metric_add(px->st.cache_evicted_bytes, decrypt_cache_put(px->cache,
	    j->digest, j->plain, (int)j->perr));
	metric_set(px->st.cache_bytes, (int64_t)decrypt_cache_bytes(
	    px->cache));
	proxy_continue(j);
}

/* --require-encrypted: a request with a plain token is answered here
 * (true). /notify gets 410, which makes the relay delete the token
 * (docs/proxyd.md): this proxy will never take it, and a client that
 * encrypts sets its token again on its next login; anything else would
 * be retried for hours. /register gets 400. */
static bool
proxy_plain_refused(struct proxy_job *j)
{
	struct proxy *px = j->px;

	if (!px->cfg.require_encrypted || (j->purpose != PURPOSE_NOTIFY &&
	    j->purpose != PURPOSE_REGISTER))
		return false;
	metric_inc(px->st.plain_refused);
	log_limited(&px->lim_plain, LOG_LEVEL_INFO, "proxy plain token "
	    "refused (--require-encrypted)");
	proxy_reply(j, j->purpose == PURPOSE_REGISTER ? 400 : 410,
	    "token not encrypted (openpgp: required)\n");
	proxy_job_free(j);
	return true;
}

/* Start from the raw input: plain tokens go straight on; openpgp: ones
 * come from the cache or a worker. 0, or -1 when every worker is busy
 * and the queue is full (the job is the caller's again). */
static int
proxy_decrypt(struct proxy_job *j)
{
	struct proxy *px = j->px;
	int cached_err = 0;

	if (j->input_len < strlen(PROXY_OPENPGP_PREFIX) ||
	    memcmp(j->input, PROXY_OPENPGP_PREFIX,
	    strlen(PROXY_OPENPGP_PREFIX)) != 0) {
		if (proxy_plain_refused(j))
			return 0;
		j->plain = xmemdup0(j->input, j->input_len);
		proxy_continue(j);
		return 0;
	}
	decrypt_cache_digest(px->cache, j->input, j->input_len, j->digest);
	if (decrypt_cache_get(px->cache, j->digest, &j->plain,
	    &cached_err) == 1) {
		metric_inc(px->st.decrypt_cache_hits);
		if (cached_err == DECRYPT_CACHE_NOT_TOKEN) {
			/* Decrypted before, to something that is no token:
			 * the cache kept the verdict, not the bytes. */
			j->not_token = true;
			j->perr = OPENPGP_ERR_MALFORMED;
		} else
			j->perr = (enum openpgp_error)cached_err;
		proxy_continue(j);
		return 0;
	}
	return workq_push(px->decrypt, j);
}

static void
proxy_start(struct proxy_job *j)
{
	if (proxy_decrypt(j) < 0) {
		/* Every worker busy and the queue full: the relay retries
		 * after the Retry-After. */
		metric_inc(j->px->st.busy);
		proxy_shed(j, "decrypt_queue", PROXY_DECRYPT_RETRY_MS);
		proxy_job_free(j);
	}
}

/* Start a PURPOSE_LOAD job: 0, or -1 when the workers are busy (the job
 * is the caller's again). */
int
proxy_start_load(struct proxy_job *j)
{
	return proxy_decrypt(j);
}

/* ---- sending --------------------------------------------------------- */

int
proxy_push(struct proxy_job *j, char err[ERR_LEN])
{
	enum push_kind kind = j->purpose == PURPOSE_HEARTBEAT ?
	    PUSH_HEARTBEAT : PUSH_VISIBLE;

	return push_send(j->px->push, kind, &j->token, j->has_client ?
	    &j->client : NULL, j, err);
}

/* A /notify whose push would join more than --max-pushes-in-flight with
 * the providers: 503 now rather than a wait for a provider that cannot
 * keep up (true: answered, and the window it opened closed again). */
static bool
proxy_send_shed(struct proxy_job *j)
{
	struct proxy *px = j->px;
	struct provider_result r;

	if (j->purpose != PURPOSE_NOTIFY ||
	    push_sending(px->push) < px->cfg.max_pushes_in_flight)
		return false;
	proxy_shed(j, "in_flight", 0);
	proxy_result_set(&r, VERDICT_OVERLOAD, "in_flight");
	proxy_owed_leading_done(j, &r);
	proxy_job_free(j);
	return true;
}

/* Send a /notify's leading push or a heartbeat; answered in
 * proxy_on_push_done. */
static void
proxy_send(struct proxy_job *j)
{
	struct proxy *px = j->px;
	struct provider_result r;
	char err[ERR_LEN];

	if (proxy_send_shed(j) || proxy_push(j, err) == 0)
		return;
	proxy_count_failure(px, proxy_provider_label(j->token.kind), "send",
	    "");
	log_warnx("proxy push: %s", err);
	proxy_reply(j, 500, "cannot send\n");
	if (j->purpose == PURPOSE_NOTIFY) {
		proxy_result_set(&r, VERDICT_TEMPORARY, "send");
		proxy_owed_leading_done(j, &r);
	}
	proxy_job_free(j);
}

/* A registration's next heartbeat, after_ms from now give or take the
 * jitter (the Rust service's +/- 60 s, or a tenth of after_ms). */
static int64_t
proxy_hb_next_at(int64_t after_ms)
{
	int64_t jitter = after_ms / 10 < PROXY_HEARTBEAT_JITTER_MS ?
	    after_ms / 10 : PROXY_HEARTBEAT_JITTER_MS;
	uint32_t rnd = 0;

	RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
	return heartbeat_next_at(clock_wall_ms(), after_ms, jitter, rnd);
}

/* The schedule's next_at for claimed registrations: one interval on. */
static int64_t
proxy_hb_next_interval(void *arg)
{
	struct proxy *px = arg;

	return proxy_hb_next_at(px->cfg.interval_ms);
}

static void
proxy_hb_stored(void *arg, enum state_store res, const char *err)
{
	(void)arg;
	if (res != STATE_STORED)
		log_warnx("proxy heartbeat schedule: %s", err != NULL ? err :
		    "full");
}

static void
proxy_hb_count(struct proxy *px)
{
	struct state_stats ss;

	state_get_stats(px->state, &ss);
	if (ss.heartbeat_tokens >= 0)
		metric_set(px->st.heartbeat_tokens, ss.heartbeat_tokens);
}

/* A provider answered (or not) for job ctx. */
static void
proxy_on_push_done(void *ctx, const struct provider_result *res, void *arg)
{
	struct proxy_job *j = ctx;
	struct proxy *px = arg;
	const char *prov = proxy_provider_label(j->token.kind);
	char digest[LOG_DIGEST_LEN];

	log_digest(j->plain, strlen(j->plain), digest);
	switch (res->verdict) {
	case VERDICT_OK:
		metric_inc(j->purpose == PURPOSE_HEARTBEAT ? px->st.heartbeat :
		    px->st.direct);
		log_debug("proxy push token=%s provider=%s ok", digest, prov);
		proxy_reply(j, 200, "");
		break;
	case VERDICT_GONE:
		/* Dead for good: out of the heartbeat schedule too. */
		state_heartbeat_remove(px->state, j->plain);
		proxy_hb_count(px);
		proxy_count_failure(px, prov, "410", res->reason);
		log_info("proxy push token=%s provider=%s gone reason=%s",
		    digest, prov, res->reason);
		proxy_reply(j, 410, "token gone\n");
		break;
	case VERDICT_CONFIG:
		proxy_count_failure(px, prov, "config", res->reason);
		if (res->logged)	/* once per episode, by the engine */
			log_debug("proxy push token=%s provider=%s refused: "
			    "%s", digest, prov, res->reason);
		else
			log_err("proxy %s refused our request: %s (check the "
			    "credentials and configuration)", prov,
			    res->reason);
		proxy_reply(j, 500, "provider configuration error\n");
		break;
	case VERDICT_OVERLOAD:
		/* Not sent: no provider failed. A request is told when to
		 * come back; an owed push or a heartbeat is retried. */
		log_debug("proxy push token=%s provider=%s not taken: %s",
		    digest, prov, res->reason);
		proxy_shed(j, res->reason, res->retry_after_ms);
		break;
	default:
		proxy_count_failure(px, prov,
		    provider_verdict_name(res->verdict), res->reason);
		log_info("proxy push token=%s provider=%s failed reason=%s",
		    digest, prov, res->reason);
		proxy_reply(j, 500, "temporary failure\n");
		break;
	}
	switch (j->purpose) {
	case PURPOSE_NOTIFY:
		proxy_owed_leading_done(j, res);
		break;
	case PURPOSE_TRAILING:
		proxy_owed_trailing_done(j, res);	/* frees j */
		return;
	case PURPOSE_HEARTBEAT:
		/* Rescheduled a whole interval ahead before it was sent; a
		 * failure other than "gone" comes back sooner. */
		if (res->verdict != VERDICT_OK && res->verdict != VERDICT_GONE) {
			metric_inc(px->st.heartbeat_retries);
			state_heartbeat_put(px->state, j->plain,
			    proxy_hb_next_at(px->cfg.interval_ms <
			    PROXY_HEARTBEAT_RETRY_MS ? px->cfg.interval_ms :
			    PROXY_HEARTBEAT_RETRY_MS), 0, proxy_hb_stored,
			    NULL);
		}
		break;
	default:
		break;
	}
	proxy_job_free(j);
}

/* ---- the flows ------------------------------------------------------- */

/* The schedule stored a registration (err NULL) or could not. */
static void
proxy_registered(void *arg, enum state_store res, const char *err)
{
	struct proxy_job *j = arg;
	struct proxy *px = j->px;

	if (res == STATE_FULL) {
		/* The operator must raise the bound, or somebody is filling
		 * the table: both worth a line, but not one per request. */
		metric_inc(px->st.registrations_full);
		log_limited(&px->lim_register_full, LOG_LEVEL_ERR, "proxy "
		    "--max-registrations %lld reached: new registrations "
		    "refused", (long long)px->cfg.max_registrations);
		proxy_reply(j, 503, "too many registrations\n");
		proxy_job_free(j);
		return;
	}
	if (res != STATE_STORED) {
		log_warnx("proxy heartbeat schedule: %s", err);
		proxy_reply(j, 500, "cannot store the registration\n");
		proxy_job_free(j);
		return;
	}
	metric_inc(px->st.registrations);
	proxy_hb_count(px);
	proxy_reply(j, 200, "");
	proxy_job_free(j);
	event_active(px->hb_timer, EV_TIMEOUT, 0);	/* re-arm */
}

static void
proxy_register(struct proxy_job *j)
{
	struct proxy *px = j->px;

	if (!proxy_takes_heartbeats(&j->token)) {
		proxy_reply(j, 400, "only APNs tokens can register\n");
		proxy_job_free(j);
		return;
	}
	/* A registration nobody can ever push to is only a row (APNs
	 * production configured, sandbox not: the same provider, so this
	 * is about the credentials, not the environment). */
	if (!push_enabled(px->push, push_provider_of(j->token.kind))) {
		metric_inc(px->st.registrations_refused);
		proxy_reply(j, 503, "no credentials for this provider\n");
		proxy_job_free(j);
		return;
	}
	/* 200 only once the registration is stored. */
	state_heartbeat_put(px->state, j->plain,
	    proxy_hb_next_at(px->cfg.interval_ms),
	    (int64_t)px->cfg.max_registrations, proxy_registered, j);
}

/* The token is known (or not): route it. */
static void
proxy_continue(struct proxy_job *j)
{
	struct proxy *px = j->px;
	char err[ERR_LEN];

	if (j->purpose == PURPOSE_LOAD) {
		proxy_owed_loaded(j);		/* decrypted or not */
		return;
	}
	if (j->plain == NULL && !j->not_token) {
		metric_inc(px->st.decrypt_failures);
		/* Anybody can send garbage: one line per token would let
		 * them fill the journal. */
		log_limited(&px->lim_undecryptable, LOG_LEVEL_INFO,
		    "proxy undecryptable token error=%s",
		    openpgp_error_name(j->perr));
		proxy_reply(j, j->purpose == PURPOSE_REGISTER ? 400 : 410,
		    "cannot decrypt token\n");
		proxy_job_free(j);
		return;
	}
	if (j->not_token ||
	    token_parse(j->plain, strlen(j->plain), &j->token, err) < 0) {
		proxy_reply(j, j->purpose == PURPOSE_REGISTER ? 400 : 410,
		    "malformed token\n");
		proxy_job_free(j);
		return;
	}
	if (j->purpose == PURPOSE_REGISTER) {
		proxy_register(j);
		return;
	}
	/* A push that cannot be sent fails now, not after a 200 has
	 * promised it: the relay must hear about it. */
	if (!push_enabled(px->push, push_provider_of(j->token.kind))) {
		proxy_count_failure(px, proxy_provider_label(j->token.kind),
		    proxy_off_reason(&j->token), "");
		proxy_reply(j, 500, "provider not configured\n");
		proxy_job_free(j);
		return;
	}
	if (j->purpose == PURPOSE_NOTIFY) {
		proxy_owed_request(j);	/* owe it, or send it now */
		return;
	}
	proxy_send(j);
}

/* A /notify that proxy_owed_request decided to send now. */
void
proxy_send_leading(struct proxy_job *j)
{
	proxy_send(j);
}

/* ---- heartbeats ------------------------------------------------------ */

#define PROXY_HEARTBEAT_IN_FLIGHT	1000

static void
proxy_hb_arm(struct proxy *px, int64_t wait_ms)
{
	struct timeval tv;

	if (px->stopping)
		return;
	if (wait_ms < 0)
		wait_ms = 0;
	tv.tv_sec = wait_ms / 1000;
	tv.tv_usec = (wait_ms % 1000) * 1000;
	evtimer_add(px->hb_timer, &tv);
}

/* The schedule handed out due registrations, each moved one interval on
 * before (never twice in flight; a crash now loses none). A dead token is
 * removed when Apple says so. */
static void
proxy_on_hb_due(void *arg, const char *const *tokens, size_t n,
    int64_t next_at, const char *err)
{
	struct proxy *px = arg;
	int64_t wait = 1000;

	if (err != NULL)
		log_warnx("proxy heartbeat schedule: %s", err);
	for (size_t i = 0; i < n; i++) {
		struct proxy_job *j = proxy_job_new(px, PURPOSE_HEARTBEAT,
		    NULL, tokens[i], strlen(tokens[i]));

		j->plain = xstrdup(tokens[i]);
		/* The schedule's pushes share one client of their own: a
		 * burst of due ones (after downtime) waits its turn beside
		 * the relays', and no relay's flood starves them. */
		j->client = proxy_client_heartbeat;
		j->has_client = true;
		proxy_continue(j);
	}
	/* After downtime every overdue device is due at once: slices, so
	 * the loop keeps serving /notify meanwhile. */
	if (n == PROXY_HEARTBEAT_BATCH)
		wait = 50;
	else if (next_at > 0 && next_at - clock_wall_ms() < wait)
		wait = next_at - clock_wall_ms();
	proxy_hb_arm(px, wait);
}

static void
proxy_on_hb_timer(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;

	(void)fd;
	(void)what;
	if (px->stopping || px->cfg.interval_ms == 0)
		return;		/* (--interval 0: heartbeats off) */
	if (push_in_flight(px->push) >= PROXY_HEARTBEAT_IN_FLIGHT) {
		proxy_hb_arm(px, 50);
		return;
	}
	state_heartbeat_claim(px->state, clock_wall_ms(),
	    PROXY_HEARTBEAT_BATCH, proxy_hb_next_interval, px,
	    proxy_on_hb_due, px);
}

/* The registration buckets. */
static void
proxy_bounds_gauges(struct proxy *px)
{
	struct state_stats ss;

	state_get_stats(px->state, &ss);
	metric_set(px->st.register_clients, (int64_t)ss.clients);
	if (ss.clients_forgotten > px->clients_forgotten_seen) {
		metric_add(px->st.register_clients_forgotten,
		    ss.clients_forgotten - px->clients_forgotten_seen);
		px->clients_forgotten_seen = ss.clients_forgotten;
	}
}

/* Gauges whose values change without a request (windows closing, the
 * schedule's size), once a second. */
static void
proxy_on_gauge_timer(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;

	(void)fd;
	(void)what;
	proxy_owed_gauges(px);
	proxy_hb_count(px);
	proxy_bounds_gauges(px);
	metric_set(px->st.pushes_sending, (int64_t)push_sending(px->push));
}

/* ---- the API --------------------------------------------------------- */

/* The client a request counts against (the intake's: the TCP peer, or
 * behind a --trusted-proxy the X-Forwarded-For address; an IPv6 /64),
 * as a key of 16 bytes; 0 when it has none. */
static size_t
proxy_client_key(struct api_request *req, uint8_t key_out[16])
{
	struct api_addr a;

	if (api_request_client(req, &a) < 0)
		return 0;
	memcpy(key_out, a.b, sizeof(a.b));
	return sizeof(a.b);
}

/* The request's client, for its push's share of the provider's rate
 * limit (ratelimit.h) and for a push it makes owed. */
static void
proxy_job_client(struct proxy_job *j, struct api_request *req)
{
	struct api_addr a;

	if (api_request_client(req, &a) < 0)
		return;		/* none: the engine's shared one */
	memcpy(j->client.key, a.b, sizeof(j->client.key));
	j->has_client = true;
}

/* The client's registration bucket answered: go on, or 429. */
static void
proxy_on_register_admit(void *arg, int64_t wait_ms)
{
	struct proxy_job *j = arg;
	struct proxy *px = j->px;
	char body[64];

	if (wait_ms <= 0) {
		proxy_start(j);
		return;
	}
	metric_inc(px->st.registrations_limited);
	log_limited(&px->lim_register_rate, LOG_LEVEL_INFO, "proxy "
	    "registrations from one client over --register-rate: 429");
	snprintf(body, sizeof(body), "too many registrations, retry in "
	    "%u s\n", proxy_retry_after_s(wait_ms));
	if (j->api != NULL)
		api_reply_retry(j->api, 429, body,
		    proxy_retry_after_s(wait_ms));
	j->api = NULL;
	proxy_job_free(j);
}

/* --register-rate: one token from the client's bucket before any work
 * (decryption, the database) is done for it. */
static void
proxy_register_admit(struct proxy_job *j, struct api_request *req)
{
	struct proxy *px = j->px;
	uint8_t key[16];
	size_t len = proxy_client_key(req, key);

	if (len == 0) {
		proxy_start(j);
		return;
	}
	state_client_take(px->state, key, len, px->cfg.register_rate,
	    px->cfg.register_burst, clock_mono_ms(), proxy_on_register_admit,
	    j);
}

/* Whether a configured provider takes heartbeats. */
static bool
proxy_heartbeats_on(struct proxy *px)
{
	for (size_t i = 0; i < providers_count; i++)
		if (providers[i]->heartbeats &&
		    push_enabled(px->push, providers[i]))
			return true;
	return false;
}

static void
proxy_on_request(struct api_request *req, enum api_route route,
    const char *body, size_t len, void *arg)
{
	struct proxy *px = arg;
	struct proxy_job *j;
	json_error_t jerr;
	json_t *root, *tok;

	if (px->stopping) {
		api_reply(req, 503, "shutting down\n");
		return;
	}
	if (route == API_ROUTE_NOTIFY) {
		/* Relays send the token as the whole body; tolerate the
		 * whitespace a shell or a client might add. */
		while (len > 0 && (body[len - 1] == '\n' ||
		    body[len - 1] == '\r' || body[len - 1] == ' '))
			len--;
		j = proxy_job_new(px, PURPOSE_NOTIFY, req, body, len);
		proxy_job_client(j, req);
		proxy_start(j);
		return;
	}
	/* --interval 0: heartbeats are off (chatmail core stopped sending
	 * /register in 2.57; a heartbeat tells the proxy's operator a
	 * device's address every interval). 200 without storing anything:
	 * an older client takes it as done and does not retry. */
	if (px->cfg.interval_ms == 0) {
		metric_inc(px->st.registrations_ignored);
		api_reply(req, 200, "");
		return;
	}
	/* Without APNs credentials a registration could never be used:
	 * refused before any work (docs/proxyd.md, 503: the service, not
	 * the request, is missing something). */
	if (!proxy_heartbeats_on(px)) {
		metric_inc(px->st.registrations_refused);
		api_reply(req, 503, "registrations need APNs credentials\n");
		return;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	tok = root != NULL ? json_object_get(root, "token") : NULL;
	if (!json_is_string(tok) || json_string_length(tok) == 0) {
		json_decref(root);
		api_reply(req, 400, "expected {\"token\": \"...\"}\n");
		return;
	}
	j = proxy_job_new(px, PURPOSE_REGISTER, req, json_string_value(tok),
	    json_string_length(tok));
	json_decref(root);
	proxy_register_admit(j, req);
}

/* GET /health and /ready, for a load balancer in front of several
 * instances (docs/proxyd.md "Health and readiness"). Both 503 once a
 * graceful stop has begun, so that the balancer drains this instance
 * while its requests in flight get their answers. Health is 200
 * otherwise, "degraded" when the state backend says so (its shared
 * server unreachable): this instance still pushes with what it has, and
 * taking it out would not help, the others share the same server.
 * Ready waits for the keyring and every configured provider's credential
 * (FCM's access token comes over the network after the start), then
 * stays: a credential lost later (the provider's token endpoint down) is
 * every instance's trouble, and taking them all out would stop the other
 * providers' pushes too. */
static unsigned int
proxy_on_probe(enum api_probe probe, char *body, size_t size, void *arg)
{
	struct proxy *px = arg;
	const char *why;

	if (px->stopping) {
		snprintf(body, size, "stopping\n");
		return 503;
	}
	if (probe == API_PROBE_READY) {
		if (!px->ready && px->keyring != NULL &&
		    push_ready(px->push)) {
			px->ready = true;
			log_info("proxy ready: keyring and credentials in");
		}
		snprintf(body, size, px->ready ? "ready\n" : "not ready\n");
		return px->ready ? 200 : 503;
	}
	if ((why = state_degraded(px->state)) != NULL) {
		snprintf(body, size, "degraded: %s\n", why);
		return 200;
	}
	snprintf(body, size, "ok\n");
	return 200;
}

/* ---- set-up and tear-down -------------------------------------------- */

/* log_limit.h's hook: any thread may call it. */
static void
proxy_on_log_suppressed(void *arg)
{
	metric_inc(arg);
}

static void
proxy_register_metrics(struct proxy *px)
{
	struct metrics *m = px->metrics = metrics_new();
	struct proxy_stats *st = &px->st;

	/* The Rust service's names, so dashboards keep working. */
	st->direct = metrics_counter(m, "direct_notifications",
	    "Visible pushes delivered to a provider", NULL);
	st->heartbeat = metrics_counter(m, "heartbeat_notifications",
	    "Silent heartbeat pushes delivered", NULL);
	st->registrations = metrics_counter(m, "heartbeat_registrations",
	    "Heartbeat registrations received", NULL);
	st->heartbeat_tokens = metrics_gauge(m, "heartbeat_tokens",
	    "Devices in the heartbeat schedule", NULL);
	st->heartbeat_retries = metrics_counter(m, "heartbeat_retries",
	    "Heartbeats the provider did not take, tried again sooner",
	    NULL);
	st->debounced = metrics_counter(m, "debounced_notifications",
	    "Requests answered 200 with an owed push (debounce)", NULL);
	st->debounced_size = metrics_gauge(m, "debounced_set_size",
	    "Open debounce windows", NULL);
	st->decrypt_failures = metrics_counter(m,
	    "openpgp_decryption_failures", "Tokens that did not decrypt",
	    NULL);
	st->decrypt_cache_hits = metrics_counter(m, "decrypt_cache_hits",
	    "Tokens found in the decryption cache", NULL);
	st->busy = metrics_counter(m, "decrypt_queue_full",
	    "Requests refused because every decryption worker was busy",
	    NULL);
	st->cache_evicted_bytes = metrics_counter(m,
	    "decrypt_cache_byte_evictions",
	    "Decryption cache entries evicted to stay within --cache-bytes",
	    NULL);
	st->cache_bytes = metrics_gauge(m, "decrypt_cache_bytes",
	    "Bytes the decryption cache holds", NULL);
	st->plain_refused = metrics_counter(m, "plain_tokens_refused",
	    "Plain (not openpgp:) tokens refused (--require-encrypted)",
	    NULL);
	st->registrations_refused = metrics_counter(m,
	    "registrations_refused",
	    "Registrations refused: no credentials for their provider",
	    NULL);
	st->registrations_ignored = metrics_counter(m,
	    "registrations_ignored",
	    "Registrations answered 200 and not stored: heartbeats are off "
	    "(--interval 0)", NULL);
	st->registrations_full = metrics_counter(m, "registrations_full",
	    "New registrations refused at --max-registrations", NULL);
	st->registrations_limited = metrics_counter(m,
	    "registrations_rate_limited",
	    "Registrations refused with 429 (--register-rate per client)",
	    NULL);
	st->register_clients = metrics_gauge(m, "register_clients",
	    "Clients with a registration bucket", NULL);
	st->register_clients_forgotten = metrics_counter(m,
	    "register_clients_forgotten",
	    "Registration buckets dropped at --register-clients", NULL);
	st->log_suppressed = metrics_counter(m, "log_lines_suppressed",
	    "Log lines a client could cause, dropped by their rate limit",
	    NULL);
	st->pushes_sending = metrics_gauge(m, "pushes_in_flight",
	    "Pushes handed to a provider and not answered yet "
	    "(--max-pushes-in-flight)", NULL);
	log_limit_set_hook(proxy_on_log_suppressed, st->log_suppressed);
	proxy_owed_metrics(px);
}

static void
proxy_on_push_cancel(void *ctx, void *arg)
{
	struct proxy_job *j = ctx;
	struct provider_result r;

	(void)arg;
	proxy_reply(j, 503, "shutting down\n");
	if (j->purpose == PURPOSE_TRAILING) {
		/* Still owed: stored, sent after the restart. */
		proxy_result_set(&r, VERDICT_TEMPORARY, "shutdown");
		proxy_owed_trailing_done(j, &r);
		return;
	}
	proxy_job_free(j);
}

/* The key that names the shared state's keys: the same in every
 * instance, which share the keyring, and secret as the keyring is. */
static int
proxy_redis_key(const char *keyring_path, uint8_t out[SIPHASH_KEY_LEN],
    char err[ERR_LEN])
{
	static const char label[] = "chatmail-push proxyd redis key names v1";
	unsigned char md[SHA256_DIGEST_LENGTH], buf[8192];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	FILE *f = fopen(keyring_path, "rb");
	size_t n;
	int ok;

	if (f == NULL || ctx == NULL) {
		err_set(err, "%s: cannot read the keyring for the shared "
		    "state's key", keyring_path);
		if (f != NULL)
			fclose(f);
		EVP_MD_CTX_free(ctx);
		return -1;
	}
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
	    EVP_DigestUpdate(ctx, label, sizeof(label));
	while (ok && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		ok = EVP_DigestUpdate(ctx, buf, n);
	ok = ok && !ferror(f) && EVP_DigestFinal_ex(ctx, md, NULL);
	fclose(f);
	EVP_MD_CTX_free(ctx);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!ok) {
		err_set(err, "%s: cannot hash the keyring", keyring_path);
		return -1;
	}
	memcpy(out, md, SIPHASH_KEY_LEN);
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

/* A Web Push origin's pause another instance heard of. */
static void
proxy_on_shared_pause(void *arg, const char *scope, int64_t ms)
{
	struct proxy *px = arg;

	if (px->push != NULL)
		push_apply_pause(px->push, scope, ms);
}

/* The shared state (--redis), with sc as its fallback. */
static struct state *
proxy_state_redis(struct proxy *px, const struct state_local_config *sc,
    char err[ERR_LEN])
{
	const struct proxy_config *cfg = &px->cfg;
	struct state_redis_config rc;
	struct state *s = NULL;

	memset(&rc, 0, sizeof(rc));
	rc.local = *sc;
	rc.addr = cfg->redis;
	memcpy(rc.sentinels, cfg->redis_sentinels, sizeof(rc.sentinels));
	rc.nsentinels = cfg->redis_nsentinels;
	rc.master_name = cfg->redis_master;
	rc.timeout_ms = cfg->redis_timeout_ms;
	rc.max_pending = cfg->redis_max_pending;
	rc.metrics = px->metrics;
	rc.on_takeover = proxy_owed_adopt;
	rc.on_pause = proxy_on_shared_pause;
	rc.arg = px;
	if (proxy_redis_key(cfg->keyring_path, rc.key_key, err) == 0)
		s = state_redis_new(&rc, err);
	OPENSSL_cleanse(&rc, sizeof(rc));
	return s;
}

struct proxy *
proxy_new(struct event_base *base, const struct proxy_config *cfg,
    char err[ERR_LEN])
{
	struct proxy *px = xcalloc(1, sizeof(*px));
	struct state_local_config sc;
	struct api_config ac;

	px->base = base;
	px->cfg = *cfg;
	px->lim_undecryptable = (struct log_limit)LOG_LIMIT(1, 10);
	px->lim_plain = (struct log_limit)LOG_LIMIT(1, 10);
	/* At the bound every new device hits it: one line a minute. */
	px->lim_register_full = (struct log_limit)LOG_LIMIT(1.0 / 60, 1);
	px->lim_register_rate = (struct log_limit)LOG_LIMIT(0.1, 3);
	px->lim_shed = (struct log_limit)LOG_LIMIT(0.1, 3);
	TAILQ_INIT(&px->ow.waiting);
	proxy_register_metrics(px);
	if ((px->keyring = openpgp_keyring_load_file(cfg->keyring_path,
	    err)) == NULL)
		goto fail;
	log_info("proxy keyring keys=%zu", openpgp_keyring_count(px->keyring));
	px->cache = decrypt_cache_new(cfg->cache_entries, cfg->cache_bytes);
	if (proxy_db_open(&px->db, cfg->db_path, cfg->sync, true, err) < 0)
		goto fail;
	memset(&sc, 0, sizeof(sc));
	sc.window_ms = cfg->debounce_ms;
	sc.max_windows = PROXY_MAX_WINDOWS;
	RAND_bytes(sc.window_key, sizeof(sc.window_key));
	sc.max_clients = cfg->register_clients;
	RAND_bytes(sc.client_key, sizeof(sc.client_key));
	sc.db = px->db.db;
	sc.base = base;
	if (cfg->redis_on)
		px->state = proxy_state_redis(px, &sc, err);
	else
		px->state = state_local_new(&sc, err);
	OPENSSL_cleanse(&sc, sizeof(sc));		/* the key */
	if (px->state == NULL || proxy_owed_open(px, err) < 0)
		goto fail;
	proxy_hb_count(px);
	if ((px->push = push_engine_new(base, &cfg->push, px->state, px->metrics,
	    proxy_on_push_done, px, err)) == NULL)
		goto fail;
	/* FCM's access token now, not on the first push: GET /ready waits
	 * for it, and a key Google refuses shows at the start. */
	push_engine_prefetch(px->push);
	if ((px->decrypt = workq_new(base, cfg->workers, PROXY_DECRYPT_QUEUE,
	    proxy_decrypt_work, proxy_decrypt_done, px, err)) == NULL)
		goto fail;
	px->hb_timer = evtimer_new(base, proxy_on_hb_timer, px);
	px->gauge_timer = event_new(base, -1, EV_PERSIST, proxy_on_gauge_timer,
	    px);
	event_add(px->gauge_timer, &(struct timeval){ 1, 0 });
	memset(&ac, 0, sizeof(ac));
	ac.host = cfg->host;
	ac.port = cfg->port;
	ac.reuse_port = cfg->reuse_port;
	ac.limits = cfg->intake;
	ac.metrics = px->metrics;
	ac.probe = proxy_on_probe;
	ac.probe_arg = px;
	if ((px->api = api_new(base, &ac, proxy_on_request, px, err)) == NULL)
		goto fail;
	log_info("proxy listening on %s:%u%s", cfg->host, api_port(px->api),
	    cfg->reuse_port ? " (shared: --reuse-port)" : "");
	if (cfg->metrics_addr != NULL && (px->metrics_http =
	    metrics_http_start(px->metrics, cfg->metrics_addr, err)) == NULL)
		goto fail;
	event_active(px->hb_timer, EV_TIMEOUT, 0);
	proxy_owed_kick(px);		/* and read the stored ones back */
	return px;
fail:
	proxy_free(px);
	return NULL;
}

static void
proxy_on_stop_check(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;

	(void)fd;
	(void)what;
	if ((api_pending(px->api) == 0 && push_in_flight(px->push) == 0 &&
	    workq_depth(px->decrypt) == 0) ||
	    clock_mono_ms() >= px->stop_deadline_ms)
		event_base_loopbreak(px->base);
}

void
proxy_stop(struct proxy *px)
{
	struct timeval tv = { 0, 20000 };

	if (px->stopping)
		return;
	px->stopping = true;
	px->stop_deadline_ms = clock_mono_ms() + PROXY_STOP_GRACE_MS;
	evtimer_del(px->hb_timer);
	px->stop_ev = event_new(px->base, -1, EV_PERSIST, proxy_on_stop_check,
	    px);
	event_add(px->stop_ev, &tv);
}

void
proxy_free(struct proxy *px)
{
	if (px == NULL)
		return;
	/* Everything that may hold a waiting request answers it before the
	 * API goes; what is still owed is stored for the next start. The
	 * shared state first: its answers still due (a heartbeat claim, a
	 * window) reach a proxy that is still whole. */
	state_close(px->state);
	push_engine_free(px->push, proxy_on_push_cancel);
	workq_free(px->decrypt);
	proxy_owed_final_commit(px);
	api_free(px->api);
	metrics_http_stop(px->metrics_http);
	if (px->stop_ev != NULL)
		event_free(px->stop_ev);
	if (px->hb_timer != NULL)
		event_free(px->hb_timer);
	if (px->gauge_timer != NULL)
		event_free(px->gauge_timer);
	proxy_owed_close(px);
	state_free(px->state);
	proxy_db_close(&px->db);
	decrypt_cache_free(px->cache);
	openpgp_keyring_free(px->keyring);
	redis_addr_clear(&px->cfg.redis);
	log_limit_set_hook(NULL, NULL);		/* the counter goes */
	metrics_free(px->metrics);
	free(px);
}
