/*
 * The two clocks of the daemons, in one place.
 *
 *   clock_wall_ms   unix milliseconds (CLOCK_REALTIME): every time that is
 *                   stored (queue rows, owed pushes, heartbeat schedule)
 *                   or compared with another process's
 *   clock_mono_ms   milliseconds of CLOCK_MONOTONIC: timeouts, intervals,
 *   clock_mono_us   latencies, rate limits; never goes back, meaningless
 *                   outside this process
 *
 * Pure modules (debounce, ratelimit, promise, breaker, backoff) do not
 * call these: time comes in as an argument, so tests drive a fake clock.
 */
#ifndef CLOCK_H
#define CLOCK_H

#include <stdint.h>

int64_t	clock_wall_ms(void);
int64_t	clock_mono_ms(void);
int64_t	clock_mono_us(void);

#endif
