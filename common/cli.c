/* Command-line value parsers; see cli.h. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "xmalloc.h"

struct cli_unit {
	const char	*name;
	int64_t		 ms;
};

static const struct cli_unit cli_duration_units[] = {
	{ "ms", 1 },
	{ "s", 1000 },
	{ "m", 60 * 1000 },
	{ "h", 3600 * 1000 },
	{ "d", 86400 * 1000 },
	{ "w", 7 * 86400 * 1000 },
};

int
cli_parse_duration_ms(const char *s, int64_t *ms_out, char err[ERR_LEN])
{
	const char *p = s;
	int64_t total = 0;

	if (*p == '\0') {
		err_set(err, "empty duration");
		return -1;
	}
	while (*p != '\0') {
		const struct cli_unit *unit = NULL;
		char *end;
		unsigned long long v;
		size_t ulen;

		if (!isdigit((unsigned char)*p))
			goto bad;
		errno = 0;
		v = strtoull(p, &end, 10);
		if (errno != 0 || v > INT64_MAX)
			goto bad;
		ulen = strspn(end, "abcdefghijklmnopqrstuvwxyz");
		if (ulen == 0) {
			if (*end != '\0' || p != s)
				goto bad;
			unit = &cli_duration_units[1];	/* bare seconds */
		}
		for (size_t i = 0; unit == NULL && i <
		    sizeof(cli_duration_units) / sizeof(*cli_duration_units);
		    i++) {
			if (strlen(cli_duration_units[i].name) == ulen &&
			    strncmp(end, cli_duration_units[i].name, ulen) == 0)
				unit = &cli_duration_units[i];
		}
		if (unit == NULL)
			goto bad;
		if ((int64_t)v > (INT64_MAX - total) / unit->ms)
			goto bad;
		total += (int64_t)v * unit->ms;
		p = end + ulen;
	}
	*ms_out = total;
	return 0;
bad:
	err_set(err, "invalid duration \"%s\" (use e.g. 250ms, 10s, 20m, "
	    "5h, 90d)", s);
	return -1;
}

int
cli_parse_size(const char *s, uint64_t *bytes_out, char err[ERR_LEN])
{
	static const struct {
		const char	*suffix;
		unsigned	 shift;
	} units[] = {
		{ "", 0 }, { "b", 0 }, { "k", 10 }, { "kib", 10 }, { "kb", 10 },
		{ "m", 20 }, { "mib", 20 }, { "mb", 20 },
		{ "g", 30 }, { "gib", 30 }, { "gb", 30 },
	};
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		goto bad;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		goto bad;
	for (size_t i = 0; i < sizeof(units) / sizeof(*units); i++) {
		if (strcasecmp(end, units[i].suffix) != 0)
			continue;
		if (v > (UINT64_MAX >> units[i].shift))
			goto bad;
		*bytes_out = (uint64_t)v << units[i].shift;
		return 0;
	}
bad:
	err_set(err, "invalid size \"%s\" (use e.g. 512, 8k, 16MiB)", s);
	return -1;
}

int
cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out,
    char err[ERR_LEN])
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (!isdigit((unsigned char)*s))
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	err_set(err, "invalid number \"%s\" (expected %llu..%llu)", s,
	    (unsigned long long)min, (unsigned long long)max);
	return -1;
}

int
cli_parse_hostport(const char *s, char **host_out, uint16_t *port_out,
    char err[ERR_LEN])
{
	const char *colon, *host = s;
	size_t hostlen;
	uint64_t port;

	colon = strrchr(s, ':');
	if (colon == NULL) {
		err_set(err, "invalid address \"%s\" (expected HOST:PORT)", s);
		return -1;
	}
	hostlen = (size_t)(colon - s);
	if (hostlen == 2 && s[0] == '[') {
		err_set(err, "invalid address \"%s\" (empty host)", s);
		return -1;
	}
	if (hostlen > 2 && s[0] == '[' && s[hostlen - 1] == ']') {
		host = s + 1;
		hostlen -= 2;
	} else if (memchr(s, ':', hostlen) != NULL) {
		err_set(err, "invalid address \"%s\" (write IPv6 as "
		    "[addr]:port)", s);
		return -1;
	}
	if (cli_parse_uint(colon + 1, 1, 65535, &port, err) < 0)
		return -1;
	*host_out = hostlen == 0 ? xstrdup("127.0.0.1") :
	    xstrndup(host, hostlen);
	*port_out = (uint16_t)port;
	return 0;
}

int
cli_parse_mode(const char *s, mode_t *mode_out, char err[ERR_LEN])
{
	unsigned long v;
	char *end;

	errno = 0;
	if (!isdigit((unsigned char)*s))
		goto bad;
	v = strtoul(s, &end, 8);
	if (*end != '\0' || errno != 0 || v > 07777)
		goto bad;
	*mode_out = (mode_t)v;
	return 0;
bad:
	err_set(err, "invalid mode \"%s\" (expected octal, e.g. 0660)", s);
	return -1;
}

bool
cli_printable(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}
