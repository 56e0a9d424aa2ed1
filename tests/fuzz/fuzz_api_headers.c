/*
 * libFuzzer target for proxyd's header checks (proxyd/api/api_headers.c),
 * on every input twice:
 *
 *   - as a raw request, parsed in place as libmicrohttpd 0.9.75 does
 *     (connection.c: get_next_header_line ends a line at CRLF or a bare
 *     LF and NULs them, process_header_line finds the colon with strchr
 *     and skips spaces after it, names and values are measured with
 *     strlen, and a line whose first byte is NUL ends the headers), its
 *     headers fed to api_headers_add with the block, as api.c does. The
 *     property is the one api_headers.h promises: bytes libmicrohttpd
 *     hid from the values (after a NUL) make the request BAD_CHAR, except
 *     NULs that look like line ends: one right before a bare LF, and at
 *     the block's end a run of NULs, CRs and LFs no longer than two CRLFs
 *     (in place, "a\0\0\n\n" and "a\r\n\r\n" are the same bytes);
 *     and the converse: a block with nothing hidden, token names and
 *     values without control bytes, whatever its line ends, is not
 *     BAD_CHAR;
 *   - as "name:value" lines given with their lengths, without a block.
 *
 * Either way the verdict must agree with what the headers say: a name
 * that is not a token or a value with a control byte is BAD_CHAR, an OK
 * request has at most one Content-Length (digits, within the limit) or
 * one Transfer-Encoding (chunked) and never both, TOO_LARGE only for one
 * well-formed Content-Length over the limit; the reason is set for every
 * refusal; X-Forwarded-For is the last such header's value.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_headers.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* proxyd's default --max-body-size. */
#define FUZZ_MAX_BODY	16384
#define FUZZ_MAX_HDRS	64

struct hdr {
	const char	*name, *value;
	size_t		 name_len, value_len;
	size_t		 end;		/* the line's terminator, offset */
	bool		 bare_lf;	/* ended by LF without CR */
};

/* What mhd_parse found besides the headers. */
struct block {
	size_t		 len;		/* the header block's */
	bool		 empty_end;	/* ended by an empty line, not by
					 * one that starts with a NUL */
};

static bool
name_is(const struct hdr *h, const char *want)
{
	return h->name_len == strlen(want) &&
	    strncasecmp(h->name, want, h->name_len) == 0;
}

static bool
is_token(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z') || (c != '\0' &&
		    strchr("!#$%&'*+-.^_`|~", c) != NULL)))
			return false;
	}
	return true;
}

static bool
has_ctl(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (((unsigned char)s[i] < 0x20 && s[i] != '\t') ||
		    s[i] == 0x7f)
			return true;
	return false;
}

/* A Content-Length value: 1*DIGIT without overflow, into *n. */
static bool
digits(const char *s, size_t len, uint64_t *n)
{
	size_t i;

	*n = 0;
	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || *n > (UINT64_MAX - 9) / 10)
			return false;
		*n = *n * 10 + (uint64_t)(s[i] - '0');
	}
	return true;
}

/* What the headers say against the verdicts for FUZZ_MAX_BODY and for
 * no limit, and the header struct's X-Forwarded-For. */
static void
check_verdict(const struct api_headers *h, const struct hdr *hd, size_t n)
{
	enum api_headers_verdict v, vmax;
	const struct hdr *cl = NULL, *te = NULL, *xff = NULL;
	unsigned int ncl = 0, nte = 0;
	bool bad = false;
	const char *reason = "unset";
	uint64_t len;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!is_token(hd[i].name, hd[i].name_len) ||
		    has_ctl(hd[i].value, hd[i].value_len))
			bad = true;
		if (name_is(&hd[i], "Content-Length")) {
			cl = &hd[i];
			ncl++;
		} else if (name_is(&hd[i], "Transfer-Encoding")) {
			te = &hd[i];
			nte++;
		} else if (name_is(&hd[i], "X-Forwarded-For"))
			xff = &hd[i];
	}
	v = api_headers_verdict(h, FUZZ_MAX_BODY, &reason);
	vmax = api_headers_verdict(h, UINT64_MAX, NULL);
	if ((reason == NULL) != (v == API_HEADERS_OK))
		abort();		/* a reason for every refusal */
	if (bad && v != API_HEADERS_BAD_CHAR)
		abort();
	if (v == API_HEADERS_OK && (ncl > 1 || (ncl > 0 && nte > 0) ||
	    nte > 1 || (te != NULL && (te->value_len != 7 ||
	    strncasecmp(te->value, "chunked", 7) != 0)) ||
	    (cl != NULL && (!digits(cl->value, cl->value_len, &len) ||
	    len > FUZZ_MAX_BODY))))
		abort();
	if (v == API_HEADERS_TOO_LARGE && (ncl != 1 || nte != 0 ||
	    !digits(cl->value, cl->value_len, &len) || len <= FUZZ_MAX_BODY))
		abort();
	/* Only the body's length depends on the limit. */
	if (v == API_HEADERS_TOO_LARGE ? vmax != API_HEADERS_OK : vmax != v)
		abort();
	if (xff == NULL ? h->xff != NULL : (h->xff != xff->value ||
	    h->xff_len != xff->value_len))
		abort();
}

