/*
 * Unit tests of proxyd/push/credentials.c with files made by the openssl
 * tool: a certificate (.p12 with a --password-file) becomes APNs's
 * certificate auth with the certificate's topic, OpenSSL's legacy
 * provider loaded explicitly before the file is read; a token key (.p8)
 * together with a certificate (--password on the command line) gives
 * both, and the --topic given stays.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "credentials.h"
#include "log.h"
#include "p12.h"

static char dir[64];

static void
sh(const char *cmd)
{
	char line[1024];

	snprintf(line, sizeof(line), "cd %s && %s", dir, cmd);
	if (system(line) != 0)
		fail_msg("command failed: %s", line);
}

static char *
path(const char *name)
{
	static char p[4][128];
	static int n;

	n = (n + 1) % 4;
	snprintf(p[n], sizeof(p[n]), "%s/%s", dir, name);
	return p[n];
}

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/test_credentials.XXXXXX");
	assert_non_null(mkdtemp(dir));
	sh("openssl req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:P-256 -nodes -days 1 -subj "
	    "'/UID=chat.delta.test/CN=Apple Push Services: chat.delta.test' "
	    "-keyout key.pem -out cert.pem 2>/dev/null");
	sh("openssl pkcs12 -export -in cert.pem -inkey key.pem "
	    "-out cert.p12 -passout pass:secret");
	sh("printf 'secret\\n' > password");
	sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
	    "-out token.p8 2>/dev/null");
	log_set_level(LOG_LEVEL_ERR);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sh("rm -f key.pem cert.pem cert.p12 password token.p8");
	rmdir(dir);
	return 0;
}

static void
test_certificate(void **state)
{
	struct credentials_options o;
	struct push_config push;
	struct credentials c;

	(void)state;
	memset(&o, 0, sizeof(o));
	memset(&push, 0, sizeof(push));
	o.p12_path = path("cert.p12");
	o.password_file = path("password");
	credentials_load(&o, &push, &c);
	assert_ptr_equal(push.providers.apns.cert, &c.p12);
	assert_non_null(c.p12.key);
	assert_null(push.providers.apns.key);
	assert_string_equal(push.providers.apns.topic, "chat.delta.test");
	/* Loaded at start, before the file: not as a side effect. */
	assert_true(p12_legacy_loaded());
	credentials_free(&c);
	assert_null(c.p12.cert);
}

static void
test_key_and_certificate(void **state)
{
	struct credentials_options o;
	struct push_config push;
	struct credentials c;

	(void)state;
	memset(&o, 0, sizeof(o));
	memset(&push, 0, sizeof(push));
	o.p12_path = path("cert.p12");
	o.password = "secret";
	o.p8_path = path("token.p8");
	push.providers.apns.key_id = "KEYID12345";
	push.providers.apns.team_id = "TEAMID6789";
	push.providers.apns.topic = "chat.delta";
	credentials_load(&o, &push, &c);
	/* Requests carry the JWT, and the certificate is presented. */
	assert_ptr_equal(push.providers.apns.key, c.p8_key);
	assert_non_null(c.p8_key);
	assert_ptr_equal(push.providers.apns.cert, &c.p12);
	assert_string_equal(push.providers.apns.topic, "chat.delta");
	credentials_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_certificate),
		cmocka_unit_test(test_key_and_certificate),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
