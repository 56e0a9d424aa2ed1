/*
 * The secret keyring: decryption keys read from an armored file of
 * transferable secret keys (RFC 9580 sections 5.5 and 10.2). Only
 * unencrypted X25519 keys (v6 or v4) and v4 ECDH Curve25519Legacy keys are
 * kept, with their fingerprint and Key ID for PKESK matching; signing keys,
 * user IDs and signatures are skipped unread (the keys are configured
 * locally, so their self-signatures need no check). Each kept secret must
 * reproduce its stored public key, which catches a corrupted file at
 * start-up instead of at the first token. The keyring also carries the
 * libcrypto algorithms decryption uses, fetched here once (struct
 * openpgp_algs), and a ready derive context per key.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "openpgp_private.h"
#include "xmalloc.h"

#define KEYRING_LABEL	"PGP PRIVATE KEY BLOCK"

/* Curve25519Legacy (section 9.2): 1.3.6.1.4.1.3029.1.5.1. */
static const uint8_t keyring_oid_cv25519[] = {
	0x2b, 0x06, 0x01, 0x04, 0x01, 0x97, 0x55, 0x01, 0x05, 0x01
};

/* What parsing one key packet gave. */
enum keyring_parse {
	KEYRING_KEY_ADDED,
	KEYRING_KEY_SKIPPED,	/* not a decryption key we can use */
	KEYRING_KEY_ERROR,
};

/* The algorithm-specific public fields of a v4 key, which carry no length
 * of their own: X25519 is 32 octets; ECDH is OID, point MPI, KDF params. */
static bool
keyring_v4_public(struct openpgp_cursor *c, struct openpgp_key *k,
    bool *usable)
{
	const uint8_t *oid, *point, *kdf;
	uint8_t oid_len, kdf_len;
	uint16_t bits;

	*usable = false;
	if (k->algo == OPENPGP_PK_X25519) {
		if (!openpgp_cursor_take(c, OPENPGP_X25519_BYTES, &point))
			return false;
		memcpy(k->pub, point, OPENPGP_X25519_BYTES);
		*usable = true;
		return true;
	}
	/* ECDH: OID, MPI of the 0x40-prefixed native point, KDF params
	 * (length 3, reserved 1, hash id, KEK cipher id). */
	if (!openpgp_cursor_u8(c, &oid_len) ||
	    !openpgp_cursor_take(c, oid_len, &oid) ||
	    !openpgp_cursor_u16(c, &bits) ||
	    !openpgp_cursor_take(c, ((size_t)bits + 7) / 8, &point) ||
	    !openpgp_cursor_u8(c, &kdf_len) ||
	    !openpgp_cursor_take(c, kdf_len, &kdf))
		return false;
	if (oid_len != sizeof(keyring_oid_cv25519) ||
	    memcmp(oid, keyring_oid_cv25519, oid_len) != 0)
		return true;		/* another curve: skip the key */
	if (((size_t)bits + 7) / 8 != 1 + OPENPGP_X25519_BYTES ||
	    point[0] != 0x40 || kdf_len != 3 || kdf[0] != 1)
		return false;
	memcpy(k->pub, point + 1, OPENPGP_X25519_BYTES);
	k->kdf_hash = kdf[1];
	k->kdf_cipher = kdf[2];
	*usable = (k->kdf_hash == OPENPGP_HASH_SHA256 ||
	    k->kdf_hash == OPENPGP_HASH_SHA384 ||
	    k->kdf_hash == OPENPGP_HASH_SHA512) &&
	    openpgp_crypto_cipher_key_len(k->kdf_cipher) != 0;
	return true;
}

/* The secret key material after an S2K usage octet of 0, in native
 * X25519 order. v4 adds a two-octet sum of the material's octets. */
