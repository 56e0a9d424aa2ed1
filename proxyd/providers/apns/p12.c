/* Loading a .p12 and reading its topic; see p12.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "p12.h"
#include "xmalloc.h"

/* Process-wide by nature (docs/style.md): OpenSSL's providers belong to
 * the default library context, and once loaded they stay. */
static OSSL_PROVIDER *p12_legacy, *p12_default;
static bool p12_legacy_tried;

int
p12_legacy_load(char err[ERR_LEN])
{
	if (!p12_legacy_tried) {
		p12_legacy_tried = true;
		p12_legacy = OSSL_PROVIDER_load(NULL, "legacy");
		/* An explicit load switches off the implicit default
		 * provider: load it too. */
		if (p12_legacy != NULL)
			p12_default = OSSL_PROVIDER_load(NULL, "default");
		ERR_clear_error();
	}
	if (p12_legacy == NULL) {
		err_set(err, "OpenSSL's legacy provider is not available");
		return -1;
	}
	return 0;
}

bool
p12_legacy_loaded(void)
{
	return p12_legacy != NULL;
}

static PKCS12 *
p12_read(const char *path, char err[ERR_LEN])
{
	FILE *fp = fopen(path, "rb");
	PKCS12 *p12;

	if (fp == NULL) {
		err_set(err, "%s: cannot open", path);
		return NULL;
	}
	p12 = d2i_PKCS12_fp(fp, NULL);
	fclose(fp);
	if (p12 == NULL)
		err_set(err, "%s: not a PKCS#12 file", path);
	return p12;
}

int
p12_load(const char *path, const char *password, struct p12 *out,
    char err[ERR_LEN])
{
	PKCS12 *p12;
	int ok;

	memset(out, 0, sizeof(*out));
	if (password == NULL)
		password = "";
	if ((p12 = p12_read(path, err)) == NULL) {
		ERR_clear_error();
		return -1;
	}
	/* A wrong password fails the MAC check before any cipher is needed,
	 * so it is told apart from a missing legacy algorithm. */
	if (PKCS12_verify_mac(p12, password, -1) != 1) {
		err_set(err, "%s: wrong password (MAC check failed)", path);
		PKCS12_free(p12);
		ERR_clear_error();
		return -1;
	}
	ok = PKCS12_parse(p12, password, &out->key, &out->cert,
	    &out->chain) == 1;
	PKCS12_free(p12);
	ERR_clear_error();
	if (!ok || out->key == NULL || out->cert == NULL) {
		err_set(err, "%s: cannot read the certificate and key (%s)",
		    path, p12_legacy_loaded() ? "damaged or unsupported file" :
		    "damaged, or an old cipher such as RC2-40 and OpenSSL's "
		    "legacy provider is not loaded");
		p12_clear(out);
		return -1;
	}
	return 0;
}

char *
p12_topic(const struct p12 *p)
{
	X509_NAME *name = X509_get_subject_name(p->cert);
	int i = X509_NAME_get_index_by_NID(name, NID_userId, -1);
	ASN1_STRING *v;

	if (i < 0)
		return NULL;
	v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	return xmemdup0(ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v));
}

void
p12_clear(struct p12 *p)
{
	EVP_PKEY_free(p->key);
	X509_free(p->cert);
	sk_X509_pop_free(p->chain, X509_free);
	memset(p, 0, sizeof(*p));
}
