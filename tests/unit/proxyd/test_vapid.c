/* Unit tests of proxyd/providers/webpush/vapid.c: key files in the forms operators have
 * (PKCS#8, SEC1 with and without EC PARAMETERS; encrypted, other curves
 * and garbage refused), the subject rules, the origin as aud, and the
 * Authorization header as a push service checks it: k is our public
 * key, the JWT's header and claims are exact, exp is 12 h ahead (<= 24
 * h), and the raw r || s signature verifies against k (RFC 8292 §2-3).
 * The checker itself is first run on RFC 8292's own example token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "vapid.h"
#include "webpush_crypto.h"
#include "webpush_ua.h"

#define T0_MS		1700000000000LL
#define MIN_MS		(60LL * 1000)
#define SUBJECT		"mailto:push@example.com"
/* RFC 8292 §2.4 (docs/push-providers.md §3.4). */
#define RFC_KEY	"BA1Hxzyi1RUM1b5wjxsn7nGxAszw2u61m164i3MrAIxHF6YK5h" \
	"4SDYic-dRuU_RCPCfA5aq9ojSwk5Y2EmClBPs"
#define RFC_JWT	"eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJhdWQiOiJo" \
	"dHRwczovL3B1c2guZXhhbXBsZS5uZXQiLCJleHAiOjE0NTM1MjM3NjgsInN1YiI6Im1h" \
	"aWx0bzpwdXNoQGV4YW1wbGUuY29tIn0.i3CYb7t4xfxCDquptFOepC9GAu_HLGkMlMuC" \
	"GSK2rpiUfnK9ojFwDXb1JrErtmysazNjjvW2L9OkSSHzvoD1oA"
/* SEC1 files from `openssl ecparam -genkey` start with this block. */
#define EC_PARAMETERS_PEM "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n" \
	"-----END EC PARAMETERS-----\n"

/* The parts of a JWT as a push service sees them. */
struct jwt_parts {
	struct buf	header, claims;
};

/* Verify jwt's ES256 signature (raw r || s) against the base64url
 * public point k, as a push service does, and decode header and claims
 * into parts. 0 if it verifies. */
static int
verify_jwt(const char *jwt, const char *k, struct jwt_parts *parts)
{
	const char *d1 = strchr(jwt, '.'), *d2;
	uint8_t pt[65];
	struct buf sig;
	unsigned char *der = NULL;
	ECDSA_SIG *es;
	EVP_PKEY *key;
	EVP_MD_CTX *md;
	int derlen, ok;

	buf_init(&parts->header);
	buf_init(&parts->claims);
	buf_init(&sig);
	if (d1 == NULL || (d2 = strchr(d1 + 1, '.')) == NULL ||
	    strchr(d2 + 1, '.') != NULL || ua_b64(k, pt, 65) < 0 ||
	    base64url_decode(&parts->header, jwt, (size_t)(d1 - jwt)) < 0 ||
	    base64url_decode(&parts->claims, d1 + 1, (size_t)(d2 - d1 - 1)) <
	    0 || base64url_decode(&sig, d2 + 1, strlen(d2 + 1)) < 0 ||
	    sig.len != 64 || (key = ua_p256_key(NULL, pt)) == NULL) {
		buf_clear(&sig);
		return -1;
	}
	es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, BN_bin2bn((unsigned char *)sig.data, 32, NULL),
	    BN_bin2bn((unsigned char *)sig.data + 32, 32, NULL));
	derlen = i2d_ECDSA_SIG(es, &der);
	md = EVP_MD_CTX_new();
	ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestVerify(md, der, (size_t)derlen,
	    (const unsigned char *)jwt, (size_t)(d2 - jwt)) == 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	EVP_PKEY_free(key);
	buf_clear(&sig);
	return ok ? 0 : -1;
}

static void
parts_clear(struct jwt_parts *p)
{
	buf_clear(&p->header);
	buf_clear(&p->claims);
}

/* The checker accepts RFC 8292's example and refuses it altered. */
static void
test_checker_on_rfc8292_example(void **state)
{
	struct jwt_parts p;
	char bad[sizeof(RFC_JWT)];

	(void)state;
	assert_int_equal(verify_jwt(RFC_JWT, RFC_KEY, &p), 0);
	assert_string_equal(p.header.data,
	    "{\"typ\":\"JWT\",\"alg\":\"ES256\"}");
	assert_string_equal(p.claims.data, "{\"aud\":\"https://push.example"
	    ".net\",\"exp\":1453523768,\"sub\":\"mailto:push@example.com\"}");
	parts_clear(&p);
	strcpy(bad, RFC_JWT);
	bad[strlen(bad) - 3] = bad[strlen(bad) - 3] == 'A' ? 'B' : 'A';
	assert_int_equal(verify_jwt(bad, RFC_KEY, &p), -1);
	parts_clear(&p);
}

