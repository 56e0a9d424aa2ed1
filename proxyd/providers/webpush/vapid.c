/*
 * VAPID keys and JWTs; see vapid.h. The JWT itself is jwt_sign()'s (raw
 * r || s signature, RFC 7518 §3.4); this file picks the claims, checks
 * what goes into them and caches the result per origin.
 *
 * The claims are printed, not built with jansson: every value is checked
 * here to need no JSON escaping (an origin is [a-z0-9.-] and an IP
 * literal; the subject is refused if it holds '"', '\\' or control
 * bytes), so the bytes are exactly what a test expects.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "base64.h"
#include "buf.h"
#include "jwt.h"
#include "vapid.h"
#include "webpush_crypto.h"
#include "xmalloc.h"

#define VAPID_JWT_HEADER	"{\"typ\":\"JWT\",\"alg\":\"ES256\"}"
#define VAPID_HOST_MAX_BYTES	255	/* 253 + an IPv6 literal's [] */
#define VAPID_HTTPS_PORT	443
#define VAPID_HTTP_PORT		80

struct vapid_cached {
	char		*aud;		/* NULL: free slot */
	char		*header;	/* "vapid t=..., k=...": a secret */
	int64_t		 issued_ms;
};

struct vapid {
	EVP_PKEY		*key;
	char			*subject;
	char			 public_b64[VAPID_PUBLIC_KEY_B64_LEN + 1];
	struct vapid_cached	 cache[VAPID_CACHE_ORIGINS];
};

EVP_PKEY *
vapid_key_load_pem(const char *pem, size_t len, char err[ERR_LEN])
{
	EVP_PKEY *key = NULL;
	uint8_t pt[WEBPUSH_CRYPTO_POINT_BYTES];
	BIO *bio;

	if (len > VAPID_KEY_FILE_MAX_BYTES) {
		err_set(err, "key file of %zu bytes, at most %d", len,
		    VAPID_KEY_FILE_MAX_BYTES);
		return NULL;
	}
	ERR_set_mark();
	/* PEM_read_bio_PrivateKey skips blocks it cannot decode into a
	 * private key (the EC PARAMETERS that `openssl ecparam -genkey`
	 * writes first) and reads PKCS#8 and SEC1 alike. */
	if ((bio = BIO_new_mem_buf(pem, (int)len)) != NULL) {
		key = PEM_read_bio_PrivateKey(bio, NULL, jwt_no_passphrase,
		    NULL);
		BIO_free(bio);
	}
	ERR_pop_to_mark();
	if (key == NULL) {
		err_set(err, "not an unencrypted PEM private key (PKCS#8 or "
		    "SEC1)");
		return NULL;
	}
	if (webpush_crypto_public_point(key, pt, err) < 0 ||
	    jwt_key_check(key, err) < 0) {
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

EVP_PKEY *
vapid_key_load_file(const char *path, char err[ERR_LEN])
{
	char *pem = xmalloc(VAPID_KEY_FILE_MAX_BYTES + 1);
	EVP_PKEY *key = NULL;
	size_t len;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		err_set(err, "%s: %s", path, strerror(errno));
		free(pem);
		return NULL;
	}
	/* One byte more than allowed, to tell a too large file. */
	len = fread(pem, 1, VAPID_KEY_FILE_MAX_BYTES + 1, fp);
	if (ferror(fp))
		err_set(err, "%s: read error", path);
	else if ((key = vapid_key_load_pem(pem, len, err)) == NULL) {
		char why[ERR_LEN];

		snprintf(why, sizeof(why), "%s", err);
		err_set(err, "%s: %s", path, why);
	}
	fclose(fp);
	OPENSSL_cleanse(pem, len);
	free(pem);
	return key;
}

/* A contact URI RFC 8292 §2.1 asks for, safe inside a JSON string. */
static bool
vapid_subject_ok(const char *s)
{
	size_t len = strlen(s);

	if (len > VAPID_SUBJECT_MAX_BYTES)
		return false;
	if (strncmp(s, "mailto:", 7) == 0)
		s += 7;
	else if (strncmp(s, "https:", 6) == 0)
		s += 6;
	else
		return false;
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\')
			return false;
	}
	return true;
}

struct vapid *
vapid_new(EVP_PKEY *key, const char *subject, char err[ERR_LEN])
{
	uint8_t pt[WEBPUSH_CRYPTO_POINT_BYTES];
	struct vapid *v;
	struct buf b;

	if (subject == NULL)
		subject = VAPID_SUBJECT_DEFAULT;
	if (!vapid_subject_ok(subject)) {
		err_set(err, "VAPID subject must be a mailto: or https: URI of "
		    "at most %d printable bytes without '\"' or '\\'",
		    VAPID_SUBJECT_MAX_BYTES);
		return NULL;
	}
	if (webpush_crypto_public_point(key, pt, err) < 0)
		return NULL;
	v = xcalloc(1, sizeof(*v));
	if (EVP_PKEY_up_ref(key) != 1)
		abort();	/* a lock failure: as xmalloc */
	v->key = key;
	v->subject = xstrdup(subject);
	buf_init(&b);
	base64url_encode(&b, pt, sizeof(pt));
	if (b.len != VAPID_PUBLIC_KEY_B64_LEN)
		abort();	/* 65 bytes are always 87 characters */
	memcpy(v->public_b64, b.data, b.len + 1);
	buf_clear(&b);
	return v;
}

static void
vapid_cached_drop(struct vapid_cached *c)
{
	free(c->aud);
	if (c->header != NULL) {
		OPENSSL_cleanse(c->header, strlen(c->header));
		free(c->header);
	}
	memset(c, 0, sizeof(*c));
}

