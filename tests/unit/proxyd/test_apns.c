/* Unit tests of proxyd/providers/apns/apns.c: the exact requests for visible
 * and heartbeat pushes, every row of Apple's answer table, and the
 * provider token's renewal rules (ES256, verified with OpenSSL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "apns.h"
#include "base64.h"
#include "provider_test.h"

#define DEV	"a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define MIN_MS	(60LL * 1000)

static void
test_visible_request(void **state)
{
	struct apns_config cfg = { "https://127.0.0.1:1", "https://127.0.0.1:2",
	    "chat.delta", NULL, NULL, NULL, NULL, 0 };
	struct apns *a = apns_new(&cfg);
	struct provider_request r;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(apns_build(a, PUSH_VISIBLE, DEV, false, 0, &r, err),
	    0);
	assert_string_equal(r.url, "https://127.0.0.1:1/3/device/" DEV);
	assert_string_equal(header(&r, "apns-push-type"), "alert");
	assert_string_equal(header(&r, "apns-priority"), "10");
	assert_string_equal(header(&r, "apns-collapse-id"), "new_messages");
	assert_string_equal(header(&r, "apns-topic"), "chat.delta");
	assert_null(header(&r, "authorization"));	/* certificate auth */
	assert_string_equal(r.body, "{\"aps\":{\"alert\":{\"title\":"
	    "\"New messages\",\"body\":\"You have new messages\","
	    "\"title-loc-key\":\"new_messages\",\"loc-key\":"
	    "\"new_messages_body\"},\"sound\":\"default\","
	    "\"mutable-content\":1}}");
	provider_request_clear(&r);
	assert_null(r.url);

	assert_int_equal(apns_build(a, PUSH_HEARTBEAT, DEV, true, 0, &r, err),
	    0);
	assert_string_equal(r.url, "https://127.0.0.1:2/3/device/" DEV);
	assert_string_equal(header(&r, "apns-push-type"), "background");
	assert_string_equal(header(&r, "apns-priority"), "5");
	assert_null(header(&r, "apns-collapse-id"));
	assert_string_equal(r.body, "{\"aps\":{\"content-available\":1}}");
	provider_request_clear(&r);
	apns_free(a);
}

static void
test_default_urls_without_topic(void **state)
{
	struct apns_config cfg = { 0 };
	struct apns *a = apns_new(&cfg);
	struct provider_request r;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(apns_build(a, PUSH_VISIBLE, "ab", true, 0, &r, err),
	    0);
	assert_string_equal(r.url, APNS_SANDBOX_URL "/3/device/ab");
	assert_null(header(&r, "apns-topic"));
	provider_request_clear(&r);
	apns_free(a);
}

static const struct {
	long			 status;
	const char		*body;
	enum provider_verdict	 want;
	const char		*reason;
} answers[] = {
	{ 200, "", VERDICT_OK, "200" },
	{ 410, "{\"reason\":\"Unregistered\",\"timestamp\":1700000000000}",
	    VERDICT_GONE, "Unregistered" },
	{ 410, "{\"reason\":\"ExpiredToken\"}", VERDICT_GONE, "ExpiredToken" },
	{ 400, "{\"reason\":\"BadDeviceToken\"}", VERDICT_GONE,
	    "BadDeviceToken" },
	{ 400, "{\"reason\":\"DeviceTokenNotForTopic\"}", VERDICT_GONE,
	    "DeviceTokenNotForTopic" },
	{ 400, "{\"reason\":\"BadTopic\"}", VERDICT_CONFIG, "BadTopic" },
	{ 400, "{\"reason\":\"MissingTopic\"}", VERDICT_CONFIG,
	    "MissingTopic" },
	{ 400, "{\"reason\":\"IdleTimeout\"}", VERDICT_TEMPORARY,
	    "IdleTimeout" },
	{ 403, "{\"reason\":\"ExpiredProviderToken\"}", VERDICT_RENEW_AUTH,
	    "ExpiredProviderToken" },
	{ 403, "{\"reason\":\"BadCertificate\"}", VERDICT_CONFIG,
	    "BadCertificate" },
	{ 403, "{\"reason\":\"BadCertificateEnvironment\"}", VERDICT_CONFIG,
	    "BadCertificateEnvironment" },
	{ 403, "{\"reason\":\"InvalidProviderToken\"}", VERDICT_CONFIG,
	    "InvalidProviderToken" },
	{ 403, "{\"reason\":\"BadEnvironmentKeyIdInToken\"}", VERDICT_CONFIG,
	    "BadEnvironmentKeyIdInToken" },
	{ 403, "{\"reason\":\"BadEnvironmentKeyInToken\"}", VERDICT_CONFIG,
	    "BadEnvironmentKeyInToken" },
	{ 403, "{\"reason\":\"UnrelatedKeyIdInToken\"}", VERDICT_TEMPORARY,
	    "UnrelatedKeyIdInToken" },
	{ 413, "{\"reason\":\"PayloadTooLarge\"}", VERDICT_CONFIG,
	    "PayloadTooLarge" },
	{ 429, "{\"reason\":\"TooManyRequests\"}", VERDICT_TEMPORARY,
	    "TooManyRequests" },
	{ 429, "{\"reason\":\"TooManyProviderTokenUpdates\"}", VERDICT_CONFIG,
	    "TooManyProviderTokenUpdates" },
	{ 500, "{\"reason\":\"InternalServerError\"}", VERDICT_TEMPORARY,
	    "InternalServerError" },
	{ 503, "{\"reason\":\"ServiceUnavailable\"}", VERDICT_TEMPORARY,
	    "ServiceUnavailable" },
	{ 0, NULL, VERDICT_TEMPORARY, "0" },		/* no answer */
	{ 400, "not json", VERDICT_CONFIG, "400" },
	{ 400, "{\"reason\":\"Bad\\nDevice\\\"Token\"}", VERDICT_CONFIG,
	    "BadDeviceToken" },			/* sanitised, not trusted */
};

