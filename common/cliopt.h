/*
 * Option values for main(): the cli.h parsers, exiting with a message
 * that names the flag when a value is wrong. Only for start-up (fatal is
 * never reachable from the network).
 */
#ifndef CLIOPT_H
#define CLIOPT_H

#include <stdint.h>

/* A positive duration ("250ms", "10s", "20m", "5h", "90d") in ms. */
int64_t		cliopt_duration_ms(const char *flag, const char *arg);
/* An unsigned decimal within [min, max]. */
uint64_t	cliopt_uint(const char *flag, const char *arg, uint64_t min,
		    uint64_t max);
/* A size ("512", "64k", "1M", "1MiB") in bytes within [min, max]. */
uint64_t	cliopt_size(const char *flag, const char *arg, uint64_t min,
		    uint64_t max);

#endif
