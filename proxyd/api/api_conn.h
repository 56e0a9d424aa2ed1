/*
 * The HTTP intake's connections and their deadlines. libmicrohttpd's own
 * timeout is an idle timeout, reset by every byte, so a client dripping a
 * byte every few seconds holds a connection for ever; here each phase of
 * a connection has a total deadline instead:
 *
 *   READING  from the connection's start (its first request) or from the
 *            request line (later requests) until the whole request, headers
 *            and body, is in: --request-timeout
 *   BUSY     the request is complete: handled, waiting for its push, or
 *            being answered; no deadline here (the push has its own)
 *   IDLE     answered, kept alive, waiting for the next request line:
 *            --idle-timeout from the end of the answer
 *   CUT      past its deadline or given up for a newcomer: its socket was
 *            shut down and libmicrohttpd will close it
 *
 * A phase's deadline is now plus the same duration for everyone, so each
 * list (READING, IDLE) is in deadline order by appending at its tail:
 * every change is O(1), the sweep only ever looks at the two heads, and
 * the oldest connection still sending its request is the READING head.
 *
 * No I/O and no clock: the caller passes now (ms, monotonic) and does
 * the shutdown.
 */
#ifndef API_CONN_H
#define API_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "api_addr.h"

struct api_client;

enum api_conn_phase {
	API_CONN_READING,
	API_CONN_BUSY,
	API_CONN_IDLE,
	API_CONN_CUT,
};

struct api_conn {
	int			 fd;
	enum api_conn_phase	 phase;
	int64_t			 deadline_ms;	/* READING, IDLE */
	struct api_addr		 peer;		/* TCP peer */
	bool			 trusted;	/* a --trusted-proxy */
	struct api_client	*counted;	/* the peer's entry; NULL:
						 * trusted, not counted */
	TAILQ_ENTRY(api_conn)	 link;		/* READING or IDLE list */
};
TAILQ_HEAD(api_conn_list, api_conn);

struct api_conns {
	struct api_conn_list	 reading, idle;
	size_t			 open;		/* every phase */
	int64_t			 request_ms, idle_ms;
};

void	api_conns_init(struct api_conns *, int64_t request_ms,
	    int64_t idle_ms);
/* A new connection, READING from now; c is the caller's and must stay
 * valid until api_conns_remove. */
void	api_conns_add(struct api_conns *, struct api_conn *c, int64_t now);
/* A closed connection leaves the table (any phase). */
void	api_conns_remove(struct api_conns *, struct api_conn *c);

/* Phase changes; a CUT connection stays CUT. api_conn_reading() starts
 * a new request's clock only when c was IDLE or BUSY (a later request on
 * a kept-alive connection); a first request keeps the deadline from the
 * connection's start. */
void	api_conn_reading(struct api_conns *, struct api_conn *c, int64_t now);
void	api_conn_busy(struct api_conns *, struct api_conn *c);
void	api_conn_idle(struct api_conns *, struct api_conn *c, int64_t now);

/* The next connection whose deadline is at or before now, marked CUT and
 * off its list (*idle_out: it was IDLE); NULL when none is due. */
struct api_conn *api_conns_expired(struct api_conns *, int64_t now,
	    bool *idle_out);
/* The connection to give up for a newcomer when the table is full: the
 * oldest still READING, else the oldest IDLE, marked CUT; NULL when every
 * connection is BUSY (or already CUT). */
struct api_conn *api_conns_victim(struct api_conns *);
/* Marks c CUT now, off its list (a request the intake gives up on). */
void	api_conns_cut(struct api_conns *, struct api_conn *c);
/* The earliest deadline, or -1 when nothing waits for one. */
int64_t	api_conns_next_deadline(const struct api_conns *);

#endif
