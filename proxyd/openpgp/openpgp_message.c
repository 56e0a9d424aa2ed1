/*
 * The decrypted message (RFC 9580 section 10.3): exactly one literal data
 * packet, possibly inside a compressed data packet and possibly one-pass
 * signed or preceded by signatures (which are not verified: the token's
 * authenticity comes from the AEAD, and the sender's key is unknown here).
 * Padding, marker and unknown non-critical packets (tags 40..63) are
 * skipped; an unknown critical packet invalidates the message. The literal
 * data must be UTF-8; white space at both ends is the padding chatmail
 * core adds and is trimmed, as the reference service does.
 *
 * Decompression (ZIP = raw deflate, ZLIB) goes through zlib with a hard
 * cap of OPENPGP_PLAIN_MAX_BYTES, and compressed packets nest at most
 * OPENPGP_NEST_MAX deep, so a decompression bomb costs at most that.
 */
#include <stdlib.h>

#include <zlib.h>

#include <openssl/crypto.h>

#include "openpgp_private.h"
#include "xmalloc.h"

#define MESSAGE_ZIP_BZIP2	3

/* The state of one walk over a decrypted message. */
struct message_walk {
	size_t		 packets;	/* seen at every level */
	bool		 found;
	struct buf	 literal;	/* the literal data */
};

static enum openpgp_error message_walk_list(struct message_walk *,
    const uint8_t *, size_t, int depth, char err[ERR_LEN]);

static enum openpgp_error
message_literal_body(struct message_walk *w, const uint8_t *body, size_t len,
    char err[ERR_LEN])
{
	struct openpgp_cursor c;
	const uint8_t *name;
	uint8_t format, name_len;
	uint32_t date;

	if (w->found) {
		err_set(err, "more than one literal data packet");
		return OPENPGP_ERR_MALFORMED;
	}
	/* Format ('b', 'u', 't', ...), file name, date, then the data. The
	 * format and name are informational only (section 5.9). */
	openpgp_cursor_init(&c, body, len);
	if (!openpgp_cursor_u8(&c, &format) ||
	    !openpgp_cursor_u8(&c, &name_len) ||
	    !openpgp_cursor_take(&c, name_len, &name) ||
	    !openpgp_cursor_u32(&c, &date)) {
		err_set(err, "literal data packet header truncated");
		return OPENPGP_ERR_MALFORMED;
	}
	w->found = true;
	buf_append(&w->literal, c.p, c.left);
	return OPENPGP_OK;
}

/* Inflate into a buffer of at most OPENPGP_PLAIN_MAX_BYTES. */
static enum openpgp_error
message_inflate(const uint8_t *in, size_t len, int window_bits,
    struct buf *out, char err[ERR_LEN])
{
	z_stream zs;
	uint8_t *tmp;
	int zrc;
	enum openpgp_error e = OPENPGP_OK;

	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, window_bits) != Z_OK) {
		err_set(err, "zlib inflateInit2 failed");
		return OPENPGP_ERR_INTERNAL;
	}
	/* One octet more than allowed tells "exactly at the cap" from
	 * "over it". */
	tmp = xmalloc(OPENPGP_PLAIN_MAX_BYTES + 1);
	zs.next_in = (Bytef *)in;
	zs.avail_in = (uInt)len;
	zs.next_out = tmp;
	zs.avail_out = OPENPGP_PLAIN_MAX_BYTES + 1;
	zrc = inflate(&zs, Z_FINISH);
	if (zs.total_out > OPENPGP_PLAIN_MAX_BYTES) {
		err_set(err, "compressed data inflates beyond %d octets",
		    OPENPGP_PLAIN_MAX_BYTES);
		e = OPENPGP_ERR_TOO_LARGE;
	} else if (zrc != Z_STREAM_END) {
		err_set(err, "compressed data is not a complete %s stream",
		    window_bits < 0 ? "deflate" : "zlib");
		e = OPENPGP_ERR_MALFORMED;
	} else
		buf_append(out, tmp, zs.total_out);
	inflateEnd(&zs);
	OPENSSL_cleanse(tmp, OPENPGP_PLAIN_MAX_BYTES + 1);
	free(tmp);
	return e;
}

