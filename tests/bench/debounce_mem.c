/*
 * debounce-mem: memory and speed of proxyd's debounce table at scale
 * (docs/debounce.md). Opens one window for each of N distinct tokens
 * (default 1,000,000 random 700-byte strings, about the size of a Web Push
 * token), then reports what that costs per token, measured three ways:
 *
 *   bytes_per_token            resident set growth (/proc/self/statm)
 *   heap_bytes_per_token       malloc's in-use bytes (mallinfo2)
 *   accounted_bytes_per_token  the structure's own count (debounce_stats)
 *
 * and the time per debounce_hit (SipHash of the token included; token
 * generation excluded) and per window closed by debounce_expire. The
 * tokens themselves are generated in small batches and never all held,
 * so the memory figures are the table's alone.
 *
 * stdout gets exactly one line of key=value figures; diagnostics go to
 * stderr. Exit status: 0, 1 if the table misbehaved (a new token not sent
 * at once, a window that did not close), 2 on bad usage.
 *
 *   debounce-mem [--tokens N] [--token-bytes B]
 */
#include <sys/random.h>

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "debounce.h"

#define BENCH_BATCH		4096
#define BENCH_WINDOW_MS		10000

static uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Token i: printable bytes from a generator seeded with i (distinct
 * tokens, as far as a 64-bit seed goes). */
static void
make_token(char *out, size_t len, uint64_t i)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint64_t s = i * 0x2545f4914f6cdd1dULL, r = 0;

	for (size_t j = 0; j < len; j++) {
		if (j % 10 == 0)
			r = splitmix64(&s);
		out[j] = alphabet[r & 63];
		r >>= 6;
	}
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long
rss_bytes(void)
{
	long size, resident = -1;
	FILE *fp = fopen("/proc/self/statm", "r");

	if (fp == NULL)
		return -1;
	if (fscanf(fp, "%ld %ld", &size, &resident) != 2)
		resident = -1;
	fclose(fp);
	return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

static size_t
heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

static void
usage(void)
{
	fprintf(stderr, "usage: debounce-mem [--tokens N] "
	    "[--token-bytes B]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct debounce_config cfg = {
		.window_ms = BENCH_WINDOW_MS,
	};
	size_t ntokens = 1000000, token_bytes = 700, heap0, heap1, accounted;
	struct debounce_stats st;
	struct debounce *d;
	int64_t hit_ns = 0, t0, expire_ns;
	long rss0, rss1;
	char err[ERR_LEN], *batch;
	int status = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc)
			ntokens = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--token-bytes") == 0 &&
		    i + 1 < argc)
			token_bytes = strtoul(argv[++i], NULL, 10);
		else
			usage();
	}
	if (ntokens == 0 || token_bytes == 0)
		usage();
	cfg.max_entries = ntokens;
	if (getrandom(cfg.key, sizeof(cfg.key), 0) != sizeof(cfg.key)) {
		perror("getrandom");
		return 2;
	}
	batch = malloc(BENCH_BATCH * token_bytes);
	if (batch == NULL) {
		perror("malloc");
		return 2;
	}
	memset(batch, 0, BENCH_BATCH * token_bytes);

	rss0 = rss_bytes();
	heap0 = heap_bytes();
	if ((d = debounce_new(&cfg, err)) == NULL) {
		fprintf(stderr, "debounce-mem: %s\n", err);
		return 2;
	}
	for (size_t base = 0; base < ntokens; base += BENCH_BATCH) {
		size_t n = ntokens - base < BENCH_BATCH ? ntokens - base :
		    BENCH_BATCH;

		for (size_t i = 0; i < n; i++)
			make_token(batch + i * token_bytes, token_bytes,
			    base + i);
		t0 = now_ns();
		for (size_t i = 0; i < n; i++)
			if (debounce_hit(d, batch + i * token_bytes,
			    token_bytes, (int64_t)(base + i) / 1000, NULL) !=
			    DEBOUNCE_SEND_NOW)
				status = 1;
		hit_ns += now_ns() - t0;
	}
	rss1 = rss_bytes();
	heap1 = heap_bytes();
	debounce_get_stats(d, &st);
	accounted = st.memory_bytes;
	if (status != 0 || st.entries != ntokens)
		fprintf(stderr, "debounce-mem: %zu windows for %zu tokens\n",
		    st.entries, ntokens);

	t0 = now_ns();
	debounce_expire(d, (int64_t)ntokens / 1000 + BENCH_WINDOW_MS);
	expire_ns = now_ns() - t0;
	debounce_get_stats(d, &st);
	if (st.entries != 0) {
		fprintf(stderr, "debounce-mem: %zu windows left open\n",
		    st.entries);
		status = 1;
	}
	fprintf(stderr, "debounce-mem: rss %+ld bytes, heap %+zd bytes "
	    "for %zu tokens of %zu bytes\n", rss1 - rss0,
	    (ssize_t)(heap1 - heap0), ntokens, token_bytes);
	debounce_free(d);
	free(batch);

	printf("debounce-mem tokens=%zu bytes_per_token=%.1f "
	    "heap_bytes_per_token=%.1f accounted_bytes_per_token=%.1f "
	    "hit_ns=%" PRId64 " expire_ns=%" PRId64 "\n", ntokens,
	    (double)(rss1 - rss0) / (double)ntokens,
	    (double)(heap1 - heap0) / (double)ntokens,
	    (double)accounted / (double)ntokens,
	    hit_ns / (int64_t)ntokens, expire_ns / (int64_t)ntokens);
	return status;
}
