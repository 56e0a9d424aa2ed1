/* Unit tests of proxyd/openpgp/openpgp_*.c against the OpenPGP.js-made vectors of
 * tests/data/openpgp (README there): every row of vectors.tsv, every
 * truncation and every single-bit flip of the control message, the
 * keyring files, RFC 9580 A.8, broken keyrings, and the inner message
 * grammar and limits through the private interface. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <zlib.h>

#include "base64.h"
#include "openpgp.h"
#include "openpgp_private.h"
#include "xmalloc.h"

#define VECTORS_MAX	128
#define KEYRINGS_MAX	8
#define CTL_ROW		"ctl_base_for_mutations_k1"
#define THREADS		4
#define THREAD_ROUNDS	25

struct vector {
	char	*name;
	char	*keyring;
	char	*input;
	char	*expected;
};

struct fixture {
	char			 dir[1024];
	struct vector		 v[VECTORS_MAX];
	size_t			 nv;
	char			*kr_name[KEYRINGS_MAX];
	struct openpgp_keyring	*kr[KEYRINGS_MAX];
	size_t			 nkr;
};

/* TESTDATA (the Makefile sets it), else tests/data from the repo root,
 * where make runs the tests. */
static void
fixture_dir(struct fixture *f)
{
	const char *td = getenv("TESTDATA");

	snprintf(f->dir, sizeof(f->dir), "%s/openpgp",
	    td != NULL && *td != '\0' ? td : "tests/data");
}

static char *
read_text(const struct fixture *f, const char *name, size_t *len_out)
{
	char path[1200];
	FILE *fp;
	char *p;
	long n;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	if ((fp = fopen(path, "rb")) == NULL)
		fail_msg("cannot open %s (set TESTDATA)", path);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	p = xmalloc((size_t)n + 1);
	assert_int_equal(fread(p, 1, (size_t)n, fp), (size_t)n);
	p[n] = '\0';
	fclose(fp);
	if (len_out != NULL)
		*len_out = (size_t)n;
	return p;
}

static const struct openpgp_keyring *
fixture_keyring(struct fixture *f, const char *name)
{
	char err[ERR_LEN], path[1200];

	for (size_t i = 0; i < f->nkr; i++)
		if (strcmp(f->kr_name[i], name) == 0)
			return f->kr[i];
	assert_true(f->nkr < KEYRINGS_MAX);
	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	f->kr[f->nkr] = openpgp_keyring_load_file(path, err);
	if (f->kr[f->nkr] == NULL)
		fail_msg("keyring %s: %s", name, err);
	f->kr_name[f->nkr] = xstrdup(name);
	return f->kr[f->nkr++];
}

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char *text, *line, *save = NULL;
	bool header = true;

	fixture_dir(f);
	text = read_text(f, "vectors.tsv", NULL);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char *fields[4], *fsave = NULL;
		size_t n = 0;

		if (header) {		/* name keyring input expected */
			header = false;
			continue;
		}
		for (char *t = strtok_r(line, "\t", &fsave); t != NULL && n < 4;
		    t = strtok_r(NULL, "\t", &fsave))
			fields[n++] = t;
		assert_int_equal(n, 4);
		assert_true(f->nv < VECTORS_MAX);
		f->v[f->nv].name = xstrdup(fields[0]);
		f->v[f->nv].keyring = xstrdup(fields[1]);
		f->v[f->nv].input = xstrdup(fields[2]);
		f->v[f->nv].expected = xstrdup(fields[3]);
		f->nv++;
	}
	free(text);
	assert_true(f->nv > 60);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (f == NULL)		/* the setup failed */
		return 0;
	for (size_t i = 0; i < f->nv; i++) {
		free(f->v[i].name);
		free(f->v[i].keyring);
		free(f->v[i].input);
		free(f->v[i].expected);
	}
	for (size_t i = 0; i < f->nkr; i++) {
		openpgp_keyring_free(f->kr[i]);
		free(f->kr_name[i]);
	}
	free(f);
	return 0;
}

