/*
 * Public-Key Encrypted Session Key packets (RFC 9580 section 5.1): find
 * the keyring key a PKESK addresses (by fingerprint in v6, by Key ID in
 * v3; every key for the anonymous form) and recover the session key.
 *
 * X25519 (5.1.6): KEK = HKDF-SHA256(eph || pub || shared, "OpenPGP
 * X25519"), AES-128 key unwrap; the wrapped value is the bare session key
 * (v3 sends the cipher octet in clear in front of it). ECDH over
 * Curve25519Legacy (11.5, v4 keys only): KEK = hash(00000001 || shared ||
 * param), key unwrap, then [cipher octet, v3 only] || key || checksum ||
 * PKCS#5 padding. Only an unwrap integrity failure says "wrong key", so
 * the anonymous form simply tries every key.
 */
#include <openssl/crypto.h>

#include "openpgp_private.h"

#define PKESK_X25519_INFO	"OpenPGP X25519"
#define PKESK_KEK_BYTES		16	/* X25519 always wraps with AES-128 */
#define PKESK_WRAPPED_MAX_BYTES	64

/* The fields of a parsed PKESK. */
struct pkesk {
	uint8_t		 version;	/* 3 or 6 */
	bool		 anonymous;
	uint8_t		 key_version;	/* v6 PKESK: 4 or 6 */
	const uint8_t	*fpr;		/* v6 PKESK */
	size_t		 fpr_len;
	const uint8_t	*keyid;		/* v3 PKESK */
	uint8_t		 algo;
	const uint8_t	*eph;		/* native X25519 point */
	uint8_t		 cipher;	/* v3 X25519: cleartext octet */
	const uint8_t	*wrapped;
	size_t		 wrapped_len;
};

/* Curve25519Legacy OID and the fixed part of the ECDH KDF param. */
static const uint8_t pkesk_oid_cv25519[] = {
	0x2b, 0x06, 0x01, 0x04, 0x01, 0x97, 0x55, 0x01, 0x05, 0x01
};
static const char pkesk_anonymous_sender[] = "Anonymous Sender    ";

static bool
pkesk_addresses(const struct pkesk *pk, const struct openpgp_key *k)
{
	static const uint8_t zero_keyid[OPENPGP_KEYID_BYTES];

	if (pk->algo != k->algo)
		return false;
	if (pk->anonymous)
		return true;
	if (pk->version == 6)
		return pk->key_version == k->version &&
		    pk->fpr_len == k->fpr_len &&
		    memcmp(pk->fpr, k->fpr, k->fpr_len) == 0;
	/* A zero Key ID is the v3 wildcard (section 5.1.1). */
	return memcmp(pk->keyid, zero_keyid, OPENPGP_KEYID_BYTES) == 0 ||
	    memcmp(pk->keyid, k->keyid, OPENPGP_KEYID_BYTES) == 0;
}

/* Version, recipient and algorithm; false when malformed. */
static bool
pkesk_parse_head(struct openpgp_cursor *c, struct pkesk *pk)
{
	uint8_t n;

	if (!openpgp_cursor_u8(c, &pk->version))
		return false;
	if (pk->version == 3) {
		if (!openpgp_cursor_take(c, OPENPGP_KEYID_BYTES, &pk->keyid))
			return false;
	} else if (pk->version == 6) {
		if (!openpgp_cursor_u8(c, &n))
			return false;
		if (n == 0)
			pk->anonymous = true;
		else if (!openpgp_cursor_u8(c, &pk->key_version) ||
		    !openpgp_cursor_take(c, n - 1u, &pk->fpr))
			return false;
		pk->fpr_len = n == 0 ? 0 : n - 1u;
		if (!pk->anonymous &&
		    !(pk->key_version == 6 && pk->fpr_len == 32) &&
		    !(pk->key_version == 4 && pk->fpr_len == 20))
			return false;
	} else
		return false;
	return openpgp_cursor_u8(c, &pk->algo);
}

