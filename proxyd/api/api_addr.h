/*
 * Who a request is from, for the HTTP intake's per-client bounds: peer
 * addresses, the list of trusted reverse proxies (--trusted-proxy), and
 * the client address a trusted proxy puts last in X-Forwarded-For.
 *
 * Every address is kept in IPv6 form (IPv4 as ::ffff:a.b.c.d), so one
 * comparison serves both families and an IPv4 peer on a dual-stack socket
 * matches an IPv4 rule. A client is an IPv4 address or an IPv6 /64: one
 * host usually holds a whole /64, so counting single IPv6 addresses would
 * give one attacker 2^64 shares.
 *
 * Pure: bytes in, struct out, no I/O, never logs.
 */
#ifndef API_ADDR_H
#define API_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "err.h"

/* The longest numeric address api_addr_format writes, with its NUL. */
#define API_ADDR_STRLEN		46	/* INET6_ADDRSTRLEN */
/* --trusted-proxy: addresses or networks at most. */
#define API_TRUST_MAX		64

struct api_addr {
	uint8_t	 b[16];
};

struct api_trust {
	size_t		 n;
	struct {
		struct api_addr	 net;	/* host bits zero */
		unsigned int	 bits;	/* prefix length in the IPv6 form */
	}		 nets[API_TRUST_MAX];
};

/* 0 and *out for an AF_INET or AF_INET6 address; -1 for anything else. */
int	api_addr_from_sockaddr(const struct sockaddr *, socklen_t,
	    struct api_addr *out);
/* 0 and *out for a numeric IPv4 or IPv6 address of exactly len bytes
 * (no brackets, no port, no spaces); -1 otherwise. */
int	api_addr_parse(const char *, size_t len, struct api_addr *out);
/* The client an address stands for: itself for IPv4, its /64 for IPv6. */
void	api_addr_client(const struct api_addr *, struct api_addr *client_out);
bool	api_addr_equal(const struct api_addr *, const struct api_addr *);
/* Numeric form (IPv4 dotted for mapped addresses) into out. */
void	api_addr_format(const struct api_addr *, char out[API_ADDR_STRLEN]);

/* "ADDR[/BITS][,ADDR[/BITS]...]", IPv4 or IPv6, spaces around commas
 * allowed: 0 and *out, or -1 and err naming the entry at fault. */
int	api_trust_parse(const char *list, struct api_trust *out,
	    char err[ERR_LEN]);
bool	api_trust_match(const struct api_trust *, const struct api_addr *);

/* The last entry of an X-Forwarded-For value (the one the proxy in front
 * of us appended): a bare IPv4 or IPv6 address, "[v6]", "[v6]:port" or
 * "v4:port", with optional spaces or tabs around it. 0 and *out, or -1
 * when that entry is not an address (earlier entries are not looked at:
 * the client may have written them). */
int	api_xff_last(const char *value, size_t len, struct api_addr *out);

#endif
