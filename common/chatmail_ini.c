/* chatmail relay's chatmail.ini: what our daemons take; see chatmail_ini.h. */
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "chatmail_ini.h"
#include "cli.h"

/* The [params] entry of key, without marking it used. */
static const struct ini_entry *
chatmail_ini_peek(const struct ini *ini, const char *key)
{
	for (size_t i = 0; i < ini->n; i++)
		if (strcmp(ini->v[i].section, CHATMAIL_INI_SECTION) == 0 &&
		    strcmp(ini->v[i].key, key) == 0)
			return &ini->v[i];
	return NULL;
}

int
chatmail_ini_check(const struct ini *ini, char err[ERR_LEN])
{
	const struct ini_entry *e;

	if (!ini_has_section(ini, CHATMAIL_INI_SECTION, NULL)) {
		err_set(err, "%s: no [%s] section (not a chatmail.ini?)",
		    ini->name, CHATMAIL_INI_SECTION);
		return -1;
	}
	if ((e = chatmail_ini_peek(ini, "mail_domain")) == NULL) {
		err_set(err, "%s: [%s] has no mail_domain", ini->name,
		    CHATMAIL_INI_SECTION);
		return -1;
	}
	if (e->value[0] == '\0') {
		err_set(err, "%s:%u: mail_domain is empty", ini->name,
		    e->line);
		return -1;
	}
	return 0;
}

int
chatmail_ini_load(struct ini *ini, const char *path, char err[ERR_LEN])
{
	if (ini_load(ini, path, err) < 0)
		return -1;
	if (chatmail_ini_check(ini, err) < 0) {
		ini_clear(ini);
		return -1;
	}
	return 0;
}

int
chatmail_ini_vendor(struct ini *ini, struct chatmail_ini_vendor *out,
    char err[ERR_LEN])
{
	const struct ini_entry *dom, *iroh, *sock;
	const char *d;

	memset(out, 0, sizeof(*out));
	if ((dom = ini_get(ini, CHATMAIL_INI_SECTION, "mail_domain")) == NULL) {
		err_set(err, "%s: [%s] has no mail_domain", ini->name,
		    CHATMAIL_INI_SECTION);
		return -1;
	}
	d = dom->value;
	/* A DNS name, or the IPv4 address of an IP-only relay. chatmaild
	 * answers such a relay's TURN host as "[1.2.3.4]"; the client splits
	 * the entry at ':', so we answer the plain address, as --turn-host
	 * takes it. No ':' (so no IPv6 literal) and no '/'. */
	if (!cli_printable(d, CHATMAIL_INI_HOST_MAX) ||
	    strspn(d, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-") != strlen(d)) {
		err_set(err, "%s:%u: mail_domain: expected a domain name or "
		    "IPv4 address (letters, digits, '.', '-', '_'), at most %d "
		    "bytes", ini->name, dom->line, CHATMAIL_INI_HOST_MAX);
		return -1;
	}
	out->mail_domain = d;
	out->turn_host = d;

	if ((iroh = ini_get(ini, CHATMAIL_INI_SECTION, "iroh_relay")) == NULL) {
		/* config.py: "https://" + mail_domain as written */
		snprintf(out->iroh_default, sizeof(out->iroh_default),
		    "https://%s", d);
		out->iroh_relay = out->iroh_default;
	} else if (iroh->value[0] == '\0') {
		out->iroh_relay = NULL;	/* metadata.py: NIL when empty */
	} else if (!cli_printable(iroh->value, CHATMAIL_INI_URL_MAX) ||
	    (strncmp(iroh->value, "https://", 8) != 0 &&
	    strncmp(iroh->value, "http://", 7) != 0)) {
		err_set(err, "%s:%u: iroh_relay: expected an http:// or "
		    "https:// URL of printable ASCII, at most %d bytes, or "
		    "nothing", ini->name, iroh->line, CHATMAIL_INI_URL_MAX);
		return -1;
	} else {
		out->iroh_relay = iroh->value;
	}

	sock = ini_get(ini, CHATMAIL_INI_SECTION, "turn_socket_path");
	out->turn_socket = sock != NULL ? sock->value :
	    CHATMAIL_INI_TURN_SOCKET;
	if (sock != NULL && (sock->value[0] != '/' ||
	    strlen(sock->value) >= sizeof(((struct sockaddr_un *)0)->sun_path)
	    || strchr(sock->value, '\n') != NULL)) {
		err_set(err, "%s:%u: turn_socket_path: expected an absolute "
		    "path of at most %zu bytes", ini->name, sock->line,
		    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return -1;
	}
	return 0;
}
