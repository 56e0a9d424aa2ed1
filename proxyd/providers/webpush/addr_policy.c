/*
 * Address classes for the SSRF check; see addr_policy.h. Two prefix
 * tables, searched in order (the more specific prefix first where they
 * overlap). Sources: IANA IPv4 and IPv6 Special-Purpose Address
 * Registries (RFC 6890), RFC 1918, 6598, 3927, 5737, 2544, 1112, 4291,
 * 4193, 3879, 4380, 3056, 6052, 8215, 6666, 5180, 3849, 9637.
 *
 * Registry entries that IANA marks globally reachable but no push
 * service lives in (the 192.0.0.0/24 and 2001::/23 anycast blocks) are
 * refused too: refusing costs one push to a token that cannot be real,
 * accepting one wrongly could reach a network's infrastructure.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>

#include "addr_policy.h"

#define ADDR_V4_BYTES	4
#define ADDR_V6_BYTES	16

struct addr_v4_rule {
	uint8_t		 prefix[ADDR_V4_BYTES];
	unsigned int	 bits;
	enum addr_class	 class;
};

static const struct addr_v4_rule addr_v4_rules[] = {
	{ { 255, 255, 255, 255 }, 32, ADDR_BROADCAST },
	{ { 0, 0, 0, 0 }, 8, ADDR_UNSPECIFIED },	/* "this network" */
	{ { 10, 0, 0, 0 }, 8, ADDR_PRIVATE },
	{ { 100, 64, 0, 0 }, 10, ADDR_SHARED },
	{ { 127, 0, 0, 0 }, 8, ADDR_LOOPBACK },
	{ { 169, 254, 0, 0 }, 16, ADDR_LINK_LOCAL },
	{ { 172, 16, 0, 0 }, 12, ADDR_PRIVATE },
	{ { 192, 0, 0, 0 }, 24, ADDR_RESERVED },	/* IETF protocol
							 * assignments, DS-Lite,
							 * NAT64 discovery */
	{ { 192, 0, 2, 0 }, 24, ADDR_DOCUMENTATION },	/* TEST-NET-1 */
	{ { 192, 88, 99, 0 }, 24, ADDR_RESERVED },	/* 6to4 relay anycast
							 * (RFC 7526) */
	{ { 192, 168, 0, 0 }, 16, ADDR_PRIVATE },
	{ { 198, 18, 0, 0 }, 15, ADDR_BENCHMARKING },
	{ { 198, 51, 100, 0 }, 24, ADDR_DOCUMENTATION },	/* TEST-NET-2 */
	{ { 203, 0, 113, 0 }, 24, ADDR_DOCUMENTATION },	/* TEST-NET-3 */
	{ { 224, 0, 0, 0 }, 4, ADDR_MULTICAST },
	{ { 240, 0, 0, 0 }, 4, ADDR_RESERVED },		/* class E */
};

/* Where a v6 prefix carries an IPv4 address, and what to make of it. */
enum addr_embed {
	ADDR_EMBED_NONE,
	ADDR_EMBED_AT_12,	/* last 32 bits: mapped, compatible, NAT64 */
	ADDR_EMBED_COMPAT,	/* the same, but a public v4 is still not
				 * reachable this way: RESERVED */
	ADDR_EMBED_AT_2,	/* bits 16..47: 6to4 */
};

struct addr_v6_rule {
	uint8_t		 prefix[ADDR_V6_BYTES];
	unsigned int	 bits;
	enum addr_class	 class;
	enum addr_embed	 embed;
};

static const struct addr_v6_rule addr_v6_rules[] = {
	{ { 0 }, 128, ADDR_UNSPECIFIED, ADDR_EMBED_NONE },	/* :: */
	{ { [15] = 1 }, 128, ADDR_LOOPBACK, ADDR_EMBED_NONE },	/* ::1 */
	/* ::ffff:a.b.c.d: how a dual-stack socket shows an IPv4 peer. */
	{ { [10] = 0xff, [11] = 0xff }, 96, ADDR_PUBLIC, ADDR_EMBED_AT_12 },
	/* ::a.b.c.d, deprecated (RFC 4291 §2.5.5.1); :: and ::1 above. */
	{ { 0 }, 96, ADDR_RESERVED, ADDR_EMBED_COMPAT },
	/* 64:ff9b::a.b.c.d, NAT64 well-known prefix (RFC 6052): how an
	 * IPv6-only host reaches IPv4 services, so a public v4 is fine. */
	{ { 0x00, 0x64, 0xff, 0x9b }, 96, ADDR_PUBLIC, ADDR_EMBED_AT_12 },
	/* 64:ff9b:1::/48, NAT64 for local use (RFC 8215). */
	{ { 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01 }, 48, ADDR_RESERVED,
	    ADDR_EMBED_NONE },
	/* 100::/64, discard-only (RFC 6666). */
	{ { 0x01, 0x00 }, 64, ADDR_DISCARD, ADDR_EMBED_NONE },
	{ { 0x20, 0x01, 0x0d, 0xb8 }, 32, ADDR_DOCUMENTATION,
	    ADDR_EMBED_NONE },
	{ { 0x20, 0x01, 0x00, 0x02, 0x00, 0x00 }, 48, ADDR_BENCHMARKING,
	    ADDR_EMBED_NONE },
	{ { 0x20, 0x01, 0x00, 0x00 }, 32, ADDR_TEREDO, ADDR_EMBED_NONE },
	/* The rest of 2001::/23, IETF protocol assignments (ORCHID, AMT,
	 * AS112, PCP and TURN anycast). */
	{ { 0x20, 0x01 }, 23, ADDR_RESERVED, ADDR_EMBED_NONE },
	{ { 0x20, 0x02 }, 16, ADDR_PUBLIC, ADDR_EMBED_AT_2 },	/* 6to4 */
	{ { 0x3f, 0xff }, 20, ADDR_DOCUMENTATION, ADDR_EMBED_NONE },
	{ { 0xfc }, 7, ADDR_ULA, ADDR_EMBED_NONE },
	{ { 0xfe, 0x80 }, 10, ADDR_LINK_LOCAL, ADDR_EMBED_NONE },
	{ { 0xfe, 0xc0 }, 10, ADDR_SITE_LOCAL, ADDR_EMBED_NONE },
	{ { 0xff }, 8, ADDR_MULTICAST, ADDR_EMBED_NONE },
};

