/* Peer and client addresses, trusted proxies, X-Forwarded-For; see
 * api_addr.h. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_addr.h"

/* The ::ffff:0:0/96 prefix of IPv4-mapped addresses. */
static const uint8_t api_addr_v4_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* IPv6 clients are counted per /64 (api_addr.h). */
#define API_ADDR_V6_CLIENT_BITS	64

static bool
api_addr_is_v4(const struct api_addr *a)
{
	return memcmp(a->b, api_addr_v4_prefix, sizeof(api_addr_v4_prefix))
	    == 0;
}

static void
api_addr_set_v4(struct api_addr *out, const void *in4)
{
	memcpy(out->b, api_addr_v4_prefix, sizeof(api_addr_v4_prefix));
	memcpy(out->b + 12, in4, 4);
}

int
api_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len,
    struct api_addr *out)
{
	if (sa->sa_family == AF_INET && len >= (socklen_t)
	    sizeof(struct sockaddr_in)) {
		api_addr_set_v4(out, &((const struct sockaddr_in *)sa)->
		    sin_addr);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)
	    sizeof(struct sockaddr_in6)) {
		memcpy(out->b, &((const struct sockaddr_in6 *)sa)->sin6_addr,
		    16);
		return 0;
	}
	return -1;
}

int
api_addr_parse(const char *s, size_t len, struct api_addr *out)
{
	char tmp[API_ADDR_STRLEN];
	struct in_addr in4;

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (memchr(s, '\0', len) != NULL)
		return -1;
	if (inet_pton(AF_INET, tmp, &in4) == 1) {
		api_addr_set_v4(out, &in4);
		return 0;
	}
	if (inet_pton(AF_INET6, tmp, out->b) == 1)
		return 0;
	return -1;
}

/* Zero the bits after the first bits. */
static void
api_addr_mask(struct api_addr *a, unsigned int bits)
{
	unsigned int i;

	for (i = 0; i < 16; i++) {
		if (bits >= 8) {
			bits -= 8;
			continue;
		}
		a->b[i] &= (uint8_t)(0xff << (8 - bits));
		bits = 0;
	}
}

void
api_addr_client(const struct api_addr *a, struct api_addr *client_out)
{
	*client_out = *a;
	if (!api_addr_is_v4(a))
		api_addr_mask(client_out, API_ADDR_V6_CLIENT_BITS);
}

bool
api_addr_equal(const struct api_addr *x, const struct api_addr *y)
{
	return memcmp(x->b, y->b, sizeof(x->b)) == 0;
}

void
api_addr_format(const struct api_addr *a, char out[API_ADDR_STRLEN])
{
	if (api_addr_is_v4(a))
		inet_ntop(AF_INET, a->b + 12, out, API_ADDR_STRLEN);
	else
		inet_ntop(AF_INET6, a->b, out, API_ADDR_STRLEN);
}

/* One "ADDR[/BITS]" of --trusted-proxy into t. */
static int
api_trust_add(struct api_trust *t, const char *s, size_t len,
    char err[ERR_LEN])
{
	const char *slash = memchr(s, '/', len);
	size_t alen = slash != NULL ? (size_t)(slash - s) : len;
	struct api_addr net;
	unsigned long bits;
	unsigned int max;
	char *end;

	if (api_addr_parse(s, alen, &net) < 0) {
		err_set(err, "--trusted-proxy: %.*s: not a numeric IPv4 or "
		    "IPv6 address", (int)alen, s);
		return -1;
	}
	max = api_addr_is_v4(&net) ? 32 : 128;
	bits = max;
	if (slash != NULL) {
		if (slash + 1 == s + len || slash[1] < '0' || slash[1] > '9') {
			err_set(err, "--trusted-proxy: %.*s: expected a prefix "
			    "length after /", (int)len, s);
			return -1;
		}
		bits = strtoul(slash + 1, &end, 10);
		if (end != s + len || bits > max) {
			err_set(err, "--trusted-proxy: %.*s: prefix length "
			    "must be 0 to %u", (int)len, s, max);
			return -1;
		}
	}
	if (t->n == API_TRUST_MAX) {
		err_set(err, "--trusted-proxy: more than %d entries",
		    API_TRUST_MAX);
		return -1;
	}
	if (max == 32)
		bits += 96;		/* within ::ffff:0:0/96 */
	api_addr_mask(&net, (unsigned int)bits);
	t->nets[t->n].net = net;
	t->nets[t->n].bits = (unsigned int)bits;
	t->n++;
	return 0;
}

static bool
api_is_space(char c)
{
	return c == ' ' || c == '\t';
}

int
api_trust_parse(const char *list, struct api_trust *out, char err[ERR_LEN])
{
	const char *p = list, *end, *comma;

	memset(out, 0, sizeof(*out));
	end = list + strlen(list);
	while (p <= end) {
		const char *s, *e;

		comma = memchr(p, ',', (size_t)(end - p));
		e = comma != NULL ? comma : end;
		for (s = p; s < e && api_is_space(*s); s++)
			;
		while (e > s && api_is_space(e[-1]))
			e--;
		if (s == e) {
			err_set(err, "--trusted-proxy: empty entry in \"%s\"",
			    list);
			return -1;
		}
		if (api_trust_add(out, s, (size_t)(e - s), err) < 0)
			return -1;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return 0;
}

bool
api_trust_match(const struct api_trust *t, const struct api_addr *a)
{
	struct api_addr m;
	size_t i;

	for (i = 0; i < t->n; i++) {
		m = *a;
		api_addr_mask(&m, t->nets[i].bits);
		if (api_addr_equal(&m, &t->nets[i].net))
			return true;
	}
	return false;
}

/* "[v6]" or "[v6]:port": the address inside the brackets. */
static int
api_xff_bracketed(const char *s, size_t len, struct api_addr *out)
{
	const char *close = memchr(s, ']', len), *p, *e = s + len;

	if (close == NULL)
		return -1;
	if (close + 1 < e) {		/* ":port" */
		if (close[1] != ':' || close + 2 == e)
			return -1;
		for (p = close + 2; p < e; p++)
			if (*p < '0' || *p > '9')
				return -1;
	}
	if (api_addr_parse(s + 1, (size_t)(close - s) - 1, out) < 0 ||
	    api_addr_is_v4(out))
		return -1;
	return 0;
}

int
api_xff_last(const char *value, size_t len, struct api_addr *out)
{
	const char *s = value, *e = value + len, *p, *colon;

	for (p = e; p > value; p--)
		if (p[-1] == ',') {
			s = p;
			break;
		}
	while (s < e && api_is_space(*s))
		s++;
	while (e > s && api_is_space(e[-1]))
		e--;
	if (s == e)
		return -1;
	if (*s == '[')
		return api_xff_bracketed(s, (size_t)(e - s), out);
	if (api_addr_parse(s, (size_t)(e - s), out) == 0)
		return 0;
	/* "v4:port": one colon, digits after it. */
	colon = memchr(s, ':', (size_t)(e - s));
	if (colon == NULL || memchr(colon + 1, ':', (size_t)(e - colon - 1))
	    != NULL || colon + 1 == e)
		return -1;
	for (p = colon + 1; p < e; p++)
		if (*p < '0' || *p > '9')
			return -1;
	if (api_addr_parse(s, (size_t)(colon - s), out) < 0 ||
	    !api_addr_is_v4(out))
		return -1;
	return 0;
}
