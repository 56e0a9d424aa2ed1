/*
 * Unit tests of proxyd/providers/fcm/fcm_key.c, fcm_auth.c and fcm.c: the
 * service-account key file (good and bad members, files, and errors that
 * never quote the private key), the RS256 assertion verified with
 * OpenSSL against the public half of the key, the token request, the
 * token endpoint's answers, the access token's state machine, the send
 * request (checked with jansson) and FCM's answer table.
 *
 * The service account is made here at run time (a fresh throw-away RSA
 * key per run), so no key file is committed for these tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "base64.h"
#include "fcm.h"
#include "token.h"
#include "provider_test.h"

#define PROJECT		"chatmail-test-42"
#define EMAIL		"push@chatmail-test-42.iam.gserviceaccount.com"
#define KID		"0123456789abcdef0123456789abcdef01234567"
#define TOKEN_URI	"https://oauth2.example.test/token"
#define FCMTOK		"dG9rZW4tZm9yLWEtcGhvbmU:APA91bHun4MxP5egoKMwt2KZFBaFUH" \
			"-1RyapWg_b-kTe4NbgMlJx8mYbLk3Vvp_DQXOfKZ29Z"
#define ACCESS		"ya29.c.b0AXv0zTPk-Fake_Test.Token~1+/=="
#define T0		1700000000000LL
#define SEC		1000LL
#define MIN		(60 * SEC)

static EVP_PKEY *rsa_key;	/* 2048 bits, made once per run */
static char *rsa_pem;		/* its PKCS#8 PEM */

static char *
pem_of(EVP_PKEY *k, bool pkcs1)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p, *s;
	long n;

	if (pkcs1)
		assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, k,
		    NULL, NULL, 0, NULL, NULL), 1);
	else
		assert_int_equal(PEM_write_bio_PrivateKey(bio, k, NULL, NULL,
		    0, NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &p);
	s = strndup(p, (size_t)n);
	BIO_free(bio);
	return s;
}

static int
setup(void **state)
{
	(void)state;
	rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	rsa_pem = pem_of(rsa_key, false);
	return rsa_key == NULL;
}

static int
teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(rsa_key);
	free(rsa_pem);
	return 0;
}

/* A service-account file as Google writes it, with the test key. */
static json_t *
sa_object(void)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
	    "type", "service_account",
	    "project_id", PROJECT,
	    "private_key_id", KID,
	    "private_key", rsa_pem,
	    "client_email", EMAIL,
	    "client_id", "123456789012345678901",
	    "auth_uri", "https://accounts.google.com/o/oauth2/auth",
	    "token_uri", TOKEN_URI,
	    "auth_provider_x509_cert_url",
	    "https://www.googleapis.com/oauth2/v1/certs",
	    "client_x509_cert_url", "https://www.googleapis.com/robot/v1/"
	    "metadata/x509/push%40chatmail-test-42.iam.gserviceaccount.com",
	    "universe_domain", "googleapis.com");
}

static char *
sa_text(json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(2));

	json_decref(o);
	return s;
}

static struct fcm_key *
good_key(void)
{
	char err[ERR_LEN], *s = sa_text(sa_object());
	struct fcm_key *k = fcm_key_parse(s, strlen(s), err);

	if (k == NULL)
		fail_msg("good key refused: %s", err);
	free(s);
	return k;
}

/* No error may quote the private key: its first base64 line or any
 * 16-byte piece of it. */
static void
assert_no_key_bytes(const char *row, const char *err)
{
	const char *b64 = strchr(rsa_pem, '\n') + 1;

	for (size_t i = 0; i + 16 <= 64; i++)
		if (memmem(err, strlen(err), b64 + i, 16) != NULL)
			fail_msg("row %s: err quotes the key: %s", row, err);
	if (strstr(err, "MII") != NULL || strstr(err, "BEGIN") != NULL)
		fail_msg("row %s: err quotes the key: %s", row, err);
}

/* ---- fcm_key.c ------------------------------------------------------ */

static void
test_key_good(void **state)
{
	struct fcm_key *k = good_key();
	json_t *o;
	char err[ERR_LEN], *s;

	(void)state;
	assert_string_equal(k->project_id, PROJECT);
	assert_string_equal(k->client_email, EMAIL);
	assert_string_equal(k->private_key_id, KID);
	assert_string_equal(k->token_uri, TOKEN_URI);
	assert_int_equal(EVP_PKEY_eq(k->pkey, rsa_key), 1);
	fcm_key_free(k);

	/* private_key_id is optional; PKCS#1 PEM and domain-scoped project
	 * ids are accepted. */
	o = sa_object();
	json_object_del(o, "private_key_id");
	json_object_set_new(o, "project_id",
	    json_string("example.com:my-project"));
	s = pem_of(rsa_key, true);
	assert_non_null(strstr(s, "BEGIN RSA PRIVATE KEY"));
	json_object_set_new(o, "private_key", json_string(s));
	free(s);
	s = sa_text(o);
	k = fcm_key_parse(s, strlen(s), err);
	if (k == NULL)
		fail_msg("%s", err);
	assert_null(k->private_key_id);
	assert_string_equal(k->project_id, "example.com:my-project");
	fcm_key_free(k);
	free(s);
	fcm_key_free(NULL);
}

/* A member to set (JSON text) or, with value NULL, to delete. */
struct key_row {
	const char	*name;
	const char	*member;
	const char	*value;
	const char	*err_part;
};

