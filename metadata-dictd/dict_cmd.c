/*
 * One handler per command letter (Dovecot's dict-commands.c layout). A
 * handler sees a parsed command and its connection; it answers L and I at
 * once, keeps B/S/U/A/R in the connection's transactions, and hands C to
 * the server's group commit. Only L, I and C are ever answered (protocol
 * doc §8.1): a stray reply would be taken for the next command's.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dictd.h"
#include "log.h"
#include "metrics.h"
#include "xmalloc.h"

static int
dict_cmd_hello(struct dict_conn *c, struct dict_cmd *cmd, char err[ERR_LEN])
{
	/* Dovecot's server closes on another major version; no reply
	 * either way (protocol doc §2). */
	if (cmd->major != 3) {
		err_set(err, "unsupported protocol version %u.%u", cmd->major,
		    cmd->minor);
		return -1;
	}
	dict_conn_set_hello(c);
	log_debug("dict conn=%llu hello version=%u.%u dict=%s",
	    dict_conn_id(c), cmd->major, cmd->minor,
	    cmd->dict_name[0] != '\0' ? "named" : "unnamed");
	return 0;
}

/* The TURN helper answered (or failed, or c closed meanwhile: then the
 * reply is dropped by dict_conn_wait_done). */
static void
dict_cmd_on_turn(void *arg, const char *cred, size_t len, const char *err)
{
	struct dict_conn *c = arg;
	struct dict_server *srv = dict_conn_server(c);
	struct buf *out = dict_conn_reply_buf(c);
	struct buf value;

	if (cred == NULL) {
		log_warnx("dict conn=%llu turn credentials unavailable: %s",
		    dict_conn_id(c), err);
		metric_inc(dict_server_stats(srv)->fail_turn);
		dict_proto_reply_not_found(out);
	} else {
		buf_init(&value);
		dict_vendor_turn_value(dict_server_vendor(srv), cred, len,
		    &value);
		dict_proto_reply_value(out, value.data, value.len);
		explicit_bzero(value.data, value.len);
		buf_clear(&value);
	}
	dict_conn_wait_done(c);
}

/* A server-level entry (dict_vendor.c). Like chatmail relay's service,
 * a source that fails answers NIL, not an error: GETMETADATA asks for
 * several entries at once, and an error would lose them all. */
static int
dict_cmd_lookup_vendor(struct dict_conn *c, const struct dict_key *k)
{
	struct dict_server *srv = dict_conn_server(c);
	struct dict_vendor *v = dict_server_vendor(srv);
	struct buf *out = dict_conn_reply_buf(c);
	struct dict_turn_req *req;
	struct buf value;
	char err[ERR_LEN];

	err[0] = '\0';
	buf_init(&value);
	switch (dict_vendor_lookup(v, k->name, &value, err)) {
	case DICT_VENDOR_VALUE:
		dict_proto_reply_value(out, value.data, value.len);
		break;
	case DICT_VENDOR_NONE:
		if (err[0] != '\0') {
			log_warnx("dict conn=%llu %s", dict_conn_id(c), err);
			metric_inc(dict_server_stats(srv)->fail_appversions);
		}
		dict_proto_reply_not_found(out);
		break;
	case DICT_VENDOR_TURN:
		req = dict_turn_fetch(dict_server_base(srv),
		    dict_vendor_turn_socket(v), dict_vendor_turn_timeout_ms(v),
		    dict_cmd_on_turn, c, err);
		if (req != NULL) {
			buf_clear(&value);
			dict_conn_wait(c, req);
			return 0;
		}
		log_warnx("dict conn=%llu turn credentials unavailable: %s",
		    dict_conn_id(c), err);
		metric_inc(dict_server_stats(srv)->fail_turn);
		dict_proto_reply_not_found(out);
		break;
	}
	buf_clear(&value);
	dict_conn_send(c);
	return 0;
}

static int
dict_cmd_lookup(struct dict_conn *c, struct dict_cmd *cmd)
{
	struct dict_server *srv = dict_conn_server(c);
	struct buf *out = dict_conn_reply_buf(c);
	struct dict_key k;
	struct buf value;
	char err[ERR_LEN];
	int rc;

	dict_key_parse(cmd->key, &k);
	if (k.kind == DICT_KEY_DELTACHAT)
		return dict_cmd_lookup_vendor(c, &k);
	buf_init(&value);
	rc = dict_store_lookup(dict_server_store(srv), cmd->user, cmd->key,
	    clock_wall_ms(), &value, err);
	if (rc > 0)
		dict_proto_reply_value(out, value.data ? value.data : "",
		    value.len);
	else if (rc == 0)
		dict_proto_reply_not_found(out);
	else {
		log_warnx("dict conn=%llu lookup failed: %s", dict_conn_id(c),
		    err);
		metric_inc(dict_server_stats(srv)->fail_store);
		dict_proto_reply_fail(out, err);
	}
	buf_clear(&value);
	dict_conn_send(c);
	dict_server_read_done_later(srv);
	return 0;
}

