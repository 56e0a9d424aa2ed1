/* Checking a .p12 and reading its topic; see p12.h. */
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

/* The subject's UID (0.9.2342.19200300.100.1.1), or NULL. */
static char *
p12_uid(X509 *cert)
{
	X509_NAME *name = X509_get_subject_name(cert);
	int i = X509_NAME_get_index_by_NID(name, NID_userId, -1);
	ASN1_STRING *v;

	if (i < 0)
		return NULL;
	v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	return xmemdup0(ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v));
}

static int
p12_parse(PKCS12 *p12, const char *password, EVP_PKEY **key, X509 **cert)
{
	ERR_clear_error();
	return PKCS12_parse(p12, password, key, cert, NULL) == 1;
}

int
p12_check(const char *path, const char *password, char **topic_out,
    char err[ERR_LEN])
{
	static OSSL_PROVIDER *legacy, *deflt;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	PKCS12 *p12;
	int ok;

	*topic_out = NULL;
	if ((p12 = p12_read(path, err)) == NULL)
		return -1;
	/* A wrong password fails the MAC check before any cipher is needed,
	 * so it is told apart from a missing legacy algorithm. */
	if (PKCS12_verify_mac(p12, password, -1) != 1) {
		err_set(err, "%s: wrong password (MAC check failed)", path);
		PKCS12_free(p12);
		return -1;
	}
	ok = p12_parse(p12, password, &key, &cert);
	if (!ok && legacy == NULL) {
		/* Loaded once for the process and kept: the HTTP/2 client
		 * reads the same file through the same library context. */
		legacy = OSSL_PROVIDER_load(NULL, "legacy");
		deflt = OSSL_PROVIDER_load(NULL, "default");
		ok = legacy != NULL && p12_parse(p12, password, &key, &cert);
	}
	PKCS12_free(p12);
	if (!ok || key == NULL || cert == NULL) {
		err_set(err, "%s: cannot read the certificate and key (%s)",
		    path, legacy == NULL ? "OpenSSL's legacy provider is not "
		    "available for this old file" : "damaged or unsupported "
		    "file");
		EVP_PKEY_free(key);
		X509_free(cert);
		return -1;
	}
	*topic_out = p12_uid(cert);
	EVP_PKEY_free(key);
	X509_free(cert);
	(void)deflt;
	return 0;
}
