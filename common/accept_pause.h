/*
 * The bookkeeping of a listener that pauses accepting, pure (time comes
 * in as an argument, nothing is logged).
 *
 * Out of file descriptors (EMFILE, ENFILE), accept() fails while the
 * listening socket stays readable: a level-triggered loop calls it again
 * at once, forever, one log line per attempt (measured on the metrics
 * listener: 3.97 M lines, 933 MB in 45 s). A listener pauses instead and
 * tries again after accept_pause_delay_ms, or as soon as one of its own
 * connections is freed, whichever comes first. The same listener may
 * pause at a bound of its own (its connections), resuming when one
 * closes: an episode of either kind is counted by its own struct.
 *
 * An episode is logged twice: at its first pause, and at the first accept
 * ACCEPT_PAUSE_EPISODE_GAP_MS after its last pause (a pause in between,
 * as connections close one by one and the next accept fails again, is
 * the same episode: no line).
 *
 * Used by metadata-dictd's dict_server.c and metrics_http.c; proxyd's
 * api_accept.c keeps a variant of its own (a fixed retry, no back-off).
 */
#ifndef ACCEPT_PAUSE_H
#define ACCEPT_PAUSE_H

#include <stdbool.h>
#include <stdint.h>

/* The first retry after an accept failed, doubling up to the last. */
#define ACCEPT_PAUSE_FIRST_MS		100
#define ACCEPT_PAUSE_MAX_MS		2000
/* An episode ends at the first accept this long after its last pause. */
#define ACCEPT_PAUSE_EPISODE_GAP_MS	2000

struct accept_pause {
	unsigned int	 pauses;	/* this episode's; 0: none under way */
	int64_t		 last_ms;	/* the last pause, monotonic */
};

/* A pause at now_ms (an accept failed, or a bound was reached): true if
 * it starts an episode (log it). */
bool	accept_pause_begin(struct accept_pause *, int64_t now_ms);
/* How long to wait before the next accept after the episode's latest
 * pause: ACCEPT_PAUSE_FIRST_MS, doubling with each pause of the episode
 * up to ACCEPT_PAUSE_MAX_MS. */
int64_t	accept_pause_delay_ms(const struct accept_pause *);
/* An accept at now_ms: the pauses of the episode it ends (log them), or
 * 0 when none ends (none under way, or its last pause is too recent). */
unsigned int accept_pause_accepted(struct accept_pause *, int64_t now_ms);
/* Whether accept() failing with errno e is about the pending connection
 * (gone, or its network: try the next one at once) rather than about us
 * (out of descriptors or memory: pause). EAGAIN is neither: the backlog
 * is empty. */
bool	accept_pause_peer_error(int e);

#endif
