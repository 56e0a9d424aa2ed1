/*
 * Which addresses proxyd may connect to for a Web Push endpoint. The
 * endpoint is chosen by whoever made the token (docs/push-providers.md §3.6),
 * so without a check anyone could make proxyd POST to its own loopback
 * services or to the operator's private network (SSRF). This classifies
 * the address actually about to be connected to, after DNS: a name that
 * resolves to 127.0.0.1 is as bad as the literal.
 *
 * Only ADDR_PUBLIC may be connected to (unless --webpush-allow-private).
 * The classes follow IANA's special-purpose registries (RFC 6890 and
 * updates); whatever is not globally reachable unicast is refused,
 * including ranges that are merely unusual for a push service (IETF
 * protocol assignments, 6to4 relays, ORCHID, SRv6 SIDs, unallocated
 * IPv6 outside 2000::/3). Forms that carry an IPv4 address (IPv4-mapped
 * ::ffff:0:0/96, IPv4-compatible ::/96, NAT64 64:ff9b::/96 and 6to4
 * 2002::/16) are judged by that address, so ::ffff:127.0.0.1 is
 * loopback. Pure functions: no I/O, no state, thread-safe.
 */
#ifndef ADDR_POLICY_H
#define ADDR_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include <sys/socket.h>

enum addr_class {
	ADDR_PUBLIC,		/* globally reachable unicast */
	ADDR_INVALID,		/* not AF_INET/6, too short, unparsable */
	ADDR_UNSPECIFIED,	/* 0.0.0.0/8 ("this network"), :: */
	ADDR_LOOPBACK,		/* 127.0.0.0/8, ::1 */
	ADDR_PRIVATE,		/* 10/8, 172.16/12, 192.168/16 (RFC1918) */
	ADDR_SHARED,		/* 100.64/10, carrier-grade NAT (RFC6598) */
	ADDR_LINK_LOCAL,	/* 169.254/16, fe80::/10 */
	ADDR_ULA,		/* fc00::/7 (RFC 4193) */
	ADDR_SITE_LOCAL,	/* fec0::/10 (deprecated, RFC 3879) */
	ADDR_MULTICAST,		/* 224/4, ff00::/8 */
	ADDR_BROADCAST,		/* 255.255.255.255 */
	ADDR_DOCUMENTATION,	/* 192.0.2/24, 198.51.100/24, 203.0.113/24,
				 * 2001:db8::/32, 3fff::/20 */
	ADDR_BENCHMARKING,	/* 198.18/15, 2001:2::/48 */
	ADDR_DISCARD,		/* 100::/64 (RFC 6666) */
	ADDR_TEREDO,		/* 2001::/32: tunnels to anywhere */
	ADDR_RESERVED,		/* 240/4, IETF protocol assignments, the
				 * rest listed above */
};

/*
 * The class of the address in sa (AF_INET or AF_INET6; len is the
 * sockaddr's size, as getaddrinfo or accept give it). ADDR_INVALID for
 * other families or a len too short for the family.
 */
enum addr_class addr_policy_classify(const struct sockaddr *sa,
	    socklen_t len);
/* The same for raw addresses (network byte order). */
enum addr_class addr_policy_classify_v4(const uint8_t a[4]);
enum addr_class addr_policy_classify_v6(const uint8_t a[16]);
/* The same for a numeric address as text ("192.0.2.1", "::1", what
 * libcurl reports as CURLINFO_PRIMARY_IP); ADDR_INVALID if it is not
 * one (a zone id "%eth0" included). */
enum addr_class addr_policy_classify_text(const char *ip);

/* Whether c may be connected to without --webpush-allow-private. */
bool	addr_policy_is_public(enum addr_class c);
/* "public", "loopback", ...: static strings for logs and metric labels. */
const char *addr_policy_class_name(enum addr_class c);

#endif
