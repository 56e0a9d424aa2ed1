/*
 * --redis and --redis-sentinel; see redis_addr.h.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "redis_addr.h"

/* A decimal number in [min, max] spelled by s[0..len). */
static int
redis_number(const char *s, size_t len, long min, long max, long *out)
{
	long v = 0;

	if (len == 0 || len > 10)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* A host name or address: letters, digits, '.', '-', '_', ':' (IPv6). */
static bool
redis_host_ok(const char *s, size_t len)
{
	if (len == 0 || len > REDIS_ADDR_HOST_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && strchr(".-_:", s[i]) ==
		    NULL)
			return false;
	return true;
}

int
redis_endpoint_parse(const char *s, size_t len, struct redis_endpoint *out,
    char err[ERR_LEN])
{
	const char *colon, *host = s;
	size_t hlen;
	long port;

	memset(out, 0, sizeof(*out));
	if (len > 0 && s[0] == '[') {		/* [v6]:port */
		const char *close = memchr(s, ']', len);

		if (close == NULL || close + 1 >= s + len || close[1] != ':')
			goto bad;
		host = s + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = NULL;
		for (size_t i = 0; i < len; i++)
			if (s[i] == ':')
				colon = s + i;	/* the last one */
		if (colon == NULL)
			goto bad;
		hlen = (size_t)(colon - s);
	}
	if (!redis_host_ok(host, hlen) || redis_number(colon + 1,
	    (size_t)(s + len - colon - 1), 1, 65535, &port) < 0)
		goto bad;
	memcpy(out->host, host, hlen);
	out->port = (int)port;
	return 0;
bad:
	err_set(err, "a Redis address is host:port (or [IPv6]:port), with a "
	    "port from 1 to 65535");
	return -1;
}

int
redis_sentinels_parse(const char *list, struct redis_endpoint *out,
    size_t max, char err[ERR_LEN])
{
	size_t n = 0;
	const char *p = list;

	if (max > REDIS_ADDR_SENTINELS)
		max = REDIS_ADDR_SENTINELS;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);

		if (n == max) {
			err_set(err, "--redis-sentinel: more than %zu "
			    "addresses", max);
			return -1;
		}
		if (redis_endpoint_parse(p, len, &out[n], err) < 0)
			return -1;
		n++;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return (int)n;
}

/* user:password@ or password@ (user "default"), percent escapes kept as
 * written: Redis passwords are opaque bytes. */
static int
redis_userinfo(const char *s, size_t len, struct redis_addr *out,
    char err[ERR_LEN])
{
	const char *colon = memchr(s, ':', len);
	size_t ulen = colon != NULL ? (size_t)(colon - s) : 0;
	size_t plen = colon != NULL ? len - ulen - 1 : len;
	const char *pw = colon != NULL ? colon + 1 : s;

	if (ulen > REDIS_ADDR_SECRET_MAX || plen > REDIS_ADDR_SECRET_MAX) {
		err_set(err, "--redis: user name or password too long");
		return -1;
	}
	memcpy(out->user, s, ulen);
	memcpy(out->password, pw, plen);
	return 0;
}

int
redis_addr_parse(const char *url, struct redis_addr *out, char err[ERR_LEN])
{
	const char *p, *at, *slash, *end;
	long db = 0;

	memset(out, 0, sizeof(*out));
	if (strncmp(url, "unix:", 5) == 0) {
		const char *q = strchr(url + 5, '?');
		size_t len = q != NULL ? (size_t)(q - url - 5) :
		    strlen(url + 5);

		p = url + 5;
		while (len > 1 && p[0] == '/' && p[1] == '/') {
			p++;			/* unix:///path */
			len--;
		}
		if (len == 0 || p[0] != '/' || len > REDIS_ADDR_PATH_MAX) {
			err_set(err, "--redis unix:/path: an absolute path of "
			    "at most %d bytes", REDIS_ADDR_PATH_MAX);
			return -1;
		}
		memcpy(out->ep.path, p, len);
		if (q != NULL && (strncmp(q, "?db=", 4) != 0 ||
		    redis_number(q + 4, strlen(q + 4), 0, 65535, &db) < 0)) {
			err_set(err, "--redis unix:/path?db=N: N a number");
			return -1;
		}
		out->db = (int)db;
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0) {
		err_set(err, "--redis: redis://[user:password@]host:port[/db] "
		    "or unix:/path (TLS, rediss://, is not supported)");
		return -1;
	}
	p = url + 8;
	end = p + strlen(p);
	if ((slash = strchr(p, '/')) == NULL)
		slash = end;
	/* The last '@' before the path: a password may hold one. */
	at = NULL;
	for (const char *c = p; c < slash; c++)
		if (*c == '@')
			at = c;
	if (at != NULL) {
		if (redis_userinfo(p, (size_t)(at - p), out, err) < 0)
			goto fail;
		p = at + 1;
	}
	if (redis_endpoint_parse(p, (size_t)(slash - p), &out->ep, err) < 0)
		goto fail;
	if (slash < end && slash + 1 < end && redis_number(slash + 1,
	    (size_t)(end - slash - 1), 0, 65535, &db) < 0) {
		err_set(err, "--redis: the database after '/' is a number");
		goto fail;
	}
	out->db = (int)db;
	return 0;
fail:
	redis_addr_clear(out);
	return -1;
}

void
redis_addr_clear(struct redis_addr *a)
{
	OPENSSL_cleanse(a, sizeof(*a));
}
