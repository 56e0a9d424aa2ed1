/*
 * Unit tests of proxyd/debounce.c. Time is an argument, so nothing sleeps:
 * each test walks a clock by hand. A randomised run compares the module
 * with a naive model (a list scanned in full) over many operations, which
 * covers the index's deletions and the ring's growth and shrinking.
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
#define MAX_FIRES 4096

struct fires {
	size_t	n;
	uint8_t	digest[MAX_FIRES][DEBOUNCE_DIGEST_LEN];
	char	token[MAX_FIRES][64];
	/* Optional: call debounce_hit from inside fire(). */
	struct debounce *rehit;
	int64_t	rehit_now;
	int	rehit_action;
};

static void
record(const uint8_t digest[DEBOUNCE_DIGEST_LEN], const char *token,
    size_t len, void *arg)
{
	struct fires *f = arg;

	assert_true(f->n < MAX_FIRES);
	assert_true(len < sizeof(f->token[0]));
	memcpy(f->digest[f->n], digest, DEBOUNCE_DIGEST_LEN);
	memcpy(f->token[f->n], token, len);
	f->token[f->n][len] = '\0';
	f->n++;
	if (f->rehit != NULL)
		f->rehit_action = (int)debounce_hit(f->rehit, token, len,
		    f->rehit_now);
}

static struct debounce *
new_debounce(int64_t window_ms, size_t max_entries, size_t max_pending)
{
	struct debounce_config cfg = {
		.window_ms = window_ms,
		.max_entries = max_entries,
		.max_pending_bytes = max_pending,
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
	return debounce_hit(d, token, strlen(token), now);
}

static void
test_leading_and_trailing(void **state)
{
	struct debounce *d = new_debounce(W, 100, 1 << 20);
	struct fires f = { 0 };
	struct debounce_stats st;
	uint8_t want[DEBOUNCE_DIGEST_LEN];

	(void)state;
	assert_int_equal(hit(d, "tok-a", 1000), DEBOUNCE_SEND_NOW);
	assert_int_equal(debounce_next_deadline(d), 1000 + W);
	assert_int_equal(hit(d, "tok-a", 1100), DEBOUNCE_COALESCED);
	assert_int_equal(hit(d, "tok-a", 1200), DEBOUNCE_COALESCED);
	assert_int_equal(debounce_expire(d, 1000 + W - 1, record, &f), 0);
	assert_int_equal(f.n, 0);
	assert_int_equal(debounce_expire(d, 1000 + W, record, &f), 1);
	assert_int_equal(f.n, 1);
	assert_string_equal(f.token[0], "tok-a");
	debounce_digest(d, "tok-a", 5, want);
	assert_memory_equal(f.digest[0], want, sizeof(want));
	/* The trailing push opened the next window, with nothing pending. */
	assert_int_equal(debounce_next_deadline(d), 1000 + 2 * W);
	assert_int_equal(debounce_expire(d, 1000 + 2 * W, record, &f), 0);
	assert_int_equal(f.n, 1);
	assert_int_equal(debounce_next_deadline(d), -1);
	debounce_get_stats(d, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.sent_now, 1);
	assert_int_equal(st.coalesced, 2);
	assert_int_equal(st.trailing, 1);
	assert_int_equal(st.pending, 0);
	assert_int_equal(st.pending_bytes, 0);
	debounce_free(d);
}

static void
test_single_request_no_trailing(void **state)
{
	struct debounce *d = new_debounce(W, 100, 1 << 20);
	struct fires f = { 0 };

	(void)state;
	assert_int_equal(hit(d, "tok-a", 0), DEBOUNCE_SEND_NOW);
	assert_int_equal(debounce_expire(d, W, record, &f), 0);
	assert_int_equal(f.n, 0);
	assert_int_equal(debounce_next_deadline(d), -1);
	/* The window is gone: the next request is a leading push again. */
	assert_int_equal(hit(d, "tok-a", W + 1), DEBOUNCE_SEND_NOW);
	debounce_free(d);
}

static void
test_window_boundaries(void **state)
{
	struct debounce *d = new_debounce(W, 100, 1 << 20);
	struct fires f = { 0 };

	(void)state;
	/* One millisecond before the end: inside. */
	assert_int_equal(hit(d, "a", 0), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "a", W - 1), DEBOUNCE_COALESCED);
	assert_int_equal(debounce_expire(d, W, record, &f), 1);

	/* Exactly at the end, expired first: the window [2W, 3W) is
	 * closed, the request leads a new one. (a's window, re-opened by
	 * its trailing push, closes too, without a push.) */
	assert_int_equal(hit(d, "b", 2 * W), DEBOUNCE_SEND_NOW);
	assert_int_equal(debounce_expire(d, 3 * W, record, &f), 0);
	assert_int_equal(hit(d, "b", 3 * W), DEBOUNCE_SEND_NOW);
	assert_int_equal(debounce_next_deadline(d), 4 * W);

	/* Exactly at the end, before expiry ran: coalesced into the
	 * trailing push that expiry then sends at once. */
	assert_int_equal(hit(d, "c", 5 * W), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "c", 6 * W), DEBOUNCE_COALESCED);
	f.n = 0;
	assert_int_equal(debounce_expire(d, 6 * W, record, &f), 1);
	assert_string_equal(f.token[0], "c");
	debounce_free(d);
}

