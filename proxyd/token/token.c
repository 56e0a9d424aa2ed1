/*
 * Parsing decrypted device tokens; see token.h for the kinds. Each kind
 * is checked as strictly as its provider documents it
 * (docs/push-providers.md), because a token that cannot work should cost
 * the relay one 410 and no provider request:
 *
 * - APNs: hex, even length, 32..200 digits (Apple: "do not hard-code the
 *   length"; 32 bytes today, up to 100 announced).
 * - FCM: an Android package (dot-separated, at least two segments, each
 *   starting with a letter) and a registration token in [A-Za-z0-9_:-],
 *   the set notifiers enforces (§2.3).
 * - UBports: standard padded base64 (the server issues
 *   base64.StdEncoding("<appid>::<device>")), not notifiers' [A-Za-z0-9_:-],
 *   which would refuse '+', '/' and '=' (§4).
 * - Web Push: an https:// (or flagged http://) URL of at most 1000 bytes
 *   without userinfo or fragment; the UA key is 87 characters of unpadded
 *   base64url decoding to a point on P-256, the auth secret 22 characters
 *   decoding to 16 bytes (§3.1, §3.6). Both must be the canonical
 *   encoding, so that token_format reproduces the input.
 *
 * Base64 goes through OpenSSL's EVP_DecodeBlock/EncodeBlock; this file
 * only adds the URL alphabet and the strictness.
 */
#include <string.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "buf.h"
#include "token.h"
#include "xmalloc.h"

#define TOKEN_PREFIX_FCM	"fcm-"
#define TOKEN_PREFIX_UBPORTS	"ubports-"
#define TOKEN_PREFIX_WEBPUSH	"webpush:"
#define TOKEN_PREFIX_SANDBOX	"sandbox:"
#define TOKEN_SCHEME_HTTPS	"https://"
#define TOKEN_SCHEME_HTTP	"http://"
/* base64url without padding: 87 and 22 characters. */
#define TOKEN_B64URL_LEN(n)	(((n) * 4 + 2) / 3)
#define TOKEN_UA_PUBLIC_B64_LEN	TOKEN_B64URL_LEN(TOKEN_WEBPUSH_UA_PUBLIC_BYTES)
#define TOKEN_AUTH_B64_LEN	TOKEN_B64URL_LEN(TOKEN_WEBPUSH_AUTH_BYTES)
/* Largest base64 block handled here: the UA key, padded. */
#define TOKEN_B64_BLOCK_MAX	96
#define TOKEN_DNS_LABEL_MAX	63
#define TOKEN_PORT_MAX_DIGITS	5

static bool
token_has_prefix(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(s, prefix, n) == 0;
}

