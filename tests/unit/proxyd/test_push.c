/*
 * Unit tests of proxyd/push/push.c, the push engine, with the real
 * providers behind a fake transport (every request recorded, answered by
 * the test) and a fake clock: verdicts as the relay gets them, pushes a
 * provider refuses before sending, a provider-wide pause (the rate
 * limiter) and a provider's own (Web Push, per origin), the one retry
 * after a renewed credential (APNs's JWT, FCM's access token), FCM's one
 * shared renewal and its failures, the address policy handed to Web
 * Push's transport, and pushes abandoned at the end.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "log.h"
#include "metrics.h"
#include "push.h"
#include "state_local.h"
#include "webpush_ua.h"
#include "provider_test.h"

#define T0_MS		1700000000000LL
#define MIN_MS		(60LL * 1000)
#define APNS_HEX	"a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define APNS_HEX2	"b1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define FCM_TOK		"fcm-chat.delta:dG9rZW4tZm9yLWEtcGhvbmU:APA91bHun4MxP5e"
#define FCM_TOK2	"fcm-chat.delta:c2Vjb25kLXBob25l:APA91bHun4MxP5egoKMw"
#define UB_TOK		"ubports-ZGVsdGF0b3VjaDo6ZGV2aWNlLTE="
#define UB_TOK2		"ubports-ZGVsdGF0b3VjaDo6ZGV2aWNlLTI="
#define WP_KEYS		"|" UA_PUBLIC_B64 "|" UA_AUTH_B64
#define WP_A		"webpush:https://push-a.example/s/1" WP_KEYS
#define WP_A2		"webpush:https://push-a.example/s/2" WP_KEYS
#define WP_B		"webpush:https://push-b.example/s/1" WP_KEYS
#define WP_HTTP		"webpush:http://push-a.example/s/1" WP_KEYS
#define WP_LOOPBACK	"webpush:https://127.0.0.1:8443/s/1" WP_KEYS
#define OAUTH_URL	"https://oauth2.example.test/token"
#define FCM_ACCESS(n)	"{\"access_token\":\"ya29.tok" #n "\"," \
			"\"expires_in\":3599,\"token_type\":\"Bearer\"}"
#define EXPIRED		"{\"reason\":\"ExpiredProviderToken\"}"

#define MAX_REQS	64
#define MAX_TRANSPORTS	8

/* ---- a fake transport: requests recorded, answered by the test ------- */

struct fake_transport {
	httpc_done_fn		*done;
	void			*arg;
	struct transport_config	 cfg;
	size_t			 in_flight;
	bool			 freed;
};

struct fake_req {
	struct fake_transport	*t;
	void			*ctx;
	char			*url;
	char			*auth;		/* authorization's value */
	bool			 answered;
};

struct done {
	void			*ctx;
	struct provider_result	 res;
};

static struct {
	struct event_base	*base;
	struct metrics		*metrics;
	struct state		*state;		/* the rate-limit buckets */
	struct push_engine	*e;
	EVP_PKEY		*apns_key;
	EVP_PKEY		*vapid_key;
	struct vapid		*vapid;
	struct fcm_key		 fcm_key;
	struct fake_transport	*t[MAX_TRANSPORTS];
	size_t			 nt;
	struct fake_req		 req[MAX_REQS];
	size_t			 nreq;
	bool			 refuse_send;
	int64_t			 wall, mono;
	struct done		 done[MAX_REQS];
	size_t			 ndone;
	void			*cancelled[MAX_REQS];
	size_t			 ncancelled;
	struct token		 tokens[MAX_REQS];	/* borrowed by pushes */
	size_t			 ntokens;
} F;

static struct transport *
fake_new(struct event_base *base, const struct transport_config *cfg,
    httpc_done_fn *done, void *arg, char err[ERR_LEN])
{
	struct fake_transport *t = calloc(1, sizeof(*t));

	(void)base;
	(void)err;
	assert_true(F.nt < MAX_TRANSPORTS);
	t->done = done;
	t->arg = arg;
	t->cfg = *cfg;
	F.t[F.nt++] = t;
	return (struct transport *)t;
}

