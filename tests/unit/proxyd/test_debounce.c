/*
 * Unit tests of proxyd/state/debounce.c (the windows) and proxyd/promise/siphash.c.
 * Time is an argument, so nothing sleeps: each test walks a clock by
 * hand. A randomised run compares the module with a naive model (a list
 * scanned in full) over many operations, cancels and reopens included,
 * which covers the index's deletions, windows closed early, and the
 * ring's growth, compaction and shrinking.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "debounce.h"

#define W	10000		/* window, ms */

static struct debounce *
new_debounce(int64_t window_ms, size_t max_entries)
{
	struct debounce_config cfg = {
		.window_ms = window_ms,
		.max_entries = max_entries,
	};
	struct debounce *d;
	char err[ERR_LEN] = "";

	for (size_t i = 0; i < DEBOUNCE_KEY_LEN; i++)
		cfg.key[i] = (uint8_t)(0xa0 + i);
	d = debounce_new(&cfg, err);
	if (d == NULL)
		fail_msg("debounce_new: %s", err);
	return d;
}

static enum debounce_action
hit(struct debounce *d, const char *token, int64_t now)
{
	return debounce_hit(d, token, strlen(token), now, NULL);
}

static int64_t
end_of(struct debounce *d, const char *token, int64_t now)
{
	return debounce_end(d, token, strlen(token), now);
}

static void
test_first_sends_then_coalesces(void **state)
{
	struct debounce *d = new_debounce(W, 100);
	struct debounce_stats st;
	int64_t end = 0;

	(void)state;
	assert_int_equal(debounce_hit(d, "tok", 3, 1000, &end),
	    DEBOUNCE_SEND_NOW);
	assert_int_equal(end, 1000 + W);
	assert_int_equal(debounce_hit(d, "tok", 3, 1500, &end),
	    DEBOUNCE_COALESCED);
	assert_int_equal(end, 1000 + W);
	assert_int_equal(hit(d, "other", 1500), DEBOUNCE_SEND_NOW);
	assert_int_equal(end_of(d, "tok", 2000), 1000 + W);
	assert_int_equal(end_of(d, "none", 2000), -1);
	debounce_get_stats(d, &st);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.sent_now, 2);
	assert_int_equal(st.coalesced, 1);
	debounce_free(d);
}

/* A window is open in [start, start + W): at its end it is closed, whether
 * expiry ran or not, and the next request sends again. */
static void
test_window_boundaries(void **state)
{
	struct debounce *d = new_debounce(W, 100);

	(void)state;
	assert_int_equal(hit(d, "t", 0), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "t", W - 1), DEBOUNCE_COALESCED);
	assert_int_equal(end_of(d, "t", W), -1);
	assert_int_equal(hit(d, "t", W), DEBOUNCE_SEND_NOW);
	assert_int_equal(end_of(d, "t", W), 2 * W);
	/* expiry after the fact closes only what has ended */
	assert_int_equal(debounce_expire(d, 2 * W - 1), 0);
	assert_int_equal(hit(d, "t", 2 * W - 1), DEBOUNCE_COALESCED);
	assert_int_equal(debounce_expire(d, 2 * W), 1);
	assert_int_equal(debounce_next_deadline(d), -1);
	debounce_free(d);
}

/* A leading push that failed closes its window: the next request sends,
 * it is not coalesced into a window in which nothing went out. */
static void
test_cancel_opens_no_window(void **state)
{
	struct debounce *d = new_debounce(W, 100);
	struct debounce_stats st;

	(void)state;
	assert_int_equal(hit(d, "t", 0), DEBOUNCE_SEND_NOW);
	assert_int_equal(debounce_cancel(d, "t", 1), 1);
	assert_int_equal(debounce_cancel(d, "t", 1), 0);
	assert_int_equal(end_of(d, "t", 1), -1);
	assert_int_equal(hit(d, "t", 1), DEBOUNCE_SEND_NOW);
	assert_int_equal(end_of(d, "t", 1), 1 + W);
	/* the cancelled window's ring entry expires without closing the
	 * new one */
	assert_int_equal(debounce_expire(d, W), 0);
	assert_int_equal(hit(d, "t", W), DEBOUNCE_COALESCED);
	assert_int_equal(debounce_expire(d, W + 1), 1);
	debounce_get_stats(d, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.ring, 0);
	assert_int_equal(st.cancelled, 1);
	debounce_free(d);
}

