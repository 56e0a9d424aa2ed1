/*
 * What the openpgp_*.c files share and openpgp.h users need not see:
 * packet tags and algorithm ids of RFC 9580, a bounds-checked cursor, the
 * packet reader, the keyring's layout and the crypto helpers. Prototypes
 * are grouped by the file that defines them (Dovecot's dict-private.h).
 */
#ifndef OPENPGP_PRIVATE_H
#define OPENPGP_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

#include "buf.h"
#include "openpgp.h"

/* Packet tags (RFC 9580 section 5, table 3). Tags up to 39 are critical:
 * an unknown one invalidates the message; 40..63 are ignored. */
enum openpgp_tag {
	OPENPGP_TAG_PKESK = 1,
	OPENPGP_TAG_SIGNATURE = 2,
	OPENPGP_TAG_SKESK = 3,
	OPENPGP_TAG_ONE_PASS_SIG = 4,
	OPENPGP_TAG_SECRET_KEY = 5,
	OPENPGP_TAG_PUBLIC_KEY = 6,
	OPENPGP_TAG_SECRET_SUBKEY = 7,
	OPENPGP_TAG_COMPRESSED = 8,
	OPENPGP_TAG_SED = 9,
	OPENPGP_TAG_MARKER = 10,
	OPENPGP_TAG_LITERAL = 11,
	OPENPGP_TAG_TRUST = 12,
	OPENPGP_TAG_USER_ID = 13,
	OPENPGP_TAG_PUBLIC_SUBKEY = 14,
	OPENPGP_TAG_USER_ATTRIBUTE = 17,
	OPENPGP_TAG_SEIPD = 18,
	OPENPGP_TAG_MDC = 19,
	OPENPGP_TAG_PADDING = 21,
};
#define OPENPGP_TAG_CRITICAL_MAX	39

/* Public-key (section 9.1), symmetric (9.3), AEAD (9.6), compression
 * (9.4) and hash (9.5) algorithm ids used here. */
#define OPENPGP_PK_ECDH		18
#define OPENPGP_PK_X25519	25
#define OPENPGP_SYM_AES128	7
#define OPENPGP_SYM_AES192	8
#define OPENPGP_SYM_AES256	9
#define OPENPGP_AEAD_EAX	1
#define OPENPGP_AEAD_OCB	2
#define OPENPGP_AEAD_GCM	3
#define OPENPGP_ZIP_NONE	0
#define OPENPGP_ZIP_ZIP		1
#define OPENPGP_ZIP_ZLIB	2
#define OPENPGP_HASH_SHA256	8
#define OPENPGP_HASH_SHA384	9
#define OPENPGP_HASH_SHA512	10

#define OPENPGP_X25519_BYTES	32
#define OPENPGP_TAG_BYTES	16	/* every AEAD tag of RFC 9580 */
#define OPENPGP_FPR_MAX_BYTES	32	/* v6: SHA-256; v4: SHA-1, 20 */
#define OPENPGP_KEYID_BYTES	8
#define OPENPGP_SESSION_KEY_MAX_BYTES	32
#define OPENPGP_AES_BLOCK_BYTES	16
#define OPENPGP_AES_SIZES	3	/* AES-128, -192, -256 */

/* The slot of an AES cipher id in the per-size tables of struct
 * openpgp_algs (0 for AES-128 up to 2 for AES-256), -1 for anything
 * else. */
static inline int
openpgp_aes_slot(uint8_t cipher)
{
	if (cipher < OPENPGP_SYM_AES128 || cipher > OPENPGP_SYM_AES256)
		return -1;
	return cipher - OPENPGP_SYM_AES128;
}

/*
 * A read cursor over bytes whose every step is bounds-checked: a failed
 * step returns false and leaves the cursor where it was, so parsers test
 * each step and never read past the end.
 */
struct openpgp_cursor {
	const uint8_t	*p;
	size_t		 left;
};

static inline void
openpgp_cursor_init(struct openpgp_cursor *c, const uint8_t *p, size_t len)
{
	c->p = p;
	c->left = len;
}

static inline bool
openpgp_cursor_take(struct openpgp_cursor *c, size_t n, const uint8_t **out)
{
	if (n > c->left)
		return false;
	*out = c->p;
	c->p += n;
	c->left -= n;
	return true;
}

