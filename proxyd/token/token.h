/*
 * Decrypted device tokens: which provider a token belongs to and its
 * parts, validated strictly so that a malformed token is refused (410 to
 * the relay) before any provider sees it. Kinds, in the order the prefixes
 * are tried (docs/push-providers.md §5.1, docs/architecture.md "Token
 * kinds"):
 *
 *   fcm-<package>:<token>                     TOKEN_FCM
 *   ubports-<token>                           TOKEN_UBPORTS
 *   webpush:<endpoint>|<ua_public>|<auth>     TOKEN_WEBPUSH
 *   sandbox:<hex>                             TOKEN_APNS_SANDBOX
 *   <hex>                                     TOKEN_APNS
 *
 * Pure: bytes in, struct out, no I/O, no allocation, never logs. A parsed
 * token formats back to exactly the bytes it came from (token_format), so
 * the parser accepts one spelling per token and no more.
 */
#ifndef TOKEN_H
#define TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Whole decrypted token, any kind: a guard before any per-kind rule. */
#define TOKEN_MAX_BYTES			8192
/* APNs device tokens are 32 bytes today; Apple says not to hard-code the
 * length, and has announced lengths up to 100 bytes. */
#define TOKEN_APNS_MIN_HEX		32
#define TOKEN_APNS_MAX_HEX		200
/* Android application ids; Google Play caps them at 150 characters. */
#define TOKEN_FCM_PACKAGE_MAX_BYTES	150
/* FCM registration tokens are ~150-165 characters today. */
#define TOKEN_FCM_MIN_BYTES		32
#define TOKEN_FCM_MAX_BYTES		1024
/* UBports tokens: standard base64 of "<appid>::<device id>". */
#define TOKEN_UBPORTS_MIN_BYTES		8
#define TOKEN_UBPORTS_MAX_BYTES		1024
/* UnifiedPush SERV_1.2.0: endpoint at most 1000 bytes. */
#define TOKEN_WEBPUSH_ENDPOINT_MAX_BYTES 1000
#define TOKEN_WEBPUSH_HOST_MAX_BYTES	253
/* RFC 8291: uncompressed P-256 point, 16-byte authentication secret. */
#define TOKEN_WEBPUSH_UA_PUBLIC_BYTES	65
#define TOKEN_WEBPUSH_AUTH_BYTES	16

enum token_kind {
	TOKEN_APNS,
	TOKEN_APNS_SANDBOX,
	TOKEN_FCM,
	TOKEN_UBPORTS,
	TOKEN_WEBPUSH,
};

/*
 * Pointers borrow from the string given to token_parse: they stay valid as
 * long as it does and are not NUL-terminated. The Web Push key bytes are
 * decoded copies held in the struct itself. Nothing to free.
 */
struct token {
	enum token_kind	 kind;
	/* The device's address at its provider: the hex device token (APNs,
	 * after "sandbox:" for the sandbox), the FCM registration token, the
	 * UBports token (base64, as the server wants it) or the Web Push
	 * endpoint URL. */
	const char	*device;
	size_t		 device_len;
	/* TOKEN_FCM: the Android package between "fcm-" and ':'. */
	const char	*fcm_package;
	size_t		 fcm_package_len;
	/* TOKEN_WEBPUSH only. */
	struct token_webpush {
		bool	 insecure;	/* http://, not https://: the caller
					 * decides whether to allow it */
		size_t	 origin_len;	/* device[0..origin_len) is
					 * scheme://host[:port] */
		const char *host;	/* inside device; IPv6 keeps its [] */
		size_t	 host_len;
		uint16_t port;		/* 0: none given (scheme default) */
		uint8_t	 ua_public[TOKEN_WEBPUSH_UA_PUBLIC_BYTES];
		uint8_t	 auth[TOKEN_WEBPUSH_AUTH_BYTES];
	} webpush;
};

/*
 * Classify and validate the decrypted token s[0..len) (need not be
 * NUL-terminated). 0 and *out filled, or -1 with the reason in err. On -1
 * out->kind still tells which kind the prefix selected (for metrics); the
 * other fields are unspecified. err never quotes token bytes (secrets),
 * only offsets and lengths. Web Push keys are checked to be a point on
 * P-256 and 16 bytes; an http:// endpoint is accepted and flagged.
 * Refuses control characters, whitespace and non-ASCII anywhere.
 * Thread-safe (no state).
 */
int	token_parse(const char *s, size_t len, struct token *out,
	    char err[ERR_LEN]);

/* The token string again from its parts (caller frees; NUL-terminated,
 * length in *len_out). For a token from token_parse this is exactly the
 * input. */
char	*token_format(const struct token *, size_t *len_out);

/* "apns", "apns-sandbox", "fcm", "ubports", "webpush" (static strings,
 * for metrics labels and logs); "unknown" for any other value. */
const char *token_kind_name(enum token_kind);

#endif
