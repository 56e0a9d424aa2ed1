/*
 * The command table and its handlers (Dovecot's dict-commands.c layout:
 * one table, each handler under the wire form of its command, from
 * protocol doc §3). A row says everything of a letter: its fields (which
 * dict_proto.c parses), its handler, whether it is answered and whether
 * its answer may have to wait.
 *
 * A handler sees the parsed command, its connection's session
 * (handshake, open transactions, reply buffer) and through it the
 * server's context (store, server-level entries, counters, the group
 * commit); never the connection or the server themselves. It answers L
 * and I at once, keeps B/S/U/A/R in the session's transactions, and
 * hands C to the group commit through the context's hook. Only L, I, C
 * and D are ever answered (protocol doc §8.1): a stray reply would be
 * taken for the next command's, so dict_cmd_run holds every handler to
 * its row.
 *
 * Every line a peer can cause at warn level goes through a log_limit of
 * its own (DICT_LOG_LIMIT): one warning per S line for an unknown
 * transaction once turned 1.4 MB of input into 18.8 MB of log.
 *
 * An iteration is answered a page at a time (DICT_CMD_MORE, then
 * dict_cmd_continue as the connection's output drains): built whole, a
 * listing of 600 keys with 60,000-byte names held 34.5 MiB for a client
 * that did not read it; in pages, 0.02 MiB.
 */
#include <stdlib.h>
#include <string.h>

#include "dictd.h"
#include "log.h"
#include "log_limit.h"
#include "metrics.h"
#include "xmalloc.h"

/* An iteration under way (dict_cmd_iterate, then dict_cmd_continue). */
struct dict_cmd_iter {
	char		*path;
	char		*user;
	unsigned int	 flags;
	unsigned int	 max_rows;	/* 0: no limit */
	unsigned int	 sent;		/* rows answered so far */
	char		*after;		/* where the next page starts; NULL:
					 * at the start */
};

static void
dict_cmd_iter_free(struct dict_cmd_iter *it)
{
	if (it == NULL)
		return;
	free(it->path);
	free(it->user);
	free(it->after);
	free(it);
}

void
dict_cmd_session_init(struct dict_cmd_session *s,
    const struct dict_cmd_ctx *ctx, unsigned long long conn_id, dict_cmd_done_fn *done, void *done_arg)
{
	memset(s, 0, sizeof(*s));
	s->ctx = ctx;
	s->conn_id = conn_id;
	dict_txn_set_init(&s->txns, ctx->txn_budget);
	buf_init(&s->reply);
	s->done = done;
	s->done_arg = done_arg;
}

void
dict_cmd_session_clear(struct dict_cmd_session *s)
{
	/* The group commit would call back into freed memory. */
	if (s->committing)
		abort();
	dict_txn_set_clear(&s->txns);
	dict_turn_cancel(s->turn);
	s->turn = NULL;
	dict_cmd_iter_free(s->iter);
	s->iter = NULL;
	buf_clear(&s->reply);
}

/* H<major>\t<minor>\t<value type>\t<user>\t<dict name>
 *	The handshake, first on every connection; the user is always
 *	empty. No reply (protocol doc §2). */
static enum dict_cmd_status
dict_cmd_hello(struct dict_cmd_session *s, const struct dict_cmd *cmd,
    char err[ERR_LEN])
{
	/* Dovecot's server closes on another major version; no reply
	 * either way. */
	if (cmd->major != 3) {
		err_set(err, "unsupported protocol version %u.%u", cmd->major,
		    cmd->minor);
		return DICT_CMD_REFUSED;
	}
	s->hello = true;
	log_debug("dict conn=%llu hello version=%u.%u dict=%s", s->conn_id,
	    cmd->major, cmd->minor,
	    cmd->dict_name[0] != '\0' ? "named" : "unnamed");
	return DICT_CMD_DONE;
}

/* The TURN helper answered, or failed (dict_turn.c frees the request
 * after this returns). The session's connection may be closing by now:
 * it then drops the reply. */
