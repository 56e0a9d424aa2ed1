/*
 * The shape every push provider has (OpenSMTPD's queue backends: one
 * struct of operations, one small module each). A provider turns a push
 * into an HTTP request and an HTTP answer into a verdict; transport,
 * retries, Retry-After pauses, rate limits and metrics live once, in the
 * code that drives providers, not in each module.
 *
 * Device tokens are secrets: a provider never logs, and a request it
 * builds is freed with provider_request_clear(), which wipes the body and
 * headers (they carry the token and credentials).
 */
#ifndef PROVIDER_H
#define PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum push_kind {
	PUSH_VISIBLE,		/* new mail: /notify */
	PUSH_HEARTBEAT,		/* silent wake-up: the heartbeat schedule */
};

#define PROVIDER_MAX_HEADERS	12

/* An HTTP request to send; every string owned by the struct. */
struct provider_request {
	char	*url;
	char	*headers[PROVIDER_MAX_HEADERS];	/* "name: value" */
	size_t	 nheaders;
	char	*body;
	size_t	 body_len;
};

/* What an answer means for the relay and for us. */
enum provider_verdict {
	VERDICT_OK,		/* delivered: 200 to the relay */
	VERDICT_GONE,		/* the token is dead: 410, unschedule */
	VERDICT_RENEW_AUTH,	/* our credential expired: renew, retry once */
	VERDICT_PAUSE,		/* provider throttles: pause, 500 */
	VERDICT_TEMPORARY,	/* try later: 500, token kept */
	VERDICT_CONFIG,		/* our credentials/config are wrong: 500,
				 * loud log, never 410 */
};

struct provider_result {
	enum provider_verdict	 verdict;
	/* The provider's reason ("BadDeviceToken", "UNREGISTERED") or the
	 * HTTP status as text, for logs and the notification_failures
	 * metric's details label; printable ASCII only. */
	char			 reason[48];
	int64_t			 retry_after_ms;	/* PAUSE; 0: unknown */
};

void	provider_request_add_header(struct provider_request *,
	    const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Wipes and frees what the request owns; the struct is reusable. */
void	provider_request_clear(struct provider_request *);
/* A provider's reason or error code, for logs and metric labels: s
 * copied into out (outlen bytes) keeping only the bytes in keep. Whether
 * nothing was dropped: only such an exact copy may match a known value
 * (a reason cleaned into a known one must not decide a 410). */
bool	provider_reason_copy(const char *s, const char *keep, char *out,
	    size_t outlen);
/* The same for the string member `member` of a JSON object body of at
 * most max bytes; "" and false when there is none. */
bool	provider_json_reason(const char *body, size_t len, size_t max,
	    const char *member, const char *keep, char *out, size_t outlen);
/* "ok", "gone", ...: for logs and metrics. */
const char *provider_verdict_name(enum provider_verdict);

#endif