static bool
keyring_secret(struct openpgp_cursor *c, const struct openpgp_key *k,
    uint8_t secret_out[OPENPGP_X25519_BYTES])
{
	const uint8_t *start = c->p, *s;
	uint16_t bits, check, sum = 0;
	size_t n;

	if (k->algo == OPENPGP_PK_X25519) {
		if (!openpgp_cursor_take(c, OPENPGP_X25519_BYTES, &s))
			return false;
		memcpy(secret_out, s, OPENPGP_X25519_BYTES);
	} else {
		/* Curve25519Legacy: a big-endian MPI, reversed to native
		 * little-endian after left-padding to 32 octets. */
		if (!openpgp_cursor_u16(c, &bits) ||
		    (n = ((size_t)bits + 7) / 8) > OPENPGP_X25519_BYTES ||
		    !openpgp_cursor_take(c, n, &s))
			return false;
		memset(secret_out, 0, OPENPGP_X25519_BYTES);
		for (size_t i = 0; i < n; i++)
			secret_out[i] = s[n - 1 - i];
	}
	if (k->version == 4) {
		for (const uint8_t *p = start; p < c->p; p++)
			sum = (uint16_t)(sum + *p);
		if (!openpgp_cursor_u16(c, &check) || check != sum)
			return false;
	}
	return c->left == 0;
}

/* v6: SHA-256(9b || 4-octet length || public part); v4: SHA-1(99 ||
 * 2-octet length || public part) (section 5.5.4). */
static bool
keyring_fingerprint(const struct openpgp_algs *algs, struct openpgp_key *k,
    const uint8_t *pub_part, size_t pub_len)
{
	uint8_t head[5];
	const void *parts[2] = { head, pub_part };
	size_t lens[2] = { 0, pub_len }, n = 0;

	if (k->version == 6) {
		head[0] = 0x9b;
		head[1] = (uint8_t)(pub_len >> 24);
		head[2] = (uint8_t)(pub_len >> 16);
		head[3] = (uint8_t)(pub_len >> 8);
		head[4] = (uint8_t)pub_len;
		lens[0] = 5;
		if (openpgp_crypto_digest(algs, OPENPGP_HASH_SHA256, parts,
		    lens, 2, k->fpr, &n) < 0 || n != 32)
			return false;
		memcpy(k->keyid, k->fpr, OPENPGP_KEYID_BYTES);
	} else {
		if (pub_len > 0xffff)
			return false;
		head[0] = 0x99;
		head[1] = (uint8_t)(pub_len >> 8);
		head[2] = (uint8_t)pub_len;
		lens[0] = 3;
		if (openpgp_crypto_digest(algs, 2, parts, lens, 2, k->fpr,
		    &n) < 0 || n != 20)
			return false;
		memcpy(k->keyid, k->fpr + 12, OPENPGP_KEYID_BYTES);
	}
	k->fpr_len = n;
	return true;
}

/* Turn the secret into an EVP_PKEY, check it against the public key and
 * prepare its derive context. */
static enum keyring_parse
keyring_load_secret(struct openpgp_key *k, uint8_t secret[OPENPGP_X25519_BYTES],
    char err[ERR_LEN])
{
	uint8_t pub[OPENPGP_X25519_BYTES];

	k->secret = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL,
	    secret, OPENPGP_X25519_BYTES);
	OPENSSL_cleanse(secret, OPENPGP_X25519_BYTES);
	if (k->secret == NULL ||
	    openpgp_crypto_x25519_public(k->secret, pub) < 0) {
		err_set(err, "keyring: libcrypto refused an X25519 key");
		return KEYRING_KEY_ERROR;
	}
	if (memcmp(pub, k->pub, OPENPGP_X25519_BYTES) != 0) {
		err_set(err, "keyring: secret key does not match its public "
		    "key");
		return KEYRING_KEY_ERROR;
	}
	if ((k->derive = openpgp_crypto_x25519_prepare(k->secret)) == NULL) {
		err_set(err, "keyring: libcrypto cannot derive with an X25519 "
		    "key");
		return KEYRING_KEY_ERROR;
	}
	return KEYRING_KEY_ADDED;
}

