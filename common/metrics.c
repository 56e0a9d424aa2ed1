/* OpenMetrics registry and text exposition; see metrics.h. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "metrics.h"
#include "xmalloc.h"

enum metric_kind {
	METRIC_COUNTER,
	METRIC_GAUGE,
	METRIC_HISTOGRAM,
};

struct metric {
	enum metric_kind	 kind;
	char			*name;
	char			*help;
	char			*labels;	/* NULL or "k=\"v\",..." */
	_Atomic int64_t		 value;		/* counter, gauge */
	/* histogram: counts per bucket (not cumulative), sum in us */
	double			*bounds_s;
	size_t			 nbounds;
	_Atomic uint64_t	*buckets;	/* nbounds + 1 (+Inf) */
	_Atomic uint64_t	 sum_us;
	struct metric		*next;
};

struct metrics {
	struct metric	*head;
	struct metric	*tail;
	size_t		 n;
	/* Metrics may be added while the listener renders (label sets met
	 * at run time): the list is guarded, the values are atomics. */
	pthread_mutex_t	 lock;
};

struct metrics *
metrics_new(void)
{
	struct metrics *m = xcalloc(1, sizeof(struct metrics));

	pthread_mutex_init(&m->lock, NULL);
	return m;
}

void
metrics_free(struct metrics *m)
{
	struct metric *x, *next;

	if (m == NULL)
		return;
	for (x = m->head; x != NULL; x = next) {
		next = x->next;
		free(x->name);
		free(x->help);
		free(x->labels);
		free(x->bounds_s);
		free(x->buckets);
		free(x);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static struct metric *
metrics_add(struct metrics *m, enum metric_kind kind, const char *name,
    const char *help, const char *labels)
{
	struct metric *x = xcalloc(1, sizeof(*x));

	x->kind = kind;
	x->name = xstrdup(name);
	x->help = xstrdup(help);
	x->labels = labels != NULL && *labels != '\0' ? xstrdup(labels) :
	    NULL;
	atomic_init(&x->value, 0);
	atomic_init(&x->sum_us, 0);
	pthread_mutex_lock(&m->lock);
	if (m->tail != NULL)
		m->tail->next = x;
	else
		m->head = x;
	m->tail = x;
	m->n++;
	pthread_mutex_unlock(&m->lock);
	return x;
}

struct metric *
metrics_counter(struct metrics *m, const char *name, const char *help,
    const char *labels)
{
	return metrics_add(m, METRIC_COUNTER, name, help, labels);
}

struct metric *
metrics_gauge(struct metrics *m, const char *name, const char *help,
    const char *labels)
{
	return metrics_add(m, METRIC_GAUGE, name, help, labels);
}

struct metric *
metrics_histogram(struct metrics *m, const char *name, const char *help,
    const char *labels, const double *bounds_s, size_t nbounds)
{
	struct metric *x = metrics_add(m, METRIC_HISTOGRAM, name, help,
	    labels);

	x->nbounds = nbounds;
	x->bounds_s = xcalloc(nbounds ? nbounds : 1, sizeof(double));
	if (nbounds > 0)
		memcpy(x->bounds_s, bounds_s, nbounds * sizeof(double));
	x->buckets = xcalloc(nbounds + 1, sizeof(*x->buckets));
	for (size_t i = 0; i <= nbounds; i++)
		atomic_init(&x->buckets[i], 0);
	return x;
}

void
metric_inc(struct metric *x)
{
	atomic_fetch_add_explicit(&x->value, 1, memory_order_relaxed);
}

void
metric_add(struct metric *x, uint64_t n)
{
	atomic_fetch_add_explicit(&x->value, (int64_t)n,
	    memory_order_relaxed);
}

void
metric_set(struct metric *x, int64_t v)
{
	atomic_store_explicit(&x->value, v, memory_order_relaxed);
}

void
metric_gauge_add(struct metric *x, int64_t d)
{
	atomic_fetch_add_explicit(&x->value, d, memory_order_relaxed);
}

void
metric_observe_us(struct metric *x, uint64_t us)
{
	double s = (double)us / 1e6;
	size_t i;

	for (i = 0; i < x->nbounds && s > x->bounds_s[i]; i++)
		;
	atomic_fetch_add_explicit(&x->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&x->sum_us, us, memory_order_relaxed);
}

int64_t
metric_value(const struct metric *x)
{
	return atomic_load_explicit(&x->value, memory_order_relaxed);
}

/* name{labels[,extra]} with the suffix after the name. */
static void
metrics_render_series(struct buf *b, const struct metric *x,
    const char *suffix, const char *extra)
{
	buf_printf(b, "%s%s", x->name, suffix);
	if (x->labels != NULL || extra != NULL) {
		buf_printf(b, "{%s%s%s}", x->labels ? x->labels : "",
		    x->labels && extra ? "," : "", extra ? extra : "");
	}
	buf_append_char(b, ' ');
}

static const char *
metrics_kind_name(enum metric_kind kind)
{
	switch (kind) {
	case METRIC_COUNTER: return "counter";
	case METRIC_GAUGE: return "gauge";
	case METRIC_HISTOGRAM: return "histogram";
	}
	return "unknown";
}

static void
metrics_render_one(struct buf *b, const struct metric *x)
{
	uint64_t cumulative = 0;
	char le[64];

	switch (x->kind) {
	case METRIC_COUNTER:
		metrics_render_series(b, x, "_total", NULL);
		buf_printf(b, "%lld\n", (long long)metric_value(x));
		break;
	case METRIC_GAUGE:
		metrics_render_series(b, x, "", NULL);
		buf_printf(b, "%lld\n", (long long)metric_value(x));
		break;
	case METRIC_HISTOGRAM:
		for (size_t i = 0; i <= x->nbounds; i++) {
			cumulative += atomic_load_explicit(&x->buckets[i],
			    memory_order_relaxed);
			if (i < x->nbounds)
				snprintf(le, sizeof(le), "le=\"%g\"",
				    x->bounds_s[i]);
			else
				snprintf(le, sizeof(le), "le=\"+Inf\"");
			metrics_render_series(b, x, "_bucket", le);
			buf_printf(b, "%llu\n", (unsigned long long)cumulative);
		}
		metrics_render_series(b, x, "_sum", NULL);
		buf_printf(b, "%.6f\n", (double)atomic_load_explicit(
		    &x->sum_us, memory_order_relaxed) / 1e6);
		metrics_render_series(b, x, "_count", NULL);
		buf_printf(b, "%llu\n", (unsigned long long)cumulative);
		break;
	}
}

/* OpenMetrics escapes HELP text: backslash, newline (and quotes in
 * label values, which we write as constants). */
static void
metrics_escape_help(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			buf_append_str(b, "\\\\");
		else if (*s == '\n')
			buf_append_str(b, "\\n");
		else
			buf_append_char(b, *s);
	}
}

struct metric *
metrics_counter_labeled(struct metrics *m, const char *name, const char *help,
    const char *labels, size_t max_series)
{
	struct metric *x, *found = NULL;
	size_t series = 0;

	pthread_mutex_lock(&m->lock);
	for (x = m->head; x != NULL; x = x->next) {
		if (strcmp(x->name, name) != 0)
			continue;
		series++;
		if (x->labels != NULL && strcmp(x->labels, labels) == 0) {
			found = x;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (found != NULL || series >= max_series)
		return found;
	return metrics_counter(m, name, help, labels);
}

char *
metrics_render(struct metrics *m, size_t *len_out)
{
	struct buf b;

	buf_init(&b);
	pthread_mutex_lock(&m->lock);
	/* Families: every distinct name once, at its first registration,
	 * with all its label sets after it. O(n^2) in the number of series,
	 * which is a few dozen. */
	for (const struct metric *x = m->head; x != NULL; x = x->next) {
		const struct metric *y;

		for (y = m->head; y != x; y = y->next)
			if (strcmp(y->name, x->name) == 0)
				break;
		if (y != x)
			continue;	/* family already written */
		buf_printf(&b, "# TYPE %s %s\n# HELP %s ", x->name,
		    metrics_kind_name(x->kind), x->name);
		metrics_escape_help(&b, x->help);
		buf_append_char(&b, '\n');
		for (y = x; y != NULL; y = y->next)
			if (strcmp(y->name, x->name) == 0)
				metrics_render_one(&b, y);
	}
	pthread_mutex_unlock(&m->lock);
	buf_append_str(&b, "# EOF\n");
	return buf_steal(&b, len_out);
}
