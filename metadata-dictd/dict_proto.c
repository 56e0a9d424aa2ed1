/*
 * The dict protocol's lines, as Dovecot 2.3.19 writes and reads them
 * (protocol doc §1-§4). Pure functions: a line in, a struct dict_cmd out;
 * a reply in, bytes out. No I/O, no SQL, no logging.
 *
 * What fields a command has comes from its row of the command table
 * (dict_cmd.c): this file knows the field types, not the commands.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dictd.h"
#include "tabesc.h"
#include "xmalloc.h"

/* Fields split out of a line: more than any command has
 * (DICT_CMD_MAX_FIELDS), so a later protocol's extra fields are seen
 * (and ignored, or refused by an exact command) rather than merged. */
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
static int
dict_proto_text(const char *s, size_t len, char **out)
{
	if (memchr(s, '\0', len) != NULL)
		return -1;
	*out = xmemdup0(s, len);
	return 0;
}

/* One field of type f (s, len bytes, unescaped and NUL-terminated) into
 * its member of cmd. */
static int
dict_proto_field_parse(enum dict_field f, const char *s, size_t len,
    struct dict_cmd *cmd)
{
	switch (f) {
	case DICT_FIELD_ID:
		return dict_proto_uint(s, &cmd->id);
	case DICT_FIELD_KEY:
		return dict_proto_text(s, len, &cmd->key);
	case DICT_FIELD_USER:
		return dict_proto_text(s, len, &cmd->user);
	case DICT_FIELD_VALUE:
		cmd->value = xmemdup0(s, len);
		cmd->value_len = len;
		return 0;
	case DICT_FIELD_DIFF:
		return dict_proto_int64(s, &cmd->diff);
	case DICT_FIELD_FLAGS:
		return dict_proto_uint(s, &cmd->flags);
	case DICT_FIELD_MAX_ROWS:
		return dict_proto_uint(s, &cmd->max_rows);
	case DICT_FIELD_MAJOR:
		return dict_proto_uint(s, &cmd->major);
	case DICT_FIELD_MINOR:
		return dict_proto_uint(s, &cmd->minor);
	case DICT_FIELD_VALUE_TYPE:
		return dict_proto_uint(s, &cmd->value_type);
	case DICT_FIELD_DICT_NAME:
		return dict_proto_text(s, len, &cmd->dict_name);
	case DICT_FIELD_SECS:
		return dict_proto_int64(s, &cmd->secs);
	case DICT_FIELD_NSECS:
		return dict_proto_int64(s, &cmd->nsecs);
	case DICT_FIELD_EXPIRE_SECS:
		return dict_proto_int64(s, &cmd->expire_secs);
	}
	return -1;
}

int
dict_proto_parse(const struct dict_cmd_def *def, const char *line,
    size_t len, struct dict_cmd *cmd, char err[ERR_LEN])
{
	struct dict_fields fl;
	char *copy;

	memset(cmd, 0, sizeof(*cmd));
	cmd->kind = def->kind;
	cmd->def = def;
	copy = xmemdup0(line + 1, len - 1);
	dict_proto_split(copy, len - 1, &fl);
	if (fl.n < def->nrequired ||
	    ((def->flags & DICT_CMD_F_EXACT) && fl.n > def->nfields)) {
		err_set(err, "command %c: %zu fields, expected %u",
		    (char)def->kind, fl.n, def->nrequired);
		goto fail;
	}
	/* Optional fields (past nrequired) only when present; fields past
	 * the command's are ignored. */
	for (size_t i = 0; i < def->nfields && i < fl.n; i++) {
		if (dict_proto_field_parse(def->fields[i], fl.f[i], fl.len[i],
		    cmd) < 0) {
			err_set(err, "malformed %s", def->name);
			goto fail;
		}
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

static bool
dict_proto_format_uint(struct buf *b, unsigned int v)
{
	buf_printf(b, "%u", v);
	return v != 0;
}

static bool
dict_proto_format_int64(struct buf *b, int64_t v)
{
	buf_printf(b, "%" PRId64, v);
	return v != 0;
}

static bool
dict_proto_format_bytes(struct buf *b, const char *s, size_t len)
{
	if (s == NULL)
		return false;
	tabesc_escape(b, s, len);
	return true;
}

/* The wire form of cmd's field f, appended to b: true, or false when the
 * field holds its default (0, NULL). */
static bool
dict_proto_field_format(enum dict_field f, const struct dict_cmd *cmd,
    struct buf *b)
{
	switch (f) {
	case DICT_FIELD_ID:
		return dict_proto_format_uint(b, cmd->id);
	case DICT_FIELD_KEY:
		return dict_proto_format_bytes(b, cmd->key,
		    cmd->key ? strlen(cmd->key) : 0);
	case DICT_FIELD_USER:
		return dict_proto_format_bytes(b, cmd->user,
		    cmd->user ? strlen(cmd->user) : 0);
	case DICT_FIELD_VALUE:
		return dict_proto_format_bytes(b, cmd->value, cmd->value_len);
	case DICT_FIELD_DIFF:
		return dict_proto_format_int64(b, cmd->diff);
	case DICT_FIELD_FLAGS:
		return dict_proto_format_uint(b, cmd->flags);
	case DICT_FIELD_MAX_ROWS:
		return dict_proto_format_uint(b, cmd->max_rows);
	case DICT_FIELD_MAJOR:
		return dict_proto_format_uint(b, cmd->major);
	case DICT_FIELD_MINOR:
		return dict_proto_format_uint(b, cmd->minor);
	case DICT_FIELD_VALUE_TYPE:
		return dict_proto_format_uint(b, cmd->value_type);
	case DICT_FIELD_DICT_NAME:
		return dict_proto_format_bytes(b, cmd->dict_name,
		    cmd->dict_name ? strlen(cmd->dict_name) : 0);
	case DICT_FIELD_SECS:
		return dict_proto_format_int64(b, cmd->secs);
	case DICT_FIELD_NSECS:
		return dict_proto_format_int64(b, cmd->nsecs);
	case DICT_FIELD_EXPIRE_SECS:
		return dict_proto_format_int64(b, cmd->expire_secs);
	}
	return false;
}

char *
dict_proto_format(const struct dict_cmd *cmd, size_t *len_out)
{
	const struct dict_cmd_def *def = cmd->def;
	struct buf b, field;
	bool set;

	buf_init(&b);
	buf_init(&field);
	buf_append_char(&b, (char)def->kind);
	for (unsigned int i = 0; i < def->nfields; i++) {
		buf_reset(&field);
		set = dict_proto_field_format(def->fields[i], cmd, &field);
		/* An optional field goes out only when it holds a value
		 * (B's expire secs, protocol v4). */
		if (!set && i >= def->nrequired)
			continue;
		if (i > 0)
			buf_append_char(&b, '\t');
		buf_append(&b, field.data, field.len);
	}
	buf_clear(&field);
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
