/*
 * Packet framing (RFC 9580 section 4.2): OpenPGP-format headers with one-,
 * two-, five-octet and partial body lengths, and legacy-format headers.
 * Every length is checked against what is left of the input before it is
 * used. A packet with partial body lengths is joined into one owned copy,
 * so the rest of the decoder only ever sees contiguous bodies; the copy
 * is never larger than the input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openpgp_private.h"
#include "xmalloc.h"

void
openpgp_packet_reader_init(struct openpgp_reader *r, const uint8_t *p,
    size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
}

void
openpgp_packet_clear(struct openpgp_packet *pkt)
{
	free(pkt->joined);
	memset(pkt, 0, sizeof(*pkt));
}

const char *
openpgp_packet_tag_name(uint8_t tag, char tmp[16])
{
	switch (tag) {
	case OPENPGP_TAG_PKESK:		return "PKESK";
	case OPENPGP_TAG_SIGNATURE:	return "signature";
	case OPENPGP_TAG_SKESK:		return "SKESK";
	case OPENPGP_TAG_ONE_PASS_SIG:	return "one-pass signature";
	case OPENPGP_TAG_SECRET_KEY:	return "secret key";
	case OPENPGP_TAG_PUBLIC_KEY:	return "public key";
	case OPENPGP_TAG_SECRET_SUBKEY:	return "secret subkey";
	case OPENPGP_TAG_COMPRESSED:	return "compressed data";
	case OPENPGP_TAG_SED:		return "SED";
	case OPENPGP_TAG_MARKER:	return "marker";
	case OPENPGP_TAG_LITERAL:	return "literal data";
	case OPENPGP_TAG_USER_ID:	return "user ID";
	case OPENPGP_TAG_PUBLIC_SUBKEY:	return "public subkey";
	case OPENPGP_TAG_SEIPD:		return "SEIPD";
	case OPENPGP_TAG_PADDING:	return "padding";
	default:
		snprintf(tmp, 16, "tag %u", tag);
		return tmp;
	}
}

/* Partial body lengths are only allowed on data packets (section 4.2.1.4);
 * tag 20 is the non-standard AEAD packet, refused later but framed here. */
static bool
packet_allows_partial(uint8_t tag)
{
	return tag == OPENPGP_TAG_COMPRESSED || tag == OPENPGP_TAG_SED ||
	    tag == OPENPGP_TAG_LITERAL || tag == OPENPGP_TAG_SEIPD ||
	    tag == 20;
}

/* Read one OpenPGP-format length. *partial is set for a partial length. */
static bool
packet_read_length(struct openpgp_cursor *c, size_t *len_out, bool *partial)
{
	uint8_t o1, o2;
	uint32_t l4;

	*partial = false;
	if (!openpgp_cursor_u8(c, &o1))
		return false;
	if (o1 < 192) {
		*len_out = o1;
	} else if (o1 < 224) {
		if (!openpgp_cursor_u8(c, &o2))
			return false;
		*len_out = ((size_t)(o1 - 192) << 8) + o2 + 192;
	} else if (o1 < 255) {
		*len_out = (size_t)1 << (o1 & 0x1f);
		*partial = true;
	} else {
		if (!openpgp_cursor_u32(c, &l4))
			return false;
		*len_out = l4;
	}
	return true;
}

/* The body of an OpenPGP-format packet, joining partial parts. */
static int
packet_read_new_body(struct openpgp_cursor *c, struct openpgp_packet *pkt,
    char err[ERR_LEN])
{
	const uint8_t *part;
	struct buf joined;
	size_t len;
	bool partial;

	if (!packet_read_length(c, &len, &partial)) {
		err_set(err, "packet header truncated");
		return -1;
	}
	if (!partial) {
		if (!openpgp_cursor_take(c, len, &pkt->body)) {
			err_set(err, "packet length %zu exceeds the %zu "
			    "remaining octets", len, c->left);
			return -1;
		}
		pkt->len = len;
		return 0;
	}
	if (!packet_allows_partial(pkt->tag)) {
		err_set(err, "partial body length on a tag %u packet",
		    pkt->tag);
		return -1;
	}
	buf_init(&joined);
	for (;;) {
		if (!openpgp_cursor_take(c, len, &part)) {
			err_set(err, "partial body length %zu exceeds the %zu "
			    "remaining octets", len, c->left);
			buf_clear(&joined);
			return -1;
		}
		buf_append(&joined, part, len);
		if (!partial)
			break;
		if (!packet_read_length(c, &len, &partial)) {
			err_set(err, "partial body length header truncated");
			buf_clear(&joined);
			return -1;
		}
	}
	pkt->joined = (uint8_t *)buf_steal(&joined, &pkt->len);
	pkt->body = pkt->joined;
	return 0;
}

/* The body of a legacy-format packet (section 4.2.2). */
static int
packet_read_legacy_body(struct openpgp_cursor *c, uint8_t ltype,
    struct openpgp_packet *pkt, char err[ERR_LEN])
{
	uint8_t l1;
	uint16_t l2;
	uint32_t l4;
	size_t len;
	bool ok;

	switch (ltype) {
	case 0:
		ok = openpgp_cursor_u8(c, &l1);
		len = l1;
		break;
	case 1:
		ok = openpgp_cursor_u16(c, &l2);
		len = l2;
		break;
	case 2:
		ok = openpgp_cursor_u32(c, &l4);
		len = l4;
		break;
	default:	/* indeterminate: the rest of the input */
		ok = true;
		len = c->left;
		break;
	}
	if (!ok) {
		err_set(err, "legacy packet header truncated");
		return -1;
	}
	if (!openpgp_cursor_take(c, len, &pkt->body)) {
		err_set(err, "packet length %zu exceeds the %zu remaining "
		    "octets", len, c->left);
		return -1;
	}
	pkt->len = len;
	return 0;
}

int
openpgp_packet_read(struct openpgp_reader *r, struct openpgp_packet *pkt_out,
    char err[ERR_LEN])
{
	struct openpgp_cursor c;
	uint8_t o;
	int rc;

	memset(pkt_out, 0, sizeof(*pkt_out));
	if (r->off >= r->len)
		return 0;
	openpgp_cursor_init(&c, r->p + r->off, r->len - r->off);
	(void)openpgp_cursor_u8(&c, &o);
	if ((o & 0x80) == 0) {
		err_set(err, "octet 0x%02x at offset %zu is not a packet "
		    "header", o, r->off);
		return -1;
	}
	if (o & 0x40) {
		pkt_out->tag = o & 0x3f;
		rc = packet_read_new_body(&c, pkt_out, err);
	} else {
		pkt_out->tag = (o >> 2) & 0x0f;
		pkt_out->legacy_format = true;
		rc = packet_read_legacy_body(&c, o & 0x03, pkt_out, err);
	}
	if (rc == 0 && pkt_out->tag == 0) {
		err_set(err, "packet with reserved tag 0");
		rc = -1;
	}
	if (rc < 0) {
		openpgp_packet_clear(pkt_out);
		return -1;
	}
	r->off = r->len - c.left;
	return 1;
}
