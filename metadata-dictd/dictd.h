/*
 * metadata-dictd: the relay's Dovecot dict server.
 *
 * Map of the daemon (OpenSMTPD's smtpd.h habit: types first, then the
 * prototypes of each file under its name). The dict server is a chain,
 * each file calling only the ones below it:
 *
 *   dict_server.c  listener (paused when out of file descriptors or at
 *                  --max-connections); owns the connections; the
 *                  commands' context (struct dict_cmd_ctx) and its
 *                  hooks; the end of each loop pass
 *                  (read transaction, group commit, freeing closed
 *                  connections) and the commit retry timer; token sweep;
 *                  metrics listener
 *   dict_conn.c    one client connection: socket, bounded buffers,
 *                  lines (each with a deadline once started), reply
 *                  order (an iteration's pages as its output drains);
 *                  tells its owner only that it is closing (callback)
 *   dict_cmd.c     the command table (letter, fields, handler, flags)
 *                  and its handlers; a connection's session (handshake,
 *                  transactions, replies); reaches the server only
 *                  through the context's hooks
 *   dict_txn.c     a transaction's changes; a connection's open ones; the
 *                  bytes they may hold (struct dict_txn_budget)
 *   dict_commit.c  the group commit: a pass's commits in one SQLite
 *                  transaction, answered after COMMIT, retried later while
 *                  another process holds the write lock; notifierd's
 *                  wake-up
 *   dict_store.c   SQLite: tokens and metadata keys (at most so many
 *                  per user), queue; listings page by page (knows no
 *                  protocol)
 *
 * and beside it:
 *
 *   dict_proto.c   a line's fields as the table describes them, into a
 *                  struct dict_cmd; replies (pure: bytes in, bytes out)
 *   dict_key.c     what a dict key means: device token, new-mail event,
 *                  private or shared attribute
 *   dict_vendor.c  the server-level /shared/vendor/deltachat/ entries
 *                  (values from flags, the app versions file, TURN)
 *   dict_turn.c    TURN credentials from the TURN helper's Unix socket
 *   dict_stats.c   the counters, registered in one place
 *   dict_array.c   the arrays that grow (doubled when full)
 *   main.c         options, set-up, loop, tear-down
 *   chatmaild_parse.c   chatmaild's metadata.json and queue files (pure)
 *   chatmaild_import.c  --import-chatmaild: chatmaild's tree into the db
 *
 * The wire rules cited as "protocol doc §n" are in this repository's
 * docs/dovecot-dict-protocol.md, verified against Dovecot 2.3.19.
 */
#ifndef DICTD_H
#define DICTD_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "db.h"
#include "err.h"

/* Dovecot's own dict server refuses longer input lines (protocol doc §1).
 * The longest line Dovecot sends a chatmail relay is a device token's
 * SETMETADATA, ~1 KB; other METADATA values are the clients' and Dovecot
 * passes them through whole, so the bound is Dovecot's own, not ours. */
#define DICT_LINE_MAX_BYTES		(64 * 1024)
/* A connection's input buffer never holds more than a longest line and
 * its LF: it reads no further than that (dict_conn.c). */
#define DICT_CONN_IN_MAX_BYTES		(DICT_LINE_MAX_BYTES + 1)
/* An idle connection keeps buffers up to this size; larger ones (left by
 * a long line or a big answer) are freed once empty. */
#define DICT_CONN_KEEP_BYTES		4096
/* Connections held at once (--max-connections). Dovecot keeps one dict
 * connection per busy imap or lmtp process (protocol doc §5), and its
 * processes wait in the listen backlog (4096) while we are at the bound.
 * Each costs at most DICT_CONN_IN_MAX_BYTES of input,
 * DICT_CONN_OUTPUT_MAX_BYTES plus one answer of output, and its share of
 * the transaction budget; a Dovecot connection 2.7 KiB
 * (docs/metadata-dictd.md, "Bounds"). */
#define DICT_MAX_CONNECTIONS_DEFAULT	4096
/* Metadata keys per user (--max-keys-per-user): chatmail core stores
 * /private/devicetoken (kept in `tokens`, not counted) and a few others;
 * 256 leaves two orders of magnitude. shared/ keys have no user in
 * Dovecot's dict: they are counted per mailbox (dict_key_cap_prefix). */
#define DICT_MAX_KEYS_PER_USER_DEFAULT	256
/* An iteration is answered in pages of about this many bytes of rows,
 * the next once the connection's output has drained (dict_cmd.c), so a
 * listing holds one page in memory, not every key of its path. */
#define DICT_ITER_PAGE_BYTES		(64 * 1024)
/* ... and at most this many rows read from SQLite per page, matching or
 * not, so a page is a short slice of work for the loop. */
#define DICT_ITER_PAGE_ROWS		1024
/* Device tokens: openpgp: wrapped ones are ~700 bytes; 8 KiB is ample. */
#define DICT_TOKEN_MAX_BYTES		8192
/* Bounds on one dict transaction held in memory until its commit. */
#define DICT_TXN_MAX_CHANGES		10000
/* Open transactions per connection (Dovecot uses one or two). */
#define DICT_CONN_MAX_TXNS		64
/* Bytes the open transactions of one connection may hold
 * (--max-txn-bytes-per-conn), and those of all connections together
 * (--max-txn-bytes). A SETMETADATA of a device token is ~1 KB and Dovecot
 * opens one or two transactions per connection (protocol doc §5); a
 * mailbox DELETE unsets each of its keys, ~100 bytes apiece. 1 MiB is a
 * thousand tokens' worth; 64 MiB lets 64 connections fill theirs, or
 * 60,000 ordinary ones commit at once. Past either bound the transaction
 * is emptied and its commit fails (F, protocol doc §7). */
#define DICT_TXN_CONN_MAX_BYTES_DEFAULT	(1024 * 1024)
#define DICT_TXN_TOTAL_MAX_BYTES_DEFAULT (64 * 1024 * 1024)
/* Device tokens kept per user (--max-tokens-per-user): a user with more
 * devices than this is unusual; each token is one push job per mail and
 * ~1 KB of every lookup's answer. The least recently set one goes. */
