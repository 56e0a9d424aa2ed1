/*
 * libFuzzer target for proxyd's OpenPGP decryptor: anything may be
 * rejected, nothing may crash or leak, and what is accepted must look like
 * a token (non-empty, trimmed, no NUL). Each input is tried four ways: as
 * the binary message ("openpgp:" + its base64), as the token text itself,
 * as a decrypted packet stream (the inner grammar, compression and UTF-8
 * checks, which the AEAD otherwise keeps out of the fuzzer's reach) and as
 * an armored keyring.
 *
 * The keyring is the test keyring-v6.asc of tests/data/openpgp,
 * embedded so the target runs anywhere; it is loaded once and kept.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "openpgp.h"
#include "openpgp_private.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* TEST key only: tests/data/openpgp/keyring-v6.asc. */
static const char fuzz_keyring_v6[] =
	"-----BEGIN PGP PRIVATE KEY BLOCK-----\n"
	"\n"
	"xUsGaVW5ABsAAAAgExaMBDBATooD3ti9/DqhHy8zgS0ls9Zuqugv4LDjnNUA\n"
	"QqnNeeeFDn27qCD66uIsnDRsnRVQ5Ip61fdkz4qIwynCuwYfGwoAAABMBYJp\n"
	"VbkAAwsHCQUVCggODAQWAAIBApsDAh4JIqEGl3p6Ja5wrfPOtTOTce3FOudg\n"
	"9ZKKrjDayIIdgwFprSgNJwcCCQIHAwkDBwEJAQAAAAAnhCAodBaQjGfZE8Hd\n"
	"UBwwcJ0ezhavMI1CTc9gzqnzI80uytERUT7DbXM3SvXfk0CJldXx0Af3V0Bc\n"
	"Sf8Gus+l6d9Blj/WPwdFxhKoza4GobgMUt9Qob6/8PGULxwFQ+qJ6QXHSwZp\n"
	"VbkAGQAAACDlts/j8tJCO8T6SrX/IEGga8FgR55xwOAM71v1EJadQACg7PnH\n"
	"JbOdDJPuACtqge7yOpWnOEdnEOTvAzVWk0cQccKbBhgbCgAAACwFgmlVuQAC\n"
	"mwwioQaXenolrnCt8861M5Nx7cU652D1koquMNrIgh2DAWmtKAAAAAAEqCAj\n"
	"ddSmJXlVWuvnEgKV2B3jmPpvIIjgw1tjPZ4rmoDqyopsMJT5lgdnVhuyEglG\n"
	"Q0Gdrqy8XU0LVv5jSEDvH3zeZi5h960pHsJVY5iY7w4i+U9W7rLq2X9ikypK\n"
	"T6pSBwg=\n"
	"-----END PGP PRIVATE KEY BLOCK-----\n"
	"-----BEGIN PGP PRIVATE KEY BLOCK-----\n"
	"Comment: test key 2, 64-column base64 with a CRC-24 line\n"
	"\n"
	"xUsGaVW5ABsAAAAgKeHTCe0VqC4pXz3lLv5Jm52Fbo77XxAmE6X+Y5D70TkAk6Ln\n"
	"7daI7SxUjXh6nzJ7rnHbqwIvm3awIsT2n/KA/HTCuwYfGwoAAABMBYJpVbkAAwsH\n"
	"CQUVCggODAQWAAIBApsDAh4JIqEGCo2wZrEiWS3l4Su6HgnnHUhlCmX16mR8RkZP\n"
	"k8UVWf8NJwcCCQIHAwkDBwEJAQAAAACenCDBoX6pK7R9XzbK0eQghwJTEJ811iV0\n"
	"lS+7F3qP28Ac35mJ9E0ycnEeX2+5ZvN+qsBxUCCUSDTp+wayl0acRDb+Eli6bG+t\n"
	"3EDb94YAk2pyejSMN1LpanSbcbyHfxVqvwvNHjxub3RpZmllcnMtc2hhcmVkQGV4\n"
	"YW1wbGUub3JnPsKbBhMbCgAAACwFgmlVuQACGQEioQYKjbBmsSJZLeXhK7oeCecd\n"
	"SGUKZfXqZHxGRk+TxRVZ/wAAAADs0SBcJ4N8DV70SYYVn0bob6yQW2x8nT61g4Td\n"
	"t87BVLKQoF5jr4d3Sdsb8a/ftmftYpjsFblnlc7QtG/+KUgz7KW5sz26lKwRsUo/\n"
	"GTqygmipxxZAkBrZ/Mr7rqyga2XlJwDHSwZpVbkAGQAAACBKGawtQXsMZIqPpbZ4\n"
	"y8JwCUZGdtX7xaQTxGKeB9/UQQAYVbF8zy3wIIQhMNsHbRNvomMisoEiu3AUt99G\n"
	"a/zNQMKbBhgbCgAAACwFgmlVuQACmwwioQYKjbBmsSJZLeXhK7oeCecdSGUKZfXq\n"
	"ZHxGRk+TxRVZ/wAAAACpyyA1Cg6MCKEa09F0zHJkY4bgYhz8v8Rke9qH8ts/Nqo7\n"
	"nb6VFpT4AI7n/jPGcS27fTze9+cg0bZH2phleIiKAedaan4s8NPPIboOiorWnm0c\n"
	"k4Z5fFjb0ItT/ZXv7yQiUwA=\n"
	"=hWHk\n"
	"-----END PGP PRIVATE KEY BLOCK-----\n";

static void
fuzz_check(enum openpgp_error e, char *plain)
{
	size_t n;

	if (e != OPENPGP_OK) {
		if (plain != NULL || openpgp_error_name(e) == NULL)
			abort();
		return;
	}
	if (plain == NULL || (n = strlen(plain)) == 0 ||
	    plain[0] == ' ' || plain[n - 1] == ' ')
		abort();
	free(plain);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static struct openpgp_keyring *kr;	/* loaded once, kept */
	struct openpgp_keyring *other;
	struct buf tok;
	char err[ERR_LEN], *plain = NULL;
	enum openpgp_error e;

	if (kr == NULL && (kr = openpgp_keyring_load(fuzz_keyring_v6,
	    sizeof(fuzz_keyring_v6) - 1, err)) == NULL)
		abort();

	buf_init(&tok);
	buf_append_str(&tok, "openpgp:");
	base64_encode(&tok, data, len);
	e = openpgp_decrypt_token(kr, tok.data, tok.len, &plain, err);
	fuzz_check(e, plain);
	buf_clear(&tok);

	e = openpgp_decrypt_token(kr, (const char *)data, len, &plain, err);
	fuzz_check(e, plain);

	e = openpgp_message_literal(data, len, &plain, err);
	fuzz_check(e, plain);

	other = openpgp_keyring_load((const char *)data, len, err);
	if (other != NULL && openpgp_keyring_count(other) == 0)
		abort();
	openpgp_keyring_free(other);
	return 0;
}
