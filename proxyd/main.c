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

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cliopt.h"
#include "evloop.h"
#include "jwt.h"
#include "log.h"
#include "p12.h"
#include "proxy.h"
#include "xmalloc.h"

static const char proxyd_usage[] =
"usage: proxyd --openpgp-keyring-path PATH [options]\n"
"\n"
"Central push proxy for chatmail relays: decrypts device tokens, debounces,\n"
"and wakes devices through Apple APNs; sends heartbeats to registered iOS\n"
"devices.\n"
"\n"
"  -k, --openpgp-keyring-path PATH  armored secret keys (required)\n"
"      --host ADDR             listen address (default 127.0.0.1)\n"
"  -p, --port PORT             listen port (default 9000)\n"
"      --db PATH               heartbeat registrations (default notifiers.db)\n"
"      --metrics HOST:PORT     serve OpenMetrics at http://HOST:PORT/metrics\n"
"      --interval DURATION     heartbeat period (default 20m)\n"
"      --debounce DURATION     one push per token per window (default 10s)\n"
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
"      --ca-file PATH          CA certificates for the providers\n"
"      --workers N             decryption threads (default 2)\n"
"      --cache-size N          decrypted tokens kept (default 100000)\n"
"      --timeout DURATION      provider request limit (default 20s)\n"
"      --sync normal|full      SQLite durability (default normal)\n"
"  -l, --log-level LEVEL       error, warn, info, debug (default info)\n"
"  -h, --help                  show this help\n";

enum {
	OPT_HOST = 256, OPT_DB, OPT_METRICS, OPT_INTERVAL, OPT_DEBOUNCE,
	OPT_CERT, OPT_PASSWORD, OPT_TOPIC, OPT_KEY, OPT_KEY_ID, OPT_TEAM_ID,
	OPT_PROD_URL, OPT_SANDBOX_URL, OPT_CA, OPT_WORKERS, OPT_CACHE,
	OPT_TIMEOUT, OPT_SYNC, OPT_PASSWORD_FILE,
};

struct proxyd_options {
	struct proxy_config	 cfg;
	enum log_level		 level;
	const char		*p8_path;
	const char		*password_file;
	char			*password;		/* owned, a secret */
	char			*topic_from_cert;	/* owned */
	EVP_PKEY		*p8_key;		/* owned */
};

static _Noreturn void
proxyd_usage_exit(int status)
{
	fputs(proxyd_usage, status == 0 ? stdout : stderr);
	exit(status);
}



static void
proxyd_parse(int argc, char **argv, struct proxyd_options *o)
{
	static const struct option longopts[] = {
		{ "openpgp-keyring-path", required_argument, NULL, 'k' },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "port", required_argument, NULL, 'p' },
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
		{ "ca-file", required_argument, NULL, OPT_CA },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "cache-size", required_argument, NULL, OPT_CACHE },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "sync", required_argument, NULL, OPT_SYNC },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct proxy_config *c = &o->cfg;
	int ch;

	memset(o, 0, sizeof(*o));
	c->host = "127.0.0.1";
	c->port = 9000;
	c->db_path = "notifiers.db";
	c->interval_ms = 20 * 60 * 1000;
	c->debounce_ms = 10 * 1000;
	c->workers = 2;
	c->cache_entries = 100000;
	c->push.timeout_ms = 20000;
	c->push.apns_streams = 1000;
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
		case OPT_DB: c->db_path = optarg; break;
		case OPT_METRICS: c->metrics_addr = optarg; break;
		case OPT_INTERVAL:
			c->interval_ms = cliopt_duration_ms("interval", optarg);
			break;
		case OPT_DEBOUNCE:
			c->debounce_ms = cliopt_duration_ms("debounce", optarg);
			break;
		case OPT_CERT: c->push.apns_p12 = optarg; break;
		case OPT_PASSWORD: c->push.apns_p12_password = optarg; break;
		case OPT_PASSWORD_FILE: o->password_file = optarg; break;
		case OPT_TOPIC: c->push.apns.topic = optarg; break;
		case OPT_KEY: o->p8_path = optarg; break;
		case OPT_KEY_ID: c->push.apns.key_id = optarg; break;
		case OPT_TEAM_ID: c->push.apns.team_id = optarg; break;
		case OPT_PROD_URL: c->push.apns.production_url = optarg; break;
		case OPT_SANDBOX_URL: c->push.apns.sandbox_url = optarg; break;
		case OPT_CA:
			c->push.ca_file = optarg;
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
	if (optind != argc || c->keyring_path == NULL) {
		fprintf(stderr, "proxyd: --openpgp-keyring-path is required\n");
		proxyd_usage_exit(2);
	}
}

/* Credentials: a wrong file or password stops the start; missing ones
 * are a warning, and APNs requests then fail with 500 (counted), as in
 * the Rust service. */
static void
proxyd_load_apns(struct proxyd_options *o)
{
	struct push_config *p = &o->cfg.push;
	char err[ERR_LEN], *pem;
	size_t len;
	FILE *fp;

	if (o->p8_path != NULL) {
		if (p->apns.key_id == NULL || p->apns.team_id == NULL)
			fatalx("--apns-key-path needs --apns-key-id and "
			    "--apns-team-id");
		if ((fp = fopen(o->p8_path, "r")) == NULL)
			fatal("--apns-key-path %s", o->p8_path);
		pem = xmalloc(65536);
		len = fread(pem, 1, 65535, fp);
		fclose(fp);
		o->p8_key = jwt_load_key_pem(pem, len, err);
		OPENSSL_cleanse(pem, len);
		free(pem);
		if (o->p8_key == NULL)
			fatalx("--apns-key-path %s: %s", o->p8_path, err);
		if (p->apns.topic == NULL)
			fatalx("token auth needs --topic (the app's bundle id)");
		p->apns.key = o->p8_key;
		p->apns_enabled = true;
	} else if (p->apns_p12 != NULL) {
		if (o->password_file != NULL) {
			char line[1024];
			size_t n;

			if ((fp = fopen(o->password_file, "r")) == NULL)
				fatal("--password-file %s", o->password_file);
			n = fread(line, 1, sizeof(line) - 1, fp);
			fclose(fp);
			line[n] = '\0';
			line[strcspn(line, "\r\n")] = '\0';
			o->password = xstrdup(line);
			OPENSSL_cleanse(line, sizeof(line));
			p->apns_p12_password = o->password;
		}
		if (p12_check(p->apns_p12, p->apns_p12_password ?
		    p->apns_p12_password : "", &o->topic_from_cert, err) < 0)
			fatalx("--certificate-file: %s", err);
		if (p->apns.topic == NULL)
			p->apns.topic = o->topic_from_cert;
		p->apns_enabled = true;
	} else
		log_warnx("no APNs credentials (--certificate-file or "
		    "--apns-key-path): iOS pushes will fail with 500");
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
	struct event_base *base;
	struct evloop_signals *sigs;
	struct proxy *px;
	char err[ERR_LEN];

	log_init("proxyd", LOG_LEVEL_INFO);
	proxyd_parse(argc, argv, &o);
	log_set_level(o.level);
	proxyd_load_apns(&o);
	evloop_raise_nofile(65536);
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
	EVP_PKEY_free(o.p8_key);
	free(o.topic_from_cert);
	if (o.password != NULL) {
		OPENSSL_cleanse(o.password, strlen(o.password));
		free(o.password);
	}
	log_info("proxy stopped");
	return 0;
}
