/*
 * How many tokens per second one core decrypts, next to the X25519 derive
 * rate of the same libcrypto, which bounds it (one derive per token).
 *
 *	openpgp-speed [testdata-dir [seconds]]
 *
 * testdata-dir defaults to $TESTDATA/openpgp or tests/data/openpgp;
 * the message is vector core_apns_k1 with keyring-v6.asc. Every round
 * decrypts the token from scratch (nothing is cached between calls), as
 * proxyd does for every registration. Prints one line per measurement,
 * then the ratio of the two rates: the target is at least 0.80, the
 * X25519 derive being the one cost that no implementation can avoid.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "openpgp.h"
#include "xmalloc.h"

#define SPEED_ROW	"core_apns_k1"
#define SPEED_CHECK_EVERY	64

static double
speed_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The input and expected token of SPEED_ROW (caller frees both). */
static int
speed_read_row(const char *dir, char **input_out, char **expected_out)
{
	char path[1024], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *fp;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/vectors.tsv", dir);
	if ((fp = fopen(path, "r")) == NULL) {
		perror(path);
		return -1;
	}
	while ((n = getline(&line, &cap, fp)) > 0) {
		char *save = NULL, *name, *kr, *in, *exp;

		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		name = strtok_r(line, "\t", &save);
		kr = strtok_r(NULL, "\t", &save);
		in = strtok_r(NULL, "\t", &save);
		exp = strtok_r(NULL, "\t", &save);
		if (name == NULL || kr == NULL || in == NULL || exp == NULL ||
		    strcmp(name, SPEED_ROW) != 0)
			continue;
		*input_out = xstrdup(in);
		*expected_out = xstrdup(exp);
		rc = 0;
		break;
	}
	free(line);
	fclose(fp);
	if (rc < 0)
		fprintf(stderr, "%s: no row %s\n", path, SPEED_ROW);
	return rc;
}

/* Tokens per second, or -1 when a decryption fails. */
static double
speed_decrypt(const struct openpgp_keyring *kr, const char *input,
    const char *expected, double seconds)
{
	double start = speed_now(), el;
	unsigned long n = 0;
	char err[ERR_LEN] = "", *plain;

	do {
		for (int i = 0; i < SPEED_CHECK_EVERY; i++, n++) {
			if (openpgp_decrypt_token(kr, input, strlen(input),
			    &plain, err) != OPENPGP_OK ||
			    strcmp(plain, expected) != 0) {
				fprintf(stderr, "decrypt failed: %s\n", err);
				free(plain);
				return -1;
			}
			free(plain);
		}
	} while ((el = speed_now() - start) < seconds);
	printf("openpgp_decrypt_token %s: %lu in %.2f s = %.0f/s "
	    "(%.1f us each)\n", SPEED_ROW, n, el, (double)n / el,
	    el * 1e6 / (double)n);
	return (double)n / el;
}

/* The same loop around EVP_PKEY_derive alone, the plain way: a fixed key
 * pair and a fresh context per derive. Derives per second, or -1.
 * (openpgp_crypto_x25519 copies a context prepared at load instead, which
 * saves a little per derive; the baseline stays the plain use of the API
 * so that its figure is comparable across versions of this file.) */
static double
speed_x25519(double seconds)
{
	EVP_PKEY *a = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	EVP_PKEY *b = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	unsigned char shared[32];
	double start = speed_now(), el;
	unsigned long n = 0;
	size_t len;
	double rate = -1;

	if (a == NULL || b == NULL)
		goto out;
	do {
		for (int i = 0; i < SPEED_CHECK_EVERY; i++, n++) {
			EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(a, NULL);

			len = sizeof(shared);
			if (ctx == NULL || EVP_PKEY_derive_init(ctx) <= 0 ||
			    EVP_PKEY_derive_set_peer(ctx, b) <= 0 ||
			    EVP_PKEY_derive(ctx, shared, &len) <= 0) {
				EVP_PKEY_CTX_free(ctx);
				goto out;
			}
			EVP_PKEY_CTX_free(ctx);
		}
	} while ((el = speed_now() - start) < seconds);
	printf("EVP_PKEY_derive X25519: %lu in %.2f s = %.0f/s (%.1f us "
	    "each)\n", n, el, (double)n / el, el * 1e6 / (double)n);
	rate = (double)n / el;
out:
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
	return rate;
}

int
main(int argc, char **argv)
{
	const char *td = getenv("TESTDATA");
	char dir[900], path[1024], err[ERR_LEN], *input, *expected;
	double seconds = argc > 2 ? atof(argv[2]) : 3.0, decrypt, x25519;
	struct openpgp_keyring *kr;
	int rc = 1;

	if (argc > 1)
		snprintf(dir, sizeof(dir), "%s", argv[1]);
	else
		snprintf(dir, sizeof(dir), "%s/openpgp",
		    td != NULL ? td : "tests/data");
	snprintf(path, sizeof(path), "%s/keyring-v6.asc", dir);
	if ((kr = openpgp_keyring_load_file(path, err)) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (speed_read_row(dir, &input, &expected) < 0) {
		openpgp_keyring_free(kr);
		return 1;
	}
	if ((decrypt = speed_decrypt(kr, input, expected, seconds)) > 0 &&
	    (x25519 = speed_x25519(seconds)) > 0) {
		printf("decrypt/X25519 rate: %.2f\n", decrypt / x25519);
		rc = 0;
	}
	free(input);
	free(expected);
	openpgp_keyring_free(kr);
	return rc;
}