static enum openpgp_error
message_compressed_body(struct message_walk *w, const uint8_t *body,
    size_t len, int depth, char err[ERR_LEN])
{
	struct buf inner;
	enum openpgp_error e;

	if (len < 1) {
		err_set(err, "empty compressed data packet");
		return OPENPGP_ERR_MALFORMED;
	}
	if (depth >= OPENPGP_NEST_MAX) {
		err_set(err, "compressed data nested more than %d deep",
		    OPENPGP_NEST_MAX);
		return OPENPGP_ERR_TOO_LARGE;
	}
	buf_init(&inner);
	switch (body[0]) {
	case OPENPGP_ZIP_NONE:
		buf_append(&inner, body + 1, len - 1);
		e = OPENPGP_OK;
		break;
	case OPENPGP_ZIP_ZIP:
		e = message_inflate(body + 1, len - 1, -MAX_WBITS, &inner, err);
		break;
	case OPENPGP_ZIP_ZLIB:
		e = message_inflate(body + 1, len - 1, MAX_WBITS, &inner, err);
		break;
	default:
		err_set(err, "compression algorithm %u not supported%s",
		    body[0], body[0] == MESSAGE_ZIP_BZIP2 ? " (BZip2)" : "");
		e = OPENPGP_ERR_UNSUPPORTED;
		break;
	}
	if (e == OPENPGP_OK)
		e = message_walk_list(w, (const uint8_t *)inner.data,
		    inner.len, depth + 1, err);
	if (inner.data != NULL)
		OPENSSL_cleanse(inner.data, inner.len);
	buf_clear(&inner);
	return e;
}

/* Classify a packet inside the encrypted message: OPENPGP_OK with
 * *ignored set for padding, marker and non-critical packets, OPENPGP_OK
 * for the packets of the grammar, or an error for anything else. */
static enum openpgp_error
message_classify(uint8_t tag, bool *ignored, char err[ERR_LEN])
{
	char tmp[16];

	*ignored = false;
	switch (tag) {
	case OPENPGP_TAG_SIGNATURE:
	case OPENPGP_TAG_ONE_PASS_SIG:
	case OPENPGP_TAG_LITERAL:
	case OPENPGP_TAG_COMPRESSED:
		return OPENPGP_OK;
	case OPENPGP_TAG_MARKER:
	case OPENPGP_TAG_PADDING:
		*ignored = true;
		return OPENPGP_OK;
	case OPENPGP_TAG_PKESK:
	case OPENPGP_TAG_SKESK:
	case OPENPGP_TAG_SEIPD:
	case OPENPGP_TAG_SED:
		err_set(err, "nested encrypted message (%s packet) not "
		    "supported", openpgp_packet_tag_name(tag, tmp));
		return OPENPGP_ERR_UNSUPPORTED;
	}
	if (tag > OPENPGP_TAG_CRITICAL_MAX) {
		*ignored = true;
		return OPENPGP_OK;
	}
	err_set(err, "unexpected %s packet in the encrypted message",
	    openpgp_packet_tag_name(tag, tmp));
	return OPENPGP_ERR_MALFORMED;
}

/*
 * One packet list: [Signature]* [One-Pass Signature]^n (Literal |
 * Compressed) [Signature]^n, ignoring what message_classify ignores.
 * Signatures are counted, not parsed.
 */
enum walk_state {
	WALK_PREFIX,	/* signatures, then one-pass signatures */
	WALK_OPS,	/* one-pass signatures only */
	WALK_SUFFIX,	/* after the data packet: signatures only */
};