static char *
pem_of(EVP_PKEY *key, int form, size_t *len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *copy;
	long n;

	switch (form) {
	case 0:		/* PKCS#8 */
		assert_int_equal(PEM_write_bio_PrivateKey(bio, key, NULL, NULL,
		    0, NULL, NULL), 1);
		break;
	case 1:		/* SEC1 */
		assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, key,
		    NULL, NULL, 0, NULL, NULL), 1);
		break;
	default:	/* encrypted PKCS#8 */
		assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, key,
		    EVP_aes_128_cbc(), "pass", 4, NULL, NULL), 1);
		break;
	}
	n = BIO_get_mem_data(bio, &data);
	copy = malloc((size_t)n + 1);
	memcpy(copy, data, (size_t)n);
	copy[n] = '\0';
	*len = (size_t)n;
	BIO_free(bio);
	return copy;
}

static void
expect_same_key(EVP_PKEY *loaded, EVP_PKEY *orig)
{
	uint8_t a[65], b[65];
	char err[ERR_LEN];

	assert_non_null(loaded);
	assert_int_equal(webpush_crypto_public_point(loaded, a, err), 0);
	assert_int_equal(webpush_crypto_public_point(orig, b, err), 0);
	assert_memory_equal(a, b, 65);
	EVP_PKEY_free(loaded);
}

static void
test_key_forms(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	char err[ERR_LEN], *pem, *both;
	size_t len;

	(void)state;
	pem = pem_of(key, 0, &len);
	assert_non_null(strstr(pem, "BEGIN PRIVATE KEY"));
	expect_same_key(vapid_key_load_pem(pem, len, err), key);
	free(pem);

	pem = pem_of(key, 1, &len);
	assert_non_null(strstr(pem, "BEGIN EC PRIVATE KEY"));
	expect_same_key(vapid_key_load_pem(pem, len, err), key);
	both = malloc(len + sizeof(EC_PARAMETERS_PEM));
	strcpy(both, EC_PARAMETERS_PEM);
	strcat(both, pem);
	expect_same_key(vapid_key_load_pem(both, strlen(both), err), key);
	free(both);
	free(pem);

	/* Encrypted: refused at once, no passphrase prompt. */
	pem = pem_of(key, 2, &len);
	assert_non_null(strstr(pem, "BEGIN ENCRYPTED PRIVATE KEY"));
	assert_null(vapid_key_load_pem(pem, len, err));
	assert_non_null(strstr(err, "unencrypted"));
	free(pem);

	pem = pem_of(p384, 0, &len);
	assert_null(vapid_key_load_pem(pem, len, err));
	assert_non_null(strstr(err, "P-256"));
	free(pem);

	assert_null(vapid_key_load_pem("garbage", 7, err));
	assert_null(vapid_key_load_pem(EC_PARAMETERS_PEM,
	    strlen(EC_PARAMETERS_PEM), err));
	EVP_PKEY_free(p384);
	EVP_PKEY_free(key);
}

static void
test_key_file(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char path[] = "/tmp/vapid-test.XXXXXX", err[ERR_LEN], *pem, *big;
	size_t len;
	FILE *fp;
	int fd;

	(void)state;
	pem = pem_of(key, 0, &len);
	assert_true((fd = mkstemp(path)) >= 0);
	assert_true((fp = fdopen(fd, "w")) != NULL);
	assert_int_equal(fwrite(pem, 1, len, fp), len);
	fclose(fp);
	expect_same_key(vapid_key_load_file(path, err), key);

	/* Larger than VAPID_KEY_FILE_MAX_BYTES: refused, not truncated. */
	big = malloc(VAPID_KEY_FILE_MAX_BYTES + 1);
	memset(big, '\n', VAPID_KEY_FILE_MAX_BYTES + 1);
	memcpy(big, pem, len);
	assert_true((fp = fopen(path, "w")) != NULL);
	assert_int_equal(fwrite(big, 1, VAPID_KEY_FILE_MAX_BYTES + 1, fp),
	    VAPID_KEY_FILE_MAX_BYTES + 1);
	fclose(fp);
	assert_null(vapid_key_load_file(path, err));
	assert_non_null(strstr(err, "at most"));
	unlink(path);
	assert_null(vapid_key_load_file(path, err));
	assert_non_null(strstr(err, path));
	free(big);
	free(pem);
	EVP_PKEY_free(key);
}