static int
dict_cmd_iterate(struct dict_conn *c, struct dict_cmd *cmd)
{
	struct dict_server *srv = dict_conn_server(c);
	struct buf *out = dict_conn_reply_buf(c);
	struct dict_rows rows;
	char err[ERR_LEN];

	if (dict_store_iterate(dict_server_store(srv), cmd->user, cmd->key,
	    cmd->flags, cmd->max_rows, clock_wall_ms(), &rows, err) < 0) {
		log_warnx("dict conn=%llu iterate failed: %s",
		    dict_conn_id(c), err);
		metric_inc(dict_server_stats(srv)->fail_store);
		/* F ends the iteration (protocol doc §4). */
		dict_proto_reply_fail(out, err);
		dict_conn_send(c);
		return 0;
	}
	for (size_t i = 0; i < rows.n; i++)
		dict_proto_reply_row(out, rows.rows[i].key,
		    (cmd->flags & DICT_ITER_NO_VALUE) ? NULL :
		    rows.rows[i].value, rows.rows[i].value_len);
	dict_proto_reply_iter_end(out);
	dict_rows_clear(&rows);
	dict_conn_send(c);
	dict_server_read_done_later(srv);
	return 0;
}

static int
dict_cmd_begin(struct dict_conn *c, struct dict_cmd *cmd, char err[ERR_LEN])
{
	if (dict_txn_begin(dict_conn_txns(c), cmd->id, cmd->user, err) ==
	    NULL)
		return -1;
	return 0;
}

/* S, U and A for an id that was never begun: Dovecot never does this,
 * so it is logged and ignored; the commit of that id will fail. */
static struct dict_txn *
dict_cmd_txn(struct dict_conn *c, struct dict_cmd *cmd)
{
	struct dict_txn *t = dict_txn_find(dict_conn_txns(c), cmd->id);

	if (t == NULL) {
		log_warnx("dict conn=%llu command=%c unknown transaction=%u",
		    dict_conn_id(c), (char)cmd->kind, cmd->id);
		metric_inc(dict_server_stats(dict_conn_server(c))->
		    err_protocol);
	}
	return t;
}

static void
dict_cmd_commit(struct dict_conn *c, struct dict_cmd *cmd)
{
	struct dict_txn *t = dict_txn_take(dict_conn_txns(c), cmd->id);

	if (t == NULL) {
		log_warnx("dict conn=%llu commit of unknown transaction=%u",
		    dict_conn_id(c), cmd->id);
		metric_inc(dict_server_stats(dict_conn_server(c))->
		    err_protocol);
		dict_proto_reply_commit(dict_conn_reply_buf(c), cmd->id,
		    cmd->kind == DICT_CMD_COMMIT_ASYNC, DICT_COMMIT_FAILED, "unknown transaction");
		dict_conn_send(c);
		return;
	}
	t->async = cmd->kind == DICT_CMD_COMMIT_ASYNC;
	dict_conn_commit(c, t);
}

int
dict_cmd_run(struct dict_conn *c, struct dict_cmd *cmd, char err[ERR_LEN])
{
	struct dict_stats *st = dict_server_stats(dict_conn_server(c));
	struct dict_txn *t;

	if (cmd->kind != DICT_CMD_HELLO && !dict_conn_has_hello(c)) {
		err_set(err, "command before handshake");
		return -1;
	}
	switch (cmd->kind) {
	case DICT_CMD_HELLO:
		metric_inc(st->cmd_other);
		return dict_cmd_hello(c, cmd, err);
	case DICT_CMD_LOOKUP:
		metric_inc(st->cmd_lookup);
		return dict_cmd_lookup(c, cmd);
	case DICT_CMD_ITERATE:
		metric_inc(st->cmd_iterate);
		return dict_cmd_iterate(c, cmd);
	case DICT_CMD_BEGIN:
		metric_inc(st->cmd_begin);
		return dict_cmd_begin(c, cmd, err);
	case DICT_CMD_SET:
		metric_inc(st->cmd_set);
		if ((t = dict_cmd_txn(c, cmd)) != NULL)
			dict_txn_add(t, DICT_CHANGE_SET, cmd->key, cmd->value,
			    cmd->value_len, 0);
		return 0;
	case DICT_CMD_UNSET:
		metric_inc(st->cmd_unset);
		if ((t = dict_cmd_txn(c, cmd)) != NULL)
			dict_txn_add(t, DICT_CHANGE_UNSET, cmd->key, NULL, 0,
			    0);
		return 0;
	case DICT_CMD_ATOMIC_INC:
		metric_inc(st->cmd_inc);
		if ((t = dict_cmd_txn(c, cmd)) != NULL)
			dict_txn_add(t, DICT_CHANGE_INC, cmd->key, NULL, 0,
			    cmd->diff);
		return 0;
	case DICT_CMD_COMMIT:
	case DICT_CMD_COMMIT_ASYNC:
		/* 2.3.19 never sends D; Dovecot's server answers it like C
		 * with an "A" before the reply (protocol doc §3). */
		metric_inc(st->cmd_commit);
		dict_cmd_commit(c, cmd);
		return 0;
	case DICT_CMD_ROLLBACK:
		metric_inc(st->cmd_rollback);
		dict_txn_free(dict_txn_take(dict_conn_txns(c), cmd->id));
		return 0;
	case DICT_CMD_TIMESTAMP:
	case DICT_CMD_HIDE_LOG_VALUES:
		metric_inc(st->cmd_other);
		return 0;
	}
	err_set(err, "unknown command");
	return -1;
}