#define DICT_MAX_TOKENS_PER_USER_DEFAULT 32
/* How long a commit waits for SQLite's write lock while another process
 * (notifierd, an import, an operator's sqlite3) holds it (--lock-wait),
 * retried from the loop; then it fails. The old busy timeout's 5 s, under
 * Dovecot's 30 s commit timeout (protocol doc §5). */
#define DICT_LOCK_WAIT_MS_DEFAULT	5000
/* The loop's own SQLite busy timeout: longer waits are the retry timer's
 * (dict_commit.c), so a held lock never stalls the other connections. */
#define DICT_LOOP_BUSY_TIMEOUT_MS	5
/* Stop reading a peer that does not read its replies (Dovecot reads each
 * before it sends more than a few commands), and produce no further page
 * of an iteration until its output has drained below this. */
#define DICT_CONN_OUTPUT_MAX_BYTES	(64 * 1024)
/* How long a line may take from its first byte to its LF
 * (--line-timeout): past it the connection is closed. Not an idle
 * timeout: Dovecot keeps dict connections open between commands, but
 * writes each command whole (one line, at most ~1 KB from a chatmail
 * client, 64 KiB in all), so a line it started is finished at once. The
 * clock runs only while the connection reads (not while a command of its
 * own waits, nor while its peer leaves our answers unread). 30 s is
 * Dovecot's own wait for an answer (protocol doc §5): a line slower than
 * that belongs to nobody waiting. */
#define DICT_LINE_TIMEOUT_MS_DEFAULT	30000
/* Log lines a peer can cause, per call site (common/log_limit.h): a
 * burst of 20, then 5 a second; the rest are counted in
 * log_lines_suppressed_total and the next line says how many. */
#define DICT_LOG_LIMIT			LOG_LIMIT(5, 20)
/* chatmail-turn answers "<user>:<password>\n", about 60 bytes. */
#define DICT_TURN_REPLY_MAX_BYTES	512
/* The app versions index chatmaild ships is ~400 bytes. */
#define DICT_APPVERSIONS_MAX_BYTES	(64 * 1024)

/* Iterate flags (protocol doc §3). */
#define DICT_ITER_RECURSE	0x01
#define DICT_ITER_SORT_BY_KEY	0x02
#define DICT_ITER_SORT_BY_VALUE	0x04
#define DICT_ITER_NO_VALUE	0x08
#define DICT_ITER_EXACT_KEY	0x10
#define DICT_ITER_ASYNC		0x20

/* The command letters (protocol doc §3); what each carries and does is
 * the command table's (dict_cmd.c). */
enum dict_cmd_kind {
	DICT_CMD_HELLO = 'H',
	DICT_CMD_LOOKUP = 'L',
	DICT_CMD_ITERATE = 'I',
	DICT_CMD_BEGIN = 'B',
	DICT_CMD_SET = 'S',
	DICT_CMD_UNSET = 'U',
	DICT_CMD_ATOMIC_INC = 'A',
	DICT_CMD_COMMIT = 'C',
	DICT_CMD_COMMIT_ASYNC = 'D',
	DICT_CMD_ROLLBACK = 'R',
	DICT_CMD_TIMESTAMP = 'T',
	DICT_CMD_HIDE_LOG_VALUES = 'V',	/* protocol v4 (Dovecot 2.4) */
};
/* Command letters are ASCII capitals; per-letter arrays have this many
 * slots. */
#define DICT_CMD_LETTERS	128

/* The wire fields of the commands, each parsed into its member of
 * struct dict_cmd: unsigned decimal, signed decimal, text (no NUL) or
 * bytes (any, after unescaping). */
enum dict_field {
	DICT_FIELD_ID,		/* unsigned: id */
	DICT_FIELD_KEY,		/* text: key (I: the path) */
	DICT_FIELD_USER,	/* text: user */
	DICT_FIELD_VALUE,	/* bytes: value, value_len */
	DICT_FIELD_DIFF,	/* signed: diff */
	DICT_FIELD_FLAGS,	/* unsigned: flags */
	DICT_FIELD_MAX_ROWS,	/* unsigned: max_rows */
	DICT_FIELD_MAJOR,	/* unsigned: major */
	DICT_FIELD_MINOR,	/* unsigned: minor */
	DICT_FIELD_VALUE_TYPE,	/* unsigned: value_type */
	DICT_FIELD_DICT_NAME,	/* text: dict_name */
	DICT_FIELD_SECS,	/* signed: secs */
	DICT_FIELD_NSECS,	/* signed: nsecs */
	DICT_FIELD_EXPIRE_SECS,	/* signed: expire_secs */
};
/* The most fields a command has: the handshake's five. */
#define DICT_CMD_MAX_FIELDS	5

struct dict_cmd_def;
struct dict_cmd_iter;

/* One parsed command line. Strings are owned by the struct (freed by
 * dict_cmd_clear) and NUL-terminated; value may hold NUL bytes, so it has
 * its length. Fields a command does not carry are NULL/0. */
struct dict_cmd {
	enum dict_cmd_kind	 kind;
	const struct dict_cmd_def *def;		/* its row of the table */
	unsigned int		 id;		/* transaction id */
	char			*key;		/* L S U A; I: the path */
	char			*user;		/* L I B; H: the (empty) user */
	char			*value;		/* S */
	size_t			 value_len;
	int64_t			 diff;		/* A */
	unsigned int		 flags;		/* I */
	unsigned int		 max_rows;	/* I */
	unsigned int		 major, minor;	/* H */
	unsigned int		 value_type;	/* H */
	char			*dict_name;	/* H */
	int64_t			 secs, nsecs;	/* T */
	int64_t			 expire_secs;	/* B, protocol v4 */
};