static void
test_subjects(void **state)
{
	static const struct {
		const char	*subject;
		int		 ok;
	} rows[] = {
		{ "mailto:push@example.com", 1 },
		{ "https://example.com/contact", 1 },
		{ "http://example.com/", 0 },
		{ "mailto:", 0 },
		{ "https:", 0 },
		{ "MAILTO:push@example.com", 0 },
		{ "push@example.com", 0 },
		{ "mailto:a\"b@example.com", 0 },
		{ "mailto:a\\b@example.com", 0 },
		{ "mailto:a b@example.com", 0 },
		{ "mailto:a\nb@example.com", 0 },
		{ "mailto:\xc3\xa9@example.com", 0 },
	};
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	char err[ERR_LEN], long_subject[VAPID_SUBJECT_MAX_BYTES + 2];
	struct vapid *v;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
		v = vapid_new(key, rows[i].subject, err);
		if ((v != NULL) != rows[i].ok)
			fail_msg("row %zu (%s): %s", i, rows[i].subject,
			    v ? "accepted" : err);
		vapid_free(v);
	}
	v = vapid_new(key, NULL, err);
	assert_non_null(v);
	assert_string_equal(vapid_subject(v), VAPID_SUBJECT_DEFAULT);
	vapid_free(v);
	memset(long_subject, 'a', sizeof(long_subject) - 1);
	long_subject[sizeof(long_subject) - 1] = '\0';
	memcpy(long_subject, "mailto:", 7);
	assert_null(vapid_new(key, long_subject, err));
	long_subject[VAPID_SUBJECT_MAX_BYTES] = '\0';
	v = vapid_new(key, long_subject, err);
	assert_non_null(v);
	vapid_free(v);
	assert_null(vapid_new(p384, SUBJECT, err));
	EVP_PKEY_free(p384);
	EVP_PKEY_free(key);
}

static void
test_audience(void **state)
{
	static const struct {
		int		 https;
		const char	*host;
		unsigned	 port;
		const char	*want;		/* NULL: refused */
	} rows[] = {
		{ 1, "push.example.net", 0, "https://push.example.net" },
		{ 1, "push.example.net", 443, "https://push.example.net" },
		{ 1, "push.example.net", 8443,
		    "https://push.example.net:8443" },
		{ 1, "Push.EXAMPLE.net", 0, "https://push.example.net" },
		{ 1, "push.example.net", 80, "https://push.example.net:80" },
		{ 0, "up.example", 80, "http://up.example" },
		{ 0, "up.example", 443, "http://up.example:443" },
		{ 0, "127.0.0.1", 8080, "http://127.0.0.1:8080" },
		{ 1, "[2001:DB8::1]", 8443, "https://[2001:db8::1]:8443" },
		{ 1, "[::1]", 0, "https://[::1]" },
		{ 1, "", 0, NULL },
		{ 1, "a b", 0, NULL },
		{ 1, "a\"b", 0, NULL },
		{ 1, "a/b", 0, NULL },
		{ 1, "a:1", 0, NULL },
		{ 1, "[::1", 0, NULL },
		{ 1, "[]", 0, NULL },
	};
	char out[VAPID_AUDIENCE_MAX_BYTES], err[ERR_LEN], host[300];
	int rc;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
		rc = vapid_audience(rows[i].https, rows[i].host,
		    strlen(rows[i].host), (uint16_t)rows[i].port, out, err);
		if (rows[i].want == NULL ? rc != -1 :
		    rc != 0 || strcmp(out, rows[i].want) != 0)
			fail_msg("row %zu (%s): rc %d out %s", i, rows[i].host,
			    rc, rc == 0 ? out : err);
	}
	memset(host, 'a', sizeof(host));
	assert_int_equal(vapid_audience(1, host, 255, 65535, out, err), 0);
	assert_int_equal(strlen(out), 8 + 255 + 6);
	assert_int_equal(vapid_audience(1, host, 256, 0, out, err), -1);
}

/* Splits "vapid t=<jwt>, k=<key>"; jwt and k point into copy. */
static void
split_header(const char *h, char *copy, char **jwt, char **k)
{
	char *comma;

	strcpy(copy, h);
	assert_memory_equal(copy, "vapid t=", 8);
	*jwt = copy + 8;
	assert_non_null(comma = strstr(copy, ", k="));
	*comma = '\0';
	*k = comma + 4;
}

