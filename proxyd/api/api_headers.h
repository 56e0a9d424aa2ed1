/*
 * The checks a request's headers pass before the intake reads its body.
 *
 * libmicrohttpd 0.9.75 takes the first of two different Content-Length
 * headers, reads a body by Transfer-Encoding when Content-Length is there
 * too, and keeps a NUL or other control bytes inside a header value. A
 * reverse proxy in front may read the same bytes differently, which is
 * what request smuggling needs, so such requests get 400 (RFC 9112 §6.3:
 * a message with both, or with an invalid length, is to be refused, not
 * guessed at). A declared body over the limit gets 413 before any of it
 * is read.
 *
 * A NUL is the hard one: 0.9.75 measures each value with strlen(), so
 * "X: a<NUL>b" arrives as "X: a" with the rest silently dropped, and no
 * length it reports gives it away. But it parses the header block in
 * place, replacing CR, LF and the colon by NULs, so every byte of the
 * block is accounted for by the names and values it reports: each line
 * is name, NUL, optional spaces, value, then one or two NULs (LF or CRLF),
 * and the block ends with the empty line's. A header that does not start
 * where the previous line ended, or bytes left over at the end, mean
 * something was hidden from the values (a NUL, or an obs-fold line, which
 * 0.9.75 splices into the name): 400, as RFC 9112 §5.2 allows for folds.
 * The one NUL it cannot see is one right before a bare LF, which looks
 * like the CR of a CRLF; it hides nothing after it.
 * When the names do not point into the block (a libmicrohttpd that copies
 * them), this check is skipped rather than failing every request.
 *
 * Feed every header (name and value with their lengths, as
 * MHD_get_connection_values_n gives them, in order) to api_headers_add,
 * then ask api_headers_verdict. Pure: no I/O, no allocation, never logs;
 * pointers into the caller's headers are kept (xff), valid as long as
 * those are.
 */
#ifndef API_HEADERS_H
#define API_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum api_headers_verdict {
	API_HEADERS_OK,
	API_HEADERS_TOO_LARGE,		/* 413: declared length over limit */
	API_HEADERS_BAD_LENGTH,		/* 400: Content-Length twice or not
					 * a number */
	API_HEADERS_BAD_ENCODING,	/* 400: Transfer-Encoding with
					 * Content-Length, twice, or not
					 * "chunked" */
	API_HEADERS_BAD_CHAR,		/* 400: a control byte or NUL in a
					 * value (HTAB allowed), a name that
					 * is not a token, or bytes hidden
					 * between the headers */
};

struct api_headers {
	unsigned int	 content_lengths;
	bool		 length_invalid;	/* not 1*DIGIT, or overflow */
	uint64_t	 length;		/* the (last) declared one */
	unsigned int	 encodings;
	bool		 encoding_chunked;	/* the last one is "chunked" */
	bool		 bad_char;
	const char	*xff;			/* last X-Forwarded-For line */
	size_t		 xff_len;
	/* the header block, when it can be checked */
	const char	*block, *end;
	const char	*next;			/* where the next line starts */
};

/* block (len bytes): the request's header block as libmicrohttpd left it
 * (from the request line's start to past the empty line); NULL: not
 * checked. */
void	api_headers_init(struct api_headers *, const char *block,
	    size_t len);
void	api_headers_add(struct api_headers *, const char *name,
	    size_t name_len, const char *value, size_t value_len);
/* The verdict for a body limit of max_body bytes; reason_out (may be
 * NULL) gets a short phrase for the answer's body, a static string. */
enum api_headers_verdict api_headers_verdict(const struct api_headers *,
	    uint64_t max_body, const char **reason_out);

#endif
