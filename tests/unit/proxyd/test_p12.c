/* Unit tests of proxyd/providers/apns/p12.c with files made by the openssl tool: a
 * modern .p12, a legacy RC2-40 one (as Keychain exports), a wrong
 * password, garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

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
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sh("rm -f key.pem cert.pem modern.p12 legacy.p12 garbage.p12");
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

static void
test_modern_then_legacy(void **state)
{
	char err[ERR_LEN], *topic;

	(void)state;
	assert_int_equal(p12_check(path("modern.p12"), "secret", &topic, err),
	    0);
	assert_string_equal(topic, "chat.delta.test");
	free(topic);
	/* RC2-40 needs OpenSSL 3's legacy provider, loaded on demand. */
	if (p12_check(path("legacy.p12"), "secret", &topic, err) != 0)
		fail_msg("legacy p12: %s", err);
	assert_string_equal(topic, "chat.delta.test");
	free(topic);
}

static void
test_errors(void **state)
{
	char err[ERR_LEN], *topic;

	(void)state;
	assert_int_equal(p12_check(path("modern.p12"), "wrong", &topic, err),
	    -1);
	assert_non_null(strstr(err, "wrong password"));
	assert_int_equal(p12_check(path("legacy.p12"), "wrong", &topic, err),
	    -1);
	assert_non_null(strstr(err, "wrong password"));
	assert_int_equal(p12_check(path("missing.p12"), "x", &topic, err), -1);
	assert_non_null(strstr(err, "cannot open"));
	assert_int_equal(p12_check(path("garbage.p12"), "x", &topic, err), -1);
	assert_null(topic);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modern_then_legacy),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
