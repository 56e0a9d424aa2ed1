/*
 * metadata-dictd: the relay's Dovecot dict server.
 *
 * Map of the daemon (OpenSMTPD's smtpd.h habit: types first, then the
 * prototypes of each file under its name):
 *
 *   dict_proto.c   parse one protocol line into a struct dict_cmd, format
 *                  replies (pure: bytes in, bytes out)
 *   dict_key.c     what a dict key means: device token, new-mail event,
 *                  private or shared attribute
 *   dict_store.c   SQLite: tokens, metadata, queue (knows no protocol)
 *   dict_vendor.c  the server-level /shared/vendor/deltachat/ entries
 *                  (values from flags, the app versions file, TURN)
 *   dict_turn.c    TURN credentials from the TURN helper's Unix socket
 *   dict_txn.c     a transaction's changes; a connection's open ones
 *   dict_cmd.c     one handler per command letter
 *   dict_conn.c    one client connection: socket, lines, reply order
 *   dict_server.c  listener, group commit, wake-ups, sweep, metrics
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

/* Dovecot's own dict server refuses longer input lines (protocol doc §1). */
#define DICT_LINE_MAX_BYTES		(64 * 1024)
/* Device tokens: openpgp: wrapped ones are ~700 bytes; 8 KiB is ample. */
#define DICT_TOKEN_MAX_BYTES		8192
/* Bounds on one dict transaction held in memory until its commit. */
#define DICT_TXN_MAX_CHANGES		10000
#define DICT_TXN_MAX_BYTES		(4 * 1024 * 1024)
/* Open transactions per connection (Dovecot uses one or two). */
#define DICT_CONN_MAX_TXNS		64
/* Stop reading a peer that does not read its replies. */
#define DICT_CONN_OUTPUT_MAX_BYTES	(1024 * 1024)
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

/* One parsed command line. Strings are owned by the struct (freed by
 * dict_cmd_clear) and NUL-terminated; value may hold NUL bytes, so it has
 * its length. Fields a command does not carry are NULL/0. */
struct dict_cmd {
	enum dict_cmd_kind	 kind;
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
	char			*user;
	struct dict_change	*changes;
	size_t			 nchanges;
	size_t			 cap;
	size_t			 bytes;
	/* Set when the transaction can no longer succeed (too big); the
	 * commit then fails with this reason. */
	char			*failed;
	bool			 async;		/* committed with D */
	LIST_ENTRY(dict_txn)	 link;		/* while open (dict_txn_set) */
};

/* The transactions a connection has open, keyed by id (dict_txn.c). */
struct dict_txn_set {
	LIST_HEAD(, dict_txn)	 open;
	unsigned int		 n;
};

struct dict_store;
struct dict_conn;
struct dict_server;
struct dict_stats;
struct event_base;
struct metric;

/* dict_array.c */
/* Room for element n of the array v, which has room for *cap elements of
 * elem_size bytes (n <= *cap): v itself while n < *cap, else v
 * reallocated to twice the room (first_cap the first time) with *cap
 * updated. The caller owns v before and after; aborts on overflow or
 * out of memory, like xrealloc. */
void	*dict_array_grow(void *v, size_t n, size_t *cap, size_t elem_size,
	    size_t first_cap);

/* dict_proto.c */
/* 0 and *cmd_out (clear it with dict_cmd_clear) if line (len bytes, no
 * LF) is a well-formed command; -1 with the reason in err otherwise. */
int	dict_proto_parse(const char *line, size_t len, struct dict_cmd *cmd_out,
	    char err[ERR_LEN]);
void	dict_cmd_clear(struct dict_cmd *);
bool	dict_cmd_equal(const struct dict_cmd *, const struct dict_cmd *);
/* The wire form of cmd, LF-terminated (caller frees). */
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
/* The user a key is stored under: the transaction's user for priv/,
 * "" for shared/ (as in Dovecot's dict API). Borrowed. */
const char *dict_key_owner(const struct dict_key *, const char *user);
/* 0 if token is acceptable as a device token, else -1 and err. */
int	dict_key_token_check(const char *token, size_t len, char err[ERR_LEN]);

/* dict_store.c */
struct dict_store *dict_store_open(const char *path, enum db_sync,
	    int64_t token_ttl_ms, char err[ERR_LEN]);
void	dict_store_close(struct dict_store *);
/* 1 and the value appended to value_out if found, 0 if not, -1 and err. */
int	dict_store_lookup(struct dict_store *, const char *user,
	    const char *key, int64_t now_ms, struct buf *value_out,
	    char err[ERR_LEN]);
/* Rows under path (protocol doc §3 flags), sorted by key, at most
 * max_rows (0: no limit). 0 or -1 and err. rows_out is the caller's. */
int	dict_store_iterate(struct dict_store *, const char *user,
	    const char *path, unsigned int flags, unsigned int max_rows,
	    int64_t now_ms, struct dict_rows *rows_out, char err[ERR_LEN]);
void	dict_rows_clear(struct dict_rows *);
/* Lookups and iterations open a read transaction that lasts until this
 * is called (once per loop pass, see dict_store.c). True if one was open. */
