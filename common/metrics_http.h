/*
 * The metrics listener: a thread of its own that answers GET /metrics
 * with metrics_render() and 404 to anything else, over libmicrohttpd.
 * It is for a scraper, not the world, and bounded accordingly
 * (metrics_http.c): METRICS_HTTP_MAX_CONNECTIONS at once, each closed
 * METRICS_HTTP_DEADLINE_MS after its accept (one request per connection),
 * and out of file descriptors it pauses accepting instead of spinning.
 * Each bound is counted in the registry it serves:
 * metrics_http_accept_pauses_total, metrics_http_connection_limit_pauses_total,
 * metrics_http_timeouts_total.
 */
#ifndef METRICS_HTTP_H
#define METRICS_HTTP_H

#include "err.h"

/* Connections served at once; past it new ones wait in the listen
 * backlog until one closes. A scrape is one short request: Prometheus
 * makes one at a time per target, an HA pair two, an operator's curl one
 * more. */
#define METRICS_HTTP_MAX_CONNECTIONS	8
/* A connection's life, from its accept to the end of its answer: the
 * exposition is rendered from memory in microseconds and is a few tens of
 * KiB, so a scrape takes milliseconds; a peer still sending its request
 * or not reading the answer after this long is cut (Prometheus's own
 * scrape timeout is 10 s by default). */
#define METRICS_HTTP_DEADLINE_MS	5000

struct metrics;
struct metrics_http;

/* Listens on hostport ("127.0.0.1:9100", "[::1]:9100") and starts the
 * listener's thread; NULL and err on failure. The registry is borrowed
 * and must outlive the listener; the listener's own counters are
 * registered on it. */
struct metrics_http	*metrics_http_start(struct metrics *,
			    const char *hostport, char err[ERR_LEN]);
/* Stops the thread, closes every connection and frees; NULL is a
 * no-op. */
void			 metrics_http_stop(struct metrics_http *);

#endif
