/*
 * The AEAD modes of SEIPDv2 chunks (RFC 9580 section 5.13.2): OCB and GCM
 * through OpenSSL's EVP interface, EAX through openpgp_eax.c. One context
 * opens every chunk of a message with the message key; every chunk gets
 * its own nonce, associated data and 16-octet tag.
 */
#include <stdlib.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include "openpgp_private.h"
#include "xmalloc.h"

struct openpgp_aead {
	uint8_t			 aead;
	uint8_t			 key[OPENPGP_SESSION_KEY_MAX_BYTES];
	/* OCB and GCM: the mode, keyed once. EAX: its CTR half, keyed per
	 * chunk with the fetched ctr (borrowed from the keyring). */
	EVP_CIPHER_CTX		*ctx;
	const EVP_CIPHER	*ctr;
	EVP_MAC_CTX		*cmac;		/* EAX: CMAC keyed once */
};

/* CMAC takes its block cipher by name only. */
static const char *const aead_cbc_names[OPENPGP_AES_SIZES] = {
	"AES-128-CBC", "AES-192-CBC", "AES-256-CBC"
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

/* EAX: the three OMACs of a chunk share the message key, so the CMAC is
 * keyed here and each OMAC only restarts it (openpgp_eax.c). */
static int
aead_init_eax(struct openpgp_aead *a, const struct openpgp_algs *algs,
    int slot, size_t key_len)
{
	OSSL_PARAM params[2];

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER,
	    (char *)aead_cbc_names[slot], 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((a->ctr = algs->ctr[slot]) == NULL || algs->cmac == NULL ||
	    (a->cmac = EVP_MAC_CTX_new(algs->cmac)) == NULL ||
	    EVP_MAC_init(a->cmac, a->key, key_len, params) <= 0)
		return -1;
	return 0;
}

/* OCB and GCM: the key schedule (and OCB's table of L values) once per
 * message; each chunk then sets only its tag and nonce. OpenSSL's OCB
 * nonce defaults to 12 octets; RFC 9580 uses 15, set before the key. */
static int
aead_init_evp(struct openpgp_aead *a, const struct openpgp_algs *algs,
    int slot)
{
	const EVP_CIPHER *evp = a->aead == OPENPGP_AEAD_OCB ?
	    algs->ocb[slot] : algs->gcm[slot];

	if (evp == NULL ||
	    EVP_DecryptInit_ex(a->ctx, evp, NULL, NULL, NULL) <= 0 ||
	    EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_IVLEN,
	    (int)openpgp_aead_nonce_len(a->aead), NULL) <= 0 ||
	    EVP_DecryptInit_ex(a->ctx, NULL, NULL, a->key, NULL) <= 0)
		return -1;
	return 0;
}

struct openpgp_aead *
openpgp_aead_new(const struct openpgp_algs *algs, uint8_t aead,
    uint8_t cipher, const uint8_t *key)
{
	struct openpgp_aead *a;
	size_t key_len = openpgp_crypto_cipher_key_len(cipher);
	int slot = openpgp_aes_slot(cipher);

	if (key_len == 0 || slot < 0 || openpgp_aead_nonce_len(aead) == 0)
		return NULL;
	a = xcalloc(1, sizeof(*a));
	a->aead = aead;
	memcpy(a->key, key, key_len);
	if ((a->ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto fail;
	if ((aead == OPENPGP_AEAD_EAX ? aead_init_eax(a, algs, slot, key_len) :
	    aead_init_evp(a, algs, slot)) < 0)
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
	OPENSSL_cleanse(a->key, sizeof(a->key));
	free(a);
}

/* OCB and GCM through EVP on the context keyed by aead_init_evp. The tag
 * is set before the nonce, as for a fresh context; the nonce restarts the
 * mode (OpenSSL applies it at the first update, resetting offsets,
 * checksum and GHASH), so nothing of the previous chunk carries over. */
static enum openpgp_error
aead_open_evp(struct openpgp_aead *a, const uint8_t *nonce,
    const uint8_t *ad, size_t ad_len, const uint8_t *ct, size_t ct_len,
    const uint8_t tag[OPENPGP_TAG_BYTES], uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = a->ctx;
	int n = 0, fin = 0;

	if (ct_len > OPENPGP_PLAIN_MAX_BYTES || ad_len > 64)
		return OPENPGP_ERR_INTERNAL;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, OPENPGP_TAG_BYTES,
	    (void *)tag) <= 0 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) <= 0 ||
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
		return openpgp_eax_open(a->ctx, a->ctr, a->cmac, a->key,
		    nonce, openpgp_aead_nonce_len(a->aead), ad, ad_len, ct,
		    ct_len, tag, out);
	return aead_open_evp(a, nonce, ad, ad_len, ct, ct_len, tag, out);
}
