/*
 * proxyd's public HTTP API (docs/push-providers.md §5.3) on libmicrohttpd,
 * driven by the same libevent loop as everything else: MHD runs in
 * "external" epoll mode, so the request handlers, the provider clients
 * and the timers share one thread and need no locks. A /notify or
 * /register request is suspended while its push is in flight and resumed
 * by api_reply(): thousands of requests waiting on Apple cost memory, not
 * threads.
 *
 *   GET  /          200 "Hello, world!"
 *   GET  /health    for a load balancer: answered by the probe
 *   GET  /ready     the same (api_probe_fn)
 *   POST /notify    body = token; answered by the notify handler
 *   POST /register  body = {"token": "..."}; answered by the register
 *                   handler
 *
 * It faces the open internet, so every resource a client can hold has a
 * bound (struct api_limits, one flag each, docs/proxyd.md "Intake
 * bounds"): the body (413 before it is read), a request's headers and body
 * together (a total deadline, not an idle one), the wait for the next
 * request on a kept-alive connection, connections per TCP peer and in all
 * (at the total, the oldest connection still sending its request gives
 * way), requests in progress per client (429), where the client behind a
 * trusted reverse proxy is the address the proxy put in X-Forwarded-For.
 * Headers a proxy in front could read differently (two Content-Length,
 * Content-Length with Transfer-Encoding, control bytes) get 400. Running
 * out of file descriptors pauses accepting, with one log line.
 *
 * Files: api.c (libmicrohttpd glue and requests), api_accept.c (the
 * listening socket and who may connect), api_conn.c (connections'
 * phases and deadlines), api_clients.c (counts per client), api_addr.c
 * (addresses, trusted proxies, X-Forwarded-For), api_headers.c (header
 * checks); api_private.h between them.
 */
#ifndef API_H
#define API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api_addr.h"
#include "err.h"

/* Default --max-body-size: a token is about 1 KiB (README.md). */
#define API_MAX_BODY_BYTES	(16 * 1024)

struct event_base;
struct metrics;
struct api;
struct api_request;

enum api_route {
	API_ROUTE_NOTIFY,
	API_ROUTE_REGISTER,
};

/* Called on the loop thread once the whole body is in. The handler owns
 * the answer: it must call api_reply() exactly once, now or later. */
typedef void api_handler_fn(struct api_request *, enum api_route,
    const char *body, size_t len, void *arg);

/* What a load balancer asks (GET or HEAD). */
enum api_probe {
	API_PROBE_HEALTH,	/* /health: keep sending it requests? */
	API_PROBE_READY,	/* /ready: may it have requests yet? */
};

/* The longest answer to a probe, its NUL included. */
#define API_PROBE_BODY_MAX	256

/* Answers a probe on the loop thread: the status, and the body written
 * into body (size bytes, NUL-terminated; cut if longer). Asked every
 * few seconds by every balancer, so it only looks at what its owner
 * already knows. */
typedef unsigned int api_probe_fn(enum api_probe, char *body, size_t size,
    void *arg);

/* The intake's bounds; api_limits_default() gives the documented
 * defaults (docs/proxyd.md). */
struct api_limits {
	unsigned int	 max_connections;	/* open at once */
	unsigned int	 max_per_ip;		/* per direct TCP peer */
	unsigned int	 max_requests_per_client; /* in progress */
	size_t		 max_body_bytes;
	int64_t		 request_timeout_ms;	/* headers + body, total */
	int64_t		 idle_timeout_ms;	/* between requests */
	const char	*trusted_proxies;	/* "ADDR[/BITS],...", or NULL */
};

struct api_config {
	const char	*host;		/* numeric address */
	uint16_t	 port;		/* 0: any free port */
	/* SO_REUSEPORT: other processes that set it too listen on the same
	 * host:port, and the kernel spreads the connections among them. */
	bool		 reuse_port;
	struct api_limits limits;
	struct metrics	*metrics;	/* borrowed; NULL: counted privately */
	/* /health and /ready; NULL: 200 "ok" and "ready" (an intake that
	 * answers is all there is to know). */
	api_probe_fn	*probe;
	void		*probe_arg;
};

void	api_limits_default(struct api_limits *);

/* Listens on host:port: NULL and err on a bad address, a bad
 * --trusted-proxy or a port that cannot be bound. */
struct api *api_new(struct event_base *, const struct api_config *,
	    api_handler_fn *, void *arg, char err[ERR_LEN]);
/* The port actually bound (useful with port 0). */
uint16_t api_port(const struct api *);
/* Answer a request (body may be NULL); the request is gone afterwards. */
void	api_reply(struct api_request *, unsigned int status,
	    const char *body);
/* The same with a Retry-After header of retry_after_s seconds (0: none;
 * at most a day): a 429 or 503 telling the client when to come back. */
void	api_reply_retry(struct api_request *, unsigned int status,
	    const char *body, unsigned int retry_after_s);
/* The client r counts against (--max-requests-per-client): its TCP
 * peer, or behind a --trusted-proxy the last X-Forwarded-For address, in
 * api_addr_client() form (an IPv4 address, an IPv6 /64). 0 and
 * *client_out, or -1 if r has none. From the handler's call until
 * api_reply(). */
int	api_request_client(const struct api_request *r,
	    struct api_addr *client_out);
/* Requests waiting for their handler's answer. */
size_t	api_pending(const struct api *);
/* Connections open now. */
size_t	api_connections(const struct api *);
void	api_free(struct api *);

#endif