/* The algorithm-specific fields of X25519 and ECDH. */
static bool
pkesk_parse_fields(struct openpgp_cursor *c, struct pkesk *pk)
{
	const uint8_t *point;
	uint16_t bits;
	uint8_t n;

	if (pk->algo == OPENPGP_PK_X25519) {
		if (!openpgp_cursor_take(c, OPENPGP_X25519_BYTES, &pk->eph) ||
		    !openpgp_cursor_u8(c, &n))
			return false;
		if (pk->version == 3) {
			if (n < 1 || !openpgp_cursor_u8(c, &pk->cipher))
				return false;
			n--;
		}
	} else {
		if (!openpgp_cursor_u16(c, &bits) ||
		    ((size_t)bits + 7) / 8 != 1 + OPENPGP_X25519_BYTES ||
		    !openpgp_cursor_take(c, 1 + OPENPGP_X25519_BYTES, &point) ||
		    point[0] != 0x40 || !openpgp_cursor_u8(c, &n))
			return false;
		pk->eph = point + 1;
	}
	if (!openpgp_cursor_take(c, n, &pk->wrapped))
		return false;
	pk->wrapped_len = n;
	return c->left == 0 && n <= PKESK_WRAPPED_MAX_BYTES;
}

static enum openpgp_error
pkesk_try_x25519(const struct openpgp_algs *algs, const struct pkesk *pk,
    const struct openpgp_key *k, struct openpgp_session_key *sk)
{
	uint8_t ikm[3 * OPENPGP_X25519_BYTES], kek[PKESK_KEK_BYTES];
	uint8_t out[PKESK_WRAPPED_MAX_BYTES];
	size_t out_len = 0;
	enum openpgp_error e = OPENPGP_ERR_UNWRAP;

	memcpy(ikm, pk->eph, OPENPGP_X25519_BYTES);
	memcpy(ikm + OPENPGP_X25519_BYTES, k->pub, OPENPGP_X25519_BYTES);
	if (openpgp_crypto_x25519(algs, k->derive, pk->eph,
	    ikm + 2 * OPENPGP_X25519_BYTES) < 0)
		goto out;
	if (openpgp_crypto_hkdf(algs, NULL, 0, ikm, sizeof(ikm),
	    (const uint8_t *)PKESK_X25519_INFO, strlen(PKESK_X25519_INFO),
	    kek, sizeof(kek)) < 0) {
		e = OPENPGP_ERR_INTERNAL;
		goto out;
	}
	if (openpgp_crypto_unwrap(algs, kek, sizeof(kek), pk->wrapped,
	    pk->wrapped_len, out, &out_len) < 0 ||
	    out_len > OPENPGP_SESSION_KEY_MAX_BYTES)
		goto out;
	memcpy(sk->key, out, out_len);
	sk->len = out_len;
	sk->cipher = pk->cipher;
	e = OPENPGP_OK;
out:
	OPENSSL_cleanse(ikm, sizeof(ikm));
	OPENSSL_cleanse(kek, sizeof(kek));
	OPENSSL_cleanse(out, sizeof(out));
	return e;
}

/* KEK of section 11.5: hash(00 00 00 01 || shared || param), truncated. */
static int
pkesk_ecdh_kek(const struct openpgp_algs *algs, const struct openpgp_key *k,
    const uint8_t *shared, uint8_t *kek, size_t kek_len)
{
	static const uint8_t counter[4] = { 0, 0, 0, 1 };
	uint8_t param[64], digest[64];
	size_t n = 0, dlen = 0;
	const void *parts[3] = { counter, shared, param };
	size_t lens[3] = { sizeof(counter), OPENPGP_X25519_BYTES, 0 };

	param[n++] = sizeof(pkesk_oid_cv25519);
	memcpy(param + n, pkesk_oid_cv25519, sizeof(pkesk_oid_cv25519));
	n += sizeof(pkesk_oid_cv25519);
	param[n++] = OPENPGP_PK_ECDH;
	param[n++] = 3;
	param[n++] = 1;
	param[n++] = k->kdf_hash;
	param[n++] = k->kdf_cipher;
	memcpy(param + n, pkesk_anonymous_sender, 20);
	n += 20;
	memcpy(param + n, k->fpr, 20);	/* v4 fingerprint */
	n += 20;
	lens[2] = n;
	if (openpgp_crypto_digest(algs, k->kdf_hash, parts, lens, 3, digest,
	    &dlen) < 0 || dlen < kek_len)
		return -1;
	memcpy(kek, digest, kek_len);
	OPENSSL_cleanse(digest, sizeof(digest));
	return 0;
}