/* A trailing push starts the next window from when it was sent. */
static void
test_reopen(void **state)
{
	struct debounce *d = new_debounce(W, 100);

	(void)state;
	assert_int_equal(hit(d, "t", 0), DEBOUNCE_SEND_NOW);
	/* reopened at its end, before expiry ran */
	assert_int_equal(debounce_reopen(d, "t", 1, W), 2 * W);
	assert_int_equal(hit(d, "t", W + 5), DEBOUNCE_COALESCED);
	assert_int_equal(debounce_expire(d, W + 5), 0);	/* old entry */
	assert_int_equal(end_of(d, "t", W + 5), 2 * W);
	/* reopened with no window at all */
	assert_int_equal(debounce_reopen(d, "u", 1, W + 7), 2 * W + 7);
	assert_int_equal(hit(d, "u", W + 8), DEBOUNCE_COALESCED);
	assert_int_equal(debounce_expire(d, 3 * W), 2);
	debounce_free(d);
}

/* Windows end in the order they opened, reopened ones at the tail. */
static void
test_expiry_order(void **state)
{
	struct debounce *d = new_debounce(100, 100);

	(void)state;
	assert_int_equal(hit(d, "a", 0), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "b", 10), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "c", 20), DEBOUNCE_SEND_NOW);
	assert_int_equal(debounce_reopen(d, "a", 1, 30), 130);
	assert_int_equal(debounce_next_deadline(d), 100);	/* a's old */
	assert_int_equal(debounce_expire(d, 100), 0);
	assert_int_equal(debounce_next_deadline(d), 110);
	assert_int_equal(debounce_expire(d, 115), 1);		/* b */
	assert_int_equal(end_of(d, "c", 115), 120);
	assert_int_equal(debounce_expire(d, 129), 1);		/* c */
	assert_int_equal(end_of(d, "a", 129), 130);
	assert_int_equal(debounce_expire(d, 130), 1);
	debounce_free(d);
}

/* Full: a new token is sent without a window (and counted); the ring's
 * closed entries are reclaimed before a newcomer is refused. */
static void
test_table_full(void **state)
{
	struct debounce *d = new_debounce(W, 3);
	struct debounce_stats st;
	int64_t end;

	(void)state;
	assert_int_equal(hit(d, "a", 0), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "b", 0), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "c", 0), DEBOUNCE_SEND_NOW);
	assert_int_equal(debounce_hit(d, "d", 1, 1, &end), DEBOUNCE_SEND_NOW);
	assert_int_equal(end, -1);
	assert_int_equal(hit(d, "d", 2), DEBOUNCE_SEND_NOW);	/* again */
	debounce_get_stats(d, &st);
	assert_int_equal(st.table_full, 2);
	assert_int_equal(st.entries, 3);
	/* a cancelled window leaves a ring entry that is reclaimed */
	assert_int_equal(debounce_cancel(d, "a", 1), 1);
	assert_int_equal(debounce_hit(d, "d", 1, 3, &end), DEBOUNCE_SEND_NOW);
	assert_int_equal(end, 3 + W);
	assert_int_equal(hit(d, "d", 4), DEBOUNCE_COALESCED);
	/* expired windows make room too */
	assert_int_equal(hit(d, "e", W), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "e", W + 1), DEBOUNCE_COALESCED);
	debounce_free(d);
}

static void
test_clock_never_goes_back(void **state)
{
	struct debounce *d = new_debounce(100, 100);

	(void)state;
	assert_int_equal(hit(d, "a", 1000), DEBOUNCE_SEND_NOW);
	/* a step back counts as the last time seen */
	assert_int_equal(hit(d, "b", 500), DEBOUNCE_SEND_NOW);
	assert_int_equal(end_of(d, "b", 500), 1100);
	assert_int_equal(debounce_expire(d, 900), 0);
	assert_int_equal(debounce_expire(d, 1100), 2);
	debounce_free(d);
}

static void
test_config_errors(void **state)
{
	struct debounce_config cfg = { .window_ms = 0, .max_entries = 10 };
	char err[ERR_LEN];

	(void)state;
	assert_null(debounce_new(&cfg, err));
	cfg.window_ms = DEBOUNCE_MAX_WINDOW_MS + 1;
	assert_null(debounce_new(&cfg, err));
	cfg.window_ms = 1;
	cfg.max_entries = 0;
	assert_null(debounce_new(&cfg, err));
	cfg.max_entries = DEBOUNCE_MAX_ENTRIES_LIMIT + 1;
	assert_null(debounce_new(&cfg, err));
	debounce_free(NULL);
}