/* Spec scenario: 50 requests for one token within 1 s, window 10 s, a
 * timer driven by debounce_next_deadline: exactly 2 pushes. */
static void
test_fifty_in_one_second(void **state)
{
	struct debounce *d = new_debounce(W, 100, 1 << 20);
	struct fires f = { 0 };
	size_t sends = 0;
	int64_t dl;

	(void)state;
	for (int i = 0; i < 50; i++)
		if (hit(d, "fcm-chat.delta:abc", 5000 + i * 20) ==
		    DEBOUNCE_SEND_NOW)
			sends++;
	while ((dl = debounce_next_deadline(d)) >= 0)
		sends += debounce_expire(d, dl, record, &f);
	assert_int_equal(sends, 2);
	assert_int_equal(f.n, 1);
	debounce_free(d);
}

/* The device fetched after the leading push; a mail arriving then, or
 * just after the trailing push, still gets a push. */
static void
test_mail_after_fetch_not_missed(void **state)
{
	struct debounce *d = new_debounce(W, 100, 1 << 20);
	struct fires f = { 0 };

	(void)state;
	assert_int_equal(hit(d, "t", 0), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "t", 2000), DEBOUNCE_COALESCED);
	assert_int_equal(debounce_expire(d, W, record, &f), 1);
	/* 1 ms after the trailing push: inside the window it opened. */
	assert_int_equal(hit(d, "t", W + 1), DEBOUNCE_COALESCED);
	assert_int_equal(debounce_expire(d, 2 * W - 1, record, &f), 0);
	assert_int_equal(debounce_expire(d, 2 * W, record, &f), 1);
	assert_int_equal(f.n, 2);
	/* Sustained load, a request every 500 ms for 10 windows: one push
	 * per window, at the windows' ends 3W..11W. */
	f.n = 0;
	for (int64_t t = 2 * W; t < 12 * W; t += 500) {
		assert_int_equal(hit(d, "t", t), DEBOUNCE_COALESCED);
		debounce_expire(d, t, record, &f);
	}
	assert_int_equal(f.n, 9);
	debounce_free(d);
}

static void
test_expiry_order(void **state)
{
	struct debounce *d = new_debounce(W, 100, 1 << 20);
	struct fires f = { 0 };
	const char *keys[] = { "k0", "k1", "k2", "k3", "k4" };

	(void)state;
	for (int i = 0; i < 5; i++)
		assert_int_equal(hit(d, keys[i], i * 100), DEBOUNCE_SEND_NOW);
	/* Coalesce in reverse: the order of firing is the windows' order. */
	for (int i = 4; i >= 0; i--)
		if (i != 2)
			assert_int_equal(hit(d, keys[i], 1000),
			    DEBOUNCE_COALESCED);
	assert_int_equal(debounce_expire(d, W + 150, record, &f), 2);
	assert_string_equal(f.token[0], "k0");
	assert_string_equal(f.token[1], "k1");
	assert_int_equal(debounce_next_deadline(d), W + 200);
	assert_int_equal(debounce_expire(d, W + 400, record, &f), 2);
	assert_string_equal(f.token[2], "k3");
	assert_string_equal(f.token[3], "k4");
	/* The re-opened windows end after all the others, in order too. */
	assert_int_equal(debounce_next_deadline(d), 2 * W + 150);
	debounce_free(d);
}