static int
fake_send(struct transport *tr, const struct httpc_request *q, void *ctx,
    char err[ERR_LEN])
{
	struct fake_transport *t = (struct fake_transport *)tr;
	struct fake_req *r;
	size_t i;

	if (F.refuse_send) {
		err_set(err, "fake transport refuses");
		return -1;
	}
	assert_true(F.nreq < MAX_REQS);
	r = &F.req[F.nreq++];
	memset(r, 0, sizeof(*r));
	r->t = t;
	r->ctx = ctx;
	r->url = strdup(q->url);
	for (i = 0; i < q->nheaders; i++)
		if (strncasecmp(q->headers[i], "authorization: ", 15) == 0)
			r->auth = strdup(q->headers[i] + 15);
	t->in_flight++;
	return 0;
}

static size_t
fake_in_flight(const struct transport *tr)
{
	return ((const struct fake_transport *)tr)->in_flight;
}

static void
fake_free(struct transport *tr, httpc_cancel_fn *cancel)
{
	struct fake_transport *t = (struct fake_transport *)tr;

	for (size_t i = 0; i < F.nreq; i++)
		if (F.req[i].t == t && !F.req[i].answered) {
			F.req[i].answered = true;
			if (cancel != NULL)
				cancel(F.req[i].ctx, t->arg);
		}
	t->freed = true;
}

static const struct transport_ops fake_ops = {
	.name = "fake",
	.new = fake_new,
	.send = fake_send,
	.in_flight = fake_in_flight,
	.free = fake_free,
};

static int64_t
fake_wall(void *arg)
{
	(void)arg;
	return F.wall;
}

static int64_t
fake_mono(void *arg)
{
	(void)arg;
	return F.mono;
}

static const struct push_clock fake_clock = { fake_wall, fake_mono, NULL };

/* ---- the engine under test ------------------------------------------- */

static void
on_done(void *ctx, const struct provider_result *res, void *arg)
{
	(void)arg;
	assert_true(F.ndone < MAX_REQS);
	F.done[F.ndone].ctx = ctx;
	F.done[F.ndone].res = *res;
	F.ndone++;
}

static void
on_cancel(void *ctx, void *arg)
{
	(void)arg;
	F.cancelled[F.ncancelled++] = ctx;
}

/* Runs what the loop has to do now: verdicts handed back, rate-limit
 * timers due at once. */
static void
spin(void)
{
	for (int i = 0; i < 4; i++)
		event_base_loop(F.base, EVLOOP_NONBLOCK);
}

static void
engine_start(bool fcm, const char *unsignable)
{
	struct push_config cfg;
	char err[ERR_LEN];

	memset(&cfg, 0, sizeof(cfg));
	cfg.providers.apns.production_url = "https://apns.test";
	cfg.providers.apns.sandbox_url = "https://sandbox.apns.test";
	cfg.providers.apns.topic = "chat.delta";
	cfg.providers.apns.key = F.apns_key;
	cfg.providers.apns.key_id = "KEYID12345";
	cfg.providers.apns.team_id = "TEAMID6789";
	cfg.providers.apns.streams = 7;
	if (fcm) {
		F.fcm_key.project_id = "chatmail-test-42";
		F.fcm_key.client_email =
		    "push@chatmail-test-42.iam.gserviceaccount.com";
		F.fcm_key.token_uri = OAUTH_URL;
		F.fcm_key.pkey = unsignable != NULL ?
		    EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256") :
		    EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		cfg.providers.fcm.key = &F.fcm_key;
		cfg.providers.fcm.api_url = "https://fcm.test";
	}
	cfg.providers.webpush.vapid = F.vapid;
	cfg.ca_file = "/nonexistent/ca.pem";
	cfg.timeout_ms = 20000;
	/* Unlimited rates; a push that meets a pause is refused at once. */
	for (size_t i = 0; i < providers_count; i++) {
		cfg.limits[i].max_queue = 4;
		cfg.limits[i].max_wait_ms = 0;
	}
	cfg.transport = &fake_ops;
	cfg.clock = &fake_clock;
	F.e = push_engine_new(F.base, &cfg, F.state, F.metrics, on_done,
	    NULL, err);
	if (F.e == NULL)
		fail_msg("push_engine_new: %s", err);
}