enum dict_key_kind {
	DICT_KEY_INVALID,
	DICT_KEY_DEVICETOKEN,	/* priv/<guid>/devicetoken */
	DICT_KEY_MESSAGENEW,	/* priv/<guid>/messagenew */
	DICT_KEY_PRIVATE,	/* any other priv/... */
	DICT_KEY_SHARED,	/* shared/... */
	/* shared/<guid>/vendor/vendor.dovecot/pvt/server/vendor/deltachat/
	 * <name>: a server-level entry (GETMETADATA "" /shared/vendor/
	 * deltachat/<name>, protocol doc §6), answered by dict_vendor.c. */
	DICT_KEY_DELTACHAT,
};

struct dict_key {
	enum dict_key_kind	 kind;
	/* DEVICETOKEN, MESSAGENEW: the mailbox GUID inside the key
	 * (borrowed from the key string, not NUL-terminated). */
	const char		*guid;
	size_t			 guid_len;
	/* DELTACHAT: the entry name after .../vendor/deltachat/ (borrowed,
	 * NUL-terminated, may be empty). */
	const char		*name;
};

/* One row of an iteration: key and value are owned by the row list. */
struct dict_row {
	char	*key;
	char	*value;
	size_t	 value_len;
};

struct dict_rows {
	struct dict_row	*rows;
	size_t		 n;
	size_t		 cap;
};

/* Outcome of one dict transaction applied inside a group commit. */
enum dict_commit_result {
	DICT_COMMIT_OK,
	DICT_COMMIT_NOT_FOUND,	/* an atomic-inc found no value */
	DICT_COMMIT_FAILED,
};

/* A change inside a dict transaction, kept until its commit. */
enum dict_change_kind {
	DICT_CHANGE_SET,
	DICT_CHANGE_UNSET,
	DICT_CHANGE_INC,
};

struct dict_change {
	enum dict_change_kind	 kind;
	char			*key;
	char			*value;		/* SET */
	size_t			 value_len;
	int64_t			 diff;		/* INC */
};

struct dict_txn {
	unsigned int		 id;
	unsigned long long	 conn_id;	/* its connection's, for logs */
	char			*user;
	struct dict_change	*changes;
	size_t			 nchanges;
	size_t			 cap;
	size_t			 bytes;		/* dict_txn_change_bytes */
	/* Set when the transaction can no longer succeed (too big); the
	 * commit then fails with this reason. */
	char			*failed;
	bool			 async;		/* committed with D */
	/* The set its bytes are charged to until it is freed (also while
	 * its commit waits); NULL for one made by dict_txn_new. */
	struct dict_txn_set	*set;
	LIST_ENTRY(dict_txn)	 link;		/* while open (dict_txn_set) */
};

struct metric;

/* What the transactions of all connections may hold in memory: the
 * server's, shared by every connection's set (dict_txn.c). */
struct dict_txn_budget {
	size_t		 conn_max;	/* per connection, open or committing */
	size_t		 total_max;	/* all connections */
	size_t		 total;		/* held now */
	struct metric	*held;		/* gauge of total; NULL: none */
};

/* The transactions a connection has open, keyed by id (dict_txn.c). */
struct dict_txn_set {
	LIST_HEAD(, dict_txn)	 open;
	unsigned int		 n;
	size_t			 bytes;		/* charged to it, see dict_txn */
	struct dict_txn_budget	*budget;	/* NULL: no byte bounds */
};

/* What dict_txn_add did with a change. */
enum dict_txn_bound {
	DICT_TXN_WITHIN,	/* recorded, or the transaction had failed */
	DICT_TXN_OVER_CHANGES,	/* DICT_TXN_MAX_CHANGES: now failed */
	DICT_TXN_OVER_CONN,	/* its connection's bytes: now failed */
	DICT_TXN_OVER_TOTAL,	/* every connection's bytes: now failed */
};
#define DICT_TXN_BOUNDS		4

struct dict_store;
struct dict_conn;
struct dict_server;
struct dict_turn_req;
struct event_base;
struct metrics;

/* The daemon's counters (dict_stats.c registers them on the server's
 * registry); each layer counts its own events. */
struct dict_stats {
	struct metric	*connections;
	struct metric	*connections_total;
	/* dictd_commands{command=...}, by letter (the table's label). */
	struct metric	*commands[DICT_CMD_LETTERS];
	struct metric	*commit_ok, *commit_not_found, *commit_failed;
	struct metric	*group_commits;
	struct metric	*token_sets;
	struct metric	*tokens;
	struct metric	*queue_rows;
	struct metric	*err_line_too_long, *err_parse, *err_protocol;
	struct metric	*err_line_timeout; /* past --line-timeout */
	struct metric	*fail_store, *fail_txn;
	struct metric	*fail_turn, *fail_appversions;
	struct metric	*fail_busy;	/* commits failed past --lock-wait */
	/* Bounds hit (each has its flag, docs/metadata-dictd.md). */
	struct metric	*accept_pauses;	/* out of file descriptors */
	struct metric	*conn_limit_pauses; /* at --max-connections */
	/* dictd_transactions_too_large{limit=...}, by enum dict_txn_bound
	 * (DICT_TXN_WITHIN's slot unused). */
	struct metric	*txn_too_large[DICT_TXN_BOUNDS];
	struct metric	*txn_bytes;	/* gauge: held in transactions */
	struct metric	*tokens_evicted; /* past --max-tokens-per-user */
	struct metric	*keys_refused;	/* past --max-keys-per-user */
	struct metric	*write_busy;	/* group commits that found the lock
					 * held by another process */
	struct metric	*log_suppressed; /* log_limit.h's lines dropped */
};

/* Unix milliseconds now: clock_wall_ms, or a test's fake clock. */
typedef int64_t dict_clock_fn(void);

/* dict_array.c */
/* Room for element n of the array v, which has room for *cap elements of
 * elem_size bytes (n <= *cap): v itself while n < *cap, else v
 * reallocated to twice the room (first_cap the first time) with *cap
 * updated. The caller owns v before and after; aborts on overflow or
 * out of memory, like xrealloc. */
void	*dict_array_grow(void *v, size_t n, size_t *cap, size_t elem_size,
	    size_t first_cap);

/* dict_proto.c */
/* The fields of line (len bytes, no LF, its first byte def's letter) as
 * def's row of the command table describes them: 0 and *cmd_out (clear
 * it with dict_cmd_clear), or -1 with the reason in err. Pure: no I/O,
 * no logging. dict_cmd_parse finds def for a whole line. */
