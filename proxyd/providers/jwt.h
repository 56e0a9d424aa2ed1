/*
 * Signed JSON Web Tokens (RFC 7515/7519, compact form) as push providers
 * want them: ES256 for APNs token auth and VAPID (signature = raw r || s,
 * 64 bytes, not DER), RS256 for Google's service-account assertion.
 * The caller builds the header and claims JSON; this encodes and signs.
 */
#ifndef JWT_H
#define JWT_H

#include <openssl/evp.h>

#include "err.h"

enum jwt_alg {
	JWT_ES256,	/* key: EC P-256 */
	JWT_RS256,	/* key: RSA */
};

/* "<b64url(header)>.<b64url(claims)>.<b64url(signature)>" (caller frees),
 * or NULL and err. The key is borrowed. A JWT is a secret: never log it. */
char	*jwt_sign(enum jwt_alg, EVP_PKEY *key, const char *header_json,
	    const char *claims_json, char err[ERR_LEN]);

/* Load a PEM private key (PKCS#8 .p8 or a service account's private_key
 * string) that passes jwt_key_check; NULL and err on failure. Caller
 * frees with EVP_PKEY_free. */
EVP_PKEY *jwt_load_key_pem(const char *pem, size_t len, char err[ERR_LEN]);

/* A pem_password_cb that refuses: an encrypted key would make OpenSSL
 * prompt on the terminal, and a daemon has none. For every PEM private
 * key a daemon reads. */
int	jwt_no_passphrase(char *buf, int size, int rwflag, void *arg);

/* 0 if the private key is consistent with its public half (a damaged key
 * can parse and then fail every signature: refuse it at start), else -1
 * and err. */
int	jwt_key_check(EVP_PKEY *key, char err[ERR_LEN]);

#endif