static int
setup(void **state)
{
	char err[ERR_LEN];

	(void)state;
	memset(&F, 0, sizeof(F));
	F.wall = T0_MS;
	F.mono = 1000000;
	F.base = event_base_new();
	F.metrics = metrics_new();
	F.state = state_local_new(&(struct state_local_config){
	    .window_ms = 1000, .max_windows = 64 }, err);
	assert_non_null(F.state);
	F.apns_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	F.vapid_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	F.vapid = vapid_new(F.vapid_key, "mailto:ops@example.org", err);
	assert_non_null(F.vapid);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	push_engine_free(F.e, on_cancel);
	for (size_t i = 0; i < F.nreq; i++) {
		free(F.req[i].url);
		free(F.req[i].auth);
	}
	for (size_t i = 0; i < F.nt; i++) {
		assert_true(F.t[i]->freed);
		free(F.t[i]);
	}
	EVP_PKEY_free(F.fcm_key.pkey);
	vapid_free(F.vapid);
	EVP_PKEY_free(F.vapid_key);
	EVP_PKEY_free(F.apns_key);
	metrics_free(F.metrics);
	state_free(F.state);
	event_base_free(F.base);
	return 0;
}

/* Sends token s (kept for the push's life) with context ctx. */
static void
send_kind(enum push_kind kind, const char *s, uintptr_t ctx)
{
	struct token *t = &F.tokens[F.ntokens++];
	char err[ERR_LEN];

	parse_token(s, t);
	if (push_send(F.e, kind, t, NULL, (void *)ctx, err) != 0)
		fail_msg("push_send %s: %s", s, err);
}

static void
send_push(const char *s, uintptr_t ctx)
{
	send_kind(PUSH_VISIBLE, s, ctx);
}

/* The engine's only request to the provider since request number from,
 * to a URL starting with prefix. */
static struct fake_req *
sent(size_t from, const char *prefix)
{
	struct fake_req *found = NULL;

	for (size_t i = from; i < F.nreq; i++)
		if (strncmp(F.req[i].url, prefix, strlen(prefix)) == 0) {
			if (found != NULL)
				fail_msg("two requests to %s", prefix);
			found = &F.req[i];
		}
	if (found == NULL)
		fail_msg("no request to %s", prefix);
	return found;
}

static void
answer(struct fake_req *r, long status, const char *body,
    int64_t retry_after_s)
{
	struct httpc_response resp;

	assert_false(r->answered);
	memset(&resp, 0, sizeof(resp));
	resp.status = status;
	resp.error = status == 0 ? body : "";
	resp.body = status == 0 ? "" : body;
	resp.body_len = strlen(resp.body);
	resp.retry_after_s = retry_after_s;
	r->answered = true;
	r->t->in_flight--;
	r->t->done(r->ctx, &resp, r->t->arg);
}

/* The verdict for ctx, which must have come exactly once. */
static const struct provider_result *
verdict(uintptr_t ctx)
{
	const struct provider_result *res = NULL;

	spin();
	for (size_t i = 0; i < F.ndone; i++)
		if (F.done[i].ctx == (void *)ctx) {
			if (res != NULL)
				fail_msg("two verdicts for %lu",
				    (unsigned long)ctx);
			res = &F.done[i].res;
		}
	if (res == NULL)
		fail_msg("no verdict for %lu", (unsigned long)ctx);
	return res;
}

static void
assert_verdict(uintptr_t ctx, enum provider_verdict v, const char *reason)
{
	const struct provider_result *res = verdict(ctx);

	if (res->verdict != v || strcmp(res->reason, reason) != 0)
		fail_msg("push %lu: verdict %s reason %s, want %s %s",
		    (unsigned long)ctx, provider_verdict_name(res->verdict),
		    res->reason, provider_verdict_name(v), reason);
}

static void
assert_no_verdict(uintptr_t ctx)
{
	spin();
	for (size_t i = 0; i < F.ndone; i++)
		if (F.done[i].ctx == (void *)ctx)
			fail_msg("push %lu: an early verdict %s",
			    (unsigned long)ctx,
			    provider_verdict_name(F.done[i].res.verdict));
}