int	dict_proto_parse(const struct dict_cmd_def *def, const char *line,
	    size_t len, struct dict_cmd *cmd_out, char err[ERR_LEN]);
void	dict_cmd_clear(struct dict_cmd *);
bool	dict_cmd_equal(const struct dict_cmd *, const struct dict_cmd *);
/* The wire form of cmd (as parsed: cmd->def set), LF-terminated (caller
 * frees). */
char	*dict_proto_format(const struct dict_cmd *, size_t *len_out);
/* Replies (protocol doc §4), each appended with its LF. */
void	dict_proto_reply_value(struct buf *, const char *value, size_t len);
void	dict_proto_reply_not_found(struct buf *);
void	dict_proto_reply_fail(struct buf *, const char *reason);
void	dict_proto_reply_row(struct buf *, const char *key, const char *value,
	    size_t len);
void	dict_proto_reply_iter_end(struct buf *);
void	dict_proto_reply_commit(struct buf *, unsigned int id, bool async,
	    enum dict_commit_result, const char *reason);

/* dict_key.c */
/* Classifies a dict key (NUL-terminated). */
void	dict_key_parse(const char *key, struct dict_key *out);
/* The keys counted together with key against --max-keys-per-user, as
 * the length of the prefix they share under their owner: "priv/" (all of
 * the user's private keys), "shared/<mailbox>/" (shared/ keys have no
 * user in Dovecot's dict, so a mailbox's are counted together), or
 * "shared/" for a shared key without a mailbox part. 0 for other keys. */
size_t	dict_key_cap_prefix(const char *key);
/* The user a key is stored under: the transaction's user for priv/,
 * "" for shared/ (as in Dovecot's dict API). Borrowed. */
const char *dict_key_owner(const struct dict_key *, const char *user);
/* 0 if token is acceptable as a device token, else -1 and err. */
int	dict_key_token_check(const char *token, size_t len, char err[ERR_LEN]);

/* dict_store.c */
/* Opens (creating) the relay database with SQLite's start-up busy
 * timeout and DICT_MAX_TOKENS_PER_USER_DEFAULT; NULL and err. */
struct dict_store *dict_store_open(const char *path, enum db_sync,
	    int64_t token_ttl_ms, char err[ERR_LEN]);
void	dict_store_close(struct dict_store *);
/* Tokens kept per user (at least 1): setting one more evicts the least
 * recently set, in the same transaction. */
void	dict_store_set_max_tokens(struct dict_store *, unsigned int max);
/* Metadata keys per user (at least 1, counted as dict_key_cap_prefix
 * says; DICT_MAX_KEYS_PER_USER_DEFAULT until set): setting a new key past
 * it fails its transaction; changing a key that exists never does. */
void	dict_store_set_max_keys(struct dict_store *, unsigned int max);
/* How long one statement waits for a lock another connection holds
 * (SQLite's busy timeout); the server shortens it to
 * DICT_LOOP_BUSY_TIMEOUT_MS, since it retries from its loop instead. */
void	dict_store_set_busy_timeout(struct dict_store *, int ms);
/* After a -1 from dict_store_batch_begin or dict_store_sweep: true when
 * the cause was another connection holding SQLite's write lock past the
 * busy timeout (nothing was begun; try again later), false for a real
 * failure. */
bool	dict_store_locked(const struct dict_store *);
/* 1 and the value appended to value_out if found, 0 if not, -1 and err. */
int	dict_store_lookup(struct dict_store *, const char *user,
	    const char *key, int64_t now_ms, struct buf *value_out,
	    char err[ERR_LEN]);
/* One page of the rows under path (protocol doc §3 flags), sorted by
 * key: those after the key after (NULL: from the start), about
 * DICT_ITER_PAGE_BYTES of them. 0, *rows_out (the caller's: clear it)
 * and *next_out, the after of the next page (the caller frees it) or NULL
 * when this page was the last; -1 and err. Pages see the store as it is
 * when each is read: a key set or unset meanwhile may or may not be
 * listed, the others are listed once, in order. */
int	dict_store_iterate(struct dict_store *, const char *user,
	    const char *path, unsigned int flags, const char *after,
	    int64_t now_ms, struct dict_rows *rows_out, char **next_out,
	    char err[ERR_LEN]);
void	dict_rows_clear(struct dict_rows *);
/* Lookups and iterations open a read transaction that lasts until this
 * is called (once per loop pass, see dict_store.c). True if one was open. */
bool	dict_store_read_end(struct dict_store *);
/* What a dict transaction did to the store, added up over a batch. */
struct dict_apply_counts {
	uint64_t	queued;		/* queue rows inserted */
	uint64_t	tokens_set;	/* device tokens set or refreshed */
	uint64_t	tokens_evicted;	/* past the per-user maximum */
	uint64_t	keys_refused;	/* new keys past --max-keys-per-user */
};
/* Group commit: begin, then apply each dict transaction (each inside its
 * own savepoint), then commit. batch_begin is -1 and err when it could
 * not begin (dict_store_locked tells whether another process holds the
 * write lock). apply returns the transaction's result and fills err for a
 * failure; a transaction that did not fail adds its counts to *counts,
 * one that failed only its keys_refused.
 * batch_commit is -1 with err if SQLite could not commit: then every
 * transaction of the batch failed. */
int	dict_store_batch_begin(struct dict_store *, char err[ERR_LEN]);
enum dict_commit_result dict_store_apply(struct dict_store *,
	    const struct dict_txn *, int64_t now_ms,
	    struct dict_apply_counts *counts, char err[ERR_LEN]);
int	dict_store_batch_commit(struct dict_store *, char err[ERR_LEN]);
void	dict_store_batch_rollback(struct dict_store *);
/* Delete up to limit expired tokens; returns the count or -1 and err. */
int	dict_store_sweep(struct dict_store *, int64_t now_ms, int limit,
	    char err[ERR_LEN]);