static void
test_many_keys(void **state)
{
	const int n = 20000;
	struct debounce *d = new_debounce(W, (size_t)n, 1 << 20);
	struct fires *f = calloc(1, sizeof(*f));
	struct debounce_stats st;
	char key[32];

	(void)state;
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		assert_int_equal(hit(d, key, i / 10), DEBOUNCE_SEND_NOW);
	}
	/* Every 10th key gets a second request. */
	for (int i = 0; i < n; i += 10) {
		snprintf(key, sizeof(key), "key-%d", i);
		assert_int_equal(hit(d, key, n / 10), DEBOUNCE_COALESCED);
	}
	for (int i = 1; i < n; i += 10) {
		snprintf(key, sizeof(key), "key-%d", i);
		assert_int_equal(hit(d, key, n / 10), DEBOUNCE_COALESCED);
	}
	debounce_get_stats(d, &st);
	assert_int_equal(st.entries, n);
	assert_int_equal(st.pending, n / 5);
	assert_true(st.memory_bytes / st.entries <= 150);
	/* Half the windows end: their pending pushes fire, oldest first. */
	assert_int_equal(debounce_expire(d, W + n / 20 - 1, record, f),
	    n / 10);
	for (size_t j = 0; j < f->n; j++) {
		snprintf(key, sizeof(key), "key-%zu", j / 2 * 10 + j % 2);
		assert_string_equal(f->token[j], key);
	}
	debounce_get_stats(d, &st);
	assert_int_equal(st.entries, n / 2 + n / 10);
	/* All close; memory returns to the small initial size. */
	assert_int_equal(debounce_expire(d, 3 * W, record, f), n / 10);
	assert_int_equal(debounce_expire(d, 5 * W, record, f), 0);
	for (int i = 0; i < 10; i++)
		debounce_expire(d, 5 * W, record, f);
	debounce_get_stats(d, &st);
	assert_int_equal(st.entries, 0);
	assert_true(st.memory_bytes < 64 * 1024);
	free(f);
	debounce_free(d);
}

static void
test_table_full(void **state)
{
	struct debounce *d = new_debounce(W, 3, 1 << 20);
	struct fires f = { 0 };
	struct debounce_stats st;

	(void)state;
	assert_int_equal(hit(d, "a", 0), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "b", 1), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "c", 2), DEBOUNCE_SEND_NOW);
	/* Full: a new token is sent, not debounced, every time. */
	assert_int_equal(hit(d, "d", 3), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "d", 4), DEBOUNCE_SEND_NOW);
	/* Tokens with a window still coalesce. */
	assert_int_equal(hit(d, "a", 5), DEBOUNCE_COALESCED);
	debounce_get_stats(d, &st);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.table_full, 2);
	assert_int_equal(st.sent_now, 5);
	/* b's window closes: room again. */
	assert_int_equal(debounce_expire(d, W + 1, record, &f), 1);
	assert_int_equal(hit(d, "d", W + 1), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "d", W + 2), DEBOUNCE_COALESCED);
	debounce_free(d);
}

static void
test_pending_budget(void **state)
{
	/* Room for one token copy of 8 bytes and its header. */
	struct debounce *d = new_debounce(W, 100, 8 + sizeof(size_t));
	struct fires f = { 0 };
	struct debounce_stats st;

	(void)state;
	assert_int_equal(hit(d, "aaaaaaaa", 0), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "bbbbbbbb", 0), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "aaaaaaaa", 1), DEBOUNCE_COALESCED);
	/* No room to remember b's trailing push: send it now instead. */
	assert_int_equal(hit(d, "bbbbbbbb", 2), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "aaaaaaaa", 3), DEBOUNCE_COALESCED);
	debounce_get_stats(d, &st);
	assert_int_equal(st.pending, 1);
	assert_int_equal(st.pending_full, 1);
	assert_int_equal(debounce_expire(d, W, record, &f), 1);
	assert_string_equal(f.token[0], "aaaaaaaa");
	/* The copy is gone, so there is room again. */
	assert_int_equal(hit(d, "bbbbbbbb", W), DEBOUNCE_SEND_NOW);
	assert_int_equal(hit(d, "bbbbbbbb", W + 1), DEBOUNCE_COALESCED);
	debounce_free(d);
}

/* fire() may call debounce_hit: a request arriving while the trailing
 * push is being sent lands in the window that push opened. */
static void
test_hit_from_fire(void **state)
{
	struct debounce *d = new_debounce(W, 100, 1 << 20);
	struct fires f = { 0 };

	(void)state;
	hit(d, "x", 0);
	hit(d, "x", 1);
	f.rehit = d;
	f.rehit_now = W;
	f.rehit_action = -1;
	assert_int_equal(debounce_expire(d, W, record, &f), 1);
	assert_int_equal(f.rehit_action, DEBOUNCE_COALESCED);
	f.rehit = NULL;
	assert_int_equal(debounce_expire(d, 2 * W, record, &f), 1);
	assert_int_equal(f.n, 2);
	debounce_free(d);
}

