/*
 * metadata-dictd: Dovecot dict server for chatmail relays. Parses the
 * options, opens the store, runs the loop until SIGTERM/SIGINT, tears
 * down. Everything else is in dict_server.c and below (see dictd.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cli.h"
#include "cliopt.h"
#include "dictd.h"
#include "evloop.h"
#include "log.h"

#define DICTD_DEFAULT_TOKEN_TTL	"90d"
/* Each Dovecot imap/lmtp process opens its own connection. */
#define DICTD_WANT_NOFILE	65536

static const char dictd_usage[] =
"usage: metadata-dictd --socket PATH --db PATH [options]\n"
"\n"
"Dovecot dict server for chatmail relays: stores IMAP METADATA (device\n"
"tokens among them) in SQLite and queues a push job per device token\n"
"when Dovecot's push script reports new mail.\n"
"\n"
"  -s, --socket PATH         Unix socket Dovecot connects to (required)\n"
"  -d, --db PATH             relay SQLite database (required)\n"
"  -m, --socket-mode MODE    socket permissions, octal (default 0660)\n"
"  -g, --socket-group GROUP  socket group (default: unchanged)\n"
"  -n, --notify-socket PATH  notifierd's wake-up datagram socket\n"
"  -t, --token-ttl DURATION  expire tokens not refreshed for this long\n"
"                            (default 90d; units ms s m h d w)\n"
"  -S, --sync normal|full    SQLite durability: normal survives process\n"
"                            crashes, full also power loss (default normal)\n"
"  -M, --metrics HOST:PORT   serve OpenMetrics at http://HOST:PORT/metrics\n"
"  -l, --log-level LEVEL     error, warn, info, debug (default info)\n"
"  -h, --help                show this help\n";

struct dictd_options {
	struct dict_server_config	 server;
	const char			*db_path;
	enum db_sync			 sync;
	enum log_level			 log_level;
};

static _Noreturn void
dictd_usage_exit(int status)
{
	fputs(dictd_usage, status == 0 ? stdout : stderr);
	exit(status);
}

static void
dictd_parse_options(int argc, char **argv, struct dictd_options *o)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "db", required_argument, NULL, 'd' },
		{ "socket-mode", required_argument, NULL, 'm' },
		{ "socket-group", required_argument, NULL, 'g' },
		{ "notify-socket", required_argument, NULL, 'n' },
		{ "token-ttl", required_argument, NULL, 't' },
		{ "sync", required_argument, NULL, 'S' },
		{ "metrics", required_argument, NULL, 'M' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char err[ERR_LEN];
	mode_t mode;
	int ch;

	memset(o, 0, sizeof(*o));
	o->server.socket_mode = 0660;
	o->sync = DB_SYNC_NORMAL;
	o->log_level = LOG_LEVEL_INFO;
	o->server.token_ttl_ms = cliopt_duration_ms("token-ttl",
	    DICTD_DEFAULT_TOKEN_TTL);
	while ((ch = getopt_long(argc, argv, "s:d:m:g:n:t:S:M:l:h", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 's': o->server.socket_path = optarg; break;
		case 'd': o->db_path = optarg; break;
		case 'g': o->server.socket_group = optarg; break;
		case 'n': o->server.notify_socket = optarg; break;
		case 'M': o->server.metrics_addr = optarg; break;
		case 'm':
			if (cli_parse_mode(optarg, &mode, err) < 0)
				fatalx("--socket-mode: %s", err);
			o->server.socket_mode = mode;
			break;
		case 't':
			o->server.token_ttl_ms = cliopt_duration_ms("token-ttl",
			    optarg);
			break;
		case 'S':
			if (db_sync_parse(optarg, &o->sync) < 0)
				fatalx("--sync: expected normal or full");
			break;
		case 'l':
			if (log_level_parse(optarg, &o->log_level) < 0)
				fatalx("--log-level: expected error, warn, "
				    "info or debug");
			break;
		case 'h':
			dictd_usage_exit(0);
		default:
			dictd_usage_exit(2);
		}
	}
	if (optind != argc || o->server.socket_path == NULL ||
	    o->db_path == NULL) {
		fprintf(stderr, "metadata-dictd: --socket and --db are "
		    "required\n");
		dictd_usage_exit(2);
	}
}

static void
dictd_on_stop(int signo, void *arg)
{
	struct event_base *base = arg;

	log_info("dict stopping signal=%d", signo);
	event_base_loopbreak(base);
}

int
main(int argc, char **argv)
{
	struct dictd_options o;
	struct event_base *base;
	struct evloop_signals *sigs;
	struct dict_store *store;
	struct dict_server *srv;
	char err[ERR_LEN];
	uint64_t nofile;

	log_init("metadata-dictd", LOG_LEVEL_INFO);
	dictd_parse_options(argc, argv, &o);
	log_set_level(o.log_level);

	nofile = evloop_raise_nofile(DICTD_WANT_NOFILE);
	if ((base = evloop_new(err)) == NULL)
		fatalx("%s", err);
	if ((store = dict_store_open(o.db_path, o.sync,
	    o.server.token_ttl_ms, err)) == NULL)
		fatalx("database: %s", err);
	if ((srv = dict_server_new(base, &o.server, store, err)) == NULL)
		fatalx("%s", err);
	sigs = evloop_signals_add(base, dictd_on_stop, base);
	log_info("dict listening socket=%s db=%s max_open_files=%llu",
	    o.server.socket_path, o.db_path, (unsigned long long)nofile);

	if (event_base_dispatch(base) < 0)
		log_err("event loop failed");

	dict_server_shutdown(srv);
	dict_server_free(srv);
	evloop_signals_free(sigs);
	event_base_free(base);
	log_info("dict stopped");
	return 0;
}