static const struct key_row key_rows[] = {
	{ "type-missing", "type", NULL, "\"type\" missing" },
	{ "type-user", "type", "\"authorized_user\"",
	    "\"type\" is not \"service_account\"" },
	{ "type-number", "type", "1", "\"type\" is not a string" },
	{ "project-missing", "project_id", NULL, "\"project_id\" missing" },
	{ "project-short", "project_id", "\"abcde\"", "\"project_id\" malformed" },
	{ "project-long-31", "project_id",
	    "\"abcdefghijklmnopqrstuvwxyz01234\"", "malformed (31 bytes)" },
	{ "project-upper", "project_id", "\"Chatmail-test\"", "malformed" },
	{ "project-digit-first", "project_id", "\"1chatmail\"", "malformed" },
	{ "project-hyphen-last", "project_id", "\"chatmail-\"", "malformed" },
	{ "project-slash", "project_id", "\"chat/../mail\"", "malformed" },
	{ "project-space", "project_id", "\"chat mail\"", "malformed" },
	{ "project-empty-domain", "project_id", "\":chatmail\"", "malformed" },
	{ "project-domain-upper", "project_id", "\"Ex.com:chatmail\"",
	    "malformed" },
	{ "email-missing", "client_email", NULL, "\"client_email\" missing" },
	{ "email-no-at", "client_email", "\"push.example.com\"",
	    "\"client_email\" malformed" },
	{ "email-two-at", "client_email", "\"a@b@example.com\"", "malformed" },
	{ "email-at-first", "client_email", "\"@example.com\"", "malformed" },
	{ "email-at-last", "client_email", "\"push@\"", "malformed" },
	{ "email-quote", "client_email", "\"a\\\"b@example.com\"",
	    "malformed" },
	{ "email-object", "client_email", "{}", "is not a string" },
	{ "uri-missing", "token_uri", NULL, "\"token_uri\" missing" },
	{ "uri-http", "token_uri", "\"http://oauth2.example.test/token\"",
	    "\"token_uri\" malformed" },
	{ "uri-no-host", "token_uri", "\"https://\"", "malformed" },
	{ "uri-slash-host", "token_uri", "\"https:///token\"", "malformed" },
	{ "uri-space", "token_uri", "\"https://a.test/t oken\"", "malformed" },
	{ "uri-newline", "token_uri", "\"https://a.test/\\ntoken\"",
	    "malformed" },
	{ "uri-quote", "token_uri", "\"https://a.test/\\\"\"", "malformed" },
	{ "kid-empty", "private_key_id", "\"\"", "\"private_key_id\" malformed" },
	{ "kid-slash", "private_key_id", "\"ab/cd\"", "malformed" },
	{ "kid-null", "private_key_id", "null", "is not a string" },
	{ "pem-missing", "private_key", NULL, "\"private_key\" missing" },
	{ "pem-number", "private_key", "42", "\"private_key\" is not a string" },
	{ "pem-garbage", "private_key", "\"hello\"", "is not an unencrypted" },
	{ "pem-truncated", "private_key",
	    "\"-----BEGIN PRIVATE KEY-----\\nMIIEvAIBADANBgkqhkiG9w0BAQEFAASC\\n"
	    "-----END PRIVATE KEY-----\\n\"", "is not a PEM private key" },
	{ "pem-encrypted", "private_key",
	    "\"-----BEGIN ENCRYPTED PRIVATE KEY-----\\nMIIFHDBOBgkqhkiG9w0B\\n"
	    "-----END ENCRYPTED PRIVATE KEY-----\\n\"", "is not an unencrypted" },
	{ "pem-certificate", "private_key",
	    "\"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----"
	    "\\n\"", "is not an unencrypted" },
};

static void
test_key_bad_members(void **state)
{
	char err[ERR_LEN], *s;
	struct fcm_key *k;
	json_error_t jerr;
	json_t *o, *v;

	(void)state;
	for (size_t i = 0; i < sizeof(key_rows) / sizeof(*key_rows); i++) {
		const struct key_row *r = &key_rows[i];

		o = sa_object();
		if (r->value == NULL)
			json_object_del(o, r->member);
		else {
			v = json_loads(r->value, JSON_DECODE_ANY, &jerr);
			if (v == NULL)
				fail_msg("row %s: bad test JSON", r->name);
			json_object_set_new(o, r->member, v);
		}
		s = sa_text(o);
		err[0] = '\0';
		k = fcm_key_parse(s, strlen(s), err);
		if (k != NULL || strstr(err, r->err_part) == NULL)
			fail_msg("row %s: %s, err \"%s\", want \"%s\"", r->name,
			    k ? "accepted" : "refused", err, r->err_part);
		assert_no_key_bytes(r->name, err);
		free(s);
	}
}

static void
test_key_bad_keys(void **state)
{
	EVP_PKEY *keys[2] = {
		EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"),
		EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024),
	};
	char err[ERR_LEN], *pem, *s;
	json_t *o;

	(void)state;
	for (int i = 0; i < 2; i++) {
		pem = pem_of(keys[i], false);
		o = sa_object();
		json_object_set_new(o, "private_key", json_string(pem));
		s = sa_text(o);
		assert_null(fcm_key_parse(s, strlen(s), err));
		assert_string_equal(err, i == 0 ? "fcm key: \"private_key\" is "
		    "not an RSA key" : "fcm key: RSA key of 1024 bits, want "
		    "2048..8192");
		free(pem);
		free(s);
		EVP_PKEY_free(keys[i]);
	}
}

/* An encrypted PKCS#1 key has the accepted label: refused without
 * asking for a passphrase (the test would hang on a terminal). */
static void
test_key_encrypted_pkcs1(void **state)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char err[ERR_LEN], *pem, *s, *p;
	json_t *o;
	long n;

	(void)state;
	assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, rsa_key,
	    EVP_aes_128_cbc(), (unsigned char *)"secret", 6, NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &p);
	pem = strndup(p, (size_t)n);
	BIO_free(bio);
	assert_non_null(strstr(pem, "Proc-Type: 4,ENCRYPTED"));
	o = sa_object();
	json_object_set_new(o, "private_key", json_string(pem));
	s = sa_text(o);
	assert_null(fcm_key_parse(s, strlen(s), err));
	assert_string_equal(err, "fcm key: \"private_key\" is not a PEM "
	    "private key");
	free(s);
	free(pem);
}