void
vapid_free(struct vapid *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < VAPID_CACHE_ORIGINS; i++)
		vapid_cached_drop(&v->cache[i]);
	EVP_PKEY_free(v->key);
	free(v->subject);
	free(v);
}

const char *
vapid_public_key(const struct vapid *v)
{
	return v->public_b64;
}

const char *
vapid_subject(const struct vapid *v)
{
	return v->subject;
}

static bool
vapid_host_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	    c == '.';
}

/* A lower-case DNS name or IPv4 address, or an IPv6 literal in []. */
static bool
vapid_host_ok(const char *h, size_t len)
{
	if (len == 0 || len > VAPID_HOST_MAX_BYTES)
		return false;
	if (h[0] == '[') {
		if (len < 4 || h[len - 1] != ']')
			return false;
		for (size_t i = 1; i < len - 1; i++)
			if (!vapid_host_char_ok(h[i]) && h[i] != ':')
				return false;
		return true;
	}
	for (size_t i = 0; i < len; i++)
		if (!vapid_host_char_ok(h[i]))
			return false;
	return true;
}

int
vapid_audience(bool https, const char *host, size_t host_len, uint16_t port,
    char out[VAPID_AUDIENCE_MAX_BYTES], char err[ERR_LEN])
{
	char lower[VAPID_HOST_MAX_BYTES + 1];
	uint16_t dflt = https ? VAPID_HTTPS_PORT : VAPID_HTTP_PORT;

	if (host_len == 0 || host_len > VAPID_HOST_MAX_BYTES) {
		err_set(err, "endpoint host of %zu bytes", host_len);
		return -1;
	}
	/* RFC 6454 §6.2: the origin's host is in lower case; push services
	 * compare aud with their own origin. */
	for (size_t i = 0; i < host_len; i++)
		lower[i] = host[i] >= 'A' && host[i] <= 'Z' ?
		    (char)(host[i] - 'A' + 'a') : host[i];
	lower[host_len] = '\0';
	if (!vapid_host_ok(lower, host_len)) {
		err_set(err, "endpoint host is not a host name or IP literal");
		return -1;
	}
	if (port != 0 && port != dflt)
		snprintf(out, VAPID_AUDIENCE_MAX_BYTES, "%s://%s:%u",
		    https ? "https" : "http", lower, (unsigned)port);
	else
		snprintf(out, VAPID_AUDIENCE_MAX_BYTES, "%s://%s",
		    https ? "https" : "http", lower);
	return 0;
}

/* What vapid_audience makes: scheme, host, optional port, nothing else. */
static bool
vapid_aud_ok(const char *aud)
{
	const char *h, *end;
	size_t len = strlen(aud);

	if (len >= VAPID_AUDIENCE_MAX_BYTES)
		return false;
	if (strncmp(aud, "https://", 8) == 0)
		h = aud + 8;
	else if (strncmp(aud, "http://", 7) == 0)
		h = aud + 7;
	else
		return false;
	end = h[0] == '[' ? strchr(h, ']') : strchr(h, ':');
	if (h[0] == '[')
		end = end == NULL ? NULL : end + 1;
	if (end == NULL)
		end = aud + len;
	if (!vapid_host_ok(h, (size_t)(end - h)))
		return false;
	if (*end == '\0')
		return true;
	if (*end != ':' || end[1] == '\0' || strlen(end + 1) > 5)
		return false;
	for (const char *p = end + 1; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/* The slot for aud: its own (*hit if still fresh), else the first free
 * one, else the one issued longest ago. */
static struct vapid_cached *
vapid_cache_slot(struct vapid *v, const char *aud, int64_t now_ms, bool *hit)
{
	struct vapid_cached *free_slot = NULL, *oldest = NULL;

	*hit = false;
	for (size_t i = 0; i < VAPID_CACHE_ORIGINS; i++) {
		struct vapid_cached *c = &v->cache[i];

		if (c->aud == NULL) {
			if (free_slot == NULL)
				free_slot = c;
		} else if (strcmp(c->aud, aud) == 0) {
			/* A clock that went back also renews. */
			*hit = now_ms >= c->issued_ms &&
			    now_ms - c->issued_ms < VAPID_JWT_REUSE_MS;
			return c;
		} else if (oldest == NULL || c->issued_ms < oldest->issued_ms)
			oldest = c;
	}
	return free_slot != NULL ? free_slot : oldest;
}

const char *
vapid_authorization(struct vapid *v, const char *aud, int64_t now_ms,
    char err[ERR_LEN])
{
	struct vapid_cached *c;
	char claims[VAPID_AUDIENCE_MAX_BYTES + VAPID_SUBJECT_MAX_BYTES + 64];
	char *jwt;
	bool hit;

	if (!vapid_aud_ok(aud)) {
		err_set(err, "VAPID audience is not an origin");
		return NULL;
	}
	c = vapid_cache_slot(v, aud, now_ms, &hit);
	if (hit)
		return c->header;
	snprintf(claims, sizeof(claims),
	    "{\"aud\":\"%s\",\"exp\":%lld,\"sub\":\"%s\"}", aud,
	    (long long)((now_ms + VAPID_JWT_LIFETIME_MS) / 1000), v->subject);
	if ((jwt = jwt_sign(JWT_ES256, v->key, VAPID_JWT_HEADER, claims,
	    err)) == NULL)
		return NULL;
	vapid_cached_drop(c);
	c->aud = xstrdup(aud);
	c->header = xasprintf("vapid t=%s, k=%s", jwt, v->public_b64);
	c->issued_ms = now_ms;
	OPENSSL_cleanse(jwt, strlen(jwt));
	free(jwt);
	return c->header;
}
