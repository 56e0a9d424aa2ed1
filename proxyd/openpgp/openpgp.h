/*
 * Decrypting chatmail "openpgp:" device tokens (an RFC 9580 subset).
 *
 * Chatmail core encrypts every device token to the notifiers' key before it
 * leaves the phone; proxyd turns it back into the provider token with a
 * local secret keyring. What is supported, the limits and the error kinds
 * are in docs/openpgp.md. Primitives come from OpenSSL 3 (libcrypto); the
 * packet parsing is ours, bounded and fuzzed (tests/fuzz/fuzz_openpgp.c).
 *
 * Nothing here logs: failures come back as an enum openpgp_error plus a
 * human-readable reason in err (never secret material).
 */
#ifndef OPENPGP_H
#define OPENPGP_H

#include <stddef.h>

#include "err.h"

/* Limits. A token is at most 16 KiB (proxyd refuses larger bodies anyway);
 * decrypted or decompressed data at most 16 KiB; a packet sequence at most
 * 64 packets; compressed packets nest at most 2 deep inside the SEIPD.
 *
 * The plaintext bound is what a token can be, not what zlib can make: a
 * real one is under 1 KiB, padded to 512 octets (docs/openpgp.md), and
 * no token kind passes 8 KiB (token.h). 16 KiB is also the largest
 * message taken uncompressed, so compression never lets a message carry
 * more than an uncompressed one could; it was 64 KiB, which let anybody
 * (the key is public) have every decryption produce 64 KiB from a small
 * compressed ciphertext. */
#define OPENPGP_TOKEN_MAX_BYTES		16384
#define OPENPGP_PLAIN_MAX_BYTES		16384
#define OPENPGP_PACKETS_MAX		64
#define OPENPGP_NEST_MAX		2
/* A keyring file is at most 1 MiB and yields at most 64 decryption keys. */
#define OPENPGP_KEYRING_MAX_BYTES	(1024 * 1024)
#define OPENPGP_KEYRING_MAX_KEYS	64

/* Why a token was refused; the names are the kinds of the test vectors'
 * README (openpgp_error_name). */
enum openpgp_error {
	OPENPGP_OK = 0,
	OPENPGP_ERR_BASE64,	/* not padded standard base64 */
	OPENPGP_ERR_MALFORMED,	/* framing or message grammar */
	OPENPGP_ERR_NO_KEY,	/* no usable PKESK for a key of ours */
	OPENPGP_ERR_UNWRAP,	/* session key unwrap integrity failed */
	OPENPGP_ERR_AUTH,	/* AEAD tag or SEIPDv1 MDC mismatch */
	OPENPGP_ERR_UNSUPPORTED, /* valid but not implemented here */
	OPENPGP_ERR_UTF8,	/* literal data not UTF-8 (or holds NUL) */
	OPENPGP_ERR_EMPTY,	/* nothing left after trimming */
	OPENPGP_ERR_TOO_LARGE,	/* a size limit above was hit */
	OPENPGP_ERR_INTERNAL,	/* libcrypto failed for no input reason */
};

/* The secret decryption keys of a keyring; owned, cleansed on free. */
struct openpgp_keyring;

/* Parse an ASCII-armored keyring: every "PGP PRIVATE KEY BLOCK" in the
 * text (other blocks and text around them are skipped; CRC lines are
 * optional and never checked). Keeps each unencrypted X25519 (v4 or v6)
 * and ECDH Curve25519Legacy (v4) secret key or subkey; signing keys are
 * skipped. Returns a keyring (caller frees with openpgp_keyring_free), or
 * NULL with the reason in err when the text is malformed, a decryption key
 * is passphrase-protected or inconsistent, or no decryption key is left. */
struct openpgp_keyring	*openpgp_keyring_load(const char *armored,
			    size_t len, char err[ERR_LEN]);
/* The same for a file (at most OPENPGP_KEYRING_MAX_BYTES). */
struct openpgp_keyring	*openpgp_keyring_load_file(const char *path,
			    char err[ERR_LEN]);
/* Number of decryption keys held (at least 1). */
size_t	openpgp_keyring_count(const struct openpgp_keyring *);
/* Cleanses and frees; NULL is a no-op. */
void	openpgp_keyring_free(struct openpgp_keyring *);

/* Static lowercase name of a kind: "ok", "base64", "malformed", "no-key",
 * "unwrap", "auth", "unsupported", "utf8", "empty", "too-large",
 * "internal". */
const char	*openpgp_error_name(enum openpgp_error);

/* Decrypt one token: the whole "openpgp:<base64>" string or just the
 * base64 (len bytes, NUL not needed). On OPENPGP_OK, *plain_out is the
 * literal data as a NUL-terminated UTF-8 string with white space trimmed
 * at both ends (caller frees); otherwise *plain_out is NULL and err says
 * why. No plaintext is looked at before every tag has verified.
 * Thread-safe: the keyring is only read, so worker threads may share it. */
enum openpgp_error	openpgp_decrypt_token(const struct openpgp_keyring *,
			    const char *token, size_t len, char **plain_out,
			    char err[ERR_LEN]);

#endif