/* The digest is SipHash-2-4-128: compare with OpenSSL's for the
 * reference test messages (key 00..0f, message 00..len-1). */
static void
test_digest_is_siphash128(void **state)
{
	struct debounce_config cfg = { .window_ms = W, .max_entries = 10 };
	uint8_t msg[64], mine[16], theirs[16];
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	size_t size = 16, outl;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
		OSSL_PARAM_construct_end(),
	};
	struct debounce *d, *d2;
	char err[ERR_LEN];

	(void)state;
	assert_non_null(mac);
	for (int i = 0; i < 16; i++)
		cfg.key[i] = (uint8_t)i;
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	d = debounce_new(&cfg, err);
	for (size_t len = 0; len < sizeof(msg); len++) {
		EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);

		assert_int_equal(EVP_MAC_init(ctx, cfg.key, 16, params), 1);
		assert_int_equal(EVP_MAC_update(ctx, msg, len), 1);
		assert_int_equal(EVP_MAC_final(ctx, theirs, &outl, 16), 1);
		assert_int_equal(outl, 16);
		EVP_MAC_CTX_free(ctx);
		debounce_digest(d, msg, len, mine);
		if (memcmp(mine, theirs, 16) != 0)
			fail_msg("siphash128 differs at length %zu", len);
	}
	/* Another key, another digest. */
	cfg.key[0] ^= 1;
	d2 = debounce_new(&cfg, err);
	debounce_digest(d2, msg, 10, theirs);
	debounce_digest(d, msg, 10, mine);
	assert_memory_not_equal(mine, theirs, 16);
	EVP_MAC_free(mac);
	debounce_free(d);
	debounce_free(d2);
}

/* ---- randomised comparison with a naive model ----------------------- */

struct model {
	size_t	 keys;
	int64_t	*end;		/* per key; INT64_MIN: no open window */
	size_t	 ring;		/* entries the module may hold */
	size_t	 max;
	int64_t	 window;
	int64_t	 last;
};

static int64_t
model_clock(struct model *m, int64_t now)
{
	if (now < m->last)
		return m->last;
	return m->last = now;
}

static size_t
model_open(const struct model *m, int64_t now)
{
	size_t n = 0;

	for (size_t k = 0; k < m->keys; k++)
		n += m->end[k] != INT64_MIN && m->end[k] > now;
	return n;
}

/*
 * Random hits, cancels, reopens and expiries on `keys` tokens with at most
 * `max` ring entries, the module and the model side by side. The model
 * knows only which windows are open; where the module must refuse for a
 * full ring (closed entries it cannot reclaim yet), the test checks that
 * the ring really is full of entries that could still be open, and
 * follows the module. Phases alternate: in a burst the clock barely
 * moves, so windows pile up; then it runs and they drain.
 */
