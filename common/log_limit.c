/* Rate-limited log lines; see log_limit.h. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log_limit.h"

static void	(*log_limit_hook)(void *);
static void	*log_limit_hook_arg;
static atomic_uint_fast64_t log_limit_total;

void
log_limit_set_hook(void (*fn)(void *), void *arg)
{
	log_limit_hook = fn;
	log_limit_hook_arg = arg;
}

uint64_t
log_limit_suppressed_total(void)
{
	return atomic_load(&log_limit_total);
}

/* Whether a line may go now; refills at per_s up to burst. */
static int
log_limit_take(struct log_limit *l, int64_t now_ms)
{
	if (l->last_ms == 0)
		l->last_ms = now_ms;
	if (now_ms > l->last_ms) {
		l->tokens += (double)(now_ms - l->last_ms) * l->per_s / 1000.0;
		if (l->tokens > l->burst)
			l->tokens = l->burst;
		l->last_ms = now_ms;
	}
	if (l->tokens < 1.0)
		return 0;
	l->tokens -= 1.0;
	return 1;
}

void
log_limited(struct log_limit *l, enum log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!log_enabled(level))
		return;
	if (!log_limit_take(l, clock_mono_ms())) {
		l->suppressed++;
		atomic_fetch_add(&log_limit_total, 1);
		if (log_limit_hook != NULL)
			log_limit_hook(log_limit_hook_arg);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (l->suppressed > 0)
		log_at(level, "%s suppressed=%llu", msg,
		    (unsigned long long)l->suppressed);
	else
		log_at(level, "%s", msg);
	l->suppressed = 0;
}

void
log_limited_escaped(struct log_limit *l, enum log_level level,
    const char *prefix, const char *fmt, va_list ap)
{
	char msg[256], esc[sizeof(msg) * 4 + 4];
	size_t len;
	va_list cp;

	if (!log_enabled(level))
		return;
	va_copy(cp, ap);
	vsnprintf(msg, sizeof(msg), fmt, cp);
	va_end(cp);
	len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		len--;
	log_escape(msg, len, sizeof(msg) - 1, esc);
	log_limited(l, level, "%s: %s", prefix, esc);
}