/* Parse one Secret-Key or Secret-Subkey body (section 5.5.3) into *k. */
static enum keyring_parse
keyring_parse_key(const struct openpgp_algs *algs, const uint8_t *body,
    size_t len, struct openpgp_key *k, char err[ERR_LEN])
{
	struct openpgp_cursor c;
	const uint8_t *material;
	uint8_t secret[OPENPGP_X25519_BYTES], usage;
	uint32_t created, mat_len;
	bool usable = false;

	memset(k, 0, sizeof(*k));
	openpgp_cursor_init(&c, body, len);
	if (!openpgp_cursor_u8(&c, &k->version))
		goto malformed;
	if (k->version != 4 && k->version != 6)
		return KEYRING_KEY_SKIPPED;	/* v3 and v5 keys */
	if (!openpgp_cursor_u32(&c, &created) ||
	    !openpgp_cursor_u8(&c, &k->algo))
		goto malformed;
	if (k->algo != OPENPGP_PK_X25519 &&
	    !(k->algo == OPENPGP_PK_ECDH && k->version == 4))
		return KEYRING_KEY_SKIPPED;	/* signing or foreign key */
	if (k->version == 6) {
		if (!openpgp_cursor_u32(&c, &mat_len) ||
		    mat_len != OPENPGP_X25519_BYTES ||
		    !openpgp_cursor_take(&c, mat_len, &material))
			goto malformed;
		memcpy(k->pub, material, OPENPGP_X25519_BYTES);
		usable = true;
	} else if (!keyring_v4_public(&c, k, &usable))
		goto malformed;
	if (!usable)
		return KEYRING_KEY_SKIPPED;
	if (!keyring_fingerprint(algs, k, body, len - c.left)) {
		err_set(err, "keyring: fingerprint computation failed");
		return KEYRING_KEY_ERROR;
	}
	if (!openpgp_cursor_u8(&c, &usage))
		goto malformed;
	if (usage != 0) {
		err_set(err, "keyring: decryption key is passphrase-protected "
		    "(not supported)");
		return KEYRING_KEY_ERROR;
	}
	if (!keyring_secret(&c, k, secret)) {
		OPENSSL_cleanse(secret, sizeof(secret));
		goto malformed;
	}
	return keyring_load_secret(k, secret, err);
malformed:
	err_set(err, "keyring: malformed secret key packet");
	return KEYRING_KEY_ERROR;
}

/* What a key owns in libcrypto; its other fields hold no pointers. */
static void
keyring_key_clear(struct openpgp_key *k)
{
	/* EVP_PKEY_free clears X25519 secrets (ossl_ecx_key_free). */
	EVP_PKEY_CTX_free(k->derive);
	EVP_PKEY_free(k->secret);
	k->derive = NULL;
	k->secret = NULL;
}

static int
keyring_parse_packets(struct openpgp_keyring *kr, const uint8_t *bin,
    size_t len, char err[ERR_LEN])
{
	struct openpgp_reader r;
	struct openpgp_packet pkt;
	struct openpgp_key k;
	char why[ERR_LEN];
	int rc;

	openpgp_packet_reader_init(&r, bin, len);
	while ((rc = openpgp_packet_read(&r, &pkt, why)) == 1) {
		if (pkt.tag != OPENPGP_TAG_SECRET_KEY &&
		    pkt.tag != OPENPGP_TAG_SECRET_SUBKEY) {
			openpgp_packet_clear(&pkt);
			continue;
		}
		switch (keyring_parse_key(&kr->algs, pkt.body, pkt.len, &k,
		    err)) {
		case KEYRING_KEY_ERROR:
			keyring_key_clear(&k);
			openpgp_packet_clear(&pkt);
			return -1;
		case KEYRING_KEY_SKIPPED:
			break;
		case KEYRING_KEY_ADDED:
			if (kr->nkeys == OPENPGP_KEYRING_MAX_KEYS) {
				keyring_key_clear(&k);
				openpgp_packet_clear(&pkt);
				err_set(err, "keyring: more than %d "
				    "decryption keys",
				    OPENPGP_KEYRING_MAX_KEYS);
				return -1;
			}
			kr->keys[kr->nkeys++] = k;
			break;
		}
		openpgp_packet_clear(&pkt);
	}
	if (rc < 0) {
		err_set(err, "keyring: %s", why);
		return -1;
	}
	return 0;
}