static inline bool
openpgp_cursor_u8(struct openpgp_cursor *c, uint8_t *out)
{
	if (c->left < 1)
		return false;
	*out = c->p[0];
	c->p++;
	c->left--;
	return true;
}

static inline bool
openpgp_cursor_u16(struct openpgp_cursor *c, uint16_t *out)
{
	if (c->left < 2)
		return false;
	*out = (uint16_t)(c->p[0] << 8 | c->p[1]);
	c->p += 2;
	c->left -= 2;
	return true;
}

static inline bool
openpgp_cursor_u32(struct openpgp_cursor *c, uint32_t *out)
{
	if (c->left < 4)
		return false;
	*out = (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 |
	    (uint32_t)c->p[2] << 8 | c->p[3];
	c->p += 4;
	c->left -= 4;
	return true;
}

static inline void
openpgp_put_be64(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)v;
		v >>= 8;
	}
}

/* openpgp_armor.c */

/* Append to out the decoded data of every armored block whose label
 * (the text between "BEGIN " and "-----") equals label. 0 and the number
 * of such blocks in *blocks_out, or -1 with err on a broken block (no END
 * line, bad base64). Text outside blocks is ignored. */
int	openpgp_armor_decode(const char *text, size_t len, const char *label,
	    struct buf *out, size_t *blocks_out, char err[ERR_LEN]);

/* openpgp_packet.c */

/* One packet. body points into the reader's input, or into joined when the
 * packet used partial body lengths (then joined is owned and must be
 * released with openpgp_packet_clear). */
struct openpgp_packet {
	uint8_t		 tag;
	bool		 legacy_format;
	const uint8_t	*body;
	size_t		 len;
	uint8_t		*joined;
};

struct openpgp_reader {
	const uint8_t	*p;
	size_t		 len;
	size_t		 off;
};

void	openpgp_packet_reader_init(struct openpgp_reader *, const uint8_t *,
	    size_t);
/* 1 and the next packet in *pkt_out (clear it when done), 0 at the end of
 * the input, -1 with err when the header is invalid or a length runs past
 * the end (the packet is then empty). */
int	openpgp_packet_read(struct openpgp_reader *,
	    struct openpgp_packet *pkt_out, char err[ERR_LEN]);
void	openpgp_packet_clear(struct openpgp_packet *);
/* Static name of a tag for error strings ("PKESK", "tag 30"). */
const char	*openpgp_packet_tag_name(uint8_t tag, char tmp[16]);

/* openpgp_keyring.c */

struct openpgp_key {
	uint8_t		 version;	/* 4 or 6 */
	uint8_t		 algo;		/* OPENPGP_PK_X25519 or _ECDH */
	uint8_t		 fpr[OPENPGP_FPR_MAX_BYTES];
	size_t		 fpr_len;	/* 32 (v6) or 20 (v4) */
	uint8_t		 keyid[OPENPGP_KEYID_BYTES];
	uint8_t		 pub[OPENPGP_X25519_BYTES];	/* native order */
	EVP_PKEY	*secret;	/* X25519 private key, read-only */
	/* A derive context on secret, initialised once at load and never
	 * used itself: each decryption works on a copy (see
	 * openpgp_crypto_x25519). Read-only like secret. */
	EVP_PKEY_CTX	*derive;
	/* ECDH only (section 11.5; the curve is always Curve25519Legacy):
	 * the KDF hash and KEK cipher of the key's KDF parameters. */
	uint8_t		 kdf_hash;
	uint8_t		 kdf_cipher;
};

/*
 * The libcrypto algorithms that decryption uses, fetched once per keyring
 * (openpgp_crypto_algs_fetch). OpenSSL 3 resolves an implicit algorithm
 * (EVP_sha256(), EVP_aes_128_ocb(), a digest or cipher named in a
 * parameter list, a fresh EVP_PKEY_CTX) by name on every use: a locked
 * method-store search which, measured with tests/bench/openpgp_speed.c,
 * cost more per token than all its AES and SHA work. Fetched objects are
 * reference-counted and never modified, so the worker threads share them.
 * A member is NULL when the provider lacks the algorithm; only the
 * messages that need it then fail, as the implicit lookup made them.
 *
 * x25519 is a template, never used directly: each call works on an
 * EVP_PKEY_CTX_dup copy. Duplication takes a const source and only copies
 * and takes references, which openssl-threads(7) makes safe to do from
 * several threads at once.
 */
