/*
 * The files of chatmail relay's Python metadata service (chatmaild), read
 * for --import-chatmaild (chatmaild_import.c). Pure: bytes in, structs
 * out, no I/O. The formats, from chatmail/relay's
 * chatmaild/src/chatmaild/{metadata,notifier,filedict}.py:
 *
 *   <vmail>/<addr>/metadata.json   json.dump() of a dict (FileDict, written
 *                                  to a .tmp file and renamed) whose
 *                                  "devicetoken" member is either
 *     {"<token>": <unix seconds>, ...}  since chatmail relay 1.7 (tokens
 *                                       then expire after 90 days), or
 *     ["<token>", ...]                  before: no timestamps.
 *
 *   <vmail>/pending_notifications/<uuid4 hex>   one queued push, written
 *                                  as "<uuid>.tmp" and renamed, holding
 *                                  "<addr>\n<start unix seconds>\n<token>"
 *                                  (no final newline; since relay 1.2).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dictd.h"
#include "xmalloc.h"

/* chatmaild's own device-token key (Metadata.DEVICETOKEN_KEY). */
#define CHATMAILD_DEVICETOKEN_KEY	"devicetoken"
/* Start times are unix seconds; this keeps their milliseconds in int64. */
#define CHATMAILD_TS_MAX_DIGITS		15

static void
chatmaild_tokens_add(struct chatmaild_tokens *t, const char *token,
    size_t len, int64_t ts)
{
	t->v = dict_array_grow(t->v, t->n, &t->cap, sizeof(*t->v), 4);
	t->v[t->n].token = xmemdup0(token, len);
	t->v[t->n].len = len;
	t->v[t->n].ts = ts;
	t->n++;
}

void
chatmaild_tokens_clear(struct chatmaild_tokens *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].token);
	free(t->v);
	memset(t, 0, sizeof(*t));
}

int
chatmaild_parse_metadata(const char *data, size_t len,
    struct chatmaild_tokens *out, char err[ERR_LEN])
{
	json_error_t jerr;
	json_t *root, *tokens, *v;
	const char *key;
	size_t i;

	memset(out, 0, sizeof(out[0]));
	/* No JSON_ALLOW_NUL: a NUL in a token is refused with the file. */
	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		/* Position only: jansson's text quotes the input near the
		 * error, which may be a device token (a secret). */
		err_set(err, "invalid JSON at line %d, column %d", jerr.line,
		    jerr.column);
		return -1;
	}
	if (!json_is_object(root)) {
		err_set(err, "not a JSON object");
		goto fail;
	}
	/* Other members: chatmaild keeps none, and nothing reads them. */
	tokens = json_object_get(root, CHATMAILD_DEVICETOKEN_KEY);
	if (tokens == NULL) {
		json_decref(root);
		return 0;
	}
	if (json_is_array(tokens)) {
		json_array_foreach(tokens, i, v) {
			if (!json_is_string(v)) {
				err_set(err, "devicetoken[%zu] is not a "
				    "string", i);
				goto fail;
			}
			chatmaild_tokens_add(out, json_string_value(v),
			    json_string_length(v), CHATMAILD_TS_NONE);
		}
	} else if (json_is_object(tokens)) {
		json_object_foreach(tokens, key, v) {
			/* chatmaild writes int(time.time()); anything else
			 * would have crashed its own expiry check. */
			if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
			    json_integer_value(v) > INT64_MAX / 1000) {
				err_set(err, "devicetoken timestamp is not a "
				    "positive integer");
				goto fail;
			}
			chatmaild_tokens_add(out, key, strlen(key),
			    json_integer_value(v));
		}
	} else {
		err_set(err, "devicetoken is neither a list nor an object");
		goto fail;
	}
	json_decref(root);
	return 0;
fail:
	json_decref(root);
	chatmaild_tokens_clear(out);
	return -1;
}

/* RFC 5322 atext plus '.', the bytes of a dot-atom local part. */
static bool
chatmaild_local_byte(unsigned char c)
{
	/* c != 0: strchr() finds the terminating NUL too. */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') ||
	    (c != 0 && strchr(".!#$%&'*+-=?^_`{|}~", c) != NULL);
}

static bool
chatmaild_domain_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '-';
}

int
chatmaild_parse_addr(const char *s, size_t len, char err[ERR_LEN])
{
	const char *at = memchr(s, '@', len);
	size_t local, domain;

	if (len < 3 || len > CHATMAILD_ADDR_MAX_BYTES) {
		err_set(err, "address length %zu not in 3..%d", len,
		    CHATMAILD_ADDR_MAX_BYTES);
		return -1;
	}
	if (at == NULL || memchr(at + 1, '@', len - (size_t)(at - s) - 1)) {
		err_set(err, "address needs exactly one @");
		return -1;
	}
	local = (size_t)(at - s);
	domain = len - local - 1;
	/* RFC 5321 §4.5.3.1.1: a local part of at most 64 octets. */
	if (local == 0 || local > 64 || domain == 0) {
		err_set(err, "address has an empty or over-long part");
		return -1;
	}
	if (s[0] == '.' || at[-1] == '.' || at[1] == '.' || at[1] == '-' ||
	    s[len - 1] == '.' || s[len - 1] == '-') {
		err_set(err, "address part starts or ends with . or -");
		return -1;
	}
	for (size_t i = 0; i < local; i++)
		if (!chatmaild_local_byte((unsigned char)s[i])) {
			err_set(err, "address holds byte 0x%02x",
			    (unsigned char)s[i]);
			return -1;
		}
	for (size_t i = local + 1; i < len; i++)
		if (!chatmaild_domain_byte((unsigned char)s[i])) {
			err_set(err, "address domain holds byte 0x%02x",
			    (unsigned char)s[i]);
			return -1;
		}
	return 0;
}

void
chatmaild_pending_clear(struct chatmaild_pending *p)
{
	free(p->addr);
	free(p->token);
	memset(p, 0, sizeof(*p));
}

int
chatmaild_parse_pending(const char *data, size_t len,
    struct chatmaild_pending *out, char err[ERR_LEN])
{
	const char *nl1, *nl2, *ts, *end = data + len;
	int64_t v = 0;

	memset(out, 0, sizeof(*out));
	/* PersistentQueueItem.read_from_path: split("\n", maxsplit=2). */
	if ((nl1 = memchr(data, '\n', len)) == NULL ||
	    (nl2 = memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1))) == NULL) {
		err_set(err, "not three lines <addr>, <start time>, <token>");
		return -1;
	}
	if (chatmaild_parse_addr(data, (size_t)(nl1 - data), err) < 0)
		return -1;
	ts = nl1 + 1;
	if (nl2 == ts || nl2 - ts > CHATMAILD_TS_MAX_DIGITS) {
		err_set(err, "start time is not 1 to %d digits",
		    CHATMAILD_TS_MAX_DIGITS);
		return -1;
	}
	for (const char *p = ts; p < nl2; p++) {
		if (*p < '0' || *p > '9') {
			err_set(err, "start time is not a decimal number");
			return -1;
		}
		v = v * 10 + (*p - '0');
	}
	out->addr = xmemdup0(data, (size_t)(nl1 - data));
	out->start_ts = v;
	/* Checked by the caller (dict_key_token_check): the token is the
	 * rest, as chatmaild reads it. */
	out->token_len = (size_t)(end - nl2 - 1);
	out->token = xmemdup0(nl2 + 1, out->token_len);
	return 0;
}