/* Number of stored tokens (all, expired or not), or -1 and err. */
int64_t	dict_store_count_tokens(struct dict_store *, char err[ERR_LEN]);
/* Imports of another server's state (chatmaild_import.c), each inside
 * dict_store_batch_begin ... dict_store_batch_commit. */
enum dict_import_result {
	DICT_IMPORT_ADDED,		/* a new row */
	DICT_IMPORT_REFRESHED,		/* present, moved forward in time */
	DICT_IMPORT_PRESENT,		/* present and left as it was */
};
/* Adds user's token with updated_at_ms and no mailbox ('': it answers on
 * any mailbox until the device sets it again through Dovecot), unless the
 * user has it already. A present token's updated_at moves forward to
 * updated_at_ms when refresh is true, never back. 0 and *result_out, or
 * -1 and err (a token failing dict_key_token_check among the reasons). */
int	dict_store_token_import(struct dict_store *, const char *user,
	    const char *token, size_t len, int64_t updated_at_ms, bool refresh,
	    enum dict_import_result *result_out, char err[ERR_LEN]);
enum dict_import_job_result {
	DICT_IMPORT_JOB_QUEUED,
	DICT_IMPORT_JOB_COALESCED,	/* a job for the token still waits */
	DICT_IMPORT_JOB_NO_TOKEN,	/* user has no such valid token */
};
/* One queue row for user's token, created at created_at_ms and due at
 * now_ms, unless a row for that token still waits unsent: the coalescing
 * new mail gets, which also makes a second import add nothing. 0 and
 * *result_out, or -1 and err. */
int	dict_store_queue_import(struct dict_store *, const char *user,
	    const char *token, size_t len, int64_t created_at_ms,
	    int64_t now_ms, enum dict_import_job_result *result_out,
	    char err[ERR_LEN]);

/* dict_vendor.c */
struct dict_vendor;
/* Where the server-level entries come from; strings are borrowed for
 * the life of the dict_vendor. NULL (0 for the number) leaves an entry
 * unanswered (NIL). */
struct dict_vendor_config {
	const char	*iroh_relay;		/* irohrelay */
	uint64_t	 max_smtp_recipients;	/* maxsmtprecipients */
	const char	*appversions_path;	/* appversions */
	const char	*turn_host;		/* turn */
	unsigned int	 turn_port;
	const char	*turn_socket;		/* the TURN helper's */
	int64_t		 turn_timeout_ms;
};
enum dict_vendor_answer {
	DICT_VENDOR_NONE,	/* NIL */
	DICT_VENDOR_VALUE,	/* the value was appended to out */
	DICT_VENDOR_TURN,	/* fetch credentials (dict_turn_fetch) */
};
/* 0 if the values are usable, else -1 and err naming the flag. */
int	dict_vendor_config_check(const struct dict_vendor_config *,
	    char err[ERR_LEN]);
struct dict_vendor *dict_vendor_new(const struct dict_vendor_config *);
void	dict_vendor_free(struct dict_vendor *);
/* The answer to a lookup of the entry name (the part after
 * .../vendor/deltachat/). With DICT_VENDOR_NONE, err is filled when a
 * configured source failed in a way not reported before (the caller
 * logs it); it is left alone otherwise. Loop thread only. */
enum dict_vendor_answer dict_vendor_lookup(struct dict_vendor *,
	    const char *name, struct buf *out, char err[ERR_LEN]);
const char *dict_vendor_turn_socket(const struct dict_vendor *);
int64_t	dict_vendor_turn_timeout_ms(const struct dict_vendor *);
/* The turn entry's value for credentials cred (len bytes). */
void	dict_vendor_turn_value(const struct dict_vendor *, const char *cred,
	    size_t len, struct buf *out);
/* Compact one-line JSON (caller frees) of the JSON object in data; NULL
 * and err when data is not one. */
char	*dict_vendor_appversions_compact(const char *data, size_t len,
	    char err[ERR_LEN]);

/* dict_turn.c */
struct dict_turn_req;
/* Called once per request: cred (len bytes, borrowed for the call) and
 * err NULL, or cred NULL and the reason in err. The request is freed when
 * the callback returns; the callback must not cancel it. */
typedef void dict_turn_cb(void *arg, const char *cred, size_t len,
	    const char *err);
/* Starts fetching TURN credentials from the helper's stream socket; cb
 * runs from the loop within timeout_ms. NULL and err when the connect
 * fails at once (socket absent, helper not listening). */
struct dict_turn_req *dict_turn_fetch(struct event_base *,
	    const char *socket_path, int64_t timeout_ms, dict_turn_cb *cb,
	    void *arg, char err[ERR_LEN]);
/* Drops a pending request without calling its callback. NULL is a no-op. */
void	dict_turn_cancel(struct dict_turn_req *);
/* The helper's answer so far (len bytes; eof when it closed): 1 and
 * *cred_len_out (the line without its newline) when complete and valid,
 * 0 when more is needed, -1 and err when it cannot become valid. */
int	dict_turn_parse(const char *data, size_t len, bool eof,
	    size_t *cred_len_out, char err[ERR_LEN]);

/* dict_txn.c */
/* A transaction of user (copied) with no change yet; the caller owns it
 * (dict_txn_free, which takes NULL). */
struct dict_txn *dict_txn_new(unsigned int id, const char *user);
void	dict_txn_free(struct dict_txn *);
/* The bytes a change of key and value_len bytes is charged (its copies
 * and its slot). */
size_t	dict_txn_change_bytes(const char *key, size_t value_len);
/* Records one change (key and value copied), charged to the
 * transaction's set and its budget. Past DICT_TXN_MAX_CHANGES or either
 * byte bound of the budget the transaction is marked failed instead, its
 * changes freed at once, and keeps no further change: its commit then
 * fails with the reason. Returns which bound was hit, once, when it was;
 * DICT_TXN_WITHIN otherwise (never logs: the caller does). */
enum dict_txn_bound dict_txn_add(struct dict_txn *, enum dict_change_kind,
	    const char *key, const char *value, size_t value_len, int64_t diff);
/* An empty set whose transactions are charged to budget (borrowed for
 * the set's life; NULL: bounded by DICT_TXN_MAX_CHANGES only). */
