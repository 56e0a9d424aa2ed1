/*
 * The AEAD modes of SEIPDv2 chunks (RFC 9580 section 5.13.2): OCB and GCM
 * through OpenSSL's EVP interface, EAX through openpgp_eax.c. One context
 * opens every chunk of a message with the message key; every chunk gets
 * its own nonce, associated data and 16-octet tag.
 */
#include <stdlib.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>

#include "openpgp_private.h"
#include "xmalloc.h"

struct openpgp_aead {
	uint8_t			 aead;
	uint8_t			 cipher;
	uint8_t			 key[OPENPGP_SESSION_KEY_MAX_BYTES];
	const EVP_CIPHER	*evp;		/* OCB or GCM */
	EVP_CIPHER_CTX		*ctx;		/* the mode, or CTR for EAX */
	EVP_MAC			*mac;		/* EAX: CMAC */
	EVP_MAC_CTX		*cmac;
};

size_t
openpgp_aead_nonce_len(uint8_t aead)
{
	switch (aead) {
	case OPENPGP_AEAD_EAX:	return 16;
	case OPENPGP_AEAD_OCB:	return 15;
	case OPENPGP_AEAD_GCM:	return 12;
	default:		return 0;
	}
}

static const EVP_CIPHER *
aead_evp_cipher(uint8_t aead, uint8_t cipher)
{
	if (aead == OPENPGP_AEAD_OCB) {
		switch (cipher) {
		case OPENPGP_SYM_AES128:	return EVP_aes_128_ocb();
		case OPENPGP_SYM_AES192:	return EVP_aes_192_ocb();
		case OPENPGP_SYM_AES256:	return EVP_aes_256_ocb();
		}
	} else if (aead == OPENPGP_AEAD_GCM) {
		switch (cipher) {
		case OPENPGP_SYM_AES128:	return EVP_aes_128_gcm();
		case OPENPGP_SYM_AES192:	return EVP_aes_192_gcm();
		case OPENPGP_SYM_AES256:	return EVP_aes_256_gcm();
		}
	}
	return NULL;
}

struct openpgp_aead *
openpgp_aead_new(uint8_t aead, uint8_t cipher, const uint8_t *key)
{
	struct openpgp_aead *a;
	size_t key_len = openpgp_crypto_cipher_key_len(cipher);

	if (key_len == 0 || openpgp_aead_nonce_len(aead) == 0)
		return NULL;
	a = xcalloc(1, sizeof(*a));
	a->aead = aead;
	a->cipher = cipher;
	memcpy(a->key, key, key_len);
	if ((a->ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto fail;
	if (aead == OPENPGP_AEAD_EAX) {
		a->mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_CMAC, NULL);
		if (a->mac == NULL ||
		    (a->cmac = EVP_MAC_CTX_new(a->mac)) == NULL)
			goto fail;
	} else if ((a->evp = aead_evp_cipher(aead, cipher)) == NULL)
		goto fail;
	return a;
fail:
	openpgp_aead_free(a);
	return NULL;
}

void
openpgp_aead_free(struct openpgp_aead *a)
{
	if (a == NULL)
		return;
	EVP_CIPHER_CTX_free(a->ctx);
	EVP_MAC_CTX_free(a->cmac);
	EVP_MAC_free(a->mac);
	OPENSSL_cleanse(a->key, sizeof(a->key));
	free(a);
}

/* OCB and GCM through EVP. OpenSSL's OCB nonce defaults to 12 octets;
 * RFC 9580 uses 15, set before the key and nonce. */
static enum openpgp_error
aead_open_evp(struct openpgp_aead *a, const uint8_t *nonce,
    const uint8_t *ad, size_t ad_len, const uint8_t *ct, size_t ct_len,
    const uint8_t tag[OPENPGP_TAG_BYTES], uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = a->ctx;
	int n = 0, fin = 0, nonce_len = (int)openpgp_aead_nonce_len(a->aead);

	if (ct_len > OPENPGP_PLAIN_MAX_BYTES || ad_len > 64)
		return OPENPGP_ERR_INTERNAL;
	if (EVP_DecryptInit_ex(ctx, a->evp, NULL, NULL, NULL) <= 0 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, nonce_len,
	    NULL) <= 0 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, OPENPGP_TAG_BYTES,
	    (void *)tag) <= 0 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, a->key, nonce) <= 0 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, ad, (int)ad_len) <= 0)
		return OPENPGP_ERR_INTERNAL;
	n = 0;
	if (ct_len > 0 &&
	    EVP_DecryptUpdate(ctx, out, &n, ct, (int)ct_len) <= 0)
		return OPENPGP_ERR_AUTH;
	if (n < 0 || (size_t)n > ct_len)
		return OPENPGP_ERR_INTERNAL;
	/* OCB may hold back a partial block until Final. */
	if (EVP_DecryptFinal_ex(ctx, out + n, &fin) <= 0)
		return OPENPGP_ERR_AUTH;
	if ((size_t)n + (size_t)fin != ct_len)
		return OPENPGP_ERR_INTERNAL;
	return OPENPGP_OK;
}

enum openpgp_error
openpgp_aead_open(struct openpgp_aead *a, const uint8_t *nonce,
    const uint8_t *ad, size_t ad_len, const uint8_t *ct, size_t ct_len,
    const uint8_t tag[OPENPGP_TAG_BYTES], uint8_t *out)
{
	if (a->aead == OPENPGP_AEAD_EAX)
		return openpgp_eax_open(a->ctx, a->cmac, a->cipher, a->key,
		    nonce, openpgp_aead_nonce_len(a->aead), ad, ad_len, ct,
		    ct_len, tag, out);
	return aead_open_evp(a, nonce, ad, ad_len, ct, ct_len, tag, out);
}
