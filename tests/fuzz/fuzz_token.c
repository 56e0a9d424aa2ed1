/*
 * libFuzzer target for proxyd's token parser: anything may be rejected
 * (with a reason), nothing may crash, and what is accepted is consistent:
 * its parts lie inside the input and obey their kind's rules, and it
 * formats back to exactly the input, which parses to the same token.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Whether p[0..n) lies inside base[0..len). */
static int
inside(const char *p, size_t n, const char *base, size_t len)
{
	return p >= base && n <= len && (size_t)(p - base) <= len - n;
}

static void
check_parts(const struct token *t, const char *base, size_t len)
{
	if (t->device_len == 0 || !inside(t->device, t->device_len, base, len))
		abort();
	switch (t->kind) {
	case TOKEN_APNS:
	case TOKEN_APNS_SANDBOX:
		if (t->device_len % 2 != 0 ||
		    t->device_len < TOKEN_APNS_MIN_HEX ||
		    t->device_len > TOKEN_APNS_MAX_HEX)
			abort();
		break;
	case TOKEN_FCM:
		if (t->fcm_package_len == 0 ||
		    !inside(t->fcm_package, t->fcm_package_len, base, len) ||
		    memchr(t->fcm_package, ':', t->fcm_package_len) != NULL)
			abort();
		break;
	case TOKEN_UBPORTS:
		if (t->device_len % 4 != 0)
			abort();
		break;
	case TOKEN_WEBPUSH:
		if (t->device_len > TOKEN_WEBPUSH_ENDPOINT_MAX_BYTES ||
		    t->webpush.origin_len > t->device_len ||
		    t->webpush.host_len == 0 ||
		    !inside(t->webpush.host, t->webpush.host_len, t->device,
		    t->webpush.origin_len) ||
		    t->webpush.ua_public[0] != 0x04 ||
		    memchr(t->device, '|', t->device_len) != NULL)
			abort();
		break;
	default:
		abort();
	}
}

/* a (parsed from base_a) and b (from base_b) have the same parts. */
static int
same(const struct token *a, const char *base_a, const struct token *b,
    const char *base_b)
{
	if (a->kind != b->kind || a->device_len != b->device_len ||
	    a->device - base_a != b->device - base_b ||
	    a->fcm_package_len != b->fcm_package_len)
		return 0;
	if (a->kind == TOKEN_FCM &&
	    a->fcm_package - base_a != b->fcm_package - base_b)
		return 0;
	if (a->kind == TOKEN_WEBPUSH &&
	    (a->webpush.insecure != b->webpush.insecure ||
	    a->webpush.origin_len != b->webpush.origin_len ||
	    a->webpush.host - base_a != b->webpush.host - base_b ||
	    a->webpush.host_len != b->webpush.host_len ||
	    a->webpush.port != b->webpush.port ||
	    memcmp(a->webpush.ua_public, b->webpush.ua_public,
	    sizeof(a->webpush.ua_public)) != 0 ||
	    memcmp(a->webpush.auth, b->webpush.auth,
	    sizeof(a->webpush.auth)) != 0))
		return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const char *in = (const char *)data;
	struct token a, b;
	char err[ERR_LEN], *s;
	size_t n;

	err[0] = '\0';
	if (token_parse(in, len, &a, err) < 0) {
		/* Rejecting is fine, silently or without a kind is not. */
		if (err[0] == '\0' ||
		    strcmp(token_kind_name(a.kind), "unknown") == 0)
			abort();
		return 0;
	}
	check_parts(&a, in, len);
	s = token_format(&a, &n);	/* caller frees */
	if (n != len || memcmp(s, in, len) != 0)
		abort();		/* one spelling per token */
	if (token_parse(s, n, &b, err) < 0 || !same(&a, in, &b, s))
		abort();
	free(s);
	return 0;
}