/* Whether the first bits of a equal those of prefix. */
static bool
addr_prefix_match(const uint8_t *a, const uint8_t *prefix, unsigned int bits)
{
	unsigned int whole = bits / 8, rest = bits % 8;
	uint8_t mask;

	if (memcmp(a, prefix, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - rest));
	return (a[whole] & mask) == (prefix[whole] & mask);
}

enum addr_class
addr_policy_classify_v4(const uint8_t a[ADDR_V4_BYTES])
{
	for (size_t i = 0; i < sizeof(addr_v4_rules) / sizeof(*addr_v4_rules);
	    i++)
		if (addr_prefix_match(a, addr_v4_rules[i].prefix,
		    addr_v4_rules[i].bits))
			return addr_v4_rules[i].class;
	return ADDR_PUBLIC;
}

enum addr_class
addr_policy_classify_v6(const uint8_t a[ADDR_V6_BYTES])
{
	enum addr_class c;

	for (size_t i = 0; i < sizeof(addr_v6_rules) / sizeof(*addr_v6_rules);
	    i++) {
		const struct addr_v6_rule *r = &addr_v6_rules[i];

		if (!addr_prefix_match(a, r->prefix, r->bits))
			continue;
		switch (r->embed) {
		case ADDR_EMBED_NONE:
			return r->class;
		case ADDR_EMBED_AT_12:
			return addr_policy_classify_v4(a + 12);
		case ADDR_EMBED_COMPAT:
			c = addr_policy_classify_v4(a + 12);
			return c == ADDR_PUBLIC ? ADDR_RESERVED : c;
		case ADDR_EMBED_AT_2:
			return addr_policy_classify_v4(a + 2);
		}
	}
	/* Global unicast is 2000::/3; IANA has allocated nothing else. */
	if ((a[0] & 0xe0) != 0x20)
		return ADDR_RESERVED;
	return ADDR_PUBLIC;
}

enum addr_class
addr_policy_classify(const struct sockaddr *sa, socklen_t len)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	if (sa == NULL || len < (socklen_t)(offsetof(struct sockaddr,
	    sa_family) + sizeof(sa->sa_family)))
		return ADDR_INVALID;
	switch (sa->sa_family) {
	case AF_INET:
		if (len < (socklen_t)sizeof(sin))
			return ADDR_INVALID;
		memcpy(&sin, sa, sizeof(sin));	/* sa may be unaligned */
		return addr_policy_classify_v4(
		    (const uint8_t *)&sin.sin_addr.s_addr);
	case AF_INET6:
		if (len < (socklen_t)sizeof(sin6))
			return ADDR_INVALID;
		memcpy(&sin6, sa, sizeof(sin6));
		return addr_policy_classify_v6(sin6.sin6_addr.s6_addr);
	default:
		return ADDR_INVALID;
	}
}

enum addr_class
addr_policy_classify_text(const char *ip)
{
	uint8_t a[ADDR_V6_BYTES];

	if (ip == NULL)
		return ADDR_INVALID;
	/* inet_pton takes dotted quads only (no "127.1", no octal) and no
	 * IPv6 zone id: anything else is not an address we connected to. */
	if (inet_pton(AF_INET, ip, a) == 1)
		return addr_policy_classify_v4(a);
	if (inet_pton(AF_INET6, ip, a) == 1)
		return addr_policy_classify_v6(a);
	return ADDR_INVALID;
}

bool
addr_policy_is_public(enum addr_class c)
{
	return c == ADDR_PUBLIC;
}

const char *
addr_policy_class_name(enum addr_class c)
{
	switch (c) {
	case ADDR_PUBLIC:		return "public";
	case ADDR_INVALID:		return "invalid";
	case ADDR_UNSPECIFIED:		return "unspecified";
	case ADDR_LOOPBACK:		return "loopback";
	case ADDR_PRIVATE:		return "private";
	case ADDR_SHARED:		return "shared";
	case ADDR_LINK_LOCAL:		return "link-local";
	case ADDR_ULA:			return "unique-local";
	case ADDR_SITE_LOCAL:		return "site-local";
	case ADDR_MULTICAST:		return "multicast";
	case ADDR_BROADCAST:		return "broadcast";
	case ADDR_DOCUMENTATION:	return "documentation";
	case ADDR_BENCHMARKING:		return "benchmarking";
	case ADDR_DISCARD:		return "discard";
	case ADDR_TEREDO:		return "teredo";
	case ADDR_RESERVED:		return "reserved";
	}
	return "unknown";
}
