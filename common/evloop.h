/*
 * libevent glue shared by the daemons: the event base,
 * SIGTERM/SIGINT as a graceful-stop callback, SIGPIPE ignored (a peer that
 * closes must cost one connection, not the process), and the open-files
 * limit raised for servers that hold many connections.
 */
#ifndef EVLOOP_H
#define EVLOOP_H

#include <stdint.h>

#include <event2/event.h>

#include "err.h"

typedef void evloop_stop_fn(int signo, void *arg);

struct evloop_signals;

/* A new event base (one priority: an event made active from a callback
 * runs after the I/O callbacks already due in this loop pass, which is
 * what group commit wants; with priorities it could starve); NULL and
 * err. */
struct event_base	*evloop_new(char err[ERR_LEN]);
/* Calls stop(signo, arg) on SIGTERM and SIGINT (from the loop, not from
 * the signal handler) and ignores SIGPIPE. Free with
 * evloop_signals_free(). */
struct evloop_signals	*evloop_signals_add(struct event_base *,
			    evloop_stop_fn *stop, void *arg);
void			 evloop_signals_free(struct evloop_signals *);

/* Raise RLIMIT_NOFILE's soft limit towards want (at most the hard limit);
 * returns the limit now in force. */
uint64_t		 evloop_raise_nofile(uint64_t want);

#endif
