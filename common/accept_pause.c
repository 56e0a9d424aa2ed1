/* A paused listener's episodes and back-off; see accept_pause.h. */
#include <errno.h>

#include "accept_pause.h"
#include "backoff.h"

bool
accept_pause_begin(struct accept_pause *p, int64_t now_ms)
{
	p->last_ms = now_ms;
	return p->pauses++ == 0;
}

int64_t
accept_pause_delay_ms(const struct accept_pause *p)
{
	/* Past 32 doublings the cap has long been reached. */
	unsigned int n = p->pauses < 32 ? p->pauses : 32;

	return backoff_delay_ms(ACCEPT_PAUSE_FIRST_MS, n > 0 ? n : 1,
	    ACCEPT_PAUSE_MAX_MS, 0, 0);
}

unsigned int
accept_pause_accepted(struct accept_pause *p, int64_t now_ms)
{
	unsigned int n = p->pauses;

	if (n == 0 || now_ms - p->last_ms < ACCEPT_PAUSE_EPISODE_GAP_MS)
		return 0;
	p->pauses = 0;
	return n;
}

bool
accept_pause_peer_error(int e)
{
	/* accept(2), Linux: errors of the pending connection's network are
	 * reported by accept and are to be treated like EAGAIN, i.e. not
	 * as the listener's; a connection reset before it was taken is
	 * ECONNABORTED. */
	switch (e) {
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
	case ENETDOWN:
	case ENOPROTOOPT:
	case EHOSTDOWN:
	case ENONET:
	case EHOSTUNREACH:
	case EOPNOTSUPP:
	case ENETUNREACH:
		return true;
	default:
		return false;
	}
}
