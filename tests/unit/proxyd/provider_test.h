/*
 * What the provider modules' unit tests share: finding a header of a
 * built request, parsing a token that must parse, and classifying an
 * answer as the push engine hands it over. Header-only (static
 * inline) so each test binary takes what it uses; include after cmocka.h.
 */
#ifndef PROVIDER_TEST_H
#define PROVIDER_TEST_H

#include <string.h>
#include <strings.h>

#include "provider.h"
#include "token.h"

/* The value of header name (any case) in r, NULL if absent; a header
 * that is there twice fails the test. */
static inline const char *
header(const struct provider_request *r, const char *name)
{
	size_t n = strlen(name);
	const char *found = NULL;

	for (size_t i = 0; i < r->nheaders; i++)
		if (strncasecmp(r->headers[i], name, n) == 0 &&
		    r->headers[i][n] == ':') {
			if (found != NULL)
				fail_msg("header %s twice", name);
			found = r->headers[i] + n + 2;
		}
	return found;
}

/* fn's verdict on status and body[0..len) with a Retry-After (ms, 0:
 * none), as the engine calls a provider's classify. */
static inline void
classify(void (*fn)(const struct provider_answer *, struct provider_result *),
    long status, const char *body, size_t len, int64_t retry_after_ms,
    struct provider_result *out)
{
	struct provider_answer a = { status, body, len, retry_after_ms };

	fn(&a, out);
}

static inline void
parse_token(const char *s, struct token *t)
{
	char err[ERR_LEN];

	if (token_parse(s, strlen(s), t, err) < 0)
		fail_msg("token %s: %s", s, err);
}

#endif