static void
test_key_bad_json(void **state)
{
	char err[ERR_LEN], *s, *p, *big;
	size_t n;

	(void)state;
	assert_null(fcm_key_parse("", 0, err));
	assert_non_null(strstr(err, "not valid JSON"));
	assert_null(fcm_key_parse("[]", 2, err));
	assert_string_equal(err, "fcm key: not a JSON object");
	assert_null(fcm_key_parse("{} x", 4, err));
	assert_non_null(strstr(err, "not valid JSON"));
	s = "{\"type\":\"service_account\",\"type\":\"service_account\"}";
	assert_null(fcm_key_parse(s, strlen(s), err));
	assert_non_null(strstr(err, "not valid JSON"));

	/* A syntax error inside the private key: jansson's own message
	 * would quote the key's bytes near it. */
	s = sa_text(sa_object());
	p = strstr(s, "MII");
	assert_non_null(p);
	p[20] = '\\';
	p[21] = 'q';
	assert_null(fcm_key_parse(s, strlen(s), err));
	assert_non_null(strstr(err, "not valid JSON (line"));
	assert_no_key_bytes("syntax-error-in-key", err);
	/* Raw control bytes inside the key string, same. */
	p[20] = '\x01';
	assert_null(fcm_key_parse(s, strlen(s), err));
	assert_no_key_bytes("control-in-key", err);
	free(s);

	/* Size caps: the file, and the PEM. */
	big = malloc(FCM_KEY_FILE_MAX_BYTES + 2);
	memset(big, ' ', FCM_KEY_FILE_MAX_BYTES + 1);
	big[0] = '{';
	big[FCM_KEY_FILE_MAX_BYTES] = '}';
	assert_null(fcm_key_parse(big, FCM_KEY_FILE_MAX_BYTES + 1, err));
	assert_string_equal(err, "fcm key: 65537 bytes, at most 65536");
	n = FCM_KEY_PEM_MAX_BYTES + 1;
	s = malloc(n + 1);
	memset(s, 'A', n);
	memcpy(s, "-----BEGIN PRIVATE KEY-----\n", 28);
	s[n] = '\0';
	{
		json_t *o = sa_object();
		char *t;

		json_object_set_new(o, "private_key", json_string(s));
		t = sa_text(o);
		assert_null(fcm_key_parse(t, strlen(t), err));
		assert_string_equal(err, "fcm key: \"private_key\" longer than "
		    "16384 bytes");
		free(t);
	}
	free(s);
	free(big);
}

static void
write_file(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void
test_key_files(void **state)
{
	char dir[] = "/tmp/test_fcm.XXXXXX", path[128], err[ERR_LEN], *s;
	char want[ERR_LEN];
	struct fcm_key *k;
	char *big;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/key.json", dir);
	s = sa_text(sa_object());
	write_file(path, s, strlen(s));
	k = fcm_key_load(path, err);
	if (k == NULL)
		fail_msg("%s", err);
	assert_string_equal(k->project_id, PROJECT);
	fcm_key_free(k);
	free(s);

	/* The path is named in errors from the parser too. */
	write_file(path, "{\"type\":\"x\"}", 12);
	assert_null(fcm_key_load(path, err));
	snprintf(want, sizeof(want), "fcm key: \"type\" is not "
	    "\"service_account\" (%s)", path);
	assert_string_equal(err, want);

	big = calloc(1, FCM_KEY_FILE_MAX_BYTES + 1);
	memset(big, ' ', FCM_KEY_FILE_MAX_BYTES + 1);
	write_file(path, big, FCM_KEY_FILE_MAX_BYTES + 1);
	assert_null(fcm_key_load(path, err));
	assert_non_null(strstr(err, "65537 bytes, at most 65536"));
	free(big);
	assert_int_equal(unlink(path), 0);

	assert_null(fcm_key_load(path, err));
	assert_non_null(strstr(err, "No such file or directory"));
	assert_null(fcm_key_load(dir, err));
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(rmdir(dir), 0);
}

/* ---- fcm_auth.c: the assertion and the token request ------------------ */

/* Split a compact JWT and decode its parts; asserts the form. */
static void
jwt_split(const char *jwt, struct buf parts[3], size_t *signed_len)
{
	const char *d1 = strchr(jwt, '.'), *d2;

	assert_non_null(d1);
	d2 = strchr(d1 + 1, '.');
	assert_non_null(d2);
	assert_null(strchr(d2 + 1, '.'));
	for (int i = 0; i < 3; i++)
		buf_init(&parts[i]);
	assert_int_equal(base64url_decode(&parts[0], jwt,
	    (size_t)(d1 - jwt)), 0);
	assert_int_equal(base64url_decode(&parts[1], d1 + 1,
	    (size_t)(d2 - d1 - 1)), 0);
	assert_int_equal(base64url_decode(&parts[2], d2 + 1, strlen(d2 + 1)),
	    0);
	*signed_len = (size_t)(d2 - jwt);
}

/* The key's public half only, as the token endpoint knows it. */
static EVP_PKEY *
public_half(EVP_PKEY *k)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *pub;
	int n = i2d_PUBKEY(k, &der);

	assert_true(n > 0);
	p = der;
	pub = d2i_PUBKEY(NULL, &p, n);
	OPENSSL_free(der);
	assert_non_null(pub);
	return pub;
}

/* jwt verifies with RS256 against the public key and carries exactly
 * the header and claims Google wants. */
static void
check_assertion(const char *jwt, const char *kid, int64_t now_ms)
{
	EVP_PKEY *pub = public_half(rsa_key);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char want[512];
	struct buf parts[3];
	size_t signed_len;
	long long iat = now_ms / 1000;

	jwt_split(jwt, parts, &signed_len);
	if (kid != NULL)
		snprintf(want, sizeof(want), "{\"alg\":\"RS256\",\"typ\":\"JWT\","
		    "\"kid\":\"%s\"}", kid);
	else
		snprintf(want, sizeof(want), "{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
	assert_string_equal(parts[0].data, want);
	snprintf(want, sizeof(want), "{\"iss\":\"" EMAIL "\",\"scope\":\""
	    FCM_SCOPE "\",\"aud\":\"" TOKEN_URI "\",\"iat\":%lld,\"exp\":%lld}",
	    iat, iat + 3600);
	assert_string_equal(parts[1].data, want);
	assert_int_equal(parts[2].len, 256);	/* RSA 2048 */
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
	    pub), 1);
	assert_int_equal(EVP_DigestVerify(md, (unsigned char *)parts[2].data,
	    parts[2].len, (const unsigned char *)jwt, signed_len), 1);
	/* A flipped bit in the claims fails. */
	{
		char *bad = strdup(jwt);

		bad[strchr(bad, '.') - bad + 3] ^= 1;
		assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(),
		    NULL, pub), 1);
		assert_int_not_equal(EVP_DigestVerify(md,
		    (unsigned char *)parts[2].data, parts[2].len,
		    (const unsigned char *)bad, signed_len), 1);
		free(bad);
	}
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pub);
	for (int i = 0; i < 3; i++)
		buf_clear(&parts[i]);
}

static void
test_assertion(void **state)
{
	struct fcm_key *k = good_key();
	char err[ERR_LEN], *jwt;

	(void)state;
	jwt = fcm_auth_assertion(k, T0 + 999, err);
	assert_non_null(jwt);
	check_assertion(jwt, KID, T0);
	free(jwt);
	free(k->private_key_id);
	k->private_key_id = NULL;
	jwt = fcm_auth_assertion(k, T0, err);
	check_assertion(jwt, NULL, T0);
	free(jwt);
	fcm_key_free(k);
}

