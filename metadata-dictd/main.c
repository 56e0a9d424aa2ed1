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

#include "chatmail_ini.h"
#include "cli.h"
#include "cliopt.h"
#include "dictd.h"
#include "evloop.h"
#include "log.h"

#define DICTD_DEFAULT_TOKEN_TTL	"90d"
/* chatmail relay's TURN helper and the port it serves (its Python
 * service's defaults). */
#define DICTD_DEFAULT_TURN_SOCKET	"/run/chatmail-turn/turn.socket"
#define DICTD_DEFAULT_TURN_PORT		3478
/* Under Dovecot's 5 s slow-reply warning (protocol doc §5). */
#define DICTD_DEFAULT_TURN_TIMEOUT	"3s"
/* Each Dovecot imap/lmtp process opens its own connection. */
#define DICTD_WANT_NOFILE	65536

static const char dictd_usage[] =
"usage: metadata-dictd --socket PATH --db PATH [--config CHATMAIL_INI] [options]\n"
"       metadata-dictd --db PATH --import-chatmaild VMAIL_DIR\n"
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
"      --config PATH         chatmail relay's chatmail.ini (e.g.\n"
"                            " CHATMAIL_INI_PATH "):\n"
"                            iroh relay, TURN host and socket from its\n"
"                            [params] as chatmaild takes them; flags win\n"
"  -h, --help                show this help\n"
"\n"
"Bounds (each counted in a metric when hit; sizes 512, 64k, 1M, 1MiB):\n"
"      --max-txn-bytes-per-conn SIZE\n"
"                                bytes one connection's open transactions\n"
"                                may hold; past it the transaction's commit\n"
"                                fails (default 1M)\n"
"      --max-txn-bytes SIZE      the same for all connections together\n"
"                                (default 64M)\n"
"      --max-tokens-per-user N   device tokens kept per user; a new one\n"
"                                evicts the least recently set (default 32)\n"
"      --max-keys-per-user N     other METADATA keys a user may store (a\n"
"                                mailbox, for /shared ones); setting one more\n"
"                                fails (default 256)\n"
"      --max-connections N       Dovecot connections held at once; past it\n"
"                                new ones wait in the listen backlog until\n"
"                                one closes (default 4096)\n"
"      --lock-wait DURATION      how long a commit waits for the database's\n"
"                                write lock held by another process, then\n"
"                                fails; lookups go on meanwhile (default 5s)\n"
"      --line-timeout DURATION   how long a line may take from its first\n"
"                                byte to its end, then the connection is\n"
"                                closed; idle connections are not (default\n"
"                                30s)\n"
"\n"
"Server entries for GETMETADATA \"\" /shared/vendor/deltachat/<name>\n"
"(read-only to clients; NIL when not set):\n"
"      --iroh-relay URL          irohrelay: the iroh relay URL (\"\": none,\n"
"                                whatever --config says)\n"
"      --max-smtp-recipients N   maxsmtprecipients: recipients per mail\n"
"                                the MTA accepts (default 1000, as chatmaild)\n"
"      --appversions FILE        appversions: a JSON object, re-read when\n"
"                                it changes, sent as one compact line\n"
"      --turn-host HOST          turn: HOST:PORT:<credentials> with fresh\n"
"                                credentials from the TURN helper (\"\":\n"
"                                none, whatever --config says)\n"
"      --turn-port PORT          TURN server port (default 3478)\n"
"      --turn-socket PATH        the TURN helper's socket (default\n"
"                                /run/chatmail-turn/turn.socket)\n"
"      --turn-timeout DURATION   wait for the helper (default 3s)\n"
"\n"
"Moving from chatmail relay's Python service (chatmaild):\n"
"      --import-chatmaild VMAIL_DIR\n"
"                                import the device tokens of every\n"
"                                VMAIL_DIR/<addr>/metadata.json and the\n"
"                                pushes in VMAIL_DIR/pending_notifications\n"
"                                into --db, print the counts and exit\n"
"                                (running it twice changes nothing)\n";

enum {
	DICTD_OPT_IMPORT = 256,
	DICTD_OPT_IROH,
	DICTD_OPT_MAX_RCPT,
	DICTD_OPT_APPVERSIONS,
	DICTD_OPT_TURN_HOST,
	DICTD_OPT_TURN_PORT,
	DICTD_OPT_TURN_SOCKET,
	DICTD_OPT_TURN_TIMEOUT,
	DICTD_OPT_TXN_CONN_BYTES,
	DICTD_OPT_TXN_BYTES,
	DICTD_OPT_MAX_TOKENS,
	DICTD_OPT_LOCK_WAIT,
	DICTD_OPT_MAX_KEYS,
	DICTD_OPT_MAX_CONNS,
	DICTD_OPT_LINE_TIMEOUT,
	DICTD_OPT_CONFIG,
};

