/*
 * libFuzzer target for proxyd's --redis and --redis-sentinel parsers
 * (proxyd/redis/redis_addr.c), every input (up to its first NUL) read as
 * a URL and as a sentinel list, with property checks:
 *
 *   - an accepted URL names either a Unix socket (an absolute path, no
 *     host) or a host with a port in 1..65535 (no path), a database in
 *     0..65535, and bounded user name and password that the URL holds;
 *   - an accepted sentinel list has 1 to REDIS_ADDR_SENTINELS entries,
 *     as many as it has commas plus one, each a host and a port that
 *     parse again, alone, to the same endpoint.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_addr.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_url(const char *s)
{
	struct redis_addr a;
	char err[ERR_LEN];

	if (redis_addr_parse(s, &a, err) < 0) {
		if (err[0] == '\0')
			abort();		/* a refusal says why */
		return;
	}
	if (a.ep.path[0] != '\0') {
		if (a.ep.path[0] != '/' || a.ep.host[0] != '\0' ||
		    strlen(a.ep.path) > REDIS_ADDR_PATH_MAX)
			abort();
	} else if (a.ep.host[0] == '\0' || a.ep.port < 1 ||
	    a.ep.port > 65535)
		abort();
	if (a.db < 0 || a.db > 65535 ||
	    strlen(a.user) > REDIS_ADDR_SECRET_MAX ||
	    strlen(a.password) > REDIS_ADDR_SECRET_MAX ||
	    (a.password[0] != '\0' && strstr(s, a.password) == NULL))
		abort();
	redis_addr_clear(&a);
}

static void
check_sentinels(const char *s)
{
	struct redis_endpoint eps[REDIS_ADDR_SENTINELS], again;
	char err[ERR_LEN], buf[REDIS_ADDR_HOST_MAX + 16];
	size_t commas = 0;
	int n;

	if ((n = redis_sentinels_parse(s, eps, REDIS_ADDR_SENTINELS, err)) <
	    0) {
		if (err[0] == '\0')
			abort();
		return;
	}
	for (const char *p = s; *p != '\0'; p++)
		commas += *p == ',';
	if (n < 1 || n > REDIS_ADDR_SENTINELS || (size_t)n != commas + 1)
		abort();
	for (int i = 0; i < n; i++) {
		int len = snprintf(buf, sizeof(buf), strchr(eps[i].host,
		    ':') != NULL ? "[%s]:%d" : "%s:%d", eps[i].host,
		    eps[i].port);

		if (eps[i].path[0] != '\0' || redis_endpoint_parse(buf,
		    (size_t)len, &again, err) < 0 ||
		    memcmp(&again, &eps[i], sizeof(again)) != 0)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	memcpy(s, data, size);
	s[size] = '\0';
	check_url(s);
	check_sentinels(s);
	free(s);
	return 0;
}