static void
dict_cmd_on_turn(void *arg, const char *cred, size_t len, const char *err)
{
	struct dict_cmd_session *s = arg;
	static struct log_limit lim = DICT_LOG_LIMIT;
	const struct dict_cmd_ctx *ctx = s->ctx;
	struct buf value;

	s->turn = NULL;
	if (cred == NULL) {
		log_limited(&lim, LOG_LEVEL_WARN, "dict conn=%llu turn "
		    "credentials unavailable: %s", s->conn_id, err);
		metric_inc(ctx->stats->fail_turn);
		dict_proto_reply_not_found(&s->reply);
	} else {
		buf_init(&value);
		dict_vendor_turn_value(ctx->vendor, cred, len, &value);
		dict_proto_reply_value(&s->reply, value.data, value.len);
		explicit_bzero(value.data, value.len);
		buf_clear(&value);
	}
	s->done(s->done_arg);
}

/* A server-level entry (dict_vendor.c). Like chatmail relay's service,
 * a source that fails answers NIL, not an error: GETMETADATA asks for
 * several entries at once, and an error would lose them all. */
static enum dict_cmd_status
dict_cmd_lookup_vendor(struct dict_cmd_session *s, const struct dict_key *k)
{
	static struct log_limit vendor_lim = DICT_LOG_LIMIT;
	static struct log_limit turn_lim = DICT_LOG_LIMIT;
	const struct dict_cmd_ctx *ctx = s->ctx;
	struct dict_vendor *v = ctx->vendor;
	struct buf value;
	char err[ERR_LEN];
	enum dict_cmd_status status = DICT_CMD_DONE;

	err[0] = '\0';
	buf_init(&value);
	switch (dict_vendor_lookup(v, k->name, &value, err)) {
	case DICT_VENDOR_VALUE:
		dict_proto_reply_value(&s->reply, value.data, value.len);
		break;
	case DICT_VENDOR_NONE:
		if (err[0] != '\0') {
			log_limited(&vendor_lim, LOG_LEVEL_WARN,
			    "dict conn=%llu %s", s->conn_id, err);
			metric_inc(ctx->stats->fail_appversions);
		}
		dict_proto_reply_not_found(&s->reply);
		break;
	case DICT_VENDOR_TURN:
		/* The connection reads nothing more until the answer: its
		 * replies keep their order (protocol doc §5). */
		s->turn = dict_turn_fetch(ctx->base, dict_vendor_turn_socket(v),
		    dict_vendor_turn_timeout_ms(v), dict_cmd_on_turn, s, err);
		if (s->turn != NULL) {
			status = DICT_CMD_WAIT;
			break;
		}
		log_limited(&turn_lim, LOG_LEVEL_WARN, "dict conn=%llu turn "
		    "credentials unavailable: %s", s->conn_id, err);
		metric_inc(ctx->stats->fail_turn);
		dict_proto_reply_not_found(&s->reply);
		break;
	}
	buf_clear(&value);
	return status;
}

/* L<key>\t<user>
 *	Reply: O<value> | N (not found) | F<error>. A server-level entry
 *	may wait for the TURN helper. */
static enum dict_cmd_status
dict_cmd_lookup(struct dict_cmd_session *s, const struct dict_cmd *cmd,
    char err_out[ERR_LEN])
{
	static struct log_limit lim = DICT_LOG_LIMIT;
	const struct dict_cmd_ctx *ctx = s->ctx;
	struct dict_key k;
	struct buf value;
	char err[ERR_LEN];
	int rc;

	(void)err_out;
	dict_key_parse(cmd->key, &k);
	if (k.kind == DICT_KEY_DELTACHAT)
		return dict_cmd_lookup_vendor(s, &k);
	buf_init(&value);
	rc = dict_store_lookup(ctx->store, cmd->user, cmd->key, ctx->wall_ms(),
	    &value, err);
	if (rc > 0)
		dict_proto_reply_value(&s->reply, value.data ? value.data : "",
		    value.len);
	else if (rc == 0)
		dict_proto_reply_not_found(&s->reply);
	else {
		log_limited(&lim, LOG_LEVEL_WARN, "dict conn=%llu lookup "
		    "failed: %s", s->conn_id, err);
		metric_inc(ctx->stats->fail_store);
		dict_proto_reply_fail(&s->reply, err);
	}
	buf_clear(&value);
	ctx->read_done(ctx->hook_arg);
	return DICT_CMD_DONE;
}

