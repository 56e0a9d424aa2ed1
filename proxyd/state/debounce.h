/*
 * Per-token debounce windows for /notify (docs/architecture.md "Proxy
 * state"; the reasoning and figures in docs/debounce.md). A window says
 * "this device was pushed less than window_ms ago": the first request
 * for a token opens one and is sent at once; a request inside an open
 * window is coalesced (proxyd then owes the device one trailing push at
 * the window's end: proxyd/promise/promise.h keeps that obligation, not this
 * module). A leading push that fails closes its window again
 * (debounce_cancel), and a trailing push that was sent starts the next
 * window (debounce_reopen), so a token gets at most one push per window
 * however hard it is hammered.
 *
 * Keyed by the decrypted token, but a window holds only a 16-byte keyed
 * SipHash-2-4-128 digest of it and its end: 24 bytes in a ring plus an
 * index (about 34 bytes per token at a million).
 *
 * Pure: time comes in as an argument (milliseconds, >= 0; a value smaller
 * than one seen before counts as that one). Never logs. Not thread-safe:
 * one thread (proxyd's loop) owns a debounce.
 */
#ifndef DEBOUNCE_H
#define DEBOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "siphash.h"

#define DEBOUNCE_DIGEST_LEN		SIPHASH_DIGEST_LEN
#define DEBOUNCE_KEY_LEN		SIPHASH_KEY_LEN
/* Positions are 32-bit, and the index has twice as many slots. */
#define DEBOUNCE_MAX_ENTRIES_LIMIT	((size_t)1 << 30)
#define DEBOUNCE_MAX_WINDOW_MS		((int64_t)86400 * 1000)

enum debounce_action {
	DEBOUNCE_SEND_NOW,	/* no open window: send now (one was opened) */
	DEBOUNCE_COALESCED,	/* inside an open window: owe a trailing push */
};

struct debounce_config {
	int64_t	 window_ms;		/* 1..DEBOUNCE_MAX_WINDOW_MS */
	/* Ring entries at once (open windows, and closed ones whose slot
	 * the ring has not reached yet), 1..DEBOUNCE_MAX_ENTRIES_LIMIT. A
	 * request for a new token while this many are held is not
	 * debounced: DEBOUNCE_SEND_NOW without a window, counted in
	 * table_full. */
	size_t	 max_entries;
	/* SipHash key: random per process, so that nobody can choose
	 * tokens that collide in the index. */
	uint8_t	 key[DEBOUNCE_KEY_LEN];
};

struct debounce_stats {
	size_t	 entries;		/* open windows */
	size_t	 ring;			/* ring entries, closed ones included */
	size_t	 memory_bytes;		/* all the structure holds */
	/* Counters since debounce_new. */
	uint64_t sent_now;		/* DEBOUNCE_SEND_NOW answers */
	uint64_t coalesced;		/* DEBOUNCE_COALESCED answers */
	uint64_t cancelled;		/* windows closed by debounce_cancel */
	uint64_t reopened;		/* windows started by debounce_reopen */
	uint64_t table_full;		/* no window: max_entries reached */
};

/* A new, empty debounce (caller frees with debounce_free), or NULL with
 * the reason in err if the config is out of range. Memory grows with the
 * number of windows (and shrinks again), up to max_entries. */
struct debounce *debounce_new(const struct debounce_config *,
	    char err[ERR_LEN]);
/* NULL is a no-op. */
void	debounce_free(struct debounce *);

/*
 * A push request for the token key[0..len) at now_ms. DEBOUNCE_SEND_NOW
 * when no window is open (a window ending at now_ms + window_ms is opened
 * for this request's push), DEBOUNCE_COALESCED inside an open window. A
 * window whose end is <= now_ms is closed, whether or not debounce_expire
 * has run. *end_out (may be NULL) gets the open window's end, or -1 when
 * none could be opened (table full). O(1) expected.
 */
enum debounce_action debounce_hit(struct debounce *, const void *key,
	    size_t len, int64_t now_ms, int64_t *end_out);
/* Close the token's window, if one is open: its push failed, so nothing
 * was sent in it. 1 closed, 0 none was open. */
int	debounce_cancel(struct debounce *, const void *key, size_t len);
/* A push for the token was just sent (a trailing one): its window starts
 * anew at now_ms, whether one was open or not. The new end, or -1 when
 * the table is full. */
int64_t	debounce_reopen(struct debounce *, const void *key, size_t len,
	    int64_t now_ms);
/* The end of the token's open window at now_ms, or -1 when none is. */
int64_t	debounce_end(struct debounce *, const void *key, size_t len,
	    int64_t now_ms);

/* Drop the ring entries whose end is <= now_ms, oldest first; returns
 * how many open windows that closed. O(1) per entry: every window has the
 * same length, so they end in the order they opened and sit in a FIFO. */
size_t	debounce_expire(struct debounce *, int64_t now_ms);
/* The end of the oldest ring entry (arm a timer for it and call
 * debounce_expire then), or -1 if the ring is empty. */
int64_t	debounce_next_deadline(const struct debounce *);

void	debounce_get_stats(const struct debounce *,
	    struct debounce_stats *out);

/* The digest windows are kept under: SipHash-2-4-128 of key[0..len)
 * under the config's key. */
void	debounce_digest(const struct debounce *, const void *key, size_t len,
	    uint8_t out[DEBOUNCE_DIGEST_LEN]);

#endif