static bool
token_is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool
token_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
token_is_hex(char c)
{
	return token_is_digit(c) || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

static bool
token_is_alnum(char c)
{
	return token_is_alpha(c) || token_is_digit(c);
}

/* Decode exactly want bytes from the canonical unpadded base64url
 * s[0..len): the length must be the unpadded length of want bytes, and the
 * unused low bits of the last character zero (checked by encoding again). */
static int
token_b64url_decode(const char *s, size_t len, uint8_t *out, size_t want)
{
	unsigned char std[TOKEN_B64_BLOCK_MAX + 4];
	unsigned char dec[TOKEN_B64_BLOCK_MAX];
	unsigned char again[TOKEN_B64_BLOCK_MAX + 4];
	size_t n;
	int got;

	if (len != TOKEN_B64URL_LEN(want) || len > TOKEN_B64_BLOCK_MAX)
		return -1;
	for (n = 0; n < len; n++) {
		char c = s[n];

		if (token_is_alnum(c))
			std[n] = (unsigned char)c;
		else if (c == '-')
			std[n] = '+';
		else if (c == '_')
			std[n] = '/';
		else
			return -1;
	}
	while (n % 4 != 0)
		std[n++] = '=';
	/* Counts the padding as decoded zero bytes. */
	got = EVP_DecodeBlock(dec, std, (int)n);
	if (got < 0 || (size_t)got - (n - len) != want)
		return -1;
	EVP_EncodeBlock(again, dec, (int)want);
	if (memcmp(again, std, len) != 0)
		return -1;
	memcpy(out, dec, want);
	return 0;
}

/* Append the unpadded base64url encoding of p[0..len) (len small). */
static void
token_b64url_append(struct buf *b, const uint8_t *p, size_t len)
{
	unsigned char enc[TOKEN_B64_BLOCK_MAX + 4];
	size_t n;

	n = (size_t)EVP_EncodeBlock(enc, p, (int)len);
	while (n > 0 && enc[n - 1] == '=')
		n--;
	for (size_t i = 0; i < n; i++)
		if (enc[i] == '+')
			enc[i] = '-';
		else if (enc[i] == '/')
			enc[i] = '_';
	buf_append(b, enc, n);
}

/* Whether pt is the uncompressed encoding of a point on P-256 (not the
 * point at infinity). OpenSSL's error queue is left as it was. */
static bool
token_p256_point_ok(const uint8_t pt[TOKEN_WEBPUSH_UA_PUBLIC_BYTES])
{
	EC_GROUP *g;
	EC_POINT *p = NULL;
	bool ok;

	if (pt[0] != POINT_CONVERSION_UNCOMPRESSED)
		return false;
	ERR_set_mark();
	if ((g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)) == NULL ||
	    (p = EC_POINT_new(g)) == NULL)
		abort();	/* out of memory: as xmalloc */
	ok = EC_POINT_oct2point(g, p, pt, TOKEN_WEBPUSH_UA_PUBLIC_BYTES,
	    NULL) == 1 && EC_POINT_is_on_curve(g, p, NULL) == 1 &&
	    !EC_POINT_is_at_infinity(g, p);
	EC_POINT_free(p);
	EC_GROUP_free(g);
	ERR_pop_to_mark();
	return ok;
}

static int
token_parse_apns(const char *s, size_t len, struct token *out,
    char err[ERR_LEN])
{
	const char *what = out->kind == TOKEN_APNS ? "apns" : "apns-sandbox";

	for (size_t i = 0; i < len; i++)
		if (!token_is_hex(s[i])) {
			err_set(err, "%s: not a hex digit at offset %zu", what,
			    i);
			return -1;
		}
	if (len % 2 != 0) {
		err_set(err, "%s: odd number of hex digits (%zu)", what, len);
		return -1;
	}
	if (len < TOKEN_APNS_MIN_HEX || len > TOKEN_APNS_MAX_HEX) {
		err_set(err, "%s: %zu hex digits, want %d..%d", what, len,
		    TOKEN_APNS_MIN_HEX, TOKEN_APNS_MAX_HEX);
		return -1;
	}
	out->device = s;
	out->device_len = len;
	return 0;
}

/* An Android application id: segments joined by '.', at least two, each
 * [A-Za-z][A-Za-z0-9_]*. */
static bool
token_fcm_package_ok(const char *s, size_t len)
{
	size_t segments = 0, seglen = 0;

	if (len == 0 || len > TOKEN_FCM_PACKAGE_MAX_BYTES)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (seglen == 0)
				return false;
			segments++;
			seglen = 0;
		} else if (seglen == 0 ? !token_is_alpha(s[i]) :
		    !token_is_alnum(s[i]) && s[i] != '_')
			return false;
		else
			seglen++;
	}
	return segments >= 2;
}