/* The rendered metrics hold this line. */
static void
assert_metric(const char *line)
{
	size_t len;
	char *text = metrics_render(F.metrics, &len);

	if (strstr(text, line) == NULL)
		fail_msg("no \"%s\" in\n%s", line, text);
	free(text);
}

/* ---- the tests ------------------------------------------------------- */

/* Each answer reaches the relay's side as its provider's table says;
 * no answer at all is TEMPORARY whatever the provider would say. */
static void
test_verdicts(void **state)
{
	static const struct {
		long		 status;
		const char	*body;
		enum provider_verdict want;
		const char	*reason;
	} rows[] = {
		{ 200, "", VERDICT_OK, "200" },
		{ 410, "{\"reason\":\"Unregistered\"}", VERDICT_GONE,
		    "Unregistered" },
		{ 400, "{\"reason\":\"BadDeviceToken\"}", VERDICT_GONE,
		    "BadDeviceToken" },
		{ 403, "{\"reason\":\"BadCertificate\"}", VERDICT_CONFIG,
		    "BadCertificate" },
		{ 503, "", VERDICT_TEMPORARY, "503" },
		{ 0, "connection failed", VERDICT_TEMPORARY, "send" },
		{ 0, HTTPC_ADDRESS_REFUSED, VERDICT_TEMPORARY,
		    "address_refused" },
	};
	struct fake_req *r;
	size_t i, from;

	(void)state;
	engine_start(false, NULL);
	assert_true(push_enabled(F.e, push_provider_of(TOKEN_APNS)));
	assert_true(push_enabled(F.e, push_provider_of(TOKEN_WEBPUSH)));
	assert_true(push_enabled(F.e, push_provider_of(TOKEN_UBPORTS)));
	assert_false(push_enabled(F.e, push_provider_of(TOKEN_FCM)));
	assert_string_equal(push_provider_label(push_provider_of(
	    TOKEN_APNS_SANDBOX)), "APNS");
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		from = F.nreq;
		send_push(APNS_HEX, 100 + i);
		assert_int_equal(push_in_flight(F.e), 1);
		r = sent(from, "https://apns.test/3/device/" APNS_HEX);
		assert_no_verdict(100 + i);
		answer(r, rows[i].status, rows[i].body, -1);
		assert_verdict(100 + i, rows[i].want, rows[i].reason);
		assert_int_equal(push_in_flight(F.e), 0);
	}
	/* A sandbox token goes to the sandbox; a heartbeat is APNs's. */
	from = F.nreq;
	send_kind(PUSH_HEARTBEAT, "sandbox:" APNS_HEX, 200);
	answer(sent(from, "https://sandbox.apns.test/3/device/" APNS_HEX),
	    200, "", -1);
	assert_verdict(200, VERDICT_OK, "200");
}

/* What push_send refuses, and what a provider decides without sending. */
static void
test_refusals(void **state)
{
	struct token t;
	char err[ERR_LEN];
	size_t from;

	(void)state;
	engine_start(false, NULL);
	parse_token(FCM_TOK, &t);
	assert_int_equal(push_send(F.e, PUSH_VISIBLE, &t, NULL, NULL, err),
	    -1);
	assert_string_equal(err, "FCM is not configured");
	parse_token(UB_TOK, &t);
	assert_int_equal(push_send(F.e, PUSH_HEARTBEAT, &t, NULL, NULL, err),
	    -1);
	assert_string_equal(err, "UBports takes no heartbeats");
	assert_int_equal(push_in_flight(F.e), 0);

	/* Web Push's address rules, before any request. */
	from = F.nreq;
	send_push(WP_HTTP, 1);
	send_push(WP_LOOPBACK, 2);
	assert_verdict(1, VERDICT_GONE, "insecure_endpoint");
	assert_verdict(2, VERDICT_GONE, "address_refused");
	assert_int_equal(F.nreq, from);
	/* A transport that cannot take the request: 500, not lost. */
	F.refuse_send = true;
	send_push(UB_TOK, 3);
	assert_verdict(3, VERDICT_TEMPORARY, "send");
	F.refuse_send = false;
	assert_int_equal(push_in_flight(F.e), 0);
}

/* Each provider's transport: its own kind's settings from its table,
 * the engine's defaults for the rest; Web Push's address policy. */
