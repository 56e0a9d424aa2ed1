/*
 * The shape every push provider has, and the one struct of operations
 * the push engine (proxyd/push/push.c) drives them through, as
 * OpenSMTPD's queue backends and Dovecot's dict drivers: one table per
 * provider (struct provider_ops), listed in the registry
 * (providers.h), chosen once by the token's kind. The engine never asks
 * which provider it has.
 *
 * A provider module owns what is its own: the request for a push
 * (build), what an answer means (classify, one signature for all), its
 * credential (APNs's JWT, made in build and replaced after
 * ExpiredProviderToken; FCM's access token, fetched by one shared
 * request with back-off), pauses narrower than the whole provider (Web
 * Push: per origin), its address rules (Web Push's SSRF policy), and
 * which transport carries it (transport.h) with what settings. The
 * engine owns what all share: rate limits and provider-wide pauses, the
 * one retry after a renewed credential, verdicts handed back, metrics,
 * and all I/O and logging: a provider never sends and never logs.
 *
 * Device tokens are secrets: a request a provider builds is freed with
 * provider_request_clear(), which wipes the body and headers (they carry
 * the token and credentials).
 *
 * Adding a provider: docs/push-providers.md, "Adding a provider".
 */
#ifndef PROVIDER_H
#define PROVIDER_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "transport.h"

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
	VERDICT_OVERLOAD,	/* not sent: proxyd's queue toward the
				 * provider is full for it, or it waited too
				 * long (the engine's, never a provider's):
				 * 503 with Retry-After */
};

struct provider_result {
	enum provider_verdict	 verdict;
	/* The provider's reason ("BadDeviceToken", "UNREGISTERED") or the
	 * HTTP status as text, for logs and the notification_failures
	 * metric's details label; printable ASCII only. */
	char			 reason[48];
	int64_t			 retry_after_ms;	/* PAUSE; 0: unknown */
	/* Set by the engine: when the request last went to the transport
	 * (wall clock, ms); 0 if it never did. A debounce window runs from
	 * there (promise.c). */
	int64_t			 sent_ms;
	/* Set by the engine: it logged this failure's episode already
	 * (a credential refused): the caller logs the push at debug. */
	bool			 logged;
};

/* An answer as a provider reads it (the transport's, in its terms). */
struct provider_answer {
	long		 status;		/* 0: no answer */
	const char	*body;			/* NUL-ended; may be "" */
	size_t		 len;
	int64_t		 retry_after_ms;	/* Retry-After; 0: none */
};

struct token;

/* One push as a provider sees it: what to send (set by the engine), and
 * what build made of it. */
struct provider_push {
	enum push_kind		 kind;
	const struct token	*token;		/* borrowed, its strings too */
	int64_t			 now_ms;	/* wall clock: JWT times */
	int64_t			 mono_ms;	/* monotonic: pauses */
	/* Set by build: */
	struct provider_request	 req;		/* PROVIDER_SEND */
	struct provider_result	 res;		/* PROVIDER_DECIDED */
	/* Which credential req carries (renew_auth's argument): the JWT's
	 * time, the access token's generation; 0 without one. */
	uint64_t		 credential;
};

/* What build made of a push. */
enum provider_build {
	PROVIDER_SEND,		/* push->req: send it */
	PROVIDER_DECIDED,	/* push->res: nothing to send, this verdict
				 * (a refused endpoint, a paused origin) */
	PROVIDER_WAIT,		/* no usable credential, a renewal due or in
				 * flight: build again when it ends */
	PROVIDER_FAILED,	/* err: 500 to the relay (TEMPORARY, "send"),
				 * logged by the engine */
};

/* A token kind's bit, for provider_ops.token_kinds. */
#define PROVIDER_TOKEN(kind)	(1u << (kind))

/* A provider's state: whatever its module makes it (never defined here;
 * each module casts to its own struct). */
struct provider;

/*
 * One provider. Every hook is called on the loop thread, never
 * reentrantly; the ones marked optional may be NULL.
 */
struct provider_ops {
	const char	*name;		/* "apns": --rate-limit's spelling */
	const char	*label;		/* "APNS": metric labels and logs */
	unsigned int	 token_kinds;	/* PROVIDER_TOKEN(kind) | ... */
	bool		 heartbeats;	/* takes PUSH_HEARTBEAT (and so
					 * /register) */
	/* The notification_failures detail when it is not configured
	 * ("no_certificate"); NULL: "no_provider". */
	const char	*off_reason;
	double		 default_rate;	/* pushes/s unless --rate-limit; 0:
					 * unlimited */
	enum transport_kind transport;	/* what carries its pushes */