bool	dict_store_read_end(struct dict_store *);
/* Group commit: begin, then apply each dict transaction (each inside its
 * own savepoint), then commit. apply returns the transaction's result and
 * fills err for a failure; *queued_out counts the queue rows it inserted.
 * batch_commit is -1 with err if SQLite could not commit: then every
 * transaction of the batch failed. */
int	dict_store_batch_begin(struct dict_store *, char err[ERR_LEN]);
enum dict_commit_result dict_store_apply(struct dict_store *,
	    const struct dict_txn *, int64_t now_ms, uint64_t *queued_out,
	    uint64_t *tokens_set_out, char err[ERR_LEN]);
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
/* Records one change (key and value copied). Past DICT_TXN_MAX_CHANGES
 * or DICT_TXN_MAX_BYTES the transaction is marked failed instead and
 * keeps no further change: its commit then fails with the reason. */
void	dict_txn_add(struct dict_txn *, enum dict_change_kind,
	    const char *key, const char *value, size_t value_len, int64_t diff);
void	dict_txn_set_init(struct dict_txn_set *);
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

/* dict_cmd.c */
/* Runs one parsed command on c. 0, or -1 when the connection must be
 * closed (reason in err). */
int	dict_cmd_run(struct dict_conn *, struct dict_cmd *, char err[ERR_LEN]);

/* dict_conn.c */
struct dict_conn *dict_conn_new(struct dict_server *, int fd);
/* Marks c for closing; it is freed from the loop, never under a caller
 * that still uses it. */
void	dict_conn_close_later(struct dict_conn *, const char *reason);
void	dict_conn_free(struct dict_conn *);
bool	dict_conn_closing(const struct dict_conn *);
/* The server's list of open connections (intrusive, doubly linked). */
void	dict_conn_link(struct dict_conn *, struct dict_conn **head);
void	dict_conn_unlink(struct dict_conn *, struct dict_conn **head);
struct dict_conn *dict_conn_next(struct dict_conn *);
unsigned long long dict_conn_id(const struct dict_conn *);
struct dict_server *dict_conn_server(struct dict_conn *);
/* The reply under construction for the current command. */
struct buf *dict_conn_reply_buf(struct dict_conn *);
void	dict_conn_send(struct dict_conn *);
/* The transactions this connection has open (owned by it). */
struct dict_txn_set *dict_conn_txns(struct dict_conn *);
/* Hands txn to the server's group commit; c reads nothing more until
 * dict_conn_commit_done() delivers the reply. */
void	dict_conn_commit(struct dict_conn *, struct dict_txn *);
void	dict_conn_commit_done(struct dict_conn *, struct dict_txn *,
	    enum dict_commit_result, const char *reason);
/* c waits for req (a lookup's TURN credentials) and reads nothing more
 * until dict_conn_wait_done(); closing c cancels req. */
void	dict_conn_wait(struct dict_conn *, struct dict_turn_req *req);
/* req has finished (and is about to be freed by its owner): send the
 * reply built in dict_conn_reply_buf() and read on. */
void	dict_conn_wait_done(struct dict_conn *);
void	dict_conn_set_hello(struct dict_conn *);
bool	dict_conn_has_hello(const struct dict_conn *);

/* dict_server.c */
struct dict_server_config {
	const char	*socket_path;
	unsigned int	 socket_mode;
	const char	*socket_group;		/* NULL: unchanged */
	const char	*notify_socket;		/* NULL: none */
	int64_t		 token_ttl_ms;
	const char	*metrics_addr;		/* NULL: no listener */
	struct dict_vendor_config vendor;	/* server-level entries */
};

/* Counters the commands update; owned by the server. */
struct dict_stats {
	struct metric	*connections;
	struct metric	*connections_total;
	struct metric	*cmd_lookup, *cmd_iterate, *cmd_begin, *cmd_set,
			*cmd_unset, *cmd_inc, *cmd_commit, *cmd_rollback,
			*cmd_other;
	struct metric	*commit_ok, *commit_not_found, *commit_failed;
	struct metric	*group_commits;
	struct metric	*token_sets;
	struct metric	*tokens;
	struct metric	*queue_rows;
	struct metric	*err_line_too_long, *err_parse, *err_protocol;
	struct metric	*fail_store, *fail_txn;
	struct metric	*fail_turn, *fail_appversions;
};

/* Takes ownership of store and base is borrowed. NULL and err on
 * failure (socket, metrics listener). */
struct dict_server *dict_server_new(struct event_base *,
	    const struct dict_server_config *, struct dict_store *,
	    char err[ERR_LEN]);
/* Stop accepting, finish pending commits, close every connection. */
void	dict_server_shutdown(struct dict_server *);
void	dict_server_free(struct dict_server *);
struct dict_store *dict_server_store(struct dict_server *);
struct dict_stats *dict_server_stats(struct dict_server *);
struct dict_vendor *dict_server_vendor(struct dict_server *);
struct event_base *dict_server_base(struct dict_server *);
void	dict_server_conn_closed(struct dict_server *, struct dict_conn *);
/* End the pass's read transaction once this loop pass's I/O is done. */
void	dict_server_read_done_later(struct dict_server *);
/* Queue a transaction for the next group commit. */
void	dict_server_commit_enqueue(struct dict_server *, struct dict_conn *,
	    struct dict_txn *);

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
