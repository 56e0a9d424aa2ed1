/* A strict INI reader for chatmail.ini; see ini.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ini.h"
#include "xmalloc.h"

static bool
ini_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t
ini_utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* overlong forms, UTF-16 surrogates, past U+10FFFF */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* Checks one line's bytes (its end removed): no control character but
 * tab, valid UTF-8. 0, or -1 with the reason in err. */
static int
ini_check_bytes(const char *line, size_t len, char err[ERR_LEN])
{
	const unsigned char *s = (const unsigned char *)line;
	size_t i = 0;

	while (i < len) {
		size_t n;

		if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f) {
			err_set(err, "control character 0x%02x at column %zu",
			    s[i], i + 1);
			return -1;
		}
		if ((n = ini_utf8_len(s + i, len - i)) == 0) {
			err_set(err, "invalid UTF-8 at column %zu", i + 1);
			return -1;
		}
		i += n;
	}
	return 0;
}

/* The bytes [*start, *end) without blanks at either end. */
static void
ini_trim(const char *s, size_t *start, size_t *end)
{
	while (*start < *end && ini_blank(s[*start]))
		(*start)++;
	while (*end > *start && ini_blank(s[*end - 1]))
		(*end)--;
}

static int
ini_full(const struct ini *ini, char err[ERR_LEN])
{
	if (ini->n + ini->nsections < INI_MAX_ENTRIES)
		return 0;
	err_set(err, "more than %d keys and sections", INI_MAX_ENTRIES);
	return -1;
}

static int
ini_add_section(struct ini *ini, const char *name, size_t len,
    unsigned int line, char err[ERR_LEN])
{
	if (ini_full(ini, err) < 0)
		return -1;
	for (size_t i = 0; i < ini->nsections; i++)
		if (strlen(ini->sections[i]) == len &&
		    memcmp(ini->sections[i], name, len) == 0) {
			err_set(err, "duplicate section [%s] (first on line %u)",
			    ini->sections[i], ini->section_lines[i]);
			return -1;
		}
	ini->sections = xrealloc(ini->sections,
	    (ini->nsections + 1) * sizeof(*ini->sections));
	ini->section_lines = xrealloc(ini->section_lines,
	    (ini->nsections + 1) * sizeof(*ini->section_lines));
	ini->sections[ini->nsections] = xmemdup0(name, len);
	ini->section_lines[ini->nsections] = line;
	ini->nsections++;
	return 0;
}

static int
ini_add_key(struct ini *ini, const char *key, size_t klen, const char *value,
    size_t vlen, unsigned int line, char err[ERR_LEN])
{
	char *section = ini->sections[ini->nsections - 1];
	struct ini_entry *e;

	if (ini_full(ini, err) < 0)
		return -1;
	for (size_t i = 0; i < ini->n; i++) {
		e = &ini->v[i];
		if (e->section == section && strlen(e->key) == klen &&
		    memcmp(e->key, key, klen) == 0) {
			err_set(err, "duplicate key %s in [%s] (first on line "
			    "%u)", e->key, section, e->line);
			return -1;
		}
	}
	ini->v = xrealloc(ini->v, (ini->n + 1) * sizeof(*ini->v));
	e = &ini->v[ini->n++];
	e->section = section;
	e->key = xmemdup0(key, klen);
	e->value = xmemdup0(value, vlen);
	e->line = line;
	e->used = false;
	return 0;
}

/* One line (its end removed, bytes checked). *last_is_key: whether the
 * last key or section seen was a key (continuations go there). */
static int
ini_line(struct ini *ini, const char *s, size_t len, unsigned int line,
    bool *last_is_key, char err[ERR_LEN])
{
	size_t start = 0, end = len, eq, colon;
	const char *p;

	ini_trim(s, &start, &end);
	if (start == end || s[start] == '#' || s[start] == ';')
		return 0;			/* blank or comment */
	if (start > 0) {			/* an indented line */
		struct ini_entry *e;
		size_t old;

		if (!*last_is_key) {
			err_set(err, "indented line continues no key");
			return -1;
		}
		e = &ini->v[ini->n - 1];
		old = strlen(e->value);
		e->value = xrealloc(e->value, old + 1 + (end - start) + 1);
		if (old > 0)
			e->value[old++] = '\n';
		memcpy(e->value + old, s + start, end - start);
		e->value[old + end - start] = '\0';
		return 0;
	}
	if (s[0] == '[') {
		/* As iniconfig: a comment may follow the header. */
		for (end = 0; end < len && s[end] != '#' && s[end] != ';';)
			end++;
		while (end > 0 && ini_blank(s[end - 1]))
			end--;
		if (end < 2 || s[end - 1] != ']') {
			err_set(err, "a section header must be [name]");
			return -1;
		}
		if (end == 2) {
			err_set(err, "empty section name");
			return -1;
		}
		*last_is_key = false;
		return ini_add_section(ini, s + 1, end - 2, line, err);
	}
	/* key = value, or key: value (iniconfig: '=' unless the part
	 * before it holds a ':'). */
	p = memchr(s, '=', len);
	eq = p != NULL ? (size_t)(p - s) : len;
	p = memchr(s, ':', len);
	colon = p != NULL ? (size_t)(p - s) : len;
	if (colon < eq)
		eq = colon;
	if (eq == len) {
		err_set(err, "expected key = value, [section] or a comment");
		return -1;
	}
	if (ini->nsections == 0) {
		err_set(err, "key before the first [section]");
		return -1;
	}
	start = 0, end = eq;
	ini_trim(s, &start, &end);
	if (start == end) {
		err_set(err, "empty key");
		return -1;
	}
	{
		size_t vs = eq + 1, ve = len;

		ini_trim(s, &vs, &ve);
		*last_is_key = true;
		return ini_add_key(ini, s + start, end - start, s + vs,
		    ve - vs, line, err);
	}
}

