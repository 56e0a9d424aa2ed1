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
 *   dict_cmd.c     one handler per command letter, transactions
 *   dict_conn.c    one client connection: socket, lines, reply order
 *   dict_server.c  listener, group commit, wake-ups, sweep, metrics
 *   main.c         options, set-up, loop, tear-down
 *
 * The wire rules cited as "protocol doc §n" are in the steering repo's
 * docs/dovecot-dict-protocol.md, verified against Dovecot 2.3.19.
 */
#ifndef DICTD_H
#define DICTD_H

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
};

struct dict_key {
	enum dict_key_kind	 kind;
	/* DEVICETOKEN, MESSAGENEW: the mailbox GUID inside the key
	 * (borrowed from the key string, not NUL-terminated). */
	const char		*guid;
	size_t			 guid_len;
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
	struct dict_txn		*next;		/* in the connection's list */
};

struct dict_store;
struct dict_conn;
struct dict_server;
struct dict_stats;
struct event_base;
struct metric;

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

/* dict_cmd.c */
struct dict_txn *dict_txn_new(unsigned int id, const char *user);
void	dict_txn_free(struct dict_txn *);
/* Record one change; marks the transaction failed past the limits. */
void	dict_txn_add(struct dict_txn *, enum dict_change_kind,
	    const char *key, const char *value, size_t value_len, int64_t diff);
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
/* Transactions of this connection. */
struct dict_txn *dict_conn_txn_find(struct dict_conn *, unsigned int id);
/* 0, or -1 when the connection has too many open transactions. */
int	dict_conn_txn_add(struct dict_conn *, struct dict_txn *);
/* Unlinks and returns the transaction (caller owns it), or NULL. */
struct dict_txn *dict_conn_txn_take(struct dict_conn *, unsigned int id);
/* Hands txn to the server's group commit; c reads nothing more until
 * dict_conn_commit_done() delivers the reply. */
void	dict_conn_commit(struct dict_conn *, struct dict_txn *);
void	dict_conn_commit_done(struct dict_conn *, struct dict_txn *,
	    enum dict_commit_result, const char *reason);
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
struct event_base *dict_server_base(struct dict_server *);
void	dict_server_conn_closed(struct dict_server *, struct dict_conn *);
/* End the pass's read transaction once this loop pass's I/O is done. */
void	dict_server_read_done_later(struct dict_server *);
/* Queue a transaction for the next group commit. */
void	dict_server_commit_enqueue(struct dict_server *, struct dict_conn *,
	    struct dict_txn *);

#endif
