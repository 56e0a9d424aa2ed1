/*
 * ASCII armor (RFC 9580 section 6) for keyring files: find every block
 * with the wanted label, skip its armor headers and its optional CRC-24
 * line, and base64-decode the lines between. The CRC is never checked:
 * section 6.1 says a decoder MUST NOT reject data for a missing or wrong
 * CRC, so checking it would buy nothing. Tokens use plain base64 without
 * armor; they are decoded by common/base64.c directly.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base64.h"
#include "openpgp_private.h"

#define ARMOR_DASHES		"-----"
#define ARMOR_LABEL_MAX_BYTES	64

/* One line of text without its line end. */
struct armor_line {
	const char	*p;
	size_t		 len;
};

static bool
armor_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
	    c == '\v' || c == '\f';
}

static bool
armor_is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Next line of text[*off..len) into *line, without "\n" or "\r\n" and
 * without trailing white space. false at the end of the text. */
static bool
armor_next_line(const char *text, size_t len, size_t *off,
    struct armor_line *line)
{
	const char *nl;
	size_t start = *off, n;

	if (start >= len)
		return false;
	nl = memchr(text + start, '\n', len - start);
	n = nl != NULL ? (size_t)(nl - (text + start)) : len - start;
	*off = start + n + (nl != NULL ? 1 : 0);
	while (n > 0 && armor_is_space(text[start + n - 1]))
		n--;
	line->p = text + start;
	line->len = n;
	return true;
}

/* true if line is "-----<word> <label>-----" (word BEGIN or END). */
static bool
armor_is_marker(const struct armor_line *line, const char *word,
    const char *label)
{
	size_t wl = strlen(word), ll = strlen(label), dl = strlen(ARMOR_DASHES);

	return line->len == dl + wl + 1 + ll + dl &&
	    memcmp(line->p, ARMOR_DASHES, dl) == 0 &&
	    memcmp(line->p + dl, word, wl) == 0 && line->p[dl + wl] == ' ' &&
	    memcmp(line->p + dl + wl + 1, label, ll) == 0 &&
	    memcmp(line->p + dl + wl + 1 + ll, ARMOR_DASHES, dl) == 0;
}

/* The CRC-24 line: '=' and exactly four base64 characters. Base64 data
 * never looks like that ('=' only pads at the very end, at most twice). */
static bool
armor_is_crc(const struct armor_line *line)
{
	if (line->len != 5 || line->p[0] != '=')
		return false;
	for (size_t i = 1; i < 5; i++)
		if (!armor_is_b64(line->p[i]))
			return false;
	return true;
}

/* An armor header "Key: Value" (section 6.2). Base64 has no ':'. */
static bool
armor_is_header(const struct armor_line *line)
{
	return memchr(line->p, ':', line->len) != NULL;
}

/* Decode one block whose BEGIN line was just read; *off is past it. */
static int
armor_decode_block(const char *text, size_t len, size_t *off,
    const char *label, struct buf *out, char err[ERR_LEN])
{
	struct armor_line line;
	struct buf b64;
	bool in_headers = true, done = false;
	int rc = -1;

	buf_init(&b64);
	while (!done && armor_next_line(text, len, off, &line)) {
		if (armor_is_marker(&line, "END", label)) {
			done = true;
			break;
		}
		if (in_headers) {
			/* Headers end at the blank line; tolerate a block
			 * without headers and without the blank line. */
			if (line.len == 0) {
				in_headers = false;
				continue;
			}
			if (armor_is_header(&line))
				continue;
			in_headers = false;
		}
		if (armor_is_crc(&line))
			continue;
		for (size_t i = 0; i < line.len; i++) {
			if (armor_is_space(line.p[i]))
				continue;
			if (!armor_is_b64(line.p[i]) && line.p[i] != '=') {
				err_set(err, "armor: invalid character 0x%02x "
				    "in %s block", (unsigned char)line.p[i],
				    label);
				goto out;
			}
			buf_append_char(&b64, line.p[i]);
		}
	}
	if (!done) {
		err_set(err, "armor: %s block without END line", label);
		goto out;
	}
	if (base64_decode(out, b64.data != NULL ? b64.data : "", b64.len) < 0) {
		err_set(err, "armor: invalid base64 in %s block", label);
		goto out;
	}
	rc = 0;
out:
	buf_clear(&b64);
	return rc;
}

int
openpgp_armor_decode(const char *text, size_t len, const char *label,
    struct buf *out, size_t *blocks_out, char err[ERR_LEN])
{
	struct armor_line line;
	size_t off = 0;

	*blocks_out = 0;
	if (strlen(label) > ARMOR_LABEL_MAX_BYTES) {
		err_set(err, "armor: label too long");
		return -1;
	}
	while (armor_next_line(text, len, &off, &line)) {
		/* Leading white space before the BEGIN line is tolerated. */
		while (line.len > 0 && armor_is_space(line.p[0])) {
			line.p++;
			line.len--;
		}
		if (!armor_is_marker(&line, "BEGIN", label))
			continue;
		if (armor_decode_block(text, len, &off, label, out, err) < 0)
			return -1;
		(*blocks_out)++;
	}
	return 0;
}