static enum openpgp_error
message_walk_list(struct message_walk *w, const uint8_t *data, size_t len,
    int depth, char err[ERR_LEN])
{
	struct openpgp_reader r;
	struct openpgp_packet pkt;
	enum walk_state state = WALK_PREFIX;
	enum openpgp_error e = OPENPGP_OK;
	size_t ops = 0, sigs_after = 0;
	bool ignored;
	char why[ERR_LEN];
	int rc = 0;

	openpgp_packet_reader_init(&r, data, len);
	while (e == OPENPGP_OK && (rc = openpgp_packet_read(&r, &pkt,
	    why)) == 1) {
		if (++w->packets > OPENPGP_PACKETS_MAX) {
			err_set(err, "more than %d packets",
			    OPENPGP_PACKETS_MAX);
			e = OPENPGP_ERR_TOO_LARGE;
		} else if ((e = message_classify(pkt.tag, &ignored,
		    err)) != OPENPGP_OK || ignored) {
			/* nothing more to do */
		} else if (pkt.tag == OPENPGP_TAG_SIGNATURE) {
			if (state == WALK_OPS) {
				err_set(err, "signature between one-pass "
				    "signatures and data");
				e = OPENPGP_ERR_MALFORMED;
			} else if (state == WALK_SUFFIX)
				sigs_after++;
		} else if (pkt.tag == OPENPGP_TAG_ONE_PASS_SIG) {
			if (state == WALK_SUFFIX) {
				err_set(err, "one-pass signature after the "
				    "data");
				e = OPENPGP_ERR_MALFORMED;
			} else {
				state = WALK_OPS;
				ops++;
			}
		} else if (state == WALK_SUFFIX) {
			err_set(err, "more than one data packet");
			e = OPENPGP_ERR_MALFORMED;
		} else {
			state = WALK_SUFFIX;
			e = pkt.tag == OPENPGP_TAG_LITERAL ?
			    message_literal_body(w, pkt.body, pkt.len, err) :
			    message_compressed_body(w, pkt.body, pkt.len,
			    depth, err);
		}
		openpgp_packet_clear(&pkt);
	}
	if (e != OPENPGP_OK)
		return e;
	if (rc < 0) {
		err_set(err, "encrypted message: %s", why);
		return OPENPGP_ERR_MALFORMED;
	}
	if (state != WALK_SUFFIX) {
		err_set(err, "no literal data packet");
		return OPENPGP_ERR_MALFORMED;
	}
	if (sigs_after != ops) {
		err_set(err, "%zu one-pass signatures but %zu signatures",
		    ops, sigs_after);
		return OPENPGP_ERR_MALFORMED;
	}
	return OPENPGP_OK;
}

/* Length of the UTF-8 sequence at s (valid, shortest form, no surrogates,
 * at most U+10FFFF), or 0. *cp_out is the code point. */
static size_t
message_utf8_char(const uint8_t *s, size_t left, uint32_t *cp_out)
{
	uint32_t cp, min;
	size_t n;

	if (s[0] < 0x80) {
		*cp_out = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = s[0] & 0x1f;
		min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = s[0] & 0x0f;
		min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = s[0] & 0x07;
		min = 0x10000;
	} else
		return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_out = cp;
	return n;
}

/* Unicode White_Space, what Rust's str::trim removes. */
static bool
message_is_space(uint32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 ||
	    cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
	    cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
	    cp == 0x3000;
}

/* Validate s as UTF-8 without NUL and trim white space at both ends:
 * *start_out and *end_out delimit what is left. */
static enum openpgp_error
message_utf8_trim(const uint8_t *s, size_t len, size_t *start_out,
    size_t *end_out, char err[ERR_LEN])
{
	size_t i = 0, n, start = 0, end = 0;
	bool seen = false;
	uint32_t cp;

	while (i < len) {
		/* ASCII, nearly all of a token and its padding, needs no
		 * decoding: the same verdict as message_utf8_char, faster. */
		if (s[i] != 0 && s[i] < 0x80) {
			if (s[i] != ' ' && (s[i] < 0x09 || s[i] > 0x0d)) {
				if (!seen)
					start = i;
				seen = true;
				end = i + 1;
			}
			i++;
			continue;
		}
		if ((n = message_utf8_char(s + i, len - i, &cp)) == 0) {
			err_set(err, "literal data is not UTF-8 (offset %zu)",
			    i);
			return OPENPGP_ERR_UTF8;
		}
		if (cp == 0) {
			err_set(err, "literal data holds a NUL character");
			return OPENPGP_ERR_UTF8;
		}
		if (!message_is_space(cp)) {
			if (!seen)
				start = i;
			seen = true;
			end = i + n;
		}
		i += n;
	}
	*start_out = start;
	*end_out = end;
	return OPENPGP_OK;
}

enum openpgp_error
openpgp_message_literal(const uint8_t *data, size_t len, char **plain_out,
    char err[ERR_LEN])
{
	struct message_walk w;
	enum openpgp_error e;
	size_t start = 0, end = 0;

	*plain_out = NULL;
	memset(&w, 0, sizeof(w));
	buf_init(&w.literal);
	e = message_walk_list(&w, data, len, 0, err);
	if (e == OPENPGP_OK)
		e = message_utf8_trim((const uint8_t *)w.literal.data,
		    w.literal.len, &start, &end, err);
	if (e == OPENPGP_OK && end == start) {
		err_set(err, "token is empty after trimming");
		e = OPENPGP_ERR_EMPTY;
	}
	if (e == OPENPGP_OK)
		*plain_out = xmemdup0(w.literal.data + start, end - start);
	if (w.literal.data != NULL)
		OPENSSL_cleanse(w.literal.data, w.literal.len);
	buf_clear(&w.literal);
	return e;
}