void	dict_txn_set_init(struct dict_txn_set *, struct dict_txn_budget *);
/* Frees every open transaction: they die with their connection, never
 * committed (protocol doc §5). */
void	dict_txn_set_clear(struct dict_txn_set *);
/* The open transaction id, borrowed (owned by the set), or NULL. */
struct dict_txn *dict_txn_find(struct dict_txn_set *, unsigned int id);
/* Opens transaction id for user in the set, which owns it: the new
 * transaction, or NULL and err when id is open already or the set holds
 * DICT_CONN_MAX_TXNS. */
struct dict_txn *dict_txn_begin(struct dict_txn_set *, unsigned int id,
	    const char *user, char err[ERR_LEN]);
/* Removes transaction id from the set and hands it to the caller, or
 * NULL when it is not open. */
struct dict_txn *dict_txn_take(struct dict_txn_set *, unsigned int id);

/* dict_stats.c */
/* Registers every counter of st on m, which owns them (metrics_free). */
void	dict_stats_register(struct dict_stats *st, struct metrics *m);

/* dict_commit.c: the group commit */
struct dict_commit;
/* The outcome of txn, handed back to its owner (who frees it); reason
 * is set for DICT_COMMIT_FAILED, borrowed for the call. */
typedef void dict_commit_done_fn(void *arg, struct dict_txn *txn,
	    enum dict_commit_result, const char *reason);
/* The group commit on store (borrowed), counting in st (borrowed); with
 * notify_socket (notifierd's datagram socket, NULL for none) it sends one
 * datagram after each batch that queued jobs. A transaction waits at most
 * lock_wait_ms for SQLite's write lock held by another process. NULL and
 * err when that socket's address is unusable. */
struct dict_commit *dict_commit_new(struct dict_store *,
	    const char *notify_socket, int64_t lock_wait_ms,
	    struct dict_stats *st, char err[ERR_LEN]);
/* Frees gc; transactions still queued are freed, their done never
 * called (flush first: dict_server_shutdown does). NULL is a no-op. */
void	dict_commit_free(struct dict_commit *gc);
/* Queues txn (taken) for the next dict_commit_flush, which calls
 * done(arg, txn, ...) with the outcome and hands txn back. Never calls
 * done itself. */
void	dict_commit_enqueue(struct dict_commit *gc, struct dict_txn *txn,
	    dict_commit_done_fn *done, void *arg);
/* Transactions waiting for the next flush. */
size_t	dict_commit_pending(const struct dict_commit *gc);
/* Applies every queued transaction in one SQLite transaction (each in a
 * savepoint of its own, so a bad one fails alone), commits, then calls
 * each done in queue order: nothing is answered before COMMIT returned.
 * Transactions queued by those callbacks wait for the next flush.
 * now_ms is the time stored with tokens and jobs; mono_ms a monotonic
 * clock for the lock wait. Returns 0 when the queue was flushed (or
 * empty). When another process holds the write lock, nothing is applied
 * and the queue is kept, except the transactions that have waited
 * lock_wait_ms since their first flush, which are answered with failure;
 * the return value is then the ms to wait before flushing again (a
 * back-off that grows while the lock stays held). */
int64_t	dict_commit_flush(struct dict_commit *gc, int64_t now_ms,
	    int64_t mono_ms);

/* dict_cmd.c */
/* A command's work that outlives the call (dict_cmd_ctx.commit's done, a
 * TURN lookup's answer) calls this when the reply it owes is in the
 * session's reply buffer: from the loop, never from inside dict_cmd_run. */
typedef void dict_cmd_done_fn(void *arg);
/* Hooks the commands reach the server's loop pass through (the server
 * sets them; tests set their own). */
typedef void dict_cmd_commit_fn(void *arg, struct dict_txn *txn,
	    dict_commit_done_fn *done, void *done_arg);
typedef void dict_cmd_pass_fn(void *arg);

/* What every command works with: made once by the server, borrowed by
 * every connection and command for the server's life. A command reaches
 * the store, the server-level entries and the counters here, and the
 * server's loop pass only through the two hooks. */
struct dict_cmd_ctx {
	struct event_base	*base;		/* TURN lookups run on it */
	struct dict_store	*store;
	struct dict_vendor	*vendor;	/* server-level entries */
	struct dict_stats	*stats;
	/* What open transactions may hold (NULL: changes bounded only). */
	struct dict_txn_budget	*txn_budget;
	dict_clock_fn		*wall_ms;	/* token ages, commit times */
	/* The group commit: takes txn; done(done_arg, ...) hands it back
	 * with its outcome after COMMIT, later in the loop, never from
	 * inside the call. */
	dict_cmd_commit_fn	*commit;
	/* A lookup or iteration opened the store's read transaction: end
	 * it (dict_store_read_end) once this loop pass's I/O is done. */
	dict_cmd_pass_fn	*read_done;
	void			*hook_arg;	/* for commit and read_done */
	/* The connections' (dict_conn.c): how long a line may take from
	 * its first byte to its LF (--line-timeout); 0: no deadline. */
	int64_t			 line_timeout_ms;
};

/* What the commands keep for one connection (Dovecot's
 * dict_connection): its handshake, its open transactions, the replies
 * written and the command that waits. Embedded in the connection, which
 * sets it up with dict_cmd_session_init and frees it with _clear. */
struct dict_cmd_session {
	const struct dict_cmd_ctx *ctx;		/* borrowed */
	unsigned long long	 conn_id;	/* in log lines */
	bool			 hello;
	struct dict_txn_set	 txns;
	struct buf		 reply;		/* replies not yet taken */
	/* What waits: a C for the group commit, an L for the TURN helper;
	 * done(done_arg) when its answer is in reply. */
	bool			 committing;
	struct dict_turn_req	*turn;
	dict_cmd_done_fn	*done;
	void			*done_arg;
	/* An iteration answered in pages (dict_cmd_continue); NULL: none. */
	struct dict_cmd_iter	*iter;
};

