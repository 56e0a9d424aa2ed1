/*
 * The dict protocol's lines, as Dovecot 2.3.19 writes and reads them
 * (protocol doc §1-§4). Pure functions: a line in, a struct dict_cmd out;
 * a reply in, bytes out. No I/O, no SQL, no logging.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dictd.h"
#include "tabesc.h"
#include "xmalloc.h"

/* Enough for every command: I has the most, four (v4 adds none). */
#define DICT_PROTO_MAX_FIELDS	8

struct dict_fields {
	char	*f[DICT_PROTO_MAX_FIELDS];
	size_t	 len[DICT_PROTO_MAX_FIELDS];
	size_t	 n;
};

/* Split the line after its command letter at TABs and unescape each
 * field in place. Extra fields beyond the maximum are folded into the
 * last one, so a later protocol's additions are ignored, not fatal. */
static void
dict_proto_split(char *s, size_t len, struct dict_fields *out)
{
	size_t start = 0;

	out->n = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && (s[i] != '\t' ||
		    out->n == DICT_PROTO_MAX_FIELDS - 1))
			continue;
		out->f[out->n] = s + start;
		out->len[out->n] = tabesc_unescape(s + start, i - start);
		out->n++;
		start = i + 1;
	}
}

static int
dict_proto_uint(const char *s, unsigned int *out)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > UINT32_MAX)
		return -1;
	*out = (unsigned int)v;
	return 0;
}

