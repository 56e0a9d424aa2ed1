/*
 * The relay's server-level entries, which chatmail clients read with
 * GETMETADATA "" (/shared/vendor/deltachat/<name> ...) and chatmail
 * relay's Python service answers (chatmaild/src/chatmaild/metadata.py,
 * MetadataDictProxy.handle_lookup):
 *
 *   irohrelay          the iroh relay URL (--iroh-relay)
 *   turn               "<host>:<port>:<user>:<password>", credentials fresh
 *                      from the TURN helper (--turn-host, dict_turn.c)
 *   maxsmtprecipients  recipients per mail the MTA takes
 *                      (--max-smtp-recipients)
 *   appversions        the app versions index, a JSON file re-read when
 *                      it changes, sent compact on one line (--appversions)
 *
 * An entry that is not configured, or whose source failed, answers NIL,
 * as the Python service does (a failure of the whole GETMETADATA would
 * also lose the entries that did work). Nothing here is stored: dict_store
 * refuses writes to these keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "dictd.h"
#include "xmalloc.h"

#define DICT_VENDOR_URL_MAX_BYTES	1024
#define DICT_VENDOR_HOST_MAX_BYTES	253	/* a DNS name */

struct dict_vendor {
	struct dict_vendor_config cfg;
	/* The app versions file as last seen: its identity, and its
	 * compact JSON (NULL when it was missing or invalid). */
	bool		 av_seen;
	struct stat	 av_st;
	char		*av_value;
	size_t		 av_len;
	/* The last failure reported, so that one bad file costs one log
	 * line, not one per login. */
	char		 av_reported[ERR_LEN];
};

int
dict_vendor_config_check(const struct dict_vendor_config *cfg,
    char err[ERR_LEN])
{
	const char *u = cfg->iroh_relay;

	if (u != NULL && (!cli_printable(u, DICT_VENDOR_URL_MAX_BYTES)
	    || (strncmp(u, "https://", 8) != 0 &&
	    strncmp(u, "http://", 7) != 0))) {
		err_set(err, "--iroh-relay: expected an http:// or https:// "
		    "URL of printable ASCII, at most %d bytes",
		    DICT_VENDOR_URL_MAX_BYTES);
		return -1;
	}
	if (cfg->turn_host != NULL) {
		const char *h = cfg->turn_host;

		/* The client splits the value at ':', so no IPv6 literal.
		 * '_': chatmail relays for tests have names like
		 * _chat.example.org (chatmail.ini's mail_domain). */
		if (!cli_printable(h, DICT_VENDOR_HOST_MAX_BYTES) ||
		    strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
		    "WXYZ0123456789.-_") != strlen(h)) {
			err_set(err, "--turn-host: expected a host name or "
			    "IPv4 address");
			return -1;
		}
		if (cfg->turn_port == 0 || cfg->turn_port > 65535) {
			err_set(err, "--turn-port: expected 1 to 65535");
			return -1;
		}
		if (cfg->turn_socket == NULL || cfg->turn_timeout_ms <= 0) {
			err_set(err, "--turn-socket and --turn-timeout are "
			    "needed with --turn-host");
			return -1;
		}
	}
	return 0;
}

struct dict_vendor *
dict_vendor_new(const struct dict_vendor_config *cfg)
{
	struct dict_vendor *v = xcalloc(1, sizeof(*v));

	v->cfg = *cfg;
	return v;
}

void
dict_vendor_free(struct dict_vendor *v)
{
	if (v == NULL)
		return;
	free(v->av_value);
	free(v);
}

const char *
dict_vendor_turn_socket(const struct dict_vendor *v)
{
	return v->cfg.turn_socket;
}

int64_t
dict_vendor_turn_timeout_ms(const struct dict_vendor *v)
{
	return v->cfg.turn_timeout_ms;
}

void
dict_vendor_turn_value(const struct dict_vendor *v, const char *cred,
    size_t len, struct buf *out)
{
	/* The Python service's format: f"{turn_hostname}:3478:{res}". */
	buf_printf(out, "%s:%u:", v->cfg.turn_host, v->cfg.turn_port);
	buf_append(out, cred, len);
}

/* The file's bytes (caller frees) when it is a regular file of at most
 * DICT_APPVERSIONS_MAX_BYTES; NULL and err otherwise. */
