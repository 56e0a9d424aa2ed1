/*
 * One handler per command letter (Dovecot's dict-commands.c layout). A
 * handler sees the parsed command, its connection's session (handshake,
 * open transactions, reply buffer) and the server's context (store,
 * server-level entries, counters, the group commit); never the
 * connection or the server themselves. It answers L and I at once, keeps
 * B/S/U/A/R in the session's transactions, and hands C to the group
 * commit through the context's hook. Only L, I and C are ever answered
 * (protocol doc §8.1): a stray reply would be taken for the next
 * command's.
 */
#include <stdlib.h>
#include <string.h>

#include "dictd.h"
#include "log.h"
#include "metrics.h"
#include "xmalloc.h"

void
dict_cmd_session_init(struct dict_cmd_session *s, const struct dict_cmd_ctx *ctx,
    unsigned long long conn_id, dict_cmd_done_fn *done, void *done_arg)
{
	memset(s, 0, sizeof(*s));
	s->ctx = ctx;
	s->conn_id = conn_id;
	dict_txn_set_init(&s->txns);
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
	buf_clear(&s->reply);
}

static enum dict_cmd_status
dict_cmd_hello(struct dict_cmd_session *s, struct dict_cmd *cmd,
    char err[ERR_LEN])
{
	/* Dovecot's server closes on another major version; no reply
	 * either way (protocol doc §2). */
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
	const struct dict_cmd_ctx *ctx = s->ctx;
	struct buf value;

	s->turn = NULL;
	if (cred == NULL) {
		log_warnx("dict conn=%llu turn credentials unavailable: %s",
		    s->conn_id, err);
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
			log_warnx("dict conn=%llu %s", s->conn_id, err);
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
		log_warnx("dict conn=%llu turn credentials unavailable: %s",
		    s->conn_id, err);
		metric_inc(ctx->stats->fail_turn);
		dict_proto_reply_not_found(&s->reply);
		break;
	}
	buf_clear(&value);
	return status;
}

static enum dict_cmd_status
dict_cmd_lookup(struct dict_cmd_session *s, struct dict_cmd *cmd)
{
	const struct dict_cmd_ctx *ctx = s->ctx;
	struct dict_key k;
	struct buf value;
	char err[ERR_LEN];
	int rc;

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
		log_warnx("dict conn=%llu lookup failed: %s", s->conn_id, err);
		metric_inc(ctx->stats->fail_store);
		dict_proto_reply_fail(&s->reply, err);
	}
	buf_clear(&value);
	ctx->read_done(ctx->hook_arg);
	return DICT_CMD_DONE;
}

static enum dict_cmd_status
dict_cmd_iterate(struct dict_cmd_session *s, struct dict_cmd *cmd)
{
	const struct dict_cmd_ctx *ctx = s->ctx;
	struct dict_rows rows;
	char err[ERR_LEN];

	if (dict_store_iterate(ctx->store, cmd->user, cmd->key, cmd->flags,
	    cmd->max_rows, ctx->wall_ms(), &rows, err) < 0) {
		log_warnx("dict conn=%llu iterate failed: %s", s->conn_id,
		    err);
		metric_inc(ctx->stats->fail_store);
		/* F ends the iteration (protocol doc §4). */
		dict_proto_reply_fail(&s->reply, err);
		ctx->read_done(ctx->hook_arg);
		return DICT_CMD_DONE;
	}
	for (size_t i = 0; i < rows.n; i++)
		dict_proto_reply_row(&s->reply, rows.rows[i].key,
		    (cmd->flags & DICT_ITER_NO_VALUE) ? NULL :
		    rows.rows[i].value, rows.rows[i].value_len);
	dict_proto_reply_iter_end(&s->reply);
	dict_rows_clear(&rows);
	ctx->read_done(ctx->hook_arg);
	return DICT_CMD_DONE;
}