static const struct vector *
fixture_vector(const struct fixture *f, const char *name)
{
	for (size_t i = 0; i < f->nv; i++)
		if (strcmp(f->v[i].name, name) == 0)
			return &f->v[i];
	fail_msg("no vector %s", name);
	return NULL;
}

/* Decrypt a binary message given as bytes (base64 + prefix added). */
static enum openpgp_error
decrypt_binary(const struct openpgp_keyring *kr, const uint8_t *bin,
    size_t len, char **plain_out, char err[ERR_LEN])
{
	struct buf tok;
	enum openpgp_error e;

	buf_init(&tok);
	buf_append_str(&tok, "openpgp:");
	base64_encode(&tok, bin, len);
	e = openpgp_decrypt_token(kr, tok.data, tok.len, plain_out, err);
	buf_clear(&tok);
	return e;
}

/* The binary message of a row. */
static uint8_t *
vector_binary(const struct vector *v, size_t *len_out)
{
	const char *b64 = v->input + strlen("openpgp:");
	struct buf b;

	assert_memory_equal(v->input, "openpgp:", 8);
	buf_init(&b);
	assert_int_equal(base64_decode(&b, b64, strlen(b64)), 0);
	return (uint8_t *)buf_steal(&b, len_out);
}

/* The groups of the README and how each fares. */
static const char *const groups[] = {
	"core_", "edge_", "ctl_", "rfc_", "rfc9580_", "neg_", "legacy_"
};
#define NGROUPS	(sizeof(groups) / sizeof(*groups))

static size_t
vector_group(const char *name)
{
	size_t best = NGROUPS, best_len = 0;

	for (size_t g = 0; g < NGROUPS; g++) {
		size_t n = strlen(groups[g]);

		if (strncmp(name, groups[g], n) == 0 && n > best_len) {
			best = g;
			best_len = n;
		}
	}
	return best;
}

static void
test_vectors(void **state)
{
	struct fixture *f = *state;
	size_t pass[NGROUPS + 1] = { 0 }, total[NGROUPS + 1] = { 0 };
	size_t kind_mismatch = 0;
	char failed[2048] = "", err[ERR_LEN];

	for (size_t i = 0; i < f->nv; i++) {
		const struct vector *v = &f->v[i];
		const struct openpgp_keyring *kr = fixture_keyring(f,
		    v->keyring);
		size_t g = vector_group(v->name);
		bool want_error = strncmp(v->expected, "ERROR:", 6) == 0;
		bool ok;
		char *plain = NULL;
		enum openpgp_error e;

		err[0] = '\0';
		e = openpgp_decrypt_token(kr, v->input, strlen(v->input),
		    &plain, err);
		total[g]++;
		if (want_error) {
			ok = e != OPENPGP_OK && plain == NULL;
			if (ok && strcmp(openpgp_error_name(e),
			    v->expected + 6) != 0)
				kind_mismatch++;
			print_message("  %-42s %-12s expected %-12s %s\n",
			    v->name, openpgp_error_name(e), v->expected + 6,
			    err);
		} else {
			ok = e == OPENPGP_OK && plain != NULL &&
			    strcmp(plain, v->expected) == 0;
			if (!ok)
				print_message("  %-42s %-12s %s\n", v->name,
				    openpgp_error_name(e), err);
		}
		if (ok)
			pass[g]++;
		else if (strlen(failed) + strlen(v->name) + 2 <
		    sizeof(failed)) {
			strcat(failed, " ");
			strcat(failed, v->name);
		}
		free(plain);
	}
	for (size_t g = 0; g < NGROUPS; g++)
		print_message("  group %-10s %zu/%zu\n", groups[g], pass[g],
		    total[g]);
	print_message("  error kinds differing from the README: %zu "
	    "(advisory)\n", kind_mismatch);
	assert_int_equal(total[NGROUPS], 0);	/* every row has a group */
	if (failed[0] != '\0')
		fail_msg("rows failing:%s", failed);
}