static void
test_transport_configs(void **state)
{
	struct sockaddr_in sin;
	struct fake_transport *apns = NULL, *wp = NULL, *ub = NULL;
	size_t i;

	(void)state;
	engine_start(false, NULL);
	/* One transport each for APNs, Web Push, UBports (FCM is off). */
	assert_int_equal(F.nt, 3);
	for (i = 0; i < F.nt; i++) {
		assert_string_equal(F.t[i]->cfg.h2.ca_file,
		    "/nonexistent/ca.pem");
		assert_int_equal(F.t[i]->cfg.http.timeout_ms, 20000);
		if (F.t[i]->cfg.h2.max_streams == 7)
			apns = F.t[i];
		else if (F.t[i]->cfg.http.allow_address != NULL)
			wp = F.t[i];
		else
			ub = F.t[i];
	}
	assert_non_null(apns);
	assert_non_null(wp);
	assert_non_null(ub);
	assert_null(apns->cfg.h2.client_cert);		/* token auth */
	assert_non_null(apns->cfg.h2.conn_failed);
	assert_string_equal(wp->cfg.http.protocols, "https");
	assert_null(ub->cfg.http.protocols);
	/* The policy the transport asks before connecting. */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	assert_false(wp->cfg.http.allow_address((struct sockaddr *)&sin,
	    sizeof(sin), wp->cfg.http.allow_address_arg));
	inet_pton(AF_INET, "93.184.215.14", &sin.sin_addr);
	assert_true(wp->cfg.http.allow_address((struct sockaddr *)&sin,
	    sizeof(sin), wp->cfg.http.allow_address_arg));
}

/* A provider-wide pause: UBports says 429 with Retry-After; its next
 * pushes, any token, wait (here: refused at once, max_wait 0: 503 with
 * the pause's rest as Retry-After, nothing sent) until the pause is over;
 * other providers go on. A push that went out carries when (sent_ms), one
 * refused carries none. */
static void
test_provider_pause(void **state)
{
	size_t from;

	(void)state;
	engine_start(false, NULL);
	from = F.nreq;
	send_push(UB_TOK, 1);
	answer(sent(from, "https://push.ubports.com/notify"), 429, "", 2);
	assert_verdict(1, VERDICT_PAUSE, "429");
	assert_int_equal(verdict(1)->retry_after_ms, 2000);
	assert_metric("provider_paused_total{provider=\"UBports\"} 1\n");

	assert_int_equal(verdict(1)->sent_ms, T0_MS);
	from = F.nreq;
	F.wall += 500;
	F.mono += 500;
	send_push(UB_TOK2, 2);
	assert_verdict(2, VERDICT_OVERLOAD, "queue_wait");
	assert_int_equal(verdict(2)->retry_after_ms, 1500);
	assert_int_equal(verdict(2)->sent_ms, 0);
	assert_int_equal(F.nreq, from);
	F.mono -= 500;
	assert_metric("provider_rate_limited_total{provider=\"UBports\"} 1\n");
	send_push(APNS_HEX, 3);
	answer(sent(from, "https://apns.test/"), 200, "", -1);
	assert_verdict(3, VERDICT_OK, "200");

	/* Over: sent again. */
	F.mono += 2000;
	from = F.nreq;
	send_push(UB_TOK2, 4);
	answer(sent(from, "https://push.ubports.com/notify"), 200,
	    "{\"ok\":true}", -1);
	assert_verdict(4, VERDICT_OK, "200");
	/* Without Retry-After a pause lasts a second; a 5xx with one is
	 * TEMPORARY and carries it (an owed push waits for it). */
	from = F.nreq;
	send_push(UB_TOK, 5);
	answer(sent(from, "https://push.ubports.com/"), 503,
	    "{\"error\":\"unavailable\"}", -1);
	assert_verdict(5, VERDICT_PAUSE, "unavailable");
	assert_int_equal(verdict(5)->retry_after_ms, 1000);
	F.mono += 1000;
	from = F.nreq;
	send_push(UB_TOK, 6);
	answer(sent(from, "https://push.ubports.com/"), 500, "", 30);
	assert_verdict(6, VERDICT_TEMPORARY, "500");
	assert_int_equal(verdict(6)->retry_after_ms, 30000);
}

