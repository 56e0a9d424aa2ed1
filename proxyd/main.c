/*
 * proxyd: the central chatmail push proxy. Parses the options (the Rust
 * notifiers service's names where it has them), loads credentials so
 * that a wrong file or password fails at start, runs the loop until
 * SIGTERM/SIGINT, tears down. The request flows are in proxy.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "cli.h"
#include "cliopt.h"
#include "credentials.h"
#include "evloop.h"
#include "log.h"
#include "proxy.h"
#include "xmalloc.h"

static const char proxyd_usage[] =
"usage: proxyd --openpgp-keyring-path PATH [options]\n"
"\n"
"Central push proxy for chatmail relays: decrypts device tokens, debounces,\n"
"and wakes devices through Apple APNs, Google FCM, Web Push (UnifiedPush) or\n"
"UBports; sends heartbeats to registered iOS devices.\n"
"\n"
"  -k, --openpgp-keyring-path PATH  armored secret keys (required)\n"
"      --host ADDR             listen address (default 127.0.0.1)\n"
"  -p, --port PORT             listen port (default 9000)\n"
"      --reuse-port            share --host:--port with other proxyd on this\n"
"                              host that have it too (SO_REUSEPORT; docs/\n"
"                              proxyd.md, \"Health and readiness\")\n"
"      --db PATH               heartbeat registrations and owed pushes\n"
"                              (default notifiers.db)\n"
"      --metrics HOST:PORT     serve OpenMetrics at http://HOST:PORT/metrics\n"
"      --interval DURATION     heartbeat period (default 20m; 0: no\n"
"                              heartbeats, /register answers 200, stores\n"
"                              nothing)\n"
"      --debounce DURATION     one push per token per window (default 10s)\n"
"      --owed-deadline DURATION  keep retrying a push a 200 promised this\n"
"                              long (default 5h), then drop it (logged)\n"
"      --owed-max N            pushes owed at once (default 1000000)\n"
"      --owed-max-bytes N      memory they may hold (default 268435456)\n"
"      --owed-retry-min DURATION  first retry after a provider failure\n"
"                              (default 1s; doubles up to --owed-retry-max)\n"
"      --owed-retry-max DURATION  (default 5m)\n"
"      --certificate-file P12  APNs client certificate\n"
"      --password PW           its password\n"
"      --password-file PATH    read the password from a file instead (a\n"
"                              command line is visible to every user)\n"
"      --topic TOPIC           apns-topic (default: the certificate's UID)\n"
"      --apns-key-path P8      APNs token auth key (instead of a certificate)\n"
"      --apns-key-id ID        its Key ID\n"
"      --apns-team-id ID       the Team ID\n"
"      --apns-production-url URL  (default https://api.push.apple.com)\n"
"      --apns-sandbox-url URL     (default https://api.sandbox.push.apple.com)\n"
"      --fcm-key-path JSON     FCM service-account key (Android pushes)\n"
"      --fcm-api-url URL       (default https://fcm.googleapis.com)\n"
"      --fcm-token-url URL     OAuth2 token endpoint (default: the key's)\n"
"      --vapid-key-path PEM    VAPID P-256 private key (Web Push)\n"
"      --vapid-subject URI     mailto: or https: contact for push services\n"
"      --print-vapid-public-key  print the VAPID public key and exit\n"
"      --ubports-url URL       (default https://push.ubports.com/notify)\n"
"      --ubports-appid ID      (default Delta Touch's)\n"
"      --rate-limit PROVIDER=N/s  pushes per second toward apns, fcm,\n"
"                              webpush or ubports (0: unlimited; repeatable)\n"
"Push path under load (docs/proxyd.md, \"Fairness and overload\"):\n"
"      --rate-limit-queue N    pushes waiting for a provider's rate limit\n"
"                              (default 10000), then 503\n"
"      --rate-limit-client-queue N  of those, one client's (default 256),\n"
"                              served round-robin with the others'\n"
"      --rate-limit-wait DURATION  the longest wait for one (default\n"
"                              500ms): one that would wait longer gets 503\n"
"      --max-pushes-in-flight N  pushes with the providers (default 10000);\n"
"                              a /notify that would add one gets 503\n"
"      --webpush-allow-private allow http:// and non-public Web Push\n"
"                              endpoints (tests only)\n"
"      --ca-file PATH          CA certificates for the providers\n"
"      --workers N             decryption threads (default 2)\n"
"      --cache-size N          decrypted tokens kept (default 100000)\n"
"      --cache-bytes SIZE      their memory at most (default 64M)\n"
"      --require-encrypted     refuse plain (not openpgp:) tokens: /notify\n"
"                              410, /register 400 (default: take them)\n"
"      --max-registrations N   heartbeat registrations kept (default\n"
"                              5000000; 0: no bound), then 503\n"
"      --register-rate N/s|N/min  registrations per client address, in\n"
"                              bursts of N (default 60/min), then 429\n"
"      --register-clients N    client addresses tracked for it (default\n"
"                              100000; the least recent forgotten)\n"
"      --timeout DURATION      provider request limit (default 20s)\n"
"HTTP intake (docs/proxyd.md, \"Intake bounds\"):\n"
"      --max-connections N     open at once (default 20000, at most the open\n"
"                              files limit less 256); past it the oldest\n"
"                              connection still sending its request gives way\n"
"      --max-connections-per-ip N  per direct peer (default 5000)\n"
"      --trusted-proxy ADDR[/BITS][,...]  reverse proxies: not limited per\n"
"                              peer; their requests count against the last\n"
"                              X-Forwarded-For address\n"
"      --max-requests-per-client N  in progress per client (default 256),\n"
"                              then 429\n"
"      --request-timeout DURATION  a request's headers and body, in all\n"
"                              (default 10s)\n"
"      --idle-timeout DURATION  a kept-alive connection without a request\n"
"                              (default 30s)\n"
"      --max-body-size SIZE    request body (default 16k), then 413\n"
"      --sync normal|full      SQLite durability (default normal)\n"
"Shared state, for several instances (docs/scaling.md):\n"
"      --redis URL             redis://[user:password@]host:port[/db] or\n"
"                              unix:/path[?db=N]: debounce, owed pushes,\n"
"                              heartbeats and rate limits shared through it\n"
"      --redis-sentinel HOST:PORT[,HOST:PORT...]  ask these sentinels for\n"
"                              the master instead (with --redis-master)\n"
"      --redis-master NAME     the master's name in Sentinel\n"
"      --redis-password-file PATH  the password (and user: USER:PASSWORD)\n"
"                              from a file, e.g. a systemd credential\n"
"      --redis-timeout DURATION  every wait for Redis (default 250ms); past\n"
"                              it proxyd serves alone until Redis answers\n"
"      --redis-max-pending N   commands in flight (default 10000)\n"
"  -l, --log-level LEVEL       error, warn, info, debug (default info)\n"
"  -h, --help                  show this help\n";

enum {
	OPT_HOST = 256, OPT_DB, OPT_METRICS, OPT_INTERVAL, OPT_DEBOUNCE,
	OPT_CERT, OPT_PASSWORD, OPT_TOPIC, OPT_KEY, OPT_KEY_ID, OPT_TEAM_ID,
	OPT_PROD_URL, OPT_SANDBOX_URL, OPT_CA, OPT_WORKERS, OPT_CACHE,
	OPT_TIMEOUT, OPT_SYNC, OPT_PASSWORD_FILE, OPT_FCM_KEY, OPT_FCM_API,
	OPT_FCM_TOKEN, OPT_VAPID_KEY, OPT_VAPID_SUBJECT, OPT_PRINT_VAPID,
	OPT_UBPORTS_URL, OPT_UBPORTS_APPID, OPT_RATE_LIMIT, OPT_ALLOW_PRIVATE,
	OPT_OWED_DEADLINE, OPT_OWED_MAX, OPT_OWED_MAX_BYTES, OPT_OWED_RETRY_MIN,
	OPT_OWED_RETRY_MAX, OPT_MAX_CONNS, OPT_MAX_PER_IP, OPT_TRUSTED_PROXY,
	OPT_MAX_CLIENT_REQS, OPT_REQUEST_TIMEOUT, OPT_IDLE_TIMEOUT,
	OPT_MAX_BODY,
	OPT_CACHE_BYTES, OPT_REQUIRE_ENCRYPTED, OPT_MAX_REGISTRATIONS,
	OPT_REGISTER_RATE, OPT_REGISTER_CLIENTS,
	OPT_LIMIT_QUEUE, OPT_LIMIT_CLIENT_QUEUE, OPT_LIMIT_WAIT,
	OPT_MAX_PUSHES, OPT_REUSE_PORT,
	OPT_REDIS, OPT_REDIS_SENTINEL, OPT_REDIS_MASTER, OPT_REDIS_PASSWORD_FILE,
	OPT_REDIS_TIMEOUT, OPT_REDIS_MAX_PENDING,
};

#define PROXYD_REDIS_TIMEOUT_MS		250
/* Commands waiting for Redis's answer: at 30,000 pushes/s, two each,
 * a 250 ms timeout has 15,000 in flight at most. */
