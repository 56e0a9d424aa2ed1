/*
 * openpgp_decrypt_token: from "openpgp:<base64>" to the device token.
 *
 * The top-level message (RFC 9580 section 10.3) must be: PKESKs (and
 * SKESKs, skipped), then exactly one SEIPD packet, with Marker, Padding
 * and unknown non-critical packets allowed anywhere and ignored. The whole
 * packet list is framed and checked before any key work, so a truncated
 * or padded-out message is "malformed" whatever its keys. The SEIPD's
 * version and algorithms are checked next ("unsupported"), then only the
 * PKESKs of the matching version are tried (v6 for SEIPDv2, v3 for
 * SEIPDv1; section 10.3.2.1 says others MUST be discarded), then the data
 * is decrypted and the literal packet extracted (openpgp_message.c).
 */
#include <stdlib.h>

#include <openssl/crypto.h>

#include "base64.h"
#include "openpgp_private.h"
#include "xmalloc.h"

#define DECRYPT_PREFIX	"openpgp:"

const char *
openpgp_error_name(enum openpgp_error e)
{
	switch (e) {
	case OPENPGP_OK:		return "ok";
	case OPENPGP_ERR_BASE64:	return "base64";
	case OPENPGP_ERR_MALFORMED:	return "malformed";
	case OPENPGP_ERR_NO_KEY:	return "no-key";
	case OPENPGP_ERR_UNWRAP:	return "unwrap";
	case OPENPGP_ERR_AUTH:		return "auth";
	case OPENPGP_ERR_UNSUPPORTED:	return "unsupported";
	case OPENPGP_ERR_UTF8:		return "utf8";
	case OPENPGP_ERR_EMPTY:		return "empty";
	case OPENPGP_ERR_TOO_LARGE:	return "too-large";
	case OPENPGP_ERR_INTERNAL:	return "internal";
	}
	return "unknown";
}

/* The packets of the top-level message that matter. */
struct decrypt_msg {
	struct openpgp_packet	 pkts[OPENPGP_PACKETS_MAX];
	size_t			 npkts;
	const struct openpgp_packet	*seipd;
};

static void
decrypt_msg_clear(struct decrypt_msg *m)
{
	for (size_t i = 0; i < m->npkts; i++)
		openpgp_packet_clear(&m->pkts[i]);
	m->npkts = 0;
}

/* Frame the top-level packets and check their order. */
static enum openpgp_error
decrypt_frame(const uint8_t *bin, size_t len, struct decrypt_msg *m,
    char err[ERR_LEN])
{
	struct openpgp_reader r;
	struct openpgp_packet pkt;
	size_t seen = 0;
	char why[ERR_LEN], tmp[16];
	int rc;

	openpgp_packet_reader_init(&r, bin, len);
	while ((rc = openpgp_packet_read(&r, &pkt, why)) == 1) {
		if (++seen > OPENPGP_PACKETS_MAX) {
			openpgp_packet_clear(&pkt);
			err_set(err, "more than %d packets",
			    OPENPGP_PACKETS_MAX);
			return OPENPGP_ERR_TOO_LARGE;
		}
		switch (pkt.tag) {
		case OPENPGP_TAG_PKESK:
		case OPENPGP_TAG_SKESK:
		case OPENPGP_TAG_SEIPD:
			if (m->seipd != NULL) {
				err_set(err, "%s packet after the encrypted "
				    "data", openpgp_packet_tag_name(pkt.tag,
				    tmp));
				openpgp_packet_clear(&pkt);
				return OPENPGP_ERR_MALFORMED;
			}
			m->pkts[m->npkts] = pkt;
			if (pkt.tag == OPENPGP_TAG_SEIPD)
				m->seipd = &m->pkts[m->npkts];
			m->npkts++;
			continue;
		case OPENPGP_TAG_MARKER:
		case OPENPGP_TAG_PADDING:
			openpgp_packet_clear(&pkt);
			continue;
		case OPENPGP_TAG_SED:
			openpgp_packet_clear(&pkt);
			err_set(err, "SED packet (no integrity protection) "
			    "refused");
			return OPENPGP_ERR_UNSUPPORTED;
		case 20:
			openpgp_packet_clear(&pkt);
			err_set(err, "non-standard AEAD encrypted data packet "
			    "(tag 20) not supported");
			return OPENPGP_ERR_UNSUPPORTED;
		}
		if (pkt.tag > OPENPGP_TAG_CRITICAL_MAX) {
			openpgp_packet_clear(&pkt);
			continue;
		}
		err_set(err, "unexpected %s packet: not an encrypted message",
		    openpgp_packet_tag_name(pkt.tag, tmp));
		openpgp_packet_clear(&pkt);
		return OPENPGP_ERR_MALFORMED;
	}
	if (rc < 0) {
		err_set(err, "%s", why);
		return OPENPGP_ERR_MALFORMED;
	}
	if (m->seipd == NULL) {
		err_set(err, seen == 0 ? "empty message" :
		    "no encrypted data (SEIPD) packet");
		return OPENPGP_ERR_MALFORMED;
	}
	return OPENPGP_OK;
}

