/* Helpers the benchmark tools share; see bench_util.h. */
#include <sys/resource.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

double
bench_cpu_secs(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) == -1)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static unsigned
bench_hist_index(uint64_t ns)
{
	unsigned idx, shift;

	if (ns > BENCH_HIST_MAX_NS)
		ns = BENCH_HIST_MAX_NS;
	if (ns < BENCH_HIST_SUB)
		return (unsigned)ns;
	shift = 63 - (unsigned)__builtin_clzll(ns) -
	    (BENCH_HIST_SUB_BITS - 1);
	idx = shift * BENCH_HIST_HALF + (unsigned)(ns >> shift);
	return idx < BENCH_HIST_BUCKETS ? idx : BENCH_HIST_BUCKETS - 1;
}

/* The middle of bucket idx, in ns. */
static uint64_t
bench_hist_value(unsigned idx)
{
	unsigned shift;

	if (idx < BENCH_HIST_SUB)
		return idx;
	shift = idx / BENCH_HIST_HALF - 1;
	return ((uint64_t)(idx % BENCH_HIST_HALF + BENCH_HIST_HALF) <<
	    shift) + ((1ull << shift) >> 1);
}

void
bench_hist_add(struct bench_hist *h, uint64_t ns)
{
	h->bucket[bench_hist_index(ns)]++;
	h->n++;
	h->sum_ns += ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

uint64_t
bench_hist_quantile(const struct bench_hist *h, uint64_t ppm)
{
	uint64_t want, seen = 0, v;
	unsigned i;

	if (h->n == 0)
		return 0;
	want = (h->n * ppm + 999999) / 1000000;
	if (want == 0)
		want = 1;
	for (i = 0; i < BENCH_HIST_BUCKETS - 1; i++) {
		seen += h->bucket[i];
		if (seen >= want)
			break;
	}
	v = bench_hist_value(i);
	/* A bucket's middle may lie above the largest sample in it. */
	return v < h->max_ns ? v : h->max_ns;
}

void
bench_escape(const char *p, size_t len, size_t max, char *out, size_t size)
{
	size_t i, o = 0;

	for (i = 0; i < len && i < max && o + 5 < size; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == '\r')
			o += (size_t)snprintf(out + o, size - o, "\\r");
		else if (ch == '\n')
			o += (size_t)snprintf(out + o, size - o, "\\n");
		else if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			o += (size_t)snprintf(out + o, size - o, "\\x%02x",
			    ch);
		else
			out[o++] = (char)ch;
	}
	out[o] = '\0';
	if (i < len && o + 4 < size)
		strcpy(out + o, "...");
}

int
bench_parse_uint(const char *prog, const char *name, const char *s,
    unsigned long long min, unsigned long long max, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || *s == '-' ||
	    *out < min || *out > max) {
		fprintf(stderr, "%s: --%s: want an integer in %llu..%llu, "
		    "got \"%s\"\n", prog, name, min, max, s);
		return -1;
	}
	return 0;
}

void
bench_raise_nofile(const char *prog, unsigned long long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 ||
	    rl.rlim_cur >= (rlim_t)want)
		return;
	rl.rlim_cur = (rlim_t)want < rl.rlim_max ? (rlim_t)want :
	    rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		fprintf(stderr, "%s: setrlimit: %s\n", prog, strerror(errno));
}

char *
bench_read_file(const char *prog, const char *path, size_t *len)
{
	FILE *fp;
	char *buf = NULL;
	long size;

	if ((fp = fopen(path, "r")) == NULL ||
	    fseek(fp, 0, SEEK_END) == -1 || (size = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET) == -1) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		if (fp != NULL)
			fclose(fp);
		return NULL;
	}
	if ((buf = malloc((size_t)size + 1)) == NULL ||
	    (*len = fread(buf, 1, (size_t)size, fp)) != (size_t)size) {
		fprintf(stderr, "%s: cannot read %s\n", prog, path);
		free(buf);
		fclose(fp);
		return NULL;
	}
	fclose(fp);
	buf[*len] = '\0';
	return buf;
}

bool
bench_next_line(const char **p, const char *end, const char **line_out,
    size_t *len_out)
{
	const char *nl;
	size_t len;

	if (*p >= end)
		return false;
	if ((nl = memchr(*p, '\n', (size_t)(end - *p))) == NULL)
		nl = end;
	len = (size_t)(nl - *p);
	if (len > 0 && (*p)[len - 1] == '\r')
		len--;
	*line_out = *p;
	*len_out = len;
	*p = nl + 1;
	return true;
}

void
bench_format_codes(const uint64_t *codes, int nstatus, char *out,
    size_t size)
{
	size_t len;
	int i;

	len = (size_t)snprintf(out, size, "codes=");
	for (i = 1; i <= nstatus && len < size; i++) {
		int code = i % nstatus;		/* "none" last */

		if (codes[code] == 0)
			continue;
		if (code == 0)
			len += (size_t)snprintf(out + len, size - len,
			    "%snone:%" PRIu64, len > 6 ? "," : "",
			    codes[code]);
		else
			len += (size_t)snprintf(out + len, size - len,
			    "%s%d:%" PRIu64, len > 6 ? "," : "", code,
			    codes[code]);
	}
}