/* The next page of the session's iteration into the reply: DICT_CMD_MORE
 * while rows remain, DICT_CMD_DONE once the end line (or an F, which
 * also ends it: protocol doc §4) is in. */
static enum dict_cmd_status
dict_cmd_iter_page(struct dict_cmd_session *s)
{
	static struct log_limit lim = DICT_LOG_LIMIT;
	const struct dict_cmd_ctx *ctx = s->ctx;
	struct dict_cmd_iter *it = s->iter;
	struct dict_rows rows;
	char err[ERR_LEN], *next;
	bool done = true;

	if (dict_store_iterate(ctx->store, it->user, it->path, it->flags,
	    it->after, ctx->wall_ms(), &rows, &next, err) < 0) {
		log_limited(&lim, LOG_LEVEL_WARN, "dict conn=%llu iterate "
		    "failed: %s", s->conn_id, err);
		metric_inc(ctx->stats->fail_store);
		dict_proto_reply_fail(&s->reply, err);
	} else {
		for (size_t i = 0; i < rows.n && (it->max_rows == 0 ||
		    it->sent < it->max_rows); i++, it->sent++)
			dict_proto_reply_row(&s->reply, rows.rows[i].key,
			    (it->flags & DICT_ITER_NO_VALUE) ? NULL :
			    rows.rows[i].value, rows.rows[i].value_len);
		dict_rows_clear(&rows);
		free(it->after);
		it->after = next;
		done = next == NULL || (it->max_rows != 0 &&
		    it->sent >= it->max_rows);
		if (done)
			dict_proto_reply_iter_end(&s->reply);
	}
	ctx->read_done(ctx->hook_arg);
	if (!done)
		return DICT_CMD_MORE;
	dict_cmd_iter_free(it);
	s->iter = NULL;
	return DICT_CMD_DONE;
}

/* I<flags>\t<max_rows>\t<path>\t<user>
 *	Reply: O<key>\t<value> per row (O<key>\t with the no-values flag:
 *	the TAB is required), then an empty line; F<error> also ends it.
 *	METADATA sends flags 9 and max_rows 0. Answered in pages. */
static enum dict_cmd_status
dict_cmd_iterate(struct dict_cmd_session *s, const struct dict_cmd *cmd,
    char err_out[ERR_LEN])
{
	struct dict_cmd_iter *it = xcalloc(1, sizeof(*it));

	(void)err_out;
	it->path = xstrdup(cmd->key);
	it->user = xstrdup(cmd->user);
	it->flags = cmd->flags;
	it->max_rows = cmd->max_rows;
	s->iter = it;
	return dict_cmd_iter_page(s);
}

enum dict_cmd_status
dict_cmd_continue(struct dict_cmd_session *s)
{
	if (s->iter == NULL)
		abort();	/* nothing unfinished: the caller's bug */
	return dict_cmd_iter_page(s);
}

/* B<id>\t<user>[\t<expire secs>]
 *	Opens transaction id on this connection (the last field is
 *	protocol v4's). No reply; sent lazily with the first change. */
static enum dict_cmd_status
dict_cmd_begin(struct dict_cmd_session *s, const struct dict_cmd *cmd,
    char err[ERR_LEN])
{
	struct dict_txn *t;

	if ((t = dict_txn_begin(&s->txns, cmd->id, cmd->user, err)) == NULL)
		return DICT_CMD_REFUSED;
	t->conn_id = s->conn_id;
	return DICT_CMD_DONE;
}