static void
run_model(size_t keys, size_t max, bool fills, uint64_t seed)
{
	struct model m = {
		.keys = keys, .max = max, .window = 50, .last = INT64_MIN,
		.end = calloc(keys, sizeof(int64_t)),
	};
	struct debounce *d = new_debounce(m.window, max);
	struct debounce_stats st;
	uint64_t rng = seed;
	int64_t now = 1000000, end;
	size_t peak = 0, refused = 0;
	char key[32];

	for (size_t k = 0; k < keys; k++)
		m.end[k] = INT64_MIN;
	for (int step = 0; step < 120000; step++) {
		bool burst = step % 30000 < 15000;
		size_t k, op;
		int got;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		k = (size_t)(rng % keys);
		op = (size_t)(rng >> 50 & 15);
		snprintf(key, sizeof(key), "model-key-%zu", k);
		if (rng >> 60 == 0)
			now -= 3;	/* the clock stepping back */
		else if (burst ? (rng >> 52 & 255) == 0 :
		    (rng >> 56 & 3) == 0)
			now += (int64_t)(rng >> 40 & 15);
		now = model_clock(&m, now);
		if (op < 10) {
			bool open = m.end[k] != INT64_MIN && m.end[k] > now;

			got = (int)debounce_hit(d, key, strlen(key), now, &end);
			if (open) {
				if (got != DEBOUNCE_COALESCED || end != m.end[k])
					fail_msg("keys %zu step %d key %zu: "
					    "open window not coalesced", keys,
					    step, k);
			} else if (got != DEBOUNCE_SEND_NOW)
				fail_msg("keys %zu step %d key %zu: no window "
				    "but coalesced", keys, step, k);
			else if (end >= 0)
				m.end[k] = end;
			else {
				m.end[k] = INT64_MIN;
				refused++;
				debounce_get_stats(d, &st);
				assert_int_equal(st.ring, max);
			}
		} else if (op < 12) {
			bool open = m.end[k] != INT64_MIN && m.end[k] > now;

			got = debounce_cancel(d, key, strlen(key));
			/* an ended window not yet expired may still be
			 * indexed: cancelling it is fine either way */
			if (open && got != 1)
				fail_msg("keys %zu step %d: cancel missed", keys,
				    step);
			m.end[k] = INT64_MIN;
		} else if (op < 13) {
			end = debounce_reopen(d, key, strlen(key), now);
			m.end[k] = end >= 0 ? end : INT64_MIN;
			if (end >= 0)
				assert_int_equal(end, now + m.window);
		} else
			debounce_expire(d, now);
		debounce_get_stats(d, &st);
		if (st.entries < model_open(&m, now))
			fail_msg("keys %zu step %d: %zu windows, the model has "
			    "%zu open", keys, step, st.entries,
			    model_open(&m, now));
		if (st.ring > max)
			fail_msg("keys %zu step %d: ring %zu over %zu", keys,
			    step, st.ring, max);
		if (st.entries > peak)
			peak = st.entries;
		/* At most 96 bytes per ring entry above the minimum size
		 * (1024 entries of 32 bytes). */
		if (st.memory_bytes > 2048 +
		    32 * (st.ring * 3 > 1024 ? st.ring * 3 : 1024))
			fail_msg("keys %zu step %d: %zu bytes for %zu entries",
			    keys, step, st.memory_bytes, st.ring);
	}
	print_message("keys %zu max %zu: peak %zu open, %zu refused\n", keys,
	    max, peak, refused);
	if (fills)
		assert_true(refused > 0);	/* the bursts did fill it */
	assert_true(peak > max / 2);
	free(m.end);
	debounce_free(d);
}

static void
test_random_against_model(void **state)
{
	(void)state;
	run_model(300, 200, true, 0x9e3779b97f4a7c15ULL);	/* ring full */
	run_model(1500, 1024, true, 0x243f6a8885a308d3ULL);	/* load 1/2 */
	run_model(3000, 2500, false, 0xb7e151628aed2a6bULL);	/* grows */
}

/* A large table: growth to many thousands and back. */
static void
test_grow_and_shrink(void **state)
{
	struct debounce *d = new_debounce(1000, 1 << 20);
	struct debounce_stats st;
	size_t peak;
	char key[32];

	(void)state;
	for (int round = 0; round < 3; round++) {
		int64_t t0 = round * 10000;

		for (int i = 0; i < 100000; i++) {
			snprintf(key, sizeof(key), "g%d-%d", round, i);
			assert_int_equal(hit(d, key, t0), DEBOUNCE_SEND_NOW);
		}
		for (int i = 0; i < 100000; i += 50) {
			snprintf(key, sizeof(key), "g%d-%d", round, i);
			assert_int_equal(debounce_reopen(d, key, strlen(key),
			    t0 + 1), t0 + 1001);
		}
		debounce_get_stats(d, &st);
		peak = st.memory_bytes;
		assert_true(peak / st.entries <= 100);
		assert_int_equal(debounce_expire(d, t0 + 1000), 98000);
		/* 98 % closed at once: the table shrinks at once too. */
		debounce_get_stats(d, &st);
		assert_int_equal(st.entries, 2000);
		assert_true(st.memory_bytes / st.entries <= 100);
		assert_int_equal(debounce_expire(d, t0 + 5000), 2000);
		debounce_get_stats(d, &st);
		assert_int_equal(st.entries, 0);
		assert_true(st.memory_bytes < peak / 16);
	}
	debounce_free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_sends_then_coalesces),
		cmocka_unit_test(test_window_boundaries),
		cmocka_unit_test(test_cancel_opens_no_window),
		cmocka_unit_test(test_reopen),
		cmocka_unit_test(test_expiry_order),
		cmocka_unit_test(test_table_full),
		cmocka_unit_test(test_clock_never_goes_back),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_digest_is_siphash128),
		cmocka_unit_test(test_random_against_model),
		cmocka_unit_test(test_grow_and_shrink),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