/* Every proper prefix of the control message must be refused. */
static void
test_truncations(void **state)
{
	struct fixture *f = *state;
	const struct vector *v = fixture_vector(f, CTL_ROW);
	const struct openpgp_keyring *kr = fixture_keyring(f, v->keyring);
	char err[ERR_LEN], *plain;
	size_t len;
	uint8_t *bin = vector_binary(v, &len);

	assert_int_equal(decrypt_binary(kr, bin, len, &plain, err),
	    OPENPGP_OK);
	free(plain);
	for (size_t n = 0; n < len; n++) {
		enum openpgp_error e = decrypt_binary(kr, bin, n, &plain, err);

		if (e == OPENPGP_OK)
			fail_msg("%s truncated to %zu octets decrypted",
			    CTL_ROW, n);
		assert_null(plain);
	}
	free(bin);
}

/* Every single-bit flip of the control message must be refused. */
static void
test_bit_flips(void **state)
{
	struct fixture *f = *state;
	const struct vector *v = fixture_vector(f, CTL_ROW);
	const struct openpgp_keyring *kr = fixture_keyring(f, v->keyring);
	size_t kinds[OPENPGP_ERR_INTERNAL + 1] = { 0 }, len;
	char err[ERR_LEN], *plain;
	uint8_t *bin = vector_binary(v, &len);

	for (size_t bit = 0; bit < len * 8; bit++) {
		enum openpgp_error e;

		bin[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		e = decrypt_binary(kr, bin, len, &plain, err);
		bin[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (e == OPENPGP_OK)
			fail_msg("%s with bit %zu flipped decrypted to %s",
			    CTL_ROW, bit, plain);
		assert_null(plain);
		kinds[e]++;
	}
	for (int k = 1; k <= OPENPGP_ERR_INTERNAL; k++)
		if (kinds[k] > 0)
			print_message("  bit flips refused as %-12s %zu\n",
			    openpgp_error_name((enum openpgp_error)k),
			    kinds[k]);
	assert_int_equal(kinds[OPENPGP_ERR_INTERNAL], 0);
	free(bin);
}

static void
test_keyring_files(void **state)
{
	static const struct {
		const char	*file;
		size_t		 keys;	/* 0: must be refused */
	} rows[] = {
		{ "keyring-v6.asc", 2 },
		{ "keyring-v6-oneblock.asc", 2 },
		{ "keyring-v4.asc", 1 },
		{ "rfc9580-a4-secret.asc", 1 },
		{ "cert-v6.asc", 0 },		/* public keys only */
		{ "cert-v4.asc", 0 },
		{ "rfc9580-a3-cert.asc", 0 },
		{ "rfc9580-a8-message.asc", 0 },	/* a message */
		{ "vectors.tsv", 0 },
	};
	struct fixture *f = *state;
	struct openpgp_keyring *kr;
	char err[ERR_LEN], path[1200], *text;
	size_t len;

	for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
		text = read_text(f, rows[i].file, &len);
		kr = openpgp_keyring_load(text, len, err);
		if (rows[i].keys == 0 && kr != NULL)
			fail_msg("%s: loaded as a keyring", rows[i].file);
		if (rows[i].keys > 0 && kr == NULL)
			fail_msg("%s: %s", rows[i].file, err);
		if (kr != NULL)
			assert_int_equal(openpgp_keyring_count(kr),
			    rows[i].keys);
		openpgp_keyring_free(kr);
		free(text);
		snprintf(path, sizeof(path), "%s/%s", f->dir, rows[i].file);
		kr = openpgp_keyring_load_file(path, err);
		assert_true((kr != NULL) == (rows[i].keys > 0));
		openpgp_keyring_free(kr);
	}
	assert_null(openpgp_keyring_load_file("/nonexistent/keyring.asc",
	    err));
	assert_null(openpgp_keyring_load_file("/", err));
}

/* Replace the first occurrence of from by to in a copy of text. */
static char *
replace(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	struct buf b;

	assert_non_null(at);
	buf_init(&b);
	buf_append(&b, text, (size_t)(at - text));
	buf_append_str(&b, to);
	buf_append_str(&b, at + strlen(from));
	return buf_steal(&b, NULL);
}

/* Armor a binary keyring as one block. */
static char *
armor(const uint8_t *bin, size_t len)
{
	struct buf b64, out;

	buf_init(&b64);
	buf_init(&out);
	base64_encode(&b64, bin, len);
	buf_append_str(&out, "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n");
	for (size_t i = 0; i < b64.len; i += 64) {
		buf_append(&out, b64.data + i, b64.len - i < 64 ?
		    b64.len - i : 64);
		buf_append_char(&out, '\n');
	}
	buf_append_str(&out, "-----END PGP PRIVATE KEY BLOCK-----\n");
	buf_clear(&b64);
	return buf_steal(&out, NULL);
}

static size_t
load_count(const char *text)
{
	char err[ERR_LEN];
	struct openpgp_keyring *kr = openpgp_keyring_load(text, strlen(text),
	    err);
	size_t n = kr != NULL ? openpgp_keyring_count(kr) : 0;

	openpgp_keyring_free(kr);
	return n;
}

static void
test_keyring_garbage(void **state)
{
	struct fixture *f = *state;
	char *v6 = read_text(f, "keyring-v6-oneblock.asc", NULL), *t;
	struct buf bin, crlf;
	size_t blocks, key_at = 0;
	char err[ERR_LEN];

	assert_int_equal(load_count(""), 0);
	assert_int_equal(load_count("garbage\n"), 0);
	assert_int_equal(load_count("-----BEGIN PGP PRIVATE KEY BLOCK-----\n"
	    "\nxUsGaVW5ABsAAAAg\n"), 0);			/* no END */
	assert_int_equal(load_count("-----BEGIN PGP PRIVATE KEY BLOCK-----\n"
	    "\nxUs*aVW5\n-----END PGP PRIVATE KEY BLOCK-----\n"), 0);
	assert_int_equal(load_count("-----BEGIN PGP PRIVATE KEY BLOCK-----\n"
	    "\n-----END PGP PRIVATE KEY BLOCK-----\n"), 0);	/* empty */
	assert_null(openpgp_keyring_load("x", OPENPGP_KEYRING_MAX_BYTES + 1,
	    err));

	/* CRC lines are optional and never checked; CRLF is fine. */
	assert_int_equal(load_count(v6), 2);
	t = replace(v6, "-----END", "=AAAA\n-----END");
	assert_int_equal(load_count(t), 2);
	free(t);
	buf_init(&crlf);
	for (const char *p = v6; *p != '\0'; p++) {
		if (*p == '\n')
			buf_append_char(&crlf, '\r');
		buf_append_char(&crlf, *p);
	}
	assert_int_equal(load_count(crlf.data), 2);
	buf_clear(&crlf);

	/* Damage the first X25519 secret subkey (tag 7, v6, algo 25). */
	buf_init(&bin);
	assert_int_equal(openpgp_armor_decode(v6, strlen(v6),
	    "PGP PRIVATE KEY BLOCK", &bin, &blocks, err), 0);
	assert_int_equal(blocks, 1);
	for (size_t i = 0; i + 7 < bin.len; i++)
		if ((uint8_t)bin.data[i] == 0xc7 &&
		    (uint8_t)bin.data[i + 1] == 75 && bin.data[i + 2] == 6 &&
		    bin.data[i + 7] == OPENPGP_PK_X25519) {
			key_at = i + 2;
			break;
		}
	assert_true(key_at > 0);
	/* The secret no longer matches the public key. */
	bin.data[key_at + 60] ^= 0x10;
	t = armor((uint8_t *)bin.data, bin.len);
	assert_int_equal(load_count(t), 0);
	free(t);
	bin.data[key_at + 60] ^= 0x10;
	/* Passphrase-protected (S2K usage octet 253). */
	bin.data[key_at + 42] = (char)253;
	t = armor((uint8_t *)bin.data, bin.len);
	assert_int_equal(load_count(t), 0);
	free(t);
	bin.data[key_at + 42] = 0;
	/* A key packet cut short inside the armor. */
	t = armor((uint8_t *)bin.data, key_at + 40);
	assert_int_equal(load_count(t), 0);
	free(t);
	/* Unchanged, re-armored: still two keys. */
	t = armor((uint8_t *)bin.data, bin.len);
	assert_int_equal(load_count(t), 2);
	free(t);
	buf_clear(&bin);
	free(v6);
}

/* RFC 9580 A.8: the armored message equals the vector's binary and
 * decrypts with the A.4 key. */
static void
test_rfc9580_a8(void **state)
{
	struct fixture *f = *state;
	const struct vector *v = fixture_vector(f,
	    "rfc9580_a8_x25519_aead_ocb");
	const struct openpgp_keyring *kr = fixture_keyring(f,
	    "rfc9580-a4-secret.asc");
	char *text, *plain, err[ERR_LEN];
	size_t len, blocks, vlen;
	uint8_t *vbin;
	struct buf bin;

	text = read_text(f, "rfc9580-a8-message.asc", &len);
	buf_init(&bin);
	assert_int_equal(openpgp_armor_decode(text, len, "PGP MESSAGE", &bin,
	    &blocks, err), 0);
	assert_int_equal(blocks, 1);
	vbin = vector_binary(v, &vlen);
	assert_int_equal(bin.len, vlen);
	assert_memory_equal(bin.data, vbin, vlen);
	assert_int_equal(decrypt_binary(kr, (uint8_t *)bin.data, bin.len,
	    &plain, err), OPENPGP_OK);
	assert_string_equal(plain, "Hello, world!");
	free(plain);
	/* The A.4 key is not in the chatmail keyring. */
	assert_int_equal(decrypt_binary(fixture_keyring(f, "keyring-v6.asc"),
	    (uint8_t *)bin.data, bin.len, &plain, err), OPENPGP_ERR_NO_KEY);
	free(vbin);
	buf_clear(&bin);
	free(text);
}

static void
test_token_forms(void **state)
{
	struct fixture *f = *state;
	const struct vector *v = fixture_vector(f, "core_apns_k1");
	const struct openpgp_keyring *kr = fixture_keyring(f, v->keyring);
	const char *b64 = v->input + 8;
	char *plain, err[ERR_LEN], *big;

	/* Just the base64, without the prefix. */
	assert_int_equal(openpgp_decrypt_token(kr, b64, strlen(b64), &plain,
	    err), OPENPGP_OK);
	assert_string_equal(plain, v->expected);
	free(plain);
	/* Not NUL-terminated: len is what counts. */
	big = xstrdup(v->input);
	/* (another last character, whatever the vector's is) */
	big[strlen(big) - 1] = big[strlen(big) - 1] == 'A' ? 'B' : 'A';
	assert_int_not_equal(openpgp_decrypt_token(kr, big, strlen(big),
	    &plain, err), OPENPGP_OK);
	assert_null(plain);
	free(big);
	assert_int_equal(openpgp_decrypt_token(kr, "openpgp:", 8, &plain, err),
	    OPENPGP_ERR_MALFORMED);
	assert_int_equal(openpgp_decrypt_token(kr, "openpgp:QUJD\n", 13,
	    &plain, err), OPENPGP_ERR_BASE64);
	big = xmalloc(OPENPGP_TOKEN_MAX_BYTES + 8);
	memset(big, 'A', OPENPGP_TOKEN_MAX_BYTES + 8);
	assert_int_equal(openpgp_decrypt_token(kr, big,
	    OPENPGP_TOKEN_MAX_BYTES + 8, &plain, err), OPENPGP_ERR_TOO_LARGE);
	assert_null(plain);
	free(big);
	assert_string_equal(openpgp_error_name(OPENPGP_ERR_NO_KEY), "no-key");
	assert_string_equal(openpgp_error_name(OPENPGP_ERR_BASE64), "base64");
}

/* Inner message grammar, through the private entry point. */
static uint8_t *
packet(struct buf *b, uint8_t tag, const void *body, size_t len)
{
	uint8_t hdr[6] = { (uint8_t)(0xc0 | tag), 0xff };

	hdr[2] = (uint8_t)(len >> 24);
	hdr[3] = (uint8_t)(len >> 16);
	hdr[4] = (uint8_t)(len >> 8);
	hdr[5] = (uint8_t)len;
	buf_append(b, hdr, sizeof(hdr));
	buf_append(b, body, len);
	return (uint8_t *)b->data;
}

static void
literal(struct buf *b, const char *text)
{
	struct buf body;

	buf_init(&body);
	buf_append(&body, "b\0\0\0\0\0", 6);
	buf_append_str(&body, text);
	packet(b, OPENPGP_TAG_LITERAL, body.data, body.len);
	buf_clear(&body);
}

static enum openpgp_error
inner(const struct buf *b, char **plain_out)
{
	char err[ERR_LEN];

	return openpgp_message_literal((const uint8_t *)b->data, b->len,
	    plain_out, err);
}

/* A compressed packet (zlib) holding data. */
static void
compressed(struct buf *b, const void *data, size_t len)
{
	uLongf n = compressBound(len);
	uint8_t *z = xmalloc(n + 1);

	z[0] = OPENPGP_ZIP_ZLIB;
	assert_int_equal(compress(z + 1, &n, data, len), Z_OK);
	packet(b, OPENPGP_TAG_COMPRESSED, z, n + 1);
	free(z);
}

static void
test_inner_grammar(void **state)
{
	struct buf b, in1, in2;
	char *plain;
	uint8_t *zeros;

	(void)state;
	buf_init(&b);
	literal(&b, "  tok\t\n");
	assert_int_equal(inner(&b, &plain), OPENPGP_OK);
	assert_string_equal(plain, "tok");
	free(plain);
	/* Unicode white space is trimmed too (NO-BREAK SPACE, U+3000). */
	buf_reset(&b);
	literal(&b, "\xc2\xa0tok\xe3\x80\x80");
	assert_int_equal(inner(&b, &plain), OPENPGP_OK);
	assert_string_equal(plain, "tok");
	free(plain);
	/* Overlong, surrogate and NUL are refused. */
	buf_reset(&b);
	literal(&b, "a\xc0\xafz");
	assert_int_equal(inner(&b, &plain), OPENPGP_ERR_UTF8);
	buf_reset(&b);
	literal(&b, "a\xed\xa0\x80z");
	assert_int_equal(inner(&b, &plain), OPENPGP_ERR_UTF8);
	buf_reset(&b);
	packet(&b, OPENPGP_TAG_LITERAL, "b\0\0\0\0\0a\0b", 9);
	assert_int_equal(inner(&b, &plain), OPENPGP_ERR_UTF8);
	/* One-pass signatures must be matched by signatures. */
	buf_reset(&b);
	packet(&b, OPENPGP_TAG_ONE_PASS_SIG, "x", 1);
	literal(&b, "tok");
	assert_int_equal(inner(&b, &plain), OPENPGP_ERR_MALFORMED);
	packet(&b, OPENPGP_TAG_SIGNATURE, "x", 1);
	assert_int_equal(inner(&b, &plain), OPENPGP_OK);
	free(plain);
	packet(&b, OPENPGP_TAG_SIGNATURE, "x", 1);
	assert_int_equal(inner(&b, &plain), OPENPGP_ERR_MALFORMED);
	/* A nested encrypted message is not followed. */
	buf_reset(&b);
	packet(&b, OPENPGP_TAG_PKESK, "x", 1);
	literal(&b, "tok");
	assert_int_equal(inner(&b, &plain), OPENPGP_ERR_UNSUPPORTED);
	/* Compressed: fine once and twice nested, not three times. */
	buf_init(&in1);
	buf_init(&in2);
	literal(&in1, "tok");
	buf_reset(&b);
	compressed(&b, in1.data, in1.len);
	assert_int_equal(inner(&b, &plain), OPENPGP_OK);
	assert_string_equal(plain, "tok");
	free(plain);
	compressed(&in2, b.data, b.len);
	assert_int_equal(inner(&in2, &plain), OPENPGP_OK);
	free(plain);
	buf_reset(&b);
	compressed(&b, in2.data, in2.len);
	assert_int_equal(inner(&b, &plain), OPENPGP_ERR_TOO_LARGE);
	/* A bomb: 1 MiB of spaces compress to about a kilobyte. */
	zeros = xmalloc(1 << 20);
	memset(zeros, ' ', 1 << 20);
	buf_reset(&in1);
	literal(&in1, "tok");
	buf_append(&in1, zeros, 1 << 20);
	buf_reset(&b);
	compressed(&b, in1.data, in1.len);
	assert_true(b.len < 4096);
	assert_int_equal(inner(&b, &plain), OPENPGP_ERR_TOO_LARGE);
	free(zeros);
	/* The cap is what a token can be (OPENPGP_PLAIN_MAX_BYTES, 16
	 * KiB), not 64 KiB: a literal that inflates to just under it
	 * passes, one that inflates past it (20 KiB) does not. */
	zeros = xmalloc(20 * 1024 + 1);
	memset(zeros, ' ', 20 * 1024);
	memcpy(zeros, "tok", 3);
	/* 12 octets of packet and literal headers around the text */
	zeros[OPENPGP_PLAIN_MAX_BYTES - 12] = '\0';
	buf_reset(&in1);
	literal(&in1, (char *)zeros);
	assert_int_equal(in1.len, OPENPGP_PLAIN_MAX_BYTES);
	buf_reset(&b);
	compressed(&b, in1.data, in1.len);
	assert_int_equal(inner(&b, &plain), OPENPGP_OK);
	assert_string_equal(plain, "tok");
	free(plain);
	zeros[OPENPGP_PLAIN_MAX_BYTES - 12] = ' ';
	zeros[20 * 1024] = '\0';
	buf_reset(&in1);
	literal(&in1, (char *)zeros);
	buf_reset(&b);
	compressed(&b, in1.data, in1.len);
	assert_true(b.len < 1024);
	assert_int_equal(inner(&b, &plain), OPENPGP_ERR_TOO_LARGE);
	free(zeros);
	/* BZip2 and truncated zlib streams. */
	buf_reset(&b);
	packet(&b, OPENPGP_TAG_COMPRESSED, "\x03xyz", 4);
	assert_int_equal(inner(&b, &plain), OPENPGP_ERR_UNSUPPORTED);
	buf_reset(&b);
	compressed(&b, in2.data, in2.len);
	b.len -= 3;
	b.data[5] -= 3;
	assert_int_equal(inner(&b, &plain), OPENPGP_ERR_MALFORMED);
	/* More than OPENPGP_PACKETS_MAX packets. */
	buf_reset(&b);
	for (int i = 0; i < OPENPGP_PACKETS_MAX; i++)
		packet(&b, OPENPGP_TAG_PADDING, "", 0);
	literal(&b, "tok");
	assert_int_equal(inner(&b, &plain), OPENPGP_ERR_TOO_LARGE);
	buf_clear(&in1);
	buf_clear(&in2);
	buf_clear(&b);
}

struct thread_arg {
	const struct openpgp_keyring	*kr;
	const struct vector		*v;
	int				 failures;
};

static void *
thread_main(void *p)
{
	struct thread_arg *a = p;
	char err[ERR_LEN], *plain;

	for (int i = 0; i < THREAD_ROUNDS; i++) {
		if (openpgp_decrypt_token(a->kr, a->v->input,
		    strlen(a->v->input), &plain, err) != OPENPGP_OK ||
		    strcmp(plain, a->v->expected) != 0)
			a->failures++;
		free(plain);
	}
	return NULL;
}

/* One keyring shared by worker threads, as proxyd does. */
static void
test_threads(void **state)
{
	static const char *const rows[THREADS] = {
		"core_apns_k1", "core_fcm_k2", "rfc_aes128_eax_k2",
		"rfc_seipdv1_to_v6_key_k2"
	};
	struct fixture *f = *state;
	struct thread_arg args[THREADS];
	pthread_t tids[THREADS];

	for (int i = 0; i < THREADS; i++) {
		args[i].v = fixture_vector(f, rows[i]);
		args[i].kr = fixture_keyring(f, args[i].v->keyring);
		args[i].failures = 0;
		assert_int_equal(pthread_create(&tids[i], NULL, thread_main,
		    &args[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(tids[i], NULL), 0);
		assert_int_equal(args[i].failures, 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_keyring_files),
		cmocka_unit_test(test_keyring_garbage),
		cmocka_unit_test(test_rfc9580_a8),
		cmocka_unit_test(test_token_forms),
		cmocka_unit_test(test_inner_grammar),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