static int
dict_proto_int64(const char *s, int64_t *out)
{
	long long v;
	char *end;

	if (*s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

/* A key or user must be text: Dovecot never sends NUL inside them, and
 * our storage treats them as C strings. */
static char *
dict_proto_text(const struct dict_fields *fl, size_t i)
{
	if (i >= fl->n || memchr(fl->f[i], '\0', fl->len[i]) != NULL)
		return NULL;
	return xmemdup0(fl->f[i], fl->len[i]);
}

int
dict_proto_parse(const char *line, size_t len, struct dict_cmd *cmd,
    char err[ERR_LEN])
{
	struct dict_fields fl;
	char *copy;
	size_t need;
	int bad_id = 0;

	memset(cmd, 0, sizeof(*cmd));
	if (len == 0) {
		err_set(err, "empty line");
		return -1;
	}
	if (len > DICT_LINE_MAX_BYTES) {
		err_set(err, "line too long");
		return -1;
	}
	cmd->kind = (enum dict_cmd_kind)(unsigned char)line[0];
	switch (cmd->kind) {
	case DICT_CMD_HELLO: need = 5; break;
	case DICT_CMD_LOOKUP: need = 2; break;
	case DICT_CMD_ITERATE: need = 4; break;
	case DICT_CMD_BEGIN: need = 2; break;
	case DICT_CMD_SET: need = 3; break;
	case DICT_CMD_UNSET: need = 2; break;
	case DICT_CMD_ATOMIC_INC: need = 3; break;
	case DICT_CMD_COMMIT:
	case DICT_CMD_COMMIT_ASYNC:
	case DICT_CMD_ROLLBACK:
	case DICT_CMD_HIDE_LOG_VALUES: need = 1; break;
	case DICT_CMD_TIMESTAMP: need = 3; break;
	default:
		err_set(err, "unknown command 0x%02x",
		    (unsigned char)line[0]);
		return -1;
	}

	copy = xmemdup0(line + 1, len - 1);
	dict_proto_split(copy, len - 1, &fl);
	if (fl.n < need) {
		err_set(err, "command %c: %zu fields, expected %zu",
		    (char)cmd->kind, fl.n, need);
		goto fail;
	}

	switch (cmd->kind) {
	case DICT_CMD_HELLO:
		/* H<major>\t<minor>\t<value type>\t<user>\t<dict name> */
		if (dict_proto_uint(fl.f[0], &cmd->major) < 0 ||
		    dict_proto_uint(fl.f[1], &cmd->minor) < 0 ||
		    dict_proto_uint(fl.f[2], &cmd->value_type) < 0 ||
		    (cmd->user = dict_proto_text(&fl, 3)) == NULL ||
		    (cmd->dict_name = dict_proto_text(&fl, 4)) == NULL) {
			err_set(err, "malformed handshake");
			goto fail;
		}
		break;
	case DICT_CMD_LOOKUP:
		/* L<key>\t<user> */
		if ((cmd->key = dict_proto_text(&fl, 0)) == NULL ||
		    (cmd->user = dict_proto_text(&fl, 1)) == NULL) {
			err_set(err, "malformed lookup");
			goto fail;
		}
		break;
	case DICT_CMD_ITERATE:
		/* I<flags>\t<max_rows>\t<path>\t<user> */
		if (dict_proto_uint(fl.f[0], &cmd->flags) < 0 ||
		    dict_proto_uint(fl.f[1], &cmd->max_rows) < 0 ||
		    (cmd->key = dict_proto_text(&fl, 2)) == NULL ||
		    (cmd->user = dict_proto_text(&fl, 3)) == NULL) {
			err_set(err, "malformed iterate");
			goto fail;
		}
		break;
	case DICT_CMD_BEGIN:
		/* B<id>\t<user>[\t<expire_secs>] (v4 adds the last) */
		bad_id = dict_proto_uint(fl.f[0], &cmd->id) < 0;
		if (bad_id || (cmd->user = dict_proto_text(&fl, 1)) == NULL ||
		    (fl.n > 2 && dict_proto_int64(fl.f[2],
		    &cmd->expire_secs) < 0)) {
			err_set(err, "malformed begin");
			goto fail;
		}
		break;
	case DICT_CMD_SET:
		/* S<id>\t<key>\t<value> */
		bad_id = dict_proto_uint(fl.f[0], &cmd->id) < 0;
		if (bad_id || (cmd->key = dict_proto_text(&fl, 1)) == NULL) {
			err_set(err, "malformed set");
			goto fail;
		}
		cmd->value = xmemdup0(fl.f[2], fl.len[2]);
		cmd->value_len = fl.len[2];
		break;
	case DICT_CMD_UNSET:
		/* U<id>\t<key> */
		bad_id = dict_proto_uint(fl.f[0], &cmd->id) < 0;
		if (bad_id || (cmd->key = dict_proto_text(&fl, 1)) == NULL) {
			err_set(err, "malformed unset");
			goto fail;
		}
		break;
	case DICT_CMD_ATOMIC_INC:
		/* A<id>\t<key>\t<diff> */
		bad_id = dict_proto_uint(fl.f[0], &cmd->id) < 0;
		if (bad_id || (cmd->key = dict_proto_text(&fl, 1)) == NULL ||
		    dict_proto_int64(fl.f[2], &cmd->diff) < 0) {
			err_set(err, "malformed atomic-inc");
			goto fail;
		}
		break;
	case DICT_CMD_TIMESTAMP:
		/* T<id>\t<secs>\t<nsecs> */
		if (dict_proto_uint(fl.f[0], &cmd->id) < 0 ||
		    dict_proto_int64(fl.f[1], &cmd->secs) < 0 ||
		    dict_proto_int64(fl.f[2], &cmd->nsecs) < 0) {
			err_set(err, "malformed timestamp");
			goto fail;
		}
		break;
	default:
		/* C<id>, D<id>, R<id>, V<id> */
		if (fl.n != 1 || dict_proto_uint(fl.f[0], &cmd->id) < 0) {
			err_set(err, "malformed command %c", (char)cmd->kind);
			goto fail;
		}
		break;
	}
	free(copy);
	return 0;
fail:
	free(copy);
	dict_cmd_clear(cmd);
	return -1;
}

void
dict_cmd_clear(struct dict_cmd *cmd)
{
	free(cmd->key);
	free(cmd->user);
	free(cmd->value);
	free(cmd->dict_name);
	memset(cmd, 0, sizeof(*cmd));
}

static bool
dict_proto_str_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

bool
dict_cmd_equal(const struct dict_cmd *a, const struct dict_cmd *b)
{
	return a->kind == b->kind && a->id == b->id &&
	    a->diff == b->diff && a->flags == b->flags &&
	    a->max_rows == b->max_rows && a->major == b->major &&
	    a->minor == b->minor && a->value_type == b->value_type &&
	    a->secs == b->secs && a->nsecs == b->nsecs &&
	    a->expire_secs == b->expire_secs &&
	    dict_proto_str_equal(a->key, b->key) &&
	    dict_proto_str_equal(a->user, b->user) &&
	    dict_proto_str_equal(a->dict_name, b->dict_name) &&
	    a->value_len == b->value_len &&
	    (a->value_len == 0 || memcmp(a->value, b->value,
	    a->value_len) == 0);
}

static void
dict_proto_field(struct buf *b, const char *s, size_t len)
{
	buf_append_char(b, '\t');
	tabesc_escape(b, s, len);
}

char *
dict_proto_format(const struct dict_cmd *cmd, size_t *len_out)
{
	struct buf b;

	buf_init(&b);
	buf_append_char(&b, (char)cmd->kind);
	switch (cmd->kind) {
	case DICT_CMD_HELLO:
		buf_printf(&b, "%u\t%u\t%u", cmd->major, cmd->minor,
		    cmd->value_type);
		dict_proto_field(&b, cmd->user, strlen(cmd->user));
		dict_proto_field(&b, cmd->dict_name, strlen(cmd->dict_name));
		break;
	case DICT_CMD_LOOKUP:
		tabesc_escape(&b, cmd->key, strlen(cmd->key));
		dict_proto_field(&b, cmd->user, strlen(cmd->user));
		break;
	case DICT_CMD_ITERATE:
		buf_printf(&b, "%u\t%u", cmd->flags, cmd->max_rows);
		dict_proto_field(&b, cmd->key, strlen(cmd->key));
		dict_proto_field(&b, cmd->user, strlen(cmd->user));
		break;
	case DICT_CMD_BEGIN:
		buf_printf(&b, "%u", cmd->id);
		dict_proto_field(&b, cmd->user, strlen(cmd->user));
		if (cmd->expire_secs != 0)
			buf_printf(&b, "\t%" PRId64, cmd->expire_secs);
		break;
	case DICT_CMD_SET:
		buf_printf(&b, "%u", cmd->id);
		dict_proto_field(&b, cmd->key, strlen(cmd->key));
		dict_proto_field(&b, cmd->value, cmd->value_len);
		break;
	case DICT_CMD_UNSET:
		buf_printf(&b, "%u", cmd->id);
		dict_proto_field(&b, cmd->key, strlen(cmd->key));
		break;
	case DICT_CMD_ATOMIC_INC:
		buf_printf(&b, "%u", cmd->id);
		dict_proto_field(&b, cmd->key, strlen(cmd->key));
		buf_printf(&b, "\t%" PRId64, cmd->diff);
		break;
	case DICT_CMD_TIMESTAMP:
		buf_printf(&b, "%u\t%" PRId64 "\t%" PRId64, cmd->id, cmd->secs,
		    cmd->nsecs);
		break;
	default:
		buf_printf(&b, "%u", cmd->id);
		break;
	}
	buf_append_char(&b, '\n');
	return buf_steal(&b, len_out);
}

void
dict_proto_reply_value(struct buf *b, const char *value, size_t len)
{
	buf_append_char(b, 'O');
	tabesc_escape(b, value, len);
	buf_append_char(b, '\n');
}

void
dict_proto_reply_not_found(struct buf *b)
{
	buf_append_str(b, "N\n");
}

void
dict_proto_reply_fail(struct buf *b, const char *reason)
{
	buf_append_char(b, 'F');
	tabesc_escape(b, reason, strlen(reason));
	buf_append_char(b, '\n');
}

/* Every row needs the TAB after the key, even without a value: a row
 * without it makes Dovecot's imap process panic (protocol doc §4, §7). */
void
dict_proto_reply_row(struct buf *b, const char *key, const char *value,
    size_t len)
{
	buf_append_char(b, 'O');
	tabesc_escape(b, key, strlen(key));
	buf_append_char(b, '\t');
	if (value != NULL)
		tabesc_escape(b, value, len);
	buf_append_char(b, '\n');
}

void
dict_proto_reply_iter_end(struct buf *b)
{
	buf_append_char(b, '\n');
}

/* The client reads the second field of F/W as the error (protocol doc
 * §4); O and N may carry the id, which it ignores. */
void
dict_proto_reply_commit(struct buf *b, unsigned int id, bool async,
    enum dict_commit_result result, const char *reason)
{
	if (async)
		buf_append_char(b, 'A');
	switch (result) {
	case DICT_COMMIT_OK:
		buf_printf(b, "O%u\n", id);
		break;
	case DICT_COMMIT_NOT_FOUND:
		buf_printf(b, "N%u\n", id);
		break;
	case DICT_COMMIT_FAILED:
		buf_printf(b, "F%u\t", id);
		tabesc_escape(b, reason ? reason : "commit failed",
		    strlen(reason ? reason : "commit failed"));
		buf_append_char(b, '\n');
		break;
	}
}