static int
token_parse_fcm(const char *s, size_t len, struct token *out,
    char err[ERR_LEN])
{
	const char *colon = memchr(s, ':', len);
	const char *t;
	size_t plen, tlen;

	if (colon == NULL) {
		err_set(err, "fcm: no ':' between package and token");
		return -1;
	}
	plen = (size_t)(colon - s);
	if (!token_fcm_package_ok(s, plen)) {
		err_set(err, "fcm: package of %zu bytes is not an Android "
		    "application id", plen);
		return -1;
	}
	t = colon + 1;
	tlen = len - plen - 1;
	if (tlen < TOKEN_FCM_MIN_BYTES || tlen > TOKEN_FCM_MAX_BYTES) {
		err_set(err, "fcm: token of %zu bytes, want %d..%d", tlen,
		    TOKEN_FCM_MIN_BYTES, TOKEN_FCM_MAX_BYTES);
		return -1;
	}
	for (size_t i = 0; i < tlen; i++)
		if (!token_is_alnum(t[i]) && t[i] != '_' && t[i] != ':' &&
		    t[i] != '-') {
			err_set(err, "fcm: token byte at offset %zu not in "
			    "[A-Za-z0-9_:-]", i);
			return -1;
		}
	out->fcm_package = s;
	out->fcm_package_len = plen;
	out->device = t;
	out->device_len = tlen;
	return 0;
}

static int
token_parse_ubports(const char *s, size_t len, struct token *out,
    char err[ERR_LEN])
{
	size_t pad = 0;

	if (len < TOKEN_UBPORTS_MIN_BYTES || len > TOKEN_UBPORTS_MAX_BYTES) {
		err_set(err, "ubports: token of %zu bytes, want %d..%d", len,
		    TOKEN_UBPORTS_MIN_BYTES, TOKEN_UBPORTS_MAX_BYTES);
		return -1;
	}
	if (len % 4 != 0) {
		err_set(err, "ubports: %zu bytes is not padded base64", len);
		return -1;
	}
	while (pad < 2 && s[len - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < len - pad; i++)
		if (!token_is_alnum(s[i]) && s[i] != '+' && s[i] != '/') {
			err_set(err, "ubports: byte at offset %zu is not "
			    "standard base64", i);
			return -1;
		}
	out->device = s;
	out->device_len = len;
	return 0;
}

/* A DNS name (labels of [A-Za-z0-9-], not starting or ending with '-') or
 * an IPv4 address, which has the same shape. */
static bool
token_host_name_ok(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > TOKEN_WEBPUSH_HOST_MAX_BYTES)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if (token_is_alnum(s[i]) ||
		    (s[i] == '-' && label > 0)) {
			if (++label > TOKEN_DNS_LABEL_MAX)
				return false;
		} else
			return false;
	}
	return true;
}

/* "[...]" holding hex digits, ':' and '.' (an IPv6 literal; zone ids are
 * refused). Whether it is a valid address is left to the resolver. */
static bool
token_host_ipv6_ok(const char *s, size_t len)
{
	if (len < 4 || s[0] != '[' || s[len - 1] != ']')
		return false;
	for (size_t i = 1; i < len - 1; i++)
		if (!token_is_hex(s[i]) && s[i] != ':' && s[i] != '.')
			return false;
	return true;
}

/* RFC 3986 pchar plus '/' and '?' (path and query); '%' must start a
 * %HH escape. Refuses '#': a fragment is never sent. */
static size_t
token_url_rest_bad(const char *s, size_t len)
{
	static const char extra[] = "-._~!$&'()*+,;=:@/?";

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			if (i + 2 >= len || !token_is_hex(s[i + 1]) ||
			    !token_is_hex(s[i + 2]))
				return i + 1;
			i += 2;
		} else if (!token_is_alnum(s[i]) &&
		    strchr(extra, s[i]) == NULL)
			return i + 1;
	}
	return 0;
}

