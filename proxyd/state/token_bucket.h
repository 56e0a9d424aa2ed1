/*
 * A token bucket: tokens refill at rate per second up to burst; a push
 * takes one. The arithmetic of the embedded state backend's rate-limit
 * buckets (state_local.c), pure and on the caller's clock.
 */
#ifndef TOKEN_BUCKET_H
#define TOKEN_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

struct token_bucket {
	double	 rate;		/* per second; 0: unlimited */
	double	 burst;
	double	 tokens;
	int64_t	 last_ms;
};

/* Full at now_ms. burst 0: one second's worth (at least 1). */
void	token_bucket_init(struct token_bucket *, double rate, double burst,
	    int64_t now_ms);
/* A new rate and burst (what --rate-limit says may change between
 * calls); the tokens already there stay, cut to the new burst. */
void	token_bucket_set(struct token_bucket *, double rate, double burst);
/* Takes one token if there is one. */
bool	token_bucket_take(struct token_bucket *, int64_t now_ms);
/* Milliseconds until a token is there (0: now). */
int64_t	token_bucket_wait_ms(struct token_bucket *, int64_t now_ms);

#endif
