/*
 * An HTTP/2-only client over TLS for the providers that speak nothing
 * else and carry proxyd's volume (Apple's APNs, Google's FCM): nghttp2's
 * session on a non-blocking OpenSSL connection driven by the libevent
 * loop. Same request, response and callback types as httpc.h (a
 * config of its own), so a caller can use either
 * (proxyd/transport/transport.h puts both behind one face).
 *
 * Why not libcurl here (httpc.c): at tens of thousands of pushes per
 * second curl spends most of the loop thread on per-transfer bookkeeping
 * (three TLS records and three send() per request, a poll() per
 * transfer) and sends RST_STREAM after every answered stream, which
 * servers' rapid-reset defences answer with GOAWAY. Here every request
 * submitted in one loop pass leaves in one TLS write, answers are read
 * in 16 KiB records, and a finished stream costs no frame.
 *
 * One connection per origin (scheme://host:port), opened on the first
 * request and kept; requests beyond the server's concurrent-stream limit
 * wait in nghttp2's queue. A server's GOAWAY sends later requests to a
 * new connection while the old one finishes its streams; streams the
 * server refused unprocessed are retried once on the new connection.
 * A connection that fails fails its requests (status 0, error set) and
 * tells the caller why (conn_failed); the client itself never logs.
 *
 * One loop thread: every call and every callback happens on it. Done
 * callbacks are never made from inside h2client_send().
 */
#ifndef H2CLIENT_H
#define H2CLIENT_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "err.h"
#include "httpc.h"

struct event_base;
struct h2client;

struct h2client_config {
	const char	*ca_file;	/* NULL: system store */
	long		 timeout_ms;	/* per request, and per connection
					 * attempt */
	/* Streams assumed allowed until the server's SETTINGS says (none
	 * is sent before it anyway); 0: 100. */
	unsigned int	 max_streams;
	size_t		 max_body_bytes;	/* bodies kept; 0: none */
	const char	*user_agent;		/* NULL: no user-agent */
	/* TLS client certificate (APNs certificate auth; p12.h loads it),
	 * its key and chain (may be NULL): presented at every handshake.
	 * Borrowed during h2client_new only. NULL: none. */
	EVP_PKEY	*client_key;
	X509		*client_cert;
	STACK_OF(X509)	*client_chain;
	/* A connection to authority ended with its requests unanswered, or
	 * could not be opened ("TLS handshake with ...: ...", "closed by the
	 * server"): the client logs nothing, the caller may. Not called for
	 * a connection drained after GOAWAY, nor by h2client_free. Called
	 * from inside the client (any call or loop callback of it): it must
	 * not call the client. NULL: nobody is told. */
	void		(*conn_failed)(const char *authority, const char *why,
			    void *arg);
	void		*conn_failed_arg;
};

/* Only https:// URLs. NULL and err if the TLS context cannot be set up
 * (the CA file, a certificate that does not match its key). */
struct h2client *h2client_new(struct event_base *,
	    const struct h2client_config *, httpc_done_fn *, void *arg,
	    char err[ERR_LEN]);
/* Queues the request; 0, or -1 and err (nothing will be called back).
 * The request's strings are borrowed until its done callback. */
int	h2client_send(struct h2client *, const struct httpc_request *,
	    void *ctx, char err[ERR_LEN]);
size_t	h2client_in_flight(const struct h2client *);
/* Aborts what is still running, handing each ctx to cancel; NULL is a
 * no-op. Not from inside a done callback. */
void	h2client_free(struct h2client *, httpc_cancel_fn *cancel);

#endif
