/*
 * The HTTP intake's table of clients: per address (api_addr.h: an IPv4
 * address or an IPv6 /64), the connections it holds as a TCP peer and the
 * requests it has in progress. An entry lives while either count is above
 * zero, so the table never holds more entries than twice the connections
 * open (a request is attributed to one client and rides on one
 * connection, whose peer is another entry when it comes through a trusted
 * proxy).
 *
 * Chained hash with a random key per table, so that addresses chosen by
 * a peer cannot pile up in one bucket. No I/O, never logs.
 */
#ifndef API_CLIENTS_H
#define API_CLIENTS_H

#include <stddef.h>
#include <stdint.h>

#include "api_addr.h"

struct api_client {
	struct api_addr		 addr;		/* api_addr_client() form */
	uint32_t		 conns;		/* as a TCP peer */
	uint32_t		 requests;	/* in progress, attributed */
	struct api_client	*next;		/* bucket chain */
};

struct api_clients;

/* A table sized for about expected entries (it never grows: entries are
 * bounded by the connections). */
struct api_clients *api_clients_new(size_t expected);
void	api_clients_free(struct api_clients *);

/* The entry of addr (an api_addr_client() form), or NULL. */
struct api_client *api_clients_find(struct api_clients *,
	    const struct api_addr *);
/* The entry of addr, created with zero counts if absent. The caller
 * raises a count at once (an entry at zero is freed by the next
 * api_clients_put of it). */
struct api_client *api_clients_get(struct api_clients *,
	    const struct api_addr *);
/* Frees c if both its counts are zero; call after lowering one. */
void	api_clients_put(struct api_clients *, struct api_client *c);
size_t	api_clients_count(const struct api_clients *);

#endif
