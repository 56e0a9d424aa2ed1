/*
 * One connection to the Redis server that holds proxyd's shared state
 * (docs/scaling.md), on the loop and never blocking it: hiredis's
 * asynchronous client on libevent, commands pipelined on one socket.
 *
 * The master is either given (--redis) or asked of Sentinel
 * (--redis-sentinel, --redis-master): each sentinel in turn answers
 * SENTINEL get-master-addr-by-name, and every new connection checks with
 * ROLE that it reached a master. A failover is followed without a
 * subscription: the old master's connection drops (or its writes answer
 * READONLY once it is a replica), and the next connection asks Sentinel
 * again, with a back-off from 100 ms to 2 s.
 *
 * Every wait is bounded by the timeout: the connect, the handshake
 * (AUTH, SELECT, ROLE, SCRIPT LOAD of the caller's scripts) and each
 * command's answer; past it the connection is dropped, every command in
 * flight is answered NULL at once, and a new one is made. A command
 * submitted while the connection is not up, or with max_pending in
 * flight, is refused at once (-1): the caller goes on without Redis, it
 * never waits for it.
 *
 * hiredis 0.14 (Debian 12) has no timeouts of its own and resolves host
 * names with getaddrinfo when it connects (blocking): give addresses.
 */
#ifndef REDIS_CONN_H
#define REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "err.h"
#include "redis_addr.h"

struct event_base;
struct redis_conn;

#define REDIS_CONN_MAX_SCRIPTS	16

struct redis_conn_config {
	struct event_base	*base;
	struct redis_addr	 addr;		/* the master, without sentinels;
						 * its password and db always */
	struct redis_endpoint	 sentinels[REDIS_ADDR_SENTINELS];
	size_t			 nsentinels;	/* 0: addr is the master */
	const char		*master_name;	/* with sentinels */
	int64_t			 timeout_ms;	/* every wait */
	size_t			 max_pending;	/* commands in flight */
	/* Lua scripts loaded on every connection (EVALSHA by index). */
	const char		*scripts[REDIS_CONN_MAX_SCRIPTS];
	size_t			 nscripts;
	/* The connection came up (the scripts are loaded) or went down
	 * (why: a short reason, no secret). Called on the loop. */
	void			(*on_up)(void *arg);
	void			(*on_down)(void *arg, const char *why);
	void			*arg;
};

struct redis_conn_stats {
	uint64_t	 commands;	/* sent */
	uint64_t	 failed;	/* answered NULL: dropped, timed out */
	uint64_t	 refused;	/* not sent: down or max_pending */
	uint64_t	 errors;	/* answered with a Redis error */
	uint64_t	 timeouts;	/* connections dropped for a timeout */
	uint64_t	 connects;	/* connections that came up */
	uint64_t	 master_changes;	/* up at another address */
	size_t		 pending;	/* in flight now */
};

/* An answer: reply NULL when the command failed (no connection, timed
 * out, or the connection dropped before its answer). The reply is
 * hiredis's, valid for the call only. */
typedef void redis_reply_fn(void *arg, const redisReply *reply);

/* Starts connecting at once (in the background): NULL and err only for
 * a configuration error. The config is copied (its secrets wiped from
 * the copy at free). */
struct redis_conn *redis_conn_new(const struct redis_conn_config *,
		    char err[ERR_LEN]);
/* Every command in flight is answered NULL first. NULL is a no-op. */
void		 redis_conn_free(struct redis_conn *);
bool		 redis_conn_up(const struct redis_conn *);
/* Why it is not up ("" when it is). */
const char	*redis_conn_why(const struct redis_conn *);

/* A command's arguments, built in place: strings are borrowed (they
 * must live until the command is sent), numbers are formatted into the
 * struct. Past REDIS_ARGS_MAX the command is refused when sent. */
#define REDIS_ARGS_MAX	16
struct redis_args {
	int		 n;
	bool		 overflow;
	const char	*v[REDIS_ARGS_MAX];
	size_t		 len[REDIS_ARGS_MAX];
	char		 num[REDIS_ARGS_MAX][32];
};

void		 redis_args_init(struct redis_args *);
void		 redis_args_add(struct redis_args *, const char *s, size_t len);
void		 redis_args_str(struct redis_args *, const char *s);
void		 redis_args_int(struct redis_args *, int64_t);
void		 redis_args_double(struct redis_args *, double);

/* Sends a command: 0 (fn is called once, later, never before this
 * returns), or -1 (down, or too many in flight: fn is never called). fn
 * may be NULL (fire and forget). */
int		 redis_conn_command(struct redis_conn *, redis_reply_fn *fn,
		    void *arg, const struct redis_args *);
/* EVALSHA of script i, whose first nkeys arguments are keys. */
int		 redis_conn_script(struct redis_conn *, size_t i, int nkeys,
		    redis_reply_fn *fn, void *arg, const struct redis_args *);
void		 redis_conn_get_stats(const struct redis_conn *,
		    struct redis_conn_stats *);

#endif