static void
expect_valid(const char *h, const struct vapid *v, const char *aud,
    int64_t issued_ms, const char *subject)
{
	char copy[2048], *jwt, *k, want[512];
	struct jwt_parts p;

	split_header(h, copy, &jwt, &k);
	assert_string_equal(k, vapid_public_key(v));
	assert_int_equal(verify_jwt(jwt, k, &p), 0);
	assert_string_equal(p.header.data,
	    "{\"typ\":\"JWT\",\"alg\":\"ES256\"}");
	snprintf(want, sizeof(want),
	    "{\"aud\":\"%s\",\"exp\":%lld,\"sub\":\"%s\"}", aud,
	    (long long)(issued_ms / 1000 + 12 * 3600), subject);
	assert_string_equal(p.claims.data, want);
	parts_clear(&p);
}

static void
test_authorization(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	uint8_t pt[65];
	struct vapid *v;
	struct buf b64;
	char err[ERR_LEN];
	const char *h;

	(void)state;
	assert_non_null(v = vapid_new(key, SUBJECT, err));
	EVP_PKEY_free(key);		/* the vapid keeps its reference */
	assert_int_equal(strlen(vapid_public_key(v)),
	    VAPID_PUBLIC_KEY_B64_LEN);
	assert_int_equal(ua_b64(vapid_public_key(v), pt, 65), 0);
	assert_int_equal(pt[0], 0x04);
	buf_init(&b64);
	base64url_encode(&b64, pt, 65);
	assert_string_equal(b64.data, vapid_public_key(v));
	buf_clear(&b64);

	assert_non_null(h = vapid_authorization(v, "https://push.example.net",
	    T0_MS, err));
	expect_valid(h, v, "https://push.example.net", T0_MS, SUBJECT);
	assert_non_null(h = vapid_authorization(v, "http://[::1]:8080",
	    T0_MS, err));
	expect_valid(h, v, "http://[::1]:8080", T0_MS, SUBJECT);

	/* Only origins go into aud. */
	assert_null(vapid_authorization(v, "https://e.example/path", T0_MS,
	    err));
	assert_null(vapid_authorization(v, "ftp://e.example", T0_MS, err));
	assert_null(vapid_authorization(v, "https://e.example:", T0_MS,
	    err));
	assert_null(vapid_authorization(v, "https://e.example:12345x", T0_MS,
	    err));
	assert_null(vapid_authorization(v, "https://E.example", T0_MS, err));
	assert_null(vapid_authorization(v, "https://e\".example", T0_MS,
	    err));
	vapid_free(v);
}

/* One JWT per origin, reused for an hour, then renewed; a clock that
 * goes back renews; the cache is bounded and evicts the oldest. */
static void
test_cache(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	struct vapid *v;
	char err[ERR_LEN], first[1024], aud[64];
	const char *h;

	(void)state;
	assert_non_null(v = vapid_new(key, SUBJECT, err));
	EVP_PKEY_free(key);
	strcpy(first, vapid_authorization(v, "https://a.example", T0_MS, err));
	h = vapid_authorization(v, "https://b.example", T0_MS + MIN_MS / 2,
	    err);
	assert_string_not_equal(h, first);
	h = vapid_authorization(v, "https://a.example", T0_MS + 59 * MIN_MS,
	    err);
	assert_string_equal(h, first);
	h = vapid_authorization(v, "https://a.example", T0_MS + 60 * MIN_MS,
	    err);
	assert_string_not_equal(h, first);
	expect_valid(h, v, "https://a.example", T0_MS + 60 * MIN_MS, SUBJECT);
	strcpy(first, h);
	h = vapid_authorization(v, "https://a.example", T0_MS, err);
	assert_string_not_equal(h, first);
	expect_valid(h, v, "https://a.example", T0_MS, SUBJECT);

	/* a.example (issued at T0) is now the oldest of a full cache... */
	strcpy(first, h);
	for (int i = 0; i < VAPID_CACHE_ORIGINS - 2; i++) {
		snprintf(aud, sizeof(aud), "https://h%d.example", i);
		assert_non_null(vapid_authorization(v, aud, T0_MS + MIN_MS,
		    err));
	}
	h = vapid_authorization(v, "https://a.example", T0_MS + 2 * MIN_MS,
	    err);
	assert_string_equal(h, first);
	/* ...so one more origin evicts it. */
	assert_non_null(vapid_authorization(v, "https://new.example",
	    T0_MS + 2 * MIN_MS, err));
	h = vapid_authorization(v, "https://a.example", T0_MS + 2 * MIN_MS,
	    err);
	assert_string_not_equal(h, first);
	expect_valid(h, v, "https://a.example", T0_MS + 2 * MIN_MS, SUBJECT);
	vapid_free(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checker_on_rfc8292_example),
		cmocka_unit_test(test_key_forms),
		cmocka_unit_test(test_key_file),
		cmocka_unit_test(test_subjects),
		cmocka_unit_test(test_audience),
		cmocka_unit_test(test_authorization),
		cmocka_unit_test(test_cache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