static int
token_parse_endpoint(const char *s, size_t len, struct token *out,
    char err[ERR_LEN])
{
	struct token_webpush *w = &out->webpush;
	size_t i, auth, auth_end, host_end, bad;
	unsigned long port = 0;

	if (len > TOKEN_WEBPUSH_ENDPOINT_MAX_BYTES) {
		err_set(err, "webpush: endpoint of %zu bytes, at most %d", len,
		    TOKEN_WEBPUSH_ENDPOINT_MAX_BYTES);
		return -1;
	}
	if (token_has_prefix(s, len, TOKEN_SCHEME_HTTPS))
		i = strlen(TOKEN_SCHEME_HTTPS);
	else if (token_has_prefix(s, len, TOKEN_SCHEME_HTTP)) {
		i = strlen(TOKEN_SCHEME_HTTP);
		w->insecure = true;
	} else {
		err_set(err, "webpush: endpoint is not an https:// or http:// "
		    "URL");
		return -1;
	}
	auth = i;
	while (i < len && s[i] != '/' && s[i] != '?')
		i++;
	auth_end = i;
	if (memchr(s + auth, '@', auth_end - auth) != NULL) {
		err_set(err, "webpush: endpoint has userinfo");
		return -1;
	}
	if (auth < auth_end && s[auth] == '[') {
		const char *close = memchr(s + auth, ']', auth_end - auth);

		host_end = close == NULL ? auth_end : (size_t)(close - s) + 1;
		if (!token_host_ipv6_ok(s + auth, host_end - auth)) {
			err_set(err, "webpush: endpoint host is not an IPv6 "
			    "literal");
			return -1;
		}
	} else {
		host_end = auth;
		while (host_end < auth_end && s[host_end] != ':')
			host_end++;
		if (!token_host_name_ok(s + auth, host_end - auth)) {
			err_set(err, "webpush: endpoint host of %zu bytes is "
			    "not a host name", host_end - auth);
			return -1;
		}
	}
	if (host_end < auth_end) {
		size_t digits = auth_end - host_end - 1;

		if (s[host_end] != ':' || digits == 0 ||
		    digits > TOKEN_PORT_MAX_DIGITS) {
			err_set(err, "webpush: endpoint port is malformed");
			return -1;
		}
		for (size_t j = host_end + 1; j < auth_end; j++) {
			if (!token_is_digit(s[j])) {
				err_set(err, "webpush: endpoint port is "
				    "malformed");
				return -1;
			}
			port = port * 10 + (unsigned long)(s[j] - '0');
		}
		if (port == 0 || port > UINT16_MAX) {
			err_set(err, "webpush: endpoint port %lu out of "
			    "range", port);
			return -1;
		}
	}
	if ((bad = token_url_rest_bad(s + auth_end, len - auth_end)) != 0) {
		err_set(err, "webpush: endpoint byte at offset %zu not "
		    "allowed in a URL path or query", auth_end + bad - 1);
		return -1;
	}
	out->device = s;
	out->device_len = len;
	w->origin_len = auth_end;
	w->host = s + auth;
	w->host_len = host_end - auth;
	w->port = (uint16_t)port;
	return 0;
}

static int
token_parse_webpush(const char *s, size_t len, struct token *out,
    char err[ERR_LEN])
{
	const char *bar1, *bar2, *ua, *auth;
	size_t ua_len, auth_len;

	if ((bar1 = memchr(s, '|', len)) == NULL ||
	    (bar2 = memchr(bar1 + 1, '|', len - (size_t)(bar1 + 1 - s))) ==
	    NULL) {
		err_set(err, "webpush: want <endpoint>|<ua_public>|<auth>");
		return -1;
	}
	ua = bar1 + 1;
	ua_len = (size_t)(bar2 - ua);
	auth = bar2 + 1;
	auth_len = len - (size_t)(auth - s);
	/* A third '|' fails the base64url alphabet of auth below. */
	if (token_parse_endpoint(s, (size_t)(bar1 - s), out, err) < 0)
		return -1;
	if (token_b64url_decode(ua, ua_len, out->webpush.ua_public,
	    TOKEN_WEBPUSH_UA_PUBLIC_BYTES) < 0) {
		err_set(err, "webpush: ua_public of %zu bytes is not %d "
		    "characters of canonical unpadded base64url", ua_len,
		    TOKEN_UA_PUBLIC_B64_LEN);
		return -1;
	}
	if (!token_p256_point_ok(out->webpush.ua_public)) {
		err_set(err, "webpush: ua_public is not an uncompressed point "
		    "on P-256");
		return -1;
	}
	if (token_b64url_decode(auth, auth_len, out->webpush.auth,
	    TOKEN_WEBPUSH_AUTH_BYTES) < 0) {
		err_set(err, "webpush: auth of %zu bytes is not %d characters "
		    "of canonical unpadded base64url", auth_len,
		    TOKEN_AUTH_B64_LEN);
		return -1;
	}
	return 0;
}

