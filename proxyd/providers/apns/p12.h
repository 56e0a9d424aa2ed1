/*
 * APNs certificate auth: the .p12 (PKCS#12) file with the client
 * certificate and its key. Checked at start so that a wrong file or
 * password is a clear error, not a failure at the first push; the
 * certificate's subject UID is Apple's topic (bundle id).
 *
 * Files exported by Keychain or OpenSSL 1.x are encrypted with RC2-40,
 * which OpenSSL 3 only has in its "legacy" provider: it is loaded (with
 * the default provider) when such a file needs it, for this process and
 * so for the HTTP/2 client too.
 */
#ifndef P12_H
#define P12_H

#include "err.h"

/* 0 and *topic_out (the subject UID, caller frees; NULL if the
 * certificate has none) when path holds a certificate and private key
 * that password opens; -1 and err otherwise. */
int	p12_check(const char *path, const char *password, char **topic_out,
	    char err[ERR_LEN]);

#endif