static void
test_clock_never_goes_back(void **state)
{
	struct debounce *d = new_debounce(W, 100, 1 << 20);
	struct fires f = { 0 };
	struct debounce_stats st;

	(void)state;
	hit(d, "a", 1000);
	hit(d, "b", 500);	/* counts as 1000 */
	assert_int_equal(debounce_expire(d, 500 + W, record, &f), 0);
	debounce_get_stats(d, &st);
	assert_int_equal(st.entries, 2);
	debounce_expire(d, 1000 + W, record, &f);
	debounce_get_stats(d, &st);
	assert_int_equal(st.entries, 0);
	debounce_free(d);
}

static void
test_config_errors(void **state)
{
	struct debounce_config cfg = { .window_ms = W, .max_entries = 10 };
	char err[ERR_LEN];

	(void)state;
	cfg.window_ms = 0;
	assert_null(debounce_new(&cfg, err));
	assert_non_null(strstr(err, "window of 0 ms"));
	cfg.window_ms = DEBOUNCE_MAX_WINDOW_MS + 1;
	assert_null(debounce_new(&cfg, err));
	cfg.window_ms = W;
	cfg.max_entries = 0;
	assert_null(debounce_new(&cfg, err));
	assert_non_null(strstr(err, "max entries 0"));
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
	int64_t	*end;		/* per key; INT64_MIN: no window */
	uint64_t *seq;		/* order among equal ends */
	int	*pending;
	uint64_t next_seq;
	size_t	 count;
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

static int
model_hit(struct model *m, size_t k, int64_t now)
{
	now = model_clock(m, now);
	if (m->end[k] != INT64_MIN) {
		m->pending[k] = 1;
		return DEBOUNCE_COALESCED;
	}
	if (m->count >= m->max)
		return DEBOUNCE_SEND_NOW;
	m->end[k] = now + m->window;
	m->seq[k] = m->next_seq++;
	m->count++;
	return DEBOUNCE_SEND_NOW;
}

/* Close what ended by scanning every key; fired keys, in order, into
 * out; returns how many. */
static size_t
model_expire(struct model *m, int64_t now, size_t *out)
{
	size_t n = 0;

	now = model_clock(m, now);
	for (;;) {
		size_t best = m->keys;

		for (size_t k = 0; k < m->keys; k++)
			if (m->end[k] != INT64_MIN && m->end[k] <= now &&
			    (best == m->keys || m->end[k] < m->end[best] ||
			    (m->end[k] == m->end[best] &&
			    m->seq[k] < m->seq[best])))
				best = k;
		if (best == m->keys)
			return n;
		if (m->pending[best]) {
			out[n++] = best;
			m->pending[best] = 0;
			m->end[best] = now + m->window;
			m->seq[best] = m->next_seq++;
		} else {
			m->end[best] = INT64_MIN;
			m->count--;
		}
	}
}

/*
 * Random hits and expiries on `keys` tokens with at most `max` windows,
 * the module and the model side by side. Phases alternate: in a burst the
 * clock barely moves, so windows pile up (the table fills, the ring grows,
 * index clusters form); then it runs and they drain (the ring shrinks).
 */
static void
run_model(size_t keys, size_t max, uint64_t seed)
{
	struct model m = {
		.keys = keys, .max = max, .window = 50, .last = INT64_MIN,
		.end = calloc(keys, sizeof(int64_t)),
		.seq = calloc(keys, sizeof(uint64_t)),
		.pending = calloc(keys, sizeof(int)),
	};
	struct fires *f = calloc(1, sizeof(*f));
	size_t *want = calloc(keys, sizeof(*want));
	struct debounce *d = new_debounce(m.window, max, 1 << 20);
	struct debounce_stats st;
	uint64_t rng = seed;
	int64_t now = 1000000;
	size_t peak = 0;
	char key[32];

	for (size_t k = 0; k < keys; k++)
		m.end[k] = INT64_MIN;
	for (int step = 0; step < 120000; step++) {
		bool burst = step % 30000 < 15000;
		int got, exp;
		size_t k, n;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		k = (size_t)(rng % keys);
		snprintf(key, sizeof(key), "model-key-%zu", k);
		if (rng >> 60 == 0)
			now -= 3;	/* the clock stepping back */
		else if (burst ? (rng >> 52 & 255) == 0 :
		    (rng >> 56 & 3) == 0)
			now += (int64_t)(rng >> 40 & 15);
		if ((rng >> 50 & 7) < 6) {
			got = (int)hit(d, key, now);
			exp = model_hit(&m, k, now);
			if (got != exp)
				fail_msg("keys %zu step %d key %zu: action %d, "
				    "want %d", keys, step, k, got, exp);
		} else {
			f->n = 0;
			n = debounce_expire(d, now, record, f);
			if (n != model_expire(&m, now, want) || n != f->n)
				fail_msg("keys %zu step %d: %zu fires, the "
				    "model another count", keys, step, n);
			for (size_t j = 0; j < n; j++) {
				snprintf(key, sizeof(key), "model-key-%zu",
				    want[j]);
				if (strcmp(f->token[j], key) != 0)
					fail_msg("keys %zu step %d: fire %zu "
					    "is %s, want %s", keys, step, j,
					    f->token[j], key);
			}
		}
		debounce_get_stats(d, &st);
		if (st.entries != m.count)
			fail_msg("keys %zu step %d: %zu entries, want %zu",
			    keys, step, st.entries, m.count);
		if (st.entries > peak)
			peak = st.entries;
		/* At most 120 bytes per open window above the minimum size
		 * (1024 entries of 40 bytes), pending copies apart. */
		if (st.memory_bytes - st.pending_bytes > 2048 +
		    40 * (st.entries * 3 > 1024 ? st.entries * 3 : 1024))
			fail_msg("keys %zu step %d: %zu bytes for %zu windows",
			    keys, step, st.memory_bytes, st.entries);
	}
	/* The bursts did fill the table. */
	assert_int_equal(peak, max);
	free(want);
	free(f);
	free(m.end);
	free(m.seq);
	free(m.pending);
	debounce_free(d);
}

static void
test_random_against_model(void **state)
{
	(void)state;
	run_model(300, 200, 0x9e3779b97f4a7c15ULL);	/* table full */
	run_model(1500, 1024, 0x243f6a8885a308d3ULL);	/* index load 1/2 */
	run_model(3000, 2500, 0xb7e151628aed2a6bULL);	/* grows, shrinks */
}

/* The same with a large table: growth to many thousands and back. */
static void
test_grow_and_shrink(void **state)
{
	struct debounce *d = new_debounce(1000, 1 << 20, 1 << 24);
	struct fires *f = calloc(1, sizeof(*f));
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
			assert_int_equal(hit(d, key, t0 + 1),
			    DEBOUNCE_COALESCED);
		}
		debounce_get_stats(d, &st);
		peak = st.memory_bytes;
		assert_true(peak / st.entries <= 150);
		f->n = 0;
		assert_int_equal(debounce_expire(d, t0 + 1000, record, f),
		    2000);
		/* 98 % closed at once: the table shrinks at once too. */
		debounce_get_stats(d, &st);
		assert_int_equal(st.entries, 2000);
		assert_true(st.memory_bytes / st.entries <= 150);
		for (int i = 0; i < 100000; i += 50) {
			snprintf(key, sizeof(key), "g%d-%d", round, i);
			assert_int_equal(hit(d, key, t0 + 1001),
			    DEBOUNCE_COALESCED);
		}
		/* Their trailing pushes; then every window closes. */
		assert_int_equal(debounce_expire(d, t0 + 5000, record, f),
		    2000);
		debounce_expire(d, t0 + 7000, record, f);
		debounce_get_stats(d, &st);
		assert_int_equal(st.entries, 0);
		assert_int_equal(st.trailing, (uint64_t)(round + 1) * 4000);
		assert_true(st.memory_bytes < peak / 16);
	}
	free(f);
	debounce_free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leading_and_trailing),
		cmocka_unit_test(test_single_request_no_trailing),
		cmocka_unit_test(test_window_boundaries),
		cmocka_unit_test(test_fifty_in_one_second),
		cmocka_unit_test(test_mail_after_fetch_not_missed),
		cmocka_unit_test(test_expiry_order),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_table_full),
		cmocka_unit_test(test_pending_budget),
		cmocka_unit_test(test_hit_from_fire),
		cmocka_unit_test(test_clock_never_goes_back),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_digest_is_siphash128),
		cmocka_unit_test(test_random_against_model),
		cmocka_unit_test(test_grow_and_shrink),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
