/*
 * Retry arithmetic shared by the daemons, pure (time comes in as an
 * argument) so that it can be tested without waiting.
 *
 * Delay before retry n (n >= 1): base * factor^(n-1) with factor =
 * max(base in seconds, 2). With chatmail relay's base of 8 s that is 8^n
 * seconds (8 s, 64 s, 512 s, 68 min), exactly as its Python notifier
 * waits; a test's base of 100 ms doubles instead of shrinking.
 */
#ifndef BACKOFF_H
#define BACKOFF_H

#include <stdint.h>

/* Delay in ms before retry number `retry` (1 = first retry), capped at
 * max_ms; jitter_permille in [0, 1000] spreads it by +/- that fraction
 * using rnd, a uniform random 32-bit value. */
int64_t	backoff_delay_ms(int64_t base_ms, unsigned int retry, int64_t max_ms,
	    unsigned int jitter_permille, uint32_t rnd);

/* Whether a job created at created_ms may still be tried at at_ms with
 * the given deadline (chatmail relay: 5 h after the event). */
int	backoff_within_deadline(int64_t created_ms, int64_t at_ms,
	    int64_t deadline_ms);

#endif
