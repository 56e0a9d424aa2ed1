/*
 * The metrics listener: a libmicrohttpd daemon on its own thread that
 * answers GET /metrics with metrics_render() and 404 to anything else.
 * Small connection limit and timeouts: it is for a scraper, not the world.
 */
#ifndef METRICS_HTTP_H
#define METRICS_HTTP_H

#include "err.h"

struct metrics;
struct metrics_http;

/* Listens on hostport ("127.0.0.1:9100", "[::1]:9100"); NULL and err on
 * failure. The registry is borrowed and must outlive the listener. */
struct metrics_http	*metrics_http_start(struct metrics *,
			    const char *hostport, char err[ERR_LEN]);
/* Stops the thread and frees; NULL is a no-op. */
void			 metrics_http_stop(struct metrics_http *);

#endif