/* Web Push pauses only the origin that asked (anyone can make an
 * endpoint answer 429), and the push service's Retry-After rules. */
static void
test_origin_pause(void **state)
{
	size_t from;

	(void)state;
	engine_start(false, NULL);
	from = F.nreq;
	send_push(WP_A, 1);
	answer(sent(from, "https://push-a.example/s/1"), 429, "", 60);
	assert_verdict(1, VERDICT_PAUSE, "429");
	assert_int_equal(verdict(1)->retry_after_ms, 60000);
	assert_metric("provider_paused_total{provider=\"WebPush\"} 1\n");

	/* Another endpoint of origin A: paused, nothing sent. */
	from = F.nreq;
	send_push(WP_A2, 2);
	assert_verdict(2, VERDICT_PAUSE, "paused");
	assert_int_equal(F.nreq, from);
	/* Origin B is not. */
	send_push(WP_B, 3);
	answer(sent(from, "https://push-b.example/s/1"), 201, "", -1);
	assert_verdict(3, VERDICT_OK, "201");
	/* Web Push as a whole was not paused. */
	assert_metric("provider_rate_limited_total{provider=\"WebPush\"} 0\n");

	/* A is back after the minute. */
	F.mono += 60000;
	from = F.nreq;
	send_push(WP_A2, 4);
	answer(sent(from, "https://push-a.example/s/2"), 201, "", -1);
	assert_verdict(4, VERDICT_OK, "201");
}

/* APNs's ExpiredProviderToken: the JWT is replaced and the push sent
 * once more only when Apple would take a new one (20 minutes), and only
 * once; a push that carried a JWT another answer replaced is retried
 * with the new one. */
static void
test_apns_renew_auth(void **state)
{
	struct fake_req *r, *r2;
	char first[1024];
	size_t from;

	(void)state;
	engine_start(false, NULL);
	from = F.nreq;
	send_push(APNS_HEX, 1);
	r = sent(from, "https://apns.test/");
	assert_non_null(r->auth);
	snprintf(first, sizeof(first), "%s", r->auth);
	/* Younger than 20 minutes: not renewed, not retried; a JWT that
	 * young refused as expired is this host's clock (issue 16): a
	 * configuration failure, counted. */
	F.wall += 19 * MIN_MS;
	from = F.nreq;
	answer(r, 403, EXPIRED, -1);
	assert_verdict(1, VERDICT_CONFIG, "ExpiredProviderToken");
	assert_int_equal(F.nreq, from);

	/* Old enough: renewed, retried once with the new JWT. */
	F.wall += 2 * MIN_MS;
	send_push(APNS_HEX, 2);
	send_push(APNS_HEX2, 3);
	r = sent(from, "https://apns.test/3/device/" APNS_HEX);
	r2 = sent(from, "https://apns.test/3/device/" APNS_HEX2);
	assert_string_equal(r->auth, first);
	assert_string_equal(r2->auth, first);
	from = F.nreq;
	answer(r, 403, EXPIRED, -1);
	assert_no_verdict(2);
	r = sent(from, "https://apns.test/3/device/" APNS_HEX);
	assert_string_not_equal(r->auth, first);
	/* The other push carried the old JWT: retried with the new one,
	 * which is not replaced again (Apple would refuse it). */
	from = F.nreq;
	answer(r2, 403, EXPIRED, -1);
	r2 = sent(from, "https://apns.test/3/device/" APNS_HEX2);
	assert_string_equal(r2->auth, r->auth);
	/* A second refusal is final. */
	from = F.nreq;
	answer(r, 403, EXPIRED, -1);
	assert_verdict(2, VERDICT_CONFIG, "ExpiredProviderToken");
	answer(r2, 200, "", -1);
	assert_verdict(3, VERDICT_OK, "200");
	assert_int_equal(F.nreq, from);
}

/* FCM: pushes wait for one access token request; a 401 drops the token
 * and the push is sent once more with a new one; failed renewals. */