#define FORM_PREFIX	"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3A" \
			"jwt-bearer&assertion="

static void
test_token_request(void **state)
{
	struct fcm_key *k = good_key();
	struct fcm_auth *a = fcm_auth_new(k, NULL);
	struct provider_request r;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(fcm_auth_renewal_start(a, T0, &r, err), 0);
	assert_string_equal(r.url, TOKEN_URI);
	assert_string_equal(header(&r, "content-type"),
	    "application/x-www-form-urlencoded");
	assert_int_equal(r.body_len, strlen(r.body));
	assert_memory_equal(r.body, FORM_PREFIX, strlen(FORM_PREFIX));
	check_assertion(r.body + strlen(FORM_PREFIX), KID, T0);
	provider_request_clear(&r);
	assert_null(r.body);
	fcm_auth_free(a);

	/* --fcm-token-url moves the request, not the audience. */
	a = fcm_auth_new(k, "https://127.0.0.1:4443/token");
	assert_int_equal(fcm_auth_renewal_start(a, T0, &r, err), 0);
	assert_string_equal(r.url, "https://127.0.0.1:4443/token");
	check_assertion(r.body + strlen(FORM_PREFIX), KID, T0);
	provider_request_clear(&r);
	fcm_auth_free(a);
	fcm_key_free(k);
}

/* ---- fcm_auth.c: the token endpoint's answers -------------------------- */

struct answer_row {
	const char	*name;
	long		 status;
	const char	*body;
	int		 want_rc;
	int64_t		 lifetime_ms;
	const char	*err_part;
};

#define TOK_OK(n, b, l)		{ n, 200, b, 0, l, NULL }
#define TOK_BAD(n, s, b, e)	{ n, s, b, -1, 0, e }

static const struct answer_row answer_rows[] = {
	TOK_OK("google", "{\"access_token\":\"" ACCESS "\",\"expires_in\":3599,"
	    "\"token_type\":\"Bearer\"}", 3599 * SEC),
	TOK_OK("lowercase-type", "{\"access_token\":\"" ACCESS "\","
	    "\"expires_in\":1,\"token_type\":\"bearer\"}", 1 * SEC),
	TOK_OK("max-lifetime", "{\"access_token\":\"" ACCESS "\","
	    "\"expires_in\":86400,\"token_type\":\"Bearer\",\"x\":[1]}",
	    86400 * SEC),
	TOK_BAD("no-token", 200, "{\"expires_in\":3599,\"token_type\":"
	    "\"Bearer\"}", "\"access_token\" missing or malformed"),
	TOK_BAD("empty-token", 200, "{\"access_token\":\"\",\"expires_in\":3599,"
	    "\"token_type\":\"Bearer\"}", "\"access_token\""),
	TOK_BAD("token-space", 200, "{\"access_token\":\"ya29 x\","
	    "\"expires_in\":3599,\"token_type\":\"Bearer\"}", "\"access_token\""),
	TOK_BAD("token-crlf", 200, "{\"access_token\":\"ya29\\r\\nX-Evil: 1\","
	    "\"expires_in\":3599,\"token_type\":\"Bearer\"}", "\"access_token\""),
	TOK_BAD("token-inner-pad", 200, "{\"access_token\":\"ya29=x\","
	    "\"expires_in\":3599,\"token_type\":\"Bearer\"}", "\"access_token\""),
	TOK_BAD("token-only-pad", 200, "{\"access_token\":\"==\","
	    "\"expires_in\":3599,\"token_type\":\"Bearer\"}", "\"access_token\""),
	TOK_BAD("token-number", 200, "{\"access_token\":7,"
	    "\"expires_in\":3599,\"token_type\":\"Bearer\"}", "\"access_token\""),
	TOK_BAD("type-mac", 200, "{\"access_token\":\"" ACCESS "\","
	    "\"expires_in\":3599,\"token_type\":\"MAC\"}", "\"token_type\""),
	TOK_BAD("type-missing", 200, "{\"access_token\":\"" ACCESS "\","
	    "\"expires_in\":3599}", "\"token_type\" is not \"Bearer\""),
	TOK_BAD("expires-missing", 200, "{\"access_token\":\"" ACCESS "\","
	    "\"token_type\":\"Bearer\"}", "\"expires_in\" missing"),
	TOK_BAD("expires-0", 200, "{\"access_token\":\"" ACCESS "\","
	    "\"expires_in\":0,\"token_type\":\"Bearer\"}", "not in 1..86400"),
	TOK_BAD("expires-negative", 200, "{\"access_token\":\"" ACCESS "\","
	    "\"expires_in\":-5,\"token_type\":\"Bearer\"}", "\"expires_in\""),
	TOK_BAD("expires-86401", 200, "{\"access_token\":\"" ACCESS "\","
	    "\"expires_in\":86401,\"token_type\":\"Bearer\"}", "\"expires_in\""),
	TOK_BAD("expires-string", 200, "{\"access_token\":\"" ACCESS "\","
	    "\"expires_in\":\"3599\",\"token_type\":\"Bearer\"}",
	    "\"expires_in\""),
	TOK_BAD("expires-real", 200, "{\"access_token\":\"" ACCESS "\","
	    "\"expires_in\":3599.5,\"token_type\":\"Bearer\"}", "\"expires_in\""),
	TOK_BAD("not-json", 200, "<html>hi</html>",
	    "answer is not a JSON object"),
	TOK_BAD("array", 200, "[]", "answer is not a JSON object"),
	TOK_BAD("empty-200", 200, "", "answer is not a JSON object"),
	TOK_BAD("invalid-grant", 400, "{\"error\":\"invalid_grant\","
	    "\"error_description\":\"Invalid JWT Signature.\"}",
	    "fcm token endpoint: HTTP 400 error=invalid_grant "
	    "description=\"Invalid JWT Signature.\""),
	TOK_BAD("invalid-client", 401, "{\"error\":\"invalid_client\","
	    "\"error_description\":\"The OAuth client was not found.\"}",
	    "HTTP 401 error=invalid_client"),
	TOK_BAD("error-sanitised", 400, "{\"error\":\"bad\\nthing\\\"\","
	    "\"error_description\":\"a\\u0001b\\\"c\"}",
	    "error=badthing description=\"abc\""),
	TOK_BAD("html-500", 500, "<html>oops</html>", "fcm token endpoint: "
	    "HTTP 500"),
	TOK_BAD("no-answer", 0, NULL, "fcm token endpoint: no answer"),
};