struct openpgp_algs {
	EVP_MD		*sha1;
	EVP_MD		*sha256;
	EVP_MD		*sha384;
	EVP_MD		*sha512;
	/* Indexed by openpgp_aes_slot. ECB is the block function of the
	 * key unwrap, CTR and CMAC make EAX. */
	EVP_CIPHER	*ecb[OPENPGP_AES_SIZES];
	EVP_CIPHER	*cfb[OPENPGP_AES_SIZES];
	EVP_CIPHER	*ctr[OPENPGP_AES_SIZES];
	EVP_CIPHER	*ocb[OPENPGP_AES_SIZES];
	EVP_CIPHER	*gcm[OPENPGP_AES_SIZES];
	EVP_MAC		*cmac;
	EVP_PKEY_CTX	*x25519;	/* template: key type only */
};

struct openpgp_keyring {
	struct openpgp_key	*keys;
	size_t			 nkeys;
	struct openpgp_algs	 algs;
};

/* openpgp_crypto.c */

/* Fill *algs (zeroed by the caller). 0, or -1 when libcrypto has no
 * X25519, so that no token could be decrypted; another missing algorithm
 * is no error (see struct openpgp_algs). Free with
 * openpgp_crypto_algs_free, also after a failure. */
int	openpgp_crypto_algs_fetch(struct openpgp_algs *algs);
void	openpgp_crypto_algs_free(struct openpgp_algs *algs);
/* Key length in octets of an AES cipher id, 0 for anything else. */
size_t	openpgp_crypto_cipher_key_len(uint8_t cipher);
/* The derive template of a secret key, for struct openpgp_key: the
 * context (caller frees) or NULL when libcrypto fails. */
EVP_PKEY_CTX	*openpgp_crypto_x25519_prepare(EVP_PKEY *secret);
/* X25519 of the prepared secret with a peer point: 0, or -1 (peer of small
 * order, or libcrypto failure). */
int	openpgp_crypto_x25519(const struct openpgp_algs *,
	    const EVP_PKEY_CTX *derive,
	    const uint8_t peer[OPENPGP_X25519_BYTES],
	    uint8_t shared_out[OPENPGP_X25519_BYTES]);
/* X25519 of secret with the base point, for the load-time check. */
int	openpgp_crypto_x25519_public(EVP_PKEY *secret,
	    uint8_t pub_out[OPENPGP_X25519_BYTES]);
/* HKDF-SHA256 (RFC 5869); salt may be NULL (= no salt). out_len is at
 * most 255 * 32. 0 or -1. */
int	openpgp_crypto_hkdf(const struct openpgp_algs *, const uint8_t *salt,
	    size_t salt_len, const uint8_t *ikm, size_t ikm_len,
	    const uint8_t *info, size_t info_len, uint8_t *out,
	    size_t out_len);
/* Plain digest by OpenPGP hash id (SHA-1 = 2 and the SHA-2 ids). */
int	openpgp_crypto_digest(const struct openpgp_algs *, uint8_t hash,
	    const void *parts[], const size_t lens[], size_t nparts,
	    uint8_t *out, size_t *out_len);
/* RFC 3394 AES key unwrap with the default IV: 0 and *out_len = in_len
 * - 8, or -1 when the integrity check fails (or the sizes are wrong). out
 * must hold in_len bytes. */
int	openpgp_crypto_unwrap(const struct openpgp_algs *, const uint8_t *kek,
	    size_t kek_len, const uint8_t *in, size_t in_len, uint8_t *out,
	    size_t *out_len);
/* OpenPGP SEIPDv1 CFB: AES-CFB128 with a zero IV. 0 or -1. */
int	openpgp_crypto_cfb_decrypt(const struct openpgp_algs *,
	    uint8_t cipher, const uint8_t *key, const uint8_t *in, size_t len,
	    uint8_t *out);

/* openpgp_aead.c */