/* S, U and A for an id that was never begun: Dovecot never does this,
 * so it is logged and ignored; the commit of that id will fail. */
static struct dict_txn *
dict_cmd_txn(struct dict_cmd_session *s, const struct dict_cmd *cmd)
{
	static struct log_limit lim = DICT_LOG_LIMIT;
	struct dict_txn *t = dict_txn_find(&s->txns, cmd->id);

	if (t == NULL) {
		log_limited(&lim, LOG_LEVEL_WARN, "dict conn=%llu command=%c "
		    "unknown transaction=%u", s->conn_id, (char)cmd->kind,
		    cmd->id);
		metric_inc(s->ctx->stats->err_protocol);
	}
	return t;
}

/* Records a change in t; a change past a bound fails t (dict_txn_add),
 * counted and logged here once per transaction. */
static void
dict_cmd_txn_add(struct dict_cmd_session *s, struct dict_txn *t,
    enum dict_change_kind kind, const struct dict_cmd *cmd)
{
	static struct log_limit lim = DICT_LOG_LIMIT;
	enum dict_txn_bound bound;

	bound = dict_txn_add(t, kind, cmd->key, cmd->value, cmd->value_len,
	    cmd->diff);
	if (bound == DICT_TXN_WITHIN)
		return;
	metric_inc(s->ctx->stats->txn_too_large[bound]);
	log_limited(&lim, LOG_LEVEL_WARN, "dict conn=%llu transaction=%u "
	    "refused: %s", s->conn_id, t->id, t->failed);
}

/* The group commit has the outcome of the session's transaction. */
static void
dict_cmd_on_committed(void *arg, struct dict_txn *t,
    enum dict_commit_result result, const char *reason)
{
	struct dict_cmd_session *s = arg;

	dict_proto_reply_commit(&s->reply, t->id, t->async, result, reason);
	dict_txn_free(t);
	s->committing = false;
	s->done(s->done_arg);
}

/* S<id>\t<key>\t<value>
 *	Records a set; the value may be empty. No reply. */
static enum dict_cmd_status
dict_cmd_set(struct dict_cmd_session *s, const struct dict_cmd *cmd,
    char err[ERR_LEN])
{
	struct dict_txn *t;

	(void)err;
	if ((t = dict_cmd_txn(s, cmd)) != NULL)
		dict_cmd_txn_add(s, t, DICT_CHANGE_SET, cmd);
	return DICT_CMD_DONE;
}

/* U<id>\t<key>
 *	Records an unset (SETMETADATA NIL, a mailbox's DELETE). No reply. */
static enum dict_cmd_status
dict_cmd_unset(struct dict_cmd_session *s, const struct dict_cmd *cmd,
    char err[ERR_LEN])
{
	struct dict_txn *t;

	(void)err;
	if ((t = dict_cmd_txn(s, cmd)) != NULL)
		dict_cmd_txn_add(s, t, DICT_CHANGE_UNSET, cmd);
	return DICT_CMD_DONE;
}

/* A<id>\t<key>\t<diff>
 *	Records an atomic increment of a decimal value; a missing key
 *	makes the commit answer N. No reply. */
static enum dict_cmd_status
dict_cmd_atomic_inc(struct dict_cmd_session *s, const struct dict_cmd *cmd,
    char err[ERR_LEN])
{
	struct dict_txn *t;

	(void)err;
	if ((t = dict_cmd_txn(s, cmd)) != NULL)
		dict_cmd_txn_add(s, t, DICT_CHANGE_INC, cmd);
	return DICT_CMD_DONE;
}

/* C<id>, and D<id> (async: 2.3.19 never sends it; Dovecot's server
 *	answers it like C with an A in front)
 *	Reply, after the group commit's COMMIT: O<id> | N<id> (an
 *	increment found no value) | F<id>\t<error>; AO<id> ... for D. */
