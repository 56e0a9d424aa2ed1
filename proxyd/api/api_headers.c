/* Header checks before the body is read; see api_headers.h. */
#include <string.h>
#include <strings.h>

#include "api_headers.h"

void
api_headers_init(struct api_headers *h, const char *block, size_t len)
{
	*h = (struct api_headers){ 0 };
	if (block != NULL) {
		h->block = block;
		h->end = block + len;
	}
}

static bool
api_headers_name_is(const char *name, size_t len, const char *want,
    size_t want_len)
{
	return len == want_len && strncasecmp(name, want, len) == 0;
}

#define API_HEADERS_IS(name, len, lit) \
	api_headers_name_is((name), (len), (lit), sizeof(lit) - 1)

/* RFC 9110 §5.5: a field value holds no CTL but HTAB (and no NUL: one
 * hidden by libmicrohttpd's strlen shows in api_headers_in_place). */
static bool
api_headers_has_ctl(const char *s, size_t len, bool allow_tab)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && !(allow_tab && c == '\t')) || c == 0x7f)
			return true;
	}
	return false;
}

/* RFC 9110 §5.6.2: a field name is a token. This also refuses what a
 * proxy might trim and read as another header ("Content-Length :"). */
static bool
api_headers_is_token(const char *s, size_t len)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z') || (c != '\0' &&
		    strchr(tchar, c) != NULL)))
			return false;
	}
	return true;
}

/* Whether name and value sit where the previous line ended (see
 * api_headers.h); moves h->next past this line. */
static bool
api_headers_in_place(struct api_headers *h, const char *name,
    size_t name_len, const char *value, size_t value_len)
{
	const char *p = h->next, *e = h->end;

	if (p == NULL) {
		if (name < h->block || name >= e) {
			h->end = NULL;		/* copied: cannot check */
			return true;
		}
		p = name;		/* the request line is not ours */
	}
	if (name != p || (size_t)(e - p) <= name_len || p[name_len] != '\0')
		return false;
	for (p += name_len + 1; p < e && (*p == ' ' || *p == '\t'); p++)
		;
	if (value != p || (size_t)(e - p) <= value_len || p[value_len] != '\0')
		return false;
	p += value_len + 1;		/* CR or LF */
	if (p < e && *p == '\0')
		p++;			/* LF after CR */
	h->next = p;
	return true;
}

/* After the last line only the empty line's one or two NULs. */
static bool
api_headers_block_ends(const struct api_headers *h)
{
	const char *p;

	if (h->end == NULL || h->next == NULL)
		return true;
	if (h->end - h->next > 2)
		return false;
	for (p = h->next; p < h->end; p++)
		if (*p != '\0')
			return false;
	return true;
}

/* Content-Length = 1*DIGIT (RFC 9110 §8.6); libmicrohttpd has trimmed the
 * spaces around it. A list such as "5, 5" is refused, not merged. */
static void
api_headers_length(struct api_headers *h, const char *v, size_t len)
{
	uint64_t n = 0;
	size_t i;

	if (len == 0)
		h->length_invalid = true;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9' || n > (UINT64_MAX - 9) / 10) {
			h->length_invalid = true;
			return;
		}
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	h->length = n;
}

void
api_headers_add(struct api_headers *h, const char *name, size_t name_len,
    const char *value, size_t value_len)
{
	if (!api_headers_is_token(name, name_len) ||
	    api_headers_has_ctl(value, value_len, true))
		h->bad_char = true;
	if (h->end != NULL && !api_headers_in_place(h, name, name_len, value,
	    value_len))
		h->bad_char = true;
	if (API_HEADERS_IS(name, name_len, "Content-Length")) {
		h->content_lengths++;
		api_headers_length(h, value, value_len);
	} else if (API_HEADERS_IS(name, name_len, "Transfer-Encoding")) {
		h->encodings++;
		h->encoding_chunked = API_HEADERS_IS(value, value_len,
		    "chunked");
	} else if (API_HEADERS_IS(name, name_len, "X-Forwarded-For")) {
		h->xff = value;
		h->xff_len = value_len;
	}
}

enum api_headers_verdict
api_headers_verdict(const struct api_headers *h, uint64_t max_body,
    const char **reason_out)
{
	const char *reason = NULL;
	enum api_headers_verdict v = API_HEADERS_OK;

	if (h->bad_char || !api_headers_block_ends(h)) {
		v = API_HEADERS_BAD_CHAR;
		reason = "control character in a header";
	} else if (h->content_lengths > 0 && h->encodings > 0) {
		v = API_HEADERS_BAD_ENCODING;
		reason = "Content-Length with Transfer-Encoding";
	} else if (h->encodings > 1 || (h->encodings == 1 &&
	    !h->encoding_chunked)) {
		/* Only chunked is ours to read; "gzip, chunked" or a second
		 * header could end the body elsewhere for a proxy. */
		v = API_HEADERS_BAD_ENCODING;
		reason = "Transfer-Encoding other than chunked";
	} else if (h->content_lengths > 1) {
		v = API_HEADERS_BAD_LENGTH;
		reason = "more than one Content-Length";
	} else if (h->content_lengths == 1 && h->length_invalid) {
		v = API_HEADERS_BAD_LENGTH;
		reason = "Content-Length is not a number";
	} else if (h->content_lengths == 1 && h->length > max_body) {
		v = API_HEADERS_TOO_LARGE;
		reason = "request body too large";
	}
	if (reason_out != NULL)
		*reason_out = reason;
	return v;
}
