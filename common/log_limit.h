/*
 * Log lines that a peer can cause, rate-limited per call site: a token
 * bucket of lines (a burst, then so many per second); what is dropped is
 * counted, and the next line that passes says how many similar lines were
 * suppressed before it ("suppressed=N"). A hook (the daemon's metric)
 * hears of every suppressed line, so a flood shows in a counter and not
 * in the journal.
 *
 *	static struct log_limit lim = LOG_LIMIT(1, 10);
 *	log_limited(&lim, LOG_LEVEL_INFO, "proxy undecryptable token ...");
 *
 * A limit belongs to one thread (the event loop's); the hook and the
 * total are safe from any thread.
 */
#ifndef LOG_LIMIT_H
#define LOG_LIMIT_H

#include <stdarg.h>
#include <stdint.h>

#include "log.h"

struct log_limit {
	double		 per_s;		/* lines per second after the burst */
	double		 burst;
	double		 tokens;
	int64_t		 last_ms;	/* monotonic; 0: never used */
	uint64_t	 suppressed;	/* since the last line that passed */
};

/* A limit of per_s lines per second with bursts of burst lines. */
#define LOG_LIMIT(per_s, burst)	{ (per_s), (burst), (burst), 0, 0 }

/* Logs at level unless the site's budget is spent (then counts it). A
 * line below the current level costs nothing and is not counted. */
void	log_limited(struct log_limit *, enum log_level, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* A library's message (printf-style, as libmicrohttpd hands its log
 * callback) that may quote a peer: trailing newlines and spaces cut,
 * the rest escaped (log_escape), prefixed, through the limit. */
void	log_limited_escaped(struct log_limit *, enum log_level,
	    const char *prefix, const char *fmt, va_list ap)
	    __attribute__((format(printf, 4, 0)));

/* fn(arg) is called for every suppressed line (NULL: nobody). */
void	log_limit_set_hook(void (*fn)(void *arg), void *arg);
/* Lines suppressed by every limit since start. */
uint64_t log_limit_suppressed_total(void);

#endif