static enum dict_cmd_status
dict_cmd_commit(struct dict_cmd_session *s, const struct dict_cmd *cmd,
    char err[ERR_LEN])
{
	static struct log_limit lim = DICT_LOG_LIMIT;
	const struct dict_cmd_ctx *ctx = s->ctx;
	bool async = (cmd->def->flags & DICT_CMD_F_ASYNC) != 0;
	struct dict_txn *t = dict_txn_take(&s->txns, cmd->id);

	(void)err;
	if (t == NULL) {
		log_limited(&lim, LOG_LEVEL_WARN, "dict conn=%llu commit of "
		    "unknown transaction=%u", s->conn_id, cmd->id);
		metric_inc(ctx->stats->err_protocol);
		dict_proto_reply_commit(&s->reply, cmd->id, async,
		    DICT_COMMIT_FAILED, "unknown transaction");
		return DICT_CMD_DONE;
	}
	t->async = async;
	/* Answered after the group commit's COMMIT; the connection reads
	 * nothing more until then, so its replies keep their order. */
	s->committing = true;
	ctx->commit(ctx->hook_arg, t, dict_cmd_on_committed, s);
	return DICT_CMD_WAIT;
}

/* R<id>
 *	Drops the transaction. No reply. */
static enum dict_cmd_status
dict_cmd_rollback(struct dict_cmd_session *s, const struct dict_cmd *cmd,
    char err[ERR_LEN])
{
	(void)err;
	dict_txn_free(dict_txn_take(&s->txns, cmd->id));
	return DICT_CMD_DONE;
}

/* T<id>\t<secs>\t<nsecs> (a transaction's timestamp) and
 * V<id> (protocol v4: hide values in logs)
 *	Nothing for us to do. No reply. */
static enum dict_cmd_status
dict_cmd_ignore(struct dict_cmd_session *s, const struct dict_cmd *cmd,
    char err[ERR_LEN])
{
	(void)s;
	(void)cmd;
	(void)err;
	return DICT_CMD_DONE;
}

/*
 * The command table. Lookups come first (the most frequent), and the
 * counters' labels in the order the metrics have always been listed.
 */
#define F(x)	DICT_FIELD_##x
static const struct dict_cmd_def dict_cmd_table[] = {
	{ DICT_CMD_LOOKUP, "lookup", "lookup", { F(KEY), F(USER) }, 2, 2,
	    dict_cmd_lookup, DICT_CMD_F_REPLIES | DICT_CMD_F_WAITS },
	{ DICT_CMD_ITERATE, "iterate", "iterate",
	    { F(FLAGS), F(MAX_ROWS), F(KEY), F(USER) }, 4, 4,
	    dict_cmd_iterate, DICT_CMD_F_REPLIES | DICT_CMD_F_STREAMS },
	{ DICT_CMD_BEGIN, "begin", "begin",
	    { F(ID), F(USER), F(EXPIRE_SECS) }, 3, 2, dict_cmd_begin, 0 },
	{ DICT_CMD_SET, "set", "set", { F(ID), F(KEY), F(VALUE) }, 3, 3,
	    dict_cmd_set, 0 },
	{ DICT_CMD_UNSET, "unset", "unset", { F(ID), F(KEY) }, 2, 2,
	    dict_cmd_unset, 0 },
	{ DICT_CMD_ATOMIC_INC, "atomic-inc", "atomic_inc",
	    { F(ID), F(KEY), F(DIFF) }, 3, 3, dict_cmd_atomic_inc, 0 },
	{ DICT_CMD_COMMIT, "commit", "commit", { F(ID) }, 1, 1,
	    dict_cmd_commit, DICT_CMD_F_REPLIES | DICT_CMD_F_WAITS |
	    DICT_CMD_F_EXACT },
	{ DICT_CMD_COMMIT_ASYNC, "async commit", "commit", { F(ID) }, 1, 1,
	    dict_cmd_commit, DICT_CMD_F_REPLIES | DICT_CMD_F_WAITS |
	    DICT_CMD_F_ASYNC | DICT_CMD_F_EXACT },
	{ DICT_CMD_ROLLBACK, "rollback", "rollback", { F(ID) }, 1, 1,
	    dict_cmd_rollback, DICT_CMD_F_EXACT },
	{ DICT_CMD_HELLO, "handshake", "other",
	    { F(MAJOR), F(MINOR), F(VALUE_TYPE), F(USER), F(DICT_NAME) },
	    5, 5, dict_cmd_hello, DICT_CMD_F_HANDSHAKE },
	{ DICT_CMD_TIMESTAMP, "timestamp", "other",
	    { F(ID), F(SECS), F(NSECS) }, 3, 3, dict_cmd_ignore, 0 },
	/* v4 sends more than the id (protocol doc §8.10); refused, like
	 * the v4 handshake. */
	{ DICT_CMD_HIDE_LOG_VALUES, "hide-log-values", "other", { F(ID) },
	    1, 1, dict_cmd_ignore, DICT_CMD_F_EXACT },
};
#undef F

