/*
 * The FCM service-account key file (docs/push-providers.md §2.1); see fcm.h.
 * Google's file holds more than we use (client_id, auth_uri, cert URLs,
 * universe_domain): those are ignored, but the members we use are checked
 * strictly, because each ends up in a URL, a JWT or a log line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "fcm.h"
#include "jwt.h"
#include "xmalloc.h"

#define FCM_KEY_TYPE		"service_account"
/* Google: 6 to 30 characters, a lowercase letter first, no hyphen last. */
#define FCM_PROJECT_MIN_BYTES	6
#define FCM_PROJECT_MAX_BYTES	30
/* Only unencrypted private keys: Google issues PKCS#8 "PRIVATE KEY". */
#define FCM_PEM_PKCS8		"-----BEGIN PRIVATE KEY-----"
#define FCM_PEM_PKCS1		"-----BEGIN RSA PRIVATE KEY-----"

static bool
fcm_key_is_lower_or_digit(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
fcm_key_is_alnum(char c)
{
	return fcm_key_is_lower_or_digit(c) || (c >= 'A' && c <= 'Z');
}

/* A project id as Google allows it, optionally after the "<domain>:" of
 * old domain-scoped projects ("example.com:my-project"); either way it
 * goes into the send URL's path unescaped, so no other byte passes. */
static bool
fcm_key_project_ok(const char *s)
{
	const char *colon = strchr(s, ':'), *id = s;
	size_t n;

	if (strlen(s) > FCM_KEY_PROJECT_ID_MAX_BYTES)
		return false;
	if (colon != NULL) {
		if (colon == s)
			return false;
		for (const char *p = s; p < colon; p++)
			if (!fcm_key_is_lower_or_digit(*p) && *p != '.' &&
			    *p != '-')
				return false;
		id = colon + 1;
	}
	n = strlen(id);
	if (n < FCM_PROJECT_MIN_BYTES || n > FCM_PROJECT_MAX_BYTES ||
	    !(id[0] >= 'a' && id[0] <= 'z') || id[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!fcm_key_is_lower_or_digit(id[i]) && id[i] != '-')
			return false;
	return true;
}

/* local@domain in the characters service-account addresses use
 * (name@project.iam.gserviceaccount.com); it goes into the JWT. */
static bool
fcm_key_email_ok(const char *s)
{
	const char *at = strchr(s, '@');
	size_t n = strlen(s);

	if (at == NULL || at == s || at[1] == '\0' || strchr(at + 1, '@') ||
	    n > FCM_KEY_EMAIL_MAX_BYTES)
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (!fcm_key_is_alnum(*p) && strchr("@._%+-", *p) == NULL)
			return false;
	return true;
}

static bool
fcm_key_id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > FCM_KEY_ID_MAX_BYTES)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!fcm_key_is_alnum(s[i]) && s[i] != '-' && s[i] != '_')
			return false;
	return true;
}

/* https://host[...]: printable ASCII that needs no quoting in a URL or a
 * log line. */
static bool
fcm_key_url_ok(const char *s)
{
	static const char scheme[] = "https://";
	size_t n = strlen(s);

	if (n > FCM_KEY_URL_MAX_BYTES ||
	    strncmp(s, scheme, sizeof(scheme) - 1) != 0 ||
	    n == sizeof(scheme) - 1 || s[sizeof(scheme) - 1] == '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] >= 0x7f || strchr("\"\\<>`{}|^",
		    s[i]) != NULL)
			return false;
	return true;
}

/* The private_key member: an unencrypted PEM RSA key of a sane size.
 * Loaded here rather than with jwt_load_key_pem for the checks around
 * it: the PEM label first, a passphrase callback that refuses (an
 * encrypted PKCS#1 key carries the accepted label and a Proc-Type
 * header, and OpenSSL's default callback would prompt on the terminal),
 * OpenSSL's error queue left as it was, and the key type and size. */
static EVP_PKEY *
fcm_key_pem(const char *pem, size_t len, char err[ERR_LEN])
{
	EVP_PKEY *pkey = NULL;
	char why[ERR_LEN];
	BIO *bio;
	int bits;

	if (len > FCM_KEY_PEM_MAX_BYTES) {
		err_set(err, "fcm key: \"private_key\" longer than %d bytes",
		    FCM_KEY_PEM_MAX_BYTES);
		return NULL;
	}
	if (strncmp(pem, FCM_PEM_PKCS8, strlen(FCM_PEM_PKCS8)) != 0 &&
	    strncmp(pem, FCM_PEM_PKCS1, strlen(FCM_PEM_PKCS1)) != 0) {
		err_set(err, "fcm key: \"private_key\" is not an unencrypted "
		    "PKCS#8 or PKCS#1 PEM key");
		return NULL;
	}
	ERR_set_mark();
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		abort();	/* out of memory: as xmalloc */
	pkey = PEM_read_bio_PrivateKey(bio, NULL, jwt_no_passphrase,
	    NULL);
	BIO_free(bio);
	ERR_pop_to_mark();
	if (pkey == NULL) {
		err_set(err, "fcm key: \"private_key\" is not a PEM private "
		    "key");
		return NULL;
	}
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
		err_set(err, "fcm key: \"private_key\" is not an RSA key");
		EVP_PKEY_free(pkey);
		return NULL;
	}
	bits = EVP_PKEY_get_bits(pkey);
	if (bits < FCM_KEY_RSA_MIN_BITS || bits > FCM_KEY_RSA_MAX_BITS) {
		err_set(err, "fcm key: RSA key of %d bits, want %d..%d", bits,
		    FCM_KEY_RSA_MIN_BITS, FCM_KEY_RSA_MAX_BITS);
		EVP_PKEY_free(pkey);
		return NULL;
	}
	if (jwt_key_check(pkey, why) < 0) {
		err_set(err, "fcm key: \"private_key\": %s", why);
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}