static void
test_fcm_access_token(void **state)
{
	struct fake_req *tok, *r1, *r2, *r3;
	size_t from;

	(void)state;
	engine_start(true, NULL);
	assert_int_equal(F.nt, 5);	/* FCM's sends and its renewals */
	send_push(FCM_TOK, 1);
	send_push(FCM_TOK2, 2);
	send_push(FCM_TOK, 3);
	/* One renewal for all three, nothing sent yet. */
	tok = sent(0, OAUTH_URL);
	assert_int_equal(F.nreq, 1);
	assert_no_verdict(1);
	assert_int_equal(push_in_flight(F.e), 3);
	from = F.nreq;
	answer(tok, 200, FCM_ACCESS(1), -1);
	assert_int_equal(F.nreq, from + 3);
	for (size_t i = from; i < F.nreq; i++) {
		assert_string_equal(F.req[i].url, "https://fcm.test/v1/"
		    "projects/chatmail-test-42/messages:send");
		assert_string_equal(F.req[i].auth, "Bearer ya29.tok1");
	}
	r1 = &F.req[from];
	r2 = &F.req[from + 1];
	r3 = &F.req[from + 2];
	answer(r1, 200, "{\"name\":\"projects/x/messages/1\"}", -1);
	assert_verdict(1, VERDICT_OK, "200");

	/* 401: the token is dropped, a new one fetched, the push sent
	 * again with it; the other push refused with the same token waits
	 * for the same renewal. */
	F.wall += 2 * MIN_MS;
	from = F.nreq;
	answer(r2, 401, "", -1);
	tok = sent(from, OAUTH_URL);
	answer(r3, 401, "", -1);
	assert_int_equal(F.nreq, from + 1);
	from = F.nreq;
	answer(tok, 200, FCM_ACCESS(2), -1);
	assert_int_equal(F.nreq, from + 2);
	r2 = &F.req[from];
	r3 = &F.req[from + 1];
	assert_string_equal(r2->auth, "Bearer ya29.tok2");
	assert_string_equal(r3->auth, "Bearer ya29.tok2");
	/* Once only. */
	from = F.nreq;
	answer(r2, 401, "", -1);
	assert_verdict(2, VERDICT_CONFIG, "401");
	answer(r3, 404, "{\"error\":{\"status\":\"NOT_FOUND\",\"details\":"
	    "[{\"@type\":\"type.googleapis.com/google.firebase.fcm.v1."
	    "FcmError\",\"errorCode\":\"UNREGISTERED\"}]}}", -1);
	assert_verdict(3, VERDICT_GONE, "UNREGISTERED");
	assert_int_equal(F.nreq, from);

	/* The token endpoint refuses our key: the push that waited is
	 * CONFIG, and the next one fails at once while renewals back off. */
	F.wall += 2 * MIN_MS;
	send_push(FCM_TOK, 4);
	from = F.nreq;
	answer(sent(from - 1, "https://fcm.test/"), 401, "", -1);
	tok = sent(from, OAUTH_URL);
	from = F.nreq;
	answer(tok, 400, "{\"error\":\"invalid_grant\"}", -1);
	assert_verdict(4, VERDICT_CONFIG, "oauth");
	send_push(FCM_TOK, 5);
	assert_verdict(5, VERDICT_TEMPORARY, "send");
	assert_int_equal(F.nreq, from);
	/* After the back-off, a renewal with no answer: TEMPORARY. */
	F.wall += 1000;
	send_push(FCM_TOK, 6);
	tok = sent(from, OAUTH_URL);
	answer(tok, 0, "connection refused", -1);
	assert_verdict(6, VERDICT_TEMPORARY, "oauth");
	assert_int_equal(push_in_flight(F.e), 0);
}

/* A renewal that cannot even start (the key cannot sign): the push that
 * waited for it is CONFIG at once. */
static void
test_fcm_unsignable(void **state)
{
	(void)state;
	engine_start(true, "unsignable");
	send_push(FCM_TOK, 1);
	assert_verdict(1, VERDICT_CONFIG, "oauth");
	assert_int_equal(F.nreq, 0);
}

/* Runs the loop long enough (real time) for the engine's renewal check,
 * a timer of a second, to run at least once. */
static void
wait_renew_check(void)
{
	struct timeval tv = { 1, 100000 };

	event_base_loopexit(F.base, &tv);
	event_base_dispatch(F.base);
	spin();
}

