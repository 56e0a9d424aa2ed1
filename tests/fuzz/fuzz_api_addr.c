/*
 * libFuzzer target for proxyd's address parsers (proxyd/api/api_addr.c),
 * every input read three ways:
 *
 *   - as an address (api_addr_parse): what is accepted formats back to
 *     an address that parses to the same one, and stands for a client
 *     that is itself (IPv4) or its /64 (IPv6), idempotently;
 *   - as a --trusted-proxy list (api_trust_parse, the input up to its
 *     first NUL): a refusal says why; an accepted list has 1 to
 *     API_TRUST_MAX networks with their host bits zero and a prefix an
 *     IPv4 one keeps inside ::ffff:0:0/96, each network matches itself
 *     and its last address, and with one network, the address one bit
 *     outside its prefix does not match;
 *   - as an X-Forwarded-For value (api_xff_last): the answer depends on
 *     the last entry only (the same with anything before it and a comma,
 *     and with spaces and tabs around), an accepted address round-trips,
 *     and "[...]" gives IPv6 only.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_addr.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const uint8_t v4_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

static bool
is_v4(const struct api_addr *a)
{
	return memcmp(a->b, v4_prefix, sizeof(v4_prefix)) == 0;
}

/* a with the bits after the first bits set (ones) or cleared. */
static struct api_addr
fill_host(const struct api_addr *a, unsigned int bits, bool ones)
{
	struct api_addr r = *a;
	unsigned int i;

	for (i = bits; i < 128; i++) {
		uint8_t m = (uint8_t)(0x80 >> (i % 8));

		r.b[i / 8] = ones ? r.b[i / 8] | m : r.b[i / 8] & ~m;
	}
	return r;
}

/* An accepted address formats back to itself, and stands for a client
 * that is itself (IPv4) or its /64 (IPv6), idempotently. */
static void
check_roundtrip(const struct api_addr *a)
{
	char s[API_ADDR_STRLEN];
	struct api_addr b, c, cc, want;

	api_addr_format(a, s);
	if (api_addr_parse(s, strlen(s), &b) < 0 || !api_addr_equal(a, &b))
		abort();
	api_addr_client(a, &c);
	api_addr_client(&c, &cc);
	want = is_v4(a) ? *a : fill_host(a, 64, false);
	if (!api_addr_equal(&c, &want) || !api_addr_equal(&c, &cc))
		abort();
}

static void
fuzz_addr(const char *in, size_t len)
{
	struct api_addr a;

	if (api_addr_parse(in, len, &a) < 0)
		return;
	if (len >= API_ADDR_STRLEN || memchr(in, '\0', len) != NULL)
		abort();
	check_roundtrip(&a);
}

static void
fuzz_trust(const char *in, size_t len)
{
	char *list = malloc(len + 1), err[ERR_LEN];
	struct api_trust *t = malloc(sizeof(*t));
	struct api_addr net, last, out, masked;
	unsigned int bits;
	size_t i;

	memcpy(list, in, len);
	list[len] = '\0';
	err[0] = '\0';
	if (api_trust_parse(list, t, err) < 0) {
		if (err[0] == '\0' || memchr(err, '\0', ERR_LEN) == NULL)
			abort();
		goto done;
	}
	if (t->n == 0 || t->n > API_TRUST_MAX)
		abort();
	for (i = 0; i < t->n; i++) {
		net = t->nets[i].net;
		bits = t->nets[i].bits;
		masked = fill_host(&net, bits, false);
		if (bits > 128 || (is_v4(&net) && bits < 96) ||
		    !api_addr_equal(&masked, &net))
			abort();
		last = fill_host(&net, bits, true);
		if (!api_trust_match(t, &net) || !api_trust_match(t, &last))
			abort();
		if (t->n == 1 && bits > 0) {
			out = net;
			out.b[(bits - 1) / 8] ^= (uint8_t)(0x80 >>
			    ((bits - 1) % 8));
			if (api_trust_match(t, &out))
				abort();
		}
	}
done:
	free(t);
	free(list);
}

/* api_xff_last of s (len bytes): -1, or 0 and *out. */
static int
xff(const char *s, size_t len, struct api_addr *out)
{
	/* An exact-size copy: a read past the value shows under ASan. */
	char *copy = malloc(len > 0 ? len : 1);
	int r;

	memcpy(copy, s, len);
	r = api_xff_last(copy, len, out);
	free(copy);
	return r;
}

static void
fuzz_xff(const char *in, size_t len)
{
	static const char before[] = "198.51.100.9, [2001:db8::9]:1,";
	struct api_addr a, b;
	char *s = malloc(2 * len + sizeof(before) + 4);
	int r = xff(in, len, &a), r2;
	const char *last;

	/* The entries before the last one are the client's own words. */
	memcpy(s, before, sizeof(before) - 1);
	memcpy(s + sizeof(before) - 1, in, len);
	r2 = xff(s, sizeof(before) - 1 + len, &b);
	if (r2 != r || (r == 0 && !api_addr_equal(&a, &b)))
		abort();
	memcpy(s, in, len);
	s[len] = ',';
	memcpy(s + len + 1, in, len);
	r2 = xff(s, 2 * len + 1, &b);
	if (r2 != r || (r == 0 && !api_addr_equal(&a, &b)))
		abort();
	/* Spaces and tabs around the entry are not part of it. */
	s[0] = ' ';
	s[1] = '\t';
	memcpy(s + 2, in, len);
	s[len + 2] = ' ';
	r2 = xff(s, len + 3, &b);
	if (r2 != r || (r == 0 && !api_addr_equal(&a, &b)))
		abort();
	free(s);
	if (r < 0)
		return;
	check_roundtrip(&a);
	for (last = in + len; last > in && last[-1] != ','; last--)
		;
	while (last < in + len && (*last == ' ' || *last == '\t'))
		last++;
	if (last < in + len && *last == '[' && is_v4(&a))
		abort();		/* bracketed: IPv6 only */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	fuzz_addr((const char *)data, len);
	fuzz_trust((const char *)data, len);
	fuzz_xff((const char *)data, len);
	return 0;
}