/* A string member that passes ok(); NULL and err otherwise. */
static const char *
fcm_key_member(json_t *root, const char *name, bool (*ok)(const char *),
    char err[ERR_LEN])
{
	json_t *v = json_object_get(root, name);
	const char *s;

	if (!json_is_string(v)) {
		err_set(err, "fcm key: \"%s\" %s", name, v == NULL ?
		    "missing" : "is not a string");
		return NULL;
	}
	s = json_string_value(v);
	/* jansson refuses \u0000 unless asked, so strlen is the length. */
	if (ok != NULL && !ok(s)) {
		err_set(err, "fcm key: \"%s\" malformed (%zu bytes)", name,
		    strlen(s));
		return NULL;
	}
	return s;
}

/* Wipe jansson's copy of the private key before json_decref frees it. */
static void
fcm_key_wipe_member(json_t *root, const char *name)
{
	json_t *v = json_object_get(root, name);

	if (json_is_string(v))
		OPENSSL_cleanse((char *)json_string_value(v),
		    json_string_length(v));
}

struct fcm_key *
fcm_key_parse(const char *json, size_t len, char err[ERR_LEN])
{
	struct fcm_key *k = NULL;
	const char *type, *project, *email, *kid = NULL, *uri;
	json_error_t jerr;
	json_t *root, *pem;
	EVP_PKEY *pkey;

	if (len > FCM_KEY_FILE_MAX_BYTES) {
		err_set(err, "fcm key: %zu bytes, at most %d", len,
		    FCM_KEY_FILE_MAX_BYTES);
		return NULL;
	}
	/* Only the position of a syntax error: jansson's text quotes the
	 * bytes near it, which may be the private key's. */
	if ((root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL) {
		err_set(err, "fcm key: not valid JSON (line %d, column %d)",
		    jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		err_set(err, "fcm key: not a JSON object");
		goto out;
	}
	if ((type = fcm_key_member(root, "type", NULL, err)) == NULL)
		goto out;
	if (strcmp(type, FCM_KEY_TYPE) != 0) {
		err_set(err, "fcm key: \"type\" is not \"%s\"", FCM_KEY_TYPE);
		goto out;
	}
	if ((project = fcm_key_member(root, "project_id", fcm_key_project_ok,
	    err)) == NULL ||
	    (email = fcm_key_member(root, "client_email", fcm_key_email_ok,
	    err)) == NULL ||
	    (uri = fcm_key_member(root, "token_uri", fcm_key_url_ok,
	    err)) == NULL)
		goto out;
	if (json_object_get(root, "private_key_id") != NULL &&
	    (kid = fcm_key_member(root, "private_key_id", fcm_key_id_ok,
	    err)) == NULL)
		goto out;
	pem = json_object_get(root, "private_key");
	if (!json_is_string(pem)) {
		err_set(err, "fcm key: \"private_key\" %s", pem == NULL ?
		    "missing" : "is not a string");
		goto out;
	}
	if ((pkey = fcm_key_pem(json_string_value(pem),
	    json_string_length(pem), err)) == NULL)
		goto out;
	k = xcalloc(1, sizeof(*k));
	k->project_id = xstrdup(project);
	k->client_email = xstrdup(email);
	k->private_key_id = kid != NULL ? xstrdup(kid) : NULL;
	k->token_uri = xstrdup(uri);
	k->pkey = pkey;
out:
	fcm_key_wipe_member(root, "private_key");
	json_decref(root);
	return k;
}

/* Reads at most one byte more than FCM_KEY_FILE_MAX_BYTES, so that a
 * file that grew since fstat is still refused. */
struct fcm_key *
fcm_key_load(const char *path, char err[ERR_LEN])
{
	struct fcm_key *k = NULL;
	size_t cap = FCM_KEY_FILE_MAX_BYTES + 1, len = 0;
	char perr[ERR_LEN], *data;
	struct stat sb;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		err_set(err, "fcm key %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		err_set(err, "fcm key %s: not a regular file", path);
		close(fd);
		return NULL;
	}
	if (sb.st_size > FCM_KEY_FILE_MAX_BYTES) {
		err_set(err, "fcm key %s: %lld bytes, at most %d", path,
		    (long long)sb.st_size, FCM_KEY_FILE_MAX_BYTES);
		close(fd);
		return NULL;
	}
	data = xmalloc(cap);
	while (len < cap && (n = read(fd, data + len, cap - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set(err, "fcm key %s: %s", path, strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	if (len == cap) {
		err_set(err, "fcm key %s: more than %d bytes", path,
		    FCM_KEY_FILE_MAX_BYTES);
		goto out;
	}
	if ((k = fcm_key_parse(data, len, perr)) == NULL)
		err_set(err, "%s (%s)", perr, path);
out:
	OPENSSL_cleanse(data, cap);
	free(data);
	close(fd);
	return k;
}

void
fcm_key_free(struct fcm_key *k)
{
	if (k == NULL)
		return;
	free(k->project_id);
	free(k->client_email);
	free(k->private_key_id);
	free(k->token_uri);
	EVP_PKEY_free(k->pkey);
	free(k);
}
