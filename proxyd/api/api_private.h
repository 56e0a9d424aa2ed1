/*
 * Inside the HTTP intake: what api.c (libmicrohttpd and the requests)
 * and api_accept.c (the listening socket) share. Not for other modules.
 */
#ifndef API_PRIVATE_H
#define API_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include "api.h"
#include "api_addr.h"
#include "api_clients.h"
#include "api_conn.h"
#include "log_limit.h"

struct MHD_Daemon;
struct event;
struct metric;

/* How far the table may overshoot --max-connections while connections
 * given up for newcomers are still closing (api_accept.c): this many, or
 * a quarter of the table when that is less, so that a small table stays
 * within the descriptors kept for it. */
#define API_ACCEPT_SLACK	64

/* Why accepting is paused (api_accept.c). */
enum api_accept_state {
	API_ACCEPT_ON,
	API_ACCEPT_FULL,	/* at --max-connections, nobody to give way */
	API_ACCEPT_NOFD,	/* out of file descriptors; retried */
};

struct api_stats {
	struct metric	*connections;		/* gauge */
	struct metric	*request_timeouts, *idle_timeouts, *evicted;
	struct metric	*peer_refused, *client_refused, *too_large;
	struct metric	*bad_length, *bad_encoding, *bad_char;
	struct metric	*fd_exhausted;
};

/* The sites of log lines a client can cause, each rate-limited. */
struct api_log_limits {
	struct log_limit	 mhd;		/* libmicrohttpd's own lines */
	struct log_limit	 bad;		/* 400 */
	struct log_limit	 client;	/* 429 */
	struct log_limit	 peer;		/* connection refused */
	struct log_limit	 xff;		/* no X-Forwarded-For */
	struct log_limit	 accept;	/* accept failures */
};

struct api {
	struct event_base	*base;
	struct MHD_Daemon	*mhd;
	struct event		*io;		/* MHD's epoll fd readable */
	struct event		*run;		/* run MHD soon / its timer */
	api_handler_fn		*handler;
	void			*arg;
	api_probe_fn		*probe;		/* /health, /ready; or NULL */
	void			*probe_arg;
	struct api_request	*pending;
	size_t			 npending;
	uint16_t		 port;
	bool			 stopping;
	struct api_limits	 limits;
	struct api_trust	 trust;
	struct api_clients	*clients;
	/* connections and their deadlines */
	struct api_conns	 conns;
	struct event		*sweep;
	int64_t			 sweep_at;	/* armed for; -1: not armed */
	/* accepting (api_accept.c) */
	int			 listen_fd;
	struct event		*accept_ev;
	struct event		*accept_retry;
	enum api_accept_state	 accept_state;
	unsigned int		 slack;		/* API_ACCEPT_SLACK, scaled */
	bool			 fd_episode;	/* since the last empty queue */
	struct metrics		*own_metrics;	/* when none was given */
	struct api_stats	 st;
	struct api_log_limits	 lim;
};

/* api.c */
/* Let MHD run in this loop pass. */
void	api_schedule(struct api *);
/* Shut the socket of c (already marked CUT) down: MHD sees the end of
 * the stream and closes the connection. */
void	api_conn_shut(struct api *, struct api_conn *c);

/* api_accept.c */
/* Opens host:port (with SO_REUSEPORT if reuse_port) and starts
 * accepting: 0, or -1 and err. */
int	api_accept_listen(struct api *, const char *host, uint16_t port,
	    bool reuse_port, char err[ERR_LEN]);
/* A connection closed or became idle: accepting resumes if it waited
 * for room or for a file descriptor (a try that fails again pauses it
 * again, without a line). */
void	api_accept_room(struct api *);
/* Stops accepting and closes the listening socket. */
void	api_accept_stop(struct api *);

#endif