enum dict_cmd_status {
	DICT_CMD_DONE,		/* its reply, if it has one, is in the reply
				 * buffer: send it, go on with the next */
	DICT_CMD_WAIT,		/* the reply comes later (session's done):
				 * run nothing more on this connection */
	DICT_CMD_MORE,		/* part of its reply is in the reply buffer:
				 * send it, and call dict_cmd_continue once
				 * the output has drained; run nothing more
				 * on this connection until it is DONE */
	DICT_CMD_MALFORMED,	/* the line is no command: close (err) */
	DICT_CMD_REFUSED,	/* a command out of place: close (err) */
};

/* Runs a parsed command on the session: DICT_CMD_DONE, _WAIT or
 * _REFUSED (err). */
typedef enum dict_cmd_status dict_cmd_handler_fn(struct dict_cmd_session *,
	    const struct dict_cmd *, char err[ERR_LEN]);

/* Flags of a command in the table. */
#define DICT_CMD_F_REPLIES	0x01	/* answered, exactly once: L I C D */
#define DICT_CMD_F_WAITS	0x02	/* its answer may have to wait */
#define DICT_CMD_F_ASYNC	0x04	/* D: its answer prefixed with A */
#define DICT_CMD_F_HANDSHAKE	0x08	/* H: the one before a handshake */
#define DICT_CMD_F_EXACT	0x10	/* more fields are malformed, not a
					 * later protocol's additions */
#define DICT_CMD_F_STREAMS	0x20	/* I: answered in pages (MORE) */

/* One row of the command table (Dovecot's dict-commands.c cmds[]):
 * everything the daemon knows of a command letter. */
struct dict_cmd_def {
	enum dict_cmd_kind	 kind;		/* its letter */
	const char		*name;		/* in error texts */
	const char		*counter;	/* dictd_commands{command=} */
	enum dict_field		 fields[DICT_CMD_MAX_FIELDS];
	unsigned int		 nfields;	/* in fields[] */
	unsigned int		 nrequired;	/* the rest are optional */
	dict_cmd_handler_fn	*handler;
	unsigned int		 flags;		/* DICT_CMD_F_* */
};

/* The table's row for letter c, or NULL. */
const struct dict_cmd_def *dict_cmd_def_find(int c);
/* Row i of the table (from 0), NULL past its end. */
const struct dict_cmd_def *dict_cmd_def_at(size_t i);
/* 0 and *cmd_out (clear it with dict_cmd_clear) if line (len bytes, no
 * LF) is a well-formed command; -1 with the reason in err otherwise.
 * Pure: no I/O, no logging. */
int	dict_cmd_parse(const char *line, size_t len, struct dict_cmd *cmd_out,
	    char err[ERR_LEN]);

void	dict_cmd_session_init(struct dict_cmd_session *,
	    const struct dict_cmd_ctx *, unsigned long long conn_id,
	    dict_cmd_done_fn *done, void *done_arg);
/* Frees what the session holds: open transactions die with their
 * connection (protocol doc §5), a TURN lookup is cancelled. Never while a
 * commit waits: the group commit still holds the session then (the
 * server frees a connection only after its pass's group commit), and
 * that is a programming error (abort). */
void	dict_cmd_session_clear(struct dict_cmd_session *);
/* Runs one line (len bytes, without its LF) of the session's
 * connection: parses it, counts it, runs its row's handler. The reply, if
 * any, is appended to the session's reply buffer (now, or before done
 * is called for DICT_CMD_WAIT, or page by page for DICT_CMD_MORE). Logs
 * what fails inside a command; the caller logs and closes on MALFORMED
 * and REFUSED. */
enum dict_cmd_status dict_cmd_run(struct dict_cmd_session *,
	    const char *line, size_t len, char err[ERR_LEN]);
/* After DICT_CMD_MORE: appends the next part of the reply, DICT_CMD_MORE
 * again or DICT_CMD_DONE once the reply is complete. Call it only while
 * a reply is unfinished (abort otherwise), from the loop. */
enum dict_cmd_status dict_cmd_continue(struct dict_cmd_session *);

/* dict_conn.c */
/* A connection is closing (once per connection, from
 * dict_conn_close_later): its owner frees it with dict_conn_free from
 * the loop, after the pass's group commit, never under its callbacks. */
typedef void dict_conn_closed_fn(void *arg, struct dict_conn *);

/* Takes fd (an accepted socket) and reads commands from it at once;
 * ctx is borrowed for the connection's life; closed(closed_arg, c) is
 * how the connection tells its owner it is done. A line not ended
 * within ctx->line_timeout_ms of its first byte closes it. */
struct dict_conn *dict_conn_new(struct event_base *, int fd,
	    unsigned long long id, const struct dict_cmd_ctx *ctx,
	    dict_conn_closed_fn *closed, void *closed_arg);
/* Marks c for closing (stops reading and writing) and tells its owner;
 * c is freed later, never under a caller that still uses it. Once only:
 * further calls do nothing. */
void	dict_conn_close_later(struct dict_conn *, const char *reason);
/* Closes the socket and frees c; open transactions die with it. NULL is
 * a no-op. */
void	dict_conn_free(struct dict_conn *);
unsigned long long dict_conn_id(const struct dict_conn *);
/* True while the group commit holds c's session (its commit waits): c
 * must not be freed until it was answered. */
bool	dict_conn_committing(const struct dict_conn *);

/* dict_server.c */
struct dict_server_config {
	const char	*socket_path;
	unsigned int	 socket_mode;
	const char	*socket_group;		/* NULL: unchanged */
	const char	*notify_socket;		/* NULL: none */
	int64_t		 token_ttl_ms;
	const char	*metrics_addr;		/* NULL: no listener */
	struct dict_vendor_config vendor;	/* server-level entries */
	dict_clock_fn	*wall_ms;		/* NULL: clock_wall_ms */
	/* The bounds (docs/metadata-dictd.md); 0: the DICT_*_DEFAULT. */
	size_t		 txn_conn_max_bytes;	/* --max-txn-bytes-per-conn */
	size_t		 txn_total_max_bytes;	/* --max-txn-bytes */
	unsigned int	 max_tokens_per_user;	/* --max-tokens-per-user */
	unsigned int	 max_keys_per_user;	/* --max-keys-per-user */
	int64_t		 lock_wait_ms;		/* --lock-wait */
	size_t		 max_connections;	/* --max-connections */
	int64_t		 line_timeout_ms;	/* --line-timeout */
};

