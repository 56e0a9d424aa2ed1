/* Leveled logging to stderr; see log.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"

#define LOG_LINE_MAX_BYTES	2048

static const char *log_progname = "?";
static enum log_level log_current = LOG_LEVEL_INFO;
static log_sink_fn *log_sink;
static void *log_sink_arg;
/* Under systemd, journald stamps every line itself. */
static int log_timestamps = 1;

static const char *const log_level_names[] = {
	[LOG_LEVEL_ERR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

void
log_init(const char *progname, enum log_level level)
{
	log_progname = progname;
	log_current = level;
	log_timestamps = getenv("JOURNAL_STREAM") == NULL;
}

void
log_set_level(enum log_level level)
{
	log_current = level;
}

int
log_level_parse(const char *s, enum log_level *level_out)
{
	for (size_t i = 0; i < sizeof(log_level_names) /
	    sizeof(log_level_names[0]); i++) {
		if (strcasecmp(s, log_level_names[i]) == 0) {
			*level_out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*level_out = LOG_LEVEL_WARN;
		return 0;
	}
	return -1;
}

bool
log_enabled(enum log_level level)
{
	return level <= log_current;
}

void
log_set_sink(log_sink_fn *sink, void *arg)
{
	log_sink = sink;
	log_sink_arg = arg;
}

static void
log_vwrite(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX_BYTES];
	size_t off = 0;
	int n;

	if (!log_enabled(level))
		return;
	if (log_timestamps && log_sink == NULL) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		off = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(line + off, sizeof(line) - off, ".%03ldZ ",
		    ts.tv_nsec / 1000000);
		off += (size_t)n;
	}
	n = snprintf(line + off, sizeof(line) - off, "%s: %s: ",
	    log_progname, log_level_names[level]);
	if (n > 0 && (size_t)n < sizeof(line) - off)
		off += (size_t)n;
	n = vsnprintf(line + off, sizeof(line) - off, fmt, ap);
	if (n > 0)
		off += (size_t)n < sizeof(line) - off ? (size_t)n :
		    sizeof(line) - off - 1;
	if (errnum != 0 && off < sizeof(line) - 1)
		snprintf(line + off, sizeof(line) - off, ": %s",
		    strerror(errnum));

	if (log_sink != NULL)
		log_sink(level, line, log_sink_arg);
	else
		fprintf(stderr, "%s\n", line);
}

#define LOG_FN(name, level, with_errno)				\
void								\
name(const char *fmt, ...)					\
{								\
	int saved = errno;					\
	va_list ap;						\
								\
	va_start(ap, fmt);					\
	log_vwrite(level, with_errno ? saved : 0, fmt, ap);	\
	va_end(ap);						\
	errno = saved;						\
}

LOG_FN(log_err, LOG_LEVEL_ERR, 0)
LOG_FN(log_warn, LOG_LEVEL_WARN, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)

void
log_at(enum log_level level, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(level, 0, fmt, ap);
	va_end(ap);
	errno = saved;
}
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_digest(const void *secret, size_t len, char out[LOG_DIGEST_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(secret, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < 4) {
		memcpy(out, "????????", LOG_DIGEST_LEN);
		return;
	}
	snprintf(out, LOG_DIGEST_LEN, "%02x%02x%02x%02x",
	    md[0], md[1], md[2], md[3]);
}

void
log_escape(const void *data, size_t len, size_t max, char *out)
{
	const unsigned char *p = data;
	size_t n = len < max ? len : max;
	char *o = out;

	for (size_t i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			*o++ = (char)p[i];
		else
			o += sprintf(o, "\\x%02x", p[i]);
	}
	if (len > max)
		o += sprintf(o, "...");
	*o = '\0';
}