/* The first PKESK of the matching version that yields a session key. */
static enum openpgp_error
decrypt_session_key(const struct openpgp_keyring *kr,
    const struct decrypt_msg *m, uint8_t seipd_version,
    struct openpgp_session_key *sk, char err[ERR_LEN])
{
	uint8_t want = seipd_version == 2 ? 6 : 3;
	enum openpgp_error e, result = OPENPGP_ERR_NO_KEY;
	char why[ERR_LEN];
	size_t tried = 0;

	for (size_t i = 0; i < m->npkts; i++) {
		const struct openpgp_packet *p = &m->pkts[i];

		if (p->tag != OPENPGP_TAG_PKESK)
			continue;
		if (p->len < 1) {
			err_set(err, "empty PKESK packet");
			return OPENPGP_ERR_MALFORMED;
		}
		if (p->body[0] != want)
			continue;
		tried++;
		e = openpgp_pkesk_decrypt(kr, p->body, p->len, sk, why);
		if (e == OPENPGP_OK)
			return OPENPGP_OK;
		if (e == OPENPGP_ERR_MALFORMED || e == OPENPGP_ERR_INTERNAL) {
			err_set(err, "%s", why);
			return e;
		}
		if (e == OPENPGP_ERR_UNWRAP || result == OPENPGP_ERR_NO_KEY) {
			result = e;
			err_set(err, "%s", why);
		}
	}
	if (tried == 0)
		err_set(err, "no v%u PKESK for the v%u SEIPD packet", want,
		    seipd_version);
	return result;
}

static enum openpgp_error
decrypt_binary(const struct openpgp_keyring *kr, const uint8_t *bin,
    size_t len, char **plain_out, char err[ERR_LEN])
{
	struct decrypt_msg *m;
	struct openpgp_session_key sk;
	struct buf inner;
	uint8_t version = 0;
	enum openpgp_error e;

	m = xcalloc(1, sizeof(*m));
	buf_init(&inner);
	memset(&sk, 0, sizeof(sk));
	if ((e = decrypt_frame(bin, len, m, err)) != OPENPGP_OK ||
	    (e = openpgp_seipd_check(m->seipd->body, m->seipd->len, &version,
	    err)) != OPENPGP_OK ||
	    (e = decrypt_session_key(kr, m, version, &sk, err)) != OPENPGP_OK ||
	    (e = openpgp_seipd_decrypt(&kr->algs, m->seipd->body,
	    m->seipd->len, &sk, &inner, err)) != OPENPGP_OK)
		goto out;
	e = openpgp_message_literal((const uint8_t *)inner.data, inner.len,
	    plain_out, err);
out:
	OPENSSL_cleanse(&sk, sizeof(sk));
	if (inner.data != NULL)
		OPENSSL_cleanse(inner.data, inner.len);
	buf_clear(&inner);
	decrypt_msg_clear(m);
	free(m);
	return e;
}

enum openpgp_error
openpgp_decrypt_token(const struct openpgp_keyring *kr, const char *token,
    size_t len, char **plain_out, char err[ERR_LEN])
{
	struct buf bin;
	size_t plen = strlen(DECRYPT_PREFIX);
	enum openpgp_error e;

	*plain_out = NULL;
	if (len > OPENPGP_TOKEN_MAX_BYTES) {
		err_set(err, "token of %zu octets exceeds %d", len,
		    OPENPGP_TOKEN_MAX_BYTES);
		return OPENPGP_ERR_TOO_LARGE;
	}
	if (len >= plen && memcmp(token, DECRYPT_PREFIX, plen) == 0) {
		token += plen;
		len -= plen;
	}
	buf_init(&bin);
	if (base64_decode(&bin, token, len) < 0) {
		buf_clear(&bin);
		err_set(err, "token is not padded standard base64");
		return OPENPGP_ERR_BASE64;
	}
	e = decrypt_binary(kr, (const uint8_t *)bin.data, bin.len, plain_out,
	    err);
	buf_clear(&bin);
	return e;
}