#define DICT_CMD_TABLE_ROWS \
	(sizeof(dict_cmd_table) / sizeof(*dict_cmd_table))

const struct dict_cmd_def *
dict_cmd_def_find(int c)
{
	for (size_t i = 0; i < DICT_CMD_TABLE_ROWS; i++)
		if ((int)dict_cmd_table[i].kind == c)
			return &dict_cmd_table[i];
	return NULL;
}

const struct dict_cmd_def *
dict_cmd_def_at(size_t i)
{
	return i < DICT_CMD_TABLE_ROWS ? &dict_cmd_table[i] : NULL;
}

int
dict_cmd_parse(const char *line, size_t len, struct dict_cmd *cmd,
    char err[ERR_LEN])
{
	const struct dict_cmd_def *def;

	memset(cmd, 0, sizeof(*cmd));
	if (len == 0) {
		err_set(err, "empty line");
		return -1;
	}
	if (len > DICT_LINE_MAX_BYTES) {
		err_set(err, "line too long");
		return -1;
	}
	if ((def = dict_cmd_def_find((unsigned char)line[0])) == NULL) {
		err_set(err, "unknown command 0x%02x", (unsigned char)line[0]);
		return -1;
	}
	return dict_proto_parse(def, line, len, cmd, err);
}

enum dict_cmd_status
dict_cmd_run(struct dict_cmd_session *s, const char *line, size_t len,
    char err[ERR_LEN])
{
	const struct dict_cmd_def *def;
	struct dict_cmd cmd;
	enum dict_cmd_status status;
	size_t before = s->reply.len;

	if (dict_cmd_parse(line, len, &cmd, err) < 0)
		return DICT_CMD_MALFORMED;
	def = cmd.def;
	if (!(def->flags & DICT_CMD_F_HANDSHAKE) && !s->hello) {
		err_set(err, "command before handshake");
		dict_cmd_clear(&cmd);
		return DICT_CMD_REFUSED;
	}
	metric_inc(s->ctx->stats->commands[def->kind]);
	status = def->handler(s, &cmd, err);
	dict_cmd_clear(&cmd);
	/* The row is the protocol: a command without a reply never writes
	 * one, one with a reply writes exactly it unless it waits, only a
	 * command that may wait does, and only one answered in pages
	 * answers in part. Breaking that is our bug. */
	if (status == DICT_CMD_WAIT ? !(def->flags & DICT_CMD_F_WAITS) ||
	    s->reply.len != before :
	    status == DICT_CMD_MORE ? !(def->flags & DICT_CMD_F_STREAMS) :
	    status == DICT_CMD_DONE && ((def->flags & DICT_CMD_F_REPLIES) ?
	    s->reply.len == before : s->reply.len != before))
		abort();
	return status;
}
