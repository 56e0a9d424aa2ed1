/* Retry delays and deadlines; see backoff.h. */
#include "backoff.h"

int64_t
backoff_delay_ms(int64_t base_ms, unsigned int retry, int64_t max_ms,
    unsigned int jitter_permille, uint32_t rnd)
{
	int64_t factor = base_ms / 1000 > 2 ? base_ms / 1000 : 2;
	int64_t delay = base_ms > 0 ? base_ms : 1;
	int64_t spread;

	for (unsigned int i = 1; i < retry && delay < max_ms; i++) {
		if (delay > max_ms / factor) {
			delay = max_ms;
			break;
		}
		delay *= factor;
	}
	if (delay > max_ms)
		delay = max_ms;
	if (jitter_permille > 1000)
		jitter_permille = 1000;
	spread = delay * (int64_t)jitter_permille / 1000;
	if (spread > 0)
		/* rnd maps to [-spread, +spread] */
		delay += (int64_t)(rnd % (uint64_t)(2 * spread + 1)) - spread;
	return delay > 0 ? delay : 1;
}

int
backoff_within_deadline(int64_t created_ms, int64_t at_ms,
    int64_t deadline_ms)
{
	return at_ms <= created_ms + deadline_ms;
}
