/*
 * The pushes proxyd owes: one item per device that got a 200 for a
 * /notify that no push sent after it has covered yet (a request coalesced
 * into a debounce window, or one whose trailing push failed and waits for
 * a retry). This is the container: a table by keyed token digest, a heap
 * by due time, byte and count bounds, and a journal of what changed since
 * the database last took it. The rules (when an item is due, what a
 * provider's answer does to it) are proxyd/promise/promise.c's; the database is
 * proxyd/promise/owed_store.c's.
 *
 * An item holds the decrypted token (to send it; wiped when freed) and,
 * until the database has it, the token as it arrived (encrypted: that is
 * what is stored, never the clear token). The key is SipHash-2-4-128 of
 * the decrypted token under a key kept in the database, so a device keeps
 * its row across restarts whatever ciphertext its relay sends.
 *
 * Pure (times come in as arguments, unix ms), never logs, one thread.
 */
#ifndef OWED_H
#define OWED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "siphash.h"

#define OWED_KEY_LEN	SIPHASH_DIGEST_LEN
/* Who asked for an owed push: a client as the rate limits count them
 * (proxyd/push/ratelimit.h, 16 bytes). Memory only, never stored. */
#define OWED_CLIENT_LEN	16

struct owed_item {
	uint8_t		 key[OWED_KEY_LEN];
	char		*token;		/* decrypted, NUL-terminated (secret) */
	size_t		 token_len;
	char		*input;		/* as it arrived; NULL once stored */
	size_t		 input_len;
	int64_t		 first_ms;	/* earliest request it covers */
	int64_t		 due_ms;	/* when it is sent next */
	uint32_t	 attempts;	/* failed sends since first_ms */
	bool		 sending;	/* a push for it is in flight */
	int64_t		 again_ms;	/* a request came while sending; 0 none */
	/* The client of the request that made it owed, whose share of the
	 * provider's rate limit it takes; none for one read back at start. */
	bool		 has_client;
	uint8_t		 client[OWED_CLIENT_LEN];

	/* owed.c's own */
	bool		 gone;		/* removed while sending */
	bool		 dirty;		/* in the journal */
	size_t		 heap_at;	/* SIZE_MAX: not waiting */
	struct owed_item *chain;	/* table bucket */
	struct owed_item *dirty_prev, *dirty_next;
};

struct owed_config {
	size_t	 max_items;		/* >= 1 */
	size_t	 max_bytes;		/* tokens, inputs and items */
	uint8_t	 key[SIPHASH_KEY_LEN];	/* the database's */
};

struct owed_stats {
	size_t	 items;
	size_t	 sending;
	size_t	 bytes;
	size_t	 journal;		/* changes not yet stored */
	uint64_t full;			/* owed_add refused: a bound reached */
};

struct owed	*owed_new(const struct owed_config *, char err[ERR_LEN]);
/* Frees every item (tokens wiped); NULL is a no-op. */
void		 owed_free(struct owed *);
void		 owed_key(const struct owed *, const char *token, size_t len,
		    uint8_t out[OWED_KEY_LEN]);
struct owed_item *owed_find(struct owed *, const uint8_t key[OWED_KEY_LEN]);

/* A new item, waiting until due_ms, in the journal; input may be NULL
 * (a row loaded from the database). NULL when a bound would be crossed
 * (counted in full). Strings are copied. The key must not be present. */
struct owed_item *owed_add(struct owed *, const uint8_t key[OWED_KEY_LEN],
		    const char *token, size_t token_len, const char *input,
		    size_t input_len, int64_t first_ms, int64_t due_ms);
/* The item's fields changed (due_ms, first_ms, attempts, again_ms): put
 * it back in order and in the journal. */
void		 owed_changed(struct owed *, struct owed_item *);
/* Marks the item sent-in-flight (out of the due order) or back. */
void		 owed_set_sending(struct owed *, struct owed_item *, bool);
/* Removes it, and its row at the next store. An item being sent is only
 * marked gone: owed_release frees it once its push has ended. */
void		 owed_remove(struct owed *, struct owed_item *);
/* The push of a gone item ended: free it. */
void		 owed_release(struct owed *, struct owed_item *);
/* Forget a stored row that has no item (it could not be loaded). */
void		 owed_forget(struct owed *, const uint8_t key[OWED_KEY_LEN]);

/* The waiting item due first, or NULL. */
struct owed_item *owed_first_due(const struct owed *);

/* The journal: every change since the last owed_journal_done, deletes
 * first, each handed to put (an item to insert or update) or del (a key
 * whose row goes). Stops at the first callback that fails (-1). Call
 * owed_journal_done once the database committed them. */
typedef int	 owed_put_fn(void *arg, const struct owed_item *);
typedef int	 owed_del_fn(void *arg, const uint8_t key[OWED_KEY_LEN]);
int		 owed_journal_apply(struct owed *, owed_put_fn *, owed_del_fn *,
		    void *arg);
void		 owed_journal_done(struct owed *);
bool		 owed_journal_empty(const struct owed *);

void		 owed_get_stats(const struct owed *, struct owed_stats *);

#endif
