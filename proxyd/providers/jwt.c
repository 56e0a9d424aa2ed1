/* JWT signing; see jwt.h. */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "base64.h"
#include "buf.h"
#include "jwt.h"
#include "xmalloc.h"

/* DER ECDSA-Sig-Value -> raw r || s, each left-padded to 32 bytes, the
 * form JWS requires for ES256 (RFC 7518 §3.4). */
static int
jwt_der_to_raw(const unsigned char *der, size_t len, unsigned char raw[64])
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	const BIGNUM *r, *s;
	int ok;

	if (sig == NULL)
		return -1;
	ECDSA_SIG_get0(sig, &r, &s);
	ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32,
	    32) == 32;
	ECDSA_SIG_free(sig);
	return ok ? 0 : -1;
}

char *
jwt_sign(enum jwt_alg alg, EVP_PKEY *key, const char *header_json,
    const char *claims_json, char err[ERR_LEN])
{
	EVP_MD_CTX *md = NULL;
	unsigned char *sig = NULL, raw[64];
	size_t siglen = 0;
	struct buf out;
	int want = alg == JWT_ES256 ? EVP_PKEY_EC : EVP_PKEY_RSA;

	buf_init(&out);
	if (EVP_PKEY_get_base_id(key) != want) {
		err_set(err, "key type does not match %s",
		    alg == JWT_ES256 ? "ES256" : "RS256");
		return NULL;
	}
	base64url_encode(&out, header_json, strlen(header_json));
	buf_append_char(&out, '.');
	base64url_encode(&out, claims_json, strlen(claims_json));

	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (unsigned char *)out.data,
	    out.len) != 1)
		goto fail;
	sig = xmalloc(siglen);
	if (EVP_DigestSign(md, sig, &siglen, (unsigned char *)out.data,
	    out.len) != 1)
		goto fail;
	buf_append_char(&out, '.');
	if (alg == JWT_ES256) {
		if (jwt_der_to_raw(sig, siglen, raw) < 0)
			goto fail;
		base64url_encode(&out, raw, sizeof(raw));
	} else
		base64url_encode(&out, sig, siglen);
	free(sig);
	EVP_MD_CTX_free(md);
	return buf_steal(&out, NULL);
fail:
	err_set(err, "signing the JWT failed");
	free(sig);
	EVP_MD_CTX_free(md);
	buf_clear(&out);
	return NULL;
}

int
jwt_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return -1;
}

EVP_PKEY *
jwt_load_key_pem(const char *pem, size_t len, char err[ERR_LEN])
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *key;

	if (bio == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	key = PEM_read_bio_PrivateKey(bio, NULL, jwt_no_passphrase, NULL);
	BIO_free(bio);
	if (key == NULL)
		err_set(err, "not a PEM private key");
	else if (jwt_key_check(key, err) < 0) {
		EVP_PKEY_free(key);
		key = NULL;
	}
	return key;
}

int
jwt_key_check(EVP_PKEY *key, char err[ERR_LEN])
{
	EVP_PKEY_CTX *ctx;
	int ok;

	ERR_set_mark();
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	ok = ctx != NULL && EVP_PKEY_pairwise_check(ctx) == 1;
	EVP_PKEY_CTX_free(ctx);
	ERR_pop_to_mark();
	if (!ok) {
		err_set(err, "the private key does not match its public key "
		    "(damaged)");
		return -1;
	}
	return 0;
}
