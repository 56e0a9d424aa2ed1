/* What all providers share; see provider.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "provider.h"
#include "xmalloc.h"

void
provider_request_add_header(struct provider_request *r, const char *fmt, ...)
{
	va_list ap;
	char *h;

	if (r->nheaders == PROVIDER_MAX_HEADERS)
		abort();	/* a provider bug, not input */
	va_start(ap, fmt);
	if (vasprintf(&h, fmt, ap) < 0)
		abort();
	va_end(ap);
	r->headers[r->nheaders++] = h;
}

static void
provider_wipe_free(char *s, size_t len)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, len);
	free(s);
}

void
provider_request_clear(struct provider_request *r)
{
	provider_wipe_free(r->url, r->url ? strlen(r->url) : 0);
	for (size_t i = 0; i < r->nheaders; i++)
		provider_wipe_free(r->headers[i], strlen(r->headers[i]));
	provider_wipe_free(r->body, r->body_len);
	memset(r, 0, sizeof(*r));
}

void
provider_result_set(struct provider_result *r, enum provider_verdict v,
    const char *reason)
{
	memset(r, 0, sizeof(*r));
	r->verdict = v;
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
}

const char *
provider_verdict_name(enum provider_verdict v)
{
	switch (v) {
	case VERDICT_OK: return "ok";
	case VERDICT_GONE: return "gone";
	case VERDICT_RENEW_AUTH: return "renew_auth";
	case VERDICT_PAUSE: return "pause";
	case VERDICT_TEMPORARY: return "temporary";
	case VERDICT_CONFIG: return "config";
	case VERDICT_OVERLOAD: return "overload";
	}
	return "unknown";
}

bool
provider_reason_copy(const char *s, const char *keep, char *out,
    size_t outlen)
{
	bool exact = true;
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (strchr(keep, *s) != NULL && n + 1 < outlen)
			out[n++] = *s;
		else
			exact = false;
	out[n] = '\0';
	return exact;
}

bool
provider_json_reason(const char *body, size_t len, size_t max,
    const char *member, const char *keep, char *out, size_t outlen)
{
	json_error_t jerr;
	json_t *root, *v;
	bool exact = false;

	out[0] = '\0';
	if (body == NULL || len == 0 || len > max ||
	    (root = json_loadb(body, len, 0, &jerr)) == NULL)
		return false;
	v = json_object_get(root, member);
	if (json_is_string(v))
		exact = provider_reason_copy(json_string_value(v), keep, out,
		    outlen);
	json_decref(root);
	return exact;
}