static enum dict_cmd_status
dict_cmd_begin(struct dict_cmd_session *s, struct dict_cmd *cmd,
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
dict_cmd_txn(struct dict_cmd_session *s, struct dict_cmd *cmd)
{
	struct dict_txn *t = dict_txn_find(&s->txns, cmd->id);

	if (t == NULL) {
		log_warnx("dict conn=%llu command=%c unknown transaction=%u",
		    s->conn_id, (char)cmd->kind, cmd->id);
		metric_inc(s->ctx->stats->err_protocol);
	}
	return t;
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

static enum dict_cmd_status
dict_cmd_commit(struct dict_cmd_session *s, struct dict_cmd *cmd)
{
	const struct dict_cmd_ctx *ctx = s->ctx;
	bool async = cmd->kind == DICT_CMD_COMMIT_ASYNC;
	struct dict_txn *t = dict_txn_take(&s->txns, cmd->id);

	if (t == NULL) {
		log_warnx("dict conn=%llu commit of unknown transaction=%u",
		    s->conn_id, cmd->id);
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

static enum dict_cmd_status
dict_cmd_dispatch(struct dict_cmd_session *s, struct dict_cmd *cmd,
    char err[ERR_LEN])
{
	struct dict_stats *st = s->ctx->stats;
	struct dict_txn *t;

	if (cmd->kind != DICT_CMD_HELLO && !s->hello) {
		err_set(err, "command before handshake");
		return DICT_CMD_REFUSED;
	}
	switch (cmd->kind) {
	case DICT_CMD_HELLO:
		metric_inc(st->cmd_other);
		return dict_cmd_hello(s, cmd, err);
	case DICT_CMD_LOOKUP:
		metric_inc(st->cmd_lookup);
		return dict_cmd_lookup(s, cmd);
	case DICT_CMD_ITERATE:
		metric_inc(st->cmd_iterate);
		return dict_cmd_iterate(s, cmd);
	case DICT_CMD_BEGIN:
		metric_inc(st->cmd_begin);
		return dict_cmd_begin(s, cmd, err);
	case DICT_CMD_SET:
		metric_inc(st->cmd_set);
		if ((t = dict_cmd_txn(s, cmd)) != NULL)
			dict_txn_add(t, DICT_CHANGE_SET, cmd->key, cmd->value,
			    cmd->value_len, 0);
		return DICT_CMD_DONE;
	case DICT_CMD_UNSET:
		metric_inc(st->cmd_unset);
		if ((t = dict_cmd_txn(s, cmd)) != NULL)
			dict_txn_add(t, DICT_CHANGE_UNSET, cmd->key, NULL, 0,
			    0);
		return DICT_CMD_DONE;
	case DICT_CMD_ATOMIC_INC:
		metric_inc(st->cmd_inc);
		if ((t = dict_cmd_txn(s, cmd)) != NULL)
			dict_txn_add(t, DICT_CHANGE_INC, cmd->key, NULL, 0,
			    cmd->diff);
		return DICT_CMD_DONE;
	case DICT_CMD_COMMIT:
	case DICT_CMD_COMMIT_ASYNC:
		/* 2.3.19 never sends D; Dovecot's server answers it like C
		 * with an "A" before the reply (protocol doc §3). */
		metric_inc(st->cmd_commit);
		return dict_cmd_commit(s, cmd);
	case DICT_CMD_ROLLBACK:
		metric_inc(st->cmd_rollback);
		dict_txn_free(dict_txn_take(&s->txns, cmd->id));
		return DICT_CMD_DONE;
	case DICT_CMD_TIMESTAMP:
	case DICT_CMD_HIDE_LOG_VALUES:
		metric_inc(st->cmd_other);
		return DICT_CMD_DONE;
	}
	err_set(err, "unknown command");
	return DICT_CMD_REFUSED;
}

enum dict_cmd_status
dict_cmd_run(struct dict_cmd_session *s, const char *line, size_t len,
    char err[ERR_LEN])
{
	struct dict_cmd cmd;
	enum dict_cmd_status status;

	if (dict_proto_parse(line, len, &cmd, err) < 0)
		return DICT_CMD_MALFORMED;
	status = dict_cmd_dispatch(s, &cmd, err);
	dict_cmd_clear(&cmd);
	return status;
}