/* The input as libmicrohttpd 0.9.75 parses it in place (see the top):
 * true, the headers and the header block's length; false when it would
 * not call the handler with it (no complete block, a header line without
 * a colon) or when it moves a header out of the block (an obs-fold line,
 * appended to the name in its memory pool: api_headers sees a name
 * outside the block, which the unit tests cover). */
static bool
mhd_parse(char *buf, size_t len, struct hdr *hd, size_t *n_out,
    struct block *block_out)
{
	size_t pos = 0, end, n = 0;
	bool first = true;
	char *line, *colon, *v;

	for (;;) {
		for (end = pos; end < len && buf[end] != '\n' &&
		    !(buf[end] == '\r' && end + 1 < len &&
		    buf[end + 1] == '\n'); end++)
			;
		if (end == len)
			return false;		/* not a whole block */
		line = buf + pos;
		pos = end + (buf[end] == '\r' ? 2 : 1);
		hd[n].bare_lf = buf[end] == '\n';
		buf[end] = '\0';
		buf[pos - 1] = '\0';
		if (first) {			/* the request line */
			if (line[0] == '\0')
				return false;	/* MHD skips empty lines */
			first = false;
			continue;
		}
		if (line[0] == '\0') {		/* the end of the headers */
			block_out->empty_end = line == buf + end;
			break;
		}
		if (n > 0 && (line[0] == ' ' || line[0] == '\t'))
			return false;		/* obs-fold */
		if ((colon = strchr(line, ':')) == NULL || n == FUZZ_MAX_HDRS)
			return false;
		*colon = '\0';
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		hd[n].name = line;
		hd[n].name_len = strlen(line);
		hd[n].value = v;
		hd[n].value_len = strlen(v);
		hd[n].end = end;
		n++;
	}
	*n_out = n;
	block_out->len = pos;
	return true;
}

/* A block with nothing hidden and clean headers (see the top). */
static bool
clean(const char *buf, const struct hdr *hd, size_t n,
    const struct block *b)
{
	size_t i;

	if (!b->empty_end)
		return false;
	for (i = 0; i < n; i++)
		if ((size_t)(hd[i].value - buf) + hd[i].value_len !=
		    hd[i].end || !is_token(hd[i].name, hd[i].name_len) ||
		    has_ctl(hd[i].value, hd[i].value_len))
			return false;
	return true;
}

/* Bytes libmicrohttpd hid are refused, and only those (see the top); raw
 * is the input, buf its copy parsed in place. */
static void
check_hidden(const char *raw, const char *buf, const struct hdr *hd,
    size_t n, const struct block *b, enum api_headers_verdict v)
{
	size_t i, j, from, block_len = b->len;

	if (v == API_HEADERS_BAD_CHAR) {
		if (clean(buf, hd, n, b))
			abort();	/* refused for nothing */
		return;
	}
	if (n == 0)
		return;		/* no header to start from */
	for (i = 0; i + 1 < n; i++) {
		from = (size_t)(hd[i].value - buf) + hd[i].value_len;
		if (from == hd[i].end)
			continue;
		if (!(from + 1 == hd[i].end && raw[from] == '\0' &&
		    hd[i].bare_lf))
			abort();	/* hidden, and not a lone NUL + LF */
	}
	from = (size_t)(hd[n - 1].value - buf) + hd[n - 1].value_len;
	if (block_len - from > 4)
		abort();
	for (j = from; j < block_len; j++)
		if (raw[j] != '\0' && raw[j] != '\r' && raw[j] != '\n')
			abort();	/* hidden in the last line, or after */
}

static void
fuzz_in_place(const char *raw, size_t len)
{
	struct hdr hd[FUZZ_MAX_HDRS + 1];
	struct api_headers h;
	struct block b;
	size_t n, i;
	char *buf = malloc(len > 0 ? len : 1);

	memcpy(buf, raw, len);
	if (mhd_parse(buf, len, hd, &n, &b)) {
		api_headers_init(&h, buf, b.len);
		for (i = 0; i < n; i++)
			api_headers_add(&h, hd[i].name, hd[i].name_len,
			    hd[i].value, hd[i].value_len);
		check_verdict(&h, hd, n);
		check_hidden(raw, buf, hd, n, &b,
		    api_headers_verdict(&h, FUZZ_MAX_BODY, NULL));
	}
	free(buf);
}

/* "name:value" lines, LF-separated, lengths given (NULs allowed). */
static void
fuzz_listed(const char *raw, size_t len)
{
	struct hdr hd[FUZZ_MAX_HDRS];
	struct api_headers h;
	const char *p = raw, *e = raw + len, *nl, *colon;
	size_t n = 0;

	api_headers_init(&h, NULL, 0);
	while (p < e && n < FUZZ_MAX_HDRS) {
		nl = memchr(p, '\n', (size_t)(e - p));
		if (nl == NULL)
			nl = e;
		colon = memchr(p, ':', (size_t)(nl - p));
		if (colon == NULL)
			colon = nl;
		hd[n].name = p;
		hd[n].name_len = (size_t)(colon - p);
		hd[n].value = colon < nl ? colon + 1 : nl;
		hd[n].value_len = (size_t)(nl - hd[n].value);
		api_headers_add(&h, hd[n].name, hd[n].name_len, hd[n].value,
		    hd[n].value_len);
		n++;
		p = nl + 1;
	}
	check_verdict(&h, hd, n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	fuzz_in_place((const char *)data, len);
	fuzz_listed((const char *)data, len);
	return 0;
}