struct openpgp_keyring *
openpgp_keyring_load(const char *armored, size_t len, char err[ERR_LEN])
{
	struct openpgp_keyring *kr;
	struct buf bin;
	size_t blocks;
	int rc;

	if (len > OPENPGP_KEYRING_MAX_BYTES) {
		err_set(err, "keyring: larger than %d octets",
		    OPENPGP_KEYRING_MAX_BYTES);
		return NULL;
	}
	buf_init(&bin);
	if (openpgp_armor_decode(armored, len, KEYRING_LABEL, &bin, &blocks,
	    err) < 0) {
		if (bin.data != NULL)
			OPENSSL_cleanse(bin.data, bin.len);
		buf_clear(&bin);
		return NULL;
	}
	kr = xcalloc(1, sizeof(*kr));
	kr->keys = xcalloc(OPENPGP_KEYRING_MAX_KEYS, sizeof(*kr->keys));
	if (blocks == 0) {
		err_set(err, "keyring: no %s found", KEYRING_LABEL);
		rc = -1;
	} else if (openpgp_crypto_algs_fetch(&kr->algs) < 0) {
		err_set(err, "keyring: libcrypto lacks X25519");
		rc = -1;
	} else
		rc = keyring_parse_packets(kr, (const uint8_t *)bin.data,
		    bin.len, err);
	if (bin.data != NULL)
		OPENSSL_cleanse(bin.data, bin.len);
	buf_clear(&bin);
	if (rc == 0 && kr->nkeys == 0) {
		err_set(err, "keyring: no unencrypted X25519 or "
		    "Curve25519Legacy decryption key");
		rc = -1;
	}
	if (rc < 0) {
		openpgp_keyring_free(kr);
		return NULL;
	}
	return kr;
}

struct openpgp_keyring *
openpgp_keyring_load_file(const char *path, char err[ERR_LEN])
{
	struct openpgp_keyring *kr = NULL;
	struct stat sb;
	char *text;
	ssize_t n;
	size_t got = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		err_set(err, "keyring: %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    sb.st_size > OPENPGP_KEYRING_MAX_BYTES) {
		err_set(err, "keyring: %s: not a regular file of at most %d "
		    "octets", path, OPENPGP_KEYRING_MAX_BYTES);
		close(fd);
		return NULL;
	}
	text = xmalloc((size_t)sb.st_size + 1);
	while (got < (size_t)sb.st_size &&
	    (n = read(fd, text + got, (size_t)sb.st_size - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set(err, "keyring: %s: %s", path, strerror(errno));
			goto out;
		}
		got += (size_t)n;
	}
	kr = openpgp_keyring_load(text, got, err);
out:
	OPENSSL_cleanse(text, (size_t)sb.st_size + 1);
	free(text);
	close(fd);
	return kr;
}

size_t
openpgp_keyring_count(const struct openpgp_keyring *kr)
{
	return kr->nkeys;
}

void
openpgp_keyring_free(struct openpgp_keyring *kr)
{
	if (kr == NULL)
		return;
	for (size_t i = 0; i < kr->nkeys; i++)
		keyring_key_clear(&kr->keys[i]);
	OPENSSL_cleanse(kr->keys, OPENPGP_KEYRING_MAX_KEYS *
	    sizeof(*kr->keys));
	free(kr->keys);
	openpgp_crypto_algs_free(&kr->algs);
	free(kr);
}
