/*
 * libFuzzer target for proxyd's FCM service-account key loader
 * (fcm_key_parse): anything may be rejected (with a reason in printable
 * ASCII, which never quotes the input), nothing may crash, and what is
 * accepted is usable and consistent: its members obey their rules, the
 * key signs an assertion, and the key written back as a key file parses
 * to the same members.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/pem.h>

#include "fcm.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_err(const char *err)
{
	if (err[0] == '\0')
		abort();		/* refused without a reason */
	for (const char *p = err; *p != '\0'; p++)
		if (*p < ' ' || *p > '~')
			abort();	/* a raw input byte leaked into err */
}

static int
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The key file again, from the parsed members and the key's PEM. */
static char *
write_back(const struct fcm_key *k)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem, *out;
	json_t *o;
	long n;

	if (bio == NULL || PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL,
	    0, NULL, NULL) != 1)
		abort();
	n = BIO_get_mem_data(bio, &pem);
	o = json_pack("{s:s,s:s,s:s,s:s,s:s#}", "type", "service_account",
	    "project_id", k->project_id, "client_email", k->client_email,
	    "token_uri", k->token_uri, "private_key", pem, (size_t)n);
	if (o == NULL)
		abort();
	if (k->private_key_id != NULL)
		json_object_set_new(o, "private_key_id",
		    json_string(k->private_key_id));
	out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	BIO_free(bio);
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct fcm_key *a, *b;
	char err[ERR_LEN], *jwt, *again;
	int bits;

	err[0] = '\0';
	if ((a = fcm_key_parse((const char *)data, len, err)) == NULL) {
		check_err(err);
		return 0;	/* rejecting is fine, crashing is not */
	}
	bits = EVP_PKEY_get_bits(a->pkey);
	if (a->project_id[0] == '\0' || strchr(a->client_email, '@') == NULL ||
	    strncmp(a->token_uri, "https://", 8) != 0 ||
	    EVP_PKEY_get_base_id(a->pkey) != EVP_PKEY_RSA ||
	    bits < FCM_KEY_RSA_MIN_BITS || bits > FCM_KEY_RSA_MAX_BITS)
		abort();
	if ((jwt = fcm_auth_assertion(a, 1700000000000LL, err)) == NULL)
		abort();		/* accepted but cannot sign */
	free(jwt);
	again = write_back(a);
	if ((b = fcm_key_parse(again, strlen(again), err)) == NULL ||
	    !same(a->project_id, b->project_id) ||
	    !same(a->client_email, b->client_email) ||
	    !same(a->private_key_id, b->private_key_id) ||
	    !same(a->token_uri, b->token_uri) ||
	    EVP_PKEY_eq(a->pkey, b->pkey) != 1)
		abort();		/* what we accept, we can write back */
	free(again);
	fcm_key_free(a);
	fcm_key_free(b);
	return 0;
}
