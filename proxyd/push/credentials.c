/* Loading provider credentials at start; see credentials.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "credentials.h"
#include "fcm.h"
#include "jwt.h"
#include "log.h"
#include "vapid.h"
#include "xmalloc.h"

#define CREDENTIALS_FILE_MAX	65536

/* A small secret file, wiped after use by the caller. */
static char *
credentials_read(const char *flag, const char *path, size_t *len)
{
	char *buf = xmalloc(CREDENTIALS_FILE_MAX);
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL)
		fatal("%s %s", flag, path);
	*len = fread(buf, 1, CREDENTIALS_FILE_MAX - 1, fp);
	fclose(fp);
	buf[*len] = '\0';
	return buf;
}

static void
credentials_apns(const struct credentials_options *o, struct push_config *p,
    struct credentials *c)
{
	struct apns_config *ac = &p->providers.apns;
	char err[ERR_LEN], *text = NULL;
	const char *password;
	size_t len = 0;
	int rv;

	if (o->p8_path != NULL) {
		if (ac->key_id == NULL || ac->team_id == NULL)
			fatalx("--apns-key-path needs --apns-key-id and "
			    "--apns-team-id");
		text = credentials_read("--apns-key-path", o->p8_path, &len);
		c->p8_key = jwt_load_key_pem(text, len, err);
		OPENSSL_cleanse(text, len);
		free(text);
		text = NULL;
		if (c->p8_key == NULL)
			fatalx("--apns-key-path %s: %s", o->p8_path, err);
		if (ac->topic == NULL)
			fatalx("token auth needs --topic (the app's bundle id)");
		ac->key = c->p8_key;
	}
	/* With a key too, requests carry the JWT and the certificate is
	 * still presented at TLS (docs/push-providers.md §1.5). */
	if (o->p12_path != NULL) {
		password = NULL;
		if (o->password_file != NULL) {
			text = credentials_read("--password-file",
			    o->password_file, &len);
			text[strcspn(text, "\r\n")] = '\0';
			password = text;
		}
		/* Keychain's RC2-40 files need it; loaded before the file is
		 * read, once for the process. Without it a modern file still
		 * loads, and an old one gets an error that says why. */
		(void)p12_legacy_load(err);
		rv = p12_load(o->p12_path, password != NULL ? password :
		    o->password, &c->p12, err);
		if (text != NULL) {
			OPENSSL_cleanse(text, len);
			free(text);
		}
		if (rv < 0)
			fatalx("--certificate-file: %s", err);
		c->topic_from_cert = p12_topic(&c->p12);
		if (ac->topic == NULL)
			ac->topic = c->topic_from_cert;
		ac->cert = &c->p12;
	}
	if (ac->key == NULL && ac->cert == NULL)
		log_warnx("no APNs credentials (--certificate-file or "
		    "--apns-key-path): iOS pushes will fail with 500");
}

void
credentials_load(const struct credentials_options *o, struct push_config *p,
    struct credentials *c)
{
	char err[ERR_LEN];

	memset(c, 0, sizeof(*c));
	credentials_apns(o, p, c);
	if (o->fcm_key_path != NULL) {
		if ((c->fcm_key = fcm_key_load(o->fcm_key_path, err)) == NULL)
			fatalx("--fcm-key-path %s: %s", o->fcm_key_path, err);
		p->providers.fcm.key = c->fcm_key;
		log_info("FCM project %s as %s", c->fcm_key->project_id,
		    c->fcm_key->client_email);
	} else
		log_warnx("no FCM key (--fcm-key-path): Android pushes will "
		    "fail with 500");
	if (o->vapid_key_path != NULL) {
		if ((c->vapid_key = vapid_key_load_file(o->vapid_key_path,
		    err)) == NULL)
			fatalx("--vapid-key-path %s: %s", o->vapid_key_path,
			    err);
		if ((c->vapid = vapid_new(c->vapid_key, o->vapid_subject,
		    err)) == NULL)
			fatalx("--vapid-key-path %s: %s", o->vapid_key_path,
			    err);
		p->providers.webpush.vapid = c->vapid;
		log_info("Web Push VAPID public key %s subject %s",
		    vapid_public_key(c->vapid), vapid_subject(c->vapid));
	} else
		log_warnx("no VAPID key (--vapid-key-path): Web Push will "
		    "fail with 500");
}

void
credentials_print_vapid(const char *path)
{
	struct vapid *v;
	EVP_PKEY *key;
	char err[ERR_LEN];

	if (path == NULL)
		fatalx("--print-vapid-public-key needs --vapid-key-path");
	if ((key = vapid_key_load_file(path, err)) == NULL ||
	    (v = vapid_new(key, NULL, err)) == NULL)
		fatalx("--vapid-key-path %s: %s", path, err);
	printf("%s\n", vapid_public_key(v));
	vapid_free(v);
	EVP_PKEY_free(key);
	exit(0);
}

void
credentials_free(struct credentials *c)
{
	EVP_PKEY_free(c->p8_key);
	free(c->topic_from_cert);
	p12_clear(&c->p12);
	fcm_key_free(c->fcm_key);
	vapid_free(c->vapid);
	EVP_PKEY_free(c->vapid_key);
	memset(c, 0, sizeof(*c));
}
