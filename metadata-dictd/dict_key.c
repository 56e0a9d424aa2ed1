/*
 * What a dict key means. IMAP METADATA keys arrive as priv/<guid>/<entry>
 * or shared/<guid>/<entry> (protocol doc §6); the key holds no user name,
 * which comes with B, L and I. Two private entries are ours:
 * devicetoken (a chatmail client's push token) and messagenew (set by
 * push.lua on delivery). Both are matched on the entry name alone,
 * whatever mailbox GUID precedes it, like chatmail relay's own server.
 *
 * Server-level entries (GETMETADATA "" /shared/...) arrive under the
 * user's INBOX GUID followed by vendor/vendor.dovecot/pvt/server/ (protocol
 * doc §6); those under vendor/deltachat/ are the relay's, answered by
 * dict_vendor.c whatever the GUID, again like chatmail relay's server.
 */
#include <string.h>

#include "dictd.h"

#define DICT_KEY_PREFIX_PRIV	"priv/"
#define DICT_KEY_PREFIX_SHARED	"shared/"
/* What follows the GUID in a server-level deltachat entry's key. */
#define DICT_KEY_DELTACHAT_PATH	\
	"/vendor/vendor.dovecot/pvt/server/vendor/deltachat/"

void
dict_key_parse(const char *key, struct dict_key *out)
{
	const char *guid, *slash;

	memset(out, 0, sizeof(*out));
	if (strncmp(key, DICT_KEY_PREFIX_SHARED,
	    strlen(DICT_KEY_PREFIX_SHARED)) == 0) {
		out->kind = DICT_KEY_SHARED;
		guid = key + strlen(DICT_KEY_PREFIX_SHARED);
		slash = strchr(guid, '/');
		if (slash != NULL && slash != guid && strncmp(slash,
		    DICT_KEY_DELTACHAT_PATH,
		    strlen(DICT_KEY_DELTACHAT_PATH)) == 0) {
			out->kind = DICT_KEY_DELTACHAT;
			out->guid = guid;
			out->guid_len = (size_t)(slash - guid);
			out->name = slash + strlen(DICT_KEY_DELTACHAT_PATH);
		}
		return;
	}
	if (strncmp(key, DICT_KEY_PREFIX_PRIV,
	    strlen(DICT_KEY_PREFIX_PRIV)) != 0) {
		out->kind = DICT_KEY_INVALID;
		return;
	}
	out->kind = DICT_KEY_PRIVATE;
	guid = key + strlen(DICT_KEY_PREFIX_PRIV);
	slash = strchr(guid, '/');
	if (slash == NULL || slash == guid)
		return;
	if (strcmp(slash + 1, "devicetoken") == 0)
		out->kind = DICT_KEY_DEVICETOKEN;
	else if (strcmp(slash + 1, "messagenew") == 0)
		out->kind = DICT_KEY_MESSAGENEW;
	else
		return;
	out->guid = guid;
	out->guid_len = (size_t)(slash - guid);
}

const char *
dict_key_owner(const struct dict_key *k, const char *user)
{
	return k->kind == DICT_KEY_SHARED || k->kind == DICT_KEY_DELTACHAT ?
	    "" : user;
}

size_t
dict_key_cap_prefix(const char *key)
{
	size_t priv = strlen(DICT_KEY_PREFIX_PRIV);
	size_t shared = strlen(DICT_KEY_PREFIX_SHARED);
	const char *slash;

	if (strncmp(key, DICT_KEY_PREFIX_PRIV, priv) == 0)
		return priv;
	if (strncmp(key, DICT_KEY_PREFIX_SHARED, shared) != 0)
		return 0;
	/* Dovecot's shared keys are shared/<mailbox GUID>/<entry> (protocol
	 * doc §6); only a peer of its own writes one without the GUID. */
	slash = strchr(key + shared, '/');
	return slash != NULL && slash != key + shared ?
	    (size_t)(slash - key) + 1 : shared;
}

/* Tokens are joined by single spaces in lookups (what chatmail relay's
 * service answers), so a token can hold no space; control bytes have no
 * place in any provider's token either. */
int
dict_key_token_check(const char *token, size_t len, char err[ERR_LEN])
{
	if (len == 0) {
		err_set(err, "empty device token");
		return -1;
	}
	if (len > DICT_TOKEN_MAX_BYTES) {
		err_set(err, "device token too long (%zu bytes, max %d)", len,
		    DICT_TOKEN_MAX_BYTES);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)token[i];

		if (c <= 0x20 || c == 0x7f) {
			err_set(err, "device token holds byte 0x%02x at %zu",
			    c, i);
			return -1;
		}
	}
	return 0;
}
