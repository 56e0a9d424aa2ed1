/*
 * libFuzzer target for the readers of chatmaild's files
 * (metadata-dictd/chatmaild_parse.c) and of the TURN helper's answer
 * (dict_turn_parse): the first byte picks the parser, the rest is the
 * file. Anything may be rejected, nothing may crash, and what is accepted
 * must hold together: tokens and credentials lie within the input, the
 * queue file's parts add up to it, its address passes the address check.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dictd.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_metadata(const char *data, size_t len)
{
	struct chatmaild_tokens t;
	char err[ERR_LEN];
	size_t total = 0;

	if (chatmaild_parse_metadata(data, len, &t, err) < 0) {
		if (t.n != 0 || t.v != NULL)
			abort();	/* a failure leaves nothing behind */
		return;
	}
	for (size_t i = 0; i < t.n; i++) {
		total += t.v[i].len;
		if (t.v[i].token[t.v[i].len] != '\0' ||
		    (t.v[i].ts != CHATMAILD_TS_NONE && t.v[i].ts <= 0))
			abort();
	}
	/* JSON escapes only ever shrink: "\u00e4" is 6 bytes for 2. */
	if (total > len)
		abort();
	chatmaild_tokens_clear(&t);
}

static void
fuzz_pending(const char *data, size_t len)
{
	struct chatmaild_pending p;
	char err[ERR_LEN];
	size_t addr_len;

	if (chatmaild_parse_pending(data, len, &p, err) < 0)
		return;
	addr_len = strlen(p.addr);
	if (chatmaild_parse_addr(p.addr, addr_len, err) < 0 ||
	    p.start_ts < 0 || addr_len + p.token_len + 3 > len ||
	    memcmp(data + len - p.token_len, p.token, p.token_len) != 0)
		abort();
	chatmaild_pending_clear(&p);
}

static void
fuzz_turn(const char *data, size_t len)
{
	char err[ERR_LEN];
	size_t n = 0;

	for (int eof = 0; eof < 2; eof++) {
		int rc = dict_turn_parse(data, len, eof, &n, err);

		if (rc == 0 && (eof || len >= DICT_TURN_REPLY_MAX_BYTES))
			abort();	/* undecided only while more may come */
		if (rc > 0 && (n == 0 || n >= len ||
		    memchr(data, ':', n) == NULL || memchr(data, ' ', n)))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const char *file = (const char *)data + 1;

	if (len == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_metadata(file, len - 1);
		break;
	case 1:
		fuzz_pending(file, len - 1);
		break;
	default:
		fuzz_turn(file, len - 1);
		break;
	}
	return 0;
}
