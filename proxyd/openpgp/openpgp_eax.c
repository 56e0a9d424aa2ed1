/*
 * EAX mode (Bellare, Rogaway, Wagner, "The EAX Mode of Operation", 2004),
 * which RFC 9580 lists as AEAD algorithm 1 and OpenSSL does not have. It
 * is built from two things OpenSSL has: OMAC (CMAC) and CTR.
 *
 *	N = OMAC^0(nonce)	H = OMAC^1(ad)	C' = OMAC^2(ciphertext)
 *	tag = N ^ H ^ C'	plaintext = AES-CTR(key, counter N)(ciphertext)
 *
 * where OMAC^t(M) is CMAC over the 16-octet block [t] (t in its last octet)
 * followed by M. The tag is checked in constant time before anything is
 * decrypted.
 */
#include <openssl/crypto.h>

#include "openpgp_private.h"

/* OMAC^t(msg) into out (16 octets), on the CMAC context that
 * openpgp_aead_new keyed: initialising without a key restarts it with the
 * same key and cipher. */
static int
eax_omac(EVP_MAC_CTX *cmac, uint8_t t, const uint8_t *msg, size_t msg_len,
    uint8_t out[OPENPGP_AES_BLOCK_BYTES])
{
	uint8_t block[OPENPGP_AES_BLOCK_BYTES] = { 0 };
	size_t n = 0;

	block[OPENPGP_AES_BLOCK_BYTES - 1] = t;
	if (EVP_MAC_init(cmac, NULL, 0, NULL) <= 0 ||
	    EVP_MAC_update(cmac, block, sizeof(block)) <= 0 ||
	    (msg_len > 0 && EVP_MAC_update(cmac, msg, msg_len) <= 0) ||
	    EVP_MAC_final(cmac, out, &n, OPENPGP_AES_BLOCK_BYTES) <= 0 ||
	    n != OPENPGP_AES_BLOCK_BYTES)
		return -1;
	return 0;
}

enum openpgp_error
openpgp_eax_open(EVP_CIPHER_CTX *ctr, const EVP_CIPHER *ctr_cipher,
    EVP_MAC_CTX *cmac, const uint8_t *key, const uint8_t *nonce,
    size_t nonce_len, const uint8_t *ad, size_t ad_len, const uint8_t *ct,
    size_t ct_len, const uint8_t tag[OPENPGP_TAG_BYTES], uint8_t *out)
{
	uint8_t n_tag[OPENPGP_AES_BLOCK_BYTES], h_tag[OPENPGP_AES_BLOCK_BYTES];
	uint8_t c_tag[OPENPGP_AES_BLOCK_BYTES];
	int n = 0, fin = 0;

	if (ct_len > OPENPGP_PLAIN_MAX_BYTES)
		return OPENPGP_ERR_INTERNAL;
	if (eax_omac(cmac, 0, nonce, nonce_len, n_tag) < 0 ||
	    eax_omac(cmac, 1, ad, ad_len, h_tag) < 0 ||
	    eax_omac(cmac, 2, ct, ct_len, c_tag) < 0)
		return OPENPGP_ERR_INTERNAL;
	for (size_t i = 0; i < OPENPGP_AES_BLOCK_BYTES; i++)
		c_tag[i] ^= n_tag[i] ^ h_tag[i];
	if (CRYPTO_memcmp(c_tag, tag, OPENPGP_TAG_BYTES) != 0)
		return OPENPGP_ERR_AUTH;
	if (ct_len == 0)
		return OPENPGP_OK;
	/* OpenSSL's CTR increments the whole 128-bit block big-endian, as
	 * EAX wants. */
	if (EVP_DecryptInit_ex(ctr, ctr_cipher, NULL, key, n_tag) <= 0 ||
	    EVP_DecryptUpdate(ctr, out, &n, ct, (int)ct_len) <= 0 ||
	    EVP_DecryptFinal_ex(ctr, out + n, &fin) <= 0 ||
	    (size_t)n + (size_t)fin != ct_len)
		return OPENPGP_ERR_INTERNAL;
	return OPENPGP_OK;
}
