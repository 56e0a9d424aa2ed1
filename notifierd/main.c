/*
 * notifierd: delivers the relay's queued new-mail notifications to the
 * push proxy. Parses the options, runs the loop until SIGTERM/SIGINT,
 * tears down. The logic is in notifier.c (see notifierd.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "chatmail_ini.h"
#include "cliopt.h"
#include "evloop.h"
#include "log.h"
#include "notifierd.h"

#define NOTIFIERD_DEFAULT_URL	"https://notifications.delta.chat/notify"
/* Wake-ups (one per metadata-dictd commit that queued jobs) closer
 * together than this are one pass: at most 100 passes a second from
 * them, however fast they come; the first after a quiet spell waits for
 * nothing. */
#define NOTIFIERD_WAKE_INTERVAL_MS	10

static const char notifierd_usage[] =
"usage: notifierd --db PATH [options]\n"
"\n"
"Sends the new-mail notifications that metadata-dictd queued to the push\n"
"proxy, retrying with back-off; a token the proxy reports gone (410) is\n"
"deleted.\n"
"\n"
"  -d, --db PATH             relay SQLite database (required)\n"
"  -u, --proxy-url URL       where to POST tokens\n"
"                            (default " NOTIFIERD_DEFAULT_URL ")\n"
"  -w, --wake-socket PATH    Unix datagram socket metadata-dictd wakes us on\n"
"                            (created 0660: metadata-dictd runs as our user)\n"
"  -W, --wake-interval DURATION  wake-ups closer together than this make\n"
"                            one pass (default 10ms)\n"
"  -c, --concurrency N       requests in flight at most (default 256)\n"
"  -r, --retry-base DURATION first retry delay (default 8s); retry n waits\n"
"                            base * max(base in s, 2)^(n-1): 8s, 64s, 512s\n"
"  -D, --deadline DURATION   give a job up this long after its mail\n"
"                            (default 5h)\n"
"  -T, --timeout DURATION    one request's time limit (default 60s)\n"
"  -p, --poll DURATION       look for due jobs at least this often\n"
"                            (default 1s)\n"
"  -g, --grace DURATION      on SIGTERM, wait this long for requests in\n"
"                            flight (default 5s)\n"
"  -C, --ca-file PATH        CA certificates to verify the proxy with\n"
"  -S, --sync normal|full    SQLite durability (default normal)\n"
"  -M, --metrics HOST:PORT   serve OpenMetrics at http://HOST:PORT/metrics\n"
"  -l, --log-level LEVEL     error, warn, info, debug (default info)\n"
"      --config PATH         chatmail relay's chatmail.ini, checked and\n"
"                            read: it has no setting of notifierd's (the\n"
"                            proxy URL is not in it), so each of its keys\n"
"                            is logged at debug as not used\n"
"  -h, --help                show this help\n"
"\n"
"Durations: 250ms, 10s, 20m, 5h, 90d.\n";

static _Noreturn void
notifierd_usage_exit(int status)
{
	fputs(notifierd_usage, status == 0 ? stdout : stderr);
	exit(status);
}


enum {
	NOTIFIERD_OPT_CONFIG = 256,
};

/*
 * --config: chatmail relay's chatmail.ini, for symmetry with
 * metadata-dictd (one file named in both units). chatmaild's notifier
 * takes nothing from it (notifier.py's URL is a constant; chatmail.ini
 * has no proxy URL, timeout or CA), and neither do we: the file is
 * checked as metadata-dictd checks it, so that a damaged one shows in
 * both, and each key gets one debug line.
 */
static void
notifierd_check_config(const char *path)
{
	const struct ini_entry *e;
	char err[ERR_LEN];
	struct ini ini;
	size_t pos = 0;

	if (chatmail_ini_load(&ini, path, err) < 0)
		fatalx("--config: %s", err);
	while ((e = ini_next_unused(&ini, &pos)) != NULL)
		log_debug("config key not used file=%s line=%u section=%s "
		    "key=%s", path, e->line, e->section, e->key);
	log_info("config file=%s keys=%zu (none used by notifierd)", path,
	    ini.n);
	ini_clear(&ini);
}