static void
test_answers(void **state)
{
	struct provider_result res;

	(void)state;
	for (size_t i = 0; i < sizeof(answers) / sizeof(*answers); i++) {
		classify(apns_classify, answers[i].status, answers[i].body,
		    answers[i].body ? strlen(answers[i].body) : 0, 0, &res);
		if (res.verdict != answers[i].want ||
		    strcmp(res.reason, answers[i].reason) != 0)
			fail_msg("row %zu (%ld %s): verdict %s reason %s", i,
			    answers[i].status, answers[i].reason,
			    provider_verdict_name(res.verdict), res.reason);
	}
}

/* The bearer token verifies with the key's public half and carries kid,
 * iss and iat. */
static void
check_jwt(const char *auth, EVP_PKEY *key, long long iat)
{
	const char *jwt = auth + strlen("bearer "), *d1, *d2;
	struct buf hdr, claims, sig;
	unsigned char *der = NULL;
	char want[96];
	ECDSA_SIG *es;
	EVP_MD_CTX *md;
	int derlen;

	assert_memory_equal(auth, "bearer ", 7);
	d1 = strchr(jwt, '.');
	d2 = strchr(d1 + 1, '.');
	buf_init(&hdr);
	buf_init(&claims);
	buf_init(&sig);
	assert_int_equal(base64url_decode(&hdr, jwt, (size_t)(d1 - jwt)), 0);
	assert_int_equal(base64url_decode(&claims, d1 + 1,
	    (size_t)(d2 - d1 - 1)), 0);
	assert_int_equal(base64url_decode(&sig, d2 + 1, strlen(d2 + 1)), 0);
	assert_string_equal(hdr.data, "{\"alg\":\"ES256\",\"kid\":\"KEYID12345\"}");
	snprintf(want, sizeof(want), "{\"iss\":\"TEAMID6789\",\"iat\":%lld}",
	    iat);
	assert_string_equal(claims.data, want);
	assert_int_equal(sig.len, 64);
	es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, BN_bin2bn((unsigned char *)sig.data, 32, NULL),
	    BN_bin2bn((unsigned char *)sig.data + 32, 32, NULL));
	derlen = i2d_ECDSA_SIG(es, &der);
	md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
	    key), 1);
	assert_int_equal(EVP_DigestVerify(md, der, (size_t)derlen,
	    (const unsigned char *)jwt, (size_t)(d2 - jwt)), 1);
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	buf_clear(&hdr);
	buf_clear(&claims);
	buf_clear(&sig);
}

static void
test_token_auth_renewal(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	struct apns_config cfg = { NULL, NULL, "chat.delta", key,
	    "KEYID12345", "TEAMID6789", NULL, 0 };
	struct apns *a = apns_new(&cfg);
	struct provider_request r;
	char err[ERR_LEN], first[1024];
	int64_t t0 = 1700000000000LL;

	(void)state;
	assert_int_equal(apns_build(a, PUSH_VISIBLE, DEV, false, t0, &r, err),
	    0);
	check_jwt(header(&r, "authorization"), key, t0 / 1000);
	strcpy(first, header(&r, "authorization"));
	provider_request_clear(&r);
	/* Reused, never per request, until the renewal age. */
	assert_int_equal(apns_build(a, PUSH_HEARTBEAT, DEV, false,
	    t0 + 39 * MIN_MS, &r, err), 0);
	assert_string_equal(header(&r, "authorization"), first);
	provider_request_clear(&r);
	assert_int_equal(apns_build(a, PUSH_VISIBLE, DEV, false,
	    t0 + 40 * MIN_MS, &r, err), 0);
	assert_string_not_equal(header(&r, "authorization"), first);
	check_jwt(header(&r, "authorization"), key, (t0 + 40 * MIN_MS) / 1000);
	provider_request_clear(&r);
	assert_int_equal(apns_jwt_issued_at(a), t0 + 40 * MIN_MS);
	/* ExpiredProviderToken: a new token only if the current one is at
	 * least 20 minutes old (Apple refuses faster renewals). */
	assert_false(apns_jwt_expired(a, t0 + 59 * MIN_MS));
	assert_true(apns_jwt_expired(a, t0 + 60 * MIN_MS));
	assert_int_equal(apns_jwt_issued_at(a), t0 + 60 * MIN_MS);
	apns_free(a);
	EVP_PKEY_free(key);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_visible_request),
		cmocka_unit_test(test_default_urls_without_topic),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_token_auth_renewal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
