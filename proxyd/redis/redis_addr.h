/*
 * Where proxyd's shared state lives (docs/scaling.md): the --redis URL
 * (`redis://[user:password@]host:port[/db]` or `unix:/path[?db=N]`) and
 * the --redis-sentinel list (`host:port[,host:port...]`). Pure parsing
 * with bounds, no DNS: hosts stay as written and are resolved when a
 * connection is made. Fuzzed (tests/fuzz/fuzz_redis_addr.c).
 */
#ifndef REDIS_ADDR_H
#define REDIS_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define REDIS_ADDR_HOST_MAX	255	/* a DNS name's length */
#define REDIS_ADDR_PATH_MAX	107	/* sun_path less its NUL */
#define REDIS_ADDR_SECRET_MAX	512	/* user name or password */
#define REDIS_ADDR_SENTINELS	16

struct redis_endpoint {
	char	 host[REDIS_ADDR_HOST_MAX + 1];	/* "" for a Unix socket */
	int	 port;
	char	 path[REDIS_ADDR_PATH_MAX + 1];	/* a Unix socket, or "" */
};

struct redis_addr {
	struct redis_endpoint	 ep;
	int			 db;		/* SELECT; 0 the default */
	char			 user[REDIS_ADDR_SECRET_MAX + 1];
	char			 password[REDIS_ADDR_SECRET_MAX + 1];
};

/* Parses a --redis URL: 0, or -1 and err (which never quotes the
 * password). A password in the URL is allowed but shows in `ps`: the
 * guide passes it with --redis-password-file instead. */
int	redis_addr_parse(const char *url, struct redis_addr *out,
	    char err[ERR_LEN]);
/* Parses "host:port" ([v6]:port for IPv6): 0 or -1 and err. */
int	redis_endpoint_parse(const char *s, size_t len,
	    struct redis_endpoint *out, char err[ERR_LEN]);
/* Parses a comma-separated list of up to REDIS_ADDR_SENTINELS
 * endpoints: their count (>= 1), or -1 and err. */
int	redis_sentinels_parse(const char *list, struct redis_endpoint *out,
	    size_t max, char err[ERR_LEN]);
/* Wipes the secrets. */
void	redis_addr_clear(struct redis_addr *);

#endif