#define PROXYD_REDIS_MAX_PENDING	10000

#define PROXYD_LIMIT_QUEUE	10000	/* pushes waiting per provider */
/* One client's pushes waiting per provider: a relay's notifierd has 256
 * requests in flight by default (--max-requests-per-client). */
#define PROXYD_LIMIT_CLIENT_QUEUE	256
/* Pushes with the providers at once, all of them: at 30,000 pushes/s
 * and Apple's ~50 ms, 1,500 are; the rest is room for slow answers. */
#define PROXYD_MAX_PUSHES_IN_FLIGHT	10000
/* Streams to Apple before its SETTINGS say how many (500-1500 are
 * common; a token-auth connection starts at 1). */
#define PROXYD_APNS_STREAMS	1000
/* The longest a push may wait for its provider's rate limit: a push that
 * would wait longer gets 503 at once (the relay retries), rather than
 * being accepted and held. Short, as under sustained overload a standing
 * queue adds only delay; a provider's short pause still fits. */
#define PROXYD_LIMIT_WAIT_MS	500
/* The decryption cache's memory: 100,000 real tokens take ~15 MB; the
 * rest is room, while a flood of ciphertexts cannot take more. */
#define PROXYD_CACHE_BYTES	((size_t)64 * 1024 * 1024)
/* Heartbeat registrations: every iOS device of the service is a row
 * (~120 bytes with its index), so 5 million is ~600 MB of database;
 * notifications.delta.chat has far fewer devices. */
