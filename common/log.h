/*
 * Logging to stderr with levels, one line per event, `key=value` style.
 *
 * err = the operator must act, warn = something failed and was recovered,
 * info = lifecycle and rare events, debug = per request. log_warn appends
 * strerror(errno), log_warnx does not (OpenSMTPD's convention). fatal() is
 * for start-up and broken invariants only, never for peer input.
 *
 * Secrets (device tokens, keys, passwords, JWTs) are never logged: log
 * log_digest() of them instead.
 *
 * Thread-safe: each line is written with a single stdio call.
 */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* "token=" digests: 8 lowercase hex digits of SHA-256, plus NUL. */
#define LOG_DIGEST_LEN	9

/* A test can capture log lines; the line has no trailing newline. */
typedef void log_sink_fn(enum log_level, const char *line, void *arg);

void	log_init(const char *progname, enum log_level);
void	log_set_level(enum log_level);
/* 0 and *level_out for "error", "warn" (or "warning"), "info", "debug",
 * in any case; -1 otherwise. */
int	log_level_parse(const char *, enum log_level *level_out);
bool	log_enabled(enum log_level);
/* Replace stderr by sink (NULL restores stderr). */
void	log_set_sink(log_sink_fn *sink, void *arg);

void	log_err(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
/* At a level chosen at run time (no strerror suffix). */
void	log_at(enum log_level, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
_Noreturn void	fatal(const char *, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void	fatalx(const char *, ...) __attribute__((format(printf, 1, 2)));

/* Short digest of a secret for log lines: the first 4 bytes of its
 * SHA-256 in hex. Enough to tell tokens apart, useless to an attacker. */
void	log_digest(const void *secret, size_t len, char out[LOG_DIGEST_LEN]);

/* Copy at most max bytes of peer data into out (size max*4+4) with
 * non-printable bytes escaped as \xNN and "..." when truncated, so that a
 * peer cannot forge log lines. */
void	log_escape(const void *data, size_t len, size_t max, char *out);

#endif