static enum openpgp_error
pkesk_try_ecdh(const struct openpgp_algs *algs, const struct pkesk *pk,
    const struct openpgp_key *k, struct openpgp_session_key *sk)
{
	uint8_t shared[OPENPGP_X25519_BYTES], kek[32];
	uint8_t m[PKESK_WRAPPED_MAX_BYTES];
	size_t kek_len = openpgp_crypto_cipher_key_len(k->kdf_cipher);
	size_t m_len = 0, pad, key_off, key_len;
	uint16_t sum = 0;
	enum openpgp_error e = OPENPGP_ERR_UNWRAP;

	if (openpgp_crypto_x25519(algs, k->derive, pk->eph, shared) < 0)
		goto out;
	if (pkesk_ecdh_kek(algs, k, shared, kek, kek_len) < 0) {
		e = OPENPGP_ERR_INTERNAL;
		goto out;
	}
	if (openpgp_crypto_unwrap(algs, kek, kek_len, pk->wrapped,
	    pk->wrapped_len, m, &m_len) < 0)
		goto out;
	/* PKCS#5 padding to a multiple of 8, then a two-octet checksum. */
	pad = m_len > 0 ? m[m_len - 1] : 0;
	if (pad < 1 || pad > 8 || pad > m_len)
		goto out;
	for (size_t i = m_len - pad; i < m_len; i++)
		if (m[i] != pad)
			goto out;
	m_len -= pad;
	key_off = pk->version == 3 ? 1 : 0;
	if (m_len < key_off + 2 + 16)
		goto out;
	key_len = m_len - key_off - 2;
	if (key_len > OPENPGP_SESSION_KEY_MAX_BYTES)
		goto out;
	for (size_t i = 0; i < key_len; i++)
		sum = (uint16_t)(sum + m[key_off + i]);
	if (m[m_len - 2] != (sum >> 8) || m[m_len - 1] != (sum & 0xff))
		goto out;
	memcpy(sk->key, m + key_off, key_len);
	sk->len = key_len;
	sk->cipher = pk->version == 3 ? m[0] : 0;
	e = OPENPGP_OK;
out:
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(kek, sizeof(kek));
	OPENSSL_cleanse(m, sizeof(m));
	return e;
}

enum openpgp_error
openpgp_pkesk_decrypt(const struct openpgp_keyring *kr, const uint8_t *body,
    size_t len, struct openpgp_session_key *sk_out, char err[ERR_LEN])
{
	struct openpgp_cursor c;
	struct pkesk pk;
	enum openpgp_error e, result = OPENPGP_ERR_NO_KEY;

	memset(&pk, 0, sizeof(pk));
	memset(sk_out, 0, sizeof(*sk_out));
	openpgp_cursor_init(&c, body, len);
	if (!pkesk_parse_head(&c, &pk)) {
		err_set(err, "malformed PKESK header");
		return OPENPGP_ERR_MALFORMED;
	}
	if (pk.algo != OPENPGP_PK_X25519 && pk.algo != OPENPGP_PK_ECDH) {
		err_set(err, "PKESK for public-key algorithm %u, which no key "
		    "of ours has", pk.algo);
		return OPENPGP_ERR_NO_KEY;
	}
	if (!pkesk_parse_fields(&c, &pk)) {
		err_set(err, "malformed PKESK fields");
		return OPENPGP_ERR_MALFORMED;
	}
	err_set(err, "PKESK addresses no key of the keyring");
	for (size_t i = 0; i < kr->nkeys; i++) {
		const struct openpgp_key *k = &kr->keys[i];

		if (!pkesk_addresses(&pk, k))
			continue;
		e = k->algo == OPENPGP_PK_X25519 ?
		    pkesk_try_x25519(&kr->algs, &pk, k, sk_out) :
		    pkesk_try_ecdh(&kr->algs, &pk, k, sk_out);
		if (e == OPENPGP_OK)
			return OPENPGP_OK;
		result = e;
		if (e == OPENPGP_ERR_INTERNAL) {
			err_set(err, "libcrypto failure in key derivation");
			return e;
		}
		err_set(err, "session key unwrap failed");
	}
	return result;
}