int
ini_parse(struct ini *ini, const char *name, const char *data, size_t len,
    char err[ERR_LEN])
{
	char reason[ERR_LEN];
	bool last_is_key = false;
	unsigned int line = 0;
	size_t pos = 0;

	memset(ini, 0, sizeof(*ini));
	ini->name = xstrdup(name);
	if (len > INI_MAX_BYTES) {
		err_set(err, "%s: %zu bytes, at most %d", name, len,
		    INI_MAX_BYTES);
		goto fail;
	}
	while (pos < len) {
		const char *s = data + pos, *nl;
		size_t n;

		line++;
		nl = memchr(s, '\n', len - pos);
		n = nl != NULL ? (size_t)(nl - s) : len - pos;
		pos += n + (nl != NULL);
		if (n > 0 && s[n - 1] == '\r')
			n--;			/* CRLF */
		if (n > INI_MAX_LINE) {
			err_set(err, "%s:%u: line longer than %d bytes", name,
			    line, INI_MAX_LINE);
			goto fail;
		}
		if (ini_check_bytes(s, n, reason) < 0 ||
		    ini_line(ini, s, n, line, &last_is_key, reason) < 0) {
			err_set(err, "%s:%u: %s", name, line, reason);
			goto fail;
		}
	}
	return 0;
fail:
	ini_clear(ini);
	return -1;
}

int
ini_load(struct ini *ini, const char *path, char err[ERR_LEN])
{
	char *data = NULL;
	size_t len = 0;
	struct stat st;
	ssize_t r;
	int fd, rc;

	memset(ini, 0, sizeof(*ini));
	/* O_NONBLOCK: a FIFO put there must not hang the start. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK))
	    < 0) {
		err_set(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		err_set(err, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(err, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_size > INI_MAX_BYTES) {
		err_set(err, "%s: %lld bytes, at most %d", path,
		    (long long)st.st_size, INI_MAX_BYTES);
		close(fd);
		return -1;
	}
	/* One byte more than allowed: a file that grew shows. */
	data = xmalloc(INI_MAX_BYTES + 1);
	while (len < INI_MAX_BYTES + 1) {
		r = read(fd, data + len, INI_MAX_BYTES + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err_set(err, "%s: %s", path, strerror(errno));
			free(data);
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	rc = ini_parse(ini, path, data, len, err);
	free(data);
	return rc;
}

void
ini_clear(struct ini *ini)
{
	for (size_t i = 0; i < ini->n; i++) {
		free(ini->v[i].key);
		free(ini->v[i].value);
	}
	for (size_t i = 0; i < ini->nsections; i++)
		free(ini->sections[i]);
	free(ini->v);
	free(ini->sections);
	free(ini->section_lines);
	free(ini->name);
	memset(ini, 0, sizeof(*ini));
}

bool
ini_has_section(const struct ini *ini, const char *section,
    unsigned int *line)
{
	for (size_t i = 0; i < ini->nsections; i++)
		if (strcmp(ini->sections[i], section) == 0) {
			if (line != NULL)
				*line = ini->section_lines[i];
			return true;
		}
	return false;
}

const struct ini_entry *
ini_get(struct ini *ini, const char *section, const char *key)
{
	for (size_t i = 0; i < ini->n; i++)
		if (strcmp(ini->v[i].section, section) == 0 &&
		    strcmp(ini->v[i].key, key) == 0) {
			ini->v[i].used = true;
			return &ini->v[i];
		}
	return NULL;
}

const struct ini_entry *
ini_next_unused(const struct ini *ini, size_t *pos)
{
	while (*pos < ini->n) {
		const struct ini_entry *e = &ini->v[(*pos)++];

		if (!e->used)
			return e;
	}
	return NULL;
}