static void
notifierd_parse_options(int argc, char **argv, struct notifier_config *c,
    enum log_level *level)
{
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "proxy-url", required_argument, NULL, 'u' },
		{ "wake-socket", required_argument, NULL, 'w' },
		{ "wake-interval", required_argument, NULL, 'W' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "retry-base", required_argument, NULL, 'r' },
		{ "deadline", required_argument, NULL, 'D' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "poll", required_argument, NULL, 'p' },
		{ "grace", required_argument, NULL, 'g' },
		{ "ca-file", required_argument, NULL, 'C' },
		{ "sync", required_argument, NULL, 'S' },
		{ "metrics", required_argument, NULL, 'M' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "config", required_argument, NULL, NOTIFIERD_OPT_CONFIG },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL;
	int ch;

	memset(c, 0, sizeof(*c));
	c->sync = DB_SYNC_NORMAL;
	c->concurrency = 256;
	c->retry_base_ms = 8000;
	c->deadline_ms = 5 * 3600 * 1000;
	c->poll_ms = 1000;
	c->wake_interval_ms = NOTIFIERD_WAKE_INTERVAL_MS;
	c->grace_ms = 5000;
	c->proxy_url = NOTIFIERD_DEFAULT_URL;
	c->http.user_agent = "chatmail-notifierd";
	c->http.timeout_ms = 60000;
	*level = LOG_LEVEL_INFO;
	while ((ch = getopt_long(argc, argv, "d:u:w:W:c:r:D:T:p:g:C:S:M:l:h",
	    longopts, NULL)) != -1) {
		switch (ch) {
		case 'd': c->db_path = optarg; break;
		case 'u': c->proxy_url = optarg; break;
		case 'w': c->wake_socket = optarg; break;
		case 'W':
			c->wake_interval_ms = cliopt_duration_ms(
			    "wake-interval", optarg);
			break;
		case 'C': c->http.ca_file = optarg; break;
		case NOTIFIERD_OPT_CONFIG: config_path = optarg; break;
		case 'M': c->metrics_addr = optarg; break;
		case 'c':
			c->concurrency = (unsigned int)cliopt_uint(
			    "concurrency", optarg, 1, 10000);
			break;
		case 'r':
			c->retry_base_ms = cliopt_duration_ms("retry-base",
			    optarg);
			break;
		case 'D':
			c->deadline_ms = cliopt_duration_ms("deadline", optarg);
			break;
		case 'T':
			c->http.timeout_ms = (long)cliopt_duration_ms("timeout",
			    optarg);
			break;
		case 'p':
			c->poll_ms = cliopt_duration_ms("poll", optarg);
			break;
		case 'g':
			c->grace_ms = cliopt_duration_ms("grace", optarg);
			break;
		case 'S':
			if (db_sync_parse(optarg, &c->sync) < 0)
				fatalx("--sync: expected normal or full");
			break;
		case 'l':
			if (log_level_parse(optarg, level) < 0)
				fatalx("--log-level: expected error, warn, "
				    "info or debug");
			break;
		case 'h':
			notifierd_usage_exit(0);
		default:
			notifierd_usage_exit(2);
		}
	}
	if (optind != argc || c->db_path == NULL) {
		fprintf(stderr, "notifierd: --db is required\n");
		notifierd_usage_exit(2);
	}
	log_set_level(*level);
	if (config_path != NULL)
		notifierd_check_config(config_path);
	if (strncmp(c->proxy_url, "https://", 8) != 0 &&
	    strncmp(c->proxy_url, "http://", 7) != 0)
		fatalx("--proxy-url: expected an http:// or https:// URL");
	/* Enough connections for the concurrency over HTTP/1.1; with
	 * HTTP/2 curl multiplexes and uses fewer. */
	c->http.max_connections = c->concurrency;
}

static void
notifierd_on_stop(int signo, void *arg)
{
	log_info("notify stopping signal=%d", signo);
	notifier_stop(arg);
}

int
main(int argc, char **argv)
{
	struct notifier_config cfg;
	struct event_base *base;
	struct evloop_signals *sigs;
	struct notifier *n;
	enum log_level level;
	char err[ERR_LEN];

	log_init("notifierd", LOG_LEVEL_INFO);
	notifierd_parse_options(argc, argv, &cfg, &level);
	log_set_level(level);
	evloop_raise_nofile(cfg.concurrency + 1024);

	if ((base = evloop_new(err)) == NULL)
		fatalx("%s", err);
	if ((n = notifier_new(base, &cfg, err)) == NULL)
		fatalx("%s", err);
	sigs = evloop_signals_add(base, notifierd_on_stop, n);
	/* The URL is configuration, not a secret; tokens never are logged. */
	log_info("notify started db=%s proxy=%s concurrency=%u",
	    cfg.db_path, cfg.proxy_url, cfg.concurrency);

	if (event_base_dispatch(base) < 0)
		log_err("event loop failed");

	notifier_free(n);
	evloop_signals_free(sigs);
	event_base_free(base);
	log_info("notify stopped");
	return 0;
}