#define PROXYD_MAX_REGISTRATIONS	5000000
/* Registrations per client address: an app registers at start and on
 * each new token, and many devices may share one address (carrier
 * NAT); an attacker's single address adds 86,400 rows a day at most. */
#define PROXYD_REGISTER_PER_MIN	60
/* Addresses with a registration bucket (~100 bytes each). */
#define PROXYD_REGISTER_CLIENTS	100000
/* Descriptors kept from the HTTP intake for everything else (providers'
 * connections, the database, the metrics listener, the loop's own): at
 * most this many, at most half the limit. */
#define PROXYD_FD_RESERVE	256

struct proxyd_options {
	struct proxy_config		 cfg;
	enum log_level			 level;
	struct credentials_options	 cred;
	bool				 print_vapid;
};

static _Noreturn void
proxyd_usage_exit(int status)
{
	fputs(proxyd_usage, status == 0 ? stdout : stderr);
	exit(status);
}



/* --rate-limit PROVIDER=N/s (or N/m, N/min); PROVIDER by its name in the
 * table of providers (providers.h). */
static void
proxyd_rate_limit(const char *arg, struct push_config *push)
{
	const struct provider_ops *ops = NULL;
	const char *eq = strchr(arg, '=');
	char names[128], *end;
	size_t i, n = 0;
	double rate;

	if (eq != NULL)
		ops = providers_find(arg, (size_t)(eq - arg));
	if (ops == NULL) {
		names[0] = '\0';
		for (i = 0; i < providers_count && n < sizeof(names); i++)
			n += (size_t)snprintf(names + n, sizeof(names) - n,
			    "%s%s", i > 0 ? ", " : "", providers[i]->name);
		fatalx("--rate-limit %s: expected PROVIDER=N/s, PROVIDER one "
		    "of %s", arg, names);
	}
	rate = strtod(eq + 1, &end);
	if (end == eq + 1 || rate < 0 || rate > 1e7)
		fatalx("--rate-limit %s: N must be a number from 0 to "
		    "10000000", arg);
	if (strcmp(end, "/m") == 0 || strcmp(end, "/min") == 0)
		rate /= 60;
	else if (strcmp(end, "/s") != 0 && *end != '\0')
		fatalx("--rate-limit %s: expected N/s or N/min", arg);
	push->limits[providers_index(ops)].rate = rate;
}