static void
test_token_answers(void **state)
{
	struct fcm_access_token t;
	char err[ERR_LEN];
	int rc;

	(void)state;
	for (size_t i = 0; i < sizeof(answer_rows) / sizeof(*answer_rows);
	    i++) {
		const struct answer_row *r = &answer_rows[i];

		err[0] = '\0';
		rc = fcm_auth_parse(r->status, r->body, r->body ?
		    strlen(r->body) : 0, &t, err);
		if (rc != r->want_rc)
			fail_msg("row %s: rc %d, err %s", r->name, rc, err);
		if (rc == 0) {
			assert_string_equal(t.value, ACCESS);
			assert_int_equal(t.lifetime_ms, r->lifetime_ms);
			fcm_access_token_clear(&t);
			assert_null(t.value);
		} else {
			if (strstr(err, r->err_part) == NULL)
				fail_msg("row %s: err \"%s\", want \"%s\"",
				    r->name, err, r->err_part);
			if (strstr(err, "ya29") != NULL)
				fail_msg("row %s: err quotes the token: %s",
				    r->name, err);
			assert_null(t.value);
		}
	}
	/* The answer size cap. */
	{
		size_t n = FCM_TOKEN_ANSWER_MAX_BYTES + 1;
		char *big = malloc(n);

		memset(big, ' ', n);
		assert_int_equal(fcm_auth_parse(200, big, n, &t, err), -1);
		assert_string_equal(err, "fcm token endpoint: HTTP 200, answer "
		    "of 65537 bytes");
		free(big);
	}
}

/* ---- fcm_auth.c: the state machine -------------------------------------- */

static char *
token_answer(const char *tok, int lifetime_s)
{
	char *s;

	assert_true(asprintf(&s, "{\"access_token\":\"%s\",\"expires_in\":%d,"
	    "\"token_type\":\"Bearer\"}", tok, lifetime_s) > 0);
	return s;
}

/* Start a renewal at start_ms and answer it at done_ms. */
static int
renew(struct fcm_auth *a, int64_t start_ms, int64_t done_ms, long status,
    const char *tok, int lifetime_s)
{
	struct provider_request r;
	char err[ERR_LEN], *body = token_answer(tok, lifetime_s);
	int rc;

	assert_true(fcm_auth_needs_renewal(a, start_ms));
	assert_int_equal(fcm_auth_renewal_start(a, start_ms, &r, err), 0);
	provider_request_clear(&r);
	assert_true(fcm_auth_renewing(a));
	assert_false(fcm_auth_needs_renewal(a, start_ms));
	rc = fcm_auth_renewal_done(a, status, body, strlen(body), done_ms,
	    err);
	assert_false(fcm_auth_renewing(a));
	free(body);
	return rc;
}

static void
assert_state(const struct fcm_auth *a, int64_t now, enum fcm_auth_state want)
{
	enum fcm_auth_state s = fcm_auth_state(a, now);

	if (s != want)
		fail_msg("at T0%+lld ms: state %s, want %s",
		    (long long)(now - T0), fcm_auth_state_name(s),
		    fcm_auth_state_name(want));
}

static void
test_state_machine(void **state)
{
	struct fcm_key *k = good_key();
	struct fcm_auth *a = fcm_auth_new(k, NULL);
	struct provider_request r;
	uint64_t gen = 0;
	char err[ERR_LEN], *body;

	(void)state;
	/* Nothing yet: the first push starts the renewal, the others wait
	 * for the same one. */
	assert_state(a, T0, FCM_AUTH_RENEW);
	assert_int_equal(fcm_auth_renew_at(a), 0);
	assert_null(fcm_auth_token(a, T0, NULL));
	assert_int_equal(fcm_auth_renewal_start(a, T0, &r, err), 0);
	provider_request_clear(&r);
	assert_state(a, T0, FCM_AUTH_WAIT);
	assert_state(a, T0 + 30 * SEC, FCM_AUTH_WAIT);
	assert_int_equal(fcm_auth_renewal_start(a, T0, &r, err), -1);
	assert_string_equal(err, "fcm token renewal already in flight");
	assert_null(r.url);
	body = token_answer("tok1", 3600);
	assert_int_equal(fcm_auth_renewal_done(a, 200, body, strlen(body),
	    T0 + 2 * SEC, err), 0);
	free(body);
	assert_string_equal(fcm_auth_token(a, T0 + 2 * SEC, &gen), "tok1");
	assert_int_equal(gen, 1);

	/* Lifetime counted from the request (T0): renew 5 min before
	 * expiry, in the background; stop using it 30 s before. */
	assert_int_equal(fcm_auth_renew_at(a), T0 + 55 * MIN);
	assert_state(a, T0 + 55 * MIN - 1, FCM_AUTH_READY);
	assert_state(a, T0 + 55 * MIN, FCM_AUTH_RENEW_EARLY);
	assert_true(fcm_auth_needs_renewal(a, T0 + 55 * MIN));
	assert_int_equal(fcm_auth_renewal_start(a, T0 + 55 * MIN, &r, err), 0);
	provider_request_clear(&r);
	assert_state(a, T0 + 55 * MIN, FCM_AUTH_READY);	/* in flight */
	assert_string_equal(fcm_auth_token(a, T0 + 59 * MIN, NULL), "tok1");
	assert_state(a, T0 + 60 * MIN - 30 * SEC - 1, FCM_AUTH_READY);
	assert_state(a, T0 + 60 * MIN - 30 * SEC, FCM_AUTH_WAIT);
	assert_null(fcm_auth_token(a, T0 + 60 * MIN - 30 * SEC, NULL));

	/* It fails: no token, back-off 1 s, 2 s, then a success resets. */
	body = "{\"error\":\"invalid_grant\"}";
	assert_int_equal(fcm_auth_renewal_done(a, 400, body, strlen(body),
	    T0 + 60 * MIN, err), -1);
	assert_non_null(strstr(err, "invalid_grant"));
	assert_int_equal(fcm_auth_failures(a), 1);
	assert_int_equal(fcm_auth_renew_at(a), T0 + 60 * MIN + SEC);
	assert_state(a, T0 + 60 * MIN, FCM_AUTH_BACKOFF);
	assert_state(a, T0 + 60 * MIN + SEC - 1, FCM_AUTH_BACKOFF);
	assert_false(fcm_auth_needs_renewal(a, T0 + 60 * MIN + SEC - 1));
	assert_state(a, T0 + 60 * MIN + SEC, FCM_AUTH_RENEW);
	assert_int_equal(renew(a, T0 + 61 * MIN, T0 + 61 * MIN, 503, "x", 1),
	    -1);
	assert_int_equal(fcm_auth_failures(a), 2);
	assert_state(a, T0 + 61 * MIN + 2 * SEC - 1, FCM_AUTH_BACKOFF);
	assert_state(a, T0 + 61 * MIN + 2 * SEC, FCM_AUTH_RENEW);
	assert_int_equal(renew(a, T0 + 62 * MIN, T0 + 62 * MIN, 200, "tok2",
	    3599), 0);
	assert_int_equal(fcm_auth_failures(a), 0);
	assert_string_equal(fcm_auth_token(a, T0 + 62 * MIN, &gen), "tok2");
	assert_int_equal(gen, 2);

	/* A failed early renewal keeps the usable token and retries after
	 * the back-off. */
	assert_state(a, T0 + 62 * MIN + 3599 * SEC - 5 * MIN - 1,
	    FCM_AUTH_READY);
	assert_int_equal(renew(a, T0 + 62 * MIN + 3599 * SEC - 5 * MIN,
	    T0 + 117 * MIN, 0, "x", 1), -1);
	assert_state(a, T0 + 117 * MIN, FCM_AUTH_READY);
	assert_string_equal(fcm_auth_token(a, T0 + 117 * MIN, NULL), "tok2");
	assert_state(a, T0 + 117 * MIN + SEC, FCM_AUTH_RENEW_EARLY);
	fcm_auth_free(a);
	fcm_key_free(k);
}

