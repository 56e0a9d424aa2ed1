/*
 * APNs certificate auth: the .p12 (PKCS#12) file with the client
 * certificate, its key and chain. proxyd's one PKCS#12 loader: the file
 * is read once at start (proxyd/push/credentials.c), so that a wrong file
 * or password is a clear error, not a failure at the first push; the
 * certificate's subject UID is Apple's topic (bundle id), and the HTTP/2
 * client presents the loaded certificate at every TLS handshake (it gets
 * the objects, never the file).
 *
 * Files exported by Keychain or OpenSSL 1.x are encrypted with RC2-40,
 * which OpenSSL 3 only has in its "legacy" provider. Loading it is an
 * explicit call made once at start (p12_legacy_load, from credentials.c),
 * not a side effect of reading a file: it changes the algorithms of the
 * whole process.
 */
#ifndef P12_H
#define P12_H

#include <stdbool.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "err.h"

/* What a .p12 holds; every object owned (p12_clear frees them). */
struct p12 {
	EVP_PKEY	*key;
	X509		*cert;
	STACK_OF(X509)	*chain;		/* the other certificates; may be NULL */
};

/* Loads OpenSSL's legacy provider (and the default one, which an explicit
 * load would otherwise replace) for the whole process. Once, at start,
 * before any thread; later calls return what the first did. 0, or -1
 * and err (the legacy module is not installed: modern files still load). */
int	p12_legacy_load(char err[ERR_LEN]);
/* Whether p12_legacy_load succeeded. */
bool	p12_legacy_loaded(void);
/* 0 and *out filled (free with p12_clear) when path holds a certificate
 * and private key that password opens; -1 and err otherwise, a wrong
 * password (the MAC check) told apart from a damaged file or an old
 * cipher without the legacy provider. err names the path, never the
 * password. */
int	p12_load(const char *path, const char *password, struct p12 *out,
	    char err[ERR_LEN]);
/* The certificate subject's UID (0.9.2342.19200300.100.1.1), Apple's
 * topic: the caller's to free; NULL if the certificate has none. */
char	*p12_topic(const struct p12 *);
/* Frees what the struct holds; the struct is zeroed and reusable. */
void	p12_clear(struct p12 *);

#endif
