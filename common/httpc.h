/*
 * An HTTP client for the daemons' outgoing requests (notifierd to the
 * proxy; proxyd to Web Push services, UBports and Google's OAuth2 token
 * endpoint): libcurl's multi
 * interface driven by the libevent loop, so thousands of requests in
 * flight cost no thread each. Connections are kept alive and reused;
 * over https, HTTP/2 is negotiated and requests are multiplexed on one
 * connection per host. Redirects are never followed; reply bodies are
 * kept up to a bound (max_body_bytes), and a body far longer is not read
 * to its end: the answer is its status and the part kept, never a
 * transport failure (a 200 with a 1 MiB body is a 200).
 *
 * One loop thread: every call and every callback happens on it.
 */
#ifndef HTTPC_H
#define HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct event_base;
struct sockaddr;
struct httpc;

struct httpc_config {
	const char	*ca_file;		/* NULL: system store */
	long		 timeout_ms;		/* whole request */
	unsigned int	 max_connections;	/* per host */
	unsigned int	 max_streams;		/* HTTP/2, per connection;
						 * 0: curl's default (100) */
	size_t		 max_body_bytes;	/* reply; 0: discard */
	const char	*user_agent;
	/* Schemes allowed, in curl's syntax ("https", "http,https");
	 * NULL: "http,https". */
	const char	*protocols;
	/* Asked with every address before a connection to it is opened
	 * (after DNS, so it judges the address actually connected to);
	 * false refuses it without any packet sent, and the request fails
	 * with HTTPC_ADDRESS_REFUSED unless another address is allowed.
	 * NULL: every address. */
	bool		(*allow_address)(const struct sockaddr *,
			    unsigned int len, void *arg);
	void		*allow_address_arg;
};

/* The error of a request refused by allow_address. */
#define HTTPC_ADDRESS_REFUSED	"address refused (not a public address)"

/* A request; every pointer is borrowed until the done callback. */
struct httpc_request {
	const char		*method;	/* NULL: POST */
	const char		*url;
	const char *const	*headers;	/* "name: value" */
	size_t			 nheaders;
	const char		*body;
	size_t			 body_len;
};

struct httpc_response {
	long		 status;	/* 0 when no answer came */
	const char	*error;		/* transport failure, else "" */
	const char	*body;		/* up to max_body_bytes, NUL-ended */
	size_t		 body_len;
	/* The body was longer than max_body_bytes: body holds its start.
	 * Past max_body_bytes + 64 KiB the transfer was stopped there
	 * (the connection is not used again). */
	bool		 body_truncated;
	int64_t		 retry_after_s;	/* Retry-After in seconds, or -1 */
	int64_t		 latency_us;
};

/* Called from the loop when a request ends; the response is valid only
 * during the call. */
typedef void httpc_done_fn(void *ctx, const struct httpc_response *,
    void *arg);
/* Hands back the ctx of a request aborted by httpc_free(). */
typedef void httpc_cancel_fn(void *ctx, void *arg);

struct httpc *httpc_new(struct event_base *, const struct httpc_config *,
	    httpc_done_fn *, void *arg, char err[ERR_LEN]);
/* Starts the request; 0, or -1 and err (nothing will be called back). */
int	httpc_send(struct httpc *, const struct httpc_request *, void *ctx,
	    char err[ERR_LEN]);
size_t	httpc_in_flight(const struct httpc *);
/* Aborts what is still running, handing each ctx to cancel (may be NULL
 * when nothing is in flight); NULL is a no-op. */
void	httpc_free(struct httpc *, httpc_cancel_fn *cancel);

#endif