/* The bounds' flags take at most this much: past 1 GiB of transactions
 * the daemon would no longer be bounded in any useful sense. */
#define DICTD_TXN_BYTES_MAX	(1024ULL * 1024 * 1024)
/* A transaction must fit one line's worth of change at least. */
#define DICTD_TXN_BYTES_MIN	(64ULL * 1024)
#define DICTD_MAX_TOKENS_MAX	100000
#define DICTD_MAX_KEYS_MAX	100000
/* Connections: at least a handful, and no more than file descriptors
 * the daemon asks for (DICTD_WANT_NOFILE). */
#define DICTD_MAX_CONNS_MIN	4

struct dictd_options {
	struct dict_server_config	 server;
	const char			*db_path;
	const char			*import_dir;	/* chatmaild's */
	const char			*config_path;	/* chatmail.ini */
	enum db_sync			 sync;
	enum log_level			 log_level;
	/* --config's file and what it gave; the vendor strings point here */
	struct ini			 ini;
	struct chatmail_ini_vendor	 ini_vendor;
};

/* Which of the flags that chatmail.ini may also set were given. */
struct dictd_flags_given {
	bool	iroh_relay;
	bool	turn_host;
	bool	turn_socket;
};

static _Noreturn void
dictd_usage_exit(int status)
{
	fputs(dictd_usage, status == 0 ? stdout : stderr);
	exit(status);
}

/*
 * --config: chatmail.ini's [params], taken as chatmaild's metadata.py
 * takes them, for each of these flags that was not given:
 * mail_domain -> --turn-host, iroh_relay (absent: https://<mail_domain>,
 * empty: none) -> --iroh-relay, turn_socket_path -> --turn-socket. Every
 * other key gets one debug line. A file that cannot be read or parsed,
 * or a value that does not fit its flag, stops the start.
 */
