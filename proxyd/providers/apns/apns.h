/*
 * Apple Push Notification service over HTTP/2 (docs/push-providers.md §1):
 * the request for a visible push (new mail) and for a silent heartbeat,
 * the meaning of Apple's answers, and the ES256 provider token for token
 * auth, renewed between 20 and 50 minutes and never per request.
 * Certificate auth: the .p12 loaded at start (p12.h) goes to the HTTP/2
 * transport, which presents it at every handshake. apns_ops is the
 * provider's table (provider.h).
 */
#ifndef APNS_H
#define APNS_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "provider.h"

#define APNS_PRODUCTION_URL	"https://api.push.apple.com"
#define APNS_SANDBOX_URL	"https://api.sandbox.push.apple.com"
/* Renew the provider token after this long (Apple: at least 20 min
 * between renewals, at most 60 min old). */
#define APNS_JWT_RENEW_MS	(40LL * 60 * 1000)
#define APNS_JWT_MIN_AGE_MS	(20LL * 60 * 1000)

struct apns_config {
	const char	*production_url;
	const char	*sandbox_url;
	const char	*topic;		/* NULL: the certificate's */
	EVP_PKEY	*key;		/* token auth; NULL with certificates.
					 * Borrowed. */
	const char	*key_id;
	const char	*team_id;
	/* Certificate auth (borrowed); NULL with token auth. With both,
	 * requests carry the JWT and the certificate is presented too. */
	const struct p12 *cert;
	unsigned int	 streams;	/* assumed before Apple's SETTINGS;
					 * 0: the transport's default */
};

struct apns;
struct p12;

/* The provider (provider.h): configured with a key or a certificate. */
extern const struct provider_ops apns_ops;

struct apns *apns_new(const struct apns_config *);
void	apns_free(struct apns *);
/* The request for device (hex) in the given environment; for token auth
 * it carries the current provider token. 0, or -1 and err. */
int	apns_build(struct apns *, enum push_kind, const char *device,
	    bool sandbox, int64_t now_ms, struct provider_request *out,
	    char err[ERR_LEN]);
/* What Apple's answer means; its body is JSON ({"reason": ...}). */
void	apns_classify(const struct provider_answer *,
	    struct provider_result *out);
/* Apple said ExpiredProviderToken: true if a new token was made (retry
 * once), false if the current one is younger than Apple's 20-minute
 * minimum (renewing now would be refused: do not retry). */
bool	apns_jwt_expired(struct apns *, int64_t now_ms);
/* For tests and metrics: when the current provider token was made. */
int64_t	apns_jwt_issued_at(const struct apns *);

#endif
