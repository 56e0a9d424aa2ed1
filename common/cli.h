/*
 * Parsing of command-line values shared by the daemons: durations such as
 * 90d, 20m, 10s or 250ms, sizes such as 8k or 16KiB, HOST:PORT, file modes.
 * Each returns 0 and fills *_out, or -1 with the reason in err.
 */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

/* "250ms", "10s", "20m", "5h", "90d", "1w"; a bare number is seconds.
 * Several parts add up: "1h30m". */
int	cli_parse_duration_ms(const char *, int64_t *ms_out, char err[ERR_LEN]);
/* "512", "8k"/"8KiB", "16M"/"16MiB", "1G": binary multiples. */
int	cli_parse_size(const char *, uint64_t *bytes_out, char err[ERR_LEN]);
/* Unsigned decimal within [min, max]. */
int	cli_parse_uint(const char *, uint64_t min, uint64_t max,
	    uint64_t *out, char err[ERR_LEN]);
/* "HOST:PORT", "[v6addr]:PORT" or ":PORT" (host "127.0.0.1"). host_out is
 * the caller's to free. */
int	cli_parse_hostport(const char *, char **host_out, uint16_t *port_out,
	    char err[ERR_LEN]);
/* Octal permission bits, e.g. "0660". */
int	cli_parse_mode(const char *, mode_t *mode_out, char err[ERR_LEN]);
/* A value of 1 to max bytes, each printable ASCII and no space: what a
 * URL or a host name given to a client may hold. */
bool	cli_printable(const char *, size_t max);

#endif