static void
test_state_short_lifetime(void **state)
{
	struct fcm_key *k = good_key();
	struct fcm_auth *a = fcm_auth_new(k, NULL);

	(void)state;
	/* 10 s tokens (the fakes' short lifetimes): renew at half, stop a
	 * quarter before the end. */
	assert_int_equal(renew(a, T0, T0 + 100, 200, "short", 10), 0);
	assert_state(a, T0 + 5 * SEC - 1, FCM_AUTH_READY);
	assert_state(a, T0 + 5 * SEC, FCM_AUTH_RENEW_EARLY);
	assert_non_null(fcm_auth_token(a, T0 + 7500 - 1, NULL));
	assert_null(fcm_auth_token(a, T0 + 7500, NULL));
	assert_state(a, T0 + 7500, FCM_AUTH_RENEW);
	fcm_auth_free(a);
	fcm_key_free(k);
}

static void
test_state_rejected(void **state)
{
	struct fcm_key *k = good_key();
	struct fcm_auth *a = fcm_auth_new(k, NULL);
	uint64_t gen;

	(void)state;
	assert_int_equal(renew(a, T0, T0, 200, "old", 3600), 0);
	assert_non_null(fcm_auth_token(a, T0 + 10 * MIN, &gen));
	/* 401 for a token used for ten minutes: renew at once. */
	fcm_auth_rejected(a, gen, T0 + 10 * MIN);
	assert_null(fcm_auth_token(a, T0 + 10 * MIN, NULL));
	assert_state(a, T0 + 10 * MIN, FCM_AUTH_RENEW);
	assert_int_equal(fcm_auth_failures(a), 0);
	assert_int_equal(renew(a, T0 + 10 * MIN, T0 + 10 * MIN, 200, "new",
	    3600), 0);
	/* A late 401 for the old generation leaves the new token alone. */
	fcm_auth_rejected(a, gen, T0 + 10 * MIN + SEC);
	assert_string_equal(fcm_auth_token(a, T0 + 10 * MIN + SEC, &gen),
	    "new");
	/* 401 for a token 59 s old, 59 s after the last 401: renewing did
	 * not help, so it counts as a failure (back-off). */
	fcm_auth_rejected(a, gen, T0 + 11 * MIN - 1);
	assert_int_equal(fcm_auth_failures(a), 1);
	assert_state(a, T0 + 11 * MIN - 1, FCM_AUTH_BACKOFF);
	assert_state(a, T0 + 11 * MIN - 1 + SEC, FCM_AUTH_RENEW);
	fcm_auth_free(a);

	/* A fresh token refused once (revoked right after it came): renew
	 * at once. */
	a = fcm_auth_new(k, NULL);
	assert_int_equal(renew(a, T0, T0, 200, "fresh", 3600), 0);
	assert_non_null(fcm_auth_token(a, T0 + SEC, &gen));
	fcm_auth_rejected(a, gen, T0 + SEC);
	assert_int_equal(fcm_auth_failures(a), 0);
	assert_state(a, T0 + SEC, FCM_AUTH_RENEW);
	/* ... and a minute later, a fresh one again: still at once. */
	assert_int_equal(renew(a, T0 + 61 * SEC, T0 + 61 * SEC, 200, "next",
	    3600), 0);
	assert_non_null(fcm_auth_token(a, T0 + 62 * SEC, &gen));
	fcm_auth_rejected(a, gen, T0 + 62 * SEC);
	assert_state(a, T0 + 62 * SEC, FCM_AUTH_RENEW);
	fcm_auth_free(a);
	fcm_key_free(k);
}

