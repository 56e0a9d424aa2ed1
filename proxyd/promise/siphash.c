/* SipHash-2-4-128; see siphash.h. */
#include "siphash.h"

#define SIPHASH_ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static inline void
siphash_round(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = SIPHASH_ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = SIPHASH_ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = SIPHASH_ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = SIPHASH_ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = SIPHASH_ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = SIPHASH_ROTL(v[2], 32);
}

static inline uint64_t
siphash_load64(const uint8_t *p)
{
	uint64_t x = 0;

	for (int i = 7; i >= 0; i--)
		x = x << 8 | p[i];
	return x;
}

static inline void
siphash_store64(uint8_t *p, uint64_t x)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(x >> (8 * i));
}

void
siphash_key_set(struct siphash_key *k, const uint8_t key[SIPHASH_KEY_LEN])
{
	k->k0 = siphash_load64(key);
	k->k1 = siphash_load64(key + 8);
}

uint64_t
siphash_digest_u64(const uint8_t digest[SIPHASH_DIGEST_LEN])
{
	return siphash_load64(digest);
}

void
siphash128(const struct siphash_key *k, const void *data, size_t len,
    uint8_t out[SIPHASH_DIGEST_LEN])
{
	uint64_t v[4] = {
		k->k0 ^ 0x736f6d6570736575ULL,
		k->k1 ^ 0x646f72616e646f6dULL ^ 0xee,	/* 128-bit output */
		k->k0 ^ 0x6c7967656e657261ULL,
		k->k1 ^ 0x7465646279746573ULL,
	};
	const uint8_t *in = data, *end = in + (len & ~(size_t)7);
	uint64_t m, b = (uint64_t)len << 56;

	for (; in != end; in += 8) {
		m = siphash_load64(in);
		v[3] ^= m;
		siphash_round(v);
		siphash_round(v);
		v[0] ^= m;
	}
	for (size_t i = 0; i < (len & 7); i++)
		b |= (uint64_t)in[i] << (8 * i);
	v[3] ^= b;
	siphash_round(v);
	siphash_round(v);
	v[0] ^= b;
	v[2] ^= 0xee;
	for (int i = 0; i < 4; i++)
		siphash_round(v);
	siphash_store64(out, v[0] ^ v[1] ^ v[2] ^ v[3]);
	v[1] ^= 0xdd;
	for (int i = 0; i < 4; i++)
		siphash_round(v);
	siphash_store64(out + 8, v[0] ^ v[1] ^ v[2] ^ v[3]);
}
