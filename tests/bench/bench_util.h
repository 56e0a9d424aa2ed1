/*
 * What the benchmark tools share (dict-load, http-flood, notify-flood,
 * notify-sink): clocks, a latency histogram, option and file helpers,
 * and the escaping of peer bytes in error reports. Each prints with its
 * own program name (prog).
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NS_PER_US		1000ull
#define NS_PER_MS		1000000ull
#define NS_PER_S		1000000000ull

/* Log-linear buckets: exact below 64 ns, then 32 per power of two, up to
 * 100 s (a slower sample counts as 100 s). */
#define BENCH_HIST_SUB_BITS	6
#define BENCH_HIST_SUB		(1u << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_HALF		(BENCH_HIST_SUB / 2)
#define BENCH_HIST_MAX_NS	(100 * NS_PER_S)
#define BENCH_HIST_BUCKETS	1152

struct bench_hist {
	uint64_t	 bucket[BENCH_HIST_BUCKETS];
	uint64_t	 n;
	uint64_t	 sum_ns;
	uint64_t	 max_ns;
};

uint64_t bench_now_ns(void);		/* CLOCK_MONOTONIC */
double	bench_cpu_secs(void);		/* user + system, this process */

void	bench_hist_add(struct bench_hist *, uint64_t ns);
/* The value below which ppm millionths of the samples fall, in ns. */
uint64_t bench_hist_quantile(const struct bench_hist *, uint64_t ppm);

/* Up to max bytes of p[0..len), printable ("\r", "\n", "\xNN"), into out
 * (size bytes), "..." when cut. */
void	bench_escape(const char *p, size_t len, size_t max, char *out,
	    size_t size);

/* An integer option in min..max: 0, or -1 with the reason on stderr. */
int	bench_parse_uint(const char *prog, const char *name, const char *s,
	    unsigned long long min, unsigned long long max,
	    unsigned long long *out);

/* Raise RLIMIT_NOFILE's soft limit to want (at most the hard limit). */
void	bench_raise_nofile(const char *prog, unsigned long long want);

/* The whole file, NUL-terminated (caller frees), its length in *len; NULL
 * with the reason on stderr. */
char	*bench_read_file(const char *prog, const char *path, size_t *len);
/* The next line of [*p, end) (a CR before the LF dropped) in *line_out
 * and *len_out, *p moved past it; false at the end. */
bool	bench_next_line(const char **p, const char *end,
	    const char **line_out, size_t *len_out);

/* "codes=200:N,...,none:N" of codes[0..nstatus) ([0]: no status) into
 * out (size bytes). */
void	bench_format_codes(const uint64_t *codes, int nstatus, char *out,
	    size_t size);

#endif
