/* Unit tests of proxyd/providers/apns/p12.c with files made by the openssl
 * tool: a modern .p12, a legacy RC2-40 one (as Keychain exports) that
 * loads only once the legacy provider is asked for, one with a chain, a
 * wrong password, garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "p12.h"

static char dir[64];

/* Run "cd <dir> && <cmd>". */
static void
sh(const char *cmd)
{
	char line[1024];

	snprintf(line, sizeof(line), "cd %s && %s", dir, cmd);
	if (system(line) != 0)
		fail_msg("command failed: %s", line);
}

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/test_p12.XXXXXX");
	assert_non_null(mkdtemp(dir));
	sh("openssl req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:P-256 -nodes -days 1 -subj "
	    "'/UID=chat.delta.test/CN=Apple Push Services: chat.delta.test' "
	    "-keyout key.pem -out cert.pem 2>/dev/null");
	sh("openssl pkcs12 -export -in cert.pem -inkey key.pem "
	    "-out modern.p12 -passout pass:secret");
	sh("openssl pkcs12 -export -legacy -certpbe PBE-SHA1-RC2-40 "
	    "-keypbe PBE-SHA1-3DES -in cert.pem -inkey key.pem -out legacy.p12 "
	    "-passout pass:secret");
	sh("head -c 500 /dev/urandom > garbage.p12");
	/* A certificate issued by a CA of its own, the CA in the file. */
	sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	    "-nodes -days 1 -subj '/CN=Test CA' -keyout ca.key -out ca.pem "
	    "2>/dev/null");
	sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	    "-nodes -subj '/UID=chat.delta.test/CN=Apple Push Services' "
	    "-keyout leaf.key -out leaf.csr 2>/dev/null");
	sh("openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key "
	    "-CAcreateserial -days 1 -out leaf.pem 2>/dev/null");
	sh("openssl pkcs12 -export -in leaf.pem -inkey leaf.key "
	    "-certfile ca.pem -out chain.p12 -passout pass:secret");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sh("rm -f key.pem cert.pem modern.p12 legacy.p12 garbage.p12 ca.key "
	    "ca.pem ca.srl leaf.key leaf.csr leaf.pem chain.p12");
	rmdir(dir);
	return 0;
}

static char *
path(const char *name)
{
	static char p[128];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

/* The key belongs to the certificate, which is the one made above. */
static void
check_loaded(const struct p12 *p)
{
	char *topic = p12_topic(p);

	assert_non_null(p->key);
	assert_non_null(p->cert);
	assert_int_equal(X509_check_private_key(p->cert, p->key), 1);
	assert_non_null(topic);
	assert_string_equal(topic, "chat.delta.test");
	free(topic);
}

static void
test_modern_then_legacy(void **state)
{
	struct p12 p;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(p12_load(path("modern.p12"), "secret", &p, err), 0);
	check_loaded(&p);
	assert_true(p.chain == NULL || sk_X509_num(p.chain) == 0);
	p12_clear(&p);
	assert_null(p.key);
	/* RC2-40 needs OpenSSL 3's legacy provider, which nothing loads
	 * behind the caller's back ... */
	assert_false(p12_legacy_loaded());
	assert_int_equal(p12_load(path("legacy.p12"), "secret", &p, err), -1);
	assert_non_null(strstr(err, "legacy provider is not loaded"));
	assert_null(p.key);
	/* ... until it is asked for, once for the process. */
	if (p12_legacy_load(err) != 0)
		fail_msg("legacy provider: %s", err);
	assert_true(p12_legacy_loaded());
	assert_int_equal(p12_legacy_load(err), 0);
	if (p12_load(path("legacy.p12"), "secret", &p, err) != 0)
		fail_msg("legacy p12: %s", err);
	check_loaded(&p);
	p12_clear(&p);
	/* Modern files still load, with the default provider loaded
	 * explicitly beside the legacy one. */
	assert_int_equal(p12_load(path("modern.p12"), "secret", &p, err), 0);
	check_loaded(&p);
	p12_clear(&p);
}

/* The chain certificates of the file come along (h2client presents
 * them at the handshake). */
static void
test_chain(void **state)
{
	struct p12 p;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(p12_load(path("chain.p12"), "secret", &p, err), 0);
	check_loaded(&p);
	assert_non_null(p.chain);
	assert_int_equal(sk_X509_num(p.chain), 1);
	assert_int_equal(X509_check_issued(sk_X509_value(p.chain, 0), p.cert),
	    X509_V_OK);
	p12_clear(&p);
}

static void
test_errors(void **state)
{
	struct p12 p;
	char err[ERR_LEN];

	(void)state;
	assert_int_equal(p12_load(path("modern.p12"), "wrong", &p, err), -1);
	assert_non_null(strstr(err, "wrong password"));
	assert_null(strstr(err, "secret"));
	assert_int_equal(p12_load(path("legacy.p12"), "wrong", &p, err), -1);
	assert_non_null(strstr(err, "wrong password"));
	assert_int_equal(p12_load(path("missing.p12"), "x", &p, err), -1);
	assert_non_null(strstr(err, "cannot open"));
	assert_int_equal(p12_load(path("garbage.p12"), "x", &p, err), -1);
	assert_non_null(strstr(err, "not a PKCS#12 file"));
	assert_null(p.key);
	assert_null(p.cert);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modern_then_legacy),
		cmocka_unit_test(test_chain),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