/* The HTTP intake's flags (api.h's struct api_limits). */
static void
proxyd_intake_option(int ch, const char *arg, struct api_limits *l)
{
	char err[ERR_LEN];
	uint64_t size;

	switch (ch) {
	case OPT_MAX_CONNS:
		l->max_connections = (unsigned int)cliopt_uint(
		    "max-connections", arg, 1, 10000000);
		break;
	case OPT_MAX_PER_IP:
		l->max_per_ip = (unsigned int)cliopt_uint(
		    "max-connections-per-ip", arg, 1, 10000000);
		break;
	case OPT_TRUSTED_PROXY:
		if (l->trusted_proxies != NULL)
			fatalx("--trusted-proxy given twice: list the "
			    "addresses in one, comma-separated");
		l->trusted_proxies = arg;	/* api_new checks it */
		break;
	case OPT_MAX_CLIENT_REQS:
		l->max_requests_per_client = (unsigned int)cliopt_uint(
		    "max-requests-per-client", arg, 1, 10000000);
		break;
	case OPT_REQUEST_TIMEOUT:
		l->request_timeout_ms = cliopt_duration_ms("request-timeout",
		    arg);
		break;
	case OPT_IDLE_TIMEOUT:
		l->idle_timeout_ms = cliopt_duration_ms("idle-timeout", arg);
		break;
	case OPT_MAX_BODY:
		if (cli_parse_size(arg, &size, err) < 0)
			fatalx("--max-body-size: %s", err);
		if (size < 1 || size > 1024 * 1024)
			fatalx("--max-body-size: 1 byte to 1M");
		l->max_body_bytes = (size_t)size;
		break;
	}
}

/* N/s or N/min: a rate per second, and N as the burst. */
static void
proxyd_register_rate(const char *arg, struct proxy_config *c)
{
	char *end;
	double n = strtod(arg, &end);

	if (end == arg || n < 1 || n > 1e6)
		fatalx("--register-rate %s: N must be a number from 1 to "
		    "1000000", arg);
	if (strcmp(end, "/m") == 0 || strcmp(end, "/min") == 0)
		c->register_rate = n / 60;
	else if (strcmp(end, "/s") == 0)
		c->register_rate = n;
	else
		fatalx("--register-rate %s: expected N/s or N/min", arg);
	c->register_burst = n;
}

/* The bounds on what a client can make proxyd hold: the decryption
 * cache, plain tokens, registrations (docs/proxyd.md). */
static void
proxyd_bounds_option(int ch, const char *arg, struct proxy_config *c)
{
	switch (ch) {
	case OPT_CACHE_BYTES:
		c->cache_bytes = (size_t)cliopt_size("cache-bytes", arg,
		    65536, (uint64_t)1 << 40);
		break;
	case OPT_REQUIRE_ENCRYPTED:
		c->require_encrypted = true;
		break;
	case OPT_MAX_REGISTRATIONS:
		c->max_registrations = cliopt_uint("max-registrations", arg,
		    0, (uint64_t)1 << 40);
		break;
	case OPT_REGISTER_RATE:
		proxyd_register_rate(arg, c);
		break;
	case OPT_REGISTER_CLIENTS:
		c->register_clients = (size_t)cliopt_uint("register-clients",
		    arg, 1, 100000000);
		break;
	}
}

/* The push path's bounds under load (docs/proxyd.md, "Fairness and
 * overload"): every provider's queue, and the pushes in flight. */
static void
proxyd_overload_option(int ch, const char *arg, struct proxy_config *c)
{
	uint64_t v = 0;
	int64_t ms = 0;

	switch (ch) {
	case OPT_LIMIT_QUEUE:
		v = cliopt_uint("rate-limit-queue", arg, 1, 10000000);
		break;
	case OPT_LIMIT_CLIENT_QUEUE:
		v = cliopt_uint("rate-limit-client-queue", arg, 1, 10000000);
		break;
	case OPT_LIMIT_WAIT:
		ms = cliopt_duration_ms("rate-limit-wait", arg);
		if (ms < 1)
			fatalx("--rate-limit-wait: at least 1ms");
		break;
	case OPT_MAX_PUSHES:
		c->max_pushes_in_flight = (size_t)cliopt_uint(
		    "max-pushes-in-flight", arg, 1, 10000000);
		return;
	}
	for (size_t p = 0; p < providers_count; p++) {
		struct ratelimit_config *rc = &c->push.limits[p];

		if (ch == OPT_LIMIT_QUEUE)
			rc->max_queue = (size_t)v;
		else if (ch == OPT_LIMIT_CLIENT_QUEUE)
			rc->max_client_queue = (size_t)v;
		else
			rc->max_wait_ms = ms;
	}
}

/* Keeps the intake below the open files limit, with PROXYD_FD_RESERVE
 * for the rest: out of descriptors, a push cannot reach its provider,
 * and at --max-connections slow clients give way to newcomers, which
 * running out of descriptors first would not do. */
