/*
 * The providers proxyd knows, in one table (providers[], OpenSMTPD's
 * queue backends): each entry is a module's struct provider_ops
 * (provider.h). The push engine and main.c walk the table; nothing else
 * names a provider. Adding one: docs/push-providers.md, "Adding a
 * provider".
 */
#ifndef PROVIDERS_H
#define PROVIDERS_H

#include <stddef.h>

#include "apns.h"
#include "fcm.h"
#include "provider.h"
#include "token.h"
#include "ubports.h"
#include "webpush.h"

/* The room per-provider arrays have (push_config.limits); the table may
 * hold fewer (providers_count). */
#define PROVIDERS_MAX	8

/* Every provider's settings, each read only by its own module's new op
 * (strings and keys borrowed). A provider left unset is off. The modules
 * never see this struct (the table knows the way from one to the other),
 * so no provider depends on the others. */
struct providers_config {
	struct apns_config	 apns;
	struct fcm_config	 fcm;
	struct webpush_config	 webpush;
	struct ubports_config	 ubports;
};

/* The table, in the order of metrics and of --rate-limit's list. */
extern const struct provider_ops *const providers[];
extern const size_t providers_count;

/* The provider of a token kind; NULL if none serves it. */
const struct provider_ops *providers_of(enum token_kind);
/* By name ("apns"; the first len bytes of name, any case); NULL. */
const struct provider_ops *providers_find(const char *name, size_t len);
/* Its index in providers[] (for per-provider arrays); -1 if not there. */
int	providers_index(const struct provider_ops *);
/* providers[i]'s member of cfg: what its new op reads. */
const void *providers_settings(const struct providers_config *cfg, size_t i);

#endif
