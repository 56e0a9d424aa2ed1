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
	"xUsGaDuYABsAAAAgiP01tF9Ag9d81nnX+3oTnfPJK1U8QnreomKTyKDgUcAA\n"
	"rOiDD0UpQ6zhLtXEbVJinvCFm1gwO5BYD1nDEL0WKgfCuwYfGwoAAABMBYJo\n"
	"O5gAAwsHCQUVCggODAQWAAIBApsDAh4JIqEGlBKBisg8FIjeLfdyAJpItYUY\n"
	"aLYpjLW2OleYuh3/4o0NJwcCCQIHAwkDBwEJAQAAAACL9yAO5llUh94wZ/Ic\n"
	"w0+EAN2YjG1UFeoLF654Hve4vJ/udb+2Jr0KhboqkANZWg4w7W5LHheyi/Kd\n"
	"wHIwhU45NDGlLfZkC4F7lZFz+iTI/wXJNbwVLMLS/hXksVhvyy3wWgvHSwZo\n"
	"O5gAGQAAACA2q9cxfhJ2E9/N9kOameVAwP3R6od1Zsq+Lb7Hnr9ETQAgH/by\n"
	"DiDCaa4VIrRBiQhN5B3Vj2gy2BQho7UVfgMfUMKbBhgbCgAAACwFgmg7mAAC\n"
	"mwwioQaUEoGKyDwUiN4t93IAmki1hRhotimMtbY6V5i6Hf/ijQAAAADHFCBr\n"
	"TTMjCbZOx6mRlpvZhsIO7PSIC2QFZn+wGtFeaTIZa7IeSplSFRX7wMSm147i\n"
	"kpK8IvKD41qeeHGWMKbTur271x8O9otsKFvDJ1AgkQ+zmKqxA/ouncHWfTcb\n"
	"Py8lVw8=\n"
	"-----END PGP PRIVATE KEY BLOCK-----\n"
	"-----BEGIN PGP PRIVATE KEY BLOCK-----\n"
	"Comment: second key, armored with CRC24 footer\n"
	"\n"
	"xUsGaDuYABsAAAAgV0t9cok+kcERxvJ6pX6/LdL1vOiyPC/Y4MR9odipS78AtgDo\n"
	"VCmyX7yHJORTD/GGcBMmIwnSTDavz6/qa2w1X+jCuwYfGwoAAABMBYJoO5gAAwsH\n"
	"CQUVCggODAQWAAIBApsDAh4JIqEGm1zvUrHKVhMVfUVmouXP5B4QkgJd9ZKra9fQ\n"
	"Mzu3jPINJwcCCQIHAwkDBwEJAQAAAADRuCA2YUdGusAHpLEh/m1FI7D0nelpWipw\n"
	"F5mRBHwysU2nwWK8Oli57KQRtD4ezQTeMs/OoY8bkXoo3vvOqsDyVthbJgaRoDzv\n"
	"KcM4AkHgavHq6FLmv/xaeHWWdAC+ulrJjQXNHjxub3RpZmllcnMtc2hhcmVkQGV4\n"
	"YW1wbGUub3JnPsKbBhMbCgAAACwFgmg7mAACGQEioQabXO9SscpWExV9RWai5c/k\n"
	"HhCSAl31kqtr19AzO7eM8gAAAACY7yADXchftlppX9S9ItazzGTa35becZF1cthB\n"
	"NOfHS8zO0ErDRx8tnjDqgPahFbuVXIq/SBgfHpECRvV0FeAx/ghFvYqTltRsmMP0\n"
	"NXpGNZULL5dr6NvICkiFEkKIiEsEAwLHSwZoO5gAGQAAACD+3RxDjr3nvLn9Igba\n"
	"mH8Yx2rTtVDqE1cutCGyrhe/WQBIAVwLF6WT7cZnzpqUEG2w2TMDkVkT3GGSY9JQ\n"
	"OuQvY8KbBhgbCgAAACwFgmg7mAACmwwioQabXO9SscpWExV9RWai5c/kHhCSAl31\n"
	"kqtr19AzO7eM8gAAAADUviCfckm27m0qdkebkvxdvpyeH4YAxddR2l1FEEwW9Wkq\n"
	"gewUkYSrrlsiIsCtEsBTTc0ap7UiupMYCuNS0vjsC3ePJJKuOT4ix6x6fxesPSmA\n"
	"4RXCuKPqhGJ1pAvGtm2qgwo=\n"
	"=pY6B\n"
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