static void
dictd_apply_config(struct dictd_options *o,
    const struct dictd_flags_given *given)
{
	struct dict_vendor_config *v = &o->server.vendor;
	struct chatmail_ini_vendor *cv = &o->ini_vendor;
	const struct ini_entry *e;
	char err[ERR_LEN];
	char flags[sizeof(",iroh_relay,turn_host,turn_socket")];
	size_t pos = 0;

	if (chatmail_ini_load(&o->ini, o->config_path, err) < 0 ||
	    chatmail_ini_vendor(&o->ini, cv, err) < 0)
		fatalx("--config: %s", err);
	if (!given->iroh_relay)
		v->iroh_relay = cv->iroh_relay;
	if (!given->turn_host)
		v->turn_host = cv->turn_host;
	if (!given->turn_socket)
		v->turn_socket = cv->turn_socket;
	while ((e = ini_next_unused(&o->ini, &pos)) != NULL)
		log_debug("config key not used file=%s line=%u section=%s "
		    "key=%s", o->config_path, e->line, e->section, e->key);
	/* What the daemon answers, and which of it flags set. */
	flags[0] = '\0';
	if (given->iroh_relay)
		strcat(flags, ",iroh_relay");
	if (given->turn_host)
		strcat(flags, ",turn_host");
	if (given->turn_socket)
		strcat(flags, ",turn_socket");
	log_info("config file=%s mail_domain=%s iroh_relay=%s turn_host=%s "
	    "turn_socket=%s flags_over_file=%s", o->config_path,
	    cv->mail_domain,
	    v->iroh_relay != NULL ? v->iroh_relay : "none",
	    v->turn_host != NULL ? v->turn_host : "none", v->turn_socket,
	    flags[0] != '\0' ? flags + 1 : "none");
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
		{ "import-chatmaild", required_argument, NULL,
		    DICTD_OPT_IMPORT },
		{ "iroh-relay", required_argument, NULL, DICTD_OPT_IROH },
		{ "max-smtp-recipients", required_argument, NULL,
		    DICTD_OPT_MAX_RCPT },
		{ "appversions", required_argument, NULL,
		    DICTD_OPT_APPVERSIONS },
		{ "turn-host", required_argument, NULL, DICTD_OPT_TURN_HOST },
		{ "turn-port", required_argument, NULL, DICTD_OPT_TURN_PORT },
		{ "turn-socket", required_argument, NULL,
		    DICTD_OPT_TURN_SOCKET },
		{ "turn-timeout", required_argument, NULL,
		    DICTD_OPT_TURN_TIMEOUT },
		{ "max-txn-bytes-per-conn", required_argument, NULL,
		    DICTD_OPT_TXN_CONN_BYTES },
		{ "max-txn-bytes", required_argument, NULL,
		    DICTD_OPT_TXN_BYTES },
		{ "max-tokens-per-user", required_argument, NULL,
		    DICTD_OPT_MAX_TOKENS },
		{ "lock-wait", required_argument, NULL, DICTD_OPT_LOCK_WAIT },
		{ "max-keys-per-user", required_argument, NULL,
		    DICTD_OPT_MAX_KEYS },
		{ "max-connections", required_argument, NULL,
		    DICTD_OPT_MAX_CONNS },
		{ "line-timeout", required_argument, NULL,
		    DICTD_OPT_LINE_TIMEOUT },
		{ "config", required_argument, NULL, DICTD_OPT_CONFIG },
		{ NULL, 0, NULL, 0 },
	};
	struct dict_vendor_config *v = &o->server.vendor;
	struct dictd_flags_given given = { false, false, false };
	bool turn_opts = false;
	char err[ERR_LEN];
	mode_t mode;
	int ch;

	memset(o, 0, sizeof(*o));
	o->server.socket_mode = 0660;
	o->sync = DB_SYNC_NORMAL;
	o->log_level = LOG_LEVEL_INFO;
	o->server.token_ttl_ms = cliopt_duration_ms("token-ttl",
	    DICTD_DEFAULT_TOKEN_TTL);
	v->turn_port = DICTD_DEFAULT_TURN_PORT;
	v->turn_socket = DICTD_DEFAULT_TURN_SOCKET;
	/* What chatmaild always answered (Postfix's smtpd_recipient_limit):
	 * replacing it must not change what clients see. */
	v->max_smtp_recipients = 1000;
	v->turn_timeout_ms = cliopt_duration_ms("turn-timeout",
	    DICTD_DEFAULT_TURN_TIMEOUT);
	o->server.txn_conn_max_bytes = DICT_TXN_CONN_MAX_BYTES_DEFAULT;
	o->server.txn_total_max_bytes = DICT_TXN_TOTAL_MAX_BYTES_DEFAULT;
	o->server.max_tokens_per_user = DICT_MAX_TOKENS_PER_USER_DEFAULT;
	o->server.lock_wait_ms = DICT_LOCK_WAIT_MS_DEFAULT;
	o->server.max_keys_per_user = DICT_MAX_KEYS_PER_USER_DEFAULT;
	o->server.max_connections = DICT_MAX_CONNECTIONS_DEFAULT;
	o->server.line_timeout_ms = DICT_LINE_TIMEOUT_MS_DEFAULT;
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
		case DICTD_OPT_IMPORT: o->import_dir = optarg; break;
		case DICTD_OPT_CONFIG: o->config_path = optarg; break;
		case DICTD_OPT_IROH:
			/* "" says none, over the file's */
			v->iroh_relay = optarg[0] != '\0' ? optarg : NULL;
			given.iroh_relay = true;
			break;
		case DICTD_OPT_APPVERSIONS: v->appversions_path = optarg; break;
		case DICTD_OPT_TURN_HOST:
			v->turn_host = optarg[0] != '\0' ? optarg : NULL;
			given.turn_host = true;
			break;
		case DICTD_OPT_MAX_RCPT:
			v->max_smtp_recipients = cliopt_uint(
			    "max-smtp-recipients", optarg, 1, 1000000);
			break;
		case DICTD_OPT_TURN_PORT:
			v->turn_port = (unsigned int)cliopt_uint("turn-port",
			    optarg, 1, 65535);
			turn_opts = true;
			break;
		case DICTD_OPT_TURN_SOCKET:
			v->turn_socket = optarg;
			given.turn_socket = true;
			turn_opts = true;
			break;
		case DICTD_OPT_TURN_TIMEOUT:
			v->turn_timeout_ms = cliopt_duration_ms("turn-timeout",
			    optarg);
			turn_opts = true;
			break;
		case DICTD_OPT_TXN_CONN_BYTES:
			o->server.txn_conn_max_bytes = cliopt_size(
			    "max-txn-bytes-per-conn", optarg,
			    DICTD_TXN_BYTES_MIN, DICTD_TXN_BYTES_MAX);
			break;
		case DICTD_OPT_TXN_BYTES:
			o->server.txn_total_max_bytes = cliopt_size(
			    "max-txn-bytes", optarg, DICTD_TXN_BYTES_MIN,
			    DICTD_TXN_BYTES_MAX);
			break;
		case DICTD_OPT_MAX_TOKENS:
			o->server.max_tokens_per_user = (unsigned int)
			    cliopt_uint("max-tokens-per-user", optarg, 1,
			    DICTD_MAX_TOKENS_MAX);
			break;
		case DICTD_OPT_MAX_KEYS:
			o->server.max_keys_per_user = (unsigned int)
			    cliopt_uint("max-keys-per-user", optarg, 1,
			    DICTD_MAX_KEYS_MAX);
			break;
		case DICTD_OPT_MAX_CONNS:
			o->server.max_connections = (size_t)cliopt_uint(
			    "max-connections", optarg, DICTD_MAX_CONNS_MIN,
			    DICTD_WANT_NOFILE);
			break;
		case DICTD_OPT_LOCK_WAIT:
			o->server.lock_wait_ms = cliopt_duration_ms(
			    "lock-wait", optarg);
			break;
		case DICTD_OPT_LINE_TIMEOUT:
			o->server.line_timeout_ms = cliopt_duration_ms(
			    "line-timeout", optarg);
			break;
		case 'h':
			dictd_usage_exit(0);
		default:
			dictd_usage_exit(2);
		}
	}
	if (optind != argc || o->db_path == NULL ||
	    (o->server.socket_path == NULL && o->import_dir == NULL)) {
		fprintf(stderr, "metadata-dictd: --socket and --db are "
		    "required (--db alone with --import-chatmaild)\n");
		dictd_usage_exit(2);
	}
	/* Now, so that the file's unused keys show at debug. */
	log_set_level(o->log_level);
	if (o->config_path != NULL)
		dictd_apply_config(o, &given);
	if (turn_opts && v->turn_host == NULL)
		fatalx("--turn-port, --turn-socket and --turn-timeout need "
		    "--turn-host");
	if (dict_vendor_config_check(v, err) < 0)
		fatalx("%s", err);
}