static void
proxyd_fit_nofile(struct api_limits *l)
{
	uint64_t nofile, reserve, fit;

	nofile = evloop_raise_nofile((uint64_t)l->max_connections +
	    PROXYD_FD_RESERVE > 65536 ? (uint64_t)l->max_connections +
	    PROXYD_FD_RESERVE : 65536);
	reserve = nofile / 2 < PROXYD_FD_RESERVE ? nofile / 2 :
	    PROXYD_FD_RESERVE;
	fit = nofile - reserve;
	if (l->max_connections <= fit)
		return;
	log_info("proxy --max-connections %u lowered to %llu: the open "
	    "files limit is %llu", l->max_connections,
	    (unsigned long long)fit, (unsigned long long)nofile);
	l->max_connections = fit > 0 ? (unsigned int)fit : 1;
}

/* --interval: a duration, or 0 (with or without a unit): no heartbeats. */
static int64_t
proxyd_interval(const char *arg)
{
	char err[ERR_LEN];
	int64_t ms = -1;

	if (cli_parse_duration_ms(arg, &ms, err) == 0 && ms == 0)
		return 0;
	return cliopt_duration_ms("interval", arg);
}

/* --redis-password-file: "PASSWORD" or "USER:PASSWORD" on its first
 * line. */
static void
proxyd_redis_password(const char *path, struct redis_addr *a)
{
	char line[2 * REDIS_ADDR_SECRET_MAX + 4], *colon;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		fatal("--redis-password-file %s", path);
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	colon = strchr(line, ':');
	if (line[0] == '\0' || strlen(line) > 2 * REDIS_ADDR_SECRET_MAX ||
	    (colon != NULL && ((size_t)(colon - line) > REDIS_ADDR_SECRET_MAX ||
	    strlen(colon + 1) > REDIS_ADDR_SECRET_MAX)) ||
	    (colon == NULL && strlen(line) > REDIS_ADDR_SECRET_MAX))
		fatalx("--redis-password-file %s: one line, PASSWORD or "
		    "USER:PASSWORD, each at most %d bytes", path,
		    REDIS_ADDR_SECRET_MAX);
	/* The lengths were checked above. */
	if (colon != NULL) {
		memcpy(a->user, line, (size_t)(colon - line));
		a->user[colon - line] = '\0';
		memcpy(a->password, colon + 1, strlen(colon + 1) + 1);
	} else
		memcpy(a->password, line, strlen(line) + 1);
	OPENSSL_cleanse(line, sizeof(line));
}

/* The shared state's flags (proxy.h's redis_*). */
static void
proxyd_redis_option(int ch, const char *arg, struct proxy_config *c,
    const char **password_file)
{
	char err[ERR_LEN];
	int n;

	switch (ch) {
	case OPT_REDIS:
		if (redis_addr_parse(arg, &c->redis, err) < 0)
			fatalx("%s", err);
		c->redis_on = true;
		break;
	case OPT_REDIS_SENTINEL:
		if ((n = redis_sentinels_parse(arg, c->redis_sentinels,
		    REDIS_ADDR_SENTINELS, err)) < 0)
			fatalx("%s", err);
		c->redis_nsentinels = (size_t)n;
		c->redis_on = true;
		break;
	case OPT_REDIS_MASTER:
		c->redis_master = arg;
		break;
	case OPT_REDIS_PASSWORD_FILE:
		*password_file = arg;
		break;
	case OPT_REDIS_TIMEOUT:
		c->redis_timeout_ms = cliopt_duration_ms("redis-timeout", arg);
		if (c->redis_timeout_ms < 1)
			fatalx("--redis-timeout: at least 1ms");
		break;
	case OPT_REDIS_MAX_PENDING:
		c->redis_max_pending = cliopt_uint("redis-max-pending", arg, 1,
		    1000000);
		break;
	}
}

/* The shared state's flags together. */
static void
proxyd_redis_check(struct proxy_config *c, const char *password_file)
{
	if (c->redis_nsentinels > 0 && c->redis.ep.host[0] != '\0')
		fatalx("--redis and --redis-sentinel: one or the other");
	if (c->redis_nsentinels > 0 && c->redis_master == NULL)
		fatalx("--redis-sentinel needs --redis-master NAME");
	if (c->redis_master != NULL && c->redis_nsentinels == 0)
		fatalx("--redis-master goes with --redis-sentinel");
	if (password_file != NULL && !c->redis_on)
		fatalx("--redis-password-file goes with --redis or "
		    "--redis-sentinel");
	if (password_file != NULL)
		proxyd_redis_password(password_file, &c->redis);
}

