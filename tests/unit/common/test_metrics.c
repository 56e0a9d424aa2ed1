/* Unit tests of common/metrics.c: exact OpenMetrics text for counters,
 * gauges and histograms, one TYPE/HELP per family, cumulative buckets,
 * and a structural check of a mixed registry against the text format
 * (OpenMetrics 1.0, "Text format"). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

#define NELEM(a)	(sizeof(a) / sizeof(*(a)))

static const double latency_bounds[] = { 0.005, 0.1, 0.5 };

/* Render, check len_out against the text, return it (caller frees). */
static char *
render(struct metrics *m)
{
	size_t len = 12345;
	char *text = metrics_render(m, &len);

	assert_non_null(text);
	assert_int_equal(len, strlen(text));
	return text;
}

static size_t
count_substr(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/*
 * A checker for the subset of OpenMetrics that metrics.c writes. Returns
 * NULL when text is valid, else a message naming the offending line.
 * Checked: the exposition ends with exactly one "# EOF\n"; each family
 * has one TYPE (first) and at most one HELP, and is not interleaved with
 * another; samples carry the family name plus a suffix allowed for its
 * type; label sets are well-formed; values are numbers; histogram
 * buckets are cumulative per series, end in le="+Inf", and _count equals
 * the +Inf bucket.
 */
#define OM_MAX_FAMILIES	32

struct om_state {
	char	 families[OM_MAX_FAMILIES][64];
	size_t	 nfamilies;
	char	 family[64];
	char	 type[16];
	int	 help_seen;
	int	 samples_seen;
	/* histogram series being read */
	int	 in_series;
	char	 series[256];
	double	 last_bucket;
	int	 inf_seen;
	double	 inf_count;
};

static char om_msg[512];

static const char *
om_fail(const char *line, size_t len, const char *why)
{
	snprintf(om_msg, sizeof(om_msg), "%s in line \"%.*s\"", why, (int)len,
	    line);
	return om_msg;
}

static int
om_name_char(char c, int first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	    c == ':' || (!first && c >= '0' && c <= '9');
}

/* Parses {k="v",...} at *p; returns 0 and the labels without "le" in
 * rest, the le value in le. */
static int
om_labels(const char **pp, const char *end, char *rest, size_t restsz,
    char *le, size_t lesz)
{
	const char *p = *pp;
	size_t roff = 0;

	rest[0] = le[0] = '\0';
	if (p == end || *p != '{')
		return 0;
	p++;
	while (p < end && *p != '}') {
		const char *k = p, *v;
		size_t klen;

		while (p < end && om_name_char(*p, p == k) && *p != ':')
			p++;
		klen = (size_t)(p - k);
		if (klen == 0 || p + 1 >= end || p[0] != '=' || p[1] != '"')
			return -1;
		p += 2;
		v = p;
		while (p < end && *p != '"') {
			if (*p == '\\')
				p++;
			p++;
		}
		if (p >= end)
			return -1;
		if (klen == 2 && strncmp(k, "le", 2) == 0)
			snprintf(le, lesz, "%.*s", (int)(p - v), v);
		else
			roff += (size_t)snprintf(rest + roff, restsz - roff,
			    "%.*s,", (int)(p - k + 1), k);
		if (roff >= restsz)
			return -1;
		p++;			/* closing quote */
		if (p < end && *p == ',')
			p++;
		else if (p < end && *p != '}')
			return -1;
	}
	if (p == end)
		return -1;
	*pp = p + 1;
	return 0;
}

static const char *
om_sample(struct om_state *st, const char *line, size_t len)
{
	const char *p = line, *end = line + len, *name = line, *suffix;
	char rest[256], le[64], numbuf[64], *numend;
	size_t flen = strlen(st->family), nlen;
	double v;

	if (st->family[0] == '\0')
		return om_fail(line, len, "sample before any TYPE");
	while (p < end && om_name_char(*p, p == name))
		p++;
	nlen = (size_t)(p - name);
	if (nlen < flen || strncmp(name, st->family, flen) != 0)
		return om_fail(line, len, "sample outside its family");
	suffix = name + flen;
	if (om_labels(&p, end, rest, sizeof(rest), le, sizeof(le)) < 0)
		return om_fail(line, len, "bad label set");
	if (p == end || *p != ' ' || p + 1 == end)
		return om_fail(line, len, "no value");
	snprintf(numbuf, sizeof(numbuf), "%.*s", (int)(end - p - 1), p + 1);
	v = strtod(numbuf, &numend);
	if (*numend != '\0' || numbuf[0] == ' ')
		return om_fail(line, len, "value is not a number");
	nlen -= flen;
#define SUFFIX_IS(s) (nlen == strlen(s) && strncmp(suffix, s, nlen) == 0)
	if (strcmp(st->type, "counter") == 0) {
		if (!SUFFIX_IS("_total"))
			return om_fail(line, len,
			    "counter sample without _total");
		if (v < 0)
			return om_fail(line, len, "negative counter");
	} else if (strcmp(st->type, "gauge") == 0) {
		if (nlen != 0)
			return om_fail(line, len, "gauge sample with a suffix");
	} else if (SUFFIX_IS("_bucket")) {
		if (le[0] == '\0')
			return om_fail(line, len, "bucket without le");
		if (!st->in_series || strcmp(rest, st->series) != 0) {
			if (st->in_series && !st->inf_seen)
				return om_fail(line, len,
				    "series ended without +Inf");
			snprintf(st->series, sizeof(st->series), "%s", rest);
			st->in_series = 1;
			st->last_bucket = 0;
			st->inf_seen = 0;
		}
		if (st->inf_seen)
			return om_fail(line, len, "bucket after +Inf");
		if (v < st->last_bucket)
			return om_fail(line, len, "buckets not cumulative");
		st->last_bucket = v;
		if (strcmp(le, "+Inf") == 0) {
			st->inf_seen = 1;
			st->inf_count = v;
		} else {
			char *lend;

			(void)strtod(le, &lend);
			if (*lend != '\0' || le[0] == '\0')
				return om_fail(line, len, "le not a number");
		}
	} else if (SUFFIX_IS("_sum") || SUFFIX_IS("_count")) {
		if (le[0] != '\0')
			return om_fail(line, len, "le on _sum/_count");
		if (!st->inf_seen || strcmp(rest, st->series) != 0)
			return om_fail(line, len, "_sum/_count without the "
			    "series' +Inf bucket");
		if (SUFFIX_IS("_count") && v != st->inf_count)
			return om_fail(line, len, "_count differs from +Inf");
	} else {
		return om_fail(line, len, "unknown histogram suffix");
	}
#undef SUFFIX_IS
	st->samples_seen = 1;
	return NULL;
}

static const char *
om_check(const char *text)
{
	static struct om_state st;
	const char *p = text, *nl, *eof = "# EOF\n";
	size_t tlen = strlen(text);

	memset(&st, 0, sizeof(st));
	if (tlen < strlen(eof) || strcmp(text + tlen - strlen(eof), eof) != 0)
		return "does not end in \"# EOF\\n\"";
	for (; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		size_t len = (size_t)(nl - p);
		char name[64], type[16];
		int n = 0;

		if (memchr(p, '\r', len) != NULL)
			return om_fail(p, len, "carriage return");
		if (len == 5 && strncmp(p, "# EOF", 5) == 0) {
			if (nl[1] != '\0')
				return om_fail(p, len, "text after EOF");
			return NULL;
		}
		if (strncmp(p, "# TYPE ", 7) == 0) {
			if (sscanf(p, "# TYPE %63s %15s%n", name, type,
			    &n) != 2 || (size_t)n != len)
				return om_fail(p, len, "malformed TYPE");
			for (size_t i = 0; i < st.nfamilies; i++)
				if (strcmp(st.families[i], name) == 0)
					return om_fail(p, len,
					    "second TYPE for a family");
			if (strcmp(type, "counter") != 0 &&
			    strcmp(type, "gauge") != 0 &&
			    strcmp(type, "histogram") != 0)
				return om_fail(p, len, "unexpected type");
			if (st.in_series && !st.inf_seen)
				return om_fail(p, len, "histogram cut short");
			assert_true(st.nfamilies < OM_MAX_FAMILIES);
			strcpy(st.families[st.nfamilies++], name);
			strcpy(st.family, name);
			strcpy(st.type, type);
			st.help_seen = st.samples_seen = 0;
			st.series[0] = '\0';
			st.in_series = st.inf_seen = 0;
			continue;
		}
		if (strncmp(p, "# HELP ", 7) == 0) {
			size_t flen = strlen(st.family);

			if (st.family[0] == '\0' || len < 7 + flen ||
			    strncmp(p + 7, st.family, flen) != 0 ||
			    (len > 7 + flen && p[7 + flen] != ' '))
				return om_fail(p, len,
				    "HELP for another family");
			if (st.help_seen || st.samples_seen)
				return om_fail(p, len, "HELP repeated or late");
			st.help_seen = 1;
			continue;
		}
		if (len > 0 && p[0] == '#')
			return om_fail(p, len, "unexpected # line");
		if (om_sample(&st, p, len) != NULL)
			return om_msg;
	}
	return "no EOF line";
}

static void
check_valid(const char *text)
{
	const char *why = om_check(text);

	if (why != NULL) {
		print_error("exposition:\n%s", text);
		fail_msg("invalid OpenMetrics: %s", why);
	}
}

/* The checker must reject what it claims to reject. */
static void
test_checker_rejects(void **state)
{
	static const struct {
		const char	*name;
		const char	*text;
	} bad[] = {
		{ "no-eof", "# TYPE a gauge\na 1\n" },
		{ "eof-no-newline", "# TYPE a gauge\na 1\n# EOF" },
		{ "two-types", "# TYPE a gauge\na 1\n# TYPE a gauge\na 2\n"
		    "# EOF\n" },
		{ "counter-no-total", "# TYPE a counter\na 1\n# EOF\n" },
		{ "gauge-suffix", "# TYPE a gauge\na_total 1\n# EOF\n" },
		{ "other-family", "# TYPE a gauge\nb 1\n# EOF\n" },
		{ "not-cumulative", "# TYPE h histogram\n"
		    "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
		    "h_sum 0\nh_count 1\n# EOF\n" },
		{ "no-inf", "# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
		    "h_sum 0\nh_count 2\n# EOF\n" },
		{ "count-mismatch", "# TYPE h histogram\n"
		    "h_bucket{le=\"+Inf\"} 2\nh_sum 0\nh_count 3\n# EOF\n" },
		{ "bad-value", "# TYPE a gauge\na x\n# EOF\n" },
		{ "bad-labels", "# TYPE a gauge\na{k=v} 1\n# EOF\n" },
		{ "after-eof", "# TYPE a gauge\na 1\n# EOF\n# EOF\n" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(bad); i++)
		if (om_check(bad[i].text) == NULL)
			fail_msg("row %s: checker accepted invalid text",
			    bad[i].name);
	assert_null(om_check("# TYPE a gauge\n# HELP a x\na{k=\"v\"} -1\n"
	    "# EOF\n"));
}

/* ---- exact renderings --------------------------------------------------- */

static void
test_empty_registry(void **state)
{
	struct metrics *m = metrics_new();
	char *text;

	(void)state;
	text = render(m);
	assert_string_equal(text, "# EOF\n");
	check_valid(text);
	free(text);
	metrics_free(m);
	metrics_free(NULL);
}

static void
test_counter(void **state)
{
	struct metrics *m = metrics_new();
	struct metric *c;
	char *text;

	(void)state;
	c = metrics_counter(m, "dictd_requests", "Requests handled.", NULL);
	assert_non_null(c);
	assert_int_equal(metric_value(c), 0);
	metric_inc(c);
	metric_inc(c);
	metric_add(c, 5);
	assert_int_equal(metric_value(c), 7);
	text = render(m);
	assert_string_equal(text,
	    "# TYPE dictd_requests counter\n"
	    "# HELP dictd_requests Requests handled.\n"
	    "dictd_requests_total 7\n"
	    "# EOF\n");
	check_valid(text);
	free(text);
	metrics_free(m);
}

static void
test_gauge(void **state)
{
	struct metrics *m = metrics_new();
	struct metric *g, *e;
	char *text;

	(void)state;
	g = metrics_gauge(m, "dictd_connections", "Open connections.", NULL);
	e = metrics_gauge(m, "dictd_queue_depth", "Rows waiting.", "");
	metric_set(g, 10);
	metric_gauge_add(g, -3);
	metric_gauge_add(g, 1);
	assert_int_equal(metric_value(g), 8);
	metric_set(e, -2);
	assert_int_equal(metric_value(e), -2);
	text = render(m);
	/* Empty labels render like none: no braces. */
	assert_string_equal(text,
	    "# TYPE dictd_connections gauge\n"
	    "# HELP dictd_connections Open connections.\n"
	    "dictd_connections 8\n"
	    "# TYPE dictd_queue_depth gauge\n"
	    "# HELP dictd_queue_depth Rows waiting.\n"
	    "dictd_queue_depth -2\n"
	    "# EOF\n");
	check_valid(text);
	free(text);
	metrics_free(m);
}

/* Label sets of one name form one family, even when registered
 * interleaved with another family, in registration order. */
static void
test_family_one_type_line(void **state)
{
	struct metrics *m = metrics_new();
	struct metric *lookup, *set, *iter, *errs;
	char *text;

	(void)state;
	lookup = metrics_counter(m, "dictd_commands", "Commands by kind.",
	    "command=\"lookup\"");
	errs = metrics_counter(m, "dictd_errors", "Errors.", NULL);
	set = metrics_counter(m, "dictd_commands", "Commands by kind.",
	    "command=\"set\"");
	iter = metrics_counter(m, "dictd_commands", "Commands by kind.",
	    "command=\"iterate\",dict=\"metadata\"");
	metric_add(lookup, 3);
	metric_inc(set);
	metric_inc(errs);
	(void)iter;
	text = render(m);
	assert_string_equal(text,
	    "# TYPE dictd_commands counter\n"
	    "# HELP dictd_commands Commands by kind.\n"
	    "dictd_commands_total{command=\"lookup\"} 3\n"
	    "dictd_commands_total{command=\"set\"} 1\n"
	    "dictd_commands_total{command=\"iterate\",dict=\"metadata\"} 0\n"
	    "# TYPE dictd_errors counter\n"
	    "# HELP dictd_errors Errors.\n"
	    "dictd_errors_total 1\n"
	    "# EOF\n");
	assert_int_equal(count_substr(text, "# TYPE dictd_commands "), 1);
	assert_int_equal(count_substr(text, "# HELP dictd_commands "), 1);
	check_valid(text);
	free(text);
	metrics_free(m);
}

static void
test_histogram(void **state)
{
	struct metrics *m = metrics_new();
	struct metric *h;
	char *text;

	(void)state;
	h = metrics_histogram(m, "dictd_commit_seconds", "Commit latency.",
	    NULL, latency_bounds, NELEM(latency_bounds));
	metric_observe_us(h, 1000);	/* 0.001 s: le 0.005 */
	metric_observe_us(h, 5000);	/* on the bound: le is inclusive */
	metric_observe_us(h, 5001);	/* le 0.1 */
	metric_observe_us(h, 400000);	/* le 0.5 */
	metric_observe_us(h, 2000000);	/* +Inf only */
	text = render(m);
	assert_string_equal(text,
	    "# TYPE dictd_commit_seconds histogram\n"
	    "# HELP dictd_commit_seconds Commit latency.\n"
	    "dictd_commit_seconds_bucket{le=\"0.005\"} 2\n"
	    "dictd_commit_seconds_bucket{le=\"0.1\"} 3\n"
	    "dictd_commit_seconds_bucket{le=\"0.5\"} 4\n"
	    "dictd_commit_seconds_bucket{le=\"+Inf\"} 5\n"
	    "dictd_commit_seconds_sum 2.411001\n"
	    "dictd_commit_seconds_count 5\n"
	    "# EOF\n");
	check_valid(text);
	free(text);
	metrics_free(m);
}

static void
test_histogram_labels_and_empty(void **state)
{
	struct metrics *m = metrics_new();
	struct metric *a, *b;
	char *text;

	(void)state;
	a = metrics_histogram(m, "lat_seconds", "Latency.", "op=\"get\"",
	    latency_bounds, NELEM(latency_bounds));
	b = metrics_histogram(m, "lat_seconds", "Latency.", "op=\"put\"",
	    latency_bounds, 1);
	metric_observe_us(a, 200000);
	(void)b;
	text = render(m);
	assert_string_equal(text,
	    "# TYPE lat_seconds histogram\n"
	    "# HELP lat_seconds Latency.\n"
	    "lat_seconds_bucket{op=\"get\",le=\"0.005\"} 0\n"
	    "lat_seconds_bucket{op=\"get\",le=\"0.1\"} 0\n"
	    "lat_seconds_bucket{op=\"get\",le=\"0.5\"} 1\n"
	    "lat_seconds_bucket{op=\"get\",le=\"+Inf\"} 1\n"
	    "lat_seconds_sum{op=\"get\"} 0.200000\n"
	    "lat_seconds_count{op=\"get\"} 1\n"
	    "lat_seconds_bucket{op=\"put\",le=\"0.005\"} 0\n"
	    "lat_seconds_bucket{op=\"put\",le=\"+Inf\"} 0\n"
	    "lat_seconds_sum{op=\"put\"} 0.000000\n"
	    "lat_seconds_count{op=\"put\"} 0\n"
	    "# EOF\n");
	check_valid(text);
	free(text);
	metrics_free(m);
}

static void
test_histogram_no_bounds(void **state)
{
	struct metrics *m = metrics_new();
	struct metric *h;
	char *text;

	(void)state;
	/* Non-NULL bounds: NULL with 0 trips UBSan in metrics.c (memcpy
	 * from NULL), reported separately. */
	h = metrics_histogram(m, "x_seconds", "X.", NULL, latency_bounds, 0);
	metric_observe_us(h, 1);
	metric_observe_us(h, 3);
	text = render(m);
	assert_string_equal(text,
	    "# TYPE x_seconds histogram\n"
	    "# HELP x_seconds X.\n"
	    "x_seconds_bucket{le=\"+Inf\"} 2\n"
	    "x_seconds_sum 0.000004\n"
	    "x_seconds_count 2\n"
	    "# EOF\n");
	check_valid(text);
	free(text);
	metrics_free(m);
}

/* Buckets stay cumulative for any spread of observations; the +Inf
 * bucket and _count are the number of observations. */
static void
test_histogram_cumulative_many(void **state)
{
	static const double bounds[] = {
		0.001, 0.002, 0.005, 0.01, 0.1, 0.25,
	};
	static const char *const les[] = {
		"0.001", "0.002", "0.005", "0.01", "0.1", "0.25", "+Inf",
	};
	size_t counts[NELEM(bounds) + 1] = { 0 };
	struct metrics *m = metrics_new();
	struct metric *h;
	char *text, want[128];
	uint64_t sum_us = 0, cumulative = 0;

	(void)state;
	h = metrics_histogram(m, "h_seconds", "H.", NULL, bounds,
	    NELEM(bounds));
	for (uint64_t i = 0; i < 3000; i++) {
		uint64_t us = (i * 7919) % 1500000;
		size_t b = 0;

		while (b < NELEM(bounds) && (double)us / 1e6 > bounds[b])
			b++;
		counts[b]++;
		sum_us += us;
		metric_observe_us(h, us);
	}
	text = render(m);
	check_valid(text);
	for (size_t b = 0; b <= NELEM(bounds); b++) {
		cumulative += counts[b];
		snprintf(want, sizeof(want), "h_seconds_bucket{le=\"%s\"} "
		    "%llu\n", les[b], (unsigned long long)cumulative);
		if (strstr(text, want) == NULL)
			fail_msg("bucket %zu: \"%.*s\" not in output", b,
			    (int)strlen(want) - 1, want);
	}
	assert_int_equal(cumulative, 3000);
	assert_non_null(strstr(text, "h_seconds_count 3000\n"));
	snprintf(want, sizeof(want), "h_seconds_sum %.6f\n",
	    (double)sum_us / 1e6);
	assert_non_null(strstr(text, want));
	free(text);
	metrics_free(m);
}

/* A registry like a daemon's: every kind, labelled and not, interleaved
 * registration. */
static void
test_mixed_registry_valid(void **state)
{
	struct metrics *m = metrics_new();
	struct metric *x[8];
	char *text;

	(void)state;
	x[0] = metrics_counter(m, "d_cmds", "Commands.", "cmd=\"L\"");
	x[1] = metrics_gauge(m, "d_conns", "Connections.", NULL);
	x[2] = metrics_histogram(m, "d_lat_seconds", "Latency.", "cmd=\"L\"",
	    latency_bounds, NELEM(latency_bounds));
	x[3] = metrics_counter(m, "d_cmds", "Commands.", "cmd=\"S\"");
	x[4] = metrics_histogram(m, "d_lat_seconds", "Latency.", "cmd=\"S\"",
	    latency_bounds, NELEM(latency_bounds));
	x[5] = metrics_gauge(m, "d_conns_peak", "Peak.", NULL);
	x[6] = metrics_counter(m, "d_cmds", "Commands.", "cmd=\"I\"");
	x[7] = metrics_counter(m, "d_restarts", "", NULL);
	metric_add(x[0], 10);
	metric_set(x[1], 4);
	metric_observe_us(x[2], 300);
	metric_observe_us(x[2], 70000);
	metric_observe_us(x[4], 9000000);
	metric_set(x[5], 9);
	metric_inc(x[6]);
	text = render(m);
	check_valid(text);
	assert_int_equal(count_substr(text, "# TYPE "), 5);
	assert_int_equal(count_substr(text, "# HELP "), 5);
	assert_int_equal(count_substr(text, "# EOF"), 1);
	assert_non_null(strstr(text, "# TYPE d_cmds counter\n"
	    "# HELP d_cmds Commands.\n"
	    "d_cmds_total{cmd=\"L\"} 10\n"
	    "d_cmds_total{cmd=\"S\"} 0\n"
	    "d_cmds_total{cmd=\"I\"} 1\n"
	    "# TYPE d_conns gauge\n"));
	/* A family is not confused with one whose name it prefixes. */
	assert_non_null(strstr(text, "d_conns 4\n# TYPE d_lat_seconds "));
	assert_non_null(strstr(text, "d_lat_seconds_count{cmd=\"S\"} 1\n"
	    "# TYPE d_conns_peak gauge\n"));
	assert_non_null(strstr(text, "# HELP d_restarts \n"
	    "d_restarts_total 0\n# EOF\n"));
	free(text);
	metrics_free(m);
}

/* Render does not reset anything: values keep counting. */
static void
test_render_twice(void **state)
{
	struct metrics *m = metrics_new();
	struct metric *c;
	char *a, *b;

	(void)state;
	c = metrics_counter(m, "n", "N.", NULL);
	metric_inc(c);
	a = render(m);
	b = render(m);
	assert_string_equal(a, b);
	metric_inc(c);
	free(b);
	b = render(m);
	assert_non_null(strstr(a, "n_total 1\n"));
	assert_non_null(strstr(b, "n_total 2\n"));
	free(a);
	free(b);
	metrics_free(m);
}

static void
test_content_type(void **state)
{
	(void)state;
	assert_string_equal(METRICS_CONTENT_TYPE,
	    "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

static void
test_labeled_on_demand(void **state)
{
	struct metrics *m = metrics_new();
	struct metric *a, *b, *again;
	char *out;

	(void)state;
	a = metrics_counter_labeled(m, "notification_failures", "Failures.",
	    "provider=\"APNS\",reason=\"400\"", 2);
	b = metrics_counter_labeled(m, "notification_failures", "Failures.",
	    "provider=\"APNS\",reason=\"410\"", 2);
	again = metrics_counter_labeled(m, "notification_failures",
	    "Failures.", "provider=\"APNS\",reason=\"400\"", 2);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_equal(a, again);
	/* The family is full: the caller falls back to a catch-all. */
	assert_null(metrics_counter_labeled(m, "notification_failures",
	    "Failures.", "provider=\"APNS\",reason=\"500\"", 2));
	metric_inc(a);
	metric_add(b, 2);
	out = metrics_render(m, NULL);
	assert_non_null(strstr(out, "notification_failures_total{provider="
	    "\"APNS\",reason=\"400\"} 1\n"));
	assert_non_null(strstr(out, "reason=\"410\"} 2\n"));
	free(out);
	metrics_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_labeled_on_demand),
		cmocka_unit_test(test_checker_rejects),
		cmocka_unit_test(test_empty_registry),
		cmocka_unit_test(test_counter),
		cmocka_unit_test(test_gauge),
		cmocka_unit_test(test_family_one_type_line),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_histogram_labels_and_empty),
		cmocka_unit_test(test_histogram_no_bounds),
		cmocka_unit_test(test_histogram_cumulative_many),
		cmocka_unit_test(test_mixed_registry_valid),
		cmocka_unit_test(test_render_twice),
		cmocka_unit_test(test_content_type),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
