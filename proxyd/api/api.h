/*
 * proxyd's public HTTP API (docs/push-providers.md §5.3) on libmicrohttpd,
 * driven by the same libevent loop as everything else: MHD runs in
 * "external" epoll mode, so the request handlers, the provider clients
 * and the timers share one thread and need no locks. A /notify or
 * /register request is suspended while its push is in flight and resumed
 * by api_reply(): thousands of requests waiting on Apple cost memory, not
 * threads.
 *
 *   GET  /          200 "Hello, world!" (health)
 *   POST /notify    body = token; answered by the notify handler
 *   POST /register  body = {"token": "..."}; answered by the register
 *                   handler
 *
 * Bodies over API_MAX_BODY_BYTES get 413 without reaching a handler; slow
 * clients time out; connections are capped in total and per address.
 */
#ifndef API_H
#define API_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define API_MAX_BODY_BYTES	(16 * 1024)

struct event_base;
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

struct api_config {
	const char	*host;		/* numeric address */
	uint16_t	 port;		/* 0: any free port */
	unsigned int	 max_connections;
	unsigned int	 max_per_ip;
	unsigned int	 timeout_s;	/* idle / slow client */
};

struct api *api_new(struct event_base *, const struct api_config *,
	    api_handler_fn *, void *arg, char err[ERR_LEN]);
/* The port actually bound (useful with port 0). */
uint16_t api_port(const struct api *);
/* Answer a request (body may be NULL); the request is gone afterwards. */
void	api_reply(struct api_request *, unsigned int status,
	    const char *body);
/* Requests waiting for their handler's answer. */
size_t	api_pending(const struct api *);
void	api_free(struct api *);

#endif
