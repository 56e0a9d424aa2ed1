/*
 * Per-token debounce for /notify (docs/architecture.md "Proxy state"; design
 * and figures in docs/debounce.md). The first request for a token opens a
 * window of window_ms and is sent at once; requests inside the window are
 * coalesced into ONE trailing push at the window's end; that trailing push
 * opens the next window, so a token gets at most one push per window
 * however hard it is hammered, and a mail that arrives after a push is
 * still followed by one (at the latest one window later).
 *
 * Keyed by the decrypted token, but a window holds only a 16-byte keyed
 * SipHash-2-4-128 digest of it (32 bytes per window plus an index: about
 * 42 bytes per token at a million). A copy of the token is kept only while
 * a trailing push is pending, because the caller must know what to send;
 * those copies have their own byte budget.
 *
 * Pure: time comes in as an argument (milliseconds of a monotonic clock,
 * >= 0; a value smaller than one seen before counts as that one). Never
 * logs. Not thread-safe: one thread (proxyd's loop) owns a debounce.
 */
#ifndef DEBOUNCE_H
#define DEBOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define DEBOUNCE_DIGEST_LEN		16
#define DEBOUNCE_KEY_LEN		16
/* Positions are 32-bit, and the index has twice as many slots. */
#define DEBOUNCE_MAX_ENTRIES_LIMIT	((size_t)1 << 30)
#define DEBOUNCE_MAX_WINDOW_MS		((int64_t)86400 * 1000)

enum debounce_action {
	DEBOUNCE_SEND_NOW,	/* send this request's push now */
	DEBOUNCE_COALESCED,	/* covered by the window's trailing push */
};

/* A trailing push is due for the token whose digest is given; token is a
 * copy of it (borrowed for the call only: copy what you keep). May call
 * debounce_hit, not debounce_expire or debounce_free. */
typedef void debounce_fire_fn(const uint8_t digest[DEBOUNCE_DIGEST_LEN],
    const char *token, size_t token_len, void *arg);

struct debounce_config {
	int64_t	 window_ms;		/* 1..DEBOUNCE_MAX_WINDOW_MS */
	/* Windows open at once, 1..DEBOUNCE_MAX_ENTRIES_LIMIT. A request
	 * for a new token while this many are open is not debounced:
	 * DEBOUNCE_SEND_NOW, counted in table_full. */
	size_t	 max_entries;
	/* Bytes of token copies held for pending trailing pushes. A request
	 * that would need more is not coalesced: DEBOUNCE_SEND_NOW, counted
	 * in pending_full. */
	size_t	 max_pending_bytes;
	/* SipHash key: random per process (getrandom), so that nobody can
	 * choose tokens that collide in the index. */
	uint8_t	 key[DEBOUNCE_KEY_LEN];
};

struct debounce_stats {
	size_t	 entries;		/* open windows */
	size_t	 pending;		/* of which with a trailing push due */
	size_t	 pending_bytes;		/* token copies held for those */
	size_t	 memory_bytes;		/* all the structure holds */
	/* Counters since debounce_new. */
	uint64_t sent_now;		/* DEBOUNCE_SEND_NOW answers */
	uint64_t coalesced;		/* DEBOUNCE_COALESCED answers */
	uint64_t trailing;		/* fire() calls */
	uint64_t table_full;		/* sent now: max_entries reached */
	uint64_t pending_full;		/* sent now: pending budget spent */
};

/* A new, empty debounce (caller frees with debounce_free), or NULL with
 * the reason in err if the config is out of range. Memory grows with the
 * number of open windows (and shrinks again), up to max_entries. */
struct debounce *debounce_new(const struct debounce_config *,
	    char err[ERR_LEN]);
/* Frees everything, wiping the token copies; NULL is a no-op. Pending
 * trailing pushes are dropped: call debounce_expire first to send them. */
void	debounce_free(struct debounce *);

/*
 * A push request for the token key[0..len) at now_ms. DEBOUNCE_SEND_NOW
 * for the first request (it opens a window ending at now_ms + window_ms),
 * DEBOUNCE_COALESCED inside an open window (whose trailing push then
 * covers it). A window counts as open until debounce_expire closes it: a
 * request at or after its end that comes before that call is coalesced
 * into the trailing push that call then sends, so nothing is lost; call
 * debounce_expire(now_ms) first to close it instead. O(1) expected.
 */
enum debounce_action debounce_hit(struct debounce *, const void *key,
	    size_t len, int64_t now_ms);

/*
 * Close every window whose end is <= now_ms, oldest first. A window with
 * coalesced requests calls fire once (its trailing push, sent now) and
 * opens a new window from now_ms without pending requests; a window
 * without them just closes. Returns the number of fire calls. O(1) per
 * closed window: with one window length, windows end in the order they
 * opened, so they sit in a FIFO.
 */
size_t	debounce_expire(struct debounce *, int64_t now_ms,
	    debounce_fire_fn *fire, void *arg);

/* The end of the oldest open window (arm a timer for it and call
 * debounce_expire then), or -1 if none is open. */
int64_t	debounce_next_deadline(const struct debounce *);

void	debounce_get_stats(const struct debounce *,
	    struct debounce_stats *out);

/* The digest windows are kept under: SipHash-2-4 with 128-bit output of
 * key[0..len) under the config's key (bytes as in the reference code). */
void	debounce_digest(const struct debounce *, const void *key, size_t len,
	    uint8_t out[DEBOUNCE_DIGEST_LEN]);

#endif
