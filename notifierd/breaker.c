/*
 * A circuit breaker for the one proxy every job goes to. When it stops
 * answering (connection errors, timeouts, 5xx) every job would otherwise
 * retry on its own schedule and the queue would keep hitting a dead
 * proxy; after `threshold` consecutive failures the breaker opens and no
 * request starts for a cooldown that doubles per opening (up to a
 * maximum). Then one probe goes out: an answer closes the breaker, a
 * failure opens it again. Pure: the caller passes the time.
 */
#include "notifierd.h"

void
breaker_init(struct breaker *b, unsigned int threshold,
    int64_t min_cooldown_ms, int64_t max_cooldown_ms)
{
	b->failures = 0;
	b->threshold = threshold ? threshold : 1;
	b->open_until_ms = 0;
	b->min_cooldown_ms = min_cooldown_ms;
	b->max_cooldown_ms = max_cooldown_ms;
	b->cooldown_ms = min_cooldown_ms;
	b->probing = false;
}

bool
breaker_is_open(const struct breaker *b, int64_t now_ms)
{
	return b->open_until_ms != 0 && now_ms < b->open_until_ms;
}

size_t
breaker_allow(struct breaker *b, int64_t now_ms, size_t wanted)
{
	if (b->open_until_ms == 0)
		return wanted;
	if (now_ms < b->open_until_ms || b->probing)
		return 0;
	/* Cooldown over: half-open, one probe at a time. */
	b->probing = true;
	return wanted > 0 ? 1 : 0;
}

bool
breaker_record(struct breaker *b, bool proxy_ok, int64_t now_ms)
{
	if (proxy_ok) {
		b->failures = 0;
		b->open_until_ms = 0;
		b->probing = false;
		b->cooldown_ms = b->min_cooldown_ms;
		return false;
	}
	b->failures++;
	if (b->probing || (b->open_until_ms == 0 &&
	    b->failures >= b->threshold)) {
		bool was_probing = b->probing;

		if (was_probing && b->cooldown_ms < b->max_cooldown_ms)
			b->cooldown_ms = b->cooldown_ms * 2 > b->max_cooldown_ms ?
			    b->max_cooldown_ms : b->cooldown_ms * 2;
		b->open_until_ms = now_ms + b->cooldown_ms;
		b->probing = false;
		return true;
	}
	return false;
}

void
breaker_probe_unused(struct breaker *b)
{
	/* breaker_allow() granted a probe but nothing was due: let the
	 * next call grant it again rather than stay half-open forever. */
	b->probing = false;
}