static char *
dict_vendor_read_file(const char *path, size_t *len_out, char err[ERR_LEN])
{
	struct stat st;
	char *data;
	ssize_t n;
	size_t len = 0;
	int fd;

	/* O_NONBLOCK: a FIFO put there must not hang the loop. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
		err_set(err, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > DICT_APPVERSIONS_MAX_BYTES) {
		err_set(err, "%s: not a regular file of at most %d bytes",
		    path, DICT_APPVERSIONS_MAX_BYTES);
		close(fd);
		return NULL;
	}
	/* One byte more than allowed shows a file that grew meanwhile. */
	data = xmalloc(DICT_APPVERSIONS_MAX_BYTES + 1);
	while (len <= DICT_APPVERSIONS_MAX_BYTES && (n = read(fd, data + len,
	    DICT_APPVERSIONS_MAX_BYTES + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set(err, "%s: %s", path, strerror(errno));
			goto fail;
		}
		len += (size_t)n;
	}
	if (len > DICT_APPVERSIONS_MAX_BYTES) {
		err_set(err, "%s: larger than %d bytes", path,
		    DICT_APPVERSIONS_MAX_BYTES);
		goto fail;
	}
	close(fd);
	*len_out = len;
	return data;
fail:
	close(fd);
	free(data);
	return NULL;
}

/* Compact one-line JSON (caller frees) of a JSON object, like the Python
 * service's json.dumps(data, separators=(",", ":")), ASCII-only as its
 * default ensure_ascii; NULL and err if data is not a JSON object. */
char *
dict_vendor_appversions_compact(const char *data, size_t len,
    char err[ERR_LEN])
{
	json_error_t jerr;
	json_t *root;
	char *out;

	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		err_set(err, "invalid JSON at line %d: %s", jerr.line,
		    jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		err_set(err, "not a JSON object");
		return NULL;
	}
	out = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(root);
	if (out == NULL)
		abort();	/* only on OOM */
	return out;
}

static bool
dict_vendor_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	    a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	    a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	    a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Fill err with reason unless it is the failure reported last time. */
static void
dict_vendor_report(struct dict_vendor *v, const char *reason,
    char err[ERR_LEN])
{
	if (strcmp(v->av_reported, reason) == 0)
		return;
	snprintf(v->av_reported, sizeof(v->av_reported), "%s", reason);
	err_set(err, "app versions %s", reason);
}

/* The Python service reads the file at every lookup; a stat() per lookup
 * and a read only when it changed give the same freshness. */
static enum dict_vendor_answer
dict_vendor_appversions(struct dict_vendor *v, struct buf *out,
    char err[ERR_LEN])
{
	const char *path = v->cfg.appversions_path;
	char reason[ERR_LEN], jerr[ERR_LEN], *data, *json;
	struct stat st;
	size_t len;

	if (stat(path, &st) < 0) {
		err_set(reason, "%s: %s", path, strerror(errno));
		free(v->av_value);
		v->av_value = NULL;
		v->av_seen = false;
		dict_vendor_report(v, reason, err);
		return DICT_VENDOR_NONE;
	}
	if (!v->av_seen || !dict_vendor_same_file(&st, &v->av_st)) {
		free(v->av_value);
		v->av_value = NULL;
		v->av_seen = true;
		v->av_st = st;
		if ((data = dict_vendor_read_file(path, &len,
		    reason)) != NULL) {
			json = dict_vendor_appversions_compact(data, len,
			    jerr);
			free(data);
			if (json == NULL)
				err_set(reason, "%s: %s", path, jerr);
			else {
				v->av_value = json;
				v->av_len = strlen(json);
				v->av_reported[0] = '\0';
			}
		}
		if (v->av_value == NULL)
			dict_vendor_report(v, reason, err);
	}
	if (v->av_value == NULL)
		return DICT_VENDOR_NONE;
	buf_append(out, v->av_value, v->av_len);
	return DICT_VENDOR_VALUE;
}

enum dict_vendor_answer
dict_vendor_lookup(struct dict_vendor *v, const char *name, struct buf *out,
    char err[ERR_LEN])
{
	if (strcmp(name, "irohrelay") == 0 && v->cfg.iroh_relay != NULL) {
		buf_append_str(out, v->cfg.iroh_relay);
		return DICT_VENDOR_VALUE;
	}
	if (strcmp(name, "maxsmtprecipients") == 0 &&
	    v->cfg.max_smtp_recipients != 0) {
		buf_printf(out, "%llu",
		    (unsigned long long)v->cfg.max_smtp_recipients);
		return DICT_VENDOR_VALUE;
	}
	if (strcmp(name, "appversions") == 0 && v->cfg.appversions_path != NULL)
		return dict_vendor_appversions(v, out, err);
	if (strcmp(name, "turn") == 0 && v->cfg.turn_host != NULL)
		return DICT_VENDOR_TURN;
	return DICT_VENDOR_NONE;
}