	/* 0 and *out (NULL: not configured; its tokens then get 500), or
	 * -1 and err (a setting that cannot work: the start fails).
	 * settings: its own config struct (struct apns_config for APNs;
	 * providers_settings() finds it), borrowed while it lives. */
	int	(*new)(const void *settings, struct provider **out,
		    char err[ERR_LEN]);
	void	(*free)(struct provider *);
	/* Optional: adjusts its transport's config, which comes filled with
	 * the engine's defaults (CA file, timeout, answer size, user
	 * agent). */
	void	(*transport_config)(const struct provider *,
		    struct transport_config *);
	/* The request for push->kind to push->token (of one of its kinds),
	 * or why there is none; see enum provider_build. */
	enum provider_build (*build)(struct provider *, struct provider_push *,
		    char err[ERR_LEN]);
	/* What an answer means. Pure: no state, any thread. status 0 (no
	 * answer) is classified too, and then overruled by the engine
	 * (TEMPORARY). */
	void	(*classify)(const struct provider_answer *,
		    struct provider_result *out);

	/* Optional: the provider said RENEW_AUTH to a request that carried
	 * credential. true: a retry may work (the credential was, or will
	 * be, renewed): the engine builds and sends the push once more.
	 * false: the verdict becomes TEMPORARY. */
	bool	(*renew_auth)(struct provider *, uint64_t credential,
		    int64_t now_ms);

	/* Optional, together: a credential fetched over the network (FCM's
	 * access token), by one request at a time shared by every push
	 * that needs it; build says PROVIDER_WAIT meanwhile. After every
	 * build the engine calls renewal_start: 1 and out (the request, a
	 * secret: sent on a renewal_transport, then cleared), 0 (none due,
	 * or one in flight), or -1 and err, *fail the verdict for the pushes
	 * waiting (the provider backs off). For every request sent,
	 * renewal_done once (status 0: no answer, or it could not be
	 * sent): 0, the waiting pushes are built again; -1 and err, they
	 * end with *fail. */
	int	(*renewal_start)(struct provider *, int64_t now_ms,
		    struct provider_request *out, struct provider_result *fail,
		    char err[ERR_LEN]);
	int	(*renewal_done)(struct provider *,
		    const struct provider_answer *, int64_t now_ms,
		    struct provider_result *fail, char err[ERR_LEN]);
	const char	*renewal_name;	/* "access token": for logs */
	enum transport_kind renewal_transport;
	/* Optional, with them: whether a usable credential is in hand now
	 * (GET /ready). NULL: the credential came with the settings. */
	bool	(*credential_ready)(const struct provider *, int64_t now_ms);

	/* Optional: a PAUSE narrower than the whole provider (Web Push: the
	 * endpoint's origin, as anyone can make an endpoint that answers
	 * 429): pause what t belongs to for ms, build then says
	 * PROVIDER_DECIDED (PAUSE, "paused") until it ends. NULL: the engine
	 * pauses the whole provider (its rate limiter). */
	void	(*pause)(struct provider *, const struct token *t, int64_t ms,
		    int64_t mono_ms);
	/* Optional, with pause: the name of what t's pause covers (Web
	 * Push: the origin) into out (0, or -1: none), so that a shared
	 * state tells the other instances (docs/scaling.md); pause_named
	 * applies a pause another instance heard of. */
	int	(*pause_name)(const struct provider *, const struct token *t,
		    char *out, size_t len);
	void	(*pause_named)(struct provider *, const char *name, int64_t ms,
		    int64_t mono_ms);

	/* Optional, TRANSPORT_HTTP only: whether its transport may connect
	 * to this address (after DNS, before the socket is opened: SSRF
	 * rules); false and *why (a static string: the engine logs it).
	 * NULL: any address. */
	bool	(*allow_address)(const struct provider *,
		    const struct sockaddr *, unsigned int len,
		    const char **why);
};

void	provider_request_add_header(struct provider_request *,
	    const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Wipes and frees what the request owns; the struct is reusable. */
void	provider_request_clear(struct provider_request *);
/* A result made here, not by classify: verdict and reason (copied,
 * cut to fit), no Retry-After. */
void	provider_result_set(struct provider_result *, enum provider_verdict,
	    const char *reason);
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
