/*
 * proxyd's provider credentials, loaded at start so that a wrong file or
 * password stops the start with a clear message, not the first push: the
 * APNs certificate (.p12, read once here: the HTTP/2 client gets the
 * loaded certificate, never the file) or token key (.p8), the FCM
 * service-account key and the VAPID key. With a certificate, OpenSSL's
 * legacy provider is loaded here, explicitly and once, before the file
 * is read (p12.h). Missing credentials are a warning: that provider's
 * requests then get 500 (counted), as in the Rust service.
 */
#ifndef CREDENTIALS_H
#define CREDENTIALS_H

#include <openssl/evp.h>

#include "p12.h"
#include "push.h"

/* What the command line names (borrowed). */
struct credentials_options {
	const char	*p12_path;	/* --certificate-file */
	const char	*password;	/* --password */
	const char	*password_file;
	const char	*p8_path;
	const char	*fcm_key_path;
	const char	*vapid_key_path;
	const char	*vapid_subject;
};

/* What was loaded; every pointer owned, secrets wiped on free. */
struct credentials {
	struct p12	 p12;
	char		*topic_from_cert;
	EVP_PKEY	*p8_key;
	struct fcm_key	*fcm_key;
	EVP_PKEY	*vapid_key;
	struct vapid	*vapid;
};

/* Loads into c and points push's credentials at it; exits on a file or
 * password that does not work. */
void	credentials_load(const struct credentials_options *,
	    struct push_config *push, struct credentials *c);
/* The VAPID public key of a --vapid-key-path, for
 * --print-vapid-public-key: printed, then exit. */
_Noreturn void credentials_print_vapid(const char *path);
void	credentials_free(struct credentials *);

#endif