struct openpgp_aead;
/* Nonce length of an AEAD id (15 OCB, 12 GCM, 16 EAX), 0 if unknown. */
size_t	openpgp_aead_nonce_len(uint8_t aead);
/* A context to open many chunks with one key (caller frees with
 * openpgp_aead_free), or NULL when libcrypto fails. algs is borrowed
 * until then. */
struct openpgp_aead	*openpgp_aead_new(const struct openpgp_algs *,
			    uint8_t aead, uint8_t cipher, const uint8_t *key);
/* Authenticate and decrypt ct (ct_len bytes, tag apart) into out (ct_len
 * bytes): OPENPGP_OK, OPENPGP_ERR_AUTH, or OPENPGP_ERR_INTERNAL. On
 * failure out holds nothing usable and must be cleansed by the caller. */
enum openpgp_error	openpgp_aead_open(struct openpgp_aead *,
			    const uint8_t *nonce, const uint8_t *ad,
			    size_t ad_len, const uint8_t *ct, size_t ct_len,
			    const uint8_t tag[OPENPGP_TAG_BYTES],
			    uint8_t *out);
void	openpgp_aead_free(struct openpgp_aead *);

/* openpgp_eax.c */

/* EAX (Bellare, Rogaway, Wagner 2004) over AES with a 16-byte tag, which
 * OpenSSL lacks: same contract as openpgp_aead_open. cmac is a CMAC
 * context already keyed with key (openpgp_aead_new does it once per
 * message); ctr_cipher is the fetched AES-CTR of the key's size. */
enum openpgp_error	openpgp_eax_open(EVP_CIPHER_CTX *ctr,
			    const EVP_CIPHER *ctr_cipher, EVP_MAC_CTX *cmac,
			    const uint8_t *key,
			    const uint8_t *nonce, size_t nonce_len,
			    const uint8_t *ad, size_t ad_len,
			    const uint8_t *ct, size_t ct_len,
			    const uint8_t tag[OPENPGP_TAG_BYTES],
			    uint8_t *out);

/* openpgp_pkesk.c */

/* A session key recovered from a PKESK. */
struct openpgp_session_key {
	uint8_t	 key[OPENPGP_SESSION_KEY_MAX_BYTES];
	size_t	 len;
	uint8_t	 cipher;	/* from a v3 PKESK; 0 for v6 */
};

/* Try one PKESK body (the caller matched its version to the SEIPD) with
 * every fitting key. OPENPGP_OK and *sk_out; OPENPGP_ERR_NO_KEY when it
 * addresses none of our keys or a foreign algorithm; OPENPGP_ERR_UNWRAP
 * when a key fits but unwrapping fails; OPENPGP_ERR_MALFORMED;
 * OPENPGP_ERR_INTERNAL. */
enum openpgp_error	openpgp_pkesk_decrypt(const struct openpgp_keyring *,
			    const uint8_t *body, size_t len,
			    struct openpgp_session_key *sk_out,
			    char err[ERR_LEN]);

/* openpgp_seipd.c */

/* Decrypt and authenticate a SEIPD body with the session key. On
 * OPENPGP_OK the inner packet stream is appended to plain_out (a secret:
 * the caller cleanses it before buf_clear); on failure nothing is. */
enum openpgp_error	openpgp_seipd_decrypt(const struct openpgp_algs *,
			    const uint8_t *body, size_t len,
			    const struct openpgp_session_key *,
			    struct buf *plain_out, char err[ERR_LEN]);
/* Check a SEIPD body's version and algorithms before any key work:
 * OPENPGP_OK, OPENPGP_ERR_UNSUPPORTED or OPENPGP_ERR_MALFORMED. Sets
 * *version_out (1 or 2). */
enum openpgp_error	openpgp_seipd_check(const uint8_t *body, size_t len,
			    uint8_t *version_out, char err[ERR_LEN]);

/* openpgp_message.c */

/* Walk the decrypted packet stream (section 10.3: literal, compressed,
 * one-pass signed; padding, marker and non-critical packets ignored) and
 * return the literal data as the trimmed UTF-8 token in *plain_out
 * (caller frees). */
enum openpgp_error	openpgp_message_literal(const uint8_t *data, size_t len,
			    char **plain_out, char err[ERR_LEN]);

#endif