/* A bad --appversions file shows at start, not at the first login (the
 * lookup reports a failure once, so it is not logged again then). */
static void
dictd_probe_appversions(struct dict_server *srv)
{
	char err[ERR_LEN];
	struct buf value;

	err[0] = '\0';
	buf_init(&value);
	if (dict_vendor_lookup(dict_server_vendor(srv), "appversions", &value,
	    err) == DICT_VENDOR_NONE && err[0] != '\0')
		log_warnx("dict %s", err);
	buf_clear(&value);
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
	if (o.import_dir != NULL) {
		int rc = chatmaild_import_main(o.db_path, o.sync,
		    o.server.token_ttl_ms, o.import_dir);

		ini_clear(&o.ini);
		return rc;
	}

	nofile = evloop_raise_nofile(DICTD_WANT_NOFILE);
	/* Not fatal: the listener then pauses on EMFILE instead, which is
	 * bounded too, but the operator meant the flag to bind. */
	if (nofile != 0 && nofile < o.server.max_connections)
		log_warnx("dict --max-connections=%zu is above the open files "
		    "limit %llu: that limit binds first (LimitNOFILE)",
		    o.server.max_connections, (unsigned long long)nofile);
	if ((base = evloop_new(err)) == NULL)
		fatalx("%s", err);
	if ((store = dict_store_open(o.db_path, o.sync,
	    o.server.token_ttl_ms, err)) == NULL)
		fatalx("database: %s", err);
	if ((srv = dict_server_new(base, &o.server, store, err)) == NULL)
		fatalx("%s", err);
	dictd_probe_appversions(srv);
	sigs = evloop_signals_add(base, dictd_on_stop, base);
	log_info("dict listening socket=%s db=%s max_open_files=%llu "
	    "max_connections=%zu", o.server.socket_path, o.db_path,
	    (unsigned long long)nofile, o.server.max_connections);

	if (event_base_dispatch(base) < 0)
		log_err("event loop failed");

	dict_server_shutdown(srv);
	dict_server_free(srv);
	evloop_signals_free(sigs);
	event_base_free(base);
	ini_clear(&o.ini);
	log_info("dict stopped");
	return 0;
}
