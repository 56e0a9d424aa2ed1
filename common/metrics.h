/*
 * Counters, gauges and latency histograms, rendered as OpenMetrics text.
 *
 * Metrics are registered at start-up, or later with
 * metrics_counter_labeled() for label sets met at run time; the list is
 * guarded by a mutex and the values are C11 atomics, so any thread may
 * update them and the listener thread may render at any time. A registry owns its metrics: metric pointers stay
 * valid until metrics_free().
 *
 * Several metrics may share a name with different labels; they form one
 * family in the output (one TYPE/HELP line), in registration order.
 */
#ifndef METRICS_H
#define METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics;
struct metric;

struct metrics	*metrics_new(void);
void		 metrics_free(struct metrics *);

/* labels: NULL or the inside of the braces, e.g. "command=\"lookup\"".
 * name: without the _total suffix (added in the output for counters).
 * The strings are copied. */
struct metric	*metrics_counter(struct metrics *, const char *name,
		    const char *help, const char *labels);
struct metric	*metrics_gauge(struct metrics *, const char *name,
		    const char *help, const char *labels);
/* A histogram of durations: observe in microseconds, rendered in seconds
 * with the given upper bounds (seconds, ascending; +Inf is added). */
struct metric	*metrics_histogram(struct metrics *, const char *name,
		    const char *help, const char *labels,
		    const double *bounds_s, size_t nbounds);

/* The counter of this family with exactly these labels, created on first
 * use (label sets met at run time, such as a provider's error reason);
 * NULL once the family has max_series label sets: the caller counts the
 * rest under a catch-all label. Thread-safe. */
struct metric	*metrics_counter_labeled(struct metrics *, const char *name,
		    const char *help, const char *labels, size_t max_series);

void	metric_inc(struct metric *);
void	metric_add(struct metric *, uint64_t);
void	metric_set(struct metric *, int64_t);	/* gauges */
void	metric_gauge_add(struct metric *, int64_t);	/* gauges, +/- */
void	metric_observe_us(struct metric *, uint64_t us);	/* histograms */
/* Current value of a counter or gauge (tests, logs). */
int64_t	metric_value(const struct metric *);

/* The whole exposition, ending in "# EOF\n" (caller frees). */
char	*metrics_render(struct metrics *, size_t *len_out);

#define METRICS_CONTENT_TYPE \
	"application/openmetrics-text; version=1.0.0; charset=utf-8"

#endif
