/*
 * VAPID (RFC 8292): how proxyd proves to a Web Push service that it is
 * the application server a subscription was made for. Each request
 * carries `Authorization: vapid t=<JWT>, k=<public key>`: an ES256 JWT
 * {"aud": endpoint origin, "exp": now + 12 h, "sub": contact URI} signed
 * with the P-256 key of --vapid-key-path, and that key's public point in
 * base64url (docs/push-providers.md §3.4). Clients subscribe with the same
 * public key (--print-vapid-public-key), and push services refuse a
 * push whose k differs.
 *
 * One JWT is kept per origin and reused for VAPID_JWT_REUSE_MS (signing
 * costs more than the lookup); the cache is bounded, since origins come
 * from untrusted tokens. Not thread-safe: one loop thread. Never logs;
 * the JWT and the header are secrets (docs/push-providers.md, docs/style.md).
 */
#ifndef VAPID_H
#define VAPID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "err.h"

/* RFC 8292 §2: exp at most 24 h ahead; 12 h is what notifiers and most
 * libraries send, and leaves room for clock skew either way. */
#define VAPID_JWT_LIFETIME_MS		(12LL * 3600 * 1000)
#define VAPID_JWT_LIFETIME_MAX_MS	(24LL * 3600 * 1000)
/* A cached JWT is reused for an hour, so it always has >= 11 h left. */
#define VAPID_JWT_REUSE_MS		(3600LL * 1000)
#define VAPID_CACHE_ORIGINS		64
/* "https://" + a 253-byte host (or an IPv6 literal) + ":65535". */
#define VAPID_AUDIENCE_MAX_BYTES	280
#define VAPID_SUBJECT_MAX_BYTES		256
#define VAPID_KEY_FILE_MAX_BYTES	65536
/* Unpadded base64url of the 65-byte uncompressed point. */
#define VAPID_PUBLIC_KEY_B64_LEN	87
/* What the Rust service sends when no --vapid-subject is given. */
#define VAPID_SUBJECT_DEFAULT \
	"https://github.com/chatmail/notifiers/issues"

struct vapid;

/*
 * The EC P-256 private key in a PEM file, as --vapid-key-path names it:
 * PKCS#8 ("PRIVATE KEY", what notifiers reads and `openssl genpkey`
 * writes) or SEC1 ("EC PRIVATE KEY", `openssl ecparam -genkey`, with or
 * without the EC PARAMETERS block before it). Encrypted keys are refused
 * (a daemon cannot ask for a passphrase). NULL and err on failure;
 * caller frees with EVP_PKEY_free. For startup: reads the file.
 */
EVP_PKEY *vapid_key_load_file(const char *path, char err[ERR_LEN]);
/* The same from PEM text in memory. */
EVP_PKEY *vapid_key_load_pem(const char *pem, size_t len, char err[ERR_LEN]);

/*
 * A signer for key (P-256; the vapid takes its own reference, the caller
 * keeps its) and subject (a mailto: or https: URI, copied; NULL:
 * VAPID_SUBJECT_DEFAULT). NULL and err if the key is not P-256 or the
 * subject is not such a URI (or holds '"', '\\' or non-printable bytes).
 */
struct vapid *vapid_new(EVP_PKEY *key, const char *subject, char err[ERR_LEN]);
void	vapid_free(struct vapid *);

/* The public key, base64url (87 characters), for the start-up log and
 * --print-vapid-public-key. Borrowed until vapid_free. */
const char *vapid_public_key(const struct vapid *);
const char *vapid_subject(const struct vapid *);

/*
 * The JWT audience for an endpoint: its origin (RFC 6454 serialisation)
 * "https://host" or "http://host", the host in lower case, an IPv6
 * literal with its brackets, ":port" only if port is not 0 and not the
 * scheme's default. 0 and out, or -1 and err if the host is empty, too
 * long or has bytes no host name or IP literal has.
 */
int	vapid_audience(bool https, const char *host, size_t host_len,
	    uint16_t port, char out[VAPID_AUDIENCE_MAX_BYTES],
	    char err[ERR_LEN]);

/*
 * The Authorization header's value, "vapid t=<JWT>, k=<public key>", for
 * aud (from vapid_audience) at now_ms (UNIX ms): a JWT signed now, or the
 * one cached for aud if younger than VAPID_JWT_REUSE_MS. Borrowed: valid
 * until the next vapid_authorization or vapid_free; a secret, never log
 * it. NULL and err if aud is not an origin or signing fails.
 */
const char *vapid_authorization(struct vapid *, const char *aud,
	    int64_t now_ms, char err[ERR_LEN]);

#endif