static void
test_state_unsignable(void **state)
{
	struct fcm_key k = { PROJECT, EMAIL, NULL, TOKEN_URI,
	    EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256") };
	struct fcm_auth *a = fcm_auth_new(&k, NULL);
	struct provider_request r;
	char err[ERR_LEN];

	(void)state;
	/* A key that cannot sign RS256 fails the renewal at once. */
	assert_int_equal(fcm_auth_renewal_start(a, T0, &r, err), -1);
	assert_string_equal(err, "key type does not match RS256");
	assert_null(r.url);
	assert_false(fcm_auth_renewing(a));
	assert_int_equal(fcm_auth_failures(a), 1);
	assert_state(a, T0, FCM_AUTH_BACKOFF);
	fcm_auth_free(a);
	EVP_PKEY_free(k.pkey);
}

/* ---- fcm.c ------------------------------------------------------------ */

static void
test_send_request(void **state)
{
	struct fcm_key *k = good_key();
	struct fcm_config cfg = { k, "https://127.0.0.1:8443", NULL };
	struct fcm *f = fcm_new(&cfg);
	struct provider_request r;
	struct token t;
	char err[ERR_LEN];
	json_error_t jerr;
	json_t *root;
	const char *tok;
	const char *prio, *level;

	(void)state;
	parse_token("fcm-chat.delta:" FCMTOK, &t);
	assert_int_equal(fcm_build(f, PUSH_VISIBLE, &t, ACCESS, &r, err), 0);
	assert_string_equal(r.url, "https://127.0.0.1:8443/v1/projects/"
	    PROJECT "/messages:send");
	assert_string_equal(header(&r, "authorization"), "Bearer " ACCESS);
	assert_string_equal(header(&r, "content-type"), "application/json");
	/* Byte for byte the Rust service's body ... */
	assert_string_equal(r.body, "{\"message\":{\"token\":\"" FCMTOK "\","
	    "\"data\":{\"level\":\"awesome\"},\"android\":{\"priority\":"
	    "\"high\"} } }");
	assert_int_equal(r.body_len, strlen(r.body));
	/* ... and what FCM reads in it. */
	root = json_loadb(r.body, r.body_len, JSON_REJECT_DUPLICATES, &jerr);
	assert_non_null(root);
	assert_int_equal(json_object_size(root), 1);
	assert_int_equal(json_unpack_ex(root, &jerr, JSON_STRICT,
	    "{s:{s:s,s:{s:s},s:{s:s}}}", "message", "token", &tok, "data",
	    "level", &level, "android", "priority", &prio), 0);
	assert_string_equal(tok, FCMTOK);
	assert_string_equal(level, "awesome");
	assert_string_equal(prio, "high");
	json_decref(root);
	provider_request_clear(&r);
	fcm_free(f);

	/* The default API base. */
	cfg.api_url = NULL;
	f = fcm_new(&cfg);
	assert_int_equal(fcm_build(f, PUSH_VISIBLE, &t, ACCESS, &r, err), 0);
	assert_string_equal(r.url, FCM_API_URL "/v1/projects/" PROJECT
	    "/messages:send");
	provider_request_clear(&r);

	/* Refusals, none quoting the token. */
	assert_int_equal(fcm_build(f, PUSH_HEARTBEAT, &t, ACCESS, &r, err),
	    -1);
	assert_string_equal(err, "fcm: heartbeats are for APNs tokens only");
	assert_int_equal(fcm_build(f, PUSH_VISIBLE, &t, NULL, &r, err), -1);
	assert_string_equal(err, "fcm: no usable access token");
	assert_int_equal(fcm_build(f, PUSH_VISIBLE, &t, "ya29\r\nX: y", &r,
	    err), -1);
	assert_int_equal(fcm_build(f, PUSH_VISIBLE, &t, "", &r, err), -1);
	t.device_len += 1;	/* now ends in a byte of nothing: '\0' */
	assert_int_equal(fcm_build(f, PUSH_VISIBLE, &t, ACCESS, &r, err), -1);
	assert_null(strstr(err, "APA91"));
	parse_token("sandbox:a1b2c3d4e5f60718293a4b5c6d7e8f90", &t);
	assert_int_equal(fcm_build(f, PUSH_VISIBLE, &t, ACCESS, &r, err), -1);
	assert_string_equal(err, "fcm: not a well-formed FCM token (32 bytes)");
	assert_null(r.url);
	fcm_free(f);
	fcm_free(NULL);
	fcm_key_free(k);
}

/* Real FCM bodies (docs/push-providers.md §2.4; quoted in firebase-admin and
 * other client issues). */
#define FCMERR(code) "{\"@type\":\"type.googleapis.com/google.firebase.fcm." \
		"v1.FcmError\",\"errorCode\":\"" code "\"}"
#define STATUS(c, m, s, d) "{\"error\":{\"code\":" #c ",\"message\":\"" m \
		"\",\"status\":\"" s "\",\"details\":[" d "]}}"

static const struct {
	long			 status;
	const char		*body;
	enum provider_verdict	 want;
	const char		*reason;
} fcm_answers[] = {
	{ 200, "{\"name\":\"projects/" PROJECT "/messages/0:1700000000%\"}",
	    VERDICT_OK, "200" },
	{ 404, STATUS(404, "Requested entity was not found.", "NOT_FOUND",
	    FCMERR("UNREGISTERED")), VERDICT_GONE, "UNREGISTERED" },
	{ 400, STATUS(400, "The registration token is not a valid FCM "
	    "registration token", "INVALID_ARGUMENT", FCMERR("INVALID_ARGUMENT")),
	    VERDICT_GONE, "INVALID_ARGUMENT" },
	{ 400, STATUS(400, "Request contains an invalid argument.",
	    "INVALID_ARGUMENT", FCMERR("INVALID_ARGUMENT") ","
	    "{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\","
	    "\"fieldViolations\":[{\"field\":\"message.token\","
	    "\"description\":\"Invalid registration token\"}]}"),
	    VERDICT_GONE, "INVALID_ARGUMENT" },
	{ 400, STATUS(400, "Invalid JSON payload received. Unknown name "
	    "\\\"levels\\\" at 'message': Cannot find field.",
	    "INVALID_ARGUMENT", "{\"@type\":\"type.googleapis.com/google.rpc."
	    "BadRequest\",\"fieldViolations\":[{\"field\":\"message\","
	    "\"description\":\"Invalid JSON payload received.\"}]}"),
	    VERDICT_CONFIG, "INVALID_ARGUMENT" },
	{ 400, STATUS(400, "Request contains an invalid argument.",
	    "INVALID_ARGUMENT", FCMERR("INVALID_ARGUMENT")), VERDICT_CONFIG,
	    "INVALID_ARGUMENT" },
	{ 403, STATUS(403, "SenderId mismatch", "PERMISSION_DENIED",
	    FCMERR("SENDER_ID_MISMATCH")), VERDICT_GONE, "SENDER_ID_MISMATCH" },
	{ 403, STATUS(403, "Firebase Cloud Messaging API has not been used "
	    "in project 1234 before or it is disabled.", "PERMISSION_DENIED",
	    "{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
	    "\"reason\":\"SERVICE_DISABLED\"}"), VERDICT_CONFIG,
	    "PERMISSION_DENIED" },
	{ 403, "{\"error\":{\"code\":403,\"message\":\"Permission "
	    "'cloudmessaging.messages.create' denied on resource\","
	    "\"status\":\"PERMISSION_DENIED\"}}", VERDICT_CONFIG,
	    "PERMISSION_DENIED" },
	{ 401, "{\"error\":{\"code\":401,\"message\":\"Request had invalid "
	    "authentication credentials.\",\"status\":\"UNAUTHENTICATED\"}}",
	    VERDICT_RENEW_AUTH, "UNAUTHENTICATED" },
	{ 401, STATUS(401, "Auth error from APNS or Web Push Service",
	    "UNAUTHENTICATED", FCMERR("THIRD_PARTY_AUTH_ERROR")),
	    VERDICT_CONFIG, "THIRD_PARTY_AUTH_ERROR" },
	{ 401, "", VERDICT_RENEW_AUTH, "401" },
	{ 429, STATUS(429, "Quota exceeded.", "RESOURCE_EXHAUSTED",
	    FCMERR("QUOTA_EXCEEDED") ",{\"@type\":\"type.googleapis.com/"
	    "google.rpc.QuotaFailure\",\"violations\":[]}"), VERDICT_PAUSE,
	    "QUOTA_EXCEEDED" },
	{ 503, STATUS(503, "The service is currently unavailable.",
	    "UNAVAILABLE", FCMERR("UNAVAILABLE")), VERDICT_PAUSE,
	    "UNAVAILABLE" },
	{ 503, "<html>Service Unavailable</html>", VERDICT_PAUSE, "503" },
	{ 500, STATUS(500, "Internal error encountered.", "INTERNAL",
	    FCMERR("INTERNAL")), VERDICT_TEMPORARY, "INTERNAL" },
	{ 502, "", VERDICT_TEMPORARY, "502" },
	{ 0, NULL, VERDICT_TEMPORARY, "0" },
	/* Never GONE without FCM's explicit word. */
	{ 404, STATUS(404, "Requested entity was not found.", "NOT_FOUND", ""),
	    VERDICT_CONFIG, "NOT_FOUND" },
	{ 404, "<!DOCTYPE html><title>Error 404 (Not Found)!!1</title>",
	    VERDICT_CONFIG, "404" },
	{ 404, STATUS(404, "x", "NOT_FOUND", "{\"@type\":\"type.googleapis."
	    "com/google.rpc.ErrorInfo\",\"errorCode\":\"UNREGISTERED\"}"),
	    VERDICT_CONFIG, "NOT_FOUND" },
	{ 404, STATUS(404, "x", "NOT_FOUND", FCMERR("UNREGIS\\nTERED")),
	    VERDICT_CONFIG, "UNREGISTERED" },	/* sanitised, not trusted */
	{ 404, STATUS(404, "x", "NOT_FOUND", FCMERR("unregistered")),
	    VERDICT_CONFIG, "NOT_FOUND" },
	{ 400, STATUS(400, "The registration token is not a valid FCM "
	    "registration token", "FAILED_PRECONDITION", ""), VERDICT_CONFIG,
	    "FAILED_PRECONDITION" },
	{ 403, STATUS(403, "x", "PERMISSION_DENIED",
	    FCMERR("SENDER_ID_MISMATCH_X")), VERDICT_CONFIG,
	    "SENDER_ID_MISMATCH_X" },
	{ 413, "", VERDICT_CONFIG, "413" },
	{ 302, "", VERDICT_CONFIG, "302" },
	{ 404, "{\"error\":[]}", VERDICT_CONFIG, "404" },
	{ 404, "{\"error\":{\"details\":{}}}", VERDICT_CONFIG, "404" },
	{ 404, "{\"error\":{\"details\":[1,\"x\",{\"@type\":7}]}}",
	    VERDICT_CONFIG, "404" },
};

static void
test_classify(void **state)
{
	struct provider_result res;

	(void)state;
	for (size_t i = 0; i < sizeof(fcm_answers) / sizeof(*fcm_answers);
	    i++) {
		classify(fcm_classify, fcm_answers[i].status,
		    fcm_answers[i].body, fcm_answers[i].body ?
		    strlen(fcm_answers[i].body) : 0, 0, &res);
		if (res.verdict != fcm_answers[i].want ||
		    strcmp(res.reason, fcm_answers[i].reason) != 0)
			fail_msg("row %zu (%ld %s): verdict %s reason %s", i,
			    fcm_answers[i].status, fcm_answers[i].reason,
			    provider_verdict_name(res.verdict), res.reason);
		assert_int_equal(res.retry_after_ms, 0);
	}
}

/* Limits: a body over the cap is classified by its status; details past
 * the sixteenth are not looked at. */
static void
test_classify_limits(void **state)
{
	struct provider_result res;
	struct buf b;

	(void)state;
	buf_init(&b);
	buf_append_str(&b, "{\"error\":{\"status\":\"NOT_FOUND\",\"details\":[");
	for (int i = 0; i < FCM_ERROR_DETAILS_MAX; i++)
		buf_append_str(&b, "{},");
	buf_append_str(&b, FCMERR("UNREGISTERED") "]}}");
	classify(fcm_classify, 404, b.data, b.len, 0, &res);
	assert_int_equal(res.verdict, VERDICT_CONFIG);
	buf_reset(&b);
	buf_append_str(&b, STATUS(404, "x", "NOT_FOUND", FCMERR("UNREGISTERED")));
	while (b.len <= FCM_ERROR_BODY_MAX_BYTES)
		buf_append_char(&b, ' ');
	classify(fcm_classify, 404, b.data, b.len, 0, &res);
	assert_int_equal(res.verdict, VERDICT_CONFIG);
	assert_string_equal(res.reason, "404");
	classify(fcm_classify, 404, b.data, FCM_ERROR_BODY_MAX_BYTES, 0,
	    &res);
	assert_int_equal(res.verdict, VERDICT_GONE);
	buf_clear(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_good),
		cmocka_unit_test(test_key_bad_members),
		cmocka_unit_test(test_key_bad_keys),
		cmocka_unit_test(test_key_encrypted_pkcs1),
		cmocka_unit_test(test_key_bad_json),
		cmocka_unit_test(test_key_files),
		cmocka_unit_test(test_assertion),
		cmocka_unit_test(test_token_request),
		cmocka_unit_test(test_token_answers),
		cmocka_unit_test(test_state_machine),
		cmocka_unit_test(test_state_short_lifetime),
		cmocka_unit_test(test_state_rejected),
		cmocka_unit_test(test_state_unsignable),
		cmocka_unit_test(test_send_request),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_classify_limits),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
