/* Token bucket arithmetic; see token_bucket.h. */
#include "token_bucket.h"

static double
token_bucket_burst(double rate, double burst)
{
	return burst > 0 ? burst : rate > 1 ? rate : 1;
}

void
token_bucket_init(struct token_bucket *tb, double rate, double burst,
    int64_t now_ms)
{
	tb->rate = rate;
	tb->burst = token_bucket_burst(rate, burst);
	tb->tokens = tb->burst;
	tb->last_ms = now_ms;
}

void
token_bucket_set(struct token_bucket *tb, double rate, double burst)
{
	tb->rate = rate;
	tb->burst = token_bucket_burst(rate, burst);
	if (tb->tokens > tb->burst)
		tb->tokens = tb->burst;
}

static void
token_bucket_refill(struct token_bucket *tb, int64_t now_ms)
{
	if (now_ms > tb->last_ms) {
		tb->tokens += (double)(now_ms - tb->last_ms) * tb->rate / 1000.0;
		if (tb->tokens > tb->burst)
			tb->tokens = tb->burst;
		tb->last_ms = now_ms;
	}
}

bool
token_bucket_take(struct token_bucket *tb, int64_t now_ms)
{
	if (tb->rate <= 0)
		return true;
	token_bucket_refill(tb, now_ms);
	if (tb->tokens < 1.0)
		return false;
	tb->tokens -= 1.0;
	return true;
}

int64_t
token_bucket_wait_ms(struct token_bucket *tb, int64_t now_ms)
{
	double missing;

	if (tb->rate <= 0)
		return 0;
	token_bucket_refill(tb, now_ms);
	if (tb->tokens >= 1.0)
		return 0;
	missing = 1.0 - tb->tokens;
	/* Rounded up: waking a millisecond early would find no token. */
	return (int64_t)(missing * 1000.0 / tb->rate) + 1;
}