int
token_parse(const char *s, size_t len, struct token *out, char err[ERR_LEN])
{
	size_t skip = 0;

	memset(out, 0, sizeof(*out));
	/* Classify first, so that a failure still has a kind for metrics. */
	if (token_has_prefix(s, len, TOKEN_PREFIX_FCM)) {
		out->kind = TOKEN_FCM;
		skip = strlen(TOKEN_PREFIX_FCM);
	} else if (token_has_prefix(s, len, TOKEN_PREFIX_UBPORTS)) {
		out->kind = TOKEN_UBPORTS;
		skip = strlen(TOKEN_PREFIX_UBPORTS);
	} else if (token_has_prefix(s, len, TOKEN_PREFIX_WEBPUSH)) {
		out->kind = TOKEN_WEBPUSH;
		skip = strlen(TOKEN_PREFIX_WEBPUSH);
	} else if (token_has_prefix(s, len, TOKEN_PREFIX_SANDBOX)) {
		out->kind = TOKEN_APNS_SANDBOX;
		skip = strlen(TOKEN_PREFIX_SANDBOX);
	} else
		out->kind = TOKEN_APNS;

	if (len == 0) {
		err_set(err, "token: empty");
		return -1;
	}
	if (len > TOKEN_MAX_BYTES) {
		err_set(err, "token: %zu bytes, at most %d", len,
		    TOKEN_MAX_BYTES);
		return -1;
	}
	/* No kind has whitespace, control or non-ASCII bytes; refusing them
	 * here also keeps them out of URLs and headers. (openpgp: plaintexts
	 * are space-padded: the decryptor trims them.) */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c >= 0x7f) {
			err_set(err, "token: control, whitespace or non-ASCII "
			    "byte at offset %zu", i);
			return -1;
		}
	}
	switch (out->kind) {
	case TOKEN_FCM:
		return token_parse_fcm(s + skip, len - skip, out, err);
	case TOKEN_UBPORTS:
		return token_parse_ubports(s + skip, len - skip, out, err);
	case TOKEN_WEBPUSH:
		return token_parse_webpush(s + skip, len - skip, out, err);
	case TOKEN_APNS:
	case TOKEN_APNS_SANDBOX:
		break;
	}
	return token_parse_apns(s + skip, len - skip, out, err);
}

char *
token_format(const struct token *t, size_t *len_out)
{
	struct buf b;

	buf_init(&b);
	switch (t->kind) {
	case TOKEN_APNS:
		break;
	case TOKEN_APNS_SANDBOX:
		buf_append_str(&b, TOKEN_PREFIX_SANDBOX);
		break;
	case TOKEN_FCM:
		buf_append_str(&b, TOKEN_PREFIX_FCM);
		buf_append(&b, t->fcm_package, t->fcm_package_len);
		buf_append_char(&b, ':');
		break;
	case TOKEN_UBPORTS:
		buf_append_str(&b, TOKEN_PREFIX_UBPORTS);
		break;
	case TOKEN_WEBPUSH:
		buf_append_str(&b, TOKEN_PREFIX_WEBPUSH);
		break;
	}
	buf_append(&b, t->device, t->device_len);
	if (t->kind == TOKEN_WEBPUSH) {
		buf_append_char(&b, '|');
		token_b64url_append(&b, t->webpush.ua_public,
		    sizeof(t->webpush.ua_public));
		buf_append_char(&b, '|');
		token_b64url_append(&b, t->webpush.auth,
		    sizeof(t->webpush.auth));
	}
	return buf_steal(&b, len_out);
}

const char *
token_kind_name(enum token_kind kind)
{
	switch (kind) {
	case TOKEN_APNS:
		return "apns";
	case TOKEN_APNS_SANDBOX:
		return "apns-sandbox";
	case TOKEN_FCM:
		return "fcm";
	case TOKEN_UBPORTS:
		return "ubports";
	case TOKEN_WEBPUSH:
		return "webpush";
	}
	return "unknown";
}