static void
proxyd_parse(int argc, char **argv, struct proxyd_options *o)
{
	static const struct option longopts[] = {
		{ "openpgp-keyring-path", required_argument, NULL, 'k' },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "port", required_argument, NULL, 'p' },
		{ "reuse-port", no_argument, NULL, OPT_REUSE_PORT },
		{ "redis", required_argument, NULL, OPT_REDIS },
		{ "redis-sentinel", required_argument, NULL,
		    OPT_REDIS_SENTINEL },
		{ "redis-master", required_argument, NULL, OPT_REDIS_MASTER },
		{ "redis-password-file", required_argument, NULL,
		    OPT_REDIS_PASSWORD_FILE },
		{ "redis-timeout", required_argument, NULL, OPT_REDIS_TIMEOUT },
		{ "redis-max-pending", required_argument, NULL,
		    OPT_REDIS_MAX_PENDING },
		{ "db", required_argument, NULL, OPT_DB },
		{ "metrics", required_argument, NULL, OPT_METRICS },
		{ "interval", required_argument, NULL, OPT_INTERVAL },
		{ "debounce", required_argument, NULL, OPT_DEBOUNCE },
		{ "certificate-file", required_argument, NULL, OPT_CERT },
		{ "password", required_argument, NULL, OPT_PASSWORD },
		{ "password-file", required_argument, NULL, OPT_PASSWORD_FILE },
		{ "topic", required_argument, NULL, OPT_TOPIC },
		{ "apns-key-path", required_argument, NULL, OPT_KEY },
		{ "apns-key-id", required_argument, NULL, OPT_KEY_ID },
		{ "apns-team-id", required_argument, NULL, OPT_TEAM_ID },
		{ "apns-production-url", required_argument, NULL, OPT_PROD_URL },
		{ "apns-sandbox-url", required_argument, NULL, OPT_SANDBOX_URL },
		{ "fcm-key-path", required_argument, NULL, OPT_FCM_KEY },
		{ "fcm-api-url", required_argument, NULL, OPT_FCM_API },
		{ "fcm-token-url", required_argument, NULL, OPT_FCM_TOKEN },
		{ "vapid-key-path", required_argument, NULL, OPT_VAPID_KEY },
		{ "vapid-subject", required_argument, NULL, OPT_VAPID_SUBJECT },
		{ "print-vapid-public-key", no_argument, NULL,
		    OPT_PRINT_VAPID },
		{ "ubports-url", required_argument, NULL, OPT_UBPORTS_URL },
		{ "ubports-appid", required_argument, NULL, OPT_UBPORTS_APPID },
		{ "rate-limit", required_argument, NULL, OPT_RATE_LIMIT },
		{ "webpush-allow-private", no_argument, NULL,
		    OPT_ALLOW_PRIVATE },
		{ "ca-file", required_argument, NULL, OPT_CA },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "cache-size", required_argument, NULL, OPT_CACHE },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "sync", required_argument, NULL, OPT_SYNC },
		{ "owed-deadline", required_argument, NULL, OPT_OWED_DEADLINE },
		{ "owed-max", required_argument, NULL, OPT_OWED_MAX },
		{ "owed-max-bytes", required_argument, NULL,
		    OPT_OWED_MAX_BYTES },
		{ "owed-retry-min", required_argument, NULL,
		    OPT_OWED_RETRY_MIN },
		{ "owed-retry-max", required_argument, NULL,
		    OPT_OWED_RETRY_MAX },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONNS },
		{ "max-connections-per-ip", required_argument, NULL,
		    OPT_MAX_PER_IP },
		{ "trusted-proxy", required_argument, NULL, OPT_TRUSTED_PROXY },
		{ "max-requests-per-client", required_argument, NULL,
		    OPT_MAX_CLIENT_REQS },
		{ "request-timeout", required_argument, NULL,
		    OPT_REQUEST_TIMEOUT },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
		{ "max-body-size", required_argument, NULL, OPT_MAX_BODY },
		{ "cache-bytes", required_argument, NULL, OPT_CACHE_BYTES },
		{ "require-encrypted", no_argument, NULL,
		    OPT_REQUIRE_ENCRYPTED },
		{ "max-registrations", required_argument, NULL,
		    OPT_MAX_REGISTRATIONS },
		{ "register-rate", required_argument, NULL, OPT_REGISTER_RATE },
		{ "register-clients", required_argument, NULL,
		    OPT_REGISTER_CLIENTS },
		{ "rate-limit-queue", required_argument, NULL,
		    OPT_LIMIT_QUEUE },
		{ "rate-limit-client-queue", required_argument, NULL,
		    OPT_LIMIT_CLIENT_QUEUE },
		{ "rate-limit-wait", required_argument, NULL, OPT_LIMIT_WAIT },
		{ "max-pushes-in-flight", required_argument, NULL,
		    OPT_MAX_PUSHES },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct proxy_config *c = &o->cfg;
	const char *redis_password_file = NULL;
	int ch;

	memset(o, 0, sizeof(*o));
	c->host = "127.0.0.1";
	c->port = 9000;
	c->db_path = "notifiers.db";
	c->interval_ms = 20 * 60 * 1000;
	c->debounce_ms = 10 * 1000;
	c->owed_deadline_ms = (int64_t)5 * 3600 * 1000;	/* as the relay */
	c->owed_max = 1000 * 1000;
	c->owed_max_bytes = (size_t)256 * 1024 * 1024;
	c->owed_retry_min_ms = 1000;
	c->owed_retry_max_ms = 5 * 60 * 1000;
	c->workers = 2;
	c->cache_entries = 100000;
	c->cache_bytes = PROXYD_CACHE_BYTES;
	c->max_registrations = PROXYD_MAX_REGISTRATIONS;
	c->register_rate = PROXYD_REGISTER_PER_MIN / 60.0;
	c->register_burst = PROXYD_REGISTER_PER_MIN;
	c->register_clients = PROXYD_REGISTER_CLIENTS;
	c->push.timeout_ms = 20000;
	api_limits_default(&c->intake);
	c->push.providers.apns.streams = PROXYD_APNS_STREAMS;
	/* Each provider's published limits, or modesty where there are
	 * none (providers.h's table). */
	for (size_t p = 0; p < providers_count; p++) {
		c->push.limits[p].rate = providers[p]->default_rate;
		c->push.limits[p].max_queue = PROXYD_LIMIT_QUEUE;
		c->push.limits[p].max_client_queue =
		    PROXYD_LIMIT_CLIENT_QUEUE;
		c->push.limits[p].max_wait_ms = PROXYD_LIMIT_WAIT_MS;
	}
	c->max_pushes_in_flight = PROXYD_MAX_PUSHES_IN_FLIGHT;
	c->redis_timeout_ms = PROXYD_REDIS_TIMEOUT_MS;
	c->redis_max_pending = PROXYD_REDIS_MAX_PENDING;
	o->level = LOG_LEVEL_INFO;
	while ((ch = getopt_long(argc, argv, "k:p:l:h", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'k': c->keyring_path = optarg; break;
		case OPT_HOST: c->host = optarg; break;
		case 'p':
			c->port = (uint16_t)cliopt_uint("port", optarg, 0,
			    65535);
			break;
		case OPT_REUSE_PORT: c->reuse_port = true; break;
		case OPT_DB: c->db_path = optarg; break;
		case OPT_METRICS: c->metrics_addr = optarg; break;
		case OPT_INTERVAL:
			c->interval_ms = proxyd_interval(optarg);
			break;
		case OPT_DEBOUNCE:
			c->debounce_ms = cliopt_duration_ms("debounce", optarg);
			break;
		case OPT_OWED_DEADLINE:
			c->owed_deadline_ms = cliopt_duration_ms(
			    "owed-deadline", optarg);
			break;
		case OPT_OWED_MAX:
			c->owed_max = cliopt_uint("owed-max", optarg, 1,
			    100000000);
			break;
		case OPT_OWED_MAX_BYTES:
			c->owed_max_bytes = cliopt_uint("owed-max-bytes",
			    optarg, 65536, (uint64_t)1 << 40);
			break;
		case OPT_OWED_RETRY_MIN:
			c->owed_retry_min_ms = cliopt_duration_ms(
			    "owed-retry-min", optarg);
			break;
		case OPT_OWED_RETRY_MAX:
			c->owed_retry_max_ms = cliopt_duration_ms(
			    "owed-retry-max", optarg);
			break;
		case OPT_CERT: o->cred.p12_path = optarg; break;
		case OPT_PASSWORD: o->cred.password = optarg; break;
		case OPT_PASSWORD_FILE: o->cred.password_file = optarg; break;
		case OPT_TOPIC: c->push.providers.apns.topic = optarg; break;
		case OPT_KEY: o->cred.p8_path = optarg; break;
		case OPT_KEY_ID:
			c->push.providers.apns.key_id = optarg;
			break;
		case OPT_TEAM_ID:
			c->push.providers.apns.team_id = optarg;
			break;
		case OPT_PROD_URL:
			c->push.providers.apns.production_url = optarg;
			break;
		case OPT_SANDBOX_URL:
			c->push.providers.apns.sandbox_url = optarg;
			break;
		case OPT_CA:
			c->push.ca_file = optarg;
			break;
		case OPT_FCM_KEY: o->cred.fcm_key_path = optarg; break;
		case OPT_FCM_API:
			c->push.providers.fcm.api_url = optarg;
			break;
		case OPT_FCM_TOKEN:
			c->push.providers.fcm.token_url = optarg;
			break;
		case OPT_VAPID_KEY: o->cred.vapid_key_path = optarg; break;
		case OPT_VAPID_SUBJECT: o->cred.vapid_subject = optarg; break;
		case OPT_PRINT_VAPID: o->print_vapid = true; break;
		case OPT_UBPORTS_URL:
			c->push.providers.ubports.url = optarg;
			break;
		case OPT_UBPORTS_APPID:
			c->push.providers.ubports.appid = optarg;
			break;
		case OPT_RATE_LIMIT: proxyd_rate_limit(optarg, &c->push); break;
		case OPT_ALLOW_PRIVATE:
			c->push.providers.webpush.allow_private = true;
			break;
		case OPT_WORKERS:
			c->workers = (unsigned int)cliopt_uint("workers",
			    optarg, 1, 64);
			break;
		case OPT_CACHE:
			c->cache_entries = cliopt_uint("cache-size", optarg, 1,
			    100000000);
			break;
		case OPT_TIMEOUT:
			c->push.timeout_ms = (long)cliopt_duration_ms("timeout",
			    optarg);
			break;
		case OPT_MAX_CONNS: case OPT_MAX_PER_IP: case OPT_TRUSTED_PROXY:
		case OPT_MAX_CLIENT_REQS: case OPT_REQUEST_TIMEOUT:
		case OPT_IDLE_TIMEOUT: case OPT_MAX_BODY:
			proxyd_intake_option(ch, optarg, &c->intake);
			break;
		case OPT_CACHE_BYTES: case OPT_REQUIRE_ENCRYPTED:
		case OPT_MAX_REGISTRATIONS: case OPT_REGISTER_RATE:
		case OPT_REGISTER_CLIENTS:
			proxyd_bounds_option(ch, optarg, c);
			break;
		case OPT_LIMIT_QUEUE: case OPT_LIMIT_CLIENT_QUEUE:
		case OPT_LIMIT_WAIT: case OPT_MAX_PUSHES:
			proxyd_overload_option(ch, optarg, c);
			break;
		case OPT_REDIS: case OPT_REDIS_SENTINEL: case OPT_REDIS_MASTER:
		case OPT_REDIS_PASSWORD_FILE: case OPT_REDIS_TIMEOUT:
		case OPT_REDIS_MAX_PENDING:
			proxyd_redis_option(ch, optarg, c,
			    &redis_password_file);
			break;
		case OPT_SYNC:
			if (db_sync_parse(optarg, &c->sync) < 0)
				fatalx("--sync: expected normal or full");
			break;
		case 'l':
			if (log_level_parse(optarg, &o->level) < 0)
				fatalx("--log-level: expected error, warn, "
				    "info or debug");
			break;
		case 'h':
			proxyd_usage_exit(0);
		default:
			proxyd_usage_exit(2);
		}
	}
	if (c->owed_retry_max_ms < c->owed_retry_min_ms)
		fatalx("--owed-retry-max must be at least --owed-retry-min");
	proxyd_redis_check(c, redis_password_file);
	if (o->print_vapid)
		credentials_print_vapid(o->cred.vapid_key_path);
	if (optind != argc || c->keyring_path == NULL) {
		fprintf(stderr, "proxyd: --openpgp-keyring-path is required\n");
		proxyd_usage_exit(2);
	}
}

static void
proxyd_on_stop(int signo, void *arg)
{
	log_info("proxy stopping signal=%d", signo);
	proxy_stop(arg);
}

int
main(int argc, char **argv)
{
	struct proxyd_options o;
	struct credentials cred;
	struct event_base *base;
	struct evloop_signals *sigs;
	struct proxy *px;
	char err[ERR_LEN];

	log_init("proxyd", LOG_LEVEL_INFO);
	proxyd_parse(argc, argv, &o);
	log_set_level(o.level);
	credentials_load(&o.cred, &o.cfg.push, &cred);
	proxyd_fit_nofile(&o.cfg.intake);
	if ((base = evloop_new(err)) == NULL)
		fatalx("%s", err);
	if ((px = proxy_new(base, &o.cfg, err)) == NULL)
		fatalx("%s", err);
	sigs = evloop_signals_add(base, proxyd_on_stop, px);

	if (event_base_dispatch(base) < 0)
		log_err("event loop failed");

	proxy_free(px);
	evloop_signals_free(sigs);
	event_base_free(base);
	credentials_free(&cred);
	log_info("proxy stopped");
	return 0;
}
