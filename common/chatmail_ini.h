/*
 * chatmail relay's chatmail.ini, as cmdeploy installs it
 * (/usr/local/lib/chatmaild/chatmail.ini): what metadata-dictd and
 * notifierd take from it with --config, read as chatmail/relay's
 * chatmaild/src/chatmaild/config.py reads it. Only the [params] section
 * matters; chatmaild needs mail_domain in it, and so do we.
 *
 * Keys taken (everything else is left to the caller to report as unused):
 *
 *   mail_domain        the TURN host (metadata.py: turn_hostname =
 *                      config.mail_domain), and the iroh relay's default
 *   iroh_relay         absent: https://<mail_domain> (config.py); empty:
 *                      no iroh relay entry; else the URL
 *   turn_socket_path   the TURN helper's socket (default
 *                      /run/chatmail-turn/turn.socket)
 *
 * chatmail.ini has nothing for maxsmtprecipients (chatmaild answers a
 * constant 1000), appversions (a file of chatmaild's package) or the
 * push proxy's URL (notifier.py's constant).
 */
#ifndef CHATMAIL_INI_H
#define CHATMAIL_INI_H

#include "err.h"
#include "ini.h"

#define CHATMAIL_INI_PATH		"/usr/local/lib/chatmaild/chatmail.ini"
#define CHATMAIL_INI_SECTION		"params"
#define CHATMAIL_INI_TURN_SOCKET	"/run/chatmail-turn/turn.socket"
#define CHATMAIL_INI_URL_MAX		1024
#define CHATMAIL_INI_HOST_MAX		253

/* The server entries chatmaild answers from the file. The strings point
 * into the ini, or into the struct: keep both while they are used. */
struct chatmail_ini_vendor {
	const char	*mail_domain;
	const char	*iroh_relay;	/* NULL: none (iroh_relay empty) */
	const char	*turn_host;
	const char	*turn_socket;
	char		 iroh_default[CHATMAIL_INI_URL_MAX + 1];
};

/* ini_load, then checks that the file is a chatmail.ini: a [params]
 * section with a mail_domain that is not empty. Marks nothing used. 0, or
 * -1 with "path[:line]: reason" in err. */
int	chatmail_ini_load(struct ini *, const char *path, char err[ERR_LEN]);
/* The check of chatmail_ini_load alone, on a parsed file (pure). */
int	chatmail_ini_check(const struct ini *, char err[ERR_LEN]);
/* Takes (marks used) and checks the keys above: mail_domain a host name
 * or IPv4 address ([A-Za-z0-9._-]), iroh_relay an http(s):// URL of
 * printable ASCII, turn_socket_path an absolute path that fits a Unix
 * socket address. 0, or -1 with "path:line: key: reason" in err. */
int	chatmail_ini_vendor(struct ini *, struct chatmail_ini_vendor *,
	    char err[ERR_LEN]);

#endif