/* Listens on cfg's socket and serves it from base (borrowed); takes
 * ownership of store. NULL and err on failure (socket, notify socket,
 * metrics listener). */
struct dict_server *dict_server_new(struct event_base *,
	    const struct dict_server_config *, struct dict_store *,
	    char err[ERR_LEN]);
/* Stop accepting, answer every commit already received, then close and
 * free every connection (their open transactions die with them). */
void	dict_server_shutdown(struct dict_server *);
void	dict_server_free(struct dict_server *);
/* The server-level entries (borrowed; main.c probes the app versions
 * file at start). */
struct dict_vendor *dict_server_vendor(struct dict_server *);
/* The counters, for tests (borrowed). */
const struct dict_stats *dict_server_stats(const struct dict_server *);

/* chatmaild_parse.c: chatmail relay's Python service's files (pure) */
/* Addresses: RFC 5321's 256-octet path less its angle brackets. */
#define CHATMAILD_ADDR_MAX_BYTES	254
/* metadata.json holds one user's tokens, ~700 bytes each: 1 MiB is over
 * a thousand devices. A queue file is an address, a time and one token. */
#define CHATMAILD_METADATA_MAX_BYTES	(1024 * 1024)
#define CHATMAILD_PENDING_MAX_BYTES	(CHATMAILD_ADDR_MAX_BYTES + 32 + \
					 DICT_TOKEN_MAX_BYTES)
/* A token of metadata.json's old list form has no timestamp. */
#define CHATMAILD_TS_NONE		(-1)

struct chatmaild_token {
	char	*token;		/* owned, NUL-terminated */
	size_t	 len;
	int64_t	 ts;		/* unix s, or CHATMAILD_TS_NONE */
};

struct chatmaild_tokens {
	struct chatmaild_token	*v;
	size_t			 n, cap;
};

/* One notifier queue file. Strings owned (chatmaild_pending_clear). */
struct chatmaild_pending {
	char	*addr;
	int64_t	 start_ts;	/* unix seconds */
	char	*token;
	size_t	 token_len;
};

/* The device tokens of one metadata.json (len bytes), in file order: 0
 * and *out (clear it with chatmaild_tokens_clear; empty when the file has
 * no "devicetoken"), or -1 and err when the file is not a JSON object
 * whose "devicetoken" is a list of strings or an object of strings to
 * positive integers. The tokens themselves are not checked here. */
int	chatmaild_parse_metadata(const char *data, size_t len,
	    struct chatmaild_tokens *out, char err[ERR_LEN]);
void	chatmaild_tokens_clear(struct chatmaild_tokens *);
/* One queue file "<addr>\n<start_ts>\n<token>": 0 and *out, or -1 and
 * err. The token is the rest of the file, unchecked. */
int	chatmaild_parse_pending(const char *data, size_t len,
	    struct chatmaild_pending *out, char err[ERR_LEN]);
void	chatmaild_pending_clear(struct chatmaild_pending *);
/* 0 if s (len bytes) is a plain ASCII address local@domain, as a
 * chatmail relay makes them, else -1 and err. */
int	chatmaild_parse_addr(const char *s, size_t len, char err[ERR_LEN]);

/* chatmaild_import.c: --import-chatmaild */
/* Why a file was left out; chatmaild_import_skip_name() names each. */
enum chatmaild_skip {
	CHATMAILD_SKIP_BAD_ADDRESS,	/* user directory name */
	CHATMAILD_SKIP_WRONG_TYPE,	/* symlink, directory, device... */
	CHATMAILD_SKIP_TOO_LARGE,
	CHATMAILD_SKIP_UNREADABLE,
	CHATMAILD_SKIP_BAD_FORMAT,
	CHATMAILD_SKIP_PARTIAL,		/* a queue file's .tmp */
	CHATMAILD_SKIP_INVALID_TOKEN,
	CHATMAILD_SKIP_EXPIRED,		/* past chatmaild's 5 h limit */
	CHATMAILD_SKIP_UNKNOWN_TOKEN,	/* not a valid token of its user */
	CHATMAILD_SKIP_COUNT,
};

struct chatmaild_import_report {
	uint64_t	users;		/* address directories */
	uint64_t	metadata_files;	/* metadata.json files read */
	uint64_t	tokens_imported;
	uint64_t	tokens_present;	/* already there, left alone */
	uint64_t	tokens_refreshed; /* already there, older */
	uint64_t	tokens_expired;	/* older than --token-ttl */
	uint64_t	tokens_invalid;	/* refused as the daemon would */
	uint64_t	pending_queued;
	uint64_t	pending_present; /* a waiting job had it already */
	uint64_t	skipped[CHATMAILD_SKIP_COUNT];
};

const char *chatmaild_import_skip_name(enum chatmaild_skip);
/* Imports every <vmail_dir>/<addr>/metadata.json, then every file of
 * <vmail_dir>/pending_notifications, into store, in short transactions.
 * Idempotent: tokens already there are kept (only moved forward in
 * time), queue files for a token with a waiting job add nothing. Logs
 * each file and token left out (never a token itself). 0, or -1 and err
 * when the import cannot go on (the report then counts what was read;
 * the batch under way was rolled back). */
int	chatmaild_import_run(struct dict_store *, const char *vmail_dir,
	    int64_t now_ms, int64_t token_ttl_ms,
	    struct chatmaild_import_report *report_out, char err[ERR_LEN]);
/* The report as one line of key=value pairs, appended to out. */
void	chatmaild_import_report_format(
	    const struct chatmaild_import_report *, struct buf *out);
/* The whole --import-chatmaild run: open the database, import, print the
 * report on stdout. Returns the exit status. */
int	chatmaild_import_main(const char *db_path, enum db_sync,
	    int64_t token_ttl_ms, const char *vmail_dir);

#endif
