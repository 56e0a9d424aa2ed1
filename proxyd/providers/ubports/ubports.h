/*
 * UBports push (Ubuntu Touch; docs/push-providers.md §4): the request for a
 * visible push, the JSON body the Rust service sends, and the meaning of
 * the push server's answers (ubports/ubuntu-push server/api/handlers.go).
 * No credentials: the server takes the app from the token itself.
 */
#ifndef UBPORTS_H
#define UBPORTS_H

#include <stdint.h>

#include "provider.h"
#include "token.h"

#define UBPORTS_URL		"https://push.ubports.com/notify"
/* Delta Touch's app id, what the Rust service sends. */
#define UBPORTS_APPID		"deltatouch.lotharketterer_deltatouch"
#define UBPORTS_APPID_MAX_BYTES	256
/* expire_on = now + 7 days, as the Rust service. */
#define UBPORTS_EXPIRE_MS	(7LL * 24 * 3600 * 1000)
/* The server refuses request bodies over 4 KiB (413). */
#define UBPORTS_BODY_MAX_BYTES	4096
/* Error bodies looked at: {"error","message","extra"}, where extra may
 * be a pending payload (at most 2 KiB of data). */
#define UBPORTS_ERROR_BODY_MAX_BYTES (16 * 1024)

struct ubports_config {
	const char	*url;		/* NULL: UBPORTS_URL */
	const char	*appid;		/* NULL: UBPORTS_APPID */
};

struct ubports;

/* The provider (provider.h): always configured. */
extern const struct provider_ops ubports_ops;

/* Strings are copied. NULL and err if the app id is not
 * "<package>_<app>" in [A-Za-z0-9._+-]. */
struct ubports *ubports_new(const struct ubports_config *, char err[ERR_LEN]);
void	ubports_free(struct ubports *);
/*
 * The request for t (TOKEN_UBPORTS): POST url, content-type
 * application/json, the Rust service's body with expire_on = now + 7
 * days in UTC ("2026-01-08T12:00:00Z"; the server parses RFC 3339, the
 * Rust service sends its local offset and nanoseconds). PUSH_HEARTBEAT
 * is refused (heartbeats are for APNs, docs/push-providers.md §5.4). 0, or -1
 * and err (wrong kind, a token that is not standard base64).
 */
int	ubports_build(struct ubports *, enum push_kind, const struct token *,
	    int64_t now_ms, struct provider_request *out, char err[ERR_LEN]);
/*
 * What the server's answer means. Its errors are {"error":label,...}:
 *   200                          OK
 *   400 unknown-token            GONE: not base64, or no such token
 *   401 unauthorized             GONE: the server takes the app id from
 *                                the decoded token ("<appid>::<device>")
 *                                and answers this when the token does not
 *                                start with its own app id and "::", so
 *                                only a malformed token gets it
 *   413 too-many-pending         TEMPORARY: the device's queue for the
 *                                app is full; the token is fine
 *   429                          PAUSE (a rate limit in front; the
 *                                caller reads Retry-After)
 *   503 unavailable              PAUSE: the server's store is down
 *   500, other 5xx, no answer    TEMPORARY
 *   400 io-error                 TEMPORARY (it could not read our body)
 *   anything else                CONFIG: 400 invalid-request (our JSON,
 *                                expiry or data), 405, 411, 413 body too
 *                                large, 415, a label-less 400/401 from a
 *                                proxy in front: our side, never GONE
 * reason: the label, else the HTTP status.
 */
void	ubports_classify(const struct provider_answer *,
	    struct provider_result *out);

#endif