/* Nothing fetched over the network (no FCM key): ready at once, and
 * push_engine_prefetch sends nothing. */
static void
test_ready_without_fetch(void **state)
{
	(void)state;
	engine_start(false, NULL);
	assert_true(push_ready(F.e));	/* APNs, Web Push, UBports */
	push_engine_prefetch(F.e);
	spin();
	assert_int_equal(F.nreq, 0);
	assert_true(push_ready(F.e));
}

/* push_engine_prefetch: FCM's access token is fetched without a push
 * (at the next loop pass), and push_ready turns true with it; it is
 * renewed ahead of its expiry, and after a failed renewal again once the
 * back-off is over, still without a push. */
static void
test_prefetch_and_ready(void **state)
{
	struct fake_req *tok;
	size_t from;

	(void)state;
	engine_start(true, NULL);
	assert_false(push_ready(F.e));
	push_engine_prefetch(F.e);
	assert_int_equal(F.nreq, 0);	/* not inside the call */
	spin();
	tok = sent(0, OAUTH_URL);
	assert_int_equal(F.nreq, 1);
	assert_false(push_ready(F.e));
	answer(tok, 200, FCM_ACCESS(1), -1);
	assert_true(push_ready(F.e));
	/* The first push waits for no renewal. */
	send_push(FCM_TOK, 1);
	assert_int_equal(F.nreq, 2);
	assert_string_equal(sent(1, "https://fcm.test/")->auth,
	    "Bearer ya29.tok1");
	answer(&F.req[1], 200, "{\"name\":\"projects/x/messages/1\"}", -1);
	assert_verdict(1, VERDICT_OK, "200");

	/* 5 minutes before its expiry (3599 s): renewed on the timer
	 * alone, while the old token stays in use. */
	F.wall += 3599 * 1000 - 5 * MIN_MS;
	from = F.nreq;
	wait_renew_check();
	tok = sent(from, OAUTH_URL);
	assert_true(push_ready(F.e));
	/* That renewal fails: none during the back-off (1 s)... */
	answer(tok, 0, "connection refused", -1);
	from = F.nreq;
	wait_renew_check();
	assert_int_equal(F.nreq, from);
	assert_true(push_ready(F.e));
	/* ...and once the token has run out, not ready until the next
	 * renewal answers. */
	F.wall += 5 * MIN_MS;
	assert_false(push_ready(F.e));
	wait_renew_check();
	tok = sent(from, OAUTH_URL);
	assert_false(push_ready(F.e));
	answer(tok, 200, FCM_ACCESS(2), -1);
	assert_true(push_ready(F.e));
	assert_int_equal(push_in_flight(F.e), 0);
}

/* At the end every push still running or waiting is handed to cancel,
 * once: in a transport, waiting for a credential, with its verdict not
 * yet handed back, behind a pause. */
static void
test_cancel_at_free(void **state)
{
	static const uintptr_t want[] = { 1, 2, 3, 5 };
	size_t from;

	(void)state;
	engine_start(true, NULL);
	send_push(APNS_HEX, 1);			/* in the transport */
	send_push(FCM_TOK, 2);			/* waits for a token */
	send_push(WP_HTTP, 3);			/* its verdict is deferred */
	from = F.nreq;
	send_push(UB_TOK, 4);
	answer(sent(from, "https://push.ubports.com/"), 429, "", 5);
	send_push(UB_TOK2, 5);			/* waits out the pause */
	assert_int_equal(F.ndone, 1);		/* 4's, from the answer */
	push_engine_free(F.e, on_cancel);
	F.e = NULL;
	assert_int_equal(F.ncancelled, 4);
	for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
		size_t n = 0;

		for (size_t i = 0; i < F.ncancelled; i++)
			n += F.cancelled[i] == (void *)want[w];
		if (n != 1)
			fail_msg("push %lu cancelled %zu times",
			    (unsigned long)want[w], n);
	}
	assert_int_equal(F.ndone, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_verdicts, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_transport_configs, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_provider_pause, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_origin_pause, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_apns_renew_auth, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fcm_access_token, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fcm_unsignable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel_at_free, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ready_without_fetch, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_prefetch_and_ready, setup,
		    teardown),
	};

	log_set_level(LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
